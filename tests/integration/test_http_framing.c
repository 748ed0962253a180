/* test_http_framing.c -- how the real server frames requests (issue 9, the
 * Content-Length defect), over raw sockets since libcurl never sends these.
 *
 * - Two different Content-Length headers, with a second request hidden in
 *   the bytes past the first length: one answer, 400 invalid_request, the
 *   connection closed, the hidden request never answered, nothing acquired.
 *   (Version 1 let the first header win and answered the hidden GET.)
 * - Content-Length with Transfer-Encoding: chunked, the same shape: 400
 *   invalid_request and close.
 * - An absolute-form target (GET http://127.0.0.1:PORT/v1/locks/abs) is
 *   served as its path (RFC 9112 section 3.2.2; version 1 answered 404).
 * - Transfer-Encoding: gzip is answered 501 not_implemented at once, not
 *   after the idle timeout (--idle-timeout-s 10 here).
 * - What must keep working: chunked bodies, two equal Content-Length
 *   headers. */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define IDLE_TIMEOUT_S "10"

static struct redis_proc redis;
static struct svc_proc svc;

/* What came back on one connection. */
struct exchange {
    char buf[16384]; /* every byte received, NUL-terminated */
    size_t len;
    bool closed;          /* the server closed the connection */
    double first_byte_ms; /* from the send to the first byte; -1 if none */
    double elapsed_ms;    /* from the send to EOF or the timeout */
};

/* Sends req on a new connection and reads until the server closes it or
 * timeout_ms pass. Returns false when the connection could not be made. */
static bool exchange(const char *req, size_t len, int timeout_ms,
                     struct exchange *x)
{
    int fd = raw_connect(svc.port);
    double start, end;

    x->len = 0;
    x->buf[0] = '\0';
    x->closed = false;
    x->first_byte_ms = -1;
    x->elapsed_ms = 0;
    if (fd < 0)
        return false;
    start = now_ms();
    end = start + timeout_ms;
    raw_send(fd, req, len); /* the server may close early: read anyway */
    while (now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(end - now_ms());
        char tmp[4096];
        ssize_t n;

        int rc = poll(&p, 1, left > 0 ? left : 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        n = recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            x->closed = true;
            break;
        }
        if (x->first_byte_ms < 0)
            x->first_byte_ms = now_ms() - start;
        size_t room = sizeof x->buf - 1 - x->len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(x->buf + x->len, tmp, take);
        x->len += take;
        x->buf[x->len] = '\0';
    }
    x->elapsed_ms = now_ms() - start;
    close(fd);
    return true;
}

/* The Content-Length of the response head [head, head_end), or -1. */
static long head_content_length(const char *head, const char *head_end)
{
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    long v = 0;

    if (cl == NULL || cl >= head_end)
        return -1;
    for (cl += 17; *cl == ' '; cl++)
        ;
    for (; *cl >= '0' && *cl <= '9' && v < 1000000; cl++)
        v = v * 10 + (*cl - '0');
    return v;
}

/* How many responses x holds, walked by their Content-Length; bytes left
 * over that are no whole response count as one more. */
static int response_count(const struct exchange *x)
{
    const char *p = x->buf, *end = x->buf + x->len;
    int n = 0;

    while (p < end) {
        const char *head_end = strstr(p, "\r\n\r\n");
        long cl = head_end ? head_content_length(p, head_end) : -1;
        n++;
        if (strncmp(p, "HTTP/1.", 7) != 0 || cl < 0 ||
            (size_t)cl > (size_t)(end - head_end - 4))
            break;
        p = head_end + 4 + cl;
    }
    return n;
}

/* The status of the first response, or 0. */
static int first_status(const struct exchange *x)
{
    int st = 0;
    if (strncmp(x->buf, "HTTP/1.", 7) != 0 ||
        sscanf(x->buf + 8, " %3d", &st) != 1)
        return 0;
    return st;
}

