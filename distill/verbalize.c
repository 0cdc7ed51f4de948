/* verbalize's run on the shared client (client.c): each image of the mapping is a set
 * of jobs — its global caption (part -1) and one per region asked (part k, its index
 * in the entry) — handed out in mapping order, all of an image's parts before the next
 * image. When the last of an image's jobs has ended, the image is written (its original
 * line with the replies set, one append: outfile.c) or counted as failed / empty /
 * pending. Only the image being handed out is held decoded. */
#include "distill/distill.h"
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Open {       /* an image with jobs given out */
    long entry;
    int ask_global;
    unsigned char *ask;     /* [n_regions]: 1 = ask region k */
    int n_parts, given, outstanding;
    int failed, fail_reason, pending, empty;
    char *global;
    char **region;          /* [n_regions] replies */
} Open;

typedef struct Run {
    RegionMap *map;
    const VerbalizeOptions *o;
    VerbalizeStats *st;
    DistillOut out;
    JsonlIndex ix;          /* the mapping's lines, to write each one back with its replies */
    long next;              /* next entry to consider */
    unsigned char *bad;     /* [map->n]: skipped as bad (skip_bad) */
    Open **open;            /* images with jobs out, or being handed out */
    int n_open, cap_open;
    Open *cur;              /* the one being handed out */
    Image img;              /* cur's pixels */
    char *img_path;
} Run;

static void open_free(Open *im, int n_regions) {
    if (!im) return;
    free(im->ask);
    free(im->global);
    for (int k = 0; im->region && k < n_regions; k++) free(im->region[k]);
    free(im->region);
    free(im);
}

static Open *find_open(Run *R, long entry) {
    for (int i = 0; i < R->n_open; i++)
        if (R->open[i]->entry == entry) return R->open[i];
    return NULL;
}

static void close_open(Run *R, Open *im) {
    for (int i = 0; i < R->n_open; i++)
        if (R->open[i] == im) { R->open[i] = R->open[--R->n_open]; break; }
    if (R->cur == im) { R->cur = NULL; image_free(&R->img); }
    open_free(im, R->map->entries[im->entry].n_regions);
}

