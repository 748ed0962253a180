/* waiters.c -- the waiter registry and its thread; see waiters.h.
 *
 * Locking: one mutex guards the registry. MHD is never called with it held
 * (MHD takes its own locks and calls back into us), so wake-ups are collected
 * under the mutex and resumed after it is released. A waiter's memory belongs
 * to its request, which cannot complete while its connection is suspended,
 * so a collected connection is still valid when it is resumed. */
#include "waiters.h"

#include "clock.h"
#include "lock_engine.h"
#include "log.h"
#include "metrics.h"
#include "redis_conn.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#define BUCKETS 4096      /* name hash chains (power of two) */
#define RECENT_SLOTS 1024 /* the last release notifications seen */
#define EVENTS_MAX 256
#define RECONNECT_NS MS_TO_NS(100)
#define EV_WAKE UINT64_MAX
#define EV_SUB (UINT64_MAX - 1)

struct name_bucket {
    struct name_bucket *chain;
    struct waiter *head, *tail;
    struct registry_timer retry; /* the holder's lease should end: wake one */
    uint32_t hash;
    char name[LOCK_NAME_MAX + 1];
};

/* Connections to resume once the mutex is released. */
struct wake_list {
    struct MHD_Connection **conns;
    size_t len;
};

static const struct config *conf;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t thread;
static bool thread_started;
static bool draining; /* shutdown begun: no new lock waiters */
static bool stopping; /* the thread ends */
static int epfd = -1, wakefd = -1;
static redisContext *sub;
static uint64_t next_connect_ns;
static struct name_bucket *buckets[BUCKETS];
/* A ring of the last release notifications, oldest overwritten first, so
 * that a waiter whose failed attempt raced a release (the notification
 * arrived before it registered) is not left waiting for a wake-up that
 * already went by. A ring, not a table by name hash: releases of other names
 * arriving meanwhile must not push the one it needs out. */
struct recent_release {
    uint64_t ns;  /* 0: empty */
    bool claimed; /* a local waiter has the ticket (woken, or a latecomer) */
    char name[LOCK_NAME_MAX + 1];
    char ticket[24];
};
static struct recent_release recent[RECENT_SLOTS];
static size_t recent_next; /* where the next notification goes */
/* Min-heap of armed timers: one per waiter, one per name with waiters, so
 * at most 2 * max_waiters. */
static struct registry_timer **heap;
static size_t heap_len;
static unsigned reserved;     /* registered or about to be */
static struct waiter **by_fd; /* client socket -> registered waiter */
static size_t by_fd_len;
static uint32_t next_gen;
static struct wake_list pending; /* capacity 2 * max_waiters + 16 */

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static struct waiter *timer_waiter(struct registry_timer *t)
{
    return (struct waiter *)((char *)t - offsetof(struct waiter, timer));
}

static struct name_bucket *timer_bucket(struct registry_timer *t)
{
    return (struct name_bucket *)((char *)t -
                                  offsetof(struct name_bucket, retry));
}

/* ---- timer heap ---------------------------------------------------------*/

static void heap_swap(size_t a, size_t b)
{
    struct registry_timer *t = heap[a];
    heap[a] = heap[b];
    heap[b] = t;
    heap[a]->heap_index = a;
    heap[b]->heap_index = b;
}

static void heap_up(size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (heap[p]->at_ns <= heap[i]->at_ns)
            break;
        heap_swap(i, p);
        i = p;
    }
}

static void heap_down(size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && heap[l]->at_ns < heap[m]->at_ns)
            m = l;
        if (r < heap_len && heap[r]->at_ns < heap[m]->at_ns)
            m = r;
        if (m == i)
            return;
        heap_swap(i, m);
        i = m;
    }
}

static void timer_arm(struct registry_timer *t, uint64_t at_ns)
{
    t->at_ns = at_ns;
    t->heap_index = heap_len;
    t->armed = true;
    heap[heap_len++] = t;
    heap_up(t->heap_index);
}

static void timer_disarm(struct registry_timer *t)
{
    size_t i = t->heap_index;

    if (!t->armed)
        return;
    t->armed = false;
    heap_len--;
    if (i != heap_len) {
        heap[i] = heap[heap_len];
        heap[i]->heap_index = i;
        heap_down(i);
        heap_up(i);
    }
}

/* Arms t at at_ns, or moves it earlier if armed later: a retry that comes
 * too early costs one attempt, one that comes too late costs a whole lease. */
