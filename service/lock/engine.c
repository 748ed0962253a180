/* engine.c -- see engine.h.
 *
 * The life of an acquire that waits: the acquire script refuses it and
 * queues it in Redis (LOCK_QUEUED); it is parked in the worker's registry
 * under its waiter id; then exactly one of
 *   - a hand-off ("g <id>" on the instance's channel, or a poke naming it):
 *     the claim script makes its lease run for its TTL -> granted (or, when
 *     the hand-off lapsed, it is queued again behind the head and parked);
 *   - its deadline: the leave script takes it out of the queue, or claims a
 *     hand-off that raced the deadline -> lock_held (or granted);
 *   - its queue vanished (Redis lost it): it acquires again;
 *   - its client hangs up: the leave script takes it out, passing a
 *     hand-off to it on; nobody is answered.
 * Each step is one script, one round trip. */
#include "engine.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "token.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000
#define LIVENESS_TTL_MS "3000"
/* A name with parked waiters is looked at this often at least, in case a
 * wake-up was lost (a subscriber gap the resubscription did not cover). */
#define LOOK_MAX_MS 10000
#define INBOX_MAX 65536
#define MESSAGE_MAX (WAIT_NAME_MAX + 48)

struct inbox_message {
    char text[MESSAGE_MAX];
};

/* A worker's share of the engine. */
struct engine_thread {
    struct loop *loop;
    unsigned index;
    struct redis_route *route;
    struct redis_conn *sub; /* worker 0 */
    struct wait_registry reg;
    struct timer heartbeat; /* keeps the names waited on alive */
    struct timer later;     /* runs calls that fail before reaching Redis */
    struct lock_call **later_calls;
    size_t later_len, later_cap;
    uint64_t waiter_seq;
    bool draining;
    /* Messages for this worker from the subscriber's (worker 0). */
    pthread_mutex_t inbox_mu;
    struct inbox_message *inbox;
    size_t inbox_len, inbox_cap;
    struct loop_watch inbox_watch;
};

static const struct config *conf;
static char instance_id[17];
static char channel[KEY_PREFIX_MAX + 32];
static _Atomic(struct engine_thread *) threads[256];
static _Thread_local struct engine_thread *self;
static atomic_uint parked_total;
static atomic_bool stop_waiting;
static _Atomic int64_t fence_floor;

static const char *const op_names[] = {
    [LOCK_OP_ACQUIRE] = "acquire", [LOCK_OP_RENEW] = "renew",
    [LOCK_OP_RELEASE] = "release", [LOCK_OP_STATUS] = "status",
    [LOCK_OP_CLAIM] = "claim",     [LOCK_OP_LEAVE] = "leave",
    [LOCK_OP_POKE] = "poke",       [LOCK_OP_FORCE] = "force release",
};

void lock_fence_seen(int64_t fence)
{
    int64_t cur = atomic_load(&fence_floor);

    while (fence > cur &&
           !atomic_compare_exchange_weak(&fence_floor, &cur, fence))
        ;
}

struct redis_route *lock_engine_route(void)
{
    return self->route;
}

/* ---- running a script --------------------------------------------------*/

static void qualified(const struct lock_call *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%s", c->kind->name, c->name);
}

static void run_acked(struct lock_call *c, redis_done_fn *fn,
                      struct lock_argv *av);

static void run(struct lock_call *c, enum lock_op op, redis_done_fn *fn,
                const struct lock_args *a)
{
    char qname[WAIT_NAME_MAX + 1];
    struct lock_context ctx = {keys_prefix(), qname, instance_id,
                               conf->handoff_ms, atomic_load(&fence_floor)};
    struct lock_argv av;

    qualified(c, qname, sizeof qname);
    c->op = op;
    c->kind->encode(op, a, &ctx, &av);
    if (conf->redis_wait_replicas > 0 &&
        (op == LOCK_OP_ACQUIRE || op == LOCK_OP_CLAIM || op == LOCK_OP_RENEW ||
         op == LOCK_OP_RELEASE)) {
        run_acked(c, fn, &av);
        return;
    }
    redis_route_script(self->route, c->kind->scripts[op], av.nkeys, av.argc,
                       av.argv, av.lens, fn, c);
}

static void route_direct(const char *id, int64_t fence);
static void deliver_direct(const char *id, int64_t fence);

