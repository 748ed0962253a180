/* server.c -- the workers: each runs one loop (loop.h) that drives its own
 * libmicrohttpd daemon (external epoll mode), its Redis connection and its
 * parked waiters; see http.h.
 *
 * One turn of a worker's loop: wait for events and timers; act on them
 * (Redis replies complete engine calls, which resume their requests; new
 * connections from the listener join the daemon; a parked client that hung
 * up leaves its queue); run libmicrohttpd, which reads requests, runs
 * handlers and continuations, and writes responses; then flush Redis, so
 * that every command the turn's requests made leaves in one write.
 *
 * A connection has one record (struct conn_record) from libmicrohttpd's
 * start notification to its close: the listener's count, the idle reaper
 * and the hang-up watch of a parked request all work from it. */
#include "http.h"

#include "clock.h"
#include "http/framing.h"
#include "http/listener.h"
#include "http/router.h"
#include "http/urldecode.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "token.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define REAP_EVERY_MS 250
#define HEADERS_CHECKED_MAX 64
/* Per-connection memory of libmicrohttpd: request line, headers and the
 * reply headers live in it. Up to 32 KiB libmicrohttpd mallocs it (above,
 * it maps whole pages), so a parked connection costs the bytes it used;
 * after many connections closed, the worker gives the freed heap back
 * (malloc_trim), or RSS would stay at its peak. */
#define CONNECTION_MEMORY (32 * 1024)
/* Give freed memory back once a worker's connections fell to a quarter of
 * a peak of at least this many. */
#define TRIM_PEAK_MIN 256

struct worker;

struct conn_record {
    struct conn_record *prev, *next;
    struct worker *worker;
    int fd;
    uint64_t receiving_since_ns; /* 0: a request is being handled */
    struct request *req;         /* the request it carries now, or NULL */
    struct loop_watch hangup;    /* while its request is parked */
    struct request *parked;
};

struct pending_conn {
    int fd;
    socklen_t len;
    struct sockaddr_storage addr;
};

struct worker {
    unsigned index;
    pthread_t thread;
    bool started;
    struct loop loop;
    struct MHD_Daemon *mhd;
    struct loop_watch mhd_watch;
    bool run_mhd;
    struct timer reaper;
    struct conn_record *records;
    size_t nrecords, peak_records;
    bool adding; /* inside MHD_add_connection */
    bool added;  /* ... and its start notification came */
    /* From other threads: new connections, drain and stop requests. */
    pthread_mutex_t mu;
    struct pending_conn *pending;
    size_t pending_len, pending_cap;
    bool drain, stop;
    struct loop_watch mailbox;
    int ready_fd; /* written once the worker is set up (or failed) */
};

static const struct config *conf;
static struct worker *workers;
static unsigned worker_count;
static atomic_uint next_worker;
static atomic_uint inflight;
static struct route *route_table;
const struct route *routes;
size_t route_count;

static _Thread_local struct worker *self;

/* ---- the mailbox -------------------------------------------------------*/

