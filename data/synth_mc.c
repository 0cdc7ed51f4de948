/* Multiple-choice items for held-out images, built from the TRUE scene (not the
 * captioner's words). Question types whose answer is a property of the region's
 * category or colour (use, place, ability, material, colour).
 *
 * An "other-region" item has three distractors that are each the right answer for
 * another region of the same image (phrased with the asked region's id): a model that
 * sees the image but not which region is asked can only guess among four answers that
 * all fit something in the picture, i.e. chance 0.25. Such an item needs four regions
 * with four different answers; otherwise the item is plain, with distractors that fit
 * nothing in the image. Images with 4+ regions give three items, others one, so more
 * than half of the items are other-region items. */
#include "data/synth_internal.h"

#include <string.h>

static void answer_in_view(const SynthScene *s, const RegionView *v, int q, int j, int as_id, SSent *out) {
    SynthRecord rec;
    ss_clear(out);
    if (synth_write_record(s, v, q, &j, 1, 0, NULL, 0, &rec)) return;
    ss_swap_ids(&rec.a, j, as_id);
    *out = rec.a;
}

void synth_mc_answer(const SynthScene *s, int q, int k, int as_id, SSent *out) {
    RegionView v[SYNTH_MAX_OBJ];
    synth_view(s, 1, v);
    answer_in_view(s, v, q, k, as_id, out);
}

static void shuffle(int *a, int n, SRng *r) { vcm_shuffle(a, (size_t)n, sizeof *a, &r->s); }

static int seen(const SSent *list, int n, const SSent *x) {
    for (int i = 0; i < n; i++)
        if (ss_equal(&list[i], x)) return 1;
    return 0;
}

static void finish(SynthMC *m, const SSent *right, const SSent *dis, const int *dis_region, SRng *r) {
    m->grounding = 0;
    m->n_choices = 4;
    int order[4] = {0, 1, 2, 3};
    shuffle(order, 4, r);
    for (int i = 0; i < 4; i++) {
        int src = order[i];
        m->choices[i] = src == 0 ? *right : dis[src - 1];
        m->choice_region[i] = src == 0 ? m->region : dis_region[src - 1];
        if (src == 0) m->label = i;
    }
}

/* Plain item: distractors that are no region's answer in this image. */
static int plain_item(const SynthScene *s, const RegionView *v, int q, int k, SSent *image_answers,
                      int n_answers, SynthMC *m, SRng *r) {
    SSent cand[64], right;
    int nc = 0;
    answer_in_view(s, v, q, k, k, &right);
    RegionView fake[SYNTH_MAX_OBJ];
    memcpy(fake, v, sizeof(RegionView) * (size_t)s->n);
    int nvals = q == Q_COLOR ? N_COLORS : synth_n_categories;
    for (int x = 0; x < nvals && nc < 64; x++) {
        if (q == Q_COLOR) fake[k].color = x;
        else fake[k].cat = x;
        SSent a;
        answer_in_view(s, fake, q, k, k, &a);
        if (!a.n || seen(image_answers, n_answers, &a) || seen(cand, nc, &a)) continue;
        cand[nc++] = a;
    }
    if (nc < 3) return -1;
    int idx[64];
    for (int i = 0; i < nc; i++) idx[i] = i;
    shuffle(idx, nc, r);
    SSent dis[3];
    int dr[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++) dis[i] = cand[idx[i]];
    m->other_region = 0;
    finish(m, &right, dis, dr, r);
    return 0;
}