/* Decodes a script's answer into c. Returns false when there is none to
 * act on (c->reply.outcome is then LOCK_UNAVAILABLE, c->err says why). */
static bool decode_into(struct lock_call *c, const redisReply *r,
                        const struct redis_error *err)
{
    if (err != NULL) {
        lock_reply_free(&c->reply);
        memset(&c->reply, 0, sizeof c->reply);
        c->reply.outcome = LOCK_UNAVAILABLE;
        c->err = *err;
        return false;
    }
    if (c->kind->decode(c->op, r, &c->reply) < 0) {
        log_error("%s %s of '%s': the script answered something unknown "
                  "(reply type %d)",
                  c->kind->name, op_names[c->op], c->name, r->type);
        c->err.failure = REDIS_FAIL_SHAPE;
        snprintf(c->err.detail, sizeof c->err.detail,
                 "the lock script answered something unknown");
        return false;
    }
    if (c->reply.fence_seen > 0)
        lock_fence_seen(c->reply.fence_seen);
    /* The grants are delivered now; the reply keeps none of them. */
    for (size_t i = 0; i < c->reply.ndirects; i++)
        route_direct(c->reply.directs[i].id, c->reply.directs[i].fence);
    free(c->reply.directs);
    c->reply.directs = NULL;
    c->reply.ndirects = 0;
    return true;
}

static void args_of(const struct lock_call *c, struct lock_args *a)
{
    *a = (struct lock_args){.name = c->name,
                            .token = c->token,
                            .ttl_ms = c->ttl_ms,
                            .wait_ms = c->wait_ms,
                            .owner = c->owner != NULL ? c->owner : "",
                            .waiter = c->waiter.id,
                            .max_hold = conf->max_hold_count,
                            .delay_ms = c->delay_ms,
                            .request_id = c->request_id,
                            .listed = LOCK_LIST_MAX,
                            .permits = c->permits,
                            .limit = c->limit,
                            .shared = c->shared};
}

static int64_t ms_left(const struct lock_call *c)
{
    uint64_t now = clock_now_ns();

    return c->deadline_ns > now
               ? (int64_t)((c->deadline_ns - now + 999999) / 1000000)
               : 0;
}

static void on_simple(void *ctx, const redisReply *r,
                      const struct redis_error *err)
{
    struct lock_call *c = ctx;

    decode_into(c, r, err);
    c->done(c);
}

/* A call that fails before it reaches Redis still completes later. */
static void on_later(struct timer *t)
{
    struct engine_thread *e =
        (struct engine_thread *)((char *)t -
                                 offsetof(struct engine_thread, later));
    size_t n = e->later_len;

    e->later_len = 0;
    for (size_t i = 0; i < n; i++)
        e->later_calls[i]->done(e->later_calls[i]);
}

static void fail_later(struct lock_call *c, const char *why)
{
    struct engine_thread *e = self;

    lock_reply_free(&c->reply);
    memset(&c->reply, 0, sizeof c->reply);
    c->reply.outcome = LOCK_UNAVAILABLE;
    c->err.failure = REDIS_FAIL_DOWN;
    snprintf(c->err.detail, sizeof c->err.detail, "%s", why);
    if (e->later_len == e->later_cap) {
        size_t cap = e->later_cap ? 2 * e->later_cap : 16;
        struct lock_call **grown = realloc(e->later_calls, cap * sizeof *grown);
        if (grown == NULL) {
            log_error("engine: out of memory; a request is dropped");
            return;
        }
        e->later_calls = grown;
        e->later_cap = cap;
    }
    e->later_calls[e->later_len++] = c;
    loop_timer_arm(e->loop, &e->later, 0);
}

/* ---- replica acknowledgement (--redis-wait-replicas) -------------------*/

/* A call whose script runs with WAIT behind it: its continuation. */
struct acked_call {
    struct lock_call *c;
    redis_done_fn *fn;
};

static void on_orphan_left(void *ctx, const redisReply *r,
                           const struct redis_error *err);
static void args_of(const struct lock_call *c, struct lock_args *a);

/* The grant fewer replicas acknowledged has been released again (c->err
 * says why it was): now the caller hears 503. */
