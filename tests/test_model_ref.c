/* The student (model/student.c) against the same model in PyTorch (tests/ref/model.py):
 * the logits, the loss and every parameter gradient of one training batch, for batches
 * with 2 and 4 region slots (some of them padding) and padded text.
 *
 *   tiny (a reduced config of the same architecture): weights from the committed
 *        tiny.safetensors, every gradient element compared (tiny_<b>.grads.safetensors);
 *   nano (the real config): weights from student_init(seed 1234), checked against the
 *        stored weight norms and samples, then the loss, 1024 sampled logits, the norm of
 *        every parameter gradient and sampled gradient elements.
 *
 * Rule (docs/GOLDENS.md): rel = |ours - ref| / max(|ref|, 0.01 · RMS(ref tensor)) <= 1e-4,
 * the reference being float64 PyTorch on our float32 weights and inputs. The goldens live
 * in tests/ref/golden_model (VCM_MODEL_GOLDEN_DIR overrides).
 *
 * `test_model_ref --export-weights DIR` writes DIR/tiny.safetensors and DIR/nano.safetensors
 * (and tinypx) (student_init, seed 1234): what tests/ref/model.py starts from. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"   /* gcc 12 false positive in golden_load */
#include "tests/golden.h"
#pragma GCC diagnostic pop
#include "tests/test.h"
#include "model/model.h"
#include "tests/model_ref.h"

#define MODEL_SEED 1234

static const char *golden_dir(void) {
    const char *d = getenv("VCM_MODEL_GOLDEN_DIR");
    return d && *d ? d : "tests/ref/golden_model";
}

/* The reduced configs the goldens use for full gradients (tests/ref/model.py "tiny";
 * "tinypx": the same with the region pixel token, roi_pixels 4, mentions carrying the
 * raw region vector; "tinypxn": tinypx with MENTION_NORM, as nano has). */
static ModelConfig tiny_config(int roi_pixels, int mention) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "%s", !roi_pixels ? "tiny" : mention ? "tinypxn" : "tinypx");
    c.image = 32, c.patch = 8;
    c.vit_d = 16, c.vit_layers = 2, c.vit_heads = 2;
    c.dec_d = 16, c.dec_layers = 2, c.dec_heads = 2;
    c.vocab = 300, c.max_text = 16;
    c.region_input = REGION_INPUT_ROI;
    c.roi_pixels = roi_pixels;
    c.mention = mention;
    return c;
}

static int config_of(const char *name, ModelConfig *c) {
    if (!strcmp(name, "tiny")) { *c = tiny_config(0, MENTION_RAW); return VCM_OK; }
    if (!strcmp(name, "tinypx")) { *c = tiny_config(4, MENTION_RAW); return VCM_OK; }
    if (!strcmp(name, "tinypxn")) { *c = tiny_config(4, MENTION_NORM); return VCM_OK; }
    return model_config_named(name, c);
}

/* Worst rel over n elements with the floor given (or 0.01 RMS(ref) when floor_ < 0). */
static double worst_rel(const char *what, const float *ours, const float *ref, size_t n, double floor_) {
    if (floor_ < 0) {
        double ss = 0;
        for (size_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
        floor_ = 0.01 * sqrt(ss / (double)(n ? n : 1));
    }
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double e = floor_ == 0 ? (ours[i] == 0.0f ? 0 : INFINITY) : rel_err(ours[i], ref[i], floor_);
        if (!(e <= worst)) { worst = isnan(e) ? INFINITY : e; wi = i; }
    }
    if (n && getenv("VCM_REF_VERBOSE"))
        fprintf(stderr, "  %s: element %zu of %zu: ours %.9g ref %.9g (rel %.3g)\n", what, wi, n, (double)ours[wi],
                (double)ref[wi], worst);
    return worst;
}

/* The verdict over the tensors of a case (docs/MODEL_REF.md). Float32 arithmetic
 * cannot meet the elementwise 1e-4 of docs/GOLDENS.md on every element of a whole
 * model's gradients (sums over rows that cancel): float32 PyTorch itself, against the
 * same float64 reference, has up to 46 nano gradient tensors above 1e-4, worst 9.7e-4,
 * while its normwise error stays below 1e-6. So:
 *  (A) normwise |ours - ref|_2 / |ref|_2 <= 1e-5 for every tensor (a wrong position id,
 *      mask or tie gives 1e-3 and far more);
 *  (B) elementwise rel (docs/GOLDENS.md rule) <= 1e-4 for the logits and the loss,
 *      unless float32 PyTorch's own rel on them is larger (nano with region mentions:
 *      4.1e-4), where ours must stay within 1.25x of it; for gradients every tensor
 *      above 1e-4 is printed next to float32 PyTorch's own rel on it (torch32_rel,
 *      stored by model.py) and fails above MODEL_HARD_TOL. */
