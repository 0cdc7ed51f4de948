/* Training the critic: the annotations file is a corpus whose records carry "votes";
 * label = the strict majority says "accept". A held-out share of the records (by a
 * hash of the record index, so the split never depends on the seed or the order) is
 * scored at the end: loss, accuracy and ROC-AUC against the votes and, where the
 * records carry the synthetic world's hidden truth, against synth.fault. */
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void critic_options_default(CriticOptions *o) {
    memset(o, 0, sizeof *o);
    o->config = "nano";
    o->region_input = REGION_INPUT_ROI;
    o->images_root = ".";
    o->steps = 1000;
    o->warmup = 50;
    o->batch = 16;
    o->lr = 3e-4;
    o->min_lr = 3e-5;
    o->weight_decay = 0.01;
    o->clip = 1.0;
    o->seed = 1;
    o->val_frac = 0.1;
    o->cache_bytes = (size_t)1 << 30;
    o->log_every = 50;
}

/* Ties (equal scores) count half: sort by score, average ranks of tied runs. */
typedef struct ScoreLab { double s; signed char y; } ScoreLab;
static int cmp_score(const void *a, const void *b) {
    double x = ((const ScoreLab *)a)->s, y = ((const ScoreLab *)b)->s;
    return x < y ? -1 : x > y;
}

double critic_roc_auc(const double *score, const signed char *label, long n) {
    ScoreLab *v = malloc(sizeof *v * (size_t)(n ? n : 1));
    if (!v) return NAN;
    long m = 0, pos = 0, neg = 0;
    for (long i = 0; i < n; i++)
        if (label[i] == 0 || label[i] == 1) {
            v[m].s = score[i];
            v[m++].y = label[i];
            pos += label[i] == 1;
            neg += label[i] == 0;
        }
    if (!pos || !neg) { free(v); return NAN; }
    qsort(v, (size_t)m, sizeof *v, cmp_score);
    double rank_sum = 0;   /* Mann–Whitney: sum of the positives' ranks */
    for (long i = 0; i < m;) {
        long j = i;
        while (j + 1 < m && v[j + 1].s == v[i].s) j++;
        double r = 0.5 * (double)(i + j) + 1.0;
        for (long k = i; k <= j; k++)
            if (v[k].y == 1) rank_sum += r;
        i = j + 1;
    }
    free(v);
    return (rank_sum - 0.5 * (double)pos * (double)(pos + 1)) / ((double)pos * (double)neg);
}

static int in_val(long i, double frac) {
    uint64_t h = vcm_hash64((uint64_t)i ^ 0xC417C5EEDull);
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < frac;
}

/* What the trainer keeps of each record: a byte or two, never the record. */
typedef struct Labels {
    long n;
    signed char *vote;     /* CRITIC_ACCEPT / CRITIC_REJECT */
    signed char *truth;    /* 1 good, 0 faulty, -1 no synth.fault */
    signed char *kind;     /* index into names, -1 none; 0 = "good" */
    char names[CRITIC_MAX_KINDS + 1][32];
    int n_names;
} Labels;

static void labels_free(Labels *l) {
    free(l->vote);
    free(l->truth);
    free(l->kind);
    memset(l, 0, sizeof *l);
}

static int kind_index(Labels *l, const char *name) {
    for (int k = 0; k < l->n_names; k++)
        if (!strcmp(l->names[k], name)) return k;
    if (l->n_names > CRITIC_MAX_KINDS) return -1;
    snprintf(l->names[l->n_names], sizeof l->names[0], "%s", name);
    return l->n_names++;
}

