/* problem.h -- the catalogue of every error a client can be answered with:
 * one row {status, code, title} per problem, indexed by enum problem_id.
 *
 * A call site names the problem (PROBLEM_LOCK_HELD) and writes only the
 * detail; the HTTP status, the machine-readable code and the title come from
 * the row, so the pair (status, code) is typed in one place. Adding an error
 * is one enum value and one row; tests/unit/test_problem.c checks every row
 * against openapi.yaml and README's error table. */
#ifndef LOCKSERVICE_HTTP_PROBLEM_H
#define LOCKSERVICE_HTTP_PROBLEM_H

enum problem_id {
    PROBLEM_INVALID_JSON,
    PROBLEM_INVALID_FIELD,
    PROBLEM_INVALID_NAME,
    PROBLEM_INVALID_REQUEST, /* malformed framing (Content-Length, TE) */
    PROBLEM_UNAUTHORIZED,
    PROBLEM_FORBIDDEN, /* the API key's role may not use the route */
    PROBLEM_NOT_FOUND,
    PROBLEM_SKU_NOT_FOUND,
    PROBLEM_METHOD_NOT_ALLOWED,
    PROBLEM_LOCK_HELD,
    PROBLEM_NOT_HELD,
    PROBLEM_NOT_OWNER,
    PROBLEM_HOLD_LIMIT,
    PROBLEM_MODE_CONFLICT,  /* re-entry asks for the other lock mode */
    PROBLEM_LIMIT_MISMATCH, /* a semaphore's limit differs from the one held */
    PROBLEM_NO_PERMITS,
    PROBLEM_SOLD_OUT,
    PROBLEM_STALE_FENCE,
    PROBLEM_BODY_TOO_LARGE,
    PROBLEM_UNSUPPORTED_MEDIA_TYPE,
    PROBLEM_TOO_MANY_WAITERS,
    PROBLEM_INTERNAL_ERROR,
    PROBLEM_NOT_IMPLEMENTED, /* a Transfer-Encoding other than chunked */
    PROBLEM_BACKEND_UNAVAILABLE,
    PROBLEM_SHUTTING_DOWN,
    PROBLEM_COUNT
};

/* One row: the HTTP status, the problem's "code" member and its "title".
 * The strings are static. */
struct problem {
    unsigned status;
    const char *code;
    const char *title;
};

/* The table, one row per enum problem_id, in enum order. */
extern const struct problem problem_catalogue[PROBLEM_COUNT];

/* The row of id. id must be a problem_id below PROBLEM_COUNT; any other value
 * answers the PROBLEM_INTERNAL_ERROR row, so a corrupt id still yields a
 * well-formed 500 instead of reading past the table. Never NULL. */
const struct problem *problem_get(enum problem_id id);

#endif
