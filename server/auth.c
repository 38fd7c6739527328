/*
 * auth.c -- bearer tokens: parsing the token file, matching a request's
 * token in constant time, and the role / job-prefix rules (auth.h has the
 * file format and the contract).
 *
 * Matching. Each configured token is kept as its SHA-256 digest (GnuTLS,
 * which libmicrohttpd links for TLS anyway). A request's token is hashed
 * once and compared with every digest, all 32 bytes each, OR-ing the
 * differences and selecting the match with masks: how long it takes does
 * not depend on which token matched or how many leading bytes a wrong token
 * got right, and comparing fixed-size digests hides the tokens' lengths.
 * Duplicate tokens are refused when the file is read, so at most one entry
 * matches.
 *
 * The rules (DESIGN.md, Security; the route table's role and scope
 * columns): a token's role must be at least the route's; on a route with a
 * {job}, the job id must start with the token's prefix; /v1/jobs answers
 * every token and lists only the jobs under its prefix; /metrics covers
 * every job, so a token with a prefix may not read it; /healthz needs no
 * token. Authentication comes first (an unknown token is 401 whatever the
 * path), authorization after routing (403).
 */
#include "auth.h"
#include "log.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIGEST_LEN 32

_Static_assert(AUTH_PREFIX_MAX == LWD_JOB_ID_MAX, "a token's job prefix is at most a job id");

typedef struct auth_entry {
    unsigned char digest[DIGEST_LEN];
    int role;
    unsigned line;
    char prefix[AUTH_PREFIX_MAX + 1];
} auth_entry;

struct auth_table {
    auth_entry *v;
    size_t n;
};

static const char *const role_names[] = {"reader", "trainer", "admin"};

const char *auth_role_name(int role)
{
    return role >= ROLE_READER && role <= ROLE_ADMIN ? role_names[role] : "none";
}

static int digest(const char *s, size_t n, unsigned char out[DIGEST_LEN])
{
    return gnutls_hash_fast(GNUTLS_DIG_SHA256, s, n, out) == 0 ? 0 : -1;
}

/* ---- the file ---- */

static int token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=' || c == '-';
}

static int parse_role(const char *s, size_t n)
{
    for (int r = ROLE_READER; r <= ROLE_ADMIN; r++)
        if (strlen(role_names[r]) == n && memcmp(role_names[r], s, n) == 0)
            return r;
    return -1;
}

