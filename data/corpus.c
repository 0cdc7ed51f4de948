/* Corpus, annotation and multiple-choice records: one JSON line → a typed Record.
 * Every type problem is reported with the file, the line and the field's path
 * (question[2][0]); the parsed record owns its strings in one small pool. */
#include "data/data.h"
#include "data/json_internal.h"
#include "base/base.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- a bump pool */

typedef struct PoolBlock {
    struct PoolBlock *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} PoolBlock;

static void *pool_alloc(Record *r, size_t n) {
    n = (n + 15) & ~(size_t)15;
    PoolBlock *b = r->mem_;
    if (!b || b->used + n > b->cap) {
        size_t cap = n > 4000 ? n : 4000;
        PoolBlock *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->next = b;
        nb->used = 0;
        nb->cap = cap;
        r->mem_ = b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

void record_free(Record *r) {
    PoolBlock *b = r->mem_;
    while (b) {
        PoolBlock *n = b->next;
        free(b);
        b = n;
    }
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- parsing */

typedef struct Ctx {
    const JsonlLine *ln;
    Record *r;
    int *reason;
} Ctx;

static int fail(Ctx *c, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Ctx *c, int reason, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->reason) *c->reason = reason;
    return vcm_fail(reason == BAD_NONE ? VCM_ERR : VCM_EINPUT, "%s:%ld: %s", c->ln->path,
                    c->ln->line_no, msg);
}

static const char *str_dup(Ctx *c, const json_t *v) {
    size_t n = json_string_length(v);
    char *s = pool_alloc(c->r, n + 1);
    if (!s) return NULL;
    memcpy(s, json_string_value(v), n);
    s[n] = 0;
    return s;
}

#define OOM(c) fail(c, BAD_NONE, "out of memory")

/* An optional string field; required → missing is an error. */
static int get_string(Ctx *c, json_t *obj, const char *key, int required, const char **out) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) return required ? fail(c, BAD_MISSING_FIELD, "missing field \"%s\"", key) : VCM_OK;
    if (!json_is_string(v))
        return fail(c, BAD_WRONG_TYPE, "field \"%s\": expected a string, got %s", key, jtype_name(v));
    if (!(*out = str_dup(c, v))) return OOM(c);
    return VCM_OK;
}

static int get_id(Ctx *c, const json_t *v, const char *path, int *out) {
    if (!json_is_integer(v))
        return fail(c, BAD_WRONG_TYPE, "field \"%s\": a region id must be an integer, got %s", path,
                    jtype_name(v));
    json_int_t x = json_integer_value(v);
    if (x < 0 || x > INT_MAX)
        return fail(c, BAD_VALUE, "field \"%s\": region id %lld is negative or too large", path,
                    (long long)x);
    *out = (int)x;
    return VCM_OK;
}

/* A list of region ids ("region", "region_all"): n = -1 when absent. */
static int get_id_list(Ctx *c, json_t *obj, const char *key, const int **ids, int *n) {
    json_t *v = json_object_get(obj, key);
    *ids = NULL;
    *n = -1;
    if (!v) return VCM_OK;
    if (!json_is_array(v))
        return fail(c, BAD_WRONG_TYPE, "field \"%s\": expected a list of region ids, got %s", key,
                    jtype_name(v));
    size_t k = json_array_size(v);
    int *a = pool_alloc(c->r, (k ? k : 1) * sizeof *a);
    if (!a) return OOM(c);
    for (size_t i = 0; i < k; i++) {
        char path[96];
        snprintf(path, sizeof path, "%s[%zu]", key, i);
        if (get_id(c, json_array_get(v, i), path, &a[i])) return VCM_EINPUT;
    }
    *ids = a;
    *n = (int)k;
    return VCM_OK;
}

/* A list of words: strings, or mentions = non-empty lists of integer ids. */
static int parse_words(Ctx *c, const json_t *v, const char *path, Words *out) {
    if (!json_is_array(v))
        return fail(c, BAD_WRONG_TYPE, "field \"%s\": expected a list of words, got %s", path,
                    jtype_name(v));
    size_t n = json_array_size(v);
    out->n = (int)n;
    out->w = pool_alloc(c->r, (n ? n : 1) * sizeof *out->w);
    if (!out->w) return OOM(c);
    for (size_t i = 0; i < n; i++) {
        const json_t *x = json_array_get(v, i);
        Word *w = &out->w[i];
        memset(w, 0, sizeof *w);
        if (json_is_string(x)) {
            if (!(w->text = str_dup(c, x))) return OOM(c);
            continue;
        }
        if (!json_is_array(x))
            return fail(c, BAD_WRONG_TYPE,
                        "field \"%s[%zu]\": a word must be a string or a list of region ids, got %s",
                        path, i, jtype_name(x));
        size_t k = json_array_size(x);
        if (k == 0)
            return fail(c, BAD_VALUE, "field \"%s[%zu]\": empty region mention []", path, i);
        int *ids = pool_alloc(c->r, k * sizeof *ids);
        if (!ids) return OOM(c);
        for (size_t j = 0; j < k; j++) {
            char p[128];
            snprintf(p, sizeof p, "%s[%zu][%zu]", path, i, j);
            if (get_id(c, json_array_get(x, j), p, &ids[j])) return VCM_EINPUT;
        }
        w->ids = ids;
        w->n_ids = (int)k;
    }
    return VCM_OK;
}

