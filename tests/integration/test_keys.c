/* test_keys.c -- named API keys with roles and namespaces, and SIGHUP
 * reloading the keys file.
 *
 * One service with a keys file in both formats. Roles: a read key GETs and
 * HEADs (200) and is 403 forbidden on POST, PUT and DELETE; a client key
 * (v1 format too) is 403 on the admin-only force release, which an admin key
 * may do. Namespaces: keys of namespaces a and b and a plain client key all
 * acquire "orders" with wait_ms 0 and all get 200 (they never contend), the
 * replies and each status show the client's own name "orders" and its own
 * holder only, and Redis holds "{a/orders}", "{b/orders}" and "{orders}";
 * the demo's SKU and its lock live under the namespace too. The access log
 * names the key (key=<name>) and never holds a key. SIGHUP with a new file:
 * a removed key gets 401 and an added one works, while a waiter parked with
 * the removed key before the reload is granted normally; SIGHUP with a
 * broken or missing file keeps the keys and logs one warn line (quoting no
 * key); a new-format error at startup is exit 2 naming the line. Without
 * --api-keys-file, SIGHUP logs that there is nothing to reload, every route
 * (force release too) stays open and the service goes on. Each service
 * exits 0 on SIGTERM at the end, having taken its SIGHUPs. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc svc;
static char tmpdir[200], keyfile[256];

#define K_ADMIN "admin-k3y-0123456789abcdef"
#define K_CLIENT "client-k3y-0123456789abcdef"
#define K_READ "read-k3y-0123456789abcdef"
#define K_NSA "tenant-a-k3y-0123456789abcdef"
#define K_NSB "tenant-b-k3y-0123456789abcdef"
#define K_V1 "v1-format-k3y-0123456789abcdef"
#define K_NSLONG "long-ns-k3y-0123456789abcdef"
#define NS32 "ns-of-32-characters-0123456789ab"
#define K_GONE "gone-after-reload-k3y-0123456789"
#define K_NEW "added-on-reload-k3y-0123456789"
#define K_BROKEN "in-the-broken-file-k3y-0123456789"

#define AUTH(k) "Authorization: Bearer " k

static const char *const h_admin[] = {AUTH(K_ADMIN), NULL};
static const char *const h_client[] = {AUTH(K_CLIENT), NULL};
static const char *const h_read[] = {AUTH(K_READ), NULL};
static const char *const h_nsa[] = {AUTH(K_NSA), NULL};
static const char *const h_nsb[] = {AUTH(K_NSB), NULL};
static const char *const h_v1[] = {AUTH(K_V1), NULL};
static const char *const h_nslong[] = {AUTH(K_NSLONG), NULL};
static const char *const h_gone[] = {AUTH(K_GONE), NULL};
static const char *const h_new[] = {AUTH(K_NEW), NULL};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* The file at path, malloc'd (caller frees), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, len = 0, n;
    char *buf = malloc(cap + 1);
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0 && len < cap)
        len += n;
    if (buf)
        buf[len] = '\0';
    fclose(f);
    return buf;
}

/* How many times needle is in the log of s. */
static int log_count(const struct svc_proc *s, const char *needle)
{
    char *log = slurp(s->log);
    int n = 0;
    for (char *p = log; p && (p = strstr(p, needle)) != NULL; p++)
        n++;
    free(log);
    return n;
}

/* Waits until the log of s holds needle more than `before` times. */
static bool log_grows(const struct svc_proc *s, const char *needle, int before)
{
    double deadline = now_ms() + 5000 * time_scale();
    do {
        if (log_count(s, needle) > before)
            return true;
        sleep_ms(20);
    } while (now_ms() < deadline);
    t_diag("the log never showed \"%s\"", needle);
    return false;
}

/* Sends SIGHUP and waits for the log line that answers it. */
static bool sighup(const struct svc_proc *s, const char *answer)
{
    int before = log_count(s, answer);
    if (kill(s->pid, SIGHUP) != 0)
        return false;
    return log_grows(s, answer, before);
}

