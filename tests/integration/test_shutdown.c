/* test_shutdown.c -- graceful shutdown on SIGTERM and on SIGINT.
 *
 * For each signal, one instance (--demo --shutdown-timeout-ms 2000) has:
 * a held lock, a waiter suspended on it, and an in-flight demo purchase
 * (mode locked, work_ms 500). A second instance on the same Redis stays up
 * as the witness. After the signal:
 *  - the waiter gets 503 shutting_down promptly;
 *  - the purchase is answered: 201 (it finished) or 503 shutting_down, and
 *    the inventory agrees with the answer (one order, or none);
 *  - a new connection is refused (not queued, not served);
 *  - the process exits 0, well inside the bound;
 *  - the held lock is NOT released: the witness still shows it held with
 *    the same fence and count, and its token still renews it there.
 * Then: a purchase with work_ms 8000 (past the 2000 ms shutdown timeout)
 * does not hold the exit beyond the bound; and the signal arriving while
 * clients keep connecting and hanging up exits 0, round after round. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc witness;

struct call {
    const char *base, *method, *path, *body;
    long status;
    char code[64];
    char body_out[512];
    double done_at;
};

static void *do_call(void *p)
{
    struct call *c = p;
    struct http_resp r;
    http_timeout(&r, 30000, c->base, c->method, c->path, c->body, NULL);
    c->done_at = now_ms();
    c->status = r.status;
    snprintf(c->code, sizeof c->code, "%s", problem_code(&r));
    snprintf(c->body_out, sizeof c->body_out, "%s", r.body ? r.body : "");
    http_resp_free(&r);
    return NULL;
}

/* Exit status without reaping (the harness reaps in svc_kill); -1 while
 * running; 128+sig when killed. */
static int peek_exit(pid_t pid)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        si.si_pid != pid)
        return -1;
    return si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
}

/* 1: refused; 0: accepted but closed without an answer; 2: answered;
 * 3: accepted and left hanging. */
static int probe_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 1;
    }
    const char *req =
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send(fd, req, strlen(req), MSG_NOSIGNAL);
    struct timeval tv = {0, 300000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    int rc = n > 0 ? 2 : n == 0 || errno == ECONNRESET ? 0 : 3;
    close(fd);
    return rc;
}

