/*
 * nash_mtl.c -- Nash-MTL (Navon et al., ICML 2022) from the Gram matrix
 * (AvivNavon/nash-mtl NashMTL; LibMTL Nash_MTL.py; TorchJD NashMTL).
 *
 * Why G suffices. Nash-MTL's update is d = sum_i alpha_i g_i with alpha > 0
 * the Nash bargaining solution, characterised by alpha_i <d, g_i> = 1 for
 * every i, i.e. alpha_i (G alpha)_i = 1, i.e. G alpha = 1/alpha
 * (element-wise). That is a T-dimensional equation in G only. The anchors'
 * gradient clipping (clip_grad_norm_ of the shared parameters to max_norm)
 * scales the shared gradient by max_norm / (||d|| + 1e-6) when that is
 * below 1, and ||d|| = sqrt(alpha' G alpha): again G only. So the shared
 * gradient is the combination c = alpha * min(1, max_norm / (||d|| + 1e-6))
 * of the original gradients.
 *
 * Solver. The anchors normalise G by nf = ||G||_F and run up to
 * optim_niter = 20 rounds of a convex-concave procedure, each a cvxpy/ECOS
 * problem (variable alpha >= 0, constraints alpha_i (G alpha)_i >= 1 on the
 * raw G, objective linearised at the previous alpha), warm-started from the
 * previous step's alpha (ones at first), stopping when the iterate moves by
 * less than 1e-6 or ||Gn alpha - 1/alpha|| < 1e-3. Its fixed point is
 * G alpha = 1/alpha on the raw G. We solve that equation to rounding
 * level instead (fairsolve.h: damped Newton on the strictly convex
 * 1/2 a'Ga - sum log a_i, on G / nf, warm-started from the previous alpha),
 * so where the anchor stops early -- after 20 rounds, on its looser test, or
 * when ECOS reports an inaccurate solution -- its alpha differs from ours
 * by that solver error. We also do not round alpha to float32 as LibMTL
 * does before back-propagating.
 *
 * No root exists when some non-zero alpha >= 0 has G alpha = 0 (exactly
 * conflicting gradients: a non-negative combination vanishes). The anchors'
 * ECOS then reports the problem infeasible and they keep the previous alpha;
 * so do we, and count it in the state ("fallbacks"). A task whose gradient
 * is zero (G_ii <= 1e-20 max_j G_jj, i.e. a norm 1e-10 below the largest)
 * makes the anchors' problem infeasible for every task; we leave it out of
 * the solve and give it alpha_i = 0 instead (methods-anchors.md 7). A G
 * whose Hessians turn out not positive definite (slightly indefinite from
 * float32 rounding) is replaced by its PSD projection and solved again.
 *
 * update_weights_every k: the anchors solve on steps 0, k, 2k, ... (counted
 * in decided steps) and reuse the previous alpha in between, still clipping
 * with the current G.
 *
 * Heads: the anchors back-propagate sum_i alpha_i L_i (the UNCLIPPED alpha)
 * through the heads, then clip only the shared gradient. Our output is the
 * shared coefficients (clipped); the unclipped alpha is the state array
 * "alpha", for a trainer that wants to weight its heads as the anchors do.
 */
#include "../fairsolve.h"
#include "../linalg.h"
#include "../lw_internal.h"

#include <string.h>

/* torch.nn.utils.clip_grad_norm_'s guard. */
#define CLIP_EPS 1e-6

enum { P_MAX_NORM, P_UPDATE_EVERY };
enum { S_ALPHA, S_FALLBACKS };

static const lw_param_info nash_params[] = {
    [P_MAX_NORM] = {"max_norm", LW_PARAM_NUMBER, 1.0, 0.0, 1e300, 0, 0, NULL,
                    "Clip the shared gradient sum c_i g_i to this norm, as the anchors' "
                    "clip_grad_norm_ (1.0, all anchors); 0 disables clipping."},
    [P_UPDATE_EVERY] = {"update_weights_every", LW_PARAM_INT, 1, 1, 1e9, 0, 0, NULL,
                        "Solve for alpha every k-th decided step and reuse it in between (1, "
                        "all anchors)."},
};

static const lw_state_info nash_state[] = {
    [S_ALPHA] = {"alpha", LW_LEN_T,
                 "The last solved alpha (G alpha = 1/alpha), unclipped: the anchors' weights, "
                 "and the warm start of the next solve. Ones before the first."},
    [S_FALLBACKS] = {"fallbacks", LW_LEN_1,
                     "Solves that found no root (exactly conflicting gradients) and kept the "
                     "previous alpha."},
};

