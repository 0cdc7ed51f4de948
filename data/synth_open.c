/* The open-ended set: questions about held-out images with their true answers, for
 * judging what a model *writes* (`vcm eval --open`), not only how it ranks answers.
 *
 * Built from the TRUE scene with the teacher's own templates and no fault, so the
 * record's answer is the one fault-free answer for that question type and those
 * regions: the judge compares a generated answer with it and needs no copy of the
 * knowledge base. Every question type can appear, relational and multi-region ones
 * included; the types of one image differ. */
#include "data/synth_internal.h"

int synth_open_items(const SynthScene *s, uint64_t seed, SynthRecord *items, int max_items) {
    SRng r = srng_for(seed, (uint64_t)s->index, RNG_OPEN);
    RegionView v[SYNTH_MAX_OBJ];
    synth_view(s, 1, v);
    int types[N_QTYPES], made = 0;
    for (int t = 0; t < N_QTYPES; t++) types[t] = t;
    for (int i = N_QTYPES - 1; i > 0; i--) {
        int j = srng_int(&r, i + 1), t = types[i];
        types[i] = types[j]; types[j] = t;
    }
    for (int ti = 0; ti < N_QTYPES && made < max_items; ti++) {
        int q = types[ti];
        if (synth_qtype_regions(q) > s->n) continue;
        for (int attempt = 0; attempt < 6; attempt++) {   /* some region sets do not apply */
            int regs[3] = {0, 0, 0};
            synth_pick_regions(s, v, q, &r, regs);
            int qvar = srng_int(&r, q == Q_WHICH ? MC_QTYPES : 2);
            if (!synth_write_record(s, v, q, regs, synth_qtype_regions(q), qvar, NULL, 0, &items[made])) {
                made++;
                break;
            }
        }
    }
    return made;
}
