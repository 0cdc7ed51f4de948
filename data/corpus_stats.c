/* `vcm corpus stats`, the library side: one streaming pass, one JSON object. Distinct
 * images/sources/splits are counted in jansson objects used as hash tables; the
 * predictions are kept (8 bytes a record) for exact quantiles. */
#include "data/data.h"
#include "base/base.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Field { long words, min, max, n; } Field;

typedef struct Stats {
    long records, bad, by_kind[REC_KINDS];
    json_t *images, *sources, *splits, *faults, *region_ids, *mentions_hist;
    Field field[3];
    long mentions, multi, max_mentions;
    double *pred;
    long n_pred, cap_pred;
    long votes, accept;
    long mc_items, mc_other_region;
} Stats;

static int bump(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (v) return json_integer_set(v, json_integer_value(v) + 1);
    return json_object_set_new(o, key, json_integer(1));
}

static void field_add(Field *f, const Words *w) {
    if (f->n == 0 || w->n < f->min) f->min = w->n;
    if (w->n > f->max) f->max = w->n;
    f->words += w->n;
    f->n++;
}

typedef struct MentionCtx { Stats *s; long n; int fail; } MentionCtx;

static void on_mention(const int *ids, int n, void *ctx) {
    MentionCtx *c = ctx;
    c->n++;
    if (n > 1) c->s->multi++;
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", ids[i]);
        if (bump(c->s->region_ids, k)) c->fail = 1;
    }
}

static int add_record(Stats *s, const Record *r) {
    s->records++;
    s->by_kind[r->kind]++;
    if (json_object_set_new(s->images, r->image, json_true())) return -1;
    if (r->source && bump(s->sources, r->source)) return -1;
    if (r->split && bump(s->splits, r->split)) return -1;
    if (r->has_synth && bump(s->faults, r->fault ? r->fault : "none")) return -1;
    field_add(&s->field[0], &r->question);
    if (r->kind != REC_MC) {
        field_add(&s->field[1], &r->answer);
        field_add(&s->field[2], &r->rationale);
    }
    MentionCtx c = {s, 0, 0};
    record_each_mention(r, on_mention, &c);
    if (c.fail) return -1;
    s->mentions += c.n;
    if (c.n > s->max_mentions) s->max_mentions = c.n;
    char k[24];
    snprintf(k, sizeof k, "%ld", c.n);
    if (bump(s->mentions_hist, k)) return -1;
    if (r->has_prediction) {
        if (s->n_pred == s->cap_pred) {
            long cap = s->cap_pred ? s->cap_pred * 2 : 1024;
            double *p = realloc(s->pred, (size_t)cap * sizeof *p);
            if (!p) return -1;
            s->pred = p;
            s->cap_pred = cap;
        }
        s->pred[s->n_pred++] = r->prediction;
    }
    s->votes += r->n_votes;
    s->accept += r->n_accept;
    if (r->kind == REC_MC) {
        s->mc_items++;
        if (r->distractor_other_region == 1) s->mc_other_region++;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between closest ranks (numpy's default). */
static double quantile(const double *v, long n, double q) {
    double pos = q * (double)(n - 1);
    long i = (long)floor(pos);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

static int cmp_key(const void *a, const void *b) {
    long x = atol(*(const char *const *)a), y = atol(*(const char *const *)b);
    return (x > y) - (x < y);
}

/* The same counts with the integer keys in numeric order ("2" before "10"). */
static json_t *numeric_order(json_t *o) {
    size_t n = json_object_size(o), i = 0;
    const char **keys = malloc((n ? n : 1) * sizeof *keys);
    json_t *r = json_object();
    if (!keys || !r) { free(keys); json_decref(r); return NULL; }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) keys[i++] = k;
    qsort(keys, n, sizeof *keys, cmp_key);
    for (i = 0; i < n; i++) json_object_set(r, keys[i], json_object_get(o, keys[i]));
    free(keys);
    return r;
}

static json_t *field_json(const Field *f) {
    return json_pack("{s:I,s:f,s:I,s:I}", "records", (json_int_t)f->n, "mean_words",
                     f->n ? (double)f->words / (double)f->n : 0.0, "min_words", (json_int_t)f->min, "max_words",
                     (json_int_t)f->max);
}

static json_t *to_json(const char *path, Stats *s) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "file", json_string(path));
    json_object_set_new(o, "records", json_integer(s->records));
    if (s->bad) json_object_set_new(o, "skipped_bad", json_integer(s->bad));
    json_object_set_new(o, "kinds", json_pack("{s:I,s:I,s:I}", "corpus", (json_int_t)s->by_kind[REC_CORPUS],
                                              "annotation", (json_int_t)s->by_kind[REC_ANNOTATION], "mc",
                                              (json_int_t)s->by_kind[REC_MC]));
    json_object_set_new(o, "images", json_integer((json_int_t)json_object_size(s->images)));
    json_object_set(o, "sources", s->sources);
    json_object_set(o, "splits", s->splits);
    json_t *w = json_object();
    json_object_set_new(w, "question", field_json(&s->field[0]));
    if (s->field[1].n) json_object_set_new(w, "answer", field_json(&s->field[1]));
    if (s->field[2].n) json_object_set_new(w, "rationale", field_json(&s->field[2]));
    json_object_set_new(o, "words", w);
    json_object_set_new(o, "mentions", json_pack("{s:I,s:f,s:I,s:I,s:o}", "total", (json_int_t)s->mentions,
                                                 "per_record_mean",
                                                 s->records ? (double)s->mentions / (double)s->records : 0.0,
                                                 "per_record_max", (json_int_t)s->max_mentions, "multi_id",
                                                 (json_int_t)s->multi, "per_record_histogram",
                                                 numeric_order(s->mentions_hist)));
    json_object_set_new(o, "region_ids", numeric_order(s->region_ids));
    if (s->n_pred) {
        qsort(s->pred, (size_t)s->n_pred, sizeof *s->pred, cmp_double);
        json_object_set_new(o, "prediction",
                            json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "n", (json_int_t)s->n_pred, "min",
                                      s->pred[0], "p10", quantile(s->pred, s->n_pred, 0.1), "p25",
                                      quantile(s->pred, s->n_pred, 0.25), "p50", quantile(s->pred, s->n_pred, 0.5),
                                      "p75", quantile(s->pred, s->n_pred, 0.75), "p90",
                                      quantile(s->pred, s->n_pred, 0.9), "max", s->pred[s->n_pred - 1]));
    }
    if (json_object_size(s->faults)) json_object_set(o, "synth_faults", s->faults);
    if (s->votes)
        json_object_set_new(o, "votes", json_pack("{s:I,s:I}", "total", (json_int_t)s->votes, "accept",
                                                  (json_int_t)s->accept));
    if (s->mc_items)
        json_object_set_new(o, "mc", json_pack("{s:I,s:I}", "items", (json_int_t)s->mc_items,
                                               "distractor_other_region", (json_int_t)s->mc_other_region));
    return o;
}

