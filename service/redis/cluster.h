/* cluster.h -- the slot map of a Redis Cluster (a redis-cluster:// URL):
 * which master serves each of the 16384 hash slots.
 *
 * A watcher thread asks a node for CLUSTER SLOTS at start, every second,
 * and at once when a worker is told MOVED or loses a master
 * (redis_cluster_suspect); a MOVED also takes effect in the map at once.
 * Nodes get small ids (< CLUSTER_NODES_MAX) that workers index their
 * connections by; an id no slot refers to any more can go to another
 * address, and then its generation changes.
 *
 * The release subscriber needs one node: the watcher points the endpoint
 * (endpoint.h) at a master, and at another one when that one is lost
 * (redis_endpoint_lost) or is a master no more, since a cluster passes
 * every PUBLISH to every node.
 *
 * Thread-safe: the map is read by every worker without a lock (each slot is
 * an atomic; a stale entry costs one MOVED). */
#ifndef LOCKSERVICE_REDIS_CLUSTER_H
#define LOCKSERVICE_REDIS_CLUSTER_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_SLOTS 16384
#define CLUSTER_NODES_MAX 64

/* The hash slot of key (CRC16 of its {hash tag}, or of all of it). */
unsigned cluster_key_slot(const char *key, size_t len);

/* True when --redis is a redis-cluster:// URL. */
bool redis_cluster_enabled(void);
/* Starts the watcher for a redis-cluster:// --redis (else does nothing).
 * Returns 0, or -1 when it cannot start. */
int redis_cluster_start(const struct config *cfg);
void redis_cluster_stop(void);

/* The id of the node serving slot, or -1 while none is known. */
int cluster_slot_node(unsigned slot);
/* Node id's generation (0: it never had an address). */
uint32_t cluster_node_generation(int id);
/* The address of node id, and its generation. Returns false for an id no
 * address has. */
bool cluster_node_addr(int id, char *host, size_t len, int *port,
                       uint32_t *generation);
/* The id of the node at host:port, given one when it has none; -1 when
 * every id is taken. */
int cluster_node_id(const char *host, int port);
/* A node answered MOVED: slot is served at host:port. The map says so at
 * once, and the watcher reads the whole map again. */
void cluster_moved(unsigned slot, const char *host, int port);
/* Asks the watcher to read the map again soon (a master was lost). Any
 * thread. */
void redis_cluster_suspect(void);
/* Whether node id serves a slot in the map last read. */
bool cluster_node_is_master(int id);
/* The masters' ids, ordered by the first slot each serves; at most max.
 * Returns how many. */
size_t cluster_masters(int *ids, size_t max);
/* True when the map last read has a master for every slot. */
bool cluster_serves_all(void);
/* "cluster: host:port host:port ..." (the masters), for /readyz. */
void cluster_describe(char *buf, size_t len);

#endif
