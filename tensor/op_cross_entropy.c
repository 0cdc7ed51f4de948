/* Mean cross-entropy with an ignore index (PyTorch's F.cross_entropy, reduction='mean'):
 *     loss = (1/count) Σ_{rows with t ≠ ignore} (lse(x_row) − x_row[t]),  0 if count = 0.
 * Forward keeps only the row log-sum-exp (node->saved); backward recomputes
 * softmax = exp(x − lse) in the same pass that writes the gradient:
 *     dx = dloss/count · (softmax − onehot(t))   (ignored rows get nothing).
 * Rows are independent (split over threads); the row losses are added in row order. */
#include "tensor.h"
#include "vecmath.h"

#include <math.h>
#include <string.h>

#define CE_PAR_MIN 32768

static float ce_row_lse(const float *x, int V) {
    int j = 0;
    float mx = -INFINITY;
    if (V >= VF_N) {
        vf m = vf_load(x);
        for (j = VF_N; j + VF_N <= V; j += VF_N) m = vf_max(m, vf_load(x + j));
        mx = vf_hmax(m);
    }
    for (; j < V; j++) mx = x[j] > mx ? x[j] : mx;
    vf vmx = vf_set1(mx), s = vf_zero();
    for (j = 0; j + VF_N <= V; j += VF_N) s = vf_add(s, vf_exp(vf_sub(vf_load(x + j), vmx)));
    float sum = vf_hsum(s);
    for (; j < V; j++) sum += vm_expf(x[j] - mx);
    return mx + logf(sum);
}

/* loss_row, lse: N floats each. Returns the number of rows that count. */
static int k_cross_entropy_forward(float *out, float *loss_row, float *lse, const float *logits,
                                   const int32_t *targets, int ignore_index, size_t N, int V) {
    long n = (long)N;
#pragma omp parallel for schedule(static) if (N * (size_t)V >= CE_PAR_MIN)
    for (long r = 0; r < n; r++) {
        const float *x = logits + (size_t)r * V;
        if (targets[r] == ignore_index) { loss_row[r] = 0.0f; lse[r] = 0.0f; continue; }
        lse[r] = ce_row_lse(x, V);
        loss_row[r] = lse[r] - x[targets[r]];
    }
    double total = 0.0;
    int count = 0;
    for (size_t r = 0; r < N; r++) {
        total += loss_row[r];
        count += targets[r] != ignore_index;
    }
    out[0] = count ? (float)(total / count) : 0.0f;
    return count;
}

/* dlogits += the gradient, or = it when set (dlogits held no values: the ignored rows,
 * or all rows when none counts, are then written as zeros). */
static void k_cross_entropy_backward(float *dlogits, int set, float dout, int count, const float *lse,
                                     const float *logits, const int32_t *targets, int ignore_index,
                                     size_t N, int V) {
    float scale = count ? dout / (float)count : 0.0f;
    long n = (long)N;
    if (count == 0 && !set) return;
#pragma omp parallel for schedule(static) if (N * (size_t)V >= CE_PAR_MIN)
    for (long r = 0; r < n; r++) {
        float *dx = dlogits + (size_t)r * V;
        if (count == 0 || targets[r] == ignore_index) {
            if (set) memset(dx, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float *x = logits + (size_t)r * V;
        vf vl = vf_set1(lse[r]), vs = vf_set1(scale);
        int j;
        for (j = 0; j + VF_N <= V; j += VF_N) {
            vf p = vf_exp(vf_sub(vf_load(x + j), vl));
            vf_store(dx + j, set ? vf_mul(p, vs) : vf_fma(p, vs, vf_load(dx + j)));
        }
        for (; j < V; j++) dx[j] = fmaf(vm_expf(x[j] - lse[r]), scale, set ? 0.0f : dx[j]);
        dx[targets[r]] -= scale;
    }
}

static void cross_entropy_node_backward(Node *node) {
    Tensor *x = node->in[0];
    if (!x->grad) return;
    k_cross_entropy_backward(x->grad, grad_overwrite(x), node->out->grad[0], node->iattr[1], node->saved, x->data,
                             node->ids, node->iattr[0], tensor_rows(x), tensor_cols(x));
}

Tensor *op_cross_entropy(Graph *g, Tensor *logits, const int32_t *targets, int ignore_index) {
    if (!logits) return NULL;
    if (!targets) { graph_fail(g, "cross_entropy: no targets"); return NULL; }
    size_t N = tensor_rows(logits);
    int V = tensor_cols(logits);
    for (size_t r = 0; r < N; r++)
        if (targets[r] != ignore_index && (targets[r] < 0 || targets[r] >= V)) {
            graph_fail(g, "cross_entropy: target %d of row %zu is outside [0, %d) and is not the ignore index %d",
                       (int)targets[r], r, V, ignore_index);
            return NULL;
        }
    int wg = graph_wants_grad(g, logits, NULL, NULL);
    int shape[1] = {1};
    Tensor *out = graph_tensor(g, 1, shape, wg);
    if (!out) return NULL;
    float *buf = arena_alloc(&g->arena, 2 * N * sizeof(float)); /* lse | row losses */
    if (!buf) { graph_fail(g, "cross_entropy: %s", vcm_error()); return NULL; }
    int count = k_cross_entropy_forward(out->data, buf + N, buf, logits->data, targets, ignore_index, N, V);
    if (wg) {
        Node *n = graph_push(g, "cross_entropy", cross_entropy_node_backward, out);
        if (!n) return NULL;
        n->in[0] = logits;
        n->saved = buf;
        n->ids = targets;
        n->iattr[0] = ignore_index;
        n->iattr[1] = count;
    }
    return out;
}
