/* route.c -- see route.h.
 *
 * Outside a cluster every call goes straight to the one connection. In a
 * cluster each command is kept (a copy of its arguments, in one
 * allocation) until its final answer, so that it can go again elsewhere.
 * A node's connection is made the first time a command goes there, and
 * made anew when the node's id has gone to another address; one replaced
 * is freed from a timer, never from inside its own callbacks. */
#include "route.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "redis/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIRECTS_MAX 5
#define TRYAGAIN_MS 20

struct route_node {
    struct redis_route *r;
    int id;
    struct redis_conn *conn;
    uint32_t generation; /* of the node id, when conn was made */
};

enum routed_kind { ROUTED_COMMAND, ROUTED_SCRIPT, ROUTED_ACKED };

/* A command in a cluster, until its final answer. */
struct routed {
    struct redis_route *r;
    struct routed *next; /* in the retry or the failed list */
    redis_done_fn *fn;
    void *ctx;
    enum routed_kind kind;
    struct redis_script *script;
    int nkeys, argc;
    const char **argv;
    size_t *lens;
    unsigned slot;
    int hops;             /* MOVED followed */
    int ask_node;         /* the node an ASK named (-1: none) */
    bool asking;          /* the next send goes behind an ASKING */
    uint64_t deadline_ns; /* TRYAGAIN goes again until then */
    int node;             /* command_at: the node; else -1 */
};

struct redis_route {
    struct loop *loop;
    struct redis_conn *single; /* not a cluster */
    struct route_node nodes[CLUSTER_NODES_MAX];
    redis_route_down_fn *on_down;
    void *down_ctx;
    struct routed *retry_head, *retry_tail; /* TRYAGAIN, oldest first */
    struct routed *failed_head, *failed_tail;
    struct timer retry;
    struct redis_conn *retired[CLUSTER_NODES_MAX];
    size_t retired_count;
    struct timer tidy;
};

static const struct config *conf;

void redis_routes_init(const struct config *cfg)
{
    conf = cfg;
    redis_conns_init(cfg);
}

static void push(struct routed **head, struct routed **tail, struct routed *k)
{
    k->next = NULL;
    if (*tail != NULL)
        (*tail)->next = k;
    else
        *head = k;
    *tail = k;
}

static void on_single_down(void *ctx)
{
    struct redis_route *r = ctx;

    if (r->on_down != NULL)
        r->on_down(r->down_ctx, -1);
}

static void retire(struct redis_route *r, struct redis_conn *c)
{
    redis_conn_close(c);
    r->retired[r->retired_count++] = c;
    loop_timer_arm(r->loop, &r->tidy, 0);
}

/* A node's connection went down (or failed to connect again). One to a
 * node that is no master any more is dropped for good: made again only if
 * a command goes there. */
static void on_node_down(void *ctx)
{
    struct route_node *n = ctx;
    struct redis_route *r = n->r;

    redis_cluster_suspect();
    if (!cluster_node_is_master(n->id) &&
        r->retired_count < CLUSTER_NODES_MAX) {
        retire(r, n->conn);
        n->conn = NULL;
    }
    if (r->on_down != NULL)
        r->on_down(r->down_ctx, n->id);
}

static void on_retry(struct timer *t);

/* ---- the connections ---------------------------------------------------*/

static void on_tidy(struct timer *t)
{
    struct redis_route *r =
        (struct redis_route *)((char *)t - offsetof(struct redis_route, tidy));

    while (r->retired_count > 0)
        redis_conn_free(r->retired[--r->retired_count]);
}

/* The connection to node id, made when there is none yet or the id has
 * another address now; NULL when the id has none (or out of memory). */
static struct redis_conn *node_conn(struct redis_route *r, int id)
{
    struct route_node *n;
    char host[REDIS_HOST_MAX];
    int port;
    uint32_t gen;