static void judge(Verdict *v, const char *what, double rel, double nrel, double torch32) {
    ref_judge(v, what, !strncmp(what, "logits", 6) || !strcmp(what, "loss"), rel, nrel, torch32);
}

/* The Batch stored in a case (pointers into the case's arrays). */
static int batch_from_case(const GoldenCase *c, const ModelConfig *cfg, Batch *b) {
    const GoldenArray *conf = need(c, "config", GOLDEN_I32), *img = need(c, "images", GOLDEN_F32),
                      *box = need(c, "boxes", GOLDEN_F32), *nr = need(c, "n_regions", GOLDEN_I32),
                      *tok = need(c, "tokens", GOLDEN_I32), *tgt = need(c, "targets", GOLDEN_I32);
    if (!conf || !img || !box || !nr || !tok || !tgt || conf->n != 11 || box->ndim != 3 || tok->ndim != 2)
        return 0;
    const int *k = conf->data;
    int want[11] = {cfg->image, cfg->patch, cfg->vit_d, cfg->vit_layers, cfg->vit_heads, cfg->dec_d,
                    cfg->dec_layers, cfg->dec_heads, cfg->vocab, cfg->max_text, cfg->roi_pixels};
    if (memcmp(k, want, sizeof want)) { fprintf(stderr, "  the golden's config is not %s\n", cfg->name); return 0; }
    b->B = tok->shape[0];
    b->T = tok->shape[1];
    b->R = box->shape[1];
    b->images = img->data;
    b->boxes = box->data;
    b->n_regions = nr->data;
    b->tokens = tok->data;
    b->targets = tgt->data;
    return img->n == (size_t)b->B * 3 * cfg->image * cfg->image && (int)nr->n == b->B && tgt->n == tok->n &&
           box->shape[0] == b->B;
}

/* Logits (no tape), then the loss and its backward into m->ps grads. */
static int run_student(Student *m, const Batch *b, float **logits, float *loss) {
    Graph g;
    int ok = 0;
    if (graph_init(&g, 1 << 22)) return 0;
    g.grad_enabled = 0;
    Tensor *lg = student_logits(&g, m, b);
    if (lg) {
        *logits = malloc(lg->n * sizeof(float));
        if (*logits) memcpy(*logits, lg->data, lg->n * sizeof(float));
        graph_reset(&g);
        g.grad_enabled = 1;
        params_zero_grad(&m->ps);
        Tensor *l = student_loss(&g, m, b);
        ok = *logits && l && graph_backward(&g, l) == VCM_OK;
        if (ok) *loss = l->data[0];
    }
    if (!ok) fprintf(stderr, "  student forward/backward failed: %s\n", vcm_error());
    graph_free(&g);
    return ok;
}

/* ---------------------------------------------------------------- tiny: everything */

static void tiny_case(const char *dir, const char *name, int roi_pixels, int mention) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.vgd", dir, name);
    GoldenCase c;
    int rc = golden_load(path, &c);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (rc) return;
    ModelConfig cfg = tiny_config(roi_pixels, mention);
    Student m, ref;
    Batch b;
    float *logits = NULL, loss = 0;
    int ok = batch_from_case(&c, &cfg, &b);
    CHECK_MSG(ok, "%s: bad batch arrays", path);
    if (ok && student_init(&m, &cfg, 1) == VCM_OK) {
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, cfg.name);
        rc = safetensors_load_into(path, &m.ps);
        CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
        snprintf(path, sizeof path, "%s/%s.grads.safetensors", dir, name);
        if (!rc && student_init(&ref, &cfg, 1) == VCM_OK) {
            rc = safetensors_load_into(path, &ref.ps);   /* the reference gradients, as values */
            CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
            if (!rc && run_student(&m, &b, &logits, &loss)) {
                const GoldenArray *rl = need(&c, "logits", GOLDEN_F32), *rloss = need(&c, "loss", GOLDEN_F32),
                                  *t32 = need(&c, "torch32_rel", GOLDEN_F32);
                Verdict v = {0};
                int shapes_ok = rl && rloss && t32 && rl->n == (size_t)b.B * b.T * cfg.vocab &&
                                m.ps.n_params == ref.ps.n_params && (int)t32->n == 2 + m.ps.n_params;
                CHECK_MSG(shapes_ok, "%s: logits, loss or torch32_rel missing or of the wrong size", name);
                const float *tr = shapes_ok ? t32->data : NULL;
                if (shapes_ok) {
                    judge(&v, "logits", worst_rel("logits", logits, rl->data, rl->n, -1),
                          norm_rel(logits, rl->data, rl->n), tr[0]);
                    judge(&v, "loss", worst_rel("loss", &loss, rloss->data, 1, -1), norm_rel(&loss, rloss->data, 1),
                          tr[1]);
                    for (int i = 0; i < m.ps.n_params; i++) {
                        const Tensor *t = &m.ps.p[i]->t;
                        CHECK(!strcmp(m.ps.p[i]->name, ref.ps.p[i]->name));
                        judge(&v, m.ps.p[i]->name, worst_rel(m.ps.p[i]->name, t->grad, ref.ps.p[i]->t.data, t->n, -1),
                              norm_rel(t->grad, ref.ps.p[i]->t.data, t->n), tr[2 + i]);
                    }
                }
                CHECK_MSG(shapes_ok && v.n_fail == 0, "%s: %d of %d tensors fail", name, v.n_fail, v.n);
                printf("  %-8s B=%d R=%d T=%d loss %.6f: logits, loss, %d gradients: worst rel %.2g (%s), %d tensors "
                       "above 1e-4 (float32 PyTorch: worst %.2g); worst normwise rel %.2g (%s)\n", name, b.B, b.R,
                       b.T, (double)loss, m.ps.n_params, v.worst, v.where, v.n_over, v.worst_torch, v.worst_norm,
                       v.where_norm);
            } else {
                CHECK(0);
            }
            student_free(&ref);
        }
        student_free(&m);
    }
    free(logits);
    golden_free(&c);
}

