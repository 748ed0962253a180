/* test_lock_codec.c -- unit tests for the exclusive lock kind's codec
 * (service/lock/exclusive.c): encode's KEYS and ARGV for every operation,
 * as the scripts in service/lock/lua/ read them, and decode of every reply
 * shape the scripts document, built by hand as hiredis reply trees, plus
 * the shapes they never answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "lock/kind.h"
#include "redis/keys.h"

static struct config cfg; /* keys_init keeps a pointer to its prefix */

static int setup_keys(void **state)
{
    (void)state;
    snprintf(cfg.key_prefix, sizeof cfg.key_prefix, "%s", "t:");
    keys_init(&cfg);
    return 0;
}

/* ---- encoding ------------------------------------------------------------*/

static const struct lock_context ctx = {"t:", "lock:orders", 250,
                                        1700000000000000};

/* The fields every test sets; each test changes what it needs. */
static struct lock_args args_default(void)
{
    struct lock_args a = {
        .name = "orders",
        .token = "0123456789abcdef0123456789abcdef",
        .reenter = false,
        .ttl_ms = 30000,
        .wait_ms = 5000,
        .owner = "worker-7",
        .waiter = "0a1b2c3d4e5f6a7b:2:41",
        .leave_claims = false,
        .max_hold = 100,
    };
    return a;
}

/* Asserts item i (0-based over keys then ARGV) is s, length included. */
static void assert_item(const struct lock_argv *av, int i, const char *s)
{
    assert_true(i < av->argc);
    if (av->lens[i] != strlen(s) || memcmp(av->argv[i], s, av->lens[i]) != 0) {
        print_error("item %d: '%.*s' (%zu bytes), expected '%s'\n", i,
                    (int)av->lens[i], av->argv[i], av->lens[i], s);
        fail();
    }
}

/* ARGV[n], 1-based as in Lua. */
static void assert_argv(const struct lock_argv *av, int n, const char *s)
{
    assert_item(av, av->nkeys + n - 1, s);
}

/* Encodes op and checks what every script gets: the four keys of name
 * and ARGV[1..4]; argv_own is how many ARGV the op adds. */
static void encode_common(enum lock_op op, const struct lock_args *a,
                          const struct lock_context *c, struct lock_argv *av,
                          int argv_own)
{
    static const enum key_kind kinds[] = {KEY_LOCK, KEY_FENCE, KEY_QUEUE,
                                          KEY_WAITERS};
    char key[KEY_MAX], num[32];

    memset(av, 0x5a, sizeof *av); /* encode must not rely on a clean out */
    lock_kind_exclusive.encode(op, a, c, av);
    assert_int_equal(av->nkeys, 4);
    assert_int_equal(av->argc, 4 + 4 + argv_own);
    assert_true(av->argc <= LOCK_KEYS_MAX + LOCK_ARGV_MAX);
    for (int i = 0; i < 4; i++) {
        size_t n = key_for(key, kinds[i], a->name);
        assert_true(n > 0);
        assert_item(av, i, key);
    }
    assert_argv(av, 1, c->prefix);
    snprintf(num, sizeof num, "%lld", (long long)c->handoff_ms);
    assert_argv(av, 2, num);
    snprintf(num, sizeof num, "%lld", (long long)c->fence_floor);
    assert_argv(av, 3, num);
    assert_argv(av, 4, c->qname);
}

static void test_key_schema(void **state)
{
    (void)state;
    char key[KEY_MAX];

    assert_int_equal(key_for(key, KEY_LOCK, "orders"), 15);
    assert_string_equal(key, "t:{orders}:lock");
    key_for(key, KEY_FENCE, "orders");
    assert_string_equal(key, "t:{orders}:fence");
    key_for(key, KEY_QUEUE, "orders");
    assert_string_equal(key, "t:{orders}:queue");
    key_for(key, KEY_WAITERS, "orders");
    assert_string_equal(key, "t:{orders}:waiters");
    key_for(key, KEY_DEMO, "sku-1");
    assert_string_equal(key, "t:{sku-1}:demo");
    assert_string_equal(keys_prefix(), "t:");
}

