/* nn/ checkpoints and safetensors: round trips (weights, training state, config),
 * determinism, every kind of damage refused with the message naming it, the atomic
 * write surviving SIGKILL mid-write, safetensors read by an independent Python reader
 * (json + numpy, no torch) and written by it, and `vcm export`.
 *
 * The SIGKILL test re-executes this program as a writer (`--writer PATH`), so the
 * killed process never shares OpenMP state with the test through fork. */
#include "nn/nn.h"
#include "tests/test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static char g_dir[256];        /* temporary directory of this run */
static const char *g_self;     /* argv[0] */
static const char *PY = "/usr/bin/python3";
static const char *CONFIG = "{\"name\":\"test\",\"vit_d\":8,\"note\":\"quotes \\\" and \\\\ survive\"}";

static const char *tmp_path(const char *name) {
    static char buf[64][512];
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* ---------------------------------------------------------------- fixtures */

enum { V_BASE, V_EXTRA, V_MISSING, V_SHAPE };

/* A small model with names and shapes like the student's: Linear with bias, LayerNorm,
 * Embedding, a 4-D conv weight. Variants differ by one tensor. */
static void build_store(ParamStore *ps, int variant) {
    params_init(ps);
    Linear qkv;
    LayerNorm norm;
    Embedding tok;
    CHECK(!linear_declare(&qkv, ps, "vit.blocks.0.attn.qkv", 8, 24, 1, 0.02f));
    if (variant != V_MISSING) CHECK(!layernorm_declare(&norm, ps, "dec.norm", 8));
    CHECK(!embedding_declare(&tok, ps, "dec.tok", variant == V_SHAPE ? 40 : 50, 8, 0.02f));
    CHECK(params_declare(ps, "vit.patch_embed.weight", 4, (int[]){8, 3, 2, 2}, NN_INIT_NORMAL, 0.02f, 1) != NULL);
    if (variant == V_EXTRA) CHECK(params_declare(ps, "dec.extra.weight", 1, (int[]){3}, NN_INIT_ZEROS, 0, 0) != NULL);
    CHECK(!params_alloc(ps));
}

static void fill_store(ParamStore *ps, unsigned long long seed) {
    for (int i = 0; i < ps->n_params; i++) {
        Param *p = ps->p[i];
        for (size_t j = 0; j < p->t.n; j++) {
            ps->params[p->offset + j] = test_uniform(&seed);
            ps->m[p->offset + j] = test_uniform(&seed) * 1e-3f;
            ps->v[p->offset + j] = fabsf(test_uniform(&seed)) * 1e-6f;
        }
    }
}

static TrainState make_state(void) {
    TrainState st = {0};
    st.step = 1234;
    for (int k = 0; k < CKPT_RNG_WORDS; k++) st.rng[k] = 0x9e3779b97f4a7c15ull * (uint64_t)(k + 1);
    st.epoch = 3;
    st.position = 777;
    st.shuffle_seed = 0xdeadbeefcafef00dull;
    st.opt = adamw_default();
    st.opt.beta2 = 0.95;
    st.opt.weight_decay = 0.1;
    st.opt.step = 1230;
    st.options_json = "{\"lr\":0.0003,\"batch\":32,\"config\":\"nano\"}";
    return st;
}

static int same_values(const ParamStore *a, const ParamStore *b, int moments) {
    if (a->n_params != b->n_params) return 0;
    for (int i = 0; i < a->n_params; i++) {
        const Param *p = a->p[i], *q = params_find(b, p->name);
        if (!q || q->t.n != p->t.n) return 0;
        size_t bytes = p->t.n * sizeof(float);
        if (memcmp(a->params + p->offset, b->params + q->offset, bytes)) return 0;
        if (moments && (memcmp(a->m + p->offset, b->m + q->offset, bytes) ||
                        memcmp(a->v + p->offset, b->v + q->offset, bytes)))
            return 0;
    }
    return 1;
}

static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(p, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Run argv (argv[0] a path) with stdout/stderr into files; the exit code, or -1. */
static int run(char *const argv[], const char *out, const char *err) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(127);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---------------------------------------------------------------- round trips */

static void test_roundtrip_weights(void) {
    ParamStore a, b;
    build_store(&a, V_BASE);
    build_store(&b, V_BASE);
    fill_store(&a, 1);
    const char *path = tmp_path("w.vcm");
    CHECK_MSG(!checkpoint_save(path, CONFIG, &a, NULL), "%s", vcm_error());
    CHECK(!file_exists(tmp_path("w.vcm.tmp")));
    char *cfg = NULL;
    CHECK_MSG(!checkpoint_read_config(path, &cfg), "%s", vcm_error());
    CHECK(cfg && !strcmp(cfg, CONFIG));
    free(cfg);
    CHECK_MSG(!checkpoint_load(path, &b, NULL), "%s", vcm_error());
    CHECK(same_values(&a, &b, 0));
    /* No training state saved: asking for it is refused, by name. */
    TrainState st = {0};
    CHECK(checkpoint_load(path, &b, &st) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "no training state");
    /* The reader sees the table in declaration order with the shapes. */
    CheckpointReader r;
    CHECK_MSG(!checkpoint_open(&r, path), "%s", vcm_error());
    CHECK(r.n_tensors == a.n_params && !r.has_train_state);
    for (int i = 0; i < r.n_tensors && i < a.n_params; i++) {
        CHECK(!strcmp(r.tensors[i].name, a.p[i]->name));
        CHECK(r.tensors[i].ndim == a.p[i]->t.ndim && r.tensors[i].nbytes == a.p[i]->t.n * 4);
    }
    CHECK(checkpoint_find(&r, "dec.tok.weight") >= 0 && checkpoint_find(&r, "nope") < 0);
    checkpoint_close(&r);
    params_free(&a);
    params_free(&b);
}

static void test_roundtrip_train_state(void) {
    ParamStore a, b, c;
    build_store(&a, V_BASE);
    build_store(&b, V_BASE);
    build_store(&c, V_BASE);
    fill_store(&a, 2);
    TrainState st = make_state(), got = {0};
    const char *path = tmp_path("t.vcm");
    CHECK_MSG(!checkpoint_save(path, CONFIG, &a, &st), "%s", vcm_error());
    CHECK_MSG(!checkpoint_load(path, &b, &got), "%s", vcm_error());
    CHECK(same_values(&a, &b, 1));
    CHECK(got.step == st.step && got.epoch == st.epoch && got.position == st.position);
    CHECK(got.shuffle_seed == st.shuffle_seed);
    CHECK(!memcmp(got.rng, st.rng, sizeof st.rng));
    CHECK(got.opt.beta1 == st.opt.beta1 && got.opt.beta2 == st.opt.beta2 && got.opt.eps == st.opt.eps);
    CHECK(got.opt.weight_decay == st.opt.weight_decay && got.opt.step == st.opt.step);
    CHECK(got.options_json && !strcmp(got.options_json, st.options_json));
    train_state_free(&got);
    CHECK(got.options_json == NULL);
    /* The weights alone load from a training checkpoint; the moments stay untouched. */
    CHECK_MSG(!checkpoint_load(path, &c, NULL), "%s", vcm_error());
    CHECK(same_values(&a, &c, 0));
    CHECK(c.m[c.p[0]->offset] == 0.0f);
    params_free(&a);
    params_free(&b);
    params_free(&c);
}

/* A training state AdamW cannot run with (written by another program: the CRC is right)
 * is refused on load, naming the values, instead of training NaN weights on resume. */
static void test_train_state_out_of_range_refused(void) {
    ParamStore a, b;
    build_store(&a, V_BASE);
    build_store(&b, V_BASE);
    fill_store(&a, 2);
    const char *path = tmp_path("bad_state.vcm");
    for (int k = 0; k < 5; k++) {
        TrainState st = make_state(), got = {0};
        if (k == 0) st.opt.beta1 = NAN;
        if (k == 1) st.opt.eps = 0;
        if (k == 2) st.opt.beta2 = 1.0;
        if (k == 3) st.opt.weight_decay = INFINITY;
        if (k == 4) st.opt.beta1 = -0.5;
        CHECK_MSG(!checkpoint_save(path, CONFIG, &a, &st), "%s", vcm_error());
        CHECK(checkpoint_load(path, &b, &got) == VCM_EINPUT);
        CHECK_STR_CONTAINS(vcm_error(), "training state out of range");
        train_state_free(&got);
        /* the weights alone still load: only resuming needs the state */
        CHECK_MSG(!checkpoint_load(path, &b, NULL), "%s", vcm_error());
    }
    params_free(&a);
    params_free(&b);
}

/* Same inputs, same bytes: nothing time- or address-dependent in the file. */
static void test_deterministic_bytes(void) {
    ParamStore a;
    build_store(&a, V_BASE);
    fill_store(&a, 3);
    TrainState st = make_state();
    const char *p1 = tmp_path("d1.vcm"), *p2 = tmp_path("d2.vcm");
    CHECK(!checkpoint_save(p1, CONFIG, &a, &st));
    CHECK(!checkpoint_save(p2, CONFIG, &a, &st));
    size_t n1 = 0, n2 = 0;
    unsigned char *b1 = slurp(p1, &n1), *b2 = slurp(p2, &n2);
    CHECK(b1 && b2 && n1 == n2 && n1 > 0 && !memcmp(b1, b2, n1));
    /* The data starts on a 64-byte boundary and the file is exactly header + 3 buffers. */
    uint64_t hs = 0, fs = 0;
    if (b1 && n1 >= 32) { memcpy(&hs, b1 + 16, 8); memcpy(&fs, b1 + 24, 8); }
    CHECK(hs % 64 == 0 && fs == n1 && fs == hs + 3 * params_count(&a) * 4);
    free(b1);
    free(b2);
    params_free(&a);
}

/* A stale temporary from a killed writer is replaced by the next save. */
static void test_stale_temp_replaced(void) {
    ParamStore a, b;
    build_store(&a, V_BASE);
    build_store(&b, V_BASE);
    fill_store(&a, 4);
    const char *path = tmp_path("s.vcm"), *tmp = tmp_path("s.vcm.tmp");
    CHECK(!write_bytes(tmp, "half a checkpoint", 17));
    CHECK_MSG(!checkpoint_save(path, CONFIG, &a, NULL), "%s", vcm_error());
    CHECK(!file_exists(tmp));
    CHECK_MSG(!checkpoint_load(path, &b, NULL), "%s", vcm_error());
    CHECK(same_values(&a, &b, 0));
    /* An unwritable directory: an error, not a crash, and no file appears. */
    CHECK(checkpoint_save("/nonexistent-dir/x.vcm", CONFIG, &a, NULL) == VCM_ERR);
    CHECK_STR_CONTAINS(vcm_error(), "/nonexistent-dir/x.vcm");
    params_free(&a);
    params_free(&b);
}

/* ---------------------------------------------------------------- damage */

/* Save a training checkpoint, return its bytes (the caller frees). */
static unsigned char *good_file(const char *path, size_t *n, ParamStore *a) {
    build_store(a, V_BASE);
    fill_store(a, 5);
    TrainState st = make_state();
    CHECK(!checkpoint_save(path, CONFIG, a, &st));
    return slurp(path, n);
}

static int load_damaged(const char *path, const unsigned char *b, size_t n) {
    ParamStore x;
    build_store(&x, V_BASE);
    TrainState st = {0};
    write_bytes(path, b, n);
    int rc = checkpoint_load(path, &x, &st);
    train_state_free(&st);
    params_free(&x);
    return rc;
}

static void test_truncated(void) {
    ParamStore a;
    size_t n = 0;
    const char *path = tmp_path("trunc.vcm");
    unsigned char *b = good_file(path, &n, &a);
    uint64_t hs = 0;
    if (b) memcpy(&hs, b + 16, 8);
    size_t cuts[] = {5, 40, (size_t)hs - 1, (size_t)hs, (size_t)hs + 100, n / 2, n - 1};
    for (size_t k = 0; b && k < sizeof cuts / sizeof cuts[0]; k++) {
        int rc = load_damaged(path, b, cuts[k]);
        CHECK_MSG(rc == VCM_EINPUT, "cut at %zu: rc %d", cuts[k], rc);
        CHECK_STR_CONTAINS(vcm_error(), path);
        CHECK_STR_CONTAINS(vcm_error(), "truncated");
        if (cuts[k] >= 64) {
            char want[96];
            snprintf(want, sizeof want, "expected %zu bytes, found %zu", n, cuts[k]);
            CHECK_STR_CONTAINS(vcm_error(), want);
        }
    }
    /* Bytes after the end are damage too. */
    unsigned char *longer = malloc(n + 3);
    if (b && longer) {
        memcpy(longer, b, n);
        memset(longer + n, 0, 3);
        CHECK(load_damaged(path, longer, n + 3) == VCM_EINPUT);
        CHECK_STR_CONTAINS(vcm_error(), "3 unexpected bytes after the end");
    }
    free(longer);
    free(b);
    params_free(&a);
}

static void test_flipped_byte_named(void) {
    ParamStore a;
    size_t n = 0;
    const char *path = tmp_path("flip.vcm");
    unsigned char *b = good_file(path, &n, &a);
    if (!b) { CHECK(b); params_free(&a); return; }
    uint64_t hs;
    memcpy(&hs, b + 16, 8);
    /* In the config text (inside the header). */
    b[64 + 3] ^= 0x20;
    CHECK(load_damaged(path, b, n) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "header CRC mismatch");
    b[64 + 3] ^= 0x20;
    /* In each tensor's data: the message names the tensor. */
    size_t off = hs;
    for (int i = 0; i < a.n_params; i++) {
        size_t at = off + a.p[i]->t.n * 4 / 2;
        b[at] ^= 0x01;
        CHECK(load_damaged(path, b, n) == VCM_EINPUT);
        char want[160];
        snprintf(want, sizeof want, "tensor %s: CRC mismatch", a.p[i]->name);
        CHECK_STR_CONTAINS(vcm_error(), want);
        b[at] ^= 0x01;
        off += a.p[i]->t.n * 4;
    }
    /* In the moments. */
    size_t total = params_count(&a) * 4;
    b[hs + total + 10] ^= 0x80;
    CHECK(load_damaged(path, b, n) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "AdamW first moment m: CRC mismatch");
    b[hs + total + 10] ^= 0x80;
    b[n - 1] ^= 0x04;
    CHECK(load_damaged(path, b, n) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "AdamW second moment v: CRC mismatch");
    b[n - 1] ^= 0x04;
    CHECK(load_damaged(path, b, n) == VCM_OK);
    free(b);
    params_free(&a);
}

/* Every byte of the file is covered: flipping any one of them is refused. */
static void test_every_byte_flip_refused(void) {
    ParamStore a;
    size_t n = 0;
    const char *path = tmp_path("every.vcm");
    unsigned char *b = good_file(path, &n, &a);
    int accepted = 0;
    ParamStore x;
    build_store(&x, V_BASE);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    for (size_t i = 0; b && fd >= 0 && i < n; i++) {
        unsigned char c = b[i] ^ (unsigned char)(1u << (i % 8));
        if (pwrite(fd, &c, 1, (off_t)i) != 1) { CHECK(0); break; }
        TrainState st = {0};
        if (checkpoint_load(path, &x, &st) != VCM_EINPUT) {
            if (accepted++ < 5) fprintf(stderr, "  flip at byte %zu of %zu accepted\n", i, n);
        }
        train_state_free(&st);
        if (pwrite(fd, &b[i], 1, (off_t)i) != 1) { CHECK(0); break; }
    }
    if (fd >= 0) close(fd);
    CHECK_MSG(accepted == 0, "%d of %zu single-byte flips accepted", accepted, n);
    printf("     every-byte flip: %zu flips, all refused\n", n);
    free(b);
    params_free(&x);
    params_free(&a);
}

/* A header with garbage but a valid CRC (a crafted file, or a writer bug): the parser
 * must bound every size by itself. Run under ASan by `make test-asan`. */
static void test_crafted_header_bounds_checked(void) {
    ParamStore a;
    size_t n = 0;
    const char *path = tmp_path("crafted.vcm");
    unsigned char *b = good_file(path, &n, &a);
    if (!b) { CHECK(b); params_free(&a); return; }
    uint64_t hs;
    memcpy(&hs, b + 16, 8);
    unsigned char *c = malloc(n);
    unsigned long long rng = 12345;
    int refused = 0, trials = 3000;
    ParamStore x;
    build_store(&x, V_BASE);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    for (int t = 0; c && fd >= 0 && t < trials; t++) {
        memcpy(c, b, n);
        int k = 1 + (int)(test_rng_next(&rng) % 4);
        for (int j = 0; j < k; j++) {
            /* Past the fixed header's magic/version; sizes, table and state. */
            size_t at = 12 + (size_t)(test_rng_next(&rng) % (hs - 12));
            c[at] = (unsigned char)test_rng_next(&rng);
        }
        memset(c + 40, 0, 4);
        uint32_t crc = (uint32_t)crc32(0, c, (uInt)hs);
        memcpy(c + 40, &crc, 4);
        /* In place: truncate-and-rewrite makes ext4 flush each time (auto_da_alloc). */
        if (pwrite(fd, c, n, 0) != (ssize_t)n) { CHECK(0); break; }
        TrainState st = {0};
        int rc = checkpoint_load(path, &x, &st);
        train_state_free(&st);
        CHECK_MSG(rc == VCM_OK || rc == VCM_EINPUT, "trial %d: rc %d: %s", t, rc, vcm_error());
        refused += rc == VCM_EINPUT;
    }
    if (fd >= 0) close(fd);
    printf("     crafted headers: %d of %d refused, none crashed\n", refused, trials);
    CHECK(refused > trials / 2);
    free(c);
    free(b);
    params_free(&x);
    params_free(&a);
}

static void test_wrong_magic_and_version(void) {
    ParamStore a;
    size_t n = 0;
    const char *path = tmp_path("magic.vcm");
    unsigned char *b = good_file(path, &n, &a);
    if (!b) { CHECK(b); params_free(&a); return; }
    const char *text = "{\"not\": \"a checkpoint\"}\n";
    CHECK(load_damaged(path, (const unsigned char *)text, strlen(text)) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "not a vcm checkpoint (bad magic)");
    CHECK(load_damaged(path, b, 0) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "not a vcm checkpoint");
    b[0] = 'X';
    CHECK(load_damaged(path, b, n) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "bad magic");
    b[0] = 'V';
    b[8] = 2;
    CHECK(load_damaged(path, b, n) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "unsupported checkpoint format version 2 (this build reads version 1)");
    b[8] = 1;
    char *cfg = NULL;
    CHECK(checkpoint_read_config(tmp_path("does-not-exist.vcm"), &cfg) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "does-not-exist.vcm: No such file");
    free(b);
    params_free(&a);
}

static void test_config_tensor_mismatch(void) {
    ParamStore a, x;
    build_store(&a, V_BASE);
    fill_store(&a, 6);
    const char *path = tmp_path("mm.vcm");
    CHECK(!checkpoint_save(path, CONFIG, &a, NULL));

    build_store(&x, V_EXTRA);
    CHECK(checkpoint_load(path, &x, NULL) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "tensor dec.extra.weight [3] of the model is missing from the checkpoint");
    params_free(&x);

    build_store(&x, V_MISSING);
    CHECK(checkpoint_load(path, &x, NULL) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "tensor dec.norm.weight [8] in the checkpoint is not a parameter of the model");
    params_free(&x);

    build_store(&x, V_SHAPE);
    CHECK(checkpoint_load(path, &x, NULL) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "tensor dec.tok.weight has shape [50, 8] in the checkpoint but [40, 8] in the model");
    CHECK_STR_CONTAINS(vcm_error(), path);
    params_free(&x);
    params_free(&a);
}

/* ---------------------------------------------------------------- SIGKILL mid-write */

#define BIG_FLOATS (2u << 20)            /* 8 MB of weights, 24 MB with the moments */

static void build_big(ParamStore *ps) {
    params_init(ps);
    params_declare(ps, "big.a.weight", 2, (int[]){1024, (int)(BIG_FLOATS / 2048)}, NN_INIT_ZEROS, 0, 1);
    params_declare(ps, "big.b.weight", 2, (int[]){1024, (int)(BIG_FLOATS / 2048)}, NN_INIT_ZEROS, 0, 1);
    params_declare(ps, "big.c.bias", 1, (int[]){17}, NN_INIT_ZEROS, 0, 0);
}

/* Version v of the big checkpoint: every value a function of (v, index). */
static float big_value(int64_t v, size_t i, int which) {
    return (float)((uint64_t)(v * 7919 + (int64_t)i * 31 + which * 101) % 100003u) * 0.5f;
}

static void fill_big(ParamStore *ps, int64_t v) {
    for (int k = 0; k < ps->n_params; k++) {
        const Param *p = ps->p[k];
        for (size_t j = 0; j < p->t.n; j++) {
            size_t i = p->offset + j;
            ps->params[i] = big_value(v, i, 0);
            ps->m[i] = big_value(v, i, 1);
            ps->v[i] = big_value(v, i, 2);
        }
    }
}

/* The writer process: saves versions first, first+1, … forever, until killed. */
static int writer_main(const char *path, int64_t first) {
    ParamStore ps;
    build_big(&ps);
    if (params_alloc(&ps)) return 1;
    for (int64_t v = first;; v++) {
        fill_big(&ps, v);
        TrainState st = {0};
        st.step = v;
        st.opt = adamw_default();
        if (checkpoint_save(path, "{\"big\":true}", &ps, &st)) {
            fprintf(stderr, "writer: %s\n", vcm_error());
            return 1;
        }
    }
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {}
}

static void test_sigkill_mid_write_keeps_previous(void) {
    const char *path = tmp_path("big.vcm"), *tmp = tmp_path("big.vcm.tmp");
    ParamStore ps;
    build_big(&ps);
    CHECK(!params_alloc(&ps));
    fill_big(&ps, 0);
    TrainState st0 = {0};
    st0.opt = adamw_default();
    CHECK(!checkpoint_save(path, "{\"big\":true}", &ps, &st0));

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long long rng = 0x5eed0000ull + (unsigned long long)t0.tv_nsec;
    /* 6 rounds, more (up to 24, the window widening) until a kill has landed inside a
     * write: on a loaded machine the writer starts late and early kills all miss. */
    int rounds = 0, mid_write = 0;
    int64_t newest = 0;
    for (int r = 0; r < 24 && (r < 6 || !mid_write); r++, rounds++) {
        int64_t first = (int64_t)(r + 1) * 1000;
        char first_s[32];
        snprintf(first_s, sizeof first_s, "%lld", (long long)first);
        pid_t pid = fork();
        if (pid == 0) {
            execl(g_self, g_self, "--writer", path, first_s, (char *)NULL);
            _exit(127);
        }
        CHECK(pid > 0);
        if (pid <= 0) break;
        /* Random moments across the writer's cycle: start-up, fill, write, fsync, rename. */
        long ms = 30 + (long)(test_rng_next(&rng) % (700 + 100 * (unsigned long long)r));
        sleep_ms(ms);
        int tmp_before = file_exists(tmp);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "writer exited on its own (status %d)", status);
        if (tmp_before && file_exists(tmp)) mid_write++;

        /* The real name holds a complete version: it loads, every CRC checks, and every
         * value is the one of the version its step names. */
        ParamStore got;
        build_big(&got);
        CHECK(!params_alloc(&got));
        TrainState st = {0};
        int rc = checkpoint_load(path, &got, &st);
        CHECK_MSG(rc == VCM_OK, "round %d after %ld ms: %s", r, ms, vcm_error());
        if (rc == VCM_OK) {
            int64_t v = st.step;
            CHECK_MSG(v == newest || (v >= first && v < first + 1000), "round %d: version %lld", r, (long long)v);
            size_t bad = 0;
            for (int k = 0; k < got.n_params; k++)
                for (size_t j = 0; j < got.p[k]->t.n; j++) {
                    size_t i = got.p[k]->offset + j;
                    bad += got.params[i] != big_value(v, i, 0) || got.m[i] != big_value(v, i, 1) ||
                           got.v[i] != big_value(v, i, 2);
                }
            CHECK_MSG(bad == 0, "round %d: %zu values not those of version %lld", r, bad, (long long)v);
            printf("     kill %d after %3ld ms: %s, file holds version %lld\n", r, ms,
                   tmp_before ? "mid-write" : "between writes", (long long)v);
            newest = v;
        }
        train_state_free(&st);
        params_free(&got);
    }
    /* The kills must really have landed inside writes for the test to mean anything. */
    CHECK_MSG(mid_write >= 1, "no kill landed mid-write in %d rounds", rounds);
    /* The leftover temporary is tolerated, and the next save replaces it. */
    fill_big(&ps, 99);
    CHECK(!checkpoint_save(path, "{\"big\":true}", &ps, NULL));
    CHECK(!file_exists(tmp));
    params_free(&ps);
}

/* ---------------------------------------------------------------- safetensors */

/* A reader independent of ours: json + struct + numpy. Checks the structure (8-byte
 * LE length, F32, contiguous data_offsets covering the data exactly) and prints, in
 * file order, each tensor's name, shape and the CRC32 of its bytes, and the metadata. */
static const char *PY_READ =
    "import json, struct, sys, zlib\n"
    "import numpy as np\n"
    "b = open(sys.argv[1], 'rb').read()\n"
    "n, = struct.unpack('<Q', b[:8])\n"
    "h = json.loads(b[8:8 + n].decode('utf-8'))\n"
    "data = b[8 + n:]\n"
    "meta = h.pop('__metadata__', {})\n"
    "end = 0\n"
    "for k, v in sorted(h.items(), key=lambda kv: kv[1]['data_offsets'][0]):\n"
    "    s, e = v['data_offsets']\n"
    "    assert s == end, (k, s, end)\n"
    "    assert v['dtype'] == 'F32'\n"
    "    a = np.frombuffer(data[s:e], dtype='<f4').reshape(v['shape'])\n"
    "    assert np.isfinite(a).all()\n"
    "    end = e\n"
    "assert end == len(data), (end, len(data))\n"
    "assert n % 8 == 0\n"
    "for k, v in h.items():\n"
    "    s, e = v['data_offsets']\n"
    "    print('T', k, ','.join(map(str, v['shape'])), zlib.crc32(data[s:e]))\n"
    "for k, v in meta.items():\n"
    "    print('M', k, json.dumps(v))\n";

/* The Python reader's output for ps, as we expect it. */
static int expected_listing(const ParamStore *ps, char *buf, size_t size) {
    size_t k = 0;
    for (int i = 0; i < ps->n_params && k < size; i++) {
        const Param *p = ps->p[i];
        char shape[64] = "";
        for (int d = 0; d < p->t.ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), d ? ",%d" : "%d", p->t.shape[d]);
        unsigned long crc = crc32(0, (const Bytef *)p->t.data, (uInt)(p->t.n * 4));
        k += (size_t)snprintf(buf + k, size - k, "T %s %s %lu\n", p->name, shape, crc);
    }
    return (int)k;
}

