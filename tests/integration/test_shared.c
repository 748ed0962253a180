/* test_shared.c -- shared (read) and exclusive (write) modes of a lock
 * (issue 10 item 1; DESIGN.md 3, 4.1, 4.2). One Redis, three instances
 * (--handoff-ms 250, scaled); each part uses a name of its own.
 *
 *  - 3 shared holders at once, each its own token and fence; status lists
 *    them with mode "shared", holder_count 3, the first one's fields at
 *    the top; an exclusive acquire without wait_ms is 409 lock_held; an
 *    exclusive waiter is granted only once all three released;
 *  - the same when the three leases expire instead; one shared holder's
 *    expiry leaves the others holding (check 200, renew 200), its own
 *    renew is not_held;
 *  - no writer starvation: a queued exclusive makes a later shared acquire
 *    wait (wait_ms 0: 409 lock_held; with wait_ms: queued behind it, the
 *    queue listed with modes); the shared waiters behind it are granted
 *    together when it releases;
 *  - re-entry in the same mode counts holds (release drops one), in the
 *    other mode is 409 mode_conflict both ways;
 *  - fences strictly increase across modes;
 *  - request_id replays a shared acquire (same token and fence, count
 *    unchanged, "replayed":true), and after the release it is not_held;
 *  - lock_delay_ms on a shared lease's expiry keeps the name unavailable;
 *  - force release ends every shared holder's lease (their renew and
 *    release are not_held) and counts them;
 *  - mode is "exclusive" or "shared", anything else is invalid_field;
 *  - three instances: waiters of mixed modes spread over the instances are
 *    granted in FIFO order (a shared run together, an exclusive alone),
 *    never a writer beside anyone;
 *  - every key of a used name has a TTL. */
#include "harness.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INSTANCES 3

static struct redis_proc redis;
static struct svc_proc svc[INSTANCES];

static long scaled(double ms)
{
    return (long)(ms * time_scale());
}

/* A wait of ms scaled, within the service's --max-wait-ms (60 s). */
static long wait_for(double ms)
{
    long w = scaled(ms);
    return w > 60000 ? 60000 : w;
}

/* ---- calls ---- */

struct lease {
    long status;
    char token[64];
    char mode[16];
    long long fence, count, ttl_ms;
    bool replayed;
    char code[32];
    char body[512];
};

static void lease_of(struct lease *l, const struct http_resp *r)
{
    memset(l, 0, sizeof *l);
    l->status = r->status;
    snprintf(l->token, sizeof l->token, "%s",
             jstr(r, "token") ? jstr(r, "token") : "");
    snprintf(l->mode, sizeof l->mode, "%s",
             jstr(r, "mode") ? jstr(r, "mode") : "");
    snprintf(l->code, sizeof l->code, "%s", problem_code(r));
    snprintf(l->body, sizeof l->body, "%s", r->body ? r->body : "");
    l->fence = jint(r, "fence");
    l->count = jint(r, "count");
    l->ttl_ms = jint(r, "ttl_ms");
    l->replayed = r->json && json_is_true(json_object_get(r->json, "replayed"));
}

/* POST /v1/locks/<name>/<op> with body on url. */
static void call(struct lease *l, const char *url, const char *name,
                 const char *op, const char *body)
{
    struct http_resp r;
    char path[256];

    snprintf(path, sizeof path, "/v1/locks/%s/%s", name, op);
    http(&r, url, "POST", path, body, NULL);
    lease_of(l, &r);
    http_resp_free(&r);
}

static void acquire(struct lease *l, const char *url, const char *name,
                    const char *mode, long ttl_ms, long wait_ms,
                    const char *owner)
{
    char body[256];

    snprintf(body, sizeof body,
             "{\"mode\":\"%s\",\"ttl_ms\":%ld,\"wait_ms\":%ld,"
             "\"owner\":\"%s\"}",
             mode, ttl_ms, wait_ms, owner);
    call(l, url, name, "acquire", body);
}

