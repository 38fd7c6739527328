/*
 * rlw.c -- random loss weighting: w = softmax(z), z ~ N(0, I_T) each step.
 *
 * LibMTL RLW (methods-anchors.md 2.2; also nash-mtl RLW and TorchJD Random).
 * The draw is a pure function of (job seed, report step): z_i =
 * lw_rand_normal(seed, step, stream 0, i). So every rank, a replay and a job
 * restored from an export all get the same weights for the same step, and
 * there is no generator state to keep.
 */
#include "../lw_internal.h"

enum { P_SCALE };
enum { SCALE_ONE, SCALE_TASKS };

static const char *const scale_choices[] = {"one", "tasks", NULL};

/* The RNG stream of rlw's draws (rng.c: rlw is stream 0). */
#define RLW_STREAM 0

static const lw_param_info rlw_params[] = {
    [P_SCALE] = {"scale", LW_PARAM_CHOICE, SCALE_ONE, 0, 0, 0, 0, scale_choices,
                 "\"one\": weights sum to 1 (LibMTL RLW, TorchJD Random); \"tasks\": sum to T "
                 "(the scale of ew)."},
};

static size_t rlw_work_size(size_t T) { return T; }

static int rlw_step(const lw_job *job, double *state, double *z, const lw_input *in, double *w,
                    lw_error *err)
{
    (void)state, (void)err;
    const size_t T = job->T;
    for (size_t i = 0; i < T; i++)
        z[i] = lw_rand_normal(job->seed, in->step, RLW_STREAM, i);
    lw_softmax(z, T, 1.0, w);
    if (lw_pchoice(job, P_SCALE) == SCALE_TASKS)
        for (size_t i = 0; i < T; i++)
            w[i] *= (double)T;
    return 0;
}

const lw_method lw_method_rlw = {
    .info =
        {
            .name = "rlw",
            .summary = "Random loss weighting: w = softmax(z), z standard normal per step.",
            .doc = "LibMTL RLW (normal distribution, its default): w = softmax(z), z ~ N(0, "
                   "I_T). Differs from LibMTL in where z comes from: a counter-based generator "
                   "(Philox4x64-10) at (job seed, report step), Box-Muller, so the weights "
                   "of a step are reproducible on every rank and after a restore (torch.randn "
                   "draws differ). scale \"tasks\" multiplies by T.",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = rlw_params,
            .n_params = sizeof rlw_params / sizeof rlw_params[0],
        },
    .step = rlw_step,
    .work_size = rlw_work_size,
};
