/*
 * cagrad.c -- Conflict-Averse Gradient descent (Liu et al., NeurIPS 2021)
 * from the Gram matrix, as LibMTL's CAGrad.py computes it.
 *
 * Why G suffices. With g0 = (1/T) sum g_i and g_x = sum x_i g_i, LibMTL
 * computes
 *
 *   phi  = calpha sqrt(mean_ij G_ij + 1e-8) + 1e-8     (||g0|| = sqrt(mean G))
 *   x*   = argmin over the simplex of F(x) = x'b + phi sqrt(x'Gx + 1e-8),
 *          b = G 1/T                                  (x'b = <g_x, g0>)
 *   lam  = phi / (||g_x*|| + 1e-8),  ||g_x*|| = sqrt(x*'G x*)
 *   d    = (g0 + lam g_x*) / r,  r = 1 (rescale 0), 1 + calpha^2 (1), 1 + calpha (2)
 *
 * Every quantity is a function of G, and d is the combination
 * c_i = (1/T + lam x*_i) / r of the original gradients.
 *
 * The inner problem, solved exactly. LibMTL hands F to scipy's SLSQP
 * (start 1/T, default tolerance 1e-6 on F) and rounds x to float32
 * (torch.Tensor) before forming g_x; its answers are therefore off by the
 * solver's tolerance (refdata carries a wider tolerance for them). F is
 * convex and, because of the 1e-8 inside the root, smooth and strictly
 * convex as a function of g_x, so g_x* (hence d) is unique even when x* is
 * not. We use a primal active-set method whose subproblem has a closed form:
 *
 *   On a face S of the simplex (x_i = 0 off S), stationarity of F on the
 *   affine hull {sum x_S = 1} reads b_S + (phi/tau) G_SS x_S = mu 1 with
 *   tau = sqrt(x'Gx + 1e-8). With K = [G_SS 1; 1' 0], solve
 *   K [u; a] = [0; 1] and K [v; e] = [-b_S; 0]; then x_S = u + t v solves it
 *   for t = tau / phi, and tau^2 = x'Gx + 1e-8 becomes the quadratic
 *   (phi^2 - v'Gv) t^2 - 2 u'Gv t - (u'Gu + 1e-8) = 0, with exactly one
 *   positive root when phi^2 > v'Gv. Otherwise F is unbounded below on the
 *   affine hull along v (its slope at infinity, sqrt(v'Gv)(phi - sqrt(v'Gv)),
 *   is <= 0) and, F being convex, non-increasing along v from any point.
 *
 *   Start at the best vertex. Each iteration minimises F on the current
 *   face: if that minimiser y is feasible, move there and check the
 *   multipliers nu_j = dF/dx_j - mu of the tasks off the face; stop when all
 *   are >= -tol, else add the most negative one. If y is infeasible (or the
 *   face is unbounded, direction v), step from x towards it until the first
 *   coordinate hits 0 and drop that task. F never increases (convexity), a
 *   task added with nu_j < 0 always enters the new face's minimiser with
 *   x_j > 0, and, starting from one vertex and adding only tasks with
 *   nu_j < 0 (whose gradient is therefore off the affine hull of the face's
 *   gradients), every face's gradients stay affinely independent, so K is
 *   nonsingular (LAPACK dsysv; a pseudo-inverse through dsyevr if it ever
 *   reports an exact zero pivot).
 *
 *   Stopping test (KKT to a stated tolerance): x >= 0 exactly, sum x = 1 to
 *   rounding, dF/dx_i equal on the face by construction, and
 *   nu_j >= -1e-11 * max_j (|b_j| + (phi/tau) sum_i |G_ji| x_i) off it.
 *   Bound: 10 T + 100 iterations, then LW_ENUMERIC (not seen in tests).
 *
 * Edge cases follow LibMTL: ||g_x*|| = 0 (a Pareto-stationary point: the
 * gradients' convex hull contains 0) gives lam = phi / 1e-8, a large
 * coefficient on a zero combination; a zero-gradient task is just a
 * gradient like the others. mean(G) is clamped at 0 before the root.
 * TorchJD's CAGradWeighting differs (trace-normalised G, no 1e-8 terms,
 * no rescale, zeros when ||g_w|| < 1e-4) and is not offered here.
 */
