/* GELU, tanh form (PyTorch's approximate='tanh'):
 *     y = 0.5·x·(1 + tanh(u)),  u = √(2/π)·(x + 0.044715·x³).
 * Computed through the identity 0.5·(1 + tanh(u)) = σ(2u) = 1 / (1 + exp(−2u)), which
 * needs one exp and has no cancellation for negative u, and whose derivative is cheap:
 *     dy/dx = s + 2·x·s·(1 − s)·√(2/π)·(1 + 3·0.044715·x²),  s = σ(2u).
 * Elementwise, so any split over threads gives the same bits. */
#include "tensor.h"
#include "vecmath.h"

#include <string.h>

#define GELU_K 0.7978845608028654f /* √(2/π) */
#define GELU_C 0.044715f
#define GELU_PAR_MIN 32768

static inline float gelu_sig(float x) { /* σ(2u) */
    float u = GELU_K * (x + GELU_C * x * x * x);
    return 1.0f / (1.0f + vm_expf(-2.0f * u));
}

static inline vf gelu_vsig(vf x) {
    vf x2 = vf_mul(x, x);
    vf u = vf_mul(vf_set1(GELU_K), vf_fma(vf_mul(vf_set1(GELU_C), x2), x, x));
    vf e = vf_exp(vf_mul(vf_set1(-2.0f), u));
    return vf_div(vf_set1(1.0f), vf_add(vf_set1(1.0f), e));
}

/* One span on the calling thread: vector body, scalar tail. */
static void k_gelu_forward_span(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + VF_N <= n; i += VF_N) {
        vf v = vf_load(x + i);
        vf_store(y + i, vf_mul(v, gelu_vsig(v)));
    }
    for (; i < n; i++) y[i] = x[i] * gelu_sig(x[i]);
}

void vcm_gelu_span(float *y, const float *x, size_t n) { k_gelu_forward_span(y, x, n); }

static void k_gelu_forward(float *y, const float *x, size_t n) {
    /* Blocks of 1024 elements: vector body plus a scalar tail only at the very end. */
    long nb = (long)((n + 1023) / 1024);
#pragma omp parallel for schedule(static) if (n >= GELU_PAR_MIN)
    for (long b = 0; b < nb; b++) {
        size_t i = (size_t)b * 1024;
        k_gelu_forward_span(y + i, x + i, i + 1024 < n ? 1024 : n - i);
    }
}

/* dx += dy·gelu'(x), or dx = … when set (dx held no values). */
static void k_gelu_backward(float *dx, const float *dy, const float *x, size_t n, int set) {
    long nb = (long)((n + 1023) / 1024);
#pragma omp parallel for schedule(static) if (n >= GELU_PAR_MIN)
    for (long b = 0; b < nb; b++) {
        size_t i = (size_t)b * 1024, end = i + 1024 < n ? i + 1024 : n;
        const vf one = vf_set1(1.0f), k3 = vf_set1(3.0f * GELU_C), two_k = vf_set1(2.0f * GELU_K);
        for (; i + VF_N <= end; i += VF_N) {
            vf v = vf_load(x + i);
            vf s = gelu_vsig(v);
            /* s + 2k·x·s(1−s)(1 + 3c·x²) */
            vf t = vf_mul(vf_mul(two_k, v), vf_mul(s, vf_sub(one, s)));
            vf d = vf_fma(t, vf_fma(k3, vf_mul(v, v), one), s);
            vf_store(dx + i, set ? vf_mul(vf_load(dy + i), d) : vf_fma(vf_load(dy + i), d, vf_load(dx + i)));
        }
        for (; i < end; i++) {
            float v = x[i], s = gelu_sig(v);
            float d = s + 2.0f * GELU_K * v * s * (1.0f - s) * (1.0f + 3.0f * GELU_C * v * v);
            dx[i] = (set ? 0.0f : dx[i]) + dy[i] * d;
        }
    }
}

static void gelu_node_backward(Node *node) {
    Tensor *x = node->in[0], *y = node->out;
    if (x->grad) k_gelu_backward(x->grad, y->grad, x->data, y->n, grad_overwrite(x));
}

Tensor *op_gelu(Graph *g, Tensor *x) {
    if (!x) return NULL;
    int wg = graph_wants_grad(g, x, NULL, NULL);
    Tensor *y = graph_tensor(g, x->ndim, x->shape, wg);
    if (!y) return NULL;
    k_gelu_forward(y->data, x->data, x->n);
    if (wg) {
        Node *n = graph_push(g, "gelu", gelu_node_backward, y);
        if (!n) return NULL;
        n->in[0] = x;
    }
    return y;
}
