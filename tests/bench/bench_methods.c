/*
 * bench_methods.c -- time per lw_job_step for every servable method.
 *
 * Figures, not a test: it always exits 0. Loss-based methods (no Gram
 * input) run at T = 2, 8, 64 and are shown in nanoseconds; methods whose
 * inputs include the Gram matrix run at T = 2, 8, 32, 128 and are shown in
 * microseconds. Each cell is one fresh job (default parameters, tasks with
 * a label_var prior so prior_norm can be created) stepped in a tight loop
 * over a few precomputed input sets, one loss nudged per step so no two
 * consecutive steps see the same numbers, an epoch every 64 steps, for
 * about 50 ms after a short warm-up. The targets (a loss-based step under
 * 1000 ns at T = 8; a Gram step under 20 us at T = 8 and 5 ms at T = 128)
 * are printed next to the cells they apply to.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lossweight.h"

#define NSETS 8
#define CELL_NS 50e6    /* ~50 ms of stepping per cell */
#define WARMUP_NS 5e6   /* and ~5 ms of warm-up */
#define MAX_T 128

static const size_t loss_T[] = {2, 8, 64};
static const size_t gram_T[] = {2, 8, 32, 128};
#define N_LOSS_T (sizeof loss_T / sizeof loss_T[0])
#define N_GRAM_T (sizeof gram_T / sizeof gram_T[0])

/* Targets: the T they apply to and the limit in ns. */
static const struct {
    int gram;
    size_t T;
    double ns;
} targets[] = {{0, 8, 1000.0}, {1, 8, 20e3}, {1, 128, 5e6}};

typedef struct inputs {
    size_t T;
    double losses[NSETS][MAX_T];
    double after[NSETS][MAX_T];
    double norms[NSETS][MAX_T];
    double *gram[NSETS]; /* T*T each, NULL when not built */
} inputs;

static uint64_t rng_state = 0x243F6A8885A308D3ULL;

