/* The VCR reader (data/vcr.c) and the LSKD release's evaluation items (data/corpus.c):
 * the records they make, the prompts example_build renders from them, and each refusal
 * with its file, line and problem. Fixtures: tests/data/vcr/, tests/data/lskd_eval.jsonl. */
#include "data/data.h"
#include "tensor/tensor.h"
#include "tests/test.h"

#define ROOT "tests/data/vcr/vcr1images"

/* Line n (1-based) of path into *ln; the reader stays open for the caller to close. */
static int read_line(const char *path, int n, JsonlReader *rd, JsonlLine *ln) {
    if (jsonl_open(rd, path)) return -1;
    for (int i = 0; i < n; i++)
        if (jsonl_next(rd, ln) || !ln->text) { jsonl_close(rd); return -1; }
    return 0;
}

static void test_vcr_item(void) {
    JsonlReader rd;
    JsonlLine ln;
    VcrItem v;
    int reason = -1;
    CHECK(read_line("tests/data/vcr/val.jsonl", 1, &rd, &ln) == 0);
    CHECK_MSG(vcr_item_parse(&ln, ROOT, &v, &reason) == VCM_OK, "%s", vcm_error());
    CHECK(reason == BAD_NONE && v.n_objects == 2);
    const Record *qa = &v.qa, *qar = &v.qar;
    CHECK(qa->kind == REC_MC && !strcmp(qa->image, "lsmdc_space/astronaut.png") && qa->line == 1);
    CHECK(qa->n_choices == 4 && qa->label == 0 && qar->n_choices == 4 && qar->label == 0);
    CHECK(qa->question.n == 5 && qa->question.w[2].n_ids == 1 && qa->question.w[2].ids[0] == 0);
    /* the metadata's boxes (the score dropped), names as obj_guess, its size */
    const RegionEntry *e = qa->references;
    CHECK(e && e->n_regions == 2 && e->img_w == 512 && e->img_h == 512);
    CHECK(e && e->regions[0].x0 == 120 && e->regions[0].y0 == 15 && e->regions[0].x1 == 365 && e->regions[0].y1 == 512);
    CHECK(e && e->regions[1].obj_guess && !strcmp(e->regions[1].obj_guess, "flag"));
    CHECK(qa->n_region_all == 2 && qa->region_all[1] == 1);
    CHECK(record_check_regions(qa, "val.jsonl", NULL, &reason) == VCM_OK);
    CHECK(record_check_boxes(qa, "val.jsonl", 512, 512, &reason) == VCM_OK);
    CHECK(record_check_boxes(qa, "val.jsonl", 512, 500, &reason) == VCM_EINPUT && reason == BAD_BOX_OUTSIDE);
    CHECK_STR_CONTAINS(vcm_error(), "val.jsonl:1: field \"references\": region 0: box [120, 15, 365, 512] is outside the image");
    /* the prompts: Q→A after "answer:", QA→R after the right answer and "rationale:" */
    Example ex;
    CHECK(example_build(qa, e, 512, 512, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.text && !strcmp(ex.text, "question: what is [0] doing ? answer:"));
    CHECK(ex.n_choices == 4 && !strcmp(ex.choices[3], "[0] waves at [1] ."));
    CHECK(ex.n_regions == 2 && ex.orig_id[0] == 0 && ex.orig_id[1] == 1);
    example_free(&ex);
    CHECK(qar->prompt_answer == 1 && qar->answer.n == 4);
    CHECK(example_build(qar, qar->references, 512, 512, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.text && !strcmp(ex.text, "question: what is [0] doing ? answer: [0] is posing . rationale:"));
    CHECK(ex.n_choices == 4 && !strcmp(ex.choices[1], "the flag [1] is behind ."));
    example_free(&ex);
    vcr_item_free(&v);

    /* line 3: 18 objects; the referenced [17] and [5] first (renumbered [0], [1]), then the
     * others in index order up to 16 */
    CHECK(jsonl_next(&rd, &ln) == VCM_OK && jsonl_next(&rd, &ln) == VCM_OK && ln.line_no == 3);
    CHECK_MSG(vcr_item_parse(&ln, ROOT, &v, &reason) == VCM_OK, "%s", vcm_error());
    CHECK(v.n_objects == 18 && v.qa.references->n_regions == 18);
    CHECK(example_build(&v.qa, v.qa.references, 640, 427, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.n_regions == 16 && ex.orig_id[0] == 17 && ex.orig_id[1] == 5 && ex.orig_id[2] == 0 && ex.orig_id[15] == 14);
    CHECK(ex.text && !strcmp(ex.text, "question: is [0] near [1] ? answer:"));
    CHECK_NEAR(ex.box[1][2], 40.0, 1e-4);   /* 400 · 64/640 */
    example_free(&ex);
    CHECK(example_build(&v.qar, v.qar.references, 640, 427, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.text && !strcmp(ex.text, "question: is [0] near [1] ? answer: yes , [0] is close . rationale:"));
    CHECK(ex.n_choices == 4 && !strcmp(ex.choices[2], "[2] looks on ."));   /* object 2 → [2]: 0, 1 come first */
    example_free(&ex);
    vcr_item_free(&v);
    jsonl_close(&rd);
}

static void expect_bad(const char *file, int want_reason, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "tests/data/vcr/bad/%s", file);
    JsonlReader rd;
    JsonlLine ln;
    VcrItem v;
    int reason = -1;
    CHECK_MSG(read_line(path, 2, &rd, &ln) == 0, "%s", file);
    CHECK_MSG(vcr_item_parse(&ln, ROOT, &v, &reason) == VCM_EINPUT, "%s", file);
    CHECK_MSG(reason == want_reason, "%s: reason %s", file, bad_reason_name(reason));
    char want[512];
    snprintf(want, sizeof want, text[0] == ':' ? "%s:2%s" : "%s:2: %s", path, text);   /* ":COL: ..." for syntax */
    CHECK_STR_CONTAINS(vcm_error(), want);
    CHECK(v.qa.mem_ == NULL && v.qar.mem_ == NULL);
    jsonl_close(&rd);
}

static void test_vcr_errors(void) {
    expect_bad("missing_rationale.jsonl", BAD_MISSING_FIELD, "missing field \"rationale_choices\"");
    expect_bad("wrong_type.jsonl", BAD_WRONG_TYPE, "field \"question\": expected a list of words, got a string");
    expect_bad("label_out_of_range.jsonl", BAD_VALUE, "field \"answer_label\": 4 is out of range for 4 choices");
    expect_bad("object_out_of_range.jsonl", BAD_MISSING_REGION,
               "field \"answer_choices[1][0][0]\": object 3 is not one of the item's 2 objects");
    expect_bad("metadata_missing.jsonl", BAD_MISSING_IMAGE, "metadata \"movieclips_cat/no_such_file.json\": cannot open "
               ROOT "/movieclips_cat/no_such_file.json (No such file or directory)");
    expect_bad("metadata_syntax.jsonl", BAD_JSON_SYNTAX, "metadata " ROOT "/movieclips_cat/bad_syntax.json:2:34: '}' expected");
    expect_bad("metadata_box_outside.jsonl", BAD_BOX_OUTSIDE, "metadata " ROOT "/movieclips_cat/box_outside.json: field "
               "\"boxes[1]\": box [300, 100, 460, 300] is outside the image (451x300)");
    expect_bad("metadata_box_count.jsonl", BAD_VALUE, "metadata " ROOT "/movieclips_cat/one_box.json: 1 boxes for the item's 2 objects");
    expect_bad("metadata_no_width.jsonl", BAD_MISSING_FIELD, "metadata " ROOT "/movieclips_cat/no_width.json: missing field \"width\"");
    expect_bad("json_syntax.jsonl", BAD_JSON_SYNTAX, ":488: premature end of input");
    /* the reader takes the metadata's size; the image is compared with it by vcm eval */
    JsonlReader rd;
    JsonlLine ln;
    VcrItem v;
    CHECK(read_line("tests/data/vcr/bad/image_size_mismatch.jsonl", 2, &rd, &ln) == 0);
    CHECK(vcr_item_parse(&ln, ROOT, &v, NULL) == VCM_OK);
    CHECK(v.qa.references && v.qa.references->img_w == 450);
    vcr_item_free(&v);
    jsonl_close(&rd);
}

static void test_lskd_eval_items(void) {
    JsonlReader rd;
    JsonlLine ln;
    Record r;
    int reason;
    Example ex;
    CHECK(read_line("tests/data/lskd_eval.jsonl", 1, &rd, &ln) == 0);
    CHECK_MSG(record_parse(&ln, REC_MC, &r, &reason) == VCM_OK, "%s", vcm_error());
    CHECK(r.kind == REC_MC && r.question.n == 5 && r.n_choices == 3 && r.label == 0 && !r.answer_prefix);
    CHECK(r.references && r.references->n_regions == 2 && r.n_region_all == 2);   /* all its references shown */
    CHECK(example_build(&r, r.references, 512, 512, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.text && !strcmp(ex.text, "question: what is [0] doing ? answer:") && !strcmp(ex.choices[2], "[0] waves at [1] ."));
    CHECK(ex.n_regions == 2);
    example_free(&ex);
    record_free(&r);
    /* line 2: answer_prefix " Rationale: " → "rationale:"; ids renumbered by first mention */
    CHECK(jsonl_next(&rd, &ln) == VCM_OK && record_parse(&ln, REC_MC, &r, &reason) == VCM_OK);
    CHECK(r.answer_prefix && !strcmp(r.answer_prefix, "Rationale:"));
    CHECK(example_build(&r, r.references, 451, 300, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    CHECK(ex.text && !strcmp(ex.text, "question: why is [0] here ? answer: [0] lives here . rationale:"));
    CHECK(ex.n_choices == 4 && !strcmp(ex.choices[0], "[0] sleeps on [1] .") && ex.orig_id[0] == 1);
    example_free(&ex);
    record_free(&r);
    /* line 3: references as a list, a region no text names still shown */
    CHECK(jsonl_next(&rd, &ln) == VCM_OK && record_parse(&ln, REC_MC, &r, &reason) == VCM_OK);
    CHECK(r.label == 1 && r.n_region_all == 1);
    CHECK(example_build(&r, r.references, 600, 400, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK && ex.n_regions == 1);
    example_free(&ex);
    record_free(&r);
    jsonl_close(&rd);

    static const struct { const char *file; int reason; const char *text; } bad[] = {
        {"lskd_eval_no_text_output.jsonl", BAD_MISSING_FIELD, "field \"choices[1]\": missing field \"text_output\""},
        {"lskd_eval_label.jsonl", BAD_VALUE, "field \"label\": 4 is out of range for 4 choices"},
        {"lskd_eval_text_input.jsonl", BAD_WRONG_TYPE, "field \"text_input\": expected a list of words, got a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[256], want[512];
        snprintf(path, sizeof path, "tests/data/bad/%s", bad[i].file);
        snprintf(want, sizeof want, "%s:2: %s", path, bad[i].text);
        CHECK(read_line(path, 2, &rd, &ln) == 0);
        CHECK_MSG(record_parse(&ln, REC_MC, &r, &reason) == VCM_EINPUT && reason == bad[i].reason, "%s", bad[i].file);
        CHECK_STR_CONTAINS(vcm_error(), want);
        jsonl_close(&rd);
    }
    /* no references: the mapping is needed */
    CHECK(read_line("tests/data/bad/lskd_eval_no_references.jsonl", 2, &rd, &ln) == 0);
    CHECK(record_parse(&ln, REC_MC, &r, &reason) == VCM_OK);
    CHECK(record_check_regions(&r, "e.jsonl", NULL, &reason) == VCM_EINPUT && reason == BAD_IMAGE_NOT_IN_MAP);
    record_free(&r);
    jsonl_close(&rd);
}

int main(void) {
    RUN(test_vcr_item);
    RUN(test_vcr_errors);
    RUN(test_lskd_eval_items);
    return test_summary();
}
