/* The tensor core without ops: arena, tensors, views, tape, errors, threads,
 * and the tools' flag parser. */
#include "tensor/tensor.h"
#include "tests/test.h"
#include "tools/flags.c"

#include <omp.h>

static void test_arena_aligns_and_grows(void) {
    Arena a;
    CHECK(arena_init(&a, 1024) == VCM_OK);
    char *p = arena_alloc(&a, 10);
    char *q = arena_alloc(&a, 10);
    CHECK(((uintptr_t)p & 63) == 0 && ((uintptr_t)q & 63) == 0);
    CHECK(q - p == 64);
    /* Larger than a block: a new block of exactly that size. */
    char *big = arena_alloc(&a, 5000);
    CHECK(big != NULL);
    memset(big, 1, 5000);
    CHECK(a.used == 64 + 64 + 5056);
    arena_free(&a);
}

static void test_arena_reset_reuses_blocks(void) {
    Arena a;
    CHECK(arena_init(&a, 4096) == VCM_OK);
    void *first[8];
    for (int i = 0; i < 8; i++) first[i] = arena_alloc(&a, 3000);
    arena_reset(&a);
    CHECK(a.used == 0);
    /* The same sequence of requests gets the same addresses: no new malloc. */
    for (int i = 0; i < 8; i++) CHECK(arena_alloc(&a, 3000) == first[i]);
    CHECK(a.peak == 8 * 3008);
    arena_free(&a);
}

static void test_tensor_new_is_zeroed_with_grad(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 16) == VCM_OK);
    Tensor *t = tensor_3d(&g, 2, 3, 5, 1);
    CHECK(t && t->n == 30 && t->ndim == 3 && tensor_rows(t) == 6 && tensor_cols(t) == 5);
    float s = 0;
    for (size_t i = 0; i < t->n; i++) s += fabsf(t->data[i]) + fabsf(t->grad[i]);
    CHECK(s == 0);
    char buf[32];
    CHECK(!strcmp(shape_str(t, buf, sizeof buf), "[2, 3, 5]"));
    graph_free(&g);
}

static void test_bad_shapes_fail_without_crash(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 16) == VCM_OK);
    int bad[] = {3, 0};
    CHECK(tensor_new(&g, 2, bad, 0) == NULL);
    CHECK(g.failed);
    CHECK_STR_CONTAINS(vcm_error(), "size 0");
    graph_reset(&g);
    CHECK(!g.failed);
    Tensor *t = tensor_2d(&g, 4, 6, 0);
    int s3[] = {5, 5};
    CHECK(op_reshape(&g, t, 2, s3) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "reshape");
    CHECK(op_reshape(&g, NULL, 2, s3) == NULL);  /* NULL propagates */
    graph_free(&g);
}

/* Prefixing the previous message (vcm_fail(..., "%s: %s", path, vcm_error())) is how
 * callers add context: the old text must come out whole, not overwritten mid-format. */
static void test_error_can_prefix_itself(void) {
    vcm_fail(VCM_EINPUT, "line %d: bad value", 7);
    CHECK(vcm_fail(VCM_EINPUT, "%s: %s", "file.jsonl", vcm_error()) == VCM_EINPUT);
    CHECK(strcmp(vcm_error(), "file.jsonl: line 7: bad value") == 0);
}

static void test_views_share_storage(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 16) == VCM_OK);
    Tensor *t = tensor_3d(&g, 4, 2, 3, 1);
    for (size_t i = 0; i < t->n; i++) t->data[i] = (float)i;
    int s[] = {8, 3};
    Tensor *r = op_reshape(&g, t, 2, s);
    CHECK(r && r->data == t->data && r->grad == t->grad && r->n == 24);
    Tensor *sl = op_slice0(&g, t, 1, 2);
    CHECK(sl && sl->shape[0] == 2 && sl->n == 12 && sl->data[0] == 6.0f);
    sl->grad[0] = 7;
    CHECK(t->grad[6] == 7);
    CHECK(op_slice0(&g, t, 3, 2) == NULL);
    graph_free(&g);
}

static void test_wrap_uses_caller_memory(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 16) == VCM_OK);
    float buf[6] = {1, 2, 3, 4, 5, 6};
    int s[2] = {2, 3};
    Tensor *t = tensor_wrap(&g, buf, 2, s);
    CHECK(t && t->data == buf && t->grad == NULL && t->n == 6);
    int bad[2] = {2, -1};
    CHECK(tensor_wrap(&g, buf, 2, bad) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "size -1");
    graph_free(&g);
}

static void test_backward_needs_scalar_loss(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 16) == VCM_OK);
    Tensor *t = tensor_2d(&g, 2, 2, 1);
    CHECK(graph_backward(&g, t) == VCM_ERR);
    CHECK_STR_CONTAINS(vcm_error(), "scalar");
    Tensor *l = tensor_1d(&g, 1, 1);
    CHECK(graph_backward(&g, l) == VCM_OK && l->grad[0] == 1.0f);
    graph_free(&g);
}

static int calls;
static void count_backward(Node *n) { (void)n; calls++; }

