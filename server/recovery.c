/*
 * recovery.c -- the data directory as start-up reads it (recovery.h): list
 * the files, pick the snapshot, check that the segments after it are all
 * there, replay them, and say what is stale. The rules are those of
 * docs/durability.md ("Start-up"); the bytes of each file are judged by
 * persist.c. Read-only: a file is opened O_RDONLY and mapped PROT_READ,
 * MAP_PRIVATE; whatever recovery does to the directory afterwards is done
 * by the caller's hooks (journal.c for the daemon, tools/lossweight.c's
 * `check` for the offline verifier, which changes nothing).
 */
#include "recovery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_LEN (PATH_MAX + 64)

int recovery_name_number(const char *name, const char *prefix, const char *suffix, uint64_t *no)
{
    size_t pl = strlen(prefix), sl = strlen(suffix), n = strlen(name);
    if (n != pl + 20 + sl || strncmp(name, prefix, pl) != 0 || strcmp(name + pl + 20, suffix) != 0)
        return 0;
    uint64_t v = 0;
    for (size_t i = pl; i < pl + 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *no = v;
    return 1;
}

void recovery_seg_path(char *buf, size_t n, const char *dir, uint64_t no)
{
    snprintf(buf, n, "%s/journal-%020" PRIu64 ".lwj", dir, no);
}

void recovery_snap_path(char *buf, size_t n, const char *dir, uint64_t no)
{
    snprintf(buf, n, "%s/snapshot-%020" PRIu64 ".lws", dir, no);
}

/* ---- files ---- */

typedef struct mapped {
    int fd;
    uint8_t *p;
    size_t n;
} mapped;

static int map_file(const recovery_ops *ops, const char *path, mapped *m)
{
    struct stat st;
    memset(m, 0, sizeof *m);
    m->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (m->fd < 0 || fstat(m->fd, &st) != 0) {
        int e = errno;
        if (m->fd >= 0)
            close(m->fd);
        ops->io_error(ops->ctx, "open", path, e);
        return -1;
    }
    m->n = (size_t)st.st_size;
    if (m->n == 0)
        return 0;
    /* read in full anyway: populate the mapping at once rather than page
     * by page through faults */
    m->p = mmap(NULL, m->n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, m->fd, 0);
    if (m->p == MAP_FAILED) {
        int e = errno;
        close(m->fd);
        m->p = NULL;
        ops->io_error(ops->ctx, "mmap", path, e);
        return -1;
    }
    madvise(m->p, m->n, MADV_SEQUENTIAL);
    return 0;
}

static void unmap_file(mapped *m)
{
    if (m->p)
        munmap(m->p, m->n);
    if (m->fd >= 0)
        close(m->fd);
    m->p = NULL;
    m->fd = -1;
}

/* ---- the listing ---- */

typedef struct listing {
    uint64_t *seg, *snap;
    size_t nseg, nsnap;
} listing;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int push(uint64_t **v, size_t *n, uint64_t x)
{
    uint64_t *nv = realloc(*v, (*n + 1) * sizeof **v);
    if (!nv)
        return -1;
    nv[(*n)++] = x;
    *v = nv;
    return 0;
}

static int list_dir(const char *dir, const recovery_ops *ops, listing *l)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t n;
    memset(l, 0, sizeof *l);
    if (!d) {
        ops->io_error(ops->ctx, "opendir", dir, errno);
        return -1;
    }
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (recovery_name_number(e->d_name, "journal-", ".lwj", &n)) {
            if (push(&l->seg, &l->nseg, n))
                goto oom;
        } else if (recovery_name_number(e->d_name, "snapshot-", ".lws", &n)) {
            if (push(&l->snap, &l->nsnap, n))
                goto oom;
        } else if (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0 &&
                   strncmp(e->d_name, "snapshot-", 9) == 0 && ops->stale) {
            char path[PATH_LEN];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            ops->stale(ops->ctx, path, RECOVERY_STALE_TMP); /* an unfinished snapshot */
        }
    }
    closedir(d);
    if (l->nseg > 1)
        qsort(l->seg, l->nseg, sizeof *l->seg, cmp_u64);
    if (l->nsnap > 1)
        qsort(l->snap, l->nsnap, sizeof *l->snap, cmp_u64);
    return 0;
oom:
    closedir(d);
    free(l->seg);
    free(l->snap);
    memset(l, 0, sizeof *l);
    ops->io_error(ops->ctx, "opendir", dir, ENOMEM);
    return -1;
}

/* ---- snapshots and segments ---- */

/* Check a snapshot completely; load it only if all of it is sound.
 * 1: loaded; 0: invalid (reported, nothing loaded); -1: stop. */
static int load_snapshot(const char *dir, const recovery_ops *ops, uint64_t no,
                         recovery_result *res)
{
    char path[PATH_LEN];
    mapped m;
    persist_result r;
    recovery_snap_path(path, sizeof path, dir, no);
    if (map_file(ops, path, &m) != 0)
        return -1;
    persist_load_snapshot(m.p, m.n, no, &r);
    unmap_file(&m);
    if (r.outcome == PERSIST_INVALID) {
        if (ops->snapshot_invalid)
            ops->snapshot_invalid(ops->ctx, path, &r);
        return 0;
    }
    if (r.outcome != PERSIST_OK) {
        ops->refuse(ops->ctx, path, r.off, r.why, r.detail, 0);
        return -1;
    }
    if (ops->snapshot_loaded)
        ops->snapshot_loaded(ops->ctx, path, &r);
    res->snapshot = no;
    res->snapshot_jobs = r.records;
    return 1;
}

