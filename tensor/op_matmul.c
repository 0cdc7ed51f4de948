/* Matmul and linear: a deterministic tiled cblas_sgemm, op_matmul (batched, with
 * transposes, optionally one B shared by every batch) and op_linear (y = x·Wᵀ + b).
 *
 * Why tiles of our own instead of OpenBLAS's threads: OpenBLAS cuts a gemm between
 * its threads at boundaries that depend on the thread count, and its threaded driver
 * blocks K differently from the serial one, so the same product differs in the last
 * bits between 1 and 2 threads (measured on the SkylakeX, Haswell and Prescott kernels
 * of OpenBLAS 0.3.21). Here the cut depends only on the shape; each tile is a
 * single-threaded sgemm; the OpenMP pool runs the tiles. docs/TENSOR_MATMUL.md has the
 * measurements. */
#include "op_matmul.h"
#include "tensor.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* ------------------------------------------------------------------ tiling */

#define GEMM_TILE_FLOPS 4.0e6 /* a tile smaller than this is not worth a thread */
/* At most vcm_gemm_max_tiles() tiles (tensor/threads.c): by default the machine's core
 * count, never the thread count. Every tile repacks the operand it shares with its
 * neighbours (one M tile packs all of B), ~1% of a model-sized gemm per extra tile with
 * OpenBLAS's fast (SkylakeX) kernels, so more tiles than cores only cost (measured, see
 * docs/TENSOR_MATMUL.md). Results change with the tile count, never with the threads. */
#define GEMM_MIN_MN 64        /* rows/cols of the smallest M or N tile */
#define GEMM_MIN_K 256        /* depth of the smallest K tile */
#define GEMM_MAX_KSPLIT 4     /* K tiles cost scratch: (sk-1)·M·N floats */
#define GEMM_ALIGN 16         /* tile edges on multiples of 16 floats */

typedef struct {
    int sm, sn, sk; /* tiles along M, N, K */
    int cm, cn, ck; /* tile sizes (the last tile along each dim may be shorter) */
} Tiles;

static int round_up(int x, int a) { return (x + a - 1) / a * a; }
static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* Greedy: double the tiles along the dim whose tiles are longest, in these units: an M
 * tile row counts 1, an N tile column 1/1.5, a K tile step 1/8. So M is cut first and N
 * only when clearly wider, because a row-major M tile is what OpenBLAS's driver keeps
 * in its large outer loop (splitting N instead measured 3-10% slower at 2 threads on
 * most model shapes); K only for dW-like products, M·N small next to K, where the partial
 * C's written and added back (scratch) cost less than either. Measured for every linear
 * layer gemm of nano and small, docs/TENSOR_MATMUL.md. */
static Tiles gemm_tiles(int M, int N, int K, int allow_k) {
    Tiles t = {1, 1, 1, M, N, K};
    double flops = 2.0 * M * N * K;
    int want = 1, max_tiles = vcm_gemm_max_tiles();
    while (want < max_tiles && flops / (2.0 * want) >= GEMM_TILE_FLOPS) want *= 2;
    while (t.sm * t.sn * t.sk < want) {
        double m = (double)M / t.sm, n = (double)N / t.sn, k = (double)K / t.sk;
        double score_m = m / 2 >= GEMM_MIN_MN ? m : -1;
        double score_n = n / 2 >= GEMM_MIN_MN ? n / 1.5 : -1;
        double score_k = allow_k && 2 * t.sk <= GEMM_MAX_KSPLIT && k / 2 >= GEMM_MIN_K ? k / 8 : -1;
        if (score_m < 0 && score_n < 0 && score_k < 0) break;
        if (score_m >= score_n && score_m >= score_k) t.sm *= 2;
        else if (score_n >= score_k) t.sn *= 2;
        else t.sk *= 2;
    }
    t.cm = round_up(ceil_div(M, t.sm), GEMM_ALIGN);
    t.cn = round_up(ceil_div(N, t.sn), GEMM_ALIGN);
    t.ck = round_up(ceil_div(K, t.sk), GEMM_ALIGN);
    t.sm = ceil_div(M, t.cm);
    t.sn = ceil_div(N, t.cn);
    t.sk = ceil_div(K, t.ck);
    return t;
}

size_t gemm_scratch_floats(int M, int N, int K) {
    Tiles t = gemm_tiles(M, N, K, 1);
    return (size_t)(t.sk - 1) * (size_t)M * (size_t)N;
}

/* OpenBLAS must run single-threaded inside our tiles. Outside a parallel region we
 * switch it to 1 thread for the call and restore its count afterwards; inside one we
 * leave it alone (nobody else may toggle it concurrently). */
