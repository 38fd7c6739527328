/*
 * wire.c -- JSON bodies <-> library structs, shared by lossweightd and the
 * `lossweight` tool.
 *
 * Parsing is strict: unknown fields are errors (a typo in "grad_norm" must
 * not silently drop the norms), every number must be finite, integers must
 * be integers, arrays have the job's shape. The error names the field the
 * way a user wrote it ("losses[2]", "gram[1][0]", "tasks[0].class_freq").
 *
 * Printing: cJSON prints a double with 15 significant digits when its own
 * approximate comparison says that reads back "equal", which can lose the
 * last bit. Decisions and exported state must survive the wire bit for bit
 * (DESIGN.md: determinism), so every double goes out through wire_number():
 * the shortest of %.15g/%.16g/%.15g that strtod reads back to the same bits.
 */
#include "wire.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(lw_error *err, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(lw_error *err, const char *field, const char *fmt, ...)
{
    err->code = LW_EINVAL;
    snprintf(err->field, sizeof err->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return LW_EINVAL;
}

/* ---- numbers ---- */

/* The shortest of %.15g, %.16g, %.17g that reads back to d, with glibc:
 * 16 digits are tried first: if they do not read back, 15 cannot either
 * (the 16-digit rounding is at least as close to d) and 17 always do. */
static void format_double_libc(double d, char *buf, size_t n)
{
    char b15[32];
    snprintf(buf, n, "%.16g", d);
    if (strtod(buf, NULL) != d) {
        snprintf(buf, n, "%.17g", d);
        return;
    }
    snprintf(b15, sizeof b15, "%.15g", d);
    if (strtod(b15, NULL) == d)
        snprintf(buf, n, "%s", b15);
}

#if defined(__SIZEOF_INT128__)
/*
 * The same bytes, computed exactly with 128-bit integers instead of glibc's
 * multi-precision printf and strtod: a decision prints every weight this
 * way, and in the report path's profile this was the largest cost of our
 * own code (glibc: ~650 ns a number, this: ~150 ns). For d = m * 2^e (m the
 * 53-bit mantissa) and P digits, N = d * 10^(P-1-q) rounded half-even,
 * where q = floor(log10 |d|), is a quotient of integers that fit in 128
 * bits while |d| is roughly within [1e-16, 1e21]; whether N's decimal reads
 * back to d is a comparison of the remainder with half the gap to d's
 * neighbours. Outside that range it declines and glibc does the work.
 * tests/unit/test_wire_numbers.c holds it to format_double_libc's bytes.
 */
typedef unsigned __int128 u128;

static const uint64_t pow10_64[20] = {
    1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
    100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
    10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
    100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull};

static u128 pow10_128(int k) /* 0 <= k <= 38 */
{
    return k < 20 ? (u128)pow10_64[k] : (u128)pow10_64[k - 19] * pow10_64[19];
}

/* d * 10^k for d = m * 2^e: *q the integer part, *n rounded half-even, and
 * whether the decimal n * 10^-k reads back to d. -1: out of range. */
static int scaled(uint64_t m, int e, int k, u128 *q_out, u128 *n_out, int *reads_back)
{
    u128 num, den, rhs; /* d * 10^k = num / den; half a gap, scaled: rhs / 2 */
    if (k > 22 || k < -38)
        return -1;
    if (e < 0) {
        if (e < -120)
            return -1;
        if (k >= 0) {
            num = (u128)m * pow10_128(k);
            den = (u128)1 << -e;
            rhs = pow10_128(k);
        } else {
            if (k < -3)
                return -1;
            num = m;
            den = pow10_128(-k) << -e;
            rhs = 1;
        }
    } else {
        if (e > 70)
            return -1;
        if (k >= 0) {
            if (e + 53 + 4 * k > 126)
                return -1;
            num = ((u128)m << e) * pow10_128(k);
            den = 1;
            rhs = 1;
        } else {
            num = (u128)m << e;
            den = pow10_128(-k);
            rhs = (u128)1 << e;
        }
    }
    u128 q, r;
    if (e < 0 && k >= 0) { /* a power of two: no 128-bit division */
        q = num >> -e;
        r = num & (den - 1);
    } else {
        q = num / den;
        r = num - q * den;
    }
    u128 nn = q, diff = r;
    if (2 * r > den || (2 * r == den && (q & 1)))
        nn = q + 1, diff = den - r;
    *q_out = q;
    *n_out = nn;
    /* |n * 10^-k - d| against half the gap to the neighbours of d (a quarter
     * below a power of two); a tie reads back to the even mantissa */
    u128 lhs = (nn == q && r != 0 && m == ((uint64_t)1 << 52)) ? 4 * diff : 2 * diff;
    *reads_back = lhs < rhs || (lhs == rhs && (m & 1) == 0);
    return 0;
}

/* printf("%.*g", P, d) for a finite non-zero d, and whether it reads back.
 * 0: out of range, nothing written. */
static int fast_g(double d, int P, char *buf, size_t n, int *reads_back)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    int be = (int)((bits >> 52) & 0x7ff);
    if (be == 0 || be == 0x7ff)
        return 0;
    uint64_t m = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1 << 52);
    int e = be - 1075, q = (int)floor(log10(fabs(d))), tries, rb = 0;
    u128 Q = 0, N = 0, lo = pow10_128(P - 1), hi = lo * 10;
    for (tries = 0; tries < 4; tries++) { /* q exactly: the integer part has P digits */
        if (scaled(m, e, P - 1 - q, &Q, &N, &rb) != 0)
            return 0;
        if (Q >= hi)
            q++;
        else if (Q < lo)
            q--;
        else
            break;
    }
    if (tries == 4)
        return 0;
    if (N == hi) /* rounding carried (9.99|5 -> 10.0): one more in the exponent, as %g */
        N = lo, q++;
    char dig[24], out[48];
    int nd = 0, o = 0;
    for (uint64_t t = (uint64_t)N; t; t /= 10) /* N < 10^17 */
        dig[nd++] = (char)('0' + (int)(t % 10));
    for (int i = 0; i < nd / 2; i++) {
        char c = dig[i];
        dig[i] = dig[nd - 1 - i];
        dig[nd - 1 - i] = c;
    }
    while (nd > 1 && dig[nd - 1] == '0') /* %g drops trailing zeros */
        nd--;
    if (bits >> 63)
        out[o++] = '-';
    if (q < -4 || q >= P) { /* d.ddde+XX */
        out[o++] = dig[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, dig + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        int x = q < 0 ? -q : q;
        out[o++] = 'e';
        out[o++] = q < 0 ? '-' : '+';
        if (x >= 100)
            out[o++] = (char)('0' + x / 100);
        out[o++] = (char)('0' + x / 10 % 10);
        out[o++] = (char)('0' + x % 10);
    } else if (q >= 0) { /* ddd.ddd */
        for (int i = 0; i <= q; i++)
            out[o++] = i < nd ? dig[i] : '0';
        if (nd > q + 1) {
            out[o++] = '.';
            memcpy(out + o, dig + q + 1, (size_t)(nd - q - 1));
            o += nd - q - 1;
        }
    } else { /* 0.000ddd */
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -q - 1; i++)
            out[o++] = '0';
        memcpy(out + o, dig, (size_t)nd);
        o += nd;
    }
    if ((size_t)o >= n)
        return 0;
    memcpy(buf, out, (size_t)o);
    buf[o] = '\0';
    *reads_back = rb;
    return 1;
}

