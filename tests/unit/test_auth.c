/*
 * test_auth.c -- bearer tokens (server/auth.c) without a daemon: the token
 * file's grammar and every way a line can be wrong (named by file and line,
 * never echoing the line), matching an Authorization header, and the role
 * and job-prefix rules of each route scope. The daemon-level behaviour
 * (401/403 on the wire, SIGHUP reload, logs) is tests/integration/test_auth.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.c"
#include "log.c"
#include "names.c"

#define ADMIN "adminTOKEN-0123456789"
#define TRAIN "trainer.token_0123456789~+/="
#define READ "reader-token-0123456789"

static auth_table *parse(const char *text, char *msg)
{
    return auth_table_parse("tokens", text, strlen(text), msg, 512);
}

static void test_a_good_file_with_comments_blank_lines_and_crlf(void **state)
{
    (void)state;
    char msg[512] = "";
    const char *text = "# lossweightd tokens\n"
                       "\n"
                       "   \t\n" ADMIN " admin\r\n"
                       "\t" TRAIN "\ttrainer   team-a.  # the team's trainers\n" READ
                       " reader # read-only\n"
                       "# the end, no newline after the last token:\n"
                       "reader-token-without-a-newline reader x";
    auth_table *t = parse(text, msg);
    assert_non_null(t);
    assert_string_equal(msg, "");
    assert_int_equal(auth_table_count(t, -1), 4);
    assert_int_equal(auth_table_count(t, ROLE_ADMIN), 1);
    assert_int_equal(auth_table_count(t, ROLE_TRAINER), 1);
    assert_int_equal(auth_table_count(t, ROLE_READER), 2);

    auth_grant g;
    assert_int_equal(auth_table_lookup(t, "Bearer " ADMIN, &g), AUTH_OK);
    assert_int_equal(g.role, ROLE_ADMIN);
    assert_string_equal(g.prefix, "");
    assert_int_equal(auth_table_lookup(t, "Bearer " TRAIN, &g), AUTH_OK);
    assert_int_equal(g.role, ROLE_TRAINER);
    assert_string_equal(g.prefix, "team-a.");
    assert_int_equal(auth_table_lookup(t, "Bearer " READ, &g), AUTH_OK);
    assert_int_equal(g.role, ROLE_READER);
    assert_string_equal(g.prefix, "");
    assert_int_equal(auth_table_lookup(t, "Bearer reader-token-without-a-newline", &g), AUTH_OK);
    assert_string_equal(g.prefix, "x");
    auth_table_free(t);
}

/* Each bad file, the message it must give, and the secret it must not show. */
static const struct {
    const char *text, *msg;
} bad[] = {
    {"", "tokens: no tokens (a line is TOKEN ROLE [JOB_PREFIX])"},
    {"# only comments\n\n", "tokens: no tokens (a line is TOKEN ROLE [JOB_PREFIX])"},
    {"# x\n" ADMIN "\n", "tokens:2: no role (a line is TOKEN ROLE [JOB_PREFIX])"},
    {ADMIN " admin team extra\n",
     "tokens:1: more than three fields (a line is TOKEN ROLE [JOB_PREFIX])"},
    {"\n\nshort-token-15c admin\n", "tokens:3: the token is shorter than 16 characters"},
    {ADMIN "! admin\n", "tokens:1: the token has a character outside [A-Za-z0-9._~+/=-]"},
    {"adminTOKEN-01234\xc3\xa9 admin\n",
     "tokens:1: the token has a character outside [A-Za-z0-9._~+/=-]"},
    {ADMIN " Admin\n", "tokens:1: the role is not admin, trainer or reader"},
    {ADMIN " root\n", "tokens:1: the role is not admin, trainer or reader"},
    {ADMIN " admin team/a\n",
     "tokens:1: the job prefix is not 1 to 128 characters of [A-Za-z0-9._-]"},
    {READ " reader ok\n" ADMIN " admin ok\n" TRAIN " trainer a\n" ADMIN " reader\n",
     "tokens:4: the same token as line 2"},
    {ADMIN " admin\n" READ " reader\0x\n", "tokens:2: the line holds a NUL byte"},
};

static void test_every_bad_line_names_file_and_line_and_never_the_token(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char msg[512] = "";
        size_t len = strlen(bad[i].text);
        if (strstr(bad[i].msg, "NUL"))
            len += 1 + strlen(bad[i].text + len + 1); /* the text goes on after the NUL */
        auth_table *t = auth_table_parse("tokens", bad[i].text, len, msg, sizeof msg);
        if (t || strcmp(msg, bad[i].msg) != 0)
            fail_msg("case %zu: got \"%s\", wanted \"%s\"", i, msg, bad[i].msg);
        assert_null(strstr(msg, "TOKEN-0123"));
        assert_null(strstr(msg, "token-0123"));
        assert_null(strstr(msg, "short-token"));
    }
}

