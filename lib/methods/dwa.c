/*
 * dwa.c -- Dynamic Weight Average (Liu et al., CVPR 2019).
 *
 * The weight of a task grows with how slowly its loss went down between the
 * last two closed epochs: r_i = Lbar_i(last closed) / Lbar_i(the one
 * before), w = T softmax(r / temperature); until two epochs have closed,
 * w = 1 (lorenmt/mtan, LibMTL DWA, TorchJD scalarization.DWA;
 * methods-anchors.md 2.3). An epoch's mean is the plain mean of its decided
 * steps' losses (mtan and TorchJD; LibMTL weights by batch size, which is
 * the same for equal batches).
 *
 * Epochs come from the reports' `epoch` (window = 0) or from counting
 * decided steps (window = N: steps 0..N-1 are epoch 0, and so on, like
 * nash-mtl's iteration window but without its ones-initialised buffer).
 * A step's epoch may not go below the open epoch. A step whose epoch is
 * above the open one first closes the open epoch; its own losses then go
 * into the new open epoch, so they never affect its own weights. Epoch
 * numbers may skip: "last" and "before" are the last two epochs that had
 * steps (with contiguous epochs from 0 that is LibMTL's Lbar(e-1)/Lbar(e-2)).
 *
 * Losses must be > 0: the ratio divides by an epoch mean.
 */
#include "../lw_internal.h"

enum { P_TEMPERATURE, P_WINDOW };
enum { S_LAST, S_BEFORE, S_CLOSED, S_OPEN_SUM, S_OPEN_COUNT, S_OPEN_EPOCH, S_STEPS };

static const lw_param_info dwa_params[] = {
    [P_TEMPERATURE] = {"temperature", LW_PARAM_NUMBER, 2.0, 0.0, 1e300, 1, 0, NULL,
                       "Softmax temperature (2.0 as mtan, LibMTL and TorchJD; seed 001's "
                       "code shows 20)."},
    [P_WINDOW] = {"window", LW_PARAM_INT, 0.0, 0.0, 1e15, 0, 0, NULL,
                  "0: epochs are the reports' `epoch` (mtan, LibMTL, TorchJD); N > 0: every N "
                  "decided steps form an epoch and `epoch` is not needed."},
};

static const lw_state_info dwa_state[] = {
    [S_LAST] = {"mean_last", LW_LEN_T, "Mean loss per task of the last closed epoch."},
    [S_BEFORE] = {"mean_before", LW_LEN_T,
                  "Mean loss per task of the closed epoch before that."},
    [S_CLOSED] = {"epochs_closed", LW_LEN_1,
                  "Epochs closed so far (weights are 1 until it reaches 2)."},
    [S_OPEN_SUM] = {"open_sum", LW_LEN_T, "Sum of the losses of the open epoch's steps."},
    [S_OPEN_COUNT] = {"open_count", LW_LEN_1, "Steps in the open epoch."},
    [S_OPEN_EPOCH] = {"open_epoch", LW_LEN_1, "The open epoch's number (-1 before any step)."},
    [S_STEPS] = {"steps", LW_LEN_1, "Decided steps (gives the epoch when window > 0)."},
};

static unsigned dwa_needs(const lw_job *job)
{
    return lw_pnum(job, P_WINDOW) == 0 ? LW_IN_EPOCH : 0;
}

static void dwa_init(const lw_job *job, double *state)
{
    lw_st(job, state, S_OPEN_EPOCH)[0] = -1.0;
}

static int dwa_check_input(const lw_job *job, const double *state, const lw_input *in,
                           lw_error *err)
{
    int rc = lw_check_positive_losses(in, job->T, err);
    if (rc)
        return rc;
    if (lw_pnum(job, P_WINDOW) != 0)
        return 0;
    return lw_check_epoch_not_back(in, lw_stc(job, state, S_OPEN_EPOCH)[0], "the open epoch",
                                   err);
}

static int dwa_step(const lw_job *job, double *state, double *work, const lw_input *in,
                    double *w, lw_error *err)
{
    (void)err;
    const size_t T = job->T;
    double *last = lw_st(job, state, S_LAST);
    double *before = lw_st(job, state, S_BEFORE);
    double *closed = lw_st(job, state, S_CLOSED);
    double *sum = lw_st(job, state, S_OPEN_SUM);
    double *count = lw_st(job, state, S_OPEN_COUNT);
    double *open = lw_st(job, state, S_OPEN_EPOCH);
    const double e = lw_epoch_of(in, lw_pnum(job, P_WINDOW), lw_st(job, state, S_STEPS)[0]);

    if (count[0] > 0 && e != open[0]) {
        for (size_t i = 0; i < T; i++) {
            before[i] = last[i];
            last[i] = sum[i] / count[0];
            sum[i] = 0.0;
        }
        count[0] = 0.0;
        closed[0] += 1.0;
    }
    open[0] = e;

    if (closed[0] >= 2) {
        double *r = work, *q = work + T;
        for (size_t i = 0; i < T; i++)
            r[i] = last[i] / before[i];
        lw_softmax(r, T, lw_pnum(job, P_TEMPERATURE), q);
        for (size_t i = 0; i < T; i++)
            w[i] = (double)T * q[i];
    } else {
        for (size_t i = 0; i < T; i++)
            w[i] = 1.0;
    }

    for (size_t i = 0; i < T; i++)
        sum[i] += in->losses[i];
    count[0] += 1.0;
    lw_st(job, state, S_STEPS)[0] += 1.0;
    return 0;
}

static size_t dwa_work_size(size_t T) { return 2 * T; }

static int dwa_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    char f[48];
    snprintf(f, sizeof f, "state.%s", dwa_state[idx].name);
    switch (idx) {
    case S_LAST:
    case S_BEFORE:
    case S_OPEN_SUM:
        return lw_check_state_nonneg(f, v, job->T, err);
    case S_OPEN_EPOCH:
        return lw_check_state_int(f, v[0], -1.0, err);
    default:
        return lw_check_state_int(f, v[0], 0.0, err);
    }
}

const lw_method lw_method_dwa = {
    .info =
        {
            .name = "dwa",
            .summary = "Dynamic Weight Average: T softmax of the loss descent rates / temperature.",
            .doc = "lorenmt/mtan, LibMTL DWA and TorchJD scalarization.DWA: w = 1 until two "
                   "epochs have closed, then w = T softmax(r / temperature) with r_i = "
                   "Lbar_i(last closed epoch) / Lbar_i(the one before). Epoch means are plain "
                   "means of the steps' losses (LibMTL weights by batch size; equal for equal "
                   "batches). Epochs come from the reports (window 0, the anchors) or from "
                   "every `window` decided steps; a report's epoch below the open epoch is "
                   "refused. Losses must be > 0 (the anchors do not guard the division). "
                   "nash-mtl's variant (ones-initialised iteration buffer, mean instead of "
                   "sum) is not reproduced.",
            .inputs = LW_IN_LOSSES,
            .optional_inputs = LW_IN_EPOCH,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = dwa_params,
            .n_params = sizeof dwa_params / sizeof dwa_params[0],
            .state = dwa_state,
            .n_state = sizeof dwa_state / sizeof dwa_state[0],
        },
    .needs = dwa_needs,
    .check_input = dwa_check_input,
    .init = dwa_init,
    .step = dwa_step,
    .work_size = dwa_work_size,
    .check_state = dwa_check_state,
};
