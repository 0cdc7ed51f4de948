/* Every op of tensor/tensor.h against PyTorch: the goldens written by tests/ref/ops.py
 * (format and tolerance: docs/GOLDENS.md).
 *
 * Reads the cases listed in $VCM_GOLDEN_DIR/MANIFEST (default tests/ref/golden). Per
 * case: build the inputs (each with a gradient), run the op through the graph, compare
 * the output, seed out->grad with the stored upstream gradient, walk the tape backwards
 * (as tests/gradcheck.h does) and compare every input gradient. One RUN per case.
 *
 * Tolerance: per element rel = |ours - ref| / max(|ref|, 0.01 * RMS(ref tensor)); the
 * worst rel over the output and every gradient must be <= 1e-4. The floor judges tiny
 * elements against the tensor's own scale instead of a near-zero denominator; an
 * all-zero reference tensor must be matched exactly. */
#include "tensor/tensor.h"
#include "tests/golden.h"
#include "tests/test.h"

#include <unistd.h>

#define REF_TOL 1e-4
#define REF_FLOOR 0.01

/* Every op of tensor.h: the golden dir must hold at least one case of each. */
static const char *const ALL_OPS[] = {
    "add",       "sub",           "mul",        "scale",     "matmul", "linear",  "embedding", "layernorm",
    "gelu",      "softmax",       "attention",  "cross_entropy", "concat_seq", "slice_seq", "mean", "patches",
};
#define N_OPS ((int)(sizeof ALL_OPS / sizeof ALL_OPS[0]))

/* ---------------------------------------------------------------- comparison */

typedef struct {
    double rel;               /* worst rel seen in the case */
    char where[64];           /* which tensor, element */
} Worst;

/* Compare n floats against a reference array; fold the worst element into *w.
 * Returns the worst rel of this tensor (INFINITY for NaN). */
static double compare(const char *what, const float *ours, const GoldenArray *ref, Worst *w) {
    const float *r = ref->data;
    double ss = 0;
    for (size_t i = 0; i < ref->n; i++) ss += (double)r[i] * r[i];
    double floor_ = REF_FLOOR * sqrt(ss / (double)ref->n);
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < ref->n; i++) {
        double e;
        if (floor_ == 0) e = ours[i] == 0.0f ? 0 : INFINITY;  /* all-zero reference: exact */
        else e = rel_err(ours[i], r[i], floor_);
        if (!(e <= worst)) { worst = isnan(e) ? INFINITY : e; wi = i; }
    }
    if (worst > REF_TOL || getenv("VCM_REF_VERBOSE"))
        fprintf(stderr, "  %s: element %zu of %zu: ours %.9g ref %.9g (rel %.3g %s %g, floor %.3g)\n", what, wi,
                ref->n, ours[wi], r[wi], worst, worst > REF_TOL ? ">" : "<=", REF_TOL, floor_);
    if (worst > w->rel) {
        w->rel = worst;
        snprintf(w->where, sizeof w->where, "%s[%zu]", what, wi);
    }
    return worst;
}

static int same_shape(const Tensor *t, const GoldenArray *a) {
    if (t->ndim != a->ndim) return 0;
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] != a->shape[i]) return 0;
    return 1;
}

static const char *array_shape(const GoldenArray *a, char *buf, size_t size) {
    Tensor t = {0};
    t.ndim = a->ndim;
    memcpy(t.shape, a->shape, sizeof t.shape);
    return shape_str(&t, buf, size);
}

/* ---------------------------------------------------------------- one case */

typedef struct {
    const GoldenCase *c;
    Graph *g;
    const char *key[GOLDEN_MAX_ARRAYS];   /* "a" for "in.a" */
    Tensor *t[GOLDEN_MAX_ARRAYS];
    int n;
} Inputs;

static Tensor *in(const Inputs *x, const char *key) {
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->key[i], key)) return x->t[i];
    return NULL;
}

