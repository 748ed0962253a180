/* safety.c -- the lock service's safety checker under faults.
 *
 * Starts one redis-server (AOF, appendfsync always) and two lockservice
 * instances (--demo) sharing it, all on free ports in a scratch directory;
 * runs client threads against both instances for a bounded time while the
 * main thread (the nemesis) SIGKILLs and restarts service instances and
 * SIGTERMs and restarts Redis; then checks what the clients saw:
 *
 *   fences    every grant's fence is greater than the fence of every grant of
 *             the same name whose response arrived before its request left
 *   exclusion two grants of one name are never certainly held at once, and a
 *             lease is never gone before its TTL ran out
 *   store     accepted fenced writes (201) in order_id order carry strictly
 *             increasing fences; order ids are unique; the stock decrement
 *             equals the orders counted and lies between the 201s seen and
 *             the 201s plus the outcomes we could not observe (the instance
 *             died, or 503, mid-purchase); oversold is 0
 *   errors    only 503 backend_unavailable/shutting_down and 409
 *             lock_held/stale_fence/sold_out/not_held/not_owner, plus
 *             connection failures while the target instance was down
 *   liveness  no request hangs; no instance dies on its own; both instances
 *             are ready again within a few seconds after every fault
 *
 * Usage: safety --dir DIR --lockservice PATH [--redis-server PATH]
 *               [--seconds N] [--buyers N] [--direct N]
 *               [--faults standard|extended] [--mode fenced|locked]
 * (--mode locked is a negative control: the checker must then fail.)
 * Prints counts and one line per assertion, then "N passed, N failed";
 * exits 0 iff nothing failed. Every child is started with PR_SET_PDEATHSIG
 * and its PID is kept in DIR/<name>.pid so the caller can stop it too. */
#include <curl/curl.h>
#include <jansson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MS 1000000LL
#define SEC 1000000000LL
#define NSKU 3
#define NDIRECT_NAMES 3
#define NNAMES (NSKU + NDIRECT_NAMES)
#define STOCK 1000000
/* Clock granularity slack for lease-validity checks. */
#define TTL_MARGIN_MS 10
/* 503s this long after Redis is back still count as "during" the fault. */
#define REDIS_GRACE_MS 3000

/* ---- time, logging ------------------------------------------------------*/

static int64_t t_start;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static double rel_s(int64_t t)
{
    return (double)(t - t_start) / SEC;
}

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%7.3f] ", rel_s(now_ns()));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * MS};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        perror("realloc");
        exit(2);
    }
    return p;
}

/* ---- configuration ------------------------------------------------------*/

static const char *dir, *ls_bin, *redis_bin = "redis-server";
static int seconds = 90, n_buyers = 12, n_direct = 6;
/* --mode locked: a negative control; the checker must then fail. */
static const char *purchase_mode = "fenced";
static int redis_port, svc_port[2];
static const char *sku_names[NSKU] = {"safety-s0", "safety-s1", "safety-s2"};
static char lock_names[NNAMES][64];

/* ---- processes ----------------------------------------------------------*/

enum { P_SVC0, P_SVC1, P_REDIS, NPROC };
static pid_t pids[NPROC];
static const char *proc_names[NPROC] = {"svc0", "svc1", "redis"};
static int unexpected_deaths;
static char death_detail[512];

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    int s = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) < 0) {
        perror("free_port");
        exit(2);
    }
    port = ntohs(a.sin_port);
    close(s);
    return port;
}

static void write_pidfile(int which)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s.pid", dir, proc_names[which]);
    f = fopen(path, "w");
    if (f) {
        if (pids[which] > 0)
            fprintf(f, "%d\n", (int)pids[which]);
        fclose(f);
    }
}

static pid_t spawn(int which, char *const argv[])
{
    char log[4096];
    pid_t parent = getpid(), pid;
    int fd;

    snprintf(log, sizeof log, "%s/%s.log", dir, proc_names[which]);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(2);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0) {
            dup2(fd, 0);
            close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    pids[which] = pid;
    write_pidfile(which);
    return pid;
}

static void start_redis(void)
{
    char port[16], pidf[4096];
    snprintf(port, sizeof port, "%d", redis_port);
    snprintf(pidf, sizeof pidf, "%s/redis-server.pid", dir);
    char *argv[] = {(char *)redis_bin,
                    "--port",
                    port,
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    (char *)dir,
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                    "--pidfile",
                    pidf,
                    NULL};
    spawn(P_REDIS, argv);
}

