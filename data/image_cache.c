/* The decoded-and-resized image cache: (path, size) -> pixels, least recently used
 * out first, under a byte budget; optionally a directory of raw files behind it.
 * One mutex guards the table; decoding happens outside it so misses run in parallel. */
#include "data/data.h"
#include "base/base.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

typedef struct Entry {
    char *path;
    int size, orig_w, orig_h;
    uint64_t hash;
    uint8_t *rgb;               /* 3·size·size */
    struct Entry *prev, *next;  /* recency list: head is the most recent */
    struct Entry *chain;        /* hash bucket */
} Entry;

struct ImageCache {
    pthread_mutex_t mu;
    size_t budget, bytes, entries;
    Entry **buckets;
    size_t n_buckets;           /* power of two */
    Entry *head, *tail;
    char *disk_dir;
    long hits, misses, disk_hits, evictions;
};

static uint64_t key_hash(const char *path, int size) {
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) { h ^= *p; h *= 1099511628211ULL; }
    h ^= (uint64_t)(unsigned)size;
    h *= 1099511628211ULL;
    return h;
}

int image_cache_new(ImageCache **out, size_t budget_bytes, const char *disk_dir) {
    *out = NULL;
    ImageCache *c = calloc(1, sizeof *c);
    if (!c) return vcm_fail(VCM_ERR, "image cache: out of memory");
    c->budget = budget_bytes;
    c->n_buckets = 256;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (disk_dir) {
        c->disk_dir = strdup(disk_dir);
        if (c->disk_dir && mkdir(disk_dir, 0777) && errno != EEXIST) {
            int e = errno;
            free(c->disk_dir);
            free(c->buckets);
            free(c);
            return vcm_fail(VCM_ERR, "%s: cannot create the image cache directory: %s", disk_dir, strerror(e));
        }
    }
    if (!c->buckets || (disk_dir && !c->disk_dir) || pthread_mutex_init(&c->mu, NULL)) {
        free(c->buckets);
        free(c->disk_dir);
        free(c);
        return vcm_fail(VCM_ERR, "image cache: out of memory");
    }
    *out = c;
    return VCM_OK;
}

static void entry_free(Entry *e) {
    free(e->path);
    free(e->rgb);
    free(e);
}

