/* Images: decode (stb_image) to RGB, header-only size, atomic PNG writes. */
#include "data/data.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#define IMAGE_MAX_FILE ((size_t)256 << 20)
/* 2^26 pixels (an 8K photograph, 200 MB decoded): a PNG of flat colour compresses
 * ~1000:1, so the pixel count, not the file size, is what bounds the decode. */
#define IMAGE_MAX_PIXELS ((size_t)1 << 26)

char *image_path(const char *images_root, const char *image) {
    size_t a = images_root ? strlen(images_root) : 0, b = strlen(image);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    if (a) {
        memcpy(p, images_root, a);
        if (images_root[a - 1] != '/') p[a++] = '/';
    }
    memcpy(p + a, image, b + 1);
    return p;
}

int image_alloc(Image *im, int w, int h) {
    im->w = im->h = 0;
    im->rgb = NULL;
    if (w <= 0 || h <= 0 || (size_t)w * (size_t)h > IMAGE_MAX_PIXELS)
        return vcm_fail(VCM_EINPUT, "image of %d×%d pixels: size out of range", w, h);
    im->rgb = calloc((size_t)w * (size_t)h, 3);
    if (!im->rgb) return vcm_fail(VCM_ERR, "out of memory for a %d×%d image", w, h);
    im->w = w;
    im->h = h;
    return VCM_OK;
}

void image_free(Image *im) {
    if (!im) return;
    free(im->rgb);
    im->rgb = NULL;
    im->w = im->h = 0;
}

/* An image file opened for reading, refused unless it is a regular file: opening a FIFO
 * (or a terminal) would wait for a writer forever. NULL with the reason set. */
static FILE *open_image_file(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        vcm_fail(VCM_EINPUT, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        vcm_fail(VCM_EINPUT, "%s: not a regular file (a FIFO, device or directory is no image)", path);
        close(fd);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        vcm_fail(VCM_ERR, "%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

/* The whole file in memory (images are small; the JPEG check needs the tail). */
static int read_file(const char *path, unsigned char **out, size_t *n) {
    FILE *f = open_image_file(path);
    if (!f) return VCM_EINPUT;
    unsigned char *b = NULL;
    size_t len = 0, cap = 0;
    int rc = VCM_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= IMAGE_MAX_FILE) { rc = vcm_fail(VCM_EINPUT, "%s: larger than 256 MiB", path); break; }
            cap = cap ? cap * 2 : 1 << 16;
            unsigned char *nb = realloc(b, cap);
            if (!nb) { rc = vcm_fail(VCM_ERR, "%s: out of memory", path); break; }
            b = nb;
        }
        size_t got = fread(b + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) rc = vcm_fail(VCM_EINPUT, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!rc && len == 0) rc = vcm_fail(VCM_EINPUT, "%s: empty file", path);
    if (rc) { free(b); return rc; }
    *out = b;
    *n = len;
    return VCM_OK;
}

/* stb_image decodes a JPEG cut short "successfully", filling the rest with grey.
 * A complete JPEG has an end-of-image marker (FF D9) after its last start-of-scan
 * (FF DA); entropy-coded data never holds FF D9 (an FF there is followed by 00 or a
 * restart marker), so the marker's absence means the file was cut. The last scan is
 * searched, not the first, because an EXIF thumbnail is a whole JPEG of its own. */
static int jpeg_complete(const unsigned char *b, size_t n) {
    size_t last_sos = 0;
    int found = 0;
    for (size_t i = 2; i + 1 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xDA) { last_sos = i; found = 1; }
    if (!found) return 0;
    for (size_t i = last_sos + 2; i + 1 < n; i++)
        if (b[i] == 0xFF && b[i + 1] == 0xD9) return 1;
    return 0;
}

int image_load(const char *path, Image *out) {
    out->w = out->h = 0;
    out->rgb = NULL;
    unsigned char *b = NULL;
    size_t n = 0;
    int rc = read_file(path, &b, &n);
    if (rc) return rc;
    if (n > 0x7fffffff) { free(b); return vcm_fail(VCM_EINPUT, "%s: file too large to decode", path); }
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF && !jpeg_complete(b, n)) {
        free(b);
        return vcm_fail(VCM_EINPUT, "%s: truncated JPEG (no end-of-image marker after the last scan)", path);
    }
    int w, h, comp;
    if (!stbi_info_from_memory(b, (int)n, &w, &h, &comp)) {
        const char *why = stbi_failure_reason();
        free(b);
        return vcm_fail(VCM_EINPUT, "%s: not an image stb_image can read (%s)", path, why ? why : "unknown format");
    }
    if ((size_t)w * (size_t)h > IMAGE_MAX_PIXELS) {
        free(b);
        return vcm_fail(VCM_EINPUT, "%s: %d×%d pixels is more than vcm decodes", path, w, h);
    }
    /* req_comp 3: grey is replicated, alpha dropped (as PIL's convert("RGB")), 16-bit scaled */
    unsigned char *px = stbi_load_from_memory(b, (int)n, &w, &h, &comp, 3);
    if (!px) {
        const char *why = stbi_failure_reason();
        free(b);
        return vcm_fail(VCM_EINPUT, "%s: cannot decode: %s (corrupt or truncated?)", path, why ? why : "unknown error");
    }
    free(b);
    /* own the pixels with our allocator so image_free is plain free() */
    size_t bytes = (size_t)w * (size_t)h * 3;
    out->rgb = malloc(bytes);
    if (!out->rgb) {
        stbi_image_free(px);
        return vcm_fail(VCM_ERR, "%s: out of memory for %d×%d pixels", path, w, h);
    }
    memcpy(out->rgb, px, bytes);
    stbi_image_free(px);
    out->w = w;
    out->h = h;
    return VCM_OK;
}

int image_info(const char *path, int *w, int *h) {
    FILE *f = open_image_file(path);
    if (!f) return VCM_EINPUT;
    int comp, ok = stbi_info_from_file(f, w, h, &comp);
    fclose(f);
    if (!ok) {
        const char *why = stbi_failure_reason();
        return vcm_fail(VCM_EINPUT, "%s: not an image stb_image can read (%s)", path, why ? why : "unknown format");
    }
    return VCM_OK;
}

/* stb_image_write calls this with the encoded bytes; errors are remembered. */
typedef struct PngSink { FILE *f; int failed; } PngSink;
static void png_write(void *ctx, void *data, int size) {
    PngSink *s = ctx;
    if (!s->failed && size > 0 && fwrite(data, 1, (size_t)size, s->f) != (size_t)size) s->failed = 1;
}

int image_save_png(const char *path, const Image *im) {
    if (!im->rgb || im->w <= 0 || im->h <= 0) return vcm_fail(VCM_EINPUT, "%s: no image to save", path);
    AtomicFile af;
    int rc = atomic_file_open(&af, path);
    if (rc) return rc;
    PngSink s = {af.f, 0};
    if (!stbi_write_png_to_func(png_write, &s, im->w, im->h, 3, im->rgb, im->w * 3)) {
        atomic_file_abort(&af);
        return vcm_fail(VCM_ERR, "%s: cannot write PNG: encoder failed", path);
    }
    return atomic_file_commit(&af);   /* a short fwrite left the stream's error flag set */
}
