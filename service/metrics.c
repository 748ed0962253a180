/* metrics.c -- see metrics.h. Counters are a fixed grid (route x method x
 * status), so the set of series is bounded whatever clients send. */
#include "metrics.h"

#include "http/http.h"
#include "http/listener.h"
#include "version.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Redis commands take well under a millisecond when all is well. */
static const double redis_buckets[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
#define REDIS_BUCKETS (sizeof redis_buckets / sizeof redis_buckets[0])
static const char *const redis_error_reasons[] = {"unreachable", "timeout",
                                                  "oom", "error_reply"};
#define REDIS_REASONS                                                          \
    (sizeof redis_error_reasons / sizeof redis_error_reasons[0])

/* Row ROUTES_MAX counts requests that matched no route. */
static atomic_ulong requests[ROUTES_MAX + 1][METHODS][STATUSES];
/* Per route row and bucket, not cumulative (one add per request);
 * [BUCKETS] is +Inf. metrics_render sums them up, and sums the rows that
 * share a path (GET and POST of one route template). */
static atomic_ulong latency_buckets[ROUTES_MAX + 1][BUCKETS + 1];
static atomic_ulong latency_sum_us[ROUTES_MAX + 1];
static atomic_ulong redis_latency_buckets[REDIS_BUCKETS + 1];
static atomic_ulong redis_latency_sum_ns;
static atomic_ulong acquires[3];
static atomic_long waiters;
static atomic_ulong redis_errors[REDIS_REASONS];
static atomic_int redis_up;
static atomic_int eviction_unsafe;
static atomic_ulong force_releases;
static const char *const kind_labels[] = {"lock", "semaphore"};
static const char *const wait_outcomes[] = {"granted", "timeout", "failed"};
static atomic_ulong wait_buckets[METRICS_KINDS][WAIT_OUTCOMES][BUCKETS + 1];
static atomic_ulong wait_sum_us[METRICS_KINDS][WAIT_OUTCOMES];
static atomic_ulong hold_buckets[METRICS_KINDS][BUCKETS + 1];
static atomic_ulong hold_sum_us[METRICS_KINDS];
static const char *const lease_causes[] = {"released", "expired", "lost",
                                           "forced"};
static atomic_ulong lease_ends[METRICS_KINDS][LEASE_ENDS];
static const char *const call_outcomes[] = {"ok", "held", "not_held",
                                            "not_owner", "unavailable"};
static atomic_ulong renews[METRICS_KINDS][CALL_OUTCOMES];
static atomic_ulong releases[METRICS_KINDS][CALL_OUTCOMES];
static atomic_uint waiters_max;
static atomic_ulong master_changes;
static atomic_ulong wait_shorts;
static atomic_ulong redirects[2]; /* MOVED, ASK */
static atomic_ulong cluster_refreshes;
static atomic_uint cluster_masters;

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

static size_t bucket_of(uint64_t duration_ns)
{
    double secs = (double)duration_ns / 1e9;
    size_t b;

    for (b = 0; b < BUCKETS && secs > buckets[b]; b++)
        ;
    return b;
}

void metrics_request(int route_index, const char *method, unsigned status,
                     uint64_t duration_ns)
{
    size_t r = route_index >= 0 && route_index < ROUTES_MAX
                   ? (size_t)route_index
                   : ROUTES_MAX;
    atomic_fetch_add_explicit(
        &requests[r][method_index(method)][status_index(status)], 1,
        memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_buckets[r][bucket_of(duration_ns)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&latency_sum_us[r], duration_ns / 1000,
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

void metrics_wait(enum metrics_kind kind, enum wait_outcome outcome,
                  uint64_t duration_ns)
{
    atomic_fetch_add_explicit(
        &wait_buckets[kind][outcome][bucket_of(duration_ns)], 1,
        memory_order_relaxed);
    atomic_fetch_add_explicit(&wait_sum_us[kind][outcome], duration_ns / 1000,
                              memory_order_relaxed);
}

void metrics_hold(enum metrics_kind kind, uint64_t duration_ns)
{
    atomic_fetch_add_explicit(&hold_buckets[kind][bucket_of(duration_ns)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&hold_sum_us[kind], duration_ns / 1000,
                              memory_order_relaxed);
}

void metrics_lease_end(enum metrics_kind kind, enum lease_end cause, uint64_t n)
{
    atomic_fetch_add_explicit(&lease_ends[kind][cause], n,
                              memory_order_relaxed);
}

void metrics_renew(enum metrics_kind kind, enum call_outcome outcome)
{
    atomic_fetch_add_explicit(&renews[kind][outcome], 1, memory_order_relaxed);
}

void metrics_release(enum metrics_kind kind, enum call_outcome outcome)
{
    atomic_fetch_add_explicit(&releases[kind][outcome], 1,
                              memory_order_relaxed);
}

void metrics_set_waiters_max(unsigned max)
{
    atomic_store(&waiters_max, max);
}

void metrics_set_eviction_unsafe(bool unsafe)
{
    atomic_store(&eviction_unsafe, unsafe ? 1 : 0);
}

void metrics_force_release(void)
{
    atomic_fetch_add_explicit(&force_releases, 1, memory_order_relaxed);
}

void metrics_redis_master_change(void)
{
    atomic_fetch_add_explicit(&master_changes, 1, memory_order_relaxed);
}

void metrics_redis_redirect(bool ask)
{
    atomic_fetch_add_explicit(&redirects[ask], 1, memory_order_relaxed);
}

void metrics_redis_cluster_map(unsigned masters)
{
    atomic_fetch_add_explicit(&cluster_refreshes, 1, memory_order_relaxed);
    atomic_store_explicit(&cluster_masters, masters, memory_order_relaxed);
}

void metrics_redis_wait_short(void)
{
    atomic_fetch_add_explicit(&wait_shorts, 1, memory_order_relaxed);
}

void metrics_redis_error(enum redis_error_reason reason)
{
    atomic_fetch_add_explicit(&redis_errors[reason], 1, memory_order_relaxed);
}

void metrics_redis_command(uint64_t duration_ns)
{
    double secs = (double)duration_ns / 1e9;
    size_t b;

    for (b = 0; b < REDIS_BUCKETS && secs > redis_buckets[b]; b++)
        ;
    atomic_fetch_add_explicit(&redis_latency_buckets[b], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&redis_latency_sum_ns, duration_ns,
                              memory_order_relaxed);
}

void metrics_set_redis_up(bool up)
{
    atomic_store(&redis_up, up ? 1 : 0);
}

/* The route template of counter row r, NULL for a row no route has. */
static const char *route_label(size_t r)
{
    if (r == ROUTES_MAX)
        return "none";
    return r < route_count ? routes[r].pattern : NULL;
}

/* The request duration histogram, one per route template: rows sharing a
 * template are summed into the first of them. */
static void render_request_durations(FILE *f)
{
    fputs("# HELP lockservice_http_request_duration_seconds Time from the "
          "request's headers to its answer, by route template.\n"
          "# TYPE lockservice_http_request_duration_seconds histogram\n",
          f);
    for (size_t r = 0; r <= ROUTES_MAX; r++) {
        const char *route = route_label(r);
        unsigned long counts[BUCKETS + 1] = {0}, sum_us = 0, below = 0;
        bool first = true;

        if (route == NULL)
            continue;
        for (size_t q = 0; q < r && first; q++)
            first =
                route_label(q) == NULL || strcmp(route_label(q), route) != 0;
        if (!first)
            continue;
        for (size_t q = r; q <= ROUTES_MAX; q++) {
            if (route_label(q) == NULL || strcmp(route_label(q), route) != 0)
                continue;
            for (size_t b = 0; b <= BUCKETS; b++)
                counts[b] += atomic_load(&latency_buckets[q][b]);
            sum_us += atomic_load(&latency_sum_us[q]);
        }
        for (size_t b = 0; b <= BUCKETS; b++) {
            char le[32];
            below += counts[b];
            if (b < BUCKETS)
                snprintf(le, sizeof le, "%g", buckets[b]);
            else
                snprintf(le, sizeof le, "+Inf");
            fprintf(f,
                    "lockservice_http_request_duration_seconds_bucket{route="
                    "\"%s\",le=\"%s\"} %lu\n",
                    route, le, below);
        }
        fprintf(f,
                "lockservice_http_request_duration_seconds_sum{route=\"%s\"} "
                "%.6f\n"
                "lockservice_http_request_duration_seconds_count{route=\"%s\"} "
                "%lu\n",
                route, (double)sum_us / 1e6, route, below);
    }
}

/* The histogram's buckets (not cumulative, [BUCKETS] +Inf) as cumulative
 * series of name with the labels given ("kind=\"lock\",..."). */
static void render_histogram(FILE *f, const char *name, const char *labels,
                             const atomic_ulong *counts, unsigned long sum_us)
{
    unsigned long below = 0;

    for (size_t b = 0; b <= BUCKETS; b++) {
        below += atomic_load(&counts[b]);
        if (b < BUCKETS)
            fprintf(f, "%s_bucket{%s,le=\"%g\"} %lu\n", name, labels,
                    buckets[b], below);
        else
            fprintf(f, "%s_bucket{%s,le=\"+Inf\"} %lu\n", name, labels, below);
    }
    fprintf(f, "%s_sum{%s} %.6f\n%s_count{%s} %lu\n", name, labels,
            (double)sum_us / 1e6, name, labels, below);
}

/* Counters of name by kind and by label (n values, a row of n counters
 * per kind in counts), leaving out the value at index skip (n: none). */
static void render_by_kind(FILE *f, const char *name, const char *label,
                           const char *const *values, size_t n,
                           const atomic_ulong *counts, size_t skip)
{
    for (size_t k = 0; k < METRICS_KINDS; k++)
        for (size_t v = 0; v < n; v++)
            if (v != skip)
                fprintf(f, "%s{kind=\"%s\",%s=\"%s\"} %lu\n", name,
                        kind_labels[k], label, values[v],
                        atomic_load(&counts[k * n + v]));
}

static void render_leases(FILE *f)
{
    char labels[64];

    fputs("# HELP lockservice_wait_seconds Time from the request to the "
          "answer of acquires that waited, by outcome.\n"
          "# TYPE lockservice_wait_seconds histogram\n",
          f);
    for (size_t k = 0; k < METRICS_KINDS; k++)
        for (size_t o = 0; o < WAIT_OUTCOMES; o++) {
            snprintf(labels, sizeof labels, "kind=\"%s\",outcome=\"%s\"",
                     kind_labels[k], wait_outcomes[o]);
            render_histogram(f, "lockservice_wait_seconds", labels,
                             wait_buckets[k][o],
                             atomic_load(&wait_sum_us[k][o]));
        }
    fputs("# HELP lockservice_hold_seconds Time from grant to release of "
          "leases their holder released.\n"
          "# TYPE lockservice_hold_seconds histogram\n",
          f);
    for (size_t k = 0; k < METRICS_KINDS; k++) {
        snprintf(labels, sizeof labels, "kind=\"%s\"", kind_labels[k]);
        render_histogram(f, "lockservice_hold_seconds", labels, hold_buckets[k],
                         atomic_load(&hold_sum_us[k]));
    }
    fputs("# HELP lockservice_lease_endings_total Leases ended, as this "
          "instance saw it: released by the holder; expired (the holder "
          "came to release it after it ran out); lost (a renew found it "
          "gone); forced (DELETE).\n"
          "# TYPE lockservice_lease_endings_total counter\n",
          f);
    render_by_kind(f, "lockservice_lease_endings_total", "cause", lease_causes,
                   LEASE_ENDS, &lease_ends[0][0], LEASE_ENDS);
    fputs("# HELP lockservice_renew_total Renew answers by outcome.\n"
          "# TYPE lockservice_renew_total counter\n",
          f);
    render_by_kind(f, "lockservice_renew_total", "outcome", call_outcomes,
                   CALL_OUTCOMES, &renews[0][0], CALL_HELD);
    fputs("# HELP lockservice_release_total Release answers by outcome "
          "(held: a re-entered lease keeps holds).\n"
          "# TYPE lockservice_release_total counter\n",
          f);
    render_by_kind(f, "lockservice_release_total", "outcome", call_outcomes,
                   CALL_OUTCOMES, &releases[0][0], CALL_OUTCOMES);
}

static void render_redis(FILE *f)
{
    unsigned long below = 0;
    size_t b;

    fprintf(f,
            "# HELP lockservice_redis_up 1 while the instance's first Redis "
            "command connection is up.\n"
            "# TYPE lockservice_redis_up gauge\n"
            "lockservice_redis_up %d\n"
            "# HELP lockservice_redis_errors_total Failed Redis calls by "
            "reason.\n"
            "# TYPE lockservice_redis_errors_total counter\n",
            atomic_load(&redis_up));
    for (b = 0; b < REDIS_REASONS; b++)
        fprintf(f, "lockservice_redis_errors_total{reason=\"%s\"} %lu\n",
                redis_error_reasons[b], atomic_load(&redis_errors[b]));
    fputs("# HELP lockservice_redis_command_duration_seconds Time from "
          "sending a Redis command to its answer.\n"
          "# TYPE lockservice_redis_command_duration_seconds histogram\n",
          f);
    for (b = 0; b < REDIS_BUCKETS; b++) {
        below += atomic_load(&redis_latency_buckets[b]);
        fprintf(f,
                "lockservice_redis_command_duration_seconds_bucket{le=\"%g\"} "
                "%lu\n",
                redis_buckets[b], below);
    }
    below += atomic_load(&redis_latency_buckets[REDIS_BUCKETS]);
    fprintf(f,
            "lockservice_redis_command_duration_seconds_bucket{le=\"+Inf\"} "
            "%lu\n"
            "lockservice_redis_command_duration_seconds_sum %.9f\n"
            "lockservice_redis_command_duration_seconds_count %lu\n",
            below, (double)atomic_load(&redis_latency_sum_ns) / 1e9, below);
}

static void render_redis_ha(FILE *f)
{
    fprintf(f,
            "# HELP lockservice_redis_master_changes_total Times the Redis "
            "master moved (Sentinel) and every connection followed.\n"
            "# TYPE lockservice_redis_master_changes_total counter\n"
            "lockservice_redis_master_changes_total %lu\n"
            "# HELP lockservice_redis_wait_short_total Writes that fewer "
            "replicas than --redis-wait-replicas acknowledged in time.\n"
            "# TYPE lockservice_redis_wait_short_total counter\n"
            "lockservice_redis_wait_short_total %lu\n"
            "# HELP lockservice_redis_redirects_total Commands a Redis "
            "Cluster node sent to another node (MOVED, or ASK while a slot "
            "migrates), followed there.\n"
            "# TYPE lockservice_redis_redirects_total counter\n"
            "lockservice_redis_redirects_total{kind=\"moved\"} %lu\n"
            "lockservice_redis_redirects_total{kind=\"ask\"} %lu\n"
            "# HELP lockservice_redis_cluster_map_reads_total Times the "
            "Redis Cluster slot map was read (CLUSTER SLOTS).\n"
            "# TYPE lockservice_redis_cluster_map_reads_total counter\n"
            "lockservice_redis_cluster_map_reads_total %lu\n"
            "# HELP lockservice_redis_cluster_masters Masters in the Redis "
            "Cluster slot map last read (0: not a cluster).\n"
            "# TYPE lockservice_redis_cluster_masters gauge\n"
            "lockservice_redis_cluster_masters %u\n",
            atomic_load(&master_changes), atomic_load(&wait_shorts),
            atomic_load(&redirects[0]), atomic_load(&redirects[1]),
            atomic_load(&cluster_refreshes), atomic_load(&cluster_masters));
}

/* Field n (1-based, as proc(5) numbers them) of /proc/self/stat, or -1. */
static double proc_stat_field(const char *stat, int n)
{
    const char *p = strrchr(stat, ')');
    char *end;
    double v;

    if (p == NULL)
        return -1;
    p++; /* field 3 on: space-separated */
    for (int i = 3; i < n && p != NULL; i++)
        p = strchr(p + 1, ' ');
    if (p == NULL)
        return -1;
    errno = 0;
    v = strtod(p + 1, &end);
    return errno != 0 || end == p + 1 ? -1 : v;
}

/* The whole of a small /proc file into buf, NUL-terminated; false if not. */
static bool read_proc(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return false;
    n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

/* Seconds since the epoch the system booted at (/proc/stat btime), or -1. */
static double boot_time(void)
{
    static char text[16384];
    static double btime = -2;
    const char *p;
    char *end;

    if (btime != -2)
        return btime;
    btime = -1;
    if (!read_proc("/proc/stat", text, sizeof text))
        return btime;
    p = strstr(text, "\nbtime ");
    if (p != NULL) {
        double v = strtod(p + 7, &end);
        if (end != p + 7)
            btime = v;
    }
    return btime;
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* The standard process_* metrics, from /proc/self; left out when /proc
 * cannot be read. */
static void render_process(FILE *f)
{
    char stat[1024];
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double page = (double)sysconf(_SC_PAGESIZE);
    double utime, stime, start, rss, btime;
    long fds = open_fds();

    if (fds >= 0)
        fprintf(f,
                "# HELP process_open_fds Number of open file descriptors.\n"
                "# TYPE process_open_fds gauge\n"
                "process_open_fds %ld\n",
                fds);
    if (!read_proc("/proc/self/stat", stat, sizeof stat) || ticks <= 0)
        return;
    utime = proc_stat_field(stat, 14);
    stime = proc_stat_field(stat, 15);
    start = proc_stat_field(stat, 22);
    rss = proc_stat_field(stat, 24);
    btime = boot_time();
    if (utime >= 0 && stime >= 0)
        fprintf(f,
                "# HELP process_cpu_seconds_total Total user and system CPU "
                "time spent in seconds.\n"
                "# TYPE process_cpu_seconds_total counter\n"
                "process_cpu_seconds_total %.2f\n",
                (utime + stime) / ticks);
    if (rss >= 0)
        fprintf(f,
                "# HELP process_resident_memory_bytes Resident memory size in "
                "bytes.\n"
                "# TYPE process_resident_memory_bytes gauge\n"
                "process_resident_memory_bytes %.0f\n",
                rss * page);
    if (start >= 0 && btime >= 0)
        fprintf(f,
                "# HELP process_start_time_seconds Start time of the process "
                "since unix epoch in seconds.\n"
                "# TYPE process_start_time_seconds gauge\n"
                "process_start_time_seconds %.2f\n",
                btime + start / ticks);
}

char *metrics_render(size_t *len)
{
    static const char *const outcomes[] = {"granted", "held", "timeout"};
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    size_t r, m, s;

    if (f == NULL)
        return NULL;
    fputs("# HELP lockservice_http_requests_total HTTP requests by route, "
          "method and status.\n"
          "# TYPE lockservice_http_requests_total counter\n",
          f);
    for (r = 0; r <= ROUTES_MAX; r++) {
        const char *route = route_label(r);
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
            "# HELP lockservice_waiters_max --max-waiters: past it, acquires "
            "that would wait get 429.\n"
            "# TYPE lockservice_waiters_max gauge\n"
            "lockservice_waiters_max %u\n"
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
            atomic_load(&waiters), atomic_load(&waiters_max),
            listener_connections(), listener_connection_limit(),
            atomic_load(&eviction_unsafe), atomic_load(&force_releases));
    render_request_durations(f);
    render_leases(f);
    render_redis(f);
    render_redis_ha(f);
    fprintf(f,
            "# HELP lockservice_build_info The running release; always 1.\n"
            "# TYPE lockservice_build_info gauge\n"
            "lockservice_build_info{version=\"%s\"} 1\n",
            LOCKSERVICE_VERSION);
    render_process(f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
