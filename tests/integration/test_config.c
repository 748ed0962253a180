/* test_config.c -- flags and environment variables: --help, --version, bad
 * values (exit 2, one line naming the flag), flag over environment, Redis
 * URLs (TCP with password and db number, unix socket with db and password,
 * percent-encoded passwords), --redis-password-file (kept out of
 * /proc/PID/cmdline), unknown LOCKSERVICE_* variables (a warning), key
 * prefix, listen addresses (a port in use, IPv6), limits and
 * --healthcheck. */
#include "harness.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct redis_proc redis;

/* Drops one trailing newline so that s fits in a TAP description. */
static const char *chomp(char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 0 && s[n - 1] == '\n')
        s[n - 1] = '\0';
    return s ? s : "";
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_help_version(void)
{
    char *out = NULL, *err = NULL;
    const char *help[] = {"--help", NULL};
    int st = svc_run(help, NULL, &out, &err, 5000);
    t_ok(st == 0, "--help exits 0 (%d)", st);
    const char *flags[] = {
        "--listen",           "--redis",         "--threads",
        "--key-prefix",       "--max-ttl-ms",    "--max-wait-ms",
        "--redis-timeout-ms", "--api-keys-file", "--demo",
        "--log-level",        "--version",       NULL};
    bool all = out != NULL;
    for (int i = 0; all && flags[i]; i++)
        if (!strstr(out, flags[i])) {
            all = false;
            t_diag("--help does not mention %s", flags[i]);
        }
    t_ok(all, "--help on stdout lists the flags");
    free(out);
    free(err);

    const char *version[] = {"--version", NULL};
    st = svc_run(version, NULL, &out, &err, 5000);
    bool one_line = st == 0 && out && strstr(out, "lockservice") &&
                    strpbrk(out, "0123456789") && count_lines(out) == 1;
    t_ok(one_line,
         "--version exits 0 with one line naming lockservice (%d: %s)", st,
         chomp(out));
    free(out);
    free(err);
}

static void test_bad_values(void)
{
    struct {
        const char *flag, *value, *needle;
    } cases[] = {
        {"--threads", "0", "--threads"},
        {"--threads", "257", "--threads"},
        {"--threads", "two", "--threads"},
        {"--threads", "4x", "--threads"},
        {"--listen", "nonsense", "--listen"},
        {"--listen", "127.0.0.1:99999", "--listen"},
        {"--listen", "127.0.0.1:", "--listen"},
        {"--redis", "http://127.0.0.1:6379", "--redis"},
        {"--redis", "redis://127.0.0.1:notaport", "--redis"},
        {"--redis", "redis://127.0.0.1:6379/notadb", "--redis"},
        {"--redis", "redis://127.0.0.1:6379/-1", "--redis"},
        {"--max-ttl-ms", "-5", "--max-ttl-ms"},
        {"--max-ttl-ms", "0", "--max-ttl-ms"},
        {"--max-wait-ms", "lots", "--max-wait-ms"},
        {"--handoff-ms", "20000", "--handoff-ms"},
        {"--redis-timeout-ms", "0", "--redis-timeout-ms"},
        {"--max-body-bytes", "-1", "--max-body-bytes"},
        {"--max-waiters", "x", "--max-waiters"},
        {"--max-hold-count", "0", "--max-hold-count"},
        {"--log-level", "loud", "--log-level"},
        {"--key-prefix",
         "an-overly-long-key-prefix-that-goes-on-and-on-and-on-past-64-chars:",
         "--key-prefix"},
        {"--api-keys-file", "/nonexistent/keys", "--api-keys-file"},
        {"--bogus-flag", NULL, "--bogus-flag"},
        {"--threads", NULL, "--threads"}, /* value missing */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {cases[i].flag, cases[i].value, NULL};
        char *out = NULL, *err = NULL;
        double t0 = now_ms();
        int st = svc_run(args, NULL, &out, &err, 5000);
        double took = now_ms() - t0;
        bool ok = st == 2 && err && count_lines(err) == 1 &&
                  strstr(err, cases[i].needle) && took < 3000 * time_scale();
        t_ok(ok, "%s %s -> exit 2 and one stderr line naming it (%d: %s)",
             cases[i].flag, cases[i].value ? cases[i].value : "(missing)", st,
             chomp(err));
        free(out);
        free(err);
    }

    struct {
        const char *env, *needle;
    } envs[] = {
        {"LOCKSERVICE_THREADS=abc", "LOCKSERVICE_THREADS"},
        {"LOCKSERVICE_LISTEN=nowhere", "LOCKSERVICE_LISTEN"},
        {"LOCKSERVICE_REDIS_URL=ftp://x", "LOCKSERVICE_REDIS_URL"},
        {"LOCKSERVICE_MAX_TTL_MS=-1", "LOCKSERVICE_MAX_TTL_MS"},
        {"LOCKSERVICE_LOG_LEVEL=chatty", "LOCKSERVICE_LOG_LEVEL"},
    };
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        const char *env[] = {envs[i].env, NULL};
        char *err = NULL;
        int st = svc_run(NULL, env, NULL, &err, 5000);
        bool ok = st == 2 && err && count_lines(err) == 1 &&
                  strstr(err, envs[i].needle);
        t_ok(ok, "%s -> exit 2 and one line naming the variable (%d: %s)",
             envs[i].env, st, chomp(err));
        free(err);
    }
}

