/* vcm corpus validate | stats | index | get — check, describe and index corpus files. */
#include "data/data.h"
#include "tensor/tensor.h"
#include "tools/tools.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double max_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

/* Progress on stderr: a rewritten line on a terminal, a log line every 2^20 lines
 * otherwise (DESIGN.md §7). */
typedef struct Progress { const char *what; double t0; int tty, printed; } Progress;

static void on_progress(long lines, void *ctx) {
    Progress *p = ctx;
    double dt = now_s() - p->t0;
    if (p->tty) {
        p->printed = 1;
        fprintf(stderr, "\r%s: %ld lines, %.0f lines/s   ", p->what, lines, dt > 0 ? (double)lines / dt : 0.0);
    } else if (lines % (1L << 20) == 0) {
        fprintf(stderr, "%s: %ld lines, %.1f s\n", p->what, lines, dt);
    }
}

static void progress_end(const Progress *p) {
    if (p->printed) fputc('\n', stderr);
}

static int cmd_validate(int argc, char **argv) {
    const char *regions = NULL, *images_root = NULL;
    int skip_bad = 0;
    Flag flags[] = {
        {"regions", 's', &regions, "region-mapping file (.jsonl or .jsonl.gz); not needed when every record has \"references\""},
        {"images-root", 's', &images_root, "directory the images are relative to: check sizes and decode them"},
        {"skip-bad", 'b', &skip_bad, "count bad records by reason instead of stopping at the first"},
        {0},
    };
    const char *pos[1];
    int np = 0;
    int rc = flags_parse("usage: vcm corpus validate FILE [--regions MAP] [--images-root DIR] [--skip-bad]\n\n"
                         "Check every record (corpus, annotation, multiple-choice): JSON syntax, field types,\n"
                         "non-empty question/answer, region ids present in the mapping (or in the record's own\n"
                         "\"references\"), boxes valid and inside the image, images decodable. Prints a JSON\n"
                         "summary on stdout; exit 2 with FILE:LINE[:COL]: problem at the first bad record\n"
                         "unless --skip-bad.",
                         flags, argc, argv, pos, 1, &np);
    if (rc) return rc < 0 ? 0 : rc;
    if (np != 1) return tool_error("corpus validate", 2, "expected one FILE (see vcm corpus validate --help)");
    RegionMap m = {0};   /* no --regions: records must carry "references" */
    if (regions && (rc = regionmap_load(regions, &m, skip_bad, NULL)))
        return tool_error("corpus validate", rc, "%s", vcm_error());
    CorpusCheck c;
    Progress pr = {"vcm corpus validate", now_s(), isatty(2), 0};
    rc = corpus_validate(pos[0], regions ? &m : NULL, images_root, skip_bad, &c, on_progress, &pr);
    progress_end(&pr);
    if (rc) {
        tool_error("corpus validate", rc, "%s", vcm_error());
        if (regions) regionmap_free(&m);
        return rc;
    }
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(pos[0]));
    json_object_set_new(o, "records", json_integer(c.records));
    json_object_set_new(o, "ok", json_integer(c.ok));
    json_object_set_new(o, "bad", json_integer(c.bad));
    json_object_set_new(o, "kinds", json_pack("{s:I,s:I,s:I}", "corpus", (json_int_t)c.by_kind[REC_CORPUS],
                                              "annotation", (json_int_t)c.by_kind[REC_ANNOTATION], "mc",
                                              (json_int_t)c.by_kind[REC_MC]));
    json_object_set_new(o, "bad_by_reason", bad_reasons_json(c.bad_by_reason));
    json_object_set_new(o, "images_checked", json_integer(c.images_checked));
    json_object_set_new(o, "with_references", json_integer(c.with_references));
    json_t *mj = regions ? json_object() : json_null();
    if (regions) {
        json_object_set_new(mj, "file", json_string(regions));
        json_object_set_new(mj, "images", json_integer(m.n));
        json_object_set_new(mj, "skipped_lines", json_integer(m.n_skipped));
        json_object_set_new(mj, "bad_by_reason", bad_reasons_json(m.bad_by_reason));
        regionmap_free(&m);
    }
    json_object_set_new(o, "mapping", mj);
    return tool_print_json("corpus validate", o, JSON_REAL_PRECISION(10));
}

static int cmd_stats(int argc, char **argv) {
    int skip_bad = 0;
    Flag flags[] = {
        {"skip-bad", 'b', &skip_bad, "skip records that do not parse (counted as skipped_bad)"},
        {0},
    };
    const char *pos[1];
    int np = 0;
    int rc = flags_parse("usage: vcm corpus stats FILE [--skip-bad]\n\n"
                         "One JSON object on stdout: records, images, sources, splits, words per field,\n"
                         "mentions per record, multi-id mentions, region ids histogram, prediction quantiles.",
                         flags, argc, argv, pos, 1, &np);
    if (rc) return rc < 0 ? 0 : rc;
    if (np != 1) return tool_error("corpus stats", 2, "expected one FILE (see vcm corpus stats --help)");
    json_t *o;
    Progress pr = {"vcm corpus stats", now_s(), isatty(2), 0};
    rc = corpus_stats(pos[0], skip_bad, &o, on_progress, &pr);
    progress_end(&pr);
    if (rc) return tool_error("corpus stats", rc, "%s", vcm_error());
    return tool_print_json("corpus stats", o, JSON_REAL_PRECISION(10));
}

