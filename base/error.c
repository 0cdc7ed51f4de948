/* The error message buffer: the one piece of global state besides the thread pool.
 * Thread-local so that ops failing inside OpenMP regions do not race. */
#include "base.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_buf[1024];

const char *vcm_error(void) { return error_buf[0] ? error_buf : "unknown error"; }

void vcm_clear_error(void) { error_buf[0] = 0; }

int vcm_fail(int code, const char *fmt, ...) {
    /* Format into a local buffer first: callers may pass vcm_error() itself as an
     * argument (to prefix the previous message), which would overlap the output. */
    char tmp[sizeof error_buf];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(error_buf, tmp, sizeof tmp);
    return code;
}
