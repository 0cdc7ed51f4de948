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

/* regions NULL: no mapping, every record must carry its own boxes ("references"). */
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


/* ================================================================ training the student
 * (train/trainer.c, train/progress.c) */
typedef struct TrainOptions {
    const char *corpus, *regions, *images_root;   /* training data (required; regions may be
                                                     NULL when every record has "references") */
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

/* ================================================================ one optimisation step
 * (train/step.c) What the student's and the critic's loops share: this process's
 * micro-batches forward and backward (gradients accumulated), the gradients and the
 * loss summed over the ranks, the guard against a non-finite loss or gradient norm,
 * clipping folded into AdamW, the learning rate of the schedule. */

/* Micro-batch `micro` of update `step` (from 0) on g, already reset: read its data and
 * put its mean loss in *loss (NULL when the forward pass failed, the graph saying why)
 * and in *weight what the mean is over (target tokens, samples), by which the slices
 * of a micro-batch cut over the ranks are weighed. Returns VCM_OK or the data's error. */
typedef int (*StepMicroFn)(void *ctx, Graph *g, long step, int micro, Tensor **loss, double *weight);

typedef struct TrainStep {
    ParamStore *ps;
    AdamW *opt;
    Graph *g;
    LrSchedule sched;
    double clip;              /* max gradient norm (<= 0: none) */
    int accum;                /* micro-batches in a step (its loss is their mean) */
    int micro0, micro1;       /* this process's micro-batches [micro0, micro1) */
    int split;                /* 1: every micro-batch is cut in slices over the ranks */
    int ranks;                /* processes sharing each step: dist_size(), or 1 */
    StepMicroFn micro;
    void *ctx;
    const char *ckpt;         /* the guard's message names the last good checkpoint: */
    long ckpt_step;           /* its step, -1 none yet; ckpt NULL: none until the end */
} TrainStep;

typedef struct StepStats { double loss, norm, lr; } StepStats;   /* norm: before clipping */

/* One update (index step, from 0). VCM_ERR on a non-finite loss or norm (nothing is
 * updated; the message names the checkpoint to go on from), a failed forward or
 * backward ("step N: ..."), an MPI failure; a micro-batch's data error as it came.
 * With several ranks a failure on one is returned on all (dist_agree); a failed forward
 * or backward of a slice (split) waits for the others at the next all-reduce, so every
 * rank makes the same collective calls. */
int train_step(const TrainStep *t, long step, StepStats *out);

/* ================================================================ distributed
 * (train/mpi.c) Data-parallel training over MPI (docs/CLUSTER.md). With -DVCM_MPI
 * (the Makefile sets it when it finds Open MPI) these run on MPI_COMM_WORLD; without,
 * they are the one-process versions, so callers are written once. A process joins a
 * job only when a launcher (mpirun, srun) started it: plain `vcm` never starts MPI.
 * Errors (VCM_ERR, naming the rank) come back from every call instead of aborting:
 * the communicator returns errors (MPI_ERRORS_RETURN). */
enum { DIST_SUM = 0, DIST_MIN = 1, DIST_MAX = 2 };
/* Join the job (MPI_Init) when launched; a no-op otherwise and on a second call.
 * VCM_ERR when a launcher started several processes and this build has no MPI. */
int dist_init(void);
int dist_rank(void);              /* 0 outside a job */
int dist_size(void);              /* 1 outside a job */
const char *dist_backend(void);   /* "Open MPI" or "none (built without MPI)" */
/* Threads for this process when none were asked for: the cores it is bound to, or
 * the machine's cores shared by the job's processes on it. */
int dist_default_threads(void);
/* In place, every rank gets the elementwise sum (the same bits on every rank). */
int dist_allreduce_sum(float *x, size_t n);
int dist_allreduce_f64(double *x, size_t n, int op);   /* op: DIST_SUM/MIN/MAX */
int dist_broadcast(void *buf, size_t bytes, int root);
int dist_barrier(void);
/* Every rank leaves with the same code: the error of the lowest failing rank, its
 * message copied to all (so rank 0, which prints, can tell it). One process: rc. */
int dist_agree(int rc);
void dist_finalize(void);
/* 1 once an MPI call has failed (a peer died): no collective can be trusted after it. */
int dist_failed(void);
/* The message written to stderr if SIGTERM/SIGINT/SIGHUP ends the process (how mpirun
 * stops the other ranks when one dies); the process then dies of that signal.
 * Call again to update it (cheap, signal-safe); NULL restores the default handlers. */
void dist_on_stop(const char *msg);

/* ================================================================ the critic
 * (train/critic_train.c, train/critic_score.c) docs/CRITIC.md */

/* Up to this many distinct synth.fault kinds are told apart in the reports. */
#define CRITIC_MAX_KINDS 15

typedef struct CriticOptions {
    const char *annotations, *regions, *images_root;  /* annotations: a corpus + "votes" (required) */
    const char *tokenizer;                            /* .tok (required unless init) */
    const char *config;                               /* nano | small | base */
    int region_input;                                 /* REGION_INPUT_* */
    const char *init;                                 /* student checkpoint for the trunk, or NULL;
                                                         its config and tokenizer are used */
    const char *out;                                  /* critic checkpoint (required) */
    long steps, warmup;
    int batch;
    double lr, min_lr, weight_decay, clip;
    uint64_t seed;
    double val_frac;                                  /* held-out share, by a hash of the record index */
    size_t cache_bytes;
    int log_every;
    int quiet;
} CriticOptions;
void critic_options_default(CriticOptions *o);

/* Per fault kind of the held-out records (from synth.fault; "good" for null). */
typedef struct CriticKindStat {
    char name[32];
    long n;
    double mean_score;
    double recall;        /* faulty kinds: share scored < 0.5 (rejected); good: share >= 0.5 */
    double auc;           /* faulty kinds: ROC-AUC of good vs this kind; good: NAN */
} CriticKindStat;

typedef struct CriticResult {
    long steps_done, n_train, n_val;
    double train_loss;                    /* mean over the last 50 steps */
    double val_loss, val_acc, val_auc;    /* against the vote labels; NAN with no val */
    double val_auc_fault;                 /* against accept ⇔ synth.fault == null; NAN without synth */
    long val_with_fault;                  /* held-out records that carry synth.fault */
    int n_kinds;
    CriticKindStat kinds[CRITIC_MAX_KINDS + 1];
    double seconds;
} CriticResult;

/* Train the critic on the annotations (label = strict majority of the votes is
 * "accept"), report on the held-out split, save to o->out. VCM_EINPUT for bad data
 * (file:line), VCM_ERR for runtime failures. */
int train_critic(const CriticOptions *o, CriticResult *res);

/* ROC-AUC of scores against labels (1 positive, 0 negative; others skipped), ties
 * counted half. NAN when a class is empty. */
double critic_roc_auc(const double *score, const signed char *label, long n);

/* Score a corpus: every record written back, byte for byte, with "prediction" set
 * (replaced where present, else added as the last key). Streaming: batches of records
 * read, scored, written; never the whole corpus. out NULL or "-": stdout; a name
 * ending .gz: gzip. The output is written atomically. */
typedef struct CriticScoreOptions {
    const char *model, *corpus, *regions, *images_root, *out;
    int batch;
    size_t cache_bytes;
    int quiet;
} CriticScoreOptions;
typedef struct CriticScoreResult { long records; double mean_score, seconds; } CriticScoreResult;
int critic_score_corpus(const CriticScoreOptions *o, CriticScoreResult *res);

/* Keep the records whose prediction >= threshold (streaming, same output rules). A
 * record without a numeric prediction is VCM_EINPUT naming file and line. */
int critic_filter(const char *corpus, const char *out, double threshold, long *kept, long *total);

/* A scored corpus against its hidden synth.fault: ROC-AUC, and precision / recall of
 * "accept" (prediction >= threshold) for the good records. */
typedef struct CriticEval {
    long records, with_truth, good;
    double auc, precision, recall, accuracy, threshold, kept_share;
    int n_kinds;
    CriticKindStat kinds[CRITIC_MAX_KINDS + 1];
} CriticEval;
int critic_eval(const char *scored, double threshold, CriticEval *ev);

#endif
