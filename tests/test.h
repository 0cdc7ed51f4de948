/* A minimal test harness: each tests/test_*.c is one program made of test functions.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECK_NEAR(a, b, 1e-6); }
 *   int main(void) { RUN(test_something); return test_summary(); }
 *
 * Each RUN prints "ok <name>" or "FAIL <name>" with the failed checks; test_summary()
 * prints "N passed, N failed" for tests/run.sh to add up. */
#ifndef VCM_TEST_H
#define VCM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_, test_failed_, test_cur_failed_;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            test_cur_failed_ = 1;                                                    \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "  %s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fprintf(stderr, "\n");                                                   \
            test_cur_failed_ = 1;                                                    \
        }                                                                            \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                        \
    do {                                                                             \
        double a_ = (a), b_ = (b);                                                   \
        if (!(fabs(a_ - b_) <= (tol))) {                                             \
            fprintf(stderr, "  %s:%d: %s = %.9g vs %s = %.9g (tol %g)\n", __FILE__,   \
                    __LINE__, #a, a_, #b, b_, (double)(tol));                        \
            test_cur_failed_ = 1;                                                    \
        }                                                                            \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                              \
    do {                                                                             \
        const char *h_ = (hay), *n_ = (needle);                                      \
        if (!h_ || !strstr(h_, n_)) {                                                \
            fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,    \
                    __LINE__, h_ ? h_ : "(null)", n_);                               \
            test_cur_failed_ = 1;                                                    \
        }                                                                            \
    } while (0)

#define RUN(fn)                                                                      \
    do {                                                                             \
        test_cur_failed_ = 0;                                                        \
        fn();                                                                        \
        if (test_cur_failed_) { test_failed_++; printf("FAIL %s\n", #fn); }         \
        else { test_passed_++; printf("ok   %s\n", #fn); }                           \
        fflush(stdout);                                                              \
    } while (0)

static inline int test_summary(void) {
    printf("%d passed, %d failed\n", test_passed_, test_failed_);
    return test_failed_ ? 1 : 0;
}

/* Relative error as the goldens use it: |a-b| / max(|b|, floor). */
static inline double rel_err(double a, double b, double floor_) {
    double d = fabs(b) > floor_ ? fabs(b) : floor_;
    return fabs(a - b) / d;
}

/* Deterministic pseudo-random numbers for tests (xorshift64*). */
static inline unsigned long long test_rng_next(unsigned long long *s) {
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}
static inline float test_uniform(unsigned long long *s) { /* [-1, 1) */
    return (float)((test_rng_next(s) >> 40) * (1.0 / 16777216.0) * 2.0 - 1.0);
}

#endif
