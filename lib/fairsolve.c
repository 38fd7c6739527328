/*
 * fairsolve.c -- damped Newton for G x = x^(-p), x > 0 (see fairsolve.h).
 */
#include "fairsolve.h"

#include "linalg.h"
#include "lw_internal.h"

#include <float.h>
#include <string.h>

size_t lw_fair_work_size(size_t n) { return 2 * n * n + 5 * n; }

/* y^(-p), y^p and h(y) without pow() for the common p = 1. */
static double pow_neg(double y, double p) { return p == 1.0 ? 1.0 / y : pow(y, -p); }
static double pow_pos(double y, double p) { return p == 1.0 ? y : pow(y, p); }
static double h_of(double y, double p)
{
    return p == 1.0 ? log(y) : pow(y, 1.0 - p) / (1.0 - p);
}

/* f(y) = 1/2 y'Ay - sum h(y_i), with Ay given. */
static double objective(size_t n, const double *y, const double *Ay, double p)
{
    double q = 0.0, s = 0.0;
    for (size_t i = 0; i < n; i++) {
        q += y[i] * Ay[i];
        s += h_of(y[i], p);
    }
    return 0.5 * q - s;
}

/* Largest relative residual |y_i^p (Ay)_i - 1| and whether every one is
 * within tolerance: 1 converged, 0 not yet, -1 the residual cannot be
 * resolved in double precision (the rounding of (Ay)_i alone exceeds
 * LW_FAIR_MAX_NOISE: so much cancellation that the gradients conflict to
 * working precision and the "root" would be noise). */
static int converged(size_t n, const double *A, const double *y, const double *Ay, double p,
                     double *resid)
{
    int ok = 1;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double yp = pow_pos(y[i], p);
        double r = fabs(yp * Ay[i] - 1.0);
        double mag = 0.0;
        for (size_t j = 0; j < n; j++)
            mag += fabs(A[i * n + j]) * y[j];
        double noise = 16.0 * (double)n * DBL_EPSILON * yp * mag;
        if (r > worst)
            worst = r;
        if (!(r <= LW_FAIR_RTOL + noise))
            ok = 0;
        else if (noise > LW_FAIR_MAX_NOISE)
            return -1;
    }
    *resid = worst;
    return ok;
}

