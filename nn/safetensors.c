/* safetensors, the weight format PyTorch users load without pickle: an 8-byte
 * little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [..],
 *    "data_offsets": [begin, end]}, ...}
 * (offsets relative to the first byte after the header), then the data. We write
 * F32 only and read F32 only; the reader checks every offset against the file size. */
#include "nn.h"

#include <errno.h>
#include <stdarg.h>
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

/* The header of an open file, bounds-checked: root is the JSON object, the data is the
 * data_size bytes from data_at to the end of the file. */
typedef struct StHeader { FILE *f; json_t *root; uint64_t size, data_at, data_size; } StHeader;

static void header_close(StHeader *h) {
    json_decref(h->root);
    if (h->f) fclose(h->f);
    memset(h, 0, sizeof *h);
}

static int header_open(const char *path, StHeader *h) {
    memset(h, 0, sizeof *h);
    if (!(h->f = fopen(path, "rb")))
        return vcm_fail(errno == ENOENT ? VCM_EINPUT : VCM_ERR, "%s: %s", path, strerror(errno));
    struct stat sb;
    int rc = VCM_OK;
    uint64_t hlen = 0;
    unsigned char len8[8];
    char *text = NULL;
    if (fstat(fileno(h->f), &sb)) rc = vcm_fail(VCM_ERR, "%s: %s", path, strerror(errno));
    else h->size = (uint64_t)sb.st_size;
    if (!rc && (h->size < 8 || fread(len8, 1, 8, h->f) != 8))
        rc = vcm_fail(VCM_EINPUT, "%s: truncated: %llu bytes, shorter than the 8-byte header length",
                      path, (unsigned long long)h->size);
    if (!rc) {
        memcpy(&hlen, len8, 8);
        if (hlen > h->size - 8 || hlen > ST_MAX_HEADER || hlen < 2)
            rc = vcm_fail(VCM_EINPUT, "%s: not a safetensors file or truncated: header length %llu, file size %llu",
                          path, (unsigned long long)hlen, (unsigned long long)h->size);
    }
    if (!rc && !(text = malloc(hlen))) rc = vcm_fail(VCM_ERR, "%s: out of memory", path);
    if (!rc && fread(text, 1, hlen, h->f) != hlen) rc = vcm_fail(VCM_ERR, "%s: read error", path);
    if (!rc) {
        json_error_t err;
        h->root = json_loadb(text, hlen, JSON_REJECT_DUPLICATES, &err);
        json_t *meta = json_object_get(h->root, "__metadata__");
        if (!h->root)
            rc = vcm_fail(VCM_EINPUT, "%s: header JSON, line %d column %d: %s", path, err.line, err.column, err.text);
        else if (!json_is_object(h->root))
            rc = vcm_fail(VCM_EINPUT, "%s: header JSON is not an object", path);
        else if (meta && !json_is_object(meta))
            rc = vcm_fail(VCM_EINPUT, "%s: __metadata__ is not an object", path);
    }
    free(text);
    h->data_at = 8 + hlen;
    h->data_size = h->size - h->data_at;
    if (rc) header_close(h);
    return rc;
}

int safetensors_metadata(const char *path, const char *key, char **value) {
    *value = NULL;
    StHeader h;
    int rc = header_open(path, &h);
    if (rc) return rc;
    json_t *v = json_object_get(json_object_get(h.root, "__metadata__"), key);
    if (v && !json_is_string(v)) rc = vcm_fail(VCM_EINPUT, "%s: __metadata__ \"%s\" is not a string", path, key);
    else if (v && !(*value = strdup(json_string_value(v)))) rc = vcm_fail(VCM_ERR, "%s: out of memory", path);
    header_close(&h);
    return rc;
}

/* The report's lines: one per problem, "\n"-terminated; control bytes of a crafted
 * name become '?' so that a problem stays one line. */
