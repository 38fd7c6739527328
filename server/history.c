/*
 * history.c -- the ring of a job's decided steps.
 *
 * Decided steps arrive in increasing step order (deciding a step closes the
 * open ones below it), so the ring is sorted by step and lookups are binary
 * searches. It grows by doubling up to its maximum (--history, capped per
 * job by memory: see job_build), then the oldest entry is evicted. An
 * entry keeps the mean input exactly as lw_job_step() got it, packed
 * (only the parts present), the weights, the ranks present and the
 * decision body printed once.
 */
#include "jobs.h"

#include <stdlib.h>
#include <string.h>

void hist_init(lwd_history *h, size_t max)
{
    memset(h, 0, sizeof *h);
    h->max = max ? max : 1;
}

static void decision_release(lwd_decision *d)
{
    free(d->data);
    free(d->present);
    free(d->body);
    memset(d, 0, sizeof *d);
}

void hist_clear(lwd_history *h)
{
    for (size_t i = 0; i < h->len; i++)
        decision_release(&h->v[(h->head + i) % h->cap]);
    free(h->v);
    size_t max = h->max;
    hist_init(h, max);
}

/* Make room for one more entry without failing later. */
static int hist_reserve(lwd_history *h)
{
    if (h->len < h->cap || h->cap == h->max)
        return 0;
    size_t cap = h->cap ? h->cap * 2 : 16;
    if (cap > h->max)
        cap = h->max;
    lwd_decision *v = malloc(cap * sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < h->len; i++)
        v[i] = h->v[(h->head + i) % h->cap];
    free(h->v);
    h->v = v;
    h->cap = cap;
    h->head = 0;
    return 0;
}

int hist_push(lwd_history *h, lwd_decision *d)
{
    if (hist_reserve(h) != 0)
        return -1;
    if (h->len == h->cap) { /* full at max: evict the oldest */
        decision_release(&h->v[h->head]);
        h->head = (h->head + 1) % h->cap;
        h->len--;
    }
    h->v[(h->head + h->len) % h->cap] = *d;
    h->len++;
    memset(d, 0, sizeof *d);
    return 0;
}

const lwd_decision *hist_at(const lwd_history *h, size_t i)
{
    return i < h->len ? &h->v[(h->head + i) % h->cap] : NULL;
}

const lwd_decision *hist_latest(const lwd_history *h)
{
    return h->len ? hist_at(h, h->len - 1) : NULL;
}

size_t hist_lower_bound(const lwd_history *h, int64_t s)
{
    size_t lo = 0, hi = h->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (hist_at(h, mid)->step < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const lwd_decision *hist_find(const lwd_history *h, int64_t s)
{
    size_t i = hist_lower_bound(h, s);
    const lwd_decision *d = hist_at(h, i);
    return d && d->step == s ? d : NULL;
}

lw_input decision_input(const lwd_job *job, const lwd_decision *d)
{
    size_t T = job->T, off = 0;
    lw_input in;
    memset(&in, 0, sizeof in);
    in.step = (uint64_t)d->step;
    in.epoch = d->epoch;
    if (d->has & HAS_LOSSES)
        in.losses = d->data + off, off += T;
    if (d->has & HAS_GRAD_NORMS)
        in.grad_norms = d->data + off, off += T;
    if (d->has & HAS_GRAM)
        in.gram = d->data + off, off += T * T;
    if (d->has & HAS_LOSSES_AFTER)
        in.losses_after = d->data + off, off += T;
    return in;
}

/* The weights follow the packed mean input. */
static const double *decision_weights(const lwd_job *job, const lwd_decision *d)
{
    size_t T = job->T, off = 0;
    if (d->has & HAS_LOSSES)
        off += T;
    if (d->has & HAS_GRAD_NORMS)
        off += T;
    if (d->has & HAS_GRAM)
        off += T * T;
    if (d->has & HAS_LOSSES_AFTER)
        off += T;
    return d->data + off;
}

const char *hist_body(const lwd_job *job, const lwd_decision *d, size_t *len)
{
    if (!d->body) {
        /* The ring's entries belong to the job; readers get const pointers,
         * and filling in the printed form does not change the decision. */
        lwd_decision *m = (lwd_decision *)d;
        m->body = decision_body(job, d->step, decision_weights(job, d), d->nranks, &m->body_len);
        if (!m->body) {
            log_msg(LL_ERROR, "out_of_memory", "cannot print a decision");
            abort();
        }
    }
    *len = d->body_len;
    return d->body;
}

cJSON *hist_item_json(const lwd_job *job, const lwd_decision *d)
{
    lw_input in = decision_input(job, d);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "step", json_int(d->step));
    cJSON_AddItemToObject(o, "input", wire_input_to_json(&in, job->T));
    cJSON_AddItemToObject(o, "weights", wire_doubles(decision_weights(job, d), job->T));
    cJSON_AddItemToObject(o, "ranks", json_int(d->nranks));
    cJSON *pr = cJSON_AddArrayToObject(o, "ranks_present");
    for (int r = 0; r < job->world; r++)
        if (!d->present || (d->present[r / 8] >> (r % 8) & 1))
            cJSON_AddItemToArray(pr, json_int(r));
    return o;
}
