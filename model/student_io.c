/* A student to and from a checkpoint: the config travels in the header as JSON. */
#include "model/model.h"

#include <stdlib.h>

int student_save(const char *path, const Student *m, const TrainState *st) {
    char cfg[1024];
    int rc = model_config_to_json(&m->cfg, cfg, sizeof cfg);
    if (rc) return rc;
    return checkpoint_save(path, cfg, &m->ps, st);
}

int student_load(const char *path, Student *m, TrainState *st) {
    char *json = NULL;
    int rc = checkpoint_read_config(path, &json);
    if (rc) return rc;
    ModelConfig cfg;
    rc = model_config_from_json(json, &cfg);
    free(json);
    if (rc) return vcm_fail(rc, "%s: %s", path, vcm_error());
    rc = student_init(m, &cfg, 0);
    if (rc) return rc;
    rc = checkpoint_load(path, &m->ps, st);
    if (rc) student_free(m);
    return rc;
}
