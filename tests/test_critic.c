/* The critic's model and metrics (model/critic.c, train/critic_train.c): a finite-
 * difference check of the loss's gradients on a tiny config, the trunk equal to the
 * student's, padding that cannot matter, checkpoints that say what they hold, the
 * trunk copied from a student, and ROC-AUC on cases with known answers. */
#include "tests/test.h"
#include "train/train.h"

#include <unistd.h>

static ModelConfig tiny(void) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny");
    c.image = 16, c.patch = 8;
    c.vit_d = 8, c.vit_layers = 1, c.vit_heads = 2;
    c.dec_d = 8, c.dec_layers = 2, c.dec_heads = 2;
    c.vocab = 40, c.max_text = 8;
    c.region_input = REGION_INPUT_ROI;
    c.roi_pixels = 2;
    return c;
}

enum { B = 3, R = 2, T = 6 };
typedef struct Fixture {
    float images[B * 3 * 16 * 16];
    float boxes[B * R * 4];
    int nreg[B];
    int32_t tokens[B * T], targets[B * T], labels[B];
    Batch b;
} Fixture;

static void fixture(Fixture *f) {
    uint64_t s = 42;
    for (size_t i = 0; i < sizeof f->images / sizeof f->images[0]; i++) f->images[i] = (float)(2 * vcm_rng_uniform(&s) - 1);
    const float bx[B * R * 4] = {1, 2, 12, 14, 4, 0, 16, 9, 0, 0, 8, 8, 0, 0, 0, 0, 3, 3, 15, 15, 0, 0, 0, 0};
    memcpy(f->boxes, bx, sizeof bx);
    const int nr[B] = {2, 1, 1};
    memcpy(f->nreg, nr, sizeof nr);
    /* lengths 6, 4, 3: the rest is padding with target -1; [0] = 3, [1] = 4 mentioned */
    const int32_t tok[B * T] = {1, 3, 20, 4, 30, 11, 1, 3, 25, 9, 0, 0, 1, 17, 3, 0, 0, 0};
    const int32_t tgt[B * T] = {3, 20, 4, 30, 11, 2, 3, 25, 9, 2, -1, -1, 17, 3, 2, -1, -1, -1};
    memcpy(f->tokens, tok, sizeof tok);
    memcpy(f->targets, tgt, sizeof tgt);
    f->labels[0] = CRITIC_ACCEPT, f->labels[1] = CRITIC_REJECT, f->labels[2] = CRITIC_ACCEPT;
    f->b = (Batch){B, f->images, R, f->boxes, f->nreg, T, f->tokens, f->targets};
}

static double loss_of(Critic *c, Graph *g, const Fixture *f) {
    graph_reset(g);
    Tensor *l = critic_loss(g, c, &f->b, f->labels);
    return l ? (double)l->data[0] : NAN;
}

/* Finite differences along three directions per parameter tensor: its largest
 * gradient element alone, sign(grad) over the whole tensor and a random ±1 direction,
 * each of unit length, against the analytic directional derivative grad·v. Central
 * differences with Richardson extrapolation (4·D(h) − D(2h)) / 3, h = 4e-3: this tiny
 * random model is strongly curved along some biases (third derivatives in the
 * hundreds), which a plain quotient mistakes for a wrong gradient. The forward is
 * float32 and the loss about 2 (critic.lm's NLL path is on), so the quotient carries
 * rounding of about ulp(2) / h ≈ 6e-5. Tolerance 2% of the value + 1e-4. Single small
 * elements sit near that floor; whole-tensor directions are far above it (counted). */
#define H 4e-3
static double central(Critic *c, Graph *g, const Fixture *f, Tensor *t, const float *w0, const float *v, double h) {
    for (size_t i = 0; i < t->n; i++) t->data[i] = (float)(w0[i] + h * v[i]);
    double lp = loss_of(c, g, f);
    for (size_t i = 0; i < t->n; i++) t->data[i] = (float)(w0[i] - h * v[i]);
    double lm = loss_of(c, g, f);
    memcpy(t->data, w0, sizeof(float) * t->n);
    return (lp - lm) / (2 * h);
}

