/* test_sentinel.c -- Redis Sentinel (issue 13 item 1): one master, two
 * replicas and three sentinels on free ports, the service started with
 * --redis redis-sentinel://s1,s2,s3/ha.
 *
 *  - /readyz names the master the sentinels name; the service serves;
 *  - a loop of acquire / renew / release runs throughout; across SENTINEL
 *    FAILOVER, then (with the sentinel the service first subscribed on
 *    SIGKILLed) across SIGKILL of the master: every request is answered
 *    within the Redis timeout and a margin (no hang), the 503s and the
 *    seconds to recovery are counted and bounded generously, the fences of
 *    the grants strictly increase over the whole run, /readyz names the
 *    new master, lockservice_redis_master_changes_total counts each move;
 *  - a waiter parked across the failover is answered (granted by the new
 *    master, or 503), never left hanging;
 *  - a sentinel with requirepass: found with --sentinel-auth-file, 503
 *    without (the log names the sentinel, never the password);
 *  - bad sentinel URLs exit 2. */
#include "harness.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MASTER "ha"
#define REDIS_TIMEOUT_MS 1000
#define FAILOVER_TIMEOUT_MS 4000 /* sentinel_start's */

static struct redis_proc nodes[3]; /* nodes[0] the first master */
static struct redis_proc sentinels[3];
static struct svc_proc svc;

/* What the loop saw, under mu. */
static struct {
    pthread_mutex_t mu;
    long ok, unavailable, other;
    double last_fail_ms;
    double slowest_ms;
    long long last_fence;
    long fence_breaks;
    long streak; /* whole cycles served in a row */
    char other_body[256];
} seen = {.mu = PTHREAD_MUTEX_INITIALIZER};
static atomic_bool loop_stop;

static long scaled(double ms)
{
    return (long)(ms * time_scale());
}

/* One request of the loop: counted; returns its status. */
static long loop_request(const char *path, const char *body,
                         struct http_resp *r)
{
    double t0 = now_ms(), took;

    http_timeout(r, scaled(10000), svc.url, "POST", path, body, NULL);
    took = now_ms() - t0;
    pthread_mutex_lock(&seen.mu);
    if (took > seen.slowest_ms)
        seen.slowest_ms = took;
    if (r->status == 200) {
        seen.ok++;
    } else {
        seen.streak = 0;
        seen.last_fail_ms = now_ms();
        if (r->status == 503) {
            seen.unavailable++;
        } else {
            seen.other++;
            snprintf(seen.other_body, sizeof seen.other_body, "%ld %s",
                     r->status, r->body ? r->body : "");
        }
    }
    pthread_mutex_unlock(&seen.mu);
    return r->status;
}

static void *lock_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&loop_stop)) {
        struct http_resp r, q;
        char body[96];
        long long fence;

        if (loop_request("/v1/locks/ha-loop/acquire", "{\"ttl_ms\":2000}",
                         &r) != 200) {
            http_resp_free(&r);
            sleep_ms(20);
            continue;
        }
        fence = jint(&r, "fence");
        snprintf(body, sizeof body, "{\"token\":\"%s\"}",
                 jstr(&r, "token") ? jstr(&r, "token") : "");
        http_resp_free(&r);
        pthread_mutex_lock(&seen.mu);
        if (fence <= seen.last_fence)
            seen.fence_breaks++;
        else
            seen.last_fence = fence;
        pthread_mutex_unlock(&seen.mu);
        bool served = loop_request("/v1/locks/ha-loop/renew", body, &q) == 200;
        http_resp_free(&q);
        served = loop_request("/v1/locks/ha-loop/release", body, &q) == 200 &&
                 served;
        http_resp_free(&q);
        if (served) {
            pthread_mutex_lock(&seen.mu);
            seen.streak++;
            pthread_mutex_unlock(&seen.mu);
        }
        sleep_ms(5); /* the machine is shared */
    }
    return NULL;
}

/* The master's port as sentinel s answers it, or -1. */
static int master_port_of(const struct redis_proc *s)
{
    char *out = redis_cli(s, "SENTINEL get-master-addr-by-name " MASTER);
    const char *nl = out ? strchr(out, '\n') : NULL;
    int port = nl ? (int)strtol(nl + 1, NULL, 10) : -1;

    free(out);
    return port > 0 ? port : -1;
}

static struct redis_proc *node_at(int port)
{
    for (int i = 0; i < 3; i++)
        if (nodes[i].pid > 0 && nodes[i].port == port)
            return &nodes[i];
    return NULL;
}