static void report_add(SafetensorsReport *r, int *count, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report_add(SafetensorsReport *r, int *count, const char *fmt, ...) {
    (*count)++;
    if (r->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    size_t at = r->text ? strlen(r->text) : 0;
    char *t = n < 0 ? NULL : realloc(r->text, at + (size_t)n + 2);
    if (!t) { r->oom = 1; return; }
    r->text = t;
    va_start(ap, fmt);
    vsnprintf(t + at, (size_t)n + 1, fmt, ap);
    va_end(ap);
    for (size_t k = at; k < at + (size_t)n; k++)
        if ((unsigned char)t[k] < 0x20) t[k] = '?';
    memcpy(t + at + n, "\n", 2);
}

void safetensors_report_free(SafetensorsReport *r) {
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* One tensor entry of the header, its structure only (dtype string, integer shape,
 * 0 <= begin <= end): the sizes are checked against the data by the caller. */
typedef struct StEntry { const char *dtype; int ndim, shape[VCM_MAXDIM]; uint64_t numel, begin, end; } StEntry;

static int parse_entry(json_t *t, StEntry *e, char *why, size_t size) {
    json_t *dtype = json_object_get(t, "dtype"), *sh = json_object_get(t, "shape"),
           *off = json_object_get(t, "data_offsets");
    if (!json_is_object(t) || !json_is_string(dtype) || !json_is_array(sh) || !json_is_array(off) ||
        json_array_size(off) != 2 || !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1))) {
        snprintf(why, size, "needs \"dtype\", \"shape\" and \"data_offsets\" [begin, end]");
        return VCM_EINPUT;
    }
    e->dtype = json_string_value(dtype);
    size_t nd = json_array_size(sh);
    if (nd > VCM_MAXDIM) {
        snprintf(why, size, "%zu dims (at most %d)", nd, VCM_MAXDIM);
        return VCM_EINPUT;
    }
    e->numel = 1;
    for (size_t d = 0; d < nd; d++) {
        json_t *x = json_array_get(sh, d);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 0x7fffffff) {
            snprintf(why, size, "shape entry %zu is not a size", d);
            return VCM_EINPUT;
        }
        e->shape[d] = (int)json_integer_value(x);
        if (__builtin_mul_overflow(e->numel, (uint64_t)e->shape[d], &e->numel) || e->numel > (UINT64_MAX >> 3)) {
            snprintf(why, size, "shape too large");
            return VCM_EINPUT;
        }
    }
    e->ndim = (int)nd;
    json_int_t b = json_integer_value(json_array_get(off, 0)), x = json_integer_value(json_array_get(off, 1));
    if (b < 0 || x < b) {
        snprintf(why, size, "data_offsets [%lld, %lld] are not 0 <= begin <= end", (long long)b, (long long)x);
        return VCM_EINPUT;
    }
    e->begin = (uint64_t)b;
    e->end = (uint64_t)x;
    return VCM_OK;
}

static const char *entry_shape(const StEntry *e, char *buf, size_t size) {
    Tensor tmp = {0};
    tmp.ndim = e->ndim;
    memcpy(tmp.shape, e->shape, sizeof tmp.shape);
    return shape_str(&tmp, buf, size);
}

/* Every tensor of the file against the store, into r: malformed entries, dtypes,
 * extra tensors, shapes, then the store's parameters missing from the file. A file
 * whose tensors reach past its end is refused first, as truncated (one message, not
 * one per tensor). */
