/* watch.c -- see watch.h. */
#include "watch.h"

#include "log.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static void on_tidy(struct timer *t)
{
    struct redis_watch *w =
        (struct redis_watch *)((char *)t - offsetof(struct redis_watch, tidy));

    while (w->retired_count > 0)
        redis_conn_free(w->retired[--w->retired_count]);
}

void redis_watch_retire(struct redis_watch *w, struct redis_conn *c)
{
    if (c == NULL)
        return;
    if (w->retired_count == WATCH_RETIRED_MAX) {
        /* Cannot happen: a watcher retires a few per turn, and tidy runs
         * at the end of it. */
        log_error("%s: too many connections to retire", w->what);
        abort();
    }
    w->retired[w->retired_count++] = c;
    loop_timer_arm(&w->loop, &w->tidy, 0);
}

static void on_wake(struct loop_watch *lw, uint32_t events)
{
    struct redis_watch *w =
        (struct redis_watch *)((char *)lw - offsetof(struct redis_watch, wake));
    uint64_t v;

    (void)events;
    if (read(lw->fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug("%s: eventfd read: %s", w->what, strerror(errno));
    if (!atomic_load(&w->stop))
        w->ops->on_wake();
}

static void *watch_main(void *arg)
{
    struct redis_watch *w = arg;

    w->ops->begin();
    w->ops->turn();
    while (!atomic_load(&w->stop)) {
        loop_run_once(&w->loop, -1);
        w->ops->turn();
    }
    w->ops->end();
    on_tidy(&w->tidy);
    loop_timer_disarm(&w->loop, &w->tidy);
    return NULL;
}

int redis_watch_init(struct redis_watch *w, const char *what,
                     const struct redis_watch_ops *ops)
{
    memset(w, 0, sizeof *w);
    w->what = what;
    w->ops = ops;
    timer_init(&w->tidy, on_tidy);
    if (loop_init(&w->loop) < 0) {
        log_error("%s: cannot set up a loop", what);
        return -1;
    }
    w->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->wake.fn = on_wake;
    if (w->wake.fd < 0 || loop_watch_set(&w->loop, &w->wake, EPOLLIN) < 0) {
        log_error("%s: cannot set up: %s", what, strerror(errno));
        if (w->wake.fd >= 0)
            close(w->wake.fd);
        loop_free(&w->loop);
        return -1;
    }
    return 0;
}

void redis_watch_discard(struct redis_watch *w)
{
    loop_watch_set(&w->loop, &w->wake, 0);
    close(w->wake.fd);
    loop_free(&w->loop);
}

int redis_watch_run(struct redis_watch *w)
{
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        log_error("%s: cannot start the watcher thread", w->what);
        redis_watch_discard(w);
        return -1;
    }
    w->running = true;
    return 0;
}

void redis_watch_wake(struct redis_watch *w)
{
    uint64_t one = 1;

    if (w->running && write(w->wake.fd, &one, sizeof one) < 0 &&
        errno != EAGAIN)
        log_debug("%s: eventfd write: %s", w->what, strerror(errno));
}

int redis_watch_fd(const struct redis_watch *w)
{
    return w->wake.fd;
}

bool redis_watch_stopping(struct redis_watch *w)
{
    return atomic_load(&w->stop);
}

void redis_watch_stop(struct redis_watch *w)
{
    if (!w->running)
        return;
    atomic_store(&w->stop, true);
    redis_watch_wake(w);
    pthread_join(w->thread, NULL);
    w->running = false;
    redis_watch_discard(w);
}
