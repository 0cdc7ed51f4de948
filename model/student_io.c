/* Students and critics to and from a checkpoint: the config (and the tokenizer's text)
 * travel in the header as JSON, so a checkpoint is all `vcm generate` needs. A critic's
 * header is a student's plus "kind":"critic"; a header without "kind" is a student's. */
#include "model/model.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int model_checkpoint_save(const char *path, const char *kind, const Student *m, const TrainState *st) {
    char cfg[1024];
    int rc = model_config_to_json(&m->cfg, cfg, sizeof cfg);
    if (rc) return rc;
    json_t *o = json_loads(cfg, 0, NULL);
    int bad = !o;
    if (!bad && kind) bad = json_object_set_new(o, "kind", json_string(kind));
    if (!bad && m->tokenizer_text) bad = json_object_set_new(o, "tokenizer", json_string(m->tokenizer_text));
    char *text = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) return vcm_fail(VCM_ERR, "out of memory: checkpoint header");
    rc = checkpoint_save(path, text, &m->ps, st);
    free(text);
    return rc;
}

/* The header's kind ("student" when absent), and when asked (cfg, tok not NULL) the
 * config and the tokenizer text (malloc'd, or NULL when there is none). */
static int read_header(const char *path, char *kind, size_t kind_size, ModelConfig *cfg, char **tok) {
    char *json = NULL;
    int rc = checkpoint_read_config(path, &json);
    if (rc) return rc;
    if (tok) *tok = NULL;
    json_t *o = json_loads(json, 0, NULL);
    if (!json_is_object(o)) rc = vcm_fail(VCM_EINPUT, "%s: the header's config is not a JSON object", path);
    json_t *k = rc ? NULL : json_object_get(o, "kind");
    if (!rc && k && !json_is_string(k)) rc = vcm_fail(VCM_EINPUT, "%s: \"kind\" in the header is not a string", path);
    if (!rc) snprintf(kind, kind_size, "%s", k ? json_string_value(k) : "student");
    if (!rc && cfg && (rc = model_config_from_json(json, cfg))) rc = vcm_fail(rc, "%s: %s", path, vcm_error());
    json_t *t = rc || !tok ? NULL : json_object_get(o, "tokenizer");
    if (json_is_string(t) && !(*tok = strdup(json_string_value(t)))) rc = vcm_fail(VCM_ERR, "out of memory");
    json_decref(o);
    free(json);
    return rc;
}

/* A lower bound of the weights' bytes a config asks for (the decoder's blocks, token and
 * position tables; the ViT's blocks): the file must hold at least that much, checked
 * before the model is built, so a header that says dec_layers 1024 in a 24 MB file is
 * refused instead of allocating gigabytes. */
static int check_config_fits(const char *path, const ModelConfig *c) {
    struct stat sb;
    if (stat(path, &sb)) return vcm_fail(VCM_EINPUT, "%s: %s", path, strerror(errno));
    double dd = c->dec_d, vd = c->vit_d;
    double floats = c->dec_layers * 12.0 * dd * dd + ((double)c->vocab + model_max_seq(c)) * dd;
    if (c->region_input != REGION_INPUT_TEXT) floats += c->vit_layers * 12.0 * vd * vd;
    if (4.0 * floats > (double)sb.st_size)
        return vcm_fail(VCM_EINPUT, "%s: the header's config (%s: dec_layers %d, dec_d %d, vocab %d, vit_layers %d) "
                                    "needs at least %.0f bytes of weights but the file holds %lld: the header is "
                                    "damaged or not this file's", path, c->name, c->dec_layers, c->dec_d, c->vocab,
                        c->vit_layers, 4.0 * floats, (long long)sb.st_size);
    return VCM_OK;
}

int model_checkpoint_kind(const char *path, char *kind, size_t size) {
    return read_header(path, kind, size, NULL, NULL);
}

int model_checkpoint_config(const char *path, const char *want_kind, ModelConfig *cfg, char **tok) {
    char kind[32];
    int rc = read_header(path, kind, sizeof kind, cfg, tok);
    if (!rc) rc = check_config_fits(path, cfg);
    if (rc) {
        if (tok) { free(*tok); *tok = NULL; }
        return rc;
    }
    if (strcmp(kind, want_kind)) {
        free(*tok);
        *tok = NULL;
        return vcm_fail(VCM_EINPUT, "%s: a %s checkpoint, not a %s%s", path, kind, want_kind,
                        !strcmp(want_kind, "critic") ? " (train one with vcm critic train)" : "");
    }
    return VCM_OK;
}

int student_save(const char *path, const Student *m, const TrainState *st) {
    return model_checkpoint_save(path, NULL, m, st);
}

int student_load(const char *path, Student *m, TrainState *st) {
    ModelConfig cfg;
    char *tok = NULL;
    int rc = model_checkpoint_config(path, "student", &cfg, &tok);
    if (!rc) rc = student_init(m, &cfg, 0);
    if (rc) { free(tok); return rc; }
    m->tokenizer_text = tok;
    rc = checkpoint_load(path, &m->ps, st);
    if (rc) student_free(m);
    return rc;
}

int student_tokenizer(const Student *m, const char *path, Tokenizer *tok) {
    if (!m->tokenizer_text)
        return vcm_fail(VCM_EINPUT, "%s: holds no tokenizer (written by an older vcm): pass --tokenizer", path);
    char what[4200];
    snprintf(what, sizeof what, "%s (embedded tokenizer)", path);
    return bpe_from_text(m->tokenizer_text, strlen(m->tokenizer_text), what, tok);
}
