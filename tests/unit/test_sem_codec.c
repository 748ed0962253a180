/* test_sem_codec.c -- unit tests for the semaphore kind's codec
 * (service/lock/semaphore.c): encode's KEYS and ARGV for every operation,
 * as the scripts service/lock/lua/sem_*.lua read them, and decode of every
 * reply shape those scripts document, built by hand as hiredis reply trees,
 * plus shapes they never answer (LOCK_UNAVAILABLE, nothing left set). */
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

static const struct lock_context ctx = {.prefix = "t:",
                                        .qname = "semaphore:pool",
                                        .instance = "0a1b2c3d4e5f6a7b",
                                        .handoff_ms = 250,
                                        .fence_floor = 1700000000000000};

static const char *const token = "0123456789abcdef0123456789abcdef";
static const char *const waiter = "0a1b2c3d4e5f6a7b:2:41";

static struct lock_args args_default(void)
{
    struct lock_args a = {
        .name = "pool",
        .token = token,
        .ttl_ms = 30000,
        .wait_ms = 5000,
        .owner = "worker-7",
        .waiter = waiter,
        .request_id = "",
        .listed = 100,
        .permits = 3,
        .limit = 10,
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

/* Encodes op into a dirty av and checks what every script gets: the six
 * keys of a->name (KEYS[6] the record of record_id under what) and
 * ARGV[1..4]; argv_own is how many ARGV the op adds. */
static void encode_common(enum lock_op op, const struct lock_args *a,
                          struct lock_argv *av, int argv_own, const char *what,
                          const char *record_id)
{
    static const enum key_kind kinds[] = {
        KEY_SEM, KEY_SEM_EXPIRY, KEY_SEM_FENCE, KEY_SEM_QUEUE, KEY_SEM_WAITERS};
    char key[KEY_MAX];

    memset(av, 0x5a, sizeof *av); /* encode must not rely on a clean out */
    lock_kind_semaphore.encode(op, a, &ctx, av);
    assert_int_equal(av->nkeys, 6);
    assert_int_equal(av->argc, 6 + 4 + argv_own);
    assert_true(av->argc <= LOCK_KEYS_MAX + LOCK_ARGV_MAX);
    for (int i = 0; i < 5; i++) {
        assert_true(key_for(key, kinds[i], a->name) > 0);
        assert_item(av, i, key);
    }
    assert_true(key_for_record(key, what, a->name, record_id) > 0);
    assert_item(av, 5, key);
    assert_argv(av, 1, "t:");
    assert_argv(av, 2, "250");
    assert_argv(av, 3, "1700000000000000");
    assert_argv(av, 4, "semaphore:pool");
}

static void test_key_schema(void **state)
{
    (void)state;
    char key[KEY_MAX];

    key_for(key, KEY_SEM, "pool");
    assert_string_equal(key, "t:{pool}:sem");
    key_for(key, KEY_SEM_EXPIRY, "pool");
    assert_string_equal(key, "t:{pool}:sem:expiry");
    key_for(key, KEY_SEM_FENCE, "pool");
    assert_string_equal(key, "t:{pool}:sem:fence");
    key_for(key, KEY_SEM_QUEUE, "pool");
    assert_string_equal(key, "t:{pool}:sem:queue");
    key_for(key, KEY_SEM_WAITERS, "pool");
    assert_string_equal(key, "t:{pool}:sem:waiters");
    key_for_record(key, "sem:acq", "pool", "r-1");
    assert_string_equal(key, "t:{pool}:sem:acq:r-1");
    /* A lock of the same name keeps keys of its own. */
    key_for(key, KEY_LOCK, "pool");
    assert_string_equal(key, "t:{pool}:lock");
}

static void test_encode_acquire(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    encode_common(LOCK_OP_ACQUIRE, &a, &av, 8, "sem:acq", "-");
    assert_argv(&av, 5, token);
    assert_argv(&av, 6, "30000");
    assert_argv(&av, 7, "worker-7");
    assert_argv(&av, 8, "5000");
    assert_argv(&av, 9, waiter);
    assert_argv(&av, 10, "3");
    assert_argv(&av, 11, "10");
    assert_argv(&av, 12, "-");

    /* No wait, no owner, no waiter; a request_id names its record. */
    a.wait_ms = 0;
    a.owner = "";
    a.waiter = "";
    a.permits = 1;
    a.limit = 1;
    a.request_id = "job-7";
    encode_common(LOCK_OP_ACQUIRE, &a, &av, 8, "sem:acq", "job-7");
    assert_argv(&av, 7, "");
    assert_argv(&av, 8, "0");
    assert_argv(&av, 9, "");
    assert_argv(&av, 10, "1");
    assert_argv(&av, 11, "1");
    assert_argv(&av, 12, "job-7");
    /* NULL is no request_id either. */
    a.request_id = NULL;
    encode_common(LOCK_OP_ACQUIRE, &a, &av, 8, "sem:acq", "-");
    assert_argv(&av, 12, "-");
}

static void test_encode_renew_release(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    encode_common(LOCK_OP_RENEW, &a, &av, 2, "sem:acq", "-");
    assert_argv(&av, 5, token);
    assert_argv(&av, 6, "30000");
    a.ttl_ms = 0; /* the TTL last granted */
    encode_common(LOCK_OP_RENEW, &a, &av, 2, "sem:acq", "-");
    assert_argv(&av, 6, "0");
    /* renew ignores a request_id: no record of its own. */
    a.request_id = "job-7";
    encode_common(LOCK_OP_RENEW, &a, &av, 2, "sem:acq", "-");

    encode_common(LOCK_OP_RELEASE, &a, &av, 2, "sem:rel", "job-7");
    assert_argv(&av, 5, token);
    assert_argv(&av, 6, "job-7");
    a.request_id = "";
    encode_common(LOCK_OP_RELEASE, &a, &av, 2, "sem:rel", "-");
    assert_argv(&av, 6, "-");
}

static void test_encode_claim_leave(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    a.wait_ms = 1234;
    a.request_id = "job-7";
    encode_common(LOCK_OP_CLAIM, &a, &av, 8, "sem:acq", "-");
    assert_argv(&av, 5, waiter);
    assert_argv(&av, 6, token);
    assert_argv(&av, 7, "1234");
    assert_argv(&av, 8, "30000");
    assert_argv(&av, 9, "worker-7");
    assert_argv(&av, 10, "3");
    assert_argv(&av, 11, "10");
    assert_argv(&av, 12, "job-7");
    a.wait_ms = 0;
    a.request_id = "";
    encode_common(LOCK_OP_CLAIM, &a, &av, 8, "sem:acq", "-");
    assert_argv(&av, 7, "0");
    assert_argv(&av, 12, "-");

    a.leave_claims = true;
    encode_common(LOCK_OP_LEAVE, &a, &av, 3, "sem:acq", "-");
    assert_argv(&av, 5, waiter);
    assert_argv(&av, 6, token);
    assert_argv(&av, 7, "claim");
    a.leave_claims = false;
    encode_common(LOCK_OP_LEAVE, &a, &av, 3, "sem:acq", "-");
    assert_argv(&av, 7, "release");
}

static void test_encode_status_poke_force(void **state)
{
    (void)state;
    struct lock_args a = {
        .name = "pool", .token = "", .owner = "", .waiter = "", .listed = 100};
    struct lock_argv av;

    encode_common(LOCK_OP_STATUS, &a, &av, 1, "sem:acq", "-");
    assert_argv(&av, 5, "100");
    encode_common(LOCK_OP_POKE, &a, &av, 0, "sem:acq", "-");
    encode_common(LOCK_OP_FORCE, &a, &av, 1, "sem:acq", "-");
    assert_argv(&av, 5, "100");
}

/* An out reused for a shorter operation holds only that one. */
static void test_encode_reuse(void **state)
{
    (void)state;
    struct lock_args a = args_default();
    struct lock_argv av;

    for (int i = 0; i < 100; i++)
        lock_kind_semaphore.encode(LOCK_OP_ACQUIRE, &a, &ctx, &av);
    assert_int_equal(av.argc, 18);
    lock_kind_semaphore.encode(LOCK_OP_POKE, &a, &ctx, &av);
    assert_int_equal(av.argc, 10);
    lock_kind_semaphore.encode(LOCK_OP_CLAIM, &a, &ctx, &av);
    assert_int_equal(av.argc, 18);
    assert_argv(&av, 10, "3");
}

/* The longest prefix, scoped name and request_id fit KEY_MAX; the widest
 * numbers fit. */
static void test_encode_extremes(void **state)
{
    (void)state;
    static struct config long_cfg;
    char name[SCOPED_NAME_MAX + 1], rid[REQUEST_ID_MAX + 1];
    char owner[OWNER_BYTES_MAX + 1], want[2 * KEY_MAX];
    struct lock_args a = args_default();
    struct lock_context c = ctx;
    struct lock_argv av;

    memset(long_cfg.key_prefix, 'p', KEY_PREFIX_MAX);
    long_cfg.key_prefix[KEY_PREFIX_MAX] = '\0';
    memset(name, 'n', SCOPED_NAME_MAX);
    name[NAMESPACE_MAX] = '/';
    name[SCOPED_NAME_MAX] = '\0';
    memset(rid, 'r', REQUEST_ID_MAX);
    rid[REQUEST_ID_MAX] = '\0';
    memset(owner, 'o', OWNER_BYTES_MAX);
    owner[OWNER_BYTES_MAX] = '\0';
    keys_init(&long_cfg);
    a.name = name;
    a.owner = owner;
    a.request_id = rid;
    a.ttl_ms = INT64_MAX;
    a.wait_ms = INT64_MIN;
    a.permits = INT64_MAX;
    a.limit = INT64_MIN;
    c.prefix = long_cfg.key_prefix;
    c.fence_floor = INT64_MAX;
    c.handoff_ms = 0;
    lock_kind_semaphore.encode(LOCK_OP_ACQUIRE, &a, &c, &av);
    assert_int_equal(av.argc, 18);
    snprintf(want, sizeof want, "%s{%s}:sem:waiters", long_cfg.key_prefix,
             name);
    assert_item(&av, 4, want);
    snprintf(want, sizeof want, "%s{%s}:sem:acq:%s", long_cfg.key_prefix, name,
             rid);
    assert_item(&av, 5, want);
    assert_argv(&av, 2, "0");
    assert_argv(&av, 3, "9223372036854775807");
    assert_argv(&av, 6, "9223372036854775807");
    assert_argv(&av, 7, owner);
    assert_argv(&av, 8, "-9223372036854775808");
    assert_argv(&av, 10, "9223372036854775807");
    assert_argv(&av, 11, "-9223372036854775808");
    lock_kind_semaphore.encode(LOCK_OP_RELEASE, &a, &c, &av);
    snprintf(want, sizeof want, "%s{%s}:sem:rel:%s", long_cfg.key_prefix, name,
             rid);
    assert_item(&av, 5, want);
    keys_init(&cfg);
}

/* ---- decoding ------------------------------------------------------------*/

/* Hand-built reply trees live in a pool that each test resets. */
#define POOL_MAX 2048

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

/* An out as the engine hands it over: scalars garbage, pointers NULL (decode
 * frees what a previous decode allocated). */
static void dirty(struct lock_reply *out)
{
    memset(out, 0xa5, sizeof *out);
    out->queue = NULL;
    out->holders = NULL;
    out->directs = NULL;
}

/* Decodes r as op into a dirty out; asserts it succeeds. The caller frees
 * what it allocated with lock_reply_free. */
static struct lock_reply decode_ok(enum lock_op op, const redisReply *r,
                                   int line)
{
    struct lock_reply out;

    dirty(&out);
    if (lock_kind_semaphore.decode(op, r, &out) != 0) {
        print_error("line %d, op %d: decode refused a documented reply\n", line,
                    (int)op);
        fail();
    }
    pool_n = elems_n = 0;
    return out;
}

#define DECODE_OK(op, r) decode_ok(op, r, __LINE__)

/* Asserts decode refuses r as op: LOCK_UNAVAILABLE, -1, nothing else set. */
static void decode_bad(enum lock_op op, const redisReply *r, int line)
{
    struct lock_reply out, zero;

    dirty(&out);
    memset(&zero, 0, sizeof zero);
    zero.outcome = LOCK_UNAVAILABLE;
    int rc = lock_kind_semaphore.decode(op, r, &out);
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

/* {1, fence, permits, ttl, owner, limit, replayed, token} */
static redisReply *lease_reply(long long fence, long long permits,
                               long long ttl, const char *owner,
                               long long limit)
{
    return array(8, integer(1), integer(fence), integer(permits), integer(ttl),
                 str(owner), integer(limit), integer(0), str(""));
}

static void assert_lease(const struct lock_reply *out, int64_t fence,
                         int64_t permits, int64_t ttl, const char *owner,
                         int64_t limit)
{
    assert_int_equal(out->outcome, LOCK_OK);
    assert_int_equal(out->lease.fence, fence);
    assert_int_equal(out->lease.permits, permits);
    assert_int_equal(out->lease.count, 1);
    assert_int_equal(out->lease.ttl_ms, ttl);
    assert_string_equal(out->lease.owner, owner);
    assert_int_equal(out->limit, limit);
    assert_int_equal(out->fence_seen, fence);
    assert_int_equal(out->pttl_ms, 0);
    assert_false(out->replayed);
    assert_string_equal(out->token, "");
    assert_string_equal(out->handed_to, "");
    assert_int_equal(out->ndirects, 0);
    assert_null(out->queue);
    assert_null(out->holders);
}

/* The shapes a lease reply is never. */
static void lease_shapes_bad(enum lock_op op)
{
    DECODE_BAD(op, array(1, integer(1)));
    DECODE_BAD(op, array(7, integer(1), integer(5), integer(1), integer(100),
                         str("o"), integer(3), integer(0)));
    DECODE_BAD(op,
               array(9, integer(1), integer(5), integer(1), integer(100),
                     str("o"), integer(3), integer(0), str(""), integer(0)));
    /* a member of the wrong type */
    DECODE_BAD(op, array(8, integer(1), str("5"), integer(1), integer(100),
                         str("o"), integer(3), integer(0), str("")));
    DECODE_BAD(op, array(8, integer(1), integer(5), nil(), integer(100),
                         str("o"), integer(3), integer(0), str("")));
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(1), str("100"),
                         str("o"), integer(3), integer(0), str("")));
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(1), integer(100),
                         integer(7), integer(3), integer(0), str("")));
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(1), integer(100),
                         str("o"), str("3"), integer(0), str("")));
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(1), integer(100),
                         str("o"), integer(3), integer(0), integer(0)));
    /* an owner longer than any the service stores */
    DECODE_BAD(
        op, array(8, integer(1), integer(5), integer(1), integer(100),
                  text_len(REDIS_REPLY_STRING, long_text, OWNER_BYTES_MAX + 1),
                  integer(3), integer(0), str("")));
    /* no permits, or more than the limit */
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(0), integer(100),
                         str("o"), integer(3), integer(0), str("")));
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(4), integer(100),
                         str("o"), integer(3), integer(0), str("")));
    /* replayed other than 0 or 1, a replay without a token, a token
     * without a replay */
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(1), integer(100),
                         str("o"), integer(3), integer(2), str("")));
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(1), integer(100),
                         str("o"), integer(3), integer(1), str("")));
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(1), integer(100),
                         str("o"), integer(3), integer(0), str(token)));
    DECODE_BAD(op, array(8, integer(1), integer(5), integer(1), integer(100),
                         str("o"), integer(3), integer(1), str("abc")));
}