/* The record index of the mapping line `line` (the index holds every non-blank line). */
static long record_of_line(const JsonlIndex *ix, long line) {
    long lo = 0, hi = ix->n - 1;
    while (lo <= hi) {
        long mid = lo + (hi - lo) / 2;
        if ((long)ix->line_no[mid] == line) return mid;
        if ((long)ix->line_no[mid] < line) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
}

/* The image's original line with "global" and "region_descriptions" set, appended. */
static int write_image(Run *R, Open *im) {
    const RegionEntry *e = &R->map->entries[im->entry];
    long rec = record_of_line(&R->ix, e->line);
    JsonlLine ln;
    json_t *obj = NULL;
    if (rec < 0) return vcm_fail(VCM_ERR, "%s:%ld: line not found again (did the file change?)", R->map->path, e->line);
    int rc = jsonl_index_read(&R->ix, rec, &ln);
    if (!rc) rc = jsonl_parse(&ln, &obj);
    if (rc) return rc;
    if (!json_is_object(obj)) { json_decref(obj); return vcm_fail(VCM_ERR, "%s:%ld: changed since it was loaded", R->map->path, e->line); }
    int bad = 0;
    if (im->ask_global) bad |= json_object_set_new(obj, "global", json_pack("[s]", im->global));
    json_t *rd = json_object_get(obj, "region_descriptions");
    if (!json_is_object(rd)) {
        bad |= json_object_set_new(obj, "region_descriptions", json_object());
        rd = json_object_get(obj, "region_descriptions");
    }
    for (int k = 0; k < e->n_regions && rd; k++) {
        if (!im->ask[k]) continue;
        char key[16];
        snprintf(key, sizeof key, "%d", e->regions[k].id);
        bad |= json_object_set_new(rd, key, json_string(im->region[k]));
    }
    char *line = bad || !rd ? NULL : json_dumps(obj, 0);
    json_decref(obj);
    if (!line) return vcm_fail(VCM_ERR, "out of memory");
    size_t len = strlen(line);
    char *buf = realloc(line, len + 2);
    if (!buf) { free(line); return vcm_fail(VCM_ERR, "out of memory"); }
    buf[len++] = '\n';
    buf[len] = 0;
    rc = distill_out_append(&R->out, e->image, buf, len);
    free(buf);
    if (rc) return rc;
    R->st->done++;
    R->st->globals += im->ask_global;
    R->st->kept += !im->ask_global;
    for (int k = 0; k < e->n_regions; k++) {
        R->st->regions += im->ask[k];
        R->st->kept += !im->ask[k];
    }
    if (R->o->chat.verbose) distill_log("verbalize", "%s: described (%d requests)", e->image, im->n_parts);
    return VCM_OK;
}

/* Called whenever one of im's jobs ends: once none is out and none is left to give,
 * the image is settled. */
static int maybe_finish(Run *R, Open *im) {
    if (im->outstanding > 0) return VCM_OK;
    int stopped = im->failed || im->empty || im->pending;
    if (im == R->cur && im->given < im->n_parts && !stopped) return VCM_OK;
    VerbalizeStats *st = R->st;
    int rc = VCM_OK;
    if (im->failed) { st->failed++; st->failures[im->fail_reason]++; }
    else if (im->empty) st->empty++;   /* its other parts may not have been asked: not pending */
    else if (im->pending || im->given < im->n_parts) st->pending++;
    else rc = write_image(R, im);
    close_open(R, im);
    return rc;
}

/* Open the next entry that needs requests (mapping order); decode its image. 1: cur
 * set, 0: none left, < 0: error. */
static int open_next(Run *R) {
    RegionMap *m = R->map;
    const VerbalizeOptions *o = R->o;
    while (R->next < m->n) {
        long i = R->next++;
        RegionEntry *e = &m->entries[i];
        const RegionEntry *first = regionmap_find(m, e->image);
        if (first && first != e) { R->st->duplicate++; continue; }
        if (R->bad[i]) continue;                          /* skip_bad: counted at the check */
        if (distill_out_has(&R->out, e->image)) { R->st->skipped++; continue; }
        Open *im = calloc(1, sizeof *im);
        if (im && e->n_regions) {
            im->ask = calloc((size_t)e->n_regions, 1);
            im->region = calloc((size_t)e->n_regions, sizeof *im->region);
        }
        if (!im || (e->n_regions && (!im->ask || !im->region))) {
            open_free(im, e->n_regions);
            return -vcm_fail(VCM_ERR, "out of memory");
        }
        im->entry = i;
        im->ask_global = !(o->keep_existing && e->n_global > 0);
        im->n_parts = im->ask_global;
        for (int k = 0; k < e->n_regions; k++) {
            const char *d = e->regions[k].description;
            im->ask[k] = !(o->keep_existing && d && *d);
            im->n_parts += im->ask[k];
        }
        if (R->n_open == R->cap_open) {
            int nc = R->cap_open ? 2 * R->cap_open : 16;
            Open **no = realloc(R->open, (size_t)nc * sizeof *no);
            if (!no) { open_free(im, e->n_regions); return -vcm_fail(VCM_ERR, "out of memory"); }
            R->open = no;
            R->cap_open = nc;
        }
        R->open[R->n_open++] = im;
        if (im->n_parts == 0) {                           /* all kept: the line as it is */
            int rc = write_image(R, im);
            close_open(R, im);
            if (rc) return -rc;
            continue;
        }
        free(R->img_path);
        if (!(R->img_path = image_path(o->images_root, e->image))) return -vcm_fail(VCM_ERR, "out of memory");
        R->cur = im;
        if (image_load(R->img_path, &R->img))
            return -vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\": %s", m->path, e->line, e->image, vcm_error());
        return 1;
    }
    return 0;
}

