/* vcm verbalize: the paper's first stage — literal descriptions of each image and of
 * its regions by a vision-language model behind an OpenAI-compatible endpoint.
 * Thin: flags, the region map, signals (tools/chat_util.c, shared with vcm distill);
 * the work is verbalize_run(). */
#include "tensor/tensor.h"
#include "tools/chat_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: vcm verbalize --regions MAP.jsonl --images-root DIR --endpoint URL --model NAME --out OUT.jsonl [flags]\n"
    "\n"
    "Ask a vision-language model behind an OpenAI-compatible chat endpoint (llama-server\n"
    "with --mmproj, vLLM, a hosted API) for a one-sentence caption of each image of the\n"
    "mapping and a short phrase for each region (sent its crop), and write the mapping's\n"
    "lines with \"global\" and \"region_descriptions\" filled to OUT.jsonl, the input of\n"
    "vcm distill. Images go as JPEG data URLs. The API key, if any, comes from the\n"
    "VCM_API_KEY environment variable. Re-running skips the images already in OUT.jsonl.\n"
    "Every image is checked (exists, decodes, boxes inside) before the first request.\n"
    "The summary is one JSON line on stdout. Exit: 0 done, 1 images failed or the\n"
    "endpoint refused (401/403/404), 2 bad input, 130 interrupted (SIGINT/SIGTERM;\n"
    "a second one abandons the requests in flight). Prompts, crops: docs/DISTILL.md";

int cmd_verbalize(int argc, char **argv) {
    const char *regions = NULL, *out = NULL;
    VerbalizeOptions o;
    verbalize_options_default(&o);
    ChatFlags cf;
    chat_flags_init(&cf, &o.chat);
    int skip_bad = 0, keep = 0, max_side = o.max_side, min_side = o.min_side, quality = o.jpeg_quality;
    int show_prompts = 0;
    double pad = o.pad;
    Flag flags[] = {
        {"regions", 's', &regions, "region mapping (.jsonl or .jsonl.gz) with the boxes"},
        {"images-root", 's', &o.images_root, "directory the mapping's image paths are relative to (default: .)"},
        {"out", 's', &out, "mapping to write (plain .jsonl; created if missing, resumed if present)"},
        CHAT_FLAGS(o.chat, cf, "request"),
        {"temperature", 'd', &cf.temperature, "sampling temperature sent to the model (default 0) [0..2]"},
        {"max-tokens", 'i', &cf.max_tokens, "max_tokens sent per request, 0 = not sent (default 128) [0..]"},
        {"global-prompt", 's', &o.global_prompt, "the text sent with the whole image (default: --show-prompts)"},
        {"region-prompt", 's', &o.region_prompt, "the text sent with a region's crop (default: --show-prompts)"},
        {"show-prompts", 'b', &show_prompts, "print the built-in prompts and exit"},
        {"pad", 'd', &pad, "crop margin on each side, a fraction of the box's width/height (default 0.1)"},
        {"min-side", 'i', &min_side, "a crop side shorter than this many pixels is widened (default 32)"},
        {"max-side", 'i', &max_side, "images and crops are downscaled to this longer side (default 768)"},
        {"jpeg-quality", 'i', &quality, "JPEG quality 1..100 of what is sent (default 90)"},
        {"keep-existing", 'b', &keep, "keep the descriptions a line already has; ask only the missing ones"},
        {"skip-bad", 'b', &skip_bad, "skip malformed mapping lines and bad images instead of failing"},
        {NULL, 0, NULL, NULL}};
    int r = flags_parse(usage_text, flags, argc, argv, NULL, 0, NULL);
    if (r < 0) return 0;
    if (r) return 2;
    if (show_prompts) {
        printf("global (version %s):\n%s\n\nregion:\n%s\n", VERBALIZE_PROMPT_VERSION, verbalize_prompt_global,
               verbalize_prompt_region);
        return 0;
    }

    const char *missing = !regions ? "regions" : !o.chat.endpoint ? "endpoint" : !o.chat.model ? "model"
                        : !out ? "out" : NULL;
    if (missing) return tool_error("verbalize", 2, "--%s is required (see vcm verbalize --help)", missing);
    const char *bad = !(pad >= 0 && pad <= 10) ? "--pad wants 0..10"
                    : min_side < 1 || min_side > 4096 ? "--min-side wants 1..4096"
                    : max_side < 8 || max_side > 8192 ? "--max-side wants 8..8192"
                    : quality < 1 || quality > 100 ? "--jpeg-quality wants 1..100"
                    : (o.global_prompt && !*o.global_prompt) || (o.region_prompt && !*o.region_prompt)
                        ? "--global-prompt / --region-prompt want a non-empty text"
                        : chat_flags_apply(&cf, &o.chat);
    if (bad) return tool_error("verbalize", 2, "%s", bad);
    size_t ol = strlen(out);
    if (ol >= 3 && !strcmp(out + ol - 3, ".gz"))
        return tool_error("verbalize", 2, "--out %s: the mapping is written as plain .jsonl (appends must stay line-atomic); gzip it when done", out);
    o.pad = pad;
    o.min_side = min_side;
    o.max_side = max_side;
    o.jpeg_quality = quality;
    o.keep_existing = keep;
    o.skip_bad = skip_bad;

    RegionMap map;
    long n_skipped = 0;
    if (regionmap_load(regions, &map, skip_bad, &n_skipped)) return tool_error("verbalize", 2, "%s", vcm_error());
    if (n_skipped) fprintf(stderr, "vcm verbalize: %s: skipped %ld bad lines\n", regions, n_skipped);

    chat_signals_install();
    VerbalizeStats st;
    int rc = verbalize_run(&map, &o, out, &st);
    char *err = rc ? strdup(vcm_error()) : NULL;
    chat_signals_restore();

    chat_print_summary(verbalize_stats_json(&st, &o));
    regionmap_free(&map);
    if (rc) {
        tool_error("verbalize", rc == VCM_EINPUT ? 2 : 1, "%s", err ? err : "out of memory");
        free(err);
        return rc == VCM_EINPUT ? 2 : 1;
    }
    if (st.net.interrupted) return 130;
    return st.failed ? 1 : 0;
}
