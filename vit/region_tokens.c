/* Region tokens: what the decoder reads of each region the user points at (DESIGN.md §4,
 * docs/MODEL.md). For slot k of a sample, 4 RoIAlign cells over the ViT's feature grid,
 * each W_roi·v + W_box·(box/image) + s·E["[k]"]; with pixel tokens, one more per slot
 * from the region's own pixels (RoIAligned to pixels²), W_pix·p + W_box·(box/image) +
 * s·E["[k]"] (s = id_scale). E is the decoder's token embedding, passed in: the ids
 * are the decoder's words. */
#include "vit/vit.h"

#include <string.h>

int region_tokens_declare(RegionTokens *rt, ParamStore *ps, int vit_d, int d, int pixels, int mention,
                          int id_scale) {
    memset(rt, 0, sizeof *rt);
    rt->vit_d = vit_d, rt->d = d, rt->pixels = pixels, rt->mention = mention, rt->id_scale = id_scale;
    int rc = linear_declare(&rt->roi_proj, ps, "bridge.roi_proj", vit_d, d, 1, NN_INIT_STD);
    if (!rc) rc = linear_declare(&rt->box_proj, ps, "bridge.box_proj", 4, d, 1, NN_INIT_STD);
    if (!rc && pixels > 0)
        rc = linear_declare(&rt->pix_proj, ps, "bridge.pix_proj", 3 * pixels * pixels, d, 1, NN_INIT_STD);
    if (!rc && pixels > 0 && mention == MENTION_NORM) rc = layernorm_declare(&rt->ment_norm, ps, "bridge.mention_norm", d);
    return rc;
}

void region_tokens_init_values(RegionTokens *rt) {
    /* The mention's gain starts small: LN(v_k) has unit entries, so gain g gives it a norm
     * of g·sqrt(d), against E_tok["[k]"]'s ~1 after training (measured; docs/MODEL.md,
     * "Why the answer named a random region"): 0.15 keeps the id readable and the
     * content strong enough for binding. */
    if (rt->ment_norm.w)
        for (int j = 0; j < rt->d; j++) rt->ment_norm.w->data[j] = REGION_MENTION_GAIN0;
}

/* The id part of a region token: E["[k]"], scaled by id_scale so that it stays readable
 * beside the region's content (model.h MODEL_REGION_ID_SCALE). */
static Tensor *region_id(Graph *g, const RegionTokens *rt, const RegionIds *id, const int32_t *ids, const int *shape) {
    Tensor *e = embedding_forward(g, id->emb, ids, 2, shape);
    return rt->id_scale > 1 ? op_scale(g, e, (float)rt->id_scale) : e;
}