static void check_python_reads(const char *st_path, const ParamStore *ps, const char *want_meta) {
    char *argv[] = {(char *)PY, "-c", (char *)PY_READ, (char *)st_path, NULL};
    const char *out = tmp_path("py.out"), *err = tmp_path("py.err");
    int rc = run(argv, out, err);
    size_t n = 0, ne = 0;
    unsigned char *o = slurp(out, &n), *e = slurp(err, &ne);
    char *text = o ? calloc(1, n + 1) : NULL;
    if (text) memcpy(text, o, n);
    CHECK_MSG(rc == 0, "python reader exit %d: %.*s", rc, (int)ne, e ? (char *)e : "");
    char want[8192];
    expected_listing(ps, want, sizeof want);
    CHECK_MSG(text && !strncmp(text, want, strlen(want)), "python saw:\n%s\nwanted:\n%s", text ? text : "", want);
    if (want_meta) CHECK_STR_CONTAINS(text, want_meta);
    free(text);
    free(o);
    free(e);
}

/* "M key <value as json.dumps prints it>\n" for an ASCII value. */
static void meta_line(char *buf, size_t size, const char *key, const char *value) {
    size_t k = (size_t)snprintf(buf, size, "M %s \"", key);
    for (const char *c = value; *c && k + 4 < size; c++) {
        if (*c == '"' || *c == '\\') buf[k++] = '\\';
        buf[k++] = *c;
    }
    snprintf(buf + k, size - k, "\"\n");
}

