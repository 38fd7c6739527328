/*
 * linalg.c -- LAPACKE wrappers for the Gram-based methods (see linalg.h).
 *
 * What is ours here is only bookkeeping: copying, carving the workspace,
 * clamping eigenvalues and applying a pseudo-inverse through an
 * eigen-decomposition. The factorisations are LAPACK's.
 */
#include "linalg.h"

#include "lw_internal.h"

#include <lapacke.h>
#include <string.h>

/* Block size the fixed workspace formulas allow for (LAPACK's ilaenv
 * returns 32 or 64 for these routines; a smaller workspace only makes
 * LAPACK use a smaller block, never a wrong answer). */
#define LA_NB 64

/* Doubles needed to hold k lapack_ints. */
static size_t ints_as_doubles(size_t k)
{
    return (k * sizeof(lapack_int) + sizeof(double) - 1) / sizeof(double);
}

void lw_la_symmetrize(size_t n, const double *G, double *H)
{
    for (size_t i = 0; i < n; i++) {
        H[i * n + i] = G[i * n + i];
        for (size_t j = i + 1; j < n; j++) {
            double v = 0.5 * (G[i * n + j] + G[j * n + i]);
            H[i * n + j] = v;
            H[j * n + i] = v;
        }
    }
}

void lw_la_matvec(size_t n, const double *A, const double *x, double *y)
{
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += A[i * n + j] * x[j];
        y[i] = s;
    }
}

double lw_la_quad(size_t n, const double *A, const double *x, const double *y)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = 0.0;
        for (size_t j = 0; j < n; j++)
            r += A[i * n + j] * y[j];
        s += x[i] * r;
    }
    return s;
}

/* ---- eigen-decomposition ---- */

/* dsyevr: LWORK >= 26 n (optimal (NB + 6) n), LIWORK >= 10 n, ISUPPZ 2 n. */
static size_t eig_lwork(size_t n) { return (LA_NB + 26) * (n ? n : 1); }
static size_t eig_liwork(size_t n) { return 10 * (n ? n : 1); }

size_t lw_la_eig_size(size_t n)
{
    /* copy of A, eigenvectors when the caller wants values only, work, ints */
    return 2 * n * n + eig_lwork(n) + ints_as_doubles(eig_liwork(n) + 2 * n + 2);
}

int lw_la_eig(size_t n, const double *A, double *lam, double *Z, double *ws)
{
    if (n == 0)
        return 0;
    if (n > LW_LA_MAX_N)
        return LW_EINVAL;
    double *a = ws;
    double *z = Z ? Z : ws + n * n;
    double *work = ws + 2 * n * n;
    size_t lwork = eig_lwork(n);
    lapack_int *iwork = (lapack_int *)(work + lwork);
    lapack_int *isuppz = iwork + eig_liwork(n);
    lapack_int m = 0;
    memcpy(a, A, n * n * sizeof(double));
    lapack_int info = LAPACKE_dsyevr_work(LAPACK_COL_MAJOR, Z ? 'V' : 'N', 'A', 'U',
                                          (lapack_int)n, a, (lapack_int)n, 0.0, 0.0, 0, 0, 0.0,
                                          &m, lam, z, (lapack_int)n, isuppz, work,
                                          (lapack_int)lwork, iwork, (lapack_int)eig_liwork(n));
    if (info != 0 || (size_t)m != n)
        return LW_ENUMERIC;
    return 0;
}

size_t lw_la_psd_clamp(size_t n, double *lam, double rel, double *floor_out)
{
    if (n == 0)
        return 0;
    double lmax = lam[n - 1], lmin = lam[0];
    double floor = rel * (lmax > 0 ? lmax : 0.0);
    if (lmin < 0 && 2.0 * -lmin > floor)
        floor = 2.0 * -lmin;
    size_t kept = 0;
    for (size_t k = 0; k < n; k++) {
        if (lam[k] <= floor || !(lmax > 0))
            lam[k] = 0.0;
        else
            kept++;
    }
    if (floor_out)
        *floor_out = floor;
    return kept;
}

