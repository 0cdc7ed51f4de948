/* The simulated teacher: question / answer / rationale about regions, written from the
 * verbalizations only (the captioner's categories, which may be wrong), like the LLM of
 * LSKD; and the LLM's typical faults, injected at a known rate.
 *
 * Thirteen question types; four name two or three regions, and one ("which of them
 * ...?") names none and is answered by the one region it fits. Every rationale names
 * what the region is ("[2] is a red cup , ..."), so a fault that changes what a region
 * is said to be can be caught by looking at the region. */
#include "data/synth_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

const char *const synth_qtype_names[N_QTYPES] = {
    "use", "place", "ability", "material", "color", "why_here", "size", "edible",
    "fit_inside", "closer_to", "bigger", "same_place", "which"};
const char *const synth_fault_names[N_FAULTS] = {
    "none", "wrong_region", "invented_attribute", "answer_rationale_disagree", "generic_filler",
    "hallucinated_object", "misdescribed_region"};

int synth_qtype_regions(int q) { return q == Q_CLOSER ? 3 : q >= Q_FIT && q <= Q_TOGETHER ? 2 : 1; }

void synth_view(const SynthScene *s, int truth, RegionView *v) {
    for (int k = 0; k < s->n; k++) {
        const SynthObject *o = &s->obj[k];
        v[k].cat = truth ? o->cat : o->said_cat;
        v[k].color = o->color;
        v[k].cx = (o->x0 + o->x1) * 0.5f;
        v[k].cy = (o->y0 + o->y1) * 0.5f;
    }
}

static const char *art(const char *next) { return strchr("aeiou", next[0]) ? "an" : "a"; }

void synth_short_desc(const RegionView *v, int k, char *out, size_t cap) {
    const SynthCategory *c = &synth_categories[v[k].cat];
    const char *col = synth_colors[v[k].color].name;
    if (c->kind == KIND_PERSON) snprintf(out, cap, "a person in %s %s shirt", art(col), col);
    else snprintf(out, cap, "%s %s %s", art(col), col, c->name);
}

/* "a cup" */
static void a_name(const RegionView *v, int k, char *out, size_t cap) {
    const char *n = synth_categories[v[k].cat].name;
    snprintf(out, cap, "%s %s", art(n), n);
}

static float dist(const RegionView *v, int a, int b) {
    return hypotf(v[a].cx - v[b].cx, v[a].cy - v[b].cy);
}

static int edible_applies(int cat) {
    int k = synth_categories[cat].kind;
    return k != KIND_ANIMAL && k != KIND_PERSON;
}

