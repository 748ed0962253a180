/* test_locks.c -- the lock API against a real redis-server: acquire, renew,
 * release, reentrancy, status, fences (across release, expiry, FLUSHALL and
 * a Redis restart), key hygiene, HEAD, health and the served contract. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct redis_proc redis;
static struct svc_proc svc;

/* Copies the token of a 200 acquire into buf ("" otherwise). */
static void take_token(const struct http_resp *r, char *buf, size_t len)
{
    const char *t = jstr(r, "token");
    snprintf(buf, len, "%s", t ? t : "");
}

static void test_acquire_shape(void)
{
    struct http_resp r;
    char tok[64], tok2[64];

    http(&r, svc.url, "POST", "/v1/locks/shape-default/acquire", NULL, NULL);
    t_ok(r.status == 200, "acquire with no body -> 200 (got %ld %s)", r.status,
         r.body);
    t_ok(strncmp(r.content_type, "application/json", 16) == 0,
         "acquire -> Content-Type application/json (got '%s')", r.content_type);
    t_ok(jstr(&r, "name") && strcmp(jstr(&r, "name"), "shape-default") == 0,
         "acquire -> name echoed");
    t_ok(token_like(jstr(&r, "token")),
         "acquire -> token is 32 lowercase hex digits (%s)",
         jstr(&r, "token") ? jstr(&r, "token") : "(none)");
    long long fence = jint(&r, "fence");
    t_ok(fence > 0 && fence < (1LL << 53), "acquire -> 0 < fence < 2^53 (%lld)",
         fence);
    t_ok(jint(&r, "ttl_ms") == 30000, "acquire -> default ttl_ms 30000 (%lld)",
         jint(&r, "ttl_ms"));
    t_ok(jint(&r, "count") == 1, "acquire -> count 1");
    t_ok(jstr(&r, "owner") && strcmp(jstr(&r, "owner"), "") == 0,
         "acquire -> owner defaults to \"\"");
    take_token(&r, tok, sizeof tok);
    http_resp_free(&r);

    http(&r, svc.url, "POST", "/v1/locks/shape-empty/acquire", "{}", NULL);
    t_ok(r.status == 200 && token_like(jstr(&r, "token")),
         "acquire with {} -> 200");
    take_token(&r, tok2, sizeof tok2);
    t_ok(strcmp(tok, tok2) != 0, "two grants get different tokens");
    http_resp_free(&r);

    http(&r, svc.url, "POST", "/v1/locks/shape-opts/acquire",
         "{\"ttl_ms\":5000,\"owner\":\"alice@host-1\"}", NULL);
    t_ok(r.status == 200 && jint(&r, "ttl_ms") == 5000,
         "acquire with ttl_ms 5000 -> ttl_ms 5000 (%ld %s)", r.status, r.body);
    t_ok(jstr(&r, "owner") && strcmp(jstr(&r, "owner"), "alice@host-1") == 0,
         "acquire with owner -> owner echoed");
    http_resp_free(&r);
}

/* owner is up to 128 characters, not bytes: 128 three-byte characters come
 * back whole from acquire and status. */
static void test_owner_characters(void)
{
    char owner[128 * 3 + 1], body[512];
    struct http_resp r;

    for (int i = 0; i < 128; i++)
        memcpy(owner + 3 * i, "\xe2\x82\xac", 3); /* U+20AC, the euro sign */
    owner[128 * 3] = '\0';
    snprintf(body, sizeof body, "{\"ttl_ms\":60000,\"owner\":\"%s\"}", owner);
    http(&r, svc.url, "POST", "/v1/locks/owner-utf8/acquire", body, NULL);
    t_ok(r.status == 200 && jstr(&r, "owner") &&
             strcmp(jstr(&r, "owner"), owner) == 0,
         "acquire: a 128-character owner of 3-byte characters comes back "
         "whole (%ld)",
         r.status);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/owner-utf8", NULL, NULL);
    t_ok(r.status == 200 && jstr(&r, "owner") &&
             strcmp(jstr(&r, "owner"), owner) == 0,
         "status: the same owner, whole (%ld)", r.status);
    http_resp_free(&r);
}

