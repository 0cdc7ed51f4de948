/* Small public entry points of the synthetic world: its vocabulary, one image, and the
 * true answer of a multiple-choice question (for tests and analysis scripts). */
#include "data/synth_internal.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

_Static_assert(N_FAULTS == SYNTH_N_FAULT_KINDS, "fault kinds in data.h and synth_internal.h");

int synth_count(const char *what) {
    if (!strcmp(what, "categories")) return synth_n_categories;
    if (!strcmp(what, "backgrounds")) return N_BACKGROUNDS;
    if (!strcmp(what, "qtypes")) return N_QTYPES;
    if (!strcmp(what, "faults")) return N_FAULTS - 1;   /* kinds, without "none" */
    if (!strcmp(what, "colors")) return N_COLORS;
    return 0;
}

const char *synth_name(const char *what, int i) {
    if (i < 0 || i >= synth_count(what)) return NULL;
    if (!strcmp(what, "categories")) return synth_categories[i].name;
    if (!strcmp(what, "backgrounds")) return synth_backgrounds[i].name;
    if (!strcmp(what, "qtypes")) return synth_qtype_names[i];
    if (!strcmp(what, "faults")) return synth_fault_names[i + 1];
    if (!strcmp(what, "colors")) return synth_colors[i].name;
    return NULL;
}

int synth_render_image(uint64_t seed, long index, Image *im) {
    im->w = SYNTH_W;
    im->h = SYNTH_H;
    im->rgb = malloc((size_t)SYNTH_W * SYNTH_H * 3);
    if (!im->rgb) return vcm_fail(VCM_ERR, "synth: out of memory");
    SynthScene s;
    synth_scene_make(seed, index, &s);
    synth_render(seed, &s, im->rgb);
    return VCM_OK;
}

int synth_answer_json(uint64_t seed, long index, const char *qtype, int region, int as_id, char *buf, size_t cap) {
    int q = -1;
    for (int t = 0; t < MC_QTYPES; t++)
        if (!strcmp(synth_qtype_names[t], qtype)) q = t;
    if (q < 0) return vcm_fail(VCM_EINPUT, "synth: \"%s\" is not a multiple-choice question type", qtype);
    SynthScene s;
    synth_scene_make(seed, index, &s);
    if (region < 0 || region >= s.n) return vcm_fail(VCM_EINPUT, "synth: image %ld has no region %d", index, region);
    SSent a;
    synth_mc_answer(&s, q, region, as_id, &a);
    SBuf b = {0};
    sb_json_sent(&b, &a);
    if (b.oom || b.n + 1 > cap) { sb_free(&b); return vcm_fail(VCM_ERR, "synth: answer does not fit"); }
    memcpy(buf, b.p, b.n + 1);
    sb_free(&b);
    return VCM_OK;
}
