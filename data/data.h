/* data/ — files to batches: corpus / region-mapping / annotation / multiple-choice
 * readers (jsonl, jsonl.gz), images (stb), region handling, drawing, and the
 * synthetic world behind `vcm synth`.
 *
 * The public header of the folder. It is organised in sections, one per part;
 * data/ does not include tensor/ (the batch hand-off passes plain float arrays). */
#ifndef VCM_DATA_H
#define VCM_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ================================================================ records and readers
 * (data/jsonl*.c, data/corpus*.c, data/regions*.c, data/example*.c)
 * Formats, validation rules and the rendering of region mentions: docs/DATA_FORMATS.md.
 *
 * Errors: VCM_EINPUT with "FILE:LINE:COL: problem" for JSON syntax (COL from jansson,
 * in characters), "FILE:LINE: field \"name\": problem" for semantic problems. */
struct json_t;                         /* jansson's; only data/ needs its header */

/* Why a line/record is bad: the counting key of --skip-bad. */
typedef enum BadReason {
    BAD_NONE = 0,
    BAD_JSON_SYNTAX,      /* not JSON (jansson's message, with column) */
    BAD_NOT_OBJECT,       /* a JSON value other than an object */
    BAD_MISSING_FIELD,    /* a required field is absent */
    BAD_WRONG_TYPE,       /* a field of the wrong type (e.g. question not a list) */
    BAD_VALUE,            /* right type, impossible value (negative id, label out of range, vote) */
    BAD_EMPTY_QUESTION,
    BAD_EMPTY_TEXT,       /* empty answer or choice */
    BAD_IMAGE_NOT_IN_MAP, /* the record's image has no line in the region mapping */
    BAD_MISSING_REGION,   /* a region id absent from the image's mapping */
    BAD_BOX,              /* x1 < x0, y1 < y0, negative or non-numeric coordinate */
    BAD_BOX_OUTSIDE,      /* a box past the image's width/height */
    BAD_MISSING_IMAGE,    /* the image file cannot be opened */
    BAD_IMAGE,            /* undecodable or truncated image */
    BAD_DUPLICATE_IMAGE,  /* a second mapping line for the same image */
    BAD_TOO_MANY_REGIONS, /* a record needs more than VCM_MAX_REGIONS regions */
    BAD_LINE_TOO_LONG,
    BAD_N
} BadReason;
const char *bad_reason_name(int reason);   /* "json_syntax", "wrong_type", ... */
/* by_reason[BAD_N] as {"name": count}, reasons with a count only (NULL: out of memory). */
struct json_t *bad_reasons_json(const long *by_reason);

/* ---- JSONL lines: plain .jsonl or gzip .jsonl.gz (detected by the magic bytes) */
typedef struct JsonlLine {
    const char *path;
    long line_no;          /* 1-based line number in the (uncompressed) file */
    uint64_t offset;       /* byte offset of the line in the uncompressed stream */
    const char *text;      /* the line without "\n" / "\r\n", NUL-terminated */
    size_t len;
} JsonlLine;

#define JSONL_MAX_LINE (64u << 20)   /* longer lines are bad input, not an allocation */

/* Sequential streaming reader. Blank (whitespace-only) lines are skipped but counted. */
typedef struct JsonlReader {
    char *path;
    void *gz;              /* gzFile: zlib reads plain files transparently */
    char *buf;             /* read buffer */
    size_t buf_len, buf_pos;
    char *line;            /* the current line (grows up to JSONL_MAX_LINE) */
    size_t line_cap;
    long line_no;
    uint64_t offset;       /* offset of the next unread byte */
    int eof;
} JsonlReader;
int jsonl_open(JsonlReader *r, const char *path);
/* The next non-blank line into *out (valid until the next call). VCM_OK and
 * out->text == NULL at the end; VCM_EINPUT for a line over JSONL_MAX_LINE. */
