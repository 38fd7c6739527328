/*
 * lossweight.h -- liblossweight, the multi-task loss weighting library.
 *
 * This header is all a user of the library needs. A *method* (ew, uw, dwa,
 * gradnorm, pcgrad, mgda, ...) is a row in a table that describes its inputs,
 * parameters and state; a *job* is one instance of a method for a fixed set
 * of T tasks, holding that method's state between steps.
 *
 *   lw_job *job;
 *   lw_error err;
 *   if (lw_job_create(&spec, &job, &err) != 0) { report err.field, err.message }
 *   for each step:
 *       lw_input in = {.step = s, .losses = L, ...};
 *       if (lw_job_step(job, &in, w, &err) != 0) { the job is unchanged }
 *   lw_job_free(job);
 *
 * The library is pure computation: no I/O, no globals that change, no
 * threads, and no allocation in lw_job_step(): everything a step needs is
 * allocated by lw_job_create(). A failed call never changes a job.
 *
 * All arithmetic is IEEE double with a fixed order of operations, so the same
 * job spec and the same sequence of inputs give the same bits on every run.
 */
#ifndef LOSSWEIGHT_H
#define LOSSWEIGHT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LW_VERSION "0.1.0"

/* Upper bound on the number of tasks a job may have (servers may set a
 * lower one). */
#define LW_MAX_TASKS 1024

/* ---- errors ------------------------------------------------------------ */

/* Return codes. 0 is success; every failure is negative. */
enum {
    LW_OK = 0,
    LW_EINVAL = -1,   /* bad input or parameter: the caller's fault (HTTP 400) */
    LW_ENOMEM = -2,   /* allocation failed (HTTP 503) */
    LW_ENOTSUP = -3,  /* method or variant not servable (HTTP 400) */
    LW_ENOENT = -4,   /* no such method, parameter or state array (400/404) */
    LW_ENUMERIC = -5, /* a solver did not converge within its bound (HTTP 422) */
};

/* Filled by every function that can fail. `field` names what was wrong in
 * the terms of the wire format, e.g. "losses[2]", "params.lr", "tasks[1].class_freq",
 * "gram[0][3]"; it is empty when no single field is to blame. */
typedef struct lw_error {
    int code;
    char field[96];
    char message[256];
} lw_error;

/* ---- the method table -------------------------------------------------- */

/* Inputs a method needs (bit set). */
enum {
    LW_IN_LOSSES = 1u << 0,       /* losses[T] */
    LW_IN_GRAD_NORMS = 1u << 1,   /* grad_norms[T], norms of grad L_i on the shared layer */
    LW_IN_GRAM = 1u << 2,         /* gram[T*T], row-major, G_ij = <g_i, g_j> */
    LW_IN_EPOCH = 1u << 3,        /* epoch (only when the method's params make it needed) */
    LW_IN_LOSSES_AFTER = 1u << 4, /* losses_after[T] (famo) */
};

/* What the T returned numbers mean. */
typedef enum lw_output {
    LW_OUT_LOSS_WEIGHTS = 0, /* back-propagate sum_i w_i L_i through the whole model */
    LW_OUT_GRAD_COEFFS = 1,  /* shared gradient := sum_i c_i g_i; heads keep their own */
} lw_output;

typedef enum lw_param_type {
    LW_PARAM_NUMBER = 0, /* a double in [min, max] */
    LW_PARAM_INT = 1,    /* an integer in [min, max] */
    LW_PARAM_CHOICE = 2, /* one string of `choices` */
    LW_PARAM_VECTOR = 3, /* T numbers, each in [min, max] */
} lw_param_type;

typedef struct lw_param_info {
    const char *name;
    lw_param_type type;
    double def;                  /* NUMBER/INT default; CHOICE: index of the default */
    double min, max;             /* allowed range, inclusive unless *_open */
    int min_open, max_open;      /* 1: the bound itself is excluded */
    const char *const *choices;  /* CHOICE: NULL-terminated list */
    const char *doc;             /* one or two sentences; says which anchor a value matches */
} lw_param_info;

/* How long a state array is. */
typedef enum lw_len {
    LW_LEN_1 = 0,  /* one number */
    LW_LEN_T = 1,  /* one per task */
    LW_LEN_TT = 2, /* T x T, row-major */
} lw_len;

typedef struct lw_state_info {
    const char *name;
    lw_len len;
    const char *doc;
} lw_state_info;

typedef struct lw_method_info {
    const char *name;
    const char *summary;        /* one line */
    const char *doc;            /* a paragraph: anchors, conventions, differences */
    unsigned inputs;            /* LW_IN_* always required */
    unsigned optional_inputs;   /* LW_IN_* used when present or when params need them */
    lw_output output;
    int servable;               /* 0: listed for completeness, lw_job_create refuses */
    const char *not_served_why; /* servable == 0: the reason */
    const lw_param_info *params;
    size_t n_params;
    const lw_state_info *state;
    size_t n_state;
} lw_method_info;

/* The table, in a fixed order. */
size_t lw_method_count(void);
const lw_method_info *lw_method_at(size_t i);
const lw_method_info *lw_method_find(const char *name); /* NULL if none */

/* ---- job specs --------------------------------------------------------- */

/* A task. Every prior is optional: NAN (or 0 / NULL for the counts) means
 * not given. lw_job_create copies everything it keeps. */
