/*
 * gradnorm.c -- GradNorm (Chen et al., ICML 2018).
 *
 * Learned loss weights w that pull each task's weighted gradient norm
 * G_i = w_i n_i (n_i = ||grad L_i|| on the shared layer, sent by the trainer)
 * towards Gbar r_i^alpha, where Gbar = mean G and r_i is task i's inverse
 * training rate (L_i / L_i(0)) / mean_j (L_j / L_j(0)). The target is a
 * constant; the weights are stepped by a PyTorch optimizer on
 * sum_i |G_i - target_i|, whose gradient in w_i is sign(G_i - target_i) n_i
 * (sign(0) = 0, as torch.abs). methods-anchors.md 3.1.
 *
 * Two parametrisations: "direct" (the paper; brianlan/pytorch-grad-norm)
 * steps the weights themselves, then clamps them at >= 0 and renormalises
 * them to sum T; "softmax" (LibMTL) steps logits theta with w = T
 * softmax(theta), the gradient chained through the softmax. Both start at
 * 1 (LibMTL's theta = 1, all equal).
 *
 * Warm-up: w = 1 and no update during the first `warmup_steps` decided steps
 * and while the epoch is below `warmup_epochs` (LibMTL: 1, its epoch 0).
 * L(0): the losses of the job's first decided step ("first_step", the
 * paper), or the mean of the losses over the job's first epoch
 * ("first_epoch_mean", LibMTL's epoch-0 mean); if the method is active while
 * that first epoch is still open, the mean so far, this step included.
 * The weights returned for a step are those before its update.
 *
 * Losses must be > 0 (L / L(0) and r^alpha).
 */
#include "../lw_internal.h"

#include <stdlib.h>

enum {
    P_PARAMETRIZATION,
    P_OPTIMIZER,
    P_LR,
    P_ALPHA,
    P_WARMUP_STEPS,
    P_WARMUP_EPOCHS,
    P_INITIAL_LOSS,
    P_BETA1,
    P_BETA2,
    P_EPS,
    P_WEIGHT_DECAY
};
enum { PAR_DIRECT, PAR_SOFTMAX };
enum { L0_FIRST_STEP, L0_FIRST_EPOCH_MEAN };
enum {
    S_THETA,
    S_ADAM_M,
    S_ADAM_V,
    S_ADAM_T,
    S_L0,
    S_L0_SUM,
    S_L0_COUNT,
    S_L0_FROZEN,
    S_LAST_EPOCH,
    S_STEPS
};

static const lw_opt_params opt_params = {P_OPTIMIZER, P_LR,  P_BETA1,
                                         P_BETA2,     P_EPS, P_WEIGHT_DECAY};
static const lw_opt_state opt_state = {S_ADAM_M, S_ADAM_V, S_ADAM_T};

static const char *const parametrization_choices[] = {"direct", "softmax", NULL};
static const char *const initial_loss_choices[] = {"first_step", "first_epoch_mean", NULL};

