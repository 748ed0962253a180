/* locks.c -- /v1/locks/{name}: acquire, renew, release, status, check,
 * force release. What a lock's answers say is here (lock_leases); the
 * routes both kinds answer alike run in lease.c. */
#include "handlers.h"
#include "lease.h"

#include "log.h"
#include "request.h"

#include <inttypes.h>
#include <string.h>

static json_t *lease_json(const char *name, const struct lock_call *c)
{
    const struct lease *l = &c->reply.lease;
    json_t *body =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s}", "name", name, "token",
                  c->token, "fence", (json_int_t)l->fence, "ttl_ms",
                  (json_int_t)l->ttl_ms, "count", (json_int_t)l->count, "owner",
                  l->owner, "mode", l->shared ? "shared" : "exclusive");

    if (body != NULL && c->reply.replayed)
        json_object_set_new(body, "replayed", json_true());
    return body;
}

/* The 200 body of a release: the holds the lease has left. */
static json_t *released_json(const char *name, const struct lock_call *c)
{
    return json_pack("{s:s, s:b, s:I}", "name", name, "released", 1, "count",
                     (json_int_t)c->reply.lease.count);
}

void reply_lock_failure(struct request *req, const struct lock_call *c)
{
    int64_t retry = c->reply.pttl_ms;

    if (c->refusal == LOCK_REFUSAL_FULL) {
        reply_problem_ex(req, PROBLEM_TOO_MANY_WAITERS, NULL, 1,
                         "this instance already has %u waiters",
                         req->cfg->max_waiters);
        return;
    }
    if (c->refusal == LOCK_REFUSAL_SHUTDOWN) {
        reply_problem(req, PROBLEM_SHUTTING_DOWN,
                      "the service is shutting down; retry elsewhere");
        return;
    }
    if (c->refusal == LOCK_REFUSAL_GONE) {
        /* Nobody reads this: the client hung up. */
        reply_problem(req, PROBLEM_LOCK_HELD, "the client went away");
        return;
    }
    switch (c->reply.outcome) {
    case LOCK_HELD:
    case LOCK_QUEUED:
    case LOCK_WAIT_OVER:
    case LOCK_RESERVED:
    case LOCK_DELAYED:
    case LOCK_HANDED_ON:
        reply_problem_ex(
            req, PROBLEM_LOCK_HELD,
            json_pack("{s:I}", "retry_after_ms", (json_int_t)retry),
            lease_retry_after_s(retry),
            "lock '%s' is held; waited %" PRId64 " ms", req->param, c->wait_ms);
        return;
    case LOCK_NOT_HELD:
    case LOCK_FREE:
        reply_problem(req, PROBLEM_NOT_HELD,
                      "lock '%s' is not held: released or expired", req->param);
        return;
    case LOCK_REQUEST_ENDED:
        reply_problem(req, PROBLEM_NOT_HELD,
                      "the lease request_id '%s' got on lock '%s' has ended",
                      c->request_id, req->param);
        return;
    case LOCK_NOT_OWNER:
        reply_problem(req, PROBLEM_NOT_OWNER,
                      "the token does not hold lock '%s'", req->param);
        return;
    case LOCK_HOLD_LIMIT:
        reply_problem(req, PROBLEM_HOLD_LIMIT,
                      "lock '%s' is already held %" PRId64
                      " times by this token",
                      req->param, req->cfg->max_hold_count);
        return;
    case LOCK_MODE_CONFLICT:
        reply_problem(req, PROBLEM_MODE_CONFLICT,
                      "the token holds lock '%s' in the other mode (no "
                      "upgrade, no downgrade)",
                      req->param);
        return;
    case LOCK_LIMIT_MISMATCH:
        reply_problem(req, PROBLEM_LIMIT_MISMATCH,
                      "semaphore '%s' has another limit in force", req->param);
        return;
    case LOCK_UNAVAILABLE:
    case LOCK_OK:
        break;
    }
    reply_backend_error(req, &c->err);
}

/* The status body: the version 1 members for the holder (the exclusive
 * one, or the first shared one), then every holder listed, the queue, and
 * what keeps a free lock unavailable. A free lock nobody waits for is
 * {"name","held":false} as in version 1. Never a token. */
json_t *lock_status_json(const char *name, const struct lock_call *c)
{
    const struct lock_reply *r = &c->reply;
    const struct lease *l = &r->lease;
    json_t *body, *holders, *queue;

    body = json_pack("{s:s, s:b}", "name", name, "held", r->outcome == LOCK_OK);
    if (body == NULL)
        return NULL;
    if (r->outcome == LOCK_RESERVED)
        json_object_set_new(body, "reserved_ms", json_integer(r->pttl_ms));
    if (r->outcome == LOCK_DELAYED)
        json_object_set_new(body, "delay_ms", json_integer(r->pttl_ms));
    if (r->outcome != LOCK_OK && r->waiting == 0)
        return body;
    holders = json_array();
    queue = json_array();
    if (holders == NULL || queue == NULL) {
        json_decref(body);
        json_decref(holders);
        json_decref(queue);
        return NULL;
    }
    if (r->outcome == LOCK_OK)
        json_object_update_new(
            body,
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "owner", l->owner,
                      "mode", l->shared ? "shared" : "exclusive", "fence",
                      (json_int_t)l->fence, "ttl_ms", (json_int_t)l->ttl_ms,
                      "count", (json_int_t)l->count, "held_ms",
                      (json_int_t)r->held_ms));
    for (size_t i = 0; i < r->nholders && r->outcome == LOCK_OK; i++) {
        const struct lock_holder *h = &r->holders[i];
        json_array_append_new(
            holders,
            json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "owner", h->owner,
                      "mode", h->shared ? "shared" : "exclusive", "fence",
                      (json_int_t)h->fence, "ttl_ms", (json_int_t)h->ttl_ms,
                      "count", (json_int_t)h->count, "held_ms",
                      (json_int_t)h->held_ms));
    }
    for (size_t i = 0; i < r->queued; i++)
        json_array_append_new(
            queue,
            json_pack("{s:s, s:s, s:i, s:I}", "owner", r->queue[i].owner,
                      "mode", r->queue[i].shared ? "shared" : "exclusive",
                      "permits", 1, "waited_ms",
                      (json_int_t)r->queue[i].waited_ms));
    json_object_set_new(body, "holders", holders);
    json_object_set_new(
        body, "holder_count",
        json_integer(r->outcome == LOCK_OK ? r->holder_count : 0));
    json_object_set_new(body, "waiting", json_integer(r->waiting));
    json_object_set_new(body, "queue", queue);
    return body;
}