static int blas_single_begin(void) {
    if (omp_in_parallel()) return 0;
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}
static void blas_single_end(int saved) {
    if (saved > 1) openblas_set_num_threads(saved);
}

static void sgemm1(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda, B, ldb, beta, C, ldc);
}

/* One tile (im, in, ik) of the product; K tiles after the first go to scratch. */
static void gemm_tile(const Tiles *t, int im, int in_, int ik, int ta, int tb, int M, int N, int K, float alpha,
                      const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc,
                      float *scratch, const float *bias, const float *res) {
    int m0 = im * t->cm, n0 = in_ * t->cn, k0 = ik * t->ck;
    int mm = M - m0 < t->cm ? M - m0 : t->cm;
    int nn = N - n0 < t->cn ? N - n0 : t->cn;
    int kk = K - k0 < t->ck ? K - k0 : t->ck;
    const float *a = ta ? A + (size_t)k0 * lda + m0 : A + (size_t)m0 * lda + k0;
    const float *b = tb ? B + (size_t)n0 * ldb + k0 : B + (size_t)k0 * ldb + n0;
    if (ik == 0) {
        if (bias || res) { /* C = [res +] bias + A·B: the tile's rows start as res + bias,
                            * then sgemm adds to them while they are still in this core's cache */
            for (int m = 0; m < mm; m++) {
                float *c = C + (size_t)(m0 + m) * ldc + n0;
                const float *r = res ? res + (size_t)(m0 + m) * ldc + n0 : NULL;
                if (r && bias) for (int n = 0; n < nn; n++) c[n] = r[n] + bias[n0 + n];
                else memcpy(c, r ? r : bias + n0, (size_t)nn * sizeof(float));
            }
            beta = 1.0f;
        }
        sgemm1(ta, tb, mm, nn, kk, alpha, a, lda, b, ldb, beta, C + (size_t)m0 * ldc + n0, ldc);
    } else {
        float *p = scratch + (size_t)(ik - 1) * M * N;
        sgemm1(ta, tb, mm, nn, kk, alpha, a, lda, b, ldb, 0.0f, p + (size_t)m0 * N + n0, N);
    }
}

/* vcm_gemm, optionally with C = [res +] [bias +] A·B (bias [N] for every row, res laid out
 * as C; beta unused then). */
static void gemm_run(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                     int ldb, float beta, float *C, int ldc, float *scratch, const float *bias, const float *res) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta·C, as BLAS would (or res + bias) */
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                float *c = C + (size_t)m * ldc + n;
                if (bias || res) *c = res ? res[(size_t)m * ldc + n] + (bias ? bias[n] : 0.0f) : bias[n];
                else *c = beta == 0.0f ? 0.0f : beta * *c;
            }
        return;
    }
    Tiles t = gemm_tiles(M, N, K, scratch != NULL);
    int saved = blas_single_begin();
    int n_tiles = t.sm * t.sn * t.sk;
#pragma omp parallel for schedule(dynamic, 1) if (n_tiles > 1)
    for (int i = 0; i < n_tiles; i++) {
        int ik = i % t.sk, in_ = (i / t.sk) % t.sn, im = i / (t.sk * t.sn);
        gemm_tile(&t, im, in_, ik, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, scratch, bias, res);
    }
    if (t.sk > 1) { /* C += partials, in K order */
#pragma omp parallel for schedule(static) if ((double)M * N * t.sk > 65536)
        for (int m = 0; m < M; m++) {
            float *c = C + (size_t)m * ldc;
            for (int k = 1; k < t.sk; k++) {
                const float *p = scratch + (size_t)(k - 1) * M * N + (size_t)m * N;
                for (int n = 0; n < N; n++) c[n] += p[n];
            }
        }
    }
    blas_single_end(saved);
}

void vcm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc, float *scratch) {
    gemm_run(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, scratch, NULL, NULL);
}

void vcm_gemm_batched(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, size_t sa,
                      const float *B, int ldb, size_t sb, float beta, float *C, int ldc, size_t sc, int batch) {
    if (batch == 1) {
        vcm_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
        return;
    }
    if (M <= 0 || N <= 0 || batch <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < batch; i++) vcm_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C + i * sc, ldc, NULL);
        return;
    }
    Tiles t = gemm_tiles(M, N, K, 0);
    int saved = blas_single_begin();
    int per = t.sm * t.sn;
    long n_tiles = (long)per * batch;
