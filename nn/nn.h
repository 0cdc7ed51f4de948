/* nn/ — parameters in one flat buffer, layers, AdamW, LR schedule, initialisation,
 * checkpoints. The public header of the folder.
 *
 * A model is built in two phases:
 *
 *   ParamStore ps; params_init(&ps);
 *   Block blk; block_declare(&blk, &ps, "blocks.0", 128, 4, nn_resid_std(4));   // shapes only
 *   params_alloc(&ps);                     // one allocation per flat buffer
 *   params_init_weights(&ps, seed);        // deterministic initial values
 *   ...
 *   params_unset_grads(&ps);               // (or params_zero_grad) before each step
 *   Tensor *y = block_forward(g, &blk, x, 1, NULL);  ... graph_backward(g, loss);
 *   double norm = params_grad_norm(&ps);  // clipping to 1.0 folded into the update:
 *   adamw_step_scaled(&opt, &ps, lr_at(&sched, step), params_clip_coef(norm, 1.0));
 *
 * Every parameter is a Tensor living outside the arena whose data and grad point into
 * ps.params / ps.grads; the layer structs only hold pointers to those Tensors, so the
 * pointers handed out by the declare functions stay valid until params_free. See
 * docs/NN.md for the initialisation scheme and the optimiser formulas. */
#ifndef VCM_NN_H
#define VCM_NN_H

#include "tensor/tensor.h"

/* ================================================================ parameters
 * (nn/params.c) */

#define NN_NAME_MAX 96        /* bytes of a parameter name, including the NUL */

enum { NN_INIT_ZEROS = 0, NN_INIT_ONES = 1, NN_INIT_NORMAL = 2 };

typedef struct Param {
    char name[NN_NAME_MAX];   /* PyTorch-style: "blocks.0.attn.qkv.weight" */
    Tensor t;                 /* data/grad into the flat buffers once allocated */
    size_t offset;            /* first element in the flat buffers (multiple of 16) */
    int decay;                /* AdamW weight decay applies to this parameter */
    int init;                 /* NN_INIT_* */
    float init_std;           /* for NN_INIT_NORMAL */
} Param;

/* A run of the flat buffer processed as one unit of work by the optimiser and the
 * gradient norm; fixed by the layout, never by the thread count. */
typedef struct ParamChunk {
    size_t off, len;
    int decay;
} ParamChunk;

typedef struct ParamStore {
    Param **p;                /* in declaration order; each Param is its own allocation */
    int n_params, cap_params;
    size_t n;                 /* floats in each flat buffer (with alignment padding) */
    float *params, *grads, *m, *v;   /* NULL until params_alloc */
    ParamChunk *chunks;
    int n_chunks;
    double *partial;          /* one per chunk: scratch for the gradient norm */
    int poison;               /* VCM_POISON_GRADS: params_unset_grads fills NaN */
} ParamStore;

void params_init(ParamStore *ps);
void params_free(ParamStore *ps);
/* Declare a parameter (before params_alloc). Returns its Tensor, whose data/grad are
 * NULL until params_alloc; NULL + vcm_error() on a duplicate or over-long name, a bad
 * shape, out of memory or when the store is already allocated. */
Tensor *params_declare(ParamStore *ps, const char *name, int ndim, const int *shape,
                       int init, float init_std, int decay);
/* Allocate params, grads, m and v (each one 64-byte aligned block, zeroed) and point
 * every parameter's Tensor into them. */
int params_alloc(ParamStore *ps);
/* Back to the declaring state: the flat buffers (and every value in them) are freed,
 * the parameters declared so far stay, more can be declared, then params_alloc again.
 * How a model built by another's init adds its own parameters (the critic's head). */
void params_reopen(ParamStore *ps);
/* NULL when there is no parameter of that name. */
Param *params_find(const ParamStore *ps, const char *name);
Tensor *params_get(const ParamStore *ps, const char *name);
/* Number of parameter values (without the alignment padding). */
size_t params_count(const ParamStore *ps);
void params_zero_grad(ParamStore *ps);
/* For a training step, instead of params_zero_grad: every gradient is marked unset
 * (tensor.h, Tensor.grad_unset), so the first backward kernel to reach a parameter
 * writes its gradient instead of adding to it, and nothing is zeroed in between (a
 * 100 MB memset per step on the small config). A parameter no backward reached still
 * holds old values until params_settle_grads zeroes it; params_grad_norm,
 * params_clip_grad_norm and adamw_step(_scaled) call it first, any other reader of the
 * gradients (the all-reduce) must. Under VCM_POISON_GRADS the values become NaN. */
