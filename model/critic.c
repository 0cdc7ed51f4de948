/* The critic: the student's trunk, a masked mean over the text positions and a binary
 * head, plus the trunk's own surprise at the text (mean next-token NLL) as a second
 * input of the head. Two logits with softmax cross-entropy (not one logit with a
 * sigmoid) so that the existing op_cross_entropy carries the loss and its gradient:
 * with two classes the softmax is exactly a logistic of the logit difference. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* student_init allocates its store; the head is declared after it. The store is
 * reopened, the head appended and every value drawn again from the seed: values depend
 * only on (seed, name, element), so the trunk comes out as student_init made it. */
static int add_head(Critic *c, uint64_t seed) {
    ParamStore *ps = &c->s.ps;
    params_reopen(ps);
    int rc = linear_declare(&c->head, ps, "critic.head", c->s.cfg.dec_d, 2, 1, NN_INIT_STD);
    if (!rc) rc = linear_declare(&c->lm, ps, "critic.lm", 1, 2, 0, NN_INIT_STD);
    if (!rc) rc = params_alloc(ps);
    if (!rc) rc = params_init_weights(ps, seed);
    if (!rc) memset(c->lm.w->data, 0, sizeof(float) * 2);
    return rc;
}

int critic_init(Critic *c, const ModelConfig *cfg, uint64_t seed) {
    memset(c, 0, sizeof *c);
    int rc = student_init(&c->s, cfg, seed);
    if (rc) return rc;
    rc = add_head(c, seed);
    if (rc) critic_free(c);
    return rc;
}

void critic_free(Critic *c) {
    student_free(&c->s);
    memset(c, 0, sizeof *c);
}

int critic_init_from_student(Critic *c, const Student *s) {
    char a[1024], b[1024];
    if (model_config_to_json(&c->s.cfg, a, sizeof a) || model_config_to_json(&s->cfg, b, sizeof b)) return VCM_ERR;
    if (strcmp(a, b)) return vcm_fail(VCM_EINPUT, "the student's config %s differs from the critic's %s", b, a);
    for (int i = 0; i < s->ps.n_params; i++) {
        const Param *p = s->ps.p[i];
        int rc = params_set(&c->s.ps, p->name, p->t.ndim, p->t.shape, p->t.data);
        if (rc) return rc;
    }
    c->lm.w->data[CRITIC_REJECT] = CRITIC_LM_INIT;
    c->lm.w->data[CRITIC_ACCEPT] = -CRITIC_LM_INIT;
    if (s->tokenizer_text) {
        char *t = strdup(s->tokenizer_text);
        if (!t) return vcm_fail(VCM_ERR, "out of memory");
        free(c->s.tokenizer_text);
        c->s.tokenizer_text = t;
    }
    return VCM_OK;
}

/* The trunk's mean next-token cross-entropy of each sample's text, [B, 1]: one
 * op_cross_entropy per sample over its rows of the tied logits (rows with target -1
 * ignored), so the existing op carries the gradient. */
static Tensor *text_nll(Graph *g, Critic *c, const Batch *b, Tensor *h) {
    int B = b->B, T = b->T, V = c->s.cfg.vocab;
    Tensor **parts = arena_alloc(&g->arena, sizeof(Tensor *) * (size_t)B);
    if (!parts) { graph_fail(g, "%s", vcm_error()); return NULL; }
    int s2[2] = {B * T, V}, s3[3] = {1, 1, 1}, sb[2] = {B, 1};
    Tensor *logits = op_reshape(g, embedding_logits(g, &c->s.dec.tok, h), 2, s2);
    for (int i = 0; i < B; i++) {
        Tensor *ce = op_cross_entropy(g, op_slice0(g, logits, i * T, T), b->targets + (size_t)i * T, -1);
        parts[i] = op_reshape(g, ce, 3, s3);
        if (!parts[i]) return NULL;
    }
    return op_reshape(g, op_concat_seq(g, parts, B), 2, sb);   /* [1, B, 1] → [B, 1] */
}

/* Pool weights [B, 1, T]: 1/n over the n positions with a target, 0 elsewhere; the
 * mean is then one batched matmul weights · hidden, whose backward exists. */
Tensor *critic_pooled(Graph *g, Critic *c, const Batch *b, Tensor **nll) {
    Tensor *h = student_hidden(g, &c->s, b);
    if (!h) return NULL;
    int B = b->B, T = b->T;
    float *w = arena_alloc(&g->arena, sizeof(float) * (size_t)B * T);
    if (!w) { graph_fail(g, "%s", vcm_error()); return NULL; }
    for (int i = 0; i < B; i++) {
        int n = 0;
        for (int t = 0; t < T; t++) n += b->targets[(size_t)i * T + t] >= 0;
        for (int t = 0; t < T; t++)
            w[(size_t)i * T + t] = n && b->targets[(size_t)i * T + t] >= 0 ? 1.0f / (float)n : 0.0f;
    }
    if (nll && !(*nll = text_nll(g, c, b, h))) return NULL;
    int sw[3] = {B, 1, T}, s2[2] = {B, c->s.cfg.dec_d};
    Tensor *pooled = op_matmul(g, tensor_wrap(g, w, 3, sw), h, 0, 0);
    return op_reshape(g, pooled, 2, s2);
}

Tensor *critic_logits(Graph *g, Critic *c, const Batch *b) {
    Tensor *nll = NULL;
    Tensor *pooled = critic_pooled(g, c, b, &nll);
    if (!pooled) return NULL;
    return op_add(g, linear_forward(g, &c->head, pooled), linear_forward(g, &c->lm, nll));
}

Tensor *critic_loss(Graph *g, Critic *c, const Batch *b, const int32_t *labels) {
    for (int i = 0; i < b->B; i++)
        if (labels[i] != CRITIC_ACCEPT && labels[i] != CRITIC_REJECT) {
            graph_fail(g, "critic label %d of sample %d (0 reject, 1 accept)", labels[i], i);
            return NULL;
        }
    return op_cross_entropy(g, critic_logits(g, c, b), labels, -1);
}

void critic_probs(const Tensor *logits, double *p) {
    int B = logits->shape[0];
    for (int i = 0; i < B; i++) {
        double r = logits->data[2 * i + CRITIC_REJECT], a = logits->data[2 * i + CRITIC_ACCEPT];
        p[i] = 1.0 / (1.0 + exp(r - a));
    }
}

int critic_save(const char *path, const Critic *c, const TrainState *st) {
    return model_checkpoint_save(path, "critic", &c->s, st);
}

int critic_load(const char *path, Critic *c, TrainState *st) {
    memset(c, 0, sizeof *c);
    ModelConfig cfg;
    char *tok = NULL;
    int rc = model_checkpoint_config(path, "critic", &cfg, &tok);
    if (!rc) rc = critic_init(c, &cfg, 0);
    if (rc) { free(tok); return rc; }
    c->s.tokenizer_text = tok;
    rc = checkpoint_load(path, &c->s.ps, st);
    if (rc) critic_free(c);
    return rc;
}
