/* The neural-net ops of tensor/: layernorm, GELU, softmax, attention, cross-entropy.
 * Forward against naive double-precision loops, backward by central finite differences
 * (tests/gradcheck.h), error paths, and bitwise identical results on 1 and 2 threads. */
#include "tensor/tensor.h"
#include "tests/gradcheck.h"
#include "tests/test.h"

#include <stdint.h>

static const int SIZES[] = {1, 3, 17, 65};
#define N_SIZES 4

/* max over elements of |a − b| / max(|b|, 1) */
static double max_rel(const float *a, const double *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = rel_err(a[i], b[i], 1.0);
        if (!(e <= w)) w = e; /* NaN counts as worst */
    }
    return w;
}

static Tensor *input(Graph *g, int ndim, const int *shape, float lo, float hi, int grad, unsigned long long *s) {
    Tensor *t = tensor_new(g, ndim, shape, grad);
    for (size_t i = 0; i < t->n; i++) t->data[i] = lo + (hi - lo) * 0.5f * (test_uniform(s) + 1.0f);
    return t;
}

/* ------------------------------------------------------------ layernorm */

static void ref_layernorm(double *y, const float *x, const float *w, const float *b, int R, int C, double eps) {
    for (int r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += x[r * C + j];
        m /= C;
        for (int j = 0; j < C; j++) v += (x[r * C + j] - m) * (x[r * C + j] - m);
        v /= C;
        for (int j = 0; j < C; j++) y[r * C + j] = (x[r * C + j] - m) / sqrt(v + eps) * w[j] + b[j];
    }
}

static void test_layernorm_forward(void) {
    unsigned long long s = 1;
    for (int a = 0; a < N_SIZES; a++)
        for (int c = 0; c < N_SIZES; c++) {
            Graph g;
            graph_init(&g, 1 << 20);
            int R = SIZES[a], C = SIZES[c];
            int sx[] = {R, C}, sw[] = {C};
            Tensor *x = input(&g, 2, sx, -3, 5, 0, &s), *w = input(&g, 1, sw, -2, 2, 0, &s);
            Tensor *b = input(&g, 1, sw, -1, 1, 0, &s);
            Tensor *y = op_layernorm(&g, x, w, b, 1e-5f);
            double *ref = malloc(x->n * sizeof *ref);
            ref_layernorm(ref, x->data, w->data, b->data, R, C, 1e-5);
            CHECK_MSG(y && max_rel(y->data, ref, y->n) < 2e-5, "R=%d C=%d err %g", R, C,
                      y ? max_rel(y->data, ref, y->n) : -1.0);
            free(ref);
            graph_free(&g);
        }
}

static Tensor *build_layernorm(Graph *g, Tensor **in, void *ctx) {
    (void)ctx;
    return op_layernorm(g, in[0], in[1], in[2], 1e-5f);
}

static void test_layernorm_grad(void) {
    unsigned long long s = 2;
    int shapes[][2] = {{1, 3}, {3, 17}, {17, 65}, {65, 3}, {2, 1}};
    for (int k = 0; k < 5; k++) {
        int sx[] = {shapes[k][0], shapes[k][1]}, sw[] = {shapes[k][1]};
        Tensor *in[3] = {gradcheck_input(2, sx, -2, 2, 1, &s), gradcheck_input(1, sw, -1.5f, 1.5f, 1, &s),
                         gradcheck_input(1, sw, -1, 1, 1, &s)};
        CHECK_MSG(gradcheck(build_layernorm, NULL, in, 3, 1e-3, 3e-3), "shape %dx%d", sx[0], sx[1]);
        for (int i = 0; i < 3; i++) free(in[i]);
    }
    /* without weight and bias */
    int sx[] = {3, 17};
    Tensor *x = gradcheck_input(2, sx, -2, 2, 1, &s);
    Tensor *in[3] = {x, NULL, NULL};
    CHECK(gradcheck(build_layernorm, NULL, in, 1, 1e-3, 3e-3));
    free(x);
}

