/* test_config.c -- unit tests for service/config.c: the rows, Redis URLs
 * (percent-decoded credentials), listen addresses, API key and Redis
 * password files, warnings for unknown LOCKSERVICE_* variables and
 * config_parse over argv and the environment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static const char *const env_vars[] = {
    "LOCKSERVICE_LISTEN",
    "LOCKSERVICE_REDIS_URL",
    "LOCKSERVICE_REDIS_PASSWORD_FILE",
    "LOCKSERVICE_THREADS",
    "LOCKSERVICE_KEY_PREFIX",
    "LOCKSERVICE_MAX_TTL_MS",
    "LOCKSERVICE_MAX_WAIT_MS",
    "LOCKSERVICE_REDIS_TIMEOUT_MS",
    "LOCKSERVICE_MAX_BODY_BYTES",
    "LOCKSERVICE_MAX_JSON_DEPTH",
    "LOCKSERVICE_MAX_CONNECTIONS",
    "LOCKSERVICE_IDLE_TIMEOUT_S",
    "LOCKSERVICE_MAX_WAITERS",
    "LOCKSERVICE_MAX_HOLD_COUNT",
    "LOCKSERVICE_SHUTDOWN_TIMEOUT_MS",
    "LOCKSERVICE_API_KEYS_FILE",
    "LOCKSERVICE_DEMO",
    "LOCKSERVICE_LOG_LEVEL",
    "LOCKSERVICE_HANDOFF_MS",
};

#define N_ENV (sizeof(env_vars) / sizeof(env_vars[0]))

/* Every test starts from an environment without LOCKSERVICE_* variables,
 * settings or not (an unknown one makes a warning). */
static int clear_env(void **state)
{
    extern char **environ;
    bool again = true;

    (void)state;
    while (again) {
        again = false;
        for (char **e = environ; *e != NULL; e++) {
            if (strncmp(*e, "LOCKSERVICE_", 12) == 0) {
                char name[512];
                size_t n = strcspn(*e, "=");
                assert_true(n < sizeof(name));
                memcpy(name, *e, n);
                name[n] = '\0';
                unsetenv(name);
                again = true;
                break;
            }
        }
    }
    return 0;
}

static struct config cfg;
static char err[256];

/* config_parse over "lockservice" followed by the NULL-terminated
 * arguments; stdout (where --help and --version print) goes to /dev/null so
 * that it does not mix with the TAP stream. */
static enum config_result parse_args(const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;

    argv[argc++] = (char *)"lockservice";
    va_start(ap, first);
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
        assert_true(argc < 63);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;

    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && devnull >= 0);
    dup2(devnull, STDOUT_FILENO);
    close(devnull);
    memset(err, 0, sizeof(err));
    enum config_result r = config_parse(&cfg, argc, argv, err, sizeof(err));
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    return r;
}

#define PARSE(...) parse_args(__VA_ARGS__, (const char *)NULL)

/* Asserts that the arguments fail with an error line containing what. */
#define PARSE_FAILS(what, ...)                                                 \
    parse_fails(what, __VA_ARGS__, (const char *)NULL)

static void parse_fails_check(enum config_result r, const char *what)
{
    if (r != CONFIG_ERROR) {
        print_error("expected CONFIG_ERROR naming %s, got %d\n", what, r);
        fail();
    }
    if (strstr(err, what) == NULL) {
        print_error("error \"%s\" does not name %s\n", err, what);
        fail();
    }
    if (strchr(err, '\n') != NULL) {
        print_error("error \"%s\" is more than one line\n", err);
        fail();
    }
}

static void parse_fails(const char *what, const char *first, ...)
{
    char *argv[64];
    int argc = 0;
    va_list ap;

    argv[argc++] = (char *)"lockservice";
    va_start(ap, first);
    for (const char *a = first; a != NULL; a = va_arg(ap, const char *)) {
        assert_true(argc < 63);
        argv[argc++] = (char *)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    memset(err, 0, sizeof(err));
    parse_fails_check(config_parse(&cfg, argc, argv, err, sizeof(err)), what);
}

/* Runs "lockservice --help" through config_parse and stores what it
 * printed in text (len bytes with the NUL). */
static void help_text(char *text, size_t len)
{
    char path[] = "/tmp/lockservice-help-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char *argv[] = {(char *)"lockservice", (char *)"--help", NULL};

    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    enum config_result r = config_parse(&cfg, 2, argv, err, sizeof(err));
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(r, CONFIG_EXIT_OK);

    ssize_t n = pread(fd, text, len - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0 && (size_t)n < len - 1);
    text[n] = '\0';
}

/* A file holding the n bytes of content; its path is in path (a
 * mkstemp template). */
static void write_file(char *path, const char *content, size_t n)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
}

/* ---- redis_url_parse ---- */

static struct redis_url url_ok(const char *s)
{
    struct redis_url u;
    char why[128] = "";
    if (redis_url_parse(s, &u, why, sizeof(why)) != 0) {
        print_error("rejected %s: %s\n", s, why);
        fail();
    }
    return u;
}

static void url_bad(const char *s)
{
    struct redis_url u;
    char why[128] = "";
    if (redis_url_parse(s, &u, why, sizeof(why)) != -1) {
        print_error("accepted %s (host '%s' port %d db %d)\n", s, u.host,
                    u.port, u.db);
        fail();
    }
    if (why[0] == '\0') {
        print_error("rejected %s without a reason\n", s);
        fail();
    }
}

static void test_redis_url_tcp(void **state)
{
    (void)state;
    struct redis_url u = url_ok("redis://cache.internal");
    assert_false(u.is_unix);
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "");

    u = url_ok("redis://127.0.0.1:6380");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);

    u = url_ok("redis://h/3");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 3);

    u = url_ok("redis://h:1/15");
    assert_int_equal(u.port, 1);
    assert_int_equal(u.db, 15);

    u = url_ok("redis://h:65535/");
    assert_int_equal(u.port, 65535);
    assert_int_equal(u.db, 0);
}

static void test_redis_url_sentinel(void **state)
{
    (void)state;
    struct redis_url u =
        url_ok("redis-sentinel://:pw@s1:26380,[::1],10.0.0.3:5000/my%2Fmaster"
               "?db=4");
    assert_true(u.is_sentinel);
    assert_false(u.is_unix);
    assert_int_equal(u.host_count, 3);
    assert_string_equal(u.hosts[0].host, "s1");
    assert_int_equal(u.hosts[0].port, 26380);
    assert_string_equal(u.hosts[1].host, "::1");
    assert_int_equal(u.hosts[1].port, 26379);
    assert_string_equal(u.hosts[2].host, "10.0.0.3");
    assert_int_equal(u.hosts[2].port, 5000);
    assert_string_equal(u.master, "my/master");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 4);
    assert_string_equal(u.host, "");

    u = url_ok("redis-sentinel://h/m");
    assert_int_equal(u.host_count, 1);
    assert_int_equal(u.hosts[0].port, 26379);
    assert_int_equal(u.db, 0);

    url_bad("redis-sentinel://h");
    url_bad("redis-sentinel://h/");
    url_bad("redis-sentinel:///m");
    url_bad("redis-sentinel://h,,h2/m");
    url_bad("redis-sentinel://h:0/m");
    url_bad("redis-sentinel://h:x/m");
    url_bad("redis-sentinel://h/m?db=-1");
    url_bad("redis-sentinel://h/m?password=x");
    url_bad("redis-sentinel://a,b,c,d,e,f,g,h,i/m");
    url_bad("redis-sentinel://pw@h/m");
}

static void test_redis_url_cluster(void **state)
{
    (void)state;
    struct redis_url u =
        url_ok("redis-cluster://app:p%40ss@n1:7000,[::1],10.0.0.3:7002");
    assert_true(u.is_cluster);
    assert_false(u.is_sentinel);
    assert_false(u.is_unix);
    assert_int_equal(u.host_count, 3);
    assert_string_equal(u.hosts[0].host, "n1");
    assert_int_equal(u.hosts[0].port, 7000);
    assert_string_equal(u.hosts[1].host, "::1");
    assert_int_equal(u.hosts[1].port, 6379);
    assert_string_equal(u.hosts[2].host, "10.0.0.3");
    assert_int_equal(u.hosts[2].port, 7002);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "p@ss");
    assert_int_equal(u.db, 0);
    assert_string_equal(u.host, "");

    u = url_ok("redis-cluster://h");
    assert_int_equal(u.host_count, 1);
    assert_int_equal(u.hosts[0].port, 6379);

    url_bad("redis-cluster://");
    url_bad("redis-cluster://h/0");
    url_bad("redis-cluster://h/");
    url_bad("redis-cluster://h?db=1");
    url_bad("redis-cluster://h,,h2");
    url_bad("redis-cluster://h,");
    url_bad("redis-cluster://,h");
    url_bad("redis-cluster://h:0");
    url_bad("redis-cluster://h:65536");
    url_bad("redis-cluster://h:x");
    url_bad("redis-cluster://[::1");
    url_bad("redis-cluster://a,b,c,d,e,f,g,h,i");
    url_bad("redis-cluster://pw@h");
    url_bad("redis-sentinel://h,/m");
}

static void test_redis_url_credentials(void **state)
{
    (void)state;
    struct redis_url u = url_ok("redis://:s3cret@h:6390/2");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 2);

    u = url_ok("redis://alice:pw@h");
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6379);

    /* An '@' in the password: the last '@' ends the credentials. */
    u = url_ok("redis://:p@ss@h");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "h");

    /* A ':' in the password: the first ':' ends the user. */
    u = url_ok("redis://bob:a:b@h");
    assert_string_equal(u.user, "bob");
    assert_string_equal(u.password, "a:b");
}

