/* `vcm synth`'s driver: splits the images, builds each image (scene, pixels, PNG,
 * verbalization, teacher records or multiple-choice items) in parallel, and appends the
 * JSON lines in image order, so the files do not depend on the thread count.
 *
 * Images are processed in chunks: a chunk is built in parallel into memory, then
 * written by one thread. Every file is an AtomicFile (base/base.h): written as NAME.tmp and
 * renamed when complete, so an interrupted run never leaves a half file under a real name. */
#include "data/synth_internal.h"
#include "base/base.h"

#include <errno.h>
#include <omp.h>
#include <stb/stb_image_write.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CHUNK 256
#define MAX_PER_IMAGE 64
enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST };
#define OPEN_PER_IMAGE 4
enum { OUT_REGIONS, OUT_CORPUS, OUT_ANN, OUT_MC_VAL, OUT_MC_TEST, OUT_OPEN_VAL, OUT_OPEN_TEST, N_OUT };
static const char *const out_names[N_OUT] = {"regions.jsonl", "corpus.jsonl", "annotations.jsonl",
                                             "mc_val.jsonl", "mc_test.jsonl", "open_val.jsonl",
                                             "open_test.jsonl"};

void synth_options_default(SynthOptions *o) {
    memset(o, 0, sizeof *o);
    o->n_images = 1000;
    o->seed = 1;
    o->fault_rate = 0.30;
    o->caption_noise = 0.10;
    o->per_image = 6;
    o->n_annotated = -1;
    o->val_frac = 0.10;
    o->test_frac = 0.10;
    o->png_level = 1;
}

/* Held-out images are spread evenly by index (images are independent draws, so the
 * index carries no information); exact counts for any N. */
static int split_of(long i, double val, double test) {
    double h = val + test;
    long a = (long)((double)i * h), b = (long)((double)(i + 1) * h);
    if (b == a) return SPLIT_TRAIN;
    double t = test / h;
    long m = a, ta = (long)((double)m * t), tb = (long)((double)(m + 1) * t);
    return tb > ta ? SPLIT_TEST : SPLIT_VAL;
}

typedef struct ImageOut {
    SBuf regions, corpus, mc, open;
    size_t rec_end[MAX_PER_IMAGE];
    int rec_fault[MAX_PER_IMAGE], nrec;
    int rec_qtype[MAX_PER_IMAGE];
    int split, n_mc, n_mc_other, n_mc_ground, n_open;
    uint64_t cats;
    int bg;
    int err;
    char msg[320];
} ImageOut;

static void png_sink(void *ctx, void *data, int size) {
    FILE *f = ctx;
    if (size > 0) fwrite(data, 1, (size_t)size, f);
}

/* No fsync per image: the world can be made again, and thousands of fsyncs would
 * dominate the run. The error goes into msg (the caller's thread reports it). */
