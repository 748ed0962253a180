/* semaphore.c -- the semaphore: its scripts (lock/lua/sem_*.lua) and codec.
 * Up to `limit` permits held at once, each grant its own lease with its own
 * token, fence and expiry; every contender agrees to the same limit while
 * permits are held; waiters served strictly in arrival order from the
 * name's queue in Redis, as many at a time as fit. No reentrancy: a token
 * is one lease. */
#include "codec.h"
#include "kind.h"

#include "embedded.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct redis_script acquire = REDIS_SCRIPT(embedded_sem_acquire_lua, 0);
static struct redis_script renew = REDIS_SCRIPT(embedded_sem_renew_lua, 0);
static struct redis_script release = REDIS_SCRIPT(embedded_sem_release_lua, 0);
static struct redis_script status = REDIS_SCRIPT(embedded_sem_status_lua, 0);
static struct redis_script claim = REDIS_SCRIPT(embedded_sem_claim_lua, 0);
static struct redis_script leave = REDIS_SCRIPT(embedded_sem_leave_lua, 0);
static struct redis_script poke = REDIS_SCRIPT(embedded_sem_poke_lua, 0);
static struct redis_script force = REDIS_SCRIPT(embedded_sem_force_lua, 0);

/* ---- encoding ---------------------------------------------------------*/

static void encode(enum lock_op op, const struct lock_args *a,
                   const struct lock_context *ctx, struct lock_argv *out)
{
    static const enum key_kind keys[] = {KEY_SEM, KEY_SEM_EXPIRY, KEY_SEM_FENCE,
                                         KEY_SEM_QUEUE, KEY_SEM_WAITERS};
    /* KEYS[6]: the record of the call's request_id (release keeps its
     * own); any other call names the acquire record of no id. */
    const char *record = op == LOCK_OP_RELEASE ? "sem:rel" : "sem:acq";

    out->argc = 0;
    out->nnumbers = 0;
    out->nkeys = 6;
    for (int i = 0; i < 5; i++)
        codec_arg(out, out->keys[i], key_for(out->keys[i], keys[i], a->name));
    codec_arg(out, out->keys[5],
              key_for_record(out->keys[5], record, a->name,
                             op == LOCK_OP_ACQUIRE || op == LOCK_OP_RELEASE
                                 ? codec_or_dash(a->request_id)
                                 : "-"));
    codec_arg_str(out, ctx->prefix);
    codec_arg_int(out, ctx->handoff_ms);
    codec_arg_int(out, ctx->fence_floor);
    codec_arg_str(out, ctx->qname);
    switch (op) {
    case LOCK_OP_ACQUIRE:
        codec_arg_str(out, a->token);
        codec_arg_int(out, a->ttl_ms);
        codec_arg_str(out, a->owner);
        codec_arg_int(out, a->wait_ms);
        codec_arg_str(out, a->waiter);
        codec_arg_int(out, a->permits);
        codec_arg_int(out, a->limit);
        codec_arg_str(out, codec_or_dash(a->request_id));
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
    case LOCK_OP_FORCE:
        codec_arg_int(out, a->listed);
        break;
    case LOCK_OP_CLAIM:
        codec_arg_str(out, a->waiter);
        codec_arg_str(out, a->token);
        codec_arg_int(out, a->wait_ms);
        codec_arg_int(out, a->ttl_ms);
        codec_arg_str(out, a->owner);
        codec_arg_int(out, a->permits);
        codec_arg_int(out, a->limit);
        codec_arg_str(out, codec_or_dash(a->request_id));
        break;
    case LOCK_OP_LEAVE:
        codec_arg_str(out, a->waiter);
        codec_arg_str(out, a->token);
        codec_arg_str(out, a->leave_claims ? "claim" : "release");
        break;
    case LOCK_OP_POKE:
    case LOCK_OP_COUNT:
        break;
    }
}

/* ---- decoding ---------------------------------------------------------*/

