/*
 * lw_internal.h -- what method files and job.c share; not installed.
 *
 * A method is one `lw_method` row (lib/methods/<name>.c defines it, and
 * lib/table.c lists it). The row carries the public description
 * (lw_method_info: name, inputs, parameters, state arrays) and the
 * functions job.c calls. job.c owns everything generic: parsing and range
 * checking of parameters, shape and finiteness checks of inputs, the state
 * buffer and its transactional update, export/import. A method only adds
 * what is specific to it.
 *
 * State is a flat array of doubles laid out as the method's state table
 * says (LW_LEN_1 / T / TT each). Counters are doubles too (exact to 2^53),
 * so one array exports, copies and restores everything. lw_job_step() runs
 * the method's step on a working copy of the state and commits it only if
 * the step succeeds, so a failing step changes nothing.
 */
#ifndef LW_INTERNAL_H
#define LW_INTERNAL_H

#include "lossweight.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h> /* snprintf only: lib/ does no I/O */

/* A resolved parameter value. */
typedef struct lw_pval {
    double num;  /* NUMBER, INT */
    int choice;  /* CHOICE: index into choices */
    double *vec; /* VECTOR: T numbers owned by the job, or NULL when unset */
    int given;   /* 1: the spec named this parameter */
} lw_pval;

/* A task as the job keeps it (copied from lw_task). */
typedef struct lw_task_priv {
    char *name;
    double init_loss, prior_loss, label_var;
    double *class_freq;
    size_t n_class_freq;
    int64_t classes;
} lw_task_priv;

typedef struct lw_method lw_method;

struct lw_job {
    const lw_method *method;
    size_t T;
    uint64_t seed;
    uint64_t steps_done;
    double steps_done_view; /* steps_done as the exported "steps_done" array */
    lw_task_priv *tasks;
    lw_pval *params;     /* method->info.n_params entries */
    size_t *state_off;   /* offset of each state array in `state` */
    size_t state_len;    /* doubles */
    double *state;       /* committed */
    double *scratch;     /* working copy for a step in progress */
    double *work;        /* method workspace, work_size(T) doubles */
    size_t work_len;
};

struct lw_method {
    lw_method_info info;
    /* Cross-parameter and task checks once params are resolved (e.g. manual's
     * weights not all zero, prior_norm's priors present). May be NULL. */
    int (*check_spec)(const lw_job *job, lw_error *err);
    /* Fill defaults that depend on T or on other parameters (e.g. a VECTOR
     * whose default is 1/T each: allocate params[i].vec with malloc). Runs
     * after parameters are parsed, before check_spec. May be NULL. Returns
     * 0 or LW_ENOMEM. */
    int (*fill_defaults)(lw_job *job);
    /* Inputs required under this job's params, if more than info.inputs
     * (e.g. dwa with window 0 needs epoch). May be NULL. */
    unsigned (*needs)(const lw_job *job);
    /* Input checks that depend on the method or its state, after the generic
     * shape/finiteness/required checks passed (e.g. L > 0, epoch not going
     * back). May be NULL. */
    int (*check_input)(const lw_job *job, const double *state, const lw_input *in,
                       lw_error *err);
    /* Initial state; the state is zeroed before. May be NULL. */
    void (*init)(const lw_job *job, double *state);
    /* Decide one step: write T numbers to w and update `state` in place.
     * `state` is a working copy: on a non-zero return it is thrown away.
     * `work` holds work_size(T) doubles. Must not allocate. */
    int (*step)(const lw_job *job, double *state, double *work, const lw_input *in,
                double *w, lw_error *err);
    /* Doubles of workspace a step needs. May be NULL (none). */
    size_t (*work_size)(size_t T);
    /* A person's view of the state. May be NULL: then every state array is
     * shown under its own name. May allocate (not on the step path). */
    void (*describe)(const lw_job *job, const double *state, lw_view_fn fn, void *ud);
    /* Extra check of an imported state array (already finite and the right
     * length), e.g. sigma > 0. May be NULL. */
    int (*check_state)(const lw_job *job, size_t idx, const double *v, lw_error *err);
};

/* The table (lib/table.c). */
extern const lw_method *const lw_methods[];
extern const size_t lw_n_methods;

/* ---- helpers for method files (lib/util.c) ---- */

