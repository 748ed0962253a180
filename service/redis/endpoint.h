/* endpoint.h -- where the command connections and the release subscriber
 * go: the one Redis of a redis:// or unix:// URL, or the master the
 * sentinels of a redis-sentinel:// URL name (sentinel.h keeps it current).
 * For a redis-cluster:// URL only the subscriber goes here: to the master
 * cluster.h picks; commands go by the slot map (route.h).
 * Every connection asks here each time it connects, so this is the one
 * place a new way of finding Redis (a cluster's slot map) plugs in.
 *
 * Thread-safe: read by every worker, written by the sentinel watcher. */
#ifndef LOCKSERVICE_REDIS_ENDPOINT_H
#define LOCKSERVICE_REDIS_ENDPOINT_H

#include "config.h"

#include <stdbool.h>
#include <stdint.h>

/* Where to connect, as of one moment. */
struct redis_endpoint {
    bool is_unix;
    char host[REDIS_HOST_MAX]; /* or the socket path when is_unix */
    int port;
    /* Changes each time the address does; 0 while none is known. */
    uint64_t generation;
};

/* Process-wide setup from --redis. Call once, before any connection. */
void redis_endpoint_init(const struct config *cfg);
/* True when the address is found at run time (Sentinel): connections then
 * check ROLE and follow the address when it moves. */
bool redis_endpoint_discovered(void);
/* Copies the current address into *out. Returns false when none is known
 * yet (Sentinel, before the first answer). */
bool redis_endpoint_get(struct redis_endpoint *out);
/* The current address's generation (0: none yet). */
uint64_t redis_endpoint_generation(void);
/* The address in use as "host:port" ("unix:/path"; "" while none is
 * known), for /readyz and the logs. */
void redis_endpoint_describe(char *buf, size_t len);

/* The sentinel watcher's: a master was found at host:port. Returns true
 * when that is a change (a new generation: every eventfd given to
 * redis_endpoint_watch is written, and the change is counted). */
bool redis_endpoint_set(const char *host, int port);
/* The watcher's eventfd, written by redis_endpoint_suspect; -1: none. */
void redis_endpoint_on_suspect(int fd);
/* A connection found the address is no master now (a READONLY reply, or
 * ROLE said replica): asks the watcher to look again. Any thread. */
void redis_endpoint_suspect(void);

/* A connection that followed the endpoint at generation went down (not
 * because the endpoint moved): in a cluster that node may be gone, so the
 * watcher is asked to look for another (as redis_endpoint_suspect). */
void redis_endpoint_lost(uint64_t generation);

/* Adds eventfd fd to those written on each change (a connection's, on its
 * worker's loop). Returns 0, or -1 when too many are watching. */
int redis_endpoint_watch(int fd);
/* Takes fd out again; unknown fds are ignored. */
void redis_endpoint_unwatch(int fd);

#endif