/* ---------------------------------------------------------------- nano: a summary */

/* The name of parameter i in the '\n'-joined blob. */
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

static void nano_case(const char *dir, const char *name, Student *m) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s.vgd", dir, name);
    GoldenCase c;
    int rc = golden_load(path, &c);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (rc) return;
    Batch b;
    const GoldenArray *pn = need(&c, "param_names", GOLDEN_U8), *li = need(&c, "logit_idx", GOLDEN_I32),
                      *lv = need(&c, "logit_val", GOLDEN_F32), *lr = need(&c, "logit_rms", GOLDEN_F32),
                      *gn = need(&c, "grad_norm", GOLDEN_F32), *wn = need(&c, "weight_norm", GOLDEN_F32),
                      *si = need(&c, "sample_idx", GOLDEN_I32), *gv = need(&c, "grad_val", GOLDEN_F32),
                      *wv = need(&c, "weight_val", GOLDEN_F32), *rloss = need(&c, "loss", GOLDEN_F32);
    int ok = batch_from_case(&c, &m->cfg, &b) && pn && li && lv && lr && gn && wn && si && gv && wv && rloss &&
             (int)gn->n == m->ps.n_params && (int)wn->n == m->ps.n_params && si->n == 2 * gv->n &&
             wv->n == gv->n && lv->n == li->n;
    CHECK_MSG(ok, "%s: bad or missing arrays (or not %d parameters)", path, m->ps.n_params);
    float *logits = NULL, loss = 0;
    Tensor **p = calloc((size_t)m->ps.n_params, sizeof *p);
    /* The golden's parameter order by name, and our weights against its weights: a
     * different init (nn/init.c changed) would make every comparison below meaningless. */
    for (int i = 0; ok && i < m->ps.n_params; i++) {
        char pname[NN_NAME_MAX];
        ok = p && blob_name(pn, i, pname) && (p[i] = params_get(&m->ps, pname)) != NULL;
        CHECK_MSG(ok, "%s: parameter %d of the golden is not in the model", name, i);
        if (!ok) break;
        double ss = 0;
        for (size_t j = 0; j < p[i]->n; j++) ss += (double)p[i]->data[j] * p[i]->data[j];
        float norm = (float)sqrt(ss);
        ok = fabs(norm - ((float *)wn->data)[i]) <= 1e-5 * fabs(((float *)wn->data)[i]);
        CHECK_MSG(ok, "%s: weight norm of %s is %g, the golden's %g: student_init changed? regenerate with "
                  "tests/ref/model.py", name, pname, (double)norm, (double)((float *)wn->data)[i]);
    }
    const int32_t *idx = si->data;
    for (size_t s = 0; ok && s < gv->n; s++) {
        int pi = idx[2 * s], j = idx[2 * s + 1];
        ok = pi >= 0 && pi < m->ps.n_params && j >= 0 && (size_t)j < p[pi]->n &&
             p[pi]->data[j] == ((float *)wv->data)[s];
        CHECK_MSG(ok, "%s: sampled weight %zu differs from the golden", name, s);
    }
    if (ok && run_student(m, &b, &logits, &loss)) {
        const GoldenArray *t32 = need(&c, "torch32_rel", GOLDEN_F32);
        int shapes_ok = t32 && (int)t32->n == 2 + m->ps.n_params;
        CHECK_MSG(shapes_ok, "%s: torch32_rel missing or of the wrong size", name);
        const float *tr = shapes_ok ? t32->data : NULL;
        Verdict v = {0};
        const int32_t *lidx = li->data;
        size_t nlog = (size_t)b.B * b.T * m->cfg.vocab;
        float *ours = malloc(li->n * sizeof(float));
        for (size_t s = 0; ours && s < li->n; s++) ours[s] = (size_t)lidx[s] < nlog ? logits[lidx[s]] : NAN;
        if (ours && tr) {
            judge(&v, "logits (sampled)", worst_rel("logits", ours, lv->data, li->n, 0.01 * ((float *)lr->data)[0]),
                  norm_rel(ours, lv->data, li->n), tr[0]);
            judge(&v, "loss", worst_rel("loss", &loss, rloss->data, 1, -1), norm_rel(&loss, rloss->data, 1), tr[1]);
            /* per parameter: its gradient norm and its sampled elements (contiguous in the
             * sample list, in parameter order) */
            size_t s = 0;
            for (int i = 0; i < m->ps.n_params; i++) {
                double ss = 0;
                for (size_t j = 0; j < p[i]->n; j++) ss += (double)p[i]->grad[j] * p[i]->grad[j];
                float ours_n = (float)sqrt(ss);
                double e = worst_rel("norm", &ours_n, (float *)gn->data + i, 1, -1);
                double ne = norm_rel(&ours_n, (float *)gn->data + i, 1);
                double rms = ((float *)gn->data)[i] / sqrt((double)p[i]->n);
                size_t s0 = s;
                float *mine = malloc(gv->n * sizeof(float));
                for (; mine && s < gv->n && idx[2 * s] == i; s++) {
                    mine[s - s0] = p[i]->grad[idx[2 * s + 1]];
                    double es = worst_rel("element", &mine[s - s0], (float *)gv->data + s, 1, 0.01 * rms);
                    if (!(es <= e)) e = es;
                }
                if (mine && s > s0) {
                    double nes = norm_rel(mine, (float *)gv->data + s0, s - s0);
                    if (!(nes <= ne)) ne = nes;
                }
                free(mine);
                char what[NN_NAME_MAX + 16] = "grad ";
                blob_name(pn, i, what + 5);
                judge(&v, what, e, ne, tr[2 + i]);
            }
            CHECK_MSG(s == gv->n, "%s: the sampled elements are not grouped by parameter", name);
        }
        free(ours);
        CHECK_MSG(ours && tr && v.n_fail == 0, "%s: %d of %d tensors fail", name, v.n_fail, v.n);
        printf("  %-8s B=%d R=%d T=%d loss %.6f: %zu sampled logits, %d gradient norms + %zu sampled gradient "
               "elements: worst rel %.2g (%s), %d tensors above 1e-4 (float32 PyTorch: worst %.2g); worst normwise "
               "rel %.2g (%s)\n", name, b.B, b.R, b.T, (double)loss, li->n, m->ps.n_params, gv->n, v.worst, v.where,
               v.n_over, v.worst_torch, v.worst_norm, v.where_norm);
    } else if (ok) {
        CHECK(0);
    }
    free(p);
    free(logits);
    golden_free(&c);
}

