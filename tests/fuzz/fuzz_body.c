/*
 * fuzz_body.c -- libFuzzer target over the request-body path of lossweightd:
 * the body pre-checks (server/body.c body_parse: nesting, UTF-8, NUL bytes,
 * trailing bytes, duplicate keys), then what the handlers do with the tree:
 * wire_parse_spec + lw_job_create (PUT /v1/jobs/{job}) and
 * wire_parse_report + lw_job_check + lw_job_step (POST .../reports).
 *
 * An input is up to 17 bodies separated by form feeds (0x0c, which JSON never
 * needs unescaped): the first is a job spec, the others reports to that job.
 * A single body is tried both ways: as a spec, and as a report to a few fixed
 * jobs (uw, mgda, gradnorm, dwa) cloned per input so runs stay independent.
 *
 * Besides the sanitizers (ASan, UBSan, no recovery), the target checks what
 * the daemon relies on, and aborts when it does not hold:
 *   - the canonical spec (what PUT echoes and the state export carries)
 *     parses back to a job with the same canonical spec;
 *   - a failed lw_job_step changes no state; a successful one gives finite
 *     weights;
 *   - a parsed report printed the way history prints it reads back to the
 *     same numbers (bit-exact printing);
 *   - the state exported after the reports, restored into a new job from
 *     the same spec, gives the same bits as the original on the next step.
 *
 * Seeds: proto/examples (tests/fuzz/run.sh builds the corpus).
 */
#include "server.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODIES 17

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Smaller than the daemon's defaults so that a step stays cheap. */
static const wire_limits limits = {64, 64};

static void check(int ok, const char *what, const char *detail)
{
    if (!ok) {
        fprintf(stderr, "fuzz_body: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        abort();
    }
}

/* ---- fixed jobs for single-body inputs ---- */

static const char *const fixed_specs[] = {
    "{\"tasks\": [\"a\", \"b\", \"c\"], \"method\": \"uw\"}",
    "{\"tasks\": [\"a\", \"b\", \"c\"], \"method\": \"mgda\", \"world_size\": 4}",
    "{\"tasks\": [\"a\", \"b\"], \"method\": \"gradnorm\"}",
    "{\"tasks\": [\"a\", \"b\"], \"method\": \"dwa\", \"world_size\": 2}",
};
#define N_FIXED (sizeof fixed_specs / sizeof fixed_specs[0])

typedef struct job {
    wire_spec spec;
    lw_job *lw;
} job;

static job fixed[N_FIXED];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    for (size_t i = 0; i < N_FIXED; i++) {
        lw_error err;
        cJSON *doc = cJSON_Parse(fixed_specs[i]);
        check(doc && wire_parse_spec(doc, &limits, &fixed[i].spec, &err) == 0 &&
                  lw_job_create(&fixed[i].spec.lib, &fixed[i].lw, &err) == 0,
              "a fixed job does not build", fixed_specs[i]);
        cJSON_Delete(doc);
    }
    return 0;
}

/* ---- oracles ---- */

static char *canonical(const wire_spec *s, const lw_job *lw)
{
    cJSON *c = wire_spec_to_json(s, lw);
    char *p = c ? wire_print(c) : NULL;
    cJSON_Delete(c);
    check(p != NULL, "out of memory", NULL);
    return p;
}

/* Known, reported: stch's canonical spec names the parameters of the other
 * variant (filled with defaults) and lw_job_create then refuses them
 * ("params.preference applies only to variant linear"). Skip the check for
 * stch until the library accepts its own canonical spec. */
static int roundtrip_known_broken(const lw_job *lw)
{
    return strcmp(lw_job_method(lw)->name, "stch") == 0;
}

static void check_canonical_roundtrip(const wire_spec *s, const lw_job *lw)
{
    char *a = canonical(s, lw);
    cJSON *doc = cJSON_Parse(a);
    wire_spec s2;
    lw_job *lw2 = NULL;
    lw_error err;
    check(doc != NULL, "the canonical spec is not JSON", a);
    if (wire_parse_spec(doc, &limits, &s2, &err) != 0) {
        check(roundtrip_known_broken(lw), "the canonical spec does not parse back", err.message);
        cJSON_Delete(doc);
        free(a);
        return;
    }
    if (lw_job_create(&s2.lib, &lw2, &err) != 0) {
        check(roundtrip_known_broken(lw), "the canonical spec does not create a job", err.message);
    } else {
        char *b = canonical(&s2, lw2);
        check(strcmp(a, b) == 0, "the canonical spec is not a fixed point", b);
        free(b);
        lw_job_free(lw2);
    }
    wire_spec_free(&s2);
    cJSON_Delete(doc);
    free(a);
}

