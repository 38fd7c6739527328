/*
 * api_steps.c -- a job's steps over HTTP: reports, one decided step
 * (long-poll), the latest weights, and the history pages.
 *
 * Query parameters:
 *   POST reports   ?wait_ms=N  wait at most N ms for the decision (barrier),
 *                              then 202 with the ranks so far; 0 answers at
 *                              once; absent: wait for the decision or the
 *                              barrier timeout.
 *   GET steps/{n}  ?wait_ms=N  long-poll up to N ms (default 0); 200 when
 *                              decided, 202 pending, 410 closed or evicted.
 *   GET history    ?from=S     first step >= S (default: the oldest kept)
 *                  ?limit=N    items per page, 1..1000 (default 100);
 *                              "next" is the `from` of the next page.
 */
#include "api.h"
#include "jobs.h"

void api_report_post(lwd_req *rq)
{
    int64_t wait_ms;
    lwd_job *j = api_job(rq);
    if (!j)
        return;
    if (req_query_int(rq, "wait_ms", 0, LWD_WAIT_MS_MAX, -1, &wait_ms) != 0)
        return;
    cJSON *doc = api_body_json(rq);
    if (!doc)
        return;
    steps_report(rq, j, doc, wait_ms);
    cJSON_Delete(doc);
}

void api_step_get(lwd_req *rq)
{
    int64_t wait_ms;
    lwd_job *j = api_job(rq);
    if (!j)
        return;
    if (req_query_int(rq, "wait_ms", 0, LWD_WAIT_MS_MAX, 0, &wait_ms) != 0)
        return;
    steps_get(rq, j, rq->step, wait_ms);
}

void api_weights_get(lwd_req *rq)
{
    lwd_job *j = api_job(rq);
    if (!j)
        return;
    const lwd_decision *d = hist_latest(&j->hist);
    if (!d) {
        reply_error(rq, 404, "no_decision", "", "no step of job \"%s\" is decided yet", j->id);
        return;
    }
    size_t len;
    const char *body = hist_body(j, d, &len);
    reply_copy(rq, 200, body, len);
}

void api_history_get(lwd_req *rq)
{
    int64_t from, limit;
    lwd_job *j = api_job(rq);
    if (!j)
        return;
    if (req_query_int(rq, "from", 0, (int64_t)1 << 53, 0, &from) != 0 ||
        req_query_int(rq, "limit", 1, 1000, 100, &limit) != 0)
        return;
    const lwd_history *h = &j->hist;
    size_t i = hist_lower_bound(h, from), end = i + (size_t)limit;
    if (end > h->len)
        end = h->len;
    cJSON *o = cJSON_CreateObject();
    const lwd_decision *first = hist_at(h, 0), *last = hist_latest(h);
    cJSON_AddStringToObject(o, "job", j->id);
    cJSON_AddItemToObject(o, "kept", json_int((int64_t)h->len));
    cJSON_AddItemToObject(o, "oldest", first ? json_int(first->step) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "latest", last ? json_int(last->step) : cJSON_CreateNull());
    cJSON *items = cJSON_AddArrayToObject(o, "items");
    for (size_t k = i; k < end; k++)
        cJSON_AddItemToArray(items, hist_item_json(j, hist_at(h, k)));
    cJSON_AddItemToObject(o, "next", end < h->len ? json_int(hist_at(h, end)->step)
                                                  : cJSON_CreateNull());
    reply_json(rq, 200, o);
}
