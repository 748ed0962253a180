/* test_backend.c -- what the service does when Redis misbehaves (issue 9).
 * The main instance runs with --threads 2 --redis-timeout-ms 1000.
 *
 *  - Redis stalled (DEBUG SLEEP 4) with 500 requests in flight on the two
 *    workers: every one is answered, each 503 backend_unavailable (or 200),
 *    none later than the timeout plus a margin (well before the stall
 *    ends); afterwards the service answers normally.
 *  - Redis at maxmemory with noeviction: renew and release of a held lock
 *    answer 200 (a release frees memory); a request Redis refuses is 503
 *    backend_unavailable whose detail quotes Redis ("OOM"), not
 *    "unreachable", and the log names the refusal. (Version 1: renew and
 *    release 503, "Redis is unreachable or timed out".)
 *  - An eviction policy that can evict lock keys (allkeys-lru, volatile-lru):
 *    a warn line at startup naming maxmemory-policy and the policy, /readyz
 *    200 with "warnings" naming it, lockservice_redis_eviction_unsafe 1;
 *    with noeviction the metric is 0 and /readyz has no "warnings".
 *  - Redis restarted empty with its clock 30 s behind: the next fence is
 *    still above the last one this instance issued. (Version 1: it went
 *    back by 30 s.) */
#include "harness.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct redis_proc redis;
static struct svc_proc svc;

#define REDIS_TIMEOUT_MS 1000
#define INFLIGHT 500

/* ---- 500 requests in flight while Redis stalls ---- */

struct inflight {
    CURL *curl;
    char url[160];
    char *body;
    size_t len, cap;
    long status;
    double done_ms; /* since all were started */
    bool finished;
};

static size_t inflight_body(char *p, size_t size, size_t n, void *ud)
{
    struct inflight *q = ud;
    size_t add = size * n;
    if (q->len + add + 1 > q->cap) {
        size_t cap = (q->len + add + 1) * 2;
        char *nb = realloc(q->body, cap);
        if (!nb)
            return 0;
        q->body = nb;
        q->cap = cap;
    }
    memcpy(q->body + q->len, p, add);
    q->len += add;
    q->body[q->len] = '\0';
    return add;
}

/* The "code" member of a problem body, copied into buf ("" if none). */
static const char *body_code(const char *body, char *buf, size_t len)
{
    json_error_t je;
    json_t *j = body ? json_loads(body, 0, &je) : NULL;
    json_t *c = j ? json_object_get(j, "code") : NULL;
    snprintf(buf, len, "%s", json_is_string(c) ? json_string_value(c) : "");
    json_decref(j);
    return buf;
}

/* Runs INFLIGHT requests at once through one curl multi handle: acquires of
 * distinct names, every tenth a GET of a lock's status. */
static void run_inflight(struct inflight *q, struct curl_slist *hdrs)
{
    CURLM *m = curl_multi_init();
    long limit_ms = (long)(15000 * time_scale());
    for (int i = 0; i < INFLIGHT; i++) {
        q[i].curl = curl_easy_init();
        CURL *c = q[i].curl;
        bool status = i % 10 == 9;
        snprintf(q[i].url, sizeof q[i].url, "%s/v1/locks/stall-%d%s", svc.url,
                 status ? i - 1 : i, status ? "" : "/acquire");
        curl_easy_setopt(c, CURLOPT_URL, q[i].url);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_PROXY, "");
        curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, limit_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, limit_ms);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, inflight_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &q[i]);
        curl_easy_setopt(c, CURLOPT_PRIVATE, &q[i]);
        if (!status) {
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"ttl_ms\":5000}");
        }
        curl_multi_add_handle(m, c);
    }
    double t0 = now_ms();
    int running = 1;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            char *priv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            struct inflight *d = (struct inflight *)(void *)priv;
            d->finished = true;
            d->done_ms = now_ms() - t0;
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE,
                                  &d->status);
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < INFLIGHT; i++) {
        curl_multi_remove_handle(m, q[i].curl);
        curl_easy_cleanup(q[i].curl);
    }
    curl_multi_cleanup(m);
}

/* Polls acquire of name until 200 (ttl 2 s); returns the ms it took or -1,
 * and the fence. */
