/* distill/ — the teacher step: prompt an OpenAI-compatible chat endpoint with the
 * literal descriptions of an image and its regions, turn the replies into corpus
 * records (DESIGN.md §5). `vcm distill` (tools/cmd_distill.c) is a thin wrapper
 * around distill_run(). User documentation: docs/DISTILL.md.
 *
 * The public header of the folder. Parts:
 *   prompt.c, prompt_builtin.c  the prompt template: load, version, render
 *   words.c                     text -> words and region mentions
 *   reply.c                     an LLM's reply content -> records, drops by reason
 *   chat.c                      the /v1/chat/completions request and response bodies
 *   outfile.c                   the output corpus: resume, tail repair, atomic appends
 *   run.c                       the request scheduler (curl multi): parallel requests,
 *                               retries with backoff, budget, interruption, summary */
#ifndef VCM_DISTILL_H
#define VCM_DISTILL_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "data/data.h"

/* ================================================================ prompt template
 *
 * A template is plain text with placeholders and a few directive lines (a line that
 * starts with '@'):
 *   @version NAME   the prompt's version (letters, digits, '.', '_', '-'); it names the
 *                   records' source "vcm_distill_NAME". Without it the version is
 *                   "custom-XXXXXXXX" (CRC32 of the file), so edits never go unnoticed.
 *   @system / @user start the system / user message (no directive: all is "user").
 *   @# text         a comment, not sent.
 *   @@text          a literal line "@text".
 * Placeholders: {{global}} {{regions}} {{ids}} {{n_regions}} {{per_image}} {{image}}.
 * The built-in template is distill/prompt_v1.txt, compiled in verbatim. */
typedef struct DistillPrompt {
    char *name;     /* the file, or "(built-in distill/prompt_v1.txt)" */
    char *version;
    char *system;   /* NULL when the template has no @system part */
    char *user;
} DistillPrompt;

/* The built-in template's text (NUL-terminated). */
const char *distill_prompt_builtin(void);
/* path NULL: the built-in template. Errors: VCM_EINPUT "FILE:LINE:COL: problem". */
int distill_prompt_load(const char *path, DistillPrompt *p);
int distill_prompt_parse(const char *text, size_t len, const char *name, DistillPrompt *p);
/* Fill the placeholders for one image. *system is NULL when the template has none.
 * Both strings are malloc'd. */
int distill_prompt_render(const DistillPrompt *p, const RegionEntry *e, int per_image,
                          char **system, char **user);
void distill_prompt_free(DistillPrompt *p);

/* ================================================================ words
 *
 * Text -> a JSON array of words (strings) and region mentions (arrays of ints), the
 * corpus convention. Whitespace separates words; punctuation is a word of its own
 * (a run of the same mark, "...", stays one word); "don't", "well-known", "3.5" stay
 * whole. Mentions: "[0]" -> [0]; "[0, 2]" and "[0][2]" -> one mention [0, 2] (ids
 * deduplicated, in written order); "[0] and [2]" and "[0], [2]" -> two mentions.
 * Anything else in brackets ("[a]", "[-1]") is plain text: "[", "a", "]".
 * Returns a new array, or NULL (out of memory). */
json_t *distill_words(const char *text);

/* ================================================================ replies */

/* Why an item (or a whole reply) was not written. The names are the keys of the
 * summary's "drops" object. */
enum {
    DISTILL_DROP_NO_JSON,         /* reply: nothing that looks like JSON */
    DISTILL_DROP_BAD_JSON,        /* reply: JSON-looking text that does not parse */
    DISTILL_DROP_NOT_A_LIST,      /* reply: parsed, but neither a list nor an object holding one */
    DISTILL_DROP_NOT_AN_OBJECT,   /* item: not a {...} */
    DISTILL_DROP_MISSING_FIELD,   /* item: no question, answer or rationale */
    DISTILL_DROP_NOT_A_STRING,    /* item: a field that is not a string */
    DISTILL_DROP_EMPTY_FIELD,     /* item: a field that is empty or blank */
    DISTILL_DROP_UNKNOWN_REGION,  /* item: mentions an id the image has no region for */
    DISTILL_DROP_NO_REGION,       /* item: mentions no region at all */
    DISTILL_DROP_DUPLICATE,       /* item: same question and answer as an earlier one */
    DISTILL_DROP_TOO_MANY,        /* item: beyond DISTILL_MAX_PER_IMAGE */
    DISTILL_N_DROPS
};
const char *distill_drop_name(int reason);

/* Records kept per image at most; record n of the image with ordinal e (its 0-based
 * line among the mapping's entries) has index "<source>-<e * DISTILL_MAX_PER_IMAGE + n>",
 * so indexes are unique and do not depend on completion order or on resuming. */
#define DISTILL_MAX_PER_IMAGE 100

/* The JSON text inside an LLM's reply (after a "</think>" if there is one): the whole
 * content, else each ``` fenced block, else each balanced {...} or [{... / [[... /
 * ["... in the prose, first that parses as a list holding an object, or an object.
 * Repairs trailing commas, raw newlines inside strings and a list cut short (kept up
 * to its last complete element). On success *out is a new reference;
 * otherwise returns the reply-level drop reason (DISTILL_DROP_NO_JSON, _BAD_JSON,
 * _NOT_A_LIST) and *out is NULL. Returns -1 on success. */
