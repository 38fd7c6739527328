/*
 * router.c -- the route table and how requests are answered.
 *
 * Routes are rows (verb, path pattern, handler, metrics name, the least
 * token role and how a token's job prefix applies -- see auth.c --, whether
 * a JSON body is expected), like Redis's command table: adding a call is
 * adding a row and a handler. /healthz is ROLE_OPEN: load balancers and
 * systemd probe it without a token. A pattern is a '/'-separated path whose
 * segments are literals or the placeholders {job} and {step}. Matching is
 * a linear scan: the table is small and the scan touches no memory but the
 * table itself.
 *
 * Statuses decided here: 404 (no pattern matches the path), 405 (a pattern
 * matches, not with this verb: Allow lists the verbs), 400 (a {job} that is
 * not [A-Za-z0-9._-]{1,128}, a {step} that is not a non-negative integer).
 *
 * The reply_* helpers fill the connection's prepared response; http.c sends
 * it when the handler returns. Every error body has the DESIGN.md shape
 * {"error": {"code", "message", "field"}}.
 */
#include "api.h"
#include "server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lwd_route routes[] = {
    /* verb     pattern                          handler          name         role          scope         body */
    {"PUT",    "/v1/jobs/{job}",               api_job_put,     "job_put",    ROLE_TRAINER,   SCOPE_JOB,    1},
    {"GET",    "/v1/jobs",                     api_jobs_list,   "jobs_list",  ROLE_READER,  SCOPE_LIST,   0},
    {"GET",    "/v1/jobs/{job}",               api_job_get,     "job_get",    ROLE_READER,  SCOPE_JOB,    0},
    {"DELETE", "/v1/jobs/{job}",               api_job_delete,  "job_delete", ROLE_ADMIN,   SCOPE_JOB,    0},
    {"POST",   "/v1/jobs/{job}/reports",       api_report_post, "report",     ROLE_TRAINER, SCOPE_JOB,    1},
    {"GET",    "/v1/jobs/{job}/steps/{step}",  api_step_get,    "step_get",   ROLE_READER,  SCOPE_JOB,    0},
    {"GET",    "/v1/jobs/{job}/weights",       api_weights_get, "weights",    ROLE_READER,  SCOPE_JOB,    0},
    {"GET",    "/v1/jobs/{job}/history",       api_history_get, "history",    ROLE_READER,  SCOPE_JOB,    0},
    {"GET",    "/v1/jobs/{job}/state",         api_state_get,   "state_get",  ROLE_READER,  SCOPE_JOB,    0},
    {"PUT",    "/v1/jobs/{job}/state",         api_state_put,   "state_put",  ROLE_TRAINER,   SCOPE_JOB,    1},
    {"GET",    "/v1/methods",                  api_methods,     "methods",    ROLE_READER,  SCOPE_ANY,    0},
    {"GET",    "/healthz",                     api_healthz,     "healthz",    ROLE_OPEN,    SCOPE_ANY,    0},
    {"GET",    "/metrics",                     api_metrics,     "metrics",    ROLE_READER,  SCOPE_DAEMON, 0},
};

#define N_ROUTES (sizeof routes / sizeof routes[0])

size_t route_count(void) { return N_ROUTES; }

const char *route_name(size_t i) { return i < N_ROUTES ? routes[i].name : "unknown"; }

size_t route_index(const lwd_route *r) { return r ? (size_t)(r - routes) : N_ROUTES; }

/* Does `path` fit `pattern`? Placeholders capture into the out pointers
 * (segment start and length). */
static int pattern_fits(const char *pattern, const char *path, const char **job, size_t *job_len,
                        const char **step, size_t *step_len)
{
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++, s++;
        const char *pe = strchr(p, '/'), *se = strchr(s, '/');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t sl = se ? (size_t)(se - s) : strlen(s);
        if (pl == 5 && memcmp(p, "{job}", 5) == 0) {
            if (sl == 0)
                return 0;
            *job = s, *job_len = sl;
        } else if (pl == 6 && memcmp(p, "{step}", 6) == 0) {
            if (sl == 0)
                return 0;
            *step = s, *step_len = sl;
        } else if (pl != sl || memcmp(p, s, pl) != 0) {
            return 0;
        }
        p += pl, s += sl;
    }
    return *p == '\0' && *s == '\0';
}

