/* handlers.h -- one function per route of service/routes.c. A handler
 * parses and validates, calls the engine, and replies (or suspends). */
#ifndef LOCKSERVICE_HANDLERS_H
#define LOCKSERVICE_HANDLERS_H

#include "lock_engine.h"

struct request;

/* What acquire_or_wait did. */
enum acquire_step {
    STEP_GRANTED,   /* *lease holds the grant; the caller replies */
    STEP_SUSPENDED, /* waiting: return; the handler runs again on wake */
    STEP_REPLIED,   /* an error reply (409, 429, 503) was queued */
};

/* Acquires lock name for req, waiting up to wait_ms from the request's
 * arrival without holding a thread: shared by the lock API and the demo.
 * Call it again, with the same arguments, each time the handler re-runs. */
enum acquire_step acquire_or_wait(struct request *req, const char *name,
                                  const char *token, int64_t ttl_ms,
                                  const char *owner, int64_t wait_ms,
                                  struct lease *lease);
/* The reply for an engine failure: 409 not_held / not_owner / hold_limit,
 * 503 backend_unavailable. */
void reply_lock_error(struct request *req, enum lock_result r);
/* The reply for a request that may not wait (or go on waiting): 429
 * too_many_waiters for WAIT_FULL, else 503 shutting_down. */
void reply_wait_refused(struct request *req, bool full);

/* handlers/locks.c */
void handle_lock_acquire(struct request *req);
void handle_lock_renew(struct request *req);
void handle_lock_release(struct request *req);
void handle_lock_status(struct request *req);

/* handlers/health.c */
void handle_healthz(struct request *req);
void handle_readyz(struct request *req);

/* handlers/metrics.c */
void handle_metrics(struct request *req);

/* handlers/openapi.c */
void handle_openapi(struct request *req);

/* demo-inventory/inventory.c */
void handle_inventory_put(struct request *req);
void handle_inventory_get(struct request *req);
void handle_inventory_purchase(struct request *req);

#endif
