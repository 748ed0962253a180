/* endpoint.c -- see endpoint.h. */
#include "endpoint.h"

#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Every worker's command connection and the subscriber, with room. */
#define WATCHERS_MAX 520

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct redis_endpoint current; /* under mu */
static atomic_uint_fast64_t generation;
static bool discovered;
static bool cluster; /* the endpoint is only the subscriber's node */
static atomic_int suspect_fd = -1;
static int watchers[WATCHERS_MAX]; /* under mu */
static size_t watcher_count;

void redis_endpoint_init(const struct config *cfg)
{
    pthread_mutex_lock(&mu);
    memset(&current, 0, sizeof current);
    discovered = cfg->redis.is_sentinel || cfg->redis.is_cluster;
    cluster = cfg->redis.is_cluster;
    if (!discovered) {
        current.is_unix = cfg->redis.is_unix;
        snprintf(current.host, sizeof current.host, "%s", cfg->redis.host);
        current.port = cfg->redis.port;
        current.generation = 1;
    }
    atomic_store(&generation, current.generation);
    pthread_mutex_unlock(&mu);
}

bool redis_endpoint_discovered(void)
{
    return discovered;
}

bool redis_endpoint_get(struct redis_endpoint *out)
{
    pthread_mutex_lock(&mu);
    *out = current;
    pthread_mutex_unlock(&mu);
    return out->generation != 0;
}

uint64_t redis_endpoint_generation(void)
{
    return atomic_load(&generation);
}

void redis_endpoint_describe(char *buf, size_t len)
{
    pthread_mutex_lock(&mu);
    if (current.generation == 0)
        snprintf(buf, len, "%s", "");
    else if (current.is_unix)
        snprintf(buf, len, "unix:%s", current.host);
    else if (strchr(current.host, ':') != NULL)
        snprintf(buf, len, "[%s]:%d", current.host, current.port);
    else
        snprintf(buf, len, "%s:%d", current.host, current.port);
    pthread_mutex_unlock(&mu);
}

bool redis_endpoint_set(const char *host, int port)
{
    uint64_t one = 1;
    bool first;

    pthread_mutex_lock(&mu);
    if (current.generation != 0 && current.port == port &&
        strcmp(current.host, host) == 0) {
        pthread_mutex_unlock(&mu);
        return false;
    }
    first = current.generation == 0;
    snprintf(current.host, sizeof current.host, "%s", host);
    current.port = port;
    current.generation++;
    atomic_store(&generation, current.generation);
    for (size_t i = 0; i < watcher_count; i++)
        if (write(watchers[i], &one, sizeof one) < 0 && errno != EAGAIN)
            log_debug("redis: eventfd write: %s", strerror(errno));
    pthread_mutex_unlock(&mu);
    if (cluster) {
        log_info("redis: release notifications come from cluster node %s:%d",
                 host, port);
    } else if (first) {
        log_info("redis: the sentinels name %s:%d as the master", host, port);
    } else {
        metrics_redis_master_change();
        log_warn("redis: the master moved to %s:%d; every connection "
                 "follows",
                 host, port);
    }
    return true;
}

void redis_endpoint_on_suspect(int fd)
{
    atomic_store(&suspect_fd, fd);
}

void redis_endpoint_suspect(void)
{
    int fd = atomic_load(&suspect_fd);
    uint64_t one = 1;

    if (fd >= 0 && write(fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_debug("redis: eventfd write: %s", strerror(errno));
}

void redis_endpoint_lost(uint64_t gen)
{
    if (cluster && gen == atomic_load(&generation))
        redis_endpoint_suspect();
}

int redis_endpoint_watch(int fd)
{
    int rc = -1;

    pthread_mutex_lock(&mu);
    if (watcher_count < WATCHERS_MAX) {
        watchers[watcher_count++] = fd;
        rc = 0;
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void redis_endpoint_unwatch(int fd)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < watcher_count; i++)
        if (watchers[i] == fd) {
            watchers[i] = watchers[--watcher_count];
            break;
        }
    pthread_mutex_unlock(&mu);
}
