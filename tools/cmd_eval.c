/* vcm eval: zero-shot multiple choice by likelihood (each choice scored as the
 * continuation of "question: … answer:"), accuracy overall, on the items whose
 * distractors are other regions' answers and on the grounding items (choices naming
 * different regions); with --open, the open-ended evaluation of what the model writes
 * (tools/eval_open.c); with --vcr, VCR's Q→A, QA→R and Q→AR (data/vcr.c makes two MC
 * items of each line); with --corpus, the teacher-forced perplexity. docs/INFERENCE.md. */
#include "tools/infer_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: vcm eval --model M.vcm [--tokenizer T.tok] [--mc ITEMS.jsonl] [--open OPEN.jsonl] [--vcr VAL.jsonl]\n"
    "                [--regions MAP.jsonl]\n"
    "                [--images-root DIR] [--corpus C.jsonl] [--score mean|sum] [--predictions OUT.jsonl]\n"
    "\n"
    "--mc: scores every choice of every multiple-choice item as the continuation of the prompt\n"
    "\"question: ... answer:\" and picks the best (mean log-prob per token by default): n, accuracy,\n"
    "n_other_region, accuracy_other_region, n_grounding, accuracy_grounding.\n"
    "--open: asks every question of an open-ended set (vcm synth's open_test.jsonl) greedily with\n"
    "all the image's regions given, as vcm generate would, and judges the answer against the true\n"
    "one: \"open\": {n, refers (names the asked regions and no other), correct (is the true answer),\n"
    "first_id_prob (p of the true first answer token when it is a region id), literal, relational,\n"
    "by_type}.\n"
    "--vcr: VCR's val.jsonl (metadata files under --images-root), zero-shot by likelihood: \"vcr\": {n,\n"
    "q_a (answer choices after the question), qa_r (rationale choices after the question and the right\n"
    "answer), q_ar (both right)}. --mc also reads the LSKD release's evaluation items (text_input,\n"
    "choices [{text_output}], label, references, answer_prefix): their accuracy is \"accuracy\".\n"
    "Items that carry their own boxes (references, VCR) need no --regions.\n"
    "At least one of --mc, --open and --vcr. One JSON object on stdout; progress on stderr.";

/* What an item counts for: --mc accuracy, or VCR's Q→A / QA→R (Q→AR: both right). */
enum { TASK_MC = 0, TASK_Q_A, TASK_QA_R };

/* One item waiting for its choices to be scored. */
typedef struct Item {
    long line;
    int task;
    int label, other, grounding, n_choices, n_regions;
    float box[MODEL_MAX_REGIONS][4];
    float *chw;                  /* the model's image input */
    double *sum;                 /* [n_choices] Σ log p of the choice's tokens */
    int *count;                  /* [n_choices] its tokens */
} Item;

/* One text of the batch: an item's choice. */
typedef struct Seq { int item, choice, n_ids, n_prompt; int32_t *ids; } Seq;

typedef struct Eval {
    Student *m;
    const Tokenizer *tok;
    int use_sum, use_kv;
    Graph g;
    Infer in;                    /* --method kv */
    Item *items; int n_items, cap_items;
    Seq *seqs; int n_seqs, cap_seqs;
    Batch b;                     /* buffers for cap_b sequences */
    int cap_b;
    double *lp;
    long n, correct, n_other, correct_other, n_ground, correct_ground;
    long vcr_n, vcr_q_a, vcr_qa_r, vcr_q_ar;   /* VCR items, and how many right of each */
    int last_q_a;                /* the Q→A item finished last was right (its QA→R comes next) */
    FILE *pred;
} Eval;

static void put_rate(const char *name, long k, long n) {
    printf(",\"%s\":", name);
    vcm_json_put_number(stdout, n ? (double)k / (double)n : NAN);
}

static void item_free(Item *it) {
    free(it->chw); free(it->sum); free(it->count);
    memset(it, 0, sizeof *it);
}

