/* test_stats.c -- GET /v1/stats/hot (the names this instance saw most
 * contended over the last minute) and the lease metrics: the wait-time
 * histogram, lease endings by cause, renew and release outcomes, the
 * waiters limit gauge. Real redis-server, real lockservice. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEY_ADMIN "stats-admin-key-0123456789abcdef"
#define KEY_TENANT "stats-tenant-key-0123456789abcde"

static struct redis_proc redis;
static struct svc_proc svc;
static char tmpdir[256], keyfile[300];
static const char *const admin[] = {"Authorization: Bearer " KEY_ADMIN, NULL};
static const char *const tenant[] = {"Authorization: Bearer " KEY_TENANT, NULL};

/* Acquires name with body; returns the status and copies the token. */
static long acquire(const char *kind, const char *name, const char *body,
                    const char *const *h, char *token)
{
    struct http_resp r;
    char path[160];
    long st;

    snprintf(path, sizeof path, "/v1/%s/%s/acquire", kind, name);
    http(&r, svc.url, "POST", path, body, h);
    st = r.status;
    if (token != NULL)
        snprintf(token, 40, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);
    return st;
}

static long call(const char *kind, const char *name, const char *op,
                 const char *token, const char *const *h)
{
    struct http_resp r;
    char path[160];
    long st;

    snprintf(path, sizeof path, "/v1/%s/%s/%s", kind, name, op);
    httpf(&r, svc.url, "POST", path, h, "{\"token\":\"%s\"}", token);
    st = r.status;
    http_resp_free(&r);
    return st;
}

/* The entry of name in a /v1/stats/hot answer, or NULL. */
static json_t *hot_entry(const struct http_resp *r, const char *name)
{
    json_t *names = json_object_get(r->json, "names"), *e;
    size_t i;

    json_array_foreach(names, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return e;
    }
    return NULL;
}

static long long member(json_t *e, const char *key)
{
    return json_integer_value(json_object_get(e, key));
}

static void test_hot(void)
{
    char holder[40];
    struct http_resp r;

    /* A lease of 400 ms, one waiter granted when it runs out, three
     * refused at once. */
    acquire("locks", "hot-a", "{\"ttl_ms\":400}", admin, holder);
    t_ok(acquire("locks", "hot-a", "{\"wait_ms\":5000}", admin, NULL) == 200,
         "a waiter is granted when the 400 ms lease runs out");
    for (int i = 0; i < 3; i++)
        acquire("locks", "hot-a", "{}", admin, NULL);
    /* A name contended once, and one never contended. */
    acquire("locks", "hot-b", "{\"ttl_ms\":60000}", admin, NULL);
    acquire("locks", "hot-b", "{}", admin, NULL);
    acquire("locks", "cold", "{\"ttl_ms\":60000}", admin, NULL);

    http(&r, svc.url, "GET", "/v1/stats/hot", NULL, admin);
    json_t *a = hot_entry(&r, "hot-a"), *b = hot_entry(&r, "hot-b");
    json_t *first = json_array_get(json_object_get(r.json, "names"), 0);
    t_ok(r.status == 200 && member(r.json, "window_s") == 60 && first != NULL &&
             strcmp(json_string_value(json_object_get(first, "name")),
                    "hot-a") == 0,
         "/v1/stats/hot -> 200, the most contended name first (%ld %s)",
         r.status, r.body);
    t_ok(a != NULL && member(a, "waits") == 4 && member(a, "grants") == 1 &&
             member(a, "wait_ms_total") >= 300 &&
             member(a, "waits_error") == 0 &&
             strcmp(json_string_value(json_object_get(a, "kind")), "lock") == 0,
         "hot-a: 4 contended acquires, 1 granted after waiting >= 300 ms");
    t_ok(b != NULL && member(b, "waits") == 1 && member(b, "grants") == 0,
         "hot-b: 1 contended acquire, refused");
    t_ok(hot_entry(&r, "cold") == NULL,
         "an uncontended name is not in the table");
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/stats/hot?limit=1", NULL, admin);
    t_ok(r.status == 200 &&
             json_array_size(json_object_get(r.json, "names")) == 1,
         "?limit=1 -> one name (%s)", r.body);
    http_resp_free(&r);

    /* A semaphore's contention is its own row. */
    acquire("semaphores", "hot-s", "{\"limit\":1,\"ttl_ms\":60000}", admin,
            NULL);
    acquire("semaphores", "hot-s", "{\"limit\":1}", admin, NULL);
    http(&r, svc.url, "GET", "/v1/stats/hot?limit=100", NULL, admin);
    json_t *s = hot_entry(&r, "hot-s");
    t_ok(s != NULL &&
             strcmp(json_string_value(json_object_get(s, "kind")),
                    "semaphore") == 0 &&
             member(s, "waits") == 1,
         "a refused semaphore acquire is counted as kind semaphore");
    http_resp_free(&r);

    /* More contended names than a slot tracks: the table stays bounded
     * and the hottest name stays on top. */
    for (int i = 0; i < 150; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%d", i);
        acquire("locks", name, "{\"ttl_ms\":60000}", admin, NULL);
        acquire("locks", name, "{}", admin, NULL);
    }
    http(&r, svc.url, "GET", "/v1/stats/hot?limit=100", NULL, admin);
    first = json_array_get(json_object_get(r.json, "names"), 0);
    t_ok(r.status == 200 &&
             json_array_size(json_object_get(r.json, "names")) <= 100 &&
             first != NULL &&
             strcmp(json_string_value(json_object_get(first, "name")),
                    "hot-a") == 0,
         "after 150 more contended names: at most 100 listed, hot-a first "
         "(%zu listed)",
         json_array_size(json_object_get(r.json, "names")));
    http_resp_free(&r);
}

