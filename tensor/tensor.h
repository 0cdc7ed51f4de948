/* tensor/ — the tensor, the activation arena, the autograd tape and the ops.
 *
 * The public header of the folder. Everything above tensor/ (nn, vit, lm, train)
 * builds models from the ops declared here.
 *
 * Conventions
 *  - f32, row-major, contiguous, up to 4 dims.
 *  - A tensor "needs a gradient" when its grad pointer is non-NULL. An op's output
 *    gets a gradient buffer (from the arena, unset: see Tensor.grad_unset) and a node
 *    on the tape when any input needs a gradient and the graph records (g->grad_enabled).
 *  - Every op lives in one file `tensor/op_<op>.c`: the graph-level function
 *    `op_<op>(Graph *, ...)` that allocates, runs the forward kernel and records the
 *    node; the node's `<op>_node_backward`; and a pair of static kernels on float
 *    pointers, `k_<op>_forward` / `k_<op>_backward` (names: docs/TENSOR.md).
 *  - Backward kernels ACCUMULATE (+=) into input gradients, except that the first one
 *    to reach a gradient that holds no values yet writes it (=): see grad_overwrite.
 *  - Ops never abort: on failure (arena exhausted, bad shapes) they set the error
 *    message, mark the graph failed and return NULL; an op given a NULL input returns
 *    NULL at once, so a failure propagates to the end of a forward pass where the
 *    caller checks once.
 *  - Results are bitwise identical for any thread count: work is split in chunks that
 *    do not depend on the number of threads and reductions add in a fixed order.
 */
#ifndef VCM_TENSOR_H
#define VCM_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"   /* errors, random numbers, atomic files */

/* Σ x[i]² in double, in a fixed order (vectorised: nn/'s gradient norm). */
double vcm_sum_squares(const float *x, size_t n);

/* ---------------------------------------------------------------- row kernels
 * The forward kernels of op_layernorm, op_softmax and op_gelu on one row (one span),
 * on the calling thread, for code that runs one position at a time (the KV cache's
 * decode step): the same arithmetic, so inference computes what training computed. */
void vcm_layernorm_row(float *y, const float *x, const float *w, const float *b, int C, float eps);
void vcm_softmax_row(float *y, const float *x, int C);    /* every x[j] = -inf: NaN */
void vcm_gelu_span(float *y, const float *x, size_t n);   /* tanh form; y may be x */
/* (tensor/matvec.c) y[o] (+)= W[o, :]·x + b[o] (b may be NULL) for the n <= 4 rows
 * o.. of W [rows, in] row-major, each row summed in a fixed order whatever block or
 * thread computes it; Σ a[i]·b[i]; y += a·x. */
void vcm_matvec_rows(float *y, const float *W, const float *b, const float *x, int o, int n, int in, int accumulate);
float vcm_dot(const float *a, const float *b, int n);
void vcm_axpy(float *y, float a, const float *x, int n);

/* ---------------------------------------------------------------- threads */

/* Set the OpenMP thread count (OpenBLAS stays single-threaded: our gemm tiles run on
 * the OpenMP pool) and flush denormals in all of them. n <= 0: the VCM_THREADS
 * environment variable, else the cores. */
int vcm_threads_init(int n);
int vcm_threads(void);
/* Flush denormal floats to zero in the calling thread (vcm_threads_init does it for the
 * caller and the OpenMP pool; tensor/threads.c says why). */
void vcm_flush_denormals(void);
/* Most tiles one gemm is cut into (tensor/op_matmul.c): the results depend on it, never
 * on the thread count. Default: the machine's online cores as a power of two ≤ 16, or
 * VCM_GEMM_TILES. Set n (rounded down to a power of two; <= 0 restores the default)
 * before any work, as tests do to cover more tilings; returns the value in force. */
int vcm_gemm_max_tiles(void);
int vcm_gemm_set_max_tiles(int n);
/* The OpenBLAS kernel set in use ("SkylakeX", "Haswell", ...). */
const char *vcm_blas_core(void);
/* When OpenBLAS fell back to its generic kernels on a CPU it did not recognise but
 * that has AVX2/AVX-512, the OPENBLAS_CORETYPE value that fits it; else NULL (also
 * when OPENBLAS_CORETYPE is already set). The vcm command re-executes itself with it. */
const char *vcm_blas_preferred_core(void);

/* A team of spinning threads (tensor/team.c) for many short dependent steps, where an
 * OpenMP region per step costs more than the step (decoding a token). Runs
 * fn(arg, t, n) on n = vcm_threads() threads, the caller being t = 0; nested or
 * concurrent runs get n = 1, so fn must split its work by (t, n) into pieces whose
 * results do not depend on n. vcm_team_barrier(n) (inside fn) waits for all n. */
typedef void (*VcmTeamFn)(void *arg, int t, int n);
void vcm_team_run(VcmTeamFn fn, void *arg);
void vcm_team_barrier(int n);
/* On a busy machine the team runs alone for a while (tensor/team.c); tests that must
 * see every run on all threads turn that off with 0. */
