/* The OpenAI chat-completions protocol, as far as vcm needs it: the URL, the request
 * body, and the reply's content. */
#include "distill/distill.h"
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *distill_chat_url(const char *endpoint) {
    size_t n = strlen(endpoint);
    const char *scheme = strstr(endpoint, "://");
    const char *path = strchr(scheme ? scheme + 3 : endpoint, '/');
    const char *suffix = "";
    if (!path || !strcmp(path, "/")) suffix = path ? "v1/chat/completions" : "/v1/chat/completions";
    else if (n >= 3 && !strcmp(endpoint + n - 3, "/v1")) suffix = "/chat/completions";
    else if (n >= 4 && !strcmp(endpoint + n - 4, "/v1/")) suffix = "chat/completions";
    char *u = malloc(n + strlen(suffix) + 1);
    if (u) { memcpy(u, endpoint, n); strcpy(u + n, suffix); }
    return u;
}

/* content: a string, or (image_url given) the parts [image, text] of a vision request */
static int add_message(json_t *msgs, const char *role, const char *content, const char *image_url) {
    json_t *m = json_object();
    if (!m) return -1;
    json_t *c = image_url ? json_pack("[{s:s, s:{s:s}}, {s:s, s:s}]", "type", "image_url", "image_url", "url",
                                      image_url, "type", "text", "text", content)
                          : json_string(content);
    if (json_object_set_new(m, "role", json_string(role)) || !c || json_object_set_new(m, "content", c) ||
        json_array_append_new(msgs, m)) {
        return -1;
    }
    return 0;
}

char *distill_chat_request_image(const char *model, const char *system, const char *user, const char *image_url,
                                 double temperature, uint32_t seed, int max_tokens) {
    json_t *req = json_object(), *msgs = json_array();
    char *out = NULL;
    if (!req || !msgs) goto done;
    if (json_object_set_new(req, "model", json_string(model))) goto done;
    if (system && add_message(msgs, "system", system, NULL)) goto done;
    if (add_message(msgs, "user", user, image_url)) goto done;
    if (json_object_set(req, "messages", msgs)) goto done;
    if (json_object_set_new(req, "temperature", json_real(temperature))) goto done;
    if (json_object_set_new(req, "seed", json_integer((json_int_t)seed))) goto done;
    if (max_tokens > 0 && json_object_set_new(req, "max_tokens", json_integer(max_tokens))) goto done;
    if (json_object_set_new(req, "stream", json_false())) goto done;
    out = json_dumps(req, JSON_COMPACT);
done:
    json_decref(msgs);
    json_decref(req);
    return out;
}

char *distill_chat_request(const char *model, const char *system, const char *user,
                           double temperature, uint32_t seed, int max_tokens) {
    return distill_chat_request_image(model, system, user, NULL, temperature, seed, max_tokens);
}

int distill_chat_content(const char *body, size_t len, char **content) {
    *content = NULL;
    json_error_t err;
    json_t *r = json_loadb(body, len, 0, &err);
    if (!r) return vcm_fail(VCM_EINPUT, "response: %d:%d: %s", err.line, err.column, err.text);
    int rc = VCM_OK;
    json_t *choices = json_object_get(r, "choices");
    json_t *c0 = json_array_get(choices, 0);
    json_t *msg = json_object_get(c0, "message");
    json_t *c = json_object_get(msg, "content");
    if (!json_is_array(choices) || !json_is_object(c0)) {
        json_t *e = json_object_get(r, "error");
        json_t *em = json_is_object(e) ? json_object_get(e, "message") : e;
        rc = json_is_string(em) ? vcm_fail(VCM_EINPUT, "response has an error: %.300s", json_string_value(em))
                                : vcm_fail(VCM_EINPUT, "response has no choices[0]");
    } else if (!json_is_string(c)) {
        /* the legacy completions shape */
        json_t *t = json_object_get(c0, "text");
        if (json_is_string(t)) c = t;
        else rc = vcm_fail(VCM_EINPUT, "response has no choices[0].message.content string");
    }
    if (rc == VCM_OK && !(*content = strdup(json_string_value(c)))) rc = vcm_fail(VCM_ERR, "out of memory");
    json_decref(r);
    return rc;
}
