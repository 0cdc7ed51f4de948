/* The request scheduler. One thread drives up to `parallel` transfers with the curl
 * multi interface; each slot carries one image from its first request to its records
 * (or its failure): request -> (retry after a backoff)* -> parse -> one append. The
 * loop wakes at least every 100 ms to notice an interruption. */
#include "distill/distill.h"
#include "tensor/tensor.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_RESPONSE (16u << 20)   /* bytes of one response body */

static const char *const fail_names[DISTILL_N_FAILS] = {"gave_up", "http_error", "bad_response", "prompt"};

const char *distill_fail_name(int reason) {
    return reason >= 0 && reason < DISTILL_N_FAILS ? fail_names[reason] : "?";
}

void distill_options_default(DistillOptions *o) {
    memset(o, 0, sizeof *o);
    o->parallel = 4;
    o->retries = 4;
    o->per_image = 5;
    o->max_tokens = 1024;
    o->timeout = 120;
    o->backoff = 1;
    o->backoff_max = 60;
    o->temperature = 0.7;
    o->seed = 1;
}

enum { SLOT_IDLE, SLOT_WAIT, SLOT_RUN };

typedef struct Slot {
    CURL *h;
    int state;
    long entry;          /* index in map->entries */
    int attempt;         /* requests made for this image */
    double wake;         /* SLOT_WAIT: when to (re)start */
    char *body;          /* the request */
    char *resp;          /* the response body */
    size_t resp_n, resp_cap;
    int overflow;
    char err[CURL_ERROR_SIZE];
} Slot;

typedef struct Run {
    const RegionMap *map;
    const DistillPrompt *prompt;
    const DistillOptions *o;
    DistillStats *st;
    DistillOut out;
    CURLM *multi;
    struct curl_slist *headers;
    char *url, *noproxy;
    const char *source;
    uint64_t rng;
    long next;           /* next entry to consider */
    int no_more;         /* budget spent or fatal: start nothing new */
    int budget_spent;
    int any_response;    /* some request got an HTTP answer */
    char fatal_msg[512]; /* why the run stopped early (st->fatal) */
    double t0, last_log;
} Run;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}



/* The seed sent with an image's requests: from the run's seed and the image name only,
 * so it does not depend on the order in which images are handled. */
static uint32_t image_seed(uint64_t seed, const char *image) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = image; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    uint64_t s = seed ^ h;
    return (uint32_t)(vcm_rng_next(&s) & 0x7fffffff);
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *user) {
    Slot *s = user;
    size_t n = size * nmemb;
    if (s->resp_n + n + 1 > MAX_RESPONSE) { s->overflow = 1; return 0; }
    if (s->resp_n + n + 1 > s->resp_cap) {
        size_t nc = s->resp_cap ? s->resp_cap : 4096;
        while (nc < s->resp_n + n + 1) nc *= 2;
        char *nb = realloc(s->resp, nc);
        if (!nb) return 0;
        s->resp = nb;
        s->resp_cap = nc;
    }
    memcpy(s->resp + s->resp_n, p, n);
    s->resp_n += n;
    s->resp[s->resp_n] = 0;
    return n;
}

static const char *image_of(const Run *R, const Slot *s) { return R->map->entries[s->entry].image; }

static void logf_(const Run *R, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const Run *R, const char *fmt, ...) {
    (void)R;
    va_list ap;
    va_start(ap, fmt);
    fputs("distill: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int start_request(Run *R, Slot *s) {
    const DistillOptions *o = R->o;
    CURL *h = s->h;
    curl_easy_reset(h);
    s->resp_n = 0;
    if (s->resp) s->resp[0] = 0;
    s->overflow = 0;
    s->err[0] = 0;
    long tmo = (long)(o->timeout * 1000 + 0.5);
    if (tmo < 1) tmo = 1;
    int bad = curl_easy_setopt(h, CURLOPT_URL, R->url) ||
              curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->body) ||
              curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(s->body)) ||
              curl_easy_setopt(h, CURLOPT_HTTPHEADER, R->headers) ||
              curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) ||
              curl_easy_setopt(h, CURLOPT_WRITEDATA, s) ||
              curl_easy_setopt(h, CURLOPT_PRIVATE, s) ||
              curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->err) ||
              curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo) ||
              curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, tmo < 30000 ? tmo : 30000L) ||
              curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
              curl_easy_setopt(h, CURLOPT_NOPROXY, R->noproxy) ||
              curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") ||
              curl_easy_setopt(h, CURLOPT_USERAGENT, "vcm-distill") ||
              curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (bad || curl_multi_add_handle(R->multi, h)) return vcm_fail(VCM_ERR, "curl: cannot set up a request");
    s->state = SLOT_RUN;
    s->attempt++;
    R->st->requests++;
    if (s->attempt > 1) R->st->retries++;
    return VCM_OK;
}

