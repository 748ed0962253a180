/* test_memory.c -- 5,000 parked waiters cost no thread, and their memory is
 * given back once they are answered (issue 9: version 1 kept 174 MB of RSS,
 * libmicrohttpd's per-connection pools, after 5,000 waiters were answered
 * at once).
 *
 * The service runs with --max-waiters 6000. 5,000 raw connections each send
 * an acquire with wait_ms 8000 on a held lock; once the lockservice_waiters
 * gauge says 5,000, the service has as many threads as when idle. Their
 * waits then end together, so all 5,000 are answered 409 at once (hanging
 * up instead does not show the defect: version 1 never wrote to those
 * connections). Once the gauge is 0 and the clients have closed, RSS falls
 * back to within 40 MB of the idle RSS within 10 s, and the service still
 * answers. RSS is not checked under LOCKSERVICE_WRAPPER or a sanitizer
 * (their allocators keep memory by design). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAITERS 5000
#define BATCH 500
#define SLACK_KB (40L * 1024)

static struct redis_proc redis;
static struct svc_proc svc;
static int fds[WAITERS];

/* RSS says something about the plain build only. */
static bool rss_meaningful(void)
{
    const char *w = getenv("LOCKSERVICE_WRAPPER");
    const char *asan = getenv("ASAN_OPTIONS");
    return !(w && *w) && !(asan && *asan);
}

static bool acquire_release(const char *name)
{
    struct http_resp r, x;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    http(&r, svc.url, "POST", path, "{\"ttl_ms\":5000}", NULL);
    bool ok = r.status == 200 && jstr(&r, "token");
    if (ok) {
        snprintf(path, sizeof path, "/v1/locks/%s/release", name);
        httpf(&x, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}",
              jstr(&r, "token"));
        ok = x.status == 200;
        http_resp_free(&x);
    }
    http_resp_free(&r);
    return ok;
}

/* How long each waiter waits: well past the time it takes to park all of
 * them, so that they are answered at once when their waits end. */
static long wait_ms(void)
{
    return (long)(8000 * time_scale());
}

/* Opens WAITERS parked acquires on "mem", BATCH at a time, each batch
 * parked before the next is sent (so that the listen backlog never fills).
 * Returns how many were sent. */
static int park_waiters(void)
{
    char body[64];
    int sent = 0;
    snprintf(body, sizeof body, "{\"ttl_ms\":1000,\"wait_ms\":%ld}", wait_ms());
    for (int i = 0; i < WAITERS; i++)
        fds[i] = -1;
    for (int start = 0; start < WAITERS; start += BATCH) {
        for (int i = start; i < start + BATCH && i < WAITERS; i++) {
            fds[i] =
                raw_request(svc.port, "POST", "/v1/locks/mem/acquire", body);
            sent += fds[i] >= 0;
        }
        if (!waiters_become(svc.url, sent, 20000)) {
            t_diag("only some of %d waiters parked", sent);
            break;
        }
    }
    return sent;
}

int main(void)
{
    struct http_resp r;
    char tok[64] = "";

    const char *wrapper = getenv("LOCKSERVICE_WRAPPER");
    if (wrapper != NULL && *wrapper) {
        /* Under valgrind 5,000 connections take many minutes and say
         * nothing about memory use; the sanitizer build still runs this. */
        t_skip("a wrapper (valgrind) runs the service",
               "%d parked waiters and their memory", WAITERS);
        return t_done();
    }
    if (!nofile_at_least(WAITERS + 1024)) {
        t_skip("the hard RLIMIT_NOFILE is too low",
               "%d parked waiters need %d file descriptors", WAITERS,
               WAITERS + 1024);
        return t_done();
    }
    const char *args[] = {"--max-waiters", "6000", NULL};
    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "start redis-server and lockservice --max-waiters 6000");
        return t_done();
    }
    /* Idle, after some work: lazily made state counts as idle. */
    for (int i = 0; i < 20; i++)
        acquire_release("warm-up");
    long idle_rss = proc_status(svc.pid, "VmRSS");
    long idle_threads = proc_status(svc.pid, "Threads");
    t_diag("idle: VmRSS %ld kB, %ld threads", idle_rss, idle_threads);

    http(&r, svc.url, "POST", "/v1/locks/mem/acquire", "{\"ttl_ms\":120000}",
         NULL);
    if (jstr(&r, "token"))
        snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    t_ok(r.status == 200, "the lock the waiters wait for is held (%ld)",
         r.status);
    http_resp_free(&r);

    double t0 = now_ms();
    int sent = park_waiters();
    bool parked = waiters_become(svc.url, WAITERS, 20000);
    t_ok(sent == WAITERS && parked,
         "%d waiters parked (sent %d in %.1f s; lockservice_waiters %g)",
         WAITERS, sent, (now_ms() - t0) / 1000,
         metric_get(svc.url, "lockservice_waiters", NULL));
    long busy_rss = proc_status(svc.pid, "VmRSS");
    long busy_threads = proc_status(svc.pid, "Threads");
    t_diag("%d parked: VmRSS %ld kB (%.1f KiB per waiter), %ld threads", sent,
           busy_rss, sent ? (double)(busy_rss - idle_rss) / sent : 0.0,
           busy_threads);
    t_ok(idle_threads > 0 && busy_threads == idle_threads,
         "with %d parked waiters the service has as many threads as idle "
         "(%ld, idle %ld)",
         sent, busy_threads, idle_threads);
    http(&r, svc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200 && r.seconds < time_scale(),
         "with %d parked waiters /healthz answers in %.3f s", sent, r.seconds);
    http_resp_free(&r);

    /* Their waits end together: every one is answered 409 at once. */
    t0 = now_ms();
    bool ended = waiters_become(svc.url, 0, (double)wait_ms() + 20000);
    t_ok(ended, "every wait ends: no waiter is parked any more (%.1f s)",
         (now_ms() - t0) / 1000);
    int refused = 0;
    for (int i = 0; i < WAITERS; i++) {
        if (fds[i] < 0)
            continue;
        refused += raw_status(fds[i], (int)(2000 * time_scale())) == 409;
        close(fds[i]);
    }
    t_ok(refused == sent, "each of the %d was answered 409 lock_held (%d)",
         sent, refused);

    long after_rss = -1;
    double end = now_ms() + 10000 * time_scale();
    do {
        sleep_ms(250);
        after_rss = proc_status(svc.pid, "VmRSS");
    } while (after_rss > idle_rss + SLACK_KB && now_ms() < end);
    if (rss_meaningful())
        t_ok(after_rss >= 0 && after_rss <= idle_rss + SLACK_KB,
             "within 10 s of the last waiter leaving, VmRSS is %ld kB: "
             "within %ld kB of idle (%ld kB; %ld kB with them parked)",
             after_rss, SLACK_KB, idle_rss, busy_rss);
    else
        t_skip("RSS under a wrapper or sanitizer",
               "VmRSS %ld kB after the waiters left (idle %ld kB)", after_rss,
               idle_rss);

    t_ok(acquire_release("after-memory"),
         "the service still grants and releases");
    httpf(&r, svc.url, "POST", "/v1/locks/mem/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200, "the held lock is released (%ld %s)", r.status,
         r.body);
    http_resp_free(&r);
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
