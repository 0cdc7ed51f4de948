/* The all-reduce of a training step: MPI_Allreduce (sum) of the flat gradient buffer of
 * the nano, small and base students, between 2 ranks of this machine (docs/CLUSTER.md
 * uses these figures in its scaling model). Run directly it starts itself again under
 * `mpirun -np 2`; a build without MPI prints a comment and exits.
 *   bench mpi_allreduce_<cfg> ours=<ms> unit=ms floats=<n> MB=<bytes/1e6> busbw_GBps=<..> */
#include "model/model.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Not under a launcher: run again as 2 ranks of mpirun (which passes our environment). */
static int relaunch(int argc, char **argv) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) { printf("# bench_allreduce: cannot find its own path\n"); return 0; }
    self[n] = 0;
    /* The MCA settings are the caller's (OMPI_MCA_* in the environment), as for training,
     * except that Open MPI 4 refuses to start without ssh even on one machine. */
    if (access("/usr/bin/ssh", X_OK) && access("/bin/ssh", X_OK) && access("/usr/bin/rsh", X_OK))
        setenv("OMPI_MCA_plm_rsh_agent", "/bin/false", 0);
    const char *np = getenv("BENCH_RANKS") ? getenv("BENCH_RANKS") : "2";
    char *args[16] = {"mpirun", "--allow-run-as-root", "--bind-to", "none", "-np", (char *)np, self};
    for (int i = 1; i < argc && i < 8; i++) args[6 + i] = argv[i];
    fflush(stdout);
    execvp("mpirun", args);
    printf("# bench_allreduce: mpirun not found (openmpi-bin), skipped\n");
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Arguments: the configs to run (default all three). */
int main(int argc, char **argv) {
    if (strcmp(dist_backend(), "Open MPI")) {
        printf("# bench_allreduce: built without MPI, skipped\n");
        return 0;
    }
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK")) return relaunch(argc, argv);
    if (dist_init()) { fprintf(stderr, "bench_allreduce: %s\n", vcm_error()); return 1; }
    vcm_threads_init(1);
    const int rank = dist_rank(), ranks = dist_size();
    const char *names[] = {"nano", "small", "base"};
    for (int c = 0; c < 3; c++) {
        int want = argc < 2;
        for (int i = 1; i < argc; i++) want |= !strcmp(argv[i], names[c]);
        if (!want) continue;
        /* The buffer's length is the model's (rank 0 builds it once to know it). */
        uint64_t n = 0;
        if (rank == 0) {
            ModelConfig cfg;
            Student m;
            if (!model_config_named(names[c], &cfg) && !student_init(&m, &cfg, 1)) {
                n = m.ps.n;
                student_free(&m);
            }
        }
        if (dist_broadcast(&n, sizeof n, 0) || n == 0) { fprintf(stderr, "bench_allreduce: %s\n", vcm_error()); break; }
        float *g = malloc(n * sizeof(float));
        if (!g) { fprintf(stderr, "bench_allreduce: out of memory (%s)\n", names[c]); break; }
        for (uint64_t i = 0; i < n; i++) g[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
        /* Best and median of the timed runs after one warm-up; barriers line the ranks up. */
        enum { RUNS = 7 };
        double t[RUNS];
        int rc = dist_allreduce_sum(g, n);
        for (int r = 0; r < RUNS && !rc; r++) {
            rc = dist_barrier();
            double t0 = now_seconds();
            if (!rc) rc = dist_allreduce_sum(g, n);
            t[r] = now_seconds() - t0;
        }
        /* The slowest rank's time is the step's. */
        if (!rc) rc = dist_allreduce_f64(t, RUNS, DIST_MAX);
        free(g);
        if (rc) { fprintf(stderr, "bench_allreduce: %s\n", vcm_error()); break; }
        qsort(t, RUNS, sizeof t[0], cmp_double);
        double bytes = (double)n * sizeof(float);
        /* bus bandwidth: the bytes a ring all-reduce moves per rank, 2(N-1)/N · size */
        double bus = 2.0 * (ranks - 1) / ranks * bytes / t[RUNS / 2] / 1e9;
        if (rank == 0)
            printf("bench mpi_allreduce_%s ours=%.4g unit=ms ranks=%d floats=%llu MB=%.1f best_ms=%.4g busbw_GBps=%.2f\n",
                   names[c], t[RUNS / 2] * 1e3, ranks, (unsigned long long)n, bytes / 1e6, t[0] * 1e3, bus);
        fflush(stdout);
    }
    dist_finalize();
    return 0;
}
