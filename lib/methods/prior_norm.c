/*
 * prior_norm.c -- prior-loss normalisation: w_i = 1 / L_i(prior).
 *
 * Seed 003's "prior state" normalisation (methods-anchors.md 2.7, row
 * "Prior-loss"): each loss is divided by the loss of the best constant
 * predictor for its labels, known from dataset statistics before training:
 * the entropy of the class frequencies for a cross-entropy task, the label
 * variance for an MSE task, or a value the user computed (prior_loss). No
 * anchor implements it; it is our derivation. The weights never change.
 *
 * The resolved priors are computed once at creation into the state array
 * "prior_loss" so a step costs T divisions whatever the number of classes,
 * and so a person can read the values in use.
 */
#include "../lw_internal.h"

enum { S_PRIOR };

static const lw_state_info prior_norm_state[] = {
    [S_PRIOR] = {"prior_loss", LW_LEN_T,
                 "L_i(prior) resolved from the task spec at creation (prior_loss, else the "
                 "entropy of class_freq, else label_var); constant. An import may replace it "
                 "(each value > 0)."},
};

/* Entropy -sum p log p (natural log) of the frequencies normalised to sum
 * 1, zero entries skipped. Fixed order. */
static double entropy(const double *f, size_t n)
{
    double s = 0.0, h = 0.0;
    for (size_t k = 0; k < n; k++)
        s += f[k];
    for (size_t k = 0; k < n; k++) {
        if (f[k] > 0) {
            double p = f[k] / s;
            h -= p * log(p);
        }
    }
    return h;
}

/* The task's prior loss; 0 when none is given. Precedence: prior_loss,
 * class_freq, label_var. */
static double task_prior(const lw_task_priv *t)
{
    if (!isnan(t->prior_loss))
        return t->prior_loss;
    if (t->n_class_freq)
        return entropy(t->class_freq, t->n_class_freq);
    if (!isnan(t->label_var))
        return t->label_var;
    return 0.0;
}

static int prior_norm_check_spec(const lw_job *job, lw_error *err)
{
    for (size_t i = 0; i < job->T; i++) {
        const lw_task_priv *t = &job->tasks[i];
        char f[64];
        if (isnan(t->prior_loss) && !t->n_class_freq && isnan(t->label_var)) {
            snprintf(f, sizeof f, "tasks[%zu]", i);
            return lw_fail(err, LW_EINVAL, f,
                           "%s (\"%.40s\") has no prior: prior_norm needs one of prior_loss, "
                           "class_freq (classification) or label_var (regression) per task",
                           f, t->name);
        }
        if (!(task_prior(t) > 0)) {
            snprintf(f, sizeof f, "tasks[%zu].class_freq", i);
            return lw_fail(err, LW_EINVAL, f,
                           "%s has entropy 0 (a single class): the prior loss would be 0", f);
        }
    }
    return 0;
}

static void prior_norm_init(const lw_job *job, double *state)
{
    double *prior = lw_st(job, state, S_PRIOR);
    for (size_t i = 0; i < job->T; i++)
        prior[i] = task_prior(&job->tasks[i]);
}

static int prior_norm_step(const lw_job *job, double *state, double *work, const lw_input *in,
                           double *w, lw_error *err)
{
    (void)work, (void)in, (void)err;
    const double *prior = lw_stc(job, state, S_PRIOR);
    for (size_t i = 0; i < job->T; i++)
        w[i] = 1.0 / prior[i];
    return 0;
}

static int prior_norm_check_state(const lw_job *job, size_t idx, const double *v, lw_error *err)
{
    (void)idx;
    for (size_t i = 0; i < job->T; i++) {
        if (!(v[i] > 0)) {
            char f[64];
            snprintf(f, sizeof f, "state.prior_loss[%zu]", i);
            return lw_fail(err, LW_EINVAL, f, "%s must be > 0", f);
        }
    }
    return 0;
}

const lw_method lw_method_prior_norm = {
    .info =
        {
            .name = "prior_norm",
            .summary = "Prior-loss normalisation: w_i = 1 / (loss of the best constant "
                       "predictor).",
            .doc = "Seed 003's \"prior state\" normalisation (methods-anchors.md 2.7, "
                   "Prior-loss; in no anchor's code). Per task: prior_loss as given, else the "
                   "entropy -sum p log p (natural log) of class_freq normalised to sum 1 with "
                   "zero entries skipped, else label_var (for a loss of 0.5 (y - f)^2 give "
                   "prior_loss = label_var / 2). A task with none of them is refused at "
                   "creation; so is a class_freq with a single non-zero class (entropy 0).",
            .inputs = LW_IN_LOSSES,
            .output = LW_OUT_LOSS_WEIGHTS,
            .servable = 1,
            .state = prior_norm_state,
            .n_state = sizeof prior_norm_state / sizeof prior_norm_state[0],
        },
    .check_spec = prior_norm_check_spec,
    .init = prior_norm_init,
    .step = prior_norm_step,
    .check_state = prior_norm_check_state,
};
