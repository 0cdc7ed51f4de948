/* vcm distill: the library parts (prompt, words, reply parsing, chat protocol, output
 * file) as unit tests, then the command end to end against tests/fake_llm.h, a fake
 * LLM on 127.0.0.1: well-formed, fenced, malformed and out-of-range replies, 429 then
 * success, 500s, a stall past the timeout, resuming, a repaired partial line, SIGKILL
 * and SIGINT mid-run, the request budget, the API key. */
#include "distill/distill.h"
#include "tensor/tensor.h"
#include "tests/fake_llm.h"
#include "tests/test.h"
#include "tests/vcm_run.h"

#include <sys/stat.h>

static int json_eq_text(const json_t *v, const char *text) {
    json_t *w = json_loads(text, JSON_DECODE_ANY, NULL);
    int eq = w && json_equal((json_t *)v, w);
    json_decref(w);
    return eq;
}

/* ================================================================ unit tests */

static RegionBox test_boxes[3] = {
    {.id = 0, .x0 = 1, .y0 = 1, .x1 = 10, .y1 = 10, .obj_guess = "apple", .description = "a red apple"},
    {.id = 1, .x0 = 0, .y0 = 0, .x1 = 30, .y1 = 20, .obj_guess = "table", .description = NULL},
    {.id = 2, .x0 = 5, .y0 = 5, .x1 = 9, .y1 = 9, .obj_guess = NULL, .description = "a blue cup"},
};
static char *test_globals[1] = {"  a kitchen table with fruit  "};
static RegionEntry test_entry = {.image = "img/a.jpg", .regions = test_boxes, .n_regions = 3,
                                 .global = test_globals, .n_global = 1};

static int words_are(const char *text, const char *expect) {
    json_t *w = distill_words(text);
    int ok = w && json_eq_text(w, expect);
    if (!ok) {
        char *d = w ? json_dumps(w, 0) : NULL;
        fprintf(stderr, "  words(\"%s\") = %s, wanted %s\n", text, d ? d : "NULL", expect);
        free(d);
    }
    json_decref(w);
    return ok;
}

static void test_words_split_punctuation_and_mentions(void) {
    CHECK(words_are("What is [4] doing?", "[\"What\", \"is\", [4], \"doing\", \"?\"]"));
    CHECK(words_are("[0] and [1]", "[[0], \"and\", [1]]"));
    CHECK(words_are("[0], [1]", "[[0], \",\", [1]]"));
    CHECK(words_are("near [0, 2] now", "[\"near\", [0, 2], \"now\"]"));
    CHECK(words_are("near [0][2].", "[\"near\", [0, 2], \".\"]"));
    CHECK(words_are("[ 3 ,3, 1 ]", "[[3, 1]]"));
    CHECK(words_are("[0]'s cup isn't well-known, 3.5 or 1,000...", "[[0], \"'s\", \"cup\", \"isn't\", \"well-known\", \",\", \"3.5\", \"or\", \"1,000\", \"...\"]"));
    CHECK(words_are("[a] [-1] [1234567]", "[\"[\", \"a\", \"]\", \"[\", \"-\", \"1\", \"]\", \"[\", \"1234567\", \"]\"]"));
    CHECK(words_are("  café [1]!  ", "[\"café\", [1], \"!\"]"));
    CHECK(words_are("", "[]"));
}

static void test_prompt_builtin_and_render(void) {
    DistillPrompt p;
    CHECK(distill_prompt_load(NULL, &p) == VCM_OK);
    CHECK(p.version && !strcmp(p.version, "v1"));
    CHECK(p.system != NULL && p.user != NULL);
    /* the embedded text is the file in the repository, byte for byte */
    char *file = vr_slurp("distill/prompt_v1.txt", NULL);
    CHECK(file && !strcmp(file, distill_prompt_builtin()));
    free(file);
    char *sys, *user;
    CHECK(distill_prompt_render(&p, &test_entry, 4, &sys, &user) == VCM_OK);
    CHECK_STR_CONTAINS(user, "Image description: a kitchen table with fruit\n");
    CHECK_STR_CONTAINS(user, "[0]: a red apple\n[1]: table\n[2]: a blue cup\n");
    CHECK_STR_CONTAINS(user, "Write 4 question/answer/rationale");
    CHECK_STR_CONTAINS(user, "([0], [1], [2])");
    CHECK_STR_CONTAINS(user, "has 3 regions");
    CHECK(!strstr(user, "{{") && !strstr(user, "@"));
    CHECK(sys && !strstr(sys, "@"));
    free(sys);
    free(user);
    distill_prompt_free(&p);
}

static void test_prompt_directives_and_errors(void) {
    DistillPrompt p;
    const char *t = "@# a comment\n\n{{image}} has {{n_regions}}\n@@literal\n";
    CHECK(distill_prompt_parse(t, strlen(t), "t.txt", &p) == VCM_OK);
    CHECK(p.system == NULL && p.user && !strcmp(p.user, "{{image}} has {{n_regions}}\n@literal"));
    CHECK(!strncmp(p.version, "custom-", 7) && strlen(p.version) == 15);
    char *sys, *user;
    CHECK(distill_prompt_render(&p, &test_entry, 1, &sys, &user) == VCM_OK);
    CHECK(sys == NULL && user && !strcmp(user, "img/a.jpg has 3\n@literal"));
    free(user);
    distill_prompt_free(&p);

    const char *bad1 = "@version v2\nline\nask {{globl}} now\n";
    CHECK(distill_prompt_parse(bad1, strlen(bad1), "b.txt", &p) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "b.txt:3:5: unknown placeholder");
    const char *bad2 = "@usr\nx\n";
    CHECK(distill_prompt_parse(bad2, strlen(bad2), "c.txt", &p) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "c.txt:1:1: unknown directive");
    const char *bad3 = "@version v/2\nx\n";
    CHECK(distill_prompt_parse(bad3, strlen(bad3), "d.txt", &p) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "d.txt:1:11");
    const char *bad4 = "@system\nonly a system part\n";
    CHECK(distill_prompt_parse(bad4, strlen(bad4), "e.txt", &p) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "no user message");
    CHECK(distill_prompt_load("/nonexistent/prompt.txt", &p) == VCM_EINPUT);
}