/* {1, fence, permits, ttl, owner, limit, replayed, token}: exactly 8. */
static bool get_lease(const redisReply *r, struct lock_reply *out)
{
    struct lease *l = &out->lease;
    int64_t replayed;

    if (r->elements != 8 || !codec_get_int(r, 1, &l->fence) ||
        !codec_get_int(r, 2, &l->permits) || !codec_get_int(r, 3, &l->ttl_ms) ||
        !codec_get_str(r, 4, l->owner, sizeof l->owner) ||
        !codec_get_int(r, 5, &out->limit) || !codec_get_int(r, 6, &replayed) ||
        !codec_get_str(r, 7, out->token, sizeof out->token) || l->permits < 1 ||
        out->limit < l->permits)
        return false;
    if (replayed != 0 && replayed != 1)
        return false;
    out->replayed = replayed == 1;
    if (out->replayed != (strlen(out->token) == TOKEN_HEX_LEN))
        return false;
    if (!out->replayed && out->token[0] != '\0')
        return false;
    out->outcome = LOCK_OK;
    l->count = 1;
    out->fence_seen = l->fence;
    return true;
}

/* sem_status.lua: {limit, used, holder_count, waiting, listed, holders as
 * (owner, fence, ttl, permits, held_ms)..., queued as (owner, permits,
 * waited_ms)...}. */
static bool decode_status(const redisReply *r, struct lock_reply *out)
{
    int64_t listed;
    size_t rest, nq, at = 5;

    if (r->elements < 5 || !codec_get_int(r, 0, &out->limit) ||
        !codec_get_int(r, 1, &out->used) ||
        !codec_get_int(r, 2, &out->holder_count) ||
        !codec_get_int(r, 3, &out->waiting) || !codec_get_int(r, 4, &listed) ||
        listed < 0 || listed > LOCK_LIST_MAX || listed > out->holder_count ||
        out->limit < 0 || out->used < 0 ||
        (r->elements - 5) < 5 * (size_t)listed)
        return false;
    rest = r->elements - 5 - 5 * (size_t)listed;
    if (rest % 3 != 0 || rest / 3 > LOCK_LIST_MAX)
        return false;
    nq = rest / 3;
    out->outcome = out->holder_count > 0 ? LOCK_OK : LOCK_FREE;
    if (listed > 0) {
        out->holders = calloc((size_t)listed, sizeof *out->holders);
        if (out->holders == NULL)
            return false;
    }
    for (size_t i = 0; i < (size_t)listed; i++, at += 5) {
        struct lock_holder *h = &out->holders[i];
        if (!codec_get_str(r, at, h->owner, sizeof h->owner) ||
            !codec_get_int(r, at + 1, &h->fence) ||
            !codec_get_int(r, at + 2, &h->ttl_ms) ||
            !codec_get_int(r, at + 3, &h->permits) ||
            !codec_get_int(r, at + 4, &h->held_ms))
            return false;
        h->count = 1;
        out->nholders++;
        if (h->fence > out->fence_seen)
            out->fence_seen = h->fence;
    }
    if (nq > 0) {
        out->queue = calloc(nq, sizeof *out->queue);
        if (out->queue == NULL)
            return false;
    }
    for (size_t i = 0; i < nq; i++, at += 3) {
        struct lock_queued *q = &out->queue[i];
        if (!codec_get_str(r, at, q->owner, sizeof q->owner) ||
            !codec_get_int(r, at + 1, &q->permits) ||
            !codec_get_int(r, at + 2, &q->waited_ms))
            return false;
        out->queued++;
    }
    return true;
}

/* sem_force.lua: {holders, owner_1, fence_1, ...}. */
static bool decode_force(const redisReply *r, struct lock_reply *out)
{
    size_t n;

    if (!codec_get_int(r, 0, &out->forced) || out->forced < 0 ||
        (r->elements - 1) % 2 != 0)
        return false;
    n = (r->elements - 1) / 2;
    if (n > LOCK_LIST_MAX || (int64_t)n > out->forced)
        return false;
    out->outcome = LOCK_OK;
    if (n > 0) {
        out->holders = calloc(n, sizeof *out->holders);
        if (out->holders == NULL)
            return false;
    }
    for (size_t i = 0; i < n; i++) {
        struct lock_holder *h = &out->holders[i];
        if (!codec_get_str(r, 1 + 2 * i, h->owner, sizeof h->owner) ||
            !codec_get_int(r, 2 + 2 * i, &h->fence))
            return false;
        out->nholders++;
        if (h->fence > out->fence_seen)
            out->fence_seen = h->fence;
    }
    return true;
}

