/* test_lock_codec.c -- unit tests for the exclusive lock kind's codec
 * (service/lock/exclusive.c): encode's KEYS and ARGV for every operation,
 * as the scripts in service/lock/lua/ read them (prelude.lua: eight keys,
 * the sixth the record of the call's request_id, then the shared holders
 * and their expiries; each script's header: its own
 * ARGV), and decode of every reply shape the scripts document, built by
 * hand as hiredis reply trees, plus the shapes they never answer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

static const struct lock_context ctx = {"t:", "lock:orders", "0a1b2c3d4e5f6a7b",
                                        250, 1700000000000000};

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
        .delay_ms = 1500,
        .request_id = "req-1",
        .listed = 100,
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

/* Encodes op and checks what every script gets: the five keys of name, the
 * request record KEYS[6] (record: the whole key expected), the shared
 * holders' two keys, and ARGV[1..5]; argv_own is how many ARGV the op
 * adds. */
static void encode_common(enum lock_op op, const struct lock_args *a,
                          const struct lock_context *c, struct lock_argv *av,
                          const char *record, int argv_own)
{
    static const enum key_kind kinds[] = {KEY_LOCK, KEY_FENCE, KEY_QUEUE,
                                          KEY_WAITERS, KEY_DELAY};
    char key[KEY_MAX], num[32];

    memset(av, 0x5a, sizeof *av); /* encode must not rely on a clean out */
    lock_kind_exclusive.encode(op, a, c, av);
    assert_int_equal(av->nkeys, 8);
    assert_int_equal(av->argc, 8 + 5 + argv_own);
    assert_true(av->argc <= LOCK_KEYS_MAX + LOCK_ARGV_MAX);
    for (int i = 0; i < 5; i++) {
        size_t n = key_for(key, kinds[i], a->name);
        assert_true(n > 0);
        assert_item(av, i, key);
    }
    assert_item(av, 5, record);
    key_for(key, KEY_SHARED, a->name);
    assert_item(av, 6, key);
    key_for(key, KEY_SHARED_EXPIRY, a->name);
    assert_item(av, 7, key);
    assert_argv(av, 1, c->prefix);
    snprintf(num, sizeof num, "%lld", (long long)c->handoff_ms);
    assert_argv(av, 2, num);
    snprintf(num, sizeof num, "%lld", (long long)c->fence_floor);
    assert_argv(av, 3, num);
    assert_argv(av, 4, c->qname);
    assert_argv(av, 5, c->instance);
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
    assert_int_equal(key_for(key, KEY_DELAY, "orders"), 16);
    assert_string_equal(key, "t:{orders}:delay");
    key_for(key, KEY_DEMO, "sku-1");
    assert_string_equal(key, "t:{sku-1}:demo");
    assert_int_equal(key_for_record(key, "acq", "orders", "req-1"), 20);
    assert_string_equal(key, "t:{orders}:acq:req-1");
    assert_int_equal(key_for_record(key, "rel", "orders", "-"), 16);
    assert_string_equal(key, "t:{orders}:rel:-");
    /* A namespaced name keeps its namespace inside the hash tag. */
    key_for_record(key, "acq", "tenant-a/orders", "r");
    assert_string_equal(key, "t:{tenant-a/orders}:acq:r");
    assert_string_equal(keys_prefix(), "t:");
}

static void test_encode_keys(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    /* Status ignores request_id: its record is the acquire record of no
     * id. */
    encode_common(LOCK_OP_STATUS, &a, &ctx, &av, "t:{orders}:acq:-", 2);
    assert_item(&av, 0, "t:{orders}:lock");
    assert_item(&av, 1, "t:{orders}:fence");
    assert_item(&av, 2, "t:{orders}:queue");
    assert_item(&av, 3, "t:{orders}:waiters");
    assert_item(&av, 4, "t:{orders}:delay");
    assert_argv(&av, 1, "t:");
    assert_argv(&av, 2, "250");
    assert_argv(&av, 3, "1700000000000000");
    assert_argv(&av, 4, "lock:orders");
    assert_argv(&av, 5, "0a1b2c3d4e5f6a7b");

    /* Another name: every key follows it. */
    a.name = "a.b_c:d-e";
    encode_common(LOCK_OP_STATUS, &a, &ctx, &av, "t:{a.b_c:d-e}:acq:-", 2);
    assert_item(&av, 0, "t:{a.b_c:d-e}:lock");
    assert_item(&av, 4, "t:{a.b_c:d-e}:delay");
}

static void test_encode_acquire(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    encode_common(LOCK_OP_ACQUIRE, &a, &ctx, &av, "t:{orders}:acq:req-1", 10);
    assert_argv(&av, 6, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 7, "0");
    assert_argv(&av, 8, "30000");
    assert_argv(&av, 9, "worker-7");
    assert_argv(&av, 10, "5000");
    assert_argv(&av, 11, "100");
    assert_argv(&av, 12, "0a1b2c3d4e5f6a7b:2:41");
    assert_argv(&av, 13, "1500");
    assert_argv(&av, 14, "req-1");
    assert_argv(&av, 15, "exclusive");
    a.shared = true;
    encode_common(LOCK_OP_ACQUIRE, &a, &ctx, &av, "t:{orders}:acq:req-1", 10);
    assert_argv(&av, 15, "shared");
    a.shared = false;

    /* Re-entering, no wait, no owner, no waiter, no lock-delay, no
     * request_id: "-" in ARGV and in the record's key. */
    a.reenter = true;
    a.wait_ms = 0;
    a.owner = "";
    a.waiter = "";
    a.max_hold = 1;
    a.ttl_ms = 1;
    a.delay_ms = 0;
    a.request_id = "";
    encode_common(LOCK_OP_ACQUIRE, &a, &ctx, &av, "t:{orders}:acq:-", 10);
    assert_argv(&av, 7, "1");
    assert_argv(&av, 8, "1");
    assert_argv(&av, 9, "");
    assert_argv(&av, 10, "0");
    assert_argv(&av, 11, "1");
    assert_argv(&av, 12, "");
    assert_argv(&av, 13, "0");
    assert_argv(&av, 14, "-");

    /* NULL request_id is none, too. */
    a.request_id = NULL;
    encode_common(LOCK_OP_ACQUIRE, &a, &ctx, &av, "t:{orders}:acq:-", 10);
    assert_argv(&av, 14, "-");

    /* The longest request_id, every character class. */
    a.request_id =
        "AZaz09._:-0123456789012345678901234567890123456789012345678901";
    assert_int_equal(strlen(a.request_id), 62);
    encode_common(
        LOCK_OP_ACQUIRE, &a, &ctx, &av,
        "t:{orders}:acq:"
        "AZaz09._:-0123456789012345678901234567890123456789012345678901",
        10);
    assert_argv(&av, 14, a.request_id);
}