static void test_safetensors_roundtrip_and_python(void) {
    ParamStore a, b;
    build_store(&a, V_BASE);
    build_store(&b, V_BASE);
    fill_store(&a, 7);
    const char *path = tmp_path("w.safetensors");
    const char *meta[] = {"vcm_config", CONFIG, NULL};
    CHECK_MSG(!safetensors_save(path, &a, meta), "%s", vcm_error());
    CHECK_MSG(!safetensors_load_into(path, &b), "%s", vcm_error());
    CHECK(same_values(&a, &b, 0));
    char want[512];
    meta_line(want, sizeof want, "vcm_config", CONFIG);
    check_python_reads(path, &a, want);
    params_free(&a);
    params_free(&b);
}

/* Written by Python (another writer, tensors in another order, an unpadded header):
 * our reader takes it. Values are exact in float32: (j % 1024) / 4 + tensor index. */
static const char *PY_WRITE =
    "import json, struct, sys\n"
    "import numpy as np\n"
    "spec = json.loads(sys.argv[2])\n"
    "h, blobs, at = {'__metadata__': {'from': 'python'}}, [], 0\n"
    "for idx, (name, shape) in reversed(list(enumerate(spec))):\n"
    "    n = int(np.prod(shape))\n"
    "    a = (np.arange(n) % 1024).astype(np.float32) / np.float32(4) + np.float32(idx)\n"
    "    raw = a.astype('<f4').tobytes()\n"
    "    h[name] = {'dtype': 'F32', 'shape': shape, 'data_offsets': [at, at + len(raw)]}\n"
    "    blobs.append(raw); at += len(raw)\n"
    "j = json.dumps(h).encode() + b' '\n"
    "open(sys.argv[1], 'wb').write(struct.pack('<Q', len(j)) + j + b''.join(blobs))\n";

