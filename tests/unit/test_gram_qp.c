/*
 * test_gram_qp.c -- the QP solvers (lib/qp.c) and the Gram methods built on
 * them (pcgrad, mgda, pareto, upgrad, dualproj), checked against brute force
 * computed here from explicit gradient vectors.
 *
 * Every method test draws gradient vectors g_i (dimension 3 to 50), forms
 * G = [<g_i, g_j>], runs the method through the public API and compares
 * the returned coefficients, or the combined gradient sum_i c_i g_i, with a
 * straightforward implementation written here in vector space:
 *   - PCGrad: the projections applied to the vectors, in the same orders
 *     (the documented Fisher-Yates shuffle on lw_rand_u64).
 *   - MGDA and PE-LTR "exact": the min-norm point of the (bounded) convex
 *     hull by enumerating supports (solve on the affine hull of each subset,
 *     keep the feasible one of least norm).
 *   - PE-LTR "pe_ltr": the relaxed KKT system from vector inner products,
 *     then a projection onto the scaled simplex by bisection.
 *   - UPGrad and DualProj: the projection onto the dual cone
 *     {x : <h_j, x> >= 0} by enumerating the active constraints, on the
 *     vectors whose Gram is TorchJD's normalised, regularised G
 *     (h_j = [g_j / sqrt(tr G); sqrt(reg_eps) e_j]).
 * Gradient sets: random with mixed scales, conflicting, parallel and
 * anti-parallel, with a zero gradient, rank-deficient (T > d + 1), and a
 * float32-rounded (slightly indefinite) Gram. Plus direct KKT checks of
 * every QP solution, MGDA against a fine grid at T = 3, PCGrad's worked
 * example g = (1,1), (1,-1), (-1,1), and T = 256 runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brute.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lossweight.h"
#include "linalg.h"
#include "qp.h"

/* ---- small helpers ---------------------------------------------------- */

static uint64_t rng_state;
static uint64_t splitmix(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(splitmix() >> 11) * 0x1.0p-53; }
static double gauss(void)
{
    double u1 = 1.0 - unif(), u2 = unif();
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double dot(const double *a, const double *b, size_t d)
{
    double s = 0;
    for (size_t k = 0; k < d; k++)
        s += a[k] * b[k];
    return s;
}

/* G = g g' for T vectors of dimension d (rows of g). */
static void gram_of(size_t T, size_t d, const double *g, double *G)
{
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < T; j++)
            G[i * T + j] = dot(g + i * d, g + j * d, d);
}

/* out = sum_i c_i g_i. */
static void combine(size_t T, size_t d, const double *g, const double *c, double *out)
{
    for (size_t k = 0; k < d; k++)
        out[k] = 0;
    for (size_t i = 0; i < T; i++)
        for (size_t k = 0; k < d; k++)
            out[k] += c[i] * g[i * d + k];
}


/* Run one step of `method` on G (and losses L, may be NULL). */
static int run_method(const char *method, size_t T, const lw_value *params, size_t np,
                      uint64_t seed, uint64_t step, const double *G, const double *L, double *c,
                      lw_error *err)
{
    lw_task *tasks = calloc(T, sizeof *tasks);
    char(*names)[24] = calloc(T, sizeof *names);
    for (size_t i = 0; i < T; i++) {
        snprintf(names[i], sizeof names[i], "t%zu", i);
        lw_task_init(&tasks[i], names[i]);
    }
    lw_spec spec = {.method = method, .tasks = tasks, .n_tasks = T, .params = params,
                    .n_params = np, .seed = seed};
    lw_job *job = NULL;
    int rc = lw_job_create(&spec, &job, err);
    if (rc == 0) {
        lw_input in = {.step = step, .epoch = -1, .losses = L, .gram = G};
        rc = lw_job_step(job, &in, c, err);
        lw_job_free(job);
    }
    free(tasks);
    free(names);
    return rc;
}

static void run_ok(const char *method, size_t T, const lw_value *params, size_t np,
                   uint64_t seed, uint64_t step, const double *G, const double *L, double *c)
{
    lw_error err;
    int rc = run_method(method, T, params, np, seed, step, G, L, c, &err);
    if (rc)
        print_error("%s (T=%zu): %s [%s]\n", method, T, err.message, err.field);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < T; i++)
        assert_true(isfinite(c[i]));
}

static lw_value pstr(const char *name, const char *s)
{
    lw_value v = {.name = name, .kind = LW_VAL_STRING, .string = s};
    return v;
}
static lw_value pnum(const char *name, double x)
{
    lw_value v = {.name = name, .kind = LW_VAL_NUMBER, .number = x};
    return v;
}
static lw_value parr(const char *name, const double *a, size_t n)
{
    lw_value v = {.name = name, .kind = LW_VAL_ARRAY, .array = a, .len = n};
    return v;
}

static double max_diag(size_t T, const double *G)
{
    double m = 0;
    for (size_t i = 0; i < T; i++)
        if (G[i * T + i] > m)
            m = G[i * T + i];
    return m;
}

/* ---- gradient sets ---------------------------------------------------- */

enum { SET_RANDOM, SET_CONFLICT, SET_PARALLEL, SET_ZERO, SET_COUNT };
static const char *const set_names[] = {"random", "conflicting", "parallel", "zero"};

/* T vectors of dimension d into g (T x d). */
static void make_set(int kind, size_t T, size_t d, double *g)
{
    for (size_t i = 0; i < T; i++) {
        double scale = exp(2.0 * (unif() - 0.5) * log(10.0)); /* 0.1 .. 10 */
        for (size_t k = 0; k < d; k++)
            g[i * d + k] = scale * gauss();
    }
    if (kind == SET_CONFLICT) {
        /* A common direction, alternating sign, plus smaller noise. */
        double *b = malloc(d * sizeof *b);
        for (size_t k = 0; k < d; k++)
            b[k] = gauss();
        for (size_t i = 0; i < T; i++) {
            double s = (i % 2 ? -1.0 : 1.0) * (0.5 + unif());
            for (size_t k = 0; k < d; k++)
                g[i * d + k] = s * b[k] + 0.3 * g[i * d + k] / (1.0 + fabs(g[i * d + k]));
        }
        free(b);
    } else if (kind == SET_PARALLEL && T >= 2) {
        for (size_t k = 0; k < d; k++)
            g[1 * d + k] = 2.0 * g[k];
        if (T >= 3)
            for (size_t k = 0; k < d; k++)
                g[2 * d + k] = -0.5 * g[k];
    } else if (kind == SET_ZERO) {
        size_t z = (size_t)(splitmix() % T);
        for (size_t k = 0; k < d; k++)
            g[z * d + k] = 0.0;
    }
}

/* ---- brute force: min-norm point of {sum w_i h_i : sum w = 1, w >= lb} --
 * by enumerating the support S = {i : w_i > lb_i}. On S the KKT conditions
 * of the equality-constrained problem are <h_i, p> + nu = 0, sum w = 1,
 * with p = sum_i w_i h_i; inner products come from the vectors. Subsets
 * larger than max_support are skipped (Caratheodory: d + 1 suffice).
 * Writes p (the unique min-norm point) and returns |p|^2. */
