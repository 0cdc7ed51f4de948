/* The prompt template: parse the directive lines, check the placeholders, render one
 * image's messages. Format: distill/distill.h and docs/DISTILL.md. */
#include "distill/distill.h"
#include "tensor/tensor.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const placeholders[] = {"global", "regions", "ids", "n_regions",
                                           "per_image", "image"};
#define N_PLACEHOLDERS ((int)(sizeof placeholders / sizeof placeholders[0]))

/* Index of the placeholder "{{name}}" starting at s, or -1. *len gets its length. */
static int placeholder_at(const char *s, const char *end, size_t *len) {
    if (end - s < 4 || s[0] != '{' || s[1] != '{') return -1;
    for (int k = 0; k < N_PLACEHOLDERS; k++) {
        size_t n = strlen(placeholders[k]);
        if ((size_t)(end - s) >= n + 4 && !strncmp(s + 2, placeholders[k], n) &&
            s[2 + n] == '}' && s[3 + n] == '}') {
            *len = n + 4;
            return k;
        }
    }
    return -1;
}

/* Every "{{" in a line must open a known placeholder. Returns the column (1-based)
 * of the first bad one, or 0. */
static int check_line_placeholders(const char *s, const char *end) {
    for (const char *q = s; q + 1 < end; q++) {
        if (q[0] != '{' || q[1] != '{') continue;
        size_t len;
        if (placeholder_at(q, end, &len) < 0) return (int)(q - s) + 1;
        q += len - 1;
    }
    return 0;
}

/* Strip leading and trailing blank lines; NULL when nothing is left. */
static char *finish_part(char *buf, size_t len) {
    size_t a = 0;
    for (;;) {   /* drop whole leading lines made of white space only */
        size_t b = a;
        while (b < len && (buf[b] == ' ' || buf[b] == '\t' || buf[b] == '\r')) b++;
        if (b < len && buf[b] == '\n') a = b + 1;
        else break;
    }
    while (len > a && isspace((unsigned char)buf[len - 1])) len--;
    if (len == a) { free(buf); return NULL; }
    memmove(buf, buf + a, len - a);
    buf[len - a] = 0;
    return buf;
}

void distill_prompt_free(DistillPrompt *p) {
    free(p->name);
    free(p->version);
    free(p->system);
    free(p->user);
    memset(p, 0, sizeof *p);
}

int distill_prompt_parse(const char *text, size_t len, const char *name, DistillPrompt *p) {
    memset(p, 0, sizeof *p);
    char *part[2] = {NULL, NULL};      /* 0 system, 1 user */
    size_t part_len[2] = {0, 0};
    FILE *out[2];
    out[0] = open_memstream(&part[0], &part_len[0]);
    out[1] = open_memstream(&part[1], &part_len[1]);
    int rc = VCM_OK, cur = 1;
    if (!out[0] || !out[1]) { rc = vcm_fail(VCM_ERR, "%s: out of memory", name); goto done; }
    if (memchr(text, 0, len)) { rc = vcm_fail(VCM_EINPUT, "%s: contains a NUL byte", name); goto done; }
    long line = 0;
    for (const char *s = text; s < text + len;) {
        const char *e = memchr(s, '\n', (size_t)(text + len - s));
        const char *next = e ? e + 1 : text + len;
        if (!e) e = text + len;
        const char *le = e > s && e[-1] == '\r' ? e - 1 : e;
        line++;
        if (s < le && s[0] == '@' && !(le - s >= 2 && s[1] == '@')) {
            const char *d = s + 1;
            size_t dl = (size_t)(le - d);
            if (dl >= 1 && d[0] == '#') {
                /* comment */
            } else if (dl == 6 && !strncmp(d, "system", 6)) {
                cur = 0;
            } else if (dl == 4 && !strncmp(d, "user", 4)) {
                cur = 1;
            } else if (dl > 8 && !strncmp(d, "version ", 8)) {
                const char *v = d + 8, *ve = le;
                while (v < ve && (*v == ' ' || *v == '\t')) v++;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
                if (p->version) { rc = vcm_fail(VCM_EINPUT, "%s:%ld:1: a second @version", name, line); goto done; }
                if (ve == v || ve - v > 64) { rc = vcm_fail(VCM_EINPUT, "%s:%ld:10: @version wants a name of 1 to 64 characters", name, line); goto done; }
                for (const char *c = v; c < ve; c++)
                    if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-') {
                        rc = vcm_fail(VCM_EINPUT, "%s:%ld:%ld: @version: '%c' is not a letter, digit, '.', '_' or '-'",
                                      name, line, (long)(c - s) + 1, *c);
                        goto done;
                    }
                p->version = strndup(v, (size_t)(ve - v));
                if (!p->version) { rc = vcm_fail(VCM_ERR, "out of memory"); goto done; }
            } else {
                rc = vcm_fail(VCM_EINPUT, "%s:%ld:1: unknown directive \"%.*s\" (known: @version NAME, @system, @user, @# comment; write @@ for a literal @)",
                              name, line, (int)(le - s > 40 ? 40 : le - s), s);
                goto done;
            }
        } else {
            const char *t = s < le && s[0] == '@' ? s + 1 : s;   /* "@@x" -> "@x" */
            int col = check_line_placeholders(t, le);
            if (col) {
                rc = vcm_fail(VCM_EINPUT, "%s:%ld:%ld: unknown placeholder (known: {{global}} {{regions}} {{ids}} {{n_regions}} {{per_image}} {{image}})",
                              name, line, (long)(t - s) + col);
                goto done;
            }
            fwrite(t, 1, (size_t)(le - t), out[cur]);
            fputc('\n', out[cur]);
        }
        s = next;
    }
