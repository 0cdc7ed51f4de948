/* An LLM's reply -> corpus records. LLMs wrap JSON in code fences and prose, leave
 * trailing commas, get cut off by max_tokens, forget fields and invent region ids:
 * find the JSON, repair what is safe to repair, keep the items that are right and
 * count the others by reason. */
#include "distill/distill.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const drop_names[DISTILL_N_DROPS] = {
    "no_json", "bad_json", "not_a_list", "not_an_object", "missing_field", "not_a_string",
    "empty_field", "unknown_region", "no_region", "duplicate", "too_many"};

const char *distill_drop_name(int reason) {
    return reason >= 0 && reason < DISTILL_N_DROPS ? drop_names[reason] : "?";
}

#define MAX_STARTS 256            /* '[' / '{' positions tried in prose ... */
#define MAX_SCAN ((size_t)64 << 20)  /* ... and bytes scanned in all: a pathological reply stays cheap */

/* The span [s, *end) of the balanced value opening at s (string-aware). When the text
 * ends first, *end is the text's end and 0 is returned. */
static int balanced_end(const char *s, const char *lim, const char **end) {
    int depth = 0, in_str = 0;
    for (const char *q = s; q < lim; q++) {
        char c = *q;
        if (in_str) {
            if (c == '\\') q++;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') depth++;
        else if (c == ']' || c == '}') {
            if (--depth == 0) { *end = q + 1; return 1; }
        }
    }
    *end = lim;
    return 0;
}

/* A copy of [s, e) with trailing commas removed and raw control characters inside
 * strings turned into spaces. When the value is cut short (truncated reply) and opens
 * with '[', keep it up to its last complete element and close it. NULL: no memory. */
static char *repair(const char *s, const char *e, int complete, size_t *out_len) {
    size_t n = (size_t)(e - s);
    char *r = malloc(n + 2);
    if (!r) return NULL;
    size_t k = 0, last_elem_end = 0;
    int in_str = 0, depth = 0;
    for (const char *q = s; q < e; q++) {
        char c = *q;
        if (in_str) {
            if (c == '\\' && q + 1 < e) { r[k++] = c; r[k++] = *++q; continue; }
            if (c == '"') in_str = 0;
            r[k++] = (unsigned char)c < 0x20 ? ' ' : c;
            continue;
        }
        if (c == '"') { in_str = 1; r[k++] = c; continue; }
        if (c == ']' || c == '}') {
            /* drop a comma (and the white space after it) right before the closer */
            size_t j = k;
            while (j > 0 && isspace((unsigned char)r[j - 1])) j--;
            if (j > 0 && r[j - 1] == ',') k = j - 1;
            r[k++] = c;
            if (--depth == 1) last_elem_end = k;
            continue;
        }
        if (c == '[' || c == '{') depth++;
        r[k++] = c;
    }
    if (!complete && s[0] == '[') {
        if (!last_elem_end) { free(r); *out_len = 0; return strdup(""); }
        k = last_elem_end;
        r[k++] = ']';
    }
    r[k] = 0;
    *out_len = k;
    return r;
}

/* 1: a list holding at least one object, or an object; 0: some other JSON. */
static int acceptable(const json_t *v) {
    if (json_is_object(v)) return 1;
    if (!json_is_array(v)) return 0;
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) if (json_is_object(x)) return 1;
    return 0;
}

/* Could a value open here? '{', or '[' followed by '{', '[' or '"': so that the
 * mentions in prose ("[0] is a dog") are not taken for JSON. */
static int opens_structure(const char *q, const char *e) {
    if (*q == '{') return 1;
    if (*q != '[') return 0;
    for (q++; q < e && isspace((unsigned char)*q); q++) {}
    return q < e && (*q == '{' || *q == '[' || *q == '"');
}

/* Each value opening in [s, e), in order, until one parses as a list holding an object
 * or as an object. Returns 1 (*out set), 0 (none), -1 (out of memory). *parsed_any /
 * *saw_open record what was seen, for the drop reason; *scan_left bounds the work. */
static int try_span(const char *s, const char *e, json_t **out, int *parsed_any, int *saw_open,
                    size_t *scan_left) {
    int starts = 0;
    for (const char *q = s; q < e && starts < MAX_STARTS; q++) {
        if (!opens_structure(q, e)) continue;
        *saw_open = 1;
        starts++;
        const char *end;
        int complete = balanced_end(q, e, &end);
        size_t cost = 2 * (size_t)(end - q);   /* the scan, then the repair and the parse */
        if (cost > *scan_left) return 0;
        *scan_left -= cost;
        size_t len;
        char *r = repair(q, end, complete, &len);
        if (!r) return -1;
        json_t *v = len ? json_loadb(r, len, JSON_DECODE_ANY, NULL) : NULL;
        free(r);
        if (!v) continue;
        *parsed_any = 1;
        if (acceptable(v)) { *out = v; return 1; }
        json_decref(v);
        if (complete) q = end - 1;   /* a whole non-acceptable value: skip past it */
    }
    return 0;
}

