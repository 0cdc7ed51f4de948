/* vcm train: train the student on a corpus (DESIGN.md §4). */
#include "tools/infer_util.h"
#include "tools/tools.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

static const char *USAGE =
    "usage: vcm train --corpus C.jsonl[.gz] [--regions MAP.jsonl] --images-root DIR --tokenizer T.tok\n"
    "                 --out MODEL.vcm [--config nano|small|base] [--region-input roi|draw|none|text] [flags]\n"
    "\n"
    "Trains the localized student from scratch (or continues with --resume). Progress goes to\n"
    "stderr; a JSON summary line to stdout. Checkpoints are written atomically to --out.\n"
    "\n"
    "Data-parallel on several processes or machines: mpirun -np N vcm train ... (docs/CLUSTER.md).\n"
    "--batch x --accum is the global batch, shared by the ranks; the numbers do not depend on N.";

int cmd_train(int argc, char **argv) {
    TrainOptions o;
    train_options_default(&o);
    const char *region_input = "roi";
    int steps = (int)o.steps, warmup = (int)o.warmup, ckpt_every = (int)o.ckpt_every, val_every = (int)o.val_every;
    int log_every = (int)o.log_every, stop_after = 0, threads = 0, cache_mb = 1024, seed = (int)o.seed;
    Flag flags[] = {
        {"corpus", 's', &o.corpus, "training corpus, .jsonl or .jsonl.gz (required)"},
        {"regions", 's', &o.regions, "region mapping of the corpus images (not needed for records with \"references\")"},
        {"images-root", 's', &o.images_root, "directory the image paths are relative to (default .)"},
        {"tokenizer", 's', &o.tokenizer, "tokenizer from vcm tokenizer train (required)"},
        {"out", 's', &o.out, "checkpoint to write (required)"},
        {"val-corpus", 's', &o.val_corpus, "corpus for the validation loss"},
        {"config", 's', &o.config, "model size: nano (default), small, base"},
        {"region-input", 's', &region_input, "roi (default): region tokens; draw: boxes drawn on pixels; none;\n"
         "                             text: no image, each [k] replaced by its region's description"},
        {"resume", 'b', &o.resume, "continue from --out if it exists (same options: bit-exact)"},
        {"log", 's', &o.log_csv, "CSV of step,loss,lr,grad_norm,samples_per_s,val_loss,elapsed_s"},
        {"steps", 'i', &steps, "optimiser steps (default 1000) [1..]"},
        {"batch", 'i', &o.batch, "samples per micro-batch (default 32) [1..65536]"},
        {"accum", 'i', &o.accum, "micro-batches per step: gradient accumulation (default 1) [1..4096]"},
        {"lr", 'd', &o.lr, "peak learning rate (default 1e-3) [0..]"},
        {"min-lr", 'd', &o.min_lr, "learning rate at the end of the cosine (default 1e-4) [0..]"},
        {"warmup", 'i', &warmup, "linear warmup steps (default 100) [0..]"},
        {"weight-decay", 'd', &o.weight_decay, "AdamW weight decay of the matrices (default 0.01) [0..]"},
        {"clip", 'd', &o.clip, "global gradient-norm clip (default 1.0) [0..]"},
        {"seed", 'i', &seed, "seed of initialisation, shuffling and augmentation (default 1) [0..]"},
        {"ckpt-every", 'i', &ckpt_every, "steps between checkpoints (default 500; always at the end) [0..]"},
        {"val-every", 'i', &val_every, "steps between validation losses (default 250) [0..]"},
        {"val-batches", 'i', &o.val_batches, "batches in a validation loss (default 4) [1..]"},
        {"log-every", 'i', &log_every, "steps between progress lines when stderr is not a terminal (default 10) [1..]"},
        {"skip-bad", 'b', &o.skip_bad, "replace bad records by the next good one and count them"},
        {"cache-mb", 'i', &cache_mb, "memory for decoded images (default 1024) [0..16777216]"},
        {"threads", 'i', &threads, "threads (default VCM_THREADS, else the cores of this process: under mpirun, its share) [0..1024]"},
        {"stop-after", 'i', &stop_after, "stop after this step as if interrupted (for testing resume)"},
        {"quiet", 'b', &o.quiet, "no progress on stderr"},
        {0}};
    char usage[2048];   /* the usage says whether this build can run under mpirun */
    snprintf(usage, sizeof usage, "%s\nMPI in this build: %s.", USAGE, dist_backend());
    int rc = flags_parse(usage, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (region_input_parse(region_input, &o.region_input)) return tool_error("train", 2, "%s", vcm_error());
    /* The text-only baseline has its own configs (a longer text window: model/config.c). */
    char text_config[32];
    const char *cfg_name = o.config ? o.config : "nano";
    size_t cl = strlen(cfg_name);
    int is_text_cfg = cl > 5 && !strcmp(cfg_name + cl - 5, "-text");
    if (is_text_cfg != (o.region_input == REGION_INPUT_TEXT)) {
        if (is_text_cfg) return tool_error("train", 2, "--config %s is the text-only baseline: use --region-input text", cfg_name);
        snprintf(text_config, sizeof text_config, "%.20s-text", cfg_name);
        o.config = text_config;
    }
    o.steps = steps; o.warmup = warmup; o.ckpt_every = ckpt_every; o.val_every = val_every;
    o.log_every = log_every > 0 ? log_every : 10; o.stop_after = stop_after; o.seed = (uint64_t)seed;
    o.cache_bytes = (size_t)(cache_mb > 0 ? cache_mb : 0) << 20;
    /* Under mpirun/srun: join the job; rank 0 alone prints (the others' errors are
     * rank 0's too, unless MPI itself failed). Threads default to this rank's cores. */
    if (dist_init()) return tool_error("train", 1, "%s", vcm_error());
    if (threads <= 0 && !getenv("VCM_THREADS")) threads = dist_default_threads();
    vcm_threads_init(threads);
    TrainResult res;
    rc = train_student(&o, &res);
    int rank = dist_rank();
    if (rc && (rank == 0 || dist_failed())) rc = tool_error("train", rc, "%s", vcm_error());
    dist_finalize();   /* after the message: a broken job is aborted here */
    if (rc || rank != 0) return rc;
    printf("{\"steps\":%ld,\"loss\":%.6f,", res.steps_done, res.last_loss);
    if (isfinite(res.last_val_loss)) printf("\"val_loss\":%.6f,", res.last_val_loss);
    printf("\"seconds\":%.1f,\"samples_per_s\":%.2f,\"skipped\":%ld,\"checkpoint\":", res.seconds,
           res.samples_per_s, res.skipped);
    vcm_json_put_string(stdout, o.out, strlen(o.out)); /* a path may hold " or \ */
    printf("}\n");
    return 0;
}
