/* exclusive.c -- the lock: its scripts (lock/lua/) and codec. An
 * exclusive lease excludes every other, shared leases coexist; reentrant
 * by token, waiters of both modes served strictly in arrival order from
 * the name's queue in Redis. */
#include "codec.h"
#include "kind.h"

#include "embedded.h"

#include <stdlib.h>
#include <string.h>

static struct redis_script acquire = REDIS_SCRIPT(embedded_acquire_lua, 0);
static struct redis_script renew = REDIS_SCRIPT(embedded_renew_lua, 0);
static struct redis_script release = REDIS_SCRIPT(embedded_release_lua, 0);
static struct redis_script status = REDIS_SCRIPT(embedded_status_lua, 0);
static struct redis_script claim = REDIS_SCRIPT(embedded_claim_lua, 0);
static struct redis_script leave = REDIS_SCRIPT(embedded_leave_lua, 0);
static struct redis_script poke = REDIS_SCRIPT(embedded_poke_lua, 0);
static struct redis_script force = REDIS_SCRIPT(embedded_force_lua, 0);

/* prelude.lua's KEYS: the lock's five, the request record, then the
 * shared holders and their expiries. */
static const struct codec_keys keys = {
    .first = {KEY_LOCK, KEY_FENCE, KEY_QUEUE, KEY_WAITERS, KEY_DELAY},
    .acq = "acq",
    .rel = "rel",
    .more = {KEY_SHARED, KEY_SHARED_EXPIRY},
    .nmore = 2,
};

static void encode(enum lock_op op, const struct lock_args *a,
                   const struct lock_context *ctx, struct lock_argv *out)
{
    codec_context_args(out, op, a, ctx, &keys);
    codec_arg_str(out, ctx->instance); /* ARGV[5], prelude.lua's own */
    switch (op) {
    case LOCK_OP_ACQUIRE:
        codec_arg_str(out, a->token);
        codec_arg_str(out, a->reenter ? "1" : "0");
        codec_arg_int(out, a->ttl_ms);
        codec_arg_str(out, a->owner);
        codec_arg_int(out, a->wait_ms);
        codec_arg_int(out, a->max_hold);
        codec_arg_str(out, a->waiter);
        codec_arg_int(out, a->delay_ms);
        codec_arg_str(out, codec_or_dash(a->request_id));
        codec_arg_str(out, a->shared ? "shared" : "exclusive");
        break;
    case LOCK_OP_RENEW:
        codec_arg_str(out, a->token);
        codec_arg_int(out, a->ttl_ms);
        break;
    case LOCK_OP_RELEASE:
        codec_arg_str(out, a->token);
        codec_arg_str(out, codec_or_dash(a->request_id));
        break;
    case LOCK_OP_STATUS:
        codec_arg_str(out, a->token);
        codec_arg_int(out, a->listed);
        break;
    case LOCK_OP_CLAIM:
        codec_arg_str(out, a->waiter);
        codec_arg_str(out, a->token);
        codec_arg_int(out, a->wait_ms);
        codec_arg_int(out, a->ttl_ms);
        codec_arg_str(out, a->owner);
        codec_arg_int(out, a->delay_ms);
        codec_arg_str(out, codec_or_dash(a->request_id));
        codec_arg_str(out, a->shared ? "shared" : "exclusive");
        break;
    case LOCK_OP_LEAVE:
        codec_arg_str(out, a->waiter);
        codec_arg_str(out, a->token);
        codec_arg_str(out, a->leave_claims ? "claim" : "release");
        break;
    case LOCK_OP_FORCE:
        codec_arg_int(out, LOCK_LIST_MAX);
        break;
    case LOCK_OP_POKE:
    case LOCK_OP_COUNT:
        break;
    }
}

/* ---- decoding ---------------------------------------------------------*/

/* {1, fence, count, ttl, owner[, replayed, token[, 1]]}: the final 1 says
 * the lease is shared. */
static bool get_lease(const redisReply *r, struct lock_reply *out)
{
    struct lease *l = &out->lease;
    int64_t shared = 0;

    if (!codec_get_int(r, 1, &l->fence) || !codec_get_int(r, 2, &l->count) ||
        !codec_get_int(r, 3, &l->ttl_ms) ||
        !codec_get_str(r, 4, l->owner, sizeof l->owner) ||
        (r->elements > 7 && !codec_get_int(r, 7, &shared)) || shared < 0 ||
        shared > 1)
        return false;
    l->shared = shared == 1;
    out->fence_seen = l->fence;
    return true;
}

