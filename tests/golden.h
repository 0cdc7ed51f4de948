/* Reader for the golden files written by tests/ref/ops.py (format: docs/GOLDENS.md).
 *
 *   GoldenCase c;
 *   if (golden_load("tests/ref/golden/add_00_same.vgd", &c)) puts(vcm_error());
 *   const GoldenArray *out = golden_find(&c, "out");
 *   golden_free(&c);
 *
 * Every read is bounds-checked; a bad file fails with VCM_EINPUT and a message naming
 * the file, the byte offset and the problem. */
#ifndef VCM_GOLDEN_H
#define VCM_GOLDEN_H

#include "tensor/tensor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { GOLDEN_F32 = 0, GOLDEN_I32 = 1, GOLDEN_U8 = 2 };
#define GOLDEN_VERSION 1
#define GOLDEN_MAX_ARRAYS 32
#define GOLDEN_MAX_NAME 31        /* array and op names */
#define GOLDEN_MAX_CASE_NAME 63
#define GOLDEN_MAX_FILE (256u << 20)

typedef struct {
    char name[GOLDEN_MAX_NAME + 1];
    int dtype;
    int ndim;
    int shape[VCM_MAXDIM];
    size_t n;
    void *data;               /* float, int32_t or uint8_t */
} GoldenArray;

typedef struct {
    char op[GOLDEN_MAX_NAME + 1];
    int n_arrays;
    GoldenArray arr[GOLDEN_MAX_ARRAYS];
} GoldenCase;

typedef struct {
    char (*names)[GOLDEN_MAX_CASE_NAME + 1];
    int n;
    int seed;
} GoldenManifest;

static void golden_free(GoldenCase *c) {
    for (int i = 0; i < c->n_arrays; i++) free(c->arr[i].data);
    memset(c, 0, sizeof *c);
}

static const GoldenArray *golden_find(const GoldenCase *c, const char *name) {
    for (int i = 0; i < c->n_arrays; i++)
        if (!strcmp(c->arr[i].name, name)) return &c->arr[i];
    return NULL;
}

/* A cursor over the file bytes: every take checks what is left. */
typedef struct {
    const unsigned char *p;
    size_t len, pos;
    const char *path;
} GoldenCursor;

static int golden_take(GoldenCursor *c, size_t n, const char *what, const unsigned char **out) {
    if (c->len - c->pos < n)
        return vcm_fail(VCM_EINPUT, "%s: byte %zu: file truncated: %s needs %zu bytes, %zu left", c->path,
                        c->pos, what, n, c->len - c->pos);
    *out = c->p + c->pos;
    c->pos += n;
    return VCM_OK;
}

static uint32_t golden_le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static int golden_u32(GoldenCursor *c, const char *what, uint32_t *v) {
    const unsigned char *b = NULL;
    if (golden_take(c, 4, what, &b)) return VCM_EINPUT;
    *v = golden_le32(b);
    return VCM_OK;
}

/* A length-prefixed name of 1..GOLDEN_MAX_NAME characters from [A-Za-z0-9_.]. */
static int golden_name(GoldenCursor *c, const char *what, char *dst) {
    size_t at = c->pos;
    uint32_t len;
    const unsigned char *b = NULL;
    if (golden_u32(c, what, &len)) return VCM_EINPUT;
    if (len < 1 || len > GOLDEN_MAX_NAME)
        return vcm_fail(VCM_EINPUT, "%s: byte %zu: %s length %u (1..%d allowed)", c->path, at, what, len,
                        GOLDEN_MAX_NAME);
    if (golden_take(c, len, what, &b)) return VCM_EINPUT;
    for (uint32_t i = 0; i < len; i++) {
        int ch = b[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
              ch == '.'))
            return vcm_fail(VCM_EINPUT, "%s: byte %zu: %s has a bad character (code %d)", c->path, at + 4 + i,
                            what, ch);
        dst[i] = (char)ch;
    }
    dst[len] = 0;
    return VCM_OK;
}

