/* account.c -- see account.h. */
#include "stats/account.h"

#include "clock.h"
#include "lock/kind.h"
#include "metrics.h"
#include "stats/hot.h"

static enum call_outcome call_outcome(const struct lock_call *c)
{
    switch (c->reply.outcome) {
    case LOCK_OK:
        return CALL_OK;
    case LOCK_NOT_HELD:
        return CALL_NOT_HELD;
    case LOCK_NOT_OWNER:
        return CALL_NOT_OWNER;
    default:
        return CALL_UNAVAILABLE;
    }
}

static void acquired(const struct lock_call *c, enum metrics_kind kind)
{
    bool granted =
        c->reply.outcome == LOCK_OK && c->refusal == LOCK_REFUSAL_NONE;
    bool held = c->reply.outcome == LOCK_HELD;
    uint64_t now = clock_now_ns(),
             start = c->deadline_ns - MS_TO_NS(c->wait_ms);
    uint64_t waited = c->waited && now > start ? now - start : 0;

    if (kind == METRICS_LOCK && (granted || held))
        metrics_acquire(granted          ? ACQUIRE_GRANTED
                        : c->wait_ms > 0 ? ACQUIRE_TIMEOUT
                                         : ACQUIRE_HELD);
    if (c->waited)
        metrics_wait(kind,
                     granted ? WAIT_GRANTED
                     : held  ? WAIT_TIMEOUT
                             : WAIT_FAILED,
                     waited);
    /* Contended: it waited, or the name was held. */
    if (c->waited || held)
        hot_record(kind == METRICS_LOCK ? HOT_LOCK : HOT_SEMAPHORE, c->name,
                   waited, granted);
}

void stats_call_done(const struct lock_call *c)
{
    enum metrics_kind kind =
        c->kind == &lock_kind_semaphore ? METRICS_SEMAPHORE : METRICS_LOCK;
    enum call_outcome o = call_outcome(c);

    switch (c->op) {
    case LOCK_OP_ACQUIRE:
    case LOCK_OP_CLAIM:
    case LOCK_OP_LEAVE:
    case LOCK_OP_POKE:
        acquired(c, kind);
        break;
    case LOCK_OP_RENEW:
        metrics_renew(kind, o);
        if (o == CALL_NOT_HELD || o == CALL_NOT_OWNER)
            metrics_lease_end(kind, LEASE_LOST, 1);
        break;
    case LOCK_OP_RELEASE:
        if (o == CALL_OK && c->reply.lease.count > 0)
            o = CALL_HELD;
        metrics_release(kind, o);
        if (o == CALL_OK) {
            metrics_lease_end(kind, LEASE_RELEASED, 1);
            if (c->reply.held_ms >= 0)
                metrics_hold(kind, MS_TO_NS(c->reply.held_ms));
        } else if (o == CALL_NOT_HELD || o == CALL_NOT_OWNER)
            metrics_lease_end(kind, LEASE_EXPIRED, 1);
        break;
    case LOCK_OP_FORCE:
        if (c->reply.outcome == LOCK_OK && c->reply.forced > 0)
            metrics_lease_end(kind, LEASE_FORCED, (uint64_t)c->reply.forced);
        break;
    case LOCK_OP_STATUS:
    case LOCK_OP_COUNT:
        break;
    }
}
