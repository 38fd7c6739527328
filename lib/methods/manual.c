/*
 * manual.c -- fixed weights given in the job spec, optionally normalised.
 *
 * FuxiCTR's `loss_weight: [w1, w2]`. Seed 000 reads [1, 2] as [1/3, 2/3],
 * which is normalize = "sum_to_one"; "sum_to_tasks" scales the weights to
 * sum to T (the scale of ew).
 */
#include "../lw_internal.h"

enum { P_WEIGHTS, P_NORMALIZE };
enum { NORM_NONE, NORM_SUM_ONE, NORM_SUM_TASKS };

static const char *const normalize_choices[] = {"none", "sum_to_one", "sum_to_tasks", NULL};

static const lw_param_info manual_params[] = {
    [P_WEIGHTS] = {"weights", LW_PARAM_VECTOR, 1.0, 0.0, 1e300, 0, 0, NULL,
                   "T weights >= 0, not all 0 (default: 1 each)."},
    [P_NORMALIZE] = {"normalize", LW_PARAM_CHOICE, NORM_NONE, 0, 0, 0, 0, normalize_choices,
                     "\"none\": as given; \"sum_to_one\": divided by their sum (seed 000 reads "
                     "[1, 2] as [0.33, 0.67]); \"sum_to_tasks\": scaled to sum to T."},
};

static int manual_check_spec(const lw_job *job, lw_error *err)
{
    const double *v = lw_pvec(job, P_WEIGHTS);
    for (size_t i = 0; i < job->T; i++)
        if (v[i] > 0)
            return 0;
    return lw_fail(err, LW_EINVAL, "params.weights", "params.weights must not be all zero");
}

static int manual_step(const lw_job *job, double *state, double *work, const lw_input *in,
                       double *w, lw_error *err)
{
    (void)state, (void)work, (void)in, (void)err;
    const double *v = lw_pvec(job, P_WEIGHTS);
    double sum = 0.0, scale = 1.0;
    for (size_t i = 0; i < job->T; i++)
        sum += v[i];
    switch (lw_pchoice(job, P_NORMALIZE)) {
    case NORM_SUM_ONE: scale = 1.0 / sum; break;
    case NORM_SUM_TASKS: scale = (double)job->T / sum; break;
    default: break;
    }
    for (size_t i = 0; i < job->T; i++)
        w[i] = lw_pchoice(job, P_NORMALIZE) == NORM_NONE ? v[i] : v[i] * scale;
    return 0;
}

const lw_method lw_method_manual = {
    .info =
        {
            .name = "manual",
            .summary = "Fixed weights from the job spec, optionally normalised.",
            .doc = "FuxiCTR's loss_weight list. normalize \"sum_to_one\" matches seed 000's "
                   "reading of [1, 2] as [1/3, 2/3].",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = manual_params,
            .n_params = sizeof manual_params / sizeof manual_params[0],
        },
    .check_spec = manual_check_spec,
    .step = manual_step,
};
