/* Mean over one dimension. x is seen as [outer, L, inner] (L = the reduced dim);
 * out[o, i] = (Σ_j x[o, j, i]) / L with j in order, each output element summed by one
 * thread, so the result does not depend on the thread count. */
#include "tensor.h"

#include <string.h>

#define MEAN_PAR_MIN 65536
#define MEAN_COLS 256 /* inner elements per work item */

static void k_mean_forward(float *out, const float *x, size_t outer, size_t L, size_t inner) {
    size_t nblk = (inner + MEAN_COLS - 1) / MEAN_COLS;
    long items = (long)(outer * nblk);
#pragma omp parallel for schedule(static) if (outer * L * inner >= MEAN_PAR_MIN && items > 1)
    for (long it = 0; it < items; it++) {
        size_t o = (size_t)it / nblk, i0 = ((size_t)it % nblk) * MEAN_COLS;
        size_t i1 = i0 + MEAN_COLS < inner ? i0 + MEAN_COLS : inner;
        float acc[MEAN_COLS] = {0};
        for (size_t j = 0; j < L; j++) {
            const float *row = x + (o * L + j) * inner;
            for (size_t i = i0; i < i1; i++) acc[i - i0] += row[i];
        }
        for (size_t i = i0; i < i1; i++) out[o * inner + i] = acc[i - i0] / (float)L;
    }
}

static void k_mean_backward(float *dx, const float *dout, size_t outer, size_t L, size_t inner) {
    float inv = 1.0f / (float)L;
#pragma omp parallel for schedule(static) if (outer * L * inner >= MEAN_PAR_MIN)
    for (size_t r = 0; r < outer * L; r++) {
        const float *d = dout + (r / L) * inner;
        float *g = dx + r * inner;
        for (size_t i = 0; i < inner; i++) g[i] += d[i] * inv;
    }
}

static void mean_node_backward(Node *n) {
    Tensor *x = n->in[0];
    int dim = n->iattr[0];
    size_t outer = shape_numel(dim, x->shape), L = (size_t)x->shape[dim];
    if (!x->grad) return;
    grad_accumulate(x);
    k_mean_backward(x->grad, n->out->grad, outer, L, x->n / (outer * L));
}

Tensor *op_mean(Graph *g, Tensor *x, int dim) {
    if (!x) return NULL;
    if (dim < -x->ndim || dim >= x->ndim) {
        char sx[64];
        graph_fail(g, "mean: dim %d out of range for %s", dim, shape_str(x, sx, sizeof sx));
        return NULL;
    }
    if (dim < 0) dim += x->ndim;
    int shape[VCM_MAXDIM] = {1}, nd = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i != dim) shape[nd++] = x->shape[i];
    if (nd == 0) nd = 1; /* a 1-D input gives [1] */
    int wg = graph_wants_grad(g, x, NULL, NULL);
    Tensor *out = graph_tensor(g, nd, shape, wg);
    if (!out) return NULL;
    size_t outer = shape_numel(dim, x->shape), L = (size_t)x->shape[dim];
    k_mean_forward(out->data, x->data, outer, L, x->n / (outer * L));
    if (wg) {
        Node *n = graph_push(g, "mean", mean_node_backward, out);
        if (!n) return NULL;
        n->in[0] = x;
        n->iattr[0] = dim;
    }
    return out;
}
