/* cluster.c -- see cluster.h.
 *
 * The watcher (on a thread of its own, watch.h) asks one node at a time:
 * the seeds of the URL first, then the masters of the last map, in turn;
 * the connection it asks on stays open while it answers. */
#include "cluster.h"

#include "clock.h"
#include "endpoint.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "redis/conn.h"
#include "redis/watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define REFRESH_MS 1000
#define BACKOFF_FIRST_MS 50
#define BACKOFF_MAX_MS 1000

struct node {
    char host[REDIS_HOST_MAX];
    int port;
    bool used; /* has an address */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct node nodes[CLUSTER_NODES_MAX]; /* under mu */
static int masters[CLUSTER_NODES_MAX];       /* under mu */
static size_t master_count;                  /* under mu */
static _Atomic signed char slot_node[CLUSTER_SLOTS];
/* Changes when the id goes to another address. */
static _Atomic uint32_t node_generation[CLUSTER_NODES_MAX];
static bool enabled;
static atomic_bool serves_all;

struct watcher {
    const struct redis_url *url;
    struct redis_watch t;      /* its wake-up: read the map again */
    struct loop_watch suspect; /* eventfd: the subscriber's node is lost */
    struct redis_conn *query;
    char query_host[REDIS_HOST_MAX];
    unsigned ask; /* the candidate asked next */
    struct timer refresh;
    bool busy, again;
    uint64_t backoff_ms;
    bool failing;      /* warned about a failure, no map since */
    unsigned failures; /* in a row: every candidate failed, Redis is down */
    bool complete;     /* the last map served every slot */
    bool lost;         /* the subscriber's node was lost */
    unsigned sub_turn; /* which master the subscriber goes to */
};

static struct watcher w;

/* ---- slots -------------------------------------------------------------*/

static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)(crc ^ ((uint16_t)(unsigned char)buf[i] << 8));
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned cluster_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len), *close;

    if (open != NULL) {
        close = memchr(open + 1, '}', len - (size_t)(open + 1 - key));
        if (close != NULL && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) &
                   (CLUSTER_SLOTS - 1);
    }
    return crc16(key, len) & (CLUSTER_SLOTS - 1);
}

bool redis_cluster_enabled(void)
{
    return enabled;
}

int cluster_slot_node(unsigned slot)
{
    return atomic_load_explicit(&slot_node[slot & (CLUSTER_SLOTS - 1)],
                                memory_order_relaxed);
}

uint32_t cluster_node_generation(int id)
{
    return id >= 0 && id < CLUSTER_NODES_MAX
               ? atomic_load_explicit(&node_generation[id],
                                      memory_order_acquire)
               : 0;
}

bool cluster_node_addr(int id, char *host, size_t len, int *port,
                       uint32_t *generation)
{
    bool used;

    if (id < 0 || id >= CLUSTER_NODES_MAX)
        return false;
    pthread_mutex_lock(&mu);
    used = nodes[id].used;
    snprintf(host, len, "%s", nodes[id].host);
    *port = nodes[id].port;
    *generation = atomic_load(&node_generation[id]);
    pthread_mutex_unlock(&mu);
    return used;
}

/* Under mu. An id no slot refers to may be given to another address. */
static int node_id_locked(const char *host, int port)
{
    int free_id = -1;
    bool referenced[CLUSTER_NODES_MAX] = {false};

    for (int i = 0; i < CLUSTER_NODES_MAX; i++) {
        if (nodes[i].used && nodes[i].port == port &&
            strcmp(nodes[i].host, host) == 0)
            return i;
        if (!nodes[i].used && free_id < 0)
            free_id = i;
    }
    if (free_id < 0) {
        for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
            int id = cluster_slot_node(s);
            if (id >= 0)
                referenced[id] = true;
        }
        for (int i = 0; i < CLUSTER_NODES_MAX && free_id < 0; i++)
            if (!referenced[i])
                free_id = i;
        if (free_id < 0)
            return -1;
    }
    snprintf(nodes[free_id].host, sizeof nodes[free_id].host, "%s", host);
    nodes[free_id].port = port;
    nodes[free_id].used = true;
    atomic_fetch_add_explicit(&node_generation[free_id], 1,
                              memory_order_release);
    return free_id;
}

int cluster_node_id(const char *host, int port)
{
    int id;

    pthread_mutex_lock(&mu);
    id = node_id_locked(host, port);
    pthread_mutex_unlock(&mu);
    if (id < 0)
        log_error("redis: more than %d cluster nodes in use",
                  CLUSTER_NODES_MAX);
    return id;
}

static void wake_watcher(void)
{
    redis_watch_wake(&w.t);
}

void cluster_moved(unsigned slot, const char *host, int port)
{
    int id = cluster_node_id(host, port);

    if (id >= 0)
        atomic_store_explicit(&slot_node[slot & (CLUSTER_SLOTS - 1)],
                              (signed char)id, memory_order_relaxed);
    wake_watcher();
}

