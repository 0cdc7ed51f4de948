/* One OpenMP pool for our kernels and an explicit OpenBLAS thread count, set
 * together so that the two never oversubscribe the cores. */
#include "tensor.h"

#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

/* OpenBLAS's own setter; declared here so that we need not include its private header. */
void openblas_set_num_threads(int n);

static int n_threads = 1;

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
    openblas_set_num_threads(n);
    return n;
}

int vcm_threads(void) { return n_threads; }