static void mailbox_signal(struct worker *w)
{
    uint64_t one = 1;

    if (write(w->mailbox.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("http: eventfd write: %s", strerror(errno));
}

/* The listener's hand-over: the next worker takes the connection. */
static void hand_connection(int fd, const struct sockaddr *addr, socklen_t len)
{
    struct worker *w =
        &workers[atomic_fetch_add(&next_worker, 1) % worker_count];
    bool was_empty;

    pthread_mutex_lock(&w->mu);
    if (w->pending_len == w->pending_cap) {
        size_t cap = w->pending_cap ? 2 * w->pending_cap : 64;
        struct pending_conn *grown = realloc(w->pending, cap * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&w->mu);
            log_error("http: out of memory for a new connection; closing it");
            close(fd);
            listener_connection_closed();
            return;
        }
        w->pending = grown;
        w->pending_cap = cap;
    }
    w->pending[w->pending_len].fd = fd;
    w->pending[w->pending_len].len = len;
    memcpy(&w->pending[w->pending_len].addr, addr, len);
    was_empty = w->pending_len++ == 0;
    pthread_mutex_unlock(&w->mu);
    if (was_empty)
        mailbox_signal(w);
}

static void add_connection(struct worker *w, struct pending_conn *p)
{
    w->adding = true;
    w->added = false;
    if (MHD_add_connection(w->mhd, p->fd, (struct sockaddr *)&p->addr,
                           p->len) != MHD_YES) {
        log_warn("http: a new connection was dropped: %s", strerror(errno));
        /* Closed by libmicrohttpd; counted closed by its record, if it got
         * as far as having one. */
        if (!w->added)
            listener_connection_closed();
    }
    w->adding = false;
    w->run_mhd = true;
}

static void on_mailbox(struct loop_watch *watch, uint32_t events)
{
    struct worker *w = self;
    struct pending_conn *batch;
    size_t n;
    bool drain;
    uint64_t v;

    (void)watch;
    (void)events;
    if (read(w->mailbox.fd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_debug("http: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&w->mu);
    batch = w->pending;
    n = w->pending_len;
    w->pending = NULL;
    w->pending_len = w->pending_cap = 0;
    drain = w->drain;
    w->drain = false;
    pthread_mutex_unlock(&w->mu);
    for (size_t i = 0; i < n; i++)
        add_connection(w, &batch[i]);
    free(batch);
    if (drain)
        lock_engine_thread_drain();
}

/* ---- connection records -----------------------------------------------*/

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode what)
{
    struct worker *w = self;
    struct conn_record *rec = *socket_context;
    const union MHD_ConnectionInfo *ci;

    (void)cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        if (w->adding)
            w->added = true;
        rec = calloc(1, sizeof *rec);
        if (rec == NULL)
            return; /* no reaping for this one; closes are still counted */
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        rec->fd = ci ? ci->connect_fd : -1;
        rec->worker = w;
        rec->receiving_since_ns = clock_now_ns();
        rec->next = w->records;
        if (w->records != NULL)
            w->records->prev = rec;
        w->records = rec;
        *socket_context = rec;
        if (++w->nrecords > w->peak_records)
            w->peak_records = w->nrecords;
        return;
    }
    listener_connection_closed();
    if (rec == NULL)
        return;
    if (rec->hangup.events != 0)
        loop_watch_set(&w->loop, &rec->hangup, 0);
    if (rec->prev != NULL)
        rec->prev->next = rec->next;
    else
        w->records = rec->next;
    if (rec->next != NULL)
        rec->next->prev = rec->prev;
    free(rec);
    *socket_context = NULL;
    w->nrecords--;
}

static struct conn_record *record_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci ? ci->socket_context : NULL;
}

/* libmicrohttpd's timeout counts idle time only, so a client trickling a
 * byte a second would keep its connection for ever: a connection that has
 * not delivered a whole request within the idle timeout is shut down. */
static void on_reap(struct timer *t)
{
    struct worker *w = self;
    uint64_t now = clock_now_ns();
    uint64_t limit = MS_TO_NS((uint64_t)conf->idle_timeout_s * 1000);
    unsigned cut = 0;

    for (struct conn_record *r = w->records; r != NULL; r = r->next)
        if (r->receiving_since_ns != 0 && now - r->receiving_since_ns > limit &&
            r->fd >= 0) {
            shutdown(r->fd, SHUT_RDWR);
            r->receiving_since_ns = 0;
            cut++;
        }
    if (cut > 0)
        log_debug("http: closed %u connection(s) that sent no complete "
                  "request in %u s",
                  cut, conf->idle_timeout_s);
    if (w->peak_records >= TRIM_PEAK_MIN && w->nrecords < w->peak_records / 4) {
        malloc_trim(0);
        w->peak_records = w->nrecords;
    }
    loop_timer_arm(&w->loop, t, now + MS_TO_NS(REAP_EVERY_MS));
}

/* ---- suspending and resuming -------------------------------------------*/

void request_suspend(struct request *req, handler_fn *next)
{
    req->next = next;
    if (!req->suspended) {
        req->suspended = true;
        MHD_suspend_connection(req->conn);
    }
}

void request_resume(struct request *req)
{
    if (!req->suspended)
        return;
    req->suspended = false;
    MHD_resume_connection(req->conn);
    self->run_mhd = true;
}

static void sleep_end(struct request *req);

static void on_hangup(struct loop_watch *watch, uint32_t events)
{
    struct conn_record *rec =
        (struct conn_record *)((char *)watch -
                               offsetof(struct conn_record, hangup));
    struct request *req = rec->parked;

    (void)events;
    loop_watch_set(&self->loop, &rec->hangup, 0);
    rec->parked = NULL;
    if (req == NULL)
        return;
    req->client_gone = true;
    lock_call_abandon(&req->lock);
    sleep_end(req);
    request_resume(req);
}

/* A request that waits long (a parked lock call, a pause) has its client
 * watched for a hang-up: it must leave its queue, or give up its lease, at
 * once, not when the wait ends. */
static void watch_hangup(struct request *req, bool on)
{
    struct conn_record *rec = req->rec;

    if (rec == NULL || rec->fd < 0)
        return;
    rec->hangup.fd = rec->fd;
    rec->hangup.fn = on_hangup;
    rec->parked = on ? req : NULL;
    if (loop_watch_set(&self->loop, &rec->hangup, on ? EPOLLRDHUP : 0) < 0)
        rec->parked = NULL;
}

/* Ends a pause early or on time. */
static void sleep_end(struct request *req)
{
    if (!req->sleeping)
        return;
    req->sleeping = false;
    loop_timer_disarm(&self->loop, &req->sleep);
    watch_hangup(req, false);
    lock_engine_give_slot();
}

static void on_sleep_end(struct timer *t)
{
    struct request *req =
        (struct request *)((char *)t - offsetof(struct request, sleep));

    sleep_end(req);
    request_resume(req);
}

bool request_sleep(struct request *req, int64_t ms, handler_fn *next)
{
    if (!lock_engine_take_slot())
        return false;
    timer_init(&req->sleep, on_sleep_end);
    if (loop_timer_arm(&self->loop, &req->sleep,
                       clock_now_ns() + MS_TO_NS(ms)) < 0) {
        lock_engine_give_slot();
        return false;
    }
    req->sleeping = true;
    request_suspend(req, next);
    watch_hangup(req, true);
    return true;
}

static void on_parked(struct lock_call *call, bool parked)
{
    watch_hangup(call->ctx, parked);
}

static void on_lock_done(struct lock_call *call)
{
    request_resume(call->ctx);
}

bool request_client_gone(struct request *req)
{
    char b;
    ssize_t n;

    if (req->client_gone)
        return true;
    if (req->rec == NULL || req->rec->fd < 0)
        return false;
    n = recv(req->rec->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 ||
        (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        req->client_gone = true;
    return req->client_gone;
}

/* Whether the client of a parked call is still there to take the lock
 * handed to it: a hang-up may not have been seen yet when the hand-off
 * arrives in the same turn. */
static bool on_present(struct lock_call *call)
{
    return !request_client_gone(call->ctx);
}

struct lock_call *request_lock_call(struct request *req,
                                    const struct lock_kind *kind,
                                    const char *name)
{
    struct lock_call *c = &req->lock;

    memset(c, 0, sizeof *c);
    c->kind = kind;
    snprintf(c->name, sizeof c->name, "%s", name);
    c->done = on_lock_done;
    c->parked = on_parked;
    c->present = on_present;
    c->ctx = req;
    return c;
}

/* What request_query_each's callback for libmicrohttpd passes on. */
struct query_walk {
    request_arg_fn *fn;
    void *ctx;
};

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
    struct query_walk *w = cls;

    (void)kind;
    return w->fn(w->ctx, key, value) ? MHD_YES : MHD_NO;
}

void request_query_each(struct request *req, request_arg_fn *fn, void *ctx)
{
    struct query_walk w = {fn, ctx};

    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, query_arg, &w);
}

/* ---- admission ---------------------------------------------------------*/

/* Checks the API key of a request to a guarded route, when keys are on:
 * 401 unauthorized unless the Authorization header carries one of the keys
 * (auth_identify compares in constant time with every key), 403 forbidden
 * when the key's role may not use the route. Returns true when the request
 * may go on, with req->key set; otherwise a response is queued. A method
 * the route lacks is left to its 405, whatever the role. */
static bool key_admits(struct request *req)
{
    const char *h;
    bool admin_only = (req->route->flags & ROUTE_ADMIN) != 0;

    if (!auth_enabled())
        return true;
    h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                    "Authorization");
    if (!auth_identify(h, &req->key)) {
        reply_problem(req, PROBLEM_UNAUTHORIZED,
                      "send Authorization: Bearer <api key>");
        return false;
    }
    if (req->route_index < 0 ||
        auth_role_allows(req->key.role, req->route->method, admin_only))
        return true;
    if (admin_only)
        reply_problem(req, PROBLEM_FORBIDDEN,
                      "%s %s needs an admin key; key '%s' has role %s",
                      req->route->method, req->route->pattern, req->key.name,
                      api_role_name(req->key.role));
    else
        reply_problem(req, PROBLEM_FORBIDDEN,
                      "key '%s' has role %s, which may only GET and HEAD",
                      req->key.name, api_role_name(req->key.role));
    return false;
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

struct header_list {
    struct http_header_view h[HEADERS_CHECKED_MAX];
    size_t n;
    bool overflow;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value)
{
    struct header_list *l = cls;

    (void)kind;
    if (l->n == HEADERS_CHECKED_MAX) {
        l->overflow = true;
        return MHD_NO;
    }
    l->h[l->n].name = key;
    l->h[l->n].value = value ? value : "";
    l->n++;
    return MHD_YES;
}

/* Checks the request's framing headers. Returns true when they are sound;
 * otherwise the reply (which closes the connection) is queued. *body says
 * whether a body follows. */
static bool framing_ok(struct request *req, bool *body)
{
    struct header_list l = {.n = 0};
    unsigned long long length = 0;
    bool chunked = false;
    enum framing_result r;

    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_header, &l);
    r = http_framing_check(l.h, l.n, &length, &chunked);
    if (r == FRAMING_OK && l.overflow) {
        /* Framing headers past the first HEADERS_CHECKED_MAX are judged by
         * libmicrohttpd alone; refuse rather than guess. */
        reply_problem(req, PROBLEM_INVALID_REQUEST,
                      "more than %d header fields", HEADERS_CHECKED_MAX);
        return false;
    }
    if (r != FRAMING_OK) {
        reply_problem(req,
                      r == FRAMING_UNSUPPORTED_TRANSFER_ENCODING
                          ? PROBLEM_NOT_IMPLEMENTED
                          : PROBLEM_INVALID_REQUEST,
                      "%s", framing_detail(r));
        return false;
    }
    if (length > conf->max_body_bytes) {
        reply_problem(req, PROBLEM_BODY_TOO_LARGE,
                      "body is larger than %zu bytes", conf->max_body_bytes);
        return false;
    }
    *body = length > 0 || chunked;
    return true;
}

