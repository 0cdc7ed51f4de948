/* Checkpoints (*.vcm): the weights, the model config as opaque JSON text and,
 * optionally, everything a trainer needs to resume bit-exactly. Every byte of the
 * file is covered by a CRC32 (the header, each tensor, each AdamW moment buffer), and
 * every size read from the file is checked against the file size before use.
 * The byte layout is in docs/CHECKPOINT.md; keep the two in step. */
#include "nn.h"

#include <errno.h>
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoints store float32 data in the host order: little-endian hosts only"
#endif

static const char CKPT_MAGIC[8] = {'V', 'C', 'M', 'C', 'K', 'P', 'T', 0};
#define FIXED_HEADER 64
#define OFF_CRC 40               /* where the header CRC sits in the fixed header */
#define FLAG_TRAIN 1u
#define HEADER_ALIGN 64          /* the data starts on a 64-byte boundary */
#define MAX_CONFIG (1u << 20)
#define MAX_OPTIONS (16u << 20)
#define MAX_TENSORS (1u << 20)
#define MAX_HEADER (1ull << 30)

/* ---------------------------------------------------------------- CRC */

/* zlib's crc32 takes a 32-bit length: feed it in pieces. */
static uint32_t crc_update(uint32_t crc, const void *p, uint64_t n) {
    const unsigned char *b = p;
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, k);
        b += k;
        n -= k;
    }
    return crc;
}

/* ---------------------------------------------------------------- header encoding */

typedef struct Bytes { unsigned char *p; size_t n, cap; int oom; } Bytes;

static void put(Bytes *b, const void *src, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n) c *= 2;
        unsigned char *q = realloc(b->p, c);
        if (!q) { b->oom = 1; return; }
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
/* Little-endian by the #error above, so the memory image is the file format. */
static void put_u32(Bytes *b, uint32_t x) { put(b, &x, 4); }
static void put_u64(Bytes *b, uint64_t x) { put(b, &x, 8); }
static void put_f64(Bytes *b, double x) { put(b, &x, 8); }

static void set_u32(unsigned char *p, uint32_t x) { memcpy(p, &x, 4); }
static void set_u64(unsigned char *p, uint64_t x) { memcpy(p, &x, 8); }
static uint32_t get_u32(const unsigned char *p) { uint32_t x; memcpy(&x, p, 4); return x; }
static uint64_t get_u64(const unsigned char *p) { uint64_t x; memcpy(&x, p, 8); return x; }

/* A cursor over the verified header: every read is bounds-checked. */
typedef struct Cursor { const unsigned char *p; size_t n, at; int bad; } Cursor;

static const unsigned char *take(Cursor *c, size_t n) {
    if (c->bad || n > c->n - c->at) { c->bad = 1; return NULL; }
    const unsigned char *q = c->p + c->at;
    c->at += n;
    return q;
}
static uint32_t take_u32(Cursor *c) { const unsigned char *q = take(c, 4); return q ? get_u32(q) : 0; }
static uint64_t take_u64(Cursor *c) { const unsigned char *q = take(c, 8); return q ? get_u64(q) : 0; }
static double take_f64(Cursor *c) { double x = 0; const unsigned char *q = take(c, 8); if (q) memcpy(&x, q, 8); return x; }

static const char *shape_text(int ndim, const int *shape, char *buf, size_t size) {
    Tensor t = {0};
    t.ndim = ndim;
    memcpy(t.shape, shape, (size_t)ndim * sizeof(int));
    return shape_str(&t, buf, size);
}

/* ---------------------------------------------------------------- save */

void train_state_free(TrainState *st) {
    if (!st) return;
    free(st->options_json);
    st->options_json = NULL;
}

/* CRC of the concatenation of every parameter's slice of buf, in store order:
 * per-parameter CRCs in parallel, combined in order (crc32_combine). */
