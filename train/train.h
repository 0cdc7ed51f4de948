/* train/ — from files to trained models: the dataset that turns corpus records into
 * batches, the training loop, logging and resume. The public header of the folder. */
#ifndef VCM_TRAIN_H
#define VCM_TRAIN_H

#include "data/data.h"
#include "lm/lm.h"
#include "model/model.h"

/* ================================================================ dataset
 * (train/dataset.c) A corpus (indexed, never parsed whole) with its region mapping,
 * images and tokenizer; builds the model's batches. */
typedef struct Dataset {
    char *corpus_path;
    char *images_root;
    JsonlIndex index;
    RegionMap map;
    const Tokenizer *tok;
    ImageCache *cache;
    ModelConfig cfg;          /* image size, max_text, region input */
    int skip_bad;             /* replace a bad record by the next good one (counted) */
    long n_skipped;
} Dataset;

/* Spans of a gzip corpus shuffled together in an epoch, and kept inflated (the
 * trainer's epoch order, jsonl_index_shuffle / jsonl_index_cache). */
#define GZ_SHUFFLE_GROUP 16

int dataset_open(Dataset *d, const char *corpus, const char *regions, const char *images_root,
                 const Tokenizer *tok, const ModelConfig *cfg, size_t cache_bytes, int skip_bad);
void dataset_close(Dataset *d);
static inline long dataset_size(const Dataset *d) { return d->index.n; }

/* Memory for batches of up to max_b samples (every field of Batch). */
typedef struct BatchBuf {
    Batch b;
    int max_b;
    void *samples;            /* per-sample scratch of dataset_batch (max_b of them) */
    uint8_t *rgb;             /* max_b resized images, 3·image² bytes each */
} BatchBuf;
int batchbuf_alloc(BatchBuf *bb, const ModelConfig *cfg, int max_b);
void batchbuf_free(BatchBuf *bb);

/* Tokens of a rendered example: <bos> text <eos>, cut to max_text + 1 ids.
 * Returns the number of ids (>= 2) or -1. */
int tokenize_example(const Tokenizer *tok, const char *text, int max_text, int32_t *ids);

/* Fill bb->b with the records idx[0..n). mode: EXAMPLE_TRAIN (augmentation drawn from
 * seed and the record's position `sample0 + i`, so a batch is the same whenever it is
 * rebuilt) or EXAMPLE_EVAL. Errors name the corpus file and line. */
int dataset_batch(Dataset *d, const long *idx, int n, uint64_t seed, uint64_t sample0, int mode,
                  BatchBuf *bb);

/* The model's input from an image already resized to cfg->image (rgb, changed in place
 * when cfg->region_input is draw: the regions are drawn on it with their colours, box
 * k in the colour of id k), normalised CHW into out (3·image² floats). */
void model_image(const ModelConfig *cfg, uint8_t *rgb, const float (*boxes)[4], int n_boxes, float *out);

/* ================================================================ training the student
 * (train/trainer.c, train/progress.c) */
typedef struct TrainOptions {
    const char *corpus, *regions, *images_root;   /* training data (required) */
    const char *val_corpus;                       /* NULL: no validation loss */
    const char *tokenizer;                        /* .tok path (required) */
    const char *config;                           /* nano | small | base */
    int region_input;                             /* REGION_INPUT_* */
    const char *out;                              /* checkpoint path (required) */
    int resume;                                   /* continue from `out` if it exists */
    const char *log_csv;                          /* NULL: none */
    long steps;                                   /* optimiser steps in all */
    int batch, accum;                             /* samples per micro-batch, micro-batches per step */
    double lr, min_lr, weight_decay, clip;
    long warmup;
    uint64_t seed;
    long ckpt_every, val_every, log_every;
    int val_batches;
    int skip_bad;
    size_t cache_bytes;
    long stop_after;                              /* test hook: return after this step (0: off) */
    int quiet;
} TrainOptions;

void train_options_default(TrainOptions *o);

typedef struct TrainResult {
    long steps_done;
    double last_loss, last_val_loss;              /* val: NAN when none */
    double seconds, samples_per_s;
    long skipped;
} TrainResult;

/* Train (or resume) the student. Errors: VCM_EINPUT for bad data/flags, VCM_ERR for
 * runtime failures, including a non-finite loss (the message names the last good
 * checkpoint). */
int train_student(const TrainOptions *o, TrainResult *res);

/* A line of progress on stderr: redrawn in place on a terminal, a plain log line
 * every `every` calls otherwise. */
typedef struct Progress {
    int tty;
    double t0, last;
    long total, step0;
} Progress;
/* step0: the step the work starts from (a resumed run), for the ETA. */
void progress_start(Progress *p, long step0, long total);
void progress_update(Progress *p, long step, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void progress_end(Progress *p);
double now_seconds(void);

#endif