void params_unset_grads(ParamStore *ps);
void params_settle_grads(ParamStore *ps);
/* Copy `n` floats into the parameter `name`, checking that the shape matches.
 * VCM_EINPUT with a message naming the parameter on a missing name or a wrong shape. */
int params_set(ParamStore *ps, const char *name, int ndim, const int *shape, const float *data);

/* ================================================================ initialisation
 * (nn/init.c) */

#define NN_INIT_STD 0.02f     /* std of weights and embeddings */

/* GPT-2's scaled std for the projections that write into the residual stream
 * (attn.proj, mlp.fc2): NN_INIT_STD / sqrt(2 · n_layers). */
float nn_resid_std(int n_layers);
/* Fill every parameter from its init kind. The value of element i of parameter `name`
 * is a function of (seed, name, i) only: a counter-based generator (splitmix64) with
 * Box–Muller, so adding a parameter never changes the others and the result does not
 * depend on the thread count. Needs params_alloc first. */
int params_init_weights(ParamStore *ps, uint64_t seed);
/* The standard normal used above, exposed for tests: deterministic in (key, i). */
double nn_normal_at(uint64_t key, uint64_t i);
/* The key of a parameter: a hash of the seed and its name. */
uint64_t nn_param_key(uint64_t seed, const char *name);

/* ================================================================ layers
 * (nn/layers.c, nn/block.c)
 * declare functions: register the parameters as "<prefix>.weight" etc. (prefix "" gives
 * plain "weight"); they return VCM_OK or VCM_ERR. forward functions call the ops and,
 * like the ops, return NULL (graph marked failed) on error or a NULL input. */

#define NN_LN_EPS 1e-5f
#define NN_MLP_RATIO 4

/* y = x·Wᵀ + b, W [out, in] (weight decay), b [out] (none; NULL without bias). */
typedef struct Linear { Tensor *w, *b; int in, out; } Linear;
int linear_declare(Linear *l, ParamStore *ps, const char *prefix, int in, int out, int bias, float std);
Tensor *linear_forward(Graph *g, const Linear *l, Tensor *x);
/* r + linear(x), r shaped as the output: a layer that adds into a residual stream
 * (op_linear_residual: one pass fewer than op_add after linear_forward). */
Tensor *linear_forward_residual(Graph *g, const Linear *l, Tensor *x, Tensor *r);

/* Over the last dim; weight ones, bias zeros, eps 1e-5, no weight decay. */
typedef struct LayerNorm { Tensor *w, *b; int d; float eps; } LayerNorm;
int layernorm_declare(LayerNorm *l, ParamStore *ps, const char *prefix, int d);
Tensor *layernorm_forward(Graph *g, const LayerNorm *l, Tensor *x);

/* A table [n, d] ("<prefix>.weight"), normal(0, std), no weight decay. Used for tokens
 * (ids → rows, and tied output logits x·Eᵀ) and for learned positions. */
typedef struct Embedding { Tensor *w; int n, d; } Embedding;
int embedding_declare(Embedding *e, ParamStore *ps, const char *prefix, int n, int d, float std);
/* Rows picked by ids → [ids_shape..., d]; ids stay alive until backward. */
Tensor *embedding_forward(Graph *g, const Embedding *e, const int32_t *ids, int ndim_ids, const int *ids_shape);
/* x [B, T, d] + rows 0..T-1 of the table (learned positions). */
Tensor *embedding_add_positions(Graph *g, const Embedding *e, Tensor *x);
/* x [..., d] · Eᵀ → [..., n]: the tied output layer. */
Tensor *embedding_logits(Graph *g, const Embedding *e, Tensor *x);

/* Multi-head self-attention: qkv = Linear(d → 3d) laid out q | k | v (head h at
 * columns h·hd…), op_attention, proj = Linear(d → d). Names "<prefix>.qkv.*",
 * "<prefix>.proj.*". */
typedef struct Attention { Linear qkv, proj; int d, n_heads; } Attention;
int attention_declare(Attention *a, ParamStore *ps, const char *prefix, int d, int n_heads, float proj_std);

/* fc1 (d → hidden), GELU (tanh), fc2 (hidden → d). Names "<prefix>.fc1.*", "<prefix>.fc2.*". */
typedef struct Mlp { Linear fc1, fc2; } Mlp;
int mlp_declare(Mlp *m, ParamStore *ps, const char *prefix, int d, int hidden, float fc2_std);

/* Pre-LN transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)); MLP hidden 4d.
 * Names "<prefix>.norm1.*", "<prefix>.attn.*", "<prefix>.norm2.*", "<prefix>.mlp.*".
 * resid_std: std of attn.proj and mlp.fc2 weights (NN_INIT_STD, or nn_resid_std(L)). */
