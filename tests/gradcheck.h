/* Central finite-difference gradient checks for ops.
 *
 * The check builds loss = Σ out·R with a fixed random R (so every output element
 * matters with its own weight), runs backward for the analytic gradient of each input,
 * then perturbs each input element by ±h and recomputes the loss, accumulating the
 * loss in double. Used by the per-op tests:
 *
 *   static Tensor *build(Graph *g, Tensor **in, void *ctx) { return op_gelu(g, in[0]); }
 *   CHECK(gradcheck(build, NULL, inputs, n_inputs, 1e-3, 2e-2));
 */
#ifndef VCM_GRADCHECK_H
#define VCM_GRADCHECK_H

#include "tensor/tensor.h"
#include "tests/test.h"

typedef Tensor *(*GradcheckBuild)(Graph *g, Tensor **in, void *ctx);

/* loss = Σ out_i · r_i in double, r from a fixed seed. */
static double gradcheck_loss(const Tensor *out, const float *r) {
    double s = 0;
    for (size_t i = 0; i < out->n; i++) s += (double)out->data[i] * r[i];
    return s;
}

/* in: tensors that live outside the graph's arena (from gradcheck_input). Inputs with a
 * grad buffer are checked. Returns 1 when every element agrees:
 * |analytic - numeric| <= tol * max(1, |numeric|). Prints the worst element otherwise. */
static int gradcheck(GradcheckBuild build, void *ctx, Tensor **in, int n_in, double h, double tol) {
    Graph g;
    if (graph_init(&g, 1 << 20)) return 0;
    Tensor *out = build(&g, in, ctx);
    if (!out) { fprintf(stderr, "  gradcheck: forward failed: %s\n", vcm_error()); graph_free(&g); return 0; }
    size_t n_out = out->n;
    float *r = malloc(n_out * sizeof *r);
    unsigned long long s = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < n_out; i++) r[i] = test_uniform(&s);
    /* Analytic: seed out.grad = r and run the tape. */
    for (int k = 0; k < n_in; k++)
        if (in[k]->grad) memset(in[k]->grad, 0, in[k]->n * sizeof(float));
    if (!out->grad) { fprintf(stderr, "  gradcheck: output carries no gradient\n"); free(r); graph_free(&g); return 0; }
    memcpy(out->grad, r, n_out * sizeof *r);
    for (int i = g.n_nodes - 1; i >= 0; i--)
        if (g.nodes[i].backward && g.nodes[i].out->grad) g.nodes[i].backward(&g.nodes[i]);
    int ok = 1;
    for (int k = 0; k < n_in; k++) {
        if (!in[k]->grad) continue;
        double worst = 0; size_t worst_i = 0; double wa = 0, wn = 0;
        for (size_t i = 0; i < in[k]->n; i++) {
            float x0 = in[k]->data[i];
            in[k]->data[i] = x0 + (float)h;
            graph_reset(&g);
            double lp = gradcheck_loss(build(&g, in, ctx), r);
            in[k]->data[i] = x0 - (float)h;
            graph_reset(&g);
            double lm = gradcheck_loss(build(&g, in, ctx), r);
            in[k]->data[i] = x0;
            /* The actual step is what float rounding made of ±h. */
            double step = (double)(x0 + (float)h) - (double)(x0 - (float)h);
            double num = (lp - lm) / step;
            double ana = in[k]->grad[i];
            double err = fabs(ana - num) / (fabs(num) > 1 ? fabs(num) : 1);
            if (err > worst) { worst = err; worst_i = i; wa = ana; wn = num; }
        }
        if (worst > tol) {
            fprintf(stderr, "  gradcheck: input %d element %zu: analytic %.7g numeric %.7g (err %.3g > %.3g)\n",
                    k, worst_i, wa, wn, worst, tol);
            ok = 0;
        }
    }
    free(r);
    graph_free(&g);
    return ok;
}

/* A heap tensor for gradcheck inputs: uniform in [lo, hi), optional grad. Free with free(). */
static Tensor *gradcheck_input(int ndim, const int *shape, float lo, float hi, int with_grad,
                               unsigned long long *seed) {
    size_t n = shape_numel(ndim, shape);
    Tensor *t = calloc(1, sizeof *t + 2 * n * sizeof(float));
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int));
    t->n = n;
    t->data = (float *)(t + 1);
    for (size_t i = 0; i < n; i++) t->data[i] = lo + (hi - lo) * 0.5f * (test_uniform(seed) + 1.0f);
    t->grad = with_grad ? t->data + n : NULL;
    return t;
}

#endif
