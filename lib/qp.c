/*
 * qp.c -- exact small convex QPs for the Gram-based methods (see qp.h for
 * the problems, the tolerance and the ridge).
 *
 * Both engines work on
 *
 *     min 1/2 x'Hx + q'x   s.t.  x >= 0   [and sum x = 1]
 *
 * with H symmetric positive definite (lw_qp_ridge). A free set F is
 * guessed; the bounds outside F are treated as equalities x_i = 0. The
 * subproblem: xs = the minimiser with x_i = 0 off F (and sum x_F = 1): one
 * LAPACK solve, dposv on H_FF (Cholesky), or with the equality dsysv on the
 * bordered KKT matrix [[H_FF, 1], [1', 0]]. Its multipliers off F are
 * lambda_i = (H xs + q)_i + nu (nu = -mean of (H xs + q) over F, or 0
 * without the equality).
 *
 * Block principal pivoting (first). Start: F = {i : q_i < 0} for the bound
 * problem (the variables whose bound the gradient at 0 pushes against), F =
 * everything for the simplex problem. Every round moves all infeasible
 * indices (xs_i < -1e-12 max|xs| in F, lambda_i < -tol off F) to the other
 * side; after three rounds without fewer infeasible indices, one index only
 * (the largest: Murty's rule). On well-conditioned problems that takes 1 to
 * 8 rounds whatever T is (the tests check <= 12 at full rank). Murty's rule
 * is finite for the bound problem (H positive definite: a P-matrix LCP) but
 * can wander for long on the nearly singular H of a rank-deficient Gram, and
 * for the simplex problem (a mixed LCP) we know no proof; so after 30 rounds
 * it hands over to the primal method, started from its best round's point
 * made feasible (negative entries set to 0, rescaled to sum 1 for the
 * simplex).
 *
 * The primal active-set method (always finite). Start: that point with F =
 * its positive entries, or else the best vertex for the simplex problem,
 * x = 0 with F empty for the bound problem. Each iteration: if some
 * xs_i < 0, step from x towards xs as far as feasibility allows and take the
 * first blocking index (lowest on ties) out of F; otherwise x = xs and, if
 * some lambda_i < -tol, the most negative (lowest index on ties) enters F;
 * else x is optimal. The objective decreases strictly on every non-zero step
 * and a free set is never revisited with a higher objective, so the method
 * is finite; degenerate zero steps are bounded by the iteration limit.
 *
 * Dense linear algebra is LAPACK's (dposv, dsysv, dpotrf) through the LAPACKE
 * *_work entry points in column-major layout, which do not allocate. The
 * integer arrays live in the caller's double workspace (allocated memory has
 * no declared type, so storing ints there is well defined).
 */
#include "qp.h"

#include <lapacke.h>
#include <string.h>

size_t lw_qp_max_iter(size_t n) { return 10 * n + 100; }
size_t lw_qp_bpp_max_iter(size_t n)
{
    (void)n;
    return 30;
}

/* Layout (N = n + 1): A N*N | B N | ipiv N | lwork 64 N | xs n | g n | qq n | xx n |
 * xb n | fl n | inF n (ipiv, fl and inF hold ints, one per double). */
#define QP_LWORK_PER_N 64
size_t lw_qp_work_size(size_t n)
{
    size_t N = n + 1;
    return N * N + (2 + QP_LWORK_PER_N) * N + 7 * n + 8;
}

typedef struct qp_ws {
    double *A, *B, *lw, *xs, *g, *qq, *xx, *xb;
    lapack_int *ipiv;
    int *fl, *inF;
    size_t N;
} qp_ws;

static qp_ws ws_carve(size_t n, double *work)
{
    qp_ws w;
    w.N = n + 1;
    w.A = work;
    w.B = w.A + w.N * w.N;
    w.ipiv = (lapack_int *)(w.B + w.N);
    w.lw = w.B + 2 * w.N;
    w.xs = w.lw + QP_LWORK_PER_N * w.N;
    w.g = w.xs + n;
    w.qq = w.g + n;
    w.xx = w.qq + n;
    w.xb = w.xx + n;
    w.fl = (int *)(w.xb + n);
    w.inF = (int *)(w.xb + 2 * n);
    return w;
}

