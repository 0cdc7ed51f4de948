/* Visual Genome's side files as compact lookup tables: image_data.json → id, size,
 * folder; objects.json → each image's object boxes and first names (names interned).
 * Both are streamed an entry at a time (data/json_stream.c); what is kept is ~20 bytes
 * an object and one name per distinct name, not the parsed JSON. Also the field and
 * message helpers that data/vg_import.c shares. */
#include "data/vg_internal.h"
#include "base/base.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int vg_bad(const VgWhere *w, int *reason, int why, const char *fmt, ...) {
    char msg[600], img[48] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->image >= 0) snprintf(img, sizeof img, "image %lld, ", w->image);
    *reason = why;
    return vcm_fail(why ? VCM_EINPUT : VCM_ERR, "%s: entry %ld (%sline %ld, byte %llu): %s", w->path, w->index, img,
                    w->line, (unsigned long long)w->offset, msg);
}

int vg_get_id(const VgWhere *w, int *reason, const json_t *o, const char *key, const char *ctx, long long *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) return vg_bad(w, reason, BAD_MISSING_FIELD, "%smissing field \"%s\"", ctx, key);
    if (!json_is_integer(v))
        return vg_bad(w, reason, BAD_WRONG_TYPE, "%sfield \"%s\": expected an integer id, got %s", ctx, key, jtype_name(v));
    if (json_integer_value(v) < 0)
        return vg_bad(w, reason, BAD_VALUE, "%sfield \"%s\": negative id %lld", ctx, key,
                      (long long)json_integer_value(v));
    *out = (long long)json_integer_value(v);
    return VCM_OK;
}

int vg_get_num(const VgWhere *w, int *reason, const json_t *o, const char *key, const char *ctx, double *out) {
    const json_t *v = json_object_get(o, key);
    if (!v) return vg_bad(w, reason, BAD_MISSING_FIELD, "%smissing field \"%s\"", ctx, key);
    if (!json_is_number(v))
        return vg_bad(w, reason, BAD_WRONG_TYPE, "%sfield \"%s\": expected a number, got %s", ctx, key, jtype_name(v));
    *out = json_number_value(v);
    return VCM_OK;
}

int vg_get_image_id(const VgWhere *w, int *reason, const json_t *o, long long *out) {
    return vg_get_id(w, reason, o, json_object_get(o, "image_id") || !json_object_get(o, "id") ? "image_id" : "id", "",
                     out);
}

int vg_box(const VgWhere *w, int *reason, const VgImportOptions *o, const char *ctx, double x, double y, double bw,
           double bh, int W, int H, float out[4], int *clipped) {
    *clipped = 0;
    if (!isfinite(x) || !isfinite(y) || !isfinite(bw) || !isfinite(bh))
        return vg_bad(w, reason, BAD_BOX, "%sa coordinate is not finite", ctx);
    if (bw < 0) return vg_bad(w, reason, BAD_BOX, "%snegative width (%g)", ctx, bw);
    if (bh < 0) return vg_bad(w, reason, BAD_BOX, "%snegative height (%g)", ctx, bh);
    double b[4] = {x, y, x + bw, y + bh};
    int neg = x < 0 || y < 0, past = W > 0 && H > 0 && (b[2] > W || b[3] > H);
    if ((neg || past) && !o->clip) {
        if (past)
            return vg_bad(w, reason, BAD_BOX_OUTSIDE, "%sbox [%g, %g, %g, %g] (x, y, x + width, y + height) is outside the image (%dx%d)",
                          ctx, b[0], b[1], b[2], b[3], W, H);
        return vg_bad(w, reason, BAD_BOX, "%snegative %s (%g)", ctx, x < 0 ? "x" : "y", x < 0 ? x : y);
    }
    if (neg || past) {
        double lim[4] = {W > 0 ? W : INFINITY, H > 0 ? H : INFINITY, W > 0 ? W : INFINITY, H > 0 ? H : INFINITY};
        for (int k = 0; k < 4; k++) b[k] = b[k] < 0 ? 0 : b[k] > lim[k] ? lim[k] : b[k];
        *clipped = 1;
    }
    for (int k = 0; k < 4; k++) out[k] = (float)b[k];
    return VCM_OK;
}

