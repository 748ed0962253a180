/* fuzz_name_route.c -- libFuzzer target for the request path: lock name and
 * token validation against a reference, through url_decode_path
 * (service/http/urldecode.c), the percent-decoding the service applies to
 * the URL before the router sees it, itself checked against a reference
 * decoder written from its contract.
 *
 * It also runs every method through the real route tables
 * (service/http/routes.c, and demo-inventory/routes.c after them as with
 * --demo) with router_match(), and checks what it returns: a row that serves
 * the method, a {name} whose length is the segment's, a path match whenever
 * a route matched, no service route shadowed by the demo's. Handlers are
 * stubs: nothing is served. */
#include "config.h"
#include "handlers/handlers.h"
#include "http/http.h"
#include "http/router.h"
#include "http/urldecode.h"
#include "request.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The contract's definition, written independently of request.c. */
static bool reference_name_valid(const char *s, size_t len)
{
    static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "abcdefghijklmnopqrstuvwxyz"
                                  "0123456789._:-";
    if (len < 1 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || strchr(allowed, s[i]) == NULL)
            return false;
    return true;
}

static bool reference_token_valid(const char *s, size_t len)
{
    if (len != 32)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\0' || strchr("0123456789abcdef", s[i]) == NULL)
            return false;
    return true;
}

/* The value of hex digit c, or -1. */
static int reference_hex(char c)
{
    static const char digits[] = "0123456789abcdefABCDEF";
    const char *at = c != '\0' ? strchr(digits, c) : NULL;

    if (at == NULL)
        return -1;
    return at - digits < 16 ? (int)(at - digits) : (int)(at - digits) - 6;
}

/* The decoder's contract, written independently of urldecode.c: each "%HH"
 * but "%00" becomes its byte, everything else is copied; one pass, left to
 * right. out has room for strlen(in) + 1 bytes. Returns the length. */
