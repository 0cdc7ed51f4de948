/* The chat client shared by `vcm distill` and `vcm verbalize`. One thread drives up to
 * `parallel` transfers with the curl multi interface; each slot carries one job from
 * its first request to its outcome: request -> (retry after a backoff)* -> reply or
 * failure, reported to the caller's callbacks. What a job is (an image, a region of
 * one) and what its reply becomes is the caller's business. The loop wakes at least
 * every 100 ms to notice an interruption. */
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

double distill_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* From the run's seed and the image name (and the part) only, so a request's seed does
 * not depend on the order in which jobs are handled. part < 0 is distill's formula. */
uint32_t distill_request_seed(uint64_t seed, const char *image, int part) {
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = image; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    if (part >= 0) h = (h ^ (uint64_t)(part + 1)) * 1099511628211ULL;
    uint64_t s = seed ^ h;
    return (uint32_t)(vcm_rng_next(&s) & 0x7fffffff);
}

void distill_log(const char *tool, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", tool);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

enum { SLOT_IDLE, SLOT_WAIT, SLOT_RUN };

typedef struct Slot {
    CURL *h;
    int state;
    DistillJob job;
    int attempt;         /* requests made for this job */
    double wake;         /* SLOT_WAIT: when to (re)start */
    char *resp;          /* the response body */
    size_t resp_n, resp_cap;
    int overflow;
    char err[CURL_ERROR_SIZE];
} Slot;

typedef struct Client {
    const DistillOptions *o;
    const DistillClient *c;
    DistillNet *net;
    CURLM *multi;
    struct curl_slist *headers;
    char *url, *noproxy;
    uint64_t rng;
    int no_more;         /* budget spent, fatal, or the caller's error: start nothing new */
    int drained;         /* next() said nothing is left */
    int any_response;    /* some request got an HTTP answer */
    char fatal_msg[512]; /* why the run stopped early (net->fatal) */
    double t0, last_log;
} Client;

#define LOG(C, ...) distill_log((C)->c->tool, __VA_ARGS__)

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

static int start_request(Client *C, Slot *s) {
    const DistillOptions *o = C->o;
    CURL *h = s->h;
    curl_easy_reset(h);
    s->resp_n = 0;
    if (s->resp) s->resp[0] = 0;
    s->overflow = 0;
    s->err[0] = 0;
    long tmo = (long)(o->timeout * 1000 + 0.5);
    if (tmo < 1) tmo = 1;
    int bad = curl_easy_setopt(h, CURLOPT_URL, C->url) ||
              curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->job.body) ||
              curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(s->job.body)) ||
              curl_easy_setopt(h, CURLOPT_HTTPHEADER, C->headers) ||
              curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) ||
              curl_easy_setopt(h, CURLOPT_WRITEDATA, s) ||
              curl_easy_setopt(h, CURLOPT_PRIVATE, s) ||
              curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->err) ||
              curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, tmo) ||
              curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, tmo < 30000 ? tmo : 30000L) ||
              curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) ||
              curl_easy_setopt(h, CURLOPT_NOPROXY, C->noproxy) ||
              curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") ||
              curl_easy_setopt(h, CURLOPT_USERAGENT, "vcm-distill") ||
              curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (bad || curl_multi_add_handle(C->multi, h)) return vcm_fail(VCM_ERR, "curl: cannot set up a request");
    s->state = SLOT_RUN;
    s->attempt++;
    C->net->requests++;
    if (s->attempt > 1) C->net->retries++;
    return VCM_OK;
}

/* The job is over: tell the caller (reason DISTILL_PENDING, a DISTILL_FAIL_*, or
 * DISTILL_DONE when reply() already had it) and free the slot. */
static void release(Client *C, Slot *s, int reason) {
    if (reason != DISTILL_DONE) C->c->ended(C->c->ctx, &s->job, reason);
    free(s->job.body);
    free(s->job.label);
    memset(&s->job, 0, sizeof s->job);
    s->state = SLOT_IDLE;
}

