/*
 * job.c -- jobs: creation from a spec, input checks, the transactional step,
 * state export and import.
 *
 * Everything generic about methods lives here so that a method file holds
 * only its own mathematics: parameters are parsed and range-checked against
 * the method's parameter table, inputs are checked for presence, shape-implied
 * finiteness and sign, and a step runs on a working copy of the state that is
 * committed only when the method succeeds and every output is finite.
 *
 * All memory a job needs is allocated in lw_job_create(); lw_job_step()
 * allocates nothing.
 */
#include "lw_internal.h"

#include <stdlib.h>
#include <string.h>

/* Gram symmetry tolerance, relative to the largest |entry| (METHODS.md). */
#define LW_GRAM_SYM_RTOL 1e-6

void lw_task_init(lw_task *t, const char *name)
{
    memset(t, 0, sizeof *t);
    t->name = name;
    t->init_loss = NAN;
    t->prior_loss = NAN;
    t->label_var = NAN;
}

size_t lw_method_count(void) { return lw_n_methods; }

const lw_method_info *lw_method_at(size_t i)
{
    return i < lw_n_methods ? &lw_methods[i]->info : NULL;
}

static const lw_method *method_find(const char *name)
{
    for (size_t i = 0; i < lw_n_methods; i++)
        if (strcmp(lw_methods[i]->info.name, name) == 0)
            return lw_methods[i];
    return NULL;
}

const lw_method_info *lw_method_find(const char *name)
{
    const lw_method *m = name ? method_find(name) : NULL;
    return m ? &m->info : NULL;
}

static size_t len_of(lw_len l, size_t T)
{
    switch (l) {
    case LW_LEN_1: return 1;
    case LW_LEN_T: return T;
    case LW_LEN_TT: return T * T;
    }
    return 0;
}

void lw_job_free(lw_job *job)
{
    if (!job)
        return;
    if (job->tasks) {
        for (size_t i = 0; i < job->T; i++) {
            free(job->tasks[i].name);
            free(job->tasks[i].class_freq);
        }
        free(job->tasks);
    }
    if (job->params) {
        for (size_t i = 0; i < job->method->info.n_params; i++)
            free(job->params[i].vec);
        free(job->params);
    }
    free(job->state_off);
    free(job->state);
    free(job->scratch);
    free(job->work);
    free(job);
}

/* Is v inside the parameter's range? */
static int in_range(const lw_param_info *p, double v)
{
    if (p->min_open ? !(v > p->min) : !(v >= p->min))
        return 0;
    if (p->max_open ? !(v < p->max) : !(v <= p->max))
        return 0;
    return 1;
}

static int range_fail(lw_error *err, const lw_param_info *p, const char *field, double v)
{
    return lw_fail(err, LW_EINVAL, field, "%s = %.15g is out of range: must be in %c%.15g, %.15g%c",
                   field, v, p->min_open ? '(' : '[', p->min, p->max, p->max_open ? ')' : ']');
}

