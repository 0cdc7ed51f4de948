/* RoIAlign, forward and backward, reproducing torchvision.ops.roi_align's CPU kernel:
 * the same sample positions, the same clamping at the borders, the same float
 * arithmetic in the same order, so the numbers agree to rounding. Only the memory
 * layout differs (tokens [H·W, C] instead of NCHW planes), which does not change the
 * order in which any one output or gradient element is summed. */
#include "vit/vit.h"

#include <math.h>
#include <string.h>

/* One sample point: four neighbour cells and their bilinear weights. Cells are -1 and
 * weights 0 when the point lies outside [-1, H] × [-1, W] (it contributes nothing). */
typedef struct BilinearTaps {
    int p1, p2, p3, p4;
    float w1, w2, w3, w4;
} BilinearTaps;

static BilinearTaps bilinear_sample(int H, int W, float y, float x) {
    BilinearTaps s = {-1, -1, -1, -1, 0, 0, 0, 0};
    if (y < -1.0f || y > (float)H || x < -1.0f || x > (float)W) return s;
    if (y <= 0) y = 0;
    if (x <= 0) x = 0;
    int y_low = (int)y, x_low = (int)x, y_high, x_high;
    if (y_low >= H - 1) { y_high = y_low = H - 1; y = (float)y_low; } else y_high = y_low + 1;
    if (x_low >= W - 1) { x_high = x_low = W - 1; x = (float)x_low; } else x_high = x_low + 1;
    float ly = y - (float)y_low, lx = x - (float)x_low;
    float hy = 1.0f - ly, hx = 1.0f - lx;
    s.w1 = hy * hx; s.w2 = hy * lx; s.w3 = ly * hx; s.w4 = ly * lx;
    s.p1 = y_low * W + x_low; s.p2 = y_low * W + x_high;
    s.p3 = y_high * W + x_low; s.p4 = y_high * W + x_high;
    return s;
}

/* The geometry of one box, computed as torchvision does. */
typedef struct RoiGeom {
    float start_h, start_w, bin_h, bin_w;
    int grid_h, grid_w;
} RoiGeom;

static RoiGeom roi_geom(const float *box, const RoiAlignParams *p) {
    RoiGeom g;
    float offset = p->aligned ? 0.5f : 0.0f;
    g.start_w = box[1] * p->spatial_scale - offset;
    g.start_h = box[2] * p->spatial_scale - offset;
    float end_w = box[3] * p->spatial_scale - offset;
    float end_h = box[4] * p->spatial_scale - offset;
    float roi_w = end_w - g.start_w, roi_h = end_h - g.start_h;
    if (!p->aligned) {  /* legacy mode forces malformed boxes to 1×1 */
        if (roi_w < 1.0f) roi_w = 1.0f;
        if (roi_h < 1.0f) roi_h = 1.0f;
    }
    g.bin_h = roi_h / (float)p->pooled_h;
    g.bin_w = roi_w / (float)p->pooled_w;
    g.grid_h = p->sampling_ratio > 0 ? p->sampling_ratio : (int)ceilf(roi_h / (float)p->pooled_h);
    g.grid_w = p->sampling_ratio > 0 ? p->sampling_ratio : (int)ceilf(roi_w / (float)p->pooled_w);
    return g;
}

static BilinearTaps roi_sample(const RoiGeom *g, const RoiAlignParams *p, int ph, int pw, int iy, int ix) {
    float y = g->start_h + (float)ph * g->bin_h + (float)(iy + 0.5f) * g->bin_h / (float)g->grid_h;
    float x = g->start_w + (float)pw * g->bin_w + (float)(ix + 0.5f) * g->bin_w / (float)g->grid_w;
    return bilinear_sample(p->H, p->W, y, x);
}

void vcm_roi_align_forward(float *out, const float *feat, const float *boxes, int R, int C,
                       const RoiAlignParams *p) {
    const int cells = p->pooled_h * p->pooled_w;
    /* Each (box, cell) output row is owned by one thread. */
#pragma omp parallel for schedule(static)
    for (int rc = 0; rc < R * cells; rc++) {
        int r = rc / cells, cell = rc % cells, ph = cell / p->pooled_w, pw = cell % p->pooled_w;
        const float *box = boxes + 5 * r;
        RoiGeom g = roi_geom(box, p);
        int grid = g.grid_h * g.grid_w;
        float count = (float)(grid > 1 ? grid : 1);
        const float *f = feat + (size_t)box[0] * p->H * p->W * C;
        float *o = out + (size_t)rc * C;
        for (int c = 0; c < C; c++) o[c] = 0;
        for (int iy = 0; iy < g.grid_h; iy++)
            for (int ix = 0; ix < g.grid_w; ix++) {
                BilinearTaps s = roi_sample(&g, p, ph, pw, iy, ix);
                if (s.p1 < 0) continue;  /* adds 0·x: skipping it gives the same sum */
                const float *f1 = f + (size_t)s.p1 * C, *f2 = f + (size_t)s.p2 * C;
                const float *f3 = f + (size_t)s.p3 * C, *f4 = f + (size_t)s.p4 * C;
                for (int c = 0; c < C; c++) o[c] += s.w1 * f1[c] + s.w2 * f2[c] + s.w3 * f3[c] + s.w4 * f4[c];
            }
        for (int c = 0; c < C; c++) o[c] /= count;
    }
}

