/*
 * pareto.c -- PE-LTR's Pareto-efficient weights with lower bounds (Lin et
 * al., RecSys 2019; seeds 001 and 002), as the widely copied reference
 * snippet (tomtang110/multi-task_loss_optimizer, Pareto_fn.py: pareto_step
 * and ASM) computes them, or solved exactly.
 *
 * The problem: min ||sum_i w_i g_i||^2 = w'Gw subject to sum w = 1 and
 * w_i >= c_i (c = the `c` parameter, sum c < 1).
 *
 * Why it is a combination of the original gradients computable from G.
 * The objective and the constraints involve the gradients only through
 * w'Gw, and the result is used as sum_i w_i g_i (the seeds back-propagate
 * sum_i w_i L_i). Both solvers below read only G and c.
 *
 * solver "pe_ltr" (default; the paper's two steps, as the snippet does them):
 *  1. Relaxation. Drop w >= c, keep the equality; with w^ = w - c the KKT
 *     system is M [w^; mu] = z, M = [[G, 1], [1', 0]], z = [-G c; 1 - sum c].
 *     The snippet takes the least-squares solution pinv(M'M) M' z, which is
 *     M^+ z, the minimum-norm least-squares solution (equal to M^-1 z when M
 *     is invertible). We scale G by its mean diagonal first (the solution
 *     does not change when M is invertible; when it is singular this makes
 *     the pseudo-inverse's cut-off relative to G's own scale instead of to
 *     the 1 entries), then solve with LAPACK's dsysv when dsycon estimates
 *     M well conditioned (reciprocal condition > 1e-7), else with dgelss
 *     (SVD, minimum norm) cutting singular values below sqrt(1e-15) times
 *     the largest: numpy's pinv cut-off 1e-15 applies to M'M, whose singular
 *     values are the squares of M's.
 *  2. Projection. w~ = argmin ||x - w^|| over {x >= 0, sum x = 1 - sum c};
 *     the snippet starts SLSQP from NNLS, we compute the exact Euclidean
 *     projection onto the scaled simplex (Michelot's finite algorithm).
 *     Then w = w~ + c.
 * This is not the constrained minimum in general (the projection is
 * Euclidean, not in the G metric), which is why "exact" exists.
 *
 * solver "exact": the true constrained minimum, min w'Gw over
 * {sum w = 1, w >= c}, by lib/qp.c's active-set solver (KKT to 1e-9
 * relative, after a ridge of 1e-12 of the mean diagonal). With c = 0 it is
 * MGDA (normalization "none").
 *
 * The seeds apply the result as loss weights (heads weighted too); we report
 * coefficients on the shared gradients like every Gram method: a trainer
 * that wants the seeds' behaviour back-propagates sum_i w_i L_i.
 */
#include "../lw_internal.h"
#include "../linalg.h"
#include "../qp.h"

#include <lapacke.h>
#include <string.h>

enum { P_SOLVER, P_C };
enum { SOLVER_PE_LTR, SOLVER_EXACT };

/* dsysv's answer is used when dsycon's reciprocal condition estimate of M
 * exceeds this; otherwise the SVD path. */
#define PARETO_RCOND_MIN 1e-7
/* Relative singular value cut-off of the SVD path: sqrt(1e-15) (numpy pinv
 * on M'M). */
#define PARETO_SVD_RCOND 3.1622776601683794e-8
/* LAPACK workspace per row of M. */
#define PARETO_LWORK_PER_N 64

static const char *const solver_choices[] = {"pe_ltr", "exact", NULL};

