/* test_semaphores.c -- /v1/semaphores/{name} (issue 10 item 2; DESIGN.md
 * 4.3, 4.4): two instances A and B on one Redis, --max-permits 10,
 * --handoff-ms 250. Each part uses a name of its own.
 *
 *  - validation: limit required and in 1..--max-permits, permits in
 *    1..limit, unknown fields refused;
 *  - limit agreement: another limit while permits are held is 409
 *    limit_mismatch, on either instance; once nobody holds permits, a new
 *    limit comes into force;
 *  - permits > 1; status shows limit, used, every holder (owner, fence,
 *    ttl_ms, permits, held_ms) and the queue, never a token; a free name
 *    is limit 0, used 0;
 *  - every grant is its own lease: a holder SIGKILLed while holding (a
 *    child process that acquired, then died) gets its permits back at its
 *    lease's end, and they go to the head waiter promptly, while another
 *    holder's lease runs on; the dead holder's renew is not_held;
 *  - 409 no_permits with retry_after_ms (the earliest lease's end) and a
 *    Retry-After of whole seconds, rounded up; after wait_ms too;
 *  - strict FIFO: a waiter for 3 permits is not overtaken by later waiters
 *    for 1 (queued or not), on one instance and across two; a release
 *    serves as many head waiters as fit, each its own lease;
 *  - renew / release / status; request_id replays an acquire and a
 *    release;
 *  - DELETE: every lease ends, the queue is served at once, the old
 *    holders get not_held, an audit line names each holder's owner and
 *    fence, lockservice_force_releases_total counts it;
 *  - a waiter whose client hangs up leaves the queue at once, and a head
 *    that leaves (hang-up or wait over) unblocks the waiters behind it; a
 *    hand-off to a head whose client hangs up as it is made goes on to
 *    the next waiter (six races);
 *  - a head waiter whose instance dies (SIGKILL) loses its hand-off when
 *    the window lapses, and the next waiter is served;
 *  - at maxmemory (noeviction) renew and release still work;
 *  - fences strictly increase per name; every key has a TTL. */
#include "harness.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc a, b;
static long handoff_ms;

static long scaled(double ms)
{
    return (long)(ms * time_scale());
}

/* "Promptly": well inside a few hand-off windows. */
static double prompt_bound(void)
{
    return 4.0 * (double)handoff_ms;
}

/* A Retry-After value as a number, or -1. */
static long long seconds(const char *h)
{
    char *end;
    long long v = strtoll(h, &end, 10);
    return end != h && *end == '\0' ? v : -1;
}

/* ---- calls ---- */

struct lease {
    long status;
    char token[64];
    long long fence, ttl_ms, permits, limit;
    char code[32];
    char body[512];
};

static void lease_of(struct lease *l, const struct http_resp *r)
{
    memset(l, 0, sizeof *l);
    l->status = r->status;
    snprintf(l->token, sizeof l->token, "%s",
             jstr(r, "token") ? jstr(r, "token") : "");
    l->fence = jint(r, "fence");
    l->ttl_ms = jint(r, "ttl_ms");
    l->permits = jint(r, "permits");
    l->limit = jint(r, "limit");
    snprintf(l->code, sizeof l->code, "%s", problem_code(r));
    snprintf(l->body, sizeof l->body, "%s", r->body ? r->body : "");
}

/* POST /v1/semaphores/<name>/acquire with body. */
static void acquire(struct lease *l, const char *url, const char *name,
                    const char *body)
{
    struct http_resp r;
    char path[160];

    snprintf(path, sizeof path, "/v1/semaphores/%s/acquire", name);
    http(&r, url, "POST", path, body, NULL);
    lease_of(l, &r);
    http_resp_free(&r);
}

/* Acquires permits of limit for ttl_ms, as owner, without waiting. */
static bool hold(struct lease *l, const char *url, const char *name,
                 int permits, int limit, long ttl_ms, const char *owner)
{
    char body[256];

    snprintf(body, sizeof body,
             "{\"limit\":%d,\"permits\":%d,\"ttl_ms\":%ld,\"owner\":\"%s\"}",
             limit, permits, ttl_ms, owner);
    acquire(l, url, name, body);
    if (l->status != 200)
        t_diag("hold %s %d of %d: %ld %s", name, permits, limit, l->status,
               l->body);
    return l->status == 200;
}

/* POST .../renew or .../release with the token (and the rest of a body);
 * the response into *out (caller frees). */
static long post_token(struct http_resp *out, const char *url, const char *name,
                       const char *op, const char *tok, const char *more)
{
    char path[160], body[256];

    snprintf(path, sizeof path, "/v1/semaphores/%s/%s", name, op);
    snprintf(body, sizeof body, "{\"token\":\"%s\"%s%s}", tok, more ? "," : "",
             more ? more : "");
    http(out, url, "POST", path, body, NULL);
    return out->status;
}

/* Releases that should have answered 200 and did not (checked at the
 * end). */
static int releases_failed;

static long release(const char *url, const char *name, const char *tok)
{
    struct http_resp r;
    long st = post_token(&r, url, name, "release", tok, NULL);
    if (st != 200) {
        t_diag("release on %s: %ld %s", name, st, r.body ? r.body : "");
        releases_failed++;
    }
    http_resp_free(&r);
    return st;
}

/* The problem code of a renew or release of tok. */
static const char *refusal_of(const char *url, const char *name, const char *op,
                              const char *tok, char *buf, size_t len)
{
    struct http_resp r;
    long st = post_token(&r, url, name, op, tok, NULL);
    snprintf(buf, len, "%ld %s", st, problem_code(&r));
    http_resp_free(&r);
    return buf;
}

/* GET /v1/semaphores/<name> into *out (caller frees). */
static void status(struct http_resp *out, const char *url, const char *name)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/semaphores/%s", name);
    http(out, url, "GET", path, NULL, NULL);
}