int jsonl_next(JsonlReader *r, JsonlLine *out);
void jsonl_close(JsonlReader *r);

/* Parse one line with jansson. VCM_EINPUT "FILE:LINE:COL: problem" on a syntax error. */
int jsonl_parse(const JsonlLine *ln, struct json_t **out);

/* Random access by record (non-blank line) index. The index holds 16 bytes a record
 * (offset, length, line number) and, for gzip, zran-style access points: at the first
 * deflate block boundary `span` uncompressed bytes after the previous one, the bit
 * position and the 32 KiB window before it, so a record is read by inflating about
 * `span` bytes at most. Never the parsed JSON. docs/DATA_FORMATS.md has the figures. */
typedef struct JsonlIndex {
    char *path;
    long n;                /* records */
    uint64_t *off;         /* [n] offsets in the uncompressed stream */
    uint32_t *len;         /* [n] lengths without the line end */
    uint32_t *line_no;     /* [n] 1-based line numbers */
    uint64_t total;        /* uncompressed bytes */
    int gz;
    void *z;               /* gzip access points + the inflate cursor (internal) */
    int fd;
    char *buf;             /* the record last read */
    size_t buf_cap;
} JsonlIndex;
/* span_bytes 0: 1 MiB. */
int jsonl_index_build(JsonlIndex *ix, const char *path, long span_bytes);
/* Record i into *out (valid until the next read). Not thread-safe: one index per thread. */
int jsonl_index_read(JsonlIndex *ix, long i, JsonlLine *out);
/* gzip: keep the last n_spans decompressed spans (each about `span` bytes; 0 = none,
 * the default): a read inside a kept span is a memcpy. For the shuffled epochs below. */
int jsonl_index_cache(JsonlIndex *ix, int n_spans);
/* A permutation of 0..n-1 for one epoch into order[n]. Plain: a uniform shuffle.
 * Gzip: the spans between access points in random order, `group` spans at a time,
 * the records of each group shuffled together — with jsonl_index_cache(ix, group)
 * every span is inflated once an epoch instead of up to `span` bytes a record. */
int jsonl_index_shuffle(const JsonlIndex *ix, uint64_t seed, int group, long *order);
long jsonl_index_points(const JsonlIndex *ix);      /* gzip access points (0 if plain) */
size_t jsonl_index_bytes(const JsonlIndex *ix);     /* memory held by the index */
void jsonl_index_free(JsonlIndex *ix);

/* ---- records: corpus, annotation (corpus + votes), multiple choice */
typedef struct Word {
    const char *text;      /* a word; NULL for a region mention */
    const int *ids;        /* a mention: n_ids >= 1 region ids as written */
    int n_ids;
} Word;
typedef struct Words { Word *w; int n; } Words;

enum { REC_CORPUS = 0, REC_ANNOTATION = 1, REC_MC = 2, REC_KINDS = 3, REC_ANY = -1 };

