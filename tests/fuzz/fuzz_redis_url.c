/* fuzz_redis_url.c -- libFuzzer target for configuration text: Redis URLs
 * and their percent-decoding, listen addresses, API key files and whole
 * command lines.
 *
 * Input: byte 0 picks the parser (mod 4), the rest is its text:
 *   0  redis_url_parse; an accepted URL must re-parse to the same fields
 *      when written back with its credentials percent-encoded; and the text
 *      itself, percent-encoded as a user, a password and a unix ?password=,
 *      must decode back to itself
 *   1  listen_addr_parse, byte 1 giving the host buffer size (1..64)
 *   2  api_keys_parse
 *   3  config_parse over NUL-separated arguments (--api-keys-file and
 *      --redis-password-file, which read files, are left out) */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

static struct config cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* --help and --version print to stdout; keep the fuzzer's output. */
    CHECK(freopen("/dev/null", "w", stdout) != NULL);
    /* No LOCKSERVICE_* variable, setting or not: inputs alone decide. */
    for (char **e = environ; *e != NULL;) {
        if (strncmp(*e, "LOCKSERVICE_", 12) == 0) {
            char name[512];
            size_t n = strcspn(*e, "=");
            CHECK(n < sizeof(name));
            memcpy(name, *e, n);
            name[n] = '\0';
            CHECK(unsetenv(name) == 0);
            e = environ;
        } else {
            e++;
        }
    }
    return 0;
}

static void check_url(const struct redis_url *u)
{
    CHECK(TERMINATED(u->host) && TERMINATED(u->user) &&
          TERMINATED(u->password));
    CHECK(u->host[0] != '\0');
    CHECK(u->db >= 0);
    if (u->is_unix)
        CHECK(u->host[0] == '/');
    else
        CHECK(u->port >= 1 && u->port <= 65535);
}

/* A redis-sentinel:// URL: at least one sentinel, each with a host and a
 * port, a master name, every string terminated; a redis-cluster:// URL the
 * same with no master name and database 0. */
static void check_sentinels(const struct redis_url *u)
{
    CHECK(u->host_count >= 1 && u->host_count <= REDIS_HOSTS_MAX);
    CHECK(TERMINATED(u->master));
    CHECK(u->is_cluster ? u->master[0] == '\0' && u->db == 0
                        : u->master[0] != '\0');
    CHECK(u->is_cluster != u->is_sentinel);
    CHECK(TERMINATED(u->user) && TERMINATED(u->password) && u->db >= 0);
    for (unsigned i = 0; i < u->host_count; i++) {
        CHECK(TERMINATED(u->hosts[i].host));
        CHECK(u->hosts[i].host[0] != '\0');
        CHECK(u->hosts[i].port >= 1 && u->hosts[i].port <= 65535);
    }
}

/* Appends s to text at *n, every byte but the unreserved ones of RFC 3986
 * written as %XX. */
static void put_encoded(char *text, size_t len, int *n, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        int w = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || strchr("-._~", c) != NULL
                    ? snprintf(text + *n, len - (size_t)*n, "%c", c)
                    : snprintf(text + *n, len - (size_t)*n, "%%%02X", c);
        CHECK(w > 0 && (size_t)(*n + w) < len);
        *n += w;
    }
}

/* Writes u back as a URL, credentials percent-encoded; an accepted URL
 * must mean the same the second time (no field swallowed into another). */
static void check_url_round_trip(const struct redis_url *u)
{
    char text[8 * REDIS_HOST_MAX];
    struct redis_url again;
    char err[160];
    int n;

    if (u->is_unix) {
        n = snprintf(text, sizeof(text), "unix://%s?db=%d", u->host, u->db);
        if (u->password[0] != '\0') {
            n += snprintf(text + n, sizeof(text) - (size_t)n, "&password=");
            put_encoded(text, sizeof(text), &n, u->password);
        }
    } else {
        /* Only a bracketed host can hold ':' or start with '['. */
        bool v6 = strchr(u->host, ':') != NULL || u->host[0] == '[';
        n = snprintf(text, sizeof(text), "redis://");
        if (u->user[0] != '\0' || u->password[0] != '\0') {
            put_encoded(text, sizeof(text), &n, u->user);
            n += snprintf(text + n, sizeof(text) - (size_t)n, ":");
            put_encoded(text, sizeof(text), &n, u->password);
            n += snprintf(text + n, sizeof(text) - (size_t)n, "@");
        }
        n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%s%s:%d/%d",
                      v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, u->db);
    }
    CHECK(n > 0 && (size_t)n < sizeof(text));
    if (redis_url_parse(text, &again, err, sizeof(err)) != 0) {
        fprintf(stderr, "re-parse of '%s' failed: %s\n", text, err);
        abort();
    }
    CHECK(again.is_unix == u->is_unix);
    CHECK(strcmp(again.host, u->host) == 0);
    CHECK(again.port == u->port);
    CHECK(again.db == u->db);
    CHECK(strcmp(again.user, u->user) == 0);
    CHECK(strcmp(again.password, u->password) == 0);
}

