/*
 * auth.h -- bearer tokens (DESIGN.md, Security): the token file, and who
 * may call what.
 *
 * The token file (--token-file) has one token per line,
 *
 *     TOKEN ROLE [JOB_PREFIX]
 *
 * ROLE is admin, trainer or reader (a higher role may do everything a lower
 * one may); JOB_PREFIX limits the token to jobs whose id starts with it
 * (absent: every job). '#' starts a comment; blank lines are fine. A token
 * is 16 to 512 characters of [A-Za-z0-9._~+/=-]. The whole file is checked
 * before it is used: one bad line and none of it is (start-up exits 2, a
 * SIGHUP reload keeps the tokens it had).
 *
 * Tokens never leave this file's memory in clear: what is kept of each is
 * its SHA-256 digest, a request's token is hashed and compared with every
 * configured digest (no early exit), and no message, log line or metric
 * ever contains a token -- messages name the file and line instead.
 *
 * The first half is plain functions over a parsed table (no globals; the
 * unit tests call them); the second is the daemon's one active table,
 * loaded at start-up and swapped by auth_reload() on SIGHUP. Loop thread
 * only.
 */
#ifndef LWD_AUTH_H
#define LWD_AUTH_H

#include <stddef.h>

#define AUTH_TOKEN_MIN 16
#define AUTH_TOKEN_MAX 512
#define AUTH_PREFIX_MAX 128     /* a job id's longest (LWD_JOB_ID_MAX) */
#define AUTH_FILE_MAX (1 << 20) /* a token file's largest size */
#define AUTH_TOKENS_MAX 100000

typedef struct auth_table auth_table;

/* What a token may do. */
typedef struct auth_grant {
    int role;                          /* ROLE_READER .. ROLE_ADMIN */
    char prefix[AUTH_PREFIX_MAX + 1];  /* "": every job */
} auth_grant;

/* Parse a token file's text; `name` is what messages call the file. NULL
 * on the first bad line, with msg = "NAME:LINE: what is wrong" (never the
 * line's contents). The caller frees the table. */
auth_table *auth_table_parse(const char *name, const char *text, size_t len, char *msg,
                             size_t msg_len);
/* Read and parse a file (auth_read_file, then auth_table_parse). */
auth_table *auth_table_load(const char *path, char *msg, size_t msg_len, unsigned *mode);
void auth_table_free(auth_table *t);
/* Tokens in the table with this role (-1: all of them). */
size_t auth_table_count(const auth_table *t, int role);

/* How an Authorization header fared. */
enum { AUTH_OK = 0, AUTH_MISSING = 1, AUTH_MALFORMED = 2, AUTH_UNKNOWN = 3 };

/* Authenticate an Authorization header value (NULL: the header is absent):
 * "Bearer" (any case), spaces, the token. AUTH_OK fills *g. The time taken
 * does not depend on which configured token matched, or on how much of one
 * a wrong token shares. */
int auth_table_lookup(const auth_table *t, const char *authorization, auth_grant *g);

/* May a token with grant g call a route needing `role` with `scope`
 * (SCOPE_*, server.h) on job_id ("" when the route has no {job})? 0, or
 * 403 with msg filled and *field set ("job" or NULL). */
int auth_permits(const auth_grant *g, int role, int scope, const char *job_id, char *msg,
                 size_t msg_len, const char **field);

/* "admin", "trainer", "reader" ("none" for ROLE_OPEN). */
const char *auth_role_name(int role);

/* Read a small file holding secrets (a token file, a TLS key) into a
 * NUL-terminated buffer: at most `max` bytes, a regular file. NULL with
 * msg filled on failure. *mode gets its permission bits. The caller wipes
 * (explicit_bzero) and frees the buffer. */
char *auth_read_file(const char *path, size_t max, size_t *len, unsigned *mode, char *msg,
                     size_t msg_len);
/* Log a warning (like ssh) when a secret file is accessible by group or
 * others. `what` names it in the event ("token_file", "tls_key"). */
void auth_warn_mode(const char *what, const char *path, unsigned mode);

/* ---- the daemon's token file ---- */

/* Load --token-file. 0, or -1 with the reason printed on stderr. */
int auth_start(const char *path);
/* SIGHUP: read the file again; a good file replaces the tokens at once, a
 * bad one is logged (file:line) and the old tokens stay. 0 or -1. No-op
 * without a token file. */
int auth_reload(void);
/* A token file is in use: every request but ROLE_OPEN routes needs one. */
int auth_enabled(void);
void auth_stop(void);

/* A request's verdict. */
typedef struct auth_result {
    int status;          /* 0 (go on), 401 or 403 */
    int kind;            /* 401: AUTH_MISSING, AUTH_MALFORMED or AUTH_UNKNOWN */
    const char *reason;  /* for the log: missing, malformed, unknown_token, role, job_prefix,
                            every_job */
    const char *field;   /* the error's field: "Authorization", "job" or NULL */
    char message[256];
} auth_result;

/* Check a request against the active token file: its Authorization header
 * (NULL: none), the route's role and scope and the {job} ("" if none).
 * With no token file, or a ROLE_OPEN route, always 0. On 0 the token's
 * job prefix is copied to prefix (prefix_len >= AUTH_PREFIX_MAX + 1). */
void auth_check(const char *authorization, int role, int scope, const char *job_id,
                char *prefix, size_t prefix_len, auth_result *r);

#endif /* LWD_AUTH_H */