static int grow_batch(Eval *e, int need) {
    if (need <= e->cap_b) return VCM_OK;
    const ModelConfig *c = &e->m->cfg;
    size_t img = 3 * (size_t)c->image * c->image, T = (size_t)c->max_text;
    Batch *b = &e->b;
    float *images = realloc(b->images, sizeof(float) * img * need);
    if (images) b->images = images;
    float *boxes = realloc(b->boxes, sizeof(float) * 4 * MODEL_MAX_REGIONS * need);
    if (boxes) b->boxes = boxes;
    int *nr = realloc(b->n_regions, sizeof(int) * need);
    if (nr) b->n_regions = nr;
    int32_t *tokens = realloc(b->tokens, sizeof(int32_t) * T * need);
    if (tokens) b->tokens = tokens;
    int32_t *targets = realloc(b->targets, sizeof(int32_t) * T * need);
    if (targets) b->targets = targets;
    double *lp = realloc(e->lp, sizeof(double) * T * need);
    if (lp) e->lp = lp;
    if (!images || !boxes || !nr || !tokens || !targets || !lp) return vcm_fail(VCM_ERR, "out of memory");
    e->cap_b = need;
    return VCM_OK;
}

/* Pick the best choice of a scored item, count it, log it, free it. */
static void finish_item(Eval *e, Item *it) {
    int best = 0;
    double score[64];
    for (int k = 0; k < it->n_choices; k++) {
        score[k] = e->use_sum ? it->sum[k] : it->sum[k] / (it->count[k] ? it->count[k] : 1);
        if (score[k] > score[best]) best = k;   /* ties: the first */
    }
    int ok = best == it->label;
    if (it->task == TASK_Q_A) {
        e->vcr_n++;
        e->vcr_q_a += ok;
        e->last_q_a = ok;
    } else if (it->task == TASK_QA_R) {   /* finished right after its Q→A (queue order) */
        e->vcr_qa_r += ok;
        e->vcr_q_ar += ok && e->last_q_a;
    } else {
        e->n++;
        e->correct += ok;
        if (it->other) { e->n_other++; e->correct_other += ok; }
        if (it->grounding) { e->n_ground++; e->correct_ground += ok; }
    }
    if (e->pred) {
        static const char *task[] = {"", "\"task\":\"q_a\",", "\"task\":\"qa_r\","};
        fprintf(e->pred, "{\"line\":%ld,%s\"label\":%d,\"pred\":%d,\"correct\":%s,\"other_region\":%s,\"scores\":[",
                it->line, task[it->task], it->label, best, ok ? "true" : "false", it->other ? "true" : "false");
        for (int k = 0; k < it->n_choices; k++) {
            if (k) fputc(',', e->pred);
            vcm_json_put_number(e->pred, score[k]);
        }
        fprintf(e->pred, "]}\n");
    }
    item_free(it);
}

/* The KV-cache way: one prefill of image, regions and prompt, then each choice's tokens
 * one at a time from there. The ViT and the shared prefix run once per item instead of
 * once per choice. */
static int score_item_kv(Eval *e, Item *it, const Seq *seqs) {
    const ModelConfig *c = &e->m->cfg;
    int nreg = c->region_input == REGION_INPUT_ROI ? it->n_regions : 0;
    int n_regions[1] = {nreg};
    Batch b = {1, it->chw, nreg, &it->box[0][0], n_regions, seqs[0].n_prompt, seqs[0].ids, NULL};
    int rc = infer_prefill(&e->in, &b);
    for (int k = 0; !rc && k < it->n_choices; k++) {
        const Seq *s = &seqs[k];
        if (k) infer_rewind(&e->in);
        it->count[k] = s->n_ids - s->n_prompt;
        rc = infer_continuation_logprob(&e->in, s->ids + s->n_prompt, it->count[k], &it->sum[k]);
    }
    return rc;
}