static void timer_arm_earliest(struct registry_timer *t, uint64_t at_ns)
{
    if (!t->armed) {
        timer_arm(t, at_ns);
    } else if (at_ns < t->at_ns) {
        t->at_ns = at_ns;
        heap_up(t->heap_index);
    }
}

/* ---- registration -------------------------------------------------------*/

static struct name_bucket *bucket_get(const char *name, bool create)
{
    uint32_t h = name_hash(name);
    struct name_bucket **slot = &buckets[h & (BUCKETS - 1)], *b;

    for (b = *slot; b != NULL; b = b->chain)
        if (b->hash == h && strcmp(b->name, name) == 0)
            return b;
    if (!create)
        return NULL;
    b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->hash = h;
    b->retry.is_bucket = true;
    snprintf(b->name, sizeof b->name, "%s", name);
    b->chain = *slot;
    *slot = b;
    return b;
}

static void bucket_free_if_empty(struct name_bucket *b)
{
    struct name_bucket **p = &buckets[b->hash & (BUCKETS - 1)];

    if (b->head != NULL)
        return;
    timer_disarm(&b->retry);
    while (*p != b)
        p = &(*p)->chain;
    *p = b->chain;
    free(b);
}

/* Links w everywhere. Returns 0, or -1 when out of memory. */
static int registry_add(struct waiter *w, uint64_t retry_at_ns)
{
    struct epoll_event ev;

    if (w->name[0] != '\0') {
        struct name_bucket *b = bucket_get(w->name, true);
        if (b == NULL)
            return -1;
        w->bucket = b;
        w->next = NULL;
        w->prev = b->tail;
        if (b->tail)
            b->tail->next = w;
        else
            b->head = w;
        b->tail = w;
        timer_arm_earliest(&b->retry, retry_at_ns);
    }
    w->timer.is_bucket = false;
    timer_arm(&w->timer, w->timer.at_ns);
    w->gen = ++next_gen;
    if (w->fd >= 0 && (size_t)w->fd < by_fd_len) {
        ev.events = EPOLLRDHUP;
        ev.data.u64 = ((uint64_t)w->gen << 32) | (uint32_t)w->fd;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, w->fd, &ev) == 0)
            by_fd[w->fd] = w;
    }
    w->registered = true;
    metrics_waiters_add(1);
    return 0;
}

/* Unlinks w from everything; the reservation is released too. */
static void registry_remove(struct waiter *w)
{
    if (!w->registered)
        return;
    if (w->bucket != NULL) {
        struct name_bucket *b = w->bucket;
        if (w->prev)
            w->prev->next = w->next;
        else
            b->head = w->next;
        if (w->next)
            w->next->prev = w->prev;
        else
            b->tail = w->prev;
        w->prev = w->next = NULL;
        w->bucket = NULL;
        bucket_free_if_empty(b);
    }
    timer_disarm(&w->timer);
    if (w->fd >= 0 && (size_t)w->fd < by_fd_len && by_fd[w->fd] == w) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
        by_fd[w->fd] = NULL;
    }
    w->registered = false;
    reserved--;
    metrics_waiters_add(-1);
}

/* Unlinks w and queues its connection for resumption with reason why. A
 * waiter woken for its queue (a release, or the holder's lease ending)
 * carries the baton: it must use the wake-up or pass it on. */
static void wake(struct waiter *w, enum waiter_wake why, bool baton,
                 const char *ticket)
{
    registry_remove(w);
    w->wake = why;
    w->baton = baton;
    snprintf(w->ticket, sizeof w->ticket, "%s", ticket);
    pending.conns[pending.len++] = w->conn;
}

static void resume_pending(void)
{
    struct MHD_Connection *batch[64];
    size_t n;

    /* Called without the mutex; take the list in small batches. */
    for (;;) {
        pthread_mutex_lock(&mu);
        n = pending.len < 64 ? pending.len : 64;
        pending.len -= n;
        memcpy(batch, pending.conns + pending.len, n * sizeof *batch);
        pthread_mutex_unlock(&mu);
        if (n == 0)
            return;
        while (n > 0)
            MHD_resume_connection(batch[--n]);
    }
}

/* Wakes the longest-waiting local waiter of name, if any, handing it the
 * release's ticket. Returns whether there was one. */
static bool wake_one(const char *name, const char *ticket)
{
    struct name_bucket *b = bucket_get(name, false);

    if (b == NULL || b->head == NULL)
        return false;
    wake(b->head, WAKE_RELEASED, true, ticket);
    return true;
}

