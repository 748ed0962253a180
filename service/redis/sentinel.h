/* sentinel.h -- the sentinel watcher of a redis-sentinel:// URL: keeps the
 * endpoint (endpoint.h) on the master the sentinels name.
 *
 * It runs on a thread of its own with its own loop, asynchronous like the
 * workers' connections (conn.h), so no worker ever waits for it.
 * Discovery asks the sentinels in turn SENTINEL get-master-addr-by-name
 * MASTER (each answer within --redis-timeout-ms), connects to the address
 * given and checks that ROLE says master; then the endpoint moves there and
 * every connection follows. On any failure it asks the next sentinel after
 * a backoff (100 ms doubling to 1 s). It stays subscribed to +switch-master
 * on one sentinel (moving to the next when that one is down) and looks
 * again on each switch of its master, on each (re)subscription (a switch
 * may have passed unheard meanwhile) and whenever a connection finds that
 * the master is none (redis_endpoint_suspect). */
#ifndef LOCKSERVICE_REDIS_SENTINEL_H
#define LOCKSERVICE_REDIS_SENTINEL_H

#include "config.h"

/* Starts the watcher when cfg->redis is a Sentinel URL (else does
 * nothing); cfg must outlive it. Call after redis_conns_init and before
 * the workers connect. Returns 0 or -1. */
int redis_sentinel_start(const struct config *cfg);
/* Stops the watcher and waits for its thread; fine when none runs. */
void redis_sentinel_stop(void);

#endif