static void test_encode_keys(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    encode_common(LOCK_OP_STATUS, &a, &ctx, &av, 0);
    assert_item(&av, 0, "t:{orders}:lock");
    assert_item(&av, 1, "t:{orders}:fence");
    assert_item(&av, 2, "t:{orders}:queue");
    assert_item(&av, 3, "t:{orders}:waiters");
    assert_argv(&av, 1, "t:");
    assert_argv(&av, 2, "250");
    assert_argv(&av, 3, "1700000000000000");
    assert_argv(&av, 4, "lock:orders");
}

static void test_encode_acquire(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    encode_common(LOCK_OP_ACQUIRE, &a, &ctx, &av, 7);
    assert_argv(&av, 5, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 6, "0");
    assert_argv(&av, 7, "30000");
    assert_argv(&av, 8, "worker-7");
    assert_argv(&av, 9, "5000");
    assert_argv(&av, 10, "100");
    assert_argv(&av, 11, "0a1b2c3d4e5f6a7b:2:41");

    /* Re-entering, no wait, no owner, no waiter. */
    a.reenter = true;
    a.wait_ms = 0;
    a.owner = "";
    a.waiter = "";
    a.max_hold = 1;
    a.ttl_ms = 1;
    encode_common(LOCK_OP_ACQUIRE, &a, &ctx, &av, 7);
    assert_argv(&av, 6, "1");
    assert_argv(&av, 7, "1");
    assert_argv(&av, 8, "");
    assert_argv(&av, 9, "0");
    assert_argv(&av, 10, "1");
    assert_argv(&av, 11, "");
}

static void test_encode_renew(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    encode_common(LOCK_OP_RENEW, &a, &ctx, &av, 2);
    assert_argv(&av, 5, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 6, "30000");
    /* 0: the TTL last granted. */
    a.ttl_ms = 0;
    encode_common(LOCK_OP_RENEW, &a, &ctx, &av, 2);
    assert_argv(&av, 6, "0");
}

static void test_encode_release(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    encode_common(LOCK_OP_RELEASE, &a, &ctx, &av, 1);
    assert_argv(&av, 5, "0123456789abcdef0123456789abcdef");
}

static void test_encode_claim(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    a.wait_ms = 1234;
    encode_common(LOCK_OP_CLAIM, &a, &ctx, &av, 5);
    assert_argv(&av, 5, "0a1b2c3d4e5f6a7b:2:41");
    assert_argv(&av, 6, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 7, "1234");
    assert_argv(&av, 8, "30000");
    assert_argv(&av, 9, "worker-7");
    /* Nothing left of the wait. */
    a.wait_ms = 0;
    encode_common(LOCK_OP_CLAIM, &a, &ctx, &av, 5);
    assert_argv(&av, 7, "0");
}

static void test_encode_leave(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    a.leave_claims = true;
    encode_common(LOCK_OP_LEAVE, &a, &ctx, &av, 3);
    assert_argv(&av, 5, "0a1b2c3d4e5f6a7b:2:41");
    assert_argv(&av, 6, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 7, "claim");
    a.leave_claims = false;
    encode_common(LOCK_OP_LEAVE, &a, &ctx, &av, 3);
    assert_argv(&av, 7, "release");
}

static void test_encode_status_poke(void **state)
{
    (void)state;
    struct lock_args a = {
        .name = "orders", .token = "", .owner = "", .waiter = ""};
    struct lock_argv av;

    encode_common(LOCK_OP_STATUS, &a, &ctx, &av, 0);
    encode_common(LOCK_OP_POKE, &a, &ctx, &av, 0);
}

/* An out reused for a shorter operation holds only that one. */
static void test_encode_reuse(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    lock_kind_exclusive.encode(LOCK_OP_ACQUIRE, &a, &ctx, &av);
    assert_int_equal(av.argc, 15);
    lock_kind_exclusive.encode(LOCK_OP_RELEASE, &a, &ctx, &av);
    assert_int_equal(av.argc, 9);
    assert_argv(&av, 5, a.token);
    for (int i = 0; i < 100; i++)
        lock_kind_exclusive.encode(LOCK_OP_ACQUIRE, &a, &ctx, &av);
    assert_int_equal(av.argc, 15);
    assert_argv(&av, 10, "100");
}

