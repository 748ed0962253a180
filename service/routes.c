/* routes.c -- every route the service serves, in one table. A new endpoint
 * is one row here plus one handler function in handlers/. */
#include "http.h"

#include "../handlers/handlers.h"

/* Flags: BODY the handler takes a JSON body; AUTH guarded by API keys when
 * they are configured; DEMO exists only with --demo. */
#define BODY .body = true
#define AUTH .needs_auth = true
#define DEMO .demo = true

// clang-format off
const struct route routes[] = {
    {"POST", "/v1/locks/{name}/acquire",        handle_lock_acquire,       BODY, AUTH},
    {"POST", "/v1/locks/{name}/renew",          handle_lock_renew,         BODY, AUTH},
    {"POST", "/v1/locks/{name}/release",        handle_lock_release,       BODY, AUTH},
    {"GET",  "/v1/locks/{name}",                handle_lock_status,        AUTH},
    {"GET",  "/healthz",                        handle_healthz},
    {"GET",  "/readyz",                         handle_readyz},
    {"GET",  "/metrics",                        handle_metrics},
    {"GET",  "/openapi.yaml",                   handle_openapi},
    {"PUT",  "/demo/inventory/{name}",          handle_inventory_put,      BODY, AUTH, DEMO},
    {"GET",  "/demo/inventory/{name}",          handle_inventory_get,      AUTH, DEMO},
    {"POST", "/demo/inventory/{name}/purchase", handle_inventory_purchase, BODY, AUTH, DEMO},
};
// clang-format on

const size_t route_count = sizeof routes / sizeof routes[0];
