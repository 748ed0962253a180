/* health.c -- /healthz (the process serves) and /readyz (Redis answers,
 * and which Redis: the master in use; in a cluster, every master). */
#include "handlers.h"
#include "redis/cluster.h"
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
    size_t pending; /* PINGs not answered yet */
    bool up;
    struct redis_error err; /* the first failure */
};

static void pinged(void *ctx, const redisReply *r,
                   const struct redis_error *err)
{
    struct readiness *rd = ctx;

    (void)r;
    if (err != NULL && rd->up)
        rd->err = *err;
    rd->up = rd->up && err == NULL;
    if (--rd->pending == 0)
        request_resume(rd->req);
}

static void ready_answer(struct request *req)
{
    struct readiness *rd = req->state;
    char policy[32], at[CLUSTER_NODES_MAX * 24];
    json_t *body, *warnings;

    if (rd->up && redis_cluster_enabled() && !cluster_serves_all()) {
        rd->up = false;
        rd->err.failure = REDIS_FAIL_DOWN;
        snprintf(rd->err.detail, sizeof rd->err.detail, "%s",
                 "some Redis Cluster slots have no master");
    }
    if (!rd->up) {
        reply_backend_error(req, &rd->err);
        return;
    }
    if (redis_cluster_enabled())
        cluster_describe(at, sizeof at);
    else
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
    int ids[CLUSTER_NODES_MAX];
    size_t n = redis_route_masters(ids, CLUSTER_NODES_MAX);

    if (rd == NULL) {
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "out of memory");
        return;
    }
    rd->req = req;
    req->state = rd;
    req->state_free = free;
    if (n == 0) {
        struct redis_error e = {REDIS_FAIL_DOWN,
                                "the Redis Cluster's slot map is not known "
                                "yet"};
        reply_backend_error(req, &e);
        return;
    }
    rd->up = true;
    rd->pending = n;
    request_suspend(req, ready_answer);
    for (size_t i = 0; i < n; i++)
        redis_route_command_at(lock_engine_route(), ids[i], 1,
                               (const char **)argv, lens, pinged, rd);
}
