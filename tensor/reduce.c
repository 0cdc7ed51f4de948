/* Reductions over plain float arrays, for callers outside tensor/ that have no SIMD
 * layer of their own (nn/'s gradient-norm clipping). */
#include "tensor.h"
#include "vecmath.h"

#include <limits.h>

double vcm_sum_squares(const float *x, size_t n) {
    /* In pieces of at most INT_MAX floats (vm_dot_f64 counts in int), added in order. */
    double s = 0.0;
    for (size_t off = 0; off < n;) {
        int len = n - off > (size_t)INT_MAX ? INT_MAX : (int)(n - off);
        s += vm_dot_f64(x + off, x + off, len, NULL);
        off += (size_t)len;
    }
    return s;
}
