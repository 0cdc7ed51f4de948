/* An answer for a question about regions of an image, from a checkpoint of vcm train:
 * what `vcm generate --question` does (greedy), in one file, with the installed headers
 * only. Build: cc $(pkg-config --cflags vcm) generate.c $(pkg-config --libs vcm)
 * Run:   ./generate MODEL.vcm IMAGE "what is [0] doing?" x0,y0,x1,y1 [x0,y0,x1,y1 ...] */
#include "tensor/tensor.h"
#include "train/train.h"   /* the student, its tokenizer, images, model_image */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: generate MODEL.vcm IMAGE QUESTION x0,y0,x1,y1 [x0,y0,x1,y1 ...]\n"
    "The boxes are regions [0], [1], ... in the image's pixels; QUESTION mentions them\n"
    "(\"what is [0] doing?\"). Prints the greedy answer and rationale.";

/* The corpus's form of a question: lower case, ? . , ! ; : split from the word before
 * (vcm generate does the same). out holds 2·strlen(q) + 1 bytes. */
static void normalize(const char *q, char *out) {
    size_t o = 0;
    for (; *q; q++) {
        if (strchr(".,?!;:", *q) && o && out[o - 1] != ' ' &&
            (!q[1] || isspace((unsigned char)q[1]) || strchr(".,?!;:", q[1])))
            out[o++] = ' ';
        if (isspace((unsigned char)*q)) { if (o && out[o - 1] != ' ') out[o++] = ' '; }
        else out[o++] = (char)tolower((unsigned char)*q);
    }
    while (o && out[o - 1] == ' ') o--;
    out[o] = 0;
}

/* The highest k of the mentions [k] in s, or -1. */
static int max_mention(const char *s) {
    int best = -1, k;
    for (const char *p = strchr(s, '['); p; p = strchr(p + 1, '['))
        if (bpe_piece(p, strlen(p), &k) && k > best) best = k;
    return best;
}

