/* Fused multi-head scaled-dot-product attention (FlashAttention-style memory use).
 *
 * qkv [B, T, 3D] = q | k | v, head h at columns h·hd … h·hd+hd−1 of each part.
 * For every (batch, head) — one task, run whole by one thread — K and V are copied into
 * a per-thread scratch (K also transposed, rows padded to the vector width), and the
 * queries go in blocks of ATT_QB rows:
 *     S = (scale·Q_blk)·Kᵀ                  [QB × keys]
 *     P = exp(S + mask − rowmax) / Σ         (masked: causal j > i, key_valid[j] = 0)
 *     O_blk = P·V
 * When a backward will follow, P is written straight into the node's saved buffer (only
 * the key columns a block can see: about half of T² for a causal mask) instead of the
 * scratch, and backward reads it back rather than recomputing Q·Kᵀ and the exp: one of
 * its five block products, every exp and the transposed K copy saved, for ~90 MB on the
 * small config. Then, with Δ_i = Σ_j P·dP (= Σ_d dO·O, in double):
 *     dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ⊙ (dP − Δ),  dQ = scale·dS·K,  dK += dSᵀ·(scale·Q).
 * A query row with no allowed key gets P = 0: output 0, gradient 0.
 * op_attention_from(…, q0) computes only the queries q0 … T−1 (all T keys and values
 * stay): the last layer of a decoder whose loss reads only the text rows.
 * Tasks write disjoint columns of the output / of dqkv and each runs the same
 * instructions on any thread, so results are bitwise identical for any thread count.
 * The small matrix products are a register-tiled kernel (att_mm) rather than OpenBLAS:
 * the matrices are tiny (T × hd) and OpenBLAS inside an OpenMP region would either
 * serialise or oversubscribe. */
#include "tensor.h"
#include "vecmath.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define ATT_QB 16 /* queries per block: S and dP blocks stay in L1/L2 */
/* Below this many multiply-adds (B·H·T²·hd) one thread is faster than a fork/join. */
#define ATT_PAR_MIN 200000.0

typedef struct {
    int B, T, D, H, hd, hdp, Tp, causal;
    float scale;
    int q0, Tq; /* queries q0 … T−1 only (Tq = T − q0 rows of output) */
} AttDims;

/* What backward needs, in the arena (node->saved). */
typedef struct {
    float *P;            /* B·H tasks × att_p_floats(d): each query block's P [QB][nkp] */
    float *scratch;      /* n_slots × att_scratch_floats(d, 1) */
    int n_slots;
} AttSaved;

static int round_up(int n, int m) { return (n + m - 1) / m * m; }

/* Floats of one thread's scratch: the larger of the two passes' layouts when there will
 * be a backward, else the forward's. */
static size_t att_scratch_floats(const AttDims *d, int backward) {
    size_t Tp = (size_t)d->Tp, hdp = (size_t)d->hdp, QB = ATT_QB, n;
    /* forward: Kt [hdp][Tp]; Vs [Tp][hdp]; S [QB][Tp]; Qb, Ob [QB][hdp]; bias [Tp]; 1/l [QB] */
    n = 2 * Tp * hdp + QB * Tp + 2 * QB * hdp + Tp + QB;
    if (backward) { /* Ks, dKs, dVs [Tp][hdp]; Vt [hdp][Tp]; Qb, dOb, dQb [QB][hdp]; dP [QB][Tp] */
        size_t nb = 4 * Tp * hdp + 3 * QB * hdp + QB * Tp;
        n = nb > n ? nb : n;
    }
    return (n + 15) / 16 * 16; /* keeps every slot 64-byte aligned */
}

/* Keys query block i0 … i0+mr−1 can see: all T, or up to its last query when causal. */
static int att_block_keys(const AttDims *d, int i0, int mr) { return d->causal ? i0 + mr : d->T; }

/* Floats of one (batch, head)'s saved P: QB rows × the block's keys (rounded up to the
 * vector width) for every query block. */
static size_t att_p_floats(const AttDims *d) {
    size_t n = 0;
    for (int i0 = d->q0; i0 < d->T; i0 += ATT_QB) {
        int mr = d->T - i0 < ATT_QB ? d->T - i0 : ATT_QB;
        n += (size_t)ATT_QB * round_up(att_block_keys(d, i0, mr), VF_N);
    }
    return n;
}