static long with_token(const char *url, const char *name, const char *op,
                       const char *token, long long *count)
{
    struct lease l;
    char body[128];

    snprintf(body, sizeof body, "{\"token\":\"%s\"}", token);
    call(&l, url, name, op, body);
    if (count != NULL)
        *count = l.count;
    return l.status == 200 ? 200 : (l.code[0] ? l.status : -l.status);
}

static long release(const char *url, const char *name, const char *token)
{
    return with_token(url, name, "release", token, NULL);
}

/* The code of a refusal of token's op, or "" when it was 200. */
static const char *refused(const char *url, const char *name, const char *op,
                           const char *token)
{
    static char code[32];
    struct lease l;
    char body[128];

    snprintf(body, sizeof body, "{\"token\":\"%s\"}", token);
    call(&l, url, name, op, body);
    snprintf(code, sizeof code, "%s", l.status == 200 ? "" : l.code);
    return code;
}

/* GET /v1/locks/<name>; the caller frees *r. */
static void status(struct http_resp *r, const char *url, const char *name)
{
    char path[256];

    snprintf(path, sizeof path, "/v1/locks/%s", name);
    http(r, url, "GET", path, NULL, NULL);
}

static json_t *member(const struct http_resp *r, const char *key)
{
    return r->json ? json_object_get(r->json, key) : NULL;
}

/* The modes of status array key ("holders", "queue") as "s,s,x". */
static void modes_of(const struct http_resp *r, const char *key, char *buf,
                     size_t len)
{
    json_t *arr = member(r, key), *e;
    size_t i;

    buf[0] = '\0';
    json_array_foreach(arr, i, e)
    {
        const char *m = json_string_value(json_object_get(e, "mode"));
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "%s%s", i ? "," : "",
                 m == NULL                     ? "?"
                 : strcmp(m, "shared") == 0    ? "s"
                 : strcmp(m, "exclusive") == 0 ? "x"
                                               : m);
    }
}

/* Polls status on url until its "waiting" is n; false after 5 s scaled. */
static bool waiting_becomes(const char *url, const char *name, long long n)
{
    double end = now_ms() + 5000 * time_scale();
    long long w = -1;

    while (now_ms() < end) {
        struct http_resp r;
        status(&r, url, name);
        w = jint(&r, "waiting");
        http_resp_free(&r);
        if (w == n)
            return true;
        sleep_ms(5);
    }
    t_diag("%s: waiting %lld, not %lld", name, w, n);
    return false;
}

/* ---- a waiter in a thread ---- */

struct waiter {
    pthread_t thread;
    const char *url, *name, *mode;
    char owner[16];
    long wait_ms;
    atomic_bool done;
    struct lease got;
};

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;

    acquire(&w->got, w->url, w->name, w->mode, 30000, w->wait_ms, w->owner);
    atomic_store(&w->done, true);
    return NULL;
}

static void waiter_start(struct waiter *w, const char *url, const char *name,
                         const char *mode, const char *owner)
{
    memset(w, 0, sizeof *w);
    w->url = url;
    w->name = name;
    w->mode = mode;
    w->wait_ms = wait_for(20000);
    snprintf(w->owner, sizeof w->owner, "%s", owner);
    pthread_create(&w->thread, NULL, waiter_main, w);
}

/* ---- the parts ---- */

