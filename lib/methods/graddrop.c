/*
 * graddrop.c -- GradDrop (Chen et al., NeurIPS 2020), listed but not served.
 *
 * Why G does not suffice. GradDrop decides per coordinate of the shared
 * gradient: P = 1/2 (1 + sum_i g_i / sum_i |g_i|) element-wise, a uniform
 * draw U per coordinate, and task i's coordinate is kept when (P > U and
 * g_i > 0) or (P < U and g_i < 0) (LibMTL GradDrop.py on the representation
 * gradients, TorchJD GradDrop on the Jacobian rows). The result masks
 * individual coordinates by their signs, so it is not a linear combination
 * sum c_i g_i of the whole gradients, and no function of the Gram matrix
 * can produce it. The trainer must apply the masks itself.
 */
#include "../lw_internal.h"

static int graddrop_step(const lw_job *job, double *state, double *work, const lw_input *in,
                         double *w, lw_error *err)
{
    (void)job, (void)state, (void)work, (void)in, (void)w;
    return lw_fail(err, LW_ENOTSUP, "method", "graddrop is not served: %s",
                   "it masks gradient coordinates by sign");
}

const lw_method lw_method_graddrop = {
    .info =
        {
            .name = "graddrop",
            .summary = "GradDrop: random sign-consistent masking of gradient coordinates "
                       "(not served).",
            .doc = "LibMTL GradDrop and TorchJD GradDrop keep or drop each coordinate of each "
                   "task's gradient by a random draw against the sign purity "
                   "P = (1 + sum g_i / sum |g_i|) / 2. Listed for completeness only.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 0,
            .not_served_why = "GradDrop masks individual gradient coordinates by their signs "
                              "(element-wise, random); the result is not a combination of the "
                              "whole per-task gradients, so it cannot be computed from the Gram "
                              "matrix. Apply it in the trainer.",
        },
    .step = graddrop_step,
};