/* Claim the next entry that needs a request, render its prompt. 0: slot filled,
 * 1: no entry left. */
static int take_next(Run *R, Slot *s) {
    const RegionMap *m = R->map;
    while (R->next < m->n) {
        long i = R->next++;
        const RegionEntry *e = &m->entries[i];
        const RegionEntry *first = regionmap_find(m, e->image);
        if (first && first != e) { R->st->duplicate++; continue; }
        if (distill_out_has(&R->out, e->image)) { R->st->skipped++; continue; }
        char *sys = NULL, *user = NULL;
        if (distill_prompt_render(R->prompt, e, R->o->per_image, &sys, &user) ||
            !(s->body = distill_chat_request(R->o->model, sys, user, R->o->temperature,
                                             image_seed(R->o->seed, e->image), R->o->max_tokens))) {
            logf_(R, "%s: cannot build the prompt: %s", e->image, vcm_error());
            R->st->failures[DISTILL_FAIL_PROMPT]++;
            R->st->failed++;
            free(sys); free(user);
            continue;
        }
        free(sys); free(user);
        s->entry = i;
        s->attempt = 0;
        s->state = SLOT_WAIT;
        s->wake = 0;
        return 0;
    }
    return 1;
}

static void release(Slot *s) {
    free(s->body);
    s->body = NULL;
    s->state = SLOT_IDLE;
}