/* Acquires a lock through s; returns the HTTP status. */
static long acquire(const struct svc_proc *s, const char *name)
{
    struct http_resp r;
    char path[128];
    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    http(&r, s->url, "POST", path, "{}", NULL);
    long st = r.status;
    if (st != 200)
        t_diag("acquire %s -> %ld %s", name, st, r.body);
    http_resp_free(&r);
    return st;
}

/* True when some key of database db on r contains needle. */
static bool key_in_db(const struct redis_proc *r, int db, const char *needle)
{
    char args[64];
    snprintf(args, sizeof args, "-n %d --scan", db);
    char *keys = redis_cli(r, args);
    bool found = keys && strstr(keys, needle);
    free(keys);
    return found;
}

static void test_prefix_and_env(void)
{
    struct svc_proc s;
    const char *flag[] = {"--key-prefix", "flagpfx:", NULL};
    const char *env[] = {"LOCKSERVICE_KEY_PREFIX=envpfx:", NULL};

    if (t_ok(svc_start_env(&s, &redis, NULL, env) == 0,
             "LOCKSERVICE_KEY_PREFIX=envpfx: starts")) {
        t_ok(acquire(&s, "pfx-env") == 200 && key_in_db(&redis, 0, "envpfx:"),
             "keys go under the prefix from the environment");
        svc_stop(&s);
    }
    if (t_ok(svc_start_env(&s, &redis, flag, env) == 0,
             "--key-prefix flagpfx: with LOCKSERVICE_KEY_PREFIX=envpfx:")) {
        acquire(&s, "pfx-flag");
        char *keys = redis_cli(&redis, "--scan");
        bool flag_used =
            keys && strstr(keys, "flagpfx:") && strstr(keys, "pfx-flag");
        bool env_used = false;
        for (char *k = keys, *nl; k && *k; k = nl ? nl + 1 : NULL) {
            nl = strchr(k, '\n');
            if (nl)
                *nl = '\0';
            if (strstr(k, "envpfx:") && strstr(k, "pfx-flag"))
                env_used = true;
        }
        free(keys);
        t_ok(flag_used && !env_used, "the flag wins over the environment");
        svc_stop(&s);
    }

    int port = free_port();
    char listen[64];
    snprintf(listen, sizeof listen, "LOCKSERVICE_LISTEN=127.0.0.1:%d", port);
    const char *env_listen[] = {listen, NULL};
    if (t_ok(svc_start_env(&s, &redis, NULL, env_listen) == 0 && s.port == port,
             "LOCKSERVICE_LISTEN=127.0.0.1:%d is where it listens", port)) {
        /* --healthcheck probes the address it is given. */
        char addr[64];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
        const char *hc[] = {"--healthcheck", "--listen", addr, NULL};
        t_ok(svc_run(hc, NULL, NULL, NULL, 5000) == 0,
             "--healthcheck against a live service exits 0");
        const char *hc_env[] = {"--healthcheck", NULL};
        t_ok(svc_run(hc_env, env_listen, NULL, NULL, 5000) == 0,
             "--healthcheck takes the address from LOCKSERVICE_LISTEN");
        svc_stop(&s);
        t_ok(svc_run(hc, NULL, NULL, NULL, 5000) == 1,
             "--healthcheck against a stopped service exits 1");
    }

    const char *bad_env_good_flag[] = {"LOCKSERVICE_LOG_LEVEL=debug", NULL};
    const char *lvl[] = {"--log-level", "error", NULL};
    if (t_ok(svc_start_env(&s, &redis, lvl, bad_env_good_flag) == 0,
             "--log-level error over LOCKSERVICE_LOG_LEVEL=debug starts")) {
        acquire(&s, "quiet-log");
        acquire(&s, "quiet-log");
        svc_stop(&s);
        FILE *f = fopen(s.log, "r");
        int lines = 0;
        char buf[2048];
        while (f && fgets(buf, sizeof buf, f))
            lines += strncmp(buf, "# harness:", 10) != 0;
        if (f)
            fclose(f);
        t_ok(lines == 0, "--log-level error logs no request lines (%d lines)",
             lines);
    }
}

