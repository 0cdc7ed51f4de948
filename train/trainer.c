/* The student's training loop: shuffled batches by seed, gradient accumulation,
 * clipping, AdamW with warmup + cosine, validation, periodic atomic checkpoints,
 * bit-exact resume, a CSV log, progress, and a guard against non-finite losses. */
#include "train/train.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    for (long i = n - 1; i > 0; i--) {
        s = vcm_hash64(s);
        long j = (long)((s >> 11) % (uint64_t)(i + 1));
        long t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
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
 * run that stopped), so the log reads as one uninterrupted run. */
static FILE *open_log(const char *path, long start_step) {
    if (start_step > 0) {
        FILE *in = fopen(path, "r");
        if (in) {
            char tmp[4096];
            snprintf(tmp, sizeof tmp, "%s.tmp", path);
            FILE *out = fopen(tmp, "w");
            char line[4096];
            int first = 1;
            while (out && fgets(line, sizeof line, in)) {
                if (first || atol(line) <= start_step) fputs(line, out);
                first = 0;
            }
            fclose(in);
            if (out && fclose(out) == 0 && rename(tmp, path) == 0) return fopen(path, "a");
        }
    }
    FILE *f = fopen(path, "w");
    if (f) fprintf(f, "step,loss,lr,grad_norm,samples_per_s,val_loss,elapsed_s\n");
    return f;
}