/* A 200: the reply's records, written in one append. */
static int handle_reply(Run *R, Slot *s) {
    const RegionEntry *e = &R->map->entries[s->entry];
    char *content = NULL;
    if (distill_chat_content(s->resp ? s->resp : "", s->resp_n, &content)) {
        logf_(R, "%s: not a chat completion (%s): %.200s", e->image, vcm_error(), s->resp ? s->resp : "");
        R->st->failures[DISTILL_FAIL_BAD_RESPONSE]++;
        R->st->failed++;
        return VCM_OK;
    }
    json_t *records = json_array();
    int n = records ? distill_parse_reply(content, e, s->entry, R->source, records, R->st->drops) : -1;
    free(content);
    if (n < 0) { json_decref(records); return vcm_fail(VCM_ERR, "out of memory"); }
    if (n == 0) {
        R->st->empty++;
        if (R->o->verbose) logf_(R, "%s: no usable item in the reply", e->image);
        json_decref(records);
        return VCM_OK;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = f ? VCM_OK : vcm_fail(VCM_ERR, "out of memory");
    for (int i = 0; i < n && rc == VCM_OK; i++)
        if (json_dumpf(json_array_get(records, (size_t)i), f, 0) || fputc('\n', f) == EOF)
            rc = vcm_fail(VCM_ERR, "out of memory");
    if (f && fclose(f) && rc == VCM_OK) rc = vcm_fail(VCM_ERR, "out of memory");
    json_decref(records);
    if (rc == VCM_OK) rc = distill_out_append(&R->out, e->image, buf, len);
    free(buf);
    if (rc) return rc;
    R->st->records += n;
    R->st->done++;
    if (R->o->verbose) logf_(R, "%s: %d records", e->image, n);
    return VCM_OK;
}

/* A transfer ended. Decide: records, retry, give up or stop everything. */
static int handle_done(Run *R, Slot *s, CURLcode res, int stop) {
    DistillStats *st = R->st;
    const char *img = image_of(R, s);
    long code = 0;
    curl_off_t retry_after = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(s->h, CURLINFO_RETRY_AFTER, &retry_after);
    curl_multi_remove_handle(R->multi, s->h);
    char why[256];
    int retryable = 0;   /* 1: HTTP 429/5xx or timeout, 2: connection error */
    if (res == CURLE_OK) R->any_response = 1;
    if (res == CURLE_OK && code >= 200 && code < 300) {
        int rc = handle_reply(R, s);
        release(s);
        return rc;
    }
    if (res == CURLE_OK) {
        if (code == 429 || code == 408 || code >= 500) {
            retryable = 1;
            if (code == 429) st->http_429++; else st->http_5xx++;
            snprintf(why, sizeof why, "HTTP %ld", code);
        } else {
            logf_(R, "%s: HTTP %ld from %s: %.300s", img, code, R->url, s->resp ? s->resp : "");
            st->failures[DISTILL_FAIL_HTTP]++;
            st->failed++;
            if (code == 401 || code == 403 || code == 404) {
                /* every other request would get the same: stop */
                st->fatal = 1;
                R->no_more = 1;
                snprintf(R->fatal_msg, sizeof R->fatal_msg, "HTTP %ld from %s%s", code, R->url,
                         code == 404 ? " (is the endpoint right? see docs/DISTILL.md)"
                                     : " (is VCM_API_KEY set and valid?)");
            }
            release(s);
            return VCM_OK;
        }
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
        retryable = 1;
        st->timeouts++;
        snprintf(why, sizeof why, "timed out after %g s", R->o->timeout);
    } else if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
               res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR || res == CURLE_GOT_NOTHING ||
               res == CURLE_PARTIAL_FILE || res == CURLE_SSL_CONNECT_ERROR ||
               res == CURLE_HTTP2 || res == CURLE_HTTP2_STREAM) {
        retryable = 2;
        st->conn_errors++;
        snprintf(why, sizeof why, "%s", s->err[0] ? s->err : curl_easy_strerror(res));
    } else if (res == CURLE_WRITE_ERROR && s->overflow) {
        logf_(R, "%s: response larger than %u bytes", img, MAX_RESPONSE);
        st->failures[DISTILL_FAIL_BAD_RESPONSE]++;
        st->failed++;
        release(s);
        return VCM_OK;
    } else {
        st->fatal = 1;
        R->no_more = 1;
        st->failures[DISTILL_FAIL_GAVE_UP]++;
        st->failed++;
        snprintf(R->fatal_msg, sizeof R->fatal_msg, "%s: %s", R->url, s->err[0] ? s->err : curl_easy_strerror(res));
        release(s);
        return VCM_OK;
    }
    if (s->attempt > R->o->retries) {
        logf_(R, "%s: giving up after %d requests: %s", img, s->attempt, why);
        st->failures[DISTILL_FAIL_GAVE_UP]++;
        st->failed++;
        release(s);
        if (retryable == 2 && !R->any_response) {
            /* never reached the server at all: every other image would fail the same way */
            st->fatal = 1;
            R->no_more = 1;
            snprintf(R->fatal_msg, sizeof R->fatal_msg, "cannot reach %s: %s", R->url, why);
        }
        return VCM_OK;
    }
    if (stop || R->no_more) {           /* interrupted or out of budget: leave it for a re-run */
        st->pending++;
        release(s);
        return VCM_OK;
    }
    double delay;
    if (retry_after > 0) {
        delay = (double)retry_after;   /* the server said when: honour it as sent */
    } else {
        delay = R->o->backoff * pow(2.0, s->attempt - 1);
        if (delay > R->o->backoff_max) delay = R->o->backoff_max;
        delay *= 0.5 + 0.5 * vcm_rng_uniform(&R->rng);   /* jitter: spread synchronized retries */
    }
    if (R->o->verbose || delay >= 10)
        logf_(R, "%s: %s; retry %d/%d in %.2f s%s", img, why, s->attempt, R->o->retries, delay,
              retry_after > 0 ? " (Retry-After)" : "");
    s->state = SLOT_WAIT;
    s->wake = now_s() + delay;
    return VCM_OK;
}

static void progress(Run *R, int force) {
    double t = now_s();
    if (!force && t - R->last_log < 10) return;
    R->last_log = t;
    const DistillStats *st = R->st;
    long finished = st->done + st->empty + st->failed;
    logf_(R, "%ld/%ld images (%ld skipped), %ld records, %ld failed, %ld requests, %ld retries, %.2f images/s",
          finished + st->skipped + st->duplicate, st->images, st->skipped, st->records, st->failed,
          st->requests, st->retries, finished / (t - R->t0 > 1e-9 ? t - R->t0 : 1e-9));
}

/* The entries never claimed: skipped / duplicate / pending, so the counts add up. */
static void count_unclaimed(Run *R) {
    const RegionMap *m = R->map;
    for (; R->next < m->n; R->next++) {
        const RegionEntry *e = &m->entries[R->next];
        const RegionEntry *first = regionmap_find(m, e->image);
        if (first && first != e) R->st->duplicate++;
        else if (distill_out_has(&R->out, e->image)) R->st->skipped++;
        else R->st->pending++;
    }
}

