/* The synthetic world's internal interface, shared by data/synth_*.c only (the public
 * part is the "synthetic world" section of data/data.h).
 *
 * Pipeline for one image (all pure functions of (seed, image index), so the output
 * does not depend on the thread count):
 *   synth_scene_make   background + objects with true category, colour and box
 *   synth_render       pixels
 *   synth_verbalize    literal caption and region descriptions, as a noisy captioner
 *   synth_teacher      question/answer/rationale records from the verbalizations
 *   synth_mc_items     multiple-choice items from the true scene
 */
#ifndef VCM_SYNTH_INTERNAL_H
#define VCM_SYNTH_INTERNAL_H

#include "base/base.h"
#include "data/data.h"

#include <stdint.h>
#include <stddef.h>

#define SYNTH_W SYNTH_IMAGE_W
#define SYNTH_H SYNTH_IMAGE_H
#define SYNTH_MAX_OBJ 6

/* ---------------------------------------------------------------- random numbers
 * base/'s splitmix64: one stream per (seed, image, purpose), so each image is independent. */
typedef struct SRng { uint64_t s; } SRng;

static inline uint64_t srng_next(SRng *r) { return vcm_rng_next(&r->s); }
static inline SRng srng_for(uint64_t seed, uint64_t image, uint64_t purpose) {
    SRng r = {vcm_mix64(seed ^ vcm_mix64(image * VCM_GOLDEN64 + purpose * 0xd1b54a32d192ed03ULL))};
    return r;
}
static inline double srng_unif(SRng *r) { return vcm_rng_uniform(&r->s); }
static inline int srng_int(SRng *r, int n) { return (int)vcm_rng_below(&r->s, n <= 1 ? 1 : (uint64_t)n); }
static inline float srng_range(SRng *r, float a, float b) { return a + (b - a) * (float)srng_unif(r); }

enum { RNG_SCENE = 1, RNG_RENDER, RNG_VERBAL, RNG_TEACHER, RNG_MC, RNG_VOTES, RNG_SPLIT, RNG_GROUND, RNG_OPEN };

/* ---------------------------------------------------------------- ontology */
typedef struct SynthColor { const char *name; uint8_t rgb[3]; } SynthColor;
enum { COL_RED, COL_ORANGE, COL_YELLOW, COL_GREEN, COL_BLUE, COL_PURPLE, COL_PINK,
       COL_BROWN, COL_BLACK, COL_WHITE, COL_GREY, N_COLORS };
#define CB(c) (1u << (c))

typedef struct DrawCtx DrawCtx;
typedef void (*SynthDrawFn)(DrawCtx *c, const uint8_t col[3], SRng *r);

enum { KIND_FOOD, KIND_THING, KIND_VEHICLE, KIND_ANIMAL, KIND_PLANT, KIND_PERSON, KIND_BUILDING };

typedef struct SynthCategory {
    const char *name, *plural;
    int kind;
    float aspect;          /* box width / height */
    float hmin, hmax;      /* box height on the 256x192 canvas, pixels */
    uint32_t palette;      /* CB(colour) bits */
    uint32_t backgrounds;  /* where it belongs: bits of the background index */
    int size_class;        /* real-world size 1 tiny .. 6 huge */
    int capacity;          /* 0: holds nothing; else the largest size class it holds */
    const char *use;       /* "could be used to ..." */
    const char *place;     /* "is usually found ..." */
    const char *ability;   /* "can ..." */
    const char *material;  /* "is made of ..." */
    const char *reason;    /* "... is there because ..." (when it belongs there) */
    const char *confuse;   /* what a captioner mistakes it for */
} SynthCategory;

enum { BG_SKY, BG_GRASS, BG_WATER, BG_FLOOR, BG_ROAD, BG_SAND, N_BACKGROUNDS };

typedef struct SynthBackground {
    const char *name;
    const char *on;        /* "on the grass" */
    const char *caption;   /* "a grassy field" */
    float horizon;         /* fraction of the height where the ground starts */
    uint8_t ground[3];     /* the dominant colour behind ground objects (contrast check) */
    uint8_t upper[3];      /* behind flying objects */
} SynthBackground;

