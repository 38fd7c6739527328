/*
 * wire.h -- the wire format: JSON bodies <-> library structs.
 *
 * Shared by lossweightd and the `lossweight` tool so that a job spec or a
 * report means exactly the same thing to both (DESIGN.md: "the JSON parsing
 * shared with the server"). Parsing checks types and shapes and names the
 * offending field; numbers are checked for finiteness here and for the
 * method's needs by the library. Nothing here does I/O.
 */
#ifndef LW_WIRE_H
#define LW_WIRE_H

#include "lossweight.h"

#include <cjson/cJSON.h>
#include <stdint.h>

/* Limits the parser enforces (the daemon passes its flags). */
typedef struct wire_limits {
    size_t max_tasks;      /* tasks per job */
    size_t max_world_size; /* ranks per job */
} wire_limits;

#define WIRE_DEFAULT_MAX_TASKS 256
#define WIRE_DEFAULT_MAX_WORLD 4096

enum { WIRE_SYNC_BARRIER = 0, WIRE_SYNC_ASYNC = 1 };

/* A parsed job spec (body of PUT /v1/jobs/{job}, first line of replay).
 * Owns everything it points to; free with wire_spec_free(). */
typedef struct wire_spec {
    lw_spec lib;          /* points into the arrays below */
    char *method;
    lw_task *tasks;
    char **task_names;
    double **class_freqs;
    lw_value *params;
    char **param_names;
    char **param_strings;
    double **param_arrays;
    int world_size;         /* default 1 */
    int sync;               /* WIRE_SYNC_*, default barrier */
    int64_t barrier_timeout_ms; /* default 60000 */
    int min_ranks;          /* default world_size */
    int has_min_ranks;
} wire_spec;

/* Parse and check a spec object. Unknown top-level fields are an error.
 * On failure *out is left empty (nothing to free) and err names the field. */
int wire_parse_spec(const cJSON *json, const wire_limits *lim, wire_spec *out, lw_error *err);
void wire_spec_free(wire_spec *s);

/* The canonical spec document with every default filled in (params from the
 * created job). The same spec always prints to the same bytes, so two specs
 * are "the same" when their canonical documents are equal. */
cJSON *wire_spec_to_json(const wire_spec *s, const lw_job *job);

/* A parsed report (POST /v1/jobs/{job}/reports) or replay input line.
 * Arrays point into `buf`, which the caller provides with room for
 * wire_report_buf_len(T) doubles. */
typedef struct wire_report {
    int64_t rank;       /* -1 when absent */
    int64_t step;       /* required, >= 0 */
    int64_t epoch;      /* -1 when absent */
    double samples;     /* 1 when absent; > 0 */
    int has_samples;
    double *losses, *grad_norms, *gram, *losses_after; /* NULL when absent */
} wire_report;

size_t wire_report_buf_len(size_t T);

/* Parse a report for a job with T tasks. need_rank: 1 for the daemon
 * (rank required), 0 for replay (rank optional and ignored). Checks shapes
 * (T numbers, T x T gram), finiteness, integer fields; the library checks
 * what the method needs (lw_job_check). Unknown fields are an error. */
int wire_parse_report(const cJSON *json, size_t T, int need_rank, double *buf,
                      wire_report *out, lw_error *err);

/* The library input for a report (borrowing its arrays). */
lw_input wire_report_input(const wire_report *r);

/* A report as JSON (for history and the journal): step, epoch, losses, ... */
cJSON *wire_input_to_json(const lw_input *in, size_t T);

/* The method table as the document GET /v1/methods serves and
 * `lossweight methods` prints. */
cJSON *wire_methods_json(void);
cJSON *wire_method_json(const lw_method_info *m);

/* The whole method state as {"name": [numbers], ...} (export), and the
 * person's view (lw_job_describe) as an object. */
cJSON *wire_state_json(const lw_job *job);
cJSON *wire_describe_json(const lw_job *job);

/* Restore state arrays from an object made by wire_state_json into job
 * (which should be freshly created from the same spec). Every array must be
 * present. On failure the job may be partly written: callers restore into a
 * scratch job and keep it only on success. */
int wire_state_from_json(const cJSON *obj, lw_job *job, lw_error *err);

/* An array of n doubles. Trees built by the wire_* printers hold numbers as
 * raw text (so they print bit-exact): they are for printing, not for
 * reading back with cJSON_IsNumber -- print and parse for that. */
cJSON *wire_doubles(const double *v, size_t n);
cJSON *wire_number(double d);

/* A copy of any tree with every number turned into bit-exact raw text, for
 * printing a parsed document back out without losing bits. */
cJSON *wire_exact_copy(const cJSON *json);

/* Print JSON compactly into a malloc'd string (cJSON_PrintUnformatted),
 * doubles printed so they read back to the same bits. */
char *wire_print(const cJSON *json);

/* Map a library error code to an HTTP status and a short code string. */
int wire_http_status(int lw_code);
const char *wire_error_code(int lw_code);

/* {"error": {"code": ..., "message": ..., "field": ...}} */
cJSON *wire_error_json(const char *code, const char *message, const char *field);

#endif /* LW_WIRE_H */