void lw_qp_sym_copy(size_t n, const double *G, double *H)
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

void lw_qp_torchjd_gram(size_t n, const double *G, double norm_eps, double reg_eps, double *H)
{
    double tr = 0.0;
    lw_qp_sym_copy(n, G, H);
    for (size_t i = 0; i < n; i++)
        tr += H[i * n + i];
    for (size_t k = 0; k < n * n; k++)
        H[k] = tr < norm_eps ? 0.0 : H[k] / tr;
    for (size_t i = 0; i < n; i++)
        H[i * n + i] += reg_eps;
}

/* The ridge ladder, relative to the mean diagonal (qp.h). */
static const double ridge_rungs[] = {1e-12, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2, 1.0};
#define N_RUNGS (sizeof ridge_rungs / sizeof ridge_rungs[0])

int lw_qp_ridge(size_t n, double *H, double *work, double *ridge, lw_error *err)
{
    qp_ws w = ws_carve(n, work);
    double tr = 0.0, amax = 0.0;
    for (size_t i = 0; i < n * n; i++) {
        if (!isfinite(H[i]))
            return lw_fail(err, LW_EINVAL, "gram", "the Gram matrix holds a non-finite number");
        if (fabs(H[i]) > amax)
            amax = fabs(H[i]);
    }
    for (size_t i = 0; i < n; i++)
        tr += H[i * n + i];
    double base = tr / (double)n;
    if (!(base > 0) || !isfinite(base))
        base = amax > 0 ? amax : 1.0;
    for (size_t k = 0; k < N_RUNGS; k++) {
        double delta = ridge_rungs[k] * base;
        /* Column-major lower triangle of H + delta I (H is symmetric, so the
         * row-major array read as column-major is H itself). */
        memcpy(w.A, H, n * n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            w.A[i * n + i] += delta;
        lapack_int info = LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)n, w.A,
                                              (lapack_int)n);
        if (info == 0) {
            for (size_t i = 0; i < n; i++)
                H[i * n + i] += delta;
            *ridge = delta;
            return 0;
        }
    }
    return lw_fail(err, LW_EINVAL, "gram",
                   "the Gram matrix is not positive semi-definite: a ridge of %.3g times its "
                   "mean diagonal does not make it positive definite, so it is not the Gram "
                   "matrix of real gradient vectors",
                   ridge_rungs[N_RUNGS - 1]);
}

/* xs = minimiser on the free set (zero elsewhere). Without the equality:
 * dposv on H_FF. With it: dsysv (Bunch-Kaufman) on the bordered KKT matrix
 * [[H_FF, 1], [1', 0]] -- solving H_FF against -q_F and 1 separately and
 * combining would cancel badly when H_FF is nearly singular. Returns
 * LAPACK's info. */
static lapack_int subproblem(size_t n, const double *H, const double *q, int eq, qp_ws *w,
                             size_t *m_out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        w->xs[i] = 0.0;
        if (w->inF[i])
            w->fl[m++] = (int)i;
    }
    *m_out = m;
    if (m == 0)
        return 0;
    size_t ld = eq ? m + 1 : m;
    for (size_t b = 0; b < m; b++) {
        const double *row = H + (size_t)w->fl[b] * n;
        for (size_t a = 0; a < m; a++)
            w->A[a + b * ld] = row[w->fl[a]];
        w->B[b] = -q[w->fl[b]];
    }
    lapack_int info;
    if (!eq) {
        info = LAPACKE_dposv_work(LAPACK_COL_MAJOR, 'L', (lapack_int)m, 1, w->A, (lapack_int)m,
                                  w->B, (lapack_int)m);
    } else {
        for (size_t a = 0; a < m; a++) {
            w->A[m + a * ld] = 1.0;
            w->A[a + m * ld] = 1.0;
        }
        w->A[m + m * ld] = 0.0;
        w->B[m] = 1.0;
        info = LAPACKE_dsysv_work(LAPACK_COL_MAJOR, 'L', (lapack_int)ld, 1, w->A,
                                  (lapack_int)ld, w->ipiv, w->B, (lapack_int)ld, w->lw,
                                  (lapack_int)(QP_LWORK_PER_N * w->N));
    }
    if (info != 0)
        return info;
    for (size_t a = 0; a < m; a++)
        w->xs[w->fl[a]] = w->B[a];
    return 0;
}

