/* lock_engine.c -- see lock_engine.h and the scripts in service/lua/. */
#include "lock_engine.h"

#include "embedded.h"
#include "redis_conn.h"
#include "token.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define KEY_MAX (KEY_PREFIX_MAX + 16 + LOCK_NAME_MAX)
static const struct config *conf;
static char release_channel[KEY_PREFIX_MAX + 16];
/* How long a release reserves the lock for the waiter it wakes
 * (--handoff-ms): ample for a resume and one round trip, and the longest a
 * lock stays idle when that waiter has vanished. */
static char handoff_ms[24];
/* Random per process: waiter ids from different instances never meet. */
static char instance_id[TOKEN_HEX_LEN + 1];
static atomic_ullong waiter_seq;

static struct redis_script script_acquire = REDIS_SCRIPT(embedded_acquire_lua);
static struct redis_script script_renew = REDIS_SCRIPT(embedded_renew_lua);
static struct redis_script script_release = REDIS_SCRIPT(embedded_release_lua);
static struct redis_script script_status = REDIS_SCRIPT(embedded_status_lua);

void lock_engine_init(const struct config *cfg)
{
    conf = cfg;
    snprintf(release_channel, sizeof release_channel, "%sreleased",
             cfg->key_prefix);
    snprintf(handoff_ms, sizeof handoff_ms, "%" PRId64, cfg->handoff_ms);
    if (token_new(instance_id) < 0) /* no randomness: still unique per pid */
        snprintf(instance_id, sizeof instance_id, "pid%ld", (long)getpid());
    instance_id[16] = '\0';
}

void lock_waiter_id(char out[LOCK_WAITER_ID_MAX])
{
    snprintf(out, LOCK_WAITER_ID_MAX, "%s:%llu", instance_id,
             (unsigned long long)atomic_fetch_add(&waiter_seq, 1) + 1);
}

const char *lock_release_channel(void)
{
    return release_channel;
}

size_t lock_key(char *buf, size_t buflen, const char *kind, const char *name)
{
    int n = snprintf(buf, buflen, "%s%s:%s", conf->key_prefix, kind, name);
    return n > 0 && (size_t)n < buflen ? (size_t)n : 0;
}

/* Integer element i of an array reply, or def. */
static int64_t elem_int(const redisReply *r, size_t i, int64_t def)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return def;
    return r->element[i]->integer;
}

/* Copies string element i of an array reply into dst ("" if absent). */
static void elem_str(const redisReply *r, size_t i, char *dst, size_t dstlen)
{
    const redisReply *e;
    size_t n;

    dst[0] = '\0';
    if (i >= r->elements)
        return;
    e = r->element[i];
    if (e->type != REDIS_REPLY_STRING)
        return;
    n = e->len < dstlen - 1 ? e->len : dstlen - 1;
    memcpy(dst, e->str, n);
    dst[n] = '\0';
}

/* The {1, fence, count, ttl, owner} shape shared by acquire and renew. */
static void lease_from_reply(const redisReply *r, struct lease *out)
{
    out->fence = elem_int(r, 1, 0);
    out->count = elem_int(r, 2, 0);
    out->ttl_ms = elem_int(r, 3, 0);
    elem_str(r, 4, out->owner, sizeof out->owner);
    out->held = true;
}

/* renew.lua and release.lua lead with 1 (done), 0 (nobody holds the lock)
 * or -1 (another token holds it). */
static enum lock_result owner_checked(const redisReply *r)
{
    switch (r->element[0]->integer) {
    case 1:
        return LOCK_OK;
    case 0:
        return LOCK_NOT_HELD;
    default:
        return LOCK_NOT_OWNER;
    }
}

