/* VCR (Zellers et al., 2019) for `vcm eval --vcr`: one line of train.jsonl / val.jsonl
 * and its metadata file → two multiple-choice records (Q→A, QA→R) that carry their own
 * boxes, so the rest of the MC path (region checks, example_build, scoring) is the one
 * every MC item takes. Everything VCR-specific is checked here first, under VCR's own
 * field names; the records are then built through record_from_json. */
#include "data/data.h"
#include "data/json_internal.h"
#include "base/base.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Ctx { const JsonlLine *ln; int *reason; } Ctx;

static int fail(Ctx *c, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Ctx *c, int reason, const char *fmt, ...) {
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->reason) *c->reason = reason;
    return vcm_fail(reason == BAD_NONE ? VCM_ERR : VCM_EINPUT, "%s:%ld: %s", c->ln->path, c->ln->line_no, msg);
}

static json_t *need(Ctx *c, json_t *o, const char *key, int type, const char *what) {
    json_t *v = json_object_get(o, key);
    if (!v) { fail(c, BAD_MISSING_FIELD, "missing field \"%s\"", key); return NULL; }
    if ((int)json_typeof(v) != type && !(type == JSON_INTEGER && json_is_integer(v))) {
        fail(c, BAD_WRONG_TYPE, "field \"%s\": expected %s, got %s", key, what, jtype_name(v));
        return NULL;
    }
    return v;
}

/* VCR's token lists: a word is a string, a region reference a non-empty list of object
 * indices (< n_obj). */
static int check_words(Ctx *c, const json_t *v, const char *path, int n_obj) {
    if (!json_is_array(v))
        return fail(c, BAD_WRONG_TYPE, "field \"%s\": expected a list of words, got %s", path, jtype_name(v));
    if (!json_array_size(v)) return fail(c, BAD_EMPTY_TEXT, "field \"%s\": empty (no words)", path);
    for (size_t i = 0; i < json_array_size(v); i++) {
        const json_t *w = json_array_get(v, i);
        if (json_is_string(w)) continue;
        if (!json_is_array(w))
            return fail(c, BAD_WRONG_TYPE, "field \"%s[%zu]\": a word must be a string or a list of object indices, got %s",
                        path, i, jtype_name(w));
        if (!json_array_size(w)) return fail(c, BAD_VALUE, "field \"%s[%zu]\": empty region reference []", path, i);
        for (size_t j = 0; j < json_array_size(w); j++) {
            const json_t *x = json_array_get(w, j);
            if (!json_is_integer(x))
                return fail(c, BAD_WRONG_TYPE, "field \"%s[%zu][%zu]\": an object index must be an integer, got %s",
                            path, i, j, jtype_name(x));
            json_int_t k = json_integer_value(x);
            if (k < 0 || k >= n_obj)
                return fail(c, BAD_MISSING_REGION, "field \"%s[%zu][%zu]\": object %lld is not one of the item's %d objects",
                            path, i, j, (long long)k, n_obj);
        }
    }
    return VCM_OK;
}

/* "answer_choices" + "answer_label" (or the rationale's): at least 2 choices (VCR has 4),
 * the label one of them. */
static int check_choices(Ctx *c, json_t *o, const char *key, const char *label_key, int n_obj) {
    json_t *ch = need(c, o, key, JSON_ARRAY, "a list of choices (token lists)");
    if (!ch) return VCM_EINPUT;
    size_t n = json_array_size(ch);
    if (n < 2 || n > 64) return fail(c, BAD_VALUE, "field \"%s\": %zu choice(s), need 2 to 64 (VCR has 4)", key, n);
    for (size_t i = 0; i < n; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s[%zu]", key, i);
        if (check_words(c, json_array_get(ch, i), path, n_obj)) return VCM_EINPUT;
    }
    json_t *l = need(c, o, label_key, JSON_INTEGER, "an integer");
    if (!l) return VCM_EINPUT;
    json_int_t lab = json_integer_value(l);
    if (lab < 0 || lab >= (json_int_t)n)
        return fail(c, BAD_VALUE, "field \"%s\": %lld is out of range for %zu choices", label_key, (long long)lab, n);
    return VCM_OK;
}

/* The metadata file: "boxes" (one [x1, y1, x2, y2, score] per object), "width",
 * "height", "names" (optional, one per box). Returns the references list to put in the
 * records, or NULL with the error set. */
