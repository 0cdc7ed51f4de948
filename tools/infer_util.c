/* What vcm generate, score and eval share: model + tokenizer loading, --region boxes,
 * the model's image input, the question's normal form, the text's parts, JSON strings. */
#include "tools/infer_util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int infer_load(const char *cmd, const char *model_path, const char *tok_path, Student *m, Tokenizer *tok) {
    memset(m, 0, sizeof *m);
    memset(tok, 0, sizeof *tok);
    if (student_load(model_path, m, NULL)) return tool_error(cmd, 2, "bad checkpoint: %s", vcm_error());
    /* --tokenizer overrides the one saved in the checkpoint */
    if (tok_path ? bpe_load(tok_path, tok) : student_tokenizer(m, model_path, tok)) {
        student_free(m);
        return tool_error(cmd, 2, "%s", vcm_error());
    }
    if (!tok_path) tok_path = model_path;
    if (tok->vocab > m->cfg.vocab) {
        int tv = tok->vocab, mv = m->cfg.vocab;
        infer_unload(m, tok);
        return tool_error(cmd, 2, "%s has %d ids but the model %s only %d: not its tokenizer", tok_path, tv,
                          model_path, mv);
    }
    return 0;
}

void infer_unload(Student *m, Tokenizer *tok) {
    student_free(m);
    bpe_free(tok);
}

int infer_parse_regions(const char *cmd, const FlagList *l, float (*boxes)[4], int *n) {
    if (l->n > MODEL_MAX_REGIONS)
        return tool_error(cmd, 2, "%d --region flags: at most %d regions", l->n, MODEL_MAX_REGIONS);
    for (int k = 0; k < l->n; k++) {
        const char *s = l->v[k];
        char *end = (char *)s;
        for (int c = 0; c < 4; c++) {
            errno = 0;
            const char *at = end;
            double v = strtod(at, &end);
            if (errno || end == at || !isfinite(v) || (c < 3 && *end != ',') || (c == 3 && *end))
                return tool_error(cmd, 2, "--region %d (\"%s\"): want x0,y0,x1,y1 in image pixels", k + 1, s);
            boxes[k][c] = (float)v;
            if (c < 3) end++;
        }
    }
    *n = l->n;
    return 0;
}

int infer_check_regions(const char *cmd, const FlagList *l, const float (*boxes)[4], int n, int w, int h) {
    for (int k = 0; k < n; k++) {
        const float *b = boxes[k];
        if (b[2] < b[0] || b[3] < b[1])
            return tool_error(cmd, 2, "--region %d (\"%s\"): %s", k + 1, l->v[k], b[2] < b[0] ? "x1 < x0" : "y1 < y0");
        if (b[0] < 0 || b[1] < 0 || b[2] > (float)w || b[3] > (float)h)
            return tool_error(cmd, 2, "--region %d (\"%s\"): outside the %dx%d image", k + 1, l->v[k], w, h);
    }
    return 0;
}

int infer_image_input(const ModelConfig *cfg, const Image *orig, const float (*boxes)[4], int n,
                      float *chw, float (*mboxes)[4]) {
    Image small;
    int rc = image_resize(orig, cfg->image, cfg->image, &small);
    if (rc) return rc;
    ImageScale sc = image_scale(orig->w, orig->h, cfg->image, cfg->image);
    float lim = (float)cfg->image;
    for (int k = 0; k < n; k++) {
        image_scale_box(sc, boxes[k], mboxes[k]);
        for (int c = 0; c < 4; c++) mboxes[k][c] = mboxes[k][c] < 0 ? 0 : mboxes[k][c] > lim ? lim : mboxes[k][c];
    }
    model_image(cfg, small.rgb, (const float(*)[4])mboxes, n, chw);
    image_free(&small);
    return VCM_OK;
}

int infer_session_open(InferSession *s, const char *cmd, const char *model, const char *tok_path, const char *image,
                       const FlagList *regions, const FlagList *descs, int threads) {
    memset(s, 0, sizeof *s);
    s->cmd = cmd;
    int rc = infer_parse_regions(cmd, regions, s->boxes, &s->n);
    if (rc) return rc;
    vcm_threads_init(threads);
    if ((rc = infer_load(cmd, model, tok_path, &s->m, &s->tok))) return rc;
    s->loaded = 1;
    const ModelConfig *cfg = &s->m.cfg;
    s->text_only = cfg->region_input == REGION_INPUT_TEXT;
    if (s->text_only) s->n = descs->n;   /* the regions are their descriptions; no pixel is read */
    else if (descs->n)
        return tool_error(cmd, 2, "--description is for a text-only model (this one reads %s)",
                          region_input_name(cfg->region_input));
    if (!s->text_only && !image) return tool_error(cmd, 2, "--image is required");
    if (!(s->chw = calloc(3 * (size_t)cfg->image * cfg->image, sizeof(float)))) return tool_error(cmd, 1, "out of memory");
    return 0;
}

int infer_session_check_mentions(const InferSession *s, const char *flag, const char *text) {
    int k = infer_max_mention(text);
    if (k < s->n) return 0;
    return tool_error(s->cmd, 2, "%s mentions [%d] but %d %s%s given", flag, k, s->n,
                      s->text_only ? "description" : "region", s->n == 1 ? " was" : "s were");
}