/* The body of the first response, parsed as JSON (the caller decrefs), or
 * NULL. Its length comes from the response's Content-Length. */
static json_t *first_json(const struct exchange *x)
{
    const char *head_end = strstr(x->buf, "\r\n\r\n");
    size_t avail, body_len;
    long cl;

    if (head_end == NULL)
        return NULL;
    avail = x->len - (size_t)(head_end + 4 - x->buf);
    cl = head_content_length(x->buf, head_end);
    body_len = cl >= 0 && (size_t)cl < avail ? (size_t)cl : avail;
    return json_loadb(head_end + 4, body_len, 0, NULL);
}

/* True when the first response is a problem+json with status and code. */
static bool first_is_problem(const struct exchange *x, int status,
                             const char *code)
{
    const char *head_end = strstr(x->buf, "\r\n\r\n");
    const char *ct = strcasestr(x->buf, "\r\nContent-Type: application/"
                                        "problem+json");
    json_t *j = first_json(x);
    const char *c = j ? json_string_value(json_object_get(j, "code")) : NULL;
    bool ok = first_status(x) == status && head_end != NULL && ct != NULL &&
              ct < head_end && c != NULL && strcmp(c, code) == 0 &&
              json_integer_value(json_object_get(j, "status")) == status;

    if (!ok)
        t_diag("want %d %s; got (%zu bytes): %.600s", status, code, x->len,
               x->buf);
    json_decref(j);
    return ok;
}

/* ok, after showing what came back when it is false. */
static bool or_show(bool ok, const struct exchange *x)
{
    if (!ok)
        t_diag("got (%zu bytes): %.600s", x->len, x->buf);
    return ok;
}

/* GET /v1/locks/name: 1 held, 0 free, -1 no answer. */
static int lock_held(const char *name)
{
    struct http_resp r;
    char path[128];
    int held = -1;

    snprintf(path, sizeof path, "/v1/locks/%s", name);
    http(&r, svc.url, "GET", path, NULL, NULL);
    if (r.status == 200 && r.json != NULL)
        held = json_is_true(json_object_get(r.json, "held")) ? 1 : 0;
    else
        t_diag("GET %s: %ld %s", path, r.status, r.body);
    http_resp_free(&r);
    return held;
}

/* The request hidden in the bodies below: answered only if the server reads
 * the bytes after the first request's framing as a request of their own. */
static const char smuggled[] = "GET /v1/locks/smuggled HTTP/1.1\r\n"
                               "Host: 127.0.0.1\r\n\r\n";

static int read_timeout_ms(void)
{
    return (int)(3000 * time_scale());
}

/* (a) Two different Content-Length headers, the hidden request past the
 * first. */
static void test_conflicting_lengths(void)
{
    static struct exchange x;
    char req[1024];
    const char *body_start = "{}";
    size_t body_len = strlen(body_start) + strlen(smuggled);
    int n = snprintf(req, sizeof req,
                     "POST /v1/locks/smuggle-a/acquire HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "Content-Length: %zu\r\n"
                     "\r\n%s%s",
                     strlen(body_start), body_len, body_start, smuggled);

    if (!t_ok(exchange(req, (size_t)n, read_timeout_ms(), &x),
              "connect for two Content-Length headers"))
        return;
    t_ok(first_is_problem(&x, 400, "invalid_request"),
         "Content-Length: 2 and Content-Length: %zu -> 400 invalid_request",
         body_len);
    t_ok(x.closed, "  and the connection is closed (closed=%d after %.0f ms)",
         x.closed, x.elapsed_ms);
    t_ok(response_count(&x) == 1 && strstr(x.buf, "smuggled") == NULL,
         "  the hidden GET /v1/locks/smuggled is never answered (%d "
         "responses)",
         response_count(&x));
    t_ok(lock_held("smuggle-a") == 0,
         "  and the refused acquire took nothing (smuggle-a is free)");

    /* The same with the longer length first. */
    n = snprintf(req, sizeof req,
                 "POST /v1/locks/smuggle-b/acquire HTTP/1.1\r\n"
                 "Host: 127.0.0.1\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n"
                 "Content-Length: %zu\r\n"
                 "\r\n%s%s",
                 body_len, strlen(body_start), body_start, smuggled);
    exchange(req, (size_t)n, read_timeout_ms(), &x);
    t_ok(first_is_problem(&x, 400, "invalid_request") && x.closed &&
             response_count(&x) == 1 && lock_held("smuggle-b") == 0,
         "Content-Length: %zu then Content-Length: 2 -> 400 invalid_request, "
         "one response, closed (closed=%d, %d responses)",
         body_len, x.closed, response_count(&x));
}