static void test_safetensors_from_python(void) {
    ParamStore x;
    build_store(&x, V_BASE);
    char spec[2048] = "[";
    for (int i = 0; i < x.n_params; i++) {
        const Param *p = x.p[i];
        size_t k = strlen(spec);
        k += (size_t)snprintf(spec + k, sizeof spec - k, "%s[\"%s\", [", i ? ", " : "", p->name);
        for (int d = 0; d < p->t.ndim; d++) k += (size_t)snprintf(spec + k, sizeof spec - k, d ? ", %d" : "%d", p->t.shape[d]);
        snprintf(spec + k, sizeof spec - k, "]]");
    }
    strcat(spec, "]");
    const char *path = tmp_path("py.safetensors");
    char *argv[] = {(char *)PY, "-c", (char *)PY_WRITE, (char *)path, spec, NULL};
    int rc = run(argv, tmp_path("pyw.out"), tmp_path("pyw.err"));
    CHECK_MSG(rc == 0, "python writer exit %d", rc);
    CHECK_MSG(!safetensors_load_into(path, &x), "%s", vcm_error());
    size_t bad = 0;
    for (int i = 0; i < x.n_params; i++)
        for (size_t j = 0; j < x.p[i]->t.n; j++)
            bad += x.p[i]->t.data[j] != (float)(j % 1024) / 4.0f + (float)i;
    CHECK_MSG(bad == 0, "%zu values differ", bad);
    params_free(&x);
}