/* Checks what every route shares, before any body arrives. Returns true when
 * the request may go on; otherwise a response is queued. */
static bool admit(struct request *req, const char *url)
{
    const char *path = http_origin_form(url);
    size_t param_len = 0;
    int path_route;
    bool body = false;

    if (!framing_ok(req, &body))
        return false;
    if (path == NULL)
        path = url;
    req->route_index =
        router_match(routes, route_count, req->method, path, req->param,
                     sizeof req->param, &param_len, &path_route);
    if (req->route_index < 0 && path_route < 0) {
        reply_problem(req, PROBLEM_NOT_FOUND, "no route for %s",
                      strlen(path) <= 128 ? path : "this path");
        return false;
    }
    req->route = &routes[req->route_index >= 0 ? req->route_index : path_route];
    if ((req->route->flags & (ROUTE_AUTH | ROUTE_ADMIN)) && !key_admits(req))
        return false;
    if (req->route_index < 0) {
        if (strcmp(req->method, "OPTIONS") == 0) {
            reply_raw(req, 204, NULL, NULL, 0, false);
            return false;
        }
        reply_problem(req, PROBLEM_METHOD_NOT_ALLOWED, "%s is not allowed here",
                      req->method);
        return false;
    }
    if (strstr(req->route->pattern, "{name}") != NULL) {
        if (!lock_name_valid(req->param, param_len)) {
            reply_problem(req, PROBLEM_INVALID_NAME,
                          "names are 1 to %d characters of A-Z a-z 0-9 . _ : -",
                          LOCK_NAME_MAX);
            return false;
        }
        /* '/' is in no name, so a scoped name never equals a plain one. */
        if (req->key.ns[0] != '\0')
            snprintf(req->name, sizeof req->name, "%s/%s", req->key.ns,
                     req->param);
        else
            memcpy(req->name, req->param, param_len + 1);
    }
    if (body && (req->route->flags & ROUTE_BODY) &&
        !content_type_json(req->conn)) {
        reply_problem(req, PROBLEM_UNSUPPORTED_MEDIA_TYPE,
                      "send the body as Content-Type: application/json");
        return false;
    }
    return true;
}

