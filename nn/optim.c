/* AdamW (torch.optim.AdamW semantics), global gradient-norm clipping
 * (torch.nn.utils.clip_grad_norm_) and the warmup + cosine learning-rate schedule.
 *
 * The optimiser is elementwise over the flat buffers, so any thread count gives the
 * same bits. Scalars are formed the way PyTorch forms them (in double, then used as
 * float in the float kernels) so that a run tracks PyTorch's closely. */
#include "nn.h"

#include <math.h>

AdamW adamw_default(void) {
    AdamW a = {0.9, 0.999, 1e-8, 0.01, 0};
    return a;
}

int adamw_step(AdamW *opt, ParamStore *ps, double lr) { return adamw_step_scaled(opt, ps, lr, 1.0f); }

int adamw_step_scaled(AdamW *opt, ParamStore *ps, double lr, float grad_scale) {
    if (!ps->params) return vcm_fail(VCM_ERR, "adamw_step before params_alloc");
    params_settle_grads(ps);
    opt->step++;
    double t = (double)opt->step;
    double bc1 = 1.0 - pow(opt->beta1, t);
    double bc2 = 1.0 - pow(opt->beta2, t);
    const float decay = (float)(1.0 - lr * opt->weight_decay);
    const float b1 = (float)opt->beta1, a1 = (float)(1.0 - opt->beta1);
    const float b2 = (float)opt->beta2, a2 = (float)(1.0 - opt->beta2);
    const float neg_step = (float)(-(lr / bc1));
    const float bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)opt->eps;
    float *restrict P = ps->params, *restrict G = ps->grads, *restrict M = ps->m, *restrict V = ps->v;
    const ParamChunk *chunks = ps->chunks;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < ps->n_chunks; c++) {
        size_t lo = chunks[c].off, hi = lo + chunks[c].len;
        const float dk = chunks[c].decay ? decay : 1.0f;
        #pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            float g = G[i] * grad_scale; /* × 1 is exact: the same bits as unscaled */
            float p = P[i] * dk;
            float m = M[i] * b1 + a1 * g;
            float v = V[i] * b2 + a2 * g * g;
            float denom = sqrtf(v) / bc2_sqrt + eps;
            M[i] = m;
            V[i] = v;
            P[i] = p + neg_step * m / denom;
        }
    }
    return VCM_OK;
}

double params_grad_norm(ParamStore *ps) {
    if (!ps->grads) return 0.0;
    params_settle_grads(ps);
    const float *G = ps->grads;
    const ParamChunk *chunks = ps->chunks;
    double *partial = ps->partial;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < ps->n_chunks; c++) partial[c] = vcm_sum_squares(G + chunks[c].off, chunks[c].len);
    double total = 0.0;
    for (int c = 0; c < ps->n_chunks; c++) total += partial[c];
    return sqrt(total);
}

float params_clip_coef(double norm, double max_norm) {
    if (!isfinite(norm) || max_norm <= 0 || norm <= max_norm) return 1.0f;
    return (float)(max_norm / (norm + 1e-6));
}

double params_clip_grad_norm(ParamStore *ps, double max_norm) {
    double norm = params_grad_norm(ps);
    const float coef = params_clip_coef(norm, max_norm);
    if (coef == 1.0f) return norm;
    float *G = ps->grads;
    const ParamChunk *chunks = ps->chunks;
    #pragma omp parallel for schedule(static)
    for (int c = 0; c < ps->n_chunks; c++) {
        size_t lo = chunks[c].off, hi = lo + chunks[c].len;
        for (size_t i = lo; i < hi; i++) G[i] *= coef;
    }
    return norm;
}

double lr_at(const LrSchedule *s, long step) {
    if (step < s->warmup) return s->max_lr * (double)(step + 1) / (double)s->warmup;
    if (step >= s->total || s->total <= s->warmup) return s->min_lr;
    double progress = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    return s->min_lr + 0.5 * (s->max_lr - s->min_lr) * (1.0 + cos(M_PI * progress));
}
