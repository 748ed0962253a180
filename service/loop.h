/* loop.h -- one event loop per worker thread: an epoll set of watched
 * descriptors and a timer heap. Everything a worker owns (its HTTP
 * connections, its Redis connection, its parked waiters) runs from here, on
 * that thread only, so none of it takes a lock. */
#ifndef LOCKSERVICE_LOOP_H
#define LOCKSERVICE_LOOP_H

#include "wait/timer_heap.h"

#include <stdbool.h>
#include <stdint.h>

struct loop_watch;
/* events: the EPOLL* bits that are ready. */
typedef void loop_watch_fn(struct loop_watch *w, uint32_t events);

/* A descriptor watched by a loop; embedded in its owner. */
struct loop_watch {
    int fd;
    uint32_t events; /* EPOLL* bits asked for; 0 while not in the set */
    loop_watch_fn *fn;
};

struct loop {
    int epfd;
    struct timer_heap timers;
};

/* Returns 0, or -1 with errno set. */
int loop_init(struct loop *l);
void loop_free(struct loop *l);

/* Asks for events (EPOLLIN, EPOLLOUT, EPOLLRDHUP...) on w->fd, adding w to
 * the set, changing what it asks for, or (events 0) taking it out. Returns
 * 0, or -1 with errno set. */
int loop_watch_set(struct loop *l, struct loop_watch *w, uint32_t events);

/* Waits up to max_ms (-1: no limit of the caller's) or until the first
 * timer is due, runs the callbacks of ready descriptors, then the timers
 * due. */
void loop_run_once(struct loop *l, int max_ms);

int loop_timer_arm(struct loop *l, struct timer *t, uint64_t at_ns);
void loop_timer_disarm(struct loop *l, struct timer *t);

#endif