static const lw_param_info pareto_params[] = {
    [P_SOLVER] = {"solver", LW_PARAM_CHOICE, SOLVER_PE_LTR, 0, 0, 0, 0, solver_choices,
                  "\"pe_ltr\": the paper's relaxation (KKT of the equality-constrained "
                  "problem) then Euclidean projection of w - c onto the scaled simplex, as "
                  "seeds 001/002 and the reference snippet; \"exact\": the true constrained "
                  "minimum (active set)."},
    [P_C] = {"c", LW_PARAM_VECTOR, 0.0, 0.0, 1.0, 0, 1, NULL,
             "Lower bounds c_i >= 0 on the weights, sum c < 1 (default 0 each; with c = 0 "
             "\"exact\" is MGDA)."},
};

static int pareto_check_spec(const lw_job *job, lw_error *err)
{
    const double *c = lw_pvec(job, P_C);
    double s = 0.0;
    for (size_t i = 0; i < job->T; i++)
        s += c[i];
    if (!(s < 1.0))
        return lw_fail(err, LW_EINVAL, "params.c",
                       "params.c sums to %.17g: the lower bounds must sum to less than 1", s);
    return 0;
}

/* Workspace (N = T + 1):
 *   M N*N | M2 N*N | z N | z2 N | sv N | lwork 64 N | dwork 2N | ipiv N | iwork N
 *   | y T | H T*T | qp work (T). */
static size_t pareto_work_size(size_t T)
{
    size_t N = T + 1;
    return 2 * N * N + (9 + PARETO_LWORK_PER_N) * N + T + T * T + lw_qp_work_size(T);
}

/* x = Euclidean projection of v onto {x >= 0, sum x = s}, s > 0, by
 * Michelot's algorithm (1986): theta = (sum of the kept v_i - s) / (number
 * kept), drop every v_i <= theta, repeat until nothing is dropped; then
 * x = max(v - theta, 0). Exact, at most n rounds, no sorting (glibc's qsort
 * may allocate); keep: n flags of scratch. */
static void project_simplex(size_t n, const double *v, double s, double *x, double *keep)
{
    double theta = 0.0;
    for (size_t i = 0; i < n; i++)
        keep[i] = 1.0;
    for (size_t round = 0; round <= n; round++) {
        double sum = 0.0;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (keep[i] != 0.0) {
                sum += v[i];
                k++;
            }
        }
        theta = (sum - s) / (double)k;
        int dropped = 0;
        for (size_t i = 0; i < n; i++) {
            if (keep[i] != 0.0 && !(v[i] > theta)) {
                keep[i] = 0.0;
                dropped = 1;
            }
        }
        if (!dropped)
            break;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = v[i] > theta ? v[i] - theta : 0.0;
}

