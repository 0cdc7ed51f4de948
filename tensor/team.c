/* A team of spinning threads for work made of many short dependent steps, where an
 * OpenMP region per step costs more than the step: decoding one token is ~25 products
 * of a few microseconds each, and with OMP_WAIT_POLICY=passive (which make bench and a
 * shared machine want, docs/BENCH.md) every region start wakes a sleeping thread
 * through the kernel, 10 µs to over a millisecond when the cores are busy.
 *
 * vcm_team_run(fn, arg) runs fn(arg, t, n) on n = vcm_threads() threads (the caller is
 * t = 0) and returns when all are done; inside fn, vcm_team_barrier(n) waits for the
 * others. Between runs the workers spin for TEAM_SPIN_NS (the gap between two decoded
 * tokens is far shorter), then sleep on a condition variable, so an idle team costs
 * nothing. Barriers spin a little and then yield, so a waiting thread does not hold a
 * core another job needs; a run with such a long wait sends the next runs to the caller
 * alone (SOLO_MIN below). The workers are created on first use and live as long as the
 * process (like OpenMP's). One run at a time: a run from inside another one, from a
 * second thread meanwhile, or inside an OpenMP region runs on the caller alone (n = 1),
 * which gives the same result whenever fn splits its work by (t, n) into pieces that do
 * not depend on n. */
#include "tensor.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define TEAM_MAX 64                 /* threads of a run (ids fit the 8 bits of worker_main's p) */
#define TEAM_SPIN_NS 300000L       /* a worker spins this long for the next run */
#define WAIT_SPIN_NS 50000L         /* a barrier spins this long, then yields */
/* CONTENDED_RUNS runs in a row in which some thread waited longer than WAIT_SPIN_NS for
 * another (which the scheduler had taken off its core: the machine is busy) are
 * followed by SOLO_MIN runs on the caller alone, doubling up to SOLO_MAX while it keeps
 * happening; on a busy machine one thread beats a team whose members take turns on the
 * cores. */
#define CONTENDED_RUNS 3
#define SOLO_MIN 16
#define SOLO_MAX 4096
/* After a pause or a solo stretch, waits are not held against the machine for this long:
 * the process's OpenMP threads, just done with the work before (a prefill), spin
 * 0.1–0.3 ms before they sleep (GOMP_SPINCOUNT=10000, which vcm sets: docs/TENSOR.md)
 * and hold the cores meanwhile; sleeping workers take a while to wake. (Counting the
 * slow wake after a solo stretch as contention made the solo stretches double up to
 * 4096 runs: one thread for good.) */
#define WAKE_GRACE_NS 1000000L

static struct {
    pthread_mutex_t run_lock;       /* one run at a time */
    pthread_mutex_t sleep_lock;
    pthread_cond_t wake;
    atomic_uint job;                /* incremented for every run */
    atomic_int sleepers;
    atomic_int done;                /* workers finished with the current run */
    atomic_int arrived, phase;      /* the barrier */
    VcmTeamFn fn;
    void *arg;
    int n;                          /* threads of the current run */
    int workers;                    /* created so far (ids 1..workers) */
    atomic_int contended;           /* a wait of this run took longer than WAIT_SPIN_NS */
    int solo_left, solo_next;       /* runs still to do alone; the next back-off */
    long last_end;                  /* when the last run ended (ns) */
    long grace_end;                 /* contended runs before this (ns) do not count */
    int after_solo;                 /* the last run was a solo one */
    int strikes;                    /* contended runs in a row */
    int fixed;                      /* vcm_team_adaptive(0): never fall back to one thread */
} team = {.run_lock = PTHREAD_MUTEX_INITIALIZER, .sleep_lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Spin until *v != old (phase) or *v >= old (count, at_least): WAIT_SPIN_NS, then yield
 * and mark the run contended. */
static void wait_change(atomic_int *v, int old, int at_least) {
    long t0 = 0;
    for (unsigned i = 1;; i++) {
        int x = atomic_load_explicit(v, memory_order_acquire);
        if (at_least ? x >= old : x != old) return;
        if ((i & 63) == 0) {
            long t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > WAIT_SPIN_NS) break;
        }
        cpu_relax();
    }
    atomic_store_explicit(&team.contended, 1, memory_order_relaxed);
    for (;;) {
        int x = atomic_load_explicit(v, memory_order_acquire);
        if (at_least ? x >= old : x != old) return;
        sched_yield(); /* the machine is shared: do not hold a core another job needs */
    }
}

/* Wait until team.job differs from seen: spin, then sleep. */
static unsigned wait_job(unsigned seen) {
    long t0 = now_ns();
    for (unsigned i = 1;; i++) {
        unsigned j = atomic_load_explicit(&team.job, memory_order_acquire);
        if (j != seen) return j;
        cpu_relax();
        if ((i & 63) == 0 && now_ns() - t0 > TEAM_SPIN_NS) break;
    }
    pthread_mutex_lock(&team.sleep_lock);
    atomic_fetch_add(&team.sleepers, 1);
    unsigned j;
    while ((j = atomic_load(&team.job)) == seen) pthread_cond_wait(&team.wake, &team.sleep_lock);
    atomic_fetch_sub(&team.sleepers, 1);
    pthread_mutex_unlock(&team.sleep_lock);
    return j;
}

