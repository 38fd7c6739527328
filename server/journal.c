/*
 * journal.c -- the data directory: journal segments, group commit,
 * snapshots, recovery, the lock. (What records hold: persist.h/persist.c.)
 *
 * Files in --data-dir (numbers are 20 digits, so names sort numerically):
 *
 *   LOCK                      flock()ed while a daemon runs; holds its pid
 *   journal-N.lwj             segment N: a 16-byte header ("LWJOURN\1",
 *                             u64 N) then records, appended in order
 *   snapshot-N.lws            every job as of the start of segment N: a
 *                             header ("LWSNAPS\1", u64 N), one REC_SNAP_JOB
 *                             per job, REC_SNAP_END (invalid without it)
 *   *.tmp                     a snapshot being written (removed at start)
 *
 * The state is snapshot-S (or nothing) followed by segments S, S+1, ... in
 * order. A snapshot cuts the journal: on the loop, segment N+1 is created
 * and becomes the current one and every job is serialized (the snapshot is
 * exactly the records before segment N+1); on the thread pool the bytes go
 * to snapshot-(N+1).lws.tmp, fsync, rename, fsync of the directory, and
 * only then are older segments and snapshots unlinked. A crash at any point
 * leaves either the old snapshot with all the segments after it, or the new
 * one (Redis's AOF rewrite and rdbSave, reduced to their bones).
 *
 * Appending. journal_append() encodes the record and pwrite()s it at the
 * end of the current segment right away, on the loop thread: a write to the
 * page cache, so a failure (disk full, RLIMIT_FSIZE, EIO) is known before
 * the caller changes anything, and the caller answers 503. A failed or
 * short write is cut back with ftruncate to the last whole record; if even
 * that fails, appends are refused until a later ftruncate succeeds. The
 * file never holds a partial record followed by a whole one.
 *
 * Group commit (--fsync always). Byte counts appended so far are LSNs. At
 * the end of each loop turn (a uv_prepare_t: libuv's "before sleep") one
 * job goes to the thread pool: fdatasync of every segment with unsynced
 * bytes, and of the directory when a new segment's entry is not yet
 * durable. When it completes, the durable LSN becomes what was written when
 * it started, and http.c resumes the connections whose answers were
 * prepared at or below it (journal_wait_lsn). At most one such job is in
 * flight; records written meanwhile join the next. --fsync batch: the same
 * job every --fsync-interval-ms and answers do not wait; off: no fdatasync
 * except for snapshots and at shutdown. A failed fdatasync is fatal: the
 * kernel may have dropped the pages it could not write, so nothing about
 * the file can be trusted until a restart reads back what is really there;
 * the answers waiting on it were never sent (PostgreSQL's lesson).
 *
 * Recovery. Load the newest snapshot that checks out completely (every
 * record's CRC, the end record), replay the segments after it. A record
 * that fails its checks at offset X of the last segment, with no valid
 * record anywhere after it, is a torn tail: the file is truncated at X and
 * the daemon starts. Anything else (a bad record followed by valid ones, a
 * bad record in an earlier segment, a valid record that does not apply) is
 * corruption: the daemon names the file and offset and refuses to start,
 * unless --truncate-corrupt, which copies the bytes from X on to
 * FILE.corrupt-X, truncates there and moves later segments aside. What a
 * file's bytes amount to is decided by persist.c (persist_replay_segment,
 * persist_load_snapshot: bytes in, records applied, an outcome out, no I/O,
 * which the fuzz target tests/fuzz/fuzz_journal.c drives); which files are
 * read, in what order, and when the directory as a whole is refused, by
 * recovery.c (read-only; `lossweight check` runs the same code offline);
 * this file locks the directory and does what they say, through
 * recovery.c's hooks.
 *
 * Threads: everything runs on the loop thread except the work functions
 * (sync_work, snap_work), which touch only the file descriptors and bytes
 * handed to them.
 */
#include "journal.h"

#include "crc32c.h"
#include "jobs.h"
#include "persist.h"
#include "recovery.h"
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SEGS 8                 /* open segments: the current one and old ones not yet synced */
#define SNAP_RETRY_MS 5000         /* after a failed snapshot; doubling while they fail */
#define SNAP_RETRY_MAX_MS 300000
#define ERR_LOG_INTERVAL_MS 1000   /* write errors are logged at most this often */

