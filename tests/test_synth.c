/* The synthetic world (data/synth*.c): determinism by checksum (also 1 vs 2 threads),
 * the counts the issue asks for, the fault rate against the flag, the multiple-choice
 * invariants, ids and boxes against the region mapping, annotations, atomic output. */
#include "data/data.h"
#include "tensor/tensor.h"
#include "test.h"

#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define N_IMAGES 200
#define SEED 5

static char root[256];

/* CRC32 of every file under dir (names sorted by readdir order is not stable: we
 * combine per-file CRCs keyed by name through a sum of crc(name)^crc(content)). */
static uint64_t crc_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uLong c = crc32(0, Z_NULL, 0);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) c = crc32(c, buf, (uInt)n);
    fclose(f);
    return c;
}

static uint64_t crc_tree(const char *dir, int *n_files) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st)) continue;
        uint64_t name = crc32(0, (const Bytef *)e->d_name, (uInt)strlen(e->d_name));
        if (S_ISDIR(st.st_mode)) sum += name * 31 + crc_tree(p, n_files);
        else { sum += (name << 32) ^ crc_file(p); (*n_files)++; }
    }
    closedir(d);
    return sum;
}

static int has_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".tmp")) found = 1;
    }
    closedir(d);
    return found;
}

static SynthStats gen(const char *name, uint64_t seed, int threads, double fault, double noise, char *dir) {
    SynthOptions o;
    synth_options_default(&o);
    snprintf(dir, 512, "%s/%s", root, name);
    o.out_dir = dir;
    o.n_images = N_IMAGES;
    o.seed = seed;
    o.threads = threads;
    o.fault_rate = fault;
    o.caption_noise = noise;
    SynthStats st;
    int rc = synth_generate(&o, &st);
    CHECK_MSG(rc == 0, "synth_generate: %s", vcm_error());
    return st;
}

static json_t *load_lines(const char *dir, const char *file) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    FILE *f = fopen(p, "r");
    json_t *arr = json_array();
    if (!f) return arr;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ln = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        ln++;
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        CHECK_MSG(j != NULL, "%s:%d: %s", file, ln, err.text);
        if (j) json_array_append_new(arr, j);
    }
    free(line);
    fclose(f);
    return arr;
}

static long image_index(const char *name) {
    const char *p = strrchr(name, '/');
    return p ? atol(p + 1) : -1;
}

static char dir_a[512], dir_b[512];
static SynthStats st_a;

static void test_deterministic_across_threads(void) {
    st_a = gen("a", SEED, 1, 0.30, 0.10, dir_a);
    gen("b", SEED, 2, 0.30, 0.10, dir_b);
    int na = 0, nb = 0;
    uint64_t ca = crc_tree(dir_a, &na), cb = crc_tree(dir_b, &nb);
    CHECK(na == N_IMAGES + 7);   /* the images and 7 .jsonl files */
    CHECK(na == nb);
    CHECK_MSG(ca == cb, "1 thread %llx vs 2 threads %llx", (unsigned long long)ca, (unsigned long long)cb);
    char dir_c[512];
    gen("c", SEED + 1, 2, 0.30, 0.10, dir_c);
    int nc = 0;
    char pa[600], pc[600];
    snprintf(pa, sizeof pa, "%s/corpus.jsonl", dir_a);
    snprintf(pc, sizeof pc, "%s/corpus.jsonl", dir_c);
    CHECK(crc_file(pa) != crc_file(pc));
    (void)nc;
    CHECK(!has_tmp(dir_a));
    char im[600];
    snprintf(im, sizeof im, "%s/images", dir_a);
    CHECK(!has_tmp(im));
}