static void test_tape_runs_in_reverse_and_grows(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 16) == VCM_OK);
    Tensor *l = tensor_1d(&g, 1, 1);
    calls = 0;
    for (int i = 0; i < 1000; i++) CHECK(graph_push(&g, "count", count_backward, l) != NULL);
    CHECK(g.n_nodes == 1000 && g.cap_nodes >= 1000);
    CHECK(graph_backward(&g, l) == VCM_OK);
    CHECK(calls == 1000);
    graph_free(&g);
}

static void test_threads_init(void) {
    CHECK(vcm_threads_init(1) == 1 && vcm_threads() == 1);
    CHECK(vcm_threads_init(2) == 2);
    setenv("VCM_THREADS", "1", 1);
    CHECK(vcm_threads_init(0) == 1);
    unsetenv("VCM_THREADS");
    CHECK(vcm_threads_init(0) >= 1);
}

/* Every thread vcm computes on flushes denormals: 1e-30 · 1e-10 (a denormal) reads 0 on
 * the caller, on each OpenMP thread and on each thread of the team. */
static volatile float tiny_a = 1e-30f, tiny_b = 1e-10f;
static float team_out[8];
static void team_tiny(void *arg, int t, int n) {
    (void)arg; (void)n;
    if (t < 8) team_out[t] = tiny_a * tiny_b;
}
static void test_denormals_flushed_on_every_thread(void) {
    vcm_threads_init(2);
    CHECK(tiny_a * tiny_b == 0.0f);
    float out[2] = {1, 1};
#pragma omp parallel num_threads(2)
    out[omp_get_thread_num()] = tiny_a * tiny_b;
    CHECK(out[0] == 0.0f && out[1] == 0.0f);
    vcm_team_adaptive(0);
    for (int i = 0; i < 8; i++) team_out[i] = 1;
    vcm_team_run(team_tiny, NULL);
    CHECK(team_out[0] == 0.0f && team_out[1] == 0.0f);
    vcm_team_adaptive(1);
    vcm_threads_init(0);
}

static void test_flags_parse(void) {
    const char *s = NULL; int n = 3; float f = 0; int b = 0; FlagList l = {0};
    Flag flags[] = {{"out", 's', &s, "where (required)"}, {"n", 'i', &n, "count"},
                    {"t", 'f', &f, "temp"}, {"draw", 'b', &b, "draw"}, {"region", 'L', &l, "box"},
                    {0}};
    char *argv1[] = {"x", "--out", "o.txt", "--n=7", "--t", "0.5", "--draw", "--region", "1,2,3,4",
                     "--region", "5,6,7,8", "pos"};
    const char *pos[2]; int np = 0;
    CHECK(flags_parse("usage", flags, 12, argv1, pos, 2, &np) == 0);
    CHECK(s && !strcmp(s, "o.txt") && n == 7 && f == 0.5f && b == 1 && l.n == 2 && np == 1);
    char *argv2[] = {"x", "--n", "seven", "--out", "o"};
    CHECK(flags_parse("usage", flags, 5, argv2, pos, 2, &np) == 2);
    char *argv3[] = {"x", "--n", "1"};
    CHECK(flags_parse("usage", flags, 3, argv3, pos, 2, &np) == 2);  /* --out missing */
    char *argv4[] = {"x", "--bogus"};
    CHECK(flags_parse("usage", flags, 2, argv4, pos, 2, &np) == 2);
    /* numbers must be finite, and fit a float for a float flag */
    const char *bad[] = {"nan", "inf", "-inf", "1e39", "NaN"};
    for (int i = 0; i < 5; i++) {
        char *argv5[] = {"x", "--out", "o", "--t", (char *)bad[i]};
        f = 0.25f;
        CHECK(flags_parse("usage", flags, 5, argv5, pos, 2, &np) == 2);
        CHECK(f == 0.25f);
    }
    /* a range written last in the help, "[lo..hi]", either side open, is enforced */
    int k = 0;
    float p = 0;
    Flag ranged[] = {{"k", 'i', &k, "top k (default 0) [0..]"}, {"p", 'f', &p, "mass [0..1]"}, {0}};
    char *ok1[] = {"x", "--k", "0", "--p", "1"}, *bad1[] = {"x", "--k", "-5"}, *bad2[] = {"x", "--p", "1.5"};
    char *bad3[] = {"x", "--p", "-0.01"};
    CHECK(flags_parse("usage", ranged, 5, ok1, pos, 2, &np) == 0 && k == 0 && p == 1.0f);
    CHECK(flags_parse("usage", ranged, 3, bad1, pos, 2, &np) == 2 && k == 0);
    CHECK(flags_parse("usage", ranged, 3, bad2, pos, 2, &np) == 2 && p == 1.0f);
    CHECK(flags_parse("usage", ranged, 3, bad3, pos, 2, &np) == 2);
}

int main(void) {
    RUN(test_arena_aligns_and_grows);
    RUN(test_arena_reset_reuses_blocks);
    RUN(test_tensor_new_is_zeroed_with_grad);
    RUN(test_bad_shapes_fail_without_crash);
    RUN(test_error_can_prefix_itself);
    RUN(test_views_share_storage);
    RUN(test_wrap_uses_caller_memory);
    RUN(test_backward_needs_scalar_loss);
    RUN(test_tape_runs_in_reverse_and_grows);
    RUN(test_threads_init);
    RUN(test_denormals_flushed_on_every_thread);
    RUN(test_flags_parse);
    return test_summary();
}
