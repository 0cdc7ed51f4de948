/* safetensors, the weight format PyTorch users load without pickle: an 8-byte
 * little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * (offsets relative to the first byte after the header), then the data. We write
 * F32 only and read F32 only; the reader checks every offset against the file size. */
#include "nn.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this code copies it as host floats"
#endif

#define ST_MAX_HEADER (100u << 20)    /* the reference implementation's limit */
#define ST_ALIGN 8                    /* header padded with spaces so data is aligned */

/* ---------------------------------------------------------------- write */

static json_t *header_json(const char *path, int n, const SafetensorsEntry *e,
                           const char *const *metadata, size_t *max_bytes) {
    json_t *root = json_object();
    int bad = !root;
    if (!bad && metadata && metadata[0]) {
        json_t *meta = json_object();
        bad = json_object_set_new(root, "__metadata__", meta) != 0;
        for (int k = 0; !bad && metadata[k]; k += 2) {
            if (!metadata[k + 1]) {
                json_decref(root);
                vcm_fail(VCM_ERR, "%s: metadata key %s has no value", path, metadata[k]);
                return NULL;
            }
            bad = json_object_set_new(meta, metadata[k], json_string(metadata[k + 1])) != 0;
        }
    }
    uint64_t at = 0;
    *max_bytes = 0;
    for (int i = 0; !bad && i < n; i++) {
        if (!strcmp(e[i].name, "__metadata__") || json_object_get(root, e[i].name)) {
            json_decref(root);
            vcm_fail(VCM_ERR, "%s: tensor name %s used twice or reserved", path, e[i].name);
            return NULL;
        }
        json_t *t = json_object(), *shape = json_array();
        uint64_t numel = 1;
        for (int d = 0; d < e[i].ndim; d++) {
            numel *= (uint64_t)e[i].shape[d];
            json_array_append_new(shape, json_integer(e[i].shape[d]));
        }
        uint64_t bytes = numel * sizeof(float);
        if (bytes > *max_bytes) *max_bytes = bytes;
        bad = !t || !shape || json_object_set_new(t, "dtype", json_string("F32")) ||
              json_object_set_new(t, "shape", shape) ||
              json_object_set_new(t, "data_offsets",
                                  json_pack("[II]", (json_int_t)at, (json_int_t)(at + bytes))) ||
              json_object_set_new(root, e[i].name, t);
        at += bytes;
    }
    if (bad) {
        json_decref(root);
        vcm_fail(VCM_ERR, "%s: out of memory for the safetensors header", path);
        return NULL;
    }
    return root;
}

int safetensors_write(const char *path, int n, const SafetensorsEntry *e, SafetensorsFill fill,
                      void *ctx, const char *const *metadata) {
    size_t max_bytes;
    json_t *root = header_json(path, n, e, metadata, &max_bytes);
    if (!root) return VCM_ERR;
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return vcm_fail(VCM_ERR, "%s: out of memory for the safetensors header", path);
    size_t len = strlen(text);
    size_t padded = (len + ST_ALIGN - 1) / ST_ALIGN * ST_ALIGN;
    float *buf = malloc(max_bytes ? max_bytes : 1);
    if (!buf) {
        free(text);
        return vcm_fail(VCM_ERR, "%s: out of memory for %zu bytes", path, max_bytes);
    }
    AtomicFile af;
    int rc = atomic_file_open(&af, path);
    if (rc) { free(text); free(buf); return rc; }
    uint64_t n_le = padded;                  /* little-endian host */
    int bad = fwrite(&n_le, 8, 1, af.f) != 1 || fwrite(text, 1, len, af.f) != len;
    for (size_t k = len; !bad && k < padded; k++) bad = fputc(' ', af.f) == EOF;
    free(text);
    for (int i = 0; !bad && !rc && i < n; i++) {
        size_t numel = shape_numel(e[i].ndim, e[i].shape);
        rc = fill(ctx, i, buf);
        if (!rc) bad = fwrite(buf, sizeof(float), numel, af.f) != numel;
    }
    free(buf);
    if (rc || bad) {
        int e2 = errno;
        atomic_file_abort(&af);
        return rc ? rc : vcm_fail(VCM_ERR, "%s: write failed: %s", path, strerror(e2));
    }
    return atomic_file_commit(&af);
}

