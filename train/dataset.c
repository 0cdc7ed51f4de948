/* Corpus records → model batches: read the record (by index), find its regions, take
 * the resized image from the cache, apply the paper's region handling (example_build),
 * tokenize "question: … answer: … rationale: …" and lay everything out as a Batch. */
#include "train/train.h"
#include "tensor/tensor.h"

#include <stdlib.h>
#include <string.h>

int dataset_open(Dataset *d, const char *corpus, const char *regions, const char *images_root,
                 const Tokenizer *tok, const ModelConfig *cfg, size_t cache_bytes, int skip_bad) {
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->cfg = *cfg;
    d->skip_bad = skip_bad;
    d->corpus_path = strdup(corpus);
    d->images_root = strdup(images_root ? images_root : ".");
    if (!d->corpus_path || !d->images_root) { dataset_close(d); return vcm_fail(VCM_ERR, "out of memory"); }
    int rc = jsonl_index_build(&d->index, corpus, 0);
    /* gzip: keep the spans of a shuffle group inflated (see the trainer's epoch order) */
    if (!rc && d->index.gz) rc = jsonl_index_cache(&d->index, GZ_SHUFFLE_GROUP);
    /* No mapping: every record must carry its own boxes ("references"). */
    if (!rc && regions) rc = regionmap_load(regions, &d->map, skip_bad, NULL);
    if (!rc) rc = image_cache_new(&d->cache, cache_bytes, NULL);
    if (!rc && d->index.n == 0) rc = vcm_fail(VCM_EINPUT, "%s: no records", corpus);
    if (rc) { dataset_close(d); return rc; }
    return VCM_OK;
}

void dataset_close(Dataset *d) {
    if (d->index.path) jsonl_index_free(&d->index);
    if (d->map.path) regionmap_free(&d->map);
    if (d->cache) image_cache_free(d->cache);
    free(d->corpus_path);
    free(d->images_root);
    memset(d, 0, sizeof *d);
}

/* One sample: everything but the batch layout. */
typedef struct Sample {
    Record rec;
    const RegionEntry *entry;
    int parsed;
    int n_ids;
    int32_t ids[1024];
    int n_regions;
    float box[MODEL_MAX_REGIONS][4];
    int rc;
    char err[512];
} Sample;


int batchbuf_alloc(BatchBuf *bb, const ModelConfig *cfg, int max_b) {
    memset(bb, 0, sizeof *bb);
    bb->max_b = max_b;
    size_t img = 3 * (size_t)cfg->image * cfg->image;
    Batch *b = &bb->b;
    b->images = calloc(img * (size_t)max_b, sizeof(float));   /* the text-only baseline leaves them at 0 */
    b->boxes = malloc(sizeof(float) * 4 * MODEL_MAX_REGIONS * max_b);
    b->n_regions = malloc(sizeof(int) * max_b);
    b->tokens = malloc(sizeof(int32_t) * cfg->max_text * max_b);
    b->targets = malloc(sizeof(int32_t) * cfg->max_text * max_b);
    /* dataset_batch's scratch, so that a training step allocates nothing */
    bb->samples = calloc((size_t)max_b, sizeof(Sample));
    bb->rgb = malloc(img * (size_t)max_b);
    if (!b->images || !b->boxes || !b->n_regions || !b->tokens || !b->targets || !bb->samples || !bb->rgb) {
        batchbuf_free(bb);
        return vcm_fail(VCM_ERR, "out of memory: batch of %d", max_b);
    }
    return VCM_OK;
}

void batchbuf_free(BatchBuf *bb) {
    free(bb->b.images);
    free(bb->b.boxes);
    free(bb->b.n_regions);
    free(bb->b.tokens);
    free(bb->b.targets);
    free(bb->samples);
    free(bb->rgb);
    memset(bb, 0, sizeof *bb);
}

int tokenize_example(const Tokenizer *tok, const char *text, int max_text, int32_t *ids) {
    size_t len = strlen(text);
    /* encode needs room for one id a byte; ordinary texts fit on the stack */
    int32_t stack[2048];
    int32_t *tmp = len + 1 <= 2048 ? stack : malloc(sizeof(int32_t) * (len + 1));
    if (!tmp) { vcm_fail(VCM_ERR, "out of memory"); return -1; }
    long n = bpe_encode(tok, text, len, tmp, len + 1);
    if (n < 0) { if (tmp != stack) free(tmp); return -1; }
    int k = 0;
    ids[k++] = BPE_BOS;
    for (long i = 0; i < n && k < max_text + 1; i++) ids[k++] = tmp[i];
    if (k < max_text + 1) ids[k++] = BPE_EOS;
    if (tmp != stack) free(tmp);
    return k;
}

