/* One JSON line on stdout from a jansson object (tools.h). */
#include "tools/tools.h"

#include <stdio.h>
#include <stdlib.h>

int tool_print_json(const char *cmd, json_t *line, size_t flags) {
    char *text = line ? json_dumps(line, JSON_COMPACT | flags) : NULL;
    json_decref(line);
    if (!text) return tool_error(cmd, 1, "out of memory");
    printf("%s\n", text);
    free(text);
    fflush(stdout);
    return 0;
}