void redis_cluster_suspect(void)
{
    wake_watcher();
}

bool cluster_node_is_master(int id)
{
    bool is = false;

    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < master_count && !is; i++)
        is = masters[i] == id;
    pthread_mutex_unlock(&mu);
    return is;
}

size_t cluster_masters(int *ids, size_t max)
{
    size_t n;

    pthread_mutex_lock(&mu);
    n = master_count < max ? master_count : max;
    memcpy(ids, masters, n * sizeof *ids);
    pthread_mutex_unlock(&mu);
    return n;
}

bool cluster_serves_all(void)
{
    return atomic_load(&serves_all);
}

void cluster_describe(char *buf, size_t len)
{
    size_t off;

    pthread_mutex_lock(&mu);
    off = (size_t)snprintf(buf, len, "cluster:");
    for (size_t i = 0; i < master_count && off < len; i++) {
        const struct node *n = &nodes[masters[i]];
        off += (size_t)snprintf(buf + off, len - off,
                                strchr(n->host, ':') ? " [%s]:%d" : " %s:%d",
                                n->host, n->port);
    }
    pthread_mutex_unlock(&mu);
}

/* ---- reading the map ---------------------------------------------------*/

static void retire(struct redis_conn *c)
{
    redis_watch_retire(&w.t, c);
}

/* Candidate i: a seed of the URL, or a master of the last map. */
static bool candidate(unsigned i, char *host, size_t len, int *port)
{
    size_t n;
    int ids[CLUSTER_NODES_MAX];
    uint32_t gen;

    n = cluster_masters(ids, CLUSTER_NODES_MAX);
    i %= w.url->host_count + (unsigned)n;
    if (i < w.url->host_count) {
        snprintf(host, len, "%s", w.url->hosts[i].host);
        *port = w.url->hosts[i].port;
        return true;
    }
    return cluster_node_addr(ids[i - w.url->host_count], host, len, port, &gen);
}

static void read_map(void);

static void failed(const char *why)
{
    char host[REDIS_HOST_MAX];
    int port = 0, ids[CLUSTER_NODES_MAX];

    candidate(w.ask, host, sizeof host, &port);
    if (!w.failing)
        log_warn("cluster: node %s:%d: %s; asking another", host, port, why);
    else
        log_debug("cluster: node %s:%d: %s", host, port, why);
    w.failing = true;
    /* Every candidate failed in turn: no node answers. */
    if (++w.failures >
        w.url->host_count + cluster_masters(ids, CLUSTER_NODES_MAX))
        metrics_set_redis_up(false);
    retire(w.query);
    w.query = NULL;
    w.ask++;
    w.busy = false;
    w.again = false;
    backoff_next(&w.backoff_ms, BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
    loop_timer_arm(&w.t.loop, &w.refresh,
                   clock_now_ns() + MS_TO_NS(w.backoff_ms));
}

/* The subscriber goes to a master of the map: the one it is at while that
 * stays a master and was not lost, else the next. */
static void place_subscriber(void)
{
    int ids[CLUSTER_NODES_MAX], port;
    size_t n = cluster_masters(ids, CLUSTER_NODES_MAX);
    struct redis_endpoint e;
    char host[REDIS_HOST_MAX];
    uint32_t gen;
    bool lost = w.lost;

    if (n == 0)
        return;
    w.lost = false;
    if (!lost && redis_endpoint_get(&e))
        for (size_t i = 0; i < n; i++)
            if (cluster_node_addr(ids[i], host, sizeof host, &port, &gen) &&
                port == e.port && strcmp(host, e.host) == 0)
                return; /* still a master */
    if (lost)
        w.sub_turn++;
    if (cluster_node_addr(ids[w.sub_turn % n], host, sizeof host, &port, &gen))
        redis_endpoint_set(host, port);
}

/* One slot range of CLUSTER SLOTS: start, end, then the master first
 * ({host, port, id, ...}); an empty host is the node asked. */
static bool take_range(const redisReply *e, signed char *next)
{
    const redisReply *m;
    const char *host;
    int id;

    if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
        e->element[0]->type != REDIS_REPLY_INTEGER ||
        e->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[2]->type != REDIS_REPLY_ARRAY)
        return false;
    m = e->element[2];
    if (m->elements < 2 || m->element[0]->type != REDIS_REPLY_STRING ||
        m->element[1]->type != REDIS_REPLY_INTEGER ||
        e->element[0]->integer < 0 || e->element[1]->integer >= CLUSTER_SLOTS ||
        e->element[0]->integer > e->element[1]->integer ||
        m->element[1]->integer < 1 || m->element[1]->integer > 65535)
        return false;
    host = m->element[0]->str;
    if (host[0] == '\0' || strcmp(host, "?") == 0)
        host = w.query_host;
    id = node_id_locked(host, (int)m->element[1]->integer);
    if (id < 0)
        return false;
    for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
        next[s] = (signed char)id;
    return true;
}