static void test_stall_inflight(void)
{
    static struct inflight q[INFLIGHT];
    struct redis_stall st;
    int stall_s = (int)(4 * time_scale() + 0.999);
    double bound = (REDIS_TIMEOUT_MS + 1500) * time_scale();

    struct curl_slist *hdrs =
        curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (!t_ok(redis_stall_begin(&st, &redis, stall_s),
              "Redis stalls (DEBUG SLEEP %d)", stall_s)) {
        redis_stall_end(&st);
        curl_slist_free_all(hdrs);
        return;
    }
    double t0 = now_ms();
    run_inflight(q, hdrs);
    double all_done = now_ms() - t0;
    int answered = 0, unavailable = 0, granted = 0, late = 0, shown = 0;
    double slowest = 0;
    for (int i = 0; i < INFLIGHT; i++) {
        char code[64];
        body_code(q[i].body, code, sizeof code);
        answered += q[i].finished && q[i].status != 0;
        bool ok503 =
            q[i].status == 503 && strcmp(code, "backend_unavailable") == 0;
        unavailable += ok503;
        granted += q[i].status == 200;
        late += q[i].done_ms > bound;
        if (q[i].done_ms > slowest)
            slowest = q[i].done_ms;
        if (!ok503 && q[i].status != 200 && shown++ < 5)
            t_diag("%s -> %ld %s", q[i].url, q[i].status,
                   q[i].body ? q[i].body : "(no answer)");
        free(q[i].body);
    }
    t_diag("%d requests: %d x 503, %d x 200, all answered after %.0f ms",
           INFLIGHT, unavailable, granted, all_done);
    t_ok(answered == INFLIGHT,
         "Redis stalled: every one of %d requests in flight is answered (%d)",
         INFLIGHT, answered);
    t_ok(unavailable + granted == INFLIGHT,
         "Redis stalled: each is 503 backend_unavailable or 200 (%d + %d of "
         "%d)",
         unavailable, granted, INFLIGHT);
    t_ok(late == 0 && answered == INFLIGHT,
         "Redis stalled: none answered later than %.0f ms (timeout %d ms + "
         "margin; the stall lasts %d s): slowest %.0f ms, %d late",
         bound, REDIS_TIMEOUT_MS, stall_s, slowest, late);
    redis_stall_end(&st);
    curl_slist_free_all(hdrs);

    double back =
        serves_again(svc.url, "after-stall", 5000 * time_scale(), NULL);
    t_ok(back >= 0, "after the stall the service grants again (%.0f ms)", back);
    workers_sane(svc.url, "after the stall");
}

/* ---- maxmemory with noeviction ---- */

/* A field of INFO (e.g. used_memory), or -1. */
static long long info_field(const char *section, const char *field)
{
    char *out = redis_cli(&redis, section);
    long long v = -1;
    size_t n = strlen(field);
    for (char *line = out; line && *line;) {
        char *end = strchr(line, '\n');
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtoll(line + n + 1, NULL, 10);
        line = end ? end + 1 : NULL;
    }
    free(out);
    return v;
}

static void cli(const char *args)
{
    free(redis_cli(&redis, args));
}

/* True when the service's log has a line with every one of words
 * (NULL-terminated). */
static bool log_has(const struct svc_proc *s, const char *const *words)
{
    FILE *f = fopen(s->log, "r");
    char line[2048];
    bool found = false;
    if (!f)
        return false;
    while (!found && fgets(line, sizeof line, f)) {
        bool all = true;
        for (int i = 0; words[i] && all; i++)
            all = strstr(line, words[i]) != NULL;
        found = all;
    }
    fclose(f);
    return found;
}

/* log_has, polled for up to ms (scaled). */
static bool log_gets(const struct svc_proc *s, const char *const *words,
                     double ms)
{
    double end = now_ms() + ms * time_scale();
    for (;;) {
        if (log_has(s, words))
            return true;
        if (now_ms() >= end)
            return false;
        sleep_ms(20);
    }
}

