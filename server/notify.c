/*
 * notify.c -- what systemd hands a service, without linking libsystemd:
 * sd_notify(3) for Type=notify and sd_listen_fds(3) for socket activation.
 *
 * systemd passes a datagram socket in $NOTIFY_SOCKET (a path, or an
 * abstract name starting with '@'); we send READY=1 once we accept
 * connections, STATUS= lines, and STOPPING=1 on SIGTERM. Without the
 * variable (not under systemd) this does nothing. Failures are ignored:
 * notification is advisory.
 *
 * With a socket unit (systemd/lossweightd.socket), systemd creates the
 * listening socket, passes it as fd 3 with $LISTEN_PID (our pid) and
 * $LISTEN_FDS (how many), and keeps it open across restarts of the
 * service: connections made while the daemon is down wait in the socket's
 * backlog instead of being refused. systemd_listen_fd() takes that socket;
 * anything unexpected about it (several fds, not a listening TCP socket) is
 * an error, not a silent fallback to --listen.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void notify_systemd(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t n;
    if (!path || !path[0] || (path[0] != '/' && path[0] != '@'))
        return;
    n = strlen(path);
    if (n >= sizeof sa.sun_path)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    (void)sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&sa,
                 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
}

#define SD_LISTEN_FDS_START 3

/* A decimal in [0, INT_MAX] filling the whole string, or -1. */
static long env_uint(const char *name)
{
    const char *v = getenv(name);
    long n = 0;
    if (!v || !*v)
        return -1;
    for (; *v; v++) {
        if (*v < '0' || *v > '9')
            return -1;
        n = n * 10 + (*v - '0');
        if (n > 0x7fffffffL)
            return -1;
    }
    return n;
}

int systemd_listen_fd(struct sockaddr_storage *addr, char *err, size_t errlen)
{
    long pid = env_uint("LISTEN_PID"), nfds = env_uint("LISTEN_FDS");
    if (pid < 0 || (pid_t)pid != getpid())
        return -1; /* not for us: no socket activation */
    /* Ours now: do not pass the variables on (sd_listen_fds(1) does the same). */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (nfds < 0) {
        snprintf(err, errlen, "LISTEN_PID is this process but LISTEN_FDS is not a count");
        return -2;
    }
    if (nfds == 0)
        return -1;
    if (nfds != 1) {
        snprintf(err, errlen,
                 "systemd passed %ld sockets (LISTEN_FDS); lossweightd takes exactly one: give "
                 "its socket unit one ListenStream=",
                 nfds);
        return -2;
    }
    int fd = SD_LISTEN_FDS_START, type = 0, acc = 0;
    socklen_t tl = sizeof type, al = sizeof acc;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "the socket systemd passed (fd 3) is not usable: %s",
                 strerror(errno));
        return -2;
    }
    if (type != SOCK_STREAM || !acc || (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        snprintf(err, errlen,
                 "the socket systemd passed (fd 3) is not a listening TCP socket: give the "
                 "socket unit a ListenStream= with an IPv4 or IPv6 address and port");
        return -2;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot set up the socket systemd passed (fd 3): %s",
                 strerror(errno));
        return -2;
    }
    *addr = ss;
    return fd;
}
