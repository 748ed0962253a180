/* test_waiting.c -- server-side waiting (acquire with wait_ms) on a service
 * with --threads 2: prompt hand-over on release and on lease expiry, the
 * wait deadline, 200 concurrent waiters on one lock with mutual exclusion
 * and increasing fences, and a waiter whose client goes away. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct redis_proc redis;
static struct svc_proc svc;

struct waiter {
    pthread_t thread;
    const char *path;
    char body[128];
    long timeout_ms; /* 0: http()'s default */
    long status;
    long long fence;
    char code[64];
    char token[64];
    double started, finished;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct http_resp r;
    w->started = now_ms();
    if (w->timeout_ms > 0)
        http_timeout(&r, w->timeout_ms, svc.url, "POST", w->path, w->body,
                     NULL);
    else
        http(&r, svc.url, "POST", w->path, w->body, NULL);
    w->finished = now_ms();
    w->status = r.status;
    w->fence = jint(&r, "fence");
    snprintf(w->code, sizeof w->code, "%s", problem_code(&r));
    snprintf(w->token, sizeof w->token, "%s",
             jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);
    return NULL;
}

static void waiter_start(struct waiter *w, const char *path, long wait_ms,
                         long timeout_ms)
{
    memset(w, 0, sizeof *w);
    w->path = path;
    w->timeout_ms = timeout_ms;
    snprintf(w->body, sizeof w->body, "{\"wait_ms\":%ld,\"ttl_ms\":30000}",
             wait_ms);
    pthread_create(&w->thread, NULL, waiter_main, w);
}

static long long hold(const char *name, long ttl_ms, char *tok, size_t len)
{
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    httpf(&r, svc.url, "POST", path, NULL, "{\"ttl_ms\":%ld}", ttl_ms);
    long long f = r.status == 200 ? jint(&r, "fence") : -1;
    snprintf(tok, len, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);
    return f;
}

static long drop(const char *name, const char *tok)
{
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/release", name);
    httpf(&r, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}", tok);
    long st = r.status;
    http_resp_free(&r);
    return st;
}

/* True when id looks like a v2 waiter id "<instance16hex>:<worker>:<n>". */
static bool waiter_id_like(const char *id)
{
    size_t i = 0;
    for (; i < 16; i++)
        if (!strchr("0123456789abcdef", id[i]) || id[i] == '\0')
            return false;
    for (int part = 0; part < 2; part++) {
        if (id[i++] != ':' || id[i] < '0' || id[i] > '9')
            return false;
        while (id[i] >= '0' && id[i] <= '9')
            i++;
    }
    return id[i] == '\0';
}

/* An integer answer of redis-cli, or -99 when there is none. */
static long cli_int(const char *cmd)
{
    char *out = redis_cli(&redis, cmd);
    long v = out && *out ? strtol(out, NULL, 10) : -99;
    free(out);
    return v;
}

