/* http.h -- the HTTP server: libmicrohttpd in epoll thread-pool mode with
 * suspend/resume, the per-request context handlers see, and the one place
 * responses are written. */
#ifndef LOCKSERVICE_HTTP_H
#define LOCKSERVICE_HTTP_H

#include "config.h"
#include "waiters.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct request;
typedef void (*handler_fn)(struct request *req);

/* Route flags. */
#define ROUTE_BODY 1u /* the handler takes a JSON body */
#define ROUTE_AUTH 2u /* guarded by API keys when they are configured */
#define ROUTE_DEMO 4u /* exists only with --demo */

/* One row of the route table. pattern is a path where "{name}" matches one
 * segment; GET routes answer HEAD too. */
struct route {
    const char *method;
    const char *pattern;
    handler_fn handler;
    unsigned flags;
};

extern const struct route routes[];
extern const size_t route_count;

/* Per-request state, owned by the server from the first header callback to
 * the request-completed callback, which frees it. */
struct request {
    struct MHD_Connection *conn;
    const struct config *cfg;
    const struct route *route; /* NULL until routed */
    int route_index;
    const char *method;            /* as received (borrowed from MHD) */
    char param[LOCK_NAME_MAX + 1]; /* the {name} segment, validated */
    char *body; /* raw body, malloc'd, at most max_body_bytes */
    size_t body_len, body_cap;
    json_t *json; /* parsed body object (owned), or NULL */
    bool body_too_large;
    unsigned status; /* status of the queued response, 0 if none */
    uint64_t start_ns;
    struct waiter waiter; /* used while the request waits */
    bool suspended;       /* the handler suspended the connection */
    void *state;          /* the handler's own state across resumes */
    void (*state_free)(void *state);
    /* Called (on the connection's thread) when the request ends, answered
     * or not (its client may have hung up while it was parked); NULL for
     * none. */
    void (*on_end)(struct request *req);
};

/* Starts the daemon. Returns 0 or -1 (logged). */
int http_start(const struct config *cfg);
/* Stops accepting new connections (graceful shutdown, phase one). */
void http_quiesce(void);
/* Requests now between their first callback and completion. */
unsigned http_inflight(void);
void http_stop(void);

/* Every reply goes through these. Each queues exactly one response;
 * reply_json steals the reference to body. */
void reply_json(struct request *req, unsigned status, json_t *body);
void reply_problem(struct request *req, unsigned status, const char *code,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* As reply_problem, merging the members of extra (stolen, may be NULL) into
 * the problem object and sending a Retry-After of retry_after_s when > 0. */
void reply_problem_ex(struct request *req, unsigned status, const char *code,
                      json_t *extra, int64_t retry_after_s, const char *fmt,
                      ...) __attribute__((format(printf, 6, 7)));
/* A non-JSON body (metrics, the OpenAPI document); data must outlive the
 * response when copy is false. */
void reply_raw(struct request *req, unsigned status, const char *content_type,
               const char *data, size_t len, bool copy);

/* Suspends req until lock name may be free (see waiters_wait); on WAIT_OK
 * the handler returns and runs again when req->waiter.wake says why. */
enum waiters_result request_wait_lock(struct request *req, const char *name,
                                      uint64_t attempt_ns, uint64_t retry_at_ns,
                                      uint64_t deadline_ns);
/* Suspends req until until_ns; the handler runs again with WAKE_TIMER. */
enum waiters_result request_sleep(struct request *req, uint64_t until_ns);

/* The problem for a failed body field, 400 invalid_json or invalid_field. */
struct field_problem;
void reply_field_problem(struct request *req, const struct field_problem *p);

#endif