static void on_unacked_released(void *ctx, const redisReply *r,
                                const struct redis_error *err)
{
    struct lock_call *c = ctx;

    (void)decode_into(c, r, err);
    lock_reply_free(&c->reply);
    memset(&c->reply, 0, sizeof c->reply);
    c->reply.outcome = LOCK_UNAVAILABLE;
    c->op = LOCK_OP_ACQUIRE; /* what the caller asked for, for its accounting */
    c->done(c);
}

/* Fewer replicas than asked acknowledged what the script did, and the
 * policy is fail. A script that changed nothing goes on as usual; a grant
 * is released again; the call ends 503 with why. */
static void on_acked(void *ctx, const redisReply *r,
                     const struct redis_error *err)
{
    struct acked_call k = *(struct acked_call *)ctx;
    struct lock_call *c = k.c;
    struct redis_error why;
    struct lock_reply peek = {0};
    bool changed;

    free(ctx);
    if (err == NULL || err->failure != REDIS_FAIL_UNACKED) {
        k.fn(c, r, err);
        return;
    }
    /* An orphan's release or leave has nobody to answer: what it did is
     * acted on as usual. */
    if (k.fn == on_orphan_left) {
        k.fn(c, r, NULL);
        return;
    }
    changed = c->kind->decode(c->op, r, &peek) == 0 && peek.outcome == LOCK_OK;
    lock_reply_free(&peek);
    if (!changed) {
        k.fn(c, r, NULL);
        return;
    }
    why = *err;
    if (decode_into(c, r, NULL) &&
        (c->op == LOCK_OP_ACQUIRE || c->op == LOCK_OP_CLAIM)) {
        struct lock_args a;

        /* The caller is answered once the lease is gone again, so that
         * a retry does not find it held. */
        if (c->reply.replayed)
            memcpy(c->token, c->reply.token, sizeof c->token);
        c->err = why;
        args_of(c, &a);
        a.request_id = "";
        run(c, LOCK_OP_RELEASE, on_unacked_released, &a);
        return;
    }
    lock_reply_free(&c->reply);
    memset(&c->reply, 0, sizeof c->reply);
    c->reply.outcome = LOCK_UNAVAILABLE;
    c->err = why;
    c->done(c);
}

static void run_acked(struct lock_call *c, redis_done_fn *fn,
                      struct lock_argv *av)
{
    struct acked_call *k = malloc(sizeof *k);

    if (k == NULL) {
        fail_later(c, "out of memory");
        return;
    }
    k->c = c;
    k->fn = fn;
    redis_route_script_acked(self->route, c->kind->scripts[c->op], av->nkeys,
                             av->argc, av->argv, av->lens, on_acked, k);
}

/* ---- waiting -----------------------------------------------------------*/

static struct lock_call *call_of(struct waiter *w)
{
    return (struct lock_call *)((char *)w - offsetof(struct lock_call, waiter));
}

bool lock_engine_take_slot(void)
{
    if (atomic_fetch_add(&parked_total, 1) >= conf->max_waiters) {
        atomic_fetch_sub(&parked_total, 1);
        return false;
    }
    metrics_waiters_add(1);
    return true;
}

void lock_engine_give_slot(void)
{
    atomic_fetch_sub(&parked_total, 1);
    metrics_waiters_add(-1);
}

static void unparked(struct lock_call *c)
{
    lock_engine_give_slot();
    if (c->parked != NULL)
        c->parked(c, false);
}

static void on_refused_left(void *ctx, const redisReply *r,
                            const struct redis_error *err)
{
    struct lock_call *c = ctx;
    struct lock_reply keep = c->reply;

    /* The caller is answered with the refusal, whatever the leave did. */
    (void)decode_into(c, r, err);
    c->reply = keep;
    c->done(c);
}

/* c may not wait after all: out of the queue, then answered. */
static void refuse_wait(struct lock_call *c, enum lock_refusal why)
{
    struct lock_args a;

    c->refusal = why;
    args_of(c, &a);
    a.leave_claims = false;
    run(c, LOCK_OP_LEAVE, on_refused_left, &a);
}

static const struct waiter_ops acquire_waiter_ops;