/* An integer attribute, or `missing` (with a message) when attr is too short. */
static int attr(const GoldenCase *c, int i, int *ok) {
    const GoldenArray *a = golden_find(c, "attr");
    if (!a || a->dtype != GOLDEN_I32 || (size_t)i >= a->n) {
        fprintf(stderr, "  op %s needs i32 attr[%d]\n", c->op, i);
        *ok = 0;
        return 0;
    }
    return ((const int32_t *)a->data)[i];
}

static float fattr(const GoldenCase *c, int i, int *ok) {
    const GoldenArray *a = golden_find(c, "fattr");
    if (!a || a->dtype != GOLDEN_F32 || (size_t)i >= a->n) {
        fprintf(stderr, "  op %s needs f32 fattr[%d]\n", c->op, i);
        *ok = 0;
        return 0;
    }
    return ((const float *)a->data)[i];
}

/* An integer input array of the given dtype holding exactly n elements (n = 0: any). */
static const GoldenArray *int_input(const GoldenCase *c, const char *name, int dtype, size_t n, int *ok) {
    const GoldenArray *a = golden_find(c, name);
    if (!a || a->dtype != dtype || (n && a->n != n)) {
        fprintf(stderr, "  op %s: array \"%s\" missing, of the wrong dtype or not %zu elements\n", c->op, name, n);
        *ok = 0;
        return NULL;
    }
    return a;
}

/* Run the op of the case on the inputs. NULL with a message on failure. */
static Tensor *run_op(const Inputs *x, int *ok) {
    const GoldenCase *c = x->c;
    Graph *g = x->g;
    const char *op = c->op;
    if (!strcmp(op, "add")) return op_add(g, in(x, "a"), in(x, "b"));
    if (!strcmp(op, "sub")) return op_sub(g, in(x, "a"), in(x, "b"));
    if (!strcmp(op, "mul")) return op_mul(g, in(x, "a"), in(x, "b"));
    if (!strcmp(op, "scale")) {
        float s = fattr(c, 0, ok);
        return *ok ? op_scale(g, in(x, "a"), s) : NULL;
    }
    if (!strcmp(op, "matmul")) {
        int ta = attr(c, 0, ok), tb = attr(c, 1, ok);
        return *ok ? op_matmul(g, in(x, "a"), in(x, "b"), ta, tb) : NULL;
    }
    if (!strcmp(op, "linear")) return op_linear(g, in(x, "x"), in(x, "W"), in(x, "b"));
    if (!strcmp(op, "linear_residual")) return op_linear_residual(g, in(x, "x"), in(x, "W"), in(x, "b"), in(x, "r"));
    if (!strcmp(op, "embedding")) {
        const GoldenArray *ids = int_input(c, "ids", GOLDEN_I32, 0, ok);
        return *ok ? op_embedding(g, in(x, "W"), ids->data, ids->ndim, ids->shape) : NULL;
    }
    if (!strcmp(op, "layernorm")) {
        float eps = fattr(c, 0, ok);
        return *ok ? op_layernorm(g, in(x, "x"), in(x, "w"), in(x, "b"), eps) : NULL;
    }
    if (!strcmp(op, "gelu")) return op_gelu(g, in(x, "x"));
    if (!strcmp(op, "softmax")) return op_softmax(g, in(x, "x"));
    if (!strcmp(op, "attention") || !strcmp(op, "attention_from")) {
        Tensor *qkv = in(x, "qkv");
        int heads = attr(c, 0, ok), causal = attr(c, 1, ok), q0 = strcmp(op, "attention") ? attr(c, 2, ok) : 0;
        if (!*ok || !qkv || qkv->ndim != 3) { *ok = 0; fprintf(stderr, "  attention needs a 3-D in.qkv\n"); return NULL; }
        const uint8_t *kv = NULL;
        if (golden_find(c, "key_valid")) {
            const GoldenArray *a = int_input(c, "key_valid", GOLDEN_U8, (size_t)qkv->shape[0] * qkv->shape[1], ok);
            if (!a) return NULL;
            kv = a->data;
        }
        return op_attention_from(g, qkv, heads, causal, kv, q0);
    }
    if (!strcmp(op, "cross_entropy")) {
        Tensor *logits = in(x, "logits");
        int ignore = attr(c, 0, ok);
        if (!*ok || !logits) { *ok = 0; fprintf(stderr, "  cross_entropy needs in.logits\n"); return NULL; }
        const GoldenArray *t = int_input(c, "targets", GOLDEN_I32, tensor_rows(logits), ok);
        return t ? op_cross_entropy(g, logits, t->data, ignore) : NULL;
    }
    if (!strcmp(op, "concat_seq")) {
        Tensor *xs[GOLDEN_MAX_ARRAYS];
        int n = 0;
        char key[16];
        for (;;) {
            snprintf(key, sizeof key, "x%d", n);
            Tensor *t = in(x, key);
            if (!t) break;
            xs[n++] = t;
        }
        return op_concat_seq(g, xs, n);
    }
    if (!strcmp(op, "slice_seq")) {
        int start = attr(c, 0, ok), len = attr(c, 1, ok);
        return *ok ? op_slice_seq(g, in(x, "x"), start, len) : NULL;
    }
    if (!strcmp(op, "mean")) {
        int dim = attr(c, 0, ok);
        return *ok ? op_mean(g, in(x, "x"), dim) : NULL;
    }
    if (!strcmp(op, "patches")) {
        int P = attr(c, 0, ok);
        return *ok ? op_patches(g, in(x, "img"), P) : NULL;
    }
    fprintf(stderr, "  unknown op \"%s\"\n", op);
    *ok = 0;
    return NULL;
}

