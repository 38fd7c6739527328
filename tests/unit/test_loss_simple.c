/*
 * test_loss_simple.c -- the stateless and nearly stateless loss methods:
 * init_norm, prior_norm, rt_norm, power_mean, grad_unit, rlw, db_mtl.
 *
 * Each method gets cases computed by hand (the arithmetic is in the
 * comment next to the numbers), the invariants its definition implies
 * (scale invariance, sum w L = M, gamma = 1 is the mean, gamma = 0 is GLS,
 * a numerical derivative of M), the check values of methods-anchors.md
 * 2.6, and every validation error with its code and field, with the job
 * unchanged after a refused step.
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

#define MAXT 16

/* ---- helpers ---- */

static void assert_close_msg(double got, double want, double rtol, double atol, const char *what,
                             size_t i)
{
    if (!(fabs(got - want) <= atol + rtol * fabs(want)))
        fail_msg("%s[%zu]: got %.17g, want %.17g (rtol %g, atol %g)", what, i, got, want, rtol,
                 atol);
}

static void assert_vec_close(const double *got, const double *want, size_t n, double rtol,
                             double atol)
{
    for (size_t i = 0; i < n; i++)
        assert_close_msg(got[i], want[i], rtol, atol, "w", i);
}

static const char *const task_names[MAXT] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7",
                                             "t8", "t9", "t10", "t11", "t12", "t13", "t14",
                                             "t15"};

static void default_tasks(lw_task *tasks, size_t T)
{
    for (size_t i = 0; i < T; i++)
        lw_task_init(&tasks[i], task_names[i]);
}

static lw_value num_param(const char *name, double v)
{
    lw_value p = {name, LW_VAL_NUMBER, v, NULL, NULL, 0};
    return p;
}

static lw_value str_param(const char *name, const char *s)
{
    lw_value p = {name, LW_VAL_STRING, 0, s, NULL, 0};
    return p;
}

/* Create a job that must succeed. tasks NULL: plain tasks t0..t(T-1). */
static lw_job *make_job(const char *method, size_t T, const lw_task *tasks,
                        const lw_value *params, size_t n_params, uint64_t seed)
{
    lw_task def[MAXT];
    if (!tasks) {
        default_tasks(def, T);
        tasks = def;
    }
    lw_spec spec = {method, tasks, T, params, n_params, seed};
    lw_job *job = NULL;
    lw_error err;
    int rc = lw_job_create(&spec, &job, &err);
    if (rc != 0)
        fail_msg("create %s: %d %s: %s", method, rc, err.field, err.message);
    assert_non_null(job);
    return job;
}

/* Create a job that must fail with code and field. */
static void create_fails(const char *method, size_t T, const lw_task *tasks,
                         const lw_value *params, size_t n_params, int code, const char *field)
{
    lw_task def[MAXT];
    if (!tasks) {
        default_tasks(def, T);
        tasks = def;
    }
    lw_spec spec = {method, tasks, T, params, n_params, 0};
    lw_job *job = (lw_job *)&spec; /* must be reset to NULL */
    lw_error err;
    int rc = lw_job_create(&spec, &job, &err);
    if (rc != code || err.code != code || strcmp(err.field, field) != 0)
        fail_msg("create %s: want %d field \"%s\", got %d field \"%s\" (%s)", method, code, field,
                 rc, err.field, err.message);
    assert_null(job);
    assert_true(err.message[0] != '\0');
}

static void step_ok(lw_job *job, uint64_t step, const double *L, const double *n, double *w)
{
    lw_input in = {step, -1, L, n, NULL, NULL};
    lw_error err;
    int rc = lw_job_step(job, &in, w, &err);
    if (rc != 0)
        fail_msg("step %llu: %d %s: %s", (unsigned long long)step, rc, err.field, err.message);
}

/* Every exported state array, concatenated (steps_done included). */
static size_t snapshot(const lw_job *job, double *buf, size_t cap)
{
    size_t off = 0;
    for (size_t i = 0; i < lw_job_state_count(job); i++) {
        size_t len;
        assert_non_null(lw_job_state_name(job, i, &len));
        assert_true(off + len <= cap);
        memcpy(buf + off, lw_job_state_get(job, i), len * sizeof(double));
        off += len;
    }
    return off;
}

/* A step that must fail with code and field and leave the job unchanged:
 * same exported state (every array), same step count. */
static void step_fails(lw_job *job, const lw_input *in, int code, const char *field)
{
    double before[256], after[256], w[MAXT];
    size_t nb = snapshot(job, before, 256);
    uint64_t done = lw_job_steps_done(job);
    lw_error err;
    int rc = lw_job_step(job, in, w, &err);
    if (rc != code || err.code != code || strcmp(err.field, field) != 0)
        fail_msg("step: want %d field \"%s\", got %d field \"%s\" (%s)", code, field, rc,
                 err.field, err.message);
    assert_true(err.message[0] != '\0');
    size_t na = snapshot(job, after, 256);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb * sizeof(double));
    assert_int_equal(lw_job_steps_done(job), done);
}

