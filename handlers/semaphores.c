/* semaphores.c -- /v1/semaphores/{name}: acquire, renew, release, status,
 * force release. What a semaphore's answers say is here
 * (semaphore_leases); the routes both kinds answer alike run in lease.c. */
#include "handlers.h"
#include "lease.h"

#include "log.h"
#include "request.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static json_t *lease_json(const char *name, const struct lock_call *c)
{
    const struct lease *l = &c->reply.lease;
    json_t *body =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "name", name, "token",
                  c->token, "fence", (json_int_t)l->fence, "ttl_ms",
                  (json_int_t)l->ttl_ms, "permits", (json_int_t)l->permits,
                  "limit", (json_int_t)c->reply.limit, "owner", l->owner);

    if (body != NULL && c->reply.replayed)
        json_object_set_new(body, "replayed", json_true());
    return body;
}

/* The 200 body of a release: the permits it gave back. */
static json_t *released_json(const char *name, const struct lock_call *c)
{
    return json_pack("{s:s, s:b, s:I}", "name", name, "released", 1, "permits",
                     (json_int_t)c->reply.lease.permits);
}

/* The reply for a semaphore call that did not succeed: 409 no_permits
 * (with retry_after_ms and Retry-After), limit_mismatch or not_held; the
 * refusals to wait and Redis failures as for locks. */
static void reply_semaphore_failure(struct request *req,
                                    const struct lock_call *c)
{
    int64_t retry = c->reply.pttl_ms;

    if (c->refusal != LOCK_REFUSAL_NONE) {
        reply_lock_failure(req, c);
        return;
    }
    switch (c->reply.outcome) {
    case LOCK_HELD:
    case LOCK_QUEUED:
    case LOCK_WAIT_OVER:
    case LOCK_HANDED_ON:
        reply_problem_ex(
            req, PROBLEM_NO_PERMITS,
            json_pack("{s:I}", "retry_after_ms", (json_int_t)retry),
            lease_retry_after_s(retry),
            "semaphore '%s' has fewer than %" PRId64 " of %" PRId64
            " permits free; waited %" PRId64 " ms",
            req->param, c->permits, c->limit, c->wait_ms);
        return;
    case LOCK_LIMIT_MISMATCH:
        reply_problem(req, PROBLEM_LIMIT_MISMATCH,
                      "semaphore '%s' is held with limit %" PRId64
                      ", not %" PRId64,
                      req->param, c->reply.limit, c->limit);
        return;
    case LOCK_NOT_HELD:
    case LOCK_NOT_OWNER:
    case LOCK_FREE:
        reply_problem(req, PROBLEM_NOT_HELD,
                      "the token holds no permits of semaphore '%s': "
                      "released, expired or force-released",
                      req->param);
        return;
    case LOCK_REQUEST_ENDED:
        reply_problem(req, PROBLEM_NOT_HELD,
                      "the lease request_id '%s' got on semaphore '%s' has "
                      "ended",
                      c->request_id, req->param);
        return;
    case LOCK_OK:
    case LOCK_HOLD_LIMIT:
    case LOCK_MODE_CONFLICT:
    case LOCK_RESERVED:
    case LOCK_DELAYED:
    case LOCK_UNAVAILABLE:
        break;
    }
    reply_lock_failure(req, c);
}

/* The status body: the limit in force and the permits used, every holder
 * (up to LOCK_LIST_MAX, soonest expiry first) and the queue in order.
 * Never a token. */
json_t *semaphore_status_json(const char *name, const struct lock_call *c)
{
    const struct lock_reply *r = &c->reply;
    json_t *body, *holders, *queue;

    body = json_pack("{s:s, s:I, s:I}", "name", name, "limit",
                     (json_int_t)r->limit, "used", (json_int_t)r->used);
    holders = json_array();
    queue = json_array();
    if (body == NULL || holders == NULL || queue == NULL) {
        json_decref(body);
        json_decref(holders);
        json_decref(queue);
        return NULL;
    }
    for (size_t i = 0; i < r->nholders; i++) {
        const struct lock_holder *h = &r->holders[i];
        json_array_append_new(holders,
                              json_pack("{s:s, s:I, s:I, s:I, s:I}", "owner",
                                        h->owner, "fence", (json_int_t)h->fence,
                                        "ttl_ms", (json_int_t)h->ttl_ms,
                                        "permits", (json_int_t)h->permits,
                                        "held_ms", (json_int_t)h->held_ms));
    }
    for (size_t i = 0; i < r->queued; i++)
        json_array_append_new(
            queue, json_pack("{s:s, s:s, s:I, s:I}", "owner", r->queue[i].owner,
                             "mode", "semaphore", "permits",
                             (json_int_t)r->queue[i].permits, "waited_ms",
                             (json_int_t)r->queue[i].waited_ms));
    json_object_set_new(body, "holders", holders);
    json_object_set_new(body, "holder_count", json_integer(r->holder_count));
    json_object_set_new(body, "waiting", json_integer(r->waiting));
    json_object_set_new(body, "queue", queue);
    return body;
}

