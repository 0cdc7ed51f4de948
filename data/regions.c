/* The region mapping: one JSON line per image with the boxes its region ids refer to.
 * Loaded whole (it is one line per image, not per record) and indexed by image name
 * with a jansson object used as a hash table (image → entry index). */
#include "data/data.h"
#include "data/json_internal.h"
#include "base/base.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct LineCtx {
    const JsonlLine *ln;
    int reason;
} LineCtx;

static int lfail(LineCtx *c, int reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int lfail(LineCtx *c, int reason, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->reason = reason;
    return vcm_fail(reason ? VCM_EINPUT : VCM_ERR, "%s:%ld: %s", c->ln->path, c->ln->line_no, msg);
}

/* The mapping's messages call any number "a number". */
static const char *jtype(const json_t *v) { return json_is_integer(v) ? "a number" : jtype_name(v); }

static void free_entry(RegionEntry *e) {
    free(e->image);
    for (int i = 0; i < e->n_regions; i++) {
        free(e->regions[i].obj_guess);
        free(e->regions[i].description);
    }
    free(e->regions);
    for (int i = 0; i < e->n_global; i++) free(e->global[i]);
    free(e->global);
    memset(e, 0, sizeof *e);
}

/* Check one [x0, y0, x1, y1] box. Returns 0 ok, else fills why. */
static int check_box(const json_t *b, float out[4], char *why, size_t n) {
    if (!json_is_array(b) || json_array_size(b) != 4) {
        snprintf(why, n, "expected [x0, y0, x1, y1], got %s%s", jtype(b),
                 json_is_array(b) ? " of another length" : "");
        return -1;
    }
    for (int k = 0; k < 4; k++) {
        const json_t *v = json_array_get(b, (size_t)k);
        if (!json_is_number(v)) {
            snprintf(why, n, "coordinate %d is %s, not a number", k, jtype(v));
            return -1;
        }
        double x = json_number_value(v);
        if (x < 0) {
            snprintf(why, n, "negative coordinate %g", x);
            return -1;
        }
        out[k] = (float)x;
    }
    if (out[2] < out[0]) { snprintf(why, n, "x1 (%g) < x0 (%g)", out[2], out[0]); return -1; }
    if (out[3] < out[1]) { snprintf(why, n, "y1 (%g) < y0 (%g)", out[3], out[1]); return -1; }
    return 0;
}

/* Parse one mapping line into e. Line-level problems fail; a bad box fails too unless
 * skip_bad, where it is kept with box->bad set and counted in m. */
static int parse_entry(RegionMap *m, LineCtx *c, json_t *o, RegionEntry *e, int skip_bad) {
    memset(e, 0, sizeof *e);
    e->line = c->ln->line_no;
    if (!json_is_object(o)) return lfail(c, BAD_NOT_OBJECT, "expected a JSON object, got %s", jtype(o));
    json_t *im = json_object_get(o, "image");
    if (!im) return lfail(c, BAD_MISSING_FIELD, "missing field \"image\"");
    if (!json_is_string(im)) return lfail(c, BAD_WRONG_TYPE, "field \"image\": expected a string, got %s", jtype(im));
    if (!json_string_length(im)) return lfail(c, BAD_VALUE, "field \"image\": empty string");
    if (!(e->image = strdup(json_string_value(im)))) return lfail(c, BAD_NONE, "out of memory");

    json_t *locs = json_object_get(o, "region_locations");
    if (!locs) return lfail(c, BAD_MISSING_FIELD, "missing field \"region_locations\"");
    if (!json_is_object(locs))
        return lfail(c, BAD_WRONG_TYPE, "field \"region_locations\": expected an object, got %s", jtype(locs));
    size_t n = json_object_size(locs);
    e->regions = calloc(n ? n : 1, sizeof *e->regions);
    if (!e->regions) return lfail(c, BAD_NONE, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(locs, key, val) {
        RegionBox *b = &e->regions[e->n_regions];
        if (region_key_id(key, &b->id))
            return lfail(c, BAD_VALUE, "field \"region_locations\": key \"%.40s\" is not a region id (0, 1, ...)", key);
        e->n_regions++;
        if (!json_is_object(val))
            return lfail(c, BAD_WRONG_TYPE, "region \"%s\": expected an object with \"boxes\", got %s", key, jtype(val));
        json_t *og = json_object_get(val, "obj_guess");
        if (og && !json_is_null(og)) {
            if (!json_is_string(og))
                return lfail(c, BAD_WRONG_TYPE, "region \"%s\": field \"obj_guess\": expected a string, got %s", key, jtype(og));
            if (!(b->obj_guess = strdup(json_string_value(og)))) return lfail(c, BAD_NONE, "out of memory");
        }
        json_t *boxes = json_object_get(val, "boxes");
        char why[160] = "";
        int bad = 0;
        if (!boxes) return lfail(c, BAD_MISSING_FIELD, "region \"%s\": missing field \"boxes\"", key);
        if (!json_is_array(boxes) || json_array_size(boxes) == 0) {
            snprintf(why, sizeof why, "\"boxes\" must be a non-empty list of boxes, got %s%s", jtype(boxes),
                     json_is_array(boxes) ? " (empty)" : "");
            bad = 1;
        }
        for (size_t k = 0; !bad && k < json_array_size(boxes); k++) {
            float xy[4];
            char w2[128];
            if (check_box(json_array_get(boxes, k), xy, w2, sizeof w2)) {
                snprintf(why, sizeof why, "box %zu: %s", k, w2);
                bad = 1;
            } else if (k == 0) {
                b->x0 = xy[0]; b->y0 = xy[1]; b->x1 = xy[2]; b->y1 = xy[3];
            }
        }
        b->n_boxes = json_is_array(boxes) ? (int)json_array_size(boxes) : 0;
        if (bad) {
            if (!skip_bad) return lfail(c, BAD_BOX, "image \"%s\" region \"%s\": %s", e->image, key, why);
            b->bad = BAD_BOX;
            m->bad_by_reason[BAD_BOX]++;
        }
    }
    qsort(e->regions, (size_t)e->n_regions, sizeof *e->regions, region_box_cmp_id);
    /* Keys "1" and "01" are one id: found once sorted (a scan per key was quadratic:
     * 300 k regions took minutes). */
    for (int i = 1; i < e->n_regions; i++)
        if (e->regions[i].id == e->regions[i - 1].id)
            return lfail(c, BAD_VALUE, "field \"region_locations\": region id %d appears twice", e->regions[i].id);

    json_t *g = json_object_get(o, "global");
    if (g && !json_is_null(g)) {
        if (!json_is_string(g) && !json_is_array(g))
            return lfail(c, BAD_WRONG_TYPE, "field \"global\": expected a list of strings, got %s", jtype(g));
        size_t k = json_is_array(g) ? json_array_size(g) : 1;
        e->global = calloc(k ? k : 1, sizeof *e->global);
        if (!e->global) return lfail(c, BAD_NONE, "out of memory");
        for (size_t i = 0; i < k; i++) {
            json_t *s = json_is_array(g) ? json_array_get(g, i) : g;
            if (!json_is_string(s))
                return lfail(c, BAD_WRONG_TYPE, "field \"global[%zu]\": expected a string, got %s", i, jtype(s));
            if (!(e->global[e->n_global++] = strdup(json_string_value(s)))) return lfail(c, BAD_NONE, "out of memory");
        }
    }
    json_t *d = json_object_get(o, "region_descriptions");
    if (d && !json_is_null(d)) {
        if (!json_is_object(d))
            return lfail(c, BAD_WRONG_TYPE, "field \"region_descriptions\": expected an object, got %s", jtype(d));
        json_object_foreach(d, key, val) {
            int id;
            if (region_key_id(key, &id))
                return lfail(c, BAD_VALUE, "field \"region_descriptions\": key \"%.40s\" is not a region id", key);
            /* a string, or a list of strings of which the first is used */
            json_t *s = json_is_array(val) && json_array_size(val) ? json_array_get(val, 0) : val;
            if (!json_is_string(s))
                return lfail(c, BAD_WRONG_TYPE, "field \"region_descriptions\" \"%s\": expected a string, got %s", key,
                             jtype(val));
            RegionBox *b = (RegionBox *)region_entry_box(e, id);
            if (b && !b->description && !(b->description = strdup(json_string_value(s))))
                return lfail(c, BAD_NONE, "out of memory");
        }
    }
    return VCM_OK;
}

int regionmap_load(const char *path, RegionMap *m, int skip_bad, long *n_skipped) {
    memset(m, 0, sizeof *m);
    if (n_skipped) *n_skipped = 0;
    json_t *index = json_object();
    m->path = strdup(path);
    if (!index || !m->path) {
        json_decref(index);
        free(m->path);
        return vcm_fail(VCM_ERR, "out of memory");
    }
    m->index = index;
    JsonlReader rd;
    int rc = jsonl_open(&rd, path);
    if (rc) { regionmap_free(m); return rc; }
    int cap = 0;
    for (;;) {
        JsonlLine ln;
        if ((rc = jsonl_next(&rd, &ln))) {
            if (rc == VCM_EINPUT && skip_bad && strstr(vcm_error(), "line longer")) {
                m->n_skipped++;
                m->bad_by_reason[BAD_LINE_TOO_LONG]++;
                continue;
            }
            break;
        }
        if (!ln.text) break;
        if (m->n == cap) {
            int nc = cap ? cap * 2 : 64;
            RegionEntry *ne = realloc(m->entries, (size_t)nc * sizeof *ne);
            if (!ne) { rc = vcm_fail(VCM_ERR, "%s: out of memory", path); break; }
            m->entries = ne;
            cap = nc;
        }
        LineCtx c = {&ln, BAD_NONE};
        RegionEntry *e = &m->entries[m->n];
        json_t *o = NULL;
        if (jsonl_parse(&ln, &o)) {
            c.reason = BAD_JSON_SYNTAX;
            rc = VCM_EINPUT;
            memset(e, 0, sizeof *e);
        } else {
            rc = parse_entry(m, &c, o, e, skip_bad);
            json_decref(o);
        }
        if (!rc) {
            json_t *prev = json_object_get(index, e->image);
            if (prev) {
                rc = lfail(&c, BAD_DUPLICATE_IMAGE, "image \"%s\" is already mapped at line %ld", e->image,
                           m->entries[json_integer_value(prev)].line);
            } else if (json_object_set_new_nocheck(index, e->image, json_integer(m->n))) {
                rc = vcm_fail(VCM_ERR, "%s: out of memory", path);
                free_entry(e);
                break;
            }
        }
        if (rc) {
            free_entry(e);
            if (!skip_bad || c.reason == BAD_NONE) break;
            m->n_skipped++;
            m->bad_by_reason[c.reason]++;
            rc = VCM_OK;
            continue;
        }
        m->n++;
    }
    jsonl_close(&rd);
    if (rc) {
        regionmap_free(m);
        return rc;
    }
    if (n_skipped) *n_skipped = m->n_skipped;
    return VCM_OK;
}

const RegionEntry *regionmap_find(const RegionMap *m, const char *image) {
    if (!m->index || !image) return NULL;
    json_t *v = json_object_get(m->index, image);
    return v ? &m->entries[json_integer_value(v)] : NULL;
}

const RegionBox *region_entry_box(const RegionEntry *e, int id) {
    int lo = 0, hi = e->n_regions - 1;   /* sorted by id */
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (e->regions[mid].id == id) return &e->regions[mid];
        if (e->regions[mid].id < id) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

void regionmap_free(RegionMap *m) {
    for (int i = 0; i < m->n; i++) free_entry(&m->entries[i]);
    free(m->entries);
    json_decref(m->index);
    free(m->path);
    memset(m, 0, sizeof *m);
}
