/* http.h -- the HTTP layer: libmicrohttpd driven by each worker's own loop,
 * the request handlers see, and the one place responses are written.
 *
 * Requests are explicit continuations. A handler that needs Redis (or a
 * timed pause) suspends its request with the function to run next, starts
 * the engine call, and returns; the call's completion resumes the request
 * and that function runs, on the same worker thread. A handler never runs
 * again from the top. */
#ifndef LOCKSERVICE_HTTP_H
#define LOCKSERVICE_HTTP_H

#include "config.h"
#include "http/auth.h"
#include "http/problem.h"
#include "lock/engine.h"
#include "loop.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct request;
typedef void handler_fn(struct request *req);

/* Route flags. */
#define ROUTE_BODY 1u /* the handler takes a JSON body */
#define ROUTE_AUTH 2u /* guarded by API keys when they are configured */
/* Only for admin keys when keys are configured (403 forbidden for the
 * others); open like the rest when none are. Implies ROUTE_AUTH. */
#define ROUTE_ADMIN 4u
#define ROUTE_ADMIN 4u /* needs an admin key when keys are configured */

/* One row of a route table. pattern is a path where "{name}" matches one
 * segment; GET routes answer HEAD too. */
struct route {
    const char *method;
    const char *pattern;
    handler_fn *handler;
    unsigned flags;
};

/* The service's routes (routes.c) and the demo's (demo-inventory/), which
 * are served only with --demo. */
extern const struct route service_routes[];
extern const size_t service_route_count;
extern const struct route demo_routes[];
extern const size_t demo_route_count;

/* The table requests are routed by: the service's routes, then the demo's
 * when cfg->demo. Built by http_start. */
extern const struct route *routes;
extern size_t route_count;

struct conn_record;

#define REQUEST_ID_MAX 64

/* A request, owned by the HTTP layer from its first header to its end. */
struct request {
    struct MHD_Connection *conn;
    struct conn_record *rec;
    const struct config *cfg;
    const struct route *route; /* NULL until routed */
    int route_index;
    const char *method;            /* as received (borrowed from MHD) */
    char param[LOCK_NAME_MAX + 1]; /* the {name} segment, validated */
    /* param as the engine sees it: "<namespace>/<param>" when the API key
     * has a namespace, else param. Replies show param. */
    char name[SCOPED_NAME_MAX + 1];
    /* The API key that admitted the request: its name (for the logs), role
     * and namespace, copied, since a SIGHUP may replace the key set while
     * the request lives. key.name is "" when no key was checked (keys off,
     * or an open route). */
    struct api_identity key;
    char *body; /* raw body, malloc'd, at most max_body_bytes */
    size_t body_len, body_cap;
    json_t *json; /* parsed body object (owned), or NULL */
    bool body_too_large;
    unsigned status; /* status of the queued response, 0 if none */
    /* The problem code of the queued response when it is a problem (a
     * catalogue string), else NULL; for the access log. */
    const char *problem_code;
    /* X-Request-Id: the client's when valid (1..REQUEST_ID_MAX of
     * [A-Za-z0-9._:-]), else 16 random hex digits; echoed in the answer and
     * in the access log. */
    char request_id[REQUEST_ID_MAX + 1];
    uint64_t start_ns;
    /* Continuation: runs when a suspended request is resumed. */
    handler_fn *next;
    bool suspended;
    bool client_gone; /* hung up while parked: nobody to answer */
    /* Runs when the request ends without its answer delivered (the
     * client hung up, the service stopped): undoes what the answer would
     * have told (a lease nobody knows the token of). NULL: nothing. */
    handler_fn *undo;
    /* The handler's own state across suspensions, freed with the request
     * by state_free (NULL: nothing to free). */
    void *state;
    void (*state_free)(void *state);
    struct timer sleep; /* request_sleep */
    bool sleeping;      /* ... and holds a waiter slot */
    /* The lock call most handlers make (request_lock_call). */
    struct lock_call lock;
};

/* Starts the workers and the listener. Returns 0 or -1 (logged). */
int http_start(const struct config *cfg);
/* Graceful shutdown, phase one: stops accepting, and parked waiters are
 * answered 503 shutting_down. */
void http_quiesce(void);
/* Requests now between their first callback and their end. */
unsigned http_inflight(void);
/* Phase two: stops the workers (what is still in flight fails). */
void http_stop(void);

/* Suspends req: the handler returns, and next runs once request_resume is
 * called (from a completion, on the worker's thread). */
void request_suspend(struct request *req, handler_fn *next);
void request_resume(struct request *req);
/* Suspends req for ms milliseconds, then runs next. The pause takes one of
 * the instance's --max-waiters slots: returns false (nothing suspended)
 * when they are all taken. */
bool request_sleep(struct request *req, int64_t ms, handler_fn *next);
/* The request's lock call, zeroed, of kind, for name; its completion
 * resumes req (so: request_suspend(req, next) before starting it), and
 * while it waits the client is watched for a hang-up. */
struct lock_call *request_lock_call(struct request *req,
                                    const struct lock_kind *kind,
                                    const char *name);

/* The value of query parameter key ("" for "?key"), or NULL when absent;
 * borrowed from libmicrohttpd for the request's life. */
const char *request_query(struct request *req, const char *key);
/* Checks that every query parameter of req is one of the NULL-terminated
 * allowed names, each given once. Returns 0, or -1 with *prob filled
 * (invalid_field naming the parameter). */
struct field_problem;
int request_query_known(struct request *req, const char *const *allowed,
                        struct field_problem *prob);

/* True when the client has hung up (its socket shows end-of-file):
 * then req ends unanswered, and the handler replies nothing. */
bool request_client_gone(struct request *req);

/* Every reply goes through these; each queues exactly one response.
 * reply_json steals the reference to body. */
void reply_json(struct request *req, unsigned status, json_t *body);
/* A problem+json reply of catalogue row id with a printf detail. */
void reply_problem(struct request *req, enum problem_id id, const char *fmt,
                   ...) __attribute__((format(printf, 3, 4)));
/* As reply_problem, merging the members of extra (stolen, may be NULL) into
 * the problem object and sending a Retry-After of retry_after_s when > 0. */
void reply_problem_ex(struct request *req, enum problem_id id, json_t *extra,
                      int64_t retry_after_s, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* A non-JSON body (metrics, the OpenAPI document); data must outlive the
 * response when copy is false. */
void reply_raw(struct request *req, unsigned status, const char *content_type,
               const char *data, size_t len, bool copy);

/* A header of reply_raw_headers. */
struct reply_header {
    const char *name;
    const char *value;
};
/* As reply_raw with data that outlives the response (embedded pages), plus
 * n more headers. A Cache-Control among them replaces the no-store every
 * other answer carries. */
void reply_raw_headers(struct request *req, unsigned status,
                       const char *content_type, const char *data, size_t len,
                       const struct reply_header *headers, size_t n);

/* The problem for a failed body field, 400 invalid_json or invalid_field. */
struct field_problem;
void reply_field_problem(struct request *req, const struct field_problem *p);
/* The problem for a Redis failure: 503 backend_unavailable, its detail
 * saying why (unreachable, timed out, an error reply). */
void reply_backend_error(struct request *req, const struct redis_error *err);

#endif