static long status_of(const char *method, const char *path, const char *body,
                      const char *const *h)
{
    struct http_resp r;
    http(&r, svc.url, method, path, body, h);
    long st = r.status;
    http_resp_free(&r);
    return st;
}

static bool forbidden(const char *method, const char *path, const char *body,
                      const char *const *h)
{
    struct http_resp r;
    http(&r, svc.url, method, path, body, h);
    bool ok = problem_is(&r, 403, "forbidden");
    http_resp_free(&r);
    return ok;
}

static void test_roles(void)
{
    struct http_resp r;

    /* read: GET and HEAD only. */
    t_ok(status_of("GET", "/v1/locks/roles", NULL, h_read) == 200,
         "read key: GET /v1/locks/roles -> 200");
    t_ok(status_of("HEAD", "/v1/locks/roles", NULL, h_read) == 200,
         "read key: HEAD /v1/locks/roles -> 200");
    t_ok(status_of("GET", "/demo/inventory/roles", NULL, h_read) == 404,
         "read key: GET /demo/inventory/roles -> 404 (served, no such SKU)");
    t_ok(forbidden("POST", "/v1/locks/roles/acquire", "{}", h_read),
         "read key: POST acquire -> 403 forbidden");
    t_ok(forbidden("POST", "/v1/locks/roles/release",
                   "{\"token\":\"0123456789abcdef0123456789abcdef\"}", h_read),
         "read key: POST release -> 403 forbidden");
    t_ok(forbidden("PUT", "/demo/inventory/roles", "{\"stock\":1}", h_read),
         "read key: PUT /demo/inventory -> 403 forbidden");
    t_ok(forbidden("DELETE", "/v1/locks/roles", NULL, h_read),
         "read key: DELETE (force release) -> 403 forbidden");
    t_ok(status_of("GET", "/v1/locks/roles", NULL, h_client) == 200,
         "the read key's 403s changed nothing: 'roles' is still free");
    /* 403 comes before validation, as 401 does. */
    t_ok(forbidden("POST", "/v1/locks/bad*name/acquire", "{\"x\":1}", h_read),
         "read key: an invalid request is 403, not 400");
    /* A method the route lacks is 405 whatever the role. */
    http(&r, svc.url, "PUT", "/v1/locks/roles", "{}", h_read);
    t_ok(problem_is(&r, 405, "method_not_allowed"),
         "read key: PUT /v1/locks/roles -> 405 (%ld)", r.status);
    http_resp_free(&r);

    /* client (new format and v1 format): all but force release. */
    http(&r, svc.url, "POST", "/v1/locks/roles/acquire", "{\"ttl_ms\":60000}",
         h_client);
    t_ok(r.status == 200, "client key: acquire 'roles' -> 200 (%ld)", r.status);
    http_resp_free(&r);
    t_ok(forbidden("DELETE", "/v1/locks/roles", NULL, h_client),
         "client key: DELETE /v1/locks/roles -> 403 forbidden");
    t_ok(forbidden("DELETE", "/v1/locks/roles", NULL, h_v1),
         "v1-format key (role client): DELETE -> 403 forbidden");
    http(&r, svc.url, "POST", "/v1/locks/v1/acquire", "{}", h_v1);
    t_ok(r.status == 200, "v1-format key: acquire -> 200 (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/roles", NULL, h_read);
    t_ok(r.status == 200 && json_is_true(json_object_get(r.json, "held")),
         "'roles' is still held after the client's 403s (%s)", r.body);
    http_resp_free(&r);

    /* admin: force release too. */
    http(&r, svc.url, "DELETE", "/v1/locks/roles", NULL, h_admin);
    t_ok(r.status == 200 && jint(&r, "holders") == 1,
         "admin key: DELETE /v1/locks/roles -> 200, 1 holder (%ld %s)",
         r.status, r.body);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/roles", NULL, h_admin);
    t_ok(r.status == 200 && json_is_false(json_object_get(r.json, "held")),
         "after the admin's force release 'roles' is free (%s)", r.body);
    http_resp_free(&r);
    t_ok(log_count(&svc, "(key ops)") >= 1,
         "the force release's audit line names the admin key");
}