static void test_encode_renew(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    /* Renew has no request_id of its own (renew.lua builds the lease's
     * record key from the lease). */
    encode_common(LOCK_OP_RENEW, &a, &ctx, &av, "t:{orders}:acq:-", 2);
    assert_argv(&av, 6, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 7, "30000");
    /* 0: the TTL last granted. */
    a.ttl_ms = 0;
    encode_common(LOCK_OP_RENEW, &a, &ctx, &av, "t:{orders}:acq:-", 2);
    assert_argv(&av, 7, "0");
}

static void test_encode_release(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    /* Release keeps its own record: ":rel:<id>", not the acquire's. */
    encode_common(LOCK_OP_RELEASE, &a, &ctx, &av, "t:{orders}:rel:req-1", 2);
    assert_argv(&av, 6, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 7, "req-1");
    a.request_id = "";
    encode_common(LOCK_OP_RELEASE, &a, &ctx, &av, "t:{orders}:rel:-", 2);
    assert_argv(&av, 7, "-");
    a.request_id = NULL;
    encode_common(LOCK_OP_RELEASE, &a, &ctx, &av, "t:{orders}:rel:-", 2);
    assert_argv(&av, 7, "-");
}

static void test_encode_status(void **state)
{
    (void)state;
    struct lock_args a = {.name = "orders",
                          .token = "",
                          .owner = "",
                          .waiter = "",
                          .listed = 100};
    struct lock_argv av;

    encode_common(LOCK_OP_STATUS, &a, &ctx, &av, "t:{orders}:acq:-", 2);
    assert_argv(&av, 6, "");
    assert_argv(&av, 7, "100");
    /* check: the token to compare with the holder's. */
    a.token = "fedcba9876543210fedcba9876543210";
    a.listed = 7;
    encode_common(LOCK_OP_STATUS, &a, &ctx, &av, "t:{orders}:acq:-", 2);
    assert_argv(&av, 6, "fedcba9876543210fedcba9876543210");
    assert_argv(&av, 7, "7");
}

static void test_encode_claim(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    a.wait_ms = 1234;
    encode_common(LOCK_OP_CLAIM, &a, &ctx, &av, "t:{orders}:acq:-", 8);
    assert_argv(&av, 6, "0a1b2c3d4e5f6a7b:2:41");
    assert_argv(&av, 7, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 8, "1234");
    assert_argv(&av, 9, "30000");
    assert_argv(&av, 10, "worker-7");
    assert_argv(&av, 11, "1500");
    assert_argv(&av, 12, "req-1");
    assert_argv(&av, 13, "exclusive");
    a.shared = true;
    encode_common(LOCK_OP_CLAIM, &a, &ctx, &av, "t:{orders}:acq:-", 8);
    assert_argv(&av, 13, "shared");
    a.shared = false;
    /* Nothing left of the wait; no lock-delay, no request_id. */
    a.wait_ms = 0;
    a.delay_ms = 0;
    a.request_id = "";
    encode_common(LOCK_OP_CLAIM, &a, &ctx, &av, "t:{orders}:acq:-", 8);
    assert_argv(&av, 8, "0");
    assert_argv(&av, 11, "0");
    assert_argv(&av, 12, "-");
}

static void test_encode_leave(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    a.leave_claims = true;
    encode_common(LOCK_OP_LEAVE, &a, &ctx, &av, "t:{orders}:acq:-", 3);
    assert_argv(&av, 6, "0a1b2c3d4e5f6a7b:2:41");
    assert_argv(&av, 7, "0123456789abcdef0123456789abcdef");
    assert_argv(&av, 8, "claim");
    a.leave_claims = false;
    encode_common(LOCK_OP_LEAVE, &a, &ctx, &av, "t:{orders}:acq:-", 3);
    assert_argv(&av, 8, "release");
}

static void test_encode_poke_force(void **state)
{
    (void)state;
    struct lock_args a = {
        .name = "orders", .token = "", .owner = "", .waiter = ""};
    struct lock_argv av;

    encode_common(LOCK_OP_POKE, &a, &ctx, &av, "t:{orders}:acq:-", 0);
    encode_common(LOCK_OP_FORCE, &a, &ctx, &av, "t:{orders}:acq:-", 1);
    /* Whatever else the arguments hold, force adds only how many holders
     * to name. */
    a = args_default();
    encode_common(LOCK_OP_FORCE, &a, &ctx, &av, "t:{orders}:acq:-", 1);
    assert_argv(&av, 6, "100");
}

