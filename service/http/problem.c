/* problem.c -- the problem catalogue (see problem.h). */
#include "http/problem.h"

/* The rows, indexed by id. A macro, so that the check below can count them
 * apart from the size problem.h gives problem_catalogue. */
#define PROBLEM_ROWS                                                           \
    {                                                                          \
        [PROBLEM_INVALID_JSON] = {400, "invalid_json", "Bad request"},         \
        [PROBLEM_INVALID_FIELD] = {400, "invalid_field", "Bad request"},       \
        [PROBLEM_INVALID_NAME] = {400, "invalid_name", "Bad request"},         \
        [PROBLEM_INVALID_REQUEST] = {400, "invalid_request", "Bad request"},   \
        [PROBLEM_UNAUTHORIZED] = {401, "unauthorized", "Unauthorized"},        \
        [PROBLEM_FORBIDDEN] = {403, "forbidden", "Forbidden"},                 \
        [PROBLEM_NOT_FOUND] = {404, "not_found", "Not found"},                 \
        [PROBLEM_SKU_NOT_FOUND] = {404, "sku_not_found", "Not found"},         \
        [PROBLEM_METHOD_NOT_ALLOWED] = {405, "method_not_allowed",             \
                                        "Method not allowed"},                 \
        [PROBLEM_LOCK_HELD] = {409, "lock_held", "Lock is held"},              \
        [PROBLEM_NOT_HELD] = {409, "not_held", "Lock is not held"},            \
        [PROBLEM_NOT_OWNER] = {409, "not_owner",                               \
                               "Token does not hold the lock"},                \
        [PROBLEM_HOLD_LIMIT] = {409, "hold_limit", "Conflict"},                \
        [PROBLEM_MODE_CONFLICT] = {409, "mode_conflict", "Conflict"},          \
        [PROBLEM_LIMIT_MISMATCH] = {409, "limit_mismatch", "Conflict"},        \
        [PROBLEM_NO_PERMITS] = {409, "no_permits", "Conflict"},                \
        [PROBLEM_SOLD_OUT] = {409, "sold_out", "Conflict"},                    \
        [PROBLEM_STALE_FENCE] = {409, "stale_fence", "Conflict"},              \
        [PROBLEM_BODY_TOO_LARGE] = {413, "body_too_large", "Body too large"},  \
        [PROBLEM_UNSUPPORTED_MEDIA_TYPE] = {415, "unsupported_media_type",     \
                                            "Unsupported media type"},         \
        [PROBLEM_TOO_MANY_WAITERS] = {429, "too_many_waiters",                 \
                                      "Too many requests"},                    \
        [PROBLEM_INTERNAL_ERROR] = {500, "internal_error", "Internal error"},  \
        [PROBLEM_NOT_IMPLEMENTED] = {501, "not_implemented",                   \
                                     "Not implemented"},                       \
        [PROBLEM_BACKEND_UNAVAILABLE] = {503, "backend_unavailable",           \
                                         "Service unavailable"},               \
        [PROBLEM_SHUTTING_DOWN] = {503, "shutting_down",                       \
                                   "Service unavailable"},                     \
    }

const struct problem problem_catalogue[PROBLEM_COUNT] = PROBLEM_ROWS;

/* A new id whose row is missing at the end of the list (the usual way to add
 * one) fails here; a duplicate index fails -Woverride-init (-Wextra), an
 * index outside the enum fails the sized array, and a row missing in the
 * middle is a zeroed row that tests/unit/test_problem.c finds. */
_Static_assert(sizeof((const struct problem[])PROBLEM_ROWS) ==
                   sizeof problem_catalogue,
               "problem_catalogue needs one row per enum problem_id");

const struct problem *problem_get(enum problem_id id)
{
    if ((unsigned)id >= (unsigned)PROBLEM_COUNT)
        return &problem_catalogue[PROBLEM_INTERNAL_ERROR];
    return &problem_catalogue[id];
}
