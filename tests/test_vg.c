/* Real data in (issue 15): the streaming reader of a top-level JSON list, the Visual
 * Genome import (region selection, obj_guess, image names, every refusal) and corpus
 * records that carry their own boxes ("references"). Fixtures: tests/data/vg/,
 * tests/data/lskd_references.jsonl, tests/data/bad/references_*.jsonl. */
#include "data/data.h"
#include "tensor/tensor.h"
#include "tests/test.h"

#include <jansson.h>
#include <unistd.h>

#define VG "tests/data/vg/"

static char tmpdir[256];

static const char *tmp_file(const char *name, const char *text) {
    static char path[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", tmpdir, name);
    FILE *f = fopen(path[k], "wb");
    if (!f) { perror(path[k]); exit(1); }
    fputs(text, f);
    fclose(f);
    return path[k];
}

/* ---------------------------------------------------------------- JsonArrayStream */

static void test_stream_elements(void) {
    /* strings holding brackets, quotes and escapes; nesting; scalars; several lines */
    const char *p = tmp_file("a.json", "\xEF\xBB\xBF [\"a]\\\"\" , {\"b\": [1, {\"c\": \"}\"}]},\n 3,-4.5e2\n,true, null ]\n\n");
    JsonArrayStream s;
    CHECK(json_array_stream_open(&s, p) == VCM_OK);
    json_t *v;
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && json_is_string(v) && !strcmp(json_string_value(v), "a]\""));
    CHECK(s.elem_index == 0 && s.elem_line == 1 && s.elem_offset == 5);
    json_decref(v);
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && json_is_object(v));
    CHECK(v && !strcmp(json_string_value(json_object_get(json_array_get(json_object_get(v, "b"), 1), "c")), "}"));
    json_decref(v);
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && json_integer_value(v) == 3 && s.elem_line == 2);
    json_decref(v);
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && json_is_real(v) && json_real_value(v) == -450.0);
    json_decref(v);
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && json_is_true(v) && s.elem_line == 3);
    json_decref(v);
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && json_is_null(v) && s.elem_index == 5);
    json_decref(v);
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && v == NULL);
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && v == NULL);   /* stays at the end */
    json_array_stream_close(&s);

    CHECK(json_array_stream_open(&s, tmp_file("e.json", " [ ] ")) == VCM_OK);
    CHECK(json_array_stream_next(&s, &v) == VCM_OK && v == NULL);
    json_array_stream_close(&s);
}

static void stream_fails(const char *text, const char *msg) {
    const char *p = tmp_file("bad.json", text);
    JsonArrayStream s;
    CHECK(json_array_stream_open(&s, p) == VCM_OK);
    json_t *v = NULL;
    int rc = VCM_OK;
    for (int i = 0; i < 10 && rc == VCM_OK; i++) {
        rc = json_array_stream_next(&s, &v);
        json_decref(v);
        if (!rc && !v) break;
    }
    CHECK_MSG(rc == VCM_EINPUT, "%s: rc %d", text, rc);
    CHECK_STR_CONTAINS(vcm_error(), msg);
    json_array_stream_close(&s);
}

static void test_stream_errors(void) {
    stream_fails("", "empty file (expected a JSON list)");
    stream_fails("{\"id\": 1}", "line 1, byte 0: expected a JSON list ('[') at the top level");
    stream_fails("[1, 2,]", "a ',' before the list's ']' (trailing comma)");
    stream_fails("[1 2]", "byte 3: expected ',' or ']' after an entry of the list");
    stream_fails("[1, 2] 3", "unexpected text after the list's closing ']'");
    stream_fails("[{\"a\": 1},\n{\"b\": [1, 2", "entry 1 (line 2, byte 11): the file ends inside it (cut short?)");
    stream_fails("[{\"a\": 1}", "the file ends inside the list (no closing ']'; cut short?)");
    stream_fails("[{\"a\": 1},\n {\"b\" 2}]", "entry 1 (line 2, byte ");
}

/* ---------------------------------------------------------------- the VG import */

