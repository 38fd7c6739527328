/*
 * ew.c -- equal weighting: w_i = 1 (LibMTL EW, FuxiCTR "EQ").
 *
 * The baseline every other method is compared with. LibMTL's docstring says
 * 1/T but its code back-propagates the plain sum; we follow the code.
 */
#include "../lw_internal.h"

static int ew_step(const lw_job *job, double *state, double *work, const lw_input *in, double *w,
                   lw_error *err)
{
    (void)state, (void)work, (void)in, (void)err;
    for (size_t i = 0; i < job->T; i++)
        w[i] = 1.0;
    return 0;
}

const lw_method lw_method_ew = {
    .info =
        {
            .name = "ew",
            .summary = "Equal weighting: w_i = 1 (the plain sum of the losses).",
            .doc = "LibMTL EW and FuxiCTR EQ: back-propagate sum_i L_i. LibMTL's docstring "
                   "mentions 1/T; its code, which we follow, uses 1.",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
        },
    .step = ew_step,
};
