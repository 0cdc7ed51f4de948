/* One OpenMP pool does all the parallel work. OpenBLAS is kept at one thread: our
 * gemm cuts a product into tiles and runs them on the OpenMP pool (op_matmul.c), so
 * results do not depend on the thread count (threaded sgemm's do, measured in
 * docs/TENSOR_MATMUL.md) and the two pools never fight over the cores. */
#include "tensor.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* OpenBLAS's own functions; declared here so that we need not include its private header. */
void openblas_set_num_threads(int n);
char *openblas_get_corename(void);

static int n_threads = 1;

/* Denormal floats (below 1.2e-38) cost ~100x a normal operation on x86. Training meets
 * them in quantity (tiny gradients and Adam moments): the demo's nano run fell from 130
 * to 60 samples/s at step ~550 and stayed there. So every thread vcm computes on
 * flushes them to zero (MXCSR FTZ + DAZ), as TensorFlow does by default and PyTorch
 * does with torch.set_flush_denormal(True). Threads created later inherit the mode. */
void vcm_flush_denormals(void) {
#if defined(__SSE__)
    _mm_setcsr(_mm_getcsr() | 0x8040); /* FTZ (bit 15) | DAZ (bit 6) */
#endif
}

int vcm_threads_init(int n) {
    if (n <= 0) {
        const char *env = getenv("VCM_THREADS");
        if (env && *env) n = atoi(env);
    }
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    n_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
    /* OpenMP creates its threads at the first parallel region, as copies of the calling
     * thread's floating-point state: set here, before any work, it reaches them all. (A
     * parallel region here to set it in threads that might exist already made the
     * decoding team fall back to one thread in half of the generation benchmarks.) */
    vcm_flush_denormals();
    return n;
}

int vcm_threads(void) { return n_threads; }

/* The gemm tile count is a property of the machine, not of the run: the online cores
 * (not the ones this process is bound to, which follow the thread settings), rounded
 * down to a power of two, at most 16; VCM_GEMM_TILES overrides it. Computed on first
 * use; a race computes the same value twice. */
static int gemm_max_tiles = 0;

static int pow2_floor(long n) {
    int p = 1;
    while (p * 2 <= n && p < 16) p *= 2;
    return p;
}

int vcm_gemm_max_tiles(void) {
    if (gemm_max_tiles <= 0) {
        const char *env = getenv("VCM_GEMM_TILES");
        long n = env && *env ? atol(env) : 0;
        if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
        gemm_max_tiles = pow2_floor(n);
    }
    return gemm_max_tiles;
}

int vcm_gemm_set_max_tiles(int n) {
    gemm_max_tiles = n > 0 ? pow2_floor(n) : 0;
    return vcm_gemm_max_tiles();
}

const char *vcm_blas_core(void) { return openblas_get_corename(); }

/* OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons (seen: a Sapphire Rapids
 * VM reporting "Intel(R) Xeon(R) Processor") and falls back to its Prescott (SSE3)
 * kernels, 4-5x slower than the AVX-512 ones. The core type is read when the library
 * loads, so it can only be chosen by the environment of a new process. */
const char *vcm_blas_preferred_core(void) {
    if (getenv("OPENBLAS_CORETYPE")) return NULL;     /* the user (or the site) decided */
    const char *core = openblas_get_corename();
    if (!core || strcmp(core, "Prescott")) return NULL; /* detection worked */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}
