/* registry.h -- the waiting subsystem: requests parked until a lock is
 * handed to them, their wait ends, or their lock needs another look.
 *
 * Waiting works like this. A refused acquire that may wait has joined its
 * name's queue in Redis (FIFO across every instance; the acquire script did
 * that) and is parked here under its waiter id. It leaves the registry by
 * one of the wake-ups of struct waiter_ops, each of which its owner (the
 * lock engine) turns into at most one Redis call:
 *   - handed:    a release (or a poke) handed the lock to it; the instance's
 *                subscriber received "g <id>" (wait_handed), or a poke's
 *                reply named it;
 *   - wait_over: its deadline passed (its own timer);
 *   - retry:     its name's queue turned out empty (Redis lost it): it
 *                should acquire again.
 * A lease that expires publishes nothing, so each name with parked waiters
 * keeps one timer at the holder's expiry (and at any hand-off that may lapse
 * in front of them, wait_look_at); when it fires, the registry asks its
 * owner to look at the lock (wait_registry_ops.look), whose answer arms it
 * again or wakes a waiter. No waiter polls.
 *
 * To add a new kind of wait: give it a waiter, park it under a name, and
 * handle the three wake-ups; nothing here changes.
 *
 * The registry knows neither libmicrohttpd nor hiredis: suspending and
 * resuming requests is its owner's business, and wake-ups come in through
 * wait_handed / wait_look_at. One registry per worker thread, used from that
 * thread only. */
#ifndef LOCKSERVICE_WAIT_REGISTRY_H
#define LOCKSERVICE_WAIT_REGISTRY_H

#include "config.h"
#include "loop.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct waiter;
struct wait_name;
struct wait_registry;

/* Each wake-up unparks the waiter before it is called. */
struct waiter_ops {
    void (*handed)(struct waiter *w);
    void (*wait_over)(struct waiter *w);
    void (*retry)(struct waiter *w);
};

/* Embedded in its owner; the registry only links it. */
/* A registry name: the lock name qualified by its kind ("lock:orders"). */
#define WAIT_NAME_MAX (SCOPED_NAME_MAX + 16)

struct waiter {
    char id[48];
    char name[WAIT_NAME_MAX + 1];
    const struct waiter_ops *ops;
    struct timer deadline;
    bool parked;
    /* registry links */
    struct waiter *id_next;
    struct waiter *prev, *next; /* the name's parked waiters, oldest first */
    struct wait_name *wn;
    struct wait_registry *reg;
};

struct wait_registry_ops {
    /* Look at lock name: it may be free with its queue unserved. */
    void (*look)(struct wait_registry *r, const char *name);
};

struct wait_registry {
    struct loop *loop;
    const struct wait_registry_ops *ops;
    void *ctx; /* the owner's */
    struct waiter **by_id;
    struct wait_name **by_name;
    size_t buckets; /* power of two */
    unsigned parked, max;
};

/* Sets r up for at most max parked waiters. Returns 0 or -1. */
int wait_registry_init(struct wait_registry *r, struct loop *l, unsigned max,
                       const struct wait_registry_ops *ops, void *ctx);
void wait_registry_free(struct wait_registry *r);

/* Parks w (id and ops set by the caller) under name until deadline_ns;
 * the name is looked at by look_at_ns at the latest. Returns 0, or -1 when
 * max waiters are parked (or out of memory). */
int wait_park(struct wait_registry *r, struct waiter *w, const char *name,
              uint64_t deadline_ns, uint64_t look_at_ns);
/* Takes w out (no wake-up); a waiter not parked is left alone. */
void wait_unpark(struct waiter *w);
/* The waiter parked here under id, or NULL. */
struct waiter *wait_find(struct wait_registry *r, const char *id);
/* The lock was handed to waiter id: wakes it (handed) if parked here.
 * Returns whether it was. */
bool wait_handed(struct wait_registry *r, const char *id);
/* Name needs a look by at_ns (earlier looks stand), if parked here. */
void wait_look_at(struct wait_registry *r, const char *name, uint64_t at_ns);
/* The queue of name is empty: wakes each waiter parked under it (retry). */
void wait_retry_name(struct wait_registry *r, const char *name);
/* Looks at every name that has parked waiters (after a gap in the
 * notifications: one may have been missed). */
void wait_look_all(struct wait_registry *r);
/* Calls fn(ctx, name) for each name that has parked waiters. */
void wait_each_name(struct wait_registry *r,
                    void (*fn)(void *ctx, const char *name), void *ctx);
/* Unparks every waiter and passes each to fn (shutdown). */
void wait_drain(struct wait_registry *r, void (*fn)(struct waiter *w));
/* The same for the waiters of the names pick(ctx, name) is true for. */
void wait_drain_if(struct wait_registry *r,
                   bool (*pick)(void *ctx, const char *name), void *ctx,
                   void (*fn)(struct waiter *w));

#endif
