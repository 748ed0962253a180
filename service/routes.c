/* routes.c -- every route the service serves, in one table. A new endpoint
 * is one row here plus one handler function in handlers/. */
#include "http.h"

#include "../handlers/handlers.h"

// clang-format off
const struct route routes[] = {
    {"POST", "/v1/locks/{name}/acquire",        handle_lock_acquire,       ROUTE_BODY | ROUTE_AUTH},
    {"POST", "/v1/locks/{name}/renew",          handle_lock_renew,         ROUTE_BODY | ROUTE_AUTH},
    {"POST", "/v1/locks/{name}/release",        handle_lock_release,       ROUTE_BODY | ROUTE_AUTH},
    {"GET",  "/v1/locks/{name}",                handle_lock_status,        ROUTE_AUTH},
    {"GET",  "/healthz",                        handle_healthz,            0},
    {"GET",  "/readyz",                         handle_readyz,             0},
    {"GET",  "/metrics",                        handle_metrics,            0},
    {"GET",  "/openapi.yaml",                   handle_openapi,            0},
    {"PUT",  "/demo/inventory/{name}",          handle_inventory_put,      ROUTE_BODY | ROUTE_AUTH | ROUTE_DEMO},
    {"GET",  "/demo/inventory/{name}",          handle_inventory_get,      ROUTE_AUTH | ROUTE_DEMO},
    {"POST", "/demo/inventory/{name}/purchase", handle_inventory_purchase, ROUTE_BODY | ROUTE_AUTH | ROUTE_DEMO},
};
// clang-format on

const size_t route_count = sizeof routes / sizeof routes[0];