typedef struct lw_task {
    const char *name;
    double init_loss;          /* init_norm: L_i(init) given directly */
    double prior_loss;         /* prior_norm: the prior loss given directly */
    double label_var;          /* prior_norm: variance of a regression label */
    const double *class_freq;  /* prior_norm: class frequencies (normalised to sum 1) */
    size_t n_class_freq;
    int64_t classes;           /* init_norm: K classes, L_init = log K; 0 = not given */
} lw_task;

/* A parameter value as it came from the user (JSON-like). */
typedef enum lw_value_kind {
    LW_VAL_NUMBER = 0,
    LW_VAL_STRING = 1,
    LW_VAL_ARRAY = 2, /* of numbers */
    LW_VAL_OTHER = 3, /* anything else: always rejected with a type error */
} lw_value_kind;

typedef struct lw_value {
    const char *name;
    lw_value_kind kind;
    double number;
    const char *string;
    const double *array;
    size_t len;
} lw_value;

typedef struct lw_spec {
    const char *method;
    const lw_task *tasks;
    size_t n_tasks;
    const lw_value *params; /* unknown names are an error */
    size_t n_params;
    uint64_t seed;
} lw_spec;

/* Initialise a task with every prior "not given". */
void lw_task_init(lw_task *t, const char *name);

/* ---- jobs -------------------------------------------------------------- */

typedef struct lw_job lw_job;

/* Create a job: checks the method, every parameter (name, type, range), the
 * tasks and their priors, then allocates all the job will ever need.
 * Returns 0 and *out, or a negative code with err filled and *out NULL. */
int lw_job_create(const lw_spec *spec, lw_job **out, lw_error *err);

/* A deep copy (state included); NULL on allocation failure. */
lw_job *lw_job_clone(const lw_job *job);

void lw_job_free(lw_job *job);

size_t lw_job_tasks(const lw_job *job);
const char *lw_job_task_name(const lw_job *job, size_t i);
const lw_method_info *lw_job_method(const lw_job *job);
uint64_t lw_job_seed(const lw_job *job);
/* Number of steps decided so far (successful lw_job_step calls). */
uint64_t lw_job_steps_done(const lw_job *job);

/* The resolved value of parameter i of the job's method (defaults filled):
 * NUMBER/INT: *number; CHOICE: *choice (an index into choices);
 * VECTOR: *vector (T numbers, borrowed, NULL if the parameter has no value,
 * e.g. an optional vector left unset). Any out pointer may be NULL. */
void lw_job_param(const lw_job *job, size_t i, double *number, int *choice,
                  const double **vector);

/* One step's input, already averaged over ranks. Pointers are borrowed;
 * NULL means absent. Arrays not needed by the method are still checked
 * (shape is implied by T, values must be finite) and otherwise ignored. */
typedef struct lw_input {
    uint64_t step;
    int64_t epoch;               /* < 0: absent */
    const double *losses;        /* T */
    const double *grad_norms;    /* T */
    const double *gram;          /* T*T row-major */
    const double *losses_after;  /* T */
} lw_input;

/* Check an input against the job without changing anything. */
int lw_job_check(const lw_job *job, const lw_input *in, lw_error *err);

/* Check, then decide one step: writes T numbers to out and advances the
 * state. On failure nothing changes (out may have been written). */
int lw_job_step(lw_job *job, const lw_input *in, double *out, lw_error *err);

/* ---- state export / import --------------------------------------------- */

/* The method's state arrays, named as in lw_method_info.state, plus the
 * job's own position ("steps_done"). Lengths follow lw_len for this job's T.
 * Exporting every array and importing them into a job created from the same
 * spec, then continuing, gives the same bits as never stopping. */
size_t lw_job_state_count(const lw_job *job);
/* Name and length of array i (i < lw_job_state_count). */
const char *lw_job_state_name(const lw_job *job, size_t i, size_t *len);
/* Borrowed pointer to array i, valid until the next call that changes the job. */
const double *lw_job_state_get(const lw_job *job, size_t i);
/* Replace a named array: len must match and every value be finite (and in
 * the range the method accepts for it). On failure nothing changes. */
int lw_job_state_set(lw_job *job, const char *name, const double *v, size_t len,
                     lw_error *err);

/* A person's view of the state (e.g. UW's sigmas, DWA's epoch means):
 * called once per item with a name, values and a length. */
typedef void (*lw_view_fn)(void *ud, const char *name, const double *v, size_t len);
void lw_job_describe(const lw_job *job, lw_view_fn fn, void *ud);

/* ---- counter-based random numbers ----------------------------------------
 * Pure functions of their arguments: every rank and every replay agree. */
uint64_t lw_rand_u64(uint64_t seed, uint64_t step, uint64_t stream, uint64_t counter);
/* Uniform in [0, 1), 53 random bits. */
double lw_rand_uniform(uint64_t seed, uint64_t step, uint64_t stream, uint64_t counter);
/* Standard normal number k (Box-Muller on the first two words of one
 * Philox block at counter (step, 2^63 + k)). */
double lw_rand_normal(uint64_t seed, uint64_t step, uint64_t stream, uint64_t k);

#ifdef __cplusplus
}
#endif
#endif /* LOSSWEIGHT_H */