static void test_redis_url_ipv6(void **state)
{
    (void)state;
    struct redis_url u = url_ok("redis://[::1]:6380");
    assert_false(u.is_unix);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6380);

    u = url_ok("redis://[::1]");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6379);

    u = url_ok("redis://:pw@[2001:db8::7]:7000/4");
    assert_string_equal(u.host, "2001:db8::7");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 4);
}

static void test_redis_url_unix(void **state)
{
    (void)state;
    struct redis_url u = url_ok("unix:///run/redis/redis.sock");
    assert_true(u.is_unix);
    assert_string_equal(u.host, "/run/redis/redis.sock");
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");

    u = url_ok("unix:///tmp/r.sock?db=2&password=x");
    assert_true(u.is_unix);
    assert_string_equal(u.host, "/tmp/r.sock");
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "x");

    u = url_ok("unix:///tmp/r.sock?password=x&db=7");
    assert_int_equal(u.db, 7);
    assert_string_equal(u.password, "x");
}

static void test_redis_url_rejects(void **state)
{
    (void)state;
    url_bad("");
    url_bad("http://h:6379");
    url_bad("rediss://h");
    url_bad("REDIS://h");
    url_bad("h:6379");
    url_bad("redis://");
    url_bad("redis://:6379");
    url_bad("redis:///0");
    url_bad("redis://:pw@");
    url_bad("redis://:pw@:6379");
    url_bad("redis://h:0");
    url_bad("redis://h:70000");
    url_bad("redis://h:65536");
    url_bad("redis://h:-1");
    url_bad("redis://h:");
    url_bad("redis://h:abc");
    url_bad("redis://h:63 79");
    url_bad("redis://h:99999999999999999999");
    url_bad("redis://h/-1");
    url_bad("redis://h/abc");
    url_bad("redis://h/1x");
    url_bad("redis://h/1/2");
    url_bad("redis://h/99999999999999999999");
    url_bad("redis://[::1");
    url_bad("redis://[]:6379");
    url_bad("redis://[::1]x");
    url_bad("redis://user@h"); /* credentials need a ':' */
    url_bad("unix://");
    url_bad("unix://relative.sock");
    url_bad("unix:///");
    url_bad("unix:///tmp/r.sock?db=-1");
    url_bad("unix:///tmp/r.sock?db=abc");
    url_bad("unix:///tmp/r.sock?db=");
    url_bad("unix:///tmp/r.sock?user=x");
    url_bad("unix:///tmp/r.sock?db=1&&");
}

static void test_redis_url_overlong(void **state)
{
    (void)state;
    char url[2048];
    char part[1024];

    memset(part, 'h', REDIS_HOST_MAX);
    part[REDIS_HOST_MAX] = '\0';
    snprintf(url, sizeof(url), "redis://%s:6379", part);
    url_bad(url);
    snprintf(url, sizeof(url), "unix:///%s", part);
    url_bad(url);
    snprintf(url, sizeof(url), "redis://[%s]:6379", part);
    url_bad(url);

    memset(part, 'p', REDIS_SECRET_MAX);
    part[REDIS_SECRET_MAX] = '\0';
    snprintf(url, sizeof(url), "redis://:%s@h", part);
    url_bad(url);
    snprintf(url, sizeof(url), "redis://%s:pw@h", part);
    url_bad(url);
    snprintf(url, sizeof(url), "unix:///tmp/s?password=%s", part);
    url_bad(url);

    /* The longest that fits is accepted. */
    part[REDIS_HOST_MAX - 1] = '\0';
    memset(part, 'h', REDIS_HOST_MAX - 1);
    snprintf(url, sizeof(url), "redis://%s", part);
    struct redis_url u = url_ok(url);
    assert_int_equal(strlen(u.host), REDIS_HOST_MAX - 1);
}

/* user, password and unix query values are percent-decoded, so that any
 * byte but NUL can be written; v1 refused a password with '/' ("port must
 * be 1..65535"). */
static void test_redis_url_percent_decoding(void **state)
{
    (void)state;
    struct redis_url u = url_ok("redis://:a%2Fb@h");
    assert_string_equal(u.password, "a/b");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6379);

    u = url_ok("redis://:p%40ss@h:6380/2");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);

    u = url_ok("redis://:100%25@h");
    assert_string_equal(u.password, "100%");

    u = url_ok("redis://us%3Aer:pa%3As@h");
    assert_string_equal(u.user, "us:er");
    assert_string_equal(u.password, "pa:s");

    /* Lower-case hex digits, a space and a non-ASCII byte. */
    u = url_ok("redis://:%2f%2F%20%c3%a9@h");
    assert_string_equal(u.password, "// \xc3\xa9");

    /* Every special character at once, with an IPv6 host and a db. */
    u = url_ok("redis://alice:s%2F%40%3A%25%3F%23@[::1]:6390/4");
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "s/@:%?#");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6390);
    assert_int_equal(u.db, 4);

    /* A '/' written as it is still works: the credentials end at the last
     * '@', and neither host, port nor db holds one. */
    u = url_ok("redis://:pa/ss@127.0.0.1:6379/3");
    assert_string_equal(u.password, "pa/ss");
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 3);

    /* The unix query's values. */
    u = url_ok("unix:///tmp/r.sock?password=a%26b%2Fc%3D&db=%33");
    assert_string_equal(u.host, "/tmp/r.sock");
    assert_string_equal(u.password, "a&b/c=");
    assert_int_equal(u.db, 3);
    /* The path is taken as written. */
    u = url_ok("unix:///tmp/100%.sock");
    assert_string_equal(u.host, "/tmp/100%.sock");
}

static void test_redis_url_bad_escapes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "redis://:a%2@h",        "redis://:a%zz@h",        "redis://:%@h",
        "redis://:abc%@h",       "redis://:%g0@h",         "redis://:%00@h",
        "redis://:a%2",          "redis://a%G0:pw@h",      "redis://%:pw@h",
        "unix:///s?password=%2", "unix:///s?password=%00", "unix:///s?db=%3",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        url_bad(bad[i]);

    struct redis_url u;
    char why[128] = "";
    assert_int_equal(
        redis_url_parse("redis://:S3CRET%zz@h", &u, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "escape"));
    assert_non_null(strstr(why, "password"));
    assert_null(strstr(why, "S3CRET"));
    assert_int_equal(redis_url_parse("redis://us%4:pw@h", &u, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "user"));

    /* Through config_parse: one line naming the setting, not the value. */
    PARSE_FAILS("--redis", "--redis", "redis://:S3CRET%zz@h");
    assert_null(strstr(err, "S3CRET"));
    setenv("LOCKSERVICE_REDIS_URL", "redis://:S3CRET%4@h", 1);
    parse_fails_check(PARSE(NULL), "LOCKSERVICE_REDIS_URL");
    assert_null(strstr(err, "S3CRET"));
    unsetenv("LOCKSERVICE_REDIS_URL");
}

/* The length limit is on the decoded bytes: 255 of them, however long
 * their encoding. */
static void test_redis_url_decoded_length(void **state)
{
    (void)state;
    char url[4 * REDIS_SECRET_MAX + 64];
    size_t n = (size_t)snprintf(url, sizeof(url), "redis://:");

    for (int i = 0; i < REDIS_SECRET_MAX - 1; i++)
        n += (size_t)snprintf(url + n, sizeof(url) - n, "%%41");
    snprintf(url + n, sizeof(url) - n, "@h");
    struct redis_url u = url_ok(url);
    assert_int_equal(strlen(u.password), REDIS_SECRET_MAX - 1);

    snprintf(url + n, sizeof(url) - n, "%%41@h");
    url_bad(url);
}

/* ---- listen_addr_parse ---- */

static void test_listen_addr(void **state)
{
    (void)state;
    char host[64];
    int port = 0;
    bool v6 = true;

    assert_int_equal(
        listen_addr_parse("127.0.0.1:8080", host, sizeof(host), &port, &v6), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_false(v6);

    assert_int_equal(
        listen_addr_parse("0.0.0.0:1", host, sizeof(host), &port, &v6), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 1);

    assert_int_equal(
        listen_addr_parse("localhost:65535", host, sizeof(host), &port, &v6),
        0);
    assert_string_equal(host, "localhost");
    assert_int_equal(port, 65535);

    assert_int_equal(
        listen_addr_parse("[::1]:8080", host, sizeof(host), &port, &v6), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_true(v6);

    assert_int_equal(
        listen_addr_parse("[::]:9000", host, sizeof(host), &port, &v6), 0);
    assert_string_equal(host, "::");
    assert_true(v6);

    v6 = true;
    port = 0;
    assert_int_equal(listen_addr_parse(":9090", host, sizeof(host), &port, &v6),
                     0);
    assert_int_equal(port, 9090);
    assert_false(v6);
}

static void test_listen_addr_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:70000",
        "127.0.0.1:-1",
        "127.0.0.1:http",
        "127.0.0.1:80x",
        "127.0.0.1: 80",
        "127.0.0.1:99999999999999999999",
        "::1:8080",
        "[::1]",
        "[::1]8080",
        "[::1:8080",
        "[]:8080",
        ":",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char host[64];
        int port = 0;
        bool v6 = false;
        if (listen_addr_parse(bad[i], host, sizeof(host), &port, &v6) != -1) {
            print_error("accepted '%s' as host '%s' port %d\n", bad[i], host,
                        port);
            fail();
        }
    }
}