static uint32_t flat_crc(const ParamStore *ps, const float *buf, uint32_t *per) {
    #pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < ps->n_params; i++)
        per[i] = crc_update(0, buf + ps->p[i]->offset, ps->p[i]->t.n * sizeof(float));
    uint32_t crc = 0;
    for (int i = 0; i < ps->n_params; i++)
        crc = (uint32_t)crc32_combine(crc, per[i], (z_off_t)(ps->p[i]->t.n * sizeof(float)));
    return crc;
}

static int write_flat(AtomicFile *af, const ParamStore *ps, const float *buf) {
    for (int i = 0; i < ps->n_params; i++) {
        const Param *p = ps->p[i];
        if (fwrite(buf + p->offset, sizeof(float), p->t.n, af->f) != p->t.n) return VCM_ERR;
    }
    return VCM_OK;
}

int checkpoint_save(const char *path, const char *config_json, const ParamStore *ps,
                    const TrainState *st) {
    if (!ps->params) return vcm_fail(VCM_ERR, "%s: checkpoint_save before params_alloc", path);
    if (!config_json) config_json = "";
    size_t config_len = strlen(config_json);
    const char *options = st && st->options_json ? st->options_json : "";
    size_t options_len = strlen(options);
    if (config_len > MAX_CONFIG || options_len > MAX_OPTIONS || (unsigned)ps->n_params > MAX_TENSORS)
        return vcm_fail(VCM_ERR, "%s: config, options or tensor count over the format's limits", path);

    uint32_t *crc = malloc((size_t)(ps->n_params ? ps->n_params : 1) * 2 * sizeof *crc);
    if (!crc) return vcm_fail(VCM_ERR, "%s: out of memory", path);
    uint32_t *scratch = crc + ps->n_params;
    flat_crc(ps, ps->params, crc);
    uint32_t m_crc = 0, v_crc = 0;
    if (st) {
        m_crc = flat_crc(ps, ps->m, scratch);
        v_crc = flat_crc(ps, ps->v, scratch);
    }

    /* The header: fixed part (size fields and CRC patched below), config, table,
     * training state, zero padding to HEADER_ALIGN. */
    Bytes h = {0};
    unsigned char fixed[FIXED_HEADER] = {0};
    put(&h, fixed, sizeof fixed);
    put(&h, config_json, config_len);
    size_t table_at = h.n;
    uint64_t data_bytes = 0;
    for (int i = 0; i < ps->n_params; i++) {
        const Param *p = ps->p[i];
        size_t nl = strlen(p->name);
        put_u32(&h, (uint32_t)nl);
        put(&h, p->name, nl);
        put_u32(&h, (uint32_t)p->t.ndim);
        for (int d = 0; d < p->t.ndim; d++) put_u32(&h, (uint32_t)p->t.shape[d]);
        put_u64(&h, 0);                                   /* offset: patched below */
        put_u64(&h, (uint64_t)p->t.n * sizeof(float));
        put_u32(&h, crc[i]);
        data_bytes += (uint64_t)p->t.n * sizeof(float);
    }
    size_t train_at = h.n;
    if (st) {
        put_u64(&h, (uint64_t)st->step);
        for (int k = 0; k < CKPT_RNG_WORDS; k++) put_u64(&h, st->rng[k]);
        put_u64(&h, (uint64_t)st->epoch);
        put_u64(&h, (uint64_t)st->position);
        put_u64(&h, st->shuffle_seed);
        put_f64(&h, st->opt.beta1);
        put_f64(&h, st->opt.beta2);
        put_f64(&h, st->opt.eps);
        put_f64(&h, st->opt.weight_decay);
        put_u64(&h, (uint64_t)(int64_t)st->opt.step);
        put_u64(&h, 0);                                   /* m offset: patched */
        put_u64(&h, 0);                                   /* v offset: patched */
        put_u64(&h, data_bytes);                          /* bytes of m (and of v) */
        put_u32(&h, m_crc);
        put_u32(&h, v_crc);
        put_u32(&h, (uint32_t)options_len);
        put(&h, options, options_len);
    }
    static const unsigned char zeros[HEADER_ALIGN];
    put(&h, zeros, (HEADER_ALIGN - h.n % HEADER_ALIGN) % HEADER_ALIGN);
    if (h.oom) {
        free(h.p);
        free(crc);
        return vcm_fail(VCM_ERR, "%s: out of memory for the header", path);
    }

    uint64_t header_size = h.n, at = header_size;
    size_t cur = table_at;
    for (int i = 0; i < ps->n_params; i++) {
        const Param *p = ps->p[i];
        cur += 4 + strlen(p->name) + 4 + 4 * (size_t)p->t.ndim;
        set_u64(h.p + cur, at);
        cur += 8 + 8 + 4;
        at += (uint64_t)p->t.n * sizeof(float);
    }
    if (st) {
        size_t mo = train_at + 8 + 8 * CKPT_RNG_WORDS + 3 * 8 + 4 * 8 + 8;
        set_u64(h.p + mo, at);
        set_u64(h.p + mo + 8, at + data_bytes);
        at += 2 * data_bytes;
    }
    memcpy(h.p, CKPT_MAGIC, 8);
    set_u32(h.p + 8, CKPT_VERSION);
    set_u32(h.p + 12, st ? FLAG_TRAIN : 0);
    set_u64(h.p + 16, header_size);
    set_u64(h.p + 24, at);                                /* the whole file */
    set_u32(h.p + 32, (uint32_t)config_len);
    set_u32(h.p + 36, (uint32_t)ps->n_params);
    set_u32(h.p + OFF_CRC, crc_update(0, h.p, h.n));      /* computed with the field 0 */
    free(crc);

    AtomicFile af;
    int rc = atomic_file_open(&af, path);
    if (rc) { free(h.p); return rc; }
    int bad = fwrite(h.p, 1, h.n, af.f) != h.n;
    free(h.p);
    if (!bad) bad = write_flat(&af, ps, ps->params);
    if (!bad && st) bad = write_flat(&af, ps, ps->m) || write_flat(&af, ps, ps->v);
    if (bad) {
        int e = errno;
        atomic_file_abort(&af);
        return vcm_fail(VCM_ERR, "%s: write failed: %s", path, strerror(e));
    }
    return atomic_file_commit(&af);
}