static int get_words(Ctx *c, json_t *obj, const char *key, int required, int empty_reason, Words *out) {
    json_t *v = json_object_get(obj, key);
    memset(out, 0, sizeof *out);
    if (!v) return required ? fail(c, BAD_MISSING_FIELD, "missing field \"%s\"", key) : VCM_OK;
    if (parse_words(c, v, key, out)) return VCM_EINPUT;
    if (empty_reason && out->n == 0)
        return fail(c, empty_reason, "field \"%s\": empty (no words)", key);
    return VCM_OK;
}

/* ---------------------------------------------------------------- "references"
 * The LSKD release's per-record regions: a list whose element k is region k (or an
 * object "id" → region, as its training code also reads), each {"boxes": [[x0, y0,
 * x1, y1], ...], "obj_guess": string or null, "name", "segms", "tag"}; the last three
 * are not read. The first box is the region's. A box may carry a fifth number (a
 * detector's score, as VCR's boxes do), which is ignored. */

static int ref_box(Ctx *c, const json_t *b, const char *path, float out[4]) {
    size_t n = json_is_array(b) ? json_array_size(b) : 0;
    if (n != 4 && n != 5)
        return fail(c, BAD_BOX, "field \"%s\": expected a box [x0, y0, x1, y1], got %s%s", path, jtype_name(b),
                    json_is_array(b) ? (n < 4 ? " of fewer than 4 numbers" : " of more than 5 numbers") : "");
    for (size_t k = 0; k < n; k++) {
        const json_t *v = json_array_get(b, k);
        if (!json_is_number(v))
            return fail(c, BAD_BOX, "field \"%s[%zu]\": a coordinate must be a number, got %s", path, k, jtype_name(v));
        if (k < 4 && json_number_value(v) < 0)
            return fail(c, BAD_BOX, "field \"%s[%zu]\": negative coordinate %g", path, k, json_number_value(v));
        if (k < 4) out[k] = (float)json_number_value(v);
    }
    if (out[2] < out[0]) return fail(c, BAD_BOX, "field \"%s\": x1 (%g) < x0 (%g)", path, out[2], out[0]);
    if (out[3] < out[1]) return fail(c, BAD_BOX, "field \"%s\": y1 (%g) < y0 (%g)", path, out[3], out[1]);
    return VCM_OK;
}

static int ref_region(Ctx *c, const json_t *v, const char *path, RegionBox *b) {
    char p[96];
    if (!json_is_object(v))
        return fail(c, BAD_WRONG_TYPE, "field \"%s\": expected an object with \"boxes\", got %s", path, jtype_name(v));
    const json_t *boxes = json_object_get(v, "boxes");
    if (!boxes) return fail(c, BAD_MISSING_FIELD, "field \"%s\": missing field \"boxes\"", path);
    if (!json_is_array(boxes) || !json_array_size(boxes))
        return fail(c, json_is_array(boxes) ? BAD_BOX : BAD_WRONG_TYPE,
                    "field \"%s.boxes\": expected a non-empty list of boxes, got %s%s", path, jtype_name(boxes),
                    json_is_array(boxes) ? " (empty)" : "");
    if (json_is_number(json_array_get(boxes, 0)))
        return fail(c, BAD_BOX, "field \"%s.boxes\": expected a list of boxes [[x0, y0, x1, y1], ...], got a list of "
                    "numbers (a box needs its own brackets)", path);
    for (size_t k = 0; k < json_array_size(boxes); k++) {
        float xy[4];
        snprintf(p, sizeof p, "%s.boxes[%zu]", path, k);
        if (ref_box(c, json_array_get(boxes, k), p, xy)) return VCM_EINPUT;
        if (k == 0) b->x0 = xy[0], b->y0 = xy[1], b->x1 = xy[2], b->y1 = xy[3];
    }
    b->n_boxes = (int)json_array_size(boxes);
    const json_t *g = json_object_get(v, "obj_guess");
    if (g && !json_is_null(g)) {
        if (!json_is_string(g))
            return fail(c, BAD_WRONG_TYPE, "field \"%s.obj_guess\": expected a string, got %s", path, jtype_name(g));
        if (!(b->obj_guess = (char *)str_dup(c, g))) return OOM(c);
    }
    return VCM_OK;
}