/* Import into a temporary mapping and load it back. rc of vg_import. */
static int import(const VgImportOptions *o, RegionMap *m, VgImportStats *st) {
    char path[600];
    snprintf(path, sizeof path, "%s/map.jsonl", tmpdir);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = vg_import(o, f, st);
    fclose(f);
    if (rc) return rc;
    return regionmap_load(path, m, 0, NULL);
}

static VgImportOptions full_options(void) {
    VgImportOptions o;
    vg_import_defaults(&o);
    o.regions_path = VG "region_descriptions.json";
    o.objects_path = VG "objects.json";
    o.image_data_path = VG "image_data.json";
    return o;
}

static void test_vg_import_fixture(void) {
    VgImportOptions o = full_options();
    RegionMap m;
    VgImportStats st;
    CHECK(import(&o, &m, &st) == VCM_OK);
    CHECK(m.n == 3);
    CHECK(st.images == 4 && st.images_written == 3 && st.images_without_regions == 1);
    CHECK(st.regions == 15 && st.regions_kept == 12 && st.regions_small == 2 && st.regions_duplicate == 1);
    CHECK(st.objects == 6 && st.object_names == 6 && st.obj_guess_set == 6 && st.image_data_images == 4);
    if (m.n == 3) {
        /* image 1: largest first, the near-copy (IoU 0.95) of region 101 and the 5 px speck dropped */
        const RegionEntry *e = regionmap_find(&m, "VG_100K/1.jpg");
        CHECK(e && e->n_regions == 5);
        const RegionBox *b = e ? region_entry_box(e, 0) : NULL;
        CHECK(b && b->x0 == 120 && b->y0 == 15 && b->x1 == 365 && b->y1 == 512);
        CHECK(b && b->obj_guess && !strcmp(b->obj_guess, "woman"));
        CHECK(b && b->description && !strcmp(b->description, "a woman in an orange space suit"));
        b = e ? region_entry_box(e, 3) : NULL;   /* the shuttle: the object's first name */
        CHECK(b && b->obj_guess && !strcmp(b->obj_guess, "shuttle") && b->x0 == 352);
        b = e ? region_entry_box(e, 4) : NULL;   /* the patch: no object overlaps it */
        CHECK(b && !b->obj_guess && b->description && !strcmp(b->description, "a round mission patch"));
        /* image 3: from the VG_100K_2 folder of its url; objects.json v1.0 "name" */
        e = regionmap_find(&m, "VG_100K_2/3.jpg");
        CHECK(e && e->n_regions == 3);
        b = e ? region_entry_box(e, 0) : NULL;
        CHECK(b && b->x1 == 90 && b->obj_guess && !strcmp(b->obj_guess, "tower"));
        b = e ? region_entry_box(e, 1) : NULL;
        CHECK(b && !b->obj_guess && !strcmp(b->description, "a lattice tower on the right"));
        CHECK(regionmap_find(&m, "VG_100K/2.jpg") != NULL);
    }
    regionmap_free(&m);
}

static void test_vg_import_options(void) {
    VgImportOptions o = full_options();
    RegionMap m;
    VgImportStats st;
    o.max_regions = 2;
    CHECK(import(&o, &m, &st) == VCM_OK);
    CHECK(st.regions_kept == 6 && st.regions_over_max == 6);
    const RegionEntry *e = regionmap_find(&m, "VG_100K/1.jpg");
    CHECK(e && e->n_regions == 2 && region_entry_box(e, 1) && region_entry_box(e, 1)->x1 == 95);
    regionmap_free(&m);

    o = full_options();
    o.dedupe_iou = 0;     /* off: the near-copy stays, right after the region it copies */
    o.min_size = 0;       /* and the speck and the dot */
    CHECK(import(&o, &m, &st) == VCM_OK);
    CHECK(st.regions_kept == 15 && st.images_written == 4);
    e = regionmap_find(&m, "VG_100K/1.jpg");
    CHECK(e && e->n_regions == 7 && region_entry_box(e, 1)->x0 == 125);
    regionmap_free(&m);

    o = full_options();
    o.image_dir = "";
    CHECK(import(&o, &m, &st) == VCM_OK);
    CHECK(regionmap_find(&m, "3.jpg") != NULL);
    regionmap_free(&m);
    o.image_dir = "images/vg";
    CHECK(import(&o, &m, &st) == VCM_OK);
    CHECK(regionmap_find(&m, "images/vg/3.jpg") != NULL);
    regionmap_free(&m);

    /* only region_descriptions: VG_100K/<id>.jpg, no obj_guess, sizes unknown */
    vg_import_defaults(&o);
    o.regions_path = VG "region_descriptions.json";
    CHECK(import(&o, &m, &st) == VCM_OK);
    e = regionmap_find(&m, "VG_100K/3.jpg");
    CHECK(e && e->n_regions == 3 && !e->regions[0].obj_guess && st.obj_guess_set == 0);
    regionmap_free(&m);

    vg_import_defaults(&o);
    o.regions_path = VG "region_descriptions.json";
    o.max_regions = 0;
    CHECK(import(&o, &m, &st) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "max regions must be in 1..4096");
}

