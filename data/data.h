/* data/ — files to batches: corpus / region-mapping / annotation / multiple-choice
 * readers (jsonl, jsonl.gz), images (stb), region handling, drawing, and the
 * synthetic world behind `vcm synth`.
 *
 * The public header of the folder. It is organised in sections, one per part;
 * data/ does not include tensor/ (the batch hand-off passes plain float arrays). */
#ifndef VCM_DATA_H
#define VCM_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ================================================================ records and readers
 * (data/jsonl*.c, data/corpus*.c, data/regions*.c) — owner: readers
 *
 * The region mapping (DESIGN.md §5). Loaded whole: one entry per image, small. */
typedef struct RegionBox {
    int id;                 /* the id as written in the file ("0", "1", ...) */
    float x0, y0, x1, y1;   /* absolute pixels of the original image (first box of "boxes") */
    char *obj_guess;        /* may be NULL */
    char *description;      /* from "region_descriptions", may be NULL */
} RegionBox;

typedef struct RegionEntry {
    char *image;            /* as in the file, relative to an images root */
    RegionBox *regions;     /* sorted by id */
    int n_regions;
    char **global;          /* "global" captions, may be 0 of them */
    int n_global;
    long line;              /* line in the mapping file, for messages */
} RegionEntry;

typedef struct RegionMap {
    char *path;
    RegionEntry *entries;   /* in file order */
    int n;
    void *index;            /* image -> entry (internal hash) */
} RegionMap;

/* skip_bad: skip malformed lines and count them in *n_skipped instead of failing.
 * Errors: VCM_EINPUT with "FILE:LINE:COL: problem". */
int regionmap_load(const char *path, RegionMap *m, int skip_bad, long *n_skipped);
const RegionEntry *regionmap_find(const RegionMap *m, const char *image);
const RegionBox *region_entry_box(const RegionEntry *e, int id);  /* NULL if absent */
void regionmap_free(RegionMap *m);

/* ================================================================ images and drawing
 * (data/image*.c, data/draw*.c) — owner: images
 *
 * 8-bit RGB, row-major, 3 bytes a pixel. */
typedef struct Image {
    int w, h;
    uint8_t *rgb;
} Image;

/* Any format stb_image reads (JPEG/PNG/BMP/GIF/TGA), converted to RGB. A truncated
 * or corrupt file fails with VCM_EINPUT and "PATH: problem". */
int image_load(const char *path, Image *out);
/* Width and height from the header only (no full decode). */
int image_info(const char *path, int *w, int *h);
int image_save_png(const char *path, const Image *im);   /* atomic: temp file + rename */
void image_free(Image *im);

/* ================================================================ synthetic world
 * (data/synth*.c) */

#endif