extern const SynthColor synth_colors[N_COLORS];
extern const SynthCategory synth_categories[];
extern const int synth_n_categories;
extern const SynthBackground synth_backgrounds[];
extern const int synth_n_backgrounds;
int synth_category_index(const char *name);   /* -1 if unknown */
const char *synth_size_word(int size_class);  /* "tiny" .. "huge" */
const char *synth_size_ref(int size_class);   /* "a coin" .. "a house" */
int synth_flies(int cat);                     /* placed anywhere, not on the ground */
/* The drawing of a category (data/synth_shapes.c), NULL if it has none. */
SynthDrawFn synth_shape(const char *name);

/* ---------------------------------------------------------------- scene */
typedef struct SynthObject {
    int cat, color;
    int size_adj;           /* -1 small, 0 none, +1 big (relative to the category's range) */
    float x0, y0, x1, y1;   /* box, absolute pixels of the SYNTH_W x SYNTH_H image */
    int flip;               /* mirrored drawing */
    int said_cat;           /* the captioner's category (== cat unless misdescribed) */
    char desc[96];          /* literal region description */
} SynthObject;

typedef struct SynthScene {
    long index;             /* image number */
    int bg;
    int n;                  /* objects; obj[k] is region id k */
    SynthObject obj[SYNTH_MAX_OBJ];
    int draw_order[SYNTH_MAX_OBJ];
    uint32_t tint;          /* small per-image background variation */
    char caption[320];
} SynthScene;

void synth_scene_make(uint64_t seed, long index, SynthScene *s);
void synth_verbalize(uint64_t seed, double caption_noise, SynthScene *s);
/* Draws into rgb (SYNTH_W*SYNTH_H*3). */
void synth_render(uint64_t seed, const SynthScene *s, uint8_t *rgb);

/* Drawing context: unit coordinates (u, v in [0,1]) inside a box, optionally mirrored. */
struct DrawCtx {
    uint8_t *rgb;
    int w, h;
    float x, y, bw, bh;
    int flip;
};
void dc_rect(DrawCtx *c, float u0, float v0, float u1, float v1, const uint8_t col[3]);
void dc_ellipse(DrawCtx *c, float cu, float cv, float ru, float rv, const uint8_t col[3]);
void dc_ring(DrawCtx *c, float cu, float cv, float ru, float rv, float thick, const uint8_t col[3]);
void dc_poly(DrawCtx *c, const float *uv, int n, const uint8_t col[3]);
void dc_tri(DrawCtx *c, float u0, float v0, float u1, float v1, float u2, float v2, const uint8_t col[3]);
void dc_line(DrawCtx *c, float u0, float v0, float u1, float v1, float thick_px, const uint8_t col[3]);
void synth_draw_background(uint8_t *rgb, int w, int h, int bg, uint32_t tint);

/* ---------------------------------------------------------------- words
 * A sentence in the corpus convention: words are strings, a mention a list of ids. */
#define SENT_MAX_TOK 96
typedef struct STok { short off; signed char nid; signed char ids[3]; } STok;
typedef struct SSent {
    STok t[SENT_MAX_TOK];
    int n;
    char buf[768];
    int nb;
} SSent;

void ss_clear(SSent *s);
void ss_word(SSent *s, const char *w, size_t len);
void ss_words(SSent *s, const char *phrase);          /* split on spaces */
void ss_mention(SSent *s, int a);
void ss_mention2(SSent *s, int a, int b);
/* Template: "%m" a mention (int), "%M" a two-id mention (int, int), "%s" a phrase
 * (split into words); everything else is words separated by spaces. */
void ss_fmt(SSent *s, const char *tmpl, ...);
const char *ss_wordat(const SSent *s, int i);         /* NULL for a mention */
int ss_equal(const SSent *a, const SSent *b);
void ss_replace_word(SSent *s, const char *from, const char *to);
void ss_swap_ids(SSent *s, int a, int b);
/* "[k] could be used to X ." -> "Which of them could be used to X ?"; -1 unless a is
 * one mention of one id followed by words and a full stop. */
int ss_which_question(const SSent *a, SSent *q);

