/*
 * state.c -- a whole job as one document (GET/PUT /v1/jobs/{job}/state).
 *
 * The export holds everything that decides the job's future bits:
 *
 *   {"job": id, "format": "lossweight-state/1",
 *    "spec":  the canonical spec,
 *    "state": the method's state arrays (wire_state_json, incl. steps_done),
 *    "position": {
 *      "last_decided": step | null, "steps_decided": n,
 *      "latest": the last decided step as a history item | null,
 *      "rank_steps": [last step reported by each rank, -1 for none],
 *      "open_steps": [{"step": s, "reports": [report bodies with "rank"]}]}}
 *
 * Restore builds a brand-new job from it -- spec parsed and the library job
 * created exactly as PUT /v1/jobs does, state arrays set, the latest
 * decision and every open step's reports re-checked -- and the caller swaps
 * it in only when all of that succeeded. A restored job fed the same
 * reports gives the same bits as the original. The history before the
 * latest decision is not exported (it can be large and never influences a
 * later step).
 *
 * decided_only (GET ?decided_only=1; what a trainer checkpoint wants): the
 * job as of its last decided step -- no open steps, and every rank's
 * position wound back to that step -- because the resumed ranks post the
 * later steps again from the restored model, and their numbers need not be
 * the same bits as before (a differing resend of a kept report is a 409).
 * Snapshots always take everything.
 */
#include "jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_FORMAT "lossweight-state/1"

/* ---- export ---- */

static cJSON *report_json(const lwd_job *job, int rank, const lwd_report *rep, int64_t step)
{
    size_t T = job->T;
    lw_input in;
    memset(&in, 0, sizeof in);
    in.step = (uint64_t)step;
    in.epoch = rep->epoch;
    in.losses = rep->has & HAS_LOSSES ? rep->data : NULL;
    in.grad_norms = rep->has & HAS_GRAD_NORMS ? rep->data + T : NULL;
    in.gram = rep->has & HAS_GRAM ? rep->data + 2 * T : NULL;
    in.losses_after = rep->has & HAS_LOSSES_AFTER ? rep->data + 2 * T + T * T : NULL;
    cJSON *o = wire_input_to_json(&in, T);
    cJSON_AddItemToObject(o, "rank", json_int(rank));
    if (rep->has_samples)
        cJSON_AddItemToObject(o, "samples", json_double(rep->samples));
    return o;
}

cJSON *state_export(const lwd_job *job, int decided_only)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "job", job->id);
    cJSON_AddStringToObject(o, "format", STATE_FORMAT);
    cJSON_AddItemToObject(o, "spec", cJSON_CreateRaw(job->spec_json));
    cJSON_AddItemToObject(o, "state", wire_state_json(job->lw));
    cJSON *pos = cJSON_AddObjectToObject(o, "position");
    cJSON_AddItemToObject(pos, "last_decided",
                          job->last_decided >= 0 ? json_int(job->last_decided) : cJSON_CreateNull());
    cJSON_AddItemToObject(pos, "steps_decided", json_int((int64_t)job->n_decided));
    const lwd_decision *d = hist_latest(&job->hist);
    cJSON_AddItemToObject(pos, "latest", d ? hist_item_json(job, d) : cJSON_CreateNull());
    cJSON *rs = cJSON_AddArrayToObject(pos, "rank_steps");
    for (int r = 0; r < job->world; r++) {
        int64_t s = job->ranks[r].last_step;
        if (decided_only && s > job->last_decided)
            s = job->last_decided;
        cJSON_AddItemToArray(rs, json_int(s));
    }
    cJSON *open = cJSON_AddArrayToObject(pos, "open_steps");
    for (const lwd_pending *p = decided_only ? NULL : job->open; p; p = p->next) {
        cJSON *so = cJSON_CreateObject();
        cJSON_AddItemToObject(so, "step", json_int(p->step));
        cJSON *reps = cJSON_AddArrayToObject(so, "reports");
        for (int r = 0; r < job->world; r++)
            if (p->by_rank[r])
                cJSON_AddItemToArray(reps, report_json(job, r, p->by_rank[r], p->step));
        cJSON_AddItemToArray(open, so);
    }
    return o;
}

/* ---- import ---- */

static int fail(lw_error *err, int code, const char *field, const char *msg)
{
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s", msg);
    return code;
}

/* An integer in [lo, hi]. */
static int get_i64(const cJSON *it, const char *field, int64_t lo, int64_t hi, int64_t *out,
                   lw_error *err)
{
    char msg[160];
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble) ||
        floor(it->valuedouble) != it->valuedouble || it->valuedouble < (double)lo ||
        it->valuedouble > (double)hi) {
        snprintf(msg, sizeof msg, "%s must be an integer in [%lld, %lld]", field, (long long)lo,
                 (long long)hi);
        return fail(err, LW_EINVAL, field, msg);
    }
    *out = (int64_t)it->valuedouble;
    return 0;
}