static void test_world_counts(void) {
    CHECK(synth_count("categories") >= 30);
    CHECK(synth_count("backgrounds") >= 5);
    CHECK(synth_count("qtypes") >= 8);
    CHECK(synth_count("faults") >= 4);
    CHECK(st_a.images == N_IMAGES);
    CHECK(st_a.train_images + st_a.val_images + st_a.test_images == N_IMAGES);
    CHECK(st_a.val_images == N_IMAGES / 10 && st_a.test_images == N_IMAGES / 10);
    CHECK_MSG(st_a.categories_used >= 30, "%d categories used", st_a.categories_used);
    CHECK(st_a.backgrounds_used >= 5);
    CHECK(st_a.qtypes_used >= 8);
    int kinds = 0;
    for (int k = 1; k <= 5; k++) kinds += st_a.faults[k] > 0;
    CHECK(kinds >= 4);
    /* question types with 2+ regions are used */
    json_t *corpus = load_lines(dir_a, "corpus.jsonl");
    CHECK((long)json_array_size(corpus) == st_a.records);
    int multi = 0;
    char seen_q[64][32];
    int nq = 0;
    size_t i;
    json_t *r;
    json_array_foreach(corpus, i, r) {
        json_t *reg = json_object_get(r, "region");
        if (json_array_size(reg) >= 2) multi++;
        const char *q = json_string_value(json_object_get(json_object_get(r, "synth"), "qtype"));
        int found = 0;
        for (int t = 0; t < nq; t++) found |= q && !strcmp(seen_q[t], q);
        if (q && !found && nq < 64) snprintf(seen_q[nq++], 32, "%s", q);
    }
    CHECK(nq >= 8);
    CHECK(multi > (int)json_array_size(corpus) / 10);
    json_decref(corpus);
}

static int is_vowel_word(const char *w) { return w && strchr("aeiouAEIOU", w[0]) && w[0]; }

/* ids in the text exist; words are strings; "a"/"an" agree with the next word */
static void check_words(json_t *words, json_t *regions_of_image, int *bad_ids, int *bad_articles) {
    size_t i;
    json_t *w;
    const char *prev = NULL;
    json_array_foreach(words, i, w) {
        if (json_is_array(w)) {
            size_t j;
            json_t *id;
            json_array_foreach(w, j, id) {
                char key[16];
                snprintf(key, sizeof key, "%lld", (long long)json_integer_value(id));
                if (!json_is_integer(id) || !json_object_get(regions_of_image, key)) (*bad_ids)++;
            }
            prev = NULL;
        } else {
            const char *s = json_string_value(w);
            if (!s) { (*bad_ids)++; continue; }
            if (prev && (!strcmp(prev, "a") || !strcmp(prev, "A")) && is_vowel_word(s)) (*bad_articles)++;
            if (prev && (!strcmp(prev, "an") || !strcmp(prev, "An")) && !is_vowel_word(s)) (*bad_articles)++;
            prev = s;
        }
    }
}

