/* test_auth.c -- API keys (--api-keys-file, LOCKSERVICE_API_KEYS_FILE).
 *
 * Two keys, one with a name. /v1/... and /demo/... need "Authorization: Bearer
 * <key>": none, a wrong key, a prefix of a key, a key with a trailing
 * character, another scheme -> 401 unauthorized with WWW-Authenticate:
 * Bearer realm="lockservice", and nothing changes; both keys -> served; the
 * scheme is case-insensitive (RFC 7235 section 2.1: "bearer" and "BEARER"
 * are accepted). /healthz /readyz /metrics /openapi.yaml stay open. Neither
 * key (nor a lease token) appears in the service's log at debug level. A
 * bad keys file (missing, empty, comments only, key too short or too long)
 * -> exit 2 with one line naming the flag (or its variable). */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc svc;

#define KEY1 "k1-Sup3rSecret-0123456789abcdef"
#define KEY2 "k2_an0ther.secret~key/XYZ=="
#define KEY1_NAME "ci-runner"

static char keyfile[256];
static char tmpdir[200];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static bool is_401(const struct http_resp *r)
{
    char buf[128];
    const char *w = http_header(r, "WWW-Authenticate", buf, sizeof buf);
    bool ok = problem_is(r, 401, "unauthorized") && w &&
              strcmp(w, "Bearer realm=\"lockservice\"") == 0;
    if (!ok)
        t_diag("WWW-Authenticate: %s", w ? w : "(none)");
    return ok;
}

static long long held_fence;

static bool target_unchanged(void)
{
    struct http_resp r;
    const char *h[] = {"Authorization: Bearer " KEY1, NULL};
    http(&r, svc.url, "GET", "/v1/locks/target", NULL, h);
    bool ok = r.status == 200 &&
              json_is_true(json_object_get(r.json, "held")) &&
              jint(&r, "fence") == held_fence && jint(&r, "count") == 1;
    if (!ok)
        t_diag("lock 'target' changed: %ld %s", r.status, r.body);
    http_resp_free(&r);
    return ok;
}

static void test_refused(const char *token)
{
    static char release[128];
    snprintf(release, sizeof release, "{\"token\":\"%s\"}", token);
    struct {
        const char *auth; /* whole header line or NULL */
        const char *what;
    } creds[] = {
        {NULL, "no Authorization"},
        {"Authorization: Bearer wrong-key-0123456789abcdef", "a wrong key"},
        {"Authorization: Bearer k1-Sup3rSecret-0123456789abcde",
         "KEY1 without its last character"},
        {"Authorization: Bearer k1-Sup3rSecret", "a short prefix of KEY1"},
        {"Authorization: Bearer " KEY1 "x", "KEY1 with a trailing character"},
        {"Authorization: Bearer " KEY1 KEY2, "KEY1 and KEY2 run together"},
        {"Authorization: Bearer " KEY1_NAME, "the key's name instead of it"},
        {"Authorization: Bearer " KEY1 " " KEY1_NAME,
         "the whole keys-file line"},
        {"Authorization: Bearer ", "Bearer with no key"},
        {"Authorization: Basic azEtU3VwM3JTZWNyZXQtMDEyMzQ1Njc4OWFiY2RlZg==",
         "Basic scheme with KEY1 base64"},
        {"Authorization: " KEY1, "KEY1 without a scheme"},
        {"Authorization: Token " KEY1, "KEY1 under scheme Token"},
        {"X-Api-Key: " KEY1, "KEY1 in another header"},
    };
    struct {
        const char *method, *path, *body;
    } routes[] = {
        {"POST", "/v1/locks/target/acquire", "{}"},
        {"POST", "/v1/locks/target/release", release},
        {"GET", "/v1/locks/target", NULL},
        {"PUT", "/demo/inventory/sku1", "{\"stock\":0}"},
        {"POST", "/demo/inventory/sku1/purchase", "{\"mode\":\"unsafe\"}"},
    };
    for (size_t c = 0; c < sizeof creds / sizeof creds[0]; c++) {
        int good = 0, total = 0;
        for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
            const char *h[] = {creds[c].auth, NULL};
            struct http_resp r;
            http(&r, svc.url, routes[i].method, routes[i].path, routes[i].body,
                 creds[c].auth ? h : NULL);
            bool ok = is_401(&r);
            if (!ok)
                t_diag("%s %s with %s", routes[i].method, routes[i].path,
                       creds[c].what);
            good += ok;
            total++;
            http_resp_free(&r);
        }
        t_ok(good == total && target_unchanged(),
             "%s -> 401 unauthorized + WWW-Authenticate on /v1 and /demo "
             "(%d/%d), lock unchanged",
             creds[c].what, good, total);
    }
    /* 401 comes before validation: nothing about the request leaks. */
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/bad*name/acquire", "{\"x\":1}", NULL);
    t_ok(is_401(&r), "an invalid request without a key is 401, not 400");
    http_resp_free(&r);
    http(&r, svc.url, "PATCH", "/v1/locks/target", NULL, NULL);
    t_ok(is_401(&r), "a wrong method without a key is 401, not 405");
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/demo/inventory/sku1", NULL, NULL);
    t_ok(is_401(&r), "GET /demo/inventory/sku1 without a key -> 401");
    http_resp_free(&r);
}

