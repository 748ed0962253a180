/* conn.c -- see conn.h.
 *
 * hiredis's async context is driven by the worker's loop through the hooks
 * below (an adapter, as hiredis's adapters/ has for libevent and libev):
 * reads are watched in the loop's epoll set; writes are only noted, and the
 * buffer leaves in redis_conn_flush at the end of the turn, so every command
 * of the turn shares one write. The connection keeps its own list of the
 * commands in flight, in the order hiredis will answer them, for their
 * deadlines and for re-sending a script on NOSCRIPT. */
#include "conn.h"

#include "clock.h"
#include "endpoint.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <hiredis/async.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BACKOFF_FIRST_MS 100
/* Short: the service must serve again soon after Redis is back. */
#define BACKOFF_MAX_MS 500
#define CHANNEL_MAX 128

struct redis_cmd {
    struct redis_cmd *next;
    redis_done_fn *fn;
    void *ctx;
    uint64_t deadline_ns;
    /* For a script: what EVAL needs when Redis has forgotten the SHA1. */
    struct redis_script *script;
    int argc; /* of argv: EVALSHA sha nkeys args... */
    const char **argv;
    size_t *lens;
    enum redis_failure failure; /* failed at once: why */
};

struct redis_conn {
    struct loop *loop;
    redisAsyncContext *ac; /* NULL while down */
    struct loop_watch watch;
    bool want_write; /* the output buffer holds bytes */
    bool in_flush;
    bool closing;                  /* redis_conn_free: no reconnect */
    struct redis_cmd *head, *tail; /* in flight, oldest first */
    struct redis_cmd *failed_head, *failed_tail; /* failed at once */
    struct timer deadline;                       /* the oldest command's */
    struct timer subscribe; /* the SUBSCRIBE's, until confirmed */
    struct timer reconnect;
    uint64_t backoff_ms;
    enum redis_failure teardown; /* why we are dropping the connection */
    bool reports_up;             /* the one lockservice_redis_up follows */
    char error[160];             /* why it went down last */
    /* Subscriber only. */
    bool subscriber;
    char channel[CHANNEL_MAX];
    redis_message_fn *on_message;
    redis_subscribed_fn *on_subscribed;
    void *sub_ctx;
    void (*on_down)(void *ctx);
    void *down_ctx;
    /* Fixed address (a sentinel, a candidate master), else the
     * endpoint's. */
    bool fixed;
    /* A cluster node's: at a fixed address, but serving (handshake,
     * scripts, metrics) like a connection to the endpoint. */
    bool node;
    bool node_down; /* said so in the log */
    char fixed_host[REDIS_HOST_MAX];
    int fixed_port;
    const char *fixed_user, *fixed_password; /* borrowed */
    /* Following a discovered endpoint: the generation connected to, and
     * the eventfd the endpoint writes when it moves (-1: none). */
    uint64_t generation;
    struct loop_watch moved;
};

#define SCRIPTS_MAX 32

static const struct config *conf;
static struct redis_script *scripts[SCRIPTS_MAX];
static size_t script_count;
static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static bool outage; /* a connection is down and none came back */
static char eviction_policy[32];

void redis_conns_init(const struct config *cfg)
{
    conf = cfg;
    redis_endpoint_init(cfg);
}

int redis_script_register(struct redis_script *s)
{
    if (script_count == SCRIPTS_MAX)
        return -1;
    scripts[script_count++] = s;
    return 0;
}

