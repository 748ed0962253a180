/* listener.c -- the listening socket and its accept thread; see listener.h. */
#include "listener.h"

#include "log.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024
/* How long the thread rests when it may not accept: at the connection limit
 * (a connection may close at any moment) or out of descriptors or memory
 * (accepting again at once would only spin). */
#define FULL_RECHECK_MS 20
#define ACCEPT_ERROR_PAUSE_MS 100

static int listen_fd = -1;
static int stop_fd = -1; /* eventfd, readable once listener_stop has begun */
static pthread_t accept_tid;
static bool accept_started;
static struct MHD_Daemon *mhd;
static unsigned conn_limit;
static unsigned (*conn_count)(void);

int listener_open(const char *host, int port, bool ipv6)
{
    struct addrinfo hints = {0}, *ai = NULL;
    char service[8];
    int one = 1, rc, fd;

    hints.ai_family = ipv6 ? AF_INET6 : AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", port);
    rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) {
        log_error("--listen: cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (ipv6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        log_error("cannot listen on %s:%d: %s", host, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return -1;
    }
    freeaddrinfo(ai);
    listen_fd = fd;
    return 0;
}

/* Waits up to ms milliseconds (-1: for ever) for the stop signal or, when
 * with_listen, for a client to accept. Returns true once stopping. */
static bool wait_for_work(int ms, bool with_listen)
{
    struct pollfd p[2] = {{.fd = stop_fd, .events = POLLIN},
                          {.fd = listen_fd, .events = POLLIN}};

    if (poll(p, with_listen ? 2 : 1, ms) < 0 && errno != EINTR) {
        log_error("http: poll on the listening socket: %s", strerror(errno));
        poll(p, 1, ACCEPT_ERROR_PAUSE_MS);
    }
    return p[0].revents != 0;
}

/* Accepts one waiting client, if any, and hands it to libmicrohttpd. */
static void accept_one(void)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    int fd = accept4(listen_fd, (struct sockaddr *)&addr, &len,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
        /* Gone before we took it, or a signal: nothing to do. */
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
            errno == ECONNABORTED || errno == EPROTO)
            return;
        log_error("http: accept: %s; pausing %d ms", strerror(errno),
                  ACCEPT_ERROR_PAUSE_MS);
        wait_for_work(ACCEPT_ERROR_PAUSE_MS, false);
        return;
    }
    /* On failure libmicrohttpd has closed the socket already. */
    if (MHD_add_connection(mhd, fd, (struct sockaddr *)&addr, len) != MHD_YES)
        log_warn("http: a new connection was dropped: %s", strerror(errno));
}

static void *accept_thread(void *arg)
{
    (void)arg;
    for (;;) {
        bool full = conn_count() >= conn_limit;

        if (wait_for_work(full ? FULL_RECHECK_MS : -1, !full))
            return NULL;
        if (!full)
            accept_one();
    }
}

int listener_start(struct MHD_Daemon *daemon, unsigned max_connections,
                   unsigned (*open_connections)(void))
{
    int rc;

    mhd = daemon;
    conn_limit = max_connections;
    conn_count = open_connections;
    stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd < 0) {
        log_error("http: eventfd: %s", strerror(errno));
        return -1;
    }
    rc = pthread_create(&accept_tid, NULL, accept_thread, NULL);
    if (rc != 0) {
        log_error("http: cannot start the accept thread: %s", strerror(rc));
        return -1;
    }
    accept_started = true;
    return 0;
}

void listener_stop(void)
{
    uint64_t one = 1;

    if (accept_started) {
        /* An eventfd write of 1 fails only on counter overflow; if it ever
         * did, the sockets stay open rather than be closed under the
         * thread still polling them. */
        if (write(stop_fd, &one, sizeof one) != (ssize_t)sizeof one) {
            log_error("http: cannot signal the accept thread: %s",
                      strerror(errno));
            return;
        }
        pthread_join(accept_tid, NULL);
        accept_started = false;
    }
    if (listen_fd >= 0)
        close(listen_fd);
    listen_fd = -1;
    if (stop_fd >= 0)
        close(stop_fd);
    stop_fd = -1;
}