/* Build a safetensors file from a header text and n data bytes. */
static void write_st(const char *path, const char *header, size_t data_bytes) {
    uint64_t n = strlen(header);
    unsigned char *b = calloc(1, 8 + n + data_bytes);
    memcpy(b, &n, 8);
    memcpy(b + 8, header, n);
    write_bytes(path, b, 8 + n + data_bytes);
    free(b);
}

static void test_safetensors_damage_refused(void) {
    ParamStore x;
    params_init(&x);
    params_declare(&x, "w", 2, (int[]){2, 3}, NN_INIT_ZEROS, 0, 0);
    CHECK(!params_alloc(&x));
    const char *path = tmp_path("bad.safetensors");
    struct { const char *header; size_t bytes; const char *msg; } cases[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 24, NULL},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 20, "truncated: tensor w ends at data byte 24 but the file holds 20 data bytes (file size 85)"},
        {"{\"w\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]}}", 12, "dtype F16 (only F32 is read)"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}}", 24, "tensor w has shape [3, 2] in the file but [2, 3] in the model"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24, "tensor w: data_offsets [0, 20] do not hold the 6 floats of [2, 3]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[4,28]}}", 24, "truncated: tensor w ends at data byte 28"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[24,28]}}", 28, "tensor u [1] in the file is not a parameter of the model"},
        {"{}", 0, "tensor w [2, 3] of the model is missing from the file"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}", 24, "header JSON, line 1 column"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},\"w\":{}}", 24, "header JSON"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_st(path, cases[k].header, cases[k].bytes);
        int rc = safetensors_load_into(path, &x);
        if (!cases[k].msg) { CHECK_MSG(rc == VCM_OK, "case %zu: %s", k, vcm_error()); continue; }
        CHECK_MSG(rc == VCM_EINPUT, "case %zu: rc %d", k, rc);
        CHECK_STR_CONTAINS(vcm_error(), cases[k].msg);
        CHECK_STR_CONTAINS(vcm_error(), path);
    }
    /* A header length past the end of the file, and a file too short for the length. */
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, '{', '}'};
    write_bytes(path, huge, 10);
    CHECK(safetensors_load_into(path, &x) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "header length 4294967295, file size 10");
    write_bytes(path, huge, 5);
    CHECK(safetensors_load_into(path, &x) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "truncated");
    params_free(&x);
}

