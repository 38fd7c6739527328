/*
 * famo.c -- FAMO, Fast Adaptive Multitask Optimization (Liu et al.,
 * NeurIPS 2023; Cranial-XIX/FAMO, LibMTL FAMO, TorchJD scalarization.FAMO).
 *
 * Logits xi (start 0) give z = softmax(xi); the trainer back-propagates
 * sum_i z_i log(L_i - b_i + 1e-8) / c with the normaliser c detached, i.e.
 * w_i = (z_i / D_i) / sum_j (z_j / D_j), D_i = L_i - b_i + 1e-8 (weights sum
 * to 1). After the model update the anchors re-evaluate the same batch and
 * step xi with Adam on z * (d - z.d), d_i = log(D_i before) - log(D_i
 * after): tasks that improved more lose weight (methods-anchors.md 2.9).
 *
 * A trainer posting step t cannot know step t's own post-update losses, so
 * the report for step t carries `losses_after` = step t-1's batch after
 * step t-1's update, and the update of xi for step t-1 runs at the start of
 * step t, before the weights are computed: the same sequence of weights as
 * the anchors. Without `losses_after` xi is not updated (Adam's count does
 * not advance); on the first report it is ignored.
 *
 * State: xi, its PyTorch Adam state (betas 0.9/0.999, eps 1e-8, weight
 * decay added to the gradient), and the previous decided step's losses.
 */
#include "../lw_internal.h"

#include <stdlib.h>

enum { P_LR, P_WEIGHT_DECAY, P_MIN_LOSSES };
enum { S_XI, S_ADAM_M, S_ADAM_V, S_ADAM_T, S_PREV, S_HAVE_PREV };

/* Guard inside the logs and divisions (all anchors). */
#define FAMO_EPS 1e-8

static const lw_param_info famo_params[] = {
    [P_LR] = {"lr", LW_PARAM_NUMBER, 0.025, 0.0, 1e300, 1, 0, NULL,
              "Adam learning rate of the logits (0.025 in every anchor: FAMO_w_lr, TorchJD "
              "lr, the official --method-params-lr)."},
    [P_WEIGHT_DECAY] = {"weight_decay", LW_PARAM_NUMBER, 1e-3, 0.0, 1e300, 0, 0, NULL,
                        "L2 decay of the logits in Adam (1e-3 as LibMTL FAMO_w_gamma and "
                        "TorchJD; the official code uses 0.01 in famo.py and its CLI, 1e-5 "
                        "in methods/weight_methods.py)."},
    [P_MIN_LOSSES] = {"min_losses", LW_PARAM_VECTOR, 0.0, -1e300, 1e300, 0, 0, NULL,
                      "Lower bounds b_i of the losses (default 0, as every anchor); losses "
                      "must stay above them."},
};

static const lw_state_info famo_state[] = {
    [S_XI] = {"xi", LW_LEN_T, "Logits; z = softmax(xi) is the task mix before the 1/D scaling."},
    [S_ADAM_M] = {"adam_m", LW_LEN_T, "Adam first moment of xi."},
    [S_ADAM_V] = {"adam_v", LW_LEN_T, "Adam second moment of xi."},
    [S_ADAM_T] = {"adam_t", LW_LEN_1, "Adam step count (updates of xi so far)."},
    [S_PREV] = {"prev_losses", LW_LEN_T, "The previous decided step's losses (P)."},
    [S_HAVE_PREV] = {"have_prev", LW_LEN_1, "1 once a step has been decided."},
};

static int famo_check_input(const lw_job *job, const double *state, const lw_input *in,
                            lw_error *err)
{
    (void)state;
    const double *b = lw_pvec(job, P_MIN_LOSSES);
    const struct {
        const double *v;
        const char *name;
    } arrays[] = {{in->losses, "losses"}, {in->losses_after, "losses_after"}};
    for (size_t k = 0; k < 2; k++) {
        if (!arrays[k].v)
            continue;
        for (size_t i = 0; i < job->T; i++) {
            if (!(arrays[k].v[i] > b[i])) {
                char f[48];
                snprintf(f, sizeof f, "%s[%zu]", arrays[k].name, i);
                return lw_fail(err, LW_EINVAL, f,
                               "%s = %.15g: famo needs every loss above its min_losses "
                               "bound %.15g",
                               f, arrays[k].v[i], b[i]);
            }
        }
    }
    return 0;
}