/* Load DIR/NAME.vgd, run and compare. Failures go through CHECK_MSG. */
static void run_case(const char *dir, const char *name, Worst *w) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.vgd", dir, name);
    GoldenCase c;
    w->rel = 0;
    w->where[0] = 0;
    int rc = golden_load(path, &c);
    CHECK_MSG(rc == VCM_OK, "%s", vcm_error());
    if (rc) return;
    Graph g;
    if (graph_init(&g, 1 << 20)) { CHECK_MSG(0, "%s", vcm_error()); golden_free(&c); return; }
    Inputs x = {.c = &c, .g = &g};
    int ok = 1;
    for (int i = 0; i < c.n_arrays && ok; i++) {
        const GoldenArray *a = &c.arr[i];
        if (strncmp(a->name, "in.", 3)) continue;
        if (a->dtype != GOLDEN_F32) { CHECK_MSG(0, "%s: input %s is not f32", path, a->name); ok = 0; break; }
        Tensor *t = tensor_new(&g, a->ndim, a->shape, 1);
        if (!t) { CHECK_MSG(0, "%s", vcm_error()); ok = 0; break; }
        memcpy(t->data, a->data, a->n * sizeof(float));
        x.key[x.n] = a->name + 3;
        x.t[x.n++] = t;
    }
    const GoldenArray *ref_out = golden_find(&c, "out"), *dout = golden_find(&c, "dout");
    if (ok && (!ref_out || !dout || ref_out->dtype != GOLDEN_F32 || dout->dtype != GOLDEN_F32 ||
               ref_out->n != dout->n)) {
        CHECK_MSG(0, "%s: needs f32 arrays \"out\" and \"dout\" of the same size", path);
        ok = 0;
    }
    Tensor *out = ok ? run_op(&x, &ok) : NULL;
    if (!ok) CHECK_MSG(0, "%s: cannot run op %s (see above)", path, c.op);
    else CHECK_MSG(out != NULL, "%s: op %s failed: %s", path, c.op, vcm_error());
    char b1[64], b2[64];
    if (out && !same_shape(out, ref_out)) {
        CHECK_MSG(0, "output shape %s, reference %s", shape_str(out, b1, sizeof b1),
                  array_shape(ref_out, b2, sizeof b2));
        out = NULL;
    }
    if (out) {
        CHECK(compare("out", out->data, ref_out, w) <= REF_TOL);
        CHECK_MSG(out->grad != NULL, "the output carries no gradient");
    }
    if (out && out->grad) {
        memcpy(out->grad, dout->data, dout->n * sizeof(float));
        for (int i = g.n_nodes - 1; i >= 0; i--)
            if (g.nodes[i].backward && g.nodes[i].out->grad) g.nodes[i].backward(&g.nodes[i]);
        int n_grads = 0;
        for (int i = 0; i < x.n; i++) {
            char gname[40];
            snprintf(gname, sizeof gname, "grad.%s", x.key[i]);
            const GoldenArray *ref = golden_find(&c, gname);
            if (!ref || ref->dtype != GOLDEN_F32 || !same_shape(x.t[i], ref)) {
                CHECK_MSG(0, "%s: no f32 \"%s\" of the input's shape", path, gname);
                continue;
            }
            CHECK(compare(gname, x.t[i]->grad, ref, w) <= REF_TOL);
            n_grads++;
        }
        CHECK_MSG(n_grads > 0, "%s: no gradient compared", path);
    }
    graph_free(&g);
    golden_free(&c);
}

