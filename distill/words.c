/* Text -> the corpus's word list: strings for words and punctuation, arrays of ints
 * for region mentions. The rules are in distill/distill.h (section "words"). */
#include "distill/distill.h"

#include <ctype.h>
#include <string.h>

#define MAX_MENTION_IDS 16   /* ids in one mention; more and it is read as text */

/* Word characters: ASCII letters and digits, and every byte of a multi-byte UTF-8
 * character, so that non-ASCII words stay whole and we only ever split at ASCII. */
static int is_word(unsigned char c) { return isalnum(c) || c >= 0x80; }
static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Parse "[ 3 , 5 ]" at s. On success returns the end and appends the ids (dedup). */
static const char *parse_bracket(const char *s, int *ids, int *n) {
    if (*s != '[') return NULL;
    const char *q = s + 1;
    int got[MAX_MENTION_IDS], ng = 0;
    for (;;) {
        while (*q == ' ' || *q == '\t') q++;
        if (!isdigit((unsigned char)*q)) return NULL;
        long v = 0;
        int digits = 0;
        while (isdigit((unsigned char)*q)) {
            if (++digits > 6) return NULL;      /* not an id: "[1234567]" */
            v = v * 10 + (*q++ - '0');
        }
        if (ng == MAX_MENTION_IDS) return NULL;
        got[ng++] = (int)v;
        while (*q == ' ' || *q == '\t') q++;
        if (*q == ',') { q++; continue; }
        if (*q == ']') break;
        return NULL;
    }
    for (int i = 0; i < ng; i++) {
        int seen = 0;
        for (int j = 0; j < *n; j++) seen |= ids[j] == got[i];
        if (!seen) {
            if (*n == MAX_MENTION_IDS) return NULL;
            ids[(*n)++] = got[i];
        }
    }
    return q + 1;
}

static int push_string(json_t *a, const char *s, size_t n) {
    json_t *w = json_stringn(s, n);
    return w && !json_array_append_new(a, w) ? 0 : -1;
}

json_t *distill_words(const char *text) {
    json_t *a = json_array();
    if (!a) return NULL;
    const char *s = text;
    while (*s) {
        unsigned char c = (unsigned char)*s;
        if (is_space(c)) { s++; continue; }
        if (c == '[') {
            int ids[MAX_MENTION_IDS], n = 0;
            const char *e = parse_bracket(s, ids, &n);
            if (e) {
                /* "[0][2]": mentions written without a space between are one mention */
                const char *e2;
                while (*e == '[' && (e2 = parse_bracket(e, ids, &n))) e = e2;
                json_t *m = json_array();
                if (!m || json_array_append_new(a, m)) { json_decref(a); return NULL; }
                for (int i = 0; i < n; i++)
                    if (json_array_append_new(m, json_integer(ids[i]))) { json_decref(a); return NULL; }
                s = e;
                continue;
            }
        }
        const char *b = s;
        /* An apostrophe that opens a word right after a word or a mention: "[0]'s". */
        int apos_word = c == '\'' && is_word((unsigned char)s[1]) && s > text &&
                        (is_word((unsigned char)s[-1]) || s[-1] == ']');
        if (is_word(c) || apos_word) {
            s++;
            for (;;) {
                unsigned char d = (unsigned char)*s;
                if (is_word(d)) { s++; continue; }
                if (d == 0) break;
                /* joiners inside a word: don't, well-known, 3.5, 1,000 */
                unsigned char nx = (unsigned char)s[1];
                unsigned char pv = (unsigned char)s[-1];
                if ((d == '\'' || d == '-') && is_word(pv) && is_word(nx)) { s += 2; continue; }
                if ((d == '.' || d == ',') && isdigit(pv) && isdigit(nx)) { s += 2; continue; }
                break;
            }
        } else {
            /* punctuation: a run of the same mark is one word ("...", "!!") */
            s++;
            while ((unsigned char)*s == c) s++;
        }
        if (push_string(a, b, (size_t)(s - b))) { json_decref(a); return NULL; }
    }
    return a;
}