static void vg_fails(const char *regions, const char *objects, const char *image_data, const char *msg) {
    VgImportOptions o;
    vg_import_defaults(&o);
    o.regions_path = regions;
    o.objects_path = objects;
    o.image_data_path = image_data;
    RegionMap m;
    VgImportStats st;
    int rc = import(&o, &m, &st);
    CHECK_MSG(rc == VCM_EINPUT, "%s: rc %d", regions, rc);
    CHECK_STR_CONTAINS(vcm_error(), msg);
    if (rc == VCM_OK) regionmap_free(&m);
}

static void test_vg_import_errors(void) {
    vg_fails(VG "bad/missing_phrase.json", NULL, NULL,
             VG "bad/missing_phrase.json: entry 1 (image 2, line 3, byte 850): regions[1] (region 202): missing field \"phrase\"");
    vg_fails(VG "bad/wrong_type.json", NULL, NULL,
             "entry 1 (image 2, line 3, byte 850): regions[2] (region 203): field \"width\": expected a number, got a string");
    vg_fails(VG "bad/negative_width.json", NULL, NULL,
             "entry 2 (image 3, line 4, byte 1299): regions[0] (region 301): negative width (-54)");
    vg_fails(VG "bad/box_outside.json", NULL, VG "image_data.json",
             "entry 1 (image 2, line 3, byte 850): regions[0] (region 201): box [0, 0, 460, 300] (x, y, x + width, y + "
             "height) is outside the image (451x300)");
    vg_fails(VG "bad/regions_not_list.json", NULL, NULL,
             "entry 2 (image 3, line 4, byte 1299): field \"regions\": expected a list, got an object");
    vg_fails(VG "bad/duplicate_image.json", NULL, NULL, "entry 4 (image 2, line 6, byte 1797): image 2 is already entry 1");
    vg_fails(VG "bad/image_id_mismatch.json", NULL, NULL,
             "entry 0 (image 1, line 2, byte 2): regions[3] (region 104): field \"image_id\": 2, but the entry is image 1");
    vg_fails(VG "bad/syntax.json", NULL, NULL, VG "bad/syntax.json: entry 2 (line 4, byte 1316): '}' expected near '\"regions\"'");
    vg_fails(VG "bad/cut_short.json", NULL, NULL, "entry 2 (line 4, byte 1299): the file ends inside it (cut short?)");
    vg_fails(VG "bad/not_a_list.json", NULL, NULL, "expected a JSON list ('[') at the top level");
    vg_fails(VG "region_descriptions.json", VG "bad/objects_names.json", VG "image_data.json",
             VG "bad/objects_names.json: entry 2 (image 3, line 4, byte 451): objects[0] (object 3001): field \"names\": "
             "expected a non-empty list of strings, got a string");
    vg_fails(VG "region_descriptions.json", NULL, VG "bad/image_data_no_height.json",
             VG "bad/image_data_no_height.json: entry 2 (image 3, line 4, byte 290): missing field \"height\"");
    /* image_data given: an image it lacks is refused (its size and folder are unknown) */
    const char *three = tmp_file("image_data_3.json",
                                 "[{\"image_id\": 1, \"width\": 512, \"height\": 512, \"url\": null},\n"
                                 " {\"id\": 2, \"width\": 451, \"height\": 300},\n"
                                 " {\"image_id\": 3, \"width\": 640, \"height\": 427}]");
    vg_fails(VG "region_descriptions.json", NULL, three, "entry 3 (image 4, line 5, byte 1676): image 4 is not in ");
    vg_fails("tests/data/vg/no_such_file.json", NULL, NULL, "no_such_file.json: cannot open");
}

