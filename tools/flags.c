/* The flag parser every subcommand uses: --long-name value, --flag, positionals. */
#include "tools/tools.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tool_error(const char *cmd, int code, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "vcm %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

void flags_usage(const char *usage, const Flag *flags, void *stream) {
    FILE *f = stream;
    fprintf(f, "%s\n", usage);
    if (flags[0].name) fprintf(f, "\nflags:\n");
    for (const Flag *fl = flags; fl->name; fl++) {
        const char *arg = fl->kind == 'b' ? "" : fl->kind == 's' || fl->kind == 'L' ? " S"
                          : fl->kind == 'i' ? " N" : " X";
        char left[64];
        snprintf(left, sizeof left, "--%s%s", fl->name, arg);
        fprintf(f, "  %-26s %s\n", left, fl->help ? fl->help : "");
    }
    fprintf(f, "  %-26s %s\n", "--help", "this text");
}

/* A numeric flag's range, written at the end of its help as "[lo..hi]" (either side may
 * be empty: unbounded), so that --help shows what is checked. 0 when the help has none. */
static int flag_range(const Flag *fl, double *lo, double *hi) {
    const char *h = fl->help ? strrchr(fl->help, '[') : NULL;
    const char *dots = h ? strstr(h, "..") : NULL;
    size_t n = h ? strlen(h) : 0;
    if (!dots || h[n - 1] != ']') return 0;
    char a[32] = "", b[32] = "", *end;
    size_t la = (size_t)(dots - h - 1), lb = (size_t)(h + n - 1 - (dots + 2));
    if (la >= sizeof a || lb >= sizeof b) return 0;
    memcpy(a, h + 1, la);   /* strtod would read "0..1" as "0." then ".1" */
    memcpy(b, dots + 2, lb);
    *lo = la ? strtod(a, &end) : -INFINITY;
    if (la && *end) return 0;
    *hi = lb ? strtod(b, &end) : INFINITY;
    return !lb || !*end;
}

static int check_range(const char *cmd, const Flag *fl, double x, const char *v) {
    double lo, hi;
    if (!flag_range(fl, &lo, &hi) || (x >= lo && x <= hi)) return 0;
    if (isinf(hi)) return tool_error(cmd, 2, "--%s must be >= %g, got \"%s\"", fl->name, lo, v);
    if (isinf(lo)) return tool_error(cmd, 2, "--%s must be <= %g, got \"%s\"", fl->name, hi, v);
    return tool_error(cmd, 2, "--%s must be in %g..%g, got \"%s\"", fl->name, lo, hi, v);
}

static int parse_value(const char *cmd, const Flag *fl, const char *v) {
    char *end;
    errno = 0;
    switch (fl->kind) {
    case 's': *(const char **)fl->dst = v; return 0;
    case 'L': {
        FlagList *l = fl->dst;
        if (l->n == (int)(sizeof l->v / sizeof l->v[0]))
            return tool_error(cmd, 2, "too many --%s flags", fl->name);
        l->v[l->n++] = v;
        return 0;
    }
    case 'i': {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < -2147483647L || x > 2147483647L)
            return tool_error(cmd, 2, "--%s wants an integer, got \"%s\"", fl->name, v);
        if (check_range(cmd, fl, (double)x, v)) return 2;
        *(int *)fl->dst = (int)x;
        return 0;
    }
    case 'f': case 'd': {
        double x = strtod(v, &end);
        if (errno || end == v || *end)
            return tool_error(cmd, 2, "--%s wants a number, got \"%s\"", fl->name, v);
        /* No flag means anything by nan or inf (--lr nan trained NaN weights and saved
         * them with exit 0), nor by a value past float's range. */
        if (!isfinite(x) || (fl->kind == 'f' && !isfinite((float)x)))
            return tool_error(cmd, 2, "--%s wants a finite number, got \"%s\"", fl->name, v);
        if (check_range(cmd, fl, x, v)) return 2;
        if (fl->kind == 'f') *(float *)fl->dst = (float)x; else *(double *)fl->dst = x;
        return 0;
    }
    }
    return tool_error(cmd, 2, "internal: flag --%s has unknown kind '%c'", fl->name, fl->kind);
}

int flags_parse(const char *usage, Flag *flags, int argc, char **argv,
                const char **pos, int max_pos, int *n_pos) {
    const char *cmd = argv[0];
    int np = 0;
    int seen[128] = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            flags_usage(usage, flags, stdout);
            return -1;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            int k = 0;
            Flag *fl = NULL;
            for (Flag *f = flags; f->name; f++, k++)
                if (strlen(f->name) == len && !strncmp(f->name, name, len)) { fl = f; break; }
            if (!fl) {
                tool_error(cmd, 2, "unknown flag %s (see vcm %s --help)", a, cmd);
                return 2;
            }
            if (k < 128) seen[k] = 1;
            if (fl->kind == 'b') {
                if (eq) return tool_error(cmd, 2, "--%s takes no value", fl->name);
                *(int *)fl->dst = 1;
                continue;
            }
            const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) return tool_error(cmd, 2, "--%s needs a value", fl->name);
            if (parse_value(cmd, fl, v)) return 2;
            continue;
        }
        if (np >= max_pos) return tool_error(cmd, 2, "unexpected argument \"%s\" (see vcm %s --help)", a, cmd);
        pos[np++] = a;
    }
    int k = 0;
    for (Flag *f = flags; f->name; f++, k++)
        if (f->help && strstr(f->help, "(required)") && !(k < 128 && seen[k]))
            return tool_error(cmd, 2, "--%s is required (see vcm %s --help)", f->name, cmd);
    if (n_pos) *n_pos = np;
    return 0;
}