float vg_iou(const float a[4], const float b[4]) {
    float iw = fminf(a[2], b[2]) - fmaxf(a[0], b[0]), ih = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    if (iw <= 0 || ih <= 0) return 0;
    float inter = iw * ih, u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    return u > 0 ? inter / u : 0;
}

int vg_skip(const VgImportOptions *o, VgImportStats *st, int rc, int reason, int is_entry) {
    if (rc != VCM_EINPUT || !o->skip_bad || reason == BAD_NONE) return rc;
    st->bad_by_reason[reason]++;
    if (is_entry) st->bad_entries++;
    else st->bad_items++;
    return VCM_OK;
}

/* ---------------------------------------------------------------- image_data.json */

static int cmp_img(const void *a, const void *b) {
    long long x = ((const VgImage *)a)->id, y = ((const VgImage *)b)->id;
    return (x > y) - (x < y);
}

/* Where the url's last two components start ("VG_100K_2/1.jpg"); NULL for none. */
static const char *name_in_url(const char *url) {
    const char *end = url + strlen(url), *p = end;
    int slashes = 0;
    while (p > url && slashes < 2)
        if (*--p == '/') slashes++;
    if (slashes == 0) return NULL;
    if (slashes == 2) p++;
    return p < end && end[-1] != '/' ? p : NULL;
}

static int one_image(const VgImportOptions *o, VgWhere *w, json_t *e, VgImage *im, int *reason) {
    memset(im, 0, sizeof *im);
    if (!json_is_object(e)) return vg_bad(w, reason, BAD_NOT_OBJECT, "expected an object, got %s", jtype_name(e));
    long long id, iw, ih;
    if (vg_get_image_id(w, reason, e, &id)) return VCM_EINPUT;
    w->image = id;
    if (vg_get_id(w, reason, e, "width", "", &iw) || vg_get_id(w, reason, e, "height", "", &ih)) return VCM_EINPUT;
    if (iw == 0 || ih == 0 || iw > 1000000 || ih > 1000000)
        return vg_bad(w, reason, BAD_VALUE, "image size %lldx%lld is not a plausible size", iw, ih);
    im->id = id;
    im->w = (int)iw;
    im->h = (int)ih;
    json_t *url = json_object_get(e, "url");
    if (url && !json_is_null(url) && !json_is_string(url))
        return vg_bad(w, reason, BAD_WRONG_TYPE, "field \"url\": expected a string, got %s", jtype_name(url));
    const char *tail = url && json_is_string(url) && !o->image_dir ? name_in_url(json_string_value(url)) : NULL;
    if (tail && !(im->name = strdup(tail))) return vg_bad(w, reason, BAD_NONE, "out of memory");
    return VCM_OK;
}

int vg_load_image_data(const VgImportOptions *o, VgTables *t, VgImportStats *st) {
    JsonArrayStream s;
    int rc = json_array_stream_open(&s, o->image_data_path);
    if (rc) return rc;
    long cap = 0;
    for (;;) {
        json_t *e;
        if ((rc = json_array_stream_next(&s, &e)) || !e) break;
        VgWhere w = {o->image_data_path, s.elem_index, s.elem_line, s.elem_offset, -1};
        int reason = BAD_NONE;
        if (t->n_img == cap) {
            long nc = cap ? cap * 2 : 1024;
            VgImage *ni = realloc(t->img, (size_t)nc * sizeof *ni);
            if (!ni) { json_decref(e); rc = vcm_fail(VCM_ERR, "%s: out of memory", o->image_data_path); break; }
            t->img = ni;
            cap = nc;
        }
        rc = one_image(o, &w, e, &t->img[t->n_img], &reason);
        json_decref(e);
        if (!rc) { t->n_img++; continue; }
        free(t->img[t->n_img].name);
        if ((rc = vg_skip(o, st, rc, reason, 1))) break;
    }
    json_array_stream_close(&s);
    if (rc) return rc;
    qsort(t->img, (size_t)t->n_img, sizeof *t->img, cmp_img);
    for (long i = 1; i < t->n_img; i++)
        if (t->img[i].id == t->img[i - 1].id)
            return vcm_fail(VCM_EINPUT, "%s: image %lld is listed twice", o->image_data_path, t->img[i].id);
    st->image_data_images = t->n_img;
    return VCM_OK;
}

