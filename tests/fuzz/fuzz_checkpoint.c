/* libFuzzer: the checkpoint readers on a file of the input's bytes. checkpoint_read_config,
 * checkpoint_open + every tensor read, checkpoint_load (weights, then with the training
 * state) into a small ParamStore shaped as tests/test_checkpoint.c's, so that a seed's
 * tensors match and the loading goes past the names; then the student / critic path
 * (the model built from the header's config) and its embedded tokenizer. */
#include "model/model.h"
#include "base/base.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

static ParamStore g_ps;

/* tests/test_checkpoint.c's build_store (V_BASE); make_seeds.c writes a checkpoint of it. */
static void build_store(ParamStore *ps) {
    params_init(ps);
    Linear qkv;
    LayerNorm norm;
    Embedding tok;
    if (linear_declare(&qkv, ps, "vit.blocks.0.attn.qkv", 8, 24, 1, 0.02f) ||
        layernorm_declare(&norm, ps, "dec.norm", 8) || embedding_declare(&tok, ps, "dec.tok", 50, 8, 0.02f) ||
        !params_declare(ps, "vit.patch_embed.weight", 4, (int[]){8, 3, 2, 2}, NN_INIT_NORMAL, 0.02f, 1) ||
        params_alloc(ps)) {
        fprintf(stderr, "fuzz_checkpoint: %s\n", vcm_error());
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    build_store(&g_ps);
    return 0;
}

static void raw_reader(const char *path) {
    CheckpointReader r;
    if (checkpoint_open(&r, path)) return;
    for (int i = 0; i < r.n_tensors; i++) {
        float *dst = malloc(r.tensors[i].nbytes ? r.tensors[i].nbytes : 1);
        if (!dst) break;
        int rc = checkpoint_read_tensor(&r, i, dst);
        free(dst);
        if (rc) break;
    }
    checkpoint_find(&r, "dec.norm.weight");
    checkpoint_close(&r);
}

static void model_path(const char *path) {
    char kind[32];
    if (model_checkpoint_kind(path, kind, sizeof kind)) return;
    for (int with_state = 0; with_state <= 1; with_state++) {
        TrainState st = {0};
        if (!strcmp(kind, "critic")) {
            Critic c;
            if (critic_load(path, &c, with_state ? &st : NULL) == VCM_OK) critic_free(&c);
        } else {
            Student m;
            if (student_load(path, &m, with_state ? &st : NULL) == VCM_OK) {
                Tokenizer t;
                if (m.tokenizer_text && student_tokenizer(&m, path, &t) == VCM_OK) bpe_free(&t);
                student_free(&m);
            }
        }
        train_state_free(&st);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_tmp_path(0, "ckpt.vcm");
    fuzz_write(path, data, size);
    char *config = NULL;
    if (checkpoint_read_config(path, &config) == VCM_OK) free(config);
    raw_reader(path);
    checkpoint_load(path, &g_ps, NULL);
    TrainState st = {0};
    checkpoint_load(path, &g_ps, &st);
    train_state_free(&st);
    model_path(path);
    unlink(path);
    return 0;
}
