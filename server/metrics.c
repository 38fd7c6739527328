/*
 * metrics.c -- counters and the Prometheus text exposition.
 *
 * Requests are counted by (route, status) in a dense table: routes come from
 * the route table (plus "unknown" for requests that matched none), statuses
 * from the short list the API can answer (plus "other"). The latency
 * histogram is per route, with buckets from 100 us to 60 s: a barrier wait
 * is part of a report's latency, so the upper buckets are real.
 * Gauges (jobs, open steps, ranks waiting, connections) are read from the
 * job table and the server at scrape time.
 */
#include "metrics.h"

#include "jobs.h"
#include "journal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int statuses[] = {200, 201, 202, 400, 401, 403, 404, 405, 409,
                               410, 413, 415, 422, 429, 500, 503, 504};
#define N_STATUS (sizeof statuses / sizeof statuses[0] + 1) /* + other */

static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                 5,      10,      30,     60};
#define N_BUCKET (sizeof buckets / sizeof buckets[0] + 1) /* + +Inf */

static struct {
    size_t nr; /* routes + 1 ("unknown") */
    uint64_t *req;   /* nr x N_STATUS */
    uint64_t *hist;  /* nr x N_BUCKET, not cumulative */
    double *sum;     /* nr, seconds */
    uint64_t *count; /* nr */
    uint64_t reports, decided, failed, timeout_decided, timeout_failed, closed;
} M;

int metrics_init(size_t n_routes)
{
    M.nr = n_routes + 1;
    M.req = calloc(M.nr * N_STATUS, sizeof *M.req);
    M.hist = calloc(M.nr * N_BUCKET, sizeof *M.hist);
    M.sum = calloc(M.nr, sizeof *M.sum);
    M.count = calloc(M.nr, sizeof *M.count);
    return M.req && M.hist && M.sum && M.count ? 0 : -1;
}

void metrics_free(void)
{
    free(M.req);
    free(M.hist);
    free(M.sum);
    free(M.count);
    memset(&M, 0, sizeof M);
}

void metrics_request(size_t route, int status, uint64_t ns)
{
    size_t s = N_STATUS - 1, b = 0;
    double secs = (double)ns / 1e9;
    if (!M.req)
        return;
    if (route >= M.nr)
        route = M.nr - 1;
    for (size_t i = 0; i < N_STATUS - 1; i++)
        if (statuses[i] == status)
            s = i;
    while (b < N_BUCKET - 1 && secs > buckets[b])
        b++;
    M.req[route * N_STATUS + s]++;
    M.hist[route * N_BUCKET + b]++;
    M.sum[route] += secs;
    M.count[route]++;
}

void metrics_report_accepted(void) { M.reports++; }
void metrics_step_decided(void) { M.decided++; }
void metrics_step_failed(void) { M.failed++; }
void metrics_steps_closed(uint64_t n) { M.closed += n; }

void metrics_barrier_timeout(int decided)
{
    if (decided)
        M.timeout_decided++;
    else
        M.timeout_failed++;
}