static void test_granted_on_release(void)
{
    char tok[64];
    struct waiter w;
    long long f0 = hold("handover", 30000, tok, sizeof tok);
    waiter_start(&w, "/v1/locks/handover/acquire", 10000, 0);
    t_ok(waiters_become(svc.url, 1, 5000), "waiter is suspended (gauge 1)");
    /* v2: the name's waiters are a queue (a list of waiter ids, oldest
     * first) plus a hash of their entries, both with a TTL (the longest wait
     * queued + 1 s), where v1 had one sorted set. */
    long len = cli_int("LLEN lockservice:{handover}:queue");
    long ttl = cli_int("PTTL lockservice:{handover}:queue");
    long entries = cli_int("HLEN lockservice:{handover}:waiters");
    long ettl = cli_int("PTTL lockservice:{handover}:waiters");
    t_ok(len == 1 && ttl > 0 && ttl <= 11000 && entries == 1 && ettl > 0 &&
             ettl <= 11000,
         "the waiter is in the name's queue and waiters hash, which have a "
         "TTL (%ld queued, PTTL %ld; %ld entries, PTTL %ld)",
         len, ttl, entries, ettl);
    char *id = redis_cli(&redis, "LINDEX lockservice:{handover}:queue 0");
    if (id)
        id[strcspn(id, "\n")] = '\0';
    char cmd[256];
    snprintf(cmd, sizeof cmd, "HEXISTS lockservice:{handover}:waiters %s",
             id && *id ? id : "(none)");
    t_ok(id && waiter_id_like(id) && cli_int(cmd) == 1,
         "the queued id is a waiter id <instance>:<worker>:<n> with an entry "
         "in the waiters hash (%s)",
         id ? id : "(none)");
    free(id);
    long st = drop("handover", tok);
    double released = now_ms();
    pthread_join(w.thread, NULL);
    double lag = w.finished - released;
    t_ok(st == 200 && w.status == 200 && w.fence > f0,
         "waiter granted after release with a newer fence (%ld, %lld > %lld)",
         w.status, w.fence, f0);
    t_ok(lag < 100 * time_scale(),
         "waiter answered %.1f ms after the release returned (< 100 ms)", lag);
    t_ok(waiters_become(svc.url, 0, 2000), "waiters gauge back to 0");
    long left = cli_int("EXISTS lockservice:{handover}:queue "
                        "lockservice:{handover}:waiters");
    t_ok(left == 0,
         "the grant took the waiter out of the queue and the waiters hash "
         "(EXISTS %ld)",
         left);
    drop("handover", w.token);
    /* Nobody waits any more: the release reserved nothing. */
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/handover/acquire", "{}", NULL);
    t_ok(r.status == 200,
         "once the waiter was served, a release keeps nothing back: a "
         "newcomer gets the lock at once (%ld)",
         r.status);
    if (jstr(&r, "token"))
        drop("handover", jstr(&r, "token"));
    http_resp_free(&r);
}

/* A ghost: a waiter with no client behind it, queued in Redis the way the
 * service queues one (v2: its id at the tail of <prefix>{<name>}:queue, its
 * entry "<deadline ms> <ttl ms> <token> <owner>" in <prefix>{<name>}:waiters,
 * both keys expiring in 10 s, like a 10 s wait). v1 put an id in a sorted
 * set <prefix>waitq:<name>, and any such entry had a release reserve the
 * lock; v2 checks the waiter's instance. So a ghost of a dead instance (no
 * <prefix>{<name>}:queue:alive:<instance> key: what a waiter leaves behind when
 * its instance dies, since a waiter whose client hangs up now leaves the queue
 * at once) is skipped and dropped: nobody gets it. With alive, the test
 * sets its instance key (SET ... PX), so the ghost looks alive: a release
 * hands it the lock, and nobody claims it. redis_cli splits on spaces, so
 * the entry (which has spaces) is written by a script without any. */
#define GHOST_INSTANCE "0badc0de0badc0de"
#define GHOST_ID GHOST_INSTANCE ":0:1"

/* Returns true when the ghost is then queued (the queue's head, with an
 * entry), so that a check of it skipping cannot pass because it is not
 * there. */
static bool plant_ghost(const char *prefix, const char *name, long ttl_ms,
                        bool alive)
{
    char cmd[512], *out;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* Redis TIME: the same clock */
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    long long deadline = now + 10000;
    snprintf(cmd, sizeof cmd,
             "EVAL redis.call('RPUSH',KEYS[1],ARGV[1]);"
             "redis.call('HSET',KEYS[2],ARGV[1],table.concat(ARGV,'\\32',2));"
             "redis.call('PEXPIRE',KEYS[1],10000);"
             "redis.call('PEXPIRE',KEYS[2],10000) 2 %s{%s}:queue "
             "%s{%s}:waiters %s %lld %lld %ld "
             "0123456789abcdef0123456789abcdef 0 - ghost",
             prefix, name, prefix, name, GHOST_ID, deadline, now, ttl_ms);
    out = redis_cli(&redis, cmd);
    free(out);
    if (alive)
        snprintf(cmd, sizeof cmd, "SET %s{%s}:queue:alive:%s 1 PX 10000",
                 prefix, name, GHOST_INSTANCE);
    else
        snprintf(cmd, sizeof cmd, "DEL %s{%s}:queue:alive:%s", prefix, name,
                 GHOST_INSTANCE);
    out = redis_cli(&redis, cmd);
    free(out);
    snprintf(cmd, sizeof cmd, "LINDEX %s{%s}:queue 0", prefix, name);
    out = redis_cli(&redis, cmd);
    bool head = out && strcmp(out, GHOST_ID "\n") == 0;
    free(out);
    snprintf(cmd, sizeof cmd, "HEXISTS %s{%s}:waiters %s", prefix, name,
             GHOST_ID);
    return head && cli_int(cmd) == 1;
}

