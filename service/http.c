/* http.c -- the HTTP server; see http.h. The route table lives in routes.c;
 * this file turns connections into requests, routes them, checks what every
 * route shares (name, auth, body size, content type, JSON) and writes
 * responses. */
#include "http.h"

#include "clock.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "router.h"
#include "token.h"

#include <ctype.h>
#include <limits.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static struct MHD_Daemon *daemon_handle;
static const struct config *conf;
static atomic_uint inflight;

/* ---- responses ----------------------------------------------------------*/

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
    MHD_add_response_header(resp, "Cache-Control", "no-store");
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

void reply_raw(struct request *req, unsigned status, const char *content_type,
               const char *data, size_t len, bool copy)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)data,
        copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);

    if (resp == NULL)
        return;
    MHD_add_response_header(resp, "Content-Type", content_type);
    queue(req, resp, status);
}

/* Serialises body (stolen) and queues it with content_type. */
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

/* Allow: every method of the routes sharing route's path, HEAD with GET. */
static void add_allow_header(struct MHD_Response *resp,
                             const struct route *route)
{
    char allow[128] = "";
    size_t i;

    for (i = 0; route != NULL && i < route_count; i++) {
        if (strcmp(routes[i].pattern, route->pattern) != 0)
            continue;
        if ((routes[i].flags & ROUTE_DEMO) && !conf->demo)
            continue;
        strncat(allow, routes[i].method, sizeof allow - strlen(allow) - 1);
        strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
        if (strcmp(routes[i].method, "GET") == 0)
            strncat(allow, "HEAD, ", sizeof allow - strlen(allow) - 1);
    }
    strncat(allow, "OPTIONS", sizeof allow - strlen(allow) - 1);
    MHD_add_response_header(resp, "Allow", allow);
}

static const char *status_title(unsigned status, const char *code)
{
    if (strcmp(code, "lock_held") == 0)
        return "Lock is held";
    if (strcmp(code, "not_held") == 0)
        return "Lock is not held";
    if (strcmp(code, "not_owner") == 0)
        return "Token does not hold the lock";
    switch (status) {
    case 400:
        return "Bad request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not found";
    case 405:
        return "Method not allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Body too large";
    case 415:
        return "Unsupported media type";
    case 429:
        return "Too many requests";
    case 503:
        return "Service unavailable";
    default:
        return "Error";
    }
}

