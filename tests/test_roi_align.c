/* RoIAlign: hand-computed cases, finite differences, thread determinism.
 * (Agreement with torchvision.ops.roi_align is checked in test_roi_align_ref.) */
#include "vit/vit.h"
#include "tests/gradcheck.h"

#include <omp.h>

/* A 4×4 single-channel grid with value y·10 + x: bilinear sampling of it is exact. */
static void test_linear_ramp_is_sampled_exactly(void) {
    float feat[16];
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++) feat[y * 4 + x] = (float)(10 * y + x);
    /* Box covering cells [1,3]×[1,3] in pixels with scale 1, aligned: centres shift by
     * -0.5, so the 1×1 output samples the mean over the box of the ramp at y-0.5, x-0.5. */
    float box[5] = {0, 1, 1, 3, 3};
    RoiAlignParams p = {4, 4, 1, 1, 1.0f, 2, 1};
    float out = 0;
    vcm_roi_align_forward(&out, feat, box, 1, 1, &p);
    /* Sample points: 0.5 + {0.5, 1.5} → y,x ∈ {1.0, 2.0}: mean of ramp = 10·1.5 + 1.5. */
    CHECK_NEAR(out, 16.5, 1e-5);
    /* Unaligned: points 1 + {0.5, 1.5}: mean = 10·2 + 2 = 22. */
    p.aligned = 0;
    vcm_roi_align_forward(&out, feat, box, 1, 1, &p);
    CHECK_NEAR(out, 22.0, 1e-5);
}

static void test_box_far_outside_gives_zero(void) {
    float feat[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    float box[5] = {0, 10, 10, 20, 20};
    RoiAlignParams p = {3, 3, 2, 2, 1.0f, 2, 1};
    float out[4] = {5, 5, 5, 5};
    vcm_roi_align_forward(out, feat, box, 1, 1, &p);
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 0);
}

typedef struct { const float *boxes; int R, H, W; float scale; } RoiCtx;

static Tensor *build_roi(Graph *g, Tensor **in, void *vctx) {
    RoiCtx *c = vctx;
    return op_roi_align(g, in[0], c->H, c->W, c->boxes, c->R, 2, 2, c->scale, 2, 1);
}

static void test_gradient_finite_differences(void) {
    unsigned long long seed = 42;
    int shape[3] = {2, 5 * 7, 3};
    Tensor *feat = gradcheck_input(3, shape, -1, 1, 1, &seed);
    /* Image 40×56 px, patch 8 → grid 5×7. Boxes: inside, partly outside, sub-pixel,
     * touching the border, and one in the second image. */
    float boxes[] = {0, 3, 5, 30, 22,   0, -6, -4, 12, 9,   0, 17.2f, 9.1f, 17.6f, 9.3f,
                     1, 0, 0, 56, 40,   1, 40, 30, 70, 50};
    RoiCtx c = {boxes, 5, 5, 7, 1.0f / 8};
    Tensor *in[1] = {feat};
    CHECK(gradcheck(build_roi, &c, in, 1, 1e-2, 1e-3));
    free(feat);
}

static void test_bad_batch_index_fails(void) {
    Graph g;
    CHECK(graph_init(&g, 1 << 16) == VCM_OK);
    Tensor *feat = tensor_3d(&g, 1, 4, 2, 0);
    float box[5] = {1, 0, 0, 1, 1};
    CHECK(op_roi_align(&g, feat, 2, 2, box, 1, 2, 2, 1, 2, 1) == NULL);
    CHECK_STR_CONTAINS(vcm_error(), "batch index");
    graph_free(&g);
}

static void test_same_bits_with_1_and_2_threads(void) {
    enum { B = 2, H = 14, W = 14, C = 67, R = 9 };
    float *feat = malloc(sizeof(float) * B * H * W * C);
    float *dout = malloc(sizeof(float) * R * 4 * C);
    unsigned long long s = 7;
    for (int i = 0; i < B * H * W * C; i++) feat[i] = test_uniform(&s);
    for (int i = 0; i < R * 4 * C; i++) dout[i] = test_uniform(&s);
    float boxes[R * 5];
    for (int r = 0; r < R; r++) {
        float x0 = 230 * (test_uniform(&s) + 1) / 2 - 10, y0 = 230 * (test_uniform(&s) + 1) / 2 - 10;
        boxes[5 * r] = (float)(r % B);
        boxes[5 * r + 1] = x0; boxes[5 * r + 2] = y0;
        boxes[5 * r + 3] = x0 + 60 * (test_uniform(&s) + 1); boxes[5 * r + 4] = y0 + 3;
    }
    RoiAlignParams p = {H, W, 2, 2, 1.0f / 16, 2, 1};
    float *o1 = malloc(sizeof(float) * R * 4 * C), *o2 = malloc(sizeof(float) * R * 4 * C);
    float *g1 = calloc(B * H * W * C, sizeof(float)), *g2 = calloc(B * H * W * C, sizeof(float));
    vcm_threads_init(1);
    vcm_roi_align_forward(o1, feat, boxes, R, C, &p);
    vcm_roi_align_backward(g1, dout, boxes, R, C, &p);
    vcm_threads_init(2);
    vcm_roi_align_forward(o2, feat, boxes, R, C, &p);
    vcm_roi_align_backward(g2, dout, boxes, R, C, &p);
    CHECK(!memcmp(o1, o2, sizeof(float) * R * 4 * C));
    CHECK(!memcmp(g1, g2, sizeof(float) * B * H * W * C));
    free(feat); free(dout); free(o1); free(o2); free(g1); free(g2);
}

int main(void) {
    RUN(test_linear_ramp_is_sampled_exactly);
    RUN(test_box_far_outside_gives_zero);
    RUN(test_gradient_finite_differences);
    RUN(test_bad_batch_index_fails);
    RUN(test_same_bits_with_1_and_2_threads);
    return test_summary();
}