static void format_double(double d, char *buf, size_t n)
{
    char b15[32];
    int rb;
    if (fast_g(d, 16, buf, n, &rb)) {
        if (!rb) {
            if (!fast_g(d, 17, buf, n, &rb))
                snprintf(buf, n, "%.17g", d);
            return;
        }
        if (fast_g(d, 15, b15, sizeof b15, &rb)) {
            if (rb)
                memcpy(buf, b15, strlen(b15) + 1);
            return;
        }
    }
    format_double_libc(d, buf, n);
}
#else
#define format_double format_double_libc
#endif

/* For tests/unit/test_wire_numbers.c: both printers on one number. */
void wire_format_double_both(double d, char *fast, char *libc, size_t n);
void wire_format_double_both(double d, char *fast, char *libc, size_t n)
{
    format_double(d, fast, n);
    format_double_libc(d, libc, n);
}

cJSON *wire_number(double d)
{
    char buf[40];
    if (!isfinite(d))
        return cJSON_CreateNull(); /* never produced: the library rejects it */
    if (d == 0.0) /* keeps -0.0's sign off the wire: both read as zero */
        return cJSON_CreateRaw("0");
    format_double(d, buf, sizeof buf);
    return cJSON_CreateRaw(buf);
}

static cJSON *wire_int(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return cJSON_CreateRaw(buf);
}

cJSON *wire_doubles(const double *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++)
        cJSON_AddItemToArray(a, wire_number(v[i]));
    return a;
}

cJSON *wire_exact_copy(const cJSON *json)
{
    if (cJSON_IsNumber(json))
        return wire_number(json->valuedouble);
    if (!cJSON_IsArray(json) && !cJSON_IsObject(json))
        return cJSON_Duplicate(json, 1);
    cJSON *out = cJSON_IsArray(json) ? cJSON_CreateArray() : cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, json)
    {
        cJSON *c = wire_exact_copy(it);
        if (cJSON_IsObject(json))
            cJSON_AddItemToObject(out, it->string, c);
        else
            cJSON_AddItemToArray(out, c);
    }
    return out;
}

