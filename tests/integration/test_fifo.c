/* test_fifo.c -- a lock's queue is FIFO by arrival (issue 9; DESIGN.md
 * section 2, "Waiting"). Every part uses the one lock "fifo".
 *
 *  - Three instances on one Redis, one holder, 15 waiters (5 per instance,
 *    round robin), each arriving only once the one before it is visibly
 *    queued (LLEN of the name's queue in Redis). After the release, each
 *    waiter holds the lock ~20 ms and releases it: they are granted in
 *    arrival order, each once, never two at a time. (Version 1 served the
 *    first waiter overall 11th: a release woke the head on every instance.)
 *  - One instance, a holder with ttl_ms 600 renewing every 200 ms while 10
 *    waiters queue one after another: a renewal does not reorder the queue;
 *    after the release the 10 are granted in arrival order, each once.
 *    (Version 1: [4,5,6,7,8,9,0,1,2,3], each expiry timer moving the head
 *    waiter to the tail.)
 *  - Fences strictly increase over every grant of the run. */
#include "harness.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fifo"
#define QUEUE_KEY "lockservice:{" NAME "}:queue"
#define INSTANCES 3
#define CROSS_WAITERS 15
#define RENEW_WAITERS 10
#define HOLD_MS 20

static struct redis_proc redis;
static struct svc_proc svc[INSTANCES];

/* Every grant of the run in grant order: grants never overlap, so each
 * holder records its fence before the next one can be granted. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static long long fences[64];
static char fence_who[64][16];
static int nfences;

static void record_fence(long long fence, const char *who)
{
    pthread_mutex_lock(&log_lock);
    if (nfences < 64) {
        fences[nfences] = fence;
        snprintf(fence_who[nfences], sizeof fence_who[0], "%s", who);
        nfences++;
    }
    pthread_mutex_unlock(&log_lock);
}

static long wait_ms(void)
{
    double w = 20000 * time_scale();
    return w > 60000 ? 60000 : (long)w;
}

struct waiter {
    pthread_t thread;
    int id; /* arrival position */
    const char *url;
    char label[16];
    long status;
    long release_status;
    int order; /* grant position, -1 if never granted */
    char body[256];
};

static atomic_int grant_seq;
static atomic_int holding;
static atomic_int overlaps;

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct http_resp r;
    httpf(&r, w->url, "POST", "/v1/locks/" NAME "/acquire", NULL,
          "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"%s\"}", wait_ms(),
          w->label);
    w->status = r.status;
    snprintf(w->body, sizeof w->body, "%s", r.body ? r.body : "");
    if (r.status != 200 || !jstr(&r, "token")) {
        http_resp_free(&r);
        return NULL;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&holding, &expected, 1))
        atomic_fetch_add(&overlaps, 1);
    w->order = atomic_fetch_add(&grant_seq, 1);
    record_fence(jint(&r, "fence"), w->label);
    char tok[64];
    snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    http_resp_free(&r);
    sleep_ms(HOLD_MS);
    atomic_store(&holding, 0);
    httpf(&r, w->url, "POST", "/v1/locks/" NAME "/release", NULL,
          "{\"token\":\"%s\"}", tok);
    w->release_status = r.status;
    http_resp_free(&r);
    return NULL;
}

static void waiter_start(struct waiter *w, int id, const char *url,
                         const char *tag)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->url = url;
    w->order = -1;
    snprintf(w->label, sizeof w->label, "%s%d", tag, id);
    pthread_create(&w->thread, NULL, waiter_main, w);
}

/* Parked waiters over every running instance, or -1. */
static double parked_total(void)
{
    double sum = 0;
    for (int i = 0; i < INSTANCES; i++) {
        if (svc[i].pid <= 0)
            continue;
        double v = metric_get(svc[i].url, "lockservice_waiters", NULL);
        if (v < 0)
            return -1;
        sum += v;
    }
    return sum;
}

/* Set once the Redis queue failed to show a waiter: from then on arrivals
 * are told by the parked-waiter gauges, so that a service without the queue
 * still runs the test to its order check. */
static bool queue_unseen;

/* Waits until n waiters are queued: LLEN of the queue is n (or, once the
 * queue was never seen, the gauges count n). True when it was the queue. */