/* Two equal Content-Length headers are one length (RFC 9110 section 8.6). */
static void test_equal_lengths(void)
{
    static struct exchange x;
    const char req[] = "POST /v1/locks/equal-lengths/acquire HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 2\r\n"
                       "content-length: 2\r\n"
                       "Connection: close\r\n"
                       "\r\n{}";

    exchange(req, strlen(req), read_timeout_ms(), &x);
    json_t *j = first_json(&x);
    const char *tok = j ? json_string_value(json_object_get(j, "token")) : 0;
    t_ok(or_show(first_status(&x) == 200 && token_like(tok), &x),
         "two equal Content-Length headers (2, 2) -> 200 granted");
    json_decref(j);
}

/* (d) Content-Length and Transfer-Encoding: chunked, a request hidden after
 * the chunked body's end. */
static void test_length_with_chunked(void)
{
    static struct exchange x;
    char req[1024];
    const char *chunks = "2\r\n{}\r\n0\r\n\r\n";
    int n = snprintf(req, sizeof req,
                     "POST /v1/locks/smuggle-te/acquire HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n"
                     "Transfer-Encoding: chunked\r\n"
                     "\r\n%s%s",
                     strlen(chunks) + strlen(smuggled), chunks, smuggled);

    if (!t_ok(exchange(req, (size_t)n, read_timeout_ms(), &x),
              "connect for Content-Length with Transfer-Encoding"))
        return;
    t_ok(first_is_problem(&x, 400, "invalid_request"),
         "Content-Length with Transfer-Encoding: chunked -> 400 "
         "invalid_request");
    t_ok(x.closed, "  and the connection is closed (closed=%d after %.0f ms)",
         x.closed, x.elapsed_ms);
    t_ok(response_count(&x) == 1 && strstr(x.buf, "smuggled") == NULL &&
             lock_held("smuggle-te") == 0,
         "  one response, the hidden GET never answered, nothing acquired "
         "(%d responses)",
         response_count(&x));
}

/* (b) Absolute-form request targets are served like their path. */
static void test_absolute_form(void)
{
    static struct exchange x;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET http://127.0.0.1:%d/v1/locks/abs HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%d\r\n"
                     "Connection: close\r\n\r\n",
                     svc.port, svc.port);

    exchange(req, (size_t)n, read_timeout_ms(), &x);
    json_t *j = first_json(&x);
    const char *name = j ? json_string_value(json_object_get(j, "name")) : 0;
    t_ok(or_show(first_status(&x) == 200 && name && strcmp(name, "abs") == 0 &&
                     json_is_false(json_object_get(j, "held")),
                 &x),
         "GET http://127.0.0.1:%d/v1/locks/abs -> 200 held false, as the "
         "origin form (%d)",
         svc.port, first_status(&x));
    json_decref(j);

    /* An acquire through an absolute target takes the same lock. */
    const char *body = "{\"ttl_ms\":60000}";
    n = snprintf(req, sizeof req,
                 "POST HTTP://127.0.0.1:%d/v1/locks/abs-post/acquire "
                 "HTTP/1.1\r\n"
                 "Host: ignored.example\r\n"
                 "Content-Type: application/json\r\n"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n\r\n%s",
                 svc.port, strlen(body), body);
    exchange(req, (size_t)n, read_timeout_ms(), &x);
    j = first_json(&x);
    const char *tok = j ? json_string_value(json_object_get(j, "token")) : 0;
    t_ok(or_show(first_status(&x) == 200 && token_like(tok), &x) &&
             lock_held("abs-post") == 1,
         "POST HTTP://127.0.0.1:%d/v1/locks/abs-post/acquire -> 200, and "
         "GET /v1/locks/abs-post shows it held (%d)",
         svc.port, first_status(&x));
    json_decref(j);
}

