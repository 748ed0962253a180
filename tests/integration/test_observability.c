/* test_observability.c -- what an operator reads: --log-format json (each
 * field of the access line) and text (the same fields as key=value), the
 * X-Request-Id taken from the request or generated and echoed, no token
 * nor API key in the log, health probes logged at debug and not at info,
 * --healthcheck saying on stderr why it failed, and the metrics of issue 12
 * (per-route durations, lockservice_redis_up, lockservice_build_info, the
 * process_* metrics, Redis errors by reason, the Redis command latency),
 * with `promtool check metrics` on a live /metrics when promtool is here. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct redis_proc redis;

#define KEY1 "obs-Sup3rSecret-0123456789abcdef"
#define KEY1_NAME "alice"
#define GIVEN_ID "req-given.1:x_Y"

static char tmpdir[200];
static char keyfile[256];

/* The whole file at path (malloc'd, caller frees), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    size_t cap = 1 << 20, len = 0, n;
    char *buf;

    if (f == NULL)
        return NULL;
    buf = malloc(cap + 1);
    while (buf && len < cap && (n = fread(buf + len, 1, cap - len, f)) > 0)
        len += n;
    if (buf)
        buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Waits until the log at path holds needle; true if it came. */
static bool log_shows(const char *path, const char *needle)
{
    for (int i = 0; i < 300 * (int)time_scale(); i++) {
        char *log = slurp(path);
        bool found = log && strstr(log, needle);
        free(log);
        if (found)
            return true;
        sleep_ms(10);
    }
    t_diag("the log never showed \"%s\"", needle);
    return false;
}

/* The X-Request-Id of r copied into buf, or "". */
static const char *request_id_of(const struct http_resp *r, char *buf,
                                 size_t len)
{
    const char *v = http_header(r, "X-Request-Id", buf, len);
    return v ? v : "";
}

static bool hex16(const char *s)
{
    if (strlen(s) != 16)
        return false;
    for (; *s; s++)
        if (!strchr("0123456789abcdef", *s))
            return false;
    return true;
}

/* The JSON access line of request id (parsed, caller decrefs), or NULL. */
static json_t *json_line_of(const char *path, const char *id)
{
    char *log = slurp(path);
    json_t *found = NULL;

    for (char *line = log, *nl; line && *line && !found;
         line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        json_t *o = json_loads(line, 0, NULL);
        const char *rid = json_string_value(json_object_get(o, "request_id"));
        if (rid && strcmp(rid, id) == 0)
            found = o;
        else
            json_decref(o);
    }
    free(log);
    return found;
}

static bool is_str(const json_t *o, const char *k, const char *want)
{
    const char *v = json_string_value(json_object_get(o, k));
    bool ok = v && strcmp(v, want) == 0;
    if (!ok)
        t_diag("%s: want \"%s\", got %s", k, want, v ? v : "(no string)");
    return ok;
}