static void test_extract_json_finds_and_repairs(void) {
    json_t *v;
    CHECK(distill_extract_json("[{\"question\": \"a\"}]", &v) == -1 && json_array_size(v) == 1);
    json_decref(v);
    const char *fenced = "Sure! Here you go:\n```json\n[{\"q\": \"[0] x\", \"b\": [1, 2,],},\n]\n```\nHope [0] helps.";
    CHECK(distill_extract_json(fenced, &v) == -1);
    CHECK(v && json_eq_text(v, "[{\"q\": \"[0] x\", \"b\": [1, 2]}]"));
    json_decref(v);
    /* prose around, no fence; a raw newline inside a string */
    CHECK(distill_extract_json("Regions [0] and [1]: {\"items\": [{\"question\": \"line\nbreak\"}]} bye", &v) == -1);
    CHECK(v && json_eq_text(v, "{\"items\": [{\"question\": \"line break\"}]}"));
    json_decref(v);
    /* cut short by max_tokens: the complete elements are kept */
    CHECK(distill_extract_json("[{\"a\": \"1\"}, {\"a\": \"2\"}, {\"a\": \"thr", &v) == -1);
    CHECK(v && json_eq_text(v, "[{\"a\": \"1\"}, {\"a\": \"2\"}]"));
    json_decref(v);
    CHECK(distill_extract_json("42", &v) == DISTILL_DROP_NOT_A_LIST && !v);
    CHECK(distill_extract_json("[\"just\", \"strings\"]", &v) == DISTILL_DROP_NOT_A_LIST && !v);
    CHECK(distill_extract_json("[0]", &v) == DISTILL_DROP_NOT_A_LIST);
    CHECK(distill_extract_json("[0] is a dog.", &v) == DISTILL_DROP_NO_JSON);
    CHECK(distill_extract_json("I think [0] is a dog.", &v) == DISTILL_DROP_NO_JSON && !v);
    CHECK(distill_extract_json("", &v) == DISTILL_DROP_NO_JSON);
    CHECK(distill_extract_json("[{\"question\": \"x\" \"answer\": \"y\"}]", &v) == DISTILL_DROP_BAD_JSON && !v);
    CHECK(distill_extract_json("```\n[{\"q\": 1\n```", &v) == DISTILL_DROP_BAD_JSON);
    /* a reasoning model's thoughts are not its answer */
    CHECK(distill_extract_json("<think>maybe {\"question\": \"draft\"}?</think>\n[{\"question\": \"final\"}]", &v) == -1);
    CHECK(v && json_eq_text(v, "[{\"question\": \"final\"}]"));
    json_decref(v);
}

static void test_parse_reply_keeps_good_items_counts_bad(void) {
    const char *reply =
        "[{\"question\": \"What is [0] for?\", \"answer\": \"[0] is for eating.\", \"rationale\": \"[0] is on [1].\"},"
        " {\"question\": \"What is [7]?\", \"answer\": \"x\", \"rationale\": \"y\"},"
        " {\"question\": \"Where is [0, 9]?\", \"answer\": \"x\", \"rationale\": \"y\"},"
        " {\"question\": \"What is [0]?\", \"answer\": \"fruit\"},"
        " {\"question\": \" \", \"answer\": \"[0]\", \"rationale\": \"x\"},"
        " {\"question\": \"What is [1]?\", \"answer\": 3, \"rationale\": \"x\"},"
        " \"a string\","
        " {\"Question\": \"Why is [2][0] here?\", \"ANSWER\": \"[2] holds the drink.\", \"Rationale\": \"[2] is a cup.\", \"confidence\": 0.9},"
        " {\"question\": \"What color is the sky?\", \"answer\": \"Blue.\", \"rationale\": \"Day.\"},"
        " {\"question\": \"what is  [0] for?\", \"answer\": \"[0] is for eating.\", \"rationale\": \"other\"}]";
    long drops[DISTILL_N_DROPS] = {0};
    json_t *recs = json_array();
    int n = distill_parse_reply(reply, &test_entry, 7, "src_v1", recs, drops);
    CHECK(n == 2 && json_array_size(recs) == 2);
    CHECK(drops[DISTILL_DROP_UNKNOWN_REGION] == 2);
    CHECK(drops[DISTILL_DROP_MISSING_FIELD] == 1);
    CHECK(drops[DISTILL_DROP_EMPTY_FIELD] == 1);
    CHECK(drops[DISTILL_DROP_NOT_A_STRING] == 1);
    CHECK(drops[DISTILL_DROP_NOT_AN_OBJECT] == 1);
    CHECK(drops[DISTILL_DROP_NO_REGION] == 1);
    CHECK(drops[DISTILL_DROP_DUPLICATE] == 1);
    char *line = json_dumps(json_array_get(recs, 0), 0);
    CHECK(line && !strcmp(line,
        "{\"image\": \"img/a.jpg\", \"source\": \"src_v1\", \"split\": \"train\", \"index\": \"src_v1-700\", "
        "\"region\": [0, 1], \"region_all\": [0, 1, 2], "
        "\"question\": [\"What\", \"is\", [0], \"for\", \"?\"], "
        "\"answer\": [[0], \"is\", \"for\", \"eating\", \".\"], "
        "\"rationale\": [[0], \"is\", \"on\", [1], \".\"]}"));
    free(line);
    json_t *r1 = json_array_get(recs, 1);
    CHECK(json_eq_text(json_object_get(r1, "index"), "\"src_v1-701\""));
    CHECK(json_eq_text(json_object_get(r1, "region"), "[0, 2]"));
    CHECK(json_eq_text(json_object_get(r1, "question"), "[\"Why\", \"is\", [2, 0], \"here\", \"?\"]"));
    CHECK(json_object_get(r1, "confidence") == NULL);
    json_decref(recs);

    /* a reply that is not usable at all: one drop for the reply */
    memset(drops, 0, sizeof drops);
    recs = json_array();
    CHECK(distill_parse_reply("Sorry, I can't.", &test_entry, 0, "s", recs, drops) == 0);
    CHECK(drops[DISTILL_DROP_NO_JSON] == 1 && json_array_size(recs) == 0);
    CHECK(distill_parse_reply("{\"note\": \"none\"}", &test_entry, 0, "s", recs, drops) == 0);
    CHECK(drops[DISTILL_DROP_NOT_A_LIST] == 1);
    /* a lone object is one item */
    CHECK(distill_parse_reply("{\"question\": \"Is [1] wood?\", \"answer\": \"Yes.\", \"rationale\": \"Tables are.\"}",
                              &test_entry, 0, "s", recs, drops) == 1);
    json_decref(recs);
}

