/* sentinel.c -- see sentinel.h.
 *
 * Connections to sentinels and candidate masters are conn.h's connections
 * to a fixed address, on the watcher's thread (watch.h), which retires
 * those it is done with. */
#include "sentinel.h"

#include "clock.h"
#include "endpoint.h"
#include "log.h"
#include "loop.h"
#include "redis/conn.h"
#include "redis/watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 1000
/* How often the subscription's connection is looked at; down at two looks
 * in a row, it moves to the next sentinel. */
#define HEALTH_MS 500
#define SWITCH_CHANNEL "+switch-master"

struct watcher {
    const struct config *cfg;
    const struct redis_url *url;
    struct redis_watch t; /* its wake-up: a suspect master */
    unsigned ask;         /* the sentinel asked next */
    struct redis_conn *query;
    unsigned query_at;
    struct redis_conn *probe; /* to the candidate, for ROLE */
    char cand_host[REDIS_HOST_MAX];
    int cand_port;
    struct redis_conn *sub; /* SUBSCRIBE +switch-master */
    unsigned sub_at, sub_strikes;
    struct timer retry;  /* discovery again after a failure */
    struct timer health; /* looks at the subscription */
    bool busy, again;    /* a discovery runs; another is due after it */
    uint64_t backoff_ms;
    bool failing; /* warned about a failure, not yet found a master */
};

static struct watcher w;

static void retire(struct redis_conn *c)
{
    redis_watch_retire(&w.t, c);
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
    backoff_next(&w.backoff_ms, BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
    loop_timer_arm(&w.t.loop, &w.retry,
                   clock_now_ns() + MS_TO_NS(w.backoff_ms));
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
        redis_conn_new_fixed(&w.t.loop, w.cand_host, w.cand_port, w.url->user,
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

    if (redis_watch_stopping(&w.t))
        return;
    if (w.busy) {
        w.again = true;
        return;
    }
    w.busy = true;
    w.again = false;
    loop_timer_disarm(&w.t.loop, &w.retry);
    if (w.query != NULL && w.query_at != w.ask) {
        retire(w.query);
        w.query = NULL;
    }
    if (w.query == NULL) {
        const struct redis_addr *s = sentinel(w.ask);
        w.query = redis_conn_new_fixed(&w.t.loop, s->host, s->port, NULL,
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
    w.sub = redis_conn_new_fixed(&w.t.loop, s->host, s->port, NULL,
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
    loop_timer_arm(&w.t.loop, t, clock_now_ns() + MS_TO_NS(HEALTH_MS));
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

static void begin(void)
{
    discover();
    subscribe_at(0);
    loop_timer_arm(&w.t.loop, &w.health, clock_now_ns() + MS_TO_NS(HEALTH_MS));
}

static void end(void)
{
    redis_endpoint_on_suspect(-1);
    retire(w.query);
    retire(w.probe);
    retire(w.sub);
    w.query = w.probe = w.sub = NULL;
    loop_timer_disarm(&w.t.loop, &w.retry);
    loop_timer_disarm(&w.t.loop, &w.health);
}

static const struct redis_watch_ops ops = {begin, flush_all, discover, end};

int redis_sentinel_start(const struct config *cfg)
{
    if (!cfg->redis.is_sentinel)
        return 0;
    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    w.url = &cfg->redis;
    timer_init(&w.retry, on_retry);
    timer_init(&w.health, on_health);
    if (redis_watch_init(&w.t, "sentinel", &ops) < 0)
        return -1;
    redis_endpoint_on_suspect(redis_watch_fd(&w.t));
    if (redis_watch_run(&w.t) < 0) {
        redis_endpoint_on_suspect(-1);
        return -1;
    }
    return 0;
}

void redis_sentinel_stop(void)
{
    redis_watch_stop(&w.t);
}