/* True when this machine can listen on [::1] (a container may have no IPv6
 * loopback). */
static bool ipv6_loopback(void)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                             .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

static void test_listen_addresses(void)
{
    struct svc_proc s, other;
    char listen[64], addr[64];
    char *err = NULL;
    int port = free_port(), st;

    /* A port already taken: a clear error naming it, exit status 1. */
    if (t_ok(svc_start(&s, &redis, NULL) == 0, "a service starts")) {
        snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
        const char *clash[] = {"--listen", addr, NULL};
        st = svc_run(clash, NULL, NULL, &err, 10000);
        t_ok(st == 1 && err && strstr(err, "cannot listen on") &&
                 strstr(err, addr) && strstr(err, "in use"),
             "a second service on its port exits 1 saying why (%d: %s)", st,
             chomp(err));
        free(err);
        err = NULL;
        t_ok(acquire(&s, "listen-clash") == 200,
             "and the first one keeps serving");
        svc_stop(&s);
    }

    if (!ipv6_loopback()) {
        t_skip("no IPv6 loopback here", "--listen [::1]:PORT serves IPv6");
        return;
    }
    snprintf(listen, sizeof listen, "LOCKSERVICE_LISTEN=[::1]:%d", port);
    const char *env6[] = {listen, NULL};
    if (!t_ok(svc_start_env(&s, &redis, NULL, env6) == 0,
              "LOCKSERVICE_LISTEN=[::1]:%d starts and answers over IPv6", port))
        return;
    t_ok(acquire(&s, "listen-v6") == 200, "a lock is acquired over IPv6");
    /* IPv6 only: the same port on 127.0.0.1 is free for another service. */
    snprintf(listen, sizeof listen, "LOCKSERVICE_LISTEN=127.0.0.1:%d", port);
    const char *env4[] = {listen, NULL};
    if (t_ok(svc_start_env(&other, &redis, NULL, env4) == 0,
             "127.0.0.1:%d is still free for another service (IPv6 only)",
             port))
        svc_stop(&other);
    snprintf(addr, sizeof addr, "[::1]:%d", port);
    const char *hc[] = {"--healthcheck", "--listen", addr, NULL};
    t_ok(svc_run(hc, NULL, NULL, NULL, 5000) == 0,
         "--healthcheck --listen [::1]:PORT exits 0");
    svc_stop(&s);
}