/* The longest prefix and name fit KEY_MAX; the widest numbers fit. */
static void test_encode_extremes(void **state)
{
    (void)state;
    static struct config long_cfg;
    char name[LOCK_NAME_MAX + 1], owner[OWNER_BYTES_MAX + 1], key[KEY_MAX];
    char qname[LOCK_NAME_MAX + 16];
    struct lock_args a = args_default();
    struct lock_context c = ctx;
    struct lock_argv av;

    memset(long_cfg.key_prefix, 'p', KEY_PREFIX_MAX);
    long_cfg.key_prefix[KEY_PREFIX_MAX] = '\0';
    memset(name, 'n', LOCK_NAME_MAX);
    name[LOCK_NAME_MAX] = '\0';
    memset(owner, 'o', OWNER_BYTES_MAX);
    owner[OWNER_BYTES_MAX] = '\0';
    snprintf(qname, sizeof qname, "lock:%s", name);
    keys_init(&long_cfg);
    a.name = name;
    a.owner = owner;
    a.ttl_ms = INT64_MAX;
    a.wait_ms = INT64_MIN;
    a.max_hold = -1;
    c.prefix = long_cfg.key_prefix;
    c.qname = qname;
    c.handoff_ms = 0;
    c.fence_floor = INT64_MAX;
    encode_common(LOCK_OP_ACQUIRE, &a, &c, &av, 7);
    snprintf(key, sizeof key, "%s{%s}:waiters", long_cfg.key_prefix, name);
    assert_item(&av, 3, key);
    assert_argv(&av, 2, "0");
    assert_argv(&av, 3, "9223372036854775807");
    assert_argv(&av, 7, "9223372036854775807");
    assert_argv(&av, 8, owner);
    assert_argv(&av, 9, "-9223372036854775808");
    assert_argv(&av, 10, "-1");
    keys_init(&cfg);
}

/* ---- decoding ------------------------------------------------------------*/

/* Hand-built reply trees live in a pool that each test resets. */
#define POOL_MAX 256

static redisReply pool[POOL_MAX];
static redisReply *elems[POOL_MAX];
static size_t pool_n, elems_n;
static char long_text[OWNER_BYTES_MAX + 2];

static int setup_pool(void **state)
{
    pool_n = elems_n = 0;
    return setup_keys(state);
}

static redisReply *node(int type)
{
    assert_true(pool_n < POOL_MAX);
    redisReply *r = &pool[pool_n++];
    memset(r, 0, sizeof *r);
    r->type = type;
    return r;
}

static redisReply *integer(long long v)
{
    redisReply *r = node(REDIS_REPLY_INTEGER);
    r->integer = v;
    return r;
}

static redisReply *text_len(int type, const char *s, size_t len)
{
    redisReply *r = node(type);
    r->str = (char *)s;
    r->len = len;
    return r;
}

static redisReply *str(const char *s)
{
    return text_len(REDIS_REPLY_STRING, s, strlen(s));
}

static redisReply *nil(void)
{
    return node(REDIS_REPLY_NIL);
}

/* An array of n replies. */
static redisReply *array(size_t n, ...)
{
    redisReply *r = node(REDIS_REPLY_ARRAY);
    va_list ap;

    assert_true(elems_n + n <= POOL_MAX);
    r->elements = n;
    r->element = n ? &elems[elems_n] : NULL;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++)
        elems[elems_n++] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

/* Decodes r as op into a dirty out; asserts it succeeds. */
static struct lock_reply decode_ok(enum lock_op op, const redisReply *r)
{
    struct lock_reply out;

    memset(&out, 0xa5, sizeof out);
    if (lock_kind_exclusive.decode(op, r, &out) != 0) {
        print_error("op %d: decode refused a documented reply\n", (int)op);
        fail();
    }
    pool_n = elems_n = 0;
    return out;
}