struct acquired {
    char token[64];
    long status;
};

static struct acquired acquire(const char *const *h, const char *name,
                               const char *owner)
{
    struct acquired a = {"", 0};
    struct http_resp r;
    char path[256];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    httpf(&r, svc.url, "POST", path, h, "{\"ttl_ms\":60000,\"owner\":\"%s\"}",
          owner);
    a.status = r.status;
    if (r.status == 200 && jstr(&r, "token") &&
        strcmp(jstr(&r, "name") ? jstr(&r, "name") : "", name) == 0)
        snprintf(a.token, sizeof a.token, "%s", jstr(&r, "token"));
    else
        t_diag("acquire %s as %s: %ld %s", name, owner, r.status, r.body);
    http_resp_free(&r);
    return a;
}

static bool status_shows(const char *const *h, const char *name,
                         const char *owner)
{
    struct http_resp r;
    char path[256];
    snprintf(path, sizeof path, "/v1/locks/%s", name);
    http(&r, svc.url, "GET", path, NULL, h);
    const char *o = jstr(&r, "owner"), *n = jstr(&r, "name");
    json_t *holders = json_object_get(r.json, "holders");
    bool ok = r.status == 200 &&
              json_is_true(json_object_get(r.json, "held")) && o &&
              strcmp(o, owner) == 0 && n && strcmp(n, name) == 0 &&
              (holders == NULL || json_array_size(holders) == 1);
    if (!ok)
        t_diag("status of %s: %ld %s", name, r.status, r.body);
    http_resp_free(&r);
    return ok;
}

static bool release(const char *const *h, const char *name, const char *token)
{
    struct http_resp r;
    char path[256];
    snprintf(path, sizeof path, "/v1/locks/%s/release", name);
    httpf(&r, svc.url, "POST", path, h, "{\"token\":\"%s\"}", token);
    const char *n = jstr(&r, "name");
    bool ok = r.status == 200 && n && strcmp(n, name) == 0;
    if (!ok)
        t_diag("release %s: %ld %s", name, r.status, r.body);
    http_resp_free(&r);
    return ok;
}