int synth_write_record(const SynthScene *s, const RegionView *v, int q, const int *regs,
                       int nregs, int qvar, const char *neighbour, int flip, SynthRecord *rec) {
    if (nregs != synth_qtype_regions(q)) return -1;
    for (int i = 0; i < nregs; i++)
        if (regs[i] < 0 || regs[i] >= s->n) return -1;
    ss_clear(&rec->q); ss_clear(&rec->a); ss_clear(&rec->r);
    rec->qtype = q;
    rec->nregs = nregs;
    for (int i = 0; i < nregs; i++) rec->regs[i] = regs[i];
    int k = regs[0], b = nregs > 1 ? regs[1] : -1;
    const SynthCategory *C = &synth_categories[v[k].cat];
    char D[96], A[64], D2[96], A2[64];
    synth_short_desc(v, k, D, sizeof D);
    a_name(v, k, A, sizeof A);
    if (b >= 0) { synth_short_desc(v, b, D2, sizeof D2); a_name(v, b, A2, sizeof A2); }
    SSent *Q = &rec->q, *Aa = &rec->a, *R = &rec->r;
    switch (q) {
    case Q_USE:
        ss_fmt(Q, qvar ? "What can someone do with %m ?" : "What could %m be used for ?", k);
        ss_fmt(Aa, "%m could be used to %s .", k, C->use);
        ss_fmt(R, "%m is %s , and people use %s to %s .", k, D, A, C->use);
        break;
    case Q_PLACE:
        ss_fmt(Q, qvar ? "Where does %m usually belong ?" : "Where would you usually find %m ?", k);
        ss_fmt(Aa, "%m is usually found %s .", k, C->place);
        ss_fmt(R, "%m is %s , and %s is usually kept %s .", k, D, A, C->place);
        break;
    case Q_ABILITY:
        ss_fmt(Q, qvar ? "What is %m able to do ?" : "What can %m do ?", k);
        ss_fmt(Aa, "%m can %s .", k, C->ability);
        ss_fmt(R, "%m is %s , and %s is able to %s .", k, D, A, C->ability);
        break;
    case Q_MATERIAL:
        ss_fmt(Q, qvar ? "What material is %m made of ?" : "What is %m made of ?", k);
        ss_fmt(Aa, "%m is made of %s .", k, C->material);
        ss_fmt(R, "%m is %s , and %s is usually made of %s .", k, D, A, C->material);
        break;
    case Q_COLOR: {
        const char *col = synth_colors[v[k].color].name;
        ss_fmt(Q, qvar ? "What is the color of %m ?" : "What color is %m ?", k);
        ss_fmt(Aa, C->kind == KIND_PERSON ? "%m is wearing %s ." : "%m is %s .", k, col);
        ss_fmt(R, "%m is %s .", k, D);
        break;
    }
    case Q_WHY_HERE: {
        const SynthBackground *B = &synth_backgrounds[s->bg];
        int belongs = (C->backgrounds & CB(s->bg)) != 0;
        ss_fmt(Q, "Why is %m %s ?", k, B->on);
        if (belongs) ss_fmt(Aa, "%m is there because %s .", k, C->reason);
        else if (C->kind == KIND_ANIMAL || C->kind == KIND_PERSON) ss_fmt(Aa, "%m probably wandered there .", k);
        else ss_fmt(Aa, "Someone probably left %m there .", k);
        ss_fmt(R, belongs ? "%m is %s , and %s usually belongs %s ." : "%m is %s , and %s does not usually belong %s .",
               k, D, A, B->on);
        break;
    }
    case Q_SIZE:
        ss_fmt(Q, "How big is %m in real life ?", k);
        ss_fmt(Aa, "%m is %s in real life .", k, synth_size_word(C->size_class));
        ss_fmt(R, "%m is %s , and %s is about as big as %s .", k, D, A, synth_size_ref(C->size_class));
        break;
    case Q_EDIBLE: {
        if (!edible_applies(v[k].cat)) return -1;
        int yes = (C->kind == KIND_FOOD) ^ flip;
        ss_fmt(Q, qvar ? "Is %m something you can eat ?" : "Could someone eat %m ?", k);
        if (yes) ss_fmt(Aa, "Yes , %m is food and can be eaten .", k);
        else ss_fmt(Aa, "No , %m is not something to eat .", k);
        if (C->kind == KIND_FOOD) ss_fmt(R, "%m is %s , and %s is a kind of food .", k, D, A);
        else ss_fmt(R, "%m is %s , and nobody eats %s .", k, D, A);
        break;
    }
    case Q_FIT: {
        if (v[k].cat == v[b].cat) return -1;
        const SynthCategory *Cb = &synth_categories[v[b].cat];
        int container = Cb->capacity > 0, fits = container && C->size_class <= Cb->capacity;
        ss_fmt(Q, "Could %m fit inside %m ?", k, b);
        if (fits ^ flip) ss_fmt(Aa, "Yes , %m could fit inside %m .", k, b);
        else ss_fmt(Aa, "No , %m could not fit inside %m .", k, b);
        if (fits) ss_fmt(R, "%m is %s and %m is %s , and %s is small enough to go inside %s .", k, D, b, D2, A, A2);
        else if (container) ss_fmt(R, "%m is %s and %m is %s , and %s is too big to go inside %s .", k, D, b, D2, A, A2);
        else ss_fmt(R, "%m is %s and %m is %s , and %s cannot hold other things .", k, D, b, D2, A2);
        break;
    }
    case Q_CLOSER: { /* regs = {c, a, b}: which of a, b is closer to c */
        int c0 = regs[0], a0 = regs[1], b0 = regs[2];
        float da = dist(v, a0, c0), db = dist(v, b0, c0);
        if (!(da * 1.5f < db || db * 1.5f < da)) return -1; /* not clear from the picture */
        int near = da < db ? a0 : b0, far = da < db ? b0 : a0;
        char Dn[96], Df[96];
        synth_short_desc(v, near, Dn, sizeof Dn);
        synth_short_desc(v, far, Df, sizeof Df);
        ss_fmt(Q, "Which is closer to %m , %m or %m ?", c0, a0, b0);
        ss_fmt(Aa, "%m is closer to %m .", flip ? far : near, c0);
        ss_fmt(R, "%m is %s right by %m , while %m is %s farther away .", near, Dn, c0, far, Df);
        break;
    }
    case Q_BIGGER: {
        const SynthCategory *Cb = &synth_categories[v[b].cat];
        if (C->size_class == Cb->size_class) return -1;
        int big = C->size_class > Cb->size_class ? k : b, small = big == k ? b : k;
        const SynthCategory *Cg = &synth_categories[v[big].cat], *Cs = &synth_categories[v[small].cat];
        char Dg[96], Ds[96];
        synth_short_desc(v, big, Dg, sizeof Dg);
        synth_short_desc(v, small, Ds, sizeof Ds);
        ss_fmt(Q, "Which is bigger in real life , %m or %m ?", k, b);
        ss_fmt(Aa, "%m is bigger than %m in real life .", flip ? small : big, flip ? big : small);
        ss_fmt(R, "%m is %s , which is %s , while %m is %s , which is only %s .", big, Dg,
               synth_size_word(Cg->size_class), small, Ds, synth_size_word(Cs->size_class));
        break;
    }
    case Q_TOGETHER: {
        if (v[k].cat == v[b].cat) return -1;
        const SynthCategory *Cb = &synth_categories[v[b].cat];
        int same = !strcmp(C->place, Cb->place);
        ss_fmt(Q, "Would %m and %m usually be found in the same place ?", k, b);
        if (same ^ flip) ss_fmt(Aa, "Yes , %M are both usually found %s .", k < b ? k : b, k < b ? b : k, C->place);
        else ss_fmt(Aa, "No , %m belongs %s but %m belongs %s .", k, C->place, b, Cb->place);
        if (same) ss_fmt(R, "%m is %s and %m is %s , and both are kept %s .", k, D, b, D2, C->place);
        else ss_fmt(R, "%m is %s and %m is %s , which are kept in different places .", k, D, b, D2);
        break;
    }
    case Q_WHICH: { /* regs = {k}; qvar picks the property: use, place, ability, material, color */
        int t = qvar % MC_QTYPES;
        SynthRecord base, other;
        if (synth_write_record(s, v, t, &k, 1, 0, NULL, 0, &base)) return -1;
        for (int j = 0; j < s->n; j++) { /* the property must be true of region k alone */
            int one = j;
            if (j == k || synth_write_record(s, v, t, &one, 1, 0, NULL, 0, &other)) continue;
            ss_swap_ids(&other.a, j, k);
            if (ss_equal(&other.a, &base.a)) return -1;
        }
        if (ss_which_question(&base.a, Q)) return -1;
        *Aa = base.a;
        *R = base.r;
        break;
    }
    default:
        return -1;
    }
    if (neighbour) ss_fmt(R, "%m is near %s .", k, neighbour);
    rec->fault = F_NONE;
    return 0;
}

