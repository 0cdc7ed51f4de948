/* tool_subcommand: the dispatch of `vcm corpus` and `vcm regions` (tools.h). */
#include "tools/tools.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tool_subcommand(const char *cmd, const char *usage, const SubCommand *subs, int n_subs, int argc, char **argv) {
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    int k = 0;
    while (k < n_subs && strcmp(sub, subs[k].name)) k++;
    if (k == n_subs) {
        fprintf(stderr, "vcm %s: unknown subcommand '%s'\n%s", cmd, sub, usage);
        return 2;
    }
    /* a copy, so argv[0] can name the command in flag errors: "vcm corpus validate: ..." */
    char **sub_argv = malloc((size_t)argc * sizeof *sub_argv);
    if (!sub_argv) return tool_error(cmd, 1, "out of memory");
    char name[64];
    snprintf(name, sizeof name, "%s %s", cmd, sub);
    sub_argv[0] = name;
    for (int i = 2; i < argc; i++) sub_argv[i - 1] = argv[i];
    sub_argv[argc - 1] = NULL;
    int rc = subs[k].fn(argc - 1, sub_argv);
    free(sub_argv);
    return rc;
}