typedef struct segment {
    int fd;
    uint64_t no;
    uint64_t written;  /* bytes in the file */
    uint64_t synced;   /* bytes known durable */
    int dir_synced;    /* its directory entry is durable */
    int busy;          /* a sync job holds its fd */
} segment;

typedef struct sync_job {
    uv_work_t req;
    int n;
    struct {
        int fd;
        uint64_t no, upto;
    } it[MAX_SEGS];
    int dirfd;      /* -1: the directory needs no fsync */
    uint64_t lsn;   /* durable once this completes */
    uint64_t ns;    /* time the syncs took */
    int err;
    const char *what;
} sync_job;

typedef struct snap_job {
    uv_work_t req;
    jbuf data;
    uint64_t no;
    size_t jobs;
    uint64_t t0, serialize_ns; /* the loop's part: serializing the jobs */
    int err;
    const char *what;
    int removed;
} snap_job;

static struct {
    int enabled;
    int replaying;
    int halted;       /* journal_halt: no more I/O from the loop */
    int closing;      /* journal_shutdown waiting for in-flight work */
    void (*shutdown_done)(void);
    char dir[PATH_MAX];
    int dirfd, lockfd;
    segment seg[MAX_SEGS];
    int nseg;         /* seg[nseg - 1] is the current segment */
    uint64_t lsn_written, lsn_durable;
    uint64_t since_snap, cut_bytes;
    uint64_t snapshot_no; /* the newest durable snapshot (0: none) */
    uint64_t records;
    jbuf rec;
    int broken;       /* a failed write could not be cut back */
    sync_job *sync;   /* in flight */
    snap_job *snap;   /* in flight */
    uint64_t snap_retry_at, snap_backoff_ms;
    uv_prepare_t prepare;
    uv_timer_t batch_timer, snap_timer;
    int handles;
    void (*durable_cb)(uint64_t);
    unsigned test_sync_delay_us; /* LWD_TEST_SYNC_DELAY_MS: tests widen the window */
    char err[256];
    uint64_t err_logged_at, err_suppressed;
    journal_stats st;
} J = {.dirfd = -1, .lockfd = -1};

/* ---- small helpers ---- */

static void seg_path(char *buf, size_t n, uint64_t no) { recovery_seg_path(buf, n, J.dir, no); }

static void snap_path(char *buf, size_t n, uint64_t no) { recovery_snap_path(buf, n, J.dir, no); }

static const char *base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* mkdir -p with mode 0700 for what we create. */
static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        buf[i] = c;
    }
    return 0;
}

static int pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
    const char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w, n -= (size_t)w, off += (uint64_t)w;
    }
    return 0;
}

static void log_io_error(const char *event, const char *what, const char *path, int e)
{
    log_begin(LL_ERROR, event);
    log_str("op", what);
    log_str("file", path);
    log_str("error", strerror(e));
    log_end();
}

/* ---- group commit ---- */

static void maybe_sync(void);
static void maybe_snapshot(const char *why);
static void shutdown_continue(void);

static segment *cur_seg(void) { return &J.seg[J.nseg - 1]; }

static segment *seg_by_no(uint64_t no)
{
    for (int i = 0; i < J.nseg; i++)
        if (J.seg[i].no == no)
            return &J.seg[i];
    return NULL;
}

/* Close segments before the current one that are synced, or covered by a
 * durable snapshot, and not in use by a sync job. */
static void close_old_segments(void)
{
    int k = 0;
    for (int i = 0; i < J.nseg; i++) {
        segment *s = &J.seg[i];
        int old = i < J.nseg - 1;
        if (old && !s->busy && (s->synced >= s->written || s->no < J.snapshot_no)) {
            close(s->fd);
            continue;
        }
        J.seg[k++] = *s;
    }
    J.nseg = k;
}

static void sync_work(uv_work_t *req)
{
    sync_job *j = req->data;
    uint64_t t0 = uv_hrtime();
    if (J.test_sync_delay_us)
        usleep(J.test_sync_delay_us);
    for (int i = 0; i < j->n; i++)
        if (fdatasync(j->it[i].fd) != 0) {
            j->err = errno;
            j->what = "fdatasync";
            return;
        }
    if (j->dirfd >= 0 && fsync(j->dirfd) != 0) {
        j->err = errno;
        j->what = "fsync of the directory";
    }
    j->ns = uv_hrtime() - t0;
}