static void test_listen_addr_small_buffer(void **state)
{
    (void)state;
    char host[8];
    int port = 0;
    bool v6 = false;
    assert_int_equal(
        listen_addr_parse("1234567:80", host, sizeof(host), &port, &v6), 0);
    assert_string_equal(host, "1234567");
    assert_int_equal(
        listen_addr_parse("12345678:80", host, sizeof(host), &port, &v6), -1);
    assert_int_equal(
        listen_addr_parse("[12345678]:80", host, sizeof(host), &port, &v6), -1);
}

/* ---- api_keys_parse ---- */

#define KEY16 "0123456789abcdef"
#define KEY_A "aaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_B "bbbbbbbbbbbbbbbbbbbbbbbb"

static void test_api_keys(void **state)
{
    (void)state;
    struct config c;
    char why[160] = "";
    memset(&c, 0, sizeof(c));
    const char *text = "# production keys\n"
                       "\n" KEY_A " ci-runner\n"
                       "   # indented comment\n" KEY_B "\tbilling service\n"
                       "  \t \n" KEY16 "\n";
    if (api_keys_parse(text, &c, why, sizeof(why)) != 0) {
        print_error("rejected: %s\n", why);
        fail();
    }
    assert_int_equal(c.api_key_count, 3);
    assert_string_equal(c.api_keys[0].key, KEY_A);
    assert_int_equal(c.api_keys[0].key_len, strlen(KEY_A));
    assert_string_equal(c.api_keys[0].name, "ci-runner");
    assert_string_equal(c.api_keys[1].key, KEY_B);
    assert_string_equal(c.api_keys[1].name, "billing service");
    assert_string_equal(c.api_keys[2].key, KEY16);
    assert_int_equal(c.api_keys[2].key_len, 16);
    /* A key without a name still gets one, for the logs. */
    assert_true(c.api_keys[2].name[0] != '\0');
}

/* A file edited on Windows: the '\r' is not part of the key or the name. */
static void test_api_keys_crlf_and_no_final_newline(void **state)
{
    (void)state;
    struct config c;
    char why[160] = "";
    memset(&c, 0, sizeof(c));
    assert_int_equal(api_keys_parse(KEY_A " one\r\n" KEY_B "\r\n" KEY16, &c,
                                    why, sizeof(why)),
                     0);
    assert_int_equal(c.api_key_count, 3);
    assert_string_equal(c.api_keys[0].key, KEY_A);
    assert_string_equal(c.api_keys[0].name, "one");
    assert_string_equal(c.api_keys[1].key, KEY_B);
    assert_int_equal(c.api_keys[1].key_len, strlen(KEY_B));
    assert_string_equal(c.api_keys[2].key, KEY16);
}

static void test_api_keys_lengths(void **state)
{
    (void)state;
    struct config c;
    char why[160];
    char text[API_KEY_MAX + 16];

    memset(&c, 0, sizeof(c));
    /* 15 characters: too short, and the error gives the line. */
    why[0] = '\0';
    assert_int_equal(
        api_keys_parse("# c\n0123456789abcde\n", &c, why, sizeof(why)), -1);
    if (strstr(why, "2") == NULL) {
        print_error("reason \"%s\" does not give line 2\n", why);
        fail();
    }

    memset(text, 'k', API_KEY_MAX);
    text[API_KEY_MAX] = '\0';
    assert_int_equal(api_keys_parse(text, &c, why, sizeof(why)), 0);
    assert_int_equal(c.api_keys[0].key_len, API_KEY_MAX);

    text[API_KEY_MAX] = 'k';
    text[API_KEY_MAX + 1] = '\0';
    why[0] = '\0';
    assert_int_equal(api_keys_parse(text, &c, why, sizeof(why)), -1);
    assert_true(why[0] != '\0');
}

static void test_api_keys_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",                        /* no keys at all */
        "# only a comment\n\n",    /* no keys at all */
        "short name\n",            /* key too short */
        KEY_A "\n\x01" KEY_B "\n", /* control byte in a key */
        KEY_A "\xc3\xa9"
              "\n", /* non-ASCII byte in a key */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct config c;
        char why[160] = "";
        memset(&c, 0, sizeof(c));
        if (api_keys_parse(bad[i], &c, why, sizeof(why)) != -1) {
            print_error("accepted key file %zu\n", i);
            fail();
        }
        assert_true(why[0] != '\0');
    }
}

static void test_api_keys_count_limit(void **state)
{
    (void)state;
    size_t line = 32;
    char *text = malloc((API_KEYS_MAX + 1) * line + 1);
    struct config c;
    char why[160] = "";
    assert_non_null(text);
    memset(&c, 0, sizeof(c));
    for (size_t i = 0; i <= API_KEYS_MAX; i++)
        snprintf(text + i * line, line + 1, "key-%027zu\n", i);
    text[API_KEYS_MAX * line] = '\0';
    assert_int_equal(api_keys_parse(text, &c, why, sizeof(why)), 0);
    assert_int_equal(c.api_key_count, API_KEYS_MAX);
    snprintf(text + API_KEYS_MAX * line, line + 1, "key-%027d\n", 999);
    assert_int_equal(api_keys_parse(text, &c, why, sizeof(why)), -1);
    assert_true(why[0] != '\0');
    free(text);
}

/* Parsing twice replaces the previous keys instead of appending. */
static void test_api_keys_reparse(void **state)
{
    (void)state;
    struct config c;
    char why[160] = "";
    memset(&c, 0, sizeof(c));
    assert_int_equal(
        api_keys_parse(KEY_A "\n" KEY_B "\n", &c, why, sizeof(why)), 0);
    assert_int_equal(c.api_key_count, 2);
    assert_int_equal(api_keys_parse(KEY16 "\n", &c, why, sizeof(why)), 0);
    assert_int_equal(c.api_key_count, 1);
    assert_string_equal(c.api_keys[0].key, KEY16);
}

/* The version 1 format: a key is a client without a namespace. */
static void test_api_keys_v1_defaults(void **state)
{
    (void)state;
    struct config c;
    char why[160] = "";
    memset(&c, 0xa5, sizeof(c));
    assert_int_equal(
        api_keys_parse(KEY_A " ci runner\n" KEY_B "\n", &c, why, sizeof(why)),
        0);
    assert_int_equal(c.api_key_count, 2);
    assert_string_equal(c.api_keys[0].name, "ci runner");
    assert_int_equal(c.api_keys[0].role, API_ROLE_CLIENT);
    assert_string_equal(c.api_keys[0].ns, "");
    assert_string_equal(c.api_keys[1].name, "key2");
    assert_int_equal(c.api_keys[1].role, API_ROLE_CLIENT);
    assert_string_equal(c.api_keys[1].ns, "");
    /* A first word with '=' that is no attribute is still a v1 name. */
    assert_int_equal(api_keys_parse(KEY_A " team=blue\n", &c, why, sizeof(why)),
                     0);
    assert_string_equal(c.api_keys[0].name, "team=blue");
    assert_int_equal(c.api_keys[0].role, API_ROLE_CLIENT);
}

/* name=, role= and namespace=, each optional, in any order. */
static void test_api_keys_attributes(void **state)
{
    (void)state;
    struct config c;
    char why[160] = "";
    memset(&c, 0, sizeof(c));
    /* Order does not matter; tabs and runs of spaces part words. */
    const char *text =
        KEY_A " name=ops role=admin\n" KEY_B
              "\tnamespace=tenant-a.1_x  role=read\tname=dash\n" KEY16
              " role=client\n"
              "cccccccccccccccccccccccc namespace=b\n"
              "dddddddddddddddddddddddd name=only-a-name\n"
              "eeeeeeeeeeeeeeeeeeeeeeee role=read\r\n";
    if (api_keys_parse(text, &c, why, sizeof(why)) != 0) {
        print_error("rejected: %s\n", why);
        fail();
    }
    assert_int_equal(c.api_key_count, 6);
    assert_string_equal(c.api_keys[0].key, KEY_A);
    assert_string_equal(c.api_keys[0].name, "ops");
    assert_int_equal(c.api_keys[0].role, API_ROLE_ADMIN);
    assert_string_equal(c.api_keys[0].ns, "");
    assert_string_equal(c.api_keys[1].key, KEY_B);
    assert_string_equal(c.api_keys[1].name, "dash");
    assert_int_equal(c.api_keys[1].role, API_ROLE_READ);
    assert_string_equal(c.api_keys[1].ns, "tenant-a.1_x");
    assert_string_equal(c.api_keys[2].key, KEY16);
    assert_string_equal(c.api_keys[2].name, "key3");
    assert_int_equal(c.api_keys[2].role, API_ROLE_CLIENT);
    assert_string_equal(c.api_keys[3].name, "key4");
    assert_int_equal(c.api_keys[3].role, API_ROLE_CLIENT);
    assert_string_equal(c.api_keys[3].ns, "b");
    assert_string_equal(c.api_keys[4].name, "only-a-name");
    assert_int_equal(c.api_keys[4].role, API_ROLE_CLIENT);
    assert_string_equal(c.api_keys[5].key, "eeeeeeeeeeeeeeeeeeeeeeee");
    assert_int_equal(c.api_keys[5].role, API_ROLE_READ);
    assert_string_equal(api_role_name(API_ROLE_ADMIN), "admin");
    assert_string_equal(api_role_name(API_ROLE_CLIENT), "client");
    assert_string_equal(api_role_name(API_ROLE_READ), "read");

    /* The longest name and namespace. */
    char line[API_KEY_MAX + 160];
    char name[API_KEY_NAME_MAX + 1], ns[NAMESPACE_MAX + 1];
    memset(name, 'n', API_KEY_NAME_MAX);
    name[API_KEY_NAME_MAX] = '\0';
    memset(ns, 's', NAMESPACE_MAX);
    ns[NAMESPACE_MAX] = '\0';
    snprintf(line, sizeof(line), KEY_A " name=%s namespace=%s\n", name, ns);
    assert_int_equal(api_keys_parse(line, &c, why, sizeof(why)), 0);
    assert_string_equal(c.api_keys[0].name, name);
    assert_string_equal(c.api_keys[0].ns, ns);
}

