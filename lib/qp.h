/*
 * qp.h -- exact solvers for the small convex quadratic programs of the
 * Gram-based methods (lib/qp.c). Internal, not installed.
 *
 *   lw_qp_simplex_lb  min w'Hw  s.t. sum w = 1, w >= c      (MGDA: c = 0;
 *                                                            PE-LTR "exact")
 *   lw_qp_dual_cone   min v'Hv  s.t. v >= u                 (DualProj)
 *   lw_qp_dual_cone_each  sum_i argmin{v'Hv : v >= p_i e_i}  (UPGrad: n such
 *                     problems on one H, pivoting on a shared principal pivot
 *                     transform of H; see the end of qp.c)
 *
 * Both reduce to  min 1/2 x'Hx + q'x  over x >= 0 (and sum x = 1 for the
 * first), solved by lw_qp_solve(): block principal pivoting first (a few
 * iterations whatever T is), and, should it give up, the primal active-set
 * method (Nocedal & Wright, Numerical Optimization, 2nd ed., algorithm
 * 16.3), which is finite for a strictly convex problem. Each iteration of
 * either solves the equality-constrained problem on the current free set
 * with one LAPACK call (dposv, or dsysv on the bordered KKT matrix when
 * sum x = 1 is imposed); no factorisation is written by hand. Both stop only when the KKT conditions hold:
 *
 *   primal: x >= 0 exactly (and |sum x - 1| at rounding level);
 *   stationarity on the free set and dual feasibility on the active set:
 *   lambda_i = (Hx + q)_i + nu >= -tol where x_i = 0, |(Hx + q)_i + nu| <= tol
 *   where x_i > 0 (nu = 0 without the equality), with
 *   tol = LW_QP_KKT_RTOL * (max_i H_ii * max(1, max_i |x_i|) + max_i |q_i|).
 *
 * Iteration bounds: lw_qp_bpp_max_iter(n) = 30 rounds of block pivoting,
 * then lw_qp_max_iter(n) = 10n + 100 iterations of the primal method, which
 * ends with LW_ENUMERIC if it is ever reached (never seen in the tests).
 *
 * Strict convexity comes from lw_qp_ridge(): H += delta I with the smallest
 * delta = rung * (mean diagonal), rung = 1e-12, 1e-10, ..., 1e-2, 1, for
 * which LAPACK's Cholesky of the whole matrix succeeds. On a positive
 * definite Gram that is 1e-12 of the mean squared norm, far below any
 * tolerance we test against; on a rank-deficient Gram it picks, among the
 * many minimisers with the same combined gradient, the one of least
 * Euclidean norm (in the limit); on a Gram made slightly indefinite by
 * float32 rounding it lifts the negative eigen-directions (the rung grows
 * until they are covered). A matrix that still fails at the last rung is not
 * a Gram of real vectors: LW_EINVAL on field "gram".
 *
 * Nothing here allocates: every function takes a workspace of
 * lw_qp_work_size(n) doubles.
 */
#ifndef LW_QP_H
#define LW_QP_H

#include "lw_internal.h"

/* KKT tolerance, relative to the problem's scale (see above). */
#define LW_QP_KKT_RTOL 1e-9

/* Iteration bounds for n variables: primal active set 10 n + 100; block
 * principal pivoting 30 (then the primal method takes over). */
size_t lw_qp_max_iter(size_t n);
size_t lw_qp_bpp_max_iter(size_t n);

/* Doubles of workspace any function below needs for n variables. */
size_t lw_qp_work_size(size_t n);

typedef struct lw_qp_info {
    size_t iters;  /* iterations, one subproblem solve each */
    double kkt;    /* largest KKT violation at the solution, divided by the scale */
    int fallback;  /* 1: block pivoting gave up and the primal method finished */
} lw_qp_info;

/* TorchJD's preparation of a Gramian for its dual-cone projections:
 * H = (G + G')/2 / tr(G), or 0 when tr(G) < norm_eps (absolute, as TorchJD),
 * then H += reg_eps I. */
