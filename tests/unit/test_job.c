/*
 * test_job.c -- what every method owes the job machinery, checked over the
 * whole method table, plus the generic validation of specs, inputs and
 * state imports, and the counter-based generator.
 *
 * For every servable row: a job with default parameters and T = 3 runs 30
 * steps of realistic inputs (losses decaying with noise, norms and a Gram
 * matrix built from random vectors, an epoch every 5 steps, losses_after a
 * little below the losses) and gives finite numbers; exporting every state
 * array into a fresh job, cloning, and running twice all give the same bits
 * as one uninterrupted job; a refused step changes nothing. Rows that are
 * not servable must be refused with LW_ENOTSUP. New methods are covered by
 * adding their row: nothing here names them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lossweight.h"

/* rng.c exposes the block function for this known-answer test. */
extern void lw_philox4x64_10(uint64_t c[4], const uint64_t key[2]);

#define T3 3
#define NSTEPS 30
#define DIM 6
#define STATE_CAP 4096

/* ---- realistic inputs, from the test's own generator (splitmix64) ---- */

typedef struct inputs {
    double losses[NSTEPS][T3];
    double losses_after[NSTEPS][T3];
    double norms[NSTEPS][T3];
    double gram[NSTEPS][T3 * T3];
} inputs;

static uint64_t sm_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double sm_uniform(uint64_t *s) { return (double)(sm_next(s) >> 11) * 0x1.0p-53; }