/* ---------------------------------------------------------------- open / read */

static int read_at(CheckpointReader *r, uint64_t off, void *dst, uint64_t n) {
    if (fseeko(r->f, (off_t)off, SEEK_SET))
        return vcm_fail(VCM_ERR, "%s: seek to %llu: %s", r->path, (unsigned long long)off, strerror(errno));
    if (n && fread(dst, 1, n, r->f) != n) {
        if (ferror(r->f)) return vcm_fail(VCM_ERR, "%s: read error: %s", r->path, strerror(errno));
        return vcm_fail(VCM_EINPUT, "%s: truncated: the file ended while reading %llu bytes at offset %llu",
                        r->path, (unsigned long long)n, (unsigned long long)off);
    }
    return VCM_OK;
}

void checkpoint_close(CheckpointReader *r) {
    if (r->f) fclose(r->f);
    free(r->path);
    free(r->config_json);
    free(r->tensors);
    train_state_free(&r->st);
    memset(r, 0, sizeof *r);
}

int checkpoint_find(const CheckpointReader *r, const char *name) {
    for (int i = 0; i < r->n_tensors; i++)
        if (!strcmp(r->tensors[i].name, name)) return i;
    return -1;
}

/* The table and the training state from the CRC-checked header bytes. The CRC makes
 * damage unlikely, not impossible (nor a crafted file): everything is still checked. */
