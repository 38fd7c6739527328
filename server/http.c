/*
 * http.c -- libmicrohttpd driven by the libuv loop.
 *
 * libmicrohttpd runs in external-event-loop mode with epoll: its epoll fd is
 * watched by a uv_poll_t, and after every event MHD_run() does the work and
 * MHD_get_timeout() says when it must run again (a uv_timer_t; zero means
 * "data already pending": a uv_idle_t runs it on the next loop turn without
 * blocking). Connections resumed from outside MHD_run (a barrier decided, a
 * timeout) call http_wakeup() so MHD_run runs again promptly; MHD's own
 * inter-thread channel sits in its epoll set as a second guarantee.
 *
 * Each connection has an lwd_conn (MHD's socket context) holding the
 * request being served, its body, the prepared response, a uv_timer_t for
 * ?wait_ms= deadlines and the waiter node that links it to a job while it is
 * suspended. A request goes:
 *
 *   first call     the bearer token (auth.c: 401 whatever the path, unless
 *                  the route is open), route match, the token's role and
 *                  job prefix (403), Content-Type and Content-Length
 *                  checks; a body over --max-body is answered at once
 *                  (413, or the 401/403 already decided; MHD then closes
 *                  the connection without reading the body);
 *   body chunks    appended (or counted and dropped once over the limit,
 *                  or when the request was refused 401/403: the body of a
 *                  request without the right token is never kept);
 *   last call      the handler runs and either answers (reply_*) or waits
 *                  (req_wait): the connection is suspended;
 *   resumed call   the response prepared by waiter_answer() is sent.
 *
 * Under --fsync always, an answer prepared while journal records are not
 * yet durable is held the same way (suspended) until the group commit
 * covering them completes (gate_hold, on_durable).
 *
 * Routing and auth errors found in the first call (401, 403, 404, 405,
 * 400, 415) are answered after the body has been read, so keep-alive
 * connections survive them. A 401 carries WWW-Authenticate (RFC 6750).
 *
 * TLS (tls.c): the same mode, with MHD_USE_TLS. GnuTLS may hold decrypted
 * bytes the epoll fd does not signal; MHD_get_timeout() then says 0 and
 * the idle handle runs MHD_run again, as for any pending data.
 */
#include "auth.h"
#include "jobs.h"
#include "journal.h"
#include "metrics.h"
#include "server.h"
#include "tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct lwd_conn {
    struct MHD_Connection *mhd;
    uv_timer_t timer; /* ?wait_ms= deadline while waiting */
    lwd_req rq;
    lwd_waiter w;
    int in_request;
    int suspended; /* MHD_suspend_connection called, not yet re-entered */
    uint64_t t0;   /* uv_hrtime() at the request's first call */
    /* an answer decided before the body is read (routing, media type) */
    int pre_status;
    const char *pre_code;
    char pre_field[16];
    char pre_msg[320];
    char allow[64];
    int auth_kind;    /* a 401: AUTH_MISSING, _MALFORMED or _UNKNOWN (WWW-Authenticate) */
    /* the body */
    char *body;
    size_t body_len, body_cap, body_seen;
    int body_over;
    /* the prepared response */
    int resp_set, resp_status, resp_mode;
    char *resp_body;
    size_t resp_len;
    const char *resp_ctype;
    /* held (suspended) until the journal is durable up to gate_lsn */
    int gated;
    uint64_t gate_lsn;
    lwd_conn *gate_prev, *gate_next;
};

/* libmicrohttpd's memory pool per connection (MHD_OPTION_CONNECTION_MEMORY_LIMIT;
 * its default is 32 KiB). It holds the request line and headers, the read
 * buffer and the response headers, and MHD zeroes all of it after every
 * request on a keep-alive connection: at 32 KiB that memset was ~6% of the
 * report path's CPU. Bodies do not live there (they stream to body_append).
 * 16 KiB halves the memset and still takes request headers up to ~15 KiB
 * (beyond that MHD itself answers 431). */
#define LWD_MHD_POOL 16384

static uv_poll_t mhd_poll;
static uv_timer_t mhd_timer;
static uv_idle_t mhd_idle;
static int handles_open;

/* ---- MHD under the loop ---- */

static void mhd_arm(void);