static void test_bad_queries(void)
{
    static const char *const bad[] = {
        "/v1/stats/hot?limit=0",   "/v1/stats/hot?limit=101",
        "/v1/stats/hot?limit=abc", "/v1/stats/hot?limit=",
        "/v1/stats/hot?limit=-1",  "/v1/stats/hot?limit=1&limit=2",
        "/v1/stats/hot?top=5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_resp r;
        http(&r, svc.url, "GET", bad[i], NULL, admin);
        t_ok(problem_is(&r, 400, "invalid_field"),
             "GET %s -> 400 invalid_field (%ld %s)", bad[i], r.status, r.body);
        http_resp_free(&r);
    }
    struct http_resp r;
    http(&r, svc.url, "GET", "/v1/stats/hot", NULL, NULL);
    t_ok(problem_is(&r, 401, "unauthorized"),
         "without a key -> 401 unauthorized (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/stats/hot", "{}", admin);
    t_ok(r.status == 405, "POST -> 405 (%ld)", r.status);
    http_resp_free(&r);
}

static void test_namespace(void)
{
    struct http_resp r;

    acquire("locks", "tenant-lock", "{\"ttl_ms\":60000}", tenant, NULL);
    acquire("locks", "tenant-lock", "{}", tenant, NULL);
    http(&r, svc.url, "GET", "/v1/stats/hot?limit=100", NULL, tenant);
    size_t n = json_array_size(json_object_get(r.json, "names"));
    t_ok(r.status == 200 && n == 1 && hot_entry(&r, "tenant-lock") != NULL,
         "a key with a namespace sees its own names only, as it knows them "
         "(%zu: %s)",
         n, r.body);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/stats/hot?limit=100", NULL, admin);
    t_ok(r.status == 200 && hot_entry(&r, "acme/tenant-lock") == NULL &&
             hot_entry(&r, "tenant-lock") == NULL &&
             hot_entry(&r, "hot-a") != NULL,
         "a key without one sees the names outside every namespace only");
    http_resp_free(&r);
}

static double m(const char *name, const char *l1, const char *l2)
{
    const char *labels[] = {l1, l2, NULL};
    return metric_get(svc.url, name, labels);
}

