/*
 * api.h -- the HTTP handlers, one per row of the route table (router.c).
 * Each takes a matched request, answers it (reply_*) or makes it wait
 * (req_wait), and changes nothing when it answers with an error.
 */
#ifndef LWD_API_H
#define LWD_API_H

#include "server.h"

/* api_jobs.c */
void api_job_put(lwd_req *rq);
void api_jobs_list(lwd_req *rq);
void api_job_get(lwd_req *rq);
void api_job_delete(lwd_req *rq);
void api_state_get(lwd_req *rq);
void api_state_put(lwd_req *rq);

/* api_steps.c */
void api_report_post(lwd_req *rq);
void api_step_get(lwd_req *rq);
void api_weights_get(lwd_req *rq);
void api_history_get(lwd_req *rq);

/* api_misc.c */
void api_methods(lwd_req *rq);
void api_healthz(lwd_req *rq);
void api_metrics(lwd_req *rq);

/* Parse rq's body as JSON (body_parse); on failure answers 400 and
 * returns NULL. The caller deletes the tree. */
cJSON *api_body_json(lwd_req *rq);
/* The job named in the path, or answers 404 and returns NULL. */
lwd_job *api_job(lwd_req *rq);

#endif /* LWD_API_H */