static const lw_param_info gradnorm_params[] = {
    [P_PARAMETRIZATION] = {"parametrization", LW_PARAM_CHOICE, PAR_DIRECT, 0, 0, 0, 0,
                           parametrization_choices,
                           "\"direct\": the weights are the parameters, clamped at >= 0 and "
                           "renormalised to sum T after each update (the paper, "
                           "brianlan/pytorch-grad-norm, LucasBoTang/GradNorm); \"softmax\": w "
                           "= T softmax(theta) (LibMTL, FuxiCTR-fork)."},
    [P_OPTIMIZER] = LW_OPT_PARAM_OPTIMIZER(
        "\"adam\": torch.optim.Adam (brianlan and LibMTL use the model's Adam); "
        "\"sgd\": torch.optim.SGD without momentum."),
    [P_LR] = LW_OPT_PARAM_LR(
        "Learning rate of the weights (the anchors reuse the model's: LibMTL 1e-4)."),
    [P_ALPHA] = {"alpha", LW_PARAM_NUMBER, 1.5, 0.0, 1e300, 0, 0, NULL,
                 "Restoring force (1.5 as LibMTL and FuxiCTR-fork; the toy examples of "
                 "brianlan and LucasBoTang use 0.12)."},
    [P_WARMUP_STEPS] = {"warmup_steps", LW_PARAM_INT, 0.0, 0.0, 1e15, 0, 0, NULL,
                        "First decided steps with w = 1 and no update (0: none, as the paper "
                        "and brianlan)."},
    [P_WARMUP_EPOCHS] = {"warmup_epochs", LW_PARAM_INT, 0.0, 0.0, 1e15, 0, 0, NULL,
                         "Epochs 0..warmup_epochs-1 have w = 1 and no update; needs `epoch` "
                         "when > 0 (LibMTL: 1)."},
    [P_INITIAL_LOSS] = {"initial_loss", LW_PARAM_CHOICE, L0_FIRST_STEP, 0, 0, 0, 0,
                        initial_loss_choices,
                        "L(0): \"first_step\": the losses of the first decided step (the "
                        "paper, brianlan, LucasBoTang); \"first_epoch_mean\": the mean loss "
                        "over the first epoch (LibMTL); needs `epoch`."},
    LW_OPT_PARAM_ADAM_ROWS(P_BETA1, P_BETA2, P_EPS),
    [P_WEIGHT_DECAY] = LW_OPT_PARAM_WEIGHT_DECAY(
        "L2 decay added to the parameters' gradient, as PyTorch does (0 as "
        "FuxiCTR-fork's group; LibMTL's default model optimizer applies "
        "1e-5)."),
};

static const lw_state_info gradnorm_state[] = {
    [S_THETA] = {"theta", LW_LEN_T,
                 "The learned parameters: the weights themselves (direct) or logits with w = "
                 "T softmax(theta) (softmax). Start at 1."},
    LW_OPT_STATE_ROWS(S_ADAM_M, S_ADAM_V, S_ADAM_T),
    [S_L0] = {"initial_loss", LW_LEN_T,
              "L_i(0) (while the first epoch is open under first_epoch_mean: its mean so far)."},
    [S_L0_SUM] = {"initial_loss_sum", LW_LEN_T,
                  "Sum of the losses measured for L(0) (first_epoch_mean)."},
    [S_L0_COUNT] = {"initial_loss_count", LW_LEN_1, "Steps in initial_loss_sum."},
    [S_L0_FROZEN] = {"initial_loss_frozen", LW_LEN_1, "1 once L(0) no longer changes."},
    [S_LAST_EPOCH] = {"last_epoch", LW_LEN_1,
                      "Epoch of the last decided step (-1: none, or epochs not used)."},
    [S_STEPS] = {"steps", LW_LEN_1, "Decided steps (for warmup_steps)."},
};

static int needs_epoch(const lw_job *job)
{
    return lw_pnum(job, P_WARMUP_EPOCHS) > 0 ||
           lw_pchoice(job, P_INITIAL_LOSS) == L0_FIRST_EPOCH_MEAN;
}

static unsigned gradnorm_needs(const lw_job *job)
{
    return needs_epoch(job) ? LW_IN_EPOCH : 0;
}

static void gradnorm_init(const lw_job *job, double *state)
{
    double *theta = lw_st(job, state, S_THETA);
    for (size_t i = 0; i < job->T; i++)
        theta[i] = 1.0;
    lw_st(job, state, S_LAST_EPOCH)[0] = -1.0;
}

static int gradnorm_check_input(const lw_job *job, const double *state, const lw_input *in,
                                lw_error *err)
{
    int rc = lw_check_positive_losses(in, job->T, err);
    if (rc)
        return rc;
    if (!needs_epoch(job))
        return 0;
    return lw_check_epoch_not_back(in, lw_stc(job, state, S_LAST_EPOCH)[0],
                                   "the previous report's epoch", err);
}

/* The current weights from theta into w. */
static void current_weights(const lw_job *job, const double *theta, double *w)
{
    const size_t T = job->T;
    if (lw_pchoice(job, P_PARAMETRIZATION) == PAR_SOFTMAX) {
        lw_softmax(theta, T, 1.0, w);
        for (size_t i = 0; i < T; i++)
            w[i] *= (double)T;
    } else {
        for (size_t i = 0; i < T; i++)
            w[i] = theta[i];
    }
}

