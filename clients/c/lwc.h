/*
 * lwc.h -- a small C client of lossweightd (libcurl + cJSON), for C and C++
 * training stacks: create a job, post a rank's report for a step and get the
 * step's weights, read the latest weights, keep the job's state with a
 * checkpoint and put it back, delete a job.
 *
 *     lwc *c = lwc_new("http://127.0.0.1:7070", NULL, 120000);
 *     const char *tasks[] = {"ctr", "cvr"};
 *     lwc_create_job(c, "run-7", tasks, 2, "dwa", 4, NULL);
 *     double L[2] = {0.41, 2.9}, w[2];
 *     lwc_report r = {.rank = 2, .step = 1041, .epoch = 3, .n_tasks = 2,
 *                     .losses = L, .wait_ms = -1};
 *     lwc_decision d;
 *     if (lwc_report_post(c, "run-7", &r, w, 2, &d) != 0)
 *         fprintf(stderr, "%s\n", lwc_last_error(c)->message);
 *     lwc_free(c);
 *
 * Conventions. Functions return 0 on success and -1 on failure, with the
 * details in lwc_last_error(c): the HTTP status and the daemon's error code,
 * message and field, or status 0 and code "transport" when no answer came.
 * One lwc holds one curl easy handle, so its connection is kept alive from
 * call to call; an lwc is not thread-safe: use one per thread. Non-finite
 * numbers are refused before anything is sent. A report is retried after a
 * transport error or a 503, with bounded exponential backoff (at most
 * LWC_RETRIES more attempts): the daemon answers an identical resend like
 * the first, so this is safe.
 *
 * Security. For a daemon with --token-file give lwc_new a bearer token (or
 * NULL to use $LOSSWEIGHT_TOKEN, if set); a 401 or 403 comes back as an
 * error with that status and code "unauthorized" / "forbidden", and is not
 * retried. An https:// base URL speaks TLS, verifying the daemon against
 * libcurl's CA bundle or the file given to lwc_set_cafile().
 *
 * Numbers travel as cJSON prints them (15 significant digits, 17 when that
 * is needed to read back the same double), so weights arrive bit for bit.
 */
#ifndef LWC_H
#define LWC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LWC_RETRIES 5

typedef struct lwc lwc;

typedef struct lwc_error {
    long status;       /* HTTP status; 0 when the daemon did not answer */
    char code[64];     /* the daemon's code, or "transport", "bad_response",
                          "invalid_argument", "out_of_memory" */
    char message[512];
    char field[96];    /* the request field the error is about, or "" */
} lwc_error;

/* One rank's report of one step (the body of POST /v1/jobs/{job}/reports). */
typedef struct lwc_report {
    int64_t rank;
    int64_t step;
    int64_t epoch;            /* < 0: not sent */
    size_t n_tasks;
    const double *losses;     /* n_tasks numbers, or NULL */
    const double *grad_norms; /* n_tasks numbers, or NULL */
    const double *gram;       /* n_tasks x n_tasks, row-major, or NULL */
    long wait_ms;             /* < 0: wait for the decision (barrier); >= 0: at
                                 most that long, then status "pending" */
} lwc_report;

/* A decision (or, with status "pending", a step still waiting for ranks). */
typedef struct lwc_decision {
    int64_t step;
    int ranks;                /* ranks in the decision (or reported so far) */
    size_t n_weights;         /* weights written; 0 when pending */
    char status[16];          /* "decided" or "pending" */
    char method[64];
} lwc_decision;

/* A client of the daemon at base_url ("http://127.0.0.1:7070", or
 * "https://..." for a daemon with --tls-cert). token: a bearer token; NULL:
 * $LOSSWEIGHT_TOKEN if set, else none; "": none. timeout_ms: per request;
 * keep it above the jobs' barrier_timeout_ms. NULL when out of memory or
 * libcurl fails to start. */
lwc *lwc_new(const char *base_url, const char *token, long timeout_ms);
void lwc_free(lwc *c);

/* https: verify the daemon's certificate against the PEM file at path
 * (e.g. its own self-signed certificate) instead of libcurl's CA bundle;
 * NULL goes back to the bundle. 0, or -1 (out of memory). */
int lwc_set_cafile(lwc *c, const char *path);

/* The last call's error (status 0 and code "" after a success). */
const lwc_error *lwc_last_error(const lwc *c);

/* PUT /v1/jobs/{job} with {"tasks", "method", "world_size"} and, if not
 * NULL, "params" (a JSON object as text, e.g. "{\"temperature\": 2}").
 * Creating the same spec again succeeds; another spec is a 409. */
int lwc_create_job(lwc *c, const char *job, const char *const *tasks, size_t n_tasks,
                   const char *method, int world_size, const char *params_json);

/* PUT /v1/jobs/{job} with a whole spec document given as JSON text. */
int lwc_create_job_json(lwc *c, const char *job, const char *spec_json);

/* POST the report; the decision's weights go to weights[0..cap). A pending
 * answer (wait_ms >= 0 and not every rank reported) is a success with
 * out->status "pending" and no weights. */
int lwc_report_post(lwc *c, const char *job, const lwc_report *r, double *weights, size_t cap,
                    lwc_decision *out);

/* GET /v1/jobs/{job}/weights: the latest decision. */
int lwc_weights(lwc *c, const char *job, double *weights, size_t cap, lwc_decision *out);

/* DELETE /v1/jobs/{job}. */
int lwc_delete_job(lwc *c, const char *job);

/* GET /v1/jobs/{job}/state: the whole job as one JSON document, in *doc
 * (NUL-terminated; the caller free()s it). decided_only: as of the last
 * decided step (no open steps' reports, ranks wound back to it), which is
 * what a checkpoint the trainer resumes from wants. */
int lwc_export_state(lwc *c, const char *job, int decided_only, char **doc);

/* PUT /v1/jobs/{job}/state: put the job back as doc (from lwc_export_state)
 * left it, creating it or replacing what the daemon holds. */
int lwc_restore_state(lwc *c, const char *job, const char *doc);

#ifdef __cplusplus
}
#endif

#endif /* LWC_H */
