/*
 * mgda.c -- MGDA, the min-norm point of the convex hull of the (normalised)
 * task gradients (Sener & Koltun, NeurIPS 2018), as LibMTL's MGDA.py
 * applies it, solved exactly.
 *
 * Why it is a combination of the original gradients computable from G.
 * LibMTL normalises g^_i = g_i / gamma_i with gamma_i = 1 ("none"), ||g_i||
 * ("l2"), L_i ("loss") or L_i ||g_i|| ("loss+"), finds
 * alpha = argmin over the simplex of ||sum_i alpha_i g^_i||^2 and writes
 * sum_i alpha_i g^_i into the shared gradient. Since
 * ||sum alpha_i g^_i||^2 = alpha' G^ alpha with G^_ij = G_ij / (gamma_i
 * gamma_j) and ||g_i|| = sqrt(G_ii), the problem needs only G (and the
 * losses), and the result is sum_i c_i g_i with c_i = alpha_i / gamma_i.
 *
 * Solver. LibMTL (like isl-org and nash-mtl) runs a Frank-Wolfe-like loop
 * (250 iterations, stop at a change below 1e-5) started from the best pair,
 * and for T = 2 clips the pair weight to [0.001, 0.999]; TorchJD runs plain
 * Frank-Wolfe. We solve the QP exactly (lib/qp.c: active set, KKT to 1e-9
 * relative, after a ridge of 1e-12 of the mean diagonal), so we can differ
 * from LibMTL by its solver tolerance (its reference file carries a loose
 * tolerance) and we return exact vertices (e.g. (1, 0)) where it returns
 * 0.999/0.001.
 *
 * Zero gradients. With "none" and "loss" a zero gradient is a point of the
 * hull, so the min-norm point is 0 (alpha = e_i, combined gradient 0): that
 * is MGDA's answer and the limit of nearby inputs, so we keep it (LibMTL
 * gives nearly the same, 0.999 on the zero gradient). With "l2" and "loss+"
 * LibMTL divides by ||g_i|| = 0 and produces NaN; we instead leave a task
 * whose squared norm is at most 1e-20 times the largest one out of the
 * problem and give it c_i = 0 (its gradient contributes nothing either way);
 * if every task is left out, c = 0.
 */
#include "../lw_internal.h"
#include "../qp.h"

enum { P_NORMALIZATION };
enum { NORM_NONE, NORM_L2, NORM_LOSS, NORM_LOSS_PLUS };

/* A squared norm at most this times the largest one counts as zero for the
 * "l2" and "loss+" normalisations. */
#define MGDA_ZERO_REL 1e-20

static const char *const normalization_choices[] = {"none", "l2", "loss", "loss+", NULL};

static const lw_param_info mgda_params[] = {
    [P_NORMALIZATION] = {"normalization", LW_PARAM_CHOICE, NORM_NONE, 0, 0, 0, 0,
                         normalization_choices,
                         "Gradient normaliser gamma_i before the min-norm solve, undone on the "
                         "coefficients (c_i = alpha_i / gamma_i, LibMTL): \"none\" 1 (LibMTL "
                         "default), \"l2\" ||g_i||, \"loss\" L_i, \"loss+\" L_i ||g_i|| "
                         "(isl-org sample config). \"loss\" and \"loss+\" need losses > 0."},
};

static int uses_losses(const lw_job *job)
{
    int n = lw_pchoice(job, P_NORMALIZATION);
    return n == NORM_LOSS || n == NORM_LOSS_PLUS;
}

static unsigned mgda_needs(const lw_job *job) { return uses_losses(job) ? LW_IN_LOSSES : 0; }

static int mgda_check_input(const lw_job *job, const double *state, const lw_input *in,
                            lw_error *err)
{
    (void)state;
    return uses_losses(job) ? lw_check_positive_losses(in, job->T, err) : 0;
}

/* Workspace: H (T*T) | gamma (T) | y (T) | idx (T size_t) | qp. */
static size_t mgda_work_size(size_t T) { return T * T + 3 * T + lw_qp_work_size(T); }

static int mgda_step(const lw_job *job, double *state, double *work, const lw_input *in,
                     double *c, lw_error *err)
{
    (void)state;
    const size_t T = job->T;
    const double *G = in->gram;
    const int norm = lw_pchoice(job, P_NORMALIZATION);
    double *H = work, *gam = H + T * T, *y = gam + T;
    size_t *idx = (size_t *)(y + T);
    double *qw = y + 2 * T;

    double dmax = 0.0;
    for (size_t i = 0; i < T; i++)
        if (G[i * T + i] > dmax)
            dmax = G[i * T + i];
    size_t m = 0;
    for (size_t i = 0; i < T; i++) {
        double gii = G[i * T + i] > 0 ? G[i * T + i] : 0.0;
        c[i] = 0.0;
        switch (norm) {
        case NORM_L2: gam[i] = sqrt(gii); break;
        case NORM_LOSS: gam[i] = in->losses[i]; break;
        case NORM_LOSS_PLUS: gam[i] = in->losses[i] * sqrt(gii); break;
        default: gam[i] = 1.0; break;
        }
        if ((norm == NORM_L2 || norm == NORM_LOSS_PLUS) && !(gii > MGDA_ZERO_REL * dmax))
            continue;
        idx[m++] = i;
    }
    if (m == 0)
        return 0;

    /* G^ on the kept tasks, symmetrised, scaled by its largest diagonal (the
     * minimiser does not change). */
    double hmax = 0.0;
    for (size_t a = 0; a < m; a++) {
        size_t i = idx[a];
        for (size_t b = 0; b < m; b++) {
            size_t j = idx[b];
            H[a * m + b] = 0.5 * (G[i * T + j] + G[j * T + i]) / (gam[i] * gam[j]);
        }
        if (H[a * m + a] > hmax)
            hmax = H[a * m + a];
    }
    if (hmax > 0)
        for (size_t k = 0; k < m * m; k++)
            H[k] /= hmax;

    double ridge;
    int rc = lw_qp_ridge(m, H, qw, &ridge, err);
    if (!rc)
        rc = lw_qp_simplex_lb(m, H, NULL, y, qw, NULL, err);
    if (rc)
        return rc;
    for (size_t a = 0; a < m; a++)
        c[idx[a]] = y[a] / gam[idx[a]];
    return 0;
}

const lw_method lw_method_mgda = {
    .info =
        {
            .name = "mgda",
            .summary = "MGDA: the min-norm point of the convex hull of the task gradients.",
            .doc = "Sener & Koltun, NeurIPS 2018, as LibMTL MGDA: alpha = argmin over the "
                   "simplex of ||sum alpha_i g_i/gamma_i||^2, solved exactly (active set), "
                   "coefficients c_i = alpha_i/gamma_i on the original gradients; heads keep "
                   "their own gradient (LibMTL). LibMTL's Frank-Wolfe solver stops at a 1e-5 "
                   "change and clips two-task answers to [0.001, 0.999]; TorchJD's MGDA is "
                   "normalization \"none\". With \"l2\"/\"loss+\" a zero-gradient task "
                   "(where LibMTL divides by zero) is left out with c_i = 0.",
            .inputs = LW_IN_GRAM,
            .optional_inputs = LW_IN_LOSSES,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = mgda_params,
            .n_params = sizeof mgda_params / sizeof mgda_params[0],
        },
    .needs = mgda_needs,
    .check_input = mgda_check_input,
    .step = mgda_step,
    .work_size = mgda_work_size,
};
