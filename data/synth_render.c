/* The synthetic world's renderer: filled primitives (rectangle, ellipse, ring, polygon,
 * thick line) in a box's unit coordinates, the six backgrounds, and a scene.
 * No anti-aliasing: a pixel is covered when its centre is inside the shape; the model's
 * resize (stb) does the smoothing. Everything is clipped to the image. */
#include "data/synth_internal.h"

#include <math.h>
#include <string.h>

static inline void put(uint8_t *rgb, int w, int x, int y, const uint8_t c[3]) {
    uint8_t *p = rgb + ((size_t)y * (size_t)w + (size_t)x) * 3;
    p[0] = c[0]; p[1] = c[1]; p[2] = c[2];
}

static void span(uint8_t *rgb, int w, int h, int y, float xa, float xb, const uint8_t c[3]) {
    if (y < 0 || y >= h) return;
    int x0 = (int)ceilf(xa - 0.5f), x1 = (int)floorf(xb - 0.5f);
    if (x0 < 0) x0 = 0;
    if (x1 > w - 1) x1 = w - 1;
    for (int x = x0; x <= x1; x++) put(rgb, w, x, y, c);
}

static inline float map_x(const DrawCtx *c, float u) { return c->x + (c->flip ? 1.0f - u : u) * c->bw; }
static inline float map_y(const DrawCtx *c, float v) { return c->y + v * c->bh; }

/* Even-odd scanline fill of a polygon given in pixels (n <= 32). */
static void fill_poly_px(uint8_t *rgb, int w, int h, const float *xy, int n, const uint8_t col[3]) {
    if (n < 3) return;
    float ymin = xy[1], ymax = xy[1];
    for (int i = 1; i < n; i++) {
        if (xy[2 * i + 1] < ymin) ymin = xy[2 * i + 1];
        if (xy[2 * i + 1] > ymax) ymax = xy[2 * i + 1];
    }
    int j0 = (int)ceilf(ymin - 0.5f), j1 = (int)floorf(ymax - 0.5f);
    if (j0 < 0) j0 = 0;
    if (j1 > h - 1) j1 = h - 1;
    for (int j = j0; j <= j1; j++) {
        float yc = (float)j + 0.5f, xs[32];
        int m = 0;
        for (int i = 0; i < n && m < 32; i++) {
            float ax = xy[2 * i], ay = xy[2 * i + 1];
            float bx = xy[2 * ((i + 1) % n)], by = xy[2 * ((i + 1) % n) + 1];
            if ((ay <= yc && by > yc) || (by <= yc && ay > yc))
                xs[m++] = ax + (yc - ay) / (by - ay) * (bx - ax);
        }
        for (int a = 1; a < m; a++) /* insertion sort: m is tiny */
            for (int b = a; b > 0 && xs[b - 1] > xs[b]; b--) { float t = xs[b]; xs[b] = xs[b - 1]; xs[b - 1] = t; }
        for (int a = 0; a + 1 < m; a += 2) span(rgb, w, h, j, xs[a], xs[a + 1], col);
    }
}

static void fill_ellipse_px(uint8_t *rgb, int w, int h, float cx, float cy, float rx, float ry,
                            float irx, float iry, const uint8_t col[3]) {
    if (rx <= 0 || ry <= 0) return;
    int j0 = (int)ceilf(cy - ry - 0.5f), j1 = (int)floorf(cy + ry - 0.5f);
    if (j0 < 0) j0 = 0;
    if (j1 > h - 1) j1 = h - 1;
    for (int j = j0; j <= j1; j++) {
        float dy = ((float)j + 0.5f - cy) / ry;
        float q = 1.0f - dy * dy;
        if (q < 0) continue;
        float half = rx * sqrtf(q);
        if (irx > 0 && iry > 0) { /* ring: subtract the inner ellipse's span */
            float idy = ((float)j + 0.5f - cy) / iry, iq = 1.0f - idy * idy;
            if (iq > 0) {
                float ih = irx * sqrtf(iq);
                span(rgb, w, h, j, cx - half, cx - ih, col);
                span(rgb, w, h, j, cx + ih, cx + half, col);
                continue;
            }
        }
        span(rgb, w, h, j, cx - half, cx + half, col);
    }
}

