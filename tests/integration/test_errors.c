/* test_errors.c -- every row of the error table through the real server:
 * status, application/problem+json and code, and after each bad request the
 * lock it aimed at is unchanged. Also 401 (API keys), 503 (no Redis, and a
 * Redis that stops answering), 429 (too many waiters), 409 hold_limit. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct redis_proc redis;
static struct svc_proc svc;

/* The lock every bad request aims at, and what it must still look like. */
static char held_token[64];
static long long held_fence;

static bool lock_unchanged(void)
{
    struct http_resp r;
    http(&r, svc.url, "GET", "/v1/locks/target", NULL, NULL);
    bool ok = r.status == 200 && r.json &&
              json_is_true(json_object_get(r.json, "held")) &&
              jint(&r, "fence") == held_fence && jint(&r, "count") == 1 &&
              jstr(&r, "owner") && strcmp(jstr(&r, "owner"), "keeper") == 0;
    if (!ok)
        t_diag("lock 'target' changed: %ld %s", r.status, r.body);
    http_resp_free(&r);
    return ok;
}

/* Sends one request and checks the problem it gets and the lock after. */
static void expect(const char *method, const char *path, const char *body,
                   const char *const *headers, long status, const char *code,
                   const char *what)
{
    struct http_resp r;
    http(&r, svc.url, method, path, body, headers);
    bool ok = problem_is(&r, status, code);
    t_ok(ok && lock_unchanged(), "%s -> %ld %s, lock unchanged", what, status,
         code);
    http_resp_free(&r);
}

static void test_invalid_json(void)
{
    const char *p = "/v1/locks/target/acquire";
    expect("POST", p, "{\"ttl_ms\":", NULL, 400, "invalid_json",
           "malformed JSON");
    expect("POST", p, "[1,2]", NULL, 400, "invalid_json", "a JSON array");
    expect("POST", p, "\"ttl_ms\"", NULL, 400, "invalid_json", "a JSON string");
    expect("POST", p, "42", NULL, 400, "invalid_json", "a JSON number");
    expect("POST", p, "{} {}", NULL, 400, "invalid_json",
           "trailing data after the object");
    expect("POST", "/v1/locks/target/release", "nope", NULL, 400,
           "invalid_json", "release with a non-JSON body");
}