static void sync_done(uv_work_t *req, int status)
{
    sync_job *j = req->data;
    (void)status;
    J.sync = NULL;
    for (int i = 0; i < j->n; i++) {
        segment *s = seg_by_no(j->it[i].no);
        if (s)
            s->busy = 0;
    }
    if (j->err) {
        char path[PATH_MAX + 64];
        seg_path(path, sizeof path, j->n ? j->it[0].no : 0);
        log_begin(LL_ERROR, "journal_sync_failed");
        log_str("op", j->what);
        log_str("dir", J.dir);
        log_str("error", strerror(j->err));
        log_str("msg", "what is on disk is unknown after a failed sync; exiting so that a "
                       "restart replays what is really there (no waiting answer was sent)");
        log_end();
        exit(1);
    }
    for (int i = 0; i < j->n; i++) {
        segment *s = seg_by_no(j->it[i].no);
        if (s && j->it[i].upto > s->synced)
            s->synced = j->it[i].upto;
        if (s && j->dirfd >= 0)
            s->dir_synced = 1;
    }
    if (j->lsn > J.lsn_durable)
        J.lsn_durable = j->lsn;
    J.st.syncs++;
    J.st.sync_ns += j->ns;
    free(j);
    close_old_segments();
    if (J.durable_cb)
        J.durable_cb(J.lsn_durable);
    if (!J.halted && srv.cfg.fsync_mode == JOURNAL_FSYNC_ALWAYS)
        maybe_sync();
    shutdown_continue();
}

/* Start a sync job if anything written is not yet durable and none is in
 * flight. */
static void start_sync(void)
{
    if (J.sync || J.halted)
        return;
    int need = 0, dir = 0;
    for (int i = 0; i < J.nseg; i++) {
        need |= J.seg[i].written > J.seg[i].synced;
        dir |= !J.seg[i].dir_synced;
    }
    if (!need && !dir)
        return;
    sync_job *j = calloc(1, sizeof *j);
    if (!j)
        return; /* the next turn tries again */
    for (int i = 0; i < J.nseg; i++) {
        segment *s = &J.seg[i];
        if (s->written <= s->synced && s->dir_synced)
            continue;
        j->it[j->n].fd = s->fd;
        j->it[j->n].no = s->no;
        j->it[j->n].upto = s->written;
        j->n++;
        s->busy = 1;
    }
    j->dirfd = dir ? J.dirfd : -1;
    j->lsn = J.lsn_written;
    j->req.data = j;
    J.sync = j;
    if (uv_queue_work(srv.loop, &j->req, sync_work, sync_done) != 0) {
        J.sync = NULL;
        for (int i = 0; i < j->n; i++)
            seg_by_no(j->it[i].no)->busy = 0;
        free(j);
    }
}

static void maybe_sync(void)
{
    if (J.lsn_written > J.lsn_durable || (J.nseg && !cur_seg()->dir_synced))
        start_sync();
}

static void on_prepare(uv_prepare_t *h)
{
    (void)h;
    if (J.halted)
        return;
    if (srv.cfg.fsync_mode == JOURNAL_FSYNC_ALWAYS)
        maybe_sync();
    if (srv.cfg.journal_max_bytes && J.since_snap > srv.cfg.journal_max_bytes)
        maybe_snapshot("journal_max_bytes");
}

static void on_batch_timer(uv_timer_t *t)
{
    (void)t;
    maybe_sync();
}

static void on_snap_timer(uv_timer_t *t)
{
    (void)t;
    if (J.since_snap > 0)
        maybe_snapshot("interval");
}

/* ---- snapshots ---- */

static void remove_older(uint64_t no, int *removed)
{
    DIR *d = opendir(J.dir);
    struct dirent *e;
    uint64_t n;
    if (!d)
        return;
    while ((e = readdir(d))) {
        if ((recovery_name_number(e->d_name, "journal-", ".lwj", &n) ||
             recovery_name_number(e->d_name, "snapshot-", ".lws", &n)) &&
            n < no && unlinkat(J.dirfd, e->d_name, 0) == 0)
            (*removed)++;
    }
    closedir(d);
}

/* On the thread pool: write, fsync, rename, fsync the directory, then
 * remove what the new snapshot makes obsolete. */
