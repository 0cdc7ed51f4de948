/* The student: ViT over the image, RoIAlign region tokens, causal decoder over
 * [patch features ++ region tokens ++ text], logits tied to the token embedding. */
#include "model/model.h"
#include "lm/lm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int student_init(Student *m, const ModelConfig *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    const ModelConfig *c = cfg;
    if (c->image % c->patch) return vcm_fail(VCM_EINPUT, "image %d is not a multiple of patch %d", c->image, c->patch);
    int G = model_grid(c), P = c->patch;
    params_init(&m->ps);
    ParamStore *ps = &m->ps;
    m->vit_blocks = calloc((size_t)(c->vit_layers ? c->vit_layers : 1), sizeof *m->vit_blocks);
    m->dec_blocks = calloc((size_t)c->dec_layers, sizeof *m->dec_blocks);
    if (!m->vit_blocks || !m->dec_blocks) { student_free(m); return vcm_fail(VCM_ERR, "out of memory: model"); }
    int rc = VCM_OK;
    /* The text-only baseline has no image input: no ViT and no bridge at all, so they
     * cost neither time nor memory (nor optimizer steps) and are not in its checkpoint. */
    int image = c->region_input != REGION_INPUT_TEXT;
    if (image) rc = linear_declare(&m->patch_embed, ps, "vit.patch_embed", 3 * P * P, c->vit_d, 1, NN_INIT_STD);
    if (!rc && image) rc = embedding_declare(&m->vit_pos, ps, "vit.pos", G * G, c->vit_d, NN_INIT_STD);
    if (!rc && image) rc = blocks_declare(m->vit_blocks, c->vit_layers, ps, "vit.blocks", c->vit_d, c->vit_heads,
                                          nn_resid_std(c->vit_layers ? c->vit_layers : 1));
    if (!rc && image) rc = layernorm_declare(&m->vit_norm, ps, "vit.norm", c->vit_d);
    if (!rc && image) rc = linear_declare(&m->vis_proj, ps, "bridge.vis_proj", c->vit_d, c->dec_d, 1, NN_INIT_STD);
    if (!rc && image) rc = linear_declare(&m->roi_proj, ps, "bridge.roi_proj", c->vit_d, c->dec_d, 1, NN_INIT_STD);
    if (!rc && image) rc = linear_declare(&m->box_proj, ps, "bridge.box_proj", 4, c->dec_d, 1, NN_INIT_STD);
    if (!rc && image && c->roi_pixels > 0)
        rc = linear_declare(&m->pix_proj, ps, "bridge.pix_proj", 3 * c->roi_pixels * c->roi_pixels, c->dec_d, 1,
                            NN_INIT_STD);
    if (!rc && image && c->roi_pixels > 0 && c->mention == MENTION_NORM)
        rc = layernorm_declare(&m->ment_norm, ps, "bridge.mention_norm", c->dec_d);
    if (!rc) rc = embedding_declare(&m->tok, ps, "dec.tok", c->vocab, c->dec_d, NN_INIT_STD);
    if (!rc) rc = embedding_declare(&m->pos, ps, "dec.pos", model_max_seq(c), c->dec_d, NN_INIT_STD);
    if (!rc) rc = blocks_declare(m->dec_blocks, c->dec_layers, ps, "dec.blocks", c->dec_d, c->dec_heads,
                                 nn_resid_std(c->dec_layers));
    if (!rc) rc = layernorm_declare(&m->dec_norm, ps, "dec.norm", c->dec_d);
    if (!rc) rc = params_alloc(ps);
    if (!rc) rc = params_init_weights(ps, seed);
    if (rc) { student_free(m); return rc; }
    /* The mention's gain starts small: LN(v_k) has unit entries, so gain g gives it a norm
     * of g·sqrt(d), against E_tok["[k]"]'s ~1 after training (measured; docs/MODEL.md,
     * "Why the answer named a random region"): 0.15 keeps the id readable and the
     * content strong enough for binding. */
    if (m->ment_norm.w)
        for (int j = 0; j < c->dec_d; j++) m->ment_norm.w->data[j] = MODEL_MENTION_GAIN0;
    return VCM_OK;
}

void student_free(Student *m) {
    params_free(&m->ps);
    free(m->vit_blocks);
    free(m->dec_blocks);
    free(m->tokenizer_text);
    m->vit_blocks = m->dec_blocks = NULL;
    m->tokenizer_text = NULL;
}