static double urand(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

static double nrand(void)
{
    double u1 = 1.0 - urand(), u2 = urand();
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Losses of a few magnitudes, norms and a PSD Gram from random task
 * gradients sharing a common direction (so some pairs conflict). */
static int make_inputs(inputs *in, size_t T, int with_gram)
{
    const size_t D = T + 8;
    double *v = malloc(T * D * sizeof *v), *shared = malloc(D * sizeof *shared);
    if (!v || !shared) {
        free(v);
        free(shared);
        return -1;
    }
    in->T = T;
    for (size_t d = 0; d < D; d++)
        shared[d] = nrand();
    for (int s = 0; s < NSETS; s++) {
        for (size_t i = 0; i < T; i++) {
            double mag = pow(10.0, (double)(i % 4) - 1.5); /* 0.03 .. 30 */
            in->losses[s][i] = mag * (0.5 + urand());
            in->after[s][i] = in->losses[s][i] * (0.97 + 0.02 * urand());
            double a = (i % 3 == 1 ? -0.5 : 1.0) * (0.2 + urand());
            for (size_t d = 0; d < D; d++)
                v[i * D + d] = a * shared[d] + 0.7 * nrand();
        }
        in->gram[s] = NULL;
        if (with_gram) {
            in->gram[s] = malloc(T * T * sizeof(double));
            if (!in->gram[s])
                return -1;
        }
        for (size_t i = 0; i < T; i++) {
            for (size_t j = i; j < T; j++) {
                double g = 0;
                for (size_t d = 0; d < D; d++)
                    g += v[i * D + d] * v[j * D + d];
                if (with_gram) {
                    in->gram[s][i * T + j] = g;
                    in->gram[s][j * T + i] = g;
                }
                if (i == j)
                    in->norms[s][i] = sqrt(g);
            }
        }
    }
    free(v);
    free(shared);
    return 0;
}

static void free_inputs(inputs *in)
{
    for (int s = 0; s < NSETS; s++)
        free(in->gram[s]);
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Run steps k0 .. k0+n-1 of a job; returns 0 or the failing code. */
static int run(lw_job *job, const inputs *in, double *cur, uint64_t k0, uint64_t n, double *w,
               lw_error *err)
{
    const size_t T = in->T;
    for (uint64_t k = k0; k < k0 + n; k++) {
        int s = (int)(k % NSETS);
        /* the set's losses, with one of them nudged by up to 0.7% */
        memcpy(cur, in->losses[s], T * sizeof *cur);
        size_t j = (size_t)(k % T);
        cur[j] *= 1.0 + 1e-3 * (double)(k & 7);
        lw_input x = {k, (int64_t)(k / 64), cur, in->norms[s], in->gram[s],
                      k ? in->after[s] : NULL};
        int rc = lw_job_step(job, &x, w, err);
        if (rc)
            return rc;
    }
    return 0;
}

/* ns per step for one method at one T; < 0 on failure (message in err). */
static double bench_cell(const char *method, const inputs *in, lw_error *err)
{
    const size_t T = in->T;
    lw_task tasks[MAX_T];
    char names[MAX_T][16];
    for (size_t i = 0; i < T; i++) {
        snprintf(names[i], sizeof names[i], "task%zu", i);
        lw_task_init(&tasks[i], names[i]);
        tasks[i].label_var = 0.5 + (double)(i % 5);
    }
    lw_spec spec = {method, tasks, T, NULL, 0, 1};
    lw_job *job;
    if (lw_job_create(&spec, &job, err) != 0)
        return -1;
    double cur[MAX_T], w[MAX_T];
    uint64_t k = 0, n = 16;
    /* warm-up, doubling until it takes WARMUP_NS, to size the timed run */
    double t0 = now_ns(), dt = 0;
    for (;;) {
        double a = now_ns();
        if (run(job, in, cur, k, n, w, err)) {
            lw_job_free(job);
            return -1;
        }
        dt = now_ns() - a;
        k += n;
        if (now_ns() - t0 >= WARMUP_NS || n >= (1u << 24))
            break;
        n *= 2;
    }
    double per = dt / (double)n;
    uint64_t iters = (uint64_t)(CELL_NS / (per > 1.0 ? per : 1.0));
    if (iters < 10)
        iters = 10;
    double a = now_ns();
    int rc = run(job, in, cur, k, iters, w, err);
    double total = now_ns() - a;
    lw_job_free(job);
    return rc ? -1 : total / (double)iters;
}

static const char *verdict(int gram, size_t T, double ns)
{
    for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++)
        if (targets[i].gram == gram && targets[i].T == T)
            return ns < targets[i].ns ? " ok" : " MISS";
    return "";
}

/* Methods named on the command line, or all when none are. */
static int n_only;
static char **only;

static int selected(const char *name)
{
    for (int i = 0; i < n_only; i++)
        if (strcmp(only[i], name) == 0)
            return 1;
    return n_only == 0;
}

static void table(int gram)
{
    const size_t *Ts = gram ? gram_T : loss_T;
    const size_t nT = gram ? N_GRAM_T : N_LOSS_T;
    const double unit = gram ? 1e3 : 1.0;
    static inputs in[N_GRAM_T];
    char errors[4096] = "";
    size_t elen = 0;

    if (gram)
        printf("\nGram-based methods: microseconds per lw_job_step "
               "(targets: < 20 us at T=8, < 5000 us at T=128)\n");
    else
        printf("Loss-based methods: nanoseconds per lw_job_step (target: < 1000 ns at T=8)\n");
    printf("%-14s", "method");
    for (size_t c = 0; c < nT; c++) {
        char h[16];
        snprintf(h, sizeof h, "T=%zu", Ts[c]);
        printf(" %14s", h);
    }
    printf("\n");
    for (size_t c = 0; c < nT; c++) {
        if (make_inputs(&in[c], Ts[c], gram)) {
            printf("out of memory\n");
            return;
        }
    }
    for (size_t m = 0; m < lw_method_count(); m++) {
        const lw_method_info *mi = lw_method_at(m);
        if (!mi->servable || (((mi->inputs & LW_IN_GRAM) != 0) != gram) || !selected(mi->name))
            continue;
        printf("%-14s", mi->name);
        fflush(stdout);
        for (size_t c = 0; c < nT; c++) {
            lw_error err;
            double ns = bench_cell(mi->name, &in[c], &err);
            char cell[32];
            if (ns < 0) {
                snprintf(cell, sizeof cell, "error");
                if (elen < sizeof errors)
                    elen += (size_t)snprintf(errors + elen, sizeof errors - elen,
                                             "  %s T=%zu: %s: %s\n", mi->name, Ts[c], err.field,
                                             err.message);
            } else {
                snprintf(cell, sizeof cell, gram ? "%.2f%s" : "%.0f%s", ns / unit,
                         verdict(gram, Ts[c], ns));
            }
            printf(" %14s", cell);
            fflush(stdout);
        }
        printf("\n");
    }
    if (errors[0])
        printf("errors:\n%s", errors);
    for (size_t c = 0; c < nT; c++)
        free_inputs(&in[c]);
}

int main(int argc, char **argv)
{
    n_only = argc - 1;
    only = argv + 1;
    printf("lossweight %s bench: %zu methods in the table\n\n", LW_VERSION, lw_method_count());
    table(0);
    table(1);
    return 0;
}
