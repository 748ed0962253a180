/* test_limits.c -- every limit flag, at and just past its value:
 * --max-body-bytes, --max-json-depth, --max-ttl-ms / --max-wait-ms (the
 * ranges named in the 400 detail), --max-hold-count (409 hold_limit),
 * --max-waiters (429 too_many_waiters + Retry-After), --idle-timeout-s (an
 * idle and a slowloris client are cut off; a suspended waiter is not), and
 * --max-connections (connection N+1 waits, unserved, while N are open and
 * is served once they go; twelve clients taking turns on four slots are
 * all served, none dropped). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc svc;  /* the small limits */
static struct svc_proc csvc; /* --max-connections 4 --threads 2 */

#define IDLE_S 2

/* ---- raw sockets ---------------------------------------------------------*/

/* 1: the peer closed (EOF or reset), 0: still open after timeout_ms,
 * 2: data arrived (copied into buf when given). */
static int raw_wait(int fd, int timeout_ms, char *buf, size_t cap)
{
    struct pollfd p = {fd, POLLIN, 0};
    int rc;
    do
        rc = poll(&p, 1, timeout_ms);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0)
        return 0;
    char tmp[4096];
    ssize_t n = recv(fd, tmp, sizeof tmp, MSG_PEEK);
    if (n <= 0)
        return 1;
    if (buf) {
        n = recv(fd, buf, cap - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
    }
    return 2;
}

/* ---- helpers -------------------------------------------------------------*/

static bool detail_has(const struct http_resp *r, const char *s)
{
    const char *d = jstr(r, "detail");
    return d && strstr(d, s);
}

static void test_body_and_depth(void)
{
    struct http_resp r;
    /* --max-body-bytes 1024: 1024 bytes read, 1025 refused. */
    char body[1100];
    memset(body, ' ', sizeof body);
    memcpy(body, "{\"ttl_ms\":1000}", 15);
    body[1024] = '\0';
    http(&r, svc.url, "POST", "/v1/locks/body-1024/acquire", body, NULL);
    t_ok(r.status == 200,
         "--max-body-bytes 1024: a 1024-byte body -> 200 (%ld)", r.status);
    http_resp_free(&r);
    body[1024] = ' ';
    body[1025] = '\0';
    http(&r, svc.url, "POST", "/v1/locks/body-1025/acquire", body, NULL);
    t_ok(problem_is(&r, 413, "body_too_large") && detail_has(&r, "1024"),
         "--max-body-bytes 1024: a 1025-byte body -> 413 naming 1024 (%s)",
         r.body);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/body-1025", NULL, NULL);
    t_ok(r.status == 200 && json_is_false(json_object_get(r.json, "held")),
         "  and the refused acquire took nothing (%s)", r.body);
    http_resp_free(&r);

    /* --max-json-depth 3: depth 3 parses (then the field is checked),
     * depth 4 is invalid_json; brackets inside strings do not count. */
    http(&r, svc.url, "POST", "/v1/locks/depth/acquire", "{\"owner\":[[1]]}",
         NULL);
    t_ok(problem_is(&r, 400, "invalid_field"),
         "--max-json-depth 3: depth 3 is parsed (owner an array: "
         "invalid_field)");
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/depth/acquire", "{\"owner\":[[[1]]]}",
         NULL);
    t_ok(problem_is(&r, 400, "invalid_json"),
         "--max-json-depth 3: depth 4 -> 400 invalid_json");
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/depth/acquire",
         "{\"owner\":{\"a\":{\"b\":{}}}}", NULL);
    t_ok(problem_is(&r, 400, "invalid_json"),
         "--max-json-depth 3: objects nested 4 deep -> 400 invalid_json");
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/depth/acquire",
         "{\"owner\":\"[[[[[[{{{{\",\"ttl_ms\":1000}", NULL);
    t_ok(r.status == 200,
         "brackets inside a string do not count as depth (%ld %s)", r.status,
         r.body);
    http_resp_free(&r);
}