static void test_three_shared_then_release(void)
{
    const char *name = "sh-three";
    const char *url = svc[0].url;
    struct lease s[3], x;
    struct http_resp r;
    struct waiter w;
    char modes[64];
    bool distinct, ordered;

    for (int i = 0; i < 3; i++) {
        char owner[24];
        snprintf(owner, sizeof owner, "reader-%d", i);
        acquire(&s[i], svc[i].url, name, "shared", 30000, 0, owner);
    }
    t_ok(s[0].status == 200 && s[1].status == 200 && s[2].status == 200 &&
             strcmp(s[0].mode, "shared") == 0 &&
             strcmp(s[2].mode, "shared") == 0,
         "three shared acquires on three instances are all granted at once "
         "(%ld %ld %ld, mode %s)",
         s[0].status, s[1].status, s[2].status, s[0].mode);
    distinct = token_like(s[0].token) && strcmp(s[0].token, s[1].token) &&
               strcmp(s[1].token, s[2].token) && strcmp(s[0].token, s[2].token);
    ordered =
        s[0].fence > 0 && s[1].fence > s[0].fence && s[2].fence > s[1].fence;
    t_ok(distinct && ordered,
         "each shared holder has its own token and fence (fences %lld < %lld "
         "< %lld)",
         s[0].fence, s[1].fence, s[2].fence);

    status(&r, url, name);
    modes_of(&r, "holders", modes, sizeof modes);
    t_ok(jint(&r, "holder_count") == 3 && strcmp(modes, "s,s,s") == 0 &&
             json_is_true(member(&r, "held")) && jstr(&r, "mode") &&
             strcmp(jstr(&r, "mode"), "shared") == 0 &&
             jint(&r, "fence") == s[0].fence && jstr(&r, "owner") &&
             strcmp(jstr(&r, "owner"), "reader-0") == 0 &&
             strstr(r.body, s[0].token) == NULL,
         "status: holder_count 3, holders [%s], the first holder's fields at "
         "the top, no token (%s)",
         modes, r.body);
    http_resp_free(&r);

    acquire(&x, url, name, "exclusive", 30000, 0, "writer");
    t_ok(x.status == 409 && strcmp(x.code, "lock_held") == 0,
         "an exclusive acquire without wait_ms while shared holders hold: "
         "409 lock_held (%ld %s)",
         x.status, x.code);

    waiter_start(&w, svc[1].url, name, "exclusive", "writer");
    t_ok(waiting_becomes(url, name, 1), "an exclusive waiter queues");
    t_ok(release(svc[0].url, name, s[0].token) == 200 &&
             release(svc[1].url, name, s[1].token) == 200,
         "two of the shared holders release");
    sleep_ms(scaled(300));
    status(&r, url, name);
    t_ok(!atomic_load(&w.done) && jint(&r, "holder_count") == 1 &&
             jint(&r, "waiting") == 1,
         "with one shared holder left the exclusive waiter still waits "
         "(holder_count %lld, waiting %lld)",
         jint(&r, "holder_count"), jint(&r, "waiting"));
    http_resp_free(&r);
    t_ok(release(svc[2].url, name, s[2].token) == 200,
         "the last shared holder releases");
    pthread_join(w.thread, NULL);
    t_ok(w.got.status == 200 && strcmp(w.got.mode, "exclusive") == 0 &&
             w.got.fence > s[2].fence,
         "then the exclusive waiter is granted (%ld, mode %s, fence %lld > "
         "%lld)",
         w.got.status, w.got.mode, w.got.fence, s[2].fence);
    status(&r, url, name);
    modes_of(&r, "holders", modes, sizeof modes);
    t_ok(jint(&r, "holder_count") == 1 && strcmp(modes, "x") == 0,
         "status: one holder, exclusive ([%s])", modes);
    http_resp_free(&r);
    release(svc[1].url, name, w.got.token);
}

