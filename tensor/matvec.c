/* One-position kernels (tensor.h "row kernels"): the KV cache's matrix-vector products,
 * dot products and axpy, vectorised with tensor/'s vector layer. */
#include "tensor/tensor.h"
#include "tensor/vecmath.h"

/* The sum of a vector's lanes. */
static float vf_sum(vf a) {
#if defined(__AVX512F__)
    return _mm512_reduce_add_ps(a);
#else
    return vf_hsum(a);
#endif
}

/* y[o] (+)= W[o, :]·x + b[o] for the n <= 4 rows o.. of W [out, in] row-major: four rows
 * at a time (x is loaded once for four rows), two vector accumulators per row (enough
 * independent FMA chains to hide their latency), added in a fixed order; each row's sum
 * is the same whichever block or thread computes it, so the result does not depend on
 * the thread count. A hand loop rather than sgemv: with the weights in cache it took
 * half sgemv's time at these sizes (128×384 … 2048×128). */
void vcm_matvec_rows(float *y, const float *W, const float *b, const float *x, int o, int n, int in,
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

float vcm_dot(const float *a, const float *b, int n) {
    vf acc = vf_zero();
    int c = 0;
    for (; c + VF_N <= n; c += VF_N) acc = vf_fma(vf_load(a + c), vf_load(b + c), acc);
    float s = vf_sum(acc);
    for (; c < n; c++) s += a[c] * b[c];
    return s;
}

void vcm_axpy(float *y, float a, const float *x, int n) {
    int c = 0;
    for (; c + VF_N <= n; c += VF_N) vf_store(y + c, vf_fma(vf_set1(a), vf_load(x + c), vf_load(y + c)));
    for (; c < n; c++) y[c] += a * x[c];
}
