/* The critic over corpora, streaming: score (each record written back byte for byte
 * with "prediction" set), filter (keep prediction >= threshold) and eval (a scored
 * corpus against the synthetic world's hidden synth.fault). Outputs go through an
 * atomic file (gzip when the name ends .gz) or to stdout. */
#include "train/train.h"

#include <jansson.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---------------------------------------------------------------- output stream */
typedef struct OutStream {
    AtomicFile af;
    FILE *f;
    int atomic, gz;
    z_stream zs;
    unsigned char *zbuf;
    const char *path;
} OutStream;

#define ZBUF_BYTES (1 << 16)

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int out_open(OutStream *o, const char *path) {
    memset(o, 0, sizeof *o);
    if (!path || !strcmp(path, "-")) {
        o->f = stdout;
        o->path = "stdout";
        return VCM_OK;
    }
    o->path = path;
    int rc = atomic_file_open(&o->af, path);
    if (rc) return rc;
    o->atomic = 1;
    o->f = o->af.f;
    if (ends_with(path, ".gz")) {
        o->zbuf = malloc(ZBUF_BYTES);
        if (!o->zbuf || deflateInit2(&o->zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(o->zbuf);
            atomic_file_abort(&o->af);
            return vcm_fail(VCM_ERR, "%s: cannot start gzip", path);
        }
        o->gz = 1;
    }
    return VCM_OK;
}

static int deflate_some(OutStream *o, int flush) {
    do {
        o->zs.next_out = o->zbuf;
        o->zs.avail_out = ZBUF_BYTES;
        int z = deflate(&o->zs, flush);
        if (z == Z_STREAM_ERROR) return vcm_fail(VCM_ERR, "%s: gzip failed", o->path);
        size_t have = ZBUF_BYTES - o->zs.avail_out;
        if (have && fwrite(o->zbuf, 1, have, o->f) != have)
            return vcm_fail(VCM_ERR, "%s: write failed: %s", o->path, strerror(errno));
        if (flush == Z_FINISH && z == Z_STREAM_END) break;
    } while (o->zs.avail_out == 0 || flush == Z_FINISH);
    return VCM_OK;
}

static int out_write(OutStream *o, const char *s, size_t n) {
    if (!o->gz)
        return fwrite(s, 1, n, o->f) == n ? VCM_OK : vcm_fail(VCM_ERR, "%s: write failed: %s", o->path, strerror(errno));
    o->zs.next_in = (unsigned char *)s;
    o->zs.avail_in = (unsigned)n;
    return deflate_some(o, Z_NO_FLUSH);
}

/* ok: commit (rename into place); else abort and leave no output behind. */
static int out_close(OutStream *o, int ok) {
    int rc = VCM_OK;
    if (o->gz) {
        if (ok) rc = deflate_some(o, Z_FINISH);
        deflateEnd(&o->zs);
        free(o->zbuf);
    }
    if (!o->atomic) {
        if (fflush(o->f) && ok && !rc) rc = vcm_fail(VCM_ERR, "stdout: write failed");
        return rc;
    }
    if (ok && !rc) return atomic_file_commit(&o->af);
    atomic_file_abort(&o->af);
    return rc;
}

/* ---------------------------------------------------------------- line editing */

/* The span of the top-level "prediction" value in a JSON object line: [*vs, *ve),
 * with *ks the start of its key (for messages). 1 found, 0 absent, -1 not an object. */
static int find_prediction(const char *s, size_t n, size_t *vs, size_t *ve) {
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    if (i >= n || s[i] != '{') return -1;
    int depth = 0, in_str = 0, expect_key = 0;
    size_t key0 = 0;
    for (; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') {
                in_str = 0;
                if (expect_key && depth == 1 && i - key0 == 10 && !memcmp(s + key0, "prediction", 10)) {
                    size_t j = i + 1;
                    while (j < n && s[j] != ':') j++;
                    j++;
                    while (j < n && (s[j] == ' ' || s[j] == '\t')) j++;
                    /* the value: up to the next , or } at depth 1 (a number, or anything) */
                    size_t k = j;
                    int d = 0, st = 0;
                    for (; k < n; k++) {
                        char c = s[k];
                        if (st) { if (c == '\\') k++; else if (c == '"') st = 0; continue; }
                        if (c == '"') st = 1;
                        else if (c == '{' || c == '[') d++;
                        else if (c == '}' || c == ']') { if (d == 0) break; d--; }
                        else if (c == ',' && d == 0) break;
                    }
                    size_t e = k;
                    while (e > j && (s[e - 1] == ' ' || s[e - 1] == '\t')) e--;
                    *vs = j;
                    *ve = e;
                    return 1;
                }
                expect_key = 0;
            }
            continue;
        }
        if (ch == '"') { in_str = 1; key0 = i + 1; }
        else if (ch == '{') { depth++; expect_key = depth == 1; }
        else if (ch == '[') depth++;
        else if (ch == '}' || ch == ']') depth--;
        else if (ch == ',' && depth == 1) expect_key = 1;
        else if (ch == ':' && depth == 1) expect_key = 0;
    }
    return 0;
}

