/* vcm export — a checkpoint's weights as safetensors, under their PyTorch-style names,
 * for tests/ref/ and anyone with torch. Streams the tensor table: no model is built,
 * so it works for any checkpoint whatever its config. */
#include "nn/nn.h"
#include "tools/tools.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "export"

static int fill_from_checkpoint(void *ctx, int i, float *dst) {
    return checkpoint_read_tensor(ctx, i, dst);
}

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *format = "safetensors", *out = NULL;
    Flag flags[] = {
        {"model", 's', &model, "checkpoint to read, M.vcm (required)"},
        {"format", 's', &format, "output format: safetensors (the default and only one)"},
        {"out", 's', &out, "file to write, e.g. M.safetensors (required)"},
        {0},
    };
    int rc = flags_parse("usage: vcm export --model M.vcm --out M.safetensors [--format safetensors]\n\n"
                         "Writes the weights of a checkpoint as float32 safetensors under their\n"
                         "parameter names; the model config goes into __metadata__ as \"vcm_config\".\n"
                         "Prints one JSON line: {\"out\", \"tensors\", \"params\", \"bytes\"}.",
                         flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (strcmp(format, "safetensors"))
        return tool_error(CMD, 2, "unknown --format \"%s\" (safetensors is the only one)", format);

    CheckpointReader r;
    if ((rc = checkpoint_open(&r, model))) return tool_error(CMD, rc == VCM_EINPUT ? 2 : 1, "%s", vcm_error());
    SafetensorsEntry *e = malloc((size_t)(r.n_tensors ? r.n_tensors : 1) * sizeof *e);
    if (!e) {
        checkpoint_close(&r);
        return tool_error(CMD, 1, "out of memory");
    }
    unsigned long long n_params = 0, bytes = 0;
    for (int i = 0; i < r.n_tensors; i++) {
        e[i] = (SafetensorsEntry){r.tensors[i].name, r.tensors[i].ndim, r.tensors[i].shape};
        n_params += r.tensors[i].nbytes / 4;
        bytes += r.tensors[i].nbytes;
    }
    const char *meta[] = {"format", "pt", "vcm_config", r.config_json, NULL};
    rc = safetensors_write(out, r.n_tensors, e, fill_from_checkpoint, &r, meta);
    int n = r.n_tensors;
    free(e);
    checkpoint_close(&r);
    if (rc) return tool_error(CMD, rc == VCM_EINPUT ? 2 : 1, "%s", vcm_error());
    json_t *line = json_pack("{s:s, s:i, s:I, s:I}", "out", out, "tensors", n, "params", (json_int_t)n_params,
                             "bytes", (json_int_t)bytes);
    return tool_print_json(CMD, line, JSON_PRESERVE_ORDER);
}