/* An integer member of status, or LLONG_MIN. */
static long long status_int(const char *name, const char *key)
{
    struct http_resp r;
    long long v = LLONG_MIN;
    status(&r, a.url, name);
    if (r.status == 200 && json_is_integer(json_object_get(r.json, key)))
        v = json_integer_value(json_object_get(r.json, key));
    http_resp_free(&r);
    return v;
}

static long long queue_len(const char *name)
{
    return redis_cli_int(&redis, "LLEN lockservice:{%s}:sem:queue", name);
}

/* Polls until the queue of name holds n entries. */
static bool queue_becomes(const char *name, long long n, double ms)
{
    double end = now_ms() + ms * time_scale();
    long long len;
    for (;;) {
        len = queue_len(name);
        if (len == n)
            return true;
        if (now_ms() >= end)
            break;
        sleep_ms(5);
    }
    t_diag("LLEN lockservice:{%s}:sem:queue is %lld, wanted %lld", name, len,
           n);
    return false;
}

/* ---- waiters on threads ---- */

struct waiter {
    pthread_t thread;
    const char *url;
    char name[64];
    char body[256];
    struct lease got;
    double finished;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    acquire(&w->got, w->url, w->name, w->body);
    w->finished = now_ms();
    return NULL;
}

static void waiter_start(struct waiter *w, const char *url, const char *name,
                         int permits, int limit, long wait_ms,
                         const char *owner)
{
    memset(w, 0, sizeof *w);
    w->url = url;
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(w->body, sizeof w->body,
             "{\"limit\":%d,\"permits\":%d,\"wait_ms\":%ld,\"ttl_ms\":30000,"
             "\"owner\":\"%s\"}",
             limit, permits, wait_ms, owner);
    pthread_create(&w->thread, NULL, waiter_main, w);
}

static void waiter_join(struct waiter *w)
{
    pthread_join(w->thread, NULL);
}

/* True while w has not been answered. */
static bool waiting(const struct waiter *w)
{
    return w->finished == 0;
}

/* A waiter on a raw connection, to hang up on: returns the fd or -1. */
static int raw_waiter(const char *name, int permits, int limit,
                      const char *owner)
{
    char path[160], body[256];
    snprintf(path, sizeof path, "/v1/semaphores/%s/acquire", name);
    snprintf(body, sizeof body,
             "{\"limit\":%d,\"permits\":%d,\"wait_ms\":%ld,\"owner\":\"%s\"}",
             limit, permits, scaled(20000), owner);
    return raw_request(a.port, "POST", path, body);
}

/* ---- fences of the whole run, per name ---- */

static bool fences_ok = true;

static void fence_after(const char *what, long long before, long long after)
{
    if (after <= before) {
        t_diag("%s: fence %lld after %lld", what, after, before);
        fences_ok = false;
    }
}

/* ---- the parts ---- */

static void expect_400(const char *body, const char *what)
{
    struct lease l;
    acquire(&l, a.url, "sem-bad", body);
    t_ok(l.status == 400 && strcmp(l.code, "invalid_field") == 0,
         "validation: %s -> 400 invalid_field (%ld %s)", what, l.status,
         l.body);
}

static void test_validation(void)
{
    expect_400("{}", "no limit");
    expect_400("{\"limit\":0}", "limit 0");
    expect_400("{\"limit\":11}", "limit over --max-permits 10");
    expect_400("{\"limit\":\"3\"}", "limit a string");
    expect_400("{\"limit\":3,\"permits\":4}", "permits over the limit");
    expect_400("{\"limit\":3,\"permits\":0}", "permits 0");
    expect_400("{\"limit\":3,\"mode\":\"shared\"}", "an unknown field");
    expect_400("{\"limit\":3,\"token\":\"0123456789abcdef0123456789abcdef\"}",
               "a token (no reentrancy)");
    expect_400("{\"limit\":3,\"request_id\":\"a b\"}", "a bad request_id");
    struct http_resp r;
    long st = post_token(&r, a.url, "sem-bad", "renew", "xyz", NULL);
    t_ok(st == 400 && strcmp(problem_code(&r), "invalid_field") == 0,
         "validation: renew with a malformed token -> 400 invalid_field");
    http_resp_free(&r);
    struct lease l;
    acquire(&l, a.url, "bad%20name", "{\"limit\":1}");
    t_ok(l.status == 400 && strcmp(l.code, "invalid_name") == 0,
         "validation: a bad name -> 400 invalid_name (%ld %s)", l.status,
         l.code);
    acquire(&l, a.url, "sem-ok", "{\"limit\":10,\"permits\":10,\"ttl_ms\":1}");
    t_ok(l.status == 200 && l.permits == 10 && l.limit == 10,
         "validation: limit --max-permits and all its permits -> 200 (%ld "
         "%s)",
         l.status, l.body);
}

