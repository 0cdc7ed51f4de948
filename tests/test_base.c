/* base/: the one shuffle and the one JSON escaper. */
#include "base/base.h"
#include "tests/test.h"

/* A permutation, the same one for the same state, and the textbook Fisher–Yates order
 * (i from n-1 down, j = next % (i+1)): the synthetic world's files depend on it. */
static void test_shuffle_is_a_seeded_permutation(void) {
    int a[50], b[50], c[50];
    for (int i = 0; i < 50; i++) a[i] = b[i] = c[i] = i;
    uint64_t s1 = 7, s2 = 7, s3 = 7;
    vcm_shuffle(a, 50, sizeof a[0], &s1);
    vcm_shuffle(b, 50, sizeof b[0], &s2);
    for (int i = 49; i > 0; i--) {
        int j = (int)(vcm_rng_next(&s3) % (uint64_t)(i + 1)), t = c[i];
        c[i] = c[j];
        c[j] = t;
    }
    int seen[50] = {0}, moved = 0;
    for (int i = 0; i < 50; i++) {
        CHECK(a[i] == b[i]);
        CHECK(a[i] == c[i]);
        if (a[i] >= 0 && a[i] < 50) seen[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < 50; i++) CHECK(seen[i] == 1);
    CHECK(moved > 25);
    CHECK(s1 == s2);
}

static const char *quoted(const char *s, size_t n) {
    static char buf[256];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (!f) return "";
    vcm_json_put_string(f, s, n);
    fclose(f);
    return buf;
}

static void test_json_string_escapes(void) {
    CHECK(!strcmp(quoted("a\"b\\c", 5), "\"a\\\"b\\\\c\""));
    CHECK(!strcmp(quoted("x\ny\tz\r\x01", 7), "\"x\\ny\\tz\\r\\u0001\""));
    CHECK(!strcmp(quoted("caf\xC3\xA9", 5), "\"caf\xC3\xA9\""));          /* valid UTF-8 kept */
    CHECK(!strcmp(quoted("a\xC3", 2), "\"a\xEF\xBF\xBD\""));               /* cut character */
    CHECK(!strcmp(quoted("\xC0\xAF", 2), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"")); /* overlong */
    CHECK(!strcmp(quoted("\xED\xA0\x80", 3), "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"")); /* surrogate */
    CHECK(!strcmp(quoted("a\0b", 3), "\"a\\u0000b\""));                    /* n, not strlen */
    char e[8];
    size_t len;
    CHECK(vcm_json_char("\xF0\x9F\x98\x80!", 5, e, &len) == 4 && len == 4 && !memcmp(e, "\xF0\x9F\x98\x80", 4));
}

static void test_json_number(void) {
    char buf[64];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    if (!f) { CHECK(0); return; }
    vcm_json_put_number(f, 0.25);
    fputc(' ', f);
    vcm_json_put_number(f, NAN);
    fputc(' ', f);
    vcm_json_put_number(f, -INFINITY);
    fclose(f);
    CHECK(!strcmp(buf, "0.250000 null null"));
}

int main(void) {
    RUN(test_shuffle_is_a_seeded_permutation);
    RUN(test_json_string_escapes);
    RUN(test_json_number);
    return test_summary();
}
