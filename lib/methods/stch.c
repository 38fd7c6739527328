/*
 * stch.c -- smooth Tchebycheff scalarisation (Lin et al., ICML 2024).
 *
 * The trainer back-propagates a smoothed maximum of the (normalised)
 * losses; we return its gradient in each L_i as the weight
 * (methods-anchors.md 2.8). Two variants:
 *
 *   log_nadir (LibMTL STCH, from the official STCH_MTL code): epochs
 *     0..warmup_epoch minimise sum log(L_i + 1e-20), w_i = 1/(L_i + 1e-20);
 *     the steps of epoch warmup_epoch also accumulate L for a nadir
 *     estimate, frozen at the first step of a later epoch as the mean of
 *     the accumulated losses (this step's L if none were accumulated, which
 *     LibMTL does not guard). Then r_i = L_i/z_i + 1e-20,
 *     q = softmax(log(r)/mu), and the objective mu T log sum exp(log(r)/mu)
 *     gives w_i = T q_i / (z_i r_i). Epochs come from the reports (window 0)
 *     or from every `window` decided steps, as in dwa.
 *   linear (TorchJD scalarization.STCH): no state, no log, no factor T:
 *     y_i = preference_i (L_i - reference_i), w_i = preference_i
 *     softmax(y/mu)_i.
 *
 * LibMTL's backward() returns ones as its "weights"; we return the
 * effective ones, which is what its gradient applies.
 */
#include "../lw_internal.h"

#include <stdlib.h>

enum { P_VARIANT, P_MU, P_WARMUP_EPOCH, P_WINDOW, P_PREFERENCE, P_REFERENCE };
enum { VAR_LOG_NADIR, VAR_LINEAR };
enum { S_NADIR, S_NADIR_SUM, S_NADIR_COUNT, S_NADIR_FROZEN, S_LAST_EPOCH, S_STEPS };

/* LibMTL's guards inside the logs and divisions. */
#define STCH_EPS 1e-20

static const char *const variant_choices[] = {"log_nadir", "linear", NULL};

static const lw_param_info stch_params[] = {
    [P_VARIANT] = {"variant", LW_PARAM_CHOICE, VAR_LOG_NADIR, 0, 0, 0, 0, variant_choices,
                   "\"log_nadir\": LibMTL STCH (log of the losses over a nadir point measured "
                   "after a warm-up, factor T); \"linear\": TorchJD scalarization.STCH "
                   "(preference-weighted losses minus a reference)."},
    [P_MU] = {"mu", LW_PARAM_NUMBER, 1.0, 0.0, 1e300, 1, 0, NULL,
              "Smoothing (1.0 as LibMTL's STCH_mu default; TorchJD requires it)."},
    [P_WARMUP_EPOCH] = {"warmup_epoch", LW_PARAM_INT, 4.0, 0.0, 1e15, 0, 0, NULL,
                        "log_nadir only. LibMTL's STCH_warmup_epoch (4), an epoch INDEX: "
                        "epochs 0..warmup_epoch are warm-up and the last of them measures the "
                        "nadir."},
    [P_WINDOW] = {"window", LW_PARAM_INT, 0.0, 0.0, 1e15, 0, 0, NULL,
                  "log_nadir only. 0: epochs are the reports' `epoch` (LibMTL); N > 0: every N "
                  "decided steps form an epoch."},
    [P_PREFERENCE] = {"preference", LW_PARAM_VECTOR, NAN, 0.0, 1e300, 1, 0, NULL,
                      "linear only. T numbers > 0 (default 1/T each, TorchJD's default "
                      "weights)."},
    [P_REFERENCE] = {"reference", LW_PARAM_VECTOR, 0.0, -1e300, 1e300, 0, 0, NULL,
                     "linear only. T numbers, the reference point z* (default 0 as TorchJD)."},
};