/* Update L(0) with this step's losses. */
static void track_initial_loss(const lw_job *job, double *state, const lw_input *in)
{
    const size_t T = job->T;
    double *l0 = lw_st(job, state, S_L0);
    double *sum = lw_st(job, state, S_L0_SUM);
    double *count = lw_st(job, state, S_L0_COUNT);
    double *frozen = lw_st(job, state, S_L0_FROZEN);
    if (frozen[0] != 0)
        return;
    if (lw_pchoice(job, P_INITIAL_LOSS) == L0_FIRST_STEP) {
        for (size_t i = 0; i < T; i++)
            l0[i] = in->losses[i];
        count[0] = 1.0;
        frozen[0] = 1.0;
        return;
    }
    /* first_epoch_mean: a step of a later epoch ends the measurement. */
    if (count[0] > 0 && (double)in->epoch != lw_st(job, state, S_LAST_EPOCH)[0]) {
        frozen[0] = 1.0;
        return;
    }
    count[0] += 1.0;
    for (size_t i = 0; i < T; i++) {
        sum[i] += in->losses[i];
        l0[i] = sum[i] / count[0];
    }
}

static int gradnorm_step(const lw_job *job, double *state, double *work, const lw_input *in,
                         double *w, lw_error *err)
{
    (void)err;
    const size_t T = job->T;
    const int softmax = lw_pchoice(job, P_PARAMETRIZATION) == PAR_SOFTMAX;
    double *theta = lw_st(job, state, S_THETA);
    double *steps = lw_st(job, state, S_STEPS);
    const double *l0 = lw_stc(job, state, S_L0);
    const double *n = in->grad_norms;

    track_initial_loss(job, state, in);
    const int warm = steps[0] < lw_pnum(job, P_WARMUP_STEPS) ||
                     (lw_pnum(job, P_WARMUP_EPOCHS) > 0 &&
                      (double)in->epoch < lw_pnum(job, P_WARMUP_EPOCHS));
    steps[0] += 1.0;
    if (needs_epoch(job))
        lw_st(job, state, S_LAST_EPOCH)[0] = (double)in->epoch;
    if (warm) {
        for (size_t i = 0; i < T; i++)
            w[i] = 1.0;
        return 0;
    }

    double *rate = work, *gw = work + T, *g = work + 2 * T;
    current_weights(job, theta, w);

    /* Gbar, the rates L_i / L_i(0) and their mean, in task order. */
    double gbar = 0.0, rbar = 0.0;
    for (size_t i = 0; i < T; i++) {
        gbar += w[i] * n[i];
        rate[i] = in->losses[i] / l0[i];
        rbar += rate[i];
    }
    gbar /= (double)T;
    rbar /= (double)T;
    const double alpha = lw_pnum(job, P_ALPHA);
    for (size_t i = 0; i < T; i++) {
        const double target = gbar * pow(rate[i] / rbar, alpha);
        const double d = w[i] * n[i] - target;
        gw[i] = d > 0 ? n[i] : d < 0 ? -n[i] : 0.0; /* d|G_i - target_i| / dw_i */
    }
    if (softmax) {
        /* w = T p: dL/dtheta_k = p_k (T gw_k - sum_i T gw_i p_i) (softmax backward). */
        double dot = 0.0;
        for (size_t i = 0; i < T; i++)
            dot += (double)T * gw[i] * (w[i] / (double)T);
        for (size_t k = 0; k < T; k++)
            g[k] = (w[k] / (double)T) * ((double)T * gw[k] - dot);
    } else {
        for (size_t k = 0; k < T; k++)
            g[k] = gw[k];
    }

    lw_opt_step(job, &opt_params, &opt_state, state, T, theta, g);

    if (!softmax) {
        double sum = 0.0;
        for (size_t i = 0; i < T; i++) {
            if (theta[i] < 0)
                theta[i] = 0.0;
            sum += theta[i];
        }
        /* Every weight clamped to 0 cannot be renormalised: restart from 1. */
        for (size_t i = 0; i < T; i++)
            theta[i] = sum > 0 ? (double)T * theta[i] / sum : 1.0;
    }
    return 0;
}