static void test_redis_urls(void)
{
    struct svc_proc s;
    char url[512];

    snprintf(url, sizeof url, "redis://127.0.0.1:%d/5", redis.port);
    const char *db5[] = {"--redis", url, NULL};
    if (t_ok(svc_start(&s, NULL, db5) == 0, "--redis %s starts", url)) {
        t_ok(acquire(&s, "in-db-5") == 200, "acquire through db 5 -> 200");
        t_ok(key_in_db(&redis, 5, "in-db-5") &&
                 !key_in_db(&redis, 0, "in-db-5"),
             "its keys are in database 5, not 0");
        svc_stop(&s);
    }

    struct redis_proc sock;
    if (!t_ok(redis_start(&sock, "--unixsocket {dir}/redis.sock "
                                 "--unixsocketperm 700 --requirepass "
                                 "s3cret-Pass") == 0,
              "redis-server with a unix socket and requirepass"))
        return;

    snprintf(url, sizeof url, "redis://:s3cret-Pass@127.0.0.1:%d/2", sock.port);
    const char *pw[] = {"--redis", url, NULL};
    if (t_ok(svc_start(&s, NULL, pw) == 0, "--redis with a password starts")) {
        t_ok(acquire(&s, "with-password") == 200,
             "acquire with the right password -> 200");
        t_ok(key_in_db(&sock, 2, "with-password"),
             "password URL with /2 uses database 2");
        struct http_resp r;
        http(&r, s.url, "GET", "/readyz", NULL, NULL);
        t_ok(r.status == 200, "/readyz 200 with the right password");
        http_resp_free(&r);
        svc_stop(&s);
    }

    snprintf(url, sizeof url, "redis://:wrong-pass@127.0.0.1:%d", sock.port);
    const char *wrong[] = {"--redis", url, "--redis-timeout-ms", "500", NULL};
    if (t_ok(svc_start(&s, NULL, wrong) == 0,
             "--redis with a wrong password starts (Redis is lazy)")) {
        struct http_resp r;
        http(&r, s.url, "POST", "/v1/locks/denied/acquire", "{}", NULL);
        t_ok(problem_is(&r, 503, "backend_unavailable"),
             "acquire with a wrong Redis password -> 503");
        http_resp_free(&r);
        http(&r, s.url, "GET", "/readyz", NULL, NULL);
        t_ok(r.status == 503, "/readyz 503 with a wrong password");
        http_resp_free(&r);
        FILE *f = fopen(s.log, "r");
        bool leaked = false;
        char buf[2048];
        while (f && fgets(buf, sizeof buf, f))
            if (strncmp(buf, "# harness:", 10) != 0 &&
                strstr(buf, "wrong-pass"))
                leaked = true;
        if (f)
            fclose(f);
        t_ok(!leaked, "the Redis password is not logged");
        svc_stop(&s);
    }

    snprintf(url, sizeof url, "unix://%s/redis.sock?db=3&password=s3cret-Pass",
             sock.dir);
    const char *ux[] = {"--redis", url, NULL};
    if (t_ok(svc_start(&s, NULL, ux) == 0, "--redis %s starts", url)) {
        t_ok(acquire(&s, "over-unix") == 200,
             "acquire over the unix socket -> 200");
        t_ok(key_in_db(&sock, 3, "over-unix"), "unix URL ?db=3 uses db 3");
        svc_stop(&s);
    }
    redis_stop(&sock);

    struct redis_proc plain;
    if (t_ok(redis_start(&plain, "--unixsocket {dir}/r.sock") == 0,
             "redis-server with a unix socket, no password")) {
        snprintf(url, sizeof url, "unix://%s/r.sock", plain.dir);
        const char *ux2[] = {"--redis", url, NULL};
        if (t_ok(svc_start(&s, NULL, ux2) == 0, "--redis %s starts", url)) {
            t_ok(acquire(&s, "plain-unix") == 200 &&
                     key_in_db(&plain, 0, "plain-unix"),
                 "unix socket URL without options uses db 0");
            svc_stop(&s);
        }
        redis_stop(&plain);
    }
}