/* Prefix err->field (a field inside a sub-document). */
static void prefix_field(lw_error *err, const char *prefix)
{
    char f[2 * sizeof err->field + 64];
    snprintf(f, sizeof f, "%s%s%s", prefix, err->field[0] ? "." : "", err->field);
    snprintf(err->field, sizeof err->field, "%.95s", f);
}

static int import_latest(lwd_job *j, const cJSON *lat, lw_error *err)
{
    size_t T = j->T;
    wire_report r;
    int64_t step, v;
    const cJSON *it;
    if (!cJSON_IsObject(lat))
        return fail(err, LW_EINVAL, "position.latest", "position.latest must be an object or null");
    if (get_i64(cJSON_GetObjectItemCaseSensitive(lat, "step"), "position.latest.step", 0,
                (int64_t)1 << 53, &step, err))
        return LW_EINVAL;
    if (wire_parse_report(cJSON_GetObjectItemCaseSensitive(lat, "input"), T, 0, j->parse_buf, &r,
                          err) != 0) {
        prefix_field(err, "position.latest.input");
        return LW_EINVAL;
    }
    if (r.step != step)
        return fail(err, LW_EINVAL, "position.latest.input.step",
                    "position.latest.input.step differs from position.latest.step");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(lat, "weights");
    if (!cJSON_IsArray(w) || (size_t)cJSON_GetArraySize(w) != T)
        return fail(err, LW_EINVAL, "position.latest.weights",
                    "position.latest.weights must hold one number per task");
    lwd_decision d;
    memset(&d, 0, sizeof d);
    unsigned has = (r.losses ? HAS_LOSSES : 0) | (r.grad_norms ? HAS_GRAD_NORMS : 0) |
                   (r.gram ? HAS_GRAM : 0) | (r.losses_after ? HAS_LOSSES_AFTER : 0);
    size_t packed = (r.losses ? T : 0) + (r.grad_norms ? T : 0) + (r.gram ? T * T : 0) +
                    (r.losses_after ? T : 0);
    d.data = malloc((packed + T) * sizeof(double));
    d.present = calloc(((size_t)j->world + 7) / 8, 1);
    if (!d.data || !d.present)
        goto oom;
    size_t off = 0;
    if (r.losses)
        memcpy(d.data + off, r.losses, T * sizeof(double)), off += T;
    if (r.grad_norms)
        memcpy(d.data + off, r.grad_norms, T * sizeof(double)), off += T;
    if (r.gram)
        memcpy(d.data + off, r.gram, T * T * sizeof(double)), off += T * T;
    if (r.losses_after)
        memcpy(d.data + off, r.losses_after, T * sizeof(double)), off += T;
    double *wt = d.data + off;
    size_t i = 0;
    cJSON_ArrayForEach(it, w)
    {
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
            fail(err, LW_EINVAL, "position.latest.weights", "weights must be finite numbers");
            goto bad;
        }
        wt[i++] = it->valuedouble;
    }
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(lat, "ranks_present");
    if (!cJSON_IsArray(pr) || cJSON_GetArraySize(pr) < 1) {
        fail(err, LW_EINVAL, "position.latest.ranks_present",
             "position.latest.ranks_present must list the ranks of the decision");
        goto bad;
    }
    int n = 0;
    int64_t prev = -1;
    cJSON_ArrayForEach(it, pr)
    {
        if (get_i64(it, "position.latest.ranks_present", 0, j->world - 1, &v, err))
            goto bad;
        if (v <= prev) {
            fail(err, LW_EINVAL, "position.latest.ranks_present",
                 "ranks_present must be increasing");
            goto bad;
        }
        prev = v;
        d.present[v / 8] |= (uint8_t)(1u << (v % 8));
        n++;
    }
    if (n == j->world) {
        free(d.present);
        d.present = NULL;
    }
    d.step = step;
    d.epoch = r.epoch;
    d.has = has;
    d.nranks = n;
    d.body = decision_body(j, step, wt, n, &d.body_len);
    if (!d.body || steps_store_decision(j, &d) != 0)
        goto oom;
    return 0;
oom:
    fail(err, LW_ENOMEM, "", "out of memory");
bad:
    free(d.data);
    free(d.present);
    free(d.body);
    return err->code;
}