static void test_three_shared_expire(void)
{
    const char *name = "sh-expire";
    const char *url = svc[0].url;
    long ttl[3] = {scaled(400), scaled(1500), scaled(2500)};
    struct lease s[3];
    struct http_resp r;
    struct waiter w;
    long long count;

    for (int i = 0; i < 3; i++)
        acquire(&s[i], url, name, "shared", ttl[i], 0, "reader");
    t_ok(s[0].status == 200 && s[1].status == 200 && s[2].status == 200,
         "expiry: three shared holders with leases of %ld, %ld, %ld ms", ttl[0],
         ttl[1], ttl[2]);
    waiter_start(&w, svc[2].url, name, "exclusive", "writer");
    t_ok(waiting_becomes(url, name, 1), "expiry: an exclusive waiter queues");
    sleep_ms(ttl[0] + scaled(200));
    const char *code = refused(url, name, "renew", s[0].token);
    t_ok(strcmp(code, "not_owner") == 0,
         "expiry: the first shared lease has expired: its renew is refused, "
         "not_owner as others hold (%s)",
         code);
    status(&r, url, name);
    t_ok(jint(&r, "holder_count") == 2 && !atomic_load(&w.done) &&
             strcmp(refused(url, name, "check", s[1].token), "") == 0 &&
             strcmp(refused(url, name, "check", s[2].token), "") == 0,
         "expiry: one shared holder's expiry leaves the other two holding "
         "(holder_count %lld, check 200) and the writer waiting",
         jint(&r, "holder_count"));
    http_resp_free(&r);
    pthread_join(w.thread, NULL);
    t_ok(w.got.status == 200 && w.got.fence > s[2].fence,
         "expiry: the exclusive waiter is granted once all three expired "
         "(%ld, fence %lld)",
         w.got.status, w.got.fence);
    code = refused(url, name, "renew", s[2].token);
    t_ok(strcmp(code, "not_owner") == 0,
         "expiry: when the writer got it, the last shared lease had ended "
         "(its renew: %s)",
         code);
    t_ok(with_token(url, name, "release", w.got.token, &count) == 200,
         "expiry: the writer releases");
}

static void test_no_writer_starvation(void)
{
    const char *name = "sh-fair";
    const char *url = svc[0].url;
    struct lease s1, late;
    struct waiter x, s2, s3;
    struct http_resp r;
    char modes[64];

    acquire(&s1, url, name, "shared", 30000, 0, "reader-1");
    waiter_start(&x, svc[1].url, name, "exclusive", "writer");
    t_ok(s1.status == 200 && waiting_becomes(url, name, 1),
         "fairness: a shared holder, and an exclusive waiter queued");
    acquire(&late, url, name, "shared", 30000, 0, "late");
    t_ok(late.status == 409 && strcmp(late.code, "lock_held") == 0,
         "fairness: a later shared acquire without wait_ms does not jump "
         "the queued writer: 409 lock_held (%ld %s)",
         late.status, late.code);
    waiter_start(&s2, svc[2].url, name, "shared", "reader-2");
    t_ok(waiting_becomes(url, name, 2), "fairness: a shared waiter queues");
    waiter_start(&s3, svc[0].url, name, "shared", "reader-3");
    t_ok(waiting_becomes(url, name, 3),
         "fairness: another shared waiter queues");
    status(&r, url, name);
    modes_of(&r, "queue", modes, sizeof modes);
    t_ok(strcmp(modes, "x,s,s") == 0 && !atomic_load(&s2.done),
         "fairness: the shared waiters wait behind the writer (queue [%s])",
         modes);
    http_resp_free(&r);

    t_ok(release(url, name, s1.token) == 200,
         "fairness: the shared holder releases");
    pthread_join(x.thread, NULL);
    t_ok(x.got.status == 200 && x.got.fence > s1.fence,
         "fairness: the writer is granted (%ld)", x.got.status);
    sleep_ms(scaled(200));
    t_ok(!atomic_load(&s2.done) && !atomic_load(&s3.done),
         "fairness: the shared waiters still wait while the writer holds");
    t_ok(release(svc[1].url, name, x.got.token) == 200,
         "fairness: the writer releases");
    pthread_join(s2.thread, NULL);
    pthread_join(s3.thread, NULL);
    status(&r, url, name);
    t_ok(s2.got.status == 200 && s3.got.status == 200 &&
             jint(&r, "holder_count") == 2 && s2.got.fence > x.got.fence &&
             s3.got.fence > x.got.fence,
         "fairness: the shared waiters behind it are granted together "
         "(%ld %ld, holder_count %lld)",
         s2.got.status, s3.got.status, jint(&r, "holder_count"));
    http_resp_free(&r);
    release(svc[2].url, name, s2.got.token);
    release(url, name, s3.got.token);
}

