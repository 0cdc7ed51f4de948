/* Running `vcm CMD ...` from a test program: captured stdout/stderr, exit code, time,
 * and a signal sent mid-run (once an output file holds N lines, or after a delay).
 * Plus the small file and JSON helpers the command tests share. Header-only (static
 * functions); include after tests/test.h and <jansson.h>. */
#ifndef VCM_TEST_VCM_RUN_H
#define VCM_TEST_VCM_RUN_H

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char vr_tmpdir[64];

/* mkdtemp under /tmp; 0 ok. */
static int vr_tmp_init(const char *prefix) {
    snprintf(vr_tmpdir, sizeof vr_tmpdir, "/tmp/%s_XXXXXX", prefix);
    return mkdtemp(vr_tmpdir) ? 0 : -1;
}

static void vr_tmp_remove(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", vr_tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", vr_tmpdir);
}

static char *vr_path(const char *name) {   /* 32 rotating buffers */
    static char bufs[32][256];
    static int k;
    char *b = bufs[k++ % 32];
    snprintf(b, 256, "%s/%s", vr_tmpdir, name);
    return b;
}

static char *vr_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); b = NULL; }
    if (b) b[n] = 0;
    fclose(f);
    if (len) *len = b ? (size_t)n : 0;
    return b;
}

static void vr_write(const char *path, const char *text, const char *mode) {
    FILE *f = fopen(path, mode);
    if (f) { fputs(text, f); fclose(f); }
}

static long vr_count_lines(const char *path) {
    char *t = vr_slurp(path, NULL);
    long n = 0;
    for (char *p = t; p && *p; p++) n += *p == '\n';
    free(t);
    return n;
}

static double vr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct VcmRun { int code; char *out, *err; double secs; } VcmRun;

static void vcm_run_free(VcmRun *r) { free(r->out); free(r->err); memset(r, 0, sizeof *r); }

/* `vcm cmd args...` ($VCM_BIN or build/vcm), VCM_API_KEY = api_key (NULL: unset). When
 * signal_at_lines > 0, sig is sent once `watch` holds that many lines; when
 * signal_after_s > 0, that long after the start, n_signals times 0.2 s apart. Killed
 * after 40 s. */
static VcmRun vcm_run(const char *cmd, const char *const *args, const char *api_key, const char *watch,
                      long signal_at_lines, double signal_after_s, int n_signals, int sig) {
    VcmRun r = {-1, NULL, NULL, 0};
    const char *bin = getenv("VCM_BIN") ? getenv("VCM_BIN") : "build/vcm";
    char *argv[80];
    int n = 0;
    argv[n++] = (char *)bin;
    argv[n++] = (char *)cmd;
    for (int i = 0; args[i] && n < 79; i++) argv[n++] = (char *)args[i];
    argv[n] = NULL;
    const char *out_path = vr_path("run.stdout"), *err_path = vr_path("run.stderr");
    double t0 = vr_now();
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(121);
        dup2(o, 1);
        dup2(e, 2);
        if (api_key) setenv("VCM_API_KEY", api_key, 1); else unsetenv("VCM_API_KEY");
        execv(bin, argv);
        _exit(127);
    }
    int status = 0, sent = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        double el = vr_now() - t0;
        if (el > 40) { kill(pid, SIGKILL); waitpid(pid, &status, 0); break; }
        if (signal_at_lines > 0 && !sent && vr_count_lines(watch) >= signal_at_lines) {
            kill(pid, sig);
            sent = 1;
        }
        if (signal_after_s > 0 && sent < n_signals && el >= signal_after_s + 0.2 * sent) {
            kill(pid, sig);
            sent++;
        }
        usleep(5000);
    }
    r.secs = vr_now() - t0;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = vr_slurp(out_path, NULL);
    r.err = vr_slurp(err_path, NULL);
    /* under the sanitizer build, a leak or an error in vcm shows here */
    CHECK_MSG(!r.err || !strstr(r.err, "Sanitizer"), "%.3000s", r.err);
    return r;
}

/* The JSON value is the string s (NULL-safe, so a missing summary fails, not crashes). */
static int vr_jstr_is(const json_t *v, const char *s) {
    const char *t = json_string_value(v);
    return t && !strcmp(t, s);
}

/* An integer or boolean of a JSON object by a dotted path ("images.done"); -999 if absent. */
static long vr_jget(json_t *o, const char *path) {
    char key[64];
    const char *dot = strchr(path, '.');
    if (dot) {
        snprintf(key, sizeof key, "%.*s", (int)(dot - path), path);
        return vr_jget(json_object_get(o, key), dot + 1);
    }
    json_t *v = json_object_get(o, path);
    return json_is_boolean(v) ? json_is_true(v) : json_is_integer(v) ? (long)json_integer_value(v) : -999;
}

/* The run's stdout as one JSON object (NULL, with what was there printed, if not). */
static json_t *vr_summary(const VcmRun *r) {
    json_t *s = r->out ? json_loads(r->out, 0, NULL) : NULL;
    if (!s) fprintf(stderr, "  no JSON summary on stdout: %s\n  stderr: %.2000s\n", r->out ? r->out : "(none)", r->err ? r->err : "");
    return s;
}

#endif