/* g = Hx + q, fixed order. */
static void gradient(size_t n, const double *H, const double *q, const double *x, double *g)
{
    for (size_t i = 0; i < n; i++) {
        const double *row = H + i * n;
        double s = 0.0;
        for (size_t j = 0; j < n; j++)
            s += row[j] * x[j];
        g[i] = s + q[i];
    }
}

/* At x (zero off the free set): g = Hx + q, nu, and the scale that the
 * tolerance is relative to. */
static double multipliers(size_t n, const double *H, const double *q, int eq, const double *x,
                          qp_ws *w, size_t m, double hmax, double qmax, double *nu)
{
    double xmax = 0.0;
    gradient(n, H, q, x, w->g);
    *nu = 0.0;
    if (eq && m) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++)
            if (w->inF[i])
                s += w->g[i];
        *nu = -s / (double)m;
    }
    for (size_t i = 0; i < n; i++)
        if (fabs(x[i]) > xmax)
            xmax = fabs(x[i]);
    double scale = hmax * (xmax > 1.0 ? xmax : 1.0) + qmax;
    return scale > 0 ? scale : 1.0;
}

/* x is optimal: record the KKT residual (relative) and check it. */
static int finish(size_t n, int eq, const double *x, qp_ws *w, double nu, double scale,
                  size_t iters, lw_qp_info *info, lw_error *err)
{
    double viol = 0.0, sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double lam = w->g[i] + nu;
        double v = w->inF[i] ? fabs(lam) : (lam < 0 ? -lam : 0.0);
        if (v > viol)
            viol = v;
        sum += x[i];
    }
    viol /= scale;
    if (eq && fabs(sum - 1.0) > viol)
        viol = fabs(sum - 1.0);
    if (info) {
        info->iters += iters;
        info->kkt = viol;
    }
    if (!(viol <= LW_QP_KKT_RTOL))
        return lw_fail(err, LW_ENUMERIC, "",
                       "QP: KKT residual %.3g exceeds the tolerance %.3g", viol, LW_QP_KKT_RTOL);
    return 0;
}

static void norms(size_t n, const double *H, const double *q, double *hmax, double *qmax)
{
    *hmax = 0.0;
    *qmax = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (H[i * n + i] > *hmax)
            *hmax = H[i * n + i];
        if (fabs(q[i]) > *qmax)
            *qmax = fabs(q[i]);
    }
}

/* Block principal pivoting (Judice & Pires 1994; Kim & Park 2011 for NNLS):
 * solve on a guessed free set, then move every infeasible index (x_i < 0 on
 * the free set, lambda_i < -tol on the working set) across at once; when
 * that stops reducing the number of infeasible indices for 3 rounds, move
 * only the largest such index (Murty's rule, finite for the positive
 * definite bound problem). Returns 0 with x optimal, 1 when it gives up
 * (iteration cap, a failed factorisation): then the caller runs the primal
 * method. */
