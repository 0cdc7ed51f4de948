/* vcm eval --open: the open-ended evaluation. Each item (a corpus-format record with its
 * true answer, as `vcm synth` writes open_*.jsonl) is asked greedily, with every region
 * of its image given and numbered as in the file (EXAMPLE_KEEP_IDS) — the way a user of
 * `vcm generate` asks — and the generated answer is judged by open_judge: does it name
 * the asked region(s), and is it the true answer. Also the probability the model gives
 * the true first answer token when that is a region id: whether it carries the id of the
 * question into the answer. docs/INFERENCE.md, "Open-ended evaluation". */
#include "tools/infer_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static OpenGroup *group_for(OpenReport *r, const char *name) {
    if (!name) name = "unknown";
    for (int i = 0; i < r->n_types; i++)
        if (!strcmp(r->types[i].name, name)) return &r->types[i];
    if (r->n_types == OPEN_MAX_TYPES) return NULL;
    OpenGroup *g = &r->types[r->n_types++];
    memset(g, 0, sizeof *g);
    snprintf(g->name, sizeof g->name, "%s", name);
    return g;
}

static void count(OpenGroup *g, const OpenVerdict *v) {
    if (!g) return;
    g->n++;
    g->refers += v->refers;
    g->correct += v->correct;
}

typedef struct OpenCtx {
    Student *m;
    const Tokenizer *tok;
    Infer in;
    float *chw;
    uint8_t *rgb;
    int32_t *ids, *out;
    char *text;
    size_t text_cap;
} OpenCtx;