static int build_noproxy(Run *R) {
    /* Loopback never goes through a proxy; the user's no_proxy list is kept. */
    const char *env = getenv("no_proxy");
    if (!env || !*env) env = getenv("NO_PROXY");
    const char *base = "localhost,127.0.0.1,::1";
    size_t n = strlen(base) + (env ? strlen(env) + 1 : 0) + 1;
    if (!(R->noproxy = malloc(n))) return -1;
    snprintf(R->noproxy, n, "%s%s%s", base, env && *env ? "," : "", env && *env ? env : "");
    return 0;
}

int distill_run(const RegionMap *map, const DistillPrompt *prompt, const char *out_path,
                const DistillOptions *o, DistillStats *st) {
    memset(st, 0, sizeof *st);
    st->images = map->n;
    Run R;
    memset(&R, 0, sizeof R);
    R.map = map; R.prompt = prompt; R.o = o; R.st = st;
    R.out.fd = -1;
    R.rng = o->seed ^ 0x6a09e667f3bcc909ULL;
    R.t0 = R.last_log = now_s();
    int parallel = o->parallel < 1 ? 1 : o->parallel > 256 ? 256 : o->parallel;
    Slot *slots = calloc((size_t)parallel, sizeof *slots);
    char *source_buf = NULL;
    int rc = VCM_OK;
    if (!o->endpoint || !o->model) { free(slots); return vcm_fail(VCM_EINPUT, "distill: endpoint and model are required"); }
    if (!slots) return vcm_fail(VCM_ERR, "out of memory");
    if (strncasecmp(o->endpoint, "http://", 7) && strncasecmp(o->endpoint, "https://", 8)) {
        free(slots);
        return vcm_fail(VCM_EINPUT, "endpoint \"%s\": wants an http:// or https:// URL", o->endpoint);
    }
    if (o->source) R.source = o->source;
    else {
        size_t n = strlen(prompt->version) + 16;
        if (!(source_buf = malloc(n))) { free(slots); return vcm_fail(VCM_ERR, "out of memory"); }
        snprintf(source_buf, n, "vcm_distill_%s", prompt->version);
        R.source = source_buf;
    }
    if ((rc = distill_out_open(out_path, R.source, &R.out))) { free(slots); free(source_buf); return rc; }
    st->truncated_bytes = R.out.truncated_bytes;
    if (R.out.truncated_bytes)
        logf_(&R, "%s: cut away a partial last line (%ld bytes) left by an interrupted writer",
              out_path, R.out.truncated_bytes);

    if (curl_global_init(CURL_GLOBAL_DEFAULT)) { rc = vcm_fail(VCM_ERR, "curl: global init failed"); goto done_out; }
    R.multi = curl_multi_init();
    R.url = distill_chat_url(o->endpoint);
    R.headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (R.headers) R.headers = curl_slist_append(R.headers, "Expect:");   /* no 100-continue round trip */
    if (R.headers && o->api_key && *o->api_key) {
        size_t n = strlen(o->api_key) + 32;
        char *a = malloc(n);
        if (a) {
            snprintf(a, n, "Authorization: Bearer %s", o->api_key);
            struct curl_slist *h2 = curl_slist_append(R.headers, a);
            free(a);
            if (h2) R.headers = h2; else { curl_slist_free_all(R.headers); R.headers = NULL; }
        } else { curl_slist_free_all(R.headers); R.headers = NULL; }
    }
    if (!R.multi || !R.url || !R.headers || build_noproxy(&R)) { rc = vcm_fail(VCM_ERR, "out of memory"); goto done_curl; }
    for (int i = 0; i < parallel; i++)
        if (!(slots[i].h = curl_easy_init())) { rc = vcm_fail(VCM_ERR, "curl: cannot create a handle"); goto done_curl; }
    curl_multi_setopt(R.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)parallel);

    for (;;) {
        int stop = o->stop ? (int)*o->stop : 0;
        if (stop && !st->interrupted) {
            st->interrupted = 1;
            int running = 0;
            for (int i = 0; i < parallel; i++) running += slots[i].state == SLOT_RUN;
            if (running && stop < 2)
                logf_(&R, "interrupted: waiting for the %d request%s in flight (interrupt again to abandon)",
                      running, running > 1 ? "s" : "");
        }
        for (int i = 0; i < parallel; i++) {
            Slot *s = &slots[i];
            if (s->state == SLOT_RUN && stop >= 2) {   /* abandon */
                curl_multi_remove_handle(R.multi, s->h);
                st->pending++;
                release(s);
            } else if (s->state == SLOT_WAIT && (stop || R.no_more)) {
                st->pending++;
                release(s);
            }
        }
        if (o->max_requests > 0 && st->requests >= o->max_requests && !R.budget_spent) {
            R.budget_spent = 1;   /* what still wants a request becomes pending */
            R.no_more = 1;
        }
        double t = now_s();
        int busy = 0;
        for (int i = 0; i < parallel && rc == VCM_OK; i++) {
            Slot *s = &slots[i];
            if (s->state == SLOT_IDLE && !stop && !R.no_more) take_next(&R, s);
            if (s->state == SLOT_WAIT && s->wake <= t) {
                if (o->max_requests > 0 && st->requests >= o->max_requests) {
                    R.budget_spent = R.no_more = 1;
                    st->pending++;
                    release(s);
                } else {
                    rc = start_request(&R, s);
                }
            }
            busy += s->state != SLOT_IDLE;
        }
        if (rc) break;
        if (!busy && (stop || R.no_more || R.next >= map->n)) break;

        int still;
        curl_multi_perform(R.multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(R.multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            Slot *s = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            CURLcode res = msg->data.result;
            if (s && (rc = handle_done(&R, s, res, stop))) break;
        }
        if (rc) break;
        progress(&R, 0);

        /* sleep until a transfer moves, a retry is due, or 100 ms (to see a signal) */
        double wait = 0.1;
        t = now_s();
        for (int i = 0; i < parallel; i++)
            if (slots[i].state == SLOT_WAIT && slots[i].wake - t < wait) wait = slots[i].wake - t;
        if (wait > 0) curl_multi_poll(R.multi, NULL, 0, (int)(wait * 1000) + 1, NULL);
    }

    if (rc) {   /* a failure of our own (disk, memory): what is in flight is left for a re-run */
        for (int i = 0; i < parallel; i++) {
            if (slots[i].state == SLOT_RUN) curl_multi_remove_handle(R.multi, slots[i].h);
            if (slots[i].state != SLOT_IDLE) { st->pending++; release(&slots[i]); }
        }
    }
    count_unclaimed(&R);
    if (R.budget_spent && st->pending > 0 && !st->interrupted && !st->fatal) {
        st->budget_exhausted = 1;
        logf_(&R, "the budget of %ld requests is spent: %ld images left for a re-run", o->max_requests, st->pending);
    }
    if (rc == VCM_OK && st->fatal) rc = vcm_fail(VCM_ERR, "%s", R.fatal_msg);
    if (st->requests) progress(&R, 1);
done_curl:
    for (int i = 0; i < parallel; i++) {
        if (slots[i].h) curl_easy_cleanup(slots[i].h);
        free(slots[i].resp);
        free(slots[i].body);
    }
    if (R.multi) curl_multi_cleanup(R.multi);
    curl_slist_free_all(R.headers);
    free(R.url);
    free(R.noproxy);
    curl_global_cleanup();
done_out:
    distill_out_close(&R.out);
    free(slots);
    free(source_buf);
    return rc;
}

