/*
 * uw.c -- uncertainty weighting (Kendall et al., CVPR 2018).
 *
 * Each task has a learnable scalar; the trainer's objective is
 * sum_i f(param_i, L_i), the model sees w_i = df/dL_i, and the scalar is
 * stepped by a PyTorch optimizer on df/dparam_i, which needs only L_i
 * (methods-anchors.md 2.4). Two forms (METHODS.md):
 *
 *   log_var: param s_i = log sigma_i^2, f = 0.5 exp(-s) L + 0.5 s,
 *            w = 0.5 exp(-s), df/ds = 0.5 - 0.5 exp(-s) L
 *            (LibMTL UW, lorenmt/mtan, FuxiCTR-fork, TorchJD scalarization.UW);
 *   sigma:   param sigma_i, f = L / sigma^2 + log sigma,
 *            w = 1 / sigma^2, df/dsigma = -2 L / sigma^3 + 1 / sigma
 *            (seed 001's TF code).
 *
 * The weights of step t come from the parameter before step t's update; the
 * update then uses step t's losses, as the anchors do when the scalars live
 * in the model's optimizer (read the weights in the forward pass, step
 * afterwards).
 *
 * State: the parameter, Adam's two moments and step count (SGD leaves the
 * moments at 0).
 */
#include "../lw_internal.h"

#include <stdlib.h>

enum { P_INIT, P_FORM, P_OPTIMIZER, P_LR, P_BETA1, P_BETA2, P_EPS, P_WEIGHT_DECAY };
enum { FORM_LOG_VAR, FORM_SIGMA };
enum { S_PARAM, S_ADAM_M, S_ADAM_V, S_ADAM_T };

static const lw_opt_params opt_params = {P_OPTIMIZER, P_LR,  P_BETA1,
                                         P_BETA2,     P_EPS, P_WEIGHT_DECAY};
static const lw_opt_state opt_state = {S_ADAM_M, S_ADAM_V, S_ADAM_T};

static const char *const form_choices[] = {"log_var", "sigma", NULL};

static const lw_param_info uw_params[] = {
    [P_INIT] = {"init", LW_PARAM_NUMBER, 0.0, -100.0, 100.0, 0, 0, NULL,
                "Initial s_i = log sigma_i^2 (form sigma starts at sigma_i = exp(init/2)). "
                "0 matches TorchJD scalarization.UW and nash-mtl; -0.5 matches LibMTL UW and "
                "lorenmt/mtan; 1.0 matches seed 000's FuxiCTR code."},
    [P_FORM] = {"form", LW_PARAM_CHOICE, FORM_LOG_VAR, 0, 0, 0, 0, form_choices,
                "\"log_var\": 0.5 exp(-s) L + 0.5 s, w = 0.5 exp(-s) (LibMTL, mtan, seed 000, "
                "TorchJD); \"sigma\": L / sigma^2 + log sigma with sigma learned directly, "
                "w = 1 / sigma^2 (seed 001's TF code)."},
    [P_OPTIMIZER] = LW_OPT_PARAM_OPTIMIZER(
        "\"adam\": torch.optim.Adam (the anchors step the scalars with the model's "
        "Adam); \"sgd\": torch.optim.SGD without momentum."),
    [P_LR] = LW_OPT_PARAM_LR("Learning rate of the scalars. The anchors reuse the model's "
                             "(LibMTL/mtan 1e-4); nash-mtl's separate group uses 0.025."),
    LW_OPT_PARAM_ADAM_ROWS(P_BETA1, P_BETA2, P_EPS),
    [P_WEIGHT_DECAY] = LW_OPT_PARAM_WEIGHT_DECAY(
                        "L2 decay added to the scalars' gradient, as PyTorch does (0: "
                        "TorchJD, FuxiCTR-fork's own group; LibMTL's default optimizer applies "
                        "1e-5)."),
};

static const lw_state_info uw_state[] = {
    [S_PARAM] = {"param", LW_LEN_T,
                 "The learned scalar per task: s_i = log sigma_i^2 (form log_var) or sigma_i "
                 "(form sigma, > 0)."},
    LW_OPT_STATE_ROWS(S_ADAM_M, S_ADAM_V, S_ADAM_T),
};

static void uw_init(const lw_job *job, double *state)
{
    double *p = lw_st(job, state, S_PARAM);
    const double init = lw_pnum(job, P_INIT);
    for (size_t i = 0; i < job->T; i++)
        p[i] = lw_pchoice(job, P_FORM) == FORM_SIGMA ? exp(init / 2.0) : init;
}

