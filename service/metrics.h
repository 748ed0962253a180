/* metrics.h -- process-wide counters, rendered as Prometheus text. All
 * updates are lock-free atomics so the hot path pays a few increments. */
#ifndef LOCKSERVICE_METRICS_H
#define LOCKSERVICE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum acquire_outcome { ACQUIRE_GRANTED, ACQUIRE_HELD, ACQUIRE_TIMEOUT };

/* route_index is the row of the route table (routes.c), or -1 for "no
 * route". */
void metrics_request(int route_index, const char *method, unsigned status,
                     uint64_t duration_ns);
void metrics_acquire(enum acquire_outcome outcome);
void metrics_waiters_add(int delta);
/* Why a Redis call failed, for lockservice_redis_errors_total{reason}. */
enum redis_error_reason {
    REDIS_ERROR_UNREACHABLE, /* not connected, or the connection broke */
    REDIS_ERROR_TIMEOUT,     /* no answer within --redis-timeout-ms */
    REDIS_ERROR_OOM,         /* an OOM error reply (maxmemory reached) */
    REDIS_ERROR_REPLY,       /* any other error reply */
};
void metrics_redis_error(enum redis_error_reason reason);
/* A Redis command answered (a reply or an error reply) after duration_ns. */
void metrics_redis_command(uint64_t duration_ns);
/* Whether the first Redis command connection made is up (conn.c). */
void metrics_set_redis_up(bool up);
/* An operator's force release. */
void metrics_force_release(void);
/* Whether Redis's maxmemory-policy can evict lock keys (1) or not (0). */
void metrics_set_eviction_unsafe(bool unsafe);
/* The Redis master moved (Sentinel): lockservice_redis_master_changes_total. */
void metrics_redis_master_change(void);
/* A WAIT found fewer replicas than --redis-wait-replicas:
 * lockservice_redis_wait_short_total. */
void metrics_redis_wait_short(void);
/* A Redis Cluster node redirected a command (ask: ASK, else MOVED). */
void metrics_redis_redirect(bool ask);
/* The cluster's slot map was read: masters in it. */
void metrics_redis_cluster_map(unsigned masters);

/* What a lock call ended in, by the kind of lock (label kind). */
enum metrics_kind { METRICS_LOCK, METRICS_SEMAPHORE, METRICS_KINDS };
/* A waiting acquire's answer: how long it waited from the request to its
 * answer (lockservice_wait_seconds{kind,outcome}). */
enum wait_outcome { WAIT_GRANTED, WAIT_TIMEOUT, WAIT_FAILED, WAIT_OUTCOMES };
void metrics_wait(enum metrics_kind kind, enum wait_outcome outcome,
                  uint64_t duration_ns);
/* A lease released by its holder after duration_ns
 * (lockservice_hold_seconds{kind}). */
void metrics_hold(enum metrics_kind kind, uint64_t duration_ns);
/* How leases ended, as far as this instance saw
 * (lockservice_lease_endings_total{kind,cause}): released by their holder,
 * expired (their holder came to release them after they ran out), lost (a
 * renew found them gone: expired or force-released), forced. */
enum lease_end {
    LEASE_RELEASED,
    LEASE_EXPIRED,
    LEASE_LOST,
    LEASE_FORCED,
    LEASE_ENDS
};
void metrics_lease_end(enum metrics_kind kind, enum lease_end cause,
                       uint64_t n);
/* Renew and release answers (lockservice_renew_total{kind,outcome},
 * lockservice_release_total{kind,outcome}). HELD: a release left holds of
 * a re-entered lease. */
enum call_outcome {
    CALL_OK,
    CALL_HELD,
    CALL_NOT_HELD,
    CALL_NOT_OWNER,
    CALL_UNAVAILABLE,
    CALL_OUTCOMES
};
void metrics_renew(enum metrics_kind kind, enum call_outcome outcome);
void metrics_release(enum metrics_kind kind, enum call_outcome outcome);
/* --max-waiters, for lockservice_waiters_max. */
void metrics_set_waiters_max(unsigned max);

/* Renders every metric. Returns a malloc'd NUL-terminated string the caller
 * frees, length in *len; NULL on allocation failure. */
char *metrics_render(size_t *len);

#endif