static int fill_from_store(void *ctx, int i, float *dst) {
    const ParamStore *ps = ctx;
    memcpy(dst, ps->p[i]->t.data, ps->p[i]->t.n * sizeof(float));
    return VCM_OK;
}

int safetensors_save(const char *path, const ParamStore *ps, const char *const *metadata) {
    if (!ps->params) return vcm_fail(VCM_ERR, "%s: safetensors_save before params_alloc", path);
    SafetensorsEntry *e = malloc((size_t)(ps->n_params ? ps->n_params : 1) * sizeof *e);
    if (!e) return vcm_fail(VCM_ERR, "%s: out of memory", path);
    for (int i = 0; i < ps->n_params; i++)
        e[i] = (SafetensorsEntry){ps->p[i]->name, ps->p[i]->t.ndim, ps->p[i]->t.shape};
    int rc = safetensors_write(path, ps->n_params, e, fill_from_store, (void *)ps, metadata);
    free(e);
    return rc;
}

/* ---------------------------------------------------------------- read */

/* One tensor entry of the header, checked against the data size: F32, integer shape,
 * offsets inside the data and matching the shape. */
static int parse_entry(const char *path, const char *name, json_t *t, uint64_t data_size,
                       int *ndim, int *shape, uint64_t *begin, uint64_t *end) {
    json_t *dtype = json_object_get(t, "dtype"), *sh = json_object_get(t, "shape"),
           *off = json_object_get(t, "data_offsets");
    if (!json_is_object(t) || !json_is_string(dtype) || !json_is_array(sh) || !json_is_array(off) ||
        json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1)))
        return vcm_fail(VCM_EINPUT, "%s: tensor %s: needs \"dtype\", \"shape\" and \"data_offsets\" [begin, end]",
                        path, name);
    if (strcmp(json_string_value(dtype), "F32"))
        return vcm_fail(VCM_EINPUT, "%s: tensor %s: dtype %s (only F32 is read)", path, name,
                        json_string_value(dtype));
    size_t nd = json_array_size(sh);
    if (nd > VCM_MAXDIM)
        return vcm_fail(VCM_EINPUT, "%s: tensor %s: %zu dims (at most %d)", path, name, nd, VCM_MAXDIM);
    uint64_t numel = 1;
    for (size_t d = 0; d < nd; d++) {
        json_t *x = json_array_get(sh, d);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 0x7fffffff)
            return vcm_fail(VCM_EINPUT, "%s: tensor %s: shape entry %zu is not a size", path, name, d);
        shape[d] = (int)json_integer_value(x);
        if (__builtin_mul_overflow(numel, (uint64_t)shape[d], &numel) || numel > data_size)
            return vcm_fail(VCM_EINPUT, "%s: tensor %s: larger than the file", path, name);
    }
    *ndim = (int)nd;
    json_int_t b = json_integer_value(json_array_get(off, 0)), e = json_integer_value(json_array_get(off, 1));
    if (b < 0 || e < b || (uint64_t)e > data_size || (uint64_t)(e - b) != numel * 4)
        return vcm_fail(VCM_EINPUT,
                        "%s: tensor %s: data_offsets [%lld, %lld] do not hold %llu floats inside %llu data bytes",
                        path, name, (long long)b, (long long)e, (unsigned long long)numel,
                        (unsigned long long)data_size);
    *begin = (uint64_t)b;
    *end = (uint64_t)e;
    return VCM_OK;
}

/* Two passes over the header: first every name and shape against the store (so a
 * mismatch is found before any value is touched), then the data. */
