/* vcm regions import-vg — a region mapping from Visual Genome's region_descriptions.json
 * (with objects.json for obj_guess and image_data.json for sizes and folders). The
 * mapping is written under a temporary name and renamed when complete: a refused input
 * leaves no file under the final name. */
#include "data/data.h"
#include "nn/nn.h"
#include "tensor/tensor.h"
#include "tools/tools.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void on_progress(long entries, void *ctx) {
    if (*(int *)ctx) fprintf(stderr, "\rvcm regions import-vg: %ld images   ", entries);
    else if (entries % (1L << 18) == 0) fprintf(stderr, "vcm regions import-vg: %ld images\n", entries);
}

static int print_stats(const VgImportOptions *o, const char *out, const VgImportStats *st) {
    json_t *j = json_object();
    json_object_set_new(j, "out", json_string(out));
    json_object_set_new(j, "images", json_integer(st->images));
    json_object_set_new(j, "images_written", json_integer(st->images_written));
    json_object_set_new(j, "images_without_regions", json_integer(st->images_without_regions));
    json_object_set_new(j, "regions", json_integer(st->regions));
    json_object_set_new(j, "regions_kept", json_integer(st->regions_kept));
    json_object_set_new(j, "regions_small", json_integer(st->regions_small));
    json_object_set_new(j, "regions_duplicate", json_integer(st->regions_duplicate));
    json_object_set_new(j, "regions_over_max", json_integer(st->regions_over_max));
    json_object_set_new(j, "boxes_clipped", json_integer(st->boxes_clipped));
    json_object_set_new(j, "obj_guess_set", json_integer(st->obj_guess_set));
    if (o->image_data_path) json_object_set_new(j, "image_data_images", json_integer(st->image_data_images));
    if (o->objects_path) {
        json_object_set_new(j, "objects", json_integer(st->objects));
        json_object_set_new(j, "object_names", json_integer(st->object_names));
    }
    json_object_set_new(j, "bad_entries", json_integer(st->bad_entries));
    json_object_set_new(j, "bad_regions_or_objects", json_integer(st->bad_items));
    json_object_set_new(j, "bad_by_reason", bad_reasons_json(st->bad_by_reason));
    return tool_print_json("regions import-vg", j, 0);
}

static int cmd_import_vg(int argc, char **argv) {
    VgImportOptions o;
    vg_import_defaults(&o);
    const char *out = NULL;
    double dedupe = o.dedupe_iou, obj = o.obj_iou;
    Flag flags[] = {
        {"out", 's', &out, "region mapping to write, .jsonl (required)"},
        {"objects", 's', &o.objects_path, "objects.json: obj_guess = the name of the best-overlapping object"},
        {"image-data", 's', &o.image_data_path, "image_data.json: sizes (boxes checked) and folders (from the url)"},
        {"image-dir", 's', &o.image_dir, "image name = DIR/<image_id>.jpg (\"\" for <image_id>.jpg); default:\n"
         "                             the url's folder from --image-data, else VG_100K"},
        {"max-regions", 'i', &o.max_regions, "regions kept per image, largest first (default 16)"},
        {"min-size", 'i', &o.min_size, "drop regions narrower or lower than this many pixels (default 8)"},
        {"dedupe-iou", 'd', &dedupe, "drop a region overlapping a kept one by IoU >= this (default 0.7; 0: off)"},
        {"obj-iou", 'd', &obj, "least IoU of the object that names a region's obj_guess (default 0.5)"},
        {"clip", 'b', &o.clip, "clip boxes that leave the image to it instead of refusing them"},
        {"skip-bad", 'b', &o.skip_bad, "drop bad regions, objects and entries and count them instead of stopping"},
        {0},
    };
    const char *pos[1];
    int np = 0;
    int rc = flags_parse("usage: vcm regions import-vg REGION_DESCRIPTIONS.json --out MAP.jsonl [--objects objects.json]\n"
                         "                            [--image-data image_data.json] [flags]\n\n"
                         "Visual Genome's region descriptions → the region mapping vcm reads (--regions): one line\n"
                         "per image with region_locations (boxes, obj_guess) and region_descriptions (the phrases).\n"
                         "Per image: the regions at least --min-size px on both sides, largest first, minus\n"
                         "near-duplicates (--dedupe-iou), up to --max-regions, numbered 0, 1, ... in that order.\n"
                         "The files are read one image at a time (plain or gzip). A malformed entry is refused\n"
                         "(FILE: entry N (image ID, line L, byte B): problem, exit 2) and no mapping is written,\n"
                         "unless --skip-bad. A JSON summary goes to stdout. docs/DATA_FORMATS.md has the rules.",
                         flags, argc, argv, pos, 1, &np);
    if (rc) return rc < 0 ? 0 : rc;
    if (np != 1) return tool_error("regions import-vg", 2, "expected one REGION_DESCRIPTIONS.json (see --help)");
    o.regions_path = pos[0];
    o.dedupe_iou = dedupe;
    o.obj_iou = obj;
    int tty = isatty(2);
    o.progress = on_progress;
    o.progress_ctx = &tty;
    AtomicFile af;
    VgImportStats st;
    if ((rc = atomic_file_open(&af, out))) return tool_error("regions import-vg", rc, "%s", vcm_error());
    rc = vg_import(&o, af.f, &st);
    if (tty) fputc('\n', stderr);
    if (rc) {
        atomic_file_abort(&af);
        return tool_error("regions import-vg", rc, "%s", vcm_error());
    }
    if ((rc = atomic_file_commit(&af))) return tool_error("regions import-vg", rc, "%s", vcm_error());
    return print_stats(&o, out, &st);
}

int cmd_regions(int argc, char **argv) {
    const char *usage = "usage: vcm regions <import-vg> ... (vcm regions <sub> --help)\n\n"
                        "  import-vg  a region mapping from Visual Genome's region_descriptions.json\n"
                        "             (+ objects.json, image_data.json)\n";
    static const SubCommand subs[] = {{"import-vg", cmd_import_vg}};
    return tool_subcommand("regions", usage, subs, 1, argc, argv);
}
