/* vcm — the command. Dispatches to the subcommands listed in tools/tools.h. */
#include "tools/tools.h"
#include "tensor/tensor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f, "usage: vcm <command> [flags]   (vcm <command> --help for its flags)\n\ncommands:\n");
#define X(name, help) fprintf(f, "  %-10s %s\n", #name, help);
    VCM_COMMANDS(X)
#undef X
}

/* Settings that the libraries read only when they load, so they are chosen by running
 * ourselves again once with the environment set (then they are set: no loop).
 * - OpenBLAS's kernels for this CPU (see vcm_blas_preferred_core).
 * - How long an idle OpenMP thread spins before it sleeps: libgomp's default (~3 ms)
 *   stalls every barrier when the cores are shared, OMP_WAIT_POLICY=passive (sleep at
 *   once) pays a kernel wake-up at each of the ~400 parallel regions of a training step
 *   (10% of a nano step here); VCM_OMP_SPIN spins (GOMP_SPINCOUNT, ~0.1 ms) catch the
 *   next region of a busy step and waste little on a shared machine. Left alone when
 *   the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT. docs/BENCH.md has the figures. */
#define VCM_OMP_SPIN "10000"
static void set_runtime_env(char **argv) {
    if (getenv("VCM_NO_REEXEC")) return;
    int again = 0;
    const char *core = vcm_blas_preferred_core();
    if (core) { setenv("OPENBLAS_CORETYPE", core, 1); again = 1; }
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) { setenv("GOMP_SPINCOUNT", VCM_OMP_SPIN, 1); again = 1; }
    if (again) execv("/proc/self/exe", argv);
    /* exec failed: carry on with the library defaults */
}

/* Run command `name` with argv[0] = its name; 2 for an unknown one. */
static int run_command(const char *name, int argc, char **argv) {
#define X(cmd, help)                                                                 \
    if (!strcmp(name, #cmd)) return cmd_##cmd(argc, argv);
    VCM_COMMANDS(X)
#undef X
    fprintf(stderr, "vcm: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}

static int is_command(const char *name) {
#define X(cmd, help) if (!strcmp(name, #cmd)) return 1;
    VCM_COMMANDS(X)
#undef X
    return 0;
}

/* What a command printed must have reached its destination: with stdout on a full
 * device or a closed pipe every printf "succeeds" into the buffer, and the loss shows
 * only at the final flush. A command that succeeded but whose output was lost fails. */
static int finish(int rc) {
    if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
    int e = errno;
    fprintf(stderr, "vcm: writing the output failed: %s\n", e ? strerror(e) : "I/O error");
    return rc ? rc : 1;
}

int main(int argc, char **argv) {
    set_runtime_env(argv);
    /* git-style: `make install` links vcm-<command> to vcm, and vcm-generate ARGS is
     * vcm generate ARGS (argv[0] becomes the command's name, as vcm passes it). Any
     * other name (a copy called vcm-dev) is plain vcm. */
    const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
    base = base ? base + 1 : argc > 0 ? argv[0] : "";
    if (!strncmp(base, "vcm-", 4) && is_command(base + 4)) {
        argv[0] = (char *)base + 4;
        return finish(run_command(argv[0], argc, argv));
    }
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
    return finish(run_command(argv[1], argc - 1, argv + 1));
}