static const lw_state_info stch_state[] = {
    [S_NADIR] = {"nadir", LW_LEN_T, "The frozen nadir point z (log_nadir; 0 until frozen)."},
    [S_NADIR_SUM] = {"nadir_sum", LW_LEN_T,
                     "Sum of the losses of epoch warmup_epoch's steps (log_nadir)."},
    [S_NADIR_COUNT] = {"nadir_count", LW_LEN_1, "Steps in nadir_sum."},
    [S_NADIR_FROZEN] = {"nadir_frozen", LW_LEN_1, "1 once the nadir is fixed."},
    [S_LAST_EPOCH] = {"last_epoch", LW_LEN_1,
                      "Epoch of the last decided step (-1 before any; log_nadir)."},
    [S_STEPS] = {"steps", LW_LEN_1, "Decided steps (gives the epoch when window > 0)."},
};

static int stch_fill_defaults(lw_job *job)
{
    lw_pval *p = &job->params[P_PREFERENCE];
    if (p->vec)
        return 0;
    p->vec = malloc(job->T * sizeof(double));
    if (!p->vec)
        return LW_ENOMEM;
    for (size_t i = 0; i < job->T; i++)
        p->vec[i] = 1.0 / (double)job->T;
    return 0;
}

/* Is parameter k at its default? The canonical spec the daemon echoes lists
 * every parameter, so the other variant's parameters come back at their
 * defaults and must be accepted; only a real value for them is a mistake. */
static int at_default(const lw_job *job, int k)
{
    const lw_param_info *p = &stch_params[k];
    if (p->type != LW_PARAM_VECTOR)
        return job->params[k].num == p->def;
    const double *v = job->params[k].vec;
    for (size_t i = 0; v && i < job->T; i++)
        if (v[i] != (k == P_PREFERENCE ? 1.0 / (double)job->T : p->def))
            return 0;
    return 1;
}

static int stch_check_spec(const lw_job *job, lw_error *err)
{
    static const struct {
        int param, variant;
    } only[] = {{P_WARMUP_EPOCH, VAR_LOG_NADIR},
                {P_WINDOW, VAR_LOG_NADIR},
                {P_PREFERENCE, VAR_LINEAR},
                {P_REFERENCE, VAR_LINEAR}};
    const int variant = lw_pchoice(job, P_VARIANT);
    for (size_t k = 0; k < sizeof only / sizeof only[0]; k++) {
        if (job->params[only[k].param].given && only[k].variant != variant &&
            !at_default(job, only[k].param)) {
            char f[64];
            snprintf(f, sizeof f, "params.%s", stch_params[only[k].param].name);
            return lw_fail(err, LW_EINVAL, f, "%s applies only to variant \"%s\", not \"%s\"",
                           f, variant_choices[only[k].variant], variant_choices[variant]);
        }
    }
    return 0;
}

static int log_nadir_window0(const lw_job *job)
{
    return lw_pchoice(job, P_VARIANT) == VAR_LOG_NADIR && lw_pnum(job, P_WINDOW) == 0;
}

static unsigned stch_needs(const lw_job *job)
{
    return log_nadir_window0(job) ? LW_IN_EPOCH : 0;
}

static void stch_init(const lw_job *job, double *state)
{
    lw_st(job, state, S_LAST_EPOCH)[0] = -1.0;
}

static int stch_check_input(const lw_job *job, const double *state, const lw_input *in,
                            lw_error *err)
{
    if (lw_pchoice(job, P_VARIANT) != VAR_LOG_NADIR)
        return 0;
    int rc = lw_check_positive_losses(in, job->T, err);
    if (rc)
        return rc;
    if (!log_nadir_window0(job))
        return 0;
    return lw_check_epoch_not_back(in, lw_stc(job, state, S_LAST_EPOCH)[0],
                                   "the previous report's epoch", err);
}

static void stch_linear(const lw_job *job, double *work, const lw_input *in, double *w)
{
    const size_t T = job->T;
    const double *pref = lw_pvec(job, P_PREFERENCE);
    const double *ref = lw_pvec(job, P_REFERENCE);
    double *y = work, *q = work + T;
    for (size_t i = 0; i < T; i++)
        y[i] = pref[i] * (in->losses[i] - ref[i]);
    lw_softmax(y, T, lw_pnum(job, P_MU), q);
    for (size_t i = 0; i < T; i++)
        w[i] = pref[i] * q[i];
}

