/*
 * metrics.h -- Prometheus counters of lossweightd.
 *
 * Counters are plain integers owned by the loop thread; /metrics renders
 * them together with gauges read from the job table at scrape time.
 */
#ifndef LWD_METRICS_H
#define LWD_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Call once after the route table is known. 0 or -1 (no memory). */
int metrics_init(size_t n_routes);
void metrics_free(void);

/* A finished request: route index (route_count() for no route), status,
 * and the time from its first byte to its answer. */
void metrics_request(size_t route, int status, uint64_t ns);
void metrics_report_accepted(void);
void metrics_step_decided(void);
void metrics_step_failed(void);
/* A barrier timeout: decided = 1 if it decided from the ranks present. */
void metrics_barrier_timeout(int decided);
void metrics_steps_closed(uint64_t n);

/* The text exposition format (version 0.0.4); malloc'd, *len set. */
char *metrics_render(size_t *len);

#endif /* LWD_METRICS_H */
