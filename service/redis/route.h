/* route.h -- a worker's way to Redis: its one connection (redis://,
 * unix://, Sentinel), or, for a Redis Cluster, one connection per master,
 * each command going to the master of its first key's slot (cluster.h).
 *
 * In a cluster a command that comes back MOVED goes on to the node named
 * (and the slot map learns it), one that comes back ASK goes there behind
 * an ASKING, and one that comes back TRYAGAIN (a slot half migrated) goes
 * again 20 ms later (to the ASK's node while the slot migrates), until
 * --redis-timeout-ms has passed; at most five MOVED a command. Its
 * callback sees only the final answer. Commands
 * to one node keep their order; commands to different nodes need not.
 *
 * The callbacks are conn.h's. Used by its worker's thread only. */
#ifndef LOCKSERVICE_REDIS_ROUTE_H
#define LOCKSERVICE_REDIS_ROUTE_H

#include "loop.h"
#include "redis/conn.h"

#include <stdbool.h>
#include <stddef.h>

struct redis_route;

/* Process-wide setup (and conn.h's): call once before any route. */
void redis_routes_init(const struct config *cfg);

/* The worker's route on loop l; it connects at once. NULL when out of
 * memory. */
struct redis_route *redis_route_new(struct loop *l);
/* Runs each time a connection of the route goes down: node is the cluster
 * node's id, or -1 for the one connection outside a cluster. */
typedef void redis_route_down_fn(void *ctx, int node);
void redis_route_on_down(struct redis_route *r, redis_route_down_fn *fn,
                         void *ctx);
/* Whether key is served by node (as redis_route_down_fn names it): always
 * for -1. */
bool redis_route_serves(int node, const char *key, size_t len);
/* Drops every connection for good (commands in flight fail), then frees r
 * with redis_route_free; NULL is fine. */
void redis_route_close(struct redis_route *r);
void redis_route_free(struct redis_route *r);

/* As redis_conn_script and redis_conn_script_acked: to the node of the
 * first key (argv[0]; nkeys >= 1). */
void redis_route_script(struct redis_route *r, struct redis_script *s,
                        int nkeys, int argc, const char **argv,
                        const size_t *lens, redis_done_fn *fn, void *ctx);
void redis_route_script_acked(struct redis_route *r, struct redis_script *s,
                              int nkeys, int argc, const char **argv,
                              const size_t *lens, redis_done_fn *fn, void *ctx);
/* As redis_conn_command: to the node of key argv[1] (argc >= 2). */
void redis_route_command(struct redis_route *r, int argc, const char **argv,
                         const size_t *lens, redis_done_fn *fn, void *ctx);

/* The masters, for what asks each of them (SCAN, PING): their ids into
 * ids (at most max; one, 0, when not a cluster). Returns how many; 0 while
 * a cluster's map is not known yet. */
size_t redis_route_masters(int *ids, size_t max);
/* As redis_conn_command, to master id (from redis_route_masters) as it is:
 * not redirected. */
void redis_route_command_at(struct redis_route *r, int id, int argc,
                            const char **argv, const size_t *lens,
                            redis_done_fn *fn, void *ctx);

/* Ends the worker's turn: redis_conn_flush on each connection. */
void redis_route_flush(struct redis_route *r);

#endif
