/* vcm critic: train | score | filter | eval — the critic that keeps the teacher's good
 * generations (DESIGN.md §4 "Critic", docs/CRITIC.md). */
#include "tools/infer_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *USAGE =
    "usage: vcm critic train|score|filter|eval [flags]   (vcm critic SUBCOMMAND --help)\n"
    "\n"
    "  train   train the critic on annotations (a corpus whose records carry \"votes\")\n"
    "  score   write a corpus back with \"prediction\" = P(accept) for every record\n"
    "  filter  keep the records whose prediction >= --threshold\n"
    "  eval    a scored corpus against the hidden synth.fault of the synthetic world";

/* ROC-AUC etc. as JSON numbers, null when undefined. */
static void put_num(FILE *f, const char *key, double v, int comma) {
    fprintf(f, "\"%s\":", key);
    vcm_json_put_number(f, isfinite(v) ? round(v * 1e6) / 1e6 : v);
    if (comma) fputc(',', f);
}

static void put_kinds(FILE *f, const CriticKindStat *k, int n) {
    fprintf(f, "\"by_kind\":{");
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s\"%s\":{\"n\":%ld,", i ? "," : "", k[i].name, k[i].n);
        put_num(f, "mean_score", k[i].mean_score, 1);
        put_num(f, i == 0 ? "kept" : "rejected", k[i].recall, i != 0);
        if (i) put_num(f, "auc_vs_good", k[i].auc, 0);
        fputc('}', f);
    }
    fputc('}', f);
}