static int write_png(const char *dir, long index, const uint8_t *rgb, char *msg, size_t cap) {
    char name[64], path[4096];
    synth_image_name(index, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    AtomicFile af;
    int rc = atomic_file_open_flags(&af, path, ATOMIC_NO_SYNC);
    if (!rc) {
        if (!stbi_write_png_to_func(png_sink, af.f, SYNTH_W, SYNTH_H, 3, rgb, SYNTH_W * 3)) {
            atomic_file_abort(&af);
            rc = vcm_fail(VCM_ERR, "%s: the PNG encoder failed", path);
        } else rc = atomic_file_commit(&af);
    }
    if (rc) snprintf(msg, cap, "%.300s", vcm_error());
    return rc ? -1 : 0;
}

static void build_image(const SynthOptions *o, long i, uint8_t *rgb, ImageOut *out) {
    SynthScene s;
    synth_scene_make(o->seed, i, &s);
    synth_verbalize(o->seed, o->caption_noise, &s);
    synth_render(o->seed, &s, rgb);
    if (write_png(o->out_dir, i, rgb, out->msg, sizeof out->msg)) { out->err = 1; return; }
    out->bg = s.bg;
    for (int k = 0; k < s.n; k++) out->cats |= 1ull << s.obj[k].cat;
    synth_json_regions(&s, &out->regions);
    out->split = split_of(i, o->val_frac, o->test_frac);
    if (out->split == SPLIT_TRAIN) {
        SRng r = srng_for(o->seed, (uint64_t)i, RNG_TEACHER);
        for (int j = 0; j < o->per_image; j++) {
            SynthRecord rec;
            synth_teacher_record(&s, &r, o->fault_rate, &rec);
            synth_json_record_open(&s, &rec, j, &out->corpus);
            out->rec_end[j] = out->corpus.n;
            out->rec_fault[j] = rec.fault;
            out->rec_qtype[j] = rec.qtype;
        }
        out->nrec = o->per_image;
    } else {
        SynthMC items[4];
        int n = synth_mc_items(&s, o->seed, items, 3);
        n += synth_grounding_item(&s, o->seed, &items[n]);
        for (int t = 0; t < n; t++) {
            synth_json_mc(&s, &items[t], &out->mc);
            out->n_mc_other += items[t].other_region;
            out->n_mc_ground += items[t].grounding;
        }
        out->n_mc = n;
        SynthRecord open[OPEN_PER_IMAGE];
        out->n_open = synth_open_items(&s, o->seed, open, OPEN_PER_IMAGE);
        for (int t = 0; t < out->n_open; t++) synth_json_open(&s, &open[t], t, &out->open);
    }
    if (out->regions.oom || out->corpus.oom || out->mc.oom || out->open.oom) {
        out->err = 1;
        snprintf(out->msg, sizeof out->msg, "image %ld: out of memory", i);
    }
}

static int check_options(const SynthOptions *o) {
    if (!o->out_dir || !o->out_dir[0]) return vcm_fail(VCM_EINPUT, "synth: no output directory");
    if (o->n_images < 1) return vcm_fail(VCM_EINPUT, "synth: --images must be at least 1 (got %ld)", o->n_images);
    if (!(o->fault_rate >= 0 && o->fault_rate <= 1))
        return vcm_fail(VCM_EINPUT, "synth: --fault-rate must be in [0, 1] (got %g)", o->fault_rate);
    if (!(o->caption_noise >= 0 && o->caption_noise <= 1))
        return vcm_fail(VCM_EINPUT, "synth: --caption-noise must be in [0, 1] (got %g)", o->caption_noise);
    if (o->per_image < 1 || o->per_image > MAX_PER_IMAGE)
        return vcm_fail(VCM_EINPUT, "synth: --per-image must be in [1, %d] (got %d)", MAX_PER_IMAGE, o->per_image);
    if (!(o->val_frac >= 0 && o->test_frac >= 0 && o->val_frac + o->test_frac < 1))
        return vcm_fail(VCM_EINPUT, "synth: --val-frac and --test-frac must be >= 0 with a sum below 1");
    if (o->png_level < 0 || o->png_level > 9)
        return vcm_fail(VCM_EINPUT, "synth: --png-level must be in [0, 9] (got %d)", o->png_level);
    return VCM_OK;
}

static int mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) return vcm_fail(VCM_EINPUT, "%s: path too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return vcm_fail(VCM_ERR, "%s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode)) return vcm_fail(VCM_ERR, "%s: not a directory", path);
    return VCM_OK;
}

static void free_out(ImageOut *o) {
    sb_free(&o->regions);
    sb_free(&o->corpus);
    sb_free(&o->mc);
    sb_free(&o->open);
}

typedef struct Writer {
    FILE *f[N_OUT];        /* af[i].f, for the appends */
    AtomicFile af[N_OUT];
} Writer;

static void writer_abort(Writer *w) {
    for (int i = 0; i < N_OUT; i++)
        if (w->f[i]) atomic_file_abort(&w->af[i]);
    memset(w, 0, sizeof *w);
}

/* Appends a chunk's output in image order; chooses annotated records with Knuth's
 * selection sampling (exactly n_ann of `total`, in one pass). */
