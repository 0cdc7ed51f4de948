/* Checks that need more than one line: a mapping entry against its image file, and a
 * corpus record against the mapping (its image is mapped, its region ids exist). */
#include "data/data.h"
#include "tensor/tensor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *join_path(const char *root, const char *rel) {
    size_t a = root ? strlen(root) : 0, b = strlen(rel);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    if (a) {
        memcpy(p, root, a);
        if (root[a - 1] != '/') p[a++] = '/';
    }
    memcpy(p + a, rel, b + 1);
    return p;
}

int regionmap_check_image(RegionMap *m, RegionEntry *e, const char *images_root) {
    if (e->checked == 1) return VCM_OK;
    if (e->checked == -1)
        return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\": %s", m->path, e->line, e->image,
                        bad_reason_name(e->bad));
    char *path = join_path(images_root, e->image);
    if (!path) return vcm_fail(VCM_ERR, "out of memory");
    char msg[1024] = "";
    struct stat st;
    int w = 0, h = 0;
    if (stat(path, &st) != 0) {
        e->bad = BAD_MISSING_IMAGE;
        snprintf(msg, sizeof msg, "cannot open %s (%s)", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        e->bad = BAD_MISSING_IMAGE;
        snprintf(msg, sizeof msg, "cannot open %s (not a regular file)", path);
    } else if (image_info(path, &w, &h) != VCM_OK) {
        e->bad = BAD_IMAGE;
        snprintf(msg, sizeof msg, "cannot decode: %s", vcm_error());
    }
    if (!e->bad) {
        e->img_w = w;
        e->img_h = h;
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
        Image im = {0};
        if (image_load(path, &im) != VCM_OK) {
            e->bad = BAD_IMAGE;
            snprintf(msg, sizeof msg, "cannot decode: %s", vcm_error());
        }
        image_free(&im);
    }
    free(path);
    if (e->bad) m->bad_by_reason[e->bad]++;
    e->checked = e->bad ? -1 : 1;
    if (msg[0]) return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\": %s", m->path, e->line, e->image, msg);
    return VCM_OK;
}

static int check_ids(const char *path, const Record *r, const RegionMap *m, const RegionEntry *e,
                     const char *field, const int *ids, int n, int referenced, int *reason) {
    for (int i = 0; i < n; i++) {
        const RegionBox *b = region_entry_box(e, ids[i]);
        if (!b) {
            *reason = BAD_MISSING_REGION;
            return vcm_fail(VCM_EINPUT, "%s:%ld: field \"%s\": region id %d is not in the mapping of image \"%s\" (%s:%ld)",
                            path, r->line, field, ids[i], r->image, m->path, e->line);
        }
        if (referenced && b->bad) {
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
    const RegionEntry *e = regionmap_find(m, r->image);
    if (!e) {
        *reason = BAD_IMAGE_NOT_IN_MAP;
        return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\" is not in the region mapping %s", path, r->line,
                        r->image, m->path);
    }
    if (e->checked == -1) {
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