/* The audit lines of a force release: one per lease it ended (each names
 * holder i of n), or one saying the lock was not held. */
static void audit_force(const struct request *req)
{
    const struct lock_reply *r = &req->lock.reply;
    const char *key = req->key.name[0] ? req->key.name : "-";

    if (r->forced > 0)
        for (size_t i = 0; i < r->nholders; i++)
            log_warn("audit: force release of lock '%s' (key %s): holder "
                     "%zu of %" PRId64 " owner '%s' fence %" PRId64,
                     req->name, key, i + 1, r->forced, r->holders[i].owner,
                     r->holders[i].fence);
    else
        log_warn("audit: force release of lock '%s' (key %s): not held",
                 req->name, key);
}

static const struct lease_kind lock_leases = {
    .kind = &lock_kind_exclusive,
    .lease_json = lease_json,
    .released_json = released_json,
    .status_json = lock_status_json,
    .reply_failure = reply_lock_failure,
    .audit_force = audit_force,
};

void handle_lock_acquire(struct request *req)
{
    static const char *const fields[] = {
        "ttl_ms", "wait_ms",    "owner",         "token",
        "mode",   "request_id", "lock_delay_ms", NULL};
    const struct config *cfg = req->cfg;
    struct field_problem prob;
    const char *owner, *token, *mode;
    int64_t ttl_ms, wait_ms, delay_ms;
    char rid[REQUEST_ID_MAX + 1];
    struct lock_call *c;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_int(req->json, "ttl_ms", 30000, 1, cfg->max_ttl_ms, &ttl_ms,
                  &prob) < 0 ||
        field_int(req->json, "wait_ms", 0, 0, cfg->max_wait_ms, &wait_ms,
                  &prob) < 0 ||
        field_string(req->json, "owner", false, OWNER_MAX, &owner, &prob) < 0 ||
        field_token(req->json, "token", false, &token, &prob) < 0 ||
        field_string(req->json, "mode", false, 16, &mode, &prob) < 0 ||
        field_request_id(req->json, rid, &prob) < 0 ||
        field_int(req->json, "lock_delay_ms", cfg->lock_delay_ms, 0, 60000,
                  &delay_ms, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    if (mode != NULL && strcmp(mode, "exclusive") != 0 &&
        strcmp(mode, "shared") != 0) {
        reply_problem(req, PROBLEM_INVALID_FIELD,
                      "mode must be \"exclusive\" or \"shared\"");
        return;
    }
    c = lease_call(req, &lock_leases);
    c->ttl_ms = ttl_ms;
    c->wait_ms = wait_ms;
    c->delay_ms = delay_ms;
    c->shared = mode != NULL && strcmp(mode, "shared") == 0;
    memcpy(c->request_id, rid, sizeof rid);
    c->owner = owner; /* borrowed from req->json, which outlives the call */
    if (token != NULL)
        memcpy(c->token, token, TOKEN_HEX_LEN + 1);
    lease_acquire(req);
}

void handle_lock_renew(struct request *req)
{
    lease_renew(req, &lock_leases);
}

void handle_lock_release(struct request *req)
{
    lease_release(req, &lock_leases);
}

void handle_lock_status(struct request *req)
{
    lease_status(req, &lock_leases);
}

void handle_lock_force_release(struct request *req)
{
    lease_force_release(req, &lock_leases);
}

static void checked(struct request *req)
{
    struct lock_call *c = &req->lock;

    if (c->reply.outcome == LOCK_UNAVAILABLE) {
        reply_backend_error(req, &c->err);
        return;
    }
    if (c->reply.outcome != LOCK_OK || c->reply.owned < 0) {
        c->reply.outcome = LOCK_NOT_HELD;
        reply_lock_failure(req, c);
        return;
    }
    if (c->reply.owned == 0) {
        c->reply.outcome = LOCK_NOT_OWNER;
        reply_lock_failure(req, c);
        return;
    }
    reply_json(req, 200, lock_status_json(req->param, c));
}

void handle_lock_check(struct request *req)
{
    static const char *const fields[] = {"token", NULL};
    struct field_problem prob;
    const char *token;
    struct lock_call *c;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_token(req->json, "token", true, &token, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    c = request_lock_call(req, &lock_kind_exclusive, req->name);
    memcpy(c->token, token, TOKEN_HEX_LEN + 1);
    request_suspend(req, checked);
    lock_call_status(c);
}