static double bf_min_norm(size_t T, size_t d, const double *h, const double *lb,
                          size_t max_support, double *p_out)
{
    double best = INFINITY;
    double *A = malloc((T + 1) * (T + 1) * sizeof *A), *b = malloc((T + 1) * sizeof *b);
    double *w = malloc(T * sizeof *w), *p = malloc(d * sizeof *p);
    double *base = malloc(d * sizeof *base);
    size_t idx[32];
    double lbs = 0;
    for (size_t i = 0; i < T; i++)
        lbs += lb ? lb[i] : 0.0;
    for (size_t k = 0; k < d; k++) {
        base[k] = 0;
        for (size_t i = 0; i < T; i++)
            base[k] += (lb ? lb[i] : 0.0) * h[i * d + k];
    }
    assert_true(T <= 16);
    for (uint32_t mask = 1; mask < (1u << T); mask++) {
        size_t m = 0;
        for (size_t i = 0; i < T; i++)
            if (mask & (1u << i))
                idx[m++] = i;
        if (m > max_support)
            continue;
        size_t n = m + 1;
        for (size_t a = 0; a < m; a++) {
            for (size_t c = 0; c < m; c++)
                A[a * n + c] = dot(h + idx[a] * d, h + idx[c] * d, d);
            A[a * n + m] = 1.0;
            A[m * n + a] = 1.0;
            b[a] = -dot(h + idx[a] * d, base, d);
        }
        A[m * n + m] = 0.0;
        b[m] = 1.0 - lbs;
        if (brute_gauss_solve(n, A, b, 1e-13))
            continue;
        int ok = 1;
        for (size_t a = 0; a < m; a++)
            if (b[a] < -1e-12)
                ok = 0;
        if (!ok)
            continue;
        for (size_t i = 0; i < T; i++)
            w[i] = lb ? lb[i] : 0.0;
        for (size_t a = 0; a < m; a++)
            w[idx[a]] += b[a];
        combine(T, d, h, w, p);
        double v = dot(p, p, d);
        if (v < best) {
            best = v;
            memcpy(p_out, p, d * sizeof *p);
        }
    }
    free(A);
    free(b);
    free(w);
    free(p);
    free(base);
    return best;
}

/* ---- brute force: projection of a = sum u_i h_i onto {x : <h_j, x> >= 0}
 * by enumerating the active constraints S: x = a + sum_{j in S} mu_j h_j with
 * <h_j, x> = 0 on S, mu >= 0, and <h_j, x> >= 0 for all j. Returns the
 * coefficients v = u + mu (unique when the h_j are independent). */
static void bf_dual_cone(size_t T, size_t D, const double *h, const double *u, double *v)
{
    double *A = malloc(T * T * sizeof *A), *b = malloc(T * sizeof *b);
    double *a = malloc(D * sizeof *a), *x = malloc(D * sizeof *x), *mu = malloc(T * sizeof *mu);
    size_t idx[32];
    int found = 0;
    combine(T, D, h, u, a);
    double hmax = 0;
    for (size_t i = 0; i < T; i++)
        hmax = fmax(hmax, dot(h + i * D, h + i * D, D));
    for (uint32_t mask = 0; mask < (1u << T) && !found; mask++) {
        size_t m = 0;
        for (size_t i = 0; i < T; i++)
            if (mask & (1u << i))
                idx[m++] = i;
        for (size_t r = 0; r < m; r++) {
            for (size_t c = 0; c < m; c++)
                A[r * m + c] = dot(h + idx[r] * D, h + idx[c] * D, D);
            b[r] = -dot(h + idx[r] * D, a, D);
        }
        if (m && brute_gauss_solve(m, A, b, 1e-13))
            continue;
        int ok = 1;
        for (size_t r = 0; r < m; r++)
            if (b[r] < -1e-12)
                ok = 0;
        if (!ok)
            continue;
        for (size_t i = 0; i < T; i++)
            mu[i] = 0;
        for (size_t r = 0; r < m; r++)
            mu[idx[r]] = b[r];
        for (size_t k = 0; k < D; k++) {
            x[k] = a[k];
            for (size_t r = 0; r < m; r++)
                x[k] += b[r] * h[idx[r] * D + k];
        }
        double xn = sqrt(dot(x, x, D)) + sqrt(dot(a, a, D));
        for (size_t j = 0; j < T; j++)
            if (dot(h + j * D, x, D) < -1e-10 * sqrt(hmax) * xn)
                ok = 0;
        if (!ok)
            continue;
        for (size_t i = 0; i < T; i++)
            v[i] = u[i] + mu[i];
        found = 1;
    }
    assert_true(found);
    free(A);
    free(b);
    free(a);
    free(x);
    free(mu);
}

/* The vectors whose Gram is TorchJD's regularised normalised G:
 * h_j = [g_j / sqrt(tr G) (or 0 if tr G < norm_eps); sqrt(reg) e_j]. */
static double *torchjd_vectors(size_t T, size_t d, const double *g, double norm_eps,
                               double reg)
{
    size_t D = d + T;
    double *h = calloc(T * D, sizeof *h);
    double tr = 0;
    for (size_t i = 0; i < T; i++)
        tr += dot(g + i * d, g + i * d, d);
    for (size_t i = 0; i < T; i++) {
        for (size_t k = 0; k < d; k++)
            h[i * D + k] = tr < norm_eps ? 0.0 : g[i * d + k] / sqrt(tr);
        h[i * D + d + i] = sqrt(reg);
    }
    return h;
}

/* ---- KKT checks in the test's own terms -------------------------------- */

/* w minimises w'Hw over {sum w = 1, w >= lb}: feasibility, and
 * (Hw)_i >= rho for all i with equality where w_i > lb_i, rho = min (Hw). */
static void check_kkt_simplex(size_t n, const double *H, const double *lb, const double *w,
                              double tol)
{
    double s = 0, rho = INFINITY, hmax = max_diag(n, H);
    double *g = malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) {
        double l = lb ? lb[i] : 0.0;
        assert_true(w[i] >= l - 1e-15);
        s += w[i];
        g[i] = dot(H + i * n, w, n);
        if (g[i] < rho)
            rho = g[i];
    }
    assert_true(fabs(s - 1.0) <= 1e-12 * n);
    for (size_t i = 0; i < n; i++) {
        double l = lb ? lb[i] : 0.0;
        if (w[i] - l > 1e-7 && !(g[i] - rho <= tol * hmax)) {
            print_error("simplex KKT: task %zu w %.17g (Hw)_i - min %.3g > %.3g\n", i, w[i],
                        g[i] - rho, tol * hmax);
            fail();
        }
    }
    free(g);
}

/* v minimises v'Hv over v >= u: lambda = Hv >= 0, lambda_i = 0 where
 * v_i > u_i. */
static void check_kkt_cone(size_t n, const double *H, const double *u, const double *v,
                           double tol)
{
    double hmax = max_diag(n, H), vmax = 1;
    for (size_t i = 0; i < n; i++)
        vmax = fmax(vmax, fabs(v[i]));
    for (size_t i = 0; i < n; i++) {
        double lam = dot(H + i * n, v, n);
        assert_true(v[i] >= u[i]);
        if (!(lam >= -tol * hmax * vmax)) {
            print_error("cone KKT: lambda_%zu = %.3g < 0\n", i, lam);
            fail();
        }
        if (v[i] - u[i] > 1e-9 * vmax && !(fabs(lam) <= tol * hmax * vmax)) {
            print_error("cone KKT: v_%zu free but lambda = %.3g\n", i, lam);
            fail();
        }
    }
}

/* ---- QP solver, directly -------------------------------------------------- */

