/* routes.c -- every route the service serves, in one table. A new endpoint
 * is one row here plus one handler function in handlers/. */
#include "http.h"

#include "../handlers/handlers.h"

const struct route routes[] = {
    /* method  path                          handler          body   auth   demo
     */
    {"POST", "/v1/locks/{name}/acquire", handle_lock_acquire, true, true,
     false},
    {"POST", "/v1/locks/{name}/renew", handle_lock_renew, true, true, false},
    {"POST", "/v1/locks/{name}/release", handle_lock_release, true, true,
     false},
    {"GET", "/v1/locks/{name}", handle_lock_status, false, true, false},
    {"GET", "/healthz", handle_healthz, false, false, false},
    {"GET", "/readyz", handle_readyz, false, false, false},
    {"GET", "/metrics", handle_metrics, false, false, false},
    {"GET", "/openapi.yaml", handle_openapi, false, false, false},
    {"PUT", "/demo/inventory/{name}", handle_inventory_put, true, true, true},
    {"GET", "/demo/inventory/{name}", handle_inventory_get, false, true, true},
    {"POST", "/demo/inventory/{name}/purchase", handle_inventory_purchase, true,
     true, true},
};

const size_t route_count = sizeof routes / sizeof routes[0];