static void park(struct lock_call *c, int64_t pttl_ms)
{
    uint64_t now = clock_now_ns();
    int64_t look = pttl_ms + 1 < LOOK_MAX_MS ? pttl_ms + 1 : LOOK_MAX_MS;
    char qname[WAIT_NAME_MAX + 1];

    if (self->draining || atomic_load(&stop_waiting)) {
        refuse_wait(c, LOCK_REFUSAL_SHUTDOWN);
        return;
    }
    if (!lock_engine_take_slot()) {
        refuse_wait(c, LOCK_REFUSAL_FULL);
        return;
    }
    qualified(c, qname, sizeof qname);
    c->waiter.ops = &acquire_waiter_ops;
    c->direct_fence = 0;
    if (wait_park(&self->reg, &c->waiter, qname, c->deadline_ns,
                  now + MS_TO_NS(look)) < 0) {
        lock_engine_give_slot();
        refuse_wait(c, LOCK_REFUSAL_FULL);
        return;
    }
    c->waited = true;
    if (c->parked != NULL)
        c->parked(c, true);
}

static void on_acquired(void *ctx, const redisReply *r,
                        const struct redis_error *err)
{
    struct lock_call *c = ctx;

    if (decode_into(c, r, err) && c->reply.outcome == LOCK_QUEUED) {
        park(c, c->reply.pttl_ms);
        return;
    }
    if (c->reply.replayed)
        memcpy(c->token, c->reply.token, sizeof c->token);
    c->done(c);
}

static void on_orphan_left(void *ctx, const redisReply *r,
                           const struct redis_error *err);

/* c claimed a lock handed to it, but its client has gone meanwhile (its
 * hang-up came with the hand-off): the lease goes at once, on a copy that
 * outlives c's caller, and c ends refused. */
static void release_for_good(struct lock_call *c)
{
    struct lock_call *orphan = malloc(sizeof *orphan);
    struct lock_args a;

    c->refusal = LOCK_REFUSAL_GONE;
    if (orphan == NULL)
        return; /* the lease ends with its TTL */
    *orphan = *c;
    orphan->reply.queue = NULL;
    orphan->reply.holders = NULL;
    args_of(orphan, &a);
    a.request_id = "";
    run(orphan, LOCK_OP_RELEASE, on_orphan_left, &a);
}

static void on_claimed(void *ctx, const redisReply *r,
                       const struct redis_error *err)
{
    struct lock_call *c = ctx;

    if (!decode_into(c, r, err)) {
        c->done(c);
        return;
    }
    if (c->reply.outcome == LOCK_QUEUED) {
        park(c, c->reply.pttl_ms);
        return;
    }
    if (c->reply.outcome == LOCK_OK && c->present != NULL && !c->present(c))
        release_for_good(c);
    if (c->reply.outcome == LOCK_WAIT_OVER)
        c->reply.outcome = LOCK_HELD;
    c->done(c);
}

static void leave_for_good(struct lock_call *c);
static void release_for_good(struct lock_call *c);

static void waiter_handed(struct waiter *w)
{
    struct lock_call *c = call_of(w);
    struct lock_args a;

    unparked(c);
    if (c->direct_fence > 0) {
        /* Granted outright by a script of this instance: the lease runs. */
        struct lease *l = &c->reply.lease;
        lock_reply_free(&c->reply);
        memset(&c->reply, 0, sizeof c->reply);
        c->reply.outcome = LOCK_OK;
        l->fence = c->direct_fence;
        l->count = 1;
        l->ttl_ms = c->ttl_ms;
        l->shared = c->shared;
        snprintf(l->owner, sizeof l->owner, "%s",
                 c->owner != NULL ? c->owner : "");
        c->direct_fence = 0;
        if (c->present != NULL && !c->present(c))
            release_for_good(c);
        c->done(c);
        return;
    }
    if (c->present != NULL && !c->present(c)) {
        /* Its client hung up as the lock came: pass it on at once rather
         * than hold it for a lease nobody will use. */
        leave_for_good(c);
        c->refusal = LOCK_REFUSAL_GONE;
        c->done(c);
        return;
    }
    args_of(c, &a);
    a.wait_ms = ms_left(c);
    run(c, LOCK_OP_CLAIM, on_claimed, &a);
}

static void on_left(void *ctx, const redisReply *r,
                    const struct redis_error *err)
{
    struct lock_call *c = ctx;

    if (decode_into(c, r, err) && c->reply.outcome == LOCK_HANDED_ON)
        c->reply.outcome = LOCK_HELD;
    c->done(c);
}

