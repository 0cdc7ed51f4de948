/* The verbalizer's side of the protocol: its prompts, where a region's crop is, and
 * what of a vision-language model's reply is kept. */
#include "distill/distill.h"
#include "tensor/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Short and literal: the teacher (vcm distill) is to reason from what is seen, so the
 * descriptions must not guess intentions or stories. */
const char verbalize_prompt_global[] =
    "Describe this image in one sentence. Say only what is visible: the main objects or "
    "people, what they are doing, and the setting. Reply with the sentence only.";
const char verbalize_prompt_region[] =
    "Describe the object in this crop in one short phrase, such as \"a man in a red coat\" "
    "or \"a wooden table\". Reply with the phrase only.";

void verbalize_options_default(VerbalizeOptions *o) {
    memset(o, 0, sizeof *o);
    distill_options_default(&o->chat);
    o->chat.temperature = 0;
    o->chat.max_tokens = 128;
    o->pad = 0.1;
    o->min_side = 32;
    o->max_side = 768;
    o->jpeg_quality = 90;
}

/* One axis of verbalize_crop_rect. */
static void crop_axis(double a0, double a1, int size, double pad, int min_side, int *lo, int *hi) {
    double ext = pad * (a1 - a0);
    double l = floor(a0 - ext), h = ceil(a1 + ext);
    int c0 = l < 0 ? 0 : l > size ? size : (int)l;
    int c1 = h < 0 ? 0 : h > size ? size : (int)h;
    int want = min_side < 1 ? 1 : min_side;
    if (want > size) want = size;
    if (c1 - c0 < want) {
        int need = want - (c1 - c0);
        c0 -= need / 2;
        c1 += need - need / 2;
        if (c0 < 0) { c1 -= c0; c0 = 0; }
        if (c1 > size) { c0 -= c1 - size; c1 = size; }
    }
    *lo = c0;
    *hi = c1;
}

void verbalize_crop_rect(int W, int H, const RegionBox *b, double pad, int min_side, int rect[4]) {
    crop_axis(b->x0, b->x1, W, pad, min_side, &rect[0], &rect[2]);
    crop_axis(b->y0, b->y1, H, pad, min_side, &rect[1], &rect[3]);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* Strip one pair of surrounding quotes (ASCII or the UTF-8 curly ones). */
static void strip_quotes(char *s, size_t *n) {
    static const char *const pairs[][2] = {{"\"", "\""}, {"'", "'"}, {"`", "`"}, {"\xe2\x80\x9c", "\xe2\x80\x9d"}};
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        size_t a = strlen(pairs[k][0]), b = strlen(pairs[k][1]);
        if (*n >= a + b && !memcmp(s, pairs[k][0], a) && !memcmp(s + *n - b, pairs[k][1], b)) {
            memmove(s, s + a, *n - a - b);
            *n -= a + b;
            s[*n] = 0;
            return;
        }
    }
}

char *verbalize_clean_reply(const char *content, int phrase) {
    const char *p = content, *t;
    while ((t = strstr(p, "</think>"))) p = t + 8;
    char *out = malloc(strlen(p) + 1);
    if (!out) return NULL;
    size_t n = 0;
    int space = 0;
    /* whitespace runs -> one space; lines that are code fences are dropped */
    for (const char *q = p; *q;) {
        const char *e = strchr(q, '\n');
        size_t len = e ? (size_t)(e - q) : strlen(q);
        const char *ls = q;
        while (ls < q + len && is_space(*ls)) ls++;
        int fence = q + len - ls >= 3 && !strncmp(ls, "```", 3);
        for (const char *c = q; !fence && c < q + len; c++) {
            if (is_space(*c)) { space = n > 0; continue; }
            if (space) out[n++] = ' ';
            space = 0;
            out[n++] = *c;
        }
        if (n > 0) space = 1;
        q += len + (e ? 1 : 0);
    }
    out[n] = 0;
    size_t before;
    do {   /* "\"a cup.\"" -> "a cup." -> (phrase) "a cup" */
        before = n;
        strip_quotes(out, &n);
        while (n && is_space(out[n - 1])) out[--n] = 0;
        size_t k = 0;
        while (k < n && is_space(out[k])) k++;
        if (k) { memmove(out, out + k, n - k + 1); n -= k; }
        if (phrase && n >= 1 && out[n - 1] == '.' && !(n >= 2 && out[n - 2] == '.')) out[--n] = 0;
    } while (n != before);
    return out;
}