static void test_layernorm_bad_shape(void) {
    Graph g;
    graph_init(&g, 1 << 20);
    Tensor *x = tensor_2d(&g, 4, 8, 1), *w = tensor_1d(&g, 7, 1);
    CHECK(op_layernorm(&g, x, w, NULL, 1e-5f) == NULL);
    CHECK(g.failed);
    CHECK_STR_CONTAINS(vcm_error(), "layernorm");
    graph_free(&g);
}

/* ------------------------------------------------------------ gelu */

static void test_gelu_forward(void) {
    Graph g;
    graph_init(&g, 1 << 20);
    unsigned long long s = 3;
    int sh[] = {65, 17};
    Tensor *x = input(&g, 2, sh, -8, 8, 0, &s);
    x->data[0] = 0.0f;
    x->data[1] = -30.0f;
    x->data[2] = 30.0f;
    x->data[3] = 1e-6f;
    Tensor *y = op_gelu(&g, x);
    CHECK(y != NULL);
    double worst = 0;
    for (size_t i = 0; i < x->n; i++) {
        double v = x->data[i];
        double r = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        double e = fabs(y->data[i] - r) / (fabs(r) > 1e-3 ? fabs(r) : 1e-3);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst < 1e-5, "gelu max error %g", worst);
    CHECK(y->data[0] == 0.0f && y->data[2] == 30.0f && fabsf(y->data[1]) < 1e-30f);
    graph_free(&g);
}

static Tensor *build_gelu(Graph *g, Tensor **in, void *ctx) { (void)ctx; return op_gelu(g, in[0]); }

static void test_gelu_grad(void) {
    unsigned long long s = 4;
    for (int k = 0; k < N_SIZES; k++) {
        int sh[] = {3, SIZES[k]};
        Tensor *x = gradcheck_input(2, sh, -4, 4, 1, &s);
        CHECK_MSG(gradcheck(build_gelu, NULL, &x, 1, 1e-3, 3e-3), "cols %d", SIZES[k]);
        free(x);
    }
}

/* ------------------------------------------------------------ softmax */

static void test_softmax_forward(void) {
    unsigned long long s = 5;
    for (int a = 0; a < N_SIZES; a++)
        for (int c = 0; c < N_SIZES; c++) {
            Graph g;
            graph_init(&g, 1 << 20);
            int R = SIZES[a], C = SIZES[c], sh[] = {R, C};
            Tensor *x = input(&g, 2, sh, -20, 20, 0, &s);
            x->data[0] = 1000.0f; /* large values must not overflow */
            Tensor *y = op_softmax(&g, x);
            double *ref = malloc(x->n * sizeof *ref);
            for (int r = 0; r < R; r++) {
                double m = -INFINITY, z = 0;
                for (int j = 0; j < C; j++) m = fmax(m, x->data[r * C + j]);
                for (int j = 0; j < C; j++) z += exp(x->data[r * C + j] - m);
                for (int j = 0; j < C; j++) ref[r * C + j] = exp(x->data[r * C + j] - m) / z;
            }
            CHECK_MSG(y && max_rel(y->data, ref, y->n) < 1e-6, "R=%d C=%d err %g", R, C,
                      y ? max_rel(y->data, ref, y->n) : -1.0);
            free(ref);
            graph_free(&g);
        }
}

static Tensor *build_softmax(Graph *g, Tensor **in, void *ctx) { (void)ctx; return op_softmax(g, in[0]); }

static void test_softmax_grad(void) {
    unsigned long long s = 6;
    for (int k = 0; k < N_SIZES; k++) {
        int sh[] = {2, 3, SIZES[k]};
        Tensor *x = gradcheck_input(3, sh, -3, 3, 1, &s);
        CHECK_MSG(gradcheck(build_softmax, NULL, &x, 1, 1e-3, 3e-3), "cols %d", SIZES[k]);
        free(x);
    }
}

/* ------------------------------------------------------------ attention */

