/* libFuzzer: the tokenizer. bpe_from_text on the input (the .tok text a checkpoint
 * embeds); and decode(encode(x)) == x for the input's bytes, both on a tokenizer
 * trained at start-up and on any tokenizer the input itself loads as. The header
 * promises the round trip for any bytes, so a mismatch abort()s: that is a finding. */
#include "lm/lm.h"
#include "base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Tokenizer g_tok;

/* Mentions, digits, punctuation, UTF-8 and a literal "<bos>", so the merges join those. */
static const char TRAIN_TEXT[] =
    "question: what is [0] doing near [1] ? answer: [0] is holding [2] .\n"
    "question: why is [3] next to [12] ? answer: because [3] , [12] are a pair .\n"
    "rationale: the person [0] wears a red hat ; the dog [1] sits on the grass .\n"
    "caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac <bos> <eos> [15] [16] [07] 1234 12.5\n"
    "question: what is [0] doing near [1] ? answer: [0] is holding [2] .\n";

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (bpe_train(TRAIN_TEXT, sizeof TRAIN_TEXT - 1, 400, &g_tok)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", vcm_error());
        abort();
    }
    return 0;
}

static void round_trip(const Tokenizer *t, const uint8_t *data, size_t size, const char *which) {
    int32_t *ids = malloc((size ? size : 1) * sizeof *ids);
    char *out = malloc(size ? size : 1);
    if (!ids || !out) abort();
    long n = bpe_encode(t, (const char *)data, size, ids, size);
    if (n < 0 || (size_t)n > size) {
        fprintf(stderr, "fuzz_tokenizer (%s): encode of %zu bytes gave %ld: %s\n", which, size, n, vcm_error());
        abort();
    }
    long m = bpe_decode(t, ids, (size_t)n, out, size, 0);
    if (m != (long)size || (size && memcmp(out, data, size))) {
        fprintf(stderr, "fuzz_tokenizer (%s): decode(encode(x)) != x (%zu bytes in, %ld out)\n", which, size, m);
        abort();
    }
    for (long i = 0; i < n; i++) {   /* every id's text is there and adds up */
        size_t len;
        if (!bpe_token_text(t, ids[i], &len)) abort();
    }
    free(ids);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    round_trip(&g_tok, data, size, "trained");
    Tokenizer t;
    if (bpe_from_text((const char *)data, size, "fuzz", &t) == VCM_OK) {
        /* a loaded tokenizer must round-trip too, and write itself back as it loads */
        static const char probe[] = "what is [0] doing ? caf\xc3\xa9 [15] [16]";
        round_trip(&t, (const uint8_t *)probe, sizeof probe - 1, "loaded");
        char *text = bpe_to_text(&t);
        if (text) {
            Tokenizer u;
            if (bpe_from_text(text, strlen(text), "fuzz (written back)", &u)) {
                fprintf(stderr, "fuzz_tokenizer: a loaded tokenizer's own text does not load: %s\n", vcm_error());
                abort();
            }
            if (u.vocab != t.vocab || u.n_merges != t.n_merges ||
                memcmp(u.merges, t.merges, (size_t)t.n_merges * 2 * sizeof *t.merges))
                abort();
            bpe_free(&u);
            free(text);
        }
        bpe_free(&t);
    }
    return 0;
}