static void test_student_matches_pytorch(void) {
    GoldenManifest man;
    const char *dir = golden_dir();
    int rc = golden_manifest_load(dir, &man);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (rc) return;
    int n_tiny = 0, n_nano = 0;
    Student nano;
    ModelConfig nc;
    int have_nano = model_config_named("nano", &nc) == VCM_OK && student_init(&nano, &nc, MODEL_SEED) == VCM_OK;
    CHECK(have_nano);
    for (int i = 0; i < man.n; i++) {
        if (!strncmp(man.names[i], "tiny_", 5)) { tiny_case(dir, man.names[i], 0, MENTION_RAW); n_tiny++; }
        else if (!strncmp(man.names[i], "tinypx_", 7)) { tiny_case(dir, man.names[i], 4, MENTION_RAW); n_tiny++; }
        else if (!strncmp(man.names[i], "tinypxn_", 8)) { tiny_case(dir, man.names[i], 4, MENTION_NORM); n_tiny++; }
        else if (!strncmp(man.names[i], "nano_", 5) && have_nano) { nano_case(dir, man.names[i], &nano); n_nano++; }
        else CHECK_MSG(0, "unknown case %s", man.names[i]);
    }
    CHECK(n_tiny >= 4 && n_nano >= 2);
    if (have_nano) student_free(&nano);
    golden_manifest_free(&man);
}

