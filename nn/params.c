/* The parameter store: every parameter, its gradient and its two AdamW moments live
 * in four flat buffers, so the optimiser, the all-reduce and the checkpoint are each
 * one loop or one call over a buffer. Parameters are declared first (names and
 * shapes), then the buffers are allocated once. */
#include "nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each parameter starts on a 64-byte boundary so the kernels see aligned rows. */
#define PARAM_ALIGN 16
/* Work unit of the optimiser and the norm: large enough to amortise the scheduling,
 * small enough to spread a small model over the threads. */
#define CHUNK_FLOATS 16384

void params_init(ParamStore *ps) { memset(ps, 0, sizeof *ps); }

/* Drop the flat buffers (the values with them) and the chunks; the declared
 * parameters stay. */
void params_reopen(ParamStore *ps) {
    free(ps->params); free(ps->grads); free(ps->m); free(ps->v);
    free(ps->chunks); free(ps->partial);
    ps->params = ps->grads = ps->m = ps->v = NULL;
    ps->chunks = NULL;
    ps->partial = NULL;
    ps->n_chunks = 0;
    for (int i = 0; i < ps->n_params; i++) ps->p[i]->t.data = ps->p[i]->t.grad = NULL;
}

void params_free(ParamStore *ps) {
    params_reopen(ps);
    for (int i = 0; i < ps->n_params; i++) free(ps->p[i]);
    free(ps->p);
    memset(ps, 0, sizeof *ps);
}

Param *params_find(const ParamStore *ps, const char *name) {
    for (int i = 0; i < ps->n_params; i++)
        if (strcmp(ps->p[i]->name, name) == 0) return ps->p[i];
    return NULL;
}

Tensor *params_get(const ParamStore *ps, const char *name) {
    Param *p = params_find(ps, name);
    return p ? &p->t : NULL;
}

size_t params_count(const ParamStore *ps) {
    size_t n = 0;
    for (int i = 0; i < ps->n_params; i++) n += ps->p[i]->t.n;
    return n;
}

Tensor *params_declare(ParamStore *ps, const char *name, int ndim, const int *shape,
                       int init, float init_std, int decay) {
    if (ps->params) {
        vcm_fail(VCM_ERR, "parameter %s declared after params_alloc", name);
        return NULL;
    }
    if (strlen(name) >= NN_NAME_MAX) {
        vcm_fail(VCM_ERR, "parameter name %s is longer than %d bytes", name, NN_NAME_MAX - 1);
        return NULL;
    }
    if (params_find(ps, name)) {
        vcm_fail(VCM_ERR, "parameter %s declared twice", name);
        return NULL;
    }
    if (ndim < 1 || ndim > VCM_MAXDIM) {
        vcm_fail(VCM_ERR, "parameter %s with %d dims (1..%d allowed)", name, ndim, VCM_MAXDIM);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0) {
            vcm_fail(VCM_ERR, "parameter %s: dim %d has size %d", name, i, shape[i]);
            return NULL;
        }
    if (init != NN_INIT_ZEROS && init != NN_INIT_ONES && init != NN_INIT_NORMAL) {
        vcm_fail(VCM_ERR, "parameter %s: unknown init kind %d", name, init);
        return NULL;
    }
    if (ps->n_params == ps->cap_params) {
        int cap = ps->cap_params ? 2 * ps->cap_params : 64;
        Param **p = realloc(ps->p, (size_t)cap * sizeof *p);
        if (!p) { vcm_fail(VCM_ERR, "out of memory: %d parameters", cap); return NULL; }
        ps->p = p;
        ps->cap_params = cap;
    }
    Param *p = calloc(1, sizeof *p);
    if (!p) { vcm_fail(VCM_ERR, "out of memory: parameter %s", name); return NULL; }
    strcpy(p->name, name);
    p->t.ndim = ndim;
    memcpy(p->t.shape, shape, (size_t)ndim * sizeof(int));
    p->t.n = shape_numel(ndim, shape);
    p->offset = ps->n;
    p->decay = decay ? 1 : 0;
    p->init = init;
    p->init_std = init_std;
    ps->n += (p->t.n + PARAM_ALIGN - 1) / PARAM_ALIGN * PARAM_ALIGN;
    ps->p[ps->n_params++] = p;
    return &p->t;
}

static float *flat_alloc(size_t n) {
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) / 64 * 64;
    float *f = aligned_alloc(64, bytes);
    if (f) memset(f, 0, bytes);
    return f;
}

/* Runs of consecutive parameters with the same decay flag, cut into chunks. The
 * padding between parameters is inside the runs: it stays zero under AdamW. */