/* A 2xx: the reply's content to the caller. */
static int handle_reply(Client *C, Slot *s) {
    char *content = NULL;
    if (distill_chat_content(s->resp ? s->resp : "", s->resp_n, &content)) {
        LOG(C, "%s: not a chat completion (%s): %.200s", s->job.label, vcm_error(), s->resp ? s->resp : "");
        release(C, s, DISTILL_FAIL_BAD_RESPONSE);
        return VCM_OK;
    }
    int rc = C->c->reply(C->c->ctx, &s->job, content);
    free(content);
    release(C, s, DISTILL_DONE);
    return rc;
}

/* A transfer ended. Decide: reply, retry, give up or stop everything. */
static int handle_done(Client *C, Slot *s, CURLcode res, int stop) {
    DistillNet *net = C->net;
    const char *label = s->job.label;
    long code = 0;
    curl_off_t retry_after = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(s->h, CURLINFO_RETRY_AFTER, &retry_after);
    curl_multi_remove_handle(C->multi, s->h);
    char why[256];
    int retryable = 0;   /* 1: HTTP 429/5xx or timeout, 2: connection error */
    if (res == CURLE_OK) C->any_response = 1;
    if (res == CURLE_OK && code >= 200 && code < 300) return handle_reply(C, s);
    if (res == CURLE_OK) {
        if (code == 429 || code == 408 || code >= 500) {
            retryable = 1;
            if (code == 429) net->http_429++; else net->http_5xx++;
            snprintf(why, sizeof why, "HTTP %ld", code);
        } else {
            LOG(C, "%s: HTTP %ld from %s: %.300s", label, code, C->url, s->resp ? s->resp : "");
            if (code == 401 || code == 403 || code == 404) {
                /* every other request would get the same: stop */
                net->fatal = 1;
                C->no_more = 1;
                snprintf(C->fatal_msg, sizeof C->fatal_msg, "HTTP %ld from %s%s", code, C->url,
                         code == 404 ? " (is the endpoint right? see docs/DISTILL.md)"
                                     : " (is VCM_API_KEY set and valid?)");
            }
            release(C, s, DISTILL_FAIL_HTTP);
            return VCM_OK;
        }
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
        retryable = 1;
        net->timeouts++;
        snprintf(why, sizeof why, "timed out after %g s", C->o->timeout);
    } else if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST ||
               res == CURLE_RECV_ERROR || res == CURLE_SEND_ERROR || res == CURLE_GOT_NOTHING ||
               res == CURLE_PARTIAL_FILE || res == CURLE_SSL_CONNECT_ERROR ||
               res == CURLE_HTTP2 || res == CURLE_HTTP2_STREAM) {
        retryable = 2;
        net->conn_errors++;
        snprintf(why, sizeof why, "%s", s->err[0] ? s->err : curl_easy_strerror(res));
    } else if (res == CURLE_WRITE_ERROR && s->overflow) {
        LOG(C, "%s: response larger than %u bytes", label, MAX_RESPONSE);
        release(C, s, DISTILL_FAIL_BAD_RESPONSE);
        return VCM_OK;
    } else {
        net->fatal = 1;
        C->no_more = 1;
        snprintf(C->fatal_msg, sizeof C->fatal_msg, "%s: %s", C->url, s->err[0] ? s->err : curl_easy_strerror(res));
        release(C, s, DISTILL_FAIL_GAVE_UP);
        return VCM_OK;
    }
    if (s->attempt > C->o->retries) {
        LOG(C, "%s: giving up after %d requests: %s", label, s->attempt, why);
        release(C, s, DISTILL_FAIL_GAVE_UP);
        if (retryable == 2 && !C->any_response) {
            /* never reached the server at all: every other job would fail the same way */
            net->fatal = 1;
            C->no_more = 1;
            snprintf(C->fatal_msg, sizeof C->fatal_msg, "cannot reach %s: %s", C->url, why);
        }
        return VCM_OK;
    }
    if (stop || C->no_more) {           /* interrupted or out of budget: leave it for a re-run */
        release(C, s, DISTILL_PENDING);
        return VCM_OK;
    }
    double delay;
    if (retry_after > 0) {
        delay = (double)retry_after;   /* the server said when: honour it as sent */
    } else {
        delay = C->o->backoff * pow(2.0, s->attempt - 1);
        if (delay > C->o->backoff_max) delay = C->o->backoff_max;
        delay *= 0.5 + 0.5 * vcm_rng_uniform(&C->rng);   /* jitter: spread synchronized retries */
    }
    if (C->o->verbose || delay >= 10)
        LOG(C, "%s: %s; retry %d/%d in %.2f s%s", label, why, s->attempt, C->o->retries, delay,
            retry_after > 0 ? " (Retry-After)" : "");
    s->state = SLOT_WAIT;
    s->wake = distill_now() + delay;
    return VCM_OK;
}