static void test_gradcheck_tiny(void) {
    ModelConfig cfg = tiny();
    Critic c;
    if (critic_init(&c, &cfg, 5)) { CHECK(0); return; }
    c.lm.w->data[0] = 0.7f, c.lm.w->data[1] = -0.4f;   /* so the NLL path reaches the trunk */
    Fixture f;
    fixture(&f);
    Graph g;
    CHECK(graph_init(&g, 1 << 20) == VCM_OK);
    params_zero_grad(&c.s.ps);
    Tensor *l = critic_loss(&g, &c, &f.b, f.labels);
    CHECK(l && graph_backward(&g, l) == VCM_OK);
    g.grad_enabled = 0;
    int checked = 0, bad = 0, meaningful = 0;
    uint64_t s = 7;
    for (int i = 0; i < c.s.ps.n_params; i++) {
        Tensor *t = &c.s.ps.p[i]->t;
        float *w0 = malloc(sizeof(float) * t->n), *v = malloc(sizeof(float) * t->n);
        if (!w0 || !v) { CHECK(0); free(w0); free(v); break; }
        memcpy(w0, t->data, sizeof(float) * t->n);
        size_t big = 0;
        for (size_t j = 1; j < t->n; j++)
            if (fabsf(t->grad[j]) > fabsf(t->grad[big])) big = j;
        for (int k = 0; k < 3; k++) {
            double ana = 0;
            float unit = k == 0 ? 1.0f : 1.0f / sqrtf((float)t->n);   /* |v| = 1 */
            for (size_t j = 0; j < t->n; j++) {
                v[j] = k == 0 ? (j == big) : k == 1 ? (t->grad[j] >= 0 ? unit : -unit)
                                                    : (vcm_rng_next(&s) >> 63 ? unit : -unit);
                ana += (double)t->grad[j] * v[j];
            }
            double num = (4 * central(&c, &g, &f, t, w0, v, H) - central(&c, &g, &f, t, w0, v, 2 * H)) / 3;
            checked++;
            meaningful += fabs(num) > 2e-3;
            if (!(fabs(num - ana) <= 0.02 * fabs(num) + 1e-4)) {
                bad++;
                fprintf(stderr, "  %s, direction %s: analytic %.6g numeric %.6g\n", c.s.ps.p[i]->name,
                        k == 0 ? "largest element" : k == 1 ? "sign(grad)" : "random", ana, num);
            }
        }
        free(w0);
        free(v);
    }
    CHECK_MSG(bad == 0, "%d of %d directional derivatives disagree with finite differences", bad, checked);
    CHECK(checked == 3 * c.s.ps.n_params);
    CHECK_MSG(meaningful >= c.s.ps.n_params, "only %d derivatives above 2e-3", meaningful);
    printf("  %d directional derivatives against central differences, %d of them above 2e-3\n", checked, meaningful);
    graph_free(&g);
    critic_free(&c);
}

/* The head is added to the student's store: the trunk's values are student_init's. */
static void test_trunk_equals_student(void) {
    ModelConfig cfg = tiny();
    Critic c;
    Student s;
    if (critic_init(&c, &cfg, 9) || student_init(&s, &cfg, 9)) { CHECK(0); return; }
    CHECK(c.s.ps.n_params == s.ps.n_params + 3);
    for (int i = 0; i < s.ps.n_params; i++) {
        Tensor *a = params_get(&c.s.ps, s.ps.p[i]->name), *b = &s.ps.p[i]->t;
        CHECK(a && a->n == b->n && !memcmp(a->data, b->data, sizeof(float) * b->n));
    }
    CHECK(params_get(&c.s.ps, "critic.head.weight") && params_get(&c.s.ps, "critic.head.bias"));
    CHECK(c.lm.w && c.lm.w->data[0] == 0 && c.lm.w->data[1] == 0);   /* from scratch: 0 */
    /* a student's trunk copied in (different seed): every shared value equal */
    Student s2;
    if (student_init(&s2, &cfg, 10)) { CHECK(0); return; }
    CHECK(critic_init_from_student(&c, &s2) == VCM_OK);
    for (int i = 0; i < s2.ps.n_params; i++) {
        Tensor *a = params_get(&c.s.ps, s2.ps.p[i]->name), *b = &s2.ps.p[i]->t;
        CHECK(a && !memcmp(a->data, b->data, sizeof(float) * b->n));
    }
    CHECK(c.lm.w->data[CRITIC_REJECT] == CRITIC_LM_INIT && c.lm.w->data[CRITIC_ACCEPT] == -CRITIC_LM_INIT);
    ModelConfig other = cfg;
    other.dec_layers = 1;
    Student s3;
    if (student_init(&s3, &other, 1) == VCM_OK) {
        CHECK(critic_init_from_student(&c, &s3) == VCM_EINPUT);
        CHECK_STR_CONTAINS(vcm_error(), "differs");
        student_free(&s3);
    }
    student_free(&s2);
    student_free(&s);
    critic_free(&c);
}

/* Padding positions (target -1) are not pooled, and causal attention keeps them from
 * the real ones: any token there leaves the logits as they were. */