static void test_limit_agreement(void)
{
    const char *name = "sem-limit";
    struct lease h, x, y;
    char buf[64];

    if (!hold(&h, a.url, name, 1, 3, 30000, "h"))
        return;
    acquire(&x, a.url, name, "{\"limit\":4}");
    t_ok(x.status == 409 && strcmp(x.code, "limit_mismatch") == 0,
         "%s: limit 4 while permits are held with limit 3 -> 409 "
         "limit_mismatch (%ld %s)",
         name, x.status, x.body);
    acquire(&x, b.url, name, "{\"limit\":2,\"wait_ms\":2000}");
    t_ok(x.status == 409 && strcmp(x.code, "limit_mismatch") == 0 &&
             queue_len(name) == 0,
         "%s: on B too, with wait_ms: refused at once, not queued (%ld %s)",
         name, x.status, x.code);
    acquire(&x, b.url, name, "{\"limit\":3}");
    t_ok(x.status == 200 && x.limit == 3, "%s: limit 3 agrees -> 200 (%ld)",
         name, x.status);
    fence_after(name, h.fence, x.fence);
    release(a.url, name, h.token);
    acquire(&y, a.url, name, "{\"limit\":5}");
    t_ok(y.status == 409 && strcmp(y.code, "limit_mismatch") == 0,
         "%s: still held by one lease of limit 3: limit 5 -> 409 (%ld)", name,
         y.status);
    t_ok(release(b.url, name, x.token) == 200, "%s: the last lease released",
         name);
    acquire(&y, a.url, name, "{\"limit\":5,\"permits\":5}");
    t_ok(y.status == 200 && y.limit == 5 && y.permits == 5,
         "%s: nobody holds permits: limit 5 comes into force (%ld %s)", name,
         y.status, y.body);
    fence_after(name, x.fence, y.fence);
    t_ok(strcmp(refusal_of(a.url, name, "release", h.token, buf, sizeof buf),
                "409 not_held") == 0,
         "%s: the released token's release again -> 409 not_held (%s)", name,
         buf);
    release(a.url, name, y.token);
}

/* Status: limit, used, holders, queue, never a token. */
static void test_permits_and_status(void)
{
    const char *name = "sem-status";
    struct lease h1, h2, x;
    struct http_resp r;
    struct waiter w;

    status(&r, a.url, name);
    t_ok(r.status == 200 && jint(&r, "limit") == 0 && jint(&r, "used") == 0 &&
             jint(&r, "holder_count") == 0 && jint(&r, "waiting") == 0 &&
             json_array_size(json_object_get(r.json, "holders")) == 0 &&
             json_array_size(json_object_get(r.json, "queue")) == 0,
         "%s: a free name: limit 0, used 0, no holders, no queue (%s)", name,
         r.body);
    http_resp_free(&r);

    if (!hold(&h1, a.url, name, 2, 5, 30000, "h1") ||
        !hold(&h2, b.url, name, 3, 5, 20000, "h2"))
        return;
    t_ok(h1.permits == 2 && h2.permits == 3 && h1.limit == 5 &&
             strcmp(h1.token, h2.token) != 0,
         "%s: 2 then 3 permits of 5: two leases, each its own token", name);
    fence_after(name, h1.fence, h2.fence);
    acquire(&x, a.url, name, "{\"limit\":5}");
    t_ok(x.status == 409 && strcmp(x.code, "no_permits") == 0,
         "%s: all 5 used: one more -> 409 no_permits (%ld)", name, x.status);
    waiter_start(&w, b.url, name, 4, 5, scaled(20000), "w4");
    queue_becomes(name, 1, 3000);

    status(&r, a.url, name);
    json_t *hs = json_object_get(r.json, "holders");
    json_t *q = json_object_get(r.json, "queue");
    json_t *first = json_array_get(hs, 0), *second = json_array_get(hs, 1);
    json_t *q0 = json_array_get(q, 0);
    /* soonest expiry first: h2 (20 s) before h1 (30 s) */
    bool holders_ok =
        json_array_size(hs) == 2 && first && second &&
        strcmp(json_string_value(json_object_get(first, "owner")), "h2") == 0 &&
        json_integer_value(json_object_get(first, "permits")) == 3 &&
        json_integer_value(json_object_get(first, "fence")) == h2.fence &&
        json_integer_value(json_object_get(first, "ttl_ms")) > 0 &&
        json_integer_value(json_object_get(first, "ttl_ms")) <= 20000 &&
        json_integer_value(json_object_get(first, "held_ms")) >= 0 &&
        strcmp(json_string_value(json_object_get(second, "owner")), "h1") ==
            0 &&
        json_integer_value(json_object_get(second, "permits")) == 2 &&
        json_object_size(first) == 5;
    t_ok(r.status == 200 && jint(&r, "limit") == 5 && jint(&r, "used") == 5 &&
             jint(&r, "holder_count") == 2 && holders_ok,
         "%s: status: limit 5, used 5, holders h2 (3) and h1 (2) with owner, "
         "fence, ttl_ms, permits, held_ms (%s)",
         name, r.body);
    t_ok(jint(&r, "waiting") == 1 && json_array_size(q) == 1 && q0 &&
             strcmp(json_string_value(json_object_get(q0, "mode")),
                    "semaphore") == 0 &&
             json_integer_value(json_object_get(q0, "permits")) == 4 &&
             strcmp(json_string_value(json_object_get(q0, "owner")), "w4") ==
                 0 &&
             json_integer_value(json_object_get(q0, "waited_ms")) >= 0,
         "%s: status: the queue shows w4 waiting for 4 permits", name);
    t_ok(r.body && !strstr(r.body, h1.token) && !strstr(r.body, h2.token) &&
             !strstr(r.body, "token"),
         "%s: status shows no token", name);
    http_resp_free(&r);
    http(&r, a.url, "HEAD", "/v1/semaphores/sem-status", NULL, NULL);
    t_ok(r.status == 200, "%s: HEAD answers 200", name);
    http_resp_free(&r);

    /* h1's 2 permits back: w4 needs 4, 2 are free: it waits on. */
    release(a.url, name, h1.token);
    sleep_ms(scaled(100));
    t_ok(waiting(&w) && status_int(name, "used") == 3,
         "%s: 2 of 5 free, w4 (4) still waits; used 3", name);
    double t0 = now_ms();
    release(b.url, name, h2.token);
    waiter_join(&w);
    t_ok(w.got.status == 200 && w.got.permits == 4 &&
             w.finished - t0 < prompt_bound(),
         "%s: all free: w4 granted its 4 permits %.0f ms after the release "
         "(%ld %s)",
         name, w.finished - t0, w.got.status, w.got.body);
    fence_after(name, h2.fence, w.got.fence);
    t_ok(status_int(name, "used") == 4 && status_int(name, "waiting") == 0,
         "%s: used 4, nobody waits", name);
    release(b.url, name, w.got.token);
}

