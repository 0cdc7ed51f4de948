/* `vcm corpus validate`, the library side: every record of a file, in order, through
 * every check; stop at the first problem, or count problems by reason (skip_bad). */
#include "data/data.h"
#include "base/base.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static void count_ref(const int *ids, int n, void *ctx) {
    int *seen = ctx; /* seen[0] = count, seen[1..] ids (up to VCM_MAX_REGIONS + 1) */
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int k = 0; k < seen[0] && !dup; k++) dup = seen[1 + k] == ids[i];
        if (!dup && seen[0] <= VCM_MAX_REGIONS) seen[1 + seen[0]++] = ids[i];
    }
}

/* A record with its own boxes: its image opened once (memo: image -> [w, h, reason,
 * message]), the record's boxes checked against the size every time. */
static int check_refs_image(const Record *r, const char *path, const char *images_root, json_t *memo,
                            long *n_images, int *reason) {
    json_t *m = json_object_get(memo, r->image);
    if (!m) {
        char msg[1100];
        int w, h, bad = image_check_file(images_root, r->image, &w, &h, msg, sizeof msg);
        (*n_images)++;
        m = json_pack("[i,i,i,s]", w, h, bad, msg);
        if (!m || json_object_set_new(memo, r->image, m)) return vcm_fail(VCM_ERR, "out of memory");
    }
    int w = (int)json_integer_value(json_array_get(m, 0)), h = (int)json_integer_value(json_array_get(m, 1));
    int bad = (int)json_integer_value(json_array_get(m, 2));
    if (bad) {
        *reason = bad;
        return vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\": %s", path, r->line, r->image,
                        json_string_value(json_array_get(m, 3)));
    }
    return record_check_boxes(r, path, w, h, reason);
}

/* One parsed record through the mapping, image and region-count checks. */
static int check_record(const Record *r, const char *path, RegionMap *m, const char *images_root, json_t *memo,
                        long *n_images, int *reason) {
    const RegionEntry *ce = r->references || !m ? NULL : regionmap_find(m, r->image);
    if (r->references && images_root && check_refs_image(r, path, images_root, memo, n_images, reason))
        return VCM_EINPUT;
    if (ce && images_root && !ce->checked) {
        RegionEntry *e = (RegionEntry *)ce;
        (*n_images)++;
        if (regionmap_check_image(m, e, images_root)) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s", vcm_error());
            *reason = e->bad ? e->bad : BAD_BOX_OUTSIDE;
            /* A box outside the image is only this record's problem if it uses it:
             * in skip_bad mode the mapping keeps the mark and the record check decides. */
            vcm_fail(VCM_EINPUT, "%s (used by %s:%ld)", msg, path, r->line);
            return VCM_EINPUT;
        }
    }
    if (record_check_regions(r, path, m, reason)) return VCM_EINPUT;
    int seen[VCM_MAX_REGIONS + 2] = {0};
    record_each_mention(r, count_ref, seen);
    if (r->n_region > 0) count_ref(r->region, r->n_region, seen);
    if (seen[0] > VCM_MAX_REGIONS) {
        *reason = BAD_TOO_MANY_REGIONS;
        return vcm_fail(VCM_EINPUT, "%s:%ld: the record refers to more than %d regions", path, r->line,
                        VCM_MAX_REGIONS);
    }
    return VCM_OK;
}

int corpus_validate(const char *path, RegionMap *m, const char *images_root, int skip_bad, CorpusCheck *out,
                    CorpusProgress progress, void *ctx) {
    memset(out, 0, sizeof *out);
    JsonlReader rd;
    json_t *memo = json_object();
    if (!memo) return vcm_fail(VCM_ERR, "out of memory");
    int rc = jsonl_open(&rd, path);
    if (rc) { json_decref(memo); return rc; }
    for (;;) {
        JsonlLine ln;
        int reason = BAD_NONE;
        Record r;
        rc = jsonl_next(&rd, &ln);
        if (rc == VCM_OK && !ln.text) break;
        if (rc == VCM_EINPUT && strstr(vcm_error(), "line longer")) reason = BAD_LINE_TOO_LONG;
        else if (rc) break;
        out->records++;
        if (progress && out->records % CORPUS_PROGRESS_EVERY == 0) progress(out->records, ctx);
        if (!rc && (rc = record_parse(&ln, REC_ANY, &r, &reason)) == VCM_OK) {
            out->by_kind[r.kind]++;
            out->with_references += r.references != NULL;
            if (check_record(&r, path, m, images_root, memo, &out->images_checked, &reason)) {
                rc = VCM_EINPUT;
                /* skip_bad: an image problem found now may be a box this record does
                 * not use; let the record check decide with the marks now set. */
                if (skip_bad && reason == BAD_BOX_OUTSIDE) {
                    int r2 = BAD_NONE;
                    rc = check_record(&r, path, m, images_root, memo, &out->images_checked, &r2);
                    reason = r2;
                }
            }
            record_free(&r);
        }
        if (rc == VCM_OK) {
            out->ok++;
            continue;
        }
        if (rc != VCM_EINPUT || !skip_bad || reason == BAD_NONE) break;
        out->bad++;
        out->bad_by_reason[reason]++;
        rc = VCM_OK;
    }
    jsonl_close(&rd);
    json_decref(memo);
    return rc;
}
