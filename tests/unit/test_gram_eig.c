/*
 * test_gram_eig.c -- the Gram-based methods built on eigen-decompositions
 * and root finding: imtl_g, imtl, cagrad, aligned_mtl, nash_mtl, gradvac,
 * fairgrad (and the not-served graddrop and moco rows).
 *
 * The library only ever sees G. Every test here starts from explicit
 * gradient vectors g_i (dimension 3 to 300), forms G from them, runs the
 * method through the public API, and checks the combined gradient
 * sum_i c_i g_i against what the anchor's definition gives when computed
 * directly on the vectors by a straightforward implementation written here:
 *
 *   imtl_g      LibMTL's closed form from the unit vectors and the
 *               differences (Gaussian elimination), and impartiality:
 *               <d, g_i/||g_i||> equal for all i;
 *   imtl        the same on exp(s_i) g_i with s stepped by a hand-written
 *               PyTorch Adam;
 *   cagrad      the KKT conditions of the inner problem evaluated on the
 *               vectors, its objective against a projected-gradient solve,
 *               and d = (g0 + lam g_x)/r rebuilt from the vectors;
 *   aligned_mtl a Jacobi eigen-solver on the vectors' inner products, and
 *               the defining property: B J has orthogonal rows of equal
 *               norm sqrt(lam_min) (B's columns from preference = e_k);
 *   nash_mtl    alpha_i <g_i, d> = 1 on the vectors, and the clipping;
 *   gradvac     the sequential corrections on the vectors themselves, in
 *               the documented random order, over several steps;
 *   fairgrad    <g_i, d> = x_i^(-1/alpha) on the vectors.
 *
 * Then the awkward Grams: exactly conflicting, parallel and zero
 * gradients, all-zero, rank-deficient (T > dimension), slightly indefinite
 * (float32-like noise), T = 1 and T = 256: the step must succeed with
 * finite numbers, with the documented value where there is one.
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

#define MAXT 256

/* ---- small helpers ---- */

static uint64_t rng_state;

