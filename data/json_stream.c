/* A top-level JSON array read one element at a time. Visual Genome ships its
 * annotations as one array on one line (region_descriptions.json is ~700 MB): a small
 * scanner finds where each element ends (depth of brackets, strings and escapes), and
 * only that element's text is handed to jansson, so memory is one element, never the
 * file. Reads through zlib's gzread: plain or gzip, like data/jsonl.c. */
#include "data/data.h"
#include "data/json_internal.h"
#include "base/base.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum { ST_BEFORE = 0, ST_IN = 1, ST_END = 2 };

int json_array_stream_open(JsonArrayStream *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    s->buf = malloc(JSON_READ_CHUNK);
    s->elem_cap = 4096;
    s->elem = malloc(s->elem_cap);
    s->line = 1;
    if (!s->path || !s->buf || !s->elem) {
        json_array_stream_close(s);
        return vcm_fail(VCM_ERR, "%s: out of memory", path);
    }
    if (!(s->gz = json_file_open(path))) {
        json_array_stream_close(s);
        return VCM_EINPUT;
    }
    return VCM_OK;
}

void json_array_stream_close(JsonArrayStream *s) {
    if (s->gz) gzclose((gzFile)s->gz);
    free(s->path);
    free(s->buf);
    free(s->elem);
    memset(s, 0, sizeof *s);
}

/* The next byte (0..255), -1 at the end of the file, -2 on a read error (set). */
static int get(JsonArrayStream *s) {
    if (s->buf_pos == s->buf_len) {
        if (s->eof) return -1;
        const char *why;
        int n = json_file_read(s->gz, s->buf, &why);
        if (n < 0) {
            vcm_fail(VCM_EINPUT, "%s: line %ld, byte %llu: cannot read (%s)", s->path, s->line,
                     (unsigned long long)s->offset, why);
            return -2;
        }
        s->buf_len = (size_t)n;
        s->buf_pos = 0;
        if (n == 0) { s->eof = 1; return -1; }
    }
    int c = (unsigned char)s->buf[s->buf_pos++];
    s->offset++;
    if (c == '\n') s->line++;
    return c;
}

/* Give back the byte just read (always still in the buffer). */
static void unget(JsonArrayStream *s, int c) {
    s->buf_pos--;
    s->offset--;
    if (c == '\n') s->line--;
}

static int is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int skip_ws(JsonArrayStream *s) {
    int c;
    do c = get(s); while (is_ws(c));
    return c;
}

static int where(JsonArrayStream *s, const char *what) {
    return vcm_fail(VCM_EINPUT, "%s: line %ld, byte %llu: %s", s->path, s->line,
                    (unsigned long long)(s->offset ? s->offset - 1 : 0), what);
}

static int push(JsonArrayStream *s, int c) {
    if (s->elem_len + 1 >= s->elem_cap) {
        if (s->elem_cap >= JSONL_MAX_LINE)
            return vcm_fail(VCM_EINPUT, "%s: entry %ld (line %ld, byte %llu) is longer than %u bytes", s->path,
                            s->index, s->elem_line, (unsigned long long)s->elem_offset, JSONL_MAX_LINE);
        char *e = realloc(s->elem, s->elem_cap * 2);
        if (!e) return vcm_fail(VCM_ERR, "%s: out of memory", s->path);
        s->elem = e;
        s->elem_cap *= 2;
    }
    s->elem[s->elem_len++] = (char)c;
    return VCM_OK;
}

/* Copy one element's text into s->elem, starting with its first byte c. */
static int scan_element(JsonArrayStream *s, int c) {
    int depth = 0, in_str = 0, esc = 0;
    s->elem_len = 0;
    for (;; c = get(s)) {
        if (c == -2) return VCM_EINPUT;
        if (c == -1)
            return vcm_fail(VCM_EINPUT, "%s: entry %ld (line %ld, byte %llu): the file ends inside it (cut short?)",
                            s->path, s->index, s->elem_line, (unsigned long long)s->elem_offset);
        if (!in_str && depth == 0 && s->elem_len && (c == ',' || c == ']' || c == '}' || is_ws(c))) {
            unget(s, c);   /* the end of a scalar element: the delimiter is the list's */
            return VCM_OK;
        }
        if (push(s, c)) return VCM_EINPUT;
        if (in_str) {
            if (esc) esc = 0;
            else if (c == '\\') esc = 1;
            else if (c == '"') { in_str = 0; if (depth == 0) return VCM_OK; }
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth <= 0) return VCM_OK;   /* < 0: a stray bracket, jansson says so */
        }
    }
}

int json_array_stream_next(JsonArrayStream *s, struct json_t **out) {
    *out = NULL;
    int c;
    if (s->state == ST_END) return VCM_OK;
    if (s->state == ST_BEFORE) {
        c = skip_ws(s);
        /* A UTF-8 byte-order mark is not JSON; some tools write one. */
        if (c == 0xEF && s->offset == 1) {
            if (get(s) != 0xBB || get(s) != 0xBF) return where(s, "expected a JSON list ('[')");
            c = skip_ws(s);
        }
        if (c == -2) return VCM_EINPUT;
        if (c == -1) return vcm_fail(VCM_EINPUT, "%s: empty file (expected a JSON list)", s->path);
        if (c != '[') return where(s, "expected a JSON list ('[') at the top level");
        s->state = ST_IN;
    }
    c = skip_ws(s);
    if (c == -2) return VCM_EINPUT;
    if (s->index > 0 && c == ',') {
        c = skip_ws(s);
        if (c == ']') return where(s, "a ',' before the list's ']' (trailing comma)");
    } else if (s->index > 0 && c != ']' && c != -1) {
        return where(s, "expected ',' or ']' after an entry of the list");
    }
    if (c == -1) return vcm_fail(VCM_EINPUT, "%s: the file ends inside the list (no closing ']'; cut short?)", s->path);
    if (c == ']') {
        s->state = ST_END;
        c = skip_ws(s);
        if (c == -2) return VCM_EINPUT;
        if (c != -1) return where(s, "unexpected text after the list's closing ']'");
        return VCM_OK;
    }
    s->elem_index = s->index;
    s->elem_line = s->line;
    s->elem_offset = s->offset - 1;
    if (scan_element(s, c)) return VCM_EINPUT;
    json_error_t err;
    *out = json_loadb(s->elem, s->elem_len, JSON_DECODE_ANY, &err);
    if (!*out) {
        /* jansson's position counts bytes of the element; err.line its lines */
        long line = s->elem_line + (err.line > 1 ? err.line - 1 : 0);
        return vcm_fail(VCM_EINPUT, "%s: entry %ld (line %ld, byte %llu): %s", s->path, s->index, line,
                        (unsigned long long)(s->elem_offset + (uint64_t)(err.position > 0 ? err.position - 1 : 0)),
                        err.text);
    }
    s->index++;
    return VCM_OK;
}
