/* The basic layers: Linear, LayerNorm, Embedding. Each is a struct of parameter
 * pointers (declared in a ParamStore under a PyTorch-style name) plus a forward
 * function that calls the ops; the ops record what backward needs. */
#include "nn.h"

#include <stdio.h>

/* "<prefix>.<leaf>", or "<leaf>" for an empty prefix. */
static int param_name(char *buf, const char *prefix, const char *leaf) {
    int k = prefix && *prefix ? snprintf(buf, NN_NAME_MAX, "%s.%s", prefix, leaf)
                              : snprintf(buf, NN_NAME_MAX, "%s", leaf);
    if (k < 0 || k >= NN_NAME_MAX)
        return vcm_fail(VCM_ERR, "parameter name %s.%s is longer than %d bytes", prefix, leaf, NN_NAME_MAX - 1);
    return VCM_OK;
}

static Tensor *declare(ParamStore *ps, const char *prefix, const char *leaf, int ndim, const int *shape,
                       int init, float std, int decay) {
    char name[NN_NAME_MAX];
    if (param_name(name, prefix, leaf)) return NULL;
    return params_declare(ps, name, ndim, shape, init, std, decay);
}

int linear_declare(Linear *l, ParamStore *ps, const char *prefix, int in, int out, int bias, float std) {
    int ws[2] = {out, in}, bs[1] = {out};
    l->in = in;
    l->out = out;
    l->b = NULL;
    l->w = declare(ps, prefix, "weight", 2, ws, NN_INIT_NORMAL, std, 1);
    if (!l->w) return VCM_ERR;
    if (bias && !(l->b = declare(ps, prefix, "bias", 1, bs, NN_INIT_ZEROS, 0, 0))) return VCM_ERR;
    return VCM_OK;
}

Tensor *linear_forward(Graph *g, const Linear *l, Tensor *x) { return op_linear(g, x, l->w, l->b); }
Tensor *linear_forward_residual(Graph *g, const Linear *l, Tensor *x, Tensor *r) {
    return op_linear_residual(g, x, l->w, l->b, r);
}

int layernorm_declare(LayerNorm *l, ParamStore *ps, const char *prefix, int d) {
    int s[1] = {d};
    l->d = d;
    l->eps = NN_LN_EPS;
    l->w = declare(ps, prefix, "weight", 1, s, NN_INIT_ONES, 0, 0);
    l->b = l->w ? declare(ps, prefix, "bias", 1, s, NN_INIT_ZEROS, 0, 0) : NULL;
    return l->b ? VCM_OK : VCM_ERR;
}

Tensor *layernorm_forward(Graph *g, const LayerNorm *l, Tensor *x) {
    return op_layernorm(g, x, l->w, l->b, l->eps);
}

int embedding_declare(Embedding *e, ParamStore *ps, const char *prefix, int n, int d, float std) {
    int s[2] = {n, d};
    e->n = n;
    e->d = d;
    e->w = declare(ps, prefix, "weight", 2, s, NN_INIT_NORMAL, std, 0);
    return e->w ? VCM_OK : VCM_ERR;
}

Tensor *embedding_forward(Graph *g, const Embedding *e, const int32_t *ids, int ndim_ids, const int *ids_shape) {
    return op_embedding(g, e->w, ids, ndim_ids, ids_shape);
}

Tensor *embedding_add_positions(Graph *g, const Embedding *e, Tensor *x) {
    if (!x) return NULL;
    if (x->ndim != 3 || x->shape[2] != e->d || x->shape[1] > e->n) {
        char b[64];
        graph_fail(g, "positions [%d, %d] added to %s: want [B, T <= %d, %d]", e->n, e->d,
                   shape_str(x, b, sizeof b), e->n, e->d);
        return NULL;
    }
    /* A view of the first T rows: its grad points into the table's grad. */
    return op_add(g, x, op_slice0(g, e->w, 0, x->shape[1]));
}

Tensor *embedding_logits(Graph *g, const Embedding *e, Tensor *x) { return op_linear(g, x, e->w, NULL); }
