/* test_faults.c -- Redis faults. The service runs with --redis-timeout-ms
 * 300 and --demo.
 *
 *  - Redis killed: every Redis-backed route answers 503 backend_unavailable
 *    within 1.5 s (the first request after the kill and later ones), /readyz
 *    says 503, /healthz stays 200; a waiter suspended when Redis died is
 *    answered 503, not left hanging until its deadline.
 *  - Redis back (same port, data lost): the service serves again within
 *    ~1 s, no restart; fences stay above the ones handed out before.
 *  - The subscriber reconnects: after the restart, and after CLIENT KILL of
 *    the subscriber alone, a release wakes a waiter in < 1 s.
 *  - Redis frozen (SIGSTOP: connections accepted, nothing answered) and
 *    Redis slow (DEBUG SLEEP 2): 503 after about the timeout, and afterwards
 *    every worker answers correctly (no stuck worker, no reply read by the
 *    wrong request). */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct redis_proc redis;
static struct svc_proc svc;

#define TIMEOUT_MS 300
#define BOUND_MS 1500.0

static double bound(void)
{
    return BOUND_MS * time_scale();
}

struct route_case {
    const char *method, *path, *body;
};

static char held_token[64];

static void fill_routes(struct route_case *c, size_t *n)
{
    static char renew[128], release[128];
    snprintf(renew, sizeof renew, "{\"token\":\"%s\"}", held_token);
    snprintf(release, sizeof release, "{\"token\":\"%s\"}", held_token);
    struct route_case all[] = {
        {"POST", "/v1/locks/f-new/acquire", "{\"ttl_ms\":1000}"},
        {"POST", "/v1/locks/f-held/acquire",
         "{\"ttl_ms\":1000,\"wait_ms\":2000}"},
        {"POST", "/v1/locks/f-held/renew", renew},
        {"POST", "/v1/locks/f-held/release", release},
        {"GET", "/v1/locks/f-held", NULL},
        {"HEAD", "/v1/locks/f-held", NULL},
        {"PUT", "/demo/inventory/f-sku", "{\"stock\":3}"},
        {"GET", "/demo/inventory/f-sku", NULL},
        {"POST", "/demo/inventory/f-sku/purchase",
         "{\"mode\":\"unsafe\",\"work_ms\":0}"},
        {"POST", "/demo/inventory/f-sku/purchase",
         "{\"mode\":\"locked\",\"work_ms\":0}"},
        {"POST", "/demo/inventory/f-sku/purchase",
         "{\"mode\":\"fenced\",\"work_ms\":0}"},
    };
    memcpy(c, all, sizeof all);
    *n = sizeof all / sizeof all[0];
}

/* Every Redis-backed route -> 503 backend_unavailable within the bound. */
static void all_routes_503(const char *when)
{
    struct route_case c[16];
    size_t n;
    fill_routes(c, &n);
    for (size_t i = 0; i < n; i++) {
        struct http_resp r;
        http_timeout(&r, 10000, svc.url, c[i].method, c[i].path, c[i].body,
                     NULL);
        bool ok;
        if (strcmp(c[i].method, "HEAD") == 0)
            ok = r.status == 503; /* no body to read a code from */
        else
            ok = problem_is(&r, 503, "backend_unavailable");
        t_ok(ok && r.seconds * 1000 < bound(),
             "%s: %s %s -> 503 backend_unavailable in %.0f ms", when,
             c[i].method, c[i].path, r.seconds * 1000);
        http_resp_free(&r);
    }
    struct http_resp r;
    http_timeout(&r, 10000, svc.url, "GET", "/readyz", NULL, NULL);
    t_ok(problem_is(&r, 503, "backend_unavailable") &&
             r.seconds * 1000 < bound(),
         "%s: /readyz -> 503 in %.0f ms", when, r.seconds * 1000);
    http_resp_free(&r);
    http_timeout(&r, 10000, svc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200 && r.seconds < time_scale(),
         "%s: /healthz still 200 (%ld)", when, r.status);
    http_resp_free(&r);
}

/* ---- waiters --------------------------------------------------------------*/

struct waiter_arg {
    const char *name;
    int wait_ms;
    long status;
    double done_at;
    char code[64];
    char token[64];
};