int corpus_stats(const char *path, int skip_bad, json_t **out, CorpusProgress progress, void *ctx) {
    *out = NULL;
    Stats s;
    memset(&s, 0, sizeof s);
    s.images = json_object();
    s.sources = json_object();
    s.splits = json_object();
    s.faults = json_object();
    s.region_ids = json_object();
    s.mentions_hist = json_object();
    JsonlReader rd;
    int rc = VCM_OK;
    if (!s.images || !s.sources || !s.splits || !s.faults || !s.region_ids || !s.mentions_hist)
        rc = vcm_fail(VCM_ERR, "out of memory");
    else
        rc = jsonl_open(&rd, path);
    if (!rc) {
        for (;;) {
            JsonlLine ln;
            Record r;
            if ((rc = jsonl_next(&rd, &ln)) || !ln.text) {
                if (rc && skip_bad && strstr(vcm_error(), "line longer")) { s.bad++; rc = VCM_OK; continue; }
                break;
            }
            long seen = s.records + s.bad + 1;
            if (progress && seen % CORPUS_PROGRESS_EVERY == 0) progress(seen, ctx);
            if ((rc = record_parse(&ln, REC_ANY, &r, NULL))) {
                if (rc == VCM_EINPUT && skip_bad) { s.bad++; rc = VCM_OK; continue; }
                break;
            }
            int fail = add_record(&s, &r);
            record_free(&r);
            if (fail) { rc = vcm_fail(VCM_ERR, "%s: out of memory", path); break; }
        }
        jsonl_close(&rd);
    }
    if (!rc && !(*out = to_json(path, &s))) rc = vcm_fail(VCM_ERR, "out of memory");
    json_decref(s.images);
    json_decref(s.sources);
    json_decref(s.splits);
    json_decref(s.faults);
    json_decref(s.region_ids);
    json_decref(s.mentions_hist);
    free(s.pred);
    return rc;
}
