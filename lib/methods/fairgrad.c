/*
 * fairgrad.c -- FairGrad (Ban & Ji, ICML 2024) from the Gram matrix
 * (LibMTL FairGrad.py; TorchJD FairGradWeighting).
 *
 * Why G suffices. FairGrad's update is d = sum_i x_i g_i with x > 0 solving
 * the alpha-fair allocation's optimality condition <g_i, d> = x_i^(-1/alpha)
 * for every i: G x = x^(-1/alpha) element-wise, a T-dimensional equation in
 * G only (the anchors hand exactly this residual, on G = grads grads', to
 * scipy's least_squares). The trainer back-propagates sum x_i L_i, so the
 * shared gradient is the combination c = x of the original gradients (no
 * clipping).
 *
 * Solver. LibMTL and TorchJD run scipy.optimize.least_squares on the
 * residual G x - x^(-1/alpha) with bounds x >= 0 from x = 1/T, to scipy's
 * default tolerances (about 1e-8 relative), and LibMTL rounds x to float32
 * before back-propagating. We find the root to rounding level with the
 * damped Newton of fairsolve.h (on the strictly convex
 * 1/2 x'Gx - sum h(x_i), h' = x^(-1/alpha), G normalised by ||G||_F for
 * conditioning), from the same start 1/T: the answers agree up to the
 * anchors' solver tolerance.
 *
 * Edge cases. alpha = 0 gives x = 1/T (TorchJD; the alpha-fair objective is
 * then the plain sum). A zero-gradient task (G_ii <= 1e-20 max_j G_jj) is
 * left out with x_i = 0: its equation has no solution, the anchors' solver
 * would push x_i to its bound. When no root exists at all (a non-negative
 * combination of the gradients vanishes: exactly conflicting tasks; scipy
 * then stops wherever its iteration limit leaves it), we solve instead with
 * G + 1e-6 ||G||_F I, whose root always exists and tends to the true one as
 * the conflict is relaxed, so the output stays finite and continuous. A G
 * that is not PSD (float32 rounding) is replaced by its PSD projection.
 *
 * Heads: the anchors weight head i by x_i (they back-propagate sum x_i L_i);
 * the output covers the shared gradient, which is the same x.
 */
#include "../fairsolve.h"
#include "../linalg.h"
#include "../lw_internal.h"

/* Ridge (relative to ||G||_F) of the fallback solve when no root exists. */
#define FAIR_FALLBACK_RIDGE 1e-6

enum { P_ALPHA };

static const lw_param_info fairgrad_params[] = {
    [P_ALPHA] = {"alpha", LW_PARAM_NUMBER, 1.0, 0.0, 1e6, 0, 0, NULL,
                 "Fairness exponent: solve G x = x^(-1/alpha) (1.0, LibMTL FairGrad_alpha; "
                 "1 is proportional fairness, the Nash-MTL equation without clipping). 0 gives "
                 "x = 1/T (TorchJD)."},
};

static int fairgrad_step(const lw_job *job, double *state, double *work, const lw_input *in,
                         double *w, lw_error *err)
{
    (void)state;
    const size_t T = job->T;
    const double alpha = lw_pnum(job, P_ALPHA);
    double *H = work, *Ha = H + T * T, *x0 = Ha + T * T, *xa = x0 + T, *idxd = xa + T,
           *ws = idxd + T;
    size_t *idx = (size_t *)idxd;

    if (alpha == 0.0) {
        for (size_t i = 0; i < T; i++)
            w[i] = 1.0 / (double)T;
        return 0;
    }
    const double p = 1.0 / alpha;
    lw_la_symmetrize(T, in->gram, H);
    size_t m = lw_fair_restrict(T, H, idx, Ha);
    for (size_t i = 0; i < T; i++)
        w[i] = 0.0;
    if (m == 0)
        return 0; /* every gradient is zero: nothing to combine */
    for (size_t a = 0; a < m; a++)
        x0[a] = 1.0 / (double)T;
    int rc = lw_fair_solve(m, Ha, p, 0.0, x0, xa, ws, NULL);
    if (rc == LW_FAIR_NOTPD && lw_la_psd_project(m, Ha, ws) == 0)
        rc = lw_fair_solve(m, Ha, p, 0.0, x0, xa, ws, NULL);
    if (rc != LW_FAIR_OK)
        rc = lw_fair_solve(m, Ha, p, FAIR_FALLBACK_RIDGE, x0, xa, ws, NULL);
    if (rc != LW_FAIR_OK)
        return lw_fail(err, LW_ENUMERIC, "gram",
                       "fairgrad: no root of G x = x^(-1/alpha) even with a ridge");
    for (size_t a = 0; a < m; a++)
        w[idx[a]] = xa[a];
    return 0;
}

const lw_method lw_method_fairgrad = {
    .info =
        {
            .name = "fairgrad",
            .summary = "FairGrad: alpha-fair allocation, G x = x^(-1/alpha).",
            .doc = "Ban & Ji, ICML 2024; LibMTL FairGrad and TorchJD FairGradWeighting: x > 0 "
                   "with G x = x^(-1/alpha), coefficients c = x (no clipping). Differences: the "
                   "root is found to rounding level by damped Newton (the anchors use scipy "
                   "least_squares, about 1e-8 relative, and LibMTL rounds x to float32); a "
                   "zero-gradient task gets 0; exactly conflicting gradients (no root) are "
                   "solved with G + 1e-6 ||G||_F I instead; alpha = 0 gives 1/T (TorchJD). "
                   "Heads: the anchors weight head i by x_i; the output covers the shared "
                   "gradient.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = fairgrad_params,
            .n_params = sizeof fairgrad_params / sizeof fairgrad_params[0],
        },
    .step = fairgrad_step,
    .work_size = lw_fair_method_work_size,
};