/* One item: VCM_EINPUT with FILE:LINE for a bad one. */
static int open_item(OpenCtx *c, const char *path, const JsonlLine *ln, const RegionMap *map, ImageCache *cache,
                     const char *root, OpenReport *rep, FILE *pred) {
    const ModelConfig *cfg = &c->m->cfg;
    int text_only = cfg->region_input == REGION_INPUT_TEXT, reason = 0;
    Record rec;
    int rc = record_parse(ln, REC_CORPUS, &rec, &reason);
    if (rc) return rc;
    Example ex;
    memset(&ex, 0, sizeof ex);
    char *q = NULL, *truth = NULL, *prompt = NULL, id_names[VCM_MAX_REGIONS][16];
    const char *names[VCM_MAX_REGIONS] = {0};
    int asked[VCM_MAX_REGIONS] = {0};
    rc = record_check_regions(&rec, path, map, &reason);
    const RegionEntry *ent = rc ? NULL : record_regions(&rec, map);   /* its references, else the mapping's */
    int ow = cfg->image, oh = cfg->image;
    uint64_t rng = 0;
    if (!rc && rec.n_region < 1) rc = vcm_fail(VCM_EINPUT, "%s:%ld: field \"region\": the asked region ids are required", path, ln->line_no);
    if (!rc && !text_only) {
        char ipath[4096];
        snprintf(ipath, sizeof ipath, "%s/%s", root, rec.image);
        if ((rc = image_cache_get(cache, ipath, cfg->image, c->rgb, &ow, &oh)))
            rc = vcm_fail(rc, "%s:%ld: %s", path, ln->line_no, vcm_error());
    }
    if (!rc && (rc = example_build(&rec, ent, ow, oh, cfg->image, cfg->image, &rng, EXAMPLE_EVAL | EXAMPLE_KEEP_IDS, &ex)))
        rc = vcm_fail(rc, "%s:%ld: %s", path, ln->line_no, vcm_error());
    int n = ex.n_regions;
    if (!rc) {
        q = text_only ? words_describe(&rec.question, ent) : words_render(&rec.question, ex.orig_id, n);
        truth = q ? (text_only ? words_describe(&rec.answer, ent) : words_render(&rec.answer, ex.orig_id, n)) : NULL;
        if (!q || !truth) rc = vcm_fail(VCM_EINPUT, "%s:%ld: %s", path, ln->line_no, vcm_error());
    }
    for (int k = 0; !rc && k < n; k++) {
        for (int i = 0; i < rec.n_region; i++) asked[k] |= rec.region[i] == ex.orig_id[k];
        if (text_only) {
            const RegionBox *bx = region_entry_box(ent, ex.orig_id[k]);
            names[k] = bx ? bx->description : NULL;
        } else {
            snprintf(id_names[k], sizeof id_names[k], "[%d]", k);
            names[k] = id_names[k];
        }
    }
    if (!rc) {
        size_t pl = strlen(q) + 32;
        if (!(prompt = malloc(pl))) rc = vcm_fail(VCM_ERR, "out of memory");
        else snprintf(prompt, pl, "question: %s answer:", q);
    }
    long np = 0;
    if (!rc) {
        memset(c->chw, 0, sizeof(float) * 3 * (size_t)cfg->image * cfg->image);
        if (!text_only) model_image(cfg, c->rgb, (const float(*)[4])ex.box, n, c->chw);
        np = bpe_encode(c->tok, prompt, strlen(prompt), c->ids + 1, (size_t)cfg->max_text);
        if (np < 0) rc = VCM_ERR;
        else if (np + 1 > cfg->max_text)
            rc = vcm_fail(VCM_EINPUT, "%s:%ld: the prompt is %ld tokens; the model reads at most %d", path, ln->line_no,
                          np + 1, cfg->max_text);
    }
    if (!rc) {
        c->ids[0] = BPE_BOS;
        int nreg = cfg->region_input == REGION_INPUT_ROI ? n : 0, n_regions[1] = {nreg};
        Batch b = {1, c->chw, nreg, &ex.box[0][0], n_regions, (int)np + 1, c->ids, NULL};
        rc = infer_prefill(&c->in, &b);
    }
    double p_first = -1;
    if (!rc && !text_only && rec.answer.n > 0 && !rec.answer.w[0].text && rec.answer.w[0].n_ids == 1) {
        /* The true answer starts with an id: feed what comes before it (the space
         * piece), then read p(id). The tokens come from encoding prompt + truth whole. */
        size_t fl = strlen(prompt) + strlen(truth) + 2;
        char *full = malloc(fl);
        int32_t *fid = malloc(sizeof(int32_t) * (fl + 1));
        long nf = -1;
        if (full && fid) {
            snprintf(full, fl, "%s %s", prompt, truth);
            nf = bpe_encode(c->tok, full, strlen(full), fid, fl + 1);
        }
        if (nf < 0) rc = full && fid ? VCM_ERR : vcm_fail(VCM_ERR, "out of memory");
        else if (nf > np && !memcmp(fid, c->ids + 1, sizeof(int32_t) * (size_t)np)) {
            long j = np;
            while (j < nf && (fid[j] < BPE_REGION0 || fid[j] >= BPE_REGION0 + BPE_N_REGIONS)) j++;
            for (long t = np; !rc && t < j; t++) rc = infer_step(&c->in, fid[t]);
            if (!rc && j < nf) p_first = exp(lm_log_softmax_at(c->in.kv.logits, cfg->vocab, fid[j]));
            infer_rewind(&c->in);
        }
        free(full);
        free(fid);
    }
    int nout = 0;
    double lp;
    if (!rc) {
        GenParams gp = {{0.0f, 0, 0.0f}, cfg->max_text, c->tok->vocab, text_only ? 0 : n};
        uint64_t g_rng = 1;
        rc = infer_generate(&c->in, &gp, &g_rng, c->out, cfg->max_text + 1, &nout, &lp);
    }
    QarParts parts = {0};
    if (!rc) {
        size_t pl = strlen(prompt);
        if (pl >= c->text_cap) pl = c->text_cap - 1;
        memcpy(c->text, prompt, pl);
        long tl = bpe_decode(c->tok, c->out, (size_t)nout, c->text + pl, c->text_cap - pl - 1, 1);
        if (tl < 0) rc = VCM_ERR;
        else {
            if ((size_t)tl > c->text_cap - pl - 1) tl = (long)(c->text_cap - pl - 1);
            c->text[pl + (size_t)tl] = 0;
            infer_split_text(c->text, &parts);
        }
    }
    if (!rc) {
        OpenVerdict v;
        open_judge(parts.a ? parts.a : "", parts.a ? parts.an : 0, truth, names, asked, n, &v);
        count(&rep->all, &v);
        count(rec.relational == 1 ? &rep->relational : rec.relational == 0 ? &rep->literal : NULL, &v);
        count(group_for(rep, rec.qtype), &v);
        /* one asked region that the question names: its id should start the answer (a
         * copy). Otherwise (several asked, or "which of them ...?") the answer's id is a
         * choice among the regions: a matter of content. */
        int copied = 0;
        for (int i = 0; p_first >= 0 && rec.n_region == 1 && i < rec.question.n; i++)
            for (int j = 0; !rec.question.w[i].text && j < rec.question.w[i].n_ids; j++)
                copied |= rec.question.w[i].ids[j] == rec.region[0];
        if (copied) { rep->n_first_id++; rep->sum_first_id += p_first; }
        else if (p_first >= 0) { rep->n_first_multi++; rep->sum_first_multi += p_first; }
        if (pred) {
            fprintf(pred, "{\"line\":%ld,\"qtype\":", ln->line_no);
            if (rec.qtype) vcm_json_put_string(pred, rec.qtype, strlen(rec.qtype));
            else fputs("null", pred);
            fputs(",\"question\":", pred);
            vcm_json_put_string(pred, q, strlen(q));
            fputs(",\"answer\":", pred);
            if (parts.a) vcm_json_put_string(pred, parts.a, parts.an);
            else fputs("null", pred);
            fputs(",\"truth\":", pred);
            vcm_json_put_string(pred, truth, strlen(truth));
            fprintf(pred, ",\"refers\":%s,\"correct\":%s,\"first_id_prob\":", v.refers ? "true" : "false",
                    v.correct ? "true" : "false");
            vcm_json_put_number(pred, p_first >= 0 ? p_first : NAN);
            fputs("}\n", pred);
        }
    }
    free(q); free(truth); free(prompt);
    example_free(&ex);
    record_free(&rec);
    return rc;
}