static void test_decode_acquire(void **state)
{
    (void)state;
    struct lock_reply out;

    out = DECODE_OK(LOCK_OP_ACQUIRE,
                    lease_reply(1700000000000001, 3, 30000, "worker-7", 10));
    assert_lease(&out, 1700000000000001, 3, 30000, "worker-7", 10);

    out = DECODE_OK(LOCK_OP_ACQUIRE,
                    array(8, integer(1), integer(42), integer(1), integer(500),
                          str(""), integer(1), integer(1), str(token)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_true(out.replayed);
    assert_string_equal(out.token, token);
    assert_int_equal(out.lease.fence, 42);
    assert_int_equal(out.limit, 1);

    out = DECODE_OK(LOCK_OP_ACQUIRE,
                    array(3, integer(0), integer(2500), integer(1)));
    assert_int_equal(out.outcome, LOCK_QUEUED);
    assert_int_equal(out.pttl_ms, 2500);
    out = DECODE_OK(LOCK_OP_ACQUIRE,
                    array(3, integer(0), integer(-2), integer(0)));
    assert_int_equal(out.outcome, LOCK_HELD);
    assert_int_equal(out.pttl_ms, 0); /* a negative PTTL is none left */

    out = DECODE_OK(LOCK_OP_ACQUIRE, array(1, integer(-4)));
    assert_int_equal(out.outcome, LOCK_REQUEST_ENDED);
    out = DECODE_OK(LOCK_OP_ACQUIRE, array(2, integer(-5), integer(7)));
    assert_int_equal(out.outcome, LOCK_LIMIT_MISMATCH);
    assert_int_equal(out.limit, 7);

    lease_shapes_bad(LOCK_OP_ACQUIRE);
    DECODE_BAD(LOCK_OP_ACQUIRE, array(2, integer(0), integer(5)));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(3, integer(0), integer(5), integer(2)));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(3, integer(0), str("5"), integer(1)));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(1, integer(-5)));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(2, integer(-5), str("7")));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(2, integer(-4), integer(1)));
    /* codes acquire never answers */
    DECODE_BAD(LOCK_OP_ACQUIRE, array(1, integer(-1)));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(1, integer(-2)));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(1, integer(-3)));
    DECODE_BAD(LOCK_OP_ACQUIRE, array(1, integer(2)));
}

