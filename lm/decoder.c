/* The causal decoder: token and position embeddings, pre-LN blocks with causal
 * attention, a final LayerNorm, and the output layer tied to the token embedding.
 * Its input sequence is built by the caller (model/: patch features, region tokens and
 * text), so the decoder knows nothing of images. */
#include "lm/lm.h"

#include <stdlib.h>
#include <string.h>

int decoder_declare(Decoder *dec, ParamStore *ps, int vocab, int max_seq, int d, int layers, int heads) {
    memset(dec, 0, sizeof *dec);
    dec->vocab = vocab, dec->max_seq = max_seq, dec->d = d, dec->layers = layers;
    dec->blocks = calloc((size_t)(layers > 0 ? layers : 1), sizeof *dec->blocks);
    if (!dec->blocks) return vcm_fail(VCM_ERR, "out of memory: model");
    int rc = embedding_declare(&dec->tok, ps, "dec.tok", vocab, d, NN_INIT_STD);
    if (!rc) rc = embedding_declare(&dec->pos, ps, "dec.pos", max_seq, d, NN_INIT_STD);
    if (!rc) rc = blocks_declare(dec->blocks, layers, ps, "dec.blocks", d, heads, nn_resid_std(layers));
    if (!rc) rc = layernorm_declare(&dec->norm, ps, "dec.norm", d);
    return rc;
}

void decoder_free(Decoder *dec) {
    free(dec->blocks);
    dec->blocks = NULL;
}

Tensor *decoder_hidden(Graph *g, const Decoder *dec, Tensor *x, const uint8_t *key_valid, int text) {
    if (!x) return NULL;
    int prefix = x->shape[1] - text, n = dec->layers;
    /* Only the text rows of the last layer are read (by the logits): its prefix rows
     * give keys and values but skip queries, projection and MLP (docs/MODEL.md). */
    x = blocks_forward(g, dec->blocks, n - 1, x, 1, key_valid);
    x = block_forward_from(g, &dec->blocks[n - 1], x, 1, key_valid, prefix);
    return layernorm_forward(g, &dec->norm, x);
}

Tensor *decoder_logits(Graph *g, const Decoder *dec, Tensor *hidden) {
    return embedding_logits(g, &dec->tok, hidden);
}

void lm_target_logprobs(const float *logits, long rows, int V, const int32_t *targets, double *lp) {
    /* Rows are independent: any split over threads gives the same numbers. */
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        int32_t t = targets[r];
        lp[r] = t < 0 ? 0.0 : lm_log_softmax_at(logits + (size_t)r * V, V, t);
    }
}