#define BPP_XTOL 1e-12
static int bpp(size_t n, const double *H, const double *q, int eq, double *x, qp_ws *w,
               size_t *iters, int *have_best)
{
    double hmax, qmax, nu;
    size_t m, ninf_best = n + 1, maxit = lw_qp_bpp_max_iter(n);
    int backup = 3;
    norms(n, H, q, &hmax, &qmax);
    for (size_t i = 0; i < n; i++)
        w->inF[i] = eq ? 1 : q[i] < 0.0;
    for (size_t it = 0; it < maxit; it++) {
        *iters = it + 1;
        if (subproblem(n, H, q, eq, w, &m) != 0)
            return 1;
        double scale = multipliers(n, H, q, eq, w->xs, w, m, hmax, qmax, &nu);
        double tol = LW_QP_KKT_RTOL * scale, xmax = 1.0;
        for (size_t i = 0; i < n; i++)
            if (fabs(w->xs[i]) > xmax)
                xmax = fabs(w->xs[i]);
        /* A free variable at -1e-12 of the largest is zero up to rounding
         * (degenerate); flipping it would only chase noise. */
        double xtol = BPP_XTOL * xmax;
        size_t ninf = 0, last = n;
        for (size_t i = 0; i < n; i++) {
            int bad = w->inF[i] ? w->xs[i] < -xtol : w->g[i] + nu < -tol;
            w->fl[i] = bad; /* reuses fl: the free list is rebuilt by subproblem() */
            if (bad) {
                ninf++;
                last = i;
            }
        }
        if (ninf == 0) {
            for (size_t i = 0; i < n; i++)
                x[i] = w->xs[i] > 0.0 ? w->xs[i] : 0.0;
            return 0;
        }
        if (ninf < ninf_best) {
            /* Keep the best iterate, made feasible, as the primal method's
             * start in case we give up. */
            double sum = 0.0;
            for (size_t i = 0; i < n; i++) {
                w->xb[i] = w->xs[i] > 0.0 ? w->xs[i] : 0.0;
                sum += w->xb[i];
            }
            *have_best = !eq || sum > 0.0;
            if (eq && sum > 0.0)
                for (size_t i = 0; i < n; i++)
                    w->xb[i] /= sum;
            ninf_best = ninf;
            backup = 3;
        } else if (backup > 0) {
            backup--;
        } else {
            for (size_t i = 0; i < n; i++)
                w->fl[i] = i == last;
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (w->fl[i])
                w->inF[i] = !w->inF[i];
            k += (size_t)w->inF[i];
        }
        /* The equality needs a free variable: give up rather than solve an
         * empty system (the primal method does not have this problem). */
        if (eq && k == 0)
            return 1;
    }
    return 1;
}

