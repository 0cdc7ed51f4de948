/* vcm import — safetensors back into a vcm checkpoint: the way home for a model changed
 * in PyTorch (tests/ref/model.py reads and writes our names). The model is built from a
 * config, every tensor is matched against its parameters both ways before a value is
 * read, and the checkpoint is written atomically only when everything fits. The config
 * (and the tokenizer, and a critic's kind) comes from what `vcm export` put in
 * __metadata__["vcm_config"], or from --like CKPT, or --config NAME (docs/CHECKPOINT.md). */
#include "model/model.h"
#include "tools/tools.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CMD "import"

static const char *USAGE =
    "usage: vcm import --in M.safetensors --out M.vcm [--like CKPT | --config NAME] [--tokenizer T.tok]\n"
    "\n"
    "Builds the model of a config and fills it from a float32 safetensors file written by\n"
    "vcm export or by PyTorch under the same names. The config, the tokenizer and the kind\n"
    "(student or critic) come from the file's __metadata__ \"vcm_config\" (what vcm export\n"
    "writes); --like takes them from an existing checkpoint instead, --config from a named\n"
    "config (a student, no tokenizer unless --tokenizer). Every parameter the file lacks,\n"
    "every tensor of the file the model lacks and every shape or dtype that differs is\n"
    "reported on its own line; then exit 2 and nothing is written. Only F32 is read (save\n"
    "BF16/F16 weights with .float()). Prints one JSON line: {\"out\", \"tensors\",\n"
    "\"params\", \"config\", \"kind\", \"config_from\", \"tokenizer\"}.";

/* Where the model comes from: its config, kind and tokenizer text (malloc'd or NULL). */
typedef struct Source {
    ModelConfig cfg;
    char kind[32];
    char *tok;
    const char *from, *tok_from;
} Source;

/* The config JSON vcm export wrote (a checkpoint header: the config, "kind" for a
 * critic, "tokenizer"). */
static int source_from_metadata(const char *in, Source *s) {
    char *text = NULL;
    int rc = safetensors_metadata(in, "vcm_config", &text);
    if (rc) return tool_error(CMD, rc == VCM_EINPUT ? 2 : 1, "%s", vcm_error());
    if (!text)
        return tool_error(CMD, 2, "%s: no \"vcm_config\" in __metadata__ (not written by vcm export): "
                          "pass --like CKPT or --config NAME", in);
    json_error_t err;
    json_t *o = json_loads(text, 0, &err), *k = json_object_get(o, "kind"), *t = json_object_get(o, "tokenizer");
    if (!json_is_object(o)) rc = tool_error(CMD, 2, "%s: __metadata__ vcm_config is not a JSON object (column %d: %s)",
                                            in, err.column, err.text);
    else if ((k && !json_is_string(k)) || (t && !json_is_string(t)))
        rc = tool_error(CMD, 2, "%s: __metadata__ vcm_config: \"kind\" and \"tokenizer\" must be strings", in);
    else if (model_config_from_json(text, &s->cfg))
        rc = tool_error(CMD, 2, "%s: __metadata__ vcm_config: %s", in, vcm_error());
    if (!rc) {
        snprintf(s->kind, sizeof s->kind, "%s", k ? json_string_value(k) : "student");
        if (t && !(s->tok = strdup(json_string_value(t)))) rc = tool_error(CMD, 1, "out of memory");
        s->from = "metadata";
        s->tok_from = s->tok ? "metadata" : NULL;
    }
    json_decref(o);
    free(text);
    return rc;
}

static int source_from_like(const char *like, Source *s) {
    if (model_checkpoint_kind(like, s->kind, sizeof s->kind) ||
        model_checkpoint_config(like, s->kind, &s->cfg, &s->tok))
        return tool_error(CMD, 2, "--like %s", vcm_error());
    s->from = "like";
    s->tok_from = s->tok ? "like" : NULL;
    return 0;
}

/* --like wins over the file's own config; a config that differs in a field that leaves
 * the shapes alone (region_id_scale, ...) would pass every check, so say so. A file too
 * damaged to read is reported by the load. */
static void note_other_config(const char *in, const char *like, const ModelConfig *cfg) {
    char *text = NULL, a[1024], b[1024];
    ModelConfig file;
    if (safetensors_metadata(in, "vcm_config", &text) || !text || model_config_from_json(text, &file) ||
        model_config_to_json(&file, a, sizeof a) || model_config_to_json(cfg, b, sizeof b) || !strcmp(a, b)) {
        free(text);
        return;
    }
    fprintf(stderr, "vcm %s: note: %s was exported from another config (%s); --like %s's (%s) is used\n", CMD, in,
            a, like, b);
    free(text);
}

