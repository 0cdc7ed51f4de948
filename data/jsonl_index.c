/* Random access to the records of a JSONL file by index, without holding the file.
 *
 * Plain files: the byte offset and length of every record; a read is one pread().
 * Gzip files: the same offsets into the *uncompressed* stream, plus access points in
 * the manner of zlib's examples/zran.c: at a deflate block boundary every `span`
 * uncompressed bytes we remember the compressed position, the bit offset inside that
 * byte and the 32 KiB of output before it (the dictionary a deflate stream may refer
 * back to). A read starts a raw inflate at the access point before the record and
 * inflates at most `span` bytes to reach it; a cursor lets the next record continue
 * from there, so reading in order costs one pass. Multi-member gzip files work (the
 * members are walked like gzip does; trailing non-gzip bytes are ignored as gzip does).
 * Memory: 16 bytes a record + (32 KiB + 24 B) per access point. */
#include "data/data.h"
#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define WINSIZE 32768u
#define CHUNK (1u << 16)
#define DEFAULT_SPAN (1L << 20)

typedef struct Point {
    uint64_t out;           /* uncompressed offset of the point */
    uint64_t in;            /* compressed offset of the first full byte after it */
    int bits;               /* bits of the byte before `in` still to be used (0..7) */
    unsigned char *window;  /* the WINSIZE bytes of output before `out` */
} Point;

typedef struct GzState {
    Point *pts;
    long n_pts, cap_pts;
    /* the read cursor */
    z_stream strm;
    int strm_init;
    int raw;                /* cursor stream is raw deflate (from a point) vs gzip */
    int valid;              /* cursor usable */
    int trailer_left;       /* bytes of a gzip trailer still to skip (raw mode) */
    uint64_t cur_in;        /* compressed offset of the next byte to read */
    uint64_t cur_out;       /* uncompressed offset of scratch[sc_pos] */
    unsigned char in[CHUNK];
    unsigned char scratch[CHUNK];
    size_t sc_pos, sc_end;
    /* decompressed spans kept (jsonl_index_cache), least recently used replaced */
    struct Slot { long pt; char *data; size_t len, cap; uint64_t used; } *slots;
    int n_slots;
    uint64_t tick;
} GzState;

/* ---------------------------------------------------------------- line scanning */

typedef struct Scan {
    JsonlIndex *ix;
    long cap;
    uint64_t pos;           /* uncompressed offset of the next byte fed */
    uint64_t line_start;
    long line_no;           /* lines completed */
    int nonblank;           /* current line has a byte other than space/tab/CR */
    unsigned char last;     /* last byte of the current line */
} Scan;

static int scan_push(Scan *s, uint64_t end) {
    JsonlIndex *ix = s->ix;
    s->line_no++;
    uint64_t len = end - s->line_start;
    if (len && s->last == '\r') len--;
    if (s->nonblank) {
        if (len > JSONL_MAX_LINE)
            return vcm_fail(VCM_EINPUT, "%s:%ld: line longer than %u bytes", ix->path, s->line_no,
                            JSONL_MAX_LINE);
        if (s->line_no > (long)UINT32_MAX)
            return vcm_fail(VCM_EINPUT, "%s: more than %u lines", ix->path, UINT32_MAX);
        if (ix->n == s->cap) {
            long cap = s->cap ? s->cap * 2 : 4096;
            uint64_t *o = realloc(ix->off, (size_t)cap * sizeof *o);
            if (o) ix->off = o;
            uint32_t *l = realloc(ix->len, (size_t)cap * sizeof *l);
            if (l) ix->len = l;
            uint32_t *n = realloc(ix->line_no, (size_t)cap * sizeof *n);
            if (n) ix->line_no = n;
            if (!o || !l || !n) return vcm_fail(VCM_ERR, "%s: out of memory indexing", ix->path);
            s->cap = cap;
        }
        ix->off[ix->n] = s->line_start;
        ix->len[ix->n] = (uint32_t)len;
        ix->line_no[ix->n] = (uint32_t)s->line_no;
        ix->n++;
    }
    s->line_start = end + 1;
    s->nonblank = 0;
    s->last = 0;
    return VCM_OK;
}

static int scan_feed(Scan *s, const unsigned char *p, size_t n) {
    size_t i = 0;
    if (s->pos == 0 && n >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) { /* byte-order mark */
        i = 3;
        s->line_start = 3;
    }
    while (i < n) {
        const unsigned char *nl = memchr(p + i, '\n', n - i);
        size_t stop = nl ? (size_t)(nl - p) : n;
        if (!s->nonblank)
            for (size_t k = i; k < stop; k++)
                if (p[k] != ' ' && p[k] != '\t' && p[k] != '\r') { s->nonblank = 1; break; }
        if (stop > i) s->last = p[stop - 1];
        if (!nl) break;
        if (scan_push(s, s->pos + stop)) return VCM_EINPUT;
        i = stop + 1;
    }
    s->pos += n;
    return VCM_OK;
}

