/* tools/chat_util.h — private to the commands that talk to a chat endpoint (vcm distill,
 * vcm verbalize): the flags they share, their checks, the interruption signals and the
 * summary line. */
#ifndef VCM_CHAT_UTIL_H
#define VCM_CHAT_UTIL_H

#include "distill/distill.h"
#include "tools/tools.h"

#include <signal.h>

/* The numeric flags, parsed into plain ints/doubles first (the Flag kinds), then
 * checked and copied into DistillOptions by chat_flags_apply. */
typedef struct ChatFlags {
    int parallel, max_requests, retries, max_tokens, seed, verbose;
    double timeout, backoff, temperature;
} ChatFlags;

void chat_flags_init(ChatFlags *f, const DistillOptions *o);

/* The Flag entries both commands have, for the command's table. `unit` says what a
 * retry is counted per ("image", "request"). --temperature and --max-tokens are the
 * command's own (their defaults differ). */
#define CHAT_FLAGS(o, f, unit)                                                                          \
    {"endpoint", 's', &(o).endpoint, "server root (http://127.0.0.1:8080) or full chat-completions URL"}, \
    {"model", 's', &(o).model, "model name sent with each request"},                                  \
    {"parallel", 'i', &(f).parallel, "requests in flight (default 4)"},                               \
    {"max-requests", 'i', &(f).max_requests, "stop after this many HTTP requests, retries included (default: no limit)"}, \
    {"timeout", 'd', &(f).timeout, "seconds per request before it is retried (default 120)"},        \
    {"retries", 'i', &(f).retries, "retries per " unit " on 429, 5xx, timeouts, connection errors (default 4)"}, \
    {"backoff", 'd', &(f).backoff, "first retry delay in seconds, doubling, with jitter (default 1)"}, \
    {"seed", 'i', &(f).seed, "seed: request seeds (per " unit ") and retry jitter (default 1)"},        \
    {"verbose", 'b', &(f).verbose, "a log line per " unit " and per retry on stderr"}

/* Checks the values and copies them into o, with the key from VCM_API_KEY and the stop
 * flag of the signal handler. NULL, or the problem ("--parallel wants 1..256"). */
const char *chat_flags_apply(const ChatFlags *f, DistillOptions *o);

/* SIGINT / SIGTERM: the first asks the run to finish what is in flight, the second to
 * abandon it (DistillOptions.stop). */
void chat_signals_install(void);
void chat_signals_restore(void);

/* The summary as one line on stdout (and frees it). */
void chat_print_summary(json_t *summary);

#endif
