/*
 * check.c -- `lossweight check DATA_DIR`: will this lossweightd data
 * directory recover, and what is in it? For an operator before a restart,
 * after copying a backup, after a disk incident -- without starting the
 * daemon.
 *
 * It runs the daemon's own recovery (server/recovery.c: which files, in
 * which order, when the directory is refused; server/persist.c: what each
 * file's bytes amount to; and what they drive, steps.c, state.c, the
 * library) into a job table of its own, with hooks that only take notes:
 * where lossweightd would truncate a torn tail, cut, refuse or unlink, this
 * says so and changes nothing. Files are opened O_RDONLY and mapped
 * PROT_READ; LOCK is not created. What the daemon's HTTP side would provide
 * comes from server/recovery_stubs.c.
 *
 * Recovery depends on three of the daemon's limits: a job beyond
 * --max-tasks or --max-world does not load, and --history bounds the
 * decided steps kept; check takes the same flags with the same defaults.
 *
 * A running daemon's directory can be checked too (its LOCK is only
 * probed: flock LOCK_EX|LOCK_NB on a read-only descriptor, released at
 * once); the newest bytes may then still be changing, and a file removed
 * by a snapshot between the listing and the reading makes check read the
 * directory again.
 */
#include "check.h"

#include "crc32c.h"
#include "jobs.h"
#include "recovery.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LIVE_RETRIES 5              /* a running daemon removed a file we listed */

enum { V_OK, V_TORN, V_CORRUPT, V_UNREADABLE };
static const char *const verdict_names[] = {"ok", "torn tail", "corrupt", "unreadable"};

typedef struct seg_note {
    char *path;
    uint64_t no;
    size_t bytes;
    uint64_t records;
    persist_outcome outcome;
    size_t off;
} seg_note;

typedef struct file_note {
    char *path;
    uint64_t off;
    const char *why; /* static */
} file_note;

/* What recovery found, as the hooks saw it. */
typedef struct notes {
    char *snap_path;
    uint64_t snap_jobs;
    file_note *skipped; /* invalid snapshots, newest first */
    size_t nskipped;
    seg_note *segs;
    size_t nsegs;
    file_note *stale;
    size_t nstale;
    int verdict;
    /* V_TORN */
    char *torn_path;
    uint64_t torn_off, torn_bytes;
    const char *torn_why;
    /* V_CORRUPT */
    char *bad_path;
    uint64_t bad_off;
    char *bad_why, *bad_detail;
    int cuttable;
    /* V_UNREADABLE */
    char *io_path;
    const char *io_op;
    int io_err;
} notes;

