/* Byte-level BPE: pre-tokenisation, specials, round trip on arbitrary bytes, training
 * determinism, the .tok file and its failure modes. */
#include "lm/lm.h"
#include "tensor/tensor.h"
#include "tests/test.h"

#include <stdint.h>
#include <unistd.h>

static const char *const WORDS[] = {
    "the", "a", "is", "on", "of", "what", "why", "could", "be", "used", "for", "person",
    "standing", "next", "to", "car", "dog", "is", "waiting", "bus", "because", "they",
    "are", "holding", "umbrella", "it's", "raining", "?", ".", ",", "question:", "answer:",
    "rationale:", "water", "boat", "apple", "inside", "closer", "which", "there", "3", "42"};
#define N_WORDS (int)(sizeof WORDS / sizeof WORDS[0])
static const char *const SYLL[] = {"ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze",
                                   "ban", "cor", "dil", "fen", "gos", "hut", "jin", "mar"};
#define N_SYLL (unsigned)(sizeof SYLL / sizeof SYLL[0])

/* A deterministic corpus-like text of about `bytes` bytes. */
static char *make_text(size_t bytes, unsigned long long seed, size_t *len) {
    char *s = malloc(bytes + 64);
    size_t n = 0;
    while (n < bytes) {
        unsigned r = (unsigned)(test_rng_next(&seed) >> 33);
        if (r % 11 == 0) n += (size_t)sprintf(s + n, "[%u]", r / 11 % 16);
        else if (r % 3 == 0) {            /* an invented word of 1-3 syllables */
            for (unsigned k = 0; k <= r / 7 % 3; k++)
                n += (size_t)sprintf(s + n, "%s", SYLL[(r >> (4 * k + 8)) % N_SYLL]);
        } else n += (size_t)sprintf(s + n, "%s", WORDS[r / 11 % N_WORDS]);
        s[n++] = (r % 37 == 0) ? '\n' : ' ';
    }
    *len = n;
    return s;
}

static Tokenizer *trained(void) {
    static Tokenizer t;
    static int done;
    if (!done) {
        size_t len;
        char *text = make_text(200000, 7, &len);
        if (bpe_train(text, len, 600, &t)) fprintf(stderr, "train: %s\n", vcm_error());
        free(text);
        done = 1;
    }
    return &t;
}

static void test_pieces(void) {
    /* expected split of a sentence: a leading space joins the word after it */
    const char *s = "what is [4] doing?  it's  [12]!x [16] [3 <bos>\n\nok";
    const char *want[] = {"what", " is", " ", "[4]", " doing", "?", " ", " it", "'s", "  ",
                          "[12]", "!", "x", " [", "16", "]", " [", "3", " <", "bos", ">", "\n\n", "ok"};
    size_t pos = 0, len = strlen(s);
    int i = 0, ok = 1;
    while (pos < len) {
        int k;
        size_t p = bpe_piece(s + pos, len - pos, &k);
        if (i >= (int)(sizeof want / sizeof *want) || strlen(want[i]) != p || memcmp(want[i], s + pos, p)) {
            fprintf(stderr, "  piece %d: got \"%.*s\", want \"%s\"\n", i, (int)p, s + pos,
                    i < (int)(sizeof want / sizeof *want) ? want[i] : "(end)");
            ok = 0;
            break;
        }
        if (!strcmp(want[i], "[4]")) CHECK(k == 4);
        else if (!strcmp(want[i], "[12]")) CHECK(k == 12);
        else CHECK(k == -1);
        pos += p;
        i++;
    }
    CHECK(ok);
    CHECK(i == (int)(sizeof want / sizeof *want));
    /* pieces are cut at 64 bytes */
    char longw[200];
    memset(longw, 'a', sizeof longw);
    int k;
    CHECK(bpe_piece(longw, sizeof longw, &k) == 64);
    /* a punctuation run stops before a mention wherever the mention starts, also next
     * to the 64-byte cut (the scan of a run stops a few bytes past it) */
    for (int at = 55; at <= 75; at++) {
        char p[120];
        memset(p, '!', sizeof p);
        memcpy(p + at, "[12]", 4);
        CHECK(bpe_piece(p, sizeof p, &k) == (size_t)(at < 64 ? at : 64));
        CHECK(bpe_piece(p + at, sizeof p - (size_t)at, &k) == 4 && k == 12);
    }
    /* a space run gives its last space to the word after it, also past the cut */
    for (int n = 60; n <= 70; n++) {
        char p[100];
        memset(p, ' ', (size_t)n);
        memcpy(p + n, "word", 4);
        size_t want = (size_t)(n - 1 < 64 ? n - 1 : 64);
        CHECK(bpe_piece(p, (size_t)n + 4, &k) == want);
    }
}