static void mhd_service(void)
{
    if (!srv.mhd)
        return;
    MHD_run(srv.mhd);
    mhd_arm();
    if (srv.shutting_down)
        server_check_shutdown();
}

static void on_mhd_poll(uv_poll_t *h, int status, int events)
{
    (void)h, (void)status, (void)events;
    mhd_service();
}

static void on_mhd_timer(uv_timer_t *h)
{
    (void)h;
    mhd_service();
}

static void on_mhd_idle(uv_idle_t *h)
{
    uv_idle_stop(h);
    mhd_service();
}

static void mhd_arm(void)
{
    MHD_UNSIGNED_LONG_LONG to;
    if (!srv.mhd)
        return;
    if (MHD_get_timeout(srv.mhd, &to) != MHD_YES) {
        uv_timer_stop(&mhd_timer);
        return;
    }
    if (to == 0) {
        uv_idle_start(&mhd_idle, on_mhd_idle);
        return;
    }
    uv_timer_start(&mhd_timer, on_mhd_timer, to, 0);
}

void http_wakeup(void)
{
    if (handles_open)
        uv_idle_start(&mhd_idle, on_mhd_idle);
}

/* ---- responses ---- */

static char oom_body[] =
    "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";

void http_set_response(lwd_conn *c, int status, char *body, size_t len, int mode,
                       const char *ctype)
{
    if (c->resp_set && c->resp_mode == RESP_FREE)
        free(c->resp_body);
    if (mode == RESP_COPY) {
        char *copy = malloc(len ? len : 1);
        if (copy) {
            memcpy(copy, body, len);
            body = copy;
            mode = RESP_FREE;
        } else {
            status = 503, body = oom_body, len = sizeof oom_body - 1, mode = RESP_STATIC;
            ctype = "application/json";
        }
    }
    c->resp_set = 1;
    c->resp_status = status;
    c->resp_body = body;
    c->resp_len = len;
    c->resp_mode = mode;
    c->resp_ctype = ctype ? ctype : "application/json";
}

static void set_error(lwd_conn *c, int status, const char *code, const char *field,
                      const char *msg)
{
    cJSON *doc = wire_error_json(code, msg, field);
    char *s = doc ? wire_print(doc) : NULL;
    cJSON_Delete(doc);
    if (s)
        http_set_response(c, status, s, strlen(s), RESP_FREE, "application/json");
    else
        http_set_response(c, 503, oom_body, sizeof oom_body - 1, RESP_STATIC, "application/json");
}

static const char *code_for(int status)
{
    switch (status) {
    case 400: return "invalid";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 413: return "too_large";
    case 415: return "unsupported_media_type";
    case 503: return "shutting_down";
    }
    return "error";
}

/* Queue the prepared response on the connection. */
static enum MHD_Result send_prepared(lwd_conn *c)
{
    struct MHD_Response *r;
    enum MHD_ResponseMemoryMode mm =
        c->resp_mode == RESP_STATIC ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE;
    if (!c->resp_set)
        set_error(c, 500, "internal", NULL, "the handler gave no answer");
    r = MHD_create_response_from_buffer(c->resp_len, c->resp_body, mm);
    if (!r) {
        if (c->resp_mode == RESP_FREE)
            free(c->resp_body);
        c->resp_set = 0;
        return MHD_NO;
    }
    c->resp_set = 0; /* the response owns the body now */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, c->resp_ctype);
    if (c->resp_status == 405 && c->allow[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, c->allow);
    if (c->resp_status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                c->auth_kind == AUTH_UNKNOWN
                                    ? "Bearer realm=\"lossweightd\", error=\"invalid_token\""
                                : c->auth_kind == AUTH_MALFORMED
                                    ? "Bearer realm=\"lossweightd\", error=\"invalid_request\""
                                    : "Bearer realm=\"lossweightd\"");
    if (srv.shutting_down)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c->mhd, (unsigned)c->resp_status, r);
    MHD_destroy_response(r);
    uint64_t dt = uv_hrtime() - c->t0;
    metrics_request(route_index(c->rq.route), c->resp_status, dt);
    if (log_enabled(LL_DEBUG)) {
        log_begin(LL_DEBUG, "request");
        log_str("route", route_name(route_index(c->rq.route)));
        if (c->rq.job_id[0])
            log_str("job", c->rq.job_id);
        log_int("status", c->resp_status);
        log_int("us", (long long)(dt / 1000));
        log_end();
    }
    return ret;
}

