/* The built-in prompt template: distill/prompt_v1.txt, embedded verbatim by the
 * assembler (.incbin) so that the text lives in exactly one readable file.
 * The path is relative to the directory make runs in (the repository root, as for
 * -I.). NOTE: the compiler's dependency files do not list the .txt, so after editing
 * it rebuild this object (the Makefile rule
 * `$(BUILD)/distill/prompt_builtin.o: distill/prompt_v1.txt` does that). */
#include "distill/distill.h"

extern const char distill_prompt_v1_text[];

__asm__(".pushsection .rodata\n"
        ".balign 16\n"
        ".globl distill_prompt_v1_text\n"
        ".hidden distill_prompt_v1_text\n"
        ".type distill_prompt_v1_text, @object\n"
        "distill_prompt_v1_text:\n"
        ".incbin \"distill/prompt_v1.txt\"\n"
        ".byte 0\n"
        ".size distill_prompt_v1_text, . - distill_prompt_v1_text\n"
        ".popsection\n");

const char *distill_prompt_builtin(void) { return distill_prompt_v1_text; }
