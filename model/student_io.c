/* A student to and from a checkpoint: the config (and the tokenizer's text) travel in
 * the header as JSON, so a checkpoint is all `vcm generate` needs. */
#include "model/model.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

int student_save(const char *path, const Student *m, const TrainState *st) {
    char cfg[1024];
    int rc = model_config_to_json(&m->cfg, cfg, sizeof cfg);
    if (rc) return rc;
    if (!m->tokenizer_text) return checkpoint_save(path, cfg, &m->ps, st);
    json_t *o = json_loads(cfg, 0, NULL);
    if (!o || json_object_set_new(o, "tokenizer", json_string(m->tokenizer_text))) {
        json_decref(o);
        return vcm_fail(VCM_ERR, "out of memory: checkpoint header");
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text) return vcm_fail(VCM_ERR, "out of memory: checkpoint header");
    rc = checkpoint_save(path, text, &m->ps, st);
    free(text);
    return rc;
}

int student_load(const char *path, Student *m, TrainState *st) {
    char *json = NULL;
    int rc = checkpoint_read_config(path, &json);
    if (rc) return rc;
    ModelConfig cfg;
    rc = model_config_from_json(json, &cfg);
    if (rc) {
        free(json);
        return vcm_fail(rc, "%s: %s", path, vcm_error());
    }
    char *tok = NULL;
    json_t *o = json_loads(json, 0, NULL);
    json_t *t = o ? json_object_get(o, "tokenizer") : NULL;
    if (json_is_string(t) && !(tok = strdup(json_string_value(t)))) rc = vcm_fail(VCM_ERR, "out of memory");
    json_decref(o);
    free(json);
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