void vcm_roi_align_backward(float *dfeat, const float *dout, const float *boxes, int R, int C,
                        const RoiAlignParams *p) {
    const int cells = p->pooled_h * p->pooled_w;
    /* Boxes of one image overlap, so a thread owns a block of channels and walks every
     * box in order: each gradient element is summed in torchvision's order, whatever
     * the thread count. */
    enum { CB = 16 };
    int n_blocks = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < n_blocks; blk++) {
        int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
        for (int r = 0; r < R; r++) {
            const float *box = boxes + 5 * r;
            RoiGeom g = roi_geom(box, p);
            float count = (float)(g.grid_h * g.grid_w);
            float *df = dfeat + (size_t)box[0] * p->H * p->W * C;
            for (int cell = 0; cell < cells; cell++) {
                int ph = cell / p->pooled_w, pw = cell % p->pooled_w;
                const float *go = dout + ((size_t)r * cells + cell) * C;
                for (int iy = 0; iy < g.grid_h; iy++)
                    for (int ix = 0; ix < g.grid_w; ix++) {
                        BilinearTaps s = roi_sample(&g, p, ph, pw, iy, ix);
                        if (s.p1 < 0) continue;
                        float *d1 = df + (size_t)s.p1 * C, *d2 = df + (size_t)s.p2 * C;
                        float *d3 = df + (size_t)s.p3 * C, *d4 = df + (size_t)s.p4 * C;
                        for (int c = c0; c < c1; c++) {
                            float gc = go[c];
                            d1[c] += gc * s.w1 / count;
                            d2[c] += gc * s.w2 / count;
                            d3[c] += gc * s.w3 / count;
                            d4[c] += gc * s.w4 / count;
                        }
                    }
            }
        }
    }
}

static void roi_align_node_backward(Node *n) {
    Tensor *feat = n->in[0];
    if (!feat->grad) return;
    grad_accumulate(feat); /* boxes cover part of the map: added into zeros */
    vcm_roi_align_backward(feat->grad, n->out->grad, n->saved, n->iattr[0], tensor_cols(feat), n->saved2);
}

Tensor *op_roi_align(Graph *g, Tensor *feat, int H, int W, const float *boxes, int R,
                     int pooled_h, int pooled_w, float spatial_scale, int sampling_ratio,
                     int aligned) {
    if (!feat) return NULL;
    if (feat->ndim != 3 || feat->shape[1] != H * W || R <= 0 || pooled_h <= 0 || pooled_w <= 0) {
        char b[64];
        graph_fail(g, "roi_align: feature %s is not [B, %d·%d, C], or no boxes", shape_str(feat, b, sizeof b), H, W);
        return NULL;
    }
    for (int r = 0; r < R; r++) {
        float bi = boxes[5 * r];
        if (!(bi >= 0 && bi < (float)feat->shape[0]) || bi != floorf(bi)) {
            graph_fail(g, "roi_align: box %d has batch index %g outside [0, %d)", r, bi, feat->shape[0]);
            return NULL;
        }
    }
    RoiAlignParams *p = arena_alloc(&g->arena, sizeof *p);
    if (!p) { graph_fail(g, "%s", vcm_error()); return NULL; }
    *p = (RoiAlignParams){H, W, pooled_h, pooled_w, spatial_scale, sampling_ratio, aligned};
    int shape[3] = {R, pooled_h * pooled_w, feat->shape[2]};
    Tensor *out = graph_tensor(g, 3, shape, graph_wants_grad(g, feat, NULL, NULL));
    if (!out) return NULL;
    vcm_roi_align_forward(out->data, feat->data, boxes, R, feat->shape[2], p);
    if (out->grad) {
        Node *n = graph_push(g, "roi_align", roi_align_node_backward, out);
        if (!n) return NULL;
        n->in[0] = feat;
        n->saved = (void *)boxes;
        n->saved2 = p;
        n->iattr[0] = R;
    }
    return out;
}