static void test_qp_kkt_random(void **st)
{
    (void)st;
    rng_state = 11;
    static const size_t Ts[] = {2, 3, 5, 8, 17, 40, 100};
    static const size_t ds[] = {3, 10, 60};
    for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++) {
        for (size_t b = 0; b < sizeof ds / sizeof ds[0]; b++) {
            for (int kind = 0; kind < SET_COUNT; kind++) {
                size_t T = Ts[a], d = ds[b];
                double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
                double *H = malloc(T * T * sizeof *H), *w = malloc(T * sizeof *w);
                double *u = calloc(T, sizeof *u), *lb = malloc(T * sizeof *lb);
                double *work = malloc(lw_qp_work_size(T) * sizeof *work);
                lw_qp_info info;
                lw_error err;
                double ridge;
                make_set(kind, T, d, g);
                gram_of(T, d, g, G);
                lw_la_symmetrize(T, G, H);
                assert_int_equal(lw_qp_ridge(T, H, work, &ridge, &err), 0);
                assert_true(ridge <= 1e-6 * max_diag(T, G) + 1e-300);
                /* Simplex, no bounds (MGDA). */
                assert_int_equal(lw_qp_simplex_lb(T, H, NULL, w, work, &info, &err), 0);
                assert_true(info.kkt <= LW_QP_KKT_RTOL);
                assert_true(info.iters <= lw_qp_max_iter(T));
                check_kkt_simplex(T, H, NULL, w, 1e-8);
                /* Simplex with lower bounds summing to 0.5. */
                for (size_t i = 0; i < T; i++)
                    lb[i] = 0.5 / (double)T * (0.2 + 1.6 * unif());
                double s = 0;
                for (size_t i = 0; i < T; i++)
                    s += lb[i];
                for (size_t i = 0; i < T; i++)
                    lb[i] *= 0.5 / s;
                assert_int_equal(lw_qp_simplex_lb(T, H, lb, w, work, &info, &err), 0);
                check_kkt_simplex(T, H, lb, w, 1e-8);
                /* Dual cone, every e_i / T, like UPGrad. */
                for (size_t i = 0; i < T; i++) {
                    u[i] = 1.0 / (double)T;
                    assert_int_equal(lw_qp_dual_cone(T, H, u, w, work, &info, &err), 0);
                    assert_true(info.kkt <= LW_QP_KKT_RTOL);
                    check_kkt_cone(T, H, u, w, 1e-8);
                    u[i] = 0.0;
                }
                /* Dual cone from a mixed-sign u. */
                for (size_t i = 0; i < T; i++)
                    u[i] = gauss();
                assert_int_equal(lw_qp_dual_cone(T, H, u, w, work, &info, &err), 0);
                check_kkt_cone(T, H, u, w, 1e-8);
                for (size_t i = 0; i < T; i++)
                    u[i] = 0;
                free(g), free(G), free(H), free(w), free(u), free(lb), free(work);
            }
        }
    }
}

/* Block pivoting (with its fallback) and the primal active-set method alone
 * give the same answer, for both problem shapes, each meeting the KKT
 * conditions; on well-conditioned problems block pivoting needs no fallback
 * and few rounds. */
static void test_qp_bpp_equals_primal(void **st)
{
    (void)st;
    rng_state = 12;
    size_t fallbacks = 0, solves = 0, bpp_iters_max = 0;
    for (int rep = 0; rep < 200; rep++) {
        size_t T = 2 + (size_t)(splitmix() % 60), d = 2 + (size_t)(splitmix() % 40);
        double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
        double *H = malloc(T * T * sizeof *H), *q = malloc(T * sizeof *q);
        double *x1 = malloc(T * sizeof *x1), *x2 = malloc(T * sizeof *x2);
        double *work = malloc(lw_qp_work_size(T) * sizeof *work);
        lw_qp_info i1, i2;
        lw_error err;
        double ridge;
        make_set(rep % SET_COUNT, T, d, g);
        gram_of(T, d, g, G);
        lw_la_symmetrize(T, G, H);
        assert_int_equal(lw_qp_ridge(T, H, work, &ridge, &err), 0);
        for (int eq = 0; eq < 2; eq++) {
            /* q = H r, as in every use (dual cone: r = u; bounds: r = c / s). */
            for (size_t i = 0; i < T; i++)
                x2[i] = eq ? 0.5 * unif() / (double)T : gauss();
            for (size_t i = 0; i < T; i++)
                q[i] = dot(H + i * T, x2, T);
            int rc1 = lw_qp_solve(T, H, q, eq, LW_QP_AUTO, x1, work, &i1, &err);
            if (rc1)
                print_error("auto T=%zu d=%zu eq=%d: %s\n", T, d, eq, err.message);
            int rc2 = lw_qp_solve(T, H, q, eq, LW_QP_PRIMAL, x2, work, &i2, &err);
            if (rc2)
                print_error("primal T=%zu d=%zu eq=%d: %s\n", T, d, eq, err.message);
            assert_int_equal(rc1, 0);
            assert_int_equal(rc2, 0);
            assert_true(i1.kkt <= LW_QP_KKT_RTOL && i2.kkt <= LW_QP_KKT_RTOL);
            assert_true(i2.iters <= lw_qp_max_iter(T) && !i2.fallback);
            /* The minimiser is unique, but with a rank-deficient G only the
             * combined gradient is well determined at the KKT tolerance:
             * compare (x1 - x2)' H (x1 - x2), and x itself at full rank. */
            double xmax = 1, dist = 0;
            for (size_t i = 0; i < T; i++) {
                assert_true(x1[i] >= 0 && x2[i] >= 0);
                xmax = fmax(xmax, fabs(x2[i]));
            }
            for (size_t i = 0; i < T; i++)
                for (size_t j = 0; j < T; j++)
                    dist += (x1[i] - x2[i]) * H[i * T + j] * (x1[j] - x2[j]);
            if (!(dist <= 1e-8 * max_diag(T, H) * xmax * xmax)) {
                print_error("T=%zu d=%zu eq=%d: |x1 - x2|_H^2 = %.3g\n", T, d, eq, dist);
                fail();
            }
            int full_rank = d >= T + 2 && (rep % SET_COUNT == SET_RANDOM || rep % SET_COUNT == SET_CONFLICT);
            /* Well-conditioned problems: block pivoting alone, in few rounds. */
            if (full_rank) {
                fallbacks += (size_t)i1.fallback;
                solves++;
                if (i1.iters > bpp_iters_max)
                    bpp_iters_max = i1.iters;
            }
            for (size_t i = 0; full_rank && i < T; i++) {
                if (!(fabs(x1[i] - x2[i]) <= 1e-6 * xmax)) {
                    print_error("T=%zu d=%zu eq=%d: x_%zu %.17g (bpp) vs %.17g (primal)\n", T,
                                d, eq, i, x1[i], x2[i]);
                    fail();
                }
            }
        }
        free(g), free(G), free(H), free(q), free(x1), free(x2), free(work);
    }
    assert_true(solves >= 20);
    assert_int_equal(fallbacks, 0);
    assert_true(bpp_iters_max <= 12);
    assert_int_equal(lw_qp_max_iter(10), 200);
    assert_int_equal(lw_qp_bpp_max_iter(10), 30);
}

/* Ridge: a PD matrix gets the first rung; a float32-rounded rank-deficient
 * Gram gets a positive ridge; a matrix that no Gram can be is refused. */
static void test_qp_ridge(void **st)
{
    (void)st;
    double H[4] = {18, -22, -22, 38}, work[64], ridge;
    lw_error err;
    assert_int_equal(lw_qp_ridge(2, H, work, &ridge, &err), 0);
    assert_true(fabs(ridge - 1e-12 * 28) < 1e-20);
    double bad[4] = {1, 3, 3, 1};
    assert_int_equal(lw_qp_ridge(2, bad, work, &ridge, &err), LW_EINVAL);
    assert_string_equal(err.field, "gram");
    double zero[4] = {0, 0, 0, 0};
    assert_int_equal(lw_qp_ridge(2, zero, work, &ridge, &err), 0);
    assert_true(ridge > 0);
}

/* ---- MGDA ------------------------------------------------------------------ */

