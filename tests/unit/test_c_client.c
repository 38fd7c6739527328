/*
 * test_c_client.c -- the C client (clients/c/lwc.c) against a live daemon.
 *
 * The group setup starts lossweightd itself: $LW_DAEMON, else lossweightd
 * beside $LW_TOOL, else build/lossweightd; --listen 127.0.0.1:0 with a
 * --ready-file and a --data-dir in a fresh temporary directory, waiting
 * (bounded) for the ready file to name the address. The teardown stops it
 * (SIGTERM, then SIGKILL after a bounded wait) and removes the directory.
 * Without a daemon binary every test is skipped.
 *
 * A second daemon runs with a token file and TLS (a self-signed certificate
 * made with openssl in the same directory) for the token and CA options;
 * without openssl that test is skipped.
 */
#include "lwc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char tmpdir[256];
static char base_url[128];
static pid_t daemon_pid = -1;
/* the daemon with --token-file and --tls-cert */
static char auth_url[128];
static char cafile[320];
static pid_t auth_pid = -1;
#define ADMIN_TOKEN "c-client-admin-token-0123456789"
#define READER_TOKEN "c-client-reader-token-0123456789"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int daemon_path(char *out, size_t n)
{
    const char *d = getenv("LW_DAEMON");
    if (d && *d) {
        snprintf(out, n, "%s", d);
    } else if ((d = getenv("LW_TOOL")) && *d) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", d);
        snprintf(out, n, "%s/lossweightd", dirname(tmp));
    } else {
        snprintf(out, n, "build/lossweightd");
    }
    return access(out, X_OK) == 0 ? 0 : -1;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void stop_one(pid_t *pid)
{
    if (*pid > 0) {
        int st;
        kill(*pid, SIGTERM);
        for (int i = 0; i < 500; i++) { /* 10 s */
            if (waitpid(*pid, &st, WNOHANG) == *pid) {
                *pid = -1;
                break;
            }
            sleep_ms(20);
        }
        if (*pid > 0) {
            kill(*pid, SIGKILL);
            waitpid(*pid, &st, 0);
            *pid = -1;
        }
    }
}

static void stop_daemon(void)
{
    stop_one(&daemon_pid);
    stop_one(&auth_pid);
    if (tmpdir[0]) {
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        tmpdir[0] = '\0';
    }
}

/* Start lossweightd in dir (made) with extra flags; waits for its ready
 * file and sets url ("SCHEME://ADDR") and *pid. 0 or -1. */
