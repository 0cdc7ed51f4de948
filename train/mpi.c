/* The distributed section of train/train.h: data-parallel collectives over MPI.
 *
 * Built with -DVCM_MPI (the Makefile does so when it finds Open MPI's mpicc) these call
 * MPI on MPI_COMM_WORLD; built without, they are the one-process versions (a sum over
 * one rank is the identity), so the trainer is written once. Even in an MPI build a
 * process joins a job only when a launcher started it (mpirun, srun, ...): a plain
 * `vcm` never initialises the MPI runtime.
 *
 * The rank, the size and the signal message are process-wide state because MPI itself
 * is: one job per process, joined once. */
#include "train/train.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef VCM_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1, g_local = 1, g_mpi = 0, g_failed = 0;

/* The number of processes a launcher says it started, 0 when none did. mpirun sets
 * OMPI_COMM_WORLD_SIZE; srun (--mpi=pmix or pmi2) and MPICH's Hydra PMIX_RANK or
 * PMI_RANK / PMI_SIZE. Slurm's own SLURM_* variables are not enough: a batch script
 * has them too, and a plain `vcm train` there must stay one process. */
static int launcher_size(void) {
    const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    if (getenv("PMIX_RANK") || getenv("PMI_RANK")) return 1;   /* launched, size unknown yet */
    return 0;
}

#ifdef VCM_MPI
static int mpi_fail(int err, const char *what) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", err);
    g_failed = 1;
    return vcm_fail(VCM_ERR, "rank %d: %s failed: %s (a peer process probably died)", g_rank, what, s);
}

/* MPI counts are ints: long buffers go in pieces of at most 2^30 elements. */
#define MPI_PIECE ((size_t)1 << 30)
#endif

int dist_init(void) {
    if (g_mpi) return VCM_OK;
    int launched = launcher_size();
#ifdef VCM_MPI
    if (!launched) return VCM_OK;
    int provided = 0, err;
    /* FUNNELED: only the main thread calls MPI; OpenMP threads never do. */
    if ((err = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided)) != MPI_SUCCESS)
        return vcm_fail(VCM_ERR, "MPI_Init failed (error %d)", err);
    g_mpi = 1;
    /* A dead peer becomes an error code the trainer reports, not an abort inside MPI. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &g_local);
        MPI_Comm_free(&node);
    }
    return VCM_OK;
#else
    if (launched > 1)
        return vcm_fail(VCM_ERR, "started by a launcher as one of %d processes, but this vcm was built without MPI: "
                        "each would train alone and overwrite the others' checkpoints. Install Open MPI "
                        "(libopenmpi-dev) and rebuild, or run one process", launched);
    return VCM_OK;
#endif
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_failed(void) { return g_failed; }

const char *dist_backend(void) {
#ifdef VCM_MPI
    return "Open MPI";
#else
    return "none (built without MPI)";
#endif
}

/* Threads per process when neither --threads nor VCM_THREADS says: the cores this
 * process may run on (a launcher that binds gives each rank its own), shared by the
 * ranks of this machine when nothing binds them. */
int dist_default_threads(void) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online < 1) online = 1;
    int mine = (int)online;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) mine = CPU_COUNT(&set);
    if (mine < online) return mine;             /* bound: these cores are ours */
    int n = (int)(online / (g_local > 0 ? g_local : 1));
    return n > 0 ? n : 1;
}

int dist_allreduce_sum(float *x, size_t n) {
#ifdef VCM_MPI
    if (g_size > 1)
        for (size_t o = 0; o < n; o += MPI_PIECE) {
            int c = (int)(n - o < MPI_PIECE ? n - o : MPI_PIECE);
            int err = MPI_Allreduce(MPI_IN_PLACE, x + o, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Allreduce of the gradients");
        }
#else
    (void)x; (void)n;
#endif
    return VCM_OK;
}

int dist_allreduce_f64(double *x, size_t n, int op) {
#ifdef VCM_MPI
    if (g_size > 1 && n > 0) {
        MPI_Op o = op == DIST_MIN ? MPI_MIN : op == DIST_MAX ? MPI_MAX : MPI_SUM;
        int err = MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, o, MPI_COMM_WORLD);
        if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Allreduce");
    }
#else
    (void)x; (void)n; (void)op;
#endif
    return VCM_OK;
}

int dist_broadcast(void *buf, size_t bytes, int root) {
#ifdef VCM_MPI
    if (g_size > 1)
        for (size_t o = 0; o < bytes; o += MPI_PIECE) {
            int c = (int)(bytes - o < MPI_PIECE ? bytes - o : MPI_PIECE);
            int err = MPI_Bcast((char *)buf + o, c, MPI_BYTE, root, MPI_COMM_WORLD);
            if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Bcast");
        }
#else
    (void)buf; (void)bytes; (void)root;
#endif
    return VCM_OK;
}

int dist_barrier(void) {
#ifdef VCM_MPI
    if (g_size > 1) {
        int err = MPI_Barrier(MPI_COMM_WORLD);
        if (err != MPI_SUCCESS) return mpi_fail(err, "MPI_Barrier");
    }
#endif
    return VCM_OK;
}

int dist_agree(int rc) {
    if (g_size == 1) return rc;
    double who = rc ? g_rank : g_size;
    if (dist_allreduce_f64(&who, 1, DIST_MIN)) return VCM_ERR;
    if ((int)who >= g_size) return VCM_OK;
    struct { int code; char msg[1000]; } e = {rc, ""};
    if ((int)who == g_rank) snprintf(e.msg, sizeof e.msg, "%s", vcm_error());
    if (dist_broadcast(&e, sizeof e, (int)who)) return VCM_ERR;
    if ((int)who == g_rank) return rc;
    return vcm_fail(e.code ? e.code : VCM_ERR, "rank %d: %s", (int)who, e.msg);
}

void dist_finalize(void) {
#ifdef VCM_MPI
    /* After a failed call the peers may be gone: MPI_Finalize could wait for them
     * forever, so end the whole job instead (the error has been printed). */
    if (g_mpi && g_failed) MPI_Abort(MPI_COMM_WORLD, 1);
    if (g_mpi) MPI_Finalize();
#endif
    g_mpi = 0;
    g_rank = 0;
    g_size = 1;
    g_local = 1;
}

/* ---------------------------------------------------------------- stop message
 * When one rank dies, mpirun ends the others with SIGTERM (SIGKILL a moment later):
 * the trainer cannot return an error, so the message it keeps current is written from
 * the handler. Two buffers and an index flipped after the copy, so the handler never
 * reads a half-written message. */
#define STOP_MSG 1024
static char g_msg[2][STOP_MSG];
static volatile sig_atomic_t g_msg_cur = -1;

static void on_stop_signal(int sig) {
    int k = g_msg_cur;
    if (k >= 0) {
        const char *m = g_msg[k];
        size_t n = strnlen(m, STOP_MSG);
        while (n > 0) {
            ssize_t w = write(2, m, n);
            if (w <= 0) break;
            m += w;
            n -= (size_t)w;
        }
    }
    /* End as the signal would have, so the launcher reports it as such. */
    signal(sig, SIG_DFL);
    raise(sig);
}

void dist_on_stop(const char *msg) {
    if (!msg) {
        g_msg_cur = -1;
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        return;
    }
    int k = g_msg_cur == 0 ? 1 : 0;
    snprintf(g_msg[k], STOP_MSG, "%s", msg);
    int first = g_msg_cur < 0;
    g_msg_cur = k;
    if (first) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
    }
}
