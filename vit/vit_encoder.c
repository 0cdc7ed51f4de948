/* The ViT encoder: patches → linear → + learned positions → bidirectional blocks →
 * LayerNorm. The Conv2d patch embedding of a ViT is a linear layer over each patch's
 * 3·P·P pixels (op_patches lays them out in PyTorch's weight order). */
#include "vit/vit.h"

#include <stdlib.h>
#include <string.h>

int vit_declare(Vit *v, ParamStore *ps, int image, int patch, int d, int layers, int heads) {
    memset(v, 0, sizeof *v);
    if (patch <= 0 || image % patch) return vcm_fail(VCM_EINPUT, "image %d is not a multiple of patch %d", image, patch);
    v->image = image, v->patch = patch, v->d = d, v->layers = layers;
    int G = image / patch;
    v->blocks = calloc((size_t)(layers ? layers : 1), sizeof *v->blocks);
    if (!v->blocks) return vcm_fail(VCM_ERR, "out of memory: model");
    int rc = linear_declare(&v->patch_embed, ps, "vit.patch_embed", 3 * patch * patch, d, 1, NN_INIT_STD);
    if (!rc) rc = embedding_declare(&v->pos, ps, "vit.pos", G * G, d, NN_INIT_STD);
    if (!rc) rc = blocks_declare(v->blocks, layers, ps, "vit.blocks", d, heads, nn_resid_std(layers ? layers : 1));
    if (!rc) rc = layernorm_declare(&v->norm, ps, "vit.norm", d);
    return rc;
}

void vit_free(Vit *v) {
    free(v->blocks);
    v->blocks = NULL;
}

Tensor *vit_forward(Graph *g, const Vit *v, float *images, int B) {
    int shape[4] = {B, 3, v->image, v->image};
    Tensor *x = op_patches(g, tensor_wrap(g, images, 4, shape), v->patch);
    x = linear_forward(g, &v->patch_embed, x);
    x = embedding_add_positions(g, &v->pos, x);
    x = blocks_forward(g, v->blocks, v->layers, x, 0, NULL);
    return layernorm_forward(g, &v->norm, x);
}