/* ---------------------------------------------------------------- bad input */

static const char *golden_dir(void) {
    const char *d = getenv("VCM_GOLDEN_DIR");
    return d && *d ? d : "tests/ref/golden";
}

static void test_missing_dir_fails_clearly(void) {
    GoldenManifest m;
    CHECK(golden_manifest_load("/nonexistent/vcm-goldens", &m) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "/nonexistent/vcm-goldens/MANIFEST");
    CHECK_STR_CONTAINS(vcm_error(), "No such file");
    GoldenCase c;
    CHECK(golden_load("/nonexistent/vcm-goldens/x.vgd", &c) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "x.vgd: cannot open");
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return VCM_ERR;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? VCM_OK : VCM_ERR;
}

/* The bytes of the first case of the golden dir (a real file, to corrupt). */
static unsigned char *first_case(size_t *len, char *name, size_t name_size) {
    GoldenManifest m;
    unsigned char *data = NULL;
    char path[4096];
    if (golden_manifest_load(golden_dir(), &m)) { fprintf(stderr, "  %s\n", vcm_error()); return NULL; }
    snprintf(name, name_size, "%s", m.names[0]);
    snprintf(path, sizeof path, "%s/%s.vgd", golden_dir(), m.names[0]);
    golden_manifest_free(&m);
    if (golden_slurp(path, &data, len)) { fprintf(stderr, "  %s\n", vcm_error()); return NULL; }
    return data;
}

/* A truncated copy in a temp dir, read through the same path as the real cases:
 * every prefix of the file must fail with "truncated" and the file's name. */
