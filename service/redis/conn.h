/* conn.h -- a worker's Redis connection: non-blocking (hiredis's async API
 * on the worker's own loop) and pipelined.
 *
 * Commands submitted while the worker handles one turn of its loop are
 * buffered and leave in one write when the turn ends (redis_conn_flush);
 * replies come back in order and each goes to its command's callback. Every
 * command has a deadline of --redis-timeout-ms: when the oldest one passes
 * it, the connection is dropped and every command in flight fails. A dropped
 * connection is made anew with backoff (100 ms doubling to 500 ms); meanwhile
 * commands fail at once. Scripts run by EVALSHA, by EVAL on NOSCRIPT.
 *
 * A connection can instead be a subscriber: it holds one SUBSCRIBE and
 * passes each message on, re-subscribing after every reconnect.
 *
 * A connection goes where the endpoint (endpoint.h) says each time it
 * connects. When the endpoint is discovered (Sentinel), it also checks that
 * ROLE says master, reports a READONLY reply or a replica to the sentinel
 * watcher (redis_endpoint_suspect), and drops and reconnects as soon as
 * the endpoint moves; a connection to a fixed address (a sentinel) does
 * none of that, nor does a Redis Cluster node's (redis_conn_new_node),
 * which serves like one to the endpoint but stays at its node (route.h
 * follows the cluster's redirects).
 *
 * Used by its worker's thread only. */
#ifndef LOCKSERVICE_REDIS_CONN_H
#define LOCKSERVICE_REDIS_CONN_H

#include "config.h"
#include "loop.h"

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Why a command has no reply. */
enum redis_failure {
    REDIS_FAIL_NONE = 0,
    REDIS_FAIL_DOWN,     /* not connected (connecting failed, or backing off) */
    REDIS_FAIL_LOST,     /* the connection broke with the command in flight */
    REDIS_FAIL_TIMEOUT,  /* no answer within --redis-timeout-ms */
    REDIS_FAIL_REPLY,    /* Redis answered an error (detail holds it) */
    REDIS_FAIL_SHAPE,    /* the answer was not what the caller expects */
    REDIS_FAIL_STOPPING, /* the connection was closed for good: shutdown */
    REDIS_FAIL_UNACKED,  /* the script ran, but fewer replicas than
                            --redis-wait-replicas acknowledged it (policy
                            fail); the script's reply comes with it */
};

/* The cause of a failure, as hiredis keeps c->err and c->errstr. */
struct redis_error {
    enum redis_failure failure;
    char detail[160]; /* printable; never holds a token or a password */
};

/* Called once per command: with the reply (borrowed; freed after the
 * callback returns) and err NULL, or with reply NULL and err set. An error
 * reply from Redis comes as REDIS_FAIL_REPLY. The one exception,
 * REDIS_FAIL_UNACKED (redis_conn_script_acked), comes with both. */
typedef void redis_done_fn(void *ctx, const redisReply *reply,
                           const struct redis_error *err);

/* A Lua script. Define with REDIS_SCRIPT(src); the SHA1 is learnt from
 * SCRIPT LOAD on the first connection (until then the script goes by
 * EVAL). */
struct redis_script {
    const char *src;
    size_t len;
    char sha[41];
    atomic_bool sha_known;
};

#define REDIS_SCRIPT(source, length)                                           \
    {                                                                          \
        (source), (length), {0}, false                                         \
    }

/* Called for each message of a subscriber (payload borrowed). */
typedef void redis_message_fn(void *ctx, const char *payload, size_t len);
/* Called each time a subscriber's SUBSCRIBE is confirmed: messages
 * published while it was not may have been missed. */
typedef void redis_subscribed_fn(void *ctx);

struct redis_conn;

/* Process-wide setup: the configuration. Call once before any connection. */
void redis_conns_init(const struct config *cfg);
/* Adds s to the scripts every new connection loads (SCRIPT LOAD), which is
 * how their SHA1s are learnt. Call before any connection; s must outlive
 * the process. Returns 0, or -1 when too many are registered. */
int redis_script_register(struct redis_script *s);

/* A command connection on loop l; it connects at once. Returns NULL when
 * out of memory. */
struct redis_conn *redis_conn_new(struct loop *l);
/* A subscriber to channel (copied) on loop l. */
struct redis_conn *redis_conn_new_subscriber(struct loop *l,
                                             const char *channel,
                                             redis_message_fn *on_message,
                                             redis_subscribed_fn *on_subscribed,
                                             void *ctx);
/* A command connection (channel NULL) or a subscriber to channel, to the
 * fixed address host:port instead of the endpoint: a sentinel, or a
 * candidate master to ask ROLE. Its handshake is AUTH (with user and
 * password, borrowed: they must outlive c; NULL or "": none) and PING;
 * no SELECT, no scripts. Returns NULL when out of memory. */
struct redis_conn *
redis_conn_new_fixed(struct loop *l, const char *host, int port,
                     const char *user, const char *password,
                     const char *channel, redis_message_fn *on_message,
                     redis_subscribed_fn *on_subscribed, void *ctx);
/* A command connection to cluster node host:port (copied) on loop l: it
 * serves like one to the endpoint (AUTH, the scripts, the metrics) but
 * stays at its address and checks no ROLE (a MOVED tells, route.h).
 * Returns NULL when out of memory. */
struct redis_conn *redis_conn_new_node(struct loop *l, const char *host,
                                       int port);
/* fn(ctx) runs each time c goes down (after the callbacks of what was in
 * flight): whoever waits on something c would have told them may want to
 * know. */
void redis_conn_on_down(struct redis_conn *c, void (*fn)(void *ctx), void *ctx);
/* Drops the connection for good: what is in flight fails
 * (REDIS_FAIL_LOST), and so does every later command (at the next flush).
 * NULL is fine. */
void redis_conn_close(struct redis_conn *c);
/* Closes c and frees it; NULL is fine. */
void redis_conn_free(struct redis_conn *c);

/* Queues a command (argv of argc items). fn runs later, never from inside
 * this call. */
void redis_conn_command(struct redis_conn *c, int argc, const char **argv,
                        const size_t *lens, redis_done_fn *fn, void *ctx);
/* Queues script s with nkeys keys followed by args (argv/lens, keys
 * first). */
void redis_conn_script(struct redis_conn *c, struct redis_script *s, int nkeys,
                       int argc, const char **argv, const size_t *lens,
                       redis_done_fn *fn, void *ctx);
/* As redis_conn_script, with WAIT --redis-wait-replicas
 * --redis-wait-timeout-ms queued right behind it (the same write). fn runs
 * once WAIT has answered: with the script's reply when enough replicas
 * acknowledged it; when fewer did, as --redis-wait-policy says: warn, with
 * the reply (and the shortfall counted); fail, with the reply and
 * REDIS_FAIL_UNACKED. */
void redis_conn_script_acked(struct redis_conn *c, struct redis_script *s,
                             int nkeys, int argc, const char **argv,
                             const size_t *lens, redis_done_fn *fn, void *ctx);
/* Ends the worker's turn: writes what is buffered (one write) and runs the
 * callbacks of commands that failed at once. */
void redis_conn_flush(struct redis_conn *c);
/* True while connected and past the handshake. */
bool redis_conn_up(const struct redis_conn *c);

/* The maxmemory-policy seen on the last connection ("" until known), and
 * whether it lets Redis evict lock keys. */
bool redis_eviction_unsafe(char *policy, size_t len);

#endif