/* Keeps detail printable: it ends up in logs and problem details. */
static void set_detail(char *dst, size_t len, const char *src, size_t n)
{
    size_t i;

    if (n >= len)
        n = len - 1;
    for (i = 0; i < n; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[n] = '\0';
}

/* ---- outage and configuration state, shared by all connections --------*/

/* A connection to a fixed address (a sentinel) is not the Redis the
 * service serves from: its ups and downs are no outage. A cluster node's
 * are only that node's: each connection says so once per outage. */
static void outage_begins(struct redis_conn *c, const char *error)
{
    bool first;

    if (c->fixed)
        return;
    if (c->node) {
        if (!c->node_down)
            log_warn("redis: cluster node %s:%d: %s; the names it serves get "
                     "503 until it, or a replica taking over, answers",
                     c->fixed_host, c->fixed_port, error);
        c->node_down = true;
        return;
    }
    pthread_mutex_lock(&state_mu);
    first = !outage;
    outage = true;
    pthread_mutex_unlock(&state_mu);
    if (first)
        log_warn("redis: %s; answering 503 until it is back", error);
}

static void outage_ends(struct redis_conn *c)
{
    bool was;

    if (c->fixed)
        return;
    if (c->node) {
        if (c->node_down)
            log_info("redis: cluster node %s:%d answers again", c->fixed_host,
                     c->fixed_port);
        c->node_down = false;
        return;
    }
    pthread_mutex_lock(&state_mu);
    was = outage;
    outage = false;
    pthread_mutex_unlock(&state_mu);
    if (was)
        log_warn("redis: reachable again");
}

static bool policy_unsafe(const char *policy)
{
    return strncmp(policy, "allkeys-", 8) == 0 ||
           strncmp(policy, "volatile-", 9) == 0;
}

bool redis_eviction_unsafe(char *policy, size_t len)
{
    bool unsafe;

    pthread_mutex_lock(&state_mu);
    snprintf(policy, len, "%s", eviction_policy);
    unsafe = policy_unsafe(eviction_policy);
    pthread_mutex_unlock(&state_mu);
    return unsafe;
}

static void policy_seen(const char *policy)
{
    bool changed;

    pthread_mutex_lock(&state_mu);
    changed = strcmp(policy, eviction_policy) != 0;
    snprintf(eviction_policy, sizeof eviction_policy, "%s", policy);
    pthread_mutex_unlock(&state_mu);
    if (!changed)
        return;
    metrics_set_eviction_unsafe(policy_unsafe(policy));
    if (policy_unsafe(policy))
        log_warn("redis: maxmemory-policy %s can evict lock keys (a held "
                 "lock may vanish and be granted again); use noeviction",
                 policy);
}

/* ---- the adapter: hiredis's event hooks on our loop --------------------*/

static void watch_events(struct redis_conn *c, uint32_t add, uint32_t del)
{
    uint32_t want = (c->watch.events | add) & ~del;

    if (c->ac == NULL)
        return;
    c->watch.fd = c->ac->c.fd;
    if (loop_watch_set(c->loop, &c->watch, want) < 0)
        log_warn("redis: epoll_ctl on fd %d (events %x to %x) failed: %s",
                 c->watch.fd, c->watch.events, want, strerror(errno));
}

static void ev_add_read(void *p)
{
    watch_events(p, EPOLLIN, 0);
}

static void ev_del_read(void *p)
{
    watch_events(p, 0, EPOLLIN);
}

/* Writes wait for the end of the turn, unless a flush left bytes behind
 * (the socket was full): then the loop waits for it to drain. */
static void ev_add_write(void *p)
{
    struct redis_conn *c = p;

    c->want_write = true;
    if (c->in_flush || !(c->ac->c.flags & REDIS_CONNECTED))
        watch_events(c, EPOLLOUT, 0);
}

static void ev_del_write(void *p)
{
    struct redis_conn *c = p;

    c->want_write = false;
    watch_events(c, 0, EPOLLOUT);
}

static void schedule_reconnect(struct redis_conn *c);

/* hiredis frees the context: every callback has run. */
static void ev_cleanup(void *p)
{
    struct redis_conn *c = p;

    if (c->watch.events != 0)
        loop_watch_set(c->loop, &c->watch, 0);
    c->watch.events = 0;
    if (!c->closing) {
        /* Redis closed it, or a read or write failed: a drop of ours has
         * said why already (and outage_begins logs an outage once). */
        if (c->error[0] == '\0')
            snprintf(c->error, sizeof c->error, "connection to Redis lost: %s",
                     c->ac->errstr[0] ? c->ac->errstr : "closed");
        outage_begins(c, c->error);
    }
    if (c->reports_up)
        metrics_set_redis_up(false);
    c->ac = NULL;
    c->want_write = false;
    loop_timer_disarm(c->loop, &c->deadline);
    loop_timer_disarm(c->loop, &c->subscribe);
    if (!c->closing) {
        if (!c->fixed && !c->node)
            redis_endpoint_lost(c->generation);
        schedule_reconnect(c);
        if (c->on_down != NULL)
            c->on_down(c->down_ctx);
    }
}

static void on_events(struct loop_watch *w, uint32_t events)
{
    struct redis_conn *c =
        (struct redis_conn *)((char *)w - offsetof(struct redis_conn, watch));

    if (c->ac != NULL && (events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        redisAsyncHandleRead(c->ac);
    if (c->ac != NULL && (events & (EPOLLOUT | EPOLLERR)))
        redisAsyncHandleWrite(c->ac);
}

/* ---- commands in flight -----------------------------------------------*/

static void arm_deadline(struct redis_conn *c)
{
    if (c->head != NULL)
        loop_timer_arm(c->loop, &c->deadline, c->head->deadline_ns);
    else
        loop_timer_disarm(c->loop, &c->deadline);
}

static void push_tail(struct redis_cmd **head, struct redis_cmd **tail,
                      struct redis_cmd *cmd)
{
    cmd->next = NULL;
    if (*tail != NULL)
        (*tail)->next = cmd;
    else
        *head = cmd;
    *tail = cmd;
}

/* A cluster's answer that the key is served elsewhere, or will be soon:
 * the routing layer's (route.c) to act on, no failure. */
static bool is_redirect(const char *detail)
{
    return strncmp(detail, "MOVED ", 6) == 0 ||
           strncmp(detail, "ASK ", 4) == 0 ||
           strncmp(detail, "TRYAGAIN", 8) == 0;
}

/* Counts err by reason; a shape error is the caller's, and a stop is no
 * failure of Redis. */
static void count_error(const struct redis_error *err)
{
    switch (err->failure) {
    case REDIS_FAIL_DOWN:
    case REDIS_FAIL_LOST:
        metrics_redis_error(REDIS_ERROR_UNREACHABLE);
        break;
    case REDIS_FAIL_TIMEOUT:
        metrics_redis_error(REDIS_ERROR_TIMEOUT);
        break;
    case REDIS_FAIL_REPLY:
        if (is_redirect(err->detail))
            break;
        metrics_redis_error(strncmp(err->detail, "OOM", 3) == 0 ||
                                    strstr(err->detail, "OOM command") != NULL
                                ? REDIS_ERROR_OOM
                                : REDIS_ERROR_REPLY);
        break;
    case REDIS_FAIL_NONE:
    case REDIS_FAIL_SHAPE:
    case REDIS_FAIL_STOPPING:
    case REDIS_FAIL_UNACKED:
        break;
    }
}

/* Runs cmd's callback and frees it. The metrics are the served Redis's:
 * a connection to a fixed address (a sentinel) is left out. */
static void complete(const struct redis_conn *c, struct redis_cmd *cmd,
                     const redisReply *reply, const struct redis_error *err)
{
    /* Answered (a reply, an error reply): its latency. submit set the
     * deadline one timeout after sending. */
    if (!c->fixed &&
        (reply != NULL || (err != NULL && err->failure == REDIS_FAIL_REPLY)))
        metrics_redis_command(clock_now_ns() +
                              MS_TO_NS(conf->redis_timeout_ms) -
                              cmd->deadline_ns);
    if (err != NULL && !c->fixed)
        count_error(err);
    if (cmd->fn != NULL)
        cmd->fn(cmd->ctx, reply, err);
    free(cmd);
}

static void fail_at_once(struct redis_conn *c, struct redis_cmd *cmd,
                         enum redis_failure why)
{
    cmd->failure = why;
    push_tail(&c->failed_head, &c->failed_tail, cmd);
}

static bool is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && r->len >= 8 &&
           memcmp(r->str, "NOSCRIPT", 8) == 0;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Sends cmd's script in full (EVAL) after NOSCRIPT; it goes to the tail. */
static bool resend_as_eval(struct redis_conn *c, struct redis_cmd *cmd)
{
    const char *sha = cmd->argv[1];
    size_t sha_len = cmd->lens[1];
    int rc;

    cmd->argv[0] = "EVAL";
    cmd->lens[0] = 4;
    cmd->argv[1] = cmd->script->src;
    cmd->lens[1] = cmd->script->len;
    rc = redisAsyncCommandArgv(c->ac, on_reply, cmd, cmd->argc, cmd->argv,
                               cmd->lens);
    cmd->argv[1] = sha;
    cmd->lens[1] = sha_len;
    cmd->script = NULL; /* once */
    if (rc != REDIS_OK)
        return false;
    push_tail(&c->head, &c->tail, cmd);
    return true;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct redis_conn *c = ac->ev.data;
    struct redis_cmd *cmd = privdata;
    const redisReply *r = reply;
    struct redis_error err = {REDIS_FAIL_NONE, ""};

    /* Replies come in order: cmd is the oldest in flight. */
    if (c->head == cmd) {
        c->head = cmd->next;
        if (c->head == NULL)
            c->tail = NULL;
    }
    if (r == NULL) {
        err.failure =
            c->teardown != REDIS_FAIL_NONE ? c->teardown : REDIS_FAIL_LOST;
        snprintf(err.detail, sizeof err.detail, "%s",
                 err.failure == REDIS_FAIL_TIMEOUT
                     ? "Redis did not answer in time"
                 : err.failure == REDIS_FAIL_STOPPING
                     ? "the service is stopping"
                     : "the connection to Redis was lost");
        complete(c, cmd, NULL, &err);
        return;
    }
    arm_deadline(c);
    if (cmd->script != NULL && is_noscript(r) && resend_as_eval(c, cmd)) {
        arm_deadline(c);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        err.failure = REDIS_FAIL_REPLY;
        set_detail(err.detail, sizeof err.detail, r->str, r->len);
        if (is_redirect(err.detail))
            log_debug("redis: %s", err.detail);
        else
            log_warn("redis: error reply: %s", err.detail);
        /* A master turned replica under us: the sentinels know which one
         * took over. */
        if (!c->fixed && !c->node && redis_endpoint_discovered() &&
            r->len >= 8 && memcmp(r->str, "READONLY", 8) == 0)
            redis_endpoint_suspect();
        complete(c, cmd, NULL, &err);
        return;
    }
    complete(c, cmd, r, NULL);
}

/* Drops the connection: every command in flight fails with why. */
static void drop(struct redis_conn *c, enum redis_failure why,
                 const char *detail)
{
    if (c->ac == NULL)
        return;
    snprintf(c->error, sizeof c->error, "%s", detail);
    if (!c->closing)
        outage_begins(c, detail);
    c->teardown = why;
    redisAsyncFree(c->ac); /* runs the callbacks, then ev_cleanup */
    c->teardown = REDIS_FAIL_NONE;
}

static void timed_out(struct redis_conn *c)
{
    char why[96];

    snprintf(why, sizeof why, "no answer from Redis within %lld ms",
             (long long)conf->redis_timeout_ms);
    drop(c, REDIS_FAIL_TIMEOUT, why);
}

static void on_deadline(struct timer *t)
{
    timed_out((struct redis_conn *)((char *)t -
                                    offsetof(struct redis_conn, deadline)));
}

static void on_subscribe_deadline(struct timer *t)
{
    timed_out((struct redis_conn *)((char *)t -
                                    offsetof(struct redis_conn, subscribe)));
}

/* Queues argv on the live context, or fails cmd at once. */
static void submit(struct redis_conn *c, struct redis_cmd *cmd, int argc,
                   const char **argv, const size_t *lens)
{
    cmd->deadline_ns = clock_now_ns() + MS_TO_NS(conf->redis_timeout_ms);
    if (c->ac == NULL) {
        fail_at_once(c, cmd,
                     c->closing ? REDIS_FAIL_STOPPING : REDIS_FAIL_DOWN);
        return;
    }
    if (redisAsyncCommandArgv(c->ac, on_reply, cmd, argc, argv, lens) !=
        REDIS_OK) {
        fail_at_once(c, cmd, REDIS_FAIL_LOST);
        return;
    }
    push_tail(&c->head, &c->tail, cmd);
    if (c->head == cmd)
        arm_deadline(c);
}

void redis_conn_command(struct redis_conn *c, int argc, const char **argv,
                        const size_t *lens, redis_done_fn *fn, void *ctx)
{
    struct redis_cmd *cmd = calloc(1, sizeof *cmd);

    if (cmd == NULL) {
        struct redis_error err = {REDIS_FAIL_DOWN, "out of memory"};
        /* The callback must not run inside the call: no memory to defer it
         * either, so this one failure is reported at once. */
        fn(ctx, NULL, &err);
        return;
    }
    cmd->fn = fn;
    cmd->ctx = ctx;
    submit(c, cmd, argc, argv, lens);
}

#define SCRIPT_ARGS_MAX 32

void redis_conn_script(struct redis_conn *c, struct redis_script *s, int nkeys,
                       int argc, const char **argv, const size_t *lens,
                       redis_done_fn *fn, void *ctx)
{
    size_t bytes = 0, off;
    int n = argc + 3, i;
    char nk[12];
    struct redis_cmd *cmd;
    char *data;

    snprintf(nk, sizeof nk, "%d", nkeys);
    for (i = 0; i < argc; i++)
        bytes += lens[i];
    /* One allocation: the record, argv, lens, the nkeys digits and the
     * argument bytes, kept for a re-send as EVAL. */
    cmd = argc <= SCRIPT_ARGS_MAX
              ? calloc(1, sizeof *cmd +
                              (size_t)n * (sizeof(char *) + sizeof(size_t)) +
                              sizeof nk + bytes)
              : NULL;
    if (cmd == NULL) {
        struct redis_error err = {REDIS_FAIL_DOWN, "out of memory"};
        fn(ctx, NULL, &err);
        return;
    }
    cmd->fn = fn;
    cmd->ctx = ctx;
    cmd->argc = n;
    cmd->argv = (const char **)(cmd + 1);
    cmd->lens = (size_t *)(cmd->argv + n);
    data = (char *)(cmd->lens + n);
    memcpy(data, nk, sizeof nk);
    off = sizeof nk;
    bool by_sha = atomic_load(&s->sha_known);
    cmd->script = by_sha ? s : NULL;
    cmd->argv[0] = by_sha ? "EVALSHA" : "EVAL";
    cmd->lens[0] = by_sha ? 7 : 4;
    cmd->argv[1] = by_sha ? s->sha : s->src;
    cmd->lens[1] = by_sha ? 40 : s->len;
    cmd->argv[2] = data;
    cmd->lens[2] = strlen(nk);
    for (i = 0; i < argc; i++) {
        memcpy(data + off, argv[i], lens[i]);
        cmd->argv[3 + i] = data + off;
        cmd->lens[3 + i] = lens[i];
        off += lens[i];
    }
    submit(c, cmd, n, cmd->argv, cmd->lens);
}

/* ---- replica acknowledgement (WAIT) ------------------------------------*/

/* A script's answer, kept until its WAIT's: hiredis frees a reply when its
 * callback returns. The WAIT normally answers second; after a NOSCRIPT the
 * script goes again (as EVAL) behind it, and then the WAIT covered none of
 * its write. */
struct acked {
    redis_done_fn *fn;
    void *ctx;
    redisReply *reply; /* a copy (freeReplyObject frees it); NULL: failed */
    struct redis_error err; /* why the script failed */
    bool script_done, wait_done;
    long long replicas; /* what WAIT counted; -1: unknown */
};

/* A deep copy of r in hiredis's own layout, or NULL when out of memory. */
static redisReply *reply_copy(const redisReply *r)
{
    redisReply *k = calloc(1, sizeof *k);

    if (k == NULL)
        return NULL;
    k->type = r->type;
    k->integer = r->integer;
    if (r->str != NULL) {
        k->str = malloc(r->len + 1);
        if (k->str == NULL)
            goto fail;
        memcpy(k->str, r->str, r->len);
        k->str[r->len] = '\0';
        k->len = r->len;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
        k->element = calloc(r->elements, sizeof *k->element);
        if (k->element == NULL)
            goto fail;
        k->elements = r->elements;
        for (size_t i = 0; i < r->elements; i++)
            if ((k->element[i] = reply_copy(r->element[i])) == NULL)
                goto fail;
    }
    return k;
fail:
    freeReplyObject(k);
    return NULL;
}

/* Both have answered: the caller is told, and a is freed. */
static void acked_finish(struct acked *a)
{
    struct redis_error short_err = {REDIS_FAIL_UNACKED, ""};

    if (a->reply == NULL) {
        a->fn(a->ctx, NULL, &a->err);
    } else if (a->replicas >= (long long)conf->redis_wait_replicas) {
        a->fn(a->ctx, a->reply, NULL);
    } else {
        metrics_redis_wait_short();
        if (a->replicas < 0)
            snprintf(short_err.detail, sizeof short_err.detail,
                     "the write was made, but whether %u replicas "
                     "acknowledged it is unknown",
                     conf->redis_wait_replicas);
        else
            snprintf(short_err.detail, sizeof short_err.detail,
                     "only %lld of %u replicas acknowledged the write "
                     "within %lld ms",
                     a->replicas, conf->redis_wait_replicas,
                     (long long)conf->redis_wait_timeout_ms);
        log_warn("redis: %s", short_err.detail);
        a->fn(a->ctx, a->reply,
              conf->redis_wait_policy == REDIS_WAIT_WARN ? NULL : &short_err);
    }
    freeReplyObject(a->reply);
    free(a);
}

static void on_acked_script(void *ctx, const redisReply *r,
                            const struct redis_error *err)
{
    struct acked *a = ctx;

    if (err != NULL) {
        a->err = *err;
    } else {
        a->reply = reply_copy(r);
        if (a->reply == NULL)
            a->err = (struct redis_error){REDIS_FAIL_DOWN, "out of memory"};
    }
    a->script_done = true;
    if (a->wait_done)
        acked_finish(a);
}

static void on_acked_wait(void *ctx, const redisReply *r,
                          const struct redis_error *err)
{
    struct acked *a = ctx;

    a->replicas =
        err == NULL && r->type == REDIS_REPLY_INTEGER && a->script_done
            ? r->integer
            : -1;
    a->wait_done = true;
    if (a->script_done)
        acked_finish(a);
}

void redis_conn_script_acked(struct redis_conn *c, struct redis_script *s,
                             int nkeys, int argc, const char **argv,
                             const size_t *lens, redis_done_fn *fn, void *ctx)
{
    struct acked *a = calloc(1, sizeof *a);
    char n[12], ms[24];
    const char *wait[] = {"WAIT", n, ms};
    size_t wait_lens[3];

    if (a == NULL) {
        struct redis_error err = {REDIS_FAIL_DOWN, "out of memory"};
        fn(ctx, NULL, &err);
        return;
    }
    a->fn = fn;
    a->ctx = ctx;
    snprintf(n, sizeof n, "%u", conf->redis_wait_replicas);
    snprintf(ms, sizeof ms, "%lld", (long long)conf->redis_wait_timeout_ms);
    wait_lens[0] = 4;
    wait_lens[1] = strlen(n);
    wait_lens[2] = strlen(ms);
    redis_conn_script(c, s, nkeys, argc, argv, lens, on_acked_script, a);
    redis_conn_command(c, 3, wait, wait_lens, on_acked_wait, a);
}

void redis_conn_flush(struct redis_conn *c)
{
    while (c->failed_head != NULL) {
        struct redis_cmd *cmd = c->failed_head;
        struct redis_error err = {cmd->failure, ""};

        c->failed_head = cmd->next;
        if (c->failed_head == NULL)
            c->failed_tail = NULL;
        snprintf(err.detail, sizeof err.detail, "%s",
                 c->error[0] ? c->error : "Redis is not connected");
        complete(c, cmd, NULL, &err);
    }
    if (c->ac != NULL && c->want_write && (c->ac->c.flags & REDIS_CONNECTED)) {
        c->in_flush = true;
        redisAsyncHandleWrite(c->ac);
        c->in_flush = false;
    }
}

bool redis_conn_up(const struct redis_conn *c)
{
    return c->ac != NULL && (c->ac->c.flags & REDIS_CONNECTED);
}

/* ---- connecting -------------------------------------------------------*/

static void on_handshake(void *ctx, const redisReply *r,
                         const struct redis_error *err)
{
    struct redis_conn *c = ctx;

    (void)r;
    if (err != NULL) {
        if (err->failure == REDIS_FAIL_REPLY) {
            log_warn("redis: AUTH or SELECT refused: %s", err->detail);
            drop(c, REDIS_FAIL_LOST, err->detail);
        }
        return;
    }
    c->backoff_ms = 0;
    if (c->reports_up)
        metrics_set_redis_up(true);
    outage_ends(c);
}

static void on_script_loaded(void *ctx, const redisReply *r,
                             const struct redis_error *err)
{
    struct redis_script *s = ctx;

    if (err != NULL || r->type != REDIS_REPLY_STRING || r->len != 40)
        return;
    if (!atomic_load(&s->sha_known)) {
        memcpy(s->sha, r->str, 40);
        s->sha[40] = '\0';
        atomic_store(&s->sha_known, true);
    }
}

static void on_policy(void *ctx, const redisReply *r,
                      const struct redis_error *err)
{
    char policy[32];

    (void)ctx;
    /* CONFIG may be renamed or refused (managed Redis): then unknown. */
    if (err != NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return;
    set_detail(policy, sizeof policy, r->element[1]->str, r->element[1]->len);
    policy_seen(policy);
}

static void on_subscribe_message(redisAsyncContext *ac, void *reply,
                                 void *privdata)
{
    struct redis_conn *c = ac->ev.data;
    const redisReply *r = reply;

    (void)privdata;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(r->element[0]->str, "subscribe") == 0) {
        loop_timer_disarm(c->loop, &c->subscribe);
        c->backoff_ms = 0;
        if (c->on_subscribed != NULL)
            c->on_subscribed(c->sub_ctx);
    } else if (strcmp(r->element[0]->str, "message") == 0 &&
               r->element[2]->type == REDIS_REPLY_STRING) {
        c->on_message(c->sub_ctx, r->element[2]->str, r->element[2]->len);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_conn *c = ac->ev.data;

    if (status != REDIS_OK)
        snprintf(c->error, sizeof c->error, "cannot connect to Redis: %s",
                 ac->errstr ? ac->errstr : "error");
}

static void cmd_internal(struct redis_conn *c, redis_done_fn *fn, void *ctx,
                         int argc, const char **argv)
{
    size_t lens[4];
    int i;

    for (i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    redis_conn_command(c, argc, argv, lens, fn, ctx);
}

/* ROLE on a connection that follows a discovered endpoint: anything but a
 * master (a replica the sentinels have not demoted in their answer yet)
 * is dropped, and the watcher asked to look again. */
static void on_role(void *ctx, const redisReply *r,
                    const struct redis_error *err)
{
    struct redis_conn *c = ctx;
    char role[16] = "unknown";

    if (err != NULL && err->failure != REDIS_FAIL_REPLY)
        return; /* the connection is gone already */
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        set_detail(role, sizeof role, r->element[0]->str, r->element[0]->len);
        if (strcmp(role, "master") == 0)
            return;
    }
    char why[96];
    snprintf(why, sizeof why, "the Redis named as master is a %s", role);
    drop(c, REDIS_FAIL_LOST, why);
    redis_endpoint_suspect();
}

/* The handshake of a connection to a fixed address: AUTH, then a
 * subscriber's SUBSCRIBE or a command connection's PING. */
static void handshake_fixed(struct redis_conn *c)
{
    if (c->fixed_password != NULL && c->fixed_password[0] != '\0') {
        if (c->fixed_user != NULL && c->fixed_user[0] != '\0') {
            const char *a[] = {"AUTH", c->fixed_user, c->fixed_password};
            cmd_internal(c, on_handshake, c, 3, a);
        } else {
            const char *a[] = {"AUTH", c->fixed_password};
            cmd_internal(c, on_handshake, c, 2, a);
        }
    }
}

static void subscribe_now(struct redis_conn *c)
{
    const char *a[] = {"PING"};

    cmd_internal(c, on_handshake, c, 1, a);
    if (redisAsyncCommand(c->ac, on_subscribe_message, NULL, "SUBSCRIBE %s",
                          c->channel) != REDIS_OK)
        drop(c, REDIS_FAIL_LOST, "cannot subscribe");
    else
        loop_timer_arm(c->loop, &c->subscribe,
                       clock_now_ns() + MS_TO_NS(conf->redis_timeout_ms));
}

static void handshake(struct redis_conn *c)
{
    const struct redis_url *u = &conf->redis;
    char db[12];

    if (c->fixed) {
        handshake_fixed(c);
        if (c->subscriber) {
            subscribe_now(c);
        } else {
            const char *a[] = {"PING"};
            cmd_internal(c, on_handshake, c, 1, a);
        }
        return;
    }
    if (u->password[0] != '\0') {
        if (u->user[0] != '\0') {
            const char *a[] = {"AUTH", u->user, u->password};
            cmd_internal(c, on_handshake, c, 3, a);
        } else {
            const char *a[] = {"AUTH", u->password};
            cmd_internal(c, on_handshake, c, 2, a);
        }
    }
    if (u->db != 0) {
        snprintf(db, sizeof db, "%d", u->db);
        const char *a[] = {"SELECT", db};
        cmd_internal(c, on_handshake, c, 2, a);
    }
    /* A cluster node's role is the slot map's business (MOVED). */
    if (redis_endpoint_discovered() && !c->node) {
        const char *a[] = {"ROLE"};
        cmd_internal(c, on_role, c, 1, a);
    }
    if (c->subscriber) {
        subscribe_now(c);
        return;
    }
    {
        const char *a[] = {"CONFIG", "GET", "maxmemory-policy"};
        cmd_internal(c, on_policy, NULL, 3, a);
    }
    for (size_t i = 0; i < script_count; i++) {
        struct redis_script *s = scripts[i];
        const char *a[] = {"SCRIPT", "LOAD", s->src};
        size_t l[] = {6, 4, s->len};
        redis_conn_command(c, 3, a, l, on_script_loaded, s);
    }
    {
        const char *a[] = {"PING"};
        cmd_internal(c, on_handshake, c, 1, a);
    }
}

static void connect_now(struct redis_conn *c)
{
    struct redis_endpoint e = {0};
    redisAsyncContext *ac;

    if (c->fixed || c->node) {
        snprintf(e.host, sizeof e.host, "%s", c->fixed_host);
        e.port = c->fixed_port;
    } else if (!redis_endpoint_get(&e)) {
        snprintf(c->error, sizeof c->error, "%s",
                 conf->redis.is_cluster
                     ? "no Redis Cluster node known yet: reading the slot map"
                     : "no Redis master known yet: asking the sentinels");
        outage_begins(c, c->error);
        schedule_reconnect(c);
        return;
    }
    c->generation = e.generation;
    ac = e.is_unix ? redisAsyncConnectUnix(e.host)
                   : redisAsyncConnect(e.host, e.port);
    if (ac == NULL || ac->err) {
        snprintf(c->error, sizeof c->error, "cannot connect to Redis: %s",
                 ac ? ac->errstr : "out of memory");
        outage_begins(c, c->error);
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    c->ac = ac;
    c->error[0] = '\0';
    c->watch.fd = ac->c.fd;
    c->watch.events = 0;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    if (!e.is_unix)
        redisEnableKeepAlive(&ac->c);
    /* Writable once connected (or failed). */
    watch_events(c, EPOLLOUT, 0);
    handshake(c);
}

static void on_reconnect(struct timer *t)
{
    struct redis_conn *c =
        (struct redis_conn *)((char *)t -
                              offsetof(struct redis_conn, reconnect));
    connect_now(c);
}

static void schedule_reconnect(struct redis_conn *c)
{
    backoff_next(&c->backoff_ms, BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
    loop_timer_arm(c->loop, &c->reconnect,
                   clock_now_ns() + MS_TO_NS(c->backoff_ms));
}

/* The endpoint moved: off to the new address at once. */
static void on_moved(struct loop_watch *w, uint32_t events)
{
    struct redis_conn *c =
        (struct redis_conn *)((char *)w - offsetof(struct redis_conn, moved));
    uint64_t v;
    char why[160], at[128]; /* a longer host name is cut short */

    (void)events;
    if (read(c->moved.fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug("redis: eventfd read: %s", strerror(errno));
    if (c->closing || c->generation == redis_endpoint_generation())
        return;
    redis_endpoint_describe(at, sizeof at);
    snprintf(why, sizeof why, "the Redis master moved to %s", at);
    drop(c, REDIS_FAIL_LOST, why);
    c->backoff_ms = 0;
    loop_timer_arm(c->loop, &c->reconnect, clock_now_ns());
}

static struct redis_conn *conn_alloc(struct loop *l)
{
    struct redis_conn *c = calloc(1, sizeof *c);

    if (c == NULL)
        return NULL;
    c->loop = l;
    c->watch.fd = -1;
    c->watch.fn = on_events;
    c->moved.fd = -1;
    c->moved.fn = on_moved;
    timer_init(&c->deadline, on_deadline);
    timer_init(&c->subscribe, on_subscribe_deadline);
    timer_init(&c->reconnect, on_reconnect);
    return c;
}

/* A connection to the endpoint follows it when it is discovered. Returns
 * 0 or -1. */
static int follow_endpoint(struct redis_conn *c)
{
    if (!redis_endpoint_discovered())
        return 0;
    c->moved.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->moved.fd < 0 || loop_watch_set(c->loop, &c->moved, EPOLLIN) < 0 ||
        redis_endpoint_watch(c->moved.fd) < 0) {
        log_error("redis: cannot follow the master: %s", strerror(errno));
        if (c->moved.fd >= 0)
            close(c->moved.fd);
        free(c);
        return -1;
    }
    return 0;
}

struct redis_conn *redis_conn_new(struct loop *l)
{
    /* lockservice_redis_up follows the first command connection made (one
     * worker's: they start together, and all talk to the same Redis). */
    static atomic_bool up_reporter_taken;
    struct redis_conn *c = conn_alloc(l);

    if (c == NULL)
        return NULL;
    if (follow_endpoint(c) < 0)
        return NULL;
    c->reports_up = !atomic_exchange(&up_reporter_taken, true);
    connect_now(c);
    return c;
}

struct redis_conn *redis_conn_new_subscriber(struct loop *l,
                                             const char *channel,
                                             redis_message_fn *on_message,
                                             redis_subscribed_fn *on_subscribed,
                                             void *ctx)
{
    struct redis_conn *c = conn_alloc(l);

    if (c == NULL)
        return NULL;
    if (follow_endpoint(c) < 0)
        return NULL;
    c->subscriber = true;
    snprintf(c->channel, sizeof c->channel, "%s", channel);
    c->on_message = on_message;
    c->on_subscribed = on_subscribed;
    c->sub_ctx = ctx;
    connect_now(c);
    return c;
}

struct redis_conn *
redis_conn_new_fixed(struct loop *l, const char *host, int port,
                     const char *user, const char *password,
                     const char *channel, redis_message_fn *on_message,
                     redis_subscribed_fn *on_subscribed, void *ctx)
{
    struct redis_conn *c = conn_alloc(l);

    if (c == NULL)
        return NULL;
    c->fixed = true;
    snprintf(c->fixed_host, sizeof c->fixed_host, "%s", host);
    c->fixed_port = port;
    c->fixed_user = user;
    c->fixed_password = password;
    if (channel != NULL) {
        c->subscriber = true;
        snprintf(c->channel, sizeof c->channel, "%s", channel);
        c->on_message = on_message;
        c->on_subscribed = on_subscribed;
        c->sub_ctx = ctx;
    }
    connect_now(c);
    return c;
}

struct redis_conn *redis_conn_new_node(struct loop *l, const char *host,
                                       int port)
{
    struct redis_conn *c = conn_alloc(l);

    if (c == NULL)
        return NULL;
    c->node = true;
    snprintf(c->fixed_host, sizeof c->fixed_host, "%s", host);
    c->fixed_port = port;
    connect_now(c);
    return c;
}

void redis_conn_on_down(struct redis_conn *c, void (*fn)(void *ctx), void *ctx)
{
    c->on_down = fn;
    c->down_ctx = ctx;
}

void redis_conn_close(struct redis_conn *c)
{
    if (c == NULL)
        return;
    c->closing = true;
    drop(c, REDIS_FAIL_STOPPING, "the service is stopping");
    loop_timer_disarm(c->loop, &c->reconnect);
}

void redis_conn_free(struct redis_conn *c)
{
    if (c == NULL)
        return;
    redis_conn_close(c);
    loop_timer_disarm(c->loop, &c->reconnect);
    loop_timer_disarm(c->loop, &c->deadline);
    loop_timer_disarm(c->loop, &c->subscribe);
    redis_conn_flush(c); /* runs the callbacks of failed commands */
    if (c->moved.fd >= 0) {
        redis_endpoint_unwatch(c->moved.fd);
        loop_watch_set(c->loop, &c->moved, 0);
        close(c->moved.fd);
    }
    free(c);
}