/* Score every pending sequence in one forward, then decide every pending item. */
static int flush(Eval *e) {
    if (!e->n_seqs) return VCM_OK;
    const ModelConfig *c = &e->m->cfg;
    size_t img = 3 * (size_t)c->image * c->image;
    int rc = grow_batch(e, e->n_seqs);
    if (rc) return rc;
    Batch *b = &e->b;
    b->B = e->n_seqs;
    b->R = 0;
    b->T = 1;
    for (int i = 0; i < e->n_seqs; i++) {
        const Seq *s = &e->seqs[i];
        if (c->region_input == REGION_INPUT_ROI && e->items[s->item].n_regions > b->R) b->R = e->items[s->item].n_regions;
        if (s->n_ids - 1 > b->T) b->T = s->n_ids - 1;
    }
    for (int i = 0; i < e->n_seqs; i++) {
        const Seq *s = &e->seqs[i];
        const Item *it = &e->items[s->item];
        memcpy(b->images + img * i, it->chw, sizeof(float) * img);
        b->n_regions[i] = b->R ? it->n_regions : 0;
        for (int k = 0; k < b->R; k++) {
            float *bx = b->boxes + 4 * ((size_t)i * b->R + k);
            if (k < it->n_regions) memcpy(bx, it->box[k], sizeof(float) * 4);
            else { bx[0] = bx[1] = 0; bx[2] = bx[3] = (float)c->patch; }   /* masked slot */
        }
        for (int t = 0; t < b->T; t++) {
            b->tokens[(size_t)i * b->T + t] = t < s->n_ids ? s->ids[t] : BPE_PAD;
            /* only the choice's tokens are scored */
            b->targets[(size_t)i * b->T + t] = t + 1 >= s->n_prompt && t + 1 < s->n_ids ? s->ids[t + 1] : -1;
        }
    }
    graph_reset(&e->g);
    rc = student_target_logprobs(&e->g, e->m, b, e->lp);
    if (rc) return rc;
    for (int i = 0; i < e->n_seqs; i++) {
        Seq *s = &e->seqs[i];
        Item *it = &e->items[s->item];
        for (int t = 0; t < b->T; t++) it->sum[s->choice] += e->lp[(size_t)i * b->T + t];
        it->count[s->choice] = s->n_ids - s->n_prompt;
        free(s->ids);
        s->ids = NULL;
    }
    e->n_seqs = 0;
    for (int j = 0; j < e->n_items; j++) finish_item(e, &e->items[j]);
    e->n_items = 0;
    return VCM_OK;
}

/* Tokens of <bos> prompt choice: the prompt's tokens must be a prefix of the whole's
 * (they are: the choice starts a new piece after the space), else they are joined. */
static int encode_choice(const Tokenizer *tok, const char *prompt, const char *choice, int max_text, Seq *s) {
    size_t pl = strlen(prompt), cl = strlen(choice), n = pl + 1 + cl;
    char *full = malloc(n + 1);
    int32_t *ids = malloc(sizeof(int32_t) * (n + 2)), *pids = malloc(sizeof(int32_t) * (pl + 1));
    int rc = VCM_OK;
    if (!full || !ids || !pids) rc = vcm_fail(VCM_ERR, "out of memory");
    long nf = -1, np = -1;
    if (!rc) {
        memcpy(full, prompt, pl);
        full[pl] = ' ';
        memcpy(full + pl + 1, choice, cl + 1);
        ids[0] = BPE_BOS;
        nf = bpe_encode(tok, full, n, ids + 1, n + 1);
        np = bpe_encode(tok, prompt, pl, pids, pl + 1);
        if (nf < 0 || np < 0) rc = VCM_ERR;
    }
    if (!rc && (np > nf || memcmp(pids, ids + 1, sizeof(int32_t) * (size_t)np))) {
        long nc = bpe_encode(tok, full + pl, n - pl, ids + 1 + np, n + 1 - (size_t)np);
        if (nc < 0) rc = VCM_ERR;
        memcpy(ids + 1, pids, sizeof(int32_t) * (size_t)np);
        nf = np + nc;
    }
    if (!rc && nf <= np) rc = vcm_fail(VCM_EINPUT, "an empty choice");
    if (!rc && nf + 1 > max_text + 1)
        rc = vcm_fail(VCM_EINPUT, "prompt and choice are %ld tokens; the model reads at most %d", nf + 1, max_text + 1);
    free(full);
    free(pids);
    if (rc) { free(ids); return rc; }
    s->ids = ids;
    s->n_ids = (int)nf + 1;
    s->n_prompt = (int)np + 1;
    return VCM_OK;
}

/* "FILE:LINE: <the current error>": the message is copied first, because vcm_fail
 * formats into the buffer vcm_error() points to. */
static int at_line(int rc, const char *mc, long line, int choice) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", vcm_error());
    if (choice >= 0) return vcm_fail(rc, "%s:%ld: choice %d: %s", mc, line, choice, msg);
    return vcm_fail(rc, "%s:%ld: %s", mc, line, msg);
}