static void test_held_and_reentrant(void)
{
    struct http_resp r;
    char tok[64], buf[64];

    http(&r, svc.url, "POST", "/v1/locks/orders/acquire",
         "{\"ttl_ms\":20000,\"owner\":\"worker-7\"}", NULL);
    t_ok(r.status == 200, "acquire orders -> 200");
    take_token(&r, tok, sizeof tok);
    long long fence = jint(&r, "fence");
    http_resp_free(&r);

    http(&r, svc.url, "POST", "/v1/locks/orders/acquire", "{}", NULL);
    t_ok(problem_is(&r, 409, "lock_held"), "second acquire -> 409 lock_held");
    long long ra = jint(&r, "retry_after_ms");
    t_ok(ra > 0 && ra <= 20000,
         "lock_held carries retry_after_ms in "
         "(0, 20000] (%lld)",
         ra);
    const char *h = http_header(&r, "Retry-After", buf, sizeof buf);
    long want = ra > 0 ? (long)((ra + 999) / 1000) : 1;
    if (want < 1)
        want = 1;
    t_ok(h && strtol(h, NULL, 10) == want,
         "lock_held has Retry-After = ceil(retry_after_ms/1000) (%s, want %ld)",
         h ? h : "(none)", want);
    t_ok(strstr(r.body, tok) == NULL, "lock_held body does not leak the "
                                      "holder's token");
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/orders/acquire", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && jint(&r, "count") == 2,
         "reentrant acquire with token -> 200 count 2 (%ld %s)", r.status,
         r.body);
    t_ok(jint(&r, "fence") == fence, "reentrant acquire keeps the fence");
    t_ok(jstr(&r, "token") && strcmp(jstr(&r, "token"), tok) == 0,
         "reentrant acquire returns the same token");
    t_ok(jstr(&r, "owner") && strcmp(jstr(&r, "owner"), "worker-7") == 0,
         "reentrant acquire keeps the owner");
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/locks/orders", NULL, NULL);
    t_ok(r.status == 200 && r.json &&
             json_is_true(json_object_get(r.json, "held")),
         "status -> held true");
    t_ok(jstr(&r, "owner") && strcmp(jstr(&r, "owner"), "worker-7") == 0 &&
             jint(&r, "fence") == fence && jint(&r, "count") == 2,
         "status -> owner, fence, count 2 (%s)", r.body);
    /* The reentrant acquire reset the TTL to its own (default) ttl_ms. */
    t_ok(jint(&r, "ttl_ms") > 20000 && jint(&r, "ttl_ms") <= 30000,
         "status -> ttl_ms reset by the reentrant acquire, in (20000, 30000] "
         "(%lld)",
         jint(&r, "ttl_ms"));
    t_ok(json_object_get(r.json, "token") == NULL && !strstr(r.body, tok),
         "status never contains the token (raw body searched)");
    t_ok(jstr(&r, "name") && strcmp(jstr(&r, "name"), "orders") == 0,
         "status -> name");
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/orders/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && r.json &&
             json_is_true(json_object_get(r.json, "released")) &&
             jint(&r, "count") == 1,
         "first release -> 200 released true count 1 (%s)", r.body);
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/locks/orders", NULL, NULL);
    t_ok(r.json && json_is_true(json_object_get(r.json, "held")) &&
             jint(&r, "count") == 1,
         "after one release the lock is still held with count 1");
    http_resp_free(&r);

    http(&r, svc.url, "POST", "/v1/locks/orders/acquire", "{}", NULL);
    t_ok(problem_is(&r, 409, "lock_held"),
         "lock with count 1 still refuses others");
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/orders/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && jint(&r, "count") == 0,
         "second release -> count 0 (%s)", r.body);
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/locks/orders", NULL, NULL);
    t_ok(r.status == 200 && r.json &&
             json_is_false(json_object_get(r.json, "held")) &&
             json_object_size(r.json) == 2,
         "released lock -> {\"name\",\"held\":false} (%s)", r.body);
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/orders/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "not_held"), "release of a free lock -> 409 "
                                          "not_held");
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/orders/renew", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "not_held"), "renew of a free lock -> 409 "
                                          "not_held");
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/orders/acquire", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "not_owner"),
         "acquire with a stale token on a free lock -> 409 not_owner");
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/locks/orders", NULL, NULL);
    t_ok(r.json && json_is_false(json_object_get(r.json, "held")),
         "acquire with a stale token did not take the lock");
    http_resp_free(&r);
}

