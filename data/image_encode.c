/* Crops, fitting to a size, and JPEG data URLs: an image as a vision-language model's
 * chat request carries it (`vcm verbalize`). */
#include "data/data.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

#include <stb/stb_image_write.h>

int image_crop(const Image *src, int x0, int y0, int x1, int y1, Image *dst) {
    dst->w = dst->h = 0;
    dst->rgb = NULL;
    if (!src->rgb || x0 < 0 || y0 < 0 || x1 > src->w || y1 > src->h || x1 <= x0 || y1 <= y0)
        return vcm_fail(VCM_EINPUT, "crop [%d, %d, %d, %d] of a %d×%d image: empty or outside", x0, y0, x1, y1,
                        src->w, src->h);
    int rc = image_alloc(dst, x1 - x0, y1 - y0);
    if (rc) return rc;
    size_t row = (size_t)dst->w * 3;
    for (int y = y0; y < y1; y++)
        memcpy(dst->rgb + (size_t)(y - y0) * row, src->rgb + ((size_t)y * (size_t)src->w + (size_t)x0) * 3, row);
    return VCM_OK;
}

int image_fit(const Image *src, int max_side, Image *dst) {
    int big = src->w > src->h ? src->w : src->h;
    if (max_side < 1) return vcm_fail(VCM_EINPUT, "image_fit: max side %d", max_side);
    if (big <= max_side) {
        int rc = image_alloc(dst, src->w, src->h);
        if (!rc) memcpy(dst->rgb, src->rgb, (size_t)src->w * (size_t)src->h * 3);
        return rc;
    }
    double s = (double)max_side / big;
    int w = (int)(src->w * s + 0.5), h = (int)(src->h * s + 0.5);
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if (w > max_side) w = max_side;
    if (h > max_side) h = max_side;
    return image_resize(src, w, h, dst);
}

typedef struct Buf { unsigned char *p; size_t n, cap; int failed; } Buf;

static void buf_write(void *ctx, void *data, int size) {
    Buf *b = ctx;
    if (b->failed || size <= 0) return;
    if (b->n + (size_t)size > b->cap) {
        size_t nc = b->cap ? b->cap : 1 << 14;
        while (nc < b->n + (size_t)size) nc *= 2;
        unsigned char *np = realloc(b->p, nc);
        if (!np) { b->failed = 1; return; }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, data, (size_t)size);
    b->n += (size_t)size;
}

int image_jpeg_data_url(const Image *im, int quality, char **url) {
    static const char prefix[] = "data:image/jpeg;base64,";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    *url = NULL;
    if (!im->rgb || im->w <= 0 || im->h <= 0) return vcm_fail(VCM_EINPUT, "image_jpeg_data_url: no image");
    if (quality < 1 || quality > 100) return vcm_fail(VCM_EINPUT, "JPEG quality %d: wants 1..100", quality);
    Buf b = {0};
    int ok = stbi_write_jpg_to_func(buf_write, &b, im->w, im->h, 3, im->rgb, quality);
    if (!ok || b.failed) {
        free(b.p);
        return vcm_fail(VCM_ERR, "JPEG encoding of a %d×%d image failed%s", im->w, im->h, b.failed ? " (out of memory)" : "");
    }
    size_t pre = sizeof prefix - 1, n = pre + 4 * ((b.n + 2) / 3) + 1;
    char *u = malloc(n);
    if (!u) { free(b.p); return vcm_fail(VCM_ERR, "out of memory"); }
    memcpy(u, prefix, pre);
    char *o = u + pre;
    size_t i = 0;
    for (; i + 2 < b.n; i += 3) {
        unsigned v = (unsigned)b.p[i] << 16 | (unsigned)b.p[i + 1] << 8 | b.p[i + 2];
        *o++ = b64[v >> 18]; *o++ = b64[(v >> 12) & 63]; *o++ = b64[(v >> 6) & 63]; *o++ = b64[v & 63];
    }
    if (i < b.n) {   /* 1 or 2 bytes left: padded with '=' */
        unsigned v = (unsigned)b.p[i] << 16 | (i + 1 < b.n ? (unsigned)b.p[i + 1] << 8 : 0u);
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < b.n ? b64[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o = 0;
    free(b.p);
    *url = u;
    return VCM_OK;
}
