/* libFuzzer: the safetensors reader on a file of the input's bytes: the report of every
 * mismatch, the load into a small ParamStore (tests/test_checkpoint.c's shapes, which
 * make_seeds.c saves, so a seed's tensors match) and the metadata accessor. */
#include "nn/nn.h"
#include "base/base.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

static ParamStore g_ps;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    params_init(&g_ps);
    Linear qkv;
    LayerNorm norm;
    Embedding tok;
    if (linear_declare(&qkv, &g_ps, "vit.blocks.0.attn.qkv", 8, 24, 1, 0.02f) ||
        layernorm_declare(&norm, &g_ps, "dec.norm", 8) || embedding_declare(&tok, &g_ps, "dec.tok", 50, 8, 0.02f) ||
        !params_declare(&g_ps, "vit.patch_embed.weight", 4, (int[]){8, 3, 2, 2}, NN_INIT_NORMAL, 0.02f, 1) ||
        params_alloc(&g_ps)) {
        fprintf(stderr, "fuzz_safetensors: %s\n", vcm_error());
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_tmp_path(0, "weights.safetensors");
    fuzz_write(path, data, size);
    SafetensorsReport rep;
    memset(&rep, 0, sizeof rep);
    safetensors_load_report(path, &g_ps, &rep);
    safetensors_report_free(&rep);
    safetensors_load_into(path, &g_ps);
    static const char *const keys[] = {"vcm_config", "format", "no such key"};
    for (int k = 0; k < 3; k++) {
        char *v = NULL;
        if (safetensors_metadata(path, keys[k], &v) == VCM_OK) free(v);
    }
    unlink(path);
    return 0;
}
