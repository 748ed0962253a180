/* reply.c -- every response of the service is written here; see http.h.
 * Problems come from the catalogue (problem.c): the caller names a row and
 * gives a detail, the status, code and title are the row's. */
#include "http.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "request.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void queue(struct request *req, struct MHD_Response *resp,
                  unsigned status)
{
    if (req->status != 0) {
        /* A second reply is a handler bug; the first one stands. */
        log_error("%s %s: second response %u ignored", req->method,
                  req->route ? req->route->pattern : "-", status);
        MHD_destroy_response(resp);
        return;
    }
    /* API answers are never cached; a page asset says otherwise itself. */
    if (MHD_get_response_header(resp, "Cache-Control") == NULL)
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (req->request_id[0] != '\0')
        MHD_add_response_header(resp, "X-Request-Id", req->request_id);
    if (MHD_queue_response(req->conn, status, resp) == MHD_YES)
        req->status = status;
    else
        req->status = 500; /* connection is going away; log it as such */
    MHD_destroy_response(resp);
    /* Counted now, not at completion: a client that has read this answer
     * and then scrapes /metrics must find it there. */
    metrics_request(req->route_index, req->method, req->status,
                    clock_now_ns() - req->start_ns);
}

/* Allow: every method of the routes sharing route's path, HEAD with GET. */
static void add_allow_header(struct MHD_Response *resp,
                             const struct route *route)
{
    char allow[128];
    size_t len = 0;

    for (size_t i = 0; route != NULL && i < route_count; i++) {
        if (strcmp(routes[i].pattern, route->pattern) != 0)
            continue;
        int n = snprintf(allow + len, sizeof allow - len, "%s, %s",
                         routes[i].method,
                         strcmp(routes[i].method, "GET") == 0 ? "HEAD, " : "");
        if (n < 0 || (size_t)n >= sizeof allow - len)
            break;
        len += (size_t)n;
    }
    snprintf(allow + len, sizeof allow - len, "OPTIONS");
    MHD_add_response_header(resp, "Allow", allow);
}

void reply_raw(struct request *req, unsigned status, const char *content_type,
               const char *data, size_t len, bool copy)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)data,
        copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);

    if (resp == NULL)
        return;
    if (content_type != NULL)
        MHD_add_response_header(resp, "Content-Type", content_type);
    if (status == 204)
        add_allow_header(resp, req->route);
    queue(req, resp, status);
}

void reply_raw_headers(struct request *req, unsigned status,
                       const char *content_type, const char *data, size_t len,
                       const struct reply_header *headers, size_t n)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)data, MHD_RESPMEM_PERSISTENT);

    if (resp == NULL)
        return;
    if (content_type != NULL)
        MHD_add_response_header(resp, "Content-Type", content_type);
    for (size_t i = 0; i < n; i++)
        MHD_add_response_header(resp, headers[i].name, headers[i].value);
    queue(req, resp, status);
}

/* Serialises body (stolen) into a response. */
static struct MHD_Response *json_response(json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    struct MHD_Response *resp;

    json_decref(body);
    if (text == NULL)
        return NULL;
    resp = MHD_create_response_from_buffer(strlen(text), text,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp == NULL)
        free(text);
    return resp;
}

void reply_json(struct request *req, unsigned status, json_t *body)
{
    struct MHD_Response *resp = json_response(body);

    if (resp == NULL)
        return;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    queue(req, resp, status);
}

static void reply_problem_va(struct request *req, enum problem_id id,
                             json_t *extra, int64_t retry_after_s,
                             const char *fmt, va_list ap)
{
    const struct problem *p = problem_get(id);
    char detail[512], header[24];
    struct MHD_Response *resp;
    json_t *body;

    vsnprintf(detail, sizeof detail, fmt, ap);
    /* Details may quote client bytes (a path, a parser message): keep them
     * printable ASCII so the JSON is valid whatever was sent. */
    for (char *c = detail; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    body = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "about:blank",
                     "title", p->title, "status", (int)p->status, "code",
                     p->code, "detail", detail);
    if (body == NULL) {
        json_decref(extra);
        return;
    }
    if (extra != NULL) {
        json_object_update(body, extra);
        json_decref(extra);
    }
    resp = json_response(body);
    if (resp == NULL)
        return;
    MHD_add_response_header(resp, "Content-Type", "application/problem+json");
    if (req->status == 0)
        req->problem_code = p->code;
    if (retry_after_s > 0) {
        snprintf(header, sizeof header, "%lld", (long long)retry_after_s);
        MHD_add_response_header(resp, "Retry-After", header);
    }
    switch (id) {
    case PROBLEM_UNAUTHORIZED:
        MHD_add_response_header(resp, "WWW-Authenticate",
                                "Bearer realm=\"lockservice\"");
        break;
    case PROBLEM_METHOD_NOT_ALLOWED:
        add_allow_header(resp, req->route);
        break;
    case PROBLEM_INVALID_REQUEST:
    case PROBLEM_NOT_IMPLEMENTED:
        /* Framing we do not trust: whatever follows on this connection is
         * not read as another request. */
        MHD_add_response_header(resp, "Connection", "close");
        break;
    default:
        break;
    }
    queue(req, resp, p->status);
}

void reply_problem(struct request *req, enum problem_id id, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_problem_va(req, id, NULL, 0, fmt, ap);
    va_end(ap);
}

void reply_problem_ex(struct request *req, enum problem_id id, json_t *extra,
                      int64_t retry_after_s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_problem_va(req, id, extra, retry_after_s, fmt, ap);
    va_end(ap);
}

void reply_field_problem(struct request *req, const struct field_problem *p)
{
    reply_problem(req,
                  p->error == FIELD_INVALID_JSON ? PROBLEM_INVALID_JSON
                                                 : PROBLEM_INVALID_FIELD,
                  "%s", p->detail);
}

void reply_backend_error(struct request *req, const struct redis_error *err)
{
    switch (err->failure) {
    case REDIS_FAIL_REPLY:
        reply_problem(req, PROBLEM_BACKEND_UNAVAILABLE,
                      "Redis refused the command: %s", err->detail);
        break;
    case REDIS_FAIL_TIMEOUT:
        reply_problem(req, PROBLEM_BACKEND_UNAVAILABLE,
                      "Redis did not answer within %lld ms",
                      (long long)req->cfg->redis_timeout_ms);
        break;
    case REDIS_FAIL_STOPPING:
        reply_problem(req, PROBLEM_SHUTTING_DOWN,
                      "the service is shutting down; retry elsewhere");
        break;
    default:
        reply_problem(req, PROBLEM_BACKEND_UNAVAILABLE, "%s",
                      err->detail[0] ? err->detail : "Redis is unreachable");
        break;
    }
}