typedef struct {
    int H, causal;
    const uint8_t *kv;
    int q0; /* op_attention_from's first query (0: op_attention) */
} AttCtx;

/* out [B,T,D]; a row with no allowed key is 0. */
static void ref_attention(double *out, const float *qkv, int B, int T, int D, int H, int causal, const uint8_t *kv) {
    int hd = D / H;
    double sc = 1.0 / sqrt((double)hd);
    double *p = malloc((size_t)T * sizeof *p);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float *q = qkv + ((size_t)b * T + i) * 3 * D + h * hd;
                double m = -INFINITY;
                for (int j = 0; j < T; j++) {
                    const float *k = qkv + ((size_t)b * T + j) * 3 * D + D + h * hd;
                    int ok = (!causal || j <= i) && (!kv || kv[b * T + j]);
                    double s = 0;
                    for (int c = 0; c < hd; c++) s += (double)q[c] * k[c];
                    p[j] = ok ? s * sc : -INFINITY;
                    m = fmax(m, p[j]);
                }
                double *o = out + ((size_t)b * T + i) * D + h * hd;
                for (int c = 0; c < hd; c++) o[c] = 0;
                if (m == -INFINITY) continue;
                double z = 0;
                for (int j = 0; j < T; j++) z += (p[j] = exp(p[j] - m));
                for (int j = 0; j < T; j++) {
                    const float *v = qkv + ((size_t)b * T + j) * 3 * D + 2 * D + h * hd;
                    for (int c = 0; c < hd; c++) o[c] += p[j] / z * v[c];
                }
            }
    free(p);
}

/* key_valid pattern: batch 0 masks keys 0 and every third; the last batch masks all
 * keys (when B > 1): fully masked rows in both the causal and bidirectional cases. */
static uint8_t *make_kv(int B, int T) {
    uint8_t *kv = malloc((size_t)B * T);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) kv[b * T + t] = (B > 1 && b == B - 1) ? 0 : !(t == 0 || t % 3 == 2);
    return kv;
}

static void test_attention_forward(void) {
    unsigned long long s = 7;
    int cases[][3] = {{1, 1, 1}, {2, 3, 2}, {2, 17, 2}, {1, 65, 4}, {2, 65, 1}, {2, 33, 6}};
    int hds[] = {3, 16, 32, 64};
    for (int k = 0; k < 6; k++)
        for (int e = 0; e < 4; e++)
            for (int mode = 0; mode < 4; mode++) {
                int B = cases[k][0], T = cases[k][1], H = cases[k][2], D = H * hds[e];
                int causal = mode & 1;
                uint8_t *kv = mode & 2 ? make_kv(B, T) : NULL;
                Graph g;
                graph_init(&g, 1 << 20);
                int sh[] = {B, T, 3 * D};
                Tensor *qkv = input(&g, 3, sh, -2, 2, 0, &s);
                Tensor *y = op_attention(&g, qkv, H, causal, kv);
                double *ref = malloc((size_t)B * T * D * sizeof *ref);
                ref_attention(ref, qkv->data, B, T, D, H, causal, kv);
                double err = y ? max_rel(y->data, ref, y->n) : -1;
                CHECK_MSG(y && err < 2e-5, "B=%d T=%d H=%d hd=%d causal=%d kv=%d err %g", B, T, H, hds[e],
                          causal, kv != NULL, err);
                free(ref);
                free(kv);
                graph_free(&g);
            }
}

/* With a backward to come, P goes to the node's saved buffer instead of the scratch (a
 * different row stride): the output must not change by a bit, so that inference and
 * training see the same numbers. */
