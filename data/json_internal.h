/* Small helpers shared by data/'s JSON readers only (jsonl.c, json_stream.c, corpus.c,
 * regions.c, vcr.c, vg_*.c): one way to open and read a plain or gzip file, one wording
 * for JSON types and one rule for region-id keys, so every reader's messages and keys
 * agree. Not part of the public API (data/data.h). */
#ifndef VCM_DATA_JSON_INTERNAL_H
#define VCM_DATA_JSON_INTERNAL_H

#include "data/data.h"

#include <jansson.h>

/* Bytes a reader asks zlib for at a time (and zlib's own buffer). */
#define JSON_READ_CHUNK (1u << 18)

/* path opened for reading through zlib (plain files pass through): the gzFile, or NULL
 * with VCM_EINPUT "PATH: cannot open (why)" set. */
void *json_file_open(const char *path);
/* Up to JSON_READ_CHUNK bytes into buf: the count (0 at the end), or -1 with why (the
 * reason only, for the caller to place) set. */
int json_file_read(void *gz, char *buf, const char **why);

/* "an object", "a list", "a string", "an integer", "a number", "a boolean", "null";
 * "nothing" for NULL (an absent field). */
const char *jtype_name(const json_t *v);
/* "12" → 12; anything but 1 to 9 plain decimal digits is not a region id (-1). */
int region_key_id(const char *k, int *id);
/* qsort order of RegionBox by id. */
int region_box_cmp_id(const void *a, const void *b);

#endif
