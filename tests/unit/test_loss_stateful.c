/*
 * test_loss_stateful.c -- the stateful loss-based methods: uw, imtl_l, dwa,
 * gradnorm, stch, famo.
 *
 * Per method: cases computed by hand (the arithmetic is in the comment next
 * to each expected number), multi-step behaviour (convergence, warm-ups,
 * epochs), every validation error the method adds (with its code and field,
 * and the job left bit-identical), and a state round trip: export every
 * array, import into a fresh job, continue both, same bits.
 * The reference vectors (tests/refdata) are checked by test_refdata.c.
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

/* ---- helpers ------------------------------------------------------------ */

#define NUM(n, v) ((lw_value){(n), LW_VAL_NUMBER, (v), NULL, NULL, 0})
#define STR(n, s) ((lw_value){(n), LW_VAL_STRING, 0, (s), NULL, 0})
#define ARR(n, a, l) ((lw_value){(n), LW_VAL_ARRAY, 0, NULL, (a), (l)})
#define NPARAMS(a) (sizeof(a) / sizeof((a)[0]))

#define MAX_T 6

static const char *const task_names[MAX_T] = {"t0", "t1", "t2", "t3", "t4", "t5"};

static int job_create(const char *method, size_t T, const lw_value *params, size_t np,
                      lw_job **job, lw_error *err)
{
    lw_task tasks[MAX_T];
    for (size_t i = 0; i < T; i++)
        lw_task_init(&tasks[i], task_names[i]);
    lw_spec spec = {method, tasks, T, params, np, 7};
    return lw_job_create(&spec, job, err);
}

static lw_job *job_new(const char *method, size_t T, const lw_value *params, size_t np)
{
    lw_job *job = NULL;
    lw_error err;
    int rc = job_create(method, T, params, np, &job, &err);
    if (rc)
        print_error("%s: create failed: %s (%s)\n", method, err.message, err.field);
    assert_int_equal(rc, 0);
    assert_non_null(job);
    return job;
}

/* Creating the job must fail with code and field. */
static void create_fails(const char *method, size_t T, const lw_value *params, size_t np,
                         int code, const char *field)
{
    lw_job *job = (lw_job *)1;
    lw_error err;
    int rc = job_create(method, T, params, np, &job, &err);
    if (rc != code || strcmp(err.field, field) != 0)
        print_error("%s: expected %d (%s), got %d (%s): %s\n", method, code, field, rc,
                    err.field, err.message);
    assert_int_equal(rc, code);
    assert_string_equal(err.field, field);
    assert_null(job);
}

/* Every exported state array, concatenated, plus steps_done. */
typedef struct snap {
    double v[1024];
    size_t n;
} snap;

static void snap_take(const lw_job *job, snap *s)
{
    s->n = 0;
    for (size_t i = 0; i < lw_job_state_count(job); i++) {
        size_t len;
        assert_non_null(lw_job_state_name(job, i, &len));
        const double *a = lw_job_state_get(job, i);
        assert_true(s->n + len <= 1024);
        memcpy(s->v + s->n, a, len * sizeof(double));
        s->n += len;
    }
}

static void snap_equal(const snap *a, const snap *b)
{
    assert_int_equal(a->n, b->n);
    assert_memory_equal(a->v, b->v, a->n * sizeof(double));
}

/* One state array by name (borrowed). */
static const double *state_of(const lw_job *job, const char *name)
{
    for (size_t i = 0; i < lw_job_state_count(job); i++)
        if (strcmp(lw_job_state_name(job, i, NULL), name) == 0)
            return lw_job_state_get(job, i);
    fail_msg("no state array %s", name);
    return NULL;
}

static lw_input input(const double *L, const double *N, int64_t epoch, const double *La)
{
    lw_input in;
    memset(&in, 0, sizeof in);
    in.losses = L;
    in.grad_norms = N;
    in.epoch = epoch;
    in.losses_after = La;
    return in;
}

static void step_ok(lw_job *job, const lw_input *in, double *w)
{
    lw_error err;
    int rc = lw_job_step(job, in, w, &err);
    if (rc)
        print_error("step failed: %s (%s)\n", err.message, err.field);
    assert_int_equal(rc, 0);
}

/* The step must fail with code and field and leave the job bit-identical. */
static void step_fails(lw_job *job, const lw_input *in, int code, const char *field)
{
    snap before, after;
    double w[MAX_T];
    lw_error err;
    uint64_t done = lw_job_steps_done(job);
    snap_take(job, &before);
    int rc = lw_job_step(job, in, w, &err);
    if (rc != code || strcmp(err.field, field) != 0)
        print_error("expected %d (%s), got %d (%s): %s\n", code, field, rc, err.field,
                    err.message);
    assert_int_equal(rc, code);
    assert_string_equal(err.field, field);
    snap_take(job, &after);
    snap_equal(&before, &after);
    assert_int_equal(lw_job_steps_done(job), done);
}

static void assert_close(double got, double want, double rtol)
{
    if (!(fabs(got - want) <= rtol * fabs(want) + 1e-300)) {
        print_error("got %.17g, want %.17g (rtol %g)\n", got, want, rtol);
        fail();
    }
}

/* lw_job_describe into a small table. */
typedef struct view {
    char name[16][32];
    double v[16][MAX_T];
    size_t n;
} view;

static void view_fn(void *ud, const char *name, const double *v, size_t len)
{
    view *vw = ud;
    if (vw->n == 16 || len > MAX_T)
        return;
    snprintf(vw->name[vw->n], sizeof vw->name[0], "%s", name);
    memcpy(vw->v[vw->n], v, len * sizeof(double));
    vw->n++;
}

static const double *view_get(const view *vw, const char *name)
{
    for (size_t i = 0; i < vw->n; i++)
        if (strcmp(vw->name[i], name) == 0)
            return vw->v[i];
    fail_msg("describe has no %s", name);
    return NULL;
}

/* A deterministic, varied sequence of inputs (T <= MAX_T). */
static double seq_loss(size_t t, size_t i)
{
    return (1.0 + (double)i) * (1.0 + 0.3 * sin(0.7 * (double)t + (double)i)) *
           exp(-0.02 * (double)t);
}

static double seq_norm(size_t t, size_t i)
{
    return (0.5 + (double)i) * (1.0 + 0.4 * cos(0.3 * (double)t + 2.0 * (double)i));
}

typedef struct seq_in {
    double L[MAX_T], N[MAX_T], La[MAX_T];
    lw_input in;
} seq_in;

/* Step t of the sequence: epochs of 3 steps, losses_after from step t-1. */
static void seq_input(size_t t, size_t T, seq_in *s)
{
    for (size_t i = 0; i < T; i++) {
        s->L[i] = seq_loss(t, i);
        s->N[i] = seq_norm(t, i);
        s->La[i] = t > 0 ? 0.95 * seq_loss(t - 1, i) : 0.0;
    }
    s->in = input(s->L, s->N, (int64_t)(t / 3), t > 0 ? s->La : NULL);
    s->in.step = t;
}

/*
 * Round trip: run k steps on a job, export every array, import them into a
 * fresh job from the same spec, continue both `more` steps: the weights
 * must be the same bits. A third job that was not imported, fed the same
 * `more` steps, must differ somewhere (so the import is what makes them
 * equal).
 */