const VgImage *vg_find_image(const VgTables *t, long long id) {
    VgImage key = {.id = id};   /* ids are unique (checked at load): at most one match */
    return t->n_img ? bsearch(&key, t->img, (size_t)t->n_img, sizeof *t->img, cmp_img) : NULL;
}

/* ---------------------------------------------------------------- objects.json */

static int cmp_oimg(const void *a, const void *b) {
    long long x = ((const VgObjImage *)a)->id, y = ((const VgObjImage *)b)->id;
    return (x > y) - (x < y);
}

static int intern(VgTables *t, const char *name, int *out) {
    json_t *v = json_object_get(t->name_index, name);
    if (v) { *out = (int)json_integer_value(v); return VCM_OK; }
    if (t->n_names == t->cap_names) {
        int nc = t->cap_names ? t->cap_names * 2 : 1024;
        char **nn = realloc(t->names, (size_t)nc * sizeof *nn);
        if (!nn) return VCM_ERR;
        t->names = nn;
        t->cap_names = nc;
    }
    if (!(t->names[t->n_names] = strdup(name))) return VCM_ERR;
    if (json_object_set_new(t->name_index, name, json_integer(t->n_names))) {
        free(t->names[t->n_names]);
        return VCM_ERR;
    }
    *out = t->n_names++;
    return VCM_OK;
}

/* One object: its box and first name into the tables (or refused). */
static int one_object(const VgImportOptions *o, VgTables *t, VgImportStats *st, VgWhere *w, const json_t *ob,
                      size_t k, const VgImage *im, int *reason) {
    char ctx[96];
    snprintf(ctx, sizeof ctx, "objects[%zu]: ", k);
    if (!json_is_object(ob)) return vg_bad(w, reason, BAD_WRONG_TYPE, "%sexpected an object, got %s", ctx, jtype_name(ob));
    long long oid;
    double x = 0, y = 0, bw = 0, bh = 0;   /* set by vg_get_num; GCC cannot see it through the || */
    if (json_object_get(ob, "object_id") && vg_get_id(w, reason, ob, "object_id", ctx, &oid)) return VCM_EINPUT;
    if (json_object_get(ob, "object_id")) snprintf(ctx, sizeof ctx, "objects[%zu] (object %lld): ", k, oid);
    if (vg_get_num(w, reason, ob, "x", ctx, &x) || vg_get_num(w, reason, ob, "y", ctx, &y) ||
        vg_get_num(w, reason, ob, "w", ctx, &bw) || vg_get_num(w, reason, ob, "h", ctx, &bh))
        return VCM_EINPUT;
    /* "names": [...] (v1.2), or "name": "..." (v1.0) */
    const json_t *names = json_object_get(ob, "names"), *nm = NULL;
    if (names) {
        if (!json_is_array(names) || !json_array_size(names))
            return vg_bad(w, reason, BAD_WRONG_TYPE, "%sfield \"names\": expected a non-empty list of strings, got %s%s",
                          ctx, jtype_name(names), json_is_array(names) ? " (empty)" : "");
        nm = json_array_get(names, 0);
        if (!json_is_string(nm))
            return vg_bad(w, reason, BAD_WRONG_TYPE, "%sfield \"names[0]\": expected a string, got %s", ctx, jtype_name(nm));
    } else if (!(nm = json_object_get(ob, "name"))) {
        return vg_bad(w, reason, BAD_MISSING_FIELD, "%smissing field \"names\"", ctx);
    } else if (!json_is_string(nm)) {
        return vg_bad(w, reason, BAD_WRONG_TYPE, "%sfield \"name\": expected a string, got %s", ctx, jtype_name(nm));
    }
    float box[4];
    int clipped;
    if (vg_box(w, reason, o, ctx, x, y, bw, bh, im ? im->w : 0, im ? im->h : 0, box, &clipped)) return VCM_EINPUT;
    st->boxes_clipped += clipped;
    if (t->n_obj == t->cap_obj) {
        long nc = t->cap_obj ? t->cap_obj * 2 : 4096;
        float(*nb)[4] = realloc(t->obox, (size_t)nc * sizeof *nb);
        if (nb) t->obox = nb;
        int *nn = nb ? realloc(t->oname, (size_t)nc * sizeof *nn) : NULL;
        if (!nn) return vg_bad(w, reason, BAD_NONE, "out of memory");
        t->oname = nn;
        t->cap_obj = nc;
    }
    memcpy(t->obox[t->n_obj], box, sizeof box);
    if (intern(t, json_string_value(nm), &t->oname[t->n_obj])) return vg_bad(w, reason, BAD_NONE, "out of memory");
    t->n_obj++;
    return VCM_OK;
}