/* Polls /readyz of s until it names 127.0.0.1:port. */
static bool readyz_at(const struct svc_proc *s, int port, double ms)
{
    char want[32];
    double end = now_ms() + ms * time_scale();
    struct http_resp r = {0};

    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    do {
        http_timeout(&r, scaled(5000), s->url, "GET", "/readyz", NULL, NULL);
        bool named = r.status == 200 && jstr(&r, "redis") != NULL &&
                     strcmp(jstr(&r, "redis"), want) == 0;
        if (named) {
            http_resp_free(&r);
            return true;
        }
        http_resp_free(&r);
        sleep_ms(50);
    } while (now_ms() < end);
    t_diag("/readyz never named %s", want);
    return false;
}

static bool readyz_names(int port, double ms)
{
    return readyz_at(&svc, port, ms);
}

/* Waits until every sentinel knows both replicas and the other two
 * sentinels (a failover needs them to agree). */
static bool sentinels_settled(double ms)
{
    double end = now_ms() + ms * time_scale();

    do {
        bool all = true;
        for (int i = 0; i < 3 && all; i++) {
            char *reps = redis_cli(&sentinels[i], "SENTINEL replicas " MASTER);
            char *sens = redis_cli(&sentinels[i], "SENTINEL sentinels " MASTER);
            int nrep = 0, nsen = 0;
            for (const char *p = reps; p && (p = strstr(p, "\nflags\n")); p++)
                nrep++;
            for (const char *p = sens; p && (p = strstr(p, "\nflags\n")); p++)
                nsen++;
            all = nrep >= 2 && nsen >= 2;
            free(reps);
            free(sens);
        }
        if (all)
            return true;
        sleep_ms(200);
    } while (now_ms() < end);
    return false;
}

/* Waits until sentinels 1 and 2 see the failover done (the master's flags
 * say master alone, both replicas known), then until a new failover of
 * the same master is allowed (2 x failover-timeout after this one began,
 * and a second more). */
static bool failover_done(double began_ms, double ms)
{
    double end = now_ms() + ms * time_scale();
    bool done = false;

    while (!done && now_ms() < end) {
        done = true;
        for (int i = 1; i < 3 && done; i++) {
            char *m = redis_cli(&sentinels[i], "SENTINEL master " MASTER);
            const char *f = m ? strstr(m, "\nflags\nmaster\n") : NULL;
            const char *n = m ? strstr(m, "\nnum-slaves\n2\n") : NULL;
            done = f != NULL && n != NULL;
            free(m);
        }
        if (!done)
            sleep_ms(100);
    }
    while (now_ms() < began_ms + 2 * FAILOVER_TIMEOUT_MS + 1000)
        sleep_ms(100);
    return done;
}

struct phase {
    long ok, unavailable, other;
    double t0;
};

static void phase_begin(struct phase *p)
{
    pthread_mutex_lock(&seen.mu);
    p->ok = seen.ok;
    p->unavailable = seen.unavailable;
    p->other = seen.other;
    seen.last_fail_ms = 0;
    seen.slowest_ms = 0;
    pthread_mutex_unlock(&seen.mu);
    p->t0 = now_ms();
}

/* Waits until the loop has served 10 whole cycles in a row after the
 * master moved; then reports the phase. */
static void phase_end(struct phase *p, const char *what, double limit_ms)
{
    double end = p->t0 + limit_ms * time_scale(), recovery;
    long streak = 0, unavailable, other, ok;
    double slowest, last_fail;

    while (now_ms() < end) {
        pthread_mutex_lock(&seen.mu);
        streak = seen.streak;
        pthread_mutex_unlock(&seen.mu);
        if (streak >= 10)
            break;
        sleep_ms(50);
    }
    pthread_mutex_lock(&seen.mu);
    unavailable = seen.unavailable - p->unavailable;
    other = seen.other - p->other;
    ok = seen.ok - p->ok;
    slowest = seen.slowest_ms;
    last_fail = seen.last_fail_ms;
    pthread_mutex_unlock(&seen.mu);
    recovery = last_fail > 0 ? (last_fail - p->t0) / 1000.0 : 0;
    t_diag("%s: %ld served, %ld 503, %ld other; recovered %.2f s after it "
           "began; slowest request %.0f ms",
           what, ok, unavailable, other, recovery, slowest);
    t_ok(streak >= 10, "%s: the loop serves again (%ld cycles in a row)", what,
         streak);
    t_ok(slowest < (REDIS_TIMEOUT_MS + 2000) * time_scale(),
         "%s: every request answered within the Redis timeout and a margin "
         "(slowest %.0f ms)",
         what, slowest);
    t_ok(recovery < limit_ms / 1000.0 * time_scale(),
         "%s: recovery %.2f s, within %.0f s", what, recovery,
         limit_ms / 1000.0 * time_scale());
}

