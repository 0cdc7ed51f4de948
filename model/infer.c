/* The student on lm/'s KV cache (model.h): the prefill builds one sample's decoder input
 * with the full forward's ops (student_decoder_input) and hands it to kv_prefill; the
 * regions' mention vectors go with it so that a generated "[k]" carries its region. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

int infer_init(Infer *in, Student *m) {
    memset(in, 0, sizeof *in);
    const ModelConfig *c = &m->cfg;
    in->m = m;
    in->region_vec = malloc(sizeof(float) * MODEL_MAX_REGIONS * (size_t)c->dec_d);
    if (!in->region_vec) return vcm_fail(VCM_ERR, "out of memory: KV cache");
    int rc = kv_init(&in->kv, &m->dec, model_max_seq(c), student_text_pos0(c), c->max_text);
    if (rc) { free(in->region_vec); memset(in, 0, sizeof *in); }
    return rc;
}

void infer_free(Infer *in) {
    kv_free(&in->kv);
    free(in->region_vec);
    memset(in, 0, sizeof *in);
}

int infer_prefill(Infer *in, const Batch *b) {
    Student *m = in->m;
    const ModelConfig *c = &m->cfg;
    if (b->B != 1) return vcm_fail(VCM_ERR, "infer_prefill: batch of %d (one sample)", b->B);
    if (b->T < 1 || b->T > c->max_text)
        return vcm_fail(VCM_EINPUT, "prompt of %d tokens (1..%d)", b->T, c->max_text);
    for (int t = 0; t < b->T; t++)
        if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab)
            return vcm_fail(VCM_EINPUT, "token id %d outside the vocabulary (0..%d)", b->tokens[t], c->vocab - 1);
    Graph *g = &in->kv.g;
    graph_reset(g);
    g->grad_enabled = 0;
    const uint8_t *valid;
    Tensor *rv = NULL;
    Tensor *x = student_decoder_input(g, m, b, &valid, &rv);
    if (!x) return vcm_fail(VCM_EINPUT, "%s", vcm_error());
    /* Generated "[k]" tokens carry their region's vector as the prompt's do. */
    int n = rv ? b->n_regions[0] : 0;
    if (rv) memcpy(in->region_vec, rv->data, sizeof(float) * (size_t)n * c->dec_d);
    in->kv.extra = n ? in->region_vec : NULL;
    in->kv.extra_id0 = BPE_REGION0;
    in->kv.n_extra = n;
    return kv_prefill(&in->kv, x, valid, b->T);
}