static void test_namespaces(void)
{
    /* wait_ms 0: any contention would be 409 lock_held. */
    struct acquired a = acquire(h_nsa, "orders", "owner-a");
    struct acquired b = acquire(h_nsb, "orders", "owner-b");
    struct acquired p = acquire(h_client, "orders", "owner-plain");
    t_ok(a.status == 200 && b.status == 200 && p.status == 200,
         "namespaces a and b and a plain key all acquire 'orders': %ld %ld "
         "%ld (they never contend; replies name 'orders')",
         a.status, b.status, p.status);
    t_ok(status_shows(h_nsa, "orders", "owner-a"),
         "namespace a's status of 'orders' shows its own holder only");
    t_ok(status_shows(h_nsb, "orders", "owner-b"),
         "namespace b's status of 'orders' shows its own holder only");
    t_ok(status_shows(h_client, "orders", "owner-plain"),
         "the plain key's status of 'orders' shows its own holder only");
    t_ok(redis_cli_int(&redis, "EXISTS lockservice:{a/orders}:lock") == 1 &&
             redis_cli_int(&redis, "EXISTS lockservice:{b/orders}:lock") == 1 &&
             redis_cli_int(&redis, "EXISTS lockservice:{orders}:lock") == 1,
         "Redis holds {a/orders}, {b/orders} and {orders}");

    /* A token is good only in its own namespace. */
    struct http_resp r;
    httpf(&r, svc.url, "POST", "/v1/locks/orders/release", h_nsb,
          "{\"token\":\"%s\"}", a.token);
    t_ok(r.status == 409, "namespace b cannot release a's lease (%ld %s)",
         r.status, r.body);
    http_resp_free(&r);
    t_ok(release(h_nsa, "orders", a.token) &&
             release(h_nsb, "orders", b.token) &&
             release(h_client, "orders", p.token),
         "each releases its own 'orders' (replies name 'orders')");

    /* The longest name under the longest namespace. */
    char name[129];
    memset(name, 'n', 128);
    name[128] = '\0';
    struct acquired l = acquire(h_nslong, name, "long");
    t_ok(l.status == 200 && release(h_nslong, name, l.token),
         "a key with a 32-character namespace takes a 128-character name "
         "(%ld)",
         l.status);

    /* The demo: the SKU and its lock live under the namespace. */
    http(&r, svc.url, "PUT", "/demo/inventory/widget", "{\"stock\":1}", h_nsa);
    t_ok(r.status == 200, "namespace a: PUT widget stock 1 (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "PUT", "/demo/inventory/widget", "{\"stock\":5}",
         h_client);
    t_ok(r.status == 200, "plain key: PUT widget stock 5 (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/demo/inventory/widget/purchase",
         "{\"mode\":\"fenced\",\"work_ms\":0}", h_nsa);
    t_ok(r.status == 201 && jstr(&r, "sku") &&
             strcmp(jstr(&r, "sku"), "widget") == 0,
         "namespace a: a fenced purchase of widget -> 201 (%s)", r.body);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/demo/inventory/widget", NULL, h_nsa);
    t_ok(r.status == 200 && jint(&r, "stock") == 0 && jint(&r, "orders") == 1 &&
             jstr(&r, "sku") && strcmp(jstr(&r, "sku"), "widget") == 0,
         "namespace a's widget: stock 0, 1 order (%s)", r.body);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/demo/inventory/widget", NULL, h_client);
    t_ok(r.status == 200 && jint(&r, "stock") == 5 && jint(&r, "orders") == 0,
         "the plain widget is untouched: stock 5, no order (%s)", r.body);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/demo/inventory/widget", NULL, h_nsb);
    t_ok(problem_is(&r, 404, "sku_not_found"),
         "namespace b has no widget (%ld)", r.status);
    http_resp_free(&r);
    t_ok(redis_cli_int(&redis, "EXISTS lockservice:{a/widget}:demo") == 1 &&
             redis_cli_int(&redis,
                           "EXISTS lockservice:{a/inventory:widget}:fence") ==
                 1 &&
             redis_cli_int(&redis,
                           "EXISTS lockservice:{inventory:widget}:fence") == 0,
         "Redis: the SKU is {a/widget}, its lock {a/inventory:widget}");
}

/* The access log names the key that made each request, never the key. */
static void test_log(void)
{
    t_ok(log_count(&svc, "/v1/locks/{name}/acquire 200") > 0 &&
             log_count(&svc, "key=tenant-a") > 0 &&
             log_count(&svc, "key=tenant-b") > 0 &&
             log_count(&svc, "key=app") > 0 && log_count(&svc, "key=ops") > 0,
         "access log lines carry key=<name> of each key");
    t_ok(log_count(&svc, "key=legacy bot") > 0,
         "a v1-format key is logged by its v1 name");
    static const char *const keys[] = {
        K_ADMIN, K_CLIENT, K_READ,   K_NSA,    K_NSB,           K_V1,
        K_GONE,  K_NEW,    K_BROKEN, K_NSLONG, "k3y-0123456789"};
    int leaked = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (log_count(&svc, keys[i]) > 0) {
            t_diag("key %zu is in the log", i);
            leaked++;
        }
    t_ok(leaked == 0, "no key, nor a part of one, is in the log");
}

struct parked {
    pthread_t thread;
    long status;
    char token[64];
};

static void *park(void *arg)
{
    struct parked *p = arg;
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/parked/acquire",
         "{\"wait_ms\":30000,\"ttl_ms\":60000}", h_gone);
    p->status = r.status;
    if (jstr(&r, "token"))
        snprintf(p->token, sizeof p->token, "%s", jstr(&r, "token"));
    http_resp_free(&r);
    return NULL;
}