static void snap_work(uv_work_t *req)
{
    snap_job *j = req->data;
    char tmp[PATH_MAX + 80], path[PATH_MAX + 64];
    snap_path(path, sizeof path, j->no);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        j->err = errno, j->what = "open";
        return;
    }
    if (pwrite_all(fd, j->data.p, j->data.len, 0) != 0) {
        j->err = errno, j->what = "write";
    } else if (fsync(fd) != 0) {
        j->err = errno, j->what = "fsync";
    }
    if (close(fd) != 0 && !j->err)
        j->err = errno, j->what = "close";
    if (!j->err && rename(tmp, path) != 0)
        j->err = errno, j->what = "rename";
    if (j->err) {
        unlink(tmp);
        return;
    }
    if (fsync(J.dirfd) != 0) {
        j->err = errno, j->what = "fsync of the directory";
        return;
    }
    remove_older(j->no, &j->removed);
}

static void snap_done(uv_work_t *req, int status)
{
    snap_job *j = req->data;
    (void)status;
    J.snap = NULL;
    if (j->err) {
        J.since_snap += J.cut_bytes;
        J.snap_backoff_ms = J.snap_backoff_ms ? J.snap_backoff_ms * 2 : SNAP_RETRY_MS;
        if (J.snap_backoff_ms > SNAP_RETRY_MAX_MS)
            J.snap_backoff_ms = SNAP_RETRY_MAX_MS;
        J.snap_retry_at = uv_now(srv.loop) + J.snap_backoff_ms;
        J.st.snapshot_failures++;
        log_begin(LL_ERROR, "snapshot_failed");
        log_int("snapshot", (long long)j->no);
        log_str("op", j->what);
        log_str("dir", J.dir);
        log_str("error", strerror(j->err));
        log_str("msg", "the journal still holds everything; retrying later");
        log_int("retry_in_ms", (long long)J.snap_backoff_ms);
        log_end();
    } else {
        J.snapshot_no = j->no;
        J.snap_backoff_ms = 0;
        J.st.snapshots++;
        log_begin(LL_INFO, "snapshot");
        log_int("snapshot", (long long)j->no);
        log_int("jobs", (long long)j->jobs);
        log_int("bytes", (long long)j->data.len);
        log_int("files_removed", j->removed);
        log_int("serialize_ms", (long long)(j->serialize_ns / 1000000));
        log_int("ms", (long long)((uv_hrtime() - j->t0) / 1000000));
        log_end();
    }
    jbuf_free(&j->data);
    free(j);
    close_old_segments();
    shutdown_continue();
}

/* Create segment `no` with its header. The fd, or -1 (logged). */
static int segment_create(uint64_t no)
{
    char path[PATH_MAX + 64];
    uint8_t h[FILE_HDR];
    seg_path(path, sizeof path, no);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_io_error("journal_create_failed", "open", path, errno);
        return -1;
    }
    file_header(h, SEG_MAGIC, no);
    if (pwrite_all(fd, h, FILE_HDR, 0) != 0) {
        log_io_error("journal_create_failed", "write", path, errno);
        close(fd);
        unlink(path);
        return -1;
    }
    return fd;
}

/* Cut the journal and serialize every job: the bytes of snapshot-(N+1),
 * N+1 becoming the current segment. 0, or -1 (logged, nothing changed). */
static int snapshot_cut(snap_job **out)
{
    uint64_t no = cur_seg()->no + 1;
    snap_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->t0 = uv_hrtime();
    j->no = no;
    uint8_t h[FILE_HDR];
    file_header(h, SNAP_MAGIC, no);
    if (jbuf_put(&j->data, h, FILE_HDR) != 0 || persist_snapshot(&j->data, &j->jobs) != 0) {
        log_msg(LL_ERROR, "snapshot_failed", "out of memory serializing the jobs");
        jbuf_free(&j->data);
        free(j);
        return -1;
    }
    j->serialize_ns = uv_hrtime() - j->t0;
    int fd = segment_create(no);
    if (fd < 0) {
        jbuf_free(&j->data);
        free(j);
        return -1;
    }
    J.seg[J.nseg++] = (segment){.fd = fd, .no = no, .written = FILE_HDR};
    J.cut_bytes = J.since_snap;
    J.since_snap = 0;
    *out = j;
    return 0;
}