/* ---- libmicrohttpd callbacks --------------------------------------------*/

/* Runs the handler of a routed request whose body is complete. */
static void dispatch(struct request *req)
{
    struct field_problem prob;

    if (req->body_too_large) {
        reply_problem(req, PROBLEM_BODY_TOO_LARGE,
                      "body is larger than %zu bytes", conf->max_body_bytes);
        return;
    }
    if (req->route->flags & ROUTE_BODY) {
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
    if (req->rec != NULL)
        req->rec->receiving_since_ns = 0;
    req->route->handler(req);
}

/* Takes n more body bytes. Returns false when out of memory. */
static bool take_body(struct request *req, const char *upload, size_t n)
{
    if (req->status != 0 || req->body_too_large)
        return true; /* answered already, or discarding */
    if (req->body_len + n > conf->max_body_bytes) {
        req->body_too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return true;
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
        if (grown == NULL)
            return false;
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, upload, n);
    req->body_len += n;
    return true;
}

/* A client's X-Request-Id is used when it is 1..REQUEST_ID_MAX bytes of
 * [A-Za-z0-9._:-]: anything else could forge log fields. */
static bool request_id_valid(const char *id)
{
    size_t n;

    for (n = 0; id[n] != '\0'; n++)
        if (n >= REQUEST_ID_MAX ||
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789._:-",
                   id[n]) == NULL)
            return false;
    return n > 0;
}

