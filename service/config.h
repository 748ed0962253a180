/* config.h -- command-line flags and environment variables.
 *
 * Every setting has a flag and a LOCKSERVICE_* environment variable; a flag
 * wins over the environment, the environment over the built-in default.
 * Parsing is pure (no I/O besides reading the API keys file) so that unit
 * tests and fuzzers can drive it. */
#ifndef LOCKSERVICE_CONFIG_H
#define LOCKSERVICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOCK_NAME_MAX 128
#define OWNER_MAX 128 /* characters; up to 4 UTF-8 bytes each */
#define OWNER_BYTES_MAX (4 * OWNER_MAX)
#define TOKEN_HEX_LEN 32
#define KEY_PREFIX_MAX 64
#define REDIS_HOST_MAX 256
#define REDIS_SECRET_MAX 256
#define API_KEY_MIN 16
#define API_KEY_MAX 256
#define API_KEYS_MAX 64

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* A parsed Redis URL: redis://[[user]:password@]host[:port][/db] or
 * unix:///path[?db=N&password=P]. */
struct redis_url {
    bool is_unix;
    char host[REDIS_HOST_MAX]; /* host name, or the socket path when is_unix */
    int port;
    int db;
    char user[REDIS_SECRET_MAX];     /* empty: no ACL user */
    char password[REDIS_SECRET_MAX]; /* empty: no AUTH */
};

struct api_key {
    char name[64];
    char key[API_KEY_MAX + 1];
    size_t key_len;
};

struct config {
    char listen_host[REDIS_HOST_MAX];
    int listen_port;
    bool listen_ipv6;
    struct redis_url redis;
    unsigned threads;
    char key_prefix[KEY_PREFIX_MAX + 1];
    int64_t max_ttl_ms;
    int64_t max_wait_ms;
    int64_t handoff_ms; /* release reserves a woken waiter's lock this long */
    int64_t redis_timeout_ms;
    size_t max_body_bytes;
    unsigned max_json_depth;
    unsigned max_connections;
    unsigned idle_timeout_s;
    unsigned max_waiters;
    int64_t max_hold_count;
    int64_t shutdown_timeout_ms;
    bool demo;
    enum log_level log_level;
    char api_keys_file[1024];
    struct api_key api_keys[API_KEYS_MAX];
    size_t api_key_count;
    bool healthcheck; /* --healthcheck: probe /healthz of --listen and exit */
};

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

/* Fills *cfg from defaults, then getenv(), then argv. On CONFIG_ERROR, err
 * holds one line naming the flag or variable at fault. CONFIG_EXIT_OK means
 * --help or --version was printed to stdout. */
enum config_result config_parse(struct config *cfg, int argc, char **argv,
                                char *err, size_t errlen);

/* Parses a Redis URL into *out. Returns 0, or -1 with a reason in err. */
int redis_url_parse(const char *url, struct redis_url *out, char *err,
                    size_t errlen);

/* Parses "host:port", "[v6addr]:port" or ":port". Returns 0 or -1. */
int listen_addr_parse(const char *s, char *host, size_t hostlen, int *port,
                      bool *ipv6);

/* Parses an API keys file's text: one key per line, optionally followed by
 * whitespace and a name; blank lines and lines starting with '#' are
 * skipped; a key given twice is an error. Returns 0 or -1 with a reason (and
 * line number) in err. */
int api_keys_parse(const char *text, struct config *cfg, char *err,
                   size_t errlen);

#endif
