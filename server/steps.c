/*
 * steps.c -- reports, rank aggregation and deciding steps.
 *
 * A report (POST /v1/jobs/{job}/reports) is judged in this order, and every
 * refusal happens before anything is recorded:
 *
 *   1. parse (wire_parse_report) and rank in [0, world_size)        400
 *   2. the same (rank, step) seen before: same numbers -> the same
 *      answer again (a retry); other numbers                        409
 *   3. a rank's steps must increase                                 409
 *   4. a step already decided: the stored decision (a late rank is
 *      answered, not counted); closed undecided or older than the
 *      history kept                                                 410
 *   5. more than --max-ahead steps past the last decided one        429
 *   6. lw_job_check against the job (what the method needs, ranges)  400
 *   7. all reports of a step carry the same inputs and epoch        409
 *   8. the journal writes it (journal.c; under --fsync always the
 *      answer waits for it to be on disk)                           503
 *
 * Then it is recorded in the open step. When world_size ranks have
 * reported, or the barrier timeout (armed at the step's first report,
 * re-armed by the next report after a 504) finds at least min_ranks, the
 * step is decided: the mean is "fixed arithmetic" (DESIGN.md): for each
 * number, 0.0 plus samples_r * x_r over ranks in increasing rank order,
 * divided by the sum of samples_r accumulated in the same order (samples is
 * 1 when absent, so without samples this is the plain mean bit for bit).
 * lw_job_step() runs once; its decision body is printed once and every
 * waiting rank is answered with those bytes. Deciding step s closes every
 * open step below s: its ranks moved on, and the method must see steps in
 * order.
 *
 * If lw_job_step() fails on the mean (a solver that did not converge),
 * every waiting rank gets the error, the step stays open and undecided, a
 * retry gets the same error, and a new report of that step tries again.
 *
 * Retries are recognised by a 64-bit digest of the parsed report kept for
 * each rank's last LWD_RANK_RECENT steps.
 *
 * Journaled (journal.h, before anything changes): each report recorded, and
 * each late report answered with a decision made without it (the rank's
 * position moves); a decision from a subset of the ranks (barrier timeout),
 * before the method steps. Recovery replays these through
 * steps_replay_report() and steps_replay_decide(), the same code without the
 * checks and the answers, so a restarted daemon holds the same bits.
 */
#include "jobs.h"
#include "journal.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reports ---- */

static unsigned report_has(const wire_report *r)
{
    return (r->losses ? HAS_LOSSES : 0) | (r->grad_norms ? HAS_GRAD_NORMS : 0) |
           (r->gram ? HAS_GRAM : 0) | (r->losses_after ? HAS_LOSSES_AFTER : 0);
}

static uint64_t mix(uint64_t h, uint64_t x)
{
    h ^= x;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static uint64_t mix_doubles(uint64_t h, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t b;
        memcpy(&b, &v[i], sizeof b);
        h = mix(h, b);
    }
    return h;
}

