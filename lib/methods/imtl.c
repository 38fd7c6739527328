/*
 * imtl.c -- LibMTL's IMTL: IMTL-L's learnable loss scales combined with
 * IMTL-G on the scaled gradients (LibMTL/weighting/IMTL.py).
 *
 * Why G suffices. LibMTL replaces each loss by exp(s_i) L_i - s_i, so the
 * per-task gradient it works with on the shared parameters is
 * gs_i = e_i g_i, e_i = exp(s_i) (s does not depend on the shared
 * parameters). The Gram of the gs_i is Gs = diag(e) G diag(e), computable
 * from G and the state. IMTL-G on Gs (see imtl_g.c: alpha = v / sum(v),
 * v = Gs^{-1} sqrt(diag Gs)) gives the shared gradient
 * sum_i alpha_i gs_i = sum_i (alpha_i e_i) g_i: a combination of the
 * original gradients with coefficients c_i = alpha_i exp(s_i).
 *
 * The loss half: backward() on exp(s_i) L_i - s_i also leaves
 * d/ds_i = exp(s_i) L_i - 1 in s's gradient, and LibMTL's trainer then
 * steps s with the model's optimizer. Here s has its own PyTorch-exact Adam
 * or SGD (lw_adam_step), stepped once per decided step after the
 * coefficients were computed from s before the step (as LibMTL: backward,
 * then optimizer.step()). With s = 0 (the initial state) the result is
 * plain IMTL-G.
 *
 * Heads: LibMTL back-propagates each scaled loss with weight 1, so head i
 * gets exp(s_i) grad L_i; our output only covers the shared coefficients
 * (a trainer that wants LibMTL's heads scales head i's loss by exp(s_i),
 * shown as "loss_scale" by describe).
 *
 * Differences from LibMTL: its explicit inverse of D U' becomes the
 * pseudo-inverse of imtl_g (same alpha whenever the inverse exists;
 * linearly dependent or zero gradients no longer give NaN); s has its own
 * optimizer (LibMTL: the model's, by default Adam lr 1e-4 with weight decay
 * 1e-5 and the model's LR schedule); defaults follow imtl_l here.
 */
#include "../linalg.h"
#include "../lw_internal.h"

#include <stdlib.h>


enum { P_INIT, P_OPTIMIZER, P_LR, P_BETA1, P_BETA2, P_EPS, P_WEIGHT_DECAY };
enum { S_S, S_ADAM_M, S_ADAM_V, S_ADAM_T };

static const lw_opt_params opt_params = {P_OPTIMIZER, P_LR,  P_BETA1,
                                         P_BETA2,     P_EPS, P_WEIGHT_DECAY};
static const lw_opt_state opt_state = {S_ADAM_M, S_ADAM_V, S_ADAM_T};

static const lw_param_info imtl_params[] = {
    [P_INIT] = {"init", LW_PARAM_NUMBER, 0.0, -100.0, 100.0, 0, 0, NULL,
                "Initial s_i (0 as LibMTL's loss_scale)."},
    [P_OPTIMIZER] = LW_OPT_PARAM_OPTIMIZER(
        "\"adam\": torch.optim.Adam (LibMTL steps s with the model's Adam); "
        "\"sgd\": torch.optim.SGD without momentum."),
    [P_LR] = LW_OPT_PARAM_LR(
        "Learning rate of s (as imtl_l; LibMTL uses the model's, default 1e-4)."),
    LW_OPT_PARAM_ADAM_ROWS(P_BETA1, P_BETA2, P_EPS),
    [P_WEIGHT_DECAY] = LW_OPT_PARAM_WEIGHT_DECAY(
        "L2 decay added to the gradient of s, as PyTorch does (0; LibMTL's "
        "default model optimizer would apply 1e-5)."),
};

