/* vcm distill: the teacher step against an OpenAI-compatible chat endpoint.
 * Thin: flags, the region map, the prompt, signals (tools/chat_util.c, shared with
 * vcm verbalize); the work is distill_run(). */
#include "tensor/tensor.h"
#include "tools/chat_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: vcm distill --regions MAP.jsonl --endpoint URL --model NAME --out CORPUS.jsonl [flags]\n"
    "\n"
    "Ask an OpenAI-compatible chat endpoint (llama.cpp server, vLLM, a hosted API) for\n"
    "question/answer/rationale triples about the regions of each image of the mapping,\n"
    "and append them to CORPUS.jsonl as corpus records. The API key, if any, comes from\n"
    "the VCM_API_KEY environment variable. URL is the server root (/v1/chat/completions\n"
    "is added) or the full path. Re-running skips the images already in CORPUS.jsonl.\n"
    "The summary is one JSON line on stdout. Exit: 0 done, 1 images failed or the\n"
    "endpoint refused (401/403/404), 2 bad input, 130 interrupted (SIGINT/SIGTERM;\n"
    "a second one abandons the requests in flight). Details: docs/DISTILL.md";

int cmd_distill(int argc, char **argv) {
    const char *regions = NULL, *out = NULL, *prompt_path = NULL;
    DistillOptions o;
    distill_options_default(&o);
    ChatFlags cf;
    chat_flags_init(&cf, &o);
    int per_image = o.per_image, skip_bad = 0, show_prompt = 0;
    Flag flags[] = {
        {"regions", 's', &regions, "region mapping (.jsonl or .jsonl.gz): the images and their region descriptions"},
        {"out", 's', &out, "corpus to append to (created if missing; resumed if present)"},
        {"prompt", 's', &prompt_path, "prompt template file (default: the built-in distill/prompt_v1.txt)"},
        {"show-prompt", 'b', &show_prompt, "print the prompt template in use and exit"},
        CHAT_FLAGS(o, cf, "image"),
        {"temperature", 'd', &cf.temperature, "sampling temperature sent to the model (default 0.7) [0..2]"},
        {"per-image", 'i', &per_image, "triples asked for per image (default 5) [1..]"},
        {"max-tokens", 'i', &cf.max_tokens, "max_tokens sent per request, 0 = not sent (default 1024) [0..]"},
        {"source", 's', &o.source, "the records' source (default vcm_distill_<prompt version>)"},
        {"skip-bad", 'b', &skip_bad, "skip malformed lines of the region mapping instead of failing"},
        {NULL, 0, NULL, NULL}};
    int r = flags_parse(usage_text, flags, argc, argv, NULL, 0, NULL);
    if (r < 0) return 0;
    if (r) return 2;

    DistillPrompt prompt;
    if (distill_prompt_load(prompt_path, &prompt)) return tool_error("distill", 2, "%s", vcm_error());
    if (show_prompt) {
        fputs(prompt_path ? "" : distill_prompt_builtin(), stdout);
        if (prompt_path) {
            printf("@version %s\n", prompt.version);
            if (prompt.system) printf("@system\n%s\n", prompt.system);
            printf("@user\n%s\n", prompt.user);
        }
        distill_prompt_free(&prompt);
        return 0;
    }
    const char *missing = !regions ? "regions" : !o.endpoint ? "endpoint" : !o.model ? "model" : !out ? "out" : NULL;
    const char *bad = per_image < 1 || per_image > DISTILL_MAX_PER_IMAGE ? "--per-image wants 1..100"
                                                                         : chat_flags_apply(&cf, &o);
    if (missing || bad) {
        distill_prompt_free(&prompt);
        if (missing) return tool_error("distill", 2, "--%s is required (see vcm distill --help)", missing);
        return tool_error("distill", 2, "%s", bad);
    }
    size_t ol = strlen(out);
    if (ol >= 3 && !strcmp(out + ol - 3, ".gz")) {
        distill_prompt_free(&prompt);
        return tool_error("distill", 2, "--out %s: the corpus is written as plain .jsonl (appends must stay line-atomic); gzip it when done", out);
    }
    o.per_image = per_image;

    RegionMap map;
    long n_skipped = 0;
    if (regionmap_load(regions, &map, skip_bad, &n_skipped)) {
        distill_prompt_free(&prompt);
        return tool_error("distill", 2, "%s", vcm_error());
    }
    if (n_skipped) fprintf(stderr, "vcm distill: %s: skipped %ld bad lines\n", regions, n_skipped);

    chat_signals_install();
    DistillStats st;
    int rc = distill_run(&map, &prompt, out, &o, &st);
    char *err = rc ? strdup(vcm_error()) : NULL;
    chat_signals_restore();

    char source[128];
    snprintf(source, sizeof source, "vcm_distill_%s", prompt.version);
    chat_print_summary(distill_stats_json(&st, o.source ? o.source : source));
    regionmap_free(&map);
    distill_prompt_free(&prompt);
    if (rc) {
        tool_error("distill", rc == VCM_EINPUT ? 2 : 1, "%s", err ? err : "out of memory");
        free(err);
        return rc == VCM_EINPUT ? 2 : 1;
    }
    if (st.net.interrupted) return 130;
    return st.failed ? 1 : 0;
}
