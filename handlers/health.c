/* health.c -- /healthz (the process serves) and /readyz (Redis answers,
 * and which Redis: the master in use). */
#include "handlers.h"
#include "redis/endpoint.h"

#include <stdlib.h>
#include <string.h>

void handle_healthz(struct request *req)
{
    reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

/* The PING's outcome, until the continuation reads it. */
struct readiness {
    struct request *req;
    bool up;
    struct redis_error err;
};

static void pinged(void *ctx, const redisReply *r,
                   const struct redis_error *err)
{
    struct readiness *rd = ctx;

    (void)r;
    rd->up = err == NULL;
    if (err != NULL)
        rd->err = *err;
    request_resume(rd->req);
}

static void ready_answer(struct request *req)
{
    struct readiness *rd = req->state;
    char policy[32], at[REDIS_HOST_MAX + 16];
    json_t *body, *warnings;

    if (!rd->up) {
        reply_backend_error(req, &rd->err);
        return;
    }
    redis_endpoint_describe(at, sizeof at);
    body = json_pack("{s:s, s:s}", "status", "ready", "redis", at);
    if (redis_eviction_unsafe(policy, sizeof policy)) {
        char w[160];
        snprintf(w, sizeof w,
                 "Redis maxmemory-policy %s can evict lock keys: a held lock "
                 "may vanish and be granted again (use noeviction)",
                 policy);
        warnings = json_pack("[s]", w);
        json_object_set_new(body, "warnings", warnings);
    }
    reply_json(req, 200, body);
}

void handle_readyz(struct request *req)
{
    static const char *const argv[] = {"PING"};
    static const size_t lens[] = {4};
    struct readiness *rd = calloc(1, sizeof *rd);

    if (rd == NULL) {
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "out of memory");
        return;
    }
    rd->req = req;
    req->state = rd;
    req->state_free = free;
    request_suspend(req, ready_answer);
    redis_conn_command(lock_engine_conn(), 1, (const char **)argv, lens, pinged,
                       rd);
}
