/* Byte-level BPE: pre-tokenisation, encoding, decoding and the id -> bytes table.
 * Training is in bpe_train.c, the .tok file in bpe_io.c. */
#include "lm/bpe_internal.h"
#include "tensor/tensor.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- pair map */

int pairmap_init(PairMap *m, size_t cap_hint) {
    size_t cap = 64;
    while (cap < cap_hint * 2) cap <<= 1;
    m->keys = malloc(cap * sizeof *m->keys);
    m->vals = malloc(cap * sizeof *m->vals);
    m->cap = cap;
    m->n = 0;
    if (!m->keys || !m->vals) {
        pairmap_free(m);
        return vcm_fail(VCM_ERR, "bpe: out of memory for a pair map of %zu slots", cap);
    }
    memset(m->vals, 0xff, cap * sizeof *m->vals);   /* all -1: empty */
    return VCM_OK;
}

void pairmap_free(PairMap *m) {
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

static int pairmap_grow(PairMap *m) {
    PairMap g;
    if (pairmap_init(&g, m->cap)) return VCM_ERR;
    size_t mask = g.cap - 1;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->vals[i] < 0) continue;
        size_t j = pair_hash(m->keys[i]) & mask;
        while (g.vals[j] >= 0) j = (j + 1) & mask;
        g.keys[j] = m->keys[i];
        g.vals[j] = m->vals[i];
    }
    g.n = m->n;
    pairmap_free(m);
    *m = g;
    return VCM_OK;
}

int pairmap_put(PairMap *m, int32_t a, int32_t b, int32_t val) {
    if ((m->n + 1) * 2 > m->cap && pairmap_grow(m)) return VCM_ERR;
    uint64_t k = pair_key(a, b);
    size_t mask = m->cap - 1;
    size_t i = pair_hash(k) & mask;
    while (m->vals[i] >= 0 && m->keys[i] != k) i = (i + 1) & mask;
    if (m->vals[i] < 0) m->n++;
    m->keys[i] = k;
    m->vals[i] = val;
    return VCM_OK;
}

/* ---------------------------------------------------------------- pre-tokenisation */

enum { C_SPACE, C_LETTER, C_DIGIT, C_PUNCT };

static int byte_class(uint8_t c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') return C_SPACE;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return C_LETTER;
    if (c >= '0' && c <= '9') return C_DIGIT;
    return C_PUNCT;
}

/* "[k]" with k = 0..15 and no leading zero: its length (3 or 4) and k, else 0. */
static size_t mention_at(const uint8_t *s, size_t len, int *k) {
    if (len < 3 || s[0] != '[' || s[1] < '0' || s[1] > '9') return 0;
    if (s[2] == ']') { *k = s[1] - '0'; return 3; }
    if (len >= 4 && s[1] == '1' && s[2] >= '0' && s[2] <= '5' && s[3] == ']') {
        *k = 10 + (s[2] - '0');
        return 4;
    }
    return 0;
}

/* GPT-2's contractions: 's 't 're 've 'm 'll 'd (lower case, as the text is). */
static size_t contraction_at(const uint8_t *s, size_t len) {
    if (len < 2 || s[0] != '\'') return 0;
    if (s[1] == 's' || s[1] == 't' || s[1] == 'm' || s[1] == 'd') return 2;
    if (len >= 3 && ((s[1] == 'r' && s[2] == 'e') || (s[1] == 'v' && s[2] == 'e') ||
                     (s[1] == 'l' && s[2] == 'l')))
        return 3;
    return 0;
}

/* Length of the run of class cls starting at s[from]; a punctuation run stops before
 * a mention so that "([0])" keeps its mention whole. A piece is cut at BPE_MAX_PIECE
 * anyway, so the scan stops a little past it (4 more: a mention "[15]" starting at the
 * cut must still be seen, and the space rule below may take one
 * back): without the stop, a 1 MB word cost a 1 MB scan for each of its pieces. */