static void test_mgda_torchjd_base(void **st)
{
    (void)st;
    double G[4] = {18, -22, -22, 38}, c[2];
    lw_value p = pstr("normalization", "none");
    run_ok("mgda", 2, &p, 1, 0, 0, G, NULL, c);
    assert_true(fabs(c[0] - 0.6) < 1e-9 && fabs(c[1] - 0.4) < 1e-9);
}

/* MGDA (each normalisation) against the enumerated min-norm point of the
 * normalised vectors: the combined gradient sum c_i g_i must be it. */
static void test_mgda_brute_force(void **st)
{
    (void)st;
    rng_state = 21;
    static const char *const norms[] = {"none", "l2", "loss", "loss+"};
    static const size_t Ts[] = {2, 3, 4, 6, 9};
    static const size_t ds[] = {3, 7, 20, 50};
    for (size_t nn = 0; nn < 4; nn++)
        for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++)
            for (size_t b = 0; b < sizeof ds / sizeof ds[0]; b++)
                for (int kind = 0; kind < SET_COUNT; kind++) {
                    size_t T = Ts[a], d = ds[b];
                    double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
                    double *hn = calloc(T * d, sizeof *hn), *L = malloc(T * sizeof *L);
                    double *c = malloc(T * sizeof *c), *p = malloc(d * sizeof *p);
                    double *dd = malloc(d * sizeof *dd);
                    make_set(kind, T, d, g);
                    gram_of(T, d, g, G);
                    size_t kept = 0;
                    for (size_t i = 0; i < T; i++) {
                        L[i] = 0.05 + 3 * unif();
                        double n = sqrt(dot(g + i * d, g + i * d, d));
                        double gam = nn == 0 ? 1 : nn == 1 ? n : nn == 2 ? L[i] : L[i] * n;
                        /* A zero gradient under l2 / loss+ is left out. */
                        if (!(gam > 0))
                            continue;
                        for (size_t k = 0; k < d; k++)
                            hn[kept * d + k] = g[i * d + k] / gam;
                        kept++;
                    }
                    lw_value prm = pstr("normalization", norms[nn]);
                    run_ok("mgda", T, &prm, 1, 1, 0, G, nn >= 2 ? L : NULL, c);
                    double best = bf_min_norm(kept, d, hn, NULL, d + 1, p);
                    combine(T, d, g, c, dd);
                    double scale = 0;
                    for (size_t i = 0; i < kept; i++)
                        scale = fmax(scale, dot(hn + i * d, hn + i * d, d));
                    double diff = 0;
                    for (size_t k = 0; k < d; k++)
                        diff = fmax(diff, fabs(dd[k] - p[k]));
                    if (!(diff <= 2e-6 * sqrt(scale)) ||
                        !(dot(dd, dd, d) <= best + 1e-10 * scale)) {
                        print_error("mgda %s T=%zu d=%zu %s: |d - p|max = %.3g, |d|^2 = %.17g, "
                                    "brute %.17g\n",
                                    norms[nn], T, d, set_names[kind], diff, dot(dd, dd, d), best);
                        fail();
                    }
                    /* Coefficients: non-negative; on the simplex after undoing
                     * the normaliser. */
                    double s = 0;
                    for (size_t i = 0; i < T; i++) {
                        double n = sqrt(G[i * T + i]);
                        double gam = nn == 0 ? 1 : nn == 1 ? n : nn == 2 ? L[i] : L[i] * n;
                        assert_true(c[i] >= 0);
                        s += gam > 0 ? c[i] * gam : 0;
                        if (!(gam > 0))
                            assert_true(c[i] == 0);
                    }
                    assert_true(fabs(s - 1) < 1e-9);
                    /* KKT of the QP on the normalised Gram. */
                    if (nn == 0) {
                        double mx = max_diag(T, G);
                        double *Hs = malloc(T * T * sizeof *Hs);
                        for (size_t k = 0; k < T * T; k++)
                            Hs[k] = G[k] / mx;
                        check_kkt_simplex(T, Hs, NULL, c, 1e-8);
                        free(Hs);
                    }
                    free(g), free(G), free(hn), free(L), free(c), free(p), free(dd);
                }
}

/* T = 3: no point of a fine grid over the simplex has a smaller norm. */
static void test_mgda_grid_T3(void **st)
{
    (void)st;
    rng_state = 22;
    for (int rep = 0; rep < 20; rep++) {
        size_t d = 3 + (size_t)(splitmix() % 20);
        double g[3 * 22], G[9], c[3], w[3], dd[22];
        make_set(rep % SET_COUNT, 3, d, g);
        gram_of(3, d, g, G);
        lw_value prm = pstr("normalization", "none");
        run_ok("mgda", 3, &prm, 1, 0, 0, G, NULL, c);
        combine(3, d, g, c, dd);
        double ours = dot(dd, dd, d), grid = INFINITY;
        const int N = 600;
        for (int a = 0; a <= N; a++)
            for (int b = 0; a + b <= N; b++) {
                w[0] = (double)a / N;
                w[1] = (double)b / N;
                w[2] = 1.0 - w[0] - w[1];
                combine(3, d, g, w, dd);
                grid = fmin(grid, dot(dd, dd, d));
            }
        /* Ours is at least as good as the grid, and the grid is close. */
        assert_true(ours <= grid + 1e-12 * max_diag(3, G));
        assert_true(grid - ours <= 1e-3 * max_diag(3, G));
    }
}

/* Rank-deficient Grams (T > d + 1) and float32-rounded ones (slightly
 * indefinite): no failure, finite output, the min-norm point. */
static void test_mgda_rank_deficient_and_float32(void **st)
{
    (void)st;
    rng_state = 23;
    for (int rep = 0; rep < 24; rep++) {
        size_t T = 6 + (size_t)(rep % 7), d = 3 + (size_t)(rep % 3);
        double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
        double *c = malloc(T * sizeof *c), *p = malloc(d * sizeof *p), *dd = malloc(d * sizeof *dd);
        make_set(rep % SET_COUNT, T, d, g);
        if (rep % 2) {
            /* float32 Gram of float32 vectors, symmetrised. */
            for (size_t i = 0; i < T * d; i++)
                g[i] = (float)g[i];
            for (size_t i = 0; i < T; i++)
                for (size_t j = 0; j <= i; j++) {
                    float s = 0;
                    for (size_t k = 0; k < d; k++)
                        s += (float)g[i * d + k] * (float)g[j * d + k];
                    G[i * T + j] = G[j * T + i] = s;
                }
        } else {
            gram_of(T, d, g, G);
        }
        lw_value prm = pstr("normalization", "none");
        run_ok("mgda", T, &prm, 1, 0, 0, G, NULL, c);
        double best = bf_min_norm(T, d, g, NULL, d + 1, p);
        combine(T, d, g, c, dd);
        double mx = max_diag(T, G);
        /* float32 rounding of G moves the answer by ~1e-7 relative. */
        double tol = rep % 2 ? 1e-3 : 2e-6;
        for (size_t k = 0; k < d; k++)
            assert_true(fabs(dd[k] - p[k]) <= tol * sqrt(mx));
        assert_true(dot(dd, dd, d) <= best + (rep % 2 ? 1e-6 : 1e-10) * mx);
        free(g), free(G), free(c), free(p), free(dd);
    }
}