static void test_renew_and_wrong_token(void)
{
    struct http_resp r;
    char tok[64];
    const char *other = "0123456789abcdef0123456789abcdef";

    http(&r, svc.url, "POST", "/v1/locks/renewable/acquire",
         "{\"ttl_ms\":3000}", NULL);
    take_token(&r, tok, sizeof tok);
    long long fence = jint(&r, "fence");
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/renewable/renew", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && jint(&r, "ttl_ms") == 3000,
         "renew without ttl_ms -> ttl the lease was granted with (%ld %s)",
         r.status, r.body);
    t_ok(jint(&r, "fence") == fence && jstr(&r, "token") &&
             strcmp(jstr(&r, "token"), tok) == 0 && jint(&r, "count") == 1,
         "renew -> same token, fence, count");
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/renewable/renew", NULL,
          "{\"token\":\"%s\",\"ttl_ms\":20000}", tok);
    t_ok(r.status == 200 && jint(&r, "ttl_ms") == 20000,
         "renew with ttl_ms 20000 -> 200 ttl_ms 20000 (%s)", r.body);
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/locks/renewable", NULL, NULL);
    t_ok(jint(&r, "ttl_ms") > 15000 && jint(&r, "ttl_ms") <= 20000,
         "status ttl_ms grew past the original 3000 (%lld)",
         jint(&r, "ttl_ms"));
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/renewable/renew", NULL,
          "{\"token\":\"%s\"}", other);
    t_ok(problem_is(&r, 409, "not_owner"), "renew with a wrong token -> 409 "
                                           "not_owner");
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/renewable/release", NULL,
          "{\"token\":\"%s\"}", other);
    t_ok(problem_is(&r, 409, "not_owner"),
         "release with a wrong token -> 409 not_owner");
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/renewable/acquire", NULL,
          "{\"token\":\"%s\"}", other);
    t_ok(problem_is(&r, 409, "not_owner"),
         "acquire with another lease's token on a held lock -> not_owner");
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/locks/renewable", NULL, NULL);
    t_ok(r.json && json_is_true(json_object_get(r.json, "held")) &&
             jint(&r, "fence") == fence && jint(&r, "count") == 1 &&
             jint(&r, "ttl_ms") > 15000,
         "wrong tokens left the lock unchanged (%s)", r.body);
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/renewable/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && jint(&r, "count") == 0, "release -> count 0");
    http_resp_free(&r);
}

/* Acquires name with body, returns the fence (or -1) and fills tok. */
static long long grant(const char *name, const char *body, char *tok,
                       size_t len)
{
    struct http_resp r;
    char path[256];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    http(&r, svc.url, "POST", path, body, NULL);
    long long f = r.status == 200 ? jint(&r, "fence") : -1;
    if (tok)
        take_token(&r, tok, len);
    if (r.status != 200)
        t_diag("acquire %s -> %ld %s", name, r.status, r.body);
    http_resp_free(&r);
    return f;
}

static void release(const char *name, const char *tok)
{
    struct http_resp r;
    char path[256];
    snprintf(path, sizeof path, "/v1/locks/%s/release", name);
    httpf(&r, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}", tok);
    http_resp_free(&r);
}

