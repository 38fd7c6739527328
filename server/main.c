/*
 * main.c -- lossweightd: flags, start-up, signals and an orderly shutdown.
 *
 * Start-up: parse flags, read the token file and the TLS certificate and
 * key if given (a bad one exits 2 before anything else happens), lock the
 * data directory and recover the jobs from
 * it (journal.c: newest snapshot, then the journal after it), print the
 * method table once, start libmicrohttpd under the libuv loop,
 * install signal watchers, then write --ready-file (atomically: a temporary
 * file renamed into place) with the address actually bound, and tell
 * systemd READY=1. The loop runs until shutdown.
 *
 * SIGTERM / SIGINT: stop accepting (MHD_quiesce_daemon), answer every
 * waiting rank 503, answer any new request on an open connection 503 with
 * "Connection: close", and once no request is in flight (answers waiting
 * for their group commit included) write a final snapshot and stop; after
 * --shutdown-timeout-ms at the latest, without the snapshot (the journal
 * holds everything anyway). A second signal stops at once.
 * Exit status 0. SIGHUP: reopen logs and read the token file again (a bad
 * file keeps the tokens in use). Signals are libuv watchers: the handlers
 * run on the loop like everything else.
 *
 * Beyond loopback (DESIGN.md, Security): an address that is not loopback
 * is refused unless there are tokens (--token-file) or --allow-remote
 * forces it; both cases without TLS get a warning in the log.
 */
#include "auth.h"
#include "jobs.h"
#include "journal.h"
#include "metrics.h"
#include "server.h"
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

lwd_server srv;

static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t shutdown_timer;
static int finishing;

uint64_t now_ms(void) { return (uv_hrtime() - srv.start_ns) / 1000000; }