static int parse_header(CheckpointReader *r, const unsigned char *h, uint32_t flags) {
    Cursor c = {h, r->header_size, FIXED_HEADER, 0};
    uint32_t config_len = get_u32(h + 32), n = get_u32(h + 36);
    const unsigned char *cfg = take(&c, config_len);
    if (!cfg || config_len > MAX_CONFIG)
        return vcm_fail(VCM_EINPUT, "%s: header damaged: config of %u bytes", r->path, config_len);
    if (memchr(cfg, 0, config_len))
        return vcm_fail(VCM_EINPUT, "%s: header damaged: NUL byte in the config", r->path);
    r->config_json = malloc((size_t)config_len + 1);
    if (!r->config_json) return vcm_fail(VCM_ERR, "%s: out of memory", r->path);
    memcpy(r->config_json, cfg, config_len);
    r->config_json[config_len] = 0;

    if (n > MAX_TENSORS || n > (r->header_size - c.at) / 24)
        return vcm_fail(VCM_EINPUT, "%s: header damaged: %u tensors", r->path, n);
    r->tensors = calloc(n ? n : 1, sizeof *r->tensors);
    if (!r->tensors) return vcm_fail(VCM_ERR, "%s: out of memory", r->path);
    r->n_tensors = (int)n;
    uint64_t at = r->header_size, total = 0;
    for (uint32_t i = 0; i < n; i++) {
        CkptTensor *t = &r->tensors[i];
        uint32_t nl = take_u32(&c);
        const unsigned char *name = take(&c, nl);
        if (c.bad || nl == 0 || nl >= NN_NAME_MAX || memchr(name, 0, nl))
            return vcm_fail(VCM_EINPUT, "%s: tensor table damaged: entry %u has a bad name", r->path, i);
        memcpy(t->name, name, nl);
        uint32_t nd = take_u32(&c);
        if (c.bad || nd < 1 || nd > VCM_MAXDIM)
            return vcm_fail(VCM_EINPUT, "%s: tensor table damaged: %s has %u dims", r->path, t->name, nd);
        t->ndim = (int)nd;
        uint64_t numel = 1;
        for (uint32_t d = 0; d < nd; d++) {
            uint32_t s = take_u32(&c);
            if (s < 1 || s > INT_MAX)
                return vcm_fail(VCM_EINPUT, "%s: tensor table damaged: %s dim %u is %u", r->path, t->name, d, s);
            t->shape[d] = (int)s;
            if (__builtin_mul_overflow(numel, (uint64_t)s, &numel) || numel > r->file_size / 4)
                return vcm_fail(VCM_EINPUT, "%s: tensor table damaged: %s is larger than the file", r->path, t->name);
        }
        t->offset = take_u64(&c);
        t->nbytes = take_u64(&c);
        t->crc = take_u32(&c);
        if (c.bad) return vcm_fail(VCM_EINPUT, "%s: tensor table damaged: it runs past the header", r->path);
        if (t->nbytes != numel * 4 || t->offset != at || t->nbytes > r->file_size - at)
            return vcm_fail(VCM_EINPUT, "%s: tensor table damaged: %s at offset %llu, %llu bytes (file of %llu)",
                            r->path, t->name, (unsigned long long)t->offset,
                            (unsigned long long)t->nbytes, (unsigned long long)r->file_size);
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(r->tensors[j].name, t->name))
                return vcm_fail(VCM_EINPUT, "%s: tensor table damaged: %s appears twice", r->path, t->name);
        at += t->nbytes;
        total += t->nbytes;
    }

    r->has_train_state = (flags & FLAG_TRAIN) != 0;
    if (r->has_train_state) {
        TrainState *st = &r->st;
        st->step = (int64_t)take_u64(&c);
        for (int k = 0; k < CKPT_RNG_WORDS; k++) st->rng[k] = take_u64(&c);
        st->epoch = (int64_t)take_u64(&c);
        st->position = (int64_t)take_u64(&c);
        st->shuffle_seed = take_u64(&c);
        st->opt.beta1 = take_f64(&c);
        st->opt.beta2 = take_f64(&c);
        st->opt.eps = take_f64(&c);
        st->opt.weight_decay = take_f64(&c);
        st->opt.step = (long)(int64_t)take_u64(&c);
        r->m_offset = take_u64(&c);
        r->v_offset = take_u64(&c);
        r->moments_bytes = take_u64(&c);
        r->m_crc = take_u32(&c);
        r->v_crc = take_u32(&c);
        uint32_t ol = take_u32(&c);
        const unsigned char *opts = take(&c, ol);
        if (c.bad || ol > MAX_OPTIONS || memchr(opts, 0, ol))
            return vcm_fail(VCM_EINPUT, "%s: header damaged: training state runs past the header", r->path);
        st->options_json = malloc((size_t)ol + 1);
        if (!st->options_json) return vcm_fail(VCM_ERR, "%s: out of memory", r->path);
        memcpy(st->options_json, opts, ol);
        st->options_json[ol] = 0;
        if (r->moments_bytes != total || r->m_offset != at || r->v_offset != at + total ||
            r->file_size - r->v_offset != total)
            return vcm_fail(VCM_EINPUT, "%s: header damaged: AdamW moments at %llu and %llu, %llu bytes each",
                            r->path, (unsigned long long)r->m_offset, (unsigned long long)r->v_offset,
                            (unsigned long long)r->moments_bytes);
        at += 2 * total;
    }
    if (at != r->file_size)
        return vcm_fail(VCM_EINPUT, "%s: header damaged: the tensors end at %llu, the file at %llu",
                        r->path, (unsigned long long)at, (unsigned long long)r->file_size);
    return VCM_OK;
}