static int critic_train_cmd(int argc, char **argv) {
    static const char *U =
        "usage: vcm critic train --annotations A.jsonl --regions MAP.jsonl --images-root DIR\n"
        "                        --tokenizer T.tok --out CRITIC.vcm [--init STUDENT.vcm] [flags]\n"
        "\n"
        "Trains the critic: label = accept when most of a record's \"votes\" say accept. With\n"
        "--init the trunk starts from a trained student (its config, region input and, unless\n"
        "--tokenizer is given, its tokenizer). A share of the records (--val-frac, by a hash of\n"
        "the record index) is held out and scored at the end. One JSON line on stdout: train\n"
        "and held-out loss, accuracy, ROC-AUC against the votes and, when the records carry\n"
        "synth.fault, against the hidden truth (accept <=> fault is null), per fault kind.";
    CriticOptions o;
    critic_options_default(&o);
    const char *region_input = "roi";
    int steps = (int)o.steps, warmup = (int)o.warmup, seed = (int)o.seed, threads = 0, cache_mb = 1024;
    Flag flags[] = {
        {"annotations", 's', &o.annotations, "annotated corpus: records with \"votes\" (required)"},
        {"regions", 's', &o.regions, "region mapping of its images (required)"},
        {"images-root", 's', &o.images_root, "directory the image paths are relative to (default .)"},
        {"tokenizer", 's', &o.tokenizer, "tokenizer (required unless --init: the student's own)"},
        {"out", 's', &o.out, "critic checkpoint to write (required)"},
        {"init", 's', &o.init, "student checkpoint to start the trunk from"},
        {"config", 's', &o.config, "model size without --init: nano (default), small, base"},
        {"region-input", 's', &region_input, "without --init: roi (default), draw, none"},
        {"steps", 'i', &steps, "optimiser steps (default 1000) [1..]"},
        {"batch", 'i', &o.batch, "samples per step (default 16) [1..65536]"},
        {"lr", 'd', &o.lr, "peak learning rate (default 3e-4) [0..]"},
        {"min-lr", 'd', &o.min_lr, "learning rate at the end of the cosine (default 3e-5) [0..]"},
        {"warmup", 'i', &warmup, "linear warmup steps (default 50) [0..]"},
        {"weight-decay", 'd', &o.weight_decay, "AdamW weight decay of the matrices (default 0.01) [0..]"},
        {"clip", 'd', &o.clip, "global gradient-norm clip (default 1.0) [0..]"},
        {"seed", 'i', &seed, "seed of the head's initialisation, shuffling, augmentation (default 1) [0..]"},
        {"val-frac", 'd', &o.val_frac, "held-out share of the annotations (default 0.1)"},
        {"log-every", 'i', &o.log_every, "steps between progress lines when stderr is not a terminal (default 50) [1..]"},
        {"cache-mb", 'i', &cache_mb, "memory for decoded images (default 1024) [0..16777216]"},
        {"threads", 'i', &threads, "threads (default VCM_THREADS or all cores) [0..1024]"},
        {"quiet", 'b', &o.quiet, "no progress on stderr"},
        {0}};
    int rc = flags_parse(U, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (region_input_parse(region_input, &o.region_input)) return tool_error(argv[0], 2, "%s", vcm_error());
    if (!(o.val_frac >= 0 && o.val_frac < 1)) return tool_error(argv[0], 2, "--val-frac must be in [0, 1)");
    if (!o.tokenizer && !o.init) return tool_error(argv[0], 2, "--tokenizer is required (or --init STUDENT.vcm)");
    o.steps = steps;
    o.warmup = warmup;
    o.seed = (uint64_t)seed;
    o.cache_bytes = (size_t)(cache_mb > 0 ? cache_mb : 0) << 20;
    vcm_threads_init(threads);
    CriticResult r;
    rc = train_critic(&o, &r);
    if (rc) return tool_error(argv[0], rc, "%s", vcm_error());
    printf("{\"steps\":%ld,\"n_train\":%ld,\"n_val\":%ld,", r.steps_done, r.n_train, r.n_val);
    put_num(stdout, "train_loss", r.train_loss, 1);
    put_num(stdout, "val_loss", r.val_loss, 1);
    put_num(stdout, "val_accuracy", r.val_acc, 1);
    put_num(stdout, "val_auc", r.val_auc, 1);
    put_num(stdout, "val_auc_fault", r.val_auc_fault, 1);
    printf("\"val_with_fault\":%ld,", r.val_with_fault);
    if (r.n_kinds) { put_kinds(stdout, r.kinds, r.n_kinds); putchar(','); }
    printf("\"init\":");
    if (o.init) vcm_json_put_string(stdout, o.init, strlen(o.init));
    else fputs("null", stdout);
    printf(",\"seconds\":%.1f,\"checkpoint\":", r.seconds);
    vcm_json_put_string(stdout, o.out, strlen(o.out));
    printf("}\n");
    return 0;
}

static int critic_score_cmd(int argc, char **argv) {
    static const char *U =
        "usage: vcm critic score --model CRITIC.vcm --corpus C.jsonl[.gz] --regions MAP.jsonl\n"
        "                        --images-root DIR [--out C2.jsonl[.gz]]\n"
        "\n"
        "Writes every record back unchanged but for \"prediction\" = P(accept) (replaced when\n"
        "present, else added last), to stdout or atomically to --out (gzip when it ends .gz).\n"
        "Streaming: a batch of records at a time. A summary JSON line goes to stdout with\n"
        "--out, else to stderr.";
    CriticScoreOptions o = {0};
    o.images_root = ".";
    o.batch = 32;
    int threads = 0, cache_mb = 256;
    Flag flags[] = {
        {"model", 's', &o.model, "critic checkpoint from vcm critic train (required)"},
        {"corpus", 's', &o.corpus, "corpus to score, .jsonl or .jsonl.gz (required)"},
        {"regions", 's', &o.regions, "region mapping of its images (required)"},
        {"images-root", 's', &o.images_root, "directory the image paths are relative to (default .)"},
        {"out", 's', &o.out, "scored corpus (default stdout; .gz: gzip)"},
        {"batch", 'i', &o.batch, "records scored at a time (default 32) [1..65536]"},
        {"cache-mb", 'i', &cache_mb, "memory for decoded images (default 256) [0..16777216]"},
        {"threads", 'i', &threads, "threads (default VCM_THREADS or all cores) [0..1024]"},
        {"quiet", 'b', &o.quiet, "no progress on stderr"},
        {0}};
    int rc = flags_parse(U, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    o.cache_bytes = (size_t)(cache_mb > 0 ? cache_mb : 0) << 20;
    vcm_threads_init(threads);
    CriticScoreResult r;
    rc = critic_score_corpus(&o, &r);
    if (rc) return tool_error(argv[0], rc, "%s", vcm_error());
    FILE *f = o.out && strcmp(o.out, "-") ? stdout : stderr;
    fprintf(f, "{\"records\":%ld,", r.records);
    put_num(f, "mean_score", r.mean_score, 1);
    fprintf(f, "\"seconds\":%.1f,\"out\":", r.seconds);
    if (f == stdout) vcm_json_put_string(f, o.out, strlen(o.out));
    else fputs("null", f);
    fprintf(f, "}\n");
    return 0;
}

static int critic_filter_cmd(int argc, char **argv) {
    static const char *U =
        "usage: vcm critic filter --corpus SCORED.jsonl[.gz] [--threshold 0.8] [--out F.jsonl[.gz]]\n"
        "\n"
        "Keeps, unchanged, the records whose \"prediction\" >= threshold (a score exactly at the\n"
        "threshold is kept). A record without a numeric prediction is an error naming the file\n"
        "and line. Output to stdout or atomically to --out (gzip when it ends .gz). A summary\n"
        "JSON line (kept, total) goes to stdout with --out, else to stderr.";
    const char *corpus = NULL, *out = NULL;
    double threshold = 0.8;
    Flag flags[] = {
        {"corpus", 's', &corpus, "scored corpus from vcm critic score (required)"},
        {"threshold", 'd', &threshold, "keep prediction >= this (default 0.8)"},
        {"out", 's', &out, "filtered corpus (default stdout; .gz: gzip)"},
        {0}};
    int rc = flags_parse(U, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (!isfinite(threshold)) return tool_error(argv[0], 2, "--threshold must be a finite number");
    long kept = 0, total = 0;
    rc = critic_filter(corpus, out, threshold, &kept, &total);
    if (rc) return tool_error(argv[0], rc, "%s", vcm_error());
    FILE *f = out && strcmp(out, "-") ? stdout : stderr;
    fprintf(f, "{\"kept\":%ld,\"total\":%ld,", kept, total);
    put_num(f, "threshold", threshold, 0);
    fprintf(f, "}\n");
    if (f == stdout) fprintf(stderr, "vcm critic filter: kept %ld of %ld records\n", kept, total);
    return 0;
}

static int critic_eval_cmd(int argc, char **argv) {
    static const char *U =
        "usage: vcm critic eval --corpus SCORED.jsonl[.gz] [--threshold 0.8]\n"
        "\n"
        "A scored corpus of the synthetic world against its hidden truth (good <=> synth.fault\n"
        "is null; records without synth.fault are counted but not scored). One JSON line on\n"
        "stdout: ROC-AUC; precision and recall of the good records among those kept\n"
        "(prediction >= threshold); accuracy; the share kept; per fault kind the share\n"
        "rejected and the ROC-AUC of good against that kind.";
    const char *corpus = NULL;
    double threshold = 0.8;
    Flag flags[] = {
        {"corpus", 's', &corpus, "scored corpus (required)"},
        {"threshold", 'd', &threshold, "the filter's threshold (default 0.8)"},
        {0}};
    int rc = flags_parse(U, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (!isfinite(threshold)) return tool_error(argv[0], 2, "--threshold must be a finite number");
    CriticEval ev;
    rc = critic_eval(corpus, threshold, &ev);
    if (rc) return tool_error(argv[0], rc, "%s", vcm_error());
    printf("{\"records\":%ld,\"with_truth\":%ld,\"good\":%ld,", ev.records, ev.with_truth, ev.good);
    put_num(stdout, "threshold", ev.threshold, 1);
    put_num(stdout, "auc", ev.auc, 1);
    put_num(stdout, "precision", ev.precision, 1);
    put_num(stdout, "recall", ev.recall, 1);
    put_num(stdout, "accuracy", ev.accuracy, 1);
    put_num(stdout, "kept_share", ev.kept_share, 1);
    put_kinds(stdout, ev.kinds, ev.n_kinds);
    printf("}\n");
    return 0;
}

int cmd_critic(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc < 2 ? stderr : stdout, "%s\n", USAGE);
        return argc < 2 ? 2 : 0;
    }
    static const struct { const char *name, *full; int (*fn)(int, char **); } SUB[] = {
        {"train", "critic train", critic_train_cmd},
        {"score", "critic score", critic_score_cmd},
        {"filter", "critic filter", critic_filter_cmd},
        {"eval", "critic eval", critic_eval_cmd},
    };
    for (size_t i = 0; i < sizeof SUB / sizeof SUB[0]; i++)
        if (!strcmp(argv[1], SUB[i].name)) {
            argv[1] = (char *)SUB[i].full;   /* messages read "vcm critic train: ..." */
            return SUB[i].fn(argc - 1, argv + 1);
        }
    return tool_error("critic", 2, "unknown subcommand \"%s\" (train, score, filter, eval)", argv[1]);
}