static void *waiter(void *p)
{
    struct waiter_arg *w = p;
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", w->name);
    httpf(&r, svc.url, "POST", path, NULL, "{\"ttl_ms\":5000,\"wait_ms\":%d}",
          w->wait_ms);
    w->done_at = now_ms();
    w->status = r.status;
    snprintf(w->code, sizeof w->code, "%s", problem_code(&r));
    if (jstr(&r, "token"))
        snprintf(w->token, sizeof w->token, "%s", jstr(&r, "token"));
    http_resp_free(&r);
    return NULL;
}

/* Holds name for a long time; returns its token in tok. */
static bool hold(const char *name, char *tok, size_t cap)
{
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    http(&r, svc.url, "POST", path, "{\"ttl_ms\":30000}", NULL);
    bool ok = r.status == 200 && jstr(&r, "token");
    snprintf(tok, cap, "%s", ok ? jstr(&r, "token") : "");
    if (!ok)
        t_diag("hold %s: %ld %s", name, r.status, r.body);
    http_resp_free(&r);
    return ok;
}

/* A waiter registered now is granted within 1 s of a release (its lease
 * has 30 s to run and it may wait 10 s: only the notification wakes it). */
static void release_wakes_waiter(const char *name, const char *when)
{
    char tok[64];
    if (!hold(name, tok, sizeof tok)) {
        t_ok(false, "%s: hold %s", when, name);
        return;
    }
    struct waiter_arg w = {.name = name, .wait_ms = 10000};
    pthread_t th;
    double before = metric_get(svc.url, "lockservice_waiters", NULL);
    pthread_create(&th, NULL, waiter, &w);
    t_ok(before >= 0 && waiters_become(svc.url, before + 1, 3000),
         "%s: a waiter is suspended on %s", when, name);
    sleep_ms(200);
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/release", name);
    httpf(&r, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}", tok);
    double released = now_ms();
    long rs = r.status;
    http_resp_free(&r);
    pthread_join(th, NULL);
    double lag = w.done_at - released;
    t_ok(rs == 200 && w.status == 200 && lag < 1000 * time_scale(),
         "%s: a release wakes the waiter in %.0f ms (< 1 s; release %ld, "
         "waiter %ld %s)",
         when, lag, rs, w.status, w.code);
    if (w.token[0]) {
        httpf(&r, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}", w.token);
        http_resp_free(&r);
    }
}

/* ---- slow Redis -----------------------------------------------------------*/

struct timed {
    long status;
    char code[64];
    double ms;
    int i;
};

static void *timed_acquire(void *p)
{
    struct timed *t = p;
    struct http_resp r;
    char path[64];
    snprintf(path, sizeof path, "/v1/locks/slow-%d/acquire", t->i);
    http_timeout(&r, 10000, svc.url, "POST", path, "{\"ttl_ms\":1000}", NULL);
    t->status = r.status;
    t->ms = r.seconds * 1000;
    snprintf(t->code, sizeof t->code, "%s", problem_code(&r));
    http_resp_free(&r);
    return NULL;
}