/* ---- flags ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: lossweightd [options]\n"
            "\n"
            "Computes multi-task loss weights for training jobs over HTTP/JSON.\n"
            "\n"
            "  --listen ADDR:PORT        address to listen on (default 127.0.0.1:7070;\n"
            "                            port 0 picks a free one; IPv6 as [::1]:7070)\n"
            "  --ready-file FILE         once accepting, write the bound ADDR:PORT there\n"
            "  --data-dir DIR            where the journal and snapshots live (created)\n"
            "  --log-level LEVEL         debug, info (default), warn, error\n"
            "  --log-format FORMAT       text (key=value, default) or json\n"
            "  --max-body BYTES          largest request body (default 4M; K/M/G suffixes)\n"
            "  --max-jobs N              jobs held at once (default 1024)\n"
            "  --max-tasks N             tasks per job (default %d, at most %d)\n"
            "  --max-world N             ranks per job (default %d)\n"
            "  --max-connections N       open HTTP connections (default 1024)\n"
            "  --history N               decided steps kept per job (default 10000)\n"
            "  --max-ahead N             how far past the last decided step a report may\n"
            "                            run before it is refused 429 (default 1024)\n"
            "  --idle-timeout SECONDS    close idle keep-alive connections (default 300)\n"
            "  --shutdown-timeout-ms MS  SIGTERM: exit after at most this long (default 5000)\n"
            "  --fsync MODE              always (default: no answer before its journal\n"
            "                            record is on disk), batch (fdatasync every\n"
            "                            --fsync-interval-ms) or off (leave it to the OS)\n"
            "  --fsync-interval-ms MS    batch: how often to fdatasync (default 1000)\n"
            "  --snapshot-interval-s S   snapshot every S seconds if anything changed\n"
            "                            (default 300; 0: only by size and at shutdown)\n"
            "  --journal-max-bytes BYTES snapshot and start a new journal segment once the\n"
            "                            journal grows past this (default 64M; K/M/G)\n"
            "  --truncate-corrupt        start-up: where the journal is corrupt before its\n"
            "                            end, keep a copy of the rest and truncate there\n"
            "                            (default: refuse to start, naming file and offset)\n"
            "  --token-file FILE         bearer tokens, one per line: TOKEN ROLE [JOB_PREFIX]\n"
            "                            (ROLE admin, trainer or reader; '#' comments);\n"
            "                            every request but GET /healthz then needs\n"
            "                            Authorization: Bearer TOKEN. SIGHUP reads it again\n"
            "  --tls-cert FILE           serve HTTPS (TLS 1.2 and 1.3) with this PEM\n"
            "                            certificate (chain)...\n"
            "  --tls-key FILE            ...and this PEM private key (both or neither)\n"
            "  --allow-remote            listen beyond loopback without --token-file\n"
            "                            (refused otherwise: anyone who can connect could\n"
            "                            create, change and delete jobs)\n"
            "  --help, --version\n",
            WIRE_DEFAULT_MAX_TASKS, LW_MAX_TASKS, WIRE_DEFAULT_MAX_WORLD);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, int suffixes, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (suffixes && *end) {
        unsigned shift = 0;
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return -1;
        }
        if (v > (~0ull >> shift))
            return -1;
        v <<= shift;
        end++;
    }
    if (*end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_listen(const char *s, lwd_config *cfg)
{
    const char *colon;
    size_t hl;
    uint64_t port;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -1;
        hl = (size_t)(rb - s - 1);
        if (hl == 0 || hl >= sizeof cfg->listen_host)
            return -1;
        memcpy(cfg->listen_host, s + 1, hl);
        cfg->listen_host[hl] = '\0';
        cfg->ipv6 = 1;
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
        if (hl == 0 || hl >= sizeof cfg->listen_host)
            return -1;
        memcpy(cfg->listen_host, s, hl);
        cfg->listen_host[hl] = '\0';
        cfg->ipv6 = 0;
    }
    if (strcmp(cfg->listen_host, "localhost") == 0)
        snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    if (parse_u64(colon + 1, 0, 65535, 0, &port) != 0)
        return -1;
    cfg->listen_port = (int)port;
    return 0;
}

enum {
    OPT_LISTEN = 256, OPT_READY, OPT_DATA, OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_MAX_BODY,
    OPT_MAX_JOBS, OPT_MAX_TASKS, OPT_MAX_WORLD, OPT_MAX_CONN, OPT_HISTORY, OPT_MAX_AHEAD,
    OPT_IDLE, OPT_SHUTDOWN, OPT_HELP, OPT_VERSION, OPT_ALLOW_REMOTE,
    OPT_FSYNC, OPT_FSYNC_INTERVAL, OPT_SNAP_INTERVAL, OPT_JOURNAL_MAX, OPT_TRUNCATE_CORRUPT,
    OPT_TOKEN_FILE, OPT_TLS_CERT, OPT_TLS_KEY,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"ready-file", required_argument, NULL, OPT_READY},
    {"data-dir", required_argument, NULL, OPT_DATA},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"max-body", required_argument, NULL, OPT_MAX_BODY},
    {"max-jobs", required_argument, NULL, OPT_MAX_JOBS},
    {"max-tasks", required_argument, NULL, OPT_MAX_TASKS},
    {"max-world", required_argument, NULL, OPT_MAX_WORLD},
    {"max-connections", required_argument, NULL, OPT_MAX_CONN},
    {"history", required_argument, NULL, OPT_HISTORY},
    {"max-ahead", required_argument, NULL, OPT_MAX_AHEAD},
    {"idle-timeout", required_argument, NULL, OPT_IDLE},
    {"shutdown-timeout-ms", required_argument, NULL, OPT_SHUTDOWN},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"fsync-interval-ms", required_argument, NULL, OPT_FSYNC_INTERVAL},
    {"snapshot-interval-s", required_argument, NULL, OPT_SNAP_INTERVAL},
    {"journal-max-bytes", required_argument, NULL, OPT_JOURNAL_MAX},
    {"truncate-corrupt", no_argument, NULL, OPT_TRUNCATE_CORRUPT},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {NULL, 0, NULL, 0},
};

/* 127.0.0.0/8, ::1 and ::ffff:127.x. An address that does not parse counts
 * as loopback here: http_start() refuses it with its own message. */