static void test_json_log(void)
{
    struct svc_proc svc;
    const char *args[] = {"--log-format",    "json",  "--log-level", "debug",
                          "--api-keys-file", keyfile, NULL};
    const char *given[] = {"Authorization: Bearer " KEY1,
                           "X-Request-Id: " GIVEN_ID, NULL};
    const char *auth[] = {"Authorization: Bearer " KEY1, NULL};
    const char *bad[] = {"Authorization: Bearer " KEY1,
                         "X-Request-Id: has space", NULL};
    char long_id[100], long_hdr[128], id[128], id2[128], id3[128], id4[128];
    char token[64] = "";
    struct http_resp r;

    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    snprintf(long_hdr, sizeof long_hdr, "X-Request-Id: %s", long_id);
    const char *too_long[] = {"Authorization: Bearer " KEY1, long_hdr, NULL};

    if (svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "start lockservice --log-format json");
        return;
    }
    http(&r, svc.url, "POST", "/v1/locks/obs-json/acquire", "{}", given);
    t_ok(r.status == 200, "acquire with X-Request-Id -> 200");
    if (jstr(&r, "token"))
        snprintf(token, sizeof token, "%s", jstr(&r, "token"));
    t_ok(strcmp(request_id_of(&r, id, sizeof id), GIVEN_ID) == 0,
         "a valid X-Request-Id is echoed (got '%s')", id);
    http_resp_free(&r);

    http(&r, svc.url, "POST", "/v1/locks/obs-json/acquire", "{}", auth);
    t_ok(problem_is(&r, 409, "lock_held"), "second acquire -> 409 lock_held");
    t_ok(hex16(request_id_of(&r, id2, sizeof id2)),
         "without X-Request-Id, one is generated: 16 hex digits (got '%s')",
         id2);
    http_resp_free(&r);

    http(&r, svc.url, "GET", "/v1/locks/obs-json", NULL, bad);
    t_ok(hex16(request_id_of(&r, id3, sizeof id3)),
         "an X-Request-Id with a space is replaced by a generated one ('%s')",
         id3);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/obs-json", NULL, too_long);
    t_ok(hex16(request_id_of(&r, id4, sizeof id4)),
         "a 65-character X-Request-Id is replaced by a generated one ('%s')",
         id4);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/no/such/path", NULL, NULL);
    t_ok(r.status == 404 && hex16(request_id_of(&r, id4, sizeof id4)),
         "a problem answer (404) carries X-Request-Id too");
    http_resp_free(&r);

    const char *probes[] = {"/healthz", "/readyz", "/metrics"};
    for (int i = 0; i < 3; i++) {
        http(&r, svc.url, "GET", probes[i], NULL, NULL);
        http_resp_free(&r);
    }
    log_shows(svc.log, "\"route\":\"/metrics\"");
    log_shows(svc.log, id2);

    json_t *a = json_line_of(svc.log, GIVEN_ID);
    t_ok(a != NULL, "the access line of the request is one JSON object");
    t_ok(a && is_str(a, "level", "info") && is_str(a, "msg", "request") &&
             json_is_string(json_object_get(a, "ts")),
         "it has ts, level info and msg");
    t_ok(a && is_str(a, "method", "POST") &&
             is_str(a, "route", "/v1/locks/{name}/acquire") &&
             is_str(a, "name", "obs-json"),
         "method, route (the template) and name (the lock)");
    t_ok(a && json_integer_value(json_object_get(a, "status")) == 200 &&
             json_is_null(json_object_get(a, "code")),
         "status 200, code null");
    t_ok(a && json_is_number(json_object_get(a, "duration_ms")) &&
             json_number_value(json_object_get(a, "duration_ms")) >= 0,
         "duration_ms is a number");
    t_ok(a && is_str(a, "client", "127.0.0.1") && is_str(a, "key", KEY1_NAME) &&
             is_str(a, "request_id", GIVEN_ID),
         "client address, key name and request_id");
    json_decref(a);

    a = json_line_of(svc.log, id2);
    t_ok(a && json_integer_value(json_object_get(a, "status")) == 409 &&
             is_str(a, "code", "lock_held"),
         "a problem answer's line carries its code (lock_held)");
    json_decref(a);

    /* Every line, the plain ones too, is a JSON object with ts and level;
     * the probes' lines are at debug. */
    char *log = slurp(svc.log);
    int lines = 0, bad_lines = 0, probe_lines = 0, probe_info = 0;
    for (char *line = log, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, "# harness:", 10) == 0)
            continue; /* the harness's own first line */
        json_t *o = json_loads(line, 0, NULL);
        lines++;
        if (!json_is_object(o) || !json_is_string(json_object_get(o, "ts")) ||
            !json_is_string(json_object_get(o, "level")) ||
            !json_is_string(json_object_get(o, "msg"))) {
            bad_lines++;
            t_diag("not a log object: %s", line);
        }
        const char *route = json_string_value(json_object_get(o, "route"));
        const char *level = json_string_value(json_object_get(o, "level"));
        if (route &&
            (strcmp(route, "/healthz") == 0 || strcmp(route, "/readyz") == 0 ||
             strcmp(route, "/metrics") == 0)) {
            probe_lines++;
            probe_info += level && strcmp(level, "debug") != 0;
        }
        json_decref(o);
    }
    t_ok(lines > 5 && bad_lines == 0,
         "every line of the log is a JSON object with ts, level, msg (%d "
         "lines, %d not)",
         lines, bad_lines);
    t_ok(probe_lines >= 3 && probe_info == 0,
         "/healthz, /readyz and /metrics are logged at debug (%d lines, %d "
         "not at debug)",
         probe_lines, probe_info);
    free(log);
    log = slurp(svc.log);
    t_ok(log && !strstr(log, KEY1) && !strstr(log, "Sup3rSecret"),
         "the API key never appears in the log");
    t_ok(log && token[0] && !strstr(log, token),
         "the lease token never appears in the log");
    free(log);
    svc_stop(&svc);
}