/* Parse one user value into a resolved parameter. */
static int param_set(lw_job *job, const lw_param_info *p, lw_pval *pv, const lw_value *v,
                     lw_error *err)
{
    char field[96];
    snprintf(field, sizeof field, "params.%.60s", p->name);
    switch (p->type) {
    case LW_PARAM_NUMBER:
    case LW_PARAM_INT:
        if (v->kind != LW_VAL_NUMBER)
            return lw_fail(err, LW_EINVAL, field, "%s must be a number", field);
        if (!isfinite(v->number))
            return lw_fail(err, LW_EINVAL, field, "%s must be finite", field);
        if (p->type == LW_PARAM_INT && floor(v->number) != v->number)
            return lw_fail(err, LW_EINVAL, field, "%s must be an integer", field);
        if (!in_range(p, v->number))
            return range_fail(err, p, field, v->number);
        pv->num = v->number;
        return 0;
    case LW_PARAM_CHOICE:
        if (v->kind != LW_VAL_STRING)
            return lw_fail(err, LW_EINVAL, field, "%s must be a string", field);
        for (int i = 0; p->choices[i]; i++) {
            if (strcmp(p->choices[i], v->string) == 0) {
                pv->choice = i;
                return 0;
            }
        }
        {
            char list[160] = "";
            size_t off = 0;
            for (int i = 0; p->choices[i] && off < sizeof list; i++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s\"%s\"",
                                        i ? ", " : "", p->choices[i]);
            return lw_fail(err, LW_EINVAL, field, "%s: unknown value \"%.40s\"; one of %s",
                           field, v->string, list);
        }
    case LW_PARAM_VECTOR:
        if (v->kind != LW_VAL_ARRAY)
            return lw_fail(err, LW_EINVAL, field, "%s must be an array of %zu numbers", field,
                           job->T);
        if (v->len != job->T)
            return lw_fail(err, LW_EINVAL, field, "%s has %zu numbers, the job has %zu tasks",
                           field, v->len, job->T);
        for (size_t i = 0; i < v->len; i++) {
            char f[160];
            snprintf(f, sizeof f, "%s[%zu]", field, i);
            if (!isfinite(v->array[i]))
                return lw_fail(err, LW_EINVAL, f, "%s must be finite", f);
            if (!in_range(p, v->array[i]))
                return range_fail(err, p, f, v->array[i]);
        }
        memcpy(pv->vec, v->array, job->T * sizeof(double));
        return 0;
    }
    return lw_fail(err, LW_EINVAL, field, "bad parameter type");
}