/* Pre-tokenisation is linear in the length of a word: 4 MB of one letter (the audit's
 * 1 MB word took 12.7 s) encodes in well under a second. */
static void test_long_word_is_linear(void) {
    Tokenizer *t = trained();
    size_t n = (size_t)4 << 20;
    char *w = malloc(n);
    int32_t *ids = malloc(sizeof(int32_t) * n);
    if (!w || !ids) { CHECK(0); free(w); free(ids); return; }
    memset(w, 'q', n);
    long got = bpe_encode(t, w, n, ids, n);
    CHECK(got > 0 && (size_t)got <= n);
    free(w);
    free(ids);
}

static void test_specials(void) {
    Tokenizer *t = trained();
    CHECK(t->vocab == 600);
    int32_t ids[64];
    long n = bpe_encode(t, "[0]", 3, ids, 64);
    CHECK(n == 1 && ids[0] == BPE_REGION0);
    n = bpe_encode(t, "[15]", 4, ids, 64);
    CHECK(n == 1 && ids[0] == BPE_REGION0 + 15);
    n = bpe_encode(t, "x[7]y", 5, ids, 64);
    CHECK(n == 3 && ids[1] == BPE_REGION0 + 7);
    /* not mentions: no id in the special range */
    const char *plain[] = {"[16]", "[3", "[01]", "<bos>", "<pad><eos>", "[-1]", "[ 1]"};
    for (int i = 0; i < 7; i++) {
        n = bpe_encode(t, plain[i], strlen(plain[i]), ids, 64);
        CHECK(n > 0);
        for (long j = 0; j < n; j++) CHECK_MSG(ids[j] >= BPE_BYTE0, "%s -> id %d", plain[i], ids[j]);
    }
    /* specials decode to their names; skip_special drops pad/bos/eos only */
    int32_t sp[] = {BPE_BOS, BPE_REGION0 + 2, BPE_BYTE0 + 'x', BPE_EOS, BPE_PAD};
    char out[64];
    long m = bpe_decode(t, sp, 5, out, sizeof out, 0);
    CHECK(m == 19 && !memcmp(out, "<bos>[2]x<eos><pad>", 19));
    m = bpe_decode(t, sp, 5, out, sizeof out, 1);
    CHECK(m == 4 && !memcmp(out, "[2]x", 4));
    /* out of range */
    int32_t bad[] = {BPE_BYTE0, t->vocab};
    CHECK(bpe_decode(t, bad, 2, out, sizeof out, 0) == -1);
    CHECK_STR_CONTAINS(vcm_error(), "outside the vocabulary");
    /* a too small output buffer: the needed length is returned, a prefix written */
    m = bpe_decode(t, sp, 5, out, 3, 0);
    CHECK(m == 19 && !memcmp(out, "<bo", 3));
}

static void test_round_trip_random(void) {
    Tokenizer *t = trained();
    unsigned long long seed = 12345;
    const char alphabet[] = "[]0123456789 <>bosea'\n\t?.,";
    int failures = 0;
    for (int iter = 0; iter < 3000; iter++) {
        size_t len = (size_t)(test_rng_next(&seed) % 300);
        char s[300];
        int mode = (int)(test_rng_next(&seed) % 3);
        for (size_t i = 0; i < len; i++) {
            uint64_t r = test_rng_next(&seed);
            if (mode == 0) s[i] = (char)(r >> 56);                         /* any byte, NULs too */
            else if (mode == 1) s[i] = alphabet[(r >> 40) % (sizeof alphabet - 1)];
            else s[i] = (r >> 56) & 0x80 ? (char)(r >> 48) : "what is [1] the bus "[(r >> 40) % 20];
        }
        int32_t ids[300];
        long n = bpe_encode(t, s, len, ids, len);     /* cap = len must be enough */
        char back[4 * 300 + 8];
        long m = n < 0 ? -1 : bpe_decode(t, ids, (size_t)n, back, sizeof back, 0);
        if (n < 0 || m != (long)len || memcmp(back, s, len)) {
            if (failures++ < 3) fprintf(stderr, "  round trip failed at iteration %d (len %zu)\n", iter, len);
        }
        for (long j = 0; j < n; j++) if (ids[j] < BPE_REGION0 || ids[j] >= t->vocab) failures++;
    }
    CHECK(failures == 0);
    /* every learned token decodes to its bytes and encodes back to itself */
    int bad = 0;
    for (int id = BPE_N_BASE; id < t->vocab; id++) {
        size_t l;
        const char *b = bpe_token_text(t, id, &l);
        int32_t ids[64];
        long n = bpe_encode(t, b, l, ids, 64);
        int32_t piece_ok = n == 1 && ids[0] == id;
        int k;
        if (bpe_piece(b, l, &k) == l && !piece_ok) bad++;
    }
    CHECK(bad == 0);
}

