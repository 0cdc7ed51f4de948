/* The basic ops: add/sub/mul/scale, matmul, linear, embedding, concat/slice along the
 * sequence, mean, patches. For each: forward against a naive loop, backward by central
 * finite differences (tests/gradcheck.h), failures with a useful message, and bitwise
 * identical results with 1 and 2 threads. */
#include "tensor/op_matmul.h"
#include "tensor/tensor.h"
#include "tests/gradcheck.h"
#include "tests/test.h"

#include <cblas.h>
#include <stdlib.h>
#include <unistd.h>

/* Every op here is linear in each input element (mul and matmul are bilinear), so a
 * central difference is exact up to rounding whatever the step: a large step keeps
 * the rounding small and the tolerance tight. */
#define GC_H 0.0625
#define GC_TOL 1e-3

static unsigned long long seed_ = 12345;

static Tensor *rand_in(int ndim, const int *shape, int with_grad) {
    return gradcheck_input(ndim, shape, -1.0f, 1.0f, with_grad, &seed_);
}

static Tensor *rand_graph(Graph *g, int ndim, const int *shape, int with_grad, unsigned long long *s) {
    Tensor *t = tensor_new(g, ndim, shape, with_grad);
    if (t)
        for (size_t i = 0; i < t->n; i++) t->data[i] = test_uniform(s);
    return t;
}

/* max |a - b| / max(1, |b|) */
static double max_err(const float *a, const double *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - b[i]) / (fabs(b[i]) > 1 ? fabs(b[i]) : 1);
        if (e > w || e != e) w = e != e ? 1e30 : e;
    }
    return w;
}

static void free_all(Tensor **t, int n) {
    for (int i = 0; i < n; i++) free(t[i]);
}

/* ------------------------------------------------------------------ elementwise */

typedef struct { int kind; float s; } EwCtx;

static Tensor *build_ew(Graph *g, Tensor **in, void *ctx) {
    EwCtx *c = ctx;
    switch (c->kind) {
    case 0: return op_add(g, in[0], in[1]);
    case 1: return op_sub(g, in[0], in[1]);
    case 2: return op_mul(g, in[0], in[1]);
    default: return op_scale(g, in[0], c->s);
    }
}

static void test_elementwise_forward_and_grad(void) {
    /* (a shape, b ndim): b is a's shape or a suffix of it. */
    int shapes[][4] = {{3, 17, 5, 0}, {1, 65, 0, 0}, {2, 3, 17, 0}, {17, 0, 0, 0}};
    int ndims[] = {3, 2, 3, 1};
    for (int si = 0; si < 4; si++) {
        int nd = ndims[si];
        for (int bnd = 1; bnd <= nd; bnd++) {
            for (int kind = 0; kind < 4; kind++) {
                Tensor *in[2];
                in[0] = rand_in(nd, shapes[si], 1);
                in[1] = rand_in(bnd, shapes[si] + (nd - bnd), kind < 3);
                EwCtx c = {kind, -1.75f};
                Graph g;
                graph_init(&g, 1 << 20);
                Tensor *out = build_ew(&g, in, &c);
                CHECK(out && tensor_same_shape(out, in[0]));
                if (out) {
                    size_t nb = in[1]->n;
                    double *ref = malloc(out->n * sizeof *ref);
                    for (size_t i = 0; i < out->n; i++) {
                        double a = in[0]->data[i], b = in[1]->data[i % nb];
                        /* one float operation: the exact double result rounded once */
                        ref[i] = (float)(kind == 0 ? a + b : kind == 1 ? a - b : kind == 2 ? a * b : -1.75 * a);
                    }
                    CHECK_MSG(max_err(out->data, ref, out->n) == 0, "kind %d shape %d bnd %d", kind, si, bnd);
                    free(ref);
                }
                graph_free(&g);
                CHECK_MSG(gradcheck(build_ew, &c, in, kind < 3 ? 2 : 1, GC_H, GC_TOL), "kind %d shape %d bnd %d",
                          kind, si, bnd);
                free_all(in, 2);
            }
        }
    }
}

static void test_mul_same_tensor_twice(void) {
    /* x·x: both gradients land in the same buffer: d(x²) = 2x. */
    int s[] = {17};
    Tensor *in[1] = {rand_in(1, s, 1)};
    Graph g;
    graph_init(&g, 1 << 16);
    Tensor *y = op_mul(&g, in[0], in[0]);
    memset(in[0]->grad, 0, 17 * sizeof(float));
    for (size_t i = 0; i < y->n; i++) y->grad[i] = 1;
    g.nodes[0].backward(&g.nodes[0]);
    for (int i = 0; i < 17; i++) CHECK_NEAR(in[0]->grad[i], 2 * in[0]->data[i], 1e-6);
    graph_free(&g);
    free(in[0]);
}