static size_t gradnorm_work_size(size_t T) { return 3 * T; }

static void gradnorm_describe(const lw_job *job, const double *state, lw_view_fn fn, void *ud)
{
    const lw_method_info *mi = &job->method->info;
    for (size_t i = 0; i < mi->n_state; i++)
        fn(ud, mi->state[i].name, lw_stc(job, state, i),
           mi->state[i].len == LW_LEN_T ? job->T : 1);
    double *w = malloc(job->T * sizeof(double));
    if (!w)
        return;
    current_weights(job, lw_stc(job, state, S_THETA), w);
    fn(ud, "weights", w, job->T);
    free(w);
}

static int gradnorm_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    const size_t T = job->T;
    char f[48];
    snprintf(f, sizeof f, "state.%s", gradnorm_state[idx].name);
    switch (idx) {
    case S_THETA:
        if (lw_pchoice(job, P_PARAMETRIZATION) == PAR_DIRECT) {
            double sum = 0.0;
            for (size_t i = 0; i < T; i++) {
                if (v[i] < 0)
                    return lw_fail(err, LW_EINVAL, f, "%s[%zu] = %.15g: a weight must be >= 0",
                                   f, i, v[i]);
                sum += v[i];
            }
            if (!(sum > 0))
                return lw_fail(err, LW_EINVAL, f, "%s must not be all zero", f);
        }
        return 0;
    case S_ADAM_M:
        return 0;
    case S_ADAM_V:
    case S_L0_SUM:
    case S_L0: /* 0 before any step; L(0) > 0 afterwards (checked as losses are). */
        return lw_check_state_nonneg(f, v, T, err);
    case S_L0_FROZEN:
        return lw_check_state_flag(f, v[0], err);
    case S_LAST_EPOCH:
        return lw_check_state_int(f, v[0], -1.0, err);
    default:
        return lw_check_state_int(f, v[0], 0.0, err);
    }
}

const lw_method lw_method_gradnorm = {
    .info =
        {
            .name = "gradnorm",
            .summary = "GradNorm: weights stepped to balance the weighted gradient norms.",
            .doc = "Chen et al. 2018. Needs losses and grad_norms (n_i = norm of the gradient "
                   "of the unweighted L_i on the shared layer the trainer chose). G_i = w_i "
                   "n_i, target_i = mean(G) r_i^alpha (constant), r_i = (L_i/L_i(0)) / "
                   "mean_j(L_j/L_j(0)); the parameters are stepped on sum |G_i - target_i| "
                   "(gradient sign(G_i - target_i) n_i, sign(0) = 0 as torch.abs). Defaults "
                   "follow the paper (direct weights renormalised to sum T after every "
                   "update, L(0) from the first step, no warm-up); LibMTL is "
                   "parametrization softmax, warmup_epochs 1, initial_loss first_epoch_mean, "
                   "optimizer adam at the model's lr. Differences: the weights have their own "
                   "optimizer (no LR schedule; weight_decay 0 unless set); LibMTL's epoch-0 "
                   "mean weights batches by size, ours is the plain mean of the steps; "
                   "brianlan renormalises once per pass over the data, we after every update; "
                   "LucasBoTang re-creates its Adam every step, not reproduced; if every "
                   "direct weight clamps to 0 they restart at 1. Weights returned are those "
                   "before the step's update; losses must be > 0.",
            .inputs = LW_IN_LOSSES | LW_IN_GRAD_NORMS,
            .optional_inputs = LW_IN_EPOCH,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = gradnorm_params,
            .n_params = sizeof gradnorm_params / sizeof gradnorm_params[0],
            .state = gradnorm_state,
            .n_state = sizeof gradnorm_state / sizeof gradnorm_state[0],
        },
    .needs = gradnorm_needs,
    .check_input = gradnorm_check_input,
    .init = gradnorm_init,
    .step = gradnorm_step,
    .work_size = gradnorm_work_size,
    .describe = gradnorm_describe,
    .check_state = gradnorm_check_state,
};