static void waiter_wait_over(struct waiter *w)
{
    struct lock_call *c = call_of(w);
    struct lock_args a;

    unparked(c);
    args_of(c, &a);
    a.leave_claims = true;
    run(c, LOCK_OP_LEAVE, on_left, &a);
}

static void waiter_retry(struct waiter *w)
{
    struct lock_call *c = call_of(w);
    struct lock_args a;

    unparked(c);
    args_of(c, &a);
    a.wait_ms = ms_left(c);
    if (a.wait_ms == 0) {
        a.leave_claims = true;
        run(c, LOCK_OP_LEAVE, on_left, &a);
        return;
    }
    run(c, LOCK_OP_ACQUIRE, on_acquired, &a);
}

static const struct waiter_ops acquire_waiter_ops = {
    waiter_handed, waiter_wait_over, waiter_retry};

/* ---- a client gone while its call waits --------------------------------*/

static void on_orphan_left(void *ctx, const redisReply *r,
                           const struct redis_error *err)
{
    struct lock_call *orphan = ctx;

    (void)decode_into(orphan, r, err);
    free(orphan);
}

/* Takes c out of its queue (passing a hand-off to it on), on a copy that
 * outlives c's caller. */
static void leave_for_good(struct lock_call *c)
{
    struct lock_call *orphan;
    struct lock_args a;

    /* The leave outlives the request: it runs on a copy. */
    orphan = malloc(sizeof *orphan);
    if (orphan == NULL) {
        log_warn("engine: out of memory; waiter %s stays queued until its "
                 "wait ends",
                 c->name);
        return;
    }
    *orphan = *c;
    orphan->waiter.parked = false;
    orphan->reply.queue = NULL;
    orphan->reply.holders = NULL;
    args_of(orphan, &a);
    a.leave_claims = false;
    run(orphan, LOCK_OP_LEAVE, on_orphan_left, &a);
}

void lock_call_abandon(struct lock_call *c)
{
    if (!c->waiter.parked)
        return;
    wait_unpark(&c->waiter);
    c->parked = NULL; /* its caller is going away */
    unparked(c);
    leave_for_good(c);
}

/* ---- looking at a name ------------------------------------------------*/

static void route_handed(const char *id);

static void on_poked(void *ctx, const redisReply *r,
                     const struct redis_error *err)
{
    struct lock_call *lk = ctx;
    char qname[WAIT_NAME_MAX + 1];
    uint64_t now = clock_now_ns();

    qualified(lk, qname, sizeof qname);
    if (!decode_into(lk, r, err)) {
        /* Redis is down or odd: look again in a while. */
        wait_look_at(&self->reg, qname, now + MS_TO_NS(1000));
    } else if (lk->reply.outcome == LOCK_FREE) {
        wait_retry_name(&self->reg, qname);
    } else {
        int64_t ms = lk->reply.pttl_ms + 1;
        if (lk->reply.handed_to[0] != '\0')
            route_handed(lk->reply.handed_to);
        wait_look_at(&self->reg, qname,
                     now + MS_TO_NS(ms < LOOK_MAX_MS ? ms : LOOK_MAX_MS));
    }
    free(lk);
}

static void look(struct wait_registry *reg, const char *qname)
{
    const char *name;
    const struct lock_kind *kind = lock_kind_of(qname, &name);
    struct lock_call *lk;
    struct lock_args a = {0};

    (void)reg;
    lk = kind ? calloc(1, sizeof *lk) : NULL;
    if (lk == NULL) {
        wait_look_at(&self->reg, qname, clock_now_ns() + MS_TO_NS(1000));
        return;
    }
    lk->kind = kind;
    snprintf(lk->name, sizeof lk->name, "%s", name);
    a.name = lk->name;
    a.token = a.owner = a.waiter = "";
    run(lk, LOCK_OP_POKE, on_poked, &a);
}

static const struct wait_registry_ops registry_ops = {look};

/* ---- messages between workers -----------------------------------------*/