static void test_ranges(void)
{
    struct http_resp r;
    /* --max-ttl-ms 5000 --max-wait-ms 8000 */
    http(&r, svc.url, "POST", "/v1/locks/range/acquire",
         "{\"ttl_ms\":5000,\"wait_ms\":8000}", NULL);
    char tok[64] = "";
    if (jstr(&r, "token"))
        snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    t_ok(r.status == 200 && jint(&r, "ttl_ms") == 5000,
         "ttl_ms = --max-ttl-ms and wait_ms = --max-wait-ms are accepted "
         "(%ld %s)",
         r.status, r.body);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/range2/acquire", "{\"ttl_ms\":5001}",
         NULL);
    t_ok(problem_is(&r, 400, "invalid_field") && detail_has(&r, "ttl_ms") &&
             detail_has(&r, "5000"),
         "ttl_ms 5001 -> 400 invalid_field, detail names ttl_ms and 5000 (%s)",
         jstr(&r, "detail") ? jstr(&r, "detail") : r.body);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/range2/acquire", "{\"wait_ms\":8001}",
         NULL);
    t_ok(problem_is(&r, 400, "invalid_field") && detail_has(&r, "wait_ms") &&
             detail_has(&r, "8000"),
         "wait_ms 8001 -> 400 invalid_field, detail names wait_ms and 8000 "
         "(%s)",
         jstr(&r, "detail") ? jstr(&r, "detail") : r.body);
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/range/renew", NULL,
          "{\"token\":\"%s\",\"ttl_ms\":5001}", tok);
    t_ok(problem_is(&r, 400, "invalid_field") && detail_has(&r, "5000"),
         "renew with ttl_ms 5001 -> 400 invalid_field naming 5000 (%s)",
         jstr(&r, "detail") ? jstr(&r, "detail") : r.body);
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/range/renew", NULL,
          "{\"token\":\"%s\",\"ttl_ms\":5000}", tok);
    t_ok(r.status == 200, "renew with ttl_ms 5000 -> 200 (%ld)", r.status);
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/range/release", NULL,
          "{\"token\":\"%s\"}", tok);
    http_resp_free(&r);
    /* Demo routes share the ranges. */
    http(&r, svc.url, "PUT", "/demo/inventory/limits", "{\"stock\":5}", NULL);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/demo/inventory/limits/purchase",
         "{\"mode\":\"locked\",\"ttl_ms\":5001}", NULL);
    t_ok(problem_is(&r, 400, "invalid_field") && detail_has(&r, "5000"),
         "demo purchase ttl_ms 5001 -> 400 invalid_field naming 5000 (%s)",
         r.body);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/demo/inventory/limits/purchase",
         "{\"mode\":\"locked\",\"wait_ms\":8001}", NULL);
    t_ok(problem_is(&r, 400, "invalid_field") && detail_has(&r, "8000"),
         "demo purchase wait_ms 8001 -> 400 invalid_field naming 8000 (%s)",
         r.body);
    http_resp_free(&r);
}

static void test_hold_count(void)
{
    struct http_resp r;
    /* --max-hold-count 3 */
    http(&r, svc.url, "POST", "/v1/locks/holds/acquire",
         "{\"ttl_ms\":5000,\"owner\":\"h\"}", NULL);
    char tok[64] = "";
    if (jstr(&r, "token"))
        snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    long long fence = jint(&r, "fence");
    http_resp_free(&r);
    long long count = 0;
    for (int i = 0; i < 2; i++) {
        httpf(&r, svc.url, "POST", "/v1/locks/holds/acquire", NULL,
              "{\"token\":\"%s\",\"ttl_ms\":5000}", tok);
        count = jint(&r, "count");
        http_resp_free(&r);
    }
    t_ok(count == 3, "three reentrant holds reach the limit (count %lld)",
         count);
    httpf(&r, svc.url, "POST", "/v1/locks/holds/acquire", NULL,
          "{\"token\":\"%s\",\"ttl_ms\":5000}", tok);
    t_ok(problem_is(&r, 409, "hold_limit"),
         "a fourth reentrant acquire -> 409 hold_limit");
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/holds", NULL, NULL);
    t_ok(r.status == 200 && jint(&r, "count") == 3 &&
             jint(&r, "fence") == fence,
         "  the lock keeps count 3 and its fence (%s)", r.body);
    http_resp_free(&r);
    for (int i = 0; i < 3; i++) {
        httpf(&r, svc.url, "POST", "/v1/locks/holds/release", NULL,
              "{\"token\":\"%s\"}", tok);
        count = jint(&r, "count");
        http_resp_free(&r);
    }
    t_ok(count == 0, "three releases free it (count %lld)", count);
}

