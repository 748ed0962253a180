/* config.c -- flags, environment and defaults; see config.h. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LOCKSERVICE_VERSION
#define LOCKSERVICE_VERSION "0.1.0"
#endif

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* Parses a whole decimal integer in [min, max]. Returns 0 or -1. */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Copies src into dst of size dstlen; -1 if it does not fit. */
static int copy_str(char *dst, size_t dstlen, const char *src, size_t n)
{
    if (n >= dstlen)
        return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

int listen_addr_parse(const char *s, char *host, size_t hostlen, int *port,
                      bool *ipv6)
{
    const char *colon;
    int64_t p;

    if (s == NULL || *s == '\0')
        return -1;
    *ipv6 = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close == s + 1 || close[1] != ':')
            return -1;
        if (copy_str(host, hostlen, s + 1, (size_t)(close - s - 1)) < 0)
            return -1;
        *ipv6 = true;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return -1;
        if (colon == s) {
            if (copy_str(host, hostlen, "0.0.0.0", 7) < 0)
                return -1;
        } else if (copy_str(host, hostlen, s, (size_t)(colon - s)) < 0) {
            return -1;
        }
    }
    if (parse_int(colon + 1, 1, 65535, &p) < 0)
        return -1;
    *port = (int)p;
    return 0;
}

/* Parses "db=N&password=P" query parameters of a unix:// URL. */
static int parse_unix_query(const char *q, struct redis_url *out, char *err,
                            size_t errlen)
{
    while (*q != '\0') {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        int64_t db;
        char item[REDIS_SECRET_MAX + 16];

        if (copy_str(item, sizeof item, q, n) < 0) {
            errf(err, errlen, "query parameter too long");
            return -1;
        }
        if (strncmp(item, "db=", 3) == 0) {
            if (parse_int(item + 3, 0, 100000, &db) < 0) {
                errf(err, errlen, "db must be an integer 0..100000");
                return -1;
            }
            out->db = (int)db;
        } else if (strncmp(item, "password=", 9) == 0) {
            if (copy_str(out->password, sizeof out->password, item + 9,
                         strlen(item + 9)) < 0) {
                errf(err, errlen, "password too long");
                return -1;
            }
        } else {
            errf(err, errlen, "unknown query parameter (db, password)");
            return -1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

int redis_url_parse(const char *url, struct redis_url *out, char *err,
                    size_t errlen)
{
    const char *p, *at, *hostend, *slash;
    int64_t v;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (url == NULL) {
        errf(err, errlen, "missing URL");
        return -1;
    }
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        const char *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);

        out->is_unix = true;
        out->port = 0;
        if (n < 2 || path[0] != '/') {
            errf(err, errlen, "unix URL needs an absolute path: unix:///path");
            return -1;
        }
        if (copy_str(out->host, sizeof out->host, path, n) < 0) {
            errf(err, errlen, "socket path too long");
            return -1;
        }
        return q ? parse_unix_query(q + 1, out, err, errlen) : 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        errf(err, errlen, "expected redis://host[:port][/db] or unix:///path");
        return -1;
    }
    p = url + 8;
    slash = strchr(p, '/');
    at = memrchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL) {
            errf(err, errlen, "credentials must be [user]:password@");
            return -1;
        }
        if (copy_str(out->user, sizeof out->user, p, (size_t)(colon - p)) < 0 ||
            copy_str(out->password, sizeof out->password, colon + 1,
                     (size_t)(at - colon - 1)) < 0) {
            errf(err, errlen, "credentials too long");
            return -1;
        }
        p = at + 1;
    }
    hostend = slash ? slash : p + strlen(p);
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(hostend - p));
        if (close == NULL || close == p + 1) {
            errf(err, errlen, "bad IPv6 host");
            return -1;
        }
        if (copy_str(out->host, sizeof out->host, p + 1,
                     (size_t)(close - p - 1)) < 0) {
            errf(err, errlen, "host too long");
            return -1;
        }
        p = close + 1;
        if (p != hostend && *p != ':') {
            errf(err, errlen, "bad IPv6 host");
            return -1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(hostend - p));
        const char *end = colon ? colon : hostend;
        if (end == p) {
            errf(err, errlen, "missing host");
            return -1;
        }
        if (copy_str(out->host, sizeof out->host, p, (size_t)(end - p)) < 0) {
            errf(err, errlen, "host too long");
            return -1;
        }
        p = end;
    }
    if (*p == ':') {
        char num[16];
        if (copy_str(num, sizeof num, p + 1, (size_t)(hostend - p - 1)) < 0 ||
            parse_int(num, 1, 65535, &v) < 0) {
            errf(err, errlen, "port must be 1..65535");
            return -1;
        }
        out->port = (int)v;
    }
    if (slash != NULL && slash[1] != '\0') {
        if (parse_int(slash + 1, 0, 100000, &v) < 0) {
            errf(err, errlen, "db must be an integer 0..100000");
            return -1;
        }
        out->db = (int)v;
    }
    return 0;
}

