/* Internal to lm/bpe*.c: the (a, b) -> value hash shared by training and encoding,
 * the longest pre-tokenised piece, and the table builder both train and load use. */
#ifndef VCM_BPE_INTERNAL_H
#define VCM_BPE_INTERNAL_H

#include "lm/lm.h"

#include <stdint.h>
#include <stdlib.h>

/* Pieces are cut at this many bytes so encoding a piece stays cheap (quadratic in its
 * length) whatever the input; training and encoding cut at the same place. */
#define BPE_MAX_PIECE 64

/* Open addressing, linear probing; key = a << 32 | b, val < 0 means empty. */
typedef struct PairMap {
    uint64_t *keys;
    int32_t *vals;
    size_t cap, n;   /* cap is a power of two */
} PairMap;

static inline uint64_t pair_key(int32_t a, int32_t b) {
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}
static inline size_t pair_hash(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdULL; k ^= k >> 33;
    return (size_t)k;
}

int pairmap_init(PairMap *m, size_t cap_hint);
void pairmap_free(PairMap *m);
/* The value for (a, b), or -1. */
static inline int32_t pairmap_get(const PairMap *m, int32_t a, int32_t b) {
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = pair_hash(k) & mask;; i = (i + 1) & mask) {
        if (m->vals[i] < 0) return -1;
        if (m->keys[i] == k) return m->vals[i];
    }
}
/* Insert or overwrite. Returns 0, or VCM_ERR when out of memory. */
int pairmap_put(PairMap *m, int32_t a, int32_t b, int32_t val);

/* From t->merges (n_merges, vocab set): the id -> bytes table and the rank map.
 * Checks what a file could get wrong (ids out of order, duplicate merges, tokens longer
 * than a piece); `what` prefixes messages. */
int bpe_build_tables(Tokenizer *t, const char *what);

#endif
