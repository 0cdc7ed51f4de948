/* Checks that need more than one line: a mapping entry against its image file, and a
 * corpus record against the mapping (its image is mapped, its region ids exist). */
#include "data/data.h"
#include "base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int image_check_file(const char *images_root, const char *image, int *w, int *h, char *msg, size_t cap) {
    *w = *h = 0;
    msg[0] = 0;
    char *path = image_path(images_root, image);
    if (!path) {
        snprintf(msg, cap, "out of memory");
        return BAD_IMAGE;
    }
    struct stat st;
    int bad = BAD_NONE;
    if (stat(path, &st) != 0) {
        bad = BAD_MISSING_IMAGE;
        snprintf(msg, cap, "cannot open %s (%s)", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        bad = BAD_MISSING_IMAGE;
        snprintf(msg, cap, "cannot open %s (not a regular file)", path);
    } else if (image_info(path, w, h) != VCM_OK) {
        bad = BAD_IMAGE;
        *w = *h = 0;
        snprintf(msg, cap, "cannot decode: %s", vcm_error());
    } else {
        Image im = {0};
        if (image_load(path, &im) != VCM_OK) {   /* a full decode: a truncated file fails here */
            bad = BAD_IMAGE;
            snprintf(msg, cap, "cannot decode: %s", vcm_error());
        }
        image_free(&im);
    }
    free(path);
    return bad;
}

int regionmap_check_image(RegionMap *m, RegionEntry *e, const char *images_root) {
    if (e->checked == 1) return VCM_OK;
    if (e->checked == -1)
        return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\": %s", m->path, e->line, e->image,
                        bad_reason_name(e->bad));
    char msg[1024] = "", why[1024];
    int w = 0, h = 0;
    e->bad = image_check_file(images_root, e->image, &w, &h, why, sizeof why);
    if (w > 0) {   /* the header was read: the boxes can be checked, even if decoding failed */
        if (!e->bad) {
            e->img_w = w;
            e->img_h = h;
        }
        /* Coordinates are pixel edges: a box may end exactly at the width/height. */
        for (int i = 0; i < e->n_regions; i++) {
            RegionBox *b = &e->regions[i];
            if (b->bad || (b->x1 <= (float)w && b->y1 <= (float)h)) continue;
            b->bad = BAD_BOX_OUTSIDE;
            m->bad_by_reason[BAD_BOX_OUTSIDE]++;
            if (!msg[0])
                snprintf(msg, sizeof msg, "region \"%d\": box [%g, %g, %g, %g] is outside the image (%dx%d)",
                         b->id, b->x0, b->y0, b->x1, b->y1, w, h);
        }
    }
    if (e->bad) snprintf(msg, sizeof msg, "%s", why);
    if (e->bad) m->bad_by_reason[e->bad]++;
    e->checked = e->bad ? -1 : 1;
    if (msg[0]) return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\": %s", m->path, e->line, e->image, msg);
    return VCM_OK;
}

/* m NULL: e is the record's own "references". */
static int check_ids(const char *path, const Record *r, const RegionMap *m, const RegionEntry *e,
                     const char *field, const int *ids, int n, int referenced, int *reason) {
    for (int i = 0; i < n; i++) {
        const RegionBox *b = region_entry_box(e, ids[i]);
        if (!b && !m) {
            *reason = BAD_MISSING_REGION;
            return vcm_fail(VCM_EINPUT, "%s:%ld: field \"%s\": region id %d is not in the record's \"references\" (%d region%s)",
                            path, r->line, field, ids[i], e->n_regions, e->n_regions == 1 ? "" : "s");
        }
        if (!b) {
            *reason = BAD_MISSING_REGION;
            return vcm_fail(VCM_EINPUT, "%s:%ld: field \"%s\": region id %d is not in the mapping of image \"%s\" (%s:%ld)",
                            path, r->line, field, ids[i], r->image, m->path, e->line);
        }
        if (referenced && b->bad && m) {
            *reason = b->bad;
            return vcm_fail(VCM_EINPUT, "%s:%ld: field \"%s\": region %d of image \"%s\" has a bad box (%s, %s:%ld)",
                            path, r->line, field, ids[i], r->image, bad_reason_name(b->bad), m->path, e->line);
        }
    }
    return VCM_OK;
}

static int check_words(const char *path, const Record *r, const RegionMap *m, const RegionEntry *e,
                       const char *field, const Words *w, int *reason) {
    for (int i = 0; i < w->n; i++)
        if (!w->w[i].text && check_ids(path, r, m, e, field, w->w[i].ids, w->w[i].n_ids, 1, reason))
            return VCM_EINPUT;
    return VCM_OK;
}

int record_check_regions(const Record *r, const char *path, const RegionMap *m, int *reason) {
    int dummy;
    if (!reason) reason = &dummy;
    *reason = BAD_NONE;
    const RegionEntry *e = record_regions(r, m);
    if (r->references) m = NULL;   /* the record's own boxes: checked when it was parsed */
    else if (!m) {
        *reason = BAD_IMAGE_NOT_IN_MAP;
        return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\": the record has no \"references\" and no region mapping "
                        "was given (--regions)", path, r->line, r->image);
    }
    if (!e) {
        *reason = BAD_IMAGE_NOT_IN_MAP;
        return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\" is not in the region mapping %s", path, r->line,
                        r->image, m->path);
    }
    if (m && e->checked == -1) {
        *reason = e->bad;
        return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\" is bad (%s, %s:%ld)", path, r->line, r->image,
                        bad_reason_name(e->bad), m->path, e->line);
    }
    if (check_ids(path, r, m, e, "region", r->region, r->n_region, 1, reason) ||
        check_ids(path, r, m, e, r->region_all_key ? r->region_all_key : "region_all", r->region_all,
                  r->n_region_all, 0, reason) ||
        check_words(path, r, m, e, "question", &r->question, reason) ||
        check_words(path, r, m, e, "answer", &r->answer, reason) ||
        check_words(path, r, m, e, "rationale", &r->rationale, reason))
        return VCM_EINPUT;
    for (int i = 0; i < r->n_choices; i++) {
        char f[32];
        snprintf(f, sizeof f, "choices[%d]", i);
        if (check_words(path, r, m, e, f, &r->choices[i], reason)) return VCM_EINPUT;
    }
    return VCM_OK;
}

const RegionEntry *record_regions(const Record *r, const RegionMap *m) {
    if (r->references) return r->references;
    return m ? regionmap_find(m, r->image) : NULL;
}

int record_check_boxes(const Record *r, const char *path, int w, int h, int *reason) {
    const RegionEntry *e = r->references;
    for (int i = 0; e && i < e->n_regions; i++) {
        const RegionBox *b = &e->regions[i];
        if (b->x1 <= (float)w && b->y1 <= (float)h) continue;   /* pixel edges: may end at W, H */
        if (reason) *reason = BAD_BOX_OUTSIDE;
        return vcm_fail(VCM_EINPUT, "%s:%ld: field \"references\": region %d: box [%g, %g, %g, %g] is outside the image \"%s\" (%dx%d)",
                        path, r->line, b->id, b->x0, b->y0, b->x1, b->y1, r->image, w, h);
    }
    return VCM_OK;
}