/* Checks in the order that names the real problem: magic (is it ours at all), version
 * (can we read the layout), size against the header (truncation), header CRC. When
 * the file is shorter than its header says and the header itself is incomplete, the
 * truncation is reported; when the header is complete, its CRC decides whether the
 * size field can be trusted (damaged header vs truncated data). */
static int open_checked(CheckpointReader *r, const char *path) {
    r->path = strdup(path);
    if (!r->path) return vcm_fail(VCM_ERR, "%s: out of memory", path);
    r->f = fopen(path, "rb");
    if (!r->f) return vcm_fail(errno == ENOENT ? VCM_EINPUT : VCM_ERR, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(r->f), &sb)) return vcm_fail(VCM_ERR, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode)) return vcm_fail(VCM_EINPUT, "%s: not a regular file", path);
    uint64_t actual = (uint64_t)sb.st_size;

    unsigned char fixed[FIXED_HEADER] = {0};
    size_t got = fread(fixed, 1, FIXED_HEADER, r->f);
    if (got < FIXED_HEADER && ferror(r->f)) return vcm_fail(VCM_ERR, "%s: read error: %s", path, strerror(errno));
    size_t cmp = got < 8 ? got : 8;
    if (memcmp(fixed, CKPT_MAGIC, cmp) || (got == 0))
        return vcm_fail(VCM_EINPUT, "%s: not a vcm checkpoint (bad magic%s)", path, got ? "" : ": empty file");
    if (got < FIXED_HEADER)
        return vcm_fail(VCM_EINPUT, "%s: truncated: %zu bytes, shorter than the %d-byte header", path, got, FIXED_HEADER);
    r->version = get_u32(fixed + 8);
    if (r->version != CKPT_VERSION)
        return vcm_fail(VCM_EINPUT, "%s: unsupported checkpoint format version %u (this build reads version %d)",
                        path, r->version, CKPT_VERSION);
    uint32_t flags = get_u32(fixed + 12);
    r->header_size = get_u64(fixed + 16);
    r->file_size = get_u64(fixed + 24);
    uint32_t stored_crc = get_u32(fixed + OFF_CRC);
    if (r->header_size < FIXED_HEADER || r->header_size % HEADER_ALIGN || r->header_size > r->file_size ||
        r->header_size > MAX_HEADER) {
        if (r->file_size != actual && r->header_size > actual)
            return vcm_fail(VCM_EINPUT, "%s: truncated: expected %llu bytes, found %llu",
                            path, (unsigned long long)r->file_size, (unsigned long long)actual);
        return vcm_fail(VCM_EINPUT, "%s: header damaged: header size %llu, file size %llu",
                        path, (unsigned long long)r->header_size, (unsigned long long)r->file_size);
    }
    if (r->header_size > actual)
        return vcm_fail(VCM_EINPUT, "%s: truncated: expected %llu bytes, found %llu",
                        path, (unsigned long long)r->file_size, (unsigned long long)actual);

    unsigned char *h = malloc(r->header_size);
    if (!h) return vcm_fail(VCM_ERR, "%s: out of memory for a %llu-byte header", path, (unsigned long long)r->header_size);
    int rc = read_at(r, 0, h, r->header_size);
    if (!rc) {
        set_u32(h + OFF_CRC, 0);
        uint32_t crc = crc_update(0, h, r->header_size);
        if (crc != stored_crc)
            rc = vcm_fail(VCM_EINPUT, "%s: header CRC mismatch (stored %08x, computed %08x): the header is damaged",
                          path, stored_crc, crc);
    }
    if (!rc && actual < r->file_size)
        rc = vcm_fail(VCM_EINPUT, "%s: truncated: expected %llu bytes, found %llu",
                      path, (unsigned long long)r->file_size, (unsigned long long)actual);
    if (!rc && actual > r->file_size)
        rc = vcm_fail(VCM_EINPUT, "%s: %llu unexpected bytes after the end (expected %llu bytes, found %llu)",
                      path, (unsigned long long)(actual - r->file_size), (unsigned long long)r->file_size,
                      (unsigned long long)actual);
    if (!rc) rc = parse_header(r, h, flags);
    free(h);
    return rc;
}