static size_t class_run(const uint8_t *s, size_t len, size_t from, int cls) {
    size_t i = from;
    if (len - from > BPE_MAX_PIECE + 4) len = from + BPE_MAX_PIECE + 4;
    int k;
    while (i < len && byte_class(s[i]) == cls) {
        if (cls == C_PUNCT && i > from && mention_at(s + i, len - i, &k)) break;
        i++;
    }
    return i - from;
}

size_t bpe_piece(const char *text, size_t len, int *mention) {
    const uint8_t *s = (const uint8_t *)text;
    int k;
    *mention = -1;
    if (len == 0) return 0;
    size_t m = mention_at(s, len, &k);
    if (m) { *mention = k; return m; }
    size_t n = contraction_at(s, len);
    if (!n) {
        int cls = byte_class(s[0]);
        if (s[0] == ' ' && len > 1 && byte_class(s[1]) != C_SPACE && !mention_at(s + 1, len - 1, &k)) {
            n = 1 + class_run(s, len, 1, byte_class(s[1]));   /* " word" */
        } else if (cls == C_SPACE) {
            n = class_run(s, len, 0, C_SPACE);
            /* Leave the run's last space to the word that follows it. */
            if (n > 1 && n < len && s[n - 1] == ' ' && !mention_at(s + n, len - n, &k)) n--;
        } else {
            n = class_run(s, len, 0, cls);
        }
    }
    return n > BPE_MAX_PIECE ? BPE_MAX_PIECE : n;
}

/* ---------------------------------------------------------------- tables */

static const char *special_name(int id, char buf[8]) {
    static const char *const names[3] = {"<pad>", "<bos>", "<eos>"};
    if (id < BPE_REGION0) return names[id];
    snprintf(buf, 8, "[%d]", id - BPE_REGION0);
    return buf;
}

int bpe_build_tables(Tokenizer *t, const char *what) {
    t->vocab = BPE_N_BASE + t->n_merges;
    size_t n_bytes = 0;
    uint32_t *off = malloc(((size_t)t->vocab + 1) * sizeof *off);
    uint32_t *tlen = malloc((size_t)t->vocab * sizeof *tlen);
    PairMap *rank = malloc(sizeof *rank);
    if (!off || !tlen || !rank || pairmap_init(rank, (size_t)t->n_merges + 1)) {
        free(off); free(tlen); free(rank);
        return vcm_fail(VCM_ERR, "%s: out of memory for %d tokens", what, t->vocab);
    }
    char buf[8];
    for (int id = 0; id < t->vocab; id++) {
        if (id < BPE_BYTE0) tlen[id] = (uint32_t)strlen(special_name(id, buf));
        else if (id < BPE_N_BASE) tlen[id] = 1;
        else {
            int i = id - BPE_N_BASE;
            int32_t a = t->merges[2 * i], b = t->merges[2 * i + 1];
            const char *bad = NULL;
            if (a < BPE_BYTE0 || b < BPE_BYTE0) bad = "merges a special token";
            else if (a >= id || b >= id) bad = "uses an id not defined before it";
            else if (tlen[a] + tlen[b] > BPE_MAX_PIECE) bad = "makes a token longer than a piece (64 bytes)";
            else if (pairmap_get(rank, a, b) >= 0) bad = "repeats an earlier merge";
            if (bad) {
                free(off); free(tlen); pairmap_free(rank); free(rank);
                return vcm_fail(VCM_EINPUT, "%s: merge %d (%d %d) %s", what, i, a, b, bad);
            }
            tlen[id] = tlen[a] + tlen[b];
            if (pairmap_put(rank, a, b, i)) {
                free(off); free(tlen); pairmap_free(rank); free(rank);
                return VCM_ERR;
            }
        }
        n_bytes += tlen[id];
    }
    uint8_t *bytes = malloc(n_bytes ? n_bytes : 1);
    if (!bytes) {
        free(off); free(tlen); pairmap_free(rank); free(rank);
        return vcm_fail(VCM_ERR, "%s: out of memory for token bytes", what);
    }
    uint32_t o = 0;
    for (int id = 0; id < t->vocab; id++) {
        off[id] = o;
        if (id < BPE_BYTE0) memcpy(bytes + o, special_name(id, buf), tlen[id]);
        else if (id < BPE_N_BASE) bytes[o] = (uint8_t)(id - BPE_BYTE0);
        else {
            int i = id - BPE_N_BASE;
            int32_t a = t->merges[2 * i], b = t->merges[2 * i + 1];
            memcpy(bytes + o, bytes + off[a], tlen[a]);
            memcpy(bytes + o + tlen[a], bytes + off[b], tlen[b]);
        }
        o += tlen[id];
    }
    off[t->vocab] = o;
    free(tlen);
    t->tok_off = off;
    t->tok_bytes = bytes;
    t->rank = rank;
    return VCM_OK;
}

