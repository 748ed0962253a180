/* engine.h -- the lock engine: runs the operations of the lock kinds
 * (kind.h) on the calling worker's Redis connection, and parks acquires
 * that wait in the worker's registry (wait/registry.h).
 *
 * A call is an explicit continuation: the caller fills a struct lock_call,
 * starts it, and returns; call->done runs later on the same thread, exactly
 * once, with call->reply (and call->err when the outcome is
 * LOCK_UNAVAILABLE) filled. Nothing here knows HTTP; a caller that must know
 * when its call waits (to watch its client for a hang-up) sets call->parked.
 *
 * Per instance: a random instance id, a liveness key refreshed every second
 * and one subscriber (on worker 0) receiving the instance's hand-offs. */
#ifndef LOCKSERVICE_LOCK_ENGINE_H
#define LOCKSERVICE_LOCK_ENGINE_H

#include "config.h"
#include "lock/kind.h"
#include "loop.h"
#include "redis/conn.h"
#include "redis/route.h"
#include "wait/registry.h"

#include <stdbool.h>
#include <stdint.h>

/* Why an acquire that would wait was turned away instead. */
enum lock_refusal {
    LOCK_REFUSAL_NONE = 0,
    LOCK_REFUSAL_FULL,     /* the instance parks its --max-waiters */
    LOCK_REFUSAL_SHUTDOWN, /* the instance is stopping */
    LOCK_REFUSAL_GONE,     /* the caller went away before its hand-off */
};

struct lock_call;
typedef void lock_done_fn(struct lock_call *call);

struct lock_call {
    /* Set by the caller. */
    const struct lock_kind *kind;
    char name[SCOPED_NAME_MAX + 1];
    char token[TOKEN_HEX_LEN + 1]; /* acquire: "" to mint, else re-enter */
    int64_t ttl_ms;
    int64_t wait_ms;
    /* The owner label (borrowed: it must live as long as the call, e.g. in
     * the request's parsed body); NULL for none. */
    const char *owner;
    int64_t delay_ms;       /* acquire: lock_delay_ms */
    int64_t permits, limit; /* semaphores */
    bool shared;            /* locks: acquire a shared lease (else exclusive) */
    char request_id[REQUEST_ID_MAX + 1]; /* acquire, release: "" none */
    lock_done_fn *done;
    /* Called with true when the call starts waiting, false when it stops
     * (before done); NULL for none. */
    void (*parked)(struct lock_call *call, bool parked);
    /* Asked before a lock handed to the waiting call is claimed: false
     * when the caller is gone (the hand-off goes on to the next waiter and
     * done runs with refusal LOCK_REFUSAL_GONE); NULL: always there. */
    bool (*present)(struct lock_call *call);
    void *ctx; /* the caller's */

    /* Results. */
    struct lock_reply reply;
    struct redis_error err; /* outcome LOCK_UNAVAILABLE: why */
    enum lock_refusal refusal;
    bool waited; /* the call was parked at some point */
    /* The lock was granted outright to the parked call (no claim): its
     * fence, else 0. */
    int64_t direct_fence;

    /* The engine's. */
    enum lock_op op;
    struct waiter waiter;
    uint64_t deadline_ns;
};

/* Process-wide setup, before any worker starts. Returns 0 or -1. */
int lock_engine_init(const struct config *cfg);
/* Sets up the calling worker thread (index among workers) on its loop:
 * its Redis connection, its registry, and on worker 0 the subscriber and
 * the heartbeat. Returns 0 or -1. */
int lock_engine_thread_start(struct loop *l, unsigned index);
/* Ends the worker's turn: what it queued for Redis leaves in one write. */
void lock_engine_thread_flush(void);
/* Shutdown, phase one: parked waiters leave their queues and are answered
 * (refusal LOCK_REFUSAL_SHUTDOWN); no new call waits. */
void lock_engine_thread_drain(void);
/* Phase two: closes the worker's Redis connections; whatever is in flight
 * fails (its done runs at the next flush), and so does every later call. */
void lock_engine_thread_close(void);
/* Last: frees the worker's state; nothing may be in flight. */
void lock_engine_thread_stop(void);
/* Starts refusing to park on every thread (called once, from any). */
void lock_engine_stop_waiting(void);

/* Operations; each ends in call->done. */
void lock_call_acquire(struct lock_call *call);
void lock_call_renew(struct lock_call *call);
void lock_call_release(struct lock_call *call);
/* Status, with up to LOCK_LIST_MAX queued waiters (reply.queue, freed by
 * lock_reply_free); with call->token set, reply.owned says whether that
 * token holds the lock. */
void lock_call_status(struct lock_call *call);
/* Force release: reply.forced, the leases it ended (an exclusive one, or
 * every shared one), the first LOCK_LIST_MAX of them with their owners and
 * fences in reply.holders (the first also in reply.lease). */
void lock_call_force(struct lock_call *call);
/* The caller's client is gone while the call waits: it leaves the queue
 * (a hand-off to it goes on) and done is never called. */
void lock_call_abandon(struct lock_call *call);

/* A slot among the instance's --max-waiters for a request that waits
 * without a lock call (the demo's timed pause). Returns false when all are
 * taken. Give it back with lock_engine_give_slot. */
bool lock_engine_take_slot(void);
void lock_engine_give_slot(void);

/* Any command for a caller outside the lock kinds (the demo's store,
 * readiness, listing): on the calling worker's route to Redis. */
struct redis_route *lock_engine_route(void);

/* The Redis script fence floor: callers that see fences elsewhere raise
 * it. */
void lock_fence_seen(int64_t fence);

#endif
