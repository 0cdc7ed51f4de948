/* The one shuffle (base.h): Fisher–Yates from the top, j uniform in [0, i]. */
#include "base.h"

#include <string.h>

/* Swap two elements of `size` bytes through a small buffer (the common sizes of int,
 * long and index records are a few bytes; larger ones go in pieces). */
static void swap_bytes(unsigned char *x, unsigned char *y, size_t size) {
    unsigned char t[64];
    while (size) {
        size_t k = size < sizeof t ? size : sizeof t;
        memcpy(t, x, k);
        memcpy(x, y, k);
        memcpy(y, t, k);
        x += k, y += k, size -= k;
    }
}

void vcm_shuffle_with(void *a, size_t n, size_t size, uint64_t (*next)(uint64_t *), uint64_t *state) {
    unsigned char *p = a;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)(next(state) % ((uint64_t)i + 1));
        if (j != i) swap_bytes(p + i * size, p + j * size, size);
    }
}

void vcm_shuffle(void *a, size_t n, size_t size, uint64_t *state) { vcm_shuffle_with(a, n, size, vcm_rng_next, state); }

uint64_t vcm_hash_chain_next(uint64_t *state) {
    *state = vcm_hash64(*state);
    return *state >> 11;
}