#define MC_MAX_CHOICES 64   /* choices of one multiple-choice item, for every reader */
typedef struct Record {
    int kind;                       /* REC_*: "choices" → MC, "votes" → annotation */
    long line;                      /* line in the file, for messages */
    const char *image;              /* required */
    const char *source, *split, *index;   /* NULL when absent */
    const int *region; int n_region;      /* "region" (referenced ids); n -1 absent */
    const int *region_all; int n_region_all; /* "region_all"; n -1 absent */
    const char *region_all_key;     /* "region_all", or "regions" (MC items, as vcm synth writes) */
    Words question;                 /* non-empty */
    Words answer, rationale;        /* corpus/annotation: answer non-empty */
    int has_prediction; double prediction;
    int has_synth; const char *fault;     /* "synth": {"fault": null | "kind"} */
    int n_votes, n_accept;          /* annotation: "votes" ["accept"|"reject", ...] */
    Words *choices; int n_choices;  /* MC: 2..MC_MAX_CHOICES non-empty token lists */
    int label;                      /* MC: index of the right choice */
    int distractor_other_region;    /* MC: -1 absent, else 0/1 */
    int grounding;                  /* MC: -1 absent, else 0/1 ("grounding": the choices name
                                       different regions; the question names none) */
    const char *qtype;              /* "synth": {"qtype": ...}, NULL when absent */
    int relational;                 /* "synth": {"relational": true/false}; -1 absent */
    /* "references" (the LSKD release): the record's own boxes, element k = region k (or
     * an object id → region). When set, the record needs no region mapping: this entry
     * (image = the record's, no descriptions) is used instead. NULL when absent. */
    const struct RegionEntry *references;
    /* MC prompt "question: Q[ answer: A] <answer_prefix>": answer_prefix NULL = "answer:"
     * (the LSKD evaluation's "answer_prefix", lower-cased when rendered); prompt_answer 1
     * puts the answer in the prompt (VCR's QA→R: prefix "rationale:"; set by data/vcr.c). */
    const char *answer_prefix;
    int prompt_answer;
    void *mem_;                     /* everything above lives here */
} Record;

/* Parse and type-check one line. want: REC_ANY or the kind the file must hold.
 * On failure: VCM_EINPUT, the message, and *reason (may be NULL) set. */
int record_parse(const JsonlLine *ln, int want, Record *r, int *reason);
/* The same from an object already parsed (o stays the caller's); messages name ln's
 * file and line. For readers that turn another format into records (data/vcr.c). */
int record_from_json(const JsonlLine *ln, struct json_t *o, int want, Record *r, int *reason);
void record_free(Record *r);
/* Calls fn(ids, n_ids, ctx) for every mention of question, answer, rationale, choices. */
void record_each_mention(const Record *r, void (*fn)(const int *ids, int n, void *ctx), void *ctx);

/* ---- region mapping (DESIGN.md §5). Loaded whole: one entry per image, small. */
typedef struct RegionBox {
    int id;                 /* the id as written in the file ("0", "1", ...) */
    float x0, y0, x1, y1;   /* absolute pixels of the original image (first box of "boxes") */
    char *obj_guess;        /* may be NULL */
    char *description;      /* from "region_descriptions", may be NULL */
    int n_boxes;            /* boxes listed (the first is used) */
    int bad;                /* BadReason when kept despite a problem (skip_bad), else 0 */
} RegionBox;

typedef struct RegionEntry {
    char *image;            /* as in the file, relative to an images root */
    RegionBox *regions;     /* sorted by id */
    int n_regions;
    char **global;          /* "global" captions, may be 0 of them */
    int n_global;
    long line;              /* line in the mapping file, for messages; 0 for a record's "references" */
    int img_w, img_h;       /* from regionmap_check_image (0 before) */
    int checked;            /* image checked: 1 ok, -1 bad (see bad) */
    int bad;                /* BadReason of the image (missing, undecodable), else 0 */
} RegionEntry;

typedef struct RegionMap {
    char *path;
    RegionEntry *entries;   /* in file order */
    int n;
    void *index;            /* image -> entry (internal hash) */
    long n_skipped;         /* lines skipped (skip_bad) */
    long bad_by_reason[BAD_N];  /* lines skipped + boxes marked bad, by reason */
} RegionMap;

/* skip_bad: a malformed line is skipped, a bad box is kept but marked (box->bad), and
 * both counted, instead of failing. n_skipped may be NULL.
 * Errors: VCM_EINPUT with "FILE:LINE[:COL]: problem". */
int regionmap_load(const char *path, RegionMap *m, int skip_bad, long *n_skipped);
const RegionEntry *regionmap_find(const RegionMap *m, const char *image);
const RegionBox *region_entry_box(const RegionEntry *e, int id);  /* NULL if absent */
void regionmap_free(RegionMap *m);
/* Open images_root/e->image: the size (image_info), every box inside it, and a full
 * decode (image_load). Memoised in e->checked. Marks what it finds (e->bad, box->bad
 * for boxes outside) and returns VCM_EINPUT with the first problem, else VCM_OK.
 * Not thread-safe (it memoises into e); everything else here only reads the map. */