char *wire_print(const cJSON *json) { return cJSON_PrintUnformatted(json); }

/* A finite JSON number, or an error naming `field`. */
static int get_number(const cJSON *it, const char *field, double *out, lw_error *err)
{
    if (!cJSON_IsNumber(it))
        return fail(err, field, "%s must be a number", field);
    if (!isfinite(it->valuedouble))
        return fail(err, field, "%s must be a finite number", field);
    *out = it->valuedouble;
    return 0;
}

static int get_int(const cJSON *it, const char *field, int64_t lo, int64_t hi, int64_t *out,
                   lw_error *err)
{
    double d;
    if (get_number(it, field, &d, err))
        return LW_EINVAL;
    if (floor(d) != d)
        return fail(err, field, "%s must be an integer", field);
    if (d < (double)lo || d > (double)hi)
        return fail(err, field, "%s = %.15g is out of range [%lld, %lld]", field, d,
                    (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return 0;
}

/* An array of exactly n finite numbers into out. */
static int get_vector(const cJSON *it, const char *field, size_t n, double *out, lw_error *err)
{
    if (!cJSON_IsArray(it))
        return fail(err, field, "%s must be an array of %zu numbers", field, n);
    size_t len = (size_t)cJSON_GetArraySize(it);
    if (len != n)
        return fail(err, field, "%s has %zu numbers, the job has %zu tasks", field, len, n);
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, it)
    {
        if (cJSON_IsNumber(e) && isfinite(e->valuedouble)) {
            out[i++] = e->valuedouble; /* the common case: no field name to print */
            continue;
        }
        char f[96];
        snprintf(f, sizeof f, "%s[%zu]", field, i);
        return get_number(e, f, &out[i], err);
    }
    return 0;
}

/* ---- job specs ---- */

static const char *const spec_fields[] = {"tasks", "method", "params", "world_size", "sync",
                                          "barrier_timeout_ms", "min_ranks", "seed", NULL};
static const char *const task_fields[] = {"name",  "class_freq", "label_var", "prior_loss",
                                          "init_loss", "classes", NULL};
static const char *const report_fields[] = {"rank", "step", "epoch", "losses", "grad_norms",
                                            "gram", "losses_after", "samples", NULL};

static int check_fields(const cJSON *obj, const char *const *known, const char *prefix,
                        lw_error *err)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        int ok = 0;
        for (int i = 0; known[i]; i++)
            if (it->string && strcmp(it->string, known[i]) == 0)
                ok = 1;
        if (!ok) {
            char f[96];
            snprintf(f, sizeof f, "%s%.64s", prefix, it->string ? it->string : "");
            return fail(err, f, "unknown field \"%.64s\"", it->string ? it->string : "");
        }
        /* cJSON keeps duplicate keys; the first would win silently. */
        for (const cJSON *p = obj->child; p != it; p = p->next)
            if (p->string && it->string && strcmp(p->string, it->string) == 0) {
                char f[96];
                snprintf(f, sizeof f, "%s%.64s", prefix, it->string);
                return fail(err, f, "field \"%.64s\" appears twice", it->string);
            }
    }
    return 0;
}

void wire_spec_free(wire_spec *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->lib.n_tasks; i++) {
        if (s->task_names)
            free(s->task_names[i]);
        if (s->class_freqs)
            free(s->class_freqs[i]);
    }
    for (size_t i = 0; i < s->lib.n_params; i++) {
        if (s->param_names)
            free(s->param_names[i]);
        if (s->param_strings)
            free(s->param_strings[i]);
        if (s->param_arrays)
            free(s->param_arrays[i]);
    }
    free(s->task_names);
    free(s->class_freqs);
    free(s->param_names);
    free(s->param_strings);
    free(s->param_arrays);
    free(s->tasks);
    free(s->params);
    free(s->method);
    memset(s, 0, sizeof *s);
}

static int nomem(lw_error *err)
{
    err->code = LW_ENOMEM;
    snprintf(err->field, sizeof err->field, "%s", "");
    snprintf(err->message, sizeof err->message, "out of memory");
    return LW_ENOMEM;
}

