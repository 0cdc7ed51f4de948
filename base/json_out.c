/* base/json_out.c — the one JSON string escaper. Every JSON line vcm prints by hand
 * (tools' summaries, the synthetic world's files) quotes its strings through
 * vcm_json_char, so a path holding " or \ or a model's invalid UTF-8 stays one string. */
#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when the bytes are not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    if (len > n) return 0;
    unsigned cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t vcm_json_char(const char *s, size_t n, char out[8], size_t *len) {
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    if (c == '"' || c == '\\') { out[0] = '\\'; out[1] = (char)c; *len = 2; return 1; }
    if (c < 0x20) {
        const char *e = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
        if (e) { out[0] = e[0]; out[1] = e[1]; *len = 2; }
        else *len = (size_t)snprintf(out, 8, "\\u%04x", c);
        return 1;
    }
    size_t l = utf8_len(u, n);
    if (!l) { memcpy(out, "\xEF\xBF\xBD", 3); *len = 3; return 1; }   /* U+FFFD */
    memcpy(out, s, l);
    *len = l;
    return l;
}

void vcm_json_put_string(FILE *f, const char *s, size_t n) {
    char e[8];
    size_t len;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        i += vcm_json_char(s + i, n - i, e, &len);
        fwrite(e, 1, len, f);
    }
    fputc('"', f);
}

void vcm_json_put_number(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6f", v);
    else fputs("null", f);
}