static const lw_state_info imtl_state[] = {
    [S_S] = {"s", LW_LEN_T, "The learned log loss scale per task (LibMTL loss_scale)."},
    LW_OPT_STATE_ROWS(S_ADAM_M, S_ADAM_V, S_ADAM_T),
};

static void imtl_init(const lw_job *job, double *state)
{
    double *s = lw_st(job, state, S_S);
    for (size_t i = 0; i < job->T; i++)
        s[i] = lw_pnum(job, P_INIT);
}

static size_t imtl_work_size(size_t T) { return T * T + 2 * T + lw_imtl_g_work_size(T); }

static int imtl_step(const lw_job *job, double *state, double *work, const lw_input *in,
                     double *w, lw_error *err)
{
    const size_t T = job->T;
    double *s = lw_st(job, state, S_S);
    double *H = work, *e = H + T * T, *g = e + T, *ws = g + T;

    for (size_t i = 0; i < T; i++)
        e[i] = exp(s[i]);
    lw_la_symmetrize(T, in->gram, H);
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < T; j++)
            H[i * T + j] *= e[i] * e[j];
    /* IMTL-G on the scaled gradients exp(s_i) g_i; on the originals the
     * coefficients are alpha_i exp(s_i). */
    int rc = lw_imtl_g_solve(T, H, w, ws, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < T; i++)
        w[i] = w[i] * e[i];

    for (size_t i = 0; i < T; i++)
        g[i] = e[i] * in->losses[i] - 1.0;
    lw_opt_step(job, &opt_params, &opt_state, state, T, s, g);
    return 0;
}

static void imtl_describe(const lw_job *job, const double *state, lw_view_fn fn, void *ud)
{
    const size_t T = job->T;
    const double *s = lw_stc(job, state, S_S);
    double *v = malloc(T * sizeof(double));
    if (!v)
        return;
    for (size_t i = 0; i < T; i++)
        v[i] = exp(s[i]);
    fn(ud, "s", s, T);
    fn(ud, "loss_scale", v, T);
    free(v);
}

static int imtl_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    if (idx == S_S)
        for (size_t i = 0; i < job->T; i++)
            if (!(fabs(v[i]) <= 700.0))
                return lw_fail(err, LW_EINVAL, "state.s",
                               "state.s[%zu] = %.15g: exp(s) must stay finite (|s| <= 700)", i,
                               v[i]);
    return lw_opt_check_state(job, &opt_state, idx, v, err);
}

const lw_method lw_method_imtl = {
    .info =
        {
            .name = "imtl",
            .summary = "LibMTL IMTL: learned loss scales exp(s_i) with IMTL-G on the scaled "
                       "gradients.",
            .doc = "LibMTL IMTL.py (IMTL-L + IMTL-G): the losses become exp(s_i) L_i - s_i, "
                   "IMTL-G runs on the scaled gradients exp(s_i) g_i, so the coefficient on "
                   "the original g_i is alpha_i exp(s_i); then s takes one optimizer step on "
                   "exp(s_i) L_i - 1 (PyTorch 1.13 Adam or SGD). Coefficients come from s "
                   "before the step. Needs losses and the Gram. Differences: IMTL-G through "
                   "the pseudo-inverse as imtl_g (LibMTL's inverse fails on dependent or zero "
                   "gradients); s has its own optimizer (LibMTL: the model's, default Adam lr "
                   "1e-4, weight decay 1e-5). Heads: LibMTL gives head i exp(s_i) grad L_i "
                   "(describe shows loss_scale = exp(s)); the coefficients cover the shared "
                   "gradient only.",
            .inputs = LW_IN_GRAM | LW_IN_LOSSES,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = imtl_params,
            .n_params = sizeof imtl_params / sizeof imtl_params[0],
            .state = imtl_state,
            .n_state = sizeof imtl_state / sizeof imtl_state[0],
        },
    .init = imtl_init,
    .step = imtl_step,
    .work_size = imtl_work_size,
    .describe = imtl_describe,
    .check_state = imtl_check_state,
};
