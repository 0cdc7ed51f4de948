/* Region handling as the paper's loader: which regions the model is given, their
 * renumbering by draw order, the boxes scaled with the resize, and the text with
 * mentions rendered as [k]. Rules: docs/DATA_FORMATS.md, "Region handling". */
#include "data/data.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* splitmix64: one 64-bit state, good enough for coin flips and shuffles. */
static uint32_t rng_below(uint64_t *s, uint32_t n) { return (uint32_t)(((vcm_rng_next(s) >> 32) * n) >> 32); }

/* ---------------------------------------------------------------- text */

typedef struct Buf { char *s; size_t n, cap; int oom; } Buf;

static void put(Buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }

static int find_id(const int *orig, int n, int id) {
    for (int k = 0; k < n; k++)
        if (orig[k] == id) return k;
    return -1;
}

/* The lower case of a two-byte UTF-8 code point (U+0080..U+07FF) when it is one
 * code point in the same range, as Python's str.lower(); else c itself. */
static unsigned lower_cp(unsigned c) {
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7) || (c >= 0x391 && c <= 0x3AB && c != 0x3A2) ||
        (c >= 0x410 && c <= 0x42F))
        return c + 0x20;
    if (c >= 0x400 && c <= 0x40F) return c + 0x50;
    if (c == 0x178) return 0xFF;
    if (c == 0x386) return 0x3AC;
    if (c >= 0x388 && c <= 0x38A) return c + 37;
    if (c == 0x38C) return 0x3CC;
    if (c == 0x38E || c == 0x38F) return c + 63;
    if (c == 0x4C0) return 0x4CF;
    int even_pairs = (c >= 0x100 && c <= 0x137 && c != 0x130) || (c >= 0x14A && c <= 0x177) ||
                     (c >= 0x3D8 && c <= 0x3EF) || (c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) ||
                     (c >= 0x4D0 && c <= 0x52F) || c == 0x370 || c == 0x372 || c == 0x376;
    int odd_pairs = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E) || (c >= 0x4C1 && c <= 0x4CE);
    if ((even_pairs && !(c & 1)) || (odd_pairs && (c & 1))) return c + 1;
    return c;
}

/* Lower-case in place: ASCII and the two-byte UTF-8 capitals (Latin-1, Latin
 * Extended-A, Greek, Cyrillic) whose lower case is again two bytes; anything else,
 * including invalid UTF-8, is left as it is. */
static void lower_utf8(char *p, size_t n) {
    unsigned char *s = (unsigned char *)p;
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') { s[i] = (unsigned char)(s[i] + 32); continue; }
        if (s[i] < 0xC2 || s[i] >= 0xE0 || i + 1 >= n || (s[i + 1] & 0xC0) != 0x80) continue;
        unsigned l = lower_cp(((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu));
        s[i] = (unsigned char)(0xC0 | (l >> 6));
        s[i + 1] = (unsigned char)(0x80 | (l & 0x3F));
        i++;
    }
}

/* Appends s lower-cased, after a space unless b is empty. */
static void put_word(Buf *b, const char *s, size_t len) {
    if (b->n) put(b, " ", 1);
    size_t at = b->n;
    put(b, s, len);
    if (!b->oom) lower_utf8(b->s + at, b->n - at);
}

/* A mention in the text-only baseline: the regions' descriptions, " and " between
 * them ("and" rather than the id form's " , ": the rationales already use " , " between
 * clauses, and a joined pair should read as one noun phrase, as an LLM would be given it). */
static int describe_into(Buf *b, const Word *x, const RegionEntry *e) {
    for (int j = 0; j < x->n_ids; j++) {
        const RegionBox *r = region_entry_box(e, x->ids[j]);
        if (!r)
            return vcm_fail(VCM_EINPUT, "region id %d is not in the mapping of image \"%s\"", x->ids[j], e->image);
        const char *d = r->description;
        size_t len = d ? strlen(d) : 0;
        while (len && (*d == ' ' || *d == '\t')) { d++; len--; }
        while (len && (d[len - 1] == ' ' || d[len - 1] == '\t')) len--;
        if (!len && !e->line)   /* line 0: the record's own "references", which carry none */
            return vcm_fail(VCM_EINPUT,
                            "region %d of image \"%s\" has no description (the record's \"references\" carry "
                            "none); the text-only baseline needs a region mapping with region_descriptions",
                            x->ids[j], e->image);
        if (!len)
            return vcm_fail(VCM_EINPUT,
                            "region %d of image \"%s\" has no description (region_descriptions, line %ld of the "
                            "region mapping); the text-only baseline needs one for every mentioned region",
                            x->ids[j], e->image, e->line);
        if (j) put(b, " and", 4);
        put_word(b, d, len);
    }
    return VCM_OK;
}