static void test_parse_reply_caps_items(void) {
    char *buf = malloc(200 * 120 + 16), *o = buf;
    o += sprintf(o, "[");
    for (int i = 0; i < DISTILL_MAX_PER_IMAGE + 5; i++)
        o += sprintf(o, "%s{\"question\": \"q%d [0]?\", \"answer\": \"a\", \"rationale\": \"r\"}", i ? "," : "", i);
    sprintf(o, "]");
    long drops[DISTILL_N_DROPS] = {0};
    json_t *recs = json_array();
    CHECK(distill_parse_reply(buf, &test_entry, 0, "s", recs, drops) == DISTILL_MAX_PER_IMAGE);
    CHECK(drops[DISTILL_DROP_TOO_MANY] == 5);
    json_decref(recs);
    free(buf);
}

/* Mangled replies (cut, bytes replaced by JSON punctuation) never crash the parser and
 * never give a record that breaks the rules: every kept record's mentions are regions
 * of the image. Run under the sanitizers this is a small fuzzer. */
static void test_parse_reply_survives_mangled_replies(void) {
    const char *base =
        "Here:\n```json\n[{\"question\": \"What is [0] for?\", \"answer\": \"[0] is for eating.\", \"rationale\": \"[0] is on [1].\"},"
        " {\"question\": \"Could [2][1] hold \\\"water\\\"?\", \"answer\": \"Yes, [2] can.\", \"rationale\": \"[2] is a cup.\",},]\n```\nbye";
    const char marks[] = "[]{}\",:\\` \n0123";
    size_t n = strlen(base);
    char *buf = malloc(n + 1);
    unsigned long long rng = 7;
    long total = 0, bad = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, base, n + 1);
        int edits = (int)(test_rng_next(&rng) % 4);
        for (int k = 0; k < edits; k++)
            buf[test_rng_next(&rng) % n] = marks[test_rng_next(&rng) % (sizeof marks - 1)];
        if (test_rng_next(&rng) % 3 == 0) buf[test_rng_next(&rng) % n] = 0;
        long drops[DISTILL_N_DROPS] = {0};
        json_t *recs = json_array();
        int got = distill_parse_reply(buf, &test_entry, 1, "s", recs, drops);
        if (got < 0 || got != (int)json_array_size(recs)) bad++;
        size_t i, j, k;
        json_t *r, *w, *id;
        json_array_foreach(recs, i, r) {
            const char *f[3] = {"question", "answer", "rationale"};
            for (int q = 0; q < 3; q++)
                json_array_foreach(json_object_get(r, f[q]), j, w) {
                    if (json_is_string(w)) { if (!*json_string_value(w)) bad++; continue; }
                    json_array_foreach(w, k, id) if (!region_entry_box(&test_entry, (int)json_integer_value(id))) bad++;
                }
        }
        total += got > 0 ? got : 0;
        json_decref(recs);
    }
    free(buf);
    CHECK(bad == 0);
    CHECK(total > 1000);   /* most mangled replies still give records */
}