static void test_reentry(void)
{
    const char *name = "sh-reenter";
    const char *url = svc[0].url;
    struct lease s, again, x, conflict;
    char body[160];
    long long count = -1;

    acquire(&s, url, name, "shared", 30000, 0, "r");
    snprintf(body, sizeof body, "{\"mode\":\"shared\",\"token\":\"%s\"}",
             s.token);
    call(&again, url, name, "acquire", body);
    t_ok(again.status == 200 && again.count == 2 && again.fence == s.fence &&
             strcmp(again.mode, "shared") == 0,
         "re-entry in shared mode counts holds (count %lld, same fence)",
         again.count);
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", s.token);
    call(&conflict, url, name, "acquire", body);
    t_ok(conflict.status == 409 && strcmp(conflict.code, "mode_conflict") == 0,
         "re-entry of a shared lease as exclusive: 409 mode_conflict (%ld %s)",
         conflict.status, conflict.code);
    long st = with_token(url, name, "release", s.token, &count);
    t_ok(st == 200 && count == 1, "a release drops one hold (count %lld)",
         count);
    st = with_token(url, name, "release", s.token, &count);
    t_ok(st == 200 && count == 0,
         "the second release ends the lease (count %lld)", count);

    acquire(&x, url, name, "exclusive", 30000, 0, "w");
    snprintf(body, sizeof body, "{\"mode\":\"shared\",\"token\":\"%s\"}",
             x.token);
    call(&conflict, url, name, "acquire", body);
    t_ok(x.status == 200 && conflict.status == 409 &&
             strcmp(conflict.code, "mode_conflict") == 0,
         "re-entry of an exclusive lease as shared: 409 mode_conflict (%ld "
         "%s)",
         conflict.status, conflict.code);
    release(url, name, x.token);
}

static void test_fences_across_modes(void)
{
    const char *name = "sh-fences";
    const char *url = svc[1].url;
    const char *modes[] = {"exclusive", "shared",    "shared",
                           "exclusive", "shared",    "exclusive",
                           "shared",    "exclusive", "exclusive"};
    long long last = 0;
    bool up = true;

    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        struct lease l;
        acquire(&l, url, name, modes[i], 30000, 0, "f");
        if (l.status != 200 || l.fence <= last) {
            t_diag("%s acquire %zu: %ld fence %lld after %lld", modes[i], i,
                   l.status, l.fence, last);
            up = false;
        }
        last = l.fence;
        release(url, name, l.token);
    }
    t_ok(up, "fences strictly increase across modes");
}

static void test_request_id(void)
{
    const char *name = "sh-rid";
    const char *url = svc[0].url;
    const char *body = "{\"mode\":\"shared\",\"request_id\":\"rid-1\"}";
    struct lease a, b, c;

    call(&a, url, name, "acquire", body);
    call(&b, svc[2].url, name, "acquire", body);
    t_ok(a.status == 200 && b.status == 200 && b.replayed &&
             strcmp(a.token, b.token) == 0 && a.fence == b.fence &&
             b.count == 1 && strcmp(b.mode, "shared") == 0,
         "request_id: a repeated shared acquire answers the same lease, "
         "replayed, count 1 (%s)",
         b.body);
    t_ok(release(url, name, a.token) == 200, "request_id: released");
    call(&c, url, name, "acquire", body);
    t_ok(c.status == 409 && strcmp(c.code, "not_held") == 0,
         "request_id: a repeat after the lease ended is 409 not_held (%ld %s)",
         c.status, c.code);
}

