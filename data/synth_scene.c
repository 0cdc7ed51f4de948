/* A scene: background, 2-6 objects with category, colour, size and box; and its
 * verbalization, as a captioner would write it: a literal global caption and one
 * literal description per region that tells the region apart from the others.
 *
 * Region ids are a random permutation of the objects, independent of position, size
 * and draw order, so that an id says nothing about what it points at. */
#include "data/synth_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int color_far(const uint8_t a[3], const uint8_t b[3]) {
    int d = abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2]);
    return d > 150;
}

static int pick_category(SRng *r, int bg, const int *have, int n_have) {
    int best = 0;
    for (int attempt = 0; attempt < 12; attempt++) {
        int cat;
        if (srng_unif(r) < 0.85) { /* something that belongs here */
            int cand[64], m = 0;
            for (int i = 0; i < synth_n_categories && m < 64; i++)
                if (synth_categories[i].backgrounds & CB(bg)) cand[m++] = i;
            cat = cand[srng_int(r, m)];
        } else {
            cat = srng_int(r, synth_n_categories);
        }
        int dup = 0;
        for (int i = 0; i < n_have; i++) dup += have[i] == cat;
        best = cat;
        if (dup == 0 || (dup == 1 && srng_unif(r) < 0.2)) return cat; /* a few repeated categories */
    }
    return best;
}

static int pick_color(SRng *r, int cat, const uint8_t behind[3]) {
    int ok[N_COLORS], m = 0, all[N_COLORS], na = 0;
    for (int c = 0; c < N_COLORS; c++) {
        if (!(synth_categories[cat].palette & CB(c))) continue;
        all[na++] = c;
        if (color_far(synth_colors[c].rgb, behind)) ok[m++] = c;
    }
    return m ? ok[srng_int(r, m)] : all[srng_int(r, na)];
}

static float overlap(const SynthObject *a, float x0, float y0, float x1, float y1) {
    float ix = (a->x1 < x1 ? a->x1 : x1) - (a->x0 > x0 ? a->x0 : x0);
    float iy = (a->y1 < y1 ? a->y1 : y1) - (a->y0 > y0 ? a->y0 : y0);
    if (ix <= 0 || iy <= 0) return 0;
    float aa = (a->x1 - a->x0) * (a->y1 - a->y0), ab = (x1 - x0) * (y1 - y0);
    return ix * iy / (aa < ab ? aa : ab);
}

void synth_scene_make(uint64_t seed, long index, SynthScene *s) {
    SRng r = srng_for(seed, (uint64_t)index, RNG_SCENE);
    memset(s, 0, sizeof *s);
    s->index = index;
    s->bg = srng_int(&r, N_BACKGROUNDS);
    s->tint = (uint32_t)srng_next(&r);
    const SynthBackground *bg = &synth_backgrounds[s->bg];
    int want = 2 + srng_int(&r, SYNTH_MAX_OBJ - 1);
    SynthObject placed[SYNTH_MAX_OBJ];
    int cats[SYNTH_MAX_OBJ], n = 0;
    float hz = bg->horizon * SYNTH_H;
    for (int tries = 0; n < want && tries < 8 * SYNTH_MAX_OBJ; tries++) {
        int cat = pick_category(&r, s->bg, cats, n);
        const SynthCategory *c = &synth_categories[cat];
        int fly = synth_flies(cat);
        float shrink = tries > 3 * SYNTH_MAX_OBJ ? 0.8f : 1.0f;
        float t = (float)srng_unif(&r);
        int h = (int)((c->hmin + t * (c->hmax - c->hmin)) * shrink + 0.5f);
        int w = (int)((float)h * c->aspect + 0.5f);
        if (w > SYNTH_W * 6 / 10) { w = SYNTH_W * 6 / 10; h = (int)((float)w / c->aspect + 0.5f); }
        int x0 = srng_int(&r, SYNTH_W - w + 1), y0;
        if (fly) {
            int ymax = (int)(hz + 0.3f * (float)h) - h;
            y0 = srng_int(&r, (ymax > 0 ? ymax : 0) + 1);
        } else { /* standing on the ground: the bottom edge below the horizon */
            int lo = (int)hz + 10, y1 = lo + srng_int(&r, SYNTH_H - lo + 1);
            if (y1 > SYNTH_H) y1 = SYNTH_H;
            y0 = y1 - h;
            if (y0 < 0) y0 = 0;
        }
        float fx0 = (float)x0, fy0 = (float)y0, fx1 = (float)(x0 + w), fy1 = (float)(y0 + h);
        int clash = 0;
        for (int i = 0; i < n && !clash; i++) clash = overlap(&placed[i], fx0, fy0, fx1, fy1) > 0.12f;
        if (clash) continue;
        SynthObject *o = &placed[n];
        memset(o, 0, sizeof *o);
        o->cat = cat;
        o->x0 = fx0; o->y0 = fy0; o->x1 = fx1; o->y1 = fy1;
        o->size_adj = t < 0.3f ? -1 : t > 0.7f ? 1 : 0;
        o->flip = srng_int(&r, 2);
        o->color = pick_color(&r, cat, fly ? bg->upper : bg->ground);
        o->said_cat = cat;
        cats[n++] = cat;
    }
    /* ids: a random permutation */
    int perm[SYNTH_MAX_OBJ];
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = srng_int(&r, i + 1), tmp = perm[i];
        perm[i] = perm[j]; perm[j] = tmp;
    }
    s->n = n;
    for (int i = 0; i < n; i++) s->obj[perm[i]] = placed[i];
    /* draw order: farther (higher bottom edge) first */
    for (int i = 0; i < n; i++) s->draw_order[i] = i;
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && s->obj[s->draw_order[b - 1]].y1 > s->obj[s->draw_order[b]].y1; b--) {
            int tmp = s->draw_order[b];
            s->draw_order[b] = s->draw_order[b - 1];
            s->draw_order[b - 1] = tmp;
        }
}