/* Each bad line is refused with its line number, and the reason never
 * quotes the key or the line. */
static void test_api_keys_attribute_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "role=root",                /* no such role */
        "role=",                    /* empty role */
        "role=Admin",               /* roles are lowercase */
        "namespace=",               /* empty namespace */
        "namespace=a:b",            /* ':' is not in a namespace */
        "namespace=a/b",            /* nor '/' */
        "namespace=tenant\xc3\xa9", /* nor non-ASCII */
        "name=",                    /* empty name */
        "name=x\x01y",              /* control character */
        "name=a name=b",            /* given twice */
        "role=read role=admin",     /* given twice */
        "namespace=a namespace=b",  /* given twice */
        "name=a color=red",         /* unknown attribute */
        "name=a extra",             /* a word that is no attribute */
        "name=a " KEY_B,            /* a second key on the line */
    };
    char too_long[2][128];
    memset(too_long, 0, sizeof(too_long));
    snprintf(too_long[0], sizeof(too_long[0]), "namespace=%0*d",
             NAMESPACE_MAX + 1, 0);
    snprintf(too_long[1], sizeof(too_long[1]), "name=%0*d",
             API_KEY_NAME_MAX + 1, 0);
    const char *const all[] = {too_long[0], too_long[1]};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]) + 2; i++) {
        const char *line = i < sizeof(bad) / sizeof(bad[0])
                               ? bad[i]
                               : all[i - sizeof(bad) / sizeof(bad[0])];
        struct config c;
        char why[160] = "", text[512];
        memset(&c, 0, sizeof(c));
        snprintf(text, sizeof(text), "# keys\n" KEY_B "\n" KEY_A " %s\n", line);
        if (api_keys_parse(text, &c, why, sizeof(why)) != -1) {
            print_error("accepted line \"%s\"\n", line);
            fail();
        }
        if (strstr(why, "line 3") == NULL || strstr(why, "aaaaaaaa") != NULL ||
            strstr(why, "bbbbbbbb") != NULL) {
            print_error("reason \"%s\" for \"%s\": not line 3, or quotes a "
                        "key\n",
                        why, line);
            fail();
        }
    }
    /* A v1 name with a control character (a tab is fine). */
    struct config c;
    char why[160] = "";
    memset(&c, 0, sizeof(c));
    assert_int_equal(api_keys_parse(KEY_A " ci\x1b[2J\n", &c, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "line 1"));
    assert_int_equal(api_keys_parse(KEY_A " ci\tbot\n", &c, why, sizeof(why)),
                     0);
    assert_string_equal(c.api_keys[0].name, "ci\tbot");
}

/* api_keys_load reads the file again (a SIGHUP) and says which file and
 * line are at fault, never quoting a key. */
static void test_api_keys_load(void **state)
{
    (void)state;
    char path[] = "/tmp/lockservice-keys-XXXXXX";
    int fd = mkstemp(path);
    struct config *c = calloc(1, sizeof(*c));
    char why[CONFIG_PATH_MAX + 256] = "";
    assert_true(fd >= 0);
    assert_non_null(c);
    const char *text = KEY_A " name=a role=admin namespace=x\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(c->api_keys_file, sizeof(c->api_keys_file), "%s", path);
    assert_int_equal(api_keys_load(c, why, sizeof(why)), 0);
    assert_int_equal(c->api_key_count, 1);
    assert_int_equal(c->api_keys[0].role, API_ROLE_ADMIN);
    assert_string_equal(c->api_keys[0].ns, "x");

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    text = KEY_A "\n" KEY_B " role=superuser\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(api_keys_load(c, why, sizeof(why)), -1);
    if (strstr(why, path) == NULL || strstr(why, "line 2") == NULL ||
        strstr(why, "bbbbbbbb") != NULL || strstr(why, "aaaaaaaa") != NULL) {
        print_error("reason \"%s\"\n", why);
        fail();
    }
    unlink(path);
    assert_int_equal(api_keys_load(c, why, sizeof(why)), -1);
    assert_non_null(strstr(why, path));
    free(c);
}

/* ---- config_parse ---- */

static void test_config_defaults(void **state)
{
    (void)state;
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_false(cfg.listen_ipv6);
    assert_false(cfg.redis.is_unix);
    assert_string_equal(cfg.redis.host, "127.0.0.1");
    assert_int_equal(cfg.redis.port, 6379);
    assert_int_equal(cfg.redis.db, 0);
    assert_string_equal(cfg.redis.password, "");
    assert_true(cfg.threads >= 1 && cfg.threads <= 256);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores >= 1 && cores <= 256)
        assert_int_equal(cfg.threads, cores);
    assert_string_equal(cfg.key_prefix, "lockservice:");
    assert_int_equal(cfg.max_ttl_ms, 3600000);
    assert_int_equal(cfg.max_wait_ms, 60000);
    assert_int_equal(cfg.handoff_ms, 250);
    assert_int_equal(cfg.redis_timeout_ms, 1000);
    assert_int_equal(cfg.max_body_bytes, 16384);
    assert_int_equal(cfg.max_json_depth, 8);
    assert_int_equal(cfg.max_connections, 16384);
    assert_int_equal(cfg.idle_timeout_s, 30);
    assert_int_equal(cfg.max_waiters, 16384);
    assert_int_equal(cfg.max_hold_count, 1000);
    assert_int_equal(cfg.shutdown_timeout_ms, 10000);
    assert_false(cfg.demo);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_string_equal(cfg.api_keys_file, "");
    assert_int_equal(cfg.api_key_count, 0);
    assert_false(cfg.healthcheck);
    assert_string_equal(cfg.redis_password_file, "");
    assert_int_equal(cfg.warning_count, 0);
    assert_string_equal(err, "");
}

static void test_config_each_flag(void **state)
{
    (void)state;
    assert_int_equal(
        PARSE("--listen", "[::1]:9001", "--redis", "redis://:pw@r:6390/5",
              "--threads", "3", "--key-prefix", "t:", "--max-ttl-ms", "5000",
              "--max-wait-ms", "0", "--handoff-ms", "0", "--redis-timeout-ms",
              "250", "--max-body-bytes", "4096", "--max-json-depth", "4",
              "--max-connections", "100", "--idle-timeout-s", "5",
              "--max-waiters", "10", "--max-hold-count", "3",
              "--shutdown-timeout-ms", "500", "--demo", "--log-level", "debug",
              "--healthcheck"),
        CONFIG_OK);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9001);
    assert_true(cfg.listen_ipv6);
    assert_string_equal(cfg.redis.host, "r");
    assert_int_equal(cfg.redis.port, 6390);
    assert_int_equal(cfg.redis.db, 5);
    assert_string_equal(cfg.redis.password, "pw");
    assert_int_equal(cfg.threads, 3);
    assert_string_equal(cfg.key_prefix, "t:");
    assert_int_equal(cfg.max_ttl_ms, 5000);
    assert_int_equal(cfg.max_wait_ms, 0);
    assert_int_equal(cfg.handoff_ms, 0);
    assert_int_equal(cfg.redis_timeout_ms, 250);
    assert_int_equal(cfg.max_body_bytes, 4096);
    assert_int_equal(cfg.max_json_depth, 4);
    assert_int_equal(cfg.max_connections, 100);
    assert_int_equal(cfg.idle_timeout_s, 5);
    assert_int_equal(cfg.max_waiters, 10);
    assert_int_equal(cfg.max_hold_count, 3);
    assert_int_equal(cfg.shutdown_timeout_ms, 500);
    assert_true(cfg.demo);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_true(cfg.healthcheck);
}

static void test_config_flag_forms(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--threads=7", "--redis=unix:///tmp/r.sock?db=1"),
                     CONFIG_OK);
    assert_int_equal(cfg.threads, 7);
    assert_true(cfg.redis.is_unix);
    assert_string_equal(cfg.redis.host, "/tmp/r.sock");
    assert_int_equal(cfg.redis.db, 1);

    /* The last occurrence of a flag wins. */
    assert_int_equal(PARSE("--threads", "2", "--threads", "5"), CONFIG_OK);
    assert_int_equal(cfg.threads, 5);

    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(PARSE("--log-level", levels[i]), CONFIG_OK);
        assert_int_equal(cfg.log_level, (enum log_level)i);
    }
}

/* A second parse starts from the defaults again (getopt state reset). */
static void test_config_reparse(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--threads", "9", "--demo"), CONFIG_OK);
    assert_int_equal(cfg.threads, 9);
    assert_int_equal(PARSE("--max-ttl-ms", "10"), CONFIG_OK);
    assert_int_equal(cfg.max_ttl_ms, 10);
    assert_false(cfg.demo);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.max_ttl_ms, 3600000);
}

