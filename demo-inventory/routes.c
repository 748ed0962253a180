/* routes.c -- the demo's routes, served only with --demo. */
#include "http/http.h"

#include "handlers/handlers.h"
#include "inventory.h"

// clang-format off
const struct route demo_routes[] = {
    {"PUT",  "/demo/inventory/{name}",          handle_inventory_put,      ROUTE_BODY | ROUTE_AUTH},
    {"GET",  "/demo/inventory/{name}",          handle_inventory_get,      ROUTE_AUTH},
    {"POST", "/demo/inventory/{name}/purchase", handle_inventory_purchase, ROUTE_BODY | ROUTE_AUTH},
    /* the page, public like /ui/: its calls above carry the key */
    {"GET",  "/demo",                           handle_demo_redirect,      0},
    {"GET",  "/demo/",                          handle_demo_page,          0},
    {"GET",  "/demo/{name}",                    handle_demo_asset,         0},
};
// clang-format on

const size_t demo_route_count = sizeof demo_routes / sizeof demo_routes[0];
