/* The output corpus as a crash-safe append-only log. Each image's records go out as
 * whole lines in one write() followed by fsync(), so a kill at any moment leaves only
 * complete lines, except if the kernel itself dies mid-write: then the next open finds
 * a last line without its newline and cuts it away. The images already in the file
 * are remembered, which is what makes a re-run resume. */
#include "distill/distill.h"
#include "tensor/tensor.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- a set of strings */

typedef struct StrSet { char **slot; size_t cap, n; } StrSet;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int set_has(const StrSet *S, const char *s) {
    if (!S || !S->cap) return 0;
    for (size_t i = hash_str(s) & (S->cap - 1);; i = (i + 1) & (S->cap - 1)) {
        if (!S->slot[i]) return 0;
        if (!strcmp(S->slot[i], s)) return 1;
    }
}

static int set_put_owned(StrSet *S, char *s) {   /* takes s; 0 ok, -1 out of memory */
    if (set_has(S, s)) { free(s); return 0; }
    if (2 * (S->n + 1) > S->cap) {
        size_t nc = S->cap ? 2 * S->cap : 64;
        char **ns = calloc(nc, sizeof *ns);
        if (!ns) { free(s); return -1; }
        for (size_t i = 0; i < S->cap; i++) {
            if (!S->slot[i]) continue;
            size_t j = hash_str(S->slot[i]) & (nc - 1);
            while (ns[j]) j = (j + 1) & (nc - 1);
            ns[j] = S->slot[i];
        }
        free(S->slot);
        S->slot = ns;
        S->cap = nc;
    }
    size_t j = hash_str(s) & (S->cap - 1);
    while (S->slot[j]) j = (j + 1) & (S->cap - 1);
    S->slot[j] = s;
    S->n++;
    return 0;
}

static void set_free(StrSet *S) {
    if (!S) return;
    for (size_t i = 0; i < S->cap; i++) free(S->slot[i]);
    free(S->slot);
    free(S);
}

/* ---------------------------------------------------------------- the file */

/* One complete line: remember its image. */
static int scan_line(DistillOut *o, const char *line, size_t len, long lineno) {
    size_t a = 0;
    while (a < len && (line[a] == ' ' || line[a] == '\t' || line[a] == '\r')) a++;
    if (a == len) return VCM_OK;   /* a blank line: nothing to remember */
    json_error_t err;
    json_t *r = json_loadb(line, len, 0, &err);
    if (!r) return vcm_fail(VCM_EINPUT, "%s:%ld:%d: %s (is this a corpus written by vcm distill?)",
                            o->path, lineno, err.column, err.text);
    json_t *img = json_object_get(r, "image");
    json_t *src = json_object_get(r, "source");
    int rc = VCM_OK;
    if (!json_is_object(r) || !json_is_string(img)) {
        rc = vcm_fail(VCM_EINPUT, "%s:%ld:1: a record without an \"image\" string", o->path, lineno);
    } else if (o->source && (!json_is_string(src) || strcmp(json_string_value(src), o->source))) {
        /* another prompt's records: that image is not done for this source */
    } else {
        char *s = strdup(json_string_value(img));
        if (!s || set_put_owned(o->done, s)) rc = vcm_fail(VCM_ERR, "out of memory");
    }
    json_decref(r);
    return rc;
}

int distill_out_open(const char *path, const char *source, DistillOut *o) {
    memset(o, 0, sizeof *o);
    o->fd = -1;
    o->path = strdup(path);
    o->source = source ? strdup(source) : NULL;
    o->done = calloc(1, sizeof(StrSet));
    if (!o->path || !o->done || (source && !o->source)) { distill_out_close(o); return vcm_fail(VCM_ERR, "out of memory"); }
    o->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (o->fd < 0) {
        int e = errno;
        distill_out_close(o);
        return vcm_fail(VCM_ERR, "%s: %s", path, strerror(e));
    }
    /* Two writers appending to one corpus would each re-ask for the other's images. */
    if (flock(o->fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        distill_out_close(o);
        return vcm_fail(VCM_ERR, "%s: %s", path,
                        e == EWOULDBLOCK ? "another process (vcm distill?) is writing this file" : strerror(e));
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) { distill_out_close(o); return vcm_fail(VCM_ERR, "out of memory"); }
    long long off = 0;    /* file offset of buf[0] */
    long long good = 0;   /* end of the last complete line */
    int rc = VCM_OK;
    for (;;) {
        if (n == cap) {   /* one line longer than the buffer: grow */
            if (cap >= ((size_t)1 << 30)) { rc = vcm_fail(VCM_EINPUT, "%s:%ld:1: a line longer than 1 GiB", path, o->n_lines + 1); break; }
            char *nb = realloc(buf, cap * 2);
            if (!nb) { rc = vcm_fail(VCM_ERR, "out of memory"); break; }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = pread(o->fd, buf + n, cap - n, off + (long long)n);
        if (r < 0) {
            if (errno == EINTR) continue;
            rc = vcm_fail(VCM_ERR, "%s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', n - start);
            if (!nl) break;
            size_t len = (size_t)(nl - (buf + start));
            o->n_lines++;
            if ((rc = scan_line(o, buf + start, len, o->n_lines))) break;
            start += len + 1;
            good = off + (long long)start;
        }
        if (rc) break;
        memmove(buf, buf + start, n - start);
        off += (long long)start;
        n -= start;
    }
    free(buf);
    if (rc) { distill_out_close(o); return rc; }
    struct stat st;
    if (fstat(o->fd, &st)) { int e = errno; distill_out_close(o); return vcm_fail(VCM_ERR, "%s: %s", path, strerror(e)); }
    if ((long long)st.st_size > good) {
        o->truncated_bytes = (long)((long long)st.st_size - good);
        if (ftruncate(o->fd, (off_t)good) || fsync(o->fd)) {
            int e = errno;
            distill_out_close(o);
            return vcm_fail(VCM_ERR, "%s: cannot cut the partial last line: %s", path, strerror(e));
        }
    }
    o->size = good;
    return VCM_OK;
}

int distill_out_has(const DistillOut *o, const char *image) { return set_has(o->done, image); }

int distill_out_append(DistillOut *o, const char *image, const char *buf, size_t len) {
    if (len == 0 || buf[len - 1] != '\n') return vcm_fail(VCM_ERR, "internal: append wants complete lines");
    ssize_t w;
    do w = write(o->fd, buf, len); while (w < 0 && errno == EINTR);
    if (w != (ssize_t)len) {
        int e = w < 0 ? errno : ENOSPC;
        if (w > 0 && ftruncate(o->fd, (off_t)o->size) == 0) fsync(o->fd);
        return vcm_fail(VCM_ERR, "%s: write failed: %s", o->path, strerror(e));
    }
    if (fsync(o->fd)) return vcm_fail(VCM_ERR, "%s: fsync: %s", o->path, strerror(errno));
    o->size += (long long)len;
    for (const char *s = buf; s < buf + len; s++) o->n_lines += *s == '\n';
    char *img = strdup(image);
    if (!img || set_put_owned(o->done, img)) return vcm_fail(VCM_ERR, "out of memory");
    return VCM_OK;
}

void distill_out_close(DistillOut *o) {
    if (o->fd >= 0) close(o->fd);   /* also drops the flock */
    set_free(o->done);
    free(o->path);
    free(o->source);
    memset(o, 0, sizeof *o);
    o->fd = -1;
}
