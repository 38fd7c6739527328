/*
 * journal_gen.c -- write a lossweightd journal segment directly, for the
 * recovery benchmark (durability_bench.sh): JOBS jobs (uw, T tasks,
 * world_size W, barrier) and then REPORTS reports, every rank of every job
 * reporting step 0, 1, 2, ... in turn, so that replay decides a step every
 * W reports.
 *
 * Written from the format as documented in server/persist.h and
 * server/journal.c (not from the daemon's encoder), so it doubles as a
 * check that the documentation is enough to produce a journal the daemon
 * accepts. Only server/crc32c.c is shared.
 *
 *   journal_gen DATA_DIR REPORTS [JOBS [WORLD [TASKS]]]
 */
#include "crc32c.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned char *buf;
static size_t len, cap;

static void put(const void *p, size_t n)
{
    if (len + n > cap) {
        cap = cap ? 2 * cap : 1 << 20;
        while (cap < len + n)
            cap *= 2;
        if (!(buf = realloc(buf, cap))) {
            perror("realloc");
            exit(1);
        }
    }
    memcpy(buf + len, p, n);
    len += n;
}

static void put_le(uint64_t v, int bytes)
{
    unsigned char b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    put(b, (size_t)bytes);
}

static void put_f64(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put_le(u, 8);
}

/* Start a record: 12-byte header filled by end_rec. */
static size_t begin_rec(int type)
{
    size_t at = len;
    unsigned char h[12] = {0};
    h[8] = (unsigned char)type;
    put(h, 12);
    return at;
}

static void end_rec(size_t at)
{
    uint32_t n = (uint32_t)(len - at - 12);
    for (int i = 0; i < 4; i++)
        buf[at + 4 + i] = (unsigned char)(n >> (8 * i));
    uint32_t c = crc32c(0, buf + at + 4, 8 + n);
    for (int i = 0; i < 4; i++)
        buf[at + i] = (unsigned char)(c >> (8 * i));
}

static void put_id(const char *id)
{
    unsigned char n = (unsigned char)strlen(id);
    put(&n, 1);
    put(id, n);
}

/* A cheap deterministic stream of doubles in (0.05, 3.05). */
static uint64_t rs = 0x9e3779b97f4a7c15ull;
static double next_loss(void)
{
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return 0.05 + (double)(rs >> 11) / 9007199254740992.0 * 3.0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: journal_gen DATA_DIR REPORTS [JOBS [WORLD [TASKS]]]\n");
        return 2;
    }
    const char *dir = argv[1];
    long reports = atol(argv[2]);
    int jobs = argc > 3 ? atoi(argv[3]) : 64;
    int world = argc > 4 ? atoi(argv[4]) : 4;
    int T = argc > 5 ? atoi(argv[5]) : 4;
    if (reports < 0 || jobs < 1 || world < 1 || T < 1 || T > 64) {
        fprintf(stderr, "journal_gen: bad arguments\n");
        return 2;
    }
    crc32c_init();
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        perror(dir);
        return 1;
    }
    /* segment header: magic, segment number 1 */
    put("LWJOURN\001", 8);
    put_le(1, 8);

    char id[32], spec[512];
    for (int j = 0; j < jobs; j++) {
        size_t at = begin_rec(1); /* REC_JOB_CREATED */
        snprintf(id, sizeof id, "bench-%d", j);
        put_id(id);
        int n = snprintf(spec, sizeof spec, "{\"tasks\":[");
        for (int t = 0; t < T; t++)
            n += snprintf(spec + n, sizeof spec - (size_t)n, "%s\"t%d\"", t ? "," : "", t);
        n += snprintf(spec + n, sizeof spec - (size_t)n,
                      "],\"method\":\"uw\",\"world_size\":%d}", world);
        put(spec, (size_t)n);
        end_rec(at);
    }
    /* round robin: job 0 rank 0..W-1 step 0, job 1 ..., then step 1 */
    long done = 0;
    for (long step = 0; done < reports; step++)
        for (int j = 0; j < jobs && done < reports; j++)
            for (int r = 0; r < world && done < reports; r++, done++) {
                size_t at = begin_rec(4); /* REC_REPORT */
                snprintf(id, sizeof id, "bench-%d", j);
                put_id(id);
                put_le((uint64_t)r, 8);
                put_le((uint64_t)step, 8);
                put_le((uint64_t)-1, 8); /* epoch: absent */
                put_f64(1.0);            /* samples */
                unsigned char flags[2] = {0, 1}; /* has_samples, parts: losses */
                put(flags, 2);
                put_le((uint64_t)T, 2);
                for (int t = 0; t < T; t++)
                    put_f64(next_loss());
                end_rec(at);
            }
    char path[4096];
    snprintf(path, sizeof path, "%s/journal-%020d.lwj", dir, 1);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return 1;
    }
    printf("%s: %d jobs, %ld reports, %zu bytes\n", path, jobs, done, len);
    free(buf);
    return 0;
}
