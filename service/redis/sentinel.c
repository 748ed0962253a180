/* sentinel.c -- see sentinel.h.
 *
 * Connections to sentinels and candidate masters are conn.h's connections
 * to a fixed address. One the watcher is done with is retired: freed from
 * a timer, never from inside one of its own callbacks; its commands still
 * in flight then fail with REDIS_FAIL_STOPPING, which every callback here
 * ignores. */
#include "sentinel.h"

#include "clock.h"
#include "endpoint.h"
#include "log.h"
#include "loop.h"
#include "redis/conn.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 1000
/* How often the subscription's connection is looked at; down at two looks
 * in a row, it moves to the next sentinel. */
#define HEALTH_MS 500
#define RETIRED_MAX 16
#define SWITCH_CHANNEL "+switch-master"

struct watcher {
    const struct config *cfg;
    const struct redis_url *url;
    struct loop loop;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    struct loop_watch wake; /* eventfd: a suspect master, or stop */
    unsigned ask;           /* the sentinel asked next */
    struct redis_conn *query;
    unsigned query_at;
    struct redis_conn *probe; /* to the candidate, for ROLE */
    char cand_host[REDIS_HOST_MAX];
    int cand_port;
    struct redis_conn *sub; /* SUBSCRIBE +switch-master */
    unsigned sub_at, sub_strikes;
    struct redis_conn *retired[RETIRED_MAX];
    size_t retired_count;
    struct timer tidy;   /* frees the retired */
    struct timer retry;  /* discovery again after a failure */
    struct timer health; /* looks at the subscription */
    bool busy, again;    /* a discovery runs; another is due after it */
    uint64_t backoff_ms;
    bool failing; /* warned about a failure, not yet found a master */
};

static struct watcher w;

static void retire(struct redis_conn *c)
{
    if (c == NULL)
        return;
    if (w.retired_count == RETIRED_MAX) {
        /* Cannot happen: at most three retire per turn, and tidy runs at
         * the end of it. */
        log_error("sentinel: too many connections to retire");
        abort();
    }
    w.retired[w.retired_count++] = c;
    loop_timer_arm(&w.loop, &w.tidy, 0);
}

static void on_tidy(struct timer *t)
{
    (void)t;
    while (w.retired_count > 0)
        redis_conn_free(w.retired[--w.retired_count]);
}

static const struct redis_addr *sentinel(unsigned i)
{
    return &w.url->hosts[i % w.url->host_count];
}

static void discover(void);

static void failed(const char *why)
{
    const struct redis_addr *s = sentinel(w.ask);

    if (!w.failing)
        log_warn("sentinel %s:%d: %s; asking the next one", s->host, s->port,
                 why);
    else
        log_debug("sentinel %s:%d: %s", s->host, s->port, why);
    w.failing = true;
    retire(w.query);
    w.query = NULL;
    retire(w.probe);
    w.probe = NULL;
    w.ask = (w.ask + 1) % w.url->host_count;
    w.busy = false;
    w.again = false;
    w.backoff_ms = w.backoff_ms == 0 ? BACKOFF_FIRST_MS : 2 * w.backoff_ms;
    if (w.backoff_ms > BACKOFF_MAX_MS)
        w.backoff_ms = BACKOFF_MAX_MS;
    loop_timer_arm(&w.loop, &w.retry, clock_now_ns() + MS_TO_NS(w.backoff_ms));
}

static void found(void)
{
    retire(w.probe);
    w.probe = NULL;
    redis_endpoint_set(w.cand_host, w.cand_port);
    if (w.failing)
        log_info("sentinel: master '%s' found at %s:%d", w.url->master,
                 w.cand_host, w.cand_port);
    w.failing = false;
    w.busy = false;
    w.backoff_ms = 0;
    if (w.again)
        discover();
}

static void on_role(void *ctx, const redisReply *r,
                    const struct redis_error *err)
{
    char why[REDIS_HOST_MAX + 224];

    (void)ctx;
    if (err != NULL && err->failure == REDIS_FAIL_STOPPING)
        return;
    if (err != NULL) {
        snprintf(why, sizeof why, "the master it names, %s:%d, fails: %s",
                 w.cand_host, w.cand_port, err->detail);
        failed(why);
        return;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[0]->str, "master") == 0) {
        found();
        return;
    }
    snprintf(why, sizeof why, "the master it names, %s:%d, is no master",
             w.cand_host, w.cand_port);
    failed(why);
}

static void on_addr(void *ctx, const redisReply *r,
                    const struct redis_error *err)
{
    const char *argv[] = {"ROLE"};
    size_t lens[] = {4};
    char *end;
    long port;

    (void)ctx;
    if (err != NULL && err->failure == REDIS_FAIL_STOPPING)
        return;
    if (err != NULL) {
        failed(err->detail);
        return;
    }
    if (r->type == REDIS_REPLY_NIL) {
        failed("it knows no master of that name");
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= sizeof w.cand_host) {
        failed("it answered something unknown");
        return;
    }
    port = strtol(r->element[1]->str, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        failed("it answered a bad port");
        return;
    }
    memcpy(w.cand_host, r->element[0]->str, r->element[0]->len);
    w.cand_host[r->element[0]->len] = '\0';
    w.cand_port = (int)port;
    retire(w.probe);
    w.probe =
        redis_conn_new_fixed(&w.loop, w.cand_host, w.cand_port, w.url->user,
                             w.url->password, NULL, NULL, NULL, NULL);
    if (w.probe == NULL) {
        failed("out of memory");
        return;
    }
    redis_conn_command(w.probe, 1, argv, lens, on_role, NULL);
}