int eval_open(const char *path, Student *m, const Tokenizer *tok, const RegionMap *map, ImageCache *cache,
              const char *root, long limit, int skip_bad, int quiet, FILE *pred, OpenReport *rep) {
    const ModelConfig *cfg = &m->cfg;
    memset(rep, 0, sizeof *rep);
    snprintf(rep->all.name, sizeof rep->all.name, "all");
    OpenCtx c;
    memset(&c, 0, sizeof c);
    c.m = m;
    c.tok = tok;
    c.text_cap = 64 * ((size_t)cfg->max_text + 1) + 4096;
    c.chw = malloc(sizeof(float) * 3 * (size_t)cfg->image * cfg->image);
    c.rgb = malloc(3 * (size_t)cfg->image * cfg->image);
    c.ids = malloc(sizeof(int32_t) * ((size_t)cfg->max_text + 2));
    c.out = malloc(sizeof(int32_t) * ((size_t)cfg->max_text + 2));
    c.text = malloc(c.text_cap);
    int rc = VCM_OK, have_in = 0;
    if (!c.chw || !c.rgb || !c.ids || !c.out || !c.text) rc = vcm_fail(VCM_ERR, "out of memory");
    if (!rc && !(rc = infer_init(&c.in, m))) have_in = 1;
    JsonlReader rd;
    int have_rd = 0;
    if (!rc && !(rc = jsonl_open(&rd, path))) have_rd = 1;
    Progress p;
    long seen = 0;
    double t0 = now_seconds();
    if (!rc && !quiet) progress_start(&p, 0, limit);
    while (!rc) {
        JsonlLine ln;
        if (limit && seen >= limit) break;
        if ((rc = jsonl_next(&rd, &ln))) {
            if (skip_bad && rc == VCM_EINPUT) { rep->skipped++; rc = VCM_OK; continue; }
            break;
        }
        if (!ln.text) break;
        seen++;
        rc = open_item(&c, path, &ln, map, cache, root, rep, pred);
        if (rc == VCM_EINPUT && skip_bad) { rep->skipped++; rc = VCM_OK; }
        if (!rc && !quiet && now_seconds() - p.last >= 1.0)
            progress_update(&p, seen, "open-ended: refers %.3f correct %.3f",
                            rep->all.n ? (double)rep->all.refers / rep->all.n : 0.0,
                            rep->all.n ? (double)rep->all.correct / rep->all.n : 0.0);
    }
    if (!quiet && have_rd) progress_end(&p);
    rep->seconds = now_seconds() - t0;
    if (have_rd) jsonl_close(&rd);
    if (have_in) infer_free(&c.in);
    free(c.chw); free(c.rgb); free(c.ids); free(c.out); free(c.text);
    return rc;
}

static void put_group(FILE *f, const OpenGroup *g) {
    fprintf(f, "{\"n\":%ld,\"refers\":", g->n);
    vcm_json_put_number(f, g->n ? (double)g->refers / (double)g->n : NAN);
    fputs(",\"correct\":", f);
    vcm_json_put_number(f, g->n ? (double)g->correct / (double)g->n : NAN);
    fputc('}', f);
}

void eval_open_json(FILE *f, const OpenReport *r) {
    fprintf(f, "{\"n\":%ld,\"refers\":", r->all.n);
    vcm_json_put_number(f, r->all.n ? (double)r->all.refers / (double)r->all.n : NAN);
    fputs(",\"correct\":", f);
    vcm_json_put_number(f, r->all.n ? (double)r->all.correct / (double)r->all.n : NAN);
    fprintf(f, ",\"n_first_id\":%ld,\"first_id_prob\":", r->n_first_id);
    vcm_json_put_number(f, r->n_first_id ? r->sum_first_id / (double)r->n_first_id : NAN);
    fprintf(f, ",\"n_first_id_multi\":%ld,\"first_id_prob_multi\":", r->n_first_multi);
    vcm_json_put_number(f, r->n_first_multi ? r->sum_first_multi / (double)r->n_first_multi : NAN);
    fputs(",\"literal\":", f);
    put_group(f, &r->literal);
    fputs(",\"relational\":", f);
    put_group(f, &r->relational);
    fputs(",\"by_type\":{", f);
    for (int i = 0; i < r->n_types; i++) {
        if (i) fputc(',', f);
        vcm_json_put_string(f, r->types[i].name, strlen(r->types[i].name));
        fputc(':', f);
        put_group(f, &r->types[i]);
    }
    fprintf(f, "},\"skipped\":%ld,\"seconds\":%.2f}", r->skipped, r->seconds);
}
