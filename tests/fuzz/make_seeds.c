/* Writes the binary seeds of the fuzz harnesses into DIR (tests/fuzz/README.md has the
 * command): checkpoints and safetensors of the harnesses' small ParamStore, a tiny
 * student and critic (a nano model with every size cut to a few units, so a seed stays
 * a few KB: a real nano checkpoint is megabytes) with an embedded tokenizer, the
 * tokenizer's .tok text. Deterministic: the same bytes on every run. */
#include "model/model.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_dir;

static const char *out(const char *sub, const char *name) {
    static char buf[4][1024];
    static int k;
    k = (k + 1) & 3;
    snprintf(buf[k], sizeof buf[k], "%s/%s/%s", g_dir, sub, name);
    return buf[k];
}

static void check(int rc, const char *what) {
    if (rc) {
        fprintf(stderr, "make_seeds: %s: %s\n", what, vcm_error());
        exit(1);
    }
}

/* tests/test_checkpoint.c's build_store (V_BASE), values from a fixed seed. */
static void build_store(ParamStore *ps) {
    params_init(ps);
    Linear qkv;
    LayerNorm norm;
    Embedding tok;
    check(linear_declare(&qkv, ps, "vit.blocks.0.attn.qkv", 8, 24, 1, 0.02f), "declare");
    check(layernorm_declare(&norm, ps, "dec.norm", 8), "declare");
    check(embedding_declare(&tok, ps, "dec.tok", 50, 8, 0.02f), "declare");
    check(!params_declare(ps, "vit.patch_embed.weight", 4, (int[]){8, 3, 2, 2}, NN_INIT_NORMAL, 0.02f, 1), "declare");
    check(params_alloc(ps), "alloc");
    check(params_init_weights(ps, 7), "init");
}

static TrainState state(void) {
    TrainState st = {0};
    st.step = 3;
    st.rng[0] = 42;
    st.epoch = 1;
    st.position = 5;
    st.shuffle_seed = 9;
    st.opt = adamw_default();
    st.opt.step = 3;
    st.options_json = "{\"lr\":0.0003,\"batch\":4}";
    return st;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f)) { perror(path); exit(1); }
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: make_seeds DIR (tests/fuzz/seeds)\n"); return 2; }
    g_dir = argv[1];

    ParamStore ps;
    build_store(&ps);
    for (size_t i = 0; i < ps.n; i++) ps.m[i] = 1e-3f, ps.v[i] = 1e-6f;
    TrainState st = state();
    check(checkpoint_save(out("checkpoint", "store.vcm"), "{\"name\":\"store\"}", &ps, NULL), "checkpoint");
    check(checkpoint_save(out("checkpoint", "store_state.vcm"), "{\"name\":\"store\"}", &ps, &st), "checkpoint");
    const char *meta[] = {"format", "pt", "vcm_config", "{\"name\":\"store\"}", NULL};
    check(safetensors_save(out("safetensors", "store.safetensors"), &ps, meta), "safetensors");
    params_free(&ps);

    /* the tokenizer the tiny models carry */
    static const char text[] = "question: what is [0] doing near [1] ? answer: [0] is holding [2] .\n"
                               "rationale: the dog [1] sits on the grass next to [0] .\n";
    Tokenizer tok;
    check(bpe_train(text, sizeof text - 1, 300, &tok), "bpe_train");
    char *tok_text = bpe_to_text(&tok);
    check(!tok_text, "bpe_to_text");
    write_text(out("tokenizer", "tiny.tok"), tok_text);

    ModelConfig cfg;
    check(model_config_named("nano", &cfg), "config");
    snprintf(cfg.name, sizeof cfg.name, "tiny");
    cfg.image = 16, cfg.patch = 8;
    cfg.vit_d = 8, cfg.vit_layers = 1, cfg.vit_heads = 2;
    cfg.dec_d = 8, cfg.dec_layers = 1, cfg.dec_heads = 2;
    cfg.vocab = tok.vocab, cfg.max_text = 16, cfg.roi_pixels = 2;
    Student m;
    check(student_init(&m, &cfg, 1), "student_init");
    m.tokenizer_text = strdup(tok_text);
    check(student_save(out("checkpoint", "tiny_student.vcm"), &m, NULL), "student_save");
    student_free(&m);
    Critic c;
    check(critic_init(&c, &cfg, 2), "critic_init");
    c.s.tokenizer_text = strdup(tok_text);
    check(critic_save(out("checkpoint", "tiny_critic.vcm"), &c, NULL), "critic_save");
    critic_free(&c);
    free(tok_text);
    bpe_free(&tok);
    return 0;
}