/* Appends the words to b; a space before each word but the first one appended.
 * desc: NULL for mentions as [k], else the entry whose descriptions replace them. */
static int render_into(Buf *b, const Words *w, const int *orig, int n_regions, const RegionEntry *desc) {
    for (int i = 0; i < w->n; i++) {
        const Word *x = &w->w[i];
        if (x->text) {
            size_t len = strlen(x->text);
            if (!len) continue;  /* an empty word renders as nothing (no double space) */
            put_word(b, x->text, len);
            if (b->oom) break;
            continue;
        }
        if (desc) {
            int rc = describe_into(b, x, desc);
            if (rc) return rc;
            continue;
        }
        for (int j = 0; j < x->n_ids; j++) {
            int k = find_id(orig, n_regions, x->ids[j]);
            if (k < 0) return vcm_fail(VCM_EINPUT, "region id %d is not among the regions given", x->ids[j]);
            char tok[24];
            snprintf(tok, sizeof tok, "%s[%d]", j ? " , " : (b->n ? " " : ""), k);
            puts_(b, tok);
        }
    }
    return b->oom ? vcm_fail(VCM_ERR, "out of memory") : VCM_OK;
}

static char *render_new(const Words *w, const int *orig_id, int n_regions, const RegionEntry *desc) {
    Buf b = {0};
    put(&b, "", 0);
    if (render_into(&b, w, orig_id, n_regions, desc)) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

char *words_render(const Words *w, const int *orig_id, int n_regions) {
    return render_new(w, orig_id, n_regions, NULL);
}

char *words_describe(const Words *w, const RegionEntry *e) {
    return render_new(w, NULL, 0, e);
}

/* "field: words" appended to b, with a single space between parts. */
static int section(Buf *b, const char *label, const Words *w, const int *orig, int n, const RegionEntry *desc) {
    if (b->n) put(b, " ", 1);
    puts_(b, label);
    return render_into(b, w, orig, n, desc);
}

/* ---------------------------------------------------------------- regions */

typedef struct IdList { int id[VCM_MAX_REGIONS]; int n; int overflow; } IdList;

static void add_id(IdList *l, int id) {
    if (find_id(l->id, l->n, id) >= 0) return;
    if (l->n == VCM_MAX_REGIONS) { l->overflow = 1; return; }
    l->id[l->n++] = id;
}
static void add_mention(const int *ids, int n, void *ctx) {
    for (int i = 0; i < n; i++) add_id(ctx, ids[i]);
}

/* The image's regions as listed: region_all when the record has it, else the mapping's. */
static int n_listed(const Record *r, const RegionEntry *e) { return r->n_region_all >= 0 ? r->n_region_all : e->n_regions; }
static int listed_id(const Record *r, const RegionEntry *e, int i) {
    return r->n_region_all >= 0 ? r->region_all[i] : e->regions[i].id;
}

int example_build(const Record *r, const RegionEntry *e, int img_w, int img_h, int target_w, int target_h,
                  uint64_t *rng, int mode, Example *out) {
    memset(out, 0, sizeof *out);
    if (img_w <= 0 || img_h <= 0 || target_w <= 0 || target_h <= 0)
        return vcm_fail(VCM_ERR, "example: bad image size %dx%d -> %dx%d", img_w, img_h, target_w, target_h);
    /* Referenced regions: order of first mention (question, answer, rationale,
     * choices), then ids of "region" never mentioned. */
    IdList ref = {0};
    record_each_mention(r, add_mention, &ref);
    for (int i = 0; i < r->n_region; i++) add_id(&ref, r->region[i]);
    if (ref.overflow)
        return vcm_fail(VCM_EINPUT, "the record refers to more than %d regions", VCM_MAX_REGIONS);

    IdList use = ref;
    if (mode & EXAMPLE_KEEP_IDS) {
        /* As a user gives them: every region of region_all (else the mapping's),
         * numbered in listed order (then any referenced id it lacks), so [k] in the
         * text is the k-th region. With more than 16, the first others in listed
         * order fill what the referenced ones leave. */
        use.n = 0;
        int need = ref.n; /* referenced ids not yet in use */
        for (int i = 0; i < n_listed(r, e); i++) {
            int id = listed_id(r, e, i);
            const RegionBox *bx = region_entry_box(e, id);
            if (!bx || bx->bad || find_id(use.id, use.n, id) >= 0) continue;
            if (find_id(ref.id, ref.n, id) >= 0) { add_id(&use, id); need--; }
            else if (use.n + need < VCM_MAX_REGIONS) add_id(&use, id);
        }
        for (int i = 0; i < ref.n; i++) add_id(&use, ref.id[i]);
        if (use.overflow)
            return vcm_fail(VCM_EINPUT, "the record shows more than %d regions", VCM_MAX_REGIONS);
    } else if (r->kind == REC_MC) /* an MC item shows the rest of its regions too */
        for (int i = 0; i < r->n_region_all && use.n < VCM_MAX_REGIONS; i++)
            if (find_id(use.id, use.n, r->region_all[i]) < 0 && region_entry_box(e, r->region_all[i]) &&
                !region_entry_box(e, r->region_all[i])->bad)
                use.id[use.n++] = r->region_all[i];
    const RegionEntry *desc = mode & EXAMPLE_DESCRIBE ? e : NULL;
    mode &= ~(EXAMPLE_DESCRIBE | EXAMPLE_KEEP_IDS);
    if (mode == EXAMPLE_TRAIN && (vcm_rng_next(rng) >> 63)) {
        use = ref;
        /* All the image's regions (region_all when given, else the mapping's, minus
         * boxes marked bad), shuffled; with more than 16, the referenced ones plus a
         * random choice of the others. */
        int pool[4096], np = 0;
        for (int i = 0; i < n_listed(r, e) && np < 4096; i++) {
            int id = listed_id(r, e, i);
            const RegionBox *b = region_entry_box(e, id);
            if (!b || b->bad || find_id(ref.id, ref.n, id) >= 0 || find_id(pool, np, id) >= 0) continue;
            pool[np++] = id;
        }
        for (int i = 0; i < np && use.n < VCM_MAX_REGIONS; i++) { /* partial Fisher-Yates */
            int j = i + (int)rng_below(rng, (uint32_t)(np - i));
            int t = pool[i]; pool[i] = pool[j]; pool[j] = t;
            use.id[use.n++] = pool[i];
        }
        for (int i = use.n - 1; i > 0; i--) {
            int j = (int)rng_below(rng, (uint32_t)i + 1);
            int t = use.id[i]; use.id[i] = use.id[j]; use.id[j] = t;
        }
        out->all_regions = 1;
    }

    out->n_regions = use.n;
    ImageScale sc = image_scale(img_w, img_h, target_w, target_h);
    for (int k = 0; k < use.n; k++) {
        const RegionBox *b = region_entry_box(e, use.id[k]);
        if (!b)
            return vcm_fail(VCM_EINPUT, "region id %d is not in the mapping of image \"%s\"", use.id[k], e->image);
        out->orig_id[k] = use.id[k];
        float in[4] = {b->x0, b->y0, b->x1, b->y1}, v[4];
        image_scale_box(sc, in, v);
        float lim[4] = {(float)target_w, (float)target_h, (float)target_w, (float)target_h};
        for (int c = 0; c < 4; c++) out->box[k][c] = v[c] < 0 ? 0 : v[c] > lim[c] ? lim[c] : v[c];
    }

    Buf b = {0};
    int rc;
    if (r->kind == REC_MC) {
        rc = section(&b, "question:", &r->question, out->orig_id, out->n_regions, desc);
        if (!rc && r->prompt_answer) rc = section(&b, "answer:", &r->answer, out->orig_id, out->n_regions, desc);
        const char *pre = r->answer_prefix ? r->answer_prefix : "answer:";
        if (!rc && *pre) put_word(&b, pre, strlen(pre));   /* lower-cased, as the text is */
        if (!rc) rc = b.oom ? vcm_fail(VCM_ERR, "out of memory") : VCM_OK;
        if (!rc && !(out->choices = calloc((size_t)r->n_choices, sizeof *out->choices)))
            rc = vcm_fail(VCM_ERR, "out of memory");
        for (int i = 0; !rc && i < r->n_choices; i++) {
            out->n_choices = i + 1;
            if (!(out->choices[i] = render_new(&r->choices[i], out->orig_id, out->n_regions, desc))) rc = VCM_EINPUT;
        }
    } else {
        rc = section(&b, "question:", &r->question, out->orig_id, out->n_regions, desc);
        if (!rc) rc = section(&b, "answer:", &r->answer, out->orig_id, out->n_regions, desc);
        if (!rc) rc = section(&b, "rationale:", &r->rationale, out->orig_id, out->n_regions, desc);
    }
    out->text = b.s;
    if (rc) {
        example_free(out);
        return rc;
    }
    return VCM_OK;
}

void example_free(Example *ex) {
    free(ex->text);
    for (int i = 0; i < ex->n_choices; i++) free(ex->choices[i]);
    free(ex->choices);
    memset(ex, 0, sizeof *ex);
}