static void test_lock_delay(void)
{
    const char *name = "sh-delay";
    const char *url = svc[0].url;
    long ttl = scaled(300), delay = scaled(2000);
    struct lease s, t, u;
    struct http_resp r;
    char body[160];

    snprintf(body, sizeof body,
             "{\"mode\":\"shared\",\"ttl_ms\":%ld,\"lock_delay_ms\":%ld}", ttl,
             delay);
    call(&s, url, name, "acquire", body);
    sleep_ms(ttl + scaled(100));
    status(&r, url, name);
    acquire(&t, url, name, "shared", 30000, 0, "after");
    t_ok(s.status == 200 && json_is_false(member(&r, "held")) &&
             jint(&r, "delay_ms") > 0 && t.status == 409 &&
             strcmp(t.code, "lock_held") == 0,
         "lock-delay: after a shared lease expired the name stays "
         "unavailable (delay_ms %lld, acquire %ld %s)",
         jint(&r, "delay_ms"), t.status, t.code);
    http_resp_free(&r);
    acquire(&u, url, name, "exclusive", 30000, wait_for((double)delay + 2000.0),
            "later");
    t_ok(u.status == 200, "lock-delay: a waiter is granted at its end (%ld)",
         u.status);
    release(url, name, u.token);
}

static void test_force(void)
{
    const char *name = "sh-force";
    const char *url = svc[0].url;
    struct lease s[3];
    struct http_resp r;
    bool ended = true;

    for (int i = 0; i < 3; i++)
        acquire(&s[i], svc[i].url, name, "shared", 30000, 0, "forced");
    http(&r, url, "DELETE", "/v1/locks/sh-force", NULL, NULL);
    t_ok(r.status == 200 && jint(&r, "holders") == 3,
         "force release of three shared holders: 200, holders 3 (%s)", r.body);
    http_resp_free(&r);
    for (int i = 0; i < 3; i++)
        ended =
            ended &&
            strcmp(refused(url, name, "renew", s[i].token), "not_held") == 0 &&
            strcmp(refused(url, name, "release", s[i].token), "not_held") == 0;
    t_ok(ended, "force: every shared holder's renew and release are "
                "not_held");
    status(&r, url, name);
    t_ok(json_is_false(member(&r, "held")), "force: the lock is free (%s)",
         r.body);
    http_resp_free(&r);
}

static void test_bad_mode(void)
{
    struct lease l;
    struct http_resp r;

    call(&l, svc[0].url, "sh-bad", "acquire", "{\"mode\":\"read\"}");
    t_ok(l.status == 400 && strcmp(l.code, "invalid_field") == 0,
         "mode \"read\": 400 invalid_field (%ld %s)", l.status, l.code);
    call(&l, svc[0].url, "sh-bad", "acquire", "{\"mode\":1}");
    t_ok(l.status == 400 && strcmp(l.code, "invalid_field") == 0,
         "mode 1: 400 invalid_field (%ld %s)", l.status, l.code);
    status(&r, svc[0].url, "sh-bad");
    t_ok(json_is_false(member(&r, "held")), "a bad mode changes nothing");
    http_resp_free(&r);
}

/* ---- FIFO across modes and instances ---- */

#define MIXED 12
static const char mixed_modes[MIXED + 1] = "xssxsssxxssx";

struct mixed_waiter {
    pthread_t thread;
    int id;
    const char *url;
    bool shared;
    long status;
    long long grant_event;
    char body[512];
};

static atomic_llong events;
static atomic_int readers, writers, overlaps;

