/* tools/infer_util.h — private to the inference commands (vcm generate, score, eval):
 * loading a student with its tokenizer, --region boxes, one image as the model's input,
 * the prompt text, and JSON strings for text the model wrote. */
#ifndef VCM_INFER_UTIL_H
#define VCM_INFER_UTIL_H

#include "tools/tools.h"
#include "train/train.h"

#include <stdio.h>

/* The checkpoint and the tokenizer; a bad or missing file, or a tokenizer with more ids
 * than the model, prints the reason and returns 2 (else 0). On failure nothing is held. */
int infer_load(const char *cmd, const char *model_path, const char *tok_path, Student *m, Tokenizer *tok);
void infer_unload(Student *m, Tokenizer *tok);

/* What vcm generate and vcm score share from their flags to the model's input: the
 * model and tokenizer, the regions (--region boxes, or --description for a text-only
 * model, which reads no pixel), the image checked against the boxes and made into the
 * model's input (chw, mboxes). Each step prints its reason and returns 2 (bad input)
 * or 1; infer_session_close frees whatever was opened. */
typedef struct InferSession {
    const char *cmd;
    Student m;
    Tokenizer tok;
    int loaded, text_only;
    int n;                                   /* regions: boxes, or descriptions */
    float boxes[MODEL_MAX_REGIONS][4];       /* original image pixels */
    float mboxes[MODEL_MAX_REGIONS][4];      /* model-image pixels */
    Image orig;
    float *chw;                              /* 3·image² (0s for a text-only model) */
} InferSession;
/* --region parsed, threads set, model loaded; --description only for a text-only model,
 * --image required unless text-only. */
int infer_session_open(InferSession *s, const char *cmd, const char *model, const char *tok_path, const char *image,
                       const FlagList *regions, const FlagList *descs, int threads);
/* "FLAG mentions [k] but n regions were given" when text names a region past n. */
int infer_session_check_mentions(const InferSession *s, const char *flag, const char *text);
/* The image loaded, the boxes checked against it, the model's input made (no-op for a
 * text-only model). */
int infer_session_image(InferSession *s, const char *image, const FlagList *regions);
/* One sample's batch over s->chw and s->mboxes with the prompt tokens (targets may be
 * NULL); n_regions: storage for the region count. */
Batch infer_session_batch(const InferSession *s, int32_t *tokens, int32_t *targets, int T, int *n_regions);
void infer_session_close(InferSession *s);

/* --region x0,y0,x1,y1 flags (original image pixels) into boxes; at most
 * MODEL_MAX_REGIONS. Returns 0, or 2 with a message naming the flag. */
int infer_parse_regions(const char *cmd, const FlagList *l, float (*boxes)[4], int *n);
/* Every box inside a w×h image with x0 <= x1, y0 <= y1. Returns 0, or 2 naming the flag. */
int infer_check_regions(const char *cmd, const FlagList *l, const float (*boxes)[4], int n, int w, int h);

/* The model's input from the original image, as training makes it: resized to
 * cfg->image, boxes scaled with it and clamped (into mboxes), drawn when the model's
 * region input is draw, normalised CHW into chw (3·image² floats). */
int infer_image_input(const ModelConfig *cfg, const Image *orig, const float (*boxes)[4], int n,
                      float *chw, float (*mboxes)[4]);

/* A question as the corpus renders it: lower case, punctuation . , ? ! ; : split from
 * the word before it, single spaces. malloc'd; NULL on out of memory. */
char *infer_normalize_question(const char *q);
/* The highest k of the mentions [k] in s, or -1. */
int infer_max_mention(const char *s);
/* The text-only baseline's prompt: every mention [k] in s replaced by desc->v[k]
 * (the region's literal description, lower-cased and trimmed), as training renders a
 * record with EXAMPLE_DESCRIBE. malloc'd; NULL with *bad = k for a mention without a
 * description (k >= desc->n, or an empty one), or with *bad = -1 on out of memory.
 * (A string cannot tell a two-id mention "[0] , [1]" from two mentions: each [k] is
 * replaced on its own, so that one renders "d0 , d1" where training writes "d0 and d1".) */
char *infer_describe_mentions(const char *s, const FlagList *desc, int *bad);

/* "question: Q answer: A rationale: R" cut at its markers (each part trimmed);
 * a part whose marker is absent is NULL. */
typedef struct QarParts { const char *q, *a, *r; size_t qn, an, rn; } QarParts;
void infer_split_text(const char *text, QarParts *out);

/* JSON strings and numbers: vcm_json_put_string / vcm_json_put_number (base/base.h). */

/* ---- the open-ended evaluation (tools/eval_open.c), `vcm eval --open` */
#define OPEN_MAX_TYPES 32
typedef struct OpenGroup { char name[32]; long n, refers, correct; } OpenGroup;
typedef struct OpenReport {
    OpenGroup all, literal, relational;   /* literal/relational: items that say so */
    OpenGroup types[OPEN_MAX_TYPES];      /* by "synth.qtype" */
    int n_types;
    long n_first_id;                      /* one asked region, true answer starts with its id */
    double sum_first_id;                  /* Σ p(that id) as the first answer token */
    long n_first_multi;                   /* several asked, the answer starts with one of them */
    double sum_first_multi;
    long skipped;
    double seconds;
} OpenReport;
/* Every item of path (limit 0: all): greedy answer with all regions given, judged.
 * pred: one JSON line per item, or NULL. VCM_EINPUT "FILE:LINE: problem" for a bad
 * item unless skip_bad (then counted in rep->skipped). */
int eval_open(const char *path, Student *m, const Tokenizer *tok, const RegionMap *map, ImageCache *cache,
              const char *root, long limit, int skip_bad, int quiet, FILE *pred, OpenReport *rep);
/* The report as one JSON object (no newline). */
void eval_open_json(FILE *f, const OpenReport *r);

#endif