static int scan_finish(Scan *s) {
    if (s->pos > s->line_start) return scan_push(s, s->pos);
    return VCM_OK;
}

/* ---------------------------------------------------------------- building */

static int index_plain(JsonlIndex *ix, Scan *s) {
    unsigned char *buf = malloc(1u << 20);
    if (!buf) return vcm_fail(VCM_ERR, "%s: out of memory", ix->path);
    int rc = VCM_OK;
    for (;;) {
        ssize_t n = read(ix->fd, buf, 1u << 20);
        if (n < 0) {
            if (errno == EINTR) continue;
            rc = vcm_fail(VCM_EINPUT, "%s: read error (%s)", ix->path, strerror(errno));
            break;
        }
        if (n == 0) break;
        if ((rc = scan_feed(s, buf, (size_t)n))) break;
    }
    free(buf);
    if (!rc) rc = scan_finish(s);
    return rc;
}

static int add_point(JsonlIndex *ix, GzState *g, int bits, uint64_t in, uint64_t out,
                     unsigned left, const unsigned char *window) {
    if (g->n_pts == g->cap_pts) {
        long cap = g->cap_pts ? g->cap_pts * 2 : 16;
        Point *p = realloc(g->pts, (size_t)cap * sizeof *p);
        if (!p) return vcm_fail(VCM_ERR, "%s: out of memory", ix->path);
        g->pts = p;
        g->cap_pts = cap;
    }
    Point *p = &g->pts[g->n_pts];
    p->window = malloc(WINSIZE);
    if (!p->window) return vcm_fail(VCM_ERR, "%s: out of memory", ix->path);
    p->out = out;
    p->in = in;
    p->bits = bits;
    /* The circular output window, oldest byte first. */
    if (left) memcpy(p->window, window + WINSIZE - left, left);
    if (left < WINSIZE) memcpy(p->window + left, window, WINSIZE - left);
    g->n_pts++;
    return VCM_OK;
}