int regionmap_check_image(RegionMap *m, RegionEntry *e, const char *images_root);
/* A record against the mapping: its image has an entry, every id of region,
 * region_all and the mentions is in it, none of those boxes (nor the image) is marked
 * bad. VCM_EINPUT "FILE:LINE: problem" + *reason. A record with "references" is
 * checked against them instead, and m may be NULL (no mapping) for such records. */
int record_check_regions(const Record *r, const char *path, const RegionMap *m, int *reason);
/* The entry the record's ids refer to: its references, else its image's mapping entry
 * (NULL when neither; m may be NULL). */
const RegionEntry *record_regions(const Record *r, const RegionMap *m);
/* Every box of the record's "references" inside a w×h image (pixel edges: a box may end
 * at w, h); VCM_EINPUT "FILE:LINE: field \"references\": region K: box [...] is outside
 * the image \"I\" (WxH)" + *reason = BAD_BOX_OUTSIDE. VCM_OK for a record without them. */
int record_check_boxes(const Record *r, const char *path, int w, int h, int *reason);

/* ---- VCR (data/vcr.c): one line of VCR's train.jsonl / val.jsonl ("objects", "img_fn",
 * "metadata_fn", "question", "answer_choices", "answer_label", "rationale_choices",
 * "rationale_label") and its metadata file (images_root/metadata_fn: "boxes" [x1, y1,
 * x2, y2, score], "names", "width", "height") → two multiple-choice records whose
 * "references" are the metadata's boxes (region k = object k; references->img_w/img_h
 * = the metadata's size) and region_all every object: qa (Q→A: the answer choices after
 * "question: Q answer:") and qar (QA→R: the rationale choices after "question: Q answer:
 * A rationale:", A the right answer). Every problem: VCM_EINPUT "FILE:LINE: problem"
 * naming the VCR field or the metadata file, + *reason. docs/DATA_FORMATS.md. */
typedef struct VcrItem { Record qa, qar; int n_objects; } VcrItem;
int vcr_item_parse(const JsonlLine *ln, const char *images_root, VcrItem *out, int *reason);
void vcr_item_free(VcrItem *it);
/* Open images_root/image: it exists, is a regular file, its header gives the size and
 * it decodes fully. Returns BAD_NONE, or BAD_MISSING_IMAGE / BAD_IMAGE with the
 * problem in msg. *w, *h are set whenever the header was read (even if decoding fails). */
int image_check_file(const char *images_root, const char *image, int *w, int *h, char *msg, size_t cap);

/* ---- corpus validate / stats (the library side of `vcm corpus`) */
typedef struct CorpusCheck {
    long records, ok, bad;
    long by_kind[REC_KINDS];
    long bad_by_reason[BAD_N];
    long images_checked;
    long with_references;           /* records that carry their own boxes */
} CorpusCheck;
/* Called every CORPUS_PROGRESS_EVERY lines read (may be NULL): long runs show progress. */
#define CORPUS_PROGRESS_EVERY 65536
typedef void (*CorpusProgress)(long lines, void *ctx);
/* Every record of path: parse, types, regions in m (or in the record's "references";
 * m may be NULL when every record has them), images (when images_root).
 * skip_bad 0: VCM_EINPUT at the first problem; 1: count and go on. */
int corpus_validate(const char *path, RegionMap *m, const char *images_root, int skip_bad,
                    CorpusCheck *out, CorpusProgress progress, void *ctx);
/* One JSON object of statistics (records, images, sources, splits, words per field,
 * mentions, region ids histogram, prediction quantiles). Caller json_decref()s. */
int corpus_stats(const char *path, int skip_bad, struct json_t **out, CorpusProgress progress, void *ctx);

