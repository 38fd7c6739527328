/*
 * util.c -- small numerical helpers shared by method files: errors,
 * softmax and log-sum-exp in a fixed order, and the PyTorch optimizers that
 * learnable weightings (uw, imtl_l, gradnorm, famo) step their parameters
 * with.
 */
#include "lw_internal.h"

#include <stdio.h>
#include <string.h>

const char *const lw_choices_optimizer[] = {"adam", "sgd", NULL};

int lw_fail(lw_error *err, int code, const char *field, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

void lw_softmax(const double *x, size_t n, double temp, double *out)
{
    double mx = -INFINITY, sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (x[i] / temp > mx)
            mx = x[i] / temp;
    for (size_t i = 0; i < n; i++) {
        out[i] = exp(x[i] / temp - mx);
        sum += out[i];
    }
    for (size_t i = 0; i < n; i++)
        out[i] /= sum;
}

double lw_logsumexp(const double *x, size_t n)
{
    double mx = -INFINITY, sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    if (isinf(mx))
        return mx;
    for (size_t i = 0; i < n; i++)
        sum += exp(x[i] - mx);
    return mx + log(sum);
}

int lw_check_positive_losses(const lw_input *in, size_t T, lw_error *err)
{
    if (!in->losses)
        return 0;
    for (size_t i = 0; i < T; i++) {
        if (!(in->losses[i] > 0)) {
            char f[48];
            snprintf(f, sizeof f, "losses[%zu]", i);
            return lw_fail(err, LW_EINVAL, f, "%s = %.15g: this method needs losses > 0", f,
                           in->losses[i]);
        }
    }
    return 0;
}

/* torch.optim.Adam's single-tensor update (PyTorch 1.13, amsgrad off,
 * maximize off): the same operations in the same order. */
void lw_adam_step(const lw_adam *o, size_t n, double *x, const double *g, double *m, double *v,
                  double *t)
{
    *t += 1.0;
    double bc1 = 1.0 - pow(o->beta1, *t);
    double bc2 = 1.0 - pow(o->beta2, *t);
    double step_size = o->lr / bc1;
    double bc2_sqrt = sqrt(bc2);
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        if (o->weight_decay != 0.0)
            gi = gi + o->weight_decay * x[i];
        m[i] = m[i] * o->beta1 + gi * (1.0 - o->beta1);
        v[i] = v[i] * o->beta2 + (1.0 - o->beta2) * gi * gi;
        double denom = sqrt(v[i]) / bc2_sqrt + o->eps;
        x[i] = x[i] + (-step_size) * m[i] / denom;
    }
}

void lw_sgd_step(double lr, double weight_decay, size_t n, double *x, const double *g)
{
    for (size_t i = 0; i < n; i++) {
        double gi = g[i];
        if (weight_decay != 0.0)
            gi = gi + weight_decay * x[i];
        x[i] = x[i] - lr * gi;
    }
}

void lw_opt_step(const lw_job *job, const lw_opt_params *p, const lw_opt_state *s, double *state,
                 size_t n, double *x, const double *g)
{
    if (lw_pchoice(job, p->optimizer) == LW_OPT_ADAM) {
        const lw_adam opt = {lw_pnum(job, p->lr), lw_pnum(job, p->beta1), lw_pnum(job, p->beta2),
                             lw_pnum(job, p->eps), lw_pnum(job, p->weight_decay)};
        lw_adam_step(&opt, n, x, g, lw_st(job, state, s->m), lw_st(job, state, s->v),
                     lw_st(job, state, s->t));
    } else {
        lw_sgd_step(lw_pnum(job, p->lr), lw_pnum(job, p->weight_decay), n, x, g);
    }
}

int lw_check_state_nonneg(const char *f, const double *v, size_t n, lw_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0)
            return lw_fail(err, LW_EINVAL, f, "%s[%zu] = %.15g must be >= 0", f, i, v[i]);
    return 0;
}

int lw_check_state_int(const char *f, double v, double min, lw_error *err)
{
    if (!(v >= min && floor(v) == v))
        return lw_fail(err, LW_EINVAL, f, "%s must be an integer >= %.0f", f, min);
    return 0;
}

int lw_check_state_flag(const char *f, double v, lw_error *err)
{
    if (v != 0 && v != 1)
        return lw_fail(err, LW_EINVAL, f, "%s must be 0 or 1", f);
    return 0;
}

int lw_opt_check_state(const lw_job *job, const lw_opt_state *s, size_t idx, const double *v,
                       lw_error *err)
{
    if (idx == s->v)
        return lw_check_state_nonneg("state.adam_v", v, job->T, err);
    if (idx == s->t)
        return lw_check_state_int("state.adam_t", v[0], 0.0, err);
    return 0;
}

double lw_epoch_of(const lw_input *in, double window, double steps)
{
    if (window > 0)
        return floor(steps / window);
    return (double)in->epoch;
}

int lw_check_epoch_not_back(const lw_input *in, double prev, const char *prev_name,
                            lw_error *err)
{
    if ((double)in->epoch < prev)
        return lw_fail(err, LW_EINVAL, "epoch",
                       "epoch = %lld is below %s %.0f: epochs may not go back",
                       (long long)in->epoch, prev_name, prev);
    return 0;
}
