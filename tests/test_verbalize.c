/* vcm verbalize: the library parts (crop geometry, crop/fit/JPEG data URL, reply
 * cleaning, the image request body) as unit tests, then the command end to end against
 * tests/fake_llm.h as a vision-language model. The stand-in routes each request by its
 * seed to (image, part), decodes the JPEG it carries (stb_image) and checks its size
 * against the crop this file computes on its own from the documented rule; then it
 * answers by case: captions, 429 then success, 500s, a stall past the timeout, an empty
 * reply, a non-chat 200, a reasoning model's reply, 401. Then resuming, a repaired
 * partial line, --keep-existing, SIGKILL and SIGINT mid-run, bad input (a wrong type,
 * a missing image, Debian's deliberately truncated JPEG), and real photographs
 * (python3-skimage) with tests/data/lskd_regions.jsonl. */
#include "distill/distill.h"
#include "tensor/tensor.h"
#include "tests/fake_llm.h"
#include "tests/test.h"
#include "tests/vcm_run.h"

#include <math.h>
#include <stb/stb_image.h>

static const char *skimage_dir(void) {
    const char *d = getenv("VCM_SKIMAGE_DATA");
    return d ? d : "/usr/lib/python3/dist-packages/skimage/data";
}

/* ================================================================ unit tests */

static void rect_is(int W, int H, float x0, float y0, float x1, float y1, double pad, int min_side,
                    int a, int b, int c, int d) {
    RegionBox box = {.x0 = x0, .y0 = y0, .x1 = x1, .y1 = y1};
    int r[4];
    verbalize_crop_rect(W, H, &box, pad, min_side, r);
    CHECK_MSG(r[0] == a && r[1] == b && r[2] == c && r[3] == d, "box [%g %g %g %g] in %dx%d -> [%d %d %d %d], want [%d %d %d %d]",
              x0, y0, x1, y1, W, H, r[0], r[1], r[2], r[3], a, b, c, d);
}

static void test_crop_rect_by_hand(void) {
    /* pad 0.1: x [2, 36] -> floor(-1.4) = -2 -> 0, ceil(39.4) = 40; y [3, 40] -> 0, ceil(43.7) = 44 */
    rect_is(100, 60, 2, 3, 36, 40, 0.1, 32, 0, 0, 40, 44);
    /* y [5, 25] -> [3, 27): 24 < 32, grown by 4 each side to [-1, 31), shifted to [0, 32) */
    rect_is(100, 60, 40, 5, 80, 25, 0.1, 32, 36, 0, 84, 32);
    /* x [10, 30] -> [8, 32) grown to [4, 36); y [44, 56] -> [42, 58) grown to [34, 66), shifted to [28, 60) */
    rect_is(100, 60, 10, 44, 30, 56, 0.1, 32, 4, 28, 36, 60);
    /* a zero-size box in the corner: min(32, H) = 20 rows, 32 columns ending at W */
    rect_is(50, 20, 50, 20, 50, 20, 0.1, 32, 18, 0, 50, 20);
    /* no pad, 1 px minimum: the pixels the box touches */
    rect_is(10, 10, 1.5f, 2.5f, 3.2f, 4, 0, 1, 1, 2, 4, 4);
    /* an odd growth: the extra pixel goes at the end */
    rect_is(100, 100, 50, 50, 51, 51, 0, 4, 49, 49, 53, 53);
}

static unsigned char *b64_decode(const char *s, size_t *n) {
    size_t len = strlen(s);
    unsigned char *o = malloc(len / 4 * 3 + 3);
    size_t k = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        if (s[i] == '=') break;
        const char *p = strchr(t, s[i]);
        if (!p || !s[i]) { free(o); return NULL; }
        v = (v << 6) | (unsigned)(p - t);
        bits += 6;
        if (bits >= 8) { bits -= 8; o[k++] = (unsigned char)(v >> bits); }
    }
    *n = k;
    return o;
}

/* A data URL's JPEG decoded: its pixels (stbi_image_free them) and size; NULL if it is
 * not a decodable JPEG data URL. */
static unsigned char *decode_data_url(const char *url, int *w, int *h) {
    static const char pre[] = "data:image/jpeg;base64,";
    if (!url || strncmp(url, pre, sizeof pre - 1)) return NULL;
    size_t n = 0;
    unsigned char *jpg = b64_decode(url + sizeof pre - 1, &n);
    if (!jpg || n < 4 || jpg[0] != 0xFF || jpg[1] != 0xD8 || jpg[n - 2] != 0xFF || jpg[n - 1] != 0xD9) { free(jpg); return NULL; }
    int c;
    unsigned char *px = stbi_load_from_memory(jpg, (int)n, w, h, &c, 3);
    free(jpg);
    return px;
}