void bpe_free(Tokenizer *t) {
    if (!t) return;
    free(t->merges);
    free(t->tok_off);
    free(t->tok_bytes);
    if (t->rank) pairmap_free(t->rank);
    free(t->rank);
    memset(t, 0, sizeof *t);
}

const char *bpe_token_text(const Tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab) return NULL;
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return (const char *)t->tok_bytes + t->tok_off[id];
}

/* ---------------------------------------------------------------- encode / decode */

/* One piece (at most BPE_MAX_PIECE bytes): start from bytes, then repeatedly apply
 * the earliest-learned merge present, all its occurrences left to right — the same
 * order training applied them in. r[i] caches the rank of the pair at i; after a merge
 * only the pairs next to the new symbol are looked up again (a merged pair can never
 * reappear, so the new id marks exactly the changed places). */
static size_t encode_piece(const PairMap *rank, const uint8_t *s, size_t n, int32_t *out) {
    int32_t sym[BPE_MAX_PIECE], r[BPE_MAX_PIECE];
    const int32_t NONE = INT32_MAX;
    for (size_t i = 0; i < n; i++) sym[i] = BPE_BYTE0 + s[i];
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t k = pairmap_get(rank, sym[i], sym[i + 1]);
        r[i] = k < 0 ? NONE : k;
    }
    while (n > 1) {
        int32_t best = NONE;
        for (size_t i = 0; i + 1 < n; i++) if (r[i] < best) best = r[i];
        if (best == NONE) break;
        int32_t merged = BPE_N_BASE + best;
        size_t w = 0;
        for (size_t i = 0; i < n; i++, w++) {
            if (i + 1 < n && r[i] == best) { sym[w] = merged; i++; }
            else sym[w] = sym[i];
            r[w] = i + 1 < n ? r[i] : NONE;   /* fixed below where a neighbour changed */
        }
        n = w;
        for (size_t i = 0; i + 1 < n; i++)
            if (sym[i] == merged || sym[i + 1] == merged) {
                int32_t k = pairmap_get(rank, sym[i], sym[i + 1]);
                r[i] = k < 0 ? NONE : k;
            }
    }
    memcpy(out, sym, n * sizeof *sym);
    return n;
}

long bpe_encode(const Tokenizer *t, const char *s, size_t len, int32_t *ids, size_t cap) {
    size_t n = 0, pos = 0;
    int32_t tmp[BPE_MAX_PIECE];
    while (pos < len) {
        int k;
        size_t p = bpe_piece(s + pos, len - pos, &k);
        size_t m;
        if (k >= 0) { tmp[0] = BPE_REGION0 + k; m = 1; }
        else m = encode_piece(t->rank, (const uint8_t *)s + pos, p, tmp);
        if (n + m > cap) {
            vcm_fail(VCM_ERR, "bpe_encode: %zu ids do not fit in %zu", n + m, cap);
            return -1;
        }
        memcpy(ids + n, tmp, m * sizeof *tmp);
        n += m;
        pos += p;
    }
    return (long)n;
}

long bpe_decode(const Tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap,
                int skip_special) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab) {
            vcm_fail(VCM_EINPUT, "bpe_decode: id %d at position %zu is outside the vocabulary (0..%d)",
                     id, i, t->vocab - 1);
            return -1;
        }
        if (skip_special && id < BPE_REGION0) continue;
        size_t l = t->tok_off[id + 1] - t->tok_off[id];
        if (o < cap) memcpy(out + o, t->tok_bytes + t->tok_off[id], o + l <= cap ? l : cap - o);
        o += l;
    }
    return (long)o;
}