static int parse_references(Ctx *c, json_t *o) {
    json_t *v = json_object_get(o, "references");
    if (!v || json_is_null(v)) return VCM_OK;
    if (!json_is_array(v) && !json_is_object(v))
        return fail(c, BAD_WRONG_TYPE, "field \"references\": expected a list of regions, got %s", jtype_name(v));
    size_t n = json_is_array(v) ? json_array_size(v) : json_object_size(v);
    RegionEntry *e = pool_alloc(c->r, sizeof *e);
    RegionBox *rb = e ? pool_alloc(c->r, (n ? n : 1) * sizeof *rb) : NULL;
    if (!rb) return OOM(c);
    memset(e, 0, sizeof *e);
    memset(rb, 0, (n ? n : 1) * sizeof *rb);
    e->image = (char *)c->r->image;
    e->line = 0;   /* not a mapping line (data/example.c words its messages on this) */
    e->regions = rb;
    char path[96];
    if (json_is_array(v)) {
        for (size_t k = 0; k < n; k++) {
            snprintf(path, sizeof path, "references[%zu]", k);
            rb[k].id = (int)k;
            if (ref_region(c, json_array_get(v, k), path, &rb[k])) return VCM_EINPUT;
        }
    } else {
        const char *key;
        json_t *x;
        size_t k = 0;
        json_object_foreach(v, key, x) {
            snprintf(path, sizeof path, "references.%.40s", key);
            if (region_key_id(key, &rb[k].id))
                return fail(c, BAD_VALUE, "field \"references\": key \"%.40s\" is not a region id (0, 1, ...)", key);
            if (ref_region(c, x, path, &rb[k])) return VCM_EINPUT;
            k++;
        }
        qsort(rb, n, sizeof *rb, region_box_cmp_id);
        for (size_t i = 1; i < n; i++)
            if (rb[i].id == rb[i - 1].id)
                return fail(c, BAD_VALUE, "field \"references\": region id %d appears twice", rb[i].id);
    }
    e->n_regions = (int)n;
    c->r->references = e;
    return VCM_OK;
}

static int parse_common(Ctx *c, json_t *o) {
    Record *r = c->r;
    if (get_string(c, o, "image", 1, &r->image) || get_string(c, o, "source", 0, &r->source) ||
        get_string(c, o, "split", 0, &r->split) || get_string(c, o, "index", 0, &r->index) ||
        get_id_list(c, o, "region", &r->region, &r->n_region) ||
        get_id_list(c, o, "region_all", &r->region_all, &r->n_region_all))
        return VCM_EINPUT;
    if (!r->image[0]) return fail(c, BAD_VALUE, "field \"image\": empty string");
    if (parse_references(c, o)) return VCM_EINPUT;
    /* The LSKD release's evaluation items call the question "text_input". */
    const char *q = json_object_get(o, "text_input") ? "text_input" : "question";
    return get_words(c, o, q, 1, BAD_EMPTY_QUESTION, &r->question);
}

/* "synth": {"qtype": "use"}: the question type, for per-type figures (optional). */
static int get_qtype(Ctx *c, json_t *synth) {
    json_t *q = json_object_get(synth, "qtype");
    if (!q || json_is_null(q)) return VCM_OK;
    if (!json_is_string(q))
        return fail(c, BAD_WRONG_TYPE, "field \"synth.qtype\": expected a string, got %s", jtype_name(q));
    if (!(c->r->qtype = str_dup(c, q))) return OOM(c);
    json_t *rel = json_object_get(synth, "relational");
    if (rel && !json_is_null(rel)) {
        if (!json_is_boolean(rel))
            return fail(c, BAD_WRONG_TYPE, "field \"synth.relational\": expected true/false, got %s", jtype_name(rel));
        c->r->relational = json_is_true(rel);
    }
    return VCM_OK;
}