static int append_chunk(const SynthOptions *o, Writer *w, ImageOut *outs, long c0, long cn, long *rec_seen,
                        long total, long *ann_left, SRng *sel, SynthStats *st, uint64_t *cats, uint32_t *bgs,
                        uint32_t *qts) {
    SBuf ann = {0};
    for (long i = 0; i < cn; i++) {
        ImageOut *out = &outs[i];
        if (out->err) { sb_free(&ann); return vcm_fail(VCM_ERR, "%s", out->msg); }
        fwrite(out->regions.p, 1, out->regions.n, w->f[OUT_REGIONS]);
        *cats |= out->cats;
        *bgs |= 1u << out->bg;
        if (out->split == SPLIT_TRAIN) {
            st->train_images++;
            size_t start = 0;
            for (int j = 0; j < out->nrec; j++) {
                const char *line = out->corpus.p + start;
                size_t len = out->rec_end[j] - start;
                fwrite(line, 1, len, w->f[OUT_CORPUS]);
                fputs("}\n", w->f[OUT_CORPUS]);
                st->records++;
                st->faults[out->rec_fault[j]]++;
                *qts |= 1u << out->rec_qtype[j];
                long remaining = total - *rec_seen;
                if (*ann_left > 0 && srng_unif(sel) * (double)remaining < (double)*ann_left) {
                    SRng vr = srng_for(o->seed, (uint64_t)*rec_seen, RNG_VOTES);
                    int votes[3];
                    synth_votes(out->rec_fault[j], &vr, votes);
                    ann.n = 0;
                    sb_put(&ann, line, len);
                    sb_printf(&ann, ", \"votes\": [\"%s\", \"%s\", \"%s\"]}\n", votes[0] ? "accept" : "reject",
                              votes[1] ? "accept" : "reject", votes[2] ? "accept" : "reject");
                    if (ann.oom) return vcm_fail(VCM_ERR, "synth: out of memory");
                    fwrite(ann.p, 1, ann.n, w->f[OUT_ANN]);
                    (*ann_left)--;
                    st->annotated++;
                }
                (*rec_seen)++;
                start = out->rec_end[j];
            }
        } else {
            int val = out->split == SPLIT_VAL;
            fwrite(out->mc.p ? out->mc.p : "", 1, out->mc.n, w->f[val ? OUT_MC_VAL : OUT_MC_TEST]);
            fwrite(out->open.p ? out->open.p : "", 1, out->open.n, w->f[val ? OUT_OPEN_VAL : OUT_OPEN_TEST]);
            if (val) {
                st->val_images++; st->mc_val += out->n_mc; st->mc_val_other += out->n_mc_other;
                st->mc_val_ground += out->n_mc_ground; st->open_val += out->n_open;
            } else {
                st->test_images++; st->mc_test += out->n_mc; st->mc_test_other += out->n_mc_other;
                st->mc_test_ground += out->n_mc_ground; st->open_test += out->n_open;
            }
        }
        st->images++;
        (void)c0;
    }
    sb_free(&ann);
    for (int i = 0; i < N_OUT; i++)
        if (ferror(w->f[i])) return vcm_fail(VCM_ERR, "%s: write failed", w->af[i].tmp);
    return VCM_OK;
}

static int popcount64(uint64_t x) { int n = 0; for (; x; x &= x - 1) n++; return n; }