static void test_reload(void)
{
    struct http_resp r;
    struct acquired holder = acquire(h_client, "parked", "holder");
    struct parked w = {.status = 0};

    t_ok(status_of("GET", "/v1/locks/parked", NULL, h_gone) == 200 &&
             status_of("GET", "/v1/locks/parked", NULL, h_new) == 401,
         "before the reload: the key to be removed works, the one to be "
         "added is 401");
    /* A waiter parked with the key that the reload removes. */
    pthread_create(&w.thread, NULL, park, &w);
    t_ok(waiters_become(svc.url, 1, 5000), "a waiter parks on 'parked'");

    char text[1024];
    snprintf(text, sizeof text,
             "# reloaded: gone removed, new added\n" K_ADMIN
             " name=ops role=admin\n" K_CLIENT " name=app\n" K_READ
             " role=read name=dash\n" K_NSA " namespace=a name=tenant-a\n" K_NSB
             " namespace=b role=client name=tenant-b\n" K_V1
             "   legacy bot\n" K_NEW " name=newbie\n");
    write_file(keyfile, text);
    t_ok(sighup(&svc, "reloaded 7 API keys"),
         "SIGHUP with a new file logs \"reloaded 7 API keys\"");
    http(&r, svc.url, "GET", "/v1/locks/parked", NULL, h_gone);
    t_ok(problem_is(&r, 401, "unauthorized"),
         "after the reload the removed key gets 401 (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/parked", NULL, h_new);
    t_ok(r.status == 200 && json_is_true(json_object_get(r.json, "held")),
         "after the reload the added key works (%ld)", r.status);
    http_resp_free(&r);
    t_ok(status_of("GET", "/v1/locks/parked", NULL, h_client) == 200,
         "a key kept across the reload still works");
    t_ok(w.status == 0, "the parked waiter is still waiting");
    t_ok(release(h_client, "parked", holder.token),
         "the holder releases 'parked'");
    pthread_join(w.thread, NULL);
    t_ok(w.status == 200 && token_like(w.token),
         "the waiter parked with the removed key before the reload is "
         "granted normally (%ld)",
         w.status);
    t_ok(status_shows(h_new, "parked", ""),
         "and holds 'parked' (status with the new key)");
    /* The lease is the waiter's: the removed key cannot release it any
     * more, a kept one can. */
    t_ok(status_of("POST", "/v1/locks/parked/release", "{}", h_gone) == 401,
         "the removed key cannot release it (401)");
    t_ok(release(h_client, "parked", w.token), "a kept key releases it");
    t_ok(log_count(&svc, "key=newbie") > 0, "the added key's name is logged");

    /* A broken file: the keys in use stay, one warn line says why. */
    write_file(keyfile, "# broken\n" K_NEW " name=newbie\n" K_BROKEN
                        " role=superuser name=x\n" K_GONE "\n");
    int warns = log_count(&svc, "keeping the API keys in use");
    t_ok(sighup(&svc, "keeping the API keys in use"),
         "SIGHUP with a broken file logs that it keeps the keys");
    t_ok(log_count(&svc, "keeping the API keys in use") == warns + 1 &&
             log_count(&svc, "line 3") > 0,
         "one warn line, naming line 3");
    t_ok(status_of("GET", "/v1/locks/x", NULL, h_gone) == 401 &&
             status_of("GET", "/v1/locks/x", NULL, h_new) == 200 &&
             status_of("GET", "/v1/locks/x", NULL, h_nsa) == 200,
         "after the broken file the keys are those of the last good one");
    t_ok(log_count(&svc, K_BROKEN) == 0 && log_count(&svc, K_NEW) == 0,
         "the warn line quotes no key");

    /* A missing file: the same. */
    char moved[300];
    snprintf(moved, sizeof moved, "%s.moved", keyfile);
    rename(keyfile, moved);
    t_ok(sighup(&svc, "cannot open"),
         "SIGHUP with the file gone logs that it cannot open it");
    t_ok(status_of("GET", "/v1/locks/x", NULL, h_new) == 200 &&
             status_of("GET", "/v1/locks/x", NULL, h_gone) == 401,
         "and the keys in use stay");
    rename(moved, keyfile);
}