static json_t *read_metadata(Ctx *c, const char *root, const char *rel, json_t *objects, int *w, int *h) {
    size_t rl = root ? strlen(root) : 0;
    char *path = malloc(rl + strlen(rel) + 2);
    if (!path) { fail(c, BAD_NONE, "out of memory"); return NULL; }
    snprintf(path, rl + strlen(rel) + 2, "%s%s%s", rl ? root : "", rl && root[rl - 1] != '/' ? "/" : "", rel);
    json_t *m = NULL, *refs = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(c, BAD_MISSING_IMAGE, "metadata \"%s\": cannot open %s (%s)", rel, path, strerror(errno));
        goto out;
    }
    json_error_t je;
    m = json_loadf(f, 0, &je);
    fclose(f);
    if (!m) { fail(c, BAD_JSON_SYNTAX, "metadata %s:%d:%d: %s", path, je.line, je.column, je.text); goto out; }
    if (!json_is_object(m)) { fail(c, BAD_NOT_OBJECT, "metadata %s: expected a JSON object, got %s", path, jtype_name(m)); goto out; }
    json_t *bx = json_object_get(m, "boxes"), *wv = json_object_get(m, "width"), *hv = json_object_get(m, "height");
    json_t *names = json_object_get(m, "names");
    const char *miss = !bx ? "boxes" : !wv ? "width" : !hv ? "height" : NULL;
    if (miss) { fail(c, BAD_MISSING_FIELD, "metadata %s: missing field \"%s\"", path, miss); goto out; }
    if (!json_is_integer(wv) || !json_is_integer(hv) || json_integer_value(wv) < 1 || json_integer_value(hv) < 1 ||
        json_integer_value(wv) > 1 << 20 || json_integer_value(hv) > 1 << 20) {
        fail(c, BAD_WRONG_TYPE, "metadata %s: field \"%s\": expected a positive integer, got %s", path,
             json_is_integer(wv) && json_integer_value(wv) >= 1 ? "height" : "width",
             jtype_name(json_is_integer(wv) && json_integer_value(wv) >= 1 ? hv : wv));
        goto out;
    }
    *w = (int)json_integer_value(wv);
    *h = (int)json_integer_value(hv);
    if (!json_is_array(bx)) { fail(c, BAD_WRONG_TYPE, "metadata %s: field \"boxes\": expected a list of boxes, got %s", path, jtype_name(bx)); goto out; }
    size_t n = json_array_size(objects);
    if (json_array_size(bx) != n) {
        fail(c, BAD_VALUE, "metadata %s: %zu boxes for the item's %zu objects (one box per object)", path, json_array_size(bx), n);
        goto out;
    }
    if (names && (!json_is_array(names) || json_array_size(names) != n)) {
        fail(c, BAD_WRONG_TYPE, "metadata %s: field \"names\": expected a list of %zu names (one per box), got %s", path, n, jtype_name(names));
        goto out;
    }
    if (!(refs = json_array())) { fail(c, BAD_NONE, "out of memory"); goto out; }
    for (size_t k = 0; k < n; k++) {
        json_t *b = json_array_get(bx, k);
        size_t nb = json_is_array(b) ? json_array_size(b) : 0;
        double v[4];
        if (nb != 4 && nb != 5) {
            fail(c, BAD_BOX, "metadata %s: field \"boxes[%zu]\": expected [x1, y1, x2, y2, score], got %s%s", path, k,
                 jtype_name(b), json_is_array(b) ? " of another length" : "");
            goto bad;
        }
        for (size_t i = 0; i < nb; i++) {
            if (!json_is_number(json_array_get(b, i))) {
                fail(c, BAD_BOX, "metadata %s: field \"boxes[%zu][%zu]\": a coordinate must be a number, got %s", path, k, i,
                     jtype_name(json_array_get(b, i)));
                goto bad;
            }
            if (i < 4) v[i] = json_number_value(json_array_get(b, i));
        }
        if (v[0] < 0 || v[1] < 0 || v[2] < v[0] || v[3] < v[1]) {
            fail(c, BAD_BOX, "metadata %s: field \"boxes[%zu]\": [%g, %g, %g, %g] is not a box (x1 >= x0 >= 0, y1 >= y0 >= 0)",
                 path, k, v[0], v[1], v[2], v[3]);
            goto bad;
        }
        if (v[2] > *w || v[3] > *h) {   /* pixel edges: a box may end at the width/height */
            fail(c, BAD_BOX_OUTSIDE, "metadata %s: field \"boxes[%zu]\": box [%g, %g, %g, %g] is outside the image (%dx%d)",
                 path, k, v[0], v[1], v[2], v[3], *w, *h);
            goto bad;
        }
        json_t *o = json_array_get(objects, k);
        json_t *r = json_pack("{s:[[f,f,f,f]],s:O}", "boxes", v[0], v[1], v[2], v[3], "obj_guess", o);
        if (!r || json_array_append_new(refs, r)) { fail(c, BAD_NONE, "out of memory"); goto bad; }
    }
    goto out;