static int by_digest(const void *a, const void *b)
{
    const auth_entry *x = *(const auth_entry *const *)a, *y = *(const auth_entry *const *)b;
    int c = memcmp(x->digest, y->digest, DIGEST_LEN);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* Refuse a token given twice: sort pointers by digest, compare neighbours.
 * 0, or -1 with the two line numbers in *first, *second. */
static int find_duplicate(const auth_table *t, unsigned *first, unsigned *second)
{
    const auth_entry **p = malloc(t->n * sizeof *p);
    int dup = 0;
    if (!p)
        return -2;
    for (size_t i = 0; i < t->n; i++)
        p[i] = &t->v[i];
    qsort(p, t->n, sizeof *p, by_digest);
    for (size_t i = 1; i < t->n && !dup; i++) {
        if (memcmp(p[i - 1]->digest, p[i]->digest, DIGEST_LEN) == 0) {
            *first = p[i - 1]->line;
            *second = p[i]->line;
            dup = 1;
        }
    }
    free(p);
    return dup ? -1 : 0;
}

void auth_table_free(auth_table *t)
{
    if (!t)
        return;
    if (t->v)
        explicit_bzero(t->v, t->n * sizeof *t->v);
    free(t->v);
    free(t);
}

auth_table *auth_table_parse(const char *name, const char *text, size_t len, char *msg,
                             size_t msg_len)
{
    auth_table *t = calloc(1, sizeof *t);
    size_t cap = 0;
    unsigned line = 0;
    const char *p = text, *end = text + len;
    if (!t) {
        snprintf(msg, msg_len, "%s: out of memory", name);
        return NULL;
    }
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
        const char *f[4];
        size_t fl[4], nf = 0;
        line++;
        if (ll && p[ll - 1] == '\r')
            ll--;
        const char *le = p + ll;
        if (strnlen(p, ll) != ll) {
            snprintf(msg, msg_len, "%s:%u: the line holds a NUL byte", name, line);
            goto fail;
        }
        /* fields, up to a '#' that starts one */
        for (const char *q = p; q < le;) {
            while (q < le && (*q == ' ' || *q == '\t'))
                q++;
            if (q == le || *q == '#')
                break;
            const char *s = q;
            while (q < le && *q != ' ' && *q != '\t')
                q++;
            if (nf == 3) {
                snprintf(msg, msg_len,
                         "%s:%u: more than three fields (a line is TOKEN ROLE [JOB_PREFIX])",
                         name, line);
                goto fail;
            }
            f[nf] = s, fl[nf] = (size_t)(q - s), nf++;
        }
        p = eol ? eol + 1 : end;
        if (nf == 0)
            continue;
        if (nf == 1) {
            snprintf(msg, msg_len, "%s:%u: no role (a line is TOKEN ROLE [JOB_PREFIX])", name,
                     line);
            goto fail;
        }
        for (size_t i = 0; i < fl[0]; i++) {
            if (!token_char(f[0][i])) {
                snprintf(msg, msg_len,
                         "%s:%u: the token has a character outside [A-Za-z0-9._~+/=-]", name,
                         line);
                goto fail;
            }
        }
        if (fl[0] < AUTH_TOKEN_MIN || fl[0] > AUTH_TOKEN_MAX) {
            snprintf(msg, msg_len, "%s:%u: the token is %s than %d characters", name, line,
                     fl[0] < AUTH_TOKEN_MIN ? "shorter" : "longer",
                     fl[0] < AUTH_TOKEN_MIN ? AUTH_TOKEN_MIN : AUTH_TOKEN_MAX);
            goto fail;
        }
        int role = parse_role(f[1], fl[1]);
        if (role < 0) {
            snprintf(msg, msg_len, "%s:%u: the role is not admin, trainer or reader", name,
                     line);
            goto fail;
        }
        if (nf == 3) {
            int ok = fl[2] <= AUTH_PREFIX_MAX;
            for (size_t i = 0; ok && i < fl[2]; i++)
                ok = job_id_char(f[2][i]);
            if (!ok) {
                snprintf(msg, msg_len,
                         "%s:%u: the job prefix is not 1 to %d characters of [A-Za-z0-9._-]",
                         name, line, AUTH_PREFIX_MAX);
                goto fail;
            }
        }
        if (t->n == AUTH_TOKENS_MAX) {
            snprintf(msg, msg_len, "%s:%u: more than %d tokens", name, line, AUTH_TOKENS_MAX);
            goto fail;
        }
        if (t->n == cap) {
            size_t nc = cap ? 2 * cap : 16;
            auth_entry *v = malloc(nc * sizeof *v);
            if (!v) {
                snprintf(msg, msg_len, "%s: out of memory", name);
                goto fail;
            }
            if (t->n) {
                memcpy(v, t->v, t->n * sizeof *v);
                explicit_bzero(t->v, t->n * sizeof *v);
            }
            free(t->v);
            t->v = v, cap = nc;
        }
        auth_entry *e = &t->v[t->n];
        memset(e, 0, sizeof *e);
        if (digest(f[0], fl[0], e->digest) != 0) {
            snprintf(msg, msg_len, "%s:%u: SHA-256 failed (GnuTLS)", name, line);
            goto fail;
        }
        e->role = role;
        e->line = line;
        if (nf == 3)
            memcpy(e->prefix, f[2], fl[2]);
        t->n++;
    }
    if (t->n == 0) {
        snprintf(msg, msg_len, "%s: no tokens (a line is TOKEN ROLE [JOB_PREFIX])", name);
        goto fail;
    }
    unsigned a = 0, b = 0;
    int d = find_duplicate(t, &a, &b);
    if (d == -1) {
        snprintf(msg, msg_len, "%s:%u: the same token as line %u", name, b, a);
        goto fail;
    }
    if (d != 0) {
        snprintf(msg, msg_len, "%s: out of memory", name);
        goto fail;
    }
    return t;
fail:
    auth_table_free(t);
    return NULL;
}

