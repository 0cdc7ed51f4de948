/* Generation with a KV cache (lm.h). The prefill runs the decoder over the whole prefix with
 * the same ops as the full forward (so its keys and values are the full forward's) and
 * keeps K and V of every layer; each later token is one position through every layer:
 * LayerNorm → qkv (matrix-vector) → append k, v → attention over the cache → proj →
 * residual → LayerNorm → MLP → residual, then the final LayerNorm and the tied logits.
 * Per-token work is O(layers · (d² + len · d) + vocab · d) instead of re-running the
 * whole sequence, and it allocates nothing. */
#include "lm/lm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREFILL_ARENA_BLOCK ((size_t)8 << 20)

/* ---------------------------------------------------------------- one-position kernels
 * All from tensor/ (tensor.h "row kernels"): LayerNorm, GELU and softmax are training's
 * own row kernels, so the logits agree with the full forward to float rounding
 * (tests/test_infer.c: <= 1e-4 relative; the products differ: gemm tiles there,
 * vcm_matvec_rows here, since at one row the gemm's tiling, or a BLAS call per product,
 * only costs). */

static void ln_vec(float *y, const float *x, const LayerNorm *ln, int d) {
    vcm_layernorm_row(y, x, ln->w->data, ln->b ? ln->b->data : NULL, d, ln->eps);
}

#define MATVEC_PAR_MIN (1 << 20)   /* multiply-adds below which one thread is faster */

static void matvec(float *y, const float *W, const float *x, int out, int in, int accumulate) {
    int blocks = (out + 3) / 4;
#pragma omp parallel for schedule(static) if ((long)out * in >= MATVEC_PAR_MIN)
    for (int bk = 0; bk < blocks; bk++) {
        int o = 4 * bk;
        vcm_matvec_rows(y, W, NULL, x, o, out - o < 4 ? out - o : 4, in, accumulate);
    }
}

/* Final LayerNorm and tied logits of the residual stream x into in->logits. */
static void head(KvCache *in, const float *x) {
    const Decoder *m = in->dec;
    int d = m->d;
    ln_vec(in->h, x, &m->norm, d);
    matvec(in->logits, m->tok.w->data, in->h, m->tok.n, d, 0);
}

/* ---------------------------------------------------------------- one position, threaded
 * A decode step is ~25 small products in a row (nano: 4 layers × qkv, proj, fc1, fc2,
 * then the logits), each a few microseconds. An OpenMP loop per product pays a fork and
 * a join each time (with OMP_WAIT_POLICY=passive, a futex sleep and wake), which cost
 * more than the product. So one run of the spinning team (tensor/team.c) does the whole
 * position: every product's rows are split the same way each time (thread t always owns
 * the same rows of every weight, which therefore stay in its core's cache from token to
 * token), heads are split for attention, and the threads meet at a spinning barrier
 * between dependent steps.
 * Each output row is one dot product computed by one thread in a fixed order, so the
 * result does not depend on the thread count. */

/* Rows [lo, hi) of `out` for thread t of n: edges on multiples of 16 rows (whole cache
 * lines of y), the last thread takes the rest. */
static void rows_of(int out, int t, int n, int *lo, int *hi) {
    *lo = t == 0 ? 0 : (int)((long)out * t / n) & ~15;
    *hi = t == n - 1 ? out : (int)((long)out * (t + 1) / n) & ~15;
}

/* Rows [lo, hi) of y = W·x + b (accumulate: y += W·x + b). */
static void linear_rows(float *y, const Linear *l, const float *x, int lo, int hi, int accumulate) {
    const float *b = l->b ? l->b->data : NULL;
    for (int o = lo; o < hi; o += 4)
        vcm_matvec_rows(y, l->w->data, b, x, o, hi - o < 4 ? hi - o : 4, l->in, accumulate);
}

/* out = softmax(q·Kᵀ·scale over the allowed keys 0..n-1)·V for heads [h0, h1) of H.
 * K, V: [n][d] rows of the cache; head h uses columns h·hd…. */
static void attend_heads(float *out, const float *q, const float *K, const float *V, const uint8_t *valid, int n,
                         int d, int H, int h0, int h1, float *scores) {
    int hd = d / H;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = h0; h < h1; h++) {
        const float *qh = q + h * hd;
        float *oh = out + h * hd;
        float mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            float s = valid[j] ? vcm_dot(qh, K + (size_t)j * d + h * hd, hd) * scale : -INFINITY;
            scores[j] = s;
            mx = s > mx ? s : mx;
        }
        memset(oh, 0, sizeof(float) * (size_t)hd);
        if (mx == -INFINITY) continue;   /* no key allowed: zeros, as op_attention */
        vcm_softmax_row(scores, scores, n); /* exp(-inf) = 0 for the masked keys */
        for (int j = 0; j < n; j++) {
            if (scores[j] == 0.0f) continue;
            const float *vj = V + (size_t)j * d + h * hd;
            float p = scores[j];
            vcm_axpy(oh, p, vj, hd);
        }
    }
}