/* The request for cur's next part. */
static int next_job(void *ctx, DistillJob *job) {
    Run *R = ctx;
    const VerbalizeOptions *o = R->o;
    for (;;) {
        Open *im = R->cur;
        if (im && (im->failed || im->empty)) {            /* its other parts would be wasted */
            im->given = im->n_parts;
            R->cur = NULL;
            image_free(&R->img);
            int rc = maybe_finish(R, im);
            if (rc) return -rc;
            continue;
        }
        if (!im || im->given == im->n_parts) {
            if (im) { R->cur = NULL; image_free(&R->img); }
            int got = open_next(R);
            if (got <= 0) return got;
            continue;
        }
        const RegionEntry *e = &R->map->entries[im->entry];
        int part = -1;
        if (!(im->ask_global && im->given == 0)) {        /* the given-th part: global first, then regions */
            int want = im->given - im->ask_global;
            for (int k = 0; k < e->n_regions; k++)
                if (im->ask[k] && want-- == 0) { part = k; break; }
        }
        Image crop = {0}, fit = {0};
        char *url = NULL, label[64];
        int rc;
        if (part < 0) {
            rc = image_fit(&R->img, o->max_side, &fit);
            snprintf(label, sizeof label, "global");
        } else {
            int r[4];
            verbalize_crop_rect(R->img.w, R->img.h, &e->regions[part], o->pad, o->min_side, r);
            rc = image_crop(&R->img, r[0], r[1], r[2], r[3], &crop);
            if (!rc) rc = image_fit(&crop, o->max_side, &fit);
            snprintf(label, sizeof label, "region %d", e->regions[part].id);
        }
        if (!rc) rc = image_jpeg_data_url(&fit, o->jpeg_quality, &url);
        image_free(&crop);
        image_free(&fit);
        if (rc) return -vcm_fail(rc, "%s:%ld: image \"%s\" %s: %s", R->map->path, e->line, e->image, label, vcm_error());
        const char *text = part < 0 ? (o->global_prompt ? o->global_prompt : verbalize_prompt_global)
                                    : (o->region_prompt ? o->region_prompt : verbalize_prompt_region);
        job->body = distill_chat_request_image(o->chat.model, NULL, text, url, o->chat.temperature,
                                               distill_request_seed(o->chat.seed, e->image, part < 0 ? 0 : part + 1),
                                               o->chat.max_tokens);
        free(url);
        size_t ln = strlen(e->image) + strlen(label) + 2;
        job->label = malloc(ln);
        if (!job->body || !job->label) {
            free(job->body); free(job->label);
            job->body = job->label = NULL;
            return -vcm_fail(VCM_ERR, "out of memory");
        }
        snprintf(job->label, ln, "%s %s", e->image, label);
        job->item = im->entry;
        job->part = part;
        im->given++;
        im->outstanding++;
        return 1;
    }
}

static int job_reply(void *ctx, const DistillJob *job, const char *content) {
    Run *R = ctx;
    Open *im = find_open(R, job->item);
    if (!im) return vcm_fail(VCM_ERR, "internal: a reply for an image not in flight");
    im->outstanding--;
    char *text = verbalize_clean_reply(content, job->part >= 0);
    if (!text) return vcm_fail(VCM_ERR, "out of memory");
    if (!*text) {
        free(text);
        im->empty = 1;
        if (R->o->chat.verbose) distill_log("verbalize", "%s: empty reply", job->label);
    } else if (job->part < 0) {
        free(im->global);
        im->global = text;
    } else {
        free(im->region[job->part]);
        im->region[job->part] = text;
    }
    return maybe_finish(R, im);
}

static void job_ended(void *ctx, const DistillJob *job, int reason) {
    Run *R = ctx;
    Open *im = find_open(R, job->item);
    if (!im) return;
    im->outstanding--;
    if (reason == DISTILL_PENDING) im->pending = 1;
    else if (!im->failed) { im->failed = 1; im->fail_reason = reason; }
    /* a write error here has nowhere to go but the log; the image is then not written
     * and a re-run asks again */
    if (maybe_finish(R, im)) distill_log("verbalize", "%s", vcm_error());
}

static void progress(void *ctx, const DistillNet *net, double secs) {
    const VerbalizeStats *st = ((Run *)ctx)->st;
    long finished = st->done + st->empty + st->failed;
    distill_log("verbalize", "%ld/%ld images (%ld skipped), %ld descriptions, %ld failed, %ld requests, %ld retries, %.2f requests/s",
                finished + st->skipped + st->duplicate + st->bad, st->images, st->skipped, st->globals + st->regions,
                st->failed, net->requests, net->retries, net->requests / (secs > 1e-9 ? secs : 1e-9));
}

/* Every image the run would ask about, checked before the first request. */
static int check_images(Run *R) {
    RegionMap *m = R->map;
    double t0 = distill_now(), last = t0;
    for (long i = 0; i < m->n; i++) {
        RegionEntry *e = &m->entries[i];
        const RegionEntry *first = regionmap_find(m, e->image);
        if ((first && first != e) || distill_out_has(&R->out, e->image)) continue;
        int rc = regionmap_check_image(m, e, R->o->images_root);
        for (int k = 0; k < e->n_regions && !rc; k++)   /* kept by a --skip-bad load: no crop of it */
            if (e->regions[k].bad)
                rc = vcm_fail(VCM_EINPUT, "%s:%ld: image \"%s\": region \"%d\": bad box (%s)", m->path, e->line,
                              e->image, e->regions[k].id, bad_reason_name(e->regions[k].bad));
        if (rc) {
            if (!R->o->skip_bad) return rc;
            distill_log("verbalize", "skipped: %s", vcm_error());
            R->bad[i] = 1;
            R->st->bad++;
        }
        if (distill_now() - last >= 10) {
            last = distill_now();
            distill_log("verbalize", "checked %ld/%d images", i + 1, m->n);
        }
    }
    return VCM_OK;
}