int api_keys_parse(const char *text, struct config *cfg, char *err,
                   size_t errlen)
{
    int lineno = 0;

    cfg->api_key_count = 0;
    while (*text != '\0') {
        const char *eol = strchr(text, '\n');
        size_t n = eol ? (size_t)(eol - text) : strlen(text);
        const char *p = text, *end = text + n, *k;
        struct api_key *key;

        lineno++;
        text += n + (eol ? 1 : 0);
        while (p < end && isspace((unsigned char)*p))
            p++;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        if (p == end || *p == '#')
            continue;
        if (cfg->api_key_count == API_KEYS_MAX) {
            errf(err, errlen, "line %d: more than %d keys", lineno,
                 API_KEYS_MAX);
            return -1;
        }
        key = &cfg->api_keys[cfg->api_key_count];
        k = p;
        while (p < end && !isspace((unsigned char)*p)) {
            if (!isgraph((unsigned char)*p)) {
                errf(err, errlen, "line %d: key has a non-printable byte",
                     lineno);
                return -1;
            }
            p++;
        }
        if ((size_t)(p - k) < API_KEY_MIN || (size_t)(p - k) > API_KEY_MAX) {
            errf(err, errlen, "line %d: key must be %d..%d characters", lineno,
                 API_KEY_MIN, API_KEY_MAX);
            return -1;
        }
        for (size_t j = 0; j < cfg->api_key_count; j++)
            if (cfg->api_keys[j].key_len == (size_t)(p - k) &&
                memcmp(cfg->api_keys[j].key, k, (size_t)(p - k)) == 0) {
                errf(err, errlen, "line %d: duplicate key", lineno);
                return -1;
            }
        key->key_len = (size_t)(p - k);
        memcpy(key->key, k, key->key_len);
        key->key[key->key_len] = '\0';
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (copy_str(key->name, sizeof key->name, p, (size_t)(end - p)) < 0) {
            errf(err, errlen, "line %d: name longer than %zu characters",
                 lineno, sizeof key->name - 1);
            return -1;
        }
        if (key->name[0] == '\0')
            snprintf(key->name, sizeof key->name, "key%zu",
                     cfg->api_key_count + 1);
        cfg->api_key_count++;
    }
    if (cfg->api_key_count == 0) {
        errf(err, errlen, "no keys in file");
        return -1;
    }
    return 0;
}