static void test_mgda_needs_positive_losses(void **st)
{
    (void)st;
    double G[4] = {1, 0, 0, 1}, L[2] = {1.0, 0.0}, c[2];
    lw_value prm = pstr("normalization", "loss");
    lw_error err;
    assert_int_equal(run_method("mgda", 2, &prm, 1, 0, 0, G, NULL, c, &err), LW_EINVAL);
    assert_string_equal(err.field, "losses");
    assert_int_equal(run_method("mgda", 2, &prm, 1, 0, 0, G, L, c, &err), LW_EINVAL);
    assert_string_equal(err.field, "losses[1]");
    /* A zero Gram under l2: every task left out, c = 0. */
    double Z[4] = {0, 0, 0, 0};
    prm = pstr("normalization", "l2");
    run_ok("mgda", 2, &prm, 1, 0, 0, Z, NULL, c);
    assert_true(c[0] == 0 && c[1] == 0);
    /* Not a Gram at all: refused, not a NaN. */
    double bad[4] = {1, 3, 3, 1};
    prm = pstr("normalization", "none");
    assert_int_equal(run_method("mgda", 2, &prm, 1, 0, 0, bad, NULL, c, &err), LW_EINVAL);
}

/* ---- PCGrad ----------------------------------------------------------------- */

/* The documented order: Fisher-Yates from the front on lw_rand_u64. */
static void pcgrad_perm(uint64_t seed, uint64_t step, size_t i, size_t T, size_t *perm)
{
    for (size_t k = 0; k < T; k++)
        perm[k] = k;
    for (size_t k = 0; k + 1 < T; k++) {
        uint64_t r = lw_rand_u64(seed, step, 1 + i, k);
        size_t j = k + (size_t)(r % (T - k));
        size_t t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
}

/* LibMTL's PCGrad on the vectors themselves. */
static void pcgrad_vectors(size_t T, size_t d, const double *g, uint64_t seed, uint64_t step,
                           int mean, double *out)
{
    double *pc = malloc(d * sizeof *pc);
    size_t *perm = malloc(T * sizeof *perm);
    for (size_t k = 0; k < d; k++)
        out[k] = 0;
    for (size_t i = 0; i < T; i++) {
        memcpy(pc, g + i * d, d * sizeof *pc);
        pcgrad_perm(seed, step, i, T, perm);
        for (size_t p = 0; p < T; p++) {
            const double *gj = g + perm[p] * d;
            double dj = dot(pc, gj, d);
            if (dj < 0) {
                double nn = dot(gj, gj, d);
                for (size_t k = 0; k < d; k++)
                    pc[k] -= dj * gj[k] / (nn + 1e-8);
            }
        }
        for (size_t k = 0; k < d; k++)
            out[k] += pc[k];
    }
    if (mean)
        for (size_t k = 0; k < d; k++)
            out[k] /= (double)T;
    free(pc);
    free(perm);
}

static void test_pcgrad_brute_force(void **st)
{
    (void)st;
    rng_state = 31;
    static const size_t Ts[] = {2, 3, 4, 5, 8, 16};
    static const size_t ds[] = {3, 10, 50};
    for (int mean = 0; mean < 2; mean++)
        for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++)
            for (size_t b = 0; b < sizeof ds / sizeof ds[0]; b++)
                for (int kind = 0; kind < SET_COUNT; kind++) {
                    size_t T = Ts[a], d = ds[b];
                    uint64_t seed = splitmix(), step = splitmix() % 1000;
                    double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
                    double *c = malloc(T * sizeof *c), *dd = malloc(d * sizeof *dd);
                    double *ref = malloc(d * sizeof *ref);
                    make_set(kind, T, d, g);
                    gram_of(T, d, g, G);
                    lw_value prm = pstr("reduction", mean ? "mean" : "sum");
                    run_ok("pcgrad", T, &prm, 1, seed, step, G, NULL, c);
                    combine(T, d, g, c, dd);
                    pcgrad_vectors(T, d, g, seed, step, mean, ref);
                    double mx = sqrt(max_diag(T, G));
                    for (size_t k = 0; k < d; k++) {
                        if (!(fabs(dd[k] - ref[k]) <= 1e-9 * T * mx)) {
                            print_error("pcgrad T=%zu d=%zu %s: coord %zu %.17g vs %.17g\n", T, d,
                                        set_names[kind], k, dd[k], ref[k]);
                            fail();
                        }
                    }
                    free(g), free(G), free(c), free(dd), free(ref);
                }
}

/* g = (1,1), (1,-1), (-1,1): g2 and g3 conflict (and cancel), g1 conflicts
 * with neither; the shared gradient is g1 = (1, 1), in any order. */
static void test_pcgrad_worked_example(void **st)
{
    (void)st;
    double g[6] = {1, 1, 1, -1, -1, 1}, G[9], c[3], dd[2];
    gram_of(3, 2, g, G);
    for (uint64_t step = 0; step < 20; step++) {
        lw_value prm = pstr("reduction", "sum");
        run_ok("pcgrad", 3, &prm, 1, 7, step, G, NULL, c);
        double a = 2.0 / (2.0 + 1e-8); /* LibMTL's 1e-8 */
        assert_true(fabs(c[0] - 1.0) < 1e-15);
        assert_true(fabs(c[1] - (1 + a)) < 1e-12 && fabs(c[2] - (1 + a)) < 1e-12);
        combine(3, 2, g, c, dd);
        assert_true(fabs(dd[0] - 1) < 1e-8 && fabs(dd[1] - 1) < 1e-8);
        prm = pstr("reduction", "mean");
        run_ok("pcgrad", 3, &prm, 1, 7, step, G, NULL, c);
        assert_true(fabs(c[0] - 1.0 / 3) < 1e-15 && fabs(c[1] - (1 + a) / 3) < 1e-12);
    }
    /* TorchJD's two-task value (sum). */
    double B[4] = {18, -22, -22, 38}, c2[2];
    lw_value prm = pstr("reduction", "sum");
    run_ok("pcgrad", 2, &prm, 1, 0, 0, B, NULL, c2);
    assert_true(fabs(c2[0] - 2.2222222) < 1e-6 && fabs(c2[1] - 1.5789474) < 1e-6);
}

/* The order comes from (seed, step, task): a different step gives another
 * order (and, with several conflicts, other coefficients); the same inputs
 * give the same bits. */
static void test_pcgrad_deterministic_order(void **st)
{
    (void)st;
    rng_state = 32;
    size_t T = 6, d = 4;
    double g[24], G[36], c1[6], c2[6];
    make_set(SET_CONFLICT, T, d, g);
    gram_of(T, d, g, G);
    lw_value prm = pstr("reduction", "sum");
    run_ok("pcgrad", T, &prm, 1, 5, 3, G, NULL, c1);
    run_ok("pcgrad", T, &prm, 1, 5, 3, G, NULL, c2);
    assert_memory_equal(c1, c2, sizeof c1);
    int differ = 0;
    for (uint64_t step = 4; step < 12 && !differ; step++) {
        run_ok("pcgrad", T, &prm, 1, 5, step, G, NULL, c2);
        differ = memcmp(c1, c2, sizeof c1) != 0;
    }
    assert_true(differ);
}

/* ---- PE-LTR ----------------------------------------------------------------- */

