/*
 * brute.h -- reference computations the tests compare the library with.
 * Deliberately the straightforward textbook versions, independent of
 * LAPACK, so that a test checks our LAPACK-based code against something
 * written another way. Header-only: each test program includes it once.
 */
#ifndef LW_TEST_BRUTE_H
#define LW_TEST_BRUTE_H

#include <math.h>
#include <stddef.h>

/* Solve A x = b (n x n, row-major, overwritten) by Gaussian elimination with
 * partial pivoting; returns 0, or -1 if a pivot is below tol * max|A|. */
static int brute_gauss_solve(size_t n, double *A, double *b, double tol)
{
    double amax = 0;
    for (size_t i = 0; i < n * n; i++)
        if (fabs(A[i]) > amax)
            amax = fabs(A[i]);
    for (size_t k = 0; k < n; k++) {
        size_t p = k;
        for (size_t i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[p * n + k]))
                p = i;
        if (!(fabs(A[p * n + k]) > tol * amax))
            return -1;
        if (p != k) {
            for (size_t j = 0; j < n; j++) {
                double t = A[k * n + j];
                A[k * n + j] = A[p * n + j];
                A[p * n + j] = t;
            }
            double t = b[k];
            b[k] = b[p];
            b[p] = t;
        }
        for (size_t i = k + 1; i < n; i++) {
            double f = A[i * n + k] / A[k * n + k];
            for (size_t j = k; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
            b[i] -= f * b[k];
        }
    }
    for (size_t k = n; k-- > 0;) {
        double s = b[k];
        for (size_t j = k + 1; j < n; j++)
            s -= A[k * n + j] * b[j];
        b[k] = s / A[k * n + k];
    }
    return 0;
}

#endif
