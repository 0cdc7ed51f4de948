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
    vcm_shuffle(perm, (size_t)n, sizeof *perm, &s);
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

/* Every rank leaves with the same code: the error of the lowest failing rank, its
 * message copied to all (so rank 0, which prints, can tell it). One process: rc. */
static int agree(int rc) {
    if (dist_size() == 1) return rc;
    double who = rc ? dist_rank() : dist_size();
    if (dist_allreduce_f64(&who, 1, DIST_MIN)) return VCM_ERR;
    if ((int)who >= dist_size()) return VCM_OK;
    struct { int code; char msg[1000]; } e = {rc, ""};
    if ((int)who == dist_rank()) snprintf(e.msg, sizeof e.msg, "%s", vcm_error());
    if (dist_broadcast(&e, sizeof e, (int)who)) return VCM_ERR;
    if ((int)who == dist_rank()) return rc;
    return vcm_fail(e.code ? e.code : VCM_ERR, "rank %d: %s", (int)who, e.msg);
}

/* Rank 0's weights, moments and training state to every rank (a resumed run: rank 0
 * alone read the checkpoint). */
static int share_state(Student *m, TrainState *st) {
    uint64_t n = m->ps.n;
    int rc = dist_broadcast(&n, sizeof n, 0);
    if (!rc && n != m->ps.n)
        rc = vcm_fail(VCM_EINPUT, "rank %d: the checkpoint's model has %llu values, this rank's %zu", dist_rank(),
                      (unsigned long long)n, m->ps.n);
    if ((rc = agree(rc))) return rc;
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

int train_student(const TrainOptions *o, TrainResult *res) {
    memset(res, 0, sizeof *res);
    res->last_val_loss = NAN;
    /* regions may be NULL: then every record must carry "references" */
    if (!o->corpus || !o->tokenizer || !o->out)
        return vcm_fail(VCM_EINPUT, "train: corpus, tokenizer and out are required");
    if (o->batch <= 0 || o->accum <= 0 || o->steps <= 0)
        return vcm_fail(VCM_EINPUT, "train: batch, accum and steps must be positive");
    const int rank = dist_rank(), ranks = dist_size(), lead = rank == 0;
    Shard sh;
    int rc = shard_plan(o, rank, ranks, &sh);
    if (rc) return rc;
    Tokenizer tok = {0};
    Student m = {0};
    Dataset train = {0}, val = {0};
    BatchBuf bb = {0};
    Graph g = {0};
    TrainState st = {0};
    long *perm = NULL, *idx = NULL;
    FILE *log = NULL;
    char *opts = NULL;
    int have_val = 0, stop_set = 0;
    long last_ckpt_step = -1;

    ModelConfig cfg;
    rc = bpe_load(o->tokenizer, &tok);
    if (!rc) rc = model_config_named(o->config, &cfg);
    if (!rc) {
        cfg.region_input = o->region_input;
        if (tok.vocab > cfg.vocab)
            rc = vcm_fail(VCM_EINPUT, "%s: %d tokens, more than the %s model's vocabulary of %d", o->tokenizer,
                          tok.vocab, cfg.name, cfg.vocab);
    }
    if ((rc = agree(rc))) goto done;

    /* Rank 0 reads the checkpoint and hands it to the others: only it needs to see --out. */
    int resumed = lead && o->resume && file_exists(o->out);
    if ((rc = dist_broadcast(&resumed, sizeof resumed, 0))) goto done;
    if (resumed) {
        if (lead) {
            rc = student_load(o->out, &m, &st);
            if (!rc) rc = check_resume_options(o->out, st.options_json, o);
            if (!rc && strcmp(m.cfg.name, cfg.name))
                rc = vcm_fail(VCM_EINPUT, "%s: holds a %s model, not %s", o->out, m.cfg.name, cfg.name);
            free(st.options_json);   /* checked; each save writes this run's options */
            st.options_json = NULL;
        } else {
            rc = student_init(&m, &cfg, o->seed);
        }
        if ((rc = agree(rc))) goto done;
        if (ranks > 1 && (rc = share_state(&m, &st))) goto done;
        last_ckpt_step = (long)st.step;
    } else {
        rc = student_init(&m, &cfg, o->seed);   /* a function of the seed: equal on every rank */
        if ((rc = agree(rc))) goto done;
        st.opt = adamw_default();
        st.opt.weight_decay = (float)o->weight_decay;
        st.shuffle_seed = o->seed;
    }
    long start = (long)st.step;
    opts = options_json(o);
    /* The tokenizer goes into every checkpoint, so the model file stands alone. */
    free(m.tokenizer_text);
    if (!(m.tokenizer_text = bpe_to_text(&tok))) rc = VCM_ERR;

    if (!rc) rc = dataset_open(&train, o->corpus, o->regions, o->images_root, &tok, &cfg, o->cache_bytes, o->skip_bad);
    if (!rc && o->val_corpus) {
        rc = dataset_open(&val, o->val_corpus, o->regions, o->images_root, &tok, &cfg, o->cache_bytes / 4, o->skip_bad);
        have_val = !rc;
    }
    /* validation batches are whole --batch ones, on whichever rank takes them */
    if (!rc) rc = batchbuf_alloc(&bb, &cfg, have_val && o->batch > sh.n ? o->batch : sh.n);
    if (!rc) rc = graph_init(&g, (size_t)64 << 20);
    long N = train.corpus_path ? dataset_size(&train) : 0;
    if (!rc) {
        perm = malloc(sizeof(long) * (size_t)(N > 0 ? N : 1));
        idx = malloc(sizeof(long) * (size_t)sh.n);
        if (!perm || !idx) rc = vcm_fail(VCM_ERR, "out of memory");
    }
    if (!rc && lead && o->log_csv && !(log = open_log(o->log_csv, start)))
        rc = vcm_fail(VCM_ERR, "cannot write the log: %s", vcm_error());
    if ((rc = agree(rc))) goto done;

    const int quiet = o->quiet || !lead;
    LrSchedule sched = {o->lr, o->min_lr, o->warmup, o->steps};
    long cur_epoch = -1;
    Progress pr;
    progress_start(&pr, start, o->steps);
    if (!quiet) {
        fprintf(stderr, "train: %s model, %zu parameters, %ld records, batch %d x %d, %s from step %ld", cfg.name,
                params_count(&m.ps), N, o->batch, o->accum, resumed ? "resuming" : "starting", start);
        if (ranks > 1)
            fprintf(stderr, ", %d ranks x %d thread(s), each %s", ranks, vcm_threads(),
                    sh.split ? "a slice of every micro-batch" : "whole micro-batches");
        fputc('\n', stderr);
    }
    if (lead) { stop_message(o, start, last_ckpt_step, 0); stop_set = 1; }
    double t_start = now_seconds();
    long samples_done = 0;
    const long global_batch = (long)o->batch * o->accum;
    for (long step = start; step < o->steps; step++) {
        double t0 = now_seconds();
        params_unset_grads(&m.ps);
        double loss_sum = 0;
        int lrc = VCM_OK;   /* this rank's failure: the others learn of it below */
        for (int a = sh.a0; a < sh.a1; a++) {
            uint64_t s0 = ((uint64_t)step * (uint64_t)o->accum + (uint64_t)a) * (uint64_t)o->batch + (uint64_t)sh.i0;
            for (int i = 0; i < sh.n && !lrc; i++) {
                uint64_t s = s0 + (uint64_t)i;
                long epoch = (long)(s / (uint64_t)N), pos = (long)(s % (uint64_t)N);
                if (epoch != cur_epoch) {
                    lrc = epoch_order(&train.index, perm, N, o->seed, epoch);
                    cur_epoch = lrc ? -1 : epoch;
                }
                if (!lrc) idx[i] = perm[pos];
            }
            if (!lrc) lrc = dataset_batch(&train, idx, sh.n, o->seed, s0, EXAMPLE_TRAIN, &bb);
            /* The loss of the micro-batch is the mean over its target tokens: a slice's
             * mean counts for its share of them. */
            float scale = o->accum > 1 ? 1.0f / (float)o->accum : 1.0f;
            if (sh.split && ranks > 1) {
                double mine = lrc ? 0 : (double)count_targets(&bb.b);
                double t[2] = {mine, lrc != 0};
                if ((rc = dist_allreduce_f64(t, 2, DIST_SUM))) goto done;
                if (t[1] > 0) break;   /* a rank failed (its lrc is set): all stop, told below */
                scale = (float)(mine / t[0] / o->accum);
            }
            if (lrc) break;
            graph_reset(&g);
            Tensor *loss = student_loss(&g, &m, &bb.b);
            if (scale != 1.0f) loss = op_scale(&g, loss, scale);
            if (!loss || graph_backward(&g, loss)) { lrc = vcm_fail(VCM_ERR, "step %ld: %s", step + 1, vcm_error()); break; }
            loss_sum += loss->data[0];
        }
        /* One all-reduce of the whole flat gradient, then of the loss. No bucketing or
         * overlap with the backward pass: the all-reduce is a few per cent of a step
         * at most (docs/CLUSTER.md, measured and modelled), all overlap could win. */
        double nonfinite = 0;
        if (ranks > 1) {
            params_settle_grads(&m.ps); /* a parameter no backward reached: zeros */
            if ((rc = dist_allreduce_sum(m.ps.grads, m.ps.n))) goto done;
            double v[2] = {loss_sum, lrc != 0};
            if ((rc = dist_allreduce_f64(v, 2, DIST_SUM))) goto done;
            if (v[1] > 0) {
                rc = agree(lrc ? lrc : VCM_OK);
                if (!rc) rc = vcm_fail(VCM_ERR, "step %ld: a rank failed", step + 1);
                goto done;
            }
            loss_sum = v[0];
        } else if (lrc) {
            rc = lrc;
            goto done;
        }
        double norm = params_grad_norm(&m.ps); /* clipped inside the update below */
        /* The guard decides the same on every rank. */
        nonfinite = !isfinite(loss_sum) || !isfinite(norm);
        if ((rc = dist_allreduce_f64(&nonfinite, 1, DIST_MAX))) goto done;
        if (nonfinite > 0) {
            if (last_ckpt_step >= 0)
                rc = vcm_fail(VCM_ERR, "step %ld: the %s is %s; stopped without updating. The last good checkpoint is %s (step %ld)",
                              step + 1, isfinite(loss_sum) ? "gradient norm" : "loss",
                              isfinite(loss_sum) && isfinite(norm) ? "not finite on another rank"
                              : isnan(loss_sum) || isnan(norm) ? "NaN" : "infinite",
                              o->out, last_ckpt_step);
            else
                rc = vcm_fail(VCM_ERR, "step %ld: the %s is not finite; stopped before any checkpoint was written (try a lower --lr)",
                              step + 1, isfinite(loss_sum) ? "gradient norm" : "loss");
            goto done;
        }
        double lr = lr_at(&sched, step);
        adamw_step_scaled(&st.opt, &m.ps, lr, params_clip_coef(norm, o->clip));
        st.step = step + 1;
        long done_samples = (st.step) * global_batch;
        st.epoch = done_samples / N;
        st.position = done_samples % N;
        double dt = now_seconds() - t0;
        samples_done += global_batch;
        double sps = (double)global_batch / dt;
        res->last_loss = loss_sum;
        double vloss = NAN;
        if (have_val && o->val_every > 0 && (st.step % o->val_every == 0 || st.step == o->steps)) {
            if ((rc = validation_loss(&val, &m, &g, &bb, o->batch, o->val_batches, &vloss))) goto done;
            res->last_val_loss = vloss;
        }
        if (log) {
            fprintf(log, "%ld,%.6f,%.6g,%.6f,%.2f,", (long)st.step, loss_sum, lr, norm, sps);
            if (isfinite(vloss)) fprintf(log, "%.6f", vloss);
            fprintf(log, ",%.2f\n", now_seconds() - t_start);
            fflush(log);
        }
        if (!quiet && (pr.tty || st.step % o->log_every == 0 || st.step == o->steps || isfinite(vloss))) {
            if (isfinite(vloss))
                progress_update(&pr, st.step, "loss %.4f val %.4f lr %.2e %.1f samples/s", loss_sum, vloss, lr, sps);
            else
                progress_update(&pr, st.step, "loss %.4f lr %.2e %.1f samples/s", loss_sum, lr, sps);
        }
        if ((o->ckpt_every > 0 && st.step % o->ckpt_every == 0) || st.step == o->steps) {
            if ((rc = check_replicas(&m, st.step))) goto done;
            if (lead) {
                stop_message(o, st.step, last_ckpt_step, 1);
                st.options_json = opts;
                rc = student_save(o->out, &m, &st);
                st.options_json = NULL;
            }
            if ((rc = agree(rc))) goto done;
            last_ckpt_step = st.step;
            if (!quiet && ranks > 1 && !pr.tty) fprintf(stderr, "train: checkpoint %s (step %ld)\n", o->out, last_ckpt_step);
        }
        if (lead) stop_message(o, st.step, last_ckpt_step, 0);
        res->steps_done = st.step;
        if (o->stop_after > 0 && st.step >= o->stop_after) break;
    }
    if (!quiet) progress_end(&pr);
    res->seconds = now_seconds() - t_start;
    res->samples_per_s = res->seconds > 0 ? (double)samples_done / res->seconds : 0;
    double skipped = (double)train.n_skipped;
    rc = dist_allreduce_f64(&skipped, 1, DIST_SUM);
    res->skipped = (long)skipped;
done:
    if (stop_set) dist_on_stop(NULL);
    if (log) fclose(log);
    free(opts);
    free(perm);
    free(idx);
    train_state_free(&st);
    graph_free(&g);
    batchbuf_free(&bb);
    if (have_val) dataset_close(&val);
    if (train.corpus_path) dataset_close(&train);
    if (m.ps.params) student_free(&m);
    bpe_free(&tok);
    return rc;
}
