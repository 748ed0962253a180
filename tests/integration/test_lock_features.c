/* test_lock_features.c -- retry-safe acquire, lock-delay, the status of a
 * name, check and force release, for exclusive locks (issue 10 items 3, 4,
 * 5, 6 and 8; DESIGN.md sections 4.1, 4.2 and 4.4), against the real
 * binary and a real redis-server. The main instance runs with --threads 2,
 * --handoff-ms 250 (scaled), --max-waiters 1000 and --redis-timeout-ms
 * 10000 (some checks stall Redis for 2 s with DEBUG SLEEP, so that a
 * client's hang-up surely comes before its grant); a second one with
 * --lock-delay-ms.
 *
 *  - request_id: a repeated acquire answers the same lease ("replayed");
 *    a repeated re-entry counts one hold; after the lease ended (released
 *    or expired) a repeat is 409 not_held and grants nothing; a repeated
 *    release drops one hold; the records have TTLs. The real failure: a
 *    client whose connection is cut (closed or reset) after it sent its
 *    acquire (on a free lock, before the grant, and while it waits in the
 *    queue) retries with the same request_id and ends with exactly one
 *    lease, the one status shows, still live.
 *  - lock_delay_ms: after an expiry the name stays unavailable that long
 *    (status delay_ms; 409 lock_held with retry_after_ms; a waiter is
 *    granted at its end, not before); a release and a force release clear
 *    it; --lock-delay-ms sets the default; out-of-range values are 400.
 *  - status: holders, holder_count, waiting and the queue in order (at
 *    most 100 of 150), reserved_ms during a hand-off, never a token.
 *  - check: 200 with the status for the holder's token, else not_owner or
 *    not_held (also after a force release).
 *  - force release: ends the lease, grants the head waiter at once, the
 *    old token gets not_held, an audit line, the counter; a free lock is
 *    200 with holders 0.
 *  - hang-ups: a release and the head waiter's hang-up in one burst never
 *    keep the lock for the gone waiter; an acquire granted to a client that
 *    hung up before its answer (closed right after sending; closed or reset
 *    while Redis was slow) does not keep the lock either. */
#include "harness.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc svc, delayed;
static long handoff_ms, default_delay_ms;

#define PREFIX "lockservice:"
#define GHOST_INSTANCE "0badc0de0badc0de"
#define GHOST_ID GHOST_INSTANCE ":0:1"

static long scaled(double ms)
{
    return (long)(ms * time_scale());
}

static void lock_path(char *buf, size_t len, const char *name, const char *op)
{
    if (op != NULL)
        snprintf(buf, len, "/v1/locks/%s/%s", name, op);
    else
        snprintf(buf, len, "/v1/locks/%s", name);
}