void dc_poly(DrawCtx *c, const float *uv, int n, const uint8_t col[3]) {
    float xy[64];
    if (n < 3) return;
    if (n > 32) n = 32;
    for (int i = 0; i < n; i++) {
        xy[2 * i] = map_x(c, uv[2 * i]);
        xy[2 * i + 1] = map_y(c, uv[2 * i + 1]);
    }
    fill_poly_px(c->rgb, c->w, c->h, xy, n, col);
}

void dc_rect(DrawCtx *c, float u0, float v0, float u1, float v1, const uint8_t col[3]) {
    float uv[8] = {u0, v0, u1, v0, u1, v1, u0, v1};
    dc_poly(c, uv, 4, col);
}

void dc_tri(DrawCtx *c, float u0, float v0, float u1, float v1, float u2, float v2, const uint8_t col[3]) {
    float uv[6] = {u0, v0, u1, v1, u2, v2};
    dc_poly(c, uv, 3, col);
}

void dc_ellipse(DrawCtx *c, float cu, float cv, float ru, float rv, const uint8_t col[3]) {
    fill_ellipse_px(c->rgb, c->w, c->h, map_x(c, cu), map_y(c, cv), ru * c->bw, rv * c->bh, 0, 0, col);
}

void dc_ring(DrawCtx *c, float cu, float cv, float ru, float rv, float thick, const uint8_t col[3]) {
    float rx = ru * c->bw, ry = rv * c->bh, t = thick * (c->bw < c->bh ? c->bw : c->bh);
    if (t < 1.5f) t = 1.5f;
    fill_ellipse_px(c->rgb, c->w, c->h, map_x(c, cu), map_y(c, cv), rx, ry, rx - t, ry - t, col);
}

void dc_line(DrawCtx *c, float u0, float v0, float u1, float v1, float thick_px, const uint8_t col[3]) {
    float x0 = map_x(c, u0), y0 = map_y(c, v0), x1 = map_x(c, u1), y1 = map_y(c, v1);
    float dx = x1 - x0, dy = y1 - y0, len = sqrtf(dx * dx + dy * dy);
    if (len < 1e-3f) return;
    float nx = -dy / len * thick_px * 0.5f, ny = dx / len * thick_px * 0.5f;
    float xy[8] = {x0 + nx, y0 + ny, x1 + nx, y1 + ny, x1 - nx, y1 - ny, x0 - nx, y0 - ny};
    fill_poly_px(c->rgb, c->w, c->h, xy, 4, col);
}

/* ---------------------------------------------------------------- backgrounds */

static uint8_t clamp8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

static void shade(uint8_t out[3], const uint8_t in[3], int d) {
    for (int i = 0; i < 3; i++) out[i] = clamp8(in[i] + d);
}

static void fill_rows(uint8_t *rgb, int w, int y0, int y1, const uint8_t top[3], const uint8_t bot[3]) {
    for (int y = y0; y < y1; y++) {
        float t = y1 - y0 > 1 ? (float)(y - y0) / (float)(y1 - y0 - 1) : 0.0f;
        uint8_t c[3];
        for (int i = 0; i < 3; i++) c[i] = (uint8_t)((float)top[i] + t * ((float)bot[i] - (float)top[i]) + 0.5f);
        for (int x = 0; x < w; x++) put(rgb, w, x, y, c);
    }
}