static int load_tensors(const char *path, FILE *f, json_t *root, uint64_t data_at, uint64_t data_size,
                        ParamStore *ps) {
    char a[64], b[64];
    for (int pass = 0; pass < 2; pass++) {
        const char *name;
        json_t *t;
        json_object_foreach(root, name, t) {
            if (!strcmp(name, "__metadata__")) {
                if (!json_is_object(t)) return vcm_fail(VCM_EINPUT, "%s: __metadata__ is not an object", path);
                continue;
            }
            int ndim = 0, shape[VCM_MAXDIM] = {0};
            uint64_t begin = 0, end = 0;
            if (parse_entry(path, name, t, data_size, &ndim, shape, &begin, &end)) return VCM_EINPUT;
            Param *p = params_find(ps, name);
            if (!p) return vcm_fail(VCM_EINPUT, "%s: tensor %s in the file is not a parameter of the model", path, name);
            int same = ndim == p->t.ndim;
            for (int d = 0; same && d < ndim; d++) same = shape[d] == p->t.shape[d];
            if (!same) {
                Tensor tmp = {0};
                tmp.ndim = ndim;
                memcpy(tmp.shape, shape, (size_t)ndim * sizeof(int));
                return vcm_fail(VCM_EINPUT, "%s: tensor %s has shape %s in the file but %s in the model", path,
                                name, shape_str(&tmp, a, sizeof a), shape_str(&p->t, b, sizeof b));
            }
            if (pass == 1) {
                if (fseeko(f, (off_t)(data_at + begin), SEEK_SET) ||
                    fread(p->t.data, 1, end - begin, f) != end - begin)
                    return vcm_fail(VCM_ERR, "%s: tensor %s: read error", path, name);
            }
        }
        if (pass == 0)
            for (int i = 0; i < ps->n_params; i++)
                if (!json_object_get(root, ps->p[i]->name))
                    return vcm_fail(VCM_EINPUT, "%s: tensor %s %s of the model is missing from the file", path,
                                    ps->p[i]->name, shape_str(&ps->p[i]->t, a, sizeof a));
    }
    return VCM_OK;
}

int safetensors_load_into(const char *path, ParamStore *ps) {
    if (!ps->params) return vcm_fail(VCM_ERR, "%s: safetensors_load_into before params_alloc", path);
    FILE *f = fopen(path, "rb");
    if (!f) return vcm_fail(errno == ENOENT ? VCM_EINPUT : VCM_ERR, "%s: %s", path, strerror(errno));
    struct stat sb;
    int rc = VCM_OK;
    uint64_t size = 0, hlen = 0;
    unsigned char len8[8];
    char *text = NULL;
    json_t *root = NULL;
    if (fstat(fileno(f), &sb)) rc = vcm_fail(VCM_ERR, "%s: %s", path, strerror(errno));
    else size = (uint64_t)sb.st_size;
    if (!rc && (size < 8 || fread(len8, 1, 8, f) != 8))
        rc = vcm_fail(VCM_EINPUT, "%s: truncated: %llu bytes, shorter than the 8-byte header length",
                      path, (unsigned long long)size);
    if (!rc) {
        memcpy(&hlen, len8, 8);
        if (hlen > size - 8 || hlen > ST_MAX_HEADER || hlen < 2)
            rc = vcm_fail(VCM_EINPUT, "%s: not a safetensors file or truncated: header length %llu, file size %llu",
                          path, (unsigned long long)hlen, (unsigned long long)size);
    }
    if (!rc && !(text = malloc(hlen))) rc = vcm_fail(VCM_ERR, "%s: out of memory", path);
    if (!rc && fread(text, 1, hlen, f) != hlen) rc = vcm_fail(VCM_ERR, "%s: read error", path);
    if (!rc) {
        json_error_t err;
        root = json_loadb(text, hlen, JSON_REJECT_DUPLICATES, &err);
        if (!root)
            rc = vcm_fail(VCM_EINPUT, "%s: header JSON, line %d column %d: %s", path, err.line, err.column, err.text);
        else if (!json_is_object(root))
            rc = vcm_fail(VCM_EINPUT, "%s: header JSON is not an object", path);
    }
    if (!rc) rc = load_tensors(path, f, root, 8 + hlen, size - 8 - hlen, ps);
    json_decref(root);
    free(text);
    fclose(f);
    return rc;
}