/* ViT: patches → linear → + positions → bidirectional blocks → LayerNorm: [B, G², vit_d]. */
static Tensor *vit_forward(Graph *g, Student *m, const Batch *b) {
    const ModelConfig *c = &m->cfg;
    int shape[4] = {b->B, 3, c->image, c->image};
    Tensor *img = tensor_wrap(g, b->images, 4, shape);
    Tensor *x = op_patches(g, img, c->patch);
    x = linear_forward(g, &m->patch_embed, x);
    x = embedding_add_positions(g, &m->vit_pos, x);
    x = blocks_forward(g, m->vit_blocks, c->vit_layers, x, 0, NULL);
    return layernorm_forward(g, &m->vit_norm, x);
}

/* The id part of a region token: E_tok["[k]"], scaled by region_id_scale so that it
 * stays readable beside the region's content (model.h MODEL_REGION_ID_SCALE). */
static Tensor *region_id(Graph *g, Student *m, const int32_t *ids, const int *shape) {
    Tensor *e = embedding_forward(g, &m->tok, ids, 2, shape);
    return m->cfg.region_id_scale > 1 ? op_scale(g, e, (float)m->cfg.region_id_scale) : e;
}

/* Region tokens: for slot k of each sample, 4 RoIAlign cells over the feature grid,
 * each W_roi·v + W_box·(box/image) + s·E_tok["[k]"]: [B, 4R, dec_d]; with roi_pixels,
 * then one token per slot from the region's own pixels (RoIAligned to roi_pixels²),
 * W_pix·p + W_box·(box/image) + s·E_tok["[k]"]: [B, 4R + R, dec_d] in all
 * (s = region_id_scale). */
static Tensor *region_tokens(Graph *g, Student *m, const Batch *b, Tensor *feat, Tensor **slot_vec) {
    const ModelConfig *c = &m->cfg;
    int B = b->B, R = b->R, G = model_grid(c), n = B * R, S = c->image;
    float *rois = arena_alloc(&g->arena, sizeof(float) * 5 * (size_t)n);
    float *boxin = arena_alloc(&g->arena, sizeof(float) * 4 * MODEL_ROI_CELLS * (size_t)n);
    int32_t *ids = arena_alloc(&g->arena, sizeof(int32_t) * MODEL_ROI_CELLS * (size_t)n);
    if (!rois || !boxin || !ids) { graph_fail(g, "%s", vcm_error()); return NULL; }
    for (int i = 0; i < B; i++)
        for (int k = 0; k < R; k++) {
            int s = i * R + k;
            const float *bx = b->boxes + 4 * (size_t)s;
            rois[5 * s] = (float)i;
            for (int j = 0; j < 4; j++) rois[5 * s + 1 + j] = bx[j];
            for (int cell = 0; cell < MODEL_ROI_CELLS; cell++) {
                for (int j = 0; j < 4; j++) boxin[(s * MODEL_ROI_CELLS + cell) * 4 + j] = bx[j] / (float)S;
                ids[s * MODEL_ROI_CELLS + cell] = BPE_REGION0 + (k < MODEL_MAX_REGIONS ? k : MODEL_MAX_REGIONS - 1);
            }
        }
    Tensor *pooled = op_roi_align(g, feat, G, G, rois, n, 2, 2, 1.0f / (float)c->patch, 2, 1);
    int s3[3] = {B, R * MODEL_ROI_CELLS, c->vit_d};
    Tensor *x = linear_forward(g, &m->roi_proj, op_reshape(g, pooled, 3, s3));
    int sb[3] = {B, R * MODEL_ROI_CELLS, 4};
    Tensor *boxes = tensor_wrap(g, boxin, 3, sb);
    x = op_add(g, x, linear_forward(g, &m->box_proj, boxes));
    int si[2] = {B, R * MODEL_ROI_CELLS};
    x = op_add(g, x, region_id(g, m, ids, si));
    *slot_vec = NULL;
    if (c->roi_pixels <= 0) return x;

    /* The pixel token: the image as [B, S·S, 3] tokens so RoIAlign can read it. */
    int P = c->roi_pixels;
    float *hwc = arena_alloc(&g->arena, sizeof(float) * 3 * (size_t)B * S * S);
    float *pbox = arena_alloc(&g->arena, sizeof(float) * 4 * (size_t)n);
    int32_t *pids = arena_alloc(&g->arena, sizeof(int32_t) * (size_t)n);
    if (!hwc || !pbox || !pids) { graph_fail(g, "%s", vcm_error()); return NULL; }
    for (int i = 0; i < B; i++)
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < S * S; p++)
                hwc[((size_t)i * S * S + p) * 3 + ch] = b->images[((size_t)i * 3 + ch) * S * S + p];
    for (int s = 0; s < n; s++) {
        for (int j = 0; j < 4; j++) pbox[4 * s + j] = rois[5 * s + 1 + j] / (float)S;
        int k = s % R;
        pids[s] = BPE_REGION0 + (k < MODEL_MAX_REGIONS ? k : MODEL_MAX_REGIONS - 1);
    }
    int sp[3] = {B, S * S, 3};
    Tensor *pix = op_roi_align(g, tensor_wrap(g, hwc, 3, sp), S, S, rois, n, P, P, 1.0f, 2, 1);
    int sr[3] = {B, R, 3 * P * P};
    Tensor *y = linear_forward(g, &m->pix_proj, op_reshape(g, pix, 3, sr));
    int sq[3] = {B, R, 4};
    y = op_add(g, y, linear_forward(g, &m->box_proj, tensor_wrap(g, pbox, 3, sq)));
    /* the region's content without its id: what its mentions carry */
    *slot_vec = c->mention == MENTION_NORM ? layernorm_forward(g, &m->ment_norm, y) : y;
    int sj[2] = {B, R};
    y = op_add(g, y, region_id(g, m, pids, sj));
    Tensor *parts[2] = {x, y};
    return op_concat_seq(g, parts, 2);
}

