/* test_apikeys.c -- unit tests for service/http/auth.c: which key an
 * Authorization header carries (and the identity copied from it), what each
 * role may use (ROUTE_ADMIN routes included: the check admission makes for
 * them), and replacing the key set while other threads check keys against
 * it, as a SIGHUP does (run under AddressSanitizer by make check, a set
 * freed too early is a use-after-free there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "http/auth.h"

#define KEY_OPS "ops-0123456789abcdef-key"
#define KEY_APP "app-0123456789abcdef-key"
#define KEY_DASH "dash-0123456789abcdef-key"
#define KEY_NEW "new-0123456789abcdef-key"

static struct api_key key(const char *k, const char *name, enum api_role role,
                          const char *ns)
{
    struct api_key out;

    memset(&out, 0, sizeof(out));
    snprintf(out.key, sizeof(out.key), "%s", k);
    out.key_len = strlen(k);
    snprintf(out.name, sizeof(out.name), "%s", name);
    out.role = role;
    snprintf(out.ns, sizeof(out.ns), "%s", ns);
    return out;
}

static void test_roles(void **state)
{
    (void)state;
    /* read: GET routes only (HEAD is answered by GET routes). */
    assert_true(auth_role_allows(API_ROLE_READ, "GET", false));
    assert_false(auth_role_allows(API_ROLE_READ, "POST", false));
    assert_false(auth_role_allows(API_ROLE_READ, "PUT", false));
    assert_false(auth_role_allows(API_ROLE_READ, "DELETE", false));
    /* client: everything but admin-only routes. */
    assert_true(auth_role_allows(API_ROLE_CLIENT, "GET", false));
    assert_true(auth_role_allows(API_ROLE_CLIENT, "POST", false));
    assert_true(auth_role_allows(API_ROLE_CLIENT, "PUT", false));
    assert_false(auth_role_allows(API_ROLE_CLIENT, "DELETE", true));
    assert_false(auth_role_allows(API_ROLE_CLIENT, "GET", true));
    assert_false(auth_role_allows(API_ROLE_READ, "DELETE", true));
    assert_false(auth_role_allows(API_ROLE_READ, "GET", true));
    /* admin: everything. */
    assert_true(auth_role_allows(API_ROLE_ADMIN, "GET", false));
    assert_true(auth_role_allows(API_ROLE_ADMIN, "POST", false));
    assert_true(auth_role_allows(API_ROLE_ADMIN, "DELETE", true));
    assert_true(auth_role_allows(API_ROLE_ADMIN, "GET", true));
}

static void test_identify_and_replace(void **state)
{
    (void)state;
    struct api_key keys[3] = {
        key(KEY_OPS, "ops", API_ROLE_ADMIN, ""),
        key(KEY_APP, "app", API_ROLE_CLIENT, "tenant-a"),
        key(KEY_DASH, "dash", API_ROLE_READ, ""),
    };
    struct api_identity who;

    assert_int_equal(auth_init(keys, 3), 0);
    assert_true(auth_enabled());
    memset(&who, 0, sizeof(who));
    assert_true(auth_identify("Bearer " KEY_APP, &who));
    assert_string_equal(who.name, "app");
    assert_int_equal(who.role, API_ROLE_CLIENT);
    assert_string_equal(who.ns, "tenant-a");
    assert_true(auth_identify("bearer  " KEY_OPS, &who));
    assert_string_equal(who.name, "ops");
    assert_int_equal(who.role, API_ROLE_ADMIN);
    assert_string_equal(who.ns, "");
    assert_true(auth_identify("BEARER " KEY_DASH, &who));
    assert_int_equal(who.role, API_ROLE_READ);

    memset(&who, 0, sizeof(who));
    assert_false(auth_identify(NULL, &who));
    assert_false(auth_identify("", &who));
    assert_false(auth_identify(KEY_APP, &who));
    assert_false(auth_identify("Basic " KEY_APP, &who));
    assert_false(auth_identify("Bearer " KEY_APP "x", &who));
    assert_false(auth_identify("Bearer app-0123456789abcdef-ke", &who));
    assert_false(auth_identify("Bearer app", &who));
    assert_false(auth_identify("Bearer ", &who));
    assert_string_equal(who.name, ""); /* untouched on a miss */

    /* Edits to the caller's array after init change nothing. */
    keys[0].role = API_ROLE_READ;
    assert_true(auth_identify("Bearer " KEY_OPS, &who));
    assert_int_equal(who.role, API_ROLE_ADMIN);

    /* A replacement: app gone, ops demoted, a new key. */
    struct api_key next[2] = {
        key(KEY_OPS, "ops", API_ROLE_CLIENT, ""),
        key(KEY_NEW, "new", API_ROLE_CLIENT, "b"),
    };
    assert_int_equal(auth_replace(next, 2), 0);
    assert_false(auth_identify("Bearer " KEY_APP, &who));
    assert_false(auth_identify("Bearer " KEY_DASH, &who));
    assert_true(auth_identify("Bearer " KEY_NEW, &who));
    assert_string_equal(who.ns, "b");
    assert_true(auth_identify("Bearer " KEY_OPS, &who));
    assert_int_equal(who.role, API_ROLE_CLIENT);
    assert_int_equal(auth_replace(next, 0), -1); /* never an empty set */
    assert_true(auth_identify("Bearer " KEY_NEW, &who));
    auth_free();
    assert_false(auth_enabled());
    assert_false(auth_identify("Bearer " KEY_NEW, &who));
}

