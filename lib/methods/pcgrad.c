/*
 * pcgrad.c -- PCGrad, projecting conflicting gradients (Yu et al., NeurIPS
 * 2020), as LibMTL's PCGrad.py computes it.
 *
 * Why it is a combination of the original gradients computable from G.
 * LibMTL starts each task's projected gradient at g_i^PC = g_i and, for j in
 * a random order of ALL tasks (i included), computes d = <g_i^PC, g_j> with
 * g_j the ORIGINAL gradient and, when d < 0, sets
 * g_i^PC -= d / (||g_j||^2 + 1e-8) g_j; the shared gradient is sum_i g_i^PC.
 * Write g_i^PC = sum_k v_k g_k. Initially v = e_i. Then
 * d = sum_k v_k <g_k, g_j> = (G v)_j, ||g_j||^2 = G_jj, and the update only
 * changes the coefficient v_j: v_j -= d / (G_jj + 1e-8). So every projected
 * gradient stays a combination of the g_k whose coefficients need only G, and
 * the result is c = sum_i v^(i) (reduction "sum", LibMTL, TorchJD, nash-mtl),
 * or that divided by T (reduction "mean", WeiChengTseng/Pytorch-PCGrad).
 *
 * Differences from the anchors. TorchJD skips j = i; LibMTL (followed here)
 * includes it, which can only matter when an earlier projection made
 * <g_i^PC, g_i> negative. The 1e-8 in the denominator is LibMTL's (absolute,
 * so not scale invariant: with ||g_j||^2 near 1e-8 the projection is only
 * partial, exactly as in LibMTL); it also makes a zero-gradient task
 * harmless (d = 0 there, so no division by zero and no projection).
 *
 * The order: for task i, a Fisher-Yates shuffle of (0, 1, ..., T-1) driven
 * by the job's generator at (seed, step = the report's step, stream = 1 + i),
 * from the front as gradvac does it: for k = 0 .. T-2 swap position k with
 * position k + (r_k mod (T - k)), r_k = lw_rand_u64(seed, step, 1 + i, k).
 * The projections then run over the permuted list from position 0. Every
 * rank and every replay agrees; the modulo bias (below T / 2^64) is
 * irrelevant.
 */
#include "../lw_internal.h"

enum { P_REDUCTION };
enum { RED_SUM, RED_MEAN };

/* LibMTL's guard in the projection denominator. */
#define PCGRAD_EPS 1e-8

static const char *const reduction_choices[] = {"sum", "mean", NULL};

static const lw_param_info pcgrad_params[] = {
    [P_REDUCTION] = {"reduction", LW_PARAM_CHOICE, RED_SUM, 0, 0, 0, 0, reduction_choices,
                     "\"sum\": sum of the projected gradients (LibMTL, TorchJD, nash-mtl "
                     "default); \"mean\": divided by T (WeiChengTseng/Pytorch-PCGrad)."},
};

/* Workspace: v (T) | perm (T ints, one per double). */
static size_t pcgrad_work_size(size_t T) { return 2 * T; }

static int pcgrad_step(const lw_job *job, double *state, double *work, const lw_input *in,
                       double *c, lw_error *err)
{
    (void)state, (void)err;
    const size_t T = job->T;
    const double *G = in->gram;
    double *v = work;
    size_t *perm = (size_t *)(work + T);

    for (size_t i = 0; i < T; i++)
        c[i] = 0.0;
    for (size_t i = 0; i < T; i++) {
        for (size_t k = 0; k < T; k++) {
            perm[k] = k;
            v[k] = 0.0;
        }
        for (size_t k = 0; k + 1 < T; k++) {
            uint64_t r = lw_rand_u64(job->seed, in->step, 1 + (uint64_t)i, (uint64_t)k);
            size_t j = k + (size_t)(r % (uint64_t)(T - k));
            size_t t = perm[k];
            perm[k] = perm[j];
            perm[j] = t;
        }
        v[i] = 1.0;
        for (size_t p = 0; p < T; p++) {
            size_t j = perm[p];
            const double *row = G + j * T;
            double d = 0.0;
            for (size_t k = 0; k < T; k++)
                d += row[k] * v[k];
            if (d < 0.0)
                v[j] -= d / (row[j] + PCGRAD_EPS);
        }
        for (size_t k = 0; k < T; k++)
            c[k] += v[k];
    }
    if (lw_pchoice(job, P_REDUCTION) == RED_MEAN)
        for (size_t k = 0; k < T; k++)
            c[k] /= (double)T;
    return 0;
}

const lw_method lw_method_pcgrad = {
    .info =
        {
            .name = "pcgrad",
            .summary = "PCGrad: project each gradient off the others it conflicts with.",
            .doc = "Yu et al., NeurIPS 2020, as LibMTL PCGrad: for each task a random order of "
                   "all tasks (itself included) from the job's generator at (seed, step, "
                   "1 + task); a conflicting projection divides by ||g_j||^2 + 1e-8 "
                   "(LibMTL's guard). Coefficients on the original gradients; heads keep "
                   "their own gradient (LibMTL). TorchJD skips the task itself, which differs "
                   "only when an earlier projection turned g_i^PC against g_i.",
            .inputs = LW_IN_GRAM,
            .output = LW_OUT_GRAD_COEFFS,
            .servable = 1,
            .params = pcgrad_params,
            .n_params = sizeof pcgrad_params / sizeof pcgrad_params[0],
        },
    .step = pcgrad_step,
    .work_size = pcgrad_work_size,
};