/* Asserts decode refuses r as op: LOCK_UNAVAILABLE, -1, nothing else set. */
static void decode_bad(enum lock_op op, const redisReply *r, int line)
{
    struct lock_reply out, zero;

    memset(&out, 0xa5, sizeof out);
    memset(&zero, 0, sizeof zero);
    zero.outcome = LOCK_UNAVAILABLE;
    int rc = lock_kind_exclusive.decode(op, r, &out);
    if (rc != -1 || out.outcome != LOCK_UNAVAILABLE) {
        print_error("line %d, op %d: accepted (rc %d, outcome %d)\n", line,
                    (int)op, rc, (int)out.outcome);
        fail();
    }
    if (memcmp(&out, &zero, sizeof out) != 0) {
        print_error("line %d, op %d: fields left set\n", line, (int)op);
        fail();
    }
    pool_n = elems_n = 0;
}

#define DECODE_BAD(op, r) decode_bad(op, r, __LINE__)

/* {1, fence, count, ttl, owner} with a lease of these values. */
static void assert_lease(const struct lock_reply *out, int64_t fence,
                         int64_t count, int64_t ttl, const char *owner)
{
    assert_int_equal(out->outcome, LOCK_OK);
    assert_int_equal(out->lease.fence, fence);
    assert_int_equal(out->lease.count, count);
    assert_int_equal(out->lease.ttl_ms, ttl);
    assert_string_equal(out->lease.owner, owner);
    assert_int_equal(out->fence_seen, fence);
    assert_int_equal(out->pttl_ms, 0);
    assert_string_equal(out->handed_to, "");
}

static redisReply *lease_reply(long long fence, long long count, long long ttl,
                               const char *owner)
{
    return array(5, integer(1), integer(fence), integer(count), integer(ttl),
                 str(owner));
}

/* The bad shapes of a lease reply {1, fence, count, ttl, owner}. */
static void lease_shapes_bad(enum lock_op op)
{
    DECODE_BAD(op, array(1, integer(1)));
    DECODE_BAD(op, array(2, integer(1), integer(7)));
    DECODE_BAD(op, array(4, integer(1), integer(7), integer(1), integer(10)));
    DECODE_BAD(
        op, array(5, integer(1), str("7"), integer(1), integer(10), str("o")));
    DECODE_BAD(op,
               array(5, integer(1), integer(7), nil(), integer(10), str("o")));
    DECODE_BAD(
        op, array(5, integer(1), integer(7), integer(1), str("10"), str("o")));
    DECODE_BAD(op, array(5, integer(1), integer(7), integer(1), integer(10),
                         integer(5)));
    DECODE_BAD(
        op, array(5, integer(1), integer(7), integer(1), integer(10), nil()));
    DECODE_BAD(op, array(5, integer(1), integer(7), integer(1), integer(10),
                         text_len(REDIS_REPLY_STATUS, "o", 1)));
    DECODE_BAD(op, array(5, integer(1), integer(7), integer(1), integer(10),
                         array(0)));
    /* The owner one byte past OWNER_BYTES_MAX. */
    memset(long_text, 'o', sizeof long_text);
    DECODE_BAD(op, array(5, integer(1), integer(7), integer(1), integer(10),
                         text_len(REDIS_REPLY_STRING, long_text,
                                  OWNER_BYTES_MAX + 1)));
}

/* The longest owner, OWNER_BYTES_MAX bytes, fits. */
static void lease_owner_longest(enum lock_op op)
{
    char expect[OWNER_BYTES_MAX + 1];

    memset(long_text, 'o', sizeof long_text);
    memset(expect, 'o', OWNER_BYTES_MAX);
    expect[OWNER_BYTES_MAX] = '\0';
    struct lock_reply out = decode_ok(
        op, array(5, integer(1), integer(7), integer(1), integer(10),
                  text_len(REDIS_REPLY_STRING, long_text, OWNER_BYTES_MAX)));
    assert_lease(&out, 7, 1, 10, expect);
}

/* Shapes no script answers, for any op. */
static void generic_shapes_bad(enum lock_op op)
{
    DECODE_BAD(op, integer(1));
    DECODE_BAD(op, integer(0));
    DECODE_BAD(op, str("1"));
    DECODE_BAD(op, nil());
    DECODE_BAD(op, text_len(REDIS_REPLY_STATUS, "OK", 2));
    DECODE_BAD(op, text_len(REDIS_REPLY_ERROR, "ERR x", 5));
    DECODE_BAD(op, array(0));
    DECODE_BAD(op, array(1, str("1")));
    DECODE_BAD(op, array(1, str("0")));
    DECODE_BAD(op, array(1, nil()));
    DECODE_BAD(op, array(1, array(1, integer(1))));
    DECODE_BAD(op, array(1, integer(99)));
    DECODE_BAD(op, array(1, integer(-99)));
    DECODE_BAD(op, array(1, integer(INT64_MIN)));
}

