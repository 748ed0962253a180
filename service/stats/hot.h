/* hot.h -- the names this instance saw most contended lately: a bounded
 * in-memory top-k (Space-Saving, Metwally et al. 2005) per 10 s slot, six
 * slots making the last minute. Only contended acquires enter it (one that
 * waited, or was refused because the name was held), so an uncontended
 * grant costs nothing here. Per instance: each instance sees its own
 * clients only. */
#ifndef LOCKSERVICE_STATS_HOT_H
#define LOCKSERVICE_STATS_HOT_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOT_WINDOW_S 60
#define HOT_SLOT_S 10
/* Names tracked per slot; a name outside the top HOT_TRACKED of a slot may
 * be under-reported there by at most the slot's smallest count. */
#define HOT_TRACKED 64
#define HOT_LIMIT_MAX 100

enum hot_kind { HOT_LOCK, HOT_SEMAPHORE };

struct hot_entry {
    enum hot_kind kind;
    char name[SCOPED_NAME_MAX + 1]; /* as the engine knows it */
    uint64_t waits;                 /* contended acquires (an upper bound) */
    uint64_t error;                 /* waits overestimates by at most this */
    uint64_t wait_ns;               /* time those acquires waited */
    uint64_t grants;                /* of them, granted */
};

/* One contended acquire of name: it waited wait_ns (0: refused at once)
 * and was granted or not. Thread-safe. */
void hot_record(enum hot_kind kind, const char *name, uint64_t wait_ns,
                bool granted);

/* The at most max most contended names of the last HOT_WINDOW_S seconds
 * whose engine name starts with prefix (a namespace plus "/"; "": the
 * names outside every namespace), most waits first, into out. Returns how
 * many. */
size_t hot_top(const char *prefix, struct hot_entry *out, size_t max);

#endif