static void test_regions_and_records(void) {
    json_t *regions = load_lines(dir_a, "regions.jsonl");
    CHECK(json_array_size(regions) == N_IMAGES);
    json_t *by_image = json_object();
    size_t i;
    json_t *e;
    int bad_box = 0, dup_desc = 0, bad_file = 0, dup_any = 0;
    json_array_foreach(regions, i, e) {
        const char *name = json_string_value(json_object_get(e, "image"));
        json_t *locs = json_object_get(e, "region_locations"), *descs = json_object_get(e, "region_descriptions");
        json_object_set(by_image, name, locs);
        int W = (int)json_integer_value(json_object_get(e, "width")), H = (int)json_integer_value(json_object_get(e, "height"));
        CHECK(W == SYNTH_IMAGE_W && H == SYNTH_IMAGE_H);
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir_a, name);
        int iw = 0, ih = 0;
        if (image_info(p, &iw, &ih) || iw != W || ih != H) bad_file++;
        CHECK(json_object_size(locs) >= 2 && json_object_size(locs) <= 6);
        CHECK(json_object_size(descs) == json_object_size(locs));
        const char *key;
        json_t *loc;
        json_object_foreach(locs, key, loc) {
            json_t *b = json_array_get(json_object_get(loc, "boxes"), 0);
            double x0 = json_number_value(json_array_get(b, 0)), y0 = json_number_value(json_array_get(b, 1));
            double x1 = json_number_value(json_array_get(b, 2)), y1 = json_number_value(json_array_get(b, 3));
            if (!(x0 >= 0 && y0 >= 0 && x1 <= W && y1 <= H && x1 > x0 + 4 && y1 > y0 + 4)) bad_box++;
            CHECK(json_string_value(json_object_get(loc, "obj_guess")) != NULL);
            const char *d1 = json_string_value(json_object_get(descs, key));
            CHECK(d1 != NULL);
            const char *k2;
            json_t *d2;
            json_object_foreach(descs, k2, d2)
                if (strcmp(key, k2) && d1 && !strcmp(d1, json_string_value(d2))) dup_desc++;
        }
        /* repeated categories happen, and are described apart */
        json_t *cats = json_object_get(json_object_get(e, "synth"), "categories");
        const char *ka, *kb;
        json_t *ca, *cb;
        json_object_foreach(cats, ka, ca) json_object_foreach(cats, kb, cb)
            if (strcmp(ka, kb) && !strcmp(json_string_value(ca), json_string_value(cb))) dup_any++;
    }
    CHECK_MSG(bad_box == 0, "%d boxes outside the image or empty", bad_box);
    CHECK_MSG(dup_desc == 0, "%d region descriptions repeated within an image", dup_desc);
    CHECK_MSG(bad_file == 0, "%d images missing or of the wrong size", bad_file);
    CHECK_MSG(dup_any > 0, "no image has two regions of one category");

    json_t *corpus = load_lines(dir_a, "corpus.jsonl");
    int bad_ids = 0, bad_art = 0, not_train = 0, injected = 0, n = 0;
    json_array_foreach(corpus, i, e) {
        json_t *locs = json_object_get(by_image, json_string_value(json_object_get(e, "image")));
        if (!locs) { bad_ids++; continue; }
        check_words(json_object_get(e, "question"), locs, &bad_ids, &bad_art);
        check_words(json_object_get(e, "answer"), locs, &bad_ids, &bad_art);
        check_words(json_object_get(e, "rationale"), locs, &bad_ids, &bad_art);
        json_t *wrap = json_array();
        json_array_append(wrap, json_object_get(e, "region"));
        json_array_append(wrap, json_object_get(e, "region_all"));
        check_words(wrap, locs, &bad_ids, &bad_art);
        json_decref(wrap);
        CHECK(json_array_size(json_object_get(e, "region_all")) == json_object_size(locs));
        CHECK(json_array_size(json_object_get(e, "question")) > 2);
        /* nothing cut short: sentences end with their punctuation */
        json_t *qq = json_object_get(e, "question"), *aa = json_object_get(e, "answer"), *rr = json_object_get(e, "rationale");
        const char *ql = json_string_value(json_array_get(qq, json_array_size(qq) - 1));
        const char *al = json_string_value(json_array_get(aa, json_array_size(aa) - 1));
        const char *rl = json_string_value(json_array_get(rr, json_array_size(rr) - 1));
        if (!ql || strcmp(ql, "?") || !al || strcmp(al, ".") || !rl || strcmp(rl, ".")) bad_ids++;
        if (strcmp(json_string_value(json_object_get(e, "split")), "train")) not_train++;
        json_t *f = json_object_get(json_object_get(e, "synth"), "fault");
        CHECK(json_is_null(f) || json_is_string(f));
        if (json_is_string(f) && strcmp(json_string_value(f), "misdescribed_region")) injected++;
        n++;
    }
    CHECK_MSG(bad_ids == 0, "%d mentions of regions missing from regions.jsonl", bad_ids);
    CHECK_MSG(bad_art == 0, "%d a/an mistakes", bad_art);
    CHECK(not_train == 0);
    /* injected faults at the flag's rate: 960 records, sd 0.015, tolerance 0.05 */
    double rate = (double)injected / n;
    CHECK_MSG(fabs(rate - 0.30) < 0.05, "injected fault rate %.3f for --fault-rate 0.30", rate);
    json_decref(corpus);
    json_decref(regions);
    json_decref(by_image);
}

