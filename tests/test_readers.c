/* Readers: JSONL lines (plain/gzip), the random-access index, record types and their
 * errors, the region mapping and its validation, region handling for examples.
 * Fixtures: tests/data/ (LSKD-format records over skimage's photographs). */
#include "data/data.h"
#include "tensor/tensor.h"
#include "tests/test.h"

#include <stdint.h>
#include <unistd.h>
#include <zlib.h>

#define DATA "tests/data/"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_file(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(1); }
    fwrite(s, 1, n, f);
    fclose(f);
}

/* gzip with zlib; level varies so the deflate blocks differ. */
static void write_gz(const char *path, const char *s, size_t n, const char *mode) {
    gzFile g = gzopen(path, mode);
    if (!g) { perror(path); exit(1); }
    size_t done = 0;
    while (done < n) { /* gzwrite takes unsigned */
        unsigned k = n - done > (1u << 20) ? (1u << 20) : (unsigned)(n - done);
        gzwrite(g, s + done, k);
        done += k;
    }
    gzclose(g);
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

/* A generated corpus of n records in the LSKD format, with blank lines, a CRLF and
 * a long line mixed in. */
static char *gen_corpus(int n, size_t *len) {
    size_t cap = (size_t)n * 400 + (1u << 20), at = 0;
    char *s = malloc(cap);
    unsigned long long rng = 42;
    for (int i = 0; i < n; i++) {
        int a = (int)(test_rng_next(&rng) % 4), b = (int)(test_rng_next(&rng) % 4);
        at += (size_t)snprintf(s + at, cap - at,
                               "{\"image\": \"coffee.png\", \"index\": \"gen-%d\", \"region\": [%d, %d], "
                               "\"question\": [\"Is\", [%d], \"near\", [%d, %d], \"?\"], \"answer\": [\"Yes\", \"%d\"], "
                               "\"rationale\": [\"Because\", [%d], \".\"], \"prediction\": %.3f, \"nonce\": \"%016llx%016llx%016llx\"}%s",
                               i, a, b, a, a, b, i, b, (double)(i % 1000) / 1000.0, test_rng_next(&rng),
                               test_rng_next(&rng), test_rng_next(&rng),
                               i == 7 ? "\r\n" : "\n");
        if (i % 97 == 5) s[at++] = '\n';          /* a blank line */
        if (i % 211 == 3) { memcpy(s + at, "   \n", 4); at += 4; } /* whitespace only */
        if (i == n / 2) { /* a line longer than the reader's chunk */
            at += (size_t)snprintf(s + at, cap - at, "{\"image\": \"coffee.png\", \"question\": [\"long\"], "
                                   "\"answer\": [\"x\"], \"rationale\": [\"");
            for (int k = 0; k < 300000; k++) s[at++] = (char)('a' + k % 26);
            at += (size_t)snprintf(s + at, cap - at, "\"]}\n");
        }
    }
    *len = at;
    return s;
}

typedef struct Lines { char **s; long *line; long n; } Lines;

static Lines read_sequential(const char *path) {
    Lines L = {0};
    JsonlReader r;
    if (jsonl_open(&r, path)) { fprintf(stderr, "%s\n", vcm_error()); return L; }
    long cap = 0;
    for (;;) {
        JsonlLine ln;
        if (jsonl_next(&r, &ln) || !ln.text) break;
        if (L.n == cap) {
            cap = cap ? cap * 2 : 1024;
            L.s = realloc(L.s, (size_t)cap * sizeof *L.s);
            L.line = realloc(L.line, (size_t)cap * sizeof *L.line);
        }
        L.s[L.n] = strdup(ln.text);
        L.line[L.n++] = ln.line_no;
    }
    jsonl_close(&r);
    return L;
}

static void lines_free(Lines *L) {
    for (long i = 0; i < L->n; i++) free(L->s[i]);
    free(L->s);
    free(L->line);
}

/* ---------------------------------------------------------------- lines and index */

static void test_reader_lines(void) {
    const char *txt = "\xEF\xBB\xBF{\"a\": 1}\r\n\n   \n{\"b\": 2}\n\t\n{\"c\": 3}";
    write_file(tmp_path("small.jsonl"), txt, strlen(txt));
    Lines L = read_sequential(tmp_path("small.jsonl"));
    CHECK(L.n == 3);
    if (L.n == 3) {
        CHECK(!strcmp(L.s[0], "{\"a\": 1}")); /* BOM and CR stripped */
        CHECK(L.line[0] == 1 && L.line[1] == 4 && L.line[2] == 6);
        CHECK(!strcmp(L.s[2], "{\"c\": 3}")); /* no final newline */
    }
    JsonlIndex ix;
    CHECK(jsonl_index_build(&ix, tmp_path("small.jsonl"), 0) == VCM_OK);
    CHECK(ix.n == 3 && !ix.gz);
    for (long i = 0; i < ix.n && i < L.n; i++) {
        JsonlLine ln;
        CHECK(jsonl_index_read(&ix, i, &ln) == VCM_OK);
        CHECK(!strcmp(ln.text, L.s[i]) && ln.line_no == L.line[i]);
    }
    JsonlLine ln;
    CHECK(jsonl_index_read(&ix, 3, &ln) != VCM_OK);
    jsonl_index_free(&ix);
    lines_free(&L);
    CHECK(jsonl_index_build(&ix, tmp_path("does_not_exist.jsonl"), 0) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "does_not_exist.jsonl: cannot open");
}

/* Plain, gzip (small access-point span so there are many), and a two-member gzip:
 * the same lines with the same numbers, sequentially and by index in random order. */
static void test_index_random_equals_sequential(void) {
    size_t len;
    char *s = gen_corpus(6000, &len);
    write_file(tmp_path("gen.jsonl"), s, len);
    write_gz(tmp_path("gen.jsonl.gz"), s, len, "wb6");
    write_gz(tmp_path("m1.gz"), s, len / 3, "wb1");
    write_gz(tmp_path("m2.gz"), s + len / 3, len - len / 3, "wb9");
    size_t n1, n2;
    char *g1 = read_all(tmp_path("m1.gz"), &n1), *g2 = read_all(tmp_path("m2.gz"), &n2);
    char *cat = malloc(n1 + n2);
    memcpy(cat, g1, n1);
    memcpy(cat + n1, g2, n2);
    write_file(tmp_path("multi.jsonl.gz"), cat, n1 + n2);
    free(g1); free(g2); free(cat);

    Lines ref = read_sequential(tmp_path("gen.jsonl"));
    CHECK(ref.n == 6001);
    const char *files[] = {"gen.jsonl", "gen.jsonl.gz", "multi.jsonl.gz"};
    long spans[] = {0, 16384, 8192};
    for (int f = 0; f < 3; f++) {
        Lines seq = read_sequential(tmp_path(files[f]));
        CHECK_MSG(seq.n == ref.n, "%s: %ld lines", files[f], seq.n);
        for (long i = 0; i < seq.n && i < ref.n; i++)
            if (strcmp(seq.s[i], ref.s[i]) || seq.line[i] != ref.line[i]) {
                CHECK_MSG(0, "%s: sequential line %ld differs", files[f], i);
                break;
            }
        lines_free(&seq);
        JsonlIndex ix;
        CHECK(jsonl_index_build(&ix, tmp_path(files[f]), spans[f]) == VCM_OK);
        CHECK(ix.n == ref.n);
        CHECK(ix.gz == (f > 0));
        if (f > 0) CHECK_MSG(jsonl_index_points(&ix) > 10, "%ld points", jsonl_index_points(&ix));
        /* in a random permutation, then in order (the cursor path) */
        long *perm = malloc((size_t)ix.n * sizeof *perm);
        for (long i = 0; i < ix.n; i++) perm[i] = i;
        unsigned long long rng = 7 + (unsigned)f;
        for (long i = ix.n - 1; i > 0; i--) {
            long j = (long)(test_rng_next(&rng) % (unsigned long long)(i + 1));
            long t = perm[i]; perm[i] = perm[j]; perm[j] = t;
        }
        int bad = 0;
        for (int pass = 0; pass < 2 && !bad; pass++)
            for (long k = 0; k < ix.n && k < ref.n && !bad; k++) {
                long i = pass ? k : perm[k];
                JsonlLine ln;
                if (jsonl_index_read(&ix, i, &ln) || strcmp(ln.text, ref.s[i]) || ln.line_no != ref.line[i]) {
                    CHECK_MSG(0, "%s: record %ld (pass %d) differs: %s", files[f], i, pass, vcm_error());
                    bad = 1;
                }
            }
        /* an epoch order: a permutation, read through the span cache */
        CHECK(jsonl_index_shuffle(&ix, 11, 3, perm) == VCM_OK);
        CHECK(jsonl_index_cache(&ix, 3) == VCM_OK);
        char *seen = calloc((size_t)ix.n, 1);
        long moved = 0;
        for (long k = 0; k < ix.n && !bad; k++) {
            long i = perm[k];
            JsonlLine ln;
            if (i < 0 || i >= ix.n || seen[i]++) { CHECK_MSG(0, "%s: not a permutation at %ld", files[f], k); bad = 1; break; }
            moved += i != k;
            if (jsonl_index_read(&ix, i, &ln) || strcmp(ln.text, ref.s[i]) || ln.line_no != ref.line[i]) {
                CHECK_MSG(0, "%s: cached record %ld differs: %s", files[f], i, vcm_error());
                bad = 1;
            }
        }
        CHECK(moved > ix.n / 2);
        free(seen);
        free(perm);
        jsonl_index_free(&ix);
    }
    lines_free(&ref);
    free(s);
}

static void test_gzip_truncated(void) {
    size_t len;
    char *s = gen_corpus(3000, &len);
    write_gz(tmp_path("t.jsonl.gz"), s, len, "wb6");
    size_t n;
    char *g = read_all(tmp_path("t.jsonl.gz"), &n);
    write_file(tmp_path("t.jsonl.gz"), g, n / 2);
    JsonlIndex ix;
    CHECK(jsonl_index_build(&ix, tmp_path("t.jsonl.gz"), 0) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "truncated gzip file");
    free(g);
    free(s);
}

/* ---------------------------------------------------------------- records */

static int parse_str(const char *text, Record *r, int *reason) {
    JsonlLine ln = {.path = "x.jsonl", .line_no = 7, .text = text, .len = strlen(text)};
    return record_parse(&ln, REC_ANY, r, reason);
}

static void test_record_lskd_fixture(void) {
    Lines L = read_sequential(DATA "lskd_corpus.jsonl");
    CHECK(L.n == 8);
    Record r;
    JsonlLine ln = {.path = DATA "lskd_corpus.jsonl", .line_no = L.line[1], .text = L.s[1], .len = strlen(L.s[1])};
    int reason;
    CHECK(record_parse(&ln, REC_CORPUS, &r, &reason) == VCM_OK);
    CHECK(r.kind == REC_CORPUS && r.line == 2);
    CHECK(!strcmp(r.image, "astronaut.png") && !strcmp(r.split, "train"));
    CHECK(!strcmp(r.index, "chatgpt_region_any_v4_people-18"));
    CHECK(r.n_region == 2 && r.region[0] == 0 && r.region[1] == 1);
    CHECK(r.n_region_all == 5 && r.region_all[4] == 4);
    CHECK(r.question.n == 8 && !strcmp(r.question.w[0].text, "Why"));
    CHECK(!r.question.w[2].text && r.question.w[2].n_ids == 2 && r.question.w[2].ids[1] == 1);
    CHECK(r.has_prediction && fabs(r.prediction - 0.91) < 1e-12);
    CHECK(!r.has_synth);
    record_free(&r);
    /* synth.fault null and a string */
    ln.text = L.s[4]; ln.len = strlen(L.s[4]); ln.line_no = L.line[4];
    CHECK(record_parse(&ln, REC_ANY, &r, NULL) == VCM_OK);
    CHECK(r.has_synth && r.fault == NULL && !r.has_prediction);
    record_free(&r);
    ln.text = L.s[5]; ln.len = strlen(L.s[5]);
    CHECK(record_parse(&ln, REC_ANY, &r, NULL) == VCM_OK);
    CHECK(r.has_synth && r.fault && !strcmp(r.fault, "generic_filler"));
    CHECK(r.question.w[2].n_ids == 3);
    record_free(&r);
    lines_free(&L);

    L = read_sequential(DATA "lskd_annotations.jsonl");
    ln = (JsonlLine){.path = "a", .line_no = 1, .text = L.s[0], .len = strlen(L.s[0])};
    CHECK(record_parse(&ln, REC_ANNOTATION, &r, NULL) == VCM_OK);
    CHECK(r.kind == REC_ANNOTATION && r.n_votes == 3 && r.n_accept == 2);
    record_free(&r);
    lines_free(&L);

    L = read_sequential(DATA "lskd_mc.jsonl");
    ln = (JsonlLine){.path = "m", .line_no = 2, .text = L.s[1], .len = strlen(L.s[1])};
    CHECK(record_parse(&ln, REC_MC, &r, NULL) == VCM_OK);
    CHECK(r.kind == REC_MC && r.n_choices == 3 && r.label == 1 && r.distractor_other_region == 0);
    CHECK(r.choices[1].n == 7 && r.choices[1].w[5].n_ids == 1 && r.choices[1].w[5].ids[0] == 0);
    record_free(&r);
    /* a corpus record is not a multiple-choice item */
    Lines C = read_sequential(DATA "lskd_corpus.jsonl");
    ln = (JsonlLine){.path = "m", .line_no = 1, .text = C.s[0], .len = strlen(C.s[0])};
    int why;
    CHECK(record_parse(&ln, REC_MC, &r, &why) == VCM_EINPUT && why == BAD_MISSING_FIELD);
    CHECK_STR_CONTAINS(vcm_error(), "m:1: expected a multiple-choice item");
    lines_free(&C);
    lines_free(&L);
}

/* Every bad-record case: its reason and its exact message. */
static void test_record_errors(void) {
    static const struct { const char *text; int reason; const char *msg; } cases[] = {
        {"{\"image\": \"a.png\", \"question\": [\"Is\", [1] \"x\"], \"answer\": [\"y\"], \"rationale\": []}",
         BAD_JSON_SYNTAX, "x.jsonl:7:45: ']' expected near '\"x\"'"},
        /* the column counts characters, not bytes (é is two bytes) */
        {"{\"image\": \"\xC3\xA9.png\", \"question\": [\"Is\", [1] \"x\"], \"answer\": [\"y\"], \"rationale\": []}",
         BAD_JSON_SYNTAX, "x.jsonl:7:45: ']' expected near '\"x\"'"},
        {"{\"image\": \"a.png\", \"question\": [\"Is\"", BAD_JSON_SYNTAX, "x.jsonl:7:36: ']' expected near end of file"},
        {"[1, 2]", BAD_NOT_OBJECT, "x.jsonl:7: expected a JSON object, got a list"},
        {"{\"question\": [\"q\"], \"answer\": [\"a\"], \"rationale\": []}", BAD_MISSING_FIELD,
         "x.jsonl:7: missing field \"image\""},
        {"{\"image\": 3, \"question\": [\"q\"], \"answer\": [\"a\"], \"rationale\": []}", BAD_WRONG_TYPE,
         "x.jsonl:7: field \"image\": expected a string, got an integer"},
        {"{\"image\": \"a.png\", \"question\": \"Is it?\", \"answer\": [\"a\"], \"rationale\": []}", BAD_WRONG_TYPE,
         "x.jsonl:7: field \"question\": expected a list of words, got a string"},
        {"{\"image\": \"a.png\", \"question\": [\"Is\", [1.5]], \"answer\": [\"a\"], \"rationale\": []}",
         BAD_WRONG_TYPE, "x.jsonl:7: field \"question[1][0]\": a region id must be an integer, got a number"},
        {"{\"image\": \"a.png\", \"question\": [\"Is\", [0, \"1\"]], \"answer\": [\"a\"], \"rationale\": []}",
         BAD_WRONG_TYPE, "x.jsonl:7: field \"question[1][1]\": a region id must be an integer, got a string"},
        {"{\"image\": \"a.png\", \"question\": [\"Is\", 3], \"answer\": [\"a\"], \"rationale\": []}", BAD_WRONG_TYPE,
         "x.jsonl:7: field \"question[1]\": a word must be a string or a list of region ids, got an integer"},
        {"{\"image\": \"a.png\", \"question\": [\"Is\", []], \"answer\": [\"a\"], \"rationale\": []}", BAD_VALUE,
         "x.jsonl:7: field \"question[1]\": empty region mention []"},
        {"{\"image\": \"a.png\", \"question\": [[-2]], \"answer\": [\"a\"], \"rationale\": []}", BAD_VALUE,
         "x.jsonl:7: field \"question[0][0]\": region id -2 is negative or too large"},
        {"{\"image\": \"a.png\", \"question\": [], \"answer\": [\"a\"], \"rationale\": []}", BAD_EMPTY_QUESTION,
         "x.jsonl:7: field \"question\": empty (no words)"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"answer\": [], \"rationale\": []}", BAD_EMPTY_TEXT,
         "x.jsonl:7: field \"answer\": empty (no words)"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"answer\": [\"a\"]}", BAD_MISSING_FIELD,
         "x.jsonl:7: missing field \"rationale\""},
        {"{\"image\": \"a.png\", \"region\": 3, \"question\": [\"q\"], \"answer\": [\"a\"], \"rationale\": []}",
         BAD_WRONG_TYPE, "x.jsonl:7: field \"region\": expected a list of region ids, got an integer"},
        {"{\"image\": \"a.png\", \"region_all\": [0, null], \"question\": [\"q\"], \"answer\": [\"a\"], \"rationale\": []}",
         BAD_WRONG_TYPE, "x.jsonl:7: field \"region_all[1]\": a region id must be an integer, got null"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"answer\": [\"a\"], \"rationale\": [], \"prediction\": \"high\"}",
         BAD_WRONG_TYPE, "x.jsonl:7: field \"prediction\": expected a number, got a string"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"answer\": [\"a\"], \"rationale\": [], \"synth\": {\"fault\": 1}}",
         BAD_WRONG_TYPE, "x.jsonl:7: field \"synth.fault\": expected null or a string, got an integer"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"answer\": [\"a\"], \"rationale\": [], \"votes\": [\"yes\"]}",
         BAD_VALUE, "x.jsonl:7: field \"votes[0]\": expected \"accept\" or \"reject\", got \"yes\""},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"choices\": [[\"a\"], [\"b\"]], \"label\": 2}", BAD_VALUE,
         "x.jsonl:7: field \"label\": 2 is out of range for 2 choices"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"choices\": [[\"a\"], [\"b\"]], \"label\": \"0\"}",
         BAD_WRONG_TYPE, "x.jsonl:7: field \"label\": expected an integer, got a string"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"choices\": [[\"a\"], []], \"label\": 0}", BAD_EMPTY_TEXT,
         "x.jsonl:7: field \"choices[1]\": empty (no words)"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"choices\": [[\"a\"]], \"label\": 0}", BAD_VALUE,
         "x.jsonl:7: field \"choices\": 1 choice(s), need at least 2"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"choices\": [[\"a\"], \"b\"], \"label\": 0}", BAD_WRONG_TYPE,
         "x.jsonl:7: field \"choices[1]\": expected a list of words, got a string"},
        {"{\"image\": \"a.png\", \"question\": [\"q\"], \"choices\": [[\"a\"], [\"b\"]], \"label\": 0, "
         "\"distractor_other_region\": 1}",
         BAD_WRONG_TYPE, "x.jsonl:7: field \"distractor_other_region\": expected true/false, got an integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Record r;
        int reason = -1;
        int rc = parse_str(cases[i].text, &r, &reason);
        CHECK_MSG(rc == VCM_EINPUT, "case %zu: rc %d", i, rc);
        CHECK_MSG(reason == cases[i].reason, "case %zu: reason %s, wanted %s", i, bad_reason_name(reason),
                  bad_reason_name(cases[i].reason));
        CHECK_MSG(!strncmp(vcm_error(), cases[i].msg, strlen(cases[i].msg)), "case %zu: \"%s\" vs \"%s\"", i,
                  vcm_error(), cases[i].msg);
        if (rc == VCM_OK) record_free(&r);
    }
}

/* gzip and plain give identical parsed records. */
static void test_gzip_plain_same_records(void) {
    size_t n;
    char *s = read_all(DATA "lskd_corpus.jsonl", &n);
    write_gz(tmp_path("lskd.jsonl.gz"), s, n, "wb9");
    free(s);
    Lines a = read_sequential(DATA "lskd_corpus.jsonl"), b = read_sequential(tmp_path("lskd.jsonl.gz"));
    CHECK(a.n == 8 && a.n == b.n);
    RegionMap m;
    CHECK(regionmap_load(DATA "lskd_regions.jsonl", &m, 0, NULL) == VCM_OK);
    for (long i = 0; i < a.n && i < b.n; i++) {
        Record ra, rb;
        JsonlLine la = {.path = "a", .line_no = a.line[i], .text = a.s[i], .len = strlen(a.s[i])};
        JsonlLine lb = {.path = "b", .line_no = b.line[i], .text = b.s[i], .len = strlen(b.s[i])};
        CHECK(record_parse(&la, REC_ANY, &ra, NULL) == VCM_OK);
        CHECK(record_parse(&lb, REC_ANY, &rb, NULL) == VCM_OK);
        CHECK(ra.line == rb.line && !strcmp(ra.image, rb.image) && ra.n_region == rb.n_region);
        const RegionEntry *e = regionmap_find(&m, ra.image);
        CHECK(e != NULL);
        Example ea, eb;
        CHECK(example_build(&ra, e, 512, 512, 224, 224, NULL, EXAMPLE_EVAL, &ea) == VCM_OK);
        CHECK(example_build(&rb, e, 512, 512, 224, 224, NULL, EXAMPLE_EVAL, &eb) == VCM_OK);
        CHECK(ea.text && eb.text && !strcmp(ea.text, eb.text) && ea.n_regions == eb.n_regions);
        example_free(&ea);
        example_free(&eb);
        record_free(&ra);
        record_free(&rb);
    }
    regionmap_free(&m);
    lines_free(&a);
    lines_free(&b);
}

/* ---------------------------------------------------------------- region mapping */

/* One mapping line with 200,000 regions parses in time linear in them (the duplicate
 * check was a scan per key: 300 k regions took minutes); a duplicate at the end of such
 * a line is still found. */
static void test_regionmap_many_regions_linear(void) {
    const int n = 200000;
    size_t cap = (size_t)n * 48 + 256, k = 0;
    char *t = malloc(cap);
    if (!t) { CHECK(0); return; }
    k += (size_t)snprintf(t + k, cap - k, "{\"image\": \"big.png\", \"region_locations\": {");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(t + k, cap - k, "%s\"%d\": {\"boxes\": [[0, 0, 1, 1]]}", i ? ", " : "", i);
    size_t body = k;
    k += (size_t)snprintf(t + k, cap - k, "}}\n");
    const char *p = tmp_path("big_map.jsonl");
    write_file(p, t, k);
    RegionMap m;
    int rc = regionmap_load(p, &m, 0, NULL);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (!rc) {
        const RegionEntry *e = regionmap_find(&m, "big.png");
        CHECK(e && e->n_regions == n);
        regionmap_free(&m);
    }
    k = body + (size_t)snprintf(t + body, cap - body, ", \"0%d\": {\"boxes\": [[0, 0, 1, 1]]}}}\n", n - 1);
    write_file(p, t, k);
    CHECK(regionmap_load(p, &m, 0, NULL) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "appears twice");
    free(t);
}

static void test_regionmap_fixture(void) {
    RegionMap m;
    long skipped = -1;
    CHECK(regionmap_load(DATA "lskd_regions.jsonl", &m, 0, &skipped) == VCM_OK);
    CHECK(m.n == 4 && skipped == 0);
    const RegionEntry *e = regionmap_find(&m, "astronaut.png");
    CHECK(e && e->n_regions == 5 && e->line == 1 && e->n_global == 1);
    const RegionBox *b = e ? region_entry_box(e, 4) : NULL;
    CHECK(b && b->x0 == 133.5f && b->y0 == 348 && b->x1 == 210 && b->y1 == 423.5f);
    CHECK(b && !strcmp(b->obj_guess, "patch") && !strcmp(b->description, "a round mission patch"));
    CHECK(e && region_entry_box(e, 5) == NULL);
    e = regionmap_find(&m, "coffee.png");
    b = e ? region_entry_box(e, 1) : NULL;
    CHECK(b && b->n_boxes == 2 && b->x1 == 480); /* the first box is used */
    CHECK(regionmap_find(&m, "nope.png") == NULL);
    /* images: sizes from the files */
    RegionEntry *we = (RegionEntry *)regionmap_find(&m, "chelsea.png");
    CHECK(regionmap_check_image(&m, we, "/usr/lib/python3/dist-packages/skimage/data") == VCM_OK);
    CHECK(we->img_w == 451 && we->img_h == 300 && we->checked == 1);
    regionmap_free(&m);
}

static void test_regionmap_errors(void) {
    static const struct { const char *line; int reason; const char *msg; } cases[] = {
        {"{\"image\": \"h.png\", \"region_locations\": {\"0\": {\"boxes\": [[50, 5, 10, 40]]}}}", BAD_BOX,
         "r.jsonl:2: image \"h.png\" region \"0\": box 0: x1 (10) < x0 (50)"},
        {"{\"image\": \"h.png\", \"region_locations\": {\"0\": {\"boxes\": [[5, 50, 10, 40]]}}}", BAD_BOX,
         "r.jsonl:2: image \"h.png\" region \"0\": box 0: y1 (40) < y0 (50)"},
        {"{\"image\": \"h.png\", \"region_locations\": {\"3\": {\"boxes\": [[-5, 0, 10, 40]]}}}", BAD_BOX,
         "r.jsonl:2: image \"h.png\" region \"3\": box 0: negative coordinate -5"},
        {"{\"image\": \"h.png\", \"region_locations\": {\"0\": {\"boxes\": [[5, \"0\", 10, 40]]}}}", BAD_BOX,
         "r.jsonl:2: image \"h.png\" region \"0\": box 0: coordinate 1 is a string, not a number"},
        {"{\"image\": \"h.png\", \"region_locations\": {\"0\": {\"boxes\": [[5, 0, 10]]}}}", BAD_BOX,
         "r.jsonl:2: image \"h.png\" region \"0\": box 0: expected [x0, y0, x1, y1], got a list of another length"},
        {"{\"image\": \"h.png\", \"region_locations\": {\"0\": {\"boxes\": []}}}", BAD_BOX,
         "r.jsonl:2: image \"h.png\" region \"0\": \"boxes\" must be a non-empty list of boxes, got a list (empty)"},
        {"{\"image\": \"h.png\", \"region_locations\": {\"a\": {\"boxes\": [[0, 0, 1, 1]]}}}", BAD_VALUE,
         "r.jsonl:2: field \"region_locations\": key \"a\" is not a region id (0, 1, ...)"},
        {"{\"image\": \"h.png\", \"region_locations\": {\"1\": {\"boxes\": [[0, 0, 1, 1]]}, \"01\": {\"boxes\": [[0, 0, 2, 2]]}}}",
         BAD_VALUE, "r.jsonl:2: field \"region_locations\": region id 1 appears twice"},
        {"{\"image\": \"h.png\", \"region_locations\": [[0, 0, 1, 1]]}", BAD_WRONG_TYPE,
         "r.jsonl:2: field \"region_locations\": expected an object, got a list"},
        {"{\"image\": \"h.png\"}", BAD_MISSING_FIELD, "r.jsonl:2: missing field \"region_locations\""},
        {"{\"image\": \"a.png\", \"region_locations\": {}}", BAD_DUPLICATE_IMAGE,
         "r.jsonl:2: image \"a.png\" is already mapped at line 1"},
        {"{\"image\": \"h.png\", \"region_locations\": {}, \"global\": [1]}", BAD_WRONG_TYPE,
         "r.jsonl:2: field \"global[0]\": expected a string, got a number"},
        {"{\"image\": \"h.png\" \"region_locations\": {}}", BAD_JSON_SYNTAX, "r.jsonl:2:36: '}' expected near '\"region_locations\"'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"image\": \"a.png\", \"region_locations\": {\"0\": {\"boxes\": [[0, 0, 4, 4]]}}}\n%s\n"
                 "{\"image\": \"z.png\", \"region_locations\": {}}\n",
                 cases[i].line);
        const char *p = tmp_path("r.jsonl");
        write_file(p, text, strlen(text));
        RegionMap m;
        int rc = regionmap_load(p, &m, 0, NULL);
        char want[512];
        snprintf(want, sizeof want, "%s/%s", tmpdir, cases[i].msg);
        CHECK_MSG(rc == VCM_EINPUT, "case %zu: rc %d", i, rc);
        CHECK_MSG(!strncmp(vcm_error(), want, strlen(want)), "case %zu: \"%s\" vs \"%s\"", i, vcm_error(), want);
        if (!rc) regionmap_free(&m);
        /* skip_bad: a bad box is kept, marked and counted; a bad line is skipped */
        long skipped = -1;
        rc = regionmap_load(p, &m, 1, &skipped);
        CHECK_MSG(rc == VCM_OK, "case %zu skip_bad: %s", i, vcm_error());
        if (rc) continue;
        CHECK_MSG(m.bad_by_reason[cases[i].reason] == 1, "case %zu: counted %ld", i,
                  m.bad_by_reason[cases[i].reason]);
        if (cases[i].reason == BAD_BOX) {
            CHECK(m.n == 3 && skipped == 0);
            const RegionEntry *e = regionmap_find(&m, "h.png");
            CHECK(e && e->n_regions == 1 && e->regions[0].bad == BAD_BOX);
        } else {
            CHECK_MSG(m.n == 2 && skipped == 1, "case %zu: n %d skipped %ld", i, m.n, skipped);
            CHECK(regionmap_find(&m, "z.png") != NULL);
        }
        regionmap_free(&m);
    }
}

static void test_record_check_regions(void) {
    RegionMap m;
    CHECK(regionmap_load(DATA "lskd_regions.jsonl", &m, 0, NULL) == VCM_OK);
    Record r;
    int reason;
    CHECK(parse_str("{\"image\": \"chelsea.png\", \"question\": [\"Is\", [1, 7]], \"answer\": [\"a\"], \"rationale\": []}",
                    &r, NULL) == VCM_OK);
    CHECK(record_check_regions(&r, "x.jsonl", &m, &reason) == VCM_EINPUT && reason == BAD_MISSING_REGION);
    CHECK_STR_CONTAINS(vcm_error(), "x.jsonl:7: field \"question\": region id 7 is not in the mapping of image "
                                    "\"chelsea.png\" (tests/data/lskd_regions.jsonl:2)");
    record_free(&r);
    CHECK(parse_str("{\"image\": \"dog.png\", \"question\": [\"Is\"], \"answer\": [\"a\"], \"rationale\": []}", &r,
                    NULL) == VCM_OK);
    CHECK(record_check_regions(&r, "x.jsonl", &m, &reason) == VCM_EINPUT && reason == BAD_IMAGE_NOT_IN_MAP);
    CHECK_STR_CONTAINS(vcm_error(), "x.jsonl:7: image \"dog.png\" is not in the region mapping");
    record_free(&r);
    regionmap_free(&m);
}

/* The images: missing, truncated (Debian's skimage ships one), a box outside. */
static void test_regionmap_images(void) {
    RegionMap m;
    CHECK(regionmap_load(DATA "bad/regions_images.jsonl", &m, 0, NULL) == VCM_OK);
    const char *root = "/usr/lib/python3/dist-packages/skimage/data";
    RegionEntry *e = (RegionEntry *)regionmap_find(&m, "no_such_image.png");
    CHECK(e && regionmap_check_image(&m, e, root) == VCM_EINPUT && e->bad == BAD_MISSING_IMAGE);
    CHECK_STR_CONTAINS(vcm_error(), "regions_images.jsonl:5: image \"no_such_image.png\": cannot open "
                                    "/usr/lib/python3/dist-packages/skimage/data/no_such_image.png (No such file");
    e = (RegionEntry *)regionmap_find(&m, "truncated.jpg");
    CHECK(e && regionmap_check_image(&m, e, root) == VCM_EINPUT && e->bad == BAD_IMAGE);
    CHECK_STR_CONTAINS(vcm_error(), "regions_images.jsonl:6: image \"truncated.jpg\": cannot decode: ");
    e = (RegionEntry *)regionmap_find(&m, "camera.png");
    CHECK(e && regionmap_check_image(&m, e, root) == VCM_EINPUT && e->bad == 0 && e->checked == 1);
    CHECK_STR_CONTAINS(vcm_error(), "regions_images.jsonl:7: image \"camera.png\": region \"0\": box [100, 100, 600, 300] "
                                    "is outside the image (512x512)");
    CHECK(e && e->regions[0].bad == BAD_BOX_OUTSIDE && e->regions[1].bad == 0);
    CHECK(m.bad_by_reason[BAD_BOX_OUTSIDE] == 1 && m.bad_by_reason[BAD_MISSING_IMAGE] == 1);
    /* a record using region 1 only is fine; region 0 is not */
    Record r;
    int reason;
    CHECK(parse_str("{\"image\": \"camera.png\", \"question\": [[1]], \"answer\": [\"a\"], \"rationale\": []}", &r,
                    NULL) == VCM_OK);
    CHECK(record_check_regions(&r, "x.jsonl", &m, &reason) == VCM_OK);
    record_free(&r);
    CHECK(parse_str("{\"image\": \"camera.png\", \"question\": [[0]], \"answer\": [\"a\"], \"rationale\": []}", &r,
                    NULL) == VCM_OK);
    CHECK(record_check_regions(&r, "x.jsonl", &m, &reason) == VCM_EINPUT && reason == BAD_BOX_OUTSIDE);
    record_free(&r);
    regionmap_free(&m);
}

/* ---------------------------------------------------------------- region handling */

static Record fixture_record(const char *file, int k) {
    Lines L = read_sequential(file);
    Record r;
    memset(&r, 0, sizeof r);
    if (k < L.n) {
        JsonlLine ln = {.path = file, .line_no = L.line[k], .text = L.s[k], .len = strlen(L.s[k])};
        if (record_parse(&ln, REC_ANY, &r, NULL)) fprintf(stderr, "%s\n", vcm_error());
    }
    lines_free(&L);
    return r;
}

static void test_example_eval(void) {
    RegionMap m;
    CHECK(regionmap_load(DATA "lskd_regions.jsonl", &m, 0, NULL) == VCM_OK);
    Record r = fixture_record(DATA "lskd_corpus.jsonl", 0);
    const RegionEntry *e = regionmap_find(&m, "astronaut.png");
    Example ex;
    CHECK(example_build(&r, e, 512, 512, 224, 224, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    /* order of first mention: 0 (question), 3 (question), 2 (rationale) */
    CHECK(ex.n_regions == 3 && ex.orig_id[0] == 0 && ex.orig_id[1] == 3 && ex.orig_id[2] == 2 && !ex.all_regions);
    CHECK_MSG(ex.text && !strcmp(ex.text, "question: what is [0] likely to be doing near [1] ? answer: [0] is posing "
                                          "for an official portrait . rationale: the model of [1] and the flag [2] "
                                          "suggest a space agency photo ."),
              "%s", ex.text);
    /* boxes scaled 512 → 224 */
    CHECK_NEAR(ex.box[0][0], 120 * 224.0 / 512, 1e-4);
    CHECK_NEAR(ex.box[0][3], 224, 1e-4);
    CHECK_NEAR(ex.box[1][0], 352 * 224.0 / 512, 1e-4);
    CHECK_NEAR(ex.box[2][2], 95 * 224.0 / 512, 1e-4);
    example_free(&ex);
    record_free(&r);

    /* multi-id mentions: "[0] , [1]" */
    r = fixture_record(DATA "lskd_corpus.jsonl", 1);
    CHECK(example_build(&r, e, 512, 512, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK_MSG(ex.text && !strcmp(ex.text, "question: why are [0] , [1] in the same picture ? answer: [1] belongs to [0] "
                                          "'s spacesuit . rationale: astronauts wear a helmet like [1] with the "
                                          "orange suit that [0] has on ."),
              "%s", ex.text);
    example_free(&ex);
    record_free(&r);

    /* a record whose ids are not in mention order (coffee: 2 first) and a non-square resize */
    r = fixture_record(DATA "lskd_corpus.jsonl", 4);
    e = regionmap_find(&m, "coffee.png");
    CHECK(example_build(&r, e, 600, 400, 300, 100, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.n_regions == 4 && ex.orig_id[0] == 2 && ex.orig_id[1] == 3 && ex.orig_id[2] == 0 && ex.orig_id[3] == 1);
    CHECK_MSG(ex.text && !strcmp(ex.text, "question: what will someone use [0] for ? answer: to stir [1] in [2] . "
                                          "rationale: [0] rests on [3] next to [2] , ready for sugar ."),
              "%s", ex.text);
    CHECK_NEAR(ex.box[0][0], 322 * 0.5, 1e-4);
    CHECK_NEAR(ex.box[0][1], 65 * 0.25, 1e-4);
    example_free(&ex);
    record_free(&r);

    /* multiple choice: the prompt and each choice rendered with the same numbering */
    r = fixture_record(DATA "lskd_mc.jsonl", 1);
    e = regionmap_find(&m, "rocket.jpg");
    CHECK(example_build(&r, e, 640, 427, 224, 224, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.n_regions == 2 && ex.orig_id[0] == 3 && ex.orig_id[1] == 0);
    CHECK_MSG(ex.text && !strcmp(ex.text, "question: what does [0] do for [1] ? answer:"), "%s", ex.text);
    CHECK(ex.n_choices == 3 && !strcmp(ex.choices[1], "it draws lightning away from [1] ."));
    CHECK(!strcmp(ex.choices[0], "it carries satellites to orbit ."));
    example_free(&ex);
    record_free(&r);

    /* an MC item as vcm synth writes it ("regions": all of the image's): the
     * referenced first, in order of first mention, then the others as listed */
    e = regionmap_find(&m, "coffee.png");
    CHECK(parse_str("{\"image\": \"coffee.png\", \"regions\": [0, 1, 2, 3], \"question\": [\"What\", \"is\", [2], \"for\", \"?\"], "
                    "\"choices\": [[\"stirring\"], [\"holding\", [0]]], \"label\": 0, \"distractor_other_region\": true}",
                    &r, NULL) == VCM_OK);
    CHECK(r.kind == REC_MC && r.n_region_all == 4 && !strcmp(r.region_all_key, "regions") && r.n_region == -1);
    CHECK(r.distractor_other_region == 1);
    CHECK(example_build(&r, e, 600, 400, 224, 224, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.n_regions == 4 && ex.orig_id[0] == 2 && ex.orig_id[1] == 0 && ex.orig_id[2] == 1 && ex.orig_id[3] == 3);
    CHECK(ex.text && !strcmp(ex.text, "question: what is [0] for ? answer:"));
    CHECK(ex.n_choices == 2 && !strcmp(ex.choices[1], "holding [1]"));
    example_free(&ex);
    record_free(&r);
    int reason;
    CHECK(parse_str("{\"image\": \"coffee.png\", \"regions\": [0, 9], \"question\": [\"q\"], \"choices\": [[\"a\"], [\"b\"]], "
                    "\"label\": 1}", &r, NULL) == VCM_OK);
    CHECK(record_check_regions(&r, "mc.jsonl", &m, &reason) == VCM_EINPUT && reason == BAD_MISSING_REGION);
    CHECK_STR_CONTAINS(vcm_error(), "mc.jsonl:7: field \"regions\": region id 9 is not in the mapping");
    record_free(&r);
    regionmap_free(&m);
}

static void test_example_train(void) {
    RegionMap m;
    CHECK(regionmap_load(DATA "lskd_regions.jsonl", &m, 0, NULL) == VCM_OK);
    Record r = fixture_record(DATA "lskd_corpus.jsonl", 6); /* rocket: refers to 1, 2, 0; region_all 0..4 */
    const RegionEntry *e = regionmap_find(&m, "rocket.jpg");
    uint64_t rng = 123;
    int n_all = 0, first_pos_seen[5] = {0};
    for (int t = 0; t < 400; t++) {
        Example ex;
        CHECK(example_build(&r, e, 640, 427, 224, 224, &rng, EXAMPLE_TRAIN, &ex) == VCM_OK);
        if (ex.all_regions) {
            n_all++;
            CHECK(ex.n_regions == 5);
            int seen[5] = {0};
            for (int k = 0; k < ex.n_regions; k++) seen[ex.orig_id[k]]++;
            for (int k = 0; k < 5; k++) CHECK(seen[k] == 1);
            first_pos_seen[ex.orig_id[0]] = 1;
        } else {
            CHECK(ex.n_regions == 3 && ex.orig_id[0] == 1 && ex.orig_id[1] == 2 && ex.orig_id[2] == 0);
        }
        /* the text's [k] always names the box of the id the record meant */
        int k1 = -1;
        for (int k = 0; k < ex.n_regions; k++)
            if (ex.orig_id[k] == 1) k1 = k;
        char want[64];
        snprintf(want, sizeof want, "question: why do [%d] and", k1);
        CHECK_STR_CONTAINS(ex.text, want);
        CHECK_NEAR(ex.box[k1][2], 90 * 224.0 / 640, 1e-4);
        example_free(&ex);
    }
    CHECK_MSG(n_all > 160 && n_all < 240, "all-regions %d of 400", n_all);
    for (int k = 0; k < 5; k++) CHECK(first_pos_seen[k]); /* shuffled */
    /* same seed, same examples */
    uint64_t a = 99, b = 99;
    for (int t = 0; t < 20; t++) {
        Example x, y;
        CHECK(example_build(&r, e, 640, 427, 224, 224, &a, EXAMPLE_TRAIN, &x) == VCM_OK);
        CHECK(example_build(&r, e, 640, 427, 224, 224, &b, EXAMPLE_TRAIN, &y) == VCM_OK);
        CHECK(x.n_regions == y.n_regions && !memcmp(x.orig_id, y.orig_id, sizeof x.orig_id) && !strcmp(x.text, y.text));
        example_free(&x);
        example_free(&y);
    }
    record_free(&r);
    regionmap_free(&m);
}

/* A mapping of one image, "big.png", with 30 regions: region i at x i..i+5, y 0..10. */
static const RegionEntry *big_map(const char *file, RegionMap *m) {
    char line[8192];
    int at = snprintf(line, sizeof line, "{\"image\": \"big.png\", \"region_locations\": {");
    for (int i = 0; i < 30; i++)
        at += snprintf(line + at, sizeof line - (size_t)at, "%s\"%d\": {\"boxes\": [[%d, 0, %d, 10]]}", i ? ", " : "",
                       i, i, i + 5);
    snprintf(line + at, sizeof line - (size_t)at, "}}\n");
    write_file(tmp_path(file), line, strlen(line));
    CHECK(regionmap_load(tmp_path(file), m, 0, NULL) == VCM_OK);
    return regionmap_find(m, "big.png");
}

/* More than 16 regions in the image: at most 16 given, the referenced always among
 * them; more than 16 referenced: an error. */
static void test_example_limits(void) {
    RegionMap m;
    const RegionEntry *e = big_map("big.jsonl", &m);
    CHECK(e && e->n_regions == 30);
    Record r;
    CHECK(parse_str("{\"image\": \"big.png\", \"question\": [\"Is\", [29], \"by\", [17, 3], \"?\"], "
                    "\"answer\": [\"no\"], \"rationale\": []}",
                    &r, NULL) == VCM_OK);
    uint64_t rng = 5;
    int n_all = 0;
    for (int t = 0; t < 50; t++) {
        Example ex;
        CHECK(example_build(&r, e, 100, 100, 50, 50, &rng, EXAMPLE_TRAIN, &ex) == VCM_OK);
        if (ex.all_regions) {
            n_all++;
            CHECK(ex.n_regions == VCM_MAX_REGIONS);
            int got = 0;
            for (int k = 0; k < ex.n_regions; k++) got += ex.orig_id[k] == 29 || ex.orig_id[k] == 17 || ex.orig_id[k] == 3;
            CHECK(got == 3);
        }
        example_free(&ex);
    }
    CHECK(n_all > 0);
    record_free(&r);
    char q[2048];
    int at = snprintf(q, sizeof q, "{\"image\": \"big.png\", \"question\": [");
    for (int i = 0; i < 17; i++) at += snprintf(q + at, sizeof q - (size_t)at, "%s[%d]", i ? ", " : "", i);
    snprintf(q + at, sizeof q - (size_t)at, "], \"answer\": [\"a\"], \"rationale\": []}");
    CHECK(parse_str(q, &r, NULL) == VCM_OK);
    Example ex;
    CHECK(example_build(&r, e, 100, 100, 50, 50, NULL, EXAMPLE_EVAL, &ex) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "more than 16 regions");
    record_free(&r);
    regionmap_free(&m);
}

/* Words: empty strings vanish, capitals are lower-cased (ASCII and Latin-1 here). */
static void test_words_render(void) {
    Record r;
    CHECK(parse_str("{\"image\": \"a\", \"question\": [\"Où\", \"\", \"ÉTÉ\", [4, 2, 9], \"?\"], \"answer\": [\"A\"], "
                    "\"rationale\": []}",
                    &r, NULL) == VCM_OK);
    int ids[3] = {9, 4, 2};
    char *s = words_render(&r.question, ids, 3);
    CHECK_MSG(s && !strcmp(s, "où été [1] , [2] , [0] ?"), "%s", s);
    free(s);
    CHECK(words_render(&r.question, ids, 2) == NULL); /* 2 not among the regions */
    record_free(&r);
}


/* The open-ended judge on hand-made cases: right region + right content, right region +
 * wrong content, wrong region, an extra region, nothing named; multi-region questions;
 * descriptions as names (the text-only baseline), an ambiguous one included. */
static void test_open_judge(void) {
    const char *ids[4] = {"[0]", "[1]", "[2]", "[3]"};
    int asked2[4] = {0, 0, 1, 0};
    OpenVerdict v;
    const char *truth = "[2] is made of glass .";
    open_judge("[2] is made of glass .", 22, truth, ids, asked2, 4, &v);
    CHECK(v.refers && v.correct && v.n_named == 1);
    open_judge("  [2]  IS made of glass .\n", 27, truth, ids, asked2, 4, &v);   /* case and spaces */
    CHECK(v.refers && v.correct);
    open_judge("[2] is made of wood .", 21, truth, ids, asked2, 4, &v);         /* right region, wrong content */
    CHECK(v.refers && !v.correct);
    open_judge("[1] is made of glass .", 22, truth, ids, asked2, 4, &v);        /* wrong region */
    CHECK(!v.refers && !v.correct && v.n_named == 1);
    open_judge("[2] is next to [3] .", 20, truth, ids, asked2, 4, &v);          /* names another region too */
    CHECK(!v.refers && !v.correct && v.n_named == 2);
    open_judge("it is made of glass .", 21, truth, ids, asked2, 4, &v);         /* names no region */
    CHECK(!v.refers && !v.correct && v.n_named == 0);
    open_judge("", 0, truth, ids, asked2, 4, &v);
    CHECK(!v.refers && !v.correct);
    open_judge("[2] is made of glass . and more", 22, truth, ids, asked2, 4, &v);   /* only answer_len bytes */
    CHECK(v.correct);
    const char *many[12] = {"[0]", "[1]", "[2]", "[3]", "[4]", "[5]", "[6]", "[7]", "[8]", "[9]", "[10]", "[11]"};
    int asked1[12] = {0, 1};
    open_judge("[11] is red .", 13, "[1] is red .", many, asked1, 12, &v);     /* [1] is not inside [11] */
    CHECK(!v.refers && v.n_named == 1);
    /* "which is closer to [0] , [1] or [2] ?": any of the asked may be named */
    int asked3[4] = {1, 1, 1, 0};
    open_judge("[2] is closer to [0] .", 22, "[1] is closer to [0] .", ids, asked3, 4, &v);
    CHECK(v.refers && !v.correct);
    open_judge("[3] is closer to [0] .", 22, "[1] is closer to [0] .", ids, asked3, 4, &v);
    CHECK(!v.refers);
    /* descriptions: whole words, a description shared with an asked region counts as asked */
    const char *desc[3] = {"a red cup", "a red cup", "a dog"};
    int asked_d[3] = {1, 0, 0};
    open_judge("a red cup is made of glass .", 28, "a red cup is made of glass .", desc, asked_d, 3, &v);
    CHECK(v.refers && v.correct);
    open_judge("a dog can bark .", 16, "a red cup can hold coffee .", desc, asked_d, 3, &v);
    CHECK(!v.refers && !v.correct);
    open_judge("a doghouse .", 12, "x", desc, asked_d, 3, &v);                  /* "a dog" is not a word of it */
    CHECK(v.n_named == 0);
}

/* EXAMPLE_KEEP_IDS: every region of region_all in listed order, no renumbering by
 * first mention (the open-ended evaluation asks as a user would). */
static void test_example_keep_ids(void) {
    RegionMap m;
    CHECK(regionmap_load(DATA "lskd_regions.jsonl", &m, 0, NULL) == VCM_OK);
    const RegionEntry *e = regionmap_find(&m, "coffee.png");
    Record r;
    CHECK(parse_str("{\"image\": \"coffee.png\", \"region\": [2], \"region_all\": [0, 1, 2, 3], \"question\": "
                    "[\"What\", \"is\", [2], \"for\", \"?\"], \"answer\": [[2], \"stirs\"], \"rationale\": [], "
                    "\"synth\": {\"fault\": null, \"qtype\": \"use\", \"relational\": false}}", &r, NULL) == VCM_OK);
    CHECK(r.qtype && !strcmp(r.qtype, "use") && r.relational == 0);
    Example ex;
    CHECK(example_build(&r, e, 600, 400, 224, 224, NULL, EXAMPLE_EVAL | EXAMPLE_KEEP_IDS, &ex) == VCM_OK);
    CHECK(ex.n_regions == 4 && ex.orig_id[0] == 0 && ex.orig_id[1] == 1 && ex.orig_id[2] == 2 && ex.orig_id[3] == 3);
    CHECK_MSG(ex.text && !strcmp(ex.text, "question: what is [2] for ? answer: [2] stirs rationale:"), "%s", ex.text);
    example_free(&ex);
    /* the same record without the flag: [2] becomes [0] */
    CHECK(example_build(&r, e, 600, 400, 224, 224, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.n_regions == 1 && ex.orig_id[0] == 2);
    example_free(&ex);
    record_free(&r);
    /* grounding flag and qtype of an MC item; a wrong type is named */
    CHECK(parse_str("{\"image\": \"coffee.png\", \"regions\": [0, 1], \"question\": [\"Which\", \"?\"], "
                    "\"choices\": [[[0], \"a\"], [[1], \"a\"]], \"label\": 1, \"grounding\": true, "
                    "\"synth\": {\"qtype\": \"color\"}}", &r, NULL) == VCM_OK);
    CHECK(r.grounding == 1 && r.qtype && !strcmp(r.qtype, "color"));
    record_free(&r);
    int reason;
    CHECK(parse_str("{\"image\": \"a\", \"question\": [\"q\"], \"choices\": [[\"a\"], [\"b\"]], \"label\": 0, "
                    "\"grounding\": 1}", &r, &reason) == VCM_EINPUT && reason == BAD_WRONG_TYPE);
    CHECK_STR_CONTAINS(vcm_error(), "field \"grounding\": expected true/false");
    regionmap_free(&m);
}

/* EXAMPLE_KEEP_IDS with more regions than 16 and no region_all: the mapping's regions in
 * listed order, the first others filling what the referenced ones leave, so a user's
 * [k] is still the k-th region given and every referenced region is among them. */
static void test_example_keep_ids_many(void) {
    RegionMap m;
    const RegionEntry *e = big_map("big_keep.jsonl", &m);
    Record r;
    CHECK(parse_str("{\"image\": \"big.png\", \"question\": [\"Is\", [29], \"by\", [20], \"?\"], \"answer\": [[29], \"is\"], "
                    "\"rationale\": []}", &r, NULL) == VCM_OK);
    Example ex;
    CHECK(example_build(&r, e, 100, 100, 50, 50, NULL, EXAMPLE_EVAL | EXAMPLE_KEEP_IDS, &ex) == VCM_OK);
    CHECK(ex.n_regions == VCM_MAX_REGIONS);
    for (int k = 0; k < 14; k++) CHECK(ex.orig_id[k] == k);
    CHECK(ex.orig_id[14] == 20 && ex.orig_id[15] == 29);
    CHECK_MSG(ex.text && !strcmp(ex.text, "question: is [15] by [14] ? answer: [15] is rationale:"), "%s", ex.text);
    CHECK_NEAR(ex.box[15][0], 29 * 0.5, 1e-4);
    example_free(&ex);
    record_free(&r);
    regionmap_free(&m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vcm_test_readers_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_reader_lines);
    RUN(test_index_random_equals_sequential);
    RUN(test_gzip_truncated);
    RUN(test_record_lskd_fixture);
    RUN(test_record_errors);
    RUN(test_gzip_plain_same_records);
    RUN(test_regionmap_fixture);
    RUN(test_regionmap_errors);
    RUN(test_record_check_regions);
    RUN(test_regionmap_images);
    RUN(test_example_eval);
    RUN(test_example_train);
    RUN(test_example_limits);
    RUN(test_regionmap_many_regions_linear);
    RUN(test_words_render);
    RUN(test_open_judge);
    RUN(test_example_keep_ids);
    RUN(test_example_keep_ids_many);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
