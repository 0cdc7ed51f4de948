/* Images: decode each format, refuse truncated/missing files, resize and box scaling,
 * normalisation, the cache (hit/miss/eviction/disk/threads), drawing in bounds. */
#include "data/data.h"
#include "tensor/tensor.h"
#include "tests/test.h"

#include <stb/stb_image_write.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>
#include <zlib.h>

#define SK "/usr/lib/python3/dist-packages/skimage/data/"

static char tmpdir[64];

static const char *tmp_path(const char *name) {
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void test_decode_formats(void) {
    struct { const char *file; int w, h; } cases[] = {
        {SK "astronaut.png", 512, 512},      /* RGB PNG */
        {SK "camera.png", 512, 512},         /* grey PNG */
        {SK "logo.png", 500, 500},           /* RGBA PNG */
        {SK "palette_color.png", 10, 10},    /* palette PNG */
        {SK "rocket.jpg", 640, 427},
        {SK "retina.jpg", 1411, 1411},
        {SK "no_time_for_that_tiny.gif", 14, 25},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Image im;
        int rc = image_load(cases[i].file, &im);
        CHECK_MSG(rc == 0, "%s: %s", cases[i].file, vcm_error());
        if (rc) continue;
        int w, h;
        CHECK(image_info(cases[i].file, &w, &h) == 0 && w == im.w && h == im.h);
        CHECK_MSG(im.w == cases[i].w && im.h == cases[i].h, "%s: %dx%d", cases[i].file, im.w, im.h);
        /* not all black: something was decoded */
        long sum = 0;
        for (size_t k = 0; k < (size_t)im.w * im.h * 3; k++) sum += im.rgb[k];
        CHECK(sum > 0);
        if (strstr(cases[i].file, "camera")) {   /* grey replicated into R = G = B */
            int same = 1;
            for (size_t k = 0; k < (size_t)im.w * im.h; k++)
                same &= im.rgb[3 * k] == im.rgb[3 * k + 1] && im.rgb[3 * k] == im.rgb[3 * k + 2];
            CHECK(same);
        }
        image_free(&im);
    }
    /* BMP and TGA written with known pixels come back exactly */
    uint8_t px[6 * 4 * 3];
    for (int k = 0; k < 6 * 4 * 3; k++) px[k] = (uint8_t)(k * 37 + 11);
    CHECK(stbi_write_bmp(tmp_path("x.bmp"), 6, 4, 3, px));
    CHECK(stbi_write_tga(tmp_path("x.tga"), 6, 4, 3, px));
    const char *files[2] = {tmp_path("x.bmp"), tmp_path("x.tga")};
    for (int f = 0; f < 2; f++) {
        Image im;
        CHECK_MSG(image_load(files[f], &im) == 0, "%s", vcm_error());
        CHECK(im.w == 6 && im.h == 4 && im.rgb && !memcmp(im.rgb, px, sizeof px));
        image_free(&im);
    }
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

static void test_bad_files(void) {
    Image im;
    int rc = image_load(SK "truncated.jpg", &im);
    CHECK(rc == VCM_EINPUT && im.rgb == NULL);
    CHECK_STR_CONTAINS(vcm_error(), SK "truncated.jpg: ");
    CHECK_STR_CONTAINS(vcm_error(), "truncated");
    /* a JPEG cut in the middle of its scan, which stb_image alone would decode with grey */
    FILE *f = fopen(SK "rocket.jpg", "rb");
    static unsigned char buf[200000];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_bytes(tmp_path("cut.jpg"), buf, n * 6 / 10);
    CHECK(image_load(tmp_path("cut.jpg"), &im) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "cut.jpg: truncated JPEG");
    /* a PNG cut short */
    f = fopen(SK "astronaut.png", "rb");
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_bytes(tmp_path("cut.png"), buf, n / 2);
    CHECK(image_load(tmp_path("cut.png"), &im) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "cut.png: ");
    /* missing, empty, not an image */
    CHECK(image_load("/nonexistent/dir/a.jpg", &im) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "/nonexistent/dir/a.jpg: cannot open: No such file");
    int w, h;
    CHECK(image_info("/nonexistent/dir/a.jpg", &w, &h) == VCM_EINPUT);
    write_bytes(tmp_path("empty.png"), "", 0);
    CHECK(image_load(tmp_path("empty.png"), &im) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "empty");
    write_bytes(tmp_path("text.jpg"), "hello world\n", 12);
    CHECK(image_load(tmp_path("text.jpg"), &im) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "text.jpg: ");
    CHECK(image_info(tmp_path("text.jpg"), &w, &h) == VCM_EINPUT);
    /* a PNG whose header says 9000×9000 (81 M pixels, 243 MB decoded) is refused from its
     * header alone, before any pixel is decoded */
    {
        unsigned char png[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                 0, 0, 0x23, 0x28, 0, 0, 0x23, 0x28, 8, 2, 0, 0, 0};
        uLong crc = crc32(0L, png + 12, 17);
        for (int i = 0; i < 4; i++) png[29 + i] = (unsigned char)(crc >> (24 - 8 * i));
        write_bytes(tmp_path("huge.png"), png, sizeof png);
        CHECK(image_load(tmp_path("huge.png"), &im) == VCM_EINPUT);
        CHECK_STR_CONTAINS(vcm_error(), "9000×9000 pixels is more than vcm decodes");
    }
    /* make fuzz's finding: a progressive JPEG whose scans use Huffman tables no DHT
     * defined (stb_image decoded with uninitialised tables: a SEGV under ASan) */
    CHECK(image_load("tests/data/bad_huffman.jpg", &im) == VCM_EINPUT && im.rgb == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "bad_huffman.jpg: corrupt JPEG");
    CHECK(image_info("tests/data/bad_huffman.jpg", &w, &h) == VCM_EINPUT);   /* its header is checked too */
    /* a FIFO (no writer: opening it for reading would wait forever) and a directory are
     * refused at once, not read */
    CHECK(mkfifo(tmp_path("pipe.png"), 0600) == 0);
    CHECK(image_load(tmp_path("pipe.png"), &im) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "pipe.png: not a regular file");
    CHECK(image_info(tmp_path("pipe.png"), &w, &h) == VCM_EINPUT);
    CHECK(image_load(tmpdir, &im) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "not a regular file");
}

static void test_save_png(void) {
    Image im;
    CHECK(image_alloc(&im, 7, 5) == 0);
    for (int k = 0; k < 7 * 5 * 3; k++) im.rgb[k] = (uint8_t)(k * 13);
    CHECK(image_save_png(tmp_path("out.png"), &im) == 0);
    Image back;
    CHECK(image_load(tmp_path("out.png"), &back) == 0);
    CHECK(back.w == 7 && back.h == 5 && !memcmp(back.rgb, im.rgb, 7 * 5 * 3));
    image_free(&back);
    /* no temp file left beside it; an unwritable place fails cleanly */
    char probe[300];
    snprintf(probe, sizeof probe, "%s.tmp.%ld", tmp_path("out.png"), (long)getpid());
    CHECK(access(probe, F_OK) != 0);
    CHECK(image_save_png("/nonexistent/dir/x.png", &im) == VCM_ERR);
    CHECK_STR_CONTAINS(vcm_error(), "/nonexistent/dir/x.png");
    image_free(&im);
    CHECK(image_alloc(&im, 0, 5) == VCM_EINPUT);
}

static void test_resize_and_boxes(void) {
    /* a white rectangle on black: after resizing, the scaled box is white inside and
     * the image is black well outside it */
    Image src, dst;
    CHECK(image_alloc(&src, 400, 300) == 0);
    float box[4] = {100, 50, 260, 170}, sbox[4];
    for (int y = 50; y < 170; y++)
        for (int x = 100; x < 260; x++) memset(src.rgb + ((size_t)y * 400 + x) * 3, 255, 3);
    CHECK(image_resize(&src, 64, 64, &dst) == 0);
    CHECK(dst.w == 64 && dst.h == 64);
    ImageScale s = image_scale(400, 300, 64, 64);
    CHECK_NEAR(s.sx, 0.16, 1e-6);
    CHECK_NEAR(s.sy, 64.0 / 300.0, 1e-6);
    image_scale_box(s, box, sbox);
    CHECK_NEAR(sbox[0], 16, 1e-4); CHECK_NEAR(sbox[1], 50 * 64.0 / 300, 1e-4);
    CHECK_NEAR(sbox[2], 41.6, 1e-4); CHECK_NEAR(sbox[3], 170 * 64.0 / 300, 1e-4);
    int cx = (int)((sbox[0] + sbox[2]) / 2), cy = (int)((sbox[1] + sbox[3]) / 2);
    CHECK(dst.rgb[((size_t)cy * 64 + cx) * 3] == 255);
    CHECK(dst.rgb[((size_t)(int)(sbox[1] + 2) * 64 + (int)(sbox[0] + 2)) * 3] > 200);
    CHECK(dst.rgb[((size_t)5 * 64 + 5) * 3] == 0);                       /* far outside */
    CHECK(dst.rgb[((size_t)cy * 64 + (int)sbox[2] + 3) * 3] < 30);       /* right of it */
    /* deterministic */
    Image again;
    CHECK(image_resize(&src, 64, 64, &again) == 0);
    CHECK(!memcmp(again.rgb, dst.rgb, 64 * 64 * 3));
    image_free(&again);
    /* a flat image stays flat, up-sampling too */
    memset(src.rgb, 77, 400 * 300 * 3);
    image_free(&dst);
    CHECK(image_resize(&src, 1000, 5, &dst) == 0);
    int flat = 1;
    for (int k = 0; k < 1000 * 5 * 3; k++) flat &= dst.rgb[k] == 77;
    CHECK(flat);
    image_free(&dst);
    image_free(&src);
}

static void test_normalise(void) {
    uint8_t rgb[2 * 1 * 3] = {0, 255, 128, 10, 20, 30};
    float out[6];
    image_to_chw(rgb, 2, 1, out);
    /* CHW: R plane (0, 10), G plane (255, 20), B plane (128, 30) */
    CHECK_NEAR(out[0], -1.0, 1e-6);
    CHECK_NEAR(out[1], (10 / 255.0 - 0.5) / 0.5, 1e-6);
    CHECK_NEAR(out[2], 1.0, 1e-6);
    CHECK_NEAR(out[3], (20 / 255.0 - 0.5) / 0.5, 1e-6);
    CHECK_NEAR(out[4], (128 / 255.0 - 0.5) / 0.5, 1e-6);
    CHECK_NEAR(out[5], (30 / 255.0 - 0.5) / 0.5, 1e-6);
}

/* The reference: load + resize directly. */
static void reference(const char *path, int size, uint8_t *rgb) {
    Image im, r;
    image_load(path, &im);
    image_resize(&im, size, size, &r);
    memcpy(rgb, r.rgb, (size_t)size * size * 3);
    image_free(&im);
    image_free(&r);
}

static void test_cache(void) {
    const char *A = SK "astronaut.png", *B = SK "camera.png", *C = SK "rocket.jpg";
    enum { S = 32, PX = S * S * 3 };
    uint8_t ra[PX], rb[PX], rc[PX], got[PX];
    reference(A, S, ra);
    reference(B, S, rb);
    reference(C, S, rc);
    ImageCache *c;
    CHECK(image_cache_new(&c, 2 * PX, NULL) == 0);   /* room for two */
    int w, h;
    ImageCacheStats st;
    CHECK(image_cache_get(c, A, S, got, &w, &h) == 0 && !memcmp(got, ra, PX) && w == 512 && h == 512);
    CHECK(image_cache_get(c, A, S, got, &w, &h) == 0 && !memcmp(got, ra, PX) && w == 512);
    image_cache_stats(c, &st);
    CHECK(st.hits == 1 && st.misses == 1 && st.entries == 1 && st.bytes == PX);
    CHECK(image_cache_get(c, B, S, got, &w, &h) == 0 && !memcmp(got, rb, PX));
    CHECK(image_cache_get(c, A, S, got, &w, &h) == 0);      /* A is now the most recent */
    CHECK(image_cache_get(c, C, S, got, &w, &h) == 0 && !memcmp(got, rc, PX) && w == 640 && h == 427);
    image_cache_stats(c, &st);
    CHECK(st.hits == 2 && st.misses == 3 && st.evictions == 1 && st.entries == 2 && st.bytes == 2 * PX);
    CHECK(image_cache_get(c, A, S, got, &w, &h) == 0);      /* still there */
    CHECK(image_cache_get(c, B, S, got, &w, &h) == 0 && !memcmp(got, rb, PX));   /* was evicted */
    image_cache_stats(c, &st);
    CHECK(st.hits == 3 && st.misses == 4 && st.evictions == 2);
    /* the size is part of the key */
    uint8_t big[16 * 16 * 3];
    CHECK(image_cache_get(c, A, 16, big, &w, &h) == 0);
    image_cache_stats(c, &st);
    CHECK(st.misses == 5);
    /* errors pass through and are not cached */
    CHECK(image_cache_get(c, SK "truncated.jpg", S, got, &w, &h) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "truncated.jpg: truncated JPEG");
    CHECK(image_cache_get(c, "/nonexistent.png", S, got, &w, &h) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "/nonexistent.png: cannot open");
    image_cache_free(c);
    /* budget 0: nothing kept */
    CHECK(image_cache_new(&c, 0, NULL) == 0);
    image_cache_get(c, A, S, got, &w, &h);
    image_cache_get(c, A, S, got, &w, &h);
    image_cache_stats(c, &st);
    CHECK(st.hits == 0 && st.misses == 2 && st.entries == 0 && !memcmp(got, ra, PX));
    image_cache_free(c);
}

static void test_cache_disk(void) {
    enum { S = 24, PX = S * S * 3 };
    /* a private copy of the source so its mtime can change */
    Image im;
    CHECK(image_load(SK "chelsea.png", &im) == 0);
    const char *src = tmp_path("src.png");
    CHECK(image_save_png(src, &im) == 0);
    image_free(&im);
    uint8_t ref[PX], got[PX];
    reference(src, S, ref);
    const char *dir = tmp_path("cache");
    ImageCache *c;
    ImageCacheStats st;
    int w, h;
    CHECK(image_cache_new(&c, 1 << 20, dir) == 0);
    CHECK(image_cache_get(c, src, S, got, &w, &h) == 0 && !memcmp(got, ref, PX));
    image_cache_free(c);
    CHECK(image_cache_new(&c, 1 << 20, dir) == 0);       /* a new process, same directory */
    memset(got, 0, PX);
    CHECK(image_cache_get(c, src, S, got, &w, &h) == 0 && !memcmp(got, ref, PX) && w == 451 && h == 300);
    image_cache_stats(c, &st);
    CHECK(st.disk_hits == 1 && st.misses == 1);
    image_cache_free(c);
    /* the source changed (mtime): the disk copy is not trusted */
    struct utimbuf t = {1000000000, 1000000000};
    CHECK(utime(src, &t) == 0);
    CHECK(image_cache_new(&c, 1 << 20, dir) == 0);
    CHECK(image_cache_get(c, src, S, got, &w, &h) == 0 && !memcmp(got, ref, PX));
    image_cache_stats(c, &st);
    CHECK(st.disk_hits == 0);
    image_cache_free(c);
    /* a damaged disk file is ignored, not served */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "for f in %s/*.rgb; do printf 'XXXX' | dd of=$f bs=1 seek=100 conv=notrunc 2>/dev/null; done", dir);
    CHECK(system(cmd) == 0);
    CHECK(image_cache_new(&c, 1 << 20, dir) == 0);
    CHECK(image_cache_get(c, src, S, got, &w, &h) == 0 && !memcmp(got, ref, PX));
    image_cache_stats(c, &st);
    CHECK(st.disk_hits == 0);
    image_cache_free(c);
}

static void test_cache_threads(void) {
    enum { S = 16, PX = S * S * 3, N = 4 };
    const char *files[N] = {SK "astronaut.png", SK "camera.png", SK "coffee.png", SK "chelsea.png"};
    static uint8_t ref[N][PX];
    for (int i = 0; i < N; i++) reference(files[i], S, ref[i]);
    ImageCache *c;
    CHECK(image_cache_new(&c, 2 * PX, NULL) == 0);      /* smaller than the set: evictions */
    int bad = 0;
#pragma omp parallel for num_threads(2) schedule(static, 1) reduction(+ : bad)
    for (int k = 0; k < 200; k++) {
        uint8_t got[PX];
        int w, h, i = (k * 7 + k / 3) % N;
        if (image_cache_get(c, files[i], S, got, &w, &h) || memcmp(got, ref[i], PX)) bad++;
    }
    CHECK(bad == 0);
    ImageCacheStats st;
    image_cache_stats(c, &st);
    CHECK(st.hits + st.misses == 200 && st.entries <= 2 && st.bytes <= 2 * PX);
    image_cache_free(c);
}

static void test_draw(void) {
    int W = 50, H = 40;
    /* the image sits inside a larger buffer: any write out of bounds hits a canary */
    size_t n = (size_t)W * H * 3, guard = 4096;
    uint8_t *mem = malloc(n + 2 * guard);
    memset(mem, 0xA5, n + 2 * guard);
    Image im = {W, H, mem + guard};
    memset(im.rgb, 100, n);
    DrawBox b = {10, 10, 30, 25, 3};
    draw_boxes(&im, &b, 1, 0);
    const uint8_t *c = draw_palette[3];
#define PX(x, y) (im.rgb + ((size_t)(y) * W + (x)) * 3)
    CHECK(!memcmp(PX(10, 17), c, 3));   /* left outline, 2 px */
    CHECK(!memcmp(PX(11, 17), c, 3));
    CHECK(!memcmp(PX(29, 17), c, 3));   /* right outline: x1 is exclusive */
    CHECK(!memcmp(PX(28, 17), c, 3));
    CHECK(!memcmp(PX(20, 10), c, 3) && !memcmp(PX(20, 24), c, 3));
    for (int k = 0; k < 3; k++) {       /* inside: 12% of the colour */
        int want = (int)lrintf(100 * (1 - DRAW_FILL_ALPHA) + c[k] * DRAW_FILL_ALPHA);
        CHECK(PX(20, 17)[k] == want);
        CHECK(PX(12, 17)[k] == want);
    }
    CHECK(PX(9, 17)[0] == 100 && PX(30, 17)[0] == 100 && PX(20, 9)[1] == 100 && PX(20, 25)[2] == 100);
    /* a label goes above the box in the box's colour */
    memset(im.rgb, 100, n);
    draw_boxes(&im, &b, 1, 1);
    int found = 0;
    for (int y = 0; y < 10; y++)
        for (int x = 10; x < 30; x++) found += !memcmp(PX(x, y), c, 3);
    CHECK(found > 20);
    /* boxes far outside, partly outside, huge labels, NaN, degenerate: no write out of bounds */
    DrawBox many[] = {{-10, -10, 1000, 20, 0}, {45, 35, 90, 90, 15}, {-100, -100, -50, -50, 7},
                      {1e30f, 0, 2e30f, 5, 1}, {NAN, 0, 5, 5, 2}, {5, 5, 5, 9, 4}, {0, 0, 3, 3, 21},
                      {-1e30f, -1e30f, 1e30f, 1e30f, 8}};
    draw_boxes(&im, many, (int)(sizeof many / sizeof many[0]), 9);
    draw_boxes(&im, many, (int)(sizeof many / sizeof many[0]), DRAW_LABEL_AUTO);
    int canary = 1;
    for (size_t k = 0; k < guard; k++) canary &= mem[k] == 0xA5 && mem[guard + n + k] == 0xA5;
    CHECK(canary);
    /* the partly-outside box: its visible right and bottom edges are outlined */
    memset(im.rgb, 100, n);
    DrawBox part = {45, 35, 90, 90, 15};
    draw_boxes(&im, &part, 1, 0);
    CHECK(!memcmp(PX(45, 37), draw_palette[15], 3) && !memcmp(PX(47, 35), draw_palette[15], 3));
    CHECK(PX(49, 39)[0] != 100);          /* tinted */
    free(mem);
    /* the palette: 16 colours well apart */
    int close = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < i; j++) {
            int d = 0;
            for (int k = 0; k < 3; k++) d += abs(draw_palette[i][k] - draw_palette[j][k]);
            close += d < 60;
        }
    CHECK(close == 0);
#undef PX
}

