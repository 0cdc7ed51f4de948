/* The critic (model/critic.c) against the same model in PyTorch (tests/ref/critic.py,
 * which imports the student of tests/ref/model.py): logits [B, 2] (the mean-pooled
 * head plus critic.lm on the trunk's mean NLL of the text), the loss and the parameter
 * gradients of one batch with padded region slots and padded text. critic.lm's weight
 * is set to (0.7, -0.4) (critic_init leaves it 0) so the NLL path carries gradient.
 *
 *   tinypx_crit: model.py's tinypx config; weights from the committed safetensors;
 *        every gradient element compared.
 *   nano_crit: the real nano config, critic_init(seed 1234) re-created here and checked
 *        against the stored weight norms and samples; logits and loss in full, every
 *        gradient norm, every element of critic.head.* and dec.norm.*, sampled others.
 *
 * Tolerances as tests/test_model_ref.c (docs/MODEL_REF.md), the reference being float64
 * PyTorch on our float32 weights and inputs:
 *   normwise |ours - ref|_2 / |ref|_2 <= 1e-5 for every tensor (a norm counts as a
 *   one-element tensor); elementwise rel = |ours - ref| / max(|ref|, 0.01 RMS(ref))
 *   <= 1e-4 for logits and loss (or within 1.25x of float32 PyTorch's own rel), and
 *   <= 1e-3 for gradient elements (above 1e-4 is printed as a note).
 *
 * `test_critic_ref --export-weights DIR` writes DIR/tinypx_crit.safetensors and
 * DIR/nano_crit.safetensors (critic_init, seed 1234): what tests/ref/critic.py reads. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "tests/golden.h"
#pragma GCC diagnostic pop
#include "tests/test.h"
#include "model/model.h"
#include "tests/model_ref.h"

#define SEED 1234

/* The weights the goldens are made from: critic_init(seed 1234) with critic.lm set. */
static int golden_critic(Critic *c, const ModelConfig *cfg) {
    int rc = critic_init(c, cfg, SEED);
    if (!rc) c->lm.w->data[0] = 0.7f, c->lm.w->data[1] = -0.4f;
    return rc;
}

static const char *golden_dir(void) {
    const char *d = getenv("VCM_CRITIC_GOLDEN_DIR");
    return d && *d ? d : "tests/ref/golden_critic";
}

static ModelConfig tinypx_config(void) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tinypx");
    c.image = 32, c.patch = 8;
    c.vit_d = 16, c.vit_layers = 2, c.vit_heads = 2;
    c.dec_d = 16, c.dec_layers = 2, c.dec_heads = 2;
    c.vocab = 300, c.max_text = 16;
    c.region_input = REGION_INPUT_ROI;
    c.roi_pixels = 4;
    return c;
}

static double rel_floor(const float *ref, size_t n) {
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
    return 0.01 * sqrt(ss / (double)(n ? n : 1));
}

static double worst_rel(const float *ours, const float *ref, size_t n, double floor_) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)ours[i] - ref[i]);
        double e = floor_ == 0 && ref[i] == 0 ? (d == 0 ? 0 : INFINITY) : d / fmax(fabs((double)ref[i]), floor_);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}



static int batch_from_case(const GoldenCase *c, const ModelConfig *cfg, Batch *b, const int32_t **labels) {
    const GoldenArray *conf = need(c, "config", GOLDEN_I32), *img = need(c, "images", GOLDEN_F32),
                      *box = need(c, "boxes", GOLDEN_F32), *nr = need(c, "n_regions", GOLDEN_I32),
                      *tok = need(c, "tokens", GOLDEN_I32), *tgt = need(c, "targets", GOLDEN_I32),
                      *lab = need(c, "labels", GOLDEN_I32);
    if (!conf || !img || !box || !nr || !tok || !tgt || !lab || conf->n != 11 || box->ndim != 3 || tok->ndim != 2)
        return 0;
    int want[11] = {cfg->image, cfg->patch, cfg->vit_d, cfg->vit_layers, cfg->vit_heads, cfg->dec_d,
                    cfg->dec_layers, cfg->dec_heads, cfg->vocab, cfg->max_text, cfg->roi_pixels};
    if (memcmp(conf->data, want, sizeof want)) { fprintf(stderr, "  the golden's config is not %s\n", cfg->name); return 0; }
    *b = (Batch){tok->shape[0], img->data, box->shape[1], box->data, nr->data, tok->shape[1], tok->data, tgt->data};
    *labels = lab->data;
    return img->n == (size_t)b->B * 3 * cfg->image * cfg->image && (int)nr->n == b->B && tgt->n == tok->n &&
           box->shape[0] == b->B && (int)lab->n == b->B;
}