static int listen_is_loopback(const lwd_config *cfg)
{
    unsigned char a[16];
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char v6lo[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (!cfg->ipv6)
        return inet_pton(AF_INET, cfg->listen_host, a) != 1 || a[0] == 127;
    if (inet_pton(AF_INET6, cfg->listen_host, a) != 1)
        return 1;
    return memcmp(a, v6lo, 16) == 0 || (memcmp(a, v4mapped, 12) == 0 && a[12] == 127);
}

/* 0: run; 1: exit 0 (--help, --version); -1: exit 2. */
static int parse_flags(int argc, char **argv, lwd_config *cfg)
{
    int c;
    uint64_t v;
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 7070;
    cfg->listen_fd = -1;
    cfg->log_level = LL_INFO;
    cfg->log_format = LOG_FMT_TEXT;
    cfg->max_body = (size_t)4 << 20;
    cfg->max_jobs = LWD_DEFAULT_MAX_JOBS;
    cfg->max_tasks = WIRE_DEFAULT_MAX_TASKS;
    cfg->max_world = WIRE_DEFAULT_MAX_WORLD;
    cfg->max_connections = 1024;
    cfg->history = LWD_DEFAULT_HISTORY;
    cfg->max_ahead = LWD_DEFAULT_MAX_AHEAD;
    cfg->idle_timeout_s = 300;
    cfg->shutdown_timeout_ms = 5000;
    cfg->fsync_mode = JOURNAL_FSYNC_ALWAYS;
    cfg->fsync_interval_ms = 1000;
    cfg->snapshot_interval_s = 300;
    cfg->journal_max_bytes = (uint64_t)64 << 20;

    opterr = 0;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        const char *bad = NULL;
        switch (c) {
        case OPT_LISTEN:
            if (parse_listen(optarg, cfg) != 0)
                bad = "--listen wants ADDR:PORT (e.g. 127.0.0.1:7070 or [::1]:0)";
            cfg->listen_set = 1;
            break;
        case OPT_READY: cfg->ready_file = optarg; break;
        case OPT_DATA: cfg->data_dir = optarg; break;
        case OPT_LOG_LEVEL:
            if ((cfg->log_level = log_parse_level(optarg)) < 0)
                bad = "--log-level is debug, info, warn or error";
            break;
        case OPT_LOG_FORMAT:
            if ((cfg->log_format = log_parse_format(optarg)) < 0)
                bad = "--log-format is text or json";
            break;
        case OPT_MAX_BODY:
            if (parse_u64(optarg, 64, (uint64_t)1 << 30, 1, &v) != 0)
                bad = "--max-body is 64 bytes to 1G";
            cfg->max_body = (size_t)v;
            break;
        case OPT_MAX_JOBS:
            if (parse_u64(optarg, 1, 1 << 20, 0, &v) != 0)
                bad = "--max-jobs is 1 to 1048576";
            cfg->max_jobs = (size_t)v;
            break;
        case OPT_MAX_TASKS:
            if (parse_u64(optarg, 1, LW_MAX_TASKS, 0, &v) != 0)
                bad = "--max-tasks is 1 to 1024";
            cfg->max_tasks = (size_t)v;
            break;
        case OPT_MAX_WORLD:
            if (parse_u64(optarg, 1, 1 << 20, 0, &v) != 0)
                bad = "--max-world is 1 to 1048576";
            cfg->max_world = (size_t)v;
            break;
        case OPT_MAX_CONN:
            if (parse_u64(optarg, 1, 1 << 20, 0, &v) != 0)
                bad = "--max-connections is 1 to 1048576";
            cfg->max_connections = (size_t)v;
            break;
        case OPT_HISTORY:
            if (parse_u64(optarg, 1, (uint64_t)1 << 24, 0, &v) != 0)
                bad = "--history is 1 to 16777216";
            cfg->history = (size_t)v;
            break;
        case OPT_MAX_AHEAD:
            if (parse_u64(optarg, 1, (uint64_t)1 << 24, 0, &v) != 0)
                bad = "--max-ahead is 1 to 16777216";
            cfg->max_ahead = (int64_t)v;
            break;
        case OPT_IDLE:
            if (parse_u64(optarg, 1, 86400, 0, &v) != 0)
                bad = "--idle-timeout is 1 to 86400 seconds";
            cfg->idle_timeout_s = (unsigned)v;
            break;
        case OPT_SHUTDOWN:
            if (parse_u64(optarg, 0, 600000, 0, &v) != 0)
                bad = "--shutdown-timeout-ms is 0 to 600000";
            cfg->shutdown_timeout_ms = (unsigned)v;
            break;
        case OPT_ALLOW_REMOTE: cfg->allow_remote = 1; break;
        case OPT_TOKEN_FILE: cfg->token_file = optarg; break;
        case OPT_TLS_CERT: cfg->tls_cert = optarg; break;
        case OPT_TLS_KEY: cfg->tls_key = optarg; break;
        case OPT_FSYNC:
            if (strcmp(optarg, "always") == 0)
                cfg->fsync_mode = JOURNAL_FSYNC_ALWAYS;
            else if (strcmp(optarg, "batch") == 0)
                cfg->fsync_mode = JOURNAL_FSYNC_BATCH;
            else if (strcmp(optarg, "off") == 0)
                cfg->fsync_mode = JOURNAL_FSYNC_OFF;
            else
                bad = "--fsync is always, batch or off";
            break;
        case OPT_FSYNC_INTERVAL:
            if (parse_u64(optarg, 1, 600000, 0, &v) != 0)
                bad = "--fsync-interval-ms is 1 to 600000";
            cfg->fsync_interval_ms = (unsigned)v;
            break;
        case OPT_SNAP_INTERVAL:
            if (parse_u64(optarg, 0, 86400 * 7, 0, &v) != 0)
                bad = "--snapshot-interval-s is 0 to 604800";
            cfg->snapshot_interval_s = (unsigned)v;
            break;
        case OPT_JOURNAL_MAX:
            if (parse_u64(optarg, 0, (uint64_t)1 << 40, 1, &v) != 0)
                bad = "--journal-max-bytes is 0 (no limit) to 1T";
            cfg->journal_max_bytes = v;
            break;
        case OPT_TRUNCATE_CORRUPT: cfg->truncate_corrupt = 1; break;
        case OPT_HELP: usage(stdout); return 1;
        case OPT_VERSION:
            printf("lossweightd %s (libmicrohttpd %s%s, libuv %s, cJSON %s)\n", LWD_VERSION,
                   MHD_get_version(), tls_supported() ? " with TLS" : " without TLS",
                   uv_version_string(), cJSON_Version());
            return 1;
        default:
            fprintf(stderr, "lossweightd: unknown option %s\n", argv[optind - 1]);
            usage(stderr);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "lossweightd: %s (got \"%s\")\n", bad, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "lossweightd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        fprintf(stderr, "lossweightd: --tls-cert and --tls-key go together (give both)\n");
        return -1;
    }
    return 0;
}

/* Socket activation (notify.c): take the socket systemd passed, if any, and
 * make its address the one we listen on; an explicit --listen that differs
 * is overridden, and said so. Then DESIGN.md's Security rule, on the address
 * really listened on: beyond loopback only with tokens, or when forced.
 * 0, or -1 (message on stderr: exit 2). */
static int resolve_listen(lwd_config *cfg)
{
    char err[256];
    struct sockaddr_storage ss;
    int fd = systemd_listen_fd(&ss, err, sizeof err);
    if (fd == -2) {
        fprintf(stderr, "lossweightd: %s\n", err);
        return -1;
    }
    if (fd >= 0) {
        char host[INET6_ADDRSTRLEN] = "";
        int port = 0, v6 = 0;
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port), v6 = 1;
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        }
        if (cfg->listen_set && (strcmp(host, cfg->listen_host) != 0 || port != cfg->listen_port ||
                                v6 != cfg->ipv6)) {
            log_begin(LL_WARN, "listen_overridden");
            log_str("listen", cfg->listen_host);
            log_int("port", cfg->listen_port);
            log_str("msg", "--listen is ignored: systemd passed a listening socket (socket "
                           "activation), and its address is the one served");
            log_end();
        }
        snprintf(cfg->listen_host, sizeof cfg->listen_host, "%s", host);
        cfg->listen_port = port;
        cfg->ipv6 = v6;
        cfg->listen_fd = fd;
    }
    if (!cfg->token_file && !cfg->allow_remote && !listen_is_loopback(cfg)) {
        fprintf(stderr,
                "lossweightd: refusing to listen on %s: it is not a loopback address and there "
                "is no --token-file, so anyone who can connect could create, change and delete "
                "jobs; give --token-file (and --tls-cert/--tls-key), or --allow-remote to "
                "listen there without tokens anyway\n",
                cfg->listen_host);
        return -1;
    }
    return 0;
}