/* Any text short enough, percent-encoded as a credential, decodes back to
 * itself; a password with any byte but NUL can be written. */
static void check_decoder(const char *secret)
{
    char text[7 * REDIS_SECRET_MAX + 64]; /* two encoded copies */
    struct redis_url u;
    char err[160];
    int n;
    bool fits = strlen(secret) < REDIS_SECRET_MAX;

    if (strlen(secret) > REDIS_SECRET_MAX + 8)
        return;
    n = snprintf(text, sizeof(text), "redis://");
    put_encoded(text, sizeof(text), &n, secret);
    n += snprintf(text + n, sizeof(text) - (size_t)n, ":");
    put_encoded(text, sizeof(text), &n, secret);
    n += snprintf(text + n, sizeof(text) - (size_t)n, "@h:1/2");
    CHECK((size_t)n < sizeof(text));
    if (fits) {
        CHECK(redis_url_parse(text, &u, err, sizeof(err)) == 0);
        CHECK(strcmp(u.user, secret) == 0);
        CHECK(strcmp(u.password, secret) == 0);
        CHECK(strcmp(u.host, "h") == 0 && u.port == 1 && u.db == 2);
    } else {
        CHECK(redis_url_parse(text, &u, err, sizeof(err)) == -1);
    }

    n = snprintf(text, sizeof(text), "unix:///s?password=");
    put_encoded(text, sizeof(text), &n, secret);
    n += snprintf(text + n, sizeof(text) - (size_t)n, "&db=7");
    if (fits) {
        CHECK(redis_url_parse(text, &u, err, sizeof(err)) == 0);
        CHECK(strcmp(u.password, secret) == 0 && u.db == 7);
    } else {
        CHECK(redis_url_parse(text, &u, err, sizeof(err)) == -1);
    }
}

static void fuzz_redis_url(const char *text)
{
    struct redis_url u;
    char err[160];

    memset(err, 0, sizeof(err));
    if (redis_url_parse(text, &u, err, sizeof(err)) == 0) {
        CHECK(strncmp(text, "redis://", 8) == 0 ||
              strncmp(text, "unix://", 7) == 0 ||
              strncmp(text, "redis-sentinel://", 17) == 0 ||
              strncmp(text, "redis-cluster://", 16) == 0);
        if (u.is_sentinel || u.is_cluster) {
            check_sentinels(&u);
        } else {
            check_url(&u);
            check_url_round_trip(&u);
        }
    } else {
        CHECK(err[0] != '\0' && TERMINATED(err));
    }
    check_decoder(text);
}

static void fuzz_listen(const char *text, size_t hostlen)
{
    char host[64];
    int port = -1;
    bool v6 = false;

    memset(host, 'X', sizeof(host));
    if (listen_addr_parse(text, host, hostlen, &port, &v6) == 0) {
        CHECK(memchr(host, '\0', hostlen) != NULL);
        CHECK(port >= 1 && port <= 65535);
        CHECK(!v6 || text[0] == '[');
    }
    for (size_t i = hostlen; i < sizeof(host); i++)
        CHECK(host[i] == 'X');
}