typedef struct Block { LayerNorm norm1; Attention attn; LayerNorm norm2; Mlp mlp; } Block;
int block_declare(Block *b, ParamStore *ps, const char *prefix, int d, int n_heads, float resid_std);
Tensor *block_forward(Graph *g, const Block *b, Tensor *x, int causal, const uint8_t *key_valid);
/* Only the rows q0 … T−1 of block_forward's output, [B, T−q0, d], without computing the
 * others (all rows still give keys and values). key_valid NULL or [B·T] bytes (0: key
 * not attended). */
Tensor *block_forward_from(Graph *g, const Block *b, Tensor *x, int causal, const uint8_t *key_valid, int q0);
/* The rest of block_forward_from once qkv = the qkv layer of norm1(x) is known: for a
 * caller that also keeps the keys and values (the KV-cache prefill). */
Tensor *block_forward_qkv(Graph *g, const Block *b, Tensor *x, Tensor *qkv, int causal, const uint8_t *key_valid,
                          int q0);
/* n blocks named "<prefix>.0", "<prefix>.1", … and run in order. */
int blocks_declare(Block *b, int n, ParamStore *ps, const char *prefix, int d, int n_heads, float resid_std);
Tensor *blocks_forward(Graph *g, const Block *b, int n, Tensor *x, int causal, const uint8_t *key_valid);

/* ================================================================ optimiser
 * (nn/optim.c) — PyTorch semantics, one pass over the flat buffers. */

typedef struct AdamW {
    double beta1, beta2, eps, weight_decay;   /* doubles, as PyTorch's Python floats */
    long step;                /* updates done so far (PyTorch's state["step"]) */
} AdamW;

/* torch.optim.AdamW's defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
AdamW adamw_default(void);
/* One update with learning rate lr (step counts from 1):
 *   p ← p·(1 − lr·wd)                      (only parameters with decay)
 *   m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²
 *   p ← p − (lr / (1−β1^t)) · m / (√v / √(1−β2^t) + eps)
 * Elementwise, so identical for any thread count. Needs params_alloc. */
int adamw_step(AdamW *opt, ParamStore *ps, double lr);
/* The same with every gradient read as g·grad_scale (rounded to float, as the scaling
 * params_clip_grad_norm does in place): clipping folded into the update, which saves a
 * read and a write of every gradient. The gradients themselves are left as they are. */
int adamw_step_scaled(AdamW *opt, ParamStore *ps, double lr, float grad_scale);

/* Global L2 norm of all gradients, accumulated in double chunk by chunk and the
 * chunk sums added in order (the same for any thread count). */
double params_grad_norm(ParamStore *ps);
/* As torch.nn.utils.clip_grad_norm_: when norm > max_norm, scale every gradient by
 * max_norm / (norm + 1e-6). Returns the norm before clipping. A non-finite norm is
 * returned without touching the gradients (the caller should skip the step);
 * max_norm <= 0 only measures. */
double params_clip_grad_norm(ParamStore *ps, double max_norm);
/* The factor params_clip_grad_norm scales by for this norm: 1 when it does not clip
 * (norm <= max_norm, max_norm <= 0, or a non-finite norm). With params_grad_norm and
 * adamw_step_scaled: the same update as clip-then-step, one pass fewer. */
float params_clip_coef(double norm, double max_norm);

/* Linear warmup then cosine decay, for step = 0, 1, … (the index of the update):
 *   step < warmup:        max_lr · (step + 1) / warmup
 *   warmup ≤ step ≤ total: min_lr + ½ (max_lr − min_lr)(1 + cos(π (step − warmup) / (total − warmup)))
 *   step > total:         min_lr */
typedef struct LrSchedule { double max_lr, min_lr; long warmup, total; } LrSchedule;
double lr_at(const LrSchedule *s, long step);

/* ================================================================ checkpoints
 * (nn/checkpoint.c, nn/safetensors.c; written through base/'s AtomicFile) — docs/CHECKPOINT.md has the
 * byte layout. Every failure is VCM_EINPUT (damaged or mismatched file) or VCM_ERR
 * (I/O, memory) with a message "PATH: problem". */


#define CKPT_VERSION 1
#define CKPT_RNG_WORDS 8

/* What a trainer needs to continue bit-exactly, besides the weights. The moments m
 * and v are the ParamStore's own buffers (ps->m, ps->v). */