/* ------------------------------------------------------------------ matmul */

typedef struct { int ta, tb; } MmCtx;

static Tensor *build_mm(Graph *g, Tensor **in, void *ctx) {
    MmCtx *c = ctx;
    return op_matmul(g, in[0], in[1], c->ta, c->tb);
}

/* Naive: c[batch, M, N] in double. */
static void naive_matmul(double *c, const Tensor *a, const Tensor *b, int ta, int tb, int M, int N, int K,
                         int batch) {
    int shared = b->ndim == 2;
    for (int i = 0; i < batch; i++)
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = 0;
                const float *A = a->data + (size_t)i * M * K, *B = b->data + (shared ? 0 : (size_t)i * K * N);
                for (int k = 0; k < K; k++) {
                    double av = ta ? A[k * M + m] : A[m * K + k];
                    double bv = tb ? B[n * K + k] : B[k * N + n];
                    s += av * bv;
                }
                c[((size_t)i * M + m) * N + n] = s;
            }
}

static void test_matmul_forward_and_grad(void) {
    struct { int nd, lead[2], M, N, K, shared; } cases[] = {
        {2, {0, 0}, 3, 17, 5, 0}, {2, {0, 0}, 1, 1, 1, 0}, {3, {3, 0}, 17, 3, 65, 0},
        {3, {3, 0}, 5, 17, 3, 1}, {4, {2, 3}, 3, 5, 17, 0}, {4, {1, 3}, 17, 1, 3, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int nd = cases[ci].nd, M = cases[ci].M, N = cases[ci].N, K = cases[ci].K;
                int as[4], bs[4], batch = 1;
                for (int i = 0; i < nd - 2; i++) { as[i] = bs[i] = cases[ci].lead[i]; batch *= as[i]; }
                as[nd - 2] = ta ? K : M; as[nd - 1] = ta ? M : K;
                int bnd = cases[ci].shared ? 2 : nd;
                bs[bnd - 2] = tb ? N : K; bs[bnd - 1] = tb ? K : N;
                Tensor *in[2] = {rand_in(nd, as, 1), rand_in(bnd, bs, 1)};
                MmCtx c = {ta, tb};
                Graph g;
                graph_init(&g, 1 << 20);
                Tensor *out = build_mm(&g, in, &c);
                CHECK(out && out->ndim == nd && out->shape[nd - 2] == M && out->shape[nd - 1] == N);
                if (out) {
                    double *ref = malloc(out->n * sizeof *ref);
                    naive_matmul(ref, in[0], in[1], ta, tb, M, N, K, batch);
                    CHECK_MSG(max_err(out->data, ref, out->n) < 1e-5, "case %zu ta %d tb %d", ci, ta, tb);
                    free(ref);
                }
                graph_free(&g);
                CHECK_MSG(gradcheck(build_mm, &c, in, 2, GC_H, GC_TOL), "case %zu ta %d tb %d", ci, ta, tb);
                free_all(in, 2);
            }
}

/* The gemm kernel on shapes that take every path (one tile, M/N tiles, K tiles with
 * scratch, batched), with alpha and beta, against a double loop. */
static void test_gemm_kernel_paths(void) {
    int shapes[][3] = {{3, 5, 7}, {1000, 70, 120}, {70, 1000, 120}, {96, 80, 3000}, {300, 300, 300}, {17, 1, 2049}};
    unsigned long long s = 77;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
                float *C = malloc(sizeof(float) * M * N);
                double *R = malloc(sizeof(double) * M * N);
                for (int i = 0; i < M * K; i++) A[i] = test_uniform(&s);
                for (int i = 0; i < K * N; i++) B[i] = test_uniform(&s);
                for (int i = 0; i < M * N; i++) C[i] = test_uniform(&s);
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        double acc = 0;
                        for (int k = 0; k < K; k++)
                            acc += (double)(ta ? A[k * M + m] : A[m * K + k]) * (tb ? B[n * K + k] : B[k * N + n]);
                        R[m * N + n] = 0.5 * acc + 0.25 * C[m * N + n];
                    }
                size_t ns = gemm_scratch_floats(M, N, K);
                float *scratch = ns ? malloc(ns * sizeof(float)) : NULL;
                vcm_gemm(ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 0.25f, C, N, scratch);
                /* float accumulation over K terms of size ~1: error grows like √K·ε */
                double err = max_err(C, R, (size_t)M * N), tol = 2e-6 * sqrt((double)K);
                CHECK_MSG(err < tol, "M %d N %d K %d ta %d tb %d: error %g", M, N, K, ta, tb, err);
                free(A); free(B); free(C); free(R); free(scratch);
            }
    /* A dW-shaped product (small M·N, long K) takes K tiles. */
    CHECK(gemm_scratch_floats(96, 80, 3000) > 0);
    CHECK(gemm_scratch_floats(1000, 70, 120) == 0);
}