static void test_fault_rate_flag(void) {
    char d0[512], d5[512];
    SynthStats s0 = gen("f0", 9, 2, 0.0, 0.0, d0);
    CHECK(s0.faults[0] == s0.records);
    SynthStats s5 = gen("f5", 9, 2, 0.5, 0.0, d5);
    long bad = s5.records - s5.faults[0];
    CHECK(s5.faults[6] == 0); /* no caption noise: no misdescribed regions */
    CHECK_MSG(fabs((double)bad / s5.records - 0.5) < 0.05, "fault rate %.3f for 0.5", (double)bad / s5.records);
}

static void test_mc_invariants(void) {
    json_t *corpus = load_lines(dir_a, "corpus.jsonl");
    json_t *train_images = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(corpus, i, e) json_object_set_new(train_images, json_string_value(json_object_get(e, "image")), json_true());
    const char *sets[2] = {"mc_val.jsonl", "mc_test.jsonl"};
    json_t *held[2] = {json_object(), json_object()};
    for (int s = 0; s < 2; s++) {
        json_t *mc = load_lines(dir_a, sets[s]);
        CHECK(json_array_size(mc) > 10);
        int other = 0, bad_other = 0, bad_right = 0, overlap = 0, stray_id = 0, n_named = 0;
        json_array_foreach(mc, i, e) {
            const char *img = json_string_value(json_object_get(e, "image"));
            json_object_set_new(held[s], img, json_true());
            if (json_object_get(train_images, img)) overlap++;
            if (json_is_true(json_object_get(e, "grounding"))) continue;   /* test_grounding_items */
            CHECK(json_is_false(json_object_get(e, "grounding")));
            n_named++;
            json_t *choices = json_object_get(e, "choices");
            CHECK(json_array_size(choices) == 4);
            json_int_t label = json_integer_value(json_object_get(e, "label"));
            CHECK(label >= 0 && label < 4);
            CHECK(json_array_size(json_object_get(e, "question")) > 2);
            json_t *syn = json_object_get(e, "synth");
            const char *qt = json_string_value(json_object_get(syn, "qtype"));
            int region = (int)json_integer_value(json_object_get(syn, "region"));
            json_t *cr = json_object_get(syn, "choice_regions");
            int flagged = json_is_true(json_object_get(e, "distractor_other_region"));
            other += flagged;
            int n_other = 0;
            for (int c = 0; c < 4; c++) {
                int rg = (int)json_integer_value(json_array_get(cr, (size_t)c));
                json_t *choice = json_array_get(choices, (size_t)c);
                /* every mention in a choice is the asked region */
                size_t t;
                json_t *w;
                json_array_foreach(choice, t, w)
                    if (json_is_array(w) && json_integer_value(json_array_get(w, 0)) != region) stray_id++;
                if (c == label) CHECK(rg == region);
                if (rg < 0) continue;
                char buf[2048];
                if (synth_answer_json(SEED, image_index(img), qt, rg, region, buf, sizeof buf)) { bad_right++; continue; }
                json_t *want = json_loads(buf, 0, NULL);
                if (!json_equal(want, choice)) { if (c == label) bad_right++; else bad_other++; }
                json_decref(want);
                if (c != label) n_other++;
            }
            if (flagged) CHECK(n_other >= 1);
            else CHECK(n_other == 0);
            /* all four choices differ */
            for (int a = 0; a < 4; a++)
                for (int b = a + 1; b < 4; b++) CHECK(!json_equal(json_array_get(choices, (size_t)a), json_array_get(choices, (size_t)b)));
        }
        CHECK_MSG(2 * other >= n_named, "%d of %d other-region items", other, n_named);
        CHECK_MSG(overlap == 0, "%d items on training images", overlap);
        CHECK_MSG(bad_right == 0, "%d labelled choices are not the region's answer", bad_right);
        CHECK_MSG(bad_other == 0, "%d other-region distractors are not that region's answer", bad_other);
        CHECK(stray_id == 0);
        json_decref(mc);
    }
    const char *k;
    json_t *v;
    int both = 0;
    json_object_foreach(held[0], k, v) both += json_object_get(held[1], k) != NULL;
    CHECK(both == 0);
    json_decref(held[0]);
    json_decref(held[1]);
    json_decref(train_images);
    json_decref(corpus);
}

