/* LayerNorm over the last dim (PyTorch semantics: biased variance, eps inside the root):
 *     y = (x − mean)·rstd·w + b,   rstd = 1/√(var + eps).
 * Forward saves mean and rstd per row (arena, node->saved). Backward, with
 * x̂ = (x − mean)·rstd and g = dy·w:
 *     dx = rstd·(g − mean(g) − x̂·mean(g·x̂)),   dw = Σ_rows dy·x̂,   db = Σ_rows dy.
 * dw/db: rows are cut into chunks of LN_CHUNK rows (a constant, not the thread count);
 * each chunk sums its rows in order into its own partial, then the partials are added
 * in chunk order, so the result is bitwise the same for any number of threads. */
#include "tensor.h"
#include "vecmath.h"

#include <math.h>
#include <string.h>

#define LN_CHUNK 32
#define LN_PAR_MIN 16384

static void k_layernorm_forward_row(float *yr, float *mean_out, float *rstd_out, const float *xr, const float *w,
                                    const float *b, int C, float eps) {
    int j;
    /* Two passes (mean, then squared deviations): the row is in L1, and this stays
     * accurate when |mean| ≫ std, unlike E[x²] − E[x]². */
    vf s = vf_zero();
    for (j = 0; j + VF_N <= C; j += VF_N) s = vf_add(s, vf_load(xr + j));
    float sum = vf_hsum(s);
    for (; j < C; j++) sum += xr[j];
    float mean = sum / (float)C;
    vf vm = vf_set1(mean), q = vf_zero();
    for (j = 0; j + VF_N <= C; j += VF_N) {
        vf d = vf_sub(vf_load(xr + j), vm);
        q = vf_fma(d, d, q);
    }
    float sq = vf_hsum(q);
    for (; j < C; j++) sq += (xr[j] - mean) * (xr[j] - mean);
    float rstd = 1.0f / sqrtf(sq / (float)C + eps);
    vf vr = vf_set1(rstd);
    for (j = 0; j + VF_N <= C; j += VF_N) {
        vf h = vf_mul(vf_sub(vf_load(xr + j), vm), vr);
        vf wj = w ? vf_load(w + j) : vf_set1(1.0f), bj = b ? vf_load(b + j) : vf_zero();
        vf_store(yr + j, vf_fma(h, wj, bj));
    }
    for (; j < C; j++) {
        float h = (xr[j] - mean) * rstd;
        yr[j] = fmaf(h, w ? w[j] : 1.0f, b ? b[j] : 0.0f);
    }
    if (mean_out) { *mean_out = mean; *rstd_out = rstd; }
}

void vcm_layernorm_row(float *y, const float *x, const float *w, const float *b, int C, float eps) {
    k_layernorm_forward_row(y, NULL, NULL, x, w, b, C, eps);
}

static void k_layernorm_forward(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b,
                                size_t rows, int C, float eps) {
    long n = (long)rows;
#pragma omp parallel for schedule(static) if (rows * (size_t)C >= LN_PAR_MIN)
    for (long r = 0; r < n; r++)
        k_layernorm_forward_row(y + (size_t)r * C, mean ? mean + r : NULL, rstd ? rstd + r : NULL, x + (size_t)r * C,
                                w, b, C, eps);
}

/* Which gradients hold no values yet (grad_overwrite): written with =, not added to. */
typedef struct { int dx, dw, db; } LnSet;

/* Rows [r0, r1): dx (if non-NULL; = when set_dx) and, into pw/pb (if non-NULL, zeroed
 * here), this chunk's sums of dy·x̂ and dy. */
static void k_layernorm_backward_chunk(float *dx, int set_dx, float *pw, float *pb, const float *dy, const float *x,
                                       const float *w, const float *mean, const float *rstd, size_t r0, size_t r1,
                                       int C) {
    if (pw) memset(pw, 0, 2 * (size_t)C * sizeof(float));
    for (size_t r = r0; r < r1; r++) {
        const float *xr = x + r * C, *dyr = dy + r * C;
        float m = mean[r], rs = rstd[r];
        vf vm = vf_set1(m), vr = vf_set1(rs);
        int j;
        /* One pass: a = Σ g, bs = Σ g·x̂ (g = dy·w), and the dw/db partials. */
        vf va = vf_zero(), vb = vf_zero();
        for (j = 0; j + VF_N <= C; j += VF_N) {
            vf h = vf_mul(vf_sub(vf_load(xr + j), vm), vr), d = vf_load(dyr + j);
            vf gj = w ? vf_mul(d, vf_load(w + j)) : d;
            va = vf_add(va, gj);
            vb = vf_fma(gj, h, vb);
            if (pw) {
                vf_store(pw + j, vf_fma(d, h, vf_load(pw + j)));
                vf_store(pb + j, vf_add(d, vf_load(pb + j)));
            }
        }
        float a = vf_hsum(va), bs = vf_hsum(vb);
        for (; j < C; j++) {
            float h = (xr[j] - m) * rs, gj = w ? dyr[j] * w[j] : dyr[j];
            a += gj;
            bs = fmaf(gj, h, bs);
            if (pw) {
                pw[j] = fmaf(dyr[j], h, pw[j]);
                pb[j] += dyr[j];
            }
        }
        if (!dx) continue;
        /* dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) */
        float ma = a / (float)C, mb = bs / (float)C;
        vf vma = vf_set1(ma), vmb = vf_set1(mb);
        float *dxr = dx + r * C;
        for (j = 0; j + VF_N <= C; j += VF_N) {
            vf h = vf_mul(vf_sub(vf_load(xr + j), vm), vr);
            vf gj = w ? vf_mul(vf_load(dyr + j), vf_load(w + j)) : vf_load(dyr + j);
            vf t = vf_fnma(h, vmb, vf_sub(gj, vma));
            vf_store(dxr + j, set_dx ? vf_mul(t, vr) : vf_fma(t, vr, vf_load(dxr + j)));
        }
        for (; j < C; j++) {
            float h = (xr[j] - m) * rs, gj = w ? dyr[j] * w[j] : dyr[j];
            float t = fmaf(-h, mb, gj - ma);
            dxr[j] = set_dx ? t * rs : fmaf(t, rs, dxr[j]);
        }
    }
}