json_t *distill_stats_json(const DistillStats *st, const char *source) {
    json_t *drops = json_object(), *fails = json_object();
    for (int i = 0; i < DISTILL_N_DROPS && drops; i++)
        json_object_set_new(drops, distill_drop_name(i), json_integer(st->drops[i]));
    for (int i = 0; i < DISTILL_N_FAILS && fails; i++)
        json_object_set_new(fails, distill_fail_name(i), json_integer(st->failures[i]));
    json_t *images = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                               "total", (json_int_t)st->images, "done", (json_int_t)st->done,
                               "empty", (json_int_t)st->empty, "skipped", (json_int_t)st->skipped,
                               "duplicate", (json_int_t)st->duplicate, "failed", (json_int_t)st->failed,
                               "pending", (json_int_t)st->pending);
    return json_pack("{s:s?, s:I, s:o*, s:I, s:I, s:I, s:I, s:I, s:I, s:o*, s:o*, s:I, s:b, s:b, s:b}",
                     "source", source, "records", (json_int_t)st->records, "images", images,
                     "requests", (json_int_t)st->requests, "retries", (json_int_t)st->retries,
                     "timeouts", (json_int_t)st->timeouts, "http_429", (json_int_t)st->http_429,
                     "http_5xx", (json_int_t)st->http_5xx, "connection_errors", (json_int_t)st->conn_errors,
                     "drops", drops, "failures", fails,
                     "repaired_partial_line_bytes", (json_int_t)st->truncated_bytes,
                     "interrupted", st->interrupted, "budget_exhausted", st->budget_exhausted,
                     "fatal", st->fatal);
}