static void fuzz_api_keys(const char *text)
{
    char err[160];

    memset(err, 0, sizeof(err));
    if (api_keys_parse(text, &cfg, err, sizeof(err)) != 0) {
        CHECK(err[0] != '\0' && TERMINATED(err));
        return;
    }
    CHECK(cfg.api_key_count >= 1 && cfg.api_key_count <= API_KEYS_MAX);
    for (size_t i = 0; i < cfg.api_key_count; i++) {
        const struct api_key *k = &cfg.api_keys[i];
        CHECK(k->key_len >= API_KEY_MIN && k->key_len <= API_KEY_MAX);
        CHECK(k->key[k->key_len] == '\0' && strlen(k->key) == k->key_len);
        for (size_t j = 0; j < k->key_len; j++)
            CHECK(k->key[j] > ' ' && k->key[j] < 0x7f);
        CHECK(TERMINATED(k->name) && k->name[0] != '\0');
        CHECK(strstr(text, k->key) != NULL);
        CHECK(k->role == API_ROLE_CLIENT || k->role == API_ROLE_READ ||
              k->role == API_ROLE_ADMIN);
        CHECK(TERMINATED(k->ns) && strlen(k->ns) <= NAMESPACE_MAX &&
              strspn(k->ns,
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789._-") == strlen(k->ns));
        for (const char *c = k->name; *c != '\0'; c++)
            CHECK((unsigned char)*c >= 0x20 || *c == '\t');
    }
}

static void fuzz_argv(const char *data, size_t size)
{
    char *argv[17];
    int argc = 0;
    char err[256];
    size_t i = 0;

    argv[argc++] = strdup("lockservice");
    while (i < size && argc < 16) {
        size_t n = strnlen(data + i, size - i);
        /* Each argument in its own allocation, so that ASan sees any read
         * past its end. */
        char *arg = strndup(data + i, n);
        CHECK(arg != NULL);
        if (strncmp(arg, "--a", 3) == 0 || strncmp(arg, "--redis-p", 9) == 0)
            free(arg);
        else
            argv[argc++] = arg;
        i += n + 1;
    }
    argv[argc] = NULL;

    memset(err, 0, sizeof(err));
    enum config_result r = config_parse(&cfg, argc, argv, err, sizeof(err));
    if (r == CONFIG_ERROR) {
        CHECK(err[0] != '\0' && TERMINATED(err));
    } else if (r == CONFIG_OK) {
        CHECK(TERMINATED(cfg.listen_host) && TERMINATED(cfg.key_prefix));
        CHECK(cfg.listen_port >= 1 && cfg.listen_port <= 65535);
        CHECK(cfg.threads >= 1 && cfg.threads <= 256);
        CHECK(strlen(cfg.key_prefix) <= KEY_PREFIX_MAX);
        CHECK(cfg.max_ttl_ms >= 1 && cfg.max_wait_ms >= 0);
        CHECK(cfg.redis_timeout_ms >= 1 && cfg.max_json_depth >= 1);
        CHECK(cfg.max_body_bytes >= 1 && cfg.max_connections >= 1);
        CHECK(cfg.log_level >= LOG_ERROR && cfg.log_level <= LOG_DEBUG);
        CHECK(cfg.api_keys_file[0] == '\0' && cfg.api_key_count == 0);
        CHECK(cfg.redis_password_file[0] == '\0');
        CHECK(cfg.warning_count == 0);
        if (cfg.redis.is_sentinel || cfg.redis.is_cluster)
            check_sentinels(&cfg.redis);
        else
            check_url(&cfg.redis);
    } else {
        CHECK(r == CONFIG_EXIT_OK);
    }
    /* The caller may reuse its argv memory: scribble over it before the
     * next parse (under ASan a stale pointer into freed memory would read
     * the allocator's bookkeeping instead, and pass by luck). */
    for (int a = 0; a < argc; a++)
        memset(argv[a], 'A', strlen(argv[a]));

    /* Whatever the call above left behind (getopt keeps state in globals),
     * the next parse must start afresh. */
    char *good[] = {(char *)"lockservice", (char *)"--threads", (char *)"3",
                    NULL};
    r = config_parse(&cfg, 3, good, err, sizeof(err));
    if (r != CONFIG_OK || cfg.threads != 3) {
        fprintf(stderr, "parse after this input failed: %s\n", err);
        abort();
    }
    for (int a = 0; a < argc; a++)
        free(argv[a]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned mode = data[0] % 4u;
    data++;
    size--;

    if (mode == 3) {
        fuzz_argv((const char *)data, size);
        return 0;
    }
    size_t hostlen = 64;
    if (mode == 1 && size > 0) {
        hostlen = 1u + data[0] % 64u;
        data++;
        size--;
    }
    char *text = strndup((const char *)data, size);
    CHECK(text != NULL);
    if (mode == 0)
        fuzz_redis_url(text);
    else if (mode == 1)
        fuzz_listen(text, hostlen);
    else
        fuzz_api_keys(text);
    free(text);
    return 0;
}
