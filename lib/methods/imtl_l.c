/*
 * imtl_l.c -- IMTL-L, the loss-balance half of IMTL (Liu et al., ICLR 2021).
 *
 * Each task has a learnable scale s_i; the trainer's objective is
 * sum_i exp(s_i) L_i - s_i, so the model sees w_i = exp(s_i) and s is
 * stepped by a PyTorch optimizer on exp(s_i) L_i - 1 (stationary at
 * w_i = 1 / L_i). TorchJD serves it alone as scalarization.IMTLL; LibMTL
 * only uses it inside its hybrid IMTL (method `imtl`).
 * methods-anchors.md 2.5.
 *
 * As for uw, the weights of step t come from s before step t's update, and
 * the update then uses step t's losses.
 *
 * State: s, Adam's two moments and step count (SGD leaves the moments 0).
 */
#include "../lw_internal.h"

#include <stdlib.h>

enum { P_INIT, P_OPTIMIZER, P_LR, P_BETA1, P_BETA2, P_EPS, P_WEIGHT_DECAY };
enum { S_S, S_ADAM_M, S_ADAM_V, S_ADAM_T };

static const lw_opt_params opt_params = {P_OPTIMIZER, P_LR,  P_BETA1,
                                         P_BETA2,     P_EPS, P_WEIGHT_DECAY};
static const lw_opt_state opt_state = {S_ADAM_M, S_ADAM_V, S_ADAM_T};

static const lw_param_info imtl_l_params[] = {
    [P_INIT] = {"init", LW_PARAM_NUMBER, 0.0, -100.0, 100.0, 0, 0, NULL,
                "Initial s_i (0 as LibMTL IMTL and TorchJD scalarization.IMTLL, w = 1)."},
    [P_OPTIMIZER] = LW_OPT_PARAM_OPTIMIZER(
        "\"adam\": torch.optim.Adam (LibMTL steps s with the model's Adam; "
        "TorchJD leaves the optimizer to the user); \"sgd\": torch.optim.SGD "
        "without momentum."),
    [P_LR] = LW_OPT_PARAM_LR("Learning rate of s (the anchors use the model's)."),
    LW_OPT_PARAM_ADAM_ROWS(P_BETA1, P_BETA2, P_EPS),
    [P_WEIGHT_DECAY] = LW_OPT_PARAM_WEIGHT_DECAY(
        "L2 decay added to the gradient of s, as PyTorch does (0; LibMTL's "
        "default model optimizer would apply 1e-5)."),
};

static const lw_state_info imtl_l_state[] = {
    [S_S] = {"s", LW_LEN_T, "The learned log-scale per task; w_i = exp(s_i)."},
    LW_OPT_STATE_ROWS(S_ADAM_M, S_ADAM_V, S_ADAM_T),
};

static void imtl_l_init(const lw_job *job, double *state)
{
    double *s = lw_st(job, state, S_S);
    for (size_t i = 0; i < job->T; i++)
        s[i] = lw_pnum(job, P_INIT);
}

static int imtl_l_step(const lw_job *job, double *state, double *work, const lw_input *in,
                       double *w, lw_error *err)
{
    (void)err;
    const size_t T = job->T;
    double *s = lw_st(job, state, S_S);
    double *g = work;
    for (size_t i = 0; i < T; i++) {
        w[i] = exp(s[i]);
        g[i] = w[i] * in->losses[i] - 1.0;
    }
    lw_opt_step(job, &opt_params, &opt_state, state, T, s, g);
    return 0;
}

static size_t imtl_l_work_size(size_t T) { return T; }

static void imtl_l_describe(const lw_job *job, const double *state, lw_view_fn fn, void *ud)
{
    const size_t T = job->T;
    const double *s = lw_stc(job, state, S_S);
    double *v = malloc(T * sizeof(double));
    if (!v)
        return;
    for (size_t i = 0; i < T; i++)
        v[i] = exp(s[i]);
    fn(ud, "s", s, T);
    fn(ud, "weights", v, T);
    free(v);
}

static int imtl_l_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    return lw_opt_check_state(job, &opt_state, idx, v, err);
}

const lw_method lw_method_imtl_l = {
    .info =
        {
            .name = "imtl_l",
            .summary = "IMTL-L: learned loss scales exp(s_i), objective exp(s_i) L_i - s_i.",
            .doc = "TorchJD scalarization.IMTLL, and the loss half of LibMTL IMTL: w_i = "
                   "exp(s_i), s stepped on exp(s_i) L_i - 1 (stationary at w_i = 1/L_i). "
                   "Weights come from s before the step; the optimizer (PyTorch 1.13 Adam or "
                   "SGD) then steps once with this step's losses. Differences: s has its own "
                   "optimizer here (LibMTL uses the model's, with its weight decay and LR "
                   "schedule); weight_decay defaults to 0.",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = imtl_l_params,
            .n_params = sizeof imtl_l_params / sizeof imtl_l_params[0],
            .state = imtl_l_state,
            .n_state = sizeof imtl_l_state / sizeof imtl_l_state[0],
        },
    .init = imtl_l_init,
    .step = imtl_l_step,
    .work_size = imtl_l_work_size,
    .describe = imtl_l_describe,
    .check_state = imtl_l_check_state,
};