static void test_crop_fit_and_jpeg_url(void) {
    Image im;
    CHECK(image_alloc(&im, 40, 30) == VCM_OK);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 40; x++) {
            uint8_t *p = im.rgb + 3 * (y * 40 + x);
            p[0] = (uint8_t)(x * 6); p[1] = (uint8_t)(y * 8); p[2] = 128;
        }
    Image c;
    CHECK(image_crop(&im, 5, 6, 25, 26, &c) == VCM_OK && c.w == 20 && c.h == 20);
    CHECK(c.rgb && c.rgb[0] == 30 && c.rgb[1] == 48);   /* pixel (5, 6) */
    image_free(&c);
    CHECK(image_crop(&im, 5, 6, 41, 26, &c) == VCM_EINPUT);
    CHECK(image_crop(&im, 5, 6, 5, 26, &c) == VCM_EINPUT);
    Image crop;
    CHECK(image_crop(&im, 5, 6, 25, 26, &crop) == VCM_OK);
    char *url = NULL;
    CHECK(image_jpeg_data_url(&crop, 90, &url) == VCM_OK);
    int w = 0, h = 0;
    unsigned char *px = decode_data_url(url, &w, &h);
    CHECK(px && w == 20 && h == 20);
    double err = 0;
    for (int i = 0; px && i < 20 * 20 * 3; i++) err += fabs((double)px[i] - crop.rgb[i]);
    CHECK_MSG(px && err / (20 * 20 * 3) < 4, "mean abs JPEG error %.2f", err / 1200);
    stbi_image_free(px);
    free(url);
    CHECK(image_jpeg_data_url(&crop, 0, &url) == VCM_EINPUT);
    image_free(&crop);
    image_free(&c);

    Image f;
    CHECK(image_fit(&im, 40, &f) == VCM_OK && f.w == 40 && f.h == 30 && !memcmp(f.rgb, im.rgb, 40 * 30 * 3));
    image_free(&f);
    CHECK(image_fit(&im, 16, &f) == VCM_OK && f.w == 16 && f.h == 12);
    image_free(&f);
    Image thin;
    CHECK(image_alloc(&thin, 100, 3) == VCM_OK);
    CHECK(image_fit(&thin, 48, &f) == VCM_OK && f.w == 48 && f.h == 1);   /* 1.44 rounds to 1 */
    image_free(&f);
    image_free(&thin);
    /* 333 -> 224 (a Visual Genome width to the model's) tripped an assertion of
     * stb_image_resize 0.97 (data/stb_impl.c): it resizes, and a constant stays one */
    Image wide;
    CHECK(image_alloc(&wide, 333, 250) == VCM_OK);
    memset(wide.rgb, 200, 333 * 250 * 3);
    CHECK(image_fit(&wide, 224, &f) == VCM_OK && f.w == 224 && f.h == 168);
    int same = f.rgb != NULL;
    for (int i = 0; same && i < f.w * f.h * 3; i++) same = f.rgb[i] == 200;
    CHECK(same);
    image_free(&f);
    image_free(&wide);
    image_free(&im);
}

static void clean_is(const char *in, int phrase, const char *want) {
    char *got = verbalize_clean_reply(in, phrase);
    CHECK_MSG(got && !strcmp(got, want), "clean(\"%s\") = \"%s\", want \"%s\"", in, got ? got : "NULL", want);
    free(got);
}

static void test_clean_reply(void) {
    clean_is("  a red\n apple. ", 1, "a red apple");
    clean_is("\"A cup.\"", 1, "A cup");
    clean_is("\"A cup.\"", 0, "A cup.");
    clean_is("<think>It is a dog.</think>\n```\nA dog on the grass.\n```\n", 0, "A dog on the grass.");
    clean_is("```text\n'a lamp'\n```", 1, "a lamp");
    clean_is("Wait...", 1, "Wait...");
    clean_is("\xe2\x80\x9c" "a lamp" "\xe2\x80\x9d", 1, "a lamp");
    clean_is("  \n\t ", 1, "");
    clean_is("<think>only thoughts</think>", 0, "");
    clean_is("a \"quoted\" word", 1, "a \"quoted\" word");
}

static void test_image_request_body(void) {
    char *b = distill_chat_request_image("vlm", NULL, "Describe it.", "data:image/jpeg;base64,AAAA", 0, 7, 128);
    json_t *j = b ? json_loads(b, 0, NULL) : NULL;
    json_t *msgs = json_object_get(j, "messages");
    CHECK(json_array_size(msgs) == 1);
    json_t *m = json_array_get(msgs, 0);
    CHECK(vr_jstr_is(json_object_get(m, "role"), "user"));
    json_t *parts = json_object_get(m, "content");
    CHECK(json_array_size(parts) == 2);
    json_t *p0 = json_array_get(parts, 0), *p1 = json_array_get(parts, 1);
    CHECK(vr_jstr_is(json_object_get(p0, "type"), "image_url"));
    CHECK(vr_jstr_is(json_object_get(json_object_get(p0, "image_url"), "url"), "data:image/jpeg;base64,AAAA"));
    CHECK(vr_jstr_is(json_object_get(p1, "type"), "text") && vr_jstr_is(json_object_get(p1, "text"), "Describe it."));
    CHECK(json_integer_value(json_object_get(j, "seed")) == 7 && json_integer_value(json_object_get(j, "max_tokens")) == 128);
    CHECK(vr_jstr_is(json_object_get(j, "model"), "vlm") && json_is_false(json_object_get(j, "stream")));
    json_decref(j);
    free(b);
    /* distill's text requests are unchanged: content is a string */
    b = distill_chat_request("m", "s", "u", 0.7, 1, 0);
    CHECK(b && strstr(b, "{\"role\":\"user\",\"content\":\"u\"}") && !strstr(b, "max_tokens"));
    free(b);
    /* a region's seed differs from the global one and from distill's */
    uint32_t s0 = distill_request_seed(1, "a.png", -1), s1 = distill_request_seed(1, "a.png", 0),
             s2 = distill_request_seed(1, "a.png", 1);
    CHECK(s0 != s1 && s1 != s2 && s0 != s2 && s1 == distill_request_seed(1, "a.png", 0));
}