/* ---- rendering ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        if (b->oom)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
}

static void family(sbuf *b, const char *name, const char *type, const char *help)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

char *metrics_render(size_t *len)
{
    sbuf b = {malloc(8192), 0, 8192, 0};
    size_t jobs, open, waiting, polls;
    if (!b.p)
        return NULL;
    b.p[0] = '\0';

    family(&b, "lossweight_requests_total", "counter",
           "HTTP requests answered, by route and status.");
    for (size_t r = 0; r < M.nr; r++)
        for (size_t s = 0; s < N_STATUS; s++) {
            uint64_t v = M.req[r * N_STATUS + s];
            if (!v)
                continue;
            if (s < N_STATUS - 1)
                sb_printf(&b, "lossweight_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                          route_name(r), statuses[s], (unsigned long long)v);
            else
                sb_printf(&b, "lossweight_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                          route_name(r), (unsigned long long)v);
        }

    family(&b, "lossweight_request_duration_seconds", "histogram",
           "Time from a request's first byte to its answer (barrier waits included).");
    for (size_t r = 0; r < M.nr; r++) {
        if (!M.count[r])
            continue;
        uint64_t cum = 0;
        for (size_t k = 0; k < N_BUCKET; k++) {
            cum += M.hist[r * N_BUCKET + k];
            if (k < N_BUCKET - 1)
                sb_printf(&b,
                          "lossweight_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                          "%llu\n",
                          route_name(r), buckets[k], (unsigned long long)cum);
            else
                sb_printf(&b,
                          "lossweight_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                          "%llu\n",
                          route_name(r), (unsigned long long)cum);
        }
        sb_printf(&b, "lossweight_request_duration_seconds_sum{route=\"%s\"} %.9f\n",
                  route_name(r), M.sum[r]);
        sb_printf(&b, "lossweight_request_duration_seconds_count{route=\"%s\"} %llu\n",
                  route_name(r), (unsigned long long)M.count[r]);
    }

    jobs_totals(&jobs, &open, &waiting, &polls);
    family(&b, "lossweight_jobs", "gauge", "Jobs held.");
    sb_printf(&b, "lossweight_jobs %zu\n", jobs);
    family(&b, "lossweight_open_steps", "gauge", "Steps with reports and no decision yet.");
    sb_printf(&b, "lossweight_open_steps %zu\n", open);
    family(&b, "lossweight_ranks_waiting", "gauge",
           "Reports suspended waiting for their step's decision.");
    sb_printf(&b, "lossweight_ranks_waiting %zu\n", waiting);
    family(&b, "lossweight_pollers_waiting", "gauge", "GET steps/{n} long-polls waiting.");
    sb_printf(&b, "lossweight_pollers_waiting %zu\n", polls);
    family(&b, "lossweight_connections", "gauge", "Open HTTP connections.");
    sb_printf(&b, "lossweight_connections %zu\n", srv.connections);

    family(&b, "lossweight_reports_total", "counter", "Reports accepted and recorded.");
    sb_printf(&b, "lossweight_reports_total %llu\n", (unsigned long long)M.reports);
    family(&b, "lossweight_decided_steps_total", "counter", "Steps decided.");
    sb_printf(&b, "lossweight_decided_steps_total %llu\n", (unsigned long long)M.decided);
    family(&b, "lossweight_step_errors_total", "counter",
           "Steps whose method failed on the mean input (left undecided).");
    sb_printf(&b, "lossweight_step_errors_total %llu\n", (unsigned long long)M.failed);
    family(&b, "lossweight_barrier_timeouts_total", "counter",
           "Barrier timeouts: decided from the ranks present, or answered 504.");
    sb_printf(&b, "lossweight_barrier_timeouts_total{outcome=\"decided\"} %llu\n",
              (unsigned long long)M.timeout_decided);
    sb_printf(&b, "lossweight_barrier_timeouts_total{outcome=\"504\"} %llu\n",
              (unsigned long long)M.timeout_failed);
    family(&b, "lossweight_closed_steps_total", "counter",
           "Open steps closed undecided because a later step was decided.");
    sb_printf(&b, "lossweight_closed_steps_total %llu\n", (unsigned long long)M.closed);
    journal_stats js;
    journal_get_stats(&js);
    if (js.enabled) {
        family(&b, "lossweight_journal_records_total", "counter",
               "Journal records written by this process.");
        sb_printf(&b, "lossweight_journal_records_total %llu\n", (unsigned long long)js.records);
        family(&b, "lossweight_journal_bytes_total", "counter",
                   "Journal bytes written by this process.");
        sb_printf(&b, "lossweight_journal_bytes_total %llu\n", (unsigned long long)js.bytes);
        family(&b, "lossweight_journal_bytes_since_snapshot", "gauge",
               "Journal bytes a restart would replay after the newest snapshot.");
        sb_printf(&b, "lossweight_journal_bytes_since_snapshot %llu\n",
                  (unsigned long long)js.bytes_since_snapshot);
        family(&b, "lossweight_journal_syncs_total", "counter",
               "Group commits (fdatasync of the journal on the thread pool).");
        sb_printf(&b, "lossweight_journal_syncs_total %llu\n", (unsigned long long)js.syncs);
        family(&b, "lossweight_journal_sync_seconds_total", "counter",
               "Time spent in group commits.");
        sb_printf(&b, "lossweight_journal_sync_seconds_total %.9f\n", (double)js.sync_ns / 1e9);
        family(&b, "lossweight_journal_write_errors_total", "counter",
               "Appends refused because the journal could not be written (answered 503).");
        sb_printf(&b, "lossweight_journal_write_errors_total %llu\n",
                  (unsigned long long)js.write_errors);
        family(&b, "lossweight_snapshots_total", "counter", "Snapshots written, or failed.");
        sb_printf(&b, "lossweight_snapshots_total{outcome=\"ok\"} %llu\n",
                  (unsigned long long)js.snapshots);
        sb_printf(&b, "lossweight_snapshots_total{outcome=\"failed\"} %llu\n",
                  (unsigned long long)js.snapshot_failures);
    }
    family(&b, "lossweight_uptime_seconds", "gauge", "Seconds since start.");
    sb_printf(&b, "lossweight_uptime_seconds %.3f\n", (double)now_ms() / 1000.0);
    family(&b, "lossweight_build_info", "gauge", "Version of lossweightd.");
    sb_printf(&b, "lossweight_build_info{version=\"%s\"} 1\n", LWD_VERSION);

    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