/* The current error with " (note)" after it (copied first: vcm_fail formats into it). */
static int add_note(int rc, const char *note) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", vcm_error());
    return vcm_fail(rc, "%s (%s)", msg, note);
}

/* Check one parsed MC record and make its item and its sequences (nothing queued yet):
 * regions, image, example, tokens. VCM_EINPUT (message with FILE:LINE) for a bad one. */
static int prepare_item(Eval *e, const char *mc, long line, const Record *rec, const RegionMap *map, ImageCache *cache,
                        const char *root, uint8_t *rgb, Item *it, Seq **seqs_out) {
    const ModelConfig *c = &e->m->cfg;
    int reason = 0;
    Example ex;
    memset(&ex, 0, sizeof ex);
    memset(it, 0, sizeof *it);
    *seqs_out = NULL;
    int rc = record_check_regions(rec, mc, map, &reason);
    const RegionEntry *ent = rc ? NULL : record_regions(rec, map);   /* its references, else the mapping's */
    int ow = c->image, oh = c->image, text_only = c->region_input == REGION_INPUT_TEXT;
    uint64_t rng = 0;   /* EXAMPLE_EVAL draws nothing */
    if (!rc && !text_only) {   /* the text-only baseline never opens the image */
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", root, rec->image);
        if ((rc = image_cache_get(cache, path, c->image, rgb, &ow, &oh)))
            rc = at_line(rc, mc, line, -1);
        /* boxes of the item's own: in the image, and in the size they were given for */
        else if (rec->references && rec->references->img_w > 0 &&
                 (ow != rec->references->img_w || oh != rec->references->img_h))
            rc = vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\" is %dx%d, but its metadata gives %dx%d", mc, line,
                          rec->image, ow, oh, rec->references->img_w, rec->references->img_h);
        else rc = record_check_boxes(rec, mc, ow, oh, &reason);
    }
    /* text-only: question and choices with each [k] replaced by its description */
    if (!rc && (rc = example_build(rec, ent, ow, oh, c->image, c->image, &rng,
                                   EXAMPLE_EVAL | (text_only ? EXAMPLE_DESCRIBE : 0), &ex)))
        rc = at_line(rc, mc, line, -1);
    if (!rc && ex.n_choices > MC_MAX_CHOICES)
        rc = vcm_fail(VCM_EINPUT, "%s:%ld: %d choices (at most %d)", mc, line, ex.n_choices, MC_MAX_CHOICES);
    if (!rc) {
        it->line = line;
        it->label = rec->label;
        it->other = rec->distractor_other_region == 1;
        it->grounding = rec->grounding == 1;
        it->n_choices = ex.n_choices;
        it->n_regions = ex.n_regions > MODEL_MAX_REGIONS ? MODEL_MAX_REGIONS : ex.n_regions;
        memcpy(it->box, ex.box, sizeof(float) * 4 * (size_t)it->n_regions);
        size_t img = 3 * (size_t)c->image * c->image;
        it->chw = calloc(img, sizeof(float));
        it->sum = calloc((size_t)ex.n_choices, sizeof(double));
        it->count = calloc((size_t)ex.n_choices, sizeof(int));
        if (!it->chw || !it->sum || !it->count) rc = vcm_fail(VCM_ERR, "out of memory");
        else if (!text_only) model_image(c, rgb, (const float(*)[4])it->box, it->n_regions, it->chw);
    }
    Seq *seqs = rc ? NULL : calloc((size_t)ex.n_choices, sizeof *seqs);
    if (!rc && !seqs) rc = vcm_fail(VCM_ERR, "out of memory");
    for (int k = 0; !rc && k < ex.n_choices; k++) {
        rc = encode_choice(e->tok, ex.text, ex.choices[k], c->max_text, &seqs[k]);
        if (rc) rc = at_line(rc, mc, line, k);
    }
    if (rc) {
        for (int k = 0; seqs && k < ex.n_choices; k++) free(seqs[k].ids);
        free(seqs);
        item_free(it);
    } else *seqs_out = seqs;
    example_free(&ex);
    return rc;
}