/* Not a check: pictures to look at (VCM_DRAW_DEMO=DIR writes them). */
static void demo(const char *dir) {
    Image im, small;
    if (image_load(SK "astronaut.png", &im)) return;
    DrawBox b[] = {{140, 20, 370, 260, 0}, {20, 240, 280, 512, 1}, {330, 300, 520, 512, 2},
                   {0, 0, 120, 120, 3}, {200, 100, 300, 180, 14}};
    char p[512];
    for (int s = 0; s < 2; s++) {
        int size = s ? 224 : 64;
        image_resize(&im, size, size, &small);
        ImageScale sc = image_scale(im.w, im.h, size, size);
        DrawBox sb[5];
        for (int i = 0; i < 5; i++) {
            float in[4] = {b[i].x0, b[i].y0, b[i].x1, b[i].y1}, out[4];
            image_scale_box(sc, in, out);
            sb[i] = (DrawBox){out[0], out[1], out[2], out[3], b[i].id};
        }
        draw_boxes(&small, sb, 5, s ? DRAW_LABEL_AUTO : 1);
        snprintf(p, sizeof p, "%s/draw_%d.png", dir, size);
        image_save_png(p, &small);
        image_free(&small);
    }
    draw_boxes(&im, b, 5, DRAW_LABEL_AUTO);
    snprintf(p, sizeof p, "%s/draw_orig.png", dir);
    image_save_png(p, &im);
    image_free(&im);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vcm_test_image_%d", (int)getpid());
    mkdir(tmpdir, 0700);
    RUN(test_decode_formats);
    RUN(test_bad_files);
    RUN(test_save_png);
    RUN(test_resize_and_boxes);
    RUN(test_normalise);
    RUN(test_cache);
    RUN(test_cache_disk);
    RUN(test_cache_threads);
    RUN(test_draw);
    if (getenv("VCM_DRAW_DEMO")) demo(getenv("VCM_DRAW_DEMO"));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return test_summary();
}
