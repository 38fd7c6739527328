/*
 * journal.h -- durability: the journal, group commit, snapshots, recovery.
 *
 * Every event that changes what the daemon would reproduce after a restart
 * goes through journal_append() BEFORE it is applied or acknowledged
 * (DESIGN.md, data flow step 3): a job created, deleted or restored, a
 * report accepted, a barrier timeout deciding a step from the ranks present.
 * A non-zero return from journal_append() makes the caller refuse the
 * request (503) with nothing changed: the record was not written (a failed
 * write is cut back with ftruncate, so the file ends on a whole record).
 *
 * journal_append() writes the record to the current segment at once
 * (pwrite; the page cache, not the disk). What may leave the process is
 * governed by journal_wait_lsn(): under --fsync always, an answer prepared
 * while written records are not yet fdatasync'd waits (http.c suspends the
 * connection) until the group commit covering them completes; one
 * fdatasync on libuv's thread pool covers every record written in a loop
 * turn. Under batch and off nothing waits. Files, formats and failure rules:
 * journal.c's header comment and docs/durability.md.
 *
 * Without --data-dir nothing is journaled and every call here is a no-op.
 * All functions run on the loop thread.
 */
#ifndef LWD_JOURNAL_H
#define LWD_JOURNAL_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

typedef enum journal_kind {
    JOURNAL_JOB_CREATED = 1,  /* doc: canonical spec */
    JOURNAL_JOB_DELETED = 2,
    JOURNAL_JOB_RESTORED = 3, /* doc: the state document */
    JOURNAL_REPORT = 4,       /* report (parsed), tasks */
    JOURNAL_STEP_DECIDED = 5, /* step; present: ranks bitmap (NULL = all: not journaled) */
    JOURNAL_STEP_CLOSED = 6,  /* step closed without a decision (derived: not journaled) */
} journal_kind;

typedef struct journal_event {
    journal_kind kind;
    const char *job;
    int64_t step;  /* -1 when not about a step */
    int64_t rank;  /* -1 when not about a rank */
    const char *doc;
    size_t doc_len;
    const uint8_t *present;
    int world;
    const wire_report *report; /* JOURNAL_REPORT */
    size_t tasks;              /* JOURNAL_REPORT: T */
} journal_event;

enum { JOURNAL_FSYNC_ALWAYS = 0, JOURNAL_FSYNC_BATCH = 1, JOURNAL_FSYNC_OFF = 2 };

/* Lock the data directory, load the newest snapshot, replay the journal
 * after it into the job table, and open the journal for appending. The
 * configuration is srv.cfg. 0, or -1 with the reason logged (the daemon
 * exits non-zero). A NULL data_dir: nothing persisted, 0. */
int journal_open(void);
/* 0: the record is written (durable before any answer depending on it
 * leaves, under --fsync always); non-zero: refused, nothing written. */
int journal_append(const journal_event *ev);
/* Why the last append was refused (for the 503 message). */
const char *journal_error(void);
/* True while start-up replays the journal (no answers, no journaling). */
int journal_replaying(void);
/* 0 when an answer prepared now may be sent at once; otherwise the LSN that
 * must be durable first (pass it to http.c's gate). */
uint64_t journal_wait_lsn(void);
/* Called on the loop each time the durable LSN advances. */
void journal_set_durable_cb(void (*cb)(uint64_t durable_lsn));
/* SIGTERM: once in-flight I/O is done, write a final snapshot, then call
 * done (on the loop). Calls done at once without a data directory. */
void journal_shutdown(void (*done)(void));
/* Counters for /metrics (zero without a data directory). */
typedef struct journal_stats {
    int enabled;
    uint64_t records, bytes;       /* appended by this process */
    uint64_t syncs, sync_ns;       /* group commits and the time they took */
    uint64_t snapshots, snapshot_failures;
    uint64_t write_errors;         /* appends refused (503) */
    uint64_t bytes_since_snapshot;
} journal_stats;
void journal_get_stats(journal_stats *st);

/* Stop at once (a second signal, the shutdown timeout): no final snapshot,
 * no more I/O started from the loop; in-flight work still completes. */
void journal_halt(void);
/* Release everything (after the loop has stopped). Flushes and fdatasyncs
 * the journal if journal_shutdown did not run (a second signal). */
void journal_close(void);

#endif /* LWD_JOURNAL_H */
