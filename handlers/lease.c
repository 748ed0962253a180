/* lease.c -- see lease.h. The routes of every kind read the same bodies,
 * make the same calls and answer alike; only the bodies of the answers,
 * the failures and the audit lines are the kind's. A continuation finds
 * its kind in req->state, put there by lease_call (static: state_free
 * stays NULL). */
#include "lease.h"

#include "handlers.h"
#include "metrics.h"
#include "request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct lease_kind *kind_of(const struct request *req)
{
    return req->state;
}

struct lock_call *lease_call(struct request *req, const struct lease_kind *lk)
{
    req->state = (void *)lk; /* not written: a continuation reads it */
    return request_lock_call(req, lk->kind, req->name);
}

/* A granted acquire whose answer never reached its client (it hung up, or
 * the service stopped): nobody knows the token, so the hold goes at once
 * rather than when its TTL runs out. */
static void forget_release(struct lock_call *c)
{
    free(c);
}

static void release_unanswered(struct request *req)
{
    struct lock_call *rel = calloc(1, sizeof *rel);

    if (rel == NULL)
        return; /* the lease ends with its TTL */
    rel->kind = req->lock.kind;
    memcpy(rel->name, req->lock.name, sizeof rel->name);
    memcpy(rel->token, req->lock.token, sizeof rel->token);
    rel->done = forget_release;
    lock_call_release(rel);
}

/* Before answering the grant in req->lock: false when the client has gone
 * (then answer nothing). A grant without a request_id that is not answered
 * is released when the request ends (nobody can know its token); with one,
 * it stays for the client's retry. */
static bool grant_answerable(struct request *req)
{
    const struct lock_call *c = &req->lock;

    /* With a request_id the client may come back for this lease: it
     * stays. Without one, a lease nobody can know of goes at once. */
    if (c->reply.replayed || c->request_id[0] != '\0')
        return true;
    req->undo = release_unanswered;
    return !request_client_gone(req); /* gone: undo runs at the end */
}

static void acquired(struct request *req)
{
    const struct lease_kind *lk = kind_of(req);
    struct lock_call *c = &req->lock;

    if (c->reply.outcome == LOCK_OK && c->refusal == LOCK_REFUSAL_NONE) {
        if (grant_answerable(req))
            reply_json(req, 200, lk->lease_json(req->param, c));
        return;
    }
    lk->reply_failure(req, c);
}

void lease_acquire(struct request *req)
{
    request_suspend(req, acquired);
    lock_call_acquire(&req->lock);
}

static void renewed(struct request *req)
{
    const struct lease_kind *lk = kind_of(req);
    struct lock_call *c = &req->lock;

    if (c->reply.outcome != LOCK_OK) {
        lk->reply_failure(req, c);
        return;
    }
    reply_json(req, 200, lk->lease_json(req->param, c));
}

void lease_renew(struct request *req, const struct lease_kind *lk)
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
    c = lease_call(req, lk);
    memcpy(c->token, token, TOKEN_HEX_LEN + 1);
    c->ttl_ms = ttl_ms;
    request_suspend(req, renewed);
    lock_call_renew(c);
}

static void released(struct request *req)
{
    const struct lease_kind *lk = kind_of(req);
    struct lock_call *c = &req->lock;

    if (c->reply.outcome != LOCK_OK) {
        lk->reply_failure(req, c);
        return;
    }
    reply_json(req, 200, lk->released_json(req->param, c));
}

void lease_release(struct request *req, const struct lease_kind *lk)
{
    static const char *const fields[] = {"token", "request_id", NULL};
    struct field_problem prob;
    const char *token;
    char rid[REQUEST_ID_MAX + 1];
    struct lock_call *c;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_token(req->json, "token", true, &token, &prob) < 0 ||
        field_request_id(req->json, rid, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    c = lease_call(req, lk);
    memcpy(c->token, token, TOKEN_HEX_LEN + 1);
    memcpy(c->request_id, rid, sizeof rid);
    request_suspend(req, released);
    lock_call_release(c);
}

static void status_read(struct request *req)
{
    const struct lock_call *c = &req->lock;

    if (c->reply.outcome == LOCK_UNAVAILABLE) {
        reply_backend_error(req, &c->err);
        return;
    }
    reply_json(req, 200, kind_of(req)->status_json(req->param, c));
}

void lease_status(struct request *req, const struct lease_kind *lk)
{
    struct lock_call *c = lease_call(req, lk);

    request_suspend(req, status_read);
    lock_call_status(c);
}

static void forced(struct request *req)
{
    const struct lock_call *c = &req->lock;

    if (c->reply.outcome != LOCK_OK) {
        reply_backend_error(req, &c->err);
        return;
    }
    metrics_force_release();
    kind_of(req)->audit_force(req);
    reply_json(req, 200,
               json_pack("{s:s, s:b, s:I}", "name", req->param, "released", 1,
                         "holders", (json_int_t)c->reply.forced));
}

void lease_force_release(struct request *req, const struct lease_kind *lk)
{
    struct lock_call *c = lease_call(req, lk);

    request_suspend(req, forced);
    lock_call_force(c);
}

int64_t lease_retry_after_s(int64_t retry_ms)
{
    return retry_ms > 0 ? (retry_ms + 999) / 1000 : 1;
}

int field_request_id(json_t *obj, char *out, struct field_problem *p)
{
    const char *rid;

    if (field_string(obj, "request_id", false, REQUEST_ID_MAX, &rid, p) < 0)
        return -1;
    if (rid == NULL) {
        out[0] = '\0';
        return 0;
    }
    if (!lock_name_valid(rid, strlen(rid)) || strlen(rid) > REQUEST_ID_MAX) {
        p->error = FIELD_INVALID_FIELD;
        snprintf(p->detail, sizeof p->detail,
                 "request_id must be 1 to %d characters of A-Z a-z 0-9 . _ "
                 ": -",
                 REQUEST_ID_MAX);
        return -1;
    }
    memcpy(out, rid, strlen(rid) + 1);
    return 0;
}