void synth_draw_background(uint8_t *rgb, int w, int h, int bg, uint32_t tint) {
    const SynthBackground *b = &synth_backgrounds[bg];
    int d = (int)(tint % 21) - 10;              /* brightness shift of this image */
    int hz = (int)(b->horizon * (float)h + 0.5f);
    uint8_t up0[3], up1[3], g0[3], g1[3], line[3];
    shade(up0, b->upper, d - 18);
    shade(up1, b->upper, d + 12);
    shade(g0, b->ground, d + 6);
    shade(g1, b->ground, d - 14);
    fill_rows(rgb, w, 0, hz, up0, up1);
    fill_rows(rgb, w, hz, h, g0, g1);
    DrawCtx c = {rgb, w, h, 0, 0, (float)w, (float)h, 0};
    float fh = (float)h;
    int phase = (int)((tint >> 8) % 64);
    switch (bg) {
    case BG_SKY: /* a rounded hill under a bright sky */
        shade(line, (const uint8_t[3]){90, 170, 80}, d);
        dc_ellipse(&c, 0.5f, b->horizon + 0.35f, 0.9f, 0.36f, line);
        break;
    case BG_GRASS: /* darker tufts */
        shade(line, b->ground, d - 30);
        for (int i = 0; i < 14; i++) {
            float u = (float)((i * 37 + phase) % 100) / 100.0f, v = b->horizon + 0.05f + (float)((i * 53) % 55) / 100.0f;
            dc_line(&c, u, v, u + 0.01f, v - 0.03f, 1.5f, line);
        }
        break;
    case BG_WATER: /* lighter wave strokes */
        shade(line, b->ground, d + 40);
        for (int i = 0; i < 12; i++) {
            float u = (float)((i * 41 + phase) % 100) / 100.0f, v = b->horizon + 0.05f + (float)((i * 29) % 55) / 100.0f;
            dc_line(&c, u, v, u + 0.08f, v, 1.5f, line);
        }
        break;
    case BG_FLOOR: /* planks, and the skirting board where wall meets floor */
        shade(line, b->ground, d - 35);
        for (int i = 1; i < 6; i++) {
            float v = b->horizon + (1.0f - b->horizon) * (float)(i * i) / 36.0f;
            dc_line(&c, 0, v, 1, v, 1.2f, line);
        }
        shade(line, (const uint8_t[3]){245, 240, 230}, d);
        dc_rect(&c, 0, b->horizon - 6.0f / fh, 1, b->horizon, line);
        break;
    case BG_ROAD: /* grass verge, kerb and dashed centre line */
        shade(line, (const uint8_t[3]){90, 165, 75}, d);
        dc_rect(&c, 0, b->horizon, 1, b->horizon + 10.0f / fh, line);
        shade(line, (const uint8_t[3]){190, 190, 190}, d);
        dc_rect(&c, 0, b->horizon + 10.0f / fh, 1, b->horizon + 13.0f / fh, line);
        shade(line, (const uint8_t[3]){240, 240, 240}, 0);
        for (int i = 0; i < 6; i++) {
            float u = (float)i / 6.0f + (float)phase / 640.0f;
            dc_rect(&c, u, 0.76f, u + 0.08f, 0.78f, line);
        }
        break;
    case BG_SAND: /* a strip of sea at the horizon, pebbles */
        shade(line, (const uint8_t[3]){60, 140, 205}, d);
        dc_rect(&c, 0, b->horizon, 1, b->horizon + 12.0f / fh, line);
        shade(line, b->ground, d - 35);
        for (int i = 0; i < 10; i++) {
            float u = (float)((i * 43 + phase) % 100) / 100.0f, v = b->horizon + 0.12f + (float)((i * 31) % 45) / 100.0f;
            dc_ellipse(&c, u, v, 0.006f, 0.008f, line);
        }
        break;
    }
}

void synth_render(uint64_t seed, const SynthScene *s, uint8_t *rgb) {
    synth_draw_background(rgb, SYNTH_W, SYNTH_H, s->bg, s->tint);
    for (int i = 0; i < s->n; i++) {
        int k = s->draw_order[i];
        const SynthObject *o = &s->obj[k];
        SynthDrawFn fn = synth_shape(synth_categories[o->cat].name);
        if (!fn) continue;
        DrawCtx c = {rgb, SYNTH_W, SYNTH_H, o->x0, o->y0, o->x1 - o->x0, o->y1 - o->y0, o->flip};
        SRng r = srng_for(seed, (uint64_t)s->index, RNG_RENDER * 16 + (uint64_t)k);
        fn(&c, synth_colors[o->color].rgb, &r);
    }
}