static void test_keys_off(void **state)
{
    (void)state;
    struct api_identity who;

    assert_int_equal(auth_init(NULL, 0), 0);
    assert_false(auth_enabled());
    assert_false(auth_identify("Bearer " KEY_APP, &who));
    /* No reload can turn keys on. */
    struct api_key one = key(KEY_APP, "app", API_ROLE_CLIENT, "");
    assert_int_equal(auth_replace(&one, 1), -1);
    assert_false(auth_enabled());
    auth_free();
}

/* Checkers on several threads while the set is replaced under them: each
 * check answers from a whole set, the old one or the new one. */
#define CHECKERS 4
#define REPLACEMENTS 2000

static atomic_bool stop_checking;

static void *checker(void *arg)
{
    unsigned long *bad = arg;
    struct api_identity who;

    while (!atomic_load(&stop_checking)) {
        /* OPS is in every set, with the role of its generation; APP and
         * NEW alternate. */
        if (!auth_identify("Bearer " KEY_OPS, &who) ||
            strcmp(who.name, "ops") != 0)
            (*bad)++;
        bool app = auth_identify("Bearer " KEY_APP, &who);
        if (app &&
            (strcmp(who.name, "app") != 0 || strcmp(who.ns, "tenant-a") != 0))
            (*bad)++;
        bool fresh = auth_identify("Bearer " KEY_NEW, &who);
        if (fresh && (strcmp(who.name, "new") != 0 || strcmp(who.ns, "b") != 0))
            (*bad)++;
    }
    auth_thread_done();
    return NULL;
}

static void test_replace_while_checking(void **state)
{
    (void)state;
    struct api_key a[2] = {
        key(KEY_OPS, "ops", API_ROLE_ADMIN, ""),
        key(KEY_APP, "app", API_ROLE_CLIENT, "tenant-a"),
    };
    struct api_key b[2] = {
        key(KEY_NEW, "new", API_ROLE_CLIENT, "b"),
        key(KEY_OPS, "ops", API_ROLE_READ, ""),
    };
    pthread_t threads[CHECKERS];
    unsigned long bad[CHECKERS] = {0};
    struct api_identity who;

    assert_int_equal(auth_init(a, 2), 0);
    atomic_store(&stop_checking, false);
    for (int i = 0; i < CHECKERS; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, checker, &bad[i]),
                         0);
    for (int i = 0; i < REPLACEMENTS; i++)
        assert_int_equal(auth_replace(i % 2 ? a : b, 2), 0);
    atomic_store(&stop_checking, true);
    for (int i = 0; i < CHECKERS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(bad[i], 0);
    }
    /* The last replacement was a: APP works, NEW does not. */
    assert_true(auth_identify("Bearer " KEY_APP, &who));
    assert_false(auth_identify("Bearer " KEY_NEW, &who));
    auth_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_identify_and_replace),
        cmocka_unit_test(test_keys_off),
        cmocka_unit_test(test_replace_while_checking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