/* Forward + backward: logits [B, 2] copied into logits, the loss, gradients in c->s.ps. */
static int run_critic(Critic *c, const Batch *b, const int32_t *labels, float *logits, float *loss) {
    Graph g;
    if (graph_init(&g, 1 << 22)) return 0;
    params_zero_grad(&c->s.ps);
    Tensor *lg = critic_logits(&g, c, b);
    Tensor *l = lg ? op_cross_entropy(&g, lg, labels, -1) : NULL;
    int ok = l && graph_backward(&g, l) == VCM_OK;
    if (ok) {
        memcpy(logits, lg->data, sizeof(float) * 2 * (size_t)b->B);
        *loss = l->data[0];
    } else {
        fprintf(stderr, "  critic forward/backward failed: %s\n", vcm_error());
    }
    graph_free(&g);
    return ok;
}

static void tinypx_case(const char *dir) {
    char path[4300];
    snprintf(path, sizeof path, "%s/tinypx_crit.vgd", dir);
    GoldenCase gc;
    int rc = golden_load(path, &gc);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (rc) return;
    ModelConfig cfg = tinypx_config();
    Critic c, ref;
    Batch b;
    const int32_t *labels;
    float logits[64], loss = 0;
    int ok = batch_from_case(&gc, &cfg, &b, &labels) && b.B <= 32;
    CHECK_MSG(ok, "%s: bad batch arrays", path);
    if (ok && critic_init(&c, &cfg, 1) == VCM_OK) {
        snprintf(path, sizeof path, "%s/tinypx_crit.safetensors", dir);
        rc = safetensors_load_into(path, &c.s.ps);
        CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
        if (!rc && critic_init(&ref, &cfg, 1) == VCM_OK) {
            snprintf(path, sizeof path, "%s/tinypx_crit.grads.safetensors", dir);
            rc = safetensors_load_into(path, &ref.s.ps);   /* the reference gradients, as values */
            CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
            const GoldenArray *rl = need(&gc, "logits", GOLDEN_F32), *rloss = need(&gc, "loss", GOLDEN_F32),
                              *t32 = need(&gc, "torch32_rel", GOLDEN_F32);
            int shapes = rl && rloss && t32 && rl->n == 2 * (size_t)b.B && (int)t32->n == 2 + c.s.ps.n_params;
            CHECK_MSG(shapes, "logits, loss or torch32_rel missing or of the wrong size");
            if (!rc && shapes && run_critic(&c, &b, labels, logits, &loss)) {
                const float *tr = t32->data;
                Verdict v = {0};
                ref_judge(&v, "logits", 1, worst_rel(logits, rl->data, rl->n, rel_floor(rl->data, rl->n)),
                      norm_rel(logits, rl->data, rl->n), tr[0]);
                ref_judge(&v, "loss", 1, worst_rel(&loss, rloss->data, 1, rel_floor(rloss->data, 1)),
                      norm_rel(&loss, rloss->data, 1), tr[1]);
                for (int i = 0; i < c.s.ps.n_params; i++) {
                    const Tensor *t = &c.s.ps.p[i]->t, *r = &ref.s.ps.p[i]->t;
                    ref_judge(&v, c.s.ps.p[i]->name, 0, worst_rel(t->grad, r->data, t->n, rel_floor(r->data, r->n)),
                          norm_rel(t->grad, r->data, t->n), tr[2 + i]);
                }
                CHECK_MSG(v.n_fail == 0, "tinypx_crit: %d of %d tensors fail", v.n_fail, v.n);
                printf("  tinypx_crit B=%d R=%d T=%d loss %.6f: logits, loss, %d gradients in full: worst rel %.2g "
                       "(%d above 1e-4), worst normwise %.2g\n", b.B, b.R, b.T, (double)loss, c.s.ps.n_params,
                       v.worst, v.n_over, v.worst_norm);
            } else {
                CHECK(0);
            }
            critic_free(&ref);
        }
        critic_free(&c);
    }
    golden_free(&gc);
}