static void test_attention_forward_same_with_and_without_grad(void) {
    int cases[][5] = {{2, 37, 2, 24, 0}, {1, 65, 3, 32, 20}, {2, 17, 1, 64, 5}, {1, 33, 2, 16, 32}};
    for (int k = 0; k < 4; k++)
        for (int mode = 0; mode < 4; mode++) {
            int B = cases[k][0], T = cases[k][1], H = cases[k][2], D = H * cases[k][3], q0 = cases[k][4];
            uint8_t *kv = mode & 2 ? make_kv(B, T) : NULL;
            float *out[2] = {NULL, NULL};
            size_t n = 0;
            for (int grad = 0; grad < 2; grad++) {
                unsigned long long s = 11 + k;
                Graph g;
                graph_init(&g, 1 << 20);
                int sh[] = {B, T, 3 * D};
                Tensor *qkv = input(&g, 3, sh, -3, 3, grad, &s);
                Tensor *y = op_attention_from(&g, qkv, H, mode & 1, kv, q0);
                CHECK(y && g.n_nodes == grad);
                if (y) {
                    n = y->n;
                    out[grad] = malloc(n * sizeof(float));
                    memcpy(out[grad], y->data, n * sizeof(float));
                }
                graph_free(&g);
            }
            CHECK_MSG(out[0] && out[1] && !memcmp(out[0], out[1], n * sizeof(float)), "T=%d hd=%d q0=%d mode=%d", T,
                      cases[k][3], q0, mode);
            free(out[0]);
            free(out[1]);
            free(kv);
        }
}

static Tensor *build_attention(Graph *g, Tensor **in, void *ctx) {
    AttCtx *c = ctx;
    return c->q0 ? op_attention_from(g, in[0], c->H, c->causal, c->kv, c->q0) : op_attention(g, in[0], c->H, c->causal, c->kv);
}

static void test_attention_grad(void) {
    unsigned long long s = 8;
    int cases[][4] = {{1, 1, 1, 3}, {2, 3, 2, 3}, {2, 17, 2, 5}, {1, 17, 1, 16}, {1, 65, 2, 4}, {2, 5, 2, 17}};
    for (int k = 0; k < 6; k++)
        for (int mode = 0; mode < 4; mode++) {
            int B = cases[k][0], T = cases[k][1], H = cases[k][2], D = H * cases[k][3];
            AttCtx c = {H, mode & 1, mode & 2 ? make_kv(B, T) : NULL, 0};
            int sh[] = {B, T, 3 * D};
            Tensor *x = gradcheck_input(3, sh, -1.5f, 1.5f, 1, &s);
            CHECK_MSG(gradcheck(build_attention, &c, &x, 1, 1e-3, 3e-3), "B=%d T=%d H=%d hd=%d causal=%d kv=%d",
                      B, T, H, cases[k][3], c.causal, c.kv != NULL);
            free((void *)c.kv);
            free(x);
        }
}

/* Rows with no allowed key: zero output and zero gradient through q (and nothing from
 * them into k, v). */
static void test_attention_masked_rows(void) {
    unsigned long long s = 9;
    int B = 2, T = 5, H = 2, D = 8;
    uint8_t kv[10] = {0, 1, 1, 1, 1, 0, 0, 0, 0, 0};
    for (int causal = 0; causal < 2; causal++) {
        Graph g;
        graph_init(&g, 1 << 20);
        int sh[] = {B, T, 3 * D};
        Tensor *qkv = input(&g, 3, sh, -2, 2, 1, &s);
        Tensor *y = op_attention(&g, qkv, H, causal, kv);
        CHECK(y && y->grad);
        if (!y) { graph_free(&g); continue; }
        for (size_t i = 0; i < y->n; i++) y->grad[i] = 1.0f;
        for (int i = g.n_nodes - 1; i >= 0; i--) g.nodes[i].backward(&g.nodes[i]);
        int bad = 0;
        for (int t = 0; t < T; t++)
            for (int c = 0; c < 3 * D; c++) {
                float gv = qkv->grad[((size_t)1 * T + t) * 3 * D + c];
                if (gv != 0.0f) bad++;
                if (c < D && y->data[((size_t)1 * T + t) * D + c] != 0.0f) bad++;
            }
        if (causal) /* query 0 of batch 0 sees only key 0, which is masked */
            for (int c = 0; c < D; c++)
                if (y->data[c] != 0.0f || qkv->grad[c] != 0.0f) bad++;
        for (size_t i = 0; i < qkv->n; i++)
            if (!isfinite(qkv->grad[i])) bad++;
        CHECK_MSG(bad == 0, "causal=%d: %d nonzero or non-finite values", causal, bad);
        graph_free(&g);
    }
}