size_t lw_la_psd_pinv_size(size_t n) { return n * n + n + lw_la_eig_size(n); }

/* x = sum over k with lam[k] != 0 of (z_k . b / lam[k]) z_k: the solve through
 * an eigen-decomposition A = Z diag(lam) Z', eigen-directions with lam 0
 * left out. */
static void eig_solve(size_t n, const double *Z, const double *lam, const double *b, double *x)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.0;
    for (size_t k = 0; k < n; k++) {
        if (lam[k] == 0.0)
            continue;
        const double *z = Z + k * n;
        double c = 0.0;
        for (size_t i = 0; i < n; i++)
            c += z[i] * b[i];
        c /= lam[k];
        for (size_t i = 0; i < n; i++)
            x[i] += c * z[i];
    }
}

int lw_la_psd_pinv_solve(size_t n, const double *A, const double *b, double *x, double rel,
                         size_t *rank, double *ws)
{
    double *Z = ws, *lam = ws + n * n, *ews = lam + n;
    int rc = lw_la_eig(n, A, lam, Z, ews);
    if (rc)
        return rc;
    size_t r = lw_la_psd_clamp(n, lam, rel, NULL);
    if (rank)
        *rank = r;
    eig_solve(n, Z, lam, b, x);
    return 0;
}

int lw_la_psd_project(size_t n, double *A, double *ws)
{
    double *Z = ws, *lam = ws + n * n, *ews = lam + n;
    int rc = lw_la_eig(n, A, lam, Z, ews);
    if (rc)
        return rc;
    for (size_t i = 0; i < n * n; i++)
        A[i] = 0.0;
    for (size_t k = 0; k < n; k++) {
        if (!(lam[k] > 0))
            continue;
        const double *z = Z + k * n;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++)
                A[i * n + j] += lam[k] * z[i] * z[j];
    }
    lw_la_symmetrize(n, A, A);
    return 0;
}

int lw_la_sym_pinv_solve(size_t n, const double *A, const double *b, double *x, double rel,
                         double *ws)
{
    double *Z = ws, *lam = ws + n * n, *ews = lam + n;
    int rc = lw_la_eig(n, A, lam, Z, ews);
    if (rc)
        return rc;
    double amax = 0.0;
    for (size_t k = 0; k < n; k++)
        if (fabs(lam[k]) > amax)
            amax = fabs(lam[k]);
    double cut = rel * amax;
    for (size_t k = 0; k < n; k++)
        if (!(fabs(lam[k]) > cut))
            lam[k] = 0.0;
    eig_solve(n, Z, lam, b, x);
    return 0;
}

/* ---- linear solves ---- */

int lw_la_chol_solve(size_t n, size_t nrhs, double *A, double *B)
{
    if (n == 0)
        return 0;
    lapack_int info = LAPACKE_dposv_work(LAPACK_COL_MAJOR, 'U', (lapack_int)n,
                                         (lapack_int)nrhs, A, (lapack_int)n, B, (lapack_int)n);
    return info == 0 ? 0 : 1;
}

/* dsysv: LWORK >= 1 (optimal N * NB), IPIV n. */
size_t lw_la_sym_solve_size(size_t n)
{
    return LA_NB * (n ? n : 1) + ints_as_doubles(n + 1);
}

int lw_la_sym_solve(size_t n, size_t nrhs, double *A, double *B, double *ws)
{
    if (n == 0)
        return 0;
    size_t lwork = LA_NB * n;
    lapack_int *ipiv = (lapack_int *)(ws + lwork);
    lapack_int info =
        LAPACKE_dsysv_work(LAPACK_COL_MAJOR, 'U', (lapack_int)n, (lapack_int)nrhs, A,
                           (lapack_int)n, ipiv, B, (lapack_int)n, ws, (lapack_int)lwork);
    return info == 0 ? 0 : 1;
}
