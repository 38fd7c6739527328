/*
 * persist.c -- the content of the journal and of snapshots (formats in
 * persist.h), and how recovery applies them to the job table.
 *
 * Replaying is running the live code again: a journaled report goes
 * through steps_replay_report(), which records it and decides the step when
 * every rank is in -- the same calls, in the same order, as when it was
 * accepted -- and a barrier-timeout decision goes through
 * steps_replay_decide() with the ranks it had. Decisions are a pure
 * function of (spec, decided reports), so the state comes back bit for bit;
 * what was never journaled (retries, refusals, the closing of steps a later
 * decision overtook) is what replay re-derives or what changed nothing.
 *
 * A snapshot entry is one job: its state document (state_export: spec,
 * method state, position with the open steps' reports), plus what that
 * document leaves out because a person restoring a checkpoint does not need
 * it but a restarted daemon must answer the same: the whole history ring
 * (binary, so a snapshot of long histories stays cheap), each rank's recent
 * report digests (retries after a restart get the same answers), and the
 * open steps whose method failed (re-decided on load, failing the same way).
 *
 *   id, u32 n, n bytes of state document (JSON),
 *   u64 history entries, each: i64 step, i64 epoch, u32 parts, u32 ranks,
 *       u8 has_present, [bitmap], u32 n, n doubles (packed mean, weights),
 *   per rank: i64 last_step, u32 n, u32 next, LWD_RANK_RECENT x (i64, u64),
 *   u32 failed open steps, i64 each.
 *
 * Everything here runs on the loop thread; snapshot bytes are built here
 * and written by journal.c on the thread pool.
 */
#include "persist.h"

#include "crc32c.h"
#include "jobs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STEP_MAX ((int64_t)1 << 53) /* steps and epochs on the wire are in [0, 2^53] */

/* ---- buffers and framing ---- */