static void test_invalid_field(void)
{
    struct {
        const char *path, *body, *what, *field;
    } cases[] = {
        {"acquire", "{\"ttl_ms\":\"1000\"}", "ttl_ms as a string", "ttl_ms"},
        {"acquire", "{\"ttl_ms\":1.5}", "ttl_ms 1.5", "ttl_ms"},
        {"acquire", "{\"ttl_ms\":1e3}", "ttl_ms 1e3", "ttl_ms"},
        {"acquire", "{\"ttl_ms\":true}", "ttl_ms true", "ttl_ms"},
        {"acquire", "{\"ttl_ms\":null}", "ttl_ms null", "ttl_ms"},
        {"acquire", "{\"ttl_ms\":-1}", "ttl_ms -1", "ttl_ms"},
        {"acquire", "{\"ttl_ms\":0}", "ttl_ms 0", "ttl_ms"},
        {"acquire", "{\"ttl_ms\":3600001}", "ttl_ms over max_ttl_ms", "ttl_ms"},
        {"acquire", "{\"wait_ms\":-1}", "wait_ms -1", "wait_ms"},
        {"acquire", "{\"wait_ms\":60001}", "wait_ms over max_wait_ms",
         "wait_ms"},
        {"acquire", "{\"wait_ms\":[1]}", "wait_ms an array", "wait_ms"},
        {"acquire", "{\"owner\":42}", "owner a number", "owner"},
        {"acquire", "{\"token\":\"abc\"}", "token too short", "token"},
        {"acquire", "{\"token\":\"0123456789ABCDEF0123456789ABCDEF\"}",
         "token in uppercase hex", "token"},
        {"acquire", "{\"token\":\"0123456789abcdef0123456789abcdeg\"}",
         "token with a non-hex digit", "token"},
        {"acquire", "{\"token\":\"0123456789abcdef0123456789abcdef0\"}",
         "token 33 digits", "token"},
        {"acquire", "{\"token\":12345}", "token a number", "token"},
        {"acquire", "{\"ttl\":1000}", "unknown field ttl", "ttl"},
        {"renew", "{}", "renew without token", "token"},
        {"renew", "{\"token\":\"x\"}", "renew with a malformed token", "token"},
        {"release", "{}", "release without token", "token"},
        {"release", "{\"token\":null}", "release with token null", "token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/locks/target/%s", cases[i].path);
        struct http_resp r;
        http(&r, svc.url, "POST", path, cases[i].body, NULL);
        const char *detail = jstr(&r, "detail");
        t_ok(problem_is(&r, 400, "invalid_field") && lock_unchanged(),
             "%s %s -> 400 invalid_field, lock unchanged", cases[i].path,
             cases[i].what);
        t_ok(detail && strstr(detail, cases[i].field),
             "  detail names the field %s (%s)", cases[i].field,
             detail ? detail : "(none)");
        http_resp_free(&r);
    }

    char owner[200];
    memset(owner, 'o', 129);
    owner[129] = '\0';
    char body[256];
    snprintf(body, sizeof body, "{\"owner\":\"%s\"}", owner);
    expect("POST", "/v1/locks/target/acquire", body, NULL, 400, "invalid_field",
           "owner of 129 chars");
    snprintf(body, sizeof body, "{\"token\":\"%s\",\"ttl_ms\":0}", held_token);
    expect("POST", "/v1/locks/target/renew", body, NULL, 400, "invalid_field",
           "renew by the holder with ttl_ms 0");
    snprintf(body, sizeof body, "{\"token\":\"%s\",\"extra\":1}", held_token);
    expect("POST", "/v1/locks/target/release", body, NULL, 400, "invalid_field",
           "release by the holder with an unknown field");

    /* The 128-char owner is the limit, and accepted. */
    memset(owner, 'o', 128);
    owner[128] = '\0';
    snprintf(body, sizeof body, "{\"owner\":\"%s\"}", owner);
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/owner-128/acquire", body, NULL);
    t_ok(r.status == 200, "owner of exactly 128 chars -> 200 (%ld)", r.status);
    http_resp_free(&r);
}

static void test_invalid_name(void)
{
    char path[512], name[200];
    memset(name, 'n', 129);
    name[129] = '\0';
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    expect("POST", path, "{}", NULL, 400, "invalid_name", "a 129-char name");
    snprintf(path, sizeof path, "/v1/locks/%s", name);
    expect("GET", path, NULL, NULL, 400, "invalid_name",
           "GET status of a 129-char name");
    expect("POST", "/v1/locks/bad%20name/acquire", "{}", NULL, 400,
           "invalid_name", "a name with %20");
    expect("POST", "/v1/locks/bad!name/acquire", "{}", NULL, 400,
           "invalid_name", "a name with '!'");
    expect("POST", "/v1/locks/caf%C3%A9/acquire", "{}", NULL, 400,
           "invalid_name", "a name with non-ASCII");
    expect("GET", "/v1/locks/bad*name", NULL, NULL, 400, "invalid_name",
           "GET status of a name with '*'");

    memset(name, 'n', 128);
    name[128] = '\0';
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    struct http_resp r;
    http(&r, svc.url, "POST", path, "{}", NULL);
    t_ok(r.status == 200, "a 128-char name is accepted (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/Az09._:-/acquire", "{}", NULL);
    t_ok(r.status == 200, "every allowed character class: Az09._:- (%ld %s)",
         r.status, r.body);
    http_resp_free(&r);
}