static int cmd_index(int argc, char **argv) {
    long span = 0;
    int span_kb = 1024, sample = 0, seed = 1, epoch = 0, group = 16;
    Flag flags[] = {
        {"span-kb", 'i', &span_kb, "gzip: uncompressed KiB between access points (default 1024)"},
        {"sample", 'i', &sample, "then read this many records at random and time it"},
        {"epoch", 'b', &epoch, "then read every record in a shuffled epoch order and time it"},
        {"group", 'i', &group, "gzip spans shuffled together (and cached) in --epoch (default 16)"},
        {"seed", 'i', &seed, "seed of the random reads (default 1) [0..]"},
        {0},
    };
    const char *pos[1];
    int np = 0;
    int rc = flags_parse("usage: vcm corpus index FILE [--span-kb K] [--sample N] [--epoch [--group G]] [--seed S]\n\n"
                         "Build the random-access index of a .jsonl or .jsonl.gz file and report its size,\n"
                         "the time it took and the peak memory (ru_maxrss) as one JSON object.",
                         flags, argc, argv, pos, 1, &np);
    if (rc) return rc < 0 ? 0 : rc;
    if (np != 1) return tool_error("corpus index", 2, "expected one FILE (see vcm corpus index --help)");
    if (span_kb <= 0 || sample < 0) return tool_error("corpus index", 2, "--span-kb must be > 0, --sample >= 0");
    span = (long)span_kb * 1024;
    double t0 = now_s();
    JsonlIndex ix;
    if ((rc = jsonl_index_build(&ix, pos[0], span))) return tool_error("corpus index", rc, "%s", vcm_error());
    double t_build = now_s() - t0;
    size_t index_bytes = jsonl_index_bytes(&ix);
    double t_reads = 0;
    uint64_t s = vcm_hash64((uint64_t)seed);
    if (sample && ix.n) {
        t0 = now_s();
        for (int k = 0; k < sample; k++) {
            long i = (long)vcm_rng_below(&s, (uint64_t)ix.n);
            JsonlLine ln;
            if ((rc = jsonl_index_read(&ix, i, &ln))) {
                jsonl_index_free(&ix);
                return tool_error("corpus index", rc, "%s", vcm_error());
            }
        }
        t_reads = now_s() - t0;
    }
    double t_epoch = 0;
    if (epoch && ix.n) {
        long *order = malloc((size_t)ix.n * sizeof *order);
        t0 = now_s();
        rc = !order ? vcm_fail(VCM_ERR, "out of memory")
                    : jsonl_index_shuffle(&ix, (uint64_t)seed, group, order) ? VCM_ERR : jsonl_index_cache(&ix, group);
        for (long k = 0; !rc && k < ix.n; k++) {
            JsonlLine ln;
            rc = jsonl_index_read(&ix, order[k], &ln);
        }
        t_epoch = now_s() - t0;
        free(order);
        if (rc) {
            jsonl_index_free(&ix);
            return tool_error("corpus index", rc, "%s", vcm_error());
        }
    }
    json_t *o = json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:f,s:f}", "file", pos[0], "gzip", ix.gz, "records",
                          (json_int_t)ix.n, "uncompressed_bytes", (json_int_t)ix.total, "access_points",
                          (json_int_t)jsonl_index_points(&ix), "index_bytes", (json_int_t)index_bytes,
                          "build_seconds", t_build, "max_rss_mb", max_rss_mb());
    if (epoch) {
        json_object_set_new(o, "epoch_seconds", json_real(t_epoch));
        json_object_set_new(o, "epoch_group", json_integer(group));
        json_object_set_new(o, "index_bytes_with_cache", json_integer((json_int_t)jsonl_index_bytes(&ix)));
        json_object_set_new(o, "max_rss_mb", json_real(max_rss_mb()));
    }
    if (sample) {
        json_object_set_new(o, "random_reads", json_integer(sample));
        json_object_set_new(o, "random_read_us", json_real(1e6 * t_reads / sample));
    }
    jsonl_index_free(&ix);
    return tool_print_json("corpus index", o, JSON_REAL_PRECISION(10));
}

static int cmd_get(int argc, char **argv) {
    Flag flags[] = {{0}};
    const char *pos[64];
    int np = 0;
    int rc = flags_parse("usage: vcm corpus get FILE I [J ...]\n\n"
                         "Print records I, J, ... (0-based, blank lines not counted) through the random-access\n"
                         "index, one a line, exactly as stored.",
                         flags, argc, argv, pos, 64, &np);
    if (rc) return rc < 0 ? 0 : rc;
    if (np < 2) return tool_error("corpus get", 2, "expected FILE and at least one record number");
    JsonlIndex ix;
    if ((rc = jsonl_index_build(&ix, pos[0], 0))) return tool_error("corpus get", rc, "%s", vcm_error());
    for (int k = 1; k < np && !rc; k++) {
        char *end;
        long i = strtol(pos[k], &end, 10);
        JsonlLine ln;
        if (*end || end == pos[k] || i < 0 || i >= ix.n)
            rc = tool_error("corpus get", 2, "record \"%s\" is not in 0..%ld", pos[k], ix.n - 1);
        else if (jsonl_index_read(&ix, i, &ln))
            rc = tool_error("corpus get", 2, "%s", vcm_error());
        else
            printf("%s\n", ln.text);
    }
    jsonl_index_free(&ix);
    return rc;
}

int cmd_corpus(int argc, char **argv) {
    const char *usage = "usage: vcm corpus <validate|stats|index|get> ... (vcm corpus <sub> --help)\n\n"
                        "  validate  check every record against the region mapping (and the images)\n"
                        "  stats     statistics of a corpus as one JSON object\n"
                        "  index     build the random-access index, report size, time and memory\n"
                        "  get       print records by number through the index\n";
    static const SubCommand subs[] = {
        {"validate", cmd_validate}, {"stats", cmd_stats}, {"index", cmd_index}, {"get", cmd_get}};
    return tool_subcommand("corpus", usage, subs, 4, argc, argv);
}