static size_t reference_decode(const char *in, char *out)
{
    size_t n = strlen(in), i = 0, o = 0;

    while (i < n) {
        if (in[i] == '%' && i + 2 < n) {
            int hi = reference_hex(in[i + 1]), lo = reference_hex(in[i + 2]);
            if (hi >= 0 && lo >= 0 && (hi != 0 || lo != 0)) {
                out[o++] = (char)(hi * 16 + lo);
                i += 3;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    out[o] = '\0';
    return o;
}

/* Checks every segment of path, and the {name} of /v1/locks/{name}[/op]. */
static void check_path(const char *path, bool decoded)
{
    const char *seg = path;
    int index = 0;

    while (true) {
        const char *slash = strchr(seg, '/');
        size_t len = slash ? (size_t)(slash - seg) : strlen(seg);
        bool valid = lock_name_valid(seg, len);

        CHECK(valid == reference_name_valid(seg, len));
        if (valid) {
            /* A valid name has exactly one spelling: nothing in it
             * decodes to something else, and it is safe in a Redis key,
             * a JSON string and a log line as is. */
            CHECK(memchr(seg, '%', len) == NULL);
            CHECK(memchr(seg, '"', len) == NULL);
            CHECK(memchr(seg, '\\', len) == NULL);
            CHECK(memchr(seg, ' ', len) == NULL);
            char copy[LOCK_NAME_MAX + 1];
            memcpy(copy, seg, len);
            copy[len] = '\0';
            CHECK(url_decode_path(copy) == len);
            CHECK(memcmp(copy, seg, len) == 0);
        }
        if (decoded && index == 3 && strncmp(path, "/v1/locks/", 10) == 0 &&
            valid)
            CHECK(len <= LOCK_NAME_MAX && seg == path + 10);
        if (slash == NULL)
            break;
        seg = slash + 1;
        index++;
    }
}

/* The route tables point at handlers; the fuzzer only needs the symbols
 * (a handler missing here is a link error, so the list keeps up). */
#define STUB(h)                                                                \
    void h(struct request *req)                                                \
    {                                                                          \
        (void)req;                                                             \
    }
STUB(handle_lock_acquire)
STUB(handle_lock_renew)
STUB(handle_lock_release)
STUB(handle_lock_status)
STUB(handle_lock_check)
STUB(handle_lock_force_release)
STUB(handle_semaphore_acquire)
STUB(handle_semaphore_renew)
STUB(handle_semaphore_release)
STUB(handle_semaphore_status)
STUB(handle_semaphore_force_release)
STUB(handle_healthz)
STUB(handle_readyz)
STUB(handle_metrics)
STUB(handle_openapi)
STUB(handle_inventory_put)
STUB(handle_inventory_get)
STUB(handle_inventory_purchase)
STUB(handle_lock_list)
STUB(handle_semaphore_list)
STUB(handle_stats_hot)
STUB(handle_ui_page)
STUB(handle_ui_asset)
STUB(handle_ui_redirect)
STUB(handle_demo_page)
STUB(handle_demo_asset)
STUB(handle_demo_redirect)

/* The tables as http_start joins them: the service's routes, then the
 * demo's. Routing without --demo sees the first service_route_count rows. */
static struct route joined[64];
static size_t joined_count;

static void join_tables(void)
{
    size_t n = service_route_count, d = demo_route_count;

    CHECK(n + d <= sizeof joined / sizeof joined[0]);
    memcpy(joined, service_routes, n * sizeof joined[0]);
    memcpy(joined + n, demo_routes, d * sizeof joined[0]);
    joined_count = n + d;
}

static void check_router(const char *path)
{
    static const char *const methods[] = {"GET", "HEAD",   "POST",
                                          "PUT", "DELETE", "OPTIONS"};
    char param[LOCK_NAME_MAX + 1];

    if (joined_count == 0)
        join_tables();
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        int without_demo = -1;
        for (int demo = 0; demo <= 1; demo++) {
            size_t count = demo ? joined_count : service_route_count;
            size_t param_len;
            int path_route;
            int r = router_match(joined, count, methods[m], path, param,
                                 sizeof param, &param_len, &path_route);
            CHECK(r >= -1 && r < (int)count);
            CHECK(path_route >= -1 && path_route < (int)count);
            CHECK(strlen(param) <= LOCK_NAME_MAX);
            if (demo == 0)
                without_demo = r;
            else if (without_demo >= 0)
                CHECK(r == without_demo);
            if (r < 0)
                continue;
            CHECK(path_route >= 0 && path_route <= r);
            CHECK(strcmp(joined[r].method, methods[m]) == 0 ||
                  (strcmp(methods[m], "HEAD") == 0 &&
                   strcmp(joined[r].method, "GET") == 0));
            if (strstr(joined[r].pattern, "{name}") != NULL) {
                CHECK(param_len <= strlen(path));
                CHECK(memchr(param, '/', strlen(param)) == NULL);
                if (param_len <= LOCK_NAME_MAX)
                    CHECK(strlen(param) == param_len ||
                          memchr(path, '\0', param_len) != NULL);
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;

    CHECK(lock_name_valid(s, size) == reference_name_valid(s, size));
    CHECK(token_format_valid(s, size) == reference_token_valid(s, size));

    /* As a URL: a C string, undecoded and then decoded in place. */
    char *path = malloc(size + 1);
    CHECK(path != NULL);
    memcpy(path, data, size);
    path[size] = '\0';
    check_path(path, false);
    size_t before = strlen(path);
    char *want = malloc(before + 1);
    CHECK(want != NULL);
    size_t want_len = reference_decode(path, want);
    size_t after = url_decode_path(path);
    CHECK(after <= before);
    CHECK(after == want_len && strlen(path) == after);
    CHECK(memcmp(path, want, after + 1) == 0);
    free(want);
    check_path(path, true);
    check_router(path);
    free(path);
    return 0;
}