/* One pass over the annotations through the dataset's index. */
static int read_labels(Dataset *d, Labels *l) {
    memset(l, 0, sizeof *l);
    long n = dataset_size(d);
    l->n = n;
    l->vote = malloc((size_t)n);
    l->truth = malloc((size_t)n);
    l->kind = malloc((size_t)n);
    if (!l->vote || !l->truth || !l->kind) return vcm_fail(VCM_ERR, "out of memory: labels of %ld records", n);
    kind_index(l, "good");
    for (long i = 0; i < n; i++) {
        JsonlLine ln;
        Record r;
        int rc = jsonl_index_read(&d->index, i, &ln);
        if (!rc) rc = record_parse(&ln, REC_ANY, &r, NULL);
        if (rc) return rc;
        if (r.n_votes <= 0) {
            long line = r.line;
            record_free(&r);
            return vcm_fail(VCM_EINPUT, "%s:%ld: no \"votes\": the critic trains on annotations "
                                        "(a corpus record plus \"votes\": [\"accept\"|\"reject\", ...])",
                            d->corpus_path, line);
        }
        l->vote[i] = 2 * r.n_accept > r.n_votes ? CRITIC_ACCEPT : CRITIC_REJECT;
        l->truth[i] = r.has_synth ? (r.fault == NULL) : -1;
        l->kind[i] = (signed char)(r.has_synth ? kind_index(l, r.fault ? r.fault : "good") : -1);
        record_free(&r);
    }
    return VCM_OK;
}

/* Per-kind statistics of held-out scores (kind[i] < 0: not counted). */
static void kind_stats(const Labels *l, const long *idx, const double *p, long n, CriticKindStat *out, int *n_out) {
    *n_out = l->n_names;
    signed char *y = malloc((size_t)(n ? n : 1));
    double *s = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int k = 0; k < l->n_names; k++) {
        CriticKindStat *ks = &out[k];
        memset(ks, 0, sizeof *ks);
        snprintf(ks->name, sizeof ks->name, "%s", l->names[k]);
        long hit = 0, m = 0;
        double sum = 0;
        for (long j = 0; j < n; j++) {
            int kk = l->kind[idx[j]];
            if (kk == k) {
                ks->n++;
                sum += p[j];
                hit += k == 0 ? p[j] >= 0.5 : p[j] < 0.5;
            }
            if (y && s && (kk == 0 || kk == k)) { s[m] = p[j]; y[m++] = kk == 0; }
        }
        ks->mean_score = ks->n ? sum / (double)ks->n : NAN;
        ks->recall = ks->n ? (double)hit / (double)ks->n : NAN;
        ks->auc = k == 0 || !y || !s ? NAN : critic_roc_auc(s, y, m);
    }
    free(y);
    free(s);
}

/* Held-out loss (against the votes), accuracy at 0.5, ROC-AUCs. */
static int evaluate(Dataset *d, Critic *c, Graph *g, BatchBuf *bb, const Labels *l, const long *val, long n_val,
                    int batch, CriticResult *res) {
    double *p = malloc(sizeof(double) * (size_t)n_val);
    signed char *yv = malloc((size_t)n_val), *yt = malloc((size_t)n_val);
    if (!p || !yv || !yt) { free(p); free(yv); free(yt); return vcm_fail(VCM_ERR, "out of memory"); }
    int grad = g->grad_enabled, rc = VCM_OK;
    g->grad_enabled = 0;
    double loss = 0;
    long right = 0;
    for (long s = 0; s < n_val && !rc; s += batch) {
        int n = (int)(n_val - s < batch ? n_val - s : batch);
        graph_reset(g);
        rc = dataset_batch(d, val + s, n, 0, 0, EXAMPLE_EVAL, bb);
        Tensor *lg = rc ? NULL : critic_logits(g, c, &bb->b);
        if (!rc && !lg) rc = vcm_fail(VCM_ERR, "%s", vcm_error());
        if (rc) break;
        critic_probs(lg, p + s);
    }
    g->grad_enabled = grad;
    if (!rc) {
        for (long j = 0; j < n_val; j++) {
            int y = l->vote[val[j]];
            double q = y == CRITIC_ACCEPT ? p[j] : 1.0 - p[j];
            loss -= log(q > 1e-12 ? q : 1e-12);
            right += (p[j] >= 0.5) == (y == CRITIC_ACCEPT);
            yv[j] = (signed char)(y == CRITIC_ACCEPT);
            yt[j] = l->truth[val[j]];
            res->val_with_fault += yt[j] >= 0;
        }
        res->val_loss = n_val ? loss / (double)n_val : NAN;
        res->val_acc = n_val ? (double)right / (double)n_val : NAN;
        res->val_auc = critic_roc_auc(p, yv, n_val);
        res->val_auc_fault = critic_roc_auc(p, yt, n_val);
        if (res->val_with_fault) kind_stats(l, val, p, n_val, res->kinds, &res->n_kinds);
    }
    free(p);
    free(yv);
    free(yt);
    return rc;
}