static void test_config_env(void **state)
{
    (void)state;
    setenv("LOCKSERVICE_LISTEN", "0.0.0.0:7000", 1);
    setenv("LOCKSERVICE_REDIS_URL", "redis://envhost:6400/1", 1);
    setenv("LOCKSERVICE_THREADS", "4", 1);
    setenv("LOCKSERVICE_KEY_PREFIX", "env:", 1);
    setenv("LOCKSERVICE_MAX_TTL_MS", "7000", 1);
    setenv("LOCKSERVICE_MAX_WAIT_MS", "700", 1);
    setenv("LOCKSERVICE_HANDOFF_MS", "1500", 1);
    setenv("LOCKSERVICE_REDIS_TIMEOUT_MS", "70", 1);
    setenv("LOCKSERVICE_MAX_BODY_BYTES", "7000", 1);
    setenv("LOCKSERVICE_MAX_JSON_DEPTH", "7", 1);
    setenv("LOCKSERVICE_MAX_CONNECTIONS", "77", 1);
    setenv("LOCKSERVICE_IDLE_TIMEOUT_S", "17", 1);
    setenv("LOCKSERVICE_MAX_WAITERS", "27", 1);
    setenv("LOCKSERVICE_MAX_HOLD_COUNT", "37", 1);
    setenv("LOCKSERVICE_SHUTDOWN_TIMEOUT_MS", "47", 1);
    setenv("LOCKSERVICE_DEMO", "1", 1);
    setenv("LOCKSERVICE_LOG_LEVEL", "warn", 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_string_equal(cfg.listen_host, "0.0.0.0");
    assert_int_equal(cfg.listen_port, 7000);
    assert_string_equal(cfg.redis.host, "envhost");
    assert_int_equal(cfg.redis.port, 6400);
    assert_int_equal(cfg.redis.db, 1);
    assert_int_equal(cfg.threads, 4);
    assert_string_equal(cfg.key_prefix, "env:");
    assert_int_equal(cfg.max_ttl_ms, 7000);
    assert_int_equal(cfg.max_wait_ms, 700);
    assert_int_equal(cfg.handoff_ms, 1500);
    assert_int_equal(cfg.redis_timeout_ms, 70);
    assert_int_equal(cfg.max_body_bytes, 7000);
    assert_int_equal(cfg.max_json_depth, 7);
    assert_int_equal(cfg.max_connections, 77);
    assert_int_equal(cfg.idle_timeout_s, 17);
    assert_int_equal(cfg.max_waiters, 27);
    assert_int_equal(cfg.max_hold_count, 37);
    assert_int_equal(cfg.shutdown_timeout_ms, 47);
    assert_true(cfg.demo);
    assert_int_equal(cfg.log_level, LOG_WARN);
    assert_int_equal(cfg.warning_count, 0);

    setenv("LOCKSERVICE_DEMO", "0", 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_false(cfg.demo);
}

static void test_config_flag_beats_env(void **state)
{
    (void)state;
    setenv("LOCKSERVICE_LISTEN", "0.0.0.0:7000", 1);
    setenv("LOCKSERVICE_THREADS", "4", 1);
    setenv("LOCKSERVICE_MAX_TTL_MS", "7000", 1);
    setenv("LOCKSERVICE_LOG_LEVEL", "warn", 1);
    setenv("LOCKSERVICE_REDIS_URL", "redis://envhost", 1);
    assert_int_equal(PARSE("--listen", "127.0.0.1:7001", "--threads", "6",
                           "--log-level", "error", "--redis",
                           "unix:///tmp/flag.sock"),
                     CONFIG_OK);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 7001);
    assert_int_equal(cfg.threads, 6);
    assert_int_equal(cfg.log_level, LOG_ERROR);
    assert_true(cfg.redis.is_unix);
    assert_string_equal(cfg.redis.host, "/tmp/flag.sock");
    /* Not given as a flag: the environment still applies. */
    assert_int_equal(cfg.max_ttl_ms, 7000);
}

static void test_config_bad_flags(void **state)
{
    (void)state;
    PARSE_FAILS("--listen", "--listen", "nope");
    PARSE_FAILS("--listen", "--listen", "127.0.0.1:0");
    PARSE_FAILS("--redis", "--redis", "http://h:6379");
    PARSE_FAILS("--redis", "--redis", "redis://h:70000");
    PARSE_FAILS("--threads", "--threads", "0");
    PARSE_FAILS("--threads", "--threads", "257");
    PARSE_FAILS("--threads", "--threads", "abc");
    PARSE_FAILS("--threads", "--threads", "4x");
    PARSE_FAILS("--threads", "--threads", "");
    PARSE_FAILS("--threads", "--threads", " 4");
    PARSE_FAILS("--threads", "--threads", "99999999999999999999");
    PARSE_FAILS("--threads", "--threads", "-1");
    PARSE_FAILS("--max-ttl-ms", "--max-ttl-ms", "0");
    PARSE_FAILS("--max-ttl-ms", "--max-ttl-ms", "-5");
    PARSE_FAILS("--max-ttl-ms", "--max-ttl-ms", "1.5");
    PARSE_FAILS("--max-wait-ms", "--max-wait-ms", "-1");
    PARSE_FAILS("--handoff-ms", "--handoff-ms", "-1");
    PARSE_FAILS("--handoff-ms", "--handoff-ms", "10001");
    PARSE_FAILS("--redis-timeout-ms", "--redis-timeout-ms", "0");
    PARSE_FAILS("--max-body-bytes", "--max-body-bytes", "0");
    PARSE_FAILS("--max-json-depth", "--max-json-depth", "0");
    PARSE_FAILS("--max-connections", "--max-connections", "0");
    PARSE_FAILS("--idle-timeout-s", "--idle-timeout-s", "0");
    PARSE_FAILS("--max-waiters", "--max-waiters", "-1");
    PARSE_FAILS("--max-hold-count", "--max-hold-count", "0");
    PARSE_FAILS("--shutdown-timeout-ms", "--shutdown-timeout-ms", "-1");
    PARSE_FAILS("--log-level", "--log-level", "verbose");
    PARSE_FAILS("--log-level", "--log-level", "INFO");
    PARSE_FAILS("--api-keys-file", "--api-keys-file", "");
    PARSE_FAILS("--api-keys-file", "--api-keys-file",
                "/nonexistent/lockservice-keys");

    char prefix[KEY_PREFIX_MAX + 2];
    memset(prefix, 'p', KEY_PREFIX_MAX + 1);
    prefix[KEY_PREFIX_MAX + 1] = '\0';
    PARSE_FAILS("--key-prefix", "--key-prefix", prefix);
    prefix[KEY_PREFIX_MAX] = '\0';
    assert_int_equal(PARSE("--key-prefix", prefix), CONFIG_OK);
    assert_string_equal(cfg.key_prefix, prefix);
}

static void test_config_bad_usage(void **state)
{
    (void)state;
    PARSE_FAILS("--bogus", "--bogus");
    PARSE_FAILS("--listen", "--listen");
    PARSE_FAILS("--demo", "--demo=1");
    PARSE_FAILS("stray", "stray");
    PARSE_FAILS("stray", "--demo", "stray");
    PARSE_FAILS("-x", "-x");
}

/* A short-option cluster: the error must name the argument given, not the
 * argument before it. */
static void test_config_bad_short_cluster(void **state)
{
    (void)state;
    PARSE_FAILS("-x", "-xy");
    assert_null(strstr(err, "lockservice"));
}

/* A value with a newline in it still makes a one-line error. */
static void test_config_error_one_line(void **state)
{
    (void)state;
    PARSE_FAILS("--log-level", "--log-level", "info\nFAKE: injected");
    PARSE_FAILS("--threads", "--threads", "1\n2");
    setenv("LOCKSERVICE_LISTEN", "127.0.0.1:80\n80", 1);
    parse_fails_check(PARSE(NULL), "LOCKSERVICE_LISTEN");
}

/* A parse that stopped inside "-xy" must not leak getopt state into the
 * next parse (glibc needs optind = 0 for a full reset). */
static void test_config_reparse_after_cluster(void **state)
{
    (void)state;
    char *argv[] = {(char *)"lockservice", (char *)"-xyz", NULL};
    /* Twice, so that the last call stops mid-cluster whatever state an
     * earlier test left. */
    assert_int_equal(config_parse(&cfg, 2, argv, err, sizeof(err)),
                     CONFIG_ERROR);
    assert_int_equal(config_parse(&cfg, 2, argv, err, sizeof(err)),
                     CONFIG_ERROR);
    assert_int_equal(PARSE("--threads", "3"), CONFIG_OK);
    assert_int_equal(cfg.threads, 3);
    assert_int_equal(PARSE("--version"), CONFIG_EXIT_OK);
}

static void test_config_bad_env(void **state)
{
    (void)state;
    static const struct {
        const char *var;
        const char *value;
    } bad[] = {
        {"LOCKSERVICE_LISTEN", "nope"},
        {"LOCKSERVICE_REDIS_URL", "http://h"},
        {"LOCKSERVICE_THREADS", "0"},
        {"LOCKSERVICE_THREADS", "many"},
        {"LOCKSERVICE_MAX_TTL_MS", "-1"},
        {"LOCKSERVICE_MAX_WAIT_MS", "x"},
        {"LOCKSERVICE_MAX_BODY_BYTES", ""},
        {"LOCKSERVICE_DEMO", "yes please"},
        {"LOCKSERVICE_LOG_LEVEL", "loud"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        clear_env(NULL);
        setenv(bad[i].var, bad[i].value, 1);
        parse_fails_check(PARSE(NULL), bad[i].var);
    }
}

static void test_config_help_version(void **state)
{
    (void)state;
    assert_int_equal(PARSE("--help"), CONFIG_EXIT_OK);
    assert_int_equal(PARSE("--version"), CONFIG_EXIT_OK);
    assert_int_equal(PARSE("--threads", "3", "--help"), CONFIG_EXIT_OK);
}

static void test_config_help_text(void **state)
{
    (void)state;
    char text[16384];
    help_text(text, sizeof(text));
    static const char *const flags[] = {
        "--listen",
        "--redis",
        "--redis-password-file",
        "--threads",
        "--key-prefix",
        "--max-ttl-ms",
        "--max-wait-ms",
        "--handoff-ms",
        "--redis-timeout-ms",
        "--max-body-bytes",
        "--max-json-depth",
        "--max-connections",
        "--idle-timeout-s",
        "--max-waiters",
        "--max-hold-count",
        "--shutdown-timeout-ms",
        "--api-keys-file",
        "--demo",
        "--log-level",
        "--healthcheck",
        "--help",
        "--version",
    };
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (strstr(text, flags[i]) == NULL) {
            print_error("--help does not mention %s\n", flags[i]);
            fail();
        }
    }
    for (size_t i = 0; i < N_ENV; i++) {
        if (strstr(text, env_vars[i]) == NULL) {
            print_error("--help does not mention %s\n", env_vars[i]);
            fail();
        }
    }
}

static void test_config_api_keys_file(void **state)
{
    (void)state;
    char path[] = "/tmp/lockservice-keys-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# keys\n" KEY_A " ci\n" KEY_B "\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    assert_int_equal(PARSE("--api-keys-file", path), CONFIG_OK);
    assert_string_equal(cfg.api_keys_file, path);
    assert_int_equal(cfg.api_key_count, 2);
    assert_string_equal(cfg.api_keys[0].key, KEY_A);
    assert_string_equal(cfg.api_keys[0].name, "ci");

    setenv("LOCKSERVICE_API_KEYS_FILE", path, 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.api_key_count, 2);
    unsetenv("LOCKSERVICE_API_KEYS_FILE");

    /* A key file with a bad key stops startup and names the flag. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    text = KEY_A "\ntooshort\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    PARSE_FAILS("--api-keys-file", "--api-keys-file", path);
    unlink(path);
}

/* ---- the rows ---- */

/* The integer a CONFIG_INT or CONFIG_ENUM row stored in c. */
static int64_t row_int(const struct config *c, const struct config_row *row)
{
    const char *p = (const char *)c + row->offset;
    if (row->size == sizeof(int32_t)) {
        int32_t v;
        memcpy(&v, p, sizeof(v));
        return v;
    }
    int64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* Rows that are a flag only: no variable, no value. */
static bool flag_only(const struct config_row *row)
{
    return strcmp(row->flag, "--healthcheck") == 0 ||
           strcmp(row->flag, "--help") == 0 ||
           strcmp(row->flag, "--version") == 0;
}

/* Every row is complete and consistent: a flag, a variable named after it,
 * help, a default that its own row accepts, and a member that fits. */
static void test_rows_complete(void **state)
{
    (void)state;
    assert_true(config_row_count >= 22);
    for (size_t i = 0; i < config_row_count; i++) {
        const struct config_row *row = &config_rows[i];
        char want[64], buf[32];

        if (row->flag == NULL || strncmp(row->flag, "--", 2) != 0 ||
            row->flag[2] == '\0') {
            print_error("row %zu has no flag\n", i);
            fail();
        }
        if (row->help == NULL || row->help[0] == '\0') {
            print_error("%s has no help\n", row->flag);
            fail();
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(config_rows[j].flag, row->flag) == 0 ||
                (row->env && config_rows[j].env &&
                 strcmp(config_rows[j].env, row->env) == 0)) {
                print_error("%s given twice\n", row->flag);
                fail();
            }
        }
        if (flag_only(row)) {
            assert_null(row->env);
            assert_null(row->arg);
        } else {
            /* LOCKSERVICE_ and the flag in capitals, '-' as '_'; --redis
             * keeps its v1 name. */
            size_t n = (size_t)snprintf(want, sizeof(want), "LOCKSERVICE_");
            for (const char *f = row->flag + 2; *f; f++)
                want[n++] = *f == '-' ? '_' : (char)(*f - 'a' + 'A');
            want[n] = '\0';
            if (strcmp(row->flag, "--redis") == 0)
                snprintf(want, sizeof(want), "LOCKSERVICE_REDIS_URL");
            if (row->env == NULL || strcmp(row->env, want) != 0) {
                print_error("%s: variable %s, want %s\n", row->flag,
                            row->env ? row->env : "(none)", want);
                fail();
            }
        }
        switch (row->type) {
        case CONFIG_INT:
        case CONFIG_ENUM:
            assert_true(row->size == 4 || row->size == 8);
            assert_true(row->offset + row->size <= sizeof(struct config));
            if (row->type == CONFIG_INT) {
                assert_true(0 <= row->min && row->min <= row->max);
                assert_true(row->size == 8 || row->max <= INT32_MAX);
                assert_non_null(row->arg);
            } else {
                assert_non_null(row->names);
                assert_non_null(row->names[0]);
            }
            break;
        case CONFIG_STRING:
            assert_true(row->max >= row->min && row->min >= 0);
            assert_true((size_t)row->max < row->size);
            assert_true(row->offset + row->size <= sizeof(struct config));
            assert_non_null(row->arg);
            break;
        case CONFIG_BOOL:
            assert_int_equal(row->size, sizeof(bool));
            assert_null(row->arg);
            break;
        case CONFIG_CUSTOM:
            assert_non_null(row->parse);
            assert_non_null(row->arg);
            break;
        case CONFIG_EXIT:
            assert_non_null(row->action);
            break;
        }

        const char *def = config_row_default(row, buf, sizeof(buf));
        if (def == NULL) {
            /* Unset by default: the commands, and files to read. */
            if (row->type != CONFIG_EXIT &&
                !(row->type == CONFIG_STRING && row->load != NULL)) {
                print_error("%s has no default\n", row->flag);
                fail();
            }
            continue;
        }
        struct config scratch;
        char why[256] = "";
        memset(&scratch, 0, sizeof(scratch));
        if (config_row_apply(&scratch, row, def, row->flag, why, sizeof(why)) !=
            0) {
            print_error("%s: default '%s' does not parse: %s\n", row->flag, def,
                        why);
            fail();
        }
    }
}

/* The defaults config_parse fills are exactly the rows' defaults. */
static void test_rows_are_the_defaults(void **state)
{
    (void)state;
    static struct config want;
    char why[256];

    memset(&want, 0, sizeof(want));
    for (size_t i = 0; i < config_row_count; i++) {
        char buf[32];
        const char *def = config_row_default(&config_rows[i], buf, sizeof(buf));
        if (def != NULL)
            assert_int_equal(config_row_apply(&want, &config_rows[i], def,
                                              "default", why, sizeof(why)),
                             0);
    }
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_memory_equal(&cfg, &want, sizeof(want));
}

/* Each integer row takes its bounds from the flag and from its variable
 * and refuses one past either, naming the flag or variable. */
static void test_rows_int_ranges(void **state)
{
    (void)state;
    for (size_t i = 0; i < config_row_count; i++) {
        const struct config_row *row = &config_rows[i];
        char lo[32], hi[32], below[32], above[32];

        if (row->type != CONFIG_INT)
            continue;
        snprintf(lo, sizeof(lo), "%lld", (long long)row->min);
        snprintf(hi, sizeof(hi), "%lld", (long long)row->max);
        snprintf(below, sizeof(below), "%lld", (long long)row->min - 1);
        snprintf(above, sizeof(above), "%lld", (long long)row->max + 1);

        assert_int_equal(PARSE(row->flag, lo), CONFIG_OK);
        assert_int_equal(row_int(&cfg, row), row->min);
        assert_int_equal(PARSE(row->flag, hi), CONFIG_OK);
        assert_int_equal(row_int(&cfg, row), row->max);
        PARSE_FAILS(row->flag, row->flag, below);
        PARSE_FAILS(row->flag, row->flag, above);

        setenv(row->env, hi, 1);
        assert_int_equal(PARSE(NULL), CONFIG_OK);
        assert_int_equal(row_int(&cfg, row), row->max);
        setenv(row->env, above, 1);
        parse_fails_check(PARSE(NULL), row->env);
        unsetenv(row->env);
    }
}

/* Each allowed value of an enum row is stored as its index. */
static void test_rows_enums(void **state)
{
    (void)state;
    for (size_t i = 0; i < config_row_count; i++) {
        const struct config_row *row = &config_rows[i];
        if (row->type != CONFIG_ENUM)
            continue;
        for (size_t k = 0; row->names[k] != NULL; k++) {
            assert_int_equal(PARSE(row->flag, row->names[k]), CONFIG_OK);
            assert_int_equal(row_int(&cfg, row), (int64_t)k);
        }
        PARSE_FAILS(row->flag, row->flag, "no-such-value");
        /* The error lists the allowed values. */
        assert_non_null(strstr(err, row->names[0]));
    }
}

/* --help is made from the rows: every flag with its value name, variable,
 * range and default, in lines of at most 79 columns. */
static void test_help_lists_every_row(void **state)
{
    (void)state;
    char text[16384];
    help_text(text, sizeof(text));

    for (size_t i = 0; i < config_row_count; i++) {
        const struct config_row *row = &config_rows[i];
        char want[160];

        snprintf(want, sizeof(want), "  %s%s%s ", row->flag,
                 row->arg ? " " : "", row->arg ? row->arg : "");
        if (strstr(text, want) == NULL) {
            print_error("--help does not list '%s'\n", want);
            fail();
        }
        if (row->env != NULL) {
            snprintf(want, sizeof(want), "env: %s\n", row->env);
            if (strstr(text, want) == NULL) {
                print_error("--help does not name %s\n", row->env);
                fail();
            }
        }
        if (row->type == CONFIG_BOOL && row->env != NULL) {
            snprintf(want, sizeof(want), "default %s",
                     strcmp(row->def, "1") == 0 ? "on" : "off");
            if (strstr(text, want) == NULL) {
                print_error("--help does not give %s's default\n", row->flag);
                fail();
            }
        } else if (row->def != NULL && row->type != CONFIG_BOOL) {
            snprintf(want, sizeof(want), "default %s", row->def);
            if (strstr(text, want) == NULL) {
                print_error("--help does not give %s's default %s\n", row->flag,
                            row->def);
                fail();
            }
        }
        if (row->type == CONFIG_INT) {
            snprintf(want, sizeof(want), "(%lld..%lld;", (long long)row->min,
                     (long long)row->max);
            if (strstr(text, want) == NULL) {
                print_error("--help does not give %s's range %s\n", row->flag,
                            want);
                fail();
            }
        }
    }
    for (const char *line = text; *line;) {
        size_t n = strcspn(line, "\n");
        if (n > 79) {
            print_error("--help line longer than 79: %.*s\n", (int)n, line);
            fail();
        }
        line += n + (line[n] == '\n');
    }
    assert_non_null(strstr(text, "LOCKSERVICE_* variable that is no setting"));
}

/* README's Configuration table has one line per row, with its variable,
 * default and range (run from the repository root; skipped elsewhere). */
static void test_readme_lists_every_row(void **state)
{
    (void)state;
    static char text[1 << 17];
    FILE *f = fopen("README.md", "r");
    if (f == NULL) {
        skip();
        return;
    }
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    char *section = strstr(text, "\n## Configuration\n");
    assert_non_null(section);
    char *end = strstr(section + 1, "\n## ");
    if (end != NULL)
        *end = '\0';

    for (size_t i = 0; i < config_row_count; i++) {
        const struct config_row *row = &config_rows[i];
        char head[96], want[96];
        if (row->type == CONFIG_EXIT)
            continue;
        snprintf(head, sizeof(head), "\n| `%s%s%s` |", row->flag,
                 row->arg ? " " : "", row->arg ? row->arg : "");
        char *line = strstr(section, head);
        if (line == NULL) {
            print_error("README's table has no line for %s\n", head + 1);
            fail();
        }
        assert_null(strstr(line + 1, head)); /* one line per setting */
        char *eol = strchr(line + 1, '\n');
        if (eol != NULL)
            *eol = '\0';
        const char *def = row->def;
        if (row->type == CONFIG_BOOL)
            def = row->env ? (strcmp(row->def, "1") == 0 ? "on" : "off") : NULL;
        else if (def == NULL)
            def = "none";
        const char *need[3] = {row->env, def, NULL};
        if (row->type == CONFIG_INT) {
            snprintf(want, sizeof(want), "%lld..%lld", (long long)row->min,
                     (long long)row->max);
            need[2] = want;
        }
        for (int k = 0; k < 3; k++) {
            if (need[k] != NULL && strstr(line, need[k]) == NULL) {
                print_error("README's line for %s lacks %s\n", row->flag,
                            need[k]);
                fail();
            }
        }
        if (eol != NULL)
            *eol = '\n';
    }
}

/* ---- unknown LOCKSERVICE_* variables ---- */

static bool warned_about(const char *needle)
{
    for (unsigned i = 0; i < cfg.warning_count; i++)
        if (strstr(cfg.warnings[i], needle) != NULL)
            return true;
    return false;
}

static void test_unknown_env_warns(void **state)
{
    (void)state;
    /* A misspelt LOCKSERVICE_REDIS_URL, its value a secret. */
    setenv("LOCKSERVICE_REDIS", "redis://:WARN-S3CRET@elsewhere:7000", 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.warning_count, 1);
    assert_non_null(strstr(cfg.warnings[0], "LOCKSERVICE_REDIS "));
    assert_non_null(
        strstr(cfg.warnings[0], "did you mean LOCKSERVICE_REDIS_URL"));
    assert_null(strstr(cfg.warnings[0], "S3CRET"));
    assert_null(strstr(cfg.warnings[0], "elsewhere"));
    assert_null(strchr(cfg.warnings[0], '\n'));
    /* Ignored, not applied. */
    assert_string_equal(cfg.redis.host, "127.0.0.1");
    unsetenv("LOCKSERVICE_REDIS");

    static const struct {
        const char *var, *suggestion;
    } near[] = {
        {"LOCKSERVICE_THREAD", "LOCKSERVICE_THREADS"},
        {"LOCKSERVICE_MAX_TTL", "LOCKSERVICE_MAX_TTL_MS"},
        {"LOCKSERVICE_max_ttl_ms", "LOCKSERVICE_MAX_TTL_MS"},
        {"LOCKSERVICE_LOGLEVEL", "LOCKSERVICE_LOG_LEVEL"},
        {"LOCKSERVICE_REDIS_PASSWORD", "LOCKSERVICE_REDIS_PASSWORD_FILE"},
        {"LOCKSERVICE_API_KEYS", "LOCKSERVICE_API_KEYS_FILE"},
        {"LOCKSERVICE_DEMO_MODE", "LOCKSERVICE_DEMO"},
    };
    for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
        char want[128];
        clear_env(NULL);
        setenv(near[i].var, "1", 1);
        assert_int_equal(PARSE(NULL), CONFIG_OK);
        assert_int_equal(cfg.warning_count, 1);
        snprintf(want, sizeof(want), "did you mean %s?", near[i].suggestion);
        if (strstr(cfg.warnings[0], near[i].var) == NULL ||
            strstr(cfg.warnings[0], want) == NULL) {
            print_error("%s: warning \"%s\" lacks \"%s\"\n", near[i].var,
                        cfg.warnings[0], want);
            fail();
        }
    }

    /* Nothing close: no suggestion. */
    clear_env(NULL);
    setenv("LOCKSERVICE_ZQXWV", "1", 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.warning_count, 1);
    assert_non_null(strstr(cfg.warnings[0], "LOCKSERVICE_ZQXWV"));
    assert_null(strstr(cfg.warnings[0], "did you mean"));

    /* A bad value of a real setting is still the error it was. */
    setenv("LOCKSERVICE_THREADS", "0", 1);
    parse_fails_check(PARSE(NULL), "LOCKSERVICE_THREADS");
}

static void test_known_env_does_not_warn(void **state)
{
    (void)state;
    for (size_t i = 0; i < config_row_count; i++) {
        const struct config_row *row = &config_rows[i];
        char buf[32];
        const char *def = config_row_default(row, buf, sizeof(buf));
        if (row->env != NULL && def != NULL)
            setenv(row->env, def, 1);
    }
    /* Not LOCKSERVICE_*: none of ours. */
    setenv("LOCKSERVICEX", "1", 1);
    setenv("lockservice_threads", "1", 1);
    setenv("MY_LOCKSERVICE_THREADS", "1", 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.warning_count, 0);
    unsetenv("LOCKSERVICEX");
    unsetenv("lockservice_threads");
    unsetenv("MY_LOCKSERVICE_THREADS");

    /* A warning does not outlive the variable: the next parse starts
     * afresh. */
    setenv("LOCKSERVICE_NOPE", "1", 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.warning_count, 1);
    unsetenv("LOCKSERVICE_NOPE");
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.warning_count, 0);
}