/* Columns [j0, j0+VF_N) (or to C): dw, db += the partials, added in chunk order. */
static void ln_reduce_block(float *dw, float *db, LnSet set, const float *partial, long n_chunks, int j0, int C) {
    size_t stride = 2 * (size_t)C;
    if (j0 + VF_N <= C) {
        vf sw = vf_zero(), sb = vf_zero();
        for (long c = 0; c < n_chunks; c++) {
            sw = vf_add(sw, vf_load(partial + (size_t)c * stride + j0));
            sb = vf_add(sb, vf_load(partial + (size_t)c * stride + C + j0));
        }
        if (dw) vf_store(dw + j0, set.dw ? sw : vf_add(vf_load(dw + j0), sw));
        if (db) vf_store(db + j0, set.db ? sb : vf_add(vf_load(db + j0), sb));
        return;
    }
    for (int j = j0; j < C; j++) { /* same order per column as the vector lanes */
        float sw = 0.0f, sb = 0.0f;
        for (long c = 0; c < n_chunks; c++) {
            sw += partial[(size_t)c * stride + j];
            sb += partial[(size_t)c * stride + C + j];
        }
        if (dw) dw[j] = (set.dw ? 0.0f : dw[j]) + sw;
        if (db) db[j] = (set.db ? 0.0f : db[j]) + sb;
    }
}

/* partial: n_chunks × 2C floats of scratch (needed when dw or db is non-NULL). */
static void k_layernorm_backward(float *dx, float *dw, float *db, LnSet set, float *partial, const float *dy,
                                 const float *x, const float *w, const float *mean, const float *rstd,
                                 size_t rows, int C) {
    long n_chunks = (long)((rows + LN_CHUNK - 1) / LN_CHUNK);
    int want_wb = dw || db, n_blocks = (C + VF_N - 1) / VF_N;
    /* One parallel region, two loops: the barrier between them completes the partials
     * before they are added. */
#pragma omp parallel if (rows * (size_t)C >= LN_PAR_MIN)
    {
#pragma omp for schedule(static)
        for (long c = 0; c < n_chunks; c++) {
            size_t r0 = (size_t)c * LN_CHUNK, r1 = r0 + LN_CHUNK < rows ? r0 + LN_CHUNK : rows;
            float *pw = want_wb ? partial + (size_t)c * 2 * C : NULL;
            k_layernorm_backward_chunk(dx, set.dx, pw, pw ? pw + C : NULL, dy, x, w, mean, rstd, r0, r1, C);
        }
        if (want_wb) {
#pragma omp for schedule(static)
            for (int jb = 0; jb < n_blocks; jb++) ln_reduce_block(dw, db, set, partial, n_chunks, jb * VF_N, C);
        }
    }
}

static void layernorm_node_backward(Node *node) {
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    const float *mean = node->saved;
    size_t rows = tensor_rows(x);
    float *dw = w ? w->grad : NULL, *db = b ? b->grad : NULL;
    LnSet set = {x->grad && grad_overwrite(x), dw && grad_overwrite(w), db && grad_overwrite(b)};
    k_layernorm_backward(x->grad, dw, db, set, node->saved2, y->grad, x->data,
                         w ? w->data : NULL, mean, mean + rows, rows, tensor_cols(x));
}

Tensor *op_layernorm(Graph *g, Tensor *x, Tensor *w, Tensor *b, float eps) {
    if (!x) return NULL;
    int C = tensor_cols(x);
    char s1[64], s2[64];
    if ((w && (w->n != (size_t)C)) || (b && (b->n != (size_t)C))) {
        graph_fail(g, "layernorm: input %s needs weight and bias of %d elements, got %s and %s",
                   shape_str(x, s1, sizeof s1), C, w ? shape_str(w, s2, sizeof s2) : "none",
                   b ? shape_str(b, s1, sizeof s1) : "none");
        return NULL;
    }
    int wg = graph_wants_grad(g, x, w, b);
    Tensor *y = graph_tensor(g, x->ndim, x->shape, wg);
    if (!y) return NULL;
    size_t rows = tensor_rows(x);
    float *stats = NULL, *partial = NULL;
    if (wg) {
        stats = arena_alloc(&g->arena, 2 * rows * sizeof(float));
        if ((w && w->grad) || (b && b->grad))
            partial = arena_alloc(&g->arena, (rows + LN_CHUNK - 1) / LN_CHUNK * 2 * (size_t)C * sizeof(float));
        if (!stats || (((w && w->grad) || (b && b->grad)) && !partial)) {
            graph_fail(g, "layernorm: %s", vcm_error());
            return NULL;
        }
    }
    k_layernorm_forward(y->data, stats, stats ? stats + rows : NULL, x->data, w ? w->data : NULL,
                        b ? b->data : NULL, rows, C, eps);
    if (wg) {
        Node *n = graph_push(g, "layernorm", layernorm_node_backward, y);
        if (!n) return NULL;
        n->in[0] = x;
        n->in[1] = w;
        n->in[2] = b;
        n->saved = stats;
        n->saved2 = partial;
        n->fattr[0] = eps;
    }
    return y;
}