/* ------------------------------------------------------------------ linear */

static Tensor *build_linear(Graph *g, Tensor **in, void *ctx) {
    (void)ctx;
    return op_linear(g, in[0], in[1], in[2]);
}
static Tensor *build_linear_nobias(Graph *g, Tensor **in, void *ctx) {
    (void)ctx;
    return op_linear(g, in[0], in[1], NULL);
}

static void test_linear_forward_and_grad(void) {
    int xshapes[][3] = {{3, 17, 5}, {1, 1, 1}, {65, 3, 0}, {17, 0, 0}};
    int xnd[] = {3, 3, 2, 1};
    int outs[] = {3, 1, 17, 65};
    for (int ci = 0; ci < 4; ci++)
        for (int bias = 0; bias < 2; bias++) {
            int nd = xnd[ci], in_ = xshapes[ci][nd - 1], out_ = outs[ci];
            int ws[] = {out_, in_}, bs[] = {out_};
            Tensor *in[3] = {rand_in(nd, xshapes[ci], 1), rand_in(2, ws, 1), rand_in(1, bs, 1)};
            Graph g;
            graph_init(&g, 1 << 20);
            Tensor *y = bias ? build_linear(&g, in, NULL) : build_linear_nobias(&g, in, NULL);
            CHECK(y && y->ndim == nd && y->shape[nd - 1] == out_);
            if (y) {
                size_t R = tensor_rows(in[0]);
                double *ref = malloc(y->n * sizeof *ref);
                for (size_t r = 0; r < R; r++)
                    for (int o = 0; o < out_; o++) {
                        double s = bias ? in[2]->data[o] : 0;
                        for (int k = 0; k < in_; k++) s += (double)in[0]->data[r * in_ + k] * in[1]->data[o * in_ + k];
                        ref[r * out_ + o] = s;
                    }
                CHECK_MSG(max_err(y->data, ref, y->n) < 1e-5, "case %d bias %d", ci, bias);
                free(ref);
            }
            graph_free(&g);
            CHECK_MSG(gradcheck(bias ? build_linear : build_linear_nobias, NULL, in, bias ? 3 : 2, GC_H, GC_TOL),
                      "case %d bias %d", ci, bias);
            free_all(in, 3);
        }
}

static Tensor *build_linear_residual(Graph *g, Tensor **in, void *ctx) {
    return op_linear_residual(g, in[0], in[1], ctx ? in[2] : NULL, in[3]);
}
/* The residual is the input itself (square W): x's gradient gets both contributions. */
static Tensor *build_linear_residual_self(Graph *g, Tensor **in, void *ctx) {
    (void)ctx;
    return op_linear_residual(g, in[0], in[1], in[2], in[0]);
}

/* r + x·Wᵀ + b: the value of op_add(r, op_linear(x, W, b)) to rounding, and its gradients
 * (finite differences) for x, W, b and r, with and without bias, r distinct or x itself. */
static void test_linear_residual_forward_and_grad(void) {
    int xshapes[][3] = {{3, 17, 5}, {1, 1, 1}, {65, 3, 0}};
    int xnd[] = {3, 3, 2}, outs[] = {3, 1, 17};
    for (int ci = 0; ci < 3; ci++)
        for (int bias = 0; bias < 2; bias++) {
            int nd = xnd[ci], in_ = xshapes[ci][nd - 1], out_ = outs[ci];
            int ws[] = {out_, in_}, bs[] = {out_}, rs[3];
            memcpy(rs, xshapes[ci], sizeof rs);
            rs[nd - 1] = out_;
            Tensor *in[4] = {rand_in(nd, xshapes[ci], 1), rand_in(2, ws, 1), rand_in(1, bs, 1), rand_in(nd, rs, 1)};
            Graph g;
            graph_init(&g, 1 << 20);
            Tensor *y = build_linear_residual(&g, in, bias ? &g : NULL);
            Tensor *want = op_add(&g, in[3], bias ? op_linear(&g, in[0], in[1], in[2]) : op_linear(&g, in[0], in[1], NULL));
            CHECK(y && want && y->n == want->n);
            if (y && want) {
                double *ref = malloc(y->n * sizeof *ref);
                for (size_t i = 0; i < y->n; i++) ref[i] = want->data[i];
                CHECK_MSG(max_err(y->data, ref, y->n) < 1e-6, "case %d bias %d", ci, bias);
                free(ref);
            }
            graph_free(&g);
            CHECK_MSG(gradcheck(build_linear_residual, bias ? (void *)in : NULL, in, 4, GC_H, GC_TOL), "case %d bias %d",
                      ci, bias);
            free_all(in, 4);
        }
    int xs[] = {4, 6}, ws[] = {6, 6}, bs[] = {6};
    Tensor *in[3] = {rand_in(2, xs, 1), rand_in(2, ws, 1), rand_in(1, bs, 1)};
    CHECK(gradcheck(build_linear_residual_self, NULL, in, 3, GC_H, GC_TOL));
    free_all(in, 3);
}