void vcm_team_adaptive(int on);

/* ---------------------------------------------------------------- arena */

/* A bump allocator made of blocks. It grows during the first step and is reused
 * afterwards (reset keeps the blocks), so a training loop does no malloc after step 1. */
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    ArenaBlock *head;     /* block being filled */
    ArenaBlock *blocks;   /* all blocks, oldest first */
    size_t block_size;    /* default size of a new block */
    size_t used;          /* bytes handed out since the last reset */
    size_t peak;          /* max of used over the arena's life */
} Arena;

int arena_init(Arena *a, size_t block_size);
void *arena_alloc(Arena *a, size_t bytes);       /* 64-byte aligned, uninitialised; NULL + error */
void arena_reset(Arena *a);
void arena_free(Arena *a);

/* ---------------------------------------------------------------- tensor */

#define VCM_MAXDIM 4

typedef struct Tensor {
    float *data;
    float *grad;              /* NULL: no gradient needed */
    /* An op's output gradient starts "unset" (no values, not even zeros: zeroing every
     * activation gradient was 7% of a training step): *grad_unset != 0 until the first
     * backward kernel that reaches it writes it whole (grad_overwrite) or zeroes it to
     * add into it (grad_accumulate). Views (op_reshape) share the flag; NULL = set. */
    uint8_t *grad_unset;
    uint8_t unset_flag;       /* the flag grad_unset points to for a tensor owning its grad */
    int ndim;
    int shape[VCM_MAXDIM];
    size_t n;                 /* number of elements */
} Tensor;

/* Number of elements of a shape. */
size_t shape_numel(int ndim, const int *shape);
/* Rows = product of all dims but the last; cols = the last dim. */
static inline size_t tensor_rows(const Tensor *t) { return t->n / (size_t)t->shape[t->ndim - 1]; }
static inline int tensor_cols(const Tensor *t) { return t->shape[t->ndim - 1]; }
int tensor_same_shape(const Tensor *a, const Tensor *b);
/* "[2, 3, 5]" into buf, for error messages. */
const char *shape_str(const Tensor *t, char *buf, size_t size);

/* ---------------------------------------------------------------- graph / tape */

typedef struct Node Node;
typedef void (*BackwardFn)(Node *node);

/* One recorded op. `saved` points at arena memory the backward needs
 * (e.g. layernorm's mean and rstd); ints/floats hold small attributes. */
struct Node {
    BackwardFn backward;
    const char *name;
    Tensor *out;
    Tensor *in[4];
    void *saved;
    void *saved2;
    const int32_t *ids;       /* integer inputs (token ids, targets) kept alive by the caller */
    int iattr[6];
    float fattr[2];
};

typedef struct Graph {
    Arena arena;
    Node *nodes;
    int n_nodes, cap_nodes;
    int grad_enabled;         /* record nodes (training) or not (inference) */
    int failed;               /* sticky: an op failed since the last reset */
    int poison;               /* VCM_POISON_GRADS set: unset gradients start as NaN */
} Graph;

int graph_init(Graph *g, size_t arena_block_size);
void graph_free(Graph *g);
/* Forget the tape and reuse the arena for the next step. */
void graph_reset(Graph *g);
/* Seed d(loss)/d(loss) = 1 (loss must have one element) and run the tape backwards.
 * Returns VCM_OK or VCM_ERR. */
int graph_backward(Graph *g, Tensor *loss);
/* The same, calling timed(node, milliseconds, ctx) after each node's backward (for
 * profiling: bench_model --profile). */
typedef void (*NodeTimeFn)(const Node *n, double ms, void *ctx);
int graph_backward_timed(Graph *g, Tensor *loss, NodeTimeFn timed, void *ctx);

