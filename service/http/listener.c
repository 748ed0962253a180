/* listener.c -- the listening socket and its accept thread; see listener.h. */
#include "listener.h"

#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024
/* How long the thread rests: at the connection limit, until a close wakes
 * it; after accept fails for lack of descriptors or memory, a while
 * (accepting again at once would spin). */
#define FULL_RECHECK_MS 100 /* a safety net: a freed slot wakes it */
#define ACCEPT_ERROR_PAUSE_MS 100

static int listen_fd = -1;
static int stop_fd = -1; /* eventfd, readable once listener_stop has begun */
static int slot_fd = -1; /* eventfd, written by a close while the thread
                            waits for a free slot */
static atomic_bool awaiting_slot;
static pthread_t accept_tid;
static bool accept_started;
static listener_hand_fn *hand_over;
static unsigned conn_limit;
/* Connections handed over (accept thread only) and closed. Their
 * difference counts a connection from before its hand-over, so a burst
 * cannot overshoot the limit and a close cannot be counted first. */
static atomic_ulong handed_over;
static atomic_ulong closed;

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

/* Waits up to ms milliseconds (-1: for ever) for the stop signal or for fd
 * (a client to accept, or a freed slot; -1 for neither) to be readable.
 * Returns true once stopping. */
static bool wait_for(int ms, int fd)
{
    struct pollfd p[2] = {{.fd = stop_fd, .events = POLLIN},
                          {.fd = fd, .events = POLLIN}};

    if (poll(p, fd >= 0 ? 2 : 1, ms) < 0 && errno != EINTR) {
        log_error("http: poll on the listening socket: %s", strerror(errno));
        poll(p, 1, ACCEPT_ERROR_PAUSE_MS);
    }
    return p[0].revents != 0;
}

unsigned long listener_connections(void)
{
    /* closed first: a close counted after its hand-over was read would
     * wrap the difference. */
    unsigned long done = atomic_load(&closed);

    return atomic_load(&handed_over) - done;
}

unsigned listener_connection_limit(void)
{
    return conn_limit;
}

static bool slots_full(void)
{
    return listener_connections() >= conn_limit;
}

/* At the connection limit: waits until a connection closes. Returns true
 * once stopping. */
static bool wait_for_slot(void)
{
    uint64_t n;
    bool stopping = false;

    /* Announced before the second look, so that a close either is seen
     * here or sees the announcement and writes slot_fd. */
    atomic_store(&awaiting_slot, true);
    if (slots_full()) {
        stopping = wait_for(FULL_RECHECK_MS, slot_fd);
        while (read(slot_fd, &n, sizeof n) > 0)
            ;
    }
    atomic_store(&awaiting_slot, false);
    return stopping;
}

/* Accepts one waiting client, if any, and hands it over. */
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
        wait_for(ACCEPT_ERROR_PAUSE_MS, -1);
        return;
    }
    atomic_fetch_add(&handed_over, 1);
    hand_over(fd, (struct sockaddr *)&addr, len);
}

static void *accept_thread(void *arg)
{
    (void)arg;
    for (;;) {
        if (slots_full()) {
            if (wait_for_slot())
                return NULL;
            continue;
        }
        if (wait_for(-1, listen_fd))
            return NULL;
        accept_one();
    }
}

int listener_start(listener_hand_fn *hand, unsigned max_connections)
{
    int rc;

    hand_over = hand;
    conn_limit = max_connections;
    stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    slot_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd < 0 || slot_fd < 0) {
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

void listener_connection_closed(void)
{
    uint64_t one = 1;

    atomic_fetch_add(&closed, 1);
    /* Should this write ever fail, the thread looks again within
     * FULL_RECHECK_MS all the same. */
    if (atomic_load(&awaiting_slot) &&
        write(slot_fd, &one, sizeof one) != (ssize_t)sizeof one)
        log_debug("http: cannot wake the accept thread: %s", strerror(errno));
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
    /* slot_fd stays open: workers may still report closes until they
     * stop; it is closed with the process. */
}
