/*
 * notify.c -- sd_notify(3) for Type=notify, without linking libsystemd.
 *
 * systemd passes a datagram socket in $NOTIFY_SOCKET (a path, or an
 * abstract name starting with '@'); we send READY=1 once we accept
 * connections, STATUS= lines, and STOPPING=1 on SIGTERM. Without the
 * variable (not under systemd) this does nothing. Failures are ignored:
 * notification is advisory.
 */
#include "server.h"

#include <stddef.h>
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