static void test_accepted(void)
{
    const char *schemes[][2] = {
        {"Authorization: Bearer " KEY1, "Bearer KEY1 (named " KEY1_NAME ")"},
        {"Authorization: Bearer " KEY2, "Bearer KEY2 (unnamed)"},
        {"Authorization: bearer " KEY1, "lowercase scheme 'bearer'"},
        {"Authorization: BEARER " KEY2, "uppercase scheme 'BEARER'"},
    };
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        const char *h[] = {schemes[i][0], NULL};
        struct http_resp a, g, rl;
        char name[32], path[96];
        snprintf(name, sizeof name, "auth-%zu", i);
        snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
        http(&a, svc.url, "POST", path, "{\"ttl_ms\":5000}", h);
        snprintf(path, sizeof path, "/v1/locks/%s", name);
        http(&g, svc.url, "GET", path, NULL, h);
        snprintf(path, sizeof path, "/v1/locks/%s/release", name);
        httpf(&rl, svc.url, "POST", path, h, "{\"token\":\"%s\"}",
              jstr(&a, "token") ? jstr(&a, "token") : "");
        t_ok(a.status == 200 && g.status == 200 && rl.status == 200,
             "%s: acquire %ld, status %ld, release %ld", schemes[i][1],
             a.status, g.status, rl.status);
        http_resp_free(&a);
        http_resp_free(&g);
        http_resp_free(&rl);
    }
    const char *h[] = {"Authorization: Bearer " KEY2, NULL};
    struct http_resp r;
    http(&r, svc.url, "PUT", "/demo/inventory/sku1", "{\"stock\":2}", h);
    t_ok(r.status == 200, "PUT /demo/inventory/sku1 with KEY2 -> 200 (%ld)",
         r.status);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/demo/inventory/sku1/purchase",
         "{\"mode\":\"fenced\",\"work_ms\":0}", h);
    t_ok(r.status == 201, "a demo purchase with KEY2 -> 201 (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/demo/inventory/sku1", NULL, h);
    t_ok(r.status == 200 && jint(&r, "orders") == 1,
         "GET /demo/inventory/sku1 with KEY2 -> 200, one order (%s)", r.body);
    http_resp_free(&r);
}

static void test_open_routes(void)
{
    const char *open[] = {"/healthz", "/readyz", "/metrics", "/openapi.yaml"};
    for (size_t i = 0; i < 4; i++) {
        struct http_resp r;
        http(&r, svc.url, "GET", open[i], NULL, NULL);
        t_ok(r.status == 200, "%s is open without a key (%ld)", open[i],
             r.status);
        http_resp_free(&r);
        const char *h[] = {"Authorization: Bearer wrong-key-0123456789", NULL};
        http(&r, svc.url, "GET", open[i], NULL, h);
        t_ok(r.status == 200, "%s ignores a wrong key (%ld)", open[i],
             r.status);
        http_resp_free(&r);
    }
}

/* The log holds neither key, nor (any part of) a lease token. */
static void test_log(const char *token)
{
    FILE *f = fopen(svc.log, "r");
    if (!f) {
        t_ok(false, "the service log %s is readable", svc.log);
        return;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0 && len < cap)
        len += n;
    buf[len] = '\0';
    fclose(f);
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    t_ok(lines > 20, "the service log has the requests (%d lines)", lines);
    /* A long distinctive part of each secret. */
    t_ok(strstr(buf, "Sup3rSecret") == NULL && strstr(buf, KEY1) == NULL,
         "KEY1 never appears in the service log");
    t_ok(strstr(buf, "an0ther.secret") == NULL,
         "KEY2 never appears in the service log");
    t_ok(strstr(buf, "wrong-key-0123456789") == NULL,
         "rejected keys never appear in the service log");
    char half[20];
    snprintf(half, sizeof half, "%.16s", token);
    t_ok(token[0] && strstr(buf, half) == NULL,
         "the lease token never appears in the service log");
    free(buf);
}