/* ================================================================ the stand-in */

/* What the run is expected to send: one entry per (image, part). */
typedef struct Expect {
    uint32_t seed;
    char image[64], name[64];
    int index, part;        /* part -1: global */
    int w, h;               /* the JPEG's size */
} Expect;

#define MAX_EXPECT 1024
static Expect expect[MAX_EXPECT];
static int n_expect;
static pthread_mutex_t stats_mu = PTHREAD_MUTEX_INITIALIZER;
static int n_checked, n_bad;      /* requests whose image was checked / was wrong */
static char bad_why[256];

/* The crop rule as docs/DISTILL.md writes it, computed here on its own. */
static void oracle_axis(double a0, double a1, int size, double pad, int min_side, int *lo, int *hi) {
    double e = pad * (a1 - a0);
    double l = floor(a0 - e), h = ceil(a1 + e);
    int c0 = (int)fmax(0, fmin(size, l)), c1 = (int)fmax(0, fmin(size, h));
    int want = min_side < size ? min_side : size;
    if (c1 - c0 < want) {
        int need = want - (c1 - c0);
        c0 -= need / 2;
        c1 += need - need / 2;
        if (c0 < 0) { c1 -= c0; c0 = 0; }
        if (c1 > size) { c0 -= c1 - size; c1 = size; }
    }
    *lo = c0;
    *hi = c1;
}

static void oracle_fit(int w, int h, int max_side, int *ow, int *oh) {
    int big = w > h ? w : h;
    if (big <= max_side) { *ow = w; *oh = h; return; }
    *ow = (int)fmax(1, fmin(max_side, (int)(w * (double)max_side / big + 0.5)));
    *oh = (int)fmax(1, fmin(max_side, (int)(h * (double)max_side / big + 0.5)));
}

/* The expectations of one mapping line: image `image` (W×H) with n boxes. */
static void expect_image(const char *cs, int index, const char *image, int W, int H, const float (*box)[4], int n,
                         int max_side) {
    for (int part = -1; part < n && n_expect < MAX_EXPECT; part++) {
        Expect *x = &expect[n_expect++];
        memset(x, 0, sizeof *x);
        snprintf(x->image, sizeof x->image, "%s", image);
        x->index = index;
        x->part = part;
        x->seed = distill_request_seed(1, image, part < 0 ? 0 : part + 1);
        int w = W, h = H;
        if (part >= 0) {
            int x0, y0, x1, y1;
            oracle_axis(box[part][0], box[part][2], W, 0.1, 32, &x0, &x1);
            oracle_axis(box[part][1], box[part][3], H, 0.1, 32, &y0, &y1);
            w = x1 - x0;
            h = y1 - y0;
        }
        oracle_fit(w, h, max_side, &x->w, &x->h);
        if (part < 0) snprintf(x->name, sizeof x->name, "%s_%02d_g", cs, index);
        else snprintf(x->name, sizeof x->name, "%s_%02d_%d", cs, index, part);
    }
}

static void mark_bad(char *name, size_t cap, const char *fmt, const char *a, long b, long c) {
    pthread_mutex_lock(&stats_mu);
    n_bad++;
    snprintf(bad_why, sizeof bad_why, fmt, a, b, c);
    pthread_mutex_unlock(&stats_mu);
    snprintf(name, cap, "bad");
}

/* Route by the seed; check the request carries the expected prompt and a decodable
 * JPEG of the expected size. */
static void route(const char *body, char *name, size_t cap) {
    json_t *j = json_loads(body, 0, NULL);
    uint32_t seed = (uint32_t)json_integer_value(json_object_get(j, "seed"));
    const Expect *x = NULL;
    for (int i = 0; i < n_expect; i++)
        if (expect[i].seed == seed) { x = &expect[i]; break; }
    json_t *parts = json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content");
    const char *url = json_string_value(json_object_get(json_object_get(json_array_get(parts, 0), "image_url"), "url"));
    const char *text = json_string_value(json_object_get(json_array_get(parts, 1), "text"));
    int w = 0, h = 0;
    unsigned char *px = x ? decode_data_url(url, &w, &h) : NULL;
    if (!x) mark_bad(name, cap, "unknown seed %s%ld%ld", "", (long)seed, 0);
    else if (!px) mark_bad(name, cap, "%s: not a decodable JPEG data URL (%ld %ld)", x->name, 0, 0);
    else if (w != x->w || h != x->h) mark_bad(name, cap, "%s: got %ldx%ld", x->name, w, h);
    else if (!text || strcmp(text, x->part < 0 ? verbalize_prompt_global : verbalize_prompt_region))
        mark_bad(name, cap, "%s: wrong prompt %ld%ld", x->name, 0, 0);
    else {
        snprintf(name, cap, "%s", x->name);
        pthread_mutex_lock(&stats_mu);
        n_checked++;
        pthread_mutex_unlock(&stats_mu);
    }
    stbi_image_free(px);
    json_decref(j);
}