/* ---- holding answers for the journal ---- */

/* Under --fsync always an answer may depend on journal records not yet on
 * disk (journal_wait_lsn). Its connection stays suspended, in a FIFO
 * ordered by LSN, until the group commit covering them completes
 * (on_durable); then it is resumed and the prepared answer goes out. */
static lwd_conn *gate_head, *gate_tail;

static void gate_unlink(lwd_conn *c)
{
    if (!c->gated)
        return;
    if (c->gate_prev)
        c->gate_prev->gate_next = c->gate_next;
    else
        gate_head = c->gate_next;
    if (c->gate_next)
        c->gate_next->gate_prev = c->gate_prev;
    else
        gate_tail = c->gate_prev;
    c->gate_prev = c->gate_next = NULL;
    c->gated = 0;
}

/* 1 if the prepared answer must wait for the journal (c is queued). */
static int gate_hold(lwd_conn *c)
{
    uint64_t lsn = journal_wait_lsn();
    if (!lsn)
        return 0;
    c->gated = 1;
    c->gate_lsn = lsn;
    c->gate_next = NULL;
    c->gate_prev = gate_tail;
    if (gate_tail)
        gate_tail->gate_next = c;
    else
        gate_head = c;
    gate_tail = c;
    return 1;
}

static void on_durable(uint64_t lsn)
{
    int n = 0;
    while (gate_head && gate_head->gate_lsn <= lsn) {
        lwd_conn *c = gate_head;
        gate_unlink(c);
        MHD_resume_connection(c->mhd);
        n++;
    }
    if (n)
        http_wakeup();
}

/* A waiter got its answer: send it, unless the handler is still running
 * (on_request sends it) or the journal holds it. */
static void waiter_release(lwd_conn *c)
{
    if (!c->suspended || gate_hold(c))
        return;
    MHD_resume_connection(c->mhd);
    http_wakeup();
}

/* ---- the access handler ---- */

static int json_media_type(const char *ct)
{
    static const char json[] = "application/json";
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, json, sizeof json - 1) != 0)
        return 0;
    ct += sizeof json - 1;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

static int auth_refused(const lwd_conn *c)
{
    return c->pre_status == 401 || c->pre_status == 403;
}

static void peer_address(lwd_conn *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c->mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    out[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)n);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)n);
}

/* The bearer token, with a token file: a 401 (no or an unknown token)
 * replaces any routing error -- without a valid token nothing about the
 * paths is told --, a 403 (role, job prefix) is decided on the matched
 * route. Either becomes the request's answer (pre_status); the handler
 * never runs. route: NULL when routing failed. */
static void request_auth(lwd_conn *c, const lwd_route *route)
{
    auth_result ar;
    const char *authz = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
    if (route)
        auth_check(authz, route->role, route->scope, c->rq.job_id, c->rq.job_prefix,
                   sizeof c->rq.job_prefix, &ar);
    else /* authenticate only: the routing error stands if the token is good */
        auth_check(authz, ROLE_READER, SCOPE_ANY, "", c->rq.job_prefix,
                   sizeof c->rq.job_prefix, &ar);
    if (!ar.status)
        return;
    c->pre_status = ar.status;
    c->pre_code = code_for(ar.status);
    c->auth_kind = ar.kind;
    snprintf(c->pre_field, sizeof c->pre_field, "%s", ar.field ? ar.field : "");
    snprintf(c->pre_msg, sizeof c->pre_msg, "%s", ar.message);
    if (log_enabled(LL_INFO)) {
        char peer[INET6_ADDRSTRLEN];
        peer_address(c, peer, sizeof peer);
        log_begin(LL_INFO, ar.status == 401 ? "unauthorized" : "forbidden");
        log_str("route", route_name(route_index(c->rq.route)));
        if (c->rq.job_id[0])
            log_str("job", c->rq.job_id);
        log_str("reason", ar.reason);
        log_str("peer", peer);
        log_end();
    }
}

/* First call of a request: returns 1 if the prepared answer must go out now
 * (before the body is read). */
