/* lm/ — language side: byte-level BPE tokenizer, the decoder, KV cache, sampling and
 * sequence scoring. The public header of the folder, in sections. */
#ifndef VCM_LM_H
#define VCM_LM_H

#include <stddef.h>
#include <stdint.h>

/* ================================================================ tokenizer
 * (lm/bpe*.c) */

#endif
