/* Visual Genome's region_descriptions.json → a region mapping, one image at a time:
 * each entry of the top-level list is read alone (data/json_stream.c), its regions
 * checked, filtered, ordered and numbered, and its mapping line written before the next
 * is read. image_data.json (sizes, folders) and objects.json (obj_guess) are read first
 * into compact tables (data/vg_tables.c). The selection rule is in data.h and
 * docs/DATA_FORMATS.md. */
#include "data/vg_internal.h"
#include "base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define VG_PROGRESS_EVERY 16384

void vg_import_defaults(VgImportOptions *o) {
    memset(o, 0, sizeof *o);
    o->max_regions = 16;
    o->min_size = 8;
    o->dedupe_iou = 0.7;
    o->obj_iou = 0.5;
}

/* A region that passed the checks. phrase points into the entry's JSON. */
typedef struct Cand {
    float box[4], area;
    long long rid;
    const char *phrase;
    size_t phrase_len;
    int order;
} Cand;

static int by_area(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->area != y->area) return x->area < y->area ? 1 : -1;   /* largest first */
    return (x->order > y->order) - (x->order < y->order);         /* then file order */
}

static int one_region(const VgImportOptions *o, VgImportStats *st, const VgWhere *w, const json_t *r, size_t k,
                      const VgImage *im, Cand *c, int *reason) {
    char ctx[96];
    snprintf(ctx, sizeof ctx, "regions[%zu]: ", k);
    if (!json_is_object(r)) return vg_bad(w, reason, BAD_WRONG_TYPE, "%sexpected an object, got %s", ctx, jtype_name(r));
    if (vg_get_id(w, reason, r, "region_id", ctx, &c->rid)) return VCM_EINPUT;
    snprintf(ctx, sizeof ctx, "regions[%zu] (region %lld): ", k, c->rid);
    const json_t *iid = json_object_get(r, "image_id");
    if (iid && (!json_is_integer(iid) || json_integer_value(iid) != w->image))
        return vg_bad(w, reason, json_is_integer(iid) ? BAD_VALUE : BAD_WRONG_TYPE,
                      "%sfield \"image_id\": %s%lld, but the entry is image %lld", ctx,
                      json_is_integer(iid) ? "" : "not an integer: ",
                      json_is_integer(iid) ? (long long)json_integer_value(iid) : 0LL, w->image);
    const json_t *ph = json_object_get(r, "phrase");
    if (!ph) return vg_bad(w, reason, BAD_MISSING_FIELD, "%smissing field \"phrase\"", ctx);
    if (!json_is_string(ph))
        return vg_bad(w, reason, BAD_WRONG_TYPE, "%sfield \"phrase\": expected a string, got %s", ctx, jtype_name(ph));
    const char *p = json_string_value(ph);
    size_t n = json_string_length(ph);
    while (n && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
    if (!n) return vg_bad(w, reason, BAD_EMPTY_TEXT, "%sfield \"phrase\": empty", ctx);
    c->phrase = p;
    c->phrase_len = n;
    double x, y, bw, bh;
    if (vg_get_num(w, reason, r, "x", ctx, &x) || vg_get_num(w, reason, r, "y", ctx, &y) ||
        vg_get_num(w, reason, r, "width", ctx, &bw) || vg_get_num(w, reason, r, "height", ctx, &bh))
        return VCM_EINPUT;
    int clipped;
    if (vg_box(w, reason, o, ctx, x, y, bw, bh, im ? im->w : 0, im ? im->h : 0, c->box, &clipped)) return VCM_EINPUT;
    st->boxes_clipped += clipped;
    c->area = (c->box[2] - c->box[0]) * (c->box[3] - c->box[1]);
    c->order = (int)k;
    return VCM_OK;
}

/* The first name of the object overlapping the box most (IoU >= obj_iou), or NULL. */
static const char *guess(const VgImportOptions *o, const VgTables *t, long long id, const float box[4]) {
    const VgObjImage *oi = t->n_oimg ? vg_find_objects(t, id) : NULL;
    if (!oi) return NULL;
    float best = 0;
    long at = -1;
    for (long i = oi->start; i < oi->start + oi->n; i++) {
        float u = vg_iou(box, t->obox[i]);
        if (u > best) best = u, at = i;
    }
    return at >= 0 && best >= (float)o->obj_iou ? t->names[t->oname[at]] : NULL;
}

static json_t *num(float v) {
    return v == floorf(v) && fabsf(v) < 1e9f ? json_integer((json_int_t)v) : json_real(v);
}

static char *image_name(const VgImportOptions *o, const VgImage *im, long long id) {
    char buf[4200];
    if (o->image_dir) snprintf(buf, sizeof buf, "%.4000s%s%lld.jpg", o->image_dir, o->image_dir[0] ? "/" : "", id);
    else if (im && im->name) snprintf(buf, sizeof buf, "%.4000s", im->name);
    else snprintf(buf, sizeof buf, "VG_100K/%lld.jpg", id);
    return strdup(buf);
}

/* The mapping line of the kept regions, written to out. */
static int write_line(const VgImportOptions *o, const VgTables *t, VgImportStats *st, const VgImage *im, long long id,
                      const Cand *keep, int n, FILE *out) {
    char *name = image_name(o, im, id);
    json_t *line = json_object(), *locs = json_object(), *desc = json_object();
    int bad = !name || !line || !locs || !desc;
    if (!bad) {
        bad |= json_object_set_new(line, "image", json_string(name));
        bad |= json_object_set_new(line, "vg_image_id", json_integer(id));
        if (im) {
            bad |= json_object_set_new(line, "width", json_integer(im->w));
            bad |= json_object_set_new(line, "height", json_integer(im->h));
        }
    }
    for (int k = 0; !bad && k < n; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", k);
        const Cand *c = &keep[k];
        json_t *box = json_pack("[[oooo]]", num(c->box[0]), num(c->box[1]), num(c->box[2]), num(c->box[3]));
        json_t *reg = box ? json_pack("{s:o}", "boxes", box) : NULL;
        const char *g = guess(o, t, id, c->box);
        if (!reg) { bad = 1; break; }
        if (g) { bad |= json_object_set_new(reg, "obj_guess", json_string(g)); st->obj_guess_set++; }
        bad |= json_object_set_new(reg, "vg_region_id", json_integer(c->rid));
        bad |= json_object_set_new(locs, key, reg);
        bad |= json_object_set_new(desc, key, json_stringn(c->phrase, c->phrase_len));
    }
    char *s = NULL;
    if (!bad) {
        bad |= json_object_set(line, "region_locations", locs);
        bad |= json_object_set(line, "region_descriptions", desc);
    }
    if (!bad && (s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(9)))) {
        fputs(s, out);
        fputc('\n', out);
    }
    int rc = bad || !s ? vcm_fail(VCM_ERR, "out of memory") : ferror(out) ? vcm_fail(VCM_ERR, "write failed") : VCM_OK;
    free(s);
    free(name);
    json_decref(line);
    json_decref(locs);
    json_decref(desc);
    return rc;
}