/* p packs the worker's id (low 8 bits) and the job count when it was created, so that
 * a thread that starts late still takes part in the run it was created for. Every
 * worker reports every run (also when t >= n): the next run cannot start while one of
 * them is still reading this run's fn, arg and n. */
static void *worker_main(void *p) {
    int t = (int)((uintptr_t)p & 0xff);
    unsigned seen = (unsigned)((uintptr_t)p >> 8);
    vcm_flush_denormals(); /* as every thread vcm computes on */
    for (;;) {
        seen = wait_job(seen);
        /* fn, arg and n were written before job was incremented (release) */
        if (t < team.n) team.fn(team.arg, t, team.n);
        atomic_fetch_add_explicit(&team.done, 1, memory_order_release);
    }
    return NULL;
}

/* A child of fork() has only the thread that forked: it starts with no workers. */
static void team_after_fork_child(void) {
    pthread_mutex_init(&team.run_lock, NULL);
    pthread_mutex_init(&team.sleep_lock, NULL);
    pthread_cond_init(&team.wake, NULL);
    atomic_store(&team.sleepers, 0);
    team.workers = 0;
    team.solo_left = team.solo_next = team.strikes = 0;
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void register_atfork(void) { pthread_atfork(NULL, NULL, team_after_fork_child); }

/* Make sure workers 1..n-1 exist; returns how many threads the run can use. */
static int team_grow(int n) {
    pthread_once(&atfork_once, register_atfork);
    if (n > TEAM_MAX) n = TEAM_MAX;
    while (team.workers < n - 1) {
        pthread_t th;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        uintptr_t id = ((uintptr_t)atomic_load(&team.job) << 8) | (uintptr_t)(team.workers + 1);
        int rc = pthread_create(&th, &at, worker_main, (void *)id);
        pthread_attr_destroy(&at);
        if (rc) break;   /* run with the threads we have */
        team.workers++;
    }
    return team.workers + 1 < n ? team.workers + 1 : n;
}

static _Thread_local int in_team_run;

void vcm_team_run(VcmTeamFn fn, void *arg) {
    int n = vcm_threads();
    if (n <= 1 || in_team_run || omp_in_parallel() || pthread_mutex_trylock(&team.run_lock)) {
        fn(arg, 0, 1);
        return;
    }
    in_team_run = 1;
    if (team.solo_left > 0 && !team.fixed) {
        team.solo_left--;
        team.after_solo = 1;
        fn(arg, 0, 1);
    } else {
        n = team_grow(n);
        team.fn = fn;
        team.arg = arg;
        team.n = n;
        atomic_store_explicit(&team.done, 0, memory_order_relaxed);
        atomic_store_explicit(&team.contended, 0, memory_order_relaxed);
        atomic_fetch_add(&team.job, 1); /* seq_cst: ordered before the sleepers check */
        int woke = atomic_load(&team.sleepers) > 0;
        long start = now_ns();
        int idle_before = start - team.last_end > TEAM_SPIN_NS / 2;
        /* After a pause (the caller did other work, maybe on OpenMP threads that still
         * spin) or a stretch of solo runs (the workers went to sleep meanwhile), the
         * first waits are slow for reasons other than a busy machine. */
        if (idle_before || (woke && team.after_solo)) team.grace_end = start + WAKE_GRACE_NS;
        team.after_solo = 0;
        if (woke) {
            pthread_mutex_lock(&team.sleep_lock);
            pthread_cond_broadcast(&team.wake);
            pthread_mutex_unlock(&team.sleep_lock);
        }
        fn(arg, 0, n);
        wait_change(&team.done, team.workers, 1);
        /* A busy machine makes nearly every run wait: CONTENDED_RUNS long waits in a
         * row (outside the grace after a pause) send the team to one thread. A single
         * one is an interrupt or the VM's host and says nothing (going solo on every
         * such hiccup left decoding on one thread for half of some runs). */
        if (atomic_load(&team.contended) && now_ns() > team.grace_end) {
            if (++team.strikes >= CONTENDED_RUNS) {
                team.strikes = 0;
                team.solo_next = team.solo_next ? (team.solo_next * 2 > SOLO_MAX ? SOLO_MAX : team.solo_next * 2) : SOLO_MIN;
                team.solo_left = team.solo_next;
            }
        } else if (!atomic_load(&team.contended)) {
            team.strikes = 0;
            team.solo_next = 0;
        }
    }
    team.last_end = now_ns();
    in_team_run = 0;
    pthread_mutex_unlock(&team.run_lock);
}

void vcm_team_adaptive(int on) {
    pthread_mutex_lock(&team.run_lock);
    team.fixed = !on;
    team.solo_left = team.solo_next = team.strikes = 0;
    pthread_mutex_unlock(&team.run_lock);
}

void vcm_team_barrier(int n) {
    if (n <= 1) return;
    int phase = atomic_load_explicit(&team.phase, memory_order_relaxed);
    if (atomic_fetch_add_explicit(&team.arrived, 1, memory_order_acq_rel) == n - 1) {
        atomic_store_explicit(&team.arrived, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&team.phase, 1, memory_order_release);
        return;
    }
    wait_change(&team.phase, phase, 0);
}