static int build_chunks(ParamStore *ps) {
    int cap = 0;
    for (int i = 0; i < ps->n_params; i++)
        cap += (int)((ps->p[i]->t.n + CHUNK_FLOATS - 1) / CHUNK_FLOATS) + 1;
    ps->chunks = malloc((size_t)(cap ? cap : 1) * sizeof *ps->chunks);
    ps->partial = malloc((size_t)(cap ? cap : 1) * sizeof *ps->partial);
    if (!ps->chunks || !ps->partial) return vcm_fail(VCM_ERR, "out of memory: optimiser chunks");
    int nc = 0;
    for (int i = 0; i < ps->n_params;) {
        int j = i;
        while (j + 1 < ps->n_params && ps->p[j + 1]->decay == ps->p[i]->decay) j++;
        size_t start = ps->p[i]->offset;
        size_t end = ps->p[j]->offset + ps->p[j]->t.n;
        for (size_t off = start; off < end; off += CHUNK_FLOATS) {
            size_t len = end - off < CHUNK_FLOATS ? end - off : CHUNK_FLOATS;
            ps->chunks[nc++] = (ParamChunk){off, len, ps->p[i]->decay};
        }
        i = j + 1;
    }
    ps->n_chunks = nc;
    return VCM_OK;
}

int params_alloc(ParamStore *ps) {
    if (ps->params) return vcm_fail(VCM_ERR, "params_alloc called twice");
    ps->params = flat_alloc(ps->n);
    ps->grads = flat_alloc(ps->n);
    ps->m = flat_alloc(ps->n);
    ps->v = flat_alloc(ps->n);
    if (!ps->params || !ps->grads || !ps->m || !ps->v) {
        free(ps->params); free(ps->grads); free(ps->m); free(ps->v);
        ps->params = ps->grads = ps->m = ps->v = NULL;
        return vcm_fail(VCM_ERR, "out of memory: 4 flat buffers of %zu floats", ps->n);
    }
    if (build_chunks(ps)) return VCM_ERR;
    const char *poison = getenv("VCM_POISON_GRADS"); /* as tensor/graph.c: tests set it */
    ps->poison = poison && *poison && strcmp(poison, "0");
    for (int i = 0; i < ps->n_params; i++) {
        Param *p = ps->p[i];
        p->t.data = ps->params + p->offset;
        p->t.grad = ps->grads + p->offset;
        p->t.unset_flag = 0;
        p->t.grad_unset = &p->t.unset_flag;
    }
    return VCM_OK;
}

void params_zero_grad(ParamStore *ps) {
    if (!ps->grads) return;
    memset(ps->grads, 0, ps->n * sizeof(float));
    for (int i = 0; i < ps->n_params; i++) ps->p[i]->t.unset_flag = 0;
}

void params_unset_grads(ParamStore *ps) {
    if (!ps->grads) return;
    for (int i = 0; i < ps->n_params; i++) {
        Tensor *t = &ps->p[i]->t;
        t->unset_flag = 1;
        if (ps->poison) /* a reader that skips params_settle_grads sees NaN, not stale values */
            for (size_t k = 0; k < t->n; k++) t->grad[k] = NAN;
    }
}

void params_settle_grads(ParamStore *ps) {
    if (!ps->grads) return;
    for (int i = 0; i < ps->n_params; i++) {
        Tensor *t = &ps->p[i]->t;
        if (!t->unset_flag) continue;
        memset(t->grad, 0, t->n * sizeof(float));
        t->unset_flag = 0;
    }
}

int params_set(ParamStore *ps, const char *name, int ndim, const int *shape, const float *data) {
    Param *p = params_find(ps, name);
    if (!p) return vcm_fail(VCM_EINPUT, "no parameter named %s", name);
    if (!ps->params) return vcm_fail(VCM_ERR, "params_set(%s) before params_alloc", name);
    int same = ndim == p->t.ndim;
    for (int i = 0; same && i < ndim; i++) same = shape[i] == p->t.shape[i];
    if (!same) {
        char want[64], got[80];
        Tensor tmp = {0};
        tmp.ndim = ndim > VCM_MAXDIM ? VCM_MAXDIM : (ndim < 0 ? 0 : ndim);
        memcpy(tmp.shape, shape, (size_t)tmp.ndim * sizeof(int));
        return vcm_fail(VCM_EINPUT, "parameter %s has shape %s, given %s%s", name,
                        shape_str(&p->t, want, sizeof want), shape_str(&tmp, got, sizeof got),
                        ndim > VCM_MAXDIM ? " (truncated)" : "");
    }
    memcpy(p->t.data, data, p->t.n * sizeof(float));
    return VCM_OK;
}