/* Fill err (code, field, printf-style message); returns code. err may be NULL. */
int lw_fail(lw_error *err, int code, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Pointer to state array idx inside `state` (the committed or working copy). */
static inline double *lw_st(const lw_job *job, double *state, size_t idx)
{
    return state + job->state_off[idx];
}
static inline const double *lw_stc(const lw_job *job, const double *state, size_t idx)
{
    return state + job->state_off[idx];
}

/* Parameter shorthands. */
static inline double lw_pnum(const lw_job *job, size_t i) { return job->params[i].num; }
static inline int lw_pchoice(const lw_job *job, size_t i) { return job->params[i].choice; }
static inline const double *lw_pvec(const lw_job *job, size_t i) { return job->params[i].vec; }

/* out = softmax(x / temp) over n entries, max-subtracted, fixed order. */
void lw_softmax(const double *x, size_t n, double temp, double *out);

/* log(sum exp(x_i)), max-subtracted. */
double lw_logsumexp(const double *x, size_t n);

/* Check every losses[i] > 0; field "losses[i]" on failure. */
int lw_check_positive_losses(const lw_input *in, size_t T, lw_error *err);

/* PyTorch-exact optimizer steps on n parameters x with gradient g.
 * Adam: torch.optim.Adam (non-fused, amsgrad off) with L2 weight decay added
 * to the gradient; m, v: moments; *t: step count (incremented).
 * SGD: plain x -= lr * (g + wd * x). */
typedef struct lw_adam {
    double lr, beta1, beta2, eps, weight_decay;
} lw_adam;
void lw_adam_step(const lw_adam *opt, size_t n, double *x, const double *g,
                  double *m, double *v, double *t);
void lw_sgd_step(double lr, double weight_decay, size_t n, double *x, const double *g);

/* Shared choices lists. */
extern const char *const lw_choices_optimizer[]; /* "adam", "sgd" */
enum { LW_OPT_ADAM, LW_OPT_SGD };                /* indices into it */

/* Methods whose learnable parameters a PyTorch optimizer steps (uw, imtl_l,
 * imtl, gradnorm) share these parameter rows, each under the method's own
 * enum index; the rows whose doc says which anchor a value matches take the
 * method's doc. Use as `[P_LR] = LW_OPT_PARAM_LR("..."),` and
 * `LW_OPT_PARAM_ADAM_ROWS(P_BETA1, P_BETA2, P_EPS),`. */
#define LW_OPT_PARAM_OPTIMIZER(doc)                                                              \
    {"optimizer", LW_PARAM_CHOICE, LW_OPT_ADAM, 0, 0, 0, 0, lw_choices_optimizer, doc}
#define LW_OPT_PARAM_LR(doc) {"lr", LW_PARAM_NUMBER, 1e-3, 0.0, 1e300, 1, 0, NULL, doc}
#define LW_OPT_PARAM_WEIGHT_DECAY(doc)                                                           \
    {"weight_decay", LW_PARAM_NUMBER, 0.0, 0.0, 1e300, 0, 0, NULL, doc}
#define LW_OPT_PARAM_ADAM_ROWS(i_beta1, i_beta2, i_eps)                                          \
    [i_beta1] = {"beta1", LW_PARAM_NUMBER, 0.9, 0.0, 1.0, 0, 1, NULL,                            \
                 "Adam beta1 (PyTorch default 0.9)."},                                           \
    [i_beta2] = {"beta2", LW_PARAM_NUMBER, 0.999, 0.0, 1.0, 0, 1, NULL,                          \
                 "Adam beta2 (PyTorch default 0.999)."},                                         \
    [i_eps] = {"eps", LW_PARAM_NUMBER, 1e-8, 0.0, 1e300, 1, 0, NULL,                             \
               "Adam eps (PyTorch default 1e-8)."}

/* The optimizer's state rows (SGD leaves them at 0), under the method's
 * own enum indices: `LW_OPT_STATE_ROWS(S_ADAM_M, S_ADAM_V, S_ADAM_T),`. */
#define LW_OPT_STATE_ROWS(i_m, i_v, i_t)                                                         \
    [i_m] = {"adam_m", LW_LEN_T, "Adam first moment (0 with sgd)."},                             \
    [i_v] = {"adam_v", LW_LEN_T, "Adam second moment (0 with sgd)."},                            \
    [i_t] = {"adam_t", LW_LEN_1, "Adam step count (0 with sgd)."}

/* Where a method keeps the optimizer's parameters and state. */
typedef struct lw_opt_params {
    size_t optimizer, lr, beta1, beta2, eps, weight_decay;
} lw_opt_params;
typedef struct lw_opt_state {
    size_t m, v, t;
} lw_opt_state;

/* One step of the job's chosen optimizer (parameter p->optimizer: Adam or
 * SGD) on n parameters x with gradient g; Adam's moments and step count live
 * in `state` at s. */
void lw_opt_step(const lw_job *job, const lw_opt_params *p, const lw_opt_state *s, double *state,
                 size_t n, double *x, const double *g);

/* Checks of imported state arrays, field f, LW_EINVAL on failure:
 * every v[i] >= 0 ("f[i] = x must be >= 0"); v an integer >= min
 * ("f must be an integer >= min"); v 0 or 1 ("f must be 0 or 1"). */
int lw_check_state_nonneg(const char *f, const double *v, size_t n, lw_error *err);
int lw_check_state_int(const char *f, double v, double min, lw_error *err);
int lw_check_state_flag(const char *f, double v, lw_error *err);

/* Checks of the optimizer's state arrays (adam_v >= 0, adam_t an integer
 * >= 0); 0 for any other idx. */
int lw_opt_check_state(const lw_job *job, const lw_opt_state *s, size_t idx, const double *v,
                       lw_error *err);

/* Epochs (dwa, stch, gradnorm). The epoch of the step about to be decided:
 * every `window` decided steps (`steps` so far) form an epoch when
 * window > 0, else the report's `epoch`. */
double lw_epoch_of(const lw_input *in, double window, double steps);

/* Refuse a report whose epoch is below `prev` (field "epoch"); prev_name
 * says what prev is ("the open epoch", "the previous report's epoch"). */
int lw_check_epoch_not_back(const lw_input *in, double prev, const char *prev_name,
                            lw_error *err);

/* IMTL-G's coefficients from a symmetric Gram H (lib/methods/imtl_g.c; imtl
 * runs it on its scaled Gram). work: lw_imtl_g_work_size(T) doubles. */
size_t lw_imtl_g_work_size(size_t T);
int lw_imtl_g_solve(size_t T, const double *H, double *w, double *work, lw_error *err);

#endif /* LW_INTERNAL_H */