static void start_svc(int i)
{
    char listen[64], redis[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", svc_port[i]);
    snprintf(redis, sizeof redis, "redis://127.0.0.1:%d", redis_port);
    char *argv[] = {(char *)ls_bin, "--demo", "--threads", "2",
                    "--listen",     listen,   "--redis",   redis,
                    "--log-level",  "warn",   NULL};
    spawn(i, argv);
}

/* Records and reports a child that exited while we did not stop it. */
static void check_children(void)
{
    int st, i;

    for (i = 0; i < NPROC; i++) {
        if (pids[i] <= 0)
            continue;
        if (waitpid(pids[i], &st, WNOHANG) == pids[i]) {
            unexpected_deaths++;
            snprintf(death_detail, sizeof death_detail,
                     "%s (pid %d) died on its own at %.3fs: %s %d",
                     proc_names[i], (int)pids[i], rel_s(now_ns()),
                     WIFSIGNALED(st) ? "signal" : "exit status",
                     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            say("UNEXPECTED: %s", death_detail);
            pids[i] = 0;
            write_pidfile(i);
            if (i == P_REDIS)
                start_redis();
            else
                start_svc(i);
        }
    }
}

/* Sends sig and reaps; returns once the process is gone. */
static void stop_proc(int which, int sig)
{
    int st;

    if (pids[which] <= 0)
        return;
    kill(pids[which], sig);
    while (waitpid(pids[which], &st, 0) < 0 && errno == EINTR)
        ;
    pids[which] = 0;
    write_pidfile(which);
}

static void stop_all(void)
{
    stop_proc(P_SVC0, SIGKILL);
    stop_proc(P_SVC1, SIGKILL);
    stop_proc(P_REDIS, SIGTERM);
}

/* PING over a raw socket: true on +PONG (not while Redis is LOADING). */
static bool redis_ping(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct timeval tv = {0, 300000};
    char buf[64];
    bool ok = false;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t n;

    if (s < 0)
        return false;
    a.sin_port = htons((uint16_t)redis_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        write(s, "PING\r\n", 6) == 6) {
        n = read(s, buf, sizeof buf - 1);
        ok = n >= 5 && memcmp(buf, "+PONG", 5) == 0;
    }
    close(s);
    return ok;
}

/* ---- HTTP ---------------------------------------------------------------*/

struct resp {
    CURLcode cerr;
    long status;
    char code[48];
    json_t *json;
    char body[4096];
    size_t len;
    int64_t t0, t1; /* request sent, response received (monotonic ns) */
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct resp *r = ud;
    size_t k = sz * n, room = sizeof r->body - 1 - r->len;

    memcpy(r->body + r->len, p, k < room ? k : room);
    r->len += k < room ? k : room;
    r->body[r->len] = '\0';
    return k;
}

static struct curl_slist *json_hdr;

/* One request on a fresh connection (so libcurl never replays a POST on a
 * reused connection that died: that would double purchases behind our back). */
static void http(CURL *c, const char *method, int inst, const char *path,
                 const char *body, long timeout_ms, struct resp *r)
{
    char url[512];

    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", svc_port[inst], path);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, json_hdr);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    r->t0 = now_ns();
    r->cerr = curl_easy_perform(c);
    r->t1 = now_ns();
    if (r->cerr != CURLE_OK)
        return;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    r->json = json_loads(r->body, 0, NULL);
    if (r->status >= 400 && r->json) {
        const char *code = json_string_value(json_object_get(r->json, "code"));
        snprintf(r->code, sizeof r->code, "%s", code ? code : "?");
    }
}

static void resp_free(struct resp *r)
{
    json_decref(r->json);
    r->json = NULL;
}

static int64_t jint(struct resp *r, const char *k, bool *ok)
{
    json_t *v = r->json ? json_object_get(r->json, k) : NULL;
    if (!json_is_integer(v)) {
        *ok = false;
        return 0;
    }
    return json_integer_value(v);
}

/* ---- records ------------------------------------------------------------*/

static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;

enum { K_DIRECT, K_PURCHASE };
struct grant {
    int name, kind, inst;
    int64_t fence, ttl_ms;
    int64_t t0, t1;         /* the acquire (or purchase) request */
    int64_t rel_t0, rel_t1; /* the release request, 0 if none */
    long rel_status;
    char rel_code[48];
    int64_t order_id; /* purchases */
};
static struct grant *grants;
static size_t n_grants, cap_grants;

/* A request that failed without a status, or answered 503. */
struct failure {
    int inst, kind; /* kind: 0 conn failure, 1 503 backend_unavailable */
    int64_t t0, t1;
    char what[160];
};
static struct failure *fails;
static size_t n_fails, cap_fails;

/* Error kinds and counts. */
#define MAXKINDS 64
static struct {
    char name[96];
    long n;
    bool bad;
} kinds[MAXKINDS];
static int n_kinds;

static atomic_long ops, ops_purchase, ops_direct, stale_rejected, indeterminate;
static atomic_long sku_indeterminate[NSKU];
static atomic_bool stopping;
/* Slowest answered release (never waits: bounded by the Redis timeout). */
static _Atomic int64_t max_release_ns;
#define RELEASE_BOUND_MS 3500

/* Bad events, kept for the report. */
#define MAXBAD 12
static char bad_events[MAXBAD][512];
static int n_bad_events;

static void bad_event(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&rec_lock);
    if (n_bad_events < MAXBAD) {
        va_start(ap, fmt);
        vsnprintf(bad_events[n_bad_events++], sizeof bad_events[0], fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&rec_lock);
}

static void count_kind(const char *name, bool bad)
{
    int i;
    pthread_mutex_lock(&rec_lock);
    for (i = 0; i < n_kinds; i++)
        if (strcmp(kinds[i].name, name) == 0)
            break;
    if (i == n_kinds && n_kinds < MAXKINDS) {
        snprintf(kinds[i].name, sizeof kinds[i].name, "%s", name);
        kinds[i].bad = bad;
        n_kinds++;
    }
    if (i < MAXKINDS)
        kinds[i].n++;
    pthread_mutex_unlock(&rec_lock);
}

static void add_grant(const struct grant *g)
{
    pthread_mutex_lock(&rec_lock);
    if (n_grants == cap_grants) {
        cap_grants = cap_grants ? 2 * cap_grants : 4096;
        grants = xrealloc(grants, cap_grants * sizeof *grants);
    }
    grants[n_grants++] = *g;
    pthread_mutex_unlock(&rec_lock);
}

static void add_failure(int inst, int kind, const struct resp *r,
                        const char *what)
{
    pthread_mutex_lock(&rec_lock);
    if (n_fails == cap_fails) {
        cap_fails = cap_fails ? 2 * cap_fails : 256;
        fails = xrealloc(fails, cap_fails * sizeof *fails);
    }
    fails[n_fails].inst = inst;
    fails[n_fails].kind = kind;
    fails[n_fails].t0 = r->t0;
    fails[n_fails].t1 = r->t1;
    snprintf(fails[n_fails].what, sizeof fails[n_fails].what, "%s", what);
    n_fails++;
    pthread_mutex_unlock(&rec_lock);
}

/* Classifies a response that is not the success the caller wanted.
 * Returns true if the outcome is unknown to us (the request may have had
 * its effect): connection failures, timeouts and 503s. */
static bool classify(int inst, const char *op, const struct resp *r,
                     const char *body)
{
    char k[160];

    if (r->cerr == CURLE_OPERATION_TIMEDOUT) {
        count_kind("client timeout (hang)", true);
        bad_event("%s on svc%d: no answer in %.1f s (sent at %.3fs) body %s",
                  op, inst, (double)(r->t1 - r->t0) / SEC, rel_s(r->t0), body);
        return true;
    }
    if (r->cerr != CURLE_OK) {
        snprintf(k, sizeof k, "%s: %s", op, curl_easy_strerror(r->cerr));
        add_failure(inst, 0, r, k);
        return true; /* counted once classified against the down windows */
    }
    if (r->status == 503 && (strcmp(r->code, "backend_unavailable") == 0 ||
                             strcmp(r->code, "shutting_down") == 0)) {
        snprintf(k, sizeof k, "503 %s", r->code);
        count_kind(k, false);
        if (strcmp(r->code, "backend_unavailable") == 0)
            add_failure(inst, 1, r, op);
        return true;
    }
    if (r->status == 409 &&
        (strcmp(r->code, "lock_held") == 0 ||
         strcmp(r->code, "stale_fence") == 0 ||
         strcmp(r->code, "sold_out") == 0 || strcmp(r->code, "not_held") == 0 ||
         strcmp(r->code, "not_owner") == 0)) {
        snprintf(k, sizeof k, "409 %s", r->code);
        count_kind(k, false);
        return false;
    }
    snprintf(k, sizeof k, "UNDOCUMENTED %ld %s", r->status,
             r->code[0] ? r->code : "(no code)");
    count_kind(k, true);
    bad_event("%s on svc%d at %.3fs: status %ld body %.200s (request %s)", op,
              inst, rel_s(r->t0), r->status, r->body, body);
    return r->status >= 500;
}

/* ---- clients ------------------------------------------------------------*/

struct client {
    int id;
    pthread_t th;
    unsigned seed;
};

static int rnd(struct client *c, int n)
{
    return (int)(rand_r(&c->seed) % (unsigned)n);
}

/* Buyers: fenced purchases on one SKU, alternating instances. Every fourth
 * buyer pauses past its lease TTL, so its lease expires mid-purchase. */
static void *buyer(void *arg)
{
    struct client *cl = arg;
    int sku = cl->id % NSKU, inst = cl->id % 2;
    bool pauser = cl->id % 4 == 3;
    char path[128], body[256], op[64];
    CURL *c = curl_easy_init();
    struct resp r;

    snprintf(path, sizeof path, "/demo/inventory/%s/purchase", sku_names[sku]);
    snprintf(op, sizeof op, "purchase %s", sku_names[sku]);
    while (!atomic_load(&stopping)) {
        int64_t work = pauser ? 5 : 1 + rnd(cl, 8);
        int64_t pause = pauser ? 250 + rnd(cl, 150) : 0;
        int64_t ttl = pauser ? 100 : 2000, wait = 5000;

        snprintf(body, sizeof body,
                 "{\"mode\":\"%s\",\"quantity\":1,\"work_ms\":%" PRId64
                 ",\"pause_ms\":%" PRId64 ",\"ttl_ms\":%" PRId64
                 ",\"wait_ms\":%" PRId64 "}",
                 purchase_mode, work, pause, ttl, wait);
        http(c, "POST", inst, path, body, wait + work + pause + 15000, &r);
        atomic_fetch_add(&ops, 1);
        atomic_fetch_add(&ops_purchase, 1);
        if (r.cerr == CURLE_OK && r.status == 201) {
            bool ok = true;
            struct grant g = {.name = sku,
                              .kind = K_PURCHASE,
                              .inst = inst,
                              .ttl_ms = ttl,
                              .t0 = r.t0,
                              .t1 = r.t1};
            g.fence = jint(&r, "fence", &ok);
            g.order_id = jint(&r, "order_id", &ok);
            if (!ok || g.fence <= 0 || g.order_id <= 0) {
                count_kind("UNDOCUMENTED 201 without fence/order_id", true);
                bad_event("purchase 201 on svc%d: %.200s", inst, r.body);
            } else {
                add_grant(&g);
            }
        } else {
            if (r.cerr == CURLE_OK && r.status == 409 &&
                strcmp(r.code, "stale_fence") == 0)
                atomic_fetch_add(&stale_rejected, 1);
            if (classify(inst, op, &r, body)) {
                atomic_fetch_add(&indeterminate, 1);
                atomic_fetch_add(&sku_indeterminate[sku], 1);
                sleep_ms(20 + rnd(cl, 30)); /* back off while a fault lasts */
            }
        }
        resp_free(&r);
        inst ^= 1;
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* Direct clients: acquire on one instance, hold, release on the other.
 * Every third one holds past its TTL, so its lease expires while "working". */
static void *direct(void *arg)
{
    struct client *cl = arg;
    int name = NSKU + cl->id % NDIRECT_NAMES, inst = cl->id % 2;
    bool sleeper = cl->id % 3 == 2;
    char path[160], rpath[160], body[256], rbody[128], op[96];
    CURL *c = curl_easy_init();
    struct resp r, rr;

    snprintf(path, sizeof path, "/v1/locks/%s/acquire", lock_names[name]);
    snprintf(rpath, sizeof rpath, "/v1/locks/%s/release", lock_names[name]);
    while (!atomic_load(&stopping)) {
        int64_t ttl = sleeper ? 60 : 300, wait = 3000;
        int64_t hold = sleeper ? 80 + rnd(cl, 60) : 1 + rnd(cl, 10);
        struct grant g = {
            .name = name, .kind = K_DIRECT, .inst = inst, .ttl_ms = ttl};
        const char *tok;
        bool ok = true;

        snprintf(body, sizeof body,
                 "{\"ttl_ms\":%" PRId64 ",\"wait_ms\":%" PRId64
                 ",\"owner\":\"safety-%d\"}",
                 ttl, wait, cl->id);
        http(c, "POST", inst, path, body, wait + 15000, &r);
        atomic_fetch_add(&ops, 1);
        atomic_fetch_add(&ops_direct, 1);
        if (!(r.cerr == CURLE_OK && r.status == 200)) {
            snprintf(op, sizeof op, "acquire %s", lock_names[name]);
            if (classify(inst, op, &r, body))
                sleep_ms(20 + rnd(cl, 30)); /* back off while a fault lasts */
            resp_free(&r);
            inst ^= 1;
            continue;
        }
        g.t0 = r.t0;
        g.t1 = r.t1;
        g.fence = jint(&r, "fence", &ok);
        tok =
            r.json ? json_string_value(json_object_get(r.json, "token")) : NULL;
        if (!ok || g.fence <= 0 || tok == NULL || strlen(tok) != 32) {
            count_kind("UNDOCUMENTED 200 acquire without fence/token", true);
            bad_event("acquire 200 on svc%d: %.200s", inst, r.body);
            resp_free(&r);
            continue;
        }
        snprintf(rbody, sizeof rbody, "{\"token\":\"%s\"}", tok);
        resp_free(&r);
        sleep_ms(hold);
        inst ^= 1; /* release on the other instance */
        http(c, "POST", inst, rpath, rbody, 15000, &rr);
        atomic_fetch_add(&ops, 1);
        atomic_fetch_add(&ops_direct, 1);
        g.rel_t0 = rr.t0;
        g.rel_t1 = rr.t1;
        g.rel_status = rr.cerr == CURLE_OK ? rr.status : -1;
        if (rr.cerr == CURLE_OK) {
            int64_t lat = rr.t1 - rr.t0;
            int64_t cur = atomic_load(&max_release_ns);
            while (lat > cur &&
                   !atomic_compare_exchange_weak(&max_release_ns, &cur, lat))
                ;
        }
        snprintf(g.rel_code, sizeof g.rel_code, "%s", rr.code);
        if (!(rr.cerr == CURLE_OK && rr.status == 200)) {
            snprintf(op, sizeof op, "release %s", lock_names[name]);
            classify(inst, op, &rr, "{\"token\":\"...\"}");
        }
        resp_free(&rr);
        add_grant(&g);
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* ---- nemesis ------------------------------------------------------------*/

enum {
    F_KILL0,
    F_REDIS,
    F_KILL1,
    F_REDIS2,
    F_BOTH,
    F_REDIS_KILL,
    F_REDIS_STOP
};
static bool extended; /* --faults extended: also SIGKILL and SIGSTOP Redis */
static int n_redis_kills, n_redis_stops;
struct window {
    int target; /* P_SVC0, P_SVC1, P_REDIS */
    int64_t start, end;
};
static struct window windows[64];
static int n_windows, n_kills, n_redis_restarts, recovery_failures;
static char recovery_detail[256];
static int64_t max_recovery_ns;

static bool wait_healthz(CURL *c, int inst, int64_t timeout_ms)
{
    int64_t until = now_ns() + timeout_ms * MS;
    struct resp r;

    while (now_ns() < until) {
        http(c, "GET", inst, "/healthz", NULL, 1000, &r);
        resp_free(&r);
        if (r.cerr == CURLE_OK && r.status == 200)
            return true;
        sleep_ms(20);
    }
    return false;
}

static bool wait_redis(int64_t timeout_ms)
{
    int64_t until = now_ns() + timeout_ms * MS;
    while (now_ns() < until) {
        if (redis_ping())
            return true;
        sleep_ms(20);
    }
    return false;
}

/* Both instances answer /readyz 200 and grant+release a probe lock. */
static void check_recovery(CURL *c, int64_t fault_end)
{
    int64_t until = fault_end + 5 * SEC;
    int inst;

    for (inst = 0; inst < 2; inst++) {
        bool ok = false;
        while (!ok && now_ns() < until) {
            struct resp r;
            http(c, "GET", inst, "/readyz", NULL, 1000, &r);
            ok = r.cerr == CURLE_OK && r.status == 200;
            resp_free(&r);
            if (ok) {
                char body[96], rel[96];
                const char *tok;
                http(c, "POST", inst, "/v1/locks/safety-probe/acquire",
                     "{\"ttl_ms\":1000}", 2000, &r);
                ok = r.cerr == CURLE_OK && r.status == 200;
                tok = ok ? json_string_value(json_object_get(r.json, "token"))
                         : NULL;
                if (tok) {
                    snprintf(body, sizeof body, "{\"token\":\"%s\"}", tok);
                    resp_free(&r);
                    http(c, "POST", inst, "/v1/locks/safety-probe/release",
                         body, 2000, &r);
                    ok = r.cerr == CURLE_OK && r.status == 200;
                }
                (void)rel;
                resp_free(&r);
            }
            if (!ok)
                sleep_ms(20);
        }
        if (!ok) {
            recovery_failures++;
            snprintf(recovery_detail, sizeof recovery_detail,
                     "svc%d not serving 5 s after the fault ended at %.3fs",
                     inst, rel_s(fault_end));
            say("UNEXPECTED: %s", recovery_detail);
        } else if (now_ns() - fault_end > max_recovery_ns) {
            max_recovery_ns = now_ns() - fault_end;
        }
    }
}

static void kill_svc(CURL *c, int i, int64_t down_ms, struct window *w)
{
    w->target = i;
    w->start = now_ns();
    say("nemesis: SIGKILL svc%d (pid %d)", i, (int)pids[i]);
    stop_proc(i, SIGKILL);
    n_kills++;
    sleep_ms(down_ms);
    start_svc(i);
    if (!wait_healthz(c, i, 10000)) {
        recovery_failures++;
        snprintf(recovery_detail, sizeof recovery_detail,
                 "svc%d did not answer /healthz 10 s after restart", i);
        say("UNEXPECTED: %s", recovery_detail);
    }
    w->end = now_ns();
    say("nemesis: svc%d back (pid %d) after %.3fs", i, (int)pids[i],
        (double)(w->end - w->start) / SEC);
}

static void restart_redis_begin(struct window *w, int sig)
{
    w->target = P_REDIS;
    w->start = now_ns();
    say("nemesis: %s redis (pid %d)", sig == SIGKILL ? "SIGKILL" : "SIGTERM",
        (int)pids[P_REDIS]);
    stop_proc(P_REDIS, sig);
    if (sig == SIGKILL)
        n_redis_kills++;
    else
        n_redis_restarts++;
}

static void restart_redis_end(struct window *w)
{
    start_redis();
    if (!wait_redis(20000)) {
        recovery_failures++;
        snprintf(recovery_detail, sizeof recovery_detail,
                 "redis did not answer PING 20 s after restart");
        say("UNEXPECTED: %s", recovery_detail);
    }
    w->end = now_ns();
    say("nemesis: redis back (pid %d) after %.3fs", (int)pids[P_REDIS],
        (double)(w->end - w->start) / SEC);
}

static void nemesis(CURL *c, int64_t end)
{
    int nfaults = seconds / 11 < 4 ? 4 : seconds / 11, k;
    int64_t span = end - now_ns();
    unsigned seed = (unsigned)getpid();

    if (nfaults > 40)
        nfaults = 40;
    for (k = 0; k < nfaults && !atomic_load(&stopping); k++) {
        int64_t at = end - span + span * (k + 1) / (nfaults + 1);
        int64_t down = 200 + rand_r(&seed) % 800;
        while (now_ns() < at) {
            check_children();
            sleep_ms(50);
        }
        check_children();
        int kind = k % (extended ? 7 : 5);
        switch (kind) {
        case F_KILL0:
        case F_KILL1:
            kill_svc(c, kind == F_KILL0 ? 0 : 1, down, &windows[n_windows++]);
            break;
        case F_REDIS:
        case F_REDIS2:
        case F_REDIS_KILL:
            restart_redis_begin(&windows[n_windows],
                                kind == F_REDIS_KILL ? SIGKILL : SIGTERM);
            sleep_ms(down);
            restart_redis_end(&windows[n_windows++]);
            break;
        case F_REDIS_STOP: { /* a stalled Redis: commands time out, then run */
            struct window *w = &windows[n_windows++];
            w->target = P_REDIS;
            w->start = now_ns();
            say("nemesis: SIGSTOP redis for %lld ms", (long long)(down + 1000));
            kill(pids[P_REDIS], SIGSTOP);
            n_redis_stops++;
            sleep_ms(down + 1000);
            kill(pids[P_REDIS], SIGCONT);
            w->end = now_ns();
            say("nemesis: SIGCONT redis");
            break;
        }
        case F_BOTH: { /* kill an instance while Redis is down */
            struct window *rw = &windows[n_windows++];
            restart_redis_begin(rw, SIGTERM);
            sleep_ms(down / 2);
            kill_svc(c, k % 2, down / 2, &windows[n_windows++]);
            restart_redis_end(rw);
            break;
        }
        }
        check_recovery(c, now_ns());
    }
    while (now_ns() < end) {
        check_children();
        sleep_ms(50);
    }
}

/* ---- checks -------------------------------------------------------------*/

static int passed, failed;

static void assert_that(bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;
    if (ok) {
        passed++;
        printf("ok     %s\n", what);
        return;
    }
    failed++;
    printf("FAILED %s", what);
    if (fmt) {
        printf(": ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
    }
    printf("\n");
}

static int by_t1(const void *a, const void *b)
{
    const struct grant *x = *(struct grant *const *)a,
                       *y = *(struct grant *const *)b;
    return x->t1 < y->t1 ? -1 : x->t1 > y->t1;
}

static int by_order(const void *a, const void *b)
{
    const struct grant *x = *(struct grant *const *)a,
                       *y = *(struct grant *const *)b;
    return x->order_id < y->order_id ? -1 : x->order_id > y->order_id;
}

struct ival {
    int64_t s, e;
    const struct grant *g;
};
static int by_s(const void *a, const void *b)
{
    const struct ival *x = a, *y = b;
    return x->s < y->s ? -1 : x->s > y->s;
}

/* Every grant's fence exceeds the fence of every grant of its name whose
 * response came before its request was sent. */
static long check_fences(char *detail, size_t dlen)
{
    long bad = 0;
    int name;

    for (name = 0; name < NNAMES; name++) {
        struct grant **v = malloc((n_grants + 1) * sizeof *v);
        int64_t *pmax = malloc((n_grants + 1) * sizeof *pmax);
        size_t n = 0, i;

        for (i = 0; i < n_grants; i++)
            if (grants[i].name == name)
                v[n++] = &grants[i];
        qsort(v, n, sizeof *v, by_t1);
        for (i = 0; i < n; i++)
            pmax[i] =
                i == 0 || v[i]->fence > pmax[i - 1] ? v[i]->fence : pmax[i - 1];
        for (i = 0; i < n; i++) {
            /* count of grants with t1 < v[i]->t0 */
            size_t lo = 0, hi = n;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (v[mid]->t1 < v[i]->t0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo > 0 && pmax[lo - 1] >= v[i]->fence) {
                if (bad++ == 0)
                    snprintf(detail, dlen,
                             "%s: grant fence %" PRId64
                             " (%s on svc%d, sent %.3fs) not above earlier "
                             "fence %" PRId64,
                             lock_names[name], v[i]->fence,
                             v[i]->kind == K_DIRECT ? "acquire" : "purchase",
                             v[i]->inst, rel_s(v[i]->t0), pmax[lo - 1]);
            }
        }
        free(v);
        free(pmax);
    }
    return bad;
}

/* Direct grants: intervals during which a lease was certainly held never
 * overlap; a release never finds the lease gone while it must still hold. */
static long check_exclusion(char *detail, size_t dlen, long *early,
                            char *edetail, size_t elen)
{
    long bad = 0;
    int name;
    size_t i;

    *early = 0;
    for (i = 0; i < n_grants; i++) {
        const struct grant *g = &grants[i];
        if (g->kind != K_DIRECT || g->rel_status != 409)
            continue;
        if (g->rel_t1 < g->t0 + (g->ttl_ms - TTL_MARGIN_MS) * MS) {
            if ((*early)++ == 0)
                snprintf(edetail, elen,
                         "%s fence %" PRId64
                         ": release answered 409 %s %.1f ms "
                         "after the acquire was sent, ttl_ms %" PRId64,
                         lock_names[g->name], g->fence, g->rel_code,
                         (double)(g->rel_t1 - g->t0) / MS, g->ttl_ms);
        }
    }
    for (name = NSKU; name < NNAMES; name++) {
        struct ival *v = malloc((n_grants + 1) * sizeof *v);
        size_t n = 0;
        int64_t maxe = INT64_MIN;
        const struct grant *maxg = NULL;

        for (i = 0; i < n_grants; i++) {
            const struct grant *g = &grants[i];
            int64_t e;
            if (g->name != name || g->kind != K_DIRECT)
                continue;
            e = g->t0 + (g->ttl_ms - TTL_MARGIN_MS) * MS;
            if (g->rel_t0 && g->rel_t0 < e)
                e = g->rel_t0;
            if (e > g->t1)
                v[n++] = (struct ival){g->t1, e, g};
        }
        qsort(v, n, sizeof *v, by_s);
        for (i = 0; i < n; i++) {
            if (v[i].s < maxe) {
                if (bad++ == 0)
                    snprintf(detail, dlen,
                             "%s: fence %" PRId64
                             " held from %.3fs while fence "
                             "%" PRId64 " held until %.3fs",
                             lock_names[name], v[i].g->fence, rel_s(v[i].s),
                             maxg->fence, rel_s(maxe));
            }
            if (v[i].e > maxe) {
                maxe = v[i].e;
                maxg = v[i].g;
            }
        }
        free(v);
    }
    return bad;
}

/* Connection failures overlap a down window of their instance; 503s overlap
 * a Redis window (plus grace). */
static void classify_failures(void)
{
    size_t i;
    int w;

    for (i = 0; i < n_fails; i++) {
        const struct failure *f = &fails[i];
        bool during = false;
        for (w = 0; w < n_windows; w++) {
            int64_t s = windows[w].start, e = windows[w].end;
            if (f->kind == 0 && windows[w].target != f->inst)
                continue;
            if (f->kind == 1 && windows[w].target != P_REDIS)
                continue;
            if (f->kind == 1)
                e += REDIS_GRACE_MS * MS;
            if (f->t1 >= s && f->t0 <= e)
                during = true;
        }
        if (f->kind == 0) {
            if (during) {
                count_kind("connection failure while instance down", false);
            } else {
                count_kind("connection failure while instance UP", true);
                bad_event("connection failure on svc%d (%s), request "
                          "%.3fs..%.3fs, instance not being killed",
                          f->inst, f->what, rel_s(f->t0), rel_s(f->t1));
            }
        } else if (!during) {
            count_kind("(info) 503 backend_unavailable outside Redis restarts",
                       false);
        }
    }
}

int main(int argc, char **argv)
{
    struct client *cls;
    CURL *c;
    int i, nthreads;
    int64_t end;
    char d1[512] = "", d2[512] = "", d3[512] = "";
    long v, early;
    bool setup_ok = true;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--dir") == 0 && val)
            dir = argv[++i];
        else if (strcmp(a, "--lockservice") == 0 && val)
            ls_bin = argv[++i];
        else if (strcmp(a, "--redis-server") == 0 && val)
            redis_bin = argv[++i];
        else if (strcmp(a, "--seconds") == 0 && val)
            seconds = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(a, "--buyers") == 0 && val)
            n_buyers = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(a, "--mode") == 0 && val)
            purchase_mode = argv[++i];
        else if (strcmp(a, "--faults") == 0 && val)
            extended = strcmp(argv[++i], "extended") == 0;
        else if (strcmp(a, "--direct") == 0 && val)
            n_direct = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: safety --dir DIR --lockservice PATH "
                            "[--redis-server PATH] [--seconds N] [--buyers N] "
                            "[--direct N]\n");
            return 2;
        }
    }
    if (!dir || !ls_bin || seconds < 5 || n_buyers < 1 || n_direct < 1) {
        fprintf(stderr, "safety: --dir and --lockservice are required; "
                        "--seconds >= 5\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    t_start = now_ns();
    for (i = 0; i < NSKU; i++)
        snprintf(lock_names[i], sizeof lock_names[i], "inventory:%s",
                 sku_names[i]);
    for (i = 0; i < NDIRECT_NAMES; i++)
        snprintf(lock_names[NSKU + i], sizeof lock_names[0], "safety-d%d", i);
    curl_global_init(CURL_GLOBAL_ALL);
    json_hdr = curl_slist_append(NULL, "Content-Type: application/json");
    c = curl_easy_init();

    redis_port = free_port();
    do {
        svc_port[0] = free_port();
        svc_port[1] = free_port();
    } while (svc_port[0] == svc_port[1] || svc_port[0] == redis_port ||
             svc_port[1] == redis_port || svc_port[0] == 8080 ||
             svc_port[1] == 8080 || redis_port == 6379);
    say("redis on %d, svc0 on %d, svc1 on %d, dir %s", redis_port, svc_port[0],
        svc_port[1], dir);
    start_redis();
    if (!wait_redis(10000)) {
        say("redis did not start; see %s/redis.log", dir);
        setup_ok = false;
    }
    start_svc(0);
    start_svc(1);
    if (setup_ok &&
        (!wait_healthz(c, 0, 10000) || !wait_healthz(c, 1, 10000))) {
        say("lockservice did not start; see %s/svc*.log", dir);
        setup_ok = false;
    }
    for (i = 0; setup_ok && i < NSKU; i++) {
        char path[128], body[64];
        struct resp r;
        snprintf(path, sizeof path, "/demo/inventory/%s", sku_names[i]);
        snprintf(body, sizeof body, "{\"stock\":%d}", STOCK);
        http(c, "PUT", 0, path, body, 5000, &r);
        if (r.cerr != CURLE_OK || r.status != 200) {
            say("PUT %s failed: %ld %s", path, r.status, r.body);
            setup_ok = false;
        }
        resp_free(&r);
    }
    if (!setup_ok) {
        stop_all();
        printf("0 passed, 1 failed\n");
        return 1;
    }

    nthreads = n_buyers + n_direct;
    cls = calloc((size_t)nthreads, sizeof *cls);
    say("running %d buyers and %d direct clients for %d s", n_buyers, n_direct,
        seconds);
    end = now_ns() + (int64_t)seconds * SEC;
    for (i = 0; i < nthreads; i++) {
        cls[i].id = i < n_buyers ? i : i - n_buyers;
        cls[i].seed = (unsigned)(i * 7919 + getpid());
        pthread_create(&cls[i].th, NULL, i < n_buyers ? buyer : direct,
                       &cls[i]);
    }
    nemesis(c, end);
    atomic_store(&stopping, true);
    say("stopping clients");
    for (i = 0; i < nthreads; i++)
        pthread_join(cls[i].th, NULL);
    check_children();
    say("clients stopped");

    /* ---- final state -------------------------------------------------- */
    struct {
        bool got;
        int64_t initial, stock, orders, oversold;
    } inv[NSKU] = {0};
    for (i = 0; i < NSKU; i++) {
        char path[128];
        int64_t until = now_ns() + 10 * SEC;
        snprintf(path, sizeof path, "/demo/inventory/%s", sku_names[i]);
        while (!inv[i].got && now_ns() < until) {
            struct resp r;
            bool ok = true;
            http(c, "GET", i % 2, path, NULL, 3000, &r);
            if (r.cerr == CURLE_OK && r.status == 200) {
                inv[i].initial = jint(&r, "initial_stock", &ok);
                inv[i].stock = jint(&r, "stock", &ok);
                inv[i].orders = jint(&r, "orders", &ok);
                inv[i].oversold = jint(&r, "oversold", &ok);
                inv[i].got = ok;
            } else {
                sleep_ms(100);
            }
            resp_free(&r);
        }
    }
    stop_all();
    classify_failures();

    /* ---- report -------------------------------------------------------- */
    long n201[NSKU] = {0}, ndirect = 0;
    for (size_t k = 0; k < n_grants; k++) {
        if (grants[k].kind == K_PURCHASE)
            n201[grants[k].name]++;
        else
            ndirect++;
    }
    printf("\n== safety checker: %d s, %d buyers (%d pausing past TTL), %d "
           "direct clients, 2 instances, 1 redis ==\n",
           seconds, n_buyers, n_buyers / 4, n_direct);
    printf(
        "operations:            %ld (purchases %ld, lock API requests %ld)\n",
        atomic_load(&ops), atomic_load(&ops_purchase),
        atomic_load(&ops_direct));
    printf(
        "grants:                %zu (purchases accepted %ld, lock API %ld)\n",
        n_grants, n201[0] + n201[1] + n201[2], ndirect);
    printf("stale writes rejected: %ld (409 stale_fence)\n",
           atomic_load(&stale_rejected));
    printf("outcome unknown:       %ld purchases (connection lost or 503)\n",
           atomic_load(&indeterminate));
    printf("slowest release:       %.3f s\n",
           (double)atomic_load(&max_release_ns) / SEC);
    printf("faults injected:       %d service kills (SIGKILL), %d redis "
           "restarts (SIGTERM, AOF reload); slowest recovery %.3f s\n",
           n_kills, n_redis_restarts, (double)max_recovery_ns / SEC);
    if (extended)
        printf("extended faults:       %d redis SIGKILLs (AOF reload), %d "
               "redis stalls (SIGSTOP/SIGCONT)\n",
               n_redis_kills, n_redis_stops);
    for (i = 0; i < NSKU; i++)
        printf("inventory %s: initial %" PRId64 " stock %" PRId64
               " orders %" PRId64 " oversold %" PRId64
               " | 201s seen %ld, applied unacknowledged %" PRId64
               ", outcome unknown %ld\n",
               sku_names[i], inv[i].initial, inv[i].stock, inv[i].orders,
               inv[i].oversold, n201[i],
               inv[i].initial - inv[i].stock - n201[i],
               atomic_load(&sku_indeterminate[i]));
    /* Each applied but unacknowledged purchase: the order ids the 201s
     * lack, with the failed purchases that could have written them. */
    for (i = 0; i < NSKU; i++) {
        int64_t dec = inv[i].initial - inv[i].stock, id;
        char *seen;
        const struct grant **byid;
        char prefix[96];
        int shown = 0;

        if (!inv[i].got || dec <= n201[i] || dec > 10 * STOCK)
            continue;
        seen = calloc((size_t)dec + 2, 1);
        byid = calloc((size_t)dec + 2, sizeof *byid);
        for (size_t k = 0; k < n_grants; k++)
            if (grants[k].kind == K_PURCHASE && grants[k].name == i &&
                grants[k].order_id >= 1 && grants[k].order_id <= dec) {
                seen[grants[k].order_id] = 1;
                byid[grants[k].order_id] = &grants[k];
            }
        snprintf(prefix, sizeof prefix, "purchase %s", sku_names[i]);
        for (id = 1; id <= dec && shown < 5; id++) {
            int64_t lo = 0, hi = INT64_MAX, j;
            if (seen[id])
                continue;
            shown++;
            for (j = id - 1; j >= 1; j--)
                if (seen[j]) {
                    lo = byid[j]->t0;
                    break;
                }
            for (j = id + 1; j <= dec; j++)
                if (seen[j]) {
                    hi = byid[j]->t1;
                    break;
                }
            printf("unacknowledged order %s #%" PRId64
                   " written between %.3fs and %.3fs; failed purchases then:\n",
                   sku_names[i], id, rel_s(lo),
                   hi == INT64_MAX ? 0.0 : rel_s(hi));
            /* a purchase that wrote lasted at least its work_ms (>= 1) */
            int lines = 0;
            for (size_t f = 0; f < n_fails && lines < 6; f++)
                if (strncmp(fails[f].what, prefix, strlen(prefix)) == 0 &&
                    fails[f].t1 >= lo && fails[f].t0 <= hi &&
                    fails[f].t1 - fails[f].t0 >= MS && ++lines)
                    printf("    svc%d %.3fs..%.3fs %s%s\n", fails[f].inst,
                           rel_s(fails[f].t0), rel_s(fails[f].t1),
                           fails[f].kind ? "503 backend_unavailable: " : "",
                           fails[f].what);
        }
        free(seen);
        free(byid);
    }
    printf("faults (start..end):");
    for (i = 0; i < n_windows; i++)
        printf(" %s %.3f..%.3f", proc_names[windows[i].target],
               rel_s(windows[i].start), rel_s(windows[i].end));
    printf("\n");
    printf("errors by kind:\n");
    for (i = 0; i < n_kinds; i++)
        printf("  %-58s %ld%s\n", kinds[i].name, kinds[i].n,
               kinds[i].bad ? "   <-- not allowed" : "");
    if (n_bad_events) {
        printf("first bad events:\n");
        for (i = 0; i < n_bad_events; i++)
            printf("  %s\n", bad_events[i]);
    }
    printf("\n");

    /* ---- assertions ---------------------------------------------------- */
    v = check_fences(d1, sizeof d1);
    assert_that(v == 0, "fences increase per name in grant order",
                "%ld violations; first: %s", v, d1);
    v = check_exclusion(d2, sizeof d2, &early, d3, sizeof d3);
    assert_that(v == 0, "no two lock API grants certainly held at once",
                "%ld overlaps; first: %s", v, d2);
    assert_that(early == 0, "no lease gone before its TTL",
                "%ld early losses; first: %s", early, d3);
    {
        long dup = 0, nonmono = 0;
        char dd[512] = "";
        for (int s = 0; s < NSKU; s++) {
            struct grant **p = malloc((n_grants + 1) * sizeof *p);
            size_t n = 0, k;
            for (k = 0; k < n_grants; k++)
                if (grants[k].kind == K_PURCHASE && grants[k].name == s)
                    p[n++] = &grants[k];
            qsort(p, n, sizeof *p, by_order);
            for (k = 1; k < n; k++) {
                if (p[k]->order_id == p[k - 1]->order_id)
                    dup++;
                else if (p[k]->fence <= p[k - 1]->fence && nonmono++ == 0)
                    snprintf(dd, sizeof dd,
                             "%s order %" PRId64 " fence %" PRId64
                             " after order %" PRId64 " fence %" PRId64,
                             sku_names[s], p[k]->order_id, p[k]->fence,
                             p[k - 1]->order_id, p[k - 1]->fence);
            }
            free(p);
        }
        assert_that(nonmono == 0,
                    "no stale write accepted (fences rise in order_id order)",
                    "%ld; first: %s", nonmono, dd);
        assert_that(dup == 0, "order ids of accepted purchases are unique",
                    "%ld duplicates", dup);
    }
    {
        bool got = true, lost = false, bounds = true, over = false;
        char bd[512] = "";
        for (i = 0; i < NSKU; i++) {
            int64_t dec = inv[i].initial - inv[i].stock;
            long unk = atomic_load(&sku_indeterminate[i]);
            if (!inv[i].got) {
                got = false;
                continue;
            }
            if (inv[i].orders != dec || inv[i].initial != STOCK)
                lost = true;
            if (dec < n201[i] || dec > n201[i] + unk) {
                bounds = false;
                snprintf(bd, sizeof bd,
                         "%s: decrement %" PRId64 ", 201s %ld, unknown %ld",
                         sku_names[i], dec, n201[i], unk);
            }
            if (inv[i].oversold != 0)
                over = true;
        }
        assert_that(got, "final inventory readable", NULL);
        assert_that(got && !lost,
                    "stock decrement equals orders (no lost update)", NULL);
        assert_that(got && bounds,
                    "accepted writes equal the stock decrement (201s <= "
                    "decrement <= 201s + unknown)",
                    "%s", bd);
        assert_that(got && !over, "oversold stays 0", NULL);
    }
    {
        long badn = 0;
        for (i = 0; i < n_kinds; i++)
            if (kinds[i].bad)
                badn += kinds[i].n;
        assert_that(badn == 0,
                    "only documented errors (and connection "
                    "failures while the instance was down)",
                    "%ld not allowed; see errors by kind", badn);
    }
    assert_that(atomic_load(&max_release_ns) <= RELEASE_BOUND_MS * MS,
                "every answered release came within 3.5 s (no stuck worker)",
                "slowest %.3f s", (double)atomic_load(&max_release_ns) / SEC);
    assert_that(unexpected_deaths == 0, "no process died on its own", "%s",
                death_detail);
    assert_that(recovery_failures == 0,
                "both instances serve within 5 s after every fault", "%s",
                recovery_detail);
    assert_that(n_kills >= 2 && n_redis_restarts >= 2,
                "faults were injected (>= 2 kills, >= 2 redis restarts)", NULL);
    assert_that(atomic_load(&stale_rejected) > 0,
                "paused buyers had writes rejected as stale (scenario ran)",
                NULL);
    assert_that(n201[0] + n201[1] + n201[2] > 100 && ndirect > 100,
                "clients made progress (> 100 purchases and grants)", NULL);
    printf("%d passed, %d failed\n", passed, failed);
    curl_easy_cleanup(c);
    curl_slist_free_all(json_hdr);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
