/* vcm synth: build the synthetic world (DESIGN.md §6, docs/SYNTH.md). */
#include "data/data.h"
#include "tensor/tensor.h"
#include "tools/tools.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The library's messages start with "synth: "; the tool's prefix already says so. */
static const char *msg(void) {
    const char *m = vcm_error();
    return strncmp(m, "synth: ", 7) ? m : m + 7;
}

static const char *usage =
    "usage: vcm synth --out DIR [--images N] [--seed S] [flags]\n"
    "\n"
    "Writes DIR/images/*.png, DIR/regions.jsonl, DIR/corpus.jsonl (simulated teacher,\n"
    "with \"synth\": {\"fault\": ...}), DIR/annotations.jsonl (three noisy votes a record),\n"
    "DIR/mc_val.jsonl and DIR/mc_test.jsonl (held-out images). Prints the counts as one\n"
    "JSON line. The same seed gives the same bytes. See docs/SYNTH.md.\n"
    "  vcm synth --contact-sheet PNG [--seed S]   writes only a contact sheet";

int cmd_synth(int argc, char **argv) {
    SynthOptions o;
    synth_options_default(&o);
    const char *out = NULL, *seed = "1", *sheet = NULL;
    long n_images = o.n_images;
    int annotated = -1, quiet = 0, sheet_n = 18;
    double images_d = (double)n_images;
    Flag flags[] = {
        {"out", 's', &out, "output directory (created if missing)"},
        {"images", 'd', &images_d, "number of images (default 1000)"},
        {"seed", 's', &seed, "random seed, an unsigned integer (default 1)"},
        {"fault-rate", 'd', &o.fault_rate, "P(injected teacher fault) per record (default 0.30)"},
        {"caption-noise", 'd', &o.caption_noise, "P(captioner names a region's category wrongly) (default 0.10)"},
        {"per-image", 'i', &o.per_image, "teacher records per training image (default 6)"},
        {"annotated", 'i', &annotated, "records with votes (default or negative: min(5000, records/4))"},
        {"val-frac", 'd', &o.val_frac, "share of images for mc_val (default 0.10)"},
        {"test-frac", 'd', &o.test_frac, "share of images for mc_test (default 0.10)"},
        {"png-level", 'i', &o.png_level, "PNG zlib level 0-9 (default 1: fast)"},
        {"threads", 'i', &o.threads, "threads (default: VCM_THREADS or all cores) [0..1024]"},
        {"contact-sheet", 's', &sheet, "also write a contact sheet of sample images to this PNG"},
        {"sheet-images", 'i', &sheet_n, "images on the contact sheet (default 18)"},
        {"quiet", 'b', &quiet, "no progress lines on stderr"},
        {0},
    };
    int rc = flags_parse(usage, flags, argc, argv, NULL, 0, NULL);
    if (rc == -1) return 0;
    if (rc) return 2;
    char *end;
    errno = 0;
    unsigned long long s = strtoull(seed, &end, 10);
    if (errno || end == seed || *end || seed[0] == '-')
        return tool_error("synth", 2, "--seed wants an unsigned integer, got \"%s\"", seed);
    o.seed = s;
    if (!(images_d >= 1 && images_d <= 1e9 && images_d == (double)(long)images_d))
        return tool_error("synth", 2, "--images wants a whole number from 1 to 1e9, got %g", images_d);
    o.n_images = (long)images_d;
    o.n_annotated = annotated;
    if (!out && !sheet) return tool_error("synth", 2, "--out is required (see vcm synth --help)");
    if (sheet && (sheet_n < 1 || sheet_n > 64))
        return tool_error("synth", 2, "--sheet-images must be in [1, 64], got %d", sheet_n);
    if (o.threads < 0) return tool_error("synth", 2, "--threads must be >= 0, got %d", o.threads);
    if (sheet && synth_contact_sheet(sheet, o.seed, sheet_n))
        return tool_error("synth", 1, "%s", msg());
    if (!out) return 0;
    o.out_dir = out;
    o.verbose = !quiet;
    if (o.threads == 0) o.threads = vcm_threads_init(0);
    SynthStats st;
    rc = synth_generate(&o, &st);
    if (rc) return tool_error("synth", rc == VCM_EINPUT ? 2 : 1, "%s", msg());
    char line[2048];
    synth_stats_json(&st, line, sizeof line);
    printf("%s\n", line);
    return 0;
}