static void test_decode_acquire(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_ACQUIRE;
    struct lock_reply out;

    out = decode_ok(op, lease_reply(1700000000000123, 1, 30000, "worker-7"));
    assert_lease(&out, 1700000000000123, 1, 30000, "worker-7");
    /* Re-entered, no owner. */
    out = decode_ok(op, lease_reply(42, 3, 500, ""));
    assert_lease(&out, 42, 3, 500, "");
    lease_owner_longest(op);

    out = decode_ok(op, array(3, integer(0), integer(2500), integer(0)));
    assert_int_equal(out.outcome, LOCK_HELD);
    assert_int_equal(out.pttl_ms, 2500);
    assert_int_equal(out.fence_seen, 0);
    assert_int_equal(out.lease.fence, 0);
    assert_string_equal(out.lease.owner, "");
    out = decode_ok(op, array(3, integer(0), integer(2500), integer(1)));
    assert_int_equal(out.outcome, LOCK_QUEUED);
    assert_int_equal(out.pttl_ms, 2500);
    /* PTTL of a key without TTL (-1) or gone (-2): 0. */
    out = decode_ok(op, array(3, integer(0), integer(-1), integer(0)));
    assert_int_equal(out.outcome, LOCK_HELD);
    assert_int_equal(out.pttl_ms, 0);
    out = decode_ok(op, array(3, integer(0), integer(-2), integer(1)));
    assert_int_equal(out.outcome, LOCK_QUEUED);
    assert_int_equal(out.pttl_ms, 0);

    out = decode_ok(op, array(1, integer(-1)));
    assert_int_equal(out.outcome, LOCK_NOT_OWNER);
    assert_int_equal(out.pttl_ms, 0);
    out = decode_ok(op, array(1, integer(-2)));
    assert_int_equal(out.outcome, LOCK_HOLD_LIMIT);

    generic_shapes_bad(op);
    lease_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(-3)));
    DECODE_BAD(op, array(1, integer(2)));
    DECODE_BAD(op, array(1, integer(0)));
    DECODE_BAD(op, array(2, integer(0), integer(100)));
    DECODE_BAD(op, array(3, integer(0), str("100"), integer(1)));
    DECODE_BAD(op, array(3, integer(0), integer(100), str("1")));
    DECODE_BAD(op, array(3, integer(0), integer(100), nil()));
}

static void test_decode_renew(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_RENEW;
    struct lock_reply out;

    out = decode_ok(op, lease_reply(99, 2, 60000, "me"));
    assert_lease(&out, 99, 2, 60000, "me");
    lease_owner_longest(op);
    out = decode_ok(op, array(1, integer(0)));
    assert_int_equal(out.outcome, LOCK_NOT_HELD);
    assert_int_equal(out.fence_seen, 0);
    out = decode_ok(op, array(1, integer(-1)));
    assert_int_equal(out.outcome, LOCK_NOT_OWNER);

    generic_shapes_bad(op);
    lease_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(-2)));
    DECODE_BAD(op, array(1, integer(2)));
}

static void test_decode_release(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_RELEASE;
    struct lock_reply out;

    /* Holds remain. */
    out = decode_ok(op, array(3, integer(1), integer(2), integer(0)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.lease.count, 2);
    assert_int_equal(out.fence_seen, 0);
    assert_int_equal(out.lease.fence, 0);
    /* Freed and handed on with a new fence. */
    out =
        decode_ok(op, array(3, integer(1), integer(0), integer(1700000000009)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.lease.count, 0);
    assert_int_equal(out.fence_seen, 1700000000009);
    out = decode_ok(op, array(1, integer(0)));
    assert_int_equal(out.outcome, LOCK_NOT_HELD);
    out = decode_ok(op, array(1, integer(-1)));
    assert_int_equal(out.outcome, LOCK_NOT_OWNER);

    generic_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(1)));
    DECODE_BAD(op, array(2, integer(1), integer(0)));
    DECODE_BAD(op, array(3, integer(1), str("0"), integer(0)));
    DECODE_BAD(op, array(3, integer(1), integer(0), str("5")));
    DECODE_BAD(op, array(3, integer(1), integer(0), nil()));
    DECODE_BAD(op, array(1, integer(2)));
    DECODE_BAD(op, array(1, integer(-2)));
}