static void test_slow_redis(void)
{
    struct redis_stall stall;
    t_ok(redis_stall_begin(&stall, &redis, 2), "Redis stalls (DEBUG SLEEP 2)");
    struct timed t[4];
    pthread_t th[4];
    double t0 = now_ms();
    for (int i = 0; i < 4; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].i = i;
        pthread_create(&th[i], NULL, timed_acquire, &t[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        t_ok(t[i].status == 503 &&
                 strcmp(t[i].code, "backend_unavailable") == 0 &&
                 t[i].ms >= TIMEOUT_MS * 0.8 && t[i].ms < bound(),
             "DEBUG SLEEP 2: acquire %d -> 503 %s after %.0f ms (timeout %d)",
             i, t[i].code, t[i].ms, TIMEOUT_MS);
    struct http_resp r;
    http_timeout(&r, 10000, svc.url, "GET", "/readyz", NULL, NULL);
    t_ok(r.status == 503 && r.seconds * 1000 < bound(),
         "DEBUG SLEEP 2: /readyz -> 503 in %.0f ms", r.seconds * 1000);
    http_resp_free(&r);
    redis_stall_end(&stall);
    t_diag("DEBUG SLEEP over after %.0f ms", now_ms() - t0);
    double back =
        serves_again(svc.url, "after-slow", 2000 * time_scale(), NULL);
    t_ok(back >= 0 && back < 1000 * time_scale(),
         "after DEBUG SLEEP the service serves again in %.0f ms", back);
    workers_sane(svc.url, "after DEBUG SLEEP");
}

/* SIGSTOP: the TCP connection stays open, Redis never answers. */
static void test_frozen_redis(void)
{
    kill(redis.pid, SIGSTOP);
    struct timed t[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].i = 10 + i;
        pthread_create(&th[i], NULL, timed_acquire, &t[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++)
        t_ok(t[i].status == 503 &&
                 strcmp(t[i].code, "backend_unavailable") == 0 &&
                 t[i].ms < bound(),
             "Redis frozen (SIGSTOP): acquire %d -> 503 %s in %.0f ms", i,
             t[i].code, t[i].ms);
    /* A second round: the reconnect's connect must time out too. */
    for (int i = 0; i < 2; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].i = 20 + i;
        pthread_create(&th[i], NULL, timed_acquire, &t[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    int good = 0;
    double worst = 0;
    for (int i = 0; i < 2; i++) {
        good += t[i].status == 503 && t[i].ms < bound();
        if (t[i].ms > worst)
            worst = t[i].ms;
    }
    t_ok(good == 2,
         "Redis frozen, second round: 2/2 -> 503 (got %d, slowest %.0f ms)",
         good, worst);
    /* A burst larger than the worker pool (2 threads): each request is
     * still answered within the bound, not after the timeouts of all the
     * requests queued before it on a blocked worker. */
    {
        enum { BURST = 16 };
        struct timed b[BURST];
        pthread_t bt[BURST];
        for (int i = 0; i < BURST; i++) {
            memset(&b[i], 0, sizeof b[i]);
            b[i].i = 40 + i;
            pthread_create(&bt[i], NULL, timed_acquire, &b[i]);
        }
        int ok503 = 0;
        double slow = 0;
        for (int i = 0; i < BURST; i++) {
            pthread_join(bt[i], NULL);
            ok503 += b[i].status == 503 && b[i].ms < bound();
            if (b[i].ms > slow)
                slow = b[i].ms;
        }
        t_ok(ok503 == BURST,
             "Redis frozen: a burst of %d concurrent acquires (2 workers) "
             "-> all 503 within %.0f ms (%d did; slowest %.0f ms)",
             BURST, bound(), ok503, slow);
    }
    kill(redis.pid, SIGCONT);
    double back =
        serves_again(svc.url, "after-frozen", 3000 * time_scale(), NULL);
    t_ok(back >= 0 && back < 1000 * time_scale(),
         "after SIGCONT the service serves again in %.0f ms", back);
    workers_sane(svc.url, "after the freeze");
}

/* ---- Redis down, then back ------------------------------------------------*/

static void test_redis_down(void)
{
    struct http_resp r;
    char tok[64];

    /* State before: a held lock, a SKU, a waiter on the held lock. */
    if (!hold("f-held", held_token, sizeof held_token))
        t_ok(false, "hold f-held");
    http(&r, svc.url, "PUT", "/demo/inventory/f-sku", "{\"stock\":3}", NULL);
    t_ok(r.status == 200, "PUT /demo/inventory/f-sku -> 200 (%ld)", r.status);
    http_resp_free(&r);
    long long fence_before = 0;
    http(&r, svc.url, "GET", "/v1/locks/f-held", NULL, NULL);
    fence_before = jint(&r, "fence");
    http_resp_free(&r);

    hold("f-wait", tok, sizeof tok);
    struct waiter_arg w = {.name = "f-wait", .wait_ms = 20000};
    pthread_t th;
    pthread_create(&th, NULL, waiter, &w);
    t_ok(waiters_become(svc.url, 1, 3000), "a waiter is suspended on f-wait");
    double errors0 =
        metric_get(svc.url, "lockservice_redis_errors_total", NULL);

    redis_kill(&redis);
    double killed = now_ms();
    pthread_join(th, NULL);
    t_ok(w.status == 503 && strcmp(w.code, "backend_unavailable") == 0 &&
             w.done_at - killed < bound(),
         "the waiter suspended when Redis died -> 503 %s in %.0f ms (not at "
         "its 20 s deadline)",
         w.code, w.done_at - killed);
    t_ok(waiters_become(svc.url, 0, 1000), "  no waiter left suspended");

    all_routes_503("Redis down (1st round)");
    all_routes_503("Redis down (2nd round)");

    /* Concurrency while down: every request answered in time. */
    {
        struct timed t[8];
        pthread_t tt[8];
        for (int i = 0; i < 8; i++) {
            memset(&t[i], 0, sizeof t[i]);
            t[i].i = 30 + i;
            pthread_create(&tt[i], NULL, timed_acquire, &t[i]);
        }
        int good = 0;
        for (int i = 0; i < 8; i++) {
            pthread_join(tt[i], NULL);
            good += t[i].status == 503 && t[i].ms < bound();
        }
        t_ok(good == 8,
             "Redis down: 8 concurrent acquires all 503 in time "
             "(%d/8)",
             good);
    }
    /* A new waiter while Redis is down is answered 503 at once. */
    http_timeout(&r, 10000, svc.url, "POST", "/v1/locks/f-wait/acquire",
                 "{\"wait_ms\":20000}", NULL);
    t_ok(problem_is(&r, 503, "backend_unavailable") &&
             r.seconds * 1000 < bound(),
         "Redis down: an acquire with wait_ms 20000 -> 503 in %.0f ms",
         r.seconds * 1000);
    http_resp_free(&r);
    double errors1 =
        metric_get(svc.url, "lockservice_redis_errors_total", NULL);
    t_ok(errors1 > errors0, "lockservice_redis_errors_total grew (%g -> %g)",
         errors0, errors1);

    /* Redis back on the same port (its data is gone). */
    t_ok(redis_restart(&redis) == 0, "redis-server restarts on its port");
    long long fence_after = 0;
    double back =
        serves_again(svc.url, "f-back", 3000 * time_scale(), &fence_after);
    t_ok(back >= 0 && back < 1000 * time_scale(),
         "the service serves again %.0f ms after Redis is back, no restart",
         back);
    t_ok(fence_after > fence_before,
         "the first fence after the data loss (%lld) is above the last one "
         "before (%lld)",
         fence_after, fence_before);
    http(&r, svc.url, "GET", "/readyz", NULL, NULL);
    t_ok(r.status == 200, "/readyz -> 200 again (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "PUT", "/demo/inventory/f-sku", "{\"stock\":3}", NULL);
    t_ok(r.status == 200, "the demo serves again (%ld)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/demo/inventory/f-sku/purchase",
         "{\"mode\":\"fenced\",\"work_ms\":0}", NULL);
    t_ok(r.status == 201, "a fenced purchase works after the restart (%ld %s)",
         r.status, r.body);
    http_resp_free(&r);

    /* The subscriber reconnected: a release wakes a new waiter. */
    release_wakes_waiter("f-sub1", "after the Redis restart");

    /* Kill only the subscriber connection; Redis stays up. A waiter
     * suspended across the kill is retried, not lost. */
    {
        char tok2[64];
        hold("f-sub2", tok2, sizeof tok2);
        struct waiter_arg w2 = {.name = "f-sub2", .wait_ms = 10000};
        pthread_t t2;
        pthread_create(&t2, NULL, waiter, &w2);
        t_ok(waiters_become(svc.url, 1, 3000),
             "a waiter is suspended on f-sub2");
        char *out = redis_cli(&redis, "CLIENT KILL TYPE pubsub");
        t_diag("CLIENT KILL TYPE pubsub: %s", out ? out : "(null)");
        free(out);
        /* The subscriber is back once Redis lists a pubsub client again. */
        bool resubscribed = false;
        double until = now_ms() + 5000 * time_scale();
        while (!resubscribed && now_ms() < until) {
            char *subs = redis_cli(&redis, "CLIENT LIST TYPE pubsub");
            resubscribed = subs != NULL && strstr(subs, "id=") != NULL;
            free(subs);
            if (!resubscribed)
                sleep_ms(50);
        }
        t_ok(resubscribed, "the subscriber connection is back");
        double before = now_ms();
        httpf(&r, svc.url, "POST", "/v1/locks/f-sub2/release", NULL,
              "{\"token\":\"%s\"}", tok2);
        http_resp_free(&r);
        pthread_join(t2, NULL);
        t_ok(w2.status == 200 && w2.done_at - before < 1000 * time_scale(),
             "a waiter suspended across a subscriber kill is woken by the "
             "release in %.0f ms (%ld %s)",
             w2.done_at - before, w2.status, w2.code);
    }
    release_wakes_waiter("f-sub3", "after the subscriber kill");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *args[] = {"--redis-timeout-ms", "300", "--demo",
                          "--threads",          "2",   NULL};
    if (svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "lockservice starts");
        redis_stop(&redis);
        return t_done();
    }

    release_wakes_waiter("f-sub0", "before any fault");
    test_slow_redis();
    test_frozen_redis();
    test_redis_down();

    struct http_resp r;
    http(&r, svc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200, "the same process is still serving (%ld)", r.status);
    http_resp_free(&r);
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
