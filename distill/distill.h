/* distill/ — the teacher step: prompt an OpenAI-compatible chat endpoint with the
 * literal descriptions of an image and its regions, turn the replies into corpus
 * records (DESIGN.md §5). `vcm distill` (tools/cmd_distill.c) is a thin wrapper
 * around distill_run(). The stage before, `vcm verbalize` (verbalize_run), asks a
 * vision-language model for those descriptions through the same client.
 * User documentation: docs/DISTILL.md.
 *
 * The public header of the folder. Parts:
 *   prompt.c, prompt_builtin.c  the prompt template: load, version, render
 *   words.c                     text -> words and region mentions
 *   reply.c                     an LLM's reply content -> records, drops by reason
 *   chat.c                      the /v1/chat/completions request and response bodies
 *   outfile.c                   the output file: resume, tail repair, atomic appends
 *   client.c                    the request scheduler (curl multi) both commands share:
 *                               parallel requests, retries with backoff, budget,
 *                               interruption, the request counters
 *   run.c                       distill's run: one job per image, records, summary
 *   vlm.c                       the verbalizer's requests: crops, prompts, replies
 *   verbalize.c                 `vcm verbalize`'s run: a job per image and per region,
 *                               the described mapping lines, summary */
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
/* The same with an image: the user message's content is the parts
 * [{"type": "image_url", "image_url": {"url": image_url}}, {"type": "text", "text": user}]
 * (image_url NULL: a plain string, as above). */