/* n: the item's choices (passed, since finish_item has already cleared a scored item) */
static void drop_item(Item *it, Seq *seqs, int n) {
    for (int k = 0; seqs && k < n; k++) free(seqs[k].ids);
    free(seqs);
    item_free(it);
}

/* Score a prepared item now (kv), or queue it for the next batch; takes it and its
 * sequences over either way. Items are finished in the order they are queued. */
static int queue_item(Eval *e, Item *it, Seq *seqs) {
    int rc = VCM_OK, n = it->n_choices;
    if (e->use_kv) {
        rc = score_item_kv(e, it, seqs);
        if (!rc) finish_item(e, it);
        drop_item(it, seqs, n);
        return rc;
    }
    if (e->n_seqs + n > e->cap_b) rc = flush(e);
    if (!rc && e->n_items == e->cap_items) {
        int cap = e->cap_items ? 2 * e->cap_items : 16;
        Item *p = realloc(e->items, sizeof *p * (size_t)cap);
        if (!p) rc = vcm_fail(VCM_ERR, "out of memory");
        else { e->items = p; e->cap_items = cap; }
    }
    if (!rc && e->n_seqs + n > e->cap_seqs) {
        int cap = e->n_seqs + n + 16;
        Seq *p = realloc(e->seqs, sizeof *p * (size_t)cap);
        if (!p) rc = vcm_fail(VCM_ERR, "out of memory");
        else { e->seqs = p; e->cap_seqs = cap; }
    }
    if (rc) { drop_item(it, seqs, n); return rc; }
    for (int k = 0; k < n; k++) {
        seqs[k].item = e->n_items;
        seqs[k].choice = k;
        e->seqs[e->n_seqs++] = seqs[k];
    }
    e->items[e->n_items++] = *it;
    free(seqs);
    return VCM_OK;
}

/* One line of --mc: an MC item (vcm synth's, the release's MC or evaluation format). */
static int add_item(Eval *e, const char *mc, const JsonlLine *ln, const RegionMap *map, ImageCache *cache,
                    const char *root, uint8_t *rgb) {
    Record rec;
    int reason = 0;
    int rc = record_parse(ln, REC_MC, &rec, &reason);
    if (rc) return rc;
    Item it;
    Seq *seqs;
    rc = prepare_item(e, mc, ln->line_no, &rec, map, cache, root, rgb, &it, &seqs);
    record_free(&rec);
    return rc ? rc : queue_item(e, &it, seqs);
}

/* One line of --vcr: its Q→A and QA→R items, both prepared before either is queued, so
 * a bad line counts in neither. */
static int add_vcr(Eval *e, const char *path, const JsonlLine *ln, ImageCache *cache, const char *root, uint8_t *rgb) {
    VcrItem v;
    int reason = 0;
    int rc = vcr_item_parse(ln, root, &v, &reason);
    if (rc) return rc;
    Item qa, qar;
    Seq *s_qa = NULL, *s_qar = NULL;
    rc = prepare_item(e, path, ln->line_no, &v.qa, NULL, cache, root, rgb, &qa, &s_qa);
    if (rc) rc = add_note(rc, "the answer choices");
    if (!rc && (rc = prepare_item(e, path, ln->line_no, &v.qar, NULL, cache, root, rgb, &qar, &s_qar))) {
        rc = add_note(rc, "the rationale choices");
        drop_item(&qa, s_qa, qa.n_choices);
    }
    vcr_item_free(&v);
    if (rc) return rc;
    qa.task = TASK_Q_A;
    qar.task = TASK_QA_R;
    if ((rc = queue_item(e, &qa, s_qa))) { drop_item(&qar, s_qar, qar.n_choices); return rc; }
    return queue_item(e, &qar, s_qar);
}