static void test_padding_does_not_matter(void) {
    ModelConfig cfg = tiny();
    Critic c;
    if (critic_init(&c, &cfg, 3)) { CHECK(0); return; }
    Fixture f;
    fixture(&f);
    Graph g;
    CHECK(graph_init(&g, 1 << 20) == VCM_OK);
    g.grad_enabled = 0;
    float a[2 * B], b[2 * B];
    Tensor *l = critic_logits(&g, &c, &f.b);
    CHECK(l && l->n == 2 * B);
    if (l) memcpy(a, l->data, sizeof a);
    for (int i = 0; i < B * T; i++)
        if (f.targets[i] < 0) f.tokens[i] = 30 + i % 7;
    graph_reset(&g);
    l = critic_logits(&g, &c, &f.b);
    if (l) memcpy(b, l->data, sizeof b);
    CHECK(l && !memcmp(a, b, sizeof a));
    /* while a real token does change them */
    f.tokens[1] = 25;
    graph_reset(&g);
    l = critic_logits(&g, &c, &f.b);
    CHECK(l && l->data[0] != a[0]);
    double p[B];
    if (l) critic_probs(l, p);
    for (int i = 0; i < B; i++) CHECK(p[i] > 0 && p[i] < 1);
    /* labels other than 0/1 are refused */
    f.labels[1] = 2;
    graph_reset(&g);
    CHECK(critic_loss(&g, &c, &f.b, f.labels) == NULL);
    graph_free(&g);
    critic_free(&c);
}

static void test_checkpoint_kinds(void) {
    ModelConfig cfg = tiny();
    Critic c, back;
    Student s, sb;
    char dir[] = "/tmp/vcm-critic-test-XXXXXX";
    if (!mkdtemp(dir) || critic_init(&c, &cfg, 4) || student_init(&s, &cfg, 4)) { CHECK(0); return; }
    char cp[256], sp[256], kind[32];
    snprintf(cp, sizeof cp, "%s/c.vcm", dir);
    snprintf(sp, sizeof sp, "%s/s.vcm", dir);
    c.s.tokenizer_text = strdup("tokenizer text");
    CHECK(critic_save(cp, &c, NULL) == VCM_OK);
    CHECK(student_save(sp, &s, NULL) == VCM_OK);
    CHECK(model_checkpoint_kind(cp, kind, sizeof kind) == VCM_OK && !strcmp(kind, "critic"));
    CHECK(model_checkpoint_kind(sp, kind, sizeof kind) == VCM_OK && !strcmp(kind, "student"));
    CHECK(critic_load(cp, &back, NULL) == VCM_OK);
    CHECK(back.s.ps.n == c.s.ps.n && !memcmp(back.s.ps.params, c.s.ps.params, sizeof(float) * c.s.ps.n));
    CHECK(back.s.tokenizer_text && !strcmp(back.s.tokenizer_text, "tokenizer text"));
    critic_free(&back);
    CHECK(critic_load(sp, &back, NULL) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "a student checkpoint, not a critic");
    CHECK(student_load(cp, &sb, NULL) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "a critic checkpoint, not a student");
    unlink(cp);
    unlink(sp);
    rmdir(dir);
    student_free(&s);
    critic_free(&c);
}

static void test_roc_auc(void) {
    double s[6] = {0.9, 0.8, 0.7, 0.3, 0.2, 0.1};
    signed char y[6] = {1, 1, 1, 0, 0, 0};
    CHECK_NEAR(critic_roc_auc(s, y, 6), 1.0, 1e-12);
    signed char r[6] = {0, 0, 0, 1, 1, 1};
    CHECK_NEAR(critic_roc_auc(s, r, 6), 0.0, 1e-12);
    /* one inversion among 3 x 3 pairs: 8/9 */
    signed char m[6] = {1, 1, 0, 1, 0, 0};
    CHECK_NEAR(critic_roc_auc(s, m, 6), 8.0 / 9.0, 1e-12);
    /* all tied: 0.5; labels other than 0/1 skipped; one class only: NaN */
    double t[4] = {0.5, 0.5, 0.5, 0.5};
    signed char u[4] = {1, 0, -1, 0};
    CHECK_NEAR(critic_roc_auc(t, u, 4), 0.5, 1e-12);
    signed char one[3] = {1, 1, -1};
    CHECK(isnan(critic_roc_auc(s, one, 3)));
}

int main(void) {
    vcm_threads_init(1);
    RUN(test_gradcheck_tiny);
    RUN(test_trunk_equals_student);
    RUN(test_padding_does_not_matter);
    RUN(test_checkpoint_kinds);
    RUN(test_roc_auc);
    return test_summary();
}