char *auth_read_file(const char *path, size_t max, size_t *len, unsigned *mode, char *msg,
                     size_t msg_len)
{
    struct stat st;
    char *buf = NULL;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(msg, msg_len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        snprintf(msg, msg_len, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(msg, msg_len, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(msg, msg_len, "%s: larger than %zu bytes", path, max);
        goto fail;
    }
    buf = malloc(max + 1);
    if (!buf) {
        snprintf(msg, msg_len, "%s: out of memory", path);
        goto fail;
    }
    for (;;) { /* the size may have changed since fstat: read to EOF, bounded */
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(msg, msg_len, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            snprintf(msg, msg_len, "%s: larger than %zu bytes", path, max);
            goto fail;
        }
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    if (mode)
        *mode = (unsigned)(st.st_mode & 07777);
    return buf;
fail:
    if (buf) {
        explicit_bzero(buf, n);
        free(buf);
    }
    close(fd);
    return NULL;
}

void auth_warn_mode(const char *what, const char *path, unsigned mode)
{
    char m[8];
    if (!(mode & (S_IRWXG | S_IRWXO)))
        return;
    snprintf(m, sizeof m, "%04o", mode & 07777);
    log_begin(LL_WARN, "secret_file_mode");
    log_str("file", what);
    log_str("path", path);
    log_str("mode", m);
    log_str("msg", "group or others may read or change this file; chmod 600 it");
    log_end();
}

auth_table *auth_table_load(const char *path, char *msg, size_t msg_len, unsigned *mode)
{
    size_t len;
    char *text = auth_read_file(path, AUTH_FILE_MAX, &len, mode, msg, msg_len);
    if (!text)
        return NULL;
    auth_table *t = auth_table_parse(path, text, len, msg, msg_len);
    explicit_bzero(text, len);
    free(text);
    return t;
}

size_t auth_table_count(const auth_table *t, int role)
{
    size_t k = 0;
    for (size_t i = 0; t && i < t->n; i++)
        k += role < 0 || t->v[i].role == role;
    return k;
}

/* ---- matching ---- */

int auth_table_lookup(const auth_table *t, const char *h, auth_grant *g)
{
    unsigned char d[DIGEST_LEN];
    if (!h)
        return AUTH_MISSING;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return AUTH_MALFORMED;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0)
        return AUTH_MALFORMED;
    if (digest(h, n, d) != 0)
        return AUTH_UNKNOWN;
    /* every entry, every byte: no early exit */
    size_t found = 0, idx = 0;
    for (size_t i = 0; i < t->n; i++) {
        unsigned diff = 0;
        for (size_t k = 0; k < DIGEST_LEN; k++)
            diff |= (unsigned)(d[k] ^ t->v[i].digest[k]);
        size_t eq = (size_t)1 & ((diff - 1u) >> 8); /* diff is 0..255: 1 iff 0 */
        size_t mask = (size_t)0 - eq;
        idx |= i & mask;
        found |= eq;
    }
    explicit_bzero(d, sizeof d);
    if (!found)
        return AUTH_UNKNOWN;
    g->role = t->v[idx].role;
    memcpy(g->prefix, t->v[idx].prefix, sizeof g->prefix);
    return AUTH_OK;
}

int auth_permits(const auth_grant *g, int role, int scope, const char *job_id, char *msg,
                 size_t msg_len, const char **field)
{
    size_t pl = strlen(g->prefix);
    *field = NULL;
    if (role == ROLE_OPEN)
        return 0;
    if (g->role < role) {
        snprintf(msg, msg_len, "this call needs a token with role %s or higher; this one is %s",
                 auth_role_name(role), auth_role_name(g->role));
        return 403;
    }
    if (!pl)
        return 0;
    if (scope == SCOPE_JOB && strncmp(job_id, g->prefix, pl) != 0) {
        *field = "job";
        snprintf(msg, msg_len, "this token may only touch jobs whose id starts with \"%s\"",
                 g->prefix);
        return 403;
    }
    if (scope == SCOPE_DAEMON) {
        snprintf(msg, msg_len,
                 "this call covers every job; this token may only touch jobs whose id starts "
                 "with \"%s\"",
                 g->prefix);
        return 403;
    }
    return 0;
}

/* ---- the daemon's token file ---- */

static auth_table *active;
static const char *active_path;

static void log_loaded(const char *event, const auth_table *t)
{
    log_begin(LL_INFO, event);
    log_str("path", active_path);
    log_int("tokens", (long long)auth_table_count(t, -1));
    log_int("admin", (long long)auth_table_count(t, ROLE_ADMIN));
    log_int("trainer", (long long)auth_table_count(t, ROLE_TRAINER));
    log_int("reader", (long long)auth_table_count(t, ROLE_READER));
    log_end();
}

int auth_start(const char *path)
{
    char msg[512];
    unsigned mode = 0;
    auth_table *t = auth_table_load(path, msg, sizeof msg, &mode);
    if (!t) {
        fprintf(stderr, "lossweightd: --token-file %s\n", msg);
        return -1;
    }
    active = t;
    active_path = path;
    auth_warn_mode("token_file", path, mode);
    log_loaded("tokens_loaded", t);
    return 0;
}

int auth_reload(void)
{
    char msg[512];
    unsigned mode = 0;
    if (!active_path)
        return 0;
    auth_table *t = auth_table_load(active_path, msg, sizeof msg, &mode);
    if (!t) {
        log_begin(LL_ERROR, "tokens_reload_failed");
        log_str("path", active_path);
        log_str("error", msg);
        log_str("msg", "the tokens loaded before stay in use");
        log_end();
        return -1;
    }
    auth_table_free(active);
    active = t;
    auth_warn_mode("token_file", active_path, mode);
    log_loaded("tokens_reloaded", t);
    return 0;
}

int auth_enabled(void) { return active != NULL; }

void auth_stop(void)
{
    auth_table_free(active);
    active = NULL;
}

void auth_check(const char *authorization, int role, int scope, const char *job_id,
                char *prefix, size_t prefix_len, auth_result *r)
{
    auth_grant g;
    r->status = 0;
    r->kind = AUTH_OK;
    r->reason = NULL;
    r->field = NULL;
    r->message[0] = '\0';
    prefix[0] = '\0';
    if (!active || role == ROLE_OPEN)
        return;
    int k = auth_table_lookup(active, authorization, &g);
    if (k != AUTH_OK) {
        r->status = 401;
        r->kind = k;
        r->field = "Authorization";
        if (k == AUTH_MISSING) {
            r->reason = "missing";
            snprintf(r->message, sizeof r->message,
                     "this daemon needs a bearer token (Authorization: Bearer <token>)");
        } else if (k == AUTH_MALFORMED) {
            r->reason = "malformed";
            snprintf(r->message, sizeof r->message,
                     "the Authorization header is not \"Bearer <token>\"");
        } else {
            r->reason = "unknown_token";
            snprintf(r->message, sizeof r->message, "the bearer token is not valid");
        }
        return;
    }
    r->status = auth_permits(&g, role, scope, job_id, r->message, sizeof r->message, &r->field);
    if (r->status) {
        r->reason = g.role < role ? "role" : scope == SCOPE_JOB ? "job_prefix" : "every_job";
        return;
    }
    snprintf(prefix, prefix_len, "%s", g.prefix);
}
