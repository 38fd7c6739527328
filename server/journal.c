/*
 * journal.c -- the durability seam (see journal.h).
 *
 * Today: make sure the data directory exists and is a directory we can
 * write to, count events, accept them all. The durability issue turns this
 * into the append-only journal (length + checksum records, group commit per
 * loop turn, snapshots with temp file + fsync + rename + directory fsync).
 */
#include "journal.h"

#include "log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct {
    char dir[PATH_MAX];
    uint64_t events;
} J;

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

int journal_open(const char *dir)
{
    struct stat st;
    if (!dir)
        return 0;
    if (mkdirs(dir) != 0 || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
        access(dir, W_OK | X_OK) != 0) {
        log_begin(LL_ERROR, "data_dir_unusable");
        log_str("dir", dir);
        log_str("error", strerror(errno));
        log_end();
        return -1;
    }
    snprintf(J.dir, sizeof J.dir, "%s", dir);
    log_begin(LL_INFO, "data_dir");
    log_str("dir", dir);
    log_str("durability", "none yet (journal not implemented)");
    log_end();
    return 0;
}

int journal_append(const journal_event *ev)
{
    (void)ev;
    J.events++;
    return 0;
}

void journal_close(void) {}
