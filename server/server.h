/*
 * server.h -- what the files of lossweightd share: the configuration, the
 * one server object, requests and how handlers answer them, the route
 * table, and the body parser.
 *
 * Threading: none. Every function here runs on the libuv loop thread, which
 * also runs libmicrohttpd (external-event-loop mode) and owns all job state.
 * A request that must wait (a barrier, a long-poll) is a *waiter*: its
 * connection is suspended with MHD_suspend_connection and resumed with the
 * answer already prepared (waiter_answer), never polled.
 *
 * Files:
 *   main.c      flags, start-up, signals, orderly shutdown
 *   http.c      libmicrohttpd under libuv; connections, bodies, suspend/resume
 *   router.c    the route table, matching, reply helpers, query parameters
 *   body.c      JSON bodies: nesting limit, trailing bytes, then cJSON
 *   jobs.c      the job table, job creation, views of a job
 *   steps.c     reports, rank aggregation, deciding steps, barrier timeouts
 *   history.c   the ring of decided steps
 *   state.c     whole-job export and restore
 *   api_*.c     the HTTP handlers (one row of the route table each)
 *   auth.c      bearer tokens: the token file, who may call what
 *   tls.c       the TLS certificate and key (libmicrohttpd's GnuTLS support)
 *   metrics.c   Prometheus counters and the /metrics text
 *   journal.c   the data directory: journal, group commit, snapshots, recovery
 *   persist.c   what journal records and snapshot entries hold; replaying them
 *   recovery.c  reading a data directory as start-up does (also `lossweight check`)
 *   recovery_stubs.c  not in the daemon: stands in for the loop-side files
 *               where recovery runs without them (the tool, the fuzz target)
 *   crc32c.c    the records' checksum
 *   notify.c    sd_notify for Type=notify, sd_listen_fds for socket activation
 *   log.c       operator logs
 */
#ifndef LWD_SERVER_H
#define LWD_SERVER_H

#include "log.h"
#include "lossweight.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define LWD_VERSION LW_VERSION
#define LWD_JOB_ID_MAX 128

/* Defaults of lossweightd's flags that `lossweight check` needs too. */
#define LWD_DEFAULT_MAX_JOBS 1024
#define LWD_DEFAULT_HISTORY 10000
#define LWD_DEFAULT_MAX_AHEAD 1024
#define LWD_JSON_MAX_DEPTH 32  /* bracket nesting a body may have (checked before cJSON) */
#define LWD_WAIT_MS_MAX 600000 /* longest ?wait_ms= */

/* ---- configuration (flags; defaults in main.c) ---- */

typedef struct lwd_config {
    char listen_host[64]; /* "127.0.0.1", "::1", "0.0.0.0" */
    int listen_port;      /* 0: pick a free one */
    int ipv6;
    int listen_set;       /* --listen was given */
    int listen_fd;        /* >= 0: the socket systemd passed (then host/port are its address) */
    const char *ready_file;
    const char *data_dir;
    int log_level, log_format;
    size_t max_body;        /* bytes */
    size_t max_jobs;
    size_t max_tasks;
    size_t max_world;       /* ranks per job */
    size_t max_connections;
    size_t history;         /* decided steps kept per job */
    int64_t max_ahead;      /* a report may run this many steps past the last decided one */
    unsigned idle_timeout_s;       /* keep-alive connections idle this long are closed */
    unsigned shutdown_timeout_ms;  /* SIGTERM: exit after at most this long */
    /* durability (journal.c) */
    int fsync_mode;                /* JOURNAL_FSYNC_* */
    unsigned fsync_interval_ms;    /* batch: fdatasync at most this often */
    unsigned snapshot_interval_s;  /* snapshot this often if anything changed (0: never) */
    uint64_t journal_max_bytes;    /* snapshot once the journal grows past this (0: never) */
    int truncate_corrupt;          /* start-up: truncate at mid-journal corruption */
    /* security (auth.c, tls.c) */
    const char *token_file;        /* bearer tokens; NULL: no tokens, no auth */
    const char *tls_cert, *tls_key; /* PEM files; both or neither */
    int allow_remote;              /* listen beyond loopback without tokens */
} lwd_config;

