/* router.h -- matching a method and a decoded path against the route table
 * (service/http/routes.c). Pure: no HTTP, so the fuzzer drives it directly. */
#ifndef LOCKSERVICE_ROUTER_H
#define LOCKSERVICE_ROUTER_H

#include "http.h"

#include <stdbool.h>
#include <stddef.h>

/* Finds the row of table serving method on url ("GET" rows serve HEAD
 * too). Returns its index, or -1; *path_route is
 * the first row whose path matches whatever the method (-1 if none), so the
 * caller can tell 404 from 405. The {name} segment is copied into param
 * (truncated to param_size - 1) and its full length stored in *param_len. */
int router_match(const struct route *table, size_t count, const char *method,
                 const char *url, char *param, size_t param_size,
                 size_t *param_len, int *path_route);

#endif