int infer_session_image(InferSession *s, const char *image, const FlagList *regions) {
    if (s->text_only) return 0;
    if (image_load(image, &s->orig)) return tool_error(s->cmd, 2, "%s", vcm_error());
    int rc = infer_check_regions(s->cmd, regions, (const float(*)[4])s->boxes, s->n, s->orig.w, s->orig.h);
    if (rc) return rc;
    if (infer_image_input(&s->m.cfg, &s->orig, (const float(*)[4])s->boxes, s->n, s->chw, s->mboxes))
        return tool_error(s->cmd, 1, "%s", vcm_error());
    return 0;
}

Batch infer_session_batch(const InferSession *s, int32_t *tokens, int32_t *targets, int T, int *n_regions) {
    int nreg = s->m.cfg.region_input == REGION_INPUT_ROI ? s->n : 0;
    n_regions[0] = nreg;
    return (Batch){1, s->chw, nreg, (float *)&s->mboxes[0][0], n_regions, T, tokens, targets};
}

void infer_session_close(InferSession *s) {
    if (s->loaded) infer_unload(&s->m, &s->tok);
    image_free(&s->orig);
    free(s->chw);
    memset(s, 0, sizeof *s);
}


char *infer_normalize_question(const char *q) {
    size_t n = strlen(q);
    char *out = malloc(2 * n + 1);
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)q[i];
        if (isspace(ch)) {
            if (o && out[o - 1] != ' ') out[o++] = ' ';
            continue;
        }
        /* punctuation that ends a word becomes its own word, as in the corpus */
        if (strchr(".,?!;:", ch) && ch && o && out[o - 1] != ' ' &&
            (i + 1 == n || isspace((unsigned char)q[i + 1]) || strchr(".,?!;:", q[i + 1])))
            out[o++] = ' ';
        out[o++] = (char)tolower(ch);
    }
    while (o && out[o - 1] == ' ') o--;
    out[o] = 0;
    return out;
}

int infer_max_mention(const char *s) {
    int best = -1;
    for (const char *p = strchr(s, '['); p; p = strchr(p + 1, '[')) {
        int k = -1;
        size_t len = strlen(p);
        bpe_piece(p, len, &k);
        /* "[16]" and up are no region of any model (the tokenizer has [0]..[15]) and
         * would pass as plain text: count them, so that the caller refuses them. */
        if (k < 0 && p[1] >= '1' && p[1] <= '9') {
            long v = 0;
            const char *q = p + 1;
            while (*q >= '0' && *q <= '9' && v < 100000000) v = v * 10 + (*q++ - '0');
            if (*q == ']') k = (int)v;
        }
        if (k > best) best = k;
    }
    return best;
}

char *infer_describe_mentions(const char *s, const FlagList *desc, int *bad) {
    size_t n = strlen(s), cap = n + 1;
    for (int k = 0; k < desc->n; k++) cap += strlen(desc->v[k]) * (n / 3 + 1);   /* each [k] is >= 3 bytes */
    cap += 2 * (n / 3 + 1);   /* " , " → " and " */
    char *out = malloc(cap);
    *bad = -1;
    if (!out) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int k = -1;
        size_t len = s[i] == '[' ? bpe_piece(s + i, n - i, &k) : 0;
        if (k < 0) { out[o++] = s[i++]; continue; }
        const char *d = k < desc->n ? desc->v[k] : "";
        size_t dl = strlen(d);
        while (dl && isspace((unsigned char)*d)) { d++; dl--; }
        while (dl && isspace((unsigned char)d[dl - 1])) dl--;
        if (!dl) { free(out); *bad = k; return NULL; }
        for (size_t j = 0; j < dl; j++) out[o++] = (char)tolower((unsigned char)d[j]);
        i += len;
        /* "[0] , [1]" is one mention of two regions: joined with "and", as training
         * renders it (data/example.c describe_into). */
        int k2 = -1;
        if (!strncmp(s + i, " , [", 4)) bpe_piece(s + i + 3, n - i - 3, &k2);
        if (k2 >= 0) {
            memcpy(out + o, " and ", 5);
            o += 5;
            i += 3;
        }
    }
    out[o] = 0;
    return out;
}

static void trimmed(const char *s, size_t n, const char **out, size_t *on) {
    while (n && isspace((unsigned char)*s)) { s++; n--; }
    while (n && isspace((unsigned char)s[n - 1])) n--;
    *out = s;
    *on = n;
}

void infer_split_text(const char *text, QarParts *p) {
    memset(p, 0, sizeof *p);
    const char *q = strstr(text, "question:");
    const char *a = strstr(q ? q : text, "answer:");
    const char *r = strstr(a ? a : q ? q : text, "rationale:");
    const char *end = text + strlen(text);
    if (q) trimmed(q + 9, (size_t)((a ? a : r ? r : end) - (q + 9)), &p->q, &p->qn);
    if (a) trimmed(a + 7, (size_t)((r ? r : end) - (a + 7)), &p->a, &p->an);
    if (r) trimmed(r + 10, (size_t)(end - (r + 10)), &p->r, &p->rn);
}

