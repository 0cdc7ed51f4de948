/* Sequential JSONL reading (plain or gzip, through zlib's gzread which passes plain
 * files through unchanged), line numbers and offsets, and the one place a line
 * becomes JSON (so every syntax error is worded the same way). */
#include "data/data.h"
#include "data/json_internal.h"
#include "base/base.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

const char *bad_reason_name(int reason) {
    static const char *names[BAD_N] = {
        [BAD_NONE] = "none",
        [BAD_JSON_SYNTAX] = "json_syntax",
        [BAD_NOT_OBJECT] = "not_object",
        [BAD_MISSING_FIELD] = "missing_field",
        [BAD_WRONG_TYPE] = "wrong_type",
        [BAD_VALUE] = "bad_value",
        [BAD_EMPTY_QUESTION] = "empty_question",
        [BAD_EMPTY_TEXT] = "empty_text",
        [BAD_IMAGE_NOT_IN_MAP] = "image_not_in_mapping",
        [BAD_MISSING_REGION] = "missing_region",
        [BAD_BOX] = "bad_box",
        [BAD_BOX_OUTSIDE] = "box_outside_image",
        [BAD_MISSING_IMAGE] = "missing_image",
        [BAD_IMAGE] = "bad_image",
        [BAD_DUPLICATE_IMAGE] = "duplicate_image",
        [BAD_TOO_MANY_REGIONS] = "too_many_regions",
        [BAD_LINE_TOO_LONG] = "line_too_long",
    };
    return reason >= 0 && reason < BAD_N && names[reason] ? names[reason] : "unknown";
}

struct json_t *bad_reasons_json(const long *by_reason) {
    json_t *o = json_object();
    for (int k = 1; k < BAD_N; k++)
        if (by_reason[k]) json_object_set_new(o, bad_reason_name(k), json_integer(by_reason[k]));
    return o;
}

int jsonl_open(JsonlReader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = strdup(path);
    r->buf = malloc(JSON_READ_CHUNK);
    r->line_cap = 4096;
    r->line = malloc(r->line_cap);
    if (!r->path || !r->buf || !r->line) {
        jsonl_close(r);
        return vcm_fail(VCM_ERR, "%s: out of memory", path);
    }
    if (!(r->gz = json_file_open(path))) {
        jsonl_close(r);
        return VCM_EINPUT;
    }
    return VCM_OK;
}

void jsonl_close(JsonlReader *r) {
    if (r->gz) gzclose((gzFile)r->gz);
    free(r->path);
    free(r->buf);
    free(r->line);
    memset(r, 0, sizeof *r);
}

static int fill(JsonlReader *r) {
    const char *why;
    int n = json_file_read(r->gz, r->buf, &why);
    if (n < 0) return vcm_fail(VCM_EINPUT, "%s:%ld: cannot read (%s)", r->path, r->line_no + 1, why);
    r->buf_len = (size_t)n;
    r->buf_pos = 0;
    if (n == 0) r->eof = 1;
    return VCM_OK;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
    return 1;
}

int jsonl_next(JsonlReader *r, JsonlLine *out) {
    memset(out, 0, sizeof *out);
    out->path = r->path;
    for (;;) {
        size_t len = 0;
        uint64_t start = r->offset;
        int got = 0, too_long = 0;
        for (;;) {
            if (r->buf_pos == r->buf_len) {
                if (r->eof) break;
                if (fill(r)) return VCM_EINPUT;
                if (r->eof) break;
            }
            got = 1;
            const char *p = r->buf + r->buf_pos;
            size_t avail = r->buf_len - r->buf_pos;
            const char *nl = memchr(p, '\n', avail);
            size_t take = nl ? (size_t)(nl - p) : avail;
            if (!too_long && len + take + 1 > JSONL_MAX_LINE) too_long = 1;
            if (!too_long) {
                if (len + take + 1 > r->line_cap) {
                    size_t cap = r->line_cap;
                    while (cap < len + take + 1) cap *= 2;
                    char *l = realloc(r->line, cap);
                    if (!l) return vcm_fail(VCM_ERR, "%s:%ld: out of memory", r->path, r->line_no + 1);
                    r->line = l;
                    r->line_cap = cap;
                }
                memcpy(r->line + len, p, take);
                len += take;
            }
            r->buf_pos += take + (nl ? 1 : 0);
            r->offset += take + (nl ? 1 : 0);
            if (nl) break;
        }
        if (!got) return VCM_OK; /* end of file */
        r->line_no++;
        if (too_long)
            return vcm_fail(VCM_EINPUT, "%s:%ld: line longer than %u bytes", r->path, r->line_no,
                            JSONL_MAX_LINE);
        if (len && r->line[len - 1] == '\r') len--;
        r->line[len] = 0;
        /* A UTF-8 byte-order mark is not JSON; editors add it to the first line. */
        const char *text = r->line;
        if (start == 0 && len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, len -= 3;
        if (is_blank(text, len)) continue;
        out->line_no = r->line_no;
        out->offset = start;
        out->text = text;
        out->len = len;
        return VCM_OK;
    }
}

int jsonl_parse(const JsonlLine *ln, json_t **out) {
    json_error_t err;
    *out = json_loadb(ln->text, ln->len, 0, &err);
    if (!*out)
        return vcm_fail(VCM_EINPUT, "%s:%ld:%d: %s", ln->path, ln->line_no,
                        err.column > 0 ? err.column : 1, err.text);
    return VCM_OK;
}