static void test_token_and_prefix_lengths_at_the_limits(void **state)
{
    (void)state;
    char text[2048], tok[AUTH_TOKEN_MAX + 2], pre[AUTH_PREFIX_MAX + 2], msg[512];
    memset(tok, 'a', sizeof tok);
    memset(pre, 'p', sizeof pre);
    /* 16 and 512 characters: fine; a 128-character prefix: fine */
    tok[AUTH_TOKEN_MAX] = '\0';
    pre[AUTH_PREFIX_MAX] = '\0';
    snprintf(text, sizeof text, "0123456789abcdef reader\n%s admin %s\n", tok, pre);
    auth_table *t = parse(text, msg);
    assert_non_null(t);
    auth_table_free(t);
    /* 513 characters */
    tok[AUTH_TOKEN_MAX] = 'a';
    tok[AUTH_TOKEN_MAX + 1] = '\0';
    snprintf(text, sizeof text, "%s admin\n", tok);
    assert_null(parse(text, msg));
    assert_string_equal(msg, "tokens:1: the token is longer than 512 characters");
    /* a 129-character prefix */
    pre[AUTH_PREFIX_MAX] = 'p';
    pre[AUTH_PREFIX_MAX + 1] = '\0';
    snprintf(text, sizeof text, "0123456789abcdef reader %s\n", pre);
    assert_null(parse(text, msg));
    assert_string_equal(msg,
                        "tokens:1: the job prefix is not 1 to 128 characters of [A-Za-z0-9._-]");
}

static void test_authorization_headers(void **state)
{
    (void)state;
    char msg[512];
    auth_grant g;
    auth_table *t = parse(ADMIN " admin\n" READ " reader team-\n", msg);
    assert_non_null(t);
    assert_int_equal(auth_table_lookup(t, NULL, &g), AUTH_MISSING);
    assert_int_equal(auth_table_lookup(t, "", &g), AUTH_MALFORMED);
    assert_int_equal(auth_table_lookup(t, "Bearer", &g), AUTH_MALFORMED);
    assert_int_equal(auth_table_lookup(t, "Bearer   ", &g), AUTH_MALFORMED);
    assert_int_equal(auth_table_lookup(t, "Basic " ADMIN, &g), AUTH_MALFORMED);
    assert_int_equal(auth_table_lookup(t, "Bearer" ADMIN, &g), AUTH_MALFORMED);
    assert_int_equal(auth_table_lookup(t, ADMIN, &g), AUTH_MALFORMED);
    /* the scheme in any case, spaces and tabs around the token */
    assert_int_equal(auth_table_lookup(t, "bearer " ADMIN, &g), AUTH_OK);
    assert_int_equal(auth_table_lookup(t, " BEARER \t" ADMIN " \t", &g), AUTH_OK);
    assert_int_equal(g.role, ROLE_ADMIN);
    /* nearly the token is not the token */
    assert_int_equal(auth_table_lookup(t, "Bearer " ADMIN "0", &g), AUTH_UNKNOWN);
    assert_int_equal(auth_table_lookup(t, "Bearer adminTOKEN-012345678", &g), AUTH_UNKNOWN);
    assert_int_equal(auth_table_lookup(t, "Bearer ADMINtoken-0123456789", &g), AUTH_UNKNOWN);
    assert_int_equal(auth_table_lookup(t, "Bearer x", &g), AUTH_UNKNOWN);
    assert_int_equal(auth_table_lookup(t, "Bearer " ADMIN " " READ, &g), AUTH_UNKNOWN);
    assert_int_equal(auth_table_lookup(t, "Bearer " READ, &g), AUTH_OK);
    assert_int_equal(g.role, ROLE_READER);
    assert_string_equal(g.prefix, "team-");
    auth_table_free(t);
}

static void test_many_tokens_each_found_with_its_own_grant(void **state)
{
    (void)state;
    enum { N = 500 };
    size_t cap = (size_t)N * 64, off = 0;
    char *text = malloc(cap), msg[512], h[96];
    assert_non_null(text);
    for (int i = 0; i < N; i++)
        off += (size_t)snprintf(text + off, cap - off, "token-number-%06d %s job%d-\n", i,
                                auth_role_name(i % 3), i);
    auth_table *t = auth_table_parse("many", text, off, msg, sizeof msg);
    assert_non_null(t);
    for (int i = 0; i < N; i++) {
        auth_grant g;
        char want[32];
        snprintf(h, sizeof h, "Bearer token-number-%06d", i);
        snprintf(want, sizeof want, "job%d-", i);
        assert_int_equal(auth_table_lookup(t, h, &g), AUTH_OK);
        assert_int_equal(g.role, i % 3);
        assert_string_equal(g.prefix, want);
    }
    assert_int_equal(auth_table_lookup(t, "Bearer token-number-000500", &(auth_grant){0}),
                     AUTH_UNKNOWN);
    auth_table_free(t);
    free(text);
}

