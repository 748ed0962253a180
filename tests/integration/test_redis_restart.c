/* test_redis_restart.c -- Redis goes away under a running service: requests
 * in the gap are answered 503 backend_unavailable quickly, /readyz turns 503,
 * a suspended waiter is answered 503 instead of hanging, and once Redis is
 * back on the same port the service recovers by itself (locks, fences and
 * waiting, which needs the subscriber connection re-made). */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct redis_proc redis;
static struct svc_proc svc;

struct waiter {
    pthread_t thread;
    const char *path;
    long status;
    char code[64];
    char token[64];
    double finished;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct http_resp r;
    http(&r, svc.url, "POST", w->path, "{\"wait_ms\":20000}", NULL);
    w->finished = now_ms();
    w->status = r.status;
    snprintf(w->code, sizeof w->code, "%s", problem_code(&r));
    snprintf(w->token, sizeof w->token, "%s",
             jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);
    return NULL;
}

static long long acquire(const char *name, char *tok, size_t len, long *st)
{
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    http(&r, svc.url, "POST", path, "{}", NULL);
    long long f = r.status == 200 ? jint(&r, "fence") : -1;
    if (tok)
        snprintf(tok, len, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    if (st)
        *st = r.status;
    http_resp_free(&r);
    return f;
}

static long release(const char *name, const char *tok)
{
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/release", name);
    httpf(&r, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}", tok);
    long st = r.status;
    http_resp_free(&r);
    return st;
}

/* One outage: kill Redis with a waiter suspended, probe the gap, restart. */
/* last_fence: the latest fence of lock "suspended". */
static void outage(int round, long long *last_fence)
{
    char tok[64];
    struct http_resp r;
    struct waiter w = {.path = "/v1/locks/suspended/acquire"};

    /* Retried: a 503 from a connection left stale by the previous round is
     * reported by that round's checks, not here. */
    long long f = -1;
    for (int i = 0; i < 10 && f < 0; i++)
        f = acquire("suspended", tok, sizeof tok, NULL);
    t_ok(f > *last_fence,
         "round %d: acquire before the outage -> fence "
         "%lld",
         round, f);
    *last_fence = f;
    pthread_create(&w.thread, NULL, waiter_main, &w);
    t_ok(waiters_become(svc.url, 1, 5000), "round %d: a waiter is suspended",
         round);

    redis_kill(&redis);
    double killed = now_ms();

    http(&r, svc.url, "POST", "/v1/locks/gap/acquire", "{}", NULL);
    t_ok(problem_is(&r, 503, "backend_unavailable"),
         "round %d: acquire while Redis is down -> 503", round);
    t_ok(r.seconds < 2.0 * time_scale(), "round %d:   in %.3f s (< 2 s)", round,
         r.seconds);
    http_resp_free(&r);

    httpf(&r, svc.url, "POST", "/v1/locks/suspended/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 503, "backend_unavailable") &&
             r.seconds < 2.0 * time_scale(),
         "round %d: release while Redis is down -> 503 in %.3f s", round,
         r.seconds);
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/locks/gap", NULL, NULL);
    t_ok(problem_is(&r, 503, "backend_unavailable") &&
             r.seconds < 2.0 * time_scale(),
         "round %d: status while Redis is down -> 503 in %.3f s", round,
         r.seconds);
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/readyz", NULL, NULL);
    t_ok(problem_is(&r, 503, "backend_unavailable"),
         "round %d: /readyz -> 503 while Redis is down", round);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200, "round %d: /healthz stays 200", round);
    http_resp_free(&r);

    pthread_join(w.thread, NULL);
    t_ok(w.status == 503 && strcmp(w.code, "backend_unavailable") == 0,
         "round %d: the suspended waiter is answered 503 "
         "backend_unavailable (%ld %s)",
         round, w.status, w.code);
    t_ok(w.finished - killed < 3000 * time_scale(),
         "round %d:   %.0f ms after Redis died, not at its 20 s deadline",
         round, w.finished - killed);
    t_ok(waiters_become(svc.url, 0, 5000), "round %d: waiters gauge back to 0",
         round);

    t_ok(redis_restart(&redis) == 0, "round %d: redis back on port %d", round,
         redis.port);
    sleep_ms(1000);
    long st = 0;
    f = acquire("suspended", tok, sizeof tok, &st);
    t_ok(st == 200,
         "round %d: first request 1 s after Redis is back -> 200 "
         "(%ld)",
         round, st);
    for (int i = 0; i < 10 && f < 0; i++) /* that failure is reported */
        f = acquire("suspended", tok, sizeof tok, NULL);
    t_ok(f > *last_fence,
         "round %d: fence still increases after the restart (%lld > %lld)",
         round, f, *last_fence);
    if (f > 0)
        *last_fence = f;
    release("suspended", tok);
    /* Every worker thread had a connection to the old Redis; none of them
     * may turn a request into a 503 once Redis is back. */
    int good = 0;
    for (int i = 0; i < 12; i++) {
        char name[32];
        snprintf(name, sizeof name, "after-%d", i);
        acquire(name, NULL, 0, &st);
        good += st == 200;
    }
    t_ok(good == 12,
         "round %d: the next 12 acquires (spread over 4 threads) -> 200 "
         "(%d/12)",
         round, good);

    http(&r, svc.url, "GET", "/readyz", NULL, NULL);
    t_ok(r.status == 200, "round %d: /readyz 200 again", round);
    http_resp_free(&r);

    /* Waiting needs the subscriber again: a release must wake a waiter. */
    f = acquire("wake", tok, sizeof tok, NULL);
    struct waiter w2 = {.path = "/v1/locks/wake/acquire"};
    pthread_create(&w2.thread, NULL, waiter_main, &w2);
    t_ok(waiters_become(svc.url, 1, 5000),
         "a waiter is suspended on the restarted Redis");
    sleep_ms(50);
    release("wake", tok);
    double released = now_ms();
    pthread_join(w2.thread, NULL);
    t_ok(w2.status == 200 && w2.finished - released < 1000 * time_scale(),
         "round %d: a waiter is woken by a release after the restart "
         "(%ld in %.0f ms)",
         round, w2.status, w2.finished - released);
    release("wake", w2.token);
}

/* Redis restarts while the service is idle: every worker thread still holds
 * a connection to the old process when the next requests arrive. */
static void quiet_restart(long long *last_fence)
{
    long st = 0;
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "warm-%d", i);
        acquire(name, NULL, 0, &st);
    }
    t_ok(st == 200, "quiet: warm every worker's Redis connection");
    t_ok(redis_restart(&redis) == 0, "quiet: Redis restarted with no "
                                     "request in between");
    sleep_ms(1000);
    int good = 0;
    for (int i = 0; i < 12; i++) {
        char name[32];
        snprintf(name, sizeof name, "quiet-%d", i);
        acquire(name, NULL, 0, &st);
        good += st == 200;
    }
    t_ok(good == 12,
         "quiet: the first 12 acquires after the restart -> 200 "
         "(%d/12)",
         good);
    /* The fence check is about fences: retry past any 503 counted above. */
    long long f = -1;
    for (int i = 0; i < 10 && f < 0; i++)
        f = acquire("suspended", NULL, 0, NULL);
    t_ok(f > *last_fence,
         "quiet: fence of 'suspended' still increases (%lld > %lld)", f,
         *last_fence);
}

int main(void)
{
    const char *args[] = {"--redis-timeout-ms", "500", "--threads", "4", NULL};
    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "start redis-server and lockservice");
        return t_done();
    }
    long long fence = 0;
    outage(1, &fence);
    outage(2, &fence);
    quiet_restart(&fence);
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