static void test_limit_flags(void)
{
    struct svc_proc s;
    const char *args[] = {
        "--max-ttl-ms", "5000", "--max-wait-ms", "1000", "--max-body-bytes",
        "100",          NULL};
    if (!t_ok(svc_start(&s, &redis, args) == 0,
              "--max-ttl-ms 5000 --max-wait-ms 1000 --max-body-bytes 100"))
        return;
    struct http_resp r;
    http(&r, s.url, "POST", "/v1/locks/lim/acquire", "{\"ttl_ms\":5001}", NULL);
    t_ok(problem_is(&r, 400, "invalid_field"), "ttl_ms 5001 -> invalid_field");
    http_resp_free(&r);
    http(&r, s.url, "POST", "/v1/locks/lim/acquire", "{\"wait_ms\":1001}",
         NULL);
    t_ok(problem_is(&r, 400, "invalid_field"), "wait_ms 1001 -> invalid_field");
    http_resp_free(&r);
    char body[200];
    snprintf(body, sizeof body, "{\"owner\":\"%0100d\"}", 0);
    http(&r, s.url, "POST", "/v1/locks/lim/acquire", body, NULL);
    t_ok(problem_is(&r, 413, "body_too_large"),
         "a 114-byte body with --max-body-bytes 100 -> 413");
    http_resp_free(&r);
    http(&r, s.url, "POST", "/v1/locks/lim/acquire",
         "{\"ttl_ms\":5000,\"wait_ms\":1000}", NULL);
    t_ok(r.status == 200 && jint(&r, "ttl_ms") == 5000,
         "ttl_ms 5000 and wait_ms 1000 at the limits -> 200");
    http_resp_free(&r);
    svc_stop(&s);
}

/* The whole of path (malloc'd, caller frees; NUL bytes kept, *len set), or
 * NULL. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* True when the service's log (its stderr) has a line holding both a and
 * b (b may be NULL). */
static bool log_has(const struct svc_proc *s, const char *a, const char *b)
{
    FILE *f = fopen(s->log, "r");
    char buf[4096];
    bool found = false;

    while (f && !found && fgets(buf, sizeof buf, f))
        found = strncmp(buf, "# harness:", 10) != 0 && strstr(buf, a) &&
                (b == NULL || strstr(buf, b));
    if (f)
        fclose(f);
    return found;
}

/* For a svc_run that should fail: --listen on a free port and --redis on
 * the test's Redis, so that one which starts by mistake never touches
 * 8080 or 6379. */
static char free_listen[32], own_redis[64];

static const char *listen_free(void)
{
    snprintf(free_listen, sizeof free_listen, "127.0.0.1:%d", free_port());
    return free_listen;
}

static const char *redis_own(void)
{
    snprintf(own_redis, sizeof own_redis, "redis://127.0.0.1:%d", redis.port);
    return own_redis;
}

/* Whether this binary has the configuration of version 2 (rows,
 * --redis-password-file, warnings for unknown variables). */
static bool has_v2_config(void)
{
    const char *help[] = {"--help", NULL};
    char *out = NULL;
    bool v2 = svc_run(help, NULL, &out, NULL, 5000) == 0 && out &&
              strstr(out, "--redis-password-file");
    free(out);
    return v2;
}

static void test_help_v2(void)
{
    const char *help[] = {"--help", NULL};
    char *out = NULL;
    int st = svc_run(help, NULL, &out, NULL, 5000);
    t_ok(st == 0 && out && strstr(out, "--redis-password-file PATH") &&
             strstr(out, "LOCKSERVICE_REDIS_PASSWORD_FILE"),
         "--help lists --redis-password-file and its variable");
    t_ok(out && strstr(out, "LOCKSERVICE_* variable that is no setting is a "
                            "warning"),
         "--help says an unknown LOCKSERVICE_* variable is a warning");
    t_ok(out && strstr(out, "%2F"),
         "--help says how to percent-encode a password");
    free(out);
}

/* A LOCKSERVICE_* variable that is no setting: the service starts anyway
 * and warns, naming the variable (never its value) and the setting it was
 * probably meant to be. */
