/* locks.c -- /v1/locks/{name}: acquire, renew, release, status. */
#include "handlers.h"

#include "clock.h"
#include "http.h"
#include "lock_engine.h"
#include "metrics.h"
#include "request.h"

#include <inttypes.h>

/* How often a waiter may find a release it just missed and try again at
 * once, before it registers regardless, to look again after RECHECK_MS. */
#define IMMEDIATE_RETRIES 3
#define RECHECK_MS 10

static json_t *lease_json(const char *name, const struct lease *l)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:I, s:s}", "name", name, "token",
                     l->token, "fence", (json_int_t)l->fence, "ttl_ms",
                     (json_int_t)l->ttl_ms, "count", (json_int_t)l->count,
                     "owner", l->owner);
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Writes the reply every engine failure maps to. */
void reply_lock_error(struct request *req, enum lock_result r)
{
    switch (r) {
    case LOCK_NOT_HELD:
        reply_problem(req, 409, "not_held",
                      "lock '%s' is not held: released or expired", req->param);
        break;
    case LOCK_NOT_OWNER:
        reply_problem(req, 409, "not_owner",
                      "the token does not hold lock '%s'", req->param);
        break;
    case LOCK_HOLD_LIMIT:
        reply_problem(req, 409, "hold_limit",
                      "lock '%s' is already held %" PRId64
                      " times by this token",
                      req->param, req->cfg->max_hold_count);
        break;
    default:
        reply_problem(req, 503, "backend_unavailable",
                      "Redis is unreachable or timed out");
        break;
    }
}

static void reply_held(struct request *req, const char *name,
                       const struct lease *l, int64_t wait_ms)
{
    int64_t retry = l->retry_after_ms;

    reply_problem_ex(req, 409, "lock_held",
                     json_pack("{s:I}", "retry_after_ms", (json_int_t)retry),
                     retry > 0 ? ceil_div(retry, 1000) : 1,
                     "lock '%s' is held; waited %" PRId64 " ms", name, wait_ms);
}

void reply_wait_refused(struct request *req, bool full)
{
    if (full)
        reply_problem_ex(req, 429, "too_many_waiters", NULL, 1,
                         "this instance already has %u waiters",
                         req->cfg->max_waiters);
    else
        reply_problem(req, 503, "shutting_down",
                      "the service is shutting down; retry elsewhere");
}

_Static_assert(sizeof((struct waiter *)0)->id == LOCK_WAITER_ID_MAX,
               "a waiter holds a whole waiter id");

/* An acquire whose refusal entered it in the name's waiter set, and that
 * ends neither granted nor at its deadline (its client hung up, it was
 * turned away, the service is stopping, Redis failed), leaves the set. */
static void leave_waiter_set(struct request *req)
{
    lock_waiter_gone(req->waiter.name, req->waiter.id);
}

enum acquire_step acquire_or_wait(struct request *req, const char *name,
                                  const char *token, int64_t ttl_ms,
                                  const char *owner, int64_t wait_ms,
                                  struct lease *lease)
{
    struct waiter *w = &req->waiter;
    uint64_t deadline = req->start_ns + MS_TO_NS(wait_ms);
    int tries;

