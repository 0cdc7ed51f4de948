/* The one translation unit that compiles stb's implementations (Debian's libstb-dev
 * ships headers only). Their code is not ours: warnings inside it are silenced here
 * and nowhere else. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* stb_image_resize 0.97 asserts that each output pixel's filter weights sum to within
 * 10% of 1 just before it divides them by their sum. For some size pairs they do not
 * (333 -> 224, 300 -> 224, 451 -> 384, ...: nothings/stb#1449, open upstream), and the
 * resize aborted the program. Those two checks are let through — the weights are
 * renormalised right after, a constant image stays constant — and every other
 * assertion of stb still aborts. */
static void stbir_assert_failed(const char *expr, const char *file, int line) {
    if (!strcmp(expr, "total > 0.9f") || !strcmp(expr, "total < 1.1f")) return;
    fprintf(stderr, "%s:%d: stb assertion failed: %s\n", file, line, expr);
    abort();
}
#define STBIR_ASSERT(x) ((x) ? (void)0 : stbir_assert_failed(#x, __FILE__, __LINE__))

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wtype-limits"
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wdouble-promotion"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <stb/stb_image_resize.h>
#pragma GCC diagnostic pop