/* Past CONFIG_WARNINGS_MAX, the last line counts the rest; odd names stay
 * one bounded line. */
static void test_unknown_env_many_and_odd(void **state)
{
    (void)state;
    char name[300];

    for (int i = 0; i < CONFIG_WARNINGS_MAX + 3; i++) {
        snprintf(name, sizeof(name), "LOCKSERVICE_UNKNOWN_%02d", i);
        setenv(name, "x", 1);
    }
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.warning_count, CONFIG_WARNINGS_MAX);
    assert_non_null(
        strstr(cfg.warnings[CONFIG_WARNINGS_MAX - 1], "4 more LOCKSERVICE_"));
    clear_env(NULL);

    memset(name, 'N', sizeof(name) - 1);
    memcpy(name, "LOCKSERVICE_", 12);
    name[sizeof(name) - 1] = '\0';
    setenv(name, "x", 1);
    setenv("LOCKSERVICE_LINE\nBREAK", "x", 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_int_equal(cfg.warning_count, 2);
    for (unsigned i = 0; i < cfg.warning_count; i++) {
        assert_true(strlen(cfg.warnings[i]) < CONFIG_WARNING_LEN);
        assert_null(strchr(cfg.warnings[i], '\n'));
    }
    assert_true(warned_about("NNN..."));
    assert_true(warned_about("LOCKSERVICE_LINE?BREAK"));
}