/* EXISTS of name's queue and waiters hash (0: nobody queued). */
static long queued_keys(const char *prefix, const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "EXISTS %s{%s}:queue %s{%s}:waiters", prefix,
             name, prefix, name);
    return cli_int(cmd);
}

/* The hand-off window the service runs with: 250 ms by default, scaled up
 * under sanitizers and valgrind so that the test's own requests fit in it. */
static long handoff_ms;

/* v1 premise gone: there, a ghost in the waiter set (no client behind it)
 * had a release reserve the lock for it. In v2 a ghost of a dead instance
 * gets nothing: the release skips it and drops it from the queue, and a
 * newcomer takes the lock at once. */
static void test_dead_ghost_skipped(void)
{
    char tok[64];
    struct http_resp r;

    hold("deadghost", 30000, tok, sizeof tok);
    t_ok(plant_ghost("lockservice:", "deadghost", 30000, false),
         "dead ghost: queued in Redis, its instance key absent");
    t_ok(drop("deadghost", tok) == 200, "dead ghost: holder releases");
    http(&r, svc.url, "GET", "/v1/locks/deadghost", NULL, NULL);
    t_ok(r.status == 200 && r.json && json_object_size(r.json) == 2 &&
             json_is_false(json_object_get(r.json, "held")),
         "dead ghost: the release reserved nothing for a waiter of a dead "
         "instance: status is plainly free (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    long left = queued_keys("lockservice:", "deadghost");
    t_ok(left == 0,
         "dead ghost: the release dropped it from the queue and the waiters "
         "hash (EXISTS %ld)",
         left);
    http(&r, svc.url, "POST", "/v1/locks/deadghost/acquire", "{}", NULL);
    t_ok(r.status == 200, "dead ghost: a newcomer takes the lock at once (%ld)",
         r.status);
    if (jstr(&r, "token"))
        drop("deadghost", jstr(&r, "token"));
    http_resp_free(&r);
}

/* A release that frees a lock somebody waits for hands it to the waiter at
 * the head of the queue, reserved for it for the hand-off window. Here the
 * waiter is a ghost that looks alive (v2: its instance key set by the test;
 * v1 needed no instance), so nobody claims the hand-off: a newcomer is
 * refused with the reservation's remaining time, status shows the lock free
 * but reserved, and the newcomer gets the lock once the reservation lapses. */
static void test_release_reserves_for_waiter(void)
{
    char tok[64], *out;
    struct http_resp r;
    double t0;

    hold("handoff", 30000, tok, sizeof tok);
    t_ok(plant_ghost("lockservice:", "handoff", 30000, true),
         "hand-off: a ghost that looks alive is queued in Redis");
    t_ok(drop("handoff", tok) == 200, "hand-off: holder releases");
    t0 = now_ms();
    http(&r, svc.url, "POST", "/v1/locks/handoff/acquire", "{}", NULL);
    t_ok(problem_is(&r, 409, "lock_held") && jint(&r, "retry_after_ms") > 0 &&
             jint(&r, "retry_after_ms") <= handoff_ms,
         "hand-off: a newcomer is refused while the lock is reserved (%ld %s, "
         "retry_after_ms %lld <= %ld)",
         r.status, problem_code(&r), jint(&r, "retry_after_ms"), handoff_ms);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/handoff", NULL, NULL);
    t_ok(r.status == 200 && r.json &&
             json_is_false(json_object_get(r.json, "held")) &&
             jint(&r, "reserved_ms") > 0 &&
             jint(&r, "reserved_ms") <= handoff_ms && !jstr(&r, "owner"),
         "hand-off: status shows the lock free and reserved (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/handoff/acquire", "{\"wait_ms\":5000}",
         NULL);
    double took = now_ms() - t0;
    t_ok(r.status == 200 && took < (double)handoff_ms + 2000 * time_scale(),
         "hand-off: an unclaimed reservation lapses: granted after %.0f ms "
         "(%ld)",
         took, r.status);
    /* v2: the hand-off took the ghost out of the queue already; only its
     * instance key is left to remove (v1 deleted the waiter set here). */
    out = redis_cli(&redis,
                    "DEL lockservice:{handoff}:queue:alive:" GHOST_INSTANCE);
    free(out);
    if (jstr(&r, "token"))
        drop("handoff", jstr(&r, "token"));
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/handoff", NULL, NULL);
    t_ok(r.status == 200 && r.json && json_object_size(r.json) == 2 &&
             json_is_false(json_object_get(r.json, "held")),
         "hand-off: a lock released with nobody waiting is plainly free (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
}

/* --handoff-ms 0: a release reserves nothing, so whoever asks next gets the
 * lock, even while a waiter is announced. v2: the announced waiter is a
 * ghost of a dead instance (what a waiter leaves behind now that one whose
 * client hangs up leaves the queue at once), which v2 skips whatever
 * --handoff-ms is; a live waiter is handed the lock and claims it. */
static void test_no_handoff(void)
{
    struct svc_proc s0;
    struct http_resp r;
    const char *args[] = {"--handoff-ms", "0", "--key-prefix", "h0:", NULL};
    char tok[64] = "";

    if (!t_ok(svc_start(&s0, &redis, args) == 0, "--handoff-ms 0 starts"))
        return;
    http(&r, s0.url, "POST", "/v1/locks/nohand/acquire", "{}", NULL);
    snprintf(tok, sizeof tok, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);
    t_ok(plant_ghost("h0:", "nohand", 30000, false),
         "--handoff-ms 0: a ghost of a dead instance is queued in Redis");
    httpf(&r, s0.url, "POST", "/v1/locks/nohand/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200, "--handoff-ms 0: holder releases (%ld)", r.status);
    http_resp_free(&r);
    http(&r, s0.url, "GET", "/v1/locks/nohand", NULL, NULL);
    t_ok(r.status == 200 && r.json && json_object_size(r.json) == 2,
         "--handoff-ms 0: status shows no reservation (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    http(&r, s0.url, "POST", "/v1/locks/nohand/acquire", "{}", NULL);
    t_ok(r.status == 200,
         "--handoff-ms 0: a newcomer takes the lock at once (%ld)", r.status);
    http_resp_free(&r);
    svc_stop(&s0);
}

static void test_granted_on_expiry(void)
{
    char tok[64];
    struct waiter w;
    double t0 = now_ms();
    long long f0 = hold("expiring", 300, tok, sizeof tok);
    waiter_start(&w, "/v1/locks/expiring/acquire", 5000, 0);
    pthread_join(w.thread, NULL);
    double took = w.finished - t0;
    t_ok(w.status == 200 && w.fence > f0,
         "waiter granted when the holder's lease expired (%ld %s)", w.status,
         w.code);
    t_ok(took >= 250 && took < 1500 * time_scale(),
         "granted after %.0f ms: at the 300 ms expiry, not the 5 s wait", took);
    drop("expiring", w.token);
}

/* A short waiter that gives up before the holder's lease ends must not take
 * the name's expiry timer with it: a longer waiter behind it is still woken
 * when the lease runs out, not at its own deadline. */
static void test_expiry_after_short_waiter(void)
{
    char tok[64];
    struct waiter shortw, longw;
    hold("outlast", 1500, tok, sizeof tok);
    waiter_start(&shortw, "/v1/locks/outlast/acquire", 500, 0);
    t_ok(waiters_become(svc.url, 1, 5000),
         "a waiter with wait_ms 500 is suspended");
    waiter_start(&longw, "/v1/locks/outlast/acquire", 10000, 0);
    double t0 = now_ms();
    pthread_join(shortw.thread, NULL);
    pthread_join(longw.thread, NULL);
    t_ok(shortw.status == 409, "the short waiter gives up with 409 (%ld)",
         shortw.status);
    t_ok(longw.status == 200 &&
             longw.finished - t0 < 1500 + 1500 * time_scale(),
         "the long waiter is granted when the 1.5 s lease runs out, after "
         "%.0f ms, not at its 10 s deadline (%ld)",
         longw.finished - t0, longw.status);
    drop("outlast", longw.token);
}

static void test_wait_times_out(void)
{
    char tok[64];
    struct waiter w;
    hold("busy", 30000, tok, sizeof tok);
    waiter_start(&w, "/v1/locks/busy/acquire", 400, 0);
    pthread_join(w.thread, NULL);
    double took = w.finished - w.started;
    t_ok(w.status == 409 && strcmp(w.code, "lock_held") == 0,
         "waiter whose wait ran out -> 409 lock_held (%ld %s)", w.status,
         w.code);
    t_ok(took >= 350 && took < 2000 * time_scale(),
         "answered after %.0f ms for wait_ms 400 (350..2000)", took);
    t_ok(waiters_become(svc.url, 0, 2000),
         "timed-out waiter left the registry");
    drop("busy", tok);
}

/* ---- 200 concurrent waiters on one lock ---- */

#define CROWD 200

static atomic_int holder;     /* 1 while some thread holds "crowd" */
static atomic_int violations; /* a grant while another held it */
static atomic_int grant_seq;
static long long grant_fences[CROWD];
static int grant_counts[CROWD];
static atomic_int failures;
static atomic_int crowd_done;

static void *crowd_main(void *arg)
{
    int id = (int)(long)arg;
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/crowd/acquire",
         "{\"wait_ms\":60000,\"ttl_ms\":30000}", NULL);
    if (r.status != 200) {
        t_diag("crowd waiter %d: %ld %s", id, r.status, r.body);
        atomic_fetch_add(&failures, 1);
        http_resp_free(&r);
        atomic_fetch_add(&crowd_done, 1);
        return NULL;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&holder, &expected, 1))
        atomic_fetch_add(&violations, 1);
    int seq = atomic_fetch_add(&grant_seq, 1);
    if (seq < CROWD)
        grant_fences[seq] = jint(&r, "fence");
    grant_counts[id]++;
    char tok[64];
    snprintf(tok, sizeof tok, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);
    sleep_ms(5);
    atomic_store(&holder, 0);
    httpf(&r, svc.url, "POST", "/v1/locks/crowd/release", NULL,
          "{\"token\":\"%s\"}", tok);
    if (r.status != 200 || jint(&r, "count") != 0) {
        t_diag("crowd release %d: %ld %s", id, r.status, r.body);
        atomic_fetch_add(&failures, 1);
    }
    http_resp_free(&r);
    atomic_fetch_add(&crowd_done, 1);
    return NULL;
}

static void test_crowd(void)
{
    pthread_t threads[CROWD];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    char tok[64];
    /* Hold the lock so that all of them queue up first. */
    hold("crowd", 30000, tok, sizeof tok);
    int started = 0;
    for (long i = 0; i < CROWD; i++)
        if (pthread_create(&threads[i], &attr, crowd_main, (void *)i) == 0)
            started++;
    t_ok(started == CROWD, "started %d waiter threads", started);
    t_ok(waiters_become(svc.url, CROWD, 10000), "all %d are parked", CROWD);
    double worst = 0;
    int health_ok = 0, probes = 0;
    /* The service answers while they all wait. */
    for (int i = 0; i < 5; i++, probes++) {
        struct http_resp h;
        http(&h, svc.url, "GET", "/healthz", NULL, NULL);
        if (h.status == 200)
            health_ok++;
        if (h.seconds > worst)
            worst = h.seconds;
        http_resp_free(&h);
    }
    drop("crowd", tok);
    /* ... and while they hand the lock to each other. */
    while (atomic_load(&crowd_done) < started) {
        struct http_resp h;
        http(&h, svc.url, "GET", "/healthz", NULL, NULL);
        probes++;
        if (h.status == 200)
            health_ok++;
        if (h.seconds > worst)
            worst = h.seconds;
        http_resp_free(&h);
        sleep_ms(20);
    }
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_attr_destroy(&attr);

    t_ok(health_ok == probes && worst < 1.0 * time_scale(),
         "/healthz answered %d/%d probes during the crowd, slowest %.3f s",
         health_ok, probes, worst);
    t_ok(atomic_load(&failures) == 0, "every waiter got 200 for acquire "
                                      "and release");
    int once = 0;
    for (int i = 0; i < CROWD; i++)
        once += grant_counts[i] == 1;
    t_ok(once == CROWD && atomic_load(&grant_seq) == CROWD,
         "each of %d waiters granted exactly once (%d)", CROWD, once);
    t_ok(atomic_load(&violations) == 0,
         "never two holders at a time (%d violations)",
         atomic_load(&violations));
    int increasing = 1;
    for (int i = 1; i < CROWD; i++)
        if (grant_fences[i] <= grant_fences[i - 1]) {
            increasing = 0;
            t_diag("grant %d fence %lld after %lld", i, grant_fences[i],
                   grant_fences[i - 1]);
            break;
        }
    t_ok(increasing, "fences strictly increase in grant order");
    t_ok(waiters_become(svc.url, 0, 2000), "no waiter left registered");
}

static void test_disconnected_waiter(void)
{
    char tok[64];
    struct waiter gone, real;
    hold("hangup", 30000, tok, sizeof tok);
    waiter_start(&gone, "/v1/locks/hangup/acquire", 10000, 200);
    pthread_join(gone.thread, NULL);
    t_ok(gone.status == 0, "client gave up after 200 ms (no response)");
    t_ok(waiters_become(svc.url, 0, 5000),
         "the disconnected waiter is dropped (gauge back to 0 well before "
         "its 10 s wait)");
    long left = -1;
    for (double end = now_ms() + 2000 * time_scale(); now_ms() < end;
         sleep_ms(10))
        if ((left = queued_keys("lockservice:", "hangup")) == 0)
            break;
    /* v2: the leave script takes it out of the queue and the waiters hash
     * (v1: the name's waiter set). */
    t_ok(left == 0,
         "and it left the name's queue and waiters hash, so releases stop "
         "handing the lock to it (EXISTS %ld)",
         left);

    waiter_start(&real, "/v1/locks/hangup/acquire", 10000, 0);
    t_ok(waiters_become(svc.url, 1, 5000),
         "a second, real waiter is suspended");
    drop("hangup", tok);
    double released = now_ms();
    pthread_join(real.thread, NULL);
    t_ok(real.status == 200,
         "the real waiter is granted after release (%ld %s)", real.status,
         real.code);
    t_ok(real.finished - released < 500 * time_scale(),
         "promptly (%.1f ms): the release was not spent on the dead waiter",
         real.finished - released);
    t_ok(waiters_become(svc.url, 0, 2000), "waiters gauge 0 at the end");
    drop("hangup", real.token);
}

int main(void)
{
    char handoff[24];
    handoff_ms = (long)(250 * time_scale());
    snprintf(handoff, sizeof handoff, "%ld", handoff_ms);
    const char *args[] = {"--threads", "2", "--handoff-ms", handoff, NULL};
    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "start redis-server and lockservice --threads 2");
        return t_done();
    }
    test_granted_on_release();
    test_dead_ghost_skipped();
    test_release_reserves_for_waiter();
    test_no_handoff();
    test_granted_on_expiry();
    test_wait_times_out();
    test_expiry_after_short_waiter();
    test_crowd();
    test_disconnected_waiter();
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
