/* The spinning team (tensor/team.c) and the KV-cache decode that runs on it
 * (model/infer.c): every thread of a run gets its own t once, barriers separate the
 * phases, nested runs fall back to one thread, and decoded logits are bitwise the same
 * with 1, 2 and 3 threads (odd sizes: decoder d 40, vocabulary 301, 2 heads). */
#include "model/model.h"
#include "tests/test.h"

#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define PHASES 50

typedef struct {
    atomic_int hits[8];
    atomic_int count[PHASES]; /* arrivals in each phase */
    atomic_int order_bad;     /* a thread saw a phase that was not complete */
    int n_seen;
    int nested_n;
} TeamCheck;

static void nested_fn(void *arg, int t, int n) {
    (void)t;
    ((TeamCheck *)arg)->nested_n = n;
}

static void team_fn(void *arg, int t, int n) {
    TeamCheck *c = arg;
    atomic_fetch_add(&c->hits[t], 1);
    if (t == 0) c->n_seen = n;
    for (int p = 0; p < PHASES; p++) {
        atomic_fetch_add(&c->count[p], 1);
        vcm_team_barrier(n);
        if (atomic_load(&c->count[p]) != n) atomic_store(&c->order_bad, 1);
    }
    if (t == 0) vcm_team_run(nested_fn, c);
}

static void test_team_runs_and_barriers(void) {
    for (int threads = 1; threads <= 3; threads++) {
        vcm_threads_init(threads);
        for (int rep = 0; rep < 20; rep++) {
            TeamCheck c;
            memset(&c, 0, sizeof c);
            vcm_team_run(team_fn, &c);
            int n = c.n_seen;
            CHECK_MSG(n == threads, "threads %d: run of %d", threads, n);
            for (int t = 0; t < 8; t++) CHECK(atomic_load(&c.hits[t]) == (t < n ? 1 : 0));
            CHECK(!atomic_load(&c.order_bad));
            CHECK(c.nested_n == 1);
        }
    }
    vcm_threads_init(0);
}

/* A child of fork() (after the parent's team has workers) runs its own team. */
static void test_team_after_fork(void) {
    vcm_threads_init(2);
    TeamCheck c;
    memset(&c, 0, sizeof c);
    vcm_team_run(team_fn, &c);   /* the parent's workers exist now */
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);               /* a child waiting for workers it does not have hangs */
        TeamCheck k;
        memset(&k, 0, sizeof k);
        vcm_team_run(team_fn, &k);
        _exit(atomic_load(&k.hits[0]) == 1 && !atomic_load(&k.order_bad) ? 0 : 1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
    vcm_threads_init(0);
}

static ModelConfig tiny_config(void) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "tiny");
    c.image = 32; c.patch = 8;
    c.vit_d = 32; c.vit_layers = 1; c.vit_heads = 2;
    c.dec_d = 40; c.dec_layers = 2; c.dec_heads = 2;
    c.vocab = 301; c.max_text = 24;
    c.region_input = REGION_INPUT_ROI;
    return c;
}

/* Logits after the prefill and after each of `steps` greedy steps, into out. */
static int decode_all(Student *m, const Batch *b, int steps, float *out) {
    Infer in;
    if (infer_init(&in, m)) return 1;
    int rc = infer_prefill(&in, b), V = m->cfg.vocab;
    for (int s = 0; !rc && s <= steps; s++) {
        memcpy(out + (size_t)s * V, in.kv.logits, sizeof(float) * (size_t)V);
        int arg = 0;
        for (int v = 1; v < V; v++)
            if (in.kv.logits[v] > in.kv.logits[arg]) arg = v;
        if (s < steps) rc = infer_step(&in, arg);
    }
    infer_free(&in);
    return rc;
}

static void test_decode_bitwise_any_thread_count(void) {
    ModelConfig c = tiny_config();
    Student m;
    unsigned long long seed = 7;
    CHECK(student_init(&m, &c, 3) == VCM_OK);
    for (size_t i = 0; i < m.ps.n; i++) m.ps.params[i] += 0.25f * test_uniform(&seed);
    static float images[3 * 32 * 32];
    float boxes[8] = {2, 3, 20, 25, 10, 4, 30, 18};
    int nreg[1] = {2};
    int32_t tokens[4] = {BPE_BOS, BPE_REGION0 + 1, 200, 150}, targets[4] = {-1, -1, -1, -1};
    for (int i = 0; i < 3 * 32 * 32; i++) images[i] = test_uniform(&seed);
    Batch b = {1, images, 2, boxes, nreg, 4, tokens, targets};
    enum { STEPS = 12 };
    static float ref[(STEPS + 1) * 301], got[(STEPS + 1) * 301];
    vcm_threads_init(1);
    CHECK(decode_all(&m, &b, STEPS, ref) == 0);
    for (int threads = 2; threads <= 3; threads++) {
        vcm_threads_init(threads);
        for (int rep = 0; rep < 3; rep++) {
            CHECK(decode_all(&m, &b, STEPS, got) == 0);
            size_t diff = 0;
            for (size_t i = 0; i < (size_t)(STEPS + 1) * 301; i++) diff += memcmp(&ref[i], &got[i], sizeof(float)) != 0;
            CHECK_MSG(diff == 0, "%d threads: %zu of %d logits differ from 1 thread", threads, diff, (STEPS + 1) * 301);
        }
    }
    vcm_threads_init(0);
    student_free(&m);
}

int main(void) {
    vcm_team_adaptive(0); /* every run on all its threads, even on a busy machine */
    RUN(test_team_runs_and_barriers);
    RUN(test_team_after_fork);
    RUN(test_decode_bitwise_any_thread_count);
    return test_summary();
}