#pragma omp parallel for schedule(dynamic, 1) if (n_tiles > 1 && 2.0 * M * N * K * batch >= GEMM_TILE_FLOPS)
    for (long i = 0; i < n_tiles; i++) {
        long bi = i / per;
        int in_ = (int)(i % per) % t.sn, im = (int)(i % per) / t.sn;
        gemm_tile(&t, im, in_, 0, ta, tb, M, N, K, alpha, A + bi * sa, lda, B + bi * sb, ldb, beta, C + bi * sc, ldc,
                  NULL, NULL, NULL);
    }
    blas_single_end(saved);
}

/* ------------------------------------------------------------------ linear kernels */

void vcm_colsum(float *db, const float *dy, int R, int C, int set) {
    /* Each thread owns a block of 64 columns and adds the rows in order. */
    int nb = ceil_div(C, 64);
#pragma omp parallel for schedule(static) if ((double)R * C >= 65536 && nb > 1)
    for (int b = 0; b < nb; b++) {
        int j0 = b * 64, j1 = j0 + 64 < C ? j0 + 64 : C;
        float acc[64] = {0};
        for (int r = 0; r < R; r++) {
            const float *row = dy + (size_t)r * C;
            for (int j = j0; j < j1; j++) acc[j - j0] += row[j];
        }
        for (int j = j0; j < j1; j++) db[j] = (set ? 0.0f : db[j]) + acc[j - j0];
    }
}

void vcm_linear_forward(float *y, const float *x, const float *W, const float *b, int R, int in, int out) {
    gemm_run(0, 1, R, out, in, 1.0f, x, in, W, in, 0.0f, y, out, NULL, b, NULL);
}

void vcm_linear_forward_residual(float *y, const float *x, const float *W, const float *b, const float *r, int R,
                                 int in, int out) {
    gemm_run(0, 1, R, out, in, 1.0f, x, in, W, in, 0.0f, y, out, NULL, b, r);
}

void vcm_linear_backward_dx(float *dx, const float *dy, const float *W, int R, int in, int out, float *scratch,
                            int set) {
    vcm_gemm(0, 0, R, in, out, 1.0f, dy, out, W, in, set ? 0.0f : 1.0f, dx, in, scratch);
}

void vcm_linear_backward_dw(float *dW, float *db, const float *dy, const float *x, int R, int in, int out,
                            float *scratch, int set_w, int set_b) {
    if (dW) vcm_gemm(1, 0, out, in, R, 1.0f, dy, out, x, in, set_w ? 0.0f : 1.0f, dW, in, scratch);
    if (db) vcm_colsum(db, dy, R, out, set_b);
}

/* Scratch for a K-split gemm in backward, from the graph's arena (NULL: no K split). */
static float *gemm_scratch(Graph *g, int M, int N, int K) {
    size_t n = gemm_scratch_floats(M, N, K);
    if (!n) return NULL;
    float *s = arena_alloc(&g->arena, n * sizeof(float));
    if (!s) vcm_clear_error(); /* fine: the gemm runs without a K split */
    return s;
}

/* ------------------------------------------------------------------ op_linear */

static void linear_node_backward(Node *n) {
    Tensor *x = n->in[0], *W = n->in[1], *b = n->in[2], *r = n->in[3], *y = n->out;
    Graph *g = n->saved;
    int in = n->iattr[0], out = n->iattr[1], R = n->iattr[2];
    /* Each gradient is written (beta 0) when it held no values yet, else added to; x's
     * is decided first and complete before r's and W's, in case they are the same tensor. */
    if (x->grad) vcm_linear_backward_dx(x->grad, y->grad, W->data, R, in, out, gemm_scratch(g, R, in, out), grad_overwrite(x));
    if (r && r->grad) vcm_axpy_grad(r->grad, y->grad, 1.0f, y->n, grad_overwrite(r)); /* dr = dy */
    int set_w = W->grad && grad_overwrite(W), set_b = b && b->grad && grad_overwrite(b);
    float *scratch = W->grad ? gemm_scratch(g, out, in, R) : NULL;
    vcm_linear_backward_dw(W->grad, b ? b->grad : NULL, y->grad, x->data, R, in, out, scratch, set_w, set_b);
}

