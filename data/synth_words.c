/* Sentences in the corpus convention (words are strings, a region mention is a list of
 * integer ids, punctuation is its own word) and a growing string for the JSON writer.
 * Sentences have fixed capacity: the templates are ours and short, so running out of
 * room is a programming error; the text is then cut, never overrun. */
#include "data/synth_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ss_clear(SSent *s) { s->n = 0; s->nb = 0; }

void ss_word(SSent *s, const char *w, size_t len) {
    if (!len || s->n >= SENT_MAX_TOK || s->nb + (int)len + 1 > (int)sizeof s->buf) return;
    s->t[s->n].off = (short)s->nb;
    s->t[s->n].nid = 0;
    memcpy(s->buf + s->nb, w, len);
    s->buf[s->nb + (int)len] = 0;
    s->nb += (int)len + 1;
    s->n++;
}

void ss_words(SSent *s, const char *p) {
    while (*p) {
        while (*p == ' ') p++;
        const char *e = p;
        while (*e && *e != ' ') e++;
        ss_word(s, p, (size_t)(e - p));
        p = e;
    }
}

void ss_mention(SSent *s, int a) {
    if (s->n >= SENT_MAX_TOK) return;
    STok *t = &s->t[s->n++];
    t->off = -1; t->nid = 1; t->ids[0] = (signed char)a;
}

void ss_mention2(SSent *s, int a, int b) {
    if (s->n >= SENT_MAX_TOK) return;
    STok *t = &s->t[s->n++];
    t->off = -1; t->nid = 2; t->ids[0] = (signed char)a; t->ids[1] = (signed char)b;
}

void ss_fmt(SSent *s, const char *tmpl, ...) {
    va_list ap;
    va_start(ap, tmpl);
    const char *p = tmpl;
    while (*p) {
        while (*p == ' ') p++;
        if (!*p) break;
        const char *e = p;
        while (*e && *e != ' ') e++;
        if (e - p == 2 && p[0] == '%' && p[1] == 'm') ss_mention(s, va_arg(ap, int));
        else if (e - p == 2 && p[0] == '%' && p[1] == 'M') {
            int a = va_arg(ap, int), b = va_arg(ap, int);
            ss_mention2(s, a, b);
        } else if (e - p == 2 && p[0] == '%' && p[1] == 's') ss_words(s, va_arg(ap, const char *));
        else ss_word(s, p, (size_t)(e - p));
        p = e;
    }
    va_end(ap);
}

const char *ss_wordat(const SSent *s, int i) {
    return s->t[i].nid ? NULL : s->buf + s->t[i].off;
}

int ss_equal(const SSent *a, const SSent *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
        if (a->t[i].nid != b->t[i].nid) return 0;
        if (a->t[i].nid) {
            if (memcmp(a->t[i].ids, b->t[i].ids, (size_t)a->t[i].nid)) return 0;
        } else if (strcmp(ss_wordat(a, i), ss_wordat(b, i))) return 0;
    }
    return 1;
}

/* Rebuild with one word replaced everywhere (words are immutable in the buffer). */
void ss_replace_word(SSent *s, const char *from, const char *to) {
    SSent old = *s;
    ss_clear(s);
    for (int i = 0; i < old.n; i++) {
        if (old.t[i].nid) {
            if (s->n < SENT_MAX_TOK) s->t[s->n++] = old.t[i];
            continue;
        }
        const char *w = ss_wordat(&old, i);
        ss_words(s, strcmp(w, from) ? w : to);
    }
}

void ss_swap_ids(SSent *s, int a, int b) {
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < s->t[i].nid; j++) {
            if (s->t[i].ids[j] == a) s->t[i].ids[j] = (signed char)b;
            else if (s->t[i].ids[j] == b) s->t[i].ids[j] = (signed char)a;
        }
}

int ss_which_question(const SSent *a, SSent *q) {
    /* "[k] could be used to X ." -> "Which of them could be used to X ?" */
    if (a->n < 3 || ss_wordat(a, 0) || a->t[0].nid != 1) return -1;
    const char *last = ss_wordat(a, a->n - 1);
    if (!last || strcmp(last, ".")) return -1;
    ss_clear(q);
    ss_words(q, "Which of them");
    for (int i = 1; i < a->n - 1; i++) {
        const char *w = ss_wordat(a, i);
        if (!w) return -1;   /* a second mention: not a one-region property */
        ss_word(q, w, strlen(w));
    }
    ss_word(q, "?", 1);
    return 0;
}

/* ---------------------------------------------------------------- SBuf */

static int sb_grow(SBuf *b, size_t extra) {
    if (b->oom) return 0;
    if (b->n + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = 1; return 0; }
    b->p = p;
    b->cap = cap;
    return 1;
}

void sb_put(SBuf *b, const char *s, size_t len) {
    if (!sb_grow(b, len)) return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = 0;
}

void sb_puts(SBuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_printf(SBuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { sb_put(b, tmp, (size_t)n); return; }
    if (!sb_grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

void sb_json_str(SBuf *b, const char *s) {
    size_t n = strlen(s), len;
    char e[8];
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        i += vcm_json_char(s + i, n - i, e, &len);
        sb_put(b, e, len);
    }
    sb_put(b, "\"", 1);
}

void sb_json_sent(SBuf *b, const SSent *s) {
    sb_put(b, "[", 1);
    for (int i = 0; i < s->n; i++) {
        if (i) sb_put(b, ", ", 2);
        if (s->t[i].nid) {
            sb_put(b, "[", 1);
            for (int j = 0; j < s->t[i].nid; j++) sb_printf(b, j ? ", %d" : "%d", s->t[i].ids[j]);
            sb_put(b, "]", 1);
        } else {
            sb_json_str(b, ss_wordat(s, i));
        }
    }
    sb_put(b, "]", 1);
}

void sb_free(SBuf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
    b->oom = 0;
}

void ss_fix_articles(SSent *s) {
    SSent old = *s;
    ss_clear(s);
    for (int i = 0; i < old.n; i++) {
        if (old.t[i].nid) {
            if (s->n < SENT_MAX_TOK) s->t[s->n++] = old.t[i];
            continue;
        }
        const char *w = ss_wordat(&old, i), *next = i + 1 < old.n ? ss_wordat(&old, i + 1) : NULL;
        int is_a = !strcmp(w, "a") || !strcmp(w, "an"), is_A = !strcmp(w, "A") || !strcmp(w, "An");
        if ((is_a || is_A) && next) {
            int vowel = strchr("aeiouAEIOU", next[0]) != NULL;
            w = is_A ? (vowel ? "An" : "A") : (vowel ? "an" : "a");
        }
        ss_words(s, w);
    }
}
