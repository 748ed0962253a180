/* watch.h -- a thread of its own that watches Redis from the outside: the
 * sentinel watcher (sentinel.c) and the cluster's slot map (cluster.c).
 *
 * It runs its own loop, asynchronous like the workers' connections
 * (conn.h), so no worker ever waits for it. A wake-up eventfd calls
 * on_wake on the thread (and stops it). Connections the thread is done
 * with are retired: freed from a timer, never from inside one of their own
 * callbacks; their commands still in flight then fail with
 * REDIS_FAIL_STOPPING, which every callback of a watcher ignores. */
#ifndef LOCKSERVICE_REDIS_WATCH_H
#define LOCKSERVICE_REDIS_WATCH_H

#include "loop.h"
#include "redis/conn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define WATCH_RETIRED_MAX 16

/* What a watcher does on its thread, all called there. */
struct redis_watch_ops {
    void (*begin)(void);   /* first */
    void (*turn)(void);    /* after each turn of the loop: the flushes */
    void (*on_wake)(void); /* redis_watch_wake was called */
    void (*end)(void);     /* last: retire what is left, disarm timers */
};

struct redis_watch {
    const char *what; /* for the logs: "sentinel", "cluster" */
    const struct redis_watch_ops *ops;
    struct loop loop;
    pthread_t thread;
    atomic_bool running;
    atomic_bool stop;
    struct loop_watch wake;
    struct redis_conn *retired[WATCH_RETIRED_MAX];
    size_t retired_count;
    struct timer tidy;
};

/* Sets w up (its loop and wake-up); the caller may add watches and timers
 * to w->loop before redis_watch_run. Returns 0 or -1 (logged). */
int redis_watch_init(struct redis_watch *w, const char *what,
                     const struct redis_watch_ops *ops);
/* Starts the thread. Returns 0, or -1 (logged; w is freed). */
int redis_watch_run(struct redis_watch *w);
/* Stops the thread and waits for it, then frees w; fine when it never
 * ran. */
void redis_watch_stop(struct redis_watch *w);
/* Frees w set up but never run. */
void redis_watch_discard(struct redis_watch *w);
/* Has on_wake run soon. Any thread. */
void redis_watch_wake(struct redis_watch *w);
/* The wake-up's eventfd (for redis_endpoint_on_suspect). */
int redis_watch_fd(const struct redis_watch *w);
/* True once the thread is asked to stop. */
bool redis_watch_stopping(struct redis_watch *w);
/* Frees c at the end of this turn (NULL is fine). Thread only. */
void redis_watch_retire(struct redis_watch *w, struct redis_conn *c);

#endif