static Tensor *linear_op(Graph *g, Tensor *x, Tensor *W, Tensor *b, Tensor *r) {
    char sx[64], sw[64], sb[64];
    if (W->ndim != 2 || x->shape[x->ndim - 1] != W->shape[1]) {
        graph_fail(g, "linear: x %s and W %s: W must be [out, in] with in = the last dim of x",
                   shape_str(x, sx, sizeof sx), shape_str(W, sw, sizeof sw));
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != W->shape[0])) {
        graph_fail(g, "linear: bias %s for W %s: must be [%d]", shape_str(b, sb, sizeof sb),
                   shape_str(W, sw, sizeof sw), W->shape[0]);
        return NULL;
    }
    int in = W->shape[1], out = W->shape[0];
    size_t R = tensor_rows(x);
    if (R > 0x7fffffff) { graph_fail(g, "linear: %zu rows is too many", R); return NULL; }
    int shape[VCM_MAXDIM];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out;
    if (r && (r->ndim != x->ndim || memcmp(r->shape, shape, (size_t)x->ndim * sizeof(int)))) {
        Tensor want = *x;
        memcpy(want.shape, shape, sizeof shape);
        graph_fail(g, "linear: residual %s must have the output's shape %s", shape_str(r, sx, sizeof sx),
                   shape_str(&want, sw, sizeof sw));
        return NULL;
    }
    int wg = graph_wants_grad(g, x, W, b) || graph_wants_grad(g, r, NULL, NULL);
    Tensor *y = graph_tensor(g, x->ndim, shape, wg);
    if (!y) return NULL;
    vcm_linear_forward_residual(y->data, x->data, W->data, b ? b->data : NULL, r ? r->data : NULL, (int)R, in, out);
    if (wg) {
        Node *n = graph_push(g, "linear", linear_node_backward, y);
        if (!n) return NULL;
        n->in[0] = x; n->in[1] = W; n->in[2] = b; n->in[3] = r;
        n->saved = g;
        n->iattr[0] = in; n->iattr[1] = out; n->iattr[2] = (int)R;
    }
    return y;
}

Tensor *op_linear(Graph *g, Tensor *x, Tensor *W, Tensor *b) {
    if (!x || !W) return NULL;
    return linear_op(g, x, W, b, NULL);
}

Tensor *op_linear_residual(Graph *g, Tensor *x, Tensor *W, Tensor *b, Tensor *r) {
    if (!x || !W || !r) return NULL;
    return linear_op(g, x, W, b, r);
}

/* ------------------------------------------------------------------ op_matmul */

/* Shapes of one matmul, as the node keeps them in iattr. */
typedef struct {
    int ta, tb, M, N, K, batch, shared; /* shared: b is 2-D and used by every batch */
} MatmulDims;

static void k_matmul_forward(const MatmulDims *d, float *c, const float *a, const float *b) {
    int lda = d->ta ? d->M : d->K, ldb = d->tb ? d->K : d->N;
    if (d->shared && !d->ta) /* the batches stack into one tall product */
        vcm_gemm(0, d->tb, d->batch * d->M, d->N, d->K, 1.0f, a, lda, b, ldb, 0.0f, c, d->N, NULL);
    else
        vcm_gemm_batched(d->ta, d->tb, d->M, d->N, d->K, 1.0f, a, lda, (size_t)d->M * d->K, b, ldb,
                         d->shared ? 0 : (size_t)d->K * d->N, 0.0f, c, d->N, (size_t)d->M * d->N, d->batch);
}

/* dA += dC·op(B)ᵀ (or, with ta, op(B)·dCᵀ); dA = … when set (beta 0). */
static void k_matmul_backward_a(const MatmulDims *d, float *da, const float *dc, const float *b, int set) {
    int ldb = d->tb ? d->K : d->N;
    float beta = set ? 0.0f : 1.0f;
    size_t sb = d->shared ? 0 : (size_t)d->K * d->N, sa = (size_t)d->M * d->K, sc = (size_t)d->M * d->N;
    if (!d->ta) {
        if (d->shared)
            vcm_gemm(0, !d->tb, d->batch * d->M, d->K, d->N, 1.0f, dc, d->N, b, ldb, beta, da, d->K, NULL);
        else
            vcm_gemm_batched(0, !d->tb, d->M, d->K, d->N, 1.0f, dc, d->N, sc, b, ldb, sb, beta, da, d->K, sa,
                             d->batch);
    } else {
        vcm_gemm_batched(d->tb, 1, d->K, d->M, d->N, 1.0f, b, ldb, sb, dc, d->N, sc, beta, da, d->M, sa, d->batch);
    }
}