/* exp of the mean next-token loss over the corpus, teacher forced, regions as in eval. */
static int corpus_perplexity(Eval *e, const char *corpus, const char *regions, const char *root, size_t cache_bytes,
                             int skip_bad, int batch, int quiet, double *ppl, long *tokens, long *records) {
    Dataset d;
    int rc = dataset_open(&d, corpus, regions, root, e->tok, &e->m->cfg, cache_bytes, skip_bad);
    if (rc) return rc;
    BatchBuf bb;
    long *idx = malloc(sizeof(long) * (size_t)batch);
    double *lp = malloc(sizeof(double) * (size_t)batch * e->m->cfg.max_text);
    rc = batchbuf_alloc(&bb, &e->m->cfg, batch);
    if (!rc && (!idx || !lp)) rc = vcm_fail(VCM_ERR, "out of memory");
    double total = 0;
    long count = 0, n = dataset_size(&d);
    Progress p;
    if (!quiet) progress_start(&p, 0, n);
    for (long start = 0; !rc && start < n; start += batch) {
        int k = 0;
        for (long r = start; r < n && k < batch; r++) idx[k++] = r;
        rc = dataset_batch(&d, idx, k, 0, (uint64_t)start, EXAMPLE_EVAL, &bb);
        graph_reset(&e->g);
        if (!rc) rc = student_target_logprobs(&e->g, e->m, &bb.b, lp);
        for (long i = 0; !rc && i < (long)bb.b.B * bb.b.T; i++)
            if (bb.b.targets[i] >= 0) { total += lp[i]; count++; }
        if (!rc && !quiet && (now_seconds() - p.last >= 1.0 || start + k == n)) progress_update(&p, start + k, "perplexity %.3f", count ? exp(-total / count) : NAN);
    }
    if (!quiet) progress_end(&p);
    *ppl = count ? exp(-total / (double)count) : NAN;
    *tokens = count;
    *records = n;
    if (rc == VCM_OK && d.n_skipped && !quiet) fprintf(stderr, "vcm eval: %ld bad corpus records skipped\n", d.n_skipped);
    if (!rc) *records = n - d.n_skipped;
    batchbuf_free(&bb);
    free(idx);
    free(lp);
    dataset_close(&d);
    return rc;
}

static long count_lines(const char *path) {
    JsonlReader r;
    JsonlLine ln;
    long n = 0;
    if (jsonl_open(&r, path)) return 0;
    while (!jsonl_next(&r, &ln) && ln.text) n++;
    jsonl_close(&r);
    return n;
}

/* Every line of an --mc (vcr 0) or --vcr (vcr 1) file, streamed; the accuracy so far
 * on stderr at most once a second. */
