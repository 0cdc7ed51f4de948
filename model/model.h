/* model/ — the student (DESIGN.md §4) assembled from nn/ layers, vit/ RoIAlign and
 * the decoder: ViT encoder → region tokens → causal decoder with tied output.
 * The public header of the folder. (model/ sits between train/ and {vit, lm}: the
 * student needs both, and neither of those may depend on the other; docs/MODEL.md.) */
#ifndef VCM_MODEL_H
#define VCM_MODEL_H

#include "nn/nn.h"
#include "vit/vit.h"

/* How the model learns where the regions are. */
enum { REGION_INPUT_ROI = 0, REGION_INPUT_DRAW = 1, REGION_INPUT_NONE = 2 };

#define MODEL_MAX_REGIONS 16
#define MODEL_ROI_CELLS 4      /* RoIAlign output 2×2 → 4 tokens per region */

typedef struct ModelConfig {
    char name[16];
    int image, patch;                     /* input image side, patch side */
    int vit_d, vit_layers, vit_heads;
    int dec_d, dec_layers, dec_heads;
    int vocab;
    int max_text;                         /* text tokens including <bos>/<eos> */
    int region_input;                     /* REGION_INPUT_* */
} ModelConfig;

/* The named configs (nano, small, base) from one table. VCM_EINPUT for an unknown name. */
int model_config_named(const char *name, ModelConfig *c);
const char *region_input_name(int mode);
int region_input_parse(const char *s, int *mode);      /* "roi" | "draw" | "none" */
static inline int model_grid(const ModelConfig *c) { return c->image / c->patch; }
/* Decoder sequence length: patches + region tokens + text. */
static inline int model_max_seq(const ModelConfig *c) {
    int g = model_grid(c);
    int regions = c->region_input == REGION_INPUT_ROI ? MODEL_MAX_REGIONS * MODEL_ROI_CELLS : 0;
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

typedef struct Student {
    ModelConfig cfg;
    ParamStore ps;
    /* ViT */
    Linear patch_embed;   /* [vit_d, 3·P·P]: a Conv2d with weight [vit_d, 3, P, P] */
    Embedding vit_pos;    /* [G², vit_d] */
    Block *vit_blocks;
    LayerNorm vit_norm;
    /* bridge */
    Linear vis_proj;      /* patch features vit_d → dec_d */
    Linear roi_proj;      /* W_roi: pooled region vector vit_d → dec_d */
    Linear box_proj;      /* W_box: box / image (4) → dec_d */
    /* decoder */
    Embedding tok;        /* [vocab, dec_d], tied with the output layer and with [k] */
    Embedding pos;        /* [max_seq, dec_d] */
    Block *dec_blocks;
    LayerNorm dec_norm;
} Student;

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
Tensor *student_decoder_input(Graph *g, Student *m, const Batch *b, const uint8_t **key_valid);
/* The whole forward pass up to the final LayerNorm of the decoder, text positions
 * only: [B, T, dec_d]. key_valid scratch comes from the graph's arena. */
Tensor *student_hidden(Graph *g, Student *m, const Batch *b);
/* Mean next-token cross-entropy over the positions with a target. */
Tensor *student_loss(Graph *g, Student *m, const Batch *b);
/* Logits at every text position: [B, T, vocab]. */
Tensor *student_logits(Graph *g, Student *m, const Batch *b);

/* Checkpoints of a student (model/student_io.c): the config JSON in the header, the
 * parameters, and with st the training state. load builds the model from the file's
 * config (student_init) and then reads the values; the seed does not matter. */
int student_save(const char *path, const Student *m, const TrainState *st);
int student_load(const char *path, Student *m, TrainState *st);

#endif