/* A request id of our own: 16 hex digits from a per-worker generator
 * seeded from the kernel (ids need to be unique, not secret; a syscall per
 * request would be the hot path's). */
static void request_id_new(char out[17])
{
    static _Thread_local uint64_t state;
    char seed[17];

    if (state == 0) {
        if (random_hex(seed, 16) < 0)
            snprintf(seed, sizeof seed, "%016llx",
                     (unsigned long long)clock_now_ns());
        state = strtoull(seed, NULL, 16) | 1; /* banned-ok: 16 hex digits */
    }
    /* xorshift64* */
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    snprintf(out, 17, "%016llx",
             (unsigned long long)(state * 2685821657736338717ull));
}

/* Fills req's request id (for the log and the X-Request-Id answer
 * header). */
static void request_identify(struct request *req)
{
    const char *id =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "X-Request-Id");

    if (id != NULL && request_id_valid(id))
        snprintf(req->request_id, sizeof req->request_id, "%s", id);
    else
        request_id_new(req->request_id);
}

/* The client's address, for the access line (only when one is logged). */
static void request_client(const struct request *req, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci != NULL ? ci->client_addr : NULL;

    buf[0] = '\0';
    if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
        return;
    if (getnameinfo(sa,
                    sa->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                             : sizeof(struct sockaddr_in6),
                    buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST) != 0)
        buf[0] = '\0';
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
        req->rec = record_of(conn);
        if (req->rec != NULL)
            req->rec->req = req;
        req->cfg = conf;
        req->method = method;
        req->route_index = -1;
        req->start_ns = clock_now_ns();
        request_identify(req);
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
        if (!take_body(req, upload, n)) {
            log_error("http: out of memory for a body; closing it");
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (req->client_gone)
        return MHD_NO; /* nobody to answer: the request ends */
    if (req->suspended || req->status != 0)
        return MHD_YES;
    if (req->next != NULL) {
        handler_fn *next = req->next;
        req->next = NULL;
        next(req);
    } else {
        dispatch(req);
    }
    if (req->client_gone && req->status == 0 && !req->suspended)
        return MHD_NO; /* hung up: the request ends unanswered */
    if (req->status == 0 && !req->suspended) {
        log_error("handler for %s queued no response", req->route->pattern);
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "internal error");
    }
    return MHD_YES;
}

/* The access line. Probes (/healthz, /readyz, /metrics) come every few
 * seconds from orchestrators: at debug, so info stays about clients. The
 * key's name, never the key. */