char *distill_chat_request_image(const char *model, const char *system, const char *user, const char *image_url,
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

/* ================================================================ the client
 *
 * The request scheduler `vcm distill` and `vcm verbalize` share. The caller hands out
 * jobs (one request each: a body and a label) through next(); the client sends them,
 * up to `parallel` at once, retries 429 / 408 / 5xx / timeouts / connection errors with
 * backoff (Retry-After honoured), and reports each job's end: reply() with the
 * reply's content, or ended() with why there is none. It stops on its own on
 * 401/403/404 and on an endpoint that never answered (net->fatal), when the budget is
 * spent, and on *o->stop (interruption). Details: docs/DISTILL.md. */

/* Why a job failed (keys of the summary's "failures"). */
enum {
    DISTILL_FAIL_GAVE_UP,        /* 429 / 5xx / timeout / connection error, retries spent */
    DISTILL_FAIL_HTTP,           /* another HTTP status (400, ...): not retried */
    DISTILL_FAIL_BAD_RESPONSE,   /* 200 but not a chat completion */
    DISTILL_FAIL_PROMPT,         /* the prompt could not be built */
    DISTILL_N_FAILS
};
const char *distill_fail_name(int reason);
/* ended()'s reason when the job was not finished (interruption, budget, a fatal stop):
 * it is left for a re-run. (DISTILL_DONE is internal: reply() had the job.) */
enum { DISTILL_PENDING = -1, DISTILL_DONE = -2 };

typedef struct DistillOptions {
    const char *endpoint;        /* see distill_chat_url */
    const char *model;
    const char *api_key;         /* NULL: no Authorization header */
    const char *source;          /* distill: NULL = "vcm_distill_<prompt version>" */
    int parallel;                /* requests in flight (>= 1) */
    long max_requests;           /* HTTP requests in all, retries included; <= 0: no limit */
    int retries;                 /* extra attempts per job after a retryable failure */
    int per_image;               /* distill: triples asked for per image */
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

/* distill's defaults (vcm verbalize changes a few: see verbalize_options_default). */
void distill_options_default(DistillOptions *o);

typedef struct DistillJob {
    long item;      /* the caller's: which unit of work (the mapping entry) */
    int part;       /* the caller's: which request of it (verbalize: -1 global, k region k) */
    char *body;     /* the request body: malloc'd by next(), freed by the client */
    char *label;    /* the job in messages ("IMAGE", "IMAGE region 2"): malloc'd, freed by the client */
} DistillJob;

typedef struct DistillNet {      /* what the client counts */
    long requests, retries, timeouts, http_429, http_5xx, conn_errors;
    int interrupted;             /* *o->stop was seen */
    int budget_spent;            /* max_requests reached */
    int fatal;                   /* stopped early: 401/403/404, endpoint unreachable, ... */
} DistillNet;

typedef struct DistillClient {
    const char *tool;            /* prefix of the log lines on stderr ("distill") */
    void *ctx;
    /* Fill *job with the next request: 1; nothing left: 0; an error of the caller's
     * (vcm_fail'd): -VCM_ERR or -VCM_EINPUT, which stops the run with that code. */
    int (*next)(void *ctx, DistillJob *job);
    /* A 2xx chat completion's content. Not VCM_OK: stops the run with that code. */
    int (*reply)(void *ctx, const DistillJob *job, const char *content);
    /* The job ended without a reply: a DISTILL_FAIL_* or DISTILL_PENDING. */
    void (*ended)(void *ctx, const DistillJob *job, int reason);
    /* Every 10 s and at the end (may be NULL). */
    void (*progress)(void *ctx, const DistillNet *net, double seconds);
} DistillClient;

/* Endpoint and model present, an http(s) URL. VCM_EINPUT with the problem. */
int distill_client_check(const DistillOptions *o);
/* Send every job next() hands out. VCM_OK when the run went to its end (or to an
 * interruption / the budget: see net), VCM_ERR on a fatal stop (net->fatal, message
 * set), or the code of a failing callback; every job given out has been reported. */
int distill_client_run(const DistillOptions *o, const DistillClient *c, DistillNet *net);
/* The seed sent with a request: from seed, the image name and part only, so it does
 * not depend on the order of jobs. part < 0: the image's one request (distill);
 * verbalize: 0 for the global caption, k + 1 for the region at index k. */
uint32_t distill_request_seed(uint64_t seed, const char *image, int part);
/* Adds "requests", "retries", "timeouts", "http_429", "http_5xx", "connection_errors". */
int distill_net_json(json_t *obj, const DistillNet *n);
/* The fields both runs' summaries end with: "failures" (fails, taken; NULL: null),
 * "repaired_partial_line_bytes", "interrupted", "budget_exhausted", "fatal". Nonzero
 * if one could not be set. */
int distill_run_json_end(json_t *obj, json_t *fails, const DistillNet *n, long truncated_bytes, int budget_exhausted);
/* "TOOL: message" on stderr. */
void distill_log(const char *tool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
double distill_now(void);        /* monotonic seconds */

/* ================================================================ the distill run */

typedef struct DistillStats {
    long images, done, empty, skipped, duplicate, failed, pending;
    long records;
    long drops[DISTILL_N_DROPS];
    long failures[DISTILL_N_FAILS];
    long truncated_bytes;        /* partial last line repaired at start */
    int budget_exhausted;        /* the budget ran out with images left */
    DistillNet net;              /* requests, retries, ..., interrupted, fatal */
} DistillStats;

/* Run the teacher over every entry of the map not yet in out_path. Returns VCM_OK when
 * the run went to its end (or to an interruption / the budget: see the stats), VCM_ERR
 * on a fatal error (output not writable, 401/403/404 from the endpoint, ...) and
 * VCM_EINPUT on a bad output file; the stats are filled in every case. */
int distill_run(const RegionMap *map, const DistillPrompt *prompt, const char *out_path,
                const DistillOptions *o, DistillStats *st);
/* The summary as one JSON object (new reference). */
json_t *distill_stats_json(const DistillStats *st, const char *source);

/* ================================================================ verbalize
 *
 * The paper's first stage: literal descriptions of an image and of its regions, asked
 * of a vision-language model behind the same kind of endpoint. For each image of a
 * region mapping: one request with the whole image for the global caption, one per
 * region with its crop; the replies become the line's "global" and
 * "region_descriptions" (every other field of the line kept), appended to an output
 * mapping once the image's requests are all answered. `vcm verbalize`
 * (tools/cmd_verbalize.c) wraps verbalize_run(). User documentation: docs/DISTILL.md. */

/* The built-in prompts (version "v1"), the text part of each request. */
#define VERBALIZE_PROMPT_VERSION "v1"
extern const char verbalize_prompt_global[];
extern const char verbalize_prompt_region[];

typedef struct VerbalizeOptions {
    DistillOptions chat;         /* endpoint, parallel, retries, ...: the client's */
    const char *images_root;     /* the mapping's image paths are relative to it (NULL: cwd) */
    const char *global_prompt;   /* NULL: verbalize_prompt_global */
    const char *region_prompt;   /* NULL: verbalize_prompt_region */
    double pad;                  /* crop margin on each side, a fraction of the box's side */
    int min_side;                /* a crop side shorter than this is widened (within the image) */
    int max_side;                /* the sent image's longer side at most this (downscaled) */
    int jpeg_quality;            /* 1..100 */
    int keep_existing;           /* keep descriptions the line has; ask only the missing ones */
    int skip_bad;                /* a bad image is skipped (counted) instead of refused */
} VerbalizeOptions;

/* chat as distill_options_default, but temperature 0 and max_tokens 128 (short literal
 * text); pad 0.1, min_side 32, max_side 768, jpeg_quality 90. */
void verbalize_options_default(VerbalizeOptions *o);

/* The crop of a box (x0, y0, x1, y1 in pixel edges) in a W×H image, as
 * rect = [cx0, cy0, cx1, cy1) (integer pixels, inside the image, non-empty):
 *   cx0 = floor(x0 − pad·(x1 − x0)), cx1 = ceil(x1 + pad·(x1 − x0)), clamped to [0, W];
 *   a side shorter than min(min_side, W) grows by the same on both sides (the extra
 *   pixel at the end), shifted back inside the image; the same for y. */
void verbalize_crop_rect(int W, int H, const RegionBox *b, double pad, int min_side, int rect[4]);
/* The text of a reply: after a reasoning model's last "</think>", without code fences
 * and surrounding quotes, whitespace runs made one space, trimmed; phrase != 0 (a
 * region's description) also drops one trailing '.'. malloc'd ("" when nothing is
 * left), NULL on out of memory. */
char *verbalize_clean_reply(const char *content, int phrase);

typedef struct VerbalizeStats {
    long images, done, empty, skipped, duplicate, failed, pending, bad;
    long globals, regions;       /* descriptions written */
    long kept;                   /* descriptions kept (keep_existing) in the images written */
    long failures[DISTILL_N_FAILS];
    long truncated_bytes;        /* partial last line repaired at start */
    int budget_exhausted;
    DistillNet net;
} VerbalizeStats;

/* Describe every image of map not yet in out_path (a plain .jsonl, created, resumed:
 * an image is done when a line of the file has it). Before any request, every image to
 * do is checked (regionmap_check_image: exists, decodes, boxes inside): a bad one is
 * VCM_EINPUT "MAP:LINE: image \"X\": problem" (skip_bad: counted in stats->bad and left
 * out). Returns as distill_run; the stats are filled in every case. */
int verbalize_run(RegionMap *map, const VerbalizeOptions *o, const char *out_path, VerbalizeStats *st);
json_t *verbalize_stats_json(const VerbalizeStats *st, const VerbalizeOptions *o);

#endif