static void post(struct engine_thread *e, const char *text, size_t len)
{
    bool was_empty;
    uint64_t one = 1;

    if (len >= MESSAGE_MAX)
        return;
    pthread_mutex_lock(&e->inbox_mu);
    if (e->inbox_len == e->inbox_cap && e->inbox_cap < INBOX_MAX) {
        size_t cap = e->inbox_cap ? 2 * e->inbox_cap : 64;
        struct inbox_message *grown = realloc(e->inbox, cap * sizeof *grown);
        if (grown != NULL) {
            e->inbox = grown;
            e->inbox_cap = cap;
        }
    }
    if (e->inbox_len == e->inbox_cap) {
        /* Full: the name's timer looks again in at most LOOK_MAX_MS. */
        pthread_mutex_unlock(&e->inbox_mu);
        return;
    }
    memcpy(e->inbox[e->inbox_len].text, text, len);
    e->inbox[e->inbox_len].text[len] = '\0';
    was_empty = e->inbox_len++ == 0;
    pthread_mutex_unlock(&e->inbox_mu);
    if (was_empty && write(e->inbox_watch.fd, &one, sizeof one) < 0)
        log_debug("engine: eventfd write: %s", strerror(errno));
}

/* Acts on a message of the instance's channel ("g <id>", "w <qname> <ms>")
 * or of the engine's own ("d <id> <fence>": granted outright by a script
 * of another worker; "a": look at every name). */
static void handle(const char *m)
{
    if (m[0] == 'g' && m[1] == ' ') {
        wait_handed(&self->reg, m + 2);
    } else if (m[0] == 'd' && m[1] == ' ') {
        char id[WAITER_ID_MAX];
        const char *sp = strrchr(m + 2, ' ');
        size_t n = sp ? (size_t)(sp - (m + 2)) : 0;
        char *end;
        long long fence = sp ? strtoll(sp + 1, &end, 10) : 0;

        if (sp == NULL || n >= sizeof id || *end != '\0' || fence <= 0)
            return;
        memcpy(id, m + 2, n);
        id[n] = '\0';
        deliver_direct(id, fence);
    } else if (m[0] == 'w' && m[1] == ' ') {
        const char *sp = strrchr(m + 2, ' ');
        char qname[WAIT_NAME_MAX + 1];
        char *end;
        size_t n = sp ? (size_t)(sp - (m + 2)) : 0;
        unsigned long ms = sp ? strtoul(sp + 1, &end, 10) : 0;

        if (sp == NULL || n > WAIT_NAME_MAX || *end != '\0')
            return;
        memcpy(qname, m + 2, n);
        qname[n] = '\0';
        wait_look_at(&self->reg, qname,
                     clock_now_ns() + MS_TO_NS((uint64_t)ms + 1));
    } else if (m[0] == 'a') {
        wait_look_all(&self->reg);
    }
}

