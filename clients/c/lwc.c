/*
 * lwc.c -- the C client of lossweightd: requests with one reused curl easy
 * handle (so libcurl keeps the connection alive), bodies built and parsed
 * with cJSON, errors turned into lwc_error values. See lwc.h for the
 * contract.
 */
#include "lwc.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lwc {
    CURL *curl;
    char *base;               /* without a trailing '/' */
    struct curl_slist *hdrs;  /* Content-Type, Accept, Authorization */
    long timeout_ms;
    char *cafile;             /* https: CA certificates to verify with, or NULL */
    lwc_error err;
    /* the answer being read */
    char *buf;
    size_t len, cap;
};

#define JOB_ID_MAX 128

static void set_err(lwc *c, long status, const char *code, const char *field, const char *fmt,
                    ...)
{
    va_list ap;
    c->err.status = status;
    snprintf(c->err.code, sizeof c->err.code, "%s", code);
    snprintf(c->err.field, sizeof c->err.field, "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(c->err.message, sizeof c->err.message, fmt, ap);
    va_end(ap);
}

static void clear_err(lwc *c)
{
    memset(&c->err, 0, sizeof c->err);
}

const lwc_error *lwc_last_error(const lwc *c)
{
    return &c->err;
}

/* Append a header line unless an earlier append failed (*ok == 0); on
 * failure free the list, clear *ok and return NULL. */
static struct curl_slist *hdr_add(struct curl_slist *h, const char *line, int *ok)
{
    if (!*ok)
        return NULL;
    struct curl_slist *n = line ? curl_slist_append(h, line) : NULL;
    if (!n) {
        curl_slist_free_all(h);
        *ok = 0;
    }
    return n;
}

lwc *lwc_new(const char *base_url, const char *token, long timeout_ms)
{
    if (!base_url || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    lwc *c = calloc(1, sizeof *c);
    if (!c)
        goto fail_global;
    size_t n = strlen(base_url);
    while (n > 0 && base_url[n - 1] == '/')
        n--;
    c->base = malloc(n + 1);
    c->curl = curl_easy_init();
    if (!c->base || !c->curl)
        goto fail;
    memcpy(c->base, base_url, n);
    c->base[n] = '\0';
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 120000;
    int ok = 1;
    struct curl_slist *h = hdr_add(NULL, "Content-Type: application/json", &ok);
    h = hdr_add(h, "Accept: application/json", &ok);
    h = hdr_add(h, "Expect:", &ok); /* no "100-continue" round trip before a body */
    if (!token)
        token = getenv("LOSSWEIGHT_TOKEN");
    if (token && *token) {
        size_t tl = strlen(token) + sizeof "Authorization: Bearer ";
        char *auth = malloc(tl);
        if (auth)
            snprintf(auth, tl, "Authorization: Bearer %s", token);
        h = hdr_add(h, auth, &ok); /* NULL auth: fails and frees */
        free(auth);
    }
    if (!ok)
        goto fail;
    c->hdrs = h;
    return c;
fail:
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->base);
    free(c);
fail_global:
    curl_global_cleanup();
    return NULL;
}

void lwc_free(lwc *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->hdrs);
    free(c->cafile);
    free(c->base);
    free(c->buf);
    free(c);
    curl_global_cleanup();
}

int lwc_set_cafile(lwc *c, const char *path)
{
    char *p = NULL;
    if (path) {
        size_t n = strlen(path) + 1;
        if (!(p = malloc(n))) {
            set_err(c, 0, "out_of_memory", "", "out of memory");
            return -1;
        }
        memcpy(p, path, n);
    }
    free(c->cafile);
    c->cafile = p;
    return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    lwc *c = ud;
    size_t n = size * nmemb;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b)
            return 0; /* curl reports a write error */
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
    c->buf[c->len] = '\0';
    return n;
}

static int job_id_ok(lwc *c, const char *job)
{
    size_t n = 0;
    for (; job && job[n]; n++) {
        char ch = job[n];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            break;
    }
    if (!job || job[n] || n < 1 || n > JOB_ID_MAX) {
        set_err(c, 0, "invalid_argument", "job", "a job id is 1 to %d characters of [A-Za-z0-9._-]",
                JOB_ID_MAX);
        return 0;
    }
    return 1;
}

