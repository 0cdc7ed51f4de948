/* graph_tensor's gradient buffers start at zero, including the large ones that are
 * zeroed in parallel chunks (tensor/graph.c, from 1 M floats on), whatever the arena
 * memory held before and whatever the thread count. */
#include "tensor/tensor.h"
#include "tests/test.h"

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
        CHECK(t && t->grad);
        if (!t || !t->grad) break;
        size_t bad = 0;
        for (size_t i = 0; i < t->n; i++) bad += t->grad[i] != 0.0f;
        CHECK_MSG(bad == 0, "threads %d, n %d: %zu nonzero gradient entries", threads, N[k], bad);
    }
    graph_free(&g);
}

static void test_grad_zeroed_one_thread(void) { check_zeroed_after_dirty_reset(1); }
static void test_grad_zeroed_two_threads(void) { check_zeroed_after_dirty_reset(2); }

int main(void) {
    RUN(test_grad_zeroed_one_thread);
    RUN(test_grad_zeroed_two_threads);
    return test_summary();
}