static void *xalloc(void *p)
{
    if (!p) {
        fputs("lossweight: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s) { return xalloc(strdup(s ? s : "")); }

static void notes_free(notes *n)
{
    free(n->snap_path);
    for (size_t i = 0; i < n->nskipped; i++)
        free(n->skipped[i].path);
    free(n->skipped);
    for (size_t i = 0; i < n->nsegs; i++)
        free(n->segs[i].path);
    free(n->segs);
    for (size_t i = 0; i < n->nstale; i++)
        free(n->stale[i].path);
    free(n->stale);
    free(n->torn_path);
    free(n->bad_path);
    free(n->bad_why);
    free(n->bad_detail);
    free(n->io_path);
    memset(n, 0, sizeof *n);
}

static void add_file(file_note **v, size_t *n, const char *path, uint64_t off, const char *why)
{
    *v = xalloc(realloc(*v, (*n + 1) * sizeof **v));
    (*v)[(*n)++] = (file_note){xstrdup(path), off, why};
}

/* ---- the hooks: notes only, nothing on disk ---- */

static void on_refuse(void *ctx, const char *path, uint64_t off, const char *why,
                      const char *detail, int cuttable)
{
    notes *n = ctx;
    n->verdict = V_CORRUPT;
    n->bad_path = xstrdup(path);
    n->bad_off = off;
    n->bad_why = xstrdup(why);
    n->bad_detail = detail && detail[0] ? xstrdup(detail) : NULL;
    n->cuttable = cuttable;
}

static void on_io_error(void *ctx, const char *op, const char *path, int err)
{
    notes *n = ctx;
    n->verdict = V_UNREADABLE;
    free(n->io_path);
    n->io_path = xstrdup(path);
    n->io_op = op;
    n->io_err = err;
}

static void on_snapshot_invalid(void *ctx, const char *path, const persist_result *r)
{
    notes *n = ctx;
    add_file(&n->skipped, &n->nskipped, path, r->off, r->why);
}

static void on_snapshot_loaded(void *ctx, const char *path, const persist_result *r)
{
    notes *n = ctx;
    n->snap_path = xstrdup(path);
    n->snap_jobs = r->records;
}

static void on_segment_done(void *ctx, const char *path, uint64_t no, size_t size,
                            const persist_result *r)
{
    notes *n = ctx;
    n->segs = xalloc(realloc(n->segs, (n->nsegs + 1) * sizeof *n->segs));
    n->segs[n->nsegs++] = (seg_note){xstrdup(path), no, size, r->records, r->outcome, r->off};
    if (r->outcome == PERSIST_TORN || r->outcome == PERSIST_TORN_HEADER) {
        n->verdict = V_TORN;
        n->torn_path = xstrdup(path);
        n->torn_off = r->outcome == PERSIST_TORN ? r->off : 0;
        n->torn_bytes = size - n->torn_off;
        n->torn_why = r->why;
    }
}

static void on_stale(void *ctx, const char *path, int why)
{
    notes *n = ctx;
    add_file(&n->stale, &n->nstale, path, 0,
             why == RECOVERY_STALE_TMP ? "an unfinished snapshot"
             : why == RECOVERY_STALE_OLD ? "older than the snapshot" : "after a cut");
}

/* ---- the lock ---- */

/* Is the file (dev, ino) flock()ed by some process? Read from /proc/locks
 * ("N: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE START END", device numbers
 * in hex), so that the check never takes the lock itself: a daemon starting
 * at that moment would find it taken and exit. 1: held, 0: not, -1: cannot
 * tell (no /proc/locks). */
static int flocked(dev_t dev, ino_t ino)
{
    FILE *f = fopen("/proc/locks", "re");
    char line[256], type[16];
    unsigned maj, min;
    unsigned long long inode;
    int held = 0;
    if (!f)
        return -1;
    while (!held && fgets(line, sizeof line, f))
        held = !strstr(line, "->") && /* a waiter, not a holder */
               sscanf(line, "%*d: %15s %*s %*s %*d %x:%x:%llu", type, &maj, &min, &inode) == 4 &&
               strcmp(type, "FLOCK") == 0 && makedev(maj, min) == dev &&
               inode == (unsigned long long)ino;
    fclose(f);
    return held;
}

/* Is a daemon holding dir/LOCK? 1 with its pid (as LOCK says) in pid, 0
 * not. Read-only: LOCK is not created, and not locked either unless
 * /proc/locks is missing (then a lock we get is dropped at once). */
static int probe_lock(const char *dir, char *pid, size_t pidlen)
{
    char path[PATH_MAX + 16];
    struct stat st;
    snprintf(path, sizeof path, "%s/LOCK", dir);
    pid[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    int held = fstat(fd, &st) == 0 ? flocked(st.st_dev, st.st_ino) : -1;
    if (held < 0) {
        held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        if (!held)
            flock(fd, LOCK_UN);
    }
    if (held) {
        ssize_t k = pread(fd, pid, pidlen - 1, 0);
        pid[k > 0 ? k : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (!pid[0])
            snprintf(pid, pidlen, "unknown");
    }
    close(fd);
    return held;
}

/* ---- output ---- */

static const char *base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static const char *outcome_name(persist_outcome o)
{
    switch (o) {
    case PERSIST_OK: return "ok";
    case PERSIST_TORN: return "torn tail";
    case PERSIST_TORN_HEADER: return "torn header";
    case PERSIST_BAD_HEADER: return "bad header";
    case PERSIST_CORRUPT: return "corrupt";
    default: return "invalid";
    }
}

typedef struct totals {
    uint64_t bytes, kept, decided, open;
} totals;

static totals count(const notes *n, lwd_job **v, size_t nj)
{
    totals t = {0, 0, 0, 0};
    for (size_t i = 0; i < n->nsegs; i++)
        t.bytes += n->segs[i].bytes;
    for (size_t i = 0; i < nj; i++) {
        t.kept += v[i]->hist.len;
        t.decided += v[i]->n_decided;
        t.open += v[i]->n_open;
    }
    return t;
}

/* "1 job", "2 jobs" */
static const char *s_(uint64_t n) { return n == 1 ? "" : "s"; }

static void print_text(const char *dir, const char *pid, const notes *n,
                       const recovery_result *res, lwd_job **v, size_t nj)
{
    totals t = count(n, v, nj);
    printf("data directory: %s\n", dir);
    if (pid)
        printf("in use by a running daemon (pid %s from LOCK): the newest bytes may still be "
               "changing\n",
               pid);
    for (size_t i = 0; i < n->nskipped; i++)
        printf("snapshot skipped: %s (invalid at offset %llu: %s)\n", base(n->skipped[i].path),
               (unsigned long long)n->skipped[i].off, n->skipped[i].why);
    if (n->snap_path)
        printf("snapshot: %s (%llu job%s)\n", base(n->snap_path),
               (unsigned long long)n->snap_jobs, s_(n->snap_jobs));
    else
        printf("snapshot: none\n");
    printf("segments replayed: %zu\n", n->nsegs);
    for (size_t i = 0; i < n->nsegs; i++) {
        const seg_note *s = &n->segs[i];
        printf("  %s  %llu record%s, %zu bytes", base(s->path), (unsigned long long)s->records,
               s_(s->records), s->bytes);
        if (s->outcome != PERSIST_OK)
            printf(" (%s at offset %zu)", outcome_name(s->outcome),
                   s->outcome == PERSIST_TORN_HEADER ? (size_t)0 : s->off);
        putchar('\n');
    }
    printf("jobs: %zu%s\n", nj,
           nj && n->verdict >= V_CORRUPT ? " (as far as recovery got before it stopped)" : "");
    for (size_t i = 0; i < nj; i++) {
        const lwd_job *j = v[i];
        printf("  %s  method %s, tasks %zu, world_size %d, ", j->id, lw_job_method(j->lw)->name,
               j->T, j->world);
        if (j->hist.len)
            printf("decided steps %lld..%lld (%zu kept, %llu decided)",
                   (long long)hist_at(&j->hist, 0)->step, (long long)j->last_decided, j->hist.len,
                   (unsigned long long)j->n_decided);
        else
            printf("decided steps none");
        printf(", open steps %zu\n", j->n_open);
    }
    printf("total: %zu job%s, %llu decided step%s kept, %llu open step%s; %llu record%s in "
           "%zu segment%s (%llu bytes)\n",
           nj, s_(nj), (unsigned long long)t.kept, s_(t.kept), (unsigned long long)t.open,
           s_(t.open), (unsigned long long)res->records, s_(res->records), n->nsegs,
           s_(n->nsegs), (unsigned long long)t.bytes);
    for (size_t i = 0; i < n->nstale; i++)
        printf("stale: %s (%s): lossweightd would remove it\n", base(n->stale[i].path),
               n->stale[i].why);
    if (!n->snap_path && !n->nsegs && !n->nskipped && n->verdict == V_OK)
        printf("note: no snapshot and no journal here: lossweightd would start with no jobs\n");
    switch (n->verdict) {
    case V_OK: printf("verdict: ok (recovers as is)\n"); break;
    case V_TORN:
        printf("verdict: torn tail: lossweightd would drop %llu bytes at %s offset %llu (%s) on "
               "start and log it; the records before it recover\n",
               (unsigned long long)n->torn_bytes, n->torn_path,
               (unsigned long long)n->torn_off, n->torn_why);
        break;
    case V_CORRUPT:
        printf("verdict: corrupt: %s offset %llu: %s%s%s\n", n->bad_path,
               (unsigned long long)n->bad_off, n->bad_why, n->bad_detail ? ": " : "",
               n->bad_detail ? n->bad_detail : "");
        if (n->cuttable)
            printf("lossweightd would refuse to start. --truncate-corrupt would keep what comes "
                   "before offset %llu (the jobs above), copy the rest to %s.corrupt-%llu and "
                   "move later segments aside\n",
                   (unsigned long long)n->bad_off, base(n->bad_path),
                   (unsigned long long)n->bad_off);
        else
            printf("lossweightd would refuse to start (--truncate-corrupt does not apply: "
                   "this is not a damaged record in a segment)\n");
        break;
    default:
        printf("verdict: unreadable: %s: %s: %s\n", n->io_path, n->io_op, strerror(n->io_err));
        break;
    }
}

static cJSON *file_json(const char *path, uint64_t off, const char *why)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddItemToObject(o, "offset", json_int((int64_t)off));
    cJSON_AddStringToObject(o, "reason", why);
    return o;
}

static int print_json(const char *dir, const char *pid, const notes *n,
                      const recovery_result *res, lwd_job **v, size_t nj)
{
    totals t = count(n, v, nj);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "data_dir", dir);
    if (pid) {
        cJSON *u = cJSON_AddObjectToObject(o, "in_use");
        cJSON_AddStringToObject(u, "pid", pid);
        cJSON_AddStringToObject(u, "note", "in use by a running daemon: the newest bytes may "
                                           "still be changing");
    } else {
        cJSON_AddNullToObject(o, "in_use");
    }
    if (n->snap_path) {
        cJSON *s = cJSON_AddObjectToObject(o, "snapshot");
        cJSON_AddStringToObject(s, "file", n->snap_path);
        cJSON_AddItemToObject(s, "jobs", json_int((int64_t)n->snap_jobs));
    } else {
        cJSON_AddNullToObject(o, "snapshot");
    }
    cJSON *sk = cJSON_AddArrayToObject(o, "snapshots_skipped");
    for (size_t i = 0; i < n->nskipped; i++)
        cJSON_AddItemToArray(sk, file_json(n->skipped[i].path, n->skipped[i].off,
                                           n->skipped[i].why));
    cJSON *sg = cJSON_AddArrayToObject(o, "segments");
    for (size_t i = 0; i < n->nsegs; i++) {
        const seg_note *s = &n->segs[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "file", s->path);
        cJSON_AddItemToObject(e, "records", json_int((int64_t)s->records));
        cJSON_AddItemToObject(e, "bytes", json_int((int64_t)s->bytes));
        cJSON_AddStringToObject(e, "outcome", outcome_name(s->outcome));
        cJSON_AddItemToArray(sg, e);
    }
    cJSON *jv = cJSON_AddArrayToObject(o, "jobs");
    for (size_t i = 0; i < nj; i++) {
        const lwd_job *j = v[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", j->id);
        cJSON_AddStringToObject(e, "method", lw_job_method(j->lw)->name);
        cJSON_AddItemToObject(e, "tasks", json_int((int64_t)j->T));
        cJSON_AddItemToObject(e, "world_size", json_int(j->world));
        cJSON *d = cJSON_AddObjectToObject(e, "decided");
        if (j->hist.len) {
            cJSON_AddItemToObject(d, "first", json_int(hist_at(&j->hist, 0)->step));
            cJSON_AddItemToObject(d, "last", json_int(j->last_decided));
        } else {
            cJSON_AddNullToObject(d, "first");
            cJSON_AddNullToObject(d, "last");
        }
        cJSON_AddItemToObject(d, "kept", json_int((int64_t)j->hist.len));
        cJSON_AddItemToObject(d, "steps_decided", json_int((int64_t)j->n_decided));
        cJSON_AddItemToObject(e, "open_steps", json_int((int64_t)j->n_open));
        cJSON_AddItemToArray(jv, e);
    }
    cJSON *to = cJSON_AddObjectToObject(o, "totals");
    cJSON_AddItemToObject(to, "jobs", json_int((int64_t)nj));
    cJSON_AddItemToObject(to, "decided_kept", json_int((int64_t)t.kept));
    cJSON_AddItemToObject(to, "steps_decided", json_int((int64_t)t.decided));
    cJSON_AddItemToObject(to, "open_steps", json_int((int64_t)t.open));
    cJSON_AddItemToObject(to, "segments", json_int((int64_t)n->nsegs));
    cJSON_AddItemToObject(to, "records", json_int((int64_t)res->records));
    cJSON_AddItemToObject(to, "bytes", json_int((int64_t)t.bytes));
    cJSON *st = cJSON_AddArrayToObject(o, "stale");
    for (size_t i = 0; i < n->nstale; i++)
        cJSON_AddItemToArray(st, file_json(n->stale[i].path, 0, n->stale[i].why));
    cJSON_AddStringToObject(o, "verdict", verdict_names[n->verdict]);
    if (n->verdict == V_TORN) {
        cJSON *e = file_json(n->torn_path, n->torn_off, n->torn_why);
        cJSON_AddItemToObject(e, "bytes", json_int((int64_t)n->torn_bytes));
        cJSON_AddItemToObject(o, "torn_tail", e);
    } else {
        cJSON_AddNullToObject(o, "torn_tail");
    }
    if (n->verdict == V_CORRUPT) {
        cJSON *e = file_json(n->bad_path, n->bad_off, n->bad_why);
        if (n->bad_detail)
            cJSON_AddStringToObject(e, "detail", n->bad_detail);
        else
            cJSON_AddNullToObject(e, "detail");
        cJSON_AddBoolToObject(e, "truncate_corrupt_applies", n->cuttable);
        cJSON_AddItemToObject(o, "corrupt", e);
    } else {
        cJSON_AddNullToObject(o, "corrupt");
    }
    if (n->verdict == V_UNREADABLE) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "file", n->io_path);
        cJSON_AddStringToObject(e, "op", n->io_op);
        cJSON_AddStringToObject(e, "error", strerror(n->io_err));
        cJSON_AddItemToObject(o, "unreadable", e);
    } else {
        cJSON_AddNullToObject(o, "unreadable");
    }
    char *s = wire_print(o);
    cJSON_Delete(o);
    if (!s)
        return -1;
    puts(s);
    free(s);
    return 0;
}

/* ---- the command ---- */

static const char synopsis[] =
    "lossweight check [--json] [--max-tasks N] [--max-world N] [--history N] DATA_DIR";

void check_usage(FILE *f) { fprintf(f, "       %s\n", synopsis); }

static int usage_error(const char *fmt, const char *arg)
{
    fputs("lossweight check: ", stderr);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nusage: %s\n", synopsis);
    return 2;
}

/* A flag's number in [lo, hi]: "--flag N" or "--flag=N". 0, or -1. */
static int flag_value(int argc, char **argv, int *i, const char *name, unsigned long long lo,
                      unsigned long long hi, size_t *out, int *matched)
{
    size_t nl = strlen(name);
    const char *a = argv[*i], *val;
    *matched = 0;
    if (strncmp(a, name, nl) != 0 || (a[nl] != '\0' && a[nl] != '='))
        return 0;
    *matched = 1;
    if (a[nl] == '=')
        val = a + nl + 1;
    else if (*i + 1 < argc)
        val = argv[++*i];
    else
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(val, &end, 10);
    if (!*val || *val == '-' || *end || errno || v < lo || v > hi)
        return -1;
    *out = (size_t)v;
    return 0;
}

int cmd_check(int argc, char **argv)
{
    int json = 0;
    const char *dir_arg = NULL;
    size_t max_tasks = WIRE_DEFAULT_MAX_TASKS, max_world = WIRE_DEFAULT_MAX_WORLD,
           hist = LWD_DEFAULT_HISTORY;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int m;
        if (strcmp(a, "--json") == 0) {
            json = 1;
            continue;
        }
        if (flag_value(argc, argv, &i, "--max-tasks", 1, LW_MAX_TASKS, &max_tasks, &m) != 0) {
            char top[32];
            snprintf(top, sizeof top, "%d", LW_MAX_TASKS);
            return usage_error("--max-tasks is 1 to %s", top);
        }
        if (!m && flag_value(argc, argv, &i, "--max-world", 1, 1 << 20, &max_world, &m) != 0)
            return usage_error("--max-world is 1 to %s", "1048576");
        if (!m && flag_value(argc, argv, &i, "--history", 1, 1 << 24, &hist, &m) != 0)
            return usage_error("--history is 1 to %s", "16777216");
        if (m)
            continue;
        if (strcmp(a, "--") == 0) { /* the data directory follows, whatever its name */
            if (i + 2 != argc || dir_arg)
                return usage_error("%s", "\"--\" is followed by the data directory alone");
            dir_arg = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1])
            return usage_error("unknown option \"%s\"", a);
        if (dir_arg)
            return usage_error("one data directory only (\"%s\" is a second)", a);
        dir_arg = a;
    }
    if (!dir_arg)
        return usage_error("%s", "which data directory?");

    /* the directory as given, without trailing slashes (paths as the daemon names them) */
    char dir[PATH_MAX];
    size_t dl = strlen(dir_arg);
    while (dl > 1 && dir_arg[dl - 1] == '/')
        dl--;
    if (dl >= sizeof dir)
        return usage_error("\"%s\": path too long", dir_arg);
    memcpy(dir, dir_arg, dl);
    dir[dl] = '\0';
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        fprintf(stderr, "lossweight check: %s: %s\n", dir, strerror(errno));
        return 2;
    }
    if (!S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "lossweight check: %s: not a directory\n", dir);
        return 2;
    }

    /* what main.c sets up that recovery reads */
    crc32c_init();
    log_setup(LL_ERROR + 1, LOG_FMT_TEXT); /* recovery's own log lines: none here */
    srv.cfg.max_jobs = LWD_DEFAULT_MAX_JOBS; /* sizes the job table only */
    srv.cfg.max_tasks = max_tasks;
    srv.cfg.max_world = max_world;
    srv.cfg.history = hist;
    srv.cfg.max_ahead = LWD_DEFAULT_MAX_AHEAD;
    srv.limits.max_tasks = max_tasks;
    srv.limits.max_world_size = max_world;

    char pid[32];
    int in_use = probe_lock(dir, pid, sizeof pid);
    notes n;
    recovery_result res;
    const recovery_ops ops = {
        .refuse = on_refuse,
        .io_error = on_io_error,
        .snapshot_invalid = on_snapshot_invalid,
        .snapshot_loaded = on_snapshot_loaded,
        .segment_done = on_segment_done,
        .stale = on_stale,
    };
    for (int attempt = 0;; attempt++) {
        memset(&n, 0, sizeof n);
        recovery_ops o = ops;
        o.ctx = &n;
        recovery_run(dir, &o, &res);
        /* a running daemon's snapshot removed a file between listing and reading */
        if (!(in_use && n.verdict == V_UNREADABLE && n.io_err == ENOENT &&
              attempt + 1 < LIVE_RETRIES))
            break;
        notes_free(&n);
        jobs_free_all();
        usleep(50000);
    }

    size_t nj;
    lwd_job **v = jobs_sorted(&nj);
    if (!v && nj) {
        fputs("lossweight: out of memory\n", stderr);
        return 1;
    }
    int status = n.verdict == V_OK || n.verdict == V_TORN ? 0 : 1;
    if (json) {
        if (print_json(dir, in_use ? pid : NULL, &n, &res, v, nj) != 0) {
            fputs("lossweight: out of memory\n", stderr);
            status = 1;
        }
    } else {
        print_text(dir, in_use ? pid : NULL, &n, &res, v, nj);
    }
    if (n.verdict == V_CORRUPT)
        fprintf(stderr, "lossweight check: %s: corrupt at offset %llu (%s%s%s): lossweightd "
                        "would refuse to start%s\n",
                n.bad_path, (unsigned long long)n.bad_off, n.bad_why, n.bad_detail ? ": " : "",
                n.bad_detail ? n.bad_detail : "",
                n.cuttable ? " (--truncate-corrupt would cut there)" : "");
    else if (n.verdict == V_UNREADABLE)
        fprintf(stderr, "lossweight check: %s: %s: %s\n", n.io_path, n.io_op,
                strerror(n.io_err));
    free(v);
    jobs_free_all();
    notes_free(&n);
    if (fflush(stdout) != 0)
        status = 1;
    return status;
}