static void roundtrip(const char *method, size_t T, const lw_value *params, size_t np,
                      size_t k, size_t more)
{
    lw_job *a = job_new(method, T, params, np);
    lw_job *b = job_new(method, T, params, np);
    lw_job *cold = job_new(method, T, params, np);
    double wa[MAX_T], wb[MAX_T], wc[MAX_T];
    seq_in s;
    lw_error err;

    for (size_t t = 0; t < k; t++) {
        seq_input(t, T, &s);
        step_ok(a, &s.in, wa);
    }
    for (size_t i = 0; i < lw_job_state_count(a); i++) {
        size_t len;
        const char *name = lw_job_state_name(a, i, &len);
        int rc = lw_job_state_set(b, name, lw_job_state_get(a, i), len, &err);
        if (rc)
            print_error("import %s: %s (%s)\n", name, err.message, err.field);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(lw_job_steps_done(b), k);
    snap sa, sb;
    snap_take(a, &sa);
    snap_take(b, &sb);
    snap_equal(&sa, &sb);

    int differs = 0;
    for (size_t t = k; t < k + more; t++) {
        seq_input(t, T, &s);
        step_ok(a, &s.in, wa);
        step_ok(b, &s.in, wb);
        assert_memory_equal(wa, wb, T * sizeof(double));
        step_ok(cold, &s.in, wc);
        differs |= memcmp(wa, wc, T * sizeof(double)) != 0;
    }
    assert_true(differs);
    lw_job_free(a);
    lw_job_free(b);
    lw_job_free(cold);
}

/* ---- uw ------------------------------------------------------------------ */

static void test_uw_log_var_adam_first_steps_by_hand(void **state)
{
    (void)state;
    const lw_value p[] = {NUM("lr", 0.1)};
    lw_job *job = job_new("uw", 2, p, NPARAMS(p));
    const double L[2] = {2.0, 0.5};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);

    /* s = 0: w = 0.5 exp(0) = 0.5 for both. */
    step_ok(job, &in, w);
    assert_true(w[0] == 0.5 && w[1] == 0.5);
    /*
     * grad = 0.5 - 0.5 exp(-s) L = (0.5 - 1, 0.5 - 0.25) = (-0.5, 0.25).
     * Adam step 1: m = 0.1 g, v = 0.001 g^2, step_size = lr / (1 - 0.9) = 1,
     * denom = sqrt(v) / sqrt(0.001) + 1e-8 = |g| + 1e-8, so
     * s = -0.1 g / (|g| + 1e-8) = (0.099999998, -0.099999996);
     * w = 0.5 exp(-s) = (0.45241870992, 0.55258545683).
     */
    step_ok(job, &in, w);
    assert_close(w[0], 0.4524187099228172, 1e-12);
    assert_close(w[1], 0.5525854568274821, 1e-12);
    assert_true(state_of(job, "adam_t")[0] == 2.0);
    lw_job_free(job);
}

static void test_uw_log_var_sgd_by_hand(void **state)
{
    (void)state;
    const lw_value p[] = {NUM("init", -0.5), STR("optimizer", "sgd"), NUM("lr", 0.05)};
    lw_job *job = job_new("uw", 2, p, NPARAMS(p));
    const double L[2] = {2.0, 0.5};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);

    /* s = -0.5: w = 0.5 e^0.5 = 0.82436063535 (LibMTL's first weights). */
    step_ok(job, &in, w);
    assert_close(w[0], 0.8243606353500641, 1e-15);
    assert_close(w[1], 0.8243606353500641, 1e-15);
    /*
     * grad = 0.5 - 0.82436063535 L = (-1.14872127070, 0.08781968232);
     * s = -0.5 - 0.05 grad = (-0.44256393646, -0.50439098412);
     * w = 0.5 exp(-s) = (0.77834668455, 0.82798834859).
     */
    step_ok(job, &in, w);
    assert_close(w[0], 0.7783466845515475, 1e-12);
    assert_close(w[1], 0.8279883485928120, 1e-12);
    assert_true(state_of(job, "adam_t")[0] == 0.0); /* sgd has no moments */
    lw_job_free(job);
}

static void test_uw_sigma_sgd_by_hand(void **state)
{
    (void)state;
    const lw_value p[] = {STR("form", "sigma"), STR("optimizer", "sgd"), NUM("lr", 0.1)};
    lw_job *job = job_new("uw", 2, p, NPARAMS(p));
    const double L[2] = {2.0, 0.5};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);
    view vw = {0};

    /* init 0: sigma = exp(0/2) = 1, w = 1/sigma^2 = 1. */
    lw_job_describe(job, view_fn, &vw);
    assert_true(view_get(&vw, "sigma")[0] == 1.0 && view_get(&vw, "weights")[1] == 1.0);
    step_ok(job, &in, w);
    assert_true(w[0] == 1.0 && w[1] == 1.0);
    /*
     * d/dsigma = -2 L / sigma^3 + 1/sigma = (-4 + 1, -1 + 1) = (-3, 0);
     * sigma = 1 - 0.1 grad = (1.3, 1); w = (1/1.69, 1) = (0.59171597633, 1).
     */
    memset(&vw, 0, sizeof vw);
    lw_job_describe(job, view_fn, &vw);
    assert_close(view_get(&vw, "sigma")[0], 1.3, 1e-15);
    assert_close(view_get(&vw, "weights")[0], 0.5917159763313609, 1e-14);
    step_ok(job, &in, w);
    assert_close(w[0], 0.5917159763313609, 1e-14);
    assert_true(w[1] == 1.0);
    lw_job_free(job);

    /* init 1 is s = log sigma^2 = 1: sigma = e^0.5 = 1.64872127, w = 1/e = 0.36787944. */
    const lw_value q[] = {STR("form", "sigma"), NUM("init", 1.0)};
    job = job_new("uw", 2, q, NPARAMS(q));
    memset(&vw, 0, sizeof vw);
    lw_job_describe(job, view_fn, &vw);
    assert_close(view_get(&vw, "sigma")[1], 1.6487212707001282, 1e-15);
    step_ok(job, &in, w);
    assert_close(w[1], 0.36787944117144233, 1e-15);
    lw_job_free(job);
}

/* Constant losses: the stationary point of 0.5 e^-s L + 0.5 s is e^s = L. */
static void test_uw_converges_to_exp_s_equal_loss(void **state)
{
    (void)state;
    const double L[2] = {4.0, 0.25};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);
    const lw_value adam[] = {NUM("lr", 0.01)};
    const lw_value sgd[] = {STR("optimizer", "sgd"), NUM("lr", 0.5)};
    const struct {
        const lw_value *p;
        size_t n, steps;
    } runs[] = {{adam, 1, 3000}, {sgd, 2, 200}};

    for (size_t r = 0; r < 2; r++) {
        lw_job *job = job_new("uw", 2, runs[r].p, runs[r].n);
        for (size_t t = 0; t < runs[r].steps; t++)
            step_ok(job, &in, w);
        view vw = {0};
        lw_job_describe(job, view_fn, &vw);
        const double *sigma = view_get(&vw, "sigma"), *vw_w = view_get(&vw, "weights");
        for (size_t i = 0; i < 2; i++) {
            assert_close(exp(state_of(job, "param")[i]), L[i], 1e-6);
            assert_close(sigma[i] * sigma[i], L[i], 1e-6); /* sigma^2 = e^s */
            assert_close(vw_w[i], 1.0 / (2.0 * L[i]), 1e-6);
        }
        lw_job_free(job);
    }
    /* Form sigma: L/sigma^2 + log sigma is stationary at sigma^2 = 2L, w = 1/(2L). */
    const double L2[2] = {4.0, 1.0};
    const lw_value sig[] = {STR("form", "sigma"), STR("optimizer", "sgd"), NUM("lr", 0.5)};
    lw_job *job = job_new("uw", 2, sig, NPARAMS(sig));
    in = input(L2, NULL, -1, NULL);
    for (size_t t = 0; t < 400; t++)
        step_ok(job, &in, w);
    assert_close(w[0], 1.0 / 8.0, 1e-9);
    assert_close(w[1], 1.0 / 2.0, 1e-9);
    lw_job_free(job);
}