/* Queries q0 … T−1 only: the output rows equal (bit for bit: each row's scores, softmax
 * and P·V run the same instructions) rows q0 … of the full attention, and the gradient
 * is the full attention's with no upstream gradient on the rows before q0 (the sums of
 * dK, dV over query blocks group differently: close, not equal). */
static void test_attention_from_rows(void) {
    unsigned long long s = 10;
    int cases[][4] = {{2, 17, 2, 16}, {1, 65, 4, 32}, {3, 40, 2, 8}, {2, 5, 1, 3}};
    for (int k = 0; k < 4; k++)
        for (int mode = 0; mode < 4; mode++) {
            int B = cases[k][0], T = cases[k][1], H = cases[k][2], D = H * cases[k][3];
            int q0s[] = {1, T / 2, T - 1, T > 16 ? 16 : 2};
            for (int qi = 0; qi < 4; qi++) {
                int q0 = q0s[qi], Tq = T - q0, causal = mode & 1;
                uint8_t *kv = mode & 2 ? make_kv(B, T) : NULL;
                Graph g;
                graph_init(&g, 1 << 22);
                int sh[] = {B, T, 3 * D};
                Tensor *x1 = input(&g, 3, sh, -2, 2, 1, &s), *x2 = tensor_new(&g, 3, sh, 1);
                memcpy(x2->data, x1->data, x1->n * sizeof(float));
                Tensor *full = op_attention(&g, x1, H, causal, kv), *part = op_attention_from(&g, x2, H, causal, kv, q0);
                CHECK(full && part && part->shape[1] == Tq);
                if (!full || !part) { free(kv); graph_free(&g); continue; }
                int same = 1;
                for (int b = 0; b < B; b++)
                    same &= !memcmp(part->data + (size_t)b * Tq * D, full->data + ((size_t)b * T + q0) * D,
                                    (size_t)Tq * D * sizeof(float));
                for (int b = 0; b < B; b++)
                    for (int t = 0; t < T; t++)
                        for (int c = 0; c < D; c++) {
                            float gv = 0.01f * (float)((b * 131 + t * 17 + c * 7) % 23) - 0.1f;
                            full->grad[((size_t)b * T + t) * D + c] = t < q0 ? 0.0f : gv;
                            if (t >= q0) part->grad[((size_t)b * Tq + t - q0) * D + c] = gv;
                        }
                for (int i = g.n_nodes - 1; i >= 0; i--) g.nodes[i].backward(&g.nodes[i]);
                double err = 0, scale = 0;
                for (size_t i = 0; i < x1->n; i++) {
                    err = fmax(err, fabs((double)x1->grad[i] - x2->grad[i]));
                    scale = fmax(scale, fabs((double)x1->grad[i]));
                }
                CHECK_MSG(same && err <= 1e-6 * (scale > 1 ? scale : 1), "B=%d T=%d H=%d q0=%d causal=%d kv=%d: rows %s, grad err %g",
                          B, T, H, q0, causal, kv != NULL, same ? "equal" : "differ", err);
                free(kv);
                graph_free(&g);
            }
        }
}