static double validation_loss(Dataset *val, Student *m, Graph *g, BatchBuf *bb, int batch, int n_batches) {
    double sum = 0;
    int done = 0;
    int grad = g->grad_enabled;
    g->grad_enabled = 0;
    long *idx = malloc(sizeof(long) * (size_t)batch);
    for (int k = 0; idx && k < n_batches; k++) {
        long start = (long)k * batch;
        if (start >= dataset_size(val)) break;
        int n = 0;
        for (long r = start; r < start + batch && r < dataset_size(val); r++) idx[n++] = r;
        graph_reset(g);
        if (dataset_batch(val, idx, n, 0, 0, EXAMPLE_EVAL, bb)) { done = 0; break; }
        Tensor *l = student_loss(g, m, &bb->b);
        if (!l) { done = 0; break; }
        sum += l->data[0];
        done++;
    }
    free(idx);
    g->grad_enabled = grad;
    return done ? sum / done : NAN;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

int train_student(const TrainOptions *o, TrainResult *res) {
    memset(res, 0, sizeof *res);
    res->last_val_loss = NAN;
    if (!o->corpus || !o->regions || !o->tokenizer || !o->out)
        return vcm_fail(VCM_EINPUT, "train: corpus, regions, tokenizer and out are required");
    if (o->batch <= 0 || o->accum <= 0 || o->steps <= 0)
        return vcm_fail(VCM_EINPUT, "train: batch, accum and steps must be positive");
    Tokenizer tok = {0};
    Student m = {0};
    Dataset train = {0}, val = {0};
    BatchBuf bb = {0};
    Graph g = {0};
    TrainState st = {0};
    long *perm = NULL, *idx = NULL;
    FILE *log = NULL;
    char *opts = NULL;
    int have_val = 0, rc;
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
    if (rc) goto done;

    int resumed = o->resume && file_exists(o->out);
    if (resumed) {
        rc = student_load(o->out, &m, &st);
        if (!rc) rc = check_resume_options(o->out, st.options_json, o);
        if (!rc && strcmp(m.cfg.name, cfg.name))
            rc = vcm_fail(VCM_EINPUT, "%s: holds a %s model, not %s", o->out, m.cfg.name, cfg.name);
        if (rc) goto done;
        free(st.options_json);   /* checked; each save writes this run's options */
        st.options_json = NULL;
        last_ckpt_step = (long)st.step;
    } else {
        rc = student_init(&m, &cfg, o->seed);
        if (rc) goto done;
        st.opt = adamw_default();
        st.opt.weight_decay = (float)o->weight_decay;
        st.shuffle_seed = o->seed;
    }
    long start = (long)st.step;
    opts = options_json(o);
    /* The tokenizer goes into every checkpoint, so the model file stands alone. */
    free(m.tokenizer_text);
    if (!(m.tokenizer_text = bpe_to_text(&tok))) { rc = VCM_ERR; goto done; }

    rc = dataset_open(&train, o->corpus, o->regions, o->images_root, &tok, &cfg, o->cache_bytes, o->skip_bad);
    if (!rc && o->val_corpus) {
        rc = dataset_open(&val, o->val_corpus, o->regions, o->images_root, &tok, &cfg, o->cache_bytes / 4, o->skip_bad);
        have_val = !rc;
    }
    if (!rc) rc = batchbuf_alloc(&bb, &cfg, o->batch);
    if (!rc) rc = graph_init(&g, (size_t)64 << 20);
    long N = dataset_size(&train);
    perm = malloc(sizeof(long) * (size_t)N);
    idx = malloc(sizeof(long) * (size_t)o->batch);
    if (!rc && (!perm || !idx)) rc = vcm_fail(VCM_ERR, "out of memory");
    if (!rc && o->log_csv && !(log = open_log(o->log_csv, start)))
        rc = vcm_fail(VCM_ERR, "%s: cannot write the log", o->log_csv);
    if (rc) goto done;

    LrSchedule sched = {o->lr, o->min_lr, o->warmup, o->steps};
    long cur_epoch = -1;
    Progress pr;
    progress_start(&pr, start, o->steps);
    if (!o->quiet)
        fprintf(stderr, "train: %s model, %zu parameters, %ld records, batch %d x %d, %s from step %ld\n", cfg.name,
                params_count(&m.ps), N, o->batch, o->accum, resumed ? "resuming" : "starting", start);
    double t_start = now_seconds();
    long samples_done = 0;
    for (long step = start; step < o->steps; step++) {
        double t0 = now_seconds();
        params_zero_grad(&m.ps);
        double loss_sum = 0;
        for (int a = 0; a < o->accum; a++) {
            uint64_t s0 = ((uint64_t)step * (uint64_t)o->accum + (uint64_t)a) * (uint64_t)o->batch;
            for (int i = 0; i < o->batch; i++) {
                uint64_t s = s0 + (uint64_t)i;
                long epoch = (long)(s / (uint64_t)N), pos = (long)(s % (uint64_t)N);
                if (epoch != cur_epoch) {
                    if ((rc = epoch_order(&train.index, perm, N, o->seed, epoch))) goto done;
                    cur_epoch = epoch;
                }
                idx[i] = perm[pos];
            }
            rc = dataset_batch(&train, idx, o->batch, o->seed, s0, EXAMPLE_TRAIN, &bb);
            if (rc) goto done;
            graph_reset(&g);
            Tensor *loss = student_loss(&g, &m, &bb.b);
            if (o->accum > 1) loss = op_scale(&g, loss, 1.0f / (float)o->accum);
            if (!loss || graph_backward(&g, loss)) { rc = vcm_fail(VCM_ERR, "step %ld: %s", step + 1, vcm_error()); goto done; }
            loss_sum += loss->data[0];
        }
        double norm = params_clip_grad_norm(&m.ps, o->clip);
        if (!isfinite(loss_sum) || !isfinite(norm)) {
            if (last_ckpt_step >= 0)
                rc = vcm_fail(VCM_ERR, "step %ld: the %s is %s; stopped without updating. The last good checkpoint is %s (step %ld)",
                              step + 1, isfinite(loss_sum) ? "gradient norm" : "loss", isnan(loss_sum) || isnan(norm) ? "NaN" : "infinite",
                              o->out, last_ckpt_step);
            else
                rc = vcm_fail(VCM_ERR, "step %ld: the %s is not finite; stopped before any checkpoint was written (try a lower --lr)",
                              step + 1, isfinite(loss_sum) ? "gradient norm" : "loss");
            goto done;
        }
        double lr = lr_at(&sched, step);
        adamw_step(&st.opt, &m.ps, lr);
        st.step = step + 1;
        long done_samples = (st.step) * (long)o->batch * o->accum;
        st.epoch = done_samples / N;
        st.position = done_samples % N;
        double dt = now_seconds() - t0;
        samples_done += (long)o->batch * o->accum;
        double sps = (double)o->batch * o->accum / dt;
        res->last_loss = loss_sum;
        double vloss = NAN;
        if (have_val && o->val_every > 0 && (st.step % o->val_every == 0 || st.step == o->steps)) {
            vloss = validation_loss(&val, &m, &g, &bb, o->batch, o->val_batches);
            res->last_val_loss = vloss;
        }
        if (log) {
            fprintf(log, "%ld,%.6f,%.6g,%.6f,%.2f,", (long)st.step, loss_sum, lr, norm, sps);
            if (isfinite(vloss)) fprintf(log, "%.6f", vloss);
            fprintf(log, ",%.2f\n", now_seconds() - t_start);
            fflush(log);
        }
        if (!o->quiet && (pr.tty || st.step % o->log_every == 0 || st.step == o->steps || isfinite(vloss))) {
            if (isfinite(vloss))
                progress_update(&pr, st.step, "loss %.4f val %.4f lr %.2e %.1f samples/s", loss_sum, vloss, lr, sps);
            else
                progress_update(&pr, st.step, "loss %.4f lr %.2e %.1f samples/s", loss_sum, lr, sps);
        }
        if ((o->ckpt_every > 0 && st.step % o->ckpt_every == 0) || st.step == o->steps) {
            st.options_json = opts;
            rc = student_save(o->out, &m, &st);
            st.options_json = NULL;
            if (rc) goto done;
            last_ckpt_step = st.step;
        }
        res->steps_done = st.step;
        if (o->stop_after > 0 && st.step >= o->stop_after) break;
    }
    if (!o->quiet) progress_end(&pr);
    res->seconds = now_seconds() - t_start;
    res->samples_per_s = res->seconds > 0 ? (double)samples_done / res->seconds : 0;
    res->skipped = train.n_skipped;
done:
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