/* status.lua: {state, pttl, fence, count, owner, held_ms, owned, waiting,
 * mode, holder_count, listed, holders as (owner, fence, ttl, count,
 * held_ms)..., queued as (owner, waited_ms, mode)...}. */
static bool decode_status_op(int64_t st, const redisReply *r,
                             struct lock_reply *out)
{
    int64_t owned, mode, listed;
    size_t rest, nq, at = 11;

    if (st < 0 || st > 3 || r->elements < 11 || !codec_get_pttl(r, 1, out) ||
        !codec_get_int(r, 2, &out->lease.fence) ||
        !codec_get_int(r, 3, &out->lease.count) ||
        !codec_get_str(r, 4, out->lease.owner, sizeof out->lease.owner) ||
        !codec_get_int(r, 5, &out->held_ms) || !codec_get_int(r, 6, &owned) ||
        !codec_get_int(r, 7, &out->waiting) || !codec_get_int(r, 8, &mode) ||
        !codec_get_int(r, 9, &out->holder_count) ||
        !codec_get_int(r, 10, &listed) || mode < 0 || mode > 1 || listed < 0 ||
        listed > LOCK_LIST_MAX || listed > out->holder_count ||
        r->elements - 11 < 5 * (size_t)listed)
        return false;
    rest = r->elements - 11 - 5 * (size_t)listed;
    if (rest % 3 != 0 || rest / 3 > LOCK_LIST_MAX)
        return false;
    nq = rest / 3;
    static const enum lock_outcome states[] = {LOCK_FREE, LOCK_OK,
                                               LOCK_RESERVED, LOCK_DELAYED};
    out->outcome = states[st];
    out->owned = (int)owned;
    out->lease.shared = mode == 1;
    out->lease.ttl_ms = out->pttl_ms;
    out->fence_seen = out->lease.fence;
    if (!codec_alloc_lists(out, (size_t)listed, nq))
        return false;
    for (size_t i = 0; i < (size_t)listed; i++, at += 5) {
        struct lock_holder *h = &out->holders[i];
        if (!codec_get_str(r, at, h->owner, sizeof h->owner) ||
            !codec_get_int(r, at + 1, &h->fence) ||
            !codec_get_int(r, at + 2, &h->ttl_ms) ||
            !codec_get_int(r, at + 3, &h->count) ||
            !codec_get_int(r, at + 4, &h->held_ms))
            return false;
        h->permits = 1;
        h->shared = mode == 1;
        out->nholders++;
        codec_see_fence(out, h->fence);
    }
    for (size_t i = 0; i < nq; i++, at += 3) {
        struct lock_queued *q = &out->queue[i];
        int64_t qmode;
        if (!codec_get_str(r, at, q->owner, sizeof q->owner) ||
            !codec_get_int(r, at + 1, &q->waited_ms) ||
            !codec_get_int(r, at + 2, &qmode) || qmode < 0 || qmode > 1)
            return false;
        q->permits = 1;
        q->shared = qmode == 1;
        out->queued++;
    }
    return true;
}

/* force.lua: {holders, owner_1, fence_1, ...}; the first of them also in
 * out->lease. */
static bool decode_force(int64_t st, const redisReply *r,
                         struct lock_reply *out)
{
    size_t n;

    if (st < 0 || r->elements < 3 || (r->elements - 1) % 2 != 0)
        return false;
    n = (r->elements - 1) / 2;
    if (n > LOCK_LIST_MAX || (st > 0 && (int64_t)n > st) ||
        !codec_get_str(r, 1, out->lease.owner, sizeof out->lease.owner) ||
        !codec_get_int(r, 2, &out->lease.fence))
        return false;
    out->outcome = LOCK_OK;
    out->forced = st;
    if (st == 0)
        return n == 1;
    return codec_get_forced(r, n, out);
}

/* Decodes status code st of op. Returns false for a shape op never
 * answers. */
static bool decode_status(enum lock_op op, int64_t st, const redisReply *r,
                          struct lock_reply *out)
{
    int64_t queued;