static void test_attention_from_grad(void) {
    unsigned long long s = 11;
    int cases[][5] = {{1, 5, 1, 3, 2}, {2, 17, 2, 5, 9}, {1, 20, 2, 4, 16}, {2, 6, 2, 17, 5}};
    for (int k = 0; k < 4; k++)
        for (int mode = 0; mode < 4; mode++) {
            int B = cases[k][0], T = cases[k][1], H = cases[k][2], D = H * cases[k][3];
            AttCtx c = {H, mode & 1, mode & 2 ? make_kv(B, T) : NULL, cases[k][4]};
            int sh[] = {B, T, 3 * D};
            Tensor *x = gradcheck_input(3, sh, -1.5f, 1.5f, 1, &s);
            CHECK_MSG(gradcheck(build_attention, &c, &x, 1, 1e-3, 3e-3), "B=%d T=%d H=%d q0=%d causal=%d kv=%d", B, T,
                      H, c.q0, c.causal, c.kv != NULL);
            free((void *)c.kv);
            free(x);
        }
}

static void test_attention_bad_shape(void) {
    Graph g;
    graph_init(&g, 1 << 20);
    Tensor *x = tensor_3d(&g, 2, 4, 12, 1);
    CHECK(op_attention(&g, x, 3, 1, NULL) == NULL); /* D = 4 not divisible by 3 heads */
    CHECK_STR_CONTAINS(vcm_error(), "attention");
    graph_free(&g);
    graph_init(&g, 1 << 20);
    Tensor *y = tensor_3d(&g, 2, 4, 12, 1);
    CHECK(op_attention_from(&g, y, 2, 1, NULL, 4) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "first query 4 outside the 4 positions");
    graph_free(&g);
}

/* ------------------------------------------------------------ cross-entropy */

static void test_cross_entropy_forward(void) {
    unsigned long long s = 10;
    for (int a = 0; a < N_SIZES; a++)
        for (int c = 0; c < N_SIZES; c++) {
            Graph g;
            graph_init(&g, 1 << 20);
            int N = SIZES[a], V = SIZES[c], sh[] = {N, V};
            Tensor *x = input(&g, 2, sh, -10, 10, 0, &s);
            int32_t *t = malloc((size_t)N * sizeof *t);
            double total = 0;
            int count = 0;
            for (int r = 0; r < N; r++) {
                t[r] = r % 4 == 1 ? -100 : (int32_t)(test_rng_next(&s) % (unsigned)V);
                if (t[r] == -100) continue;
                double m = -INFINITY, z = 0;
                for (int j = 0; j < V; j++) m = fmax(m, x->data[r * V + j]);
                for (int j = 0; j < V; j++) z += exp(x->data[r * V + j] - m);
                total += m + log(z) - x->data[r * V + t[r]];
                count++;
            }
            double ref = count ? total / count : 0;
            Tensor *y = op_cross_entropy(&g, x, t, -100);
            CHECK_MSG(y && y->n == 1 && rel_err(y->data[0], ref, 1.0) < 1e-5, "N=%d V=%d: %g vs %g", N, V,
                      y ? y->data[0] : NAN, ref);
            free(t);
            graph_free(&g);
        }
}

typedef struct {
    const int32_t *t;
} CeCtx;

static Tensor *build_ce(Graph *g, Tensor **in, void *ctx) {
    return op_cross_entropy(g, in[0], ((CeCtx *)ctx)->t, -1);
}

static void test_cross_entropy_grad(void) {
    unsigned long long s = 11;
    int shapes[][2] = {{1, 1}, {3, 17}, {17, 3}, {5, 65}, {2, 1}};
    for (int k = 0; k < 5; k++) {
        int N = shapes[k][0], V = shapes[k][1], sh[] = {N, V};
        int32_t t[17];
        for (int r = 0; r < N; r++) t[r] = (r % 3 == 2) ? -1 : (int32_t)(test_rng_next(&s) % (unsigned)V);
        CeCtx c = {t};
        Tensor *x = gradcheck_input(2, sh, -3, 3, 1, &s);
        CHECK_MSG(gradcheck(build_ce, &c, &x, 1, 1e-3, 3e-3), "N=%d V=%d", N, V);
        free(x);
    }
}