/* w from the parameter; sigma from the parameter. */
static double uw_weight(int form, double p)
{
    return form == FORM_SIGMA ? 1.0 / (p * p) : 0.5 * exp(-p);
}

static double uw_sigma(int form, double p)
{
    return form == FORM_SIGMA ? p : exp(p / 2.0);
}

static int uw_step(const lw_job *job, double *state, double *work, const lw_input *in,
                   double *w, lw_error *err)
{
    const size_t T = job->T;
    const int form = lw_pchoice(job, P_FORM);
    double *p = lw_st(job, state, S_PARAM);
    double *g = work;

    for (size_t i = 0; i < T; i++) {
        const double L = in->losses[i];
        w[i] = uw_weight(form, p[i]);
        if (form == FORM_SIGMA)
            g[i] = -2.0 * L / (p[i] * p[i] * p[i]) + 1.0 / p[i];
        else
            g[i] = 0.5 - 0.5 * exp(-p[i]) * L;
    }
    lw_opt_step(job, &opt_params, &opt_state, state, T, p, g);
    if (form == FORM_SIGMA) {
        for (size_t i = 0; i < T; i++)
            if (!(p[i] > 0)) {
                return lw_fail(err, LW_ENUMERIC, "params.lr",
                               "uw (form sigma): this step would make sigma_%zu = %.15g <= 0; "
                               "state unchanged (a smaller lr avoids it)",
                               i, p[i]);
            }
    }
    return 0;
}

static size_t uw_work_size(size_t T) { return T; }

static void uw_describe(const lw_job *job, const double *state, lw_view_fn fn, void *ud)
{
    const size_t T = job->T;
    const int form = lw_pchoice(job, P_FORM);
    const double *p = lw_stc(job, state, S_PARAM);
    double *v = malloc(2 * T * sizeof(double));
    if (!v)
        return;
    for (size_t i = 0; i < T; i++) {
        v[i] = uw_sigma(form, p[i]);
        v[T + i] = uw_weight(form, p[i]);
    }
    fn(ud, "sigma", v, T);
    fn(ud, "weights", v + T, T);
    free(v);
}

static int uw_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    const size_t T = job->T;
    if (idx == S_PARAM && lw_pchoice(job, P_FORM) == FORM_SIGMA)
        for (size_t i = 0; i < T; i++)
            if (!(v[i] > 0))
                return lw_fail(err, LW_EINVAL, "state.param",
                               "state.param[%zu] = %.15g: sigma must be > 0", i, v[i]);
    return lw_opt_check_state(job, &opt_state, idx, v, err);
}

const lw_method lw_method_uw = {
    .info =
        {
            .name = "uw",
            .summary = "Uncertainty weighting: learned per-task log-variances (Kendall et al.).",
            .doc = "Form log_var (default) is LibMTL UW / mtan / FuxiCTR-fork / TorchJD "
                   "scalarization.UW: w_i = 0.5 exp(-s_i), s stepped on 0.5 - 0.5 exp(-s_i) L_i. "
                   "Form sigma is seed 001's TF code: w_i = 1/sigma_i^2, sigma stepped on "
                   "-2 L_i/sigma_i^3 + 1/sigma_i. Weights come from the state before the step; "
                   "the optimizer (PyTorch 1.13 Adam or SGD, bias correction included) then "
                   "steps once with this step's losses. Differences from the anchors: the "
                   "scalars have their own optimizer here, so LibMTL's weight decay of 1e-5 "
                   "applies only if weight_decay says so (default 0, matching TorchJD), the "
                   "default init is 0 (TorchJD, nash-mtl; LibMTL -0.5) and the lr is not "
                   "decayed by a trainer's LR schedule; FuxiCTR-fork's global gradient "
                   "clipping of the scalars is not reproduced. A sigma step that would make "
                   "sigma <= 0 is refused (LW_ENUMERIC, state unchanged).",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = uw_params,
            .n_params = sizeof uw_params / sizeof uw_params[0],
            .state = uw_state,
            .n_state = sizeof uw_state / sizeof uw_state[0],
        },
    .init = uw_init,
    .step = uw_step,
    .work_size = uw_work_size,
    .describe = uw_describe,
    .check_state = uw_check_state,
};