/* no_permits: retry_after_ms is the earliest lease's end; Retry-After is
 * it in whole seconds, rounded up. */
static void test_no_permits(void)
{
    const char *name = "sem-full";
    struct lease h1, h2;
    struct http_resp r;
    char ra[32], path[160];

    if (!hold(&h1, a.url, name, 1, 2, 2500, "h1") ||
        !hold(&h2, a.url, name, 1, 2, 30000, "h2"))
        return;
    snprintf(path, sizeof path, "/v1/semaphores/%s/acquire", name);
    http(&r, a.url, "POST", path, "{\"limit\":2}", NULL);
    long long retry = jint(&r, "retry_after_ms");
    const char *h = http_header(&r, "Retry-After", ra, sizeof ra);
    t_ok(problem_is(&r, 409, "no_permits") && retry > 0 && retry <= 2500 && h &&
             seconds(h) == (retry + 999) / 1000,
         "%s: no permit free -> 409 no_permits, retry_after_ms %lld (the "
         "earliest lease's end, <= 2500), Retry-After %s",
         name, retry, h ? h : "(none)");
    http_resp_free(&r);
    double t0 = now_ms();
    http(&r, b.url, "POST", path, "{\"limit\":2,\"permits\":2,\"wait_ms\":300}",
         NULL);
    double took = now_ms() - t0;
    retry = jint(&r, "retry_after_ms");
    h = http_header(&r, "Retry-After", ra, sizeof ra);
    t_ok(problem_is(&r, 409, "no_permits") && took >= 280 && retry > 0 && h &&
             seconds(h) == (retry + 999) / 1000,
         "%s: waited 300 ms for 2 -> 409 no_permits after %.0f ms, "
         "retry_after_ms %lld, Retry-After %s",
         name, took, retry, h ? h : "(none)");
    http_resp_free(&r);
    t_ok(queue_becomes(name, 0, 2000), "%s: the waiter left the queue", name);
    release(a.url, name, h1.token);
    release(a.url, name, h2.token);
}

/* A child process acquires and is SIGKILLed holding; its permits come back
 * at its lease's end and go to the head waiter. */