/* Grounding items: the question names no region, each choice names one region (all
 * different), the labelled choice is the asked region's true answer and every other
 * choice says of its region what is not true of it. One per held-out image here. */
static void test_grounding_items(void) {
    const char *sets[2] = {"mc_val.jsonl", "mc_test.jsonl"};
    for (int s = 0; s < 2; s++) {
        json_t *mc = load_lines(dir_a, sets[s]);
        size_t i;
        json_t *e;
        int n = 0, bad = 0;
        json_array_foreach(mc, i, e) {
            if (!json_is_true(json_object_get(e, "grounding"))) continue;
            n++;
            CHECK(!json_is_true(json_object_get(e, "distractor_other_region")));
            json_t *q = json_object_get(e, "question"), *choices = json_object_get(e, "choices"), *w;
            size_t t, nc = json_array_size(choices);
            json_array_foreach(q, t, w) if (!json_is_string(w)) bad++;
            CHECK(nc >= 2 && nc <= 4);
            json_t *syn = json_object_get(e, "synth"), *cr = json_object_get(syn, "choice_regions");
            const char *qt = json_string_value(json_object_get(syn, "qtype"));
            int region = (int)json_integer_value(json_object_get(syn, "region"));
            int label = (int)json_integer_value(json_object_get(e, "label"));
            long idx = image_index(json_string_value(json_object_get(e, "image")));
            CHECK(json_array_size(cr) == nc && (int)json_integer_value(json_array_get(cr, (size_t)label)) == region);
            for (size_t c = 0; c < nc; c++) {
                json_t *choice = json_array_get(choices, c);
                int rg = (int)json_integer_value(json_array_get(cr, c)), mentions = 0;
                json_array_foreach(choice, t, w)
                    if (json_is_array(w)) { mentions++; if (json_integer_value(json_array_get(w, 0)) != rg) bad++; }
                if (mentions != 1) bad++;
                for (size_t d = c + 1; d < nc; d++) if ((int)json_integer_value(json_array_get(cr, d)) == rg) bad++;
                char buf[2048];
                if (synth_answer_json(SEED, idx, qt, rg, rg, buf, sizeof buf)) { bad++; continue; }
                json_t *own = json_loads(buf, 0, NULL);
                if (json_equal(own, choice) != ((int)c == label)) bad++;   /* true of its region only if right */
                json_decref(own);
            }
        }
        CHECK_MSG(n == (s ? st_a.mc_test_ground : st_a.mc_val_ground) && n >= (s ? st_a.test_images : st_a.val_images) / 2,
                  "%d grounding items", n);
        CHECK_MSG(bad == 0, "%d broken grounding items", bad);
        json_decref(mc);
    }
}

/* The open-ended set: fault-free records on held-out images, every asked id one of the
 * image's regions, the answer of the one-region types the region's true answer, and
 * every question type present. */