static void test_maxmemory(void)
{
    struct http_resp r;
    char tok[64] = "", args[128];
    int fills = 0;
    bool oom = false;

    http(&r, svc.url, "POST", "/v1/locks/oom-held/acquire",
         "{\"ttl_ms\":60000}", NULL);
    if (jstr(&r, "token"))
        snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    t_ok(r.status == 200, "maxmemory: a lock is held before Redis fills (%ld)",
         r.status);
    http_resp_free(&r);

    cli("CONFIG SET maxmemory-policy noeviction");
    long long used = info_field("INFO memory", "used_memory");
    snprintf(args, sizeof args, "CONFIG SET maxmemory %lld", used + 512 * 1024);
    cli(args);
    while (fills < 200 && !oom) {
        snprintf(args, sizeof args, "SETRANGE oom-fill:%d 262143 x", fills++);
        char *out = redis_cli(&redis, args);
        oom = out && strncmp(out, "OOM", 3) == 0;
        free(out);
    }
    t_ok(oom,
         "maxmemory: Redis refuses writes with OOM after %d values of "
         "256 KB (maxmemory was used_memory %lld + 512 KB)",
         fills, used);
    /* Keep Redis well over the limit, so that what a release frees cannot
     * bring it back under. */
    used = info_field("INFO memory", "used_memory");
    snprintf(args, sizeof args, "CONFIG SET maxmemory %lld", used - 256 * 1024);
    cli(args);

    httpf(&r, svc.url, "POST", "/v1/locks/oom-held/renew", NULL,
          "{\"token\":\"%s\",\"ttl_ms\":60000}", tok);
    t_ok(r.status == 200, "maxmemory: renew of the held lock -> 200 (%ld %s)",
         r.status, r.body);
    http_resp_free(&r);
    httpf(&r, svc.url, "POST", "/v1/locks/oom-held/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200 && json_is_true(json_object_get(r.json, "released")),
         "maxmemory: release of the held lock -> 200 (%ld %s)", r.status,
         r.body);
    http_resp_free(&r);

    http(&r, svc.url, "POST", "/v1/locks/oom-new/acquire", "{}", NULL);
    const char *detail = jstr(&r, "detail");
    t_ok(problem_is(&r, 503, "backend_unavailable"),
         "maxmemory: a new acquire, refused by Redis -> 503 "
         "backend_unavailable");
    t_ok(detail && strstr(detail, "OOM") && !strstr(detail, "unreachable"),
         "maxmemory: its detail quotes Redis's refusal (OOM), not "
         "\"unreachable\" (%s)",
         detail ? detail : "no detail");
    http_resp_free(&r);
    const char *oom_words[] = {"OOM", NULL};
    t_ok(log_gets(&svc, oom_words, 2000),
         "maxmemory: the service logs Redis's OOM refusal");

    cli("CONFIG SET maxmemory 0");
    for (int i = 0; i < fills; i++) {
        snprintf(args, sizeof args, "DEL oom-fill:%d", i);
        cli(args);
    }
    http(&r, svc.url, "POST", "/v1/locks/oom-new/acquire", "{}", NULL);
    t_ok(r.status == 200, "maxmemory 0 again: acquire -> 200 (%ld %s)",
         r.status, r.body);
    if (jstr(&r, "token")) {
        struct http_resp x;
        httpf(&x, svc.url, "POST", "/v1/locks/oom-new/release", NULL,
              "{\"token\":\"%s\"}", jstr(&r, "token"));
        http_resp_free(&x);
    }
    http_resp_free(&r);
}

/* ---- eviction policy ---- */

/* /readyz of s: polls until 200 and, when want_warning, until a warning
 * names policy. Returns the last answer in r. */
static void readyz(struct http_resp *r, const struct svc_proc *s,
                   const char *policy, bool want_warning)
{
    double end = now_ms() + 3000 * time_scale();
    for (;;) {
        http(r, s->url, "GET", "/readyz", NULL, NULL);
        json_t *w = r->json ? json_object_get(r->json, "warnings") : NULL;
        bool named = false;
        for (size_t i = 0; json_is_array(w) && i < json_array_size(w); i++) {
            json_t *e = json_array_get(w, i);
            named = named ||
                    (json_is_string(e) && strstr(json_string_value(e), policy));
        }
        if (r->status == 200 && (!want_warning || named))
            return;
        if (now_ms() >= end)
            return;
        http_resp_free(r);
        sleep_ms(50);
    }
}

static void test_policy_unsafe(const char *policy)
{
    struct redis_proc r2;
    struct svc_proc s2;
    struct http_resp r;
    char extra[128];

    snprintf(extra, sizeof extra, "--maxmemory 64mb --maxmemory-policy %s",
             policy);
    if (redis_start(&r2, extra) != 0 || svc_start(&s2, &r2, NULL) != 0) {
        t_ok(false, "%s: start redis-server (%s) and lockservice", policy,
             extra);
        redis_stop(&r2);
        return;
    }
    const char *words[] = {"warn", "maxmemory-policy", policy, NULL};
    t_ok(log_gets(&s2, words, 3000),
         "%s: a warn line at startup names maxmemory-policy and %s", policy,
         policy);
    readyz(&r, &s2, policy, true);
    json_t *w = r.json ? json_object_get(r.json, "warnings") : NULL;
    const char *status = jstr(&r, "status");
    bool named = false;
    for (size_t i = 0; json_is_array(w) && i < json_array_size(w); i++) {
        json_t *e = json_array_get(w, i);
        named = named ||
                (json_is_string(e) && strstr(json_string_value(e), policy));
    }
    t_ok(r.status == 200 && status && strcmp(status, "ready") == 0 && named,
         "%s: /readyz 200 ready with a warning naming the policy (%s)", policy,
         r.body ? r.body : "");
    http_resp_free(&r);
    t_ok(
        metric_wait(s2.url, "lockservice_redis_eviction_unsafe", NULL, 1, 3000),
        "%s: lockservice_redis_eviction_unsafe 1", policy);
    svc_stop(&s2);
    redis_stop(&r2);
}