/* ------------------------------------------------------------------ embedding */

typedef struct { const int32_t *ids; int nd; int shape[3]; } EmbCtx;

static Tensor *build_emb(Graph *g, Tensor **in, void *ctx) {
    EmbCtx *c = ctx;
    return op_embedding(g, in[0], c->ids, c->nd, c->shape);
}

static void test_embedding_forward_and_grad(void) {
    /* Repeated ids: their gradients add up in the same row. */
    int32_t ids[] = {4, 0, 16, 4, 4, 3, 16, 1, 0, 2, 5, 6, 7, 8, 9, 10, 11};
    EmbCtx cases[] = {{ids, 1, {17}}, {ids, 2, {3, 5}}, {ids, 3, {1, 1, 1}}, {ids, 2, {1, 17}}};
    int dims[] = {3, 65, 1, 17};
    for (int ci = 0; ci < 4; ci++) {
        int ws[] = {17, dims[ci]};
        Tensor *in[1] = {rand_in(2, ws, 1)};
        Graph g;
        graph_init(&g, 1 << 20);
        Tensor *y = build_emb(&g, in, &cases[ci]);
        CHECK(y && y->ndim == cases[ci].nd + 1 && y->shape[cases[ci].nd] == dims[ci]);
        if (y) {
            int ok = 1;
            for (size_t i = 0; i < y->n / dims[ci]; i++)
                ok &= !memcmp(y->data + i * dims[ci], in[0]->data + (size_t)ids[i] * dims[ci], dims[ci] * sizeof(float));
            CHECK(ok);
        }
        graph_free(&g);
        CHECK_MSG(gradcheck(build_emb, &cases[ci], in, 1, GC_H, GC_TOL), "case %d", ci);
        free(in[0]);
    }
}

/* ------------------------------------------------------------------ concat / slice */

typedef struct { int n; int start, len; } SeqCtx;

static Tensor *build_concat(Graph *g, Tensor **in, void *ctx) { return op_concat_seq(g, in, ((SeqCtx *)ctx)->n); }
static Tensor *build_slice(Graph *g, Tensor **in, void *ctx) {
    SeqCtx *c = ctx;
    return op_slice_seq(g, in[0], c->start, c->len);
}

static void test_concat_seq_forward_and_grad(void) {
    int B = 3, D = 5, Ts[] = {1, 17, 3};
    Tensor *in[3];
    for (int i = 0; i < 3; i++) {
        int s[] = {B, Ts[i], D};
        in[i] = rand_in(3, s, i != 1); /* the middle one needs no gradient */
    }
    SeqCtx c = {3, 0, 0};
    Graph g;
    graph_init(&g, 1 << 20);
    Tensor *y = build_concat(&g, in, &c);
    CHECK(y && y->shape[0] == B && y->shape[1] == 21 && y->shape[2] == D);
    if (y) {
        int ok = 1;
        for (int b = 0; b < B; b++) {
            int t = 0;
            for (int i = 0; i < 3; i++)
                for (int ti = 0; ti < Ts[i]; ti++, t++)
                    for (int d = 0; d < D; d++)
                        ok &= y->data[((size_t)b * 21 + t) * D + d] == in[i]->data[((size_t)b * Ts[i] + ti) * D + d];
        }
        CHECK(ok);
    }
    graph_free(&g);
    CHECK(gradcheck(build_concat, &c, in, 3, GC_H, GC_TOL));
    free_all(in, 3);
}

static void test_slice_seq_forward_and_grad(void) {
    int s[] = {3, 17, 65};
    int ranges[][2] = {{0, 17}, {5, 1}, {14, 3}, {0, 1}};
    for (int ri = 0; ri < 4; ri++) {
        Tensor *in[1] = {rand_in(3, s, 1)};
        SeqCtx c = {1, ranges[ri][0], ranges[ri][1]};
        Graph g;
        graph_init(&g, 1 << 20);
        Tensor *y = build_slice(&g, in, &c);
        CHECK(y && y->shape[1] == c.len);
        if (y) {
            int ok = 1;
            for (int b = 0; b < 3; b++)
                ok &= !memcmp(y->data + (size_t)b * c.len * 65, in[0]->data + ((size_t)b * 17 + c.start) * 65,
                              (size_t)c.len * 65 * sizeof(float));
            CHECK(ok);
        }
        graph_free(&g);
        CHECK(gradcheck(build_slice, &c, in, 1, GC_H, GC_TOL));
        free(in[0]);
    }
}