/* ---- waiters: the limit, and the idle timeout does not cut them ---------*/

struct waiter_arg {
    const char *name;
    int wait_ms;
    long status;
    double ms;
    char code[64];
};

static void *waiter(void *p)
{
    struct waiter_arg *w = p;
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", w->name);
    double t0 = now_ms();
    httpf(&r, svc.url, "POST", path, NULL, "{\"ttl_ms\":5000,\"wait_ms\":%d}",
          w->wait_ms);
    w->ms = now_ms() - t0;
    w->status = r.status;
    snprintf(w->code, sizeof w->code, "%s", problem_code(&r));
    if (r.status == 200 && jstr(&r, "token")) {
        struct http_resp x;
        snprintf(path, sizeof path, "/v1/locks/%s/release", w->name);
        httpf(&x, svc.url, "POST", path, NULL, "{\"token\":\"%s\"}",
              jstr(&r, "token"));
        http_resp_free(&x);
    }
    http_resp_free(&r);
    return NULL;
}

static void test_waiters(void)
{
    struct http_resp r;
    /* --max-waiters 3, --idle-timeout-s 2 */
    http(&r, svc.url, "POST", "/v1/locks/busy/acquire", "{\"ttl_ms\":5000}",
         NULL);
    char tok[64] = "";
    if (jstr(&r, "token"))
        snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    http_resp_free(&r);

    struct waiter_arg w[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].name = "busy";
        w[i].wait_ms = 7000;
        pthread_create(&th[i], NULL, waiter, &w[i]);
    }
    t_ok(waiters_become(svc.url, 3, 3000),
         "three waiters are suspended (gauge 3)");

    double t0 = now_ms();
    http(&r, svc.url, "POST", "/v1/locks/busy/acquire",
         "{\"ttl_ms\":1000,\"wait_ms\":5000}", NULL);
    char ra[32];
    const char *retry = http_header(&r, "Retry-After", ra, sizeof ra);
    t_ok(problem_is(&r, 429, "too_many_waiters") && retry &&
             strcmp(retry, "1") == 0 && now_ms() - t0 < 1000 * time_scale(),
         "a fourth waiter -> 429 too_many_waiters, Retry-After: %s, at once "
         "(%.0f ms)",
         retry ? retry : "(none)", now_ms() - t0);
    http_resp_free(&r);
    /* v2: the name's waiters are a queue (a list of waiter ids) and a hash
     * of their entries (v1: one sorted set); the refused waiter was queued
     * by the acquire script and taken out by the leave script before the
     * 429 was sent. */
    long long queued = redis_cli_int(&redis, "LLEN lockservice:{busy}:queue");
    long long entries =
        redis_cli_int(&redis, "HLEN lockservice:{busy}:waiters");
    t_ok(queued == 3 && entries == 3,
         "the refused waiter left the name's queue and waiters hash (%lld "
         "queued, %lld entries: the three parked ones)",
         queued, entries);
    http(&r, svc.url, "POST", "/v1/locks/other/acquire",
         "{\"ttl_ms\":1000,\"wait_ms\":5000}", NULL);
    t_ok(r.status == 200,
         "an acquire that need not wait is still served at the limit (%ld)",
         r.status);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/busy/acquire", "{\"ttl_ms\":1000}",
         NULL);
    t_ok(problem_is(&r, 409, "lock_held"),
         "a wait_ms 0 acquire at the limit -> 409 lock_held, not 429");
    http_resp_free(&r);

    /* Hold the lock past the idle timeout (2 s) + slack, then release: the
     * waiters, suspended for > idle timeout, must still be there. */
    sleep_ms((IDLE_S + 1) * 1000 + 500);
    t_ok(waiters_become(svc.url, 3, 100),
         "after %.1f s (idle timeout %d s) the three waiters are still "
         "suspended",
         (now_ms() - t0) / 1000, IDLE_S);
    httpf(&r, svc.url, "POST", "/v1/locks/busy/release", NULL,
          "{\"token\":\"%s\"}", tok);
    http_resp_free(&r);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        t_ok(w[i].status == 200 && w[i].ms > (IDLE_S + 1) * 1000,
             "waiter %d (suspended %.0f ms > idle timeout) is granted, not "
             "cut off (%ld %s)",
             i, w[i].ms, w[i].status, w[i].code);
    t_ok(waiters_become(svc.url, 0, 2000), "the waiter gauge is back to 0");

    /* A waiter whose wait runs out past the idle timeout gets its 409. */
    http(&r, svc.url, "POST", "/v1/locks/busy2/acquire", "{\"ttl_ms\":5000}",
         NULL);
    http_resp_free(&r);
    t0 = now_ms();
    http(&r, svc.url, "POST", "/v1/locks/busy2/acquire",
         "{\"ttl_ms\":1000,\"wait_ms\":3500}", NULL);
    double took = now_ms() - t0;
    t_ok(problem_is(&r, 409, "lock_held") && took >= 3400 &&
             took < 3500 + 1300 * time_scale(),
         "a waiter with wait_ms 3500 > idle timeout gets 409 lock_held at "
         "its deadline (%.0f ms)",
         took);
    http_resp_free(&r);
}