static int load_api_keys(struct config *cfg, char *err, size_t errlen)
{
    char buf[API_KEYS_MAX * (API_KEY_MAX + 80)], why[160];
    FILE *f = fopen(cfg->api_keys_file, "r");
    size_t n;

    if (f == NULL) {
        errf(err, errlen, "--api-keys-file: cannot open %s: %s",
             cfg->api_keys_file, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    if (n == sizeof buf - 1 && fgetc(f) != EOF) {
        fclose(f);
        errf(err, errlen, "--api-keys-file: file too large");
        return -1;
    }
    fclose(f);
    buf[n] = '\0';
    if (memchr(buf, '\0', n) != NULL) {
        errf(err, errlen, "--api-keys-file: file contains a NUL byte");
        return -1;
    }
    if (api_keys_parse(buf, cfg, why, sizeof why) < 0) {
        errf(err, errlen, "--api-keys-file: %s", why);
        return -1;
    }
    return 0;
}

/* One row per setting: flag, environment variable, help text. The order of
 * this table is the order of --help. */
enum opt_id {
    OPT_LISTEN = 1,
    OPT_REDIS,
    OPT_THREADS,
    OPT_KEY_PREFIX,
    OPT_MAX_TTL,
    OPT_MAX_WAIT,
    OPT_HANDOFF,
    OPT_REDIS_TIMEOUT,
    OPT_MAX_BODY,
    OPT_MAX_DEPTH,
    OPT_MAX_CONN,
    OPT_IDLE_TIMEOUT,
    OPT_MAX_WAITERS,
    OPT_MAX_HOLD,
    OPT_SHUTDOWN_TIMEOUT,
    OPT_API_KEYS,
    OPT_DEMO,
    OPT_LOG_LEVEL,
    OPT_HEALTHCHECK,
    OPT_HELP,
    OPT_VERSION,
};

struct opt_spec {
    enum opt_id id;
    const char *flag;
    const char *env;
    const char *arg;
    const char *help;
};

static const struct opt_spec opt_specs[] = {
    {OPT_LISTEN, "listen", "LOCKSERVICE_LISTEN", "HOST:PORT",
     "address to serve HTTP on (default 127.0.0.1:8080; [::1]:8080 for "
     "IPv6)"},
    {OPT_REDIS, "redis", "LOCKSERVICE_REDIS_URL", "URL",
     "redis://[[user]:password@]host[:port][/db] or "
     "unix:///path[?db=N&password=P]\n"
     "                            (default redis://127.0.0.1:6379)"},
    {OPT_THREADS, "threads", "LOCKSERVICE_THREADS", "N",
     "HTTP worker threads, each with its own Redis connection (default: "
     "cores)"},
    {OPT_KEY_PREFIX, "key-prefix", "LOCKSERVICE_KEY_PREFIX", "PREFIX",
     "prefix of every Redis key (default lockservice:)"},
    {OPT_MAX_TTL, "max-ttl-ms", "LOCKSERVICE_MAX_TTL_MS", "MS",
     "largest lease ttl_ms a client may ask for (default 3600000)"},
    {OPT_MAX_WAIT, "max-wait-ms", "LOCKSERVICE_MAX_WAIT_MS", "MS",
     "largest wait_ms a client may ask for (default 60000)"},
    {OPT_HANDOFF, "handoff-ms", "LOCKSERVICE_HANDOFF_MS", "MS",
     "how long a release reserves the lock for the waiter it wakes;\n"
     "                            0: no reservation, anyone may take it "
     "(default 250)"},
    {OPT_REDIS_TIMEOUT, "redis-timeout-ms", "LOCKSERVICE_REDIS_TIMEOUT_MS",
     "MS", "Redis connect and command timeout; past it: 503 (default 1000)"},
    {OPT_MAX_BODY, "max-body-bytes", "LOCKSERVICE_MAX_BODY_BYTES", "N",
     "largest request body; past it: 413 (default 16384)"},
    {OPT_MAX_DEPTH, "max-json-depth", "LOCKSERVICE_MAX_JSON_DEPTH", "N",
     "deepest JSON nesting accepted in a body (default 8)"},
    {OPT_MAX_CONN, "max-connections", "LOCKSERVICE_MAX_CONNECTIONS", "N",
     "concurrent HTTP connections, waiting ones included; past it\n"
     "                            new clients wait in the listen backlog\n"
     "                            (default 16384)"},
    {OPT_IDLE_TIMEOUT, "idle-timeout-s", "LOCKSERVICE_IDLE_TIMEOUT_S", "S",
     "close a connection idle this long, or that takes this long to send\n"
     "                            a whole request (slow clients; default 30)"},
    {OPT_MAX_WAITERS, "max-waiters", "LOCKSERVICE_MAX_WAITERS", "N",
     "suspended waiters per instance; past it: 429 (default 16384)"},
    {OPT_MAX_HOLD, "max-hold-count", "LOCKSERVICE_MAX_HOLD_COUNT", "N",
     "reentrant holds of one lease; past it: 409 hold_limit (default 1000)"},
    {OPT_SHUTDOWN_TIMEOUT, "shutdown-timeout-ms",
     "LOCKSERVICE_SHUTDOWN_TIMEOUT_MS", "MS",
     "on SIGTERM/SIGINT, how long in-flight requests may finish (default "
     "10000)"},
    {OPT_API_KEYS, "api-keys-file", "LOCKSERVICE_API_KEYS_FILE", "PATH",
     "require Authorization: Bearer <key> on /v1 and /demo; one key\n"
     "                            (16..256 characters) per line, optionally "
     "followed by a name"},
    {OPT_DEMO, "demo", "LOCKSERVICE_DEMO", NULL,
     "serve the inventory overselling demo under /demo (env: 1 or 0)"},
    {OPT_LOG_LEVEL, "log-level", "LOCKSERVICE_LOG_LEVEL", "LEVEL",
     "error, warn, info (one line per request) or debug (default info)"},
    {OPT_HEALTHCHECK, "healthcheck", NULL, NULL,
     "probe GET /healthz on --listen and exit 0 if it answers 200, else 1"},
    {OPT_HELP, "help", NULL, NULL, "print this help and exit"},
    {OPT_VERSION, "version", NULL, NULL, "print the version and exit"},
};

#define OPT_COUNT (sizeof opt_specs / sizeof opt_specs[0])

static void print_help(void)
{
    size_t i;

    printf("Usage: lockservice [OPTION]...\n"
           "HTTP/JSON lock service on Redis: leases, fencing tokens, "
           "waiting.\n\n");
    for (i = 0; i < OPT_COUNT; i++) {
        const struct opt_spec *o = &opt_specs[i];
        char left[64];

        snprintf(left, sizeof left, "--%s%s%s", o->flag, o->arg ? " " : "",
                 o->arg ? o->arg : "");
        printf("  %-26s%s\n", left, o->help);
        if (o->env)
            printf("  %-26senv: %s\n", "", o->env);
    }
    printf("\nFlags win over environment variables. A bad value exits with "
           "status 2.\n");
}

/* Applies one setting's textual value. Returns 0 or -1 (err filled, naming
 * what). */
static int apply_opt(struct config *cfg, const struct opt_spec *o,
                     const char *val, const char *what, char *err,
                     size_t errlen)
{
    char why[160];
    int64_t v;

#define INT_OPT(field, min, max)                                               \
    do {                                                                       \
        if (parse_int(val, min, max, &v) < 0) {                                \
            errf(err, errlen, "%s: '%s' is not an integer in %lld..%lld",      \
                 what, val, (long long)(min), (long long)(max));               \
            return -1;                                                         \
        }                                                                      \
        cfg->field = (__typeof__(cfg->field))v;                                \
    } while (0)

    switch (o->id) {
    case OPT_LISTEN:
        if (listen_addr_parse(val, cfg->listen_host, sizeof cfg->listen_host,
                              &cfg->listen_port, &cfg->listen_ipv6) < 0) {
            errf(err, errlen, "%s: '%s' is not HOST:PORT", what, val);
            return -1;
        }
        break;
    case OPT_REDIS:
        if (redis_url_parse(val, &cfg->redis, why, sizeof why) < 0) {
            errf(err, errlen, "%s: %s", what, why);
            return -1;
        }
        break;
    case OPT_THREADS:
        INT_OPT(threads, 1, 256);
        break;
    case OPT_KEY_PREFIX:
        if (strlen(val) > KEY_PREFIX_MAX) {
            errf(err, errlen, "%s: longer than %d characters", what,
                 KEY_PREFIX_MAX);
            return -1;
        }
        snprintf(cfg->key_prefix, sizeof cfg->key_prefix, "%s", val);
        break;
    case OPT_MAX_TTL:
        INT_OPT(max_ttl_ms, 1, 86400000);
        break;
    case OPT_MAX_WAIT:
        INT_OPT(max_wait_ms, 0, 3600000);
        break;
    case OPT_HANDOFF:
        INT_OPT(handoff_ms, 0, 10000);
        break;
    case OPT_REDIS_TIMEOUT:
        INT_OPT(redis_timeout_ms, 10, 60000);
        break;
    case OPT_MAX_BODY:
        INT_OPT(max_body_bytes, 64, 1048576);
        break;
    case OPT_MAX_DEPTH:
        INT_OPT(max_json_depth, 1, 64);
        break;
    case OPT_MAX_CONN:
        INT_OPT(max_connections, 1, 1000000);
        break;
    case OPT_IDLE_TIMEOUT:
        INT_OPT(idle_timeout_s, 1, 3600);
        break;
    case OPT_MAX_WAITERS:
        INT_OPT(max_waiters, 0, 1000000);
        break;
    case OPT_MAX_HOLD:
        INT_OPT(max_hold_count, 1, 1000000000);
        break;
    case OPT_SHUTDOWN_TIMEOUT:
        INT_OPT(shutdown_timeout_ms, 0, 600000);
        break;
    case OPT_API_KEYS:
        if (snprintf(cfg->api_keys_file, sizeof cfg->api_keys_file, "%s",
                     val) >= (int)sizeof cfg->api_keys_file ||
            val[0] == '\0') {
            errf(err, errlen, "%s: bad path", what);
            return -1;
        }
        break;
    case OPT_DEMO:
        if (val == NULL || strcmp(val, "1") == 0 || strcmp(val, "true") == 0)
            cfg->demo = true;
        else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0 ||
                 val[0] == '\0')
            cfg->demo = false;
        else {
            errf(err, errlen, "%s: '%s' is not 1 or 0", what, val);
            return -1;
        }
        break;
    case OPT_LOG_LEVEL:
        if (strcmp(val, "error") == 0)
            cfg->log_level = LOG_ERROR;
        else if (strcmp(val, "warn") == 0)
            cfg->log_level = LOG_WARN;
        else if (strcmp(val, "info") == 0)
            cfg->log_level = LOG_INFO;
        else if (strcmp(val, "debug") == 0)
            cfg->log_level = LOG_DEBUG;
        else {
            errf(err, errlen, "%s: '%s' is not error, warn, info or debug",
                 what, val);
            return -1;
        }
        break;
    case OPT_HEALTHCHECK:
        cfg->healthcheck = true;
        break;
    case OPT_HELP:
    case OPT_VERSION:
        break;
    }
#undef INT_OPT
    return 0;
}

static void config_defaults(struct config *cfg)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    snprintf(cfg->redis.host, sizeof cfg->redis.host, "127.0.0.1");
    cfg->redis.port = 6379;
    cfg->threads = cores < 1 ? 2 : cores > 256 ? 256 : (unsigned)cores;
    snprintf(cfg->key_prefix, sizeof cfg->key_prefix, "lockservice:");
    cfg->max_ttl_ms = 3600000;
    cfg->max_wait_ms = 60000;
    cfg->handoff_ms = 250;
    cfg->redis_timeout_ms = 1000;
    cfg->max_body_bytes = 16384;
    cfg->max_json_depth = 8;
    cfg->max_connections = 16384;
    cfg->idle_timeout_s = 30;
    cfg->max_waiters = 16384;
    cfg->max_hold_count = 1000;
    cfg->shutdown_timeout_ms = 10000;
    cfg->log_level = LOG_INFO;
}

