/* keys.h -- the Redis key schema, in one place.
 *
 * Every key of a lock name carries the name as its hash tag, so that every
 * script touches one slot (ready for Redis Cluster):
 *
 *   <prefix>{<name>}:lock     the lease (a hash; TTL = the lease)
 *   <prefix>{<name>}:fence    the last fence handed out (TTL = lease + 60 s)
 *   <prefix>{<name>}:queue    waiter ids in arrival order (a list; TTL =
 *                             the longest wait queued)
 *   <prefix>{<name>}:waiters  each queued waiter's entry (a hash; same TTL)
 *   <prefix>{<name>}:delay    while an expired lease's lock-delay runs
 *   <prefix>{<name>}:shared   the shared leases (a hash: token -> the
 *                             lease); TTL = the latest expiry + its delay
 *   <prefix>{<name>}:shared:expiry  each shared lease's token by its
 *                             expiry in ms (a sorted set; same TTL)
 *   <prefix>{<name>}:acq:<id> the token request_id <id> got (lease + 60 s)
 *   <prefix>{<name>}:rel:<id> "<token> <count left>" of release request_id <id>
 *   <prefix>{<name>}:forced:<token>  a force-released lease's token, as
 *                             long as the lease would have run
 *   <prefix>{<name>}:demo     the demo's inventory of SKU <name> (a day)
 *
 * A semaphore of the same name has keys of its own (sem_prelude.lua):
 *
 *   <prefix>{<name>}:sem          its holders (a hash: "limit", "used",
 *                                 "pending", and token -> the lease); TTL =
 *                                 the latest holder expiry
 *   <prefix>{<name>}:sem:expiry   each holder's token by its expiry in ms
 *                                 (a sorted set; same TTL)
 *   <prefix>{<name>}:sem:fence    the last fence handed out (TTL = the
 *                                 latest holder expiry + 60 s)
 *   <prefix>{<name>}:sem:queue    waiter ids in arrival order (a list; TTL
 *                                 = the longest wait queued + 1 s)
 *   <prefix>{<name>}:sem:waiters  each queued waiter's entry (same TTL)
 *   <prefix>{<name>}:sem:acq:<id> the token request_id <id> got (lease +
 *                                 60 s); sem:rel:<id> the permits release
 *                                 request_id <id> gave back (same)
 *
 * Liveness, per name, in the name's slot:
 *
 *   <queue key>:alive:<id>    instance <id> has waiters queued there:
 *                             set by the script that queues one, refreshed
 *                             every second while any is parked (TTL 3 s);
 *                             scripts skip queued waiters of an instance
 *                             whose key is gone
 *
 * Per instance (a channel, no key):
 *
 *   <prefix>notify:<id>       the channel the instance's hand-offs are
 *                             published on
 */
#ifndef LOCKSERVICE_REDIS_KEYS_H
#define LOCKSERVICE_REDIS_KEYS_H

#include "config.h"

#include <stddef.h>

/* Room for any key of a name, a request record's ("{name}:sem:acq:<id>")
 * included. */
#define KEY_MAX (KEY_PREFIX_MAX + SCOPED_NAME_MAX + REQUEST_ID_MAX + 24)

enum key_kind {
    KEY_LOCK,
    KEY_FENCE,
    KEY_QUEUE,
    KEY_WAITERS,
    KEY_DELAY,
    KEY_DEMO,
    KEY_SEM,
    KEY_SEM_EXPIRY,
    KEY_SEM_FENCE,
    KEY_SEM_QUEUE,
    KEY_SEM_WAITERS,
    KEY_SHARED,
    KEY_SHARED_EXPIRY
};

void keys_init(const struct config *cfg);
/* Writes the key of kind for name into buf (KEY_MAX bytes). Returns its
 * length. name is a valid lock name (at most SCOPED_NAME_MAX bytes). */
size_t key_for(char *buf, enum key_kind kind, const char *name);
/* Writes the key of request record "<what>:<id>" ("acq" or "rel"; for a
 * semaphore "sem:acq" or "sem:rel") of name into buf (KEY_MAX bytes; id at
 * most REQUEST_ID_MAX). Returns its length. */
size_t key_for_record(char *buf, const char *what, const char *name,
                      const char *id);
/* The key prefix (scripts build the per-instance keys from it). */
const char *keys_prefix(void);

#endif