/* ---------------------------------------------------------------- verbalizer */

static const char *article(const char *next) {
    return strchr("aeiou", next[0]) ? "an" : "a";
}

static void describe(const SynthObject *o, const char *size, const char *where, char *out, size_t cap) {
    const char *name = synth_categories[o->said_cat].name, *col = synth_colors[o->color].name;
    char head[64];
    if (size[0]) snprintf(head, sizeof head, "%s %s", size, synth_categories[o->said_cat].kind == KIND_PERSON ? "" : col);
    else snprintf(head, sizeof head, "%s", synth_categories[o->said_cat].kind == KIND_PERSON ? "" : col);
    size_t hl = strlen(head);
    while (hl && head[hl - 1] == ' ') head[--hl] = 0;
    if (synth_categories[o->said_cat].kind == KIND_PERSON) {
        if (hl) snprintf(out, cap, "%s %s person in a %s shirt%s%s", article(head), head, col, where[0] ? " " : "", where);
        else snprintf(out, cap, "a person in a %s shirt%s%s", col, where[0] ? " " : "", where);
    } else {
        snprintf(out, cap, "%s %s %s%s%s", article(head), head, name, where[0] ? " " : "", where);
    }
}

void synth_verbalize(uint64_t seed, double caption_noise, SynthScene *s) {
    SRng r = srng_for(seed, (uint64_t)s->index, RNG_VERBAL);
    const char *size[SYNTH_MAX_OBJ], *where[SYNTH_MAX_OBJ];
    for (int k = 0; k < s->n; k++) {
        SynthObject *o = &s->obj[k];
        o->said_cat = o->cat;
        if (srng_unif(&r) < caption_noise) {
            int c = synth_category_index(synth_categories[o->cat].confuse);
            if (c >= 0) o->said_cat = c;
        }
        size[k] = o->size_adj && srng_unif(&r) < 0.5 ? (o->size_adj < 0 ? "small" : "big") : "";
        where[k] = "";
    }
    /* Same category and colour in the words: tell them apart by size, else position. */
    for (int a = 0; a < s->n; a++)
        for (int b = a + 1; b < s->n; b++) {
            SynthObject *A = &s->obj[a], *B = &s->obj[b];
            if (A->said_cat != B->said_cat || A->color != B->color) continue;
            float sa = (A->x1 - A->x0) * (A->y1 - A->y0), sb = (B->x1 - B->x0) * (B->y1 - B->y0);
            if (sa > 1.6f * sb || sb > 1.6f * sa) {
                size[a] = sa > sb ? "big" : "small";
                size[b] = sa > sb ? "small" : "big";
                continue;
            }
            size[a] = size[b] = "";
            float dx = (A->x0 + A->x1 - B->x0 - B->x1) * 0.5f, dy = (A->y0 + A->y1 - B->y0 - B->y1) * 0.5f;
            if ((dx < 0 ? -dx : dx) >= (dy < 0 ? -dy : dy)) {
                where[a] = dx < 0 ? "on the left" : "on the right";
                where[b] = dx < 0 ? "on the right" : "on the left";
            } else {
                where[a] = dy < 0 ? "at the top" : "at the bottom";
                where[b] = dy < 0 ? "at the bottom" : "at the top";
            }
        }
    for (int k = 0; k < s->n; k++) describe(&s->obj[k], size[k], where[k], s->obj[k].desc, sizeof s->obj[k].desc);
    /* Still equal (three alike): number them by position from the left. */
    for (int a = 0; a < s->n; a++)
        for (int b = a + 1; b < s->n; b++)
            if (!strcmp(s->obj[a].desc, s->obj[b].desc)) {
                int rank = 0;
                for (int k = 0; k < s->n; k++) rank += s->obj[k].x0 < s->obj[b].x0;
                size_t l = strlen(s->obj[b].desc);
                snprintf(s->obj[b].desc + l, sizeof s->obj[b].desc - l, " (number %d from the left)", rank + 1);
            }
    /* Global caption: "a grassy field with a brown dog, a red ball and two trees". */
    int used[SYNTH_MAX_OBJ] = {0};
    char parts[SYNTH_MAX_OBJ][80];
    int np = 0;
    for (int a = 0; a < s->n; a++) {
        if (used[a]) continue;
        int count = 1;
        for (int b = a + 1; b < s->n; b++)
            if (!used[b] && s->obj[b].said_cat == s->obj[a].said_cat) { used[b] = 1; count++; }
        const SynthCategory *c = &synth_categories[s->obj[a].said_cat];
        if (count > 1) snprintf(parts[np++], 80, "%s %s", count == 2 ? "two" : "three", c->plural);
        else if (c->kind == KIND_PERSON) snprintf(parts[np++], 80, "a person");
        else {
            const char *col = synth_colors[s->obj[a].color].name;
            snprintf(parts[np++], 80, "%s %s %s", article(col), col, c->name);
        }
    }
    size_t l = (size_t)snprintf(s->caption, sizeof s->caption, "%s with ", synth_backgrounds[s->bg].caption);
    for (int i = 0; i < np && l < sizeof s->caption; i++)
        l += (size_t)snprintf(s->caption + l, sizeof s->caption - l, "%s%s", i == 0 ? "" : i == np - 1 ? " and " : ", ", parts[i]);
}