static double sm_normal(uint64_t *s)
{
    double u1 = 1.0 - sm_uniform(s), u2 = sm_uniform(s);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void make_inputs(inputs *in, uint64_t seed)
{
    uint64_t s = seed;
    const double base[T3] = {0.69, 2.3, 0.12}; /* CE-like, CE over 10 classes, MSE */
    double shared[DIM];
    for (size_t d = 0; d < DIM; d++)
        shared[d] = sm_normal(&s);
    for (size_t t = 0; t < NSTEPS; t++) {
        double v[T3][DIM];
        for (size_t i = 0; i < T3; i++) {
            double decay = exp(-0.02 * (double)t * (double)(i + 1));
            in->losses[t][i] = base[i] * decay * (1.0 + 0.1 * (sm_uniform(&s) - 0.5));
            in->losses_after[t][i] = in->losses[t][i] * (0.97 + 0.02 * sm_uniform(&s));
            /* task gradients: a common direction (scaled per task) plus noise,
             * so pairs are sometimes aligned and sometimes conflicting */
            double scale = (i == 1 ? -0.4 : 1.0) * (0.5 + (double)i);
            for (size_t d = 0; d < DIM; d++)
                v[i][d] = scale * shared[d] + (0.3 + 0.5 * (double)i) * sm_normal(&s);
        }
        for (size_t i = 0; i < T3; i++) {
            for (size_t j = i; j < T3; j++) {
                double g = 0;
                for (size_t d = 0; d < DIM; d++)
                    g += v[i][d] * v[j][d];
                in->gram[t][i * T3 + j] = g;
                in->gram[t][j * T3 + i] = g;
            }
            in->norms[t][i] = sqrt(in->gram[t][i * T3 + i]);
        }
    }
}

static lw_input input_at(const inputs *in, size_t t)
{
    lw_input x = {(uint64_t)t,
                  (int64_t)(t / 5),
                  in->losses[t],
                  in->norms[t],
                  in->gram[t],
                  t > 0 ? in->losses_after[t] : NULL};
    return x;
}

/* ---- jobs ---- */

static const char *const names3[T3] = {"ctr", "cls10", "watch"};

/* Tasks with priors, so that methods that need them (prior_norm) can be
 * created with nothing else given. */
static void prior_tasks(lw_task *t)
{
    for (size_t i = 0; i < T3; i++) {
        lw_task_init(&t[i], names3[i]);
        t[i].label_var = 0.5 + (double)i;
    }
}

static int create_default(const char *method, lw_job **job, lw_error *err)
{
    lw_task t[T3];
    prior_tasks(t);
    lw_spec spec = {method, t, T3, NULL, 0, 2024};
    return lw_job_create(&spec, job, err);
}

static lw_job *new_job(const lw_method_info *mi)
{
    lw_job *job = NULL;
    lw_error err;
    int rc = create_default(mi->name, &job, &err);
    if (rc != 0)
        fail_msg("%s: create with default params failed: %d %s: %s", mi->name, rc, err.field,
                 err.message);
    return job;
}

static void run_step(lw_job *job, const inputs *in, size_t t, double *w)
{
    lw_input x = input_at(in, t);
    lw_error err;
    int rc = lw_job_step(job, &x, w, &err);
    if (rc != 0)
        fail_msg("%s step %zu: %d %s: %s", lw_job_method(job)->name, t, rc, err.field,
                 err.message);
    for (size_t i = 0; i < lw_job_tasks(job); i++)
        if (!isfinite(w[i]))
            fail_msg("%s step %zu: w[%zu] = %g", lw_job_method(job)->name, t, i, w[i]);
}

/* Every exported array, concatenated. */
static size_t snapshot(const lw_job *job, double *buf)
{
    size_t off = 0;
    for (size_t i = 0; i < lw_job_state_count(job); i++) {
        size_t len = 0;
        const char *nm = lw_job_state_name(job, i, &len);
        assert_non_null(nm);
        assert_true(off + len <= STATE_CAP);
        const double *v = lw_job_state_get(job, i);
        assert_non_null(v);
        memcpy(buf + off, v, len * sizeof(double));
        off += len;
    }
    return off;
}

static inputs g_in;

/* ---- the whole table ---- */

static void test_table_rows_are_well_formed(void **st)
{
    (void)st;
    size_t n = lw_method_count();
    assert_true(n >= 2);
    assert_null(lw_method_at(n));
    assert_null(lw_method_find("no-such-method"));
    for (size_t i = 0; i < n; i++) {
        const lw_method_info *mi = lw_method_at(i);
        assert_non_null(mi->name);
        assert_ptr_equal(lw_method_find(mi->name), mi);
        for (size_t j = 0; j < i; j++)
            if (strcmp(lw_method_at(j)->name, mi->name) == 0)
                fail_msg("method %s listed twice", mi->name);
        assert_true(mi->summary && mi->summary[0]);
        assert_true(mi->doc && mi->doc[0]);
        if (!mi->servable) {
            assert_true(mi->not_served_why && mi->not_served_why[0]);
            continue;
        }
        assert_true(mi->inputs != 0);
        assert_true(mi->n_params == 0 || mi->params != NULL);
        assert_true(mi->n_state == 0 || mi->state != NULL);
        for (size_t k = 0; k < mi->n_params; k++) {
            const lw_param_info *p = &mi->params[k];
            assert_true(p->name && p->name[0]);
            assert_true(p->doc && p->doc[0]);
            if (p->type == LW_PARAM_CHOICE) {
                int nc = 0;
                assert_non_null(p->choices);
                while (p->choices[nc])
                    nc++;
                if (!(p->def >= 0 && p->def < nc))
                    fail_msg("%s.%s: default choice %g of %d", mi->name, p->name, p->def, nc);
            } else if (!isnan(p->def)) {
                int lo = p->min_open ? p->def > p->min : p->def >= p->min;
                int hi = p->max_open ? p->def < p->max : p->def <= p->max;
                if (!(lo && hi))
                    fail_msg("%s.%s: default %g outside its range", mi->name, p->name, p->def);
            }
            for (size_t j = 0; j < k; j++)
                assert_true(strcmp(mi->params[j].name, p->name) != 0);
        }
        for (size_t k = 0; k < mi->n_state; k++) {
            assert_true(mi->state[k].name && mi->state[k].name[0]);
            assert_true(strcmp(mi->state[k].name, "steps_done") != 0);
        }
    }
}

static void test_non_servable_rows_refused(void **st)
{
    (void)st;
    for (size_t m = 0; m < lw_method_count(); m++) {
        const lw_method_info *mi = lw_method_at(m);
        if (mi->servable)
            continue;
        lw_job *job = (lw_job *)mi; /* must come back NULL */
        lw_error err;
        int rc = create_default(mi->name, &job, &err);
        assert_int_equal(rc, LW_ENOTSUP);
        assert_int_equal(err.code, LW_ENOTSUP);
        assert_string_equal(err.field, "method");
        assert_null(job);
    }
}

static void test_every_method_runs_30_steps_finite(void **st)
{
    (void)st;
    for (size_t m = 0; m < lw_method_count(); m++) {
        const lw_method_info *mi = lw_method_at(m);
        if (!mi->servable)
            continue;
        lw_job *job = new_job(mi);
        assert_int_equal(lw_job_tasks(job), T3);
        assert_string_equal(lw_job_task_name(job, 1), "cls10");
        assert_null(lw_job_task_name(job, T3));
        assert_int_equal(lw_job_seed(job), 2024);
        for (size_t t = 0; t < NSTEPS; t++) {
            double w[T3];
            run_step(job, &g_in, t, w);
            for (size_t i = 0; i < lw_job_state_count(job); i++) {
                size_t len;
                const char *nm = lw_job_state_name(job, i, &len);
                const double *v = lw_job_state_get(job, i);
                for (size_t k = 0; k < len; k++)
                    if (!isfinite(v[k]))
                        fail_msg("%s step %zu: state %s[%zu] = %g", mi->name, t, nm, k, v[k]);
            }
        }
        assert_int_equal(lw_job_steps_done(job), NSTEPS);
        lw_job_free(job);
    }
}

/* Export every array after k steps, import into a fresh job, continue both:
 * identical bits, for several k. */
static void test_every_method_state_round_trip(void **st)
{
    (void)st;
    const size_t ks[] = {0, 1, 7, 17, 27};
    for (size_t m = 0; m < lw_method_count(); m++) {
        const lw_method_info *mi = lw_method_at(m);
        if (!mi->servable)
            continue;
        for (size_t kk = 0; kk < sizeof ks / sizeof ks[0]; kk++) {
            lw_job *a = new_job(mi), *b = new_job(mi);
            double w[T3], wb[T3];
            for (size_t t = 0; t < ks[kk]; t++)
                run_step(a, &g_in, t, w);
            for (size_t i = 0; i < lw_job_state_count(a); i++) {
                size_t len;
                const char *nm = lw_job_state_name(a, i, &len);
                lw_error err;
                int rc = lw_job_state_set(b, nm, lw_job_state_get(a, i), len, &err);
                if (rc != 0)
                    fail_msg("%s after %zu steps: import %s: %d %s: %s", mi->name, ks[kk], nm,
                             rc, err.field, err.message);
            }
            assert_int_equal(lw_job_steps_done(b), lw_job_steps_done(a));
            for (size_t t = ks[kk]; t < NSTEPS; t++) {
                run_step(a, &g_in, t, w);
                run_step(b, &g_in, t, wb);
                if (memcmp(w, wb, sizeof w) != 0)
                    fail_msg("%s: imported after %zu steps, step %zu differs", mi->name, ks[kk],
                             t);
            }
            static double sa[STATE_CAP], sb[STATE_CAP];
            size_t na = snapshot(a, sa), nb = snapshot(b, sb);
            assert_int_equal(na, nb);
            assert_memory_equal(sa, sb, na * sizeof(double));
            lw_job_free(a);
            lw_job_free(b);
        }
    }
}

static void test_every_method_clone_equivalent(void **st)
{
    (void)st;
    for (size_t m = 0; m < lw_method_count(); m++) {
        const lw_method_info *mi = lw_method_at(m);
        if (!mi->servable)
            continue;
        lw_job *a = new_job(mi);
        double w[T3], wc[T3];
        for (size_t t = 0; t < 12; t++)
            run_step(a, &g_in, t, w);
        lw_job *c = lw_job_clone(a);
        assert_non_null(c);
        assert_int_equal(lw_job_steps_done(c), 12);
        assert_string_equal(lw_job_task_name(c, 2), "watch");
        for (size_t i = 0; i < mi->n_params; i++) {
            double na = -1, nc = -2;
            int ca = -1, cc = -2;
            const double *va = NULL, *vc = NULL;
            lw_job_param(a, i, &na, &ca, &va);
            lw_job_param(c, i, &nc, &cc, &vc);
            assert_memory_equal(&na, &nc, sizeof na);
            assert_int_equal(ca, cc);
            assert_true((va == NULL) == (vc == NULL));
            if (va) {
                assert_ptr_not_equal(va, vc); /* a deep copy */
                assert_memory_equal(va, vc, T3 * sizeof(double));
            }
        }
        for (size_t t = 12; t < NSTEPS; t++) {
            run_step(a, &g_in, t, w);
            run_step(c, &g_in, t, wc);
            if (memcmp(w, wc, sizeof w) != 0)
                fail_msg("%s: clone differs at step %zu", mi->name, t);
        }
        lw_job_free(a);
        lw_job_free(c);
    }
}

static void test_every_method_deterministic(void **st)
{
    (void)st;
    for (size_t m = 0; m < lw_method_count(); m++) {
        const lw_method_info *mi = lw_method_at(m);
        if (!mi->servable)
            continue;
        lw_job *a = new_job(mi), *b = new_job(mi);
        for (size_t t = 0; t < NSTEPS; t++) {
            double w[T3], wb[T3];
            run_step(a, &g_in, t, w);
            run_step(b, &g_in, t, wb);
            if (memcmp(w, wb, sizeof w) != 0)
                fail_msg("%s: two identical jobs differ at step %zu", mi->name, t);
        }
        lw_job_free(a);
        lw_job_free(b);
    }
}

/* A refused step changes nothing: NaN in losses[1], and each required input
 * left out, for every method, part way through a run. */
static void test_every_method_refused_step_changes_nothing(void **st)
{
    (void)st;
    static const struct {
        unsigned bit;
        const char *field;
    } ins[] = {{LW_IN_LOSSES, "losses"},
               {LW_IN_GRAD_NORMS, "grad_norms"},
               {LW_IN_GRAM, "gram"},
               {LW_IN_LOSSES_AFTER, "losses_after"}};
    for (size_t m = 0; m < lw_method_count(); m++) {
        const lw_method_info *mi = lw_method_at(m);
        if (!mi->servable)
            continue;
        lw_job *a = new_job(mi), *ref;
        double w[T3], wr[T3];
        for (size_t t = 0; t < 13; t++)
            run_step(a, &g_in, t, w);
        ref = lw_job_clone(a);
        assert_non_null(ref);
        static double s0[STATE_CAP], s1[STATE_CAP];
        size_t n0 = snapshot(a, s0);

        lw_input bad = input_at(&g_in, 13);
        double L[T3];
        memcpy(L, g_in.losses[13], sizeof L);
        L[1] = NAN;
        bad.losses = L;
        lw_error err;
        assert_int_equal(lw_job_step(a, &bad, w, &err), LW_EINVAL);
        assert_string_equal(err.field, "losses[1]");
        assert_int_equal(lw_job_check(a, &bad, &err), LW_EINVAL);
        L[1] = INFINITY;
        assert_int_equal(lw_job_step(a, &bad, w, &err), LW_EINVAL);
        assert_string_equal(err.field, "losses[1]");
        for (size_t k = 0; k < sizeof ins / sizeof ins[0]; k++) {
            if (!(mi->inputs & ins[k].bit))
                continue;
            bad = input_at(&g_in, 13);
            if (ins[k].bit == LW_IN_LOSSES)
                bad.losses = NULL;
            if (ins[k].bit == LW_IN_GRAD_NORMS)
                bad.grad_norms = NULL;
            if (ins[k].bit == LW_IN_GRAM)
                bad.gram = NULL;
            if (ins[k].bit == LW_IN_LOSSES_AFTER)
                bad.losses_after = NULL;
            int rc = lw_job_step(a, &bad, w, &err);
            if (rc != LW_EINVAL || strcmp(err.field, ins[k].field) != 0)
                fail_msg("%s without %s: got %d field \"%s\"", mi->name, ins[k].field, rc,
                         err.field);
        }
        size_t n1 = snapshot(a, s1);
        assert_int_equal(n0, n1);
        assert_memory_equal(s0, s1, n0 * sizeof(double));
        assert_int_equal(lw_job_steps_done(a), 13);
        /* a check never changes anything either */
        lw_input good = input_at(&g_in, 13);
        assert_int_equal(lw_job_check(a, &good, &err), 0);
        for (size_t t = 13; t < NSTEPS; t++) {
            run_step(a, &g_in, t, w);
            run_step(ref, &g_in, t, wr);
            if (memcmp(w, wr, sizeof w) != 0)
                fail_msg("%s: after refused steps, step %zu differs", mi->name, t);
        }
        lw_job_free(a);
        lw_job_free(ref);
    }
}

/* ---- generic validation of specs ---- */

static void expect_create(const lw_spec *spec, int code, const char *field)
{
    lw_job *job = (lw_job *)spec;
    lw_error err;
    int rc = lw_job_create(spec, &job, &err);
    if (rc != code || err.code != code || strcmp(err.field, field) != 0)
        fail_msg("create %s: want %d \"%s\", got %d \"%s\" (%s)",
                 spec->method ? spec->method : "(null)", code, field, rc, err.field, err.message);
    assert_null(job);
    assert_true(err.message[0] != '\0');
}

static void test_create_validation(void **st)
{
    (void)st;
    lw_task t[T3];
    prior_tasks(t);
    lw_spec spec = {"no-such-method", t, T3, NULL, 0, 0};
    expect_create(&spec, LW_EINVAL, "method");
    spec.method = NULL;
    expect_create(&spec, LW_EINVAL, "method");

    /* unknown parameter */
    lw_value p[2] = {{"x", LW_VAL_NUMBER, 1, NULL, NULL, 0}};
    spec = (lw_spec){"ew", t, T3, p, 1, 0};
    expect_create(&spec, LW_EINVAL, "params.x");
    /* wrong types */
    spec.method = "power_mean";
    p[0] = (lw_value){"gamma", LW_VAL_STRING, 0, "1", NULL, 0};
    expect_create(&spec, LW_EINVAL, "params.gamma");
    p[0] = (lw_value){"gamma", LW_VAL_OTHER, 0, NULL, NULL, 0};
    expect_create(&spec, LW_EINVAL, "params.gamma");
    spec.method = "manual";
    p[0] = (lw_value){"normalize", LW_VAL_NUMBER, 1, NULL, NULL, 0};
    expect_create(&spec, LW_EINVAL, "params.normalize");
    p[0] = (lw_value){"weights", LW_VAL_NUMBER, 1, NULL, NULL, 0};
    expect_create(&spec, LW_EINVAL, "params.weights");
    /* out of range / wrong shape */
    p[0] = (lw_value){"weights", LW_VAL_ARRAY, 0, NULL, (double[]){1, -1, 1}, 3};
    expect_create(&spec, LW_EINVAL, "params.weights[1]");
    p[0] = (lw_value){"weights", LW_VAL_ARRAY, 0, NULL, (double[]){1, NAN, 1}, 3};
    expect_create(&spec, LW_EINVAL, "params.weights[1]");
    p[0] = (lw_value){"weights", LW_VAL_ARRAY, 0, NULL, (double[]){1, 1}, 2};
    expect_create(&spec, LW_EINVAL, "params.weights");
    p[0] = (lw_value){"normalize", LW_VAL_STRING, 0, "sum", NULL, 0};
    expect_create(&spec, LW_EINVAL, "params.normalize");
    spec.method = "power_mean";
    p[0] = (lw_value){"gamma", LW_VAL_NUMBER, 1e6, NULL, NULL, 0};
    expect_create(&spec, LW_EINVAL, "params.gamma");
    p[0] = (lw_value){"gamma", LW_VAL_NUMBER, INFINITY, NULL, NULL, 0};
    expect_create(&spec, LW_EINVAL, "params.gamma");
    spec.method = "init_norm";
    p[0] = (lw_value){"init_steps", LW_VAL_NUMBER, 2.5, NULL, NULL, 0};
    expect_create(&spec, LW_EINVAL, "params.init_steps");
    /* a parameter given twice */
    p[0] = (lw_value){"init_steps", LW_VAL_NUMBER, 2, NULL, NULL, 0};
    p[1] = p[0];
    spec.n_params = 2;
    expect_create(&spec, LW_EINVAL, "params");

    /* tasks */
    spec = (lw_spec){"ew", t, 0, NULL, 0, 0};
    expect_create(&spec, LW_EINVAL, "tasks");
    spec.n_tasks = LW_MAX_TASKS + 1;
    expect_create(&spec, LW_EINVAL, "tasks");
    spec.n_tasks = T3;
    t[2].name = "ctr";
    expect_create(&spec, LW_EINVAL, "tasks");
    t[2].name = "";
    expect_create(&spec, LW_EINVAL, "tasks");
    t[2].name = "watch";
    t[0].label_var = -1;
    expect_create(&spec, LW_EINVAL, "tasks[0].label_var");

    /* and the valid spec is accepted, with the params resolved */
    prior_tasks(t);
    p[0] = (lw_value){"gamma", LW_VAL_NUMBER, -2.5, NULL, NULL, 0};
    spec = (lw_spec){"power_mean", t, T3, p, 1, 5};
    lw_job *job;
    lw_error err;
    assert_int_equal(lw_job_create(&spec, &job, &err), 0);
    double g = 0;
    lw_job_param(job, 0, &g, NULL, NULL);
    assert_true(g == -2.5);
    lw_job_free(job);
}

/* ---- generic validation of inputs ---- */

static void expect_step(lw_job *job, const lw_input *in, int code, const char *field)
{
    double w[T3];
    lw_error err;
    uint64_t done = lw_job_steps_done(job);
    int rc = lw_job_step(job, in, w, &err);
    if (rc != code || err.code != code || strcmp(err.field, field) != 0)
        fail_msg("step: want %d \"%s\", got %d \"%s\" (%s)", code, field, rc, err.field,
                 err.message);
    assert_int_equal(lw_job_steps_done(job), done);
}

static void test_input_validation(void **st)
{
    (void)st;
    lw_job *job = new_job(lw_method_find("ew"));
    lw_input in = input_at(&g_in, 3);
    double L[T3] = {1, NAN, 1};
    in.losses = L;
    expect_step(job, &in, LW_EINVAL, "losses[1]");
    L[1] = -INFINITY;
    expect_step(job, &in, LW_EINVAL, "losses[1]");
    in = input_at(&g_in, 3);
    double n[T3] = {1, 1, -0.25};
    in.grad_norms = n;
    expect_step(job, &in, LW_EINVAL, "grad_norms[2]");
    n[2] = NAN;
    expect_step(job, &in, LW_EINVAL, "grad_norms[2]");
    in = input_at(&g_in, 3);
    double la[T3] = {1, 1, INFINITY};
    in.losses_after = la;
    expect_step(job, &in, LW_EINVAL, "losses_after[2]");
    /* Gram: asymmetric, negative diagonal, non-finite */
    in = input_at(&g_in, 3);
    double G[T3 * T3] = {4, 1, 0, 1, 9, 2, 0, 2, 1};
    in.gram = G;
    double w[T3];
    lw_error err;
    assert_int_equal(lw_job_step(job, &in, w, &err), 0);
    G[1] = 1.5; /* G01 != G10 */
    expect_step(job, &in, LW_EINVAL, "gram[0][1]");
    G[1] = 1;
    G[4] = -9; /* G11 < 0 */
    expect_step(job, &in, LW_EINVAL, "gram[1][1]");
    G[4] = 9;
    G[7] = NAN;
    expect_step(job, &in, LW_EINVAL, "gram[2][1]");
    G[7] = 2;
    G[5] = 2 + 1e-9; /* within 1e-6 of the largest entry: accepted as symmetric */
    assert_int_equal(lw_job_step(job, &in, w, &err), 0);
    /* missing required input */
    in = input_at(&g_in, 3);
    in.losses = NULL;
    expect_step(job, &in, LW_EINVAL, "losses");
    lw_job_free(job);

    job = new_job(lw_method_find("grad_unit"));
    in = input_at(&g_in, 3);
    in.grad_norms = NULL;
    expect_step(job, &in, LW_EINVAL, "grad_norms");
    in.losses = NULL; /* grad_unit does not need losses */
    in.grad_norms = g_in.norms[3];
    assert_int_equal(lw_job_step(job, &in, w, &err), 0);
    lw_job_free(job);
}

/* ---- state import ---- */

static void test_state_set_validation(void **st)
{
    (void)st;
    lw_job *job = new_job(lw_method_find("init_norm"));
    lw_error err;
    double w[T3];
    run_step(job, &g_in, 0, w);
    double before[STATE_CAP], after[STATE_CAP];
    size_t nb = snapshot(job, before);
    assert_int_equal(lw_job_state_set(job, "init_sum", (double[]){1, 2}, 2, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.init_sum");
    assert_int_equal(lw_job_state_set(job, "init_sum", (double[]){1, 2, 3, 4}, 4, &err),
                     LW_EINVAL);
    assert_string_equal(err.field, "state.init_sum");
    assert_int_equal(lw_job_state_set(job, "init_sum", (double[]){1, NAN, 3}, 3, &err),
                     LW_EINVAL);
    assert_string_equal(err.field, "state.init_sum");
    assert_int_equal(lw_job_state_set(job, "init_sum", (double[]){1, 2, INFINITY}, 3, &err),
                     LW_EINVAL);
    assert_string_equal(err.field, "state.init_sum");
    assert_int_equal(lw_job_state_set(job, "no_such_array", (double[]){1}, 1, &err), LW_ENOENT);
    assert_string_equal(err.field, "state");
    assert_int_equal(lw_job_state_set(job, "steps_done", (double[]){1.5}, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.steps_done");
    assert_int_equal(lw_job_state_set(job, "steps_done", (double[]){-1}, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.steps_done");
    size_t na = snapshot(job, after);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb * sizeof(double));
    assert_int_equal(lw_job_state_set(job, "steps_done", (double[]){41}, 1, &err), 0);
    assert_int_equal(lw_job_steps_done(job), 41);
    lw_job_free(job);

    /* a stateless method still exports its position */
    job = new_job(lw_method_find("ew"));
    assert_int_equal(lw_job_state_count(job), 1);
    size_t len;
    assert_string_equal(lw_job_state_name(job, 0, &len), "steps_done");
    assert_int_equal(len, 1);
    assert_null(lw_job_state_name(job, 1, &len));
    lw_job_free(job);
}

/* A step that fails inside the method (a non-finite state value or
 * weight) is rolled back: the state the method had already changed is
 * thrown away. */
static void test_step_failing_in_method_rolls_back(void **st)
{
    (void)st;
    lw_task t[2];
    lw_task_init(&t[0], "a");
    lw_task_init(&t[1], "b");
    lw_value p = {"init_steps", LW_VAL_NUMBER, 3, NULL, NULL, 0};
    lw_spec spec = {"init_norm", t, 2, &p, 1, 0};
    lw_job *job;
    lw_error err;
    double w[2];
    assert_int_equal(lw_job_create(&spec, &job, &err), 0);
    /* measuring, one step in: the next step adds 1e308 + 1e308 = inf */
    assert_int_equal(lw_job_state_set(job, "init_sum", (double[]){1e308, 1}, 2, &err), 0);
    assert_int_equal(lw_job_state_set(job, "init_count", (double[]){1}, 1, &err), 0);
    assert_int_equal(lw_job_state_set(job, "steps_done", (double[]){1}, 1, &err), 0);
    double before[STATE_CAP], after[STATE_CAP];
    size_t nb = snapshot(job, before);
    lw_input in = {1, -1, (double[]){1e308, 1}, NULL, NULL, NULL};
    assert_int_equal(lw_job_step(job, &in, w, &err), LW_ENUMERIC);
    assert_int_equal(err.code, LW_ENUMERIC);
    size_t na = snapshot(job, after);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb * sizeof(double));
    assert_int_equal(lw_job_steps_done(job), 1);
    /* the same job then steps normally from where it was: mean (1e308 + 1e307)/2 */
    in.losses = (double[]){1e307, 3};
    assert_int_equal(lw_job_step(job, &in, w, &err), 0);
    assert_true(fabs(w[0] - 1 / 5.5e307) <= 1e-15 / 5.5e307);
    assert_true(fabs(w[1] - 0.5) <= 1e-15);
    lw_job_free(job);

    /* a non-finite weight: 1 / 1e-320 overflows */
    spec = (lw_spec){"rt_norm", t, 2, NULL, 0, 0};
    assert_int_equal(lw_job_create(&spec, &job, &err), 0);
    in.losses = (double[]){1, 1e-320};
    assert_int_equal(lw_job_step(job, &in, w, &err), LW_ENUMERIC);
    assert_int_equal(lw_job_steps_done(job), 0);
    lw_job_free(job);
}

/* ---- the generator ---- */

static void philox_kat(const uint64_t ctr[4], const uint64_t key[2], const uint64_t want[4])
{
    uint64_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    lw_philox4x64_10(c, key);
    for (int i = 0; i < 4; i++)
        if (c[i] != want[i])
            fail_msg("philox word %d: got %016llx want %016llx", i, (unsigned long long)c[i],
                     (unsigned long long)want[i]);
}

/* Random123's published known answers for Philox4x64-10. */
static void test_philox_known_answers(void **st)
{
    (void)st;
    const uint64_t z4[4] = {0, 0, 0, 0}, z2[2] = {0, 0};
    philox_kat(z4, z2,
               (const uint64_t[4]){0x16554d9eca36314cULL, 0xdb20fe9d672d0fdcULL,
                                   0xd7e772cee186176bULL, 0x7e68b68aec7ba23bULL});
    const uint64_t o4[4] = {~0ULL, ~0ULL, ~0ULL, ~0ULL}, o2[2] = {~0ULL, ~0ULL};
    philox_kat(o4, o2,
               (const uint64_t[4]){0x87b092c3013fe90bULL, 0x438c3c67be8d0224ULL,
                                   0x9cc7d7c69cd777b6ULL, 0xa09caebf594f0ba0ULL});
    philox_kat((const uint64_t[4]){0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL,
                                   0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL},
               (const uint64_t[2]){0x452821e638d01377ULL, 0xbe5466cf34e90c6cULL},
               (const uint64_t[4]){0xa528f45403e61d95ULL, 0x38c72dbd566e9788ULL,
                                   0xa5a1610e72fd18b5ULL, 0x57bd43b5e52b7fe6ULL});
    /* lw_rand_u64 is word 0 of the block at counter (step, counter, 0, 0),
     * key (seed, stream) */
    uint64_t c[4] = {7, 3, 0, 0};
    lw_philox4x64_10(c, (const uint64_t[2]){11, 5});
    assert_true(lw_rand_u64(11, 7, 5, 3) == c[0]);
}

static void test_rand_distributions(void **st)
{
    (void)st;
    const int N = 100000;
    double s = 0, s2 = 0, within1 = 0, us = 0;
    for (int k = 0; k < N; k++) {
        double z = lw_rand_normal(42, 9, 0, (uint64_t)k);
        assert_true(isfinite(z));
        s += z;
        s2 += z * z;
        if (fabs(z) < 1)
            within1 += 1;
        double u = lw_rand_uniform(42, 9, 1, (uint64_t)k);
        assert_true(u >= 0 && u < 1);
        us += u;
    }
    double mean = s / N, var = s2 / N - mean * mean;
    /* standard errors: mean 0.0032, variance 0.0045, P(|z|<1) 0.0015 */
    assert_true(fabs(mean) < 0.02);
    assert_true(fabs(var - 1) < 0.03);
    assert_true(fabs(within1 / N - 0.6827) < 0.01);
    assert_true(fabs(us / N - 0.5) < 0.01);
    /* pure functions of their arguments */
    assert_true(lw_rand_normal(1, 2, 3, 4) == lw_rand_normal(1, 2, 3, 4));
    assert_true(lw_rand_normal(1, 2, 3, 4) != lw_rand_normal(1, 2, 3, 5));
    assert_true(lw_rand_normal(1, 2, 3, 4) != lw_rand_normal(2, 2, 3, 4));
    assert_true(lw_rand_normal(1, 2, 3, 4) != lw_rand_normal(1, 3, 3, 4));
    assert_true(lw_rand_normal(1, 2, 3, 4) != lw_rand_normal(1, 2, 4, 4));
}

static int setup(void **st)
{
    (void)st;
    make_inputs(&g_in, 0x5eed);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_rows_are_well_formed),
        cmocka_unit_test(test_non_servable_rows_refused),
        cmocka_unit_test(test_every_method_runs_30_steps_finite),
        cmocka_unit_test(test_every_method_state_round_trip),
        cmocka_unit_test(test_every_method_clone_equivalent),
        cmocka_unit_test(test_every_method_deterministic),
        cmocka_unit_test(test_every_method_refused_step_changes_nothing),
        cmocka_unit_test(test_create_validation),
        cmocka_unit_test(test_input_validation),
        cmocka_unit_test(test_state_set_validation),
        cmocka_unit_test(test_step_failing_in_method_rolls_back),
        cmocka_unit_test(test_philox_known_answers),
        cmocka_unit_test(test_rand_distributions),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
