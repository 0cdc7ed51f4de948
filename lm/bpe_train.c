/* BPE training: count the distinct pieces once, then learn merges with pair counts
 * kept up to date incrementally — each merge only revisits the words that contain
 * the merged pair (found through a per-pair word list), never the whole corpus. */
#include "lm/bpe_internal.h"
#include "tensor/tensor.h"

#include <string.h>

/* ---------------------------------------------------------------- distinct pieces */

typedef struct Word {
    uint32_t off;       /* into Trainer.sym */
    uint32_t len;       /* current number of symbols (shrinks as merges apply) */
    int64_t count;      /* occurrences in the text */
} Word;

typedef struct Pair {
    int32_t a, b;
    int64_t count;      /* sum of word counts over occurrences */
    int32_t *words;     /* words that contained (a, b) when it was counted; may hold stale ones */
    int32_t n_words, cap_words;
    int32_t stamp;      /* last merge step that pushed it on the heap */
} Pair;

typedef struct HeapItem { int64_t count; int32_t a, b, pair; } HeapItem;

typedef struct Trainer {
    Word *words; int32_t n_words, cap_words_arr;
    int32_t *sym; size_t n_sym, cap_sym;
    Pair *pairs; int32_t n_pairs, cap_pairs;
    PairMap pair_index;
    HeapItem *heap; size_t n_heap, cap_heap;
    int32_t *touched; size_t n_touched, cap_touched;
} Trainer;

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return VCM_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return vcm_fail(VCM_ERR, "bpe_train: out of memory (%zu x %zu bytes)", c, elem);
    *p = q;
    *cap = c;
    return VCM_OK;
}

/* A hash of the distinct pieces: bytes -> word index. */
typedef struct PieceMap {
    uint64_t *hash; int32_t *word; size_t cap, n;
} PieceMap;

static uint64_t fnv1a(const uint8_t *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) { h ^= s[i]; h *= 1099511628211ULL; }
    return h;
}

static int piecemap_init(PieceMap *m, size_t cap) {
    m->cap = cap;
    m->n = 0;
    m->hash = malloc(cap * sizeof *m->hash);
    m->word = malloc(cap * sizeof *m->word);
    if (!m->hash || !m->word) return vcm_fail(VCM_ERR, "bpe_train: out of memory for the piece table");
    memset(m->word, 0xff, cap * sizeof *m->word);
    return VCM_OK;
}

static int word_equals(const Trainer *T, int32_t w, const uint8_t *s, size_t n) {
    const Word *x = &T->words[w];
    if (x->len != n) return 0;
    const int32_t *y = T->sym + x->off;
    for (size_t i = 0; i < n; i++) if (y[i] != BPE_BYTE0 + s[i]) return 0;
    return 1;
}

static int piecemap_grow(PieceMap *m) {
    PieceMap g;
    if (piecemap_init(&g, m->cap * 2)) { free(g.hash); free(g.word); return VCM_ERR; }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->word[i] < 0) continue;
        size_t j = m->hash[i] & (g.cap - 1);
        while (g.word[j] >= 0) j = (j + 1) & (g.cap - 1);
        g.hash[j] = m->hash[i];
        g.word[j] = m->word[i];
    }
    g.n = m->n;
    free(m->hash); free(m->word);
    *m = g;
    return VCM_OK;
}

/* Count one occurrence of piece s[0..n). */
static int add_piece(Trainer *T, PieceMap *m, const uint8_t *s, size_t n) {
    uint64_t h = fnv1a(s, n);
    size_t i = h & (m->cap - 1);
    while (m->word[i] >= 0) {
        if (m->hash[i] == h && word_equals(T, m->word[i], s, n)) {
            T->words[m->word[i]].count++;
            return VCM_OK;
        }
        i = (i + 1) & (m->cap - 1);
    }
    size_t cw = (size_t)T->cap_words_arr;
    if (grow((void **)&T->words, &cw, (size_t)T->n_words + 1, sizeof *T->words)) return VCM_ERR;
    T->cap_words_arr = (int32_t)cw;
    if (grow((void **)&T->sym, &T->cap_sym, T->n_sym + n, sizeof *T->sym)) return VCM_ERR;
    Word *w = &T->words[T->n_words];
    w->off = (uint32_t)T->n_sym;
    w->len = (uint32_t)n;
    w->count = 1;
    for (size_t k = 0; k < n; k++) T->sym[T->n_sym + k] = BPE_BYTE0 + s[k];
    T->n_sym += n;
    m->hash[i] = h;
    m->word[i] = T->n_words++;
    if (++m->n * 2 > m->cap) return piecemap_grow(m);
    return VCM_OK;
}

