/* The student wired from its parts: the ViT and region tokens (vit/), the causal decoder
 * (lm/) over [patch features ++ region tokens ++ text], logits tied to the token
 * embedding. What is here is the wiring: which sequence the decoder reads, with which
 * positions and which keys masked. */
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
    params_init(&m->ps);
    ParamStore *ps = &m->ps;
    int rc = VCM_OK;
    /* The text-only baseline has no image input: no ViT and no bridge at all, so they
     * cost neither time nor memory (nor optimizer steps) and are not in its checkpoint. */
    if (c->region_input != REGION_INPUT_TEXT) {
        rc = vit_declare(&m->vit, ps, c->image, c->patch, c->vit_d, c->vit_layers, c->vit_heads);
        if (!rc) rc = linear_declare(&m->vis_proj, ps, "bridge.vis_proj", c->vit_d, c->dec_d, 1, NN_INIT_STD);
        if (!rc) rc = region_tokens_declare(&m->regions, ps, c->vit_d, c->dec_d, c->roi_pixels, c->mention,
                                            c->region_id_scale);
    }
    if (!rc) rc = decoder_declare(&m->dec, ps, c->vocab, model_max_seq(c), c->dec_d, c->dec_layers, c->dec_heads);
    if (!rc) rc = params_alloc(ps);
    if (!rc) rc = params_init_weights(ps, seed);
    if (rc) { student_free(m); return rc; }
    region_tokens_init_values(&m->regions);
    return VCM_OK;
}

void student_free(Student *m) {
    params_free(&m->ps);
    vit_free(&m->vit);
    decoder_free(&m->dec);
    free(m->tokenizer_text);
    m->tokenizer_text = NULL;
}

void model_image(const ModelConfig *cfg, uint8_t *rgb, const float (*boxes)[4], int n_boxes, float *out) {
    vit_prompt_image(cfg->image, cfg->region_input == REGION_INPUT_DRAW, rgb, boxes, n_boxes, MODEL_MAX_REGIONS, out);
}

/* Region k's id is the decoder's word "[k]". */
static RegionIds region_ids(const Student *m) { return (RegionIds){&m->dec.tok, BPE_REGION0, MODEL_MAX_REGIONS}; }

/* The text-only baseline: text embeddings plus positions, nothing else — no pixel and
 * no box is read. Text position t keeps its id student_text_pos0 + t, as in the other
 * modes, so the KV cache's steps need no special case (its prefix is simply empty). */
static Tensor *text_only_input(Graph *g, Student *m, const Batch *b) {
    int st[2] = {b->B, b->T};
    Tensor *txt = embedding_forward(g, &m->dec.tok, b->tokens, 2, st);
    int32_t *pos = arena_alloc(&g->arena, sizeof(int32_t) * (size_t)b->T);
    if (!pos) { graph_fail(g, "%s", vcm_error()); return NULL; }
    int text0 = student_text_pos0(&m->cfg);
    for (int t = 0; t < b->T; t++) pos[t] = text0 + t;
    int sl[1] = {b->T};
    return op_add(g, txt, embedding_forward(g, &m->dec.pos, pos, 1, sl));
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
    Tensor *feat = vit_forward(g, &m->vit, b->images, b->B);
    Tensor *parts[3];
    int np = 0;
    parts[np++] = linear_forward(g, &m->vis_proj, feat);
    Tensor *slot_vec = NULL;
    RegionIds ids = region_ids(m);
    if (use_roi)
        parts[np++] = region_tokens_forward(g, &m->regions, &ids, feat, c->patch, b->images, c->image, b->boxes, b->B,
                                            b->R, &slot_vec);
    if (region_vecs) *region_vecs = slot_vec;
    int st[2] = {b->B, b->T};
    Tensor *txt = embedding_forward(g, &m->dec.tok, b->tokens, 2, st);
    parts[np++] = slot_vec ? region_mentions_add(g, &ids, txt, b->tokens, b->B, b->T, b->R, b->n_regions, slot_vec)
                           : txt;
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
                memset(valid + (size_t)i * L + G * G + k * REGION_ROI_CELLS, 0, REGION_ROI_CELLS);
                if (c->roi_pixels > 0) valid[(size_t)i * L + G * G + b->R * REGION_ROI_CELLS + k] = 0;
            }
        *key_valid = valid;
    }
    /* Positions are fixed by role, not by how many region slots this batch pads to:
     * patches 0…G²−1, region slot k cell c at G² + 4k + c, its pixel token at
     * G² + 64 + k, text t at student_text_pos0 + t. */
    int32_t *pos = arena_alloc(&g->arena, sizeof(int32_t) * (size_t)L);
    if (!pos) { graph_fail(g, "%s", vcm_error()); return NULL; }
    int text0 = student_text_pos0(c), cells_end = G * G + (use_roi ? b->R * REGION_ROI_CELLS : 0);
    for (int i = 0; i < L; i++)
        pos[i] = i >= prefix ? text0 + (i - prefix)
                 : i < cells_end ? i
                                 : G * G + MODEL_MAX_REGIONS * REGION_ROI_CELLS + (i - cells_end);
    int sl[1] = {L};
    return op_add(g, x, embedding_forward(g, &m->dec.pos, pos, 1, sl));
}

Tensor *student_hidden(Graph *g, Student *m, const Batch *b) {
    const uint8_t *valid;
    Tensor *x = student_decoder_input(g, m, b, &valid, NULL);
    return x ? decoder_hidden(g, &m->dec, x, valid, b->T) : NULL;
}

Tensor *student_logits(Graph *g, Student *m, const Batch *b) {
    return decoder_logits(g, &m->dec, student_hidden(g, m, b));
}

Tensor *student_loss(Graph *g, Student *m, const Batch *b) {
    Tensor *logits = student_logits(g, m, b);
    if (!logits) return NULL;
    int s2[2] = {b->B * b->T, m->cfg.vocab};
    return op_cross_entropy(g, op_reshape(g, logits, 2, s2), b->targets, -1);
}
