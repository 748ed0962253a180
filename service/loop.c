/* loop.c -- see loop.h. */
#include "loop.h"

#include "clock.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EVENTS_MAX 256

int loop_init(struct loop *l)
{
    l->timers = (struct timer_heap){0};
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    return l->epfd < 0 ? -1 : 0;
}

void loop_free(struct loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    l->epfd = -1;
    timer_heap_free(&l->timers);
}

int loop_watch_set(struct loop *l, struct loop_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    int op;

    if (events == w->events)
        return 0;
    if (events == 0)
        op = EPOLL_CTL_DEL;
    else if (w->events == 0)
        op = EPOLL_CTL_ADD;
    else
        op = EPOLL_CTL_MOD;
    if (epoll_ctl(l->epfd, op, w->fd, &ev) < 0 && !(op == EPOLL_CTL_DEL))
        return -1;
    w->events = events;
    return 0;
}

/* Milliseconds until the first timer, rounded up so that a timer never
 * fires a little early and spins; -1 when none. */
static int timers_timeout_ms(const struct loop *l, uint64_t now)
{
    const struct timer *t = timer_heap_first(&l->timers);

    if (t == NULL)
        return -1;
    if (t->at_ns <= now)
        return 0;
    uint64_t ms = (t->at_ns - now + 999999) / 1000000;
    return ms > 60000 ? 60000 : (int)ms;
}

void loop_run_once(struct loop *l, int max_ms)
{
    struct epoll_event ev[EVENTS_MAX];
    int timeout = timers_timeout_ms(l, clock_now_ns()), n, i;

    if (max_ms >= 0 && (timeout < 0 || max_ms < timeout))
        timeout = max_ms;
    n = epoll_wait(l->epfd, ev, EVENTS_MAX, timeout);
    for (i = 0; i < n; i++) {
        struct loop_watch *w = ev[i].data.ptr;
        /* Taken out of the set by an earlier callback of this turn. */
        if (w->events != 0)
            w->fn(w, ev[i].events);
    }
    if (n < 0 && errno != EINTR)
        usleep(1000); /* EBADF/ENOMEM: never spin */
    timer_heap_run(&l->timers, clock_now_ns());
}

int loop_timer_arm(struct loop *l, struct timer *t, uint64_t at_ns)
{
    return timer_heap_arm(&l->timers, t, at_ns);
}

void loop_timer_disarm(struct loop *l, struct timer *t)
{
    timer_heap_disarm(&l->timers, t);
}