static void test_routes(void)
{
    expect("GET", "/nope", NULL, NULL, 404, "not_found", "GET /nope");
    expect("POST", "/v1/locks/target/steal", "{}", NULL, 404, "not_found",
           "POST /v1/locks/target/steal");
    expect("GET", "/v2/locks/target", NULL, NULL, 404, "not_found",
           "GET /v2/locks/target");
    expect("GET", "/demo/inventory/sku1", NULL, NULL, 404, "not_found",
           "demo route without --demo");

    struct {
        const char *method, *path, *allow;
    } cases[] = {
        {"DELETE", "/v1/locks/target/acquire", "POST"},
        {"GET", "/v1/locks/target/release", "POST"},
        {"PUT", "/v1/locks/target", "GET"},
        {"POST", "/healthz", "GET"},
        {"DELETE", "/metrics", "GET"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct http_resp r;
        char allow[128];
        http(&r, svc.url, cases[i].method, cases[i].path, NULL, NULL);
        const char *a = http_header(&r, "Allow", allow, sizeof allow);
        t_ok(problem_is(&r, 405, "method_not_allowed") && a &&
                 strstr(a, cases[i].allow) && lock_unchanged(),
             "%s %s -> 405 method_not_allowed, Allow: %s", cases[i].method,
             cases[i].path, a ? a : "(none)");
        http_resp_free(&r);
    }
}

static void test_body_limits(void)
{
    /* 16 KiB exactly is allowed: valid JSON padded with spaces. */
    size_t limit = 16384;
    char *body = malloc(limit + 2);
    memset(body, ' ', limit + 1);
    memcpy(body, "{\"ttl_ms\":1000}", 15);
    body[limit] = '\0';
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/target/acquire", body, NULL);
    t_ok(problem_is(&r, 409, "lock_held"),
         "a 16384-byte body is read (409 lock_held, not 413)");
    http_resp_free(&r);
    body[limit] = ' ';
    body[limit + 1] = '\0';
    expect("POST", "/v1/locks/target/acquire", body, NULL, 413,
           "body_too_large", "a 16385-byte body");
    free(body);

    size_t big = 1 << 20;
    body = malloc(big + 1);
    memset(body, 'x', big);
    body[big] = '\0';
    expect("POST", "/v1/locks/target/acquire", body, NULL, 413,
           "body_too_large", "a 1 MiB body");
    free(body);

    const char *text[] = {"Content-Type: text/plain", NULL};
    expect("POST", "/v1/locks/target/acquire", "{}", text, 415,
           "unsupported_media_type", "a text/plain body");
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded",
                          NULL};
    expect("POST", "/v1/locks/target/release", "{}", form, 415,
           "unsupported_media_type", "a form-encoded body");

    const char *charset[] = {"Content-Type: application/json; charset=utf-8",
                             NULL};
    http(&r, svc.url, "POST", "/v1/locks/charset/acquire", "{}", charset);
    t_ok(r.status == 200, "application/json; charset=utf-8 is accepted (%ld)",
         r.status);
    http_resp_free(&r);
}

static void test_api_keys(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/keys", redis.dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "# test keys\n"
               "k3y-0123456789abcdef-one  ci\n"
               "\n"
               "k3y-fedcba9876543210-two\n");
    fclose(f);
    struct svc_proc s;
    const char *args[] = {"--api-keys-file", path, NULL};
    if (!t_ok(svc_start(&s, &redis, args) == 0,
              "service with --api-keys-file starts"))
        return;
    struct http_resp r;
    char buf[128];

    http(&r, s.url, "POST", "/v1/locks/authz/acquire", "{}", NULL);
    const char *www = http_header(&r, "WWW-Authenticate", buf, sizeof buf);
    t_ok(problem_is(&r, 401, "unauthorized"), "no Authorization -> 401");
    t_ok(www && strstr(www, "Bearer"), "401 carries WWW-Authenticate: %s",
         www ? www : "(none)");
    http_resp_free(&r);

    const char *wrong[] = {"Authorization: Bearer k3y-0123456789abcdef-onf",
                           NULL};
    http(&r, s.url, "POST", "/v1/locks/authz/acquire", "{}", wrong);
    t_ok(problem_is(&r, 401, "unauthorized"), "wrong key -> 401");
    http_resp_free(&r);
    const char *prefix[] = {"Authorization: Bearer k3y-0123456789abcdef", NULL};
    http(&r, s.url, "POST", "/v1/locks/authz/acquire", "{}", prefix);
    t_ok(problem_is(&r, 401, "unauthorized"), "a prefix of a key -> 401");
    http_resp_free(&r);
    const char *basic[] = {"Authorization: Basic azN5LTAxMjM=", NULL};
    http(&r, s.url, "GET", "/v1/locks/authz", NULL, basic);
    t_ok(problem_is(&r, 401, "unauthorized"), "Basic auth -> 401");
    http_resp_free(&r);

    const char *right[] = {"Authorization: Bearer k3y-0123456789abcdef-one",
                           NULL};
    http(&r, s.url, "POST", "/v1/locks/authz/acquire", "{}", right);
    t_ok(r.status == 200, "first key -> 200 (%ld %s)", r.status, r.body);
    http_resp_free(&r);
    const char *second[] = {"Authorization: Bearer k3y-fedcba9876543210-two",
                            NULL};
    http(&r, s.url, "GET", "/v1/locks/authz", NULL, second);
    t_ok(r.status == 200 && r.json &&
             json_is_true(json_object_get(r.json, "held")),
         "second key (no name) -> 200");
    http_resp_free(&r);

    const char *open_routes[] = {"/healthz", "/readyz", "/metrics",
                                 "/openapi.yaml", NULL};
    for (int i = 0; open_routes[i]; i++) {
        http(&r, s.url, "GET", open_routes[i], NULL, NULL);
        t_ok(r.status == 200, "%s is open without a key (%ld)", open_routes[i],
             r.status);
        http_resp_free(&r);
    }
    svc_stop(&s);
}

