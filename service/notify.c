/* notify.c -- systemd's readiness protocol: one datagram to
 * $NOTIFY_SOCKET. The unit (deploy/systemd/lockservice.service) is
 * Type=notify, so systemd counts the service as started only when
 * READY=1 arrives, once the listener serves, and shows it stopping at
 * STOPPING=1. */
#include "notify.h"

#include "log.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify_systemd(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len, n = strlen(state);
    ssize_t sent;
    int fd, saved;

    if (path == NULL || path[0] == '\0')
        return 0;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path) {
        log_warn("NOTIFY_SOCKET is neither a path nor @abstract; systemd "
                 "is not told %s",
                 state);
        return -1;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_warn("cannot tell systemd %s: socket: %s", state, strerror(errno));
        return -1;
    }
    /* An abstract name is exactly len bytes; a path includes its NUL. */
    sent = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                              (path[0] == '/')));
    saved = errno;
    close(fd);
    if (sent != (ssize_t)n) {
        log_warn("cannot tell systemd %s: %s", state,
                 sent < 0 ? strerror(saved) : "short write");
        return -1;
    }
    return 0;
}