static bool wait_queued(long long n)
{
    double limit = 5000 * time_scale();
    double end = now_ms() + limit;
    long long len = LLONG_MIN;
    if (!queue_unseen) {
        while (now_ms() < end) {
            len = redis_cli_int(&redis, "LLEN %s", QUEUE_KEY);
            if (len == n)
                return true;
            sleep_ms(5);
        }
        t_diag("%s never held %lld entries within %.0f ms (LLEN %lld): "
               "telling arrivals by the lockservice_waiters gauges instead",
               QUEUE_KEY, n, limit, len);
        queue_unseen = true;
        end = now_ms() + limit;
    }
    while (now_ms() < end) {
        if (parked_total() == (double)n)
            return false;
        sleep_ms(10);
    }
    t_diag("the instances do not park %lld waiters (gauges %g)", n,
           parked_total());
    return false;
}

/* Acquires NAME on url with ttl_ms; the token into tok. Returns the fence
 * or -1. */
static long long hold(const char *url, long ttl_ms, char *tok, size_t len)
{
    struct http_resp r;
    httpf(&r, url, "POST", "/v1/locks/" NAME "/acquire", NULL,
          "{\"ttl_ms\":%ld,\"owner\":\"holder\"}", ttl_ms);
    long long f = r.status == 200 ? jint(&r, "fence") : -1;
    snprintf(tok, len, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    if (r.status != 200)
        t_diag("hold: %ld %s", r.status, r.body);
    http_resp_free(&r);
    return f;
}

static long release(const char *url, const char *tok)
{
    struct http_resp r;
    httpf(&r, url, "POST", "/v1/locks/" NAME "/release", NULL,
          "{\"token\":\"%s\"}", tok);
    long st = r.status;
    http_resp_free(&r);
    return st;
}

/* Checks that the n waiters were granted once each, in arrival order, and
 * released; prints both orders when not. */
static void check_order(const char *what, struct waiter *w, int n)
{
    char arrival[256] = "", granted[256] = "";
    int by_order[64];
    int once = 0, released = 0;
    bool in_order = true;

    for (int i = 0; i < n; i++)
        by_order[i] = -1;
    for (int i = 0; i < n; i++) {
        once += w[i].status == 200;
        released += w[i].release_status == 200;
        if (w[i].status != 200)
            t_diag("%s: waiter %d: %ld %s", what, i, w[i].status, w[i].body);
        if (w[i].order >= 0 && w[i].order < n)
            by_order[w[i].order] = i;
        if (w[i].order != i)
            in_order = false;
    }
    for (int i = 0; i < n; i++) {
        size_t a = strlen(arrival), g = strlen(granted);
        snprintf(arrival + a, sizeof arrival - a, "%s%d", i ? "," : "", i);
        snprintf(granted + g, sizeof granted - g, "%s%d", i ? "," : "",
                 by_order[i]);
    }
    t_ok(once == n && released == n,
         "%s: each of the %d waiters granted (%d) and released (%d)", what, n,
         once, released);
    t_ok(in_order && once == n,
         "%s: granted in arrival order (arrived [%s], granted [%s])", what,
         arrival, granted);
}

/* Three instances, 15 waiters round robin, then one release. */
static void test_across_instances(void)
{
    struct waiter w[CROSS_WAITERS];
    char tok[64];
    bool all_seen = true;

    atomic_store(&grant_seq, 0);
    atomic_store(&overlaps, 0);
    long long f0 = hold(svc[0].url, 30000, tok, sizeof tok);
    if (!t_ok(f0 > 0, "across instances: the holder acquires (fence %lld)", f0))
        return;
    record_fence(f0, "holder-a");
    for (int i = 0; i < CROSS_WAITERS; i++) {
        waiter_start(&w[i], i, svc[i % INSTANCES].url, "x");
        all_seen = wait_queued(i + 1) && all_seen;
    }
    t_ok(all_seen,
         "across instances: each of the %d waiters was in the Redis queue "
         "(LLEN of %s) before the next one arrived",
         CROSS_WAITERS, QUEUE_KEY);
    t_ok(release(svc[0].url, tok) == 200, "across instances: holder releases");
    for (int i = 0; i < CROSS_WAITERS; i++)
        pthread_join(w[i].thread, NULL);
    check_order("across 3 instances", w, CROSS_WAITERS);
    t_ok(atomic_load(&overlaps) == 0,
         "across instances: never two holders at a time (%d overlaps)",
         atomic_load(&overlaps));
    long long left = redis_cli_int(&redis, "LLEN %s", QUEUE_KEY);
    t_ok(left == 0 || left == LLONG_MIN,
         "across instances: the queue is empty afterwards (LLEN %lld)", left);
}

/* ---- a renewing holder ---- */

/* The holder renews every 200 ms a lease of 600 ms (README: every ttl/3);
 * slower under a wrapper, where a request can take longer than 400 ms. */
static long renew_every_ms(void)
{
    return (long)(200 * time_scale());
}

struct renewer {
    pthread_t thread;
    const char *url;
    char token[64];
    atomic_int stop;
    int renewals, failures;
    char last_failure[256];
};

static void *renewer_main(void *arg)
{
    struct renewer *rn = arg;
    while (!atomic_load(&rn->stop)) {
        sleep_ms(renew_every_ms());
        struct http_resp r;
        httpf(&r, rn->url, "POST", "/v1/locks/" NAME "/renew", NULL,
              "{\"token\":\"%s\",\"ttl_ms\":%ld}", rn->token,
              3 * renew_every_ms());
        if (r.status == 200) {
            rn->renewals++;
        } else {
            rn->failures++;
            snprintf(rn->last_failure, sizeof rn->last_failure, "%ld %s",
                     r.status, r.body ? r.body : "");
        }
        http_resp_free(&r);
    }
    return NULL;
}

static void test_renewing_holder(void)
{
    struct waiter w[RENEW_WAITERS];
    struct renewer rn;
    bool all_seen = true;

    memset(&rn, 0, sizeof rn);
    atomic_store(&grant_seq, 0);
    atomic_store(&overlaps, 0);
    rn.url = svc[0].url;
    long long f0 =
        hold(svc[0].url, 3 * renew_every_ms(), rn.token, sizeof rn.token);
    if (!t_ok(f0 > 0, "renewing holder: acquires with ttl_ms 600 (fence %lld)",
              f0))
        return;
    record_fence(f0, "holder-b");
    double t0 = now_ms();
    pthread_create(&rn.thread, NULL, renewer_main, &rn);
    for (int i = 0; i < RENEW_WAITERS; i++) {
        waiter_start(&w[i], i, svc[0].url, "r");
        all_seen = wait_queued(i + 1) && all_seen;
    }
    t_ok(all_seen,
         "renewing holder: each of the %d waiters was in the Redis queue "
         "before the next one arrived",
         RENEW_WAITERS);
    /* Several lease lengths with everybody queued, and 2.5 s in all: the
     * holder's old expiries pass while the queue is full. */
    double last_arrival = now_ms();
    while (now_ms() - t0 < 2500 * time_scale() ||
           now_ms() - last_arrival < 6.0 * (double)renew_every_ms())
        sleep_ms(50);
    atomic_store(&rn.stop, 1);
    pthread_join(rn.thread, NULL);
    t_ok(rn.failures == 0 && rn.renewals >= 6,
         "renewing holder: %d renewals every 200 ms over %.1f s, all 200 "
         "(%d failed%s%s)",
         rn.renewals, (now_ms() - t0) / 1000, rn.failures,
         rn.failures ? ": " : "", rn.last_failure);
    long long queued = redis_cli_int(&redis, "LLEN %s", QUEUE_KEY);
    double parked = metric_get(svc[0].url, "lockservice_waiters", NULL);
    t_ok(atomic_load(&grant_seq) == 0 && parked == RENEW_WAITERS,
         "renewing holder: while it renews, nobody is granted and all %d "
         "still wait (parked %g, LLEN %lld)",
         RENEW_WAITERS, parked, queued);
    t_ok(release(svc[0].url, rn.token) == 200,
         "renewing holder: releases (200)");
    for (int i = 0; i < RENEW_WAITERS; i++)
        pthread_join(w[i].thread, NULL);
    check_order("renewing holder", w, RENEW_WAITERS);
    t_ok(atomic_load(&overlaps) == 0,
         "renewing holder: never two holders at a time (%d overlaps)",
         atomic_load(&overlaps));
}

static void test_fences(void)
{
    int bad = -1;
    for (int i = 1; i < nfences; i++)
        if (fences[i] <= fences[i - 1]) {
            bad = i;
            break;
        }
    if (bad > 0)
        t_diag("grant %d (%s) fence %lld after grant %d (%s) fence %lld", bad,
               fence_who[bad], fences[bad], bad - 1, fence_who[bad - 1],
               fences[bad - 1]);
    t_ok(bad < 0 && nfences == 2 + CROSS_WAITERS + RENEW_WAITERS,
         "fences strictly increase over all %d grants of the run", nfences);
}

int main(void)
{
    char handoff[24];
    snprintf(handoff, sizeof handoff, "%ld", (long)(250 * time_scale()));
    const char *args[] = {"--handoff-ms", handoff, NULL};
    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    for (int i = 0; i < INSTANCES; i++)
        if (svc_start(&svc[i], &redis, args) != 0) {
            t_ok(false, "lockservice instance %d starts", i);
            return t_done();
        }
    test_across_instances();
    test_renewing_holder();
    test_fences();
    for (int i = 0; i < INSTANCES; i++)
        svc_stop(&svc[i]);
    redis_stop(&redis);
    return t_done();
}
