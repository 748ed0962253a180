/* main.c -- lockservice: parse the configuration, start the engine and the
 * HTTP workers, reload the API keys on SIGHUP, and shut down gracefully on
 * SIGTERM or SIGINT. */
#include "clock.h"
#include "config.h"
#include "demo-inventory/inventory_store.h"
#include "http/auth.h"
#include "http/http.h"
#include "lock/engine.h"
#include "log.h"
#include "notify.h"
#include "redis/cluster.h"
#include "redis/sentinel.h"
#include "version.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static struct config cfg;

/* --healthcheck: GET /healthz on the configured address with a plain socket
 * (the container image carries no curl). Says on stderr why it failed, for
 * `docker inspect`'s health log. Returns the exit status. */
static int healthcheck(void)
{
    const char *host = cfg.listen_host;
    struct addrinfo hints = {0}, *ai = NULL;
    struct timeval tv = {2, 0};
    char port[8], req[512], resp[128];
    ssize_t n;
    int fd, gai, rc = 1;

    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    snprintf(port, sizeof port, "%d", cfg.listen_port);
    hints.ai_socktype = SOCK_STREAM;
    gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "healthcheck: cannot resolve %s: %s\n", host,
                gai_strerror(gai));
        return 1;
    }
    fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        fprintf(stderr, "healthcheck: socket: %s\n", strerror(errno));
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    snprintf(req, sizeof req,
             "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close"
             "\r\n\r\n",
             host);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "healthcheck: cannot connect to %s port %s: %s\n", host,
                port,
                errno == EINPROGRESS || errno == EAGAIN ? "timed out after 2 s"
                                                        : strerror(errno));
        goto out;
    }
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        fprintf(stderr, "healthcheck: cannot send the request: %s\n",
                strerror(errno));
        goto out;
    }
    n = read(fd, resp, sizeof resp - 1);
    if (n < 0) {
        fprintf(stderr, "healthcheck: no answer from %s port %s: %s\n", host,
                port,
                errno == EAGAIN || errno == EWOULDBLOCK ? "timed out after 2 s"
                                                        : strerror(errno));
        goto out;
    }
    resp[n] = '\0';
    resp[strcspn(resp, "\r\n")] = '\0';
    if (n > 12 && strncmp(resp, "HTTP/1.", 7) == 0 &&
        strncmp(resp + 8, " 200", 4) == 0) {
        rc = 0;
        goto out;
    }
    for (char *c = resp; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
    fprintf(stderr, "healthcheck: GET /healthz answered \"%s\"\n",
            n == 0 ? "(nothing: the connection closed)" : resp);
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}

/* Waiting connections cost a descriptor each: use what the hard limit
 * allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* SIGHUP: reads --api-keys-file again and, when it parses, has the requests
 * admitted from now on checked against its keys; requests in flight go on
 * with what they were admitted with. A file that does not parse leaves the
 * keys in use, and one warn line says why (never quoting a key). */
static void reload_api_keys(void)
{
    struct config *fresh;
    char err[CONFIG_PATH_MAX + 256];

    if (cfg.api_keys_file[0] == '\0') {
        log_info("SIGHUP: no --api-keys-file, nothing to reload");
        return;
    }
    fresh = calloc(1, sizeof *fresh);
    if (fresh == NULL) {
        log_warn("SIGHUP: out of memory; keeping the API keys in use");
        return;
    }
    memcpy(fresh->api_keys_file, cfg.api_keys_file,
           sizeof fresh->api_keys_file);
    if (api_keys_load(fresh, err, sizeof err) < 0)
        log_warn("SIGHUP: %s; keeping the API keys in use", err);
    else if (auth_replace(fresh->api_keys, fresh->api_key_count) < 0)
        log_warn("SIGHUP: out of memory; keeping the API keys in use");
    else
        log_info("reloaded %zu API keys from %s", fresh->api_key_count,
                 cfg.api_keys_file);
    /* The keys were in it: do not leave them in freed memory. */
    explicit_bzero(fresh, sizeof *fresh);
    free(fresh);
}

/* Stops accepting, answers parked waiters 503 (they leave their queues),
 * lets in-flight requests finish for up to the shutdown timeout, then
 * stops. */
static void shutdown_gracefully(int sig)
{
    uint64_t deadline = clock_now_ns() + MS_TO_NS(cfg.shutdown_timeout_ms);

    log_info("signal %d: shutting down (%u requests in flight)", sig,
             http_inflight());
    http_quiesce();
    while (http_inflight() > 0 && clock_now_ns() < deadline)
        usleep(10000);
    if (http_inflight() > 0)
        log_warn("shutdown timeout: %u requests still in flight",
                 http_inflight());
    http_stop();
    redis_sentinel_stop();
    redis_cluster_stop();
    log_info("stopped");
}

int main(int argc, char **argv)
{
    char err[512];
    sigset_t sigs;
    int sig;

    switch (config_parse(&cfg, argc, argv, err, sizeof err)) {
    case CONFIG_EXIT_OK:
        return 0;
    case CONFIG_ERROR:
        fprintf(stderr, "lockservice: %s\n", err);
        return 2;
    case CONFIG_OK:
        break;
    }
    if (cfg.healthcheck)
        return healthcheck();
    log_set_level(cfg.log_level);
    log_set_format(cfg.log_format);
    for (unsigned i = 0; i < cfg.warning_count; i++)
        log_warn("%s", cfg.warnings[i]);
    raise_fd_limit();

    /* Worker threads inherit this mask: only main takes the signals. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (lock_engine_init(&cfg) < 0 ||
        (cfg.demo && inventory_store_init() < 0)) {
        log_error("cannot start the lock engine");
        return 1;
    }
    if (redis_sentinel_start(&cfg) < 0 || redis_cluster_start(&cfg) < 0)
        return 1;
    if (http_start(&cfg) < 0)
        return 1;
    char redis_at[sizeof cfg.redis.host + 16];
    if (cfg.redis.is_sentinel)
        snprintf(redis_at, sizeof redis_at, "master '%s' of %u sentinels",
                 cfg.redis.master, cfg.redis.host_count);
    else if (cfg.redis.is_cluster)
        snprintf(redis_at, sizeof redis_at, "cluster (%u seed nodes)",
                 cfg.redis.host_count);
    else if (cfg.redis.is_unix)
        snprintf(redis_at, sizeof redis_at, "unix:%s", cfg.redis.host);
    else
        snprintf(redis_at, sizeof redis_at, "%s:%d", cfg.redis.host,
                 cfg.redis.port);
    log_info("lockservice %s listening on %s%s%s:%d, redis %s, %u threads%s",
             LOCKSERVICE_VERSION, cfg.listen_ipv6 ? "[" : "", cfg.listen_host,
             cfg.listen_ipv6 ? "]" : "", cfg.listen_port, redis_at, cfg.threads,
             cfg.demo ? ", demo on" : "");
    notify_systemd("READY=1");
    for (;;) {
        if (sigwait(&sigs, &sig) != 0)
            sig = SIGTERM;
        if (sig != SIGHUP)
            break;
        reload_api_keys();
    }
    notify_systemd("STOPPING=1");
    shutdown_gracefully(sig);
    return 0;
}
