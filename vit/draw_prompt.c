/* The drawn-box prompt (vit.h): regions as coloured, labelled boxes on the pixels. */
#include "vit/vit.h"

void vit_prompt_image(int size, int draw, uint8_t *rgb, const float (*boxes)[4], int n_boxes, int max_boxes,
                      float *out) {
    if (draw && n_boxes > 0) {
        Image im = {size, size, rgb};
        DrawBox db[64];
        int n = n_boxes < max_boxes ? n_boxes : max_boxes;
        if (n > 64) n = 64;
        for (int k = 0; k < n; k++) db[k] = (DrawBox){boxes[k][0], boxes[k][1], boxes[k][2], boxes[k][3], k};
        draw_boxes(&im, db, n, DRAW_LABEL_AUTO);
    }
    image_to_chw(rgb, size, size, out);
}