/* The primal active-set method (see the top of the file). */
static int primal(size_t n, const double *H, const double *q, int eq, const double *x0,
                  double *x, qp_ws *w, lw_qp_info *info, lw_error *err)
{
    size_t maxit = lw_qp_max_iter(n), m;
    double hmax, qmax;
    norms(n, H, q, &hmax, &qmax);
    for (size_t i = 0; i < n; i++) {
        x[i] = x0 ? x0[i] : 0.0;
        w->inF[i] = x0 ? x0[i] > 0.0 : 0;
    }
    if (eq && !x0) {
        /* Best vertex: min 1/2 H_kk + q_k. */
        size_t k = 0;
        for (size_t i = 1; i < n; i++)
            if (0.5 * H[i * n + i] + q[i] < 0.5 * H[k * n + k] + q[k])
                k = i;
        w->inF[k] = 1;
        x[k] = 1.0;
    }
    for (size_t it = 0; it < maxit; it++) {
        lapack_int li = subproblem(n, H, q, eq, w, &m);
        if (li != 0)
            return lw_fail(err, LW_ENUMERIC, "",
                           "QP: the factorisation of a %zu x %zu block failed "
                           "(LAPACK info %d) although the whole matrix factorised",
                           m, m, (int)li);
        /* Ratio test. */
        double alpha = 1.0;
        size_t blk = n;
        for (size_t i = 0; i < n; i++) {
            if (w->inF[i] && w->xs[i] < 0.0) {
                double t = x[i] / (x[i] - w->xs[i]);
                if (t < alpha) {
                    alpha = t;
                    blk = i;
                }
            }
        }
        if (blk < n) {
            for (size_t i = 0; i < n; i++) {
                if (!w->inF[i])
                    continue;
                x[i] += alpha * (w->xs[i] - x[i]);
                if (x[i] < 0.0)
                    x[i] = 0.0;
            }
            x[blk] = 0.0;
            w->inF[blk] = 0;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (w->inF[i])
                x[i] = w->xs[i];
        /* Multipliers of the working set: release the most negative. */
        double nu, scale = multipliers(n, H, q, eq, x, w, m, hmax, qmax, &nu);
        double lmin = -LW_QP_KKT_RTOL * scale;
        size_t j = n;
        for (size_t i = 0; i < n; i++) {
            if (!w->inF[i] && w->g[i] + nu < lmin) {
                lmin = w->g[i] + nu;
                j = i;
            }
        }
        if (j < n) {
            w->inF[j] = 1;
            continue;
        }
        return finish(n, eq, x, w, nu, scale, it + 1, info, err);
    }
    return lw_fail(err, LW_ENUMERIC, "",
                   "QP: the active-set method did not terminate within %zu iterations (%zu "
                   "variables)",
                   maxit, n);
}

int lw_qp_solve(size_t n, const double *H, const double *q, int eq, int algo, double *x,
                double *work, lw_qp_info *info, lw_error *err)
{
    qp_ws w = ws_carve(n, work);
    if (info) {
        info->iters = 0;
        info->kkt = 0.0;
        info->fallback = 0;
    }
    if (n == 0)
        return 0;
    int have_best = 0;
    if (algo != LW_QP_PRIMAL) {
        size_t it = 0, m = 0;
        if (bpp(n, H, q, eq, x, &w, &it, &have_best) == 0) {
            double hmax, qmax, nu;
            norms(n, H, q, &hmax, &qmax);
            for (size_t i = 0; i < n; i++)
                m += (size_t)w.inF[i];
            double scale = multipliers(n, H, q, eq, x, &w, m, hmax, qmax, &nu);
            return finish(n, eq, x, &w, nu, scale, it, info, err);
        }
        if (info) {
            info->iters = it;
            info->fallback = 1;
        }
    }
    return primal(n, H, q, eq, have_best ? w.xb : NULL, x, &w, info, err);
}

int lw_qp_simplex_lb(size_t n, const double *H, const double *c, double *w, double *work,
                     lw_qp_info *info, lw_error *err)
{
    qp_ws ws = ws_carve(n, work);
    double s = 1.0;
    if (c)
        for (size_t i = 0; i < n; i++)
            s -= c[i];
    if (!(s > 0))
        return lw_fail(err, LW_EINVAL, "", "QP: the lower bounds must sum to less than 1");
    /* w = c + s y, y on the simplex: w'Hw = c'Hc + s^2 (y'Hy + 2 (Hc/s)'y). */
    for (size_t i = 0; i < n; i++) {
        double t = 0.0;
        if (c) {
            const double *row = H + i * n;
            for (size_t j = 0; j < n; j++)
                t += row[j] * c[j];
        }
        ws.qq[i] = t / s;
    }
    int rc = lw_qp_solve(n, H, ws.qq, 1, LW_QP_AUTO, ws.xx, work, info, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        w[i] = (c ? c[i] : 0.0) + s * ws.xx[i];
    return 0;
}

int lw_qp_dual_cone(size_t n, const double *H, const double *u, double *v, double *work,
                    lw_qp_info *info, lw_error *err)
{
    qp_ws ws = ws_carve(n, work);
    /* v = u + x, x >= 0: v'Hv = u'Hu + x'Hx + 2 (Hu)'x. */
    for (size_t i = 0; i < n; i++) {
        const double *row = H + i * n;
        double t = 0.0;
        for (size_t j = 0; j < n; j++)
            t += row[j] * u[j];
        ws.qq[i] = t;
    }
    int rc = lw_qp_solve(n, H, ws.qq, 0, LW_QP_AUTO, ws.xx, work, info, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        v[i] = u[i] + ws.xx[i];
    return 0;
}
