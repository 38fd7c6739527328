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
enum { OPT_ADAM, OPT_SGD };
enum { S_S, S_ADAM_M, S_ADAM_V, S_ADAM_T };

static const lw_param_info imtl_l_params[] = {
    [P_INIT] = {"init", LW_PARAM_NUMBER, 0.0, -100.0, 100.0, 0, 0, NULL,
                "Initial s_i (0 as LibMTL IMTL and TorchJD scalarization.IMTLL, w = 1)."},
    [P_OPTIMIZER] = {"optimizer", LW_PARAM_CHOICE, OPT_ADAM, 0, 0, 0, 0, lw_choices_optimizer,
                     "\"adam\": torch.optim.Adam (LibMTL steps s with the model's Adam; "
                     "TorchJD leaves the optimizer to the user); \"sgd\": torch.optim.SGD "
                     "without momentum."},
    [P_LR] = {"lr", LW_PARAM_NUMBER, 1e-3, 0.0, 1e300, 1, 0, NULL,
              "Learning rate of s (the anchors use the model's)."},
    [P_BETA1] = {"beta1", LW_PARAM_NUMBER, 0.9, 0.0, 1.0, 0, 1, NULL,
                 "Adam beta1 (PyTorch default 0.9)."},
    [P_BETA2] = {"beta2", LW_PARAM_NUMBER, 0.999, 0.0, 1.0, 0, 1, NULL,
                 "Adam beta2 (PyTorch default 0.999)."},
    [P_EPS] = {"eps", LW_PARAM_NUMBER, 1e-8, 0.0, 1e300, 1, 0, NULL,
               "Adam eps (PyTorch default 1e-8)."},
    [P_WEIGHT_DECAY] = {"weight_decay", LW_PARAM_NUMBER, 0.0, 0.0, 1e300, 0, 0, NULL,
                        "L2 decay added to the gradient of s, as PyTorch does (0; LibMTL's "
                        "default model optimizer would apply 1e-5)."},
};

static const lw_state_info imtl_l_state[] = {
    [S_S] = {"s", LW_LEN_T, "The learned log-scale per task; w_i = exp(s_i)."},
    [S_ADAM_M] = {"adam_m", LW_LEN_T, "Adam first moment (0 with sgd)."},
    [S_ADAM_V] = {"adam_v", LW_LEN_T, "Adam second moment (0 with sgd)."},
    [S_ADAM_T] = {"adam_t", LW_LEN_1, "Adam step count (0 with sgd)."},
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
    if (lw_pchoice(job, P_OPTIMIZER) == OPT_ADAM) {
        const lw_adam opt = {lw_pnum(job, P_LR), lw_pnum(job, P_BETA1), lw_pnum(job, P_BETA2),
                             lw_pnum(job, P_EPS), lw_pnum(job, P_WEIGHT_DECAY)};
        lw_adam_step(&opt, T, s, g, lw_st(job, state, S_ADAM_M), lw_st(job, state, S_ADAM_V),
                     lw_st(job, state, S_ADAM_T));
    } else {
        lw_sgd_step(lw_pnum(job, P_LR), lw_pnum(job, P_WEIGHT_DECAY), T, s, g);
    }
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
    if (idx == S_ADAM_V) {
        for (size_t i = 0; i < job->T; i++)
            if (v[i] < 0)
                return lw_fail(err, LW_EINVAL, "state.adam_v",
                               "state.adam_v[%zu] = %.15g must be >= 0", i, v[i]);
    } else if (idx == S_ADAM_T) {
        if (!(v[0] >= 0 && floor(v[0]) == v[0]))
            return lw_fail(err, LW_EINVAL, "state.adam_t", "state.adam_t must be an integer >= 0");
    }
    return 0;
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