/* A keys file whose new-format line is wrong stops startup. */
static void test_bad_startup(void)
{
    char path[300], listen[64];
    snprintf(path, sizeof path, "%s/bad.keys", tmpdir);
    write_file(path, K_ADMIN " name=ops\n" K_BROKEN " role=root\n");
    snprintf(listen, sizeof listen, "127.0.0.1:%d", free_port());
    const char *args[] = {"--listen", listen, "--api-keys-file", path, NULL};
    char *err = NULL;
    int st = svc_run(args, NULL, NULL, &err, 5000);
    t_ok(st == 2 && err && strstr(err, "--api-keys-file") &&
             strstr(err, "line 2") && !strstr(err, K_BROKEN) &&
             !strstr(err, K_ADMIN),
         "role=root on line 2 -> exit 2 naming the flag and line 2, quoting "
         "no key (%d: %s)",
         st, err ? err : "");
    free(err);
}

/* Without --api-keys-file SIGHUP has nothing to do, and every route (the
 * admin-only ones too) is open. */
static void test_no_keys_file(void)
{
    struct svc_proc s;
    if (svc_start(&s, &redis, NULL) != 0) {
        t_ok(false, "lockservice starts without --api-keys-file");
        return;
    }
    int before = log_count(&s, "nothing to reload");
    kill(s.pid, SIGHUP);
    t_ok(log_grows(&s, "nothing to reload", before),
         "SIGHUP without --api-keys-file logs that there is nothing to reload");
    kill(s.pid, SIGHUP);
    t_ok(log_grows(&s, "nothing to reload", before + 1), "a second SIGHUP too");
    struct http_resp r;
    http(&r, s.url, "POST", "/v1/locks/nokeys/acquire", "{}", NULL);
    t_ok(r.status == 200, "it keeps serving: acquire -> 200 (%ld)", r.status);
    http_resp_free(&r);
    http(&r, s.url, "DELETE", "/v1/locks/nokeys", NULL, NULL);
    t_ok(r.status == 200 && jint(&r, "holders") == 1,
         "without keys the admin-only force release is open (%ld %s)", r.status,
         r.body);
    http_resp_free(&r);
    t_ok(log_count(&s, " key=") == 0, "no key= in its access log");
    svc_stop(&s); /* exit status 0 after the SIGHUPs */
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lockservice-keys-XXXXXX",
             t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        t_ok(false, "mkdtemp");
        return t_done();
    }
    snprintf(keyfile, sizeof keyfile, "%s/api.keys", tmpdir);
    write_file(keyfile,
               "# every attribute, in any order, and the v1 format\n"
               "\n" K_ADMIN " name=ops role=admin\n" K_CLIENT
               " name=app\n" K_READ " role=read name=dash\n" K_NSA
               " namespace=a name=tenant-a\n" K_NSB
               " namespace=b role=client name=tenant-b\n"
               "  " K_V1 "   legacy bot\n" K_GONE
               " name=gone role=client\n" K_NSLONG " namespace=" NS32 "\n");

    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *args[] = {"--api-keys-file", keyfile, "--demo", NULL};
    if (svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "lockservice starts with named keys");
        redis_stop(&redis);
        return t_done();
    }
    test_roles();
    test_namespaces();
    test_reload();
    test_log();
    test_bad_startup();
    test_no_keys_file();

    svc_stop(&svc); /* exit status 0 after its SIGHUPs */
    redis_stop(&redis);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        t_diag("could not remove %s", tmpdir);
    return t_done();
}