static void test_uw_param_errors(void **state)
{
    (void)state;
    const struct {
        lw_value v;
        const char *field;
    } bad[] = {
        {STR("lr", "0.1"), "params.lr"},           {NUM("lr", 0.0), "params.lr"},
        {NUM("lr", -1e-3), "params.lr"},           {NUM("beta1", 1.0), "params.beta1"},
        {NUM("beta2", -0.1), "params.beta2"},      {NUM("eps", 0.0), "params.eps"},
        {NUM("weight_decay", -1), "params.weight_decay"},
        {NUM("init", 1000.0), "params.init"},      {STR("form", "log_sigma"), "params.form"},
        {NUM("form", 1), "params.form"},           {STR("optimizer", "rmsprop"), "params.optimizer"},
        {NUM("lr", NAN), "params.lr"},             {NUM("momentum", 0.9), "params.momentum"},
    };
    for (size_t k = 0; k < NPARAMS(bad); k++)
        create_fails("uw", 2, &bad[k].v, 1, LW_EINVAL, bad[k].field);
}

static void test_uw_input_errors_leave_job_unchanged(void **state)
{
    (void)state;
    lw_job *job = job_new("uw", 2, NULL, 0);
    const double L[2] = {1.0, 2.0}, Lnan[2] = {1.0, NAN};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);
    step_ok(job, &in, w);
    in = input(NULL, NULL, -1, NULL);
    step_fails(job, &in, LW_EINVAL, "losses");
    in = input(Lnan, NULL, -1, NULL);
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    lw_job_free(job);

    /*
     * Form sigma, sgd lr 2, L = 0.01: grad = -0.02 + 1 = 0.98, sigma would be
     * 1 - 1.96 < 0: refused as numeric, nothing changes.
     */
    const lw_value p[] = {STR("form", "sigma"), STR("optimizer", "sgd"), NUM("lr", 2.0)};
    job = job_new("uw", 1, p, NPARAMS(p));
    const double Ls[1] = {0.01};
    in = input(Ls, NULL, -1, NULL);
    step_fails(job, &in, LW_ENUMERIC, "params.lr");
    assert_int_equal(lw_job_steps_done(job), 0);
    lw_job_free(job);
}