/* Internal helpers the op files use (public because ops live in several files). */
Tensor *graph_tensor(Graph *g, int ndim, const int *shape, int with_grad);
Node *graph_push(Graph *g, const char *name, BackwardFn fn, Tensor *out);
int graph_fail(Graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when an op's output must carry a gradient (recording on, some input has one). */
int graph_wants_grad(const Graph *g, const Tensor *a, const Tensor *b, const Tensor *c);
/* An op's output gradient buffer, unset (see Tensor.grad_unset). graph_tensor does this
 * with with_grad; ops that allocate y->grad themselves call it. Returns VCM_OK/VCM_ERR. */
int graph_grad_alloc(Graph *g, Tensor *t);
/* Backward kernels call one of these for every input gradient before touching it.
 * grad_overwrite(t): 1 when t->grad holds no values yet, and the caller promises to write
 * every element of it with = (it then counts as set); 0: add into it as usual. Decide
 * once, outside any parallel region, and before another input's gradient that may be
 * the same tensor. grad_accumulate(t): for kernels that add into part of it: zeroes it
 * first if it was unset. */
int grad_overwrite(Tensor *t);
void grad_accumulate(Tensor *t);

/* Tensors for inputs and tests: from the arena; zeroed; with_grad allocates a zeroed grad. */
Tensor *tensor_new(Graph *g, int ndim, const int *shape, int with_grad);
Tensor *tensor_1d(Graph *g, int a, int with_grad);
Tensor *tensor_2d(Graph *g, int a, int b, int with_grad);
Tensor *tensor_3d(Graph *g, int a, int b, int c, int with_grad);
Tensor *tensor_4d(Graph *g, int a, int b, int c, int d, int with_grad);

/* A tensor over caller memory (inputs such as images): no copy, no gradient. The
 * data must outlive the graph's use of it. */
Tensor *tensor_wrap(Graph *g, float *data, int ndim, const int *shape);

/* Views: share data and grad, no node needed. */
Tensor *op_reshape(Graph *g, Tensor *x, int ndim, const int *shape);
/* Rows [start, start+len) of the leading dim. */
Tensor *op_slice0(Graph *g, Tensor *x, int start, int len);

/* ---------------------------------------------------------------- ops
 * Broadcasting: for add/sub/mul, b's shape equals a's or is a suffix of it
 * (b is repeated over a's leading dims). The output has a's shape. */
Tensor *op_add(Graph *g, Tensor *a, Tensor *b);
Tensor *op_sub(Graph *g, Tensor *a, Tensor *b);
Tensor *op_mul(Graph *g, Tensor *a, Tensor *b);
Tensor *op_scale(Graph *g, Tensor *a, float s);

/* Batched matmul: a [..., M, K] (or [..., K, M] with ta), b [..., K, N] (or [..., N, K]
 * with tb). Leading dims of a and b are equal, or b is 2-D and shared by every batch. */
Tensor *op_matmul(Graph *g, Tensor *a, Tensor *b, int ta, int tb);
/* y = x·Wᵀ + b: x [..., in], W [out, in], b [out] or NULL. */
Tensor *op_linear(Graph *g, Tensor *x, Tensor *W, Tensor *b);
/* r + x·Wᵀ + b, r shaped as the output: a layer added to a residual stream. The sum is
 * built in the gemm's output (its rows start as r + b), which saves op_add's pass over
 * the rows forward and one of its two copies of the gradient backward. */
Tensor *op_linear_residual(Graph *g, Tensor *x, Tensor *W, Tensor *b, Tensor *r);
/* Rows of W [V, D] picked by ids (n ids) → shape [out_shape..., D].
 * ids must stay alive until backward. Out-of-range ids fail. */
Tensor *op_embedding(Graph *g, Tensor *W, const int32_t *ids, int ndim_ids, const int *ids_shape);
/* Over the last dim. w, b: [C]. */
Tensor *op_layernorm(Graph *g, Tensor *x, Tensor *w, Tensor *b, float eps);
/* GELU, tanh form: 0.5 x (1 + tanh(√(2/π)(x + 0.044715 x³))). */
Tensor *op_gelu(Graph *g, Tensor *x);
/* Softmax over the last dim. */
Tensor *op_softmax(Graph *g, Tensor *x);
/* Multi-head scaled-dot-product attention.
 * qkv [B, T, 3D] laid out as q | k | v (each D = H·hd, head h at columns h·hd…);
 * key_valid: NULL, or [B·T] bytes, 0 = this key position may not be attended
 * (a query row whose keys are all masked gets zeros).
 * causal: query t sees keys ≤ t. Output [B, T, D]. Scores are computed per
 * (batch, head) and block of queries; with a backward to come, the probabilities of the
 * keys each block sees are kept for it (about half of B·H·T² floats when causal). */
Tensor *op_attention(Graph *g, Tensor *qkv, int n_heads, int causal, const uint8_t *key_valid);
/* The same for the queries at positions q0 … T−1 only (keys and values: all T), output
 * [B, T−q0, D], row i being query q0 + i; the causal mask still uses the position. For a
 * last layer whose other rows nobody reads. */
Tensor *op_attention_from(Graph *g, Tensor *qkv, int n_heads, int causal, const uint8_t *key_valid, int q0);
/* Mean cross-entropy over rows whose target != ignore_index. logits [N, V]
 * (or [..., V]), targets: N ids. Output: a scalar (shape [1]). If every row is
 * ignored the loss is 0. */
Tensor *op_cross_entropy(Graph *g, Tensor *logits, const int32_t *targets, int ignore_index);
/* Concatenate along dim 1: tensors [B, T_i, D] → [B, ΣT_i, D]. */
Tensor *op_concat_seq(Graph *g, Tensor **xs, int n);
/* Positions [start, start+len) along dim 1 of [B, T, D] → [B, len, D] (copied). */
Tensor *op_slice_seq(Graph *g, Tensor *x, int start, int len);
/* Mean over dimension `dim` (removed from the shape; a 1-D input gives shape [1]). */
Tensor *op_mean(Graph *g, Tensor *x, int dim);
/* Images [B, C, H, W] → patches [B, (H/P)(W/P), C·P·P], each patch flattened in
 * (channel, row, column) order: the same numbers as a Conv2d with weight [D, C, P, P]. */
Tensor *op_patches(Graph *g, Tensor *img, int P);

#endif