/* (c) A transfer coding the service cannot read: 501 at once. */
static void test_unsupported_coding(void)
{
    static struct exchange x;
    /* Some gzip-looking bytes; the connection stays open on our side, so
     * only the server can end the exchange. */
    const char req[] = "POST /v1/locks/gzip/acquire HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\n"
                       "Content-Type: application/json\r\n"
                       "Transfer-Encoding: gzip\r\n"
                       "\r\n\x1f\x8b\x08";
    double limit = 2000 * time_scale();

    if (!t_ok(exchange(req, sizeof req - 1, (int)(limit + 1000), &x),
              "connect for Transfer-Encoding: gzip"))
        return;
    t_ok(first_is_problem(&x, 501, "not_implemented") && x.first_byte_ms >= 0 &&
             x.first_byte_ms < limit,
         "Transfer-Encoding: gzip -> 501 not_implemented within %.0f ms, "
         "not after the %s s idle timeout (first byte after %.0f ms)",
         limit, IDLE_TIMEOUT_S, x.first_byte_ms);
    t_ok(x.closed && x.elapsed_ms < limit,
         "  and the connection is closed (closed=%d after %.0f ms)", x.closed,
         x.elapsed_ms);
    t_ok(lock_held("gzip") == 0, "  nothing acquired");
}

/* (e) Chunked bodies still work, whatever the case of "chunked". */
static void test_chunked_still_works(void)
{
    static const char *const codings[] = {"chunked", "Chunked"};
    static struct exchange x;

    for (size_t i = 0; i < sizeof codings / sizeof codings[0]; i++) {
        char req[512], name[32];
        snprintf(name, sizeof name, "chunked-%zu", i);
        int n = snprintf(req, sizeof req,
                         "POST /v1/locks/%s/acquire HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\n"
                         "Content-Type: application/json\r\n"
                         "Transfer-Encoding: %s\r\n"
                         "Connection: close\r\n\r\n"
                         "7\r\n{\"ttl_m\r\n"
                         "9\r\ns\":60000}\r\n"
                         "0\r\n\r\n",
                         name, codings[i]);
        exchange(req, (size_t)n, read_timeout_ms(), &x);
        json_t *j = first_json(&x);
        const char *tok =
            j ? json_string_value(json_object_get(j, "token")) : NULL;
        t_ok(or_show(first_status(&x) == 200 && token_like(tok) &&
                         json_integer_value(json_object_get(j, "ttl_ms")) ==
                             60000,
                     &x) &&
                 lock_held(name) == 1,
             "Transfer-Encoding: %s in two chunks -> 200 granted, ttl_ms "
             "60000, lock held (%d)",
             codings[i], first_status(&x));
        json_decref(j);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *args[] = {"--idle-timeout-s", IDLE_TIMEOUT_S, NULL};
    if (svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "lockservice starts");
        redis_stop(&redis);
        return t_done();
    }

    test_conflicting_lengths();
    test_equal_lengths();
    test_length_with_chunked();
    test_absolute_form();
    test_unsupported_coding();
    test_chunked_still_works();

    struct http_resp r;
    http(&r, svc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200, "after every case /healthz answers 200 (%ld)",
         r.status);
    http_resp_free(&r);

    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