/* ------------------------------------------------------------------ mean */

static Tensor *build_mean(Graph *g, Tensor **in, void *ctx) { return op_mean(g, in[0], *(int *)ctx); }

static void test_mean_forward_and_grad(void) {
    int shapes[][4] = {{3, 17, 5, 2}, {65, 0, 0, 0}, {1, 3, 0, 0}, {17, 1, 3, 0}};
    int nds[] = {4, 1, 2, 3};
    for (int si = 0; si < 4; si++)
        for (int dim = -1; dim < nds[si]; dim++) {
            int nd = nds[si], d = dim < 0 ? nd - 1 : dim;
            Tensor *in[1] = {rand_in(nd, shapes[si], 1)};
            Graph g;
            graph_init(&g, 1 << 20);
            Tensor *y = build_mean(&g, in, &dim);
            CHECK(y && y->ndim == (nd > 1 ? nd - 1 : 1));
            if (y) {
                size_t outer = 1, inner = 1, L = (size_t)shapes[si][d];
                for (int i = 0; i < d; i++) outer *= (size_t)shapes[si][i];
                for (int i = d + 1; i < nd; i++) inner *= (size_t)shapes[si][i];
                double *ref = calloc(outer * inner, sizeof *ref);
                for (size_t o = 0; o < outer; o++)
                    for (size_t j = 0; j < L; j++)
                        for (size_t i = 0; i < inner; i++) ref[o * inner + i] += in[0]->data[(o * L + j) * inner + i] / (double)L;
                CHECK(y->n == outer * inner);
                CHECK_MSG(max_err(y->data, ref, y->n) < 1e-6, "shape %d dim %d", si, dim);
                free(ref);
            }
            graph_free(&g);
            CHECK_MSG(gradcheck(build_mean, &dim, in, 1, GC_H, GC_TOL), "shape %d dim %d", si, dim);
            free(in[0]);
        }
}

/* ------------------------------------------------------------------ patches */

static Tensor *build_patches(Graph *g, Tensor **in, void *ctx) { return op_patches(g, in[0], *(int *)ctx); }

static void test_patches_forward_and_grad(void) {
    int shapes[][4] = {{2, 3, 8, 12}, {1, 1, 3, 3}, {1, 3, 4, 4}, {3, 1, 17, 17}};
    int Ps[] = {4, 3, 1, 17};
    for (int si = 0; si < 4; si++) {
        int P = Ps[si], B = shapes[si][0], C = shapes[si][1], H = shapes[si][2], W = shapes[si][3];
        Tensor *in[1] = {rand_in(4, shapes[si], 1)};
        Graph g;
        graph_init(&g, 1 << 20);
        Tensor *y = build_patches(&g, in, &P);
        int GW = W / P, np = (H / P) * GW;
        CHECK(y && y->ndim == 3 && y->shape[0] == B && y->shape[1] == np && y->shape[2] == C * P * P);
        if (y) {
            /* The definition, walked from the image side. */
            int ok = 1;
            for (int b = 0; b < B; b++)
                for (int c = 0; c < C; c++)
                    for (int h = 0; h < H; h++)
                        for (int w = 0; w < W; w++) {
                            int p = (h / P) * GW + w / P, k = c * P * P + (h % P) * P + w % P;
                            ok &= y->data[((size_t)b * np + p) * C * P * P + k] ==
                                  in[0]->data[(((size_t)b * C + c) * H + h) * W + w];
                        }
            CHECK(ok);
        }
        graph_free(&g);
        CHECK(gradcheck(build_patches, &P, in, 1, GC_H, GC_TOL));
        free(in[0]);
    }
}