static int build_noproxy(Client *C) {
    /* Loopback never goes through a proxy; the user's no_proxy list is kept. */
    const char *env = getenv("no_proxy");
    if (!env || !*env) env = getenv("NO_PROXY");
    const char *base = "localhost,127.0.0.1,::1";
    size_t n = strlen(base) + (env ? strlen(env) + 1 : 0) + 1;
    if (!(C->noproxy = malloc(n))) return -1;
    snprintf(C->noproxy, n, "%s%s%s", base, env && *env ? "," : "", env && *env ? env : "");
    return 0;
}

static int build_headers(Client *C) {
    const char *key = C->o->api_key;
    C->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (C->headers) {
        struct curl_slist *h2 = curl_slist_append(C->headers, "Expect:");   /* no 100-continue round trip */
        if (!h2) return -1;
        C->headers = h2;
    }
    if (!C->headers) return -1;
    if (key && *key) {
        size_t n = strlen(key) + 32;
        char *a = malloc(n);
        if (!a) return -1;
        snprintf(a, n, "Authorization: Bearer %s", key);
        struct curl_slist *h2 = curl_slist_append(C->headers, a);
        free(a);
        if (!h2) return -1;
        C->headers = h2;
    }
    return 0;
}

int distill_client_check(const DistillOptions *o) {
    if (!o->endpoint || !o->model) return vcm_fail(VCM_EINPUT, "endpoint and model are required");
    if (strncasecmp(o->endpoint, "http://", 7) && strncasecmp(o->endpoint, "https://", 8))
        return vcm_fail(VCM_EINPUT, "endpoint \"%s\": wants an http:// or https:// URL", o->endpoint);
    return VCM_OK;
}