static int blob_name(const GoldenArray *blob, int i, char *out) {
    const char *s = blob->data, *end = s + blob->n;
    for (int k = 0; k < i && s < end; k++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        s = nl ? nl + 1 : end;
    }
    const char *nl = memchr(s, '\n', (size_t)(end - s));
    size_t len = (size_t)((nl ? nl : end) - s);
    if (s >= end || len >= NN_NAME_MAX) return 0;
    memcpy(out, s, len);
    out[len] = 0;
    return 1;
}

static void nano_case(const char *dir) {
    char path[4300];
    snprintf(path, sizeof path, "%s/nano_crit.vgd", dir);
    GoldenCase gc;
    int rc = golden_load(path, &gc);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (rc) return;
    ModelConfig cfg;
    Critic c;
    if (model_config_named("nano", &cfg) || golden_critic(&c, &cfg)) { CHECK(0); golden_free(&gc); return; }
    Batch b;
    const int32_t *labels;
    const GoldenArray *pn = need(&gc, "param_names", GOLDEN_U8), *rl = need(&gc, "logits", GOLDEN_F32),
                      *rloss = need(&gc, "loss", GOLDEN_F32), *t32 = need(&gc, "torch32_rel", GOLDEN_F32),
                      *gn = need(&gc, "grad_norm", GOLDEN_F32), *wn = need(&gc, "weight_norm", GOLDEN_F32),
                      *si = need(&gc, "sample_idx", GOLDEN_I32), *gv = need(&gc, "grad_val", GOLDEN_F32),
                      *wv = need(&gc, "weight_val", GOLDEN_F32);
    int np = c.s.ps.n_params;
    int ok = batch_from_case(&gc, &cfg, &b, &labels) && b.B <= 32 && pn && rl && rloss && t32 && gn && wn && si &&
             gv && wv && (int)gn->n == np && (int)wn->n == np && (int)t32->n == 2 + np && si->n == 2 * gv->n &&
             wv->n == gv->n && rl->n == 2 * (size_t)b.B;
    CHECK_MSG(ok, "%s: bad or missing arrays (or not %d parameters)", path, np);
    Tensor **p = calloc((size_t)np, sizeof *p);
    for (int i = 0; ok && i < np; i++) {
        char name[NN_NAME_MAX];
        ok = p && blob_name(pn, i, name) && (p[i] = params_get(&c.s.ps, name)) != NULL;
        CHECK_MSG(ok, "parameter %d of the golden is not in the critic", i);
        if (!ok) break;
        double ss = 0;
        for (size_t j = 0; j < p[i]->n; j++) ss += (double)p[i]->data[j] * p[i]->data[j];
        ok = fabs(sqrt(ss) - ((float *)wn->data)[i]) <= 1e-5 * fabs(((float *)wn->data)[i]);
        CHECK_MSG(ok, "weight norm of %s differs: critic_init changed? regenerate with tests/ref/critic.py", name);
    }
    const int32_t *idx = si->data;
    for (size_t s = 0; ok && s < gv->n; s++) {
        int pi = idx[2 * s], j = idx[2 * s + 1];
        ok = pi >= 0 && pi < np && j >= 0 && (size_t)j < p[pi]->n && p[pi]->data[j] == ((float *)wv->data)[s];
        CHECK_MSG(ok, "sampled weight %zu differs from the golden", s);
    }
    float logits[64], loss = 0;
    if (ok && run_critic(&c, &b, labels, logits, &loss)) {
        const float *tr = t32->data;
        Verdict v = {0};
        ref_judge(&v, "logits", 1, worst_rel(logits, rl->data, rl->n, rel_floor(rl->data, rl->n)),
              norm_rel(logits, rl->data, rl->n), tr[0]);
        ref_judge(&v, "loss", 1, worst_rel(&loss, rloss->data, 1, rel_floor(rloss->data, 1)), norm_rel(&loss, rloss->data, 1),
              tr[1]);
        size_t s = 0, full = 0;
        float *mine = malloc(gv->n * sizeof(float));
        for (int i = 0; mine && i < np; i++) {
            double ss = 0;
            for (size_t j = 0; j < p[i]->n; j++) ss += (double)p[i]->grad[j] * p[i]->grad[j];
            float ours_n = (float)sqrt(ss), ref_n = ((float *)gn->data)[i];
            double e = worst_rel(&ours_n, &ref_n, 1, 0), ne = norm_rel(&ours_n, &ref_n, 1);
            double rms = ref_n / sqrt((double)p[i]->n);
            size_t s0 = s;
            for (; s < gv->n && idx[2 * s] == i; s++) mine[s - s0] = p[i]->grad[idx[2 * s + 1]];
            if (s > s0) {
                double es = worst_rel(mine, (float *)gv->data + s0, s - s0, 0.01 * rms);
                double nes = norm_rel(mine, (float *)gv->data + s0, s - s0);
                if (!(es <= e)) e = es;
                if (!(nes <= ne)) ne = nes;
                full += s - s0 == p[i]->n;
            }
            char what[NN_NAME_MAX + 8] = "grad ";
            blob_name(pn, i, what + 5);
            ref_judge(&v, what, 0, e, ne, tr[2 + i]);
        }
        CHECK_MSG(mine && s == gv->n, "the sampled elements are not grouped by parameter");
        CHECK_MSG(full >= 5, "only %zu parameters compared in full (the head and dec.norm expected)", full);
        free(mine);
        CHECK_MSG(v.n_fail == 0, "nano_crit: %d of %d tensors fail", v.n_fail, v.n);
        printf("  nano_crit B=%d R=%d T=%d loss %.6f: logits, loss, %d gradient norms, %zu in full, %zu sampled "
               "elements: worst rel %.2g (%d above 1e-4), worst normwise %.2g\n", b.B, b.R, b.T, (double)loss, np,
               full, gv->n, v.worst, v.n_over, v.worst_norm);
    } else if (ok) {
        CHECK(0);
    }
    free(p);
    critic_free(&c);
    golden_free(&gc);
}

