/* vit/ — the image side of the student: the ViT encoder (patch embedding, positions,
 * blocks), RoIAlign, the region tokens and what a mention of a region carries, and the
 * drawn-box prompt. The public header of the folder. vit/ uses nn/ layers and data/'s
 * images; it knows nothing of the decoder but the embedding it is handed. */
#ifndef VCM_VIT_H
#define VCM_VIT_H

#include "data/data.h"
#include "nn/nn.h"

/* RoIAlign with torchvision.ops.roi_align's semantics (forward and backward, the same
 * sampling points, clamping and order of additions).
 *
 * feat:  [B, H·W, C] — a feature grid stored as tokens, token index y·W + x (how the
 *        ViT emits it); torchvision's NCHW input[b, c, y, x] is feat[b, y·W + x, c].
 * boxes: R rows of 5 floats (batch index, x0, y0, x1, y1) in input-image pixels.
 * Output [R, PH·PW, C]: pooled cell (ph, pw) at row ph·PW + pw. */
typedef struct RoiAlignParams {
    int H, W;              /* feature grid */
    int pooled_h, pooled_w;
    float spatial_scale;   /* feature cells per image pixel (1/patch) */
    int sampling_ratio;    /* samples per bin side; <= 0: adaptive ceil(roi/pooled) */
    int aligned;           /* 1: pixel centres at +0.5 (shift by -0.5) */
} RoiAlignParams;

void vcm_roi_align_forward(float *out, const float *feat, const float *boxes, int R, int C,
                       const RoiAlignParams *p);
/* Accumulates into dfeat (+=). */
void vcm_roi_align_backward(float *dfeat, const float *dout, const float *boxes, int R, int C,
                        const RoiAlignParams *p);

/* The graph op. boxes must stay alive until backward. Box batch indices outside
 * [0, B) fail. */
Tensor *op_roi_align(Graph *g, Tensor *feat, int H, int W, const float *boxes, int R,
                     int pooled_h, int pooled_w, float spatial_scale, int sampling_ratio,
                     int aligned);

/* ================================================================ ViT encoder
 * (vit/vit_encoder.c) patches → linear → + positions → bidirectional blocks → LayerNorm.
 * Parameters "vit.patch_embed", "vit.pos", "vit.blocks.N.*", "vit.norm". */
typedef struct Vit {
    int image, patch, d, layers;
    Linear patch_embed;   /* [d, 3·P·P]: a Conv2d with weight [d, 3, P, P] */
    Embedding pos;        /* [G², d] */
    Block *blocks;
    LayerNorm norm;
} Vit;
int vit_declare(Vit *v, ParamStore *ps, int image, int patch, int d, int layers, int heads);
void vit_free(Vit *v);
/* images [B, 3, image, image] (normalised) → features [B, G², d]. */
Tensor *vit_forward(Graph *g, const Vit *v, float *images, int B);

/* ================================================================ region tokens
 * (vit/region_tokens.c; docs/MODEL.md) For region slot k: REGION_ROI_CELLS RoIAlign cells
 * over the feature grid, W_roi·v + W_box·(box/image) + s·E["[k]"], and with pixel tokens
 * one more from the region's own pixels, W_pix·p + W_box·(box/image) + s·E["[k]"].
 * Parameters "bridge.roi_proj", "bridge.box_proj", "bridge.pix_proj",
 * "bridge.mention_norm". */
#define REGION_ROI_CELLS 4     /* RoIAlign output 2×2 → 4 tokens per region */

/* How a mention "[k]" in the text carries its region (pixels > 0; docs/MODEL.md,
 * "Mentions carry their region"): MENTION_RAW adds the region's vector v_k as it is
 * (checkpoints before the field); MENTION_NORM adds LayerNorm(v_k) with its own gain,
 * started at the scale of a token embedding, so that E_tok["[k]"] stays readable. */
enum { MENTION_RAW = 0, MENTION_NORM = 1 };
#define REGION_MENTION_GAIN0 0.15f   /* MENTION_NORM: the gain's initial value */

typedef struct RegionTokens {
    int vit_d, d, pixels, mention, id_scale;
    Linear roi_proj;      /* W_roi: pooled region vector vit_d → d */
    Linear box_proj;      /* W_box: box / image (4) → d */
    Linear pix_proj;      /* region pixels (3·pixels²) → d, when pixels > 0 */
    LayerNorm ment_norm;  /* MENTION_NORM: what a mention adds, LN(v_k) · gain */
} RegionTokens;
/* The ids of the regions: E is the decoder's token embedding, region k's id is
 * id0 + k (slots past n_ids - 1 share the last). */
typedef struct RegionIds { const Embedding *emb; int id0, n_ids; } RegionIds;

int region_tokens_declare(RegionTokens *rt, ParamStore *ps, int vit_d, int d, int pixels, int mention,
                          int id_scale);
/* Initial values that are not random (the mention gain); after params_init_weights. */
void region_tokens_init_values(RegionTokens *rt);
/* feat [B, G², vit_d] of images [B, 3, S, S]; boxes [B, R, 4] in image pixels →
 * [B, 4R (+ R), d]. *slot_vec: [B, R, d], what each slot's mentions carry (pixel
 * tokens), or NULL. */
Tensor *region_tokens_forward(Graph *g, const RegionTokens *rt, const RegionIds *id, Tensor *feat, int patch,
                              const float *images, int S, const float *boxes, int B, int R, Tensor **slot_vec);
/* Every mention "[k]" of a region the sample has (k < n_regions[i]) also carries that
 * region's vector: text [B, T, d] + the gathered rows of slot_vec. */
Tensor *region_mentions_add(Graph *g, const RegionIds *id, Tensor *txt, const int32_t *tokens, int B, int T, int R,
                            const int *n_regions, Tensor *slot_vec);

/* ================================================================ drawn-box prompt
 * (vit/draw_prompt.c) The paper's way of giving regions: the boxes drawn on the pixels,
 * region k in draw_palette[k] with its "[k]" label (data/draw.c), then the image as the
 * encoder reads it. rgb: size×size, changed in place when draw; out: normalised CHW
 * (3·size² floats). At most max_boxes are drawn. */
void vit_prompt_image(int size, int draw, uint8_t *rgb, const float (*boxes)[4], int n_boxes, int max_boxes,
                      float *out);

#endif
