/* libFuzzer: the JSONL record parser (corpus, annotation, multiple-choice records).
 * Each input is parsed as one line by record_parse, then a parsed record goes on as a
 * loader takes it (regions checked against a fixed mapping or its own "references",
 * examples built in every mode). Then the input as a whole file through the sequential
 * reader, plain and gzip-compressed, and through the random-access index. */
#include "data/data.h"
#include "base/base.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>
#include <zlib.h>

/* Two images with regions 0..5 (the seeds' records name these images and ids). */
static const char MAPPING[] =
    "{\"image\":\"astronaut.png\",\"region_locations\":{"
    "\"0\":{\"boxes\":[[120,15,365,512]],\"obj_guess\":\"person\"},\"1\":{\"boxes\":[[275,340,505,512]]},"
    "\"2\":{\"boxes\":[[0,0,95,512]]},\"3\":{\"boxes\":[[352,0,470,285]]},\"4\":{\"boxes\":[[133.5,348,210,423.5]]},"
    "\"5\":{\"boxes\":[[0,0,512,512]]}},\"global\":[\"an astronaut\"],"
    "\"region_descriptions\":{\"0\":\"a woman\",\"1\":\"a helmet\",\"2\":\"a flag\",\"3\":\"a shuttle\",\"4\":\"a patch\"}}\n"
    "{\"image\":\"coffee.png\",\"region_locations\":{\"0\":{\"boxes\":[[0,0,400,300]]},\"1\":{\"boxes\":[[10,10,20,20]]},"
    "\"2\":{\"boxes\":[[100,50,300,250]]},\"3\":{\"boxes\":[[0,0,1,1]]}}}\n";
static RegionMap g_map;
static int g_have_map;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *p = fuzz_tmp_path(0, "regions.jsonl");
    fuzz_write(p, (const uint8_t *)MAPPING, sizeof MAPPING - 1);
    g_have_map = regionmap_load(p, &g_map, 0, NULL) == VCM_OK;
    if (!g_have_map) {
        fprintf(stderr, "fuzz_corpus: the fixed mapping does not load: %s\n", vcm_error());
        abort();
    }
    unlink(p);
    return 0;
}

static void count_mention(const int *ids, int n, void *ctx) {
    (void)ids;
    *(long *)ctx += n;
}

/* What a loader does with a parsed record: regions, boxes, the example in each mode. */
static void use_record(const Record *r) {
    long mentions = 0;
    record_each_mention(r, count_mention, &mentions);
    int reason;
    if (record_check_regions(r, "fuzz", g_have_map ? &g_map : NULL, &reason)) return;
    const RegionEntry *e = record_regions(r, &g_map);
    if (!e || record_check_boxes(r, "fuzz", 512, 512, &reason)) return;
    static const int modes[] = {EXAMPLE_EVAL, EXAMPLE_TRAIN, EXAMPLE_EVAL | EXAMPLE_KEEP_IDS,
                                EXAMPLE_EVAL | EXAMPLE_DESCRIBE, EXAMPLE_TRAIN | EXAMPLE_DESCRIBE};
    for (size_t k = 0; k < sizeof modes / sizeof modes[0]; k++) {
        uint64_t rng = 12345 + k;
        Example ex;
        if (example_build(r, e, 512, 512, 64, 64, &rng, modes[k], &ex) == VCM_OK) example_free(&ex);
    }
}

static void parse_line(const JsonlLine *ln) {
    Record r;
    int reason;
    if (record_parse(ln, REC_ANY, &r, &reason) == VCM_OK) {
        use_record(&r);
        record_free(&r);
    }
}

/* Every line of the file through jsonl_next + record_parse; then the index. */
static void read_file(const char *path) {
    JsonlReader rd;
    if (jsonl_open(&rd, path) == VCM_OK) {
        JsonlLine ln;
        while (jsonl_next(&rd, &ln) == VCM_OK && ln.text) parse_line(&ln);
        jsonl_close(&rd);
    }
    JsonlIndex ix;
    if (jsonl_index_build(&ix, path, 64) == VCM_OK) {   /* a small span: several access points */
        jsonl_index_cache(&ix, 2);
        for (long i = ix.n - 1; i >= 0; i--) {           /* backwards: every read seeks */
            JsonlLine ln;
            if (jsonl_index_read(&ix, i, &ln)) break;
            parse_line(&ln);
        }
    }
    jsonl_index_free(&ix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* one line (NUL-terminated copy: the reader hands lines over that way) */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    JsonlLine ln = {.path = "fuzz", .line_no = 1, .offset = 0, .text = text, .len = size};
    parse_line(&ln);
    free(text);

    const char *plain = fuzz_tmp_path(1, "corpus.jsonl"), *gz = fuzz_tmp_path(2, "corpus.jsonl.gz");
    fuzz_write(plain, data, size);
    read_file(plain);
    gzFile f = gzopen(gz, "wb");
    if (!f || (size && gzwrite(f, data, (unsigned)size) != (int)size) || gzclose(f) != Z_OK) abort();
    read_file(gz);
    unlink(plain);
    unlink(gz);
    return 0;
}