int distill_client_run(const DistillOptions *o, const DistillClient *c, DistillNet *net) {
    memset(net, 0, sizeof *net);
    int rc = distill_client_check(o);
    if (rc) return rc;
    Client C;
    memset(&C, 0, sizeof C);
    C.o = o; C.c = c; C.net = net;
    C.rng = o->seed ^ 0x6a09e667f3bcc909ULL;
    C.t0 = C.last_log = distill_now();
    int parallel = o->parallel < 1 ? 1 : o->parallel > 256 ? 256 : o->parallel;
    Slot *slots = calloc((size_t)parallel, sizeof *slots);
    if (!slots) return vcm_fail(VCM_ERR, "out of memory");
    if (curl_global_init(CURL_GLOBAL_DEFAULT)) { free(slots); return vcm_fail(VCM_ERR, "curl: global init failed"); }
    C.multi = curl_multi_init();
    C.url = distill_chat_url(o->endpoint);
    if (!C.multi || !C.url || build_headers(&C) || build_noproxy(&C)) { rc = vcm_fail(VCM_ERR, "out of memory"); goto done; }
    for (int i = 0; i < parallel; i++)
        if (!(slots[i].h = curl_easy_init())) { rc = vcm_fail(VCM_ERR, "curl: cannot create a handle"); goto done; }
    curl_multi_setopt(C.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)parallel);

    for (;;) {
        int stop = o->stop ? (int)*o->stop : 0;
        if (stop && !net->interrupted) {
            net->interrupted = 1;
            int running = 0;
            for (int i = 0; i < parallel; i++) running += slots[i].state == SLOT_RUN;
            if (running && stop < 2)
                LOG(&C, "interrupted: waiting for the %d request%s in flight (interrupt again to abandon)",
                    running, running > 1 ? "s" : "");
        }
        for (int i = 0; i < parallel; i++) {
            Slot *s = &slots[i];
            if (s->state == SLOT_RUN && stop >= 2) {   /* abandon */
                curl_multi_remove_handle(C.multi, s->h);
                release(&C, s, DISTILL_PENDING);
            } else if (s->state == SLOT_WAIT && (stop || C.no_more)) {
                release(&C, s, DISTILL_PENDING);
            }
        }
        if (o->max_requests > 0 && net->requests >= o->max_requests && !net->budget_spent) {
            net->budget_spent = 1;   /* what still wants a request becomes pending */
            C.no_more = 1;
        }
        double t = distill_now();
        int busy = 0;
        for (int i = 0; i < parallel && rc == VCM_OK; i++) {
            Slot *s = &slots[i];
            if (s->state == SLOT_IDLE && !stop && !C.no_more && !C.drained) {
                int got = c->next(c->ctx, &s->job);
                if (got < 0) { rc = -got; C.no_more = 1; break; }
                if (got == 0) C.drained = 1;
                else { s->attempt = 0; s->state = SLOT_WAIT; s->wake = 0; }
            }
            if (s->state == SLOT_WAIT && s->wake <= t) {
                if (o->max_requests > 0 && net->requests >= o->max_requests) {
                    net->budget_spent = C.no_more = 1;
                    release(&C, s, DISTILL_PENDING);
                } else {
                    rc = start_request(&C, s);
                }
            }
            busy += s->state != SLOT_IDLE;
        }
        if (rc) break;
        if (!busy && (stop || C.no_more || C.drained)) break;

        int still;
        curl_multi_perform(C.multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(C.multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            Slot *s = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            CURLcode res = msg->data.result;
            if (s && (rc = handle_done(&C, s, res, stop))) break;
        }
        if (rc) break;
        if (c->progress && distill_now() - C.last_log >= 10) {
            C.last_log = distill_now();
            c->progress(c->ctx, net, C.last_log - C.t0);
        }

        /* sleep until a transfer moves, a retry is due, or 100 ms (to see a signal) */
        double wait = 0.1;
        t = distill_now();
        for (int i = 0; i < parallel; i++)
            if (slots[i].state == SLOT_WAIT && slots[i].wake - t < wait) wait = slots[i].wake - t;
        if (wait > 0) curl_multi_poll(C.multi, NULL, 0, (int)(wait * 1000) + 1, NULL);
    }

    if (rc) {   /* a failure of our own (disk, memory, input): what is in flight is left for a re-run */
        for (int i = 0; i < parallel; i++) {
            if (slots[i].state == SLOT_RUN) curl_multi_remove_handle(C.multi, slots[i].h);
            if (slots[i].state != SLOT_IDLE) release(&C, &slots[i], DISTILL_PENDING);
        }
    }
    if (rc == VCM_OK && net->fatal) rc = vcm_fail(VCM_ERR, "%s", C.fatal_msg);
    if (net->requests && c->progress) c->progress(c->ctx, net, distill_now() - C.t0);
done:
    for (int i = 0; i < parallel; i++) {
        if (slots[i].h) curl_easy_cleanup(slots[i].h);
        free(slots[i].resp);
        free(slots[i].job.body);
        free(slots[i].job.label);
    }
    if (C.multi) curl_multi_cleanup(C.multi);
    curl_slist_free_all(C.headers);
    free(C.url);
    free(C.noproxy);
    curl_global_cleanup();
    free(slots);
    return rc;
}

int distill_net_json(json_t *obj, const DistillNet *n) {
    int bad = json_object_set_new(obj, "requests", json_integer(n->requests)) |
              json_object_set_new(obj, "retries", json_integer(n->retries)) |
              json_object_set_new(obj, "timeouts", json_integer(n->timeouts)) |
              json_object_set_new(obj, "http_429", json_integer(n->http_429)) |
              json_object_set_new(obj, "http_5xx", json_integer(n->http_5xx)) |
              json_object_set_new(obj, "connection_errors", json_integer(n->conn_errors));
    return bad ? -1 : 0;
}

int distill_run_json_end(json_t *obj, json_t *fails, const DistillNet *n, long truncated_bytes, int budget_exhausted) {
    return json_object_set_new(obj, "failures", fails ? fails : json_null()) ||
           json_object_set_new(obj, "repaired_partial_line_bytes", json_integer(truncated_bytes)) ||
           json_object_set_new(obj, "interrupted", json_boolean(n->interrupted)) ||
           json_object_set_new(obj, "budget_exhausted", json_boolean(budget_exhausted)) ||
           json_object_set_new(obj, "fatal", json_boolean(n->fatal));
}
