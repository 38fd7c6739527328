/*
 * recovery_stubs.c -- what the rest of lossweightd provides to recovery,
 * for programs that run recovery without the rest: `lossweight check`
 * (tools/lossweight.c) and the fuzz target tests/fuzz/fuzz_journal.c. Never
 * linked into the daemon, which has the real ones (main.c, router.c,
 * http.c, journal.c, metrics.c); the Makefile's RECOVERY_SRC lists the
 * files recovery does need.
 *
 * Recovery answers no request, journals nothing and counts nothing: the
 * answering functions abort (reaching one would be a bug in recovery), the
 * journal says it is replaying, the metrics are no-ops. The caller sets up
 * srv.cfg and srv.limits as main.c would (those recovery reads: the job
 * table's size, --max-tasks, --max-world, --history, --max-ahead).
 */
#include "jobs.h"
#include "journal.h"
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>

lwd_server srv;

uint64_t now_ms(void) { return 0; }

/* Nothing is answered during recovery. */
static void never(const char *what)
{
    fprintf(stderr, "recovery called %s, which only a running daemon may\n", what);
    abort();
}

void reply_json(lwd_req *rq, int status, cJSON *doc)
{
    (void)rq, (void)status, (void)doc, never("reply_json");
}
void reply_copy(lwd_req *rq, int status, const char *body, size_t len)
{
    (void)rq, (void)status, (void)body, (void)len, never("reply_copy");
}
void reply_error(lwd_req *rq, int status, const char *code, const char *field, const char *fmt, ...)
{
    (void)rq, (void)status, (void)code, (void)field, (void)fmt, never("reply_error");
}
void reply_lw_error(lwd_req *rq, const lw_error *err) { (void)rq, (void)err, never("reply_lw_error"); }
void req_wait(lwd_req *rq, lwd_job *job, int64_t step, int kind, int64_t rank, int64_t wait_ms)
{
    (void)rq, (void)job, (void)step, (void)kind, (void)rank, (void)wait_ms, never("req_wait");
}
void waiter_answer(lwd_waiter *w, int status, const char *body, size_t len)
{
    (void)w, (void)status, (void)body, (void)len, never("waiter_answer");
}
void waiter_answer_error(lwd_waiter *w, int status, const char *code, const char *field,
                         const char *message)
{
    (void)w, (void)status, (void)code, (void)field, (void)message, never("waiter_answer_error");
}

/* journal.c while it replays: nothing is journaled. */
int journal_append(const journal_event *ev)
{
    (void)ev;
    return 0;
}
const char *journal_error(void) { return "replaying"; }
int journal_replaying(void) { return 1; }

void metrics_report_accepted(void) {}
void metrics_step_decided(void) {}
void metrics_step_failed(void) {}
void metrics_barrier_timeout(int decided) { (void)decided; }
void metrics_steps_closed(uint64_t n) { (void)n; }