static void run(int sig, const char *signame)
{
    struct svc_proc s;
    const char *args[] = {"--demo", "--shutdown-timeout-ms", "2000", NULL};
    if (svc_start(&s, &redis, args) != 0) {
        t_ok(false, "%s: lockservice starts", signame);
        return;
    }
    char lock[64], lockpath[96], sku[32], skupath[96], buypath[128];
    snprintf(lock, sizeof lock, "held-%s", signame);
    snprintf(lockpath, sizeof lockpath, "/v1/locks/%s", lock);
    snprintf(sku, sizeof sku, "sku-%s", signame);
    snprintf(skupath, sizeof skupath, "/demo/inventory/%s", sku);
    snprintf(buypath, sizeof buypath, "/demo/inventory/%s/purchase", sku);

    struct http_resp r;
    char path[160];
    snprintf(path, sizeof path, "%s/acquire", lockpath);
    http(&r, s.url, "POST", path, "{\"ttl_ms\":60000,\"owner\":\"survivor\"}",
         NULL);
    char tok[64] = "";
    if (jstr(&r, "token"))
        snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    long long fence = jint(&r, "fence");
    t_ok(r.status == 200, "%s: hold %s (%ld)", signame, lock, r.status);
    http_resp_free(&r);
    http(&r, s.url, "PUT", skupath, "{\"stock\":5}", NULL);
    http_resp_free(&r);

    /* A waiter on the held lock, and an in-flight purchase. */
    struct call w = {.base = s.url,
                     .method = "POST",
                     .path = path,
                     .body = "{\"ttl_ms\":1000,\"wait_ms\":20000}"};
    struct call buy = {.base = s.url,
                       .method = "POST",
                       .path = buypath,
                       .body = "{\"mode\":\"locked\",\"work_ms\":500}"};
    pthread_t tw, tb;
    pthread_create(&tw, NULL, do_call, &w);
    t_ok(waiters_become(s.url, 1, 3000), "%s: a waiter is suspended", signame);
    pthread_create(&tb, NULL, do_call, &buy);
    sleep_ms(150); /* the purchase has read the stock and is "paying" */

    pid_t pid = s.pid;
    double t0 = now_ms();
    kill(pid, sig);
    sleep_ms(100);
    /* Sampled before the probe: a process that answered and then exited
     * must not pass as "already gone". */
    bool alive_at_probe = peek_exit(pid) < 0;
    int probe = probe_connect(s.port);
    pthread_join(tw, NULL);
    t_ok(w.status == 503 && strcmp(w.code, "shutting_down") == 0 &&
             w.done_at - t0 < 1000 * time_scale(),
         "%s: the suspended waiter -> 503 shutting_down in %.0f ms (%ld %s)",
         signame, w.done_at - t0, w.status, w.code);
    t_ok(probe == 1 || probe == 0 || !alive_at_probe,
         "%s: a new connection 100 ms after the signal is refused (%s)",
         signame,
         probe == 1   ? "refused"
         : probe == 0 ? "closed unanswered"
         : probe == 2 ? "ANSWERED"
                      : "accepted and left hanging");

    pthread_join(tb, NULL);
    bool bought = buy.status == 201;
    t_ok(bought ||
             (buy.status == 503 && strcmp(buy.code, "shutting_down") == 0),
         "%s: the in-flight purchase (work_ms 500) is answered: %ld %s",
         signame, buy.status, bought ? "(finished)" : buy.code);
    if (buy.status == 503)
        t_diag("%s: the in-flight purchase was cut short, not let finish: %s",
               signame, buy.body_out);

    int st = -1;
    double end = t0 + 5000 * time_scale();
    while ((st = peek_exit(pid)) < 0 && now_ms() < end)
        sleep_ms(10);
    double took = now_ms() - t0;
    t_ok(st == 0 && took < 3000 * time_scale(),
         "%s: the process exits 0 in %.0f ms (shutdown timeout 2000 ms; "
         "status %d)",
         signame, took, st);
    svc_kill(&s); /* reaps it (or kills it if it hung) */
    /* v2: the name's waiters are a queue (a list of waiter ids) and a hash
     * of their entries (v1: one sorted set); the leave script takes a
     * waiter out of both before it is answered 503. */
    long long queued =
        redis_cli_int(&redis, "LLEN lockservice:{%s}:queue", lock);
    long long entries =
        redis_cli_int(&redis, "HLEN lockservice:{%s}:waiters", lock);
    t_ok(queued == 0 && entries == 0,
         "%s: the waiter it answered 503 left the name's queue and waiters "
         "hash (%lld queued, %lld entries)",
         signame, queued, entries);

    /* Nothing released that should not be. */
    http(&r, witness.url, "GET", lockpath, NULL, NULL);
    t_ok(r.status == 200 && json_is_true(json_object_get(r.json, "held")) &&
             jint(&r, "fence") == fence && jint(&r, "count") == 1 &&
             jstr(&r, "owner") && strcmp(jstr(&r, "owner"), "survivor") == 0,
         "%s: the held lock is still held after the shutdown, same fence "
         "(%s)",
         signame, r.body);
    http_resp_free(&r);
    snprintf(path, sizeof path, "%s/renew", lockpath);
    httpf(&r, witness.url, "POST", path, NULL, "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && jint(&r, "fence") == fence,
         "%s: its token still renews it on the other instance (%ld)", signame,
         r.status);
    http_resp_free(&r);
    snprintf(path, sizeof path, "%s/release", lockpath);
    httpf(&r, witness.url, "POST", path, NULL, "{\"token\":\"%s\"}", tok);
    http_resp_free(&r);

    /* The inventory agrees with the purchase's answer; its lock is free. */
    http(&r, witness.url, "GET", skupath, NULL, NULL);
    t_ok(r.status == 200 && jint(&r, "orders") == (bought ? 1 : 0) &&
             jint(&r, "stock") == (bought ? 4 : 5),
         "%s: the inventory matches the purchase's answer (%s)", signame,
         r.body);
    http_resp_free(&r);
    snprintf(path, sizeof path, "/v1/locks/inventory:%s", sku);
    http(&r, witness.url, "GET", path, NULL, NULL);
    t_ok(r.status == 200 && json_is_false(json_object_get(r.json, "held")),
         "%s: the purchase's lock inventory:%s is not left held (%s)", signame,
         sku, r.body);
    http_resp_free(&r);
}

/* A purchase working past the shutdown timeout does not hold the exit. */
static void run_long_inflight(void)
{
    struct svc_proc s;
    const char *args[] = {"--demo", "--shutdown-timeout-ms", "2000", NULL};
    if (svc_start(&s, &redis, args) != 0) {
        t_ok(false, "long in-flight: lockservice starts");
        return;
    }
    struct http_resp r;
    http(&r, s.url, "PUT", "/demo/inventory/sku-long", "{\"stock\":5}", NULL);
    http_resp_free(&r);
    struct call buy = {.base = s.url,
                       .method = "POST",
                       .path = "/demo/inventory/sku-long/purchase",
                       .body = "{\"mode\":\"unsafe\",\"work_ms\":8000}"};
    pthread_t tb;
    pthread_create(&tb, NULL, do_call, &buy);
    sleep_ms(200);
    pid_t pid = s.pid;
    double t0 = now_ms();
    kill(pid, SIGTERM);
    int st = -1;
    double end = t0 + 10000 * time_scale();
    while ((st = peek_exit(pid)) < 0 && now_ms() < end)
        sleep_ms(10);
    double took = now_ms() - t0;
    t_ok(st == 0 && took < 5000 * time_scale(),
         "a purchase with work_ms 8000 does not hold the exit past the bound "
         "(exit %d after %.0f ms; --shutdown-timeout-ms 2000)",
         st, took);
    svc_kill(&s);
    pthread_join(tb, NULL);
    t_ok(buy.status == 0 || buy.status == 503,
         "  its client gets 503 or a closed connection, not a late 201 (%ld "
         "%s)",
         buy.status, buy.code);
}