static void test_patches_match_conv2d_weight_layout(void) {
    /* A linear layer over patches with W [D, C·P·P] equals a stride-P convolution with
     * weight W viewed as [D, C, P, P]. */
    int B = 1, C = 3, H = 8, W = 8, P = 4, D = 2;
    unsigned long long s = 5;
    Graph g;
    graph_init(&g, 1 << 20);
    Tensor *img = rand_graph(&g, 4, (int[]){B, C, H, W}, 0, &s);
    Tensor *w = rand_graph(&g, 2, (int[]){D, C * P * P}, 0, &s);
    Tensor *y = op_linear(&g, op_patches(&g, img, P), w, NULL);
    CHECK(y && y->shape[1] == 4 && y->shape[2] == D);
    int ok = 1;
    for (int d = 0; d < D; d++)
        for (int gy = 0; gy < H / P; gy++)
            for (int gx = 0; gx < W / P; gx++) {
                double conv = 0;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < P; ky++)
                        for (int kx = 0; kx < P; kx++)
                            conv += (double)w->data[((d * C + c) * P + ky) * P + kx] *
                                    img->data[(c * H + gy * P + ky) * W + gx * P + kx];
                ok &= fabs(y->data[(gy * (W / P) + gx) * D + d] - conv) < 1e-5;
            }
    CHECK(ok);
    graph_free(&g);
}

/* ------------------------------------------------------------------ errors */

static void test_errors_return_null_with_message(void) {
    Graph g;
    graph_init(&g, 1 << 20);
    Tensor *a = tensor_3d(&g, 2, 3, 5, 1), *b = tensor_2d(&g, 3, 4, 1), *w = tensor_2d(&g, 7, 4, 1);
    CHECK(op_add(&g, a, b) == NULL && g.failed);
    CHECK_STR_CONTAINS(vcm_error(), "add: b [3, 4] must have a's shape [2, 3, 5]");
    graph_reset(&g);
    a = tensor_3d(&g, 2, 3, 5, 1); b = tensor_2d(&g, 3, 4, 1); w = tensor_2d(&g, 7, 4, 1);
    CHECK(op_mul(&g, NULL, a) == NULL);
    CHECK(op_matmul(&g, a, b, 0, 0) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "matmul: a [2, 3, 5]");
    graph_reset(&g);
    a = tensor_3d(&g, 2, 3, 5, 1); b = tensor_2d(&g, 3, 4, 1); w = tensor_2d(&g, 7, 4, 1);
    CHECK(op_matmul(&g, a, tensor_3d(&g, 3, 5, 2, 0), 0, 0) == NULL); /* leading dims differ */
    graph_reset(&g);
    a = tensor_3d(&g, 2, 3, 5, 1); w = tensor_2d(&g, 7, 4, 1);
    CHECK(op_linear(&g, a, w, NULL) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "linear: x [2, 3, 5] and W [7, 4]");
    graph_reset(&g);
    a = tensor_3d(&g, 2, 3, 4, 1); w = tensor_2d(&g, 7, 4, 1);
    CHECK(op_linear(&g, a, w, tensor_1d(&g, 6, 1)) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "bias [6]");
    graph_reset(&g);
    a = tensor_3d(&g, 2, 3, 4, 1); w = tensor_2d(&g, 7, 4, 1);
    CHECK(op_linear_residual(&g, a, w, NULL, tensor_3d(&g, 2, 3, 4, 1)) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "residual [2, 3, 4] must have the output's shape [2, 3, 7]");
    graph_reset(&g);

    Tensor *E = tensor_2d(&g, 5, 3, 1);
    int32_t ids[] = {0, 4, 7, 1};
    int ish[] = {4};
    CHECK(op_embedding(&g, E, ids, 1, ish) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "id 7 at position 2 is outside the vocabulary of 5");
    graph_reset(&g);
    E = tensor_2d(&g, 5, 3, 1);
    ids[2] = -1;
    CHECK(op_embedding(&g, E, ids, 1, ish) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "id -1");
    graph_reset(&g);

    Tensor *xs[2] = {tensor_3d(&g, 2, 3, 5, 0), tensor_3d(&g, 2, 3, 6, 0)};
    CHECK(op_concat_seq(&g, xs, 2) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "concat_seq: tensor 1 [2, 3, 6]");
    graph_reset(&g);
    a = tensor_3d(&g, 2, 3, 5, 1);
    CHECK(op_slice_seq(&g, a, 2, 2) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "positions [2, 4) outside a sequence of 3");
    graph_reset(&g);
    a = tensor_3d(&g, 2, 3, 5, 1);
    CHECK(op_mean(&g, a, 3) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "mean: dim 3 out of range");
    graph_reset(&g);
    Tensor *img = tensor_4d(&g, 1, 3, 8, 10, 1);
    CHECK(op_patches(&g, img, 4) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "multiples of the patch size 4");
    graph_reset(&g);
    /* A failure is sticky: later ops see NULL and return NULL. */
    img = tensor_4d(&g, 1, 3, 8, 10, 1);
    Tensor *p = op_patches(&g, img, 3);
    CHECK(p == NULL && op_mean(&g, p, 0) == NULL && op_scale(&g, p, 2) == NULL && g.failed);
    graph_free(&g);
}