/* What the step's micro-batch needs: the training records' order and their labels. */
typedef struct Feed {
    const CriticOptions *o;
    Dataset *d;
    BatchBuf *bb;
    Critic *c;
    const Labels *lab;
    const long *train;        /* the training records */
    long n;
    long *perm, *idx;         /* the epoch's order, the batch's records */
    int32_t *y;               /* the batch's labels */
    long epoch;               /* whose order perm holds; -1: none */
} Feed;

/* A step is one micro-batch: samples step·batch … of the stream, sample s being
 * training record perm[s mod n] of epoch s / n. */
static int micro_batch(void *ctx, Graph *g, long step, int micro, Tensor **loss, double *weight) {
    Feed *f = ctx;
    const CriticOptions *o = f->o;
    (void)micro;
    for (int i = 0; i < o->batch; i++) {
        uint64_t s = (uint64_t)step * (uint64_t)o->batch + (uint64_t)i;
        long e = (long)(s / (uint64_t)f->n), pos = (long)(s % (uint64_t)f->n);
        if (e != f->epoch) {   /* Fisher–Yates of the training records, a function of (seed, epoch) */
            uint64_t r = vcm_hash64(o->seed ^ vcm_hash64((uint64_t)e + 0xC417));
            for (long k = 0; k < f->n; k++) f->perm[k] = f->train[k];
            vcm_shuffle_with(f->perm, (size_t)f->n, sizeof *f->perm, vcm_hash_chain_next, &r);
            f->epoch = e;
        }
        f->idx[i] = f->perm[pos];
        f->y[i] = f->lab->vote[f->idx[i]];
    }
    int rc = dataset_batch(f->d, f->idx, o->batch, o->seed, (uint64_t)step * (uint64_t)o->batch, EXAMPLE_TRAIN, f->bb);
    if (rc) return rc;
    *weight = o->batch;   /* the loss is a mean over the batch */
    *loss = critic_loss(g, f->c, &f->bb->b, f->y);
    return VCM_OK;
}