/* A growing string. */
typedef struct SBuf { char *p; size_t n, cap; int oom; } SBuf;
void sb_put(SBuf *b, const char *s, size_t len);
void sb_puts(SBuf *b, const char *s);
void sb_printf(SBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_json_str(SBuf *b, const char *s);
void sb_json_sent(SBuf *b, const SSent *s);
void sb_free(SBuf *b);

/* ---------------------------------------------------------------- teacher */
enum { Q_USE, Q_PLACE, Q_ABILITY, Q_MATERIAL, Q_COLOR, Q_WHY_HERE, Q_SIZE, Q_EDIBLE,
       Q_FIT, Q_CLOSER, Q_BIGGER, Q_TOGETHER, Q_WHICH, N_QTYPES };
enum { F_NONE, F_WRONG_REGION, F_INVENTED_ATTRIBUTE, F_DISAGREE, F_GENERIC,
       F_HALLUCINATED_OBJECT, F_MISDESCRIBED, N_FAULTS };
extern const char *const synth_qtype_names[N_QTYPES];
extern const char *const synth_fault_names[N_FAULTS];
int synth_qtype_regions(int q);       /* how many regions a question type involves */

typedef struct SynthRecord {
    int qtype, fault;
    int regs[3], nregs;   /* regions in question order */
    SSent q, a, r;
} SynthRecord;

/* What a region looks like to whoever writes the text: the teacher sees the captioner's
 * categories (said_cat), the multiple-choice builder the truth. */
typedef struct RegionView { int cat, color; float cx, cy; } RegionView;
void synth_view(const SynthScene *s, int truth, RegionView *v);

/* Writes one record of type q about regions regs (in the view v): question variant qvar,
 * an extra "[k] is near <neighbour>." sentence when neighbour is not NULL, and with
 * flip the answer says the opposite of what the rationale supports (yes/no and
 * comparison types). Returns 0, or -1 when the type does not apply to these regions. */
int synth_write_record(const SynthScene *s, const RegionView *v, int q, const int *regs,
                       int nregs, int qvar, const char *neighbour, int flip, SynthRecord *rec);
/* "a red cup" / "a person in a red shirt" for region k as the view sees it. */
void synth_short_desc(const RegionView *v, int k, char *out, size_t cap);
/* After a word was replaced: make "a"/"an" agree with the next word. */
void ss_fix_articles(SSent *s);
/* Distinct random regions for question type q (for fit_inside mostly a container
 * second), as the teacher picks them. */
void synth_pick_regions(const SynthScene *s, const RegionView *v, int q, SRng *r, int *regs);
/* Chooses type and regions, writes, injects a fault with probability fault_rate. */
void synth_teacher_record(const SynthScene *s, SRng *r, double fault_rate, SynthRecord *rec);

/* ---------------------------------------------------------------- annotators */
void synth_votes(int fault, SRng *r, int votes[3]);   /* 1 accept, 0 reject */
double synth_vote_accuracy(int fault);                /* P(one vote is right) */

/* ---------------------------------------------------------------- multiple choice */
#define MC_QTYPES 5   /* Q_USE .. Q_COLOR: one answer per region, depends on the category */
typedef struct SynthMC {
    int qtype, region;
    SSent q;
    SSent choices[4];
    int choice_region[4];  /* the region whose right answer a choice is; -1: none in the image */
    int label;
    int other_region;
    int grounding;         /* the choices name different regions (synth_grounding_item) */
    int n_choices;         /* 4, or 2..4 for a grounding item */
} SynthMC;
/* Up to 3 items for a held-out image. Returns the number written. */
int synth_mc_items(const SynthScene *s, uint64_t seed, SynthMC *items, int max_items);
/* One grounding item for a held-out image (the question names no region, the choices
 * name different regions); returns 1, or 0 when the image allows none. */
int synth_grounding_item(const SynthScene *s, uint64_t seed, SynthMC *m);
/* The open-ended set: up to max_items fault-free records about a held-out image, from
 * the TRUE scene, of different question types (relational ones included): what
 * `vcm eval --open` asks and judges the generated answer against. */
int synth_open_items(const SynthScene *s, uint64_t seed, SynthRecord *items, int max_items);
void synth_json_open(const SynthScene *s, const SynthRecord *rec, int j, SBuf *b);
/* The true answer of an MC question type for region `k`, phrased with mention id `as_id`. */
void synth_mc_answer(const SynthScene *s, int qtype, int k, int as_id, SSent *out);

/* ---------------------------------------------------------------- JSON lines */
void synth_image_name(long index, char *buf, size_t cap);   /* "images/000042.png" */
void synth_json_regions(const SynthScene *s, SBuf *b);
void synth_json_record_open(const SynthScene *s, const SynthRecord *rec, int j, SBuf *b);
void synth_json_mc(const SynthScene *s, const SynthMC *m, SBuf *b);

#endif
