/* vcm — the command. Dispatches to the subcommands listed in tools/tools.h. */
#include "tools/tools.h"
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: vcm <command> [flags]   (vcm <command> --help for its flags)\n\ncommands:\n");
#define X(name, help) fprintf(f, "  %-10s %s%s\n", #name, help, cmd_##name ? "" : "  [not built yet]");
    VCM_COMMANDS(X)
#undef X
}

/* See vcm_blas_preferred_core: choose OpenBLAS's kernels for this CPU by running
 * ourselves again with OPENBLAS_CORETYPE set. Once only: the variable is then set. */
static void select_blas_kernels(char **argv) {
    const char *core = vcm_blas_preferred_core();
    if (!core || getenv("VCM_NO_REEXEC")) return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the generic kernels */
}

int main(int argc, char **argv) {
    select_blas_kernels(argv);
    if (argc >= 2 && !strcmp(argv[1], "--blas-core")) {
        /* for scripts that run other programs (bench, PyTorch) with the same kernels */
        const char *pref = vcm_blas_preferred_core();
        printf("%s\n", pref ? pref : vcm_blas_core());
        return 0;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
#define X(name, help)                                                                \
    if (!strcmp(argv[1], #name)) {                                                   \
        if (!cmd_##name) {                                                           \
            fprintf(stderr, "vcm: command '%s' is not built in this version\n", #name); \
            return 1;                                                                \
        }                                                                            \
        return cmd_##name(argc - 1, argv + 1);                                       \
    }
    VCM_COMMANDS(X)
#undef X
    fprintf(stderr, "vcm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