static void test_vg_import_clip_and_skip(void) {
    VgImportOptions o;
    vg_import_defaults(&o);
    o.regions_path = VG "bad/box_outside.json";
    o.image_data_path = VG "image_data.json";
    o.clip = 1;
    RegionMap m;
    VgImportStats st;
    CHECK(import(&o, &m, &st) == VCM_OK);
    CHECK(st.boxes_clipped == 1);
    const RegionEntry *e = regionmap_find(&m, "VG_100K/2.jpg");
    CHECK(e && e->regions[0].x1 == 451 && e->regions[0].y1 == 300);
    regionmap_free(&m);

    o.clip = 0;
    o.skip_bad = 1;   /* the region is dropped, counted under its reason */
    CHECK(import(&o, &m, &st) == VCM_OK);
    CHECK(st.bad_items == 1 && st.bad_by_reason[BAD_BOX_OUTSIDE] == 1 && st.regions_kept == 11);
    e = regionmap_find(&m, "VG_100K/2.jpg");
    CHECK(e && e->n_regions == 3);
    regionmap_free(&m);

    o.regions_path = VG "bad/regions_not_list.json";   /* a bad entry: the image is skipped */
    CHECK(import(&o, &m, &st) == VCM_OK);
    CHECK(st.bad_entries == 1 && st.bad_by_reason[BAD_WRONG_TYPE] == 1 && m.n == 2);
    regionmap_free(&m);
}

/* ---------------------------------------------------------------- "references" */

static int read_line(const char *path, long want, JsonlReader *rd, JsonlLine *ln) {
    if (jsonl_open(rd, path)) return -1;
    for (;;) {
        if (jsonl_next(rd, ln) || !ln->text) return -1;
        if (ln->line_no == want) return 0;
    }
}