int distill_extract_json(const char *content, json_t **out);

/* Parse one reply's content for image e (its mapping ordinal `ordinal`) into records,
 * appended to the array `records`; drops[reason] counted. Returns the number of
 * records appended, or -1 (out of memory). */
int distill_parse_reply(const char *content, const RegionEntry *e, long ordinal,
                        const char *source, json_t *records, long drops[DISTILL_N_DROPS]);

/* ================================================================ chat protocol */

/* The endpoint as given -> the URL posted to: a server root ("http://h:8080" or
 * ".../") gets "/v1/chat/completions", a URL ending in "/v1" gets "/chat/completions",
 * anything else is used as written. malloc'd, NULL on out of memory. */
char *distill_chat_url(const char *endpoint);
/* The request body. system may be NULL. max_tokens <= 0: not sent. malloc'd JSON. */
char *distill_chat_request(const char *model, const char *system, const char *user,
                           double temperature, uint32_t seed, int max_tokens);
/* choices[0].message.content of a response body. VCM_EINPUT with a message when the
 * body is not such a response. *content is malloc'd. */
int distill_chat_content(const char *body, size_t len, char **content);

/* ================================================================ output file */

typedef struct DistillOut {
    int fd;
    char *path;
    char *source;           /* only this source's records count as done (NULL: any) */
    long long size;         /* bytes, all complete lines */
    long n_lines;           /* complete lines found at open */
    long truncated_bytes;   /* a partial last line cut away at open (0: none) */
    void *done;             /* set of images already in the file (internal) */
} DistillOut;

/* Open (create) the corpus for appending. A last line without its newline (a crash of
 * an old writer) is truncated away; every complete line must be a JSON object with an
 * "image" string (else VCM_EINPUT "FILE:LINE:COL: problem"). An image is done when a
 * line has it with this source (source NULL: with any source). The file is locked
 * (flock) against a second writer. */
int distill_out_open(const char *path, const char *source, DistillOut *o);
/* Has the image a record of the source in the file (or appended since)? */
int distill_out_has(const DistillOut *o, const char *image);
/* Append complete lines with one write() and fsync(), and remember the image. A short
 * write is rolled back (ftruncate) so the file never holds half a line. */
int distill_out_append(DistillOut *o, const char *image, const char *buf, size_t len);
void distill_out_close(DistillOut *o);

/* ================================================================ the run */

/* Why an image failed (keys of the summary's "failures"). */
enum {
    DISTILL_FAIL_GAVE_UP,        /* 429 / 5xx / timeout / connection error, retries spent */
    DISTILL_FAIL_HTTP,           /* another HTTP status (400, ...): not retried */
    DISTILL_FAIL_BAD_RESPONSE,   /* 200 but not a chat completion */
    DISTILL_FAIL_PROMPT,         /* the prompt could not be built */
    DISTILL_N_FAILS
};
const char *distill_fail_name(int reason);

typedef struct DistillOptions {
    const char *endpoint;        /* see distill_chat_url */
    const char *model;
    const char *api_key;         /* NULL: no Authorization header */
    const char *source;          /* NULL: "vcm_distill_<prompt version>" */
    int parallel;                /* requests in flight (>= 1) */
    long max_requests;           /* HTTP requests in all, retries included; <= 0: no limit */
    int retries;                 /* extra attempts per image after a retryable failure */
    int per_image;               /* triples asked for per image */
    int max_tokens;              /* <= 0: not sent */
    double timeout;              /* seconds per request */
    double backoff;              /* first retry delay in seconds; doubles each retry */
    double backoff_max;          /* cap of the computed delay (Retry-After is honoured as sent) */
    double temperature;
    uint64_t seed;               /* request seeds and backoff jitter */
    int verbose;                 /* a log line per request outcome on stderr */
    /* Set asynchronously (signal handler): 1 = start nothing new, let the requests in
     * flight finish; >= 2 = abandon them too. May be NULL. */
    volatile sig_atomic_t *stop;
} DistillOptions;

void distill_options_default(DistillOptions *o);

typedef struct DistillStats {
    long images, done, empty, skipped, duplicate, failed, pending;
    long records, requests, retries, timeouts, http_429, http_5xx, conn_errors;
    long drops[DISTILL_N_DROPS];
    long failures[DISTILL_N_FAILS];
    long truncated_bytes;        /* partial last line repaired at start */
    int interrupted, budget_exhausted, fatal;
} DistillStats;

/* Run the teacher over every entry of the map not yet in out_path. Returns VCM_OK when
 * the run went to its end (or to an interruption / the budget: see the stats), VCM_ERR
 * on a fatal error (output not writable, 401/403/404 from the endpoint, ...) and
 * VCM_EINPUT on a bad output file; the stats are filled in every case. */
int distill_run(const RegionMap *map, const DistillPrompt *prompt, const char *out_path,
                const DistillOptions *o, DistillStats *st);
/* The summary as one JSON object (new reference). */
json_t *distill_stats_json(const DistillStats *st, const char *source);

#endif