static void test_text_log(void)
{
    struct svc_proc svc;
    const char *h[] = {"X-Request-Id: text-1", NULL};
    struct http_resp r;

    if (svc_start(&svc, &redis, NULL) != 0) {
        t_ok(false, "start lockservice (text log)");
        return;
    }
    for (int i = 0; i < 3; i++) {
        http(&r, svc.url, "GET", "/healthz", NULL, NULL);
        http_resp_free(&r);
        http(&r, svc.url, "GET", "/readyz", NULL, NULL);
        http_resp_free(&r);
        http(&r, svc.url, "GET", "/metrics", NULL, NULL);
        http_resp_free(&r);
    }
    http(&r, svc.url, "POST", "/v1/locks/obs-text/acquire", "{}", NULL);
    http_resp_free(&r);
    http(&r, svc.url, "POST", "/v1/locks/obs-text/acquire", "{}", h);
    http_resp_free(&r);
    t_ok(log_shows(svc.log, "request_id=text-1"),
         "the text access line has request_id=");
    char *log = slurp(svc.log);
    char *line = log ? strstr(log, "request_id=text-1") : NULL;
    while (line && line > log && line[-1] != '\n')
        line--;
    if (line && strchr(line, '\n'))
        *strchr(line, '\n') = '\0';
    t_ok(line && strstr(line, " info POST /v1/locks/{name}/acquire 409 ") &&
             strstr(line, " name=obs-text") &&
             strstr(line, " code=lock_held") &&
             strstr(line, " client=127.0.0.1") && strstr(line, "ms "),
         "text keeps its shape, with name=, code=, client= (%s)",
         line ? line : "(none)");
    t_ok(log && !strstr(log, "/healthz") && !strstr(log, "/readyz") &&
             !strstr(log, "GET /metrics"),
         "at --log-level info the probes are not logged");
    free(log);
    svc_stop(&svc);
}

/* A fake service: accepts one connection, reads the request, answers
 * answer (NULL: says nothing and holds it until the client gives up). */
struct fake {
    int fd;
    const char *answer;
};

static void *fake_serve(void *arg)
{
    struct fake *f = arg;
    char buf[512];
    int c = accept(f->fd, NULL, NULL);

    if (c < 0)
        return NULL;
    if (read(c, buf, sizeof buf) < 0)
        buf[0] = '\0';
    if (f->answer)
        raw_send(c, f->answer, strlen(f->answer));
    else
        sleep_ms(3000);
    close(c);
    return NULL;
}

/* A listening socket on 127.0.0.1; its port in *port. */
static int fake_listen(int *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 4) != 0 || getsockname(fd, (struct sockaddr *)&a, &len))
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

/* Runs --healthcheck against 127.0.0.1:port; its stderr in *err. */
static int healthcheck(int port, char **err)
{
    char listen_at[64];
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%d", port);
    const char *args[] = {"--healthcheck", "--listen", listen_at, NULL};
    return svc_run(args, NULL, NULL, err, 10000);
}