/* Encoding against the textbook rule, with merges looked up by linear search. */
static void test_encode_matches_naive(void) {
    Tokenizer *t = trained();
    unsigned long long seed = 4242;
    int bad = 0;
    for (int it = 0; it < 200; it++) {
        size_t len;
        char *text = make_text(200 + it, seed + (unsigned long long)it, &len);
        if (it % 3 == 0) for (size_t i = 0; i < len; i += 7) text[i] = (char)(test_rng_next(&seed) >> 56);
        int32_t *got = malloc(len * sizeof *got), *want = malloc(len * sizeof *want);
        long n = bpe_encode(t, text, len, got, len);
        size_t m = 0, pos = 0;
        while (pos < len) {
            int k;
            size_t p = bpe_piece(text + pos, len - pos, &k);
            if (k >= 0) { want[m++] = BPE_REGION0 + k; pos += p; continue; }
            int32_t sym[64];
            size_t ns = p;
            for (size_t i = 0; i < p; i++) sym[i] = BPE_BYTE0 + (uint8_t)text[pos + i];
            for (;;) {
                int best = -1;
                for (size_t i = 0; i + 1 < ns; i++)
                    for (int r = 0; r < t->n_merges && (best < 0 || r < best); r++)
                        if (t->merges[2 * r] == sym[i] && t->merges[2 * r + 1] == sym[i + 1]) { best = r; break; }
                if (best < 0) break;
                size_t w = 0;
                for (size_t i = 0; i < ns; i++) {
                    if (i + 1 < ns && sym[i] == t->merges[2 * best] && sym[i + 1] == t->merges[2 * best + 1]) {
                        sym[w++] = BPE_N_BASE + best;
                        i++;
                    } else sym[w++] = sym[i];
                }
                ns = w;
            }
            memcpy(want + m, sym, ns * sizeof *sym);
            m += ns;
            pos += p;
        }
        if (n != (long)m || memcmp(got, want, m * sizeof *got)) bad++;
        free(got); free(want); free(text);
    }
    CHECK(bad == 0);
}

static void test_compression(void) {
    Tokenizer *t = trained();
    size_t len;
    char *text = make_text(20000, 99, &len);
    int32_t *ids = malloc(len * sizeof *ids);
    long n = bpe_encode(t, text, len, ids, len);
    CHECK(n > 0 && (double)n < 0.4 * (double)len);   /* words of the corpus became tokens */
    /* a sentence made of corpus words: one token per word (plus the mention's space) */
    const char *q = "what could [1] be used for ?";
    n = bpe_encode(t, q, strlen(q), ids, len);
    CHECK_MSG(n <= 9, "%ld tokens", n);
    CHECK(bpe_encode(t, text, len, ids, 3) == -1);
    free(ids);
    free(text);
}

static void test_train_deterministic(void) {
    size_t len;
    char *text = make_text(100000, 3, &len);
    Tokenizer a, b;
    CHECK(bpe_train(text, len, 500, &a) == 0);
    CHECK(bpe_train(text, len, 500, &b) == 0);
    CHECK(a.n_merges == b.n_merges && a.n_merges == 500 - BPE_N_BASE);
    CHECK(!memcmp(a.merges, b.merges, (size_t)a.n_merges * 2 * sizeof(int32_t)));
    /* merges are learned most-frequent first: the first one is a frequent pair */
    size_t l;
    const char *first = bpe_token_text(&a, BPE_N_BASE, &l);
    CHECK(l == 2);
    (void)first;
    /* a vocab larger than the text supports stops early */
    Tokenizer c;
    CHECK(bpe_train("ab ab ab cd", 11, 5000, &c) == 0);
    CHECK(c.vocab < 5000 && c.vocab > BPE_N_BASE);
    bpe_free(&c);
    CHECK(bpe_train("x", 1, 100, &c) == VCM_EINPUT);
    CHECK(bpe_train("", 0, 300, &c) == 0 && c.vocab == BPE_N_BASE);
    bpe_free(&c);
    bpe_free(&a);
    bpe_free(&b);
    free(text);
}