/* dB += op(A)ᵀ·dC (or, with tb, dCᵀ·op(A)); a shared B sums over the batches; = when set. */
static void k_matmul_backward_b(const MatmulDims *d, float *db, const float *dc, const float *a, Graph *g, int set) {
    int lda = d->ta ? d->M : d->K;
    float beta = set ? 0.0f : 1.0f;
    size_t sa = (size_t)d->M * d->K, sc = (size_t)d->M * d->N, sb = (size_t)d->K * d->N;
    if (!d->shared) {
        if (!d->tb)
            vcm_gemm_batched(!d->ta, 0, d->K, d->N, d->M, 1.0f, a, lda, sa, dc, d->N, sc, beta, db, d->N, sb, d->batch);
        else
            vcm_gemm_batched(1, d->ta, d->N, d->K, d->M, 1.0f, dc, d->N, sc, a, lda, sa, beta, db, d->K, sb, d->batch);
        return;
    }
    if (!d->ta) { /* rows of all batches form one long K */
        int MM = d->batch * d->M;
        if (!d->tb)
            vcm_gemm(1, 0, d->K, d->N, MM, 1.0f, a, d->K, dc, d->N, beta, db, d->N, gemm_scratch(g, d->K, d->N, MM));
        else
            vcm_gemm(1, 0, d->N, d->K, MM, 1.0f, dc, d->N, a, d->K, beta, db, d->K, gemm_scratch(g, d->N, d->K, MM));
        return;
    }
    /* ta with a shared B: batches one after the other, each accumulating. */
    float *scratch = d->tb ? gemm_scratch(g, d->N, d->K, d->M) : gemm_scratch(g, d->K, d->N, d->M);
    for (int i = 0; i < d->batch; i++, beta = 1.0f) {
        const float *ai = a + i * sa, *ci = dc + i * sc;
        if (!d->tb) vcm_gemm(0, 0, d->K, d->N, d->M, 1.0f, ai, lda, ci, d->N, beta, db, d->N, scratch);
        else vcm_gemm(1, 1, d->N, d->K, d->M, 1.0f, ci, d->N, ai, lda, beta, db, d->K, scratch);
    }
}

static MatmulDims matmul_dims_of(const Node *n) {
    MatmulDims d = {n->iattr[0], n->iattr[1], n->iattr[2], n->iattr[3], n->iattr[4], n->iattr[5], 0};
    d.shared = n->in[1]->ndim == 2 && d.batch > 1;
    return d;
}

static void matmul_node_backward(Node *n) {
    MatmulDims d = matmul_dims_of(n);
    Tensor *a = n->in[0], *b = n->in[1];
    if (a->grad) k_matmul_backward_a(&d, a->grad, n->out->grad, b->data, grad_overwrite(a));
    if (b->grad) k_matmul_backward_b(&d, b->grad, n->out->grad, a->data, n->saved, grad_overwrite(b));
}

Tensor *op_matmul(Graph *g, Tensor *a, Tensor *b, int ta, int tb) {
    if (!a || !b) return NULL;
    char sa[64], sb[64];
    ta = !!ta; tb = !!tb;
    int ok = a->ndim >= 2 && b->ndim >= 2 && (b->ndim == 2 || b->ndim == a->ndim);
    for (int i = 0; ok && b->ndim > 2 && i < a->ndim - 2; i++) ok = a->shape[i] == b->shape[i];
    int M = 0, N = 0, K = 0;
    if (ok) {
        int ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
        int br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
        M = ta ? ac : ar; K = ta ? ar : ac;
        N = tb ? br : bc;
        ok = (tb ? bc : br) == K;
    }
    if (!ok) {
        graph_fail(g, "matmul: a %s%s and b %s%s do not multiply (a [..., M, K], b [..., K, N] or [K, N])",
                   shape_str(a, sa, sizeof sa), ta ? "ᵀ" : "", shape_str(b, sb, sizeof sb), tb ? "ᵀ" : "");
        return NULL;
    }
    size_t batch = a->n / ((size_t)M * K);
    if (batch > 0x7fffffff) { graph_fail(g, "matmul: batch of %zu is too large", batch); return NULL; }
    int shape[VCM_MAXDIM];
    memcpy(shape, a->shape, sizeof shape);
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    int wg = graph_wants_grad(g, a, b, NULL);
    Tensor *c = graph_tensor(g, a->ndim, shape, wg);
    if (!c) return NULL;
    MatmulDims d = {ta, tb, M, N, K, (int)batch, b->ndim == 2 && batch > 1};
    k_matmul_forward(&d, c->data, a->data, b->data);
    if (wg) {
        Node *n = graph_push(g, "matmul", matmul_node_backward, c);
        if (!n) return NULL;
        n->in[0] = a; n->in[1] = b;
        n->saved = g;
        int at[6] = {ta, tb, M, N, K, (int)batch};
        memcpy(n->iattr, at, sizeof at);
    }
    return c;
}