static void reply_problem_va(struct request *req, unsigned status,
                             const char *code, json_t *extra,
                             int64_t retry_after_s, const char *fmt, va_list ap)
{
    char detail[512], header[24];
    struct MHD_Response *resp;
    json_t *body;

    vsnprintf(detail, sizeof detail, fmt, ap);
    /* Details may quote client bytes (a path, a parser message): keep them
     * printable ASCII so the JSON is valid whatever was sent. */
    for (char *p = detail; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    body = json_pack("{s:s, s:s, s:i, s:s, s:s}", "type", "about:blank",
                     "title", status_title(status, code), "status", (int)status,
                     "code", code, "detail", detail);
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
    if (retry_after_s > 0) {
        snprintf(header, sizeof header, "%lld", (long long)retry_after_s);
        MHD_add_response_header(resp, "Retry-After", header);
    }
    if (status == 401)
        MHD_add_response_header(resp, "WWW-Authenticate",
                                "Bearer realm=\"lockservice\"");
    if (status == 405)
        add_allow_header(resp, req->route);
    queue(req, resp, status);
}

void reply_problem(struct request *req, unsigned status, const char *code,
                   const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_problem_va(req, status, code, NULL, 0, fmt, ap);
    va_end(ap);
}

void reply_problem_ex(struct request *req, unsigned status, const char *code,
                      json_t *extra, int64_t retry_after_s, const char *fmt,
                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_problem_va(req, status, code, extra, retry_after_s, fmt, ap);
    va_end(ap);
}

void reply_field_problem(struct request *req, const struct field_problem *p)
{
    reply_problem(req, 400,
                  p->error == FIELD_INVALID_JSON ? "invalid_json"
                                                 : "invalid_field",
                  "%s", p->detail);
}

/* ---- waiting ------------------------------------------------------------*/

static enum waiters_result suspended_if_ok(struct request *req,
                                           enum waiters_result r)
{
    req->suspended = r == WAIT_OK;
    return r;
}

enum waiters_result request_wait_lock(struct request *req, const char *name,
                                      uint64_t attempt_ns, uint64_t retry_at_ns,
                                      uint64_t deadline_ns)
{
    return suspended_if_ok(req,
                           waiters_wait(&req->waiter, req->conn, name,
                                        attempt_ns, retry_at_ns, deadline_ns));
}

enum waiters_result request_sleep(struct request *req, uint64_t until_ns)
{
    return suspended_if_ok(req,
                           waiters_sleep(&req->waiter, req->conn, until_ns));
}

/* ---- routing ------------------------------------------------------------*/

/* Constant-time check of the Authorization header against every key. */
static bool authorized(struct MHD_Connection *conn)
{
    const char *h =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    char given[API_KEY_MAX + 1] = {0};
    size_t len, i;
    bool ok = false;

    if (conf->api_key_count == 0)
        return true;
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    len = strlen(h);
    if (len > API_KEY_MAX)
        return false;
    memcpy(given, h, len);
    for (i = 0; i < conf->api_key_count; i++) {
        const struct api_key *k = &conf->api_keys[i];
        char want[API_KEY_MAX + 1] = {0};
        bool same;

        memcpy(want, k->key, k->key_len);
        same = secret_equal(given, want, sizeof want) && len == k->key_len;
        ok |= same;
    }
    return ok;
}

static bool content_type_json(struct MHD_Connection *conn)
{
    const char *ct =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    size_t n = strlen("application/json");

    if (ct == NULL || strncasecmp(ct, "application/json", n) != 0)
        return false;
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* True when the request announces a body (Content-Length > 0 or chunked). */
static bool has_body(struct MHD_Connection *conn, unsigned long long *length)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    const char *te =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");

    *length = cl ? strtoull(cl, NULL, 10) : 0;
    return *length > 0 || (te != NULL && strcasecmp(te, "identity") != 0);
}

/* Checks what every route shares, before any body arrives. Returns true when
 * the request may go on; otherwise a response is queued. */
static bool admit(struct request *req, const char *url)
{
    size_t param_len = 0;
    unsigned long long length;
    int path_route;
    bool body;

    req->route_index =
        router_match(routes, route_count, conf->demo, req->method, url,
                     req->param, sizeof req->param, &param_len, &path_route);
    if (req->route_index < 0 && path_route < 0) {
        reply_problem(req, 404, "not_found", "no route for %s",
                      strlen(url) <= 128 ? url : "this path");
        return false;
    }
    req->route = &routes[req->route_index >= 0 ? req->route_index : path_route];
    if ((req->route->flags & ROUTE_AUTH) && !authorized(req->conn)) {
        reply_problem(req, 401, "unauthorized",
                      "send Authorization: Bearer <api key>");
        return false;
    }
    if (req->route_index < 0) {
        if (strcmp(req->method, "OPTIONS") == 0) {
            struct MHD_Response *resp = MHD_create_response_from_buffer(
                0, NULL, MHD_RESPMEM_PERSISTENT);
            add_allow_header(resp, req->route);
            queue(req, resp, 204);
            return false;
        }
        reply_problem(req, 405, "method_not_allowed", "%s is not allowed here",
                      req->method);
        return false;
    }
    if (strstr(req->route->pattern, "{name}") != NULL &&
        !lock_name_valid(req->param, param_len)) {
        reply_problem(req, 400, "invalid_name",
                      "names are 1 to %d characters of A-Z a-z 0-9 . _ : -",
                      LOCK_NAME_MAX);
        return false;
    }
    body = has_body(req->conn, &length);
    if (length > conf->max_body_bytes) {
        reply_problem(req, 413, "body_too_large",
                      "body is larger than %zu bytes", conf->max_body_bytes);
        return false;
    }
    if (body && (req->route->flags & ROUTE_BODY) &&
        !content_type_json(req->conn)) {
        reply_problem(req, 415, "unsupported_media_type",
                      "send the body as Content-Type: application/json");
        return false;
    }
    return true;
}

/* ---- slow clients -------------------------------------------------------*/

/* libmicrohttpd's timeout counts idle time only, so a client trickling one
 * byte a second would hold its connection forever. Each connection is
 * tracked from accept (or from the end of its previous request) until its
 * request is complete; the reaper shuts down the socket of one that takes
 * longer than the idle timeout to deliver a whole request. */
struct conn_track {
    struct conn_track *prev, *next;
    int fd;
    _Atomic uint64_t receiving_since_ns; /* 0: a request is being handled */
};

static pthread_mutex_t track_mu = PTHREAD_MUTEX_INITIALIZER;
static struct conn_track *track_head;
static pthread_t reaper;
static bool reaper_started;
static atomic_bool reaper_stop;

static struct conn_track *conn_track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void conn_track_busy(struct MHD_Connection *conn)
{
    struct conn_track *t = conn_track_of(conn);
    if (t != NULL)
        atomic_store(&t->receiving_since_ns, 0);
}

static void conn_track_receiving(struct MHD_Connection *conn)
{
    struct conn_track *t = conn_track_of(conn);
    if (t != NULL)
        atomic_store(&t->receiving_since_ns, clock_now_ns());
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode what)
{
    struct conn_track *t = *socket_context;
    const union MHD_ConnectionInfo *ci;

    (void)cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        t = calloc(1, sizeof *t);
        if (t == NULL)
            return;
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        t->fd = ci ? ci->connect_fd : -1;
        atomic_store(&t->receiving_since_ns, clock_now_ns());
        pthread_mutex_lock(&track_mu);
        t->next = track_head;
        if (track_head)
            track_head->prev = t;
        track_head = t;
        pthread_mutex_unlock(&track_mu);
        *socket_context = t;
        return;
    }
    listener_connection_closed();
    if (t == NULL)
        return;
    /* Unlinked before libmicrohttpd closes the socket, so the reaper never
     * touches a descriptor that may have been reused. */
    pthread_mutex_lock(&track_mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        track_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&track_mu);
    free(t);
    *socket_context = NULL;
}

