/*
 * gradvac.c -- Gradient Vaccine (Wang et al., ICLR 2021) on the whole
 * shared model, from the Gram matrix (LibMTL GradVac.py with
 * GradVac_group_type 0; SimplexLab/TorchJD GradVacWeighting).
 *
 * Why G suffices. Each modified gradient is tracked as its coefficient row:
 * g_i^PC = sum_k C_ik g_k, starting from C = I. Everything the algorithm
 * looks at is an inner product: <g_i^PC, g_j> = (C_i G)_j,
 * ||g_i^PC||^2 = C_i G C_i', ||g_j|| = sqrt(G_jj). Its only change to a
 * vector is g_i^PC += w g_j, i.e. C_ij += w. The result sum_i g_i^PC is the
 * combination with coefficients c_j = sum_i C_ij of the original g_j.
 *
 * The step, per task i and then per other task j in a random order:
 *   rho = <g_i^PC, g_j> / (||g_i^PC|| ||g_j|| + eps)
 *   if rho < rhat_ij:
 *     w = ||g_i^PC|| (rhat_ij sqrt(1 - rho^2) - rho sqrt(1 - rhat_ij^2))
 *         / (||g_j|| sqrt(1 - rhat_ij^2) + eps);   C_ij += w
 *   rhat_ij = (1 - beta) rhat_ij + beta rho     (rho measured before the fix)
 * with rhat = 0 at the start (the state, T x T). As TorchJD we clamp the
 * arguments of the square roots at 0 (LibMTL would give NaN when rounding
 * pushes |rho| above 1). A zero-gradient task j gives rho = 0 (LibMTL and
 * TorchJD alike), and with rhat_ij > 0 a large w on that zero vector: the
 * anchors do the same, and the combined gradient does not see it.
 *
 * Task order: LibMTL shuffles the other tasks with Python's random, TorchJD
 * with torch.randperm; ours comes from the job's generator so that every
 * rank and replay agree. For task i, start from the other tasks in
 * increasing index order (m = T - 1 of them) and for k = 0 .. m-2 swap
 * position k with position k + (r_k mod (m - k)), r_k =
 * lw_rand_u64(seed, step, 1 + i, k) (Fisher-Yates from the front; the
 * modulo bias is below m / 2^64).
 *
 * Only the whole-model group (LibMTL group type 0) is served: per-layer or
 * per-matrix groups would need one Gram per block and return a T x K
 * coefficient matrix. LibMTL's backward() returns ones (its accumulation of
 * w is commented out); we return the coefficients actually applied.
 */
#include "../linalg.h"
#include "../lw_internal.h"

#include <string.h>

enum { P_BETA, P_EPS };
enum { S_RHO };

static const lw_param_info gradvac_params[] = {
    [P_BETA] = {"beta", LW_PARAM_NUMBER, 0.5, 0.0, 1.0, 0, 0, NULL,
                "EMA rate of the cosine targets (0.5, LibMTL GradVac_beta and TorchJD)."},
    [P_EPS] = {"eps", LW_PARAM_NUMBER, 1e-8, 0.0, 1.0, 0, 0, NULL,
               "Added to the denominators (1e-8, LibMTL and TorchJD)."},
};

static const lw_state_info gradvac_state[] = {
    [S_RHO] = {"rho_hat", LW_LEN_TT,
               "EMA of the cosine between task i's (modified) gradient and task j's, row i "
               "column j; the targets the next step aligns to."},
};

static size_t gradvac_work_size(size_t T) { return 2 * T * T + 3 * T; }

/* The order in which task i visits the others (see the file comment). */
static void task_order(const lw_job *job, uint64_t step, size_t i, size_t *order)
{
    const size_t T = job->T;
    size_t m = 0;
    for (size_t j = 0; j < T; j++)
        if (j != i)
            order[m++] = j;
    for (size_t k = 0; k + 1 < m; k++) {
        uint64_t r = lw_rand_u64(job->seed, step, 1 + (uint64_t)i, (uint64_t)k);
        size_t pick = k + (size_t)(r % (uint64_t)(m - k));
        size_t t = order[k];
        order[k] = order[pick];
        order[pick] = t;
    }
}