int distill_extract_json(const char *content, json_t **out) {
    *out = NULL;
    if (!content) return DISTILL_DROP_NO_JSON;
    /* reasoning models think aloud first, brackets and all: only the answer counts */
    for (const char *t; (t = strstr(content, "</think>"));) content = t + 8;
    const char *end = content + strlen(content);
    int parsed_any = 0, saw_open = 0;
    size_t scan_left = MAX_SCAN;
    /* 1. the whole content is JSON (maybe a scalar: that is "not a list") */
    {
        const char *a = content, *b = end;
        while (a < b && isspace((unsigned char)*a)) a++;
        while (b > a && isspace((unsigned char)b[-1])) b--;
        if (a < b && *a != '`') {
            json_t *v = json_loadb(a, (size_t)(b - a), JSON_DECODE_ANY, NULL);
            if (v) {
                if (acceptable(v)) { *out = v; return -1; }
                parsed_any = 1;
                json_decref(v);
            }
        }
    }
    /* 2. each ``` fenced block (an info string like "json" after the fence is skipped) */
    for (const char *f = strstr(content, "```"); f;) {
        const char *body = f + 3;
        const char *nl = strchr(body, '\n');
        const char *close = strstr(body, "```");
        if (nl && (!close || nl < close)) body = nl + 1;
        const char *bend = close ? close : end;
        int r = try_span(body, bend, out, &parsed_any, &saw_open, &scan_left);
        if (r < 0) return DISTILL_DROP_BAD_JSON;   /* out of memory: count it as unusable */
        if (r) return -1;
        f = close ? strstr(close + 3, "```") : NULL;
    }
    /* 3. anywhere in the prose */
    int r = try_span(content, end, out, &parsed_any, &saw_open, &scan_left);
    if (r > 0) return -1;
    if (parsed_any) return DISTILL_DROP_NOT_A_LIST;
    return saw_open ? DISTILL_DROP_BAD_JSON : DISTILL_DROP_NO_JSON;
}

/* The list of items in an accepted value: the list itself, a lone item, or the first
 * member of an object that is a list ({"items": [...]}). New reference or NULL. */
static json_t *items_of(json_t *v) {
    if (json_is_array(v)) return json_incref(v);
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) {
        if (!strcasecmp(k, "question") || !strcasecmp(k, "answer") || !strcasecmp(k, "rationale")) {
            json_t *a = json_array();
            if (a) json_array_append(a, v);
            return a;
        }
    }
    json_object_foreach(v, k, x) if (json_is_array(x)) return json_incref(x);
    return NULL;
}

static json_t *field(json_t *item, const char *name) {
    const char *k;
    json_t *x;
    json_object_foreach(item, k, x) if (!strcasecmp(k, name)) return x;
    return NULL;
}