/* Projection of v onto {x >= 0, sum x = s} by bisection on the threshold. */
static void bisect_project(size_t n, const double *v, double s, double *x)
{
    double lo = -1e3, hi = 1e3;
    for (size_t i = 0; i < n; i++) {
        lo = fmin(lo, v[i] - s);
        hi = fmax(hi, v[i]);
    }
    for (int it = 0; it < 200; it++) {
        double mid = 0.5 * (lo + hi), sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += fmax(v[i] - mid, 0);
        if (sum > s)
            lo = mid;
        else
            hi = mid;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = fmax(v[i] - 0.5 * (lo + hi), 0);
}

static void test_pareto_pe_ltr_brute_force(void **st)
{
    (void)st;
    rng_state = 41;
    static const size_t Ts[] = {2, 3, 4, 6, 9};
    static const size_t ds[] = {9, 20, 50};
    for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++)
        for (size_t b = 0; b < sizeof ds / sizeof ds[0]; b++)
            for (int kind = 0; kind < SET_COUNT; kind++) {
                if (kind == SET_PARALLEL)
                    continue; /* singular KKT matrix: see the next test */
                size_t T = Ts[a], d = ds[b], n = T + 1;
                double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
                double *c = malloc(T * sizeof *c), *lb = malloc(T * sizeof *lb);
                double *A = malloc(n * n * sizeof *A), *r = malloc(n * sizeof *r);
                double *base = malloc(d * sizeof *base), *x = malloc(T * sizeof *x);
                make_set(kind, T, d, g);
                gram_of(T, d, g, G);
                double ls = 0;
                for (size_t i = 0; i < T; i++)
                    ls += (lb[i] = 0.6 / (double)T * unif());
                /* Relaxed KKT from the vectors. */
                combine(T, d, g, lb, base);
                for (size_t i = 0; i < T; i++) {
                    for (size_t j = 0; j < T; j++)
                        A[i * n + j] = dot(g + i * d, g + j * d, d);
                    A[i * n + T] = A[T * n + i] = 1;
                    r[i] = -dot(g + i * d, base, d);
                }
                A[T * n + T] = 0;
                r[T] = 1 - ls;
                assert_int_equal(brute_gauss_solve(n, A, r, 1e-14), 0);
                bisect_project(T, r, 1 - ls, x);
                lw_value prm[2] = {pstr("solver", "pe_ltr"), parr("c", lb, T)};
                run_ok("pareto", T, prm, 2, 0, 0, G, NULL, c);
                for (size_t i = 0; i < T; i++) {
                    if (!(fabs(c[i] - (x[i] + lb[i])) <= 1e-8)) {
                        print_error("pe_ltr T=%zu d=%zu %s: w_%zu %.17g vs %.17g\n", T, d,
                                    set_names[kind], i, c[i], x[i] + lb[i]);
                        fail();
                    }
                    assert_true(c[i] >= lb[i]);
                }
                free(g), free(G), free(c), free(lb), free(A), free(r), free(base), free(x);
            }
}

/* Duplicate and zero gradients make the KKT matrix singular: the
 * pseudo-inverse path gives a finite, feasible, symmetric answer. */
static void test_pareto_pe_ltr_singular(void **st)
{
    (void)st;
    double g[3 * 4] = {1, 2, 0, 1, 1, 2, 0, 1, -1, 0.5, 2, 0}, G[9], c[3];
    gram_of(3, 4, g, G);
    double lb[3] = {0.1, 0.1, 0.1};
    lw_value prm[2] = {pstr("solver", "pe_ltr"), parr("c", lb, 3)};
    run_ok("pareto", 3, prm, 2, 0, 0, G, NULL, c);
    assert_true(fabs(c[0] - c[1]) < 1e-9);
    assert_true(fabs(c[0] + c[1] + c[2] - 1) < 1e-12);
    for (int i = 0; i < 3; i++)
        assert_true(c[i] >= 0.1);
    double Z[9] = {0};
    run_ok("pareto", 3, prm, 2, 0, 0, Z, NULL, c);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(c[i] - 1.0 / 3) < 1e-9);
    /* Rank-deficient, T = 12 in dimension 3. */
    rng_state = 42;
    double g12[36], G12[144], c12[12], lb12[12];
    make_set(SET_RANDOM, 12, 3, g12);
    gram_of(12, 3, g12, G12);
    for (int i = 0; i < 12; i++)
        lb12[i] = 0.02;
    lw_value p12[2] = {pstr("solver", "pe_ltr"), parr("c", lb12, 12)};
    run_ok("pareto", 12, p12, 2, 0, 0, G12, NULL, c12);
    double s = 0;
    for (int i = 0; i < 12; i++) {
        assert_true(c12[i] >= 0.02);
        s += c12[i];
    }
    assert_true(fabs(s - 1) < 1e-12);
}

static void test_pareto_exact_brute_force(void **st)
{
    (void)st;
    rng_state = 43;
    static const size_t Ts[] = {2, 3, 4, 6, 8};
    static const size_t ds[] = {3, 8, 30};
    for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++)
        for (size_t b = 0; b < sizeof ds / sizeof ds[0]; b++)
            for (int kind = 0; kind < SET_COUNT; kind++) {
                size_t T = Ts[a], d = ds[b];
                double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
                double *c = malloc(T * sizeof *c), *lb = malloc(T * sizeof *lb);
                double *p = malloc(d * sizeof *p), *dd = malloc(d * sizeof *dd);
                make_set(kind, T, d, g);
                gram_of(T, d, g, G);
                for (size_t i = 0; i < T; i++)
                    lb[i] = 0.8 / (double)T * unif();
                lw_value prm[2] = {pstr("solver", "exact"), parr("c", lb, T)};
                run_ok("pareto", T, prm, 2, 0, 0, G, NULL, c);
                double best = bf_min_norm(T, d, g, lb, d + 1, p);
                combine(T, d, g, c, dd);
                double mx = max_diag(T, G);
                for (size_t k = 0; k < d; k++)
                    assert_true(fabs(dd[k] - p[k]) <= 2e-6 * sqrt(mx));
                assert_true(dot(dd, dd, d) <= best + 1e-10 * mx);
                double *Hs = malloc(T * T * sizeof *Hs);
                for (size_t k = 0; k < T * T; k++)
                    Hs[k] = G[k] / mx;
                check_kkt_simplex(T, Hs, lb, c, 1e-8);
                free(Hs);
                free(g), free(G), free(c), free(lb), free(p), free(dd);
            }
}

static void test_pareto_bounds_checked(void **st)
{
    (void)st;
    double G[4] = {1, 0, 0, 1}, c[2], lb[2] = {0.5, 0.5};
    lw_value prm[1] = {parr("c", lb, 2)};
    lw_error err;
    assert_int_equal(run_method("pareto", 2, prm, 1, 0, 0, G, NULL, c, &err), LW_EINVAL);
    assert_string_equal(err.field, "params.c");
    double neg[2] = {-0.1, 0.2};
    prm[0] = parr("c", neg, 2);
    assert_int_equal(run_method("pareto", 2, prm, 1, 0, 0, G, NULL, c, &err), LW_EINVAL);
    /* Default c = 0: "exact" is MGDA. */
    double B[4] = {18, -22, -22, 38};
    prm[0] = pstr("solver", "exact");
    run_ok("pareto", 2, prm, 1, 0, 0, B, NULL, c);
    assert_true(fabs(c[0] - 0.6) < 1e-9 && fabs(c[1] - 0.4) < 1e-9);
}

/* ---- UPGrad and DualProj ---------------------------------------------------- */

static void test_torchjd_base_values(void **st)
{
    (void)st;
    double B[4] = {18, -22, -22, 38}, c[2];
    run_ok("upgrad", 2, NULL, 0, 0, 0, B, NULL, c);
    assert_true(fabs(c[0] - 1.11092) < 1e-5 && fabs(c[1] - 0.78943) < 1e-5);
    run_ok("dualproj", 2, NULL, 0, 0, 0, B, NULL, c);
    assert_true(fabs(c[0] - 0.61092) < 1e-5 && fabs(c[1] - 0.5) < 1e-5);
}