/* Every mismatch is listed, one line each (not only the first), the counts add up, the
 * store is untouched; load_into puts them all in its message. The metadata accessor. */
static void test_safetensors_report_lists_all(void) {
    ParamStore a, x;
    build_store(&a, V_BASE);
    fill_store(&a, 9);
    const char *path = tmp_path("rep.safetensors");
    const char *meta[] = {"vcm_config", CONFIG, NULL};
    CHECK(!safetensors_save(path, &a, meta));
    char *v = NULL;
    CHECK_MSG(!safetensors_metadata(path, "vcm_config", &v), "%s", vcm_error());
    CHECK(v && !strcmp(v, CONFIG));
    free(v);
    CHECK(!safetensors_metadata(path, "absent", &v) && !v);
    /* the file has dec.norm.* and dec.tok [50, 8]; this model lacks dec.norm, has dec.tok
     * [40, 8] and dec.extra.weight: 2 extra, 1 shape, 1 missing */
    params_init(&x);
    Embedding tok;
    Linear qkv;
    CHECK(!linear_declare(&qkv, &x, "vit.blocks.0.attn.qkv", 8, 24, 1, 0.02f));
    CHECK(!embedding_declare(&tok, &x, "dec.tok", 40, 8, 0.02f));
    CHECK(params_declare(&x, "vit.patch_embed.weight", 4, (int[]){8, 3, 2, 2}, NN_INIT_ZEROS, 0, 0) != NULL);
    CHECK(params_declare(&x, "dec.extra.weight", 1, (int[]){3}, NN_INIT_ZEROS, 0, 0) != NULL);
    CHECK(!params_alloc(&x));
    SafetensorsReport r;
    CHECK(safetensors_load_report(path, &x, &r) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "4 tensors do not fit the model (1 missing, 2 not in the model, 1 with another shape, 0 unreadable)");
    CHECK(r.n_missing == 1 && r.n_extra == 2 && r.n_shape == 1 && r.n_other == 0);
    const char *want[] = {"tensor dec.norm.weight [8] in the file is not a parameter of the model\n",
                          "tensor dec.norm.bias [8] in the file is not a parameter of the model\n",
                          "tensor dec.tok.weight has shape [50, 8] in the file but [40, 8] in the model\n",
                          "tensor dec.extra.weight [3] of the model is missing from the file\n"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) CHECK_STR_CONTAINS(r.text, want[k]);
    int lines = 0;
    for (const char *c = r.text; c && *c; c++) lines += *c == '\n';
    CHECK(lines == 4);
    safetensors_report_free(&r);
    size_t touched = 0;   /* vit.blocks.0.attn.qkv fits: it must still not have been read */
    for (int i = 0; i < x.n_params; i++)
        for (size_t j = 0; j < x.p[i]->t.n; j++) touched += x.p[i]->t.data[j] != 0;
    CHECK_MSG(touched == 0, "%zu values were read before the mismatches were found", touched);
    CHECK(safetensors_load_into(path, &x) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "not a parameter of the model; tensor dec.norm.bias");
    CHECK_STR_CONTAINS(vcm_error(), "in the model; tensor dec.extra.weight [3] of the model is missing");
    params_free(&x);
    params_free(&a);
}