static int copy_tasks(lw_job *job, const lw_spec *spec, lw_error *err)
{
    job->tasks = calloc(job->T, sizeof *job->tasks);
    if (!job->tasks)
        return lw_fail(err, LW_ENOMEM, "", "out of memory");
    for (size_t i = 0; i < job->T; i++) {
        const lw_task *t = &spec->tasks[i];
        lw_task_priv *d = &job->tasks[i];
        char field[96];
        d->init_loss = t->init_loss;
        d->prior_loss = t->prior_loss;
        d->label_var = t->label_var;
        d->classes = t->classes;
        d->name = strdup(t->name ? t->name : "");
        if (!d->name)
            return lw_fail(err, LW_ENOMEM, "", "out of memory");
        if (!t->name || !t->name[0])
            return lw_fail(err, LW_EINVAL, "tasks", "tasks[%zu] has no name", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(job->tasks[j].name, d->name) == 0)
                return lw_fail(err, LW_EINVAL, "tasks", "task name \"%.64s\" appears twice",
                               d->name);
#define CHECK_PRIOR(member, what, cond)                                                        \
    if (!isnan(t->member) && !(isfinite(t->member) && (cond))) {                               \
        snprintf(field, sizeof field, "tasks[%zu].%s", i, #member);                            \
        return lw_fail(err, LW_EINVAL, field, "%s must be %s", field, what);                   \
    }
        CHECK_PRIOR(init_loss, "a finite number > 0", t->init_loss > 0)
        CHECK_PRIOR(prior_loss, "a finite number > 0", t->prior_loss > 0)
        CHECK_PRIOR(label_var, "a finite number > 0", t->label_var > 0)
#undef CHECK_PRIOR
        if (t->classes < 0 || t->classes == 1) {
            snprintf(field, sizeof field, "tasks[%zu].classes", i);
            return lw_fail(err, LW_EINVAL, field, "%s must be an integer >= 2", field);
        }
        if (t->n_class_freq) {
            double sum = 0;
            snprintf(field, sizeof field, "tasks[%zu].class_freq", i);
            if (t->n_class_freq < 2)
                return lw_fail(err, LW_EINVAL, field, "%s needs at least 2 classes", field);
            for (size_t k = 0; k < t->n_class_freq; k++) {
                if (!isfinite(t->class_freq[k]) || t->class_freq[k] < 0) {
                    snprintf(field, sizeof field, "tasks[%zu].class_freq[%zu]", i, k);
                    return lw_fail(err, LW_EINVAL, field, "%s must be a finite number >= 0",
                                   field);
                }
                sum += t->class_freq[k];
            }
            if (!(sum > 0))
                return lw_fail(err, LW_EINVAL, field, "%s must not be all zero", field);
            d->class_freq = malloc(t->n_class_freq * sizeof(double));
            if (!d->class_freq)
                return lw_fail(err, LW_ENOMEM, "", "out of memory");
            memcpy(d->class_freq, t->class_freq, t->n_class_freq * sizeof(double));
            d->n_class_freq = t->n_class_freq;
        }
    }
    return 0;
}

static int resolve_params(lw_job *job, const lw_spec *spec, lw_error *err)
{
    const lw_method_info *mi = &job->method->info;
    job->params = calloc(mi->n_params ? mi->n_params : 1, sizeof *job->params);
    if (!job->params)
        return lw_fail(err, LW_ENOMEM, "", "out of memory");
    for (size_t i = 0; i < mi->n_params; i++) {
        const lw_param_info *p = &mi->params[i];
        if (p->type == LW_PARAM_VECTOR) {
            if (isnan(p->def))
                continue; /* optional vector, allocated only if given */
            job->params[i].vec = malloc(job->T * sizeof(double));
            if (!job->params[i].vec)
                return lw_fail(err, LW_ENOMEM, "", "out of memory");
            for (size_t t = 0; t < job->T; t++)
                job->params[i].vec[t] = p->def;
        } else if (p->type == LW_PARAM_CHOICE) {
            job->params[i].choice = (int)p->def;
        } else {
            job->params[i].num = p->def;
        }
    }
    for (size_t k = 0; k < spec->n_params; k++) {
        const lw_value *v = &spec->params[k];
        size_t i;
        if (!v->name)
            return lw_fail(err, LW_EINVAL, "params", "a parameter has no name");
        for (size_t j = 0; j < k; j++)
            if (strcmp(spec->params[j].name, v->name) == 0)
                return lw_fail(err, LW_EINVAL, "params", "parameter \"%.64s\" given twice",
                               v->name);
        for (i = 0; i < mi->n_params; i++)
            if (strcmp(mi->params[i].name, v->name) == 0)
                break;
        if (i == mi->n_params) {
            char list[160] = "";
            size_t off = 0;
            for (size_t j = 0; j < mi->n_params && off < sizeof list; j++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", j ? ", " : "",
                                        mi->params[j].name);
            char field[96];
            snprintf(field, sizeof field, "params.%.80s", v->name);
            return lw_fail(err, LW_EINVAL, field,
                           "unknown parameter \"%.64s\" for method %s (its parameters: %s)",
                           v->name, mi->name, mi->n_params ? list : "none");
        }
        if (mi->params[i].type == LW_PARAM_VECTOR && !job->params[i].vec) {
            job->params[i].vec = malloc(job->T * sizeof(double));
            if (!job->params[i].vec)
                return lw_fail(err, LW_ENOMEM, "", "out of memory");
        }
        int rc = param_set(job, &mi->params[i], &job->params[i], v, err);
        if (rc)
            return rc;
        job->params[i].given = 1;
    }
    return 0;
}

int lw_job_create(const lw_spec *spec, lw_job **out, lw_error *err)
{
    lw_error scratch_err;
    if (!err)
        err = &scratch_err;
    memset(err, 0, sizeof *err);
    *out = NULL;
    if (!spec->method)
        return lw_fail(err, LW_EINVAL, "method", "method is required");
    const lw_method *m = method_find(spec->method);
    if (!m)
        return lw_fail(err, LW_EINVAL, "method",
                       "unknown method \"%.64s\" (GET /v1/methods or `lossweight methods` lists them)",
                       spec->method);
    if (!m->info.servable)
        return lw_fail(err, LW_ENOTSUP, "method", "method %s is not served: %s", m->info.name,
                       m->info.not_served_why);
    if (spec->n_tasks < 1 || spec->n_tasks > LW_MAX_TASKS)
        return lw_fail(err, LW_EINVAL, "tasks", "a job needs 1 to %d tasks, got %zu",
                       LW_MAX_TASKS, spec->n_tasks);
    if (spec->n_params && !spec->params)
        return lw_fail(err, LW_EINVAL, "params", "params missing");

    lw_job *job = calloc(1, sizeof *job);
    if (!job)
        return lw_fail(err, LW_ENOMEM, "", "out of memory");
    job->method = m;
    job->T = spec->n_tasks;
    job->seed = spec->seed;

    int rc = copy_tasks(job, spec, err);
    if (!rc)
        rc = resolve_params(job, spec, err);
    if (!rc && m->fill_defaults && m->fill_defaults(job))
        rc = lw_fail(err, LW_ENOMEM, "", "out of memory");
    if (!rc && m->check_spec)
        rc = m->check_spec(job, err);
    if (rc) {
        lw_job_free(job);
        return rc;
    }

    job->state_off = calloc(m->info.n_state + 1, sizeof(size_t));
    if (!job->state_off)
        goto nomem;
    for (size_t i = 0; i < m->info.n_state; i++) {
        job->state_off[i] = job->state_len;
        job->state_len += len_of(m->info.state[i].len, job->T);
    }
    job->state = calloc(job->state_len + 1, sizeof(double));
    job->scratch = calloc(job->state_len + 1, sizeof(double));
    job->work_len = m->work_size ? m->work_size(job->T) : 0;
    job->work = calloc(job->work_len + 1, sizeof(double));
    if (!job->state || !job->scratch || !job->work)
        goto nomem;
    if (m->init)
        m->init(job, job->state);
    *out = job;
    return 0;
nomem:
    lw_job_free(job);
    return lw_fail(err, LW_ENOMEM, "", "out of memory");
}

lw_job *lw_job_clone(const lw_job *src)
{
    lw_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    const lw_method_info *mi = &src->method->info;
    job->method = src->method;
    job->T = src->T;
    job->seed = src->seed;
    job->steps_done = src->steps_done;
    job->steps_done_view = src->steps_done_view;
    job->state_len = src->state_len;
    job->work_len = src->work_len;
    job->tasks = calloc(src->T, sizeof *job->tasks);
    job->params = calloc(mi->n_params ? mi->n_params : 1, sizeof *job->params);
    job->state_off = calloc(mi->n_state + 1, sizeof(size_t));
    job->state = calloc(src->state_len + 1, sizeof(double));
    job->scratch = calloc(src->state_len + 1, sizeof(double));
    job->work = calloc(src->work_len + 1, sizeof(double));
    if (!job->tasks || !job->params || !job->state_off || !job->state || !job->scratch ||
        !job->work)
        goto fail;
    for (size_t i = 0; i < src->T; i++) {
        job->tasks[i] = src->tasks[i];
        job->tasks[i].name = strdup(src->tasks[i].name);
        job->tasks[i].class_freq = NULL;
        if (!job->tasks[i].name)
            goto fail;
        if (src->tasks[i].n_class_freq) {
            size_t n = src->tasks[i].n_class_freq * sizeof(double);
            job->tasks[i].class_freq = malloc(n);
            if (!job->tasks[i].class_freq)
                goto fail;
            memcpy(job->tasks[i].class_freq, src->tasks[i].class_freq, n);
        }
    }
    for (size_t i = 0; i < mi->n_params; i++) {
        job->params[i] = src->params[i];
        job->params[i].vec = NULL;
        if (src->params[i].vec) {
            job->params[i].vec = malloc(src->T * sizeof(double));
            if (!job->params[i].vec)
                goto fail;
            memcpy(job->params[i].vec, src->params[i].vec, src->T * sizeof(double));
        }
    }
    memcpy(job->state_off, src->state_off, (mi->n_state + 1) * sizeof(size_t));
    memcpy(job->state, src->state, src->state_len * sizeof(double));
    return job;
fail:
    lw_job_free(job);
    return NULL;
}

size_t lw_job_tasks(const lw_job *job) { return job->T; }
const char *lw_job_task_name(const lw_job *job, size_t i)
{
    return i < job->T ? job->tasks[i].name : NULL;
}
const lw_method_info *lw_job_method(const lw_job *job) { return &job->method->info; }
uint64_t lw_job_seed(const lw_job *job) { return job->seed; }
uint64_t lw_job_steps_done(const lw_job *job) { return job->steps_done; }

void lw_job_param(const lw_job *job, size_t i, double *number, int *choice,
                  const double **vector)
{
    if (i >= job->method->info.n_params)
        return;
    if (number)
        *number = job->params[i].num;
    if (choice)
        *choice = job->params[i].choice;
    if (vector)
        *vector = job->params[i].vec;
}

/* ---- inputs ---- */

static int check_vec(const double *v, size_t T, const char *name, int nonneg, lw_error *err)
{
    for (size_t i = 0; i < T; i++) {
        if (!isfinite(v[i])) {
            char f[64];
            snprintf(f, sizeof f, "%s[%zu]", name, i);
            return lw_fail(err, LW_EINVAL, f, "%s must be a finite number", f);
        }
        if (nonneg && v[i] < 0) {
            char f[64];
            snprintf(f, sizeof f, "%s[%zu]", name, i);
            return lw_fail(err, LW_EINVAL, f, "%s = %.15g: a norm cannot be negative", f, v[i]);
        }
    }
    return 0;
}

static int check_gram(const double *G, size_t T, lw_error *err)
{
    double amax = 0;
    char f[64];
    for (size_t i = 0; i < T * T; i++) {
        if (!isfinite(G[i])) {
            snprintf(f, sizeof f, "gram[%zu][%zu]", i / T, i % T);
            return lw_fail(err, LW_EINVAL, f, "%s must be a finite number", f);
        }
        if (fabs(G[i]) > amax)
            amax = fabs(G[i]);
    }
    double tol = LW_GRAM_SYM_RTOL * amax;
    for (size_t i = 0; i < T; i++) {
        if (G[i * T + i] < -tol) {
            snprintf(f, sizeof f, "gram[%zu][%zu]", i, i);
            return lw_fail(err, LW_EINVAL, f,
                           "%s = %.15g: a diagonal entry is a squared norm and cannot be negative",
                           f, G[i * T + i]);
        }
        for (size_t j = i + 1; j < T; j++) {
            if (fabs(G[i * T + j] - G[j * T + i]) > tol) {
                snprintf(f, sizeof f, "gram[%zu][%zu]", i, j);
                return lw_fail(err, LW_EINVAL, f,
                               "the Gram matrix is not symmetric: gram[%zu][%zu] = %.15g but "
                               "gram[%zu][%zu] = %.15g (tolerance %.3g)",
                               i, j, G[i * T + j], j, i, G[j * T + i], tol);
            }
        }
    }
    return 0;
}

static unsigned job_needs(const lw_job *job)
{
    unsigned n = job->method->info.inputs;
    if (job->method->needs)
        n |= job->method->needs(job);
    return n;
}

int lw_job_check(const lw_job *job, const lw_input *in, lw_error *err)
{
    lw_error scratch_err;
    if (!err)
        err = &scratch_err;
    memset(err, 0, sizeof *err);
    const size_t T = job->T;
    const char *mname = job->method->info.name;
    unsigned need = job_needs(job);
    int rc;

    if (in->losses && (rc = check_vec(in->losses, T, "losses", 0, err)))
        return rc;
    if (in->grad_norms && (rc = check_vec(in->grad_norms, T, "grad_norms", 1, err)))
        return rc;
    if (in->losses_after && (rc = check_vec(in->losses_after, T, "losses_after", 0, err)))
        return rc;
    if (in->gram && (rc = check_gram(in->gram, T, err)))
        return rc;

    if ((need & LW_IN_LOSSES) && !in->losses)
        return lw_fail(err, LW_EINVAL, "losses", "losses: required by method %s", mname);
    if ((need & LW_IN_GRAD_NORMS) && !in->grad_norms)
        return lw_fail(err, LW_EINVAL, "grad_norms", "grad_norms: required by method %s", mname);
    if ((need & LW_IN_GRAM) && !in->gram)
        return lw_fail(err, LW_EINVAL, "gram", "gram: required by method %s", mname);
    if ((need & LW_IN_LOSSES_AFTER) && !in->losses_after)
        return lw_fail(err, LW_EINVAL, "losses_after", "losses_after: required by method %s",
                       mname);
    if ((need & LW_IN_EPOCH) && in->epoch < 0)
        return lw_fail(err, LW_EINVAL, "epoch",
                       "epoch: required by method %s with these parameters", mname);
    if (job->method->check_input)
        return job->method->check_input(job, job->state, in, err);
    return 0;
}

int lw_job_step(lw_job *job, const lw_input *in, double *out, lw_error *err)
{
    lw_error scratch_err;
    if (!err)
        err = &scratch_err;
    int rc = lw_job_check(job, in, err);
    if (rc)
        return rc;
    memcpy(job->scratch, job->state, job->state_len * sizeof(double));
    rc = job->method->step(job, job->scratch, job->work, in, out, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < job->T; i++)
        if (!isfinite(out[i]))
            return lw_fail(err, LW_ENUMERIC, "",
                           "method %s produced a non-finite weight for task %zu; state unchanged",
                           job->method->info.name, i);
    for (size_t i = 0; i < job->state_len; i++)
        if (!isfinite(job->scratch[i]))
            return lw_fail(err, LW_ENUMERIC, "",
                           "method %s produced a non-finite state value; state unchanged",
                           job->method->info.name);
    double *t = job->state;
    job->state = job->scratch;
    job->scratch = t;
    job->steps_done++;
    job->steps_done_view = (double)job->steps_done;
    return 0;
}

/* ---- state ---- */

size_t lw_job_state_count(const lw_job *job) { return job->method->info.n_state + 1; }

const char *lw_job_state_name(const lw_job *job, size_t i, size_t *len)
{
    const lw_method_info *mi = &job->method->info;
    if (i < mi->n_state) {
        if (len)
            *len = len_of(mi->state[i].len, job->T);
        return mi->state[i].name;
    }
    if (i == mi->n_state) {
        if (len)
            *len = 1;
        return "steps_done";
    }
    return NULL;
}

const double *lw_job_state_get(const lw_job *job, size_t i)
{
    const lw_method_info *mi = &job->method->info;
    if (i < mi->n_state)
        return job->state + job->state_off[i];
    if (i == mi->n_state)
        return &job->steps_done_view;
    return NULL;
}

int lw_job_state_set(lw_job *job, const char *name, const double *v, size_t len, lw_error *err)
{
    lw_error scratch_err;
    if (!err)
        err = &scratch_err;
    memset(err, 0, sizeof *err);
    size_t n = lw_job_state_count(job);
    for (size_t i = 0; i < n; i++) {
        size_t want;
        const char *nm = lw_job_state_name(job, i, &want);
        if (strcmp(nm, name) != 0)
            continue;
        char field[96];
        snprintf(field, sizeof field, "state.%.64s", name);
        if (len != want)
            return lw_fail(err, LW_EINVAL, field, "%s has %zu numbers, expected %zu", field, len,
                           want);
        for (size_t k = 0; k < len; k++)
            if (!isfinite(v[k]))
                return lw_fail(err, LW_EINVAL, field, "%s[%zu] must be finite", field, k);
        if (i == job->method->info.n_state) {
            if (!(v[0] >= 0 && v[0] <= 9007199254740992.0 && floor(v[0]) == v[0]))
                return lw_fail(err, LW_EINVAL, field, "%s must be an integer >= 0", field);
            job->steps_done = (uint64_t)v[0];
            job->steps_done_view = v[0];
            return 0;
        }
        if (job->method->check_state) {
            int rc = job->method->check_state(job, i, v, err);
            if (rc)
                return rc;
        }
        memcpy(job->state + job->state_off[i], v, len * sizeof(double));
        return 0;
    }
    return lw_fail(err, LW_ENOENT, "state", "method %s has no state array \"%.64s\"",
                   job->method->info.name, name);
}

void lw_job_describe(const lw_job *job, lw_view_fn fn, void *ud)
{
    const lw_method_info *mi = &job->method->info;
    if (job->method->describe) {
        job->method->describe(job, job->state, fn, ud);
        return;
    }
    for (size_t i = 0; i < mi->n_state; i++)
        fn(ud, mi->state[i].name, job->state + job->state_off[i], len_of(mi->state[i].len, job->T));
}