bad:
    json_decref(refs);
    refs = NULL;
out:
    json_decref(m);
    free(path);
    return refs;
}

/* One MC record from the VCR item: its choices, label and (QA→R) the right answer. */
static int make_record(Ctx *c, json_t *o, json_t *refs, const char *choices, const char *label, json_t *answer,
                       Record *r) {
    size_t n = json_array_size(refs);
    json_t *all = json_array(), *x = json_object();
    int rc = !all || !x ? VCM_ERR : VCM_OK;
    for (size_t k = 0; !rc && k < n; k++) rc = json_array_append_new(all, json_integer((json_int_t)k)) ? VCM_ERR : VCM_OK;
    if (!rc && (json_object_set(x, "image", json_object_get(o, "img_fn")) ||
                json_object_set(x, "question", json_object_get(o, "question")) ||
                json_object_set(x, "choices", json_object_get(o, choices)) ||
                json_object_set(x, "label", json_object_get(o, label)) || json_object_set(x, "references", refs) ||
                json_object_set(x, "region_all", all) || (answer && json_object_set(x, "answer", answer))))
        rc = VCM_ERR;
    if (rc) rc = fail(c, BAD_NONE, "out of memory");
    else rc = record_from_json(c->ln, x, REC_MC, r, c->reason);
    json_decref(all);
    json_decref(x);
    return rc;
}

int vcr_item_parse(const JsonlLine *ln, const char *images_root, VcrItem *out, int *reason) {
    memset(out, 0, sizeof *out);
    if (reason) *reason = BAD_NONE;
    Ctx c = {ln, reason};
    json_t *o;
    if (jsonl_parse(ln, &o)) {
        if (reason) *reason = BAD_JSON_SYNTAX;
        return VCM_EINPUT;
    }
    json_t *refs = NULL, *objects, *img, *meta;
    int rc = VCM_EINPUT, w = 0, h = 0;
    if (!json_is_object(o)) { fail(&c, BAD_NOT_OBJECT, "expected a JSON object, got %s", jtype_name(o)); goto out; }
    if (!(objects = need(&c, o, "objects", JSON_ARRAY, "a list of object names")) ||
        !(img = need(&c, o, "img_fn", JSON_STRING, "a string")) ||
        !(meta = need(&c, o, "metadata_fn", JSON_STRING, "a string")))
        goto out;
    int n_obj = (int)json_array_size(objects);
    for (int k = 0; k < n_obj; k++)
        if (!json_is_string(json_array_get(objects, (size_t)k))) {
            fail(&c, BAD_WRONG_TYPE, "field \"objects[%d]\": expected a string (a category name), got %s", k,
                 jtype_name(json_array_get(objects, (size_t)k)));
            goto out;
        }
    if (!json_string_length(img)) { fail(&c, BAD_VALUE, "field \"img_fn\": empty string"); goto out; }
    if (!json_string_length(meta)) { fail(&c, BAD_VALUE, "field \"metadata_fn\": empty string"); goto out; }
    json_t *q = json_object_get(o, "question");
    if (!q) { fail(&c, BAD_MISSING_FIELD, "missing field \"question\""); goto out; }
    if (check_words(&c, q, "question", n_obj) ||
        check_choices(&c, o, "answer_choices", "answer_label", n_obj) ||
        check_choices(&c, o, "rationale_choices", "rationale_label", n_obj))
        goto out;
    if (!(refs = read_metadata(&c, images_root, json_string_value(meta), objects, &w, &h))) goto out;
    json_t *right = json_array_get(json_object_get(o, "answer_choices"),
                                   (size_t)json_integer_value(json_object_get(o, "answer_label")));
    if ((rc = make_record(&c, o, refs, "answer_choices", "answer_label", NULL, &out->qa)) ||
        (rc = make_record(&c, o, refs, "rationale_choices", "rationale_label", right, &out->qar)))
        goto out;
    /* the metadata's size: what the boxes are in (vcm eval checks the image against it) */
    RegionEntry *e1 = (RegionEntry *)out->qa.references, *e2 = (RegionEntry *)out->qar.references;
    e1->img_w = e2->img_w = w;
    e1->img_h = e2->img_h = h;
    out->qar.prompt_answer = 1;
    out->qar.answer_prefix = "rationale:";
    out->n_objects = n_obj;
out:
    if (rc) vcr_item_free(out);
    json_decref(refs);
    json_decref(o);
    return rc;
}

void vcr_item_free(VcrItem *it) {
    record_free(&it->qa);
    record_free(&it->qar);
    it->n_objects = 0;
}
