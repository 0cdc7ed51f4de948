/* Generation with a KV cache. The prefill runs the decoder over the whole prefix with
 * the same ops as the full forward (so its keys and values are the full forward's) and
 * keeps K and V of every layer; each later token is one position through every layer:
 * LayerNorm → qkv (matrix-vector) → append k, v → attention over the cache → proj →
 * residual → LayerNorm → MLP → residual, then the final LayerNorm and the tied logits.
 * Per-token work is O(layers · (d² + len · d) + vocab · d) instead of re-running the
 * whole sequence, and it allocates nothing. */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREFILL_ARENA_BLOCK ((size_t)8 << 20)

/* ---------------------------------------------------------------- one-position kernels
 * Plain loops on one vector: the batched kernels of tensor/ are private to it, and at
 * one row their tiling (and a BLAS call per product) only costs.
 * Same formulas (LayerNorm two-pass with biased variance, GELU tanh form), so the logits
 * agree with the full forward to float rounding (tests/test_infer.c: <= 1e-4 relative). */

static void ln_vec(float *y, const float *x, const LayerNorm *ln, int d) {
    float sum = 0.0f;
    for (int j = 0; j < d; j++) sum += x[j];
    float mean = sum / (float)d, sq = 0.0f;
    for (int j = 0; j < d; j++) sq += (x[j] - mean) * (x[j] - mean);
    float rstd = 1.0f / sqrtf(sq / (float)d + ln->eps);
    const float *w = ln->w->data, *b = ln->b ? ln->b->data : NULL;
    for (int j = 0; j < d; j++) y[j] = (x[j] - mean) * rstd * w[j] + (b ? b[j] : 0.0f);
}

#define MATVEC_PAR_MIN (1 << 20)   /* multiply-adds below which one thread is faster */

/* y[o] (+)= W[o, :]·x for W [out, in] row-major, four rows at a time (x is loaded
 * once for four rows) with 16 partial sums per row that the compiler keeps in vector
 * registers; the partial sums are added in a fixed order and each block of rows is done
 * by one thread, so the result does not depend on the thread count. A hand loop rather
 * than sgemv: with the weights in cache it took half sgemv's time at these sizes
 * (128×384 … 2048×128); end to end a step streams every weight once and both run at
 * the speed of memory. */
static void matvec_rows(float *y, const float *W, const float *x, int o, int n, int in, int accumulate) {
    const float *w[4];
    float acc[4][16], s[4];
    for (int r = 0; r < 4; r++) w[r] = W + (size_t)(o + (r < n ? r : 0)) * in;
    memset(acc, 0, sizeof acc);
    int i = 0;
    for (; i + 16 <= in; i += 16)
        for (int l = 0; l < 16; l++) {
            float xv = x[i + l];
            acc[0][l] += w[0][i + l] * xv;
            acc[1][l] += w[1][i + l] * xv;
            acc[2][l] += w[2][i + l] * xv;
            acc[3][l] += w[3][i + l] * xv;
        }
    for (int r = 0; r < 4; r++) {
        s[r] = 0.0f;
        for (int l = 0; l < 16; l++) s[r] += acc[r][l];
        for (int j = i; j < in; j++) s[r] += w[r][j] * x[j];
    }
    for (int r = 0; r < n; r++) y[o + r] = accumulate ? y[o + r] + s[r] : s[r];
}

static void matvec(float *y, const float *W, const float *x, int out, int in, int accumulate) {
    int blocks = (out + 3) / 4;
#pragma omp parallel for schedule(static) if ((long)out * in >= MATVEC_PAR_MIN)
    for (int bk = 0; bk < blocks; bk++) {
        int o = 4 * bk;
        matvec_rows(y, W, x, o, out - o < 4 ? out - o : 4, in, accumulate);
    }
}

/* y = W·x + b (W [out, in] row-major); accumulate: y += W·x + b. */
static void linear_vec(float *y, const Linear *l, const float *x, int accumulate) {
    matvec(y, l->w->data, x, l->out, l->in, accumulate);
    if (l->b)
        for (int i = 0; i < l->out; i++) y[i] += l->b->data[i];
}

