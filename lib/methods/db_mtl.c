/*
 * db_mtl.c -- DB-MTL (Lin et al., "Dual-Balancing Multi-Task Learning";
 * LibMTL DB_MTL), the case beta = 0.
 *
 * LibMTL back-propagates log(L_i + 1e-8) per task, keeps an EMA over steps
 * of those full gradient vectors (buf_i <- g~_i + beta_t (buf_i - g~_i)) and
 * sets the shared gradient to sum_i alpha_i buf_i, alpha_i = max_j ||buf_j||
 * / (||buf_i|| + 1e-8). With beta = 0 the buffer is the current g~_i =
 * g_i / (L_i + 1e-8), whose norm is u_i = n_i / (L_i + 1e-8), so the
 * coefficient on the original g_i is alpha_i / (L_i + 1e-8) and only the
 * losses and the norms are needed (methods-anchors.md 5). With beta > 0 the
 * EMA mixes gradients of different steps: its norms need inner products
 * across steps and the result is not a combination of the current g_i, so a
 * service cannot compute it; that is a 400 at creation.
 */
#include "../lw_internal.h"

enum { P_BETA };

/* LibMTL's guards, inside the log and in the norm ratio. */
#define DB_LOSS_EPS 1e-8
#define DB_NORM_EPS 1e-8

static const lw_param_info db_mtl_params[] = {
    [P_BETA] = {"beta", LW_PARAM_NUMBER, 0.0, 0.0, 1.0, 0, 0, NULL,
                "EMA coefficient of LibMTL's gradient buffer. Only 0 is served: with beta > 0 "
                "the trainer must keep the buffer (LibMTL's runs use 0.9)."},
};

static int db_mtl_check_spec(const lw_job *job, lw_error *err)
{
    double beta = lw_pnum(job, P_BETA);
    if (beta != 0.0)
        return lw_fail(err, LW_ENOTSUP, "params.beta",
                       "params.beta = %g is not served, only 0: with beta > 0 DB-MTL keeps an "
                       "EMA over steps of the full gradient vectors, whose norms need inner "
                       "products between gradients of different steps, and its result is not a "
                       "combination of the current task gradients",
                       beta);
    return 0;
}

static int db_mtl_check_input(const lw_job *job, const double *state, const lw_input *in,
                              lw_error *err)
{
    (void)state;
    for (size_t i = 0; i < job->T; i++) {
        if (in->losses[i] < 0) {
            char f[48];
            snprintf(f, sizeof f, "losses[%zu]", i);
            return lw_fail(err, LW_EINVAL, f,
                           "%s = %.15g: db_mtl takes log(L + 1e-8) and needs losses >= 0", f,
                           in->losses[i]);
        }
    }
    return 0;
}

static size_t db_mtl_work_size(size_t T) { return T; }

static int db_mtl_step(const lw_job *job, double *state, double *u, const lw_input *in,
                       double *w, lw_error *err)
{
    (void)state, (void)err;
    const size_t T = job->T;
    double umax = 0.0;
    for (size_t i = 0; i < T; i++) {
        u[i] = in->grad_norms[i] / (in->losses[i] + DB_LOSS_EPS);
        if (u[i] > umax)
            umax = u[i];
    }
    for (size_t i = 0; i < T; i++)
        w[i] = (umax / (u[i] + DB_NORM_EPS)) / (in->losses[i] + DB_LOSS_EPS);
    return 0;
}

const lw_method lw_method_db_mtl = {
    .info =
        {
            .name = "db_mtl",
            .summary = "DB-MTL with beta = 0: c_i = (max_j u_j / (u_i + 1e-8)) / (L_i + 1e-8), "
                       "u_i = n_i / (L_i + 1e-8).",
            .doc = "LibMTL DB_MTL (methods-anchors.md 5) with beta = 0, the only case "
                   "computable from this step's losses and gradient norms; any other beta is a "
                   "400 (LibMTL's runs use 0.9: keep its buffer in the trainer). Coefficients "
                   "on the original shared gradients. Unlike the other gradient methods, "
                   "LibMTL's task heads get the gradient of log(L_i + 1e-8), i.e. their own "
                   "gradient times 1 / (L_i + 1e-8): a trainer reproducing LibMTL scales head "
                   "i by that factor. Losses may be 0 (the 1e-8 guard), not negative.",
            .inputs = LW_IN_LOSSES | LW_IN_GRAD_NORMS,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = db_mtl_params,
            .n_params = sizeof db_mtl_params / sizeof db_mtl_params[0],
        },
    .check_spec = db_mtl_check_spec,
    .check_input = db_mtl_check_input,
    .step = db_mtl_step,
    .work_size = db_mtl_work_size,
};