/* C (+)= A·B with element (i, k) of A at A[i·sai + k·sak] (so A or Aᵀ, with no
 * transpose copy), B [K][N] (row stride ldb), C [M][N] (ldc); N a multiple of VF_N.
 * Register tile: 4 rows × 2 vectors. */
static void att_mm(int M, int N, int K, const float *A, size_t sai, size_t sak, const float *B, int ldb, float *C,
                   int ldc, int accumulate) {
    int i = 0;
    for (; i + 4 <= M; i += 4) {
        const float *a0 = A + (size_t)i * sai, *a1 = a0 + sai, *a2 = a1 + sai, *a3 = a2 + sai;
        float *c0 = C + (size_t)i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
        int j = 0;
        for (; j + 2 * VF_N <= N; j += 2 * VF_N) {
            vf r00 = vf_zero(), r01 = vf_zero(), r10 = vf_zero(), r11 = vf_zero();
            vf r20 = vf_zero(), r21 = vf_zero(), r30 = vf_zero(), r31 = vf_zero();
            const float *b = B + j;
            for (size_t k = 0, ka = 0; k < (size_t)K; k++, ka += sak, b += ldb) {
                vf b0 = vf_load(b), b1 = vf_load(b + VF_N), x;
                x = vf_set1(a0[ka]); r00 = vf_fma(x, b0, r00); r01 = vf_fma(x, b1, r01);
                x = vf_set1(a1[ka]); r10 = vf_fma(x, b0, r10); r11 = vf_fma(x, b1, r11);
                x = vf_set1(a2[ka]); r20 = vf_fma(x, b0, r20); r21 = vf_fma(x, b1, r21);
                x = vf_set1(a3[ka]); r30 = vf_fma(x, b0, r30); r31 = vf_fma(x, b1, r31);
            }
            if (accumulate) {
                r00 = vf_add(r00, vf_load(c0 + j)); r01 = vf_add(r01, vf_load(c0 + j + VF_N));
                r10 = vf_add(r10, vf_load(c1 + j)); r11 = vf_add(r11, vf_load(c1 + j + VF_N));
                r20 = vf_add(r20, vf_load(c2 + j)); r21 = vf_add(r21, vf_load(c2 + j + VF_N));
                r30 = vf_add(r30, vf_load(c3 + j)); r31 = vf_add(r31, vf_load(c3 + j + VF_N));
            }
            vf_store(c0 + j, r00); vf_store(c0 + j + VF_N, r01);
            vf_store(c1 + j, r10); vf_store(c1 + j + VF_N, r11);
            vf_store(c2 + j, r20); vf_store(c2 + j + VF_N, r21);
            vf_store(c3 + j, r30); vf_store(c3 + j + VF_N, r31);
        }
        for (; j < N; j += VF_N) {
            vf r0 = vf_zero(), r1 = vf_zero(), r2 = vf_zero(), r3 = vf_zero();
            const float *b = B + j;
            for (size_t k = 0, ka = 0; k < (size_t)K; k++, ka += sak, b += ldb) {
                vf b0 = vf_load(b);
                r0 = vf_fma(vf_set1(a0[ka]), b0, r0);
                r1 = vf_fma(vf_set1(a1[ka]), b0, r1);
                r2 = vf_fma(vf_set1(a2[ka]), b0, r2);
                r3 = vf_fma(vf_set1(a3[ka]), b0, r3);
            }
            if (accumulate) {
                r0 = vf_add(r0, vf_load(c0 + j)); r1 = vf_add(r1, vf_load(c1 + j));
                r2 = vf_add(r2, vf_load(c2 + j)); r3 = vf_add(r3, vf_load(c3 + j));
            }
            vf_store(c0 + j, r0); vf_store(c1 + j, r1); vf_store(c2 + j, r2); vf_store(c3 + j, r3);
        }
    }
    for (; i < M; i++) {
        const float *a = A + (size_t)i * sai;
        float *c = C + (size_t)i * ldc;
        for (int j = 0; j < N; j += VF_N) {
            vf r = vf_zero();
            const float *b = B + j;
            for (size_t k = 0, ka = 0; k < (size_t)K; k++, ka += sak, b += ldb) r = vf_fma(vf_set1(a[ka]), vf_load(b), r);
            if (accumulate) r = vf_add(r, vf_load(c + j));
            vf_store(c + j, r);
        }
    }
}