int lw_fair_solve(size_t n, const double *G, double p, double ridge, const double *x0,
                  double *x, double *ws, lw_fair_info *info)
{
    double *A = ws, *H = A + n * n, *y = H + n * n, *Ay = y + n, *d = Ay + n, *yt = d + n,
           *Ayt = yt + n;
    lw_fair_info scratch_info;
    if (!info)
        info = &scratch_info;
    info->iters = 0;
    info->resid = INFINITY;

    double nf = 0.0;
    for (size_t i = 0; i < n * n; i++)
        nf += G[i] * G[i];
    nf = sqrt(nf);
    if (!(nf > 0) || !isfinite(nf))
        return LW_FAIR_NOSOL;
    for (size_t i = 0; i < n * n; i++)
        A[i] = G[i] / nf;
    for (size_t i = 0; i < n; i++)
        A[i * n + i] += ridge;

    /* Start: x0 on the normalised scale, then the best multiple of it. */
    const double up = pow(nf, 1.0 / (1.0 + p));
    int use_x0 = x0 != NULL;
    for (size_t i = 0; use_x0 && i < n; i++)
        if (!(x0[i] > 0) || !isfinite(x0[i] * up))
            use_x0 = 0;
    for (size_t i = 0; i < n; i++)
        y[i] = use_x0 ? x0[i] * up : 1.0;
    lw_la_matvec(n, A, y, Ay);
    {
        double q = 0.0, s = 0.0;
        for (size_t i = 0; i < n; i++) {
            q += y[i] * Ay[i];
            s += pow(y[i], 1.0 - p);
        }
        if (q > 0 && s > 0) {
            double c = pow(s / q, 1.0 / (1.0 + p));
            if (c > 0 && isfinite(c)) {
                for (size_t i = 0; i < n; i++)
                    y[i] *= c;
                lw_la_matvec(n, A, y, Ay);
            }
        }
    }

    int ok = 0, stuck = 0;
    double best = INFINITY;
    for (size_t it = 0; it <= LW_FAIR_MAX_ITER; it++) {
        info->iters = it;
        int cv = converged(n, A, y, Ay, p, &info->resid);
        if (cv < 0)
            return LW_FAIR_NOSOL;
        if (cv) {
            ok = 1;
            break;
        }
        if (it == LW_FAIR_MAX_ITER)
            break;
        /* In Newton's quadratic phase the residual collapses; ten full steps
         * that do not halve it mean rounding has taken over. */
        if (info->resid < 0.5 * best) {
            best = info->resid;
            stuck = 0;
        } else if (stuck >= 10) {
            return LW_FAIR_NOSOL;
        }
        /* Newton direction: (A + diag(p y^(-p-1))) d = -(Ay - y^(-p)). */
        memcpy(H, A, n * n * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            H[i * n + i] += p * pow_neg(y[i], p) / y[i];
            d[i] = -(Ay[i] - pow_neg(y[i], p));
        }
        double dec = 0.0;
        {
            /* keep the gradient for the decrement */
            for (size_t i = 0; i < n; i++)
                yt[i] = -d[i];
            if (lw_la_chol_solve(n, 1, H, d))
                return LW_FAIR_NOTPD;
            for (size_t i = 0; i < n; i++)
                dec -= yt[i] * d[i];
        }
        if (!isfinite(dec))
            return LW_FAIR_NOSOL;
        if (dec <= 1e-30 * (double)n) {
            ok = 1; /* nothing left to gain at this precision */
            break;
        }
        double t = 1.0;
        for (size_t i = 0; i < n; i++)
            if (d[i] < 0 && 0.99 * y[i] / -d[i] < t)
                t = 0.99 * y[i] / -d[i];
        double f0 = objective(n, y, Ay, p);
        int accepted = 0;
        for (int k = 0; k < 60; k++) {
            for (size_t i = 0; i < n; i++)
                yt[i] = y[i] + t * d[i];
            lw_la_matvec(n, A, yt, Ayt);
            double f1 = objective(n, yt, Ayt, p);
            /* Near the root f's change drowns in rounding (f can be large
             * while its decrease is tiny): with a small Newton decrement
             * (affine invariant; for p = 1 f is self-concordant and
             * dec < 1/4 is inside the quadratic region) take the full step. */
            if (f1 <= f0 - 1e-4 * t * dec || (t == 1.0 && dec < LW_FAIR_FULL_DEC)) {
                accepted = 1;
                break;
            }
            t *= 0.5;
        }
        if (!accepted)
            return LW_FAIR_NOSOL;
        if (t == 1.0 && dec < LW_FAIR_FULL_DEC)
            stuck++;
        else
            stuck = 0;
        memcpy(y, yt, n * sizeof(double));
        memcpy(Ay, Ayt, n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            if (!(y[i] > 0) || !(y[i] < LW_FAIR_YMAX))
                return LW_FAIR_NOSOL;
    }
    if (!ok)
        return LW_FAIR_NOSOL;
    for (size_t i = 0; i < n; i++)
        x[i] = y[i] / up;
    return LW_FAIR_OK;
}

size_t lw_fair_method_work_size(size_t T)
{
    size_t a = lw_fair_work_size(T), b = lw_la_psd_pinv_size(T);
    return 2 * T * T + 3 * T + (a > b ? a : b);
}

size_t lw_fair_restrict(size_t T, const double *H, size_t *idx, double *Ha)
{
    double dmax = 0.0;
    size_t m = 0;
    for (size_t i = 0; i < T; i++)
        if (H[i * T + i] > dmax)
            dmax = H[i * T + i];
    for (size_t i = 0; i < T; i++)
        if (dmax > 0 && H[i * T + i] > 1e-20 * dmax)
            idx[m++] = i;
    for (size_t a = 0; a < m; a++)
        for (size_t b = 0; b < m; b++)
            Ha[a * m + b] = H[idx[a] * T + idx[b]];
    return m;
}