int jbuf_reserve(jbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

void jbuf_free(jbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

int jbuf_put(jbuf *b, const void *v, size_t n)
{
    if (jbuf_reserve(b, n) != 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, v, n);
    b->len += n;
    return 0;
}

static int put_u8(jbuf *b, unsigned v)
{
    uint8_t x = (uint8_t)v;
    return jbuf_put(b, &x, 1);
}

static int put_u16(jbuf *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return jbuf_put(b, x, 2);
}

static int put_u32(jbuf *b, uint32_t v)
{
    uint8_t x[4];
    le_put32(x, v);
    return jbuf_put(b, x, 4);
}

static int put_u64(jbuf *b, uint64_t v)
{
    uint8_t x[8];
    le_put64(x, v);
    return jbuf_put(b, x, 8);
}

/* Doubles are stored as their IEEE 754 bits, little-endian: on a
 * little-endian host that is memory order, one memcpy (snapshots are
 * mostly these). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define F64_NATIVE 1
#else
#define F64_NATIVE 0
#endif

static int put_f64s(jbuf *b, const double *v, size_t n)
{
    if (jbuf_reserve(b, 8 * n) != 0)
        return -1;
    if (F64_NATIVE && n) {
        memcpy(b->p + b->len, v, 8 * n);
        b->len += 8 * n;
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        le_put64(b->p + b->len, u);
        b->len += 8;
    }
    return 0;
}

static int put_id(jbuf *b, const char *id)
{
    size_t n = strlen(id);
    return put_u8(b, (unsigned)n) || jbuf_put(b, id, n) ? -1 : 0;
}

size_t rec_begin(jbuf *b, int type)
{
    static const uint8_t zero[REC_HDR];
    size_t at = b->len;
    if (jbuf_put(b, zero, REC_HDR) != 0)
        return (size_t)-1;
    b->p[at + 8] = (uint8_t)type;
    return at;
}

void rec_end(jbuf *b, size_t at)
{
    size_t len = b->len - at - REC_HDR;
    le_put32(b->p + at + 4, (uint32_t)len);
    le_put32(b->p + at, crc32c(0, b->p + at + 4, REC_HDR - 4 + len));
}

static int type_known(int t)
{
    return (t >= REC_JOB_CREATED && t <= REC_STEP_DECIDED) || t == REC_SNAP_JOB ||
           t == REC_SNAP_END;
}

/* The checks of a record header that cost no checksum: 0 and the payload
 * length, or -1 and why. */
static int rec_header(const uint8_t *p, size_t avail, size_t *len, const char **why)
{
    if (avail < REC_HDR) {
        *why = "record header cut short";
        return -1;
    }
    size_t n = le_get32(p + 4);
    if (n > REC_MAX || p[9] || p[10] || p[11] || !type_known(p[8])) {
        *why = "bad record header";
        return -1;
    }
    if (n > avail - REC_HDR) {
        *why = "record cut short";
        return -1;
    }
    *len = n;
    return 0;
}

int rec_check(const uint8_t *p, size_t avail, int *type, const uint8_t **payload, size_t *len,
              const char **why)
{
    size_t n;
    if (rec_header(p, avail, &n, why) != 0)
        return -1;
    if (crc32c(0, p + 4, REC_HDR - 4 + n) != le_get32(p)) {
        *why = "checksum mismatch";
        return -1;
    }
    *type = p[8];
    *payload = p + REC_HDR;
    *len = n;
    return 0;
}

/* ---- reading payloads ---- */

typedef struct cur {
    const uint8_t *p;
    size_t n, off;
    int bad;
} cur;

static const uint8_t *take(cur *c, size_t n)
{
    if (c->bad || n > c->n - c->off) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *p = c->p + c->off;
    c->off += n;
    return p;
}

static unsigned get_u8(cur *c)
{
    const uint8_t *p = take(c, 1);
    return p ? p[0] : 0;
}

static unsigned get_u16(cur *c)
{
    const uint8_t *p = take(c, 2);
    return p ? (unsigned)p[0] | (unsigned)p[1] << 8 : 0;
}

static uint32_t get_u32(cur *c)
{
    const uint8_t *p = take(c, 4);
    return p ? le_get32(p) : 0;
}

static uint64_t get_u64(cur *c)
{
    const uint8_t *p = take(c, 8);
    return p ? le_get64(p) : 0;
}

static int64_t get_i64(cur *c) { return (int64_t)get_u64(c); }

static double get_f64(cur *c)
{
    uint64_t u = get_u64(c);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void get_f64s(cur *c, double *v, size_t n)
{
    const uint8_t *p = take(c, 8 * n);
    if (F64_NATIVE && p && n) {
        memcpy(v, p, 8 * n);
        return;
    }
    for (size_t i = 0; p && i < n; i++) {
        uint64_t u = le_get64(p + 8 * i);
        memcpy(&v[i], &u, 8);
    }
}

/* The job id at the start of a payload, NUL-terminated into id. */
static int get_id(cur *c, char id[LWD_JOB_ID_MAX + 1])
{
    unsigned n = get_u8(c);
    const uint8_t *p = take(c, n);
    if (!p || n == 0 || n > LWD_JOB_ID_MAX)
        return -1;
    memcpy(id, p, n);
    id[n] = '\0';
    return job_id_valid(id) ? 0 : -1;
}

/* ---- encoding events ---- */

static unsigned parts_of(const wire_report *r)
{
    return (r->losses ? HAS_LOSSES : 0) | (r->grad_norms ? HAS_GRAD_NORMS : 0) |
           (r->gram ? HAS_GRAM : 0) | (r->losses_after ? HAS_LOSSES_AFTER : 0);
}

int persist_encode(const journal_event *ev, jbuf *b, int *skip)
{
    int type, rc = 0;
    *skip = 0;
    switch (ev->kind) {
    case JOURNAL_JOB_CREATED: type = REC_JOB_CREATED; break;
    case JOURNAL_JOB_DELETED: type = REC_JOB_DELETED; break;
    case JOURNAL_JOB_RESTORED: type = REC_JOB_RESTORED; break;
    case JOURNAL_REPORT: type = REC_REPORT; break;
    case JOURNAL_STEP_DECIDED:
        if (!ev->present) { /* every rank: follows from the reports */
            *skip = 1;
            return -1;
        }
        type = REC_STEP_DECIDED;
        break;
    default: *skip = 1; return -1; /* STEP_CLOSED: derived */
    }
    size_t at = rec_begin(b, type);
    if (at == (size_t)-1)
        return -1;
    rc |= put_id(b, ev->job);
    switch (ev->kind) {
    case JOURNAL_JOB_CREATED:
    case JOURNAL_JOB_RESTORED: rc |= jbuf_put(b, ev->doc, ev->doc_len); break;
    case JOURNAL_REPORT: {
        const wire_report *r = ev->report;
        size_t T = ev->tasks;
        rc |= put_u64(b, (uint64_t)ev->rank) | put_u64(b, (uint64_t)r->step) |
              put_u64(b, (uint64_t)r->epoch);
        rc |= put_f64s(b, &r->samples, 1) | put_u8(b, (unsigned)!!r->has_samples) |
              put_u8(b, parts_of(r)) | put_u16(b, (unsigned)T);
        if (r->losses)
            rc |= put_f64s(b, r->losses, T);
        if (r->grad_norms)
            rc |= put_f64s(b, r->grad_norms, T);
        if (r->gram)
            rc |= put_f64s(b, r->gram, T * T);
        if (r->losses_after)
            rc |= put_f64s(b, r->losses_after, T);
        break;
    }
    case JOURNAL_STEP_DECIDED:
        rc |= put_u64(b, (uint64_t)ev->step) | put_u32(b, (uint32_t)ev->world);
        rc |= jbuf_put(b, ev->present, ((size_t)ev->world + 7) / 8);
        break;
    default: break;
    }
    if (rc || b->len - at - REC_HDR > REC_MAX) {
        b->len = at;
        return -1;
    }
    rec_end(b, at);
    return 0;
}

/* ---- applying records ---- */

static cJSON *parse_json(const uint8_t *p, size_t n)
{
    return cJSON_ParseWithLengthOpts((const char *)p, n, NULL, 0);
}

static int all_finite(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* A journaled report is the parsed body of an accepted request, so it must
 * be one wire_parse_report() could have produced: anything else is damage
 * that a checksum happened not to catch (or a hand-made file), and
 * replaying it would put numbers in the job that no request can. */
static const char *report_invalid(const wire_report *r, unsigned parts, size_t T)
{
    if (parts & ~(unsigned)(HAS_LOSSES | HAS_GRAD_NORMS | HAS_GRAM | HAS_LOSSES_AFTER))
        return "unknown parts";
    if (r->step < 0 || r->step > STEP_MAX)
        return "step out of range";
    if (r->epoch < -1 || r->epoch > STEP_MAX)
        return "epoch out of range";
    if (r->has_samples != 0 && r->has_samples != 1)
        return "bad samples flag";
    if (r->has_samples ? !(isfinite(r->samples) && r->samples > 0) : r->samples != 1.0)
        return "samples out of range";
    if ((r->losses && !all_finite(r->losses, T)) ||
        (r->grad_norms && !all_finite(r->grad_norms, T)) ||
        (r->gram && !all_finite(r->gram, T * T)) ||
        (r->losses_after && !all_finite(r->losses_after, T)))
        return "a number that is not finite";
    return NULL;
}

static int apply_report(lwd_job *j, cur *c, char *msg, size_t msglen)
{
    size_t T = j->T;
    wire_report r;
    memset(&r, 0, sizeof r);
    r.rank = get_i64(c);
    r.step = get_i64(c);
    r.epoch = get_i64(c);
    r.samples = get_f64(c);
    r.has_samples = (int)get_u8(c);
    unsigned parts = get_u8(c);
    size_t t = get_u16(c);
    if (c->bad || t != T) {
        snprintf(msg, msglen, "job \"%s\": a report for %zu tasks, the job has %zu", j->id, t, T);
        return -1;
    }
    double *buf = j->parse_buf;
    if (parts & HAS_LOSSES)
        get_f64s(c, r.losses = buf, T);
    if (parts & HAS_GRAD_NORMS)
        get_f64s(c, r.grad_norms = buf + T, T);
    if (parts & HAS_GRAM)
        get_f64s(c, r.gram = buf + 2 * T, T * T);
    if (parts & HAS_LOSSES_AFTER)
        get_f64s(c, r.losses_after = buf + 2 * T + T * T, T);
    if (c->bad || c->off != c->n) {
        snprintf(msg, msglen, "job \"%s\": a report record of the wrong size", j->id);
        return -1;
    }
    const char *bad = report_invalid(&r, parts, T);
    if (bad) {
        snprintf(msg, msglen, "job \"%s\": a report no request could carry (%s)", j->id, bad);
        return -1;
    }
    return steps_replay_report(j, &r, msg, msglen);
}

int persist_apply(int type, const uint8_t *p, size_t n, char *msg, size_t msglen)
{
    cur c = {p, n, 0, 0};
    char id[LWD_JOB_ID_MAX + 1];
    lw_error err;
    if (get_id(&c, id) != 0) {
        snprintf(msg, msglen, "a record without a valid job id");
        return -1;
    }
    lwd_job *j = jobs_find(id), *nj;
    if (type != REC_JOB_CREATED && type != REC_JOB_RESTORED && !j) {
        snprintf(msg, msglen, "a record for job \"%s\", which does not exist", id);
        return -1;
    }
    switch (type) {
    case REC_JOB_CREATED:
    case REC_JOB_RESTORED: {
        if (type == REC_JOB_CREATED && j) {
            snprintf(msg, msglen, "job \"%s\" created twice", id);
            return -1;
        }
        cJSON *doc = parse_json(p + c.off, n - c.off);
        if (!doc) {
            snprintf(msg, msglen, "job \"%s\": the journaled document is not JSON", id);
            return -1;
        }
        int rc = type == REC_JOB_CREATED ? job_build(id, doc, &nj, &err)
                                         : state_import(id, doc, &nj, &err);
        cJSON_Delete(doc);
        if (rc != 0) {
            snprintf(msg, msglen, "job \"%s\": %s%s%s", id, err.message,
                     err.field[0] ? " (field " : "", err.field[0] ? err.field : "");
            if (err.field[0])
                strncat(msg, ")", msglen - strlen(msg) - 1);
            return -1;
        }
        if (persist_check_job(nj, msg, msglen) != 0) {
            job_free(nj);
            return -1;
        }
        if (j) {
            jobs_remove(j);
            job_free(j);
        }
        jobs_insert(nj);
        return 0;
    }
    case REC_JOB_DELETED:
        if (c.off != n) {
            snprintf(msg, msglen, "job \"%s\": a delete record of the wrong size", id);
            return -1;
        }
        jobs_remove(j);
        job_free(j);
        return 0;
    case REC_REPORT: return apply_report(j, &c, msg, msglen);
    case REC_STEP_DECIDED: {
        int64_t step = get_i64(&c);
        uint32_t world = get_u32(&c);
        const uint8_t *present = take(&c, ((size_t)world + 7) / 8);
        if (c.bad || c.off != n || (int)world != j->world) {
            snprintf(msg, msglen, "job \"%s\": a decision record of the wrong size", id);
            return -1;
        }
        return steps_replay_decide(j, step, present, msg, msglen);
    }
    }
    snprintf(msg, msglen, "a record of type %d does not belong in the journal", type);
    return -1;
}

/* ---- snapshots ---- */

static size_t packed_len(const lwd_job *j, unsigned has)
{
    size_t T = j->T;
    return (has & HAS_LOSSES ? T : 0) + (has & HAS_GRAD_NORMS ? T : 0) +
           (has & HAS_GRAM ? T * T : 0) + (has & HAS_LOSSES_AFTER ? T : 0);
}

static int snapshot_job(jbuf *b, const lwd_job *j)
{
    int rc = 0;
    size_t at = rec_begin(b, REC_SNAP_JOB);
    if (at == (size_t)-1)
        return -1;
    cJSON *doc = state_export(j, 0);
    char *s = doc ? wire_print(doc) : NULL;
    cJSON_Delete(doc);
    if (!s)
        return -1;
    size_t sl = strlen(s);
    rc |= put_id(b, j->id) | put_u32(b, (uint32_t)sl) | jbuf_put(b, s, sl);
    free(s);

    size_t bm = ((size_t)j->world + 7) / 8;
    rc |= put_u64(b, j->hist.len);
    for (size_t i = 0; i < j->hist.len && !rc; i++) {
        /* One reservation per decision, then plain stores: the history is
         * most of a snapshot, and a call per field was most of its time. */
        const lwd_decision *d = hist_at(&j->hist, i);
        size_t nd = packed_len(j, d->has) + j->T, pb = d->present ? bm : 0;
        size_t size = 8 + 8 + 4 + 4 + 1 + pb + 4 + 8 * nd;
        if (jbuf_reserve(b, size) != 0) {
            rc = -1;
            break;
        }
        uint8_t *q = b->p + b->len;
        le_put64(q, (uint64_t)d->step);
        le_put64(q + 8, (uint64_t)d->epoch);
        le_put32(q + 16, d->has);
        le_put32(q + 20, (uint32_t)d->nranks);
        q[24] = (uint8_t)!!d->present;
        if (pb)
            memcpy(q + 25, d->present, pb);
        le_put32(q + 25 + pb, (uint32_t)nd);
        b->len += 29 + pb;
        put_f64s(b, d->data, nd); /* reserved above: cannot fail */
    }
    for (int r = 0; r < j->world; r++) {
        const lwd_rank *rk = &j->ranks[r];
        rc |= put_u64(b, (uint64_t)rk->last_step) | put_u32(b, rk->n) | put_u32(b, rk->next);
        for (int k = 0; k < LWD_RANK_RECENT; k++)
            rc |= put_u64(b, (uint64_t)rk->rstep[k]) | put_u64(b, rk->rdigest[k]);
    }
    uint32_t nf = 0;
    for (const lwd_pending *p = j->open; p; p = p->next)
        nf += p->failed ? 1 : 0;
    rc |= put_u32(b, nf);
    for (const lwd_pending *p = j->open; p; p = p->next)
        if (p->failed)
            rc |= put_u64(b, (uint64_t)p->step);
    if (rc || b->len - at - REC_HDR > REC_MAX)
        return -1;
    rec_end(b, at);
    return 0;
}

int persist_snapshot(jbuf *b, size_t *njobs)
{
    size_t n;
    lwd_job **v = jobs_sorted(&n);
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (snapshot_job(b, v[i]) != 0) {
            free(v);
            return -1;
        }
    free(v);
    size_t at = rec_begin(b, REC_SNAP_END);
    if (at == (size_t)-1 || put_u64(b, n) != 0)
        return -1;
    rec_end(b, at);
    *njobs = n;
    return 0;
}

/* The same decision (the snapshot's history must end with the document's
 * latest, which state_import checked). */
static int same_decision(const lwd_job *j, const lwd_decision *a, const lwd_decision *b)
{
    size_t bm = ((size_t)j->world + 7) / 8;
    return a->step == b->step && a->epoch == b->epoch && a->has == b->has &&
           a->nranks == b->nranks && !a->present == !b->present &&
           (!a->present || memcmp(a->present, b->present, bm) == 0) &&
           memcmp(a->data, b->data, (packed_len(j, a->has) + j->T) * sizeof(double)) == 0;
}

static int load_history(lwd_job *j, cur *c, char *msg, size_t msglen)
{
    int64_t last = j->last_decided;
    size_t bm = ((size_t)j->world + 7) / 8;
    uint64_t nh = get_u64(c);
    /* keep the document's latest decision to compare with the history's */
    lwd_decision latest;
    memset(&latest, 0, sizeof latest);
    const lwd_decision *dl = hist_latest(&j->hist);
    if (dl) {
        latest = *dl;
        latest.body = NULL;
        latest.data = malloc((packed_len(j, dl->has) + j->T) * sizeof(double));
        latest.present = dl->present ? malloc(bm) : NULL;
        if (!latest.data || (dl->present && !latest.present)) {
            free(latest.data);
            free(latest.present);
            snprintf(msg, msglen, "out of memory");
            return -1;
        }
        memcpy(latest.data, dl->data, (packed_len(j, dl->has) + j->T) * sizeof(double));
        if (dl->present)
            memcpy(latest.present, dl->present, bm);
    }
    int rc = -1;
    hist_clear(&j->hist);
    j->last_decided = -1;
    for (uint64_t i = 0; i < nh && !c->bad; i++) {
        lwd_decision d;
        memset(&d, 0, sizeof d);
        d.step = get_i64(c);
        d.epoch = get_i64(c);
        d.has = get_u32(c);
        d.nranks = (int)get_u32(c);
        unsigned hp = get_u8(c);
        const uint8_t *pm = hp ? take(c, bm) : NULL;
        size_t nd = get_u32(c);
        if (c->bad || nd != packed_len(j, d.has) + j->T || d.step <= j->last_decided ||
            d.nranks < 1 || d.nranks > j->world) {
            snprintf(msg, msglen, "job \"%s\": history entry %llu does not fit the job", j->id,
                     (unsigned long long)i);
            goto out;
        }
        d.data = malloc(nd * sizeof(double));
        d.present = pm ? malloc(bm) : NULL;
        if (!d.data || (pm && !d.present)) {
            free(d.data);
            free(d.present);
            snprintf(msg, msglen, "out of memory");
            goto out;
        }
        if (pm)
            memcpy(d.present, pm, bm);
        get_f64s(c, d.data, nd);
        if (c->bad || steps_store_decision(j, &d) != 0) {
            free(d.data);
            free(d.present);
            snprintf(msg, msglen, "job \"%s\": history entry %llu is cut short", j->id,
                     (unsigned long long)i);
            goto out;
        }
    }
    if (j->last_decided != last) {
        snprintf(msg, msglen, "job \"%s\": the history ends at step %lld, the state at %lld",
                 j->id, (long long)j->last_decided, (long long)last);
        goto out;
    }
    if (dl && !same_decision(j, &latest, hist_latest(&j->hist))) {
        snprintf(msg, msglen, "job \"%s\": the history's last step is not the state's latest",
                 j->id);
        goto out;
    }
    rc = 0;
out:
    free(latest.data);
    free(latest.present);
    return rc;
}

int persist_load_job(const uint8_t *p, size_t n, char *msg, size_t msglen)
{
    cur c = {p, n, 0, 0};
    char id[LWD_JOB_ID_MAX + 1];
    lw_error err;
    lwd_job *j = NULL;
    if (get_id(&c, id) != 0) {
        snprintf(msg, msglen, "a snapshot entry without a valid job id");
        return -1;
    }
    if (jobs_find(id)) {
        snprintf(msg, msglen, "job \"%s\" is twice in the snapshot", id);
        return -1;
    }
    size_t sl = get_u32(&c);
    const uint8_t *s = take(&c, sl);
    cJSON *doc = s ? parse_json(s, sl) : NULL;
    if (!doc) {
        snprintf(msg, msglen, "job \"%s\": the state document is not JSON", id);
        return -1;
    }
    int rc = state_import(id, doc, &j, &err);
    cJSON_Delete(doc);
    if (rc != 0) {
        snprintf(msg, msglen, "job \"%s\": %s (field %s)", id, err.message, err.field);
        return -1;
    }
    if (load_history(j, &c, msg, msglen) != 0)
        goto bad;
    for (int r = 0; r < j->world; r++) {
        lwd_rank *rk = &j->ranks[r];
        int64_t doc_last = rk->last_step; /* the document's rank_steps (and open reports) */
        rk->last_step = get_i64(&c);
        if (!c.bad && rk->last_step != doc_last) {
            snprintf(msg, msglen, "job \"%s\": rank %d's last step is %lld, the state says %lld",
                     id, r, (long long)rk->last_step, (long long)doc_last);
            goto bad;
        }
        rk->n = get_u32(&c);
        rk->next = get_u32(&c);
        for (int k = 0; k < LWD_RANK_RECENT; k++) {
            rk->rstep[k] = get_i64(&c);
            rk->rdigest[k] = get_u64(&c);
        }
        if (rk->n > LWD_RANK_RECENT || rk->next >= LWD_RANK_RECENT)
            c.bad = 1;
    }
    uint32_t nf = get_u32(&c);
    if (c.bad) {
        snprintf(msg, msglen, "job \"%s\": the snapshot entry is cut short", id);
        goto bad;
    }
    for (uint32_t i = 0; i < nf; i++) {
        int64_t step = get_i64(&c);
        if (c.bad || steps_replay_decide(j, step, NULL, msg, msglen) != 0) {
            if (c.bad)
                snprintf(msg, msglen, "job \"%s\": the snapshot entry is cut short", id);
            goto bad;
        }
    }
    if (c.off != c.n) {
        snprintf(msg, msglen, "job \"%s\": trailing bytes in the snapshot entry", id);
        goto bad;
    }
    if (persist_check_job(j, msg, msglen) != 0)
        goto bad;
    jobs_insert(j);
    return 0;
bad:
    job_free(j);
    return -1;
}

void persist_recovered(void)
{
    size_t n;
    lwd_job **v = jobs_sorted(&n);
    for (size_t i = 0; v && i < n; i++) {
        lwd_job *j = v[i];
        for (lwd_pending *p = j->open; p; p = p->next)
            steps_arm_timer(j, p);
    }
    free(v);
}

/* ---- what a job must look like ---- */

static int popcount8(unsigned x)
{
    int n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

/* A ranks bitmap of `world` bits with exactly `n` set and none beyond. */
static int bitmap_fits(const uint8_t *b, int world, int n)
{
    size_t bm = ((size_t)world + 7) / 8;
    int set = 0;
    for (size_t i = 0; i < bm; i++)
        set += popcount8(b[i]);
    if (world % 8 && b[bm - 1] >> (world % 8))
        return 0;
    return set == n;
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        snprintf(msg, msglen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

int persist_check_job(const lwd_job *j, char *msg, size_t msglen)
{
    const size_t T = j->T;
    const unsigned known = HAS_LOSSES | HAS_GRAD_NORMS | HAS_GRAM | HAS_LOSSES_AFTER;
    if (!job_id_valid(j->id))
        BAD("a job with an invalid id");
    if (j->world < 1 || j->min_ranks < 1 || j->min_ranks > j->world || T < 1)
        BAD("job \"%s\": bad shape", j->id);

    /* history: ascending steps, the last one is last_decided */
    int64_t prev = -1;
    for (size_t i = 0; i < j->hist.len; i++) {
        const lwd_decision *d = hist_at(&j->hist, i);
        if (d->step <= prev || d->step > STEP_MAX)
            BAD("job \"%s\": history entry %zu: step %lld out of order", j->id, i,
                (long long)d->step);
        prev = d->step;
        if ((d->has & ~known) || d->epoch < -1 || d->epoch > STEP_MAX)
            BAD("job \"%s\": history entry %zu: bad parts or epoch", j->id, i);
        if (d->nranks < 1 || d->nranks > j->world ||
            (d->present ? d->nranks == j->world || !bitmap_fits(d->present, j->world, d->nranks)
                        : d->nranks != j->world))
            BAD("job \"%s\": history entry %zu: ranks do not add up", j->id, i);
        if (!all_finite(d->data, packed_len(j, d->has) + T))
            BAD("job \"%s\": history entry %zu: a number that is not finite", j->id, i);
    }
    if (j->hist.len ? prev != j->last_decided : j->last_decided != -1)
        BAD("job \"%s\": last decided step %lld is not the history's", j->id,
            (long long)j->last_decided);

    /* open steps: ascending, after the last decided one, reports that a
     * request could have carried, all of one shape */
    size_t n_open = 0;
    prev = j->last_decided;
    for (const lwd_pending *p = j->open; p; p = p->next, n_open++) {
        if (p->step <= prev || p->step > STEP_MAX)
            BAD("job \"%s\": open step %lld out of order", j->id, (long long)p->step);
        prev = p->step;
        if (p->job != j)
            BAD("job \"%s\": open step %lld belongs to another job", j->id, (long long)p->step);
        const lwd_report *first = NULL;
        int n = 0;
        for (int r = 0; r < j->world; r++) {
            const lwd_report *rep = p->by_rank[r];
            if (!rep)
                continue;
            n++;
            if (!first)
                first = rep;
            if (rep->has != first->has || rep->epoch != first->epoch || (rep->has & ~known) ||
                rep->epoch < -1 || rep->epoch > STEP_MAX)
                BAD("job \"%s\": open step %lld: reports of different shapes", j->id,
                    (long long)p->step);
            if ((rep->has_samples != 0 && rep->has_samples != 1) ||
                (rep->has_samples ? !(isfinite(rep->samples) && rep->samples > 0)
                                  : rep->samples != 1.0))
                BAD("job \"%s\": open step %lld: bad samples", j->id, (long long)p->step);
            if (!all_finite(rep->data, j->rep_len))
                BAD("job \"%s\": open step %lld: a number that is not finite", j->id,
                    (long long)p->step);
            if (j->ranks[r].last_step < p->step)
                BAD("job \"%s\": rank %d reported open step %lld after its last step %lld", j->id,
                    r, (long long)p->step, (long long)j->ranks[r].last_step);
        }
        if (n < 1 || n != p->nranks)
            BAD("job \"%s\": open step %lld: %d reports, %d counted", j->id, (long long)p->step, n,
                p->nranks);
        if (p->failed && p->nranks < j->min_ranks)
            BAD("job \"%s\": open step %lld failed with fewer than min_ranks", j->id,
                (long long)p->step);
    }
    if (n_open != j->n_open)
        BAD("job \"%s\": %zu open steps, %zu counted", j->id, n_open, j->n_open);

    for (int r = 0; r < j->world; r++) {
        const lwd_rank *rk = &j->ranks[r];
        if (rk->last_step < -1 || rk->last_step > STEP_MAX || rk->n > LWD_RANK_RECENT ||
            rk->next >= LWD_RANK_RECENT || (rk->n < LWD_RANK_RECENT && rk->next != rk->n))
            BAD("job \"%s\": rank %d: bad position", j->id, r);
        for (unsigned k = 0; k < rk->n; k++)
            if (rk->rstep[k] < 0 || rk->rstep[k] > rk->last_step)
                BAD("job \"%s\": rank %d: a recent step after its last one", j->id, r);
    }
    return 0;
}

#undef BAD

/* ---- reading files ---- */

/* Is there a valid record anywhere at or after `from`? */
/* Payload bytes valid_record_after() may checksum. Bytes of a torn write
 * almost never pass a header's cheap checks, so a real torn tail costs about
 * one pass over it; only crafted headers, each claiming a long payload, could
 * make the scan quadratic (a start-up that never ends). Past the budget it
 * cannot rule a valid record out, and the caller refuses rather than drop
 * what might be acknowledged reports. */
#define SCAN_CRC_BUDGET ((size_t)1 << 28)

/* 1: a record at an offset >= from checks out; 0: none does; -1: the
 * checksum budget ran out first. */
static int valid_record_after(const uint8_t *p, size_t n, size_t from)
{
    int type;
    const uint8_t *pl;
    size_t len, spent = 0;
    const char *why;
    for (size_t o = from; o + REC_HDR <= n; o++) {
        if (rec_header(p + o, n - o, &len, &why) != 0)
            continue;
        if ((spent += len) > SCAN_CRC_BUDGET)
            return -1;
        if (rec_check(p + o, n - o, &type, &pl, &len, &why) == 0)
            return 1;
    }
    return 0;
}

static void result(persist_result *res, persist_outcome o, size_t off, const char *why)
{
    res->outcome = o;
    res->off = off;
    res->why = why;
}

void persist_replay_segment(const uint8_t *p, size_t n, uint64_t no, int last,
                            persist_result *res)
{
    uint8_t h[FILE_HDR];
    memset(res, 0, sizeof *res);
    file_header(h, SEG_MAGIC, no);
    if (n < FILE_HDR) {
        if (!last || (n && memcmp(p, h, n) != 0))
            result(res, PERSIST_BAD_HEADER, 0, "segment header cut short");
        else
            result(res, PERSIST_TORN_HEADER, 0, "segment header cut short");
        return;
    }
    if (memcmp(p, h, FILE_HDR) != 0) {
        result(res, PERSIST_BAD_HEADER, 0, "not a journal segment header (or another segment's)");
        return;
    }
    size_t off = FILE_HDR;
    while (off < n) {
        int type;
        const uint8_t *pl;
        size_t len;
        const char *why;
        if (rec_check(p + off, n - off, &type, &pl, &len, &why) == 0) {
            if (persist_apply(type, pl, len, res->detail, sizeof res->detail) == 0) {
                off += REC_HDR + len;
                res->records++;
                continue;
            }
            why = "a record that does not apply";
        } else {
            int after = last ? valid_record_after(p, n, off + 1) : 1;
            if (after == 0) {
                result(res, PERSIST_TORN, off, why); /* a torn last write */
                return;
            }
            if (after < 0)
                snprintf(res->detail, sizeof res->detail,
                         "%s, followed by more record headers than could be checked "
                         "(crafted?): not dropped as a torn write",
                         why);
            else
                res->detail[0] = '\0';
        }
        result(res, PERSIST_CORRUPT, off, why);
        return;
    }
    result(res, PERSIST_OK, n, NULL);
}

void persist_load_snapshot(const uint8_t *p, size_t n, uint64_t no, persist_result *res)
{
    uint8_t h[FILE_HDR];
    int type;
    const uint8_t *pl;
    size_t len, off = FILE_HDR, count = 0;
    const char *why = NULL;
    memset(res, 0, sizeof *res);
    file_header(h, SNAP_MAGIC, no);
    if (n < FILE_HDR || memcmp(p, h, FILE_HDR) != 0) {
        why = "bad snapshot header";
        off = 0;
    }
    while (!why) {
        if (rec_check(p + off, n - off, &type, &pl, &len, &why) != 0)
            break;
        if (type == REC_SNAP_END) {
            if (len != 8 || le_get64(pl) != count || off + REC_HDR + len != n)
                why = "bad end record";
            break;
        }
        if (type != REC_SNAP_JOB) {
            why = "a record that does not belong in a snapshot";
            break;
        }
        count++;
        off += REC_HDR + len;
    }
    if (why) {
        result(res, PERSIST_INVALID, off, why);
        return;
    }
    for (off = FILE_HDR;;) {
        rec_check(p + off, n - off, &type, &pl, &len, &why);
        if (type == REC_SNAP_END)
            break;
        if (persist_load_job(pl, len, res->detail, sizeof res->detail) != 0) {
            result(res, PERSIST_CORRUPT, off, "a snapshot entry that does not load");
            return;
        }
        res->records++;
        off += REC_HDR + len;
    }
    result(res, PERSIST_OK, n, NULL);
}