/* ---- a top-level JSON array read one element at a time (data/json_stream.c): files
 * like Visual Genome's, one huge list on one line. Only the current element's text is
 * held. Plain or gzip. Messages: "FILE: entry N (line L, byte B): problem". */
typedef struct JsonArrayStream {
    char *path;
    void *gz;
    char *buf; size_t buf_len, buf_pos;      /* read buffer */
    char *elem; size_t elem_len, elem_cap;   /* the current element's text */
    long line;             /* line of the next byte (1-based) */
    uint64_t offset;       /* byte offset of the next byte */
    long index;            /* elements returned so far */
    long elem_index, elem_line;   /* the element last returned: index, first line, */
    uint64_t elem_offset;         /* and the offset of its first byte */
    int state, eof;
} JsonArrayStream;
int json_array_stream_open(JsonArrayStream *s, const char *path);
/* The next element parsed into *out (the caller json_decref()s it); *out NULL after
 * the closing ']'. VCM_EINPUT when the file is not one JSON list (syntax, trailing
 * text, cut short). */
int json_array_stream_next(JsonArrayStream *s, struct json_t **out);
void json_array_stream_close(JsonArrayStream *s);

/* ---- Visual Genome → a region mapping (data/vg_import.c, data/vg_tables.c), the
 * library side of `vcm regions import-vg`. Per image: the valid regions at least
 * min_size px wide and high, largest area first (ties: file order), each dropped when
 * its IoU with one already kept is >= dedupe_iou, up to max_regions; numbered 0, 1, …
 * in that order; region_descriptions = the phrases; obj_guess = the first name of the
 * objects.json object with the highest IoU (>= obj_iou) with the region, else none.
 * Every malformed entry is refused: VCM_EINPUT "FILE: entry N (image ID, line L,
 * byte B): problem" (or counted with skip_bad). docs/DATA_FORMATS.md. */
typedef struct VgImportOptions {
    const char *regions_path;     /* region_descriptions.json (required) */
    const char *objects_path;     /* objects.json (NULL: no obj_guess) */
    const char *image_data_path;  /* image_data.json: sizes (boxes checked against them)
                                     and folders (NULL: sizes unknown) */
    const char *image_dir;        /* image = image_dir/<id>.jpg ("": <id>.jpg); NULL: the
                                     url's last two parts from image_data, else VG_100K/<id>.jpg */
    int max_regions;              /* 16 */
    int min_size;                 /* 8 (pixels); 0 keeps every size */
    double dedupe_iou;            /* 0.7; 0 turns deduplication off */
    double obj_iou;               /* 0.5 */
    int clip;                     /* clip boxes past the image (or negative) instead of refusing */
    int skip_bad;                 /* drop bad regions / objects / entries and count them */
    CorpusProgress progress;      /* every 16384 entries of region_descriptions (may be NULL) */
    void *progress_ctx;
} VgImportOptions;
typedef struct VgImportStats {
    long images, images_written, images_without_regions;
    long regions, regions_kept, regions_small, regions_duplicate, regions_over_max;
    long boxes_clipped, obj_guess_set;
    long image_data_images, objects, object_names;
    long bad_entries, bad_items;  /* skip_bad: entries / regions or objects dropped */
    long bad_by_reason[BAD_N];
} VgImportStats;
void vg_import_defaults(VgImportOptions *o);
/* Writes one mapping line per image with at least one region kept, in file order. */
int vg_import(const VgImportOptions *o, FILE *out, VgImportStats *st);

/* ---- region handling as the paper's loader (one training / evaluation example) */
#define VCM_MAX_REGIONS 16
enum { EXAMPLE_EVAL = 0, EXAMPLE_TRAIN = 1 };
/* OR'd into the mode of example_build: the text-only baseline (`--region-input text`).
 * Every mention is replaced by its region's literal description from the mapping's
 * "region_descriptions" (a mention of several ids: the descriptions joined with
 * " and "), so the text carries the referring expression instead of an id. The
 * regions and boxes are computed as without it (the model just does not read them). */