/* A copy of every state array, to compare after a failed step. */
typedef struct state_copy {
    size_t n, total;
    double *v;
} state_copy;

static void state_save(const lw_job *lw, state_copy *c)
{
    c->n = lw_job_state_count(lw);
    c->total = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t len;
        lw_job_state_name(lw, i, &len);
        c->total += len;
    }
    c->v = malloc((c->total ? c->total : 1) * sizeof(double));
    check(c->v != NULL, "out of memory", NULL);
    size_t off = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t len;
        lw_job_state_name(lw, i, &len);
        memcpy(c->v + off, lw_job_state_get(lw, i), len * sizeof(double));
        off += len;
    }
}

static int state_same(const lw_job *lw, const state_copy *c)
{
    size_t off = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t len;
        lw_job_state_name(lw, i, &len);
        if (memcmp(c->v + off, lw_job_state_get(lw, i), len * sizeof(double)) != 0)
            return 0;
        off += len;
    }
    return 1;
}

static int same_numbers(const double *a, const double *b, size_t n)
{
    if (!a || !b)
        return a == b;
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i])) /* -0.0 prints as 0: equal, not the same bits */
            return 0;
    return 1;
}

/* History prints a mean input with wire_input_to_json; replay reads it back. */
static void check_input_roundtrip(const lw_input *in, size_t T)
{
    cJSON *o = wire_input_to_json(in, T);
    char *p = o ? wire_print(o) : NULL;
    cJSON_Delete(o);
    check(p != NULL, "out of memory", NULL);
    cJSON *doc = cJSON_Parse(p);
    double *buf = malloc(wire_report_buf_len(T) * sizeof(double));
    wire_report r;
    lw_error err;
    check(doc && buf, "a printed input is not JSON", p);
    check(wire_parse_report(doc, T, 0, buf, &r, &err) == 0, "a printed input does not parse back",
          err.message);
    check((uint64_t)r.step == in->step && r.epoch == (in->epoch < 0 ? -1 : in->epoch) &&
              same_numbers(r.losses, in->losses, T) &&
              same_numbers(r.grad_norms, in->grad_norms, T) &&
              same_numbers(r.gram, in->gram, T * T) &&
              same_numbers(r.losses_after, in->losses_after, T),
          "a printed input reads back to other numbers", p);
    cJSON_Delete(doc);
    free(buf);
    free(p);
}

/* Export the state, restore it into a new job from the same spec, step
 * both with the same input: the same bits. */
static void check_export_restore(const wire_spec *s, const lw_job *lw, const lw_input *next)
{
    lw_job *orig = lw_job_clone(lw), *back = NULL;
    lw_error err;
    check(orig != NULL, "out of memory", NULL);
    check(lw_job_create(&s->lib, &back, &err) == 0, "the spec no longer creates", err.message);
    cJSON *st = wire_state_json(orig);
    char *p = st ? wire_print(st) : NULL;
    cJSON_Delete(st);
    check(p != NULL, "out of memory", NULL);
    cJSON *doc = cJSON_Parse(p);
    check(doc && wire_state_from_json(doc, back, &err) == 0, "an exported state does not restore",
          err.message);
    size_t T = lw_job_tasks(lw);
    double *w1 = malloc(T * sizeof(double)), *w2 = malloc(T * sizeof(double));
    check(w1 && w2, "out of memory", NULL);
    lw_error e1, e2;
    int r1 = lw_job_step(orig, next, w1, &e1), r2 = lw_job_step(back, next, w2, &e2);
    check(r1 == r2, "a restored job and its original disagree on a step's success", e1.message);
    check(r1 != 0 || memcmp(w1, w2, T * sizeof(double)) == 0,
          "a restored job decides other bits than its original", p);
    free(w1);
    free(w2);
    cJSON_Delete(doc);
    free(p);
    lw_job_free(orig);
    lw_job_free(back);
}