static int parse_task(const cJSON *t, size_t i, wire_spec *s, lw_error *err)
{
    char f[96];
    lw_task *task = &s->tasks[i];
    const cJSON *name = t;
    lw_task_init(task, NULL);
    snprintf(f, sizeof f, "tasks[%zu]", i);
    if (cJSON_IsObject(t)) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "tasks[%zu].", i);
        if (check_fields(t, task_fields, prefix, err))
            return LW_EINVAL;
        name = cJSON_GetObjectItemCaseSensitive(t, "name");
        snprintf(f, sizeof f, "tasks[%zu].name", i);
        if (!name)
            return fail(err, f, "%s is required", f);
    } else if (!cJSON_IsString(t)) {
        return fail(err, f, "%s must be a task name or an object with \"name\"", f);
    }
    if (!cJSON_IsString(name))
        return fail(err, f, "%s must be a string", f);
    size_t len = strlen(name->valuestring);
    if (len < 1 || len > 128)
        return fail(err, f, "%s must have 1 to 128 characters", f);
    for (const char *c = name->valuestring; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return fail(err, f, "%s must not contain control characters", f);
    if (!(s->task_names[i] = strdup(name->valuestring)))
        return nomem(err);
    task->name = s->task_names[i];
    if (!cJSON_IsObject(t))
        return 0;

    static const struct {
        const char *key;
        size_t off;
    } scalars[] = {
        {"label_var", offsetof(lw_task, label_var)},
        {"prior_loss", offsetof(lw_task, prior_loss)},
        {"init_loss", offsetof(lw_task, init_loss)},
    };
    for (size_t k = 0; k < sizeof scalars / sizeof scalars[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, scalars[k].key);
        if (!v)
            continue;
        snprintf(f, sizeof f, "tasks[%zu].%s", i, scalars[k].key);
        if (get_number(v, f, (double *)((char *)task + scalars[k].off), err))
            return LW_EINVAL;
    }
    const cJSON *classes = cJSON_GetObjectItemCaseSensitive(t, "classes");
    if (classes) {
        snprintf(f, sizeof f, "tasks[%zu].classes", i);
        if (get_int(classes, f, 2, 1 << 30, &task->classes, err))
            return LW_EINVAL;
    }
    const cJSON *cf = cJSON_GetObjectItemCaseSensitive(t, "class_freq");
    if (cf) {
        snprintf(f, sizeof f, "tasks[%zu].class_freq", i);
        if (!cJSON_IsArray(cf))
            return fail(err, f, "%s must be an array of numbers", f);
        size_t n = (size_t)cJSON_GetArraySize(cf);
        if (n < 2 || n > 65536)
            return fail(err, f, "%s must have 2 to 65536 entries", f);
        if (!(s->class_freqs[i] = malloc(n * sizeof(double))))
            return nomem(err);
        if (get_vector(cf, f, n, s->class_freqs[i], err))
            return LW_EINVAL;
        task->class_freq = s->class_freqs[i];
        task->n_class_freq = n;
    }
    return 0;
}

static int parse_param(const cJSON *p, size_t i, wire_spec *s, lw_error *err)
{
    lw_value *v = &s->params[i];
    char f[96];
    snprintf(f, sizeof f, "params.%.64s", p->string);
    if (!(s->param_names[i] = strdup(p->string)))
        return nomem(err);
    v->name = s->param_names[i];
    if (cJSON_IsNumber(p)) {
        v->kind = LW_VAL_NUMBER;
        return get_number(p, f, &v->number, err);
    }
    if (cJSON_IsString(p)) {
        v->kind = LW_VAL_STRING;
        if (!(s->param_strings[i] = strdup(p->valuestring)))
            return nomem(err);
        v->string = s->param_strings[i];
        return 0;
    }
    if (cJSON_IsArray(p)) {
        size_t n = (size_t)cJSON_GetArraySize(p);
        v->kind = LW_VAL_ARRAY;
        if (n > LW_MAX_TASKS)
            return fail(err, f, "%s has too many numbers", f);
        if (!(s->param_arrays[i] = malloc((n ? n : 1) * sizeof(double))))
            return nomem(err);
        if (get_vector(p, f, n, s->param_arrays[i], err))
            return LW_EINVAL;
        v->array = s->param_arrays[i];
        v->len = n;
        return 0;
    }
    v->kind = LW_VAL_OTHER;
    return fail(err, f, "%s must be a number, a string or an array of numbers", f);
}

