/* vcm tokenizer train | encode | decode | info — the byte-level BPE of lm/. */
#include "data/data.h"
#include "lm/lm.h"
#include "tensor/tensor.h"
#include "tools/infer_util.h"
#include "tools/tools.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CMD "tokenizer"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* A growing byte buffer. */
typedef struct Buf { char *p; size_t n, cap; } Buf;

static int buf_reserve(Buf *b, size_t need) {
    if (need <= b->cap) return VCM_OK;
    size_t c = b->cap ? b->cap : 1 << 16;
    while (c < need) c *= 2;
    char *q = realloc(b->p, c);
    if (!q) return vcm_fail(VCM_ERR, "out of memory for %zu bytes of text", c);
    b->p = q;
    b->cap = c;
    return VCM_OK;
}

static int buf_add(Buf *b, const char *s, size_t n) {
    if (buf_reserve(b, b->n + n + 1)) return VCM_ERR;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return VCM_OK;
}

/* ---------------------------------------------------------------- corpus text */

/* Mentions are renumbered by first appearance, as the model would see them. */
typedef struct IdOrder { int ids[VCM_MAX_REGIONS]; int n, overflow; } IdOrder;

static void note_ids(const int *ids, int n, void *ctx) {
    IdOrder *o = ctx;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < o->n && o->ids[k] != ids[i]) k++;
        if (k < o->n) continue;
        if (o->n == VCM_MAX_REGIONS) o->overflow = 1;
        else o->ids[o->n++] = ids[i];
    }
}

/* One record as the model reads it: "question: … answer: … rationale: …\n". */
static int render_record(const Record *r, Buf *text) {
    IdOrder o = {{0}, 0, 0};
    record_each_mention(r, note_ids, &o);
    if (o.overflow) return vcm_fail(VCM_EINPUT, "more than %d distinct region ids", VCM_MAX_REGIONS);
    const char *label[3] = {"question: ", " answer: ", " rationale: "};
    const Words *w[3] = {&r->question, &r->answer, &r->rationale};
    for (int f = 0; f < 3; f++) {
        if (f == 2 && w[f]->n == 0) continue;
        char *s = words_render(w[f], o.ids, o.n);
        if (!s) return VCM_EINPUT;
        int rc = buf_add(text, label[f], strlen(label[f]));
        if (!rc) rc = buf_add(text, s, strlen(s));
        free(s);
        if (rc) return rc;
    }
    return buf_add(text, "\n", 1);
}

static int read_corpus(const char *path, int skip_bad, Buf *text, long *n_docs, long *n_bad) {
    JsonlReader rd;
    int rc = jsonl_open(&rd, path);
    if (rc) return rc;
    for (;;) {
        JsonlLine ln;
        if ((rc = jsonl_next(&rd, &ln)) || !ln.text) break;
        Record r;
        int reason = 0;
        rc = record_parse(&ln, REC_ANY, &r, &reason);
        if (!rc && r.kind == REC_MC) {
            record_free(&r);   /* multiple-choice items are not teacher text */
            continue;
        }
        if (!rc) {
            size_t before = text->n;
            rc = render_record(&r, text);
            record_free(&r);
            if (rc == VCM_EINPUT) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", vcm_error());
                text->n = before;
                rc = vcm_fail(VCM_EINPUT, "%s:%ld: %s", path, ln.line_no, msg);
            }
        }
        if (rc == VCM_EINPUT && skip_bad) {
            (*n_bad)++;
            rc = VCM_OK;
            continue;
        }
        if (rc) break;
        (*n_docs)++;
    }
    jsonl_close(&rd);
    return rc;
}