static int fail(int code, const char *what) {
    fprintf(stderr, "generate: %s: %s\n", what, vcm_error());
    return code;
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) { puts(USAGE); return 0; }
    if (argc < 5) { fprintf(stderr, "%s\n", USAGE); return 2; }
    const char *model_path = argv[1], *image_path = argv[2];
    int n = argc - 4;
    if (n > MODEL_MAX_REGIONS) { fprintf(stderr, "generate: at most %d regions\n", MODEL_MAX_REGIONS); return 2; }
    float boxes[MODEL_MAX_REGIONS][4], mboxes[MODEL_MAX_REGIONS][4];
    for (int k = 0; k < n; k++) {
        char end;
        float *b = boxes[k];
        if (sscanf(argv[4 + k], "%f,%f,%f,%f%c", &b[0], &b[1], &b[2], &b[3], &end) != 4 || b[2] < b[0] || b[3] < b[1]) {
            fprintf(stderr, "generate: region [%d] \"%s\": want x0,y0,x1,y1 with x0 <= x1, y0 <= y1\n", k, argv[4 + k]);
            return 2;
        }
    }
    char *q = malloc(2 * strlen(argv[3]) + 1);
    if (!q) return 1;
    normalize(argv[3], q);
    if (!*q || max_mention(q) >= n) {
        fprintf(stderr, "generate: the question is empty or mentions a region past [%d]\n", n - 1);
        free(q);
        return 2;
    }

    vcm_threads_init(0);   /* VCM_THREADS, else every core */
    Student m;
    Tokenizer tok;
    if (student_load(model_path, &m, NULL)) { free(q); return fail(2, "bad checkpoint"); }
    if (student_tokenizer(&m, model_path, &tok)) { student_free(&m); free(q); return fail(2, "no tokenizer"); }
    const ModelConfig *cfg = &m.cfg;
    int rc = 2;
    Image orig = {0}, small = {0};
    Infer in;
    int have_infer = 0;
    float *chw = NULL;
    int32_t *ids = NULL, *out = NULL;
    char *text = NULL;
    if (cfg->region_input == REGION_INPUT_TEXT) {
        fprintf(stderr, "generate: %s is a text-only model: use vcm generate --description\n", model_path);
        goto done;
    }
    if (image_load(image_path, &orig)) { fail(2, "image"); goto done; }
    for (int k = 0; k < n; k++)
        if (boxes[k][0] < 0 || boxes[k][1] < 0 || boxes[k][2] > (float)orig.w || boxes[k][3] > (float)orig.h) {
            fprintf(stderr, "generate: region [%d] is outside the %dx%d image\n", k, orig.w, orig.h);
            goto done;
        }

    /* The model's input, as training makes it: the image resized to the model's square,
     * the boxes scaled with it. */
    rc = 1;
    if (image_resize(&orig, cfg->image, cfg->image, &small)) { fail(1, "resize"); goto done; }
    ImageScale sc = image_scale(orig.w, orig.h, cfg->image, cfg->image);
    for (int k = 0; k < n; k++) {
        image_scale_box(sc, boxes[k], mboxes[k]);
        for (int c = 0; c < 4; c++)
            mboxes[k][c] = mboxes[k][c] < 0 ? 0 : mboxes[k][c] > (float)cfg->image ? (float)cfg->image : mboxes[k][c];
    }
    size_t plen = strlen(q) + 32, text_cap = 64 * ((size_t)cfg->max_text + 1);   /* a token: <= 64 bytes */
    chw = malloc(sizeof(float) * 3 * (size_t)cfg->image * cfg->image);
    ids = malloc(sizeof(int32_t) * (plen + 1));
    out = malloc(sizeof(int32_t) * ((size_t)cfg->max_text + 1));
    text = malloc(text_cap + 1);
    char *prompt = malloc(plen);
    if (!chw || !ids || !out || !text || !prompt) { free(prompt); fprintf(stderr, "generate: out of memory\n"); goto done; }
    model_image(cfg, small.rgb, (const float(*)[4])mboxes, n, chw);

    /* The prompt as the corpus renders it; the model continues after "answer:". */
    snprintf(prompt, plen, "question: %s answer:", q);
    long np = bpe_encode(&tok, prompt, strlen(prompt), ids + 1, plen);
    free(prompt);
    if (np < 0) { fail(1, "encode"); goto done; }
    ids[0] = BPE_BOS;
    if (np + 1 > cfg->max_text) { fprintf(stderr, "generate: the question is too long for this model\n"); rc = 2; goto done; }
    int nreg = cfg->region_input == REGION_INPUT_ROI ? n : 0;   /* draw/none: the boxes are in the pixels or nowhere */
    Batch b = {1, chw, nreg, &mboxes[0][0], &nreg, (int)np + 1, ids, NULL};
    if (infer_init(&in, &m)) { fail(1, "inference"); goto done; }
    have_infer = 1;
    GenParams gp = {{0, 0, 0}, cfg->max_text, tok.vocab, n};   /* temperature 0: greedy */
    uint64_t rng = 1;
    int n_out;
    double logprob;
    if (infer_prefill(&in, &b) || infer_generate(&in, &gp, &rng, out, cfg->max_text + 1, &n_out, &logprob)) {
        fail(1, "generate");
        goto done;
    }
    long tl = bpe_decode(&tok, out, (size_t)n_out, text, text_cap, 1);
    if (tl < 0) { fail(1, "decode"); goto done; }
    text[(size_t)tl < text_cap ? (size_t)tl : text_cap] = 0;
    char *r = strstr(text, "rationale:");
    if (r) *r = 0;
    printf("question: %s\nanswer:%s\n", q, text);
    if (r) printf("rationale:%s\n", r + 10);
    rc = 0;
done:
    if (have_infer) infer_free(&in);
    free(chw); free(ids); free(out); free(text); free(q);
    image_free(&small);
    image_free(&orig);
    student_free(&m);
    bpe_free(&tok);
    return rc;
}