/* ------------------------------------------------------------------ threads */

/* Run every op forward and backward on shapes large enough to use several threads
 * (gemm tiles along M, N and K, parallel reductions) and append outputs and gradients
 * to *buf. */
typedef struct { float *v; size_t n, cap; } Bytes;

static void keep(Bytes *b, const float *x, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->v = realloc(b->v, b->cap * sizeof(float));
    }
    memcpy(b->v + b->n, x, n * sizeof(float));
    b->n += n;
}

static void backward_weighted(Graph *g, Tensor *y, unsigned long long *s) {
    for (size_t i = 0; i < y->n; i++) y->grad[i] = test_uniform(s);
    for (int i = g->n_nodes - 1; i >= 0; i--)
        if (g->nodes[i].out->grad) g->nodes[i].backward(&g->nodes[i]);
}

static void run_all_ops(int threads, Bytes *out) {
    vcm_threads_init(threads);
    unsigned long long s = 99;
    Graph g;
    graph_init(&g, 64 << 20);
    /* elementwise: a [64, 65, 17], b [65, 17] */
    for (int kind = 0; kind < 4; kind++) {
        Tensor *a = rand_graph(&g, 3, (int[]){64, 65, 17}, 1, &s), *b = rand_graph(&g, 2, (int[]){65, 17}, 1, &s);
        EwCtx c = {kind, 0.3f};
        Tensor *in[2] = {a, b}, *y = build_ew(&g, in, &c);
        backward_weighted(&g, y, &s);
        keep(out, y->data, y->n); keep(out, a->grad, a->n); keep(out, b->grad, b->n);
        graph_reset(&g);
    }
    /* linear: the forward and dW take M tiles (at 8 tiles dW also N) */
    {
        Tensor *x = rand_graph(&g, 3, (int[]){4, 275, 300}, 1, &s), *w = rand_graph(&g, 2, (int[]){300, 300}, 1, &s);
        Tensor *b = rand_graph(&g, 1, (int[]){300}, 1, &s);
        Tensor *y = op_linear(&g, x, w, b);
        backward_weighted(&g, y, &s);
        keep(out, y->data, y->n); keep(out, x->grad, x->n); keep(out, w->grad, w->n); keep(out, b->grad, b->n);
        graph_reset(&g);
    }
    /* linear with few rows and a long out (the logits layer): the forward takes N tiles, dX K tiles */
    {
        Tensor *x = rand_graph(&g, 3, (int[]){2, 50, 96}, 1, &s), *w = rand_graph(&g, 2, (int[]){1200, 96}, 1, &s);
        Tensor *y = op_linear(&g, x, w, NULL);
        backward_weighted(&g, y, &s);
        keep(out, y->data, y->n); keep(out, x->grad, x->n); keep(out, w->grad, w->n);
        graph_reset(&g);
    }
    /* matmul: batched with transposes, and a shared b */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int shared = 0; shared < 2; shared++) {
                int M = 65, N = 70, K = 130;
                Tensor *a = rand_graph(&g, 4, (int[]){4, 6, ta ? K : M, ta ? M : K}, 1, &s);
                Tensor *b = shared ? rand_graph(&g, 2, (int[]){tb ? N : K, tb ? K : N}, 1, &s)
                                   : rand_graph(&g, 4, (int[]){4, 6, tb ? N : K, tb ? K : N}, 1, &s);
                Tensor *y = op_matmul(&g, a, b, ta, tb);
                backward_weighted(&g, y, &s);
                keep(out, y->data, y->n); keep(out, a->grad, a->n); keep(out, b->grad, b->n);
                graph_reset(&g);
            }
    /* embedding with many repeated ids */
    {
        int32_t ids[2000];
        for (int i = 0; i < 2000; i++) ids[i] = (int32_t)(test_rng_next(&s) % 300);
        Tensor *w = rand_graph(&g, 2, (int[]){300, 256}, 1, &s);
        Tensor *y = op_embedding(&g, w, ids, 2, (int[]){8, 250});
        backward_weighted(&g, y, &s);
        keep(out, y->data, y->n); keep(out, w->grad, w->n);
        graph_reset(&g);
    }
    /* concat, slice, mean over each dim, patches */
    {
        Tensor *xs[2] = {rand_graph(&g, 3, (int[]){8, 40, 256}, 1, &s), rand_graph(&g, 3, (int[]){8, 24, 256}, 1, &s)};
        Tensor *y = op_slice_seq(&g, op_concat_seq(&g, xs, 2), 10, 50);
        backward_weighted(&g, y, &s);
        keep(out, y->data, y->n); keep(out, xs[0]->grad, xs[0]->n); keep(out, xs[1]->grad, xs[1]->n);
        graph_reset(&g);
    }
    for (int dim = 0; dim < 3; dim++) {
        Tensor *x = rand_graph(&g, 3, (int[]){64, 65, 33}, 1, &s);
        Tensor *y = op_mean(&g, x, dim);
        backward_weighted(&g, y, &s);
        keep(out, y->data, y->n); keep(out, x->grad, x->n);
        graph_reset(&g);
    }
    {
        Tensor *x = rand_graph(&g, 4, (int[]){4, 3, 64, 64}, 1, &s);
        Tensor *y = op_patches(&g, x, 8);
        backward_weighted(&g, y, &s);
        keep(out, y->data, y->n); keep(out, x->grad, x->n);
    }
    CHECK(!g.failed);
    graph_free(&g);
}

