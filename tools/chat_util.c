/* What vcm distill and vcm verbalize share on the command side (tools/chat_util.h). */
#include "tools/chat_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one piece of state a signal handler may touch. */
static volatile sig_atomic_t chat_stop;
static struct sigaction old_int, old_term;

static void on_signal(int sig) {
    (void)sig;
    if (chat_stop < 2) chat_stop++;
}

void chat_flags_init(ChatFlags *f, const DistillOptions *o) {
    memset(f, 0, sizeof *f);
    f->parallel = o->parallel;
    f->retries = o->retries;
    f->max_tokens = o->max_tokens;
    f->seed = (int)o->seed;
    f->timeout = o->timeout;
    f->backoff = o->backoff;
    f->temperature = o->temperature;
}

const char *chat_flags_apply(const ChatFlags *f, DistillOptions *o) {
    const char *bad = f->parallel < 1 || f->parallel > 256 ? "--parallel wants 1..256"
                    : f->retries < 0 || f->retries > 100 ? "--retries wants 0..100"
                    : !(f->timeout > 0) ? "--timeout wants seconds > 0"
                    : !(f->backoff >= 0) ? "--backoff wants seconds >= 0"
                    : !(f->temperature >= 0 && f->temperature <= 2) ? "--temperature wants 0..2"
                    : f->max_requests < 0 ? "--max-requests wants a count >= 0" : NULL;
    if (bad) return bad;
    o->parallel = f->parallel;
    o->max_requests = f->max_requests;
    o->retries = f->retries;
    o->max_tokens = f->max_tokens;
    o->seed = (uint64_t)(uint32_t)f->seed;
    o->timeout = f->timeout;
    o->backoff = f->backoff;
    o->temperature = f->temperature;
    o->verbose = f->verbose;
    o->api_key = getenv("VCM_API_KEY");
    o->stop = &chat_stop;
    return NULL;
}

void chat_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
}

void chat_signals_restore(void) {
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
}

void chat_print_summary(json_t *summary) {
    if (!summary) return;
    json_dumpf(summary, stdout, 0);
    fputc('\n', stdout);
    fflush(stdout);
    json_decref(summary);
}
