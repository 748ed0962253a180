/* config.h -- command-line flags and environment variables.
 *
 * Every setting is one row of config_rows[] (config.c), as in Redis's
 * config.c: its flag, its LOCKSERVICE_* variable, its type with the range or
 * the allowed values, its default and its help text. --help and the defaults
 * are made from the rows, so adding a setting is adding a row (and a member
 * of struct config for it to fill). A flag wins over the environment, the
 * environment over the default. Parsing does no I/O besides reading the
 * files that --api-keys-file and --redis-password-file name, so unit tests
 * and fuzzers can drive it. */
#ifndef LOCKSERVICE_CONFIG_H
#define LOCKSERVICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LOCK_NAME_MAX 128
/* A name as the engine sees it: the client's name, under the namespace of
 * its API key when that has one ("<namespace>/<name>"). */
#define NAMESPACE_MAX 32
#define SCOPED_NAME_MAX (NAMESPACE_MAX + 1 + LOCK_NAME_MAX)
#define OWNER_MAX 128 /* characters; up to 4 UTF-8 bytes each */
#define OWNER_BYTES_MAX (4 * OWNER_MAX)
#define TOKEN_HEX_LEN 32
#define REQUEST_ID_MAX 64
#define KEY_PREFIX_MAX 64
#define REDIS_HOST_MAX 256
#define REDIS_SECRET_MAX 256
#define API_KEY_MIN 16
#define API_KEY_MAX 256
#define API_KEYS_MAX 64
#define CONFIG_PATH_MAX 1024
#define CONFIG_WARNINGS_MAX 8
#define CONFIG_WARNING_LEN 160

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };
/* --log-format: key=value text lines, or one JSON object per line. */
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

#define REDIS_HOSTS_MAX 8
#define SENTINEL_MASTER_MAX 128

/* One host of a redis-sentinel:// URL (a sentinel) or of a
 * redis-cluster:// URL (a node to learn the cluster from). */
struct redis_addr {
    char host[REDIS_HOST_MAX];
    int port;
};

/* A parsed Redis URL: redis://[[user]:password@]host[:port][/db],
 * unix:///path[?db=N&password=P] or
 * redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER[?db=N]
 * or redis-cluster://[[user]:password@]host[:port][,host[:port]...].
 * user, password and the query values are percent-decoded (%2F is '/', %40
 * '@', %3A ':', %25 '%'). For Sentinel, host and port stay empty (the
 * master is found at run time, service/redis/endpoint.h); user and password
 * are the master's. For Cluster, the same: the masters come from the
 * nodes' slot map (service/redis/cluster.h); the credentials are every
 * node's. */
struct redis_url {
    bool is_unix;
    char host[REDIS_HOST_MAX]; /* host name, or the socket path when is_unix */
    int port;
    int db;
    char user[REDIS_SECRET_MAX];     /* empty: no ACL user */
    char password[REDIS_SECRET_MAX]; /* empty: no AUTH */
    bool is_sentinel;
    char master[SENTINEL_MASTER_MAX + 1]; /* the name the sentinels know */
    bool is_cluster;
    /* The sentinels, or the cluster's seed nodes. */
    struct redis_addr hosts[REDIS_HOSTS_MAX];
    unsigned host_count;
};

/* --redis-wait-policy: what a write fewer replicas acknowledged gets. */
enum redis_wait_policy { REDIS_WAIT_FAIL = 0, REDIS_WAIT_WARN };

/* What an API key may do. client is the default, and the role of every
 * key in the version 1 format. */
enum api_role {
    API_ROLE_CLIENT, /* every route but the admin-only ones */
    API_ROLE_READ,   /* GET and HEAD routes only */
    API_ROLE_ADMIN,  /* every route */
};

#define API_KEY_NAME_MAX 63

struct api_key {
    char name[API_KEY_NAME_MAX + 1]; /* for the logs; never empty */
    enum api_role role;
    /* "": none. Else the key's names live under "<ns>/": 1..NAMESPACE_MAX
     * characters of A-Z a-z 0-9 . _ - (the name alphabet without ':'). */
    char ns[NAMESPACE_MAX + 1];
    char key[API_KEY_MAX + 1];
    size_t key_len;
};

struct config {
    char listen_host[REDIS_HOST_MAX];
    int listen_port;
    bool listen_ipv6;
    /* redis.password is the one from --redis-password-file when that is
     * set, else the one in the URL. */
    struct redis_url redis;
    char redis_password_file[CONFIG_PATH_MAX]; /* "": none */
    /* AUTH for the sentinels themselves (their requirepass); "": none. */
    char sentinel_password[REDIS_SECRET_MAX];
    char sentinel_password_file[CONFIG_PATH_MAX]; /* "": none */
    /* Replica acknowledgement: WAIT wait_replicas wait_timeout_ms behind
     * every grant, renew and release; 0 replicas: no WAIT. */
    unsigned redis_wait_replicas;
    int64_t redis_wait_timeout_ms;
    enum redis_wait_policy redis_wait_policy;
    unsigned threads;
    char key_prefix[KEY_PREFIX_MAX + 1];
    int64_t max_ttl_ms;
    int64_t max_wait_ms;
    int64_t handoff_ms;    /* a hand-off waits this long for its claim */
    int64_t lock_delay_ms; /* default lock_delay_ms of an acquire */
    int64_t redis_timeout_ms;
    size_t max_body_bytes;
    unsigned max_json_depth;
    unsigned max_connections;
    unsigned idle_timeout_s;
    unsigned max_waiters;
    int64_t max_hold_count;
    int64_t max_permits; /* the largest limit of a semaphore */
    int64_t shutdown_timeout_ms;
    bool demo;
    enum log_level log_level;
    enum log_format log_format;
    char api_keys_file[CONFIG_PATH_MAX];
    struct api_key api_keys[API_KEYS_MAX];
    size_t api_key_count;
    bool healthcheck; /* --healthcheck: probe /healthz of --listen and exit */
    /* What the caller should log at startup, one line each (log_warn): each
     * LOCKSERVICE_* variable that is no setting, by name and never with its
     * value, with the setting it was probably meant to be. Past
     * CONFIG_WARNINGS_MAX, the last line counts the ones left out. */
    char warnings[CONFIG_WARNINGS_MAX][CONFIG_WARNING_LEN];
    unsigned warning_count;
};