    if (id < 0 || id >= CLUSTER_NODES_MAX)
        return NULL;
    n = &r->nodes[id];
    if (n->conn != NULL && n->generation == cluster_node_generation(id))
        return n->conn;
    if (!cluster_node_addr(id, host, sizeof host, &port, &gen))
        return NULL;
    if (n->conn != NULL) {
        if (r->retired_count == CLUSTER_NODES_MAX)
            return n->conn; /* replaced next turn, once tidy has run */
        retire(r, n->conn);
    }
    n->conn = redis_conn_new_node(r->loop, host, port);
    n->generation = gen;
    n->r = r;
    n->id = id;
    if (n->conn != NULL)
        redis_conn_on_down(n->conn, on_node_down, n);
    return n->conn;
}

struct redis_route *redis_route_new(struct loop *l)
{
    struct redis_route *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->loop = l;
    timer_init(&r->tidy, on_tidy);
    timer_init(&r->retry, on_retry);
    if (!redis_cluster_enabled()) {
        r->single = redis_conn_new(l);
        if (r->single == NULL) {
            free(r);
            return NULL;
        }
        redis_conn_on_down(r->single, on_single_down, r);
    }
    return r;
}

void redis_route_on_down(struct redis_route *r, redis_route_down_fn *fn,
                         void *ctx)
{
    r->on_down = fn;
    r->down_ctx = ctx;
}

/* ---- commands in a cluster ---------------------------------------------*/

static void on_routed(void *ctx, const redisReply *reply,
                      const struct redis_error *err);

static void fail(struct routed *k)
{
    push(&k->r->failed_head, &k->r->failed_tail, k);
}

static void noop(void *ctx, const redisReply *r, const struct redis_error *e)
{
    (void)ctx;
    (void)r;
    (void)e;
}

/* Sends k to node id (behind an ASKING when k->asking). */
static void send_to(struct routed *k, int id)
{
    static const char *const asking[] = {"ASKING"};
    static const size_t asking_len[] = {6};
    struct redis_conn *c = node_conn(k->r, id);

    if (c == NULL) {
        fail(k);
        return;
    }
    if (k->asking)
        redis_conn_command(c, 1, (const char **)asking, asking_len, noop, NULL);
    k->asking = false;
    switch (k->kind) {
    case ROUTED_COMMAND:
        redis_conn_command(c, k->argc, k->argv, k->lens, on_routed, k);
        break;
    case ROUTED_SCRIPT:
        redis_conn_script(c, k->script, k->nkeys, k->argc, k->argv, k->lens,
                          on_routed, k);
        break;
    case ROUTED_ACKED:
        redis_conn_script_acked(c, k->script, k->nkeys, k->argc, k->argv,
                                k->lens, on_routed, k);
        break;
    }
}

static void send_routed(struct routed *k)
{
    send_to(k, k->node >= 0 ? k->node : cluster_slot_node(k->slot));
}

/* "MOVED <slot> <host>:<port>" (or ASK): into slot, host and port. */
static bool parse_redirect(const char *detail, unsigned *slot, char *host,
                           size_t len, int *port)
{
    const char *p = strchr(detail, ' '), *h, *colon;
    char *end;
    unsigned long s;
    long pt;

    if (p == NULL || p[1] < '0' || p[1] > '9')
        return false;
    s = strtoul(p + 1, &end, 10);
    if (*end != ' ' || s >= CLUSTER_SLOTS)
        return false;
    h = end + 1;
    colon = strrchr(h, ':');
    if (colon == NULL || colon == h || (size_t)(colon - h) >= len ||
        colon[1] < '0' || colon[1] > '9')
        return false;
    pt = strtol(colon + 1, &end, 10);
    if (*end != '\0' || pt < 1 || pt > 65535)
        return false;
    memcpy(host, h, (size_t)(colon - h));
    host[colon - h] = '\0';
    *slot = (unsigned)s;
    *port = (int)pt;
    return true;
}

