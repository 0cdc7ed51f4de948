/* Tensors in the arena, the tape, and backward. */
#include "tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t shape_numel(int ndim, const int *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

int tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *shape_str(const Tensor *t, char *buf, size_t size) {
    size_t k = 0;
    k += (size_t)snprintf(buf + k, size - k, "[");
    for (int i = 0; i < t->ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, i ? ", %d" : "%d", t->shape[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
    return buf;
}

int graph_init(Graph *g, size_t arena_block_size) {
    memset(g, 0, sizeof *g);
    g->grad_enabled = 1;
    /* Tests set it so that a backward kernel that adds into an unset gradient without
     * grad_accumulate gives NaN instead of the zeros fresh pages happen to hold. */
    const char *poison = getenv("VCM_POISON_GRADS");
    g->poison = poison && *poison && strcmp(poison, "0");
    g->cap_nodes = 256;
    g->nodes = calloc((size_t)g->cap_nodes, sizeof *g->nodes);
    if (!g->nodes) return vcm_fail(VCM_ERR, "out of memory: tape");
    if (arena_init(&g->arena, arena_block_size)) { free(g->nodes); g->nodes = NULL; return VCM_ERR; }
    return VCM_OK;
}

void graph_free(Graph *g) {
    arena_free(&g->arena);
    free(g->nodes);
    memset(g, 0, sizeof *g);
}

void graph_reset(Graph *g) {
    arena_reset(&g->arena);
    g->n_nodes = 0;
    g->failed = 0;
}

int graph_fail(Graph *g, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Keep the first failure's message: later ones are consequences. */
    if (!g->failed) vcm_fail(VCM_ERR, "%s", msg);
    g->failed = 1;
    return VCM_ERR;
}

int graph_wants_grad(const Graph *g, const Tensor *a, const Tensor *b, const Tensor *c) {
    if (!g->grad_enabled) return 0;
    return (a && a->grad) || (b && b->grad) || (c && c->grad);
}

/* Zero an unset gradient buffer (grad_accumulate). A big activation's gradient
 * (megabytes) zeroed by one thread is a serial share of every step, so from
 * GRAD_ZERO_PAR floats (4 MB) on it is cut into chunks of GRAD_ZERO_CHUNK floats
 * (256 KB) zeroed in parallel. Below that a memset is faster than the fork/join
 * (measured on the 2-core Xeon: 1 MB in 0.024 ms serial; 16.8 MB 0.70 ms serial,
 * 0.40 ms on two threads when the second core is free). The chunks do not depend on
 * the thread count, and the result is zeros anyway. */
#define GRAD_ZERO_CHUNK ((size_t)65536)
#define GRAD_ZERO_PAR ((size_t)1 << 20)
static void zero_grad_buffer(float *p, size_t n) {
    if (n < GRAD_ZERO_PAR) {
        memset(p, 0, n * sizeof(float));
        return;
    }
    long n_chunks = (long)((n + GRAD_ZERO_CHUNK - 1) / GRAD_ZERO_CHUNK);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < n_chunks; c++) {
        size_t o = (size_t)c * GRAD_ZERO_CHUNK, m = n - o < GRAD_ZERO_CHUNK ? n - o : GRAD_ZERO_CHUNK;
        memset(p + o, 0, m * sizeof(float));
    }
}

/* A checked shape in a tensor header from the arena; data and grad NULL. */
static Tensor *tensor_header(Graph *g, int ndim, const int *shape) {
    if (ndim < 1 || ndim > VCM_MAXDIM) {
        graph_fail(g, "tensor with %d dims (1..%d allowed)", ndim, VCM_MAXDIM);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) {
            graph_fail(g, "tensor with dim %d of size %d", i, shape[i]);
            return NULL;
        }
    Tensor *t = arena_alloc(&g->arena, sizeof *t);
    if (!t) { graph_fail(g, "%s", vcm_error()); return NULL; }
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int));
    t->n = shape_numel(ndim, shape);
    return t;
}

Tensor *tensor_wrap(Graph *g, float *data, int ndim, const int *shape) {
    Tensor *t = tensor_header(g, ndim, shape);
    if (t) t->data = data;
    return t;
}

Tensor *graph_tensor(Graph *g, int ndim, const int *shape, int with_grad) {
    Tensor *t = tensor_header(g, ndim, shape);
    if (!t) return NULL;
    t->data = arena_alloc(&g->arena, t->n * sizeof(float));
    if (!t->data) { graph_fail(g, "%s", vcm_error()); return NULL; }
    if (with_grad && graph_grad_alloc(g, t)) return NULL;
    return t;
}