static void log_request(const struct request *req, uint64_t dur, bool aborted)
{
    static const char *const probes[] = {"/healthz", "/readyz", "/metrics"};
    const char *route = req->route ? req->route->pattern : "-";
    enum log_level level = LOG_INFO;
    struct access_log a;
    char client[64];

    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
        if (strcmp(route, probes[i]) == 0)
            level = LOG_DEBUG;
    if (!log_enabled(level))
        return;
    request_client(req, client, sizeof client);
    a = (struct access_log){.method = req->method,
                            .route = route,
                            .name = req->param,
                            .status = req->status,
                            .code = req->problem_code,
                            .duration_ms = (double)dur / 1e6,
                            .client = client,
                            .key = req->key.name,
                            .request_id = req->request_id,
                            .aborted = aborted};
    log_access(level, &a);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    struct request *req = *con_cls;
    uint64_t dur;

    (void)cls;
    (void)conn;
    if (req == NULL)
        return;
    if (req->rec != NULL) {
        req->rec->req = NULL;
        req->rec->receiving_since_ns = clock_now_ns();
        if (req->rec->parked == req) {
            loop_watch_set(&self->loop, &req->rec->hangup, 0);
            req->rec->parked = NULL;
        }
    }
    /* The daemon is stopping with the request parked or asleep. */
    lock_call_abandon(&req->lock);
    sleep_end(req);
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->undo != NULL)
        req->undo(req);
    lock_reply_free(&req->lock.reply);
    dur = clock_now_ns() - req->start_ns;
    if (req->status == 0) { /* never answered: the client went away */
        req->status = why == MHD_REQUEST_TERMINATED_COMPLETED_OK ? 200 : 499;
        metrics_request(req->route_index, req->method, req->status, dur);
    }
    log_request(req, dur, why != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (req->state_free != NULL)
        req->state_free(req->state);
    json_decref(req->json);
    free(req->body);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&inflight, 1);
}

static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return url_decode_path(s);
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

/* ---- the worker loop ---------------------------------------------------*/

static void on_mhd_ready(struct loop_watch *watch, uint32_t events)
{
    (void)watch;
    (void)events;
    self->run_mhd = true;
}

static int worker_setup(struct worker *w)
{
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    const union MHD_DaemonInfo *di;

    if (loop_init(&w->loop) < 0)
        return -1;
    w->mailbox.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->mailbox.fn = on_mailbox;
    if (w->mailbox.fd < 0 || loop_watch_set(&w->loop, &w->mailbox, EPOLLIN))
        return -1;
    /* libmicrohttpd's own connection limit is never the one that binds:
     * the listener holds all workers to --max-connections. */
    w->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT, conf->max_connections + 16u,
        MHD_OPTION_CONNECTION_TIMEOUT, conf->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL, MHD_OPTION_END);
    if (w->mhd == NULL)
        return -1;
    di = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (di == NULL)
        return -1;
    w->mhd_watch.fd = di->epoll_fd;
    w->mhd_watch.fn = on_mhd_ready;
    if (loop_watch_set(&w->loop, &w->mhd_watch, EPOLLIN) < 0)
        return -1;
    timer_init(&w->reaper, on_reap);
    loop_timer_arm(&w->loop, &w->reaper,
                   clock_now_ns() + MS_TO_NS(REAP_EVERY_MS));
    return lock_engine_thread_start(&w->loop, w->index);
}

/* Milliseconds libmicrohttpd wants to be run in (its idle timeouts). */
static int mhd_timeout_ms(struct worker *w)
{
    MHD_UNSIGNED_LONG_LONG t;

    if (w->run_mhd)
        return 0;
    if (MHD_get_timeout(w->mhd, &t) != MHD_YES)
        return -1;
    return t > INT_MAX ? INT_MAX : (int)t;
}

/* libmicrohttpd may not stop with a connection suspended (0.9.75 aborts).
 * Engine calls in flight have failed by now, so their requests are
 * resumed; a request in a timed pause goes on (its next step finds Redis
 * closed and answers 503); with force, whatever is still suspended is
 * closed. Returns how many requests were suspended. */
