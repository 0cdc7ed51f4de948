/* The helpers of data/json_internal.h. */
#include "data/json_internal.h"
#include "base/base.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

void *json_file_open(const char *path) {
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        int e = errno;
        vcm_fail(VCM_EINPUT, "%s: cannot open (%s)", path, e ? strerror(e) : "zlib");
        return NULL;
    }
    gzbuffer(gz, JSON_READ_CHUNK);
    return gz;
}

int json_file_read(void *gz, char *buf, const char **why) {
    int n = gzread((gzFile)gz, buf, JSON_READ_CHUNK);
    int zerr = Z_OK;
    const char *m = gzerror((gzFile)gz, &zerr);
    if (n < 0) {
        *why = zerr == Z_ERRNO ? strerror(errno) : m;
        return -1;
    }
    /* A short read is the end of the input; zlib says Z_BUF_ERROR when that end came in
     * the middle of a gzip stream (a cut .gz, or one without its trailer): the records
     * after the cut are lost, so it is an error, not the end of the file. */
    if ((unsigned)n < JSON_READ_CHUNK && zerr == Z_BUF_ERROR) {
        *why = "the gzip stream ends early: the file is truncated";
        return -1;
    }
    return n;
}

const char *jtype_name(const json_t *v) {
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "a list";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

int region_key_id(const char *k, int *id) {
    if (!*k || strlen(k) > 9) return -1;
    long v = 0;
    for (const char *p = k; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    *id = (int)v;
    return 0;
}

int region_box_cmp_id(const void *a, const void *b) {
    const RegionBox *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}
