/* Crash-safe file replacement: write PATH.tmp, flush it to disk, rename it onto PATH,
 * then flush the directory entry. rename(2) within one directory is atomic, so a
 * reader (or a restart after SIGKILL or power loss) sees either the old PATH or the
 * complete new one, never a prefix. */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Big stdio buffer: checkpoints are tens to hundreds of MB written in a few calls. */
#define ATOMIC_BUF (1 << 20)

static void atomic_free(AtomicFile *af) {
    free(af->path);
    free(af->tmp);
    memset(af, 0, sizeof *af);
}

int atomic_file_open_flags(AtomicFile *af, const char *path, unsigned flags) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    af->flags = flags;
    af->path = malloc(n + 1);
    af->tmp = malloc(n + 48);
    if (!af->path || !af->tmp) {
        atomic_free(af);
        return vcm_fail(VCM_ERR, "%s: out of memory", path);
    }
    memcpy(af->path, path, n + 1);
    /* Unique: writers that may race on one PATH (threads, ranks) each get their own
     * temporary, and the last rename wins with a complete file. */
    if (flags & ATOMIC_UNIQUE)
        snprintf(af->tmp, n + 48, "%s.tmp.%ld.%lx", path, (long)getpid(),
                 (unsigned long)vcm_hash64((uint64_t)(uintptr_t)pthread_self()) & 0xffffffffUL);
    else
        snprintf(af->tmp, n + 48, "%s.tmp", path);
    /* O_TRUNC: a temporary left by a killed writer is simply overwritten. */
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        vcm_fail(VCM_ERR, "%s: cannot create: %s", af->tmp, strerror(e));
        atomic_free(af);
        return VCM_ERR;
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        int e = errno;
        close(fd);
        unlink(af->tmp);
        atomic_free(af);
        return vcm_fail(VCM_ERR, "%s: %s", path, strerror(e));
    }
    setvbuf(af->f, NULL, _IOFBF, ATOMIC_BUF);
    return VCM_OK;
}

int atomic_file_open(AtomicFile *af, const char *path) { return atomic_file_open_flags(af, path, 0); }

int atomic_file_probe(const char *path) {
    AtomicFile af;
    int rc = atomic_file_open(&af, path);
    if (!rc) atomic_file_abort(&af);
    return rc;
}

void atomic_file_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    atomic_free(af);
}

/* The directory holding path ("." when there is no slash). */
static int fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = strdup(".");
    else if (slash == path) dir = strdup("/");
    else dir = strndup(path, (size_t)(slash - path));
    if (!dir) return vcm_fail(VCM_ERR, "%s: out of memory", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = VCM_OK;
    if (fd < 0) rc = vcm_fail(VCM_ERR, "%s: cannot open directory %s: %s", path, dir, strerror(errno));
    else {
        /* Some file systems refuse fsync on directories (EINVAL); the rename is done. */
        if (fsync(fd) && errno != EINVAL && errno != EROFS)
            rc = vcm_fail(VCM_ERR, "%s: fsync of directory %s: %s", path, dir, strerror(errno));
        close(fd);
    }
    free(dir);
    return rc;
}

/* An earlier fwrite failed and stdio kept no errno: name the likely reason rather than a
 * bare "I/O error" when the file system is full (the common case). */
static int lost_write_errno(FILE *f) {
    struct statvfs sv;
    if (!fstatvfs(fileno(f), &sv) && sv.f_bavail == 0) return ENOSPC;
    return EIO;
}

int atomic_file_commit(AtomicFile *af) {
    const char *what = NULL;
    int e = 0;
    if (ferror(af->f)) what = "write", e = lost_write_errno(af->f);
    else if (fflush(af->f)) what = "write", e = errno;
    else if (!(af->flags & ATOMIC_NO_SYNC) && fsync(fileno(af->f))) what = "fsync", e = errno;
    int closed = fclose(af->f);
    af->f = NULL;
    if (!what && closed) what = "close", e = errno;
    if (!what && rename(af->tmp, af->path)) what = "rename", e = errno;
    if (what) {
        int rc = vcm_fail(VCM_ERR, "%s: %s of %s failed: %s", af->path, what, af->tmp, strerror(e));
        unlink(af->tmp);
        atomic_free(af);
        return rc;
    }
    int rc = af->flags & ATOMIC_NO_SYNC ? VCM_OK : fsync_parent_dir(af->path);
    atomic_free(af);
    return rc;
}