static int request_begin(lwd_conn *c, const char *url, const char *method)
{
    c->in_request = 1;
    srv.active_requests++;
    c->t0 = uv_hrtime();
    memset(&c->rq, 0, sizeof c->rq);
    c->rq.conn = c;
    c->rq.step = -1;
    c->pre_status = 0;
    c->auth_kind = 0;
    c->allow[0] = '\0';
    c->body_len = c->body_seen = 0;
    c->body_over = 0;
    c->suspended = 0;

    if (srv.shutting_down) {
        set_error(c, 503, "shutting_down", NULL, "the server is shutting down");
        return 1;
    }
    const lwd_route *route = NULL;
    int st = route_match(method, url, &c->rq, &route, c->allow, sizeof c->allow, c->pre_msg,
                         sizeof c->pre_msg, c->pre_field, sizeof c->pre_field);
    if (st) {
        c->pre_status = st;
        c->pre_code = code_for(st);
        if (st != 400) /* 400: a bad {job} or {step} on a known route */
            c->rq.route = NULL;
    }
    if (auth_enabled())
        request_auth(c, st ? NULL : route);
    const char *cl = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end != cl && n > srv.cfg.max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "the body has %llu bytes; the limit is %zu", n,
                     srv.cfg.max_body);
            if (auth_refused(c))
                set_error(c, c->pre_status, c->pre_code, c->pre_field, c->pre_msg);
            else
                set_error(c, 413, "too_large", NULL, msg);
            return 1;
        }
    }
    if (!c->pre_status && route->body) {
        const char *ct = MHD_lookup_connection_value(c->mhd, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_TYPE);
        if (ct && !json_media_type(ct)) {
            c->pre_status = 415;
            c->pre_code = "unsupported_media_type";
            snprintf(c->pre_field, sizeof c->pre_field, "Content-Type");
            snprintf(c->pre_msg, sizeof c->pre_msg, "bodies are application/json, not %.100s",
                     ct);
        }
    }
    return 0;
}

static int body_append(lwd_conn *c, const char *data, size_t n)
{
    c->body_seen += n;
    if (auth_refused(c)) /* drained, never kept; bounded like an oversized one */
        return c->body_seen <= 4 * srv.cfg.max_body + 65536 ? 0 : -1;
    if (c->body_over || c->body_len + n > srv.cfg.max_body) {
        c->body_over = 1;
        /* A chunked body has no length to refuse up front: drain a bounded
         * amount to answer 413 on a live connection, then give up on it. */
        return c->body_seen <= 4 * srv.cfg.max_body + 65536 ? 0 : -1;
    }
    if (c->body_len + n > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 1024;
        while (cap < c->body_len + n)
            cap *= 2;
        if (cap > srv.cfg.max_body)
            cap = srv.cfg.max_body;
        char *b = realloc(c->body, cap);
        if (!b)
            return -1;
        c->body = b;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, data, n);
    c->body_len += n;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    lwd_conn *c = *req_cls;
    (void)cls, (void)version;
    if (!c) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        c = ci ? ci->socket_context : NULL;
        if (!c)
            return MHD_NO;
        *req_cls = c;
        if (request_begin(c, url, method))
            return send_prepared(c);
        return MHD_YES;
    }
    if (*upload_size) {
        int rc = body_append(c, upload, *upload_size);
        *upload_size = 0;
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    if (c->suspended) { /* resumed: the answer is prepared */
        c->suspended = 0;
        return send_prepared(c);
    }
    if (c->body_over && !auth_refused(c)) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body is over the limit of %zu bytes", srv.cfg.max_body);
        set_error(c, 413, "too_large", NULL, msg);
        return send_prepared(c);
    }
    if (c->pre_status) {
        set_error(c, c->pre_status, c->pre_code, c->pre_field, c->pre_msg);
        return send_prepared(c);
    }
    c->rq.body = c->body ? c->body : "";
    c->rq.body_len = c->body_len;
    c->rq.route->handler(&c->rq);
    if (c->rq.waiting || gate_hold(c)) {
        c->suspended = 1;
        MHD_suspend_connection(mc);
        return MHD_YES;
    }
    return send_prepared(c);
}

/* ---- waiting ---- */

static void waiter_unlink(lwd_waiter *w)
{
    lwd_job *job = w->job;
    if (!job)
        return;
    job_waiter_unlink(job, w);
    w->job = NULL;
}

