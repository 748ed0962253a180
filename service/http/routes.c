/* routes.c -- every route the service serves, in one table (the demo keeps
 * its own, demo-inventory/routes.c, served only with --demo). A new
 * endpoint is one row here plus one handler function in handlers/. */
#include "http.h"

#include "handlers/handlers.h"

// clang-format off
const struct route service_routes[] = {
    {"GET",  "/v1/locks",                       handle_lock_list,          ROUTE_AUTH},
    {"POST", "/v1/locks/{name}/acquire",        handle_lock_acquire,       ROUTE_BODY | ROUTE_AUTH},
    {"POST", "/v1/locks/{name}/renew",          handle_lock_renew,         ROUTE_BODY | ROUTE_AUTH},
    {"POST", "/v1/locks/{name}/release",        handle_lock_release,       ROUTE_BODY | ROUTE_AUTH},
    {"POST", "/v1/locks/{name}/check",          handle_lock_check,         ROUTE_BODY | ROUTE_AUTH},
    {"GET",  "/v1/locks/{name}",                handle_lock_status,        ROUTE_AUTH},
    {"DELETE", "/v1/locks/{name}",              handle_lock_force_release, ROUTE_AUTH | ROUTE_ADMIN},
    {"GET",  "/v1/semaphores",                  handle_semaphore_list,     ROUTE_AUTH},
    {"POST", "/v1/semaphores/{name}/acquire",   handle_semaphore_acquire,  ROUTE_BODY | ROUTE_AUTH},
    {"POST", "/v1/semaphores/{name}/renew",     handle_semaphore_renew,    ROUTE_BODY | ROUTE_AUTH},
    {"POST", "/v1/semaphores/{name}/release",   handle_semaphore_release,  ROUTE_BODY | ROUTE_AUTH},
    {"GET",  "/v1/semaphores/{name}",           handle_semaphore_status,   ROUTE_AUTH},
    {"DELETE", "/v1/semaphores/{name}",         handle_semaphore_force_release, ROUTE_AUTH | ROUTE_ADMIN},
    {"GET",  "/v1/stats/hot",                   handle_stats_hot,          ROUTE_AUTH},
    {"GET",  "/healthz",                        handle_healthz,            0},
    {"GET",  "/readyz",                         handle_readyz,             0},
    {"GET",  "/metrics",                        handle_metrics,            0},
    {"GET",  "/openapi.yaml",                   handle_openapi,            0},
    {"GET",  "/ui",                             handle_ui_redirect,        0},
    {"GET",  "/ui/",                            handle_ui_page,            0},
    {"GET",  "/ui/{name}",                      handle_ui_asset,           0},
};
// clang-format on

const size_t service_route_count =
    sizeof service_routes / sizeof service_routes[0];
