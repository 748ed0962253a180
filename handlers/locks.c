/* locks.c -- /v1/locks/{name}: acquire, renew, release, status. */
#include "handlers.h"

#include "metrics.h"
#include "request.h"

#include <inttypes.h>
#include <string.h>

static json_t *lease_json(const char *name, const struct lock_call *c)
{
    const struct lease *l = &c->reply.lease;

    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "name", name, "token",
                     c->token, "fence", (json_int_t)l->fence, "ttl_ms",
                     (json_int_t)l->ttl_ms, "count", (json_int_t)l->count,
                     "owner", l->owner);
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
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
    switch (c->reply.outcome) {
    case LOCK_HELD:
    case LOCK_QUEUED:
    case LOCK_WAIT_OVER:
    case LOCK_RESERVED:
    case LOCK_HANDED_ON:
        reply_problem_ex(
            req, PROBLEM_LOCK_HELD,
            json_pack("{s:I}", "retry_after_ms", (json_int_t)retry),
            retry > 0 ? ceil_div(retry, 1000) : 1,
            "lock '%s' is held; waited %" PRId64 " ms", c->name, c->wait_ms);
        return;
    case LOCK_NOT_HELD:
    case LOCK_FREE:
        reply_problem(req, PROBLEM_NOT_HELD,
                      "lock '%s' is not held: released or expired", c->name);
        return;
    case LOCK_NOT_OWNER:
        reply_problem(req, PROBLEM_NOT_OWNER,
                      "the token does not hold lock '%s'", c->name);
        return;
    case LOCK_HOLD_LIMIT:
        reply_problem(req, PROBLEM_HOLD_LIMIT,
                      "lock '%s' is already held %" PRId64
                      " times by this token",
                      c->name, req->cfg->max_hold_count);
        return;
    case LOCK_UNAVAILABLE:
    case LOCK_OK:
        break;
    }
    reply_backend_error(req, &c->err);
}

static void acquired(struct request *req)
{
    struct lock_call *c = &req->lock;

    if (c->reply.outcome == LOCK_OK && c->refusal == LOCK_REFUSAL_NONE) {
        metrics_acquire(ACQUIRE_GRANTED);
        reply_json(req, 200, lease_json(req->param, c));
        return;
    }
    if (c->reply.outcome == LOCK_HELD)
        metrics_acquire(c->wait_ms > 0 ? ACQUIRE_TIMEOUT : ACQUIRE_HELD);
    reply_lock_failure(req, c);
}

void handle_lock_acquire(struct request *req)
{
    static const char *const fields[] = {"ttl_ms", "wait_ms", "owner", "token",
                                         NULL};
    const struct config *cfg = req->cfg;
    struct field_problem prob;
    const char *owner, *token;
    int64_t ttl_ms, wait_ms;
    struct lock_call *c;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_int(req->json, "ttl_ms", 30000, 1, cfg->max_ttl_ms, &ttl_ms,
                  &prob) < 0 ||
        field_int(req->json, "wait_ms", 0, 0, cfg->max_wait_ms, &wait_ms,
                  &prob) < 0 ||
        field_string(req->json, "owner", false, OWNER_MAX, &owner, &prob) < 0 ||
        field_token(req->json, "token", false, &token, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    c = request_lock_call(req, &lock_kind_exclusive, req->param);
    c->ttl_ms = ttl_ms;
    c->wait_ms = wait_ms;
    if (owner != NULL)
        snprintf(c->owner, sizeof c->owner, "%s", owner);
    if (token != NULL)
        memcpy(c->token, token, TOKEN_HEX_LEN + 1);
    request_suspend(req, acquired);
    lock_call_acquire(c);
}

static void renewed(struct request *req)
{
    struct lock_call *c = &req->lock;

    if (c->reply.outcome != LOCK_OK) {
        reply_lock_failure(req, c);
        return;
    }
    reply_json(req, 200, lease_json(req->param, c));
}

void handle_lock_renew(struct request *req)
{
    static const char *const fields[] = {"token", "ttl_ms", NULL};
    struct field_problem prob;
    const char *token;
    int64_t ttl_ms;
    struct lock_call *c;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_token(req->json, "token", true, &token, &prob) < 0 ||
        field_int(req->json, "ttl_ms", 0, 1, req->cfg->max_ttl_ms, &ttl_ms,
                  &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    c = request_lock_call(req, &lock_kind_exclusive, req->param);
    memcpy(c->token, token, TOKEN_HEX_LEN + 1);
    c->ttl_ms = ttl_ms;
    request_suspend(req, renewed);
    lock_call_renew(c);
}

static void released(struct request *req)
{
    struct lock_call *c = &req->lock;

    if (c->reply.outcome != LOCK_OK) {
        reply_lock_failure(req, c);
        return;
    }
    reply_json(req, 200,
               json_pack("{s:s, s:b, s:I}", "name", req->param, "released", 1,
                         "count", (json_int_t)c->reply.lease.count));
}

void handle_lock_release(struct request *req)
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
    c = request_lock_call(req, &lock_kind_exclusive, req->param);
    memcpy(c->token, token, TOKEN_HEX_LEN + 1);
    request_suspend(req, released);
    lock_call_release(c);
}

static void status_read(struct request *req)
{
    const struct lock_call *c = &req->lock;
    const struct lease *l = &c->reply.lease;
    json_t *body;

    switch (c->reply.outcome) {
    case LOCK_OK:
        reply_json(req, 200,
                   json_pack("{s:s, s:b, s:s, s:I, s:I, s:I}", "name",
                             req->param, "held", 1, "owner", l->owner, "fence",
                             (json_int_t)l->fence, "ttl_ms",
                             (json_int_t)l->ttl_ms, "count",
                             (json_int_t)l->count));
        return;
    case LOCK_RESERVED:
    case LOCK_FREE:
        body = json_pack("{s:s, s:b}", "name", req->param, "held", 0);
        if (c->reply.outcome == LOCK_RESERVED)
            json_object_set_new(body, "reserved_ms",
                                json_integer(c->reply.pttl_ms));
        reply_json(req, 200, body);
        return;
    default:
        reply_backend_error(req, &c->err);
        return;
    }
}

void handle_lock_status(struct request *req)
{
    struct lock_call *c =
        request_lock_call(req, &lock_kind_exclusive, req->param);

    request_suspend(req, status_read);
    lock_call_status(c);
}