/* Padding region slots must not matter: garbage boxes there change nothing. */
static void test_padded_region_slots_do_not_matter(void) {
    ModelConfig cfg = tiny_config(4, MENTION_NORM);
    Student m;
    if (student_init(&m, &cfg, 7)) { CHECK(0); return; }
    enum { B = 2, R = 3, T = 5 };
    static float images[B * 3 * 32 * 32];
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) images[i] = (float)((i * 37 % 101) / 50.0 - 1);
    float boxes[B * R * 4] = {1, 2, 20, 25, 5, 5, 9, 30, 0, 0, 0, 0, 3, 3, 28, 28, 0, 0, 0, 0, 0, 0, 0, 0};
    int nreg[B] = {2, 1};
    int32_t tokens[B * T] = {1, 40, 3, 50, 60, 1, 4, 70, 0, 0}, targets[B * T] = {40, 3, 50, 60, 2, 4, 70, 2, -1, -1};
    Batch b = {B, images, R, boxes, nreg, T, tokens, targets};
    float *l1 = NULL, *l2 = NULL, loss1 = 0, loss2 = 0;
    CHECK(run_student(&m, &b, &l1, &loss1));
    float g1 = m.ps.grads[0];
    for (int i = 0; i < B * R; i++)
        if (i % R >= nreg[i / R]) for (int j = 0; j < 4; j++) boxes[4 * i + j] = (float)(-50 + 37 * j + 11 * i);
    CHECK(run_student(&m, &b, &l2, &loss2));
    CHECK(l1 && l2 && !memcmp(l1, l2, (size_t)B * T * cfg.vocab * sizeof(float)));
    CHECK(loss1 == loss2 && g1 == m.ps.grads[0]);
    free(l1);
    free(l2);
    student_free(&m);
}

static int export_weights(const char *dir) {
    const char *names[4] = {"tiny", "tinypx", "tinypxn", "nano"};
    for (int i = 0; i < 4; i++) {
        ModelConfig c;
        Student m;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, names[i]);
        if (config_of(names[i], &c) || student_init(&m, &c, MODEL_SEED)) return fprintf(stderr, "%s\n", vcm_error()), 1;
        int rc = safetensors_save(path, &m.ps, NULL);
        student_free(&m);
        if (rc) return fprintf(stderr, "%s\n", vcm_error()), 1;
        fprintf(stderr, "wrote %s\n", path);
    }
    return 0;
}

/* The config fields the goldens depend on, and how checkpoints from before them load:
 * without "mention" a mention carries the raw v_k, without "region_id_scale" region
 * tokens carry the plain id row (issue 13); a scale out of range is refused by name. */
static void test_config_fields_and_older_checkpoints(void) {
    ModelConfig nano, back;
    CHECK(model_config_named("nano", &nano) == VCM_OK);
    CHECK(nano.mention == MENTION_NORM && nano.region_id_scale == MODEL_REGION_ID_SCALE);
    char json[512];
    CHECK(model_config_to_json(&nano, json, sizeof json) == VCM_OK);
    CHECK_STR_CONTAINS(json, "\"region_id_scale\":4");
    CHECK(model_config_from_json(json, &back) == VCM_OK && !memcmp(&back, &nano, sizeof back));
    const char *old = "{\"name\":\"nano\",\"image\":64,\"patch\":8,\"vit_d\":128,\"vit_layers\":4,"
                      "\"vit_heads\":4,\"dec_d\":128,\"dec_layers\":4,\"dec_heads\":4,\"vocab\":2048,"
                      "\"max_text\":64,\"region_input\":\"roi\",\"roi_pixels\":8}";
    CHECK(model_config_from_json(old, &back) == VCM_OK);
    CHECK(back.mention == MENTION_RAW && back.region_id_scale == 1 && back.roi_pixels == 8);
    char bad[600];
    snprintf(bad, sizeof bad, "%.*s,\"region_id_scale\":65}", (int)strlen(old) - 1, old);
    CHECK(model_config_from_json(bad, &back) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "region_id_scale");
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--export-weights")) return export_weights(argv[2]);
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--export-weights DIR]\n", argv[0]);
        return 2;
    }
    RUN(test_student_matches_pytorch);
    RUN(test_padded_region_slots_do_not_matter);
    RUN(test_config_fields_and_older_checkpoints);
    return test_summary();
}