static void test_metrics(void)
{
    const char *lock = "kind=\"lock\"";
    char t1[40], t2[40];
    double waited0 =
        m("lockservice_wait_seconds_count", lock, "outcome=\"granted\"");
    double timeout0 =
        m("lockservice_wait_seconds_count", lock, "outcome=\"timeout\"");
    double released0 =
        m("lockservice_lease_endings_total", lock, "cause=\"released\"");
    double expired0 =
        m("lockservice_lease_endings_total", lock, "cause=\"expired\"");
    double lost0 = m("lockservice_lease_endings_total", lock, "cause=\"lost\"");
    double forced0 =
        m("lockservice_lease_endings_total", lock, "cause=\"forced\"");
    double rel_ok0 = m("lockservice_release_total", lock, "outcome=\"ok\"");
    double rel_held0 = m("lockservice_release_total", lock, "outcome=\"held\"");
    double renew_ok0 = m("lockservice_renew_total", lock, "outcome=\"ok\"");
    double hold0 = m("lockservice_hold_seconds_count", lock, NULL);
    double hold_sum0 = m("lockservice_hold_seconds_sum", lock, NULL);

    /* A wait that times out, one granted. */
    acquire("locks", "m-a", "{\"ttl_ms\":300}", admin, t1);
    acquire("locks", "m-a", "{\"wait_ms\":100}", admin, NULL);
    acquire("locks", "m-a", "{\"wait_ms\":3000}", admin, t2);
    t_ok(m("lockservice_wait_seconds_count", lock, "outcome=\"timeout\"") ==
                 timeout0 + 1 &&
             m("lockservice_wait_seconds_count", lock, "outcome=\"granted\"") ==
                 waited0 + 1,
         "wait_seconds counts one timed-out and one granted wait");
    /* Renewed, re-entered, released twice. */
    call("locks", "m-a", "renew", t2, admin);
    struct http_resp r;
    httpf(&r, svc.url, "POST", "/v1/locks/m-a/acquire", admin,
          "{\"token\":\"%s\"}", t2);
    http_resp_free(&r);
    call("locks", "m-a", "release", t2, admin);
    call("locks", "m-a", "release", t2, admin);
    t_ok(m("lockservice_renew_total", lock, "outcome=\"ok\"") == renew_ok0 + 1,
         "renew_total{outcome=ok} counts the renew");
    t_ok(m("lockservice_release_total", lock, "outcome=\"held\"") ==
                 rel_held0 + 1 &&
             m("lockservice_release_total", lock, "outcome=\"ok\"") ==
                 rel_ok0 + 1 &&
             m("lockservice_lease_endings_total", lock, "cause=\"released\"") ==
                 released0 + 1,
         "a re-entered lease's two releases: one held, one ok, one lease "
         "ending released");
    t_ok(m("lockservice_hold_seconds_count", lock, NULL) == hold0 + 1 &&
             m("lockservice_hold_seconds_sum", lock, NULL) >= hold_sum0,
         "hold_seconds observes the lease its last release ended, once");
    /* The first holder comes back after its lease ran out. */
    t_ok(call("locks", "m-a", "release", t1, admin) == 409 &&
             m("lockservice_lease_endings_total", lock, "cause=\"expired\"") ==
                 expired0 + 1,
         "a release after the lease ran out counts an expired lease");
    acquire("locks", "m-b", "{\"ttl_ms\":200}", admin, t1);
    usleep(400000);
    t_ok(call("locks", "m-b", "renew", t1, admin) == 409 &&
             m("lockservice_lease_endings_total", lock, "cause=\"lost\"") ==
                 lost0 + 1,
         "a renew that finds its lease gone counts a lost lease");
    acquire("locks", "m-c", "{\"ttl_ms\":60000}", admin, NULL);
    http(&r, svc.url, "DELETE", "/v1/locks/m-c", NULL, admin);
    http_resp_free(&r);
    t_ok(m("lockservice_lease_endings_total", lock, "cause=\"forced\"") ==
             forced0 + 1,
         "a force release counts a forced lease");
    t_ok(m("lockservice_waiters_max", NULL, NULL) == 77,
         "lockservice_waiters_max is --max-waiters (77)");
    const char *sem = "kind=\"semaphore\"";
    double sem_rel0 = m("lockservice_release_total", sem, "outcome=\"ok\"");
    double sem_hold0 = m("lockservice_hold_seconds_count", sem, NULL);
    acquire("semaphores", "m-s", "{\"limit\":2}", admin, t1);
    call("semaphores", "m-s", "release", t1, admin);
    t_ok(m("lockservice_release_total", sem, "outcome=\"ok\"") ==
                 sem_rel0 + 1 &&
             m("lockservice_hold_seconds_count", sem, NULL) == sem_hold0 + 1,
         "a semaphore release counts under kind semaphore, and its hold "
         "time");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lockservice-stats-XXXXXX",
             t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        t_ok(false, "mkdtemp");
        return t_done();
    }
    snprintf(keyfile, sizeof keyfile, "%s/api.keys", tmpdir);
    FILE *f = fopen(keyfile, "w");
    if (f == NULL) {
        t_ok(false, "write %s", keyfile);
        return t_done();
    }
    fputs(KEY_ADMIN " name=ops role=admin\n" KEY_TENANT
                    " name=acme-app namespace=acme\n",
          f);
    fclose(f);
    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *args[] = {"--api-keys-file", keyfile, "--max-waiters", "77",
                          NULL};
    if (svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "lockservice starts");
        redis_stop(&redis);
        return t_done();
    }
    test_hot();
    test_bad_queries();
    test_namespace();
    test_metrics();
    t_ok(svc_stop(&svc) == 0, "service shuts down cleanly");
    redis_stop(&redis);
    unlink(keyfile);
    rmdir(tmpdir);
    return t_done();
}