static int famo_step(const lw_job *job, double *state, double *work, const lw_input *in,
                     double *w, lw_error *err)
{
    (void)err;
    const size_t T = job->T;
    const double *b = lw_pvec(job, P_MIN_LOSSES);
    double *xi = lw_st(job, state, S_XI);
    double *prev = lw_st(job, state, S_PREV);
    double *have_prev = lw_st(job, state, S_HAVE_PREV);
    double *z = work, *d = work + T;

    /* 1. The update for the previous step, now that its L' is known. */
    if (have_prev[0] != 0 && in->losses_after) {
        double zd = 0.0;
        lw_softmax(xi, T, 1.0, z);
        for (size_t i = 0; i < T; i++)
            d[i] = log(prev[i] - b[i] + FAMO_EPS) - log(in->losses_after[i] - b[i] + FAMO_EPS);
        for (size_t i = 0; i < T; i++)
            zd += d[i] * z[i];
        for (size_t i = 0; i < T; i++)
            d[i] = z[i] * (d[i] - zd); /* softmax backward: the gradient in xi */
        const lw_adam opt = {lw_pnum(job, P_LR), 0.9, 0.999, 1e-8, lw_pnum(job, P_WEIGHT_DECAY)};
        lw_adam_step(&opt, T, xi, d, lw_st(job, state, S_ADAM_M), lw_st(job, state, S_ADAM_V),
                     lw_st(job, state, S_ADAM_T));
    }

    /* 2. This step's weights. */
    double c = 0.0;
    lw_softmax(xi, T, 1.0, z);
    for (size_t i = 0; i < T; i++) {
        w[i] = z[i] / (in->losses[i] - b[i] + FAMO_EPS);
        c += w[i];
    }
    for (size_t i = 0; i < T; i++)
        w[i] /= c;

    /* 3. P = L. */
    for (size_t i = 0; i < T; i++)
        prev[i] = in->losses[i];
    have_prev[0] = 1.0;
    return 0;
}

static size_t famo_work_size(size_t T) { return 2 * T; }

static void famo_describe(const lw_job *job, const double *state, lw_view_fn fn, void *ud)
{
    const lw_method_info *mi = &job->method->info;
    for (size_t i = 0; i < mi->n_state; i++)
        fn(ud, mi->state[i].name, lw_stc(job, state, i),
           mi->state[i].len == LW_LEN_T ? job->T : 1);
    double *z = malloc(job->T * sizeof(double));
    if (!z)
        return;
    lw_softmax(lw_stc(job, state, S_XI), job->T, 1.0, z);
    fn(ud, "task_mix", z, job->T);
    free(z);
}

static int famo_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    char f[48];
    snprintf(f, sizeof f, "state.%s", famo_state[idx].name);
    switch (idx) {
    case S_ADAM_V:
        for (size_t i = 0; i < job->T; i++)
            if (v[i] < 0)
                return lw_fail(err, LW_EINVAL, f, "%s[%zu] = %.15g must be >= 0", f, i, v[i]);
        return 0;
    case S_ADAM_T:
        if (!(v[0] >= 0 && floor(v[0]) == v[0]))
            return lw_fail(err, LW_EINVAL, f, "%s must be an integer >= 0", f);
        return 0;
    case S_HAVE_PREV:
        if (v[0] != 0 && v[0] != 1)
            return lw_fail(err, LW_EINVAL, f, "%s must be 0 or 1", f);
        return 0;
    default:
        return 0;
    }
}

const lw_method lw_method_famo = {
    .info =
        {
            .name = "famo",
            .summary = "FAMO: softmax logits stepped on each task's log-loss improvement.",
            .doc = "Cranial-XIX/FAMO, LibMTL FAMO, TorchJD scalarization.FAMO: w_i = (z_i/D_i) "
                   "/ sum_j z_j/D_j, z = softmax(xi), D_i = L_i - b_i + 1e-8 (weights sum to "
                   "1). The report for step t carries losses_after = step t-1's batch "
                   "re-evaluated after step t-1's model update; xi's Adam step for step t-1 "
                   "(gradient z * (d - z.d), d_i = log(D_i(t-1)) - log(D'_i)) then runs before "
                   "step t's weights, which gives the anchors' sequence of weights. Without "
                   "losses_after xi is not stepped. Adam is PyTorch 1.13's with betas "
                   "0.9/0.999, eps 1e-8, weight decay added to the gradient. losses and "
                   "losses_after must be above min_losses. Differences: the official code "
                   "also clips the model's gradient to norm 1 (the trainer's business); its "
                   "weight decay is 0.01 or 1e-5 depending on the file, ours defaults to "
                   "LibMTL/TorchJD's 1e-3.",
            .inputs = LW_IN_LOSSES,
            .optional_inputs = LW_IN_LOSSES_AFTER,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = famo_params,
            .n_params = sizeof famo_params / sizeof famo_params[0],
            .state = famo_state,
            .n_state = sizeof famo_state / sizeof famo_state[0],
        },
    .check_input = famo_check_input,
    .step = famo_step,
    .work_size = famo_work_size,
    .describe = famo_describe,
    .check_state = famo_check_state,
};