#include "../linalg.h"
#include "../lw_internal.h"

#include <float.h>
#include <stdint.h>
#include <string.h>

/* LibMTL's guards: inside the square roots and added to phi and ||g_w||. */
#define CAGRAD_EPS 1e-8
#define CAGRAD_KKT_RTOL 1e-11

enum { P_CALPHA, P_RESCALE };

static const lw_param_info cagrad_params[] = {
    [P_CALPHA] = {"calpha", LW_PARAM_NUMBER, 0.5, 0.0, 1e6, 0, 0, NULL,
                  "Radius of the ball around the mean gradient, relative to its norm (0.5, "
                  "LibMTL; the official code's --alpha 0.5, nash-mtl and FAMO use c = 0.4)."},
    [P_RESCALE] = {"rescale", LW_PARAM_INT, 1, 0, 2, 0, 0, NULL,
                   "Divide the update by 1 (0), 1 + calpha^2 (1, LibMTL and the official code) "
                   "or 1 + calpha (2). The official code and nash-mtl also multiply by T."},
};

/* Workspace layout, in doubles. */
static size_t solver_ws_size(size_t n)
{
    size_t a = lw_la_sym_solve_size(n), b = lw_la_psd_pinv_size(n);
    return a > b ? a : b;
}

static size_t cagrad_work_size(size_t T)
{
    return T * T /* H */ + 5 * T /* b, x, y, Hx, grad */ + T /* S (size_t) */ + T /* inS */ +
           (T + 1) * (T + 1) /* K */ + 2 * (T + 1) /* R */ + (T + 1) /* P */ +
           solver_ws_size(T + 1);
}

typedef struct cagrad_ws {
    double *H, *b, *x, *y, *Hx, *grad, *K, *R, *P, *ls;
    size_t *S;
    unsigned char *inS;
} cagrad_ws;

static void carve(size_t T, double *work, cagrad_ws *c)
{
    c->H = work;
    c->b = c->H + T * T;
    c->x = c->b + T;
    c->y = c->x + T;
    c->Hx = c->y + T;
    c->grad = c->Hx + T;
    c->S = (size_t *)(c->grad + T);
    c->inS = (unsigned char *)(c->grad + 2 * T);
    c->K = c->grad + 3 * T;
    c->R = c->K + (T + 1) * (T + 1);
    c->P = c->R + 2 * (T + 1);
    c->ls = c->P + (T + 1);
}

static void build_kkt(size_t T, const cagrad_ws *c, size_t m)
{
    const size_t n = m + 1;
    for (size_t a = 0; a < m; a++) {
        for (size_t bb = 0; bb < m; bb++)
            c->K[a * n + bb] = c->H[c->S[a] * T + c->S[bb]];
        c->K[a * n + m] = 1.0;
        c->K[m * n + a] = 1.0;
    }
    c->K[m * n + m] = 0.0;
}

/* Solve the two face systems; u = R[0..m), v = R[n..n+m). */
static int face_solve(size_t T, cagrad_ws *c, size_t m)
{
    const size_t n = m + 1;
    for (size_t a = 0; a < m; a++) {
        c->R[a] = 0.0;
        c->R[n + a] = -c->b[c->S[a]];
    }
    c->R[m] = 1.0;
    c->R[n + m] = 0.0;
    build_kkt(T, c, m);
    if (lw_la_sym_solve(n, 2, c->K, c->R, c->ls) == 0)
        return 0;
    /* An exact zero pivot: minimum-norm solutions through the eigen-
     * decomposition instead. */
    for (size_t k = 0; k < 2; k++) {
        for (size_t a = 0; a < m; a++)
            c->P[a] = k == 0 ? 0.0 : -c->b[c->S[a]];
        c->P[m] = k == 0 ? 1.0 : 0.0;
        build_kkt(T, c, m);
        int rc = lw_la_sym_pinv_solve(n, c->K, c->P, c->R + k * n,
                                      16.0 * (double)n * DBL_EPSILON, c->ls);
        if (rc)
            return rc;
    }
    return 0;
}