static void test_healthcheck(void)
{
    struct svc_proc svc;
    char *err = NULL;
    int st, port;

    st = healthcheck(free_port(), &err);
    t_ok(st == 1 && err && strstr(err, "cannot connect") &&
             strstr(err, "refused"),
         "--healthcheck with nothing listening: exit 1, stderr says the "
         "connection was refused (exit %d: %s)",
         st, err ? err : "");
    free(err);

    struct fake f = {fake_listen(&port), "HTTP/1.1 503 Service Unavailable\r\n"
                                         "Content-Length: 0\r\n\r\n"};
    pthread_t th;
    pthread_create(&th, NULL, fake_serve, &f);
    err = NULL;
    st = healthcheck(port, &err);
    pthread_join(th, NULL);
    t_ok(st == 1 && err && strstr(err, "HTTP/1.1 503 Service Unavailable"),
         "--healthcheck answered 503: exit 1, stderr has the status line "
         "(exit %d: %s)",
         st, err ? err : "");
    free(err);
    close(f.fd);

    f = (struct fake){fake_listen(&port), NULL};
    pthread_create(&th, NULL, fake_serve, &f);
    err = NULL;
    st = healthcheck(port, &err);
    pthread_join(th, NULL);
    t_ok(st == 1 && err && strstr(err, "timed out"),
         "--healthcheck with no answer: exit 1, stderr says it timed out "
         "(exit %d: %s)",
         st, err ? err : "");
    free(err);
    close(f.fd);

    if (svc_start(&svc, &redis, NULL) != 0) {
        t_ok(false, "start lockservice (healthcheck)");
        return;
    }
    err = NULL;
    st = healthcheck(svc.port, &err);
    t_ok(st == 0 && err && err[0] == '\0',
         "--healthcheck against a healthy service: exit 0, stderr empty "
         "(exit %d: %s)",
         st, err ? err : "");
    free(err);
    svc_stop(&svc);
}

static void test_promtool(const char *base)
{
    const char *tools[] = {".run/tools/usr/bin/promtool", NULL};
    const char *promtool = NULL;
    char cmd[512], path[256];
    struct http_resp r;

    if (access(tools[0], X_OK) == 0)
        promtool = tools[0];
    else if (system("command -v promtool >/dev/null 2>&1") == 0)
        promtool = "promtool";
    if (promtool == NULL) {
        t_skip("no promtool (scripts/deps.sh test fetches it)",
               "promtool check metrics on a live /metrics");
        return;
    }
    http(&r, base, "GET", "/metrics", NULL, NULL);
    snprintf(path, sizeof path, "%s/metrics.txt", tmpdir);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(r.body ? r.body : "", f);
        fclose(f);
    }
    http_resp_free(&r);
    snprintf(cmd, sizeof cmd, "%s check metrics < %s", promtool, path);
    t_ok(system(cmd) == 0, "promtool check metrics passes on a live /metrics");
}