static void test_fences(void)
{
    char tok[64];
    struct http_resp r;

    long long f1 = grant("fenced", "{}", tok, sizeof tok);
    release("fenced", tok);
    long long f2 = grant("fenced", "{}", tok, sizeof tok);
    t_ok(f1 > 0 && f2 > f1, "fence increases across release (%lld -> %lld)", f1,
         f2);
    release("fenced", tok);

    long long f3 = grant("fenced", "{\"ttl_ms\":50}", tok, sizeof tok);
    sleep_ms(200);
    http(&r, svc.url, "GET", "/v1/locks/fenced", NULL, NULL);
    t_ok(r.json && json_is_false(json_object_get(r.json, "held")),
         "a ttl_ms 50 lease has expired after 200 ms");
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/fenced/renew", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "not_held"), "renew of an expired lease -> 409 "
                                          "not_held");
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/fenced/acquire", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "not_owner"),
         "acquire with an expired lease's token -> 409 not_owner");
    http_resp_free(&r);
    long long f4 = grant("fenced", "{}", tok, sizeof tok);
    t_ok(f3 > f2 && f4 > f3, "fence increases across expiry (%lld -> %lld)", f3,
         f4);

    char *o = redis_cli(&redis, "FLUSHALL");
    t_ok(o && strstr(o, "OK"), "redis-cli FLUSHALL");
    free(o);
    long long f5 = grant("fenced", "{}", tok, sizeof tok);
    t_ok(f5 > f4, "fence increases across FLUSHALL (%lld -> %lld)", f4, f5);

    t_ok(redis_restart(&redis) == 0, "redis restarted without persistence");
    long long f6 = -1;
    double end = now_ms() + 3000 * time_scale();
    while (f6 < 0 && now_ms() < end) {
        http(&r, svc.url, "POST", "/v1/locks/fenced/acquire", "{}", NULL);
        if (r.status == 200)
            f6 = jint(&r, "fence");
        http_resp_free(&r);
        if (f6 < 0)
            sleep_ms(50);
    }
    t_ok(f6 > f5,
         "fence increases across a Redis restart that lost its "
         "data (%lld -> %lld)",
         f5, f6);
    t_ok(f6 > 0 && f6 < (1LL << 53), "fence stays below 2^53 (%lld)", f6);
}

/* Counts the keys without a TTL and the keys whose name contains any of
 * names; returns the number of keys, or -1. */
static int scan_keys(int *no_ttl, const char *const *names, int *named_no_ttl)
{
    char *keys = redis_cli(&redis, "--scan");
    if (!keys)
        return -1;
    int total = 0;
    *no_ttl = 0;
    *named_no_ttl = 0;
    for (char *k = keys, *nl; k && *k; k = nl ? nl + 1 : NULL) {
        nl = strchr(k, '\n');
        if (nl)
            *nl = '\0';
        if (!*k)
            continue;
        total++;
        char args[600];
        snprintf(args, sizeof args, "TTL %s", k);
        char *ttl = redis_cli(&redis, args);
        if (ttl && strtol(ttl, NULL, 10) == -1) {
            (*no_ttl)++;
            for (int i = 0; names[i]; i++)
                if (strstr(k, names[i])) {
                    (*named_no_ttl)++;
                    t_diag("key without TTL: %s", k);
                }
        }
        free(ttl);
    }
    free(keys);
    return total;
}