typedef struct Run {
    const VgImportOptions *o;
    const VgTables *t;
    VgImportStats *st;
    FILE *out;
    Cand *cand;
    size_t cap;
    json_t *seen;          /* image id -> entry index */
} Run;

static int one_entry(Run *R, VgWhere *w, json_t *e, int *reason) {
    const VgImportOptions *o = R->o;
    if (!json_is_object(e)) return vg_bad(w, reason, BAD_NOT_OBJECT, "expected an object, got %s", jtype_name(e));
    long long id;
    if (vg_get_id(w, reason, e, json_object_get(e, "id") || !json_object_get(e, "image_id") ? "id" : "image_id", "",
                  &id))
        return VCM_EINPUT;
    w->image = id;
    char key[32];
    snprintf(key, sizeof key, "%lld", id);
    const json_t *prev = json_object_get(R->seen, key);
    if (prev) return vg_bad(w, reason, BAD_DUPLICATE_IMAGE, "image %lld is already entry %lld", id, (long long)json_integer_value(prev));
    const VgImage *im = o->image_data_path ? vg_find_image(R->t, id) : NULL;
    if (o->image_data_path && !im)
        return vg_bad(w, reason, BAD_IMAGE_NOT_IN_MAP, "image %lld is not in %s", id, o->image_data_path);
    const json_t *regs = json_object_get(e, "regions");
    if (!regs) return vg_bad(w, reason, BAD_MISSING_FIELD, "missing field \"regions\"");
    if (!json_is_array(regs))
        return vg_bad(w, reason, BAD_WRONG_TYPE, "field \"regions\": expected a list, got %s", jtype_name(regs));
    size_t nr = json_array_size(regs);
    if (nr > R->cap) {
        Cand *nc = realloc(R->cand, nr * sizeof *nc);
        if (!nc) return vg_bad(w, reason, BAD_NONE, "out of memory");
        R->cand = nc;
        R->cap = nr;
    }
    int n = 0;
    for (size_t k = 0; k < nr; k++) {
        int r2 = BAD_NONE;
        Cand *c = &R->cand[n];
        int rc = one_region(o, R->st, w, json_array_get(regs, k), k, im, c, &r2);
        if (rc) {
            if ((rc = vg_skip(o, R->st, rc, r2, 0))) { *reason = r2; return rc; }
            continue;
        }
        R->st->regions++;
        if (c->box[2] - c->box[0] < (float)o->min_size || c->box[3] - c->box[1] < (float)o->min_size) {
            R->st->regions_small++;
            continue;
        }
        n++;
    }
    qsort(R->cand, (size_t)n, sizeof *R->cand, by_area);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < kept && !dup && o->dedupe_iou > 0; j++)
            dup = vg_iou(R->cand[i].box, R->cand[j].box) >= (float)o->dedupe_iou;
        if (dup) R->st->regions_duplicate++;
        else if (kept == o->max_regions) R->st->regions_over_max++;
        else R->cand[kept++] = R->cand[i];
    }
    if (json_object_set_new(R->seen, key, json_integer(w->index))) return vg_bad(w, reason, BAD_NONE, "out of memory");
    R->st->images++;
    if (!kept) { R->st->images_without_regions++; return VCM_OK; }
    R->st->regions_kept += kept;
    R->st->images_written++;
    int rc = write_line(o, R->t, R->st, im, id, R->cand, kept, R->out);
    if (rc) *reason = BAD_NONE;
    return rc;
}