static void *reaper_thread(void *arg)
{
    uint64_t limit = MS_TO_NS((uint64_t)conf->idle_timeout_s * 1000);

    (void)arg;
    while (!atomic_load(&reaper_stop)) {
        uint64_t now = clock_now_ns();
        struct conn_track *t;
        unsigned cut = 0;

        pthread_mutex_lock(&track_mu);
        for (t = track_head; t != NULL; t = t->next) {
            /* A worker may have stamped it after now was read. */
            uint64_t since = atomic_load(&t->receiving_since_ns);
            if (since != 0 && now > since && now - since > limit &&
                t->fd >= 0) {
                shutdown(t->fd, SHUT_RDWR);
                atomic_store(&t->receiving_since_ns, 0);
                cut++;
            }
        }
        pthread_mutex_unlock(&track_mu);
        /* Logged outside the lock every connection event takes. */
        if (cut > 0)
            log_debug("http: closed %u connection(s) that sent no complete "
                      "request in %u s",
                      cut, conf->idle_timeout_s);
        usleep(250000);
    }
    return NULL;
}

/* Decodes %HH escapes in place, except %00: a NUL would cut the path short
 * and route the request somewhere its sender did not name. Left encoded,
 * it fails name validation or routing like any other stray '%'. */
static size_t unescape_path(void *cls, struct MHD_Connection *conn, char *s)
{
    char *in = s, *out = s;

    (void)cls;
    (void)conn;
    while (*in != '\0') {
        unsigned hi, lo;
        if (in[0] == '%' && isxdigit((unsigned char)in[1]) &&
            isxdigit((unsigned char)in[2])) {
            hi = (unsigned)(isdigit((unsigned char)in[1])
                                ? in[1] - '0'
                                : (tolower((unsigned char)in[1]) - 'a' + 10));
            lo = (unsigned)(isdigit((unsigned char)in[2])
                                ? in[2] - '0'
                                : (tolower((unsigned char)in[2]) - 'a' + 10));
            if (hi != 0 || lo != 0) {
                *out++ = (char)(hi << 4 | lo);
                in += 3;
                continue;
            }
        }
        *out++ = *in++;
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* ---- libmicrohttpd callbacks --------------------------------------------*/

/* Runs the handler of a routed request whose body is complete (or that was
 * resumed). */
static void dispatch(struct request *req)
{
    struct field_problem prob;

    if (req->body_too_large) {
        reply_problem(req, 413, "body_too_large",
                      "body is larger than %zu bytes", conf->max_body_bytes);
        return;
    }
    if ((req->route->flags & ROUTE_BODY) && req->json == NULL) {
        req->json = body_parse_object(req->body, req->body_len,
                                      conf->max_json_depth, &prob);
        if (req->json == NULL) {
            reply_field_problem(req, &prob);
            return;
        }
        /* A waiting request keeps only the parsed object. */
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
    }
    conn_track_busy(req->conn);
    req->suspended = false;
    req->route->handler(req);
    if (req->status == 0 && !req->suspended) {
        log_error("handler for %s queued no response", req->route->pattern);
        reply_problem(req, 500, "internal_error", "internal error");
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    struct request *req = *con_cls;

    (void)cls;
    (void)version;
    if (req == NULL) {
        req = calloc(1, sizeof *req);
        if (req == NULL) {
            log_error("http: out of memory for a request; closing it");
            return MHD_NO;
        }
        req->conn = conn;
        req->cfg = conf;
        req->method = method;
        req->route_index = -1;
        req->start_ns = clock_now_ns();
        req->waiter.fd = -1;
        *con_cls = req;
        atomic_fetch_add(&inflight, 1);
        /* Refused, and not even the refusal could be queued (out of
         * memory): close rather than ever dispatch it. */
        if (!admit(req, url) && req->status == 0) {
            log_error("http: out of memory for a refusal; closing it");
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->status != 0 || req->body_too_large)
            return MHD_YES; /* answered already, or discarding */
        if (req->body_len + n > conf->max_body_bytes) {
            req->body_too_large = true;
            free(req->body);
            req->body = NULL;
            req->body_len = req->body_cap = 0;
            return MHD_YES;
        }
        if (req->body_len + n > req->body_cap) {
            /* Grow to what arrived (usually the whole Content-Length in one
             * call), doubling, never past the limit. */
            size_t cap = req->body_cap ? req->body_cap * 2 : 256;
            char *grown;
            while (cap < req->body_len + n)
                cap *= 2;
            if (cap > conf->max_body_bytes)
                cap = conf->max_body_bytes;
            grown = realloc(req->body, cap);
            if (grown == NULL) {
                log_error("http: out of memory for a body; closing it");
                return MHD_NO;
            }
            req->body = grown;
            req->body_cap = cap;
        }
        memcpy(req->body + req->body_len, upload, n);
        req->body_len += n;
        return MHD_YES;
    }
    if (req->status != 0)
        return MHD_YES;
    if (req->waiter.wake == WAKE_CLIENT_GONE)
        return MHD_NO; /* nobody to answer: on_completed follows */
    dispatch(req);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    struct request *req = *con_cls;
    uint64_t dur;

    (void)cls;
    if (req == NULL)
        return;
    conn_track_receiving(conn);
    waiters_done(&req->waiter);
    dur = clock_now_ns() - req->start_ns;
    if (req->status == 0) { /* never answered: the client went away */
        req->status = why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 200 : 499;
        metrics_request(req->route_index, req->method, req->status, dur);
    }
    /* Here, not on resumption: libmicrohttpd may see a hung-up client's
     * closed socket and end the request without calling the handler again. */
    if (req->on_end != NULL)
        req->on_end(req);
    if (log_enabled(LOG_INFO))
        log_info("%s %s %u %.3fms%s", req->method,
                 req->route ? req->route->pattern : "-", req->status,
                 (double)dur / 1e6,
                 why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
                                                            : " (aborted)");
    if (req->state_free != NULL)
        req->state_free(req->state);
    json_decref(req->json);
    free(req->body);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&inflight, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];

    (void)cls;
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    /* Our own MHD_NO reads as an "internal error" to libmicrohttpd: for a
     * waiter whose client hung up that is expected, and every other one
     * logs its own reason at error level first; so this one only at debug. */
    if (strstr(line, "Application reported internal error") != NULL)
        log_debug("http: %s", line);
    else
        log_warn("http: %s", line);
}

/* libmicrohttpd's own connection limit, set where it never binds: the
 * listener enforces --max-connections over all workers, and libmicrohttpd's
 * limit is split per worker, so at the limit it would refuse a connection
 * one worker has no room for while another has. Worse, in 0.9.75 refusing
 * one handed over by MHD_add_connection leaves a mutex locked, and that
 * worker hangs. The listener has at most max connections open; a worker may
 * count a closed one a moment longer (up to one per worker), hence the
 * slack. */
static unsigned mhd_connection_limit(const struct config *cfg)
{
    unsigned workers = cfg->threads > 1 ? cfg->threads : 1;
    uint64_t per_worker = (uint64_t)cfg->max_connections + workers + 1;
    uint64_t total = per_worker * workers;

    return total > UINT_MAX ? UINT_MAX : (unsigned)total;
}

int http_start(const struct config *cfg)
{
    /* No listening socket of its own: listener.c accepts and hands each
     * connection over. */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;

    conf = cfg;
    if (listener_open(cfg->listen_host, cfg->listen_port, cfg->listen_ipv6) !=
        0)
        return -1;
    /* A pool of one is no pool, and libmicrohttpd warns about a size of 0
     * or 1: the option is left out then. */
    struct MHD_OptionItem pool[] = {
        {cfg->threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END,
         (intptr_t)cfg->threads, NULL},
        {MHD_OPTION_END, 0, NULL}};

    /* The logger goes first so that option errors reach it. */
    daemon_handle = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT, mhd_connection_limit(cfg),
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_path, NULL, MHD_OPTION_ARRAY,
        pool, MHD_OPTION_END);
    if (daemon_handle == NULL) {
        log_error("cannot start the HTTP server on %s:%d", cfg->listen_host,
                  cfg->listen_port);
        listener_stop();
        return -1;
    }
    if (listener_start(daemon_handle, cfg->max_connections) != 0) {
        http_stop();
        return -1;
    }
    if (pthread_create(&reaper, NULL, reaper_thread, NULL) == 0)
        reaper_started = true;
    return 0;
}

void http_quiesce(void)
{
    /* Closing the listening socket makes the kernel refuse new connections
     * instead of queueing them. */
    listener_stop();
}

unsigned http_inflight(void)
{
    return atomic_load(&inflight);
}

void http_stop(void)
{
    if (reaper_started) {
        atomic_store(&reaper_stop, true);
        pthread_join(reaper, NULL);
        reaper_started = false;
    }
    listener_stop();
    if (daemon_handle != NULL)
        MHD_stop_daemon(daemon_handle);
    daemon_handle = NULL;
}