static void test_uw_state_import_checks(void **state)
{
    (void)state;
    const lw_value p[] = {STR("form", "sigma")};
    lw_job *job = job_new("uw", 2, p, NPARAMS(p));
    lw_error err;
    snap before, after;
    snap_take(job, &before);
    const double zero_sigma[2] = {1.0, 0.0}, t_frac[1] = {1.5}, v_neg[2] = {0.0, -1.0};
    assert_int_equal(lw_job_state_set(job, "param", zero_sigma, 2, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.param");
    assert_int_equal(lw_job_state_set(job, "param", zero_sigma, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.param");
    assert_int_equal(lw_job_state_set(job, "adam_t", t_frac, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.adam_t");
    assert_int_equal(lw_job_state_set(job, "adam_v", v_neg, 2, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.adam_v");
    assert_int_equal(lw_job_state_set(job, "sigma", zero_sigma, 2, &err), LW_ENOENT);
    snap_take(job, &after);
    snap_equal(&before, &after);
    lw_job_free(job);
}

static void test_uw_state_roundtrip(void **state)
{
    (void)state;
    const lw_value adam[] = {NUM("lr", 0.05), NUM("weight_decay", 1e-3)};
    const lw_value sigma[] = {STR("form", "sigma"), STR("optimizer", "sgd"), NUM("lr", 0.02),
                              NUM("init", 1.0)};
    roundtrip("uw", 3, adam, NPARAMS(adam), 7, 10);
    roundtrip("uw", 3, sigma, NPARAMS(sigma), 7, 10);
}

/* ---- imtl_l --------------------------------------------------------------- */

static void test_imtl_l_sgd_by_hand(void **state)
{
    (void)state;
    const lw_value p[] = {STR("optimizer", "sgd"), NUM("lr", 0.1)};
    lw_job *job = job_new("imtl_l", 2, p, NPARAMS(p));
    const double L[2] = {2.0, 0.5};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);
    /* s = 0: w = exp(0) = 1. */
    step_ok(job, &in, w);
    assert_true(w[0] == 1.0 && w[1] == 1.0);
    /*
     * grad = exp(s) L - 1 = (1, -0.5); s = -0.1 grad = (-0.1, 0.05);
     * w = (e^-0.1, e^0.05) = (0.90483741804, 1.05127109638).
     */
    step_ok(job, &in, w);
    assert_close(w[0], 0.9048374180359595, 1e-15);
    assert_close(w[1], 1.0512710963760241, 1e-15);
    lw_job_free(job);
}

/* Constant losses: exp(s) L - s is stationary at exp(s) = 1/L. */
static void test_imtl_l_converges_to_inverse_loss(void **state)
{
    (void)state;
    const double L[2] = {4.0, 0.25};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);
    const lw_value p[] = {NUM("lr", 0.01)};
    lw_job *job = job_new("imtl_l", 2, p, NPARAMS(p));
    for (size_t t = 0; t < 3000; t++)
        step_ok(job, &in, w);
    assert_close(w[0], 0.25, 1e-6);
    assert_close(w[1], 4.0, 1e-6);
    view vw = {0};
    lw_job_describe(job, view_fn, &vw);
    assert_close(view_get(&vw, "weights")[1], 4.0, 1e-6);
    lw_job_free(job);
}

static void test_imtl_l_errors(void **state)
{
    (void)state;
    const struct {
        lw_value v;
        const char *field;
    } bad[] = {
        {NUM("lr", 0.0), "params.lr"},
        {STR("optimizer", "adamw"), "params.optimizer"},
        {NUM("beta1", -0.5), "params.beta1"},
        {STR("init", "zero"), "params.init"},
        {NUM("form", 0), "params.form"}, /* uw's parameter, not imtl_l's */
    };
    for (size_t k = 0; k < NPARAMS(bad); k++)
        create_fails("imtl_l", 2, &bad[k].v, 1, LW_EINVAL, bad[k].field);
    lw_job *job = job_new("imtl_l", 2, NULL, 0);
    const double Linf[2] = {INFINITY, 1.0};
    lw_input in = input(Linf, NULL, -1, NULL);
    step_fails(job, &in, LW_EINVAL, "losses[0]");
    lw_error err;
    const double bad_t[1] = {-1};
    assert_int_equal(lw_job_state_set(job, "adam_t", bad_t, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.adam_t");
    lw_job_free(job);
}

static void test_imtl_l_state_roundtrip(void **state)
{
    (void)state;
    const lw_value p[] = {NUM("lr", 0.05)};
    roundtrip("imtl_l", 3, p, NPARAMS(p), 6, 10);
}

/* ---- dwa ----------------------------------------------------------------- */

static void test_dwa_first_two_epochs_give_one(void **state)
{
    (void)state;
    lw_job *job = job_new("dwa", 3, NULL, 0);
    double w[3];
    seq_in s;
    /* Epochs 0 and 1 (steps 0..5) give 1 whatever the losses. */
    for (size_t t = 0; t < 6; t++) {
        seq_input(t, 3, &s);
        step_ok(job, &s.in, w);
        assert_true(w[0] == 1.0 && w[1] == 1.0 && w[2] == 1.0);
    }
    /* Epoch 2: no longer all 1. */
    seq_input(6, 3, &s);
    step_ok(job, &s.in, w);
    assert_false(w[0] == 1.0 && w[1] == 1.0 && w[2] == 1.0);
    assert_close(w[0] + w[1] + w[2], 3.0, 1e-15);
    lw_job_free(job);
}

/*
 * methods-anchors.md 8.2: temperature 2, T = 3, Lbar(e-2) = (1, 1, 1),
 * Lbar(e-1) = (0.8, 0.5, 1.2): r = (0.8, 0.5, 1.2),
 * w = 3 softmax(r/2) = 3 (e^0.4, e^0.25, e^0.6) / (1.49182 + 1.28403 + 1.82212)
 *   = (0.97336, 0.83778, 1.18886).
 * Epoch means are plain means: epoch 1 has steps (0.6, 0.4, 1.0) and
 * (1.0, 0.6, 1.4), mean (0.8, 0.5, 1.2).
 */
static void test_dwa_anchor_vector_and_plain_epoch_means(void **state)
{
    (void)state;
    lw_job *job = job_new("dwa", 3, NULL, 0);
    const double e0[3] = {1.0, 1.0, 1.0}, e1a[3] = {0.6, 0.4, 1.0}, e1b[3] = {1.0, 0.6, 1.4},
                 e2[3] = {5.0, 5.0, 5.0};
    double w[3];
    lw_input in = input(e0, NULL, 0, NULL);
    step_ok(job, &in, w);
    in = input(e1a, NULL, 1, NULL);
    step_ok(job, &in, w);
    in = input(e1b, NULL, 1, NULL);
    step_ok(job, &in, w);
    in = input(e2, NULL, 2, NULL);
    step_ok(job, &in, w);
    assert_close(w[0], 0.9733589278075444, 1e-14);
    assert_close(w[1], 0.8377777930884954, 1e-14);
    assert_close(w[2], 1.1888632791039602, 1e-14);
    /* Another step of epoch 2: the same weights (epoch 2's own losses don't count). */
    const double big[3] = {100.0, 0.1, 3.0};
    double w2[3];
    in = input(big, NULL, 2, NULL);
    step_ok(job, &in, w2);
    assert_memory_equal(w, w2, sizeof w);
    lw_job_free(job);
}

/*
 * T = 2, temperature 5: epoch means (2, 1) then (1, 1): r = (0.5, 1),
 * w = 2 (e^0.1, e^0.2) / (e^0.1 + e^0.2) = (0.95004163, 1.04995837).
 * With window 2 the same steps without `epoch` give the same bits, and
 * reported epochs that skip numbers (0, 4, 9) mean the same.
 */
static void test_dwa_window_and_skipped_epochs(void **state)
{
    (void)state;
    const lw_value pe[] = {NUM("temperature", 5.0)};
    const lw_value pw[] = {NUM("temperature", 5.0), NUM("window", 2)};
    lw_job *je = job_new("dwa", 2, pe, NPARAMS(pe));
    lw_job *jw = job_new("dwa", 2, pw, NPARAMS(pw));
    lw_job *js = job_new("dwa", 2, pe, NPARAMS(pe));
    const double L[5][2] = {{2.0, 1.0}, {2.0, 1.0}, {1.0, 1.0}, {1.0, 1.0}, {7.0, 7.0}};
    const int64_t skip[5] = {0, 0, 4, 4, 9};
    double we[2], ww[2], ws[2];
    for (size_t t = 0; t < 5; t++) {
        lw_input ie = input(L[t], NULL, (int64_t)(t / 2), NULL);
        lw_input iw = input(L[t], NULL, -1, NULL);
        lw_input is = input(L[t], NULL, skip[t], NULL);
        step_ok(je, &ie, we);
        step_ok(jw, &iw, ww);
        step_ok(js, &is, ws);
        assert_memory_equal(we, ww, sizeof we);
        assert_memory_equal(we, ws, sizeof we);
    }
    assert_close(we[0], 2.0 * exp(0.1) / (exp(0.1) + exp(0.2)), 1e-14);
    assert_close(we[1], 2.0 * exp(0.2) / (exp(0.1) + exp(0.2)), 1e-14);
    assert_close(we[0], 0.9500416250421, 1e-12);
    lw_job_free(je);
    lw_job_free(jw);
    lw_job_free(js);
}

static void test_dwa_errors(void **state)
{
    (void)state;
    const struct {
        lw_value v;
        const char *field;
    } bad[] = {
        {NUM("temperature", 0.0), "params.temperature"},
        {NUM("temperature", -2.0), "params.temperature"},
        {STR("temperature", "2"), "params.temperature"},
        {NUM("window", -1), "params.window"},
        {NUM("window", 1.5), "params.window"},
    };
    for (size_t k = 0; k < NPARAMS(bad); k++)
        create_fails("dwa", 2, &bad[k].v, 1, LW_EINVAL, bad[k].field);

    lw_job *job = job_new("dwa", 2, NULL, 0);
    const double L[2] = {1.0, 2.0}, Lzero[2] = {1.0, 0.0}, Lneg[2] = {-1.0, 2.0};
    double w[2];
    lw_input in = input(L, NULL, 3, NULL);
    step_ok(job, &in, w);
    in = input(L, NULL, -1, NULL);
    step_fails(job, &in, LW_EINVAL, "epoch"); /* window 0: epoch required */
    in = input(L, NULL, 2, NULL);
    step_fails(job, &in, LW_EINVAL, "epoch"); /* below the open epoch 3 */
    in = input(Lzero, NULL, 3, NULL);
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    in = input(Lneg, NULL, 4, NULL);
    step_fails(job, &in, LW_EINVAL, "losses[0]");
    in = input(L, NULL, 3, NULL); /* the same epoch again is fine */
    step_ok(job, &in, w);
    lw_error err;
    const double open[1] = {-2.0};
    assert_int_equal(lw_job_state_set(job, "open_epoch", open, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.open_epoch");
    lw_job_free(job);

    /* window > 0: epoch not needed, and a reported one is ignored. */
    const lw_value pw[] = {NUM("window", 2)};
    job = job_new("dwa", 2, pw, NPARAMS(pw));
    in = input(L, NULL, 5, NULL);
    step_ok(job, &in, w);
    in = input(L, NULL, 1, NULL);
    step_ok(job, &in, w);
    lw_job_free(job);
}

static void test_dwa_state_roundtrip(void **state)
{
    (void)state;
    const lw_value pe[] = {NUM("temperature", 0.5)};
    const lw_value pw[] = {NUM("temperature", 0.5), NUM("window", 4)};
    roundtrip("dwa", 3, pe, NPARAMS(pe), 10, 10);
    roundtrip("dwa", 3, pw, NPARAMS(pw), 13, 10);
}

/* ---- gradnorm --------------------------------------------------------------- */

/*
 * methods-anchors.md 8.2: alpha 1.5, w = (1, 1), n = (2, 0.5),
 * L/L(0) = (0.9, 0.6): r = (0.9, 0.6)/0.75 = (1.2, 0.8), G = (2, 0.5),
 * Gbar = 1.25, target = 1.25 (1.2^1.5, 0.8^1.5) = (1.64317, 0.89443),
 * sign(G - target) = (+, -), dL/dw = (+2, -0.5).
 * Step 0 (L = (1, 1)) is warm-up: w = 1, L(0) = (1, 1), no update.
 */
static void test_gradnorm_direct_by_hand(void **state)
{
    (void)state;
    const lw_value p[] = {STR("optimizer", "sgd"), NUM("lr", 0.1), NUM("warmup_steps", 1)};
    lw_job *job = job_new("gradnorm", 2, p, NPARAMS(p));
    const double L0[2] = {1.0, 1.0}, L1[2] = {0.9, 0.6}, N[2] = {2.0, 0.5};
    double w[2];
    lw_input in = input(L0, N, -1, NULL);
    step_ok(job, &in, w);
    assert_true(w[0] == 1.0 && w[1] == 1.0);
    assert_true(state_of(job, "theta")[0] == 1.0 && state_of(job, "theta")[1] == 1.0);
    in = input(L1, N, -1, NULL);
    step_ok(job, &in, w);
    assert_true(w[0] == 1.0 && w[1] == 1.0); /* weights before the update */
    /*
     * SGD: w = (1 - 0.1 * 2, 1 + 0.1 * 0.5) = (0.8, 1.05); renormalised to
     * sum 2: (1.6/1.85, 2.1/1.85) = (0.86486486, 1.13513514).
     */
    step_ok(job, &in, w);
    assert_close(w[0], 1.6 / 1.85, 1e-15);
    assert_close(w[1], 2.1 / 1.85, 1e-15);
    lw_job_free(job);
}

/* Same gradient through w = 2 softmax(theta): dL/dtheta = (+1.25, -1.25). */
static void test_gradnorm_softmax_by_hand(void **state)
{
    (void)state;
    const lw_value p[] = {STR("parametrization", "softmax"), STR("optimizer", "sgd"),
                          NUM("lr", 0.1), NUM("warmup_steps", 1)};
    lw_job *job = job_new("gradnorm", 2, p, NPARAMS(p));
    const double L0[2] = {1.0, 1.0}, L1[2] = {0.9, 0.6}, N[2] = {2.0, 0.5};
    double w[2];
    lw_input in = input(L0, N, -1, NULL);
    step_ok(job, &in, w);
    in = input(L1, N, -1, NULL);
    step_ok(job, &in, w);
    /*
     * p = (0.5, 0.5): dtheta_k = p_k (2 g_k - sum_i 2 g_i p_i)
     *   = 0.5 (4 - 1.5, -1 - 1.5) = (1.25, -1.25);
     * theta = 1 - 0.1 (1.25, -1.25) = (0.875, 1.125);
     * w = 2 softmax = (2/(1 + e^0.25), 2 e^0.25/(1 + e^0.25)) = (0.8756470, 1.1243530).
     */
    const double *theta = state_of(job, "theta");
    assert_close(theta[0], 0.875, 1e-15);
    assert_close(theta[1], 1.125, 1e-15);
    view vw = {0};
    lw_job_describe(job, view_fn, &vw); /* the weights the next step returns */
    assert_close(view_get(&vw, "weights")[0], 0.8756469982284039, 1e-14);
    step_ok(job, &in, w);
    assert_close(w[0], 0.8756469982284039, 1e-14);
    assert_close(w[1], 1.1243530017715961, 1e-14);
    lw_job_free(job);
}

/*
 * Direct weights are clamped at 0 then renormalised: lr 1 on the case
 * above gives (1 - 2, 1 + 0.5) = (-1, 1.5) -> (0, 1.5) -> (0, 2).
 * If every weight clamps to 0 they restart at 1: alpha 0.5, n = (1.1, 0.9),
 * L/L(0) = (1.2, 0.8): Gbar = 1, r = (1.2, 0.8), target = (1.0954, 0.8944) <
 * G = (1.1, 0.9), both gradients +n; lr 10 -> (-10, -8) -> (0, 0) -> (1, 1).
 */
static void test_gradnorm_direct_clamp_and_restart(void **state)
{
    (void)state;
    const lw_value p[] = {STR("optimizer", "sgd"), NUM("lr", 1.0), NUM("warmup_steps", 1)};
    lw_job *job = job_new("gradnorm", 2, p, NPARAMS(p));
    const double L0[2] = {1.0, 1.0}, L1[2] = {0.9, 0.6}, N[2] = {2.0, 0.5};
    double w[2];
    lw_input in = input(L0, N, -1, NULL);
    step_ok(job, &in, w);
    in = input(L1, N, -1, NULL);
    step_ok(job, &in, w);
    step_ok(job, &in, w);
    assert_true(w[0] == 0.0 && w[1] == 2.0);
    lw_job_free(job);

    const lw_value q[] = {STR("optimizer", "sgd"), NUM("lr", 10.0), NUM("alpha", 0.5),
                          NUM("warmup_steps", 1)};
    job = job_new("gradnorm", 2, q, NPARAMS(q));
    const double L2[2] = {1.2, 0.8}, N2[2] = {1.1, 0.9};
    in = input(L0, N2, -1, NULL);
    step_ok(job, &in, w);
    in = input(L2, N2, -1, NULL);
    step_ok(job, &in, w);
    assert_true(state_of(job, "theta")[0] == 1.0 && state_of(job, "theta")[1] == 1.0);
    /* with lr 0.1 instead the weights move: (1 - 0.11, 1 - 0.09) renormalised */
    lw_job_free(job);
    const lw_value q2[] = {STR("optimizer", "sgd"), NUM("lr", 0.1), NUM("alpha", 0.5),
                           NUM("warmup_steps", 1)};
    job = job_new("gradnorm", 2, q2, NPARAMS(q2));
    in = input(L0, N2, -1, NULL);
    step_ok(job, &in, w);
    in = input(L2, N2, -1, NULL);
    step_ok(job, &in, w);
    assert_close(state_of(job, "theta")[0], 2.0 * 0.89 / 1.8, 1e-15);
    lw_job_free(job);
}

/*
 * Task 0's loss falls slowly (0.99^t), task 1's fast (0.9^t), equal
 * gradient norms: task 0 trains slower (r_0 > 1), so its weight grows.
 */
static void test_gradnorm_moves_weight_to_slower_task(void **state)
{
    (void)state;
    const char *par[2] = {"direct", "softmax"};
    for (size_t k = 0; k < 2; k++) {
        const lw_value p[] = {STR("parametrization", par[k]), NUM("lr", 0.01)};
        lw_job *job = job_new("gradnorm", 2, p, NPARAMS(p));
        const double N[2] = {1.0, 1.0};
        double w[2], prev = 1.0;
        for (size_t t = 0; t < 50; t++) {
            const double L[2] = {pow(0.99, (double)t), pow(0.9, (double)t)};
            lw_input in = input(L, N, -1, NULL);
            step_ok(job, &in, w);
            assert_true(w[0] >= prev); /* never moves away from the slow task */
            prev = w[0];
        }
        assert_true(w[0] > 1.2 && w[1] < 0.8);
        assert_close(w[0] + w[1], 2.0, 1e-12);
        lw_job_free(job);
    }
}

/*
 * LibMTL's schedule: epoch 0 is warm-up (w = 1, no update) and L(0) is the
 * mean of epoch 0's losses: steps (1, 2) and (3, 4) give L(0) = (2, 3).
 * A first_step job whose first step is (2, 3), warmed up for two steps,
 * must then give the same bits.
 */
static void test_gradnorm_first_epoch_mean_and_warmup_epochs(void **state)
{
    (void)state;
    const lw_value pa[] = {STR("parametrization", "softmax"), NUM("lr", 0.05),
                           NUM("warmup_epochs", 1), STR("initial_loss", "first_epoch_mean")};
    const lw_value pb[] = {STR("parametrization", "softmax"), NUM("lr", 0.05),
                           NUM("warmup_steps", 2)};
    lw_job *a = job_new("gradnorm", 2, pa, NPARAMS(pa));
    lw_job *b = job_new("gradnorm", 2, pb, NPARAMS(pb));
    const double La0[2] = {1.0, 2.0}, La1[2] = {3.0, 4.0}, Lb0[2] = {2.0, 3.0}, N[2] = {1.0, 2.0};
    double wa[2], wb[2];
    lw_input in = input(La0, N, 0, NULL);
    step_ok(a, &in, wa);
    in = input(La1, N, 0, NULL);
    step_ok(a, &in, wa);
    assert_true(wa[0] == 1.0 && wa[1] == 1.0);
    assert_true(state_of(a, "adam_t")[0] == 0.0);
    in = input(Lb0, N, -1, NULL);
    step_ok(b, &in, wb);
    step_ok(b, &in, wb);
    for (size_t t = 2; t < 12; t++) {
        seq_in s;
        seq_input(t, 2, &s);
        s.in.epoch = 1 + (int64_t)t / 5;
        step_ok(a, &s.in, wa);
        step_ok(b, &s.in, wb);
        assert_memory_equal(wa, wb, sizeof wa);
    }
    assert_true(state_of(a, "initial_loss")[0] == 2.0 && state_of(a, "initial_loss")[1] == 3.0);
    assert_true(state_of(a, "initial_loss_frozen")[0] == 1.0);
    assert_false(wa[0] == 1.0);
    lw_job_free(a);
    lw_job_free(b);
}

static void test_gradnorm_errors(void **state)
{
    (void)state;
    const struct {
        lw_value v;
        const char *field;
    } bad[] = {
        {STR("parametrization", "log"), "params.parametrization"},
        {STR("optimizer", "lbfgs"), "params.optimizer"},
        {NUM("alpha", -1.0), "params.alpha"},
        {STR("alpha", "1.5"), "params.alpha"},
        {NUM("lr", 0.0), "params.lr"},
        {NUM("warmup_steps", 1.5), "params.warmup_steps"},
        {NUM("warmup_epochs", -1), "params.warmup_epochs"},
        {STR("initial_loss", "mean"), "params.initial_loss"},
        {NUM("eps", -1e-8), "params.eps"},
    };
    for (size_t k = 0; k < NPARAMS(bad); k++)
        create_fails("gradnorm", 2, &bad[k].v, 1, LW_EINVAL, bad[k].field);

    lw_job *job = job_new("gradnorm", 2, NULL, 0);
    const double L[2] = {1.0, 2.0}, N[2] = {1.0, 1.0}, Lzero[2] = {0.0, 2.0},
                 Nneg[2] = {1.0, -1.0};
    double w[2];
    lw_input in = input(L, N, -1, NULL);
    step_ok(job, &in, w);
    in = input(L, NULL, -1, NULL);
    step_fails(job, &in, LW_EINVAL, "grad_norms");
    in = input(L, Nneg, -1, NULL);
    step_fails(job, &in, LW_EINVAL, "grad_norms[1]");
    in = input(Lzero, N, -1, NULL);
    step_fails(job, &in, LW_EINVAL, "losses[0]");
    lw_error err;
    const double neg_theta[2] = {-1.0, 3.0}, zero_theta[2] = {0.0, 0.0};
    assert_int_equal(lw_job_state_set(job, "theta", neg_theta, 2, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.theta");
    assert_int_equal(lw_job_state_set(job, "theta", zero_theta, 2, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.theta");
    lw_job_free(job);

    /* Epoch is needed with warmup_epochs > 0 and with first_epoch_mean. */
    const lw_value pw[] = {NUM("warmup_epochs", 1)};
    const lw_value pm[] = {STR("initial_loss", "first_epoch_mean")};
    const lw_value *ps[2] = {pw, pm};
    for (size_t k = 0; k < 2; k++) {
        job = job_new("gradnorm", 2, ps[k], 1);
        in = input(L, N, -1, NULL);
        step_fails(job, &in, LW_EINVAL, "epoch");
        in = input(L, N, 2, NULL);
        step_ok(job, &in, w);
        in = input(L, N, 1, NULL);
        step_fails(job, &in, LW_EINVAL, "epoch");
        lw_job_free(job);
    }
}

static void test_gradnorm_state_roundtrip(void **state)
{
    (void)state;
    const lw_value libmtl[] = {STR("parametrization", "softmax"), NUM("lr", 0.05),
                               NUM("warmup_epochs", 1), STR("initial_loss", "first_epoch_mean")};
    const lw_value direct[] = {STR("optimizer", "sgd"), NUM("lr", 0.02)};
    roundtrip("gradnorm", 3, libmtl, NPARAMS(libmtl), 8, 10);
    roundtrip("gradnorm", 3, direct, NPARAMS(direct), 5, 10);
}

/* ---- stch ----------------------------------------------------------------- */

/*
 * warmup_epoch 1, T = 2. Epoch 0: w = 1/(L + 1e-20) = (0.5, 0.25) for
 * L = (2, 4). Epoch 1 (warm-up and nadir): steps (1, 2) and (3, 6),
 * z = (2, 4). Epoch 2, L = (2, 2): r = L/z + 1e-20 = (1, 0.5),
 * q = softmax(log r) = (1, 0.5)/1.5 = (2/3, 1/3),
 * w = T q / (z r) = (2 (2/3)/2, 2 (1/3)/2) = (2/3, 1/3).
 * mu 0.5: q = softmax(2 log r) = (1, 0.25)/1.25 = (0.8, 0.2), w = (0.8, 0.2).
 */
static void test_stch_log_nadir_by_hand(void **state)
{
    (void)state;
    const double mus[2] = {1.0, 0.5}, want[2][2] = {{2.0 / 3.0, 1.0 / 3.0}, {0.8, 0.2}};
    for (size_t k = 0; k < 2; k++) {
        const lw_value p[] = {NUM("warmup_epoch", 1), NUM("mu", mus[k])};
        lw_job *job = job_new("stch", 2, p, NPARAMS(p));
        const double a[2] = {2.0, 4.0}, b[2] = {1.0, 2.0}, c[2] = {3.0, 6.0}, d[2] = {2.0, 2.0};
        double w[2];
        lw_input in = input(a, NULL, 0, NULL);
        step_ok(job, &in, w);
        assert_true(w[0] == 0.5 && w[1] == 0.25);
        in = input(b, NULL, 1, NULL);
        step_ok(job, &in, w);
        assert_true(w[0] == 1.0 && w[1] == 0.5);
        in = input(c, NULL, 1, NULL);
        step_ok(job, &in, w);
        assert_true(state_of(job, "nadir_frozen")[0] == 0.0);
        in = input(d, NULL, 2, NULL);
        step_ok(job, &in, w);
        assert_true(state_of(job, "nadir")[0] == 2.0 && state_of(job, "nadir")[1] == 4.0);
        assert_close(w[0], want[k][0], 1e-14);
        assert_close(w[1], want[k][1], 1e-14);
        lw_job_free(job);
    }
}

/*
 * No step of epoch warmup_epoch: the nadir is the first later step's L, so
 * r = 1 + 1e-20 = 1, q = 1/T, w_i = T (1/T) / L_i = 1/L_i. window 2 gives
 * epochs from step counts without `epoch`.
 */
static void test_stch_nadir_fallback_and_window(void **state)
{
    (void)state;
    const lw_value p[] = {NUM("warmup_epoch", 1)};
    lw_job *job = job_new("stch", 2, p, NPARAMS(p));
    const double a[2] = {2.0, 4.0}, b[2] = {4.0, 0.5};
    double w[2];
    lw_input in = input(a, NULL, 0, NULL);
    step_ok(job, &in, w);
    in = input(b, NULL, 5, NULL);
    step_ok(job, &in, w);
    assert_close(w[0], 0.25, 1e-15);
    assert_close(w[1], 2.0, 1e-15);
    lw_job_free(job);

    const lw_value pe[] = {NUM("warmup_epoch", 1)};
    const lw_value pw[] = {NUM("warmup_epoch", 1), NUM("window", 2)};
    lw_job *je = job_new("stch", 3, pe, NPARAMS(pe));
    lw_job *jw = job_new("stch", 3, pw, NPARAMS(pw));
    double we[3], ww[3];
    for (size_t t = 0; t < 9; t++) {
        seq_in s;
        seq_input(t, 3, &s);
        s.in.epoch = (int64_t)(t / 2);
        step_ok(je, &s.in, we);
        s.in.epoch = -1;
        step_ok(jw, &s.in, ww);
        assert_memory_equal(we, ww, sizeof we);
    }
    assert_true(state_of(jw, "nadir_frozen")[0] == 1.0);
    lw_job_free(je);
    lw_job_free(jw);
}

/*
 * linear, default preference (0.5, 0.5), reference 0, mu 1, L = (1, 2):
 * y = (0.5, 1), softmax = (1, e^0.5)/(1 + e^0.5) = (0.37754067, 0.62245933),
 * w = 0.5 softmax = (0.18877033, 0.31122967).
 * preference (1, 2), reference (0.5, 1): y = (0.5, 2),
 * softmax = (e^0.5, e^2)/(e^0.5 + e^2) = (0.18242552, 0.81757448),
 * w = (0.18242552, 1.63514895). No state: a second step gives the same.
 */
static void test_stch_linear_by_hand(void **state)
{
    (void)state;
    const lw_value p[] = {STR("variant", "linear")};
    lw_job *job = job_new("stch", 2, p, NPARAMS(p));
    const double L[2] = {1.0, 2.0};
    double w[2], w2[2];
    lw_input in = input(L, NULL, -1, NULL);
    step_ok(job, &in, w);
    assert_close(w[0], 0.1887703343990727, 1e-14);
    assert_close(w[1], 0.31122966560092724, 1e-14);
    step_ok(job, &in, w2);
    assert_memory_equal(w, w2, sizeof w);
    lw_job_free(job);

    const double pref[2] = {1.0, 2.0}, ref[2] = {0.5, 1.0};
    const lw_value q[] = {STR("variant", "linear"), ARR("preference", pref, 2),
                          ARR("reference", ref, 2)};
    job = job_new("stch", 2, q, NPARAMS(q));
    step_ok(job, &in, w);
    assert_close(w[0], 0.18242552380635635, 1e-14);
    assert_close(w[1], 1.6351489523872875, 1e-14);
    /* linear has no log: losses <= 0 are fine */
    const double Lneg[2] = {-1.0, 0.0};
    in = input(Lneg, NULL, -1, NULL);
    step_ok(job, &in, w);
    lw_job_free(job);
}

static void test_stch_errors(void **state)
{
    (void)state;
    const double zero_pref[3] = {0.5, 0.0, 0.5}, pref2[2] = {0.5, 0.5}, ref3[3] = {1, 0, 0},
                 pref3[3] = {1, 1, 1};
    const struct {
        lw_value v[2];
        size_t n;
        const char *field;
    } bad[] = {
        {{NUM("mu", 0.0)}, 1, "params.mu"},
        {{STR("variant", "tchebycheff")}, 1, "params.variant"},
        {{NUM("warmup_epoch", -1)}, 1, "params.warmup_epoch"},
        {{NUM("warmup_epoch", 0.5)}, 1, "params.warmup_epoch"},
        {{NUM("window", -3)}, 1, "params.window"},
        {{STR("variant", "linear"), ARR("preference", zero_pref, 3)}, 2, "params.preference[1]"},
        {{STR("variant", "linear"), ARR("preference", pref2, 2)}, 2, "params.preference"},
        {{STR("variant", "linear"), NUM("preference", 1.0)}, 2, "params.preference"},
        {{STR("variant", "linear"), NUM("warmup_epoch", 2)}, 2, "params.warmup_epoch"},
        {{STR("variant", "linear"), NUM("window", 2)}, 2, "params.window"},
        {{ARR("preference", pref3, 3)}, 1, "params.preference"}, /* log_nadir: not its param */
        /* Not at its default: refused. At its default it is accepted, since the
         * echoed canonical spec lists every parameter (test_wire). */
        {{ARR("reference", ref3, 3)}, 1, "params.reference"},
    };
    for (size_t k = 0; k < NPARAMS(bad); k++)
        create_fails("stch", 3, bad[k].v, bad[k].n, LW_EINVAL, bad[k].field);

    lw_job *job = job_new("stch", 2, NULL, 0);
    const double L[2] = {1.0, 2.0}, Lzero[2] = {1.0, 0.0};
    double w[2];
    lw_input in = input(L, NULL, 3, NULL);
    step_ok(job, &in, w);
    in = input(L, NULL, -1, NULL);
    step_fails(job, &in, LW_EINVAL, "epoch");
    in = input(L, NULL, 2, NULL);
    step_fails(job, &in, LW_EINVAL, "epoch");
    in = input(Lzero, NULL, 3, NULL);
    step_fails(job, &in, LW_EINVAL, "losses[1]");
    lw_error err;
    const double frozen[1] = {0.5};
    assert_int_equal(lw_job_state_set(job, "nadir_frozen", frozen, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.nadir_frozen");
    lw_job_free(job);
}

static void test_stch_state_roundtrip(void **state)
{
    (void)state;
    const lw_value p[] = {NUM("warmup_epoch", 1), NUM("mu", 0.7)};
    /* 5 steps: epochs 0, 0, 0, 1, 1 -- the nadir is still being measured;
     * 8 steps: the nadir is frozen. */
    roundtrip("stch", 3, p, NPARAMS(p), 5, 10);
    roundtrip("stch", 3, p, NPARAMS(p), 8, 10);
}

/* ---- famo ----------------------------------------------------------------- */

/*
 * methods-anchors.md 2.9: xi = 0, L = (2, 1): D = L + 1e-8,
 * w = (0.5/2, 0.5/1) / (0.25 + 0.5) = (1/3, 2/3).
 * Next report: losses_after (1.8, 0.95) for that batch:
 * d = (log 2 - log 1.8, log 1 - log 0.95) = (0.10536052, 0.05129329),
 * z.d = 0.07832690, grad = z (d - z.d) = (+0.01351681, -0.01351681);
 * Adam step 1 (weight decay * xi = 0): xi = -0.025 g/(|g| + 1e-8)
 * = (-0.02499998, +0.02499998); z = softmax(xi) = (0.48750261, 0.51249739).
 * With this report's L = (1, 1) the weights are z.
 */
static void test_famo_anchor_check_value(void **state)
{
    (void)state;
    lw_job *job = job_new("famo", 2, NULL, 0);
    const double L0[2] = {2.0, 1.0}, L1[2] = {1.0, 1.0}, La[2] = {1.8, 0.95};
    double w[2];
    lw_input in = input(L0, NULL, -1, NULL);
    step_ok(job, &in, w);
    assert_close(w[0], 1.0 / 3.0, 1e-8);
    assert_close(w[1], 2.0 / 3.0, 1e-8);
    in = input(L1, NULL, -1, La);
    step_ok(job, &in, w);
    assert_close(state_of(job, "xi")[0], -0.024999981504519056, 1e-12);
    assert_close(w[0], 0.48750261275775275, 1e-12);
    assert_close(w[1], 0.5124973872422474, 1e-12);
    assert_true(state_of(job, "adam_t")[0] == 1.0);
    view vw = {0};
    lw_job_describe(job, view_fn, &vw);
    assert_close(view_get(&vw, "task_mix")[0], 0.48750261275775275, 1e-12);
    lw_job_free(job);
}

/* losses_after on the first report is ignored; a report without it does not step xi. */
static void test_famo_update_only_with_losses_after(void **state)
{
    (void)state;
    lw_job *job = job_new("famo", 2, NULL, 0);
    const double L[2] = {2.0, 1.0}, La[2] = {1.8, 0.95};
    double w[2];
    lw_input in = input(L, NULL, -1, La);
    step_ok(job, &in, w);
    assert_true(state_of(job, "adam_t")[0] == 0.0);
    in = input(L, NULL, -1, NULL);
    step_ok(job, &in, w);
    assert_true(state_of(job, "adam_t")[0] == 0.0);
    assert_true(state_of(job, "xi")[0] == 0.0);
    assert_close(w[0], 1.0 / 3.0, 1e-8);
    in = input(L, NULL, -1, La);
    step_ok(job, &in, w);
    assert_true(state_of(job, "adam_t")[0] == 1.0);
    assert_true(state_of(job, "xi")[0] < 0); /* task 0 improved more: less weight */
    lw_job_free(job);
}

/*
 * min_losses b shifts D: b = (1, 0), L = (2, 1): D = (1, 1) + 1e-8, w = (0.5, 0.5).
 */
static void test_famo_min_losses(void **state)
{
    (void)state;
    const double b[2] = {1.0, 0.0};
    const lw_value p[] = {ARR("min_losses", b, 2)};
    lw_job *job = job_new("famo", 2, p, NPARAMS(p));
    const double L[2] = {2.0, 1.0};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);
    step_ok(job, &in, w);
    assert_close(w[0], 0.5, 1e-15);
    assert_close(w[1], 0.5, 1e-15);
    lw_job_free(job);
}

static void test_famo_errors(void **state)
{
    (void)state;
    const double b3[3] = {0, 0, 0};
    const struct {
        lw_value v;
        const char *field;
    } bad[] = {
        {NUM("lr", 0.0), "params.lr"},
        {NUM("lr", -0.025), "params.lr"},
        {NUM("weight_decay", -1e-3), "params.weight_decay"},
        {STR("weight_decay", "1e-3"), "params.weight_decay"},
        {ARR("min_losses", b3, 3), "params.min_losses"},
        {NUM("min_losses", 0.0), "params.min_losses"},
        {NUM("beta1", 0.9), "params.beta1"}, /* fixed as in the anchors */
    };
    for (size_t k = 0; k < NPARAMS(bad); k++)
        create_fails("famo", 2, &bad[k].v, 1, LW_EINVAL, bad[k].field);

    const double b[2] = {0.5, 0.0};
    const lw_value p[] = {ARR("min_losses", b, 2)};
    lw_job *job = job_new("famo", 2, p, NPARAMS(p));
    const double L[2] = {1.0, 1.0}, Lb[2] = {0.5, 1.0}, Lzero[2] = {1.0, 0.0},
                 Labad[2] = {1.0, -0.1}, La[2] = {0.9, 0.9};
    double w[2];
    lw_input in = input(L, NULL, -1, NULL);
    step_ok(job, &in, w);
    in = input(Lb, NULL, -1, La);
    step_fails(job, &in, LW_EINVAL, "losses[0]"); /* L_0 = b_0 */
    in = input(Lzero, NULL, -1, La);
    step_fails(job, &in, LW_EINVAL, "losses[1]"); /* L_1 = 0 = b_1 */
    in = input(L, NULL, -1, Labad);
    step_fails(job, &in, LW_EINVAL, "losses_after[1]");
    in = input(L, NULL, -1, Lb);
    step_fails(job, &in, LW_EINVAL, "losses_after[0]");
    in = input(NULL, NULL, -1, La);
    step_fails(job, &in, LW_EINVAL, "losses");
    in = input(L, NULL, -1, La);
    step_ok(job, &in, w);
    lw_error err;
    const double flag[1] = {2.0};
    assert_int_equal(lw_job_state_set(job, "have_prev", flag, 1, &err), LW_EINVAL);
    assert_string_equal(err.field, "state.have_prev");
    lw_job_free(job);
}

static void test_famo_state_roundtrip(void **state)
{
    (void)state;
    const lw_value p[] = {NUM("lr", 0.1)};
    roundtrip("famo", 3, p, NPARAMS(p), 6, 10);
}

/* ---- the table ------------------------------------------------------------ */

/* Every method is listed, servable, loss-based, documented. */
static void test_methods_are_listed_and_documented(void **state)
{
    (void)state;
    const char *names[] = {"uw", "imtl_l", "dwa", "gradnorm", "stch", "famo"};
    for (size_t k = 0; k < NPARAMS(names); k++) {
        const lw_method_info *m = lw_method_find(names[k]);
        assert_non_null(m);
        assert_true(m->servable);
        assert_int_equal(m->output, LW_OUT_LOSS_WEIGHTS);
        assert_true(m->inputs & LW_IN_LOSSES);
        assert_true(strlen(m->doc) > 100);
        for (size_t i = 0; i < m->n_params; i++)
            assert_true(m->params[i].doc && strlen(m->params[i].doc) > 10);
        for (size_t i = 0; i < m->n_state; i++)
            assert_true(m->state[i].doc && strlen(m->state[i].doc) > 5);
    }
    assert_true(lw_method_find("gradnorm")->inputs & LW_IN_GRAD_NORMS);
    assert_true(lw_method_find("famo")->optional_inputs & LW_IN_LOSSES_AFTER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uw_log_var_adam_first_steps_by_hand),
        cmocka_unit_test(test_uw_log_var_sgd_by_hand),
        cmocka_unit_test(test_uw_sigma_sgd_by_hand),
        cmocka_unit_test(test_uw_converges_to_exp_s_equal_loss),
        cmocka_unit_test(test_uw_param_errors),
        cmocka_unit_test(test_uw_input_errors_leave_job_unchanged),
        cmocka_unit_test(test_uw_state_import_checks),
        cmocka_unit_test(test_uw_state_roundtrip),
        cmocka_unit_test(test_imtl_l_sgd_by_hand),
        cmocka_unit_test(test_imtl_l_converges_to_inverse_loss),
        cmocka_unit_test(test_imtl_l_errors),
        cmocka_unit_test(test_imtl_l_state_roundtrip),
        cmocka_unit_test(test_dwa_first_two_epochs_give_one),
        cmocka_unit_test(test_dwa_anchor_vector_and_plain_epoch_means),
        cmocka_unit_test(test_dwa_window_and_skipped_epochs),
        cmocka_unit_test(test_dwa_errors),
        cmocka_unit_test(test_dwa_state_roundtrip),
        cmocka_unit_test(test_gradnorm_direct_by_hand),
        cmocka_unit_test(test_gradnorm_softmax_by_hand),
        cmocka_unit_test(test_gradnorm_direct_clamp_and_restart),
        cmocka_unit_test(test_gradnorm_moves_weight_to_slower_task),
        cmocka_unit_test(test_gradnorm_first_epoch_mean_and_warmup_epochs),
        cmocka_unit_test(test_gradnorm_errors),
        cmocka_unit_test(test_gradnorm_state_roundtrip),
        cmocka_unit_test(test_stch_log_nadir_by_hand),
        cmocka_unit_test(test_stch_nadir_fallback_and_window),
        cmocka_unit_test(test_stch_linear_by_hand),
        cmocka_unit_test(test_stch_errors),
        cmocka_unit_test(test_stch_state_roundtrip),
        cmocka_unit_test(test_famo_anchor_check_value),
        cmocka_unit_test(test_famo_update_only_with_losses_after),
        cmocka_unit_test(test_famo_min_losses),
        cmocka_unit_test(test_famo_errors),
        cmocka_unit_test(test_famo_state_roundtrip),
        cmocka_unit_test(test_methods_are_listed_and_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