#define EXAMPLE_DESCRIBE 2
/* OR'd into EXAMPLE_EVAL: the regions as a user of `vcm generate` gives them — all of
 * region_all in listed order, so the text's ids are the file's positions in that list
 * (no renumbering by first mention). The open-ended evaluation asks this way. */
#define EXAMPLE_KEEP_IDS 4
typedef struct Example {
    int n_regions;                       /* regions given to the model, <= 16 */
    int orig_id[VCM_MAX_REGIONS];        /* k → the id in the record/mapping */
    float box[VCM_MAX_REGIONS][4];       /* x0 y0 x1 y1 in target-size pixels */
    int all_regions;                     /* train: 1 when all the image's regions were given */
    char *text;       /* corpus: "question: … answer: … rationale: …";
                         MC: the prompt "question: … answer:" */
    char **choices;   /* MC: each choice rendered (the scored continuation); else NULL */
    int n_choices;
} Example;
/* Regions given: EXAMPLE_EVAL: the referenced ones in order of first mention (then,
 * for an MC item, the rest of its region_all/"regions" in listed order, up to 16);
 * EXAMPLE_TRAIN: half the time as in eval, half the time all the image's regions
 * shuffled. rng: a 64-bit state, advanced only in EXAMPLE_TRAIN mode. img_w/img_h:
 * the original image size; target_w/target_h: the size the image is resized to. */
/* Errors (VCM_EINPUT, e.g. more than 16 referenced regions) carry no FILE:LINE
 * prefix: the caller, who knows the file, adds it. */
int example_build(const Record *r, const RegionEntry *e, int img_w, int img_h,
                  int target_w, int target_h, uint64_t *rng, int mode, Example *out);
void example_free(Example *ex);
/* Render words lower-cased with ids mapped through orig_id (a mention of ids a, b →
 * "[k(a)] , [k(b)]"). Appends to a malloc'd string; returns NULL + error on an id not
 * in the list. */
char *words_render(const Words *w, const int *orig_id, int n_regions);
/* The same with every mention replaced by the descriptions of its ids in e (ids as in
 * the file), lower-cased; several ids joined with " and ". NULL + VCM_EINPUT naming the
 * image and its mapping line when a mentioned region has no description. */
char *words_describe(const Words *w, const RegionEntry *e);

/* ---- judging a generated answer (data/open_judge.c), for `vcm eval --open`.
 * names[k]: how region k is written in the text ("[k]", or its description for the
 * text-only baseline); asked[k] != 0 for the regions the question asks about.
 * refers: the answer names at least one asked region and no other region (a name
 * matches as whole words; a name shared by an asked and another region counts as
 * asked). correct: the answer equals the true one, compared lower-cased with single
 * spaces (so a correct answer also refers). */
typedef struct OpenVerdict { int refers, correct, n_named; } OpenVerdict;
void open_judge(const char *answer, size_t answer_len, const char *truth, const char *const *names,
                const int *asked, int n_regions, OpenVerdict *v);

/* ================================================================ images and drawing
 * (data/image*.c, data/draw*.c)
 *
 * 8-bit RGB, row-major, 3 bytes a pixel. */
typedef struct Image {
    int w, h;
    uint8_t *rgb;
} Image;

/* Any format stb_image reads (JPEG/PNG/BMP/GIF/TGA), converted to RGB. A truncated
 * or corrupt file fails with VCM_EINPUT and "PATH: problem". */
int image_load(const char *path, Image *out);
/* images_root/image (a '/' added only when missing; images_root NULL or "": image
 * alone), malloc'd; NULL when out of memory. */
