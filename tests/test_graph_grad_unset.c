/* Gradient buffers of op outputs start "unset" (tensor/graph.c): not zeroed at
 * creation; the first backward kernel that reaches one either writes it whole
 * (grad_overwrite) or has it zeroed to add into (grad_accumulate, which zeroes large
 * buffers in parallel chunks from 1 M floats on). These checks pin that protocol:
 * zeros whatever the arena memory held and whatever the thread count, the flag shared
 * by views, a gradient nothing wrote reads as zero after backward, and poisoning. */
#include "tensor/tensor.h"
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>

static void check_zeroed_after_dirty_reset(int threads) {
    vcm_threads_init(threads);
    /* sizes around the parallel threshold and the 64 K-float chunk, odd tails */
    static const int N[] = {1000, (1 << 20) - 1, 1 << 20, (1 << 20) + 65536 * 3 + 17};
    Graph g;
    CHECK(graph_init(&g, (size_t)24 << 20) == VCM_OK);
    for (int k = 0; k < 4; k++) {
        graph_reset(&g);
        Tensor *dirty = graph_tensor(&g, 1, (int[]){2 * N[k] + 64}, 0);
        CHECK(dirty != NULL);
        if (!dirty) break;
        for (size_t i = 0; i < dirty->n; i++) dirty->data[i] = 1.0f + (float)(i % 7);
        graph_reset(&g); /* the next tensor reuses the dirty memory */
        Tensor *t = graph_tensor(&g, 1, (int[]){N[k]}, 1);
        CHECK(t && t->grad && t->grad_unset && *t->grad_unset);
        if (!t || !t->grad) break;
        grad_accumulate(t);
        CHECK(!*t->grad_unset);
        size_t bad = 0;
        for (size_t i = 0; i < t->n; i++) bad += t->grad[i] != 0.0f;
        CHECK_MSG(bad == 0, "threads %d, n %d: %zu nonzero gradient entries", threads, N[k], bad);
        t->grad[0] = 5.0f;
        grad_accumulate(t); /* set already: left alone */
        CHECK(t->grad[0] == 5.0f);
    }
    graph_free(&g);
    vcm_threads_init(0);
}

static void test_accumulate_zeroes_one_thread(void) { check_zeroed_after_dirty_reset(1); }
static void test_accumulate_zeroes_two_threads(void) { check_zeroed_after_dirty_reset(2); }

/* grad_overwrite says "write it" once; a reshape view shares the flag, so the tensor and
 * its view are claimed once between them; a slice view needs zeros underneath. */
static void test_overwrite_once_and_views(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 20) == VCM_OK);
    Tensor *t = graph_tensor(&g, 2, (int[]){4, 6}, 1);
    Tensor *r = op_reshape(&g, t, 2, (int[]){6, 4});
    CHECK(r && r->grad == t->grad && r->grad_unset == t->grad_unset);
    CHECK(grad_overwrite(r) == 1);
    CHECK(grad_overwrite(t) == 0 && grad_overwrite(r) == 0);
    Tensor *u = graph_tensor(&g, 2, (int[]){4, 6}, 1);
    for (size_t i = 0; i < u->n; i++) u->grad[i] = 3.0f; /* stale values */
    Tensor *s = op_slice0(&g, u, 1, 2);
    CHECK(s && !s->grad_unset && u->grad_unset && !*u->grad_unset);
    size_t bad = 0;
    for (size_t i = 0; i < u->n; i++) bad += u->grad[i] != 0.0f;
    CHECK_MSG(bad == 0, "%zu stale values under a slice view", bad);
    Tensor *leaf = tensor_2d(&g, 2, 2, 1); /* a leaf's gradient is a sum from zero */
    CHECK(leaf && !leaf->grad_unset && grad_overwrite(leaf) == 0);
    graph_free(&g);
}

/* After graph_backward every gradient reads as the sum of what reached it: an output no
 * op used is zero, and an input reached twice gets both contributions. */
static void test_backward_unused_output_is_zero(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 20) == VCM_OK);
    Tensor *x = tensor_2d(&g, 3, 5, 1);
    for (size_t i = 0; i < x->n; i++) x->data[i] = (float)i - 4.0f;
    Tensor *unused = op_scale(&g, x, 3.0f); /* nothing reads it */
    for (size_t i = 0; i < unused->n; i++) unused->grad[i] = NAN; /* as poisoned memory would */
    Tensor *h = op_scale(&g, x, 2.0f);
    Tensor *y = op_add(&g, h, h); /* h reached twice */
    Tensor *loss = op_mean(&g, op_mean(&g, y, 1), 0);
    CHECK(loss && graph_backward(&g, loss) == VCM_OK);
    size_t bad = 0;
    for (size_t i = 0; i < x->n; i++) bad += fabsf(x->grad[i] - 4.0f / 15.0f) > 1e-6f;
    CHECK_MSG(bad == 0, "%zu wrong entries of dx (want 4/15 each)", bad);
    for (size_t i = 0; i < unused->n; i++) bad += unused->grad[i] != 0.0f;
    CHECK_MSG(bad == 0, "the unused output's gradient is not zero");
    graph_free(&g);
}

/* VCM_POISON_GRADS: unset gradients start as NaN, so a kernel that adds into one
 * without asking shows up as NaN in any test (tests/run.sh sets it). */
static void test_poison(void) {
    setenv("VCM_POISON_GRADS", "1", 1);
    Graph g;
    CHECK(graph_init(&g, 1 << 20) == VCM_OK && g.poison);
    Tensor *t = graph_tensor(&g, 1, (int[]){100}, 1);
    int nan = 0;
    for (size_t i = 0; i < t->n; i++) nan += isnan(t->grad[i]) != 0;
    CHECK(nan == 100);
    graph_free(&g);
    setenv("VCM_POISON_GRADS", "0", 1);
    CHECK(graph_init(&g, 1 << 20) == VCM_OK && !g.poison);
    graph_free(&g);
}

int main(void) {
    RUN(test_accumulate_zeroes_one_thread);
    RUN(test_accumulate_zeroes_two_threads);
    RUN(test_overwrite_once_and_views);
    RUN(test_backward_unused_output_is_zero);
    RUN(test_poison);
    return test_summary();
}
