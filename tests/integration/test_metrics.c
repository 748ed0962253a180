/* test_metrics.c -- GET /metrics: Prometheus text, the metric names of the
 * contract, and counters that move with the requests that should move them. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc svc;

/* Value of a series, 0 when it has not appeared yet. */
static double value(const char *name, const char *const *labels)
{
    double v = metric_get(svc.url, name, labels);
    return v < 0 ? 0 : v;
}

static void test_exposition(void)
{
    struct http_resp r;
    http(&r, svc.url, "GET", "/metrics", NULL, NULL);
    t_ok(r.status == 200, "GET /metrics -> 200");
    t_ok(strncmp(r.content_type, "text/plain", 10) == 0 &&
             strstr(r.content_type, "version=0.0.4"),
         "Content-Type text/plain; version=0.0.4 (got '%s')", r.content_type);
    const char *names[] = {"lockservice_http_requests_total",
                           "lockservice_acquire_total",
                           "lockservice_waiters",
                           "lockservice_redis_errors_total",
                           "lockservice_http_request_duration_seconds_bucket",
                           "lockservice_http_request_duration_seconds_sum",
                           "lockservice_http_request_duration_seconds_count",
                           "lockservice_http_connections",
                           "lockservice_http_connections_max",
                           NULL};
    for (int i = 0; names[i]; i++)
        t_ok(r.body && strstr(r.body, names[i]), "exposes %s", names[i]);
    const char *types[] = {
        "# TYPE lockservice_http_requests_total counter",
        "# TYPE lockservice_acquire_total counter",
        "# TYPE lockservice_waiters gauge",
        "# TYPE lockservice_redis_errors_total counter",
        "# TYPE lockservice_http_request_duration_seconds histogram",
        "# TYPE lockservice_http_connections gauge",
        "# TYPE lockservice_http_connections_max gauge",
        NULL};
    for (int i = 0; types[i]; i++)
        t_ok(r.body && strstr(r.body, types[i]), "declares '%s'", types[i]);
    t_ok(r.body && strstr(r.body, "le=\"+Inf\""),
         "the duration histogram has a +Inf bucket");
    /* Every sample line is "name[{labels}] value". */
    bool wellformed = r.body != NULL;
    for (char *line = r.body, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (*line == '#' || *line == '\0')
            continue;
        char *sp = strrchr(line, ' ');
        char *end = NULL;
        if (!sp || (strtod(sp + 1, &end), *end != '\0') ||
            (strncmp(line, "lockservice_", 12) != 0 &&
             strncmp(line, "process_", 8) != 0)) {
            if (!sp || strcmp(sp + 1, "+Inf") != 0) {
                wellformed = false;
                t_diag("odd sample line: %s", line);
            }
        }
    }
    t_ok(wellformed, "every sample is 'lockservice_* value' or 'process_* "
                     "value'");
    http_resp_free(&r);

    /* Buckets are cumulative: never decreasing, +Inf equal to the count
     * (the /healthz route's histogram, which svc_start's probes fill). */
    http(&r, svc.url, "GET", "/metrics", NULL, NULL);
    const char *pre = "lockservice_http_request_duration_seconds_bucket{"
                      "route=\"/healthz\",le=";
    double last = -1, inf = -1;
    bool rising = r.body != NULL;
    for (const char *p = r.body; p && (p = strstr(p, pre)) != NULL;) {
        const char *val = strstr(p, "} ");
        double v = val ? strtod(val + 2, NULL) : -1;
        rising = rising && val && v >= last;
        last = v;
        if (strncmp(p + strlen(pre), "\"+Inf\"", 6) == 0)
            inf = v;
        p += strlen(pre);
    }
    const char *cpre = "_seconds_count{route=\"/healthz\"} ";
    const char *cnt = r.body ? strstr(r.body, cpre) : NULL;
    double count = cnt ? strtod(cnt + strlen(cpre), NULL) : -2;
    t_ok(rising && inf == count && count > 0,
         "duration buckets never decrease and +Inf equals the count (%g, %g)",
         inf, count);
    http_resp_free(&r);
}

