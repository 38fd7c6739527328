/*
 * init_norm.c -- initial-loss normalisation: w_i = 1 / L_i(init).
 *
 * Seed 003's "initial state" normalisation (methods-anchors.md 2.7, row
 * "Initial-loss"): each loss is divided by its value at the start of
 * training, so every task starts at 1 and the weighted sum is invariant to
 * the scale of each loss. L_i(init) comes from the task spec when given
 * (`init_loss`, else `classes: K` giving log K, the cross-entropy of a
 * uniform guess), otherwise it is measured: the mean of the task's losses
 * over the first `init_steps` decided steps. While it is being measured the
 * weight uses the mean so far, this step included, so the first step's
 * weighted loss is exactly 1.
 *
 * State: the running sum of the measured losses and the number of steps in
 * it; both stop changing after init_steps steps.
 */
#include "../lw_internal.h"

#include <stdlib.h>

enum { P_INIT_STEPS };
enum { S_SUM, S_COUNT };

static const lw_param_info init_norm_params[] = {
    [P_INIT_STEPS] = {"init_steps", LW_PARAM_INT, 1.0, 1.0, 1e9, 0, 0, NULL,
                      "Decided steps whose mean loss is L_i(init) for tasks without init_loss "
                      "or classes (1: the first step, as brianlan / FuxiCTR-fork GradNorm "
                      "capture L(0))."},
};

static const lw_state_info init_norm_state[] = {
    [S_SUM] = {"init_sum", LW_LEN_T,
               "Sum of the losses of the first init_steps decided steps (0 for tasks whose "
               "L_i(init) comes from init_loss or classes)."},
    [S_COUNT] = {"init_count", LW_LEN_1,
                 "Steps summed in init_sum so far (stops at init_steps)."},
};

/* L_i(init) from the task spec, or 0 when it has to be measured. */
static double spec_init_loss(const lw_task_priv *t)
{
    if (!isnan(t->init_loss))
        return t->init_loss;
    if (t->classes >= 2)
        return log((double)t->classes);
    return 0.0;
}

static int init_norm_check_input(const lw_job *job, const double *state, const lw_input *in,
                                 lw_error *err)
{
    const double count = lw_stc(job, state, S_COUNT)[0];
    if (count >= lw_pnum(job, P_INIT_STEPS))
        return 0; /* L(init) is fixed: the losses are not used any more */
    for (size_t i = 0; i < job->T; i++) {
        if (spec_init_loss(&job->tasks[i]) > 0)
            continue;
        if (!(in->losses[i] > 0)) {
            char f[48];
            snprintf(f, sizeof f, "losses[%zu]", i);
            return lw_fail(err, LW_EINVAL, f,
                           "%s = %.15g: init_norm measures L_%zu(init) from the first %.0f "
                           "steps and needs losses > 0 until then",
                           f, in->losses[i], i, lw_pnum(job, P_INIT_STEPS));
        }
    }
    return 0;
}

static int init_norm_step(const lw_job *job, double *state, double *work, const lw_input *in,
                          double *w, lw_error *err)
{
    (void)work, (void)err;
    double *sum = lw_st(job, state, S_SUM);
    double *count = lw_st(job, state, S_COUNT);
    const int measuring = count[0] < lw_pnum(job, P_INIT_STEPS);
    if (measuring)
        count[0] += 1.0;
    for (size_t i = 0; i < job->T; i++) {
        double l0 = spec_init_loss(&job->tasks[i]);
        if (l0 > 0) {
            w[i] = 1.0 / l0;
            continue;
        }
        if (measuring)
            sum[i] += in->losses[i];
        w[i] = 1.0 / (sum[i] / count[0]);
    }
    return 0;
}

static int init_norm_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    if (idx == S_COUNT) {
        if (!(v[0] >= 0 && floor(v[0]) == v[0] && v[0] <= 9007199254740992.0))
            return lw_fail(err, LW_EINVAL, "state.init_count",
                           "state.init_count must be an integer >= 0");
        return 0;
    }
    for (size_t i = 0; i < job->T; i++) {
        if (v[i] < 0) {
            char f[64];
            snprintf(f, sizeof f, "state.init_sum[%zu]", i);
            return lw_fail(err, LW_EINVAL, f, "%s must be >= 0 (a sum of losses > 0)", f);
        }
    }
    return 0;
}

/* Shows the state and, once known for every task, the L_i(init) in use. */
static void init_norm_describe(const lw_job *job, const double *state, lw_view_fn fn, void *ud)
{
    const double *sum = lw_stc(job, state, S_SUM);
    const double count = lw_stc(job, state, S_COUNT)[0];
    fn(ud, "init_sum", sum, job->T);
    fn(ud, "init_count", &count, 1);
    double *l0 = malloc(job->T * sizeof *l0);
    if (!l0)
        return;
    int known = 1;
    for (size_t i = 0; i < job->T; i++) {
        l0[i] = spec_init_loss(&job->tasks[i]);
        if (!(l0[i] > 0)) {
            if (count > 0)
                l0[i] = sum[i] / count;
            else
                known = 0;
        }
    }
    if (known)
        fn(ud, "init_loss", l0, job->T);
    free(l0);
}

const lw_method lw_method_init_norm = {
    .info =
        {
            .name = "init_norm",
            .summary = "Initial-loss normalisation: w_i = 1 / L_i(init).",
            .doc = "Seed 003's \"initial state\" normalisation (methods-anchors.md 2.7, "
                   "Initial-loss): sum_i L_i / L_i(init), scale invariant per task. L_i(init) "
                   "is the task's init_loss, else log K for classes: K, else the mean of its "
                   "losses over the first init_steps decided steps; during those steps w_i = "
                   "1 / (mean so far, this step included). No anchor guards L(init) with an "
                   "eps; we require losses > 0 while they are measured and none after.",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = init_norm_params,
            .n_params = sizeof init_norm_params / sizeof init_norm_params[0],
            .state = init_norm_state,
            .n_state = sizeof init_norm_state / sizeof init_norm_state[0],
        },
    .check_input = init_norm_check_input,
    .step = init_norm_step,
    .describe = init_norm_describe,
    .check_state = init_norm_check_state,
};
