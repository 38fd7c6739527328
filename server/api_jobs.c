/*
 * api_jobs.c -- jobs as resources: create, list, show, delete, and the
 * whole-job state document (export / restore).
 *
 * Create is idempotent on the canonical spec (wire_spec_to_json with every
 * default filled in): the same spec again answers 200, another one 409, a
 * first create 201. Restore (PUT .../state) builds a complete new job and
 * swaps it in only when everything in the document checked out; requests
 * waiting on the old job are answered 409.
 */
#include "api.h"
#include "jobs.h"
#include "journal.h"

#include <stdlib.h>
#include <string.h>

cJSON *api_body_json(lwd_req *rq)
{
    lw_error err;
    cJSON *doc = body_parse(rq->body, rq->body_len, &err);
    if (!doc)
        reply_error(rq, 400, "invalid_json", err.field, "%s", err.message);
    return doc;
}

lwd_job *api_job(lwd_req *rq)
{
    lwd_job *j = jobs_find(rq->job_id);
    if (!j)
        reply_error(rq, 404, "no_such_job", "job", "no job \"%s\"", rq->job_id);
    return j;
}

static cJSON *created_json(const lwd_job *j, int created)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", j->id);
    cJSON_AddBoolToObject(o, "created", created);
    cJSON_AddItemToObject(o, "spec", cJSON_CreateRaw(j->spec_json));
    return o;
}

void api_job_put(lwd_req *rq)
{
    lwd_job *j, *old;
    lw_error err;
    cJSON *doc = api_body_json(rq);
    if (!doc)
        return;
    int rc = job_build(rq->job_id, doc, &j, &err);
    cJSON_Delete(doc);
    if (rc != 0) {
        reply_lw_error(rq, &err);
        return;
    }
    if ((old = jobs_find(rq->job_id))) {
        int same = old->spec_len == j->spec_len && memcmp(old->spec_json, j->spec_json, j->spec_len) == 0;
        job_free(j);
        if (same)
            reply_json(rq, 200, created_json(old, 0));
        else
            reply_error(rq, 409, "conflict", "", "job \"%s\" exists with another spec",
                        rq->job_id);
        return;
    }
    if (jobs_count() >= srv.cfg.max_jobs) {
        job_free(j);
        reply_error(rq, 429, "too_many_jobs", "", "the daemon holds %zu jobs, its limit",
                    srv.cfg.max_jobs);
        return;
    }
    journal_event ev = {.kind = JOURNAL_JOB_CREATED, .job = j->id, .step = -1, .rank = -1,
                        .doc = j->spec_json, .doc_len = j->spec_len};
    if (journal_append(&ev) != 0) {
        job_free(j);
        reply_error(rq, 503, "unavailable", NULL, "the journal refused the job: %s",
                    journal_error());
        return;
    }
    jobs_insert(j);
    log_begin(LL_INFO, "job_created");
    log_str("job", j->id);
    log_str("method", lw_job_method(j->lw)->name);
    log_int("tasks", (long long)j->T);
    log_int("world_size", j->world);
    log_str("sync", j->sync == WIRE_SYNC_ASYNC ? "async" : "barrier");
    log_end();
    reply_json(rq, 201, created_json(j, 1));
}

/* Only the jobs under the token's job prefix ("" without tokens: all). */
void api_jobs_list(lwd_req *rq)
{
    size_t n, shown = 0, pl = strlen(rq->job_prefix);
    lwd_job **v = jobs_sorted(&n);
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "jobs");
    for (size_t i = 0; v && i < n; i++) {
        if (pl && strncmp(v[i]->id, rq->job_prefix, pl) != 0)
            continue;
        cJSON_AddItemToArray(a, job_summary_json(v[i]));
        shown++;
    }
    cJSON_AddItemToObject(o, "count", json_int((int64_t)shown));
    free(v);
    reply_json(rq, 200, o);
}

void api_job_get(lwd_req *rq)
{
    lwd_job *j = api_job(rq);
    if (j)
        reply_json(rq, 200, job_view_json(j));
}

void api_job_delete(lwd_req *rq)
{
    lwd_job *j = api_job(rq);
    if (!j)
        return;
    journal_event ev = {.kind = JOURNAL_JOB_DELETED, .job = j->id, .step = -1, .rank = -1};
    if (journal_append(&ev) != 0) {
        reply_error(rq, 503, "unavailable", NULL, "the journal refused the deletion: %s",
                    journal_error());
        return;
    }
    job_fail_waiters(j, 404, "job_deleted", "the job was deleted");
    jobs_remove(j);
    log_begin(LL_INFO, "job_deleted");
    log_str("job", j->id);
    log_int("steps_decided", (long long)j->n_decided);
    log_end();
    job_free(j);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", rq->job_id);
    cJSON_AddBoolToObject(o, "deleted", 1);
    reply_json(rq, 200, o);
}

void api_state_get(lwd_req *rq)
{
    int64_t decided_only;
    if (req_query_int(rq, "decided_only", 0, 1, 0, &decided_only) != 0)
        return;
    lwd_job *j = api_job(rq);
    if (j)
        reply_json(rq, 200, state_export(j, decided_only != 0));
}

void api_state_put(lwd_req *rq)
{
    lwd_job *nj, *old;
    lw_error err;
    cJSON *doc = api_body_json(rq);
    if (!doc)
        return;
    int rc = state_import(rq->job_id, doc, &nj, &err);
    cJSON_Delete(doc);
    if (rc != 0) {
        reply_lw_error(rq, &err);
        return;
    }
    old = jobs_find(rq->job_id);
    if (!old && jobs_count() >= srv.cfg.max_jobs) {
        job_free(nj);
        reply_error(rq, 429, "too_many_jobs", "", "the daemon holds %zu jobs, its limit",
                    srv.cfg.max_jobs);
        return;
    }
    journal_event ev = {.kind = JOURNAL_JOB_RESTORED, .job = nj->id, .step = -1, .rank = -1,
                        .doc = rq->body, .doc_len = rq->body_len};
    if (journal_append(&ev) != 0) {
        job_free(nj);
        reply_error(rq, 503, "unavailable", NULL, "the journal refused the restore: %s",
                    journal_error());
        return;
    }
    if (old) {
        job_fail_waiters(old, 409, "job_restored", "the job was replaced by a restore");
        jobs_remove(old);
        job_free(old);
    }
    jobs_insert(nj);
    for (lwd_pending *p = nj->open; p; p = p->next)
        steps_arm_timer(nj, p);
    log_begin(LL_INFO, "job_restored");
    log_str("job", nj->id);
    log_int("last_decided", (long long)nj->last_decided);
    log_int("open_steps", (long long)nj->n_open);
    log_end();
    reply_json(rq, old ? 200 : 201, job_view_json(nj));
}