/* ---- the server ---- */

typedef struct lwd_server {
    lwd_config cfg;
    wire_limits limits;
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    char bound[96];        /* "ADDR:PORT" actually bound */
    int shutting_down;     /* SIGTERM seen: no new work, answer 503 */
    uint64_t start_ns;     /* uv_hrtime() at start */
    size_t connections;    /* open HTTP connections */
    size_t active_requests; /* requests begun and not yet completed */
    char *methods_body;    /* GET /v1/methods, printed once */
    size_t methods_len;
} lwd_server;

extern lwd_server srv;

/* ---- requests ---- */

typedef struct lwd_conn lwd_conn;
typedef struct lwd_route lwd_route;
typedef struct lwd_job lwd_job;

enum { WAIT_REPORT = 1, WAIT_POLL = 2 };

/* A suspended request waiting for a step of a job to be decided. Lives in
 * its connection; linked into the job's waiter list while waiting. */
typedef struct lwd_waiter {
    lwd_conn *conn;
    lwd_job *job;     /* NULL when not waiting */
    int64_t step;
    int kind;         /* WAIT_REPORT or WAIT_POLL */
    int64_t rank;     /* WAIT_REPORT: the reporting rank */
    struct lwd_waiter *prev, *next;
} lwd_waiter;

/* One request as handlers see it. Path parameters are filled by the router. */
typedef struct lwd_req {
    lwd_conn *conn;
    const lwd_route *route;
    char job_id[LWD_JOB_ID_MAX + 1]; /* {job}, "" when the route has none */
    int64_t step;                    /* {step}, -1 when the route has none */
    /* the job-id prefix the request's bearer token is limited to ("": every
     * job, and always "" without a token file); copied, so a SIGHUP reload
     * during the request does not change it */
    char job_prefix[LWD_JOB_ID_MAX + 1];
    const char *body;                /* the raw body (not NUL-terminated) */
    size_t body_len;
    int answered; /* a reply_* was called */
    int waiting;  /* req_wait was called */
} lwd_req;

typedef void (*lwd_handler)(lwd_req *rq);

/* Who may call a route when the daemon has a token file (auth.c). A role
 * allows everything a lower one does; ROLE_OPEN needs no token at all. */
enum { ROLE_OPEN = -1, ROLE_READER = 0, ROLE_TRAINER = 1, ROLE_ADMIN = 2 };

/* What a token's job-id prefix means for a route:
 *   SCOPE_JOB     the route's {job} must start with the prefix (else 403);
 *   SCOPE_LIST    any token; the handler shows only jobs under the prefix;
 *   SCOPE_ANY     any token; nothing job-specific is shown;
 *   SCOPE_DAEMON  figures over every job: tokens with a prefix get 403. */
enum { SCOPE_JOB = 0, SCOPE_LIST = 1, SCOPE_ANY = 2, SCOPE_DAEMON = 3 };

struct lwd_route {
    const char *verb;    /* "GET", "PUT", "POST", "DELETE" */
    const char *pattern; /* "/v1/jobs/{job}/steps/{step}" */
    lwd_handler handler;
    const char *name;    /* metrics label */
    int role;            /* ROLE_*: the least role a token needs */
    int scope;           /* SCOPE_*: how the token's job prefix applies */
    int body;            /* 1: expects a JSON body */
};

/* router.c */
size_t route_count(void);
const char *route_name(size_t i); /* i == route_count(): "unknown" */
size_t route_index(const lwd_route *r);
/* Match a verb and path: 0 and *route, or an HTTP status (404, 405 with
 * `allow` filled, 400 for a bad {job} or {step}) with a message. */
int route_match(const char *verb, const char *path, lwd_req *rq, const lwd_route **route,
                char *allow, size_t allow_len, char *msg, size_t msg_len, char *field,
                size_t field_len);