/* Every decoder layer and the head for the position `at` whose input is in->x; thread t
 * of n (vcm_team_run). */
typedef struct { KvCache *in; int at; } DecodeJob;

static void decode_position(void *arg, int t, int nt) {
    KvCache *in = ((DecodeJob *)arg)->in;
    const int at = ((DecodeJob *)arg)->at;
    const Decoder *m = in->dec;
    const int d = m->d, n_keys = at + 1;
    float h[d], scores[n_keys]; /* this thread's LayerNorm output and attention scores */
    int lo, hi;
    for (int l = 0; l < m->layers; l++) {
        const Block *blk = &m->blocks[l];
        float *kc = in->k + (size_t)l * in->cap * d, *vc = in->v + (size_t)l * in->cap * d;
        ln_vec(h, in->x, &blk->norm1, d);      /* every thread: cheaper than a barrier */
        rows_of(3 * d, t, nt, &lo, &hi);
        linear_rows(in->qkv, &blk->attn.qkv, h, lo, hi, 0);
        for (int r = lo > d ? lo : d; r < hi; r++) /* this thread's rows of k and v */
            (r < 2 * d ? kc : vc)[(size_t)at * d + r % d] = in->qkv[r];
        vcm_team_barrier(nt);
        int H = blk->attn.n_heads;
        attend_heads(in->att, in->qkv, kc, vc, in->valid, n_keys, d, H, H * t / nt, H * (t + 1) / nt, scores);
        vcm_team_barrier(nt);
        rows_of(d, t, nt, &lo, &hi);
        linear_rows(in->x, &blk->attn.proj, in->att, lo, hi, 1);   /* x += proj(att) */
        vcm_team_barrier(nt);
        ln_vec(h, in->x, &blk->norm2, d);
        rows_of(blk->mlp.fc1.out, t, nt, &lo, &hi);
        linear_rows(in->hid, &blk->mlp.fc1, h, lo, hi, 0);
        vcm_gelu_span(in->hid + lo, in->hid + lo, (size_t)(hi - lo));
        vcm_team_barrier(nt);
        rows_of(d, t, nt, &lo, &hi);
        linear_rows(in->x, &blk->mlp.fc2, in->hid, lo, hi, 1);     /* x += mlp(…) */
        vcm_team_barrier(nt);
    }
    ln_vec(h, in->x, &m->norm, d);
    rows_of(m->tok.n, t, nt, &lo, &hi);
    for (int o = lo; o < hi; o += 4) vcm_matvec_rows(in->logits, m->tok.w->data, NULL, h, o, hi - o < 4 ? hi - o : 4, d, 0);
}

/* ---------------------------------------------------------------- lifecycle */

int kv_init(KvCache *in, const Decoder *dec, int cap, int text_pos0, int max_text) {
    memset(in, 0, sizeof *in);
    in->dec = dec;
    in->cap = cap;
    in->text_pos0 = text_pos0;
    in->max_text = max_text;
    size_t d = (size_t)dec->d, kv = (size_t)dec->layers * (size_t)in->cap * d;
    in->k = malloc(sizeof(float) * kv);
    in->v = malloc(sizeof(float) * kv);
    in->valid = malloc((size_t)in->cap);
    in->x = malloc(sizeof(float) * d);
    in->h = malloc(sizeof(float) * d);
    in->qkv = malloc(sizeof(float) * 3 * d);
    in->att = malloc(sizeof(float) * d);
    in->hid = malloc(sizeof(float) * NN_MLP_RATIO * d);
    in->logits = malloc(sizeof(float) * (size_t)dec->vocab);
    in->prompt_logits = malloc(sizeof(float) * (size_t)dec->vocab);
    in->work = malloc(sizeof(float) * (size_t)dec->vocab);
    if (!in->k || !in->v || !in->valid || !in->x || !in->h || !in->qkv || !in->att || !in->hid || !in->logits ||
        !in->prompt_logits || !in->work) {
        kv_free(in);
        return vcm_fail(VCM_ERR, "out of memory: KV cache of %zu floats", 2 * kv);
    }
    int rc = graph_init(&in->g, PREFILL_ARENA_BLOCK);
    if (rc) { kv_free(in); return rc; }
    in->g.grad_enabled = 0;
    return VCM_OK;
}

void kv_free(KvCache *in) {
    free(in->k); free(in->v); free(in->valid);
    free(in->x); free(in->h); free(in->qkv); free(in->att); free(in->hid);
    free(in->logits); free(in->prompt_logits); free(in->work);
    if (in->g.arena.blocks || in->g.nodes) graph_free(&in->g);
    memset(in, 0, sizeof *in);
}

/* ---------------------------------------------------------------- prefill */