int train_critic(const CriticOptions *o, CriticResult *res) {
    memset(res, 0, sizeof *res);
    res->val_loss = res->val_acc = res->val_auc = res->val_auc_fault = NAN;
    if (!o->annotations || !o->regions || !o->out || (!o->tokenizer && !o->init))
        return vcm_fail(VCM_EINPUT, "critic train: annotations, regions, out and a tokenizer (or init) are required");
    if (o->batch <= 0 || o->steps <= 0) return vcm_fail(VCM_EINPUT, "critic train: batch and steps must be positive");
    if (!(o->val_frac >= 0 && o->val_frac < 1)) return vcm_fail(VCM_EINPUT, "critic train: val-frac must be in [0, 1)");
    if (atomic_file_probe(o->out)) return VCM_ERR;   /* before the compute, not at the save */
    Tokenizer tok = {0};
    Critic c = {0};
    Student init = {0};
    Dataset d = {0};
    BatchBuf bb = {0};
    Graph g = {0};
    Labels lab = {0};
    TrainState st = {0};
    long *train = NULL, *val = NULL, *perm = NULL, *idx = NULL;
    int32_t *y = NULL;
    double *recent = NULL;
    int rc, have_critic = 0;
    ModelConfig cfg;

    if (o->init) {
        rc = student_load(o->init, &init, NULL);
        if (!rc) cfg = init.cfg;
        if (!rc) rc = o->tokenizer ? bpe_load(o->tokenizer, &tok) : student_tokenizer(&init, o->init, &tok);
    } else {
        rc = bpe_load(o->tokenizer, &tok);
        if (!rc) rc = model_config_named(o->config, &cfg);
        if (!rc) cfg.region_input = o->region_input;
    }
    if (!rc && tok.vocab > cfg.vocab)
        rc = vcm_fail(VCM_EINPUT, "%s: %d tokens, more than the %s model's vocabulary of %d",
                      o->tokenizer ? o->tokenizer : o->init, tok.vocab, cfg.name, cfg.vocab);
    if (!rc) rc = critic_init(&c, &cfg, o->seed);
    have_critic = !rc;
    if (!rc && o->init) rc = critic_init_from_student(&c, &init);
    if (!rc) {
        free(c.s.tokenizer_text);
        if (!(c.s.tokenizer_text = bpe_to_text(&tok))) rc = VCM_ERR;
    }
    if (!rc) rc = dataset_open(&d, o->annotations, o->regions, o->images_root, &tok, &cfg, o->cache_bytes, 0);
    if (!rc) rc = read_labels(&d, &lab);
    if (rc) goto done;

    long N = dataset_size(&d);
    train = malloc(sizeof(long) * (size_t)N);
    val = malloc(sizeof(long) * (size_t)N);
    perm = malloc(sizeof(long) * (size_t)N);
    idx = malloc(sizeof(long) * (size_t)o->batch);
    y = malloc(sizeof(int32_t) * (size_t)o->batch);
    recent = calloc(50, sizeof(double));
    if (!train || !val || !perm || !idx || !y || !recent) { rc = vcm_fail(VCM_ERR, "out of memory"); goto done; }
    for (long i = 0; i < N; i++) {
        if (in_val(i, o->val_frac)) val[res->n_val++] = i;
        else train[res->n_train++] = i;
    }
    if (!res->n_train) { rc = vcm_fail(VCM_EINPUT, "%s: no training records left after the held-out split", o->annotations); goto done; }
    if ((rc = batchbuf_alloc(&bb, &cfg, o->batch)) || (rc = graph_init(&g, (size_t)64 << 20))) goto done;

    st.opt = adamw_default();
    st.opt.weight_decay = o->weight_decay;
    Feed f = {.o = o, .d = &d, .bb = &bb, .c = &c, .lab = &lab, .train = train, .n = res->n_train,
              .perm = perm, .idx = idx, .y = y, .epoch = -1};
    TrainStep ts = {.ps = &c.s.ps, .opt = &st.opt, .g = &g, .sched = {o->lr, o->min_lr, o->warmup, o->steps},
                    .clip = o->clip, .accum = 1, .micro0 = 0, .micro1 = 1, .ranks = 1, .micro = micro_batch,
                    .ctx = &f, .ckpt = NULL};   /* saved only at the end */
    long accepted = 0;
    for (long i = 0; i < res->n_train; i++) accepted += lab.vote[train[i]] == CRITIC_ACCEPT;
    if (!o->quiet)
        fprintf(stderr, "critic train: %s trunk%s, %zu parameters, %ld train records (%.1f%% accept), %ld held out\n",
                cfg.name, o->init ? " from the student" : " from scratch", params_count(&c.s.ps), res->n_train,
                100.0 * (double)accepted / (double)res->n_train, res->n_val);
    Progress pr;
    progress_start(&pr, 0, o->steps);
    double t0 = now_seconds();
    for (long step = 0; step < o->steps; step++) {
        StepStats ss;
        if ((rc = train_step(&ts, step, &ss))) goto done;
        recent[step % 50] = ss.loss;
        res->steps_done = st.step = step + 1;
        if (!o->quiet && (pr.tty || st.step % o->log_every == 0 || st.step == o->steps))
            progress_update(&pr, st.step, "loss %.4f lr %.2e", ss.loss, ss.lr);
    }
    if (!o->quiet) progress_end(&pr);
    long k = o->steps < 50 ? o->steps : 50;
    for (long i = 0; i < k; i++) res->train_loss += recent[i] / (double)k;
    if (res->n_val) rc = evaluate(&d, &c, &g, &bb, &lab, val, res->n_val, o->batch, res);
    if (!rc) rc = critic_save(o->out, &c, NULL);
    res->seconds = now_seconds() - t0;
done:
    free(train); free(val); free(perm); free(idx); free(y); free(recent);
    labels_free(&lab);
    graph_free(&g);
    batchbuf_free(&bb);
    if (d.corpus_path) dataset_close(&d);
    if (have_critic) critic_free(&c);
    if (init.ps.params) student_free(&init);
    bpe_free(&tok);
    return rc;
}