static int golden_array(GoldenCursor *c, GoldenCase *gc, GoldenArray *a) {
    static const size_t elsize[] = {4, 4, 1};
    uint32_t dtype, ndim;
    if (golden_name(c, "array name", a->name)) return VCM_EINPUT;
    for (int i = 0; i < gc->n_arrays; i++)
        if (!strcmp(gc->arr[i].name, a->name))
            return vcm_fail(VCM_EINPUT, "%s: byte %zu: array \"%s\" appears twice", c->path, c->pos, a->name);
    size_t at = c->pos;
    if (golden_u32(c, "dtype", &dtype)) return VCM_EINPUT;
    if (dtype > GOLDEN_U8)
        return vcm_fail(VCM_EINPUT, "%s: byte %zu: array \"%s\": dtype %u (0 f32, 1 i32, 2 u8)", c->path, at,
                        a->name, dtype);
    at = c->pos;
    if (golden_u32(c, "ndim", &ndim)) return VCM_EINPUT;
    if (ndim < 1 || ndim > VCM_MAXDIM)
        return vcm_fail(VCM_EINPUT, "%s: byte %zu: array \"%s\": %u dims (1..%d allowed)", c->path, at, a->name,
                        ndim, VCM_MAXDIM);
    a->dtype = (int)dtype;
    a->ndim = (int)ndim;
    size_t n = 1, left;
    for (uint32_t d = 0; d < ndim; d++) {
        uint32_t s;
        at = c->pos;
        if (golden_u32(c, "shape", &s)) return VCM_EINPUT;
        if (s < 1 || s > (1u << 28))
            return vcm_fail(VCM_EINPUT, "%s: byte %zu: array \"%s\": dim %u of size %d", c->path, at, a->name, d,
                            (int32_t)s);
        a->shape[d] = (int)s;
        /* Never let the product outgrow what the file can hold (no overflow either). */
        left = (c->len - c->pos) / elsize[dtype];
        if (n > left / s)
            return vcm_fail(VCM_EINPUT, "%s: byte %zu: file truncated: array \"%s\" is larger than the file", c->path,
                            at, a->name);
        n *= s;
    }
    a->n = n;
    const unsigned char *b = NULL;
    char what[64];
    snprintf(what, sizeof what, "the data of \"%s\"", a->name);
    if (golden_take(c, n * elsize[dtype], what, &b)) return VCM_EINPUT;
    a->data = malloc(n * elsize[dtype]);
    if (!a->data) return vcm_fail(VCM_ERR, "%s: out of memory for array \"%s\"", c->path, a->name);
    if (dtype == GOLDEN_U8) {
        memcpy(a->data, b, n);
    } else {
        uint32_t *dst = a->data;
        for (size_t i = 0; i < n; i++) dst[i] = golden_le32(b + 4 * i);
    }
    return VCM_OK;
}

static int golden_parse(const unsigned char *p, size_t len, const char *path, GoldenCase *gc) {
    GoldenCursor c = {p, len, 0, path};
    const unsigned char *b = NULL;
    uint32_t version, n;
    memset(gc, 0, sizeof *gc);
    if (golden_take(&c, 8, "magic", &b)) return VCM_EINPUT;
    if (memcmp(b, "VCMGOLD\n", 8))
        return vcm_fail(VCM_EINPUT, "%s: byte 0: bad magic: not a golden file of tests/ref/ops.py", path);
    if (golden_u32(&c, "version", &version)) return VCM_EINPUT;
    if (version != GOLDEN_VERSION)
        return vcm_fail(VCM_EINPUT, "%s: byte 8: version %u (this reader knows %d)", path, version, GOLDEN_VERSION);
    if (golden_name(&c, "op name", gc->op)) return VCM_EINPUT;
    size_t at = c.pos;
    if (golden_u32(&c, "array count", &n)) return VCM_EINPUT;
    if (n < 1 || n > GOLDEN_MAX_ARRAYS)
        return vcm_fail(VCM_EINPUT, "%s: byte %zu: %u arrays (1..%d allowed)", path, at, n, GOLDEN_MAX_ARRAYS);
    for (uint32_t i = 0; i < n; i++) {
        int rc = golden_array(&c, gc, &gc->arr[i]);
        if (rc) {
            golden_free(gc);
            return rc;
        }
        gc->n_arrays++;
    }
    if (c.pos != len) {
        golden_free(gc);
        return vcm_fail(VCM_EINPUT, "%s: byte %zu: %zu trailing bytes after the last array", path, c.pos,
                        len - c.pos);
    }
    return VCM_OK;
}

