/* Generation with a KV cache (lm.h). The prefill runs the decoder over the whole prefix with
 * the same ops as the full forward (so its keys and values are the full forward's) and
 * keeps K and V of every layer; each later token is one position through every layer:
 * LayerNorm → qkv (matrix-vector) → append k, v → attention over the cache → proj →
 * residual → LayerNorm → MLP → residual, then the final LayerNorm and the tied logits.
 * Per-token work is O(layers · (d² + len · d) + vocab · d) instead of re-running the
 * whole sequence, and it allocates nothing. */
#include "lm/lm.h"
#include "tensor/vecmath.h" /* the vector layer and exp of tensor/'s kernels */

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

/* y[o] (+)= W[o, :]·x + b[o] for the n <= 4 rows o.. of W [out, in] row-major: four rows
 * at a time (x is loaded once for four rows), two vector accumulators per row (enough
 * independent FMA chains to hide their latency), added in a fixed order; each row's sum
 * is the same whichever block or thread computes it, so the result does not depend on
 * the thread count. A hand loop rather than sgemv: with the weights in cache it took
 * half sgemv's time at these sizes (128×384 … 2048×128). */
static float vf_sum(vf a) {
#if defined(__AVX512F__)
    return _mm512_reduce_add_ps(a);
#else
    return vf_hsum(a);
#endif
}

static void matvec_rows(float *y, const float *W, const float *b, const float *x, int o, int n, int in,
                        int accumulate) {
    const float *w0 = W + (size_t)o * in, *w1 = W + (size_t)(o + (n > 1)) * in;
    const float *w2 = W + (size_t)(o + (n > 2) * 2) * in, *w3 = W + (size_t)(o + (n > 3) * 3) * in;
    vf a0 = vf_zero(), a1 = vf_zero(), a2 = vf_zero(), a3 = vf_zero();
    vf c0 = vf_zero(), c1 = vf_zero(), c2 = vf_zero(), c3 = vf_zero();
    int i = 0;
    for (; i + 2 * VF_N <= in; i += 2 * VF_N) {
        vf x0 = vf_load(x + i), x1 = vf_load(x + i + VF_N);
        a0 = vf_fma(vf_load(w0 + i), x0, a0);
        a1 = vf_fma(vf_load(w1 + i), x0, a1);
        a2 = vf_fma(vf_load(w2 + i), x0, a2);
        a3 = vf_fma(vf_load(w3 + i), x0, a3);
        c0 = vf_fma(vf_load(w0 + i + VF_N), x1, c0);
        c1 = vf_fma(vf_load(w1 + i + VF_N), x1, c1);
        c2 = vf_fma(vf_load(w2 + i + VF_N), x1, c2);
        c3 = vf_fma(vf_load(w3 + i + VF_N), x1, c3);
    }
    for (; i + VF_N <= in; i += VF_N) {
        vf x0 = vf_load(x + i);
        a0 = vf_fma(vf_load(w0 + i), x0, a0);
        a1 = vf_fma(vf_load(w1 + i), x0, a1);
        a2 = vf_fma(vf_load(w2 + i), x0, a2);
        a3 = vf_fma(vf_load(w3 + i), x0, a3);
    }
    float s[4] = {vf_sum(vf_add(a0, c0)), vf_sum(vf_add(a1, c1)), vf_sum(vf_add(a2, c2)), vf_sum(vf_add(a3, c3))};
    const float *w[4] = {w0, w1, w2, w3};
    for (int r = 0; r < 4; r++)
        for (int j = i; j < in; j++) s[r] += w[r][j] * x[j];
    for (int r = 0; r < n; r++) {
        float v = b ? s[r] + b[o + r] : s[r];
        y[o + r] = accumulate ? y[o + r] + v : v;
    }
}

static void matvec(float *y, const float *W, const float *x, int out, int in, int accumulate) {
    int blocks = (out + 3) / 4;
#pragma omp parallel for schedule(static) if ((long)out * in >= MATVEC_PAR_MIN)
    for (int bk = 0; bk < blocks; bk++) {
        int o = 4 * bk;
        matvec_rows(y, W, NULL, x, o, out - o < 4 ? out - o : 4, in, accumulate);
    }
}

static void gelu_vec(float *x, int n) {
    const float k = 0.7978845608028654f, c = 0.044715f;
    int i = 0;
    for (; i + VF_N <= n; i += VF_N) { /* x·σ(2u), as tensor/op_gelu.c */
        vf v = vf_load(x + i);
        vf u = vf_mul(vf_set1(k), vf_fma(vf_mul(vf_set1(c), vf_mul(v, v)), v, v));
        vf e = vf_exp(vf_mul(vf_set1(-2.0f), u));
        vf_store(x + i, vf_mul(v, vf_div(vf_set1(1.0f), vf_add(vf_set1(1.0f), e))));
    }
    for (; i < n; i++) {
        float v = x[i], u = k * (v + c * v * v * v);
        x[i] = v * (1.0f / (1.0f + vm_expf(-2.0f * u)));
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
        matvec_rows(y, l->w->data, b, x, o, hi - o < 4 ? hi - o : 4, l->in, accumulate);
}

static float dot_vec(const float *a, const float *b, int n) {
    vf acc = vf_zero();
    int c = 0;
    for (; c + VF_N <= n; c += VF_N) acc = vf_fma(vf_load(a + c), vf_load(b + c), acc);
    float s = vf_sum(acc);
    for (; c < n; c++) s += a[c] * b[c];
    return s;
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
            float s = valid[j] ? dot_vec(qh, K + (size_t)j * d + h * hd, hd) * scale : -INFINITY;
            scores[j] = s;
            mx = s > mx ? s : mx;
        }
        memset(oh, 0, sizeof(float) * (size_t)hd);
        if (mx == -INFINITY) continue;   /* no key allowed: zeros, as op_attention */
        int j = 0;
        vf vsum = vf_zero(), vmx = vf_set1(mx);
        for (; j + VF_N <= n; j += VF_N) { /* exp(-inf) = 0 for the masked keys */
            vf e = vf_exp(vf_sub(vf_load(scores + j), vmx));
            vf_store(scores + j, e);
            vsum = vf_add(vsum, e);
        }
        float sum = vf_hsum(vsum);
        for (; j < n; j++) {
            scores[j] = vm_expf(scores[j] - mx);
            sum += scores[j];
        }
        float inv = 1.0f / sum;
        for (j = 0; j < n; j++) {
            if (scores[j] == 0.0f) continue;
            const float *vj = V + (size_t)j * d + h * hd;
            float p = scores[j] * inv;
            int c = 0;
            for (; c + VF_N <= hd; c += VF_N) vf_store(oh + c, vf_fma(vf_set1(p), vf_load(vj + c), vf_load(oh + c)));
            for (; c < hd; c++) oh[c] += p * vj[c];
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
        gelu_vec(in->hid + lo, hi - lo);
        vcm_team_barrier(nt);
        rows_of(d, t, nt, &lo, &hi);
        linear_rows(in->x, &blk->mlp.fc2, in->hid, lo, hi, 1);     /* x += mlp(…) */
        vcm_team_barrier(nt);
    }
    ln_vec(h, in->x, &m->norm, d);
    rows_of(m->tok.n, t, nt, &lo, &hi);
    for (int o = lo; o < hi; o += 4) matvec_rows(in->logits, m->tok.w->data, NULL, h, o, hi - o < 4 ? hi - o : 4, d, 0);
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