/* Acts on a redirect in err. Returns true when k went on (or waits to). */
static bool redirected(struct routed *k, const struct redis_error *err)
{
    char host[REDIS_HOST_MAX];
    unsigned slot;
    int port;
    bool ask = strncmp(err->detail, "ASK ", 4) == 0;

    if (k->node >= 0)
        return false;
    if (strncmp(err->detail, "TRYAGAIN", 8) == 0) {
        if (clock_now_ns() + MS_TO_NS(TRYAGAIN_MS) >= k->deadline_ns)
            return false;
        push(&k->r->retry_head, &k->r->retry_tail, k);
        if (k->r->retry_head == k)
            loop_timer_arm(k->r->loop, &k->r->retry,
                           clock_now_ns() + MS_TO_NS(TRYAGAIN_MS));
        return true;
    }
    if ((!ask && strncmp(err->detail, "MOVED ", 6) != 0) ||
        !parse_redirect(err->detail, &slot, host, sizeof host, &port))
        return false;
    /* A slot migrates for as long as it takes (bounded by the deadline);
     * MOVED going round in circles is a map that does not settle. */
    if (ask ? clock_now_ns() >= k->deadline_ns : k->hops >= REDIRECTS_MAX)
        return false;
    metrics_redis_redirect(ask);
    if (ask) {
        k->ask_node = cluster_node_id(host, port);
        if (k->ask_node < 0)
            return false;
        k->asking = true;
        send_to(k, k->ask_node);
    } else {
        k->hops++;
        k->ask_node = -1;
        cluster_moved(slot, host, port);
        k->slot = slot;
        send_routed(k);
    }
    return true;
}

static void on_routed(void *ctx, const redisReply *reply,
                      const struct redis_error *err)
{
    struct routed *k = ctx;

    if (err != NULL) {
        if (err->failure == REDIS_FAIL_REPLY && redirected(k, err))
            return;
        if (err->failure == REDIS_FAIL_LOST ||
            err->failure == REDIS_FAIL_TIMEOUT ||
            (err->failure == REDIS_FAIL_REPLY &&
             strncmp(err->detail, "CLUSTERDOWN", 11) == 0))
            redis_cluster_suspect();
    }
    k->fn(k->ctx, reply, err);
    free(k);
}

static void on_retry(struct timer *t)
{
    struct redis_route *r =
        (struct redis_route *)((char *)t - offsetof(struct redis_route, retry));
    struct routed *k = r->retry_head;

    r->retry_head = r->retry_tail = NULL;
    while (k != NULL) {
        struct routed *next = k->next;
        /* Half migrated: where the ASK sent it, until the slot has moved
         * (then the ASKING is harmless) or a MOVED says otherwise. */
        if (k->ask_node >= 0) {
            k->asking = true;
            send_to(k, k->ask_node);
        } else {
            send_routed(k);
        }
        k = next;
    }
}

/* A copy of the command, its arguments with it; NULL when out of memory
 * (fn has been told). */
static struct routed *routed_new(struct redis_route *r, enum routed_kind kind,
                                 int argc, const char **argv,
                                 const size_t *lens, redis_done_fn *fn,
                                 void *ctx)
{
    size_t bytes = 0;
    struct routed *k;
    char *data;

    for (int i = 0; i < argc; i++)
        bytes += lens[i];
    k = calloc(1, sizeof *k + (size_t)argc * (sizeof(char *) + sizeof(size_t)) +
                      bytes);
    if (k == NULL) {
        struct redis_error e = {REDIS_FAIL_DOWN, "out of memory"};
        fn(ctx, NULL, &e);
        return NULL;
    }
    k->r = r;
    k->fn = fn;
    k->ctx = ctx;
    k->kind = kind;
    k->argc = argc;
    k->argv = (const char **)(k + 1);
    k->lens = (size_t *)(k->argv + argc);
    data = (char *)(k->lens + argc);
    for (int i = 0; i < argc; i++) {
        memcpy(data, argv[i], lens[i]);
        k->argv[i] = data;
        k->lens[i] = lens[i];
        data += lens[i];
    }
    k->node = -1;
    k->ask_node = -1;
    k->deadline_ns = clock_now_ns() + MS_TO_NS(conf->redis_timeout_ms);
    return k;
}

static void route_keyed(struct redis_route *r, enum routed_kind kind,
                        struct redis_script *s, int nkeys, int key, int argc,
                        const char **argv, const size_t *lens,
                        redis_done_fn *fn, void *ctx)
{
    struct routed *k = routed_new(r, kind, argc, argv, lens, fn, ctx);

    if (k == NULL)
        return;
    k->script = s;
    k->nkeys = nkeys;
    k->slot = cluster_key_slot(argv[key], lens[key]);
    send_routed(k);
}

/* ---- the calls ---------------------------------------------------------*/

