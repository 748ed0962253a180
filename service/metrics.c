/* metrics.c -- see metrics.h. Counters are a fixed grid (route x method x
 * status), so the set of series is bounded whatever clients send. */
#include "metrics.h"

#include "http/http.h"
#include "http/listener.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTES_MAX 32
static const char *const methods[] = {"GET", "HEAD",   "POST",
                                      "PUT", "DELETE", "OTHER"};
#define METHODS (sizeof methods / sizeof methods[0])
static const unsigned statuses[] = {200, 201, 204, 400, 401, 404, 405, 409,
                                    413, 415, 429, 499, 500, 501, 503, 0};
#define STATUSES (sizeof statuses / sizeof statuses[0])
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                 5,      10,    30,     60};
#define BUCKETS (sizeof buckets / sizeof buckets[0])

/* Row ROUTES_MAX counts requests that matched no route. */
static atomic_ulong requests[ROUTES_MAX + 1][METHODS][STATUSES];
/* Per bucket, not cumulative (one add per request); [BUCKETS] is +Inf.
 * metrics_render sums them up. */
static atomic_ulong latency_buckets[BUCKETS + 1];
static atomic_ulong latency_sum_us;
static atomic_ulong acquires[3];
static atomic_long waiters;
static atomic_ulong redis_errors;
static atomic_int eviction_unsafe;
static atomic_ulong force_releases;

static size_t method_index(const char *m)
{
    size_t i;
    for (i = 0; i < METHODS - 1; i++)
        if (strcmp(methods[i], m) == 0)
            return i;
    return METHODS - 1;
}

static size_t status_index(unsigned s)
{
    size_t i;
    for (i = 0; i < STATUSES - 1; i++)
        if (statuses[i] == s)
            return i;
    return STATUSES - 1;
}

void metrics_request(int route_index, const char *method, unsigned status,
                     uint64_t duration_ns)
{
    size_t r = route_index >= 0 && route_index < ROUTES_MAX
                   ? (size_t)route_index
                   : ROUTES_MAX;
    double secs = (double)duration_ns / 1e9;
    size_t b;

    atomic_fetch_add_explicit(
        &requests[r][method_index(method)][status_index(status)], 1,
        memory_order_relaxed);
    for (b = 0; b < BUCKETS && secs > buckets[b]; b++)
        ;
    atomic_fetch_add_explicit(&latency_buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_sum_us, duration_ns / 1000,
                              memory_order_relaxed);
}

void metrics_acquire(enum acquire_outcome outcome)
{
    atomic_fetch_add_explicit(&acquires[outcome], 1, memory_order_relaxed);
}

void metrics_waiters_add(int delta)
{
    atomic_fetch_add_explicit(&waiters, delta, memory_order_relaxed);
}

void metrics_set_eviction_unsafe(bool unsafe)
{
    atomic_store(&eviction_unsafe, unsafe ? 1 : 0);
}

void metrics_force_release(void)
{
    atomic_fetch_add_explicit(&force_releases, 1, memory_order_relaxed);
}

void metrics_redis_error(void)
{
    atomic_fetch_add_explicit(&redis_errors, 1, memory_order_relaxed);
}

char *metrics_render(size_t *len)
{
    static const char *const outcomes[] = {"granted", "held", "timeout"};
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    size_t r, m, s, b;
    unsigned long below = 0;

    if (f == NULL)
        return NULL;
    fputs("# HELP lockservice_http_requests_total HTTP requests by route, "
          "method and status.\n"
          "# TYPE lockservice_http_requests_total counter\n",
          f);
    for (r = 0; r <= ROUTES_MAX; r++) {
        const char *route = r < route_count && r < ROUTES_MAX
                                ? routes[r].pattern
                            : r == ROUTES_MAX ? "none"
                                              : NULL;
        if (route == NULL)
            continue;
        for (m = 0; m < METHODS; m++)
            for (s = 0; s < STATUSES; s++) {
                unsigned long v = atomic_load(&requests[r][m][s]);
                char st[16];
                if (v == 0)
                    continue;
                if (statuses[s] != 0)
                    snprintf(st, sizeof st, "%u", statuses[s]);
                else
                    snprintf(st, sizeof st, "other");
                fprintf(f,
                        "lockservice_http_requests_total{route=\"%s\","
                        "method=\"%s\",status=\"%s\"} %lu\n",
                        route, methods[m], st, v);
            }
    }
    fputs("# HELP lockservice_acquire_total Acquire outcomes.\n"
          "# TYPE lockservice_acquire_total counter\n",
          f);
    for (s = 0; s < 3; s++)
        fprintf(f, "lockservice_acquire_total{outcome=\"%s\"} %lu\n",
                outcomes[s], atomic_load(&acquires[s]));
    fprintf(f,
            "# HELP lockservice_waiters Requests waiting for a lock now.\n"
            "# TYPE lockservice_waiters gauge\n"
            "lockservice_waiters %ld\n"
            "# HELP lockservice_redis_errors_total Failed Redis calls.\n"
            "# TYPE lockservice_redis_errors_total counter\n"
            "lockservice_redis_errors_total %lu\n"
            "# HELP lockservice_http_connections Open HTTP connections, "
            "waiting ones included.\n"
            "# TYPE lockservice_http_connections gauge\n"
            "lockservice_http_connections %lu\n"
            "# HELP lockservice_http_connections_max --max-connections: past "
            "it, new clients wait in the listen backlog.\n"
            "# TYPE lockservice_http_connections_max gauge\n"
            "lockservice_http_connections_max %u\n"
            "# HELP lockservice_redis_eviction_unsafe 1 when Redis's "
            "maxmemory-policy can evict lock keys.\n"
            "# TYPE lockservice_redis_eviction_unsafe gauge\n"
            "lockservice_redis_eviction_unsafe %d\n"
            "# HELP lockservice_force_releases_total Locks an operator "
            "force-released (DELETE).\n"
            "# TYPE lockservice_force_releases_total counter\n"
            "lockservice_force_releases_total %lu\n",
            atomic_load(&waiters), atomic_load(&redis_errors),
            listener_connections(), listener_connection_limit(),
            atomic_load(&eviction_unsafe), atomic_load(&force_releases));
    fputs("# HELP lockservice_http_request_duration_seconds Time from the "
          "request's headers to its answer.\n"
          "# TYPE lockservice_http_request_duration_seconds histogram\n",
          f);
    for (b = 0; b < BUCKETS; b++) {
        below += atomic_load(&latency_buckets[b]);
        fprintf(f,
                "lockservice_http_request_duration_seconds_bucket{le=\"%g\"} "
                "%lu\n",
                buckets[b], below);
    }
    below += atomic_load(&latency_buckets[BUCKETS]);
    fprintf(f,
            "lockservice_http_request_duration_seconds_bucket{le=\"+Inf\"} "
            "%lu\n"
            "lockservice_http_request_duration_seconds_sum %.6f\n"
            "lockservice_http_request_duration_seconds_count %lu\n",
            below, (double)atomic_load(&latency_sum_us) / 1e6, below);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
