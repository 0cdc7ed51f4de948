/* vcm score: the log-probability of every token of a text, given an image and its
 * regions — the primitive under multiple choice (docs/INFERENCE.md). */
#include "tools/infer_util.h"

#include <stdlib.h>
#include <string.h>

static const char *USAGE =
    "usage: vcm score --model M.vcm [--tokenizer T.tok] --image IMG [--region x0,y0,x1,y1 ...]\n"
    "                 --text \"question: ... answer: ...\" [--prompt-len-from \"answer:\"] [--eos]\n"
    "\n"
    "Teacher-forced log-probabilities of the text's tokens after <bos> (the text is scored as\n"
    "given: the corpus's form is lower case with punctuation as separate words). With\n"
    "--prompt-len-from S only the tokens after the first S count in sum and mean. One JSON\n"
    "object on stdout: tokens, ids, logprobs (every token), first_scored, n, sum, mean.\n"
    "A text-only model (trained with --region-input text) reads no image: give each region as\n"
    "--description \"a red cup\"; every [k] of --text is replaced by its description first (the\n"
    "JSON's tokens are those of the text so rewritten), and --image and --region are not needed.";

int cmd_score(int argc, char **argv) {
    const char *model = NULL, *tok_path = NULL, *image = NULL, *text = NULL, *from = NULL;
    FlagList regions = {0}, descs = {0};
    int eos = 0, threads = 0;
    Flag flags[] = {
        {"model", 's', &model, "checkpoint from vcm train (required)"},
        {"tokenizer", 's', &tok_path, "a tokenizer other than the one saved in the checkpoint"},
        {"image", 's', &image, "any JPEG/PNG/BMP/GIF/TGA (needed unless the model is text-only)"},
        {"region", 'L', &regions, "x0,y0,x1,y1 in image pixels; repeat for [1], [2], ..."},
        {"text", 's', &text, "the text to score (required)"},
        {"prompt-len-from", 's', &from, "score only what follows the first occurrence of this string"},
        {"eos", 'b', &eos, "append <eos> and score it too (the text is complete)"},
        {"description", 'L', &descs, "text-only model: region [k]'s literal description; repeat for [1], ..."},
        {"threads", 'i', &threads, "threads (default VCM_THREADS or all cores) [0..1024]"},
        {0}};
    int rc = flags_parse(USAGE, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (!text) return tool_error("score", 2, "--text is required");
    InferSession ss;
    char *described = NULL;
    double *lp = NULL;
    int32_t *ids = NULL, *pids = NULL, *targets = NULL;
    Graph g = {0};
    int have_graph = 0;
    if ((rc = infer_session_open(&ss, "score", model, tok_path, image, &regions, &descs, threads))) goto done;
    const ModelConfig *cfg = &ss.m.cfg;
    if ((rc = infer_session_check_mentions(&ss, "--text", text))) goto done;
    if (ss.text_only) {   /* the referring expressions instead of the ids */
        int bad;
        if (!(described = infer_describe_mentions(text, &descs, &bad))) {
            rc = bad >= 0 ? tool_error("score", 2, "--description %d is empty", bad + 1) : tool_error("score", 1, "out of memory");
            goto done;
        }
        text = described;
    }
    size_t prompt_bytes = 0;
    if (from) {
        const char *at = *from ? strstr(text, from) : NULL;
        if (!at) { rc = tool_error("score", 2, "--prompt-len-from \"%s\" does not occur in --text", from); goto done; }
        prompt_bytes = (size_t)(at - text) + strlen(from);
    }
    if ((rc = infer_session_image(&ss, image, &regions))) goto done;
    size_t len = strlen(text);
    ids = malloc(sizeof(int32_t) * (len + 3)), pids = malloc(sizeof(int32_t) * (len + 1));
    targets = malloc(sizeof(int32_t) * (len + 3));
    lp = malloc(sizeof(double) * (len + 3));
    if (!ids || !pids || !targets || !lp) { rc = tool_error("score", 1, "out of memory"); goto done; }
    long nt = bpe_encode(&ss.tok, text, len, ids + 1, len + 1);
    if (nt < 0) { rc = tool_error("score", 1, "%s", vcm_error()); goto done; }
    ids[0] = BPE_BOS;
    int total = (int)nt + 1;
    if (eos) ids[total++] = BPE_EOS;
    /* The prompt's tokens must be a prefix of the text's: it has to end where a token does. */
    int first = 1;
    if (from) {
        long np = bpe_encode(&ss.tok, text, prompt_bytes, pids, len + 1);
        if (np < 0) { rc = tool_error("score", 1, "%s", vcm_error()); goto done; }
        if (np > nt || memcmp(pids, ids + 1, sizeof(int32_t) * (size_t)np)) {
            rc = tool_error("score", 2, "--prompt-len-from \"%s\" does not end at a token boundary of --text", from);
            goto done;
        }
        first = (int)np + 1;
    }
    if (total < 2) { rc = tool_error("score", 2, "--text is empty"); goto done; }
    if (total - 1 > cfg->max_text) {
        rc = tool_error("score", 2, "--text is %d tokens with <bos>%s; the model reads at most %d", total - (eos ? 1 : 0),
                        eos ? " (and <eos>)" : "", cfg->max_text);
        goto done;
    }
    int T = total - 1;
    for (int t = 0; t < T; t++) targets[t] = ids[t + 1];
    int n_regions[1];
    Batch b = infer_session_batch(&ss, ids, targets, T, n_regions);
    if (graph_init(&g, (size_t)8 << 20)) { rc = tool_error("score", 1, "%s", vcm_error()); goto done; }
    have_graph = 1;
    g.grad_enabled = 0;
    if (student_target_logprobs(&g, &ss.m, &b, lp)) { rc = tool_error("score", 1, "%s", vcm_error()); goto done; }
    double sum = 0;
    int scored = 0;
    for (int i = first; i < total; i++) { sum += lp[i - 1]; scored++; }
    printf("{\"tokens\":[");
    for (int i = 1; i < total; i++) {
        size_t tl;
        const char *s = bpe_token_text(&ss.tok, ids[i], &tl);
        if (i > 1) putchar(',');
        vcm_json_put_string(stdout, s ? s : "", s ? tl : 0);
    }
    printf("],\"ids\":[");
    for (int i = 1; i < total; i++) printf("%s%d", i > 1 ? "," : "", ids[i]);
    printf("],\"logprobs\":[");
    for (int i = 1; i < total; i++) {
        if (i > 1) putchar(',');
        vcm_json_put_number(stdout, lp[i - 1]);
    }
    printf("],\"first_scored\":%d,\"n\":%d,\"sum\":", first - 1, scored);
    vcm_json_put_number(stdout, sum);
    printf(",\"mean\":");
    if (scored) vcm_json_put_number(stdout, sum / scored);
    else fputs("null", stdout);
    printf("}\n");
    rc = 0;
done:
    if (have_graph) graph_free(&g);
    free(ids); free(pids); free(targets); free(lp); free(described);
    infer_session_close(&ss);
    return rc;
}