static void test_roles_and_scopes(void **state)
{
    (void)state;
    char msg[256];
    const char *field;
    auth_grant admin = {ROLE_ADMIN, ""}, trainer = {ROLE_TRAINER, "team-a."},
               reader = {ROLE_READER, ""};
    /* a higher role may do what a lower may */
    for (int need = ROLE_READER; need <= ROLE_ADMIN; need++) {
        assert_int_equal(auth_permits(&admin, need, SCOPE_JOB, "x", msg, sizeof msg, &field), 0);
        assert_int_equal(auth_permits(&reader, need, SCOPE_JOB, "x", msg, sizeof msg, &field),
                         need == ROLE_READER ? 0 : 403);
    }
    assert_int_equal(auth_permits(&reader, ROLE_TRAINER, SCOPE_JOB, "x", msg, sizeof msg, &field),
                     403);
    assert_string_equal(msg, "this call needs a token with role trainer or higher; this one is "
                             "reader");
    assert_null(field);
    /* the prefix: SCOPE_JOB checks the job id */
    assert_int_equal(
        auth_permits(&trainer, ROLE_TRAINER, SCOPE_JOB, "team-a.run1", msg, sizeof msg, &field),
        0);
    assert_int_equal(auth_permits(&trainer, ROLE_READER, SCOPE_JOB, "team-a.", msg, sizeof msg,
                                  &field),
                     0);
    assert_int_equal(
        auth_permits(&trainer, ROLE_READER, SCOPE_JOB, "team-a", msg, sizeof msg, &field), 403);
    assert_string_equal(field, "job");
    assert_int_equal(
        auth_permits(&trainer, ROLE_READER, SCOPE_JOB, "team-b.x", msg, sizeof msg, &field),
        403);
    /* a role failure comes first */
    assert_int_equal(
        auth_permits(&trainer, ROLE_ADMIN, SCOPE_JOB, "team-a.x", msg, sizeof msg, &field), 403);
    assert_null(field);
    /* lists and job-free routes: any token; every-job routes: no prefix */
    assert_int_equal(auth_permits(&trainer, ROLE_READER, SCOPE_LIST, "", msg, sizeof msg, &field),
                     0);
    assert_int_equal(auth_permits(&trainer, ROLE_READER, SCOPE_ANY, "", msg, sizeof msg, &field),
                     0);
    assert_int_equal(
        auth_permits(&trainer, ROLE_READER, SCOPE_DAEMON, "", msg, sizeof msg, &field), 403);
    assert_int_equal(
        auth_permits(&reader, ROLE_READER, SCOPE_DAEMON, "", msg, sizeof msg, &field), 0);
    assert_int_equal(auth_permits(&reader, ROLE_OPEN, SCOPE_ANY, "", msg, sizeof msg, &field), 0);
}

static void test_reading_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/lw-auth-XXXXXX", path[128], msg[512];
    size_t len;
    unsigned mode;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tokens", dir);
    /* missing */
    assert_null(auth_table_load(path, msg, sizeof msg, &mode));
    assert_non_null(strstr(msg, "No such file"));
    /* a directory */
    assert_null(auth_read_file(dir, 100, &len, &mode, msg, sizeof msg));
    assert_non_null(strstr(msg, "not a regular file"));
    /* too large */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(ADMIN " admin\n", f);
    fclose(f);
    assert_null(auth_read_file(path, 10, &len, &mode, msg, sizeof msg));
    assert_non_null(strstr(msg, "larger than 10 bytes"));
    /* fine, with its mode */
    assert_int_equal(chmod(path, 0640), 0);
    auth_table *t = auth_table_load(path, msg, sizeof msg, &mode);
    assert_non_null(t);
    assert_int_equal(mode, 0640);
    auth_table_free(t);
    /* a bad line names the path */
    f = fopen(path, "a");
    fputs("oops\n", f);
    fclose(f);
    assert_null(auth_table_load(path, msg, sizeof msg, &mode));
    char want[256];
    snprintf(want, sizeof want, "%s:2: no role (a line is TOKEN ROLE [JOB_PREFIX])", path);
    assert_string_equal(msg, want);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_good_file_with_comments_blank_lines_and_crlf),
        cmocka_unit_test(test_every_bad_line_names_file_and_line_and_never_the_token),
        cmocka_unit_test(test_token_and_prefix_lengths_at_the_limits),
        cmocka_unit_test(test_authorization_headers),
        cmocka_unit_test(test_many_tokens_each_found_with_its_own_grant),
        cmocka_unit_test(test_roles_and_scopes),
        cmocka_unit_test(test_reading_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