/* A text file: the documents as they are, one a line. */
static int read_text(const char *path, Buf *text, long *n_docs) {
    FILE *f = fopen(path, "rb");
    if (!f) return vcm_fail(VCM_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    char chunk[1 << 16];
    size_t got;
    int rc = VCM_OK;
    while (!rc && (got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        for (size_t i = 0; i < got; i++) *n_docs += chunk[i] == '\n';
        rc = buf_add(text, chunk, got);
    }
    if (!rc && ferror(f)) rc = vcm_fail(VCM_EINPUT, "%s: read error", path);
    fclose(f);
    if (!rc && text->n && text->p[text->n - 1] != '\n') (*n_docs)++;
    return rc;
}

static int tok_train(int argc, char **argv) {
    const char *corpus = NULL, *out = NULL;
    int vocab = 2048, skip_bad = 0;
    Flag flags[] = {
        {"corpus", 's', &corpus, "corpus .jsonl / .jsonl.gz, or a text file, one document a line (required)"},
        {"vocab", 'i', &vocab, "ids in total: 19 specials + 256 bytes + merges (default 2048) [1..]"},
        {"out", 's', &out, "the .tok file to write (required)"},
        {"skip-bad", 'b', &skip_bad, "skip and count bad corpus records instead of failing"},
        {NULL, 0, NULL, NULL}};
    const char *usage =
        "usage: vcm tokenizer train --corpus FILE --vocab N --out TOK\n"
        "Learns byte-level BPE merges on the text the model reads. A .jsonl[.gz] corpus is\n"
        "rendered record by record as \"question: … answer: … rationale: …\" (lower-cased,\n"
        "mentions as [k]); any other file is taken as plain text. Prints a JSON summary.";
    int rc = flags_parse(usage, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (vocab < BPE_N_BASE || vocab > (1 << 24))
        return tool_error(CMD " train", 2, "--vocab must be in %d..%d, got %d", BPE_N_BASE, 1 << 24, vocab);
    double t0 = now_s();
    Buf text = {0};
    long n_docs = 0, n_bad = 0;
    int jsonl = ends_with(corpus, ".jsonl") || ends_with(corpus, ".jsonl.gz");
    rc = jsonl ? read_corpus(corpus, skip_bad, &text, &n_docs, &n_bad) : read_text(corpus, &text, &n_docs);
    if (rc) {
        free(text.p);
        return tool_error(CMD " train", rc == VCM_EINPUT ? 2 : 1, "%s", vcm_error());
    }
    double t1 = now_s();
    fprintf(stderr, "vcm tokenizer train: %ld documents, %zu bytes of text (%.2f s)%s\n", n_docs, text.n,
            t1 - t0, n_bad ? "" : "");
    if (n_bad) fprintf(stderr, "vcm tokenizer train: skipped %ld bad records\n", n_bad);
    Tokenizer t;
    rc = bpe_train(text.p ? text.p : "", text.n, vocab, &t);
    free(text.p);
    if (rc) return tool_error(CMD " train", rc == VCM_EINPUT ? 2 : 1, "%s", vcm_error());
    double t2 = now_s();
    if (t.vocab < vocab)
        fprintf(stderr, "vcm tokenizer train: the text supports only %d ids (no pair left twice)\n", t.vocab);
    rc = bpe_save(&t, out);
    if (rc) {
        bpe_free(&t);
        return tool_error(CMD " train", 1, "%s", vcm_error());
    }
    printf("{\"out\": ");
    vcm_json_put_string(stdout, out, strlen(out)); /* a path may hold " or \ */
    printf(", \"vocab\": %d, \"merges\": %d, \"documents\": %ld, \"skipped\": %ld, "
           "\"bytes\": %zu, \"read_seconds\": %.3f, \"train_seconds\": %.3f}\n",
           t.vocab, t.n_merges, n_docs, n_bad, text.n, t1 - t0, t2 - t1);
    bpe_free(&t);
    return 0;
}

/* ---------------------------------------------------------------- encode / decode */

static int encode_line(const Tokenizer *t, const char *s, size_t n, int bos_eos, Buf *out) {
    int32_t *ids = malloc((n + 2) * sizeof *ids);
    if (!ids) return vcm_fail(VCM_ERR, "out of memory");
    long m = bpe_encode(t, s, n, ids + 1, n);
    int rc = m < 0 ? VCM_ERR : VCM_OK;
    out->n = 0;
    if (!rc) rc = buf_add(out, "[", 1);
    long first = bos_eos ? 0 : 1, last = bos_eos ? m + 1 : m;
    ids[0] = BPE_BOS;
    ids[m + 1] = BPE_EOS;
    for (long i = first; !rc && i <= last; i++) {
        char num[16];
        int k = snprintf(num, sizeof num, i > first ? ", %d" : "%d", ids[i]);
        rc = buf_add(out, num, (size_t)k);
    }
    if (!rc) rc = buf_add(out, "]\n", 2);
    free(ids);
    return rc;
}

static int tok_encode(int argc, char **argv) {
    const char *tok = NULL, *text = NULL;
    int bos_eos = 0;
    Flag flags[] = {
        {"tok", 's', &tok, "the .tok file (required)"},
        {"text", 's', &text, "encode this text (else every line of stdin, without its newline)"},
        {"bos-eos", 'b', &bos_eos, "wrap each line in <bos> ... <eos>"},
        {NULL, 0, NULL, NULL}};
    const char *usage =
        "usage: vcm tokenizer encode --tok TOK [--text S] [--bos-eos]\n"
        "Prints one JSON array of ids a line. \"[k]\" (k = 0..15) is the single id 3+k; a\n"
        "literal \"<bos>\" in the text is plain bytes (specials come only from --bos-eos).";
    int rc = flags_parse(usage, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    Tokenizer t;
    if (bpe_load(tok, &t)) return tool_error(CMD " encode", 2, "%s", vcm_error());
    Buf out = {0};
    if (text) {
        rc = encode_line(&t, text, strlen(text), bos_eos, &out);
        if (!rc) fwrite(out.p, 1, out.n, stdout);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (!rc && (n = getline(&line, &cap, stdin)) >= 0) {
            if (n > 0 && line[n - 1] == '\n') n--;
            rc = encode_line(&t, line, (size_t)n, bos_eos, &out);
            if (!rc) fwrite(out.p, 1, out.n, stdout);
        }
        free(line);
    }
    free(out.p);
    bpe_free(&t);
    if (rc) return tool_error(CMD " encode", 1, "%s", vcm_error());
    return fflush(stdout) ? tool_error(CMD " encode", 1, "write error on stdout") : 0;
}

/* One JSON array of ids, decoded into out. Errors name where/LINE:COL. */
static int decode_line(const Tokenizer *t, const char *where, long line_no, const char *s, size_t n,
                       int skip_special, Buf *out) {
    json_error_t err;
    json_t *j = json_loadb(s, n, 0, &err);
    if (!j) return vcm_fail(VCM_EINPUT, "%s:%ld:%d: %s", where, line_no, err.column, err.text);
    int rc = VCM_OK;
    size_t m = json_is_array(j) ? json_array_size(j) : 0;
    int32_t *ids = malloc((m + 1) * sizeof *ids);
    if (!json_is_array(j)) rc = vcm_fail(VCM_EINPUT, "%s:%ld: expected a JSON array of ids", where, line_no);
    else if (!ids) rc = vcm_fail(VCM_ERR, "out of memory");
    for (size_t i = 0; !rc && i < m; i++) {
        json_t *v = json_array_get(j, i);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : -1;
        if (!json_is_integer(v) || x < 0 || x >= t->vocab)
            rc = vcm_fail(VCM_EINPUT, "%s:%ld: element %zu is not an id in 0..%d", where, line_no, i,
                          t->vocab - 1);
        else ids[i] = (int32_t)x;
    }
    json_decref(j);
    if (!rc) {
        long need = bpe_decode(t, ids, m, NULL, 0, skip_special);
        out->n = 0;
        if (need < 0) rc = VCM_EINPUT;
        else if (!(rc = buf_reserve(out, (size_t)need + 2))) {
            bpe_decode(t, ids, m, out->p, (size_t)need, skip_special);
            out->p[need] = '\n';
            out->n = (size_t)need + 1;
        }
    }
    free(ids);
    return rc;
}

static int tok_decode(int argc, char **argv) {
    const char *tok = NULL, *ids = NULL;
    int skip_special = 0;
    Flag flags[] = {
        {"tok", 's', &tok, "the .tok file (required)"},
        {"ids", 's', &ids, "decode this JSON array (else one JSON array a line of stdin)"},
        {"skip-special", 'b', &skip_special, "drop <pad> <bos> <eos> (region ids still print as [k])"},
        {NULL, 0, NULL, NULL}};
    const char *usage =
        "usage: vcm tokenizer decode --tok TOK [--ids '[1, 2, 3]'] [--skip-special]\n"
        "Prints the text of each JSON id array, one a line (the text itself may hold newlines).";
    int rc = flags_parse(usage, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    Tokenizer t;
    if (bpe_load(tok, &t)) return tool_error(CMD " decode", 2, "%s", vcm_error());
    Buf out = {0};
    if (ids) {
        rc = decode_line(&t, "--ids", 1, ids, strlen(ids), skip_special, &out);
        if (!rc) fwrite(out.p, 1, out.n, stdout);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        long line_no = 0;
        while (!rc && (n = getline(&line, &cap, stdin)) >= 0) {
            line_no++;
            if (n > 0 && line[n - 1] == '\n') n--;
            rc = decode_line(&t, "stdin", line_no, line, (size_t)n, skip_special, &out);
            if (!rc) fwrite(out.p, 1, out.n, stdout);
        }
        free(line);
    }
    free(out.p);
    bpe_free(&t);
    if (rc) return tool_error(CMD " decode", rc == VCM_EINPUT ? 2 : 1, "%s", vcm_error());
    return fflush(stdout) ? tool_error(CMD " decode", 1, "write error on stdout") : 0;
}

static int tok_info(int argc, char **argv) {
    const char *tok = NULL;
    int tokens = 0;
    Flag flags[] = {
        {"tok", 's', &tok, "the .tok file (required)"},
        {"tokens", 'b', &tokens, "also print every id with its bytes, one JSON object a line"},
        {NULL, 0, NULL, NULL}};
    const char *usage = "usage: vcm tokenizer info --tok TOK [--tokens]\nVocabulary size and merges as JSON.";
    int rc = flags_parse(usage, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    Tokenizer t;
    if (bpe_load(tok, &t)) return tool_error(CMD " info", 2, "%s", vcm_error());
    printf("{\"vocab\": %d, \"merges\": %d, \"specials\": %d, \"bytes\": 256}\n", t.vocab, t.n_merges, BPE_BYTE0);
    for (int id = 0; tokens && id < t.vocab; id++) {
        size_t l;
        const char *s = bpe_token_text(&t, id, &l);
        json_t *o = json_pack("{s:i, s:s%}", "id", id, "text", s, l);
        char *d = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        /* bytes that are not UTF-8 cannot be a JSON string: print their hex instead */
        if (d) printf("%s\n", d);
        else {
            printf("{\"id\": %d, \"hex\": \"", id);
            for (size_t i = 0; i < l; i++) printf("%02x", (unsigned char)s[i]);
            printf("\"}\n");
        }
        free(d);
        json_decref(o);
    }
    bpe_free(&t);
    return 0;
}

int cmd_tokenizer(int argc, char **argv) {
    const char *usage =
        "usage: vcm tokenizer <train|encode|decode|info> [flags]   (--help on each)\n"
        "  train    learn BPE merges from a corpus: --corpus FILE --vocab N --out TOK\n"
        "  encode   text -> JSON id arrays, one a line\n"
        "  decode   JSON id arrays -> text\n"
        "  info     vocabulary size (and the tokens)\n"
        "See docs/TOKENIZER.md.";
    if (argc < 2) {
        fprintf(stderr, "%s\n", usage);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        printf("%s\n", usage);
        return 0;
    }
    static const struct { const char *name, *full; int (*fn)(int, char **); } subs[] = {
        {"train", CMD " train", tok_train}, {"encode", CMD " encode", tok_encode},
        {"decode", CMD " decode", tok_decode}, {"info", CMD " info", tok_info}};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (!strcmp(sub, subs[i].name)) {
            argv[1] = (char *)subs[i].full;   /* messages say "vcm tokenizer train: ..." */
            return subs[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "vcm tokenizer: unknown subcommand '%s'\n%s\n", sub, usage);
    return 2;
}
