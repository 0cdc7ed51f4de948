/* model/ — the student (DESIGN.md §4) wired from vit/ (ViT encoder, region tokens,
 * drawn-box prompt) and lm/ (causal decoder, KV cache): ViT → region tokens → causal
 * decoder with tied output; the named configs; the critic; checkpoint kinds.
 * The public header of the folder. (model/ sits between train/ and {vit, lm}: the
 * student needs both, and neither of those may depend on the other; docs/MODEL.md.) */
#ifndef VCM_MODEL_H
#define VCM_MODEL_H

#include "nn/nn.h"
#include "vit/vit.h"
#include "lm/lm.h"

/* How the model learns where the regions are. */
enum { REGION_INPUT_ROI = 0, REGION_INPUT_DRAW = 1, REGION_INPUT_NONE = 2, REGION_INPUT_TEXT = 3 /* no image: [k] → its description */ };

#define MODEL_MAX_REGIONS 16

typedef struct ModelConfig {
    char name[16];
    int image, patch;                     /* input image side, patch side */
    int vit_d, vit_layers, vit_heads;
    int dec_d, dec_layers, dec_heads;
    int vocab;
    int max_text;                         /* text tokens including <bos>/<eos> */
    int region_input;                     /* REGION_INPUT_* */
    int roi_pixels;                       /* > 0: one more token per region, the region's
                                             pixels RoIAligned to roi_pixels² (docs/MODEL.md) */
    int mention;                          /* MENTION_*: what a text "[k]" carries of its region */
    int region_id_scale;                  /* > 1: region tokens carry s · E_tok["[k]"] (0, 1: plain) */
} ModelConfig;

/* mention: MENTION_RAW | MENTION_NORM (vit/vit.h, region tokens). */
/* Region tokens (RoI cells and pixel token) add their id embedding scaled by
 * region_id_scale: at 1 the id row (norm ~1) is small beside the pixel token's content
 * (norm ~6), so an answer's "[k]" found region k's tokens poorly by attention and often read
 * another region's content (docs/MODEL.md, issue 13). Checkpoints without the field: 1. */
#define MODEL_REGION_ID_SCALE 4

/* The named configs (nano, small, base) from one table. VCM_EINPUT for an unknown name. */
int model_config_named(const char *name, ModelConfig *c);
const char *region_input_name(int mode);
int region_input_parse(const char *s, int *mode);      /* "roi" | "draw" | "none" */
static inline int model_grid(const ModelConfig *c) { return c->image / c->patch; }
/* Decoder sequence length: patches + region tokens + text. */
/* Tokens a region contributes: 4 feature cells, plus its pixel token when roi_pixels > 0. */
static inline int model_region_tokens(const ModelConfig *c) { return REGION_ROI_CELLS + (c->roi_pixels > 0); }
static inline int model_max_seq(const ModelConfig *c) {
    int g = model_grid(c);
    int regions = c->region_input == REGION_INPUT_ROI ? MODEL_MAX_REGIONS * model_region_tokens(c) : 0;
    return g * g + regions + c->max_text;
}
/* The config as a JSON object (no spaces, fixed key order) and back. from_json checks
 * every field and fails with VCM_EINPUT naming the field. */
int model_config_to_json(const ModelConfig *c, char *buf, size_t size);
int model_config_from_json(const char *json, ModelConfig *c);

/* One batch as the model sees it (built by train/ from data/ records). */
typedef struct Batch {
    int B;
    float *images;        /* [B, 3, image, image], normalised (mean 0.5, std 0.5) */
    int R;                /* region slots per sample (max over the batch); 0: none */
    float *boxes;         /* [B, R, 4] x0, y0, x1, y1 in model-image pixels */
    int *n_regions;       /* [B] real regions; slots past it are padding */
    int T;                /* text positions (padded) */
    int32_t *tokens;      /* [B, T] input ids, <bos> first, <pad> after the end */
    int32_t *targets;     /* [B, T] next-token targets; -1 = no loss at that position */
} Batch;

/* The parts, in the order their parameters are declared (which fixes the checkpoint's
 * tensor order): vit.*, bridge.vis_proj, bridge.{roi,box,pix}_proj and
 * bridge.mention_norm, dec.*. The text-only baseline has no vit and no bridge. */