/* ---------------------------------------------------------------- choosing what to ask */

static const int qweight[N_QTYPES] = {3, 2, 2, 2, 2, 2, 1, 1, 2, 2, 2, 1, 2};

static int pick_qtype(SRng *r) {
    int total = 0;
    for (int q = 0; q < N_QTYPES; q++) total += qweight[q];
    int x = srng_int(r, total);
    for (int q = 0; q < N_QTYPES; q++) {
        if (x < qweight[q]) return q;
        x -= qweight[q];
    }
    return 0;
}

static int in_list(const int *l, int n, int x) {
    for (int i = 0; i < n; i++)
        if (l[i] == x) return 1;
    return 0;
}

void synth_pick_regions(const SynthScene *s, const RegionView *v, int q, SRng *r, int *regs) {
    int need = synth_qtype_regions(q);
    for (int i = 0; i < need; i++) {
        int x;
        do x = srng_int(r, s->n); while (in_list(regs, i, x));
        regs[i] = x;
    }
    if (q == Q_FIT && srng_unif(r) < 0.7) { /* mostly ask about something that can hold things */
        int cand[SYNTH_MAX_OBJ], m = 0;
        for (int k = 0; k < s->n; k++)
            if (k != regs[0] && synth_categories[v[k].cat].capacity > 0) cand[m++] = k;
        if (m) regs[1] = cand[srng_int(r, m)];
    }
}

