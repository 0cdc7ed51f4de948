/* The text-only baseline (`--region-input text`): mentions become their regions'
 * literal descriptions (one id, several ids joined with " and ", MC question and
 * choices), a mentioned region without a description is an input error naming the
 * image and the mapping line, the configs and names, and a text-only student that
 * reads no pixel (the same loss and gradients for any image and boxes, no ViT
 * parameters) whose KV cache (empty prefix) gives the full forward's logits. */
#include "data/data.h"
#include "model/model.h"
#include "tests/test.h"

#include <unistd.h>

static char tmpdir[] = "/tmp/vcm_text_baseline_XXXXXX";

static const char *MAP =
    "{\"image\": \"a.png\", \"region_locations\": {\"0\": {\"boxes\": [[0, 0, 10, 10]]}, "
    "\"1\": {\"boxes\": [[10, 10, 20, 20]]}, \"2\": {\"boxes\": [[5, 5, 9, 9]]}}, "
    "\"region_descriptions\": {\"0\": \"a Red cup\", \"1\": \" a big blue bus on the left \", \"2\": \"a dog\"}}\n"
    "{\"image\": \"b.png\", \"region_locations\": {\"0\": {\"boxes\": [[0, 0, 10, 10]]}, "
    "\"1\": {\"boxes\": [[1, 1, 5, 5]]}}, \"region_descriptions\": {\"0\": \"a cat\"}}\n";

static int load_map(RegionMap *m) {
    char path[256];
    snprintf(path, sizeof path, "%s/regions.jsonl", tmpdir);
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fputs(MAP, f);
    fclose(f);
    return regionmap_load(path, m, 0, NULL);
}

static int parse(const char *text, Record *r) {
    JsonlLine ln = {.path = "corpus.jsonl", .line_no = 7, .text = text, .len = strlen(text)};
    return record_parse(&ln, REC_ANY, r, NULL);
}

static void test_corpus_record(void) {
    RegionMap m;
    CHECK(load_map(&m) == VCM_OK);
    Record r;
    CHECK(parse("{\"image\": \"a.png\", \"question\": [\"Could\", [1], \"fit\", \"inside\", [0], \"?\"], "
                "\"answer\": [\"No\", \",\", [1], \"is\", \"too\", \"big\", \".\"], "
                "\"rationale\": [[0, 1], \"are\", \"a\", \"cup\", \"and\", \"a\", \"bus\", \".\"]}",
                &r) == VCM_OK);
    const RegionEntry *e = regionmap_find(&m, "a.png");
    Example ex, ids;
    CHECK(example_build(&r, e, 100, 100, 64, 64, NULL, EXAMPLE_EVAL | EXAMPLE_DESCRIBE, &ex) == VCM_OK);
    /* descriptions lower-cased and trimmed; two ids joined with " and " */
    CHECK_MSG(ex.text && !strcmp(ex.text, "question: could a big blue bus on the left fit inside a red cup ? answer: no , "
                                          "a big blue bus on the left is too big . rationale: a red cup and a big blue "
                                          "bus on the left are a cup and a bus ."),
              "%s", ex.text);
    /* the same regions and boxes as without the flag: only the text differs */
    CHECK(example_build(&r, e, 100, 100, 64, 64, NULL, EXAMPLE_EVAL, &ids) == VCM_OK);
    CHECK(ids.text && strstr(ids.text, "could [0] fit inside [1] ?") && strstr(ids.text, "[1] , [0] are"));
    CHECK(ex.n_regions == ids.n_regions && !memcmp(ex.orig_id, ids.orig_id, sizeof ex.orig_id) &&
          !memcmp(ex.box, ids.box, sizeof ex.box));
    free(ids.text);
    ids.text = ex.text;   /* keep the described text to compare with training mode */
    ex.text = NULL;
    example_free(&ex);
    /* training mode: the coin flips and shuffles change the regions, never the text */
    for (uint64_t seed = 1; seed < 6; seed++) {
        uint64_t rng = seed;
        CHECK(example_build(&r, e, 100, 100, 64, 64, &rng, EXAMPLE_TRAIN | EXAMPLE_DESCRIBE, &ex) == VCM_OK);
        CHECK(ex.text && !strcmp(ex.text, ids.text));
        example_free(&ex);
    }
    example_free(&ids);
    char *s = words_describe(&r.question, e);
    CHECK_MSG(s && !strcmp(s, "could a big blue bus on the left fit inside a red cup ?"), "%s", s);
    free(s);
    record_free(&r);
    regionmap_free(&m);
}

