/*
 * fairsolve.h -- the positive root of  G x = x^(-p)  (element-wise power,
 * p > 0, x > 0), shared by nash_mtl (p = 1) and fairgrad (p = 1/alpha).
 * Internal, not installed.
 *
 * x is the unique minimiser of the strictly convex
 *
 *     f(x) = 1/2 x'Gx - sum_i h(x_i),  h(x) = log x (p = 1),
 *                                       h(x) = x^(1-p) / (1-p) (p != 1),
 *
 * on x > 0 (grad f = Gx - x^(-p); Hessian G + diag(p x^(-p-1)), positive
 * definite for a PSD G). It exists whenever no non-zero z >= 0 has Gz = 0
 * (no non-negative combination of the gradients vanishes: for p = 1 that is
 * Nash-MTL's assumption of linearly independent gradients, relaxed).
 *
 * Solver: G is first divided by nf = ||G||_F (as the anchors do, for
 * conditioning; the root scales back exactly as x = y nf^(-1/(1+p))). From
 * the start point, rescaled along its ray to the best multiple, damped
 * Newton: Cholesky solve of the Hessian (LAPACK dposv), a step kept inside
 * x > 0 (at most 0.99 of the way to the boundary) and Armijo backtracking on
 * f, skipped once the Newton decrement is below LW_FAIR_FULL_DEC (there f's
 * decrease is below its own rounding for large x). It stops when every |x_i^p (Gx)_i - 1| is below
 * LW_FAIR_RTOL + 16 n eps x_i^p sum_j |G_ij| x_j (the second term is the
 * rounding of (Gx)_i itself), i.e. at rounding level: Newton converges
 * quadratically, so the few last iterations take the residual from 1e-3 to
 * 1e-15. No solution (f unbounded below: the iterates run away) is reported
 * after LW_FAIR_MAX_ITER iterations, after ten full Newton steps near the
 * root that fail to halve the residual, once some y_i exceeds LW_FAIR_YMAX in
 * the normalised problem, or when the rounding term above exceeds
 * LW_FAIR_MAX_NOISE (the cancellation in (Gx)_i is so large that the
 * residual means nothing: the gradients conflict to working precision).
 */
#ifndef LW_FAIRSOLVE_H
#define LW_FAIRSOLVE_H

#include <stddef.h>

#define LW_FAIR_RTOL 1e-12
#define LW_FAIR_MAX_ITER 100
#define LW_FAIR_YMAX 1e15
/* Newton decrement below which the full step is taken without line search. */
#define LW_FAIR_FULL_DEC 1e-3
/* Largest rounding error of x_i^p (Gx)_i we accept as "converged". */
#define LW_FAIR_MAX_NOISE 1e-3

enum {
    LW_FAIR_OK = 0,
    LW_FAIR_NOTPD = 1, /* a Hessian was not positive definite: G is not PSD */
    LW_FAIR_NOSOL = 2, /* no root (f unbounded below) or no convergence */
};

typedef struct lw_fair_info {
    size_t iters;  /* Newton iterations */
    double resid;  /* max_i |x_i^p (Gx)_i - 1| at the end */
} lw_fair_info;

/* Doubles of workspace for n unknowns. */
size_t lw_fair_work_size(size_t n);

/* Doubles of workspace of a nash_mtl or fairgrad step: H and Ha (T x T),
 * x0, xa and an index array (T each), then the solver's workspace or the
 * pseudo-inverse's, whichever is larger. */
size_t lw_fair_method_work_size(size_t T);

/* The tasks that have a gradient -- G_ii above 1e-20 of max_j G_jj (none
 * when every G_ii is 0) -- in idx, and H (T x T, row-major) restricted to
 * them in Ha (m x m). Returns m. */
size_t lw_fair_restrict(size_t T, const double *H, size_t *idx, double *Ha);

/* Solve (G + ridge ||G||_F I) x = x^(-p) for x > 0. G: n x n symmetric,
 * row-major. x0: start point (n numbers; NULL, or any entry not > 0 or not
 * finite: all ones), on the scale of x. Writes x only on LW_FAIR_OK.
 * info may be NULL. */
int lw_fair_solve(size_t n, const double *G, double p, double ridge, const double *x0,
                  double *x, double *ws, lw_fair_info *info);

#endif /* LW_FAIRSOLVE_H */