static int nearest_other(const SynthScene *s, const RegionView *v, const int *regs, int nregs) {
    int best = -1;
    float bd = 1e30f;
    for (int k = 0; k < s->n; k++) {
        if (in_list(regs, nregs, k)) continue;
        float d = dist(v, k, regs[0]);
        if (d < bd) { bd = d; best = k; }
    }
    return best;
}

/* ---------------------------------------------------------------- faults */

static const char *const filler_answers[] = {
    "%m is an object in the picture .", "%m is there for a reason .", "It depends on the situation .",
    "%m is something you can see .", "Nobody can say for sure ."};
static const char *const filler_rationales[] = {
    "It can be seen in the image .", "This is a common thing .", "That is usually the case .",
    "There are many possible reasons .", "%m is in the picture ."};

static int fault_wrong_region(const SynthScene *s, const RegionView *v, SynthRecord *rec, int qvar,
                              const char *nb, SRng *r) {
    int role = srng_int(r, rec->nregs), orig = rec->regs[role];
    int cand[SYNTH_MAX_OBJ], m = 0;
    for (int j = 0; j < s->n; j++)
        if (!in_list(rec->regs, rec->nregs, j) && v[j].cat != v[orig].cat) cand[m++] = j;
    for (int t = 0; m > 0 && t < 4; t++) {
        int j = cand[srng_int(r, m)], regs2[3];
        memcpy(regs2, rec->regs, sizeof regs2);
        regs2[role] = j;
        SynthRecord alt;
        if (synth_write_record(s, v, rec->qtype, regs2, rec->nregs, qvar, nb, 0, &alt)) continue;
        ss_swap_ids(&alt.q, j, orig);
        ss_swap_ids(&alt.a, j, orig);
        ss_swap_ids(&alt.r, j, orig);
        if (ss_equal(&alt.a, &rec->a) && ss_equal(&alt.r, &rec->r)) continue;
        rec->q = alt.q; rec->a = alt.a; rec->r = alt.r;
        return 0;
    }
    return -1;
}

/* A colour the region does not have; one its category can have when there is one, so
 * that the text alone ("a purple tree") does not give the fault away. */
static int fault_invented_attribute(const RegionView *v, SynthRecord *rec, SRng *r) {
    int k = rec->regs[srng_int(r, rec->nregs)];
    const char *col = synth_colors[v[k].color].name;
    int alt[N_COLORS], na = 0;
    for (int c = 0; c < N_COLORS; c++)
        if (c != v[k].color && (synth_categories[v[k].cat].palette & CB(c))) alt[na++] = c;
    int wrong = na ? alt[srng_int(r, na)] : (v[k].color + 1 + srng_int(r, N_COLORS - 1)) % N_COLORS;
    SynthRecord before = *rec;
    ss_replace_word(&rec->a, col, synth_colors[wrong].name);
    ss_replace_word(&rec->r, col, synth_colors[wrong].name);
    ss_fix_articles(&rec->a);
    ss_fix_articles(&rec->r);
    return ss_equal(&before.r, &rec->r) && ss_equal(&before.a, &rec->a) ? -1 : 0;
}

static int fault_disagree(const SynthScene *s, const RegionView *v, SynthRecord *rec, int qvar,
                          const char *nb, SRng *r) {
    int q = rec->qtype;
    SynthRecord alt;
    if (q == Q_EDIBLE || q >= Q_FIT) { /* yes/no and comparisons: the answer says the opposite */
        if (synth_write_record(s, v, q, rec->regs, rec->nregs, qvar, nb, 1, &alt)) return -1;
        if (ss_equal(&alt.a, &rec->a)) return -1;
        rec->a = alt.a;
        return 0;
    }
    if (q == Q_COLOR) {
        int k = rec->regs[0];
        int wrong = (v[k].color + 1 + srng_int(r, N_COLORS - 1)) % N_COLORS;
        ss_replace_word(&rec->a, synth_colors[v[k].color].name, synth_colors[wrong].name);
        return 0;
    }
    /* the rationale argues from another kind of thing */
    RegionView fake[SYNTH_MAX_OBJ];
    memcpy(fake, v, sizeof(RegionView) * (size_t)s->n);
    int k = rec->regs[0];
    for (int t = 0; t < 8; t++) {
        fake[k].cat = srng_int(r, synth_n_categories);
        if (fake[k].cat == v[k].cat) continue;
        if (synth_write_record(s, fake, q, rec->regs, rec->nregs, qvar, nb, 0, &alt)) continue;
        if (ss_equal(&alt.a, &rec->a)) continue; /* same answer: they would agree */
        rec->r = alt.r;
        return 0;
    }
    return -1;
}