static void test_decode_renew_release(void **state)
{
    (void)state;
    struct lock_reply out;

    out = DECODE_OK(LOCK_OP_RENEW, lease_reply(9, 2, 60000, "w", 4));
    assert_lease(&out, 9, 2, 60000, "w", 4);
    out = DECODE_OK(LOCK_OP_RENEW, array(1, integer(0)));
    assert_int_equal(out.outcome, LOCK_NOT_HELD);
    lease_shapes_bad(LOCK_OP_RENEW);
    DECODE_BAD(LOCK_OP_RENEW, array(1, integer(-1)));
    DECODE_BAD(LOCK_OP_RENEW, array(2, integer(0), integer(0)));

    out = DECODE_OK(LOCK_OP_RELEASE,
                    array(4, integer(1), integer(3), integer(1700000000000009),
                          integer(250)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.lease.permits, 3);
    assert_int_equal(out.fence_seen, 1700000000000009);
    assert_int_equal(out.held_ms, 250);
    out = DECODE_OK(LOCK_OP_RELEASE,
                    array(4, integer(1), integer(1), integer(0), integer(-1)));
    assert_int_equal(out.fence_seen, 0);
    out = DECODE_OK(LOCK_OP_RELEASE, array(1, integer(0)));
    assert_int_equal(out.outcome, LOCK_NOT_HELD);
    DECODE_BAD(LOCK_OP_RELEASE, array(2, integer(1), integer(3)));
    DECODE_BAD(LOCK_OP_RELEASE, array(3, integer(1), integer(3), integer(0)));
    DECODE_BAD(LOCK_OP_RELEASE,
               array(4, integer(1), str("3"), integer(0), integer(0)));
    DECODE_BAD(LOCK_OP_RELEASE,
               array(4, integer(1), integer(3), integer(0), str("0")));
    DECODE_BAD(LOCK_OP_RELEASE, array(5, integer(1), integer(3), integer(0),
                                      integer(0), integer(0)));
    DECODE_BAD(LOCK_OP_RELEASE, array(1, integer(-1)));
    DECODE_BAD(LOCK_OP_RELEASE, lease_reply(9, 2, 60000, "w", 4));
}

static void test_decode_claim_leave(void **state)
{
    (void)state;
    struct lock_reply out;

    out = DECODE_OK(LOCK_OP_CLAIM, lease_reply(11, 1, 1000, "c", 2));
    assert_lease(&out, 11, 1, 1000, "c", 2);
    out = DECODE_OK(LOCK_OP_CLAIM,
                    array(3, integer(0), integer(750), integer(1)));
    assert_int_equal(out.outcome, LOCK_QUEUED);
    assert_int_equal(out.pttl_ms, 750);
    out = DECODE_OK(LOCK_OP_CLAIM, array(1, integer(-3)));
    assert_int_equal(out.outcome, LOCK_WAIT_OVER);
    lease_shapes_bad(LOCK_OP_CLAIM);
    DECODE_BAD(LOCK_OP_CLAIM, array(3, integer(0), integer(750), integer(0)));
    DECODE_BAD(LOCK_OP_CLAIM, array(2, integer(0), integer(750)));
    DECODE_BAD(LOCK_OP_CLAIM, array(1, integer(-4)));
    DECODE_BAD(LOCK_OP_CLAIM, array(1, integer(2)));

    out = DECODE_OK(LOCK_OP_LEAVE, lease_reply(12, 1, 1000, "", 1));
    assert_lease(&out, 12, 1, 1000, "", 1);
    out = DECODE_OK(LOCK_OP_LEAVE, array(2, integer(0), integer(321)));
    assert_int_equal(out.outcome, LOCK_HELD);
    assert_int_equal(out.pttl_ms, 321);
    out = DECODE_OK(LOCK_OP_LEAVE, array(1, integer(2)));
    assert_int_equal(out.outcome, LOCK_HANDED_ON);
    lease_shapes_bad(LOCK_OP_LEAVE);
    DECODE_BAD(LOCK_OP_LEAVE, array(1, integer(0)));
    DECODE_BAD(LOCK_OP_LEAVE, array(2, integer(0), nil()));
    DECODE_BAD(LOCK_OP_LEAVE, array(2, integer(2), integer(0)));
    DECODE_BAD(LOCK_OP_LEAVE, array(1, integer(-3)));
}

static void test_decode_poke(void **state)
{
    (void)state;
    struct lock_reply out;

    out = DECODE_OK(LOCK_OP_POKE,
                    array(3, integer(1), integer(250), str(waiter)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.pttl_ms, 250);
    assert_string_equal(out.handed_to, waiter);
    out = DECODE_OK(LOCK_OP_POKE, array(3, integer(1), integer(9), str("")));
    assert_string_equal(out.handed_to, "");
    out = DECODE_OK(LOCK_OP_POKE, array(1, integer(0)));
    assert_int_equal(out.outcome, LOCK_FREE);
    DECODE_BAD(LOCK_OP_POKE, array(2, integer(1), integer(250)));
    DECODE_BAD(LOCK_OP_POKE, array(3, integer(1), integer(250), integer(0)));
    /* a waiter id longer than any the engine makes */
    memset(long_text, 'w', sizeof long_text - 1);
    DECODE_BAD(LOCK_OP_POKE,
               array(3, integer(1), integer(250),
                     text_len(REDIS_REPLY_STRING, long_text, WAITER_ID_MAX)));
    DECODE_BAD(LOCK_OP_POKE, array(2, integer(0), integer(0)));
    DECODE_BAD(LOCK_OP_POKE, array(1, integer(2)));
}

/* {limit, used, holder_count, waiting, now_ms, {holders as stored},
 * waiters as stored without their tokens...} */
static void test_decode_status(void **state)
{
    (void)state;
    struct lock_reply out;
    redisReply *r, *hs;

    out = DECODE_OK(LOCK_OP_STATUS, array(6, integer(0), integer(0), integer(0),
                                          integer(0), integer(1000), array(0)));
    assert_int_equal(out.outcome, LOCK_FREE);
    assert_int_equal(out.limit, 0);
    assert_int_equal(out.used, 0);
    assert_int_equal(out.nholders, 0);
    assert_int_equal(out.queued, 0);
    assert_null(out.holders);
    assert_null(out.queue);

    /* Holders as the hash stores them, read at now_ms 10000: "<permits>
     * <fence> <ttl> <granted> <expires> <request id> <waiter> <owner>"; a
     * nil (gone between the script's reads) is skipped; an owner may hold
     * spaces. */
    hs = array(3, str("2 1700000000000005 1000 9900 10900 - - a"), nil(),
               str("3 1700000000000007 30000 9000 39000 r1 w:0:1 b c"));
    r = array(6, integer(10), integer(5), integer(2), integer(3),
              integer(10000), hs);
    /* Waiters: "<deadline> <queued> <ttl> <permits> <limit> <request id>
     * <owner>"; one whose wait is over is left out. */
    push(r, str("20000 9960 1000 3 10 - w3"));
    push(r, str("9999 9000 1000 1 10 - over"));
    push(r, str("20000 9980 1000 1 10 r2 "));
    out = DECODE_OK(LOCK_OP_STATUS, r);
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.limit, 10);
    assert_int_equal(out.used, 5);
    assert_int_equal(out.holder_count, 2);
    assert_int_equal(out.waiting, 3);
    assert_int_equal(out.nholders, 2);
    assert_string_equal(out.holders[0].owner, "a");
    assert_int_equal(out.holders[0].fence, 1700000000000005);
    assert_int_equal(out.holders[0].ttl_ms, 900);
    assert_int_equal(out.holders[0].permits, 2);
    assert_int_equal(out.holders[0].held_ms, 100);
    assert_int_equal(out.holders[0].count, 1);
    assert_string_equal(out.holders[1].owner, "b c");
    assert_int_equal(out.holders[1].permits, 3);
    assert_int_equal(out.holders[1].ttl_ms, 29000);
    assert_int_equal(out.holders[1].held_ms, 1000);
    assert_int_equal(out.fence_seen, 1700000000000007);
    assert_int_equal(out.queued, 2);
    assert_string_equal(out.queue[0].owner, "w3");
    assert_int_equal(out.queue[0].permits, 3);
    assert_int_equal(out.queue[0].waited_ms, 40);
    assert_string_equal(out.queue[1].owner, "");
    assert_int_equal(out.queue[1].permits, 1);
    assert_int_equal(out.queue[1].waited_ms, 20);
    lock_reply_free(&out);
    assert_null(out.holders);
    assert_null(out.queue);

    /* A lease read just as it ended: no negative TTL. */
    out = DECODE_OK(LOCK_OP_STATUS,
                    array(6, integer(1), integer(1), integer(1), integer(0),
                          integer(20000),
                          array(1, str("1 5 100 19000 19900 - - x"))));
    assert_int_equal(out.holders[0].ttl_ms, 0);
    lock_reply_free(&out);

    /* LOCK_LIST_MAX holders and waiters of many more. */
    hs = array(0);
    for (int i = 0; i < LOCK_LIST_MAX; i++)
        push(hs, str("1 7 1000 1 2000 - - h"));
    r = array(6, integer(1000), integer(1000), integer(500), integer(900),
              integer(1000), hs);
    for (int i = 0; i < LOCK_LIST_MAX; i++)
        push(r, str("5000 900 1000 1 1000 - q"));
    out = DECODE_OK(LOCK_OP_STATUS, r);
    assert_int_equal(out.nholders, LOCK_LIST_MAX);
    assert_int_equal(out.queued, LOCK_LIST_MAX);
    assert_int_equal(out.holder_count, 500);
    lock_reply_free(&out);

    /* one holder or one waiter more than the list holds */
    hs = array(0);
    for (int i = 0; i < LOCK_LIST_MAX + 1; i++)
        push(hs, str("1 7 1000 1 2000 - - h"));
    DECODE_BAD(LOCK_OP_STATUS,
               array(6, integer(1000), integer(1000), integer(500), integer(0),
                     integer(1000), hs));
    r = array(6, integer(1), integer(1), integer(1), integer(500),
              integer(1000), array(0));
    for (int i = 0; i < LOCK_LIST_MAX + 1; i++)
        push(r, str("5000 900 1000 1 1000 - q"));
    DECODE_BAD(LOCK_OP_STATUS, r);

    /* too short; holders not an array; a stored holder cut short, with a
     * non-digit, or with an owner over the limit; a queue entry cut short;
     * members of the wrong type */
    DECODE_BAD(LOCK_OP_STATUS, array(5, integer(0), integer(0), integer(0),
                                     integer(0), integer(0)));
    DECODE_BAD(LOCK_OP_STATUS, array(6, integer(0), integer(0), integer(0),
                                     integer(0), integer(0), integer(0)));
    static const char *const bad_holders[] = {
        "1 5 100 1 2",        "1 5 100 1 2 - -",
        "1 5 100 1 2 -",      "x 5 100 1 2 - - o",
        "1 5 100 1 2  - o",   "",
        "-1 5 100 1 2 - - o", "99999999999999999999 5 100 1 2 - - o"};
    for (size_t k = 0; k < sizeof bad_holders / sizeof bad_holders[0]; k++)
        DECODE_BAD(LOCK_OP_STATUS,
                   array(6, integer(3), integer(1), integer(1), integer(0),
                         integer(0), array(1, str(bad_holders[k]))));
    {
        char big[OWNER_BYTES_MAX + 64];
        memcpy(big, "1 5 100 1 2 - - ", 16);
        memset(big + 16, 'o', sizeof big - 17);
        big[sizeof big - 1] = '\0';
        DECODE_BAD(LOCK_OP_STATUS,
                   array(6, integer(3), integer(1), integer(1), integer(0),
                         integer(0), array(1, str(big))));
    }
    DECODE_BAD(LOCK_OP_STATUS,
               array(6, integer(3), integer(1), integer(1), integer(0),
                     integer(0), array(1, integer(5))));
    static const char *const bad_waiters[] = {"5000 900 1000 1 1000",
                                              "5000 900 1000 1 1000 -", "q",
                                              "5000 900 x 1 1000 - o", ""};
    for (size_t k = 0; k < sizeof bad_waiters / sizeof bad_waiters[0]; k++)
        DECODE_BAD(LOCK_OP_STATUS,
                   array(7, integer(3), integer(1), integer(1), integer(1),
                         integer(0), array(0), str(bad_waiters[k])));
    DECODE_BAD(LOCK_OP_STATUS, array(7, integer(3), integer(1), integer(1),
                                     integer(1), integer(0), array(0), nil()));
    DECODE_BAD(LOCK_OP_STATUS,
               array(7, integer(3), integer(1), integer(1), integer(1),
                     integer(0), array(0), integer(1)));
    DECODE_BAD(LOCK_OP_STATUS, array(6, str("3"), integer(1), integer(1),
                                     integer(0), integer(0), array(0)));
    DECODE_BAD(LOCK_OP_STATUS, array(6, integer(3), integer(1), integer(1),
                                     integer(0), str("0"), array(0)));
    DECODE_BAD(LOCK_OP_STATUS, array(6, integer(-1), integer(0), integer(0),
                                     integer(0), integer(0), array(0)));
}

/* {holders, owner_1, fence_1, ...} */
static void test_decode_force(void **state)
{
    (void)state;
    struct lock_reply out;

    out = DECODE_OK(LOCK_OP_FORCE, array(1, integer(0)));
    assert_int_equal(out.outcome, LOCK_OK);
    assert_int_equal(out.forced, 0);
    assert_int_equal(out.nholders, 0);
    assert_null(out.holders);

    out = DECODE_OK(LOCK_OP_FORCE, array(5, integer(2), str("a"), integer(7),
                                         str("b"), integer(9)));
    assert_int_equal(out.forced, 2);
    assert_int_equal(out.nholders, 2);
    assert_string_equal(out.holders[0].owner, "a");
    assert_int_equal(out.holders[0].fence, 7);
    assert_string_equal(out.holders[1].owner, "b");
    assert_int_equal(out.holders[1].fence, 9);
    assert_int_equal(out.fence_seen, 9);
    lock_reply_free(&out);

    /* more leases ended than named */
    out =
        DECODE_OK(LOCK_OP_FORCE, array(3, integer(500), str("a"), integer(7)));
    assert_int_equal(out.forced, 500);
    assert_int_equal(out.nholders, 1);
    lock_reply_free(&out);

    DECODE_BAD(LOCK_OP_FORCE, array(2, integer(1), str("a")));
    DECODE_BAD(LOCK_OP_FORCE, array(3, integer(0), str("a"), integer(7)));
    DECODE_BAD(LOCK_OP_FORCE, array(3, integer(1), integer(7), str("a")));
    DECODE_BAD(LOCK_OP_FORCE, array(1, integer(-1)));
    DECODE_BAD(LOCK_OP_FORCE, array(1, str("1")));
}

/* Replies of no documented shape at all, for every operation. */
static void test_decode_unknown_shapes(void **state)
{
    (void)state;

    for (int op = 0; op < LOCK_OP_COUNT; op++) {
        DECODE_BAD((enum lock_op)op, integer(1));
        DECODE_BAD((enum lock_op)op, nil());
        DECODE_BAD((enum lock_op)op, str("OK"));
        DECODE_BAD((enum lock_op)op,
                   text_len(REDIS_REPLY_ERROR, "ERR x", strlen("ERR x")));
        DECODE_BAD((enum lock_op)op, array(0));
        DECODE_BAD((enum lock_op)op, array(1, str("1")));
        if (op != LOCK_OP_FORCE) /* {99}: 99 leases ended, none named */
            DECODE_BAD((enum lock_op)op, array(1, integer(99)));
        DECODE_BAD((enum lock_op)op, array(1, integer(-99)));
    }
    DECODE_BAD(LOCK_OP_COUNT, lease_reply(1, 1, 1, "", 1));
}

/* A reply decoded into an out that holds lists frees them first (the
 * engine decodes each step of a call into the same reply). */
static void test_decode_frees_previous(void **state)
{
    (void)state;
    struct lock_reply out;
    redisReply *r;

    dirty(&out);
    r = array(6, integer(2), integer(1), integer(1), integer(1), integer(1),
              array(1, str("1 1 1 1 2 - - a")));
    push(r, str("5 0 1 2 1 - q"));
    assert_int_equal(lock_kind_semaphore.decode(LOCK_OP_STATUS, r, &out), 0);
    assert_non_null(out.holders);
    assert_non_null(out.queue);
    pool_n = elems_n = 0;
    assert_int_equal(
        lock_kind_semaphore.decode(LOCK_OP_POKE, array(1, integer(0)), &out),
        0);
    assert_null(out.holders);
    assert_null(out.queue);
    assert_int_equal(out.outcome, LOCK_FREE);
}

static void test_kind_table(void **state)
{
    (void)state;
    const char *name = NULL;

    assert_string_equal(lock_kind_semaphore.name, "semaphore");
    assert_non_null(lock_kind_semaphore.prelude);
    for (int op = 0; op < LOCK_OP_COUNT; op++)
        assert_non_null(lock_kind_semaphore.scripts[op]);
    assert_ptr_equal(lock_kind_of("semaphore:pool", &name),
                     &lock_kind_semaphore);
    assert_string_equal(name, "pool");
    assert_ptr_equal(lock_kind_of("lock:pool", &name), &lock_kind_exclusive);
    assert_null(lock_kind_of("semaphores:pool", &name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_key_schema, setup_keys),
        cmocka_unit_test_setup(test_encode_acquire, setup_keys),
        cmocka_unit_test_setup(test_encode_renew_release, setup_keys),
        cmocka_unit_test_setup(test_encode_claim_leave, setup_keys),
        cmocka_unit_test_setup(test_encode_status_poke_force, setup_keys),
        cmocka_unit_test_setup(test_encode_reuse, setup_keys),
        cmocka_unit_test_setup(test_encode_extremes, setup_keys),
        cmocka_unit_test_setup(test_decode_acquire, setup_pool),
        cmocka_unit_test_setup(test_decode_renew_release, setup_pool),
        cmocka_unit_test_setup(test_decode_claim_leave, setup_pool),
        cmocka_unit_test_setup(test_decode_poke, setup_pool),
        cmocka_unit_test_setup(test_decode_status, setup_pool),
        cmocka_unit_test_setup(test_decode_force, setup_pool),
        cmocka_unit_test_setup(test_decode_unknown_shapes, setup_pool),
        cmocka_unit_test_setup(test_decode_frees_previous, setup_pool),
        cmocka_unit_test(test_kind_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