static void test_request_counter(void)
{
    const char *acq200[] = {"route=\"/v1/locks/{name}/acquire\"",
                            "method=\"POST\"", "status=\"200\"", NULL};
    const char *acq409[] = {"route=\"/v1/locks/{name}/acquire\"",
                            "method=\"POST\"", "status=\"409\"", NULL};
    const char *status200[] = {"route=\"/v1/locks/{name}\"", "method=\"GET\"",
                               "status=\"200\"", NULL};
    double a200 = value("lockservice_http_requests_total", acq200);
    double a409 = value("lockservice_http_requests_total", acq409);
    double s200 = value("lockservice_http_requests_total", status200);
    const char *acq_route[] = {"route=\"/v1/locks/{name}/acquire\"", NULL};
    const char *status_route[] = {"route=\"/v1/locks/{name}\"", NULL};
    double count0 =
        value("lockservice_http_request_duration_seconds_count", acq_route) +
        value("lockservice_http_request_duration_seconds_count", status_route);

    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/metered-xyzzy/acquire", "{}", NULL);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/metered-xyzzy/acquire", "{}", NULL);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/metered-xyzzy", NULL, NULL);
    http_resp_free(&r);

    double a200b = value("lockservice_http_requests_total", acq200);
    double a409b = value("lockservice_http_requests_total", acq409);
    double s200b = value("lockservice_http_requests_total", status200);
    t_ok(a200b == a200 + 1, "acquire 200 counter +1 (%g -> %g)", a200, a200b);
    t_ok(a409b == a409 + 1, "acquire 409 counter +1 (%g -> %g)", a409, a409b);
    t_ok(s200b == s200 + 1, "status GET 200 counter +1 (%g -> %g)", s200,
         s200b);
    double count1 =
        value("lockservice_http_request_duration_seconds_count", acq_route) +
        value("lockservice_http_request_duration_seconds_count", status_route);
    t_ok(count1 >= count0 + 3,
         "the routes' duration histograms count the requests (%g -> %g)",
         count0, count1);

    http(&r, svc.url, "GET", "/metrics", NULL, NULL);
    t_ok(r.body && !strstr(r.body, "metered-xyzzy"),
         "lock names never appear in labels (route is the template)");
    http_resp_free(&r);

    const char *nf[] = {"status=\"404\"", NULL};
    double n404 = value("lockservice_http_requests_total", nf);
    http(&r, svc.url, "GET", "/no/such/route/abc", NULL, NULL);
    http_resp_free(&r);
    t_ok(value("lockservice_http_requests_total", nf) == n404 + 1,
         "a 404 is counted");
    http(&r, svc.url, "GET", "/metrics", NULL, NULL);
    t_ok(r.body && !strstr(r.body, "/no/such/route/abc"),
         "unknown paths do not become label values");
    http_resp_free(&r);
}

static void test_acquire_outcomes(void)
{
    const char *granted[] = {"outcome=\"granted\"", NULL};
    const char *held[] = {"outcome=\"held\"", NULL};
    const char *timeout[] = {"outcome=\"timeout\"", NULL};
    double g0 = value("lockservice_acquire_total", granted);
    double h0 = value("lockservice_acquire_total", held);
    double t0 = value("lockservice_acquire_total", timeout);

    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/outcomes/acquire", "{}", NULL);
    t_ok(r.status == 200, "acquire -> 200");
    http_resp_free(&r);
    t_ok(value("lockservice_acquire_total", granted) == g0 + 1,
         "acquire_total{outcome=\"granted\"} +1");

    http(&r, svc.url, "POST", "/v1/locks/outcomes/acquire", "{}", NULL);
    t_ok(r.status == 409, "acquire on a held lock, wait_ms 0 -> 409");
    http_resp_free(&r);
    t_ok(value("lockservice_acquire_total", held) == h0 + 1,
         "acquire_total{outcome=\"held\"} +1");
    t_ok(value("lockservice_acquire_total", timeout) == t0,
         "  and not timeout");

    http(&r, svc.url, "POST", "/v1/locks/outcomes/acquire", "{\"wait_ms\":100}",
         NULL);
    t_ok(r.status == 409, "acquire with wait_ms 100 on a held lock -> 409");
    http_resp_free(&r);
    t_ok(value("lockservice_acquire_total", timeout) == t0 + 1,
         "acquire_total{outcome=\"timeout\"} +1");
    t_ok(value("lockservice_acquire_total", held) == h0 + 1, "  and not held");
    t_ok(value("lockservice_acquire_total", granted) == g0 + 1,
         "granted unchanged by refusals");
    t_ok(metric_get(svc.url, "lockservice_waiters", NULL) == 0,
         "lockservice_waiters is 0 when nobody waits");
}

static void test_redis_errors(void)
{
    double e0 = value("lockservice_redis_errors_total", NULL);
    redis_kill(&redis);
    struct http_resp r;
    http(&r, svc.url, "POST", "/v1/locks/down/acquire", "{}", NULL);
    t_ok(r.status == 503, "acquire with Redis down -> 503");
    http_resp_free(&r);
    double e1 = value("lockservice_redis_errors_total", NULL);
    t_ok(e1 > e0, "lockservice_redis_errors_total grows (%g -> %g)", e0, e1);
    redis_restart(&redis);
}

/* Every scrape comes on a connection of its own, counted in the gauge. */
static void test_connections(void)
{
    double base = metric_get(svc.url, "lockservice_http_connections", NULL);
    int fds[3];

    t_ok(base >= 1,
         "lockservice_http_connections counts the scrape's own "
         "connection (%g)",
         base);
    for (int i = 0; i < 3; i++) {
        fds[i] = raw_connect(svc.port);
        if (fds[i] >= 0)
            raw_send(fds[i], "GET /healthz HTTP/1.1\r\n", 23);
    }
    t_ok(metric_wait(svc.url, "lockservice_http_connections", NULL, base + 3,
                     3000),
         "three half-sent requests: the gauge goes up by 3");
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    t_ok(metric_wait(svc.url, "lockservice_http_connections", NULL, base, 3000),
         "they hang up: the gauge is back to %g", base);
    t_ok(metric_get(svc.url, "lockservice_http_connections_max", NULL) == 16384,
         "lockservice_http_connections_max is --max-connections (16384)");
}

int main(void)
{
    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, NULL) != 0) {
        t_ok(false, "start redis-server and lockservice");
        return t_done();
    }
    test_exposition();
    test_request_counter();
    test_acquire_outcomes();
    test_redis_errors();
    test_connections();
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
