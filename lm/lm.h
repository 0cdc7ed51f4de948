/* lm/ — language side: byte-level BPE tokenizer, the decoder, KV cache, sampling and
 * sequence scoring. The public header of the folder, in sections. */
#ifndef VCM_LM_H
#define VCM_LM_H

#include <stddef.h>
#include <stdint.h>

/* ================================================================ tokenizer
 * (lm/bpe*.c) — owner: tokenizer. Format and pre-tokenisation: docs/TOKENIZER.md.
 *
 * Byte-level BPE. Ids: the specials first, then the 256 bytes, then one id per merge.
 * A region mention "[k]" (k = 0..15 written without leading zeros) is always the single
 * token BPE_REGION0 + k. Every other byte sequence, including a literal "<bos>" in the
 * text, is encoded as plain bytes: <pad>/<bos>/<eos> are only ever added by the caller.
 * So decode(encode(x)) == x for any bytes x. A loaded tokenizer is read-only: encode
 * and decode may run concurrently from several threads. */
enum {
    BPE_PAD = 0, BPE_BOS = 1, BPE_EOS = 2,
    BPE_REGION0 = 3, BPE_N_REGIONS = 16,     /* "[0]".."[15]" = 3..18 */
    BPE_BYTE0 = 19,                          /* byte b = 19 + b */
    BPE_N_BASE = 19 + 256                    /* first merged id */
};

typedef struct Tokenizer {
    int vocab;              /* number of ids = BPE_N_BASE + n_merges */
    int n_merges;
    int32_t *merges;        /* [n_merges][2]: merge i joins (a, b) into id BPE_N_BASE + i */
    /* internal (built from the merges) */
    uint32_t *tok_off;      /* [vocab + 1] offsets of each id's bytes in tok_bytes */
    uint8_t *tok_bytes;
    void *rank;             /* (a, b) -> merge index hash */
} Tokenizer;

/* Train on text (any bytes; documents separated by newlines) up to `vocab` ids.
 * Stops earlier when no pair occurs twice (then t->vocab < vocab). Deterministic: the
 * most frequent pair wins, ties go to the smallest (a, b). */
int bpe_train(const char *text, size_t len, int vocab, Tokenizer *t);
/* Versioned text file (magic "vcm-bpe"), written to a temp file and renamed. */
int bpe_save(const Tokenizer *t, const char *path);
/* A missing, corrupt or truncated file fails with VCM_EINPUT "PATH:LINE: problem". */
int bpe_load(const char *path, Tokenizer *t);
/* The .tok text in memory (malloc'd; what a checkpoint embeds) and back; `what` names
 * the source in messages. */
char *bpe_to_text(const Tokenizer *t);
int bpe_from_text(const char *text, size_t len, const char *what, Tokenizer *t);
void bpe_free(Tokenizer *t);

/* Encode len bytes into ids (cap entries). Never more ids than bytes, so cap = len is
 * always enough. Returns the number of ids, or -1 (VCM_ERR set) when cap is too small. */
long bpe_encode(const Tokenizer *t, const char *s, size_t len, int32_t *ids, size_t cap);
/* Decode ids into out (cap bytes, not NUL-terminated). Specials are written as their
 * names ("<bos>", "[3]") unless skip_special, which drops <pad>/<bos>/<eos>. Returns the
 * number of bytes the full text needs (may exceed cap: then out holds a prefix), or -1
 * (VCM_EINPUT set) for an id outside the vocabulary. */
long bpe_decode(const Tokenizer *t, const int32_t *ids, size_t n, char *out, size_t cap,
                int skip_special);
/* The bytes of one id (for a special: its name). NULL for an id out of range. */
const char *bpe_token_text(const Tokenizer *t, int32_t id, size_t *len);

/* Pre-tokenisation, exposed for tests and tools: the length of the piece that starts
 * at s[0] (1..len). *mention is set to k when the piece is the region mention "[k]",
 * else -1. BPE merges never cross pieces. */
size_t bpe_piece(const char *s, size_t len, int *mention);

/* ================================================================ sampling
 * (lm/sample.c) — owner: lead */
typedef struct SampleParams {
    float temperature;     /* <= 0: greedy */
    int top_k;             /* <= 0: no limit */
    float top_p;           /* <= 0 or >= 1: no nucleus cut */
} SampleParams;

/* The next token. Ties in the logits are broken towards the smaller id. */
int lm_sample(const float *logits, int V, const SampleParams *p, uint64_t *rng);
/* log softmax(logits)[id], in double. */
double lm_log_softmax_at(const float *logits, int V, int id);

#endif
