/* Multi-head self-attention, the MLP and the pre-LN transformer block built from them. */
#include "nn.h"

#include <stdio.h>

/* buf = "<prefix>.<leaf>" (or "<leaf>"), checked against the name limit. */
static int join(char *buf, const char *prefix, const char *leaf) {
    int k = prefix && *prefix ? snprintf(buf, NN_NAME_MAX, "%s.%s", prefix, leaf)
                              : snprintf(buf, NN_NAME_MAX, "%s", leaf);
    if (k < 0 || k >= NN_NAME_MAX)
        return vcm_fail(VCM_ERR, "parameter prefix %s.%s is longer than %d bytes", prefix, leaf, NN_NAME_MAX - 1);
    return VCM_OK;
}

int attention_declare(Attention *a, ParamStore *ps, const char *prefix, int d, int n_heads, float proj_std) {
    char name[NN_NAME_MAX];
    if (n_heads <= 0 || d <= 0 || d % n_heads)
        return vcm_fail(VCM_ERR, "attention %s: width %d is not a multiple of %d heads", prefix, d, n_heads);
    a->d = d;
    a->n_heads = n_heads;
    if (join(name, prefix, "qkv") || linear_declare(&a->qkv, ps, name, d, 3 * d, 1, NN_INIT_STD)) return VCM_ERR;
    if (join(name, prefix, "proj") || linear_declare(&a->proj, ps, name, d, d, 1, proj_std)) return VCM_ERR;
    return VCM_OK;
}

int mlp_declare(Mlp *m, ParamStore *ps, const char *prefix, int d, int hidden, float fc2_std) {
    char name[NN_NAME_MAX];
    if (join(name, prefix, "fc1") || linear_declare(&m->fc1, ps, name, d, hidden, 1, NN_INIT_STD)) return VCM_ERR;
    if (join(name, prefix, "fc2") || linear_declare(&m->fc2, ps, name, hidden, d, 1, fc2_std)) return VCM_ERR;
    return VCM_OK;
}

int block_declare(Block *b, ParamStore *ps, const char *prefix, int d, int n_heads, float resid_std) {
    char name[NN_NAME_MAX];
    if (join(name, prefix, "norm1") || layernorm_declare(&b->norm1, ps, name, d)) return VCM_ERR;
    if (join(name, prefix, "attn") || attention_declare(&b->attn, ps, name, d, n_heads, resid_std)) return VCM_ERR;
    if (join(name, prefix, "norm2") || layernorm_declare(&b->norm2, ps, name, d)) return VCM_ERR;
    if (join(name, prefix, "mlp") || mlp_declare(&b->mlp, ps, name, d, NN_MLP_RATIO * d, resid_std)) return VCM_ERR;
    return VCM_OK;
}

/* The residual adds are folded into proj's and fc2's gemms (op_linear_residual): the
 * same sums as x + proj(attention) and h + fc2(gelu(fc1(norm2(h)))) with op_add, one
 * pass fewer each way. */
Tensor *block_forward_qkv(Graph *g, const Block *b, Tensor *x, Tensor *qkv, int causal, const uint8_t *key_valid,
                          int q0) {
    if (!x || !qkv) return NULL;
    Tensor *a = op_attention_from(g, qkv, b->attn.n_heads, causal, key_valid, q0);
    Tensor *r = q0 ? op_slice_seq(g, x, q0, x->shape[1] - q0) : x;
    Tensor *h = linear_forward_residual(g, &b->attn.proj, a, r);
    Tensor *hid = op_gelu(g, linear_forward(g, &b->mlp.fc1, layernorm_forward(g, &b->norm2, h)));
    return linear_forward_residual(g, &b->mlp.fc2, hid, h);
}

Tensor *block_forward(Graph *g, const Block *b, Tensor *x, int causal, const uint8_t *key_valid) {
    return block_forward_from(g, b, x, causal, key_valid, 0);
}

/* Every row still gives its key and value (norm1 and qkv run over all of x); with
 * q0 > 0 the queries, the projection, the residual, norm2 and the MLP run over the kept
 * rows alone: the last decoder layer, whose prefix rows nobody reads. */
Tensor *block_forward_from(Graph *g, const Block *b, Tensor *x, int causal, const uint8_t *key_valid, int q0) {
    if (!x) return NULL;
    Tensor *qkv = linear_forward(g, &b->attn.qkv, layernorm_forward(g, &b->norm1, x));
    return block_forward_qkv(g, b, x, qkv, causal, key_valid, q0);
}

int blocks_declare(Block *b, int n, ParamStore *ps, const char *prefix, int d, int n_heads, float resid_std) {
    char name[NN_NAME_MAX], idx[16];
    for (int i = 0; i < n; i++) {
        snprintf(idx, sizeof idx, "%d", i);
        if (join(name, prefix, idx) || block_declare(&b[i], ps, name, d, n_heads, resid_std)) return VCM_ERR;
    }
    return VCM_OK;
}

Tensor *blocks_forward(Graph *g, const Block *b, int n, Tensor *x, int causal, const uint8_t *key_valid) {
    for (int i = 0; i < n; i++) x = block_forward(g, &b[i], x, causal, key_valid);
    return x;
}