static void check_upgrad_like(const char *method, size_t T, size_t d, const double *g,
                              double norm_eps, double reg, const char *what)
{
    double *G = malloc(T * T * sizeof *G), *c = malloc(T * sizeof *c);
    double *u = calloc(T, sizeof *u), *v = malloc(T * sizeof *v), *ref = calloc(T, sizeof *ref);
    gram_of(T, d, g, G);
    lw_value prm[2] = {pnum("norm_eps", norm_eps), pnum("reg_eps", reg)};
    run_ok(method, T, prm, 2, 0, 0, G, NULL, c);
    double *h = torchjd_vectors(T, d, g, norm_eps, reg);
    if (strcmp(method, "upgrad") == 0) {
        for (size_t i = 0; i < T; i++) {
            u[i] = 1.0 / (double)T;
            bf_dual_cone(T, d + T, h, u, v);
            u[i] = 0.0;
            for (size_t k = 0; k < T; k++)
                ref[k] += v[k];
        }
    } else {
        for (size_t i = 0; i < T; i++)
            u[i] = 1.0 / (double)T;
        bf_dual_cone(T, d + T, h, u, ref);
    }
    for (size_t i = 0; i < T; i++) {
        if (!(fabs(c[i] - ref[i]) <= 1e-7 * (1 + fabs(ref[i])))) {
            print_error("%s T=%zu d=%zu %s reg %g: c_%zu = %.17g, brute force %.17g\n", method,
                        T, d, what, reg, i, c[i], ref[i]);
            fail();
        }
    }
    free(G), free(c), free(u), free(v), free(ref), free(h);
}

static void test_upgrad_dualproj_brute_force(void **st)
{
    (void)st;
    rng_state = 51;
    static const size_t Ts[] = {2, 3, 4, 5, 7};
    static const size_t ds[] = {3, 8, 50};
    static const double regs[] = {1e-4, 1e-2};
    for (size_t r = 0; r < 2; r++)
        for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++)
            for (size_t b = 0; b < sizeof ds / sizeof ds[0]; b++)
                for (int kind = 0; kind < SET_COUNT; kind++) {
                    size_t T = Ts[a], d = ds[b];
                    double *g = malloc(T * d * sizeof *g);
                    make_set(kind, T, d, g);
                    check_upgrad_like("upgrad", T, d, g, 1e-4, regs[r], set_names[kind]);
                    check_upgrad_like("dualproj", T, d, g, 1e-4, regs[r], set_names[kind]);
                    free(g);
                }
}

/* reg_eps = 0 on independent gradients: the plain dual-cone projection. */
static void test_upgrad_dualproj_no_reg(void **st)
{
    (void)st;
    rng_state = 52;
    for (int rep = 0; rep < 20; rep++) {
        size_t T = 2 + (size_t)(rep % 5), d = 10 + (size_t)(rep % 3) * 20;
        double *g = malloc(T * d * sizeof *g);
        make_set(rep % 2 ? SET_CONFLICT : SET_RANDOM, T, d, g);
        check_upgrad_like("upgrad", T, d, g, 1e-4, 0.0, "no-reg");
        check_upgrad_like("dualproj", T, d, g, 1e-4, 0.0, "no-reg");
        free(g);
    }
    /* A zero Gram (trace below norm_eps): c = 1/T each. */
    double Z[9] = {0}, c[3];
    run_ok("upgrad", 3, NULL, 0, 0, 0, Z, NULL, c);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(c[i] - 1.0 / 3) < 1e-12);
    lw_value prm[1] = {pnum("reg_eps", 0.0)};
    run_ok("dualproj", 3, prm, 1, 0, 0, Z, NULL, c);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(c[i] - 1.0 / 3) < 1e-12);
}

/* ---- robustness: rank deficiency, float32 rounding, T = 256 ----------------- */

static void float32_gram(size_t T, size_t d, const double *g, double *G)
{
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j <= i; j++) {
            float s = 0;
            for (size_t k = 0; k < d; k++)
                s += (float)g[i * d + k] * (float)g[j * d + k];
            G[i * T + j] = G[j * T + i] = s;
        }
}

static void run_all_methods(size_t T, const double *G, const char *what)
{
    double *c = malloc(T * sizeof *c);
    lw_value p1 = pstr("normalization", "l2");
    lw_value p0 = pstr("normalization", "none");
    lw_value pe[1] = {pstr("solver", "exact")};
    lw_value pl[1] = {pstr("solver", "pe_ltr")};
    lw_value p00[2] = {pnum("norm_eps", 1e-4), pnum("reg_eps", 0.0)};
    struct {
        const char *m;
        const lw_value *p;
        size_t np;
    } runs[] = {{"pcgrad", NULL, 0},   {"mgda", &p0, 1},     {"mgda", &p1, 1},
                {"pareto", pl, 1},     {"pareto", pe, 1},    {"upgrad", NULL, 0},
                {"upgrad", p00, 2},    {"dualproj", NULL, 0}, {"dualproj", p00, 2}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        lw_error err;
        int rc = run_method(runs[r].m, T, runs[r].p, runs[r].np, 9, 1, G, NULL, c, &err);
        if (rc)
            print_error("%s on %s (T=%zu): %s\n", runs[r].m, what, T, err.message);
        assert_int_equal(rc, 0);
        for (size_t i = 0; i < T; i++)
            assert_true(isfinite(c[i]));
        if (strcmp(runs[r].m, "mgda") == 0 && runs[r].p == &p0) {
            double mx = max_diag(T, G), *Hs = malloc(T * T * sizeof *Hs);
            for (size_t k = 0; k < T * T; k++)
                Hs[k] = G[k] / mx;
            check_kkt_simplex(T, Hs, NULL, c, 1e-6);
            free(Hs);
        }
    }
    free(c);
}

static void test_robust_rank_deficient_float32(void **st)
{
    (void)st;
    rng_state = 61;
    static const size_t Ts[] = {5, 12, 40};
    static const size_t ds[] = {2, 3, 5};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 3; b++)
            for (int kind = 0; kind < SET_COUNT; kind++) {
                size_t T = Ts[a], d = ds[b];
                double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
                make_set(kind, T, d, g);
                gram_of(T, d, g, G);
                run_all_methods(T, G, "rank-deficient");
                float32_gram(T, d, g, G);
                run_all_methods(T, G, "float32 rank-deficient");
                free(g), free(G);
            }
    /* Nearly parallel gradients: g_i = b + 1e-7 noise. */
    size_t T = 8, d = 30;
    double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
    for (size_t k = 0; k < d; k++)
        g[k] = gauss();
    for (size_t i = 1; i < T; i++)
        for (size_t k = 0; k < d; k++)
            g[i * d + k] = g[k] * (i % 2 ? 1 : -1) + 1e-7 * gauss();
    gram_of(T, d, g, G);
    run_all_methods(T, G, "nearly parallel");
    float32_gram(T, d, g, G);
    run_all_methods(T, G, "nearly parallel float32");
    free(g), free(G);
}

static void test_robust_T256(void **st)
{
    (void)st;
    rng_state = 71;
    static const struct {
        int kind;
        size_t d;
        int f32;
    } sets[] = {{SET_RANDOM, 400, 1}, {SET_CONFLICT, 50, 0}, {SET_ZERO, 50, 1}};
    for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++) {
        size_t T = 256, d = sets[s].d;
        double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
        make_set(sets[s].kind, T, d, g);
        if (sets[s].f32)
            float32_gram(T, d, g, G);
        else
            gram_of(T, d, g, G);
        run_all_methods(T, G, "T=256");
        free(g), free(G);
    }
}

/* UPGrad's driver, lw_qp_dual_cone_each() (pivoting on a shared principal
 * pivot transform of H, each task's factorisation reused across its rounds),
 * against the cold solve, lw_qp_dual_cone() for every e_i / T from scratch:
 * the same combined gradient within the KKT tolerance, on random, conflicting
 * and rank-deficient Grams at T = 8, 64, 128, with TorchJD's reg_eps and
 * without (a ridge of 1e-12 only: the ill-conditioned case, where tasks may
 * fall back to the cold solve). Also: every task meets the KKT test, the fast
 * path is the one taken on the well-conditioned Grams, the result does not
 * depend on the run (same bits twice), and the upgrad method returns
 * exactly the driver's result. */