/* The whole file into memory (malloc), at most GOLDEN_MAX_FILE bytes. */
static int golden_slurp(const char *path, unsigned char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return vcm_fail(VCM_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    if (!buf) { fclose(f); return vcm_fail(VCM_ERR, "%s: out of memory", path); }
    for (;;) {
        if (n == cap) {
            if (cap >= GOLDEN_MAX_FILE) {
                free(buf); fclose(f);
                return vcm_fail(VCM_EINPUT, "%s: larger than %u bytes", path, GOLDEN_MAX_FILE);
            }
            unsigned char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); fclose(f); return vcm_fail(VCM_ERR, "%s: out of memory", path); }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return vcm_fail(VCM_EINPUT, "%s: read error", path); }
    *data = buf;
    *len = n;
    return VCM_OK;
}

static int golden_load(const char *path, GoldenCase *gc) {
    unsigned char *data;
    size_t len;
    memset(gc, 0, sizeof *gc);
    int rc = golden_slurp(path, &data, &len);
    if (rc) return rc;
    rc = golden_parse(data, len, path, gc);
    free(data);
    return rc;
}

static void golden_manifest_free(GoldenManifest *m) {
    free(m->names);
    memset(m, 0, sizeof *m);
}

/* DIR/MANIFEST: "vcm-goldens 1 seed S cases N", then N case names, one a line. */
static int golden_manifest_load(const char *dir, GoldenManifest *m) {
    char path[4096], line[256];
    memset(m, 0, sizeof *m);
    snprintf(path, sizeof path, "%s/MANIFEST", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return vcm_fail(VCM_EINPUT, "%s: cannot open: %s (is it a directory written by tests/ref/ops.py --out?)",
                        path, strerror(errno));
    int version, seed, n, lineno = 1, rc = VCM_OK;
    if (!fgets(line, sizeof line, f) || sscanf(line, "vcm-goldens %d seed %d cases %d", &version, &seed, &n) != 3) {
        fclose(f);
        return vcm_fail(VCM_EINPUT, "%s: line 1: expected \"vcm-goldens 1 seed S cases N\"", path);
    }
    if (version != GOLDEN_VERSION || n < 1 || n > 100000) {
        fclose(f);
        return vcm_fail(VCM_EINPUT, "%s: line 1: version %d with %d cases (version %d, 1..100000 cases expected)",
                        path, version, n, GOLDEN_VERSION);
    }
    m->names = calloc((size_t)n, sizeof *m->names);
    if (!m->names) { fclose(f); return vcm_fail(VCM_ERR, "%s: out of memory", path); }
    m->seed = seed;
    while (m->n < n) {
        lineno++;
        if (!fgets(line, sizeof line, f)) {
            rc = vcm_fail(VCM_EINPUT, "%s: line %d: file ends after %d of %d cases", path, lineno, m->n, n);
            break;
        }
        size_t len = strcspn(line, "\n");
        if (line[len] != '\n' && !feof(f)) {
            rc = vcm_fail(VCM_EINPUT, "%s: line %d: line too long", path, lineno);
            break;
        }
        line[len] = 0;
        int bad = len < 1 || len > GOLDEN_MAX_CASE_NAME;
        for (size_t i = 0; i < len && !bad; i++) {
            char ch = line[i];
            bad = !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_');
        }
        if (bad) {
            rc = vcm_fail(VCM_EINPUT, "%s: line %d: bad case name \"%.80s\" (1..%d of [A-Za-z0-9_])", path, lineno,
                          line, GOLDEN_MAX_CASE_NAME);
            break;
        }
        memcpy(m->names[m->n++], line, len + 1);
    }
    if (rc == VCM_OK && fgets(line, sizeof line, f))
        rc = vcm_fail(VCM_EINPUT, "%s: line %d: more lines than the %d cases announced", path, lineno + 1, n);
    fclose(f);
    if (rc) golden_manifest_free(m);
    return rc;
}

#endif
