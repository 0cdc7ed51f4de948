/* libFuzzer: image decoding from a file of the input's bytes (stb_image behind
 * image_info / image_load, vcm's own checks in front), then the resize every loader
 * does, to 64×64. */
#include "data/data.h"
#include "base/base.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_tmp_path(0, "image");
    fuzz_write(path, data, size);
    int w, h;
    int info = image_info(path, &w, &h);
    Image im;
    if (image_load(path, &im) == VCM_OK) {
        if (info != VCM_OK || w != im.w || h != im.h) abort();   /* the header and the decode agree */
        Image small;
        if (image_resize(&im, 64, 64, &small) == VCM_OK) image_free(&small);
        image_free(&im);
    }
    unlink(path);
    return 0;
}