static void test_chat_url_and_bodies(void) {
    struct { const char *in, *out; } cases[] = {
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/chat/completions"},
        {"http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/chat/completions"},
        {"https://api.example.com/v1", "https://api.example.com/v1/chat/completions"},
        {"https://api.example.com/v1/", "https://api.example.com/v1/chat/completions"},
        {"https://x.org/openai/deployments/m/chat/completions?api-version=1", "https://x.org/openai/deployments/m/chat/completions?api-version=1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *u = distill_chat_url(cases[i].in);
        CHECK_MSG(u && !strcmp(u, cases[i].out), "%s -> %s", cases[i].in, u ? u : "NULL");
        free(u);
    }
    char *req = distill_chat_request("m1", "sys", "user \"q\"", 0.5, 42, 100);
    json_t *j = req ? json_loads(req, 0, NULL) : NULL;
    CHECK(j && json_eq_text(json_object_get(j, "messages"),
                            "[{\"role\": \"system\", \"content\": \"sys\"}, {\"role\": \"user\", \"content\": \"user \\\"q\\\"\"}]"));
    CHECK(json_integer_value(json_object_get(j, "seed")) == 42);
    CHECK(json_integer_value(json_object_get(j, "max_tokens")) == 100);
    CHECK(vr_jstr_is(json_object_get(j, "model"), "m1"));
    json_decref(j);
    free(req);
    char *c;
    const char *ok = "{\"choices\": [{\"message\": {\"role\": \"assistant\", \"content\": \"hi\"}}]}";
    CHECK(distill_chat_content(ok, strlen(ok), &c) == VCM_OK && c && !strcmp(c, "hi"));
    free(c);
    const char *err = "{\"error\": {\"message\": \"model not loaded\"}}";
    CHECK(distill_chat_content(err, strlen(err), &c) == VCM_EINPUT && !c);
    CHECK_STR_CONTAINS(vcm_error(), "model not loaded");
    CHECK(distill_chat_content("<html>", 6, &c) == VCM_EINPUT);
}

static void test_outfile_repairs_tail_and_remembers_images(void) {
    const char *path = vr_path("unit_out.jsonl");
    vr_write(path, "{\"image\": \"a\", \"x\": 1}\n\n{\"image\": \"b\"}\n{\"image\": \"c\", \"que", "w");
    DistillOut o;
    CHECK(distill_out_open(path, NULL, &o) == VCM_OK);
    CHECK(o.truncated_bytes == 19 && o.n_lines == 3);
    CHECK(distill_out_has(&o, "a") && distill_out_has(&o, "b") && !distill_out_has(&o, "c"));
    /* a second writer is refused while the first holds the file */
    DistillOut o2;
    CHECK(distill_out_open(path, NULL, &o2) == VCM_ERR);
    CHECK_STR_CONTAINS(vcm_error(), "another process");
    CHECK(distill_out_append(&o, "c", "{\"image\": \"c\"}\n", 15) == VCM_OK);
    CHECK(distill_out_has(&o, "c"));
    CHECK(distill_out_append(&o, "d", "no newline", 10) != VCM_OK);
    distill_out_close(&o);
    char *text = vr_slurp(path, NULL);
    CHECK(text && !strcmp(text, "{\"image\": \"a\", \"x\": 1}\n\n{\"image\": \"b\"}\n{\"image\": \"c\"}\n"));
    free(text);
    /* only the records of the run's source make an image done */
    vr_write(path, "{\"image\": \"a\", \"source\": \"s1\"}\n{\"image\": \"b\", \"source\": \"s2\"}\n{\"image\": \"c\"}\n", "w");
    CHECK(distill_out_open(path, "s1", &o) == VCM_OK);
    CHECK(distill_out_has(&o, "a") && !distill_out_has(&o, "b") && !distill_out_has(&o, "c"));
    distill_out_close(&o);
    vr_write(path, "{\"image\": \"a\"}\n{\"image\": 3}\n", "w");
    CHECK(distill_out_open(path, NULL, &o) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "unit_out.jsonl:2:1:");
    vr_write(path, "{\"image\": \"a\"}\nnot json\n", "w");
    CHECK(distill_out_open(path, NULL, &o) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "unit_out.jsonl:2:");
}

/* ================================================================ the fake LLM */

#define GOOD3 "[{\"question\": \"What is [0] for?\", \"answer\": \"[0] is for eating.\", \"rationale\": \"[0] is a ripe apple on [1].\"}," \
              " {\"question\": \"Could [2] hold water?\", \"answer\": \"Yes, [2] can hold water.\", \"rationale\": \"[2] is a cup.\"}," \
              " {\"question\": \"Why is [0] on [1]?\", \"answer\": \"Someone left [0] on [1] to eat later.\", \"rationale\": \"Fruit is often left on tables.\"}]"
#define GOOD1 "[{\"question\": \"What will happen to [0]?\", \"answer\": \"Someone will eat [0].\", \"rationale\": \"[0] is ripe.\"}]"

static FakeReply reply_for(const char *c, int attempt) {
    FakeReply r = {200, NULL, NULL, NULL, 0};
    if (!strcmp(c, "good")) r.content = GOOD3;
    else if (!strcmp(c, "fenced"))
        r.content = "Sure! Here are the triples:\n```json\n[\n {\"question\": \"What is [0] near?\", \"answer\": \"[0] is near [1].\", \"rationale\": \"[0] sits on [1].\",},\n"
                    " {\"question\": \"Who uses [2]?\", \"answer\": \"A person drinks from [2].\", \"rationale\": \"[2] is a cup.\"},\n]\n```\nLet me know if you need more about [0].";
    else if (!strcmp(c, "malformed"))
        r.content = "Here you go: [{\"question\": \"What is [0]?\", \"answer\": \"[0] is an apple.\" \"rationale\": \"It is red.\"}]";
    else if (!strcmp(c, "badids"))
        r.content = "[{\"question\": \"What is [7] doing?\", \"answer\": \"[7] waits.\", \"rationale\": \"x\"},"
                    " {\"question\": \"Is [0] on [1]?\", \"answer\": \"Yes, [0] is on [1].\", \"rationale\": \"[0] rests on [1].\"},"
                    " {\"question\": \"Where is [0, 9]?\", \"answer\": \"Here.\", \"rationale\": \"x\"}]";
    else if (!strcmp(c, "mixed"))
        r.content = "[{\"question\": \"What is [0]?\", \"answer\": \"[0] is fruit.\"},"
                    " {\"question\": \"\", \"answer\": \"[0]\", \"rationale\": \"x\"},"
                    " {\"question\": \"What is [1]?\", \"answer\": 3, \"rationale\": \"x\"},"
                    " \"just a string\","
                    " {\"Question\": \"Why is [2] here?\", \"ANSWER\": \"[2] holds the drink.\", \"rationale\": \"[2] is a cup.\", \"confidence\": 0.9},"
                    " {\"question\": \"What color is the sky?\", \"answer\": \"Blue.\", \"rationale\": \"It is day.\"},"
                    " {\"question\": \"Why is [2] here?\", \"answer\": \"[2] holds the drink.\", \"rationale\": \"again\"}]";
    else if (!strcmp(c, "objtop"))
        r.content = "{\"triples\": [{\"question\": \"Is [1] sturdy?\", \"answer\": \"Yes, [1] is sturdy.\", \"rationale\": \"[1] holds [0] and [2].\"},"
                    " {\"question\": \"Is [2] full?\", \"answer\": \"Maybe.\", \"rationale\": \"[2] is a cup.\"}]}";
    else if (!strcmp(c, "scalar")) r.content = "42";
    else if (!strcmp(c, "prose")) r.content = "I am sorry, but I cannot describe this image.";
    else if (!strcmp(c, "truncated"))
        r.content = "[{\"question\": \"What is [0]?\", \"answer\": \"[0] is an apple.\", \"rationale\": \"[0] is red.\"}, {\"question\": \"Why is [1";
    else if (!strcmp(c, "r429")) {
        if (attempt == 1) { r.status = 429; r.headers = "Retry-After: 1\r\n"; }
        else r.content = GOOD1;
    } else if (!strcmp(c, "r500")) r.status = 500;
    else if (!strcmp(c, "stall")) {
        r.content = GOOD1;
        if (attempt == 1) r.delay_ms = 2500;
    } else if (!strcmp(c, "slow")) { r.content = GOOD1; r.delay_ms = 150; }
    else if (!strcmp(c, "hang")) { r.content = GOOD1; r.delay_ms = 5000; }
    else if (!strcmp(c, "unauth")) r.status = 401;
    else if (!strcmp(c, "badresp")) { r.status = 200; r.raw_body = "<html>not json</html>"; }
    else { r.status = 400; }
    return r;
}

static FakeLLM server;
static char endpoint[64];

/* A region mapping: image i is "img_<case>_<i>.png", its global caption carries the
 * "case:" tag the fake LLM routes by. */
static void write_map(const char *path, const char *const *cases, int n) {
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"image\": \"img_%s_%02d.png\", \"region_locations\": {\"0\": {\"boxes\": [[1, 2, 30, 40]], \"obj_guess\": \"apple\"},"
                   " \"1\": {\"boxes\": [[0, 0, 60, 50]], \"obj_guess\": \"table\"}, \"2\": {\"boxes\": [[40, 5, 55, 25]], \"obj_guess\": \"cup\"}},"
                   " \"global\": [\"case:%s a kitchen table\"], \"region_descriptions\": {\"0\": \"a red apple\", \"1\": \"a wooden table\", \"2\": \"a blue cup\"}}\n",
                cases[i], i, cases[i]);
    fclose(f);
}