static int fault_generic(SynthRecord *rec, SRng *r) {
    int k = rec->regs[0];
    if (srng_unif(r) < 0.5) {
        ss_clear(&rec->a);
        ss_fmt(&rec->a, filler_answers[srng_int(r, 5)], k);
    }
    ss_clear(&rec->r);
    ss_fmt(&rec->r, filler_rationales[srng_int(r, 5)], k);
    return 0;
}

static int fault_hallucinated(const SynthScene *s, const RegionView *v, SynthRecord *rec, int qvar, SRng *r) {
    int absent[64], m = 0;
    for (int c = 0; c < synth_n_categories && m < 64; c++) {
        int present = 0;
        for (int k = 0; k < s->n; k++) present |= s->obj[k].cat == c || v[k].cat == c;
        if (!present) absent[m++] = c;
    }
    if (!m) return -1;
    RegionView ghost[1];
    ghost[0].cat = absent[srng_int(r, m)];
    int pal[N_COLORS], np = 0;
    for (int c = 0; c < N_COLORS; c++)
        if (synth_categories[ghost[0].cat].palette & CB(c)) pal[np++] = c;
    ghost[0].color = pal[srng_int(r, np)];
    char desc[96];
    synth_short_desc(ghost, 0, desc, sizeof desc);
    SynthRecord alt;
    if (synth_write_record(s, v, rec->qtype, rec->regs, rec->nregs, qvar, desc, 0, &alt)) return -1;
    rec->r = alt.r;
    return 0;
}

void synth_teacher_record(const SynthScene *s, SRng *r, double fault_rate, SynthRecord *rec) {
    RegionView v[SYNTH_MAX_OBJ];
    synth_view(s, 0, v);
    int regs[3] = {0, 0, 0}, q, qvar, nb = -1;
    char nbdesc[96];
    for (int attempt = 0;; attempt++) {
        q = attempt < 20 ? pick_qtype(r) : Q_USE;
        if (synth_qtype_regions(q) > s->n) continue;
        synth_pick_regions(s, v, q, r, regs);
        qvar = srng_int(r, q == Q_WHICH ? MC_QTYPES : 2);
        nb = srng_unif(r) < 0.3 ? nearest_other(s, v, regs, synth_qtype_regions(q)) : -1;
        if (nb >= 0) synth_short_desc(v, nb, nbdesc, sizeof nbdesc);
        if (!synth_write_record(s, v, q, regs, synth_qtype_regions(q), qvar, nb >= 0 ? nbdesc : NULL, 0, rec)) break;
    }
    const char *nbp = nb >= 0 ? nbdesc : NULL;
    int fault = F_NONE;
    if (srng_unif(r) < fault_rate) {
        int first = 1 + srng_int(r, F_HALLUCINATED_OBJECT);
        for (int i = 0; i < F_HALLUCINATED_OBJECT && fault == F_NONE; i++) {
            int kind = 1 + (first - 1 + i) % F_HALLUCINATED_OBJECT, rc = -1;
            switch (kind) {
            case F_WRONG_REGION: rc = fault_wrong_region(s, v, rec, qvar, nbp, r); break;
            case F_INVENTED_ATTRIBUTE: rc = fault_invented_attribute(v, rec, r); break;
            case F_DISAGREE: rc = fault_disagree(s, v, rec, qvar, nbp, r); break;
            case F_GENERIC: rc = fault_generic(rec, r); break;
            case F_HALLUCINATED_OBJECT: rc = fault_hallucinated(s, v, rec, qvar, r); break;
            }
            if (rc == 0) fault = kind;
        }
    }
    if (fault == F_NONE) { /* written from a wrong description: wrong about the image */
        for (int i = 0; i < rec->nregs; i++)
            if (s->obj[rec->regs[i]].said_cat != s->obj[rec->regs[i]].cat) fault = F_MISDESCRIBED;
        if (nb >= 0 && s->obj[nb].said_cat != s->obj[nb].cat) fault = F_MISDESCRIBED;
    }
    rec->fault = fault;
}