static void test_truncated_file_fails_clearly(void) {
    size_t len;
    char name[GOLDEN_MAX_CASE_NAME + 1];
    unsigned char *data = first_case(&len, name, sizeof name);
    CHECK(data != NULL);
    if (!data) return;
    char dir[] = "/tmp/vcm-golden-XXXXXX", path[4096], man[4096];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/%s.vgd", dir, name);
    snprintf(man, sizeof man, "%s/MANIFEST", dir);
    char manifest[128];
    int ml = snprintf(manifest, sizeof manifest, "vcm-goldens 1 seed 0 cases 1\n%s\n", name);
    CHECK(write_file(man, manifest, (size_t)ml) == VCM_OK);
    /* Whole file loads; then every prefix (sampled beyond 4 KB) must fail cleanly. */
    GoldenCase c;
    CHECK(write_file(path, data, len) == VCM_OK);
    CHECK(golden_load(path, &c) == VCM_OK);
    golden_free(&c);
    size_t step = len > 4096 ? len / 1024 : 1, bad = 0;
    for (size_t cut = 0; cut < len; cut += (cut < 256 ? 1 : step)) {
        if (write_file(path, data, cut)) { bad++; continue; }
        int rc = golden_load(path, &c);
        if (rc != VCM_EINPUT || !strstr(vcm_error(), "truncated") || !strstr(vcm_error(), path)) {
            if (!bad) fprintf(stderr, "  cut at %zu: rc %d: %s\n", cut, rc, vcm_error());
            bad++;
        }
        if (rc == VCM_OK) golden_free(&c);
    }
    CHECK(bad == 0);
    /* And through the case runner: a clean FAIL, not a crash. */
    write_file(path, data, len / 2);
    Worst w;
    int before = test_cur_failed_;
    fprintf(stderr, "  (an expected failure follows)\n");
    run_case(dir, name, &w);
    CHECK(test_cur_failed_ == 1);
    test_cur_failed_ = before;
    CHECK_STR_CONTAINS(vcm_error(), "file truncated");
    unlink(path);
    unlink(man);
    rmdir(dir);
    free(data);
}

/* Corrupt one field of a real file at a time. */
static void test_corrupt_fields_fail_clearly(void) {
    size_t len;
    char name[GOLDEN_MAX_CASE_NAME + 1];
    unsigned char *data = first_case(&len, name, sizeof name);
    CHECK(data != NULL && len > 64);
    if (!data || len <= 64) { free(data); return; }
    /* Offsets of the first fields, from the file itself. */
    size_t op_len = golden_le32(data + 12), n_at = 16 + op_len, name_len = golden_le32(data + n_at + 4);
    size_t dtype_at = n_at + 8 + name_len, ndim_at = dtype_at + 4, shape_at = ndim_at + 4;
    struct { size_t at; uint32_t value; const char *msg; } cases[] = {
        {0, 0x58585858u, "bad magic"},        {8, 2, "version 2"},
        {12, 0, "op name length 0"},          {12, 1000, "op name length 1000"},
        {n_at, 0, "0 arrays"},                {n_at, 33, "33 arrays"},
        {dtype_at, 7, "dtype 7"},             {ndim_at, 5, "5 dims"},
        {ndim_at, 0, "0 dims"},               {shape_at, 0, "dim 0 of size 0"},
        {shape_at, 0xffffffffu, "dim 0 of size -1"}, {shape_at, 1u << 27, "larger than the file"},
        {n_at, 1, "trailing bytes"},
    };
    unsigned char *copy = malloc(len + 1);
    CHECK(copy != NULL);
    for (size_t i = 0; copy && i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(copy, data, len);
        uint32_t v = cases[i].value;
        for (int k = 0; k < 4; k++) copy[cases[i].at + (size_t)k] = (unsigned char)(v >> (8 * k));
        GoldenCase c;
        int rc = golden_parse(copy, len, "corrupt.vgd", &c);
        CHECK_MSG(rc == VCM_EINPUT, "corruption \"%s\" gave rc %d", cases[i].msg, rc);
        if (rc == VCM_OK) golden_free(&c);
        CHECK_STR_CONTAINS(vcm_error(), cases[i].msg);
        CHECK_STR_CONTAINS(vcm_error(), "corrupt.vgd: byte ");
    }
    if (copy) { /* one byte too many */
        memcpy(copy, data, len);
        copy[len] = 0;
        GoldenCase c;
        CHECK(golden_parse(copy, len + 1, "corrupt.vgd", &c) == VCM_EINPUT);
        CHECK_STR_CONTAINS(vcm_error(), "1 trailing bytes");
    }
    free(copy);
    free(data);
}

