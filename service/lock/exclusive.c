/* exclusive.c -- the exclusive lock: its scripts (lock/lua/) and codec.
 * One holder at a time, reentrant by token, waiters served strictly in
 * arrival order from the name's queue in Redis. */
#include "kind.h"

#include "embedded.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static struct redis_script acquire = REDIS_SCRIPT(embedded_acquire_lua, 0);
static struct redis_script renew = REDIS_SCRIPT(embedded_renew_lua, 0);
static struct redis_script release = REDIS_SCRIPT(embedded_release_lua, 0);
static struct redis_script status = REDIS_SCRIPT(embedded_status_lua, 0);
static struct redis_script claim = REDIS_SCRIPT(embedded_claim_lua, 0);
static struct redis_script leave = REDIS_SCRIPT(embedded_leave_lua, 0);
static struct redis_script poke = REDIS_SCRIPT(embedded_poke_lua, 0);

static void arg(struct lock_argv *out, const char *s, size_t len)
{
    out->argv[out->argc] = s;
    out->lens[out->argc] = len;
    out->argc++;
}

static void arg_str(struct lock_argv *out, const char *s)
{
    arg(out, s, strlen(s));
}

static void arg_int(struct lock_argv *out, int64_t v)
{
    char *buf = out->numbers[out->nnumbers++];
    int n = snprintf(buf, sizeof out->numbers[0], "%" PRId64, v);

    arg(out, buf, (size_t)n);
}

static void encode(enum lock_op op, const struct lock_args *a,
                   const struct lock_context *ctx, struct lock_argv *out)
{
    static const enum key_kind keys[] = {KEY_LOCK, KEY_FENCE, KEY_QUEUE,
                                         KEY_WAITERS};

    out->argc = 0;
    out->nnumbers = 0;
    out->nkeys = 4;
    for (int i = 0; i < 4; i++)
        arg(out, out->keys[i], key_for(out->keys[i], keys[i], a->name));
    arg_str(out, ctx->prefix);
    arg_int(out, ctx->handoff_ms);
    arg_int(out, ctx->fence_floor);
    arg_str(out, ctx->qname);
    switch (op) {
    case LOCK_OP_ACQUIRE:
        arg_str(out, a->token);
        arg_str(out, a->reenter ? "1" : "0");
        arg_int(out, a->ttl_ms);
        arg_str(out, a->owner);
        arg_int(out, a->wait_ms);
        arg_int(out, a->max_hold);
        arg_str(out, a->waiter);
        break;
    case LOCK_OP_RENEW:
        arg_str(out, a->token);
        arg_int(out, a->ttl_ms);
        break;
    case LOCK_OP_RELEASE:
        arg_str(out, a->token);
        break;
    case LOCK_OP_CLAIM:
        arg_str(out, a->waiter);
        arg_str(out, a->token);
        arg_int(out, a->wait_ms);
        arg_int(out, a->ttl_ms);
        arg_str(out, a->owner);
        break;
    case LOCK_OP_LEAVE:
        arg_str(out, a->waiter);
        arg_str(out, a->token);
        arg_str(out, a->leave_claims ? "claim" : "release");
        break;
    case LOCK_OP_STATUS:
    case LOCK_OP_POKE:
    case LOCK_OP_COUNT:
        break;
    }
}

/* ---- decoding ---------------------------------------------------------*/

static bool is_int(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER;
}

static bool get_int(const redisReply *r, size_t i, int64_t *v)
{
    if (!is_int(r, i))
        return false;
    *v = r->element[i]->integer;
    return true;
}

static bool get_str(const redisReply *r, size_t i, char *dst, size_t len)
{
    const redisReply *e;

    if (i >= r->elements)
        return false;
    e = r->element[i];
    if (e->type != REDIS_REPLY_STRING || e->len >= len)
        return false;
    memcpy(dst, e->str, e->len);
    dst[e->len] = '\0';
    return true;
}

/* {status, fence, count, ttl, owner} */
static bool get_lease(const redisReply *r, struct lock_reply *out)
{
    struct lease *l = &out->lease;

    if (!get_int(r, 1, &l->fence) || !get_int(r, 2, &l->count) ||
        !get_int(r, 3, &l->ttl_ms) || !get_str(r, 4, l->owner, sizeof l->owner))
        return false;
    out->fence_seen = l->fence;
    return true;
}

static bool get_pttl(const redisReply *r, size_t i, struct lock_reply *out)
{
    if (!get_int(r, i, &out->pttl_ms))
        return false;
    if (out->pttl_ms < 0)
        out->pttl_ms = 0;
    return true;
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
            out->outcome = LOCK_OK;
            return get_lease(r, out);
        }
        if (st == 0) {
            if (!get_pttl(r, 1, out) || !get_int(r, 2, &queued))
                return false;
            out->outcome = queued ? LOCK_QUEUED : LOCK_HELD;
            return true;
        }
        out->outcome = st == -1 ? LOCK_NOT_OWNER : LOCK_HOLD_LIMIT;
        return st == -1 || st == -2;
    case LOCK_OP_RENEW:
        out->outcome = st == 1   ? LOCK_OK
                       : st == 0 ? LOCK_NOT_HELD
                                 : LOCK_NOT_OWNER;
        return st == 1 ? get_lease(r, out) : (st == 0 || st == -1);
    case LOCK_OP_RELEASE:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return get_int(r, 1, &out->lease.count) &&
                   get_int(r, 2, &out->fence_seen);
        }
        out->outcome = st == 0 ? LOCK_NOT_HELD : LOCK_NOT_OWNER;
        return st == 0 || st == -1;
    case LOCK_OP_STATUS:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return get_lease(r, out);
        }
        out->outcome = st == 2 ? LOCK_RESERVED : LOCK_FREE;
        return st == 2 ? get_pttl(r, 1, out) : st == 0;
    case LOCK_OP_CLAIM:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return get_lease(r, out);
        }
        out->outcome = st == 0 ? LOCK_QUEUED : LOCK_WAIT_OVER;
        return st == 0 ? get_pttl(r, 1, out) : st == -3;
    case LOCK_OP_LEAVE:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return get_lease(r, out);
        }
        out->outcome = st == 0 ? LOCK_HELD : LOCK_HANDED_ON;
        return st == 0 ? get_pttl(r, 1, out) : st == 2;
    case LOCK_OP_POKE:
        if (st == 1) {
            out->outcome = LOCK_OK;
            return get_pttl(r, 1, out) &&
                   get_str(r, 2, out->handed_to, sizeof out->handed_to);
        }
        out->outcome = LOCK_FREE;
        return st == 0;
    case LOCK_OP_COUNT:
        break;
    }
    return false;
}

static int decode(enum lock_op op, const redisReply *r, struct lock_reply *out)
{
    memset(out, 0, sizeof *out);
    if (r->type == REDIS_REPLY_ARRAY && is_int(r, 0) &&
        decode_status(op, r->element[0]->integer, r, out))
        return 0;
    memset(out, 0, sizeof *out);
    out->outcome = LOCK_UNAVAILABLE;
    return -1;
}

const struct lock_kind lock_kind_exclusive = {
    "lock",
    {[LOCK_OP_ACQUIRE] = &acquire,
     [LOCK_OP_RENEW] = &renew,
     [LOCK_OP_RELEASE] = &release,
     [LOCK_OP_STATUS] = &status,
     [LOCK_OP_CLAIM] = &claim,
     [LOCK_OP_LEAVE] = &leave,
     [LOCK_OP_POKE] = &poke},
    encode,
    decode,
};