Tensor *region_tokens_forward(Graph *g, const RegionTokens *rt, const RegionIds *id, Tensor *feat, int patch,
                              const float *images, int S, const float *boxes, int B, int R, Tensor **slot_vec) {
    int G = S / patch, n = B * R;
    float *rois = arena_alloc(&g->arena, sizeof(float) * 5 * (size_t)n);
    float *boxin = arena_alloc(&g->arena, sizeof(float) * 4 * REGION_ROI_CELLS * (size_t)n);
    int32_t *ids = arena_alloc(&g->arena, sizeof(int32_t) * REGION_ROI_CELLS * (size_t)n);
    if (!rois || !boxin || !ids) { graph_fail(g, "%s", vcm_error()); return NULL; }
    for (int i = 0; i < B; i++)
        for (int k = 0; k < R; k++) {
            int s = i * R + k;
            const float *bx = boxes + 4 * (size_t)s;
            rois[5 * s] = (float)i;
            for (int j = 0; j < 4; j++) rois[5 * s + 1 + j] = bx[j];
            for (int cell = 0; cell < REGION_ROI_CELLS; cell++) {
                for (int j = 0; j < 4; j++) boxin[(s * REGION_ROI_CELLS + cell) * 4 + j] = bx[j] / (float)S;
                ids[s * REGION_ROI_CELLS + cell] = id->id0 + (k < id->n_ids ? k : id->n_ids - 1);
            }
        }
    Tensor *pooled = op_roi_align(g, feat, G, G, rois, n, 2, 2, 1.0f / (float)patch, 2, 1);
    int s3[3] = {B, R * REGION_ROI_CELLS, rt->vit_d};
    Tensor *x = linear_forward(g, &rt->roi_proj, op_reshape(g, pooled, 3, s3));
    int sb[3] = {B, R * REGION_ROI_CELLS, 4};
    Tensor *bt = tensor_wrap(g, boxin, 3, sb);
    x = op_add(g, x, linear_forward(g, &rt->box_proj, bt));
    int si[2] = {B, R * REGION_ROI_CELLS};
    x = op_add(g, x, region_id(g, rt, id, ids, si));
    *slot_vec = NULL;
    if (rt->pixels <= 0) return x;

    /* The pixel token: the image as [B, S·S, 3] tokens so RoIAlign can read it. */
    int P = rt->pixels;
    float *hwc = arena_alloc(&g->arena, sizeof(float) * 3 * (size_t)B * S * S);
    float *pbox = arena_alloc(&g->arena, sizeof(float) * 4 * (size_t)n);
    int32_t *pids = arena_alloc(&g->arena, sizeof(int32_t) * (size_t)n);
    if (!hwc || !pbox || !pids) { graph_fail(g, "%s", vcm_error()); return NULL; }
    for (int i = 0; i < B; i++)
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < S * S; p++)
                hwc[((size_t)i * S * S + p) * 3 + ch] = images[((size_t)i * 3 + ch) * S * S + p];
    for (int s = 0; s < n; s++) {
        for (int j = 0; j < 4; j++) pbox[4 * s + j] = rois[5 * s + 1 + j] / (float)S;
        int k = s % R;
        pids[s] = id->id0 + (k < id->n_ids ? k : id->n_ids - 1);
    }
    int sp[3] = {B, S * S, 3};
    Tensor *pix = op_roi_align(g, tensor_wrap(g, hwc, 3, sp), S, S, rois, n, P, P, 1.0f, 2, 1);
    int sr[3] = {B, R, 3 * P * P};
    Tensor *y = linear_forward(g, &rt->pix_proj, op_reshape(g, pix, 3, sr));
    int sq[3] = {B, R, 4};
    y = op_add(g, y, linear_forward(g, &rt->box_proj, tensor_wrap(g, pbox, 3, sq)));
    /* the region's content without its id: what its mentions carry */
    *slot_vec = rt->mention == MENTION_NORM ? layernorm_forward(g, &rt->ment_norm, y) : y;
    int sj[2] = {B, R};
    y = op_add(g, y, region_id(g, rt, id, pids, sj));
    Tensor *parts[2] = {x, y};
    return op_concat_seq(g, parts, 2);
}

Tensor *region_mentions_add(Graph *g, const RegionIds *id, Tensor *txt, const int32_t *tokens, int B, int T, int R,
                            const int *n_regions, Tensor *slot_vec) {
    int d = txt->shape[2];
    int32_t *gid = arena_alloc(&g->arena, sizeof(int32_t) * (size_t)B * T);
    float *on = arena_alloc(&g->arena, sizeof(float) * (size_t)B * T * d);
    if (!gid || !on) { graph_fail(g, "%s", vcm_error()); return NULL; }
    for (int i = 0; i < B; i++)
        for (int t = 0; t < T; t++) {
            int k = tokens[(size_t)i * T + t] - id->id0;
            int hit = k >= 0 && k < R && k < n_regions[i];
            gid[(size_t)i * T + t] = hit ? i * R + k : 0;
            float v = hit ? 1.0f : 0.0f;
            for (int j = 0; j < d; j++) on[((size_t)i * T + t) * d + j] = v;
        }
    int s2[2] = {B * R, d}, st[2] = {B, T}, s3[3] = {B, T, d};
    Tensor *rows = op_embedding(g, op_reshape(g, slot_vec, 2, s2), gid, 2, st);
    return op_add(g, txt, op_mul(g, rows, tensor_wrap(g, on, 3, s3)));
}
