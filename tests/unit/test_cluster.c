/* test_cluster.c -- unit tests for service/redis/cluster.c's hash slots:
 * Redis Cluster's CRC16 and its {hash tag} rule, checked against what
 * CLUSTER KEYSLOT answers (Redis 7.0), and the key schema's promise that
 * every key of a name is in the name's slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "redis/cluster.h"
#include "redis/keys.h"

static unsigned slot(const char *key)
{
    return cluster_key_slot(key, strlen(key));
}

static void test_slots_as_redis(void **state)
{
    (void)state;
    /* Each pair: CLUSTER KEYSLOT's answer on redis-server 7.0. */
    assert_int_equal(slot("123456789"), 12739);
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot(""), 0);
    /* A hash tag: only what is between the first { and the } after it. */
    assert_int_equal(slot("{user1000}.following"), 3443);
    assert_int_equal(slot("user1000"), 3443);
    assert_int_equal(slot("foo{bar}{zap}"), 5061);
    assert_int_equal(slot("foo{{bar}}zap"), 4015);
    /* An empty tag does not count: the whole key is hashed. */
    assert_int_equal(slot("foo{}{bar}"), 8363);
    assert_int_equal(slot("{}x"), 10595);
    /* A { without a } after it: the whole key. */
    assert_int_equal(slot("a{b"), cluster_key_slot("a{b", 3));
    /* Binary bytes and a length short of the NUL. */
    assert_int_equal(cluster_key_slot("foo-and-more", 3), 12182);
}

/* Every key of name under prefix is in one slot: that of the first key.
 * Returns that slot. */
static unsigned one_slot(const char *prefix, const char *name)
{
    static const enum key_kind kinds[] = {
        KEY_LOCK,         KEY_FENCE,     KEY_QUEUE,       KEY_WAITERS,
        KEY_DELAY,        KEY_DEMO,      KEY_SEM,         KEY_SEM_EXPIRY,
        KEY_SEM_FENCE,    KEY_SEM_QUEUE, KEY_SEM_WAITERS, KEY_SHARED,
        KEY_SHARED_EXPIRY};
    struct config cfg;
    char key[KEY_MAX + 32];
    size_t len;
    unsigned first;

    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.key_prefix, sizeof cfg.key_prefix, "%s", prefix);
    keys_init(&cfg);
    first = cluster_key_slot(key, key_for(key, KEY_LOCK, name));
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        len = key_for(key, kinds[k], name);
        assert_int_equal(cluster_key_slot(key, len), first);
        /* The liveness key: "<queue key>:alive:<instance>". */
        if (kinds[k] == KEY_QUEUE || kinds[k] == KEY_SEM_QUEUE) {
            len += (size_t)snprintf(key + len, sizeof key - len,
                                    ":alive:0123456789abcdef");
            assert_int_equal(cluster_key_slot(key, len), first);
        }
    }
    len = key_for_record(key, "sem:acq", name, "req-1");
    assert_int_equal(cluster_key_slot(key, len), first);
    len = key_for_record(key, "rel", name, "req-2");
    assert_int_equal(cluster_key_slot(key, len), first);
    return first;
}

static void test_keys_of_a_name_share_its_slot(void **state)
{
    static const char *const names[] = {"orders", "team/a.b:c-d_e", "x"};
    char tag[64];

    (void)state;
    for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
        snprintf(tag, sizeof tag, "{%s}", names[n]);
        /* The name is the hash tag: names spread over the slots. */
        assert_int_equal(one_slot("lockservice:", names[n]), slot(tag));
        assert_int_equal(one_slot("", names[n]), slot(tag));
        /* A prefix with braces of its own moves the tag, but every key of
         * a name still goes to one slot. */
        one_slot("app{x}:", names[n]);
        one_slot("app{", names[n]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots_as_redis),
        cmocka_unit_test(test_keys_of_a_name_share_its_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
