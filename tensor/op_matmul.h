/* tensor/op_matmul.h — private to tensor/ (and bench/, tests/): the matmul kernels
 * under op_matmul / op_linear, for benchmarks and tests to call without the graph,
 * and vcm_axpy_grad, which op_linear_residual shares with op_add.
 *
 * vcm_gemm: C = alpha·op(A)·op(B) + beta·C, row-major, like cblas_sgemm, but bitwise
 * identical for any thread count: the work is cut into tiles whose boundaries depend
 * only on (M, N, K), each tile is one single-threaded cblas_sgemm, and tiles run in
 * parallel over the OpenMP pool (see docs/TENSOR_MATMUL.md for why). When the tiling
 * splits K, partial products go to `scratch` (gemm_scratch_floats(M, N, K) floats) and
 * are added in a fixed order; scratch == NULL forbids K splits (still deterministic).
 */
#ifndef VCM_OP_MATMUL_H
#define VCM_OP_MATMUL_H

#include <stddef.h>

size_t gemm_scratch_floats(int M, int N, int K);
void vcm_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
              int ldb, float beta, float *C, int ldc, float *scratch);
/* `batch` independent gemms; A, B, C advance by sa, sb, sc floats per batch (sb = 0:
 * every batch shares B). Never splits K. */
void vcm_gemm_batched(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, size_t sa,
                      const float *B, int ldb, size_t sb, float beta, float *C, int ldc, size_t sc, int batch);

/* y[R, out] = x[R, in]·Wᵀ + b (b may be NULL). */
void vcm_linear_forward(float *y, const float *x, const float *W, const float *b, int R, int in, int out);
/* y = r + b + x·Wᵀ, r [R, out] (may be NULL): the sum formed in y's rows, r + b first. */
void vcm_linear_forward_residual(float *y, const float *x, const float *W, const float *b, const float *r, int R,
                                 int in, int out);
/* dx[R, in] += dy[R, out]·W (= when set: dx held no values). scratch as vcm_gemm with
 * (M, N, K) = (R, in, out), or NULL (it matters for few rows and a long out, e.g. the
 * logits layer over a small batch). */
void vcm_linear_backward_dx(float *dx, const float *dy, const float *W, int R, int in, int out, float *scratch,
                            int set);
/* dW[out, in] += dyᵀ·x; db[out] += column sums of dy (db may be NULL); = instead of +=
 * when set_w / set_b. scratch as vcm_gemm with (M, N, K) = (out, in, R). */
void vcm_linear_backward_dw(float *dW, float *db, const float *dy, const float *x, int R, int in, int out,
                            float *scratch, int set_w, int set_b);
/* db[j] += Σ_r dy[r, j] (= when set), rows added in order whatever the thread count. */
void vcm_colsum(float *db, const float *dy, int R, int C, int set);
/* da[i] += s·dout[i] (= when set), in parallel: op_add's backward (op_elementwise.c),
 * reused for op_linear_residual's residual input. */
void vcm_axpy_grad(float *da, const float *dout, float s, size_t n, int set);

#endif