/* Replay segment `no`; 0, or -1 (stop). */
static int replay_segment(const char *dir, const recovery_ops *ops, uint64_t no, int last,
                          recovery_result *res)
{
    char path[PATH_LEN];
    mapped m;
    persist_result r;
    int rc = 0;
    recovery_seg_path(path, sizeof path, dir, no);
    if (map_file(ops, path, &m) != 0)
        return -1;
    res->segments++;
    persist_replay_segment(m.p, m.n, no, last, &r);
    res->records += r.records;
    switch (r.outcome) {
    case PERSIST_OK: res->last_size = m.n; break;
    case PERSIST_TORN_HEADER: /* the header is rewritten when the segment is opened */
        res->torn_bytes += m.n;
        res->last_size = 0;
        break;
    case PERSIST_TORN: /* a torn last write: dropped */
        if (ops->torn && ops->torn(ops->ctx, path, m.n, &r) != 0) {
            rc = -1;
            break;
        }
        res->torn_bytes += m.n - r.off;
        res->last_size = r.off;
        break;
    case PERSIST_CORRUPT:
        if (!ops->truncate_corrupt || !ops->cut) {
            ops->refuse(ops->ctx, path, r.off, r.why, r.detail[0] ? r.detail : NULL, 1);
            rc = -1;
            break;
        }
        if (ops->cut(ops->ctx, path, m.p, m.n, &r) != 0) {
            rc = -1;
            break;
        }
        res->cut = 1;
        res->last_size = r.off;
        break;
    default: /* PERSIST_BAD_HEADER */
        ops->refuse(ops->ctx, path, 0, r.why, NULL, 0);
        rc = -1;
        break;
    }
    if (ops->segment_done)
        ops->segment_done(ops->ctx, path, no, m.n, &r);
    unmap_file(&m);
    return rc;
}

int recovery_run(const char *dir, const recovery_ops *ops, recovery_result *res)
{
    listing l;
    char path[PATH_LEN];
    uint64_t first = 1;
    int rc = -1;
    memset(res, 0, sizeof *res);
    if (list_dir(dir, ops, &l) != 0)
        return -1;
    for (size_t i = l.nsnap; i-- > 0;) {
        int r = load_snapshot(dir, ops, l.snap[i], res);
        if (r < 0)
            goto out;
        if (r > 0) {
            first = l.snap[i];
            break;
        }
    }
    /* The segments from `first` on must all be there. */
    size_t k = 0;
    while (k < l.nseg && l.seg[k] < first)
        k++;
    if (l.nsnap && !res->snapshot && !(l.nseg && l.seg[0] == 1)) {
        recovery_snap_path(path, sizeof path, dir, l.snap[l.nsnap - 1]);
        ops->refuse(ops->ctx, path, 0, "no valid snapshot, and the journal before it is gone",
                    NULL, 0);
        goto out;
    }
    if (!res->snapshot && k < l.nseg && l.seg[k] != 1) {
        recovery_seg_path(path, sizeof path, dir, l.seg[k]);
        ops->refuse(ops->ctx, path, 0,
                    "the oldest segment is not the first and no snapshot covers the ones "
                    "before it",
                    NULL, 0);
        goto out;
    }
    if (k < l.nseg && l.seg[k] != first) {
        recovery_seg_path(path, sizeof path, dir, first);
        ops->refuse(ops->ctx, path, 0, "missing: the snapshot needs this segment", NULL, 0);
        goto out;
    }
    res->last_no = first;
    res->last_size = 0;
    for (size_t i = k; i < l.nseg; i++) {
        if (i > k && l.seg[i] != l.seg[i - 1] + 1) {
            recovery_seg_path(path, sizeof path, dir, l.seg[i - 1] + 1);
            ops->refuse(ops->ctx, path, 0, "missing segment between others", NULL, 0);
            goto out;
        }
        if (replay_segment(dir, ops, l.seg[i], i + 1 == l.nseg, res) != 0)
            goto out;
        res->last_no = l.seg[i];
        if (res->cut) {
            for (size_t j = i + 1; j < l.nseg && ops->stale; j++) {
                recovery_seg_path(path, sizeof path, dir, l.seg[j]);
                ops->stale(ops->ctx, path, RECOVERY_STALE_AFTER);
            }
            break;
        }
    }
    /* leftovers a snapshot made obsolete (a crash before they were unlinked) */
    for (size_t i = 0; i < k && ops->stale; i++) {
        recovery_seg_path(path, sizeof path, dir, l.seg[i]);
        ops->stale(ops->ctx, path, RECOVERY_STALE_OLD);
    }
    for (size_t i = 0; i < l.nsnap && ops->stale; i++)
        if (l.snap[i] < res->snapshot) {
            recovery_snap_path(path, sizeof path, dir, l.snap[i]);
            ops->stale(ops->ctx, path, RECOVERY_STALE_OLD);
        }
    rc = 0;
out:
    free(l.seg);
    free(l.snap);
    return rc;
}
