/* A fake LLM for the tests of `vcm distill`: a small HTTP/1.1 server on 127.0.0.1
 * (ephemeral port) that answers POSTs like an OpenAI-compatible chat endpoint.
 *
 * Each request is routed by a "case:NAME" tag the test puts in the prompt (the image's
 * global description), or by the test's router when it gives one (vcm verbalize's
 * prompts are fixed: its test routes by the request's seed and checks the image);
 * the test's handler gets the case name and the attempt number (1 for the first
 * request of that case, ...) and returns the reply. The server keeps
 * per-case counts and arrival times for the assertions.
 *
 * Bounded: one thread per connection, at most FAKE_MAX_CONN connections in its life,
 * Connection: close on every reply, and it stops by itself after `lifetime` seconds.
 * Header-only (static functions) so only the tests that include it compile it. */
#ifndef VCM_FAKE_LLM_H
#define VCM_FAKE_LLM_H

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FAKE_MAX_CONN 1024
#define FAKE_MAX_CASES 256
#define FAKE_MAX_TIMES 16

typedef struct FakeReply {
    int status;               /* HTTP status */
    const char *headers;      /* extra header lines, each ending "\r\n", or NULL */
    const char *content;      /* 200: the assistant's content, wrapped as a chat completion */
    const char *raw_body;     /* else: the body as is (NULL: a short JSON error) */
    int delay_ms;             /* wait this long before answering (a stall) */
} FakeReply;

typedef FakeReply (*FakeHandler)(const char *case_name, int attempt);
/* The case name of a request body (NUL-terminated) into name[cap]. */
typedef void (*FakeRouter)(const char *body, char *name, size_t cap);

typedef struct FakeCase {
    char name[64];
    int requests;
    double t[FAKE_MAX_TIMES];   /* arrival times (monotonic seconds) of the first requests */
    char *first_body;           /* the first request's body */
    char auth[160];             /* the Authorization header of the last request */
} FakeCase;

typedef struct FakeLLM {
    int port, fd;
    FakeHandler handler;
    FakeRouter router;          /* NULL: the "case:" tag */
    double deadline;
    _Atomic int stop;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    pthread_t conn[FAKE_MAX_CONN];
    int n_conn;
    FakeCase cases[FAKE_MAX_CASES];
    int n_cases;
    int requests;               /* in all */
} FakeLLM;

typedef struct FakeConn { FakeLLM *s; int fd; } FakeConn;

