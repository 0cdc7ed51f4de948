/* The tensor API in a short example (README.md shows this file whole): a linear layer,
 * cross-entropy, backward, and one gradient checked against a finite difference. */
#include "tensor/tensor.h"

#include <stdio.h>

int main(void) {
    Graph g;
    if (graph_init(&g, 64 << 20)) return 1;   /* activations come from this arena */
    Tensor *x = tensor_2d(&g, 4, 8, 0);       /* an input: no gradient */
    Tensor *W = tensor_2d(&g, 3, 8, 1);       /* a weight: carries a gradient */
    int32_t y[4] = {0, 2, 1, 2};
    for (size_t i = 0; i < x->n; i++) x->data[i] = (float)(i % 5) / 5 - 0.4f;
    for (size_t i = 0; i < W->n; i++) W->data[i] = (float)(i % 7) / 10 - 0.3f;
    Tensor *logits = op_linear(&g, x, W, NULL);          /* [4, 3] = x·Wᵀ */
    Tensor *loss = op_cross_entropy(&g, logits, y, -1);  /* scalar */
    if (!loss || graph_backward(&g, loss)) {             /* ops fail softly; check once */
        fprintf(stderr, "%s\n", vcm_error());
        return 1;
    }
    printf("loss %.6f\n", loss->data[0]);
    /* W->grad now holds d loss / d W; W[1][2] by a central difference, without a tape */
    g.grad_enabled = 0;
    float h = 1e-2f, *w = &W->data[1 * 8 + 2], l[2];
    for (int s = 0; s < 2; s++) {
        *w += s ? -2 * h : h;
        Tensor *ls = op_cross_entropy(&g, op_linear(&g, x, W, NULL), y, -1);
        if (!ls) { fprintf(stderr, "%s\n", vcm_error()); return 1; }
        l[s] = ls->data[0];
    }
    *w += h;
    printf("dloss/dW[1][2] %.6f (finite difference %.6f)\n", W->grad[1 * 8 + 2], (l[0] - l[1]) / (2 * h));
    graph_reset(&g);                          /* the next step would reuse the arena */
    graph_free(&g);
    return 0;
}