static void test_open_items(void) {
    json_t *open = load_lines(dir_a, "open_test.jsonl");
    json_t *corpus = load_lines(dir_a, "corpus.jsonl");
    json_t *train = json_object();
    size_t i, t;
    json_t *e, *w;
    json_array_foreach(corpus, i, e) json_object_set_new(train, json_string_value(json_object_get(e, "image")), json_true());
    CHECK((long)json_array_size(open) == st_a.open_test && st_a.open_test > 0);
    unsigned types = 0;
    int bad = 0, checked = 0, relational = 0;
    json_array_foreach(open, i, e) {
        const char *img = json_string_value(json_object_get(e, "image"));
        if (json_object_get(train, img)) bad++;
        json_t *syn = json_object_get(e, "synth"), *asked = json_object_get(syn, "asked");
        if (!json_is_null(json_object_get(syn, "fault"))) bad++;
        const char *qt = json_string_value(json_object_get(syn, "qtype"));
        int q = -1;
        for (int k = 0; k < synth_count("qtypes"); k++) if (!strcmp(synth_name("qtypes", k), qt)) q = k;
        if (q < 0) { bad++; continue; }
        types |= 1u << q;
        relational += json_is_true(json_object_get(syn, "relational"));
        size_t n_all = json_array_size(json_object_get(e, "region_all"));
        json_array_foreach(asked, t, w) if (json_integer_value(w) < 0 || (size_t)json_integer_value(w) >= n_all) bad++;
        /* every mention of the question is an asked region */
        json_array_foreach(json_object_get(e, "question"), t, w)
            if (json_is_array(w)) {
                int hit = 0;
                size_t a;
                json_t *x;
                json_array_foreach(asked, a, x) hit |= json_integer_value(x) == json_integer_value(json_array_get(w, 0));
                if (!hit) bad++;
            }
        if (q < 5) {   /* use .. color: the MC answer of the same region */
            int k = (int)json_integer_value(json_array_get(asked, 0));
            char buf[2048];
            if (synth_answer_json(SEED, image_index(img), qt, k, k, buf, sizeof buf)) { bad++; continue; }
            json_t *want = json_loads(buf, 0, NULL);
            if (!json_equal(want, json_object_get(e, "answer"))) bad++;
            json_decref(want);
            checked++;
        }
    }
    CHECK_MSG(bad == 0, "%d broken open-ended items", bad);
    CHECK(checked > 0 && relational > 0);
    CHECK_MSG(types == (1u << synth_count("qtypes")) - 1, "question types present: %x", types);
    json_decref(train);
    json_decref(corpus);
    json_decref(open);
}

static void test_annotations(void) {
    json_t *ann = load_lines(dir_a, "annotations.jsonl");
    json_t *corpus = load_lines(dir_a, "corpus.jsonl");
    CHECK((long)json_array_size(ann) == st_a.annotated);
    CHECK(st_a.annotated == st_a.records / 4);
    json_t *idx = json_object();
    size_t i;
    json_t *e;
    json_array_foreach(corpus, i, e) json_object_set(idx, json_string_value(json_object_get(e, "index")), e);
    int agree = 0, n = 0, faulty = 0, bad = 0;
    json_array_foreach(ann, i, e) {
        json_t *votes = json_object_get(e, "votes");
        CHECK(json_array_size(votes) == 3);
        int acc = 0;
        for (size_t v = 0; v < 3; v++) {
            const char *s = json_string_value(json_array_get(votes, v));
            if (!s || (strcmp(s, "accept") && strcmp(s, "reject"))) bad++;
            acc += s && !strcmp(s, "accept");
        }
        json_t *rec = json_object_get(idx, json_string_value(json_object_get(e, "index")));
        if (!rec) { bad++; continue; }
        json_t *copy = json_copy(e);
        json_object_del(copy, "votes");
        if (!json_equal(copy, rec)) bad++;
        json_decref(copy);
        int good = json_is_null(json_object_get(json_object_get(e, "synth"), "fault"));
        faulty += !good;
        agree += (acc >= 2) == good;
        n++;
    }
    CHECK(bad == 0);
    CHECK(faulty > n / 5);
    CHECK_MSG(agree > 0.85 * n && agree < n, "majority agrees with the truth on %d of %d", agree, n);
    json_decref(idx);
    json_decref(ann);
    json_decref(corpus);
}

static void test_bad_options_write_nothing(void) {
    SynthOptions o;
    synth_options_default(&o);
    char d[512];
    snprintf(d, sizeof d, "%s/bad", root);
    o.out_dir = d;
    o.n_images = 4;
    o.fault_rate = 1.5;
    SynthStats st;
    CHECK(synth_generate(&o, &st) == VCM_EINPUT);
    CHECK_STR_CONTAINS(vcm_error(), "fault-rate");
    struct stat sb;
    CHECK(stat(d, &sb) != 0);
    o.fault_rate = 0.3;
    o.n_images = 0;
    CHECK(synth_generate(&o, &st) == VCM_EINPUT);
    o.n_images = 4;
    o.out_dir = "/proc/vcm-synth-cannot-write-here";
    CHECK(synth_generate(&o, &st) == VCM_ERR);
}

