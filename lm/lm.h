/* lm/ — language side: byte-level BPE tokenizer, the causal decoder, its KV cache,
 * sampling and sequence scoring. The public header of the folder, in sections. lm/
 * uses nn/ layers; it knows nothing of images (model/ builds the decoder's input). */
#ifndef VCM_LM_H
#define VCM_LM_H

#include "nn/nn.h"

#include <stddef.h>
#include <stdint.h>

/* ================================================================ tokenizer
 * (lm/bpe*.c) Format and pre-tokenisation: docs/TOKENIZER.md.
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
 * (lm/sample.c) */
typedef struct SampleParams {
    float temperature;     /* <= 0: greedy */
    int top_k;             /* <= 0: no limit */
    float top_p;           /* <= 0 or >= 1: no nucleus cut */
} SampleParams;

/* The next token. Ties in the logits are broken towards the smaller id. */
int lm_sample(const float *logits, int V, const SampleParams *p, uint64_t *rng);
/* log softmax(logits)[id], in double. */
double lm_log_softmax_at(const float *logits, int V, int id);

/* ================================================================ decoder
 * (lm/decoder.c) Token and position embeddings, pre-LN causal blocks, final LayerNorm,
 * output tied to the token embedding. Parameters "dec.tok", "dec.pos",
 * "dec.blocks.N.*", "dec.norm". */
typedef struct Decoder {
    int vocab, max_seq, d, layers;
    Embedding tok;        /* [vocab, d], tied with the output layer (and the region ids) */
    Embedding pos;        /* [max_seq, d] */
    Block *blocks;
    LayerNorm norm;
} Decoder;
int decoder_declare(Decoder *dec, ParamStore *ps, int vocab, int max_seq, int d, int layers, int heads);
void decoder_free(Decoder *dec);
/* x: the input sequence [B, L, d] (embeddings plus positions), key_valid [B·L] or NULL;
 * the last `text` rows are the text: → the final LayerNorm of those rows [B, text, d]. */
Tensor *decoder_hidden(Graph *g, const Decoder *dec, Tensor *x, const uint8_t *key_valid, int text);
/* hidden [.., d] → logits [.., vocab] (the tied output layer). */
Tensor *decoder_logits(Graph *g, const Decoder *dec, Tensor *hidden);
/* Teacher-forced scoring: lp[r] = log softmax(logits row r)[targets[r]] in double, 0
 * where the target is -1 (targets must be < V). */
void lm_target_logprobs(const float *logits, long rows, int V, const int32_t *targets, double *lp);

/* ================================================================ KV cache
 * (lm/kv_cache.c; docs/INFERENCE.md) Generation with a KV cache: kv_prefill runs the
 * decoder once over an input sequence (the same layers as the full forward) and keeps
 * every layer's keys and values; kv_step then feeds one token at a time (text position
 * t has position id text_pos0 + t) with matrix-vector products and attention over the
 * cache, on the spinning thread team (tensor/team.c). Everything a step needs is
 * allocated by kv_init, so decoding does no malloc. */
typedef struct KvCache {
    const Decoder *dec;
    int cap;              /* positions the cache holds */
    int text_pos0, max_text;
    int len;              /* positions held: prefix + text_len */
    int prefix;           /* positions before the text (patch and region tokens) */
    int text_len;         /* text tokens fed so far (the first is <bos>) */
    int prompt_len;       /* text tokens of the last prefill (kv_rewind goes back there) */
    float *k, *v;         /* [layers][cap][d] */
    uint8_t *valid;       /* [cap]: 0 = a padding position, never attended */
    float *x, *h, *qkv, *att, *hid;   /* one position's activations */
    float *logits;        /* [vocab]: predicts the token after the last one fed */
    float *prompt_logits; /* [vocab]: logits right after the prefill */
    float *work;          /* [vocab]: scratch of kv_generate */
    const float *extra;   /* [n_extra][d] or NULL: token extra_id0 + k also carries row k */
    int extra_id0, n_extra;
    Graph g;              /* the prefill's arena (no tape): build the input sequence in it */
} KvCache;

int kv_init(KvCache *kv, const Decoder *dec, int cap, int text_pos0, int max_text);
void kv_free(KvCache *kv);
/* x [1, L, d] built in kv->g, valid [L] or NULL, the last `text` rows the prompt's text
 * tokens. Fills the cache; kv->logits predicts the next token. */
int kv_prefill(KvCache *kv, Tensor *x, const uint8_t *valid, int text);
/* Feed the token at text position kv->text_len; kv->logits then predicts the next.
 * VCM_EINPUT past max_text text tokens or for an id outside the vocabulary. */
int kv_step(KvCache *kv, int32_t token);
/* Back to the state right after the last prefill (to draw another sample). */
void kv_rewind(KvCache *kv);

typedef struct GenParams {
    SampleParams sample;  /* temperature <= 0: greedy */
    int max_tokens;       /* new tokens at most; it also stops at <eos> and at max_text */
    int vocab_limit;      /* ids >= this are never drawn (a tokenizer smaller than the
                             model's vocabulary); <= 0: the model's vocabulary */
    int n_regions;        /* mentions [k], k >= n_regions, are never drawn; < 0: any */
} GenParams;
/* Sample after the prefill (or after earlier steps): up to p->max_tokens ids into out
 * (cap entries), <eos> included when drawn. <pad> and <bos> are never drawn.
 * *logprob: Σ log p(id) under the model's own distribution (temperature 1, nothing
 * masked), so it measures the text, not the sampler. rng: the caller's seeded state. */
int kv_generate(KvCache *kv, const GenParams *p, uint64_t *rng, int32_t *out, int cap, int *n_out,
                double *logprob);
/* Σ log p(ids[i] | everything before) for the n tokens of a continuation, from the
 * current state (after kv_prefill or kv_rewind); each token but the last is fed. */
int kv_continuation_logprob(KvCache *kv, const int32_t *ids, int n, double *sum);

#endif
