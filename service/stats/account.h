/* account.h -- what a finished lock call tells the metrics and the hot
 * locks table: one place for every caller of the engine (the lock and
 * semaphore APIs, the demo). */
#ifndef LOCKSERVICE_STATS_ACCOUNT_H
#define LOCKSERVICE_STATS_ACCOUNT_H

#include "lock/engine.h"

/* Counts c's outcome: called once per lock call, when it is done. */
void stats_call_done(const struct lock_call *c);

#endif
