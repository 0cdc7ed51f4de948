/* One optimisation step, shared by the student's and the critic's loops: the gradients
 * of this process's micro-batches accumulated, summed over the ranks, the guard against
 * a non-finite loss, the gradient norm, clipping folded into AdamW, the LR schedule. */
#include "train/train.h"

#include <math.h>

/* The guard's message says where the run can go on from. */
static int guard_fail(const TrainStep *t, long step, double loss, double norm) {
    const char *what = isfinite(loss) ? "gradient norm" : "loss";
    if (!t->ckpt)
        return vcm_fail(VCM_ERR, "step %ld: the %s is not finite (try a lower --lr)", step + 1, what);
    if (t->ckpt_step < 0)
        return vcm_fail(VCM_ERR, "step %ld: the %s is not finite; stopped before any checkpoint was written (try a lower --lr)",
                        step + 1, what);
    return vcm_fail(VCM_ERR, "step %ld: the %s is %s; stopped without updating. The last good checkpoint is %s (step %ld)",
                    step + 1, what,
                    isfinite(loss) && isfinite(norm) ? "not finite on another rank"
                    : isnan(loss) || isnan(norm) ? "NaN" : "infinite",
                    t->ckpt, t->ckpt_step);
}

/* This process's micro-batches, forward and backward, into the gradients; *loss_sum is
 * the sum of their scaled losses, *lrc this process's failure (the others learn of it
 * in train_step). Returns an MPI error, which ends the step at once. */
static int accumulate(const TrainStep *t, long step, double *loss_sum, int *lrc) {
    const int shared = t->split && t->ranks > 1;   /* every micro-batch is cut over the ranks */
    for (int a = t->micro0; a < t->micro1; a++) {
        graph_reset(t->g);
        Tensor *loss = NULL;
        double weight = 0;
        if (!*lrc) *lrc = t->micro(t->ctx, t->g, step, a, &loss, &weight);
        float scale = t->accum > 1 ? 1.0f / (float)t->accum : 1.0f;
        if (shared) {
            /* A slice's mean counts for its share of the micro-batch's weight (tokens). */
            double mine = *lrc ? 0 : weight;
            double w[2] = {mine, *lrc != 0};
            int rc = dist_allreduce_f64(w, 2, DIST_SUM);
            if (rc) return rc;
            if (w[1] > 0) break;   /* a rank failed (its *lrc is set): all stop, told in train_step */
            scale = (float)(mine / w[0] / t->accum);
        }
        if (*lrc) break;
        if (scale != 1.0f) loss = op_scale(t->g, loss, scale);
        if (!loss || graph_backward(t->g, loss)) {
            *lrc = vcm_fail(VCM_ERR, "step %ld: %s", step + 1, vcm_error());
            /* Shared micro-batches: the others are already on their way to the next
             * micro-batch's all-reduce; meet them there with the failure (or, after the
             * last one, at train_step's), so that every rank makes the same calls. */
            if (shared) continue;
            break;
        }
        *loss_sum += loss->data[0];
    }
    return VCM_OK;
}

int train_step(const TrainStep *t, long step, StepStats *out) {
    params_unset_grads(t->ps);
    double loss_sum = 0;
    int lrc = VCM_OK;   /* this rank's failure */
    int rc = accumulate(t, step, &loss_sum, &lrc);
    if (rc) return rc;
    /* One all-reduce of the whole flat gradient, then of the loss. No bucketing or
     * overlap with the backward pass: the all-reduce is a few per cent of a step
     * at most (docs/CLUSTER.md, measured and modelled), all overlap could win. */
    if (t->ranks > 1) {
        params_settle_grads(t->ps); /* a parameter no backward reached: zeros */
        if ((rc = dist_allreduce_sum(t->ps->grads, t->ps->n))) return rc;
        double v[2] = {loss_sum, lrc != 0};
        if ((rc = dist_allreduce_f64(v, 2, DIST_SUM))) return rc;
        if (v[1] > 0) {
            rc = dist_agree(lrc ? lrc : VCM_OK);
            return rc ? rc : vcm_fail(VCM_ERR, "step %ld: a rank failed", step + 1);
        }
        loss_sum = v[0];
    } else if (lrc) {
        return lrc;
    }
    double norm = params_grad_norm(t->ps); /* clipped inside the update below */
    /* The guard decides the same on every rank. */
    double nonfinite = !isfinite(loss_sum) || !isfinite(norm);
    if (t->ranks > 1 && (rc = dist_allreduce_f64(&nonfinite, 1, DIST_MAX))) return rc;
    if (nonfinite > 0) return guard_fail(t, step, loss_sum, norm);
    double lr = lr_at(&t->sched, step);
    if ((rc = adamw_step_scaled(t->opt, t->ps, lr, params_clip_coef(norm, t->clip)))) return rc;
    out->loss = loss_sum;
    out->norm = norm;
    out->lr = lr;
    return VCM_OK;
}
