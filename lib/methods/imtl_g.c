/*
 * imtl_g.c -- IMTL-G, the gradient half of Impartial Multi-Task Learning
 * (Liu et al., ICLR 2021), from the Gram matrix alone.
 *
 * Why G suffices. IMTL-G looks for d = sum_i alpha_i g_i with sum alpha = 1
 * whose projection on every unit gradient u_i = g_i / n_i is the same:
 * <d, u_i> = (G alpha)_i / n_i = kappa for all i, with n_i = sqrt(G_ii).
 * So G alpha = kappa n, alpha = kappa G^{-1} n, and kappa is fixed by
 * sum alpha = 1: alpha = v / sum(v) with v = G^{-1} n. Only G enters, and
 * the result is by construction a combination of the original g_i.
 * LibMTL (IMTL.py) and nash-mtl write the same linear system with the
 * differences D = [g_1 - g_j], U = [u_1 - u_j] (j >= 2):
 * alpha_{2..T} = g_1 U' (D U')^{-1}, alpha_1 = 1 - sum; every entry of U'
 * and D U' is an inner product, (g_1 U')_b = G_11/n_1 - G_1b/n_b and
 * (D U')_ab = G_11/n_1 - G_1b/n_b - G_a1/n_1 + G_ab/n_b. For an invertible
 * G both forms give the same alpha (methods-anchors.md 4.4).
 *
 * We follow TorchJD's IMTLGWeighting, which generalises this to linearly
 * dependent gradients: v = pinv(G) n, alpha = v / sum(v), and alpha = 0
 * when |sum(v)| < 1e-12 (no impartial direction). pinv is taken through
 * the eigen-decomposition of G (LAPACK dsyevr) with eigenvalues up to
 * T * DBL_EPSILON * lam_max treated as zero (torch.linalg.pinv's default
 * cut-off in float64), and with the PSD clamp of linalg.h: a negative
 * eigenvalue (float32 rounding) is dropped rather than inverted, and so is
 * any eigenvalue no larger than twice its size. A zero-gradient task has
 * n_i = 0 and a zero row in G, so it gets alpha_i = 0 (LibMTL would divide
 * by zero; nash-mtl adds 1e-8 I). alpha may be negative: that is the
 * method, not an error.
 */
#include "../linalg.h"
#include "../lw_internal.h"

#include <float.h>

/* |sum v| below this: return zeros (TorchJD). */
#define IMTLG_SUM_EPS 1e-12

static size_t imtl_g_work_size(size_t T) { return T * T + lw_imtl_g_work_size(T); }

size_t lw_imtl_g_work_size(size_t T) { return 2 * T + lw_la_psd_pinv_size(T); }

int lw_imtl_g_solve(size_t T, const double *H, double *w, double *work, lw_error *err)
{
    double *n = work, *v = n + T, *ws = v + T;
    for (size_t i = 0; i < T; i++)
        n[i] = H[i * T + i] > 0 ? sqrt(H[i * T + i]) : 0.0;
    if (lw_la_psd_pinv_solve(T, H, n, v, (double)T * DBL_EPSILON, NULL, ws))
        return lw_fail(err, LW_ENUMERIC, "gram", "eigen-decomposition of the Gram failed");
    double sum = 0.0;
    for (size_t i = 0; i < T; i++)
        sum += v[i];
    for (size_t i = 0; i < T; i++)
        w[i] = fabs(sum) < IMTLG_SUM_EPS ? 0.0 : v[i] / sum;
    return 0;
}

static int imtl_g_step(const lw_job *job, double *state, double *work, const lw_input *in,
                       double *w, lw_error *err)
{
    (void)state;
    double *H = work;
    lw_la_symmetrize(job->T, in->gram, H);
    return lw_imtl_g_solve(job->T, H, w, H + job->T * job->T, err);
}

const lw_method lw_method_imtl_g = {
    .info =
        {
            .name = "imtl_g",
            .summary = "IMTL-G: the combination with equal projections on all unit gradients.",
            .doc = "Impartial MTL, gradient part (Liu et al., ICLR 2021): coefficients alpha, "
                   "sum 1, such that sum_i alpha_i g_i has the same projection on every "
                   "g_j/||g_j||; alpha = v/sum(v), v = pinv(G) sqrt(diag G) (TorchJD "
                   "IMTLGWeighting; LibMTL and nash-mtl give the same alpha through a closed "
                   "form when G is invertible). Differences: linearly dependent gradients are "
                   "handled by the pseudo-inverse (LibMTL's inverse would fail); |sum v| < "
                   "1e-12 gives all zeros (TorchJD); a zero-gradient task gets 0; negative "
                   "eigenvalues of a slightly indefinite G are clamped to 0, not inverted. "
                   "Coefficients apply to the shared gradients; heads keep their own.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
        },
    .step = imtl_g_step,
    .work_size = imtl_g_work_size,
};
