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

/* Debian's stb_image 2.27 trusts two things a JPEG can get wrong (found by make fuzz,
 * tests/fuzz/): a scan may use a Huffman table no DHT defined (stb then decodes with
 * uninitialised memory), and a table is built from its 16 counts without checking
 * that they sum to at most 256 (a DHT segment saying more writes past the table's
 * 257-byte size list). Every DHT and scan header stb would read is checked first. The walk follows stb's: a marker is FF then a non-FF byte, bytes out of
 * step are skipped one at a time, a segment's length is skipped (a DHT's tables are read
 * while its length lasts, as far as they say), a scan's entropy-coded data runs to the
 * next FF that is not FF 00 or a restart marker. 1 when a table is bad. */
static int jpeg_bad_huffman(const unsigned char *b, size_t n) {
    size_t i = 2;
    int defined[2][4] = {{0}};   /* DC and AC tables a DHT has set so far */
    while (i + 1 < n) {
        if (b[i] != 0xFF) { i++; continue; }
        while (i + 1 < n && b[i + 1] == 0xFF) i++;           /* fill bytes */
        if (i + 1 >= n) break;
        unsigned m = b[i + 1];
        i += 2;
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;   /* no length */
        if (m == 0xD9) break;
        if (i + 2 > n) break;
        size_t len = (size_t)b[i] << 8 | b[i + 1];
        if (len < 2) break;
        size_t end = i + len < n ? i + len : n;
        if (m == 0xC4) {   /* as stb reads it: tables while the length lasts, even past it */
            long left = (long)len - 2;
            size_t p = i + 2;
            while (left > 0) {
                if (p >= n || (b[p] >> 4) > 1 || (b[p] & 15) > 3) return 0;   /* stb stops: "bad DHT header" */
                unsigned sum = 0;
                for (size_t k = 1; k <= 16; k++) sum += p + k < n ? b[p + k] : 0;
                if (sum > 256) return 1;
                defined[b[p] >> 4][b[p] & 15] = 1;
                p += 17 + sum;
                left -= 17 + (long)sum;
            }
            if (left != 0) return 0;   /* stb stops: the length did not match */
            i = p;
            continue;
        }
        /* A scan that names a table no DHT has defined makes stb decode with its
         * uninitialised memory (a SEGV under the fuzzer): Ss = 0 reads the DC tables,
         * Se > 0 the AC ones. */
        if (m == 0xDA && i + 3 <= end) {
            unsigned ns = b[i + 2];
            size_t q = i + 3, after = q + 2 * (size_t)ns;
            if (ns >= 1 && ns <= 4 && after + 2 <= end) {
                unsigned ss = b[after], se = b[after + 1];
                for (unsigned c = 0; c < ns; c++) {
                    unsigned td = b[q + 2 * c + 1] >> 4, ta = b[q + 2 * c + 1] & 15;
                    if (td > 3 || ta > 3) return 0;   /* stb refuses these itself */
                    if ((ss == 0 && !defined[0][td]) || (se > 0 && !defined[1][ta])) return 1;
                }
            }
        }
        i = end;
        if (m == 0xDA)   /* the entropy-coded data after the scan header */
            while (i + 1 < n && !(b[i] == 0xFF && b[i + 1] != 0x00 && (b[i + 1] < 0xD0 || b[i + 1] > 0xD7))) i++;
    }
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
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF && jpeg_bad_huffman(b, n)) {
        free(b);
        return vcm_fail(VCM_EINPUT, "%s: corrupt JPEG (a Huffman table with more than 256 codes, or a scan "
                                    "that uses a table never defined)", path);
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

/* The header of an image: its first 4 MiB (stb reads a JPEG's segments up to the frame
 * header, and its DHT segments there, so they are checked as image_load checks them). */
#define IMAGE_INFO_PREFIX ((size_t)4 << 20)

int image_info(const char *path, int *w, int *h) {
    FILE *f = open_image_file(path);
    if (!f) return VCM_EINPUT;
    unsigned char *b = malloc(IMAGE_INFO_PREFIX);
    if (!b) { fclose(f); return vcm_fail(VCM_ERR, "%s: out of memory", path); }
    size_t n = fread(b, 1, IMAGE_INFO_PREFIX, f);
    int err = ferror(f);
    fclose(f);
    if (err) { free(b); return vcm_fail(VCM_EINPUT, "%s: read error", path); }
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF && jpeg_bad_huffman(b, n)) {
        free(b);
        return vcm_fail(VCM_EINPUT, "%s: corrupt JPEG (a Huffman table with more than 256 codes, or a scan "
                                    "that uses a table never defined)", path);
    }
    int comp, ok = stbi_info_from_memory(b, (int)n, w, h, &comp);
    free(b);
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
