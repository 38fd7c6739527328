/*
 * journal.h -- where durability plugs in.
 *
 * Every event that changes what the daemon would reproduce after a restart
 * goes through journal_append() BEFORE it is applied or acknowledged
 * (DESIGN.md, data flow step 3): a job created, deleted or restored, a
 * report accepted, a step decided (with the ranks present, because a
 * barrier timeout makes that set depend on timing) or closed undecided.
 *
 * For now journal.c only creates the data directory and accepts every
 * event; the durability issue replaces its body with the length+checksum
 * journal, group commit and snapshots. A non-zero return from
 * journal_append() must make the caller refuse the request (503) with
 * nothing changed.
 */
#ifndef LWD_JOURNAL_H
#define LWD_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef enum journal_kind {
    JOURNAL_JOB_CREATED = 1,  /* doc: canonical spec */
    JOURNAL_JOB_DELETED = 2,
    JOURNAL_JOB_RESTORED = 3, /* doc: the state document */
    JOURNAL_REPORT = 4,       /* rank, step; doc: the report body as received */
    JOURNAL_STEP_DECIDED = 5, /* step; present: ranks bitmap (NULL = all) */
    JOURNAL_STEP_CLOSED = 6,  /* step closed without a decision */
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
} journal_event;

/* Create the data directory if missing. 0, or -1 with a message logged. */
int journal_open(const char *dir);
/* 0: the event is accepted (and, later, durable before any answer
 * depending on it leaves); non-zero: refuse the request. */
int journal_append(const journal_event *ev);
void journal_close(void);

#endif /* LWD_JOURNAL_H */