/* The audit lines of a force release: one with the name, the API key and
 * how many leases ended, then one per lease it names (an owner may take
 * 512 bytes, a log line at most 1 KiB). */
static void audit_force(const struct request *req)
{
    const struct lock_reply *r = &req->lock.reply;
    const char *key = req->key.name[0] ? req->key.name : "-";

    log_warn("audit: force release of semaphore '%s' (key %s): %" PRId64
             " holder%s%s",
             req->name, key, r->forced, r->forced == 1 ? "" : "s",
             (int64_t)r->nholders < r->forced ? " (the first ones named below)"
                                              : "");
    for (size_t i = 0; i < r->nholders; i++)
        log_warn("audit: force release of semaphore '%s' (key %s) ended "
                 "holder owner '%s' fence %" PRId64,
                 req->name, key, r->holders[i].owner, r->holders[i].fence);
}

static const struct lease_kind semaphore_leases = {
    .kind = &lock_kind_semaphore,
    .lease_json = lease_json,
    .released_json = released_json,
    .status_json = semaphore_status_json,
    .reply_failure = reply_semaphore_failure,
    .audit_force = audit_force,
};

/* Reads limit, required, in 1..max. Returns 0, or -1 with *p filled. */
static int field_limit(json_t *obj, int64_t max, int64_t *out,
                       struct field_problem *p)
{
    if (json_object_get(obj, "limit") == NULL) {
        p->error = FIELD_INVALID_FIELD;
        snprintf(p->detail, sizeof p->detail,
                 "limit is required (an integer in 1..%" PRId64 ")", max);
        return -1;
    }
    return field_int(obj, "limit", 0, 1, max, out, p);
}

void handle_semaphore_acquire(struct request *req)
{
    static const char *const fields[] = {
        "limit", "permits", "ttl_ms", "wait_ms", "owner", "request_id", NULL};
    const struct config *cfg = req->cfg;
    struct field_problem prob;
    const char *owner;
    int64_t limit, permits, ttl_ms, wait_ms;
    char rid[REQUEST_ID_MAX + 1];
    struct lock_call *c;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_limit(req->json, cfg->max_permits, &limit, &prob) < 0 ||
        field_int(req->json, "permits", 1, 1, limit, &permits, &prob) < 0 ||
        field_int(req->json, "ttl_ms", 30000, 1, cfg->max_ttl_ms, &ttl_ms,
                  &prob) < 0 ||
        field_int(req->json, "wait_ms", 0, 0, cfg->max_wait_ms, &wait_ms,
                  &prob) < 0 ||
        field_string(req->json, "owner", false, OWNER_MAX, &owner, &prob) < 0 ||
        field_request_id(req->json, rid, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    c = lease_call(req, &semaphore_leases);
    c->limit = limit;
    c->permits = permits;
    c->ttl_ms = ttl_ms;
    c->wait_ms = wait_ms;
    memcpy(c->request_id, rid, sizeof rid);
    c->owner = owner; /* borrowed from req->json, which outlives the call */
    lease_acquire(req);
}

void handle_semaphore_renew(struct request *req)
{
    lease_renew(req, &semaphore_leases);
}

void handle_semaphore_release(struct request *req)
{
    lease_release(req, &semaphore_leases);
}

void handle_semaphore_status(struct request *req)
{
    lease_status(req, &semaphore_leases);
}

void handle_semaphore_force_release(struct request *req)
{
    lease_force_release(req, &semaphore_leases);
}