/* Write the line with "prediction": p (replaced, or added before the closing brace). */
static int write_scored(OutStream *o, const JsonlLine *ln, double p) {
    char num[64];
    snprintf(num, sizeof num, "%.6f", p);
    size_t vs, ve;
    int f = find_prediction(ln->text, ln->len, &vs, &ve);
    int rc;
    if (f < 0) return vcm_fail(VCM_EINPUT, "%s:%ld: not a JSON object", ln->path, ln->line_no);
    if (f == 1) {
        rc = out_write(o, ln->text, vs);
        if (!rc) rc = out_write(o, num, strlen(num));
        if (!rc) rc = out_write(o, ln->text + ve, ln->len - ve);
    } else {
        size_t e = ln->len;
        while (e > 0 && ln->text[e - 1] != '}') e--;
        if (e == 0) return vcm_fail(VCM_EINPUT, "%s:%ld: not a JSON object", ln->path, ln->line_no);
        size_t b = e - 1;   /* the closing brace; an empty object gets no comma */
        size_t q = b;
        while (q > 0 && (ln->text[q - 1] == ' ' || ln->text[q - 1] == '\t')) q--;
        int empty = q > 0 && ln->text[q - 1] == '{';
        rc = out_write(o, ln->text, b);
        if (!rc) rc = out_write(o, empty ? "\"prediction\": " : ", \"prediction\": ", empty ? 14 : 16);
        if (!rc) rc = out_write(o, num, strlen(num));
        if (!rc) rc = out_write(o, ln->text + b, ln->len - b);
    }
    if (!rc) rc = out_write(o, "\n", 1);
    return rc;
}

/* ---------------------------------------------------------------- score */

