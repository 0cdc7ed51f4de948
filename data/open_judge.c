/* The judge of the open-ended evaluation: does a generated answer name the asked
 * region(s), and is it the true answer? String work only, so it can be pinned on
 * hand-made cases (tests/test_readers.c) without a model. */
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

/* Lower case, runs of white space as one space, trimmed: into out (cap bytes). */
static size_t normalize(const char *s, size_t n, char *out, size_t cap) {
    size_t m = 0;
    int space = 0;
    for (size_t i = 0; i < n && s[i]; i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') { space = m > 0; continue; }
        if (space && m + 1 < cap) out[m++] = ' ';
        space = 0;
        if (c >= 'A' && c <= 'Z') c = (char)(c + 32);
        if (m + 1 < cap) out[m++] = c;
    }
    out[m] = 0;
    return m;
}

/* Does name occur in text as whole words? */
static int has_words(const char *text, size_t tn, const char *name) {
    size_t nn = strlen(name);
    if (!nn || nn > tn) return 0;
    for (const char *p = text; (p = strstr(p, name)); p++) {
        int start = p == text || p[-1] == ' ';
        int end = p[nn] == 0 || p[nn] == ' ';
        if (start && end) return 1;
    }
    return 0;
}

void open_judge(const char *answer, size_t answer_len, const char *truth, const char *const *names,
                const int *asked, int n_regions, OpenVerdict *v) {
    memset(v, 0, sizeof *v);
    size_t cap = answer_len + strlen(truth) + 2;
    char *a = malloc(cap), *t = malloc(cap), name[256];
    if (!a || !t) { free(a); free(t); return; }   /* judged wrong: nothing was compared */
    size_t an = normalize(answer, answer_len, a, cap);
    normalize(truth, strlen(truth), t, cap);
    int named_asked = 0, named_other = 0;
    for (int k = 0; k < n_regions; k++) {
        if (!names[k]) continue;
        normalize(names[k], strlen(names[k]), name, sizeof name);
        if (!has_words(a, an, name)) continue;
        v->n_named++;
        /* an ambiguous name (an asked region's too) counts as asked */
        int shared = 0;
        for (int j = 0; j < n_regions && !asked[k]; j++)
            if (asked[j] && names[j] && !strcmp(names[j], names[k])) shared = 1;
        if (asked[k] || shared) named_asked = 1;
        else named_other = 1;
    }
    v->refers = named_asked && !named_other;
    v->correct = an > 0 && !strcmp(a, t);
    free(a);
    free(t);
}