static void gelu_vec(float *x, int n) {
    const float k = 0.7978845608028654f, c = 0.044715f;
    for (int i = 0; i < n; i++) {
        float v = x[i], u = k * (v + c * v * v * v);
        x[i] = v / (1.0f + expf(-2.0f * u));
    }
}

/* out[d] = softmax(q·Kᵀ·scale over the allowed keys 0..n-1)·V, head by head.
 * K, V: [n][d] rows of the cache; head h uses columns h·hd…. */
static void attend(float *out, const float *q, const float *K, const float *V, const uint8_t *valid, int n,
                   int d, int H, float *scores) {
    int hd = d / H;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) {
        const float *qh = q + h * hd;
        float *oh = out + h * hd;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            const float *kj = K + (size_t)j * d + h * hd;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int c = 0; c < hd; c++) s += qh[c] * kj[c];
            scores[j] = s * scale;
            if (valid[j] && scores[j] > mx) mx = scores[j];
        }
        memset(oh, 0, sizeof(float) * (size_t)hd);
        if (mx == -INFINITY) continue;   /* no key allowed: zeros, as op_attention */
        float sum = 0.0f;
        for (int j = 0; j < n; j++) {
            scores[j] = valid[j] ? expf(scores[j] - mx) : 0.0f;
            sum += scores[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) {
            if (scores[j] == 0.0f) continue;
            const float *vj = V + (size_t)j * d + h * hd;
            float p = scores[j] * inv;
            for (int c = 0; c < hd; c++) oh[c] += p * vj[c];
        }
    }
}

/* Final LayerNorm and tied logits of the residual stream x into in->logits. */
static void head(Infer *in, const float *x) {
    const Student *m = in->m;
    int d = m->cfg.dec_d;
    ln_vec(in->h, x, &m->dec_norm, d);
    matvec(in->logits, m->tok.w->data, in->h, m->tok.n, d, 0);
}

/* ---------------------------------------------------------------- lifecycle */

int infer_init(Infer *in, Student *m) {
    memset(in, 0, sizeof *in);
    const ModelConfig *c = &m->cfg;
    in->m = m;
    in->cap = model_max_seq(c);
    size_t d = (size_t)c->dec_d, kv = (size_t)c->dec_layers * (size_t)in->cap * d;
    in->k = malloc(sizeof(float) * kv);
    in->v = malloc(sizeof(float) * kv);
    in->valid = malloc((size_t)in->cap);
    in->x = malloc(sizeof(float) * d);
    in->h = malloc(sizeof(float) * d);
    in->qkv = malloc(sizeof(float) * 3 * d);
    in->att = malloc(sizeof(float) * d);
    in->hid = malloc(sizeof(float) * NN_MLP_RATIO * d);
    in->scores = malloc(sizeof(float) * (size_t)in->cap);
    in->logits = malloc(sizeof(float) * (size_t)c->vocab);
    in->prompt_logits = malloc(sizeof(float) * (size_t)c->vocab);
    in->work = malloc(sizeof(float) * (size_t)c->vocab);
    in->region_vec = malloc(sizeof(float) * MODEL_MAX_REGIONS * d);
    if (!in->k || !in->v || !in->valid || !in->x || !in->h || !in->qkv || !in->att || !in->hid || !in->scores ||
        !in->logits || !in->prompt_logits || !in->work || !in->region_vec) {
        infer_free(in);
        return vcm_fail(VCM_ERR, "out of memory: KV cache of %zu floats", 2 * kv);
    }
    int rc = graph_init(&in->g, PREFILL_ARENA_BLOCK);
    if (rc) { infer_free(in); return rc; }
    in->g.grad_enabled = 0;
    return VCM_OK;
}

void infer_free(Infer *in) {
    free(in->k); free(in->v); free(in->valid);
    free(in->x); free(in->h); free(in->qkv); free(in->att); free(in->hid); free(in->scores);
    free(in->logits); free(in->prompt_logits); free(in->work); free(in->region_vec);
    if (in->g.arena.blocks || in->g.nodes) graph_free(&in->g);
    memset(in, 0, sizeof *in);
}