static void test_backend_unavailable(void)
{
    struct svc_proc s;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    const char *args[] = {"--redis", url, "--redis-timeout-ms", "500", NULL};
    if (!t_ok(svc_start(&s, NULL, args) == 0,
              "service pointed at a port with no Redis starts"))
        return;
    struct http_resp r;
    const char *paths[][3] = {{"POST", "/v1/locks/x/acquire", "{}"},
                              {"GET", "/v1/locks/x", NULL},
                              {"GET", "/readyz", NULL}};
    for (int i = 0; i < 3; i++) {
        http(&r, s.url, paths[i][0], paths[i][1], paths[i][2], NULL);
        t_ok(problem_is(&r, 503, "backend_unavailable"),
             "%s %s with no Redis -> 503 backend_unavailable", paths[i][0],
             paths[i][1]);
        t_ok(r.seconds < 2.0 * time_scale(),
             "  answered in %.3f s (< redis timeout 0.5 s + slack)", r.seconds);
        http_resp_free(&r);
    }
    http(&r, s.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200, "/healthz stays 200 without Redis");
    http_resp_free(&r);
    svc_stop(&s);
}

static void test_backend_timeout(void)
{
    struct redis_proc slow;
    struct svc_proc s;
    if (!t_ok(redis_start(&slow, NULL) == 0, "second redis-server starts"))
        return;
    const char *args[] = {"--redis-timeout-ms", "300", NULL};
    if (!t_ok(svc_start(&s, &slow, args) == 0,
              "service with --redis-timeout-ms 300 starts")) {
        redis_stop(&slow);
        return;
    }
    struct http_resp r;
    http(&r, s.url, "POST", "/v1/locks/slow/acquire", "{}", NULL);
    t_ok(r.status == 200, "acquire before Redis stalls -> 200");
    http_resp_free(&r);

    struct redis_stall stall;
    t_ok(redis_stall_begin(&stall, &slow, 2), "Redis stalls (DEBUG SLEEP 2)");
    http(&r, s.url, "POST", "/v1/locks/slow2/acquire", "{}", NULL);
    t_ok(problem_is(&r, 503, "backend_unavailable"),
         "acquire while Redis stalls (DEBUG SLEEP 2) -> 503");
    t_ok(r.seconds < 1.5 * time_scale(),
         "  answered in %.3f s (redis timeout 0.3 s, not the 2 s stall)",
         r.seconds);
    http_resp_free(&r);
    redis_stall_end(&stall);

    long st = 0;
    double end = now_ms() + 3000 * time_scale();
    while (now_ms() < end) {
        http(&r, s.url, "GET", "/v1/locks/slow", NULL, NULL);
        st = r.status;
        http_resp_free(&r);
        if (st == 200)
            break;
        sleep_ms(50);
    }
    t_ok(st == 200, "the service recovers once Redis answers again (%ld)", st);
    svc_stop(&s);
    redis_stop(&slow);
}

struct bg_req {
    pthread_t th;
    const char *base, *path, *body;
    long status;
};

static void *bg_main(void *arg)
{
    struct bg_req *b = arg;
    struct http_resp r;
    http(&r, b->base, "POST", b->path, b->body, NULL);
    b->status = r.status;
    http_resp_free(&r);
    return NULL;
}

