/*
 * jobs.c -- the job table and a job's life outside its steps.
 *
 * The table is a chained hash keyed by job id, sized once from --max-jobs
 * (ids are short, lookups happen on every request). A job is built
 * completely -- spec parsed, library job created, canonical spec printed,
 * every buffer its steps need allocated -- before it is inserted, so a
 * failing create or restore leaves the table as it was.
 *
 * Memory per job is bounded: open steps by --max-ahead, the history by
 * --history and by LWD_HISTORY_BYTES (the history of a job with a large
 * Gram matrix keeps fewer steps; GET /v1/jobs/{job} shows how many).
 */
#include "jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LWD_HISTORY_BYTES ((size_t)64 << 20)

static struct {
    lwd_job **b;
    size_t nb, n;
} tab;

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int tab_init(void)
{
    if (tab.b)
        return 0;
    size_t nb = 64;
    while (nb < srv.cfg.max_jobs && nb < ((size_t)1 << 20))
        nb *= 2;
    tab.b = calloc(nb, sizeof *tab.b);
    if (!tab.b)
        return -1;
    tab.nb = nb;
    return 0;
}

lwd_job *jobs_find(const char *id)
{
    if (!tab.b)
        return NULL;
    for (lwd_job *j = tab.b[hash_id(id) & (tab.nb - 1)]; j; j = j->hnext)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

size_t jobs_count(void) { return tab.n; }

void jobs_insert(lwd_job *job)
{
    if (tab_init() != 0)
        abort(); /* a few hundred bytes at start-up */
    lwd_job **slot = &tab.b[hash_id(job->id) & (tab.nb - 1)];
    job->hnext = *slot;
    *slot = job;
    tab.n++;
}

void jobs_remove(lwd_job *job)
{
    if (!tab.b)
        return;
    for (lwd_job **p = &tab.b[hash_id(job->id) & (tab.nb - 1)]; *p; p = &(*p)->hnext) {
        if (*p == job) {
            *p = job->hnext;
            job->hnext = NULL;
            tab.n--;
            return;
        }
    }
}

int job_build(const char *id, const cJSON *spec_doc, lwd_job **out, lw_error *err)
{
    lwd_job *j = calloc(1, sizeof *j);
    int rc;
    *out = NULL;
    memset(err, 0, sizeof *err);
    if (!j)
        goto oom;
    snprintf(j->id, sizeof j->id, "%s", id);
    if ((rc = wire_parse_spec(spec_doc, &srv.limits, &j->spec, err)) != 0) {
        free(j);
        return rc;
    }
    if ((rc = lw_job_create(&j->spec.lib, &j->lw, err)) != 0) {
        wire_spec_free(&j->spec);
        free(j);
        return rc;
    }
    j->T = lw_job_tasks(j->lw);
    j->rep_len = 3 * j->T + j->T * j->T;
    j->world = j->spec.world_size;
    j->min_ranks = j->spec.min_ranks > 0 ? j->spec.min_ranks : j->world;
    j->sync = j->spec.sync;
    j->barrier_timeout_ms = j->spec.barrier_timeout_ms;
    j->last_decided = -1;
    j->created_ms = now_ms();

    /* A history entry: the mean input, T weights, the printed body. The
     * budget counts the Gram only for methods that read it. */
    const lw_method_info *mi = lw_job_method(j->lw);
    size_t gram = ((mi->inputs | mi->optional_inputs) & LW_IN_GRAM) ? j->T * j->T : 0;
    size_t entry = (4 * j->T + gram) * sizeof(double) + 160 + 26 * j->T;
    size_t keep = LWD_HISTORY_BYTES / entry;
    if (keep < 16)
        keep = 16;
    if (keep > srv.cfg.history)
        keep = srv.cfg.history;
    hist_init(&j->hist, keep);

    cJSON *canon = wire_spec_to_json(&j->spec, j->lw);
    j->spec_json = canon ? wire_print(canon) : NULL;
    cJSON_Delete(canon);
    j->ranks = calloc((size_t)j->world, sizeof *j->ranks);
    j->parse_buf = malloc(wire_report_buf_len(j->T) * sizeof(double));
    j->mean = malloc((j->rep_len + j->T) * sizeof(double));
    if (!j->spec_json || !j->ranks || !j->parse_buf || !j->mean) {
        job_free(j);
        goto oom;
    }
    j->spec_len = strlen(j->spec_json);
    for (int r = 0; r < j->world; r++)
        j->ranks[r].last_step = -1;
    *out = j;
    return 0;
oom:
    err->code = LW_ENOMEM;
    snprintf(err->message, sizeof err->message, "out of memory");
    return LW_ENOMEM;
}

void job_free(lwd_job *job)
{
    if (!job)
        return;
    while (job->open) {
        lwd_pending *p = job->open;
        job->open = p->next;
        pending_free(p);
    }
    hist_clear(&job->hist);
    free(job->hist.v);
    lw_job_free(job->lw);
    wire_spec_free(&job->spec);
    free(job->spec_json);
    free(job->ranks);
    free(job->parse_buf);
    free(job->mean);
    free(job);
}

void job_waiter_link(lwd_job *job, lwd_waiter *w)
{
    w->prev = NULL;
    w->next = job->waiters;
    if (job->waiters)
        job->waiters->prev = w;
    job->waiters = w;
    if (w->kind == WAIT_REPORT)
        job->n_waiting_reports++;
    else
        job->n_waiting_polls++;
}

void job_waiter_unlink(lwd_job *job, lwd_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        job->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    if (w->kind == WAIT_REPORT)
        job->n_waiting_reports--;
    else
        job->n_waiting_polls--;
}

void job_fail_waiters(lwd_job *job, int status, const char *code, const char *message)
{
    while (job->waiters)
        waiter_answer_error(job->waiters, status, code, NULL, message);
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(lwd_job *const *)a)->id, (*(lwd_job *const *)b)->id);
}

