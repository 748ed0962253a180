/* test_bad_input.c -- the bad-input table through the real server.
 *
 * A lock ("target") is held first, so the state every bad request must leave
 * alone is not trivial. Each row sends one request and asserts the status,
 * Content-Type application/problem+json, the problem's code, and that GET
 * /v1/locks/target answers exactly what it answered before (same holder,
 * fence, owner and count). Cases libcurl cannot express (truncated bodies,
 * hand-made chunked encoding, a 64 KiB header, raw bytes in the request
 * line) go over a raw socket. The service runs with --idle-timeout-s 2 so a
 * body that never arrives is cut off quickly. At the end the server still
 * answers /healthz and a normal acquire/release. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc svc;

static char held_token[64];
static long long held_fence;

/* ---- lock state --------------------------------------------------------*/

static bool lock_unchanged(void)
{
    struct http_resp r;
    http(&r, svc.url, "GET", "/v1/locks/target", NULL, NULL);
    bool ok = r.status == 200 && r.json &&
              json_is_true(json_object_get(r.json, "held")) &&
              jint(&r, "fence") == held_fence && jint(&r, "count") == 1 &&
              jstr(&r, "owner") && strcmp(jstr(&r, "owner"), "keeper") == 0 &&
              json_object_get(r.json, "token") == NULL;
    if (!ok)
        t_diag("lock 'target' changed: %ld %s", r.status, r.body);
    http_resp_free(&r);
    return ok;
}

/* ---- raw sockets ---------------------------------------------------------*/

/* Reads until the peer closes or timeout_ms passes. *closed tells which.
 * Returns the bytes read (buf is NUL-terminated). */