static void test_decode_status(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_STATUS;
    struct lock_reply out;

    out = decode_ok(op, array(1, integer(0)));
    assert_int_equal(out.outcome, LOCK_FREE);
    assert_int_equal(out.pttl_ms, 0);
    out = decode_ok(op, array(2, integer(2), integer(180)));
    assert_int_equal(out.outcome, LOCK_RESERVED);
    assert_int_equal(out.pttl_ms, 180);
    assert_int_equal(out.fence_seen, 0);
    out = decode_ok(op, array(2, integer(2), integer(-1)));
    assert_int_equal(out.outcome, LOCK_RESERVED);
    assert_int_equal(out.pttl_ms, 0);
    /* Held: the lease's ttl is what remains of it. */
    out = decode_ok(op, lease_reply(77, 1, 12345, "svc"));
    assert_lease(&out, 77, 1, 12345, "svc");
    lease_owner_longest(op);

    generic_shapes_bad(op);
    lease_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(2)));
    DECODE_BAD(op, array(2, integer(2), str("180")));
    DECODE_BAD(op, array(1, integer(3)));
    DECODE_BAD(op, array(1, integer(-1)));
}

static void test_decode_claim(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_CLAIM;
    struct lock_reply out;

    out = decode_ok(op, lease_reply(1234, 1, 30000, "worker-7"));
    assert_lease(&out, 1234, 1, 30000, "worker-7");
    lease_owner_longest(op);
    /* Lapsed, queued again. */
    out = decode_ok(op, array(3, integer(0), integer(900), integer(1)));
    assert_int_equal(out.outcome, LOCK_QUEUED);
    assert_int_equal(out.pttl_ms, 900);
    /* Queued behind a lock that is gone (PTTL -2). */
    out = decode_ok(op, array(3, integer(0), integer(-2), integer(1)));
    assert_int_equal(out.outcome, LOCK_QUEUED);
    assert_int_equal(out.pttl_ms, 0);
    out = decode_ok(op, array(1, integer(-3)));
    assert_int_equal(out.outcome, LOCK_WAIT_OVER);

    generic_shapes_bad(op);
    lease_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(0)));
    DECODE_BAD(op, array(3, integer(0), str("900"), integer(1)));
    DECODE_BAD(op, array(1, integer(-1)));
    DECODE_BAD(op, array(1, integer(-2)));
    DECODE_BAD(op, array(1, integer(2)));
}

static void test_decode_leave(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_LEAVE;
    struct lock_reply out;

    /* Its wait ended with the lock handed to it: it takes it. */
    out = decode_ok(op, lease_reply(555, 1, 30000, ""));
    assert_lease(&out, 555, 1, 30000, "");
    lease_owner_longest(op);
    /* Left the queue; the lock runs pttl more. */
    out = decode_ok(op, array(2, integer(0), integer(4000)));
    assert_int_equal(out.outcome, LOCK_HELD);
    assert_int_equal(out.pttl_ms, 4000);
    out = decode_ok(op, array(2, integer(0), integer(-2)));
    assert_int_equal(out.outcome, LOCK_HELD);
    assert_int_equal(out.pttl_ms, 0);
    out = decode_ok(op, array(1, integer(2)));
    assert_int_equal(out.outcome, LOCK_HANDED_ON);

    generic_shapes_bad(op);
    lease_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(0)));
    DECODE_BAD(op, array(2, integer(0), str("4000")));
    DECODE_BAD(op, array(2, integer(0), nil()));
    DECODE_BAD(op, array(1, integer(-1)));
    DECODE_BAD(op, array(1, integer(3)));
    DECODE_BAD(op, array(1, integer(-3)));
}