typedef struct Student {
    ModelConfig cfg;
    ParamStore ps;
    Vit vit;              /* vit/: patch embedding, positions, blocks, final LayerNorm */
    Linear vis_proj;      /* bridge: patch features vit_d → dec_d */
    RegionTokens regions; /* vit/: the region tokens and what a mention carries */
    Decoder dec;          /* lm/: tok (tied with the output and the region ids), pos, blocks */
    char *tokenizer_text;  /* the .tok text the model was trained with (malloc'd), or NULL;
                              saved in and loaded from the checkpoint header */
} Student;

/* The model's input from an image already resized to cfg->image (rgb, changed in place
 * when cfg->region_input is draw: the regions are drawn on it with their colours, box
 * k in the colour of id k), normalised CHW into out (3·image² floats). */
void model_image(const ModelConfig *cfg, uint8_t *rgb, const float (*boxes)[4], int n_boxes, float *out);

/* Declare and allocate every parameter, initialised from seed. */
int student_init(Student *m, const ModelConfig *cfg, uint64_t seed);
void student_free(Student *m);

/* Position id of the first text token: patches and the 16 region slots come first. */
static inline int student_text_pos0(const ModelConfig *c) {
    return model_max_seq(c) - c->max_text;
}
/* The decoder's input sequence [B, G² + 4R + T, dec_d] (patch features, region tokens,
 * text embeddings, plus positions) and the key mask for the padding region slots
 * (*key_valid: [B·L] bytes in the arena, or NULL when every key is valid). This is
 * what the KV-cache inference path starts from. */
/* region_vecs (may be NULL): set to the per-slot vectors [B, R, dec_d] that every
 * mention "[k]" in the text carries (roi_pixels > 0), else NULL. */
Tensor *student_decoder_input(Graph *g, Student *m, const Batch *b, const uint8_t **key_valid,
                              Tensor **region_vecs);
/* The whole forward pass up to the final LayerNorm of the decoder, text positions
 * only: [B, T, dec_d]. key_valid scratch comes from the graph's arena. */
Tensor *student_hidden(Graph *g, Student *m, const Batch *b);
/* Mean next-token cross-entropy over the positions with a target. */
Tensor *student_loss(Graph *g, Student *m, const Batch *b);
/* Logits at every text position: [B, T, vocab]. */
Tensor *student_logits(Graph *g, Student *m, const Batch *b);

/* Checkpoints of a student (model/student_io.c): the config JSON in the header (with
 * the tokenizer's text under "tokenizer" when m->tokenizer_text is set), the
 * parameters, and with st the training state. load builds the model from the file's
 * config (student_init), reads the values and the tokenizer text if there is one. */
int student_save(const char *path, const Student *m, const TrainState *st);
int student_load(const char *path, Student *m, TrainState *st);
/* The shared halves (student_io.c): kind NULL writes a student's header, "critic" a
 * critic's; model_checkpoint_config reads the config and the tokenizer text (*tok,
 * malloc'd or NULL) of a checkpoint of kind want_kind and refuses any other kind with
 * a message that names both. */
int model_checkpoint_save(const char *path, const char *kind, const Student *m, const TrainState *st);
int model_checkpoint_config(const char *path, const char *want_kind, ModelConfig *cfg, char **tok);
/* The tokenizer saved in a student checkpoint; VCM_EINPUT when it holds none. */
int student_tokenizer(const Student *m, const char *path, Tokenizer *tok);

/* ================================================================ inference
 * (model/infer.c, model/infer_score.c; docs/INFERENCE.md) The student on lm/'s KV cache:
 * infer_prefill builds the decoder input of one sample (patch features, region tokens,
 * prompt tokens — exactly the layers of the full forward) and prefills the cache; a
 * generated "[k]" then carries its region's vector as the prompt's mentions do. The
 * cache's state (logits, len, prefix, text_len, prompt_len) is in in->kv. */
typedef struct Infer {
    Student *m;
    KvCache kv;
    float *region_vec;    /* [MODEL_MAX_REGIONS][dec_d]: what a generated "[k]" carries */
} Infer;

int infer_init(Infer *in, Student *m);
void infer_free(Infer *in);
/* One sample (b->B == 1): image, regions and the prompt tokens b->tokens[0..T), <bos>
 * first; b->targets is not read. Fills the cache; in->kv.logits predicts token T. */