static size_t raw_read(int fd, char *buf, size_t cap, int timeout_ms,
                       bool *closed)
{
    size_t len = 0;
    double end = now_ms() + timeout_ms;
    *closed = false;
    while (now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = (int)(end - now_ms());
        if (left < 0)
            left = 0;
        int rc = poll(&p, 1, left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        char tmp[8192];
        ssize_t n = recv(fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *closed = true;
            break;
        }
        size_t take = (size_t)n < cap - 1 - len ? (size_t)n : cap - 1 - len;
        memcpy(buf + len, tmp, take);
        len += take;
    }
    buf[len] = '\0';
    return len;
}

static int response_status(const char *buf)
{
    int st = 0;
    if (strncmp(buf, "HTTP/1.", 7) != 0 || sscanf(buf + 8, " %d", &st) != 1)
        return 0;
    return st;
}

/* The body after the header block, or "". */
static const char *raw_body(const char *buf)
{
    const char *p = strstr(buf, "\r\n\r\n");
    return p ? p + 4 : "";
}

/* Sends req (len bytes) on a new connection and reads the answer until the
 * server closes or timeout_ms. Returns the status (0: none). */
static int raw_exchange(const char *req, size_t len, char *buf, size_t cap,
                        int timeout_ms, bool *closed)
{
    int fd = raw_connect(svc.port);
    buf[0] = '\0';
    *closed = false;
    if (fd < 0)
        return -1;
    raw_send(fd, req, len); /* the server may close early: read anyway */
    raw_read(fd, buf, cap, timeout_ms, closed);
    close(fd);
    return response_status(buf);
}

static bool raw_problem(const char *buf, int status, const char *code)
{
    const char *b = raw_body(buf);
    json_error_t je;
    json_t *j = json_loads(b, 0, &je);
    const char *c = j ? json_string_value(json_object_get(j, "code")) : NULL;
    bool ok =
        response_status(buf) == status && c && strcmp(c, code) == 0 &&
        strcasestr(buf, "\r\nContent-Type: application/problem+json") != NULL;
    if (!ok)
        t_diag("expected %d %s; got: %.400s", status, code, buf);
    json_decref(j);
    return ok;
}

/* ---- the table -----------------------------------------------------------*/

#define CT_NONE "Content-Type:" /* curl sends no Content-Type */

struct bad_case {
    const char *method, *path, *body;
    const char *header; /* one extra header or NULL */
    long status;
    const char *code;
    const char *allow; /* expected Allow header substring, or NULL */
    const char *what;
};

static const char *const A = "/v1/locks/target/acquire";
static const char *const RN = "/v1/locks/target/renew";
static const char *const RL = "/v1/locks/target/release";

static void run_case(const struct bad_case *c)
{
    struct http_resp r;
    const char *hdrs[2] = {c->header, NULL};
    http(&r, svc.url, c->method, c->path, c->body, c->header ? hdrs : NULL);
    bool ok = problem_is(&r, c->status, c->code);
    if (c->allow) {
        char allow[128];
        const char *a = http_header(&r, "Allow", allow, sizeof allow);
        if (!a || !strstr(a, c->allow)) {
            t_diag("Allow header: %s, want it to name %s", a ? a : "(none)",
                   c->allow);
            ok = false;
        }
    }
    t_ok(ok && lock_unchanged(), "%s -> %ld %s, lock unchanged", c->what,
         c->status, c->code);
    http_resp_free(&r);
}

static void test_table(void)
{
    static char long_owner[200], long_name_path[300], deep[64], bad_token[128],
        upper_token[128], long_token[128], nonhex_token[128], wrong_renew[128];
    memset(long_owner, 0, sizeof long_owner);
    memcpy(long_owner, "{\"owner\":\"", 10);
    memset(long_owner + 10, 'o', 129);
    memcpy(long_owner + 10 + 129, "\"}", 3);
    char name129[130];
    memset(name129, 'n', 129);
    name129[129] = '\0';
    snprintf(long_name_path, sizeof long_name_path, "/v1/locks/%s/acquire",
             name129);
    snprintf(deep, sizeof deep, "{\"owner\":[[[[[[[[[[1]]]]]]]]]]}");
    snprintf(bad_token, sizeof bad_token, "{\"token\":\"%.31s\"}", held_token);
    snprintf(upper_token, sizeof upper_token,
             "{\"token\":\"0123456789ABCDEF0123456789ABCDEF\"}");
    snprintf(long_token, sizeof long_token, "{\"token\":\"%s0\"}", held_token);
    snprintf(nonhex_token, sizeof nonhex_token, "{\"token\":\"%.31sg\"}",
             held_token);
    snprintf(wrong_renew, sizeof wrong_renew,
             "{\"token\":\"00000000000000000000000000000000\"}");

    const struct bad_case cases[] = {
        /* not a JSON object */
        {"POST", A, "{\"ttl_ms\":", NULL, 400, "invalid_json", NULL,
         "malformed JSON (cut after the colon)"},
        {"POST", A, "{\"ttl_ms\":1000", NULL, 400, "invalid_json", NULL,
         "truncated JSON (no closing brace)"},
        {"POST", A, "{", NULL, 400, "invalid_json", NULL, "a lone {"},
        {"POST", A, "{'ttl_ms':1000}", NULL, 400, "invalid_json", NULL,
         "single-quoted keys"},
        {"POST", A, "{\"ttl_ms\":1000,}", NULL, 400, "invalid_json", NULL,
         "a trailing comma"},
        {"POST", A, "[]", NULL, 400, "invalid_json", NULL, "a JSON array"},
        {"POST", A, "[{\"ttl_ms\":1000}]", NULL, 400, "invalid_json", NULL,
         "an object inside an array"},
        {"POST", A, "\"ttl_ms\"", NULL, 400, "invalid_json", NULL,
         "a JSON string"},
        {"POST", A, "1000", NULL, 400, "invalid_json", NULL, "a JSON number"},
        {"POST", A, "null", NULL, 400, "invalid_json", NULL, "JSON null"},
        {"POST", A, "{} {}", NULL, 400, "invalid_json", NULL,
         "two objects in one body"},
        {"POST", A, "\xef\xbb\xbf{}", NULL, 400, "invalid_json", NULL,
         "a UTF-8 byte order mark before the object"},
        {"POST", RL, "nope", NULL, 400, "invalid_json", NULL,
         "release with a non-JSON body"},
        {"POST", A, deep, NULL, 400, "invalid_json", NULL,
         "nesting deeper than --max-json-depth (8)"},
        /* duplicate keys are rejected as invalid_json */
        {"POST", A, "{\"ttl_ms\":1000,\"ttl_ms\":2000}", NULL, 400,
         "invalid_json", NULL, "duplicate key ttl_ms"},
        {"POST", RL, "{\"token\":\"a\",\"token\":\"b\"}", NULL, 400,
         "invalid_json", NULL, "duplicate key token on release"},
        /* invalid UTF-8 is not JSON */
        {"POST", A, "{\"owner\":\"\xff\"}", NULL, 400, "invalid_json", NULL,
         "raw byte 0xff in a string"},
        {"POST", A, "{\"owner\":\"\xc0\xaf\"}", NULL, 400, "invalid_json", NULL,
         "overlong UTF-8 0xc0 0xaf"},
        {"POST", A, "{\"owner\":\"\xed\xa0\x80\"}", NULL, 400, "invalid_json",
         NULL, "a UTF-8-encoded surrogate (0xed 0xa0 0x80)"},
        {"POST", A, "{\"\xfe\":1}", NULL, 400, "invalid_json", NULL,
         "invalid UTF-8 in a key"},
        /* wrong types */
        {"POST", A, "{\"ttl_ms\":\"1000\"}", NULL, 400, "invalid_field", NULL,
         "ttl_ms as a string"},
        {"POST", A, "{\"ttl_ms\":true}", NULL, 400, "invalid_field", NULL,
         "ttl_ms true"},
        {"POST", A, "{\"ttl_ms\":[1000]}", NULL, 400, "invalid_field", NULL,
         "ttl_ms an array"},
        {"POST", A, "{\"wait_ms\":{}}", NULL, 400, "invalid_field", NULL,
         "wait_ms an object"},
        {"POST", A, "{\"owner\":42}", NULL, 400, "invalid_field", NULL,
         "owner a number"},
        {"POST", A, "{\"owner\":{\"a\":1}}", NULL, 400, "invalid_field", NULL,
         "owner an object"},
        {"POST", A, "{\"token\":12345}", NULL, 400, "invalid_field", NULL,
         "token a number"},
        /* numbers: integers in range only */
        {"POST", A, "{\"ttl_ms\":-5}", NULL, 400, "invalid_field", NULL,
         "negative ttl_ms"},
        {"POST", A, "{\"wait_ms\":-1}", NULL, 400, "invalid_field", NULL,
         "negative wait_ms"},
        {"POST", A, "{\"ttl_ms\":0}", NULL, 400, "invalid_field", NULL,
         "zero ttl_ms"},
        {"POST", A, "{\"ttl_ms\":-0}", NULL, 400, "invalid_field", NULL,
         "ttl_ms -0"},
        {"POST", A, "{\"ttl_ms\":1.5}", NULL, 400, "invalid_field", NULL,
         "fractional ttl_ms 1.5"},
        {"POST", A, "{\"ttl_ms\":1000.0}", NULL, 400, "invalid_field", NULL,
         "ttl_ms 1000.0 (a real, though integral)"},
        {"POST", A, "{\"ttl_ms\":1e3}", NULL, 400, "invalid_field", NULL,
         "exponent ttl_ms 1e3"},
        {"POST", A, "{\"wait_ms\":1E2}", NULL, 400, "invalid_field", NULL,
         "exponent wait_ms 1E2"},
        {"POST", A, "{\"ttl_ms\":1e30}", NULL, 400, "invalid_field", NULL,
         "huge ttl_ms 1e30"},
        {"POST", A, "{\"ttl_ms\":9223372036854775807}", NULL, 400,
         "invalid_field", NULL, "ttl_ms 2^63-1"},
        {"POST", A, "{\"ttl_ms\":-9223372036854775808}", NULL, 400,
         "invalid_field", NULL, "ttl_ms -2^63"},
        {"POST", A, "{\"ttl_ms\":99999999999999999999}", NULL, 400,
         "invalid_field", NULL,
         "huge integer ttl_ms 99999999999999999999 (a JSON object, field out "
         "of range)"},
        {"POST", A, "{\"ttl_ms\":3600001}", NULL, 400, "invalid_field", NULL,
         "ttl_ms over max_ttl_ms"},
        {"POST", A, "{\"wait_ms\":60001}", NULL, 400, "invalid_field", NULL,
         "wait_ms over max_wait_ms"},
        /* null fields */
        {"POST", A, "{\"ttl_ms\":null}", NULL, 400, "invalid_field", NULL,
         "ttl_ms null"},
        {"POST", A, "{\"wait_ms\":null}", NULL, 400, "invalid_field", NULL,
         "wait_ms null"},
        {"POST", A, "{\"owner\":null}", NULL, 400, "invalid_field", NULL,
         "owner null"},
        {"POST", A, "{\"token\":null}", NULL, 400, "invalid_field", NULL,
         "token null on acquire"},
        {"POST", RL, "{\"token\":null}", NULL, 400, "invalid_field", NULL,
         "token null on release"},
        /* unknown fields are rejected */
        {"POST", A, "{\"bogus\":1}", NULL, 400, "invalid_field", NULL,
         "unknown field bogus"},
        {"POST", A, "{\"TTL_MS\":1000}", NULL, 400, "invalid_field", NULL,
         "unknown field TTL_MS (keys are case-sensitive)"},
        {"POST", RN,
         "{\"token\":\"00000000000000000000000000000000\","
         "\"wait_ms\":1}",
         NULL, 400, "invalid_field", NULL, "wait_ms is unknown on renew"},
        /* strings */
        {"POST", A, "{\"owner\":\"a\\u0000b\"}", NULL, 400, "invalid_field",
         NULL, "NUL via \\u0000 in owner (a JSON object, bad field)"},
        {"POST", A, "{\"owner\":\"a\\u0001b\"}", NULL, 400, "invalid_field",
         NULL, "control character \\u0001 in owner"},
        {"POST", A, long_owner, NULL, 400, "invalid_field", NULL,
         "owner of 129 characters"},
        /* tokens */
        {"POST", RL, bad_token, NULL, 400, "invalid_field", NULL,
         "release with a 31-digit token"},
        {"POST", RL, long_token, NULL, 400, "invalid_field", NULL,
         "release with a 33-digit token"},
        {"POST", RN, upper_token, NULL, 400, "invalid_field", NULL,
         "renew with an uppercase-hex token"},
        {"POST", A, nonhex_token, NULL, 400, "invalid_field", NULL,
         "acquire with a non-hex token"},
        {"POST", RN, "{}", NULL, 400, "invalid_field", NULL,
         "renew without a token"},
        {"POST", RL, "{}", NULL, 400, "invalid_field", NULL,
         "release without a token"},
        {"POST", RL, NULL, NULL, 400, "invalid_field", NULL,
         "release with no body at all"},
        {"POST", RN, wrong_renew, NULL, 409, "not_owner", NULL,
         "renew with a well-formed stranger's token"},
        {"POST", RL, wrong_renew, NULL, 409, "not_owner", NULL,
         "release with a well-formed stranger's token"},
        /* names */
        {"POST", long_name_path, "{}", NULL, 400, "invalid_name", NULL,
         "a 129-character name"},
        {"POST", "/v1/locks/caf%C3%A9/acquire", "{}", NULL, 400, "invalid_name",
         NULL, "a non-ASCII name (percent-encoded UTF-8)"},
        {"POST", "/v1/locks/a%20b/acquire", "{}", NULL, 400, "invalid_name",
         NULL, "%20 in a name"},
        {"POST", "/v1/locks/x%252e/acquire", "{}", NULL, 400, "invalid_name",
         NULL, "%25 decodes once: the name x%2e is invalid"},
        {"GET", "/v1/locks/target%00junk", NULL, NULL, 400, "invalid_name",
         NULL, "%00 in a name (must not truncate the path to 'target')"},
        {"POST", "/v1/locks/target/acquire%00junk", "{}", NULL, 404,
         "not_found", NULL,
         "%00 after the route (must not truncate to .../acquire)"},
        {"POST", "/v1/locks/a%2Fb/acquire", "{}", NULL, 404, "not_found", NULL,
         "%2F decodes to a slash: no such route"},
        {"GET", "/%ff%fe", NULL, NULL, 404, "not_found", NULL,
         "an unknown path of invalid UTF-8 (echoed safely in the detail)"},
        {"POST", "/v1/locks/%ff/acquire", "{}", NULL, 400, "invalid_name", NULL,
         "a name of invalid UTF-8"},
        {"POST", "/v1/locks/x/acquire", "{\"a\xff\":1}", NULL, 400,
         "invalid_json", NULL, "invalid UTF-8 in a key (quoted by the parser)"},
        {"POST", "/v1/locks//acquire", "{}", NULL, 400, "invalid_name", NULL,
         "an empty name segment (/v1/locks//acquire)"},
        {"GET", "/v1/locks/", NULL, NULL, 400, "invalid_name", NULL,
         "GET /v1/locks/ (empty name)"},
        {"GET", "/v1/locks/bad*name", NULL, NULL, 400, "invalid_name", NULL,
         "GET a name with *"},
        /* media types */
        {"POST", A, "{}", CT_NONE, 415, "unsupported_media_type", NULL,
         "a body without Content-Type"},
        {"POST", A, "{}", "Content-Type: text/plain", 415,
         "unsupported_media_type", NULL, "Content-Type text/plain"},
        {"POST", A, "{}", "Content-Type: application/jsonp", 415,
         "unsupported_media_type", NULL, "Content-Type application/jsonp"},
        {"POST", A, "{}", "Content-Type: application/json-patch+json", 415,
         "unsupported_media_type", NULL,
         "Content-Type application/json-patch+json"},
        {"POST", RL, "{\"token\":1}", "Content-Type: text/plain", 415,
         "unsupported_media_type", NULL,
         "media type is checked before the body"},
        {"POST", A, "{}", "Content-Type: application/json; charset=utf-8", 409,
         "lock_held", NULL, "application/json; charset=utf-8 is accepted"},
        {"POST", A, "{}", "Content-Type: Application/JSON", 409, "lock_held",
         NULL, "the media type is case-insensitive"},
        {"POST", A, NULL, NULL, 409, "lock_held", NULL,
         "acquire with no body is {} (409 lock_held on the held lock)"},
        /* routes and methods */
        {"GET", "/v1/nope", NULL, NULL, 404, "not_found", NULL, "GET /v1/nope"},
        {"POST", "/v1/locks/target/steal", "{}", NULL, 404, "not_found", NULL,
         "POST /v1/locks/target/steal"},
        {"GET", "/v1/locks/target/acquire/extra", NULL, NULL, 404, "not_found",
         NULL, "a path past the route"},
        {"PATCH", A, "{}", NULL, 405, "method_not_allowed", "POST",
         "PATCH on acquire"},
        {"PATCH", "/v1/locks/target", NULL, NULL, 405, "method_not_allowed",
         "GET", "PATCH on a lock"},
        {"PUT", "/v1/locks/target", "{}", NULL, 405, "method_not_allowed",
         "GET", "PUT on a lock"},
        {"GET", RL, NULL, NULL, 405, "method_not_allowed", "POST",
         "GET on release"},
        {"BREW", "/v1/locks/target", NULL, NULL, 405, "method_not_allowed",
         "GET", "an unknown method BREW"},
        {"POST", "/healthz", "{}", NULL, 405, "method_not_allowed", "GET",
         "POST /healthz"},
    };
    size_t n = sizeof cases / sizeof cases[0];
    t_diag("%zu table cases", n);
    for (size_t i = 0; i < n; i++)
        run_case(&cases[i]);
}

/* Cases whose success is not a problem document. */
static void test_positive_shapes(void)
{
    struct http_resp r, g;
    char buf[128];

    /* %41 is unescaped to A before routing: the same lock as ABC. */
    http(&r, svc.url, "POST", "/v1/locks/%41BC/acquire", "{\"ttl_ms\":60000}",
         NULL);
    http(&g, svc.url, "GET", "/v1/locks/ABC", NULL, NULL);
    t_ok(r.status == 200 && jstr(&r, "name") &&
             strcmp(jstr(&r, "name"), "ABC") == 0 && g.status == 200 &&
             json_is_true(json_object_get(g.json, "held")) &&
             jint(&g, "fence") == jint(&r, "fence"),
         "%%41BC names the lock ABC (%ld %s / %s)", r.status, r.body, g.body);
    http_resp_free(&r);
    http_resp_free(&g);
    http(&r, svc.url, "POST", "/v1/locks/a%2eb/acquire", "{}", NULL);
    t_ok(r.status == 200 && jstr(&r, "name") &&
             strcmp(jstr(&r, "name"), "a.b") == 0,
         "%%2e is a dot: a%%2eb names a.b (%ld %s)", r.status, r.body);
    http_resp_free(&r);

    /* A body on GET is ignored. */
    const char *hj[] = {"Content-Type: application/json", NULL};
    http(&r, svc.url, "GET", "/v1/locks/target", "{\"garbage\":", hj);
    t_ok(r.status == 200 && r.json &&
             json_is_true(json_object_get(r.json, "held")) && lock_unchanged(),
         "a (bad) body on GET is ignored: 200 (%ld %s)", r.status, r.body);
    http_resp_free(&r);
    const char *ht[] = {"Content-Type: text/plain", NULL};
    http(&r, svc.url, "GET", "/v1/locks/target", "hello", ht);
    t_ok(r.status == 200 && lock_unchanged(),
         "a text/plain body on GET is ignored: 200 (%ld)", r.status);
    http_resp_free(&r);

    /* HEAD where GET is: 200, no body; HEAD on a POST route: 405. */
    http(&r, svc.url, "HEAD", "/v1/locks/target", NULL, NULL);
    t_ok(r.status == 200 && r.len == 0 &&
             strncmp(r.content_type, "application/json", 16) == 0,
         "HEAD /v1/locks/target -> 200, no body (%ld, %zu bytes, %s)", r.status,
         r.len, r.content_type);
    http_resp_free(&r);
    http(&r, svc.url, "HEAD", "/healthz", NULL, NULL);
    t_ok(r.status == 200 && r.len == 0, "HEAD /healthz -> 200, no body (%ld)",
         r.status);
    http_resp_free(&r);
    http(&r, svc.url, "HEAD", A, NULL, NULL);
    const char *allow = http_header(&r, "Allow", buf, sizeof buf);
    t_ok(r.status == 405 && r.len == 0 && allow && strstr(allow, "POST") &&
             lock_unchanged(),
         "HEAD on acquire -> 405 with Allow (%ld, Allow: %s)", r.status,
         allow ? allow : "(none)");
    http_resp_free(&r);

    /* OPTIONS: 204 with Allow naming the methods. */
    http(&r, svc.url, "OPTIONS", "/v1/locks/target", NULL, NULL);
    allow = http_header(&r, "Allow", buf, sizeof buf);
    t_ok(r.status == 204 && allow && strstr(allow, "GET") &&
             strstr(allow, "HEAD") && !strstr(allow, "POST"),
         "OPTIONS /v1/locks/target -> 204, Allow: %s (%ld)",
         allow ? allow : "(none)", r.status);
    http_resp_free(&r);
    http(&r, svc.url, "OPTIONS", A, NULL, NULL);
    allow = http_header(&r, "Allow", buf, sizeof buf);
    t_ok(r.status == 204 && allow && strstr(allow, "POST") &&
             !strstr(allow, "GET") && lock_unchanged(),
         "OPTIONS on acquire -> 204, Allow: %s (%ld)", allow ? allow : "(none)",
         r.status);
    http_resp_free(&r);
    http(&r, svc.url, "OPTIONS", "/nope", NULL, NULL);
    t_ok(problem_is(&r, 404, "not_found"), "OPTIONS on an unknown path -> 404");
    http_resp_free(&r);
}

/* ---- raw-socket cases ---------------------------------------------------*/

static void chunked(char *out, size_t cap, const char *path, const char *body,
                    size_t chunk)
{
    size_t len = strlen(body), off = 0;
    int n = snprintf(out, cap,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                     path);
    size_t o = (size_t)n;
    while (off < len) {
        size_t k = len - off < chunk ? len - off : chunk;
        o += (size_t)snprintf(out + o, cap - o, "%zx\r\n", k);
        memcpy(out + o, body + off, k);
        o += k;
        memcpy(out + o, "\r\n", 2);
        o += 2;
        off += k;
    }
    snprintf(out + o, cap - o, "0\r\n\r\n");
}

static void test_raw(void)
{
    static char req[80000], buf[80000];
    bool closed;
    int st;

    /* Valid chunked JSON works. */
    chunked(req, sizeof req, "/v1/locks/chunky/acquire",
            "{\"ttl_ms\":60000,\"owner\":\"chunked-client\"}", 7);
    st = raw_exchange(req, strlen(req), buf, sizeof buf, 5000, &closed);
    json_t *j = json_loads(raw_body(buf), 0, NULL);
    const char *owner = j ? json_string_value(json_object_get(j, "owner")) : 0;
    t_ok(st == 200 && owner && strcmp(owner, "chunked-client") == 0,
         "valid chunked JSON (7-byte chunks) -> 200 granted (%d %.200s)", st,
         raw_body(buf));
    json_decref(j);
    struct http_resp g;
    http(&g, svc.url, "GET", "/v1/locks/chunky", NULL, NULL);
    t_ok(g.status == 200 && json_is_true(json_object_get(g.json, "held")),
         "  the chunked acquire took the lock (%s)", g.body);
    http_resp_free(&g);

    /* Chunked invalid JSON is still invalid_json. */
    chunked(req, sizeof req, A, "{\"ttl_ms\":", 3);
    raw_exchange(req, strlen(req), buf, sizeof buf, 5000, &closed);
    t_ok(raw_problem(buf, 400, "invalid_json") && lock_unchanged(),
         "chunked malformed JSON -> 400 invalid_json, lock unchanged");

    /* Chunked past the 16 KiB limit -> 413. */
    {
        static char big[20100];
        memcpy(big, "{\"owner\":\"", 10);
        memset(big + 10, 'a', 20000);
        memcpy(big + 10 + 20000, "\"}", 3);
        chunked(req, sizeof req, A, big, 1000);
        raw_exchange(req, strlen(req), buf, sizeof buf, 5000, &closed);
        t_ok(raw_problem(buf, 413, "body_too_large") && lock_unchanged(),
             "chunked body of 20 KB -> 413 body_too_large, lock unchanged");
    }

    /* Content-Length over the limit: refused before the body. */
    snprintf(req, sizeof req,
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
             "\r\nContent-Length: 10000000\r\n\r\n",
             A);
    double t0 = now_ms();
    raw_exchange(req, strlen(req), buf, sizeof buf, 1500, &closed);
    t_ok(raw_problem(buf, 413, "body_too_large") && lock_unchanged(),
         "Content-Length 10000000 -> 413 without waiting for the body "
         "(%.0f ms)",
         now_ms() - t0);

    /* A truncated body: Content-Length larger than what is sent. The idle
     * timeout (2 s) must cut the connection off; nothing changes. */
    {
        const char *part = "{\"ttl_ms\":1000,\"tok";
        snprintf(req, sizeof req,
                 "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 "application/json\r\nContent-Length: 100\r\n\r\n%s",
                 A, part);
        t0 = now_ms();
        st = raw_exchange(req, strlen(req), buf, sizeof buf,
                          (int)(8000 * time_scale()), &closed);
        double took = now_ms() - t0;
        t_ok(closed && took >= 1500 && took < 5000 * time_scale() &&
                 (st == 0 || st == 408 || st == 400),
             "truncated body (Content-Length 100, 19 sent) is cut off by the "
             "idle timeout (closed=%d after %.0f ms, status %d)",
             closed, took, st);
        t_ok(lock_unchanged(), "  lock unchanged after the truncated body");
    }

    /* A 64 KiB header: libmicrohttpd's 431 (or a close); server lives on. */
    {
        int o = snprintf(req, sizeof req,
                         "GET /v1/locks/target HTTP/1.1\r\nHost: x\r\n"
                         "X-Big: ");
        memset(req + o, 'h', 65536);
        o += 65536;
        o += snprintf(req + o, sizeof req - (size_t)o,
                      "\r\nConnection: close\r\n\r\n");
        st = raw_exchange(req, (size_t)o, buf, sizeof buf, 5000, &closed);
        t_ok(st == 431 || st == 413 || (st == 0 && closed),
             "a 64 KiB header -> 431 or closed (status %d, closed %d)", st,
             closed);
        struct http_resp h;
        http(&h, svc.url, "GET", "/healthz", NULL, NULL);
        t_ok(h.status == 200 && lock_unchanged(),
             "  the server keeps serving after the 64 KiB header (%ld)",
             h.status);
        http_resp_free(&h);
    }

    /* Raw UTF-8 bytes in the path (no percent-encoding). */
    snprintf(req, sizeof req,
             "POST /v1/locks/caf\xc3\xa9/acquire HTTP/1.1\r\nHost: x\r\n"
             "Content-Type: application/json\r\nContent-Length: 2\r\n"
             "Connection: close\r\n\r\n{}");
    raw_exchange(req, strlen(req), buf, sizeof buf, 5000, &closed);
    t_ok(raw_problem(buf, 400, "invalid_name"),
         "raw UTF-8 bytes in the name -> 400 invalid_name");

    /* A bad Content-Length and a garbage request line: answered by
     * libmicrohttpd (4xx) or closed, and the server keeps serving. */
    snprintf(req, sizeof req,
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
             "\r\nContent-Length: abc\r\nConnection: close\r\n\r\n{}",
             A);
    st = raw_exchange(req, strlen(req), buf, sizeof buf, 5000, &closed);
    t_ok(((st >= 400 && st < 500) || (st == 0 && closed)) && lock_unchanged(),
         "Content-Length: abc -> 4xx or closed (%d), lock unchanged", st);
    snprintf(req, sizeof req, "\x01\x02 garbage\r\n\r\n");
    st = raw_exchange(req, strlen(req), buf, sizeof buf, 5000, &closed);
    t_ok((st >= 400 && st < 500) || (st == 0 && closed),
         "a garbage request line -> 4xx or closed (%d)", st);
}

/* Random paths, methods and bodies (a fixed seed, so a failure replays):
 * every answer is well-formed problem+json or a 2xx, the server keeps
 * serving, and the held lock is untouched. */
static void test_random_requests(void)
{
    /* No DELETE: on a lock's path it is a force release. */
    static const char *const methods[] = {"GET",  "POST",  "PUT",
                                          "HEAD", "PATCH", "OPTIONS"};
    static const char *const prefixes[] = {"/v1/locks/", "/demo/inventory/",
                                           "/", "/v1/", "/healthz/"};
    static const char *const pieces[] = {
        "%ff", "%00", "%2f",  "%2F",    "%25",     "%e2%82%ac", "%c0%af",
        "%",   "%g1", "a",    "target", "acquire", "release",   "/",
        "//",  ".",   "..",   ":",      "-",       "_",         "%20",
        "%41", "~",   "?x=1", "#f",     "purchase"};
    static const char *const bodies[] = {NULL,
                                         "{}",
                                         "{\"ttl_ms\":1}",
                                         "[",
                                         "{\"a\xff\":1}",
                                         "{\"owner\":\"\xe2\x82\"}",
                                         "{\"token\":\"%s\"}",
                                         "null"};
    unsigned seed = 20261126u, bad = 0, served = 0;
    int i;

    for (i = 0; i < 400; i++) {
        char path[256];
        struct http_resp r;
        int n = 1 + (int)(rand_r(&seed) % 5);
        const char *method = methods[rand_r(&seed) % 6];
        const char *body = bodies[rand_r(&seed) % 8];

        snprintf(path, sizeof path, "%s", prefixes[rand_r(&seed) % 5]);
        while (n-- > 0)
            strncat(path, pieces[rand_r(&seed) % 26],
                    sizeof path - strlen(path) - 1);
        if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
            body = NULL;
        if (http(&r, svc.url, method, path, body, NULL) != 0) {
            bad++;
            t_diag("no answer to %s %s", method, path);
        } else if (r.status >= 400 && strcmp(method, "HEAD") != 0 &&
                   (strcmp(r.content_type, "application/problem+json") != 0 ||
                    problem_code(&r)[0] == '\0')) {
            bad++;
            t_diag("%s %s -> %ld %s %s", method, path, r.status, r.content_type,
                   r.body);
        } else {
            served++;
        }
        http_resp_free(&r);
    }
    t_ok(bad == 0, "400 random requests: every answer well-formed (%u bad)",
         bad);
    t_ok(served == 400 && lock_unchanged(),
         "the server kept serving and the held lock is unchanged");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *args[] = {"--idle-timeout-s", "2", NULL};
    if (svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "lockservice starts");
        redis_stop(&redis);
        return t_done();
    }

    struct http_resp r;
    http(&r, svc.url, "POST", A, "{\"ttl_ms\":600000,\"owner\":\"keeper\"}",
         NULL);
    t_ok(r.status == 200 && token_like(jstr(&r, "token")),
         "hold the lock 'target' first (%ld %s)", r.status, r.body);
    if (jstr(&r, "token"))
        snprintf(held_token, sizeof held_token, "%s", jstr(&r, "token"));
    held_fence = jint(&r, "fence");
    http_resp_free(&r);

    test_table();
    test_positive_shapes();
    test_raw();
    test_random_requests();

    /* After all of it: still serving, and the lock still works. */
    http(&r, svc.url, "GET", "/healthz", NULL, NULL);
    t_ok(r.status == 200, "after every case /healthz answers 200 (%ld)",
         r.status);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/after-all/acquire",
         "{\"ttl_ms\":10000}", NULL);
    char tok[64] = "";
    if (jstr(&r, "token"))
        snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    t_ok(r.status == 200 && token_like(tok), "a normal acquire -> 200 (%ld)",
         r.status);
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/after-all/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && jint(&r, "count") == 0,
         "and its release -> 200 count 0 (%ld %s)", r.status, r.body);
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/target/release", NULL,
          "{\"token\":\"%s\"}", held_token);
    t_ok(r.status == 200 && jint(&r, "count") == 0,
         "the held lock is released by its token at the end (%ld %s)", r.status,
         r.body);
    http_resp_free(&r);

    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
