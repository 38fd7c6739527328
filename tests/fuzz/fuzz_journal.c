/*
 * fuzz_journal.c -- libFuzzer target over lossweightd's durability reader:
 * what recovery does with the bytes of snapshot and journal files at
 * start-up (server/persist.c: persist_load_snapshot, persist_replay_segment,
 * the CRC-32C framing of rec_check, persist_load_job and persist_apply, and
 * through them state.c, steps.c, history.c and the library). These are the
 * functions journal.c's recovery calls; journal.c only maps the files and
 * acts on the outcome (truncate, refuse, log), so nothing is copied here.
 *
 * An input is the files of a data directory concatenated in the order
 * recovery reads them: optionally a snapshot, then journal segments. It is
 * cut before every "LWSNAPS\1" / "LWJOURN\1" magic (at most MAX_FILES
 * files), so `cat snapshot-N.lws journal-N.lwj journal-M.lwj` is an input.
 * The first file's number is the one in its header; each later segment is
 * expected to be the next number. The last segment is the newest (where a
 * torn tail is allowed).
 *
 * Besides the sanitizers (ASan, UBSan, LeakSanitizer, no recovery), the
 * target aborts when recovery accepts something the daemon could not live
 * with:
 *   - an outcome the rules do not allow (a torn tail before the last
 *     segment, an invalid snapshot that loaded jobs);
 *   - after each file, a job that fails persist_check_job (histories in
 *     order and finite, open steps after the last decided one, reports a
 *     request could have carried, of one shape per step, ranks' positions
 *     covering their reports, counts that add up);
 *   - a state that does not survive the next shutdown and start: every job
 *     is serialized into a snapshot (persist_snapshot), the table emptied,
 *     the snapshot loaded back, and serialized again: the same bytes;
 *   - a torn tail or a corrupt record (--truncate-corrupt) whose cut file
 *     does not replay cleanly to the very same state on the next start (the
 *     same files, the damaged one cut at the offset and last): this is also
 *     what shows that a refused record changed nothing.
 *
 * The daemon's globals that recovery reads are set up as main.c would with
 * small limits (so that steps stay cheap); what the loop-side files
 * (router.c, http.c, main.c, journal.c, metrics.c) provide comes from
 * server/recovery_stubs.c, shared with `lossweight check` -- no request is
 * ever answered during recovery, so the answering stubs abort.
 *
 * Seeds: tests/fuzz/seed_journal.sh runs a daemon and keeps its files.
 */
#include "jobs.h"
#include "persist.h"

#include "crc32c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

static void check(int ok, const char *what, const char *detail)
{
    if (!ok) {
        fprintf(stderr, "fuzz_journal: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        abort();
    }
}

static int verbose; /* FUZZ_JOURNAL_VERBOSE=1: what recovery made of each input */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    verbose = getenv("FUZZ_JOURNAL_VERBOSE") != NULL;
    crc32c_init();
    log_setup(LL_ERROR + 1, LOG_FMT_TEXT); /* recovery's warnings are expected here */
    srv.cfg.max_jobs = 64;
    srv.cfg.max_tasks = 64;
    srv.cfg.max_world = 64;
    srv.cfg.history = 8; /* small: eviction happens */
    srv.cfg.max_ahead = 1024;
    srv.limits.max_tasks = srv.cfg.max_tasks;
    srv.limits.max_world_size = srv.cfg.max_world;
    return 0;
}

/* ---- oracles ---- */

static void check_jobs(void)
{
    char msg[512];
    size_t n;
    lwd_job **v = jobs_sorted(&n);
    check(v != NULL || n == 0, "out of memory", NULL);
    check(n == jobs_count(), "the job table miscounts", NULL);
    for (size_t i = 0; i < n; i++) {
        check(jobs_find(v[i]->id) == v[i], "a job is not found under its id", v[i]->id);
        check(persist_check_job(v[i], msg, sizeof msg) == 0,
              "recovery accepted an inconsistent job", msg);
    }
    free(v);
}

/* The table as the next snapshot would hold it (numbered 1). */
static void serialize(jbuf *b)
{
    uint8_t h[FILE_HDR];
    size_t n = 0;
    b->len = 0;
    file_header(h, SNAP_MAGIC, 1);
    check(jbuf_put(b, h, FILE_HDR) == 0 && persist_snapshot(b, &n) == 0, "out of memory", NULL);
    check(n == jobs_count(), "the snapshot miscounts", NULL);
}

/* Shut down and start again: the snapshot of the state loads, to the same
 * state. Leaves the table empty. */
static void check_restart(const jbuf *s1)
{
    persist_result r;
    jbuf s2 = {0};
    size_t n = jobs_count();
    jobs_free_all();
    persist_load_snapshot(s1->p, s1->len, 1, &r);
    check(r.outcome == PERSIST_OK, "the snapshot of a recovered state does not load",
          r.detail[0] ? r.detail : r.why);
    check(r.records == n && jobs_count() == n, "the snapshot brought back other jobs", NULL);
    check_jobs();
    serialize(&s2);
    check(s2.len == s1->len && memcmp(s2.p, s1->p, s1->len) == 0,
          "a recovered state changes through a snapshot and back", NULL);
    jbuf_free(&s2);
    jobs_free_all();
}

/* ---- recovery ---- */

typedef struct file {
    const uint8_t *p;
    size_t n;
} file;