/* Wakes every waiter on a lock name (pure timers keep sleeping). */
static void wake_all_locks(enum waiter_wake why)
{
    size_t i;

    for (i = 0; i < BUCKETS; i++)
        while (buckets[i] != NULL)
            wake(buckets[i]->head, why, false, ""); /* frees empty buckets */
}

static void signal_thread(void)
{
    uint64_t one = 1;
    if (write(wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("waiters: eventfd write failed: %s", strerror(errno));
}

/* True when a release of w's name was seen after attempt_ns and woke no
 * local waiter: its ticket is then w's to use (copied into w->ticket), and
 * w should try again at once rather than register. A release that woke a
 * local waiter needs nothing: that waiter's own release will notify. */
/* The newest notification for name seen at or after since_ns (and, when
 * ticket is not NULL, carrying it), or NULL. Call with mu held. */
static struct recent_release *recent_find(const char *name, uint64_t since_ns,
                                          const char *ticket)
{
    for (size_t i = 1; i <= RECENT_SLOTS && i <= recent_next; i++) {
        struct recent_release *r = &recent[(recent_next - i) % RECENT_SLOTS];
        if (r->ns < since_ns)
            break; /* older ones only from here on */
        if (strcmp(r->name, name) == 0 &&
            (ticket == NULL || strcmp(r->ticket, ticket) == 0))
            return r;
    }
    return NULL;
}

static bool missed_release(struct waiter *w, uint64_t attempt_ns)
{
    struct recent_release *r = recent_find(w->name, attempt_ns, NULL);

    if (w->name[0] == '\0' || attempt_ns == 0 || r == NULL || r->claimed)
        return false;
    r->claimed = true;
    snprintf(w->ticket, sizeof w->ticket, "%s", r->ticket);
    return true;
}

static enum waiters_result suspend_and_register(struct waiter *w,
                                                struct MHD_Connection *conn,
                                                uint64_t attempt_ns,
                                                uint64_t retry_at_ns)
{
    const union MHD_ConnectionInfo *ci;
    bool resume_now = false, top;
    bool is_lock = w->name[0] != '\0';

    pthread_mutex_lock(&mu);
    if (stopping || (draining && is_lock)) {
        pthread_mutex_unlock(&mu);
        return WAIT_SHUTTING_DOWN;
    }
    if (reserved >= conf->max_waiters) {
        pthread_mutex_unlock(&mu);
        return WAIT_FULL;
    }
    if (missed_release(w, attempt_ns)) {
        pthread_mutex_unlock(&mu);
        return WAIT_RETRY;
    }
    reserved++;
    pthread_mutex_unlock(&mu);

    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    w->fd = ci ? ci->connect_fd : -1;
    w->conn = conn;
    w->wake = WAKE_NONE;
    w->baton = false;
    w->ticket[0] = '\0';
    MHD_suspend_connection(conn);

    pthread_mutex_lock(&mu);
    if (stopping || (draining && is_lock)) {
        reserved--;
        w->wake = WAKE_SHUTDOWN;
        resume_now = true;
    } else if (missed_release(w, attempt_ns)) {
        reserved--;
        w->wake = WAKE_RELEASED;
        w->baton = true;
        resume_now = true;
    } else if (registry_add(w, retry_at_ns) < 0) {
        reserved--;
        w->wake = WAKE_BACKEND_LOST;
        resume_now = true;
    }
    top = !resume_now && heap_len > 0 &&
          (heap[0] == &w->timer ||
           (w->bucket != NULL && heap[0] == &w->bucket->retry));
    pthread_mutex_unlock(&mu);
    if (resume_now)
        MHD_resume_connection(conn);
    else if (top)
        signal_thread();
    return WAIT_OK;
}

enum waiters_result waiters_wait(struct waiter *w, struct MHD_Connection *conn,
                                 const char *name, uint64_t attempt_ns,
                                 uint64_t retry_at_ns, uint64_t deadline_ns)
{
    snprintf(w->name, sizeof w->name, "%s", name);
    w->timer.at_ns = deadline_ns;
    /* The name's timer is for the holder's expiry only: this waiter's own
     * timer covers its deadline. (Capped at the deadline, the name's timer
     * would wake this waiter at its deadline and then be gone.) */
    return suspend_and_register(w, conn, attempt_ns, retry_at_ns);
}

enum waiters_result waiters_sleep(struct waiter *w, struct MHD_Connection *conn,
                                  uint64_t until_ns)
{
    w->name[0] = '\0';
    w->timer.at_ns = until_ns;
    return suspend_and_register(w, conn, 0, 0);
}

void waiters_lease_ends(struct waiter *w, uint64_t expires_ns)
{
    struct name_bucket *b;

    pthread_mutex_lock(&mu);
    b = bucket_get(w->name, false);
    if (b != NULL) {
        /* Until now the name's timer pointed at the previous lease. */
        timer_disarm(&b->retry);
        timer_arm(&b->retry, expires_ns);
    }
    pthread_mutex_unlock(&mu);
    if (b != NULL)
        signal_thread();
}

void waiters_baton_used(struct waiter *w)
{
    w->baton = false;
}

void waiters_done(struct waiter *w)
{
    /* Most requests never waited, or used their wake-up: nothing to do, and
     * no lock taken on the hot path. (A woken waiter's fields were written
     * before its resumption, which happens before this call.) */
    if (!w->registered && !w->baton)
        return;
    pthread_mutex_lock(&mu);
    registry_remove(w);
    if (w->baton && w->name[0] != '\0' && !draining &&
        !wake_one(w->name, w->ticket)) {
        /* Nobody local to pass it to yet: a waiter registering in a moment
         * may still take the ticket. */
        struct recent_release *r = recent_find(w->name, 0, w->ticket);
        if (r != NULL)
            r->claimed = false;
    }
    w->baton = false;
    pthread_mutex_unlock(&mu);
    resume_pending();
}

/* ---- the registry thread ------------------------------------------------*/

static void subscriber_drop(void)
{
    if (sub == NULL)
        return;
    epoll_ctl(epfd, EPOLL_CTL_DEL, sub->fd, NULL);
    redisFree(sub);
    sub = NULL;
}

/* Connects and subscribes (without the mutex: it may block up to the Redis
 * timeout). Returns the context or NULL. */
static redisContext *subscriber_connect(void)
{
    redisContext *c = redis_connect(conf);
    redisReply *r;
    struct timeval none = {0, 0};

    if (c == NULL)
        return NULL;
    r = redisCommand(c, "SUBSCRIBE %s", lock_release_channel());
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(r);
    redisSetTimeout(c, none);
    return c;
}

/* Reads what the subscriber has; wakes one waiter per released name. Called
 * with the mutex held. Returns 0, or -1 when the connection is lost. */
static int subscriber_read(uint64_t now)
{
    void *reply;

    if (redisBufferRead(sub) != REDIS_OK)
        return -1;
    for (;;) {
        redisReply *r;
        if (redisGetReplyFromReader(sub, &reply) != REDIS_OK)
            return -1;
        if (reply == NULL)
            return 0;
        r = reply;
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
            r->element[2]->type == REDIS_REPLY_STRING &&
            r->element[2]->len < LOCK_NAME_MAX + 24) {
            /* "<name> <ticket>" */
            char msg[LOCK_NAME_MAX + 24], *space;
            memcpy(msg, r->element[2]->str, r->element[2]->len);
            msg[r->element[2]->len] = '\0';
            space = strrchr(msg, ' ');
            if (space != NULL && (size_t)(space - msg) <= LOCK_NAME_MAX) {
                struct recent_release *rr =
                    &recent[recent_next++ % RECENT_SLOTS];

                memcpy(rr->name, msg, (size_t)(space - msg));
                rr->name[space - msg] = '\0';
                snprintf(rr->ticket, sizeof rr->ticket, "%s", space + 1);
                rr->ns = now;
                rr->claimed = wake_one(rr->name, rr->ticket);
            }
        }
        freeReplyObject(r);
    }
}

static void fire_timers(uint64_t now)
{
    while (heap_len > 0 && heap[0]->at_ns <= now) {
        struct registry_timer *t = heap[0];

        timer_disarm(t);
        if (t->is_bucket) {
            /* The holder's lease should be over: one waiter tries. */
            struct name_bucket *b = timer_bucket(t);
            wake(b->head, WAKE_TIMER, true, "");
        } else {
            struct waiter *w = timer_waiter(t);
            wake(w, w->name[0] != '\0' ? WAKE_DEADLINE : WAKE_TIMER, false, "");
        }
    }
}

static int next_timeout_ms(uint64_t now)
{
    uint64_t next = UINT64_MAX;

    if (heap_len > 0)
        next = heap[0]->at_ns;
    if (sub == NULL && next_connect_ns < next)
        next = next_connect_ns;
    if (next == UINT64_MAX)
        return -1;
    if (next <= now)
        return 0;
    /* Round up so a timer never fires a little early and spins. */
    return (int)((next - now + 999999) / 1000000);
}

static void handle_events(struct epoll_event *ev, int n, uint64_t now)
{
    int i;

    for (i = 0; i < n; i++) {
        uint64_t d = ev[i].data.u64;
        if (d == EV_WAKE) {
            uint64_t v;
            if (read(wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
                log_warn("waiters: eventfd read failed");
        } else if (d == EV_SUB) {
            if (sub != NULL && subscriber_read(now) < 0) {
                log_warn("waiters: lost the Redis subscriber connection");
                subscriber_drop();
                next_connect_ns = now + RECONNECT_NS;
                /* Their releases may go unseen: let them retry (a Redis that
                 * is down answers 503). */
                wake_all_locks(WAKE_BACKEND_LOST);
            }
        } else {
            uint32_t fd = (uint32_t)d, gen = (uint32_t)(d >> 32);
            struct waiter *w = fd < by_fd_len ? by_fd[fd] : NULL;
            if (w != NULL && w->gen == gen)
                wake(w, WAKE_CLIENT_GONE, false, "");
        }
    }
}

static void try_subscribe(void)
{
    redisContext *c;
    struct epoll_event ev;

    pthread_mutex_unlock(&mu);
    c = subscriber_connect();
    pthread_mutex_lock(&mu);
    /* From the end of the attempt, which may have taken a whole Redis
     * timeout: counted from its start, the next attempt would be due at once
     * and the loop would never get to its timers and events. */
    uint64_t now = clock_now_ns();
    if (c == NULL) {
        next_connect_ns = now + RECONNECT_NS;
        return;
    }
    sub = c;
    ev.events = EPOLLIN;
    ev.data.u64 = EV_SUB;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, sub->fd, &ev) < 0) {
        subscriber_drop();
        next_connect_ns = now + RECONNECT_NS;
        return;
    }
    log_info("waiters: subscribed to release notifications");
    /* Releases published while we were not listening are lost: every
     * waiter tries again. */
    wake_all_locks(WAKE_TIMER);
}

static void *registry_thread(void *arg)
{
    struct epoll_event ev[EVENTS_MAX];

    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        uint64_t now = clock_now_ns();
        int timeout, n;

        if (sub == NULL && now >= next_connect_ns) {
            try_subscribe();
            continue;
        }
        timeout = next_timeout_ms(now);
        pthread_mutex_unlock(&mu);
        resume_pending();
        n = epoll_wait(epfd, ev, EVENTS_MAX, timeout);
        pthread_mutex_lock(&mu);
        now = clock_now_ns();
        if (n > 0)
            handle_events(ev, n, now);
        fire_timers(now);
        if (draining)
            wake_all_locks(WAKE_SHUTDOWN);
    }
    /* Shutdown: every waiter, lock or pause, is answered now. */
    wake_all_locks(WAKE_SHUTDOWN);
    while (heap_len > 0)
        wake(timer_waiter(heap[0]), WAKE_SHUTDOWN, false, "");
    subscriber_drop();
    pthread_mutex_unlock(&mu);
    resume_pending();
    return NULL;
}

