/* The contact sheet (docs/synth_contact_sheet.png): sample images as the models see
 * them: resized to 224x224 (small/base) with the numbered boxes scaled alongside, and
 * to 64x64 (nano), enlarged 3x with nearest neighbour so a reader can judge whether the
 * categories stay distinguishable. Below the samples, a gallery: every category once,
 * at its typical size on a plain tile, native and as the nano model sees it, named. */
#include "data/synth_internal.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

#define MID 224         /* the small/base model's input */
#define SMALL 64
#define ZOOM 3          /* the 64x64 version is shown at 192x192 */
#define GAP 6

static void blit(uint8_t *dst, int dw, int x0, int y0, const uint8_t *src, int sw, int sh, int zoom) {
    for (int y = 0; y < sh * zoom; y++)
        for (int x = 0; x < sw * zoom; x++)
            memcpy(dst + ((size_t)(y0 + y) * dw + (size_t)(x0 + x)) * 3,
                   src + ((size_t)(y / zoom) * sw + (size_t)(x / zoom)) * 3, 3);
}

/* Text with stb_easy_font's segment glyphs, each font pixel a scale x scale block. */
static void text(Image *im, int x0, int y0, const char *s, int scale) {
    float q[4 * 4 * 300];
    char buf[64];
    snprintf(buf, sizeof buf, "%s", s);
    int nq = stb_easy_font_print(0, 0, buf, NULL, q, (int)sizeof q);
    for (int i = 0; i < nq; i++) {
        const float *v = q + (size_t)i * 16; /* 4 vertices of x, y, z, colour */
        int ax = x0 + (int)v[0] * scale, ay = y0 + (int)v[1] * scale;
        int bx = x0 + (int)v[8] * scale, by = y0 + (int)v[9] * scale;
        for (int y = ay; y < by; y++)
            for (int x = ax; x < bx; x++)
                if (x >= 0 && y >= 0 && x < im->w && y < im->h) memset(im->rgb + ((size_t)y * im->w + x) * 3, 20, 3);
    }
}

#define TILE_W 128   /* half the native width and height: shrunk like the image, 32x32 */
#define TILE_H 96
#define TILE_ZOOM 3
#define GCOLS 6

static int gallery(Image *sheet, int y0) {
    uint8_t *tile = malloc(TILE_W * TILE_H * 3);
    if (!tile) return vcm_fail(VCM_ERR, "synth: out of memory");
    int cell_w = TILE_W + 32 * TILE_ZOOM + 3 * GAP, rc = VCM_OK;
    for (int c = 0; c < synth_n_categories && !rc; c++) {
        const SynthCategory *C = &synth_categories[c];
        for (size_t i = 0; i < TILE_W * TILE_H; i++) { tile[3 * i] = 200; tile[3 * i + 1] = 205; tile[3 * i + 2] = 200; }
        float h = (C->hmin + C->hmax) * 0.5f, w = h * C->aspect;
        if (w > TILE_W - 8) { w = TILE_W - 8; h = w / C->aspect; }
        if (h > TILE_H - 8) { h = TILE_H - 8; w = h * C->aspect; }
        int col = 0;
        while (!(C->palette & CB(col))) col++;
        DrawCtx dc = {tile, TILE_W, TILE_H, (TILE_W - w) * 0.5f, (TILE_H - h) * 0.5f, w, h, 0};
        SRng r = {(uint64_t)c};
        SynthDrawFn fn = synth_shape(C->name);
        if (fn) fn(&dc, synth_colors[col].rgb, &r);
        Image src = {TILE_W, TILE_H, tile}, small = {0, 0, NULL};
        rc = image_resize(&src, 32, 32, &small);
        if (rc) break;
        int x = GAP + (c % GCOLS) * cell_w, y = y0 + (c / GCOLS) * (TILE_H + 22);
        blit(sheet->rgb, sheet->w, x, y, tile, TILE_W, TILE_H, 1);
        blit(sheet->rgb, sheet->w, x + TILE_W + GAP, y, small.rgb, 32, 32, TILE_ZOOM);
        text(sheet, x, y + TILE_H + 4, C->name, 2);
        image_free(&small);
    }
    free(tile);
    return rc;
}

int synth_contact_sheet(const char *path, uint64_t seed, int n) {
    int cols = 3;                                /* three (224x224, 64x64) pairs per row */
    int cell_w = MID + GAP + SMALL * ZOOM + 2 * GAP, cell_h = MID + GAP;
    int rows = (n + cols - 1) / cols;
    int gal_w = GCOLS * (TILE_W + 32 * TILE_ZOOM + 3 * GAP) + GAP;
    int gal_h = ((synth_n_categories + GCOLS - 1) / GCOLS) * (TILE_H + 22) + GAP;
    int sheet_w = cols * cell_w + GAP > gal_w ? cols * cell_w + GAP : gal_w;
    Image sheet;
    if (image_alloc(&sheet, sheet_w, rows * cell_h + GAP + gal_h)) return VCM_ERR;
    memset(sheet.rgb, 255, (size_t)sheet.w * sheet.h * 3);
    int rc = VCM_OK;
    for (int i = 0; i < n && !rc; i++) {
        SynthScene s;
        synth_scene_make(seed, i, &s);
        Image im = {SYNTH_W, SYNTH_H, malloc((size_t)SYNTH_W * SYNTH_H * 3)}, small = {0, 0, NULL}, mid = {0, 0, NULL};
        if (!im.rgb) { rc = vcm_fail(VCM_ERR, "synth: out of memory"); break; }
        synth_render(seed, &s, im.rgb);
        rc = image_resize(&im, SMALL, SMALL, &small);
        if (!rc) rc = image_resize(&im, MID, MID, &mid);
        if (!rc) {
            /* the boxes go through the same scaling as the pixels (DESIGN.md §4) */
            DrawBox boxes[SYNTH_MAX_OBJ];
            ImageScale sc = image_scale(SYNTH_W, SYNTH_H, MID, MID);
            for (int k = 0; k < s.n; k++) {
                const SynthObject *o = &s.obj[k];
                float in[4] = {o->x0, o->y0, o->x1, o->y1}, out[4];
                image_scale_box(sc, in, out);
                boxes[k] = (DrawBox){out[0], out[1], out[2], out[3], k};
            }
            draw_boxes(&mid, boxes, s.n, 1);
            int x0 = GAP + (i % cols) * cell_w, y0 = GAP + (i / cols) * cell_h;
            blit(sheet.rgb, sheet.w, x0, y0, mid.rgb, MID, MID, 1);
            blit(sheet.rgb, sheet.w, x0 + MID + GAP, y0 + (MID - SMALL * ZOOM) / 2, small.rgb, SMALL, SMALL, ZOOM);
        }
        image_free(&small);
        image_free(&mid);
        free(im.rgb);
    }
    if (!rc) rc = gallery(&sheet, rows * cell_h + GAP);
    if (!rc) rc = image_save_png(path, &sheet);
    image_free(&sheet);
    return rc;
}