int checkpoint_open(CheckpointReader *r, const char *path) {
    memset(r, 0, sizeof *r);
    int rc = open_checked(r, path);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vcm_error());   /* close must not lose it */
        checkpoint_close(r);
        vcm_fail(rc, "%s", msg);
    }
    return rc;
}

int checkpoint_read_tensor(CheckpointReader *r, int i, float *dst) {
    if (i < 0 || i >= r->n_tensors) return vcm_fail(VCM_ERR, "%s: no tensor %d", r->path, i);
    const CkptTensor *t = &r->tensors[i];
    int rc = read_at(r, t->offset, dst, t->nbytes);
    if (rc) return rc;
    uint32_t crc = crc_update(0, dst, t->nbytes);
    if (crc != t->crc)
        return vcm_fail(VCM_EINPUT, "%s: tensor %s: CRC mismatch (stored %08x, computed %08x): the data is damaged",
                        r->path, t->name, t->crc, crc);
    return VCM_OK;
}

int checkpoint_read_config(const char *path, char **config_json) {
    CheckpointReader r;
    int rc = checkpoint_open(&r, path);
    if (rc) return rc;
    *config_json = r.config_json;
    r.config_json = NULL;
    checkpoint_close(&r);
    return VCM_OK;
}

/* ---------------------------------------------------------------- load */

/* Both ways: a model parameter missing from the file, a file tensor the model does not
 * have, or a shape that differs (both shapes named). */