int synth_generate(const SynthOptions *o, SynthStats *st) {
    double t0 = omp_get_wtime();
    memset(st, 0, sizeof *st);
    int rc = check_options(o);
    if (rc) return rc;
    char imdir[4096];
    snprintf(imdir, sizeof imdir, "%s/images", o->out_dir);
    if ((rc = mkdir_p(o->out_dir)) || (rc = mkdir_p(imdir))) return rc;
    Writer w;
    memset(&w, 0, sizeof w);
    for (int i = 0; i < N_OUT; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", o->out_dir, out_names[i]);
        if ((rc = atomic_file_open(&w.af[i], path))) {
            writer_abort(&w);
            return rc;
        }
        w.f[i] = w.af[i].f;
    }
    long n_train = 0;
    for (long i = 0; i < o->n_images; i++) n_train += split_of(i, o->val_frac, o->test_frac) == SPLIT_TRAIN;
    long total = n_train * o->per_image;
    long ann_left = o->n_annotated < 0 ? (total / 4 < 5000 ? total / 4 : 5000) : o->n_annotated;
    if (ann_left > total) ann_left = total;
    long rec_seen = 0;
    SRng sel = srng_for(o->seed, 0, RNG_VOTES * 1000);

    ImageOut *outs = calloc(CHUNK, sizeof *outs);
    uint8_t *pix = malloc((size_t)CHUNK * SYNTH_W * SYNTH_H * 3);
    if (!outs || !pix) {
        free(outs); free(pix);
        writer_abort(&w);
        return vcm_fail(VCM_ERR, "synth: out of memory");
    }
    /* stb's PNG writer settings are process globals: set for this run, restored after. */
    int old_level = stbi_write_png_compression_level, old_filter = stbi_write_force_png_filter;
    stbi_write_png_compression_level = o->png_level;
    stbi_write_force_png_filter = o->png_level <= 2 ? 1 : -1; /* "sub": cheap and good on flat art */
    int nt = o->threads > 0 ? o->threads : omp_get_max_threads();
    uint64_t cats = 0;
    uint32_t bgs = 0, qts = 0;
    for (long c0 = 0; c0 < o->n_images && !rc; c0 += CHUNK) {
        long cn = o->n_images - c0 < CHUNK ? o->n_images - c0 : CHUNK;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (long i = 0; i < cn; i++) build_image(o, c0 + i, pix + (size_t)i * SYNTH_W * SYNTH_H * 3, &outs[i]);
        rc = append_chunk(o, &w, outs, c0, cn, &rec_seen, total, &ann_left, &sel, st, &cats, &bgs, &qts);
        for (long i = 0; i < cn; i++) { free_out(&outs[i]); memset(&outs[i], 0, sizeof outs[i]); }
        if (o->verbose && !rc)
            fprintf(stderr, "synth: %ld/%ld images, %ld records, %.1f s\n", c0 + cn, o->n_images, st->records,
                    omp_get_wtime() - t0);
    }
    stbi_write_png_compression_level = old_level;
    stbi_write_force_png_filter = old_filter;
    free(outs);
    free(pix);
    if (rc) { writer_abort(&w); return rc; }
    /* Every file flushed before the first rename: a full disk leaves the old set whole. */
    for (int i = 0; i < N_OUT; i++)
        if (fflush(w.f[i]) || ferror(w.f[i])) {
            rc = vcm_fail(VCM_ERR, "%s: write failed: %s", w.af[i].tmp, strerror(errno));
            writer_abort(&w);
            return rc;
        }
    for (int i = 0; i < N_OUT; i++) {
        w.f[i] = NULL;
        if ((rc = atomic_file_commit(&w.af[i]))) {
            writer_abort(&w);
            return rc;
        }
    }
    st->categories_used = popcount64(cats);
    st->backgrounds_used = popcount64(bgs);
    st->qtypes_used = popcount64(qts);
    st->seconds = omp_get_wtime() - t0;
    return VCM_OK;
}

void synth_stats_json(const SynthStats *st, char *buf, size_t cap) {
    size_t l = (size_t)snprintf(buf, cap,
        "{\"images\": %ld, \"train_images\": %ld, \"val_images\": %ld, \"test_images\": %ld, \"records\": %ld, "
        "\"annotated\": %ld, \"mc_val\": %ld, \"mc_val_other_region\": %ld, \"mc_val_grounding\": %ld, "
        "\"mc_test\": %ld, \"mc_test_other_region\": %ld, \"mc_test_grounding\": %ld, \"open_val\": %ld, "
        "\"open_test\": %ld, \"categories_used\": %d, \"backgrounds_used\": %d, \"qtypes_used\": %d, "
        "\"faults\": {",
        st->images, st->train_images, st->val_images, st->test_images, st->records, st->annotated, st->mc_val,
        st->mc_val_other, st->mc_val_ground, st->mc_test, st->mc_test_other, st->mc_test_ground, st->open_val,
        st->open_test, st->categories_used, st->backgrounds_used,
        st->qtypes_used);
    for (int k = 0; k < N_FAULTS && l < cap; k++)
        l += (size_t)snprintf(buf + l, cap - l, "%s\"%s\": %ld", k ? ", " : "", synth_fault_names[k], st->faults[k]);
    if (l < cap) snprintf(buf + l, cap - l, "}, \"seconds\": %.3f}", st->seconds);
}