/* Fill c->err from an error answer {"error": {"code", "message", "field"}}. */
static void error_from_body(lwc *c, long status)
{
    cJSON *doc = c->buf ? cJSON_ParseWithLength(c->buf, c->len) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(e, "field");
    char fallback[32];
    snprintf(fallback, sizeof fallback, "http_%ld", status);
    set_err(c, status, cJSON_IsString(code) ? code->valuestring : fallback,
            cJSON_IsString(field) ? field->valuestring : "", "%s",
            cJSON_IsString(msg) ? msg->valuestring : (c->buf ? c->buf : "(no body)"));
    cJSON_Delete(doc);
}

static int transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
        return 1;
    default:
        return 0;
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One request; retried (bounded) after transport errors and 503 when retry
 * is set. On success returns 0 with the body in c->buf and the status in
 * *status (2xx). */
static int request(lwc *c, const char *verb, const char *path, const char *body, int retry,
                   long *status)
{
    char url[1024];
    if ((size_t)snprintf(url, sizeof url, "%s%s", c->base, path) >= sizeof url) {
        set_err(c, 0, "invalid_argument", "", "URL too long");
        return -1;
    }
    int attempts = retry ? LWC_RETRIES + 1 : 1;
    long delay = 50;
    for (int a = 0; a < attempts; a++) {
        if (a > 0) {
            sleep_ms(delay);
            delay = delay * 2 > 2000 ? 2000 : delay * 2;
        }
        CURL *h = c->curl;
        c->len = 0;
        if (c->buf)
            c->buf[0] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, verb);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cafile); /* NULL: libcurl's default */
        if (body) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        } else {
            curl_easy_setopt(h, CURLOPT_HTTPGET, 1L); /* no body; the verb stays */
        }
        CURLcode rc = curl_easy_perform(h);
        if (rc != CURLE_OK) {
            set_err(c, 0, "transport", "", "%s %s: %s", verb, url, curl_easy_strerror(rc));
            if (transient(rc))
                continue;
            return -1;
        }
        long st = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
        if (st >= 400) {
            error_from_body(c, st);
            if (st == 503)
                continue;
            return -1;
        }
        *status = st;
        return 0;
    }
    return -1;
}

