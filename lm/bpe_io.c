/* The .tok file: a small versioned text file, readable with a pager.
 *
 *   vcm-bpe 1
 *   pretokenizer words-v1
 *   vocab 2048
 *   merges 1773
 *   A B            (one merge a line, in order: line i makes id 275 + i)
 *   ...
 *   crc32 1a2b3c4d (zlib CRC-32 of the merges as little-endian int32 pairs)
 *
 * The trailing crc32 line catches both edits and truncation. */
#include "lm/bpe_internal.h"
#include "tensor/tensor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define TOK_MAGIC "vcm-bpe"
#define TOK_VERSION 1
#define TOK_PRETOK "words-v1"
#define TOK_MAX_BYTES (64u << 20)

static uint32_t merges_crc(const int32_t *m, int n) {
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < 2 * n; i++) {
        uint32_t v = (uint32_t)m[i];
        unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                               (unsigned char)(v >> 24)};
        crc = crc32(crc, le, 4);
    }
    return (uint32_t)crc;
}

char *bpe_to_text(const Tokenizer *t) {
    size_t cap = 128 + 24 * (size_t)t->n_merges, n = 0;
    char *s = malloc(cap);
    if (!s) { vcm_fail(VCM_ERR, "out of memory: tokenizer text"); return NULL; }
    n += (size_t)snprintf(s + n, cap - n, "%s %d\npretokenizer %s\nvocab %d\nmerges %d\n", TOK_MAGIC, TOK_VERSION,
                          TOK_PRETOK, t->vocab, t->n_merges);
    for (int i = 0; i < t->n_merges; i++)
        n += (size_t)snprintf(s + n, cap - n, "%d %d\n", t->merges[2 * i], t->merges[2 * i + 1]);
    snprintf(s + n, cap - n, "crc32 %08x\n", merges_crc(t->merges, t->n_merges));
    return s;
}

int bpe_save(const Tokenizer *t, const char *path) {
    char *text = bpe_to_text(t);
    if (!text) return VCM_ERR;
    AtomicFile af;
    int rc = atomic_file_open(&af, path);
    if (!rc) {
        fputs(text, af.f);
        rc = atomic_file_commit(&af);
    }
    free(text);
    return rc;
}

/* A cursor over the file's lines, for messages "PATH:LINE: ...". */
typedef struct Lines {
    const char *path;
    char *buf;
    size_t len, pos;
    long line;
    char *cur;
} Lines;

/* Next line, NUL-terminated in place (the '\n' is replaced). NULL at end of file or
 * when the last line has no newline (a truncated file). */
static char *next_line(Lines *L) {
    if (L->pos >= L->len) return NULL;
    char *s = L->buf + L->pos;
    char *nl = memchr(s, '\n', L->len - L->pos);
    L->line++;
    if (!nl) return NULL;
    *nl = 0;
    L->pos = (size_t)(nl - L->buf) + 1;
    if (strlen(s) != (size_t)(nl - s)) return NULL;   /* a NUL inside: not our file */
    return L->cur = s;
}

static int bad_line(Lines *L, const char *want) {
    return vcm_fail(VCM_EINPUT, "%s:%ld: %s", L->path, L->line, want);
}

/* Parse "KEY N" with N a decimal int in [lo, hi]. */
static int keyed_int(Lines *L, const char *key, long lo, long hi, long *out) {
    char *s = next_line(L);
    char want[128];
    snprintf(want, sizeof want, "expected \"%s N\" (file truncated or not a .tok file?)", key);
    if (!s) return bad_line(L, want);
    size_t k = strlen(key);
    if (strncmp(s, key, k) || s[k] != ' ') return bad_line(L, want);
    char *end;
    errno = 0;
    long v = strtol(s + k + 1, &end, 10);
    if (errno || end == s + k + 1 || *end || v < lo || v > hi) {
        snprintf(want, sizeof want, "\"%s\" wants an integer in %ld..%ld", key, lo, hi);
        return bad_line(L, want);
    }
    *out = v;
    return VCM_OK;
}