static int check_options(const VgImportOptions *o) {
    if (!o->regions_path) return vcm_fail(VCM_EINPUT, "import-vg: region_descriptions.json is required");
    if (o->max_regions < 1 || o->max_regions > 4096)
        return vcm_fail(VCM_EINPUT, "import-vg: max regions must be in 1..4096, got %d", o->max_regions);
    if (o->min_size < 0) return vcm_fail(VCM_EINPUT, "import-vg: min size must be >= 0, got %d", o->min_size);
    if (!(o->dedupe_iou <= 1) || !(o->obj_iou >= 0 && o->obj_iou <= 1))
        return vcm_fail(VCM_EINPUT, "import-vg: the IoU thresholds must be in [0, 1] (dedupe %g, obj %g)", o->dedupe_iou,
                        o->obj_iou);
    return VCM_OK;
}

int vg_import(const VgImportOptions *o, FILE *out, VgImportStats *st) {
    memset(st, 0, sizeof *st);
    int rc = check_options(o);
    if (rc) return rc;
    VgTables t = {0};
    if (o->image_data_path && (rc = vg_load_image_data(o, &t, st))) { vg_tables_free(&t); return rc; }
    if (o->objects_path && (rc = vg_load_objects(o, &t, st))) { vg_tables_free(&t); return rc; }
    Run R = {o, &t, st, out, NULL, 0, json_object()};
    JsonArrayStream s;
    if (!R.seen) rc = vcm_fail(VCM_ERR, "out of memory");
    else rc = json_array_stream_open(&s, o->regions_path);
    if (rc) { json_decref(R.seen); vg_tables_free(&t); return rc; }
    for (;;) {
        json_t *e;
        if ((rc = json_array_stream_next(&s, &e)) || !e) break;
        VgWhere w = {o->regions_path, s.elem_index, s.elem_line, s.elem_offset, -1};
        int reason = BAD_NONE;
        rc = one_entry(&R, &w, e, &reason);
        json_decref(e);
        if (rc && (rc = vg_skip(o, st, rc, reason, 1))) break;
        if (o->progress && s.index % VG_PROGRESS_EVERY == 0) o->progress(s.index, o->progress_ctx);
    }
    json_array_stream_close(&s);
    free(R.cand);
    json_decref(R.seen);
    vg_tables_free(&t);
    return rc;
}