static void test_limits(void)
{
    struct svc_proc s;
    const char *args[] = {"--max-waiters", "2", "--max-hold-count", "2", NULL};
    if (!t_ok(svc_start(&s, &redis, args) == 0,
              "service with --max-waiters 2 --max-hold-count 2 starts"))
        return;
    struct http_resp r;
    char tok[64], buf[32];
    http(&r, s.url, "POST", "/v1/locks/crowded/acquire", "{}", NULL);
    snprintf(tok, sizeof tok, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);

    struct bg_req w[2];
    for (int i = 0; i < 2; i++) {
        w[i] = (struct bg_req){.base = s.url,
                               .path = "/v1/locks/crowded/acquire",
                               .body = "{\"wait_ms\":10000}"};
        pthread_create(&w[i].th, NULL, bg_main, &w[i]);
    }
    t_ok(waiters_become(s.url, 2, 5000), "two waiters are parked");
    http(&r, s.url, "POST", "/v1/locks/crowded/acquire", "{\"wait_ms\":10000}",
         NULL);
    const char *ra = http_header(&r, "Retry-After", buf, sizeof buf);
    t_ok(problem_is(&r, 429, "too_many_waiters"),
         "third waiter with --max-waiters 2 -> 429 too_many_waiters");
    t_ok(ra && strcmp(ra, "1") == 0, "429 carries Retry-After: 1 (%s)",
         ra ? ra : "(none)");
    t_ok(r.seconds < 1.0 * time_scale(), "  answered at once (%.3f s)",
         r.seconds);
    http_resp_free(&r);

    http(&r, s.url, "POST", "/v1/locks/other/acquire", "{}", NULL);
    t_ok(r.status == 200, "a non-waiting acquire elsewhere still works");
    http_resp_free(&r);

    /* One admitted waiter gets the lock; the other stays suspended until
     * the service shuts down below. */
    httpf(&r, s.url, "POST", "/v1/locks/crowded/release", NULL,
          "{\"token\":\"%s\"}", tok);
    http_resp_free(&r);
    double end = now_ms() + 5000 * time_scale();
    while ((w[0].status == 0 && w[1].status == 0) && now_ms() < end)
        sleep_ms(10);
    t_ok(w[0].status == 200 || w[1].status == 200,
         "one of the two admitted waiters is granted after release");

    /* hold_limit */
    http(&r, s.url, "POST", "/v1/locks/deep/acquire", "{}", NULL);
    snprintf(tok, sizeof tok, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    long long fence = jint(&r, "fence");
    http_resp_free(&r);
    httpf(&r, s.url, "POST", "/v1/locks/deep/acquire", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && jint(&r, "count") == 2,
         "reentrant acquire up to --max-hold-count 2 -> count 2");
    http_resp_free(&r);
    httpf(&r, s.url, "POST", "/v1/locks/deep/acquire", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "hold_limit"),
         "a third reentrant acquire -> 409 hold_limit");
    http_resp_free(&r);
    http(&r, s.url, "GET", "/v1/locks/deep", NULL, NULL);
    t_ok(jint(&r, "count") == 2 && jint(&r, "fence") == fence,
         "hold_limit left count 2 and the fence (%s)", r.body);
    http_resp_free(&r);

    svc_stop(&s);
    for (int i = 0; i < 2; i++)
        pthread_join(w[i].th, NULL);
}

int main(void)
{
    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, NULL) != 0) {
        t_ok(false, "start redis-server and lockservice");
        return t_done();
    }
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/target/acquire",
         "{\"ttl_ms\":600000,\"owner\":\"keeper\"}", NULL);
    t_ok(r.status == 200 && jint(&r, "ttl_ms") == 600000,
         "hold lock 'target' for the whole run");
    snprintf(held_token, sizeof held_token, "%s",
             jstr(&r, "token") ? jstr(&r, "token") : "");
    held_fence = jint(&r, "fence");
    http_resp_free(&r);

    test_invalid_json();
    test_invalid_field();
    test_invalid_name();
    test_routes();
    test_body_limits();
    test_api_keys();
    test_backend_unavailable();
    test_backend_timeout();
    test_limits();
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
