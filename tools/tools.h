/* tools/ — the `vcm` command: one file per subcommand (cmd_<name>.c), each thin:
 * parse flags, call the library, print. This header holds the flag parser they share. */
#ifndef VCM_TOOLS_H
#define VCM_TOOLS_H

#include <jansson.h>
#include <stddef.h>

/* One flag of a command. kind:
 *   's' const char *       'i' int        'f' float      'd' double
 *   'b' int set to 1 (takes no value)
 *   'L' repeated string: dst is a FlagList, each use appends */
typedef struct FlagList { const char *v[64]; int n; } FlagList;
typedef struct Flag {
    const char *name;      /* without the leading "--" */
    char kind;
    void *dst;
    const char *help;      /* one line; "(required)" in it is enforced, and so is a number
                              flag's range written last as "[lo..hi]" (a side may be empty) */
} Flag;

/* Parse argv[1..] (argv[0] is the command name). Positional arguments are collected
 * into pos (up to max_pos). Returns 0 ok, 2 bad usage (message printed on stderr),
 * -1 when --help was asked (usage printed on stdout; the command should return 0). */
int flags_parse(const char *usage, Flag *flags, int argc, char **argv,
                const char **pos, int max_pos, int *n_pos);
void flags_usage(const char *usage, const Flag *flags, void *stream);

/* Print "vcm <cmd>: <message>" on stderr and return code (for `return tool_error(...)`). */
int tool_error(const char *cmd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* line as one compact JSON line on stdout (json_dumps flags added to JSON_COMPACT), then
 * json_decref(line); line may be NULL (a failed json_pack). 1 with a message when it
 * cannot be made (out of memory), else 0. */
int tool_print_json(const char *cmd, json_t *line, size_t flags);

/* `vcm CMD SUB ...` for a command made of subcommands: no SUB prints usage on stderr
 * (2), --help / -h / help on stdout (0), an unknown one "vcm CMD: unknown subcommand"
 * (2); else subs[i].fn runs with argv[0] = "CMD SUB", so its flag errors name both. */
typedef struct SubCommand { const char *name; int (*fn)(int argc, char **argv); } SubCommand;
int tool_subcommand(const char *cmd, const char *usage, const SubCommand *subs, int n_subs, int argc, char **argv);

/* Subcommands, each defined in tools/cmd_<name>.c. The Makefile reads this table for
 * the vcm-<command> links of make install. */
#define VCM_COMMANDS(X)                                                              \
    X(synth, "build the synthetic world: images, regions, corpus, annotations, mc sets") \
    X(tokenizer, "train | encode | decode the byte-level BPE tokenizer")             \
    X(corpus, "validate | stats a corpus file")                                      \
    X(regions, "import-vg: a region mapping from Visual Genome's files")             \
    X(verbalize, "describe images and their regions with a vision-language endpoint") \
    X(distill, "ask an OpenAI-compatible LLM endpoint for a localized corpus")       \
    X(critic, "train | score | filter with the critic")                              \
    X(train, "train the student model")                                              \
    X(generate, "answers and rationales for regions of an image")                    \
    X(score, "log-probabilities of a text for regions of an image")                  \
    X(eval, "multiple-choice accuracy (and perplexity)")                             \
    X(export, "write a checkpoint's weights as safetensors")                         \
    X(import, "a checkpoint from safetensors (vcm export's names), shapes checked")

#define X(name, help) int cmd_##name(int argc, char **argv);
VCM_COMMANDS(X)
#undef X

#endif
