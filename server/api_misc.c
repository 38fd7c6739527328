/*
 * api_misc.c -- the daemon itself: the method table, liveness, metrics.
 *
 * GET /v1/methods serves bytes printed once at start-up from the library's
 * method table (wire_methods_json): the table is the only copy.
 */
#include "api.h"
#include "jobs.h"
#include "metrics.h"

void api_methods(lwd_req *rq)
{
    reply_copy(rq, 200, srv.methods_body, srv.methods_len);
}

void api_healthz(lwd_req *rq)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "version", LWD_VERSION);
    cJSON_AddItemToObject(o, "uptime_s", json_int((int64_t)(now_ms() / 1000)));
    cJSON_AddItemToObject(o, "jobs", json_int((int64_t)jobs_count()));
    reply_json(rq, 200, o);
}

void api_metrics(lwd_req *rq)
{
    size_t len;
    char *text = metrics_render(&len);
    if (!text) {
        reply_error(rq, 503, "out_of_memory", NULL, "out of memory");
        return;
    }
    reply_owned(rq, 200, text, len, "text/plain; version=0.0.4; charset=utf-8");
}