/* Copy K and V of (b, h): transposed [hdp][Tp] and/or row-major [T][hdp], zero-padded;
 * and the key mask as an additive bias row (0 or −inf). */
static void att_gather_kv(const AttDims *d, const float *base, const uint8_t *kv, float *Kt, float *Ks,
                          float *Vt, float *Vs, float *bias) {
    int T = d->T, hd = d->hd, hdp = d->hdp, Tp = d->Tp;
    size_t ld = 3 * (size_t)d->D;
    /* Only the padding needs zeros: columns T … Tp−1 and rows hd … hdp−1. */
    for (int c = 0; c < hdp; c++) {
        size_t o = (size_t)c * Tp + (c < hd ? (size_t)T : 0), n = (size_t)Tp * (c + 1) - o;
        if (Kt) memset(Kt + o, 0, n * sizeof(float));
        if (Vt) memset(Vt + o, 0, n * sizeof(float));
    }
    /* Kᵀ and Vᵀ in VF_N × VF_N blocks transposed in registers; the ragged edges (T or hd
     * not a multiple of VF_N) one float at a time. */
    int jb = T / VF_N * VF_N, cb = hd / VF_N * VF_N;
    for (int j0 = 0; j0 < jb; j0 += VF_N)
        for (int c0 = 0; c0 < cb; c0 += VF_N) {
            const float *k = base + (size_t)j0 * ld + d->D + c0;
            if (Kt) vm_transpose_block(k, ld, Kt + (size_t)c0 * Tp + j0, (size_t)Tp);
            if (Vt) vm_transpose_block(k + d->D, ld, Vt + (size_t)c0 * Tp + j0, (size_t)Tp);
        }
    for (int j = 0; j < T; j++) {
        const float *k = base + j * ld + d->D, *v = k + d->D;
        for (int c = j < jb ? cb : 0; c < hd; c++) {
            if (Kt) Kt[(size_t)c * Tp + j] = k[c];
            if (Vt) Vt[(size_t)c * Tp + j] = v[c];
        }
        if (Ks) {
            memcpy(Ks + (size_t)j * hdp, k, (size_t)hd * sizeof(float));
            memset(Ks + (size_t)j * hdp + hd, 0, (size_t)(hdp - hd) * sizeof(float));
        }
        if (Vs) {
            memcpy(Vs + (size_t)j * hdp, v, (size_t)hd * sizeof(float));
            memset(Vs + (size_t)j * hdp + hd, 0, (size_t)(hdp - hd) * sizeof(float));
        }
        if (bias) bias[j] = kv && !kv[j] ? -INFINITY : 0.0f;
    }
}

/* Rows [i0, i0+mr) of src (stride ld) into dst [mr][hdp] times s, zero-padded. */
static void att_gather_rows(float *dst, const float *src, size_t ld, int mr, int hd, int hdp, float s) {
    for (int r = 0; r < mr; r++) {
        const float *x = src + (size_t)r * ld;
        float *y = dst + (size_t)r * hdp;
        for (int c = 0; c < hd; c++) y[c] = x[c] * s;
        for (int c = hd; c < hdp; c++) y[c] = 0.0f;
    }
}

/* max over j < n of s[j] + bias[j] (−inf when n = 0 or all masked). */
static float att_max_row(const float *s, const float *bias, int n) {
    int j = 0;
    float mx = -INFINITY;
    if (n >= VF_N) {
        vf m = vf_add(vf_load(s), vf_load(bias));
        for (j = VF_N; j + VF_N <= n; j += VF_N) m = vf_max(m, vf_add(vf_load(s + j), vf_load(bias + j)));
        mx = vf_hmax(m);
    }
    for (; j < n; j++) {
        float v = s[j] + bias[j];
        mx = v > mx ? v : mx;
    }
    return mx;
}