/* A failure in the middle of a run (image 5 cannot be written) leaves the files of the
 * previous run as they were and no *.tmp behind. */
static void test_failure_mid_run_keeps_old_files(void) {
    char d[512], p[700];
    snprintf(d, sizeof d, "%s/mid", root);
    mkdir(d, 0777);
    snprintf(p, sizeof p, "%s/images", d);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/images/000005.png.tmp", d);
    mkdir(p, 0777);                 /* fopen of this path fails */
    snprintf(p, sizeof p, "%s/corpus.jsonl", d);
    FILE *f = fopen(p, "w");
    fputs("old\n", f);
    fclose(f);
    SynthOptions o;
    synth_options_default(&o);
    o.out_dir = d;
    o.n_images = 12;
    SynthStats st;
    CHECK(synth_generate(&o, &st) == VCM_ERR);
    CHECK_STR_CONTAINS(vcm_error(), "000005.png.tmp");
    f = fopen(p, "r");
    char buf[16] = {0};
    CHECK(f && fgets(buf, sizeof buf, f) && !strcmp(buf, "old\n"));
    if (f) fclose(f);
    CHECK(!has_tmp(d));
    snprintf(p, sizeof p, "%s/regions.jsonl", d);
    CHECK(access(p, F_OK) != 0);
}

static void test_annotated_flag(void) {
    char d[512];
    snprintf(d, sizeof d, "%s/ann", root);
    SynthOptions o;
    synth_options_default(&o);
    o.out_dir = d;
    o.n_images = 20;
    o.n_annotated = 37;
    o.per_image = 3;
    SynthStats st;
    CHECK(synth_generate(&o, &st) == 0);
    CHECK(st.records == 16 * 3);
    CHECK(st.annotated == 37);
    json_t *ann = load_lines(d, "annotations.jsonl");
    CHECK(json_array_size(ann) == 37);
    json_decref(ann);
    o.n_annotated = 1000; /* more than there are records: all of them */
    CHECK(synth_generate(&o, &st) == 0);
    CHECK(st.annotated == st.records);
}

static void test_render_and_answer_api(void) {
    Image im;
    CHECK(synth_render_image(SEED, 3, &im) == 0);
    CHECK(im.w == SYNTH_IMAGE_W && im.h == SYNTH_IMAGE_H);
    /* the rendered image is the written one */
    char p[1024];
    snprintf(p, sizeof p, "%s/images/000003.png", dir_a);
    Image disk;
    if (image_load(p, &disk) == 0) {
        CHECK(disk.w == im.w && disk.h == im.h && !memcmp(disk.rgb, im.rgb, (size_t)im.w * im.h * 3));
        image_free(&disk);
    } else CHECK(0);
    free(im.rgb);
    char buf[256];
    CHECK(synth_answer_json(SEED, 3, "why_here", 0, 0, buf, sizeof buf) == VCM_EINPUT);
    CHECK(synth_answer_json(SEED, 3, "use", 17, 0, buf, sizeof buf) == VCM_EINPUT);
    CHECK(synth_answer_json(SEED, 3, "use", 0, 0, buf, sizeof buf) == 0);
    CHECK_STR_CONTAINS(buf, "could");
}

static void test_contact_sheet(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/sheet.png", root);
    CHECK(synth_contact_sheet(p, 3, 4) == 0);
    int w = 0, h = 0;
    CHECK(image_info(p, &w, &h) == 0 && w > 2 * SYNTH_IMAGE_W && h > SYNTH_IMAGE_H);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/vcm_test_synth_XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    RUN(test_deterministic_across_threads);
    RUN(test_world_counts);
    RUN(test_regions_and_records);
    RUN(test_fault_rate_flag);
    RUN(test_mc_invariants);
    RUN(test_grounding_items);
    RUN(test_open_items);
    RUN(test_annotations);
    RUN(test_bad_options_write_nothing);
    RUN(test_failure_mid_run_keeps_old_files);
    RUN(test_annotated_flag);
    RUN(test_render_and_answer_api);
    RUN(test_contact_sheet);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
    return test_summary();
}