int infer_prefill(Infer *in, const Batch *b);
/* kv_step, kv_rewind, kv_generate, kv_continuation_logprob on the student's cache. */
static inline int infer_step(Infer *in, int32_t token) { return kv_step(&in->kv, token); }
static inline void infer_rewind(Infer *in) { kv_rewind(&in->kv); }
static inline int infer_generate(Infer *in, const GenParams *p, uint64_t *rng, int32_t *out, int cap, int *n_out,
                                 double *logprob) {
    return kv_generate(&in->kv, p, rng, out, cap, n_out, logprob);
}
static inline int infer_continuation_logprob(Infer *in, const int32_t *ids, int n, double *sum) {
    return kv_continuation_logprob(&in->kv, ids, n, sum);
}

/* Teacher-forced scoring (model/infer_score.c): lp[i·T + t] = log p(targets[i, t] |
 * image, regions, tokens[i, 0..t]) in double for every target >= 0, and 0 where the
 * target is -1. g: a graph with grad_enabled = 0 (its arena is used, not reset). */
int student_target_logprobs(Graph *g, Student *m, const Batch *b, double *lp);

/* ================================================================ critic
 * (model/critic.c) docs/CRITIC.md
 *
 * The student's trunk (ViT, region tokens, decoder, final LayerNorm: student_hidden)
 * reading the whole text, a masked mean over the text positions that carry a target
 * in the batch (<bos> and every text token; padding excluded), and a linear head
 * dec_d → 2: logits of (reject, accept). The head also sees the trunk's own surprise at
 * the text: its language model's mean next-token cross-entropy over the same positions
 * (tied output layer), through "critic.lm" (1 → 2, no bias):
 *   logits = head(mean hidden) + lm(mean NLL)
 * Loss: cross-entropy against the majority of the votes; score = softmax(logits)[accept]
 * = P(accept). The head's parameters ("critic.head.*", "critic.lm.weight") live in the
 * trunk's ParamStore, so the optimiser, clipping and the checkpoint see one store. */
enum { CRITIC_REJECT = 0, CRITIC_ACCEPT = 1 };

typedef struct Critic {
    Student s;            /* the trunk; s.ps holds every parameter, the head's too */
    Linear head;          /* dec_d → 2 */
    Linear lm;            /* mean NLL of the text (1) → 2, no bias */
} Critic;

/* critic.lm's weight after critic_init_from_student: (+w, −w), so the critic starts as
 * the student's own likelihood judge, logit(accept) − logit(reject) = −2w · mean NLL
 * (+ the head). From scratch it starts at 0: a random model's surprise means nothing. */
#define CRITIC_LM_INIT 5.0f

/* Every parameter initialised from seed (the trunk's values equal student_init's with
 * the same seed: an element's value depends only on the seed and its name). */
int critic_init(Critic *c, const ModelConfig *cfg, uint64_t seed);
void critic_free(Critic *c);
/* Copy every trunk parameter (and the tokenizer text) of a student with the same
 * config into the critic; the head is left as it is, critic.lm set to ±CRITIC_LM_INIT.
 * VCM_EINPUT on a mismatch. */
int critic_init_from_student(Critic *c, const Student *s);
/* The pooled text vector [B, dec_d] (*nll: the mean NLL [B, 1]) and the logits [B, 2].
 * A sample whose targets are all -1 pools nothing (its vector and NLL are 0). */
Tensor *critic_pooled(Graph *g, Critic *c, const Batch *b, Tensor **nll);
Tensor *critic_logits(Graph *g, Critic *c, const Batch *b);
/* Mean cross-entropy over the batch; labels[i] is CRITIC_ACCEPT or CRITIC_REJECT. */
Tensor *critic_loss(Graph *g, Critic *c, const Batch *b, const int32_t *labels);
/* P(accept) of logits [B, 2] into p[B], in double. */
void critic_probs(const Tensor *logits, double *p);

/* Checkpoints: the student's format with "kind":"critic" in the header JSON (and the
 * tokenizer text under "tokenizer"). critic_load refuses a file without that kind
 * (a student checkpoint) with a message that says so. */
int critic_save(const char *path, const Critic *c, const TrainState *st);
int critic_load(const char *path, Critic *c, TrainState *st);
/* "critic", "student" (a header without "kind") or NULL + VCM_EINPUT/VCM_ERR. */
int model_checkpoint_kind(const char *path, char *kind, size_t size);

#endif
