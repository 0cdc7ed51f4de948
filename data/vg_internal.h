/* Shared by data/vg_tables.c and data/vg_import.c only (the public API is in data.h):
 * the lookup tables built from image_data.json and objects.json, and the message and
 * field helpers that make every refusal read "FILE: entry N (image ID, line L, byte B): …". */
#ifndef VCM_VG_INTERNAL_H
#define VCM_VG_INTERNAL_H

#include "data/data.h"
#include "data/json_internal.h"

#include <jansson.h>

/* Where an entry of a VG file is, for messages. */
typedef struct VgWhere {
    const char *path;
    long index;            /* 0-based entry of the top-level list */
    long line;
    uint64_t offset;       /* byte of the entry's first character */
    long long image;       /* the image id, -1 before it is known */
} VgWhere;

/* vcm_fail(VCM_EINPUT, "PATH: entry N (image ID, line L, byte B): " fmt); *reason set. */
int vg_bad(const VgWhere *w, int *reason, int why, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* An integer >= 0 / a number, under key of o; ctx prefixes the message ("regions[2] (region 7): "). */
int vg_get_id(const VgWhere *w, int *reason, const json_t *o, const char *key, const char *ctx, long long *out);
int vg_get_num(const VgWhere *w, int *reason, const json_t *o, const char *key, const char *ctx, double *out);
/* The image's id: "image_id", else "id" (VG's files use either). */
int vg_get_image_id(const VgWhere *w, int *reason, const json_t *o, long long *out);
/* x, y, w, h → [x0, y0, x1, y1]: refuses a negative size, a negative corner and (when
 * W, H > 0) a box past the image; with o->clip the corner and the far edges are
 * clipped instead (*clipped set). */
int vg_box(const VgWhere *w, int *reason, const VgImportOptions *o, const char *ctx, double x, double y, double bw,
           double bh, int W, int H, float out[4], int *clipped);
float vg_iou(const float a[4], const float b[4]);

typedef struct VgImage { long long id; int w, h; char *name; } VgImage;   /* name from the url, or NULL */
typedef struct VgObjImage { long long id; long start; int n; } VgObjImage;

typedef struct VgTables {
    VgImage *img; long n_img;              /* image_data.json, sorted by id */
    VgObjImage *oimg; long n_oimg;         /* objects.json by image, sorted by id */
    float (*obox)[4]; int *oname; long n_obj, cap_obj;
    char **names; int n_names, cap_names;  /* distinct object names */
    json_t *name_index;                    /* name -> index in names */
} VgTables;

int vg_load_image_data(const VgImportOptions *o, VgTables *t, VgImportStats *st);
int vg_load_objects(const VgImportOptions *o, VgTables *t, VgImportStats *st);
const VgImage *vg_find_image(const VgTables *t, long long id);
const VgObjImage *vg_find_objects(const VgTables *t, long long id);
void vg_tables_free(VgTables *t);

/* A bad entry or region: with o->skip_bad counted (and VCM_OK), else the error. */
int vg_skip(const VgImportOptions *o, VgImportStats *st, int rc, int reason, int is_entry);

#endif