/* ---- ready file ---- */

static int write_ready_file(const char *path, const char *text)
{
    char tmp[4096];
    size_t n = strlen(text);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return -1;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, text, n);
    if (w != (ssize_t)n || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- shutdown ---- */

static void finish(void)
{
    if (finishing)
        return;
    finishing = 1;
    journal_halt(); /* a no-op after journal_shutdown's final snapshot */
    http_stop(); /* closes every connection: their waiters unlink */
    jobs_free_all();
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    uv_close((uv_handle_t *)&shutdown_timer, NULL);
}

void server_check_shutdown(void)
{
    /* Every answer is out (those waiting for a group commit count as in
     * flight): write the final snapshot, then stop. */
    if (srv.shutting_down && !finishing && srv.active_requests == 0)
        journal_shutdown(finish);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    (void)t;
    log_begin(LL_WARN, "shutdown_timeout");
    log_int("requests_in_flight", (long long)srv.active_requests);
    log_end();
    finish();
}

static void shutdown_begin(int signum)
{
    size_t n;
    srv.shutting_down = 1;
    log_begin(LL_INFO, "shutdown");
    log_str("signal", signum == SIGINT ? "SIGINT" : "SIGTERM");
    log_int("requests_in_flight", (long long)srv.active_requests);
    log_end();
    notify_systemd("STOPPING=1");
    http_quiesce();
    lwd_job **v = jobs_sorted(&n);
    for (size_t i = 0; v && i < n; i++)
        job_fail_waiters(v[i], 503, "shutting_down", "the server is shutting down");
    free(v);
    uv_timer_start(&shutdown_timer, on_shutdown_timeout, srv.cfg.shutdown_timeout_ms, 0);
    http_wakeup();
    server_check_shutdown();
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGHUP) {
        log_reopen();
        auth_reload();
        return;
    }
    if (srv.shutting_down) {
        log_msg(LL_WARN, "shutdown_now", "second signal: stopping without waiting");
        finish();
        return;
    }
    shutdown_begin(signum);
}

