/* vcm generate: questions, answers and rationales for regions of any image, sampled
 * with the KV cache (docs/INFERENCE.md). */
#include "tools/infer_util.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: vcm generate --model M.vcm [--tokenizer T.tok] --image IMG --region x0,y0,x1,y1 [--region ...]\n"
    "                    [--question \"what is [0] doing?\"] [--samples N] [--temperature T] [--top-k K]\n"
    "                    [--top-p P] [--seed S] [--max-tokens N] [--draw OUT.png]\n"
    "\n"
    "Boxes are in the pixels of the original image; the regions are [0], [1], ... in the order\n"
    "given. Without --question the model writes the question too. One JSON line per sample on\n"
    "stdout: {\"sample\", \"question\", \"answer\", \"rationale\", \"logprob\", \"tokens\", \"text\"}.\n"
    "A text-only model (trained with --region-input text) reads no image: give each region as\n"
    "--description \"a red cup\" instead ([0], [1], ... in the order given); every [k] of the\n"
    "question is replaced by its description, and --image and --region are not needed.";


static void put_part(const char *name, const char *s, size_t n) {
    printf(",\"%s\":", name);
    if (s) vcm_json_put_string(stdout, s, n);
    else fputs("null", stdout);
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *tok_path = NULL, *image = NULL, *question = NULL, *draw = NULL;
    FlagList regions = {0}, descs = {0};
    int samples = 1, top_k = 0, seed = 1, max_tokens = 0, threads = 0, timing = 0;
    float temperature = 0.7f, top_p = 0.9f;
    Flag flags[] = {
        {"model", 's', &model, "checkpoint from vcm train (required)"},
        {"tokenizer", 's', &tok_path, "a tokenizer other than the one saved in the checkpoint"},
        {"image", 's', &image, "any JPEG/PNG/BMP/GIF/TGA (needed unless the model is text-only)"},
        {"region", 'L', &regions, "x0,y0,x1,y1 in image pixels; repeat for [1], [2], ..."},
        {"question", 's', &question, "ask this (mentions [k]); default: the model writes the question"},
        {"samples", 'i', &samples, "samples to draw (default 1) [1..100000]"},
        {"temperature", 'f', &temperature, "softmax temperature; 0 = greedy (default 0.7) [0..100]"},
        {"top-k", 'i', &top_k, "keep the k most likely tokens; 0 = all (default 0) [0..]"},
        {"top-p", 'f', &top_p, "nucleus: smallest set with this mass; 0 or 1 = all (default 0.9) [0..1]"},
        {"seed", 'i', &seed, "sample i uses a generator seeded from (seed, i) (default 1) [0..]"},
        {"max-tokens", 'i', &max_tokens, "new tokens per sample at most (default: the model's text length) [0..]"},
        {"draw", 's', &draw, "also write the image with the numbered boxes to this PNG"},
        {"description", 'L', &descs, "text-only model: region [k]'s literal description; repeat for [1], ..."},
        {"threads", 'i', &threads, "threads (default VCM_THREADS or all cores) [0..1024]"},
        {"timing", 'b', &timing, "print prefill time and tokens/s on stderr"},
        {0}};
    int rc = flags_parse(USAGE, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    InferSession ss;
    char *q = NULL;
    if ((rc = infer_session_open(&ss, "generate", model, tok_path, image, &regions, &descs, threads))) goto done0;
    const ModelConfig *cfg = &ss.m.cfg;
    const int text_only = ss.text_only, n = ss.n;
    if (question) {
        if (!(q = infer_normalize_question(question))) { rc = tool_error("generate", 1, "out of memory"); goto done0; }
        if (!*q) { rc = tool_error("generate", 2, "--question is empty"); goto done0; }
        if ((rc = infer_session_check_mentions(&ss, "--question", q))) goto done0;
        if (text_only) {   /* the referring expressions instead of the ids, then the corpus form again */
            int bad;
            char *d = infer_describe_mentions(q, &descs, &bad), *dq = d ? infer_normalize_question(d) : NULL;
            free(d);
            free(q);
            q = dq;
            if (!q) {
                rc = bad >= 0 ? tool_error("generate", 2, "--description %d is empty", bad + 1) : tool_error("generate", 1, "out of memory");
                goto done0;
            }
        }
    }
    if ((rc = infer_session_image(&ss, image, &regions))) goto done0;

    /* The prompt: the question's words when given, else the model asks too. */
    size_t plen = (q ? strlen(q) : 0) + 32;
    char *prompt = malloc(plen);
    int32_t *ids = malloc(sizeof(int32_t) * (plen + 2));
    int32_t *out = malloc(sizeof(int32_t) * ((size_t)cfg->max_text + 1));
    size_t text_cap = 64 * ((size_t)cfg->max_text + 1) + plen;   /* a token is at most one 64-byte piece */
    char *text = malloc(text_cap);
    Infer in;
    int have_infer = 0;
    if (!prompt || !ids || !out || !text) { rc = tool_error("generate", 1, "out of memory"); goto done; }
    if (q) snprintf(prompt, plen, "question: %s answer:", q);
    else snprintf(prompt, plen, "question:");

    if (draw && text_only) { rc = tool_error("generate", 2, "--draw: a text-only model has no image"); goto done; }
    if (draw) {
        Image copy;
        const Image *orig = &ss.orig;
        if (image_alloc(&copy, orig->w, orig->h)) { rc = tool_error("generate", 1, "%s", vcm_error()); goto done; }
        memcpy(copy.rgb, orig->rgb, 3 * (size_t)orig->w * orig->h);
        DrawBox db[MODEL_MAX_REGIONS];
        const float(*boxes)[4] = ss.boxes;
        for (int k = 0; k < n; k++) db[k] = (DrawBox){boxes[k][0], boxes[k][1], boxes[k][2], boxes[k][3], k};
        draw_boxes(&copy, db, n, DRAW_LABEL_AUTO);
        int e = image_save_png(draw, &copy);
        image_free(&copy);
        if (e) { rc = tool_error("generate", 1, "%s", vcm_error()); goto done; }
    }
    long np = bpe_encode(&ss.tok, prompt, strlen(prompt), ids + 1, plen);
    if (np < 0) { rc = tool_error("generate", 1, "%s", vcm_error()); goto done; }
    ids[0] = BPE_BOS;
    if (np + 1 > cfg->max_text) {
        rc = tool_error("generate", 2, "the prompt is %ld tokens; the model reads at most %d", np + 1, cfg->max_text);
        goto done;
    }
    int n_regions[1];
    Batch b = infer_session_batch(&ss, ids, NULL, (int)np + 1, n_regions);
    if (infer_init(&in, &ss.m)) { rc = tool_error("generate", 1, "%s", vcm_error()); goto done; }
    have_infer = 1;
    double t0 = now_seconds(), t_decode = 0;
    long n_new = 0;
    if (infer_prefill(&in, &b)) { rc = tool_error("generate", 1, "%s", vcm_error()); goto done; }
    double t_prefill = now_seconds() - t0;
    /* a text-only model writes descriptions, never an id */
    GenParams gp = {{temperature, top_k, top_p}, max_tokens > 0 ? max_tokens : cfg->max_text, ss.tok.vocab, text_only ? 0 : n};
    for (int s = 0; s < samples; s++) {
        if (s) infer_rewind(&in);
        uint64_t rng = vcm_hash64((uint64_t)seed * VCM_GOLDEN64 + vcm_hash64((uint64_t)s + 1));
        int nout;
        double lp;
        double ts = now_seconds();
        if (infer_generate(&in, &gp, &rng, out, cfg->max_text + 1, &nout, &lp)) {
            rc = tool_error("generate", 1, "%s", vcm_error());
            goto done;
        }
        t_decode += now_seconds() - ts;
        n_new += nout;
        size_t pl = strlen(prompt);
        memcpy(text, prompt, pl);
        long tl = bpe_decode(&ss.tok, out, (size_t)nout, text + pl, text_cap - pl - 1, 1);
        if (tl < 0) { rc = tool_error("generate", 1, "%s", vcm_error()); goto done; }
        if ((size_t)tl > text_cap - pl - 1) tl = (long)(text_cap - pl - 1);
        text[pl + (size_t)tl] = 0;
        QarParts parts;
        infer_split_text(text, &parts);
        printf("{\"sample\":%d", s);
        put_part("question", parts.q, parts.qn);
        put_part("answer", parts.a, parts.an);
        put_part("rationale", parts.r, parts.rn);
        printf(",\"logprob\":");
        vcm_json_put_number(stdout, lp);
        printf(",\"tokens\":%d,\"eos\":%s,\"text\":", nout, nout && out[nout - 1] == BPE_EOS ? "true" : "false");
        vcm_json_put_string(stdout, text, strlen(text));
        printf("}\n");
        fflush(stdout);
    }
    if (timing)
        fprintf(stderr, "{\"prefill_positions\":%d,\"prefill_ms\":%.3f,\"new_tokens\":%ld,\"decode_ms\":%.3f,\"tokens_per_s\":%.1f}\n",
                in.kv.prefix + in.kv.prompt_len, 1e3 * t_prefill, n_new, 1e3 * t_decode, t_decode > 0 ? (double)n_new / t_decode : 0.0);
    rc = 0;
done:
    if (have_infer) infer_free(&in);
    free(prompt); free(ids); free(out); free(text);
done0:
    free(q);
    infer_session_close(&ss);
    return rc;
}
