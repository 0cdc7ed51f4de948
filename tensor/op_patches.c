/* Image → patches, the layout of a Conv2d with stride = kernel = P:
 *   out[b, gy·GW + gx, c·P·P + py·P + px] = img[b, c, gy·P + py, gx·P + px].
 * Every input pixel lands in exactly one output element, so backward is a scatter
 * with no collisions (any thread split gives the same bits). */
#include "tensor.h"

#define PATCH_PAR_MIN 65536

/* One (b, c, gy) band of P image rows against the GW patches it touches; `back`
 * moves gradients from patches to pixels (adding) instead of pixels to patches. */
static void patch_band(float *img, float *pat, int C, int H, int W, int P, int b, int c, int gy, int back) {
    int GW = W / P, GH = H / P, CPP = C * P * P;
    for (int py = 0; py < P; py++) {
        float *row = img + (((size_t)b * C + c) * H + (size_t)gy * P + py) * W;
        for (int gx = 0; gx < GW; gx++) {
            float *dst = pat + (((size_t)b * GH * GW) + (size_t)gy * GW + gx) * CPP + (size_t)c * P * P + py * P;
            float *src = row + (size_t)gx * P;
            if (back) for (int px = 0; px < P; px++) src[px] += dst[px];
            else for (int px = 0; px < P; px++) dst[px] = src[px];
        }
    }
}

static void k_patches_forward(float *out, const float *img, int B, int C, int H, int W, int P) {
    long items = (long)B * C * (H / P);
#pragma omp parallel for schedule(static) if ((size_t)B * C * H * W >= PATCH_PAR_MIN)
    for (long it = 0; it < items; it++) {
        int gy = (int)(it % (H / P)), c = (int)(it / (H / P) % C), b = (int)(it / ((long)(H / P) * C));
        patch_band((float *)img, out, C, H, W, P, b, c, gy, 0);
    }
}

static void k_patches_backward(float *dimg, const float *dout, int B, int C, int H, int W, int P) {
    long items = (long)B * C * (H / P);
#pragma omp parallel for schedule(static) if ((size_t)B * C * H * W >= PATCH_PAR_MIN)
    for (long it = 0; it < items; it++) {
        int gy = (int)(it % (H / P)), c = (int)(it / (H / P) % C), b = (int)(it / ((long)(H / P) * C));
        patch_band(dimg, (float *)dout, C, H, W, P, b, c, gy, 1);
    }
}

static void patches_node_backward(Node *n) {
    Tensor *x = n->in[0];
    if (!x->grad) return;
    grad_accumulate(x);
    k_patches_backward(x->grad, n->out->grad, x->shape[0], x->shape[1], x->shape[2], x->shape[3], n->iattr[0]);
}

Tensor *op_patches(Graph *g, Tensor *img, int P) {
    if (!img) return NULL;
    char si[64];
    if (img->ndim != 4) {
        graph_fail(g, "patches: image %s must be [B, C, H, W]", shape_str(img, si, sizeof si));
        return NULL;
    }
    int B = img->shape[0], C = img->shape[1], H = img->shape[2], W = img->shape[3];
    if (P <= 0 || H % P || W % P) {
        graph_fail(g, "patches: image %s: H and W must be multiples of the patch size %d",
                   shape_str(img, si, sizeof si), P);
        return NULL;
    }
    int shape[3] = {B, (H / P) * (W / P), C * P * P};
    int wg = graph_wants_grad(g, img, NULL, NULL);
    Tensor *out = graph_tensor(g, 3, shape, wg);
    if (!out) return NULL;
    k_patches_forward(out->data, img->data, B, C, H, W, P);
    if (wg) {
        Node *n = graph_push(g, "patches", patches_node_backward, out);
        if (!n) return NULL;
        n->in[0] = img;
        n->iattr[0] = P;
    }
    return out;
}
