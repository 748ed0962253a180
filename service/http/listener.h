/* listener.h -- the listening socket and the one thread that accepts on it,
 * handing each connection to a worker (which adds it to its libmicrohttpd
 * daemon with MHD_add_connection).
 *
 * Ours rather than libmicrohttpd's so that shutdown can stop accepting
 * without MHD_quiesce_daemon: in libmicrohttpd 0.9.75 its thread-pool path
 * removes the listening socket from each worker's epoll set while that
 * worker may be removing it too, and treats the loser's ENOENT as fatal
 * (abort, "Failed to remove listen FD from epoll set"). Here libmicrohttpd
 * never sees a listening socket; stopping is a join and a close. */
#ifndef LOCKSERVICE_LISTENER_H
#define LOCKSERVICE_LISTENER_H

#include <stdbool.h>
#include <sys/socket.h>

/* Takes over an accepted connection (the socket is its to close). */
typedef void listener_hand_fn(int fd, const struct sockaddr *addr,
                              socklen_t len);

/* Binds host:port (IPv6 only when ipv6) and listens. Returns 0, or -1 with
 * the reason logged. */
int listener_open(const char *host, int port, bool ipv6);

/* Starts the accept thread handing connections to hand. While
 * max_connections handed over have not closed yet it stops accepting, and
 * new clients wait in the kernel's backlog. A connection counts from before
 * its hand-over, so a worker that serves and closes it at once cannot make
 * the count wrap. Returns 0 or -1 (logged). */
int listener_start(listener_hand_fn *hand, unsigned max_connections);

/* To be called once per connection handed over, when it is closed (or
 * could not be taken in): the slot is free again. */
void listener_connection_closed(void);

/* Connections handed over and not closed yet (waiting ones
 * included), and the limit they are held to. */
unsigned long listener_connections(void);
unsigned listener_connection_limit(void);

/* Stops accepting and closes the socket: from here on the kernel refuses
 * new connections. Safe to call more than once, or without listener_start. */
void listener_stop(void);

#endif