static double quad_S(size_t T, const cagrad_ws *c, size_t m, const double *p, const double *q)
{
    double s = 0.0;
    for (size_t a = 0; a < m; a++) {
        double r = 0.0;
        for (size_t bb = 0; bb < m; bb++)
            r += c->H[c->S[a] * T + c->S[bb]] * q[bb];
        s += p[a] * r;
    }
    return s;
}

/* min over the simplex of x'b + phi sqrt(x'Hx + eps); writes c->x. */
static int cagrad_solve(size_t T, cagrad_ws *c, double phi, size_t *iters)
{
    const double phi2 = phi * phi;
    double *x = c->x, *y = c->y;
    size_t m = 1, k0 = 0;
    double best = INFINITY;
    for (size_t i = 0; i < T; i++) {
        double d = c->H[i * T + i];
        double Fi = c->b[i] + phi * sqrt((d > 0 ? d : 0.0) + CAGRAD_EPS);
        if (Fi < best) {
            best = Fi;
            k0 = i;
        }
    }
    memset(x, 0, T * sizeof(double));
    memset(c->inS, 0, T);
    x[k0] = 1.0;
    c->S[0] = k0;
    c->inS[k0] = 1;
    size_t last_added = k0;
    const size_t maxit = 10 * T + 100;

    for (size_t it = 0; it < maxit; it++) {
        *iters = it + 1;
        const size_t n = m + 1;
        int rc = face_solve(T, c, m);
        if (rc)
            return rc;
        const double *u = c->R, *v = c->R + n;
        double quu = quad_S(T, c, m, u, u), quv = quad_S(T, c, m, u, v),
               qvv = quad_S(T, c, m, v, v);
        if (quu < 0)
            quu = 0.0;
        if (qvv < 0)
            qvv = 0.0;
        const double A = phi2 - qvv;
        /* y (indexed by face position) is the direction's end point. */
        int bounded = A > 0;
        if (bounded) {
            double C = quu + CAGRAD_EPS, D = quv * quv + A * C;
            double sD = sqrt(D > 0 ? D : 0.0);
            double t = quv >= 0 ? (quv + sD) / A : C / (sD - quv);
            int feasible = 1;
            for (size_t a = 0; a < m; a++) {
                y[a] = u[a] + t * v[a];
                if (!(y[a] >= 0))
                    feasible = 0;
            }
            if (feasible) {
                for (size_t a = 0; a < m; a++)
                    x[c->S[a]] = y[a];
                /* KKT off the face. */
                lw_la_matvec(T, c->H, x, c->Hx);
                double q = 0.0;
                for (size_t i = 0; i < T; i++)
                    q += x[i] * c->Hx[i];
                double tau = sqrt((q > 0 ? q : 0.0) + CAGRAD_EPS), ratio = phi / tau;
                double mu = 0.0, scale = 0.0;
                for (size_t i = 0; i < T; i++) {
                    c->grad[i] = c->b[i] + ratio * c->Hx[i];
                    mu += x[i] * c->grad[i];
                    double mag = 0.0;
                    for (size_t l = 0; l < T; l++)
                        mag += fabs(c->H[i * T + l]) * x[l];
                    mag = fabs(c->b[i]) + ratio * mag;
                    if (mag > scale)
                        scale = mag;
                }
                double tol = CAGRAD_KKT_RTOL * scale, worst = -tol;
                size_t jadd = SIZE_MAX;
                for (size_t j = 0; j < T; j++) {
                    if (c->inS[j])
                        continue;
                    double nu = c->grad[j] - mu;
                    if (nu < worst) {
                        worst = nu;
                        jadd = j;
                    }
                }
                if (jadd == SIZE_MAX)
                    return 0;
                c->S[m++] = jadd;
                c->inS[jadd] = 1;
                last_added = jadd;
                continue;
            }
            for (size_t a = 0; a < m; a++)
                y[a] = y[a] - x[c->S[a]];
        } else {
            for (size_t a = 0; a < m; a++)
                y[a] = v[a];
        }
        /* Ratio test along y (now a direction on the face). */
        double s = INFINITY;
        size_t blk = SIZE_MAX;
        for (size_t a = 0; a < m; a++) {
            if (y[a] < 0) {
                double r = x[c->S[a]] / -y[a];
                if (r < s) {
                    s = r;
                    blk = a;
                }
            }
        }
        if (blk == SIZE_MAX)
            return LW_ENUMERIC; /* a non-zero direction summing to 0 has a negative entry */
        if (!(s > 0) && c->S[blk] == last_added) {
            /* The task just added would leave at once: its multiplier was
             * negative only by rounding. x is optimal to the tolerance. */
            x[last_added] = 0.0;
            return 0;
        }
        if (s > 1)
            s = 1;
        for (size_t a = 0; a < m; a++)
            x[c->S[a]] += s * y[a];
        x[c->S[blk]] = 0.0;
        /* Drop every task now at (or, by rounding, below) zero. */
        size_t k = 0;
        for (size_t a = 0; a < m; a++) {
            size_t i = c->S[a];
            if (x[i] > 0) {
                c->S[k++] = i;
            } else {
                x[i] = 0.0;
                c->inS[i] = 0;
            }
        }
        m = k;
        last_added = SIZE_MAX;
        if (m == 0)
            return LW_ENUMERIC;
    }
    return LW_ENUMERIC;
}