static void test_mc_item(void) {
    RegionMap m;
    CHECK(load_map(&m) == VCM_OK);
    Record r;
    CHECK(parse("{\"image\": \"a.png\", \"regions\": [0, 1, 2], \"question\": [\"What\", \"is\", [2], \"for\", \"?\"], "
                "\"choices\": [[[2], \"guards\", \".\"], [[2], \"flies\", \".\"]], \"label\": 0}",
                &r) == VCM_OK);
    Example ex;
    CHECK(example_build(&r, regionmap_find(&m, "a.png"), 100, 100, 64, 64, NULL, EXAMPLE_EVAL | EXAMPLE_DESCRIBE, &ex) ==
          VCM_OK);
    CHECK_MSG(ex.text && !strcmp(ex.text, "question: what is a dog for ? answer:"), "%s", ex.text);
    CHECK(ex.n_choices == 2 && !strcmp(ex.choices[0], "a dog guards .") && !strcmp(ex.choices[1], "a dog flies ."));
    example_free(&ex);
    record_free(&r);
    regionmap_free(&m);
}

static void test_missing_description(void) {
    RegionMap m;
    CHECK(load_map(&m) == VCM_OK);
    Record r;
    /* region 1 of b.png has a box but no description: the mapping's line 2 */
    CHECK(parse("{\"image\": \"b.png\", \"question\": [\"Is\", [0], \"near\", [1], \"?\"], \"answer\": [\"yes\"], "
                "\"rationale\": [\"so\"]}",
                &r) == VCM_OK);
    Example ex;
    CHECK(example_build(&r, regionmap_find(&m, "b.png"), 100, 100, 64, 64, NULL, EXAMPLE_EVAL | EXAMPLE_DESCRIBE, &ex) ==
          VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "region 1 of image \"b.png\" has no description");
    CHECK_STR_CONTAINS(vcm_error(), "line 2 of the region mapping");
    CHECK(ex.text == NULL);
    /* with ids, the same record is fine */
    CHECK(example_build(&r, regionmap_find(&m, "b.png"), 100, 100, 64, 64, NULL, EXAMPLE_EVAL, &ex) == VCM_OK);
    example_free(&ex);
    record_free(&r);
    regionmap_free(&m);
}

static void test_config(void) {
    int mode = -1;
    CHECK(region_input_parse("text", &mode) == VCM_OK && mode == REGION_INPUT_TEXT);
    CHECK(!strcmp(region_input_name(REGION_INPUT_TEXT), "text"));
    CHECK(region_input_parse("txt", &mode) == VCM_EINPUT);
    ModelConfig nano, text, back;
    CHECK(model_config_named("nano", &nano) == VCM_OK && model_config_named("nano-text", &text) == VCM_OK);
    CHECK(text.region_input == REGION_INPUT_TEXT && text.max_text == nano.max_text * 3 / 2);
    CHECK(text.dec_d == nano.dec_d && text.dec_layers == nano.dec_layers && text.vocab == nano.vocab);
    char json[512];
    CHECK(model_config_to_json(&text, json, sizeof json) == VCM_OK);
    CHECK_STR_CONTAINS(json, "\"region_input\":\"text\"");
    CHECK(model_config_from_json(json, &back) == VCM_OK && !memcmp(&back, &text, sizeof back));
}

/* ---------------------------------------------------------------- the model */

static ModelConfig tiny(int region_input) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny");
    c.image = 32; c.patch = 8;
    c.vit_d = 32; c.vit_layers = 2; c.vit_heads = 2;
    c.dec_d = 40; c.dec_layers = 2; c.dec_heads = 2;
    c.vocab = 301; c.max_text = 24;
    c.region_input = region_input;
    return c;
}

enum { B = 2, T = 12, R = 2 };
typedef struct TB {
    Batch b;
    float images[B * 3 * 32 * 32], boxes[B * R * 4];
    int n_regions[B];
    int32_t tokens[B * T], targets[B * T];
} TB;

static void fill(TB *tb, unsigned long long pix_seed) {
    memset(tb, 0, sizeof *tb);
    unsigned long long s = pix_seed;
    for (int i = 0; i < B * 3 * 32 * 32; i++) tb->images[i] = test_uniform(&s);
    for (int i = 0; i < B * R; i++) {
        float x0 = 10 + 8 * test_uniform(&s), y0 = 10 + 8 * test_uniform(&s);
        float *bx = tb->boxes + 4 * i;
        bx[0] = x0; bx[1] = y0; bx[2] = x0 + 6; bx[3] = y0 + 5;
    }
    unsigned long long t = 99;   /* the text is the same for every pixel seed */
    for (int i = 0; i < B; i++) {
        tb->n_regions[i] = R;
        for (int k = 0; k < T; k++) tb->tokens[i * T + k] = k ? (int32_t)(BPE_REGION0 + test_rng_next(&t) % 280) : BPE_BOS;
        for (int k = 0; k < T; k++) tb->targets[i * T + k] = k + 1 < T ? tb->tokens[i * T + k + 1] : -1;
    }
    tb->b = (Batch){B, tb->images, R, tb->boxes, tb->n_regions, T, tb->tokens, tb->targets};
}

