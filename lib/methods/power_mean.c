/*
 * power_mean.c -- the generalised (power) mean of the losses and its
 * derivative: w_i = dM/dL_i.
 *
 * Seed 003's generalised mean (methods-anchors.md 2.6):
 *   M = ((1/T) sum_i L_i^gamma)^(1/gamma),  gamma = 0: (prod_i L_i)^(1/T),
 *   w_i = (1/T) (L_i / M)^(gamma - 1),      so sum_i w_i L_i = M.
 * gamma = 0 is LibMTL's GLS and TorchJD's GeometricMean (w_i = M / (T L_i));
 * gamma = 1 is the mean (w_i = 1/T); gamma = -1 the harmonic mean; large
 * gamma tends to the max. Only gamma = 0 exists in an anchor.
 *
 * Everything is computed from x_i = log L_i, so no power of a loss is ever
 * formed and nothing overflows: log M = mean(x) for gamma = 0, else
 * log M = log(mean(exp(gamma x))) / gamma, evaluated as
 * log1p(mean(expm1(gamma x))) / gamma when |gamma x| <= 1 (accurate as
 * gamma -> 0, where the log-sum-exp form cancels) and as
 * (logsumexp(gamma x) - log T) / gamma otherwise.
 */
#include "../lw_internal.h"

enum { P_GAMMA };

static const lw_param_info power_mean_params[] = {
    [P_GAMMA] = {"gamma", LW_PARAM_NUMBER, 0.0, -100.0, 100.0, 0, 0, NULL,
                 "Exponent of the mean: 0 geometric (LibMTL GLS, TorchJD GeometricMean), 1 "
                 "arithmetic (w = 1/T), -1 harmonic. |gamma| <= 100."},
};

static int power_mean_check_input(const lw_job *job, const double *state, const lw_input *in,
                                  lw_error *err)
{
    (void)state;
    return lw_check_positive_losses(in, job->T, err);
}

static size_t power_mean_work_size(size_t T) { return T; }

static int power_mean_step(const lw_job *job, double *state, double *x, const lw_input *in,
                           double *w, lw_error *err)
{
    (void)state, (void)err;
    const size_t T = job->T;
    const double gamma = lw_pnum(job, P_GAMMA);
    const double dT = (double)T;
    double log_m, xmax = 0.0;

    for (size_t i = 0; i < T; i++) {
        x[i] = log(in->losses[i]);
        if (fabs(x[i]) > xmax)
            xmax = fabs(x[i]);
    }
    if (gamma == 0.0) {
        double s = 0.0;
        for (size_t i = 0; i < T; i++)
            s += x[i];
        log_m = s / dT;
    } else if (fabs(gamma) * xmax <= 1.0) {
        double s = 0.0;
        for (size_t i = 0; i < T; i++)
            s += expm1(gamma * x[i]);
        log_m = log1p(s / dT) / gamma;
    } else {
        /* w holds gamma x_i until the weights overwrite it. */
        for (size_t i = 0; i < T; i++)
            w[i] = gamma * x[i];
        log_m = (lw_logsumexp(w, T) - log(dT)) / gamma;
    }
    for (size_t i = 0; i < T; i++)
        w[i] = exp((gamma - 1.0) * (x[i] - log_m)) / dT;
    return 0;
}

const lw_method lw_method_power_mean = {
    .info =
        {
            .name = "power_mean",
            .summary = "Weights of the power mean M = ((1/T) sum L_i^gamma)^(1/gamma): w_i = "
                       "dM/dL_i.",
            .doc = "Seed 003's generalised mean (methods-anchors.md 2.6). gamma = 0 is LibMTL "
                   "GLS and TorchJD GeometricMean: w_i = M / (T L_i), the derivative of the "
                   "geometric mean LibMTL back-propagates (its backward() returns other "
                   "numbers as weights; we return the effective ones). Other gamma are our "
                   "derivation: w_i = (1/T) (L_i / M)^(gamma - 1), sum_i w_i L_i = M. Losses "
                   "must be > 0 (a 400 otherwise; no eps is added). Computed in logs.",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = power_mean_params,
            .n_params = sizeof power_mean_params / sizeof power_mean_params[0],
        },
    .check_input = power_mean_check_input,
    .step = power_mean_step,
    .work_size = power_mean_work_size,
};