static void *mixed_main(void *arg)
{
    struct mixed_waiter *w = arg;
    struct lease l;
    char owner[24];

    snprintf(owner, sizeof owner, "m%d", w->id);
    acquire(&l, w->url, "sh-fifo", w->shared ? "shared" : "exclusive", 30000,
            wait_for(30000), owner);
    w->status = l.status;
    snprintf(w->body, sizeof w->body, "%s", l.body);
    if (l.status != 200)
        return NULL;
    if (w->shared) {
        if (atomic_load(&writers) > 0)
            atomic_fetch_add(&overlaps, 1);
        atomic_fetch_add(&readers, 1);
    } else {
        if (atomic_fetch_add(&writers, 1) > 0 || atomic_load(&readers) > 0)
            atomic_fetch_add(&overlaps, 1);
    }
    w->grant_event = atomic_fetch_add(&events, 1);
    sleep_ms(scaled(60));
    if (w->shared)
        atomic_fetch_sub(&readers, 1);
    else
        atomic_fetch_sub(&writers, 1);
    release(w->url, "sh-fifo", l.token);
    return NULL;
}

static void test_fifo_across_instances(void)
{
    struct mixed_waiter w[MIXED];
    struct lease holder;
    int group[MIXED], g = 0, granted = 0;
    bool fifo = true, queued = true;

    acquire(&holder, svc[0].url, "sh-fifo", "exclusive", 30000, 0, "h");
    for (int i = 0; i < MIXED; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].id = i;
        w[i].url = svc[i % INSTANCES].url;
        w[i].shared = mixed_modes[i] == 's';
        group[i] = i > 0 && w[i].shared && w[i - 1].shared ? g : ++g;
        pthread_create(&w[i].thread, NULL, mixed_main, &w[i]);
        queued = waiting_becomes(svc[0].url, "sh-fifo", i + 1) && queued;
    }
    t_ok(holder.status == 200 && queued,
         "fifo: %d waiters of mixed modes (%s) queue over 3 instances", MIXED,
         mixed_modes);
    release(svc[0].url, "sh-fifo", holder.token);
    for (int i = 0; i < MIXED; i++) {
        pthread_join(w[i].thread, NULL);
        granted += w[i].status == 200;
        if (w[i].status != 200)
            t_diag("waiter %d: %ld %s", i, w[i].status, w[i].body);
    }
    for (int i = 0; i < MIXED; i++)
        for (int j = 0; j < MIXED; j++)
            if (group[j] < group[i] && w[j].status == 200 &&
                w[i].status == 200 && w[j].grant_event > w[i].grant_event) {
                t_diag("waiter %d (group %d) granted after waiter %d (group "
                       "%d)",
                       j, group[j], i, group[i]);
                fifo = false;
            }
    t_ok(granted == MIXED, "fifo: every waiter is granted (%d)", granted);
    t_ok(fifo && granted == MIXED,
         "fifo: granted in arrival order across modes");
    t_ok(atomic_load(&overlaps) == 0,
         "fifo: an exclusive holder never holds beside another (%d overlaps)",
         atomic_load(&overlaps));
}

/* Every key of the names used has a TTL. */
static void test_ttls(void)
{
    char *keys = redis_cli(&redis, "--scan --pattern lockservice:{sh-*");
    int without = 0, n = 0;

    for (char *k = keys, *nl; k != NULL && *k != '\0'; k = nl ? nl + 1 : NULL) {
        nl = strchr(k, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (*k == '\0')
            continue;
        long long ttl = redis_cli_int(&redis, "PTTL %s", k);
        n++;
        /* -2: gone since the scan (a liveness key runs out); -1: none. */
        if (ttl == -1) {
            t_diag("%s has no TTL (%lld)", k, ttl);
            without++;
        }
    }
    free(keys);
    t_ok(without == 0, "every key of the names used has a TTL (%d keys)", n);
}

int main(void)
{
    char handoff[24];

    snprintf(handoff, sizeof handoff, "%ld", scaled(250));
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
    test_bad_mode();
    test_three_shared_then_release();
    test_three_shared_expire();
    test_no_writer_starvation();
    test_reentry();
    test_fences_across_modes();
    test_request_id();
    test_lock_delay();
    test_force();
    test_fifo_across_instances();
    test_ttls();
    for (int i = 0; i < INSTANCES; i++)
        svc_stop(&svc[i]);
    redis_stop(&redis);
    return t_done();
}