/* ---- --redis-password-file ---- */

#define FILE_SECRET "fi/e@pw:100%"

static void test_password_file(void **state)
{
    (void)state;
    char path[] = "/tmp/lockservice-pw-XXXXXX";
    write_file(path, FILE_SECRET "\n", strlen(FILE_SECRET) + 1);

    assert_int_equal(PARSE("--redis-password-file", path), CONFIG_OK);
    assert_string_equal(cfg.redis.password, FILE_SECRET);
    assert_string_equal(cfg.redis_password_file, path);
    assert_string_equal(cfg.redis.host, "127.0.0.1");

    /* It overrides the URL's password whatever the order, and keeps the
     * URL's user, host, port and db. */
    assert_int_equal(PARSE("--redis-password-file", path, "--redis",
                           "redis://alice:urlpw@h:7000/2"),
                     CONFIG_OK);
    assert_string_equal(cfg.redis.password, FILE_SECRET);
    assert_string_equal(cfg.redis.user, "alice");
    assert_string_equal(cfg.redis.host, "h");
    assert_int_equal(cfg.redis.port, 7000);
    assert_int_equal(cfg.redis.db, 2);
    assert_int_equal(PARSE("--redis", "unix:///tmp/r.sock?password=urlpw",
                           "--redis-password-file", path),
                     CONFIG_OK);
    assert_string_equal(cfg.redis.password, FILE_SECRET);

    /* From the environment, and over a URL from the environment. */
    setenv("LOCKSERVICE_REDIS_PASSWORD_FILE", path, 1);
    setenv("LOCKSERVICE_REDIS_URL", "redis://:urlpw@envhost", 1);
    assert_int_equal(PARSE(NULL), CONFIG_OK);
    assert_string_equal(cfg.redis.password, FILE_SECRET);
    assert_string_equal(cfg.redis.host, "envhost");
    assert_int_equal(cfg.warning_count, 0);
    unsetenv("LOCKSERVICE_REDIS_URL");
    unsetenv("LOCKSERVICE_REDIS_PASSWORD_FILE");

    /* Without it the URL's password stays. */
    assert_int_equal(PARSE("--redis", "redis://:urlpw@h"), CONFIG_OK);
    assert_string_equal(cfg.redis.password, "urlpw");
    assert_string_equal(cfg.redis_password_file, "");
    unlink(path);
}