static int parse_corpus(Ctx *c, json_t *o) {
    Record *r = c->r;
    if (get_words(c, o, "answer", 1, BAD_EMPTY_TEXT, &r->answer) ||
        get_words(c, o, "rationale", 1, 0, &r->rationale))
        return VCM_EINPUT;
    json_t *p = json_object_get(o, "prediction");
    if (p && !json_is_null(p)) {
        if (!json_is_number(p))
            return fail(c, BAD_WRONG_TYPE, "field \"prediction\": expected a number, got %s", jtype_name(p));
        r->has_prediction = 1;
        r->prediction = json_number_value(p);
    }
    json_t *s = json_object_get(o, "synth");
    if (s) {
        if (!json_is_object(s))
            return fail(c, BAD_WRONG_TYPE, "field \"synth\": expected an object, got %s", jtype_name(s));
        r->has_synth = 1;
        json_t *f = json_object_get(s, "fault");
        if (f && !json_is_null(f)) {
            if (!json_is_string(f))
                return fail(c, BAD_WRONG_TYPE, "field \"synth.fault\": expected null or a string, got %s",
                            jtype_name(f));
            if (!(r->fault = str_dup(c, f))) return OOM(c);
        }
        if (get_qtype(c, s)) return VCM_EINPUT;
    }
    json_t *v = json_object_get(o, "votes");
    if (v) {
        if (!json_is_array(v))
            return fail(c, BAD_WRONG_TYPE, "field \"votes\": expected a list of \"accept\"/\"reject\", got %s",
                        jtype_name(v));
        if (json_array_size(v) == 0) return fail(c, BAD_VALUE, "field \"votes\": empty list");
        r->kind = REC_ANNOTATION;
        r->n_votes = (int)json_array_size(v);
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *x = json_array_get(v, i);
            const char *s2 = json_is_string(x) ? json_string_value(x) : NULL;
            if (!s2)
                return fail(c, BAD_WRONG_TYPE, "field \"votes[%zu]\": expected \"accept\" or \"reject\", got %s",
                            i, jtype_name(x));
            if (!strcmp(s2, "accept")) r->n_accept++;
            else if (strcmp(s2, "reject"))
                return fail(c, BAD_VALUE, "field \"votes[%zu]\": expected \"accept\" or \"reject\", got \"%.40s\"",
                            i, s2);
        }
    }
    return VCM_OK;
}

/* "answer_prefix" (the LSKD evaluation's; "Answer:" when absent): what ends the
 * prompt, trimmed. An LSKD evaluation item shows all its references, as the release's
 * loader draws them all: region_all is filled from them when the item has none. */