static unsigned finish_suspended(struct worker *w, bool force)
{
    unsigned n = 0;

    for (struct conn_record *r = w->records; r != NULL; r = r->next) {
        struct request *req = r->req;
        if (req == NULL || !req->suspended)
            continue;
        n++;
        if (req->sleeping) {
            sleep_end(req);
            request_resume(req);
        } else if (force) {
            req->client_gone = true;
            lock_call_abandon(&req->lock);
            request_resume(req);
        }
    }
    return n;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t ready = 1;
    bool stop = false;

    self = w;
    if (worker_setup(w) < 0) {
        log_error("http: cannot start worker %u", w->index);
        ready = 2;
    }
    if (write(w->ready_fd, &ready, sizeof ready) < 0)
        log_error("http: eventfd write: %s", strerror(errno));
    if (ready != 1)
        return NULL;
    while (!stop) {
        int timeout = mhd_timeout_ms(w);

        loop_run_once(&w->loop, timeout);
        if (timeout == 0 || w->run_mhd) {
            w->run_mhd = false;
            MHD_run(w->mhd);
        }
        lock_engine_thread_flush();
        pthread_mutex_lock(&w->mu);
        stop = w->stop;
        pthread_mutex_unlock(&w->mu);
    }
    /* What is still in flight fails now, and its requests are answered
     * (a continuation may try Redis again and fail at once: a few rounds);
     * then the daemon closes every connection, and nothing refers to a
     * request any more when the engine's state goes. */
    lock_engine_thread_close();
    for (int round = 0; round < 64; round++) {
        bool force = round == 63;
        if (finish_suspended(w, force) == 0)
            break;
        lock_engine_thread_flush();
        MHD_run(w->mhd);
    }
    MHD_stop_daemon(w->mhd);
    w->mhd = NULL;
    lock_engine_thread_stop();
    auth_thread_done();
    close(w->mailbox.fd);
    loop_free(&w->loop);
    return NULL;
}

/* ---- start and stop ----------------------------------------------------*/

static int routes_build(const struct config *cfg)
{
    size_t n = service_route_count + (cfg->demo ? demo_route_count : 0);

    route_table = calloc(n, sizeof *route_table);
    if (route_table == NULL)
        return -1;
    memcpy(route_table, service_routes,
           service_route_count * sizeof *route_table);
    if (cfg->demo)
        memcpy(route_table + service_route_count, demo_routes,
               demo_route_count * sizeof *route_table);
    routes = route_table;
    route_count = n;
    return 0;
}

int http_start(const struct config *cfg)
{
    int ready_fd;
    unsigned i;

    conf = cfg;
    if (routes_build(cfg) < 0 ||
        auth_init(cfg->api_keys, cfg->api_key_count) < 0)
        return -1;
    if (listener_open(cfg->listen_host, cfg->listen_port, cfg->listen_ipv6) !=
        0)
        return -1;
    worker_count = cfg->threads > 0 ? cfg->threads : 1;
    workers = calloc(worker_count, sizeof *workers);
    ready_fd = eventfd(0, EFD_CLOEXEC);
    if (workers == NULL || ready_fd < 0)
        goto fail;
    for (i = 0; i < worker_count; i++) {
        struct worker *w = &workers[i];
        uint64_t v;

        w->index = i;
        w->ready_fd = ready_fd;
        pthread_mutex_init(&w->mu, NULL);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            goto fail;
        w->started = true;
        /* One at a time: worker 0 subscribes before others park. */
        if (read(ready_fd, &v, sizeof v) != sizeof v || v != 1)
            goto fail;
    }
    close(ready_fd);
    ready_fd = -1;
    if (listener_start(hand_connection, cfg->max_connections) != 0)
        goto fail;
    return 0;
fail:
    if (ready_fd >= 0)
        close(ready_fd);
    log_error("cannot start the HTTP server on %s:%d", cfg->listen_host,
              cfg->listen_port);
    http_stop();
    return -1;
}

void http_quiesce(void)
{
    /* Closing the listening socket makes the kernel refuse new connections
     * instead of queueing them. */
    listener_stop();
    lock_engine_stop_waiting();
    for (unsigned i = 0; i < worker_count; i++) {
        struct worker *w = &workers[i];
        if (!w->started)
            continue;
        pthread_mutex_lock(&w->mu);
        w->drain = true;
        pthread_mutex_unlock(&w->mu);
        mailbox_signal(w);
    }
}

unsigned http_inflight(void)
{
    return atomic_load(&inflight);
}

void http_stop(void)
{
    listener_stop();
    for (unsigned i = 0; workers != NULL && i < worker_count; i++) {
        struct worker *w = &workers[i];
        if (!w->started)
            continue;
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_mutex_unlock(&w->mu);
        mailbox_signal(w);
        pthread_join(w->thread, NULL);
        w->started = false;
        for (size_t j = 0; j < w->pending_len; j++)
            close(w->pending[j].fd);
        free(w->pending);
    }
    free(workers);
    workers = NULL;
    free(route_table);
    route_table = NULL;
    auth_free();
}