lwd_job **jobs_sorted(size_t *n)
{
    lwd_job **v = malloc((tab.n ? tab.n : 1) * sizeof *v);
    size_t k = 0;
    if (!v) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; tab.b && i < tab.nb; i++)
        for (lwd_job *j = tab.b[i]; j; j = j->hnext)
            v[k++] = j;
    qsort(v, k, sizeof *v, by_id);
    *n = k;
    return v;
}

void jobs_free_all(void)
{
    for (size_t i = 0; tab.b && i < tab.nb; i++) {
        while (tab.b[i]) {
            lwd_job *j = tab.b[i];
            tab.b[i] = j->hnext;
            /* Called after http_stop(): every connection is closed, so no
             * waiter should be left; detach any without touching MHD. */
            while (j->waiters) {
                lwd_waiter *w = j->waiters;
                job_waiter_unlink(j, w);
                w->job = NULL;
            }
            job_free(j);
        }
    }
    free(tab.b);
    memset(&tab, 0, sizeof tab);
}

void jobs_totals(size_t *jobs, size_t *open_steps, size_t *waiting_reports,
                 size_t *waiting_polls)
{
    *jobs = tab.n;
    *open_steps = *waiting_reports = *waiting_polls = 0;
    for (size_t i = 0; tab.b && i < tab.nb; i++)
        for (lwd_job *j = tab.b[i]; j; j = j->hnext) {
            *open_steps += j->n_open;
            *waiting_reports += j->n_waiting_reports;
            *waiting_polls += j->n_waiting_polls;
        }
}

/* ---- views ---- */

static void status_line(const lwd_job *j, char *buf, size_t n)
{
    char last[64];
    if (j->last_decided >= 0)
        snprintf(last, sizeof last, "last decided step %lld", (long long)j->last_decided);
    else
        snprintf(last, sizeof last, "no step decided yet");
    snprintf(buf, n, "%s, %zu tasks, %d rank%s, %s: %s; %llu decided, %zu open, %zu waiting",
             lw_job_method(j->lw)->name, j->T, j->world, j->world == 1 ? "" : "s",
             j->sync == WIRE_SYNC_ASYNC ? "async" : "barrier", last,
             (unsigned long long)j->n_decided, j->n_open, j->n_waiting_reports);
}

cJSON *job_summary_json(const lwd_job *j)
{
    char line[320];
    cJSON *o = cJSON_CreateObject();
    status_line(j, line, sizeof line);
    cJSON_AddStringToObject(o, "job", j->id);
    cJSON_AddStringToObject(o, "method", lw_job_method(j->lw)->name);
    cJSON_AddItemToObject(o, "tasks", json_int((int64_t)j->T));
    cJSON_AddItemToObject(o, "world_size", json_int(j->world));
    cJSON_AddStringToObject(o, "sync", j->sync == WIRE_SYNC_ASYNC ? "async" : "barrier");
    cJSON_AddItemToObject(o, "last_decided",
                          j->last_decided >= 0 ? json_int(j->last_decided) : cJSON_CreateNull());
    cJSON_AddStringToObject(o, "status", line);
    return o;
}

cJSON *job_view_json(const lwd_job *j)
{
    char line[320];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", j->id);
    cJSON_AddItemToObject(o, "spec", wire_spec_to_json(&j->spec, j->lw));

    cJSON *st = cJSON_AddObjectToObject(o, "status");
    status_line(j, line, sizeof line);
    cJSON_AddStringToObject(st, "summary", line);
    cJSON_AddItemToObject(st, "last_decided",
                          j->last_decided >= 0 ? json_int(j->last_decided) : cJSON_CreateNull());
    cJSON_AddItemToObject(st, "steps_decided", json_int((int64_t)j->n_decided));
    cJSON_AddItemToObject(st, "method_steps", json_int((int64_t)lw_job_steps_done(j->lw)));
    cJSON *open = cJSON_AddArrayToObject(st, "open_steps");
    int shown = 0;
    for (const lwd_pending *p = j->open; p && shown < 32; p = p->next, shown++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "step", json_int(p->step));
        cJSON_AddItemToObject(e, "ranks", json_int(p->nranks));
        if (p->failed)
            cJSON_AddStringToObject(e, "error", p->err.message);
        cJSON_AddItemToArray(open, e);
    }
    cJSON_AddItemToObject(st, "open_count", json_int((int64_t)j->n_open));
    cJSON_AddItemToObject(st, "ranks_waiting", json_int((int64_t)j->n_waiting_reports));
    cJSON *h = cJSON_AddObjectToObject(st, "history");
    const lwd_decision *first = hist_at(&j->hist, 0);
    cJSON_AddItemToObject(h, "kept", json_int((int64_t)j->hist.len));
    cJSON_AddItemToObject(h, "max", json_int((int64_t)j->hist.max));
    cJSON_AddItemToObject(h, "oldest", first ? json_int(first->step) : cJSON_CreateNull());

    const lwd_decision *d = hist_latest(&j->hist);
    /* the decision's own bytes: reparsing would let cJSON reprint doubles */
    size_t blen;
    cJSON_AddItemToObject(o, "latest",
                          d ? cJSON_CreateRaw(hist_body(j, d, &blen)) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "state", wire_describe_json(j->lw));
    return o;
}