/* ---- idle timeout: an idle client and a slowloris are cut off -----------*/

static void test_idle(void)
{
    /* A connection that sends nothing. */
    int fd = raw_connect(svc.port);
    double t0 = now_ms();
    int st = raw_wait(fd, (int)((IDLE_S + 4) * 1000 * time_scale()), NULL, 0);
    double took = now_ms() - t0;
    t_ok(st == 1 && took < (IDLE_S + 2) * 1000 * time_scale(),
         "a silent connection is closed by the idle timeout (%s after %.0f "
         "ms)",
         st == 1 ? "closed" : "still open", took);
    close(fd);

    /* A slowloris: one header byte per second, never finishing. */
    static const char hdr[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    fd = raw_connect(svc.port);
    t0 = now_ms();
    bool cut = false;
    size_t i = 0;
    double limit = (IDLE_S + 2) * 1000 * time_scale();
    while (now_ms() - t0 < limit + 2000 && i < sizeof hdr - 1) {
        if (!raw_send(fd, hdr + i, 1)) {
            cut = true;
            break;
        }
        i++;
        if (raw_wait(fd, 1000, NULL, 0) == 1) {
            cut = true;
            break;
        }
    }
    took = now_ms() - t0;
    t_ok(cut && took <= limit,
         "a slowloris (1 header byte/s) is disconnected within idle "
         "timeout + 2 s (%s after %.0f ms, %zu bytes sent)",
         cut ? "cut" : "still connected", took, i);
    close(fd);

    struct http_resp r;
    http(&r, svc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200, "the server serves after the slow clients (%ld)",
         r.status);
    http_resp_free(&r);
}

/* ---- connection limit ----------------------------------------------------*/

struct turns {
    atomic_bool stop;
    atomic_int served, dropped;
};

/* One client: a new connection per request, one after the other. */
static void *take_turns(void *p)
{
    struct turns *t = p;
    const char *req =
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    while (!atomic_load(&t->stop)) {
        char buf[256] = "";
        int fd = raw_connect(csvc.port);
        int st =
            fd >= 0 && raw_send(fd, req, strlen(req))
                ? raw_wait(fd, (int)(10000 * time_scale()), buf, sizeof buf)
                : 1;
        if (st == 2 && strncmp(buf, "HTTP/1.1 200", 12) == 0)
            atomic_fetch_add(&t->served, 1);
        else
            atomic_fetch_add(&t->dropped, 1);
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

/* Twelve clients on four slots shared by two workers: most of them wait in
 * the backlog at any moment, and each one takes a slot the instant it is
 * freed, on whichever worker. (The first listener of our own dropped such
 * connections, and a worker could hang in libmicrohttpd on one: the
 * shutdown at the end of this file would then time out.) */
static void test_connection_turns(void)
{
    struct turns t = {0};
    pthread_t th[12];
    for (int i = 0; i < 12; i++)
        pthread_create(&th[i], NULL, take_turns, &t);
    sleep_ms(2000);
    atomic_store(&t.stop, true);
    for (int i = 0; i < 12; i++)
        pthread_join(th[i], NULL);
    t_ok(atomic_load(&t.dropped) == 0 && atomic_load(&t.served) > 12,
         "twelve clients taking turns on --max-connections 4: %d served, %d "
         "dropped",
         atomic_load(&t.served), atomic_load(&t.dropped));
    struct http_resp r;
    http_timeout(&r, 5000, csvc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200, "  and the server serves on (%ld)", r.status);
    http_resp_free(&r);
}

static void test_connections(void)
{
    /* --max-connections 4 --threads 2: four open connections, each with a
     * request half sent, fill the server. */
    int fds[4];
    int open_n = 0;
    for (int i = 0; i < 4; i++) {
        fds[i] = raw_connect(csvc.port);
        if (fds[i] >= 0 && raw_send(fds[i], "GET /healthz HTTP/1.1\r\n", 23))
            open_n++;
    }
    sleep_ms((long)(300 * time_scale())); /* all four reach the server */
    int alive = 0;
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0 && raw_wait(fds[i], 0, NULL, 0) == 0)
            alive++;
    t_ok(open_n == 4 && alive == 4, "four connections are open (%d, %d)",
         open_n, alive);

    /* Connection 5: refused, closed, or never served while 4 are open. */
    int fd5 = raw_connect(csvc.port);
    char buf[4096] = "";
    int st5 = 1;
    if (fd5 >= 0) {
        const char *req =
            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        raw_send(fd5, req, strlen(req));
        st5 = raw_wait(fd5, 1500, buf, sizeof buf);
    }
    t_ok(fd5 >= 0 && st5 == 0,
         "connection 5 of --max-connections 4 waits, not served, while four "
         "are open (%s)",
         fd5 < 0    ? "refused"
         : st5 == 1 ? "closed"
         : st5 == 0 ? "not answered"
                    : buf);

    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    /* It waited in the listen backlog: it is served once slots free, not
     * dropped as it takes a slot that is just being given back. */
    int st = fd5 >= 0 && st5 == 0
                 ? raw_wait(fd5, (int)(3000 * time_scale()), buf, sizeof buf)
                 : 0;
    t_ok(st == 2 && strncmp(buf, "HTTP/1.1 200", 12) == 0,
         "  the waiting connection 5 is served once the four close (%.40s)",
         st == 2   ? buf
         : st == 1 ? "closed"
                   : "no answer");
    if (fd5 >= 0)
        close(fd5);
    /* The server serves again once the slots are free. */
    double end = now_ms() + 3000;
    long status = 0;
    while (now_ms() < end) {
        struct http_resp r;
        http_timeout(&r, 1000, csvc.url, "GET", "/healthz", NULL, NULL);
        status = r.status;
        http_resp_free(&r);
        if (status == 200)
            break;
        sleep_ms(50);
    }
    t_ok(status == 200, "after the four close, the server serves again (%ld)",
         status);
    /* And four in a row work (no leaked slots). */
    int good = 0;
    for (int i = 0; i < 8; i++) {
        struct http_resp r;
        http_timeout(&r, 2000, csvc.url, "POST", "/v1/locks/c/acquire",
                     "{\"ttl_ms\":100}", NULL);
        good += r.status == 200 || r.status == 409;
        http_resp_free(&r);
    }
    t_ok(good == 8, "eight sequential requests are served (%d)", good);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *args[] = {
        "--max-body-bytes", "1024", "--max-json-depth", "3",
        "--max-ttl-ms",     "5000", "--max-wait-ms",    "8000",
        "--max-hold-count", "3",    "--max-waiters",    "3",
        "--idle-timeout-s", "2",    "--demo",           NULL};
    if (svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "lockservice starts with small limits");
        redis_stop(&redis);
        return t_done();
    }
    const char *cargs[] = {"--max-connections", "4",  "--threads", "2",
                           "--idle-timeout-s",  "10", NULL};
    if (svc_start(&csvc, &redis, cargs) != 0)
        t_ok(false, "lockservice starts with --max-connections 4");

    test_body_and_depth();
    test_ranges();
    test_hold_count();
    test_waiters();
    test_idle();
    if (csvc.pid > 0) {
        test_connections();
        test_connection_turns();
    }

    if (csvc.pid > 0)
        svc_stop(&csvc);
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