static int run_file(Eval *e, const char *path, int vcr, const RegionMap *map, ImageCache *cache, const char *root,
                    uint8_t *rgb, int limit, int skip_bad, int quiet, long *skipped) {
    long total = count_lines(path), seen = 0, last_n = 0;
    if (limit && limit < total) total = limit;
    JsonlReader rd;
    if (jsonl_open(&rd, path)) return VCM_EINPUT;
    Progress p;
    long *n = vcr ? &e->vcr_n : &e->n, *right = vcr ? &e->vcr_q_a : &e->correct;
    const char *what = vcr ? "Q->A %.4f" : "accuracy %.4f";
    int rc = VCM_OK;
    if (!quiet) progress_start(&p, 0, total);
    for (;;) {
        JsonlLine ln;
        if (limit && seen >= limit) break;
        if ((rc = jsonl_next(&rd, &ln))) {
            if (!skip_bad) break;
            (*skipped)++;
            rc = VCM_OK;
            continue;
        }
        if (!ln.text) break;
        seen++;
        rc = vcr ? add_vcr(e, path, &ln, cache, root, rgb) : add_item(e, path, &ln, map, cache, root, rgb);
        if (rc == VCM_EINPUT && skip_bad) { (*skipped)++; rc = VCM_OK; continue; }
        if (rc) break;
        if (!quiet && *n != last_n && now_seconds() - p.last >= 1.0 && (last_n = *n))
            progress_update(&p, seen, what, *n ? (double)*right / (double)*n : 0.0);
    }
    if (!rc) rc = flush(e);
    if (!quiet) { progress_update(&p, seen, what, *n ? (double)*right / (double)*n : 0.0); progress_end(&p); }
    jsonl_close(&rd);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *tok_path = NULL, *mc = NULL, *regions = NULL, *root = ".", *corpus = NULL, *vcr = NULL;
    const char *score = "mean", *pred_path = NULL, *method = "kv", *open_path = NULL, *open_pred_path = NULL;
    int batch = 32, skip_bad = 0, limit = 0, threads = 0, cache_mb = 256, quiet = 0;
    Flag flags[] = {
        {"model", 's', &model, "checkpoint from vcm train (required)"},
        {"tokenizer", 's', &tok_path, "a tokenizer other than the one saved in the checkpoint"},
        {"mc", 's', &mc, "multiple-choice items, .jsonl or .jsonl.gz (also the LSKD release's evaluation format)"},
        {"vcr", 's', &vcr, "VCR items (val.jsonl); metadata files under --images-root: Q->A, QA->R, Q->AR"},
        {"open", 's', &open_path, "open-ended items (corpus records with the true answer, e.g. open_test.jsonl)"},
        {"open-predictions", 's', &open_pred_path, "write one JSON line per open-ended item (answer, truth, verdict)"},
        {"regions", 's', &regions, "region mapping of their images (not needed when every item carries its boxes)"},
        {"images-root", 's', &root, "directory the image (and VCR metadata) paths are relative to (default .)"},
        {"corpus", 's', &corpus, "also the perplexity of this corpus (same mapping and images)"},
        {"score", 's', &score, "mean (default): mean log-prob per choice token; sum: total log-prob"},
        {"method", 's', &method, "kv (default): prefill once per item, choices through the KV cache;\n"
         "                             batch: every choice a full teacher-forced forward, --batch at a time"},
        {"batch", 'i', &batch, "texts per forward pass of --method batch and --corpus (default 32) [1..65536]"},
        {"limit", 'i', &limit, "only the first N items (default all) [0..]"},
        {"predictions", 's', &pred_path, "write one JSON line per item (label, pred, scores) here"},
        {"skip-bad", 'b', &skip_bad, "skip bad items (counted in \"skipped\") instead of stopping"},
        {"cache-mb", 'i', &cache_mb, "memory for decoded images (default 256) [0..16777216]"},
        {"threads", 'i', &threads, "threads (default VCM_THREADS or all cores) [0..1024]"},
        {"quiet", 'b', &quiet, "no progress on stderr"},
        {0}};
    int rc = flags_parse(USAGE, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (strcmp(score, "mean") && strcmp(score, "sum")) return tool_error("eval", 2, "--score is mean or sum, not \"%s\"", score);
    if (strcmp(method, "kv") && strcmp(method, "batch")) return tool_error("eval", 2, "--method is kv or batch, not \"%s\"", method);
    if (!mc && !open_path && !vcr)
        return tool_error("eval", 2, "give --mc ITEMS.jsonl, --open OPEN.jsonl, --vcr VAL.jsonl or several (see --help)");
    vcm_threads_init(threads);
    Student m;
    Tokenizer tok;
    if ((rc = infer_load("eval", model, tok_path, &m, &tok))) return rc;
    Eval e;
    memset(&e, 0, sizeof e);
    AtomicFile pred_af = {0}, open_af = {0};
    e.m = &m;
    e.tok = &tok;
    e.use_sum = !strcmp(score, "sum");
    e.use_kv = !strcmp(method, "kv");
    RegionMap map;
    memset(&map, 0, sizeof map);
    ImageCache *cache = NULL;
    uint8_t *rgb = malloc(3 * (size_t)m.cfg.image * m.cfg.image);
    long skipped = 0, vcr_skipped = 0;
    double t0 = now_seconds();
    size_t cache_bytes = (size_t)(cache_mb > 0 ? cache_mb : 0) << 20;
    if (!rgb) { rc = tool_error("eval", 1, "out of memory"); goto done; }
    if (graph_init(&e.g, (size_t)16 << 20) || grow_batch(&e, batch) || image_cache_new(&cache, cache_bytes, NULL)) {
        rc = tool_error("eval", 1, "%s", vcm_error());
        goto done;
    }
    e.g.grad_enabled = 0;
    if (e.use_kv && infer_init(&e.in, &m)) { rc = tool_error("eval", 1, "%s", vcm_error()); goto done; }
    if (regions && regionmap_load(regions, &map, skip_bad, NULL)) { rc = tool_error("eval", 2, "%s", vcm_error()); goto done; }
    /* The prediction files replace an existing one only once the run is complete. */
    if (pred_path) {
        if (atomic_file_open(&pred_af, pred_path)) { rc = tool_error("eval", 1, "%s", vcm_error()); goto done; }
        e.pred = pred_af.f;
    }
    if (open_pred_path && open_path) {
        if (atomic_file_open(&open_af, open_pred_path)) { rc = tool_error("eval", 1, "%s", vcm_error()); goto done; }
    }
    for (int f = 0; f < 2; f++) {   /* --mc, then --vcr */
        const char *path = f ? vcr : mc;
        long *sk = f ? &vcr_skipped : &skipped;
        if (!path) continue;
        int r = run_file(&e, path, f, map.path ? &map : NULL, cache, root, rgb, limit, skip_bad, quiet, sk);
        if (r) { rc = tool_error("eval", r, "%s", vcm_error()); goto done; }
    }
    double ppl = NAN;
    long ptok = 0, prec = 0;
    if (corpus) {
        int r = corpus_perplexity(&e, corpus, regions, root, cache_bytes, skip_bad, batch, quiet, &ppl, &ptok, &prec);
        if (r) { rc = tool_error("eval", r, "%s", vcm_error()); goto done; }
    }
    OpenReport orep;
    if (open_path) {
        int r = eval_open(open_path, &m, &tok, map.path ? &map : NULL, cache, root, limit, skip_bad, quiet, open_af.f,
                          &orep);
        if (r) { rc = tool_error("eval", r, "%s", vcm_error()); goto done; }
    }
    if (e.pred) {
        e.pred = NULL;
        if (atomic_file_commit(&pred_af)) { rc = tool_error("eval", 1, "%s", vcm_error()); goto done; }
    }
    if (open_af.f && atomic_file_commit(&open_af)) { rc = tool_error("eval", 1, "%s", vcm_error()); goto done; }
    printf("{\"n\":%ld", e.n);
    put_rate("accuracy", e.correct, e.n);
    printf(",\"n_other_region\":%ld", e.n_other);
    put_rate("accuracy_other_region", e.correct_other, e.n_other);
    printf(",\"n_grounding\":%ld", e.n_ground);
    put_rate("accuracy_grounding", e.correct_ground, e.n_ground);
    printf(",\"n_named\":%ld", e.n - e.n_ground);
    put_rate("accuracy_named", e.correct - e.correct_ground, e.n - e.n_ground);
    printf(",\"correct\":%ld,\"skipped\":%ld,\"score\":\"%s\",\"method\":\"%s\"", e.correct, skipped, score, method);
    if (vcr) {   /* the paper's VCR figures: Q→A, QA→R (the right answer in the prompt), Q→AR (both right) */
        printf(",\"vcr\":{\"n\":%ld", e.vcr_n);
        put_rate("q_a", e.vcr_q_a, e.vcr_n);
        put_rate("qa_r", e.vcr_qa_r, e.vcr_n);
        put_rate("q_ar", e.vcr_q_ar, e.vcr_n);
        printf(",\"correct_q_a\":%ld,\"correct_qa_r\":%ld,\"correct_q_ar\":%ld,\"skipped\":%ld}", e.vcr_q_a,
               e.vcr_qa_r, e.vcr_q_ar, vcr_skipped);
    }
    if (open_path) {
        printf(",\"open\":");
        eval_open_json(stdout, &orep);
    }
    if (corpus) {
        printf(",\"perplexity\":");
        vcm_json_put_number(stdout, ppl);
        printf(",\"corpus_tokens\":%ld,\"corpus_records\":%ld", ptok, prec);
    }
    printf(",\"seconds\":%.2f}\n", now_seconds() - t0);
    rc = 0;
done:
    for (int i = 0; i < e.n_seqs; i++) free(e.seqs[i].ids);
    for (int i = 0; i < e.n_items; i++) item_free(&e.items[i]);
    free(e.items); free(e.seqs); free(e.lp);
    free(e.b.images); free(e.b.boxes); free(e.b.n_regions); free(e.b.tokens); free(e.b.targets);
    if (e.g.arena.blocks || e.g.nodes) graph_free(&e.g);
    if (e.in.region_vec) infer_free(&e.in);
    if (pred_af.f) atomic_file_abort(&pred_af);   /* a failed run leaves the old files as they were */
    if (open_af.f) atomic_file_abort(&open_af);
    if (cache) image_cache_free(cache);
    if (map.path) regionmap_free(&map);
    free(rgb);
    infer_unload(&m, &tok);
    return rc;
}