struct parked {
    pthread_t thread;
    struct http_resp r;
    double took_ms;
};

static void *park_waiter(void *arg)
{
    struct parked *w = arg;
    double t0 = now_ms();

    http_timeout(&w->r, scaled(30000), svc.url, "POST",
                 "/v1/locks/ha-parked/acquire",
                 "{\"ttl_ms\":2000,\"wait_ms\":15000}", NULL);
    w->took_ms = now_ms() - t0;
    return NULL;
}

static void failover_forced(void)
{
    struct phase p;
    struct parked w = {0};
    struct http_resp r;
    int before = master_port_of(&sentinels[0]), after = -1;

    /* A waiter parked behind a lease that outlives the switch. */
    http(&r, svc.url, "POST", "/v1/locks/ha-parked/acquire",
         "{\"ttl_ms\":60000}", NULL);
    t_ok(r.status == 200, "a lease for the parked waiter to wait behind");
    http_resp_free(&r);
    pthread_create(&w.thread, NULL, park_waiter, &w);
    t_ok(waiters_become(svc.url, 1, 5000), "the waiter is parked");

    phase_begin(&p);
    char *out = redis_cli(&sentinels[1], "SENTINEL FAILOVER " MASTER);
    t_ok(out && strstr(out, "OK"), "SENTINEL FAILOVER -> OK (%s)",
         out ? out : "");
    free(out);
    double end = now_ms() + 20000 * time_scale();
    while (now_ms() < end) {
        after = master_port_of(&sentinels[0]);
        if (after > 0 && after != before)
            break;
        sleep_ms(50);
    }
    t_ok(after > 0 && after != before, "the sentinels name a new master (%d)",
         after);
    t_ok(readyz_names(after, 20000), "/readyz names the new master");
    phase_end(&p, "SENTINEL FAILOVER", 20000);
    t_ok(failover_done(p.t0, 30000),
         "the sentinels end the failover (the old master now a replica)");
    t_ok(metric_get(svc.url, "lockservice_redis_master_changes_total", NULL) >=
             1,
         "lockservice_redis_master_changes_total counts the move");

    pthread_join(w.thread, NULL);
    t_ok(w.r.status == 200 || problem_is(&w.r, 503, "backend_unavailable"),
         "the parked waiter was answered, 200 or 503 (%ld after %.0f ms: %s)",
         w.r.status, w.took_ms, w.r.body ? w.r.body : "");
    t_ok(w.took_ms < 20000 * time_scale(),
         "the parked waiter did not hang (%.0f ms)", w.took_ms);
    http_resp_free(&w.r);
}

static void failover_killed(void)
{
    struct phase p;
    int before = master_port_of(&sentinels[1]), after = -1;
    struct redis_proc *m = node_at(before);

    /* The service subscribed on the first sentinel: it must move on. */
    redis_kill(&sentinels[0]);
    t_ok(m != NULL, "the current master is one of ours (%d)", before);
    if (m == NULL)
        return;
    phase_begin(&p);
    redis_kill(m);
    double end = now_ms() + 40000 * time_scale();
    while (now_ms() < end) {
        after = master_port_of(&sentinels[1]);
        if (after > 0 && after != before)
            break;
        sleep_ms(100);
    }
    t_ok(after > 0 && after != before,
         "after SIGKILL of the master the sentinels name another (%d)", after);
    t_ok(readyz_names(after, 30000),
         "/readyz names it, with the first sentinel dead");
    phase_end(&p, "SIGKILL of the master", 40000);
    t_ok(metric_get(svc.url, "lockservice_redis_master_changes_total", NULL) >=
             2,
         "lockservice_redis_master_changes_total counts both moves");
}

/* A sentinel with a password of its own (requirepass): found with
 * --sentinel-auth-file, refused without. */