static int spawn(const char *exe, const char *dir, const char *scheme, const char *const *extra,
                 size_t n_extra, char *url, size_t url_len, pid_t *pid_out)
{
    char ready[512], data[512], log[512];
    const char *argv[32];
    size_t argc = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    snprintf(ready, sizeof ready, "%s/ready", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    argv[argc++] = exe;
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--ready-file";
    argv[argc++] = ready;
    argv[argc++] = "--data-dir";
    argv[argc++] = data;
    argv[argc++] = "--log-level";
    argv[argc++] = "warn";
    for (size_t i = 0; i < n_extra && argc < 31; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (in >= 0)
            dup2(in, 0);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    *pid_out = pid;
    for (int i = 0; i < 500; i++) { /* 10 s */
        char addr[96] = "";
        FILE *f = fopen(ready, "r");
        if (f) {
            if (fgets(addr, sizeof addr, f))
                addr[strcspn(addr, "\r\n")] = '\0';
            fclose(f);
        }
        if (addr[0]) {
            snprintf(url, url_len, "%s://%s", scheme, addr);
            return 0;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            *pid_out = -1;
            fprintf(stderr, "lossweightd exited before it was ready (see %s)\n", log);
            return -1;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "lossweightd did not write %s in time\n", ready);
    stop_one(pid_out);
    return -1;
}

/* The second daemon: a token file, a self-signed certificate (openssl). */
static int start_auth_daemon(const char *exe)
{
    char dir[300], tokens[320], key[320], cmd[2048];
    snprintf(dir, sizeof dir, "%s/auth", tmpdir);
    snprintf(tokens, sizeof tokens, "%s/tokens", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cafile, sizeof cafile, "%s/cert.pem", dir);
    if (mkdir(dir, 0700) != 0)
        return -1;
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout '%s' -out '%s' -days 2 -subj /CN=lwc-test "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             key, cafile);
    if (system(cmd) != 0) {
        fprintf(stderr, "openssl failed or is missing: the token/TLS test is skipped\n");
        return 0;
    }
    FILE *f = fopen(tokens, "w");
    if (!f)
        return -1;
    fprintf(f, "%s admin\n%s reader\n", ADMIN_TOKEN, READER_TOKEN);
    fclose(f);
    chmod(tokens, 0600);
    const char *extra[] = {"--token-file", tokens, "--tls-cert", cafile, "--tls-key", key};
    return spawn(exe, dir, "https", extra, 6, auth_url, sizeof auth_url, &auth_pid);
}

static int start_daemon(void **state)
{
    (void)state;
    char exe[1024], dir[300];
    if (daemon_path(exe, sizeof exe) != 0) {
        fprintf(stderr, "no daemon binary at %s: the C client tests are skipped\n", exe);
        return 0;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lwc-test-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        tmpdir[0] = '\0';
        return -1;
    }
    snprintf(dir, sizeof dir, "%s/plain", tmpdir);
    if (spawn(exe, dir, "http", NULL, 0, base_url, sizeof base_url, &daemon_pid) != 0 ||
        start_auth_daemon(exe) != 0) {
        stop_daemon();
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop_daemon();
    return 0;
}

static lwc *client(void)
{
    if (!base_url[0])
        skip();
    lwc *c = lwc_new(base_url, NULL, 30000);
    assert_non_null(c);
    return c;
}

static void test_create_report_and_read_weights(void **state)
{
    (void)state;
    lwc *c = client();
    const char *tasks[] = {"reg", "cls"};
    assert_int_equal(lwc_create_job(c, "c-basic", tasks, 2, "power_mean", 1, "{\"gamma\": 0}"), 0);
    /* the same spec again is fine */
    assert_int_equal(lwc_create_job(c, "c-basic", tasks, 2, "power_mean", 1, "{\"gamma\": 0}"), 0);
    double L[2] = {1.0, 4.0}, w[2] = {0, 0}, w2[2] = {0, 0};
    lwc_report r = {.rank = 0, .step = 0, .epoch = -1, .n_tasks = 2, .losses = L, .wait_ms = -1};
    lwc_decision d;
    assert_int_equal(lwc_report_post(c, "c-basic", &r, w, 2, &d), 0);
    assert_string_equal(d.status, "decided");
    assert_string_equal(d.method, "power_mean");
    assert_int_equal(d.step, 0);
    assert_int_equal(d.ranks, 1);
    assert_int_equal(d.n_weights, 2);
    /* geometric mean M = 2: w_i = M / (T L_i) */
    assert_true(fabs(w[0] - 1.0) < 1e-12 && fabs(w[1] - 0.25) < 1e-12);
    lwc_decision d2;
    assert_int_equal(lwc_weights(c, "c-basic", w2, 2, &d2), 0);
    assert_memory_equal(w, w2, sizeof w); /* bit for bit */
    assert_int_equal(d2.step, 0);
    assert_int_equal(lwc_last_error(c)->status, 0);
    assert_int_equal(lwc_delete_job(c, "c-basic"), 0);
    assert_int_equal(lwc_weights(c, "c-basic", w2, 2, &d2), -1);
    assert_int_equal(lwc_last_error(c)->status, 404);
    assert_string_equal(lwc_last_error(c)->code, "no_such_job");
    lwc_free(c);
}

static void test_two_ranks_meet_at_the_barrier(void **state)
{
    (void)state;
    lwc *c = client();
    const char *tasks[] = {"a", "b"};
    assert_int_equal(lwc_create_job(c, "c-barrier", tasks, 2, "dwa", 2, NULL), 0);
    double L0[2] = {10.0, 0.7}, L1[2] = {12.0, 0.5}, w0[2], w1[2];
    lwc_decision d0, d1;
    /* rank 0 does not wait: pending until rank 1 reports */
    lwc_report r0 = {.rank = 0, .step = 0, .epoch = 0, .n_tasks = 2, .losses = L0, .wait_ms = 0};
    assert_int_equal(lwc_report_post(c, "c-barrier", &r0, w0, 2, &d0), 0);
    assert_string_equal(d0.status, "pending");
    assert_int_equal(d0.n_weights, 0);
    lwc *c1 = client();
    lwc_report r1 = {.rank = 1, .step = 0, .epoch = 0, .n_tasks = 2, .losses = L1, .wait_ms = -1};
    assert_int_equal(lwc_report_post(c1, "c-barrier", &r1, w1, 2, &d1), 0);
    assert_string_equal(d1.status, "decided");
    assert_int_equal(d1.ranks, 2);
    /* rank 0's resend gets the same decision */
    r0.wait_ms = -1;
    assert_int_equal(lwc_report_post(c, "c-barrier", &r0, w0, 2, &d0), 0);
    assert_string_equal(d0.status, "decided");
    assert_memory_equal(w0, w1, sizeof w0);

    /* steps 1..3 with both ranks waiting at once: rank 1 in a child process */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        lwc *cc = lwc_new(base_url, NULL, 30000);
        int ok = cc != NULL;
        for (int64_t s = 1; ok && s <= 3; s++) {
            double L[2] = {12.0 - (double)s, 0.5}, w[2];
            lwc_decision d;
            lwc_report r = {.rank = 1, .step = s, .epoch = s, .n_tasks = 2, .losses = L,
                            .wait_ms = -1};
            ok = lwc_report_post(cc, "c-barrier", &r, w, 2, &d) == 0 && d.n_weights == 2;
            if (ok && write(fds[1], w, sizeof w) != (ssize_t)sizeof w)
                ok = 0;
        }
        lwc_free(cc);
        close(fds[1]);
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    for (int64_t s = 1; s <= 3; s++) {
        double L[2] = {10.0 - (double)s, 0.7}, w[2], wc[2];
        lwc_decision d;
        lwc_report r = {.rank = 0, .step = s, .epoch = s, .n_tasks = 2, .losses = L, .wait_ms = -1};
        assert_int_equal(lwc_report_post(c, "c-barrier", &r, w, 2, &d), 0);
        assert_string_equal(d.status, "decided");
        assert_int_equal(d.step, s);
        assert_int_equal(read(fds[0], wc, sizeof wc), (ssize_t)sizeof wc);
        assert_memory_equal(w, wc, sizeof w); /* both ranks: the same bits */
    }
    close(fds[0]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    lwc_free(c1);
    lwc_free(c);
}

static void test_gram_report(void **state)
{
    (void)state;
    lwc *c = client();
    assert_int_equal(lwc_create_job_json(c, "c-mgda",
                                         "{\"tasks\": [\"a\", \"b\"], \"method\": \"mgda\"}"),
                     0);
    double G[4] = {4.0, 1.0, 1.0, 2.0}, w[2];
    lwc_decision d;
    lwc_report r = {.rank = 0, .step = 0, .epoch = -1, .n_tasks = 2, .gram = G, .wait_ms = -1};
    assert_int_equal(lwc_report_post(c, "c-mgda", &r, w, 2, &d), 0);
    /* min over the simplex of w'Gw: w = (1/4, 3/4) */
    assert_true(fabs(w[0] - 0.25) < 1e-9 && fabs(w[1] - 0.75) < 1e-9);
    lwc_free(c);
}

/* A checkpoint and a resume: the decided-only export of a two-rank job with
 * an open step, restored under another name, continues with the same bits
 * as the original, and takes the open step again with other numbers. */
static void test_export_and_restore_state(void **state)
{
    (void)state;
    lwc *c = client();
    assert_int_equal(lwc_create_job_json(c, "c-ck",
                                         "{\"tasks\": [\"a\", \"b\"], \"method\": \"uw\", "
                                         "\"world_size\": 2}"),
                     0);
    double L[2] = {2.0, 0.5}, w[2], w2[2];
    lwc_decision d;
    for (int64_t s = 0; s < 3; s++)
        for (int64_t r = 0; r < 2; r++) {
            lwc_report rep = {.rank = r, .step = s, .epoch = -1, .n_tasks = 2, .losses = L,
                              .wait_ms = 0};
            assert_int_equal(lwc_report_post(c, "c-ck", &rep, w, 2, &d), 0);
        }
    double Lo[2] = {9.0, 9.0};
    lwc_report open = {.rank = 0, .step = 3, .epoch = -1, .n_tasks = 2, .losses = Lo, .wait_ms = 0};
    assert_int_equal(lwc_report_post(c, "c-ck", &open, w, 2, &d), 0);
    assert_string_equal(d.status, "pending");

    char *full = NULL, *ck = NULL;
    assert_int_equal(lwc_export_state(c, "c-ck", 0, &full), 0);
    assert_int_equal(lwc_export_state(c, "c-ck", 1, &ck), 0);
    assert_non_null(strstr(full, "\"open_steps\":[{"));
    assert_non_null(strstr(ck, "\"open_steps\":[]"));
    assert_int_equal(lwc_restore_state(c, "c-ck2", ck), 0);
    lwc_decision d1, d2;
    assert_int_equal(lwc_weights(c, "c-ck", w, 2, &d1), 0);
    assert_int_equal(lwc_weights(c, "c-ck2", w2, 2, &d2), 0);
    assert_int_equal(d2.step, 2);
    assert_memory_equal(w, w2, sizeof w);
    /* the resumed rank 0 posts step 3 with other numbers: taken */
    lwc_report again = {.rank = 0, .step = 3, .epoch = -1, .n_tasks = 2, .losses = L, .wait_ms = 0};
    assert_int_equal(lwc_report_post(c, "c-ck2", &again, w2, 2, &d2), 0);
    /* the original kept rank 0's first step 3: other numbers are a 409 */
    assert_int_equal(lwc_report_post(c, "c-ck", &again, w, 2, &d1), -1);
    assert_int_equal(lwc_last_error(c)->status, 409);
    /* bad arguments change nothing and say which */
    assert_int_equal(lwc_export_state(c, "c-ck", 1, NULL), -1);
    assert_string_equal(lwc_last_error(c)->field, "doc");
    assert_int_equal(lwc_restore_state(c, "c-ck3", "{\"job\": 1}"), -1);
    assert_int_equal(lwc_last_error(c)->status, 400);
    char *none = (char *)1;
    assert_int_equal(lwc_export_state(c, "c-ck3", 0, &none), -1);
    assert_null(none);
    assert_int_equal(lwc_last_error(c)->status, 404);
    free(full);
    free(ck);
    lwc_free(c);
}

static void test_errors_carry_status_code_and_field(void **state)
{
    (void)state;
    lwc *c = client();
    const char *tasks[] = {"a", "b"}, *three[] = {"a", "b", "c"};
    assert_int_equal(lwc_create_job(c, "c-err", tasks, 2, "ew", 1, NULL), 0);
    /* another spec under the same id */
    assert_int_equal(lwc_create_job(c, "c-err", three, 3, "ew", 1, NULL), -1);
    assert_int_equal(lwc_last_error(c)->status, 409);
    assert_string_equal(lwc_last_error(c)->code, "conflict");
    assert_true(lwc_last_error(c)->message[0] != '\0');
    /* three losses for two tasks */
    double L3[3] = {1, 2, 3}, w[3];
    lwc_decision d;
    lwc_report r = {.rank = 0, .step = 0, .epoch = -1, .n_tasks = 3, .losses = L3, .wait_ms = -1};
    assert_int_equal(lwc_report_post(c, "c-err", &r, w, 3, &d), -1);
    assert_int_equal(lwc_last_error(c)->status, 400);
    assert_non_null(strstr(lwc_last_error(c)->field, "losses"));
    /* a rank outside the job */
    double L[2] = {1, 2};
    lwc_report rr = {.rank = 5, .step = 0, .epoch = -1, .n_tasks = 2, .losses = L, .wait_ms = -1};
    assert_int_equal(lwc_report_post(c, "c-err", &rr, w, 2, &d), -1);
    assert_int_equal(lwc_last_error(c)->status, 400);
    assert_string_equal(lwc_last_error(c)->field, "rank");
    /* refused before sending: not finite, a bad job id, too small a buffer */
    double bad[2] = {NAN, 1};
    lwc_report rb = {.rank = 0, .step = 0, .epoch = -1, .n_tasks = 2, .losses = bad, .wait_ms = -1};
    assert_int_equal(lwc_report_post(c, "c-err", &rb, w, 2, &d), -1);
    assert_int_equal(lwc_last_error(c)->status, 0);
    assert_string_equal(lwc_last_error(c)->code, "invalid_argument");
    assert_string_equal(lwc_last_error(c)->field, "losses");
    assert_int_equal(lwc_weights(c, "no/such job", w, 2, &d), -1);
    assert_string_equal(lwc_last_error(c)->code, "invalid_argument");
    lwc_report ok = {.rank = 0, .step = 0, .epoch = -1, .n_tasks = 2, .losses = L, .wait_ms = -1};
    assert_int_equal(lwc_report_post(c, "c-err", &ok, w, 1, &d), -1);
    assert_string_equal(lwc_last_error(c)->field, "weights");
    /* a success clears the error */
    assert_int_equal(lwc_weights(c, "c-err", w, 2, &d), 0);
    assert_int_equal(lwc_last_error(c)->status, 0);
    assert_string_equal(lwc_last_error(c)->code, "");
    lwc_free(c);
}

static void test_no_daemon_is_a_transport_error(void **state)
{
    (void)state;
    if (!base_url[0])
        skip();
    /* a port nobody listens on: bind one, then close it */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
    lwc *c = lwc_new(url, "secret-token", 2000);
    assert_non_null(c);
    double w[2];
    lwc_decision d;
    time_t t0 = time(NULL);
    assert_int_equal(lwc_weights(c, "j", w, 2, &d), -1); /* retried, bounded */
    assert_true(time(NULL) - t0 < 10);
    assert_int_equal(lwc_last_error(c)->status, 0);
    assert_string_equal(lwc_last_error(c)->code, "transport");
    lwc_free(c);
}

static void test_tokens_and_tls(void **state)
{
    (void)state;
    if (!auth_url[0])
        skip();
    double L[2] = {1.0, 2.0}, w[2];
    lwc_decision d;
    const char *tasks[] = {"a", "b"};
    /* no token ("" is none, whatever the environment says) */
    lwc *c = lwc_new(auth_url, "", 10000);
    assert_non_null(c);
    assert_int_equal(lwc_set_cafile(c, cafile), 0);
    assert_int_equal(lwc_weights(c, "c-tls", w, 2, &d), -1);
    assert_int_equal(lwc_last_error(c)->status, 401);
    assert_string_equal(lwc_last_error(c)->code, "unauthorized");
    assert_string_equal(lwc_last_error(c)->field, "Authorization");
    lwc_free(c);
    /* the admin token over TLS */
    c = lwc_new(auth_url, ADMIN_TOKEN, 10000);
    assert_non_null(c);
    assert_int_equal(lwc_set_cafile(c, cafile), 0);
    assert_int_equal(lwc_create_job(c, "c-tls", tasks, 2, "ew", 1, NULL), 0);
    lwc_report r = {.rank = 0, .step = 0, .epoch = -1, .n_tasks = 2, .losses = L, .wait_ms = -1};
    assert_int_equal(lwc_report_post(c, "c-tls", &r, w, 2, &d), 0);
    assert_string_equal(d.status, "decided");
    lwc_free(c);
    /* a reader from the environment: may read, may not delete */
    setenv("LOSSWEIGHT_TOKEN", READER_TOKEN, 1);
    c = lwc_new(auth_url, NULL, 10000);
    unsetenv("LOSSWEIGHT_TOKEN");
    assert_non_null(c);
    assert_int_equal(lwc_set_cafile(c, cafile), 0);
    assert_int_equal(lwc_weights(c, "c-tls", w, 2, &d), 0);
    assert_int_equal(d.step, 0);
    assert_int_equal(lwc_delete_job(c, "c-tls"), -1);
    assert_int_equal(lwc_last_error(c)->status, 403);
    assert_string_equal(lwc_last_error(c)->code, "forbidden");
    lwc_free(c);
    /* without the CA: the certificate does not verify (not retried) */
    c = lwc_new(auth_url, ADMIN_TOKEN, 10000);
    assert_non_null(c);
    time_t t0 = time(NULL);
    assert_int_equal(lwc_weights(c, "c-tls", w, 2, &d), -1);
    assert_true(time(NULL) - t0 < 5);
    assert_int_equal(lwc_last_error(c)->status, 0);
    assert_string_equal(lwc_last_error(c)->code, "transport");
    lwc_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_report_and_read_weights),
        cmocka_unit_test(test_two_ranks_meet_at_the_barrier),
        cmocka_unit_test(test_gram_report),
        cmocka_unit_test(test_export_and_restore_state),
        cmocka_unit_test(test_errors_carry_status_code_and_field),
        cmocka_unit_test(test_no_daemon_is_a_transport_error),
        cmocka_unit_test(test_tokens_and_tls),
    };
    return cmocka_run_group_tests(tests, start_daemon, teardown);
}