static void test_crashed_holder(void)
{
    const char *name = "sem-crash";
    struct lease keep, dead;
    struct waiter w;
    int fds[2];
    char buf[64];
    long ttl = scaled(1500);

    if (!hold(&keep, a.url, name, 1, 3, 60000, "keeper"))
        return;
    if (pipe(fds) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        struct lease l;
        char body[128];
        close(fds[0]);
        snprintf(body, sizeof body,
                 "{\"limit\":3,\"permits\":2,\"ttl_ms\":%ld,\"owner\":"
                 "\"crasher\"}",
                 ttl);
        acquire(&l, b.url, name, body);
        if (write(fds[1], &l, sizeof l) != (ssize_t)sizeof l)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    memset(&dead, 0, sizeof dead);
    ssize_t got = read(fds[0], &dead, sizeof dead);
    close(fds[0]);
    double granted = now_ms();
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    if (!t_ok(got == (ssize_t)sizeof dead && dead.status == 200 &&
                  dead.permits == 2,
              "%s: a client acquires 2 of 3 permits for %ld ms, then is "
              "SIGKILLed holding them",
              name, ttl))
        return;
    fence_after(name, keep.fence, dead.fence);
    waiter_start(&w, a.url, name, 2, 3, scaled(20000), "next");
    queue_becomes(name, 1, 3000);
    waiter_join(&w);
    double lag = w.finished - (granted + (double)ttl);
    t_ok(w.got.status == 200 && w.got.permits == 2 && lag < prompt_bound(),
         "%s: the head waiter (2) gets them %.0f ms after the dead holder's "
         "lease ended (< %.0f ms; %ld %s)",
         name, lag, prompt_bound(), w.got.status, w.got.body);
    fence_after(name, dead.fence, w.got.fence);
    struct http_resp r;
    long st = post_token(&r, a.url, name, "renew", keep.token, NULL);
    t_ok(st == 200, "%s: the other holder's lease runs on (renew %ld)", name,
         st);
    http_resp_free(&r);
    t_ok(strcmp(refusal_of(a.url, name, "renew", dead.token, buf, sizeof buf),
                "409 not_held") == 0,
         "%s: the dead holder's renew -> 409 not_held (%s)", name, buf);
    t_ok(status_int(name, "used") == 3 && status_int(name, "holder_count") == 2,
         "%s: used 3 (keeper 1, next 2), 2 holders", name);
    release(a.url, name, keep.token);
    release(a.url, name, w.got.token);
}

/* A waiter for 3 is not overtaken by later waiters for 1. */
static void fifo_round(const char *name, const char *url3, const char *url1)
{
    struct lease h, x;
    struct waiter w3, w1a, w1b;

    if (!hold(&h, a.url, name, 2, 3, 30000, "h"))
        return;
    waiter_start(&w3, url3, name, 3, 3, scaled(20000), "w3");
    queue_becomes(name, 1, 3000);
    waiter_start(&w1a, url1, name, 1, 3, scaled(20000), "w1a");
    queue_becomes(name, 2, 3000);
    waiter_start(&w1b, url3, name, 1, 3, scaled(20000), "w1b");
    queue_becomes(name, 3, 3000);
    acquire(&x, url1, name, "{\"limit\":3}");
    t_ok(x.status == 409 && strcmp(x.code, "no_permits") == 0,
         "%s: 1 permit is free, but an acquire for 1 without wait_ms does "
         "not jump the queue -> 409 no_permits (%ld)",
         name, x.status);
    sleep_ms(scaled(300));
    t_ok(waiting(&w3) && waiting(&w1a) && waiting(&w1b) &&
             status_int(name, "used") == 2,
         "%s: w3 (3) heads the queue: the waiters for 1 behind it wait "
         "although 1 permit is free (used 2 of 3)",
         name);
    double t0 = now_ms();
    release(a.url, name, h.token);
    waiter_join(&w3);
    t_ok(w3.got.status == 200 && w3.got.permits == 3 &&
             w3.finished - t0 < prompt_bound(),
         "%s: on release w3 gets its 3 permits first, %.0f ms after (%ld %s)",
         name, w3.finished - t0, w3.got.status, w3.got.body);
    fence_after(name, h.fence, w3.got.fence);
    sleep_ms(scaled(100));
    t_ok(waiting(&w1a) && waiting(&w1b),
         "%s: w1a and w1b wait on while w3 holds all 3", name);
    t0 = now_ms();
    release(url3, name, w3.got.token);
    waiter_join(&w1a);
    waiter_join(&w1b);
    t_ok(w1a.got.status == 200 && w1b.got.status == 200 &&
             w1a.finished - t0 < prompt_bound() &&
             w1b.finished - t0 < prompt_bound() &&
             w1a.got.fence < w1b.got.fence,
         "%s: w3's release serves both waiters for 1 at once (%.0f, %.0f ms), "
         "in order (fences %lld < %lld)",
         name, w1a.finished - t0, w1b.finished - t0, w1a.got.fence,
         w1b.got.fence);
    fence_after(name, w3.got.fence, w1a.got.fence);
    t_ok(status_int(name, "used") == 2 && queue_len(name) == 0,
         "%s: used 2, the queue is empty", name);
    release(url1, name, w1a.got.token);
    release(url3, name, w1b.got.token);
}

static void test_fifo(void)
{
    fifo_round("sem-fifo", a.url, a.url);
    fifo_round("sem-fifo-2", a.url, b.url);
}

/* One release hands permits to as many head waiters as fit. */
static void test_release_serves_several(void)
{
    const char *name = "sem-many";
    struct lease h;
    struct waiter w[3];

    if (!hold(&h, a.url, name, 3, 3, 30000, "h"))
        return;
    for (int i = 0; i < 3; i++) {
        char owner[16];
        snprintf(owner, sizeof owner, "w%d", i);
        waiter_start(&w[i], i % 2 ? b.url : a.url, name, 1, 3, scaled(20000),
                     owner);
        queue_becomes(name, i + 1, 3000);
    }
    double t0 = now_ms();
    release(a.url, name, h.token);
    int granted = 0;
    double slowest = 0;
    for (int i = 0; i < 3; i++) {
        waiter_join(&w[i]);
        granted += w[i].got.status == 200;
        if (w[i].finished - t0 > slowest)
            slowest = w[i].finished - t0;
    }
    t_ok(granted == 3 && slowest < prompt_bound() &&
             w[0].got.fence < w[1].got.fence && w[1].got.fence < w[2].got.fence,
         "%s: one release of 3 permits serves the 3 waiters for 1 (A, B, A) "
         "within %.0f ms, each its own lease, fences in arrival order",
         name, slowest);
    for (int i = 0; i < 3; i++)
        release(a.url, name, w[i].got.token);
}

static void test_renew_release(void)
{
    const char *name = "sem-renew";
    struct lease h;
    struct http_resp r;
    char buf[64];

    if (!hold(&h, a.url, name, 2, 4, 5000, "r"))
        return;
    post_token(&r, b.url, name, "renew", h.token, "\"ttl_ms\":60000");
    t_ok(r.status == 200 && jint(&r, "ttl_ms") == 60000 &&
             jint(&r, "fence") == h.fence && jint(&r, "permits") == 2 &&
             jint(&r, "limit") == 4 && jstr(&r, "token") &&
             strcmp(jstr(&r, "token"), h.token) == 0,
         "%s: renew on B with ttl_ms 60000: same token, fence, permits (%s)",
         name, r.body);
    http_resp_free(&r);
    post_token(&r, a.url, name, "renew", h.token, NULL);
    t_ok(r.status == 200 && jint(&r, "ttl_ms") == 60000,
         "%s: renew without ttl_ms keeps the TTL last granted (%lld)", name,
         jint(&r, "ttl_ms"));
    http_resp_free(&r);
    long long pttl = redis_cli_int(&redis, "PTTL lockservice:{%s}:sem", name);
    t_ok(pttl > 55000 && pttl <= 60000,
         "%s: the holders' key lives as long as the lease (PTTL %lld)", name,
         pttl);
    t_ok(strcmp(refusal_of(a.url, name, "renew",
                           "0123456789abcdef0123456789abcdef", buf, sizeof buf),
                "409 not_held") == 0,
         "%s: a token that holds nothing: renew -> 409 not_held (%s)", name,
         buf);
    post_token(&r, a.url, name, "release", h.token, NULL);
    t_ok(r.status == 200 && json_is_true(json_object_get(r.json, "released")) &&
             jint(&r, "permits") == 2 && jstr(&r, "name") &&
             strcmp(jstr(&r, "name"), name) == 0,
         "%s: release -> 200 {name, released, permits 2} (%s)", name, r.body);
    http_resp_free(&r);
    t_ok(strcmp(refusal_of(a.url, name, "release", h.token, buf, sizeof buf),
                "409 not_held") == 0 &&
             strcmp(refusal_of(a.url, name, "renew", h.token, buf, sizeof buf),
                    "409 not_held") == 0,
         "%s: after it, release and renew of the token -> 409 not_held", name);
    t_ok(redis_cli_int(&redis, "EXISTS lockservice:{%s}:sem", name) == 0 &&
             redis_cli_int(&redis, "EXISTS lockservice:{%s}:sem:expiry",
                           name) == 0,
         "%s: nobody holds permits: the holders' keys are gone", name);
}

static void test_request_id(void)
{
    const char *name = "sem-rid";
    struct lease x, y;
    struct http_resp r;

    acquire(&x, a.url, name, "{\"limit\":2,\"request_id\":\"job-1\"}");
    acquire(&y, b.url, name, "{\"limit\":2,\"request_id\":\"job-1\"}");
    t_ok(x.status == 200 && y.status == 200 && strcmp(x.token, y.token) == 0 &&
             x.fence == y.fence && strstr(y.body, "\"replayed\":true") &&
             !strstr(x.body, "replayed"),
         "%s: an acquire repeated with its request_id answers the same lease "
         "(replayed)",
         name);
    t_ok(status_int(name, "used") == 1, "%s: and holds 1 permit, not 2", name);
    post_token(&r, a.url, name, "release", x.token, "\"request_id\":\"rel-1\"");
    long st1 = r.status;
    http_resp_free(&r);
    post_token(&r, b.url, name, "release", x.token, "\"request_id\":\"rel-1\"");
    t_ok(st1 == 200 && r.status == 200 && jint(&r, "permits") == 1,
         "%s: a release repeated with its request_id answers 200 again (%ld, "
         "%ld)",
         name, st1, r.status);
    http_resp_free(&r);
    acquire(&y, a.url, name, "{\"limit\":2,\"request_id\":\"job-1\"}");
    t_ok(y.status == 409 && strcmp(y.code, "not_held") == 0,
         "%s: once its lease ended, the request_id -> 409 not_held, never a "
         "new lease (%ld %s)",
         name, y.status, y.code);
    long long pttl =
        redis_cli_int(&redis, "PTTL lockservice:{%s}:sem:acq:job-1", name);
    t_ok(pttl > 0 && pttl <= 90000, "%s: the request record has a TTL (%lld)",
         name, pttl);
}

static void test_force_release(void)
{
    const char *name = "sem-force";
    struct lease h1, h2;
    struct waiter w;
    struct http_resp r;
    char buf[64], path[160];

    double before = metric_get(a.url, "lockservice_force_releases_total", NULL);
    if (!hold(&h1, a.url, name, 1, 3, 30000, "alpha") ||
        !hold(&h2, b.url, name, 1, 3, 30000, "beta"))
        return;
    waiter_start(&w, b.url, name, 3, 3, scaled(20000), "gamma");
    queue_becomes(name, 1, 3000);
    snprintf(path, sizeof path, "/v1/semaphores/%s", name);
    double t0 = now_ms();
    http(&r, a.url, "DELETE", path, NULL, NULL);
    t_ok(r.status == 200 && json_is_true(json_object_get(r.json, "released")) &&
             jint(&r, "holders") == 2 && jstr(&r, "name") &&
             strcmp(jstr(&r, "name"), name) == 0,
         "%s: DELETE -> 200 {name, released, holders 2} (%s)", name, r.body);
    http_resp_free(&r);
    waiter_join(&w);
    t_ok(w.got.status == 200 && w.got.permits == 3 &&
             w.finished - t0 < prompt_bound(),
         "%s: the waiter for all 3 permits is granted at once, %.0f ms after "
         "(%ld)",
         name, w.finished - t0, w.got.status);
    fence_after(name, h2.fence, w.got.fence);
    t_ok(strcmp(refusal_of(a.url, name, "renew", h1.token, buf, sizeof buf),
                "409 not_held") == 0 &&
             strcmp(
                 refusal_of(b.url, name, "release", h2.token, buf, sizeof buf),
                 "409 not_held") == 0,
         "%s: the old holders' renew and release -> 409 not_held", name);
    metric_wait(a.url, "lockservice_force_releases_total", NULL, before + 1,
                2000);
    t_ok(metric_get(a.url, "lockservice_force_releases_total", NULL) ==
             before + 1,
         "%s: lockservice_force_releases_total counts it", name);
    /* The audit line, in A's log. */
    char cmd[512], f1[64], f2[64];
    snprintf(f1, sizeof f1, "%lld", h1.fence);
    snprintf(f2, sizeof f2, "%lld", h2.fence);
    snprintf(cmd, sizeof cmd, "grep -c 'audit: force release of semaphore' %s",
             a.log);
    FILE *p = popen(cmd, "r");
    int lines = 0;
    if (p) {
        if (fscanf(p, "%d", &lines) != 1)
            lines = 0;
        pclose(p);
    }
    snprintf(cmd, sizeof cmd,
             "grep 'audit: force release of semaphore .%s.' %s | "
             "grep -c -e \"owner 'alpha' fence %s\" -e \"owner 'beta' fence "
             "%s\"",
             name, a.log, f1, f2);
    int named = 0;
    p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%d", &named) != 1)
            named = 0;
        pclose(p);
    }
    t_ok(lines >= 3 && named == 2,
         "%s: the audit lines name the semaphore and each holder's owner and "
         "fence (%d lines, %d holders named)",
         name, lines, named);
    http(&r, a.url, "DELETE", "/v1/semaphores/sem-never", NULL, NULL);
    t_ok(r.status == 200 && jint(&r, "holders") == 0,
         "DELETE of a name nobody holds -> 200 holders 0 (%s)", r.body);
    http_resp_free(&r);
    release(b.url, name, w.got.token);
}