static void test_key_hygiene(void)
{
    const char *names[] = {"hyg-a", "hyg-b", "hyg-c", "hyg-d", NULL};
    char tok[64];
    struct http_resp r;

    /* A few of every operation: plain, reentrant, renew, release, expiry. */
    for (int i = 0; names[i]; i++) {
        grant(names[i], "{\"ttl_ms\":60000}", tok, sizeof tok);
        char path[128];
        snprintf(path, sizeof path, "/v1/locks/%s/acquire", names[i]);
        httpf(&r, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}", tok);
        http_resp_free(&r);
        snprintf(path, sizeof path, "/v1/locks/%s/renew", names[i]);
        httpf(&r, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}", tok);
        http_resp_free(&r);
        if (i % 2 == 0) {
            release(names[i], tok);
            release(names[i], tok);
        }
    }
    int no_ttl0, named0;
    int total0 = scan_keys(&no_ttl0, names, &named0);
    t_ok(total0 > 0, "redis holds the service's keys (%d)", total0);
    t_ok(named0 == 0, "no key of a lock name lacks a TTL");

    /* Twenty more distinct names must not add any key without a TTL. */
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "hyg-many-%d", i);
        grant(name, "{\"ttl_ms\":60000}", tok, sizeof tok);
        release(name, tok);
    }
    int no_ttl1, named1;
    scan_keys(&no_ttl1, names, &named1);
    t_ok(no_ttl1 == no_ttl0,
         "keys without TTL do not grow with distinct lock names (%d -> %d)",
         no_ttl0, no_ttl1);

    char *keys = redis_cli(&redis, "--scan");
    bool prefixed = keys != NULL;
    for (char *k = keys; k && *k;) {
        char *nl = strchr(k, '\n');
        if (nl)
            *nl = '\0';
        if (*k && strncmp(k, "lockservice:", 12) != 0) {
            prefixed = false;
            t_diag("key outside the default prefix: %s", k);
        }
        k = nl ? nl + 1 : NULL;
    }
    free(keys);
    t_ok(prefixed, "every key is under the default prefix lockservice:");
}

static void test_head_health_contract(void)
{
    struct http_resp r;
    const char *get_routes[] = {"/v1/locks/head-me", "/healthz",      "/readyz",
                                "/metrics",          "/openapi.yaml", NULL};
    for (int i = 0; get_routes[i]; i++) {
        http(&r, svc.url, "HEAD", get_routes[i], NULL, NULL);
        t_ok(r.status == 200 && r.len == 0, "HEAD %s -> 200, no body (%ld)",
             get_routes[i], r.status);
        http_resp_free(&r);
    }

    http(&r, svc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200 && jstr(&r, "status") &&
             strcmp(jstr(&r, "status"), "ok") == 0,
         "GET /healthz -> 200 {\"status\":\"ok\"} (%s)", r.body);
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/readyz", NULL, NULL);
    t_ok(r.status == 200 && jstr(&r, "status") &&
             strcmp(jstr(&r, "status"), "ready") == 0,
         "GET /readyz -> 200 {\"status\":\"ready\"} (%s)", r.body);
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/openapi.yaml", NULL, NULL);
    t_ok(r.status == 200, "GET /openapi.yaml -> 200");
    t_ok(strncmp(r.content_type, "application/yaml", 16) == 0,
         "openapi.yaml Content-Type application/yaml (got '%s')",
         r.content_type);
    t_ok(r.body && strncmp(r.body, "openapi:", 8) == 0,
         "openapi.yaml body starts with \"openapi:\"");
    http_resp_free(&r);

    char allow[128];
    http(&r, svc.url, "OPTIONS", "/v1/locks/x/acquire", NULL, NULL);
    const char *a = http_header(&r, "Allow", allow, sizeof allow);
    t_ok(r.status == 204 && a && strstr(a, "POST"),
         "OPTIONS on a known route -> 204 with Allow (%ld, %s)", r.status,
         a ? a : "(none)");
    http_resp_free(&r);
}

static void test_token_not_logged(void)
{
    char tok[64];
    long long f = grant("logged", "{}", tok, sizeof tok);
    release("logged", tok);
    FILE *fp = fopen(svc.log, "r");
    bool found = false;
    char line[4096];
    size_t lines = 0;
    while (fp && fgets(line, sizeof line, fp)) {
        lines++;
        if (*tok && strstr(line, tok))
            found = true;
    }
    if (fp)
        fclose(fp);
    t_ok(f > 0 && lines > 1 && !found,
         "the service log (%zu lines) never contains a token", lines);
}

int main(void)
{
    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, NULL) != 0) {
        t_ok(false, "start redis-server and lockservice");
        return t_done();
    }
    test_acquire_shape();
    test_owner_characters();
    test_held_and_reentrant();
    test_renew_and_wrong_token();
    test_key_hygiene();
    test_head_health_contract();
    test_token_not_logged();
    test_fences();
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