static int blank(const char *s) {
    for (; *s; s++) if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

/* Add the ids of the mentions in words to the set ids[0..*n) (sorted, unique);
 * returns the first id the image has no region for, or -1. */
static int collect_ids(const json_t *words, const RegionEntry *e, int *ids, int *n, int cap) {
    size_t i, j;
    json_t *w, *id;
    int bad = -1;
    json_array_foreach(words, i, w) {
        if (!json_is_array(w)) continue;
        json_array_foreach(w, j, id) {
            int v = (int)json_integer_value(id);
            if (!region_entry_box(e, v)) { if (bad < 0) bad = v; continue; }
            int p = 0;
            while (p < *n && ids[p] < v) p++;
            if (p < *n && ids[p] == v) continue;
            if (*n == cap) continue;
            memmove(ids + p + 1, ids + p, (size_t)(*n - p) * sizeof *ids);
            ids[p] = v;
            (*n)++;
        }
    }
    return bad;
}

/* Question and answer with white space collapsed, lower-cased: the duplicate key. */
static char *dup_key(const char *q, const char *a) {
    size_t n = strlen(q) + strlen(a) + 2;
    char *k = malloc(n), *o = k;
    if (!k) return NULL;
    const char *parts[2] = {q, a};
    for (int p = 0; p < 2; p++) {
        int sp = 0;
        for (const char *s = parts[p]; *s; s++) {
            if (isspace((unsigned char)*s)) { sp = 1; continue; }
            if (sp && o > k && o[-1] != '\x1f') *o++ = ' ';
            sp = 0;
            *o++ = (char)tolower((unsigned char)*s);
        }
        *o++ = '\x1f';
    }
    o[-1] = 0;
    return k;
}

int distill_parse_reply(const char *content, const RegionEntry *e, long ordinal,
                        const char *source, json_t *records, long drops[DISTILL_N_DROPS]) {
    json_t *v;
    int why = distill_extract_json(content, &v);
    if (why >= 0) { drops[why]++; return 0; }
    json_t *items = items_of(v);
    json_decref(v);
    if (!items) { drops[DISTILL_DROP_NOT_A_LIST]++; return 0; }

    static const char *const names[3] = {"question", "answer", "rationale"};
    int kept = 0, oom = 0;
    char **keys = NULL;
    size_t n_items = json_array_size(items);
    if (n_items) keys = calloc(n_items, sizeof *keys);
    if (n_items && !keys) { json_decref(items); return -1; }
    json_t *region_all = json_array();
    if (!region_all) oom = 1;
    for (int r = 0; r < e->n_regions && !oom; r++)
        if (json_array_append_new(region_all, json_integer(e->regions[r].id))) oom = 1;

    for (size_t i = 0; i < n_items && !oom; i++) {
        json_t *it = json_array_get(items, i);
        if (!json_is_object(it)) { drops[DISTILL_DROP_NOT_AN_OBJECT]++; continue; }
        const char *text[3];
        int why_item = -1;
        for (int f = 0; f < 3 && why_item < 0; f++) {
            json_t *x = field(it, names[f]);
            if (!x || json_is_null(x)) why_item = DISTILL_DROP_MISSING_FIELD;
            else if (!json_is_string(x)) why_item = DISTILL_DROP_NOT_A_STRING;
            else if (blank(text[f] = json_string_value(x))) why_item = DISTILL_DROP_EMPTY_FIELD;
        }
        if (why_item >= 0) { drops[why_item]++; continue; }
        json_t *words[3] = {NULL, NULL, NULL};
        int ids[64], n_ids = 0, bad = -1;
        for (int f = 0; f < 3; f++) {
            if (!(words[f] = distill_words(text[f]))) { oom = 1; break; }
            int b = collect_ids(words[f], e, ids, &n_ids, 64);
            if (bad < 0) bad = b;
        }
        if (oom) why_item = -2;
        else if (bad >= 0) why_item = DISTILL_DROP_UNKNOWN_REGION;
        else if (n_ids == 0) why_item = DISTILL_DROP_NO_REGION;
        else if (kept >= DISTILL_MAX_PER_IMAGE) why_item = DISTILL_DROP_TOO_MANY;
        else {
            char *k = dup_key(text[0], text[1]);
            if (!k) { oom = 1; why_item = -2; }
            else {
                for (int j = 0; j < kept && why_item < 0; j++)
                    if (!strcmp(keys[j], k)) why_item = DISTILL_DROP_DUPLICATE;
                if (why_item < 0) keys[kept] = k; else free(k);
            }
        }
        if (why_item != -1) {
            if (why_item >= 0) drops[why_item]++;
            for (int f = 0; f < 3; f++) json_decref(words[f]);
            continue;
        }
        char index[600];
        snprintf(index, sizeof index, "%s-%ld", source, ordinal * DISTILL_MAX_PER_IMAGE + kept);
        json_t *rec = json_object(), *region = json_array();
        int fail = !rec || !region;
        for (int j = 0; j < n_ids && !fail; j++)
            fail = json_array_append_new(region, json_integer(ids[j]));
        if (!fail)
            fail = json_object_set_new(rec, "image", json_string(e->image)) ||
                   json_object_set_new(rec, "source", json_string(source)) ||
                   json_object_set_new(rec, "split", json_string("train")) ||
                   json_object_set_new(rec, "index", json_string(index)) ||
                   json_object_set(rec, "region", region) ||
                   json_object_set(rec, "region_all", region_all) ||
                   json_object_set(rec, "question", words[0]) ||
                   json_object_set(rec, "answer", words[1]) ||
                   json_object_set(rec, "rationale", words[2]) ||
                   json_array_append(records, rec);
        json_decref(region);
        json_decref(rec);
        for (int f = 0; f < 3; f++) json_decref(words[f]);
        if (fail) { oom = 1; free(keys[kept]); keys[kept] = NULL; break; }
        kept++;
    }
    for (int j = 0; j < kept; j++) free(keys[j]);
    free(keys);
    json_decref(region_all);
    json_decref(items);
    return oom ? -1 : kept;
}
