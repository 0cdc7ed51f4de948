/* Shared by the libFuzzer harnesses (tests/fuzz/README.md): the readers take a path, so
 * each input is written to a temporary file of this process first. */
#ifndef VCM_FUZZ_H
#define VCM_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* $TMPDIR/vcm-fuzz-PID-name; one buffer per name slot, so a harness may hold a few. */
static inline const char *fuzz_tmp_path(int slot, const char *name) {
    static char buf[4][512];
    const char *dir = getenv("TMPDIR");
    snprintf(buf[slot & 3], sizeof buf[0], "%s/vcm-fuzz-%ld-%s", dir && *dir ? dir : "/tmp",
             (long)getpid(), name);
    return buf[slot & 3];
}

/* The bytes into path (replaced); abort on an I/O failure: that is the machine, not a finding. */
static inline void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) {
        perror(path);
        abort();
    }
}

#endif