static void test_critic_matches_pytorch(void) {
    GoldenManifest man;
    int rc = golden_manifest_load(golden_dir(), &man);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (rc) return;
    int seen = 0;
    for (int i = 0; i < man.n; i++) {
        if (!strcmp(man.names[i], "tinypx_crit")) { tinypx_case(golden_dir()); seen |= 1; }
        else if (!strcmp(man.names[i], "nano_crit")) { nano_case(golden_dir()); seen |= 2; }
        else CHECK_MSG(0, "unknown case %s", man.names[i]);
    }
    CHECK_MSG(seen == 3, "the manifest lacks tinypx_crit or nano_crit");
    golden_manifest_free(&man);
}

static int export_weights(const char *dir) {
    const char *names[2] = {"tinypx_crit", "nano_crit"};
    for (int i = 0; i < 2; i++) {
        ModelConfig cfg;
        if (i == 0) cfg = tinypx_config();
        else if (model_config_named("nano", &cfg)) return fprintf(stderr, "%s\n", vcm_error()), 1;
        Critic c;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, names[i]);
        if (golden_critic(&c, &cfg)) return fprintf(stderr, "%s\n", vcm_error()), 1;
        int rc = safetensors_save(path, &c.s.ps, NULL);
        critic_free(&c);
        if (rc) return fprintf(stderr, "%s\n", vcm_error()), 1;
        fprintf(stderr, "wrote %s\n", path);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--export-weights")) return export_weights(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--export-weights DIR]\n", argv[0]);
        return 2;
    }
    RUN(test_critic_matches_pytorch);
    return test_summary();
}