typedef struct TrainState {
    int64_t step;                     /* training steps done */
    uint64_t rng[CKPT_RNG_WORDS];     /* generator state; unused words 0 */
    int64_t epoch, position;          /* data cursor: epoch and sample index in it */
    uint64_t shuffle_seed;            /* the permutation of the current epoch */
    AdamW opt;                        /* hyperparameters and AdamW's own step */
    char *options_json;               /* free-form training options; save: NULL = none;
                                         load: malloc'd (train_state_free) */
} TrainState;
void train_state_free(TrainState *st);

/* Write params (and, with st, the training state and ps->m, ps->v) atomically.
 * config_json is opaque here: the caller's text, returned as is by the readers. */
int checkpoint_save(const char *path, const char *config_json, const ParamStore *ps,
                    const TrainState *st);
/* The config text (malloc'd, NUL-terminated) after checking the header: build the
 * model from it, then checkpoint_load. */
int checkpoint_read_config(const char *path, char **config_json);
/* Load into an allocated ParamStore: every model parameter must be in the file with
 * the same shape and no file tensor may be missing from the model; every CRC is
 * checked. With st, the training state and the moments are loaded too (the file must
 * have them). On failure the values in ps/st are unspecified. */
int checkpoint_load(const char *path, ParamStore *ps, TrainState *st);

/* The reader under checkpoint_load, for tools that stream the tensors without a
 * model (vcm export). open reads and checks the header (magic, version, size, CRC,
 * table bounds). */
typedef struct CkptTensor {
    char name[NN_NAME_MAX];
    int ndim, shape[VCM_MAXDIM];
    uint64_t offset, nbytes;          /* in the file */
    uint32_t crc;
} CkptTensor;
typedef struct CheckpointReader {
    char *path;
    FILE *f;
    uint32_t version;
    uint64_t file_size, header_size;
    char *config_json;
    int n_tensors;
    CkptTensor *tensors;
    int has_train_state;
    TrainState st;                    /* when has_train_state (options_json owned here) */
    uint64_t m_offset, v_offset, moments_bytes;
    uint32_t m_crc, v_crc;
} CheckpointReader;
int checkpoint_open(CheckpointReader *r, const char *path);
/* Tensor i into dst (tensors[i].nbytes bytes), checking its CRC. */
int checkpoint_read_tensor(CheckpointReader *r, int i, float *dst);
int checkpoint_find(const CheckpointReader *r, const char *name);   /* index or -1 */
void checkpoint_close(CheckpointReader *r);

/* safetensors (the format of Hugging Face's library: u64 LE header length, a JSON
 * header {"name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]},
 * "__metadata__": {...}}, then the data). metadata: "key", "value", ..., NULL (or
 * NULL for none). Writing is atomic as above. */
typedef struct SafetensorsEntry { const char *name; int ndim; const int *shape; } SafetensorsEntry;
/* Fills dst with the float32 values of tensor i (called once per tensor, in order). */
typedef int (*SafetensorsFill)(void *ctx, int i, float *dst);
int safetensors_write(const char *path, int n, const SafetensorsEntry *e, SafetensorsFill fill,
                      void *ctx, const char *const *metadata);
int safetensors_save(const char *path, const ParamStore *ps, const char *const *metadata);
/* Every F32 tensor of the file into the parameter of the same name: names and shapes
 * must match both ways (a missing or extra tensor is an error). The header length and
 * every data_offsets are checked against the file size first (a file cut short is
 * "truncated"); then every mismatch is found before any value is copied. */
int safetensors_load_into(const char *path, ParamStore *ps);
/* What did not fit, one line per tensor ("tensor NAME ...", no path; "\n" after each):
 * missing from the file, not a parameter of the model, another shape, or unreadable
 * (a dtype other than F32, data_offsets that do not hold the shape). */
typedef struct SafetensorsReport {
    int n_missing, n_extra, n_shape, n_other;
    char *text;                       /* malloc'd, NULL when nothing is wrong */
    int oom;                          /* internal: a line could not be added */
} SafetensorsReport;
/* safetensors_load_into that lists every mismatch in *rep (VCM_EINPUT, vcm_error() a
 * summary with the counts); load_into puts them in vcm_error() itself. A damaged file
 * (no header, bad JSON, truncated) fails with its own message and an empty report.
 * Free rep with safetensors_report_free whatever the result. */
int safetensors_load_report(const char *path, ParamStore *ps, SafetensorsReport *rep);
void safetensors_report_free(SafetensorsReport *rep);
/* The string under key in the file's __metadata__ (*value malloc'd; NULL when absent),
 * after the same header checks as loading. */
int safetensors_metadata(const char *path, const char *key, char **value);

#endif
