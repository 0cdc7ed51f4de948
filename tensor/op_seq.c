/* Concatenation and slicing along the sequence (dim 1 of [B, T, D]); both copy.
 * Each output row comes from exactly one input row, so the backward is a copy-add
 * with no two threads touching the same element. The two ops are each other's
 * backward, so their kernels are named by the direction of the copy: k_seq_place
 * (into the long sequence: concat forward, slice backward) and k_seq_take (out of it:
 * slice forward, concat backward). */
#include "tensor.h"

#include <string.h>

#define SEQ_PAR_MIN 65536

/* big [B, Tbig, D] rows [off, off+T) ← small [B, T, D]: copied, or added when `add`. */
static void k_seq_place(float *big, int Tbig, int off, const float *small, int B, int T, int D, int add) {
    size_t row = (size_t)T * D;
#pragma omp parallel for schedule(static) if ((size_t)B * row >= SEQ_PAR_MIN)
    for (int b = 0; b < B; b++) {
        float *dst = big + ((size_t)b * Tbig + off) * D;
        const float *src = small + b * row;
        if (add) for (size_t i = 0; i < row; i++) dst[i] += src[i];
        else memcpy(dst, src, row * sizeof(float));
    }
}

/* small [B, T, D] ← big [B, Tbig, D] rows [off, off+T): copied, or added when `add`. */
static void k_seq_take(float *small, const float *big, int Tbig, int off, int B, int T, int D, int add) {
    size_t row = (size_t)T * D;
#pragma omp parallel for schedule(static) if ((size_t)B * row >= SEQ_PAR_MIN)
    for (int b = 0; b < B; b++) {
        const float *src = big + ((size_t)b * Tbig + off) * D;
        float *dst = small + b * row;
        if (add) for (size_t i = 0; i < row; i++) dst[i] += src[i];
        else memcpy(dst, src, row * sizeof(float));
    }
}

/* ------------------------------------------------------------------ concat */

static void concat_seq_node_backward(Node *n) {
    Tensor **xs = n->saved, *out = n->out;
    int B = out->shape[0], Tout = out->shape[1], D = out->shape[2], off = 0;
    for (int i = 0; i < n->iattr[0]; i++) {
        /* each input's gradient is a whole block of out's: copied when it held no values */
        if (xs[i]->grad) k_seq_take(xs[i]->grad, out->grad, Tout, off, B, xs[i]->shape[1], D, !grad_overwrite(xs[i]));
        off += xs[i]->shape[1];
    }
}

Tensor *op_concat_seq(Graph *g, Tensor **xs, int n) {
    if (!xs || n < 1) { graph_fail(g, "concat_seq: needs at least one tensor (got %d)", n); return NULL; }
    for (int i = 0; i < n; i++)
        if (!xs[i]) return NULL;
    char s0[64], si[64];
    long T = 0;
    int wg = 0;
    for (int i = 0; i < n; i++) {
        if (xs[i]->ndim != 3 || xs[i]->shape[0] != xs[0]->shape[0] || xs[i]->shape[2] != xs[0]->shape[2]) {
            graph_fail(g, "concat_seq: tensor %d %s does not match tensor 0 %s (all [B, T_i, D])", i,
                       shape_str(xs[i], si, sizeof si), shape_str(xs[0], s0, sizeof s0));
            return NULL;
        }
        T += xs[i]->shape[1];
        wg |= graph_wants_grad(g, xs[i], NULL, NULL);
    }
    if (T > 0x7fffffff) { graph_fail(g, "concat_seq: %ld positions is too many", T); return NULL; }
    int B = xs[0]->shape[0], D = xs[0]->shape[2];
    int shape[3] = {B, (int)T, D};
    Tensor *out = graph_tensor(g, 3, shape, wg);
    if (!out) return NULL;
    int off = 0;
    for (int i = 0; i < n; i++) {
        k_seq_place(out->data, (int)T, off, xs[i]->data, B, xs[i]->shape[1], D, 0);
        off += xs[i]->shape[1];
    }
    if (wg) {
        /* The caller's array may not outlive the call: keep a copy in the arena. */
        Tensor **keep = arena_alloc(&g->arena, (size_t)n * sizeof *keep);
        if (!keep) { graph_fail(g, "%s", vcm_error()); return NULL; }
        memcpy(keep, xs, (size_t)n * sizeof *keep);
        Node *node = graph_push(g, "concat_seq", concat_seq_node_backward, out);
        if (!node) return NULL;
        node->saved = keep;
        node->iattr[0] = n;
    }
    return out;
}

/* ------------------------------------------------------------------ slice */

static void slice_seq_node_backward(Node *n) {
    Tensor *x = n->in[0], *out = n->out;
    if (!x->grad) return;
    int B = x->shape[0], T = x->shape[1], D = x->shape[2], off = n->iattr[0], len = out->shape[1];
    if (grad_overwrite(x)) { /* x's gradient held no values: zeros outside the slice, then a copy */
#pragma omp parallel for schedule(static) if ((size_t)B * T * D >= SEQ_PAR_MIN)
        for (int b = 0; b < B; b++) {
            float *xb = x->grad + (size_t)b * T * D;
            memset(xb, 0, (size_t)off * D * sizeof(float));
            memset(xb + (size_t)(off + len) * D, 0, (size_t)(T - off - len) * D * sizeof(float));
        }
        k_seq_place(x->grad, T, off, out->grad, B, len, D, 0);
        return;
    }
    k_seq_place(x->grad, T, off, out->grad, B, len, D, 1);
}

Tensor *op_slice_seq(Graph *g, Tensor *x, int start, int len) {
    if (!x) return NULL;
    char sx[64];
    if (x->ndim != 3) {
        graph_fail(g, "slice_seq: x %s must be [B, T, D]", shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if (start < 0 || len <= 0 || start > x->shape[1] - len) {
        graph_fail(g, "slice_seq: positions [%d, %d) outside a sequence of %d", start, start + len, x->shape[1]);
        return NULL;
    }
    int B = x->shape[0], T = x->shape[1], D = x->shape[2];
    int shape[3] = {B, len, D};
    int wg = graph_wants_grad(g, x, NULL, NULL);
    Tensor *out = graph_tensor(g, 3, shape, wg);
    if (!out) return NULL;
    k_seq_take(out->data, x->data, T, start, B, len, D, 0);
    if (wg) {
        Node *n = graph_push(g, "slice_seq", slice_seq_node_backward, out);
        if (!n) return NULL;
        n->in[0] = x;
        n->iattr[0] = start;
    }
    return out;
}