/* An out reused for a shorter operation holds only that one. */
static void test_encode_reuse(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    lock_kind_exclusive.encode(LOCK_OP_ACQUIRE, &a, &ctx, &av);
    assert_int_equal(av.argc, 23);
    lock_kind_exclusive.encode(LOCK_OP_RELEASE, &a, &ctx, &av);
    assert_int_equal(av.argc, 15);
    assert_argv(&av, 6, a.token);
    assert_item(&av, 5, "t:{orders}:rel:req-1");
    for (int i = 0; i < 100; i++)
        lock_kind_exclusive.encode(LOCK_OP_ACQUIRE, &a, &ctx, &av);
    assert_int_equal(av.argc, 23);
    assert_item(&av, 5, "t:{orders}:acq:req-1");
    assert_argv(&av, 11, "100");
    assert_argv(&av, 13, "1500");
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
    a.delay_ms = INT64_MIN;
    a.request_id = "r";
    c.prefix = long_cfg.key_prefix;
    c.qname = qname;
    c.instance = "ffffffffffffffff";
    c.handoff_ms = 0;
    c.fence_floor = INT64_MAX;
    snprintf(key, sizeof key, "%s{%s}:acq:r", long_cfg.key_prefix, name);
    encode_common(LOCK_OP_ACQUIRE, &a, &c, &av, key, 10);
    snprintf(key, sizeof key, "%s{%s}:waiters", long_cfg.key_prefix, name);
    assert_item(&av, 3, key);
    assert_argv(&av, 2, "0");
    assert_argv(&av, 3, "9223372036854775807");
    assert_argv(&av, 5, "ffffffffffffffff");
    assert_argv(&av, 8, "9223372036854775807");
    assert_argv(&av, 9, owner);
    assert_argv(&av, 10, "-9223372036854775808");
    assert_argv(&av, 11, "-1");
    assert_argv(&av, 13, "-9223372036854775808");
    keys_init(&cfg);
}

/* The request record of the longest request_id on the longest name a
 * client can send: under the longest prefix, and under the default prefix
 * with a namespaced name (an API key's namespace of NAMESPACE_MAX). Each
 * must be its own key inside the name's hash tag: an empty or cut key would
 * be shared by every name that reaches it. */
static void test_encode_record_longest(void **state)
{
    (void)state;
    static struct config long_cfg, ns_cfg;
    char name[LOCK_NAME_MAX + 1], scoped[SCOPED_NAME_MAX + 1];
    char rid[REQUEST_ID_MAX + 1];
    char want[KEY_PREFIX_MAX + SCOPED_NAME_MAX + REQUEST_ID_MAX + 16];
    struct lock_args a = args_default();
    struct lock_argv av;

    memset(long_cfg.key_prefix, 'p', KEY_PREFIX_MAX);
    long_cfg.key_prefix[KEY_PREFIX_MAX] = '\0';
    memset(name, 'n', LOCK_NAME_MAX);
    name[LOCK_NAME_MAX] = '\0';
    memset(rid, 'r', REQUEST_ID_MAX);
    rid[REQUEST_ID_MAX] = '\0';
    memset(scoped, 's', NAMESPACE_MAX);
    scoped[NAMESPACE_MAX] = '/';
    memcpy(scoped + NAMESPACE_MAX + 1, name, LOCK_NAME_MAX + 1);
    a.request_id = rid;

    keys_init(&long_cfg);
    a.name = name;
    memset(&av, 0, sizeof av);
    lock_kind_exclusive.encode(LOCK_OP_ACQUIRE, &a, &ctx, &av);
    snprintf(want, sizeof want, "%s{%s}:acq:%s", long_cfg.key_prefix, name,
             rid);
    assert_item(&av, 5, want);
    lock_kind_exclusive.encode(LOCK_OP_RELEASE, &a, &ctx, &av);
    snprintf(want, sizeof want, "%s{%s}:rel:%s", long_cfg.key_prefix, name,
             rid);
    assert_item(&av, 5, want);

    snprintf(ns_cfg.key_prefix, sizeof ns_cfg.key_prefix, "%s", "lockservice:");
    keys_init(&ns_cfg);
    a.name = scoped;
    lock_kind_exclusive.encode(LOCK_OP_ACQUIRE, &a, &ctx, &av);
    snprintf(want, sizeof want, "lockservice:{%s}:acq:%s", scoped, rid);
    assert_item(&av, 5, want);
    keys_init(&cfg);
}

/* ---- decoding ------------------------------------------------------------*/

/* Hand-built reply trees live in a pool that each test resets. */
#define POOL_MAX 512

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

/* Appends e to array a, whose elements must be the last ones taken. */
static void push(redisReply *a, redisReply *e)
{
    assert_true(elems_n < POOL_MAX);
    assert_true(a->elements == 0 ||
                a->element + a->elements == &elems[elems_n]);
    if (a->elements == 0)
        a->element = &elems[elems_n];
    elems[elems_n++] = e;
    a->elements++;
}

/* An out as a caller hands it over: every scalar garbage; the pointers
 * decode frees NULL (it frees what a previous decode allocated). */
static void dirty(struct lock_reply *out)
{
    memset(out, 0xa5, sizeof *out);
    out->queue = NULL;
    out->holders = NULL;
    out->directs = NULL;
}

/* Decodes r as op into a dirty out; asserts it succeeds. The caller frees
 * what it allocated with lock_reply_free. */
static struct lock_reply decode_ok(enum lock_op op, const redisReply *r)
{
    struct lock_reply out;

    dirty(&out);
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

