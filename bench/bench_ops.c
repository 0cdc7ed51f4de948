/* Forward + backward time of the nn ops (layernorm, softmax, GELU, attention,
 * cross-entropy) on the nano and small shapes; bench/ref_ops.py times PyTorch on the
 * same shapes and bench/run.sh joins the two.
 *
 * Prints `ours <name> <ms>`: best of several runs after warm-up. Each run goes THROUGH
 * THE GRAPH, so the graph's overhead counts: graph_reset, the op_* call (output
 * allocation from the arena, zeroed output gradient, tape node), then the tape's
 * backward with a prepared upstream gradient (for cross-entropy: graph_backward on the
 * scalar loss). Inputs live in a separate graph, prepared beforehand.
 *
 * Shapes (the same in ref_ops.py): layernorm [B·T, D]; softmax over attention-score
 * rows [B·H·T, T]; GELU [B·T, MLP]; attention qkv [B, T, 3D], causal; cross-entropy
 * [B·48, vocab] with every 7th row ignored. */
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int B, T, D, H, mlp, vocab;
} Cfg;

static const Cfg CFGS[] = {
    {"nano", 32, 176, 128, 4, 512, 2048},
    {"small", 8, 308, 384, 6, 1536, 8192},
};

enum { OP_LAYERNORM, OP_SOFTMAX, OP_GELU, OP_ATTENTION, OP_CE, N_OPS };
static const char *OP_NAMES[N_OPS] = {"layernorm", "softmax", "gelu", "attention", "cross_entropy"};

/* VCM_BENCH_CPU=1: process CPU time instead of wall time — steadier on a loaded
 * machine when profiling with one thread (with several it adds up the threads). */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static void fill(float *p, size_t n, unsigned long long *s) {
    for (size_t i = 0; i < n; i++) {
        *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
        p[i] = (float)((*s * 2685821657736338717ULL >> 40) * (1.0 / 8388608.0) - 1.0);
    }
}

/* Inputs of one op, in their own graph. */
typedef struct {
    Tensor *x, *w, *b;
    float *gy;          /* upstream gradient for the op's output */
    int32_t *targets;
} Inputs;

/* One forward + backward through graph g. Returns 0 on success. */
static int run_once(Graph *g, int op, const Cfg *c, Inputs *in) {
    graph_reset(g);
    Tensor *y = NULL;
    switch (op) {
    case OP_LAYERNORM: y = op_layernorm(g, in->x, in->w, in->b, 1e-5f); break;
    case OP_SOFTMAX: y = op_softmax(g, in->x); break;
    case OP_GELU: y = op_gelu(g, in->x); break;
    case OP_ATTENTION: y = op_attention(g, in->x, c->H, 1, NULL); break;
    case OP_CE: y = op_cross_entropy(g, in->x, in->targets, -100); break;
    }
    if (!y) return 1;
    if (op == OP_CE) return graph_backward(g, y);
    y->grad = in->gy; /* the upstream gradient, as a consumer's backward would leave it */
    for (int i = g->n_nodes - 1; i >= 0; i--) g->nodes[i].backward(&g->nodes[i]);
    return 0;
}

static int bench_op(int op, const Cfg *c) {
    Graph gin, g;
    if (graph_init(&gin, 1 << 20) || graph_init(&g, 64 << 20)) return 1;
    unsigned long long s = 42;
    Inputs in = {0};
    int rows = 0, cols = 0;
    switch (op) {
    case OP_LAYERNORM: rows = c->B * c->T; cols = c->D; break;
    case OP_SOFTMAX: rows = c->B * c->H * c->T; cols = c->T; break;
    case OP_GELU: rows = c->B * c->T; cols = c->mlp; break;
    case OP_ATTENTION: rows = c->B * c->T; cols = 3 * c->D; break;
    case OP_CE: rows = c->B * 48; cols = c->vocab; break;
    }
    if (op == OP_ATTENTION) in.x = tensor_3d(&gin, c->B, c->T, 3 * c->D, 1);
    else in.x = tensor_2d(&gin, rows, cols, 1);
    if (!in.x) return 1;
    fill(in.x->data, in.x->n, &s);
    if (op == OP_LAYERNORM) {
        in.w = tensor_1d(&gin, cols, 1);
        in.b = tensor_1d(&gin, cols, 1);
        fill(in.w->data, in.w->n, &s);
        fill(in.b->data, in.b->n, &s);
    }
    size_t out_n = op == OP_ATTENTION ? (size_t)c->B * c->T * c->D : in.x->n;
    in.gy = arena_alloc(&gin.arena, out_n * sizeof(float));
    in.targets = arena_alloc(&gin.arena, (size_t)rows * sizeof(int32_t));
    if (!in.gy || !in.targets) return 1;
    fill(in.gy, out_n, &s);
    for (int r = 0; r < rows; r++) in.targets[r] = r % 7 == 0 ? -100 : (int32_t)((r * 2654435761u) % (unsigned)cols);

    /* Best of at least 10 runs and about a second of runs (the machine may be shared:
     * more runs give the minimum more chances to be an undisturbed one). */
    double best = 1e30, spent = 0;
    for (int it = 0; it < 3 + 300 && (it < 3 + 10 || spent < 1000); it++) {
        double t0 = now_ms();
        if (run_once(&g, op, c, &in)) {
            fprintf(stderr, "bench_ops: %s_%s: %s\n", OP_NAMES[op], c->name, vcm_error());
            return 1;
        }
        double t = now_ms() - t0;
        if (it >= 3) {
            spent += t;
            if (t < best) best = t;
        }
    }
    printf("ours %s_%s %.4f\n", OP_NAMES[op], c->name, best);
    fflush(stdout);
    graph_free(&g);
    graph_free(&gin);
    return 0;
}

int main(int argc, char **argv) {
    /* bench/run.sh exports OMP_WAIT_POLICY=PASSIVE and GOMP_SPINCOUNT for this and ref_ops.py (why: there). */
    /* Optional filter: run only names containing argv[1]. */
    const char *only = argc > 1 ? argv[1] : "";
    vcm_threads_init(0);
    const char *cpu = getenv("VCM_BENCH_CPU");
    if (cpu && *cpu == '1') bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    int rc = 0;
    for (size_t k = 0; k < sizeof CFGS / sizeof CFGS[0]; k++)
        for (int op = 0; op < N_OPS; op++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%s", OP_NAMES[op], CFGS[k].name);
            if (!strstr(name, only)) continue;
            rc |= bench_op(op, &CFGS[k]);
        }
    return rc;
}