/* `vcm distill ARGS...`; sig once `watch` holds signal_at_lines lines (0: never). */
static VcmRun run_vcm(const char *const *args, const char *api_key, const char *watch,
                      long signal_at_lines, int sig) {
    return vcm_run("distill", args, api_key, watch, signal_at_lines, 0, 0, sig);
}

/* Every line of the corpus parses and carries the record fields; returns the
 * number of lines, -1 if one is bad. Images seen are counted into *n_images. */
static long check_corpus(const char *path, int *n_images) {
    size_t len;
    char *t = vr_slurp(path, &len);
    if (!t) return -1;
    if (len && t[len - 1] != '\n') { free(t); return -1; }
    long n = 0;
    json_t *images = json_object(), *indexes = json_object();
    for (char *line = t, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = 0;
        json_t *r = json_loads(line, 0, NULL);
        const char *idx = json_string_value(json_object_get(r, "index"));
        int ok = r && json_is_string(json_object_get(r, "image")) && idx &&
                 json_is_array(json_object_get(r, "question")) && json_is_array(json_object_get(r, "answer")) &&
                 json_is_array(json_object_get(r, "rationale")) && json_array_size(json_object_get(r, "region")) > 0 &&
                 json_array_size(json_object_get(r, "region_all")) == 3 &&
                 vr_jstr_is(json_object_get(r, "split"), "train") &&
                 !json_object_get(indexes, idx);
        if (ok) {
            json_object_set_new(indexes, idx, json_true());
            json_object_set_new(images, json_string_value(json_object_get(r, "image")), json_true());
        }
        json_decref(r);
        if (!ok) { fprintf(stderr, "  bad or repeated line %ld: %.300s\n", n + 1, line); n = -1; break; }
        n++;
    }
    if (n_images) *n_images = (int)json_object_size(images);
    json_decref(images);
    json_decref(indexes);
    free(t);
    return n;
}

static const char *const main_cases[] = {"good", "fenced", "malformed", "badids", "mixed", "objtop",
                                         "scalar", "prose", "r429", "r500", "stall", "truncated"};

