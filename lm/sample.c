/* Picking the next token from logits: greedy, temperature, top-k, top-p (nucleus).
 * The random draw comes from the caller's seeded generator, so the same seed gives
 * the same text. */
#include "lm/lm.h"
#include "tensor/tensor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


typedef struct Cand { float logit; int id; } Cand;

static int cand_desc(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;  /* ties: smaller id first, so the order is total */
}

int lm_sample(const float *logits, int V, const SampleParams *p, uint64_t *rng) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (!p || p->temperature <= 0) return best;  /* greedy */
    Cand *c = malloc((size_t)V * sizeof *c);
    if (!c) return best;  /* out of memory: fall back to greedy rather than fail mid-text */
    for (int i = 0; i < V; i++) c[i] = (Cand){logits[i] / p->temperature, i};
    qsort(c, (size_t)V, sizeof *c, cand_desc);
    int n = V;
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    /* softmax over the kept candidates, in double */
    double *pr = malloc((size_t)n * sizeof *pr);
    if (!pr) { free(c); return best; }
    double sum = 0;
    for (int i = 0; i < n; i++) { pr[i] = exp((double)c[i].logit - c[0].logit); sum += pr[i]; }
    for (int i = 0; i < n; i++) pr[i] /= sum;
    if (p->top_p > 0 && p->top_p < 1) {
        /* smallest prefix whose mass reaches top_p (at least one token) */
        double acc = 0;
        int k = 0;
        while (k < n) { acc += pr[k++]; if (acc >= p->top_p) break; }
        n = k;
        sum = 0;
        for (int i = 0; i < n; i++) sum += pr[i];
        for (int i = 0; i < n; i++) pr[i] /= sum;
    }
    double u = vcm_rng_uniform(rng), acc = 0;
    int pick = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += pr[i];
        if (u < acc) { pick = c[i].id; break; }
    }
    free(pr);
    free(c);
    return pick;
}

double lm_log_softmax_at(const float *logits, int V, int id) {
    float m = logits[0];
    for (int i = 1; i < V; i++) if (logits[i] > m) m = logits[i];
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)logits[i] - m);
    return (double)logits[id] - m - log(s);
}
