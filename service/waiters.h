/* waiters.h -- the instance's waiter registry.
 *
 * A request that must wait (for a lock, or for a timed pause) registers its
 * struct waiter and suspends its connection. One thread owns the registry's
 * epoll set: the Redis subscriber connection that receives release
 * notifications, a timer heap (holder expiry, the waiter's own deadline), and
 * each waiter's client socket so a client that hangs up leaves at once. It
 * resumes a connection with waiter.wake saying why; the handler then runs
 * again on its worker thread. No waiter holds a thread or polls Redis. */
#ifndef LOCKSERVICE_WAITERS_H
#define LOCKSERVICE_WAITERS_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

struct MHD_Connection;
struct name_bucket;

enum waiter_wake {
    WAKE_NONE = 0, /* not woken (fresh request, or still waiting) */
    WAKE_RELEASED, /* a release of the name was published */
    WAKE_TIMER, /* the holder's lease should have run out, or a pause ended */
    WAKE_DEADLINE,     /* the waiter's own wait_ms ran out */
    WAKE_BACKEND_LOST, /* the subscriber lost Redis: retry (503 if still down)
                        */
    WAKE_SHUTDOWN,     /* the service is stopping: answer 503 */
    WAKE_CLIENT_GONE,  /* the client hung up: drop the request */
};

/* An entry of the registry's timer heap. */
struct registry_timer {
    uint64_t at_ns;
    size_t heap_index;
    bool armed;
    bool is_bucket; /* a name's holder-expiry timer, else a waiter's own */
};

/* Embedded in each request; the registry only links it. */
struct waiter {
    struct MHD_Connection *conn;
    char name[LOCK_NAME_MAX + 1]; /* empty for a pure timer */
    struct registry_timer timer;  /* the wait's deadline, or the pause's end */
    enum waiter_wake wake;
    bool registered;
    bool baton; /* woken to try the lock for its queue: use it or pass it */
    char ticket[24]; /* hand-off ticket of the release that woke it, or "" */
    char id[40];     /* its entry in the name's Redis waiter set, or "" */
    int fd;
    uint32_t gen;
    struct waiter *prev, *next; /* FIFO of waiters on the same name */
    struct name_bucket *bucket;
};

/* Starts the registry thread (and its subscriber). Returns 0 or -1. */
int waiters_start(const struct config *cfg);
/* Graceful shutdown, phase one: every lock waiter is resumed with
 * WAKE_SHUTDOWN and no new one may register; timed pauses of in-flight
 * requests still run to their end. */
void waiters_drain(void);
/* Phase two: resumes whatever still waits with WAKE_SHUTDOWN and stops the
 * thread. */
void waiters_stop(void);

enum waiters_result { WAIT_OK, WAIT_FULL, WAIT_SHUTTING_DOWN, WAIT_RETRY };

/* Registers w for lock name and suspends conn. Call from the connection's
 * handler. retry_at_ns: when the holder's lease runs out (a name keeps one
 * such timer for all its local waiters and wakes one of them when it fires);
 * deadline_ns: when this wait ends. attempt_ns: when the failed acquire was
 * sent, so that a release seen since is not missed (WAIT_RETRY: try again
 * now, nothing registered); 0 registers regardless. WAIT_FULL: the waiter
 * limit is reached. */
enum waiters_result waiters_wait(struct waiter *w, struct MHD_Connection *conn,
                                 const char *name, uint64_t attempt_ns,
                                 uint64_t retry_at_ns, uint64_t deadline_ns);
/* Suspends conn until until_ns (a timed pause inside a request). */
enum waiters_result waiters_sleep(struct waiter *w, struct MHD_Connection *conn,
                                  uint64_t until_ns);
/* A waiter woken on this instance learnt when the lease on its name ends
 * (it got the lock, or found it held and is leaving): the name's other local
 * waiters now wait for that lease, which may end without a release. */
void waiters_lease_ends(struct waiter *w, uint64_t expires_ns);
/* The woken waiter used its wake-up: it got the lock, or found it held by
 * someone whose release or expiry wakes the queue again. */
void waiters_baton_used(struct waiter *w);
/* Called when a request ends: unlinks w if still registered, and passes an
 * unused wake-up on to the next waiter of the name. */
void waiters_done(struct waiter *w);

#endif