static int cagrad_step(const lw_job *job, double *state, double *work, const lw_input *in,
                       double *w, lw_error *err)
{
    (void)state;
    const size_t T = job->T;
    const double calpha = lw_pnum(job, P_CALPHA);
    const int rescale = (int)lw_pnum(job, P_RESCALE);
    cagrad_ws c;
    carve(T, work, &c);

    lw_la_symmetrize(T, in->gram, c.H);
    double mean = 0.0;
    for (size_t i = 0; i < T; i++) {
        double r = 0.0;
        for (size_t j = 0; j < T; j++)
            r += c.H[i * T + j];
        c.b[i] = r / (double)T;
        mean += r;
    }
    mean /= (double)T * (double)T;
    if (mean < 0)
        mean = 0.0;
    const double phi = calpha * sqrt(mean + CAGRAD_EPS) + CAGRAD_EPS;

    size_t iters = 0;
    int rc = cagrad_solve(T, &c, phi, &iters);
    if (rc)
        return lw_fail(err, LW_ENUMERIC, "gram",
                       "cagrad: the active-set solver stopped after %zu iterations without "
                       "meeting the KKT conditions",
                       iters);
    double q = lw_la_quad(T, c.H, c.x, c.x);
    double gw = q > 0 ? sqrt(q) : 0.0;
    double lam = phi / (gw + CAGRAD_EPS);
    double div = rescale == 0 ? 1.0 : rescale == 1 ? 1.0 + calpha * calpha : 1.0 + calpha;
    for (size_t i = 0; i < T; i++)
        w[i] = (1.0 / (double)T + lam * c.x[i]) / div;
    return 0;
}

const lw_method lw_method_cagrad = {
    .info =
        {
            .name = "cagrad",
            .summary = "CAGrad: the mean gradient plus the conflict-averse correction.",
            .doc = "Liu et al., NeurIPS 2021, as LibMTL CAGrad.py: x* = argmin over the simplex "
                   "of <g_x, g0> + phi sqrt(||g_x||^2 + 1e-8), phi = calpha sqrt(mean G + "
                   "1e-8) + 1e-8; c_i = (1/T + lam x*_i) / r with lam = phi / (||g_x*|| + "
                   "1e-8) and r = 1, 1 + calpha^2 or 1 + calpha for rescale 0, 1, 2. "
                   "Differences: the inner problem is solved exactly by an active-set method "
                   "with a closed-form face step and KKT tolerance 1e-11 relative (LibMTL: "
                   "scipy SLSQP, tolerance 1e-6, x rounded to float32), so results differ from "
                   "LibMTL by its solver error. The official code and nash-mtl multiply by T "
                   "and use calpha 0.4; TorchJD normalises G by its trace. Heads keep their own "
                   "gradients.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = cagrad_params,
            .n_params = sizeof cagrad_params / sizeof cagrad_params[0],
        },
    .step = cagrad_step,
    .work_size = cagrad_work_size,
};