/* Read and parse record i (sequential: the index is not thread-safe). */
static int read_record(Dataset *d, long i, Sample *s) {
    JsonlLine ln;
    int reason = 0;
    int rc = jsonl_index_read(&d->index, i, &ln);
    if (!rc) rc = record_parse(&ln, REC_ANY, &s->rec, &reason);
    if (rc) return rc;
    s->parsed = 1;
    if (s->rec.kind == REC_MC) return vcm_fail(VCM_EINPUT, "%s:%ld: a multiple-choice item in a training corpus", d->corpus_path, s->rec.line);
    const RegionMap *map = d->map.path ? &d->map : NULL;
    rc = record_check_regions(&s->rec, d->corpus_path, map, &reason);
    if (rc) return rc;
    s->entry = record_regions(&s->rec, map);
    return VCM_OK;
}

int dataset_batch(Dataset *d, const long *idx, int n, uint64_t seed, uint64_t sample0, int mode,
                  BatchBuf *bb) {
    if (n <= 0 || n > bb->max_b) return vcm_fail(VCM_ERR, "batch of %d (buffer holds %d)", n, bb->max_b);
    const ModelConfig *cfg = &d->cfg;
    Sample *s = bb->samples;
    memset(s, 0, sizeof *s * (size_t)n);
    int rc = VCM_OK;
    for (int i = 0; i < n && !rc; i++) {
        long r = idx[i];
        for (long tries = 0;; tries++) {
            int e = read_record(d, r, &s[i]);
            if (!e) break;
            if (s[i].parsed) record_free(&s[i].rec);
            s[i].parsed = 0;
            if (!d->skip_bad || tries + 1 >= d->index.n) { rc = e; break; }
            d->n_skipped++;
            r = (r + 1) % d->index.n;   /* the next record stands in for the bad one */
        }
    }
    size_t img = 3 * (size_t)cfg->image * cfg->image;
    if (!rc) {
        /* Images, region handling and tokens in parallel: each sample is independent. */
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < n; i++) {
            Sample *x = &s[i];
            uint8_t *rgb = bb->rgb + img * (size_t)i;
            int ow = cfg->image, oh = cfg->image, text_only = cfg->region_input == REGION_INPUT_TEXT;
            if (!text_only) {   /* the text-only baseline never opens an image */
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", d->images_root, x->rec.image);
                x->rc = image_cache_get(d->cache, path, cfg->image, rgb, &ow, &oh);
            }
            Example ex;
            uint64_t rng = vcm_hash64(seed ^ vcm_hash64(sample0 + (uint64_t)i + 1));
            if (!x->rc)
                x->rc = example_build(&x->rec, x->entry, ow, oh, cfg->image, cfg->image, &rng,
                                      mode | (text_only ? EXAMPLE_DESCRIBE : 0), &ex);
            if (!x->rc) {
                x->n_regions = ex.n_regions > MODEL_MAX_REGIONS ? MODEL_MAX_REGIONS : ex.n_regions;
                memcpy(x->box, ex.box, sizeof(float) * 4 * (size_t)x->n_regions);
                x->n_ids = tokenize_example(d->tok, ex.text, cfg->max_text, x->ids);
                if (x->n_ids < 0) x->rc = VCM_ERR;
                example_free(&ex);
            }
            if (!x->rc && !text_only) model_image(cfg, rgb, (const float(*)[4])x->box, x->n_regions, bb->b.images + img * i);
            if (x->rc) snprintf(x->err, sizeof x->err, "%s", vcm_error());
        }
        for (int i = 0; i < n && !rc; i++)
            if (s[i].rc) rc = vcm_fail(s[i].rc, "%s:%ld: %s", d->corpus_path, s[i].rec.line, s[i].err);
    }
    if (!rc) {
        Batch *b = &bb->b;
        b->B = n;
        b->R = 0;
        b->T = 1;
        for (int i = 0; i < n; i++) {
            if (s[i].n_regions > b->R) b->R = s[i].n_regions;
            if (s[i].n_ids - 1 > b->T) b->T = s[i].n_ids - 1;
        }
        if (cfg->region_input != REGION_INPUT_ROI) b->R = 0;
        for (int i = 0; i < n; i++) {
            b->n_regions[i] = b->R ? s[i].n_regions : 0;
            for (int k = 0; k < b->R; k++) {
                float *bx = b->boxes + 4 * ((size_t)i * b->R + k);
                if (k < s[i].n_regions) memcpy(bx, s[i].box[k], sizeof(float) * 4);
                else { bx[0] = bx[1] = 0; bx[2] = bx[3] = (float)cfg->patch; }  /* masked slot */
            }
            for (int t = 0; t < b->T; t++) {
                int have = t + 1 < s[i].n_ids;
                b->tokens[(size_t)i * b->T + t] = t < s[i].n_ids ? s[i].ids[t] : BPE_PAD;
                b->targets[(size_t)i * b->T + t] = have ? s[i].ids[t + 1] : -1;
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (s[i].parsed) record_free(&s[i].rec);
    return rc;
}
