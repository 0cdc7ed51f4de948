/* vit/ — the image side of the student: RoIAlign and (issue 4) the ViT encoder and
 * region tokens. The public header of the folder. */
#ifndef VCM_VIT_H
#define VCM_VIT_H

#include "tensor/tensor.h"

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

void roi_align_forward(float *out, const float *feat, const float *boxes, int R, int C,
                       const RoiAlignParams *p);
/* Accumulates into dfeat (+=). */
void roi_align_backward(float *dfeat, const float *dout, const float *boxes, int R, int C,
                        const RoiAlignParams *p);

/* The graph op. boxes must stay alive until backward. Box batch indices outside
 * [0, B) fail. */
Tensor *op_roi_align(Graph *g, Tensor *feat, int H, int W, const float *boxes, int R,
                     int pooled_h, int pooled_w, float spatial_scale, int sampling_ratio,
                     int aligned);

#endif
