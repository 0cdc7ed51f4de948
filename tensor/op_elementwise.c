/* add, sub, mul with b repeated over a's leading dims, and scale.
 *
 * b has a's shape or a suffix of it: a is seen as [rows, nb] with nb = b->n, and row r
 * uses all of b. The gradient of a repeated b is a sum over rows; it is computed by
 * threads that each own a block of b's elements and add the rows in order, so it is
 * the same for any thread count. */
#include "tensor.h"
#include "op_matmul.h"

#include <string.h>

#define EW_PAR_MIN 65536 /* below this many elements a thread team costs more than it saves */
#define EW_COLS 256      /* columns of b per thread block in the row reductions */

/* ------------------------------------------------------------------ kernels */

/* da += s·dout (s = 1 for add, and for sub's a); da = s·dout when set (see
 * grad_overwrite: da held no values). Also op_linear_residual's r (op_matmul.h). */
void vcm_axpy_grad(float *da, const float *dout, float s, size_t n, int set) {
    if (set) {
#pragma omp parallel for schedule(static) if (n >= EW_PAR_MIN)
        for (size_t i = 0; i < n; i++) da[i] = s * dout[i];
        return;
    }
#pragma omp parallel for schedule(static) if (n >= EW_PAR_MIN)
    for (size_t i = 0; i < n; i++) da[i] += s * dout[i];
}

/* db[j] += s·Σ_r dout[r, j]·(w ? w[r, j] : 1), rows in order (= when set). */
static void ew_sum_rows(float *db, const float *dout, const float *w, float s, size_t rows, size_t nb, int set) {
    size_t nblk = (nb + EW_COLS - 1) / EW_COLS;
#pragma omp parallel for schedule(static) if (rows * nb >= EW_PAR_MIN && nblk > 1)
    for (size_t blk = 0; blk < nblk; blk++) {
        size_t j0 = blk * EW_COLS, j1 = j0 + EW_COLS < nb ? j0 + EW_COLS : nb;
        float acc[EW_COLS] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *d = dout + r * nb;
            if (w) {
                const float *x = w + r * nb;
                for (size_t j = j0; j < j1; j++) acc[j - j0] += d[j] * x[j];
            } else {
                for (size_t j = j0; j < j1; j++) acc[j - j0] += d[j];
            }
        }
        for (size_t j = j0; j < j1; j++) db[j] = (set ? 0.0f : db[j]) + s * acc[j - j0];
    }
}

/* add (s = 1) and sub (s = −1): da += dout, db += s·dout summed over the rows. When a
 * and b are the same tensor, da is complete before db adds to it (set_b is then 0). */
static void ew_addsub_grads(float *da, float *db, const float *dout, size_t rows, size_t nb, float s, int set_a,
                            int set_b) {
    if (da) vcm_axpy_grad(da, dout, 1.0f, rows * nb, set_a);
    if (db) {
        if (rows == 1) vcm_axpy_grad(db, dout, s, nb, set_b);
        else ew_sum_rows(db, dout, NULL, s, rows, nb, set_b);
    }
}

static void k_add_forward(float *out, const float *a, const float *b, size_t rows, size_t nb) {
#pragma omp parallel for schedule(static) if (rows * nb >= EW_PAR_MIN)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) out[r * nb + j] = a[r * nb + j] + b[j];
}

static void k_add_backward(float *da, float *db, const float *dout, size_t rows, size_t nb, int set_a, int set_b) {
    ew_addsub_grads(da, db, dout, rows, nb, 1.0f, set_a, set_b);
}

static void k_sub_forward(float *out, const float *a, const float *b, size_t rows, size_t nb) {
#pragma omp parallel for schedule(static) if (rows * nb >= EW_PAR_MIN)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) out[r * nb + j] = a[r * nb + j] - b[j];
}

static void k_sub_backward(float *da, float *db, const float *dout, size_t rows, size_t nb, int set_a, int set_b) {
    ew_addsub_grads(da, db, dout, rows, nb, -1.0f, set_a, set_b);
}

static void k_mul_forward(float *out, const float *a, const float *b, size_t rows, size_t nb) {
#pragma omp parallel for schedule(static) if (rows * nb >= EW_PAR_MIN)
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < nb; j++) out[r * nb + j] = a[r * nb + j] * b[j];
}