/* ---- the report path ---- */

/* One report body against a job, as steps_report judges it. Returns 1 and
 * fills *used (borrowing buf) when the method stepped. */
static int report(job *j, const char *body, size_t len, double *buf, double *w, lw_input *used)
{
    lw_error err;
    wire_report r;
    cJSON *doc = body_parse(body, len, &err);
    if (!doc)
        return 0;
    size_t T = lw_job_tasks(j->lw);
    int ok = wire_parse_report(doc, T, 1, buf, &r, &err) == 0;
    cJSON_Delete(doc);
    if (!ok || r.rank < 0 || r.rank >= j->spec.world_size)
        return 0;
    lw_input in = wire_report_input(&r);
    check_input_roundtrip(&in, T);
    if (lw_job_check(j->lw, &in, &err) != 0)
        return 0;
    state_copy before;
    state_save(j->lw, &before);
    uint64_t done = lw_job_steps_done(j->lw);
    int rc = lw_job_step(j->lw, &in, w, &err);
    if (rc != 0) {
        check(state_same(j->lw, &before) && lw_job_steps_done(j->lw) == done,
              "a failed step changed the state", err.message);
    } else {
        for (size_t i = 0; i < T; i++)
            check(isfinite(w[i]), "a step gave a weight that is not finite", NULL);
    }
    free(before.v);
    if (rc == 0)
        *used = in;
    return rc == 0;
}

static void run_job(job *j, const char *const *body, const size_t *len, size_t n)
{
    size_t T = lw_job_tasks(j->lw);
    double *buf = malloc(wire_report_buf_len(T) * sizeof(double));
    double *keep = malloc(wire_report_buf_len(T) * sizeof(double));
    double *w = malloc(T * sizeof(double));
    lw_input last;
    int have = 0;
    memset(&last, 0, sizeof last);
    check(buf && keep && w, "out of memory", NULL);
    for (size_t i = 0; i < n; i++) {
        lw_input in;
        if (report(j, body[i], len[i], buf, w, &in)) {
            /* keep the input (its arrays live in buf) for the restore check */
            memcpy(keep, buf, wire_report_buf_len(T) * sizeof(double));
            last = in;
#define MOVE(p) last.p = in.p ? keep + (in.p - buf) : NULL
            MOVE(losses);
            MOVE(grad_norms);
            MOVE(gram);
            MOVE(losses_after);
#undef MOVE
            have = 1;
        }
    }
    if (have) {
        last.step++;
        check_export_restore(&j->spec, j->lw, &last);
    }
    free(buf);
    free(keep);
    free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body[MAX_BODIES];
    size_t len[MAX_BODIES], n = 0;
    const char *p = (const char *)data, *end = p + size;
    while (n < MAX_BODIES) {
        const char *ff = memchr(p, '\f', (size_t)(end - p));
        body[n] = p;
        len[n++] = ff ? (size_t)(ff - p) : (size_t)(end - p);
        if (!ff)
            break;
        p = ff + 1;
    }

    /* the first body as a spec */
    lw_error err;
    job j;
    int have_job = 0;
    cJSON *doc = body_parse(body[0], len[0], &err);
    if (doc) {
        if (wire_parse_spec(doc, &limits, &j.spec, &err) == 0) {
            if (lw_job_create(&j.spec.lib, &j.lw, &err) == 0) {
                have_job = 1;
                check_canonical_roundtrip(&j.spec, j.lw);
            } else {
                wire_spec_free(&j.spec);
            }
        }
        cJSON_Delete(doc);
    }
    if (have_job && n > 1)
        run_job(&j, body + 1, len + 1, n - 1);
    if (have_job) {
        lw_job_free(j.lw);
        wire_spec_free(&j.spec);
    }

    /* a single body: also a report to each fixed job */
    if (n == 1) {
        for (size_t i = 0; i < N_FIXED; i++) {
            job f = {fixed[i].spec, lw_job_clone(fixed[i].lw)};
            check(f.lw != NULL, "out of memory", NULL);
            run_job(&f, body, len, 1);
            lw_job_free(f.lw);
        }
    }
    return 0;
}