int synth_mc_items(const SynthScene *s, uint64_t seed, SynthMC *items, int max_items) {
    SRng r = srng_for(seed, (uint64_t)s->index, RNG_MC);
    RegionView v[SYNTH_MAX_OBJ];
    synth_view(s, 1, v);
    int want = s->n >= 4 ? 3 : 1, made = 0;
    unsigned used_types = 0;
    if (want > max_items) want = max_items;
    int asked[SYNTH_MAX_OBJ];
    for (int i = 0; i < s->n; i++) asked[i] = i;
    shuffle(asked, s->n, &r);
    for (int it = 0; it < want; it++) {
        SynthMC *m = &items[made];
        int k = asked[it];
        int types[MC_QTYPES];   /* a fresh order per item: the items of one image vary in type */
        for (int t = 0; t < MC_QTYPES; t++) types[t] = t;
        shuffle(types, MC_QTYPES, &r);
        for (int a = 0, p = 0; a < MC_QTYPES; a++) /* types not yet asked about this image first */
            if (!(used_types & (1u << types[a]))) { int t = types[a]; memmove(types + p + 1, types + p, sizeof(int) * (size_t)(a - p)); types[p++] = t; }
        int done = 0;
        for (int ti = 0; ti < MC_QTYPES && !done; ti++) {
            int q = types[ti];
            SSent right, others[SYNTH_MAX_OBJ];
            int oreg[SYNTH_MAX_OBJ], no = 0;
            answer_in_view(s, v, q, k, k, &right);
            if (!right.n) continue;
            for (int j = 0; j < s->n; j++) {
                if (j == k) continue;
                SSent a;
                answer_in_view(s, v, q, j, k, &a);
                if (!a.n || ss_equal(&a, &right) || seen(others, no, &a)) continue;
                oreg[no] = j;
                others[no++] = a;
            }
            if (no < 3) continue;
            int idx[SYNTH_MAX_OBJ];
            for (int i = 0; i < no; i++) idx[i] = i;
            shuffle(idx, no, &r);
            SSent dis[3];
            int dr[3];
            for (int i = 0; i < 3; i++) { dis[i] = others[idx[i]]; dr[i] = oreg[idx[i]]; }
            m->qtype = q;
            m->region = k;
            m->other_region = 1;
            finish(m, &right, dis, dr, &r);
            done = 1;
        }
        if (!done) {
            int q = types[0];
            SSent answers[SYNTH_MAX_OBJ];
            int na = 0;
            for (int j = 0; j < s->n; j++) answer_in_view(s, v, q, j, k, &answers[na++]);
            m->qtype = q;
            m->region = k;
            if (plain_item(s, v, q, k, answers, na, m, &r)) continue;
        }
        SynthRecord rec;
        int one = k;
        synth_write_record(s, v, m->qtype, &one, 1, srng_int(&r, 2), NULL, 0, &rec);
        m->q = rec.q;
        used_types |= 1u << m->qtype;
        made++;
    }
    return made;
}

/* ---------------------------------------------------------------- grounding items
 * VCR-style: the question names no region ("which of them is made of glass ?") and the
 * choices differ only in which region they name ("[0] is made of glass .", "[2] ...").
 * The property is the true answer of one region k that no other region of the image
 * shares; each wrong choice names a region whose own answer differs. Only a model that
 * knows which region each [j] is can tell the choices apart: without region input it
 * is at chance (1 / choices). */
int synth_grounding_item(const SynthScene *s, uint64_t seed, SynthMC *m) {
    if (s->n < 2) return 0;
    SRng r = srng_for(seed, (uint64_t)s->index, RNG_GROUND);
    RegionView v[SYNTH_MAX_OBJ];
    synth_view(s, 1, v);
    int types[MC_QTYPES], regs[SYNTH_MAX_OBJ];
    for (int t = 0; t < MC_QTYPES; t++) types[t] = t;
    shuffle(types, MC_QTYPES, &r);
    for (int i = 0; i < s->n; i++) regs[i] = i;
    shuffle(regs, s->n, &r);
    for (int ti = 0; ti < MC_QTYPES; ti++) {
        int q = types[ti];
        SSent ans[SYNTH_MAX_OBJ];   /* every region's answer, phrased with id 0 */
        for (int j = 0; j < s->n; j++) answer_in_view(s, v, q, j, 0, &ans[j]);
        for (int ki = 0; ki < s->n; ki++) {
            int k = regs[ki], unique = ans[k].n > 0;
            for (int j = 0; j < s->n && unique; j++) unique = j == k || !ss_equal(&ans[j], &ans[k]);
            SSent question;
            if (!unique || ss_which_question(&ans[k], &question)) continue;
            int names[4] = {k}, nn = 1;
            for (int ji = 0; ji < s->n && nn < 4; ji++)
                if (regs[ji] != k) names[nn++] = regs[ji];
            int order[4] = {0, 1, 2, 3};
            shuffle(order, nn, &r);
            memset(m, 0, sizeof *m);
            m->qtype = q;
            m->region = k;
            m->grounding = 1;
            m->n_choices = nn;
            m->q = question;
            for (int i = 0; i < nn; i++) {
                int j = names[order[i]];
                m->choices[i] = ans[k];
                ss_swap_ids(&m->choices[i], 0, j);
                m->choice_region[i] = j;
                if (j == k) m->label = i;
            }
            return 1;
        }
    }
    return 0;
}