/* A waiter whose client hangs up leaves the queue at once; a head that
 * leaves unblocks the waiters behind it. */
static void test_hangup(void)
{
    const char *name = "sem-hangup";
    struct lease h;
    struct waiter w1;

    if (!hold(&h, a.url, name, 2, 3, 30000, "h"))
        return;
    int w3 = raw_waiter(name, 3, 3, "w3");
    t_ok(w3 >= 0 && queue_becomes(name, 1, 3000),
         "%s: w3 (3 permits) is queued", name);
    waiter_start(&w1, a.url, name, 1, 3, scaled(20000), "w1");
    queue_becomes(name, 2, 3000);
    sleep_ms(scaled(100));
    t_ok(waiting(&w1), "%s: w1 (1) waits behind w3 (1 permit free)", name);
    double t0 = now_ms();
    close(w3);
    waiter_join(&w1);
    t_ok(w1.got.status == 200 && w1.finished - t0 < prompt_bound(),
         "%s: w3's client hangs up: it leaves the queue and w1 is granted "
         "%.0f ms after (%ld %s)",
         name, w1.finished - t0, w1.got.status, w1.got.body);
    t_ok(queue_becomes(name, 0, 2000) && waiters_become(a.url, 0, 3000),
         "%s: the queue is empty and nobody is parked", name);
    release(a.url, name, w1.got.token);

    /* A waiter that hangs up while not at the head leaves at once too. */
    int x = raw_waiter(name, 3, 3, "x");
    queue_becomes(name, 1, 3000);
    int y = raw_waiter(name, 3, 3, "y");
    queue_becomes(name, 2, 3000);
    close(y);
    t_ok(queue_becomes(name, 1, 2000),
         "%s: a waiter behind the head hangs up: its entry leaves at once "
         "while the permits are still held",
         name);
    close(x);
    t_ok(queue_becomes(name, 0, 2000), "%s: and so does the head's", name);

    /* The head's wait ends: the waiter behind it that fits is served. */
    struct waiter h3, b1;
    waiter_start(&h3, a.url, name, 3, 3, scaled(600), "h3");
    queue_becomes(name, 1, 3000);
    waiter_start(&b1, b.url, name, 1, 3, scaled(20000), "b1");
    queue_becomes(name, 2, 3000);
    waiter_join(&h3);
    t0 = h3.finished;
    waiter_join(&b1);
    t_ok(strcmp(h3.got.code, "no_permits") == 0 && b1.got.status == 200 &&
             b1.finished - t0 < prompt_bound(),
         "%s: the head's wait ends (409 %s): b1 behind it (on B) is granted "
         "%.0f ms after",
         name, h3.got.code, b1.finished - t0);
    release(a.url, name, h.token);
    release(b.url, name, b1.got.token);
}