static void maybe_snapshot(const char *why)
{
    snap_job *j;
    if (J.snap || J.halted || J.closing || J.nseg >= MAX_SEGS ||
        uv_now(srv.loop) < J.snap_retry_at)
        return;
    if (snapshot_cut(&j) != 0) {
        J.snap_retry_at = uv_now(srv.loop) + SNAP_RETRY_MS;
        return;
    }
    if (log_enabled(LL_DEBUG)) {
        log_begin(LL_DEBUG, "snapshot_begin");
        log_int("snapshot", (long long)j->no);
        log_str("why", why);
        log_end();
    }
    j->req.data = j;
    J.snap = j;
    if (uv_queue_work(srv.loop, &j->req, snap_work, snap_done) != 0) {
        J.snap = NULL;
        j->err = EAGAIN, j->what = "queue";
        snap_done(&j->req, 0);
    }
}

/* ---- appending ---- */

static void append_failed(const char *what, int e)
{
    char path[PATH_MAX + 64];
    seg_path(path, sizeof path, cur_seg()->no);
    snprintf(J.err, sizeof J.err, "%s %.64s: %.128s", what, base(path), strerror(e));
    J.st.write_errors++;
    uint64_t now = uv_now(srv.loop);
    if (J.err_logged_at && now - J.err_logged_at < ERR_LOG_INTERVAL_MS) {
        J.err_suppressed++;
        return;
    }
    log_begin(LL_ERROR, "journal_write_failed");
    log_str("op", what);
    log_str("file", path);
    log_str("error", strerror(e));
    log_int("suppressed", (long long)J.err_suppressed);
    log_str("msg", J.broken ? "the file could not be cut back: refusing writes until it can"
                            : "cut back to the last whole record; the request is refused 503");
    log_end();
    J.err_logged_at = now;
    J.err_suppressed = 0;
}

int journal_append(const journal_event *ev)
{
    int skip;
    if (!J.enabled || J.replaying)
        return 0;
    if (J.halted) {
        snprintf(J.err, sizeof J.err, "the server is shutting down");
        return -1;
    }
    segment *s = cur_seg();
    if (J.broken) {
        if (ftruncate(s->fd, (off_t)s->written) != 0) {
            append_failed("truncating", errno);
            return -1;
        }
        J.broken = 0;
    }
    J.rec.len = 0;
    if (persist_encode(ev, &J.rec, &skip) != 0) {
        if (skip)
            return 0;
        snprintf(J.err, sizeof J.err, "out of memory encoding the record");
        return -1;
    }
    if (pwrite_all(s->fd, J.rec.p, J.rec.len, s->written) != 0) {
        int e = errno;
        if (ftruncate(s->fd, (off_t)s->written) != 0)
            J.broken = 1;
        append_failed("writing", e);
        return -1;
    }
    s->written += J.rec.len;
    J.lsn_written += J.rec.len;
    J.since_snap += J.rec.len;
    J.records++;
    if (J.rec.cap > ((size_t)1 << 20) && J.rec.len < ((size_t)1 << 16))
        jbuf_free(&J.rec); /* do not keep a restore document's buffer around */
    return 0;
}

void journal_get_stats(journal_stats *st)
{
    *st = J.st;
    st->enabled = J.enabled;
    st->records = J.records;
    st->bytes = J.lsn_written;
    st->bytes_since_snapshot = J.since_snap;
}

const char *journal_error(void) { return J.err[0] ? J.err : "unknown error"; }

int journal_replaying(void) { return J.replaying; }

uint64_t journal_wait_lsn(void)
{
    if (J.enabled && srv.cfg.fsync_mode == JOURNAL_FSYNC_ALWAYS && J.lsn_written > J.lsn_durable)
        return J.lsn_written;
    return 0;
}

void journal_set_durable_cb(void (*cb)(uint64_t)) { J.durable_cb = cb; }

/* ---- recovery ----
 *
 * recovery.c reads the directory (and persist.c each file); what it finds
 * is acted on here, through these hooks: truncate a torn tail, cut under
 * --truncate-corrupt, refuse, unlink what is stale, log. */

static void rec_io_error(void *ctx, const char *op, const char *path, int err)
{
    (void)ctx;
    log_io_error("recovery_failed", op, path, err);
}