static int import_open(lwd_job *j, const cJSON *open, lw_error *err)
{
    const cJSON *so, *rep;
    int64_t prev = j->last_decided, step;
    char f[96];
    if (!cJSON_IsArray(open))
        return fail(err, LW_EINVAL, "position.open_steps", "position.open_steps must be an array");
    size_t k = 0;
    cJSON_ArrayForEach(so, open)
    {
        snprintf(f, sizeof f, "position.open_steps[%zu]", k);
        if (get_i64(cJSON_GetObjectItemCaseSensitive(so, "step"), f, prev + 1, (int64_t)1 << 53,
                    &step, err))
            return LW_EINVAL;
        prev = step;
        const cJSON *reps = cJSON_GetObjectItemCaseSensitive(so, "reports");
        if (!cJSON_IsArray(reps) || cJSON_GetArraySize(reps) < 1)
            return fail(err, LW_EINVAL, f, "an open step lists its reports");
        size_t ri = 0;
        cJSON_ArrayForEach(rep, reps)
        {
            wire_report r;
            snprintf(f, sizeof f, "position.open_steps[%zu].reports[%zu]", k, ri++);
            if (wire_parse_report(rep, j->T, 1, j->parse_buf, &r, err) != 0) {
                prefix_field(err, f);
                return LW_EINVAL;
            }
            if (r.step != step || r.rank >= j->world)
                return fail(err, LW_EINVAL, f, "a report of another step or rank out of range");
            lwd_pending *p = steps_find_open(j, step);
            if (p && p->by_rank[r.rank])
                return fail(err, LW_EINVAL, f, "a rank reports a step once");
            if (!steps_report_fits(p, &r))
                return fail(err, LW_EINVAL, f,
                            "the reports of a step carry the same inputs and epoch");
            lw_input in = wire_report_input(&r);
            if (lw_job_check(j->lw, &in, err) != 0) {
                prefix_field(err, f);
                return err->code;
            }
            if (!steps_record(j, r.rank, &r, report_digest(j, &r)))
                return fail(err, LW_ENOMEM, "", "out of memory");
        }
        k++;
    }
    return 0;
}

int state_import(const char *id, const cJSON *doc, lwd_job **out, lw_error *err)
{
    lwd_job *j = NULL;
    int64_t v;
    int rc;
    const cJSON *it;
    *out = NULL;
    memset(err, 0, sizeof *err);
    if (!cJSON_IsObject(doc))
        return fail(err, LW_EINVAL, "", "a state document is a JSON object");
    cJSON_ArrayForEach(it, doc)
    {
        static const char *const known[] = {"job", "format", "spec", "state", "position", NULL};
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= strcmp(it->string, known[i]) == 0;
        if (!ok) {
            char msg[160];
            snprintf(msg, sizeof msg, "unknown field \"%.64s\"", it->string);
            return fail(err, LW_EINVAL, it->string, msg);
        }
    }
    it = cJSON_GetObjectItemCaseSensitive(doc, "format");
    if (it && (!cJSON_IsString(it) || strcmp(it->valuestring, STATE_FORMAT) != 0))
        return fail(err, LW_EINVAL, "format", "format must be \"" STATE_FORMAT "\"");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(doc, "spec");
    if (!spec)
        return fail(err, LW_EINVAL, "spec", "spec is required");
    if ((rc = job_build(id, spec, &j, err)) != 0) {
        prefix_field(err, "spec");
        return rc;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(doc, "state");
    if (!st) {
        rc = fail(err, LW_EINVAL, "state", "state is required");
        goto bad;
    }
    if ((rc = wire_state_from_json(st, j->lw, err)) != 0)
        goto bad;

    const cJSON *pos = cJSON_GetObjectItemCaseSensitive(doc, "position");
    if (!cJSON_IsObject(pos)) {
        rc = fail(err, LW_EINVAL, "position", "position is required (an object)");
        goto bad;
    }
    rc = LW_EINVAL;
    it = cJSON_GetObjectItemCaseSensitive(pos, "steps_decided");
    if (it && get_i64(it, "position.steps_decided", 0, (int64_t)1 << 53, &v, err))
        goto bad;
    j->n_decided = it ? (uint64_t)v : 0;
    int64_t last = -1;
    it = cJSON_GetObjectItemCaseSensitive(pos, "last_decided");
    if (it && !cJSON_IsNull(it) &&
        get_i64(it, "position.last_decided", 0, (int64_t)1 << 53, &last, err))
        goto bad;
    it = cJSON_GetObjectItemCaseSensitive(pos, "latest");
    if (it && !cJSON_IsNull(it)) {
        if ((rc = import_latest(j, it, err)) != 0)
            goto bad;
        rc = LW_EINVAL;
        if (j->last_decided != last) {
            fail(err, LW_EINVAL, "position.last_decided",
                 "position.last_decided differs from position.latest.step");
            goto bad;
        }
    } else if (last >= 0) {
        fail(err, LW_EINVAL, "position.latest",
             "position.latest is required when a step was decided");
        goto bad;
    }
    it = cJSON_GetObjectItemCaseSensitive(pos, "rank_steps");
    if (it) {
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != j->world) {
            fail(err, LW_EINVAL, "position.rank_steps",
                 "position.rank_steps holds one step per rank");
            goto bad;
        }
        const cJSON *e;
        int r = 0;
        cJSON_ArrayForEach(e, it)
        {
            if (get_i64(e, "position.rank_steps", -1, (int64_t)1 << 53, &v, err))
                goto bad;
            j->ranks[r++].last_step = v;
        }
    }
    it = cJSON_GetObjectItemCaseSensitive(pos, "open_steps");
    if (it && (rc = import_open(j, it, err)) != 0)
        goto bad;
    *out = j;
    return 0;
bad:
    job_free(j);
    return rc ? rc : LW_EINVAL;
}