static int match_tensors(const CheckpointReader *r, const ParamStore *ps) {
    char a[64], b[64];
    for (int i = 0; i < ps->n_params; i++) {
        const Param *p = ps->p[i];
        int k = checkpoint_find(r, p->name);
        if (k < 0)
            return vcm_fail(VCM_EINPUT, "%s: tensor %s %s of the model is missing from the checkpoint",
                            r->path, p->name, shape_str(&p->t, a, sizeof a));
        const CkptTensor *t = &r->tensors[k];
        int same = t->ndim == p->t.ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == p->t.shape[d];
        if (!same)
            return vcm_fail(VCM_EINPUT, "%s: tensor %s has shape %s in the checkpoint but %s in the model",
                            r->path, p->name, shape_text(t->ndim, t->shape, a, sizeof a),
                            shape_str(&p->t, b, sizeof b));
    }
    for (int i = 0; i < r->n_tensors; i++)
        if (!params_find(ps, r->tensors[i].name))
            return vcm_fail(VCM_EINPUT, "%s: tensor %s %s in the checkpoint is not a parameter of the model",
                            r->path, r->tensors[i].name,
                            shape_text(r->tensors[i].ndim, r->tensors[i].shape, a, sizeof a));
    return VCM_OK;
}

/* One AdamW moment buffer: stored in table order, scattered to the store's offsets. */
static int read_moment(CheckpointReader *r, ParamStore *ps, uint64_t off, float *buf, uint32_t want,
                       const char *what) {
    uint32_t crc = 0;
    for (int i = 0; i < r->n_tensors; i++) {
        const CkptTensor *t = &r->tensors[i];
        float *dst = buf + params_find(ps, t->name)->offset;
        int rc = read_at(r, off, dst, t->nbytes);
        if (rc) return rc;
        crc = crc_update(crc, dst, t->nbytes);
        off += t->nbytes;
    }
    if (crc != want)
        return vcm_fail(VCM_EINPUT, "%s: AdamW %s: CRC mismatch (stored %08x, computed %08x): the data is damaged",
                        r->path, what, want, crc);
    return VCM_OK;
}

/* The header's CRC matched, but a state written by another program (or by hand) can
 * still hold values AdamW cannot run with: resumed, they would train NaN weights. Only a
 * resume reads the state, so only a resume is refused. */
static int check_train_state(const TrainState *st, const char *path) {
    const AdamW *o = &st->opt;
    if (o->beta1 >= 0 && o->beta1 < 1 && o->beta2 >= 0 && o->beta2 < 1 && o->eps > 0 && isfinite(o->eps) &&
        o->weight_decay >= 0 && isfinite(o->weight_decay) && o->step >= 0 && st->step >= 0)
        return VCM_OK;
    return vcm_fail(VCM_EINPUT, "%s: training state out of range: AdamW beta1 %g, beta2 %g, eps %g, weight decay %g, "
                                "step %ld (want betas in [0, 1), eps > 0, a finite decay >= 0, steps >= 0)",
                    path, o->beta1, o->beta2, o->eps, o->weight_decay, o->step);
}

int checkpoint_load(const char *path, ParamStore *ps, TrainState *st) {
    if (!ps->params) return vcm_fail(VCM_ERR, "%s: checkpoint_load before params_alloc", path);
    CheckpointReader r;
    int rc = checkpoint_open(&r, path);
    if (rc) return rc;
    rc = match_tensors(&r, ps);
    if (!rc && st && !r.has_train_state)
        rc = vcm_fail(VCM_EINPUT, "%s: no training state in this checkpoint (saved for inference only)", path);
    if (!rc && st) rc = check_train_state(&r.st, path);
    for (int i = 0; !rc && i < r.n_tensors; i++)
        rc = checkpoint_read_tensor(&r, i, params_find(ps, r.tensors[i].name)->t.data);
    if (!rc && st) {
        rc = read_moment(&r, ps, r.m_offset, ps->m, r.m_crc, "first moment m");
        if (!rc) rc = read_moment(&r, ps, r.v_offset, ps->v, r.v_crc, "second moment v");
        if (!rc) {
            *st = r.st;
            r.st.options_json = NULL;
        }
    }
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", vcm_error());
        checkpoint_close(&r);
        return vcm_fail(rc, "%s", msg);
    }
    checkpoint_close(&r);
    return VCM_OK;
}