static void nash_init(const lw_job *job, double *state)
{
    double *a = lw_st(job, state, S_ALPHA);
    for (size_t i = 0; i < job->T; i++)
        a[i] = 1.0;
}

static int nash_step(const lw_job *job, double *state, double *work, const lw_input *in,
                     double *w, lw_error *err)
{
    (void)err;
    const size_t T = job->T;
    double *alpha = lw_st(job, state, S_ALPHA);
    double *H = work, *Ha = H + T * T, *x0 = Ha + T * T, *xa = x0 + T, *idxd = xa + T,
           *ws = idxd + T;
    size_t *idx = (size_t *)idxd;

    lw_la_symmetrize(T, in->gram, H);
    uint64_t every = (uint64_t)lw_pnum(job, P_UPDATE_EVERY);
    if (job->steps_done % every == 0) {
        size_t m = lw_fair_restrict(T, H, idx, Ha);
        int rc = LW_FAIR_NOSOL;
        if (m > 0) {
            for (size_t a = 0; a < m; a++)
                x0[a] = alpha[idx[a]];
            rc = lw_fair_solve(m, Ha, 1.0, 0.0, x0, xa, ws, NULL);
            if (rc == LW_FAIR_NOTPD) {
                if (lw_la_psd_project(m, Ha, ws) == 0)
                    rc = lw_fair_solve(m, Ha, 1.0, 0.0, x0, xa, ws, NULL);
            }
        }
        if (rc == LW_FAIR_OK) {
            for (size_t i = 0; i < T; i++)
                alpha[i] = 0.0;
            for (size_t a = 0; a < m; a++)
                alpha[idx[a]] = xa[a];
        } else {
            lw_st(job, state, S_FALLBACKS)[0] += 1.0;
        }
    }
    for (size_t i = 0; i < T; i++)
        w[i] = alpha[i];
    double mx = lw_pnum(job, P_MAX_NORM);
    if (mx > 0) {
        double q = lw_la_quad(T, H, alpha, alpha);
        double nrm = q > 0 ? sqrt(q) : 0.0;
        double coef = mx / (nrm + CLIP_EPS);
        if (coef < 1.0)
            for (size_t i = 0; i < T; i++)
                w[i] = alpha[i] * coef;
    }
    return 0;
}

static int nash_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    if (idx == S_ALPHA) {
        for (size_t i = 0; i < job->T; i++)
            if (!(v[i] >= 0))
                return lw_fail(err, LW_EINVAL, "state.alpha",
                               "state.alpha[%zu] = %.15g must be >= 0", i, v[i]);
    } else if (idx == S_FALLBACKS) {
        if (!(v[0] >= 0 && floor(v[0]) == v[0]))
            return lw_fail(err, LW_EINVAL, "state.fallbacks",
                           "state.fallbacks must be an integer >= 0");
    }
    return 0;
}

const lw_method lw_method_nash_mtl = {
    .info =
        {
            .name = "nash_mtl",
            .summary = "Nash-MTL: the bargaining solution G alpha = 1/alpha, clipped.",
            .doc = "Navon et al., ICML 2022; nash-mtl NashMTL, LibMTL Nash_MTL, TorchJD NashMTL. "
                   "alpha > 0 with alpha_i (G alpha)_i = 1 on the raw Gram; shared "
                   "coefficients alpha * min(1, max_norm / (sqrt(alpha'G alpha) + 1e-6)) (the "
                   "anchors' clip_grad_norm_). Differences: alpha is solved to rounding level "
                   "by damped Newton (the anchors run at most 20 cvxpy/ECOS convex-concave "
                   "rounds, so they can stop short of the root); alpha is not rounded to "
                   "float32; a zero-gradient task is left out with alpha_i = 0 (the anchors' "
                   "problem becomes infeasible). Exactly conflicting gradients have no root: "
                   "the previous alpha is kept, as the anchors do, and counted in state "
                   "fallbacks. Heads: the anchors weight head i by the unclipped alpha_i "
                   "(state alpha); the output covers the shared gradient.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = nash_params,
            .n_params = sizeof nash_params / sizeof nash_params[0],
            .state = nash_state,
            .n_state = sizeof nash_state / sizeof nash_state[0],
        },
    .init = nash_init,
    .step = nash_step,
    .work_size = lw_fair_method_work_size,
    .check_state = nash_check_state,
};