static void test_cross_entropy_all_ignored(void) {
    Graph g;
    graph_init(&g, 1 << 20);
    unsigned long long s = 12;
    int sh[] = {3, 5};
    Tensor *x = input(&g, 2, sh, -1, 1, 1, &s);
    int32_t t[3] = {-100, -100, -100};
    Tensor *y = op_cross_entropy(&g, x, t, -100);
    CHECK(y && y->data[0] == 0.0f);
    CHECK(graph_backward(&g, y) == VCM_OK);
    int nz = 0;
    for (size_t i = 0; i < x->n; i++) nz += x->grad[i] != 0.0f;
    CHECK(nz == 0);
    graph_free(&g);
}

static void test_cross_entropy_bad_target(void) {
    Graph g;
    graph_init(&g, 1 << 20);
    Tensor *x = tensor_2d(&g, 3, 5, 1);
    int32_t t[3] = {0, 5, 1};
    CHECK(op_cross_entropy(&g, x, t, -100) == NULL);
    CHECK(g.failed);
    CHECK_STR_CONTAINS(vcm_error(), "target 5 of row 1");
    graph_free(&g);
    graph_init(&g, 1 << 20);
    x = tensor_2d(&g, 2, 5, 1);
    int32_t t2[2] = {-7, 1};
    CHECK(op_cross_entropy(&g, x, t2, -100) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "outside [0, 5)");
    graph_free(&g);
}

/* ------------------------------------------------------------ determinism */

/* Every op forward + backward on shapes large enough to go parallel; returns a malloc'd
 * copy of all outputs and input gradients (length in *n). */
static float *run_all(int threads, size_t *n) {
    vcm_threads_init(threads);
    Graph g;
    graph_init(&g, 1 << 22);
    unsigned long long s = 99;
    Tensor *res[18];
    int k = 0;
    int s1[] = {777, 65}, s1w[] = {65};
    Tensor *x = input(&g, 2, s1, -2, 2, 1, &s), *w = input(&g, 1, s1w, -1, 1, 1, &s), *b = input(&g, 1, s1w, -1, 1, 1, &s);
    res[k++] = op_layernorm(&g, x, w, b, 1e-5f);
    res[k++] = x; res[k++] = w; res[k++] = b;
    int s2[] = {333, 129};
    Tensor *x2 = input(&g, 2, s2, -4, 4, 1, &s);
    res[k++] = op_gelu(&g, x2); res[k++] = x2;
    Tensor *x3 = input(&g, 2, s2, -4, 4, 1, &s);
    res[k++] = op_softmax(&g, x3); res[k++] = x3;
    int s4[] = {3, 65, 3 * 64};
    uint8_t *kv = make_kv(3, 65);
    Tensor *q1 = input(&g, 3, s4, -2, 2, 1, &s), *q2 = input(&g, 3, s4, -2, 2, 1, &s);
    res[k++] = op_attention(&g, q1, 2, 1, NULL); res[k++] = q1;
    res[k++] = op_attention(&g, q2, 4, 0, kv); res[k++] = q2;
    Tensor *q3 = input(&g, 3, s4, -2, 2, 1, &s);
    res[k++] = op_attention_from(&g, q3, 2, 1, kv, 40); res[k++] = q3;
    int s5[] = {300, 257};
    Tensor *x5 = input(&g, 2, s5, -4, 4, 1, &s);
    int32_t t5[300];
    for (int r = 0; r < 300; r++) t5[r] = r % 5 == 0 ? -100 : (int32_t)(test_rng_next(&s) % 257);
    Tensor *ce = op_cross_entropy(&g, x5, t5, -100);
    res[k++] = ce; res[k++] = x5;
    /* Upstream gradients: fixed values (the outputs are res[0, 4, 6, 8, 10, 12]), then the tape. */
    int outs[] = {0, 4, 6, 8, 10, 12};
    for (int i = 0; i < 6; i++) {
        Tensor *o = res[outs[i]];
        for (size_t j = 0; j < o->n; j++) o->grad[j] = 0.25f * (float)((j * 7919) % 13) - 1.5f;
    }
    ce->grad[0] = 1.0f;
    for (int i = g.n_nodes - 1; i >= 0; i--) g.nodes[i].backward(&g.nodes[i]);
    size_t total = 0;
    for (int i = 0; i < k; i++) total += res[i]->n * (res[i]->grad ? 2 : 1);
    float *out = malloc(total * sizeof *out), *p = out;
    for (int i = 0; i < k; i++) {
        memcpy(p, res[i]->data, res[i]->n * sizeof *p);
        p += res[i]->n;
        if (res[i]->grad) { memcpy(p, res[i]->grad, res[i]->n * sizeof *p); p += res[i]->n; }
    }
    *n = total;
    free(kv);
    graph_free(&g);
    return out;
}