int wire_parse_spec(const cJSON *json, const wire_limits *lim, wire_spec *s, lw_error *err)
{
    wire_limits dflt = {WIRE_DEFAULT_MAX_TASKS, WIRE_DEFAULT_MAX_WORLD};
    if (!lim)
        lim = &dflt;
    memset(s, 0, sizeof *s);
    memset(err, 0, sizeof *err);
    if (!cJSON_IsObject(json))
        return fail(err, "", "a job spec must be a JSON object");
    if (check_fields(json, spec_fields, "", err))
        return LW_EINVAL;

    const cJSON *method = cJSON_GetObjectItemCaseSensitive(json, "method");
    if (!method)
        return fail(err, "method", "method is required");
    if (!cJSON_IsString(method))
        return fail(err, "method", "method must be a string");

    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(json, "tasks");
    if (!tasks)
        return fail(err, "tasks", "tasks is required");
    if (!cJSON_IsArray(tasks))
        return fail(err, "tasks", "tasks must be an array of task names or objects");
    size_t T = (size_t)cJSON_GetArraySize(tasks);
    if (T < 1 || T > lim->max_tasks)
        return fail(err, "tasks", "a job needs 1 to %zu tasks, got %zu", lim->max_tasks, T);

    const cJSON *params = cJSON_GetObjectItemCaseSensitive(json, "params");
    if (params && !cJSON_IsObject(params) && !cJSON_IsNull(params))
        return fail(err, "params", "params must be an object");
    size_t P = cJSON_IsObject(params) ? (size_t)cJSON_GetArraySize(params) : 0;

    s->world_size = 1;
    s->sync = WIRE_SYNC_BARRIER;
    s->barrier_timeout_ms = 60000;
    int64_t v;
    const cJSON *it;
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "world_size"))) {
        if (get_int(it, "world_size", 1, (int64_t)lim->max_world_size, &v, err))
            return LW_EINVAL;
        s->world_size = (int)v;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "sync"))) {
        if (!cJSON_IsString(it))
            return fail(err, "sync", "sync must be \"barrier\" or \"async\"");
        if (strcmp(it->valuestring, "barrier") == 0)
            s->sync = WIRE_SYNC_BARRIER;
        else if (strcmp(it->valuestring, "async") == 0)
            s->sync = WIRE_SYNC_ASYNC;
        else
            return fail(err, "sync", "sync must be \"barrier\" or \"async\", not \"%.32s\"",
                        it->valuestring);
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "barrier_timeout_ms"))) {
        if (get_int(it, "barrier_timeout_ms", 1, 86400000, &s->barrier_timeout_ms, err))
            return LW_EINVAL;
    }
    s->min_ranks = s->world_size;
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "min_ranks"))) {
        if (get_int(it, "min_ranks", 1, s->world_size, &v, err))
            return LW_EINVAL;
        s->min_ranks = (int)v;
        s->has_min_ranks = 1;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "seed"))) {
        if (get_int(it, "seed", 0, (int64_t)1 << 53, &v, err))
            return LW_EINVAL;
        s->lib.seed = (uint64_t)v;
    }

    s->method = strdup(method->valuestring);
    s->tasks = calloc(T, sizeof *s->tasks);
    s->task_names = calloc(T, sizeof *s->task_names);
    s->class_freqs = calloc(T, sizeof *s->class_freqs);
    s->params = calloc(P ? P : 1, sizeof *s->params);
    s->param_names = calloc(P ? P : 1, sizeof *s->param_names);
    s->param_strings = calloc(P ? P : 1, sizeof *s->param_strings);
    s->param_arrays = calloc(P ? P : 1, sizeof *s->param_arrays);
    s->lib.n_tasks = T;
    s->lib.n_params = P;
    if (!s->method || !s->tasks || !s->task_names || !s->class_freqs || !s->params ||
        !s->param_names || !s->param_strings || !s->param_arrays) {
        wire_spec_free(s);
        return nomem(err);
    }
    int rc = 0;
    size_t i = 0;
    cJSON_ArrayForEach(it, tasks)
    {
        if ((rc = parse_task(it, i++, s, err)))
            break;
    }
    for (size_t a = 0; !rc && a < T; a++)
        for (size_t b = 0; b < a; b++)
            if (strcmp(s->task_names[a], s->task_names[b]) == 0) {
                char f[32];
                snprintf(f, sizeof f, "tasks[%zu]", a);
                rc = fail(err, f, "task name \"%.64s\" appears twice", s->task_names[a]);
                break;
            }
    i = 0;
    if (!rc && P) {
        cJSON_ArrayForEach(it, params)
        {
            for (size_t k = 0; k < i; k++)
                if (strcmp(s->params[k].name, it->string) == 0) {
                    char f[96];
                    snprintf(f, sizeof f, "params.%.64s", it->string);
                    rc = fail(err, f, "parameter \"%.64s\" appears twice", it->string);
                }
            if (rc || (rc = parse_param(it, i++, s, err)))
                break;
        }
    }
    if (rc) {
        wire_spec_free(s);
        return rc;
    }
    s->lib.method = s->method;
    s->lib.tasks = s->tasks;
    s->lib.params = s->params;
    return 0;
}