/* Every mention "[k]" of a region the sample has also carries that region's vector
 * (its pixel token without E_tok["[k]"]): text [B, T, d] += gathered slot vectors. */
static Tensor *add_mention_vectors(Graph *g, const Batch *b, Tensor *txt, Tensor *slot_vec) {
    int B = b->B, T = b->T, R = b->R, d = txt->shape[2];
    int32_t *gid = arena_alloc(&g->arena, sizeof(int32_t) * (size_t)B * T);
    float *on = arena_alloc(&g->arena, sizeof(float) * (size_t)B * T * d);
    if (!gid || !on) { graph_fail(g, "%s", vcm_error()); return NULL; }
    for (int i = 0; i < B; i++)
        for (int t = 0; t < T; t++) {
            int k = b->tokens[(size_t)i * T + t] - BPE_REGION0;
            int hit = k >= 0 && k < R && k < b->n_regions[i];
            gid[(size_t)i * T + t] = hit ? i * R + k : 0;
            float v = hit ? 1.0f : 0.0f;
            for (int j = 0; j < d; j++) on[((size_t)i * T + t) * d + j] = v;
        }
    int s2[2] = {B * R, d}, st[2] = {B, T}, s3[3] = {B, T, d};
    Tensor *rows = op_embedding(g, op_reshape(g, slot_vec, 2, s2), gid, 2, st);
    return op_add(g, txt, op_mul(g, rows, tensor_wrap(g, on, 3, s3)));
}

/* The text-only baseline: text embeddings plus positions, nothing else — no pixel and
 * no box is read. Text position t keeps its id student_text_pos0 + t, as in the other
 * modes, so the KV cache's steps need no special case (its prefix is simply empty). */
static Tensor *text_only_input(Graph *g, Student *m, const Batch *b) {
    int st[2] = {b->B, b->T};
    Tensor *txt = embedding_forward(g, &m->tok, b->tokens, 2, st);
    int32_t *pos = arena_alloc(&g->arena, sizeof(int32_t) * (size_t)b->T);
    if (!pos) { graph_fail(g, "%s", vcm_error()); return NULL; }
    int text0 = student_text_pos0(&m->cfg);
    for (int t = 0; t < b->T; t++) pos[t] = text0 + t;
    int sl[1] = {b->T};
    return op_add(g, txt, embedding_forward(g, &m->pos, pos, 1, sl));
}

