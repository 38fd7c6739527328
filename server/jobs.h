/*
 * jobs.h -- a job as the daemon holds it: the library job (lw_job), the
 * spec, the reports of its open steps, its decided steps (history), its
 * ranks' positions and the requests waiting on it.
 *
 * A step's life: the first report of step s opens it (lwd_pending); each
 * rank's report is checked (wire_parse_report, lw_job_check) and recorded;
 * when world_size ranks have reported, or the barrier timeout finds at least
 * min_ranks, the reports are averaged in rank order, lw_job_step() is called
 * once, and the decision goes into the history ring with its body printed
 * once, so every rank is answered with the same bytes. Deciding step s
 * closes every open step below s (those ranks moved on without it).
 *
 * Reports are stored in one layout, whatever the wire order:
 *   losses[T] | grad_norms[T] | gram[T*T] | losses_after[T]
 * with a bit per part saying whether it is present.
 */
#ifndef LWD_JOBS_H
#define LWD_JOBS_H

#include "server.h"

enum { HAS_LOSSES = 1u, HAS_GRAD_NORMS = 2u, HAS_GRAM = 4u, HAS_LOSSES_AFTER = 8u };

/* One rank's report of one open step. */
typedef struct lwd_report {
    int64_t epoch;     /* -1: absent */
    double samples;    /* 1 when absent */
    int has_samples;
    unsigned has;      /* HAS_* */
    uint64_t digest;   /* report_digest() */
    double data[];     /* job->rep_len doubles in the layout above */
} lwd_report;

/* An open (undecided) step. */
typedef struct lwd_pending {
    struct lwd_pending *next; /* the job's list, ascending step */
    lwd_job *job;
    int64_t step;
    int nranks;               /* reports recorded */
    lwd_report **by_rank;     /* world_size slots */
    uv_timer_t *timer;        /* barrier timeout; NULL until armed once */
    int timer_armed;
    int failed;               /* lw_job_step failed on the mean of these reports */
    lw_error err;
} lwd_pending;

/* A decided step. */
typedef struct lwd_decision {
    int64_t step;
    int64_t epoch;    /* of the mean input; -1 absent */
    unsigned has;     /* parts of the mean input */
    int nranks;
    double *data;     /* mean input (rep_len, report layout) then T weights */
    uint8_t *present; /* bitmap of ranks, world_size bits; NULL: every rank */
    char *body;       /* the decision document, printed once (NULL after recovery
                         until hist_body() prints it) */
    size_t body_len;
} lwd_decision;

/* The ring of decided steps, oldest first; grows up to `max`. */
typedef struct lwd_history {
    lwd_decision *v;
    size_t cap, max, head, len;
} lwd_history;

#define LWD_RANK_RECENT 8

/* A rank's position: its last reported step and the digests of its last
 * few reports, so retries are recognised and conflicting resends refused. */
typedef struct lwd_rank {
    int64_t last_step; /* -1: none */
    int64_t rstep[LWD_RANK_RECENT];
    uint64_t rdigest[LWD_RANK_RECENT];
    unsigned n, next;
} lwd_rank;

struct lwd_job {
    char id[LWD_JOB_ID_MAX + 1];
    lwd_job *hnext;         /* hash chain */
    wire_spec spec;
    lw_job *lw;
    char *spec_json;        /* canonical spec document (wire_spec_to_json) */
    size_t spec_len;
    size_t T;
    size_t rep_len;         /* doubles in a report: 3T + T*T */
    int world, min_ranks, sync;
    int64_t barrier_timeout_ms;
    int64_t last_decided;   /* -1: none */
    uint64_t n_decided;     /* steps decided by this daemon (or restored) */
    lwd_history hist;
    lwd_pending *open;      /* ascending step */
    size_t n_open;
    lwd_rank *ranks;        /* world */
    lwd_waiter *waiters;    /* requests suspended on this job */
    size_t n_waiting_reports, n_waiting_polls;
    double *parse_buf;      /* wire_report_buf_len(T) */
    double *mean;           /* rep_len + T */
    uint64_t created_ms;
};

/* ---- jobs.c ---- */