static void test_upgrad_each_equals_cold(void **st)
{
    (void)st;
    rng_state = 91;
    static const size_t Ts[] = {8, 64, 128};
    static const struct {
        int kind;
        int rankdef; /* d = T / 4 instead of d = T + 8 */
        const char *what;
    } sets[] = {{SET_RANDOM, 0, "random"},
                {SET_CONFLICT, 0, "conflicting"},
                {SET_RANDOM, 1, "rank-deficient"},
                {SET_CONFLICT, 1, "rank-deficient conflicting"}};
    static const double regs[] = {1e-4, 0.0};
    for (size_t a = 0; a < sizeof Ts / sizeof Ts[0]; a++)
        for (size_t s = 0; s < sizeof sets / sizeof sets[0]; s++)
            for (size_t r = 0; r < sizeof regs / sizeof regs[0]; r++) {
                size_t T = Ts[a], d = sets[s].rankdef ? (T / 4 > 2 ? T / 4 : 2) : T + 8;
                double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
                double *H = malloc(T * T * sizeof *H), *u = calloc(T, sizeof *u);
                double *v = malloc(T * sizeof *v), *cold = calloc(T, sizeof *cold);
                double *c1 = malloc(T * sizeof *c1), *c2 = malloc(T * sizeof *c2);
                double *cm = malloc(T * sizeof *cm), *p = malloc(T * sizeof *p);
                size_t wn = lw_qp_each_work_size(T);
                assert_true(wn >= lw_qp_work_size(T));
                double *work = malloc(wn * sizeof *work);
                lw_qp_info info, qi;
                lw_error err;
                double ridge;
                make_set(sets[s].kind, T, d, g);
                gram_of(T, d, g, G);
                lw_qp_torchjd_gram(T, G, 1e-4, regs[r], H);
                assert_int_equal(lw_qp_ridge(T, H, work, &ridge, &err), 0);
                for (size_t i = 0; i < T; i++) {
                    p[i] = 1.0 / (double)T;
                    u[i] = 1.0 / (double)T;
                    int rc = lw_qp_dual_cone(T, H, u, v, work, &qi, &err);
                    if (rc)
                        print_error("cold T=%zu %s: %s\n", T, sets[s].what, err.message);
                    assert_int_equal(rc, 0);
                    u[i] = 0.0;
                    for (size_t k = 0; k < T; k++)
                        cold[k] += v[k];
                }
                int rc = lw_qp_dual_cone_each(T, H, p, c1, work, &info, &err);
                if (rc)
                    print_error("each T=%zu %s: %s\n", T, sets[s].what, err.message);
                assert_int_equal(rc, 0);
                assert_true(info.kkt <= LW_QP_KKT_RTOL);
                assert_true(info.iters > 0);
                if (regs[r] > 0 && !sets[s].rankdef && info.fallback != 0) {
                    print_error("T=%zu %s: %d tasks fell back\n", T, sets[s].what,
                                info.fallback);
                    fail();
                }
                /* Same combined gradient: (c1 - cold)'H(c1 - cold) at the
                 * KKT tolerance's scale, as test_qp_bpp_equals_primal. */
                double cmax = 1, dist = 0;
                for (size_t i = 0; i < T; i++) {
                    assert_true(isfinite(c1[i]) && c1[i] >= 0);
                    cmax = fmax(cmax, fabs(cold[i]));
                }
                for (size_t i = 0; i < T; i++)
                    for (size_t j = 0; j < T; j++)
                        dist += (c1[i] - cold[i]) * H[i * T + j] * (c1[j] - cold[j]);
                if (!(dist <= 1e-8 * max_diag(T, H) * cmax * cmax)) {
                    print_error("T=%zu %s reg %g: |c_each - c_cold|_H^2 = %.3g (%d fallbacks)\n",
                                T, sets[s].what, regs[r], dist, info.fallback);
                    fail();
                }
                /* At full rank with reg_eps the minimisers are unique: the
                 * coefficients agree too, to what the KKT tolerance allows
                 * (a 1e-9 relative gradient residual per task, amplified by
                 * up to 1 / reg_eps and summed over T tasks; the mixed-scale
                 * random sets see ~6e-7 at T = 128). */
                for (size_t i = 0; regs[r] > 0 && !sets[s].rankdef && i < T; i++) {
                    if (!(fabs(c1[i] - cold[i]) <= 1e-5 * cmax)) {
                        print_error("T=%zu %s: c_%zu %.17g (each) vs %.17g (cold)\n", T,
                                    sets[s].what, i, c1[i], cold[i]);
                        fail();
                    }
                }
                assert_int_equal(lw_qp_dual_cone_each(T, H, p, c2, work, NULL, &err), 0);
                assert_memory_equal(c1, c2, T * sizeof *c1);
                lw_value prm[2] = {pnum("norm_eps", 1e-4), pnum("reg_eps", regs[r])};
                run_ok("upgrad", T, prm, 2, 0, 0, G, NULL, cm);
                assert_memory_equal(c1, cm, T * sizeof *c1);
                free(g), free(G), free(H), free(u), free(v), free(cold), free(c1), free(c2);
                free(cm), free(p), free(work);
            }
}

/* The same job spec and inputs give the same bits (fresh jobs, repeated). */
static void test_same_inputs_same_bits(void **st)
{
    (void)st;
    rng_state = 81;
    size_t T = 40, d = 25;
    double *g = malloc(T * d * sizeof *g), *G = malloc(T * T * sizeof *G);
    double *c1 = malloc(T * sizeof *c1), *c2 = malloc(T * sizeof *c2);
    make_set(SET_CONFLICT, T, d, g);
    float32_gram(T, d, g, G);
    static const char *const methods[] = {"pcgrad", "mgda", "pareto", "upgrad", "dualproj"};
    for (size_t m = 0; m < 5; m++) {
        run_ok(methods[m], T, NULL, 0, 4, 9, G, NULL, c1);
        for (int rep = 0; rep < 3; rep++) {
            run_ok(methods[m], T, NULL, 0, 4, 9, G, NULL, c2);
            assert_memory_equal(c1, c2, T * sizeof *c1);
        }
    }
    free(g), free(G), free(c1), free(c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qp_kkt_random),
        cmocka_unit_test(test_qp_bpp_equals_primal),
        cmocka_unit_test(test_qp_ridge),
        cmocka_unit_test(test_mgda_torchjd_base),
        cmocka_unit_test(test_mgda_brute_force),
        cmocka_unit_test(test_mgda_grid_T3),
        cmocka_unit_test(test_mgda_rank_deficient_and_float32),
        cmocka_unit_test(test_mgda_needs_positive_losses),
        cmocka_unit_test(test_pcgrad_brute_force),
        cmocka_unit_test(test_pcgrad_worked_example),
        cmocka_unit_test(test_pcgrad_deterministic_order),
        cmocka_unit_test(test_pareto_pe_ltr_brute_force),
        cmocka_unit_test(test_pareto_pe_ltr_singular),
        cmocka_unit_test(test_pareto_exact_brute_force),
        cmocka_unit_test(test_pareto_bounds_checked),
        cmocka_unit_test(test_torchjd_base_values),
        cmocka_unit_test(test_upgrad_dualproj_brute_force),
        cmocka_unit_test(test_upgrad_dualproj_no_reg),
        cmocka_unit_test(test_robust_rank_deficient_float32),
        cmocka_unit_test(test_robust_T256),
        cmocka_unit_test(test_upgrad_each_equals_cold),
        cmocka_unit_test(test_same_inputs_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
