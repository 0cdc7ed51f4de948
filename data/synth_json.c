/* The synthetic world's JSON lines: the region mapping of an image, a teacher record
 * in the corpus format, a multiple-choice item (DESIGN.md §5). Each is appended to an
 * SBuf with its trailing newline. Extra fields under "synth" carry the hidden truth. */
#include "data/synth_internal.h"

#include <stdio.h>

void synth_image_name(long index, char *buf, size_t cap) {
    snprintf(buf, cap, "images/%06ld.png", index);
}

void synth_json_regions(const SynthScene *s, SBuf *b) {
    char name[64];
    synth_image_name(s->index, name, sizeof name);
    sb_puts(b, "{\"image\": ");
    sb_json_str(b, name);
    sb_printf(b, ", \"width\": %d, \"height\": %d, \"region_locations\": {", SYNTH_W, SYNTH_H);
    for (int k = 0; k < s->n; k++) {
        const SynthObject *o = &s->obj[k];
        sb_printf(b, "%s\"%d\": {\"boxes\": [[%d, %d, %d, %d]], \"obj_guess\": ", k ? ", " : "", k,
                  (int)o->x0, (int)o->y0, (int)o->x1, (int)o->y1);
        sb_json_str(b, synth_categories[o->said_cat].name);
        sb_puts(b, "}");
    }
    sb_puts(b, "}, \"global\": [");
    sb_json_str(b, s->caption);
    sb_puts(b, "], \"region_descriptions\": {");
    for (int k = 0; k < s->n; k++) {
        sb_printf(b, "%s\"%d\": ", k ? ", " : "", k);
        sb_json_str(b, s->obj[k].desc);
    }
    sb_puts(b, "}, \"synth\": {\"background\": ");
    sb_json_str(b, synth_backgrounds[s->bg].name);
    sb_puts(b, ", \"categories\": {");
    for (int k = 0; k < s->n; k++) {
        sb_printf(b, "%s\"%d\": ", k ? ", " : "", k);
        sb_json_str(b, synth_categories[s->obj[k].cat].name);
    }
    sb_puts(b, "}, \"colors\": {");
    for (int k = 0; k < s->n; k++) {
        sb_printf(b, "%s\"%d\": ", k ? ", " : "", k);
        sb_json_str(b, synth_colors[s->obj[k].color].name);
    }
    sb_puts(b, "}, \"misdescribed\": [");
    for (int k = 0, first = 1; k < s->n; k++)
        if (s->obj[k].said_cat != s->obj[k].cat) { sb_printf(b, first ? "%d" : ", %d", k); first = 0; }
    sb_puts(b, "]}}\n");
}

/* The fields every record line shares, from "image" to "rationale". */
static void record_fields(const SynthScene *s, const SynthRecord *rec, const char *source, const char *split,
                          const char *prefix, int j, SBuf *b) {
    char name[64];
    synth_image_name(s->index, name, sizeof name);
    sb_puts(b, "{\"image\": ");
    sb_json_str(b, name);
    sb_printf(b, ", \"source\": \"%s\", \"split\": \"%s\", \"index\": \"%s-%06ld-%d\", \"region\": [", source,
              split, prefix, s->index, j);
    int sorted[3], n = 0;
    for (int i = 0; i < rec->nregs; i++) { /* unique, ascending */
        int x = rec->regs[i], p = n;
        int dup = 0;
        for (int t = 0; t < n; t++) dup |= sorted[t] == x;
        if (dup) continue;
        while (p > 0 && sorted[p - 1] > x) { sorted[p] = sorted[p - 1]; p--; }
        sorted[p] = x;
        n++;
    }
    for (int i = 0; i < n; i++) sb_printf(b, i ? ", %d" : "%d", sorted[i]);
    sb_puts(b, "], \"region_all\": [");
    for (int k = 0; k < s->n; k++) sb_printf(b, k ? ", %d" : "%d", k);
    sb_puts(b, "], \"question\": ");
    sb_json_sent(b, &rec->q);
    sb_puts(b, ", \"answer\": ");
    sb_json_sent(b, &rec->a);
    sb_puts(b, ", \"rationale\": ");
    sb_json_sent(b, &rec->r);
}

/* Without the closing brace and newline: the caller may add "votes". */
void synth_json_record_open(const SynthScene *s, const SynthRecord *rec, int j, SBuf *b) {
    record_fields(s, rec, "synth_teacher_v1", "train", "synth", j, b);
    sb_puts(b, ", \"synth\": {\"fault\": ");
    if (rec->fault == F_NONE) sb_puts(b, "null");
    else sb_json_str(b, synth_fault_names[rec->fault]);
    sb_puts(b, ", \"qtype\": ");
    sb_json_str(b, synth_qtype_names[rec->qtype]);
    sb_puts(b, "}");
}

void synth_json_mc(const SynthScene *s, const SynthMC *m, SBuf *b) {
    char name[64];
    synth_image_name(s->index, name, sizeof name);
    sb_puts(b, "{\"image\": ");
    sb_json_str(b, name);
    sb_puts(b, ", \"regions\": [");
    for (int k = 0; k < s->n; k++) sb_printf(b, k ? ", %d" : "%d", k);
    sb_puts(b, "], \"question\": ");
    sb_json_sent(b, &m->q);
    sb_puts(b, ", \"choices\": [");
    for (int i = 0; i < m->n_choices; i++) {
        if (i) sb_puts(b, ", ");
        sb_json_sent(b, &m->choices[i]);
    }
    sb_printf(b, "], \"label\": %d, \"distractor_other_region\": %s, \"grounding\": %s, \"synth\": {\"qtype\": ",
              m->label, m->other_region ? "true" : "false", m->grounding ? "true" : "false");
    sb_json_str(b, synth_qtype_names[m->qtype]);
    sb_printf(b, ", \"region\": %d, \"choice_regions\": [", m->region);
    for (int i = 0; i < m->n_choices; i++) sb_printf(b, i ? ", %d" : "%d", m->choice_region[i]);
    sb_puts(b, "]}}\n");
}

/* An open-ended item: a fault-free corpus record about a held-out image (the true
 * answer and rationale), "region" the asked ids, "region_all" every region of the image
 * (all of them are given to the model, numbered as here), and under "synth" the type
 * and the asked ids in question order. */
void synth_json_open(const SynthScene *s, const SynthRecord *rec, int j, SBuf *b) {
    record_fields(s, rec, "synth_open_v1", "test", "open", j, b);
    sb_puts(b, ", \"synth\": {\"fault\": null, \"qtype\": ");
    sb_json_str(b, synth_qtype_names[rec->qtype]);
    sb_puts(b, ", \"asked\": [");
    for (int i = 0; i < rec->nregs; i++) sb_printf(b, i ? ", %d" : "%d", rec->regs[i]);
    sb_printf(b, "], \"relational\": %s}}\n", rec->qtype >= Q_WHY_HERE && rec->qtype != Q_SIZE && rec->qtype != Q_EDIBLE ? "true" : "false");
}