/* In place: s[j] ← exp(s[j] + bias[j] − shift) for j < n. Returns Σ. */
static float att_exp_row(float *s, const float *bias, int n, float shift) {
    vf vs = vf_set1(shift), acc = vf_zero();
    int j;
    for (j = 0; j + VF_N <= n; j += VF_N) {
        vf e = vf_exp(vf_sub(vf_add(vf_load(s + j), vf_load(bias + j)), vs));
        vf_store(s + j, e);
        acc = vf_add(acc, e);
    }
    float sum = vf_hsum(acc);
    for (; j < n; j++) {
        s[j] = vm_expf(s[j] + bias[j] - shift);
        sum += s[j];
    }
    return sum;
}

/* P: this task's saved P (att_p_floats), or NULL when no backward will read it. */
static void k_attention_forward_task(const AttDims *d, int b, int h, const float *qkv, const uint8_t *key_valid,
                                     float *out, float *P, float *ws) {
    int T = d->T, D = d->D, hd = d->hd, hdp = d->hdp, Tp = d->Tp;
    size_t ld = 3 * (size_t)D;
    float *Kt = ws, *Vs = Kt + (size_t)hdp * Tp, *S = Vs + (size_t)Tp * hdp;
    float *Qb = S + (size_t)ATT_QB * Tp, *Ob = Qb + (size_t)ATT_QB * hdp, *bias = Ob + (size_t)ATT_QB * hdp;
    const float *base = qkv + (size_t)b * T * ld + (size_t)h * hd;
    int Tq = d->Tq;
    att_gather_kv(d, base, key_valid ? key_valid + (size_t)b * T : NULL, Kt, NULL, NULL, Vs, bias);
    for (int j = T; j < Tp; j++) bias[j] = -INFINITY;
    for (int i0 = d->q0; i0 < T; i0 += ATT_QB) {
        int mr = T - i0 < ATT_QB ? T - i0 : ATT_QB;
        int nk = att_block_keys(d, i0, mr), nkp = round_up(nk, VF_N);
        /* this block's P: in the saved buffer (row stride nkp) or in the scratch */
        float *Pb = P ? P : S;
        int ldp = P ? nkp : Tp;
        att_gather_rows(Qb, base + (size_t)i0 * ld, ld, mr, hd, hdp, d->scale);
        att_mm(mr, nkp, hdp, Qb, hdp, 1, Kt, Tp, Pb, ldp, 0);
        for (int r = 0; r < mr; r++) {
            int i = i0 + r, lim = d->causal ? i + 1 : T;
            float *sr = Pb + (size_t)r * ldp;
            float mx = att_max_row(sr, bias, lim);
            if (mx == -INFINITY) { /* no key allowed: output zeros */
                memset(sr, 0, (size_t)nkp * sizeof(float));
                continue;
            }
            vf inv = vf_set1(1.0f / att_exp_row(sr, bias, lim, mx));
            for (int j = lim; j < nkp; j++) sr[j] = 0.0f;
            for (int j = 0; j < nkp; j += VF_N) vf_store(sr + j, vf_mul(vf_load(sr + j), inv));
        }
        att_mm(mr, hdp, nk, Pb, ldp, 1, Vs, hdp, Ob, hdp, 0);
        for (int r = 0; r < mr; r++)
            memcpy(out + ((size_t)b * Tq + i0 - d->q0 + r) * D + (size_t)h * hd, Ob + (size_t)r * hdp,
                   (size_t)hd * sizeof(float));
        if (P) P += (size_t)ATT_QB * nkp;
    }
}

/* set: dqkv held no values (grad_overwrite); this task then writes its head's columns of
 * every row with = (dq of the rows before q0: zeros). P: this task's P from the forward. */