int kv_prefill(KvCache *in, Tensor *x, const uint8_t *valid, int text) {
    const Decoder *m = in->dec;
    Graph *g = &in->g;
    if (!x) return vcm_fail(VCM_EINPUT, "%s", vcm_error());
    int L = x->shape[1], d = m->d;
    if (L > in->cap) return vcm_fail(VCM_ERR, "prefill of %d positions (cache holds %d)", L, in->cap);
    /* block_forward in two halves, to keep each layer's k and v in between. */
    for (int l = 0; l < m->layers && x; l++) {
        const Block *blk = &m->blocks[l];
        Tensor *qkv = linear_forward(g, &blk->attn.qkv, layernorm_forward(g, &blk->norm1, x));
        if (!qkv) break;
        float *kc = in->k + (size_t)l * in->cap * d, *vc = in->v + (size_t)l * in->cap * d;
        for (int i = 0; i < L; i++) {
            memcpy(kc + (size_t)i * d, qkv->data + (size_t)i * 3 * d + d, sizeof(float) * (size_t)d);
            memcpy(vc + (size_t)i * d, qkv->data + (size_t)i * 3 * d + 2 * d, sizeof(float) * (size_t)d);
        }
        x = block_forward_qkv(g, blk, x, qkv, 1, valid, 0);
    }
    if (!x || g->failed) return vcm_fail(VCM_ERR, "prefill: %s", vcm_error());
    if (valid) memcpy(in->valid, valid, (size_t)L);
    else memset(in->valid, 1, (size_t)L);
    in->len = L;
    in->prefix = L - text;
    in->text_len = in->prompt_len = text;
    head(in, x->data + (size_t)(L - 1) * d);
    memcpy(in->prompt_logits, in->logits, sizeof(float) * (size_t)m->vocab);
    graph_reset(g);
    return VCM_OK;
}

void kv_rewind(KvCache *in) {
    in->text_len = in->prompt_len;
    in->len = in->prefix + in->prompt_len;
    memcpy(in->logits, in->prompt_logits, sizeof(float) * (size_t)in->dec->vocab);
}

/* ---------------------------------------------------------------- one token */

int kv_step(KvCache *in, int32_t token) {
    const Decoder *m = in->dec;
    int d = m->d;
    if (in->len == 0) return vcm_fail(VCM_ERR, "infer_step before infer_prefill");
    if (in->text_len >= in->max_text)
        return vcm_fail(VCM_EINPUT, "text longer than max_text %d tokens", in->max_text);
    if (token < 0 || token >= m->vocab)
        return vcm_fail(VCM_EINPUT, "token id %d outside the vocabulary (0..%d)", token, m->vocab - 1);
    int pos = in->text_pos0 + in->text_len, at = in->len;
    const float *te = m->tok.w->data + (size_t)token * d, *pe = m->pos.w->data + (size_t)pos * d;
    for (int j = 0; j < d; j++) in->x[j] = te[j] + pe[j];
    int k = token - in->extra_id0;
    if (in->extra && k >= 0 && k < in->n_extra) /* same order of additions as the full forward */
        for (int j = 0; j < d; j++) in->x[j] = (te[j] + in->extra[(size_t)k * d + j]) + pe[j];
    in->valid[at] = 1;
    DecodeJob job = {in, at};
    vcm_team_run(decode_position, &job);
    in->len = at + 1;
    in->text_len++;
    return VCM_OK;
}

/* ---------------------------------------------------------------- scoring */

int kv_continuation_logprob(KvCache *in, const int32_t *ids, int n, double *sum) {
    int V = in->dec->vocab, rc = VCM_OK;
    double s = 0.0;
    *sum = 0.0;
    if (in->len == 0) return vcm_fail(VCM_ERR, "infer_continuation_logprob before infer_prefill");
    for (int i = 0; i < n && !rc; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return vcm_fail(VCM_EINPUT, "token id %d outside the vocabulary (0..%d)", ids[i], V - 1);
        s += lm_log_softmax_at(in->logits, V, ids[i]);
        if (i + 1 < n) rc = kv_step(in, ids[i]);
    }
    *sum = s;
    return rc;
}

/* ---------------------------------------------------------------- sampling loop */

int kv_generate(KvCache *in, const GenParams *p, uint64_t *rng, int32_t *out, int cap, int *n_out,
                double *logprob) {
    int V = in->dec->vocab, max_text = in->max_text, limit = p->vocab_limit > 0 && p->vocab_limit < V ? p->vocab_limit : V;
    int n = 0, rc = VCM_OK;
    double lp = 0.0;
    *n_out = 0;
    *logprob = 0.0;
    if (in->len == 0) return vcm_fail(VCM_ERR, "infer_generate before infer_prefill");
    /* The text holds max_text input positions; the last one still predicts a token. */
    while (n < p->max_tokens && n < cap && in->text_len <= max_text) {
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
        if (id == BPE_EOS || in->text_len == max_text) break;
        if ((rc = kv_step(in, id))) break;
    }
    *n_out = n;
    *logprob = lp;
    return rc;
}
