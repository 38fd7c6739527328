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
