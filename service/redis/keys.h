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
 *   <prefix>{<name>}:demo     the demo's inventory of SKU <name> (a day)
 *
 * Per instance (not per name):
 *
 *   <prefix>instance:<id>     liveness, refreshed every second (TTL 3 s);
 *                             scripts skip queued waiters of an instance
 *                             whose key is gone
 *   <prefix>notify:<id>       the channel the instance's hand-offs are
 *                             published on
 */
#ifndef LOCKSERVICE_REDIS_KEYS_H
#define LOCKSERVICE_REDIS_KEYS_H

#include "config.h"

#include <stddef.h>

/* Room for any key of a name. */
#define KEY_MAX (KEY_PREFIX_MAX + LOCK_NAME_MAX + 16)

enum key_kind { KEY_LOCK, KEY_FENCE, KEY_QUEUE, KEY_WAITERS, KEY_DEMO };

void keys_init(const struct config *cfg);
/* Writes the key of kind for name into buf (KEY_MAX bytes). Returns its
 * length. name is a valid lock name (at most LOCK_NAME_MAX bytes). */
size_t key_for(char *buf, enum key_kind kind, const char *name);
/* The key prefix (scripts build the per-instance keys from it). */
const char *keys_prefix(void);

#endif