void lw_qp_torchjd_gram(size_t n, const double *G, double norm_eps, double reg_eps, double *H);

/* Add the smallest ridge of the ladder that makes H (symmetric, n x n,
 * row-major, modified in place) numerically positive definite; *ridge gets
 * the delta added. Fails with LW_EINVAL (field "gram") when even the last
 * rung does not suffice, or when H holds non-finite numbers. */
int lw_qp_ridge(size_t n, double *H, double *work, double *ridge, lw_error *err);

/* The start of a TorchJD dual-cone step (upgrad, dualproj): H from G as
 * lw_qp_torchjd_gram(), then lw_qp_ridge() on it (work: lw_qp_ridge()'s
 * workspace), and the preference p = 1/n each. */
int lw_qp_torchjd_prepare(size_t n, const double *G, double norm_eps, double reg_eps, double *H,
                          double *p, double *work, lw_error *err);

/* The parameter rows of lw_qp_torchjd_gram()'s norm_eps and reg_eps, under
 * the method's enum indices; `anchors` (a string literal) names whose
 * default they follow. */
#define LW_QP_TORCHJD_PARAM_ROWS(i_norm_eps, i_reg_eps, anchors)                                 \
    [i_norm_eps] = {"norm_eps", LW_PARAM_NUMBER, 1e-4, 0.0, 1e300, 0, 0, NULL,                   \
                    "G is divided by its trace, or replaced by 0 when the trace is below "       \
                    "norm_eps (absolute; " anchors " default 1e-4)."},                           \
    [i_reg_eps] = {"reg_eps", LW_PARAM_NUMBER, 1e-4, 0.0, 1e300, 0, 0, NULL,                     \
                   "Added to the diagonal of the normalised G (" anchors " default 1e-4)."}

/* min w'Hw subject to sum w = 1 and w >= c (c NULL: c = 0; sum c < 1).
 * H must have passed lw_qp_ridge(). Writes w. */
int lw_qp_simplex_lb(size_t n, const double *H, const double *c, double *w, double *work,
                     lw_qp_info *info, lw_error *err);

/* min v'Hv subject to v >= u. H must have passed lw_qp_ridge(). Writes v. */
int lw_qp_dual_cone(size_t n, const double *H, const double *u, double *v, double *work,
                    lw_qp_info *info, lw_error *err);

/* UPGrad's n problems on one matrix: vsum = sum_i argmin{v'Hv : v >= p_i e_i}
 * (p_i >= 0), the same as summing lw_qp_dual_cone(n, H, p_i e_i) over i, in
 * about a fifth of the time at n = 128. H must have passed lw_qp_ridge().
 * Every solution meets the same KKT test as lw_qp_dual_cone()'s; a task the
 * shared-transform pivoting cannot settle (or every task, when n < 6 or H is
 * nearly singular) is solved from scratch exactly as lw_qp_dual_cone()
 * would. info (may be NULL): iterations summed over the tasks, the largest
 * KKT residual, and in `fallback` the number of tasks solved from scratch.
 * Needs lw_qp_each_work_size(n) doubles of workspace (>= lw_qp_work_size(n),
 * so the same area also serves lw_qp_ridge()). */
size_t lw_qp_each_work_size(size_t n);
int lw_qp_dual_cone_each(size_t n, const double *H, const double *p, double *vsum, double *work,
                         lw_qp_info *info, lw_error *err);

/* The solver underneath: min 1/2 x'Hx + q'x subject to x >= 0 and, when
 * eq != 0, sum x = 1. algo: LW_QP_AUTO (block pivoting, then the primal
 * method if needed) or LW_QP_PRIMAL (the primal method alone; tests compare
 * the two). Writes x. */
enum { LW_QP_AUTO = 0, LW_QP_PRIMAL = 1 };
int lw_qp_solve(size_t n, const double *H, const double *q, int eq, int algo, double *x,
                double *work, lw_qp_info *info, lw_error *err);

#endif /* LW_QP_H */