static cJSON *parse_answer(lwc *c)
{
    cJSON *doc = c->buf ? cJSON_ParseWithLength(c->buf, c->len) : NULL;
    if (!cJSON_IsObject(doc)) {
        set_err(c, 0, "bad_response", "", "the daemon's answer is not a JSON object");
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

static int decision_from(lwc *c, const cJSON *doc, double *weights, size_t cap, lwc_decision *out)
{
    lwc_decision d;
    memset(&d, 0, sizeof d);
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(doc, "step");
    if (cJSON_IsNumber(it))
        d.step = (int64_t)it->valuedouble;
    it = cJSON_GetObjectItemCaseSensitive(doc, "ranks");
    if (cJSON_IsNumber(it))
        d.ranks = (int)it->valuedouble;
    it = cJSON_GetObjectItemCaseSensitive(doc, "method");
    if (cJSON_IsString(it))
        snprintf(d.method, sizeof d.method, "%s", it->valuestring);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(doc, "weights");
    it = cJSON_GetObjectItemCaseSensitive(doc, "status");
    snprintf(d.status, sizeof d.status, "%s",
             cJSON_IsString(it) ? it->valuestring : (w ? "decided" : "pending"));
    if (cJSON_IsArray(w)) {
        size_t n = (size_t)cJSON_GetArraySize(w);
        if (n > cap) {
            set_err(c, 0, "invalid_argument", "weights",
                    "the decision has %zu weights, the buffer room for %zu", n, cap);
            return -1;
        }
        size_t i = 0;
        cJSON_ArrayForEach(it, w)
        {
            if (!cJSON_IsNumber(it)) {
                set_err(c, 0, "bad_response", "weights", "a weight is not a number");
                return -1;
            }
            weights[i++] = it->valuedouble;
        }
        d.n_weights = n;
    }
    if (out)
        *out = d;
    return 0;
}

/* Add name: [n finite numbers]; -1 (with err) on a non-finite one. */
static int add_numbers(lwc *c, cJSON *o, const char *name, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            set_err(c, 0, "invalid_argument", name, "%s[%zu] is not a finite number", name, i);
            return -1;
        }
    cJSON *a = cJSON_CreateDoubleArray(v, (int)n);
    if (!a || !cJSON_AddItemToObject(o, name, a)) {
        cJSON_Delete(a);
        set_err(c, 0, "out_of_memory", "", "out of memory");
        return -1;
    }
    return 0;
}

/* PUT body (JSON text) to /v1/jobs/{job}{suffix}. Retried like a report:
 * the same document PUT twice leaves the same job. */
static int put_doc(lwc *c, const char *job, const char *suffix, const char *body)
{
    char path[64 + JOB_ID_MAX];
    long st;
    snprintf(path, sizeof path, "/v1/jobs/%s%s", job, suffix);
    if (request(c, "PUT", path, body, 1, &st) != 0)
        return -1;
    clear_err(c);
    return 0;
}

/* put_doc() of a document the caller gave: the job id and the document
 * (field, and "no <what>" when it is NULL) checked first. */
static int put_given(lwc *c, const char *job, const char *suffix, const char *doc,
                     const char *field, const char *what)
{
    clear_err(c);
    if (!job_id_ok(c, job))
        return -1;
    if (!doc) {
        set_err(c, 0, "invalid_argument", field, "no %s", what);
        return -1;
    }
    return put_doc(c, job, suffix, doc);
}

int lwc_create_job_json(lwc *c, const char *job, const char *spec_json)
{
    return put_given(c, job, "", spec_json, "spec", "spec");
}

int lwc_create_job(lwc *c, const char *job, const char *const *tasks, size_t n_tasks,
                   const char *method, int world_size, const char *params_json)
{
    clear_err(c);
    if (!job_id_ok(c, job))
        return -1;
    if (!tasks || n_tasks == 0 || !method) {
        set_err(c, 0, "invalid_argument", !method ? "method" : "tasks", "tasks and a method are required");
        return -1;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *params = params_json ? cJSON_Parse(params_json) : NULL;
    if (params_json && !cJSON_IsObject(params)) {
        cJSON_Delete(o);
        cJSON_Delete(params);
        set_err(c, 0, "invalid_argument", "params", "params must be a JSON object");
        return -1;
    }
    char *s = NULL;
    cJSON *t = cJSON_CreateStringArray(tasks, (int)n_tasks);
    if (o && t && cJSON_AddItemToObject(o, "tasks", t)) {
        t = NULL; /* o owns it now */
        int ok = cJSON_AddStringToObject(o, "method", method) != NULL;
        if (ok && params) {
            ok = cJSON_AddItemToObject(o, "params", params);
            if (ok)
                params = NULL;
        }
        if (ok && cJSON_AddNumberToObject(o, "world_size", world_size))
            s = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(t);
    cJSON_Delete(params);
    cJSON_Delete(o);
    if (!s) {
        set_err(c, 0, "out_of_memory", "", "out of memory");
        return -1;
    }
    int rc = put_doc(c, job, "", s);
    cJSON_free(s);
    return rc;
}

int lwc_report_post(lwc *c, const char *job, const lwc_report *r, double *weights, size_t cap,
                    lwc_decision *out)
{
    clear_err(c);
    if (!job_id_ok(c, job))
        return -1;
    if (!r) {
        set_err(c, 0, "invalid_argument", "", "no report");
        return -1;
    }
    size_t T = r->n_tasks;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "rank", (double)r->rank) ||
        !cJSON_AddNumberToObject(o, "step", (double)r->step) ||
        (r->epoch >= 0 && !cJSON_AddNumberToObject(o, "epoch", (double)r->epoch))) {
        cJSON_Delete(o);
        set_err(c, 0, "out_of_memory", "", "out of memory");
        return -1;
    }
    if ((r->losses && add_numbers(c, o, "losses", r->losses, T) != 0) ||
        (r->grad_norms && add_numbers(c, o, "grad_norms", r->grad_norms, T) != 0)) {
        cJSON_Delete(o);
        return -1;
    }
    if (r->gram) {
        cJSON *g = cJSON_AddArrayToObject(o, "gram");
        for (size_t i = 0; g && i < T; i++) {
            for (size_t j = 0; j < T; j++)
                if (!isfinite(r->gram[i * T + j])) {
                    cJSON_Delete(o);
                    set_err(c, 0, "invalid_argument", "gram", "gram[%zu][%zu] is not a finite number",
                            i, j);
                    return -1;
                }
            cJSON *row = cJSON_CreateDoubleArray(r->gram + i * T, (int)T);
            if (!row || !cJSON_AddItemToArray(g, row)) {
                cJSON_Delete(row);
                g = NULL;
            }
        }
        if (!g) {
            cJSON_Delete(o);
            set_err(c, 0, "out_of_memory", "", "out of memory");
            return -1;
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) {
        set_err(c, 0, "out_of_memory", "", "out of memory");
        return -1;
    }
    char path[96 + JOB_ID_MAX];
    if (r->wait_ms >= 0)
        snprintf(path, sizeof path, "/v1/jobs/%s/reports?wait_ms=%ld", job, r->wait_ms);
    else
        snprintf(path, sizeof path, "/v1/jobs/%s/reports", job);
    long st;
    int rc = request(c, "POST", path, s, 1, &st);
    cJSON_free(s);
    if (rc != 0)
        return -1;
    cJSON *doc = parse_answer(c);
    if (!doc)
        return -1;
    rc = decision_from(c, doc, weights, cap, out);
    cJSON_Delete(doc);
    if (rc == 0)
        clear_err(c);
    return rc;
}

int lwc_weights(lwc *c, const char *job, double *weights, size_t cap, lwc_decision *out)
{
    clear_err(c);
    if (!job_id_ok(c, job))
        return -1;
    char path[64 + JOB_ID_MAX];
    long st;
    snprintf(path, sizeof path, "/v1/jobs/%s/weights", job);
    if (request(c, "GET", path, NULL, 1, &st) != 0)
        return -1;
    cJSON *doc = parse_answer(c);
    if (!doc)
        return -1;
    int rc = decision_from(c, doc, weights, cap, out);
    cJSON_Delete(doc);
    if (rc == 0)
        clear_err(c);
    return rc;
}

int lwc_delete_job(lwc *c, const char *job)
{
    clear_err(c);
    if (!job_id_ok(c, job))
        return -1;
    char path[64 + JOB_ID_MAX];
    long st;
    snprintf(path, sizeof path, "/v1/jobs/%s", job);
    if (request(c, "DELETE", path, NULL, 0, &st) != 0)
        return -1;
    clear_err(c);
    return 0;
}

int lwc_export_state(lwc *c, const char *job, int decided_only, char **doc)
{
    clear_err(c);
    if (!doc) {
        set_err(c, 0, "invalid_argument", "doc", "nowhere to put the document");
        return -1;
    }
    *doc = NULL;
    if (!job_id_ok(c, job))
        return -1;
    char path[64 + JOB_ID_MAX];
    long st;
    snprintf(path, sizeof path, "/v1/jobs/%s/state%s", job, decided_only ? "?decided_only=1" : "");
    if (request(c, "GET", path, NULL, 1, &st) != 0)
        return -1;
    cJSON *o = parse_answer(c); /* checks that it is a JSON object */
    if (!o)
        return -1;
    cJSON_Delete(o);
    char *d = malloc(c->len + 1);
    if (!d) {
        set_err(c, 0, "out_of_memory", "", "copying the state document");
        return -1;
    }
    memcpy(d, c->buf, c->len + 1);
    *doc = d;
    clear_err(c);
    return 0;
}

int lwc_restore_state(lwc *c, const char *job, const char *doc)
{
    return put_given(c, job, "/state", doc, "doc", "state document");
}