static void test_unknown_env(void)
{
    struct svc_proc s;
    const char *env[] = {"LOCKSERVICE_REDIS=redis://:env-S3CRET@10.0.0.1:1",
                         "LOCKSERVICE_THREDS=2", NULL};

    if (t_ok(svc_start_env(&s, &redis, NULL, env) == 0,
             "starts with LOCKSERVICE_REDIS and LOCKSERVICE_THREDS set")) {
        t_ok(acquire(&s, "unknown-env") == 200,
             "and serves, on the Redis --redis names (the unknown variable "
             "is ignored)");
        svc_stop(&s);
        if (!has_v2_config()) {
            t_skip("this binary has no v2 configuration",
                   "the startup warnings for unknown variables");
        } else {
            t_ok(log_has(&s, "LOCKSERVICE_REDIS ", "LOCKSERVICE_REDIS_URL"),
                 "a warning names LOCKSERVICE_REDIS and suggests "
                 "LOCKSERVICE_REDIS_URL");
            t_ok(log_has(&s, "LOCKSERVICE_THREDS", "LOCKSERVICE_THREADS"),
                 "a warning names LOCKSERVICE_THREDS and suggests "
                 "LOCKSERVICE_THREADS");
            t_ok(!log_has(&s, "S3CRET", NULL) && !log_has(&s, "10.0.0.1", NULL),
                 "no warning quotes the variable's value");
        }
    }

    const char *known[] = {"LOCKSERVICE_THREADS=2", "LOCKSERVICE_DEMO=0", NULL};
    if (t_ok(svc_start_env(&s, &redis, NULL, known) == 0,
             "starts with only known variables")) {
        svc_stop(&s);
        t_ok(!log_has(&s, "no setting", NULL),
             "and logs no warning about variables");
    }

    /* A bad value of a real setting stays the one-line error, and the
     * unknown variable's value shows nowhere. */
    const char *bad[] = {"LOCKSERVICE_REDIS=redis://:env-S3CRET@h",
                         "LOCKSERVICE_THREADS=0", NULL};
    const char *listen_args[] = {"--listen", listen_free(), "--redis",
                                 redis_own(), NULL};
    char *out = NULL, *err = NULL;
    int st = svc_run(listen_args, bad, &out, &err, 5000);
    bool one_line = st == 2 && err && count_lines(err) == 1 &&
                    strstr(err, "LOCKSERVICE_THREADS") &&
                    !strstr(err, "S3CRET");
    t_ok(one_line,
         "LOCKSERVICE_THREADS=0 beside an unknown variable -> exit 2, one "
         "line naming LOCKSERVICE_THREADS (%d: %s)",
         st, chomp(err));
    free(out);
    free(err);
}

/* True when the NUL-separated command line of pid contains needle. */
static bool cmdline_has(pid_t pid, const char *needle)
{
    char path[64];
    size_t n = 0;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    char *text = slurp(path, &n);
    bool found = text && n > 0 && memmem(text, n, needle, strlen(needle));
    if (text == NULL || n == 0)
        t_diag("cannot read %s", path);
    free(text);
    return found;
}