/* A request in flight inside a Redis call (Redis busy in DEBUG SLEEP 1, the
 * Redis timeout 3 s) finishes with its real answer after the signal. */
static void run_blocked_inflight(void)
{
    struct svc_proc s;
    const char *args[] = {"--shutdown-timeout-ms", "2000", "--redis-timeout-ms",
                          "3000", NULL};
    if (svc_start(&s, &redis, args) != 0) {
        t_ok(false, "blocked in-flight: lockservice starts");
        return;
    }
    pthread_t tc;
    struct redis_stall stall;
    t_ok(redis_stall_begin(&stall, &redis, 1), "Redis stalls (DEBUG SLEEP 1)");
    struct call c = {.base = s.url,
                     .method = "POST",
                     .path = "/v1/locks/inflight/acquire",
                     .body = "{\"ttl_ms\":60000,\"owner\":\"inflight\"}"};
    pthread_create(&tc, NULL, do_call, &c);
    sleep_ms(200);
    pid_t pid = s.pid;
    double t0 = now_ms();
    kill(pid, SIGTERM);
    pthread_join(tc, NULL);
    redis_stall_end(&stall);
    t_ok(c.status == 200,
         "an acquire in flight in Redis at SIGTERM finishes: %ld %s (%.0f ms "
         "after the signal)",
         c.status, c.status == 200 ? "granted" : c.code, c.done_at - t0);
    int st = -1;
    double end = t0 + 5000 * time_scale();
    while ((st = peek_exit(pid)) < 0 && now_ms() < end)
        sleep_ms(10);
    t_ok(st == 0 && now_ms() - t0 < 3000 * time_scale(),
         "  and then the process exits 0 (%d, %.0f ms)", st, now_ms() - t0);
    svc_kill(&s);
    struct http_resp r;
    http(&r, witness.url, "GET", "/v1/locks/inflight", NULL, NULL);
    t_ok(c.status != 200 ||
             (json_is_true(json_object_get(r.json, "held")) &&
              jstr(&r, "owner") && strcmp(jstr(&r, "owner"), "inflight") == 0),
         "  the lease it was granted is held, as answered (%s)", r.body);
    http_resp_free(&r);
}

struct churn {
    int port;
    atomic_bool stop;
    atomic_uint answered;
};

static void *churn_loop(void *p)
{
    struct churn *c = p;
    while (!atomic_load(&c->stop)) {
        int rc = probe_connect(c->port);
        if (rc == 2)
            atomic_fetch_add(&c->answered, 1);
        else if (rc == 1)
            sleep_ms(1); /* refused: the service has stopped listening */
    }
    return NULL;
}

/* The signal lands while four clients connect, ask and hang up without
 * pause, so stopping races connection set-up and tear-down on both
 * workers. libmicrohttpd's own quiesce could abort the process in such a
 * race (once in CI, exit 134: "Failed to remove listen FD from epoll set";
 * a window of a few instructions, which this test does not reliably hit);
 * the listening socket is the service's own now, and every round must exit
 * 0. */
static void run_under_churn(void)
{
    int rounds = time_scale() > 1 ? 4 : 12, clean = 0, i, k;
    unsigned answered = 0;

    for (i = 0; i < rounds; i++) {
        struct svc_proc s;
        const char *args[] = {"--threads", "2", NULL};
        struct churn c = {0};
        pthread_t th[4];
        int st = -1;

        if (svc_start(&s, &redis, args) != 0)
            break;
        c.port = s.port;
        for (k = 0; k < 4; k++)
            pthread_create(&th[k], NULL, churn_loop, &c);
        sleep_ms(100 + (i * 37) % 150);
        kill(s.pid, SIGTERM);
        double end = now_ms() + 5000 * time_scale();
        while ((st = peek_exit(s.pid)) < 0 && now_ms() < end)
            sleep_ms(5);
        atomic_store(&c.stop, true);
        for (k = 0; k < 4; k++)
            pthread_join(th[k], NULL);
        answered += atomic_load(&c.answered);
        if (st == 0)
            clean++;
        else
            t_diag("round %d: exit status %d", i + 1, st);
        svc_kill(&s);
    }
    t_ok(clean == rounds && answered > 0,
         "SIGTERM amid connection churn: %d/%d rounds exit 0 (%u requests "
         "answered meanwhile)",
         clean, rounds, answered);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *args[] = {"--demo", NULL};
    if (svc_start(&witness, &redis, args) != 0) {
        t_ok(false, "the witness instance starts");
        redis_stop(&redis);
        return t_done();
    }
    run(SIGTERM, "SIGTERM");
    run(SIGINT, "SIGINT");
    run_long_inflight();
    run_blocked_inflight();
    run_under_churn();

    struct http_resp r;
    http(&r, witness.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200, "the witness instance was not disturbed (%ld)",
         r.status);
    http_resp_free(&r);
    svc_stop(&witness);
    redis_stop(&redis);
    return t_done();
}