static void test_metrics(void)
{
    struct svc_proc svc;
    struct http_resp r;
    char version[64] = "", label[96];

    if (svc_start(&svc, &redis, NULL) != 0) {
        t_ok(false, "start lockservice (metrics)");
        return;
    }
    http(&r, svc.url, "POST", "/v1/locks/obs-m/acquire", "{}", NULL);
    http_resp_free(&r);
    http(&r, svc.url, "GET", "/v1/locks/obs-m", NULL, NULL);
    http_resp_free(&r);

    const char *acq[] = {"route=\"/v1/locks/{name}/acquire\"", NULL};
    const char *status[] = {"route=\"/v1/locks/{name}\"", NULL};
    t_ok(metric_get(svc.url, "lockservice_http_request_duration_seconds_count",
                    acq) == 1,
         "the acquire route's duration histogram counted its one request");
    t_ok(metric_get(svc.url, "lockservice_http_request_duration_seconds_count",
                    status) == 1,
         "the status route has its own histogram (count 1)");
    const char *inf[] = {"route=\"/v1/locks/{name}/acquire\"", "le=\"+Inf\"",
                         NULL};
    t_ok(metric_get(svc.url, "lockservice_http_request_duration_seconds_bucket",
                    inf) == 1,
         "... with a +Inf bucket per route");
    t_ok(metric_get(svc.url, "lockservice_redis_command_duration_seconds_count",
                    NULL) > 0,
         "lockservice_redis_command_duration_seconds counts Redis commands");

    FILE *vf = fopen("VERSION", "r");
    if (vf) {
        if (fgets(version, sizeof version, vf) == NULL)
            version[0] = '\0';
        version[strcspn(version, "\n")] = '\0';
        fclose(vf);
    }
    snprintf(label, sizeof label, "version=\"%s\"", version);
    const char *vl[] = {label, NULL};
    t_ok(version[0] && metric_get(svc.url, "lockservice_build_info", vl) == 1,
         "lockservice_build_info{%s} 1", label);

    double rss = metric_get(svc.url, "process_resident_memory_bytes", NULL);
    long vmrss = proc_status(svc.pid, "VmRSS");
    t_ok(rss > 0 && vmrss > 0 && rss > 0.5 * 1024.0 * (double)vmrss &&
             rss < 2.0 * 1024.0 * (double)vmrss,
         "process_resident_memory_bytes is about VmRSS (%g vs %ld kB)", rss,
         vmrss);
    double fds = metric_get(svc.url, "process_open_fds", NULL);
    t_ok(fds >= 3 && fds < 10000, "process_open_fds is sane (%g)", fds);
    double start = metric_get(svc.url, "process_start_time_seconds", NULL);
    double now = (double)time(NULL);
    t_ok(start > now - 120 && start <= now + 1,
         "process_start_time_seconds is a moment ago (%.0f, now %.0f)", start,
         now);
    double cpu = metric_get(svc.url, "process_cpu_seconds_total", NULL);
    t_ok(cpu >= 0 && cpu < 600, "process_cpu_seconds_total is sane (%g)", cpu);
    t_ok(metric_get(svc.url, "lockservice_redis_up", NULL) == 1,
         "lockservice_redis_up is 1 with Redis up");

    const char *unreach[] = {"reason=\"unreachable\"", NULL};
    const char *reasons[] = {"unreachable", "timeout", "oom", "error_reply"};
    for (int i = 0; i < 4; i++) {
        snprintf(label, sizeof label, "reason=\"%s\"", reasons[i]);
        const char *l[] = {label, NULL};
        t_ok(metric_get(svc.url, "lockservice_redis_errors_total", l) >= 0,
             "lockservice_redis_errors_total{%s} is exposed", label);
    }
    double e0 = metric_get(svc.url, "lockservice_redis_errors_total", unreach);
    redis_kill(&redis);
    t_ok(metric_wait(svc.url, "lockservice_redis_up", NULL, 0, 5000),
         "Redis killed: lockservice_redis_up becomes 0");
    http(&r, svc.url, "POST", "/v1/locks/obs-m2/acquire", "{}", NULL);
    t_ok(r.status == 503, "an acquire with Redis down -> 503");
    http_resp_free(&r);
    double e1 = metric_get(svc.url, "lockservice_redis_errors_total", unreach);
    t_ok(e1 > e0,
         "lockservice_redis_errors_total{reason=\"unreachable\"} "
         "grew (%g -> %g)",
         e0, e1);
    redis_restart(&redis);
    t_ok(metric_wait(svc.url, "lockservice_redis_up", NULL, 1, 10000),
         "Redis back: lockservice_redis_up is 1 again");

    const char *oom[] = {"reason=\"oom\"", NULL};
    double o0 = metric_get(svc.url, "lockservice_redis_errors_total", oom);
    char *ans = redis_cli(&redis, "CONFIG SET maxmemory 1");
    free(ans);
    http(&r, svc.url, "POST", "/v1/locks/obs-oom/acquire", "{}", NULL);
    t_ok(r.status == 503, "an acquire with Redis out of memory -> 503 (%ld)",
         r.status);
    http_resp_free(&r);
    ans = redis_cli(&redis, "CONFIG SET maxmemory 0");
    free(ans);
    double o1 = metric_get(svc.url, "lockservice_redis_errors_total", oom);
    t_ok(o1 > o0,
         "lockservice_redis_errors_total{reason=\"oom\"} grew (%g -> "
         "%g)",
         o0, o1);

    test_promtool(svc.url);
    svc_stop(&svc);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lockservice-obs-XXXXXX");
    if (mkdtemp(tmpdir) == NULL || redis_start(&redis, NULL) != 0) {
        t_ok(false, "start redis-server");
        return t_done();
    }
    snprintf(keyfile, sizeof keyfile, "%s/keys", tmpdir);
    FILE *f = fopen(keyfile, "w");
    if (f) {
        fputs(KEY1 " name=" KEY1_NAME "\n", f);
        fclose(f);
    }
    test_json_log();
    test_text_log();
    test_healthcheck();
    test_metrics();
    redis_stop(&redis);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        t_diag("could not remove %s", tmpdir);
    return t_done();
}