/* --tokenizer replaces the text; either way it must parse and fit the vocabulary. */
static int check_tokenizer(const char *tok_path, const char *in, Source *s) {
    Tokenizer t = {0};
    if (tok_path) {
        if (bpe_load(tok_path, &t)) return tool_error(CMD, 2, "%s", vcm_error());
        free(s->tok);
        s->tok = bpe_to_text(&t);
        s->tok_from = "file";
        bpe_free(&t);
        if (!s->tok) return tool_error(CMD, 1, "out of memory");
    }
    if (!s->tok) return 0;
    char what[600];
    snprintf(what, sizeof what, "%.400s (tokenizer from %s)", tok_path ? tok_path : in, s->tok_from);
    if (bpe_from_text(s->tok, strlen(s->tok), what, &t)) return tool_error(CMD, 2, "%s", vcm_error());
    int v = t.vocab;
    bpe_free(&t);
    if (v > s->cfg.vocab)
        return tool_error(CMD, 2, "%s has %d ids but the %s model only %d: not its tokenizer", what, v, s->cfg.name,
                          s->cfg.vocab);
    return 0;
}

/* Every line of the report on its own, then the summary. */
static int refuse(const char *in, const SafetensorsReport *r) {
    char *summary = strdup(vcm_error());
    for (const char *l = r->text; l && *l;) {
        const char *nl = strchr(l, '\n');
        int n = nl ? (int)(nl - l) : (int)strlen(l);
        fprintf(stderr, "vcm %s: %s: %.*s\n", CMD, in, n, l);
        l += n + (nl != NULL);
    }
    int rc = tool_error(CMD, 2, "%s; nothing written", summary ? summary : "out of memory");
    free(summary);
    return rc;
}

static int print_line(const char *out, const ParamStore *ps, const Source *s) {
    json_t *line = json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:o}", "out", out, "tensors", ps->n_params, "params",
                             (json_int_t)params_count(ps), "config", s->cfg.name, "kind", s->kind, "config_from",
                             s->from, "tokenizer", s->tok_from ? json_string(s->tok_from) : json_null());
    return tool_print_json(CMD, line, JSON_PRESERVE_ORDER);
}

int cmd_import(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *like = NULL, *config = NULL, *tok_path = NULL, *format = "safetensors";
    Flag flags[] = {
        {"in", 's', &in, "safetensors file to read (required)"},
        {"out", 's', &out, "checkpoint to write, M.vcm (required)"},
        {"like", 's', &like, "take config, kind and tokenizer from this checkpoint, not the file's metadata"},
        {"config", 's', &config, "a named config instead: nano, small, base, nano-text, ... (a student)"},
        {"tokenizer", 's', &tok_path, ".tok to embed (replaces the one from the metadata or --like)"},
        {"format", 's', &format, "input format: safetensors (the default and only one)"},
        {0},
    };
    int rc = flags_parse(USAGE, flags, argc, argv, NULL, 0, NULL);
    if (rc) return rc < 0 ? 0 : rc;
    if (strcmp(format, "safetensors"))
        return tool_error(CMD, 2, "unknown --format \"%s\" (safetensors is the only one)", format);
    if (like && config) return tool_error(CMD, 2, "--like and --config both name the model: give one");

    Source s = {0};
    if (like) {
        if (!(rc = source_from_like(like, &s))) note_other_config(in, like, &s.cfg);
    } else if (config) {
        if (model_config_named(config, &s.cfg)) rc = tool_error(CMD, 2, "--config: %s", vcm_error());
        snprintf(s.kind, sizeof s.kind, "student");
        s.from = "config";
    } else rc = source_from_metadata(in, &s);
    if (!rc) rc = check_tokenizer(tok_path, in, &s);
    int critic = !strcmp(s.kind, "critic");
    if (!rc && !critic && strcmp(s.kind, "student"))
        rc = tool_error(CMD, 2, "%s: kind \"%s\" (this build imports a student or a critic)", like ? like : in, s.kind);
    if (rc) { free(s.tok); return rc; }

    /* The critic's trunk is a Student; its head lives in the same store. */
    Critic c;
    memset(&c, 0, sizeof c);
    rc = critic ? critic_init(&c, &s.cfg, 0) : student_init(&c.s, &s.cfg, 0);
    if (rc) {
        free(s.tok);
        return tool_error(CMD, rc == VCM_EINPUT ? 2 : 1, "the %s model: %s", s.cfg.name, vcm_error());
    }
    c.s.tokenizer_text = s.tok;   /* owned by the model from here */
    SafetensorsReport rep;
    rc = safetensors_load_report(in, &c.s.ps, &rep);
    if (rc == VCM_EINPUT) rc = refuse(in, &rep);
    else if (rc) rc = tool_error(CMD, 1, "%s", vcm_error());
    safetensors_report_free(&rep);
    if (!rc && model_checkpoint_save(out, critic ? "critic" : NULL, &c.s, NULL))
        rc = tool_error(CMD, 1, "%s", vcm_error());
    if (!rc) rc = print_line(out, &c.s.ps, &s);
    if (critic) critic_free(&c);
    else student_free(&c.s);
    return rc;
}