lwd_job *jobs_find(const char *id);
size_t jobs_count(void);
/* Build a job (not inserted) from a spec document. 0 or a lw code with err. */
int job_build(const char *id, const cJSON *spec_doc, lwd_job **out, lw_error *err);
void jobs_insert(lwd_job *job);
void jobs_remove(lwd_job *job);
/* Frees a job that is not in the table; its waiters must have been answered. */
void job_free(lwd_job *job);
/* Answer every waiter of a job with an error (delete, restore, shutdown). */
void job_fail_waiters(lwd_job *job, int status, const char *code, const char *message);
/* The job's list of waiting requests (http.c links and unlinks). */
void job_waiter_link(lwd_job *job, lwd_waiter *w);
void job_waiter_unlink(lwd_job *job, lwd_waiter *w);
/* Every job, sorted by id, into a malloc'd array (*n entries). */
lwd_job **jobs_sorted(size_t *n);
/* Free every job (at exit, after http_stop(): no connection is left). */
void jobs_free_all(void);
/* Totals for /metrics. */
void jobs_totals(size_t *jobs, size_t *open_steps, size_t *waiting_reports,
                 size_t *waiting_polls);

/* GET /v1/jobs/{job} and the list's one-line status. */
cJSON *job_view_json(const lwd_job *job);
cJSON *job_summary_json(const lwd_job *job);

/* ---- steps.c ---- */

/* POST /v1/jobs/{job}/reports: check, record, maybe decide, answer or wait. */
void steps_report(lwd_req *rq, lwd_job *job, const cJSON *doc, int64_t wait_ms);
/* GET /v1/jobs/{job}/steps/{step}: answer or long-poll. */
void steps_get(lwd_req *rq, lwd_job *job, int64_t step, int64_t wait_ms);
/* The pending document {"job","step","status":"pending","ranks","world_size"}. */
cJSON *steps_pending_json(const lwd_job *job, int64_t step);
lwd_pending *steps_find_open(const lwd_job *job, int64_t step);
/* Record a checked report into an open step (creating it). Used by the
 * report path and by restore. NULL on allocation failure. */
lwd_pending *steps_record(lwd_job *job, int64_t rank, const wire_report *r, uint64_t digest);
/* Does r carry the inputs and epoch of the open step p's first report (the
 * shape every report of a step shares)? 1 also when p is NULL or empty. */
int steps_report_fits(const lwd_pending *p, const wire_report *r);
uint64_t report_digest(const lwd_job *job, const wire_report *r);
void rank_remember(lwd_rank *rk, int64_t step, uint64_t digest);
/* Free an open step (closes its timer asynchronously). */
void pending_free(lwd_pending *p);
/* Arm the barrier timeout of an open step if the job is in barrier mode. */
void steps_arm_timer(lwd_job *job, lwd_pending *p);
/* A decision body: {"job","step","weights","method","ranks","status":"decided"}. */
char *decision_body(const lwd_job *job, int64_t step, const double *w, int nranks, size_t *len);
/* Store a decided step in the history (takes data/present/body). */
int steps_store_decision(lwd_job *job, lwd_decision *d);

/* Recovery (persist.c): apply a journaled report, or a decision from the
 * ranks present (present NULL: the ranks recorded), the way the live path
 * did -- without its checks, answers or journaling. 0, or -1 with msg when
 * the record does not fit the job (the journal and the state disagree). */
int steps_replay_report(lwd_job *job, const wire_report *r, char *msg, size_t len);
int steps_replay_decide(lwd_job *job, int64_t step, const uint8_t *present, char *msg,
                        size_t len);

/* ---- history.c ---- */

void hist_init(lwd_history *h, size_t max);
void hist_clear(lwd_history *h);
/* Append (takes ownership of d's buffers); evicts the oldest when full.
 * 0, or -1 on allocation failure (d untouched). */
int hist_push(lwd_history *h, lwd_decision *d);
const lwd_decision *hist_at(const lwd_history *h, size_t i); /* 0 = oldest */
const lwd_decision *hist_find(const lwd_history *h, int64_t step);
const lwd_decision *hist_latest(const lwd_history *h);
/* The decision document of d (the bytes every rank is answered with).
 * Printed when the step is decided; for steps brought back by recovery,
 * on first use (most are never asked for). Never NULL (out of memory here
 * is fatal, as when deciding). */
const char *hist_body(const lwd_job *job, const lwd_decision *d, size_t *len);
/* Index of the first entry with step >= s (h->len if none). */
size_t hist_lower_bound(const lwd_history *h, int64_t s);
/* One history item: step, input (the mean, replayable), weights, ranks. */
cJSON *hist_item_json(const lwd_job *job, const lwd_decision *d);
/* The library input a decision's mean represents (borrowing d->data). */
lw_input decision_input(const lwd_job *job, const lwd_decision *d);

/* ---- state.c ---- */

/* The job as one document; decided_only: as of its last decided step (no
 * open steps, rank positions wound back to it). */
cJSON *state_export(const lwd_job *job, int decided_only);
/* Build a complete job from an export document; nothing shared with any
 * existing job. 0 or a lw code with err. */
int state_import(const char *id, const cJSON *doc, lwd_job **out, lw_error *err);

#endif /* LWD_JOBS_H */