static void test_password_file_line_endings(void **state)
{
    (void)state;
    static const struct {
        const char *content, *password;
    } ok[] = {
        {"pw\n", "pw"},       {"pw\r\n", "pw"},
        {"pw", "pw"},         {" pw \n", " pw "}, /* only the newline goes */
        {"p%2Fw\n", "p%2Fw"}, /* taken as it is, not decoded */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char path[] = "/tmp/lockservice-pw-XXXXXX";
        write_file(path, ok[i].content, strlen(ok[i].content));
        assert_int_equal(PARSE("--redis-password-file", path), CONFIG_OK);
        assert_string_equal(cfg.redis.password, ok[i].password);
        unlink(path);
    }

    /* REDIS_SECRET_MAX - 1 bytes fit, with or without a newline; one more
     * does not. */
    char text[REDIS_SECRET_MAX + 2];
    char path[] = "/tmp/lockservice-pw-XXXXXX";
    memset(text, 'k', sizeof(text));
    text[REDIS_SECRET_MAX - 1] = '\n';
    write_file(path, text, REDIS_SECRET_MAX);
    assert_int_equal(PARSE("--redis-password-file", path), CONFIG_OK);
    assert_int_equal(strlen(cfg.redis.password), REDIS_SECRET_MAX - 1);
    unlink(path);
    char path2[] = "/tmp/lockservice-pw-XXXXXX";
    write_file(path2, text, REDIS_SECRET_MAX - 1);
    assert_int_equal(PARSE("--redis-password-file", path2), CONFIG_OK);
    assert_int_equal(strlen(cfg.redis.password), REDIS_SECRET_MAX - 1);
    unlink(path2);
    char path3[] = "/tmp/lockservice-pw-XXXXXX";
    write_file(path3, text, REDIS_SECRET_MAX + 2);
    PARSE_FAILS("--redis-password-file", "--redis-password-file", path3);
    unlink(path3);
    char path4[] = "/tmp/lockservice-pw-XXXXXX";
    memset(text, 'k', sizeof(text));
    write_file(path4, text, REDIS_SECRET_MAX);
    PARSE_FAILS("--redis-password-file", "--redis-password-file", path4);
    assert_non_null(strstr(err, "longer"));
    unlink(path4);
}

/* Each refusal names the setting and the file, never what the file
 * holds. */
static void test_password_file_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",                           /* empty */
        "\n",                         /* only the newline */
        "\r\n",                       /* only the newline */
        "F1LE-S3CRET\nsecond line\n", /* two lines */
        "F1LE-S3CRET\n\n",            /* a blank second line */
        "F1LE-S3CRET\rx",             /* a CR inside */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[] = "/tmp/lockservice-pw-XXXXXX";
        write_file(path, bad[i], strlen(bad[i]));
        PARSE_FAILS("--redis-password-file", "--redis-password-file", path);
        assert_non_null(strstr(err, path));
        assert_null(strstr(err, "S3CRET"));
        unlink(path);
    }
    char path[] = "/tmp/lockservice-pw-XXXXXX";
    write_file(path, "F1LE-S3CRET\0x\n", 14);
    PARSE_FAILS("--redis-password-file", "--redis-password-file", path);
    assert_null(strstr(err, "S3CRET"));
    unlink(path);

    PARSE_FAILS("--redis-password-file", "--redis-password-file", "");
    PARSE_FAILS("--redis-password-file", "--redis-password-file",
                "/nonexistent/lockservice-password");
    PARSE_FAILS("--redis-password-file", "--redis-password-file", "/tmp");
    PARSE_FAILS("--redis-password-file", "--redis-password-file");

    /* Unreadable (root reads everything, so only as another user). */
    if (geteuid() != 0) {
        char locked[] = "/tmp/lockservice-pw-XXXXXX";
        write_file(locked, "pw\n", 3);
        assert_int_equal(chmod(locked, 0), 0);
        PARSE_FAILS("--redis-password-file", "--redis-password-file", locked);
        unlink(locked);
    }

    /* Given by the variable, the error names the variable. */
    setenv("LOCKSERVICE_REDIS_PASSWORD_FILE", "/nonexistent/pw", 1);
    parse_fails_check(PARSE(NULL), "LOCKSERVICE_REDIS_PASSWORD_FILE");
    setenv("LOCKSERVICE_REDIS_PASSWORD_FILE", "", 1);
    parse_fails_check(PARSE(NULL), "LOCKSERVICE_REDIS_PASSWORD_FILE");
}

/* Neither a password from the URL nor one from the file shows in --help or
 * in the error of another setting. */
static void test_password_not_printed(void **state)
{
    (void)state;
    char path[] = "/tmp/lockservice-pw-XXXXXX";
    write_file(path, "F1LE-S3CRET\n", 12);
    setenv("LOCKSERVICE_REDIS_URL", "redis://:URL-S3CRET@h", 1);
    setenv("LOCKSERVICE_REDIS_PASSWORD_FILE", path, 1);

    char text[16384];
    help_text(text, sizeof(text));
    assert_null(strstr(text, "S3CRET"));

    PARSE_FAILS("--threads", "--threads", "0");
    assert_null(strstr(err, "S3CRET"));
    /* An unknown option's value is left out of its error. */
    PARSE_FAILS("--redis-passwd", "--redis-passwd=URL-S3CRET");
    assert_null(strstr(err, "S3CRET"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_url_tcp),
        cmocka_unit_test(test_redis_url_sentinel),
        cmocka_unit_test(test_redis_url_cluster),
        cmocka_unit_test(test_redis_url_credentials),
        cmocka_unit_test(test_redis_url_ipv6),
        cmocka_unit_test(test_redis_url_unix),
        cmocka_unit_test(test_redis_url_rejects),
        cmocka_unit_test(test_redis_url_overlong),
        cmocka_unit_test_setup(test_redis_url_percent_decoding, clear_env),
        cmocka_unit_test_setup(test_redis_url_bad_escapes, clear_env),
        cmocka_unit_test(test_redis_url_decoded_length),
        cmocka_unit_test(test_listen_addr),
        cmocka_unit_test(test_listen_addr_rejects),
        cmocka_unit_test(test_listen_addr_small_buffer),
        cmocka_unit_test(test_api_keys),
        cmocka_unit_test(test_api_keys_crlf_and_no_final_newline),
        cmocka_unit_test(test_api_keys_lengths),
        cmocka_unit_test(test_api_keys_rejects),
        cmocka_unit_test(test_api_keys_count_limit),
        cmocka_unit_test(test_api_keys_reparse),
        cmocka_unit_test(test_api_keys_v1_defaults),
        cmocka_unit_test(test_api_keys_attributes),
        cmocka_unit_test(test_api_keys_attribute_rejects),
        cmocka_unit_test(test_api_keys_load),
        cmocka_unit_test_setup(test_config_defaults, clear_env),
        cmocka_unit_test_setup(test_config_each_flag, clear_env),
        cmocka_unit_test_setup(test_config_flag_forms, clear_env),
        cmocka_unit_test_setup(test_config_reparse, clear_env),
        cmocka_unit_test_setup(test_config_env, clear_env),
        cmocka_unit_test_setup(test_config_flag_beats_env, clear_env),
        cmocka_unit_test_setup(test_config_bad_flags, clear_env),
        cmocka_unit_test_setup(test_config_bad_usage, clear_env),
        cmocka_unit_test_setup(test_config_bad_env, clear_env),
        cmocka_unit_test_setup(test_config_help_version, clear_env),
        cmocka_unit_test_setup(test_config_help_text, clear_env),
        cmocka_unit_test_setup(test_config_api_keys_file, clear_env),
        cmocka_unit_test_setup(test_config_error_one_line, clear_env),
        cmocka_unit_test_setup(test_rows_complete, clear_env),
        cmocka_unit_test_setup(test_rows_are_the_defaults, clear_env),
        cmocka_unit_test_setup(test_rows_int_ranges, clear_env),
        cmocka_unit_test_setup(test_rows_enums, clear_env),
        cmocka_unit_test_setup(test_help_lists_every_row, clear_env),
        cmocka_unit_test(test_readme_lists_every_row),
        cmocka_unit_test_setup(test_unknown_env_warns, clear_env),
        cmocka_unit_test_setup(test_known_env_does_not_warn, clear_env),
        cmocka_unit_test_setup(test_unknown_env_many_and_odd, clear_env),
        cmocka_unit_test_setup(test_password_file, clear_env),
        cmocka_unit_test_setup(test_password_file_line_endings, clear_env),
        cmocka_unit_test_setup(test_password_file_errors, clear_env),
        cmocka_unit_test_setup(test_password_not_printed, clear_env),
        /* Last: they leave getopt mid-argument if config.c resets it with
         * optind = 1. */
        cmocka_unit_test_setup(test_config_bad_short_cluster, clear_env),
        cmocka_unit_test_setup(test_config_reparse_after_cluster, clear_env),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, clear_env);
}