/* name: "<case>_<NN>_<g|k>" */
static FakeReply reply_for(const char *name, int attempt) {
    static __thread char buf[512];
    FakeReply r = {200, NULL, NULL, NULL, 0};
    char cs[32] = "";
    int idx = -1;
    char part = 0;
    const char *u2 = strrchr(name, '_');
    if (!strcmp(name, "bad") || !u2 || u2 - name < 4) { r.status = 400; return r; }
    part = u2[1];
    idx = atoi(u2 - 2);
    snprintf(cs, sizeof cs, "%.*s", (int)(u2 - 3 - name), name);
    int k = part == 'g' ? -1 : part - '0';
    if (k < 0) snprintf(buf, sizeof buf, "  A picture\n number %d.  ", idx);
    else snprintf(buf, sizeof buf, "\"thing %d of picture %d.\"", k, idx);
    r.content = buf;
    if (!strcmp(cs, "r429") && k < 0 && attempt == 1) { r.status = 429; r.headers = "Retry-After: 1\r\n"; }
    else if (!strcmp(cs, "r500") && k < 0) r.status = 500;
    else if (!strcmp(cs, "stall") && k == 0 && attempt == 1) r.delay_ms = 2500;
    else if (!strcmp(cs, "empty") && k == 1) r.content = "   ";
    else if (!strcmp(cs, "badresp") && k == 2) r.raw_body = "<html>not json</html>", r.content = NULL;
    else if (!strcmp(cs, "think")) {
        if (k < 0) snprintf(buf, sizeof buf, "<think>Let me look.</think>\n```\nA picture number %d.\n```", idx);
        else snprintf(buf, sizeof buf, "<think>hmm</think> 'thing %d of picture %d.'", k, idx);
    } else if (!strcmp(cs, "slow")) r.delay_ms = 150;
    else if (!strcmp(cs, "hang")) r.delay_ms = 5000;
    else if (!strcmp(cs, "unauth")) r.status = 401;
    return r;
}

static FakeLLM server;
static char endpoint[64];

/* Image i of a synthetic map: (100 + 2i) × (60 + i), three boxes whose crops differ
 * from image to image. */
static void synth_boxes(int i, float box[3][4]) {
    float b[3][4] = {{2, 3, 36 + i, 40}, {40 + i, 5, 80 + 2 * i, 25}, {10, 44, 30 + i, 56}};
    memcpy(box, b, sizeof b);
}

/* A map of n synthetic images (PNG files in the temp dir), with the expectations;
 * extra: extra JSON fields for each line (with a leading comma) or "". */
static void write_map(const char *path, const char *const *cases, int n, const char *extra, int max_side) {
    FILE *f = fopen(path, "w");
    for (int i = 0; i < n; i++) {
        char img[64];
        snprintf(img, sizeof img, "img_%s_%02d.png", cases[i], i);
        int W = 100 + 2 * i, H = 60 + i;
        Image im;
        if (image_alloc(&im, W, H) == VCM_OK) {
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    uint8_t *p = im.rgb + 3 * (y * W + x);
                    p[0] = (uint8_t)(x * 2 + i); p[1] = (uint8_t)(y * 3); p[2] = (uint8_t)((x ^ y) * 4);
                }
            image_save_png(vr_path(img), &im);
            image_free(&im);
        }
        float box[3][4];
        synth_boxes(i, box);
        fprintf(f, "{\"image\": \"%s\", \"region_locations\": {\"0\": {\"boxes\": [[%g, %g, %g, %g]], \"obj_guess\": \"apple\"},"
                   " \"1\": {\"boxes\": [[%g, %g, %g, %g]], \"obj_guess\": \"table\"}, \"2\": {\"boxes\": [[%g, %g, %g, %g]]}}%s}\n",
                img, box[0][0], box[0][1], box[0][2], box[0][3], box[1][0], box[1][1], box[1][2], box[1][3],
                box[2][0], box[2][1], box[2][2], box[2][3], extra);
        expect_image(cases[i], i, img, W, H, (const float (*)[4])box, 3, max_side);
    }
    fclose(f);
}

/* Every line of an output mapping: a JSON object with its image once, the input's
 * region_locations, and (want_text) "global" + a description for ids 0..2 as the
 * stand-in wrote them. Returns the number of lines, -1 if one is bad. */
static long check_output(const char *path, int want_text) {
    size_t len;
    char *t = vr_slurp(path, &len);
    if (!t) return -1;
    if (len && t[len - 1] != '\n') { free(t); return -1; }
    long n = 0;
    json_t *seen = json_object();
    for (char *line = t, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = 0;
        json_t *r = json_loads(line, 0, NULL);
        const char *img = json_string_value(json_object_get(r, "image"));
        int ok = img && !json_object_get(seen, img) && json_object_size(json_object_get(r, "region_locations")) == 3 &&
                 vr_jstr_is(json_object_get(json_object_get(json_object_get(r, "region_locations"), "0"), "obj_guess"), "apple");
        if (ok && want_text) {
            int idx = atoi(strrchr(img, '_') + 1);
            char want[128];
            snprintf(want, sizeof want, "A picture number %d.", idx);
            json_t *g = json_object_get(r, "global");
            ok = json_array_size(g) == 1 && vr_jstr_is(json_array_get(g, 0), want);
            for (int k = 0; k < 3 && ok; k++) {
                char key[16];
                snprintf(key, sizeof key, "%d", k);
                snprintf(want, sizeof want, "thing %d of picture %d", k, idx);
                ok = vr_jstr_is(json_object_get(json_object_get(r, "region_descriptions"), key), want);
            }
        }
        if (ok) json_object_set_new(seen, img, json_true());
        json_decref(r);
        if (!ok) { fprintf(stderr, "  bad or repeated line %ld: %.400s\n", n + 1, line); n = -1; break; }
        n++;
    }
    json_decref(seen);
    free(t);
    return n;
}