/* The entries never opened: skipped / duplicate / pending, so the counts add up. */
static void count_unclaimed(Run *R) {
    RegionMap *m = R->map;
    for (; R->next < m->n; R->next++) {
        const RegionEntry *e = &m->entries[R->next];
        const RegionEntry *first = regionmap_find(m, e->image);
        if (first && first != e) R->st->duplicate++;
        else if (R->bad[R->next]) continue;
        else if (distill_out_has(&R->out, e->image)) R->st->skipped++;
        else R->st->pending++;
    }
}

int verbalize_run(RegionMap *map, const VerbalizeOptions *o, const char *out_path, VerbalizeStats *st) {
    memset(st, 0, sizeof *st);
    st->images = map->n;
    if (o->jpeg_quality < 1 || o->jpeg_quality > 100) return vcm_fail(VCM_EINPUT, "JPEG quality %d: wants 1..100", o->jpeg_quality);
    if (o->max_side < 1 || !(o->pad >= 0)) return vcm_fail(VCM_EINPUT, "max side %d / pad %g out of range", o->max_side, o->pad);
    int rc = distill_client_check(&o->chat);
    if (rc) return rc;
    Run R;
    memset(&R, 0, sizeof R);
    R.map = map; R.o = o; R.st = st;
    R.out.fd = -1;
    R.ix.fd = -1;
    if (!(R.bad = calloc((size_t)map->n + 1, 1))) return vcm_fail(VCM_ERR, "out of memory");
    if ((rc = distill_out_open(out_path, NULL, &R.out))) { free(R.bad); return rc; }
    st->truncated_bytes = R.out.truncated_bytes;
    if (R.out.truncated_bytes)
        distill_log("verbalize", "%s: cut away a partial last line (%ld bytes) left by an interrupted writer",
                    out_path, R.out.truncated_bytes);
    rc = check_images(&R);
    if (!rc) rc = jsonl_index_build(&R.ix, map->path, 0);
    if (!rc) {
        DistillClient c = {"verbalize", &R, next_job, job_reply, job_ended, progress};
        rc = distill_client_run(&o->chat, &c, &st->net);
        /* what was being handed out when the run stopped */
        while (R.n_open) {
            Open *im = R.open[R.n_open - 1];
            im->given = im->n_parts;
            im->outstanding = 0;   /* the client has reported every job */
            im->pending = 1;
            R.cur = NULL;
            maybe_finish(&R, im);
        }
        count_unclaimed(&R);
        if (st->net.budget_spent && st->pending > 0 && !st->net.interrupted && !st->net.fatal) {
            st->budget_exhausted = 1;
            distill_log("verbalize", "the budget of %ld requests is spent: %ld images left for a re-run",
                        o->chat.max_requests, st->pending);
        }
    }
    image_free(&R.img);
    free(R.img_path);
    free(R.open);
    free(R.bad);
    jsonl_index_free(&R.ix);
    distill_out_close(&R.out);
    return rc;
}

json_t *verbalize_stats_json(const VerbalizeStats *st, const VerbalizeOptions *o) {
    json_t *fails = json_object();
    for (int i = 0; i < DISTILL_N_FAILS - 1 && fails; i++)   /* "prompt" is distill's */
        json_object_set_new(fails, distill_fail_name(i), json_integer(st->failures[i]));
    json_t *j = json_pack("{s:s, s:s?, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}}",
                          "prompt", o->global_prompt || o->region_prompt ? "custom" : VERBALIZE_PROMPT_VERSION,
                          "model", o->chat.model,
                          "images", "total", (json_int_t)st->images, "done", (json_int_t)st->done,
                          "empty", (json_int_t)st->empty, "skipped", (json_int_t)st->skipped,
                          "duplicate", (json_int_t)st->duplicate, "failed", (json_int_t)st->failed,
                          "pending", (json_int_t)st->pending, "bad", (json_int_t)st->bad,
                          "descriptions", "global", (json_int_t)st->globals, "regions", (json_int_t)st->regions,
                          "kept", (json_int_t)st->kept);
    if (!j) { json_decref(fails); return NULL; }
    if (distill_net_json(j, &st->net) ||
        distill_run_json_end(j, fails, &st->net, st->truncated_bytes, st->budget_exhausted)) {
        json_decref(j);
        return NULL;
    }
    return j;
}