/* ---- main ---- */

int main(int argc, char **argv)
{
    int rc = parse_flags(argc, argv, &srv.cfg);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    log_setup(srv.cfg.log_level, srv.cfg.log_format);
    if (resolve_listen(&srv.cfg) != 0)
        return 2;
    /* Security material first: a bad file exits 2 before the data directory
     * is locked or anything listens. */
    if (srv.cfg.token_file && auth_start(srv.cfg.token_file) != 0)
        return 2;
    if (srv.cfg.tls_cert && tls_load(srv.cfg.tls_cert, srv.cfg.tls_key) != 0) {
        auth_stop();
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    srv.start_ns = uv_hrtime();
    srv.loop = uv_default_loop();
    srv.limits.max_tasks = srv.cfg.max_tasks;
    srv.limits.max_world_size = srv.cfg.max_world;

    if (metrics_init(route_count()) != 0) {
        log_msg(LL_ERROR, "out_of_memory", "metrics");
        return 1;
    }
    /* Lock the data directory and replay it (before listening). */
    if (journal_open() != 0)
        return 1;
    cJSON *methods = wire_methods_json();
    srv.methods_body = methods ? wire_print(methods) : NULL;
    cJSON_Delete(methods);
    if (!srv.methods_body) {
        log_msg(LL_ERROR, "out_of_memory", "method table");
        return 1;
    }
    srv.methods_len = strlen(srv.methods_body);

    if (http_start() != 0)
        return 1;
    uv_signal_init(srv.loop, &sig_term);
    uv_signal_init(srv.loop, &sig_int);
    uv_signal_init(srv.loop, &sig_hup);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_hup, on_signal, SIGHUP);
    uv_timer_init(srv.loop, &shutdown_timer);

    if (srv.cfg.ready_file) {
        char line[128];
        snprintf(line, sizeof line, "%s\n", srv.bound);
        if (write_ready_file(srv.cfg.ready_file, line) != 0) {
            log_begin(LL_ERROR, "ready_file_failed");
            log_str("path", srv.cfg.ready_file);
            log_str("error", strerror(errno));
            log_end();
            finish();
            uv_run(srv.loop, UV_RUN_DEFAULT);
            return 1;
        }
    }
    if (!listen_is_loopback(&srv.cfg) && !auth_enabled())
        log_msg(LL_WARN, "not_loopback",
                "listening beyond loopback without tokens (--allow-remote): anyone who can "
                "connect can create, change and delete jobs");
    else if (!listen_is_loopback(&srv.cfg) && !tls_enabled())
        log_msg(LL_WARN, "no_tls",
                "listening beyond loopback without TLS: bearer tokens and job data cross the "
                "network in clear text (--tls-cert, --tls-key)");
    log_begin(LL_INFO, "listening");
    log_str("addr", srv.bound);
    log_str("version", LWD_VERSION);
    log_str("scheme", tls_enabled() ? "https" : "http");
    log_str("auth", auth_enabled() ? "bearer" : "none");
    log_int("max_body", (long long)srv.cfg.max_body);
    log_int("history", (long long)srv.cfg.history);
    log_int("max_ahead", (long long)srv.cfg.max_ahead);
    log_end();
    {
        char st[160];
        snprintf(st, sizeof st, "READY=1\nSTATUS=listening on %s", srv.bound);
        notify_systemd(st);
    }

    uv_run(srv.loop, UV_RUN_DEFAULT);

    uv_loop_close(srv.loop);
    auth_stop();
    tls_free();
    free(srv.methods_body);
    metrics_free();
    journal_close();
    if (srv.cfg.ready_file)
        unlink(srv.cfg.ready_file);
    log_msg(LL_INFO, "stopped", "bye");
    return 0;
}