static int parse(Lines *L, Tokenizer *t) {
    char *s = next_line(L);
    char magic[32];
    if (!s || strncmp(s, TOK_MAGIC " ", sizeof TOK_MAGIC))
        return bad_line(L, "not a vcm tokenizer file (expected \"" TOK_MAGIC " 1\" on the first line)");
    long version = strtol(s + sizeof TOK_MAGIC, NULL, 10);
    if (version != TOK_VERSION) {
        snprintf(magic, sizeof magic, "%ld", version);
        return vcm_fail(VCM_EINPUT, "%s:1: tokenizer format version %s, this vcm reads version %d",
                        L->path, magic, TOK_VERSION);
    }
    s = next_line(L);
    if (!s || strcmp(s, "pretokenizer " TOK_PRETOK))
        return bad_line(L, "expected \"pretokenizer " TOK_PRETOK "\" (made by another pre-tokeniser?)");
    long vocab, n;
    if (keyed_int(L, "vocab", BPE_N_BASE, 1L << 24, &vocab)) return VCM_EINPUT;
    if (keyed_int(L, "merges", 0, (1L << 24) - BPE_N_BASE, &n)) return VCM_EINPUT;
    if (vocab != BPE_N_BASE + n)
        return bad_line(L, "vocab and merges disagree (vocab must be 275 + merges)");
    /* A merge line is at least "19 19\n": the count is bounded by what the text holds
     * before memory is taken for it (a header line alone could ask for 128 MiB). */
    if ((size_t)n > (L->len - L->pos) / 6)
        return bad_line(L, "more merges than the rest of the file can hold (truncated or damaged)");
    t->merges = malloc(((size_t)n + 1) * 2 * sizeof *t->merges);
    if (!t->merges) return vcm_fail(VCM_ERR, "%s: out of memory for %ld merges", L->path, n);
    for (long i = 0; i < n; i++) {
        s = next_line(L);
        if (!s) return bad_line(L, "file ends inside the merges (truncated)");
        char *end, *end2;
        errno = 0;
        long a = strtol(s, &end, 10);
        long b = (end != s && *end == ' ') ? strtol(end + 1, &end2, 10) : (end2 = end, -1);
        if (errno || end == s || *end != ' ' || end2 == end + 1 || *end2 || a < BPE_BYTE0 ||
            b < BPE_BYTE0 || a >= BPE_N_BASE + i || b >= BPE_N_BASE + i)
            return bad_line(L, "expected a merge \"A B\": two ids of tokens defined above, not specials");
        t->merges[2 * i] = (int32_t)a;
        t->merges[2 * i + 1] = (int32_t)b;
    }
    t->n_merges = (int)n;
    s = next_line(L);
    unsigned crc;
    char tail;
    if (!s || sscanf(s, "crc32 %8x%c", &crc, &tail) != 1)
        return bad_line(L, "expected the closing \"crc32 XXXXXXXX\" line (file truncated?)");
    if (crc != merges_crc(t->merges, t->n_merges))
        return bad_line(L, "crc32 does not match the merges (the file was changed or damaged)");
    if (L->pos != L->len) {
        L->line++;
        return bad_line(L, "unexpected data after the crc32 line");
    }
    char what[4200];
    snprintf(what, sizeof what, "%s", L->path);
    return bpe_build_tables(t, what);
}

int bpe_from_text(const char *text, size_t len, const char *what, Tokenizer *t) {
    memset(t, 0, sizeof *t);
    char *buf = malloc(len + 1);
    if (!buf) return vcm_fail(VCM_ERR, "%s: out of memory", what);
    memcpy(buf, text, len);
    buf[len] = 0;
    Lines L = {what, buf, len, 0, 0, NULL};
    int rc = parse(&L, t);
    free(buf);
    if (rc) bpe_free(t);
    return rc;
}

int bpe_load(const char *path, Tokenizer *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) return vcm_fail(VCM_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    Lines L = {path, NULL, 0, 0, 0, NULL};
    size_t cap = 0;
    int rc = VCM_OK;
    for (;;) {
        if (L.len == cap) {
            if (cap >= TOK_MAX_BYTES) { rc = vcm_fail(VCM_EINPUT, "%s: larger than 64 MiB: not a tokenizer", path); break; }
            cap = cap ? cap * 2 : 1 << 16;
            char *nb = realloc(L.buf, cap);
            if (!nb) { rc = vcm_fail(VCM_ERR, "%s: out of memory", path); break; }
            L.buf = nb;
        }
        size_t got = fread(L.buf + L.len, 1, cap - L.len, f);
        L.len += got;
        if (got == 0) {
            if (ferror(f)) rc = vcm_fail(VCM_EINPUT, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!rc) rc = parse(&L, t);
    free(L.buf);
    if (rc) bpe_free(t);
    return rc;
}