done:
    for (int i = 0; i < 2; i++)
        if (out[i] && fclose(out[i]) && rc == VCM_OK) rc = vcm_fail(VCM_ERR, "%s: out of memory", name);
    if (rc != VCM_OK) {
        free(part[0]); free(part[1]);
        distill_prompt_free(p);
        return rc;
    }
    p->system = finish_part(part[0], part_len[0]);
    p->user = finish_part(part[1], part_len[1]);
    p->name = strdup(name);
    if (!p->version) {
        char v[32];
        snprintf(v, sizeof v, "custom-%08lx", crc32(0L, (const Bytef *)text, (uInt)len));
        p->version = strdup(v);
    }
    if (!p->name || !p->version) { distill_prompt_free(p); return vcm_fail(VCM_ERR, "out of memory"); }
    if (!p->user) {
        distill_prompt_free(p);
        return vcm_fail(VCM_EINPUT, "%s: the template has no user message", name);
    }
    return VCM_OK;
}

int distill_prompt_load(const char *path, DistillPrompt *p) {
    if (!path) {
        const char *t = distill_prompt_builtin();
        return distill_prompt_parse(t, strlen(t), "(built-in distill/prompt_v1.txt)", p);
    }
    FILE *f = fopen(path, "rb");
    if (!f) return vcm_fail(VCM_EINPUT, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            if (cap > ((size_t)1 << 24)) { fclose(f); free(buf); return vcm_fail(VCM_EINPUT, "%s: larger than 16 MiB", path); }
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) { fclose(f); free(buf); return vcm_fail(VCM_ERR, "out of memory"); }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return vcm_fail(VCM_EINPUT, "%s: read error", path); }
    int rc = distill_prompt_parse(buf, n, path, p);
    free(buf);
    return rc;
}

/* The text a placeholder stands for, written to f. */
static void put_placeholder(FILE *f, int k, const RegionEntry *e, int per_image) {
    switch (k) {
    case 0: {   /* global */
        int any = 0;
        for (int i = 0; i < e->n_global; i++) {
            const char *g = e->global[i];
            if (!g) continue;
            while (isspace((unsigned char)*g)) g++;
            size_t n = strlen(g);
            while (n && isspace((unsigned char)g[n - 1])) n--;
            if (!n) continue;
            fprintf(f, "%s%.*s", any ? " " : "", (int)n, g);
            any = 1;
        }
        if (!any) fputs("(no description)", f);
        break;
    }
    case 1:     /* regions */
        for (int i = 0; i < e->n_regions; i++) {
            const RegionBox *b = &e->regions[i];
            const char *d = b->description && *b->description ? b->description
                          : b->obj_guess && *b->obj_guess ? b->obj_guess : "(no description)";
            fprintf(f, "%s[%d]: %s", i ? "\n" : "", b->id, d);
        }
        break;
    case 2:     /* ids */
        for (int i = 0; i < e->n_regions; i++) fprintf(f, "%s[%d]", i ? ", " : "", e->regions[i].id);
        break;
    case 3: fprintf(f, "%d", e->n_regions); break;
    case 4: fprintf(f, "%d", per_image); break;
    case 5: fputs(e->image ? e->image : "", f); break;
    }
}

static int render_part(const char *t, const RegionEntry *e, int per_image, char **out) {
    *out = NULL;
    if (!t) return VCM_OK;
    size_t n = 0;
    FILE *f = open_memstream(out, &n);
    if (!f) return vcm_fail(VCM_ERR, "out of memory");
    const char *end = t + strlen(t);
    for (const char *s = t; s < end;) {
        size_t len;
        int k = placeholder_at(s, end, &len);
        if (k >= 0) { put_placeholder(f, k, e, per_image); s += len; }
        else fputc(*s++, f);
    }
    if (fclose(f)) { free(*out); *out = NULL; return vcm_fail(VCM_ERR, "out of memory"); }
    return VCM_OK;
}

int distill_prompt_render(const DistillPrompt *p, const RegionEntry *e, int per_image,
                          char **system, char **user) {
    *system = *user = NULL;
    if (render_part(p->system, e, per_image, system)) return VCM_ERR;
    if (render_part(p->user, e, per_image, user)) { free(*system); *system = NULL; return VCM_ERR; }
    return VCM_OK;
}