/* Runs a script whose reply is an array led by an integer status. */
static redisReply *run(struct redis_script *s, int nkeys, int argc,
                       const char **argv, const size_t *lens)
{
    redisReply *r = redis_run_script(s, nkeys, argc, argv, lens);

    if (r != NULL && (r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
                      r->element[0]->type != REDIS_REPLY_INTEGER)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static void set_args(const char **argv, size_t *lens, int i, const char *s)
{
    argv[i] = s;
    lens[i] = strlen(s);
}

enum lock_result lock_acquire(const char *name, const char *token,
                              int64_t ttl_ms, const char *owner,
                              const struct lock_wait *wait, struct lease *out)
{
    char k_lock[KEY_MAX], k_fence[KEY_MAX], k_wait[KEY_MAX], k_hand[KEY_MAX];
    char ttl[24], wait_ms[24], maxhold[24];
    const char *argv[12];
    size_t lens[12];
    enum lock_result res;
    redisReply *r;

    memset(out, 0, sizeof *out);
    if (token == NULL) {
        if (token_new(out->token) < 0)
            return LOCK_UNAVAILABLE;
    } else {
        memcpy(out->token, token, TOKEN_HEX_LEN);
        out->token[TOKEN_HEX_LEN] = '\0';
    }
    if (!lock_key(k_lock, sizeof k_lock, "lock", name) ||
        !lock_key(k_fence, sizeof k_fence, "fence", name) ||
        !lock_key(k_wait, sizeof k_wait, "waitq", name) ||
        !lock_key(k_hand, sizeof k_hand, "handoff", name))
        return LOCK_UNAVAILABLE;
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    snprintf(wait_ms, sizeof wait_ms, "%" PRId64, wait ? wait->ms : 0);
    snprintf(maxhold, sizeof maxhold, "%" PRId64, conf->max_hold_count);
    set_args(argv, lens, 0, k_lock);
    set_args(argv, lens, 1, k_fence);
    set_args(argv, lens, 2, k_wait);
    set_args(argv, lens, 3, k_hand);
    set_args(argv, lens, 4, out->token);
    set_args(argv, lens, 5, token ? "1" : "0");
    set_args(argv, lens, 6, ttl);
    set_args(argv, lens, 7, owner ? owner : "");
    set_args(argv, lens, 8, wait_ms);
    set_args(argv, lens, 9, maxhold);
    set_args(argv, lens, 10, wait && wait->ticket ? wait->ticket : "");
    set_args(argv, lens, 11, wait ? wait->id : "");
    r = run(&script_acquire, 4, 12, argv, lens);
    if (r == NULL)
        return LOCK_UNAVAILABLE;
    switch (r->element[0]->integer) {
    case 1:
        lease_from_reply(r, out);
        res = LOCK_OK;
        break;
    case 0:
        out->retry_after_ms = elem_int(r, 1, 0);
        if (out->retry_after_ms < 0)
            out->retry_after_ms = 0;
        res = LOCK_HELD;
        break;
    case -2:
        res = LOCK_HOLD_LIMIT;
        break;
    default:
        res = LOCK_NOT_OWNER;
        break;
    }
    freeReplyObject(r);
    return res;
}

enum lock_result lock_renew(const char *name, const char *token, int64_t ttl_ms,
                            struct lease *out)
{
    char k_lock[KEY_MAX], k_fence[KEY_MAX], ttl[24];
    const char *argv[4];
    size_t lens[4];
    enum lock_result res;
    redisReply *r;

    memset(out, 0, sizeof *out);
    if (!lock_key(k_lock, sizeof k_lock, "lock", name) ||
        !lock_key(k_fence, sizeof k_fence, "fence", name))
        return LOCK_UNAVAILABLE;
    snprintf(ttl, sizeof ttl, "%" PRId64, ttl_ms);
    set_args(argv, lens, 0, k_lock);
    set_args(argv, lens, 1, k_fence);
    set_args(argv, lens, 2, token);
    set_args(argv, lens, 3, ttl);
    r = run(&script_renew, 2, 4, argv, lens);
    if (r == NULL)
        return LOCK_UNAVAILABLE;
    res = owner_checked(r);
    if (res == LOCK_OK) {
        memcpy(out->token, token, TOKEN_HEX_LEN);
        lease_from_reply(r, out);
    }
    freeReplyObject(r);
    return res;
}

enum lock_result lock_release(const char *name, const char *token,
                              int64_t *count)
{
    char k_lock[KEY_MAX], k_wait[KEY_MAX], k_hand[KEY_MAX];
    const char *argv[7];
    size_t lens[7];
    enum lock_result res;
    redisReply *r;

    *count = 0;
    if (!lock_key(k_lock, sizeof k_lock, "lock", name) ||
        !lock_key(k_wait, sizeof k_wait, "waitq", name) ||
        !lock_key(k_hand, sizeof k_hand, "handoff", name))
        return LOCK_UNAVAILABLE;
    set_args(argv, lens, 0, k_lock);
    set_args(argv, lens, 1, k_wait);
    set_args(argv, lens, 2, k_hand);
    set_args(argv, lens, 3, token);
    set_args(argv, lens, 4, release_channel);
    set_args(argv, lens, 5, name);
    set_args(argv, lens, 6, handoff_ms);
    r = run(&script_release, 3, 7, argv, lens);
    if (r == NULL)
        return LOCK_UNAVAILABLE;
    res = owner_checked(r);
    if (res == LOCK_OK)
        *count = elem_int(r, 1, 0);
    freeReplyObject(r);
    return res;
}

void lock_waiter_gone(const char *name, const char *id)
{
    char k_wait[KEY_MAX];
    const char *argv[3];
    size_t lens[3];
    redisReply *r;

    if (name[0] == '\0' || id[0] == '\0' ||
        !lock_key(k_wait, sizeof k_wait, "waitq", name))
        return;
    set_args(argv, lens, 0, "ZREM");
    set_args(argv, lens, 1, k_wait);
    set_args(argv, lens, 2, id);
    r = redis_run_command(3, argv, lens);
    if (r != NULL)
        freeReplyObject(r);
}

enum lock_result lock_status(const char *name, struct lease *out)
{
    char k_lock[KEY_MAX], k_hand[KEY_MAX];
    const char *argv[2];
    size_t lens[2];
    redisReply *r;

    memset(out, 0, sizeof *out);
    if (!lock_key(k_lock, sizeof k_lock, "lock", name) ||
        !lock_key(k_hand, sizeof k_hand, "handoff", name))
        return LOCK_UNAVAILABLE;
    set_args(argv, lens, 0, k_lock);
    set_args(argv, lens, 1, k_hand);
    r = run(&script_status, 2, 2, argv, lens);
    if (r == NULL)
        return LOCK_UNAVAILABLE;
    if (r->element[0]->integer == 1)
        lease_from_reply(r, out);
    else if (r->element[0]->integer == 2)
        out->reserved_ms = elem_int(r, 1, 0);
    freeReplyObject(r);
    return LOCK_OK;
}

int lock_engine_ping(void)
{
    const char *argv[1] = {"PING"};
    size_t lens[1] = {4};
    redisReply *r = redis_run_command(1, argv, lens);

    if (r == NULL)
        return -1;
    freeReplyObject(r);
    return 0;
}