static cJSON *param_json(const lw_job *job, const lw_param_info *p, size_t i)
{
    double num;
    int choice;
    const double *vec;
    lw_job_param(job, i, &num, &choice, &vec);
    switch (p->type) {
    case LW_PARAM_NUMBER: return wire_number(num);
    case LW_PARAM_INT: return wire_int((int64_t)num);
    case LW_PARAM_CHOICE: return cJSON_CreateString(p->choices[choice]);
    case LW_PARAM_VECTOR: return vec ? wire_doubles(vec, lw_job_tasks(job)) : cJSON_CreateNull();
    }
    return cJSON_CreateNull();
}

cJSON *wire_spec_to_json(const wire_spec *s, const lw_job *job)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *tasks = cJSON_AddArrayToObject(o, "tasks");
    for (size_t i = 0; i < s->lib.n_tasks; i++) {
        const lw_task *t = &s->tasks[i];
        int plain = isnan(t->init_loss) && isnan(t->prior_loss) && isnan(t->label_var) &&
                    !t->n_class_freq && !t->classes;
        if (plain) {
            cJSON_AddItemToArray(tasks, cJSON_CreateString(t->name));
            continue;
        }
        cJSON *to = cJSON_CreateObject();
        cJSON_AddStringToObject(to, "name", t->name);
        if (t->n_class_freq)
            cJSON_AddItemToObject(to, "class_freq", wire_doubles(t->class_freq, t->n_class_freq));
        if (t->classes)
            cJSON_AddItemToObject(to, "classes", wire_int(t->classes));
        if (!isnan(t->init_loss))
            cJSON_AddItemToObject(to, "init_loss", wire_number(t->init_loss));
        if (!isnan(t->label_var))
            cJSON_AddItemToObject(to, "label_var", wire_number(t->label_var));
        if (!isnan(t->prior_loss))
            cJSON_AddItemToObject(to, "prior_loss", wire_number(t->prior_loss));
        cJSON_AddItemToArray(tasks, to);
    }
    const lw_method_info *m = lw_job_method(job);
    cJSON_AddStringToObject(o, "method", m->name);
    cJSON *params = cJSON_AddObjectToObject(o, "params");
    for (size_t i = 0; i < m->n_params; i++)
        cJSON_AddItemToObject(params, m->params[i].name, param_json(job, &m->params[i], i));
    cJSON_AddItemToObject(o, "world_size", wire_int(s->world_size));
    cJSON_AddStringToObject(o, "sync", s->sync == WIRE_SYNC_ASYNC ? "async" : "barrier");
    cJSON_AddItemToObject(o, "barrier_timeout_ms", wire_int(s->barrier_timeout_ms));
    cJSON_AddItemToObject(o, "min_ranks", wire_int(s->min_ranks));
    cJSON_AddItemToObject(o, "seed", wire_int((int64_t)s->lib.seed));
    return o;
}

/* ---- reports ---- */

size_t wire_report_buf_len(size_t T) { return 4 * T + T * T; }

int wire_parse_report(const cJSON *json, size_t T, int need_rank, double *buf, wire_report *r,
                      lw_error *err)
{
    memset(r, 0, sizeof *r);
    memset(err, 0, sizeof *err);
    r->rank = -1;
    r->epoch = -1;
    r->samples = 1.0;
    if (!cJSON_IsObject(json))
        return fail(err, "", "a report must be a JSON object");
    if (check_fields(json, report_fields, "", err))
        return LW_EINVAL;
    const cJSON *it;
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "rank"))) {
        if (get_int(it, "rank", 0, (int64_t)1 << 30, &r->rank, err))
            return LW_EINVAL;
    } else if (need_rank) {
        return fail(err, "rank", "rank is required");
    }
    if (!(it = cJSON_GetObjectItemCaseSensitive(json, "step")))
        return fail(err, "step", "step is required");
    if (get_int(it, "step", 0, (int64_t)1 << 53, &r->step, err))
        return LW_EINVAL;
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "epoch")) && !cJSON_IsNull(it)) {
        if (get_int(it, "epoch", 0, (int64_t)1 << 53, &r->epoch, err))
            return LW_EINVAL;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "samples"))) {
        if (get_number(it, "samples", &r->samples, err))
            return LW_EINVAL;
        if (!(r->samples > 0))
            return fail(err, "samples", "samples must be > 0");
        r->has_samples = 1;
    }
    static const char *const vecs[] = {"losses", "grad_norms", "losses_after"};
    double **dst[] = {&r->losses, &r->grad_norms, &r->losses_after};
    for (int k = 0; k < 3; k++) {
        if (!(it = cJSON_GetObjectItemCaseSensitive(json, vecs[k])) || cJSON_IsNull(it))
            continue;
        double *v = buf + (size_t)k * T;
        if (get_vector(it, vecs[k], T, v, err))
            return LW_EINVAL;
        *dst[k] = v;
    }
    if ((it = cJSON_GetObjectItemCaseSensitive(json, "gram")) && !cJSON_IsNull(it)) {
        double *G = buf + 4 * T;
        if (!cJSON_IsArray(it) || (size_t)cJSON_GetArraySize(it) != T)
            return fail(err, "gram", "gram must be an array of %zu rows of %zu numbers", T, T);
        size_t i = 0;
        const cJSON *row;
        cJSON_ArrayForEach(row, it)
        {
            char f[48];
            snprintf(f, sizeof f, "gram[%zu]", i);
            if (get_vector(row, f, T, G + i * T, err))
                return LW_EINVAL;
            i++;
        }
        r->gram = G;
    }
    return 0;
}