static void test_references_parse(void) {
    JsonlReader rd;
    JsonlLine ln;
    Record r;
    int reason;
    /* line 1: a list of five regions, one with a fractional box */
    CHECK(read_line("tests/data/lskd_references.jsonl", 1, &rd, &ln) == 0);
    CHECK(record_parse(&ln, REC_ANY, &r, &reason) == VCM_OK);
    const RegionEntry *e = r.references;
    CHECK(e && e->n_regions == 5 && !strcmp(e->image, "astronaut.png") && e->line == 0);
    CHECK(e && e->regions[4].id == 4 && e->regions[4].x0 == 133.5f && e->regions[4].y1 == 423.5f);
    CHECK(e && e->regions[3].obj_guess && !strcmp(e->regions[3].obj_guess, "space shuttle"));
    CHECK(record_check_regions(&r, "c.jsonl", NULL, &reason) == VCM_OK);
    CHECK(record_regions(&r, NULL) == e);
    /* the example the model sees: the record's boxes, scaled */
    Example ex;
    CHECK(example_build(&r, e, 512, 512, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.n_regions == 3 && ex.orig_id[0] == 0 && ex.orig_id[1] == 3 && ex.orig_id[2] == 2);
    CHECK_NEAR(ex.box[0][0], 15.0, 1e-5);   /* 120 · 64/512 */
    CHECK_NEAR(ex.box[1][2], 58.75, 1e-5);  /* 470 · 64/512 */
    example_free(&ex);
    record_free(&r);
    jsonl_close(&rd);

    /* line 3: boxes with a fifth number (a score); line 4: two boxes and segms; line 5: an object */
    CHECK(read_line("tests/data/lskd_references.jsonl", 3, &rd, &ln) == 0);
    CHECK(record_parse(&ln, REC_ANY, &r, &reason) == VCM_OK);
    CHECK(r.references && r.references->n_regions == 3 && r.references->regions[1].x1 == 210);
    record_free(&r);
    CHECK(jsonl_next(&rd, &ln) == VCM_OK && record_parse(&ln, REC_ANY, &r, &reason) == VCM_OK);
    CHECK(r.references && r.references->regions[1].n_boxes == 2 && !r.references->regions[1].obj_guess);
    record_free(&r);
    CHECK(jsonl_next(&rd, &ln) == VCM_OK && record_parse(&ln, REC_ANY, &r, &reason) == VCM_OK);
    CHECK(r.references && r.references->n_regions == 3 && r.references->regions[2].id == 2 &&
          r.references->regions[2].x0 == 556);
    record_free(&r);
    jsonl_close(&rd);

    /* no references: the mapping is needed */
    CHECK(read_line("tests/data/lskd_corpus.jsonl", 1, &rd, &ln) == 0);
    CHECK(record_parse(&ln, REC_ANY, &r, &reason) == VCM_OK && !r.references);
    CHECK(record_check_regions(&r, "c.jsonl", NULL, &reason) == VCM_EINPUT && reason == BAD_IMAGE_NOT_IN_MAP);
    CHECK_STR_CONTAINS(vcm_error(), "c.jsonl:1: image \"astronaut.png\": the record has no \"references\" and no region mapping");
    record_free(&r);
    jsonl_close(&rd);
}

static void ref_fails(const char *file, int want_reason, const char *msg) {
    char path[256];
    snprintf(path, sizeof path, "tests/data/bad/%s", file);
    JsonlReader rd;
    JsonlLine ln;
    Record r;
    int reason = BAD_NONE;
    CHECK(read_line(path, 3, &rd, &ln) == 0);
    int rc = record_parse(&ln, REC_ANY, &r, &reason);
    if (rc == VCM_OK) {
        rc = record_check_regions(&r, path, NULL, &reason);
        record_free(&r);
    }
    CHECK_MSG(rc == VCM_EINPUT && reason == want_reason, "%s: rc %d reason %s", file, rc, bad_reason_name(reason));
    CHECK_STR_CONTAINS(vcm_error(), msg);
    jsonl_close(&rd);
}

static void test_references_errors(void) {
    ref_fails("references_wrong_type.jsonl", BAD_WRONG_TYPE,
              "references_wrong_type.jsonl:3: field \"references\": expected a list of regions, got a string");
    ref_fails("references_box_3_numbers.jsonl", BAD_BOX,
              "references_box_3_numbers.jsonl:3: field \"references[1].boxes[0]\": expected a box [x0, y0, x1, y1], got a "
              "list of fewer than 4 numbers");
    ref_fails("references_flat_box.jsonl", BAD_BOX,
              ":3: field \"references[1].boxes\": expected a list of boxes [[x0, y0, x1, y1], ...], got a list of numbers");
    ref_fails("references_box_string.jsonl", BAD_BOX,
              ":3: field \"references[0].boxes[0][2]\": a coordinate must be a number, got a string");
    ref_fails("references_missing_boxes.jsonl", BAD_MISSING_FIELD, ":3: field \"references[1]\": missing field \"boxes\"");
    ref_fails("references_missing_region.jsonl", BAD_MISSING_REGION,
              ":3: field \"region\": region id 1 is not in the record's \"references\" (1 region)");
    ref_fails("references_absent.jsonl", BAD_IMAGE_NOT_IN_MAP, ":3: image \"astronaut.png\": the record has no \"references\"");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vcm_test_vg_XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_stream_elements);
    RUN(test_stream_errors);
    RUN(test_vg_import_fixture);
    RUN(test_vg_import_options);
    RUN(test_vg_import_errors);
    RUN(test_vg_import_clip_and_skip);
    RUN(test_references_parse);
    RUN(test_references_errors);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