static void k_attention_backward_task(const AttDims *d, int b, int h, const float *qkv, const float *P,
                                      const float *dout, float *dqkv, int set, float *ws) {
    int T = d->T, D = d->D, hd = d->hd, hdp = d->hdp, Tp = d->Tp;
    size_t ld = 3 * (size_t)D, tp_hdp = (size_t)Tp * hdp;
    float *Ks = ws, *dKs = Ks + tp_hdp, *dVs = dKs + tp_hdp, *Vt = dVs + tp_hdp;
    float *Qb = Vt + tp_hdp, *dOb = Qb + (size_t)ATT_QB * hdp, *dQb = dOb + (size_t)ATT_QB * hdp;
    float *dP = dQb + (size_t)ATT_QB * hdp;
    const float *base = qkv + (size_t)b * T * ld + (size_t)h * hd;
    att_gather_kv(d, base, NULL, NULL, Ks, Vt, NULL, NULL);
    memset(dKs, 0, 2 * tp_hdp * sizeof(float)); /* dKs and dVs */
    if (set)
        for (int i = 0; i < d->q0; i++) memset(dqkv + ((size_t)b * T + i) * ld + (size_t)h * hd, 0, (size_t)hd * sizeof(float));
    for (int i0 = d->q0; i0 < T; i0 += ATT_QB) {
        int mr = T - i0 < ATT_QB ? T - i0 : ATT_QB;
        int nk = att_block_keys(d, i0, mr), nkp = round_up(nk, VF_N);
        const float *dorow = dout + ((size_t)b * d->Tq + i0 - d->q0) * D + (size_t)h * hd;
        att_gather_rows(Qb, base + (size_t)i0 * ld, ld, mr, hd, hdp, d->scale);
        att_gather_rows(dOb, dorow, (size_t)D, mr, hd, hdp, 1.0f);
        att_mm(mr, nkp, hdp, dOb, hdp, 1, Vt, Tp, dP, Tp, 0);
        for (int r = 0; r < mr; r++) {
            const float *pr = P + (size_t)r * nkp; /* 0 beyond the row's last allowed key */
            float *dr = dP + (size_t)r * Tp;
            /* Δ = Σ_j P·dP (= Σ_d dO·O, but from the same P as here: the exact gradient
             * is 0 where a query sees one key, and this cancels there), summed in
             * double because dP − Δ cancels. */
            vf dl = vf_set1((float)vm_dot_f64(pr, dr, nkp, NULL));
            for (int j = 0; j < nkp; j += VF_N) /* dS in place of dP */
                vf_store(dr + j, vf_mul(vf_load(pr + j), vf_sub(vf_load(dr + j), dl)));
        }
        /* dV[0..nk) += Pᵀ·dO_blk */
        att_mm(nk, hdp, mr, P, 1, (size_t)nkp, dOb, hdp, dVs, hdp, 1);
        /* dQ_blk = dS·K (scaled when written) */
        att_mm(mr, hdp, nk, dP, Tp, 1, Ks, hdp, dQb, hdp, 0);
        for (int r = 0; r < mr; r++) {
            float *dq = dqkv + ((size_t)b * T + i0 + r) * ld + (size_t)h * hd;
            if (set) for (int c = 0; c < hd; c++) dq[c] = d->scale * dQb[(size_t)r * hdp + c];
            else for (int c = 0; c < hd; c++) dq[c] += d->scale * dQb[(size_t)r * hdp + c];
        }
        /* dK[0..nk) += dSᵀ·(scale·Q_blk) */
        att_mm(nk, hdp, mr, dP, 1, (size_t)Tp, Qb, hdp, dKs, hdp, 1);
        P += (size_t)ATT_QB * nkp;
    }
    for (int j = 0; j < T; j++) {
        float *dk = dqkv + ((size_t)b * T + j) * ld + D + (size_t)h * hd, *dv = dk + D;
        if (set) {
            memcpy(dk, dKs + (size_t)j * hdp, (size_t)hd * sizeof(float));
            memcpy(dv, dVs + (size_t)j * hdp, (size_t)hd * sizeof(float));
        } else {
            for (int c = 0; c < hd; c++) {
                dk[c] += dKs[(size_t)j * hdp + c];
                dv[c] += dVs[(size_t)j * hdp + c];
            }
        }
    }
}