static ssize_t pread_full(int fd, unsigned char *buf, size_t n, uint64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

static int index_gzip(JsonlIndex *ix, GzState *g, Scan *s, long span) {
    unsigned char *window = calloc(1, WINSIZE), *input = malloc(CHUNK);
    z_stream strm;
    memset(&strm, 0, sizeof strm);
    if (!window || !input || inflateInit2(&strm, 47) != Z_OK) {
        free(window);
        free(input);
        return vcm_fail(VCM_ERR, "%s: out of memory", ix->path);
    }
    uint64_t totin = 0, totout = 0, last = 0, file_pos = 0;
    int rc = VCM_OK, ended = 0;
    strm.avail_out = 0;
    while (!ended && !rc) {
        if (strm.avail_in == 0) {
            ssize_t n = pread_full(ix->fd, input, CHUNK, file_pos);
            if (n < 0) { rc = vcm_fail(VCM_EINPUT, "%s: read error (%s)", ix->path, strerror(errno)); break; }
            if (n == 0) {
                rc = vcm_fail(VCM_EINPUT, "%s:%ld: truncated gzip file (ends inside the compressed stream)",
                              ix->path, s->line_no + 1);
                break;
            }
            file_pos += (uint64_t)n;
            strm.next_in = input;
            strm.avail_in = (uInt)n;
        }
        if (strm.avail_out == 0) {
            strm.avail_out = WINSIZE;
            strm.next_out = window;
        }
        unsigned char *produced_from = strm.next_out;
        totin += strm.avail_in;
        totout += strm.avail_out;
        int ret = inflate(&strm, Z_BLOCK);
        totin -= strm.avail_in;
        totout -= strm.avail_out;
        if ((size_t)(strm.next_out - produced_from) &&
            (rc = scan_feed(s, produced_from, (size_t)(strm.next_out - produced_from))))
            break;
        if (ret == Z_NEED_DICT || ret == Z_DATA_ERROR || ret == Z_MEM_ERROR) {
            rc = vcm_fail(ret == Z_MEM_ERROR ? VCM_ERR : VCM_EINPUT,
                          "%s:%ld: corrupt gzip data at compressed byte %llu (%s)", ix->path,
                          s->line_no + 1, (unsigned long long)totin, strm.msg ? strm.msg : "bad data");
            break;
        }
        if (ret == Z_STREAM_END) {
            /* Another gzip member may follow; anything else is ignored like gzip does. */
            if (strm.avail_in < 2) {
                unsigned char peek[2];
                size_t have = strm.avail_in;
                if (have) peek[0] = strm.next_in[0];
                ssize_t n = pread_full(ix->fd, peek + have, 2 - have, file_pos);
                if (n < 0) { rc = vcm_fail(VCM_EINPUT, "%s: read error (%s)", ix->path, strerror(errno)); break; }
                if (have + (size_t)n < 2 || peek[0] != 0x1f || peek[1] != 0x8b) { ended = 1; break; }
            } else if (strm.next_in[0] != 0x1f || strm.next_in[1] != 0x8b) {
                ended = 1;
                break;
            }
            inflateReset(&strm);
            continue;
        }
        if ((strm.data_type & 128) && !(strm.data_type & 64) &&
            (totout == 0 || totout - last > (uint64_t)span)) {
            if ((rc = add_point(ix, g, strm.data_type & 7, totin, totout, strm.avail_out, window)))
                break;
            last = totout;
        }
    }
    inflateEnd(&strm);
    free(window);
    free(input);
    if (!rc) rc = scan_finish(s);
    ix->total = totout;
    return rc;
}

int jsonl_index_build(JsonlIndex *ix, const char *path, long span) {
    memset(ix, 0, sizeof *ix);
    ix->fd = -1;
    if (span <= 0) span = DEFAULT_SPAN;
    ix->path = strdup(path);
    if (!ix->path) return vcm_fail(VCM_ERR, "out of memory");
    ix->fd = open(path, O_RDONLY);
    if (ix->fd < 0) {
        int e = errno;
        jsonl_index_free(ix);
        return vcm_fail(VCM_EINPUT, "%s: cannot open (%s)", path, strerror(e));
    }
    unsigned char magic[2];
    ssize_t m = pread_full(ix->fd, magic, 2, 0);
    ix->gz = m == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    Scan s = {.ix = ix};
    int rc;
    if (ix->gz) {
        GzState *g = calloc(1, sizeof *g);
        if (!g) { jsonl_index_free(ix); return vcm_fail(VCM_ERR, "out of memory"); }
        ix->z = g;
        rc = index_gzip(ix, g, &s, span);
    } else {
        rc = index_plain(ix, &s);
        ix->total = s.pos;
    }
    if (rc) {
        jsonl_index_free(ix);
        return rc;
    }
    return VCM_OK;
}

/* ---------------------------------------------------------------- reading */

static int gz_fail(JsonlIndex *ix, long i, const char *what) {
    GzState *g = ix->z;
    g->valid = 0;
    return vcm_fail(VCM_EINPUT, "%s:%u: cannot re-read the record (%s); did the file change since it was indexed?",
                    ix->path, ix->line_no[i], what);
}

/* Start the cursor at access point p. */
static int gz_seek_point(JsonlIndex *ix, GzState *g, const Point *p, long i) {
    int ret = g->strm_init ? inflateReset2(&g->strm, -15) : inflateInit2(&g->strm, -15);
    if (ret != Z_OK) return gz_fail(ix, i, "inflate init");
    g->strm_init = 1;
    g->raw = 1;
    g->trailer_left = 0;
    g->cur_in = p->in - (p->bits ? 1 : 0);
    if (p->bits) {
        unsigned char ch;
        if (pread_full(ix->fd, &ch, 1, g->cur_in) != 1) return gz_fail(ix, i, "short read");
        g->cur_in++;
        inflatePrime(&g->strm, p->bits, ch >> (8 - p->bits));
    }
    inflateSetDictionary(&g->strm, p->window, WINSIZE);
    g->strm.avail_in = 0;
    g->cur_out = p->out;
    g->sc_pos = g->sc_end = 0;
    g->valid = 1;
    return VCM_OK;
}

/* Inflate the next bytes into scratch (sc_pos = 0 .. sc_end). */
static int gz_more(JsonlIndex *ix, GzState *g, long i) {
    g->sc_pos = g->sc_end = 0;
    while (g->sc_end == 0) {
        if (g->strm.avail_in == 0) {
            ssize_t n = pread_full(ix->fd, g->in, CHUNK, g->cur_in);
            if (n <= 0) return gz_fail(ix, i, n < 0 ? strerror(errno) : "unexpected end of file");
            g->cur_in += (uint64_t)n;
            g->strm.next_in = g->in;
            g->strm.avail_in = (uInt)n;
        }
        if (g->trailer_left) { /* a raw stream ended: skip the member's CRC and size */
            uInt k = g->strm.avail_in < (uInt)g->trailer_left ? g->strm.avail_in : (uInt)g->trailer_left;
            g->strm.next_in += k;
            g->strm.avail_in -= k;
            g->trailer_left -= (int)k;
            if (!g->trailer_left && inflateReset2(&g->strm, 31) != Z_OK) return gz_fail(ix, i, "inflate reset");
            if (!g->trailer_left) g->raw = 0;
            continue;
        }
        g->strm.next_out = g->scratch;
        g->strm.avail_out = CHUNK;
        int ret = inflate(&g->strm, Z_NO_FLUSH);
        g->sc_end = CHUNK - g->strm.avail_out;
        if (ret == Z_STREAM_END) {
            if (g->raw) g->trailer_left = 8;
            else if (inflateReset(&g->strm) != Z_OK) return gz_fail(ix, i, "inflate reset");
        } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
            return gz_fail(ix, i, g->strm.msg ? g->strm.msg : "corrupt data");
        }
    }
    return VCM_OK;
}