static int pe_ltr(const lw_job *job, const double *G, double *work, double *w, lw_error *err)
{
    const size_t T = job->T, N = T + 1;
    const double *c = lw_pvec(job, P_C);
    double *M = work, *M2 = M + N * N, *z = M2 + N * N, *z2 = z + N, *sv = z2 + N;
    double *lw = sv + N, *dwork = lw + PARETO_LWORK_PER_N * N;
    lapack_int *ipiv = (lapack_int *)(dwork + 2 * N), *iwork = (lapack_int *)(dwork + 3 * N);
    double *y = dwork + 4 * N;
    const lapack_int n = (lapack_int)N, lwork = (lapack_int)(PARETO_LWORK_PER_N * N);

    double tr = 0.0, csum = 0.0;
    for (size_t i = 0; i < T; i++) {
        tr += G[i * T + i];
        csum += c[i];
    }
    double sc = tr / (double)T;
    if (!(sc > 0) || !isfinite(sc))
        sc = 1.0;
    /* M column-major = row-major (symmetric). */
    for (size_t i = 0; i < T; i++) {
        for (size_t j = 0; j < T; j++)
            M[i * N + j] = 0.5 * (G[i * T + j] + G[j * T + i]) / sc;
        M[i * N + T] = 1.0;
        M[T * N + i] = 1.0;
    }
    M[T * N + T] = 0.0;
    for (size_t i = 0; i < T; i++) {
        double t = 0.0;
        for (size_t j = 0; j < T; j++)
            t += M[i * N + j] * c[j];
        z[i] = -t;
    }
    z[T] = 1.0 - csum;
    memcpy(M2, M, N * N * sizeof(double));
    memcpy(z2, z, N * sizeof(double));

    double anorm = LAPACKE_dlansy_work(LAPACK_COL_MAJOR, '1', 'L', n, M, n, dwork);
    double rcond = 0.0;
    lapack_int info = LAPACKE_dsysv_work(LAPACK_COL_MAJOR, 'L', n, 1, M, n, ipiv, z, n, lw, lwork);
    if (info == 0)
        info = LAPACKE_dsycon_work(LAPACK_COL_MAJOR, 'L', n, M, n, ipiv, anorm, &rcond, dwork,
                                   iwork);
    if (info != 0 || !(rcond > PARETO_RCOND_MIN)) {
        lapack_int rank = 0;
        memcpy(z, z2, N * sizeof(double));
        /* The minimum workspace (5 N) keeps dgelss on its unblocked paths:
         * with more, its level-3 BLAS calls make OpenBLAS allocate. */
        info = LAPACKE_dgelss_work(LAPACK_COL_MAJOR, n, n, 1, M2, n, z, n, sv, PARETO_SVD_RCOND,
                                   &rank, lw, (lapack_int)(5 * N));
        if (info != 0)
            return lw_fail(err, LW_ENUMERIC, "",
                           "pareto: the SVD of the KKT matrix did not converge (LAPACK info %d)",
                           (int)info);
    }
    project_simplex(T, z, 1.0 - csum, y, z2);
    for (size_t i = 0; i < T; i++)
        w[i] = y[i] + c[i];
    return 0;
}

static int exact(const lw_job *job, const double *G, double *work, double *w, lw_error *err)
{
    const size_t T = job->T, N = T + 1;
    double *H = work + 2 * N * N + (9 + PARETO_LWORK_PER_N) * N + T;
    double *qw = H + T * T;
    lw_la_symmetrize(T, G, H);
    double hmax = 0.0, ridge;
    for (size_t i = 0; i < T; i++)
        if (H[i * T + i] > hmax)
            hmax = H[i * T + i];
    if (hmax > 0)
        for (size_t k = 0; k < T * T; k++)
            H[k] /= hmax;
    int rc = lw_qp_ridge(T, H, qw, &ridge, err);
    if (rc)
        return rc;
    return lw_qp_simplex_lb(T, H, lw_pvec(job, P_C), w, qw, NULL, err);
}

static int pareto_step(const lw_job *job, double *state, double *work, const lw_input *in,
                       double *w, lw_error *err)
{
    (void)state;
    if (lw_pchoice(job, P_SOLVER) == SOLVER_EXACT)
        return exact(job, in->gram, work, w, err);
    return pe_ltr(job, in->gram, work, w, err);
}

const lw_method lw_method_pareto = {
    .info =
        {
            .name = "pareto",
            .summary = "PE-LTR: min-norm weights with lower bounds c (seeds 001, 002).",
            .doc = "Lin et al., RecSys 2019: min ||sum w_i g_i||^2 with sum w = 1, w_i >= c_i. "
                   "solver \"pe_ltr\" follows the paper and its reference snippet "
                   "(tomtang110 Pareto_fn.py): the equality-constrained KKT solution "
                   "(pseudo-inverse when singular) minus c, projected exactly onto the "
                   "simplex of sum 1 - sum c (the snippet uses NNLS + SLSQP), plus c. "
                   "solver \"exact\" is the true constrained minimum. The seeds apply w as "
                   "loss weights (heads weighted); we return them as coefficients on the "
                   "shared gradients.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = pareto_params,
            .n_params = sizeof pareto_params / sizeof pareto_params[0],
        },
    .check_spec = pareto_check_spec,
    .step = pareto_step,
    .work_size = pareto_work_size,
};