static int count_pieces(Trainer *T, const char *text, size_t len) {
    PieceMap m;
    if (piecemap_init(&m, 1 << 16)) { free(m.hash); free(m.word); return VCM_ERR; }
    size_t pos = 0;
    int rc = VCM_OK;
    while (pos < len && !rc) {
        int k;
        size_t p = bpe_piece(text + pos, len - pos, &k);
        if (k < 0) rc = add_piece(T, &m, (const uint8_t *)text + pos, p);  /* mentions are specials */
        pos += p;
    }
    free(m.hash); free(m.word);
    return rc;
}

/* ---------------------------------------------------------------- pairs and heap */

static int32_t pair_id(Trainer *T, int32_t a, int32_t b) {
    int32_t p = pairmap_get(&T->pair_index, a, b);
    if (p >= 0) return p;
    size_t cap = (size_t)T->cap_pairs;
    if (grow((void **)&T->pairs, &cap, (size_t)T->n_pairs + 1, sizeof *T->pairs)) return -1;
    T->cap_pairs = (int32_t)cap;
    p = T->n_pairs++;
    memset(&T->pairs[p], 0, sizeof T->pairs[p]);
    T->pairs[p].a = a;
    T->pairs[p].b = b;
    T->pairs[p].stamp = -1;
    if (pairmap_put(&T->pair_index, a, b, p)) return -1;
    return p;
}

static int pair_add_word(Pair *p, int32_t w) {
    if (p->n_words && p->words[p->n_words - 1] == w) return VCM_OK;
    size_t cap = (size_t)p->cap_words;
    if (grow((void **)&p->words, &cap, (size_t)p->n_words + 1, sizeof *p->words)) return VCM_ERR;
    p->cap_words = (int32_t)cap;
    p->words[p->n_words++] = w;
    return VCM_OK;
}

/* Heap order: larger count first; ties: smaller a, then smaller b (the fixed rule). */
static int heap_before(const HeapItem *x, const HeapItem *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static int heap_push(Trainer *T, int32_t pid) {
    if (grow((void **)&T->heap, &T->cap_heap, T->n_heap + 1, sizeof *T->heap)) return VCM_ERR;
    const Pair *p = &T->pairs[pid];
    HeapItem it = {p->count, p->a, p->b, pid};
    size_t i = T->n_heap++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!heap_before(&it, &T->heap[up])) break;
        T->heap[i] = T->heap[up];
        i = up;
    }
    T->heap[i] = it;
    return VCM_OK;
}

static HeapItem heap_pop(Trainer *T) {
    HeapItem top = T->heap[0], last = T->heap[--T->n_heap];
    size_t i = 0, n = T->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_before(&T->heap[c + 1], &T->heap[c])) c++;
        if (!heap_before(&T->heap[c], &last)) break;
        T->heap[i] = T->heap[c];
        i = c;
    }
    if (n) T->heap[i] = last;
    return top;
}

static int count_initial_pairs(Trainer *T) {
    for (int32_t w = 0; w < T->n_words; w++) {
        const Word *x = &T->words[w];
        const int32_t *s = T->sym + x->off;
        for (uint32_t i = 0; i + 1 < x->len; i++) {
            int32_t p = pair_id(T, s[i], s[i + 1]);
            if (p < 0) return VCM_ERR;
            T->pairs[p].count += x->count;
            if (pair_add_word(&T->pairs[p], w)) return VCM_ERR;
        }
    }
    for (int32_t p = 0; p < T->n_pairs; p++)
        if (heap_push(T, p)) return VCM_ERR;
    return VCM_OK;
}

/* ---------------------------------------------------------------- one merge */

