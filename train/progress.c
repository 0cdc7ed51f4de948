/* Progress on stderr: on a terminal one line redrawn in place, otherwise plain log
 * lines (so that a log file or CI output stays readable). */
#include "train/train.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

void progress_start(Progress *p, long step0, long total) {
    p->tty = isatty(2);
    p->step0 = step0;
    p->t0 = p->last = now_seconds();
    p->total = total;
}

void progress_update(Progress *p, long step, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    double t = now_seconds(), el = t - p->t0;
    p->last = t;
    char eta[32] = "";
    if (step > p->step0 && p->total > step) {
        long s = (long)(el / (double)(step - p->step0) * (double)(p->total - step));
        snprintf(eta, sizeof eta, " eta %ld:%02ld", s / 60, s % 60);
    }
    if (p->tty) fprintf(stderr, "\r\033[K[%ld/%ld] %s%s", step, p->total, msg, eta);
    else fprintf(stderr, "[%ld/%ld] %s%s\n", step, p->total, msg, eta);
    fflush(stderr);
}

void progress_end(Progress *p) {
    if (p->tty) fputc('\n', stderr);
}
