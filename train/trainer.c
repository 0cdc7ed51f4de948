/* The student's training loop: shuffled batches by seed, gradient accumulation,
 * clipping, AdamW with warmup + cosine, validation, periodic atomic checkpoints,
 * bit-exact resume, a CSV log, progress, and a guard against non-finite losses. */
#include "train/train.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

void train_options_default(TrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->config = "nano";
    o->region_input = REGION_INPUT_ROI;
    o->images_root = ".";
    o->steps = 1000;
    o->batch = 32;
    o->accum = 1;
    o->lr = 1e-3;
    o->min_lr = 1e-4;
    o->weight_decay = 0.01;
    o->clip = 1.0;
    o->warmup = 100;
    o->seed = 1;
    o->ckpt_every = 500;
    o->val_every = 250;
    o->log_every = 10;
    o->val_batches = 4;
    o->cache_bytes = (size_t)1 << 30;
}


/* The order of an epoch, a function of (seed, epoch) only. Plain files: a Fisher–Yates
 * shuffle. Gzip: reading records in a uniform random order would inflate up to 1 MiB
 * per record, so the spans between access points are shuffled and the records of
 * GZ_SHUFFLE_GROUP spans at a time mixed together (jsonl_index_shuffle). */
static int epoch_order(const JsonlIndex *ix, long *perm, long n, uint64_t seed, long epoch) {
    if (ix->gz) return jsonl_index_shuffle(ix, vcm_hash64(seed ^ vcm_hash64((uint64_t)epoch + 0x51ED)),
                                           GZ_SHUFFLE_GROUP, perm);
    for (long i = 0; i < n; i++) perm[i] = i;
    uint64_t s = vcm_hash64(seed ^ vcm_hash64((uint64_t)epoch + 0x51ED));
    vcm_shuffle_with(perm, (size_t)n, sizeof *perm, vcm_hash_chain_next, &s);
    return VCM_OK;
}