/* The holder releases and the head waiter's client hangs up right behind
 * it: the release may hand the permits to the gone client, and then they
 * go on to the waiter behind it within a few hand-off windows, every time
 * (not after the gone client's 30 s lease). */
static void test_handoff_to_hung_up(void)
{
    int passed = 0;
    char why[256] = "";

    for (int round = 0; round < 6; round++) {
        char name[32], path[160], body[96];
        struct lease h;
        struct waiter w2;

        snprintf(name, sizeof name, "sem-race-%d", round);
        if (!hold(&h, a.url, name, 3, 3, 30000, "h"))
            break;
        int w1 = raw_waiter(name, 3, 3, "w1");
        queue_becomes(name, 1, 3000);
        waiter_start(&w2, a.url, name, 1, 3, scaled(5000), "w2");
        queue_becomes(name, 2, 3000);
        snprintf(path, sizeof path, "/v1/semaphores/%s/release", name);
        snprintf(body, sizeof body, "{\"token\":\"%s\"}", h.token);
        if (w1 >= 0)
            close(w1);
        double t0 = now_ms();
        int rel = raw_request(a.port, "POST", path, body);
        long st = rel >= 0 ? raw_status(rel, (int)scaled(5000)) : 0;
        if (rel >= 0)
            close(rel);
        waiter_join(&w2);
        double lag = w2.finished - t0;
        if (st != 200 || w2.got.status != 200 || lag >= prompt_bound()) {
            snprintf(why, sizeof why,
                     "round %d: release %ld, w2 %ld after "
                     "%.0f ms",
                     round, st, w2.got.status, lag);
            break;
        }
        release(a.url, name, w2.got.token);
        passed++;
    }
    t_ok(passed == 6,
         "sem-race: in 6 races of a release with the head's client hanging "
         "up right behind it, the waiter behind is granted within %.0f ms "
         "(%d passed%s%s)",
         prompt_bound(), passed, why[0] ? "; " : "", why);
}

/* No key of a semaphore lives without a TTL. */
static void test_ttls(void)
{
    const char *name = "sem-ttl";
    struct lease h;
    struct waiter w;
    static const char *const suffixes[] = {"sem", "sem:expiry", "sem:fence",
                                           "sem:queue", "sem:waiters"};
    bool all = true;
    char which[256] = "";

    if (!hold(&h, a.url, name, 1, 1, 10000, "h"))
        return;
    waiter_start(&w, a.url, name, 1, 1, scaled(5000), "w");
    queue_becomes(name, 1, 3000);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        long long pttl = redis_cli_int(&redis, "PTTL lockservice:{%s}:%s", name,
                                       suffixes[i]);
        size_t n = strlen(which);
        snprintf(which + n, sizeof which - n, " %s %lld", suffixes[i], pttl);
        all = all && pttl > 0;
    }
    long long fence_pttl =
        redis_cli_int(&redis, "PTTL lockservice:{%s}:sem:fence", name);
    long long queue_pttl =
        redis_cli_int(&redis, "PTTL lockservice:{%s}:sem:queue", name);
    t_ok(all && fence_pttl > 60000 && fence_pttl <= 70000 &&
             queue_pttl > 1000 && queue_pttl <= scaled(5000) + 1000,
         "%s: every key has a TTL: holders the lease, fence the lease + 60 s, "
         "queue the longest wait + 1 s (%s)",
         name, which);
    release(a.url, name, h.token);
    waiter_join(&w);
    release(a.url, name, w.got.token);
}