int critic_score_corpus(const CriticScoreOptions *o, CriticScoreResult *res) {
    memset(res, 0, sizeof *res);
    if (!o->model || !o->corpus || !o->regions)
        return vcm_fail(VCM_EINPUT, "critic score: model, corpus and regions are required");
    int batch = o->batch > 0 ? o->batch : 32;
    Critic c = {0};
    Tokenizer tok = {0};
    Dataset d = {0};
    BatchBuf bb = {0};
    Graph g = {0};
    OutStream out;
    int have_out = 0, rc = critic_load(o->model, &c, NULL);
    int have_critic = !rc;
    long *idx = malloc(sizeof(long) * (size_t)batch);
    double *p = malloc(sizeof(double) * (size_t)batch);
    if (!rc && (!idx || !p)) rc = vcm_fail(VCM_ERR, "out of memory");
    if (!rc) rc = student_tokenizer(&c.s, o->model, &tok);
    /* The line index (16 bytes a record) lets batches be built and lines re-read;
     * records themselves are read a batch at a time. */
    if (!rc) rc = dataset_open(&d, o->corpus, o->regions, o->images_root, &tok, &c.s.cfg, o->cache_bytes, 0);
    if (!rc) rc = batchbuf_alloc(&bb, &c.s.cfg, batch);
    if (!rc) rc = graph_init(&g, (size_t)64 << 20);
    if (!rc) { rc = out_open(&out, o->out); have_out = !rc; }
    if (rc) goto done;
    g.grad_enabled = 0;
    long N = dataset_size(&d);
    double sum = 0, t0 = now_seconds();
    Progress pr;
    progress_start(&pr, 0, N);
    for (long s = 0; s < N && !rc; s += batch) {
        int n = (int)(N - s < batch ? N - s : batch);
        for (int i = 0; i < n; i++) idx[i] = s + i;
        graph_reset(&g);
        if ((rc = dataset_batch(&d, idx, n, 0, 0, EXAMPLE_EVAL, &bb))) break;
        Tensor *lg = critic_logits(&g, &c, &bb.b);
        if (!lg) { rc = vcm_fail(VCM_ERR, "%s", vcm_error()); break; }
        critic_probs(lg, p);
        for (int i = 0; i < n && !rc; i++) {
            JsonlLine ln;
            rc = jsonl_index_read(&d.index, s + i, &ln);
            if (!rc) rc = write_scored(&out, &ln, p[i]);
            sum += p[i];
        }
        res->records += n;
        if (!o->quiet && (pr.tty || (s / batch) % 50 == 49)) progress_update(&pr, res->records, "scored");
    }
    if (!o->quiet) progress_end(&pr);
    res->mean_score = res->records ? sum / (double)res->records : NAN;
    res->seconds = now_seconds() - t0;
done:
    if (have_out) {
        int rc2 = out_close(&out, !rc);
        if (!rc) rc = rc2;
    }
    free(idx);
    free(p);
    graph_free(&g);
    batchbuf_free(&bb);
    if (d.corpus_path) dataset_close(&d);
    if (have_critic) critic_free(&c);
    bpe_free(&tok);
    return rc;
}

/* ---------------------------------------------------------------- filter, eval */

/* The record's prediction; VCM_EINPUT naming file and line when absent or not a number. */
static int line_prediction(const JsonlLine *ln, json_t *o, double *p) {
    if (!json_is_object(o)) return vcm_fail(VCM_EINPUT, "%s:%ld: not a JSON object", ln->path, ln->line_no);
    json_t *v = json_object_get(o, "prediction");
    if (!v)
        return vcm_fail(VCM_EINPUT, "%s:%ld: no \"prediction\" (score the corpus first: vcm critic score)", ln->path,
                        ln->line_no);
    if (!json_is_number(v))
        return vcm_fail(VCM_EINPUT, "%s:%ld: \"prediction\" is not a number", ln->path, ln->line_no);
    *p = json_number_value(v);
    if (!isfinite(*p)) return vcm_fail(VCM_EINPUT, "%s:%ld: \"prediction\" is not finite", ln->path, ln->line_no);
    return VCM_OK;
}

int critic_filter(const char *corpus, const char *outp, double threshold, long *kept, long *total) {
    *kept = *total = 0;
    JsonlReader r;
    int rc = jsonl_open(&r, corpus);
    if (rc) return rc;
    OutStream out;
    if ((rc = out_open(&out, outp))) { jsonl_close(&r); return rc; }
    for (;;) {
        JsonlLine ln;
        json_t *o = NULL;
        if ((rc = jsonl_next(&r, &ln)) || !ln.text) break;
        double p = 0;
        rc = jsonl_parse(&ln, &o);
        if (!rc) rc = line_prediction(&ln, o, &p);
        json_decref(o);
        if (rc) break;
        ++*total;
        if (p >= threshold) {
            ++*kept;
            rc = out_write(&out, ln.text, ln.len);
            if (!rc) rc = out_write(&out, "\n", 1);
            if (rc) break;
        }
    }
    int rc2 = out_close(&out, !rc);
    jsonl_close(&r);
    return rc ? rc : rc2;
}