static void on_inbox(struct loop_watch *w, uint32_t events)
{
    struct engine_thread *e = self;
    struct inbox_message *batch;
    uint64_t v;
    size_t n;

    (void)w;
    (void)events;
    if (read(e->inbox_watch.fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug("engine: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&e->inbox_mu);
    batch = e->inbox;
    n = e->inbox_len;
    e->inbox = NULL;
    e->inbox_len = e->inbox_cap = 0;
    pthread_mutex_unlock(&e->inbox_mu);
    for (size_t i = 0; i < n; i++)
        handle(batch[i].text);
    free(batch);
}

/* The worker of waiter id "<instance>:<worker>:<n>", or NULL. */
static struct engine_thread *worker_of(const char *id)
{
    const char *p = strchr(id, ':');
    char *end;
    unsigned long w;

    if (p == NULL)
        return NULL;
    w = strtoul(p + 1, &end, 10);
    if (*end != ':' || w >= conf->threads || w >= 256)
        return NULL;
    return atomic_load(&threads[w]);
}

/* A script of this instance granted the lock outright to waiter id. */
static void deliver_direct(const char *id, int64_t fence)
{
    struct waiter *w = wait_find(&self->reg, id);

    /* Gone from the registry: its deadline or its client's hang-up came
     * first, and its leave script finds the lease (and takes it, or
     * passes it on). */
    if (w == NULL)
        return;
    call_of(w)->direct_fence = fence;
    wait_handed(&self->reg, id);
}

static void route_direct(const char *id, int64_t fence)
{
    struct engine_thread *e = worker_of(id);
    char m[MESSAGE_MAX];
    int n;

    if (e == self) {
        deliver_direct(id, fence);
        return;
    }
    n = snprintf(m, sizeof m, "d %s %" PRId64, id, fence);
    if (e != NULL && n > 0 && n < (int)sizeof m)
        post(e, m, (size_t)n);
}

static void route_handed(const char *id)
{
    struct engine_thread *e = worker_of(id);
    char m[MESSAGE_MAX];
    int n;

    if (e == self) {
        wait_handed(&self->reg, id);
        return;
    }
    n = snprintf(m, sizeof m, "g %s", id);
    if (e != NULL && n > 0 && n < (int)sizeof m)
        post(e, m, (size_t)n);
}

static void broadcast(const char *m, size_t len)
{
    for (unsigned i = 0; i < conf->threads && i < 256; i++) {
        struct engine_thread *e = atomic_load(&threads[i]);
        if (e == self)
            handle(m);
        else if (e != NULL)
            post(e, m, len);
    }
}

static void on_message(void *ctx, const char *payload, size_t len)
{
    char m[MESSAGE_MAX];

    (void)ctx;
    if (len >= sizeof m)
        return;
    memcpy(m, payload, len);
    m[len] = '\0';
    if (m[0] == 'g' && m[1] == ' ')
        route_handed(m + 2);
    else
        broadcast(m, len);
}

static void on_subscribed(void *ctx)
{
    (void)ctx;
    /* Hand-offs published while nobody listened are lost: look at every
     * name waited for. */
    broadcast("a", 1);
}

/* Whether the queue of qname is on cluster node *(int *)ctx. */
static bool queued_on(void *ctx, const char *qname)
{
    const char *name;
    const struct lock_kind *kind = lock_kind_of(qname, &name);
    char key[KEY_MAX];

    return kind == NULL ||
           redis_route_serves(*(int *)ctx, key,
                              key_for(key, kind->queue_key, name));
}

/* A connection of the worker broke (node: the cluster node's, -1 outside
 * a cluster): the parked waiters whose queue was there may have lost it
 * with Redis, and their hand-offs unheard. Each acquires again: at once
 * 503 while Redis is down; queued where it was when it is back (the
 * acquire script keeps a waiter's place). */
static void on_conn_down(void *ctx, int node)
{
    (void)ctx;
    if (node < 0)
        wait_drain(&self->reg, waiter_retry);
    else
        wait_drain_if(&self->reg, queued_on, &node, waiter_retry);
}

/* ---- liveness ----------------------------------------------------------*/

static void on_heartbeat_done(void *ctx, const redisReply *r,
                              const struct redis_error *err)
{
    (void)ctx;
    (void)r;
    (void)err;
}

/* Marks this instance alive for qname, on which a waiter of the worker is
 * parked: scripts pass over queued waiters whose instance is not. */
static void mark_alive(void *ctx, const char *qname)
{
    const char *name;
    const struct lock_kind *kind = lock_kind_of(qname, &name);
    char key[KEY_MAX + 32];
    const char *argv[] = {"SET", key, "1", "PX", LIVENESS_TTL_MS};
    size_t lens[5], n;

    (void)ctx;
    if (kind == NULL)
        return;
    n = key_for(key, kind->queue_key, name);
    n += (size_t)snprintf(key + n, sizeof key - n, ":alive:%s", instance_id);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    redis_route_command(self->route, 5, argv, lens, on_heartbeat_done, NULL);
}

static void on_heartbeat(struct timer *t)
{
    wait_each_name(&self->reg, mark_alive, NULL);
    loop_timer_arm(self->loop, t, clock_now_ns() + MS_TO_NS(HEARTBEAT_MS));
}

/* ---- the operations ----------------------------------------------------*/

void lock_call_acquire(struct lock_call *c)
{
    bool reenter = c->token[0] != '\0';
    struct lock_args a;

    c->refusal = LOCK_REFUSAL_NONE;
    c->waited = false;
    c->waiter.id[0] = '\0';
    c->waiter.parked = false;
    c->deadline_ns = clock_now_ns() + MS_TO_NS(c->wait_ms);
    if (!reenter && token_new(c->token) < 0) {
        fail_later(c, "no randomness for a token");
        return;
    }
    if (c->wait_ms > 0 && !reenter)
        snprintf(c->waiter.id, sizeof c->waiter.id, "%s:%u:%" PRIu64,
                 instance_id, self->index, ++self->waiter_seq);
    args_of(c, &a);
    a.reenter = reenter;
    run(c, LOCK_OP_ACQUIRE, on_acquired, &a);
}

void lock_call_renew(struct lock_call *c)
{
    struct lock_args a;

    c->waiter.id[0] = '\0';
    args_of(c, &a);
    run(c, LOCK_OP_RENEW, on_simple, &a);
}

void lock_call_release(struct lock_call *c)
{
    struct lock_args a;

    c->waiter.id[0] = '\0';
    args_of(c, &a);
    run(c, LOCK_OP_RELEASE, on_simple, &a);
}

void lock_call_status(struct lock_call *c)
{
    struct lock_args a;

    c->waiter.id[0] = '\0';
    c->owner = NULL;
    args_of(c, &a);
    run(c, LOCK_OP_STATUS, on_simple, &a);
}

void lock_call_force(struct lock_call *c)
{
    struct lock_args a;

    c->waiter.id[0] = '\0';
    c->token[0] = '\0';
    c->owner = NULL;
    args_of(c, &a);
    run(c, LOCK_OP_FORCE, on_simple, &a);
}

/* ---- setup and shutdown ------------------------------------------------*/

int lock_engine_init(const struct config *cfg)
{
    conf = cfg;
    keys_init(cfg);
    char t[TOKEN_HEX_LEN + 1];
    if (token_new(t) < 0)
        return -1;
    memcpy(instance_id, t, 16);
    instance_id[16] = '\0';
    snprintf(channel, sizeof channel, "%snotify:%s", cfg->key_prefix,
             instance_id);
    redis_routes_init(cfg);
    return lock_kinds_init();
}

int lock_engine_thread_start(struct loop *l, unsigned index)
{
    struct engine_thread *e = calloc(1, sizeof *e);

    if (e == NULL || index >= 256)
        goto fail;
    e->loop = l;
    e->index = index;
    pthread_mutex_init(&e->inbox_mu, NULL);
    timer_init(&e->later, on_later);
    timer_init(&e->heartbeat, on_heartbeat);
    e->inbox_watch.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e->inbox_watch.fn = on_inbox;
    if (e->inbox_watch.fd < 0 ||
        loop_watch_set(l, &e->inbox_watch, EPOLLIN) < 0 ||
        wait_registry_init(&e->reg, l, conf->max_waiters, &registry_ops, e) < 0)
        goto fail;
    self = e;
    e->route = redis_route_new(l);
    if (e->route == NULL)
        goto fail;
    redis_route_on_down(e->route, on_conn_down, NULL);
    if (index == 0) {
        e->sub = redis_conn_new_subscriber(l, channel, on_message,
                                           on_subscribed, NULL);
        if (e->sub == NULL)
            goto fail;
    }
    on_heartbeat(&e->heartbeat);
    atomic_store(&threads[index], e);
    return 0;
fail:
    log_error("engine: cannot set up worker %u", index);
    return -1;
}

void lock_engine_thread_flush(void)
{
    redis_route_flush(self->route);
    if (self->sub != NULL)
        redis_conn_flush(self->sub);
}

static void drain_one(struct waiter *w)
{
    struct lock_call *c = call_of(w);

    unparked(c);
    refuse_wait(c, LOCK_REFUSAL_SHUTDOWN);
}

void lock_engine_stop_waiting(void)
{
    atomic_store(&stop_waiting, true);
}

void lock_engine_thread_drain(void)
{
    self->draining = true;
    wait_drain(&self->reg, drain_one);
}

void lock_engine_thread_close(void)
{
    self->draining = true;
    wait_drain(&self->reg, drain_one);
    atomic_store(&threads[self->index], NULL);
    loop_timer_disarm(self->loop, &self->heartbeat);
    redis_conn_close(self->sub);
    redis_route_close(self->route);
}

void lock_engine_thread_stop(void)
{
    struct engine_thread *e = self;

    if (e == NULL)
        return;
    redis_conn_free(e->sub);
    redis_route_free(e->route);
    e->route = NULL;
    e->sub = NULL;
    on_later(&e->later);
    loop_timer_disarm(e->loop, &e->later);
    loop_watch_set(e->loop, &e->inbox_watch, 0);
    close(e->inbox_watch.fd);
    wait_registry_free(&e->reg);
    free(e->inbox);
    free(e->later_calls);
    pthread_mutex_destroy(&e->inbox_mu);
    free(e);
    self = NULL;
}