static void test_threads_bitwise(void) {
    size_t n1, n2;
    float *a = run_all(1, &n1), *b = run_all(2, &n2);
    CHECK(n1 == n2);
    CHECK(n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0);
    int bad = 0;
    for (size_t i = 0; i < n1; i++) bad += !isfinite(a[i]);
    CHECK(bad == 0);
    free(a);
    free(b);
}

/* ------------------------------------------------------------ row kernels
 * The one-row kernels inference uses (tensor.h) are the training ops' own code: the
 * same bits, row by row, at widths around the vector length. */
static void test_row_kernels_are_the_ops(void) {
    unsigned long long seed = 77;
    for (int si = 0; si < N_SIZES; si++) {
        int C = SIZES[si] * 7 + 3, R = 5;
        Graph g;
        graph_init(&g, 1 << 20);
        int sh[2] = {R, C}, sc[1] = {C};
        Tensor *x = input(&g, 2, sh, -3, 3, 0, &seed), *w = input(&g, 1, sc, 0.5f, 1.5f, 0, &seed);
        Tensor *b = input(&g, 1, sc, -1, 1, 0, &seed);
        Tensor *ln = op_layernorm(&g, x, w, b, 1e-5f), *sm = op_softmax(&g, x), *ge = op_gelu(&g, x);
        float *row = malloc(sizeof(float) * (size_t)C * R);
        int same_ln = 1, same_sm = 1;
        for (int r = 0; r < R; r++) {
            vcm_layernorm_row(row, x->data + (size_t)r * C, w->data, b->data, C, 1e-5f);
            same_ln &= !memcmp(row, ln->data + (size_t)r * C, sizeof(float) * (size_t)C);
            vcm_softmax_row(row, x->data + (size_t)r * C, C);
            same_sm &= !memcmp(row, sm->data + (size_t)r * C, sizeof(float) * (size_t)C);
        }
        vcm_gelu_span(row, x->data, (size_t)C * R);
        CHECK(same_ln);
        CHECK(same_sm);
        CHECK(!memcmp(row, ge->data, sizeof(float) * (size_t)C * R));
        free(row);
        graph_free(&g);
    }
}

int main(void) {
    /* One thread for the accuracy tests (cheap on a shared machine); the parallel paths
     * are pinned by test_threads_bitwise: bitwise equal to the 1-thread results. */
    vcm_threads_init(1);
    RUN(test_layernorm_forward);
    RUN(test_layernorm_grad);
    RUN(test_layernorm_bad_shape);
    RUN(test_gelu_forward);
    RUN(test_gelu_grad);
    RUN(test_softmax_forward);
    RUN(test_softmax_grad);
    RUN(test_attention_forward);
    RUN(test_attention_forward_same_with_and_without_grad);
    RUN(test_attention_grad);
    RUN(test_attention_masked_rows);
    RUN(test_attention_from_rows);
    RUN(test_attention_from_grad);
    RUN(test_attention_bad_shape);
    RUN(test_cross_entropy_forward);
    RUN(test_cross_entropy_grad);
    RUN(test_cross_entropy_all_ignored);
    RUN(test_cross_entropy_bad_target);
    RUN(test_threads_bitwise);
    RUN(test_row_kernels_are_the_ops);
    return test_summary();
}