static void rec_refuse(void *ctx, const char *path, uint64_t off, const char *why,
                       const char *detail, int cuttable)
{
    /* --truncate-corrupt helps only for a damaged record in a segment
     * (cuttable); a missing segment, a bad file header or a damaged snapshot
     * with no journal to fall back on needs the files put right by hand. */
    const char *advice =
        cuttable ? "--truncate-corrupt drops the journal from this offset on (a copy is kept)"
                 : "--truncate-corrupt cannot help here: restore the file from a backup or "
                   "move the data directory aside";
    (void)ctx;
    log_begin(LL_ERROR, "journal_corrupt");
    log_str("file", path);
    log_int("offset", (long long)off);
    log_str("error", why);
    if (detail)
        log_str("detail", detail);
    log_str("msg", cuttable ? "refusing to start: this is not a torn last write. Inspect the "
                              "file; --truncate-corrupt drops everything from this offset on "
                              "(a copy is kept)"
                            : "refusing to start: the directory cannot recover as it is; "
                              "--truncate-corrupt cannot help here");
    log_end();
    fprintf(stderr, "lossweightd: %s: corrupt at offset %llu (%s%s%s); refusing to start (%s)\n",
            path, (unsigned long long)off, why, detail ? ": " : "", detail ? detail : "", advice);
}

static void rec_snapshot_invalid(void *ctx, const char *path, const persist_result *r)
{
    (void)ctx;
    log_begin(LL_WARN, "snapshot_invalid");
    log_str("file", path);
    log_int("offset", (long long)r->off);
    log_str("error", r->why);
    log_end();
}