static int one_object_image(const VgImportOptions *o, VgTables *t, VgImportStats *st, VgWhere *w, json_t *e,
                            int *reason) {
    if (!json_is_object(e)) return vg_bad(w, reason, BAD_NOT_OBJECT, "expected an object, got %s", jtype_name(e));
    long long id;
    if (vg_get_image_id(w, reason, e, &id)) return VCM_EINPUT;
    w->image = id;
    const VgImage *im = o->image_data_path ? vg_find_image(t, id) : NULL;
    if (o->image_data_path && !im)
        return vg_bad(w, reason, BAD_IMAGE_NOT_IN_MAP, "image %lld is not in %s", id, o->image_data_path);
    const json_t *obs = json_object_get(e, "objects");
    if (!obs) return vg_bad(w, reason, BAD_MISSING_FIELD, "missing field \"objects\"");
    if (!json_is_array(obs))
        return vg_bad(w, reason, BAD_WRONG_TYPE, "field \"objects\": expected a list, got %s", jtype_name(obs));
    long start = t->n_obj;
    for (size_t k = 0; k < json_array_size(obs); k++) {
        int r2 = BAD_NONE;
        int rc = one_object(o, t, st, w, json_array_get(obs, k), k, im, &r2);
        if (rc && (rc = vg_skip(o, st, rc, r2, 0))) { *reason = r2; t->n_obj = start; return rc; }
    }
    VgObjImage oi = {id, start, (int)(t->n_obj - start)};
    t->oimg[t->n_oimg++] = oi;
    return VCM_OK;
}

int vg_load_objects(const VgImportOptions *o, VgTables *t, VgImportStats *st) {
    if (!t->name_index && !(t->name_index = json_object())) return vcm_fail(VCM_ERR, "out of memory");
    JsonArrayStream s;
    int rc = json_array_stream_open(&s, o->objects_path);
    if (rc) return rc;
    long cap = 0;
    for (;;) {
        json_t *e;
        if ((rc = json_array_stream_next(&s, &e)) || !e) break;
        if (t->n_oimg == cap) {
            long nc = cap ? cap * 2 : 1024;
            VgObjImage *ni = realloc(t->oimg, (size_t)nc * sizeof *ni);
            if (!ni) { json_decref(e); rc = vcm_fail(VCM_ERR, "%s: out of memory", o->objects_path); break; }
            t->oimg = ni;
            cap = nc;
        }
        VgWhere w = {o->objects_path, s.elem_index, s.elem_line, s.elem_offset, -1};
        int reason = BAD_NONE;
        rc = one_object_image(o, t, st, &w, e, &reason);
        json_decref(e);
        if (rc && (rc = vg_skip(o, st, rc, reason, 1))) break;
    }
    json_array_stream_close(&s);
    if (rc) return rc;
    qsort(t->oimg, (size_t)t->n_oimg, sizeof *t->oimg, cmp_oimg);
    for (long i = 1; i < t->n_oimg; i++)
        if (t->oimg[i].id == t->oimg[i - 1].id)
            return vcm_fail(VCM_EINPUT, "%s: image %lld is listed twice", o->objects_path, t->oimg[i].id);
    st->objects = t->n_obj;
    st->object_names = t->n_names;
    return VCM_OK;
}

const VgObjImage *vg_find_objects(const VgTables *t, long long id) {
    VgObjImage key = {.id = id};
    return t->n_oimg ? bsearch(&key, t->oimg, (size_t)t->n_oimg, sizeof *t->oimg, cmp_oimg) : NULL;
}

void vg_tables_free(VgTables *t) {
    for (long i = 0; i < t->n_img; i++) free(t->img[i].name);
    free(t->img);
    free(t->oimg);
    free(t->obox);
    free(t->oname);
    for (int i = 0; i < t->n_names; i++) free(t->names[i]);
    free(t->names);
    json_decref(t->name_index);
    memset(t, 0, sizeof *t);
}
