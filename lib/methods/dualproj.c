/*
 * dualproj.c -- DualProj: the mean gradient projected onto the dual cone of
 * the task gradients (the projection of GEM, Lopez-Paz & Ranzato 2017), as
 * TorchJD's DualProjWeighting computes it.
 *
 * Why it is a combination of the original gradients computable from G.
 * With J the T x d matrix of rows g_i, DualProj projects J'u (u = 1/T each,
 * TorchJD's default preference: the mean gradient) onto the dual cone
 * {x : J x >= 0}. That projection is J'v with v = argmin v'Gv subject to
 * v >= u (Quinton & Rey 2024, Proposition 1): a QP in T variables whose data
 * is G alone, so c = v.
 *
 * As TorchJD: G is normalised by its trace (or replaced by the zero matrix
 * when tr G < norm_eps, absolute) and regularised with + reg_eps I before the
 * QP. TorchJD calls quadprog; we solve the same strictly convex QP exactly
 * with lib/qp.c's active-set method (KKT to 1e-9 relative; with reg_eps = 0
 * a ridge of 1e-12 of the mean diagonal keeps it strictly convex). A zero
 * Gram gives c = 1/T each.
 */
#include "../lw_internal.h"
#include "../qp.h"

enum { P_NORM_EPS, P_REG_EPS };

static const lw_param_info dualproj_params[] = {
    LW_QP_TORCHJD_PARAM_ROWS(P_NORM_EPS, P_REG_EPS, "TorchJD"),
};

/* Workspace: H (T*T) | u (T) | qp. */
static size_t dualproj_work_size(size_t T) { return T * T + T + lw_qp_work_size(T); }

static int dualproj_step(const lw_job *job, double *state, double *work, const lw_input *in,
                         double *c, lw_error *err)
{
    (void)state;
    const size_t T = job->T;
    double *H = work, *u = H + T * T, *qw = u + T;
    int rc = lw_qp_torchjd_prepare(T, in->gram, lw_pnum(job, P_NORM_EPS),
                                   lw_pnum(job, P_REG_EPS), H, u, qw, err);
    if (rc)
        return rc;
    return lw_qp_dual_cone(T, H, u, c, qw, NULL, err);
}

const lw_method lw_method_dualproj = {
    .info =
        {
            .name = "dualproj",
            .summary = "DualProj: the mean gradient projected onto the dual cone of all.",
            .doc = "As TorchJD DualProjWeighting: c = argmin{v'Gv : v >= 1/T} on G normalised "
                   "by its trace (norm_eps) plus reg_eps I. TorchJD uses quadprog; we solve "
                   "the same QP exactly (active set). Coefficients on the original gradients.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = dualproj_params,
            .n_params = sizeof dualproj_params / sizeof dualproj_params[0],
        },
    .step = dualproj_step,
    .work_size = dualproj_work_size,
};
