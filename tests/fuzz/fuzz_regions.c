/* libFuzzer: the region-mapping loader (regionmap_load on a file of the input's bytes),
 * strict and with skip_bad, then every entry looked up as a record would. */
#include "data/data.h"
#include "base/base.h"
#include "tests/fuzz/fuzz.h"

#include <string.h>

static void use_map(const RegionMap *m) {
    for (int i = 0; i < m->n; i++) {
        const RegionEntry *e = &m->entries[i];
        if (regionmap_find(m, e->image) == NULL) abort();   /* every loaded image is found */
        for (int k = 0; k < e->n_regions; k++)
            if (region_entry_box(e, e->regions[k].id) == NULL) abort();
        region_entry_box(e, -1);
        region_entry_box(e, 1 << 30);
    }
    regionmap_find(m, "no such image");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_tmp_path(0, "regions.jsonl");
    fuzz_write(path, data, size);
    for (int skip_bad = 0; skip_bad <= 1; skip_bad++) {
        RegionMap m;
        long skipped = 0;
        if (regionmap_load(path, &m, skip_bad, &skipped) == VCM_OK) {
            use_map(&m);
            regionmap_free(&m);
        }
    }
    unlink(path);
    return 0;
}