char *image_path(const char *images_root, const char *image);
/* Width and height from the header only (no full decode). */
int image_info(const char *path, int *w, int *h);
int image_save_png(const char *path, const Image *im);   /* atomic: temp file + rename */
void image_free(Image *im);
/* A w×h image, every pixel black. */
int image_alloc(Image *im, int w, int h);

/* ---- to the model's input (DESIGN.md §4). docs/IMAGES.md */

/* Resize to w×h (the aspect ratio is not kept: a square model input, as BLIP-2 does)
 * with stb_image_resize's triangle filter (bilinear; area-weighted, i.e. antialiased,
 * when shrinking — PIL's BILINEAR, torchvision's default), clamped edges, no sRGB
 * conversion. Deterministic. dst is allocated. */
int image_resize(const Image *src, int w, int h, Image *dst);

/* Boxes follow the resize: x' = x·sx, y' = y·sy. */
typedef struct ImageScale { float sx, sy; } ImageScale;
ImageScale image_scale(int src_w, int src_h, int dst_w, int dst_h);
void image_scale_box(ImageScale s, const float in[4], float out[4]);

/* HWC uint8 → CHW float, (x/255 − 0.5)/0.5 ∈ [−1, 1]. out holds 3·w·h floats. */
void image_to_chw(const uint8_t *rgb, int w, int h, float *out);

/* ---- crops and JPEG data URLs (data/image_encode.c), what `vcm verbalize` sends */

/* The pixels [x0, x1) × [y0, y1) of src (inside it, non-empty) into dst (allocated). */
int image_crop(const Image *src, int x0, int y0, int x1, int y1, Image *dst);
/* The longer side at most max_side (aspect kept, each side rounded, at least 1 px;
 * image_resize's filter); an image already small enough is copied. dst is allocated. */
int image_fit(const Image *src, int max_side, Image *dst);
/* Baseline JPEG (stb_image_write, quality 1..100) as "data:image/jpeg;base64,...".
 * *url is malloc'd and NUL-terminated. */
int image_jpeg_data_url(const Image *im, int quality, char **url);

/* ---- a cache of decoded-and-resized images: keyed by (path, size), a budget in bytes,
 * least-recently-used eviction. Thread-safe: any number of threads may call
 * image_cache_get at once (a miss decodes outside the lock, so misses run in
 * parallel). Optionally backed by a directory of raw files (disk_dir) that outlives
 * the process: a miss in memory tries the disk before decoding the original; an entry
 * on disk is used only if the original's size and mtime are unchanged. */
typedef struct ImageCache ImageCache;
typedef struct ImageCacheStats {
    long hits, misses, disk_hits, evictions;
    size_t bytes, entries;          /* held now */
} ImageCacheStats;
/* budget_bytes: memory for pixels (0: no memory caching); disk_dir NULL: no disk. */
int image_cache_new(ImageCache **c, size_t budget_bytes, const char *disk_dir);
/* path decoded, resized to size×size, copied into rgb (3·size·size bytes); the
 * original's width and height into *orig_w, *orig_h (for image_scale). Errors as
 * image_load's. */
int image_cache_get(ImageCache *c, const char *path, int size, uint8_t *rgb, int *orig_w, int *orig_h);
void image_cache_stats(ImageCache *c, ImageCacheStats *s);
void image_cache_free(ImageCache *c);

/* ---- drawing regions (the paper's visual prompt, `--region-input draw`, `vcm generate
 * --draw`): a translucent fill (alpha DRAW_FILL_ALPHA) and a 2 px outline in the
 * colour of the id, then the label "[id]" on a filled background in that colour.
 * Boxes are in the image's pixels, x1/y1 exclusive; anything outside is clipped. */
#define DRAW_FILL_ALPHA 0.12f
#define DRAW_OUTLINE 2
extern const uint8_t draw_palette[16][3];   /* id k uses draw_palette[k % 16] */
typedef struct DrawBox { float x0, y0, x1, y1; int id; } DrawBox;
/* label_scale: image pixels per font pixel of stb_easy_font (a glyph is 7 font pixels
 * high); 0 draws no labels; -1 (DRAW_LABEL_AUTO) picks min(w, h)/112: none below
 * 112 px (a 64×64 model image), 2 at 224, 4 at 500. */