static double fake_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static FakeCase *fake_case_locked(FakeLLM *s, const char *name) {
    for (int i = 0; i < s->n_cases; i++)
        if (!strcmp(s->cases[i].name, name)) return &s->cases[i];
    if (s->n_cases == FAKE_MAX_CASES) return NULL;
    FakeCase *c = &s->cases[s->n_cases++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

/* A snapshot of a case's counters (zeros if it never came). */
static FakeCase fake_case(FakeLLM *s, const char *name) {
    FakeCase out;
    memset(&out, 0, sizeof out);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_cases; i++)
        if (!strcmp(s->cases[i].name, name)) { out = s->cases[i]; out.first_body = NULL; }
    pthread_mutex_unlock(&s->mu);
    return out;
}

static int fake_send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *fake_serve_conn(void *arg) {
    FakeConn *fc = arg;
    FakeLLM *s = fc->s;
    int fd = fc->fd;
    free(fc);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    char *hdr_end = NULL;
    long clen = -1;
    while (buf) {   /* read the header, then Content-Length bytes of body */
        if (n == cap) {
            if (cap >= (8u << 20)) break;
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        buf[n] = 0;
        if (!hdr_end && (hdr_end = strstr(buf, "\r\n\r\n"))) {
            clen = 0;
            for (char *l = strstr(buf, "\r\n"); l && l < hdr_end; l = strstr(l + 2, "\r\n"))
                if (!strncasecmp(l + 2, "Content-Length:", 15)) clen = atol(l + 17);
        }
        if (hdr_end && (long)(n - (size_t)(hdr_end + 4 - buf)) >= clen) break;
    }
    if (!buf || !hdr_end) { free(buf); close(fd); return NULL; }
    const char *body = hdr_end + 4;
    char name[64] = "none";
    const char *tag = s->router ? NULL : strstr(body, "case:");
    if (s->router) s->router(body, name, sizeof name);
    if (tag) {
        int k = 0;
        for (const char *p = tag + 5; k < 63 && ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'); p++)
            name[k++] = *p;
        name[k] = 0;
    }
    char auth[160] = "";
    for (char *l = strstr(buf, "\r\n"); l && l < hdr_end; l = strstr(l + 2, "\r\n"))
        if (!strncasecmp(l + 2, "Authorization:", 14)) {
            const char *v = l + 16, *e = strstr(v, "\r\n");
            while (*v == ' ') v++;
            snprintf(auth, sizeof auth, "%.*s", (int)(e - v), v);
        }
    int attempt = 0;
    pthread_mutex_lock(&s->mu);
    s->requests++;
    FakeCase *c = fake_case_locked(s, name);
    if (c) {
        if (c->requests < FAKE_MAX_TIMES) c->t[c->requests] = fake_now();
        attempt = ++c->requests;
        if (!c->first_body) c->first_body = strdup(body);
        snprintf(c->auth, sizeof c->auth, "%s", auth);
    }
    pthread_mutex_unlock(&s->mu);

    FakeReply rep = s->handler(name, attempt);
    for (int waited = 0; waited < rep.delay_ms && !s->stop; waited += 20) usleep(20000);
    char *out = NULL;
    if (rep.status == 200 && rep.content) {
        json_t *j = json_pack("{s:s, s:s, s:[{s:i, s:{s:s, s:s}, s:s}]}", "id", "fake-1", "object",
                              "chat.completion", "choices", "index", 0, "message", "role", "assistant",
                              "content", rep.content, "finish_reason", "stop");
        out = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
    } else {
        out = strdup(rep.raw_body ? rep.raw_body : "{\"error\": {\"message\": \"fake error\"}}");
    }
    if (out) {
        char head[512];
        int hn = snprintf(head, sizeof head,
                          "HTTP/1.1 %d Fake\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n%s\r\n",
                          rep.status, strlen(out), rep.headers ? rep.headers : "");
        if (fake_send_all(fd, head, (size_t)hn) == 0) fake_send_all(fd, out, strlen(out));
        free(out);
    }
    free(buf);
    shutdown(fd, SHUT_WR);
    close(fd);
    return NULL;
}

static void *fake_accept_loop(void *arg) {
    FakeLLM *s = arg;
    while (!s->stop && fake_now() < s->deadline) {
        struct pollfd p = {s->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0) continue;
        FakeConn *fc = malloc(sizeof *fc);
        pthread_mutex_lock(&s->mu);
        int full = s->n_conn == FAKE_MAX_CONN;
        pthread_mutex_unlock(&s->mu);
        if (!fc || full) { free(fc); close(c); continue; }
        fc->s = s;
        fc->fd = c;
        pthread_t t;
        if (pthread_create(&t, NULL, fake_serve_conn, fc)) { free(fc); close(c); continue; }
        pthread_mutex_lock(&s->mu);
        s->conn[s->n_conn++] = t;
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

/* Start on 127.0.0.1, port chosen by the kernel; router may be NULL. 0 ok, -1 failure. */
static int fake_llm_start_routed(FakeLLM *s, FakeHandler h, FakeRouter router, double lifetime) {
    memset(s, 0, sizeof *s);
    s->handler = h;
    s->router = router;
    s->deadline = fake_now() + lifetime;
    pthread_mutex_init(&s->mu, NULL);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0) return -1;
    int one = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t al = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 64) ||
        getsockname(s->fd, (struct sockaddr *)&a, &al)) {
        close(s->fd);
        return -1;
    }
    s->port = ntohs(a.sin_port);
    if (pthread_create(&s->accept_thread, NULL, fake_accept_loop, s)) { close(s->fd); return -1; }
    return 0;
}

static inline int fake_llm_start(FakeLLM *s, FakeHandler h, double lifetime) {
    return fake_llm_start_routed(s, h, NULL, lifetime);
}

static void fake_llm_stop(FakeLLM *s) {
    s->stop = 1;
    pthread_join(s->accept_thread, NULL);
    for (int i = 0; i < s->n_conn; i++) pthread_join(s->conn[i], NULL);
    close(s->fd);
    for (int i = 0; i < s->n_cases; i++) free(s->cases[i].first_body);
    pthread_mutex_destroy(&s->mu);
}

#endif
