/* lock_engine.h -- exclusive leases on named locks. Every state change is one
 * Lua script (service/lua/), so it is atomic in Redis; one round trip per
 * call. No HTTP here: handlers translate the results. */
#ifndef LOCKSERVICE_LOCK_ENGINE_H
#define LOCKSERVICE_LOCK_ENGINE_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

enum lock_result {
    LOCK_OK,
    LOCK_HELD,        /* another lease holds it (retry_after_ms set) */
    LOCK_NOT_HELD,    /* no lease on the name */
    LOCK_NOT_OWNER,   /* the token given does not hold it */
    LOCK_HOLD_LIMIT,  /* re-entry would pass max_hold_count */
    LOCK_UNAVAILABLE, /* Redis unreachable, timed out or failed */
};

struct lease {
    char token[TOKEN_HEX_LEN + 1];
    int64_t fence;
    int64_t count;
    int64_t ttl_ms; /* granted TTL (acquire, renew) or remaining (status) */
    char owner[OWNER_BYTES_MAX + 1];
    bool held;              /* status only */
    int64_t retry_after_ms; /* LOCK_HELD: the holder's remaining TTL */
    int64_t reserved_ms;    /* status of a free lock: > 0 while a release
                               reserves it for the waiter it woke */
};

void lock_engine_init(const struct config *cfg);

/* How an acquire that may wait shows itself to releases. */
struct lock_wait {
    int64_t ms;         /* how much longer the caller will wait (0: no more) */
    const char *id;     /* unique per waiting request (lock_waiter_id) */
    const char *ticket; /* hand-off ticket of the release that woke it, or
                           NULL */
};

#define LOCK_WAITER_ID_MAX 40

/* Acquires name for ttl_ms. token NULL mints a new lease; a token re-enters
 * the lease it names. wait NULL: the caller does not wait. Otherwise a
 * refusal enters wait->id in the name's waiter set until wait->ms from now,
 * so that a release publishes a notification and reserves the lock for the
 * waiter it wakes; a grant takes it out again. Fills *out on LOCK_OK and
 * retry_after_ms on LOCK_HELD. */
enum lock_result lock_acquire(const char *name, const char *token,
                              int64_t ttl_ms, const char *owner,
                              const struct lock_wait *wait, struct lease *out);
/* Writes a new waiter id (this instance's random id and a counter). */
void lock_waiter_id(char out[LOCK_WAITER_ID_MAX]);
/* Takes a waiter that will not try again (its client hung up, or it was
 * refused a place) out of the name's waiter set, so that releases stop
 * reserving the lock for it. Best effort: the entry would end with its wait
 * anyway. */
void lock_waiter_gone(const char *name, const char *id);
/* ttl_ms 0: keep the TTL the lease was granted with. */
enum lock_result lock_renew(const char *name, const char *token, int64_t ttl_ms,
                            struct lease *out);
/* *count receives the remaining hold count. */
enum lock_result lock_release(const char *name, const char *token,
                              int64_t *count);
enum lock_result lock_status(const char *name, struct lease *out);
/* PING on this thread's connection. Returns 0 or -1. */
int lock_engine_ping(void);

/* Writes "<prefix><kind>:<name>" into buf. Returns its length, or 0 if it
 * does not fit. Shared with the demo, which keeps its keys beside these. */
size_t lock_key(char *buf, size_t buflen, const char *kind, const char *name);
/* The channel release notifications ("<name> <ticket>") are published on. */
const char *lock_release_channel(void);

#endif
