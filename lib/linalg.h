/*
 * linalg.h -- the dense linear algebra the Gram-based methods need, as thin
 * wrappers over LAPACKE (Debian's liblapacke; lib/linalg.c). Internal, not
 * installed.
 *
 * Every matrix here is small (n <= LW_MAX_TASKS + 1), square, symmetric and
 * stored as n*n doubles. Because it is symmetric, row-major and
 * column-major storage are the same array, so we always call LAPACK in
 * column-major order: LAPACKE's row-major path would allocate a transposed
 * copy, and nothing on the step path may allocate. Eigenvectors come back
 * column-major: eigenvector k is the contiguous run Z[k*n .. k*n + n - 1].
 *
 * No factorisation is written by hand: eigen-decomposition is dsyevr (MRRR),
 * the positive definite solve is dposv (Cholesky), the symmetric indefinite
 * solve is dsysv (Bunch-Kaufman). Least squares / rank-deficient solves go
 * through the eigen-decomposition (a pseudo-inverse with a stated cut-off),
 * which for a symmetric matrix is the same as an SVD-based least-squares
 * solve and needs no second routine.
 *
 * Workspace: every function takes `ws` of at least the size its
 * lw_la_*_size() returns, in doubles. Integer scratch LAPACK needs (pivots,
 * dsyevr's iwork and isuppz) is carved from the end of that same block, so
 * a method only ever sizes one double array at job creation. The sizes are
 * fixed formulas (LAPACK's documented minimums raised to cover a block size
 * of 64), not workspace queries, so they never depend on the call.
 */
#ifndef LW_LINALG_H
#define LW_LINALG_H

#include <stddef.h>

/* Largest n*n any of these functions accepts: beyond this the int
 * arithmetic of LAPACK's 32-bit interface could overflow. */
#define LW_LA_MAX_N 4096

/* H = (G + G')/2 for an n x n array (H may be G). */
void lw_la_symmetrize(size_t n, const double *G, double *H);

/* y = A x for a symmetric (or any row-major) n x n A; fixed order. */
void lw_la_matvec(size_t n, const double *A, const double *x, double *y);

/* x' A y, summed in a fixed order. */
double lw_la_quad(size_t n, const double *A, const double *x, const double *y);

/* ---- eigen-decomposition ---- */

/* Doubles of workspace lw_la_eig needs for an n x n matrix. */
size_t lw_la_eig_size(size_t n);

/* All eigenvalues of the symmetric n x n matrix A in ascending order (lam,
 * n numbers) and, when Z is not NULL, orthonormal eigenvectors (Z, n*n, see
 * above). A is not modified (it is copied into ws). Returns 0, or LW_ENUMERIC
 * if LAPACK reports a failure to converge. */
int lw_la_eig(size_t n, const double *A, double *lam, double *Z, double *ws);

/* PSD clamp of ascending eigenvalues: every lam[k] <= floor is set to 0,
 * where floor = max(rel * lam_max, 2 * |lam_min| if lam_min < 0). The
 * second term treats the size of the most negative eigenvalue as the noise
 * level of the matrix (a Gram of real vectors has none; float32 rounding
 * makes them), so eigenvalues no larger than twice that noise are not
 * trusted either. Returns the number of eigenvalues kept (0 when lam_max
 * <= 0, i.e. a zero matrix); *floor_out (may be NULL) gets the floor. */
size_t lw_la_psd_clamp(size_t n, double *lam, double rel, double *floor_out);

/* x = pinv(A+) b for a symmetric n x n A, where A+ is A with its
 * eigenvalues clamped by lw_la_psd_clamp(rel): for a positive definite A
 * whose eigenvalues all exceed rel * lam_max this is A^{-1} b. The rank kept
 * goes to *rank (may be NULL). ws: lw_la_psd_pinv_size(n). */
size_t lw_la_psd_pinv_size(size_t n);
int lw_la_psd_pinv_solve(size_t n, const double *A, const double *b, double *x, double rel,
                         size_t *rank, double *ws);

/* Replace the symmetric n x n A by its PSD projection V max(lam, 0) V'
 * (in place; ws: lw_la_psd_pinv_size(n)). */
int lw_la_psd_project(size_t n, double *A, double *ws);

/* x = pinv(A) b for a symmetric, possibly indefinite, n x n A: eigenvalues
 * with |lam| <= rel * max |lam| are treated as zero. For a consistent
 * singular system this is its minimum-norm solution; otherwise the
 * minimum-norm least-squares solution. ws: lw_la_psd_pinv_size(n). */
int lw_la_sym_pinv_solve(size_t n, const double *A, const double *b, double *x, double rel,
                         double *ws);

/* ---- linear solves ---- */

/* Solve A X = B for symmetric positive definite A (n x n, overwritten by
 * its Cholesky factor) and nrhs right-hand sides stored one after the
 * other in B (overwritten by X). Returns 0, or 1 if A is not (numerically)
 * positive definite (then A and B hold garbage). No workspace. */
int lw_la_chol_solve(size_t n, size_t nrhs, double *A, double *B);

/* Solve A X = B for symmetric, possibly indefinite, nonsingular A (n x n,
 * overwritten), nrhs right-hand sides as above. Returns 0, or 1 if A is
 * exactly singular (a zero pivot). ws: lw_la_sym_solve_size(n). */
size_t lw_la_sym_solve_size(size_t n);
int lw_la_sym_solve(size_t n, size_t nrhs, double *A, double *B, double *ws);

#endif /* LW_LINALG_H */