/* ---------------------------------------------------------------- vcm export */

static void vcm_path(char *buf, size_t size) {
    const char *env = getenv("VCM_BIN");
    if (env) { snprintf(buf, size, "%s", env); return; }
    /* BUILD/tests/test_checkpoint → BUILD/vcm */
    snprintf(buf, size, "%s", g_self);
    char *s = strrchr(buf, '/');
    if (s) *s = 0;
    s = strrchr(buf, '/');
    if (s) snprintf(s, size - (size_t)(s - buf), "/vcm");
    else snprintf(buf, size, "../vcm");
}

static void test_export_safetensors(void) {
    char vcm[512];
    vcm_path(vcm, sizeof vcm);
    CHECK_MSG(access(vcm, X_OK) == 0, "no vcm binary at %s (build it, or set VCM_BIN)", vcm);
    ParamStore a;
    build_store(&a, V_BASE);
    fill_store(&a, 8);
    TrainState st = make_state();
    const char *model = tmp_path("e.vcm"), *out = tmp_path("e.safetensors");
    CHECK(!checkpoint_save(model, CONFIG, &a, &st));
    char *argv[] = {vcm, "export", "--model", (char *)model, "--format", "safetensors", "--out", (char *)out, NULL};
    int rc = run(argv, tmp_path("ex.out"), tmp_path("ex.err"));
    CHECK_MSG(rc == 0, "vcm export exit %d", rc);
    size_t n = 0;
    unsigned char *o = slurp(tmp_path("ex.out"), &n);
    char want[128];
    snprintf(want, sizeof want, "\"tensors\":%d,\"params\":%zu", a.n_params, params_count(&a));
    char *text = o ? calloc(1, n + 1) : NULL;
    if (text) memcpy(text, o, n);
    CHECK_STR_CONTAINS(text, want);
    free(text);
    free(o);
    /* Names, shapes and values as in the model; the config as __metadata__.vcm_config. */
    char meta[512];
    meta_line(meta, sizeof meta, "vcm_config", CONFIG);
    check_python_reads(out, &a, meta);
    check_python_reads(out, &a, "M format \"pt\"\n");
    ParamStore b;
    build_store(&b, V_BASE);
    CHECK_MSG(!safetensors_load_into(out, &b), "%s", vcm_error());
    CHECK(same_values(&a, &b, 0));
    params_free(&b);

    /* A damaged checkpoint: exit 2 and the reason. */
    size_t fn = 0;
    unsigned char *fb = slurp(model, &fn);
    if (fb) write_bytes(model, fb, fn / 2);
    free(fb);
    rc = run(argv, tmp_path("ex.out"), tmp_path("ex.err"));
    CHECK(rc == 2);
    size_t en = 0;
    unsigned char *e = slurp(tmp_path("ex.err"), &en);
    char *etext = e ? calloc(1, en + 1) : NULL;
    if (etext) memcpy(etext, e, en);
    CHECK_STR_CONTAINS(etext, "truncated: expected");
    free(etext);
    free(e);
    char *help[] = {vcm, "export", "--help", NULL};
    CHECK(run(help, tmp_path("ex.out"), tmp_path("ex.err")) == 0);
    char *bad_format[] = {vcm, "export", "--model", (char *)model, "--out", (char *)out, "--format", "onnx", NULL};
    CHECK(run(bad_format, tmp_path("ex.out"), tmp_path("ex.err")) == 2);
    params_free(&a);
}

int main(int argc, char **argv) {
    g_self = argv[0];
    if (argc == 4 && !strcmp(argv[1], "--writer")) return writer_main(argv[2], strtoll(argv[3], NULL, 10));
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/vcm-ckpt-XXXXXX", base);
    if (!mkdtemp(g_dir)) { perror("mkdtemp"); return 1; }

    RUN(test_roundtrip_weights);
    RUN(test_roundtrip_train_state);
    RUN(test_deterministic_bytes);
    RUN(test_stale_temp_replaced);
    RUN(test_truncated);
    RUN(test_flipped_byte_named);
    RUN(test_every_byte_flip_refused);
    RUN(test_crafted_header_bounds_checked);
    RUN(test_wrong_magic_and_version);
    RUN(test_config_tensor_mismatch);
    RUN(test_safetensors_roundtrip_and_python);
    RUN(test_safetensors_from_python);
    RUN(test_safetensors_damage_refused);
    RUN(test_safetensors_report_lists_all);
    RUN(test_export_safetensors);
    RUN(test_sigkill_mid_write_keeps_previous);
    RUN(test_train_state_out_of_range_refused);

    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_dir);
    return test_summary();
}
