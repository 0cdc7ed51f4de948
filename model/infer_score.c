/* Sequence scoring by teacher forcing: one full forward (student_logits) over a batch
 * of texts, then the log-probability of each target token. Multiple choice scores
 * every choice of many items in one batch this way, which keeps the matrix products
 * large; the KV cache is for sampling, where the next input is not known in advance. */
#include "model/model.h"

int student_target_logprobs(Graph *g, Student *m, const Batch *b, double *lp) {
    Tensor *logits = student_logits(g, m, b);
    if (!logits || g->failed) return vcm_fail(VCM_ERR, "scoring: %s", vcm_error());
    int V = m->cfg.vocab;
    long rows = (long)b->B * b->T;
    for (long r = 0; r < rows; r++)
        if (b->targets[r] >= V)
            return vcm_fail(VCM_EINPUT, "target id %d outside the vocabulary (0..%d)", b->targets[r], V - 1);
    lm_target_logprobs(logits->data, rows, V, b->targets, lp);
    return VCM_OK;
}