/* W1 (2 permits) queued on B, W2 (2) on A behind it; B is SIGKILLed and
 * the holder of all 3 releases on A: W1's hand-off is never claimed, and
 * W2 gets the permits when it lapses (a hand-off window), not after W1's
 * wait or B's liveness TTL. */
static void test_instance_killed(void)
{
    const char *name = "sem-dead-instance";
    struct lease h;
    struct waiter w1, w2;

    if (!hold(&h, a.url, name, 3, 3, 30000, "h"))
        return;
    waiter_start(&w1, b.url, name, 2, 3, scaled(20000), "w1");
    queue_becomes(name, 1, 3000);
    waiter_start(&w2, a.url, name, 2, 3, scaled(20000), "w2");
    queue_becomes(name, 2, 3000);
    svc_kill(&b);
    double t0 = now_ms();
    long st = release(a.url, name, h.token);
    waiter_join(&w1);
    waiter_join(&w2);
    double lag = w2.finished - t0, bound = 2000 * time_scale();
    t_ok(st == 200 && w1.got.status == 0 && w2.got.status == 200 && lag < bound,
         "%s: B SIGKILLed, the holder released on A: W2 is granted after "
         "%.0f ms (< %.0f ms: W1's hand-off window of %ld ms lapsed; release "
         "%ld, W1 %ld, W2 %ld %s)",
         name, lag, bound, handoff_ms, st, w1.got.status, w2.got.status,
         w2.got.body);
    fence_after(name, h.fence, w2.got.fence);
    t_ok(status_int(name, "used") == 2 && status_int(name, "holder_count") == 1,
         "%s: W2 alone holds 2 permits", name);
    release(a.url, name, w2.got.token);
}

/* A field of INFO memory, or -1. */
static long long used_memory(void)
{
    char *out = redis_cli(&redis, "INFO memory");
    const char *at = out ? strstr(out, "\nused_memory:") : NULL;
    long long v = -1;
    if (at) {
        char *end;
        v = strtoll(at + strlen("\nused_memory:"), &end, 10);
    }
    free(out);
    return v;
}

static void cli(const char *args)
{
    free(redis_cli(&redis, args));
}

/* Redis at maxmemory with noeviction: renew and release of a held lease
 * work (the scripts run with allow-oom); a new grant Redis refuses is 503
 * backend_unavailable quoting its OOM. */
static void test_maxmemory(void)
{
    const char *name = "sem-oom";
    struct lease h, x;
    struct http_resp r;
    char args[128];
    int fills = 0;
    bool oom = false;

    if (!hold(&h, a.url, name, 1, 2, 60000, "h"))
        return;
    cli("CONFIG SET maxmemory-policy noeviction");
    snprintf(args, sizeof args, "CONFIG SET maxmemory %lld",
             used_memory() + 512 * 1024);
    cli(args);
    while (fills < 200 && !oom) {
        snprintf(args, sizeof args, "SETRANGE sem-oom-fill:%d 262143 x",
                 fills++);
        char *out = redis_cli(&redis, args);
        oom = out && strncmp(out, "OOM", 3) == 0;
        free(out);
    }
    snprintf(args, sizeof args, "CONFIG SET maxmemory %lld",
             used_memory() - 256 * 1024);
    cli(args);
    t_ok(oom, "%s: Redis refuses writes with OOM", name);
    post_token(&r, a.url, name, "renew", h.token, "\"ttl_ms\":60000");
    t_ok(r.status == 200, "%s: at maxmemory, renew -> 200 (%ld %s)", name,
         r.status, r.body);
    http_resp_free(&r);
    acquire(&x, a.url, name, "{\"limit\":2}");
    t_ok(x.status == 503 && strcmp(x.code, "backend_unavailable") == 0 &&
             strstr(x.body, "OOM"),
         "%s: at maxmemory, a new grant -> 503 quoting Redis's OOM (%ld %s)",
         name, x.status, x.body);
    post_token(&r, a.url, name, "release", h.token, NULL);
    t_ok(r.status == 200 && jint(&r, "permits") == 1,
         "%s: at maxmemory, release -> 200 (%ld %s)", name, r.status, r.body);
    http_resp_free(&r);
    cli("CONFIG SET maxmemory 0");
    for (int i = 0; i < fills; i++) {
        snprintf(args, sizeof args, "DEL sem-oom-fill:%d", i);
        cli(args);
    }
    acquire(&x, a.url, name, "{\"limit\":2}");
    t_ok(x.status == 200, "%s: maxmemory 0 again: acquire -> 200 (%ld)", name,
         x.status);
}

int main(void)
{
    char handoff[24];
    handoff_ms = scaled(250);
    snprintf(handoff, sizeof handoff, "%ld", handoff_ms);
    const char *args[] = {"--handoff-ms",
                          handoff,
                          "--max-permits",
                          "10",
                          "--threads",
                          "2",
                          "--max-wait-ms",
                          "600000",
                          NULL};
    if (redis_start(&redis, NULL) != 0 || svc_start(&a, &redis, args) != 0 ||
        svc_start(&b, &redis, args) != 0) {
        t_ok(false, "start redis-server and two lockservice instances");
        return t_done();
    }
    test_validation();
    test_limit_agreement();
    test_permits_and_status();
    test_no_permits();
    test_crashed_holder();
    test_fifo();
    test_release_serves_several();
    test_renew_release();
    test_request_id();
    test_force_release();
    test_hangup();
    test_handoff_to_hung_up();
    test_ttls();
    test_instance_killed();
    test_maxmemory();
    t_ok(fences_ok, "fences strictly increase per name over every grant");
    t_ok(releases_failed == 0,
         "every release of a lease that held permits answered 200 (%d did "
         "not)",
         releases_failed);
    svc_stop(&a);
    redis_stop(&redis);
    return t_done();
}