int waiters_start(const struct config *cfg)
{
    struct epoll_event ev;
    struct rlimit rl;

    conf = cfg;
    heap = calloc(2 * (size_t)cfg->max_waiters + 1, sizeof *heap);
    /* Woken connections wait here until resumed; a woken waiter no longer
     * counts against max_waiters, so allow for a second generation. */
    pending.conns =
        calloc(2 * (size_t)cfg->max_waiters + 16, sizeof *pending.conns);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        by_fd_len = rl.rlim_cur;
    else
        by_fd_len = 65536;
    by_fd = calloc(by_fd_len, sizeof *by_fd);
    if (heap == NULL || pending.conns == NULL || by_fd == NULL)
        return -1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epfd < 0 || wakefd < 0)
        return -1;
    ev.events = EPOLLIN;
    ev.data.u64 = EV_WAKE;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, wakefd, &ev) < 0)
        return -1;
    if (pthread_create(&thread, NULL, registry_thread, NULL) != 0)
        return -1;
    thread_started = true;
    return 0;
}

void waiters_drain(void)
{
    if (!thread_started)
        return;
    pthread_mutex_lock(&mu);
    draining = true;
    pthread_mutex_unlock(&mu);
    signal_thread();
}

void waiters_stop(void)
{
    if (!thread_started)
        return;
    pthread_mutex_lock(&mu);
    draining = true;
    stopping = true;
    pthread_mutex_unlock(&mu);
    signal_thread();
    pthread_join(thread, NULL);
    thread_started = false;
    /* The arrays stay: requests still completing call waiters_done(). */
}