#define DRAW_LABEL_AUTO (-1)
void draw_boxes(Image *im, const DrawBox *boxes, int n, int label_scale);

/* ================================================================ synthetic world
 * (data/synth*.c) docs/SYNTH.md
 *
 * `vcm synth`: procedurally drawn scenes (6 backgrounds, 41 categories), their literal
 * verbalizations, a simulated noisy teacher, simulated annotators and multiple-choice
 * sets with a known ground truth. Everything is a function of (seed, image index):
 * the same seed gives the same bytes for any thread count. */
#define SYNTH_IMAGE_W 256   /* native size: 4:3, so resizing and box scaling are exercised */
#define SYNTH_IMAGE_H 192

typedef struct SynthOptions {
    const char *out_dir;
    long n_images;
    uint64_t seed;
    double fault_rate;      /* P(a teacher record gets an injected fault), default 0.30 */
    double caption_noise;   /* P(the captioner names a region's category wrongly), 0.10 */
    int per_image;          /* teacher records per training image, default 6 */
    long n_annotated;       /* records with three votes; < 0: min(5000, records / 4) */
    double val_frac, test_frac;  /* images held out for mc_val / mc_test, 0.10 each */
    int png_level;          /* zlib level of the PNGs (stb), default 1 */
    int threads;            /* 0: the OpenMP default */
    int verbose;            /* progress lines on stderr */
} SynthOptions;

#define SYNTH_N_FAULT_KINDS 7   /* none + 5 injected + misdescribed_region */
typedef struct SynthStats {
    long images, train_images, val_images, test_images;
    long records, annotated;
    long mc_val, mc_val_other, mc_val_ground, mc_test, mc_test_other, mc_test_ground;
    long open_val, open_test;               /* open-ended items (open_*.jsonl) */
    long faults[SYNTH_N_FAULT_KINDS];     /* records by fault kind; [0] = none */
    int categories_used, backgrounds_used, qtypes_used;
    double seconds;
} SynthStats;

void synth_options_default(SynthOptions *o);
/* Writes DIR/images/NNNNNN.png, DIR/regions.jsonl, DIR/corpus.jsonl,
 * DIR/annotations.jsonl, DIR/mc_val.jsonl, DIR/mc_test.jsonl, DIR/open_val.jsonl,
 * DIR/open_test.jsonl (each first as *.tmp,
 * renamed when complete). Errors: VCM_EINPUT for bad options, VCM_ERR for I/O. */
int synth_generate(const SynthOptions *o, SynthStats *st);
/* One line of JSON with the stats (no newline), into buf. */
void synth_stats_json(const SynthStats *st, char *buf, size_t cap);

/* The world's vocabulary. what: "categories", "backgrounds", "qtypes", "faults",
 * "colors". synth_name returns NULL out of range. */
int synth_count(const char *what);
const char *synth_name(const char *what, int i);

/* Image `index` of the world with `seed`, as `vcm synth` writes it (im->rgb allocated). */
int synth_render_image(uint64_t seed, long index, Image *im);
/* The true answer of a multiple-choice question type (a synth_name("qtypes") of the
 * first five) for region `region` of image `index`, phrased with mention id `as_id`,
 * as a JSON word list into buf. Returns 0, or VCM_EINPUT for an unknown type/region. */
int synth_answer_json(uint64_t seed, long index, const char *qtype, int region, int as_id,
                      char *buf, size_t cap);
/* A PNG with n sample images as the models see them (224x224 with the numbered boxes
 * scaled alongside; 64x64 enlarged 3x) and a gallery of every category. */
int synth_contact_sheet(const char *path, uint64_t seed, int n);

#endif