lw_input wire_report_input(const wire_report *r)
{
    lw_input in = {
        .step = (uint64_t)r->step,
        .epoch = r->epoch,
        .losses = r->losses,
        .grad_norms = r->grad_norms,
        .gram = r->gram,
        .losses_after = r->losses_after,
    };
    return in;
}

cJSON *wire_input_to_json(const lw_input *in, size_t T)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "step", wire_int((int64_t)in->step));
    if (in->epoch >= 0)
        cJSON_AddItemToObject(o, "epoch", wire_int(in->epoch));
    if (in->losses)
        cJSON_AddItemToObject(o, "losses", wire_doubles(in->losses, T));
    if (in->grad_norms)
        cJSON_AddItemToObject(o, "grad_norms", wire_doubles(in->grad_norms, T));
    if (in->gram) {
        cJSON *g = cJSON_AddArrayToObject(o, "gram");
        for (size_t i = 0; i < T; i++)
            cJSON_AddItemToArray(g, wire_doubles(in->gram + i * T, T));
    }
    if (in->losses_after)
        cJSON_AddItemToObject(o, "losses_after", wire_doubles(in->losses_after, T));
    return o;
}

/* ---- the method table ---- */

static cJSON *inputs_json(unsigned bits)
{
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{LW_IN_LOSSES, "losses"},
                 {LW_IN_GRAD_NORMS, "grad_norms"},
                 {LW_IN_GRAM, "gram"},
                 {LW_IN_EPOCH, "epoch"},
                 {LW_IN_LOSSES_AFTER, "losses_after"}};
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (bits & names[i].bit)
            cJSON_AddItemToArray(a, cJSON_CreateString(names[i].name));
    return a;
}

static cJSON *bound_json(double b) { return isfinite(b) && fabs(b) < 1e300 ? wire_number(b) : cJSON_CreateNull(); }

cJSON *wire_method_json(const lw_method_info *m)
{
    static const char *const types[] = {"number", "integer", "choice", "vector"};
    static const char *const lens[] = {"1", "T", "TxT"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m->name);
    cJSON_AddStringToObject(o, "summary", m->summary);
    cJSON_AddStringToObject(o, "doc", m->doc ? m->doc : "");
    cJSON_AddBoolToObject(o, "servable", m->servable);
    if (!m->servable)
        cJSON_AddStringToObject(o, "not_served_why", m->not_served_why);
    cJSON_AddStringToObject(o, "output",
                            m->output == LW_OUT_GRAD_COEFFS ? "grad_coeffs" : "loss_weights");
    cJSON_AddItemToObject(o, "inputs", inputs_json(m->inputs));
    cJSON_AddItemToObject(o, "optional_inputs", inputs_json(m->optional_inputs));
    cJSON *ps = cJSON_AddArrayToObject(o, "params");
    for (size_t i = 0; i < m->n_params; i++) {
        const lw_param_info *p = &m->params[i];
        cJSON *po = cJSON_CreateObject();
        cJSON_AddStringToObject(po, "name", p->name);
        cJSON_AddStringToObject(po, "type", types[p->type]);
        if (p->type == LW_PARAM_CHOICE) {
            cJSON_AddStringToObject(po, "default", p->choices[(int)p->def]);
            cJSON *c = cJSON_AddArrayToObject(po, "choices");
            for (int k = 0; p->choices[k]; k++)
                cJSON_AddItemToArray(c, cJSON_CreateString(p->choices[k]));
        } else {
            cJSON_AddItemToObject(po, "default",
                                  isnan(p->def) ? cJSON_CreateNull()
                                  : p->type == LW_PARAM_INT ? wire_int((int64_t)p->def)
                                                            : wire_number(p->def));
            cJSON_AddItemToObject(po, "min", bound_json(p->min));
            cJSON_AddItemToObject(po, "max", bound_json(p->max));
            cJSON_AddBoolToObject(po, "min_exclusive", p->min_open);
            cJSON_AddBoolToObject(po, "max_exclusive", p->max_open);
        }
        cJSON_AddStringToObject(po, "doc", p->doc ? p->doc : "");
        cJSON_AddItemToArray(ps, po);
    }
    cJSON *st = cJSON_AddArrayToObject(o, "state");
    for (size_t i = 0; i < m->n_state; i++) {
        cJSON *so = cJSON_CreateObject();
        cJSON_AddStringToObject(so, "name", m->state[i].name);
        cJSON_AddStringToObject(so, "length", lens[m->state[i].len]);
        cJSON_AddStringToObject(so, "doc", m->state[i].doc ? m->state[i].doc : "");
        cJSON_AddItemToArray(st, so);
    }
    return o;
}