/* Writes text to dir/name; returns the path in buf. */
static const char *write_in(const char *dir, const char *name, const char *text,
                            char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", dir, name);
    FILE *f = fopen(buf, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    return buf;
}

#define PW_SECRET "pa/ss@w:rd%x"

/* A password with '/', '@', ':' and '%': from --redis-password-file (kept
 * out of ps) and percent-encoded in the URL. */
static void test_password_file(void)
{
    struct redis_proc pw;
    struct svc_proc s;
    char url[256], file[512], path[512];

    if (!t_ok(redis_start(&pw, "--requirepass " PW_SECRET) == 0,
              "redis-server with requirepass %s", PW_SECRET))
        return;
    write_in(pw.dir, "password", PW_SECRET "\n", file, sizeof file);

    snprintf(url, sizeof url, "redis://127.0.0.1:%d/1", pw.port);
    const char *args[] = {"--redis", url, "--redis-password-file", file, NULL};
    if (t_ok(svc_start(&s, NULL, args) == 0,
             "--redis %s --redis-password-file starts", url)) {
        t_ok(acquire(&s, "pw-file") == 200 && key_in_db(&pw, 1, "pw-file"),
             "acquire authenticates with the file's password -> 200, in db 1");
        struct http_resp r;
        http(&r, s.url, "GET", "/readyz", NULL, NULL);
        t_ok(r.status == 200, "/readyz 200 (%ld)", r.status);
        http_resp_free(&r);
        t_ok(!cmdline_has(s.pid, PW_SECRET) && cmdline_has(s.pid, file),
             "the password is not in /proc/PID/cmdline, only the file's path");
        svc_stop(&s);
        t_ok(!log_has(&s, PW_SECRET, NULL), "the password is not logged");
    }

    /* The file wins over a wrong password in the URL, from the
     * environment too. */
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", pw.port);
    char env_file[600];
    snprintf(env_file, sizeof env_file, "LOCKSERVICE_REDIS_PASSWORD_FILE=%s",
             file);
    const char *env[] = {env_file, NULL};
    const char *wrong_url[] = {"--redis", url, NULL};
    if (t_ok(svc_start_env(&s, NULL, wrong_url, env) == 0,
             "LOCKSERVICE_REDIS_PASSWORD_FILE with a wrong password in "
             "--redis starts")) {
        t_ok(acquire(&s, "pw-env-file") == 200,
             "the file's password overrides the URL's -> 200");
        svc_stop(&s);
    }

    /* The same password percent-encoded in the URL (v1 took %2F
     * literally, and a '/' as the start of the db). */
    snprintf(url, sizeof url,
             "redis://:pa%%2Fss%%40w%%3Ard%%25x@127.0.0.1:%d/2", pw.port);
    const char *enc[] = {"--redis", url, NULL};
    if (t_ok(svc_start(&s, NULL, enc) == 0, "--redis %s starts", url)) {
        t_ok(acquire(&s, "pw-encoded") == 200 &&
                 key_in_db(&pw, 2, "pw-encoded"),
             "a percent-encoded password with / @ : %% authenticates -> 200");
        svc_stop(&s);
    }

    /* Refusals: exit 2, one line naming the setting, never the password. */
    struct {
        const char *name, *content;
    } bad[] = {
        {"empty", ""},
        {"newline-only", "\n"},
        {"two-lines", PW_SECRET "\nsecond\n"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_in(pw.dir, bad[i].name, bad[i].content, path, sizeof path);
        const char *a[] = {"--redis-password-file",
                           path,
                           "--listen",
                           listen_free(),
                           "--redis",
                           redis_own(),
                           NULL};
        char *out = NULL, *err = NULL;
        int st = svc_run(a, NULL, &out, &err, 5000);
        bool one_line = st == 2 && err && count_lines(err) == 1 &&
                        strstr(err, "--redis-password-file") &&
                        !strstr(err, PW_SECRET);
        t_ok(one_line,
             "a password file that is %s -> exit 2, one line naming the "
             "flag, no password (%d: %s)",
             bad[i].name, st, chomp(err));
        free(out);
        free(err);
    }
    const char *missing_env[] = {
        "LOCKSERVICE_REDIS_PASSWORD_FILE=/nonexistent/lockservice-pw", NULL};
    const char *listen_args[] = {"--listen", listen_free(), "--redis",
                                 redis_own(), NULL};
    char *err = NULL;
    int st = svc_run(listen_args, missing_env, NULL, &err, 5000);
    bool one_line = st == 2 && err && count_lines(err) == 1 &&
                    strstr(err, "LOCKSERVICE_REDIS_PASSWORD_FILE");
    t_ok(one_line,
         "a missing password file from the environment -> exit 2 naming "
         "the variable (%d: %s)",
         st, chomp(err));
    free(err);

    /* --help prints no password, whichever way one was given. */
    char env_url[300];
    snprintf(env_url, sizeof env_url,
             "LOCKSERVICE_REDIS_URL=redis://:url-S3CRET@127.0.0.1:%d", pw.port);
    const char *help_env[] = {env_url, env_file, NULL};
    const char *help[] = {"--help", NULL};
    char *out = NULL;
    st = svc_run(help, help_env, &out, NULL, 5000);
    t_ok(st == 0 && out && !strstr(out, "S3CRET") && !strstr(out, PW_SECRET),
         "--help shows neither the URL's nor the file's password");
    free(out);
    redis_stop(&pw);
}

int main(void)
{
    if (!t_ok(redis_start(&redis, NULL) == 0, "redis-server starts"))
        return t_done();
    test_help_version();
    test_bad_values();
    test_prefix_and_env();
    test_listen_addresses();
    test_redis_urls();
    test_limit_flags();
    test_help_v2();
    test_unknown_env();
    test_password_file();
    redis_stop(&redis);
    return t_done();
}
