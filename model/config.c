/* The named model configs (one table) and their JSON form for checkpoint headers. */
#include "model/model.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Mentions carry LayerNorm(v_k): with the raw v_k the id was lost (docs/MODEL.md). */
#define MENTION_DEFAULT MENTION_NORM
#define ID_SCALE MODEL_REGION_ID_SCALE
static const ModelConfig CONFIGS[] = {
    /* name    image patch  vit d/L/H      dec d/L/H      vocab  text  region input      pixels mention id scale */
    {"nano",   64,   8,     128, 4, 4,     128, 4, 4,     2048,  64,   REGION_INPUT_ROI, 8, MENTION_DEFAULT, ID_SCALE},
    {"small",  224,  16,    384, 6, 6,     384, 6, 6,     8192,  96,   REGION_INPUT_ROI, 0, MENTION_DEFAULT, ID_SCALE},
    {"base",   224,  16,    768, 12, 12,   768, 12, 12,   16384, 128,  REGION_INPUT_ROI, 0, MENTION_DEFAULT, ID_SCALE},
    /* The text-only baseline (region input "text"): the same decoder, no image, each
     * [k] replaced by its region's description, so the text is longer: 1.5x the window.
     * Measured on a 3,000-image synthetic world (14,400 records, nano tokenizer, with
     * <bos>/<eos>): ids p50 46 / p99 68 / max 72; descriptions p50 50 / p99 80 /
     * p99.9 91 / max 102. vcm train picks <name>-text for --region-input text. */
    {"nano-text",  64,  8,  128, 4, 4,     128, 4, 4,     2048,  96,   REGION_INPUT_TEXT, 0, MENTION_DEFAULT, ID_SCALE},
    {"small-text", 224, 16, 384, 6, 6,     384, 6, 6,     8192,  144,  REGION_INPUT_TEXT, 0, MENTION_DEFAULT, ID_SCALE},
    {"base-text",  224, 16, 768, 12, 12,   768, 12, 12,   16384, 192,  REGION_INPUT_TEXT, 0, MENTION_DEFAULT, ID_SCALE},
};

int model_config_named(const char *name, ModelConfig *c) {
    for (size_t i = 0; i < sizeof CONFIGS / sizeof CONFIGS[0]; i++)
        if (!strcmp(CONFIGS[i].name, name)) { *c = CONFIGS[i]; return VCM_OK; }
    return vcm_fail(VCM_EINPUT, "unknown model config \"%s\" (nano, small, base; nano-text, small-text, base-text)", name);
}

const char *region_input_name(int mode) {
    return mode == REGION_INPUT_ROI ? "roi" : mode == REGION_INPUT_DRAW ? "draw" : mode == REGION_INPUT_TEXT ? "text" : "none";
}

int region_input_parse(const char *s, int *mode) {
    if (!strcmp(s, "roi")) *mode = REGION_INPUT_ROI;
    else if (!strcmp(s, "draw")) *mode = REGION_INPUT_DRAW;
    else if (!strcmp(s, "none")) *mode = REGION_INPUT_NONE;
    else if (!strcmp(s, "text")) *mode = REGION_INPUT_TEXT;
    else return vcm_fail(VCM_EINPUT, "region input \"%s\": expected roi, draw or none (or text: the text-only baseline)", s);
    return VCM_OK;
}

int model_config_to_json(const ModelConfig *c, char *buf, size_t size) {
    int n = snprintf(buf, size,
                     "{\"name\":\"%s\",\"image\":%d,\"patch\":%d,\"vit_d\":%d,\"vit_layers\":%d,"
                     "\"vit_heads\":%d,\"dec_d\":%d,\"dec_layers\":%d,\"dec_heads\":%d,\"vocab\":%d,"
                     "\"max_text\":%d,\"region_input\":\"%s\",\"roi_pixels\":%d,\"mention\":%d,\"region_id_scale\":%d}",
                     c->name, c->image, c->patch, c->vit_d, c->vit_layers, c->vit_heads, c->dec_d,
                     c->dec_layers, c->dec_heads, c->vocab, c->max_text, region_input_name(c->region_input),
                     c->roi_pixels, c->mention, c->region_id_scale);
    if (n < 0 || (size_t)n >= size) return vcm_fail(VCM_ERR, "config JSON needs %d bytes", n);
    return VCM_OK;
}

static int get_int(json_t *o, const char *key, int lo, int hi, int *out) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) return vcm_fail(VCM_EINPUT, "config: \"%s\" missing or not an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return vcm_fail(VCM_EINPUT, "config: \"%s\" = %lld outside [%d, %d]", key, (long long)x, lo, hi);
    *out = (int)x;
    return VCM_OK;
}

int model_config_from_json(const char *text, ModelConfig *c) {
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return vcm_fail(VCM_EINPUT, "config: not a JSON object (column %d: %s)", err.column, err.text);
    }
    memset(c, 0, sizeof *c);
    int rc = VCM_OK;
    json_t *name = json_object_get(o, "name"), *ri = json_object_get(o, "region_input");
    if (!json_is_string(name) || strlen(json_string_value(name)) >= sizeof c->name)
        rc = vcm_fail(VCM_EINPUT, "config: \"name\" missing or not a short string");
    else snprintf(c->name, sizeof c->name, "%s", json_string_value(name));
    if (!rc) rc = get_int(o, "image", 8, 4096, &c->image);
    if (!rc) rc = get_int(o, "patch", 1, 256, &c->patch);
    if (!rc) rc = get_int(o, "vit_d", 1, 65536, &c->vit_d);
    if (!rc) rc = get_int(o, "vit_layers", 0, 1024, &c->vit_layers);
    if (!rc) rc = get_int(o, "vit_heads", 1, 1024, &c->vit_heads);
    if (!rc) rc = get_int(o, "dec_d", 1, 65536, &c->dec_d);
    if (!rc) rc = get_int(o, "dec_layers", 1, 1024, &c->dec_layers);
    if (!rc) rc = get_int(o, "dec_heads", 1, 1024, &c->dec_heads);
    if (!rc) rc = get_int(o, "vocab", 19, 1 << 24, &c->vocab);
    if (!rc) rc = get_int(o, "max_text", 2, 1 << 16, &c->max_text);
    /* roi_pixels came later: absent means 0 */
    if (!rc && json_object_get(o, "roi_pixels")) rc = get_int(o, "roi_pixels", 0, 64, &c->roi_pixels);
    /* mention came later still: absent means MENTION_RAW, what those checkpoints did */
    if (!rc && json_object_get(o, "mention")) rc = get_int(o, "mention", MENTION_RAW, MENTION_NORM, &c->mention);
    /* and region_id_scale: absent means 1, region tokens with the plain id row */
    c->region_id_scale = 1;
    if (!rc && json_object_get(o, "region_id_scale"))
        rc = get_int(o, "region_id_scale", 0, 64, &c->region_id_scale);
    if (!rc && !json_is_string(ri)) rc = vcm_fail(VCM_EINPUT, "config: \"region_input\" missing");
    if (!rc) rc = region_input_parse(json_string_value(ri), &c->region_input);
    if (!rc && (c->image % c->patch || c->vit_d % c->vit_heads || c->dec_d % c->dec_heads))
        rc = vcm_fail(VCM_EINPUT, "config: image not a multiple of patch, or a width not a multiple of its heads");
    json_decref(o);
    return rc;
}
