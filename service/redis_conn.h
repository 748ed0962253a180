/* redis_conn.h -- Redis connections: one per worker thread, made lazily,
 * dropped after any error and re-made (with timeouts re-applied) on the next
 * call; Lua scripts by EVALSHA with a SCRIPT LOAD fallback on NOSCRIPT. */
#ifndef LOCKSERVICE_REDIS_CONN_H
#define LOCKSERVICE_REDIS_CONN_H

#include "config.h"

#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stddef.h>

/* A Lua script (NUL-terminated source); sha is filled by the first
 * SCRIPT LOAD. Define one with REDIS_SCRIPT(src). */
struct redis_script {
    const char *src;
    char sha[41];
    atomic_bool loaded;
};

#define REDIS_SCRIPT(source)                                                   \
    {                                                                          \
        (source), {0}, false                                                   \
    }

void redis_conns_init(const struct config *cfg);

/* Connects to cfg's Redis with its connect and command timeouts, AUTH and
 * SELECT. Returns a new context the caller redisFree()s, or NULL (reason
 * logged at debug). */
redisContext *redis_connect(const struct config *cfg);

/* Runs script with nkeys keys followed by args (argv/argvlen of argc items,
 * keys first). Returns the reply the caller freeReplyObject()s, or NULL when
 * Redis is unreachable, timed out, or answered an error (logged, counted, and
 * the thread's connection dropped when it is dead). */
redisReply *redis_run_script(struct redis_script *script, int nkeys, int argc,
                             const char **argv, const size_t *argvlen);

/* Runs one command given as argv. Same ownership and failures as above. */
redisReply *redis_run_command(int argc, const char **argv,
                              const size_t *argvlen);

#endif
