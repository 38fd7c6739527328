/*
 * recovery.h -- reading a data directory the way start-up does: which files
 * count, in which order they are read, and what the directory as a whole
 * amounts to. (What one file's bytes amount to: persist.h; what the daemon
 * then does on disk -- truncate, refuse, log: journal.c.)
 *
 * recovery_run() lists the directory, loads the newest snapshot that checks
 * out completely (persist_load_snapshot), checks that the segments it needs
 * are all there, and replays them in order (persist_replay_segment) into
 * the job table. It only reads: files are opened O_RDONLY and mapped
 * PROT_READ. Everything that changes the directory, and every message, is
 * the caller's, through recovery_ops: lossweightd truncates a torn tail,
 * cuts under --truncate-corrupt, unlinks stale files and logs; `lossweight
 * check` only takes notes. So the daemon and the offline checker cannot
 * disagree about a directory: there is one reader.
 */
#ifndef LWD_RECOVERY_H
#define LWD_RECOVERY_H

#include "persist.h"

#include <stddef.h>
#include <stdint.h>

/* Why a file is of no use to the recovered state (recovery_ops.stale). */
enum {
    RECOVERY_STALE_TMP = 1,   /* snapshot-N.lws.tmp: a snapshot never finished */
    RECOVERY_STALE_OLD = 2,   /* a segment or snapshot older than the snapshot loaded */
    RECOVERY_STALE_AFTER = 3, /* a segment after a --truncate-corrupt cut */
};

typedef struct recovery_ops {
    void *ctx;
    /* Hand a corrupt segment to cut() instead of refusing (--truncate-corrupt). */
    int truncate_corrupt;
    /* Recovery cannot go on: the file, the offset, why and what did not
     * apply (NULL or ""). cuttable: a damaged record in a segment, which
     * --truncate-corrupt would cut at off (not a missing file, a bad
     * header or a snapshot). Required. */
    void (*refuse)(void *ctx, const char *path, uint64_t off, const char *why,
                   const char *detail, int cuttable);
    /* A file or the directory could not be read (op: "opendir", "open",
     * "mmap"; err: errno). Required. */
    void (*io_error)(void *ctx, const char *op, const char *path, int err);
    /* The rest may be NULL. */
    /* A snapshot that does not check out: nothing loaded, an older one is tried. */
    void (*snapshot_invalid)(void *ctx, const char *path, const persist_result *r);
    /* The snapshot the state starts from (r->records: its jobs). */
    void (*snapshot_loaded)(void *ctx, const char *path, const persist_result *r);
    /* A torn tail (PERSIST_TORN) in the last segment, n bytes long: the
     * records before r->off are applied. 0, or -1 to stop (reported). */
    int (*torn)(void *ctx, const char *path, size_t n, const persist_result *r);
    /* truncate_corrupt: a corrupt segment of n bytes (p), cut at r->off;
     * the records before it are applied. 0, or -1 to stop (reported). */
    int (*cut)(void *ctx, const char *path, const uint8_t *p, size_t n, const persist_result *r);
    /* After a segment was replayed, whatever the outcome (n: its size as found). */
    void (*segment_done)(void *ctx, const char *path, uint64_t no, size_t n,
                         const persist_result *r);
    /* A file the recovered state does not need (RECOVERY_STALE_*): *.tmp as
     * the directory is listed, segments after a cut once it is made, older
     * files once recovery succeeded. */
    void (*stale)(void *ctx, const char *path, int why);
} recovery_ops;

typedef struct recovery_result {
    uint64_t snapshot;      /* the snapshot loaded (0: none) */
    uint64_t snapshot_jobs;
    uint64_t segments;      /* segments replayed */
    uint64_t records;       /* records applied from them */
    uint64_t torn_bytes;    /* dropped as a torn tail (a torn header included) */
    uint64_t last_no;       /* the segment appends continue in */
    uint64_t last_size;     /* its size after recovery (< FILE_HDR: create it anew) */
    int cut;                /* --truncate-corrupt cut a segment */
} recovery_result;

/* Recover the job table (empty on entry) from dir. 0: recovered, *res
 * filled; -1: stopped, and ops->refuse or ops->io_error (or a hook's -1)
 * said why. The table then holds what was applied before the stop. The
 * caller runs persist_recovered() itself (it arms timers: the loop's). */
int recovery_run(const char *dir, const recovery_ops *ops, recovery_result *res);

/* "prefix-<20 digits>suffix": 1 and *no, else 0. */
int recovery_name_number(const char *name, const char *prefix, const char *suffix, uint64_t *no);
/* DIR/journal-<no>.lwj and DIR/snapshot-<no>.lws */
void recovery_seg_path(char *buf, size_t n, const char *dir, uint64_t no);
void recovery_snap_path(char *buf, size_t n, const char *dir, uint64_t no);

#endif /* LWD_RECOVERY_H */
