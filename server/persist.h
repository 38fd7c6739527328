/*
 * persist.h -- what journal records and snapshot entries hold, and how they
 * are applied to the job table. journal.c owns the files, the framing and
 * the I/O; this is the content (persist.c) and the framing helpers both use.
 *
 * A record, little-endian:
 *
 *   u32 crc     CRC-32C of everything after this field (len, type, pad,
 *               payload), so a torn or flipped length is caught too
 *   u32 len     payload bytes (at most REC_MAX)
 *   u8  type    REC_*
 *   u8  pad[3]  zero
 *   payload
 *
 * Payloads (a job id is "u8 n, n bytes"):
 *
 *   REC_JOB_CREATED   id, the canonical spec (JSON text)
 *   REC_JOB_DELETED   id
 *   REC_JOB_RESTORED  id, the state document as received (JSON text)
 *   REC_REPORT        id, i64 rank, i64 step, i64 epoch, f64 samples,
 *                     u8 has_samples, u8 parts (HAS_*), u16 T, then the
 *                     doubles of the parts present in the order losses,
 *                     grad_norms, gram (T*T), losses_after -- the parsed
 *                     report, bit for bit (replay needs no JSON parser)
 *   REC_STEP_DECIDED  id, i64 step, u32 world, (world+7)/8 bytes of the
 *                     ranks present (a barrier-timeout decision)
 *   REC_SNAP_JOB      one job in a snapshot (persist.c, persist_snapshot)
 *   REC_SNAP_END      u64 number of jobs: a snapshot without it is invalid
 */
#ifndef LWD_PERSIST_H
#define LWD_PERSIST_H

#include "journal.h"

#include <stddef.h>
#include <stdint.h>

enum {
    REC_JOB_CREATED = 1,
    REC_JOB_DELETED = 2,
    REC_JOB_RESTORED = 3,
    REC_REPORT = 4,
    REC_STEP_DECIDED = 5,
    REC_SNAP_JOB = 16,
    REC_SNAP_END = 17,
};

#define REC_HDR 12u
#define FILE_HDR 16 /* a file's header: 8 bytes of magic, u64 its number */
#define SEG_MAGIC "LWJOURN\001"
#define SNAP_MAGIC "LWSNAPS\001"
#define REC_MAX (((size_t)1 << 30) + ((size_t)1 << 20)) /* --max-body's ceiling and then some */

/* A growable byte buffer. */
typedef struct jbuf {
    uint8_t *p;
    size_t len, cap;
} jbuf;

int jbuf_reserve(jbuf *b, size_t more); /* 0 or -1 (no memory) */
void jbuf_free(jbuf *b);
int jbuf_put(jbuf *b, const void *v, size_t n);

static inline void le_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16),
    p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t le_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void le_put64(uint8_t *p, uint64_t v)
{
    le_put32(p, (uint32_t)v);
    le_put32(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t le_get64(const uint8_t *p)
{
    return (uint64_t)le_get32(p) | (uint64_t)le_get32(p + 4) << 32;
}

static inline void file_header(uint8_t h[FILE_HDR], const char *magic, uint64_t no)
{
    for (int i = 0; i < 8; i++)
        h[i] = (uint8_t)magic[i];
    le_put64(h + 8, no);
}

/* Start a record of `type` at the end of b: returns its offset, or
 * (size_t)-1 on no memory. rec_end() fills in length and checksum. */
size_t rec_begin(jbuf *b, int type);
void rec_end(jbuf *b, size_t at);
/* Check the record at p (avail bytes there): 0 and *type, *payload, *len,
 * or -1 with a reason (torn, bad length, checksum, unknown type). */
int rec_check(const uint8_t *p, size_t avail, int *type, const uint8_t **payload, size_t *len,
              const char **why);

/* Append the framed record for an event to b. 0, or -1 (no memory, or the
 * event is not journaled: *skip set). */
int persist_encode(const journal_event *ev, jbuf *b, int *skip);
/* Apply one journal record to the job table. 0, or -1 with msg. */
int persist_apply(int type, const uint8_t *p, size_t n, char *msg, size_t msglen);
/* Append one REC_SNAP_JOB per job and the REC_SNAP_END record. 0 or -1. */
int persist_snapshot(jbuf *b, size_t *njobs);
/* Load one REC_SNAP_JOB into the (empty) job table. 0, or -1 with msg. */
int persist_load_job(const uint8_t *p, size_t n, char *msg, size_t msglen);
/* After recovery: arm the barrier timers of open steps. */
void persist_recovered(void);

/* ---- reading files (recovery) ----
 *
 * Bytes in, records applied to the job table, an outcome out: no I/O, no
 * logging, no libuv. recovery.c maps the files and applies the directory's
 * rules, journal.c acts on the outcome (truncates, refuses, logs), `lossweight
 * check` only reports it; tests/fuzz/fuzz_journal.c feeds them
 * arbitrary bytes. The rules are those of docs/durability.md ("Damage found
 * while replaying"). A record is checked (length, CRC-32C, type) before any
 * of it is used, and its content is checked against the job before any of
 * it is applied; a record that does not apply leaves the table as it was. */
typedef enum persist_outcome {
    PERSIST_OK = 0,      /* every record applied (a snapshot: every job loaded) */
    PERSIST_TORN,        /* the last segment ends in a torn record at off: the
                            records before it are applied; truncate at off */
    PERSIST_TORN_HEADER, /* the last segment is shorter than its header and
                            matches it so far: nothing to replay (recreate it) */
    PERSIST_BAD_HEADER,  /* not this segment's header: refuse (no truncating) */
    PERSIST_CORRUPT,     /* at off: refuse, or truncate there (--truncate-corrupt);
                            a snapshot: an entry that does not load (refuse) */
    PERSIST_INVALID,     /* a snapshot whose framing does not check out at off:
                            nothing loaded, try an older one */
} persist_outcome;

typedef struct persist_result {
    persist_outcome outcome;
    size_t off;          /* where the damage starts (file offset) */
    const char *why;     /* a short reason, static */
    char detail[512];    /* what did not apply ("" when nothing did) */
    uint64_t records;    /* records applied / jobs loaded */
} persist_result;

/* Replay the bytes of journal segment `no` (the whole file, header
 * included); last: the newest segment, where a torn tail is allowed. */
void persist_replay_segment(const uint8_t *p, size_t n, uint64_t no, int last,
                            persist_result *res);
/* Load the bytes of snapshot `no` into the (empty) job table: first every
 * record's framing and the end record are checked, then the jobs loaded. */
void persist_load_snapshot(const uint8_t *p, size_t n, uint64_t no, persist_result *res);
/* What the daemon relies on in a job it holds (recovery checks it for each
 * job a snapshot loads or a record creates; the fuzz target, after every
 * input). 0, or -1 with msg. */
struct lwd_job;
int persist_check_job(const struct lwd_job *j, char *msg, size_t msglen);

#endif /* LWD_PERSIST_H */