/* names.c. A job id is 1 to LWD_JOB_ID_MAX characters of [A-Za-z0-9._-]. */
int job_id_char(char c);
int job_id_valid(const char *id);

/* Answering. Exactly one reply_* (or req_wait) per request. */
void reply_json(lwd_req *rq, int status, cJSON *doc); /* takes doc */
void reply_owned(lwd_req *rq, int status, char *body, size_t len, const char *ctype); /* takes body */
void reply_copy(lwd_req *rq, int status, const char *body, size_t len);
void reply_error(lwd_req *rq, int status, const char *code, const char *field, const char *fmt,
                 ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* A library error (code -> status through wire_http_status). */
void reply_lw_error(lwd_req *rq, const lw_error *err);

/* names.c: an integer as a JSON number printed exactly (cJSON prints
 * through a double and an int). */
cJSON *json_int(int64_t v);
/* A double printed so it reads back to the same bits (wire.c's printer). */
cJSON *json_double(double v);

/* A query parameter (NULL when absent). */
const char *req_query(const lwd_req *rq, const char *name);
/* An integer query parameter in [lo, hi]; absent: def. On a bad value
 * answers 400 and returns -1. */
int req_query_int(lwd_req *rq, const char *name, int64_t lo, int64_t hi, int64_t def,
                  int64_t *out);

/* http.c */
int http_start(void);  /* listen, hook MHD into the loop; 0 or -1 (logged) */
void http_quiesce(void); /* stop accepting (SIGTERM) */
void http_stop(void);  /* close every connection and the daemon */
void http_wakeup(void); /* make sure MHD_run runs again soon (after a resume) */
/* Suspend the request until waiter_answer() or the wait_ms deadline
 * (wait_ms < 0: none). The waiter is linked into job's list. */
void req_wait(lwd_req *rq, lwd_job *job, int64_t step, int kind, int64_t rank, int64_t wait_ms);
/* Answer a waiting request: copies body, unlinks the waiter, resumes the
 * connection. */
void waiter_answer(lwd_waiter *w, int status, const char *body, size_t len);
void waiter_answer_json(lwd_waiter *w, int status, cJSON *doc); /* takes doc */
void waiter_answer_error(lwd_waiter *w, int status, const char *code, const char *field,
                         const char *message);

/* http.c internals for router.c: the prepared response of a request
 * (RESP_FREE takes a malloc'd body, RESP_COPY copies, RESP_STATIC borrows
 * memory that lives forever) and query parameters. */
enum { RESP_FREE = 0, RESP_COPY = 1, RESP_STATIC = 2 };
void http_set_response(lwd_conn *c, int status, char *body, size_t len, int mode,
                       const char *ctype);
const char *http_query(lwd_conn *c, const char *name);

/* main.c: finish the shutdown once no request is in flight. */
void server_check_shutdown(void);

/* body.c: parse a request body as exactly one JSON value. Rejects an empty
 * body, nesting deeper than LWD_JSON_MAX_DEPTH (before cJSON sees it),
 * invalid JSON and trailing bytes. NULL with err filled on failure; the
 * caller deletes the tree. */
cJSON *body_parse(const char *buf, size_t len, lw_error *err);
/* The depth check alone: max bracket nesting outside strings. */
int body_json_depth(const char *buf, size_t len);

/* notify.c: sd_notify(3) without libsystemd; no-op without NOTIFY_SOCKET. */
void notify_systemd(const char *state);
/* notify.c: the listening socket systemd passed (socket activation:
 * LISTEN_PID is ours, LISTEN_FDS is 1): its fd, non-blocking and
 * close-on-exec, with its address (AF_INET or AF_INET6) in *addr; -1 if
 * none was passed; -2 with err filled if what was passed is not one
 * listening TCP socket. Unsets LISTEN_* when they are ours. */
struct sockaddr_storage;
int systemd_listen_fd(struct sockaddr_storage *addr, char *err, size_t errlen);

/* Milliseconds since the server started (monotonic). */
uint64_t now_ms(void);

#endif /* LWD_SERVER_H */
