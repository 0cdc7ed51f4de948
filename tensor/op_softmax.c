/* Softmax over the last dim: y = exp(x − max) / Σ exp(x − max) (max-shifted, so it
 * never overflows). Backward: dx = y ⊙ (dy − Σ dy·y / Σ y). One row per loop iteration,
 * rows split over threads: each row is computed the same way on any thread count. */
#include "tensor.h"
#include "vecmath.h"

#include <math.h>
#include <string.h>

/* Below this many elements the OpenMP fork/join costs more than it saves. */
#define SOFTMAX_PAR_MIN 32768

static void k_softmax_forward_row(float *y, const float *x, int C) {
    int j = 0;
    float mx = -INFINITY;
    if (C >= VF_N) {
        vf m = vf_load(x);
        for (j = VF_N; j + VF_N <= C; j += VF_N) m = vf_max(m, vf_load(x + j));
        mx = vf_hmax(m);
    }
    for (; j < C; j++) mx = x[j] > mx ? x[j] : mx;

    vf vmx = vf_set1(mx), s = vf_zero();
    for (j = 0; j + VF_N <= C; j += VF_N) {
        vf e = vf_exp(vf_sub(vf_load(x + j), vmx));
        vf_store(y + j, e);
        s = vf_add(s, e);
    }
    float sum = vf_hsum(s);
    for (; j < C; j++) {
        y[j] = vm_expf(x[j] - mx);
        sum += y[j];
    }
    float inv = 1.0f / sum;
    vf vinv = vf_set1(inv);
    for (j = 0; j + VF_N <= C; j += VF_N) vf_store(y + j, vf_mul(vf_load(y + j), vinv));
    for (; j < C; j++) y[j] *= inv;
}

void vcm_softmax_row(float *y, const float *x, int C) { k_softmax_forward_row(y, x, C); }

static void k_softmax_forward(float *y, const float *x, size_t rows, int C) {
    long n = (long)rows;
#pragma omp parallel for schedule(static) if (rows * (size_t)C >= SOFTMAX_PAR_MIN)
    for (long r = 0; r < n; r++) k_softmax_forward_row(y + (size_t)r * C, x + (size_t)r * C, C);
}

/* dx += y ⊙ (dy − Σ dy·y), or dx = … when set (dx held no values). */
static void k_softmax_backward_row(float *dx, const float *dy, const float *y, int C, int set) {
    int j;
    /* Σ dy·y / Σ y, in double. dy − Σ dy·y cancels where dy is near the mean, so both
     * sums must be accurate: double for the float32 accumulation error, and the
     * division by Σ y (1 up to the rounding of y) for the error y shares along its
     * row — the float 1/Σexp of the forward scales every y of the row by the same
     * (1 + δ); dividing it out took the worst error over seeds 0–30 of
     * tests/ref/ops.py from 1.1e-4 to 2.3e-5. */
    double sy, dd = vm_dot_f64(dy, y, C, &sy);
    float dot = (float)(sy != 0.0 ? dd / sy : dd);
    vf vdot = vf_set1(dot);
    for (j = 0; j + VF_N <= C; j += VF_N) {
        vf d = vf_sub(vf_load(dy + j), vdot);
        vf_store(dx + j, set ? vf_mul(vf_load(y + j), d) : vf_fma(vf_load(y + j), d, vf_load(dx + j)));
    }
    for (; j < C; j++) dx[j] = (set ? 0.0f : dx[j]) + y[j] * (dy[j] - dot);
}

static void k_softmax_backward(float *dx, const float *dy, const float *y, size_t rows, int C, int set) {
    long n = (long)rows;
#pragma omp parallel for schedule(static) if (rows * (size_t)C >= SOFTMAX_PAR_MIN)
    for (long r = 0; r < n; r++) {
        size_t o = (size_t)r * C;
        k_softmax_backward_row(dx + o, dy + o, y + o, C, set);
    }
}

static void softmax_node_backward(Node *node) {
    Tensor *x = node->in[0], *y = node->out;
    if (x->grad) k_softmax_backward(x->grad, y->grad, y->data, tensor_rows(y), tensor_cols(y), grad_overwrite(x));
}

Tensor *op_softmax(Graph *g, Tensor *x) {
    if (!x) return NULL;
    int wg = graph_wants_grad(g, x, NULL, NULL);
    Tensor *y = graph_tensor(g, x->ndim, x->shape, wg);
    if (!y) return NULL;
    k_softmax_forward(y->data, x->data, tensor_rows(x), tensor_cols(x));
    if (wg) {
        Node *n = graph_push(g, "softmax", softmax_node_backward, y);
        if (!n) return NULL;
        n->in[0] = x;
    }
    return y;
}
