/*
 * grad_unit.c -- gradient normalisation: shared gradient sum_i g_i / ||g_i||.
 *
 * Seed 003's gradient normalisation (methods-anchors.md 2.7 last row and
 * 3.2): every task contributes a unit vector, so the combination does not
 * depend on the scale of any loss. Needs only the norms n_i = ||g_i|| on the
 * shared parameters. A zero norm would give 1/0; seed 003 guards it two
 * ways, both offered: 1 / max(n_i, eps) (eq. 62, default) and
 * 1 / (n_i + eps) (eq. 59).
 */
#include "../lw_internal.h"

enum { P_EPS, P_GUARD };
enum { GUARD_MAX, GUARD_ADD };

static const char *const guard_choices[] = {"max", "add", NULL};

static const lw_param_info grad_unit_params[] = {
    [P_EPS] = {"eps", LW_PARAM_NUMBER, 1e-8, 0.0, 1e300, 1, 0, NULL,
               "Guard against zero norms (> 0). A norm below eps counts as eps (\"max\") or "
               "eps is added to every norm (\"add\")."},
    [P_GUARD] = {"guard", LW_PARAM_CHOICE, GUARD_MAX, 0, 0, 0, 0, guard_choices,
                 "\"max\": c_i = 1 / max(n_i, eps) (seed 003 eq. 62); \"add\": c_i = 1 / "
                 "(n_i + eps) (seed 003 eq. 59)."},
};

static int grad_unit_step(const lw_job *job, double *state, double *work, const lw_input *in,
                          double *w, lw_error *err)
{
    (void)state, (void)work, (void)err;
    const double eps = lw_pnum(job, P_EPS);
    const double *n = in->grad_norms;
    if (lw_pchoice(job, P_GUARD) == GUARD_ADD) {
        for (size_t i = 0; i < job->T; i++)
            w[i] = 1.0 / (n[i] + eps);
    } else {
        for (size_t i = 0; i < job->T; i++)
            w[i] = 1.0 / fmax(n[i], eps);
    }
    return 0;
}

const lw_method lw_method_grad_unit = {
    .info =
        {
            .name = "grad_unit",
            .summary = "Gradient normalisation: c_i = 1 / ||g_i||, shared gradient sum_i g_i / "
                       "||g_i||.",
            .doc = "Seed 003's gradient normalisation (methods-anchors.md 2.7, 3.2): "
                   "coefficients on the shared gradients from grad_norms alone, no common "
                   "rescaling. Zero norms are guarded with eps as seed 003 does (guard \"max\", "
                   "eq. 62, or \"add\", eq. 59). No anchor fixes what the task heads get; we "
                   "return grad coefficients (heads unweighted); back-propagating sum_i c_i "
                   "L_i instead gives the same shared gradient with weighted heads.",
            .inputs = LW_IN_GRAD_NORMS,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = grad_unit_params,
            .n_params = sizeof grad_unit_params / sizeof grad_unit_params[0],
        },
    .step = grad_unit_step,
};
