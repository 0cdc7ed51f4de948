/* base/ — what every folder may use: the error convention, the one random number
 * generator (with its one shuffle) and crash-safe file replacement.
 *
 * The public header of the folder. It depends on nothing of the project; tensor/tensor.h
 * includes it, so every folder above sees it. */
#ifndef VCM_BASE_H
#define VCM_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------- errors
 * (base/error.c) */

/* Return codes used across the project (and the tools' exit codes). */
enum { VCM_OK = 0, VCM_ERR = 1, VCM_EINPUT = 2 };

/* The last error message (one buffer per thread). */
const char *vcm_error(void);
/* printf-style; always returns `code`, so `return vcm_fail(VCM_ERR, "...")` reads well. */
int vcm_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vcm_clear_error(void);

/* ---------------------------------------------------------------- random numbers
 * splitmix64, the project's one small generator: seeded, identical on every machine,
 * good enough for shuffles, coin flips, sampling and initialisation. */

/* splitmix64's finaliser: a bijection of 64-bit words that mixes every bit. */
static inline uint64_t vcm_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
#define VCM_GOLDEN64 0x9E3779B97F4A7C15ULL
/* A hash of one word (seeds of sub-streams are hashes of seeds). */
static inline uint64_t vcm_hash64(uint64_t x) { return vcm_mix64(x + VCM_GOLDEN64); }
/* The next value of the stream in *state. */
static inline uint64_t vcm_rng_next(uint64_t *state) {
    *state += VCM_GOLDEN64;
    return vcm_mix64(*state);
}
/* Uniform in [0, 1) with 53 random bits. */
static inline double vcm_rng_uniform(uint64_t *state) {
    return (double)(vcm_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}
/* Uniform in [0, n) (0 when n <= 1). The modulo's bias is below n / 2^64. */
static inline uint64_t vcm_rng_below(uint64_t *state, uint64_t n) {
    return n <= 1 ? 0 : vcm_rng_next(state) % n;
}

/* Fisher–Yates over n elements of `size` bytes each, drawing from *state (base/rng.c):
 * the one shuffle every folder uses, so an order is a function of the stream only. */
void vcm_shuffle(void *a, size_t n, size_t size, uint64_t *state);
/* The same shuffle drawing j = next(state) % (i + 1) from another stream. The training
 * loops' epoch orders use vcm_hash_chain_next (state = hash(state), 53 bits of it):
 * the order every run so far trained in, which a resumed run must continue — and the
 * demo's figures move a lot with the order (docs/RESULTS.md, run-to-run spread). */
void vcm_shuffle_with(void *a, size_t n, size_t size, uint64_t (*next)(uint64_t *), uint64_t *state);
uint64_t vcm_hash_chain_next(uint64_t *state);

/* ---------------------------------------------------------------- atomic files
 * (base/atomic_file.c) A file written under a temporary name (PATH.tmp, same directory)
 * and renamed onto PATH only once complete and on disk: a crash never leaves a
 * half-written PATH. A stale PATH.tmp from a killed writer is truncated by the next
 * open. One writer per PATH at a time. Failures: VCM_ERR with "PATH: problem". */
typedef struct AtomicFile { FILE *f; char *path, *tmp; unsigned flags; } AtomicFile;
int atomic_file_open(AtomicFile *af, const char *path);
/* ATOMIC_UNIQUE: the temporary is PATH.tmp.PID.THREAD, for writers that may race on one
 * PATH (the image cache); ATOMIC_NO_SYNC: no fsync of the file and the directory, for
 * files that can be made again (caches, the synthetic world's images) — a crash may then
 * leave an empty PATH on some file systems, never a temporary under PATH's name. */
enum { ATOMIC_UNIQUE = 1, ATOMIC_NO_SYNC = 2 };
int atomic_file_open_flags(AtomicFile *af, const char *path, unsigned flags);
/* fflush + fsync + close + rename + fsync of the directory; frees af. On any failure
 * (including an earlier fwrite error) the temporary is removed and PATH is untouched. */
int atomic_file_commit(AtomicFile *af);
/* Close and remove the temporary (after a failure while writing). */
void atomic_file_abort(AtomicFile *af);
/* Whether PATH can be written this way (its temporary is created and removed): a long
 * job checks its output place before the compute, not at its first save. */
int atomic_file_probe(const char *path);

/* ---------------------------------------------------------------- JSON output
 * (base/json_out.c) The one escaper of hand-written JSON lines. vcm_json_char writes the
 * JSON form of the character at s[0..n) into out (" and \ escaped, control bytes as
 * \n \t \r or \u00XX, a byte that starts no valid UTF-8 sequence as U+FFFD), sets *len
 * (<= 7) and returns how many bytes of s it used (>= 1; n must be > 0). */
size_t vcm_json_char(const char *s, size_t n, char out[8], size_t *len);
/* s[0..n) as one quoted JSON string on f. */
void vcm_json_put_string(FILE *f, const char *s, size_t n);
/* %.6f, or null for NaN and infinities (JSON has neither). */
void vcm_json_put_number(FILE *f, double v);

#endif
