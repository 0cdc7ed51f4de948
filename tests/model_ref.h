/* What tests/test_model_ref.c and tests/test_critic_ref.c share: the tolerances of
 * docs/MODEL_REF.md, the per-case verdict and the array lookup in a golden case.
 * Include after tests/golden.h and model/model.h. */
#ifndef VCM_TESTS_MODEL_REF_H
#define VCM_TESTS_MODEL_REF_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MODEL_TOL 1e-4
#define MODEL_NORM_TOL 1e-5
#define MODEL_HARD_TOL 1e-3
#define MODEL_TORCH_MARGIN 1.25
typedef struct {
    double worst, worst_torch, worst_norm;
    char where[NN_NAME_MAX + 32], where_norm[NN_NAME_MAX + 32];
    int n, n_over, n_fail;
} Verdict;

/* |ours - ref|_2 / |ref|_2 (0 when both are zero). */
static double norm_rel(const float *ours, const float *ref, size_t n) {
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)ours[i] - ref[i]) * ((double)ours[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return r == 0 ? (d == 0 ? 0 : INFINITY) : sqrt(d / r);
}

/* strict: logits and loss (the float32-PyTorch margin applies); else a gradient. */
static void ref_judge(Verdict *v, const char *what, int strict, double rel, double nrel, double torch32) {
    v->n++;
    if (rel > v->worst) { v->worst = rel; snprintf(v->where, sizeof v->where, "%s", what); }
    if (!(nrel <= v->worst_norm)) { v->worst_norm = nrel; snprintf(v->where_norm, sizeof v->where_norm, "%s", what); }
    if (torch32 > v->worst_torch) v->worst_torch = torch32;
    if (!(nrel <= MODEL_NORM_TOL)) {
        v->n_fail++;
        fprintf(stderr, "  FAIL %s: normwise rel %.3g > %g\n", what, nrel, MODEL_NORM_TOL);
    }
    if (!(rel <= MODEL_TOL)) {
        v->n_over++;
        /* Logits and loss above 1e-4 fail unless float32 PyTorch itself is that far from
         * the float64 reference on them (then it is float32 rounding, and ours may be at
         * most MODEL_TORCH_MARGIN times PyTorch's own error). */
        int fail = (strict && !(rel <= MODEL_TORCH_MARGIN * torch32)) || !(rel <= MODEL_HARD_TOL);
        v->n_fail += fail;
        fprintf(stderr, "  %s %s: elementwise rel %.3g > %g; float32 PyTorch's rel on it %.3g\n",
                fail ? "FAIL" : "note", what, rel, MODEL_TOL, torch32);
    }
}

static const GoldenArray *need(const GoldenCase *c, const char *name, int dtype) {
    const GoldenArray *a = golden_find(c, name);
    if (!a || a->dtype != dtype) fprintf(stderr, "  array \"%s\" missing or of the wrong type\n", name);
    return a && a->dtype == dtype ? a : NULL;
}

#endif