void image_cache_free(ImageCache *c) {
    if (!c) return;
    for (Entry *e = c->head, *n; e; e = n) { n = e->next; entry_free(e); }
    free(c->buckets);
    free(c->disk_dir);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void image_cache_stats(ImageCache *c, ImageCacheStats *s) {
    pthread_mutex_lock(&c->mu);
    s->hits = c->hits;
    s->misses = c->misses;
    s->disk_hits = c->disk_hits;
    s->evictions = c->evictions;
    s->bytes = c->bytes;
    s->entries = c->entries;
    pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------- table (under mu) */

static Entry *find(ImageCache *c, const char *path, int size, uint64_t h) {
    for (Entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->chain)
        if (e->hash == h && e->size == size && !strcmp(e->path, path)) return e;
    return NULL;
}

static void list_unlink(ImageCache *c, Entry *e) {
    if (e->prev) e->prev->next = e->next; else c->head = e->next;
    if (e->next) e->next->prev = e->prev; else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(ImageCache *c, Entry *e) {
    e->prev = NULL;
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static void remove_entry(ImageCache *c, Entry *e) {
    Entry **p = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*p != e) p = &(*p)->chain;
    *p = e->chain;
    list_unlink(c, e);
    c->bytes -= (size_t)e->size * (size_t)e->size * 3;
    c->entries--;
    entry_free(e);
}

static void grow_buckets(ImageCache *c) {
    size_t n = c->n_buckets * 2;
    Entry **b = calloc(n, sizeof *b);
    if (!b) return;                 /* keep the old table: slower chains, still correct */
    for (Entry *e = c->head; e; e = e->next) {
        e->chain = b[e->hash & (n - 1)];
        b[e->hash & (n - 1)] = e;
    }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

/* Takes ownership of e (frees it when it is not kept). */
static void insert(ImageCache *c, Entry *e) {
    size_t bytes = (size_t)e->size * (size_t)e->size * 3;
    if (bytes > c->budget || find(c, e->path, e->size, e->hash)) {   /* too big, or a racing thread won */
        entry_free(e);
        return;
    }
    while (c->tail && c->bytes + bytes > c->budget) {
        remove_entry(c, c->tail);
        c->evictions++;
    }
    Entry **b = &c->buckets[e->hash & (c->n_buckets - 1)];
    e->chain = *b;
    *b = e;
    list_push_front(c, e);
    c->bytes += bytes;
    if (++c->entries > c->n_buckets) grow_buckets(c);
}

/* ---------------------------------------------------------------- disk files
 * DIR/<hash>-<size>.rgb: "VCMIMC1\n", then u32 size, orig_w, orig_h, path length;
 * i64 source size, mtime seconds, mtime nanoseconds; the path; the pixels; CRC-32 of
 * all that precedes. Written to a temp name and renamed, so readers never see half. */

#define DISK_MAGIC "VCMIMC1\n"

typedef struct DiskKey { int64_t src_size, mtime_s, mtime_ns; } DiskKey;

static int disk_key(const char *path, DiskKey *k) {
    struct stat st;
    if (stat(path, &st)) return -1;
    k->src_size = (int64_t)st.st_size;
    k->mtime_s = (int64_t)st.st_mtim.tv_sec;
    k->mtime_ns = (int64_t)st.st_mtim.tv_nsec;
    return 0;
}

static void disk_name(const ImageCache *c, uint64_t h, int size, char *buf, size_t n) {
    snprintf(buf, n, "%s/%016llx-%d.rgb", c->disk_dir, (unsigned long long)h, size);
}

static size_t disk_header(unsigned char *hdr, const char *path, int size, int ow, int oh, const DiskKey *k) {
    uint32_t u[4] = {(uint32_t)size, (uint32_t)ow, (uint32_t)oh, (uint32_t)strlen(path)};
    int64_t v[3] = {k->src_size, k->mtime_s, k->mtime_ns};
    memcpy(hdr, DISK_MAGIC, 8);
    memcpy(hdr + 8, u, sizeof u);
    memcpy(hdr + 24, v, sizeof v);
    return 48;
}

/* 1 and the pixels when DIR holds a valid file for this (path, size) and source. */
static int disk_read(const ImageCache *c, const char *path, int size, uint64_t h, uint8_t *rgb,
                     int *ow, int *oh) {
    DiskKey k;
    if (disk_key(path, &k)) return 0;
    char name[4200];
    disk_name(c, h, size, name, sizeof name);
    FILE *f = fopen(name, "rb");
    if (!f) return 0;
    unsigned char hdr[48], want[48];
    size_t plen = strlen(path), npx = (size_t)size * (size_t)size * 3;
    char *p = malloc(plen + 1);
    uint32_t crc_file;
    int ok = p && fread(hdr, 1, 48, f) == 48;
    uint32_t u[4];
    if (ok) {
        memcpy(u, hdr + 8, sizeof u);
        disk_header(want, path, size, (int)u[1], (int)u[2], &k);
        ok = !memcmp(hdr, want, 48) && u[3] == plen && u[1] > 0 && u[2] > 0;
    }
    ok = ok && fread(p, 1, plen, f) == plen && !memcmp(p, path, plen);
    ok = ok && fread(rgb, 1, npx, f) == npx && fread(&crc_file, 1, 4, f) == 4;
    if (ok) {
        uLong crc = crc32(0L, hdr, 48);
        crc = crc32(crc, (const Bytef *)p, (uInt)plen);
        crc = crc32(crc, rgb, (uInt)npx);
        ok = (uint32_t)crc == crc_file;
    }
    free(p);
    fclose(f);
    if (ok) { *ow = (int)u[1]; *oh = (int)u[2]; }
    return ok;
}

/* Best effort: a cache file that cannot be written is only a lost speed-up. */
static void disk_write(const ImageCache *c, const char *path, int size, uint64_t h, const uint8_t *rgb,
                       int ow, int oh) {
    DiskKey k;
    if (disk_key(path, &k)) return;
    char name[4200];
    disk_name(c, h, size, name, sizeof name);
    /* Threads and ranks may write one entry at once: each its own temporary. A cache
     * entry can be made again, so no fsync (its CRC catches a torn file). */
    AtomicFile af;
    if (atomic_file_open_flags(&af, name, ATOMIC_UNIQUE | ATOMIC_NO_SYNC)) return;
    FILE *f = af.f;
    unsigned char hdr[48];
    disk_header(hdr, path, size, ow, oh, &k);
    size_t plen = strlen(path), npx = (size_t)size * (size_t)size * 3;
    uLong crc = crc32(0L, hdr, 48);
    crc = crc32(crc, (const Bytef *)path, (uInt)plen);
    crc = crc32(crc, rgb, (uInt)npx);
    uint32_t crc32v = (uint32_t)crc;
    int ok = fwrite(hdr, 1, 48, f) == 48 && fwrite(path, 1, plen, f) == plen &&
             fwrite(rgb, 1, npx, f) == npx && fwrite(&crc32v, 1, 4, f) == 4;
    if (ok) atomic_file_commit(&af);
    else atomic_file_abort(&af);
}

/* ---------------------------------------------------------------- get */

int image_cache_get(ImageCache *c, const char *path, int size, uint8_t *rgb, int *orig_w, int *orig_h) {
    if (size <= 0 || size > 16384) return vcm_fail(VCM_EINPUT, "%s: image size %d out of range", path, size);
    size_t npx = (size_t)size * (size_t)size * 3;
    uint64_t h = key_hash(path, size);
    pthread_mutex_lock(&c->mu);
    Entry *e = find(c, path, size, h);
    if (e) {
        list_unlink(c, e);
        list_push_front(c, e);
        memcpy(rgb, e->rgb, npx);
        *orig_w = e->orig_w;
        *orig_h = e->orig_h;
        c->hits++;
        pthread_mutex_unlock(&c->mu);
        return VCM_OK;
    }
    c->misses++;
    pthread_mutex_unlock(&c->mu);

    int ow, oh, from_disk = c->disk_dir && disk_read(c, path, size, h, rgb, &ow, &oh);
    if (!from_disk) {
        Image im, small;
        if (image_load(path, &im)) return VCM_EINPUT;
        int rc = image_resize(&im, size, size, &small);
        ow = im.w;
        oh = im.h;
        image_free(&im);
        if (rc) return rc;
        memcpy(rgb, small.rgb, npx);
        image_free(&small);
        if (c->disk_dir) disk_write(c, path, size, h, rgb, ow, oh);
    }
    *orig_w = ow;
    *orig_h = oh;
    if (c->budget >= npx) {
        Entry *n = calloc(1, sizeof *n);
        if (n) {
            n->path = strdup(path);
            n->rgb = malloc(npx);
        }
        if (n && n->path && n->rgb) {
            n->size = size;
            n->orig_w = ow;
            n->orig_h = oh;
            n->hash = h;
            memcpy(n->rgb, rgb, npx);
        }
        pthread_mutex_lock(&c->mu);
        if (from_disk) c->disk_hits++;
        if (n && n->path && n->rgb) insert(c, n);
        else if (n) entry_free(n);      /* out of memory: serve uncached */
        pthread_mutex_unlock(&c->mu);
    } else if (from_disk) {
        pthread_mutex_lock(&c->mu);
        c->disk_hits++;
        pthread_mutex_unlock(&c->mu);
    }
    return VCM_OK;
}