/* Deterministic test data (splitmix64), independent of the library's RNG. */
static uint64_t mix_state = 0x9E3779B97F4A7C15ULL;
static double urand(void)
{
    uint64_t z = (mix_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

/* ==== init_norm ==== */

static void test_init_norm_mean_of_first_steps(void **st)
{
    (void)st;
    lw_value p = num_param("init_steps", 2);
    lw_job *job = make_job("init_norm", 2, NULL, &p, 1, 0);
    double w[2];
    /* step 0: mean so far = (2, 8) -> w = (1/2, 1/8) */
    step_ok(job, 0, (double[]){2, 8}, NULL, w);
    assert_vec_close(w, (double[]){0.5, 0.125}, 2, 1e-15, 0);
    /* step 1: mean of (2, 8), (4, 4) = (3, 6) -> w = (1/3, 1/6) */
    step_ok(job, 1, (double[]){4, 4}, NULL, w);
    assert_vec_close(w, (double[]){1.0 / 3, 1.0 / 6}, 2, 1e-15, 0);
    /* later steps: L(init) frozen at (3, 6), whatever the losses */
    step_ok(job, 2, (double[]){100, 100}, NULL, w);
    assert_vec_close(w, (double[]){1.0 / 3, 1.0 / 6}, 2, 1e-15, 0);
    step_ok(job, 3, (double[]){0.001, 50}, NULL, w);
    assert_vec_close(w, (double[]){1.0 / 3, 1.0 / 6}, 2, 1e-15, 0);
    /* state: sum (2+4, 8+4) = (6, 12) over 2 steps */
    size_t len;
    assert_string_equal(lw_job_state_name(job, 0, &len), "init_sum");
    assert_int_equal(len, 2);
    assert_vec_close(lw_job_state_get(job, 0), (double[]){6, 12}, 2, 0, 0);
    assert_string_equal(lw_job_state_name(job, 1, &len), "init_count");
    assert_int_equal(len, 1);
    assert_true(lw_job_state_get(job, 1)[0] == 2.0);
    lw_job_free(job);
}

static void test_init_norm_default_is_first_step(void **st)
{
    (void)st;
    lw_job *job = make_job("init_norm", 3, NULL, NULL, 0, 0);
    double w[3];
    /* init_steps 1: L(init) = first step's losses (0.5, 4, 10) */
    step_ok(job, 0, (double[]){0.5, 4, 10}, NULL, w);
    assert_vec_close(w, (double[]){2, 0.25, 0.1}, 3, 1e-15, 0);
    step_ok(job, 1, (double[]){0.25, 1, 1}, NULL, w);
    assert_vec_close(w, (double[]){2, 0.25, 0.1}, 3, 1e-15, 0);
    lw_job_free(job);
}

static void test_init_norm_task_priors(void **st)
{
    (void)st;
    lw_task t[4];
    default_tasks(t, 4);
    t[0].init_loss = 0.5; /* w = 1/0.5 = 2 */
    t[1].classes = 4;     /* L(init) = ln 4 = 1.3862943611198906, w = 0.7213475204444817 */
    t[2].init_loss = 2.0; /* init_loss wins over classes: w = 0.5 */
    t[2].classes = 10;
    /* t[3]: measured, first step 3 -> w = 1/3 */
    lw_job *job = make_job("init_norm", 4, t, NULL, 0, 0);
    double w[4];
    step_ok(job, 0, (double[]){9, 9, 9, 3}, NULL, w);
    assert_vec_close(w, (double[]){2, 0.7213475204444817, 0.5, 1.0 / 3}, 4, 1e-15, 0);
    step_ok(job, 1, (double[]){1, 1, 1, 6}, NULL, w);
    assert_vec_close(w, (double[]){2, 0.7213475204444817, 0.5, 1.0 / 3}, 4, 1e-15, 0);
    lw_job_free(job);
}

/* Scaling every loss of a task by c scales its L(init) by c: w_i L_i is
 * unchanged at every step. */
static void test_init_norm_scale_invariant(void **st)
{
    (void)st;
    const double c[3] = {37.5, 1e-3, 4.0};
    lw_value p = num_param("init_steps", 3);
    lw_job *a = make_job("init_norm", 3, NULL, &p, 1, 0);
    lw_job *b = make_job("init_norm", 3, NULL, &p, 1, 0);
    for (uint64_t s = 0; s < 8; s++) {
        double L[3], cL[3], wa[3], wb[3];
        for (size_t i = 0; i < 3; i++) {
            L[i] = 0.1 + 3 * urand();
            cL[i] = c[i] * L[i];
        }
        step_ok(a, s, L, NULL, wa);
        step_ok(b, s, cL, NULL, wb);
        for (size_t i = 0; i < 3; i++) {
            assert_close_msg(wb[i] * c[i], wa[i], 1e-14, 0, "w*c", i);
            if (s == 0)
                assert_close_msg(wa[i] * L[i], 1.0, 1e-15, 0, "w*L at step 0", i);
        }
    }
    lw_job_free(a);
    lw_job_free(b);
}

static void test_init_norm_losses_checked_only_while_measuring(void **st)
{
    (void)st;
    lw_task t[2];
    default_tasks(t, 2);
    t[0].init_loss = 1.0; /* not measured: its loss may be 0 */
    lw_value p = num_param("init_steps", 2);
    lw_job *job = make_job("init_norm", 2, t, &p, 1, 0);
    double w[2];
    lw_input in = {0, -1, (double[]){1, 0}, NULL, NULL, NULL};
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    in.losses = (double[]){1, -2};
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    step_ok(job, 0, (double[]){0, 2}, NULL, w);
    assert_vec_close(w, (double[]){1, 0.5}, 2, 1e-15, 0);
    in.step = 1;
    in.losses = (double[]){1, 0};
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    step_ok(job, 1, (double[]){0, 4}, NULL, w); /* mean (2+4)/2 = 3 */
    assert_vec_close(w, (double[]){1, 1.0 / 3}, 2, 1e-15, 0);
    /* measured: now 0 and negative losses are not used, hence accepted */
    step_ok(job, 2, (double[]){0, 0}, NULL, w);
    assert_vec_close(w, (double[]){1, 1.0 / 3}, 2, 1e-15, 0);
    step_ok(job, 3, (double[]){-1, -5}, NULL, w);
    assert_vec_close(w, (double[]){1, 1.0 / 3}, 2, 1e-15, 0);
    /* NaN is refused by the generic check */
    in.step = 4;
    in.losses = (double[]){1, NAN};
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    lw_job_free(job);
}

static void test_init_norm_validation(void **st)
{
    (void)st;
    lw_value p = num_param("init_steps", 0);
    create_fails("init_norm", 2, NULL, &p, 1, LW_EINVAL, "params.init_steps");
    p = num_param("init_steps", 2.5);
    create_fails("init_norm", 2, NULL, &p, 1, LW_EINVAL, "params.init_steps");
    p = str_param("init_steps", "3");
    create_fails("init_norm", 2, NULL, &p, 1, LW_EINVAL, "params.init_steps");
    p = num_param("init_step", 3);
    create_fails("init_norm", 2, NULL, &p, 1, LW_EINVAL, "params.init_step");
    lw_task t[2];
    default_tasks(t, 2);
    t[1].init_loss = -1;
    create_fails("init_norm", 2, t, NULL, 0, LW_EINVAL, "tasks[1].init_loss");
    default_tasks(t, 2);
    t[0].classes = 1;
    create_fails("init_norm", 2, t, NULL, 0, LW_EINVAL, "tasks[0].classes");
}

static void test_init_norm_state_import(void **st)
{
    (void)st;
    lw_value p = num_param("init_steps", 4);
    lw_job *job = make_job("init_norm", 2, NULL, &p, 1, 0);
    lw_error err;
    double w[2];
    assert_int_equal(lw_job_state_set(job, "init_count", (double[]){-1}, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.init_count");
    assert_int_equal(lw_job_state_set(job, "init_count", (double[]){1.5}, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.init_count");
    assert_int_equal(lw_job_state_set(job, "init_sum", (double[]){1, -1}, 2, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.init_sum[1]");
    assert_int_equal(lw_job_state_set(job, "init_sum", (double[]){1, 2}, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.init_sum");
    /* a finished measurement: sum (8, 2) over 4 steps -> L(init) (2, 0.5) */
    assert_int_equal(lw_job_state_set(job, "init_sum", (double[]){8, 2}, 2, &err), 0);
    assert_int_equal(lw_job_state_set(job, "init_count", (double[]){4}, 1, &err), 0);
    step_ok(job, 0, (double[]){7, 7}, NULL, w);
    assert_vec_close(w, (double[]){0.5, 2}, 2, 1e-15, 0);
    lw_job_free(job);
}

/* ==== prior_norm ==== */

static void test_prior_norm_values(void **st)
{
    (void)st;
    lw_task t[6];
    default_tasks(t, 6);
    /* H = -(0.97 ln 0.97 + 0.03 ln 0.03)
     *   = 0.97 * 0.030459207484708574 + 0.03 * 3.506557897319982
     *   = 0.029545431260167 + 0.105196736919599 = 0.134742168179766
     * w = 1 / H = 7.421581628891754 */
    t[0].class_freq = (double[]){0.97, 0.03};
    t[0].n_class_freq = 2;
    /* unnormalised counts, same distribution as t[0] */
    t[1].class_freq = (double[]){97, 3};
    t[1].n_class_freq = 2;
    /* uniform over 4 of 5 classes (a zero skipped): H = ln 4, w = 0.7213475204444817 */
    t[2].class_freq = (double[]){2, 2, 0, 2, 2};
    t[2].n_class_freq = 5;
    t[3].label_var = 3.2; /* w = 1/3.2 = 0.3125 */
    t[4].prior_loss = 0.25; /* w = 4 */
    t[5].prior_loss = 0.5;  /* prior_loss wins over label_var: w = 2 */
    t[5].label_var = 3.0;
    lw_job *job = make_job("prior_norm", 6, t, NULL, 0, 0);
    const double want[6] = {7.421581628891754, 7.421581628891754, 0.7213475204444817,
                            0.3125, 4, 2};
    double w[6];
    /* weights do not depend on the losses */
    step_ok(job, 0, (double[]){0.1, 0.2, 1.3, 3.3, 0.2, 1}, NULL, w);
    assert_vec_close(w, want, 6, 1e-13, 0);
    step_ok(job, 1, (double[]){50, 0, -1, 1e-9, 2, 3}, NULL, w);
    assert_vec_close(w, want, 6, 1e-13, 0);
    lw_job_free(job);
}

static void test_prior_norm_validation(void **st)
{
    (void)st;
    lw_task t[3];
    default_tasks(t, 3);
    t[0].label_var = 1;
    t[2].label_var = 1; /* t[1] has no prior */
    create_fails("prior_norm", 3, t, NULL, 0, LW_EINVAL, "tasks[1]");
    t[1].classes = 5; /* classes is init_norm's, not a prior here */
    create_fails("prior_norm", 3, t, NULL, 0, LW_EINVAL, "tasks[1]");
    t[1].class_freq = (double[]){0, 7}; /* one class: entropy 0 */
    t[1].n_class_freq = 2;
    create_fails("prior_norm", 3, t, NULL, 0, LW_EINVAL, "tasks[1].class_freq");
    t[1].class_freq = (double[]){0.5, -0.1, 0.6};
    t[1].n_class_freq = 3;
    create_fails("prior_norm", 3, t, NULL, 0, LW_EINVAL, "tasks[1].class_freq[1]");
    t[1].n_class_freq = 0;
    t[1].label_var = 0;
    create_fails("prior_norm", 3, t, NULL, 0, LW_EINVAL, "tasks[1].label_var");
    t[1].label_var = NAN;
    t[1].prior_loss = INFINITY;
    create_fails("prior_norm", 3, t, NULL, 0, LW_EINVAL, "tasks[1].prior_loss");
    lw_value p = num_param("gamma", 1);
    t[1].prior_loss = 1;
    create_fails("prior_norm", 3, t, &p, 1, LW_EINVAL, "params.gamma");
}

static void test_prior_norm_state_import(void **st)
{
    (void)st;
    lw_task t[2];
    default_tasks(t, 2);
    t[0].label_var = 2;
    t[1].label_var = 4;
    lw_job *job = make_job("prior_norm", 2, t, NULL, 0, 0);
    lw_error err;
    double w[2];
    assert_int_equal(lw_job_state_set(job, "prior_loss", (double[]){1, 0}, 2, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.prior_loss[1]");
    step_ok(job, 0, (double[]){1, 1}, NULL, w);
    assert_vec_close(w, (double[]){0.5, 0.25}, 2, 1e-15, 0);
    assert_int_equal(lw_job_state_set(job, "prior_loss", (double[]){8, 0.5}, 2, &err), 0);
    step_ok(job, 1, (double[]){1, 1}, NULL, w);
    assert_vec_close(w, (double[]){0.125, 2}, 2, 1e-15, 0);
    lw_job_free(job);
}

/* ==== rt_norm ==== */

static void test_rt_norm_values_and_scale(void **st)
{
    (void)st;
    lw_job *job = make_job("rt_norm", 3, NULL, NULL, 0, 0);
    double w[3], w2[3];
    /* w = (1/0.5, 1/2, 1/4) */
    step_ok(job, 0, (double[]){0.5, 2, 4}, NULL, w);
    assert_vec_close(w, (double[]){2, 0.5, 0.25}, 3, 1e-15, 0);
    /* scale: w(c L) = w(L) / c, so every w_i L_i = 1 */
    for (int k = 0; k < 5; k++) {
        double L[3], cL[3], c = 0.01 + 100 * urand();
        for (size_t i = 0; i < 3; i++) {
            L[i] = 1e-3 + 10 * urand();
            cL[i] = c * L[i];
        }
        step_ok(job, 1, L, NULL, w);
        step_ok(job, 2, cL, NULL, w2);
        for (size_t i = 0; i < 3; i++) {
            assert_close_msg(w2[i] * c, w[i], 1e-14, 0, "w(cL)*c", i);
            assert_close_msg(w[i] * L[i], 1, 1e-15, 0, "w*L", i);
        }
    }
    lw_input in = {3, -1, (double[]){1, 2, 0}, NULL, NULL, NULL};
    step_fails(job, &in, LW_EINVAL, "losses[2]");
    in.losses = (double[]){-1, 2, 3};
    step_fails(job, &in, LW_EINVAL, "losses[0]");
    in.losses = (double[]){1, INFINITY, 3};
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    in.losses = NULL;
    step_fails(job, &in, LW_EINVAL, "losses");
    lw_value p = num_param("gamma", 0);
    create_fails("rt_norm", 2, NULL, &p, 1, LW_EINVAL, "params.gamma");
    lw_job_free(job);
}

/* ==== power_mean ==== */

static void pm_weights(double gamma, size_t T, const double *L, double *w)
{
    lw_value p = num_param("gamma", gamma);
    lw_job *job = make_job("power_mean", T, NULL, &p, 1, 0);
    step_ok(job, 0, L, NULL, w);
    lw_job_free(job);
}

/* methods-anchors.md 2.6 and 8.2, L = (1, 4), T = 2. */
static void test_power_mean_anchor_check_values(void **st)
{
    (void)st;
    const double L[2] = {1, 4};
    double w[2];
    /* gamma 2: M = sqrt((1 + 16)/2) = sqrt(8.5) = 2.9154759;
     * w_i = (1/2) L_i / M = (0.1714986, 0.6859943); the note: (0.1715, 0.6860) */
    pm_weights(2, 2, L, w);
    assert_vec_close(w, (double[]){0.1715, 0.6860}, 2, 0, 5e-5);
    assert_vec_close(w, (double[]){0.5 / sqrt(8.5), 2 / sqrt(8.5)}, 2, 1e-14, 0);
    /* gamma 0.5: M = ((1 + 2)/2)^2 = 2.25; w_i = (1/2) (L_i/M)^(-1/2)
     *   = (0.5 * 1.5, 0.5 * 0.75) = (0.75, 0.375) */
    pm_weights(0.5, 2, L, w);
    assert_vec_close(w, (double[]){0.75, 0.375}, 2, 1e-14, 0);
    /* gamma -1: M = 1 / ((1 + 1/4)/2) = 1.6; w_i = (1/2) (L_i/1.6)^(-2)
     *   = (0.5 * 2.56, 0.5 * 0.16) = (1.28, 0.08) */
    pm_weights(-1, 2, L, w);
    assert_vec_close(w, (double[]){1.28, 0.08}, 2, 1e-14, 0);
    /* gamma 0 (GLS): M = sqrt(1 * 4) = 2; w_i = M / (2 L_i) = (1, 0.25) */
    pm_weights(0, 2, L, w);
    assert_vec_close(w, (double[]){1, 0.25}, 2, 1e-15, 0);
    /* default gamma is 0 */
    lw_job *job = make_job("power_mean", 2, NULL, NULL, 0, 0);
    step_ok(job, 0, L, NULL, w);
    assert_vec_close(w, (double[]){1, 0.25}, 2, 1e-15, 0);
    lw_job_free(job);
}

static void test_power_mean_gamma1_is_mean(void **st)
{
    (void)st;
    for (size_t T = 1; T <= 7; T += 3) {
        double L[MAXT], w[MAXT];
        for (size_t i = 0; i < T; i++)
            L[i] = 1e-4 + 50 * urand();
        pm_weights(1, T, L, w);
        for (size_t i = 0; i < T; i++)
            assert_close_msg(w[i], 1.0 / (double)T, 1e-15, 0, "w", i);
    }
}

static void test_power_mean_gamma0_is_gls(void **st)
{
    (void)st;
    for (int rep = 0; rep < 5; rep++) {
        const size_t T = 4;
        double L[4], w[4], prod = 1;
        for (size_t i = 0; i < T; i++) {
            L[i] = 0.01 + 20 * urand();
            prod *= L[i];
        }
        double M = pow(prod, 1.0 / (double)T); /* geometric mean */
        pm_weights(0, T, L, w);
        for (size_t i = 0; i < T; i++)
            assert_close_msg(w[i], M / ((double)T * L[i]), 1e-13, 0, "GLS w", i);
    }
}

/* M computed the direct way, in the test's own arithmetic. */
static double direct_power_mean(double gamma, size_t T, const double *L)
{
    double s = 0;
    for (size_t i = 0; i < T; i++)
        s += pow(L[i], gamma);
    return pow(s / (double)T, 1.0 / gamma);
}

/* sum_i w_i L_i = M, and w_i is dM/dL_i (central differences). */
static void test_power_mean_weights_are_derivative(void **st)
{
    (void)st;
    const double gammas[] = {-3, -1, -0.5, 0.25, 1, 2, 7};
    for (size_t g = 0; g < sizeof gammas / sizeof gammas[0]; g++) {
        const size_t T = 5;
        double L[5], w[5];
        for (size_t i = 0; i < T; i++)
            L[i] = 0.2 + 5 * urand();
        pm_weights(gammas[g], T, L, w);
        double M = direct_power_mean(gammas[g], T, L), wl = 0;
        for (size_t i = 0; i < T; i++)
            wl += w[i] * L[i];
        assert_close_msg(wl, M, 1e-12, 0, "sum w L vs M", g);
        for (size_t i = 0; i < T; i++) {
            double h = 1e-6 * L[i], Lp[5], Lm[5];
            memcpy(Lp, L, sizeof L);
            memcpy(Lm, L, sizeof L);
            Lp[i] += h;
            Lm[i] -= h;
            double d = (direct_power_mean(gammas[g], T, Lp) - direct_power_mean(gammas[g], T, Lm)) /
                       (2 * h);
            assert_close_msg(w[i], d, 1e-6, 1e-12, "dM/dL", i);
        }
    }
}

/* M is homogeneous of degree 1, so w = dM/dL is unchanged by L -> cL. */
static void test_power_mean_scale_invariant(void **st)
{
    (void)st;
    const double gammas[] = {-2, 0, 0.5, 3};
    for (size_t g = 0; g < 4; g++) {
        double L[3], cL[3], w[3], wc[3];
        for (size_t i = 0; i < 3; i++) {
            L[i] = 0.05 + 3 * urand();
            cL[i] = 123.25 * L[i];
        }
        pm_weights(gammas[g], 3, L, w);
        pm_weights(gammas[g], 3, cL, wc);
        assert_vec_close(wc, w, 3, 1e-13, 0);
    }
}

/* gamma -> 0 is continuous (a naive log-sum-exp loses every digit here). */
static void test_power_mean_small_gamma_continuous(void **st)
{
    (void)st;
    const double L[3] = {0.3, 2.5, 40};
    double w0[3], w[3];
    pm_weights(0, 3, L, w0);
    pm_weights(1e-12, 3, L, w);
    assert_vec_close(w, w0, 3, 1e-10, 0);
    pm_weights(-1e-12, 3, L, w);
    assert_vec_close(w, w0, 3, 1e-10, 0);
    /* gamma = 1e-4: first order in gamma, well inside 1e-2 relative */
    pm_weights(1e-4, 3, L, w);
    assert_vec_close(w, w0, 3, 1e-2, 0);
}

/* Losses whose powers overflow a double: the result is computed in logs. */
static void test_power_mean_extreme_losses(void **st)
{
    (void)st;
    const double L[2] = {1e300, 1e-300};
    double w[2];
    /* gamma 2: M = 1e300 / sqrt 2; w_1 = (1/2) L_1/M = sqrt(2)/2; w_2 ~ 1e-600 = 0 */
    pm_weights(2, 2, L, w);
    assert_close_msg(w[0], sqrt(2) / 2, 1e-12, 0, "w", 0);
    assert_true(w[1] >= 0 && w[1] < 1e-290);
    /* gamma -2: M = sqrt(2) 1e-300; w_2 = (1/2) (L_2/M)^(-3) = (1/2) 2^(3/2) = sqrt 2 */
    pm_weights(-2, 2, L, w);
    assert_close_msg(w[1], sqrt(2), 1e-12, 0, "w", 1);
    assert_true(w[0] >= 0 && w[0] < 1e-290);
    /* gamma 0: M = 1; w = (1/(2e300), 1/(2e-300)) */
    pm_weights(0, 2, L, w);
    assert_vec_close(w, (double[]){0.5e-300, 0.5e300}, 2, 1e-12, 0);
    /* gamma 100 with moderate losses: (L/M)^99 */
    pm_weights(100, 2, (double[]){1, 4}, w);
    /* M = 4 (1/2 + 4^-100/2)^(1/100) ~ 4 * 2^(-1/100); w_2 = (1/2)(2^(1/100))^99 */
    assert_close_msg(w[1], 0.5 * pow(2, 0.99), 1e-12, 0, "w", 1);
    assert_true(isfinite(w[0]) && w[0] >= 0);
}

static void test_power_mean_validation(void **st)
{
    (void)st;
    lw_value p = num_param("gamma", 101);
    create_fails("power_mean", 2, NULL, &p, 1, LW_EINVAL, "params.gamma");
    p = num_param("gamma", -100.5);
    create_fails("power_mean", 2, NULL, &p, 1, LW_EINVAL, "params.gamma");
    p = num_param("gamma", NAN);
    create_fails("power_mean", 2, NULL, &p, 1, LW_EINVAL, "params.gamma");
    p = str_param("gamma", "two");
    create_fails("power_mean", 2, NULL, &p, 1, LW_EINVAL, "params.gamma");
    lw_job *job = make_job("power_mean", 2, NULL, NULL, 0, 0);
    lw_input in = {0, -1, (double[]){1, 0}, NULL, NULL, NULL};
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    in.losses = (double[]){-1, 1};
    step_fails(job, &in, LW_EINVAL, "losses[0]");
    lw_job_free(job);
}

/* ==== grad_unit ==== */

static void grad_unit_weights(const lw_value *params, size_t np, const double *n, double *w)
{
    lw_job *job = make_job("grad_unit", 3, NULL, params, np, 0);
    step_ok(job, 0, NULL, n, w);
    lw_job_free(job);
}

static void test_grad_unit_values(void **st)
{
    (void)st;
    const lw_method_info *mi = lw_method_find("grad_unit");
    assert_non_null(mi);
    assert_int_equal(mi->inputs, LW_IN_GRAD_NORMS);
    double w[3];
    /* default guard "max", eps 1e-8: (1/2, 1/0.5, 1/max(0, 1e-8)) = (0.5, 2, 1e8) */
    grad_unit_weights(NULL, 0, (double[]){2, 0.5, 0}, w);
    assert_vec_close(w, (double[]){0.5, 2, 1e8}, 3, 1e-15, 0);
    /* max, eps 0.5: (1/2, 1/0.5, 1/0.5) = (0.5, 2, 2) */
    lw_value p[2] = {num_param("eps", 0.5), str_param("guard", "max")};
    grad_unit_weights(p, 2, (double[]){2, 0.5, 0}, w);
    assert_vec_close(w, (double[]){0.5, 2, 2}, 3, 1e-15, 0);
    /* add, eps 0.5: (1/2.5, 1/1, 1/0.5) = (0.4, 1, 2) */
    p[1] = str_param("guard", "add");
    grad_unit_weights(p, 2, (double[]){2, 0.5, 0}, w);
    assert_vec_close(w, (double[]){0.4, 1, 2}, 3, 1e-15, 0);
    /* tiny norm 1e-9, eps 1e-8: max -> 1e8; add -> 1/1.1e-8 = 90909090.9 */
    grad_unit_weights(NULL, 0, (double[]){1, 1e-9, 4}, w);
    assert_vec_close(w, (double[]){1, 1e8, 0.25}, 3, 1e-15, 0);
    grad_unit_weights(&p[1], 1, (double[]){1, 1e-9, 4}, w);
    assert_vec_close(w, (double[]){1 / (1 + 1e-8), 1 / 1.1e-8, 1 / (4 + 1e-8)}, 3, 1e-15, 0);
}

/* n -> c n gives w / c (each c_i g_i stays a unit vector); the losses are
 * not used at all. */
static void test_grad_unit_scale(void **st)
{
    (void)st;
    lw_job *job = make_job("grad_unit", 3, NULL, NULL, 0, 0);
    double n[3], cn[3], w[3], wc[3], wl[3];
    for (int rep = 0; rep < 5; rep++) {
        double c = 1e-3 + 1e3 * urand();
        for (size_t i = 0; i < 3; i++) {
            n[i] = 0.01 + 10 * urand();
            cn[i] = c * n[i];
        }
        step_ok(job, 0, NULL, n, w);
        step_ok(job, 1, NULL, cn, wc);
        for (size_t i = 0; i < 3; i++) {
            assert_close_msg(wc[i] * c, w[i], 1e-14, 0, "w(cn)*c", i);
            assert_close_msg(w[i] * n[i], 1, 1e-15, 0, "w*n", i);
        }
        step_ok(job, 2, (double[]){1, 2, 3}, n, wl);
        assert_memory_equal(wl, w, sizeof w);
        step_ok(job, 3, (double[]){10, 20, 30}, n, wl);
        assert_memory_equal(wl, w, sizeof w);
    }
    lw_job_free(job);
}

static void test_grad_unit_validation(void **st)
{
    (void)st;
    lw_value p = num_param("eps", 0);
    create_fails("grad_unit", 2, NULL, &p, 1, LW_EINVAL, "params.eps");
    p = num_param("eps", -1e-8);
    create_fails("grad_unit", 2, NULL, &p, 1, LW_EINVAL, "params.eps");
    p = str_param("guard", "min");
    create_fails("grad_unit", 2, NULL, &p, 1, LW_EINVAL, "params.guard");
    p = num_param("guard", 0);
    create_fails("grad_unit", 2, NULL, &p, 1, LW_EINVAL, "params.guard");
    lw_job *job = make_job("grad_unit", 2, NULL, NULL, 0, 0);
    lw_input in = {0, -1, (double[]){1, 1}, NULL, NULL, NULL};
    step_fails(job, &in, LW_EINVAL, "grad_norms");
    in.grad_norms = (double[]){1, -0.5};
    step_fails(job, &in, LW_EINVAL, "grad_norms[1]");
    in.grad_norms = (double[]){NAN, 1};
    step_fails(job, &in, LW_EINVAL, "grad_norms[0]");
    lw_job_free(job);
}

/* ==== rlw ==== */

static void test_rlw_softmax_of_normals(void **st)
{
    (void)st;
    const size_t T = 4;
    const uint64_t seed = 12345;
    lw_job *one = make_job("rlw", T, NULL, NULL, 0, seed);
    lw_value p = str_param("scale", "tasks");
    lw_job *tasks = make_job("rlw", T, NULL, &p, 1, seed);
    const double L[4] = {1, 2, 3, 4};
    for (uint64_t s = 0; s < 50; s++) {
        double w[4], wt[4], z[4], want[4], zmax = -INFINITY, sum = 0, sumw = 0, sumt = 0;
        step_ok(one, s, L, NULL, w);
        step_ok(tasks, s, L, NULL, wt);
        /* the contract: z_i = lw_rand_normal(seed, step, 0, i), w = softmax(z) */
        for (size_t i = 0; i < T; i++) {
            z[i] = lw_rand_normal(seed, s, 0, i);
            zmax = fmax(zmax, z[i]);
        }
        for (size_t i = 0; i < T; i++)
            sum += exp(z[i] - zmax);
        for (size_t i = 0; i < T; i++) {
            want[i] = exp(z[i] - zmax) / sum;
            assert_true(w[i] > 0 && w[i] < 1);
            sumw += w[i];
            sumt += wt[i];
            assert_close_msg(wt[i], (double)T * w[i], 1e-15, 0, "scale tasks", i);
        }
        assert_vec_close(w, want, T, 1e-14, 0);
        assert_close_msg(sumw, 1, 1e-15, 0, "sum w", 0);
        assert_close_msg(sumt, (double)T, 1e-15, 0, "sum w (tasks)", 0);
    }
    lw_job_free(one);
    lw_job_free(tasks);
}

static void test_rlw_deterministic_per_seed_and_step(void **st)
{
    (void)st;
    const double L[3] = {1, 1, 1};
    lw_job *a = make_job("rlw", 3, NULL, NULL, 0, 7);
    lw_job *b = make_job("rlw", 3, NULL, NULL, 0, 7);
    lw_job *c = make_job("rlw", 3, NULL, NULL, 0, 8);
    double wa5[3], wa3[3], wb3[3], wb5[3], wc5[3], again[3];
    /* order of steps does not matter: a does 5 then 3, b does 3 then 5 */
    step_ok(a, 5, L, NULL, wa5);
    step_ok(a, 3, L, NULL, wa3);
    step_ok(b, 3, L, NULL, wb3);
    step_ok(b, 5, L, NULL, wb5);
    step_ok(c, 5, L, NULL, wc5);
    assert_memory_equal(wa5, wb5, sizeof wa5);
    assert_memory_equal(wa3, wb3, sizeof wa3);
    /* a replayed step gives the same bits */
    step_ok(a, 5, L, NULL, again);
    assert_memory_equal(again, wa5, sizeof wa5);
    /* different step, different seed: different weights */
    double dstep = 0, dseed = 0;
    for (size_t i = 0; i < 3; i++) {
        dstep = fmax(dstep, fabs(wa5[i] - wa3[i]));
        dseed = fmax(dseed, fabs(wa5[i] - wc5[i]));
    }
    assert_true(dstep > 1e-3);
    assert_true(dseed > 1e-3);
    lw_job_free(a);
    lw_job_free(b);
    lw_job_free(c);
}

/* Over many steps each weight averages 1/T and really varies. */
static void test_rlw_statistics(void **st)
{
    (void)st;
    const size_t T = 3;
    lw_job *job = make_job("rlw", T, NULL, NULL, 0, 99);
    double mean[3] = {0}, mn = 1, mx = 0, w[3];
    const int N = 4000;
    for (int s = 0; s < N; s++) {
        step_ok(job, (uint64_t)s, (double[]){1, 1, 1}, NULL, w);
        for (size_t i = 0; i < T; i++) {
            mean[i] += w[i] / N;
            mn = fmin(mn, w[i]);
            mx = fmax(mx, w[i]);
        }
    }
    for (size_t i = 0; i < T; i++)
        assert_close_msg(mean[i], 1.0 / 3, 0, 0.02, "mean w", i);
    assert_true(mn < 0.1 && mx > 0.7);
    lw_job_free(job);
    /* one task: softmax of one number is 1 */
    job = make_job("rlw", 1, NULL, NULL, 0, 99);
    step_ok(job, 17, (double[]){2}, NULL, w);
    assert_true(w[0] == 1.0);
    lw_job_free(job);
}

static void test_rlw_validation(void **st)
{
    (void)st;
    lw_value p = str_param("scale", "sum");
    create_fails("rlw", 2, NULL, &p, 1, LW_EINVAL, "params.scale");
    lw_job *job = make_job("rlw", 2, NULL, NULL, 0, 0);
    lw_input in = {0, -1, NULL, NULL, NULL, NULL};
    step_fails(job, &in, LW_EINVAL, "losses");
    lw_job_free(job);
}

/* ==== db_mtl ==== */

static void test_db_mtl_values(void **st)
{
    (void)st;
    lw_job *job = make_job("db_mtl", 2, NULL, NULL, 0, 0);
    const lw_method_info *mi = lw_job_method(job);
    assert_int_equal(mi->inputs, LW_IN_LOSSES | LW_IN_GRAD_NORMS);
    assert_int_equal(mi->output, LW_OUT_GRAD_COEFFS);
    double w[3];
    /* L = (1, 3), n = (2, 3): u = n / (L + 1e-8) ~ (2, 1), max 2;
     * alpha = 2 / (u + 1e-8) ~ (1, 2); c = alpha / (L + 1e-8) ~ (1, 2/3) */
    step_ok(job, 0, (double[]){1, 3}, (double[]){2, 3}, w);
    assert_vec_close(w, (double[]){1, 2.0 / 3}, 2, 1e-7, 0);
    {
        double e = 1e-8, u0 = 2 / (1 + e), u1 = 3 / (3 + e);
        assert_vec_close(w, (double[]){(u0 / (u0 + e)) / (1 + e), (u0 / (u1 + e)) / (3 + e)}, 2,
                         1e-15, 0);
    }
    lw_job_free(job);
    /* L = (0.5, 2, 1), n = (1, 1, 4): u ~ (2, 0.5, 4), max 4;
     * alpha ~ (2, 8, 1); c = alpha / L ~ (4, 4, 1) */
    job = make_job("db_mtl", 3, NULL, NULL, 0, 0);
    step_ok(job, 0, (double[]){0.5, 2, 1}, (double[]){1, 1, 4}, w);
    assert_vec_close(w, (double[]){4, 4, 1}, 3, 1e-7, 0);
    /* every task's term c_i g_i has the same norm c_i n_i = max_j u_j
     * (up to the eps): that is the "dual balancing" of the gradients */
    for (int rep = 0; rep < 5; rep++) {
        double L[3], n[3], cn[3], wc[3], umax = 0;
        for (size_t i = 0; i < 3; i++) {
            L[i] = 0.05 + 4 * urand();
            n[i] = 0.1 + 10 * urand();
            cn[i] = 17 * n[i];
            umax = fmax(umax, n[i] / L[i]);
        }
        step_ok(job, 1, L, n, w);
        for (size_t i = 0; i < 3; i++)
            assert_close_msg(w[i] * n[i], umax, 1e-7, 0, "c_i n_i", i);
        /* scaling every gradient leaves the coefficients unchanged */
        step_ok(job, 2, L, cn, wc);
        assert_vec_close(wc, w, 3, 1e-7, 0);
    }
    /* zero loss: the 1e-8 guard keeps it finite; zero norms give 0 */
    step_ok(job, 3, (double[]){0, 1, 1}, (double[]){0, 0, 0}, w);
    assert_vec_close(w, (double[]){0, 0, 0}, 3, 0, 0);
    step_ok(job, 4, (double[]){0, 1, 1}, (double[]){1, 1, 1}, w);
    for (size_t i = 0; i < 3; i++)
        assert_true(isfinite(w[i]) && w[i] > 0);
    lw_job_free(job);
}

static void test_db_mtl_validation(void **st)
{
    (void)st;
    lw_error err;
    lw_task t[2];
    default_tasks(t, 2);
    lw_value p = num_param("beta", 0.9);
    lw_spec spec = {"db_mtl", t, 2, &p, 1, 0};
    lw_job *job;
    /* any beta but 0 is refused, with the reason */
    assert_int_equal(lw_job_create(&spec, &job, &err), LW_ENOTSUP);
    assert_null(job);
    assert_string_equal(err.field, "params.beta");
    assert_non_null(strstr(err.message, "EMA"));
    p = num_param("beta", 1e-12);
    create_fails("db_mtl", 2, NULL, &p, 1, LW_ENOTSUP, "params.beta");
    p = num_param("beta", -0.5);
    create_fails("db_mtl", 2, NULL, &p, 1, LW_EINVAL, "params.beta");
    p = num_param("beta", 0);
    job = make_job("db_mtl", 2, NULL, &p, 1, 0);
    lw_input in = {0, -1, (double[]){1, 1}, NULL, NULL, NULL};
    step_fails(job, &in, LW_EINVAL, "grad_norms");
    in.losses = NULL;
    in.grad_norms = (double[]){1, 1};
    step_fails(job, &in, LW_EINVAL, "losses");
    in.losses = (double[]){1, -1e-3};
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    lw_job_free(job);
}

/* The rows exist, in the documented order, with docs. */
static void test_rows_present_in_order(void **st)
{
    (void)st;
    const char *const names[] = {"init_norm", "prior_norm", "rt_norm", "power_mean",
                                 "grad_unit", "rlw",        "db_mtl"};
    size_t prev = 0;
    for (size_t k = 0; k < 7; k++) {
        size_t at = lw_method_count();
        for (size_t i = 0; i < lw_method_count(); i++)
            if (strcmp(lw_method_at(i)->name, names[k]) == 0)
                at = i;
        if (at == lw_method_count())
            fail_msg("method %s is not in the table", names[k]);
        if (k)
            assert_true(at > prev);
        prev = at;
        const lw_method_info *mi = lw_method_at(at);
        assert_true(mi->servable);
        assert_true(mi->doc && strlen(mi->doc) > 40);
        assert_true(mi->summary && mi->summary[0]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_norm_mean_of_first_steps),
        cmocka_unit_test(test_init_norm_default_is_first_step),
        cmocka_unit_test(test_init_norm_task_priors),
        cmocka_unit_test(test_init_norm_scale_invariant),
        cmocka_unit_test(test_init_norm_losses_checked_only_while_measuring),
        cmocka_unit_test(test_init_norm_validation),
        cmocka_unit_test(test_init_norm_state_import),
        cmocka_unit_test(test_prior_norm_values),
        cmocka_unit_test(test_prior_norm_validation),
        cmocka_unit_test(test_prior_norm_state_import),
        cmocka_unit_test(test_rt_norm_values_and_scale),
        cmocka_unit_test(test_power_mean_anchor_check_values),
        cmocka_unit_test(test_power_mean_gamma1_is_mean),
        cmocka_unit_test(test_power_mean_gamma0_is_gls),
        cmocka_unit_test(test_power_mean_weights_are_derivative),
        cmocka_unit_test(test_power_mean_scale_invariant),
        cmocka_unit_test(test_power_mean_small_gamma_continuous),
        cmocka_unit_test(test_power_mean_extreme_losses),
        cmocka_unit_test(test_power_mean_validation),
        cmocka_unit_test(test_grad_unit_values),
        cmocka_unit_test(test_grad_unit_scale),
        cmocka_unit_test(test_grad_unit_validation),
        cmocka_unit_test(test_rlw_softmax_of_normals),
        cmocka_unit_test(test_rlw_deterministic_per_seed_and_step),
        cmocka_unit_test(test_rlw_statistics),
        cmocka_unit_test(test_rlw_validation),
        cmocka_unit_test(test_db_mtl_values),
        cmocka_unit_test(test_db_mtl_validation),
        cmocka_unit_test(test_rows_present_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
