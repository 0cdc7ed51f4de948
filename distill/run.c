/* distill's run on the shared client (client.c): one job per image of the mapping, its
 * reply turned into records (reply.c) and written in one append (outfile.c). */
#include "distill/distill.h"
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Run {
    const RegionMap *map;
    const DistillPrompt *prompt;
    const DistillOptions *o;
    DistillStats *st;
    DistillOut out;
    const char *source;
    long next;           /* next entry to consider */
} Run;

/* Claim the next entry that needs a request, render its prompt. */
static int next_job(void *ctx, DistillJob *job) {
    Run *R = ctx;
    const RegionMap *m = R->map;
    while (R->next < m->n) {
        long i = R->next++;
        const RegionEntry *e = &m->entries[i];
        const RegionEntry *first = regionmap_find(m, e->image);
        if (first && first != e) { R->st->duplicate++; continue; }
        if (distill_out_has(&R->out, e->image)) { R->st->skipped++; continue; }
        char *sys = NULL, *user = NULL;
        if (distill_prompt_render(R->prompt, e, R->o->per_image, &sys, &user) ||
            !(job->body = distill_chat_request(R->o->model, sys, user, R->o->temperature,
                                               distill_request_seed(R->o->seed, e->image, -1), R->o->max_tokens))) {
            distill_log("distill", "%s: cannot build the prompt: %s", e->image, vcm_error());
            R->st->failures[DISTILL_FAIL_PROMPT]++;
            R->st->failed++;
            free(sys); free(user);
            continue;
        }
        free(sys); free(user);
        if (!(job->label = strdup(e->image))) {
            free(job->body);
            job->body = NULL;
            return -vcm_fail(VCM_ERR, "out of memory");
        }
        job->item = i;
        job->part = -1;
        return 1;
    }
    return 0;
}

static void job_ended(void *ctx, const DistillJob *job, int reason) {
    Run *R = ctx;
    (void)job;
    if (reason == DISTILL_PENDING) { R->st->pending++; return; }
    R->st->failures[reason]++;
    R->st->failed++;
}

/* A reply: its records, written in one append. */
static int job_reply(void *ctx, const DistillJob *job, const char *content) {
    Run *R = ctx;
    const RegionEntry *e = &R->map->entries[job->item];
    json_t *records = json_array();
    int n = records ? distill_parse_reply(content, e, job->item, R->source, records, R->st->drops) : -1;
    if (n < 0) { json_decref(records); return vcm_fail(VCM_ERR, "out of memory"); }
    if (n == 0) {
        R->st->empty++;
        if (R->o->verbose) distill_log("distill", "%s: no usable item in the reply", e->image);
        json_decref(records);
        return VCM_OK;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int rc = f ? VCM_OK : vcm_fail(VCM_ERR, "out of memory");
    for (int i = 0; i < n && rc == VCM_OK; i++)
        if (json_dumpf(json_array_get(records, (size_t)i), f, 0) || fputc('\n', f) == EOF)
            rc = vcm_fail(VCM_ERR, "out of memory");
    if (f && fclose(f) && rc == VCM_OK) rc = vcm_fail(VCM_ERR, "out of memory");
    json_decref(records);
    if (rc == VCM_OK) rc = distill_out_append(&R->out, e->image, buf, len);
    free(buf);
    if (rc) return rc;
    R->st->records += n;
    R->st->done++;
    if (R->o->verbose) distill_log("distill", "%s: %d records", e->image, n);
    return VCM_OK;
}

static void progress(void *ctx, const DistillNet *net, double secs) {
    const DistillStats *st = ((Run *)ctx)->st;
    long finished = st->done + st->empty + st->failed;
    distill_log("distill", "%ld/%ld images (%ld skipped), %ld records, %ld failed, %ld requests, %ld retries, %.2f images/s",
                finished + st->skipped + st->duplicate, st->images, st->skipped, st->records, st->failed,
                net->requests, net->retries, finished / (secs > 1e-9 ? secs : 1e-9));
}

/* The entries never claimed: skipped / duplicate / pending, so the counts add up. */
static void count_unclaimed(Run *R) {
    const RegionMap *m = R->map;
    for (; R->next < m->n; R->next++) {
        const RegionEntry *e = &m->entries[R->next];
        const RegionEntry *first = regionmap_find(m, e->image);
        if (first && first != e) R->st->duplicate++;
        else if (distill_out_has(&R->out, e->image)) R->st->skipped++;
        else R->st->pending++;
    }
}

int distill_run(const RegionMap *map, const DistillPrompt *prompt, const char *out_path,
                const DistillOptions *o, DistillStats *st) {
    memset(st, 0, sizeof *st);
    st->images = map->n;
    Run R;
    memset(&R, 0, sizeof R);
    R.map = map; R.prompt = prompt; R.o = o; R.st = st;
    R.out.fd = -1;
    int rc = distill_client_check(o);
    if (rc) return rc;
    char *source_buf = NULL;
    if (o->source) R.source = o->source;
    else {
        size_t n = strlen(prompt->version) + 16;
        if (!(source_buf = malloc(n))) return vcm_fail(VCM_ERR, "out of memory");
        snprintf(source_buf, n, "vcm_distill_%s", prompt->version);
        R.source = source_buf;
    }
    if ((rc = distill_out_open(out_path, R.source, &R.out))) { free(source_buf); return rc; }
    st->truncated_bytes = R.out.truncated_bytes;
    if (R.out.truncated_bytes)
        distill_log("distill", "%s: cut away a partial last line (%ld bytes) left by an interrupted writer",
                    out_path, R.out.truncated_bytes);

    DistillClient c = {"distill", &R, next_job, job_reply, job_ended, progress};
    rc = distill_client_run(o, &c, &st->net);
    count_unclaimed(&R);
    if (st->net.budget_spent && st->pending > 0 && !st->net.interrupted && !st->net.fatal) {
        st->budget_exhausted = 1;
        distill_log("distill", "the budget of %ld requests is spent: %ld images left for a re-run", o->max_requests, st->pending);
    }
    distill_out_close(&R.out);
    free(source_buf);
    return rc;
}

json_t *distill_stats_json(const DistillStats *st, const char *source) {
    json_t *drops = json_object(), *fails = json_object();
    for (int i = 0; i < DISTILL_N_DROPS && drops; i++)
        json_object_set_new(drops, distill_drop_name(i), json_integer(st->drops[i]));
    for (int i = 0; i < DISTILL_N_FAILS && fails; i++)
        json_object_set_new(fails, distill_fail_name(i), json_integer(st->failures[i]));
    json_t *images = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                               "total", (json_int_t)st->images, "done", (json_int_t)st->done,
                               "empty", (json_int_t)st->empty, "skipped", (json_int_t)st->skipped,
                               "duplicate", (json_int_t)st->duplicate, "failed", (json_int_t)st->failed,
                               "pending", (json_int_t)st->pending);
    json_t *j = json_pack("{s:s?, s:I, s:o*}", "source", source, "records", (json_int_t)st->records, "images", images);
    if (!j) { json_decref(drops); json_decref(fails); return NULL; }
    if (distill_net_json(j, &st->net) ||
        json_object_set_new(j, "drops", drops ? drops : json_null()) ||
        distill_run_json_end(j, fails, &st->net, st->truncated_bytes, st->budget_exhausted)) {
        json_decref(j);
        return NULL;
    }
    return j;
}
