/*
 * moco.c -- MoCo (Fernando et al., ICLR 2023), listed but not served.
 *
 * Why G does not suffice. LibMTL's MoCo.py keeps, per task, a tracking
 * vector y_i <- y_i - beta_t (y_i - L_i g_i / (||g_i|| + 1e-8)), an
 * exponential moving average over steps of full gradient vectors (T x P
 * state), updates lambda <- softmax(lambda - gamma_t (Y Y' + rho I) lambda)
 * and applies sum_i lambda_i y_i. That is a combination of the buffers y_i,
 * which mix gradients of earlier steps, not of the current g_i; their inner
 * products with each other need vectors the service never sees. A split is
 * possible (the trainer keeps y and sends Gram(y); the service returns
 * lambda as coefficients on y) but is a different contract.
 */
#include "../lw_internal.h"

static int moco_step(const lw_job *job, double *state, double *work, const lw_input *in,
                     double *w, lw_error *err)
{
    (void)job, (void)state, (void)work, (void)in, (void)w;
    return lw_fail(err, LW_ENOTSUP, "method", "moco is not served: %s",
                   "it combines an EMA of full gradient vectors");
}

const lw_method lw_method_moco = {
    .info =
        {
            .name = "moco",
            .summary = "MoCo: conflict correction on moving averages of the gradients (not "
                       "served).",
            .doc = "LibMTL MoCo: tracking vectors y_i (EMA over steps of L_i g_i / ||g_i||), "
                   "lambda updated on Y Y', output sum lambda_i y_i. Listed for completeness "
                   "only.",
            .inputs = LW_IN_GRAM | LW_IN_LOSSES,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 0,
            .not_served_why = "MoCo's update combines per-task moving averages of full "
                              "gradient vectors across steps, not the current gradients, so it "
                              "cannot be computed from this step's Gram matrix. The trainer "
                              "would have to keep the averages itself.",
        },
    .step = moco_step,
};
