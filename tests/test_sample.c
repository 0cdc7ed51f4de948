/* Sampling: greedy, temperature, top-k, top-p; determinism by seed. */
#include "lm/lm.h"
#include "tests/test.h"

static void test_greedy_takes_the_max_and_breaks_ties_low(void) {
    float l[5] = {0.1f, 2.0f, -1.0f, 2.0f, 0.5f};
    uint64_t rng = 1;
    SampleParams p = {0, 0, 0};
    CHECK(lm_sample(l, 5, &p, &rng) == 1);
    CHECK(lm_sample(l, 5, NULL, &rng) == 1);
}

static void test_top_k_1_is_greedy(void) {
    float l[4] = {0.3f, 0.1f, 0.9f, 0.2f};
    uint64_t rng = 5;
    SampleParams p = {1.0f, 1, 0};
    for (int i = 0; i < 50; i++) CHECK(lm_sample(l, 4, &p, &rng) == 2);
}

static void test_top_p_keeps_the_nucleus(void) {
    /* probabilities ≈ 0.64, 0.24, 0.09, 0.03: top_p 0.8 keeps the first two */
    float l[4] = {3.0f, 2.0f, 1.0f, 0.0f};
    uint64_t rng = 9;
    SampleParams p = {1.0f, 0, 0.8f};
    int seen[4] = {0};
    for (int i = 0; i < 2000; i++) seen[lm_sample(l, 4, &p, &rng)]++;
    CHECK(seen[2] == 0 && seen[3] == 0);
    CHECK(seen[0] > seen[1] && seen[1] > 300);
}

static void test_temperature_matches_softmax_frequencies(void) {
    float l[3] = {1.0f, 0.0f, -1.0f};
    uint64_t rng = 3;
    SampleParams p = {2.0f, 0, 0};
    int seen[3] = {0};
    enum { N = 20000 };
    for (int i = 0; i < N; i++) seen[lm_sample(l, 3, &p, &rng)]++;
    double z = exp(0.5) + 1 + exp(-0.5);
    CHECK_NEAR(seen[0] / (double)N, exp(0.5) / z, 0.015);
    CHECK_NEAR(seen[2] / (double)N, exp(-0.5) / z, 0.015);
}

static void test_same_seed_same_draws(void) {
    float l[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
    SampleParams p = {1.0f, 0, 0.95f};
    uint64_t a = 77, b = 77;
    for (int i = 0; i < 100; i++) CHECK(lm_sample(l, 6, &p, &a) == lm_sample(l, 6, &p, &b));
}

static void test_log_softmax(void) {
    float l[3] = {1.0f, 2.0f, 3.0f};
    double z = log(exp(1.0) + exp(2.0) + exp(3.0));
    CHECK_NEAR(lm_log_softmax_at(l, 3, 0), 1.0 - z, 1e-9);
    CHECK_NEAR(lm_log_softmax_at(l, 3, 2), 3.0 - z, 1e-9);
}

int main(void) {
    RUN(test_greedy_takes_the_max_and_breaks_ties_low);
    RUN(test_top_k_1_is_greedy);
    RUN(test_top_p_keeps_the_nucleus);
    RUN(test_temperature_matches_softmax_frequencies);
    RUN(test_same_seed_same_draws);
    RUN(test_log_softmax);
    return test_summary();
}