/* At every gemm tile count (a machine property: 2 here, 4 covers 2 × 2 and K tiles, 8
 * more of each), 1 and 2 threads give the same bits; different tile counts need not. */
static void test_bitwise_same_with_1_and_2_threads(void) {
    const int tiles[] = {2, 4, 8};
    for (int ti = 0; ti < 3; ti++) {
        CHECK(vcm_gemm_set_max_tiles(tiles[ti]) == tiles[ti]);
        Bytes one = {0}, two = {0};
        run_all_ops(1, &one);
        run_all_ops(2, &two);
        CHECK(one.n == two.n && one.n > 0);
        size_t diff = 0;
        for (size_t i = 0; i < one.n && i < two.n; i++) diff += memcmp(&one.v[i], &two.v[i], sizeof(float)) != 0;
        CHECK_MSG(diff == 0, "max tiles %d: %zu of %zu floats differ", tiles[ti], diff, one.n);
        free(one.v);
        free(two.v);
    }
    vcm_gemm_set_max_tiles(4);
    vcm_threads_init(0);
}

/* The default tile count is the machine's (a power of two ≤ 16) whatever the threads,
 * VCM_GEMM_TILES overrides it, and a set count is rounded down to a power of two. */
static void test_gemm_tile_count_is_not_the_thread_count(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int want = 1;
    while (want * 2 <= cores && want < 16) want *= 2;
    unsetenv("VCM_GEMM_TILES");
    for (int t = 1; t <= 3; t++) {
        vcm_threads_init(t);
        CHECK_MSG(vcm_gemm_set_max_tiles(0) == want, "threads %d: %d tiles, want %d", t, vcm_gemm_max_tiles(), want);
    }
    setenv("VCM_GEMM_TILES", "8", 1);
    CHECK(vcm_gemm_set_max_tiles(0) == 8);
    unsetenv("VCM_GEMM_TILES");
    CHECK(vcm_gemm_set_max_tiles(6) == 4);
    CHECK(vcm_gemm_set_max_tiles(100) == 16);
    vcm_gemm_set_max_tiles(4);
    vcm_threads_init(0);
}

/* Our gemm agrees with plain cblas_sgemm to rounding on a model-sized shape. */
static void test_gemm_close_to_cblas(void) {
    int M = 704, N = 384, K = 128;
    unsigned long long s = 3;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);
    float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) A[i] = test_uniform(&s);
    for (int i = 0; i < N * K; i++) B[i] = test_uniform(&s);
    vcm_gemm(0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N, NULL);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    double w = 0;
    for (int i = 0; i < M * N; i++) w = fmax(w, fabs(C1[i] - C2[i]));
    CHECK_MSG(w < 1e-4, "max diff %g", w);
    free(A); free(B); free(C1); free(C2);
}

int main(void) {
    vcm_threads_init(0);
    vcm_gemm_set_max_tiles(4); /* the tilings the checks below were written for */
    RUN(test_elementwise_forward_and_grad);
    RUN(test_mul_same_tensor_twice);
    RUN(test_matmul_forward_and_grad);
    RUN(test_gemm_kernel_paths);
    RUN(test_gemm_close_to_cblas);
    RUN(test_linear_forward_and_grad);
    RUN(test_linear_residual_forward_and_grad);
    RUN(test_embedding_forward_and_grad);
    RUN(test_concat_seq_forward_and_grad);
    RUN(test_slice_seq_forward_and_grad);
    RUN(test_mean_forward_and_grad);
    RUN(test_patches_forward_and_grad);
    RUN(test_patches_match_conv2d_weight_layout);
    RUN(test_errors_return_null_with_message);
    RUN(test_bitwise_same_with_1_and_2_threads);
    RUN(test_gemm_tile_count_is_not_the_thread_count);
    return test_summary();
}