enum config_result config_parse(struct config *cfg, int argc, char **argv,
                                char *err, size_t errlen)
{
    struct option longopts[OPT_COUNT + 1];
    size_t i;
    int c;

    config_defaults(cfg);
    err[0] = '\0';
    for (i = 0; i < OPT_COUNT; i++) {
        const struct opt_spec *o = &opt_specs[i];
        const char *val = o->env ? getenv(o->env) : NULL;
        char what[64];

        longopts[i].name = o->flag;
        longopts[i].has_arg = o->arg ? required_argument : no_argument;
        longopts[i].flag = NULL;
        longopts[i].val = (int)o->id;
        if (val == NULL)
            continue;
        snprintf(what, sizeof what, "%s", o->env);
        if (apply_opt(cfg, o, val, what, err, errlen) < 0)
            return CONFIG_ERROR;
    }
    memset(&longopts[OPT_COUNT], 0, sizeof longopts[OPT_COUNT]);

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const struct opt_spec *o = NULL;
        char what[64];

        for (i = 0; i < OPT_COUNT; i++)
            if ((int)opt_specs[i].id == c)
                o = &opt_specs[i];
        if (o == NULL) {
            const char *bad = argv[optind - 1];
            if (c == '?' && optopt > ' ' && optopt < 0x7f)
                errf(err, errlen, "-%c: unknown option (see --help)", optopt);
            else if (c == ':' || (c == '?' && optopt != 0))
                errf(err, errlen, "%s: missing or unexpected value", bad);
            else
                errf(err, errlen, "%s: unknown option (see --help)", bad);
            return CONFIG_ERROR;
        }
        if (o->id == OPT_HELP) {
            print_help();
            return CONFIG_EXIT_OK;
        }
        if (o->id == OPT_VERSION) {
            printf("lockservice %s\n", LOCKSERVICE_VERSION);
            return CONFIG_EXIT_OK;
        }
        snprintf(what, sizeof what, "--%s", o->flag);
        if (apply_opt(cfg, o, o->arg ? optarg : NULL, what, err, errlen) < 0)
            return CONFIG_ERROR;
    }
    if (optind < argc) {
        errf(err, errlen, "%s: unexpected argument (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    if (cfg->api_keys_file[0] != '\0' && load_api_keys(cfg, err, errlen) < 0)
        return CONFIG_ERROR;
    return CONFIG_OK;
}