static int merge_word(Trainer *T, int32_t w, int32_t a, int32_t b, int32_t merged, int32_t step) {
    Word *x = &T->words[w];
    int32_t *s = T->sym + x->off;
    uint32_t n = x->len, i;
    for (i = 0; i + 1 < n; i++) if (s[i] == a && s[i + 1] == b) break;
    if (i + 1 >= n) return VCM_OK;     /* a stale entry of the word list */
    /* Take the word's pairs out, merge, put the new word's pairs in. Only pairs with
     * the new id can gain count, so only they get the word and a heap entry. */
    for (i = 0; i + 1 < n; i++) T->pairs[pairmap_get(&T->pair_index, s[i], s[i + 1])].count -= x->count;
    uint32_t o = 0;
    for (i = 0; i < n; i++) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) { s[o++] = merged; i++; }
        else s[o++] = s[i];
    }
    x->len = n = o;
    for (i = 0; i + 1 < n; i++) {
        int32_t p = pair_id(T, s[i], s[i + 1]);
        if (p < 0) return VCM_ERR;
        Pair *pp = &T->pairs[p];
        pp->count += x->count;
        if (s[i] == merged || s[i + 1] == merged) {
            if (pair_add_word(pp, w)) return VCM_ERR;
            if (pp->stamp != step) {
                pp->stamp = step;
                if (grow((void **)&T->touched, &T->cap_touched, T->n_touched + 1, sizeof *T->touched))
                    return VCM_ERR;
                T->touched[T->n_touched++] = p;
            }
        }
    }
    return VCM_OK;
}

static void trainer_free(Trainer *T) {
    for (int32_t p = 0; p < T->n_pairs; p++) free(T->pairs[p].words);
    free(T->pairs);
    free(T->words);
    free(T->sym);
    free(T->heap);
    free(T->touched);
    pairmap_free(&T->pair_index);
}

int bpe_train(const char *text, size_t len, int vocab, Tokenizer *t) {
    memset(t, 0, sizeof *t);
    if (vocab < BPE_N_BASE)
        return vcm_fail(VCM_EINPUT, "bpe_train: vocab %d is below the %d specials and bytes", vocab, BPE_N_BASE);
    if (len > ((size_t)1 << 31))
        return vcm_fail(VCM_EINPUT, "bpe_train: %zu bytes of text is more than the 2 GiB supported", len);
    Trainer T;
    memset(&T, 0, sizeof T);
    int rc = pairmap_init(&T.pair_index, 1 << 16);
    if (!rc) rc = count_pieces(&T, text, len);
    if (!rc) rc = count_initial_pairs(&T);
    int max_merges = vocab - BPE_N_BASE, n_merges = 0;
    t->merges = malloc(((size_t)max_merges + 1) * 2 * sizeof *t->merges);
    if (!rc && !t->merges) rc = vcm_fail(VCM_ERR, "bpe_train: out of memory");
    while (!rc && n_merges < max_merges && T.n_heap) {
        HeapItem top = heap_pop(&T);
        Pair *p = &T.pairs[top.pair];
        if (p->count != top.count) {              /* stale: counts only ever fall */
            if (p->count > 0 && (rc = heap_push(&T, top.pair))) break;
            continue;
        }
        if (top.count < 2) break;                 /* nothing left worth a token */
        int32_t merged = BPE_N_BASE + n_merges;
        t->merges[2 * n_merges] = top.a;
        t->merges[2 * n_merges + 1] = top.b;
        int32_t *list = p->words, nl = p->n_words;
        p->words = NULL;
        p->n_words = p->cap_words = 0;
        T.n_touched = 0;
        for (int32_t k = 0; k < nl && !rc; k++)
            if (k == 0 || list[k] != list[k - 1]) rc = merge_word(&T, list[k], top.a, top.b, merged, n_merges);
        free(list);
        for (size_t k = 0; k < T.n_touched && !rc; k++)
            if (T.pairs[T.touched[k]].count > 0) rc = heap_push(&T, T.touched[k]);
        n_merges++;
    }
    trainer_free(&T);
    if (rc) { bpe_free(t); return rc; }
    t->n_merges = n_merges;
    rc = bpe_build_tables(t, "bpe_train");
    if (rc) bpe_free(t);
    return rc;
}