static int check_tensors(const char *path, const StHeader *h, const ParamStore *ps, SafetensorsReport *r) {
    char a[64], b[64], why[160];
    const char *name, *far = NULL;
    json_t *t;
    uint64_t far_end = 0;
    json_object_foreach(h->root, name, t) {
        StEntry e;
        if (!strcmp(name, "__metadata__") || parse_entry(t, &e, why, sizeof why)) continue;
        if (e.end > far_end) { far_end = e.end; far = name; }
    }
    if (far_end > h->data_size)
        return vcm_fail(VCM_EINPUT,
                        "%s: truncated: tensor %s ends at data byte %llu but the file holds %llu data bytes "
                        "(file size %llu)", path, far, (unsigned long long)far_end,
                        (unsigned long long)h->data_size, (unsigned long long)h->size);
    json_object_foreach(h->root, name, t) {
        if (!strcmp(name, "__metadata__")) continue;
        StEntry e;
        if (parse_entry(t, &e, why, sizeof why)) {
            report_add(r, &r->n_other, "tensor %s: %s", name, why);
            continue;
        }
        if (strcmp(e.dtype, "F32"))
            report_add(r, &r->n_other, "tensor %s: dtype %s (only F32 is read): save it as float32 (.float())",
                       name, e.dtype);
        else if (e.end - e.begin != 4 * e.numel)
            report_add(r, &r->n_other, "tensor %s: data_offsets [%llu, %llu] do not hold the %llu floats of %s",
                       name, (unsigned long long)e.begin, (unsigned long long)e.end,
                       (unsigned long long)e.numel, entry_shape(&e, a, sizeof a));
        const Param *p = params_find(ps, name);
        if (!p) {
            report_add(r, &r->n_extra, "tensor %s %s in the file is not a parameter of the model", name,
                       entry_shape(&e, a, sizeof a));
            continue;
        }
        int same = e.ndim == p->t.ndim;
        for (int d = 0; same && d < e.ndim; d++) same = e.shape[d] == p->t.shape[d];
        if (!same)
            report_add(r, &r->n_shape, "tensor %s has shape %s in the file but %s in the model", name,
                       entry_shape(&e, a, sizeof a), shape_str(&p->t, b, sizeof b));
    }
    for (int i = 0; i < ps->n_params; i++)
        if (!json_object_get(h->root, ps->p[i]->name))
            report_add(r, &r->n_missing, "tensor %s %s of the model is missing from the file", ps->p[i]->name,
                       shape_str(&ps->p[i]->t, a, sizeof a));
    if (r->oom) return vcm_fail(VCM_ERR, "%s: out of memory for the report", path);
    int n = r->n_missing + r->n_extra + r->n_shape + r->n_other;
    if (n)
        return vcm_fail(VCM_EINPUT, "%s: %d tensor%s do not fit the model (%d missing, %d not in the model, "
                        "%d with another shape, %d unreadable)", path, n, n == 1 ? "" : "s", r->n_missing,
                        r->n_extra, r->n_shape, r->n_other);
    return VCM_OK;
}

/* The values, once every name and shape has matched. */
static int read_values(const char *path, const StHeader *h, ParamStore *ps) {
    const char *name;
    json_t *t;
    json_object_foreach(h->root, name, t) {
        if (!strcmp(name, "__metadata__")) continue;
        StEntry e;
        char why[160];
        Param *p = params_find(ps, name);
        if (parse_entry(t, &e, why, sizeof why) || !p) return vcm_fail(VCM_ERR, "%s: tensor %s: changed", path, name);
        if (fseeko(h->f, (off_t)(h->data_at + e.begin), SEEK_SET) ||
            fread(p->t.data, 1, e.end - e.begin, h->f) != e.end - e.begin)
            return vcm_fail(VCM_ERR, "%s: tensor %s: read error", path, name);
    }
    return VCM_OK;
}

int safetensors_load_report(const char *path, ParamStore *ps, SafetensorsReport *rep) {
    if (!ps->params) return vcm_fail(VCM_ERR, "%s: safetensors_load before params_alloc", path);
    SafetensorsReport local = {0}, *r = rep ? rep : &local;
    memset(r, 0, sizeof *r);
    StHeader h;
    int rc = header_open(path, &h);
    if (!rc) rc = check_tensors(path, &h, ps, r);
    if (!rc) rc = read_values(path, &h, ps);
    header_close(&h);
    /* Without a report the message itself lists the problems (as many as it holds). */
    if (rc == VCM_EINPUT && !rep && local.text) {
        char msg[1024];
        size_t k = 0;
        for (const char *c = local.text; *c && k + 3 < sizeof msg; c++) {
            if (*c != '\n') msg[k++] = *c;
            else if (c[1]) { msg[k++] = ';'; msg[k++] = ' '; }
        }
        msg[k] = 0;
        vcm_fail(rc, "%s: %s", path, msg);
    }
    safetensors_report_free(&local);
    return rc;
}

int safetensors_load_into(const char *path, ParamStore *ps) {
    return safetensors_load_report(path, ps, NULL);
}
