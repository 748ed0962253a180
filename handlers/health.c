/* health.c -- /healthz (the process serves) and /readyz (Redis answers). */
#include "handlers.h"

#include "http.h"
#include "lock_engine.h"

void handle_healthz(struct request *req)
{
    reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void handle_readyz(struct request *req)
{
    if (lock_engine_ping() < 0) {
        reply_problem(req, 503, "backend_unavailable",
                      "Redis does not answer PING");
        return;
    }
    reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
}
