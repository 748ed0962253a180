/* handlers.h -- one function per route of service/http/routes.c. A handler
 * parses and validates, starts the engine call, and replies from its
 * continuation. */
#ifndef LOCKSERVICE_HANDLERS_H
#define LOCKSERVICE_HANDLERS_H

#include "http/http.h"

/* The reply for a lock call that did not succeed: 409 lock_held (with
 * retry_after_ms and Retry-After), not_held, not_owner or hold_limit; 429
 * too_many_waiters; 503 shutting_down or backend_unavailable. Shared by the
 * lock API and the demo. */
void reply_lock_failure(struct request *req, const struct lock_call *c);

/* The body GET /v1/locks/{name} (GET /v1/semaphores/{name}) answers for
 * the status call c, under name (as the client knows it). A new reference,
 * or NULL when out of memory. Shared with the listing. */
json_t *lock_status_json(const char *name, const struct lock_call *c);
json_t *semaphore_status_json(const char *name, const struct lock_call *c);

/* handlers/locks.c */
void handle_lock_acquire(struct request *req);
void handle_lock_renew(struct request *req);
void handle_lock_release(struct request *req);
void handle_lock_status(struct request *req);
void handle_lock_check(struct request *req);
void handle_lock_force_release(struct request *req);

/* handlers/semaphores.c */
void handle_semaphore_acquire(struct request *req);
void handle_semaphore_renew(struct request *req);
void handle_semaphore_release(struct request *req);
void handle_semaphore_status(struct request *req);
void handle_semaphore_force_release(struct request *req);

/* handlers/stats.c */
void handle_stats_hot(struct request *req);

/* handlers/listing.c */
void handle_lock_list(struct request *req);
void handle_semaphore_list(struct request *req);

/* handlers/health.c */
void handle_healthz(struct request *req);
void handle_readyz(struct request *req);

/* handlers/metrics.c */
void handle_metrics(struct request *req);

/* handlers/openapi.c */
void handle_openapi(struct request *req);

/* handlers/pages.c: /ui/ always, /demo/ with --demo (demo-inventory/) */
void handle_ui_redirect(struct request *req);
void handle_ui_page(struct request *req);
void handle_ui_asset(struct request *req);
void handle_demo_redirect(struct request *req);
void handle_demo_page(struct request *req);
void handle_demo_asset(struct request *req);

#endif