static long point_of(const GzState *g, uint64_t off) { /* the last point at or before off */
    long lo = 0, hi = g->n_pts - 1;
    while (lo < hi) {
        long mid = (lo + hi + 1) / 2;
        if (g->pts[mid].out <= off) lo = mid; else hi = mid - 1;
    }
    return lo;
}

/* Uncompressed bytes [off, off+len) into dst, through the cursor when it is at or
 * before off and no access point lies between, else from the access point. */
static int gz_copy(JsonlIndex *ix, GzState *g, uint64_t off, uint64_t len, char *dst, long i) {
    const Point *p = &g->pts[point_of(g, off)];
    int cursor_ok = g->valid && g->cur_out <= off && p->out <= g->cur_out;
    if (!cursor_ok && gz_seek_point(ix, g, p, i)) return VCM_EINPUT;
    uint64_t done = 0;
    while (done < len) {
        if (g->sc_pos == g->sc_end && gz_more(ix, g, i)) return VCM_EINPUT;
        size_t avail = g->sc_end - g->sc_pos;
        if (g->cur_out < off) { /* skip up to the record */
            uint64_t skip = off - g->cur_out < avail ? off - g->cur_out : avail;
            g->sc_pos += skip;
            g->cur_out += skip;
            continue;
        }
        uint64_t take = len - done < avail ? len - done : avail;
        memcpy(dst + done, g->scratch + g->sc_pos, take);
        g->sc_pos += take;
        g->cur_out += take;
        done += take;
    }
    return VCM_OK;
}

static uint64_t span_end(const JsonlIndex *ix, const GzState *g, long p) {
    return p + 1 < g->n_pts ? g->pts[p + 1].out : ix->total;
}

static int gz_read(JsonlIndex *ix, long i, char *dst) {
    GzState *g = ix->z;
    uint64_t off = ix->off[i], len = ix->len[i];
    if (g->n_pts == 0) return gz_fail(ix, i, "no access point");
    long p = point_of(g, off);
    if (g->n_slots == 0 || off + len > span_end(ix, g, p)) return gz_copy(ix, g, off, len, dst, i);
    struct Slot *s = NULL;
    for (int k = 0; k < g->n_slots; k++)
        if (g->slots[k].pt == p) s = &g->slots[k];
    if (!s) { /* inflate the whole span into the least recently used slot */
        s = &g->slots[0];
        for (int k = 1; k < g->n_slots; k++)
            if (g->slots[k].used < s->used) s = &g->slots[k];
        uint64_t n = span_end(ix, g, p) - g->pts[p].out;
        if (n > s->cap) {
            char *d = realloc(s->data, n);
            if (!d) return vcm_fail(VCM_ERR, "%s: out of memory", ix->path);
            s->data = d;
            s->cap = n;
        }
        s->pt = -1;
        if (gz_copy(ix, g, g->pts[p].out, n, s->data, i)) return VCM_EINPUT;
        s->pt = p;
        s->len = n;
    }
    s->used = ++g->tick;
    memcpy(dst, s->data + (off - g->pts[p].out), len);
    return VCM_OK;
}

int jsonl_index_cache(JsonlIndex *ix, int n_spans) {
    GzState *g = ix->z;
    if (!ix->gz || !g) return VCM_OK;
    for (int k = 0; k < g->n_slots; k++) free(g->slots[k].data);
    free(g->slots);
    g->slots = NULL;
    g->n_slots = 0;
    if (n_spans <= 0) return VCM_OK;
    g->slots = calloc((size_t)n_spans, sizeof *g->slots);
    if (!g->slots) return vcm_fail(VCM_ERR, "%s: out of memory", ix->path);
    for (int k = 0; k < n_spans; k++) g->slots[k].pt = -1;
    g->n_slots = n_spans;
    return VCM_OK;
}