int critic_eval(const char *scored, double threshold, CriticEval *ev) {
    memset(ev, 0, sizeof *ev);
    ev->threshold = threshold;
    ev->auc = ev->precision = ev->recall = ev->accuracy = ev->kept_share = NAN;
    JsonlReader r;
    int rc = jsonl_open(&r, scored);
    if (rc) return rc;
    long cap = 0;
    double *p = NULL;
    signed char *y = NULL, *kind = NULL;
    char names[CRITIC_MAX_KINDS + 1][32];
    int n_names = 1;
    snprintf(names[0], sizeof names[0], "good");
    long kept = 0, kept_good = 0, right = 0;
    for (;;) {
        JsonlLine ln;
        json_t *o = NULL;
        if ((rc = jsonl_next(&r, &ln)) || !ln.text) break;
        double s = 0;
        rc = jsonl_parse(&ln, &o);
        if (!rc) rc = line_prediction(&ln, o, &s);
        if (rc) { json_decref(o); break; }
        json_t *syn = json_object_get(o, "synth"), *f = syn ? json_object_get(syn, "fault") : NULL;
        int truth = !f ? -1 : json_is_null(f) ? 1 : json_is_string(f) ? 0 : -2;
        int k = -1;
        if (truth == 0) {
            const char *nm = json_string_value(f);
            for (k = 0; k < n_names && strcmp(names[k], nm); k++) {}
            if (k == n_names) {
                if (n_names <= CRITIC_MAX_KINDS) snprintf(names[n_names++], sizeof names[0], "%s", nm);
                else k = -1;
            }
        } else if (truth == 1) k = 0;
        json_decref(o);
        if (truth == -2) { rc = vcm_fail(VCM_EINPUT, "%s:%ld: \"synth\".\"fault\" is neither null nor a string", ln.path, ln.line_no); break; }
        ev->records++;
        if (truth < 0) continue;
        if (ev->with_truth == cap) {
            cap = cap ? 2 * cap : 4096;
            double *np = realloc(p, sizeof(double) * (size_t)cap);
            if (np) p = np;
            signed char *ny = np ? realloc(y, (size_t)cap) : NULL;
            if (ny) y = ny;
            signed char *nk = ny ? realloc(kind, (size_t)cap) : NULL;
            if (nk) kind = nk;
            if (!np || !ny || !nk) { rc = vcm_fail(VCM_ERR, "out of memory"); break; }
        }
        p[ev->with_truth] = s;
        y[ev->with_truth] = (signed char)truth;
        kind[ev->with_truth++] = (signed char)k;
        ev->good += truth;
        kept += s >= threshold;
        kept_good += s >= threshold && truth;
        right += (s >= threshold) == truth;
    }
    jsonl_close(&r);
    if (!rc && ev->with_truth) {
        ev->auc = critic_roc_auc(p, y, ev->with_truth);
        ev->precision = kept ? (double)kept_good / (double)kept : NAN;
        ev->recall = ev->good ? (double)kept_good / (double)ev->good : NAN;
        ev->accuracy = (double)right / (double)ev->with_truth;
        ev->kept_share = (double)kept / (double)ev->with_truth;
        /* per kind: recall = share of that kind rejected (good: kept); AUC good vs kind */
        double *ps = malloc(sizeof(double) * (size_t)ev->with_truth);
        signed char *ys = malloc((size_t)ev->with_truth);
        ev->n_kinds = n_names;
        for (int k = 0; k < n_names && ps && ys; k++) {
            CriticKindStat *ks = &ev->kinds[k];
            snprintf(ks->name, sizeof ks->name, "%s", names[k]);
            long m = 0, hit = 0;
            double sum = 0;
            for (long i = 0; i < ev->with_truth; i++) {
                if (kind[i] == k) {
                    ks->n++;
                    sum += p[i];
                    hit += k == 0 ? p[i] >= threshold : p[i] < threshold;
                }
                if (kind[i] == 0 || kind[i] == k) { ps[m] = p[i]; ys[m++] = kind[i] == 0; }
            }
            ks->mean_score = ks->n ? sum / (double)ks->n : NAN;
            ks->recall = ks->n ? (double)hit / (double)ks->n : NAN;
            ks->auc = k == 0 ? NAN : critic_roc_auc(ps, ys, m);
        }
        free(ps);
        free(ys);
    }
    free(p);
    free(y);
    free(kind);
    return rc;
}