    if (w->wake == WAKE_SHUTDOWN) {
        reply_wait_refused(req, false);
        return STEP_REPLIED;
    }
    if (wait_ms > 0 && w->id[0] == '\0')
        lock_waiter_id(w->id); /* kept across resumes */
    for (tries = 0;; tries++) {
        uint64_t now = clock_now_ns();
        int64_t left_ms =
            now < deadline ? ceil_div((int64_t)(deadline - now), 1000000) : 0;
        uint64_t attempt_ns = now, retry_at;
        enum lock_result r;
        /* A release that woke us reserved the lock for its ticket. */
        struct lock_wait lw = {left_ms, w->id, w->ticket[0] ? w->ticket : NULL};

        r = lock_acquire(name, token, ttl_ms, owner, wait_ms > 0 ? &lw : NULL,
                         lease);
        if (r != LOCK_UNAVAILABLE) {
            waiters_baton_used(w);
            w->ticket[0] = '\0';
        }
        if (r == LOCK_OK) {
            req->on_end = NULL;
            if (w->wake != WAKE_NONE)
                waiters_lease_ends(w, now + MS_TO_NS(ttl_ms + 1));
            metrics_acquire(ACQUIRE_GRANTED);
            return STEP_GRANTED;
        }
        if (r != LOCK_HELD) {
            reply_lock_error(req, r);
            return STEP_REPLIED;
        }
        retry_at = now + MS_TO_NS(lease->retry_after_ms + 1);
        if (left_ms == 0) {
            /* A woken waiter leaving now must not take the name's expiry
             * timer with it. */
            if (w->wake != WAKE_NONE)
                waiters_lease_ends(w, retry_at);
            req->on_end = NULL; /* its entry ends with its wait, now */
            metrics_acquire(wait_ms > 0 ? ACQUIRE_TIMEOUT : ACQUIRE_HELD);
            reply_held(req, name, lease, wait_ms);
            return STEP_REPLIED;
        }
        req->on_end = leave_waiter_set; /* the refusal entered w->id */
        if (tries == IMMEDIATE_RETRIES) {
            /* Releases keep slipping past between attempt and registration:
             * register regardless, and look again soon in case one did. */
            attempt_ns = 0;
            if (retry_at > now + MS_TO_NS(RECHECK_MS))
                retry_at = now + MS_TO_NS(RECHECK_MS);
        }
        enum waiters_result wr =
            request_wait_lock(req, name, attempt_ns, retry_at, deadline);
        switch (wr) {
        case WAIT_OK:
            return STEP_SUSPENDED;
        case WAIT_RETRY:
            continue;
        case WAIT_FULL:
        case WAIT_SHUTTING_DOWN:
            reply_wait_refused(req, wr == WAIT_FULL);
            return STEP_REPLIED;
        }
    }
}

void handle_lock_acquire(struct request *req)
{
    static const char *const fields[] = {"ttl_ms", "wait_ms", "owner", "token",
                                         NULL};
    const struct config *cfg = req->cfg;
    struct field_problem prob;
    const char *owner, *token;
    int64_t ttl_ms, wait_ms;
    struct lease lease;

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
    if (acquire_or_wait(req, req->param, token, ttl_ms, owner, wait_ms,
                        &lease) == STEP_GRANTED)
        reply_json(req, 200, lease_json(req->param, &lease));
}

void handle_lock_renew(struct request *req)
{
    static const char *const fields[] = {"token", "ttl_ms", NULL};
    struct field_problem prob;
    const char *token;
    int64_t ttl_ms;
    struct lease lease;
    enum lock_result r;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_token(req->json, "token", true, &token, &prob) < 0 ||
        field_int(req->json, "ttl_ms", 0, 1, req->cfg->max_ttl_ms, &ttl_ms,
                  &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    r = lock_renew(req->param, token, ttl_ms, &lease);
    if (r != LOCK_OK) {
        reply_lock_error(req, r);
        return;
    }
    reply_json(req, 200, lease_json(req->param, &lease));
}

void handle_lock_release(struct request *req)
{
    static const char *const fields[] = {"token", NULL};
    struct field_problem prob;
    const char *token;
    int64_t count;
    enum lock_result r;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_token(req->json, "token", true, &token, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    r = lock_release(req->param, token, &count);
    if (r != LOCK_OK) {
        reply_lock_error(req, r);
        return;
    }
    reply_json(req, 200,
               json_pack("{s:s, s:b, s:I}", "name", req->param, "released", 1,
                         "count", (json_int_t)count));
}

void handle_lock_status(struct request *req)
{
    struct lease lease;

    if (lock_status(req->param, &lease) != LOCK_OK) {
        reply_lock_error(req, LOCK_UNAVAILABLE);
        return;
    }
    json_t *body =
        json_pack("{s:s, s:b}", "name", req->param, "held", lease.held);

    if (lease.held) {
        json_object_set_new(body, "owner", json_string(lease.owner));
        json_object_set_new(body, "fence", json_integer(lease.fence));
        json_object_set_new(body, "ttl_ms", json_integer(lease.ttl_ms));
        json_object_set_new(body, "count", json_integer(lease.count));
    } else if (lease.reserved_ms > 0) {
        json_object_set_new(body, "reserved_ms",
                            json_integer(lease.reserved_ms));
    }
    reply_json(req, 200, body);
}