/* Asks sentinel w.ask where the master is (one discovery at a time; one
 * asked for meanwhile runs after it). */
static void discover(void)
{
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", w.url->master};
    size_t lens[] = {8, 23, strlen(w.url->master)};

    if (atomic_load(&w.stop))
        return;
    if (w.busy) {
        w.again = true;
        return;
    }
    w.busy = true;
    w.again = false;
    loop_timer_disarm(&w.loop, &w.retry);
    if (w.query != NULL && w.query_at != w.ask) {
        retire(w.query);
        w.query = NULL;
    }
    if (w.query == NULL) {
        const struct redis_addr *s = sentinel(w.ask);
        w.query = redis_conn_new_fixed(&w.loop, s->host, s->port, NULL,
                                       w.cfg->sentinel_password, NULL, NULL,
                                       NULL, NULL);
        w.query_at = w.ask;
        if (w.query == NULL) {
            failed("out of memory");
            return;
        }
    }
    redis_conn_command(w.query, 3, argv, lens, on_addr, NULL);
}

static void on_retry(struct timer *t)
{
    (void)t;
    discover();
}

/* "+switch-master": "<name> <old-ip> <old-port> <new-ip> <new-port>". */
static void on_switch(void *ctx, const char *payload, size_t len)
{
    size_t n = strlen(w.url->master);

    (void)ctx;
    if (len > n && payload[n] == ' ' && memcmp(payload, w.url->master, n) == 0)
        discover();
}

static void on_subscribed(void *ctx)
{
    (void)ctx;
    w.sub_strikes = 0;
    discover();
}

static void subscribe_at(unsigned i)
{
    const struct redis_addr *s = sentinel(i);

    w.sub_at = i;
    w.sub_strikes = 0;
    w.sub = redis_conn_new_fixed(&w.loop, s->host, s->port, NULL,
                                 w.cfg->sentinel_password, SWITCH_CHANNEL,
                                 on_switch, on_subscribed, NULL);
    if (w.sub == NULL)
        log_error("sentinel: out of memory for the subscription");
}

static void on_health(struct timer *t)
{
    if (w.sub == NULL) {
        subscribe_at(w.sub_at);
    } else if (!redis_conn_up(w.sub) && ++w.sub_strikes >= 2) {
        const struct redis_addr *s = sentinel(w.sub_at);
        log_debug("sentinel %s:%d: down; subscribing on the next one", s->host,
                  s->port);
        retire(w.sub);
        subscribe_at((w.sub_at + 1) % w.url->host_count);
    }
    loop_timer_arm(&w.loop, t, clock_now_ns() + MS_TO_NS(HEALTH_MS));
}

static void on_wake(struct loop_watch *lw, uint32_t events)
{
    uint64_t v;

    (void)events;
    if (read(lw->fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug("sentinel: eventfd read: %s", strerror(errno));
    discover();
}

static void flush_all(void)
{
    if (w.query != NULL)
        redis_conn_flush(w.query);
    if (w.probe != NULL)
        redis_conn_flush(w.probe);
    if (w.sub != NULL)
        redis_conn_flush(w.sub);
}

static void *watcher_main(void *arg)
{
    (void)arg;
    discover();
    subscribe_at(0);
    loop_timer_arm(&w.loop, &w.health, clock_now_ns() + MS_TO_NS(HEALTH_MS));
    flush_all();
    while (!atomic_load(&w.stop)) {
        loop_run_once(&w.loop, -1);
        flush_all();
    }
    redis_endpoint_on_suspect(-1);
    retire(w.query);
    retire(w.probe);
    retire(w.sub);
    w.query = w.probe = w.sub = NULL;
    on_tidy(&w.tidy);
    loop_timer_disarm(&w.loop, &w.tidy);
    loop_timer_disarm(&w.loop, &w.retry);
    loop_timer_disarm(&w.loop, &w.health);
    return NULL;
}

int redis_sentinel_start(const struct config *cfg)
{
    if (!cfg->redis.is_sentinel)
        return 0;
    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    w.url = &cfg->redis;
    timer_init(&w.tidy, on_tidy);
    timer_init(&w.retry, on_retry);
    timer_init(&w.health, on_health);
    if (loop_init(&w.loop) < 0)
        return -1;
    w.wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w.wake.fn = on_wake;
    if (w.wake.fd < 0 || loop_watch_set(&w.loop, &w.wake, EPOLLIN) < 0) {
        log_error("sentinel: cannot set up: %s", strerror(errno));
        goto fail;
    }
    redis_endpoint_on_suspect(w.wake.fd);
    if (pthread_create(&w.thread, NULL, watcher_main, NULL) != 0) {
        log_error("sentinel: cannot start the watcher thread");
        redis_endpoint_on_suspect(-1);
        goto fail;
    }
    w.running = true;
    return 0;
fail:
    if (w.wake.fd >= 0)
        close(w.wake.fd);
    loop_free(&w.loop);
    return -1;
}

void redis_sentinel_stop(void)
{
    uint64_t one = 1;

    if (!w.running)
        return;
    atomic_store(&w.stop, true);
    if (write(w.wake.fd, &one, sizeof one) < 0)
        log_debug("sentinel: eventfd write: %s", strerror(errno));
    pthread_join(w.thread, NULL);
    w.running = false;
    loop_watch_set(&w.loop, &w.wake, 0);
    close(w.wake.fd);
    loop_free(&w.loop);
}