static void on_wait_timeout(uv_timer_t *t)
{
    lwd_conn *c = t->data;
    lwd_waiter *w = &c->w;
    if (!w->job)
        return;
    waiter_answer_json(w, 202, steps_pending_json(w->job, w->step));
}

void req_wait(lwd_req *rq, lwd_job *job, int64_t step, int kind, int64_t rank, int64_t wait_ms)
{
    lwd_conn *c = rq->conn;
    lwd_waiter *w = &c->w;
    w->conn = c;
    w->step = step;
    w->kind = kind;
    w->rank = rank;
    w->job = job;
    job_waiter_link(job, w);
    if (wait_ms >= 0)
        uv_timer_start(&c->timer, on_wait_timeout, (uint64_t)wait_ms, 0);
    rq->waiting = 1;
}

void waiter_answer(lwd_waiter *w, int status, const char *body, size_t len)
{
    lwd_conn *c = w->conn;
    waiter_unlink(w);
    uv_timer_stop(&c->timer);
    http_set_response(c, status, (char *)body, len, RESP_COPY, "application/json");
    c->rq.waiting = 0;
    waiter_release(c);
}

void waiter_answer_json(lwd_waiter *w, int status, cJSON *doc)
{
    char *s = doc ? wire_print(doc) : NULL;
    cJSON_Delete(doc);
    if (!s) {
        waiter_answer_error(w, 503, "out_of_memory", NULL, "out of memory");
        return;
    }
    lwd_conn *c = w->conn;
    waiter_unlink(w);
    uv_timer_stop(&c->timer);
    http_set_response(c, status, s, strlen(s), RESP_FREE, "application/json");
    c->rq.waiting = 0;
    waiter_release(c);
}

void waiter_answer_error(lwd_waiter *w, int status, const char *code, const char *field,
                         const char *message)
{
    lwd_conn *c = w->conn;
    waiter_unlink(w);
    uv_timer_stop(&c->timer);
    set_error(c, status, code, field, message);
    c->rq.waiting = 0;
    waiter_release(c);
}

const char *http_query(lwd_conn *c, const char *name)
{
    return MHD_lookup_connection_value(c->mhd, MHD_GET_ARGUMENT_KIND, name);
}

/* ---- connections ---- */

static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    lwd_conn *c = *req_cls;
    (void)cls, (void)mc, (void)toe;
    if (!c)
        return;
    waiter_unlink(&c->w);
    gate_unlink(c);
    uv_timer_stop(&c->timer);
    if (c->resp_set && c->resp_mode == RESP_FREE)
        free(c->resp_body);
    c->resp_set = 0;
    if (c->in_request) {
        c->in_request = 0;
        srv.active_requests--;
    }
    c->suspended = 0;
    c->body_len = 0;
    if (c->body_cap > 65536) { /* do not keep a big body around on an idle connection */
        free(c->body);
        c->body = NULL;
        c->body_cap = 0;
    }
    *req_cls = NULL;
}

static void conn_free(uv_handle_t *h)
{
    lwd_conn *c = h->data;
    free(c->body);
    free(c);
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        lwd_conn *c = calloc(1, sizeof *c);
        if (!c)
            return; /* the access handler refuses a connection without context */
        c->mhd = mc;
        uv_timer_init(srv.loop, &c->timer);
        c->timer.data = c;
        *socket_context = c;
        srv.connections++;
        return;
    }
    lwd_conn *c = *socket_context;
    if (!c)
        return;
    waiter_unlink(&c->w);
    gate_unlink(c);
    if (c->in_request) {
        c->in_request = 0;
        srv.active_requests--;
    }
    if (c->resp_set && c->resp_mode == RESP_FREE)
        free(c->resp_body);
    c->resp_set = 0;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_free);
    *socket_context = NULL;
    srv.connections--;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decoding of the path and query arguments (MHD_OPTION_UNESCAPE_CALLBACK):
 * MHD's own decoder, except that %00 and %2F stay encoded. Decoded, %00
 * would end the C string early ("/v1/jobs/a%00b" would name job "a") and
 * %2F would split a segment ("/v1/jobs/a%2Fstate" would reach job a's
 * state); left as they are, the '%' makes such a job id invalid (400). */
