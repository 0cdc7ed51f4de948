/* libFuzzer: the tools' flag parser (tools/flags.c) and the --region parsing of the
 * inference commands (tools/infer_util.c). The input split at NUL bytes is argv[1..];
 * the table has a flag of every kind, ranges and a required one, as the commands do. */
#include "tools/tools.h"
#include "tools/infer_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS 64

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* The parser prints usage and errors with stdio; libFuzzer and the sanitizers keep
     * writing to fd 2 (they do not go through these FILEs). */
    FILE *null = fopen("/dev/null", "w");
    if (!null) abort();
    stdout = null;
    stderr = null;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = "fuzz";
    for (size_t i = 0; i <= size && argc < MAX_ARGS;) {   /* NUL-separated fields */
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;

    int n = 0, quiet = 0;
    float temperature = 1.0f;
    double lr = 3e-4;
    const char *out = NULL;
    FlagList regions = {0};
    Flag flags[] = {
        {"steps", 'i', &n, "training steps [1..1000000]"},
        {"temperature", 'f', &temperature, "sampling temperature [0..]"},
        {"lr", 'd', &lr, "learning rate [..1]"},
        {"out", 's', &out, "output file (required)"},
        {"region", 'L', &regions, "x0,y0,x1,y1 (repeat)"},
        {"quiet", 'b', &quiet, "no progress"},
        {"top-p", 'f', &temperature, "nucleus [0..1]"},
        {NULL, 0, NULL, NULL},
    };
    const char *pos[4];
    int n_pos = 0;
    if (flags_parse("usage: fuzz [flags]", flags, argc, argv, pos, 4, &n_pos) == 0) {
        float boxes[MODEL_MAX_REGIONS][4];
        int nb = 0;
        if (infer_parse_regions("fuzz", &regions, boxes, &nb) == 0)
            infer_check_regions("fuzz", &regions, (const float (*)[4])boxes, nb, 640, 480);
    }
    free(buf);
    return 0;
}
