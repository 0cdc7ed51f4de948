/* Drawing regions on an image: translucent fill, 2 px outline, "[k]" label
 * (stb_easy_font's segment glyphs, scaled up as filled rectangles). */
#include "data/data.h"

#include <math.h>
#include <string.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_easy_font.h>
#pragma GCC diagnostic pop

/* 16 colours far apart from each other and from grey (Trubetskoy's list). */
const uint8_t draw_palette[16][3] = {
    {230, 25, 75},   {60, 180, 75},  {0, 130, 200},  {245, 130, 48},
    {145, 30, 180},  {70, 240, 240}, {240, 50, 230}, {210, 245, 60},
    {250, 190, 212}, {0, 128, 128},  {220, 190, 255}, {170, 110, 40},
    {255, 225, 25},  {128, 0, 0},    {0, 0, 128},    {128, 128, 0}};

typedef struct Rect { int x0, y0, x1, y1; } Rect;   /* x1, y1 exclusive */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Float pixel box -> integer rectangle covering it, in a range no int overflows in. */
static int box_rect(const DrawBox *b, Rect *r) {
    float v[4] = {b->x0, b->y0, b->x1, b->y1};
    for (int i = 0; i < 4; i++) {
        if (!isfinite(v[i])) return 0;
        v[i] = fminf(fmaxf(v[i], -1e7f), 1e7f);
    }
    r->x0 = (int)floorf(v[0]);
    r->y0 = (int)floorf(v[1]);
    r->x1 = (int)ceilf(v[2]);
    r->y1 = (int)ceilf(v[3]);
    return r->x1 > r->x0 && r->y1 > r->y0;
}

static void fill_rect(Image *im, Rect r, const uint8_t c[3], float alpha) {
    int x0 = clampi(r.x0, 0, im->w), x1 = clampi(r.x1, 0, im->w);
    int y0 = clampi(r.y0, 0, im->h), y1 = clampi(r.y1, 0, im->h);
    for (int y = y0; y < y1; y++) {
        uint8_t *p = im->rgb + ((size_t)y * (size_t)im->w + (size_t)x0) * 3;
        for (int x = x0; x < x1; x++, p += 3)
            for (int k = 0; k < 3; k++) {
                if (alpha >= 1.f) p[k] = c[k];
                else p[k] = (uint8_t)lrintf((float)p[k] * (1.f - alpha) + (float)c[k] * alpha);
            }
    }
}

static void outline(Image *im, Rect r, const uint8_t c[3], int t) {
    Rect side[4] = {{r.x0, r.y0, r.x1, r.y0 + t}, {r.x0, r.y1 - t, r.x1, r.y1},
                    {r.x0, r.y0, r.x0 + t, r.y1}, {r.x1 - t, r.y0, r.x1, r.y1}};
    for (int i = 0; i < 4; i++) {
        /* a box thinner than two outlines is all outline */
        Rect s = side[i];
        if (s.x0 < r.x0) s.x0 = r.x0;
        if (s.y0 < r.y0) s.y0 = r.y0;
        if (s.x1 > r.x1) s.x1 = r.x1;
        if (s.y1 > r.y1) s.y1 = r.y1;
        fill_rect(im, s, c, 1.f);
    }
}

/* The label "[id]" with its top-left corner near (x, y), kept inside the image. */
static void label(Image *im, int x, int y, int id, const uint8_t bg[3], int s) {
    char text[16];
    snprintf(text, sizeof text, "[%d]", id);
    float q[64 * 4 * 4];   /* up to 64 quads of 4 vertices, 16 bytes each (x, y, z, rgba) */
    int n = stb_easy_font_print(0, 0, text, NULL, q, (int)sizeof q);
    float fx0 = 1e9f, fy0 = 1e9f, fx1 = -1e9f, fy1 = -1e9f;
    for (int i = 0; i < 4 * n; i++) {
        float vx = q[4 * i], vy = q[4 * i + 1];
        fx0 = fminf(fx0, vx); fx1 = fmaxf(fx1, vx);
        fy0 = fminf(fy0, vy); fy1 = fmaxf(fy1, vy);
    }
    if (n == 0) return;
    int pad = 1;
    int lw = ((int)(fx1 - fx0) + 2 * pad) * s, lh = ((int)(fy1 - fy0) + 2 * pad) * s;
    /* above the box when there is room, else just inside its top edge */
    int lx = x, ly = y - lh >= 0 ? y - lh : y;
    lx = clampi(lx, 0, im->w - lw > 0 ? im->w - lw : 0);
    ly = clampi(ly, 0, im->h - lh > 0 ? im->h - lh : 0);
    Rect back = {lx, ly, lx + lw, ly + lh};
    fill_rect(im, back, bg, 1.f);
    float lum = 0.299f * bg[0] + 0.587f * bg[1] + 0.114f * bg[2];
    const uint8_t ink[3] = {lum > 150.f ? 0 : 255, lum > 150.f ? 0 : 255, lum > 150.f ? 0 : 255};
    for (int i = 0; i < n; i++) {
        const float *v = q + 16 * i;
        float a0 = fminf(v[0], v[8]), a1 = fmaxf(v[0], v[8]);   /* vertices 0 and 2 are opposite */
        float b0 = fminf(v[1], v[9]), b1 = fmaxf(v[1], v[9]);
        Rect g = {lx + ((int)(a0 - fx0) + pad) * s, ly + ((int)(b0 - fy0) + pad) * s,
                  lx + ((int)(a1 - fx0) + pad) * s, ly + ((int)(b1 - fy0) + pad) * s};
        fill_rect(im, g, ink, 1.f);
    }
}

void draw_boxes(Image *im, const DrawBox *boxes, int n, int label_scale) {
    if (!im->rgb || im->w <= 0 || im->h <= 0) return;
    if (label_scale == DRAW_LABEL_AUTO) label_scale = (im->w < im->h ? im->w : im->h) / 112;
    Rect r;
    /* fills first, then outlines, then labels, so a label is never tinted by a fill */
    for (int i = 0; i < n; i++)
        if (box_rect(&boxes[i], &r)) fill_rect(im, r, draw_palette[(unsigned)boxes[i].id % 16], DRAW_FILL_ALPHA);
    for (int i = 0; i < n; i++)
        if (box_rect(&boxes[i], &r)) outline(im, r, draw_palette[(unsigned)boxes[i].id % 16], DRAW_OUTLINE);
    if (label_scale <= 0) return;
    if (label_scale > 64) label_scale = 64;
    for (int i = 0; i < n; i++) {
        if (!box_rect(&boxes[i], &r)) continue;
        if (r.x1 <= 0 || r.y1 <= 0 || r.x0 >= im->w || r.y0 >= im->h) continue;   /* box not visible */
        label(im, r.x0, r.y0, boxes[i].id, draw_palette[(unsigned)boxes[i].id % 16], label_scale);
    }
}