/* Cut path at off and make it durable. 0, or -1 (logged). */
static int cut_file(const char *path, uint64_t off)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)off) != 0 || fsync(fd) != 0) {
        log_io_error("recovery_failed", "ftruncate", path, errno);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* A torn last write: drop it. */
static int rec_torn(void *ctx, const char *path, size_t n, const persist_result *r)
{
    (void)ctx;
    if (cut_file(path, r->off) != 0)
        return -1;
    log_begin(LL_WARN, "torn_tail_dropped");
    log_str("file", path);
    log_int("offset", (long long)r->off);
    log_int("bytes", (long long)(n - r->off));
    log_str("reason", r->why);
    log_end();
    return 0;
}

/* --truncate-corrupt: keep a copy of [off, end) of path beside it, then cut. */
static int rec_cut(void *ctx, const char *path, const uint8_t *p, size_t n,
                   const persist_result *r)
{
    char copy[PATH_MAX + 96];
    uint64_t off = r->off;
    (void)ctx;
    snprintf(copy, sizeof copy, "%s.corrupt-%llu", path, (unsigned long long)off);
    int cfd = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (cfd < 0 || pwrite_all(cfd, p + off, n - off, 0) != 0 || fsync(cfd) != 0) {
        log_io_error("recovery_failed", "saving the dropped bytes", copy, errno);
        if (cfd >= 0)
            close(cfd);
        return -1;
    }
    close(cfd);
    if (cut_file(path, off) != 0)
        return -1;
    log_begin(LL_WARN, "journal_truncated");
    log_str("file", path);
    log_int("offset", (long long)off);
    log_int("bytes_dropped", (long long)(n - off));
    log_str("copy", copy);
    log_end();
    return 0;
}

/* Unfinished snapshots and files older than the snapshot are removed;
 * segments after a --truncate-corrupt cut are moved aside (FILE.dropped). */
static void rec_stale(void *ctx, const char *path, int why)
{
    (void)ctx;
    if (why != RECOVERY_STALE_AFTER) {
        unlink(path);
        return;
    }
    char to[PATH_MAX + 80];
    snprintf(to, sizeof to, "%s.dropped", path);
    if (rename(path, to) == 0) {
        log_begin(LL_WARN, "journal_segment_dropped");
        log_str("file", path);
        log_str("moved_to", to);
        log_end();
        fsync(J.dirfd);
    }
}

static int lock_dir(void)
{
    char path[PATH_MAX + 16], pid[32];
    snprintf(path, sizeof path, "%s/LOCK", J.dir);
    J.lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (J.lockfd < 0) {
        log_io_error("data_dir_unusable", "open", path, errno);
        return -1;
    }
    if (flock(J.lockfd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t n = pread(J.lockfd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        log_begin(LL_ERROR, "data_dir_locked");
        log_str("dir", J.dir);
        log_str("holder_pid", pid[0] ? pid : "unknown");
        log_str("error", strerror(e));
        log_end();
        fprintf(stderr, "lossweightd: data directory %s is in use by another lossweightd "
                        "(pid %s); two daemons cannot share it\n",
                J.dir, pid[0] ? pid : "unknown");
        close(J.lockfd);
        J.lockfd = -1;
        return -1;
    }
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(J.lockfd, 0) != 0 || pwrite(J.lockfd, pid, (size_t)n, 0) != n)
        log_io_error("data_dir_lock_pid", "write", path, errno); /* the lock holds anyway */
    return 0;
}

static int recover(uint64_t *last_no, uint64_t *last_size)
{
    const recovery_ops ops = {
        .truncate_corrupt = srv.cfg.truncate_corrupt,
        .refuse = rec_refuse,
        .io_error = rec_io_error,
        .snapshot_invalid = rec_snapshot_invalid,
        .torn = rec_torn,
        .cut = rec_cut,
        .stale = rec_stale,
    };
    recovery_result res;
    uint64_t t0 = uv_hrtime();
    J.replaying = 1;
    int rc = recovery_run(J.dir, &ops, &res);
    J.replaying = 0;
    if (rc != 0)
        return -1;
    *last_no = res.last_no;
    *last_size = res.last_size;
    J.snapshot_no = res.snapshot;
    persist_recovered();
    log_begin(LL_INFO, "recovered");
    log_str("dir", J.dir);
    log_int("snapshot", (long long)res.snapshot);
    log_int("snapshot_jobs", (long long)res.snapshot_jobs);
    log_int("segments", (long long)res.segments);
    log_int("records_replayed", (long long)res.records);
    log_int("torn_tail_bytes_dropped", (long long)res.torn_bytes);
    log_int("jobs", (long long)jobs_count());
    log_int("ms", (long long)((uv_hrtime() - t0) / 1000000));
    log_end();
    return 0;
}

/* Open (or create) the segment appends go to. */
static int open_current(uint64_t no, uint64_t size)
{
    char path[PATH_MAX + 64];
    seg_path(path, sizeof path, no);
    int fd;
    if (size < FILE_HDR) {
        if ((fd = segment_create(no)) < 0)
            return -1;
        size = FILE_HDR;
        /* a new file: its contents and its name must reach the disk */
        if (fdatasync(fd) != 0 || fsync(J.dirfd) != 0) {
            log_io_error("journal_create_failed", "fsync", path, errno);
            close(fd);
            return -1;
        }
    } else if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0) {
        log_io_error("journal_open_failed", "open", path, errno);
        return -1;
    }
    J.seg[0] = (segment){.fd = fd, .no = no, .written = size, .synced = size, .dir_synced = 1};
    J.nseg = 1;
    return 0;
}

/* ---- the thread pool ---- */

static void noop_work(uv_work_t *req) { (void)req; }
static void noop_done(uv_work_t *req, int status) { (void)req, (void)status; }

/* Start libuv's thread pool now, with every signal blocked, so that its
 * threads inherit that mask: signals (SIGTERM, SIGHUP) are then always
 * taken by the loop thread, and a pool thread in the middle of an
 * fdatasync is never the one interrupted. (The pool is created by the first
 * uv_queue_work; its threads are never created again.) */
static void start_pool(void)
{
    static uv_work_t req;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    uv_queue_work(srv.loop, &req, noop_work, noop_done);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int journal_open(void)
{
    struct stat st;
    const char *dir = srv.cfg.data_dir;
    uint64_t last_no = 1, last_size = 0;
    if (!dir) {
        log_msg(LL_WARN, "no_data_dir", "no --data-dir: jobs are not persisted");
        return 0;
    }
    crc32c_init();
    /* Tests only (like Redis's DEBUG aof-flush-sleep): make every group
     * commit take this long, to show that answers wait for it. */
    const char *delay = getenv("LWD_TEST_SYNC_DELAY_MS");
    if (delay && atoi(delay) > 0 && atoi(delay) <= 10000)
        J.test_sync_delay_us = (unsigned)atoi(delay) * 1000u;
    /* RLIMIT_FSIZE: a write past it fails with EFBIG (answered 503) instead
     * of killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    if (mkdirs(dir) != 0 || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        access(dir, W_OK | X_OK) != 0) {
        log_io_error("data_dir_unusable", "mkdir", dir, errno);
        return -1;
    }
    snprintf(J.dir, sizeof J.dir, "%s", dir);
    J.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (J.dirfd < 0) {
        log_io_error("data_dir_unusable", "open", dir, errno);
        return -1;
    }
    if (lock_dir() != 0)
        return -1;
    if (recover(&last_no, &last_size) != 0)
        return -1;
    if (open_current(last_no, last_size) != 0)
        return -1;
    J.enabled = 1;
    start_pool();
    uv_prepare_init(srv.loop, &J.prepare);
    uv_prepare_start(&J.prepare, on_prepare);
    uv_timer_init(srv.loop, &J.batch_timer);
    uv_timer_init(srv.loop, &J.snap_timer);
    if (srv.cfg.fsync_mode == JOURNAL_FSYNC_BATCH)
        uv_timer_start(&J.batch_timer, on_batch_timer, srv.cfg.fsync_interval_ms,
                       srv.cfg.fsync_interval_ms);
    if (srv.cfg.snapshot_interval_s)
        uv_timer_start(&J.snap_timer, on_snap_timer, (uint64_t)srv.cfg.snapshot_interval_s * 1000,
                       (uint64_t)srv.cfg.snapshot_interval_s * 1000);
    J.handles = 1;
    static const char *const modes[] = {"always", "batch", "off"};
    log_begin(LL_INFO, "journal");
    log_str("dir", dir);
    log_str("fsync", modes[srv.cfg.fsync_mode]);
    log_int("segment", (long long)last_no);
    log_int("bytes", (long long)cur_seg()->written);
    log_end();
    return 0;
}

/* ---- shutdown ---- */

static void halt_handles(void)
{
    if (!J.handles)
        return;
    J.handles = 0;
    uv_close((uv_handle_t *)&J.prepare, NULL);
    uv_close((uv_handle_t *)&J.batch_timer, NULL);
    uv_close((uv_handle_t *)&J.snap_timer, NULL);
}

/* Sync every open segment now (on the loop: we are stopping). */
static int sync_all_now(void)
{
    for (int i = 0; i < J.nseg; i++)
        if (J.seg[i].written > J.seg[i].synced && fdatasync(J.seg[i].fd) != 0) {
            char path[PATH_MAX + 64];
            seg_path(path, sizeof path, J.seg[i].no);
            log_io_error("journal_sync_failed", "fdatasync", path, errno);
            return -1;
        } else {
            J.seg[i].synced = J.seg[i].written;
        }
    if (fsync(J.dirfd) != 0)
        return -1;
    J.lsn_durable = J.lsn_written;
    return 0;
}

static void shutdown_continue(void)
{
    if (!J.closing || J.halted || J.sync || J.snap)
        return;
    void (*done)(void) = J.shutdown_done;
    J.shutdown_done = NULL;
    J.closing = 0;
    /* The final snapshot, on the loop: no request is in flight. */
    snap_job *j;
    if (sync_all_now() == 0 && snapshot_cut(&j) == 0) {
        j->req.data = j;
        snap_work(&j->req);
        snap_done(&j->req, 0);
        sync_all_now();
    } else {
        log_msg(LL_ERROR, "snapshot_failed",
                "no final snapshot; the journal holds everything, the next start replays it");
    }
    J.halted = 1;
    halt_handles();
    if (done)
        done();
}

void journal_shutdown(void (*done)(void))
{
    if (!J.enabled || J.halted) {
        if (done)
            done();
        return;
    }
    if (J.closing)
        return;
    J.closing = 1;
    J.shutdown_done = done;
    uv_timer_stop(&J.batch_timer);
    uv_timer_stop(&J.snap_timer);
    shutdown_continue();
}

void journal_halt(void)
{
    if (!J.enabled)
        return;
    J.halted = 1;
    J.closing = 0;
    J.shutdown_done = NULL;
    halt_handles();
}

void journal_close(void)
{
    if (J.enabled) {
        sync_all_now();
        for (int i = 0; i < J.nseg; i++)
            close(J.seg[i].fd);
        J.nseg = 0;
        J.enabled = 0;
    }
    jbuf_free(&J.rec);
    if (J.dirfd >= 0)
        close(J.dirfd);
    if (J.lockfd >= 0)
        close(J.lockfd); /* releases the flock */
    J.dirfd = J.lockfd = -1;
}
