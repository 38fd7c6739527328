/*
 * upgrad.c -- UPGrad, unconflicting projection of gradients (Quinton & Rey,
 * "Jacobian Descent for Multi-Objective Optimization", 2024), as TorchJD's
 * UPGradWeighting and LibMTL's UPGrad.py (a port of it) compute it.
 *
 * Why it is a combination of the original gradients computable from G.
 * With J the T x d matrix of rows g_i, UPGrad projects each row p_i g_i
 * (p = 1/T each, TorchJD's default preference) onto the dual cone
 * {x : J x >= 0} and sums the projections. By the paper's Proposition 1 the
 * projection of J'u is J'v with v = argmin v'Gv subject to v >= u: a QP in
 * T variables whose data is G alone. So the result is
 * sum_i J'v^(i) = J' c with c = sum_i v^(i), computed from G.
 *
 * As the anchors: G is first normalised by its trace (G / tr G, or the zero
 * matrix when tr G < norm_eps, an absolute threshold) and regularised
 * (+ reg_eps I); the projection is invariant to the scale of G, so this only
 * fixes what reg_eps means. The anchors call quadprog (Goldfarb-Idnani) per
 * projection; we solve the same strictly convex QPs exactly (KKT to 1e-9
 * relative; with reg_eps = 0 a ridge of 1e-12 of the mean diagonal keeps the
 * problem strictly convex, where quadprog would fail) with
 * lw_qp_dual_cone_each(): block principal pivoting for every task on one
 * principal pivot transform of the normalised G, which the T problems share,
 * each task's answer checked against G itself and re-solved from scratch
 * (lw_qp_dual_cone()'s method) if it falls short. A zero Gram (or
 * tr G < norm_eps) gives c = p = 1/T each.
 */
#include "../lw_internal.h"
#include "../qp.h"

enum { P_NORM_EPS, P_REG_EPS };

static const lw_param_info upgrad_params[] = {
    LW_QP_TORCHJD_PARAM_ROWS(P_NORM_EPS, P_REG_EPS, "TorchJD and LibMTL"),
};

/* Workspace: H (T*T) | p (T) | the QP driver's (its own size covers
 * lw_qp_ridge's T*T + O(T) too). */
static size_t upgrad_work_size(size_t T) { return T * T + T + lw_qp_each_work_size(T); }

static int upgrad_step(const lw_job *job, double *state, double *work, const lw_input *in,
                       double *c, lw_error *err)
{
    (void)state;
    const size_t T = job->T;
    double *H = work, *p = H + T * T, *qw = p + T;
    int rc = lw_qp_torchjd_prepare(T, in->gram, lw_pnum(job, P_NORM_EPS),
                                   lw_pnum(job, P_REG_EPS), H, p, qw, err);
    if (rc)
        return rc;
    return lw_qp_dual_cone_each(T, H, p, c, qw, NULL, err);
}

const lw_method lw_method_upgrad = {
    .info =
        {
            .name = "upgrad",
            .summary = "UPGrad: sum of each gradient's projection onto the dual cone of all.",
            .doc = "Quinton & Rey 2024, as TorchJD UPGradWeighting and LibMTL UPGrad: "
                   "c = sum_i argmin{v'Gv : v >= e_i/T} on G normalised by its trace "
                   "(norm_eps) plus reg_eps I. The anchors use quadprog; we solve the same "
                   "QPs exactly (active set). Coefficients on the original gradients; heads "
                   "keep their own gradient (LibMTL).",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = upgrad_params,
            .n_params = sizeof upgrad_params / sizeof upgrad_params[0],
        },
    .step = upgrad_step,
    .work_size = upgrad_work_size,
};
