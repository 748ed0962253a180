/* redis_conn.c -- see redis_conn.h. */
#include "redis_conn.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

static const struct config *conf;
static _Thread_local redisContext *thread_conn;
static pthread_mutex_t script_sha_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t conn_key; /* frees a thread's connection at its exit */
/* After a call that failed slowly (a frozen or overloaded Redis), calls fail
 * at once until this time, so requests queued behind a stuck worker are
 * answered 503 within the timeout instead of each waiting it out. */
static _Atomic uint64_t fail_fast_until_ns;

static void conn_destroy(void *c)
{
    redisFree(c);
}

void redis_conns_init(const struct config *cfg)
{
    conf = cfg;
    pthread_key_create(&conn_key, conn_destroy);
}

static struct timeval ms_to_tv(int64_t ms)
{
    struct timeval tv;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

/* Sends AUTH and SELECT when the URL asks for them. Returns 0 or -1. */
static int redis_handshake(redisContext *c, const struct redis_url *u)
{
    redisReply *r;

    if (u->password[0] != '\0') {
        if (u->user[0] != '\0')
            r = redisCommand(c, "AUTH %s %s", u->user, u->password);
        else
            r = redisCommand(c, "AUTH %s", u->password);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            log_warn("redis: AUTH failed");
            if (r)
                freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
    }
    if (u->db != 0) {
        r = redisCommand(c, "SELECT %d", u->db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            log_warn("redis: SELECT %d failed", u->db);
            if (r)
                freeReplyObject(r);
            return -1;
        }
        freeReplyObject(r);
    }
    return 0;
}

redisContext *redis_connect(const struct config *cfg)
{
    struct timeval tv = ms_to_tv(cfg->redis_timeout_ms);
    const struct redis_url *u = &cfg->redis;
    redisContext *c;

    if (u->is_unix)
        c = redisConnectUnixWithTimeout(u->host, tv);
    else
        c = redisConnectWithTimeout(u->host, u->port, tv);
    if (c == NULL)
        return NULL;
    if (c->err) {
        log_debug("redis: connect failed: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    /* hiredis does not keep the connect timeout for commands: re-apply it
     * on every new connection. */
    if (redisSetTimeout(c, tv) != REDIS_OK ||
        (!u->is_unix && redisEnableKeepAlive(c) != REDIS_OK) ||
        redis_handshake(c, u) < 0) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Drops this thread's connection (dead after any I/O error); the next call
 * connects anew. */
static void redis_conn_close_thread(void)
{
    if (thread_conn != NULL) {
        redisFree(thread_conn);
        thread_conn = NULL;
        pthread_setspecific(conn_key, NULL);
    }
}

/* True when the peer has closed (or reset) an idle connection, e.g. after a
 * Redis restart. Checked before each command so that the first request after
 * Redis returns does not fail on a socket that was dead all along; a command
 * is never sent twice. */
static bool conn_dead(const redisContext *c)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n < 0)
        return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    return true; /* EOF, or bytes nobody asked for: out of step */
}

static redisContext *redis_conn_for_thread(void)
{
    if (thread_conn != NULL && conn_dead(thread_conn))
        redis_conn_close_thread();
    if (thread_conn == NULL) {
        thread_conn = redis_connect(conf);
        pthread_setspecific(conn_key, thread_conn);
    }
    return thread_conn;
}

/* Ends a call begun at started: a failure that took at least half the
 * timeout opens the fail-fast window. Returns r. */
static redisReply *conn_end(redisReply *r, uint64_t started)
{
    uint64_t now;

    if (r != NULL)
        return r;
    now = clock_now_ns();
    if (now - started >= MS_TO_NS(conf->redis_timeout_ms) / 2)
        atomic_store(&fail_fast_until_ns,
                     now + MS_TO_NS(conf->redis_timeout_ms));
    return NULL;
}

/* A reply that is NULL means the context is dead (I/O error, timeout,
 * protocol error): hiredis contexts cannot be used after that. */
static redisReply *checked(redisReply *r)
{
    if (r == NULL) {
        log_warn("redis: %s", thread_conn->errstr[0] ? thread_conn->errstr
                                                     : "connection lost");
        metrics_redis_error();
        redis_conn_close_thread();
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        log_warn("redis: error reply: %.*s", (int)r->len, r->str);
        metrics_redis_error();
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* The thread's connection, or NULL while failing fast or when Redis cannot
 * be reached; *started receives the time the attempt began. */
static redisContext *conn_begin(uint64_t *started)
{
    redisContext *c;

    *started = clock_now_ns();
    if (*started < atomic_load(&fail_fast_until_ns)) {
        metrics_redis_error();
        return NULL;
    }
    c = redis_conn_for_thread();
    if (c == NULL) {
        metrics_redis_error();
        conn_end(NULL, *started);
    }
    return c;
}

redisReply *redis_run_command(int argc, const char **argv,
                              const size_t *argvlen)
{
    uint64_t started;
    redisContext *c = conn_begin(&started);

    if (c == NULL)
        return NULL;
    return conn_end(checked(redisCommandArgv(c, argc, argv, argvlen)), started);
}

/* SCRIPT LOAD; records the SHA1 in script. Returns 0 or -1. */
static int script_load(redisContext *c, struct redis_script *script)
{
    redisReply *r = redisCommand(c, "SCRIPT LOAD %s", script->src);

    r = checked(r);
    if (r == NULL)
        return -1;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        freeReplyObject(r);
        return -1;
    }
    pthread_mutex_lock(&script_sha_lock);
    if (!atomic_load(&script->loaded)) {
        memcpy(script->sha, r->str, 40);
        script->sha[40] = '\0';
        atomic_store(&script->loaded, true);
    }
    pthread_mutex_unlock(&script_sha_lock);
    freeReplyObject(r);
    return 0;
}

#define SCRIPT_ARGS_MAX 16

redisReply *redis_run_script(struct redis_script *script, int nkeys, int argc,
                             const char **argv, const size_t *argvlen)
{
    const char *av[SCRIPT_ARGS_MAX + 3];
    size_t avlen[SCRIPT_ARGS_MAX + 3];
    char nk[12];
    uint64_t started;
    redisContext *c;
    redisReply *r;
    int attempt;

    if (argc > SCRIPT_ARGS_MAX)
        return NULL;
    c = conn_begin(&started);
    if (c == NULL)
        return NULL;
    snprintf(nk, sizeof nk, "%d", nkeys);
    av[0] = "EVALSHA";
    avlen[0] = 7;
    av[2] = nk;
    avlen[2] = strlen(nk);
    memcpy(av + 3, argv, sizeof *argv * (size_t)argc);
    memcpy(avlen + 3, argvlen, sizeof *argvlen * (size_t)argc);
    for (attempt = 0; attempt < 2; attempt++) {
        if (!atomic_load(&script->loaded) && script_load(c, script) < 0)
            break;
        av[1] = script->sha;
        avlen[1] = 40;
        r = redisCommandArgv(c, argc + 3, av, avlen);
        if (r != NULL && r->type == REDIS_REPLY_ERROR &&
            strncmp(r->str, "NOSCRIPT", 8) == 0) {
            /* Redis restarted or flushed its script cache. */
            freeReplyObject(r);
            if (script_load(c, script) < 0)
                break;
            continue;
        }
        return conn_end(checked(r), started);
    }
    return conn_end(NULL, started);
}