static void test_bad_manifest_fails_clearly(void) {
    char dir[] = "/tmp/vcm-golden-XXXXXX", man[4096];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(man, sizeof man, "%s/MANIFEST", dir);
    struct { const char *text; const char *msg; } cases[] = {
        {"", "line 1: expected"},
        {"vcm-goldens 2 seed 0 cases 1\nx\n", "version 2"},
        {"vcm-goldens 1 seed 0 cases 3\na\nb\n", "line 4: file ends after 2 of 3 cases"},
        {"vcm-goldens 1 seed 0 cases 1\n../etc/passwd\n", "line 2: bad case name"},
        {"vcm-goldens 1 seed 0 cases 1\na\nb\n", "line 3: more lines"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(write_file(man, cases[i].text, strlen(cases[i].text)) == VCM_OK);
        GoldenManifest m;
        CHECK(golden_manifest_load(dir, &m) == VCM_EINPUT);
        CHECK_STR_CONTAINS(vcm_error(), cases[i].msg);
        CHECK_STR_CONTAINS(vcm_error(), "MANIFEST: line");
    }
    /* A listed case whose file is missing fails the case with the file's name. */
    const char *one = "vcm-goldens 1 seed 0 cases 1\nnot_there\n";
    CHECK(write_file(man, one, strlen(one)) == VCM_OK);
    GoldenManifest m;
    CHECK(golden_manifest_load(dir, &m) == VCM_OK && m.n == 1);
    golden_manifest_free(&m);
    Worst w;
    int before = test_cur_failed_;
    fprintf(stderr, "  (an expected failure follows)\n");
    run_case(dir, "not_there", &w);
    CHECK(test_cur_failed_ == 1);
    test_cur_failed_ = before;
    CHECK_STR_CONTAINS(vcm_error(), "not_there.vgd: cannot open");
    unlink(man);
    rmdir(dir);
}

/* ---------------------------------------------------------------- main */

/* Every op of tensor.h has at least one case in the golden dir. */
static void check_coverage(const GoldenManifest *m) {
    for (int k = 0; k < N_OPS; k++) {
        size_t len = strlen(ALL_OPS[k]);
        int found = 0;
        for (int i = 0; i < m->n && !found; i++)
            found = !strncmp(m->names[i], ALL_OPS[k], len) && m->names[i][len] == '_' &&
                    m->names[i][len + 1] >= '0' && m->names[i][len + 1] <= '9';
        CHECK_MSG(found, "no case for op %s", ALL_OPS[k]);
    }
}

int main(void) {
    vcm_threads_init(0);
    const char *dir = golden_dir();
    printf("goldens: %s\n", dir);
    RUN(test_missing_dir_fails_clearly);
    RUN(test_bad_manifest_fails_clearly);
    RUN(test_truncated_file_fails_clearly);
    RUN(test_corrupt_fields_fail_clearly);

    GoldenManifest m;
    test_cur_failed_ = 0;
    if (golden_manifest_load(dir, &m)) {
        fprintf(stderr, "  %s\n", vcm_error());
        test_failed_++;
        printf("FAIL golden_manifest\n");
        return test_summary();
    }
    printf("goldens: seed %d, %d cases\n", m.seed, m.n);
    test_cur_failed_ = 0;
    check_coverage(&m);
    if (test_cur_failed_) test_failed_++;
    else test_passed_++;
    printf("%s every op of tensor.h has a case\n", test_cur_failed_ ? "FAIL" : "ok  ");
    double worst_all = 0;
    for (int i = 0; i < m.n; i++) {
        Worst w;
        test_cur_failed_ = 0;
        run_case(dir, m.names[i], &w);
        if (test_cur_failed_) test_failed_++;
        else test_passed_++;
        printf("%s %s (worst rel %.2g at %s)\n", test_cur_failed_ ? "FAIL" : "ok  ", m.names[i], w.rel,
               w.where[0] ? w.where : "-");
        fflush(stdout);
        if (w.rel > worst_all) worst_all = w.rel;
    }
    printf("worst relative error over all cases: %.3g (tolerance %g)\n", worst_all, REF_TOL);
    golden_manifest_free(&m);
    return test_summary();
}