/* The options that must not change when a run is resumed (else it is another run). */
static char *options_json(const TrainOptions *o) {
    json_t *j = json_pack("{s:s, s:s, s:I, s:i, s:i, s:f, s:f, s:f, s:f, s:I, s:I}", "config", o->config,
                          "region_input", region_input_name(o->region_input), "seed", (json_int_t)o->seed,
                          "batch", o->batch, "accum", o->accum, "lr", o->lr, "min_lr", o->min_lr,
                          "weight_decay", o->weight_decay, "clip", o->clip, "warmup", (json_int_t)o->warmup,
                          "steps", (json_int_t)o->steps);
    char *s = j ? json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static int check_resume_options(const char *path, const char *saved, const TrainOptions *o) {
    json_t *a = json_loads(saved ? saved : "{}", 0, NULL);
    char *now = options_json(o);
    json_t *b = now ? json_loads(now, 0, NULL) : NULL;
    free(now);
    int rc = VCM_OK;
    const char *keys[] = {"config", "region_input", "seed", "batch", "accum", "lr", "min_lr", "weight_decay", "clip", "warmup"};
    for (size_t i = 0; a && b && i < sizeof keys / sizeof keys[0] && !rc; i++) {
        json_t *x = json_object_get(a, keys[i]), *y = json_object_get(b, keys[i]);
        if (!json_equal(x, y)) {
            char *xs = x ? json_dumps(x, JSON_ENCODE_ANY) : NULL, *ys = y ? json_dumps(y, JSON_ENCODE_ANY) : NULL;
            rc = vcm_fail(VCM_EINPUT, "%s: cannot resume: --%s was %s in the saved run and is %s now", path, keys[i],
                          xs ? xs : "absent", ys ? ys : "absent");
            free(xs);
            free(ys);
        }
    }
    if (!a || !b) rc = vcm_fail(VCM_EINPUT, "%s: the saved training options are unreadable", path);
    json_decref(a);
    json_decref(b);
    return rc;
}

/* On resume, drop CSV rows past the resumed step (written after the checkpoint by the
 * run that stopped), so the log reads as one uninterrupted run. The kept rows replace the
 * log atomically: a failure leaves the old log whole. NULL with the reason in vcm_error. */
static FILE *open_log(const char *path, long start_step) {
    FILE *in = start_step > 0 ? fopen(path, "r") : NULL;
    if (in) {
        AtomicFile af;
        if (atomic_file_open(&af, path)) { fclose(in); return NULL; }
        char line[4096];
        int first = 1;
        while (fgets(line, sizeof line, in)) {
            if (first || atol(line) <= start_step) fputs(line, af.f);
            first = 0;
        }
        int bad = ferror(in);
        fclose(in);
        if (bad) {
            atomic_file_abort(&af);
            vcm_fail(VCM_ERR, "%s: read error", path);
            return NULL;
        }
        if (atomic_file_commit(&af)) return NULL;
        FILE *f = fopen(path, "a");
        if (!f) vcm_fail(VCM_ERR, "%s: cannot append: %s", path, strerror(errno));
        return f;
    }
    FILE *f = fopen(path, "w");
    if (!f) vcm_fail(VCM_ERR, "%s: cannot create: %s", path, strerror(errno));
    else fprintf(f, "step,loss,lr,grad_norm,samples_per_s,val_loss,elapsed_s\n");
    return f;
}

/* The validation loss: the mean of the first n_batches batches' mean losses. With
 * several ranks, rank r takes batches r, r + ranks, ... and the sums are combined, so
 * the value is the one process's. NAN when a batch fails. */
static int validation_loss(Dataset *val, Student *m, Graph *g, BatchBuf *bb, int batch, int n_batches, double *out) {
    double acc[2] = {0, 0};   /* sum of batch means, batches */
    int grad = g->grad_enabled;
    g->grad_enabled = 0;
    long *idx = malloc(sizeof(long) * (size_t)batch);
    if (!idx) acc[0] = NAN;
    for (int k = dist_rank(); idx && k < n_batches; k += dist_size()) {
        long start = (long)k * batch;
        if (start >= dataset_size(val)) break;
        int n = 0;
        for (long r = start; r < start + batch && r < dataset_size(val); r++) idx[n++] = r;
        graph_reset(g);
        Tensor *l = dataset_batch(val, idx, n, 0, 0, EXAMPLE_EVAL, bb) ? NULL : student_loss(g, m, &bb->b);
        if (!l) { acc[0] = NAN; break; }
        acc[0] += l->data[0];
        acc[1] += 1;
    }
    free(idx);
    g->grad_enabled = grad;
    int rc = dist_allreduce_f64(acc, 2, DIST_SUM);
    *out = acc[1] > 0 ? acc[0] / acc[1] : NAN;
    return rc;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---------------------------------------------------------------- data parallelism
 * A step's global batch is --accum micro-batches of --batch samples, sample s of the
 * run being the same record whatever the number of ranks. The ranks share it so that
 * the gradient is the one process's: either each takes accum/ranks whole micro-batches
 * (when accum is a multiple of the rank count), or every micro-batch is cut into
 * ranks slices of batch/ranks samples; then a slice's mean loss is weighted by its
 * share of the micro-batch's target tokens (the loss is a mean over tokens), which
 * needs the micro-batch's token count: one small all-reduce per micro-batch. */
typedef struct Shard {
    int split;        /* 1: micro-batches are cut in slices; 0: whole micro-batches */
    int a0, a1;       /* this rank's micro-batches [a0, a1) */
    int i0, n;        /* its samples [i0, i0 + n) of each */
} Shard;

static int shard_plan(const TrainOptions *o, int rank, int ranks, Shard *sh) {
    memset(sh, 0, sizeof *sh);
    if (o->accum % ranks == 0) {
        sh->a0 = rank * (o->accum / ranks);
        sh->a1 = sh->a0 + o->accum / ranks;
        sh->n = o->batch;
    } else if (o->batch % ranks == 0) {
        sh->split = 1;
        sh->a1 = o->accum;
        sh->n = o->batch / ranks;
        sh->i0 = rank * sh->n;
    } else {
        return vcm_fail(VCM_EINPUT, "train: the global batch (--batch %d x --accum %d = %d samples a step) cannot be "
                        "shared by %d ranks: --batch or --accum must be a multiple of the number of ranks",
                        o->batch, o->accum, o->batch * o->accum, ranks);
    }
    return VCM_OK;
}

static long count_targets(const Batch *b) {
    long n = 0;
    for (long i = 0; i < (long)b->B * b->T; i++) n += b->targets[i] >= 0;
    return n;
}

/* Rank 0's weights, moments and training state to every rank (a resumed run: rank 0
 * alone read the checkpoint). */
static int share_state(Student *m, TrainState *st) {
    uint64_t n = m->ps.n;
    int rc = dist_broadcast(&n, sizeof n, 0);
    if (!rc && n != m->ps.n)
        rc = vcm_fail(VCM_EINPUT, "rank %d: the checkpoint's model has %llu values, this rank's %zu", dist_rank(),
                      (unsigned long long)n, m->ps.n);
    if ((rc = dist_agree(rc))) return rc;
    TrainState s = *st;
    s.options_json = NULL;
    rc = dist_broadcast(&s, sizeof s, 0);
    if (!rc) rc = dist_broadcast(m->ps.params, m->ps.n * sizeof(float), 0);
    if (!rc) rc = dist_broadcast(m->ps.m, m->ps.n * sizeof(float), 0);
    if (!rc) rc = dist_broadcast(m->ps.v, m->ps.n * sizeof(float), 0);
    if (!rc && dist_rank() != 0) {
        free(st->options_json);
        *st = s;
    }
    return rc;
}

/* The ranks apply identical updates to identical gradients, so their weights must be
 * equal bit for bit; checked before each checkpoint (a CRC of the weights). */
static int check_replicas(const Student *m, long step) {
    if (dist_size() == 1) return VCM_OK;
    uLong crc = crc32_z(0L, (const Bytef *)m->ps.params, m->ps.n * sizeof(float));
    uint64_t mine = crc, root = crc;
    int rc = dist_broadcast(&root, sizeof root, 0);
    double differ = mine != root;
    if (!rc) rc = dist_allreduce_f64(&differ, 1, DIST_SUM);
    if (!rc && differ > 0)
        rc = vcm_fail(VCM_ERR, "step %ld: the weights of %d rank(s) differ from rank 0's (the all-reduce gave "
                      "different sums on different ranks); not saved", step, (int)differ);
    return rc;
}

/* What rank 0 says if a signal ends it (mpirun's way of stopping the job when a rank
 * dies): where the run is and how to continue. */
static void stop_message(const TrainOptions *o, long step, long ckpt_step, int saving) {
    char msg[1024];
    int k = snprintf(msg, sizeof msg, "\nvcm train: stopped by a signal %s step %ld", saving ? "while saving after" : "after",
                     step);
    if (dist_size() > 1)
        k += snprintf(msg + k, sizeof msg - (size_t)k, " (rank 0 of %d; if another rank died, the launcher's message names it)",
                      dist_size());
    if (ckpt_step >= 0)
        snprintf(msg + k, sizeof msg - (size_t)k, ".\nThe last checkpoint is %s (step %ld)%s. Continue with the same command "
                 "and --resume, on any number of ranks that divides --batch %d or --accum %d.\n", o->out, ckpt_step,
                 saving ? ", intact: a checkpoint is replaced only once complete" : "", o->batch, o->accum);
    else
        snprintf(msg + k, sizeof msg - (size_t)k, ". No checkpoint was written yet.\n");
    dist_on_stop(msg);
}

/* ---------------------------------------------------------------- one run
 * What the pieces of train_student share. The last checkpoint written (-1: none yet)
 * is ts.ckpt_step, which the step's guard and the stop message name. */
typedef struct Run {
    const TrainOptions *o;
    int rank, ranks, lead, quiet;
    Shard sh;
    Tokenizer tok;
    ModelConfig cfg;
    Student m;
    TrainState st;            /* st.opt is the optimiser the step updates */
    int resumed;
    long start;               /* the step the run starts from */
    Dataset train, val;
    int have_val;
    long n;                   /* training records */
    BatchBuf bb;
    Graph g;
    long *perm, *idx;         /* the epoch's order, a micro-batch's records */
    long epoch;               /* whose order perm holds; -1: none */
    FILE *log;
    char *opts;               /* options_json, saved into every checkpoint */
    int stop_set;             /* the signal message is installed */
    TrainStep ts;
} Run;

/* The step's micro-batch: samples s0 … s0 + sh.n of the run's sample stream, where
 * sample s is record perm[s mod n] of epoch s / n. */
static int micro_batch(void *ctx, Graph *g, long step, int a, Tensor **loss, double *weight) {
    Run *r = ctx;
    const TrainOptions *o = r->o;
    uint64_t s0 = ((uint64_t)step * (uint64_t)o->accum + (uint64_t)a) * (uint64_t)o->batch + (uint64_t)r->sh.i0;
    int rc = VCM_OK;
    for (int i = 0; i < r->sh.n && !rc; i++) {
        uint64_t s = s0 + (uint64_t)i;
        long epoch = (long)(s / (uint64_t)r->n), pos = (long)(s % (uint64_t)r->n);
        if (epoch != r->epoch) {
            rc = epoch_order(&r->train.index, r->perm, r->n, o->seed, epoch);
            r->epoch = rc ? -1 : epoch;
        }
        if (!rc) r->idx[i] = r->perm[pos];
    }
    if (!rc) rc = dataset_batch(&r->train, r->idx, r->sh.n, o->seed, s0, EXAMPLE_TRAIN, &r->bb);
    if (rc) return rc;
    *weight = (double)count_targets(&r->bb.b);   /* the loss is a mean over target tokens */
    *loss = student_loss(g, &r->m, &r->bb.b);
    return VCM_OK;
}

/* The tokenizer and the model's config, checked against each other. */
static int setup_config(Run *r) {
    const TrainOptions *o = r->o;
    int rc = bpe_load(o->tokenizer, &r->tok);
    if (!rc) rc = model_config_named(o->config, &r->cfg);
    if (!rc) {
        r->cfg.region_input = o->region_input;
        if (r->tok.vocab > r->cfg.vocab)
            rc = vcm_fail(VCM_EINPUT, "%s: %d tokens, more than the %s model's vocabulary of %d", o->tokenizer,
                          r->tok.vocab, r->cfg.name, r->cfg.vocab);
    }
    return dist_agree(rc);
}

/* The model and the training state: from --out when resuming (rank 0 reads the
 * checkpoint and hands it to the others: only it needs to see --out), else new. */
static int setup_model(Run *r) {
    const TrainOptions *o = r->o;
    r->resumed = r->lead && o->resume && file_exists(o->out);
    int rc = dist_broadcast(&r->resumed, sizeof r->resumed, 0);
    if (rc) return rc;
    if (!r->resumed) {
        rc = student_init(&r->m, &r->cfg, o->seed);   /* a function of the seed: equal on every rank */
        if ((rc = dist_agree(rc))) return rc;
        r->st.opt = adamw_default();
        r->st.opt.weight_decay = (float)o->weight_decay;
        r->st.shuffle_seed = o->seed;
        return VCM_OK;
    }
    if (r->lead) {
        rc = student_load(o->out, &r->m, &r->st);
        if (!rc) rc = check_resume_options(o->out, r->st.options_json, o);
        if (!rc && strcmp(r->m.cfg.name, r->cfg.name))
            rc = vcm_fail(VCM_EINPUT, "%s: holds a %s model, not %s", o->out, r->m.cfg.name, r->cfg.name);
        free(r->st.options_json);   /* checked; each save writes this run's options */
        r->st.options_json = NULL;
    } else {
        rc = student_init(&r->m, &r->cfg, o->seed);
    }
    if ((rc = dist_agree(rc))) return rc;
    return r->ranks > 1 ? share_state(&r->m, &r->st) : VCM_OK;
}

/* The datasets, the buffers and the log. */
static int setup_data(Run *r) {
    const TrainOptions *o = r->o;
    int rc = dataset_open(&r->train, o->corpus, o->regions, o->images_root, &r->tok, &r->cfg, o->cache_bytes, o->skip_bad);
    if (!rc && o->val_corpus) {
        rc = dataset_open(&r->val, o->val_corpus, o->regions, o->images_root, &r->tok, &r->cfg, o->cache_bytes / 4,
                          o->skip_bad);
        r->have_val = !rc;
    }
    /* validation batches are whole --batch ones, on whichever rank takes them */
    if (!rc) rc = batchbuf_alloc(&r->bb, &r->cfg, r->have_val && o->batch > r->sh.n ? o->batch : r->sh.n);
    if (!rc) rc = graph_init(&r->g, (size_t)64 << 20);
    r->n = r->train.corpus_path ? dataset_size(&r->train) : 0;
    if (!rc) {
        r->perm = malloc(sizeof(long) * (size_t)(r->n > 0 ? r->n : 1));
        r->idx = malloc(sizeof(long) * (size_t)r->sh.n);
        if (!r->perm || !r->idx) rc = vcm_fail(VCM_ERR, "out of memory");
    }
    if (!rc && r->lead && o->log_csv && !(r->log = open_log(o->log_csv, r->start)))
        rc = vcm_fail(VCM_ERR, "cannot write the log: %s", vcm_error());
    return rc;
}

/* Everything the loop needs, agreed on by every rank. */
static int setup(Run *r) {
    const TrainOptions *o = r->o;
    r->rank = dist_rank();
    r->ranks = dist_size();
    r->lead = r->rank == 0;
    r->quiet = o->quiet || !r->lead;
    r->epoch = -1;
    int rc = shard_plan(o, r->rank, r->ranks, &r->sh);
    /* An --out that cannot be written is found now, not after the first --ckpt-every steps. */
    if (!rc && r->lead) rc = atomic_file_probe(o->out);
    if ((rc = dist_agree(rc))) return rc;
    if ((rc = setup_config(r)) || (rc = setup_model(r))) return rc;
    r->start = (long)r->st.step;
    r->opts = options_json(o);
    /* The tokenizer goes into every checkpoint, so the model file stands alone. */
    free(r->m.tokenizer_text);
    if (!(r->m.tokenizer_text = bpe_to_text(&r->tok))) rc = VCM_ERR;
    if (!rc) rc = setup_data(r);
    if ((rc = dist_agree(rc))) return rc;
    r->ts = (TrainStep){
        .ps = &r->m.ps, .opt = &r->st.opt, .g = &r->g,
        .sched = {o->lr, o->min_lr, o->warmup, o->steps}, .clip = o->clip,
        .accum = o->accum, .micro0 = r->sh.a0, .micro1 = r->sh.a1, .split = r->sh.split, .ranks = r->ranks,
        .micro = micro_batch, .ctx = r,
        .ckpt = o->out, .ckpt_step = r->resumed ? r->start : -1,
    };
    return VCM_OK;
}

static void run_free(Run *r) {
    if (r->stop_set) dist_on_stop(NULL);
    if (r->log) fclose(r->log);
    free(r->opts);
    free(r->perm);
    free(r->idx);
    train_state_free(&r->st);
    graph_free(&r->g);
    batchbuf_free(&r->bb);
    if (r->have_val) dataset_close(&r->val);
    if (r->train.corpus_path) dataset_close(&r->train);
    if (r->m.ps.params) student_free(&r->m);
    bpe_free(&r->tok);
}

/* After every --ckpt-every steps and the last: the replicas checked, rank 0 saves. */
static int checkpoint(Run *r, const Progress *pr) {
    long step = (long)r->st.step;
    int rc = check_replicas(&r->m, step);
    if (rc) return rc;
    /* A finite loss and gradient norm can still make an update overflow (the guard runs
     * before it): a save never writes weights that are not finite, so the checkpoint
     * the messages call the last good one is good. Replicas agree, so every rank stops. */
    if (!isfinite(vcm_sum_squares(r->m.ps.params, r->m.ps.n))) {
        if (r->ts.ckpt_step < 0)
            return vcm_fail(VCM_ERR, "step %ld: the weights are not finite after the update; stopped before any "
                                     "checkpoint was written (try a lower --lr)", step);
        return vcm_fail(VCM_ERR, "step %ld: the weights are not finite after the update; not saved. The last good "
                                 "checkpoint is %s (step %ld)", step, r->o->out, r->ts.ckpt_step);
    }
    if (r->lead) {
        stop_message(r->o, step, r->ts.ckpt_step, 1);
        r->st.options_json = r->opts;
        rc = student_save(r->o->out, &r->m, &r->st);
        r->st.options_json = NULL;
    }
    if ((rc = dist_agree(rc))) return rc;
    r->ts.ckpt_step = step;
    if (!r->quiet && r->ranks > 1 && !pr->tty) fprintf(stderr, "train: checkpoint %s (step %ld)\n", r->o->out, step);
    return VCM_OK;
}

/* The validation loss after every --val-every steps and the last (*vloss NAN otherwise). */
static int validate(Run *r, double *vloss, TrainResult *res) {
    const TrainOptions *o = r->o;
    long step = (long)r->st.step;
    if (!r->have_val || o->val_every <= 0 || (step % o->val_every != 0 && step != o->steps)) return VCM_OK;
    int rc = validation_loss(&r->val, &r->m, &r->g, &r->bb, o->batch, o->val_batches, vloss);
    if (!rc) res->last_val_loss = *vloss;
    return rc;
}

/* Every step on a terminal; every --log-every steps, the last and those validated otherwise. */
static void show_progress(const Run *r, Progress *pr, const StepStats *ss, double sps, double vloss) {
    long step = (long)r->st.step;
    if (r->quiet || !(pr->tty || step % r->o->log_every == 0 || step == r->o->steps || isfinite(vloss))) return;
    if (isfinite(vloss))
        progress_update(pr, step, "loss %.4f val %.4f lr %.2e %.1f samples/s", ss->loss, vloss, ss->lr, sps);
    else
        progress_update(pr, step, "loss %.4f lr %.2e %.1f samples/s", ss->loss, ss->lr, sps);
}

/* A row of the CSV log (vloss NAN: none at this step). */
static void log_row(FILE *log, long step, const StepStats *ss, double sps, double vloss, double elapsed) {
    fprintf(log, "%ld,%.6f,%.6g,%.6f,%.2f,", step, ss->loss, ss->lr, ss->norm, sps);
    if (isfinite(vloss)) fprintf(log, "%.6f", vloss);
    fprintf(log, ",%.2f\n", elapsed);
    fflush(log);
}

static void announce(const Run *r) {
    if (r->quiet) return;
    fprintf(stderr, "train: %s model, %zu parameters, %ld records, batch %d x %d, %s from step %ld", r->cfg.name,
            params_count(&r->m.ps), r->n, r->o->batch, r->o->accum, r->resumed ? "resuming" : "starting", r->start);
    if (r->ranks > 1)
        fprintf(stderr, ", %d ranks x %d thread(s), each %s", r->ranks, vcm_threads(),
                r->sh.split ? "a slice of every micro-batch" : "whole micro-batches");
    fputc('\n', stderr);
}

/* Steps start … --steps (or --stop-after): the update, the data cursor, validation,
 * the log, progress, checkpoints. */
static int run_loop(Run *r, TrainResult *res) {
    const TrainOptions *o = r->o;
    Progress pr;
    progress_start(&pr, r->start, o->steps);
    announce(r);
    if (r->lead) { stop_message(o, r->start, r->ts.ckpt_step, 0); r->stop_set = 1; }
    double t_start = now_seconds();
    long samples_done = 0;
    const long global_batch = (long)o->batch * o->accum;
    int rc;
    for (long step = r->start; step < o->steps; step++) {
        double t0 = now_seconds();
        StepStats ss;
        if ((rc = train_step(&r->ts, step, &ss))) return rc;
        TrainState *st = &r->st;
        st->step = step + 1;
        long done_samples = st->step * global_batch;
        st->epoch = done_samples / r->n;
        st->position = done_samples % r->n;
        double sps = (double)global_batch / (now_seconds() - t0);
        samples_done += global_batch;
        res->last_loss = ss.loss;
        double vloss = NAN;
        if ((rc = validate(r, &vloss, res))) return rc;
        if (r->log) log_row(r->log, (long)st->step, &ss, sps, vloss, now_seconds() - t_start);
        show_progress(r, &pr, &ss, sps, vloss);
        if (((o->ckpt_every > 0 && st->step % o->ckpt_every == 0) || st->step == o->steps) && (rc = checkpoint(r, &pr)))
            return rc;
        if (r->lead) stop_message(o, st->step, r->ts.ckpt_step, 0);
        res->steps_done = st->step;
        if (o->stop_after > 0 && st->step >= o->stop_after) break;
    }
    if (!r->quiet) progress_end(&pr);
    res->seconds = now_seconds() - t_start;
    res->samples_per_s = res->seconds > 0 ? (double)samples_done / res->seconds : 0;
    double skipped = (double)r->train.n_skipped;
    rc = dist_allreduce_f64(&skipped, 1, DIST_SUM);
    res->skipped = (long)skipped;
    return rc;
}

int train_student(const TrainOptions *o, TrainResult *res) {
    memset(res, 0, sizeof *res);
    res->last_val_loss = NAN;
    /* regions may be NULL: then every record must carry "references" */
    if (!o->corpus || !o->tokenizer || !o->out)
        return vcm_fail(VCM_EINPUT, "train: corpus, tokenizer and out are required");
    if (o->batch <= 0 || o->accum <= 0 || o->steps <= 0)
        return vcm_fail(VCM_EINPUT, "train: batch, accum and steps must be positive");
    Run r = {.o = o};
    int rc = setup(&r);
    if (!rc) rc = run_loop(&r, res);
    /* The log's last rows reach the disk only now: a full disk there is a failed run. */
    if (r.log) {
        int earlier = ferror(r.log);
        errno = 0;
        int closed = fclose(r.log), e = errno;
        r.log = NULL;
        if ((earlier || closed) && !rc)
            rc = vcm_fail(VCM_ERR, "%s: writing the log failed: %s", o->log_csv,
                          closed && e ? strerror(e) : "a write during the run failed (a full disk?)");
    }
    run_free(&r);
    return rc;
}