static int stch_step(const lw_job *job, double *state, double *work, const lw_input *in,
                     double *w, lw_error *err)
{
    (void)err;
    const size_t T = job->T;
    if (lw_pchoice(job, P_VARIANT) == VAR_LINEAR) {
        stch_linear(job, work, in, w);
        return 0;
    }
    double *z = lw_st(job, state, S_NADIR);
    double *sum = lw_st(job, state, S_NADIR_SUM);
    double *count = lw_st(job, state, S_NADIR_COUNT);
    double *frozen = lw_st(job, state, S_NADIR_FROZEN);
    double *steps = lw_st(job, state, S_STEPS);
    const double *L = in->losses;
    const double warmup = lw_pnum(job, P_WARMUP_EPOCH);
    const double e = lw_epoch_of(in, lw_pnum(job, P_WINDOW), steps[0]);

    steps[0] += 1.0;
    lw_st(job, state, S_LAST_EPOCH)[0] = e;
    if (e <= warmup) {
        for (size_t i = 0; i < T; i++)
            w[i] = 1.0 / (L[i] + STCH_EPS);
        if (e == warmup) {
            for (size_t i = 0; i < T; i++)
                sum[i] += L[i];
            count[0] += 1.0;
        }
        return 0;
    }
    if (frozen[0] == 0) {
        for (size_t i = 0; i < T; i++)
            z[i] = count[0] > 0 ? sum[i] / count[0] : L[i];
        frozen[0] = 1.0;
    }
    double *r = work, *x = work + T, *q = work + 2 * T;
    for (size_t i = 0; i < T; i++) {
        r[i] = L[i] / z[i] + STCH_EPS;
        x[i] = log(r[i]);
    }
    lw_softmax(x, T, lw_pnum(job, P_MU), q);
    for (size_t i = 0; i < T; i++)
        w[i] = (double)T * q[i] / (z[i] * r[i]);
    return 0;
}

static size_t stch_work_size(size_t T) { return 3 * T; }

static int stch_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    char f[48];
    snprintf(f, sizeof f, "state.%s", stch_state[idx].name);
    switch (idx) {
    case S_NADIR:
    case S_NADIR_SUM:
        return lw_check_state_nonneg(f, v, job->T, err);
    case S_NADIR_FROZEN:
        return lw_check_state_flag(f, v[0], err);
    case S_LAST_EPOCH:
        return lw_check_state_int(f, v[0], -1.0, err);
    default:
        return lw_check_state_int(f, v[0], 0.0, err);
    }
}

const lw_method lw_method_stch = {
    .info =
        {
            .name = "stch",
            .summary = "Smooth Tchebycheff scalarisation: weights of a smoothed max of the losses.",
            .doc = "Variant log_nadir (default) is LibMTL STCH: epochs 0..warmup_epoch give "
                   "w_i = 1/(L_i + 1e-20) and the last of them measures the nadir z (mean "
                   "loss); afterwards w_i = T q_i / (z_i r_i), r_i = L_i/z_i + 1e-20, q = "
                   "softmax(log(r)/mu). Needs losses > 0 and `epoch` (or window > 0). "
                   "Variant linear is TorchJD scalarization.STCH: w_i = preference_i "
                   "softmax(preference * (L - reference) / mu)_i, no state. Parameters of one "
                   "variant given with the other are refused. Differences: LibMTL returns "
                   "ones as its weights, we return the effective weights its gradient "
                   "applies; if no step of epoch warmup_epoch was decided, the nadir is the "
                   "losses of the first later step (LibMTL divides by zero).",
            .inputs = LW_IN_LOSSES,
            .optional_inputs = LW_IN_EPOCH,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .params = stch_params,
            .n_params = sizeof stch_params / sizeof stch_params[0],
            .state = stch_state,
            .n_state = sizeof stch_state / sizeof stch_state[0],
        },
    .fill_defaults = stch_fill_defaults,
    .check_spec = stch_check_spec,
    .needs = stch_needs,
    .check_input = stch_check_input,
    .init = stch_init,
    .step = stch_step,
    .work_size = stch_work_size,
    .check_state = stch_check_state,
};
