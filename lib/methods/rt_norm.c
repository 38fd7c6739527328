/*
 * rt_norm.c -- real-time loss normalisation: w_i = 1 / L_i.
 *
 * Seed 003's "real-time" normalisation sum_i L_i / stop_grad(L_i)
 * (methods-anchors.md 2.7, row "Real-time"): every task's weighted loss is 1
 * at every step, and the gradient equals that of sum_i log L_i, the log loss
 * LibMTL's maintainer recommends and the first half of DB-MTL. Same direction
 * as power_mean with gamma 0 (GLS), which multiplies it by M / T.
 */
#include "../lw_internal.h"

static int rt_norm_check_input(const lw_job *job, const double *state, const lw_input *in,
                               lw_error *err)
{
    (void)state;
    return lw_check_positive_losses(in, job->T, err);
}

static int rt_norm_step(const lw_job *job, double *state, double *work, const lw_input *in,
                        double *w, lw_error *err)
{
    (void)state, (void)work, (void)err;
    for (size_t i = 0; i < job->T; i++)
        w[i] = 1.0 / in->losses[i];
    return 0;
}

const lw_method lw_method_rt_norm = {
    .info =
        {
            .name = "rt_norm",
            .summary = "Real-time normalisation: w_i = 1 / L_i (the gradient of sum log L_i).",
            .doc = "Seed 003's \"real-time\" normalisation sum_i L_i / stop_grad(L_i) "
                   "(methods-anchors.md 2.7). Hard form 1 / L_i without an eps: losses must "
                   "be > 0 (a 400 otherwise); DB-MTL's soft form 1 / (L_i + 1e-8) is part of "
                   "db_mtl.",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
        },
    .check_input = rt_norm_check_input,
    .step = rt_norm_step,
};