static void test_bad_files(void)
{
    char path[300];
    struct {
        const char *name, *text, *what;
    } files[] = {
        {"missing.keys", NULL, "a missing keys file"},
        {"empty.keys", "", "an empty keys file"},
        {"comments.keys", "# only a comment\n\n   \n# another\n",
         "a keys file with comments only"},
        {"short.keys", "0123456789abcde short\n", "a 15-character key"},
        {"long.keys", NULL, "a 257-character key"},
        {"ctrl.keys", "0123456789abcdef\x01xyz\n",
         "a key with a control character"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i].name);
        if (strcmp(files[i].name, "long.keys") == 0) {
            char key[300];
            memset(key, 'k', 257);
            memcpy(key + 257, "\n", 2);
            write_file(path, key);
        } else if (files[i].text) {
            write_file(path, files[i].text);
        } else {
            unlink(path);
        }
        char listen[64];
        snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
        const char *args[] = {"--listen", listen, "--api-keys-file", path,
                              NULL};
        char *out = NULL, *err = NULL;
        int st = svc_run(args, NULL, &out, &err, 5000);
        size_t nl = 0;
        for (char *p = err; p && *p; p++)
            nl += *p == '\n';
        t_ok(st == 2 && err && strstr(err, "--api-keys-file") && nl == 1,
             "%s -> exit 2, one line naming --api-keys-file (exit %d: %s)",
             files[i].what, st, err ? err : "");
        free(out);
        free(err);
    }
    /* The same through the environment variable. */
    snprintf(path, sizeof path, "%s/missing.keys", tmpdir);
    char envv[400], listen[64];
    snprintf(envv, sizeof envv, "LOCKSERVICE_API_KEYS_FILE=%s", path);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
    const char *args[] = {"--listen", listen, NULL};
    const char *env[] = {envv, NULL};
    char *err = NULL;
    int st = svc_run(args, env, NULL, &err, 5000);
    t_ok(st == 2 && err &&
             (strstr(err, "LOCKSERVICE_API_KEYS_FILE") ||
              strstr(err, "--api-keys-file")),
         "LOCKSERVICE_API_KEYS_FILE naming a missing file -> exit 2 (%d: %s)",
         st, err ? err : "");
    free(err);
}

/* The environment variable works like the flag. */
static void test_env_keys(void)
{
    struct svc_proc s;
    char envv[400];
    snprintf(envv, sizeof envv, "LOCKSERVICE_API_KEYS_FILE=%s", keyfile);
    const char *env[] = {envv, NULL};
    if (svc_start_env(&s, &redis, NULL, env) != 0) {
        t_ok(false, "lockservice starts with LOCKSERVICE_API_KEYS_FILE");
        return;
    }
    struct http_resp r;
    http(&r, s.url, "GET", "/v1/locks/env", NULL, NULL);
    t_ok(is_401(&r), "LOCKSERVICE_API_KEYS_FILE: no key -> 401");
    http_resp_free(&r);
    const char *h[] = {"Authorization: Bearer " KEY1, NULL};
    http(&r, s.url, "GET", "/v1/locks/env", NULL, h);
    t_ok(r.status == 200, "LOCKSERVICE_API_KEYS_FILE: KEY1 -> 200 (%ld)",
         r.status);
    http_resp_free(&r);
    svc_stop(&s);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lockservice-auth-XXXXXX",
             t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        t_ok(false, "mkdtemp");
        return t_done();
    }
    snprintf(keyfile, sizeof keyfile, "%s/api.keys", tmpdir);
    write_file(keyfile, "# lockservice API keys\n"
                        "\n" KEY1 "   " KEY1_NAME "\n"
                        "   " KEY2 "\n");

    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *args[] = {"--api-keys-file", keyfile, "--demo",
                          "--log-level",     "debug", NULL};
    if (svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "lockservice starts with --api-keys-file");
        redis_stop(&redis);
        return t_done();
    }

    const char *h1[] = {"Authorization: Bearer " KEY1, NULL};
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/target/acquire", "{\"ttl_ms\":600000}",
         h1);
    char token[64] = "";
    if (jstr(&r, "token"))
        snprintf(token, sizeof token, "%s", jstr(&r, "token"));
    held_fence = jint(&r, "fence");
    t_ok(r.status == 200 && token_like(token), "hold 'target' with KEY1 (%ld)",
         r.status);
    http_resp_free(&r);

    test_refused(token);
    test_accepted();
    test_open_routes();
    test_env_keys();
    test_bad_files();

    httpf(&r, svc.url, "POST", "/v1/locks/target/release", h1,
          "{\"token\":\"%s\"}", token);
    t_ok(r.status == 200, "KEY1 releases 'target' at the end (%ld)", r.status);
    http_resp_free(&r);

    svc_stop(&svc);
    test_log(token);
    redis_stop(&redis);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        t_diag("could not remove %s", tmpdir);
    return t_done();
}