static int is_magic(const uint8_t *p, size_t n, const char *magic)
{
    return n >= 8 && memcmp(p, magic, 8) == 0;
}

/* Recover from files[0..k): a snapshot first if it is one. Returns the
 * outcome that ended it (PERSIST_OK: every file replayed), with *at the
 * file it happened in and *res its result. */
static persist_outcome recover(const file *f, size_t k, size_t *at, persist_result *res)
{
    size_t i = 0;
    uint64_t no = f[0].n >= FILE_HDR ? le_get64(f[0].p + 8) : 1;
    *at = 0;
    if (is_magic(f[0].p, f[0].n, SNAP_MAGIC)) {
        persist_load_snapshot(f[0].p, f[0].n, no, res);
        if (res->outcome == PERSIST_INVALID)
            check(jobs_count() == 0, "an invalid snapshot loaded jobs", res->why);
        else if (res->outcome == PERSIST_OK)
            check(res->records == jobs_count(), "a snapshot miscounts its jobs", NULL);
        else
            check(res->outcome == PERSIST_CORRUPT, "a snapshot outcome out of the rules", NULL);
        if (res->outcome != PERSIST_OK)
            return res->outcome;
        check_jobs();
        i = 1;
    }
    memset(res, 0, sizeof *res);
    for (; i < k; i++, no++) {
        int last = i + 1 == k;
        *at = i;
        persist_replay_segment(f[i].p, f[i].n, no, last, res);
        switch (res->outcome) {
        case PERSIST_OK: check(res->off == f[i].n, "replay stopped short", NULL); break;
        case PERSIST_TORN:
        case PERSIST_TORN_HEADER: check(last, "a torn tail before the last segment", NULL); break;
        case PERSIST_CORRUPT:
        case PERSIST_BAD_HEADER: break;
        default: check(0, "a segment outcome out of the rules", NULL);
        }
        if (res->outcome == PERSIST_CORRUPT || res->outcome == PERSIST_TORN)
            check(res->off >= FILE_HDR && res->off < f[i].n, "damage outside the file", NULL);
        check_jobs(); /* --truncate-corrupt starts with what is there */
        if (res->outcome != PERSIST_OK)
            return res->outcome;
    }
    return PERSIST_OK;
}

/* Cut an input into files before each magic. */
static size_t split(const uint8_t *data, size_t size, file f[MAX_FILES])
{
    size_t k = 0, start = 0;
    for (size_t o = 1; o + 8 <= size && k + 1 < MAX_FILES; o++)
        if (is_magic(data + o, size - o, SEG_MAGIC) || is_magic(data + o, size - o, SNAP_MAGIC)) {
            f[k++] = (file){data + start, o - start};
            start = o;
        }
    f[k++] = (file){data + start, size - start};
    return k;
}

/* Most mutations land inside a record and break its CRC-32C, and then
 * recovery never looks past the framing. So after mutating, the checksum of
 * every record whose length fits is usually made right again: the input is
 * then one whose framing checks out, and its content reaches persist_apply
 * and persist_load_job. (The target itself checks every CRC as recovery
 * does; one mutation in eight is left as it is, to keep the framing and the
 * torn-tail rules fuzzed too.) */
static void fix_checksums(uint8_t *data, size_t size)
{
    file f[MAX_FILES];
    size_t k = split(data, size, f);
    for (size_t i = 0; i < k; i++) {
        uint8_t *p = data + (f[i].p - data);
        size_t n = f[i].n, off = FILE_HDR;
        while (off + REC_HDR <= n) {
            size_t len = le_get32(p + off + 4);
            if (len > n - off - REC_HDR)
                break;
            le_put32(p + off, crc32c(0, p + off + 4, REC_HDR - 4 + len));
            off += REC_HDR + len;
        }
    }
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 8 != 0)
        fix_checksums(data, size);
    return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    file f[MAX_FILES];
    size_t k = split(data, size, f);

    size_t at;
    persist_result r;
    persist_outcome o = recover(f, k, &at, &r);
    if (verbose)
        fprintf(stderr, "fuzz_journal: %zu file(s), outcome %d in file %zu at %zu: %s%s%s; %zu job(s)\n",
                k, (int)o, at, r.off, r.why ? r.why : "-", r.detail[0] ? ": " : "", r.detail,
                jobs_count());
    if (o != PERSIST_OK && o != PERSIST_TORN && o != PERSIST_TORN_HEADER &&
        !(o == PERSIST_CORRUPT && !is_magic(f[at].p, f[at].n, SNAP_MAGIC))) {
        jobs_free_all(); /* the daemon refuses to start */
        return 0;
    }
    jbuf s1 = {0};
    serialize(&s1);
    if (o == PERSIST_TORN || o == PERSIST_CORRUPT) {
        /* the next start: the damaged file cut at the offset, the last one */
        jbuf s2 = {0};
        persist_result r2;
        size_t at2;
        f[at].n = r.off;
        jobs_free_all();
        persist_outcome o2 = recover(f, at + 1, &at2, &r2);
        check(o2 == PERSIST_OK, "a file cut where recovery said does not replay cleanly",
              r2.detail[0] ? r2.detail : r2.why);
        serialize(&s2);
        check(s2.len == s1.len && memcmp(s2.p, s1.p, s1.len) == 0,
              "a file cut where recovery said replays to another state", NULL);
        jbuf_free(&s2);
    }
    check_restart(&s1);
    jbuf_free(&s1);
    return 0;
}
