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
 * UPGrad's n bound problems on one matrix have their own driver at the end
 * of the file, lw_qp_dual_cone_each(): block pivoting again, on a principal
 * pivot transform of H shared by all the tasks, lw_qp_solve() as fallback.
 *
 * Dense linear algebra is LAPACK's (dposv, dsysv, dpotrf; for the UPGrad
 * driver also dtrtrs, dtrtri, dlauum, dgesv) through the LAPACKE *_work entry
 * points in column-major layout, which do not allocate -- and dpotf2, which
 * LAPACKE does not wrap, through lapack.h's LAPACK_dpotf2 (on the driver's
 * k x k blocks, k ~ 10-30, the unblocked factorisation is the cheaper
 * one). The integer arrays live in the caller's double workspace (allocated
 * memory has no declared type, so storing ints there is well defined).
 */
#include "qp.h"
#include "linalg.h"

#include <float.h>
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

void lw_qp_torchjd_gram(size_t n, const double *G, double norm_eps, double reg_eps, double *H)
{
    double tr = 0.0;
    lw_la_symmetrize(n, G, H);
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

int lw_qp_torchjd_prepare(size_t n, const double *G, double norm_eps, double reg_eps, double *H,
                          double *p, double *work, lw_error *err)
{
    double ridge;
    lw_qp_torchjd_gram(n, G, norm_eps, reg_eps, H);
    int rc = lw_qp_ridge(n, H, work, &ridge, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        p[i] = 1.0 / (double)n;
    return 0;
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

/* ---- Many bound problems on one matrix: UPGrad ----------------------------
 *
 * lw_qp_dual_cone_each() solves, for every i, min v'Hv s.t. v >= p_i e_i,
 * i.e. (x = v - p_i e_i) the bound problem of lw_qp_solve() with
 * q = p_i H e_i, and sums the solutions. Solved one by one from scratch,
 * each takes about five block-pivoting rounds, each a Cholesky factorisation
 * of an H_FF with |F| ~ 0.4 n. Warm-starting a task from the previous task's
 * free set does not help: the n solutions' supports differ, task to task, in
 * about as many indices as the cold start is off by (~0.25 n on the
 * benchmark's Grams, where it costs rounds rather than saving them), and a
 * cached factorisation of one task's H_FF is never the next task's. What
 * the n problems share is H, and principal pivoting makes that usable.
 *
 * For a set F let ppt(H, F) be the principal pivot transform of H on F,
 * [[H_FF^-1, -H_FF^-1 H_FA], [H_AF H_FF^-1, H_AA - H_AF H_FF^-1 H_FA]]
 * (A the complement). With i not in F (it never is: w_i = v'Hv / p_i > 0),
 * its column i is all a pivoting round on F needs: p_i ppt(H, F) e_i =
 * [z_F; w_A], z_F the subproblem's solution and w_A = Hz + q off F -- no
 * gradient to compute. Principal pivot transforms compose:
 * ppt(ppt(H, B), D) = ppt(H, B xor D). So
 *
 *  - M = ppt(H, B) is computed once for a base set B (each_base: a Cholesky
 *    factorisation of H_BB, two triangular solves, dtrtri and dlauum), B
 *    being the set most tasks start from (bpp's cold start F = {j : q_j <
 *    0}) and, after EACH_REBASE tasks, the set most of their solutions have;
 *  - a round on F solves with M_DD, D = F xor B: k = |D| ~ 0.2 n where
 *    |F| ~ 0.4 n. M_DD = [[P1, C], [-C', P2]] (D split into B \ F and
 *    F \ B, the smaller part first), P1 and P2 positive definite (principal
 *    blocks of H_BB^-1 and of the Schur complement H / H_BB), so block
 *    elimination with two Cholesky factorisations solves it (each_factor:
 *    dpotf2, dtrtrs; each_apply: dtrtrs);
 *  - later rounds of the same task reuse that factorisation, the anchor D_a:
 *    with N = ppt(M, D_a), a round on D = D_a xor X is ppt(N, X), an
 *    |X| x |X| system (dgesv) whose entries need M_{D_a D_a}^-1 applied to
 *    one vector per index of X, cached until the next anchor. A full round
 *    (a new anchor) is taken when |X| would exceed EACH_XMAX or the anchor's
 *    size, or the cache is full.
 *
 * The pivoting is bpp()'s (all violators flip, Murty's single flip after 3
 * rounds without progress, 30 rounds at most) except that only the
 * violators within EACH_FLIP0 (first round) or EACH_FLIP1 (later rounds) of
 * the largest violation of their kind flip, which keeps D small at almost no
 * cost in rounds. Every solution is checked as finish() checks one -- g =
 * Hx + q recomputed from H, the same tolerance; above EACH_POLISH the free
 * set is solved once more directly (subproblem()) and the better kept. A
 * task that fails the check, or whose pivoting gives up or meets a failed
 * factorisation, is solved from scratch by lw_qp_solve(), and so are all
 * tasks when n < EACH_MIN_N, when H is too ill-conditioned for M (a pivot
 * below EACH_PIVOT of its diagonal entry, e.g. reg_eps = 0 on a
 * rank-deficient Gram), and all the remaining ones after 2 + n/16 such
 * tasks. Everything is a fixed sequence of operations on (H, p): the same
 * input gives the same bits.
 *
 * Where the time goes (tests/bench/bench_methods.c's T = 128 Gram: about
 * 58 M instructions per step by callgrind, 5.3 rounds per task). The n free
 * sets are far apart: a task's is on average 31 indices from the nearest
 * other task's and 33 from the majority set B, and no cheap statistic of H
 * (conflict signs, cosines, clusters of tasks) predicts it better, so every
 * task pays about four non-trivial rounds on systems of k = 15 to 45. At
 * those sizes the time is latency, not instructions: reference LAPACK/BLAS
 * is scalar code whose transposed triangular solves are chains of dependent
 * adds and whose untransposed ones wait for a division on every row, and
 * the per-round scans over n mispredicted a branch per free/bound index.
 * Hence the factors in each_unit()'s form (no divisions, no transposed
 * solves) and the branch-free scans (each_scale(), each_violators(),
 * each_full()'s lists): together 0.77x the time of the plain calls
 * (dpotrs, dtrtrs 'T', dpotri) for 6% more instructions. Measured and
 * rejected: other flip fractions, rebase points, bordering limits and slot
 * counts (all at their instruction-count optimum above), warm starts from
 * earlier tasks' free sets, two to eight bases, right-sided dtrsm with
 * dsyrk/dgemm for the Schur complement (8% more instructions), and other
 * BLAS builds (OpenBLAS 0.9x the time but not bit-reproducible across
 * CPUs; ATLAS no faster). */

#define EACH_FLIP0 0.5
#define EACH_FLIP1 0.2
#define EACH_REBASE 32
#define EACH_XMAX 8
#define EACH_SLOTS 24
#define EACH_PIVOT 1e-10
#define EACH_MIN_N 6
#define EACH_POLISH (1e-3 * LW_QP_KKT_RTOL)

typedef struct each_ws {
    double *M, *S, *W, *N, *y, *c, *ca, *x, *g, *q, *t;
    int *inB, *inF, *D1, *D2, *Da, *posa, *slot, *X, *cnt, *vio; /* inB, inF: 0 or 1 */
    lapack_int *ipiv;
    size_t k1a, k2a, nslot; /* the anchor: D_a = Da[0 .. k1a + k2a) */
    double *qpw;
} each_ws;

size_t lw_qp_each_work_size(size_t n)
{
    return 2 * n * n + (EACH_SLOTS + 18) * n + EACH_XMAX * EACH_XMAX + 2 * EACH_XMAX + 8 +
           lw_qp_work_size(n);
}

static each_ws each_carve(size_t n, double *work)
{
    each_ws w;
    double *d = work;
    w.M = d, d += n * n;
    w.S = d, d += n * n;
    w.W = d, d += n * EACH_SLOTS;
    w.N = d, d += EACH_XMAX * EACH_XMAX;
    w.t = d, d += EACH_XMAX;
    w.ipiv = (lapack_int *)d, d += EACH_XMAX;
    w.y = d, d += n;
    w.c = d, d += n;
    w.ca = d, d += n;
    w.x = d, d += n;
    w.g = d, d += n;
    w.q = d, d += n;
    int **ints[] = {&w.inB, &w.inF, &w.D1, &w.D2, &w.Da, &w.posa, &w.slot, &w.X, &w.cnt, &w.vio};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        *ints[k] = (int *)d, d += n; /* one int per double: room to spare */
    w.qpw = d + 8;
    w.k1a = w.k2a = w.nslot = 0;
    return w;
}

/* y += a x, fixed order; unrolled by 4 so that the compiler vectorises it. */
static void each_axpy(size_t n, double a, const double *restrict x, double *restrict y)
{
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        y[j] += a * x[j];
        y[j + 1] += a * x[j + 1];
        y[j + 2] += a * x[j + 2];
        y[j + 3] += a * x[j + 3];
    }
    for (; j < n; j++)
        y[j] += a * x[j];
}

/* y += sum_t a[t] col[t] over m columns of length n, four at a time. */
static void each_axpym(size_t n, size_t m, const double *a, const double *const *col,
                       double *restrict y)
{
    size_t t = 0;
    for (; t + 4 <= m; t += 4) {
        const double *restrict x0 = col[t], *restrict x1 = col[t + 1], *restrict x2 = col[t + 2],
                               *restrict x3 = col[t + 3];
        double a0 = a[t], a1 = a[t + 1], a2 = a[t + 2], a3 = a[t + 3];
        size_t j = 0;
        for (; j + 2 <= n; j += 2) {
            y[j] += (a0 * x0[j] + a1 * x1[j]) + (a2 * x2[j] + a3 * x3[j]);
            y[j + 1] += (a0 * x0[j + 1] + a1 * x1[j + 1]) + (a2 * x2[j + 1] + a3 * x3[j + 1]);
        }
        for (; j < n; j++)
            y[j] += (a0 * x0[j] + a1 * x1[j]) + (a2 * x2[j] + a3 * x3[j]);
    }
    for (; t < m; t++)
        each_axpy(n, a[t], col[t], y);
}

/* a'b with four partial sums, fixed order. */
static double each_dot(size_t n, const double *restrict a, const double *restrict b)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    size_t t = 0;
    for (; t + 4 <= n; t += 4) {
        s0 += a[t] * b[t];
        s1 += a[t + 1] * b[t + 1];
        s2 += a[t + 2] * b[t + 2];
        s3 += a[t + 3] * b[t + 3];
    }
    for (; t < n; t++)
        s0 += a[t] * b[t];
    return (s0 + s1) + (s2 + s3);
}

/* Turn the Cholesky factor L in the lower triangle of the column-major
 * k x k matrix A into the unit triangles of L = U diag(l_jj): A gets U
 * below the diagonal, U' above it and 1 / l_jj on it. LAPACK's unit
 * triangular solves (diag 'U') then never divide, and the reference loops'
 * one division per row -- whose latency the next row waits for -- becomes
 * one vectorised scaling by each_scale_rows(). And solving with L' is
 * dtrtrs('U', 'N') on U': the reference loops for a transposed triangle
 * are dot products, one dependent add after another, while the
 * untransposed upper solve runs the same operations as axpys, which
 * pipeline. */
static void each_unit(size_t k, double *A)
{
    for (size_t b = 0; b < k; b++) {
        double *col = A + b * k, r = 1.0 / col[b];
        col[b] = r;
        for (size_t a = b + 1; a < k; a++) {
            col[a] *= r;
            A[b + a * k] = col[a]; /* row b of U' */
        }
    }
}

/* Row a of the k x nrhs block R (leading dimension ld) times r_a^e, e = 1
 * or 2, r_a the diagonal of each_unit()'s A. */
static void each_scale_rows(size_t k, const double *A, int e, double *R, size_t nrhs, size_t ld)
{
    for (size_t c = 0; c < nrhs; c++)
        for (size_t a = 0; a < k; a++) {
            double r = A[a + a * k];
            R[a + c * ld] *= e == 2 ? r * r : r;
        }
}

/* M = ppt(H, B), column-major n x n (B = w->inB; A its complement):
 * M_BB = H_BB^-1, M_BA = -X, M_AB = X', M_AA = H_AA - Y'Y, where
 * H_BB = L L', Y = L^-1 H_BA, X = L^-T Y = H_BB^-1 H_BA. Uses S as scratch
 * (L: m x m, Y: m x (n - m)) and D1 for positions. Returns 0, or non-zero
 * if LAPACK fails. */
static int each_base(size_t n, const double *H, each_ws *w)
{
    size_t m = 0, a0 = 0;
    int *pos = w->D1;
    for (size_t j = 0; j < n; j++)
        pos[j] = w->inB[j] ? (int)m++ : (int)a0++;
    double *L = w->S, *Y = w->S + m * m;
    for (size_t j = 0; j < n; j++) {
        const double *col = H + j * n; /* row j = column j */
        double *dst = (w->inB[j] ? L : Y) + (size_t)pos[j] * m;
        for (size_t l = 0; l < n; l++)
            if (w->inB[l])
                dst[pos[l]] = col[l];
    }
    if (m && LAPACKE_dpotrf_work(LAPACK_COL_MAJOR, 'L', (lapack_int)m, L, (lapack_int)m) != 0)
        return 1;
    /* Every pivot of the Cholesky factorisation of H in the order (B, A) --
     * L_jj^2 on B, M_jj on A -- must keep EACH_PIVOT of its diagonal entry
     * of H; a smaller one means a nearly singular H (reg_eps = 0 on a
     * rank-deficient Gram), where M would carry no correct digits. */
    for (size_t j = 0; j < n; j++) {
        double piv = w->inB[j] ? L[pos[j] + pos[j] * m] * L[pos[j] + pos[j] * m] : 0.0;
        if (w->inB[j] && !(piv >= EACH_PIVOT * H[j * n + j]))
            return 1;
    }
    /* Y = L^-1 H_BA = diag(1/l) U^-1 H_BA, L in each_unit()'s form. */
    if (m)
        each_unit(m, L);
    if (m && a0) {
        if (LAPACKE_dtrtrs_work(LAPACK_COL_MAJOR, 'L', 'N', 'U', (lapack_int)m, (lapack_int)a0, L,
                                (lapack_int)m, Y, (lapack_int)m) != 0)
            return 1;
        each_scale_rows(m, L, 1, Y, a0, m);
    }
    for (size_t j = 0; j < n; j++) {
        if (w->inB[j])
            continue;
        const double *yj = Y + (size_t)pos[j] * m;
        for (size_t l = 0; l <= j; l++) {
            if (w->inB[l])
                continue;
            double v = H[j * n + l] - each_dot(m, yj, Y + (size_t)pos[l] * m);
            w->M[l + j * n] = v;
            w->M[j + l * n] = v;
        }
        if (!(w->M[j + j * n] >= EACH_PIVOT * H[j * n + j]))
            return 1;
    }
    /* X = L^-T Y = U'^-1 diag(1/l) Y, and H_BB^-1 = V'V with V = L^-1 =
     * diag(1/l) U^-1: dtrtri of the unit triangle, its rows scaled (the
     * diagonal already holds 1/l), dlauum -- dpotri's two steps. */
    if (m) {
        lapack_int li = 0, M = (lapack_int)m;
        if (a0) {
            each_scale_rows(m, L, 1, Y, a0, m);
            li = LAPACKE_dtrtrs_work(LAPACK_COL_MAJOR, 'U', 'N', 'U', M, (lapack_int)a0, L, M, Y,
                                     M);
        }
        if (li == 0)
            li = LAPACKE_dtrtri_work(LAPACK_COL_MAJOR, 'L', 'U', M, L, M);
        if (li != 0)
            return 1;
        for (size_t b = 0; b < m; b++)
            for (size_t a = b + 1; a < m; a++)
                L[a + b * m] *= L[a + a * m];
        if (LAPACKE_dlauum_work(LAPACK_COL_MAJOR, 'L', M, L, M) != 0)
            return 1;
    }
    for (size_t j = 0; j < n; j++) {
        size_t pj = (size_t)pos[j];
        double *Mj = w->M + j * n;
        for (size_t l = 0; l < n; l++) {
            size_t pl = (size_t)pos[l];
            if (w->inB[l] && w->inB[j])
                Mj[l] = pl >= pj ? L[pl + pj * m] : L[pj + pl * m];
            else if (w->inB[l])
                Mj[l] = -Y[pl + pj * m];
            else if (w->inB[j])
                Mj[l] = Y[pj + pl * m];
        }
    }
    return 0;
}

/* Factorise M_DD = [[P1, C], [-C', P2]] for D = Da[0 .. k1 + k2) (D1 part
 * first) into S: L1 (k1 x k1, L1 L1' = P1) | Z = L1^-1 C (k1 x k2) | L2
 * (k2 x k2, L2 L2' = P2 + Z'Z) | Z' (k2 x k1), L1 and L2 in each_unit()'s
 * form. Only the lower triangles of P1 and P2 are gathered: dpotf2 reads
 * no more. Returns LAPACK's non-zero info on failure. */
static lapack_int each_factor(size_t n, each_ws *w, size_t k1, size_t k2)
{
    double *P1 = w->S, *Z = P1 + k1 * k1, *P2 = Z + k1 * k2, *Zt = P2 + k2 * k2;
    const int *D = w->Da;
    lapack_int info = 0, K1 = (lapack_int)k1, K2 = (lapack_int)k2;
    for (size_t b = 0; b < k1 + k2; b++) {
        const double *col = w->M + (size_t)D[b] * n;
        if (b < k1)
            for (size_t a = b; a < k1; a++)
                P1[a + b * k1] = col[D[a]];
        else {
            for (size_t a = 0; a < k1; a++)
                Z[a + (b - k1) * k1] = col[D[a]];
            for (size_t a = b; a < k1 + k2; a++)
                P2[(a - k1) + (b - k1) * k2] = col[D[a]];
        }
    }
    if (k1) {
        LAPACK_dpotf2("L", &K1, P1, &K1, &info);
        if (info != 0)
            return info;
        each_unit(k1, P1);
        if (k2 && (info = LAPACKE_dtrtrs_work(LAPACK_COL_MAJOR, 'L', 'N', 'U', K1, K2, P1, K1, Z,
                                              K1)) != 0)
            return info;
        each_scale_rows(k1, P1, 1, Z, k2, k1);
    }
    if (k2) {
        /* P2 += Z'Z, lower triangle, column by column from the rows of Z
         * (the columns of Z'). */
        const double *cols[4] = {NULL, NULL, NULL, NULL};
        for (size_t t = 0; t < k1; t++)
            for (size_t b = 0; b < k2; b++)
                Zt[b + t * k2] = Z[t + b * k1];
        for (size_t b = 0; b < k2; b++) {
            for (size_t t = 0; t < k1; t += 4) {
                size_t m = k1 - t < 4 ? k1 - t : 4;
                for (size_t u = 0; u < m; u++)
                    cols[u] = Zt + b + (t + u) * k2;
                each_axpym(k2 - b, m, Z + t + b * k1, cols, P2 + b + b * k2);
            }
        }
        LAPACK_dpotf2("L", &K2, P2, &K2, &info);
        if (info == 0)
            each_unit(k2, P2);
    }
    return info;
}

/* R := M_DD^-1 R with each_factor's factors: R is k x nrhs (k = k1 + k2,
 * leading dimension ld). Forward: R1 = L1^-1 R1, R2 = (L2 L2')^-1 (R2 +
 * Z'R1); back: R1 = L1^-T (R1 - Z R2). With L = U diag(l) (each_unit()),
 * L^-1 = diag(1/l) U^-1 and L^-T = U'^-1 diag(1/l). */
static lapack_int each_apply(each_ws *w, size_t k1, size_t k2, double *R, size_t nrhs, size_t ld)
{
    const double *L1 = w->S, *Z = L1 + k1 * k1, *L2 = Z + k1 * k2, *Zt = L2 + k2 * k2;
    const double *cols[4] = {NULL, NULL, NULL, NULL};
    double co[4] = {0.0, 0.0, 0.0, 0.0};
    lapack_int info = 0, K1 = (lapack_int)k1, K2 = (lapack_int)k2, NR = (lapack_int)nrhs,
               LD = (lapack_int)ld;
    if (k1) {
        if ((info = LAPACKE_dtrtrs_work(LAPACK_COL_MAJOR, 'L', 'N', 'U', K1, NR, L1, K1, R, LD)) !=
            0)
            return info;
        each_scale_rows(k1, L1, 1, R, nrhs, ld);
    }
    if (k2) {
        for (size_t r = 0; r < nrhs && k1; r++)
            for (size_t t = 0; t < k1; t += 4) {
                size_t m = k1 - t < 4 ? k1 - t : 4;
                for (size_t u = 0; u < m; u++)
                    cols[u] = Zt + (t + u) * k2;
                each_axpym(k2, m, R + r * ld + t, cols, R + r * ld + k1);
            }
        if ((info = LAPACKE_dtrtrs_work(LAPACK_COL_MAJOR, 'L', 'N', 'U', K2, NR, L2, K2, R + k1,
                                        LD)) != 0)
            return info;
        each_scale_rows(k2, L2, 2, R + k1, nrhs, ld);
        if ((info = LAPACKE_dtrtrs_work(LAPACK_COL_MAJOR, 'U', 'N', 'U', K2, NR, L2, K2, R + k1,
                                        LD)) != 0)
            return info;
    }
    if (k1) {
        for (size_t r = 0; r < nrhs; r++)
            for (size_t b = 0; b < k2; b += 4) {
                size_t m = k2 - b < 4 ? k2 - b : 4;
                for (size_t u = 0; u < m; u++) {
                    cols[u] = Z + (b + u) * k1;
                    co[u] = -R[r * ld + k1 + b + u];
                }
                each_axpym(k1, m, co, cols, R + r * ld);
            }
        each_scale_rows(k1, L1, 1, R, nrhs, ld);
        info = LAPACKE_dtrtrs_work(LAPACK_COL_MAJOR, 'U', 'N', 'U', K1, NR, L1, K1, R, LD);
    }
    return info;
}

/* A full round on D = the current F xor B: make it the anchor, factorise,
 * and set c (and ca) = column i of ppt(M, D). Returns non-zero on failure. */
static int each_full(size_t n, size_t i, each_ws *w)
{
    /* B \ F into D1, F \ B into D2 (branch-free: every index is written,
     * only the counts move); the smaller one goes first. */
    size_t nr = 0, ne = 0;
    for (size_t j = 0; j < n; j++) {
        w->posa[j] = -1;
        w->slot[j] = -1;
        w->D1[nr] = (int)j;
        nr += (size_t)(w->inB[j] > w->inF[j]);
        w->D2[ne] = (int)j;
        ne += (size_t)(w->inF[j] > w->inB[j]);
    }
    int r_first = nr <= ne;
    const int *L1 = r_first ? w->D1 : w->D2, *L2 = r_first ? w->D2 : w->D1;
    size_t k1 = r_first ? nr : ne, k2 = r_first ? ne : nr, k = k1 + k2;
    for (size_t a = 0; a < k; a++) {
        w->Da[a] = a < k1 ? L1[a] : L2[a - k1];
        w->posa[w->Da[a]] = (int)a;
    }
    w->k1a = k1;
    w->k2a = k2;
    w->nslot = 0;
    int iInD = w->inB[i]; /* i is never free: in D iff in B */
    for (size_t a = 0; a < k; a++) {
        size_t d = (size_t)w->Da[a];
        w->y[a] = iInD ? (d == i ? 1.0 : 0.0) : w->M[d + i * n];
    }
    if (k && (each_factor(n, w, k1, k2) != 0 || each_apply(w, k1, k2, w->y, 1, k) != 0))
        return 1;
    /* Column i of ppt(M, D): i outside D: [-y; M_D'i - M_D'D y];
     * i inside D: [y; M_D'D y]. */
    double sg = iInD ? 1.0 : -1.0;
    const double *cols[4] = {NULL, NULL, NULL, NULL};
    double ys[4] = {0.0, 0.0, 0.0, 0.0};
    if (iInD)
        memset(w->c, 0, n * sizeof(double));
    else
        memcpy(w->c, w->M + i * n, n * sizeof(double));
    for (size_t a = 0; a < k; a += 4) {
        size_t m = k - a < 4 ? k - a : 4;
        for (size_t t = 0; t < m; t++) {
            cols[t] = w->M + (size_t)w->Da[a + t] * n;
            ys[t] = sg * w->y[a + t];
        }
        each_axpym(n, m, ys, cols, w->c);
    }
    for (size_t a = 0; a < k; a++)
        w->c[w->Da[a]] = sg * w->y[a];
    memcpy(w->ca, w->c, n * sizeof(double));
    return 0;
}

/* A round on D = D_a xor X (w->X, f indices) from the anchor: c = column i
 * of ppt(N, X), N = ppt(M, D_a). Column l of N on D_a is s_l W_l,
 * W_l = M_aa^-1 u_l (u_l = M_{D_a l} and s_l = -1 for l outside D_a, e_l and
 * +1 inside), and off D_a it is [l outside D_a] M_{.l} + s_l M_{.D_a} W_l;
 * column i of N is ca. Returns 1 to ask for a full round instead. */
static int each_bordered(size_t n, size_t f, each_ws *w)
{
    size_t ka = w->k1a + w->k2a, first = w->nslot;
    for (size_t b = 0; b < f; b++) {
        size_t l = (size_t)w->X[b];
        if (w->slot[l] >= 0)
            continue;
        if (w->nslot == EACH_SLOTS)
            return 1;
        double *u = w->W + w->nslot * n;
        w->slot[l] = (int)w->nslot++;
        for (size_t a = 0; a < ka; a++)
            u[a] = w->posa[l] >= 0 ? (w->Da[a] == (int)l ? 1.0 : 0.0) : w->M[w->Da[a] + l * n];
    }
    if (ka && w->nslot > first &&
        each_apply(w, w->k1a, w->k2a, w->W + first * n, w->nslot - first, n) != 0)
        return 1;
    /* N_XX (column-major f x f) and N_Xi. */
    for (size_t a = 0; a < f; a++) {
        size_t r = (size_t)w->X[a];
        int pr = w->posa[r];
        if (pr < 0)
            for (size_t d = 0; d < ka; d++)
                w->g[d] = w->M[r + (size_t)w->Da[d] * n]; /* row r of M on D_a */
        for (size_t b = 0; b < f; b++) {
            size_t l = (size_t)w->X[b];
            double sl = w->posa[l] >= 0 ? 1.0 : -1.0;
            const double *Wl = w->W + (size_t)w->slot[l] * n;
            double v;
            if (pr >= 0)
                v = sl * Wl[pr];
            else
                v = (w->posa[l] < 0 ? w->M[r + l * n] : 0.0) + sl * each_dot(ka, w->g, Wl);
            w->N[a + b * f] = v;
        }
        w->t[a] = w->ca[r];
    }
    if (f && LAPACKE_dgesv_work(LAPACK_COL_MAJOR, (lapack_int)f, 1, w->N, (lapack_int)f, w->ipiv,
                                w->t, (lapack_int)f) != 0)
        return 1;
    /* v = N_{.X} t: on D_a, gt = sum_b t_b s_b W_b; off D_a, the columns of M
     * outside D_a times t plus M_{.D_a} gt. c = ca - v, then c_X = -t. */
    double *gt = w->y;
    memset(gt, 0, ka * sizeof(double));
    for (size_t b = 0; b < f; b++) {
        size_t l = (size_t)w->X[b];
        each_axpy(ka, w->posa[l] >= 0 ? w->t[b] : -w->t[b], w->W + (size_t)w->slot[l] * n, gt);
    }
    memcpy(w->c, w->ca, n * sizeof(double));
    const double *cols[4] = {NULL, NULL, NULL, NULL};
    double ys[4] = {0.0, 0.0, 0.0, 0.0};
    size_t m = 0;
    for (size_t b = 0; b < f + ka; b++) {
        if (b < f && w->posa[w->X[b]] >= 0)
            continue;
        size_t l = b < f ? (size_t)w->X[b] : (size_t)w->Da[b - f];
        cols[m] = w->M + l * n;
        ys[m++] = b < f ? -w->t[b] : -gt[b - f];
        if (m == 4) {
            each_axpym(n, 4, ys, cols, w->c);
            m = 0;
        }
    }
    each_axpym(n, m, ys, cols, w->c);
    for (size_t a = 0; a < ka; a++)
        w->c[w->Da[a]] = w->ca[w->Da[a]] - gt[a];
    for (size_t a = 0; a < f; a++)
        w->c[w->X[a]] = -w->t[a];
    return 0;
}

/* c := p c; *xmax = the largest |c_j| on F. Returns non-zero if some c_j
 * is not finite. Two elements a step with their own running maxima (max is
 * exact: the order does not matter) and an integer flag: no long chains of
 * dependent floating-point operations. */
static int each_scale(size_t n, double p, const int *inF, double *restrict c, double *xmax)
{
    double m0 = 0.0, m1 = 0.0;
    int bad = 0;
    size_t j = 0;
    for (; j + 2 <= n; j += 2) {
        /* |c_j| on F, 0 off it (a non-finite c_j sets bad first) */
        double c0 = c[j] * p, c1 = c[j + 1] * p;
        double a0 = fabs(c0) * (double)inF[j], a1 = fabs(c1) * (double)inF[j + 1];
        c[j] = c0;
        c[j + 1] = c1;
        bad |= !(fabs(c0) <= DBL_MAX) | !(fabs(c1) <= DBL_MAX);
        m0 = a0 > m0 ? a0 : m0;
        m1 = a1 > m1 ? a1 : m1;
    }
    for (; j < n; j++) {
        double c0 = c[j] * p, a0 = inF[j] ? fabs(c0) : 0.0;
        c[j] = c0;
        bad |= !(fabs(c0) <= DBL_MAX);
        m0 = a0 > m0 ? a0 : m0;
    }
    *xmax = m0 > m1 ? m0 : m1;
    return bad;
}

/* The violators of c = [z_F; w_A]: c_j < -xtol on F, c_j < -tol off F, in
 * increasing order into vio; *mx and *ml get the largest violation on F and
 * off F (0 if none). Returns their number. Branch-free: every index is
 * written to vio and only the count moves. */
static size_t each_violators(size_t n, const int *inF, const double *c, double xtol, double tol,
                             int *vio, double *mx, double *ml)
{
    double vf = 0.0, vl = 0.0;
    size_t cnt = 0;
    const double th[2] = {-tol, -xtol};
    for (size_t j = 0; j < n; j++) {
        /* v = the violation or 0; a = v on F, b = v off F (v finite and
         * >= 0, so the products and the difference are exact). */
        double cj = c[j], f = (double)inF[j];
        int bad = cj < th[inF[j]];
        double v = bad ? -cj : 0.0, a = v * f, b = v - a;
        vio[cnt] = (int)j;
        cnt += (size_t)bad;
        vf = a > vf ? a : vf;
        vl = b > vl ? b : vl;
    }
    *mx = vf;
    *ml = vl;
    return cnt;
}

/* Task i by block pivoting on M = ppt(H, B) (see above). Returns 0 with
 * w->x (x-form, x_i = 0) and its free set w->inF, or 1 to give up. */
static int each_task(size_t n, const double *H, double hmax, size_t i, double p, each_ws *w,
                     size_t *iters)
{
    size_t maxit = lw_qp_bpp_max_iter(n), ninf_best = n + 1;
    int backup = 3, *vio = w->vio, anchored = 0;
    double qmax = 0.0, xmax = 0.0;
    for (size_t j = 0; j < n; j++) {
        w->q[j] = p * H[j * n + i];
        if (fabs(w->q[j]) > qmax)
            qmax = fabs(w->q[j]);
        w->inF[j] = j != i && w->inB[j];
    }
    for (size_t it = 0; it < maxit; it++) {
        *iters = it + 1;
        /* X = D xor D_a, bordered from the anchor unless it has more than
         * min(EACH_XMAX, |D_a|) indices. Branch-free: every index is
         * written to X (it has room for n) and only the count decides. */
        size_t f = 0, fmax = w->k1a + w->k2a < EACH_XMAX ? w->k1a + w->k2a : EACH_XMAX;
        int full = !anchored;
        if (!full) {
            for (size_t j = 0; j < n; j++) {
                w->X[f] = (int)j;
                f += (size_t)((w->inB[j] != w->inF[j]) != (w->posa[j] >= 0));
            }
            full = f > fmax;
        }
        if (!full && each_bordered(n, f, w) != 0)
            full = 1;
        if (full) {
            if (each_full(n, i, w) != 0)
                return 1;
            anchored = 1;
        }
        if (each_scale(n, p, w->inF, w->c, &xmax) != 0)
            return 1;
        /* c = [z_F; w_A]. Tolerances as bpp(). */
        double scale = hmax * (xmax > 1.0 ? xmax : 1.0) + qmax;
        double tol = LW_QP_KKT_RTOL * (scale > 0 ? scale : 1.0);
        double xtol = BPP_XTOL * (xmax > 1.0 ? xmax : 1.0);
        if (!(w->c[i] >= -tol))
            return 1; /* w_i = v'Hv / p_i > 0 in exact arithmetic */
        double mx = 0.0, ml = 0.0;
        size_t ninf = each_violators(n, w->inF, w->c, xtol, tol, vio, &mx, &ml);
        if (ninf == 0) {
            for (size_t j = 0; j < n; j++)
                w->x[j] = w->inF[j] && w->c[j] > 0.0 ? w->c[j] : 0.0;
            return 0;
        }
        if (ninf < ninf_best) {
            ninf_best = ninf;
            backup = 3;
        } else if (backup > 0) {
            backup--;
        } else {
            /* Murty's single flip: the last violator (its -c_j > 0 >= 0). */
            vio[0] = vio[ninf - 1];
            ninf = 1;
            mx = ml = 0.0;
        }
        double fr = it == 0 ? EACH_FLIP0 : EACH_FLIP1;
        for (size_t t = 0; t < ninf; t++) {
            size_t j = (size_t)vio[t];
            w->inF[j] ^= -w->c[j] >= fr * (w->inF[j] ? mx : ml);
        }
    }
    return 1;
}

/* finish()'s KKT test of w->x (free set w->inF) with g = Hx + q recomputed
 * from H. Returns the relative violation. */
static double each_kkt(size_t n, const double *H, double hmax, each_ws *w);

/* A solution whose KKT residual *kkt is above EACH_POLISH (an ill-conditioned
 * H): solve on its free set once more directly, as bpp()'s rounds do
 * (subproblem(): dposv on H_FF), and keep that if it is primal feasible and
 * its residual is smaller. */
static void each_polish(size_t n, const double *H, double hmax, each_ws *w, double *kkt)
{
    qp_ws qs = ws_carve(n, w->qpw);
    size_t m;
    double xmax = 1.0;
    for (size_t j = 0; j < n; j++)
        qs.inF[j] = w->inF[j];
    if (subproblem(n, H, w->q, 0, &qs, &m) != 0)
        return;
    for (size_t j = 0; j < n; j++)
        xmax = fmax(xmax, fabs(qs.xs[j]));
    for (size_t j = 0; j < n; j++)
        if (qs.xs[j] < -BPP_XTOL * xmax)
            return;
    memcpy(w->c, w->x, n * sizeof(double));
    for (size_t j = 0; j < n; j++)
        w->x[j] = qs.xs[j] > 0.0 ? qs.xs[j] : 0.0;
    double k2 = each_kkt(n, H, hmax, w);
    if (k2 < *kkt)
        *kkt = k2;
    else
        memcpy(w->x, w->c, n * sizeof(double));
}

static double each_kkt(size_t n, const double *H, double hmax, each_ws *w)
{
    double xmax = 0.0, qmax = 0.0, viol = 0.0;
    const double *cols[4] = {NULL, NULL, NULL, NULL};
    double co[4] = {0.0, 0.0, 0.0, 0.0};
    size_t m = 0;
    memcpy(w->g, w->q, n * sizeof(double));
    for (size_t j = 0; j < n; j++) {
        if (fabs(w->q[j]) > qmax)
            qmax = fabs(w->q[j]);
        if (w->x[j] != 0.0) {
            xmax = fmax(xmax, fabs(w->x[j]));
            cols[m] = H + j * n;
            co[m++] = w->x[j];
            if (m == 4) {
                each_axpym(n, 4, co, cols, w->g);
                m = 0;
            }
        }
    }
    each_axpym(n, m, co, cols, w->g);
    double scale = hmax * (xmax > 1.0 ? xmax : 1.0) + qmax;
    for (size_t j = 0; j < n; j++) {
        double lam = w->g[j];
        double v = w->inF[j] ? fabs(lam) : (lam < 0 ? -lam : 0.0);
        if (!(v <= viol))
            viol = v;
    }
    return viol / (scale > 0 ? scale : 1.0);
}

int lw_qp_dual_cone_each(size_t n, const double *H, const double *p, double *vsum, double *work,
                         lw_qp_info *info, lw_error *err)
{
    each_ws w = each_carve(n, work);
    if (info) {
        info->iters = 0;
        info->kkt = 0.0;
        info->fallback = 0;
    }
    for (size_t j = 0; j < n; j++)
        vsum[j] = 0.0;
    if (n == 0)
        return 0;
    double hmax = 0.0, kkt_max = 0.0;
    if (n < EACH_MIN_N) {
        /* Each task from scratch, as lw_qp_dual_cone() (its q, x slots and
         * workspace at the start of work: the least memory touched). */
        qp_ws qs = ws_carve(n, work);
        for (size_t i = 0; i < n; i++) {
            lw_qp_info qi;
            for (size_t j = 0; j < n; j++)
                qs.qq[j] = p[i] * H[j * n + i];
            int rc = lw_qp_solve(n, H, qs.qq, 0, LW_QP_AUTO, qs.xx, work, &qi, err);
            if (rc)
                return rc;
            kkt_max = qi.kkt > kkt_max ? qi.kkt : kkt_max;
            if (info) {
                info->iters += qi.iters;
                info->fallback++;
            }
            for (size_t j = 0; j < n; j++)
                vsum[j] += (j == i ? p[i] : 0.0) + qs.xx[j];
        }
        if (info)
            info->kkt = kkt_max;
        return 0;
    }
    for (size_t j = 0; j < n; j++)
        if (H[j * n + j] > hmax)
            hmax = H[j * n + j];
    /* The first base: the indices free in more than half of the cold starts
     * F = {j : q_j < 0}, q = p_i H e_i. */
    for (size_t j = 0; j < n; j++) {
        size_t neg = 0;
        for (size_t l = 0; l < n; l++)
            neg += (size_t)(l != j && H[j * n + l] < 0.0);
        w.inB[j] = 2 * neg > n;
        w.cnt[j] = 0;
    }
    size_t fallbacks = 0, solved = 0;
    int use_base = each_base(n, H, &w) == 0;
    int rebased = n < 2 * EACH_REBASE;
    for (size_t i = 0; i < n; i++) {
        if (use_base && !rebased && solved == EACH_REBASE) {
            for (size_t j = 0; j < n; j++)
                w.inB[j] = 2 * (size_t)w.cnt[j] > solved;
            use_base = each_base(n, H, &w) == 0;
            rebased = 1;
        }
        size_t it = 0;
        int ok = 0;
        if (use_base && p[i] > 0.0 && each_task(n, H, hmax, i, p[i], &w, &it) == 0) {
            double kkt = each_kkt(n, H, hmax, &w);
            if (kkt > EACH_POLISH)
                each_polish(n, H, hmax, &w, &kkt);
            if ((ok = kkt <= LW_QP_KKT_RTOL) && kkt > kkt_max)
                kkt_max = kkt;
        }
        if (info)
            info->iters += it;
        if (ok) {
            solved++;
            for (size_t j = 0; j < n; j++)
                w.cnt[j] += w.inF[j];
        } else {
            lw_qp_info qi;
            for (size_t j = 0; j < n; j++)
                w.q[j] = p[i] * H[j * n + i];
            int rc = lw_qp_solve(n, H, w.q, 0, LW_QP_AUTO, w.x, w.qpw, &qi, err);
            if (rc)
                return rc;
            if (qi.kkt > kkt_max)
                kkt_max = qi.kkt;
            if (info) {
                info->iters += qi.iters;
                info->fallback++;
            }
            if (use_base && p[i] > 0.0 && ++fallbacks > 2 + n / 16)
                use_base = 0;
        }
        for (size_t j = 0; j < n; j++)
            vsum[j] += (j == i ? p[i] : 0.0) + w.x[j];
    }
    if (info)
        info->kkt = kkt_max;
    return 0;
}