    dirty(&out);
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
    assert_false(out->replayed);
    assert_string_equal(out->token, "");
    assert_null(out->queue);
    assert_int_equal(out->forced, 0);
    assert_int_equal(out->ndirects, 0);
    assert_null(out->directs);
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

#define TOKEN_A "00112233445566778899aabbccddeeff"

/* {1, fence, count, ttl, owner, 1, token}: the lease an earlier try of the
 * request_id got. */
static redisReply *replay_reply(long long fence, long long count,
                                const char *owner, redisReply *token)
{
    return array(7, integer(1), integer(fence), integer(count), integer(9000),
                 str(owner), integer(1), token);
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

    /* Replayed: the lease as it stands, and its token. */
    out = decode_ok(op, replay_reply(1700000000000777, 2, "w", str(TOKEN_A)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_true(out.replayed);
    assert_string_equal(out.token, TOKEN_A);
    assert_int_equal(out.lease.fence, 1700000000000777);
    assert_int_equal(out.lease.count, 2);
    assert_int_equal(out.lease.ttl_ms, 9000);
    assert_string_equal(out.lease.owner, "w");
    assert_int_equal(out.fence_seen, 1700000000000777);

    out = decode_ok(op, array(3, integer(0), integer(2500), integer(0)));
    assert_int_equal(out.outcome, LOCK_HELD);
    assert_int_equal(out.pttl_ms, 2500);
    assert_int_equal(out.fence_seen, 0);
    assert_int_equal(out.lease.fence, 0);
    assert_string_equal(out.lease.owner, "");
    assert_false(out.replayed);
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
    out = decode_ok(op, array(1, integer(-4)));
    assert_int_equal(out.outcome, LOCK_REQUEST_ENDED);
    assert_false(out.replayed);

    generic_shapes_bad(op);
    lease_shapes_bad(op);
    out = decode_ok(op, array(1, integer(-5)));
    assert_int_equal(out.outcome, LOCK_MODE_CONFLICT);
    /* A shared lease: {1, fence, count, ttl, owner, replayed, token, 1}. */
    out = decode_ok(op,
                    array(8, integer(1), integer(41), integer(2), integer(5000),
                          str("r"), integer(0), str(""), integer(1)));
    assert_lease(&out, 41, 2, 5000, "r");
    assert_true(out.lease.shared);
    assert_false(out.replayed);
    out = decode_ok(op,
                    array(8, integer(1), integer(41), integer(1), integer(5000),
                          str("r"), integer(1), str(TOKEN_A), integer(1)));
    assert_true(out.lease.shared);
    assert_true(out.replayed);
    assert_string_equal(out.token, TOKEN_A);
    out = decode_ok(op, lease_reply(7, 1, 10, "x"));
    assert_false(out.lease.shared);
    DECODE_BAD(op, array(8, integer(1), integer(41), integer(2), integer(5000),
                         str("r"), integer(0), str(""), integer(2)));
    DECODE_BAD(op, array(8, integer(1), integer(41), integer(2), integer(5000),
                         str("r"), integer(0), str(""), str("1")));
    DECODE_BAD(op, array(1, integer(-3)));
    DECODE_BAD(op, array(1, integer(-6)));
    DECODE_BAD(op, array(1, integer(2)));
    DECODE_BAD(op, array(1, integer(0)));
    DECODE_BAD(op, array(2, integer(0), integer(100)));
    DECODE_BAD(op, array(3, integer(0), str("100"), integer(1)));
    DECODE_BAD(op, array(3, integer(0), integer(100), str("1")));
    DECODE_BAD(op, array(3, integer(0), integer(100), nil()));
    /* A replay without its token, or with one that is no token. */
    DECODE_BAD(op, array(6, integer(1), integer(7), integer(1), integer(10),
                         str("o"), integer(1)));
    DECODE_BAD(op, replay_reply(7, 1, "o", integer(5)));
    DECODE_BAD(op, replay_reply(7, 1, "o", nil()));
    DECODE_BAD(op, replay_reply(7, 1, "o", str("")));
    DECODE_BAD(op,
               replay_reply(7, 1, "o", str("00112233445566778899aabbccddeef")));
    DECODE_BAD(op, replay_reply(7, 1, "o", str(TOKEN_A "0")));
    DECODE_BAD(op, array(7, integer(1), integer(7), integer(1), integer(10),
                         str("o"), str("1"), str(TOKEN_A)));
    /* A replay whose lease part is broken. */
    DECODE_BAD(op, array(7, integer(1), str("7"), integer(1), integer(10),
                         str("o"), integer(1), str(TOKEN_A)));
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
    DECODE_BAD(op, array(1, integer(-4)));
    DECODE_BAD(op, array(1, integer(2)));
}

static void test_decode_release(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_RELEASE;
    struct lock_reply out;

    /* Holds remain. */
    out = decode_ok(op,
                    array(4, integer(1), integer(2), integer(0), integer(40)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.lease.count, 2);
    assert_int_equal(out.held_ms, 40);
    assert_int_equal(out.fence_seen, 0);
    assert_int_equal(out.lease.fence, 0);
    /* Freed and handed on with a new fence. */
    out = decode_ok(op, array(4, integer(1), integer(0), integer(1700000000009),
                              integer(1500)));
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
    DECODE_BAD(op, array(3, integer(1), integer(0), integer(0)));
    DECODE_BAD(op, array(4, integer(1), str("0"), integer(0), integer(1)));
    DECODE_BAD(op, array(4, integer(1), integer(0), str("5"), integer(1)));
    DECODE_BAD(op, array(4, integer(1), integer(0), nil(), integer(1)));
    DECODE_BAD(op, array(4, integer(1), integer(0), integer(0), str("1")));
    DECODE_BAD(op, array(1, integer(2)));
    DECODE_BAD(op, array(1, integer(-2)));
    DECODE_BAD(op, array(1, integer(-4)));
}

/* status.lua's reply: {state, pttl, fence, count, owner, held_ms, owned,
 * waiting, mode, holder_count, listed}, with mode exclusive and no holder
 * listed; the queued triples (owner, waited_ms, mode) to be pushed after
 * it. */
static redisReply *status_reply(long long st, long long pttl, long long fence,
                                long long count, const char *owner,
                                long long held_ms, long long owned,
                                long long waiting)
{
    return array(11, integer(st), integer(pttl), integer(fence), integer(count),
                 str(owner), integer(held_ms), integer(owned), integer(waiting),
                 integer(0), integer(st == 1 ? 1 : 0), integer(0));
}

/* Pushes one queued waiter (an exclusive one) onto a status reply. */
static void push_queued(redisReply *r, redisReply *owner, long long waited)
{
    push(r, owner);
    push(r, integer(waited));
    push(r, integer(0));
}

static void assert_status(const struct lock_reply *out,
                          enum lock_outcome outcome, int64_t pttl,
                          int64_t fence, int64_t count, const char *owner,
                          int64_t held_ms, int owned, int64_t waiting)
{
    assert_int_equal(out->outcome, outcome);
    assert_int_equal(out->pttl_ms, pttl);
    assert_int_equal(out->lease.ttl_ms, pttl);
    assert_int_equal(out->lease.fence, fence);
    assert_int_equal(out->fence_seen, fence);
    assert_int_equal(out->lease.count, count);
    assert_string_equal(out->lease.owner, owner);
    assert_int_equal(out->held_ms, held_ms);
    assert_int_equal(out->owned, owned);
    assert_int_equal(out->waiting, waiting);
    assert_false(out->replayed);
}

/* The longest owner, OWNER_BYTES_MAX bytes, fits a status too. */
static void lease_owner_longest_status(void)
{
    char expect[OWNER_BYTES_MAX + 1];

    memset(long_text, 'o', sizeof long_text);
    memset(expect, 'o', OWNER_BYTES_MAX);
    expect[OWNER_BYTES_MAX] = '\0';
    struct lock_reply out = decode_ok(
        LOCK_OP_STATUS,
        array(11, integer(1), integer(10), integer(7), integer(1),
              text_len(REDIS_REPLY_STRING, long_text, OWNER_BYTES_MAX),
              integer(0), integer(-1), integer(0), integer(0), integer(1),
              integer(0)));
    assert_string_equal(out.lease.owner, expect);
}

static void test_decode_status(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_STATUS;
    struct lock_reply out;
    redisReply *r;

    /* Free, nobody queued. */
    out = decode_ok(op, status_reply(0, 0, 0, 0, "", 0, -1, 0));
    assert_status(&out, LOCK_FREE, 0, 0, 0, "", 0, -1, 0);
    assert_int_equal(out.queued, 0);
    assert_null(out.queue);
    /* Held: the lease's ttl is what remains of it; the given token holds
     * it (1), another does (0), none given or force-released (-1). */
    out = decode_ok(op, status_reply(1, 12345, 77, 2, "svc", 3000, 1, 0));
    assert_status(&out, LOCK_OK, 12345, 77, 2, "svc", 3000, 1, 0);
    out = decode_ok(op, status_reply(1, 12345, 77, 2, "svc", 3000, 0, 0));
    assert_int_equal(out.owned, 0);
    out = decode_ok(op, status_reply(1, 12345, 77, 2, "svc", 3000, -1, 0));
    assert_int_equal(out.owned, -1);
    /* Handed to a waiter for 180 ms more; then a lock-delay of 900 ms. */
    out = decode_ok(op, status_reply(2, 180, 78, 1, "w1", 0, -1, 0));
    assert_status(&out, LOCK_RESERVED, 180, 78, 1, "w1", 0, -1, 0);
    out = decode_ok(op, status_reply(3, 900, 0, 0, "", 0, -1, 2));
    assert_status(&out, LOCK_DELAYED, 900, 0, 0, "", 0, -1, 2);
    /* PTTL -1 or -2: 0. */
    out = decode_ok(op, status_reply(2, -1, 78, 1, "w1", 0, -1, 0));
    assert_int_equal(out.pttl_ms, 0);
    assert_int_equal(out.lease.ttl_ms, 0);
    out = decode_ok(op, status_reply(1, -2, 78, 1, "w1", 0, -1, 0));
    assert_int_equal(out.pttl_ms, 0);
    lease_owner_longest_status();

    /* Three queued, oldest first; waiting counts entries not listed (a
     * dead one the script skipped). */
    r = status_reply(1, 5000, 79, 1, "h", 10, -1, 4);
    push_queued(r, str("w1"), 300);
    push_queued(r, str(""), 200);
    push_queued(r, str("w3"), 100);
    out = decode_ok(op, r);
    assert_status(&out, LOCK_OK, 5000, 79, 1, "h", 10, -1, 4);
    assert_int_equal(out.queued, 3);
    assert_non_null(out.queue);
    assert_string_equal(out.queue[0].owner, "w1");
    assert_int_equal(out.queue[0].waited_ms, 300);
    assert_string_equal(out.queue[1].owner, "");
    assert_int_equal(out.queue[1].waited_ms, 200);
    assert_string_equal(out.queue[2].owner, "w3");
    assert_int_equal(out.queue[2].waited_ms, 100);
    /* Decoding into it again frees its queue (ASan, valgrind: no leak)
     * and leaves nothing of it. */
    r = status_reply(0, 0, 0, 0, "", 0, -1, 0);
    assert_int_equal(lock_kind_exclusive.decode(op, r, &out), 0);
    assert_int_equal(out.queued, 0);
    assert_null(out.queue);
    assert_int_equal(out.waiting, 0);
    assert_int_equal(out.outcome, LOCK_FREE);
    pool_n = elems_n = 0;

    /* LOCK_LIST_MAX queued fit, of 150 waiting. */
    r = status_reply(1, 5000, 79, 1, "h", 10, -1, 150);
    for (int i = 0; i < LOCK_LIST_MAX; i++) {
        push_queued(r, str(i % 2 ? "odd" : "even"), 1000 - i);
    }
    out = decode_ok(op, r);
    assert_int_equal(out.waiting, 150);
    assert_int_equal(out.queued, LOCK_LIST_MAX);
    assert_string_equal(out.queue[LOCK_LIST_MAX - 1].owner, "odd");
    assert_int_equal(out.queue[LOCK_LIST_MAX - 1].waited_ms,
                     1000 - (LOCK_LIST_MAX - 1));
    lock_reply_free(&out);
    assert_null(out.queue);
    assert_int_equal(out.queued, 0);
    lock_reply_free(&out); /* twice is fine */

    /* Shared: two holders listed of three, a shared waiter queued. */
    r = array(11, integer(1), integer(900), integer(31), integer(1), str("r1"),
              integer(40), integer(1), integer(1), integer(1), integer(3),
              integer(2));
    push(r, str("r1"));
    push(r, integer(31));
    push(r, integer(900));
    push(r, integer(1));
    push(r, integer(40));
    push(r, str("r2"));
    push(r, integer(32));
    push(r, integer(950));
    push(r, integer(2));
    push(r, integer(30));
    push(r, str("w"));
    push(r, integer(5));
    push(r, integer(1));
    out = decode_ok(op, r);
    assert_true(out.lease.shared);
    assert_int_equal(out.holder_count, 3);
    assert_int_equal(out.nholders, 2);
    assert_true(out.holders[1].shared);
    assert_int_equal(out.holders[1].count, 2);
    assert_int_equal(out.holders[1].ttl_ms, 950);
    assert_int_equal(out.fence_seen, 32);
    assert_int_equal(out.queued, 1);
    assert_true(out.queue[0].shared);
    lock_reply_free(&out);
    /* More listed than held; a mode that is neither. */
    DECODE_BAD(op, array(11, integer(1), integer(1), integer(1), integer(1),
                         str("o"), integer(0), integer(1), integer(0),
                         integer(1), integer(0), integer(1)));
    DECODE_BAD(op, array(11, integer(1), integer(1), integer(1), integer(1),
                         str("o"), integer(0), integer(1), integer(0),
                         integer(2), integer(0), integer(0)));

    generic_shapes_bad(op);
    lease_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(0)));
    DECODE_BAD(op, array(2, integer(2), integer(180)));
    DECODE_BAD(op, array(7, integer(1), integer(1), integer(1), integer(1),
                         str("o"), integer(0), integer(1)));
    DECODE_BAD(op, status_reply(4, 0, 0, 0, "", 0, -1, 0));
    DECODE_BAD(op, status_reply(-1, 0, 0, 0, "", 0, -1, 0));
    /* Each member of the wrong type. */
    DECODE_BAD(op, array(11, integer(1), str("1"), integer(1), integer(1),
                         str("o"), integer(0), integer(1), integer(0),
                         integer(0), integer(1), integer(0)));
    DECODE_BAD(op, array(11, integer(1), integer(1), str("1"), integer(1),
                         str("o"), integer(0), integer(1), integer(0),
                         integer(0), integer(1), integer(0)));
    DECODE_BAD(op, array(11, integer(1), integer(1), integer(1), nil(),
                         str("o"), integer(0), integer(1), integer(0),
                         integer(0), integer(1), integer(0)));
    DECODE_BAD(op, array(11, integer(1), integer(1), integer(1), integer(1),
                         integer(0), integer(0), integer(1), integer(0),
                         integer(0), integer(1), integer(0)));
    DECODE_BAD(op, array(11, integer(1), integer(1), integer(1), integer(1),
                         str("o"), str("0"), integer(1), integer(0), integer(0),
                         integer(1), integer(0)));
    DECODE_BAD(op, array(11, integer(1), integer(1), integer(1), integer(1),
                         str("o"), integer(0), str("1"), integer(0), integer(0),
                         integer(1), integer(0)));
    DECODE_BAD(op, array(11, integer(1), integer(1), integer(1), integer(1),
                         str("o"), integer(0), integer(1), nil(), integer(0),
                         integer(1), integer(0)));
    /* A queued pair cut short, or of the wrong types. */
    r = status_reply(1, 1, 1, 1, "o", 0, 1, 1);
    push(r, str("w1"));
    DECODE_BAD(op, r);
    r = status_reply(1, 1, 1, 1, "o", 0, 1, 1);
    push_queued(r, integer(5), 5);
    DECODE_BAD(op, r);
    r = status_reply(1, 1, 1, 1, "o", 0, 1, 1);
    push(r, str("w1"));
    push(r, str("5"));
    push(r, integer(0));
    DECODE_BAD(op, r);
    r = status_reply(1, 1, 1, 1, "o", 0, 1, 1);
    push(r, str("w1"));
    push(r, integer(5));
    push(r, integer(2));
    DECODE_BAD(op, r);
    /* The second triple broken: nothing of the first is left either. */
    r = status_reply(1, 1, 1, 1, "o", 0, 1, 2);
    push_queued(r, str("w1"), 5);
    push(r, str("w2"));
    push(r, nil());
    push(r, integer(0));
    DECODE_BAD(op, r);
    /* A queued owner one byte past OWNER_BYTES_MAX. */
    r = status_reply(1, 1, 1, 1, "o", 0, 1, 1);
    memset(long_text, 'o', sizeof long_text);
    push_queued(r, text_len(REDIS_REPLY_STRING, long_text, OWNER_BYTES_MAX + 1),
                5);
    DECODE_BAD(op, r);
    /* More triples than LOCK_LIST_MAX. */
    r = status_reply(1, 1, 1, 1, "o", 0, 1, LOCK_LIST_MAX + 1);
    for (int i = 0; i < LOCK_LIST_MAX + 1; i++)
        push_queued(r, str("w"), i);
    DECODE_BAD(op, r);
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
    DECODE_BAD(op, array(1, integer(-4)));
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
    /* Held by a holder that claimed it, or in its lock-delay: nobody to
     * hand to. */
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

static void test_decode_force(void **state)
{
    (void)state;
    const enum lock_op op = LOCK_OP_FORCE;
    struct lock_reply out;
    char expect[OWNER_BYTES_MAX + 1];

    /* A lease ended: its owner and fence, for the audit line. */
    out = decode_ok(
        op, array(3, integer(1), str("worker-7"), integer(1700000000000321)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.forced, 1);
    assert_string_equal(out.lease.owner, "worker-7");
    assert_int_equal(out.lease.fence, 1700000000000321);
    assert_false(out.replayed);
    assert_null(out.queue);
    /* Nothing held. */
    lock_reply_free(&out);
    out = decode_ok(op, array(3, integer(0), str(""), integer(0)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.forced, 0);
    assert_string_equal(out.lease.owner, "");
    assert_int_equal(out.lease.fence, 0);
    /* The longest owner. */
    memset(long_text, 'o', sizeof long_text);
    memset(expect, 'o', OWNER_BYTES_MAX);
    expect[OWNER_BYTES_MAX] = '\0';
    lock_reply_free(&out);
    out = decode_ok(
        op, array(3, integer(1),
                  text_len(REDIS_REPLY_STRING, long_text, OWNER_BYTES_MAX),
                  integer(9)));
    assert_string_equal(out.lease.owner, expect);
    /* Three shared leases ended, two of them named. */
    lock_reply_free(&out);
    out = decode_ok(op, array(5, integer(3), str("r1"), integer(11), str("r2"),
                              integer(12)));
    assert_int_equal(out.forced, 3);
    assert_int_equal(out.nholders, 2);
    assert_string_equal(out.holders[0].owner, "r1");
    assert_int_equal(out.holders[1].fence, 12);
    assert_string_equal(out.lease.owner, "r1");
    assert_int_equal(out.fence_seen, 12);
    lock_reply_free(&out);

    generic_shapes_bad(op);
    DECODE_BAD(op, array(1, integer(1)));
    DECODE_BAD(op, array(2, integer(1), str("o")));
    DECODE_BAD(
        op, array(5, integer(1), str("o"), integer(9), str("p"), integer(10)));
    DECODE_BAD(op, array(4, integer(2), str("o"), integer(9), str("p")));
    DECODE_BAD(op, array(3, integer(-1), str("o"), integer(9)));
    DECODE_BAD(op, array(3, integer(1), integer(5), integer(9)));
    DECODE_BAD(op, array(3, integer(1), nil(), integer(9)));
    DECODE_BAD(op, array(3, integer(1), str("o"), str("9")));
    DECODE_BAD(op, array(3, integer(1), str("o"), nil()));
    DECODE_BAD(
        op, array(3, integer(1),
                  text_len(REDIS_REPLY_STRING, long_text, OWNER_BYTES_MAX + 1),
                  integer(9)));
    lock_reply_free(&out);
}

#define WAITER_B "0a1b2c3d4e5f6a7b:1:9"

/* Any reply may end with a nested {waiter id, fence}: the script granted
 * the lock outright to a waiter of the calling instance (prelude.lua); no
 * other element of a reply is an array. */
static void assert_direct(const struct lock_reply *out, const char *id,
                          int64_t fence, int64_t fence_seen)
{
    if (id[0] == '\0') {
        assert_int_equal(out->ndirects, 0);
    } else {
        assert_int_equal(out->ndirects, 1);
        assert_string_equal(out->directs[0].id, id);
        assert_int_equal(out->directs[0].fence, fence);
    }
    assert_int_equal(out->fence_seen, fence_seen);
}

static redisReply *direct(const char *id, long long fence)
{
    return array(2, str(id), integer(fence));
}

static void test_decode_direct(void **state)
{
    (void)state;
    struct lock_reply out;
    char id[WAITER_ID_MAX + 1];

    /* Without one: nothing set. */
    out = decode_ok(LOCK_OP_RELEASE,
                    array(4, integer(1), integer(0), integer(0), integer(5)));
    assert_direct(&out, "", 0, 0);
    /* An acquire refused because the free lock went to the head waiter. */
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_ACQUIRE,
                    array(4, integer(0), integer(30000), integer(1),
                          direct(WAITER_B, 1700000000000999)));
    assert_int_equal(out.outcome, LOCK_QUEUED);
    assert_int_equal(out.pttl_ms, 30000);
    assert_direct(&out, WAITER_B, 1700000000000999, 1700000000000999);
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_ACQUIRE, array(4, integer(0), integer(30000),
                                           integer(0), direct(WAITER_B, 5)));
    assert_int_equal(out.outcome, LOCK_HELD);
    assert_direct(&out, WAITER_B, 5, 5);
    /* A release that handed on: fence_seen the larger of the two. */
    lock_reply_free(&out);
    out =
        decode_ok(LOCK_OP_RELEASE, array(5, integer(1), integer(0), integer(88),
                                         integer(5), direct(WAITER_B, 88)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.lease.count, 0);
    assert_direct(&out, WAITER_B, 88, 88);
    lock_reply_free(&out);
    out =
        decode_ok(LOCK_OP_RELEASE, array(5, integer(1), integer(0), integer(99),
                                         integer(5), direct(WAITER_B, 88)));
    assert_direct(&out, WAITER_B, 88, 99);
    /* Claim lapsed, leave handed on, poke, force. */
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_CLAIM, array(4, integer(0), integer(250),
                                         integer(1), direct(WAITER_B, 7)));
    assert_int_equal(out.outcome, LOCK_QUEUED);
    assert_int_equal(out.pttl_ms, 250);
    assert_direct(&out, WAITER_B, 7, 7);
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_LEAVE, array(2, integer(2), direct(WAITER_B, 8)));
    assert_int_equal(out.outcome, LOCK_HANDED_ON);
    assert_direct(&out, WAITER_B, 8, 8);
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_POKE, array(4, integer(1), integer(30000),
                                        str(WAITER_B), direct(WAITER_B, 9)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_string_equal(out.handed_to, WAITER_B);
    assert_direct(&out, WAITER_B, 9, 9);
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_FORCE, array(4, integer(1), str("o"), integer(5),
                                         direct(WAITER_B, 6)));
    assert_int_equal(out.forced, 1);
    assert_int_equal(out.lease.fence, 5);
    assert_string_equal(out.lease.owner, "o");
    assert_direct(&out, WAITER_B, 6, 6);
    /* The longest waiter id that fits. */
    memset(id, 'w', sizeof id);
    lock_reply_free(&out);
    out = decode_ok(
        LOCK_OP_LEAVE,
        array(2, integer(2),
              array(2, text_len(REDIS_REPLY_STRING, id, WAITER_ID_MAX - 1),
                    integer(8))));
    assert_int_equal(strlen(out.directs[0].id), WAITER_ID_MAX - 1);

    /* Several shared waiters granted at once: each with its fence. */
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_RELEASE,
                    array(5, integer(1), integer(0), integer(20), integer(5),
                          array(6, str(WAITER_B), integer(20), str("b:0:2"),
                                integer(21), str("b:0:3"), integer(22))));
    assert_int_equal(out.ndirects, 3);
    assert_string_equal(out.directs[1].id, "b:0:2");
    assert_int_equal(out.directs[2].fence, 22);
    assert_int_equal(out.fence_seen, 22);
    lock_reply_free(&out);
    assert_null(out.directs);

    /* Broken markers. */
    DECODE_BAD(LOCK_OP_LEAVE,
               array(2, integer(2), array(2, integer(3), integer(8))));
    DECODE_BAD(LOCK_OP_LEAVE,
               array(2, integer(2), array(2, str(WAITER_B), str("8"))));
    DECODE_BAD(LOCK_OP_LEAVE,
               array(2, integer(2), array(2, str(WAITER_B), nil())));
    DECODE_BAD(LOCK_OP_LEAVE, array(2, integer(2), array(1, str(WAITER_B))));
    DECODE_BAD(LOCK_OP_LEAVE, array(2, integer(2), array(0)));
    DECODE_BAD(
        LOCK_OP_LEAVE,
        array(2, integer(2), array(3, str(WAITER_B), integer(8), integer(9))));
    DECODE_BAD(LOCK_OP_LEAVE, array(2, integer(2),
                                    array(4, str(WAITER_B), integer(8),
                                          str("b:0:2"), integer(0))));
    DECODE_BAD(LOCK_OP_LEAVE, array(2, integer(2), direct(WAITER_B, 0)));
    DECODE_BAD(LOCK_OP_LEAVE, array(2, integer(2), direct(WAITER_B, -8)));
    DECODE_BAD(LOCK_OP_LEAVE,
               array(2, integer(2),
                     array(2, text_len(REDIS_REPLY_STRING, id, WAITER_ID_MAX),
                           integer(8))));
    /* A marker on a reply that is broken underneath, or alone. */
    DECODE_BAD(LOCK_OP_RELEASE,
               array(3, integer(1), integer(0), direct(WAITER_B, 8)));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(1, direct(WAITER_B, 8)));
    DECODE_BAD(LOCK_OP_ACQUIRE,
               array(2, direct(WAITER_B, 8), direct(WAITER_B, 9)));
    lock_reply_free(&out);
}