/* ---------------------------------------------------------------- prefill */

int infer_prefill(Infer *in, const Batch *b) {
    Student *m = in->m;
    const ModelConfig *c = &m->cfg;
    if (b->B != 1) return vcm_fail(VCM_ERR, "infer_prefill: batch of %d (one sample)", b->B);
    if (b->T < 1 || b->T > c->max_text)
        return vcm_fail(VCM_EINPUT, "prompt of %d tokens (1..%d)", b->T, c->max_text);
    for (int t = 0; t < b->T; t++)
        if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab)
            return vcm_fail(VCM_EINPUT, "token id %d outside the vocabulary (0..%d)", b->tokens[t], c->vocab - 1);
    Graph *g = &in->g;
    graph_reset(g);
    g->grad_enabled = 0;
    const uint8_t *valid;
    Tensor *rv = NULL;
    Tensor *x = student_decoder_input(g, m, b, &valid, &rv);
    if (!x) return vcm_fail(VCM_EINPUT, "%s", vcm_error());
    int L = x->shape[1], d = c->dec_d;
    /* Generated "[k]" tokens carry their region's vector as the prompt's do. */
    in->n_region_vec = rv ? b->n_regions[0] : 0;
    if (rv) memcpy(in->region_vec, rv->data, sizeof(float) * (size_t)in->n_region_vec * d);
    if (L > in->cap) return vcm_fail(VCM_ERR, "prefill of %d positions (cache holds %d)", L, in->cap);
    /* The layers of block_forward, spelled out to keep each layer's k and v. */
    for (int l = 0; l < c->dec_layers && x; l++) {
        const Block *blk = &m->dec_blocks[l];
        Tensor *qkv = linear_forward(g, &blk->attn.qkv, layernorm_forward(g, &blk->norm1, x));
        if (!qkv) break;
        float *kc = in->k + (size_t)l * in->cap * d, *vc = in->v + (size_t)l * in->cap * d;
        for (int i = 0; i < L; i++) {
            memcpy(kc + (size_t)i * d, qkv->data + (size_t)i * 3 * d + d, sizeof(float) * (size_t)d);
            memcpy(vc + (size_t)i * d, qkv->data + (size_t)i * 3 * d + 2 * d, sizeof(float) * (size_t)d);
        }
        Tensor *y = op_attention(g, qkv, blk->attn.n_heads, 1, valid);
        Tensor *h = op_add(g, x, linear_forward(g, &blk->attn.proj, y));
        x = op_add(g, h, mlp_forward(g, &blk->mlp, layernorm_forward(g, &blk->norm2, h)));
    }
    if (!x || g->failed) return vcm_fail(VCM_ERR, "prefill: %s", vcm_error());
    if (valid) memcpy(in->valid, valid, (size_t)L);
    else memset(in->valid, 1, (size_t)L);
    in->len = L;
    in->prefix = L - b->T;
    in->text_len = in->prompt_len = b->T;
    head(in, x->data + (size_t)(L - 1) * d);
    memcpy(in->prompt_logits, in->logits, sizeof(float) * (size_t)c->vocab);
    graph_reset(g);
    return VCM_OK;
}

void infer_rewind(Infer *in) {
    in->text_len = in->prompt_len;
    in->len = in->prefix + in->prompt_len;
    memcpy(in->logits, in->prompt_logits, sizeof(float) * (size_t)in->m->cfg.vocab);
}

/* ---------------------------------------------------------------- one token */

