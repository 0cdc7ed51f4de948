/* Embedding lookup: out[i, :] = W[ids[i], :].
 *
 * Backward scatter-adds rows of dout into W.grad. Two ids may name the same row, so
 * threads must not split the ids; they split the embedding dimension instead (each owns
 * a block of columns of every row) and walk the ids in order: the same bits for any
 * thread count. */
#include "tensor.h"

#include <string.h>

#define EMB_COLS 64        /* columns per thread block in backward */
#define EMB_PAR_MIN 65536  /* elements below which one thread does it all */

static void k_embedding_forward(float *out, const float *W, const int32_t *ids, size_t n, int D) {
#pragma omp parallel for schedule(static) if (n * (size_t)D >= EMB_PAR_MIN)
    for (size_t i = 0; i < n; i++) memcpy(out + i * D, W + (size_t)ids[i] * D, (size_t)D * sizeof(float));
}

static void k_embedding_backward(float *dW, const float *dout, const int32_t *ids, size_t n, int D) {
    int nblk = (D + EMB_COLS - 1) / EMB_COLS;
#pragma omp parallel for schedule(static) if (n * (size_t)D >= EMB_PAR_MIN && nblk > 1)
    for (int blk = 0; blk < nblk; blk++) {
        int j0 = blk * EMB_COLS, j1 = j0 + EMB_COLS < D ? j0 + EMB_COLS : D;
        for (size_t i = 0; i < n; i++) {
            float *w = dW + (size_t)ids[i] * D;
            const float *d = dout + i * D;
            for (int j = j0; j < j1; j++) w[j] += d[j];
        }
    }
}

static void embedding_node_backward(Node *n) {
    Tensor *W = n->in[0];
    if (!W->grad) return;
    grad_accumulate(W); /* a parameter's is a sum already; ids repeat, so it is added to */
    k_embedding_backward(W->grad, n->out->grad, n->ids, n->out->n / (size_t)W->shape[1], W->shape[1]);
}

Tensor *op_embedding(Graph *g, Tensor *W, const int32_t *ids, int ndim_ids, const int *ids_shape) {
    if (!W) return NULL;
    char sw[64];
    if (W->ndim != 2) {
        graph_fail(g, "embedding: W %s must be [vocab, dim]", shape_str(W, sw, sizeof sw));
        return NULL;
    }
    if (ndim_ids < 1 || ndim_ids > VCM_MAXDIM - 1 || !ids_shape) {
        graph_fail(g, "embedding: ids with %d dims (1..%d allowed)", ndim_ids, VCM_MAXDIM - 1);
        return NULL;
    }
    for (int i = 0; i < ndim_ids; i++)
        if (ids_shape[i] <= 0) {
            graph_fail(g, "embedding: ids dim %d has size %d", i, ids_shape[i]);
            return NULL;
        }
    if (!ids) { graph_fail(g, "embedding: ids is NULL"); return NULL; }
    int V = W->shape[0], D = W->shape[1];
    size_t n = shape_numel(ndim_ids, ids_shape);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            graph_fail(g, "embedding: id %d at position %zu is outside the vocabulary of %d", (int)ids[i], i, V);
            return NULL;
        }
    int shape[VCM_MAXDIM];
    memcpy(shape, ids_shape, (size_t)ndim_ids * sizeof(int));
    shape[ndim_ids] = D;
    int wg = graph_wants_grad(g, W, NULL, NULL);
    Tensor *out = graph_tensor(g, ndim_ids + 1, shape, wg);
    if (!out) return NULL;
    k_embedding_forward(out->data, W->data, ids, n, D);
    if (wg) {
        Node *node = graph_push(g, "embedding", embedding_node_backward, out);
        if (!node) return NULL;
        node->in[0] = W;
        node->ids = ids;
    }
    return out;
}