int route_match(const char *verb, const char *path, lwd_req *rq, const lwd_route **route,
                char *allow, size_t allow_len, char *msg, size_t msg_len, char *field,
                size_t field_len)
{
    const lwd_route *hit = NULL;
    const char *job = NULL, *step = NULL;
    size_t job_len = 0, step_len = 0, off = 0;
    int path_known = 0;
    if (strcmp(verb, "HEAD") == 0)
        verb = "GET";
    allow[0] = '\0';
    field[0] = '\0';
    for (size_t i = 0; i < N_ROUTES && !hit; i++) {
        const char *j = NULL, *s = NULL;
        size_t jl = 0, sl = 0;
        if (!pattern_fits(routes[i].pattern, path, &j, &jl, &s, &sl))
            continue;
        path_known = 1;
        if (strcmp(routes[i].verb, verb) == 0) {
            hit = &routes[i];
            job = j, job_len = jl, step = s, step_len = sl;
        }
    }
    if (!path_known) {
        snprintf(msg, msg_len, "no such resource: %.200s", path);
        return 404;
    }
    if (!hit) {
        /* 405: the verbs this path has (built only here: every other request
         * would pay a snprintf per matching route) */
        for (size_t i = 0; i < N_ROUTES; i++) {
            const char *j, *s;
            size_t jl, sl;
            if (off < allow_len && pattern_fits(routes[i].pattern, path, &j, &jl, &s, &sl))
                off += (size_t)snprintf(allow + off, allow_len - off, "%s%s", off ? ", " : "",
                                        routes[i].verb);
        }
        snprintf(msg, msg_len, "%s is not allowed on %.200s (allowed: %s)", verb, path, allow);
        return 405;
    }
    rq->route = hit;
    rq->job_id[0] = '\0';
    rq->step = -1;
    if (job) {
        if (job_len > LWD_JOB_ID_MAX) {
            snprintf(field, field_len, "job");
            snprintf(msg, msg_len, "a job id has at most %d characters", LWD_JOB_ID_MAX);
            return 400;
        }
        memcpy(rq->job_id, job, job_len);
        rq->job_id[job_len] = '\0';
        if (!job_id_valid(rq->job_id)) {
            snprintf(field, field_len, "job");
            snprintf(msg, msg_len, "a job id is 1 to %d characters of [A-Za-z0-9._-]",
                     LWD_JOB_ID_MAX);
            return 400;
        }
    }
    if (step) {
        int64_t v = 0;
        int ok = step_len <= 16;
        for (size_t i = 0; ok && i < step_len; i++) {
            if (step[i] < '0' || step[i] > '9')
                ok = 0;
            else
                v = v * 10 + (step[i] - '0');
        }
        if (!ok || v > ((int64_t)1 << 53)) {
            snprintf(field, field_len, "step");
            snprintf(msg, msg_len, "a step is an integer in [0, 2^53]");
            return 400;
        }
        rq->step = v;
    }
    *route = hit;
    return 0;
}

/* ---- answering ---- */

void reply_owned(lwd_req *rq, int status, char *body, size_t len, const char *ctype)
{
    rq->answered = 1;
    http_set_response(rq->conn, status, body, len, RESP_FREE, ctype);
}

void reply_copy(lwd_req *rq, int status, const char *body, size_t len)
{
    rq->answered = 1;
    http_set_response(rq->conn, status, (char *)body, len, RESP_COPY, "application/json");
}

void reply_json(lwd_req *rq, int status, cJSON *doc)
{
    char *s = doc ? wire_print(doc) : NULL;
    cJSON_Delete(doc);
    if (!s) {
        static const char oom[] =
            "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";
        reply_copy(rq, 503, oom, sizeof oom - 1);
        return;
    }
    reply_owned(rq, status, s, strlen(s), "application/json");
}

void reply_error(lwd_req *rq, int status, const char *code, const char *field, const char *fmt,
                 ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_json(rq, status, wire_error_json(code, msg, field));
}

void reply_lw_error(lwd_req *rq, const lw_error *err)
{
    reply_json(rq, wire_http_status(err->code),
               wire_error_json(wire_error_code(err->code),
                               err->message[0] ? err->message : "invalid request", err->field));
}

/* ---- query parameters ---- */

const char *req_query(const lwd_req *rq, const char *name) { return http_query(rq->conn, name); }

int req_query_int(lwd_req *rq, const char *name, int64_t lo, int64_t hi, int64_t def,
                  int64_t *out)
{
    const char *v = req_query(rq, name);
    if (!v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi || (*v < '0' || *v > '9')) {
        reply_error(rq, 400, "invalid", name, "%s must be an integer in [%lld, %lld]", name,
                    (long long)lo, (long long)hi);
        return -1;
    }
    *out = x;
    return 0;
}