static size_t unescape_path(void *cls, struct MHD_Connection *mc, char *s)
{
    char *r = s, *w = s;
    (void)cls, (void)mc;
    while (*r) {
        int hi = r[0] == '%' && r[1] ? hexval(r[1]) : -1;
        int lo = hi >= 0 && r[2] ? hexval(r[2]) : -1;
        int byte = hi * 16 + lo;
        if (hi >= 0 && lo >= 0 && byte != 0 && byte != '/') {
            *w++ = (char)byte;
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_msg(LL_WARN, "mhd", msg);
}

/* ---- start and stop ---- */

int http_start(void)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    const struct sockaddr *sa;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    /* TLS options go in an array: present only with --tls-cert/--tls-key.
     * TLS 1.2 and 1.3 only. */
    struct MHD_OptionItem tls_opts[4] = {{MHD_OPTION_END, 0, NULL}};
    if (tls_enabled()) {
        flags |= MHD_USE_TLS;
        tls_opts[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)tls_cert_pem()};
        tls_opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)tls_key_pem()};
        tls_opts[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                              (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
        tls_opts[3] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    memset(&sin, 0, sizeof sin);
    memset(&sin6, 0, sizeof sin6);
    if (srv.cfg.ipv6) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)srv.cfg.listen_port);
        if (inet_pton(AF_INET6, srv.cfg.listen_host, &sin6.sin6_addr) != 1)
            goto bad_addr;
        sa = (const struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)srv.cfg.listen_port);
        if (inet_pton(AF_INET, srv.cfg.listen_host, &sin.sin_addr) != 1)
            goto bad_addr;
        sa = (const struct sockaddr *)&sin;
    }
    /* The socket systemd passed (socket activation), or one of our own. */
    struct MHD_OptionItem sock_opts[2] = {
        srv.cfg.listen_fd >= 0
            ? (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, srv.cfg.listen_fd, NULL}
            : (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa},
        {MHD_OPTION_END, 0, NULL}};
    srv.mhd = MHD_start_daemon(
        flags, (uint16_t)srv.cfg.listen_port, NULL, NULL, on_request, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_path, NULL,
        MHD_OPTION_ARRAY, sock_opts,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv.cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv.cfg.idle_timeout_s,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)LWD_MHD_POOL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (!srv.mhd) {
        log_begin(LL_ERROR, "listen_failed");
        log_str("host", srv.cfg.listen_host);
        log_int("port", srv.cfg.listen_port);
        log_str("msg", "libmicrohttpd could not start (address in use or not local?)");
        log_end();
        return -1;
    }
    const union MHD_DaemonInfo *pi = MHD_get_daemon_info(srv.mhd, MHD_DAEMON_INFO_BIND_PORT);
    const union MHD_DaemonInfo *ei = MHD_get_daemon_info(srv.mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (!pi || !ei) {
        log_msg(LL_ERROR, "listen_failed", "libmicrohttpd gave no port or epoll fd");
        MHD_stop_daemon(srv.mhd);
        srv.mhd = NULL;
        return -1;
    }
    snprintf(srv.bound, sizeof srv.bound, srv.cfg.ipv6 ? "[%s]:%u" : "%s:%u",
             srv.cfg.listen_host, (unsigned)pi->port);
    uv_poll_init(srv.loop, &mhd_poll, ei->epoll_fd);
    uv_timer_init(srv.loop, &mhd_timer);
    uv_idle_init(srv.loop, &mhd_idle);
    handles_open = 1;
    journal_set_durable_cb(on_durable);
    uv_poll_start(&mhd_poll, UV_READABLE, on_mhd_poll);
    mhd_service();
    return 0;

bad_addr:
    log_begin(LL_ERROR, "bad_listen_address");
    log_str("host", srv.cfg.listen_host);
    log_end();
    return -1;
}

void http_quiesce(void)
{
    if (!srv.mhd)
        return;
    MHD_socket fd = MHD_quiesce_daemon(srv.mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void http_stop(void)
{
    if (handles_open) {
        uv_poll_stop(&mhd_poll);
        uv_close((uv_handle_t *)&mhd_poll, NULL);
        uv_close((uv_handle_t *)&mhd_timer, NULL);
        uv_close((uv_handle_t *)&mhd_idle, NULL);
        handles_open = 0;
    }
    if (srv.mhd) {
        struct MHD_Daemon *d = srv.mhd;
        srv.mhd = NULL;
        MHD_stop_daemon(d);
    }
}