uint64_t report_digest(const lwd_job *job, const wire_report *r)
{
    size_t T = job->T;
    uint64_t sb, h = 0x6a09e667f3bcc908ull;
    memcpy(&sb, &r->samples, sizeof sb);
    h = mix(h, (uint64_t)r->step);
    h = mix(h, (uint64_t)r->epoch);
    h = mix(h, (uint64_t)r->has_samples);
    h = mix(h, sb);
    h = mix(h, report_has(r));
    if (r->losses)
        h = mix_doubles(h, r->losses, T);
    if (r->grad_norms)
        h = mix_doubles(h, r->grad_norms, T);
    if (r->gram)
        h = mix_doubles(h, r->gram, T * T);
    if (r->losses_after)
        h = mix_doubles(h, r->losses_after, T);
    /* final avalanche (splitmix64) */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

void rank_remember(lwd_rank *rk, int64_t step, uint64_t digest)
{
    rk->rstep[rk->next] = step;
    rk->rdigest[rk->next] = digest;
    rk->next = (rk->next + 1) % LWD_RANK_RECENT;
    if (rk->n < LWD_RANK_RECENT)
        rk->n++;
    if (step > rk->last_step)
        rk->last_step = step;
}

static int rank_lookup(const lwd_rank *rk, int64_t step, uint64_t *digest)
{
    for (unsigned i = 0; i < rk->n; i++)
        if (rk->rstep[i] == step) {
            *digest = rk->rdigest[i];
            return 1;
        }
    return 0;
}

/* ---- open steps ---- */

lwd_pending *steps_find_open(const lwd_job *job, int64_t step)
{
    for (lwd_pending *p = job->open; p && p->step <= step; p = p->next)
        if (p->step == step)
            return p;
    return NULL;
}

static lwd_pending *pending_new(lwd_job *job, int64_t step)
{
    lwd_pending *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->by_rank = calloc((size_t)job->world, sizeof *p->by_rank);
    if (!p->by_rank) {
        free(p);
        return NULL;
    }
    p->job = job;
    p->step = step;
    lwd_pending **at = &job->open;
    while (*at && (*at)->step < step)
        at = &(*at)->next;
    p->next = *at;
    *at = p;
    job->n_open++;
    return p;
}

static void pending_unlink(lwd_job *job, lwd_pending *p)
{
    for (lwd_pending **at = &job->open; *at; at = &(*at)->next)
        if (*at == p) {
            *at = p->next;
            job->n_open--;
            p->next = NULL;
            return;
        }
}

static void free_handle(uv_handle_t *h) { free(h); }

void pending_free(lwd_pending *p)
{
    if (!p)
        return;
    for (int r = 0; r < p->job->world; r++)
        free(p->by_rank[r]);
    free(p->by_rank);
    if (p->timer) {
        p->timer->data = NULL;
        uv_close((uv_handle_t *)p->timer, free_handle);
    }
    free(p);
}

/* The first report of an open step fixes its shape (inputs and epoch). */
static const lwd_report *pending_first(const lwd_pending *p)
{
    for (int r = 0; r < p->job->world; r++)
        if (p->by_rank[r])
            return p->by_rank[r];
    return NULL;
}

int steps_report_fits(const lwd_pending *p, const wire_report *r)
{
    const lwd_report *f = p ? pending_first(p) : NULL;
    return !f || (f->has == report_has(r) && f->epoch == r->epoch);
}

/* Journal a report before it changes anything; 0, or -1 with the 503
 * answered. */
static int journal_report(lwd_req *rq, const lwd_job *job, const wire_report *r)
{
    journal_event ev = {.kind = JOURNAL_REPORT, .job = job->id, .step = r->step, .rank = r->rank,
                        .report = r, .tasks = job->T};
    if (journal_append(&ev) == 0)
        return 0;
    reply_error(rq, 503, "unavailable", NULL, "the journal refused the report: %s",
                journal_error());
    return -1;
}

lwd_pending *steps_record(lwd_job *job, int64_t rank, const wire_report *r, uint64_t digest)
{
    size_t T = job->T;
    lwd_pending *p = steps_find_open(job, r->step);
    int fresh = 0;
    if (!p) {
        if (!(p = pending_new(job, r->step)))
            return NULL;
        fresh = 1;
    }
    lwd_report *rep = malloc(sizeof *rep + job->rep_len * sizeof(double));
    if (!rep) {
        if (fresh) {
            pending_unlink(job, p);
            pending_free(p);
        }
        return NULL;
    }
    rep->epoch = r->epoch;
    rep->samples = r->samples;
    rep->has_samples = r->has_samples;
    rep->has = report_has(r);
    rep->digest = digest;
    memset(rep->data, 0, job->rep_len * sizeof(double));
    if (r->losses)
        memcpy(rep->data, r->losses, T * sizeof(double));
    if (r->grad_norms)
        memcpy(rep->data + T, r->grad_norms, T * sizeof(double));
    if (r->gram)
        memcpy(rep->data + 2 * T, r->gram, T * T * sizeof(double));
    if (r->losses_after)
        memcpy(rep->data + 2 * T + T * T, r->losses_after, T * sizeof(double));
    p->by_rank[rank] = rep;
    p->nranks++;
    p->failed = 0;
    rank_remember(&job->ranks[rank], r->step, digest);
    return p;
}

/* ---- answers ---- */

cJSON *steps_pending_json(const lwd_job *job, int64_t step)
{
    const lwd_pending *p = steps_find_open(job, step);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", job->id);
    cJSON_AddItemToObject(o, "step", json_int(step));
    cJSON_AddStringToObject(o, "status", "pending");
    cJSON_AddItemToObject(o, "ranks", json_int(p ? p->nranks : 0));
    cJSON_AddItemToObject(o, "world_size", json_int(job->world));
    return o;
}

char *decision_body(const lwd_job *job, int64_t step, const double *w, int nranks, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", job->id);
    cJSON_AddItemToObject(o, "step", json_int(step));
    cJSON_AddItemToObject(o, "weights", wire_doubles(w, job->T));
    cJSON_AddStringToObject(o, "method", lw_job_method(job->lw)->name);
    cJSON_AddItemToObject(o, "ranks", json_int(nranks));
    cJSON_AddStringToObject(o, "status", "decided");
    char *s = wire_print(o);
    cJSON_Delete(o);
    *len = s ? strlen(s) : 0;
    return s;
}

/* Answer waiters of `step` (kind 0: every kind). */
static void answer_step_waiters(lwd_job *job, int64_t step, int kind, int status,
                                const char *body, size_t len)
{
    lwd_waiter *w = job->waiters, *next;
    for (; w; w = next) {
        next = w->next;
        if (w->step == step && (!kind || w->kind == kind))
            waiter_answer(w, status, body, len);
    }
}

static void answer_step_waiters_error(lwd_job *job, int64_t step, int kind, int status,
                                      const char *code, const char *field, const char *msg)
{
    lwd_waiter *w = job->waiters, *next;
    for (; w; w = next) {
        next = w->next;
        if (w->step == step && (!kind || w->kind == kind))
            waiter_answer_error(w, status, code, field, msg);
    }
}

/* ---- deciding ---- */

int steps_store_decision(lwd_job *job, lwd_decision *d)
{
    if (hist_push(&job->hist, d) != 0)
        return -1;
    job->last_decided = hist_latest(&job->hist)->step;
    return 0;
}

/* Close open steps below `step` (a later step was decided first). */
static void close_open_below(lwd_job *job, int64_t step)
{
    uint64_t n = 0;
    while (job->open && job->open->step < step) {
        lwd_pending *q = job->open;
        char msg[160];
        /* Not journaled: closing follows from the decision of `step`, which
         * replay repeats. */
        snprintf(msg, sizeof msg, "step %lld was closed undecided: step %lld was decided first",
                 (long long)q->step, (long long)step);
        answer_step_waiters_error(job, q->step, 0, 410, "step_closed", "step", msg);
        pending_unlink(job, q);
        pending_free(q);
        n++;
    }
    /* polls for steps below that were never opened */
    lwd_waiter *w = job->waiters, *next;
    for (; w; w = next) {
        next = w->next;
        if (w->step < step)
            waiter_answer_error(w, 410, "step_closed", "step",
                                "the step was closed undecided: a later step was decided");
    }
    if (n)
        metrics_steps_closed(n);
}

/* Decide an open step from the reports present. 0: decided, p freed, every
 * waiter answered. Otherwise the step stays open, marked failed, its report
 * waiters answered with the error, which is copied to *err. */
static int decide(lwd_job *job, lwd_pending *p, int by_timeout, lw_error *err)
{
    size_t T = job->T;
    double *m = job->mean, *w = job->mean + job->rep_len;
    const lwd_report *first = pending_first(p);
    unsigned has = first->has;
    double ssum = 0.0;
    int r;

    memset(m, 0, job->rep_len * sizeof(double));
    for (r = 0; r < job->world; r++) {
        const lwd_report *rep = p->by_rank[r];
        if (!rep)
            continue;
        ssum += rep->samples;
        for (size_t k = 0; k < job->rep_len; k++)
            m[k] += rep->samples * rep->data[k];
    }
    for (size_t k = 0; k < job->rep_len; k++)
        m[k] /= ssum;

    lw_input in;
    memset(&in, 0, sizeof in);
    in.step = (uint64_t)p->step;
    in.epoch = first->epoch;
    in.losses = has & HAS_LOSSES ? m : NULL;
    in.grad_norms = has & HAS_GRAD_NORMS ? m + T : NULL;
    in.gram = has & HAS_GRAM ? m + 2 * T : NULL;
    in.losses_after = has & HAS_LOSSES_AFTER ? m + 2 * T + T * T : NULL;

    /* Everything the decision will need is allocated before the method
     * steps, so nothing can fail after the state has moved. */
    size_t packed = (has & HAS_LOSSES ? T : 0) + (has & HAS_GRAD_NORMS ? T : 0) +
                    (has & HAS_GRAM ? T * T : 0) + (has & HAS_LOSSES_AFTER ? T : 0);
    lwd_decision d;
    memset(&d, 0, sizeof d);
    d.data = malloc((packed + T) * sizeof(double));
    if (p->nranks < job->world)
        d.present = calloc(((size_t)job->world + 7) / 8, 1);
    if (!d.data || (p->nranks < job->world && !d.present)) {
        free(d.data);
        free(d.present);
        memset(err, 0, sizeof *err);
        err->code = LW_ENOMEM;
        snprintf(err->message, sizeof err->message, "out of memory");
        return LW_ENOMEM;
    }
    if (d.present)
        for (r = 0; r < job->world; r++)
            if (p->by_rank[r])
                d.present[r / 8] |= (uint8_t)(1u << (r % 8));

    /* A decision from a subset of the ranks (barrier timeout) depends on
     * timing, so it is journaled -- before the method steps: if the record
     * cannot be written, nothing has moved. A decision from every rank
     * follows from the reports and is not journaled. */
    if (d.present) {
        journal_event ev = {.kind = JOURNAL_STEP_DECIDED, .job = job->id, .step = p->step,
                            .rank = -1, .present = d.present, .world = job->world};
        if (journal_append(&ev) != 0) {
            free(d.data);
            free(d.present);
            memset(err, 0, sizeof *err);
            err->code = LW_EINVAL;
            snprintf(err->message, sizeof err->message,
                     "the journal refused the decision: %s", journal_error());
            answer_step_waiters_error(job, p->step, WAIT_REPORT, 503, "unavailable", NULL,
                                      err->message);
            return -1;
        }
    }

    int rc = lw_job_step(job->lw, &in, w, err);
    if (rc != 0) {
        free(d.data);
        free(d.present);
        p->failed = 1;
        p->err = *err;
        metrics_step_failed();
        log_begin(LL_WARN, "step_failed");
        log_str("job", job->id);
        log_int("step", p->step);
        log_int("ranks", p->nranks);
        log_str("field", err->field);
        log_str("error", err->message);
        log_end();
        answer_step_waiters_error(job, p->step, WAIT_REPORT, wire_http_status(rc),
                                  wire_error_code(rc), err->field, err->message);
        return rc;
    }

    size_t off = 0;
    if (has & HAS_LOSSES)
        memcpy(d.data + off, in.losses, T * sizeof(double)), off += T;
    if (has & HAS_GRAD_NORMS)
        memcpy(d.data + off, in.grad_norms, T * sizeof(double)), off += T;
    if (has & HAS_GRAM)
        memcpy(d.data + off, in.gram, T * T * sizeof(double)), off += T * T;
    if (has & HAS_LOSSES_AFTER)
        memcpy(d.data + off, in.losses_after, T * sizeof(double)), off += T;
    memcpy(d.data + off, w, T * sizeof(double));
    d.step = p->step;
    d.epoch = in.epoch;
    d.has = has;
    d.nranks = p->nranks;
    /* Replay leaves the body to hist_body(), which prints it on first use:
     * most replayed decisions are evicted or never asked for. */
    d.body = journal_replaying() ? NULL : decision_body(job, p->step, w, p->nranks, &d.body_len);
    if (!d.body && !journal_replaying()) {
        /* The method's state has advanced; without its decision the job
         * would be inconsistent. Out of memory here is fatal (as in Redis). */
        log_msg(LL_ERROR, "out_of_memory", "cannot record a decided step");
        abort();
    }
    if (steps_store_decision(job, &d) != 0) {
        log_msg(LL_ERROR, "out_of_memory", "cannot record a decided step");
        abort();
    }
    job->n_decided++;
    if (!journal_replaying())
        metrics_step_decided();
    if ((by_timeout && !journal_replaying()) || log_enabled(LL_DEBUG)) {
        log_begin(by_timeout ? LL_INFO : LL_DEBUG, "step_decided");
        log_str("job", job->id);
        log_int("step", p->step);
        log_int("ranks", p->nranks);
        if (by_timeout)
            log_str("by", "barrier_timeout");
        log_end();
    }

    const lwd_decision *dec = hist_latest(&job->hist);
    int64_t step = p->step;
    pending_unlink(job, p);
    pending_free(p);
    if (job->waiters) {
        size_t blen;
        const char *body = hist_body(job, dec, &blen);
        answer_step_waiters(job, step, 0, 200, body, blen);
    }
    close_open_below(job, step);
    return 0;
}

static void on_barrier_timeout(uv_timer_t *t)
{
    lwd_pending *p = t->data;
    if (!p)
        return;
    lwd_job *job = p->job;
    p->timer_armed = 0;
    if (p->nranks >= job->min_ranks) {
        lw_error err;
        metrics_barrier_timeout(1);
        decide(job, p, 1, &err);
        return;
    }
    char msg[200];
    metrics_barrier_timeout(0);
    snprintf(msg, sizeof msg,
             "barrier timeout: %d of %d ranks reported step %lld within %lld ms; min_ranks is %d",
             p->nranks, job->world, (long long)p->step, (long long)job->barrier_timeout_ms,
             job->min_ranks);
    log_begin(LL_INFO, "barrier_timeout");
    log_str("job", job->id);
    log_int("step", p->step);
    log_int("ranks", p->nranks);
    log_int("min_ranks", job->min_ranks);
    log_end();
    answer_step_waiters_error(job, p->step, WAIT_REPORT, 504, "barrier_timeout", "step", msg);
}

void steps_arm_timer(lwd_job *job, lwd_pending *p)
{
    if (job->sync != WIRE_SYNC_BARRIER || p->timer_armed)
        return;
    if (!p->timer) {
        if (!(p->timer = malloc(sizeof *p->timer)))
            return; /* no timeout then: complete steps still decide */
        uv_timer_init(srv.loop, p->timer);
        p->timer->data = p;
    }
    uv_timer_start(p->timer, on_barrier_timeout, (uint64_t)job->barrier_timeout_ms, 0);
    p->timer_armed = 1;
}

/* ---- the report path ---- */

static void reply_decision(lwd_req *rq, const lwd_job *job, const lwd_decision *d)
{
    size_t len;
    const char *body = hist_body(job, d, &len);
    reply_copy(rq, 200, body, len);
}

/* Async: the latest decision, or 202 pending when there is none yet. */
static void answer_latest(lwd_req *rq, lwd_job *job, int64_t step)
{
    const lwd_decision *d = hist_latest(&job->hist);
    if (d)
        reply_decision(rq, job, d);
    else
        reply_json(rq, 202, steps_pending_json(job, step));
}

static void answer_decided(lwd_req *rq, lwd_job *job, const lwd_decision *d)
{
    if (job->sync == WIRE_SYNC_ASYNC)
        answer_latest(rq, job, d->step);
    else
        reply_decision(rq, job, d);
}

static void reply_closed(lwd_req *rq, lwd_job *job, int64_t step)
{
    const lwd_decision *oldest = hist_at(&job->hist, 0);
    if (oldest && step < oldest->step)
        reply_error(rq, 410, "gone", "step",
                    "step %lld is older than the %zu decided steps kept (oldest %lld)",
                    (long long)step, job->hist.len, (long long)oldest->step);
    else
        reply_error(rq, 410, "step_closed", "step",
                    "step %lld was closed undecided (step %lld was decided after it)",
                    (long long)step, (long long)job->last_decided);
}

/* Wait for an open step (barrier) or answer at once per wait_ms. */
static void wait_or_pending(lwd_req *rq, lwd_job *job, lwd_pending *p, int64_t rank,
                            int64_t wait_ms)
{
    steps_arm_timer(job, p);
    if (wait_ms == 0)
        reply_json(rq, 202, steps_pending_json(job, p->step));
    else
        req_wait(rq, job, p->step, WAIT_REPORT, rank, wait_ms);
}

static void answer_retry(lwd_req *rq, lwd_job *job, int64_t rank, int64_t step, int64_t wait_ms)
{
    const lwd_decision *d = hist_find(&job->hist, step);
    if (d) {
        answer_decided(rq, job, d);
        return;
    }
    lwd_pending *p = steps_find_open(job, step);
    if (!p || step <= job->last_decided) {
        reply_closed(rq, job, step);
        return;
    }
    if (p->failed) {
        reply_lw_error(rq, &p->err);
        return;
    }
    if (job->sync == WIRE_SYNC_ASYNC)
        answer_latest(rq, job, step);
    else
        wait_or_pending(rq, job, p, rank, wait_ms);
}

void steps_report(lwd_req *rq, lwd_job *job, const cJSON *doc, int64_t wait_ms)
{
    wire_report r;
    lw_error err;
    uint64_t dg, old;

    if (wire_parse_report(doc, job->T, 1, job->parse_buf, &r, &err) != 0) {
        reply_lw_error(rq, &err);
        return;
    }
    if (r.rank < 0 || r.rank >= job->world) {
        reply_error(rq, 400, "invalid", "rank", "rank %lld is not in [0, %d): world_size is %d",
                    (long long)r.rank, job->world, job->world);
        return;
    }
    lwd_rank *rk = &job->ranks[r.rank];
    int64_t s = r.step;
    dg = report_digest(job, &r);

    if (rank_lookup(rk, s, &old)) {
        if (old != dg) {
            reply_error(rq, 409, "conflict", "step",
                        "rank %lld already reported step %lld with other numbers",
                        (long long)r.rank, (long long)s);
            return;
        }
        answer_retry(rq, job, r.rank, s, wait_ms);
        return;
    }
    if (s <= rk->last_step) {
        reply_error(rq, 409, "step_order", "step",
                    "rank %lld already reported step %lld; a rank's steps must increase",
                    (long long)r.rank, (long long)rk->last_step);
        return;
    }
    if (s <= job->last_decided) {
        const lwd_decision *d = hist_find(&job->hist, s);
        if (!d) {
            reply_closed(rq, job, s);
            return;
        }
        /* A late rank: the step was decided without it (barrier timeout).
         * It gets the decision; its numbers are not counted. Journaled, as
         * the rank's position moves. */
        if (journal_report(rq, job, &r) != 0)
            return;
        rank_remember(rk, s, dg);
        answer_decided(rq, job, d);
        return;
    }
    int64_t base = job->last_decided >= 0 ? job->last_decided : job->open ? job->open->step : s;
    if (s - base > srv.cfg.max_ahead) {
        reply_error(rq, 429, "too_far_ahead", "step",
                    "step %lld is more than %lld steps ahead of step %lld",
                    (long long)s, (long long)srv.cfg.max_ahead, (long long)base);
        return;
    }
    lw_input in = wire_report_input(&r);
    if (lw_job_check(job->lw, &in, &err) != 0) {
        reply_lw_error(rq, &err);
        return;
    }
    lwd_pending *p = steps_find_open(job, s);
    if (!steps_report_fits(p, &r)) {
        reply_error(rq, 409, "conflict", "step",
                    "the reports of step %lld must carry the same inputs and epoch; "
                    "this one differs from the first",
                    (long long)s);
        return;
    }
    if (journal_report(rq, job, &r) != 0)
        return;
    if (!(p = steps_record(job, r.rank, &r, dg))) {
        /* The report is journaled: carrying on without it would make this
         * process and a replay disagree. Fatal, as in decide(). */
        log_msg(LL_ERROR, "out_of_memory", "cannot record a journaled report");
        abort();
    }
    metrics_report_accepted();

    if (p->nranks == job->world) {
        if (decide(job, p, 0, &err) != 0) {
            reply_lw_error(rq, &err);
            return;
        }
        const lwd_decision *d = hist_latest(&job->hist);
        reply_decision(rq, job, d);
        return;
    }
    if (job->sync == WIRE_SYNC_ASYNC)
        answer_latest(rq, job, s);
    else
        wait_or_pending(rq, job, p, r.rank, wait_ms);
}

/* ---- GET steps/{n} ---- */

void steps_get(lwd_req *rq, lwd_job *job, int64_t step, int64_t wait_ms)
{
    const lwd_decision *d = hist_find(&job->hist, step);
    if (d) {
        reply_decision(rq, job, d);
        return;
    }
    if (step <= job->last_decided) {
        reply_closed(rq, job, step);
        return;
    }
    const lwd_pending *p = steps_find_open(job, step);
    if (p && p->failed) {
        reply_lw_error(rq, &p->err);
        return;
    }
    if (wait_ms <= 0)
        reply_json(rq, 202, steps_pending_json(job, step));
    else
        req_wait(rq, job, step, WAIT_POLL, -1, wait_ms);
}

/* ---- recovery ---- */

int steps_replay_report(lwd_job *job, const wire_report *r, char *msg, size_t len)
{
    lw_error err;
    uint64_t dg, old;
    if (r->rank < 0 || r->rank >= job->world) {
        snprintf(msg, len, "job \"%s\": rank %lld is not in [0, %d)", job->id,
                 (long long)r->rank, job->world);
        return -1;
    }
    lwd_rank *rk = &job->ranks[r->rank];
    dg = report_digest(job, r);
    if (rank_lookup(rk, r->step, &old) || r->step <= rk->last_step) {
        snprintf(msg, len, "job \"%s\": rank %lld reported step %lld again (last %lld)", job->id,
                 (long long)r->rank, (long long)r->step, (long long)rk->last_step);
        return -1;
    }
    if (r->step <= job->last_decided) { /* a late rank (see steps_report) */
        rank_remember(rk, r->step, dg);
        return 0;
    }
    /* Checks 6 and 7 of steps_report, which refused such a report before
     * journaling it: replay is at the same state, so a journal the live
     * path wrote always passes them, and anything else is damage. */
    lw_input in = wire_report_input(r);
    if (lw_job_check(job->lw, &in, &err) != 0) {
        snprintf(msg, len, "job \"%s\": rank %lld's report of step %lld: %s", job->id,
                 (long long)r->rank, (long long)r->step, err.message);
        return -1;
    }
    if (!steps_report_fits(steps_find_open(job, r->step), r)) {
        snprintf(msg, len, "job \"%s\": rank %lld's report of step %lld differs in shape from "
                 "the step's first", job->id, (long long)r->rank, (long long)r->step);
        return -1;
    }
    lwd_pending *p = steps_record(job, r->rank, r, dg);
    if (!p) {
        snprintf(msg, len, "out of memory");
        return -1;
    }
    if (p->nranks == job->world)
        (void)decide(job, p, 0, &err); /* a failure leaves the step open and failed, as live */
    return 0;
}

int steps_replay_decide(lwd_job *job, int64_t step, const uint8_t *present, char *msg, size_t len)
{
    lw_error err;
    lwd_pending *p = steps_find_open(job, step);
    if (!p) {
        snprintf(msg, len, "job \"%s\": step %lld decided by timeout is not open", job->id,
                 (long long)step);
        return -1;
    }
    if (p->nranks < job->min_ranks) { /* on_barrier_timeout decides only from min_ranks */
        snprintf(msg, len, "job \"%s\": step %lld decided from %d ranks, min_ranks is %d",
                 job->id, (long long)step, p->nranks, job->min_ranks);
        return -1;
    }
    if (present)
        for (int r = 0; r < job->world; r++)
            if (!!p->by_rank[r] != !!(present[r / 8] >> (r % 8) & 1)) {
                snprintf(msg, len,
                         "job \"%s\": step %lld was decided with other ranks than recorded "
                         "(rank %d)",
                         job->id, (long long)step, r);
                return -1;
            }
    (void)decide(job, p, 1, &err); /* a failure leaves the step open and failed, as live */
    return 0;
}