void redis_route_script(struct redis_route *r, struct redis_script *s,
                        int nkeys, int argc, const char **argv,
                        const size_t *lens, redis_done_fn *fn, void *ctx)
{
    if (r->single != NULL)
        redis_conn_script(r->single, s, nkeys, argc, argv, lens, fn, ctx);
    else
        route_keyed(r, ROUTED_SCRIPT, s, nkeys, 0, argc, argv, lens, fn, ctx);
}

void redis_route_script_acked(struct redis_route *r, struct redis_script *s,
                              int nkeys, int argc, const char **argv,
                              const size_t *lens, redis_done_fn *fn, void *ctx)
{
    if (r->single != NULL)
        redis_conn_script_acked(r->single, s, nkeys, argc, argv, lens, fn, ctx);
    else
        route_keyed(r, ROUTED_ACKED, s, nkeys, 0, argc, argv, lens, fn, ctx);
}

void redis_route_command(struct redis_route *r, int argc, const char **argv,
                         const size_t *lens, redis_done_fn *fn, void *ctx)
{
    if (r->single != NULL)
        redis_conn_command(r->single, argc, argv, lens, fn, ctx);
    else
        route_keyed(r, ROUTED_COMMAND, NULL, 0, 1, argc, argv, lens, fn, ctx);
}

bool redis_route_serves(int node, const char *key, size_t len)
{
    return node < 0 || cluster_slot_node(cluster_key_slot(key, len)) == node;
}

size_t redis_route_masters(int *ids, size_t max)
{
    if (!redis_cluster_enabled()) {
        if (max == 0)
            return 0;
        ids[0] = 0;
        return 1;
    }
    return cluster_masters(ids, max);
}

void redis_route_command_at(struct redis_route *r, int id, int argc,
                            const char **argv, const size_t *lens,
                            redis_done_fn *fn, void *ctx)
{
    struct routed *k;

    if (r->single != NULL) {
        redis_conn_command(r->single, argc, argv, lens, fn, ctx);
        return;
    }
    k = routed_new(r, ROUTED_COMMAND, argc, argv, lens, fn, ctx);
    if (k == NULL)
        return;
    k->node = id;
    send_routed(k);
}

void redis_route_flush(struct redis_route *r)
{
    if (r->single != NULL) {
        redis_conn_flush(r->single);
        return;
    }
    while (r->failed_head != NULL) {
        struct routed *k = r->failed_head;
        struct redis_error e = {REDIS_FAIL_DOWN, ""};

        r->failed_head = k->next;
        if (r->failed_head == NULL)
            r->failed_tail = NULL;
        snprintf(e.detail, sizeof e.detail, "%s",
                 k->node >= 0 || cluster_slot_node(k->slot) >= 0
                     ? "no connection to the Redis Cluster node"
                     : "no Redis Cluster master serves the slot (yet)");
        redis_cluster_suspect();
        k->fn(k->ctx, NULL, &e);
        free(k);
    }
    for (int i = 0; i < CLUSTER_NODES_MAX; i++)
        if (r->nodes[i].conn != NULL)
            redis_conn_flush(r->nodes[i].conn);
}

/* ---- the end -----------------------------------------------------------*/

void redis_route_close(struct redis_route *r)
{
    if (r == NULL)
        return;
    redis_conn_close(r->single);
    for (int i = 0; i < CLUSTER_NODES_MAX; i++)
        redis_conn_close(r->nodes[i].conn);
}

void redis_route_free(struct redis_route *r)
{
    if (r == NULL)
        return;
    redis_route_close(r);
    redis_conn_free(r->single);
    r->single = NULL;
    for (int i = 0; i < CLUSTER_NODES_MAX; i++) {
        redis_conn_free(r->nodes[i].conn);
        r->nodes[i].conn = NULL;
    }
    /* What waits to go again fails, as everything in flight has. */
    loop_timer_disarm(r->loop, &r->retry);
    while (r->retry_head != NULL) {
        struct routed *k = r->retry_head;
        r->retry_head = k->next;
        fail(k);
    }
    redis_route_flush(r);
    loop_timer_disarm(r->loop, &r->tidy);
    on_tidy(&r->tidy);
    free(r);
}