static void k_mul_backward(float *da, float *db, const float *dout, const float *a, const float *b, size_t rows,
                           size_t nb, int set_a, int set_b) {
    if (da) {
#pragma omp parallel for schedule(static) if (rows * nb >= EW_PAR_MIN)
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < nb; j++) da[r * nb + j] = (set_a ? 0.0f : da[r * nb + j]) + dout[r * nb + j] * b[j];
    }
    if (db) {
        if (rows == 1) {
#pragma omp parallel for schedule(static) if (nb >= EW_PAR_MIN)
            for (size_t j = 0; j < nb; j++) db[j] = (set_b ? 0.0f : db[j]) + dout[j] * a[j];
        } else {
            ew_sum_rows(db, dout, a, 1.0f, rows, nb, set_b);
        }
    }
}

static void k_scale_forward(float *out, const float *a, float s, size_t n) {
#pragma omp parallel for schedule(static) if (n >= EW_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = s * a[i];
}

static void k_scale_backward(float *da, const float *dout, float s, size_t n, int set) {
    vcm_axpy_grad(da, dout, s, n, set);
}

/* ------------------------------------------------------------------ graph level */

enum { EW_ADD, EW_SUB, EW_MUL };
static const char *const ew_names[] = {"add", "sub", "mul"};

static void binary_node_backward(Node *n) {
    Tensor *a = n->in[0], *b = n->in[1];
    size_t nb = b->n, rows = a->n / nb;
    const float *dout = n->out->grad;
    int set_a = a->grad && grad_overwrite(a), set_b = b->grad && grad_overwrite(b);
    switch (n->iattr[0]) {
    case EW_ADD: k_add_backward(a->grad, b->grad, dout, rows, nb, set_a, set_b); break;
    case EW_SUB: k_sub_backward(a->grad, b->grad, dout, rows, nb, set_a, set_b); break;
    default: k_mul_backward(a->grad, b->grad, dout, a->data, b->data, rows, nb, set_a, set_b); break;
    }
}

/* b's shape must equal a's or be a suffix of it. */
static int suffix_shape(const Tensor *a, const Tensor *b) {
    if (b->ndim > a->ndim) return 0;
    for (int i = 0; i < b->ndim; i++)
        if (b->shape[b->ndim - 1 - i] != a->shape[a->ndim - 1 - i]) return 0;
    return 1;
}

static Tensor *binary_op(Graph *g, Tensor *a, Tensor *b, int kind) {
    if (!a || !b) return NULL;
    if (!suffix_shape(a, b)) {
        char sa[64], sb[64];
        graph_fail(g, "%s: b %s must have a's shape %s or a suffix of it", ew_names[kind],
                   shape_str(b, sb, sizeof sb), shape_str(a, sa, sizeof sa));
        return NULL;
    }
    int wg = graph_wants_grad(g, a, b, NULL);
    Tensor *out = graph_tensor(g, a->ndim, a->shape, wg);
    if (!out) return NULL;
    size_t nb = b->n, rows = a->n / nb;
    switch (kind) {
    case EW_ADD: k_add_forward(out->data, a->data, b->data, rows, nb); break;
    case EW_SUB: k_sub_forward(out->data, a->data, b->data, rows, nb); break;
    default: k_mul_forward(out->data, a->data, b->data, rows, nb); break;
    }
    if (wg) {
        Node *n = graph_push(g, ew_names[kind], binary_node_backward, out);
        if (!n) return NULL;
        n->in[0] = a; n->in[1] = b;
        n->iattr[0] = kind;
    }
    return out;
}

Tensor *op_add(Graph *g, Tensor *a, Tensor *b) { return binary_op(g, a, b, EW_ADD); }
Tensor *op_sub(Graph *g, Tensor *a, Tensor *b) { return binary_op(g, a, b, EW_SUB); }
Tensor *op_mul(Graph *g, Tensor *a, Tensor *b) { return binary_op(g, a, b, EW_MUL); }

static void scale_node_backward(Node *n) {
    Tensor *a = n->in[0];
    if (a->grad) k_scale_backward(a->grad, n->out->grad, n->fattr[0], a->n, grad_overwrite(a));
}

Tensor *op_scale(Graph *g, Tensor *a, float s) {
    if (!a) return NULL;
    int wg = graph_wants_grad(g, a, NULL, NULL);
    Tensor *out = graph_tensor(g, a->ndim, a->shape, wg);
    if (!out) return NULL;
    k_scale_forward(out->data, a->data, s, a->n);
    if (wg) {
        Node *n = graph_push(g, "scale", scale_node_backward, out);
        if (!n) return NULL;
        n->in[0] = a;
        n->fattr[0] = s;
    }
    return out;
}