static void test_cli_replies_retries_and_drops(void) {
    const char *map = vr_path("main_map.jsonl"), *out = vr_path("main_out.jsonl");
    write_map(map, main_cases, 12);
    const char *args[] = {"--regions", map, "--endpoint", endpoint, "--model", "fake-model", "--out", out,
                          "--parallel", "4", "--retries", "2", "--timeout", "1", "--backoff", "0.05", NULL};
    VcmRun r = run_vcm(args, NULL, NULL, 0, 0);
    CHECK_MSG(r.code == 1, "exit %d (one image failed: want 1)\n%s", r.code, r.err);
    json_t *s = vr_summary(&r);
    CHECK(s != NULL);
    CHECK(vr_jget(s, "records") == 12);
    CHECK(vr_jget(s, "images.total") == 12 && vr_jget(s, "images.done") == 8 && vr_jget(s, "images.empty") == 3);
    CHECK(vr_jget(s, "images.failed") == 1 && vr_jget(s, "images.skipped") == 0 && vr_jget(s, "images.pending") == 0);
    CHECK(vr_jget(s, "requests") == 16 && vr_jget(s, "retries") == 4);
    CHECK(vr_jget(s, "timeouts") == 1 && vr_jget(s, "http_429") == 1 && vr_jget(s, "http_5xx") == 3);
    CHECK(vr_jget(s, "failures.gave_up") == 1);
    CHECK(vr_jget(s, "drops.bad_json") == 1 && vr_jget(s, "drops.not_a_list") == 1 && vr_jget(s, "drops.no_json") == 1);
    CHECK(vr_jget(s, "drops.unknown_region") == 2 && vr_jget(s, "drops.missing_field") == 1);
    CHECK(vr_jget(s, "drops.empty_field") == 1 && vr_jget(s, "drops.not_a_string") == 1);
    CHECK(vr_jget(s, "drops.not_an_object") == 1 && vr_jget(s, "drops.no_region") == 1 && vr_jget(s, "drops.duplicate") == 1);
    CHECK(vr_jget(s, "interrupted") == 0 && vr_jget(s, "budget_exhausted") == 0);
    CHECK(vr_jstr_is(json_object_get(s, "source"), "vcm_distill_v1"));
    json_decref(s);
    CHECK_STR_CONTAINS(r.err, "img_r500_09.png: giving up after 3 requests: HTTP 500");

    /* what the fake LLM saw */
    FakeCase c429 = fake_case(&server, "r429"), c500 = fake_case(&server, "r500"), cst = fake_case(&server, "stall");
    CHECK(c429.requests == 2);
    CHECK_MSG(c429.t[1] - c429.t[0] >= 0.95, "Retry-After: 1 not honoured: %.3f s", c429.t[1] - c429.t[0]);
    CHECK(c500.requests == 3);
    CHECK(cst.requests == 2);
    CHECK_MSG(cst.t[1] - cst.t[0] >= 0.95 && cst.t[1] - cst.t[0] < 2.4, "stall retry after %.3f s", cst.t[1] - cst.t[0]);
    pthread_mutex_lock(&server.mu);
    for (int i = 0; i < server.n_cases; i++) {
        if (strcmp(server.cases[i].name, "good")) continue;
        const char *b = server.cases[i].first_body;
        CHECK_STR_CONTAINS(b, "\"model\":\"fake-model\"");
        CHECK_STR_CONTAINS(b, "[0]: a red apple\\n[1]: a wooden table\\n[2]: a blue cup");
        CHECK_STR_CONTAINS(b, "Image description: case:good a kitchen table");
        CHECK_STR_CONTAINS(b, "\"seed\":");
        CHECK(server.cases[i].auth[0] == 0);   /* no VCM_API_KEY: no Authorization */
    }
    pthread_mutex_unlock(&server.mu);

    /* the corpus: 12 complete records over the 8 images that gave any */
    int n_img = 0;
    CHECK(check_corpus(out, &n_img) == 12 && n_img == 8);
    char *text = vr_slurp(out, NULL);
    CHECK_STR_CONTAINS(text, "{\"image\": \"img_good_00.png\", \"source\": \"vcm_distill_v1\", \"split\": \"train\", "
                             "\"index\": \"vcm_distill_v1-0\", \"region\": [0, 1], \"region_all\": [0, 1, 2], "
                             "\"question\": [\"What\", \"is\", [0], \"for\", \"?\"]");
    /* indexes: entry ordinal * 100 + the item's rank among the kept ones */
    CHECK_STR_CONTAINS(text, "{\"image\": \"img_badids_03.png\", \"source\": \"vcm_distill_v1\", \"split\": \"train\", \"index\": \"vcm_distill_v1-300\"");
    CHECK_STR_CONTAINS(text, "{\"image\": \"img_mixed_04.png\", \"source\": \"vcm_distill_v1\", \"split\": \"train\", \"index\": \"vcm_distill_v1-400\"");
    CHECK_STR_CONTAINS(text, "\"index\": \"vcm_distill_v1-2\"");
    CHECK(!strstr(text, "\"index\": \"vcm_distill_v1-3\""));
    free(text);
    vcm_run_free(&r);

    /* run again: the images with records are skipped; the others are asked again */
    r = run_vcm(args, NULL, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(s && vr_jget(s, "images.skipped") == 8 && vr_jget(s, "records") == 0 && vr_jget(s, "images.empty") == 3);
    CHECK(s && vr_jget(s, "requests") == 6 && vr_jget(s, "images.failed") == 1);
    json_decref(s);
    CHECK(fake_case(&server, "r429").requests == 2 && fake_case(&server, "good").requests == 1);
    CHECK(check_corpus(out, NULL) == 12);
    vcm_run_free(&r);

    /* a partial last line (an old writer died mid-line) is cut away and reported */
    const char *half = "{\"image\": \"img_x.png\", \"source\": \"vcm_dist";
    vr_write(out, half, "a");
    r = run_vcm(args, NULL, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(s && vr_jget(s, "repaired_partial_line_bytes") == (long)strlen(half));
    CHECK(s && vr_jget(s, "images.skipped") == 8);
    json_decref(s);
    CHECK_STR_CONTAINS(r.err, "cut away a partial last line");
    CHECK(check_corpus(out, NULL) == 12);
    vcm_run_free(&r);
}

static void test_cli_deterministic_and_key(void) {
    const char *const cases[] = {"good", "fenced", "objtop"};
    const char *map = vr_path("det_map.jsonl"), *out1 = vr_path("det1.jsonl"), *out2 = vr_path("det2.jsonl");
    write_map(map, cases, 3);
    const char *a1[] = {"--regions", map, "--endpoint", endpoint, "--model", "m", "--out", out1, "--parallel", "1", NULL};
    const char *a2[] = {"--regions", map, "--endpoint", endpoint, "--model", "m", "--out", out2, "--parallel", "1", NULL};
    VcmRun r1 = run_vcm(a1, "sekret-key", NULL, 0, 0);
    VcmRun r2 = run_vcm(a2, "sekret-key", NULL, 0, 0);
    CHECK(r1.code == 0 && r2.code == 0);
    char *t1 = vr_slurp(out1, NULL), *t2 = vr_slurp(out2, NULL);
    CHECK(t1 && t2 && !strcmp(t1, t2) && vr_count_lines(out1) == 7);
    CHECK(r1.out && r2.out && !strcmp(r1.out, r2.out));
    free(t1); free(t2);
    CHECK(!strcmp(fake_case(&server, "objtop").auth, "Bearer sekret-key"));
    vcm_run_free(&r1);
    vcm_run_free(&r2);
}

static void test_cli_budget_and_fatal(void) {
    const char *const cases[] = {"good", "good", "good", "good", "good", "good"};
    const char *map = vr_path("budget_map.jsonl"), *out = vr_path("budget.jsonl");
    write_map(map, cases, 6);
    const char *args[] = {"--regions", map, "--endpoint", endpoint, "--model", "m", "--out", out,
                          "--parallel", "2", "--max-requests", "3", NULL};
    VcmRun r = run_vcm(args, NULL, NULL, 0, 0);
    json_t *s = vr_summary(&r);
    CHECK(r.code == 0);
    CHECK(s && vr_jget(s, "requests") == 3 && vr_jget(s, "budget_exhausted") == 1);
    CHECK(s && vr_jget(s, "images.done") == 3 && vr_jget(s, "images.pending") == 3 && vr_jget(s, "records") == 9);
    json_decref(s);
    vcm_run_free(&r);
    /* the rest on a second run, within its budget: nothing left, not exhausted */
    const char *args2[] = {"--regions", map, "--endpoint", endpoint, "--model", "m", "--out", out,
                           "--parallel", "2", "--max-requests", "3", NULL};
    r = run_vcm(args2, NULL, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(r.code == 0 && s && vr_jget(s, "images.skipped") == 3 && vr_jget(s, "images.done") == 3);
    CHECK(s && vr_jget(s, "budget_exhausted") == 0 && vr_jget(s, "images.pending") == 0);
    json_decref(s);
    vcm_run_free(&r);
    CHECK(check_corpus(out, NULL) == 18);

    /* 401: every request would fail the same way; stop at once, exit 1 */
    const char *const bad[] = {"unauth", "good", "good"};
    const char *map2 = vr_path("auth_map.jsonl"), *out2 = vr_path("auth.jsonl");
    write_map(map2, bad, 3);
    const char *args3[] = {"--regions", map2, "--endpoint", endpoint, "--model", "m", "--out", out2, "--parallel", "1", NULL};
    r = run_vcm(args3, NULL, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(r.code == 1 && s && vr_jget(s, "fatal") == 1 && vr_jget(s, "requests") == 1 && vr_jget(s, "failures.http_error") == 1);
    CHECK(s && vr_jget(s, "images.pending") == 2);
    CHECK_STR_CONTAINS(r.err, "HTTP 401");
    json_decref(s);
    vcm_run_free(&r);

    /* nothing listens there: after the first image's retries, stop (not one image at a time) */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    char dead[64];
    snprintf(dead, sizeof dead, "http://127.0.0.1:%d/v1/chat/completions", ntohs(a.sin_port));
    const char *args6[] = {"--regions", map2, "--endpoint", dead, "--model", "m", "--out", out2, "--parallel", "1",
                           "--retries", "2", "--backoff", "0.01", NULL};
    r = run_vcm(args6, NULL, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(r.code == 1 && s && vr_jget(s, "fatal") == 1 && vr_jget(s, "requests") == 3 && vr_jget(s, "connection_errors") == 3);
    CHECK(s && vr_jget(s, "images.failed") == 1 && vr_jget(s, "images.pending") == 2);
    CHECK_STR_CONTAINS(r.err, "cannot reach http://127.0.0.1:");
    json_decref(s);
    vcm_run_free(&r);

    /* a 200 that is not a chat completion: the image failed, counted */
    const char *const br[] = {"badresp"};
    write_map(map2, br, 1);
    r = run_vcm(args3, NULL, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(r.code == 1 && s && vr_jget(s, "failures.bad_response") == 1 && vr_jget(s, "fatal") == 0);
    json_decref(s);
    vcm_run_free(&r);

    /* bad usage and bad input: exit 2 */
    const char *args4[] = {"--regions", map2, "--endpoint", endpoint, "--out", out2, NULL};
    r = run_vcm(args4, NULL, NULL, 0, 0);
    CHECK(r.code == 2);
    CHECK_STR_CONTAINS(r.err, "--model is required");
    vcm_run_free(&r);
    const char *args7[] = {"--regions", map2, "--endpoint", "ftp://127.0.0.1:1", "--model", "m", "--out", out2, NULL};
    r = run_vcm(args7, NULL, NULL, 0, 0);
    CHECK(r.code == 2);
    CHECK_STR_CONTAINS(r.err, "wants an http:// or https:// URL");
    vcm_run_free(&r);
    const char *args8[] = {"--regions", map2, "--endpoint", endpoint, "--model", "m", "--out", vr_path("x.jsonl.gz"), NULL};
    r = run_vcm(args8, NULL, NULL, 0, 0);
    CHECK(r.code == 2);
    CHECK_STR_CONTAINS(r.err, "plain .jsonl");
    vcm_run_free(&r);
    const char *pfile = vr_path("bad_prompt.txt");
    vr_write(pfile, "hello {{nope}}\n", "w");
    const char *args5[] = {"--regions", map2, "--endpoint", endpoint, "--model", "m", "--out", out2, "--prompt", pfile, NULL};
    r = run_vcm(args5, NULL, NULL, 0, 0);
    CHECK(r.code == 2);
    CHECK_STR_CONTAINS(r.err, "bad_prompt.txt:1:7: unknown placeholder");
    vcm_run_free(&r);
}

static void test_cli_custom_prompt(void) {
    const char *const cases[] = {"good"};
    const char *map = vr_path("p_map.jsonl"), *out = vr_path("p.jsonl"), *pfile = vr_path("my_prompt.txt");
    write_map(map, cases, 1);
    vr_write(pfile, "@version mine-2\n@user\nImage {{image}}: {{global}}\n{{regions}}\nGive {{per_image}}.\n", "w");
    const char *args[] = {"--regions", map, "--endpoint", endpoint, "--model", "m", "--out", out,
                          "--prompt", pfile, "--per-image", "2", NULL};
    VcmRun r = run_vcm(args, NULL, NULL, 0, 0);
    CHECK(r.code == 0);
    json_t *s = vr_summary(&r);
    CHECK(s && vr_jstr_is(json_object_get(s, "source"), "vcm_distill_mine-2"));
    json_decref(s);
    char *t = vr_slurp(out, NULL);
    CHECK_STR_CONTAINS(t, "\"source\": \"vcm_distill_mine-2\", \"split\": \"train\", \"index\": \"vcm_distill_mine-2-0\"");
    free(t);
    vcm_run_free(&r);
}

/* Many slow replies; kill the writer in the middle. */
static void test_cli_sigkill_and_sigint_leave_whole_lines(void) {
    const char *cases[24];
    for (int i = 0; i < 24; i++) cases[i] = "slow";
    const char *map = vr_path("slow_map.jsonl"), *out = vr_path("slow.jsonl");
    write_map(map, cases, 24);
    const char *args[] = {"--regions", map, "--endpoint", endpoint, "--model", "m", "--out", out, "--parallel", "3", NULL};
    VcmRun r = run_vcm(args, NULL, out, 4, SIGKILL);
    CHECK_MSG(r.code == 128 + SIGKILL, "exit %d", r.code);
    int n_img = 0;
    long lines = check_corpus(out, &n_img);
    CHECK_MSG(lines >= 4 && lines < 24 && n_img == lines, "%ld lines, %d images after SIGKILL", lines, n_img);
    vcm_run_free(&r);

    /* SIGINT: the requests in flight finish, the summary is printed, exit 130 */
    long before = lines;
    r = run_vcm(args, NULL, out, before + 3, SIGINT);
    CHECK_MSG(r.code == 130, "exit %d: %s", r.code, r.err);
    json_t *s = vr_summary(&r);
    CHECK(s && vr_jget(s, "interrupted") == 1 && vr_jget(s, "images.skipped") == before);
    CHECK(s && vr_jget(s, "images.pending") > 0 && vr_jget(s, "images.failed") == 0);
    long done = s ? vr_jget(s, "images.done") : -1;
    json_decref(s);
    lines = check_corpus(out, &n_img);
    CHECK_MSG(lines == before + done && n_img == lines, "%ld lines, %ld before + %ld done", lines, before, done);
    vcm_run_free(&r);

    /* a second SIGINT abandons the requests in flight (here: replies that hang 5 s) */
    const char *const hang[] = {"hang", "hang", "hang"};
    const char *map2 = vr_path("hang_map.jsonl"), *out2 = vr_path("hang.jsonl");
    write_map(map2, hang, 3);
    const char *args2[] = {"--regions", map2, "--endpoint", endpoint, "--model", "m", "--out", out2, "--parallel", "2", NULL};
    r = vcm_run("distill", args2, NULL, NULL, 0, 0.5, 2, SIGINT);
    CHECK_MSG(r.code == 130 && r.secs < 2.5, "exit %d after %.2f s", r.code, r.secs);
    s = vr_summary(&r);
    CHECK(s && vr_jget(s, "interrupted") == 1 && vr_jget(s, "images.pending") == 3 && vr_jget(s, "requests") == 2);
    json_decref(s);
    CHECK_STR_CONTAINS(r.err, "interrupt again to abandon");
    CHECK(vr_count_lines(out2) == 0);
    vcm_run_free(&r);

    /* and a last run completes the set, each image exactly once */
    r = run_vcm(args, NULL, NULL, 0, 0);
    CHECK(r.code == 0);
    CHECK(check_corpus(out, &n_img) == 24 && n_img == 24);
    vcm_run_free(&r);
}

int main(void) {
    if (vr_tmp_init("vcm_distill")) { perror("mkdtemp"); return 1; }
    RUN(test_words_split_punctuation_and_mentions);
    RUN(test_prompt_builtin_and_render);
    RUN(test_prompt_directives_and_errors);
    RUN(test_extract_json_finds_and_repairs);
    RUN(test_parse_reply_keeps_good_items_counts_bad);
    RUN(test_parse_reply_caps_items);
    RUN(test_parse_reply_survives_mangled_replies);
    RUN(test_chat_url_and_bodies);
    RUN(test_outfile_repairs_tail_and_remembers_images);

    /* the end-to-end tests need a vcm with the command in it */
    const char *help[] = {"--help", NULL};
    VcmRun h = run_vcm(help, NULL, NULL, 0, 0);
    int have_cmd = h.code == 0 && h.out && strstr(h.out, "--endpoint");
    if (!have_cmd) {
        fprintf(stderr, "%s distill --help failed (exit %d): %s\n", getenv("VCM_BIN") ? getenv("VCM_BIN") : "build/vcm",
                h.code, h.err ? h.err : "");
        test_failed_++;
    }
    vcm_run_free(&h);
    if (have_cmd && fake_llm_start(&server, reply_for, 60) == 0) {
        snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", server.port);
        RUN(test_cli_replies_retries_and_drops);
        RUN(test_cli_deterministic_and_key);
        RUN(test_cli_budget_and_fatal);
        RUN(test_cli_custom_prompt);
        RUN(test_cli_sigkill_and_sigint_leave_whole_lines);
        fake_llm_stop(&server);
    } else if (have_cmd) {
        perror("fake LLM");
        test_failed_++;
    }
    vr_tmp_remove();
    return test_summary();
}