static int gradvac_step(const lw_job *job, double *state, double *work, const lw_input *in,
                        double *w, lw_error *err)
{
    (void)err;
    const size_t T = job->T;
    const double beta = lw_pnum(job, P_BETA), eps = lw_pnum(job, P_EPS);
    double *rho_hat = lw_st(job, state, S_RHO);
    double *G = work, *C = G + T * T, *cG = C + T * T, *nrm = cG + T;
    size_t *order = (size_t *)(nrm + T);
    _Static_assert(sizeof(size_t) <= sizeof(double), "order[] is carved from doubles");

    lw_la_symmetrize(T, in->gram, G);
    memset(C, 0, T * T * sizeof(double));
    for (size_t j = 0; j < T; j++) {
        double d = G[j * T + j];
        nrm[j] = d > 0 ? sqrt(d) : 0.0;
    }
    for (size_t i = 0; i < T; i++) {
        double *Ci = C + i * T;
        Ci[i] = 1.0;
        /* cG = C_i G, the inner products of g_i^PC with every g_j. */
        for (size_t j = 0; j < T; j++)
            cG[j] = G[i * T + j];
        task_order(job, in->step, i, order);
        for (size_t k = 0; k + 1 < T; k++) {
            size_t j = order[k];
            double ni2 = 0.0;
            for (size_t l = 0; l < T; l++)
                ni2 += cG[l] * Ci[l];
            double ni = ni2 > 0 ? sqrt(ni2) : 0.0, nj = nrm[j];
            double rho = cG[j] / (ni * nj + eps);
            double rh = rho_hat[i * T + j];
            if (rho < rh) {
                double a = 1.0 - rho * rho, b = 1.0 - rh * rh;
                double sa = a > 0 ? sqrt(a) : 0.0, sb = b > 0 ? sqrt(b) : 0.0;
                double wij = ni * (rh * sa - rho * sb) / (nj * sb + eps);
                Ci[j] += wij;
                for (size_t l = 0; l < T; l++)
                    cG[l] += wij * G[j * T + l];
            }
            rho_hat[i * T + j] = (1.0 - beta) * rh + beta * rho;
        }
    }
    for (size_t j = 0; j < T; j++) {
        double s = 0.0;
        for (size_t i = 0; i < T; i++)
            s += C[i * T + j];
        w[j] = s;
    }
    return 0;
}

static int gradvac_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    (void)idx;
    for (size_t k = 0; k < job->T * job->T; k++)
        if (!(v[k] >= -1.0 && v[k] <= 1.0))
            return lw_fail(err, LW_EINVAL, "state.rho_hat",
                           "state.rho_hat[%zu] = %.15g: a cosine must be in [-1, 1]", k, v[k]);
    return 0;
}

const lw_method lw_method_gradvac = {
    .info =
        {
            .name = "gradvac",
            .summary = "Gradient Vaccine: push pairwise cosines up to their running targets.",
            .doc = "Wang et al., ICLR 2021; LibMTL GradVac (group type 0, whole model) and "
                   "TorchJD GradVac. For each task i and each other task j in a random order: "
                   "if the cosine of i's modified gradient with g_j is below the EMA target "
                   "rho_hat_ij, add the multiple of g_j that lifts it to the target; then "
                   "rho_hat_ij = (1-beta) rho_hat_ij + beta cosine. Result: sum of the "
                   "modified gradients. Differences: task order from the job's generator at "
                   "(seed, step, 1 + i) (anchors: Python/torch RNG); square-root arguments "
                   "clamped at 0 (TorchJD; LibMTL can give NaN); only the whole-model group; "
                   "LibMTL returns ones as its weights, we return the applied coefficients. "
                   "Heads keep their own gradients.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = gradvac_params,
            .n_params = sizeof gradvac_params / sizeof gradvac_params[0],
            .state = gradvac_state,
            .n_state = sizeof gradvac_state / sizeof gradvac_state[0],
        },
    .step = gradvac_step,
    .work_size = gradvac_work_size,
    .check_state = gradvac_check_state,
};