static void shuffle(long *a, long n, uint64_t *rng) { vcm_shuffle(a, (size_t)n, sizeof *a, rng); }

int jsonl_index_shuffle(const JsonlIndex *ix, uint64_t seed, int group, long *order) {
    uint64_t rng = seed;
    const GzState *g = ix->z;
    if (!ix->gz || !g || g->n_pts <= 1) {
        for (long i = 0; i < ix->n; i++) order[i] = i;
        shuffle(order, ix->n, &rng);
        return VCM_OK;
    }
    if (group <= 0) group = 1;
    long S = g->n_pts;
    long *first = malloc((size_t)(S + 1) * sizeof *first), *spans = malloc((size_t)S * sizeof *spans);
    if (!first || !spans) {
        free(first);
        free(spans);
        return vcm_fail(VCM_ERR, "out of memory");
    }
    /* records of span p: [first[p], first[p+1]) — the records are in offset order */
    long r = 0;
    for (long p = 0; p < S; p++) {
        while (r < ix->n && ix->off[r] < g->pts[p].out) r++;
        first[p] = r;
    }
    first[S] = ix->n;
    for (long p = 0; p < S; p++) spans[p] = p;
    shuffle(spans, S, &rng);
    long at = 0;
    for (long k = 0; k < S; k += group) {
        long start = at;
        for (long q = k; q < S && q < k + group; q++)
            for (long i = first[spans[q]]; i < first[spans[q] + 1]; i++) order[at++] = i;
        shuffle(order + start, at - start, &rng);
    }
    free(first);
    free(spans);
    return VCM_OK;
}

int jsonl_index_read(JsonlIndex *ix, long i, JsonlLine *out) {
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= ix->n)
        return vcm_fail(VCM_ERR, "%s: record %ld out of range (%ld records)", ix->path, i, ix->n);
    size_t len = ix->len[i];
    if (len + 1 > ix->buf_cap) {
        size_t cap = ix->buf_cap ? ix->buf_cap : 4096;
        while (cap < len + 1) cap *= 2;
        char *b = realloc(ix->buf, cap);
        if (!b) return vcm_fail(VCM_ERR, "%s: out of memory", ix->path);
        ix->buf = b;
        ix->buf_cap = cap;
    }
    if (ix->gz) {
        if (gz_read(ix, i, ix->buf)) return VCM_EINPUT;
    } else {
        ssize_t n = pread_full(ix->fd, (unsigned char *)ix->buf, len, ix->off[i]);
        if (n != (ssize_t)len)
            return vcm_fail(VCM_EINPUT, "%s:%u: cannot re-read the record (%s); did the file change since it was indexed?",
                            ix->path, ix->line_no[i], n < 0 ? strerror(errno) : "short read");
    }
    ix->buf[len] = 0;
    out->path = ix->path;
    out->line_no = ix->line_no[i];
    out->offset = ix->off[i];
    out->text = ix->buf;
    out->len = len;
    return VCM_OK;
}

long jsonl_index_points(const JsonlIndex *ix) {
    return ix->gz && ix->z ? ((const GzState *)ix->z)->n_pts : 0;
}

size_t jsonl_index_bytes(const JsonlIndex *ix) {
    size_t b = (size_t)ix->n * (sizeof *ix->off + sizeof *ix->len + sizeof *ix->line_no) + ix->buf_cap;
    if (ix->gz && ix->z) {
        const GzState *g = ix->z;
        b += sizeof(GzState) + (size_t)jsonl_index_points(ix) * (sizeof(Point) + WINSIZE);
        for (int k = 0; k < g->n_slots; k++) b += g->slots[k].cap;
    }
    return b;
}

void jsonl_index_free(JsonlIndex *ix) {
    GzState *g = ix->z;
    if (g) {
        for (long k = 0; k < g->n_pts; k++) free(g->pts[k].window);
        for (int k = 0; k < g->n_slots; k++) free(g->slots[k].data);
        free(g->slots);
        free(g->pts);
        if (g->strm_init) inflateEnd(&g->strm);
        free(g);
    }
    if (ix->fd >= 0) close(ix->fd);
    free(ix->path);
    free(ix->off);
    free(ix->len);
    free(ix->line_no);
    free(ix->buf);
    memset(ix, 0, sizeof *ix);
    ix->fd = -1;
}