int graph_grad_alloc(Graph *g, Tensor *t) {
    t->grad = arena_alloc(&g->arena, t->n * sizeof(float));
    if (!t->grad) return graph_fail(g, "%s", vcm_error());
    t->unset_flag = 1;
    t->grad_unset = &t->unset_flag;
    if (g->poison)
        for (size_t i = 0; i < t->n; i++) t->grad[i] = NAN;
    return VCM_OK;
}

int grad_overwrite(Tensor *t) {
    if (!t->grad_unset || !*t->grad_unset) return 0;
    *t->grad_unset = 0;
    return 1;
}

void grad_accumulate(Tensor *t) {
    if (grad_overwrite(t)) zero_grad_buffer(t->grad, t->n);
}

Node *graph_push(Graph *g, const char *name, BackwardFn fn, Tensor *out) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes * 2;
        Node *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) { graph_fail(g, "out of memory: tape of %d nodes", cap); return NULL; }
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    Node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->name = name;
    n->backward = fn;
    n->out = out;
    return n;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

int graph_backward_timed(Graph *g, Tensor *loss, NodeTimeFn timed, void *ctx) {
    if (g->failed) return vcm_fail(VCM_ERR, "backward after a failed forward: %s", vcm_error());
    if (!loss || loss->n != 1 || !loss->grad)
        return vcm_fail(VCM_ERR, "backward needs a scalar loss that carries a gradient");
    grad_overwrite(loss);
    loss->grad[0] = 1.0f;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        Node *n = &g->nodes[i];
        if (!n->backward || !n->out->grad) continue;
        double t0 = timed ? now_ms() : 0.0;
        grad_accumulate(n->out); /* an output nothing used: its gradient is zero */
        n->backward(n);
        if (timed) timed(n, now_ms() - t0, ctx);
    }
    return VCM_OK;
}

int graph_backward(Graph *g, Tensor *loss) { return graph_backward_timed(g, loss, NULL, NULL); }

Tensor *tensor_new(Graph *g, int ndim, const int *shape, int with_grad) {
    Tensor *t = graph_tensor(g, ndim, shape, with_grad);
    if (!t) return NULL;
    memset(t->data, 0, t->n * sizeof(float));
    if (t->grad) { /* a leaf's gradient is a sum that starts at zero */
        memset(t->grad, 0, t->n * sizeof(float));
        t->grad_unset = NULL;
    }
    return t;
}
Tensor *tensor_1d(Graph *g, int a, int wg) { int s[] = {a}; return tensor_new(g, 1, s, wg); }
Tensor *tensor_2d(Graph *g, int a, int b, int wg) { int s[] = {a, b}; return tensor_new(g, 2, s, wg); }
Tensor *tensor_3d(Graph *g, int a, int b, int c, int wg) { int s[] = {a, b, c}; return tensor_new(g, 3, s, wg); }
Tensor *tensor_4d(Graph *g, int a, int b, int c, int d, int wg) {
    int s[] = {a, b, c, d};
    return tensor_new(g, 4, s, wg);
}

Tensor *op_reshape(Graph *g, Tensor *x, int ndim, const int *shape) {
    if (!x) return NULL;
    if (ndim < 1 || ndim > VCM_MAXDIM || shape_numel(ndim, shape) != x->n) {
        char b[64];
        graph_fail(g, "reshape of %s to %d dims with a different number of elements", shape_str(x, b, sizeof b), ndim);
        return NULL;
    }
    Tensor *t = arena_alloc(&g->arena, sizeof *t);
    if (!t) { graph_fail(g, "%s", vcm_error()); return NULL; }
    *t = *x;
    t->ndim = ndim;
    memset(t->shape, 0, sizeof t->shape);
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int));
    return t;
}

Tensor *op_slice0(Graph *g, Tensor *x, int start, int len) {
    if (!x) return NULL;
    if (start < 0 || len <= 0 || start + len > x->shape[0]) {
        graph_fail(g, "slice [%d, %d) of a leading dim of %d", start, start + len, x->shape[0]);
        return NULL;
    }
    Tensor *t = arena_alloc(&g->arena, sizeof *t);
    if (!t) { graph_fail(g, "%s", vcm_error()); return NULL; }
    *t = *x;
    size_t row = x->n / (size_t)x->shape[0];
    t->shape[0] = len;
    t->n = row * (size_t)len;
    t->data = x->data + row * (size_t)start;
    if (x->grad) { /* the view covers part of x's gradient, so x's must hold zeros */
        grad_accumulate(x);
        t->grad = x->grad + row * (size_t)start;
        t->grad_unset = NULL;
    }
    return t;
}