int infer_step(Infer *in, int32_t token) {
    const Student *m = in->m;
    const ModelConfig *c = &m->cfg;
    int d = c->dec_d;
    if (in->len == 0) return vcm_fail(VCM_ERR, "infer_step before infer_prefill");
    if (in->text_len >= c->max_text)
        return vcm_fail(VCM_EINPUT, "text longer than max_text %d tokens", c->max_text);
    if (token < 0 || token >= c->vocab)
        return vcm_fail(VCM_EINPUT, "token id %d outside the vocabulary (0..%d)", token, c->vocab - 1);
    int pos = student_text_pos0(c) + in->text_len, at = in->len;
    const float *te = m->tok.w->data + (size_t)token * d, *pe = m->pos.w->data + (size_t)pos * d;
    for (int j = 0; j < d; j++) in->x[j] = te[j] + pe[j];
    int k = token - BPE_REGION0;
    if (k >= 0 && k < in->n_region_vec) /* same order of additions as the full forward */
        for (int j = 0; j < d; j++) in->x[j] = (te[j] + in->region_vec[(size_t)k * d + j]) + pe[j];
    in->valid[at] = 1;
    for (int l = 0; l < c->dec_layers; l++) {
        const Block *blk = &m->dec_blocks[l];
        float *kc = in->k + (size_t)l * in->cap * d, *vc = in->v + (size_t)l * in->cap * d;
        ln_vec(in->h, in->x, &blk->norm1, d);
        linear_vec(in->qkv, &blk->attn.qkv, in->h, 0);
        memcpy(kc + (size_t)at * d, in->qkv + d, sizeof(float) * (size_t)d);
        memcpy(vc + (size_t)at * d, in->qkv + 2 * d, sizeof(float) * (size_t)d);
        attend(in->att, in->qkv, kc, vc, in->valid, at + 1, d, blk->attn.n_heads, in->scores);
        linear_vec(in->x, &blk->attn.proj, in->att, 1);            /* x += proj(att) */
        ln_vec(in->h, in->x, &blk->norm2, d);
        linear_vec(in->hid, &blk->mlp.fc1, in->h, 0);
        gelu_vec(in->hid, blk->mlp.fc1.out);
        linear_vec(in->x, &blk->mlp.fc2, in->hid, 1);              /* x += mlp(…) */
    }
    in->len = at + 1;
    in->text_len++;
    head(in, in->x);
    return VCM_OK;
}

/* ---------------------------------------------------------------- scoring */

int infer_continuation_logprob(Infer *in, const int32_t *ids, int n, double *sum) {
    int V = in->m->cfg.vocab, rc = VCM_OK;
    double s = 0.0;
    *sum = 0.0;
    if (in->len == 0) return vcm_fail(VCM_ERR, "infer_continuation_logprob before infer_prefill");
    for (int i = 0; i < n && !rc; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return vcm_fail(VCM_EINPUT, "token id %d outside the vocabulary (0..%d)", ids[i], V - 1);
        s += lm_log_softmax_at(in->logits, V, ids[i]);
        if (i + 1 < n) rc = infer_step(in, ids[i]);
    }
    *sum = s;
    return rc;
}

/* ---------------------------------------------------------------- sampling loop */

int infer_generate(Infer *in, const GenParams *p, uint64_t *rng, int32_t *out, int cap, int *n_out,
                   double *logprob) {
    const ModelConfig *c = &in->m->cfg;
    int V = c->vocab, limit = p->vocab_limit > 0 && p->vocab_limit < V ? p->vocab_limit : V;
    int n = 0, rc = VCM_OK;
    double lp = 0.0;
    *n_out = 0;
    *logprob = 0.0;
    if (in->len == 0) return vcm_fail(VCM_ERR, "infer_generate before infer_prefill");
    /* The text holds max_text input positions; the last one still predicts a token. */
    while (n < p->max_tokens && n < cap && in->text_len <= c->max_text) {
        float *w = in->work;
        memcpy(w, in->logits, sizeof(float) * (size_t)V);
        w[BPE_PAD] = w[BPE_BOS] = -INFINITY;
        for (int i = limit; i < V; i++) w[i] = -INFINITY;
        if (p->n_regions >= 0)
            for (int k = p->n_regions; k < BPE_N_REGIONS; k++)
                if (BPE_REGION0 + k < V) w[BPE_REGION0 + k] = -INFINITY;
        int id = lm_sample(w, V, &p->sample, rng);
        lp += lm_log_softmax_at(in->logits, V, id);
        out[n++] = id;
        if (id == BPE_EOS || in->text_len == c->max_text) break;
        if ((rc = infer_step(in, id))) break;
    }
    *n_out = n;
    *logprob = lp;
    return rc;
}