    switch (op) {
    case LOCK_OP_ACQUIRE:
        if (st == 1) {
            int64_t replayed = 0;
            out->outcome = LOCK_OK;
            if (r->elements > 5 && !codec_get_int(r, 5, &replayed))
                return false;
            out->replayed = replayed == 1;
            if (out->replayed &&
                (!codec_get_str(r, 6, out->token, sizeof out->token) ||
                 strlen(out->token) != TOKEN_HEX_LEN))
                return false;
            return get_lease(r, out);
        }
        if (st == 0) {
            if (!codec_get_pttl(r, 1, out) || !codec_get_int(r, 2, &queued))
                return false;
            out->outcome = queued ? LOCK_QUEUED : LOCK_HELD;
            return true;
        }
        out->outcome = st == -1   ? LOCK_NOT_OWNER
                       : st == -2 ? LOCK_HOLD_LIMIT
                       : st == -5 ? LOCK_MODE_CONFLICT
                                  : LOCK_REQUEST_ENDED;
        return st == -1 || st == -2 || st == -4 || st == -5;
    case LOCK_OP_RENEW:
        out->outcome = st == 1   ? LOCK_OK
                       : st == 0 ? LOCK_NOT_HELD
                                 : LOCK_NOT_OWNER;
        return st == 1 ? get_lease(r, out) : (st == 0 || st == -1);
    case LOCK_OP_RELEASE:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return codec_get_int(r, 1, &out->lease.count) &&
                   codec_get_int(r, 2, &out->fence_seen) &&
                   codec_get_int(r, 3, &out->held_ms);
        }
        out->outcome = st == 0 ? LOCK_NOT_HELD : LOCK_NOT_OWNER;
        return st == 0 || st == -1;
    case LOCK_OP_STATUS:
        return decode_status_op(st, r, out);
    case LOCK_OP_CLAIM:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return get_lease(r, out);
        }
        out->outcome = st == 0 ? LOCK_QUEUED : LOCK_WAIT_OVER;
        return st == 0 ? codec_get_pttl(r, 1, out) : st == -3;
    case LOCK_OP_LEAVE:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return get_lease(r, out);
        }
        out->outcome = st == 0 ? LOCK_HELD : LOCK_HANDED_ON;
        return st == 0 ? codec_get_pttl(r, 1, out) : st == 2;
    case LOCK_OP_FORCE:
        return decode_force(st, r, out);
    case LOCK_OP_POKE:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return codec_get_pttl(r, 1, out) &&
                   codec_get_str(r, 2, out->handed_to, sizeof out->handed_to);
        }
        out->outcome = LOCK_FREE;
        return st == 0;
    case LOCK_OP_COUNT:
        break;
    }
    return false;
}

/* Takes the outright grants off the end of a reply (a nested {waiter id,
 * fence, ...}, see prelude.lua) into out; *rest is the reply without
 * them. */
static bool take_direct(const redisReply *r, redisReply *rest,
                        struct lock_reply *out)
{
    size_t n = r->elements, pairs;
    const redisReply *d;

    *rest = *r;
    if (n < 2 || r->element[n - 1]->type != REDIS_REPLY_ARRAY)
        return true;
    d = r->element[n - 1];
    if (d->elements < 2 || d->elements % 2 != 0)
        return false;
    pairs = d->elements / 2;
    out->directs = calloc(pairs, sizeof *out->directs);
    if (out->directs == NULL)
        return false;
    for (size_t i = 0; i < pairs; i++) {
        struct lock_direct *g = &out->directs[i];
        if (!codec_get_str(d, 2 * i, g->id, sizeof g->id) ||
            !codec_get_int(d, 2 * i + 1, &g->fence) || g->fence <= 0)
            return false;
        out->ndirects++;
        codec_see_fence(out, g->fence);
    }
    rest->elements = n - 1;
    return true;
}

static int decode(enum lock_op op, const redisReply *r, struct lock_reply *out)
{
    redisReply rest;
    int64_t direct_fence;

    codec_reply_clear(out);
    if (r->type == REDIS_REPLY_ARRAY && take_direct(r, &rest, out) &&
        codec_is_int(&rest, 0)) {
        direct_fence = out->fence_seen;
        if (decode_status(op, rest.element[0]->integer, &rest, out)) {
            codec_see_fence(out, direct_fence);
            return 0;
        }
    }
    return codec_reply_unknown(out);
}

const struct lock_kind lock_kind_exclusive = {
    "lock",
    embedded_prelude_lua,
    {[LOCK_OP_ACQUIRE] = &acquire,
     [LOCK_OP_RENEW] = &renew,
     [LOCK_OP_RELEASE] = &release,
     [LOCK_OP_STATUS] = &status,
     [LOCK_OP_CLAIM] = &claim,
     [LOCK_OP_LEAVE] = &leave,
     [LOCK_OP_POKE] = &poke,
     [LOCK_OP_FORCE] = &force},
    KEY_QUEUE,
    encode,
    decode,
};