/* Decodes reply r of op, whose first element is the integer st. Returns
 * false for a shape op never answers. */
static bool decode_op(enum lock_op op, int64_t st, const redisReply *r,
                      struct lock_reply *out)
{
    int64_t queued;

    switch (op) {
    case LOCK_OP_ACQUIRE:
        if (st == 1)
            return get_lease(r, out);
        if (st == 0) {
            if (r->elements != 3 || !codec_get_pttl(r, 1, out) ||
                !codec_get_int(r, 2, &queued) || (queued != 0 && queued != 1))
                return false;
            out->outcome = queued ? LOCK_QUEUED : LOCK_HELD;
            return true;
        }
        if (st == -4) {
            out->outcome = LOCK_REQUEST_ENDED;
            return r->elements == 1;
        }
        if (st == -5) {
            out->outcome = LOCK_LIMIT_MISMATCH;
            return r->elements == 2 && codec_get_int(r, 1, &out->limit);
        }
        return false;
    case LOCK_OP_RENEW:
        if (st == 1)
            return get_lease(r, out);
        out->outcome = LOCK_NOT_HELD;
        return st == 0 && r->elements == 1;
    case LOCK_OP_RELEASE:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return r->elements == 3 &&
                   codec_get_int(r, 1, &out->lease.permits) &&
                   codec_get_int(r, 2, &out->fence_seen);
        }
        out->outcome = LOCK_NOT_HELD;
        return st == 0 && r->elements == 1;
    case LOCK_OP_STATUS:
        return decode_status(r, out);
    case LOCK_OP_CLAIM:
        if (st == 1)
            return get_lease(r, out);
        if (st == 0) {
            out->outcome = LOCK_QUEUED;
            return r->elements == 3 && codec_get_pttl(r, 1, out) &&
                   codec_get_int(r, 2, &queued) && queued == 1;
        }
        out->outcome = LOCK_WAIT_OVER;
        return st == -3 && r->elements == 1;
    case LOCK_OP_LEAVE:
        if (st == 1)
            return get_lease(r, out);
        if (st == 0) {
            out->outcome = LOCK_HELD;
            return r->elements == 2 && codec_get_pttl(r, 1, out);
        }
        out->outcome = LOCK_HANDED_ON;
        return st == 2 && r->elements == 1;
    case LOCK_OP_POKE:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return r->elements == 3 && codec_get_pttl(r, 1, out) &&
                   codec_get_str(r, 2, out->handed_to, sizeof out->handed_to);
        }
        out->outcome = LOCK_FREE;
        return st == 0 && r->elements == 1;
    case LOCK_OP_FORCE:
        return decode_force(r, out);
    case LOCK_OP_COUNT:
        break;
    }
    return false;
}

/* Frees what out held first: the engine decodes every step of a call into
 * the same reply. */
static int decode(enum lock_op op, const redisReply *r, struct lock_reply *out)
{
    lock_reply_free(out);
    memset(out, 0, sizeof *out);
    if (r->type == REDIS_REPLY_ARRAY && codec_is_int(r, 0) &&
        decode_op(op, r->element[0]->integer, r, out))
        return 0;
    lock_reply_free(out);
    memset(out, 0, sizeof *out);
    out->outcome = LOCK_UNAVAILABLE;
    return -1;
}

const struct lock_kind lock_kind_semaphore = {
    "semaphore",
    embedded_sem_prelude_lua,
    {[LOCK_OP_ACQUIRE] = &acquire,
     [LOCK_OP_RENEW] = &renew,
     [LOCK_OP_RELEASE] = &release,
     [LOCK_OP_STATUS] = &status,
     [LOCK_OP_CLAIM] = &claim,
     [LOCK_OP_LEAVE] = &leave,
     [LOCK_OP_POKE] = &poke,
     [LOCK_OP_FORCE] = &force},
    encode,
    decode,
};