/* loss and the gradient of the token embedding for one batch */
static double loss_and_grad(Student *m, const Batch *b, float *grad) {
    Graph g;
    if (graph_init(&g, 1 << 20)) return NAN;
    params_zero_grad(&m->ps);
    Tensor *l = student_loss(&g, m, b);
    double v = l && !g.failed && !graph_backward(&g, l) ? l->data[0] : NAN;
    memcpy(grad, m->dec.tok.w->grad, sizeof(float) * (size_t)m->dec.tok.n * m->cfg.dec_d);
    graph_free(&g);
    return v;
}

static void test_model_reads_no_pixels(void) {
    ModelConfig c = tiny(REGION_INPUT_TEXT), r = tiny(REGION_INPUT_ROI);
    Student m, mr;
    CHECK(student_init(&m, &c, 5) == VCM_OK && student_init(&mr, &r, 5) == VCM_OK);
    /* no ViT, no bridge: nothing that reads an image exists */
    CHECK(params_find(&m.ps, "vit.patch_embed.weight") == NULL && params_find(&mr.ps, "vit.patch_embed.weight") != NULL);
    CHECK(params_find(&m.ps, "bridge.vis_proj.weight") == NULL);
    CHECK(params_count(&m.ps) < params_count(&mr.ps));
    size_t ng = (size_t)m.dec.tok.n * c.dec_d;
    float *g1 = malloc(sizeof(float) * ng), *g2 = malloc(sizeof(float) * ng);
    TB *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    fill(a, 1);
    fill(b, 2);
    CHECK(memcmp(a->images, b->images, sizeof a->images) && memcmp(a->boxes, b->boxes, sizeof a->boxes));
    double la = loss_and_grad(&m, &a->b, g1), lb = loss_and_grad(&m, &b->b, g2);
    CHECK(isfinite(la) && la == lb);                       /* bit for bit */
    CHECK(!memcmp(g1, g2, sizeof(float) * ng));
    /* and the roi student does read them (the test can fail) */
    size_t nr = (size_t)mr.dec.tok.n * r.dec_d;
    float *h1 = malloc(sizeof(float) * nr), *h2 = malloc(sizeof(float) * nr);
    CHECK(loss_and_grad(&mr, &a->b, h1) != loss_and_grad(&mr, &b->b, h2));
    free(h1); free(h2); free(g1); free(g2); free(a); free(b);
    student_free(&m);
    student_free(&mr);
}

/* The KV cache with an empty prefix: prefill of a prompt, then steps, equal the full forward. */
static void test_kv_cache(void) {
    ModelConfig c = tiny(REGION_INPUT_TEXT);
    Student m;
    CHECK(student_init(&m, &c, 9) == VCM_OK);
    unsigned long long s = 3;
    for (size_t i = 0; i < m.ps.n; i++) m.ps.params[i] += 0.25f * test_uniform(&s);
    TB *tb = malloc(sizeof *tb);
    fill(tb, 4);
    Batch one = tb->b;
    one.B = 1;
    Graph g;
    CHECK(graph_init(&g, 1 << 20) == VCM_OK);
    g.grad_enabled = 0;
    Tensor *full = student_logits(&g, &m, &one);
    CHECK(full && !g.failed);
    Infer in;
    CHECK(infer_init(&in, &m) == VCM_OK);
    Batch prompt = one;
    prompt.T = 5;
    CHECK(infer_prefill(&in, &prompt) == VCM_OK);
    CHECK(in.kv.prefix == 0 && in.kv.len == 5);
    int V = c.vocab;
    double worst = 0;
    for (int t = 4; t < T && full; t++) {
        const float *want = full->data + (size_t)t * V;
        double md = 0, mb = 1e-12;
        for (int i = 0; i < V; i++) {
            md = fmax(md, fabs((double)in.kv.logits[i] - want[i]));
            mb = fmax(mb, fabs((double)want[i]));
        }
        worst = fmax(worst, md / mb);
        if (t + 1 < T) CHECK(infer_step(&in, one.tokens[t + 1]) == VCM_OK);
    }
    CHECK_MSG(worst <= 1e-4, "cache vs full forward: %g relative", worst);
    infer_free(&in);
    graph_free(&g);
    free(tb);
    student_free(&m);
}

int main(void) {
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_corpus_record);
    RUN(test_mc_item);
    RUN(test_missing_description);
    RUN(test_config);
    RUN(test_model_reads_no_pixels);
    RUN(test_kv_cache);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