/* The main Redis runs the default policy, noeviction. */
static void test_policy_safe(void)
{
    struct http_resp r;
    char *out = redis_cli(&redis, "CONFIG GET maxmemory-policy");
    t_diag("main Redis: %s", out ? out : "(null)");
    free(out);
    t_ok(metric_wait(svc.url, "lockservice_redis_eviction_unsafe", NULL, 0,
                     3000),
         "noeviction: lockservice_redis_eviction_unsafe 0");
    readyz(&r, &svc, "noeviction", false);
    const char *status = jstr(&r, "status");
    t_ok(r.status == 200 && status && strcmp(status, "ready") == 0 && r.json &&
             !json_object_get(r.json, "warnings"),
         "noeviction: /readyz 200 ready without a \"warnings\" member (%s)",
         r.body ? r.body : "");
    http_resp_free(&r);
    const char *words[] = {"warn", "maxmemory-policy", NULL};
    t_ok(!log_has(&svc, words),
         "noeviction: the log has no warn line about maxmemory-policy");
}

/* ---- fences across an empty Redis whose clock is behind ---- */

static void test_fence_floor(void)
{
    struct http_resp r;
    long long f1 = -1, f2 = -1;
    char prefix[512];

    http(&r, svc.url, "POST", "/v1/locks/floor/acquire", "{}", NULL);
    f1 = r.status == 200 ? jint(&r, "fence") : -1;
    if (jstr(&r, "token")) {
        struct http_resp x;
        httpf(&x, svc.url, "POST", "/v1/locks/floor/release", NULL,
              "{\"token\":\"%s\"}", jstr(&r, "token"));
        t_ok(x.status == 200, "fence floor: acquire + release, fence %lld", f1);
        http_resp_free(&x);
    } else {
        t_ok(false, "fence floor: acquire (%ld %s)", r.status, r.body);
    }
    http_resp_free(&r);

    const char *lib = clock_shift_preload();
    if (!lib) {
        t_skip("no C compiler to build the clock shift",
               "fence floor: an empty Redis with its clock 30 s behind");
        return;
    }
    snprintf(prefix, sizeof prefix,
             "env LD_PRELOAD=%s TEST_CLOCK_SHIFT_MS=-30000", lib);
    if (!t_ok(redis_restart_under(&redis, prefix) == 0,
              "fence floor: Redis restarts on its port with its clock 30 s "
              "behind"))
        return;
    /* Empty but for the instances' liveness keys (of names waited on),
     * which come back within a second. */
    char *out = redis_cli(&redis, "KEYS *");
    int keys = 0;
    for (char *line = out; line && *line;) {
        char *end = strchr(line, '\n');
        if (strstr(line, ":alive:") == NULL && line != end)
            keys++;
        line = end ? end + 1 : NULL;
    }
    free(out);
    out = redis_cli(&redis, "TIME");
    long long redis_s = out ? strtoll(out, NULL, 10) : 0;
    free(out);
    long long behind = (long long)time(NULL) - redis_s;
    t_ok(keys == 0 && behind >= 25 && behind <= 35,
         "fence floor: the new Redis is empty (%d keys but liveness keys) "
         "and %lld s behind",
         keys, behind);
    double back = serves_again(svc.url, "floor", 10000 * time_scale(), &f2);
    t_ok(back >= 0,
         "fence floor: the service grants again by itself (%.0f "
         "ms)",
         back);
    t_ok(f2 > f1,
         "fence floor: the fence after the restart (%lld) is above the last "
         "one before it (%lld)",
         f2, f1);
}

int main(void)
{
    char timeout[16];
    nofile_at_least(4 * INFLIGHT);
    snprintf(timeout, sizeof timeout, "%d", REDIS_TIMEOUT_MS);
    const char *args[] = {"--threads", "2", "--redis-timeout-ms", timeout,
                          NULL};
    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, args) != 0) {
        t_ok(false, "start redis-server and lockservice --threads 2");
        return t_done();
    }
    test_stall_inflight();
    test_maxmemory();
    test_policy_safe();
    test_policy_unsafe("allkeys-lru");
    test_policy_unsafe("volatile-lru");
    test_fence_floor();
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