/* How a row's text becomes a value. */
enum config_type {
    CONFIG_INT,    /* decimal integer in min..max, into a 4- or 8-byte member */
    CONFIG_STRING, /* text of min..max bytes, into a char array member */
    CONFIG_BOOL,   /* a flag without a value; in the environment 1, true, 0,
                      false or empty */
    CONFIG_ENUM,   /* one of names[], stored as its index into an enum */
    CONFIG_CUSTOM, /* the row's parse function fills whatever it needs */
    CONFIG_EXIT,   /* --help, --version: the row's action prints, exit 0 */
};

/* A CONFIG_CUSTOM parser: fills cfg from val, or returns -1 with a reason
 * in why (the caller puts the flag or variable in front of it). */
typedef int config_parse_fn(struct config *cfg, const char *val, char *why,
                            size_t whylen);
/* Runs once every flag and variable is applied, when the row was given,
 * e.g. to read the file it names. what is the flag or variable that gave
 * it, for err. Returns 0 or -1. */
typedef int config_load_fn(struct config *cfg, const char *what, char *err,
                           size_t errlen);

struct config_row {
    const char *flag; /* "--listen" */
    const char *env;  /* "LOCKSERVICE_LISTEN"; NULL: a flag only */
    const char *arg;  /* "HOST:PORT" in --help; NULL: takes no value */
    enum config_type type;
    size_t offset, size; /* the member it fills (INT, STRING, BOOL, ENUM) */
    int64_t min, max;    /* INT: the range; STRING: the length range */
    const char *const *names; /* ENUM: the allowed values, NULL-terminated */
    /* The default, as text this row parses; NULL: unset. When default_fn is
     * set it writes the default known only at run time (the number of
     * cores) and def only names it in --help. */
    const char *def;
    void (*default_fn)(char *buf, size_t len);
    config_parse_fn *parse;    /* CUSTOM */
    config_load_fn *load;      /* optional */
    void (*action)(FILE *out); /* EXIT */
    const char *help;
};

/* The rows, in --help order. */
extern const struct config_row config_rows[];
extern const size_t config_row_count;

enum config_result { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

/* Fills *cfg from defaults, then getenv(), then argv, then the files that
 * settings name. On CONFIG_ERROR, err holds one line naming the flag or
 * variable at fault (never a password). CONFIG_EXIT_OK means --help or
 * --version was printed to stdout. Warnings are in cfg->warnings. */
enum config_result config_parse(struct config *cfg, int argc, char **argv,
                                char *err, size_t errlen);

/* Applies the text val to row's setting in *cfg; what names the flag or
 * variable in err. Returns 0 or -1. */
int config_row_apply(struct config *cfg, const struct config_row *row,
                     const char *val, const char *what, char *err,
                     size_t errlen);

/* The row's default as text (in buf when computed), or NULL when unset. */
const char *config_row_default(const struct config_row *row, char *buf,
                               size_t len);

/* Prints --help, made from the rows, to out. */
void config_print_help(FILE *out);

/* Parses a Redis URL into *out. Returns 0, or -1 with a reason in err that
 * never quotes the URL's credentials. */
int redis_url_parse(const char *url, struct redis_url *out, char *err,
                    size_t errlen);

/* Parses "host:port", "[v6addr]:port" or ":port". Returns 0 or -1. */
int listen_addr_parse(const char *s, char *host, size_t hostlen, int *port,
                      bool *ipv6);

/* Parses an API keys file's text into cfg->api_keys: one key per line,
 * then whitespace and either attributes, in any order and each optional,
 *
 *     KEY name=N role=admin|client|read namespace=P
 *
 * or (the version 1 format) a name, the rest of the line; blank lines and
 * lines starting with '#' are skipped. The role defaults to client; a key
 * without a name is named "key<N>" (its position). A key given twice is an
 * error. Returns 0 or -1 with a reason and the line number in err, which
 * never quotes the line (it may hold a key). */
int api_keys_parse(const char *text, struct config *cfg, char *err,
                   size_t errlen);

/* Reads the file cfg->api_keys_file names and parses it into cfg->api_keys
 * (as the --api-keys-file row does at startup, and a SIGHUP again). Returns
 * 0 or -1 with a reason in err, which names the file, never a key. */
int api_keys_load(struct config *cfg, char *err, size_t errlen);

/* The name of a role as the keys file writes it ("admin", ...). */
const char *api_role_name(enum api_role role);

#endif