Tensor *student_decoder_input(Graph *g, Student *m, const Batch *b, const uint8_t **key_valid,
                              Tensor **region_vecs) {
    const ModelConfig *c = &m->cfg;
    int G = model_grid(c), use_roi = c->region_input == REGION_INPUT_ROI && b->R > 0;
    *key_valid = NULL;
    if (region_vecs) *region_vecs = NULL;
    if (b->T <= 0 || b->T > c->max_text) {
        graph_fail(g, "text of %d tokens (1..%d)", b->T, c->max_text);
        return NULL;
    }
    if (c->region_input == REGION_INPUT_TEXT) return text_only_input(g, m, b);
    if (b->R > MODEL_MAX_REGIONS) {
        graph_fail(g, "%d regions in one sample (at most %d)", b->R, MODEL_MAX_REGIONS);
        return NULL;
    }
    Tensor *feat = vit_forward(g, m, b);
    Tensor *parts[3];
    int np = 0;
    parts[np++] = linear_forward(g, &m->vis_proj, feat);
    Tensor *slot_vec = NULL;
    if (use_roi) parts[np++] = region_tokens(g, m, b, feat, &slot_vec);
    if (region_vecs) *region_vecs = slot_vec;
    int st[2] = {b->B, b->T};
    Tensor *txt = embedding_forward(g, &m->tok, b->tokens, 2, st);
    parts[np++] = slot_vec ? add_mention_vectors(g, b, txt, slot_vec) : txt;
    Tensor *x = op_concat_seq(g, parts, np);
    if (!x) return NULL;
    int L = x->shape[1], prefix = L - b->T;
    /* Padding region slots may not be attended. */
    if (use_roi) {
        uint8_t *valid = arena_alloc(&g->arena, (size_t)b->B * (size_t)L);
        if (!valid) { graph_fail(g, "%s", vcm_error()); return NULL; }
        memset(valid, 1, (size_t)b->B * (size_t)L);
        for (int i = 0; i < b->B; i++)
            for (int k = b->n_regions[i]; k < b->R; k++) {
                memset(valid + (size_t)i * L + G * G + k * MODEL_ROI_CELLS, 0, MODEL_ROI_CELLS);
                if (c->roi_pixels > 0) valid[(size_t)i * L + G * G + b->R * MODEL_ROI_CELLS + k] = 0;
            }
        *key_valid = valid;
    }
    /* Positions are fixed by role, not by how many region slots this batch pads to:
     * patches 0…G²−1, region slot k cell c at G² + 4k + c, its pixel token at
     * G² + 64 + k, text t at student_text_pos0 + t. */
    int32_t *pos = arena_alloc(&g->arena, sizeof(int32_t) * (size_t)L);
    if (!pos) { graph_fail(g, "%s", vcm_error()); return NULL; }
    int text0 = student_text_pos0(c), cells_end = G * G + (use_roi ? b->R * MODEL_ROI_CELLS : 0);
    for (int i = 0; i < L; i++)
        pos[i] = i >= prefix ? text0 + (i - prefix)
                 : i < cells_end ? i
                                 : G * G + MODEL_MAX_REGIONS * MODEL_ROI_CELLS + (i - cells_end);
    int sl[1] = {L};
    return op_add(g, x, embedding_forward(g, &m->pos, pos, 1, sl));
}

Tensor *student_hidden(Graph *g, Student *m, const Batch *b) {
    const uint8_t *valid;
    Tensor *x = student_decoder_input(g, m, b, &valid, NULL);
    if (!x) return NULL;
    int prefix = x->shape[1] - b->T, n = m->cfg.dec_layers;
    /* Only the text rows of the last layer are read (by the logits): its prefix rows
     * give keys and values but skip queries, projection and MLP (docs/MODEL.md). */
    x = blocks_forward(g, m->dec_blocks, n - 1, x, 1, valid);
    x = block_forward_from(g, &m->dec_blocks[n - 1], x, 1, valid, prefix);
    return layernorm_forward(g, &m->dec_norm, x);
}

Tensor *student_logits(Graph *g, Student *m, const Batch *b) {
    return embedding_logits(g, &m->tok, student_hidden(g, m, b));
}

Tensor *student_loss(Graph *g, Student *m, const Batch *b) {
    Tensor *logits = student_logits(g, m, b);
    if (!logits) return NULL;
    int s2[2] = {b->B * b->T, m->cfg.vocab};
    return op_cross_entropy(g, op_reshape(g, logits, 2, s2), b->targets, -1);
}