cJSON *wire_methods_json(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", LW_VERSION);
    cJSON *a = cJSON_AddArrayToObject(o, "methods");
    for (size_t i = 0; i < lw_method_count(); i++)
        cJSON_AddItemToArray(a, wire_method_json(lw_method_at(i)));
    return o;
}

/* ---- state ---- */

cJSON *wire_state_json(const lw_job *job)
{
    cJSON *o = cJSON_CreateObject();
    size_t n = lw_job_state_count(job);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *name = lw_job_state_name(job, i, &len);
        cJSON_AddItemToObject(o, name, wire_doubles(lw_job_state_get(job, i), len));
    }
    return o;
}

int wire_state_from_json(const cJSON *obj, lw_job *job, lw_error *err)
{
    memset(err, 0, sizeof *err);
    if (!cJSON_IsObject(obj))
        return fail(err, "state", "state must be an object of named arrays");
    size_t n = lw_job_state_count(job);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        size_t i;
        for (i = 0; i < n; i++)
            if (strcmp(lw_job_state_name(job, i, NULL), it->string) == 0)
                break;
        if (i == n) {
            char f[96];
            snprintf(f, sizeof f, "state.%.64s", it->string);
            return fail(err, f, "method %s has no state array \"%.64s\"",
                        lw_job_method(job)->name, it->string);
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *name = lw_job_state_name(job, i, &len);
        char f[96];
        snprintf(f, sizeof f, "state.%.64s", name);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, name);
        if (!a)
            return fail(err, f, "%s is missing", f);
        double *v = malloc((len ? len : 1) * sizeof(double));
        if (!v)
            return nomem(err);
        int rc = get_vector(a, f, len, v, err);
        if (rc == 0)
            rc = lw_job_state_set(job, name, v, len, err);
        free(v);
        if (rc)
            return rc;
    }
    return 0;
}

typedef struct describe_ctx {
    const lw_job *job;
    cJSON *obj;
} describe_ctx;

static void describe_cb(void *ud, const char *name, const double *v, size_t len)
{
    describe_ctx *c = ud;
    size_t T = lw_job_tasks(c->job);
    cJSON *item;
    if (len == 1 && T != 1) {
        item = wire_number(v[0]);
    } else if (len == T) {
        item = cJSON_CreateObject();
        for (size_t i = 0; i < T; i++)
            cJSON_AddItemToObject(item, lw_job_task_name(c->job, i), wire_number(v[i]));
    } else if (len == T * T) {
        item = cJSON_CreateArray();
        for (size_t i = 0; i < T; i++)
            cJSON_AddItemToArray(item, wire_doubles(v + i * T, T));
    } else {
        item = wire_doubles(v, len);
    }
    cJSON_AddItemToObject(c->obj, name, item);
}

cJSON *wire_describe_json(const lw_job *job)
{
    describe_ctx c = {job, cJSON_CreateObject()};
    lw_job_describe(job, describe_cb, &c);
    return c.obj;
}

/* ---- errors ---- */

int wire_http_status(int code)
{
    switch (code) {
    case LW_OK: return 200;
    case LW_EINVAL: return 400;
    case LW_ENOTSUP: return 400;
    case LW_ENOENT: return 400;
    case LW_ENUMERIC: return 422;
    case LW_ENOMEM: return 503;
    }
    return 500;
}

const char *wire_error_code(int code)
{
    switch (code) {
    case LW_EINVAL: return "invalid";
    case LW_ENOTSUP: return "not_supported";
    case LW_ENOENT: return "not_found";
    case LW_ENUMERIC: return "numerical";
    case LW_ENOMEM: return "out_of_memory";
    }
    return "internal";
}

cJSON *wire_error_json(const char *code, const char *message, const char *field)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", message);
    if (field && field[0])
        cJSON_AddStringToObject(e, "field", field);
    return o;
}
