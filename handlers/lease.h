/* lease.h -- what the lease routes of every lock kind share (lease.c):
 * the answer to an acquire, and renew, release, status and force release
 * whole (parse, call, reply). A kind gives what differs as one struct
 * lease_kind (locks.c, semaphores.c). */
#ifndef LOCKSERVICE_HANDLERS_LEASE_H
#define LOCKSERVICE_HANDLERS_LEASE_H

#include "http/http.h"

#include <stdint.h>

struct lease_kind {
    const struct lock_kind *kind;
    /* The 200 bodies (new references, NULL when out of memory) under name,
     * as the client knows it: a granted acquire or a renew, a release,
     * a status. */
    json_t *(*lease_json)(const char *name, const struct lock_call *c);
    json_t *(*released_json)(const char *name, const struct lock_call *c);
    json_t *(*status_json)(const char *name, const struct lock_call *c);
    /* The reply for a call that did not succeed. */
    void (*reply_failure)(struct request *req, const struct lock_call *c);
    /* Logs the audit lines of the force release req made. */
    void (*audit_force)(const struct request *req);
};

/* The lock call of lk's kind for req (request_lock_call), to fill and
 * start with lease_acquire; lk must be static (req->state keeps it). */
struct lock_call *lease_call(struct request *req, const struct lease_kind *lk);
/* Starts the acquire lease_call made and answers it: 200 the lease, or
 * lk's failure. */
void lease_acquire(struct request *req);

/* The lease routes but acquire: each reads its body (renew: token, ttl_ms;
 * release: token, request_id; status, force: none), makes its call and
 * answers it. lk must be static. */
void lease_renew(struct request *req, const struct lease_kind *lk);
void lease_release(struct request *req, const struct lease_kind *lk);
void lease_status(struct request *req, const struct lease_kind *lk);
void lease_force_release(struct request *req, const struct lease_kind *lk);

/* Retry-After of a refusal that may succeed in retry_ms: whole seconds,
 * rounded up, at least 1. */
int64_t lease_retry_after_s(int64_t retry_ms);

/* Reads request_id: 1 to REQUEST_ID_MAX characters of the name alphabet,
 * into out ("" when absent). Returns 0, or -1 with *p filled. */
struct field_problem;
int field_request_id(json_t *obj, char *out, struct field_problem *p);

#endif