static int parse_answer_prefix(Ctx *c, json_t *o) {
    Record *r = c->r;
    if (get_string(c, o, "answer_prefix", 0, &r->answer_prefix)) return VCM_EINPUT;
    if (r->answer_prefix) {
        char *p = (char *)r->answer_prefix;
        size_t n = strlen(p), a = 0;
        while (a < n && (p[a] == ' ' || p[a] == '\t')) a++;
        while (n > a && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
        memmove(p, p + a, n - a);
        p[n - a] = 0;
    }
    if (json_object_get(o, "text_input") && r->references && r->n_region_all < 0) {
        int n = r->references->n_regions, *ids = pool_alloc(r, (n ? n : 1) * sizeof *ids);
        if (!ids) return OOM(c);
        for (int i = 0; i < n; i++) ids[i] = r->references->regions[i].id;
        r->region_all = ids;
        r->n_region_all = n;
    }
    return VCM_OK;
}

static int parse_mc(Ctx *c, json_t *o, json_t *ch) {
    Record *r = c->r;
    r->kind = REC_MC;
    /* The regions shown with the item: "region_all", or "regions" as vcm synth writes. */
    if (r->n_region_all < 0) {
        if (get_id_list(c, o, "regions", &r->region_all, &r->n_region_all)) return VCM_EINPUT;
        if (r->n_region_all >= 0) r->region_all_key = "regions";
    }
    if (!json_is_array(ch))
        return fail(c, BAD_WRONG_TYPE, "field \"choices\": expected a list of word lists, got %s", jtype_name(ch));
    size_t n = json_array_size(ch);
    if (n < 2) return fail(c, BAD_VALUE, "field \"choices\": %zu choice(s), need at least 2", n);
    /* One bound for every reader: vcm eval scores at most this many per item, so
     * corpus validate must not accept what eval then refuses. */
    if (n > MC_MAX_CHOICES)
        return fail(c, BAD_VALUE, "field \"choices\": %zu choices (at most %d)", n, MC_MAX_CHOICES);
    r->n_choices = (int)n;
    r->choices = pool_alloc(r, n * sizeof *r->choices);
    if (!r->choices) return OOM(c);
    for (size_t i = 0; i < n; i++) {
        char path[64];
        json_t *x = json_array_get(ch, i);
        snprintf(path, sizeof path, "choices[%zu]", i);
        if (json_is_object(x)) {   /* the LSKD evaluation's {"text_output": words, "score": ...} */
            if (!(x = json_object_get(x, "text_output")))
                return fail(c, BAD_MISSING_FIELD, "field \"%s\": missing field \"text_output\"", path);
            snprintf(path, sizeof path, "choices[%zu].text_output", i);
        }
        if (parse_words(c, x, path, &r->choices[i])) return VCM_EINPUT;
        if (r->choices[i].n == 0) return fail(c, BAD_EMPTY_TEXT, "field \"%s\": empty (no words)", path);
    }
    json_t *l = json_object_get(o, "label");
    if (!l) return fail(c, BAD_MISSING_FIELD, "missing field \"label\"");
    if (!json_is_integer(l))
        return fail(c, BAD_WRONG_TYPE, "field \"label\": expected an integer, got %s", jtype_name(l));
    json_int_t lab = json_integer_value(l);
    if (lab < 0 || lab >= (json_int_t)n)
        return fail(c, BAD_VALUE, "field \"label\": %lld is out of range for %zu choices", (long long)lab, n);
    r->label = (int)lab;
    r->distractor_other_region = -1;
    json_t *d = json_object_get(o, "distractor_other_region");
    if (d && !json_is_null(d)) {
        if (!json_is_boolean(d))
            return fail(c, BAD_WRONG_TYPE, "field \"distractor_other_region\": expected true/false, got %s",
                        jtype_name(d));
        r->distractor_other_region = json_is_true(d);
    }
    json_t *gr = json_object_get(o, "grounding");
    if (gr && !json_is_null(gr)) {
        if (!json_is_boolean(gr))
            return fail(c, BAD_WRONG_TYPE, "field \"grounding\": expected true/false, got %s", jtype_name(gr));
        r->grounding = json_is_true(gr);
    }
    json_t *s = json_object_get(o, "synth");
    if (s && json_is_object(s) && get_qtype(c, s)) return VCM_EINPUT;
    /* An MC item may carry answer/rationale (e.g. the right answer); read them if so. */
    if (get_words(c, o, "answer", 0, 0, &r->answer) || get_words(c, o, "rationale", 0, 0, &r->rationale))
        return VCM_EINPUT;
    return parse_answer_prefix(c, o);
}

int record_parse(const JsonlLine *ln, int want, Record *r, int *reason) {
    memset(r, 0, sizeof *r);
    if (reason) *reason = BAD_NONE;
    json_t *o;
    if (jsonl_parse(ln, &o)) {
        if (reason) *reason = BAD_JSON_SYNTAX;
        return VCM_EINPUT;
    }
    int rc = record_from_json(ln, o, want, r, reason);
    json_decref(o);
    return rc;
}

int record_from_json(const JsonlLine *ln, struct json_t *o, int want, Record *r, int *reason) {
    memset(r, 0, sizeof *r);
    r->line = ln->line_no;
    r->n_region = r->n_region_all = -1;
    r->region_all_key = "region_all";
    r->distractor_other_region = -1;
    r->grounding = -1;
    r->relational = -1;
    if (reason) *reason = BAD_NONE;
    Ctx c = {ln, r, reason};
    int rc;
    if (!json_is_object(o)) {
        rc = fail(&c, BAD_NOT_OBJECT, "expected a JSON object, got %s", jtype_name(o));
    } else {
        json_t *ch = json_object_get(o, "choices");
        int kind = ch ? REC_MC : json_object_get(o, "votes") ? REC_ANNOTATION : REC_CORPUS;
        static const char *kname[] = {"a corpus record", "an annotation (a record with \"votes\")",
                                      "a multiple-choice item (with \"choices\")"};
        if (want != REC_ANY && kind != want && !(want == REC_CORPUS && kind == REC_ANNOTATION))
            rc = fail(&c, BAD_MISSING_FIELD, "expected %s, got %s", kname[want], kname[kind]);
        else if ((rc = parse_common(&c, o)) == VCM_OK)
            rc = ch ? parse_mc(&c, o, ch) : parse_corpus(&c, o);
    }
    if (rc) record_free(r);
    return rc;
}

static void each(const Words *w, void (*fn)(const int *, int, void *), void *ctx) {
    for (int i = 0; i < w->n; i++)
        if (!w->w[i].text) fn(w->w[i].ids, w->w[i].n_ids, ctx);
}

void record_each_mention(const Record *r, void (*fn)(const int *ids, int n, void *ctx), void *ctx) {
    each(&r->question, fn, ctx);
    each(&r->answer, fn, ctx);
    each(&r->rationale, fn, ctx);
    for (int i = 0; i < r->n_choices; i++) each(&r->choices[i], fn, ctx);
}