static void sentinel_password(void)
{
    struct redis_proc locked;
    struct svc_proc with, without;
    char url[128], path[320], log_text[4096] = "";
    int master = master_port_of(&sentinels[1]);
    struct redis_proc *m = node_at(master);
    FILE *f;

    if (m == NULL || sentinel_start_conf(&locked, m, MASTER, 1,
                                         "requirepass s3ntinel-pw") != 0) {
        t_ok(false, "a sentinel with requirepass starts");
        return;
    }
    snprintf(path, sizeof path, "%s/auth", locked.dir);
    f = fopen(path, "w");
    if (f != NULL) {
        fputs("s3ntinel-pw\n", f);
        fclose(f);
    }
    snprintf(url, sizeof url, "redis-sentinel://127.0.0.1:%d/" MASTER,
             locked.port);
    const char *with_args[] = {"--redis", url, "--sentinel-auth-file", path,
                               NULL};
    const char *without_args[] = {"--redis", url, NULL};
    if (svc_start(&with, NULL, with_args) == 0) {
        t_ok(readyz_at(&with, master, 10000),
             "--sentinel-auth-file: the master is found through a sentinel "
             "with requirepass");
        svc_stop(&with);
    } else {
        t_ok(false, "a service with --sentinel-auth-file starts");
    }
    if (svc_start(&without, NULL, without_args) == 0) {
        struct http_resp r;
        sleep_ms(scaled(1000));
        http(&r, without.url, "GET", "/readyz", NULL, NULL);
        t_ok(r.status == 503, "without it: /readyz 503 (%ld %s)", r.status,
             r.body);
        http_resp_free(&r);
        svc_stop(&without);
        f = fopen(without.log, "r");
        if (f != NULL) {
            size_t n = fread(log_text, 1, sizeof log_text - 1, f);
            log_text[n] = '\0';
            fclose(f);
        }
        t_ok(strstr(log_text, "sentinel 127.0.0.1") != NULL &&
                 strstr(log_text, "s3ntinel-pw") == NULL,
             "and the log names the sentinel that refused, never the "
             "password");
    } else {
        t_ok(false, "a service without --sentinel-auth-file starts");
    }
    redis_stop(&locked);
}

static void bad_urls(void)
{
    const char *urls[] = {"redis-sentinel://127.0.0.1:26379",
                          "redis-sentinel://127.0.0.1:26379/",
                          "redis-sentinel:///ha",
                          "redis-sentinel://127.0.0.1:0/ha",
                          "redis-sentinel://h:1/ha?db=x",
                          NULL};

    for (int i = 0; urls[i] != NULL; i++) {
        const char *args[] = {"--redis", urls[i], NULL};
        char *err = NULL;
        int rc = svc_run(args, NULL, NULL, &err, 10000);
        t_ok(rc == 2 && err && strstr(err, "--redis"),
             "--redis %s -> exit 2 naming --redis (%s)", urls[i],
             err ? err : "");
        free(err);
    }
}

int main(void)
{
    char extra[64], url[256], tmo[16];
    pthread_t loop_thread;

    bad_urls();
    if (redis_start(&nodes[0], NULL) != 0)
        return t_ok(false, "master starts"), t_done();
    snprintf(extra, sizeof extra, "--replicaof 127.0.0.1 %d", nodes[0].port);
    if (redis_start(&nodes[1], extra) != 0 ||
        redis_start(&nodes[2], extra) != 0 ||
        !replicas_synced(&nodes[0], 2, 20000)) {
        t_ok(false, "replicas start and sync");
        goto out;
    }
    for (int i = 0; i < 3; i++)
        if (sentinel_start(&sentinels[i], &nodes[0], MASTER, 2) != 0) {
            t_ok(false, "sentinel %d starts", i);
            goto out;
        }
    t_ok(sentinels_settled(30000),
         "the sentinels know both replicas and each other");
    snprintf(url, sizeof url,
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/" MASTER,
             sentinels[0].port, sentinels[1].port, sentinels[2].port);
    snprintf(tmo, sizeof tmo, "%d", REDIS_TIMEOUT_MS);
    const char *args[] = {"--redis", url, "--redis-timeout-ms", tmo, NULL};
    if (svc_start(&svc, NULL, args) != 0) {
        t_ok(false, "the service starts against the sentinels");
        goto out;
    }
    t_ok(readyz_names(nodes[0].port, 10000), "/readyz names the first master");
    pthread_create(&loop_thread, NULL, lock_loop, NULL);
    sleep_ms(500);
    failover_forced();
    failover_killed();
    sentinel_password();
    atomic_store(&loop_stop, true);
    pthread_join(loop_thread, NULL);
    t_diag("the whole run: %ld served, %ld 503, %ld other (last: %s)", seen.ok,
           seen.unavailable, seen.other, seen.other_body);
    t_ok(seen.fence_breaks == 0,
         "the fences of the grants strictly increase over the whole run "
         "(%ld breaks)",
         seen.fence_breaks);
    t_ok(seen.ok > 50, "the loop was served throughout (%ld)", seen.ok);
    svc_stop(&svc);
out:
    for (int i = 0; i < 3; i++)
        redis_stop(&sentinels[i]);
    for (int i = 0; i < 3; i++)
        redis_stop(&nodes[i]);
    return t_done();
}