static VcmRun run_v(const char *const *args, const char *watch, long at_lines, int sig) {
    return vcm_run("verbalize", args, NULL, watch, at_lines, 0, 0, sig);
}

static int bad_requests(void) {
    pthread_mutex_lock(&stats_mu);
    int n = n_bad;
    if (n) fprintf(stderr, "  the stand-in saw %d bad requests, the last: %s\n", n, bad_why);
    pthread_mutex_unlock(&stats_mu);
    return n;
}

static const char *const main_cases[] = {"good", "good", "r429", "r500", "stall", "empty", "badresp", "think"};

static void test_cli_describes_retries_and_resumes(void) {
    const char *map = vr_path("main_map.jsonl"), *out = vr_path("main_out.jsonl");
    write_map(map, main_cases, 8, "", 768);
    const char *args[] = {"--regions", map, "--images-root", vr_tmpdir, "--endpoint", endpoint, "--model", "fake-vlm",
                          "--out", out, "--parallel", "3", "--retries", "2", "--timeout", "1", "--backoff", "0.05", NULL};
    VcmRun r = run_v(args, NULL, 0, 0);
    CHECK_MSG(r.code == 1, "exit %d (two images failed: want 1)\n%s", r.code, r.err);
    json_t *s = vr_summary(&r);
    CHECK(s && vr_jget(s, "images.total") == 8 && vr_jget(s, "images.done") == 5 && vr_jget(s, "images.empty") == 1);
    CHECK(s && vr_jget(s, "images.failed") == 2 && vr_jget(s, "images.pending") == 0 && vr_jget(s, "images.bad") == 0);
    CHECK(s && vr_jget(s, "failures.gave_up") == 1 && vr_jget(s, "failures.bad_response") == 1);
    CHECK(s && vr_jget(s, "descriptions.global") == 5 && vr_jget(s, "descriptions.regions") == 15);
    CHECK(s && vr_jget(s, "http_429") == 1 && vr_jget(s, "http_5xx") == 3 && vr_jget(s, "timeouts") == 1);
    CHECK(s && vr_jget(s, "requests") >= 5 * 4 + 1 + 2 + 1 && vr_jget(s, "retries") == 4);
    CHECK(s && vr_jstr_is(json_object_get(s, "prompt"), "v1") && vr_jstr_is(json_object_get(s, "model"), "fake-vlm"));
    json_decref(s);
    CHECK_STR_CONTAINS(r.err, "img_r500_03.png global: giving up after 3 requests: HTTP 500");

    FakeCase c429 = fake_case(&server, "r429_02_g"), c500 = fake_case(&server, "r500_03_g"),
             cst = fake_case(&server, "stall_04_0");
    CHECK(c429.requests == 2);
    CHECK_MSG(c429.t[1] - c429.t[0] >= 0.95, "Retry-After: 1 not honoured: %.3f s", c429.t[1] - c429.t[0]);
    CHECK(c500.requests == 3);
    CHECK_MSG(cst.requests == 2 && cst.t[1] - cst.t[0] >= 0.95 && cst.t[1] - cst.t[0] < 2.4, "stall: %d requests, %.3f s",
              cst.requests, cst.t[1] - cst.t[0]);
    pthread_mutex_lock(&server.mu);
    for (int i = 0; i < server.n_cases; i++) {
        if (strcmp(server.cases[i].name, "good_00_1")) continue;
        const char *b = server.cases[i].first_body;
        CHECK_STR_CONTAINS(b, "\"model\":\"fake-vlm\"");
        CHECK_STR_CONTAINS(b, "\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/jpeg;base64,");
        CHECK_STR_CONTAINS(b, "{\"type\":\"text\",\"text\":\"Describe the object in this crop in one short phrase");
        CHECK_STR_CONTAINS(b, "\"temperature\":0");
        CHECK_STR_CONTAINS(b, "\"max_tokens\":128");
        CHECK(server.cases[i].auth[0] == 0);
    }
    pthread_mutex_unlock(&server.mu);
    CHECK(bad_requests() == 0 && n_checked >= 5 * 4);
    CHECK(check_output(out, 1) == 5);
    vcm_run_free(&r);

    /* again: the described images are skipped, the others asked again */
    int before = server.requests;
    r = run_v(args, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(r.code == 1 && s && vr_jget(s, "images.skipped") == 5 && vr_jget(s, "images.done") == 0);
    CHECK(s && vr_jget(s, "images.failed") == 2 && vr_jget(s, "images.empty") == 1);
    json_decref(s);
    CHECK(fake_case(&server, "good_00_g").requests == 1 && fake_case(&server, "r500_03_g").requests == 6);
    CHECK(server.requests > before);
    CHECK(check_output(out, 1) == 5);
    vcm_run_free(&r);

    /* a partial last line (a writer died mid-line) is cut away and reported */
    const char *half = "{\"image\": \"img_x.png\", \"region_loc";
    vr_write(out, half, "a");
    r = run_v(args, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(s && vr_jget(s, "repaired_partial_line_bytes") == (long)strlen(half) && vr_jget(s, "images.skipped") == 5);
    json_decref(s);
    CHECK_STR_CONTAINS(r.err, "cut away a partial last line");
    CHECK(check_output(out, 1) == 5);
    vcm_run_free(&r);
    CHECK(bad_requests() == 0);
}

/* --keep-existing asks only what a line lacks; --max-side downscales what is sent. */
static void test_cli_keep_existing_and_max_side(void) {
    const char *const cases[] = {"good", "good", "good"};
    const char *map = vr_path("keep_map.jsonl"), *out = vr_path("keep_out.jsonl");
    /* the expectations of --max-side 48 (the names differ from the first test's: "keep") */
    const char *const kc[] = {"keep", "keep", "keep"};
    (void)cases;
    write_map(map, kc, 3, ", \"global\": [\"an old caption\"], \"region_descriptions\": {\"0\": \"an old apple\", \"1\": \"\"}", 48);
    const char *args[] = {"--regions", map, "--images-root", vr_tmpdir, "--endpoint", endpoint, "--model", "m",
                          "--out", out, "--keep-existing", "--max-side", "48", "--parallel", "2", NULL};
    VcmRun r = run_v(args, NULL, 0, 0);
    json_t *s = vr_summary(&r);
    CHECK_MSG(r.code == 0, "exit %d: %s", r.code, r.err);
    CHECK(s && vr_jget(s, "images.done") == 3 && vr_jget(s, "descriptions.kept") == 6);
    CHECK(s && vr_jget(s, "descriptions.global") == 0 && vr_jget(s, "descriptions.regions") == 6 && vr_jget(s, "requests") == 6);
    json_decref(s);
    char *t = vr_slurp(out, NULL);
    CHECK_STR_CONTAINS(t, "\"global\": [\"an old caption\"], \"region_descriptions\": {\"0\": \"an old apple\", "
                          "\"1\": \"thing 1 of picture 0\", \"2\": \"thing 2 of picture 0\"}}");
    free(t);
    CHECK(fake_case(&server, "keep_01_g").requests == 0 && fake_case(&server, "keep_01_0").requests == 0);
    CHECK(fake_case(&server, "keep_01_2").requests == 1);
    CHECK(bad_requests() == 0);
    vcm_run_free(&r);
}

static void test_cli_sigkill_and_sigint(void) {
    const char *cases[24];
    for (int i = 0; i < 24; i++) cases[i] = "slow";
    const char *map = vr_path("slow_map.jsonl"), *out = vr_path("slow_out.jsonl");
    write_map(map, cases, 24, "", 768);
    const char *args[] = {"--regions", map, "--images-root", vr_tmpdir, "--endpoint", endpoint, "--model", "m",
                          "--out", out, "--parallel", "4", NULL};
    VcmRun r = run_v(args, out, 3, SIGKILL);
    CHECK_MSG(r.code == 128 + SIGKILL, "exit %d", r.code);
    long lines = check_output(out, 1);
    CHECK_MSG(lines >= 3 && lines < 24, "%ld lines after SIGKILL", lines);
    vcm_run_free(&r);

    /* SIGINT: what is in flight finishes, the summary is printed, exit 130 */
    long before = lines;
    r = run_v(args, out, before + 2, SIGINT);
    CHECK_MSG(r.code == 130, "exit %d: %s", r.code, r.err);
    json_t *s = vr_summary(&r);
    CHECK(s && vr_jget(s, "interrupted") == 1 && vr_jget(s, "images.skipped") == before);
    CHECK(s && vr_jget(s, "images.pending") > 0 && vr_jget(s, "images.failed") == 0);
    long done = s ? vr_jget(s, "images.done") : -1;
    CHECK(s && vr_jget(s, "images.done") + vr_jget(s, "images.pending") + before == 24);
    json_decref(s);
    lines = check_output(out, 1);
    CHECK_MSG(lines == before + done, "%ld lines, %ld before + %ld done", lines, before, done);
    vcm_run_free(&r);

    /* a last run completes the set, each image once */
    r = run_v(args, NULL, 0, 0);
    CHECK(r.code == 0);
    CHECK(check_output(out, 1) == 24);
    vcm_run_free(&r);
    CHECK(bad_requests() == 0);

    /* 401: stop at once, exit 1 */
    const char *const ua[] = {"unauth", "unauth"};
    const char *map2 = vr_path("ua_map.jsonl"), *out2 = vr_path("ua_out.jsonl");
    write_map(map2, ua, 2, "", 768);
    const char *args2[] = {"--regions", map2, "--images-root", vr_tmpdir, "--endpoint", endpoint, "--model", "m",
                           "--out", out2, "--parallel", "1", NULL};
    r = run_v(args2, NULL, 0, 0);
    s = vr_summary(&r);
    CHECK(r.code == 1 && s && vr_jget(s, "fatal") == 1 && vr_jget(s, "requests") == 1 && vr_jget(s, "failures.http_error") == 1);
    CHECK(s && vr_jget(s, "images.pending") == 1 && vr_jget(s, "images.failed") == 1);
    CHECK_STR_CONTAINS(r.err, "HTTP 401");
    json_decref(s);
    vcm_run_free(&r);
}

/* Bad input is refused before any request, with file, line and problem; the output
 * file is left as it was. */
static void test_cli_bad_input(void) {
    const char *const cases[] = {"good", "good"};
    const char *map = vr_path("bad_map.jsonl"), *out = vr_path("bad_out.jsonl");
    write_map(map, cases, 2, "", 768);
    const char *args[] = {"--regions", map, "--images-root", vr_tmpdir, "--endpoint", endpoint, "--model", "m",
                          "--out", out, NULL};
    VcmRun r = run_v(args, NULL, 0, 0);
    CHECK(r.code == 0 && check_output(out, 1) == 2);
    vcm_run_free(&r);
    char *kept = vr_slurp(out, NULL);

    /* a wrong type on line 3 */
    vr_write(map, "{\"image\": \"img_new.png\", \"region_locations\": {\"0\": {\"boxes\": [[0, 0, 5, 5]]}}, \"global\": 5}\n", "a");
    int before = server.requests;
    r = run_v(args, NULL, 0, 0);
    CHECK_MSG(r.code == 2, "exit %d", r.code);
    CHECK_STR_CONTAINS(r.err, "bad_map.jsonl:3:");
    CHECK_STR_CONTAINS(r.err, "global");
    vcm_run_free(&r);

    /* an image that does not exist (line 3) */
    write_map(map, cases, 2, "", 768);
    vr_write(map, "{\"image\": \"no_such.png\", \"region_locations\": {\"0\": {\"boxes\": [[0, 0, 5, 5]]}}}\n", "a");
    r = run_v(args, NULL, 0, 0);
    CHECK_MSG(r.code == 2, "exit %d", r.code);
    CHECK_STR_CONTAINS(r.err, "bad_map.jsonl:3: image \"no_such.png\": cannot open");
    vcm_run_free(&r);

    /* a box outside its image */
    write_map(map, cases, 2, "", 768);
    vr_write(map, "{\"image\": \"img_good_00.png\", \"region_locations\": {\"0\": {\"boxes\": [[0, 0, 500, 5]]}}}\n", "w");
    r = run_v((const char *const[]){"--regions", map, "--images-root", vr_tmpdir, "--endpoint", endpoint, "--model", "m",
                                    "--out", vr_path("bad_out2.jsonl"), NULL}, NULL, 0, 0);
    CHECK_MSG(r.code == 2, "exit %d", r.code);
    CHECK_STR_CONTAINS(r.err, "bad_map.jsonl:1: image \"img_good_00.png\": region \"0\": box [0, 0, 500, 5] is outside the image");
    vcm_run_free(&r);

    /* Debian's deliberately truncated JPEG */
    char trunc[512];
    snprintf(trunc, sizeof trunc, "%s/truncated.jpg", skimage_dir());
    if (access(trunc, R_OK) == 0) {
        const char *tmap = vr_path("trunc_map.jsonl");
        vr_write(tmap, "{\"image\": \"chelsea.png\", \"region_locations\": {\"0\": {\"boxes\": [[135, 85, 210, 148]]}}}\n"
                       "{\"image\": \"truncated.jpg\", \"region_locations\": {\"0\": {\"boxes\": [[0, 0, 5, 5]]}}}\n", "w");
        const char *targs[] = {"--regions", tmap, "--images-root", skimage_dir(), "--endpoint", endpoint, "--model", "m",
                               "--out", out, NULL};
        r = run_v(targs, NULL, 0, 0);
        CHECK_MSG(r.code == 2, "exit %d", r.code);
        CHECK_STR_CONTAINS(r.err, "trunc_map.jsonl:2: image \"truncated.jpg\": cannot decode:");
        CHECK_STR_CONTAINS(r.err, "truncated JPEG");
        vcm_run_free(&r);
    } else {
        fprintf(stderr, "  (no %s: python3-skimage not installed, truncated JPEG case skipped)\n", trunc);
    }
    CHECK(server.requests == before);   /* nothing was asked */
    char *now = vr_slurp(out, NULL);
    CHECK(kept && now && !strcmp(kept, now));   /* nothing lost, nothing added */
    free(now);
    free(kept);

    /* --skip-bad: the missing image is left out and counted, the rest is done */
    const char *const more[] = {"good", "good", "good"};
    write_map(map, more, 3, "", 768);
    vr_write(map, "{\"image\": \"no_such.png\", \"region_locations\": {\"0\": {\"boxes\": [[0, 0, 5, 5]]}}}\n", "a");
    const char *sargs[] = {"--regions", map, "--images-root", vr_tmpdir, "--endpoint", endpoint, "--model", "m",
                           "--out", out, "--skip-bad", NULL};
    r = run_v(sargs, NULL, 0, 0);
    json_t *s = vr_summary(&r);
    CHECK_MSG(r.code == 0, "exit %d: %s", r.code, r.err);
    CHECK(s && vr_jget(s, "images.bad") == 1 && vr_jget(s, "images.done") == 1 && vr_jget(s, "images.skipped") == 2);
    json_decref(s);
    CHECK_STR_CONTAINS(r.err, "skipped: ");
    CHECK(check_output(out, 1) == 3);
    vcm_run_free(&r);

    /* usage */
    const char *u1[] = {"--regions", map, "--endpoint", endpoint, "--out", out, NULL};
    r = run_v(u1, NULL, 0, 0);
    CHECK(r.code == 2);
    CHECK_STR_CONTAINS(r.err, "--model is required");
    vcm_run_free(&r);
    const char *u2[] = {"--regions", map, "--endpoint", endpoint, "--model", "m", "--out", vr_path("x.jsonl.gz"), NULL};
    r = run_v(u2, NULL, 0, 0);
    CHECK(r.code == 2);
    CHECK_STR_CONTAINS(r.err, "plain .jsonl");
    vcm_run_free(&r);
    CHECK(bad_requests() == 0);
}

/* The photographs of python3-skimage with the release-format fixture mapping. */
static void test_cli_photos(void) {
    const char *fixture = "tests/data/lskd_regions.jsonl";
    char probe[512];
    snprintf(probe, sizeof probe, "%s/astronaut.png", skimage_dir());
    if (access(probe, R_OK) != 0) { fprintf(stderr, "  (python3-skimage not installed: skipped)\n"); return; }
    RegionMap m;
    CHECK(regionmap_load(fixture, &m, 0, NULL) == VCM_OK);
    for (int i = 0; i < m.n; i++) {
        const RegionEntry *e = &m.entries[i];
        char path[600];
        snprintf(path, sizeof path, "%s/%s", skimage_dir(), e->image);
        int W = 0, H = 0;
        CHECK(image_info(path, &W, &H) == VCM_OK);
        float box[16][4];
        for (int k = 0; k < e->n_regions && k < 16; k++) {
            box[k][0] = e->regions[k].x0; box[k][1] = e->regions[k].y0;
            box[k][2] = e->regions[k].x1; box[k][3] = e->regions[k].y1;
        }
        expect_image("photo", i, e->image, W, H, (const float (*)[4])box, e->n_regions, 384);
    }
    int n_regions = 0;
    for (int i = 0; i < m.n; i++) n_regions += m.entries[i].n_regions;
    int n_images = m.n;
    regionmap_free(&m);
    const char *out = vr_path("photos_out.jsonl");
    const char *args[] = {"--regions", fixture, "--images-root", skimage_dir(), "--endpoint", endpoint, "--model", "m",
                          "--out", out, "--max-side", "384", NULL};
    int checked0 = n_checked;
    VcmRun r = run_v(args, NULL, 0, 0);
    json_t *s = vr_summary(&r);
    CHECK_MSG(r.code == 0, "exit %d: %s", r.code, r.err);
    CHECK(s && vr_jget(s, "images.done") == n_images && vr_jget(s, "descriptions.regions") == n_regions);
    json_decref(s);
    CHECK(bad_requests() == 0 && n_checked - checked0 == n_images + n_regions);
    /* the output is a mapping vcm reads, with the old fields kept */
    RegionMap o;
    CHECK(regionmap_load(out, &o, 0, NULL) == VCM_OK);
    const RegionEntry *a = regionmap_find(&o, "coffee.png");
    CHECK(a && a->n_global == 1 && a->n_regions == 4 && a->regions[1].n_boxes == 2);
    CHECK(a && a->regions[3].description && !strcmp(a->regions[3].description, "thing 3 of picture 2"));
    CHECK(a && a->regions[0].obj_guess && !strcmp(a->regions[0].obj_guess, "cup"));
    if (o.n) regionmap_free(&o);
    vcm_run_free(&r);
}

int main(void) {
    if (vr_tmp_init("vcm_verbalize")) { perror("mkdtemp"); return 1; }
    RUN(test_crop_rect_by_hand);
    RUN(test_crop_fit_and_jpeg_url);
    RUN(test_clean_reply);
    RUN(test_image_request_body);

    const char *help[] = {"--help", NULL};
    VcmRun h = vcm_run("verbalize", help, NULL, NULL, 0, 0, 0, 0);
    int have_cmd = h.code == 0 && h.out && strstr(h.out, "--images-root") && strstr(h.out, "--endpoint");
    if (!have_cmd) {
        fprintf(stderr, "vcm verbalize --help failed (exit %d): %s\n", h.code, h.err ? h.err : "");
        test_failed_++;
    }
    vcm_run_free(&h);
    if (have_cmd && fake_llm_start_routed(&server, reply_for, route, 90) == 0) {
        snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", server.port);
        RUN(test_cli_describes_retries_and_resumes);
        RUN(test_cli_keep_existing_and_max_side);
        RUN(test_cli_sigkill_and_sigint);
        RUN(test_cli_bad_input);
        RUN(test_cli_photos);
        fake_llm_stop(&server);
    } else if (have_cmd) {
        perror("fake LLM");
        test_failed_++;
    }
    vr_tmp_remove();
    return test_summary();
}
