/*
 * aligned_mtl.c -- Aligned-MTL (Senushkin et al., CVPR 2023) from the Gram
 * matrix (LibMTL Aligned_MTL.py; TorchJD AlignedMTLWeighting).
 *
 * Why G suffices. Write J for the T x P matrix whose rows are the g_i and
 * G = J J' = V diag(lam) V'. Aligned-MTL replaces J by the balanced
 * J_hat = sqrt(lam_min) V diag(lam^-1/2) V' J = B J (the rows of J made
 * orthogonal with equal norms sqrt(lam_min): J_hat J_hat' = lam_min on the
 * kept eigen-space), and the update is p' J_hat = (B p)' J for a preference
 * vector p. B is a function of G's eigen-decomposition only, so the shared
 * gradient is the combination c = B p of the original gradients.
 *
 * As the anchors: eigenvalues lam > tol = lam_max * T * eps are kept (eps
 * is torch.finfo().eps, the float32 epsilon 1.19e-7 under PyTorch's default
 * dtype: we keep that value, FLT_EPSILON, in float64 so the rank decisions
 * match the anchors'); scale = the smallest kept eigenvalue ("min", both
 * anchors), or TorchJD's "median" (torch.median: the lower middle value)
 * or "rmse" (the mean); B = sqrt(scale) V_r diag(lam_r^-1/2) V_r'.
 * LibMTL uses p = 1 (c = column sums of B), TorchJD p = 1/T: c differs by
 * exactly T; the `preference` parameter gives either (or any p).
 * Rank 0 (all gradients zero): B = I as TorchJD (LibMTL would fail).
 * A slightly indefinite G: an eigenvalue no larger than twice the most
 * negative one's size is dropped too (linalg.h), which only matters when G
 * is not a Gram of real vectors. A zero-gradient task gets c_i = 0 (its
 * row of V_r is zero).
 */
#include "../linalg.h"
#include "../lw_internal.h"

#include <float.h>

enum { P_PREFERENCE, P_SCALE_MODE };
enum { SCALE_MIN, SCALE_MEDIAN, SCALE_RMSE };

static const char *const scale_mode_choices[] = {"min", "median", "rmse", NULL};

static const lw_param_info aligned_params[] = {
    [P_PREFERENCE] = {"preference", LW_PARAM_VECTOR, 1.0, -1e300, 1e300, 0, 0, NULL,
                      "Preference vector p, c = B p: 1 each (default, LibMTL) or 1/T each "
                      "(TorchJD's default, exactly LibMTL's c / T)."},
    [P_SCALE_MODE] = {"scale_mode", LW_PARAM_CHOICE, SCALE_MIN, 0, 0, 0, 0, scale_mode_choices,
                      "Eigenvalue the balanced gradients are scaled to: \"min\" (both anchors' "
                      "default), \"median\" (lower median, TorchJD), \"rmse\" (mean, TorchJD; "
                      "the official code)."},
};

static size_t aligned_work_size(size_t T)
{
    return T * T /* H */ + T * T /* Z */ + T /* lam */ + T /* zp */ + lw_la_eig_size(T);
}

static int aligned_step(const lw_job *job, double *state, double *work, const lw_input *in,
                        double *w, lw_error *err)
{
    (void)state;
    const size_t T = job->T;
    const double *p = lw_pvec(job, P_PREFERENCE);
    double *H = work, *Z = H + T * T, *lam = Z + T * T, *zp = lam + T, *ws = zp + T;

    lw_la_symmetrize(T, in->gram, H);
    if (lw_la_eig(T, H, lam, Z, ws))
        return lw_fail(err, LW_ENUMERIC, "gram", "eigen-decomposition of the Gram failed");
    double lmax = lam[T - 1];
    /* The anchors' cut-off, raised to the noise floor of an indefinite G. */
    size_t rank = lw_la_psd_clamp(T, lam, (double)T * FLT_EPSILON, NULL);
    if (rank == 0 || !(lmax > 0)) {
        for (size_t i = 0; i < T; i++)
            w[i] = p[i];
        return 0;
    }
    /* Kept eigenvalues are lam[T-rank .. T-1] (ascending, clamped ones are
     * 0 and sit below them). */
    size_t lo = T - rank;
    double scale;
    switch (lw_pchoice(job, P_SCALE_MODE)) {
    case SCALE_MEDIAN:
        /* torch.median on the descending kept list: the lower of the two
         * middle values, i.e. ascending index lo + (rank - 1) / 2 counted
         * from the small end. */
        scale = lam[lo + (rank - 1) / 2];
        break;
    case SCALE_RMSE: {
        double s = 0.0;
        for (size_t k = T; k-- > lo;)
            s += lam[k];
        scale = s / (double)rank;
        break;
    }
    default: scale = lam[lo]; break;
    }
    double rs = sqrt(scale);
    for (size_t i = 0; i < T; i++)
        w[i] = 0.0;
    /* c = sqrt(scale) sum_k z_k (z_k' p) / sqrt(lam_k), largest first as
     * the anchors order them. */
    for (size_t k = T; k-- > lo;) {
        const double *z = Z + k * T;
        double zp_k = 0.0;
        for (size_t i = 0; i < T; i++)
            zp_k += z[i] * p[i];
        zp[k] = rs * zp_k / sqrt(lam[k]);
        for (size_t i = 0; i < T; i++)
            w[i] += zp[k] * z[i];
    }
    return 0;
}

const lw_method lw_method_aligned_mtl = {
    .info =
        {
            .name = "aligned_mtl",
            .summary = "Aligned-MTL: align the gradients' principal components (eigen-"
                       "decomposition of G).",
            .doc = "Senushkin et al., CVPR 2023; LibMTL Aligned_MTL.py and TorchJD "
                   "AlignedMTLWeighting: c = B p, B = sqrt(lam_min) V_r diag(lam_r^-1/2) V_r', "
                   "eigenvalues above lam_max * T * 1.19e-7 kept (the anchors' float32 "
                   "epsilon, kept in float64). preference 1 each = LibMTL (default); 1/T each "
                   "= TorchJD (c / T). scale_mode min (default) | median | rmse as TorchJD. "
                   "Differences: all-zero gradients give c = p (TorchJD; LibMTL fails); on a "
                   "slightly indefinite G eigenvalues up to twice the most negative one's size "
                   "are dropped as noise. Coefficients apply to the shared gradients; heads "
                   "keep their own.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = aligned_params,
            .n_params = sizeof aligned_params / sizeof aligned_params[0],
        },
    .step = aligned_step,
    .work_size = aligned_work_size,
};