static void test_decode_poke(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_POKE;
    struct lock_reply out;
    char id[WAITER_ID_MAX + 1];

    out = decode_ok(
        op, array(3, integer(1), integer(750), str("0a1b2c3d4e5f6a7b:2:41")));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.pttl_ms, 750);
    assert_string_equal(out.handed_to, "0a1b2c3d4e5f6a7b:2:41");
    assert_int_equal(out.fence_seen, 0);
    assert_int_equal(out.lease.fence, 0);
    /* Held by a holder that claimed it: nobody to hand to. */
    out = decode_ok(op, array(3, integer(1), integer(750), str("")));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_string_equal(out.handed_to, "");
    out = decode_ok(op, array(3, integer(1), integer(-1), str("")));
    assert_int_equal(out.pttl_ms, 0);
    out = decode_ok(op, array(1, integer(0)));
    assert_int_equal(out.outcome, LOCK_FREE);
    assert_string_equal(out.handed_to, "");
    /* The longest waiter id that fits: WAITER_ID_MAX - 1 bytes. */
    memset(id, 'w', sizeof id);
    out = decode_ok(op,
                    array(3, integer(1), integer(1),
                          text_len(REDIS_REPLY_STRING, id, WAITER_ID_MAX - 1)));
    assert_int_equal(strlen(out.handed_to), WAITER_ID_MAX - 1);

    generic_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(1)));
    DECODE_BAD(op, array(2, integer(1), integer(750)));
    DECODE_BAD(op, array(3, integer(1), str("750"), str("")));
    DECODE_BAD(op, array(3, integer(1), integer(750), integer(3)));
    DECODE_BAD(op, array(3, integer(1), integer(750), nil()));
    DECODE_BAD(op, array(3, integer(1), integer(750),
                         text_len(REDIS_REPLY_STRING, id, WAITER_ID_MAX)));
    DECODE_BAD(op, array(1, integer(2)));
    DECODE_BAD(op, array(1, integer(-1)));
}

/* A status code one op answers is no answer of another. */
static void test_decode_codes_per_op(void **state)
{
    (void)state;
    DECODE_BAD(LOCK_OP_ACQUIRE, array(1, integer(-3)));
    DECODE_BAD(LOCK_OP_RELEASE, array(1, integer(-3)));
    DECODE_BAD(LOCK_OP_RENEW, array(1, integer(-2)));
    DECODE_BAD(LOCK_OP_STATUS, array(1, integer(-2)));
    DECODE_BAD(LOCK_OP_LEAVE, array(1, integer(-2)));
    DECODE_BAD(LOCK_OP_POKE, array(1, integer(2)));
    DECODE_BAD(LOCK_OP_CLAIM, array(1, integer(2)));
    DECODE_BAD(LOCK_OP_COUNT, array(1, integer(0)));
    DECODE_BAD(LOCK_OP_COUNT, lease_reply(1, 1, 1, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_key_schema, setup_keys),
        cmocka_unit_test_setup(test_encode_keys, setup_keys),
        cmocka_unit_test_setup(test_encode_acquire, setup_keys),
        cmocka_unit_test_setup(test_encode_renew, setup_keys),
        cmocka_unit_test_setup(test_encode_release, setup_keys),
        cmocka_unit_test_setup(test_encode_claim, setup_keys),
        cmocka_unit_test_setup(test_encode_leave, setup_keys),
        cmocka_unit_test_setup(test_encode_status_poke, setup_keys),
        cmocka_unit_test_setup(test_encode_reuse, setup_keys),
        cmocka_unit_test_setup(test_encode_extremes, setup_keys),
        cmocka_unit_test_setup(test_decode_acquire, setup_pool),
        cmocka_unit_test_setup(test_decode_renew, setup_pool),
        cmocka_unit_test_setup(test_decode_release, setup_pool),
        cmocka_unit_test_setup(test_decode_status, setup_pool),
        cmocka_unit_test_setup(test_decode_claim, setup_pool),
        cmocka_unit_test_setup(test_decode_leave, setup_pool),
        cmocka_unit_test_setup(test_decode_poke, setup_pool),
        cmocka_unit_test_setup(test_decode_codes_per_op, setup_pool),
    };
    return cmocka_run_group_tests_name("lock_codec", tests, NULL, NULL);
}
