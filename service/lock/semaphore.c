/* semaphore.c -- the semaphore: its scripts (lock/lua/sem_*.lua) and codec.
 * Up to `limit` permits held at once, each grant its own lease with its own
 * token, fence and expiry; every contender agrees to the same limit while
 * permits are held; waiters served strictly in arrival order from the
 * name's queue in Redis, as many at a time as fit. No reentrancy: a token
 * is one lease. */
#include "codec.h"
#include "kind.h"

#include "embedded.h"

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

/* sem_prelude.lua's KEYS: the semaphore's five, then the request record. */
static const struct codec_keys keys = {
    .first = {KEY_SEM, KEY_SEM_EXPIRY, KEY_SEM_FENCE, KEY_SEM_QUEUE,
              KEY_SEM_WAITERS},
    .acq = "sem:acq",
    .rel = "sem:rel",
};

static void encode(enum lock_op op, const struct lock_args *a,
                   const struct lock_context *ctx, struct lock_argv *out)
{
    codec_context_args(out, op, a, ctx, &keys);
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

/* The next space-separated decimal field of *p (up to end) into *v. */
static bool next_int(const char **p, const char *end, int64_t *v)
{
    const char *s = *p;
    int64_t n = 0;

    if (s >= end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (n > (INT64_MAX - 9) / 10)
            return false;
        n = n * 10 + (*s - '0');
    }
    if (s >= end || *s != ' ')
        return false;
    *v = n;
    *p = s + 1;
    return true;
}

/* Skips the next space-separated field of *p that is not the last. */
static bool next_word(const char **p, const char *end)
{
    const char *s = memchr(*p, ' ', (size_t)(end - *p));

    if (s == NULL || s == *p)
        return false;
    *p = s + 1;
    return true;
}

/* A holders hash value, "<permits> <fence> <ttl ms> <granted ms> <expires
 * ms> <request id> <waiter> <owner>", as a holder at now_ms. */
static bool parse_holder(const redisReply *e, int64_t now_ms,
                         struct lock_holder *h)
{
    const char *p, *end;
    int64_t ttl, granted, expires;
    size_t olen;

    if (e->type != REDIS_REPLY_STRING)
        return false;
    p = e->str;
    end = e->str + e->len;
    if (!next_int(&p, end, &h->permits) || !next_int(&p, end, &h->fence) ||
        !next_int(&p, end, &ttl) || !next_int(&p, end, &granted) ||
        !next_int(&p, end, &expires) || !next_word(&p, end) ||
        !next_word(&p, end))
        return false;
    olen = (size_t)(end - p);
    if (olen >= sizeof h->owner)
        return false;
    memcpy(h->owner, p, olen);
    h->owner[olen] = '\0';
    h->ttl_ms = expires > now_ms ? expires - now_ms : 0;
    h->held_ms = now_ms > granted ? now_ms - granted : 0;
    h->count = 1;
    return true;
}

/* A waiters hash value without its token, "<deadline ms> <queued ms> <ttl
 * ms> <permits> <limit> <request id> <owner>", as a waiter at now_ms;
 * *live false when its wait is over. */
static bool parse_waiter(const redisReply *e, int64_t now_ms,
                         struct lock_queued *q, bool *live)
{
    const char *p, *end;
    int64_t deadline, queued, ttl, limit;
    size_t olen;

    if (e->type != REDIS_REPLY_STRING)
        return false;
    p = e->str;
    end = e->str + e->len;
    if (!next_int(&p, end, &deadline) || !next_int(&p, end, &queued) ||
        !next_int(&p, end, &ttl) || !next_int(&p, end, &q->permits) ||
        !next_int(&p, end, &limit) || !next_word(&p, end))
        return false;
    olen = (size_t)(end - p);
    if (olen >= sizeof q->owner)
        return false;
    memcpy(q->owner, p, olen);
    q->owner[olen] = '\0';
    q->waited_ms = now_ms > queued ? now_ms - queued : 0;
    *live = deadline > now_ms;
    return true;
}

/* sem_status.lua: {limit, used, holder_count, waiting, now_ms, {holders as
 * stored}, waiters as stored without their tokens...}. */
static bool decode_status(const redisReply *r, struct lock_reply *out)
{
    const redisReply *hs;
    int64_t now_ms;
    size_t nq;

    if (r->elements < 6 || !codec_get_int(r, 0, &out->limit) ||
        !codec_get_int(r, 1, &out->used) ||
        !codec_get_int(r, 2, &out->holder_count) ||
        !codec_get_int(r, 3, &out->waiting) || !codec_get_int(r, 4, &now_ms) ||
        r->element[5]->type != REDIS_REPLY_ARRAY ||
        r->element[5]->elements > LOCK_LIST_MAX || out->limit < 0 ||
        out->used < 0)
        return false;
    hs = r->element[5];
    nq = r->elements - 6;
    if (nq > LOCK_LIST_MAX)
        return false;
    out->outcome = out->holder_count > 0 ? LOCK_OK : LOCK_FREE;
    if (!codec_alloc_lists(out, hs->elements, nq))
        return false;
    for (size_t i = 0; i < hs->elements; i++) {
        struct lock_holder *h = &out->holders[out->nholders];
        /* A holder gone between the two reads of the script: skipped. */
        if (hs->element[i]->type == REDIS_REPLY_NIL)
            continue;
        if (!parse_holder(hs->element[i], now_ms, h))
            return false;
        out->nholders++;
        codec_see_fence(out, h->fence);
    }
    for (size_t i = 0; i < nq; i++) {
        bool live;
        if (!parse_waiter(r->element[6 + i], now_ms, &out->queue[out->queued],
                          &live))
            return false;
        out->queued += live;
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
    return codec_get_forced(r, n, out);
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
            return r->elements == 4 &&
                   codec_get_int(r, 1, &out->lease.permits) &&
                   codec_get_int(r, 2, &out->fence_seen) &&
                   codec_get_int(r, 3, &out->held_ms);
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
    codec_reply_clear(out);
    if (r->type == REDIS_REPLY_ARRAY && codec_is_int(r, 0) &&
        decode_op(op, r->element[0]->integer, r, out))
        return 0;
    return codec_reply_unknown(out);
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
    KEY_SEM_QUEUE,
    encode,
    decode,
};