/* The naive trainer, for reference: recount every pair of every piece before each
 * merge. The real trainer updates counts incrementally and must agree exactly. */
static void test_train_matches_naive(void) {
    size_t len;
    char *text = make_text(6000, 11, &len);
    int vocab = 420;
    Tokenizer t;
    CHECK(bpe_train(text, len, vocab, &t) == 0);
    /* pieces as symbol arrays */
    int32_t *sym = malloc(len * sizeof *sym);
    size_t *start = malloc((len + 1) * sizeof *start), *plen = malloc((len + 1) * sizeof *plen);
    size_t n_pieces = 0, pos = 0, n_sym = 0;
    while (pos < len) {
        int k;
        size_t p = bpe_piece(text + pos, len - pos, &k);
        if (k < 0) {
            start[n_pieces] = n_sym;
            plen[n_pieces++] = p;
            for (size_t i = 0; i < p; i++) sym[n_sym++] = BPE_BYTE0 + (uint8_t)text[pos + i];
        }
        pos += p;
    }
    int mismatches = 0, m;
    static long cnt[1024][1024];   /* ids stay below vocab <= 1024 here */
    for (m = 0; m < vocab - BPE_N_BASE; m++) {
        memset(cnt, 0, sizeof cnt);
        for (size_t w = 0; w < n_pieces; w++)
            for (size_t i = 0; i + 1 < plen[w]; i++) cnt[sym[start[w] + i]][sym[start[w] + i + 1]]++;
        long best = 1;
        int ba = -1, bb = -1;
        for (int a = 0; a < 1024; a++)
            for (int b = 0; b < 1024; b++)
                if (cnt[a][b] > best) { best = cnt[a][b]; ba = a; bb = b; }
        if (ba < 0) break;
        if (m >= t.n_merges || t.merges[2 * m] != ba || t.merges[2 * m + 1] != bb) {
            if (mismatches++ < 3) fprintf(stderr, "  merge %d: naive (%d %d) x%ld\n", m, ba, bb, best);
        }
        for (size_t w = 0; w < n_pieces; w++) {
            int32_t *s = sym + start[w];
            size_t o = 0;
            for (size_t i = 0; i < plen[w]; i++) {
                if (i + 1 < plen[w] && s[i] == ba && s[i + 1] == bb) { s[o++] = BPE_N_BASE + m; i++; }
                else s[o++] = s[i];
            }
            plen[w] = o;
        }
    }
    CHECK(mismatches == 0);
    CHECK(m == t.n_merges);
    free(sym); free(start); free(plen);
    bpe_free(&t);
    free(text);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(1 << 20);
    *n = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static void spit(const char *path, const char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static void test_file(void) {
    Tokenizer *t = trained();
    char path[64], bad[64];
    snprintf(path, sizeof path, "/tmp/vcm_test_bpe_%d.tok", (int)getpid());
    snprintf(bad, sizeof bad, "/tmp/vcm_test_bpe_%d_bad.tok", (int)getpid());
    CHECK(bpe_save(t, path) == 0);
    Tokenizer u;
    CHECK(bpe_load(path, &u) == 0);
    CHECK(u.vocab == t->vocab && !memcmp(u.merges, t->merges, (size_t)t->n_merges * 8));
    CHECK(!memcmp(u.tok_bytes, t->tok_bytes, t->tok_off[t->vocab]));
    bpe_free(&u);

    size_t n;
    char *b = slurp(path, &n);
    CHECK(b && n > 100);
    /* truncated at several places */
    size_t cuts[] = {0, 5, 30, n / 2, n - 3, n - 1};
    for (int i = 0; i < 6; i++) {
        spit(bad, b, cuts[i]);
        CHECK_MSG(bpe_load(bad, &u) == VCM_EINPUT, "cut at %zu", cuts[i]);
        CHECK_STR_CONTAINS(vcm_error(), bad);
    }
    spit(bad, b, n / 2);
    bpe_load(bad, &u);
    CHECK_STR_CONTAINS(vcm_error(), "truncated");
    /* a changed digit in a merge: crc mismatch (or an id error) */
    char *c = malloc(n);
    memcpy(c, b, n);
    char *line = strstr(c, "merges ");
    line = strchr(line, '\n') + 1;
    line = strchr(line, '\n') + 1;          /* second merge line */
    CHECK(line[0] >= '1' && line[0] <= '9');
    line[0] = line[0] == '2' ? '3' : '2';
    spit(bad, c, n);
    CHECK(bpe_load(bad, &u) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), ":");
    /* wrong magic, wrong version */
    spit(bad, "hello\n", 6);
    CHECK(bpe_load(bad, &u) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "not a vcm tokenizer file");
    memcpy(c, b, n);
    c[8] = '7';                             /* "vcm-bpe 7" */
    spit(bad, c, n);
    CHECK(bpe_load(bad, &u) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "version 7");
    /* a merge that doubles itself forever is refused, not allocated */
    const char *boom = "vcm-bpe 1\npretokenizer words-v1\nvocab 277\nmerges 2\n97 97\n275 275\ncrc32 00000000\n";
    spit(bad, boom, strlen(boom));
    CHECK(bpe_load(bad, &u) == VCM_EINPUT);
    /* a header asking for 16 M merges in a file of a few lines is refused before the
     * merges' memory (128 MiB) is taken */
    const char *big = "vcm-bpe 1\npretokenizer words-v1\nvocab 16777216\nmerges 16776941\n97 97\ncrc32 00000000\n";
    spit(bad, big, strlen(big));
    CHECK(bpe_load(bad, &u) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "more merges than the rest of the file can hold");
    /* missing file */
    CHECK(bpe_load("/nonexistent/x.tok", &u) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "/nonexistent/x.tok: cannot open");
    /* saving the same tokenizer twice gives the same bytes */
    CHECK(bpe_save(t, bad) == 0);
    size_t n2;
    char *b2 = slurp(bad, &n2);
    CHECK(n2 == n && !memcmp(b, b2, n));
    free(b2);
    free(c);
    free(b);
    unlink(path);
    unlink(bad);
}

/* Random damage to a .tok file: loading fails cleanly or (if the damage happens to
 * keep it valid) gives a usable tokenizer; never a crash (run under ASan). */
static void test_file_fuzz(void) {
    Tokenizer t;
    size_t len;
    char *text = make_text(20000, 5, &len);
    CHECK(bpe_train(text, len, 320, &t) == 0);
    free(text);
    char path[64];
    snprintf(path, sizeof path, "/tmp/vcm_test_bpe_fuzz_%d.tok", (int)getpid());
    CHECK(bpe_save(&t, path) == 0);
    size_t n;
    char *b = slurp(path, &n);
    char *c = malloc(n + 16);
    unsigned long long seed = 77;
    int loaded = 0, failed = 0;
    for (int it = 0; it < 300; it++) {
        memcpy(c, b, n);
        size_t m = n;
        int kind = (int)(test_rng_next(&seed) % 3);
        size_t at = (size_t)(test_rng_next(&seed) % n);
        if (kind == 0) c[at] = (char)(test_rng_next(&seed) >> 56);          /* flip a byte */
        else if (kind == 1) m = at;                                          /* truncate */
        else { memmove(c + at + 1, c + at, n - at); c[at] = "0 \n9-"[it % 5]; m = n + 1; }  /* insert */
        spit(path, c, m);
        Tokenizer u;
        int rc = bpe_load(path, &u);
        if (rc == 0) {
            int32_t ids[16];
            long k = bpe_encode(&u, "hello [1] world", 15, ids, 15);
            char back[64];
            CHECK(k > 0 && bpe_decode(&u, ids, (size_t)k, back, sizeof back, 0) == 15 && !memcmp(back, "hello [1] world", 15));
            bpe_free(&u);
            loaded++;
        } else {
            CHECK(rc == VCM_EINPUT);
            CHECK_STR_CONTAINS(vcm_error(), path);
            failed++;
        }
    }
    CHECK(failed > 250);   /* the crc catches nearly everything */
    (void)loaded;
    free(b);
    free(c);
    unlink(path);
    bpe_free(&t);
}

int main(void) {
    RUN(test_pieces);
    RUN(test_specials);
    RUN(test_round_trip_random);
    RUN(test_encode_matches_naive);
    RUN(test_compression);
    RUN(test_train_deterministic);
    RUN(test_train_matches_naive);
    RUN(test_file);
    RUN(test_file_fuzz);
    RUN(test_long_word_is_linear);
    bpe_free(trained());
    return test_summary();
}