/* POST /v1/locks/<name>/<op> with a printf-formatted body on base. */
static int post(struct http_resp *r, const char *base, const char *name,
                const char *op, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int post(struct http_resp *r, const char *base, const char *name,
                const char *op, const char *fmt, ...)
{
    char path[256], *body = NULL;
    va_list ap;
    int n, rc;

    lock_path(path, sizeof path, name, op);
    va_start(ap, fmt);
    n = vasprintf(&body, fmt, ap);
    va_end(ap);
    if (n < 0) {
        memset(r, 0, sizeof *r);
        return -1;
    }
    rc = http(r, base, "POST", path, body, NULL);
    free(body);
    return rc;
}

static int status_of(struct http_resp *r, const char *base, const char *name)
{
    char path[256];
    lock_path(path, sizeof path, name, NULL);
    return http(r, base, "GET", path, NULL, NULL);
}

static int force(struct http_resp *r, const char *base, const char *name)
{
    char path[256];
    lock_path(path, sizeof path, name, NULL);
    return http(r, base, "DELETE", path, NULL, NULL);
}

/* Acquires name on base with body; copies the token (or "") and returns
 * the fence, or -1 when not granted. */
static long long hold_on(const char *base, const char *name, const char *body,
                         char *tok, size_t len)
{
    struct http_resp r;
    long long f;

    post(&r, base, name, "acquire", "%s", body);
    f = r.status == 200 ? jint(&r, "fence") : -1;
    snprintf(tok, len, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    if (f < 0)
        t_diag("acquire %s %s: %ld %s", name, body, r.status,
               r.body ? r.body : "");
    http_resp_free(&r);
    return f;
}

static long drop(const char *name, const char *tok)
{
    struct http_resp r;
    post(&r, svc.url, name, "release", "{\"token\":\"%s\"}", tok);
    long st = r.status;
    http_resp_free(&r);
    return st;
}

static bool is_true(const struct http_resp *r, const char *key)
{
    return r->json && json_is_true(json_object_get(r->json, key));
}

static bool is_false(const struct http_resp *r, const char *key)
{
    return r->json && json_is_false(json_object_get(r->json, key));
}

static bool has(const struct http_resp *r, const char *key)
{
    return r->json && json_object_get(r->json, key) != NULL;
}

/* The member key of object o as a string, or "". */
static const char *member_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

static long long member_int(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : LLONG_MIN;
}

/* True when s holds a run of 32 or more lowercase hex digits: a token. */
static bool has_token_like(const char *s)
{
    size_t run = 0;
    for (; s != NULL && *s; s++) {
        run = strchr("0123456789abcdef", *s) ? run + 1 : 0;
        if (run >= 32)
            return true;
    }
    return false;
}

static long long queue_len(const char *name)
{
    return redis_cli_int(&redis, "LLEN " PREFIX "{%s}:queue", name);
}

/* Polls until the queue of name holds n entries, for up to ms (scaled). */
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
    t_diag("LLEN " PREFIX "{%s}:queue is %lld, wanted %lld", name, len, n);
    return false;
}

/* Polls the status of name on base until its "held" is want, for up to ms
 * (scaled). */
static bool held_becomes(const char *base, const char *name, bool want,
                         double ms)
{
    double end = now_ms() + ms * time_scale();
    struct http_resp r;
    for (;;) {
        status_of(&r, base, name);
        bool ok = r.status == 200 &&
                  (want ? is_true(&r, "held") : is_false(&r, "held"));
        http_resp_free(&r);
        if (ok)
            return true;
        if (now_ms() >= end)
            return false;
        sleep_ms(5);
    }
}

/* A client waiting in a thread of its own. */
struct waiter {
    pthread_t thread;
    const char *url;
    char path[256];
    char body[512];
    long status;
    long long fence, count;
    bool replayed;
    char token[64];
    char code[64];
    char text[512];
    double finished;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct http_resp r;
    http(&r, w->url, "POST", w->path, w->body, NULL);
    w->finished = now_ms();
    w->status = r.status;
    w->fence = jint(&r, "fence");
    w->count = jint(&r, "count");
    w->replayed = is_true(&r, "replayed");
    snprintf(w->token, sizeof w->token, "%s",
             jstr(&r, "token") ? jstr(&r, "token") : "");
    snprintf(w->code, sizeof w->code, "%s", problem_code(&r));
    snprintf(w->text, sizeof w->text, "%s", r.body ? r.body : "");
    http_resp_free(&r);
    return NULL;
}

static void waiter_start(struct waiter *w, const char *name, const char *body)
{
    memset(w, 0, sizeof *w);
    w->url = svc.url;
    lock_path(w->path, sizeof w->path, name, "acquire");
    snprintf(w->body, sizeof w->body, "%s", body);
    pthread_create(&w->thread, NULL, waiter_main, w);
}

/* An acquire on a raw connection, left unread: a client to hang up on. */
static int raw_acquire(const char *name, const char *body)
{
    char path[256];
    lock_path(path, sizeof path, name, "acquire");
    return raw_request(svc.port, "POST", path, body);
}

/* Hangs up on fd: a plain close (FIN), or with reset an abortive one
 * (SO_LINGER 0: RST), as a client killed mid-request or a proxy that gave
 * up does. */
static void hang_up(int fd, bool reset)
{
    struct linger l = {1, 0};

    if (fd < 0)
        return;
    if (reset && setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0)
        t_diag("SO_LINGER: %s", strerror(errno));
    close(fd);
}

/* The HTTP/1.1 request POST path with a JSON body, into buf. Returns its
 * length, or 0 when it does not fit. */
static size_t http_request(char *buf, size_t len, const char *path,
                           const char *body)
{
    int n = snprintf(buf, len,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/json\r\nContent-Length: "
                     "%zu\r\n\r\n%s",
                     path, svc.port, strlen(body), body);
    return n > 0 && (size_t)n < len ? (size_t)n : 0;
}

/* Sends an acquire and closes the connection in the same segment (TCP_CORK
 * holds the request until the close flushes it with the FIN): the service
 * reads the request and the hang-up together, whatever the scheduling of
 * this process. Returns false when it could not be sent. */
static bool acquire_and_close(const char *name, const char *body)
{
    char path[256], req[1024];
    int one = 1, fd = raw_connect(svc.port);
    size_t n;
    bool sent;

    lock_path(path, sizeof path, name, "acquire");
    n = http_request(req, sizeof req, path, body);
    if (fd < 0 || n == 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    if (setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one) != 0)
        t_diag("TCP_CORK: %s", strerror(errno));
    sent = raw_send(fd, req, n);
    close(fd);
    return sent;
}

/* ---- request_id ------------------------------------------------------*/

static long long pttl(const char *name, const char *record)
{
    return redis_cli_int(&redis, "PTTL " PREFIX "{%s}:%s", name, record);
}

/* A repeated acquire answers the same lease; a repeated re-entry counts
 * one hold; a repeated release drops one hold; after the lease ended a
 * repeat is not_held and grants nothing. */
static void test_request_id_replay(void)
{
    const char *name = "rid-replay";
    const char *acq = "{\"ttl_ms\":30000,\"owner\":\"r1\",\"request_id\":"
                      "\"op-1\"}";
    struct http_resp a, b, r;
    char tok[64] = "";

    post(&a, svc.url, name, "acquire", "%s", acq);
    t_ok(a.status == 200 && token_like(jstr(&a, "token")) &&
             jint(&a, "count") == 1 && !has(&a, "replayed") &&
             jstr(&a, "mode") && strcmp(jstr(&a, "mode"), "exclusive") == 0,
         "request_id: the first acquire is granted, count 1, mode exclusive, "
         "not replayed (%ld %s)",
         a.status, a.body ? a.body : "");
    snprintf(tok, sizeof tok, "%s", jstr(&a, "token") ? jstr(&a, "token") : "");
    post(&b, svc.url, name, "acquire", "%s", acq);
    t_ok(b.status == 200 && is_true(&b, "replayed") && jstr(&b, "token") &&
             strcmp(jstr(&b, "token"), tok) == 0 &&
             jint(&b, "fence") == jint(&a, "fence") && jint(&b, "count") == 1 &&
             jstr(&b, "owner") && strcmp(jstr(&b, "owner"), "r1") == 0,
         "request_id: the repeat answers the same lease: same token and "
         "fence, count 1, \"replayed\":true (%ld %s)",
         b.status, b.body ? b.body : "");
    http_resp_free(&b);
    status_of(&r, svc.url, name);
    t_ok(r.status == 200 && jint(&r, "count") == 1 &&
             jint(&r, "holder_count") == 1 &&
             jint(&r, "fence") == jint(&a, "fence"),
         "request_id: status shows one lease, count 1 (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    long long ttl = pttl(name, "acq:op-1");
    t_ok(ttl > 0 && ttl <= 30000 + 60000,
         "request_id: the acquire record has a TTL within lease + 60 s "
         "(PTTL %lld)",
         ttl);

    /* Re-entry with a request_id of its own, repeated: one hold. */
    post(&b, svc.url, name, "acquire",
         "{\"token\":\"%s\",\"request_id\":\"op-2\"}", tok);
    t_ok(b.status == 200 && jint(&b, "count") == 2 && !has(&b, "replayed"),
         "request_id: a re-entry with request_id op-2 counts 2 (%ld %s)",
         b.status, b.body ? b.body : "");
    http_resp_free(&b);
    post(&b, svc.url, name, "acquire",
         "{\"token\":\"%s\",\"request_id\":\"op-2\"}", tok);
    t_ok(b.status == 200 && jint(&b, "count") == 2 && is_true(&b, "replayed") &&
             jstr(&b, "token") && strcmp(jstr(&b, "token"), tok) == 0,
         "request_id: the re-entry repeated is replayed, still count 2 (%ld "
         "%s)",
         b.status, b.body ? b.body : "");
    http_resp_free(&b);
    status_of(&r, svc.url, name);
    t_ok(jint(&r, "count") == 2,
         "request_id: status counts 2 holds, not 3 (%s)", r.body ? r.body : "");
    http_resp_free(&r);

    /* A release with a request_id, repeated: one hold dropped. */
    post(&b, svc.url, name, "release",
         "{\"token\":\"%s\",\"request_id\":\"rel-1\"}", tok);
    t_ok(b.status == 200 && jint(&b, "count") == 1,
         "request_id: a release with request_id rel-1 leaves count 1 (%ld %s)",
         b.status, b.body ? b.body : "");
    http_resp_free(&b);
    post(&b, svc.url, name, "release",
         "{\"token\":\"%s\",\"request_id\":\"rel-1\"}", tok);
    t_ok(b.status == 200 && jint(&b, "count") == 1,
         "request_id: the release repeated answers as the first did (count "
         "1) (%ld %s)",
         b.status, b.body ? b.body : "");
    http_resp_free(&b);
    status_of(&r, svc.url, name);
    t_ok(is_true(&r, "held") && jint(&r, "count") == 1,
         "request_id: the repeated release dropped one hold, not two: held, "
         "count 1 (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    ttl = pttl(name, "rel:rel-1");
    t_ok(ttl > 0 && ttl <= 30000 + 60000,
         "request_id: the release record has a TTL within lease + 60 s "
         "(PTTL %lld)",
         ttl);

    /* The lease ends: repeats are not_held and grant nothing. */
    t_ok(drop(name, tok) == 200, "request_id: the last hold is released");
    post(&b, svc.url, name, "acquire", "%s", acq);
    t_ok(problem_is(&b, 409, "not_held"),
         "request_id: the acquire repeated after its lease was released is "
         "409 not_held");
    http_resp_free(&b);
    post(&b, svc.url, name, "acquire",
         "{\"token\":\"%s\",\"request_id\":\"op-2\"}", tok);
    t_ok(problem_is(&b, 409, "not_held"),
         "request_id: so is the re-entry repeated after it");
    http_resp_free(&b);
    status_of(&r, svc.url, name);
    t_ok(is_false(&r, "held") && !has(&r, "owner"),
         "request_id: and neither made a new lease: the lock is free (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    /* Another request_id is a new request. */
    post(&b, svc.url, name, "acquire", "{\"request_id\":\"op-3\"}");
    t_ok(b.status == 200 && jint(&b, "fence") > jint(&a, "fence") &&
             !has(&b, "replayed"),
         "request_id: another request_id gets a new lease with a newer fence "
         "(%ld)",
         b.status);
    if (jstr(&b, "token"))
        drop(name, jstr(&b, "token"));
    http_resp_free(&b);
    http_resp_free(&a);
}

/* After the lease expired, the repeat is not_held too. */
static void test_request_id_expired(void)
{
    const char *name = "rid-expired";
    long ttl = scaled(300);
    struct http_resp a, b;

    post(&a, svc.url, name, "acquire",
         "{\"ttl_ms\":%ld,\"request_id\":\"e-1\"}", ttl);
    t_ok(a.status == 200, "request_id expiry: granted for %ld ms (%ld)", ttl,
         a.status);
    long long rec = pttl(name, "acq:e-1");
    t_ok(rec > ttl && rec <= ttl + 60000,
         "request_id expiry: the record outlives the lease by up to 60 s "
         "(PTTL %lld)",
         rec);
    t_ok(held_becomes(svc.url, name, false, (double)ttl + 3000),
         "request_id expiry: the lease expires");
    post(&b, svc.url, name, "acquire",
         "{\"ttl_ms\":%ld,\"request_id\":\"e-1\"}", ttl);
    t_ok(problem_is(&b, 409, "not_held"),
         "request_id expiry: the repeat after the expiry is 409 not_held");
    http_resp_free(&b);
    t_ok(held_becomes(svc.url, name, false, 0),
         "request_id expiry: and made no lease");
    http_resp_free(&a);
}

/* The lease status shows now for name: its fence (or -1) and holder_count
 * (or -1). */
static void holder_of(const char *name, long long *fence, long long *holders)
{
    struct http_resp r;
    status_of(&r, svc.url, name);
    *fence = is_true(&r, "held") ? jint(&r, "fence") : -1;
    *holders = jint(&r, "holder_count");
    http_resp_free(&r);
}

/* A renew of tok on name: its status. */
static long renew_status(const char *name, const char *tok)
{
    struct http_resp r;
    post(&r, svc.url, name, "renew", "{\"token\":\"%s\"}", tok);
    long st = r.status;
    http_resp_free(&r);
    return st;
}

#define CUT_ROUNDS 6

/* The real failure, on a free lock: the acquire is sent and the
 * connection closed with it, before the answer could be read; the client
 * retries with the same request_id, at once or (odd rounds) once the
 * service has dealt with the cut. It must end with exactly one lease, the one
 * its retry got, still held after the service dealt with the cut. */
static void test_cut_on_free_lock(void)
{
    int good = 0;
    char why[512] = "";

    for (int i = 0; i < CUT_ROUNDS; i++) {
        char name[32], body[160];
        struct http_resp r;
        long long fence, holders;

        snprintf(name, sizeof name, "cut-free-%d", i);
        snprintf(body, sizeof body,
                 "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"cut\","
                 "\"request_id\":\"cut-%d\"}",
                 scaled(5000), i);
        bool sent = acquire_and_close(name, body);
        if (i % 2)
            sleep_ms(scaled(100)); /* odd rounds: the cut is dealt with */
        post(&r, svc.url, name, "acquire", "%s", body);
        long st = r.status;
        long long got = jint(&r, "fence");
        char tok[64];
        snprintf(tok, sizeof tok, "%s",
                 jstr(&r, "token") ? jstr(&r, "token") : "");
        http_resp_free(&r);
        /* Whatever the service does about the cut, it has done it by now. */
        sleep_ms(scaled(300));
        holder_of(name, &fence, &holders);
        long rn = tok[0] ? renew_status(name, tok) : 0;
        if (sent && st == 200 && holders == 1 && fence == got && rn == 200)
            good++;
        else if (!why[0])
            snprintf(why, sizeof why,
                     "round %d (retry %s): retry %ld fence %lld; status "
                     "holder_count %lld fence %lld; renew with the retry's "
                     "token %ld",
                     i, i % 2 ? "after 100 ms" : "at once", st, got, holders,
                     fence, rn);
        if (tok[0])
            drop(name, tok);
    }
    t_ok(good == CUT_ROUNDS,
         "request_id, connection cut after the acquire was sent (free lock): "
         "the retry with the same request_id ends with exactly one lease, "
         "the one status shows, still live (%d of %d rounds%s%s)",
         good, CUT_ROUNDS, why[0] ? "; " : "", why);
}

/* A retry in a thread of its own (it waits behind a stalled Redis). */
struct retry {
    pthread_t thread;
    char name[32];
    char body[256];
    long status;
    long long fence;
    char token[64];
    char text[256];
};

static void *retry_main(void *arg)
{
    struct retry *t = arg;
    struct http_resp r;
    post(&r, svc.url, t->name, "acquire", "%s", t->body);
    t->status = r.status;
    t->fence = jint(&r, "fence");
    snprintf(t->token, sizeof t->token, "%s",
             jstr(&r, "token") ? jstr(&r, "token") : "");
    snprintf(t->text, sizeof t->text, "%s", r.body ? r.body : "");
    http_resp_free(&r);
    return NULL;
}

/* The real failure, made certain: Redis is stalled (DEBUG SLEEP 2) so that
 * the acquire is still at Redis when its client cuts the connection
 * (closed, or reset); the grant comes after the cut, so its answer cannot
 * reach the client. The client retries with the same request_id while
 * Redis is still stalled (during) or after the service dealt with the cut.
 * It must end with exactly one lease, the one its retry got, still live. */
static void test_cut_before_the_grant(bool reset, bool during)
{
    struct redis_stall st;
    struct retry t;
    long long fence = -1, holders = -1;
    long rn = 0;

    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "cut-slow-%s-%s", reset ? "rst" : "fin",
             during ? "during" : "after");
    snprintf(t.body, sizeof t.body,
             "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"cut\","
             "\"request_id\":\"%s\"}",
             scaled(5000), t.name);
    if (!redis_stall_begin(&st, &redis, 2)) {
        redis_stall_end(&st);
        t_ok(false, "%s: Redis stalls", t.name);
        return;
    }
    int fd = raw_acquire(t.name, t.body);
    sleep_ms(200); /* the acquire's script waits at Redis */
    hang_up(fd, reset);
    if (during) {
        pthread_create(&t.thread, NULL, retry_main, &t);
        sleep_ms(200); /* the retry waits at Redis too, behind it */
    }
    redis_stall_end(&st);
    if (during) {
        pthread_join(t.thread, NULL);
    } else {
        sleep_ms(scaled(300));
        retry_main(&t);
    }
    sleep_ms(scaled(300)); /* what the service does about the cut is done */
    holder_of(t.name, &fence, &holders);
    if (t.token[0])
        rn = renew_status(t.name, t.token);
    t_ok(fd >= 0 && t.status == 200 && holders == 1 && fence == t.fence &&
             rn == 200,
         "request_id, connection %s while Redis was slow, before the grant; "
         "retried %s: exactly one lease, the retry's, still live (retry %ld "
         "fence %lld %.100s; status holder_count %lld fence %lld; renew %ld)",
         reset ? "reset" : "closed",
         during ? "while the first try was at Redis" : "after the cut",
         t.status, t.fence, t.status == 200 ? "" : t.text, holders, fence, rn);
    if (t.token[0])
        drop(t.name, t.token);
}

/* The real failure while waiting: the cut client's queue entry goes; its
 * retry queues and gets the lock on release, with exactly one lease. */
static void test_cut_while_parked(void)
{
    const char *name = "cut-parked";
    char tok[64], body[160], rec[128];
    struct waiter w;
    struct http_resp r;

    if (hold_on(svc.url, name, "{\"ttl_ms\":30000,\"owner\":\"holder\"}", tok,
                sizeof tok) < 0)
        return;
    snprintf(body, sizeof body,
             "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"cutter\","
             "\"request_id\":\"park-1\"}",
             scaled(20000));
    int fd = raw_acquire(name, body);
    t_ok(fd >= 0 && queue_becomes(name, 1, 3000),
         "cut while parked: the acquire with request_id waits in the queue");
    if (fd >= 0)
        close(fd);
    t_ok(queue_becomes(name, 0, 3000) && waiters_become(svc.url, 0, 3000),
         "cut while parked: the service drops its queue entry and its waiter");
    waiter_start(&w, name, body);
    t_ok(queue_becomes(name, 1, 3000),
         "cut while parked: the retry with the same request_id queues");
    status_of(&r, svc.url, name);
    t_ok(jint(&r, "waiting") == 1, "cut while parked: status: waiting 1 (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    t_ok(drop(name, tok) == 200, "cut while parked: the holder releases");
    pthread_join(w.thread, NULL);
    t_ok(w.status == 200 && token_like(w.token) && !w.replayed,
         "cut while parked: the retry is granted (%ld %s)", w.status, w.text);
    sleep_ms(scaled(300));
    long long fence, holders;
    holder_of(name, &fence, &holders);
    t_ok(holders == 1 && fence == w.fence && fence > 0,
         "cut while parked: exactly one lease, the retry's (status fence "
         "%lld, holder_count %lld; retry fence %lld)",
         fence, holders, w.fence);
    snprintf(rec, sizeof rec, "GET " PREFIX "{%s}:acq:park-1", name);
    char *out = redis_cli(&redis, rec);
    t_ok(out && strncmp(out, w.token, 32) == 0,
         "cut while parked: request_id park-1 is recorded for the retry's "
         "lease");
    free(out);
    if (w.token[0])
        t_ok(drop(name, w.token) == 200 && queue_len(name) == 0,
             "cut while parked: the retry releases; nobody is left queued");
}

/* A granted acquire whose client hung up before reading its answer (the
 * socket closed right after sending, the FIN in the request's segment, on
 * a free lock): the lock does not stay held for a lease nobody knows. */
static void test_granted_to_gone_client(void)
{
    int granted = 0, freed = 0, tries = 0;
    char why[256] = "";

    while (granted < 3 && tries < 12) {
        char name[32];
        snprintf(name, sizeof name, "gone-%d", tries++);
        if (!acquire_and_close(name, "{\"ttl_ms\":30000,\"owner\":\"gone\"}"))
            continue;
        /* Was it granted? A grant sets the fence key; wait for it. */
        double end = now_ms() + 1000 * time_scale();
        long long fenced = 0;
        while ((fenced = redis_cli_int(&redis, "EXISTS " PREFIX "{%s}:fence",
                                       name)) != 1 &&
               now_ms() < end)
            sleep_ms(5);
        if (fenced != 1)
            continue; /* the hang-up came before the request was served */
        granted++;
        if (held_becomes(svc.url, name, false, 2000))
            freed++;
        else if (!why[0])
            snprintf(why, sizeof why, "; %s still held after 2 s", name);
    }
    t_ok(granted > 0 && freed == granted,
         "a granted acquire whose client closed the connection right after "
         "sending leaves the lock free within 2 s (%d of %d granted ones%s)",
         freed, granted, why);
}

/* The same, made certain with a stalled Redis: the client hangs up
 * (closes, or resets) while its acquire waits at Redis; the grant comes
 * after, and its answer cannot reach anybody. */
static void test_granted_after_hangup(bool reset)
{
    struct redis_stall st;
    char name[32];

    snprintf(name, sizeof name, "gone-slow-%s", reset ? "rst" : "fin");
    if (!redis_stall_begin(&st, &redis, 2)) {
        redis_stall_end(&st);
        t_ok(false, "%s: Redis stalls", name);
        return;
    }
    int fd = raw_acquire(name, "{\"ttl_ms\":30000,\"owner\":\"gone\"}");
    sleep_ms(200);
    hang_up(fd, reset);
    redis_stall_end(&st);
    double end = now_ms() + 2000 * time_scale();
    long long fenced = 0;
    while ((fenced = redis_cli_int(&redis, "EXISTS " PREFIX "{%s}:fence",
                                   name)) != 1 &&
           now_ms() < end)
        sleep_ms(5);
    bool freed = fenced == 1 && held_becomes(svc.url, name, false, 2000);
    t_ok(fd >= 0 && freed,
         "an acquire granted after its client hung up (connection %s while "
         "Redis was slow) leaves the lock free within 2 s (granted %s)",
         reset ? "reset" : "closed", fenced == 1 ? "yes" : "no");
}

/* ---- lock_delay_ms -----------------------------------------------------*/

static void test_lock_delay_expiry(void)
{
    const char *name = "delay-a";
    long ttl = scaled(300), delay = scaled(1500);
    char tok[64], body[128], ra[16];
    struct http_resp r;

    snprintf(body, sizeof body, "{\"ttl_ms\":%ld,\"lock_delay_ms\":%ld}", ttl,
             delay);
    if (hold_on(svc.url, name, body, tok, sizeof tok) < 0)
        return;
    status_of(&r, svc.url, name);
    t_ok(is_true(&r, "held") && !has(&r, "delay_ms"),
         "lock-delay: no delay_ms while the lease runs (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    t_ok(held_becomes(svc.url, name, false, (double)ttl + 3000),
         "lock-delay: the lease expires");
    status_of(&r, svc.url, name);
    long long d = jint(&r, "delay_ms");
    t_ok(is_false(&r, "held") && d > 0 && d <= delay && !has(&r, "owner") &&
             json_object_size(r.json) == 3,
         "lock-delay: after the expiry status is {\"name\",\"held\":false,"
         "\"delay_ms\"}, delay_ms %lld (0 < it <= %ld) (%s)",
         d, delay, r.body ? r.body : "");
    http_resp_free(&r);
    post(&r, svc.url, name, "acquire", "{}");
    long long ra_ms = jint(&r, "retry_after_ms");
    long long want_s = (ra_ms + 999) / 1000;
    t_ok(problem_is(&r, 409, "lock_held") && ra_ms > delay / 2 &&
             ra_ms <= delay && http_header(&r, "Retry-After", ra, sizeof ra) &&
             strtoll(ra, NULL, 10) == (want_s > 0 ? want_s : 1),
         "lock-delay: an acquire without wait_ms is 409 lock_held, "
         "retry_after_ms %lld about the delay (%ld), Retry-After %s",
         ra_ms, delay,
         http_header(&r, "Retry-After", ra, sizeof ra) ? ra : "-");
    http_resp_free(&r);
    double end = now_ms() + (double)delay + 3000 * time_scale();
    bool got = false;
    while (!got && now_ms() < end) {
        post(&r, svc.url, name, "acquire", "{\"ttl_ms\":30000}");
        got = r.status == 200;
        if (got)
            drop(name, jstr(&r, "token"));
        http_resp_free(&r);
        if (!got)
            sleep_ms(20);
    }
    t_ok(got, "lock-delay: once the delay ran out an acquire is granted");
}

/* A waiter is granted when the delay ends, not before. */
static void test_lock_delay_waiter(void)
{
    const char *name = "delay-b";
    long ttl = scaled(400), delay = scaled(1500);
    char tok[64], body[128];
    struct waiter w;

    snprintf(body, sizeof body, "{\"ttl_ms\":%ld,\"lock_delay_ms\":%ld}", ttl,
             delay);
    double t0 = now_ms();
    long long f0 = hold_on(svc.url, name, body, tok, sizeof tok);
    if (f0 < 0)
        return;
    snprintf(body, sizeof body,
             "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"dw\"}",
             scaled(20000));
    waiter_start(&w, name, body);
    t_ok(queue_becomes(name, 1, 3000), "lock-delay: a waiter queues");
    struct http_resp r;
    held_becomes(svc.url, name, false, (double)ttl + 3000);
    status_of(&r, svc.url, name);
    json_t *holders = r.json ? json_object_get(r.json, "holders") : NULL;
    json_t *queue = r.json ? json_object_get(r.json, "queue") : NULL;
    t_ok(is_false(&r, "held") && jint(&r, "delay_ms") > 0 &&
             json_is_array(holders) && json_array_size(holders) == 0 &&
             jint(&r, "holder_count") == 0 && jint(&r, "waiting") == 1 &&
             json_array_size(queue) == 1 &&
             strcmp(member_str(json_array_get(queue, 0), "owner"), "dw") == 0 &&
             !has(&r, "owner"),
         "lock-delay: a free lock somebody waits for shows delay_ms, holders "
         "[], holder_count 0, waiting 1 and the queue (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    pthread_join(w.thread, NULL);
    double took = w.finished - t0;
    t_ok(w.status == 200 && took >= (double)(ttl + delay) - 20 &&
             took < (double)(ttl + delay) + 2000 * time_scale() && w.fence > f0,
         "lock-delay: the waiter is granted at the delay's end: %.0f ms "
         "after the acquire (TTL %ld + delay %ld; %ld %s)",
         took, ttl, delay, w.status, w.status == 200 ? "" : w.text);
    if (w.token[0])
        drop(name, w.token);
}

/* A release clears the delay; so does a force release, of a lease or of a
 * delay already running. */
static void test_lock_delay_cleared(void)
{
    char tok[64], key[128];
    struct http_resp r;
    long ttl = scaled(300);

    if (hold_on(svc.url, "delay-c",
                "{\"ttl_ms\":30000,\"lock_delay_ms\":60000}", tok,
                sizeof tok) < 0)
        return;
    t_ok(drop("delay-c", tok) == 200, "lock-delay: the holder releases");
    post(&r, svc.url, "delay-c", "acquire", "{}");
    t_ok(r.status == 200,
         "lock-delay: right after a release a new acquire is granted (%ld %s)",
         r.status, r.body ? r.body : "");
    if (jstr(&r, "token"))
        drop("delay-c", jstr(&r, "token"));
    http_resp_free(&r);
    snprintf(key, sizeof key, "EXISTS " PREFIX "{delay-c}:delay");
    t_ok(redis_cli_int(&redis, "%s", key) == 0,
         "lock-delay: the release removed the delay marker");

    /* A force release of a running lease with a delay: no delay after. */
    if (hold_on(svc.url, "delay-d",
                "{\"ttl_ms\":30000,\"lock_delay_ms\":60000}", tok,
                sizeof tok) < 0)
        return;
    force(&r, svc.url, "delay-d");
    t_ok(r.status == 200 && jint(&r, "holders") == 1,
         "lock-delay: a force release ends the lease (%ld %s)", r.status,
         r.body ? r.body : "");
    http_resp_free(&r);
    post(&r, svc.url, "delay-d", "acquire", "{}");
    t_ok(r.status == 200,
         "lock-delay: after a force release of the lease an acquire is "
         "granted (%ld %s)",
         r.status, r.body ? r.body : "");
    if (jstr(&r, "token"))
        drop("delay-d", jstr(&r, "token"));
    http_resp_free(&r);

    /* A force release of a delay already running. */
    char body[96];
    snprintf(body, sizeof body, "{\"ttl_ms\":%ld,\"lock_delay_ms\":60000}",
             ttl);
    if (hold_on(svc.url, "delay-e", body, tok, sizeof tok) < 0)
        return;
    held_becomes(svc.url, "delay-e", false, (double)ttl + 3000);
    status_of(&r, svc.url, "delay-e");
    t_ok(jint(&r, "delay_ms") > 0, "lock-delay: expired, the delay runs (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    force(&r, svc.url, "delay-e");
    t_ok(r.status == 200 && jint(&r, "holders") == 0,
         "lock-delay: a force release in the delay: 200, holders 0 (%ld %s)",
         r.status, r.body ? r.body : "");
    http_resp_free(&r);
    status_of(&r, svc.url, "delay-e");
    t_ok(is_false(&r, "held") && !has(&r, "delay_ms"),
         "lock-delay: status shows no delay after it (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    post(&r, svc.url, "delay-e", "acquire", "{}");
    t_ok(r.status == 200,
         "lock-delay: and an acquire is granted at once (%ld %s)", r.status,
         r.body ? r.body : "");
    if (jstr(&r, "token"))
        drop("delay-e", jstr(&r, "token"));
    http_resp_free(&r);
}

/* --lock-delay-ms is the default; lock_delay_ms 0 turns it off. */
static void test_lock_delay_default(void)
{
    long ttl = scaled(300);
    char tok[64], body[96];
    struct http_resp r;

    snprintf(body, sizeof body, "{\"ttl_ms\":%ld}", ttl);
    if (hold_on(delayed.url, "ddef-a", body, tok, sizeof tok) < 0)
        return;
    held_becomes(delayed.url, "ddef-a", false, (double)ttl + 3000);
    status_of(&r, delayed.url, "ddef-a");
    long long d = jint(&r, "delay_ms");
    t_ok(d > 0 && d <= default_delay_ms,
         "--lock-delay-ms %ld: an acquire without lock_delay_ms gets it: "
         "delay_ms %lld after the expiry (%s)",
         default_delay_ms, d, r.body ? r.body : "");
    http_resp_free(&r);
    post(&r, delayed.url, "ddef-a", "acquire", "{}");
    t_ok(problem_is(&r, 409, "lock_held"),
         "--lock-delay-ms: and the name is unavailable meanwhile");
    http_resp_free(&r);

    snprintf(body, sizeof body, "{\"ttl_ms\":%ld,\"lock_delay_ms\":0}", ttl);
    if (hold_on(delayed.url, "ddef-b", body, tok, sizeof tok) < 0)
        return;
    held_becomes(delayed.url, "ddef-b", false, (double)ttl + 3000);
    post(&r, delayed.url, "ddef-b", "acquire", "{}");
    t_ok(r.status == 200,
         "--lock-delay-ms: lock_delay_ms 0 overrides it: granted right after "
         "the expiry (%ld %s)",
         r.status, r.body ? r.body : "");
    http_resp_free(&r);
}

/* What the new fields accept. */
static void test_field_validation(void)
{
    static const char *const bad[] = {
        "{\"lock_delay_ms\":-1}",
        "{\"lock_delay_ms\":60001}",
        "{\"lock_delay_ms\":\"5\"}",
        "{\"lock_delay_ms\":1.5}",
        "{\"request_id\":\"\"}",
        "{\"request_id\":\"a b\"}",
        "{\"request_id\":\"a/b\"}",
        "{\"request_id\":7}",
        "{\"request_id\":"
        "\"12345678901234567890123456789012345678901234567890123456789012345"
        "\"}",
        "{\"mode\":\"read\"}",
        "{\"mode\":\"Exclusive\"}",
        "{\"mode\":1}",
        NULL};
    struct http_resp r;
    int refused = 0, n = 0;

    for (int i = 0; bad[i]; i++, n++) {
        post(&r, svc.url, "fields", "acquire", "%s", bad[i]);
        if (r.status == 400 && strcmp(problem_code(&r), "invalid_field") == 0)
            refused++;
        else
            t_diag("acquire %s: %ld %s", bad[i], r.status,
                   r.body ? r.body : "");
        http_resp_free(&r);
    }
    t_ok(refused == n,
         "fields: lock_delay_ms out of 0..60000, request_id empty, over 64 "
         "characters or outside the name alphabet, mode neither "
         "\"exclusive\" nor \"shared\": 400 invalid_field (%d of %d)",
         refused, n);
    post(&r, svc.url, "fields", "release",
         "{\"token\":\"0123456789abcdef0123456789abcdef\",\"request_id\":"
         "\"x y\"}");
    t_ok(problem_is(&r, 400, "invalid_field"),
         "fields: release with a bad request_id: 400 invalid_field");
    http_resp_free(&r);
    post(&r, svc.url, "fields", "acquire",
         "{\"mode\":\"exclusive\",\"lock_delay_ms\":60000,\"request_id\":"
         "\"AZaz09._:-123456789012345678901234567890123456789012345678901234"
         "\"}");
    t_ok(r.status == 200 && jstr(&r, "mode") &&
             strcmp(jstr(&r, "mode"), "exclusive") == 0,
         "fields: mode exclusive, lock_delay_ms 60000 and a request_id of 64 "
         "characters are accepted (%ld %s)",
         r.status, r.body ? r.body : "");
    if (jstr(&r, "token"))
        drop("fields", jstr(&r, "token"));
    http_resp_free(&r);
}

/* ---- status ------------------------------------------------------------*/

static void test_status_members(void)
{
    const char *name = "status-1";
    char tok[64], body[160];
    int fds[3];
    struct http_resp r;

    long long fence =
        hold_on(svc.url, name, "{\"ttl_ms\":30000,\"owner\":\"holder-1\"}", tok,
                sizeof tok);
    if (fence < 0)
        return;
    /* Re-entered once: count 2. */
    post(&r, svc.url, name, "acquire", "{\"token\":\"%s\"}", tok);
    http_resp_free(&r);
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof body,
                 "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"w%d\"}",
                 scaled(20000), i + 1);
        fds[i] = raw_acquire(name, body);
        queue_becomes(name, i + 1, 3000);
        sleep_ms(20);
    }
    status_of(&r, svc.url, name);
    json_t *holders = r.json ? json_object_get(r.json, "holders") : NULL;
    json_t *h = json_array_get(holders, 0);
    t_ok(r.status == 200 && is_true(&r, "held") &&
             strcmp(member_str(r.json, "owner"), "holder-1") == 0 &&
             strcmp(member_str(r.json, "mode"), "exclusive") == 0 &&
             jint(&r, "fence") == fence && jint(&r, "count") == 2 &&
             jint(&r, "ttl_ms") > 0 && jint(&r, "ttl_ms") <= 30000 &&
             jint(&r, "held_ms") >= 0 && jint(&r, "held_ms") < 30000,
         "status: the version 1 members for the holder, with mode and "
         "held_ms (%s)",
         r.body ? r.body : "");
    t_ok(json_is_array(holders) && json_array_size(holders) == 1 &&
             json_object_size(h) == 6 &&
             strcmp(member_str(h, "owner"), "holder-1") == 0 &&
             strcmp(member_str(h, "mode"), "exclusive") == 0 &&
             member_int(h, "fence") == fence && member_int(h, "count") == 2 &&
             member_int(h, "ttl_ms") > 0 && member_int(h, "ttl_ms") <= 30000 &&
             member_int(h, "held_ms") >= 0 && jint(&r, "holder_count") == 1,
         "status: holders lists the one holder {owner, mode, fence, ttl_ms, "
         "count, held_ms}; holder_count 1");
    json_t *queue = r.json ? json_object_get(r.json, "queue") : NULL;
    bool in_order = json_is_array(queue) && json_array_size(queue) == 3;
    long long last = LLONG_MAX;
    for (size_t i = 0; in_order && i < 3; i++) {
        json_t *q = json_array_get(queue, i);
        char owner[8];
        snprintf(owner, sizeof owner, "w%zu", i + 1);
        long long waited = member_int(q, "waited_ms");
        in_order = json_object_size(q) == 4 &&
                   strcmp(member_str(q, "owner"), owner) == 0 &&
                   strcmp(member_str(q, "mode"), "exclusive") == 0 &&
                   member_int(q, "permits") == 1 && waited >= 0 &&
                   waited <= last;
        last = waited;
    }
    t_ok(jint(&r, "waiting") == 3 && in_order,
         "status: waiting 3 and the queue in arrival order, each {owner, "
         "mode, permits, waited_ms}, the oldest waited longest");
    t_ok(!has_token_like(r.body) && r.body && !strstr(r.body, tok),
         "status: no token anywhere in the body");
    t_ok(!has(&r, "reserved_ms") && !has(&r, "delay_ms"),
         "status: no reserved_ms or delay_ms while held");
    http_resp_free(&r);
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    t_ok(queue_becomes(name, 0, 3000), "status: the waiters hang up and leave");
    force(&r, svc.url, name);
    http_resp_free(&r);
    status_of(&r, svc.url, name);
    t_ok(r.status == 200 && is_false(&r, "held") &&
             json_object_size(r.json) == 2 &&
             strcmp(member_str(r.json, "name"), name) == 0,
         "status: a free lock nobody waits for is version 1's "
         "{\"name\",\"held\":false} (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
}

#define MANY 150

/* At most 100 queued waiters listed; waiting counts them all. */
static void test_status_many_waiters(void)
{
    const char *name = "status-150";
    static int fds[MANY];
    char tok[64], body[160];
    struct http_resp r;
    int sent = 0;

    if (hold_on(svc.url, name, "{\"ttl_ms\":60000,\"owner\":\"h\"}", tok,
                sizeof tok) < 0)
        return;
    for (int i = 0; i < MANY; i++) {
        snprintf(body, sizeof body,
                 "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"w%d\"}",
                 scaled(30000), i);
        fds[i] = raw_acquire(name, body);
        if (fds[i] >= 0)
            sent++;
        if (!queue_becomes(name, i + 1, 3000))
            break;
    }
    t_ok(sent == MANY && queue_len(name) == MANY, "status: %d waiters queue",
         MANY);
    status_of(&r, svc.url, name);
    json_t *queue = r.json ? json_object_get(r.json, "queue") : NULL;
    bool first_100 = json_is_array(queue) && json_array_size(queue) == 100;
    for (size_t i = 0; first_100 && i < 100; i++) {
        char owner[8];
        snprintf(owner, sizeof owner, "w%zu", i);
        first_100 =
            strcmp(member_str(json_array_get(queue, i), "owner"), owner) == 0;
    }
    t_ok(jint(&r, "waiting") == MANY && first_100,
         "status: waiting %d, the queue lists the first 100 in order "
         "(waiting %lld, listed %zu)",
         MANY, jint(&r, "waiting"),
         json_is_array(queue) ? json_array_size(queue) : 0);
    t_ok(!has_token_like(r.body), "status: no token among %d waiters", MANY);
    http_resp_free(&r);
    for (int i = 0; i < MANY; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    t_ok(queue_becomes(name, 0, 5000) && waiters_become(svc.url, 0, 5000),
         "status: all %d hang up and leave the queue", MANY);
    drop(name, tok);
}

/* Queues a ghost waiter at the head of name's queue, as an acquire of
 * another instance would, and makes its instance look alive. */
static bool plant_ghost(const char *name, long ttl_ms)
{
    char cmd[768];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* Redis TIME: the same clock */
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    /* The entry: "<deadline> <queued> <ttl> <token> <delay> <rid> <owner>"
     * (prelude.lua). */
    snprintf(cmd, sizeof cmd,
             "EVAL redis.call('RPUSH',KEYS[1],ARGV[1]);"
             "redis.call('HSET',KEYS[2],ARGV[1],table.concat(ARGV,'\\32',2));"
             "redis.call('PEXPIRE',KEYS[1],20000);"
             "redis.call('PEXPIRE',KEYS[2],20000) 2 " PREFIX
             "{%s}:queue " PREFIX "{%s}:waiters " GHOST_ID " %lld %lld %ld "
             "0123456789abcdef0123456789abcdef 0 - ghost",
             name, name, now + 20000, now, ttl_ms);
    free(redis_cli(&redis, cmd));
    snprintf(cmd, sizeof cmd,
             "SET " PREFIX "{%s}:queue:alive:" GHOST_INSTANCE " 1 PX 20000",
             name);
    free(redis_cli(&redis, cmd));
    return queue_len(name) == 1;
}

/* A pending hand-off shows as reserved_ms. */
static void test_status_reserved(void)
{
    const char *name = "reserved";
    char tok[64];
    struct http_resp r;

    if (hold_on(svc.url, name, "{\"ttl_ms\":30000}", tok, sizeof tok) < 0)
        return;
    t_ok(plant_ghost(name, 30000),
         "reserved: a waiter of another instance (alive) is queued");
    status_of(&r, svc.url, name);
    json_t *queue = r.json ? json_object_get(r.json, "queue") : NULL;
    t_ok(jint(&r, "waiting") == 1 &&
             strcmp(member_str(json_array_get(queue, 0), "owner"), "ghost") ==
                 0,
         "reserved: status lists it in the queue (%s)", r.body ? r.body : "");
    http_resp_free(&r);
    t_ok(drop(name, tok) == 200, "reserved: the holder releases");
    status_of(&r, svc.url, name);
    long long res = jint(&r, "reserved_ms");
    json_t *holders = r.json ? json_object_get(r.json, "holders") : NULL;
    t_ok(is_false(&r, "held") && res > 0 && res <= handoff_ms &&
             holders == NULL && !has(&r, "owner") &&
             json_object_size(r.json) == 3 && !has_token_like(r.body),
         "reserved: while the hand-off is pending status is {\"name\","
         "\"held\":false,\"reserved_ms\"}: reserved_ms %lld (<= %ld), no "
         "holder, no token (%s)",
         res, handoff_ms, r.body ? r.body : "");
    http_resp_free(&r);
    t_ok(held_becomes(svc.url, name, false, 0), "reserved: not held");
    free(redis_cli(&redis,
                   "DEL " PREFIX "{reserved}:queue:alive:" GHOST_INSTANCE));
    double end = now_ms() + (double)handoff_ms + 3000 * time_scale();
    bool plain = false;
    while (!plain && now_ms() < end) {
        status_of(&r, svc.url, name);
        plain = r.status == 200 && !has(&r, "reserved_ms");
        http_resp_free(&r);
        sleep_ms(10);
    }
    t_ok(plain, "reserved: the unclaimed hand-off lapses");
}

/* ---- check -------------------------------------------------------------*/

static void test_check(void)
{
    const char *name = "check-1";
    const char *other = "fedcba9876543210fedcba9876543210";
    char tok[64], tok2[64], body[128];
    struct http_resp r;
    struct waiter w;

    post(&r, svc.url, name, "check", "{\"token\":\"%s\"}", other);
    t_ok(problem_is(&r, 409, "not_held"), "check: a free lock: 409 not_held");
    http_resp_free(&r);
    long long fence =
        hold_on(svc.url, name, "{\"ttl_ms\":30000,\"owner\":\"checker\"}", tok,
                sizeof tok);
    if (fence < 0)
        return;
    post(&r, svc.url, name, "check", "{\"token\":\"%s\"}", tok);
    json_t *holders = r.json ? json_object_get(r.json, "holders") : NULL;
    t_ok(r.status == 200 && is_true(&r, "held") && jint(&r, "fence") == fence &&
             strcmp(member_str(r.json, "owner"), "checker") == 0 &&
             strcmp(member_str(r.json, "mode"), "exclusive") == 0 &&
             jint(&r, "count") == 1 && jint(&r, "ttl_ms") > 0 &&
             jint(&r, "held_ms") >= 0 && json_array_size(holders) == 1 &&
             jint(&r, "holder_count") == 1 && jint(&r, "waiting") == 0 &&
             has(&r, "queue") && !has_token_like(r.body),
         "check: the holder's token: 200 with the lease as status shows it, "
         "no token (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    post(&r, svc.url, name, "check", "{\"token\":\"%s\"}", other);
    t_ok(problem_is(&r, 409, "not_owner"),
         "check: another token while it is held: 409 not_owner");
    http_resp_free(&r);
    post(&r, svc.url, name, "check", "{}");
    t_ok(problem_is(&r, 400, "invalid_field"),
         "check: no token: 400 invalid_field");
    http_resp_free(&r);
    post(&r, svc.url, name, "check", "{\"token\":\"abc\"}");
    t_ok(problem_is(&r, 400, "invalid_field"),
         "check: a malformed token: 400 invalid_field");
    http_resp_free(&r);
    t_ok(drop(name, tok) == 200, "check: the holder releases");
    post(&r, svc.url, name, "check", "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "not_held"),
         "check: the released token: 409 not_held");
    http_resp_free(&r);

    /* A force release hands the lock on: the old token is not_held, not
     * not_owner, though another lease holds the lock now. */
    if (hold_on(svc.url, name, "{\"ttl_ms\":30000}", tok, sizeof tok) < 0)
        return;
    snprintf(body, sizeof body, "{\"ttl_ms\":30000,\"wait_ms\":%ld}",
             scaled(20000));
    waiter_start(&w, name, body);
    queue_becomes(name, 1, 3000);
    force(&r, svc.url, name);
    http_resp_free(&r);
    pthread_join(w.thread, NULL);
    snprintf(tok2, sizeof tok2, "%s", w.token);
    post(&r, svc.url, name, "check", "{\"token\":\"%s\"}", tok);
    t_ok(w.status == 200 && problem_is(&r, 409, "not_held"),
         "check: after a force release the old token is 409 not_held while "
         "the waiter it woke holds the lock (waiter %ld)",
         w.status);
    http_resp_free(&r);
    post(&r, svc.url, name, "check", "{\"token\":\"%s\"}", tok2);
    t_ok(r.status == 200 && jint(&r, "fence") == w.fence,
         "check: the new holder's token: 200 (%ld)", r.status);
    http_resp_free(&r);
    if (tok2[0])
        drop(name, tok2);
}

/* ---- force release -----------------------------------------------------*/

/* True when a line of the service log holds every string of want. */
static bool log_has_line(const char *path, const char *const *want)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    bool found = false;

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof line, f)) {
        found = true;
        for (int i = 0; found && want[i]; i++)
            found = strstr(line, want[i]) != NULL;
    }
    fclose(f);
    return found;
}

static void test_force_release(void)
{
    const char *name = "force-1";
    char tok[64], body[128], fence_s[32];
    struct waiter w;
    struct http_resp r;

    double before =
        metric_get(svc.url, "lockservice_force_releases_total", NULL);
    long long fence =
        hold_on(svc.url, name, "{\"ttl_ms\":30000,\"owner\":\"audited-owner\"}",
                tok, sizeof tok);
    if (fence < 0)
        return;
    snprintf(body, sizeof body, "{\"ttl_ms\":30000,\"wait_ms\":%ld}",
             scaled(20000));
    waiter_start(&w, name, body);
    t_ok(queue_becomes(name, 1, 3000), "force: a waiter queues");
    double t0 = now_ms();
    force(&r, svc.url, name);
    t_ok(r.status == 200 && json_object_size(r.json) == 3 &&
             strcmp(member_str(r.json, "name"), name) == 0 &&
             is_true(&r, "released") && jint(&r, "holders") == 1,
         "force: DELETE answers {\"name\",\"released\":true,\"holders\":1} "
         "(%ld %s)",
         r.status, r.body ? r.body : "");
    http_resp_free(&r);
    pthread_join(w.thread, NULL);
    double lag = w.finished - t0;
    t_ok(w.status == 200 && w.fence > fence && lag < 2000 * time_scale(),
         "force: the head waiter is granted at once: %.0f ms after the "
         "DELETE, not at its 20 s deadline or the old 30 s TTL (%ld %s)",
         lag, w.status, w.status == 200 ? "" : w.text);
    post(&r, svc.url, name, "renew", "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "not_held"),
         "force: the old holder's renew is 409 not_held");
    http_resp_free(&r);
    post(&r, svc.url, name, "release", "{\"token\":\"%s\"}", tok);
    t_ok(problem_is(&r, 409, "not_held"),
         "force: the old holder's release is 409 not_held");
    http_resp_free(&r);
    status_of(&r, svc.url, name);
    t_ok(jint(&r, "fence") == w.fence,
         "force: the waiter's lease is untouched by them (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    snprintf(fence_s, sizeof fence_s, "%lld", fence);
    const char *want[] = {"force", name, "audited-owner", fence_s, NULL};
    double end = now_ms() + 2000 * time_scale();
    bool logged;
    while (!(logged = log_has_line(svc.log, want)) && now_ms() < end)
        sleep_ms(20);
    t_ok(logged,
         "force: an audit line in the log names the lock, the holder's owner "
         "and fence %s",
         fence_s);
    t_ok(!log_has_line(svc.log, (const char *const[]){tok, NULL}),
         "force: the log never has the token");
    double after =
        metric_get(svc.url, "lockservice_force_releases_total", NULL);
    t_ok(before >= 0 && after == before + 1,
         "force: lockservice_force_releases_total grows by one (%.0f -> "
         "%.0f)",
         before, after);
    if (w.token[0])
        drop(name, w.token);

    force(&r, svc.url, "force-free");
    t_ok(r.status == 200 && json_object_size(r.json) == 3 &&
             strcmp(member_str(r.json, "name"), "force-free") == 0 &&
             is_true(&r, "released") && jint(&r, "holders") == 0,
         "force: DELETE of a free lock: 200 with holders 0 (%ld %s)", r.status,
         r.body ? r.body : "");
    http_resp_free(&r);
    force(&r, svc.url, "bad%20name");
    t_ok(problem_is(&r, 400, "invalid_name"),
         "force: DELETE of an invalid name: 400 invalid_name");
    http_resp_free(&r);
}

/* ---- hang-ups ----------------------------------------------------------*/

/* One round: the head waiter W1's hang-up and the holder's release leave
 * in one burst: the release is written to its connection while TCP_CORK
 * holds it, W1's connection is closed (its FIN leaves), and the release is
 * let go right behind it. The service may still hand the lock to W1 (the
 * release can be read first, on the other worker, or in the same turn);
 * W2 must be granted within a few hand-off windows, never after the gone
 * W1's 30 s lease. In odd rounds one more connection first shifts where
 * connections land among the two workers. A FIN that left after the
 * grant's answer could not be told from a client that read it, so the
 * burst never sends the release first. */
static bool burst_round(int round, char *why, size_t len)
{
    char name[32], tok[64], path[128], req[512], body[160];
    struct waiter w2;
    int one = 1, zero = 0;
    size_t n;

    snprintf(name, sizeof name, "burst-%d", round);
    if (hold_on(svc.url, name, "{\"ttl_ms\":30000}", tok, sizeof tok) < 0) {
        snprintf(why, len, "round %d: the holder could not acquire", round);
        return false;
    }
    snprintf(body, sizeof body,
             "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"w1\"}",
             scaled(20000));
    int w1 = raw_acquire(name, body);
    queue_becomes(name, 1, 3000);
    snprintf(body, sizeof body,
             "{\"ttl_ms\":30000,\"wait_ms\":%ld,\"owner\":\"w2\"}",
             scaled(5000));
    waiter_start(&w2, name, body);
    queue_becomes(name, 2, 3000);
    if (round % 2) {
        struct http_resp h;
        http(&h, svc.url, "GET", "/healthz", NULL, NULL);
        http_resp_free(&h);
    }
    lock_path(path, sizeof path, name, "release");
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", tok);
    n = http_request(req, sizeof req, path, body);
    int rel = raw_connect(svc.port);
    if (rel >= 0 &&
        setsockopt(rel, IPPROTO_TCP, TCP_CORK, &one, sizeof one) != 0)
        t_diag("TCP_CORK: %s", strerror(errno));
    double released = now_ms();
    bool sent = rel >= 0 && n > 0 && raw_send(rel, req, n);
    hang_up(w1, false);
    if (rel >= 0 &&
        setsockopt(rel, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero) != 0)
        t_diag("TCP_CORK off: %s", strerror(errno));
    long st = sent ? raw_status(rel, (int)scaled(5000)) : 0;
    if (rel >= 0)
        close(rel);
    pthread_join(w2.thread, NULL);
    double lag = w2.finished - released;
    double bound = 4.0 * (double)handoff_ms + 500 * time_scale();
    bool ok = st == 200 && w2.status == 200 && lag < bound;
    if (!ok)
        snprintf(why, len, "round %d: release %ld, W2 %ld after %.0f ms %.200s",
                 round, st, w2.status, lag, w2.status == 200 ? "" : w2.text);
    else if (!queue_becomes(name, 0, 2000) ||
             !waiters_become(svc.url, 0, 2000)) {
        snprintf(why, len, "round %d: W1's entry or a waiter was left", round);
        ok = false;
    }
    if (w2.token[0])
        drop(name, w2.token);
    return ok;
}

#define BURSTS 8

static void test_release_and_hangup_burst(void)
{
    char why[512] = "";
    int passed = 0;

    while (passed < BURSTS && burst_round(passed, why, sizeof why))
        passed++;
    t_ok(passed == BURSTS,
         "hang-up burst (--threads 2): in %d rounds of a release and the "
         "head waiter's hang-up sent together, the next waiter is granted "
         "within a few hand-off windows and no entry is left (%d passed%s%s)",
         BURSTS, passed, why[0] ? "; " : "", why);
}

int main(void)
{
    char handoff[24], delay[24];
    handoff_ms = scaled(250);
    default_delay_ms = scaled(1500);
    snprintf(handoff, sizeof handoff, "%ld", handoff_ms);
    snprintf(delay, sizeof delay, "%ld", default_delay_ms);
    /* --redis-timeout-ms: Redis is stalled for 2 s on purpose. */
    const char *args[] = {"--handoff-ms",  handoff,     "--max-wait-ms",
                          "600000",        "--threads", "2",
                          "--max-waiters", "1000",      "--redis-timeout-ms",
                          "10000",         NULL};
    const char *delay_args[] = {"--lock-delay-ms", delay, NULL};
    if (!nofile_at_least(4 * MANY) || redis_start(&redis, NULL) != 0 ||
        svc_start(&svc, &redis, args) != 0 ||
        svc_start(&delayed, &redis, delay_args) != 0) {
        t_ok(false, "start redis-server and two lockservice instances");
        return t_done();
    }
    test_request_id_replay();
    test_request_id_expired();
    test_cut_on_free_lock();
    test_cut_while_parked();
    test_cut_before_the_grant(false, false);
    test_cut_before_the_grant(false, true);
    test_cut_before_the_grant(true, false);
    test_cut_before_the_grant(true, true);
    test_granted_to_gone_client();
    test_granted_after_hangup(false);
    test_granted_after_hangup(true);
    test_lock_delay_expiry();
    test_lock_delay_waiter();
    test_lock_delay_cleared();
    test_lock_delay_default();
    test_field_validation();
    test_status_members();
    test_status_many_waiters();
    test_status_reserved();
    test_check();
    test_force_release();
    test_release_and_hangup_burst();
    svc_stop(&delayed);
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