static uint64_t rng_u64(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unif(void) { return ((double)(rng_u64() >> 11) + 0.5) / 9007199254740992.0; }

static double rng_normal(void)
{
    double u1 = rng_unif(), u2 = rng_unif();
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double dot(const double *a, const double *b, size_t d)
{
    double s = 0.0;
    for (size_t k = 0; k < d; k++)
        s += a[k] * b[k];
    return s;
}

static double vnorm(const double *a, size_t d) { return sqrt(dot(a, a, d)); }

/* J: T x d row-major gradients. */
static double *rand_grads(size_t T, size_t d, double mean)
{
    double *J = malloc(T * d * sizeof(double));
    for (size_t i = 0; i < T * d; i++)
        J[i] = rng_normal() + mean;
    return J;
}

static void gram_of(const double *J, size_t T, size_t d, double *G)
{
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j <= i; j++)
            G[i * T + j] = G[j * T + i] = dot(J + i * d, J + j * d, d);
}

/* out = sum_i c_i g_i. */
static void combine(const double *J, size_t T, size_t d, const double *c, double *out)
{
    for (size_t k = 0; k < d; k++)
        out[k] = 0.0;
    for (size_t i = 0; i < T; i++)
        for (size_t k = 0; k < d; k++)
            out[k] += c[i] * J[i * d + k];
}

static char task_name_buf[MAXT][24];

static lw_job *make_job(const char *method, size_t T, const lw_value *params, size_t np,
                        uint64_t seed)
{
    lw_task tasks[MAXT];
    for (size_t i = 0; i < T; i++) {
        snprintf(task_name_buf[i], sizeof task_name_buf[i], "t%zu", i);
        lw_task_init(&tasks[i], task_name_buf[i]);
    }
    lw_spec spec = {method, tasks, T, params, np, seed};
    lw_job *job = NULL;
    lw_error err;
    int rc = lw_job_create(&spec, &job, &err);
    if (rc)
        fail_msg("create %s: %d %s: %s", method, rc, err.field, err.message);
    return job;
}

static lw_value num_param(const char *name, double v)
{
    lw_value p = {name, LW_VAL_NUMBER, v, NULL, NULL, 0};
    return p;
}

static lw_value vec_param(const char *name, const double *v, size_t n)
{
    lw_value p = {name, LW_VAL_ARRAY, 0, NULL, v, n};
    return p;
}

static void step_ok(lw_job *job, uint64_t step, const double *G, const double *L, double *out)
{
    lw_input in = {.step = step, .epoch = -1, .losses = L, .gram = G};
    lw_error err;
    int rc = lw_job_step(job, &in, out, &err);
    if (rc)
        fail_msg("%s step %llu: %d %s: %s", lw_job_method(job)->name, (unsigned long long)step,
                 rc, err.field, err.message);
    for (size_t i = 0; i < lw_job_tasks(job); i++)
        if (!isfinite(out[i]))
            fail_msg("%s: c[%zu] not finite", lw_job_method(job)->name, i);
}

/* One step of a fresh job with the given params. */
static void run1(const char *method, const lw_value *params, size_t np, size_t T, const double *G,
                 double *out)
{
    double L[MAXT];
    for (size_t i = 0; i < T; i++)
        L[i] = 1.0 + 0.25 * (double)i;
    lw_job *job = make_job(method, T, params, np, 7);
    step_ok(job, 0, G, L, out);
    lw_job_free(job);
}

/* ||a - b|| <= rtol ||b|| + atol, vectors of length d. */
static void assert_vec_near(const double *a, const double *b, size_t d, double rtol, double atol,
                            const char *what)
{
    double e = 0.0, n = 0.0;
    for (size_t k = 0; k < d; k++) {
        e += (a[k] - b[k]) * (a[k] - b[k]);
        n += b[k] * b[k];
    }
    e = sqrt(e);
    n = sqrt(n);
    if (!(e <= rtol * n + atol))
        fail_msg("%s: |a - b| = %.3e, |b| = %.3e (rtol %g, atol %g)", what, e, n, rtol, atol);
}

static void assert_near(double a, double b, double rtol, double atol, const char *what)
{
    if (!(fabs(a - b) <= atol + rtol * fabs(b)))
        fail_msg("%s: got %.17g, want %.17g (rtol %g, atol %g)", what, a, b, rtol, atol);
}

/* Solve A x = r (n x n, row-major; A and r are not changed) with the
 * reference Gaussian elimination of brute.h. */
static void gauss_solve(size_t n, const double *A_in, const double *r, double *x)
{
    double *A = malloc(n * n * sizeof(double));
    memcpy(A, A_in, n * n * sizeof(double));
    memcpy(x, r, n * sizeof(double));
    assert_int_equal(brute_gauss_solve(n, A, x, 0.0), 0);
    free(A);
}

/* Cyclic Jacobi eigen-decomposition of a symmetric n x n matrix: lam[k]
 * and eigenvector k in V[. * n + k] (columns). */
static void jacobi_eig(size_t n, const double *S, double *lam, double *V)
{
    double *A = malloc(n * n * sizeof(double));
    memcpy(A, S, n * n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            V[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, tot = 0.0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                tot += A[i * n + j] * A[i * n + j];
                if (i != j)
                    off += A[i * n + j] * A[i * n + j];
            }
        if (off <= 1e-32 * tot)
            break;
        for (size_t p = 0; p < n; p++)
            for (size_t q = p + 1; q < n; q++) {
                double apq = A[p * n + q];
                if (apq == 0.0)
                    continue;
                double theta = (A[q * n + q] - A[p * n + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (size_t k = 0; k < n; k++) {
                    double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - s * akq;
                    A[k * n + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < n; k++) {
                    double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - s * aqk;
                    A[q * n + k] = s * apk + c * aqk;
                }
                for (size_t k = 0; k < n; k++) {
                    double vkp = V[k * n + p], vkq = V[k * n + q];
                    V[k * n + p] = c * vkp - s * vkq;
                    V[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (size_t i = 0; i < n; i++)
        lam[i] = A[i * n + i];
    free(A);
}

/* ---- direct (vector) implementations of the anchors ---- */

/* LibMTL IMTL-G on the vectors: alpha from D = [g_1 - g_j], U = [u_1 - u_j]. */
static void imtl_g_direct(const double *J, size_t T, size_t d, double *alpha)
{
    if (T == 1) {
        alpha[0] = 1.0;
        return;
    }
    size_t n = T - 1;
    double *U = malloc(T * d * sizeof(double));
    for (size_t i = 0; i < T; i++) {
        double nr = vnorm(J + i * d, d);
        for (size_t k = 0; k < d; k++)
            U[i * d + k] = J[i * d + k] / nr;
    }
    double *M = malloc(n * n * sizeof(double)), *r = malloc(n * sizeof(double));
    double *Mt = malloc(n * n * sizeof(double));
    double *Ub = malloc(d * sizeof(double)), *Da = malloc(d * sizeof(double));
    for (size_t b = 0; b < n; b++) {
        for (size_t k = 0; k < d; k++)
            Ub[k] = U[k] - U[(b + 1) * d + k];
        r[b] = dot(J, Ub, d);
        for (size_t a = 0; a < n; a++) {
            for (size_t k = 0; k < d; k++)
                Da[k] = J[k] - J[(a + 1) * d + k];
            M[a * n + b] = dot(Da, Ub, d);
        }
    }
    /* alpha_rest' M = r'  <=>  M' alpha_rest = r */
    for (size_t a = 0; a < n; a++)
        for (size_t b = 0; b < n; b++)
            Mt[a * n + b] = M[b * n + a];
    gauss_solve(n, Mt, r, alpha + 1);
    double s = 0.0;
    for (size_t a = 1; a < T; a++)
        s += alpha[a];
    alpha[0] = 1.0 - s;
    free(U);
    free(M);
    free(Mt);
    free(r);
    free(Ub);
    free(Da);
}

/* <d, g_i / ||g_i||> for every non-zero g_i must be the same. */
static void assert_impartial(const double *J, size_t T, size_t d, const double *c, double rtol)
{
    double *dv = malloc(d * sizeof(double));
    combine(J, T, d, c, dv);
    double first = NAN, scale = vnorm(dv, d);
    for (size_t i = 0; i < T; i++) {
        double ni = vnorm(J + i * d, d);
        if (ni == 0.0)
            continue;
        double p = dot(dv, J + i * d, d) / ni;
        if (isnan(first))
            first = p;
        else if (!(fabs(p - first) <= rtol * scale))
            fail_msg("impartiality: projection %zu = %.17g, projection 0 = %.17g", i, p, first);
    }
    free(dv);
}

/* ---- imtl_g ---- */

static void test_imtl_g_matches_closed_form(void **st)
{
    (void)st;
    rng_state = 101;
    double G[64 * 64], c[64], alpha[64];
    for (int rep = 0; rep < 40; rep++) {
        size_t T = 2 + (size_t)(rep % 7), d = T + 1 + (size_t)(rng_u64() % (50 - T));
        double *J = rand_grads(T, d, rep % 2 ? 0.0 : 0.5);
        gram_of(J, T, d, G);
        run1("imtl_g", NULL, 0, T, G, c);
        imtl_g_direct(J, T, d, alpha);
        double *d1 = malloc(d * sizeof(double)), *d2 = malloc(d * sizeof(double));
        combine(J, T, d, c, d1);
        combine(J, T, d, alpha, d2);
        assert_vec_near(d1, d2, d, 1e-8, 0, "imtl_g combined gradient vs closed form");
        double s = 0.0;
        for (size_t i = 0; i < T; i++)
            s += c[i];
        assert_near(s, 1.0, 1e-12, 1e-12, "imtl_g sum");
        assert_impartial(J, T, d, c, 1e-9);
        free(d1);
        free(d2);
        free(J);
    }
}

static void test_imtl_g_base_and_edges(void **st)
{
    (void)st;
    /* methods-anchors.md 8.1: J_base = [[-4,1,1],[6,1,1]] -> (0.59233, 0.40767);
     * v = G^{-1} n = ((38 n0 + 22 n1), (22 n0 + 18 n1)) / 200. */
    const double Gb[4] = {18, -22, -22, 38};
    double c[8];
    run1("imtl_g", NULL, 0, 2, Gb, c);
    assert_near(c[0], 0.592330316937798, 1e-9, 0, "imtl_g G_base c0");
    assert_near(c[1], 0.4076696830622021, 1e-9, 0, "imtl_g G_base c1");

    /* A zero gradient gets 0; the others stay impartial. */
    rng_state = 102;
    size_t T = 4, d = 10;
    double *J = rand_grads(T, d, 0.2), G[16];
    memset(J + 2 * d, 0, d * sizeof(double));
    gram_of(J, T, d, G);
    run1("imtl_g", NULL, 0, T, G, c);
    assert_near(c[2], 0.0, 0, 1e-14, "imtl_g zero task");
    assert_impartial(J, T, d, c, 1e-9);
    free(J);

    /* Parallel gradients (g1 = 3 g0, rank-deficient G): finite, sum 1, and
     * still impartial (u_0 = u_1). */
    rng_state = 103;
    T = 3;
    d = 6;
    J = rand_grads(T, d, 0.0);
    for (size_t k = 0; k < d; k++)
        J[d + k] = 3.0 * J[k];
    gram_of(J, T, d, G);
    run1("imtl_g", NULL, 0, T, G, c);
    assert_near(c[0] + c[1] + c[2], 1.0, 1e-9, 1e-9, "imtl_g parallel sum");
    assert_impartial(J, T, d, c, 1e-7);
    free(J);
}

/* ---- imtl (LibMTL hybrid) ---- */

static void test_imtl_matches_scaled_imtl_g_with_adam(void **st)
{
    (void)st;
    rng_state = 201;
    const size_t T = 4, d = 12;
    const double lr = 0.1;
    lw_value p[] = {num_param("lr", lr)};
    lw_job *job = make_job("imtl", T, p, 1, 3);
    double s[4] = {0}, m[4] = {0}, v[4] = {0}, t = 0;
    double G[16], L[4], c[4], alpha[4];
    for (uint64_t step = 0; step < 8; step++) {
        double *J = rand_grads(T, d, 0.3);
        gram_of(J, T, d, G);
        for (size_t i = 0; i < T; i++)
            L[i] = 0.2 + 3.0 * rng_unif();
        step_ok(job, step, G, L, c);
        /* direct: IMTL-G on exp(s_i) g_i, coefficient alpha_i exp(s_i) */
        double *Js = malloc(T * d * sizeof(double));
        for (size_t i = 0; i < T; i++)
            for (size_t k = 0; k < d; k++)
                Js[i * d + k] = exp(s[i]) * J[i * d + k];
        imtl_g_direct(Js, T, d, alpha);
        double d1[12], d2[12];
        combine(J, T, d, c, d1);
        combine(Js, T, d, alpha, d2);
        assert_vec_near(d1, d2, d, 1e-8, 0, "imtl combined gradient");
        /* torch.optim.Adam on s with gradient exp(s) L - 1 */
        t += 1;
        for (size_t i = 0; i < T; i++) {
            double g = exp(s[i]) * L[i] - 1.0;
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
            s[i] -= lr * mh / (sqrt(vh) + 1e-8);
        }
        free(J);
        free(Js);
    }
    const double *ss = lw_job_state_get(job, 0);
    for (size_t i = 0; i < T; i++)
        assert_near(ss[i], s[i], 1e-10, 1e-12, "imtl state s");
    lw_job_free(job);
}

/* ---- cagrad ---- */

/* Project onto the probability simplex (sort-free bisection on the shift). */
static void simplex_project(double *x, size_t n)
{
    double lo = -1e300, hi = 1e300;
    double mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    lo = mx - 1.0;
    hi = mx;
    for (int it = 0; it < 200; it++) {
        double mid = 0.5 * (lo + hi), s = 0.0;
        for (size_t i = 0; i < n; i++)
            s += x[i] > mid ? x[i] - mid : 0.0;
        if (s > 1.0)
            lo = mid;
        else
            hi = mid;
    }
    double th = 0.5 * (lo + hi), s = 0.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = x[i] > th ? x[i] - th : 0.0;
        s += x[i];
    }
    for (size_t i = 0; i < n; i++)
        x[i] /= s;
}

typedef struct cag_prob {
    const double *J;
    size_t T, d;
    double *g0;
    double phi;
} cag_prob;

static double cag_F(const cag_prob *p, const double *x, double *gx)
{
    combine(p->J, p->T, p->d, x, gx);
    return dot(gx, p->g0, p->d) + p->phi * sqrt(dot(gx, gx, p->d) + 1e-8);
}

/* dF/dx_j = <g_j, g0> + phi <g_j, g_x> / sqrt(||g_x||^2 + 1e-8) */
static void cag_grad(const cag_prob *p, const double *gx, double *gr)
{
    double tau = sqrt(dot(gx, gx, p->d) + 1e-8);
    for (size_t j = 0; j < p->T; j++)
        gr[j] = dot(p->J + j * p->d, p->g0, p->d) + p->phi * dot(p->J + j * p->d, gx, p->d) / tau;
}

/* Check the library's CAGrad coefficients against the definition, on the
 * vectors. */
static void check_cagrad(const double *J, size_t T, size_t d, double calpha, int rescale,
                         const double *c, int pgd)
{
    cag_prob p = {J, T, d, malloc(d * sizeof(double)), 0};
    double *one = malloc(T * sizeof(double));
    for (size_t i = 0; i < T; i++)
        one[i] = 1.0 / (double)T;
    combine(J, T, d, one, p.g0);
    p.phi = calpha * sqrt(dot(p.g0, p.g0, d) + 1e-8) + 1e-8;
    double div = rescale == 0 ? 1.0 : rescale == 1 ? 1.0 + calpha * calpha : 1.0 + calpha;
    /* x from c: c_i div = 1/T + lam x_i, sum x = 1 */
    double lam = 0.0, *x = malloc(T * sizeof(double));
    for (size_t i = 0; i < T; i++)
        lam += c[i] * div;
    lam -= 1.0;
    if (!(lam > 0))
        fail_msg("cagrad: recovered lambda %.17g not > 0", lam);
    for (size_t i = 0; i < T; i++) {
        x[i] = (c[i] * div - 1.0 / (double)T) / lam;
        if (x[i] < -1e-9)
            fail_msg("cagrad: x[%zu] = %.17g < 0", i, x[i]);
        if (x[i] < 0)
            x[i] = 0;
    }
    double *gx = malloc(d * sizeof(double)), *gr = malloc(T * sizeof(double));
    double F = cag_F(&p, x, gx);
    /* lam is phi / (||g_x|| + 1e-8) on the vectors */
    assert_near(lam, p.phi / (vnorm(gx, d) + 1e-8), 1e-7, 0, "cagrad lambda");
    /* KKT on the vectors */
    cag_grad(&p, gx, gr);
    double mu = 0.0, scale = 0.0;
    for (size_t i = 0; i < T; i++) {
        mu += x[i] * gr[i];
        if (fabs(gr[i]) > scale)
            scale = fabs(gr[i]);
    }
    for (size_t i = 0; i < T; i++) {
        double nu = gr[i] - mu;
        if (nu < -1e-7 * (scale + 1e-300))
            fail_msg("cagrad KKT: nu[%zu] = %.3e < 0 (scale %.3e)", i, nu, scale);
        if (x[i] > 1e-6 && fabs(nu) > 1e-7 * (scale + 1e-300))
            fail_msg("cagrad KKT: x[%zu] = %.3e > 0 but nu = %.3e", i, x[i], nu);
    }
    if (pgd) {
        /* projected gradient from 1/T must not beat the library's F */
        double *y = malloc(T * sizeof(double)), *z = malloc(T * sizeof(double)),
               *gy = malloc(d * sizeof(double));
        memcpy(y, one, T * sizeof(double));
        double step = 1.0;
        for (int it = 0; it < 3000; it++) {
            double Fy = cag_F(&p, y, gy);
            cag_grad(&p, gy, gr);
            for (;;) {
                for (size_t i = 0; i < T; i++)
                    z[i] = y[i] - step * gr[i];
                simplex_project(z, T);
                double Fz = cag_F(&p, z, gy), lin = 0.0, sq = 0.0;
                for (size_t i = 0; i < T; i++) {
                    lin += gr[i] * (z[i] - y[i]);
                    sq += (z[i] - y[i]) * (z[i] - y[i]);
                }
                if (Fz <= Fy + lin + sq / (2 * step) || step < 1e-300)
                    break;
                step *= 0.5;
            }
            memcpy(y, z, T * sizeof(double));
            step *= 2.0;
        }
        double Fp = cag_F(&p, y, gy);
        if (!(F <= Fp + 1e-12 * (1.0 + fabs(Fp))))
            fail_msg("cagrad: library F = %.17g above projected gradient's %.17g", F, Fp);
        free(y);
        free(z);
        free(gy);
    }
    /* combined gradient = (g0 + lam g_x) / div */
    double *dl = malloc(d * sizeof(double)), *dr = malloc(d * sizeof(double));
    combine(J, T, d, c, dl);
    for (size_t k = 0; k < d; k++)
        dr[k] = (p.g0[k] + p.phi / (vnorm(gx, d) + 1e-8) * gx[k]) / div;
    assert_vec_near(dl, dr, d, 1e-9, 1e-12, "cagrad combined gradient");
    free(dl);
    free(dr);
    free(p.g0);
    free(one);
    free(x);
    free(gx);
    free(gr);
}

static void test_cagrad_solves_inner_problem(void **st)
{
    (void)st;
    rng_state = 301;
    double G[16 * 16], c[16];
    for (int rep = 0; rep < 60; rep++) {
        size_t T = 2 + (size_t)(rep % 8), d = 3 + (size_t)(rng_u64() % 48);
        double calpha = rep % 3 == 0 ? 0.5 : rep % 3 == 1 ? 0.2 : 2.0;
        int rescale = rep % 3;
        double *J = rand_grads(T, d, rep % 2 ? 0.0 : 0.4);
        /* some tasks with very different scales */
        for (size_t k = 0; k < d; k++)
            J[k] *= 30.0;
        gram_of(J, T, d, G);
        lw_value p[] = {num_param("calpha", calpha), num_param("rescale", rescale)};
        run1("cagrad", p, 2, T, G, c);
        check_cagrad(J, T, d, calpha, rescale, c, 1);
        free(J);
    }
}

static void test_cagrad_base_and_edges(void **st)
{
    (void)st;
    /* methods-anchors.md 8.1: LibMTL calpha 0.5 rescale 1 -> (0.56330, 0.4). */
    const double Gb[4] = {18, -22, -22, 38};
    double c[16];
    run1("cagrad", NULL, 0, 2, Gb, c);
    assert_near(c[0], 0.56330, 0, 1e-5, "cagrad G_base c0");
    assert_near(c[1], 0.4, 0, 1e-9, "cagrad G_base c1");

    /* conflicting / parallel / zero gradients, rank-deficient */
    rng_state = 302;
    double G[12 * 12];
    struct {
        size_t T, d;
        int kind;
    } cases[] = {{3, 5, 0}, {3, 5, 1}, {4, 6, 2}, {10, 3, 3}, {2, 4, 4}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t T = cases[k].T, d = cases[k].d;
        double *J = rand_grads(T, d, 0.0);
        if (cases[k].kind == 0 || cases[k].kind == 4)
            for (size_t q = 0; q < d; q++)
                J[d + q] = -2.0 * J[q]; /* exactly conflicting */
        if (cases[k].kind == 1)
            for (size_t q = 0; q < d; q++)
                J[d + q] = 3.0 * J[q]; /* parallel */
        if (cases[k].kind == 2)
            memset(J + d, 0, d * sizeof(double)); /* zero */
        gram_of(J, T, d, G);
        run1("cagrad", NULL, 0, T, G, c);
        check_cagrad(J, T, d, 0.5, 1, c, 0);
        free(J);
    }
}

/* ---- aligned_mtl ---- */

static void aligned_direct(const double *J, size_t T, size_t d, double *c)
{
    double *G = malloc(T * T * sizeof(double)), *V = malloc(T * T * sizeof(double)),
           *lam = malloc(T * sizeof(double));
    gram_of(J, T, d, G);
    jacobi_eig(T, G, lam, V);
    double lmax = 0.0, lmin = INFINITY;
    for (size_t k = 0; k < T; k++)
        if (lam[k] > lmax)
            lmax = lam[k];
    double tol = lmax * (double)T * 1.1920928955078125e-07;
    for (size_t k = 0; k < T; k++)
        if (lam[k] > tol && lam[k] < lmin)
            lmin = lam[k];
    for (size_t i = 0; i < T; i++)
        c[i] = 0.0;
    for (size_t k = 0; k < T; k++) {
        if (!(lam[k] > tol))
            continue;
        double s = 0.0;
        for (size_t i = 0; i < T; i++)
            s += V[i * T + k];
        for (size_t i = 0; i < T; i++)
            c[i] += sqrt(lmin) * V[i * T + k] * s / sqrt(lam[k]);
    }
    free(G);
    free(V);
    free(lam);
}

static void test_aligned_mtl_matches_direct(void **st)
{
    (void)st;
    rng_state = 401;
    double G[16 * 16], c[16], cr[16];
    for (int rep = 0; rep < 30; rep++) {
        size_t T = 2 + (size_t)(rep % 7), d = 3 + (size_t)(rng_u64() % 48);
        double *J = rand_grads(T, d, 0.3);
        gram_of(J, T, d, G);
        run1("aligned_mtl", NULL, 0, T, G, c);
        aligned_direct(J, T, d, cr);
        double *d1 = malloc(d * sizeof(double)), *d2 = malloc(d * sizeof(double));
        combine(J, T, d, c, d1);
        combine(J, T, d, cr, d2);
        assert_vec_near(d1, d2, d, 1e-8, 0, "aligned_mtl combined gradient");
        free(d1);
        free(d2);
        free(J);
    }
}

static void test_aligned_mtl_balances_gradients(void **st)
{
    (void)st;
    /* Columns of B from preference e_k; B J must have orthogonal rows of
     * equal norm (full-rank J). */
    rng_state = 402;
    const size_t T = 5, d = 9;
    double *J = rand_grads(T, d, 0.5), G[25], B[25], e[5], col[5];
    gram_of(J, T, d, G);
    for (size_t k = 0; k < T; k++) {
        for (size_t i = 0; i < T; i++)
            e[i] = i == k;
        lw_value p[] = {vec_param("preference", e, T)};
        run1("aligned_mtl", p, 1, T, G, col);
        for (size_t i = 0; i < T; i++)
            B[i * T + k] = col[i];
    }
    double *BJ = malloc(T * d * sizeof(double));
    for (size_t i = 0; i < T; i++)
        combine(J, T, d, B + i * T, BJ + i * d);
    double n0 = dot(BJ, BJ, d);
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j < T; j++)
            assert_near(dot(BJ + i * d, BJ + j * d, d), i == j ? n0 : 0.0, 0, 1e-9 * n0,
                        "aligned_mtl (BJ)(BJ)'");
    /* and n0 is the smallest eigenvalue of G */
    double lam[5], V[25], lmin = INFINITY;
    jacobi_eig(T, G, lam, V);
    for (size_t k = 0; k < T; k++)
        if (lam[k] < lmin)
            lmin = lam[k];
    assert_near(n0, lmin, 1e-9, 0, "aligned_mtl row norm^2 = lam_min");
    free(BJ);
    free(J);

    /* methods-anchors.md 8.1: LibMTL (1.11814, 0.81652); TorchJD (p = 1/T) half. */
    const double Gb[4] = {18, -22, -22, 38};
    double c[2], half[2] = {0.5, 0.5};
    run1("aligned_mtl", NULL, 0, 2, Gb, c);
    assert_near(c[0], 1.11814, 0, 1e-5, "aligned G_base c0");
    assert_near(c[1], 0.81652, 0, 1e-5, "aligned G_base c1");
    lw_value p[] = {vec_param("preference", half, 2)};
    run1("aligned_mtl", p, 1, 2, Gb, c);
    assert_near(c[0], 0.55907, 0, 1e-5, "aligned torchjd c0");
}

/* ---- nash_mtl ---- */

static void check_nash_root(const double *J, size_t T, size_t d, const double *a, double rtol)
{
    double *dv = malloc(d * sizeof(double));
    combine(J, T, d, a, dv);
    for (size_t i = 0; i < T; i++) {
        double r = a[i] * dot(J + i * d, dv, d);
        if (!(fabs(r - 1.0) <= rtol))
            fail_msg("nash: alpha_%zu <g_%zu, d> = %.17g, want 1", i, i, r);
    }
    free(dv);
}

static void test_nash_mtl_solves_root_and_clips(void **st)
{
    (void)st;
    rng_state = 501;
    double G[16 * 16], c0[16], c1[16];
    for (int rep = 0; rep < 40; rep++) {
        size_t T = 2 + (size_t)(rep % 8), d = T + (size_t)(rng_u64() % (50 - T));
        double *J = rand_grads(T, d, rep % 2 ? 0.0 : 0.5);
        for (size_t k = 0; k < d; k++)
            J[k] *= 1e-3; /* a small-gradient task: large alpha_0 */
        gram_of(J, T, d, G);
        lw_value p0[] = {num_param("max_norm", 0.0)};
        run1("nash_mtl", p0, 1, T, G, c0);
        check_nash_root(J, T, d, c0, 1e-9);
        run1("nash_mtl", NULL, 0, T, G, c1); /* max_norm 1 */
        double *dv = malloc(d * sizeof(double));
        combine(J, T, d, c0, dv);
        double nrm = vnorm(dv, d), f = 1.0 / (nrm + 1e-6);
        assert_near(nrm, sqrt((double)T), 1e-9, 0, "nash ||d|| = sqrt(T)");
        for (size_t i = 0; i < T; i++)
            assert_near(c1[i], f < 1 ? c0[i] * f : c0[i], 1e-12, 0, "nash clipped");
        free(dv);
        free(J);
    }
    /* methods-anchors.md 8.1 */
    const double Gb[4] = {18, -22, -22, 38};
    lw_value p0[] = {num_param("max_norm", 0.0)};
    run1("nash_mtl", p0, 1, 2, Gb, c0);
    assert_near(c0[0], 0.59146, 0, 1e-5, "nash G_base alpha0");
    assert_near(c0[1], 0.40707, 0, 1e-5, "nash G_base alpha1");
    run1("nash_mtl", NULL, 0, 2, Gb, c1);
    assert_near(c1[0], 0.41823, 0, 1e-5, "nash G_base clipped0");
    assert_near(c1[1], 0.28784, 0, 1e-5, "nash G_base clipped1");
}

static void test_nash_mtl_fallback_and_update_every(void **st)
{
    (void)st;
    rng_state = 502;
    const size_t T = 3, d = 7;
    double G[9], Gbad[9], c[3], a_prev[3], L[3] = {1, 1, 1};
    double *J = rand_grads(T, d, 0.3);
    gram_of(J, T, d, G);
    lw_value p[] = {num_param("max_norm", 0.0), num_param("update_weights_every", 2)};
    lw_job *job = make_job("nash_mtl", T, p, 2, 1);
    step_ok(job, 0, G, L, c);
    check_nash_root(J, T, d, c, 1e-9);
    memcpy(a_prev, c, sizeof a_prev);
    /* step 1 reuses alpha even with another G */
    double *J2 = rand_grads(T, d, 0.3);
    gram_of(J2, T, d, Gbad);
    step_ok(job, 1, Gbad, L, c);
    for (size_t i = 0; i < T; i++)
        assert_near(c[i], a_prev[i], 0, 0, "nash reuse between updates");
    /* step 2 solves again, on exactly conflicting gradients: no root, the
     * previous alpha is kept and counted */
    for (size_t k = 0; k < d; k++) {
        J2[d + k] = -J2[k];
        J2[2 * d + k] = -0.5 * J2[k];
    }
    gram_of(J2, T, d, Gbad);
    step_ok(job, 2, Gbad, L, c);
    for (size_t i = 0; i < T; i++)
        assert_near(c[i], a_prev[i], 0, 0, "nash fallback keeps alpha");
    assert_near(lw_job_state_get(job, 1)[0], 1.0, 0, 0, "nash fallbacks counter");
    lw_job_free(job);

    /* a zero-gradient task is left out with 0, the rest is the root */
    memset(J + d, 0, d * sizeof(double));
    gram_of(J, T, d, G);
    run1("nash_mtl", p, 1, T, G, c);
    assert_near(c[1], 0.0, 0, 0, "nash zero task");
    double Jr[2 * 7];
    memcpy(Jr, J, d * sizeof(double));
    memcpy(Jr + d, J + 2 * d, d * sizeof(double));
    double cr[2] = {c[0], c[2]};
    check_nash_root(Jr, 2, d, cr, 1e-9);
    free(J);
    free(J2);
}

/* ---- gradvac ---- */

static void gradvac_order(uint64_t seed, uint64_t step, size_t T, size_t i, size_t *ord)
{
    size_t m = 0;
    for (size_t j = 0; j < T; j++)
        if (j != i)
            ord[m++] = j;
    for (size_t k = 0; k + 1 < m; k++) {
        uint64_t r = lw_rand_u64(seed, step, 1 + (uint64_t)i, (uint64_t)k);
        size_t pick = k + (size_t)(r % (uint64_t)(m - k));
        size_t t = ord[k];
        ord[k] = ord[pick];
        ord[pick] = t;
    }
}

/* LibMTL GradVac on the vectors: out = sum of the modified gradients. */
static void gradvac_direct(const double *J, size_t T, size_t d, double *rho_hat, double beta,
                           uint64_t seed, uint64_t step, double *out)
{
    double *pc = malloc(d * sizeof(double));
    size_t ord[MAXT];
    for (size_t k = 0; k < d; k++)
        out[k] = 0.0;
    for (size_t i = 0; i < T; i++) {
        memcpy(pc, J + i * d, d * sizeof(double));
        gradvac_order(seed, step, T, i, ord);
        for (size_t q = 0; q + 1 < T; q++) {
            size_t j = ord[q];
            const double *gj = J + j * d;
            double ni = vnorm(pc, d), nj = vnorm(gj, d);
            double rho = dot(pc, gj, d) / (ni * nj + 1e-8), rh = rho_hat[i * T + j];
            if (rho < rh) {
                double w = ni * (rh * sqrt(fmax(1 - rho * rho, 0)) - rho * sqrt(fmax(1 - rh * rh, 0))) /
                           (nj * sqrt(fmax(1 - rh * rh, 0)) + 1e-8);
                for (size_t k = 0; k < d; k++)
                    pc[k] += w * gj[k];
            }
            rho_hat[i * T + j] = (1 - beta) * rh + beta * rho;
        }
        for (size_t k = 0; k < d; k++)
            out[k] += pc[k];
    }
    free(pc);
}

static void test_gradvac_matches_vectors(void **st)
{
    (void)st;
    rng_state = 601;
    for (int rep = 0; rep < 12; rep++) {
        size_t T = 2 + (size_t)(rep % 6), d = 3 + (size_t)(rng_u64() % 48);
        double beta = rep % 2 ? 0.5 : 0.2;
        uint64_t seed = 1000 + (uint64_t)rep;
        lw_value p[] = {num_param("beta", beta)};
        lw_job *job = make_job("gradvac", T, p, 1, seed);
        double *rho = calloc(T * T, sizeof(double));
        double G[8 * 8], c[8], L[8] = {1, 1, 1, 1, 1, 1, 1, 1};
        for (uint64_t step = 0; step < 6; step++) {
            /* correlated then conflicting gradients so targets move both ways */
            double *J = rand_grads(T, d, step % 2 ? -0.2 : 0.6);
            gram_of(J, T, d, G);
            step_ok(job, 10 + step, G, L, c);
            double *dl = malloc(d * sizeof(double)), *dr = malloc(d * sizeof(double));
            combine(J, T, d, c, dl);
            gradvac_direct(J, T, d, rho, beta, seed, 10 + step, dr);
            assert_vec_near(dl, dr, d, 1e-9, 1e-12, "gradvac combined gradient");
            const double *st_rho = lw_job_state_get(job, 0);
            for (size_t k = 0; k < T * T; k++)
                assert_near(st_rho[k], rho[k], 1e-9, 1e-12, "gradvac rho_hat");
            free(dl);
            free(dr);
            free(J);
        }
        free(rho);
        lw_job_free(job);
    }
}

/* ---- fairgrad ---- */

static void test_fairgrad_solves_root(void **st)
{
    (void)st;
    rng_state = 701;
    double G[16 * 16], c[16];
    const double alphas[] = {1.0, 0.5, 2.0, 5.0};
    for (int rep = 0; rep < 40; rep++) {
        size_t T = 2 + (size_t)(rep % 8), d = T + (size_t)(rng_u64() % (50 - T));
        double alpha = alphas[rep % 4];
        double *J = rand_grads(T, d, 0.2);
        for (size_t k = 0; k < d; k++)
            J[d + k] *= 20.0;
        gram_of(J, T, d, G);
        lw_value p[] = {num_param("alpha", alpha)};
        run1("fairgrad", p, 1, T, G, c);
        double *dv = malloc(d * sizeof(double));
        combine(J, T, d, c, dv);
        for (size_t i = 0; i < T; i++) {
            if (!(c[i] > 0))
                fail_msg("fairgrad: x[%zu] = %.17g not > 0", i, c[i]);
            assert_near(dot(J + i * d, dv, d), pow(c[i], -1.0 / alpha), 1e-9, 0,
                        "fairgrad <g_i, d> = x_i^(-1/alpha)");
        }
        free(dv);
        free(J);
    }
    /* alpha 1 is Nash-MTL's root without clipping */
    const double Gb[4] = {18, -22, -22, 38};
    run1("fairgrad", NULL, 0, 2, Gb, c);
    assert_near(c[0], 0.59146, 0, 1e-5, "fairgrad G_base x0");
    lw_value p0[] = {num_param("alpha", 0.0)};
    run1("fairgrad", p0, 1, 2, Gb, c);
    assert_near(c[0], 0.5, 0, 0, "fairgrad alpha 0");
}

/* ---- awkward Grams, every method ---- */

static const char *const methods[] = {"imtl_g", "imtl", "cagrad", "aligned_mtl",
                                      "nash_mtl", "gradvac", "fairgrad"};

enum { K_OPPOSITE, K_OPPOSITE3, K_PARALLEL, K_ZERO, K_ALLZERO, K_RANKDEF, K_INDEF, K_INDEF_RD,
       K_T1, K_NKINDS };

static void make_case(int kind, size_t *pT, double *G)
{
    size_t T = 3, d = 6;
    switch (kind) {
    case K_OPPOSITE: T = 2; break;
    case K_ZERO: T = 4; break;
    case K_RANKDEF: T = 12; d = 3; break;
    case K_INDEF: T = 6; d = 20; break;
    case K_INDEF_RD: T = 8; d = 3; break;
    case K_T1: T = 1; break;
    default: break;
    }
    double *J = rand_grads(T, d, 0.1);
    if (kind == K_OPPOSITE || kind == K_OPPOSITE3)
        for (size_t k = 0; k < d; k++)
            J[d + k] = -J[k];
    if (kind == K_PARALLEL)
        for (size_t k = 0; k < d; k++)
            J[d + k] = 3.0 * J[k];
    if (kind == K_ZERO)
        memset(J + 2 * d, 0, d * sizeof(double));
    if (kind == K_ALLZERO)
        memset(J, 0, T * d * sizeof(double));
    gram_of(J, T, d, G);
    if (kind == K_INDEF || kind == K_INDEF_RD) {
        /* float32-like noise off the diagonal: G is no longer PSD */
        double mx = 0.0;
        for (size_t i = 0; i < T * T; i++)
            mx = fmax(mx, fabs(G[i]));
        for (size_t i = 0; i < T; i++)
            for (size_t j = i + 1; j < T; j++)
                G[i * T + j] = G[j * T + i] = G[i * T + j] + 3e-7 * mx * (rng_unif() - 0.5);
    }
    free(J);
    *pT = T;
}

static void test_awkward_grams_finite(void **st)
{
    (void)st;
    rng_state = 801;
    static double G[MAXT * MAXT];
    double c[MAXT], L[MAXT];
    for (int kind = 0; kind < K_NKINDS; kind++) {
        size_t T;
        make_case(kind, &T, G);
        for (size_t i = 0; i < T; i++)
            L[i] = 0.5 + (double)i;
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            lw_job *job = make_job(methods[m], T, NULL, 0, 5);
            for (uint64_t s = 0; s < 3; s++)
                step_ok(job, s, G, L, c);
            if (kind == K_ZERO && strcmp(methods[m], "gradvac") != 0 &&
                strcmp(methods[m], "cagrad") != 0)
                assert_near(c[2], 0.0, 0, 1e-12, methods[m]);
            if (kind == K_T1 && strcmp(methods[m], "nash_mtl") != 0 && strcmp(methods[m], "imtl") != 0 &&
                strcmp(methods[m], "fairgrad") != 0 && strcmp(methods[m], "cagrad") != 0)
                assert_near(c[0], 1.0, 1e-12, 0, methods[m]);
            lw_job_free(job);
        }
    }
}

/* Slightly indefinite but full-rank G: the methods keep their defining
 * property up to the noise. */
static void test_indefinite_noise_keeps_results(void **st)
{
    (void)st;
    rng_state = 802;
    const size_t T = 5, d = 12;
    double *J = rand_grads(T, d, 0.3), G[25], Gn[25], c[5], cn[5];
    gram_of(J, T, d, G);
    memcpy(Gn, G, sizeof G);
    for (size_t i = 0; i < T; i++)
        for (size_t j = i + 1; j < T; j++)
            Gn[i * T + j] = Gn[j * T + i] = G[i * T + j] * (1 + 1e-7 * (rng_unif() - 0.5));
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        run1(methods[m], NULL, 0, T, G, c);
        run1(methods[m], NULL, 0, T, Gn, cn);
        for (size_t i = 0; i < T; i++)
            assert_near(cn[i], c[i], 1e-4, 1e-6, methods[m]);
    }
    free(J);
}

/* ---- T = 256 ---- */

static void test_t256(void **st)
{
    (void)st;
    rng_state = 901;
    const size_t T = 256;
    static double G[256 * 256], c[256], L[256];
    for (size_t i = 0; i < T; i++)
        L[i] = 1.0 + 0.01 * (double)i;
    for (int full = 1; full >= 0; full--) {
        size_t d = full ? 300 : 20;
        double *J = rand_grads(T, d, 0.2);
        gram_of(J, T, d, G);
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            lw_job *job = make_job(methods[m], T, NULL, 0, 9);
            step_ok(job, 0, G, L, c);
            lw_job_free(job);
            if (!full)
                continue;
            if (strcmp(methods[m], "imtl_g") == 0)
                assert_impartial(J, T, d, c, 1e-7);
            if (strcmp(methods[m], "cagrad") == 0)
                check_cagrad(J, T, d, 0.5, 1, c, 0);
        }
        if (full) {
            lw_value p0[] = {num_param("max_norm", 0.0)};
            run1("nash_mtl", p0, 1, T, G, c);
            check_nash_root(J, T, d, c, 1e-8);
            run1("fairgrad", NULL, 0, T, G, c);
            check_nash_root(J, T, d, c, 1e-8);
        }
        free(J);
    }
}

/* ---- table rows, determinism, state ---- */

static void test_not_served_rows(void **st)
{
    (void)st;
    const char *names[] = {"graddrop", "moco"};
    for (size_t k = 0; k < 2; k++) {
        const lw_method_info *mi = lw_method_find(names[k]);
        assert_non_null(mi);
        assert_int_equal(mi->servable, 0);
        assert_non_null(mi->not_served_why);
        assert_true(strlen(mi->not_served_why) > 20);
        lw_task tasks[2];
        lw_task_init(&tasks[0], "a");
        lw_task_init(&tasks[1], "b");
        lw_spec spec = {names[k], tasks, 2, NULL, 0, 0};
        lw_job *job = NULL;
        lw_error err;
        assert_int_equal(lw_job_create(&spec, &job, &err), LW_ENOTSUP);
        assert_null(job);
    }
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        const lw_method_info *mi = lw_method_find(methods[m]);
        assert_non_null(mi);
        assert_int_equal(mi->output, LW_OUT_GRAD_COEFFS);
        assert_true(mi->inputs & LW_IN_GRAM);
    }
    assert_true(lw_method_find("imtl")->inputs & LW_IN_LOSSES);
}

static void test_state_roundtrip_same_bits(void **st)
{
    (void)st;
    const char *stateful[] = {"imtl", "gradvac", "nash_mtl"};
    for (size_t m = 0; m < 3; m++) {
        rng_state = 1001;
        const size_t T = 4, d = 9;
        lw_job *a = make_job(stateful[m], T, NULL, 0, 77);
        double G[16], L[4] = {0.5, 1, 2, 3}, ca[4], cb[4];
        for (uint64_t s = 0; s < 3; s++) {
            double *J = rand_grads(T, d, 0.3);
            gram_of(J, T, d, G);
            step_ok(a, s, G, L, ca);
            free(J);
        }
        lw_job *b = make_job(stateful[m], T, NULL, 0, 77);
        for (size_t k = 0; k < lw_job_state_count(a); k++) {
            size_t len;
            const char *name = lw_job_state_name(a, k, &len);
            lw_error err;
            if (lw_job_state_set(b, name, lw_job_state_get(a, k), len, &err))
                fail_msg("state_set %s: %s", name, err.message);
        }
        for (uint64_t s = 3; s < 6; s++) {
            double *J = rand_grads(T, d, 0.3);
            gram_of(J, T, d, G);
            step_ok(a, s, G, L, ca);
            step_ok(b, s, G, L, cb);
            assert_memory_equal(ca, cb, sizeof ca);
            free(J);
        }
        lw_job_free(a);
        lw_job_free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_imtl_g_matches_closed_form),
        cmocka_unit_test(test_imtl_g_base_and_edges),
        cmocka_unit_test(test_imtl_matches_scaled_imtl_g_with_adam),
        cmocka_unit_test(test_cagrad_solves_inner_problem),
        cmocka_unit_test(test_cagrad_base_and_edges),
        cmocka_unit_test(test_aligned_mtl_matches_direct),
        cmocka_unit_test(test_aligned_mtl_balances_gradients),
        cmocka_unit_test(test_nash_mtl_solves_root_and_clips),
        cmocka_unit_test(test_nash_mtl_fallback_and_update_every),
        cmocka_unit_test(test_gradvac_matches_vectors),
        cmocka_unit_test(test_fairgrad_solves_root),
        cmocka_unit_test(test_awkward_grams_finite),
        cmocka_unit_test(test_indefinite_noise_keeps_results),
        cmocka_unit_test(test_t256),
        cmocka_unit_test(test_not_served_rows),
        cmocka_unit_test(test_state_roundtrip_same_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
