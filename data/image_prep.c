/* From a decoded image to the model's input: resize, box scaling, CHW floats. */
#include "data/data.h"
#include "base/base.h"

#include <stb/stb_image_resize.h>

int image_resize(const Image *src, int w, int h, Image *dst) {
    if (!src->rgb || src->w <= 0 || src->h <= 0) return vcm_fail(VCM_EINPUT, "image_resize: empty source");
    if (image_alloc(dst, w, h)) return VCM_EINPUT;
    /* Triangle = bilinear; stb widens the kernel by the scale when shrinking, so every
     * source pixel contributes (no aliasing), as PIL's BILINEAR resize does. */
    if (!stbir_resize_uint8_generic(src->rgb, src->w, src->h, src->w * 3, dst->rgb, w, h, w * 3, 3,
                                    STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP, STBIR_FILTER_TRIANGLE,
                                    STBIR_COLORSPACE_LINEAR, NULL)) {
        image_free(dst);
        return vcm_fail(VCM_ERR, "image_resize: stb_image_resize failed (%d×%d → %d×%d)", src->w, src->h, w, h);
    }
    return VCM_OK;
}

ImageScale image_scale(int src_w, int src_h, int dst_w, int dst_h) {
    ImageScale s = {src_w > 0 ? (float)dst_w / (float)src_w : 0.f, src_h > 0 ? (float)dst_h / (float)src_h : 0.f};
    return s;
}

void image_scale_box(ImageScale s, const float in[4], float out[4]) {
    out[0] = in[0] * s.sx;
    out[1] = in[1] * s.sy;
    out[2] = in[2] * s.sx;
    out[3] = in[3] * s.sy;
}

void image_to_chw(const uint8_t *rgb, int w, int h, float *out) {
    size_t plane = (size_t)w * (size_t)h;
    /* (x/255 − 0.5)/0.5 = x·(2/255) − 1 */
    for (int c = 0; c < 3; c++) {
        float *o = out + (size_t)c * plane;
        const uint8_t *p = rgb + c;
        for (size_t i = 0; i < plane; i++) o[i] = (float)p[3 * i] * (2.0f / 255.0f) - 1.0f;
    }
}