/* An owner label is the client's: "D" is an owner like any other, in every
 * reply that carries one, and no direct-grant marker. */
static void test_decode_owner_d(void **state)
{
    (void)state;
    struct lock_reply out;

    out = decode_ok(LOCK_OP_ACQUIRE, lease_reply(7, 1, 10, "D"));
    assert_lease(&out, 7, 1, 10, "D");
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_RENEW, lease_reply(7, 1, 10, "D"));
    assert_lease(&out, 7, 1, 10, "D");
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_STATUS, status_reply(1, 10, 7, 1, "D", 0, -1, 0));
    assert_string_equal(out.lease.owner, "D");
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_FORCE, array(3, integer(1), str("D"), integer(7)));
    assert_string_equal(out.lease.owner, "D");
    /* The replay of a lease whose owner is "D": {1, fence, count, ttl, "D",
     * 1, token}. */
    lock_reply_free(&out);
    out = decode_ok(LOCK_OP_ACQUIRE, replay_reply(7, 1, "D", str(TOKEN_A)));
    assert_true(out.replayed);
    assert_string_equal(out.lease.owner, "D");
    assert_string_equal(out.token, TOKEN_A);
    assert_int_equal(out.ndirects, 0);
    lock_reply_free(&out);
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
    /* request_id's lease ended: acquire only. */
    DECODE_BAD(LOCK_OP_RENEW, array(1, integer(-4)));
    DECODE_BAD(LOCK_OP_CLAIM, array(1, integer(-4)));
    DECODE_BAD(LOCK_OP_LEAVE, array(1, integer(-4)));
    /* Force's {holders, owner, fence} is no reply of poke or renew. */
    DECODE_BAD(LOCK_OP_POKE, array(3, integer(2), str(""), integer(0)));
    DECODE_BAD(LOCK_OP_RENEW, array(3, integer(1), str(""), integer(0)));
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
        cmocka_unit_test_setup(test_encode_status, setup_keys),
        cmocka_unit_test_setup(test_encode_claim, setup_keys),
        cmocka_unit_test_setup(test_encode_leave, setup_keys),
        cmocka_unit_test_setup(test_encode_poke_force, setup_keys),
        cmocka_unit_test_setup(test_encode_reuse, setup_keys),
        cmocka_unit_test_setup(test_encode_extremes, setup_keys),
        cmocka_unit_test_setup(test_encode_record_longest, setup_keys),
        cmocka_unit_test_setup(test_decode_acquire, setup_pool),
        cmocka_unit_test_setup(test_decode_renew, setup_pool),
        cmocka_unit_test_setup(test_decode_release, setup_pool),
        cmocka_unit_test_setup(test_decode_status, setup_pool),
        cmocka_unit_test_setup(test_decode_claim, setup_pool),
        cmocka_unit_test_setup(test_decode_leave, setup_pool),
        cmocka_unit_test_setup(test_decode_poke, setup_pool),
        cmocka_unit_test_setup(test_decode_force, setup_pool),
        cmocka_unit_test_setup(test_decode_direct, setup_pool),
        cmocka_unit_test_setup(test_decode_owner_d, setup_pool),
        cmocka_unit_test_setup(test_decode_codes_per_op, setup_pool),
    };
    return cmocka_run_group_tests_name("lock_codec", tests, NULL, NULL);
}