static void apply(const redisReply *r)
{
    static signed char next[CLUSTER_SLOTS];
    bool seen[CLUSTER_NODES_MAX] = {false}, bad = false;
    size_t served = 0, moved = 0, n = 0;

    memset(next, -1, sizeof next);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < r->elements; i++)
        if (!take_range(r->element[i], next))
            bad = true;
    for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
        if (next[s] >= 0) {
            served++;
            if (!seen[next[s]]) {
                seen[next[s]] = true;
                masters[n++] = next[s];
            }
        }
        if (atomic_exchange_explicit(&slot_node[s], next[s],
                                     memory_order_relaxed) != next[s])
            moved++;
    }
    master_count = n;
    pthread_mutex_unlock(&mu);
    metrics_redis_cluster_map((unsigned)n);
    if (bad)
        log_warn("cluster: CLUSTER SLOTS had entries of an unknown shape");
    if (served < CLUSTER_SLOTS && w.complete)
        log_warn("cluster: %zu of %d slots have no master (names there get "
                 "503)",
                 CLUSTER_SLOTS - served, CLUSTER_SLOTS);
    else if (served == CLUSTER_SLOTS && (!w.complete || moved > 0))
        log_info("cluster: %zu masters serve all %d slots%s", n, CLUSTER_SLOTS,
                 w.failing ? " again" : "");
    w.complete = served == CLUSTER_SLOTS;
    atomic_store(&serves_all, w.complete);
    metrics_set_redis_up(w.complete);
    w.failing = false;
    w.failures = 0;
    place_subscriber();
}

static void on_slots(void *ctx, const redisReply *r,
                     const struct redis_error *err)
{
    (void)ctx;
    if (err != NULL) {
        if (err->failure != REDIS_FAIL_STOPPING)
            failed(err->detail);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
        failed("CLUSTER SLOTS gave no slot ranges");
        return;
    }
    apply(r);
    w.backoff_ms = 0;
    w.busy = false;
    if (w.again) {
        w.again = false;
        read_map();
    }
}

static void read_map(void)
{
    static const char *const argv[] = {"CLUSTER", "SLOTS"};
    static const size_t lens[] = {7, 5};
    int port;

    if (w.busy) {
        w.again = true;
        return;
    }
    loop_timer_arm(&w.t.loop, &w.refresh,
                   clock_now_ns() + MS_TO_NS(REFRESH_MS));
    if (w.query == NULL) {
        if (!candidate(w.ask, w.query_host, sizeof w.query_host, &port)) {
            w.ask++;
            return;
        }
        w.query =
            redis_conn_new_fixed(&w.t.loop, w.query_host, port, w.url->user,
                                 w.url->password, NULL, NULL, NULL, NULL);
        if (w.query == NULL)
            return;
    }
    w.busy = true;
    redis_conn_command(w.query, 2, (const char **)argv, lens, on_slots, NULL);
}

static void on_refresh(struct timer *t)
{
    (void)t;
    read_map();
}

static void on_suspect(struct loop_watch *lw, uint32_t events)
{
    uint64_t v;

    (void)events;
    if (read(lw->fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug("cluster: eventfd read: %s", strerror(errno));
    w.lost = true;
    read_map();
}

static void turn(void)
{
    if (w.query != NULL)
        redis_conn_flush(w.query);
}

static void end(void)
{
    redis_endpoint_on_suspect(-1);
    retire(w.query);
    w.query = NULL;
    loop_timer_disarm(&w.t.loop, &w.refresh);
}

static const struct redis_watch_ops ops = {read_map, turn, read_map, end};

int redis_cluster_start(const struct config *cfg)
{
    if (!cfg->redis.is_cluster)
        return 0;
    enabled = true;
    for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
        atomic_store(&slot_node[s], -1);
    memset(&w, 0, sizeof w);
    w.url = &cfg->redis;
    timer_init(&w.refresh, on_refresh);
    if (redis_watch_init(&w.t, "cluster", &ops) < 0)
        return -1;
    w.suspect.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w.suspect.fn = on_suspect;
    if (w.suspect.fd < 0 ||
        loop_watch_set(&w.t.loop, &w.suspect, EPOLLIN) < 0) {
        log_error("cluster: cannot set up: %s", strerror(errno));
        if (w.suspect.fd >= 0)
            close(w.suspect.fd);
        redis_watch_discard(&w.t);
        return -1;
    }
    redis_endpoint_on_suspect(w.suspect.fd);
    if (redis_watch_run(&w.t) < 0) {
        redis_endpoint_on_suspect(-1);
        close(w.suspect.fd);
        return -1;
    }
    return 0;
}

void redis_cluster_stop(void)
{
    if (!atomic_load(&w.t.running))
        return;
    redis_watch_stop(&w.t);
    close(w.suspect.fd);
}