static void attention_node_backward(Node *node) {
    Tensor *qkv = node->in[0], *y = node->out;
    if (!qkv->grad) return;
    const AttSaved *sv = node->saved;
    AttDims d = {qkv->shape[0], qkv->shape[1], y->shape[2], node->iattr[0], 0, 0, 0, node->iattr[1], 0, 0, 0};
    d.Tq = y->shape[1];
    d.q0 = d.T - d.Tq;
    d.hd = d.D / d.H;
    d.hdp = round_up(d.hd, VF_N);
    d.Tp = round_up(d.T, VF_N);
    d.scale = 1.0f / sqrtf((float)d.hd);
    size_t per = att_scratch_floats(&d, 1), pt = att_p_floats(&d);
    int n_tasks = d.B * d.H;
    int par = sv->n_slots > 1 && (double)n_tasks * d.T * d.T * d.hd >= ATT_PAR_MIN;
    int set = grad_overwrite(qkv);
#pragma omp parallel num_threads(sv->n_slots) if (par)
    {
        float *ws = sv->scratch + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int t = 0; t < n_tasks; t++)
            k_attention_backward_task(&d, t / d.H, t % d.H, qkv->data, sv->P + pt * (size_t)t, y->grad, qkv->grad,
                                      set, ws);
    }
}

Tensor *op_attention(Graph *g, Tensor *qkv, int n_heads, int causal, const uint8_t *key_valid) {
    return op_attention_from(g, qkv, n_heads, causal, key_valid, 0);
}

Tensor *op_attention_from(Graph *g, Tensor *qkv, int n_heads, int causal, const uint8_t *key_valid, int q0) {
    if (!qkv) return NULL;
    char sb[64];
    if (qkv->ndim != 3 || qkv->shape[2] % 3 || n_heads <= 0 || (qkv->shape[2] / 3) % n_heads) {
        graph_fail(g, "attention: qkv %s must be [B, T, 3·D] with D divisible by %d heads",
                   shape_str(qkv, sb, sizeof sb), n_heads);
        return NULL;
    }
    if (q0 < 0 || q0 >= qkv->shape[1]) {
        graph_fail(g, "attention: first query %d outside the %d positions of qkv %s", q0, qkv->shape[1],
                   shape_str(qkv, sb, sizeof sb));
        return NULL;
    }
    AttDims d = {qkv->shape[0], qkv->shape[1], qkv->shape[2] / 3, n_heads, 0, 0, 0, causal != 0, 0, q0, 0};
    d.Tq = d.T - q0;
    d.hd = d.D / d.H;
    d.hdp = round_up(d.hd, VF_N);
    d.Tp = round_up(d.T, VF_N);
    d.scale = 1.0f / sqrtf((float)d.hd);
    int wg = graph_wants_grad(g, qkv, NULL, NULL);
    int shape[3] = {d.B, d.Tq, d.D};
    Tensor *y = graph_tensor(g, 3, shape, wg);
    if (!y) return NULL;
    int n_slots = omp_get_max_threads();
    /* One scratch for both passes: sized for the backward when there will be one. */
    size_t per = att_scratch_floats(&d, wg);
    int n_tasks = d.B * d.H;
    size_t pt = wg ? att_p_floats(&d) : 0;
    AttSaved *sv = arena_alloc(&g->arena, sizeof *sv);
    float *P = wg ? arena_alloc(&g->arena, pt * (size_t)n_tasks * sizeof(float)) : NULL;
    float *scratch = arena_alloc(&g->arena, per * (size_t)n_slots * sizeof(float));
    if (!sv || (wg && !P) || !scratch) { graph_fail(g, "attention: %s", vcm_error()); return NULL; }
    *sv = (AttSaved){P, scratch, n_slots};
    int par = n_slots > 1 && (double)n_tasks * d.T * d.T * d.hd >= ATT_PAR_MIN;
#pragma omp parallel num_threads(n_slots) if (par)
    {
        float *ws = scratch + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int t = 0; t < n_tasks; t++)
            k_attention_forward_task(&d, t / d.H, t % d.H, qkv->data, key_valid, y->data,
                                     P ? P + pt * (size_t)t : NULL, ws);
    }
    if (wg) {
        Node *n = graph_push(g, "attention", attention_node_backward, y);
        if (!n) return NULL;
        n->in[0] = qkv;
        n->saved = sv;
        n->iattr[0] = n_heads;
        n->iattr[1] = d.causal;
    }
    return y;
}
