/* failover.c -- what a Sentinel failover loses, measured (issue 13 item 3).
 *
 * Starts one master, two replicas and three sentinels (tests/lib/harness),
 * and two lockservice instances on --redis redis-sentinel://.../ha with
 * --redis-wait-replicas N (policy fail). Client threads loop on a few lock
 * names: acquire (ttl_ms 5000, wait_ms 2000) on one instance, a fenced
 * write to a store kept here (it remembers the highest fence per resource
 * and refuses an older one), the work (one hold in ten lasts 1 to 2.5 s),
 * a second write, release on the other instance. The main thread (the
 * nemesis) alternates SENTINEL FAILOVER and SIGKILL of the current master
 * (restarted a second after the switch as a replica of the new one), and
 * after each waits until the sentinels name a new master and both
 * instances serve a probe lock again.
 *
 * Measured and printed (not asserted):
 *   double grants  leases of one name whose validity intervals (in the
 *                  clients' view: from the acquire's answer until the
 *                  release was sent, or the TTL less a margin ran out from
 *                  when the acquire was sent) a lease of another fence
 *                  overlapped; the store then refuses the older holder's
 *                  late write
 *   lost leases    a release answered 409 (not_held/not_owner) before the
 *                  lease's TTL could have run out: the master that answered
 *                  never saw the grant, or lost it
 *   503s and the seconds to recovery per failover
 * Asserted (what must hold):
 *   the store's fence per resource never goes back (no accepted write is
 *   later superseded by a smaller fence); every grant's fence is above the
 *   fence of every grant of its name answered before its request was sent;
 *   every request answered within wait_ms + the Redis timeout + a margin;
 *   only documented answers; both instances serve again after each failover;
 *   the faults happened and the clients made progress.
 *
 * Usage: failover --wait-replicas N [--seconds S]
 * Environment as for the integration tests (LOCKSERVICE_BIN, REDIS_SERVER,
 * LOCKSERVICE_TEST_TIME_SCALE). Ends with "N passed, N failed"; exits 0 iff
 * nothing failed. */
#include "harness.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MASTER "ha"
#define NNAMES 4
#define PER_NAME 3
#define NCLIENTS (NNAMES * PER_NAME)
#define TTL_MS 5000
#define WAIT_MS 2000
#define REDIS_TIMEOUT_MS 1000
#define WAIT_TIMEOUT_MS 200
#define TTL_MARGIN_MS 10
#define FAILOVER_TIMEOUT_MS 4000 /* sentinel_start's */
#define RECOVERY_LIMIT_MS 20000
#define MAXFAULTS 32

static int wait_replicas, seconds = 60;
static struct redis_proc nodes[3];
static struct redis_proc sentinels[3];
static struct svc_proc svcs[2];
static atomic_bool stopping;
static double t_begin; /* when the clients started; times print from it */

/* ---- records --------------------------------------------------------------*/

struct grant {
    int name;
    long long fence;
    double t0, t1;         /* the acquire: sent, answered */
    double rel_t0, rel_t1; /* the release: sent, answered */
    long rel_status;
    char rel_code[32];
};

struct failure { /* an answer other than the one wanted */
    double t0, t1;
    long status; /* 0: no answer */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct grant *grants;
static size_t n_grants, cap_grants;
static struct failure *fails;
static size_t n_fails, cap_fails;
static long n_requests, n_lock_held, n_undocumented, n_slow;
static double slowest_acquire_ms, slowest_release_ms;
static char undocumented_detail[320], slow_detail[200];

/* The fenced store: highest fence accepted per resource, and the log of
 * accepted fences in the order the store accepted them. */
static struct {
    long long high;
    long long *log;
    size_t n, cap;
    long accepted, refused;
} store[NNAMES];

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        perror("realloc");
        exit(2);
    }
    return p;
}

static void add_grant(const struct grant *g)
{
    pthread_mutex_lock(&mu);
    if (n_grants == cap_grants) {
        cap_grants = cap_grants ? 2 * cap_grants : 4096;
        grants = xrealloc(grants, cap_grants * sizeof *grants);
    }
    grants[n_grants++] = *g;
    pthread_mutex_unlock(&mu);
}

/* Counts an answer; r is not the success the caller wanted. */
static void add_failure(const char *op, double t0, double t1,
                        const struct http_resp *r)
{
    const char *code = problem_code(r);
    bool documented =
        (r->status == 503 && strcmp(code, "backend_unavailable") == 0) ||
        (r->status == 409 &&
         (strcmp(code, "lock_held") == 0 || strcmp(code, "not_held") == 0 ||
          strcmp(code, "not_owner") == 0));

    pthread_mutex_lock(&mu);
    if (r->status == 409 && strcmp(code, "lock_held") == 0)
        n_lock_held++;
    if (!documented && n_undocumented++ == 0)
        snprintf(undocumented_detail, sizeof undocumented_detail,
                 "%s at %.3fs: %ld %.200s", op, (t0 - t_begin) / 1000.0,
                 r->status, r->body ? r->body : "(no answer)");
    if (r->status != 409) {
        if (n_fails == cap_fails) {
            cap_fails = cap_fails ? 2 * cap_fails : 256;
            fails = xrealloc(fails, cap_fails * sizeof *fails);
        }
        fails[n_fails++] = (struct failure){t0, t1, r->status};
    }
    pthread_mutex_unlock(&mu);
}

/* Counts a request's time against its bound. */
static void timed(const char *op, double t0, double t1, double bound_ms,
                  double *slowest)
{
    pthread_mutex_lock(&mu);
    n_requests++;
    if (t1 - t0 > *slowest)
        *slowest = t1 - t0;
    if (t1 - t0 > bound_ms * time_scale() && n_slow++ == 0)
        snprintf(slow_detail, sizeof slow_detail,
                 "%s sent at %.3fs took %.0f ms", op, (t0 - t_begin) / 1000.0,
                 t1 - t0);
    pthread_mutex_unlock(&mu);
}

/* The store's write: accepted when fence is not below any fence it
 * accepted for the resource, refused otherwise. The log holds each new
 * highest fence in the order the store took it. */
static bool store_write(int name, long long fence)
{
    bool ok;

    pthread_mutex_lock(&mu);
    ok = fence >= store[name].high; /* the same lease may write again */
    if (!ok) {
        store[name].refused++;
    } else if (fence > store[name].high) {
        store[name].high = fence;
        if (store[name].n == store[name].cap) {
            store[name].cap = store[name].cap ? 2 * store[name].cap : 1024;
            store[name].log = xrealloc(
                store[name].log, store[name].cap * sizeof *store[name].log);
        }
        store[name].log[store[name].n++] = fence;
    }
    if (ok)
        store[name].accepted++;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* ---- clients --------------------------------------------------------------*/

struct client {
    int id;
    pthread_t thread;
    unsigned seed;
};

static void *client(void *arg)
{
    struct client *cl = arg;
    int name = cl->id % NNAMES, inst = cl->id % 2;
    char path[96], rpath[96], body[128], rbody[96], op[64];

    snprintf(path, sizeof path, "/v1/locks/failover-%d/acquire", name);
    snprintf(rpath, sizeof rpath, "/v1/locks/failover-%d/release", name);
    snprintf(body, sizeof body,
             "{\"ttl_ms\":%d,\"wait_ms\":%d,\"owner\":\"failover-%d\"}", TTL_MS,
             WAIT_MS, cl->id);
    while (!atomic_load(&stopping)) {
        struct http_resp r, q;
        struct grant g = {.name = name};
        const char *tok;

        g.t0 = now_ms();
        http_timeout(&r, (long)((WAIT_MS + 15000) * time_scale()),
                     svcs[inst].url, "POST", path, body, NULL);
        g.t1 = now_ms();
        snprintf(op, sizeof op, "acquire failover-%d on svc%d", name, inst);
        timed(op, g.t0, g.t1, WAIT_MS + REDIS_TIMEOUT_MS + 2000,
              &slowest_acquire_ms);
        tok = jstr(&r, "token");
        if (r.status != 200 || tok == NULL || jint(&r, "fence") <= 0) {
            add_failure(op, g.t0, g.t1, &r);
            http_resp_free(&r);
            inst ^= 1;
            sleep_ms(10 + rand_r(&cl->seed) % 20);
            continue;
        }
        g.fence = jint(&r, "fence");
        snprintf(rbody, sizeof rbody, "{\"token\":\"%s\"}", tok);
        http_resp_free(&r);
        /* The work: a write at its start and one at its end; one hold in
         * ten lasts 1 to 2.5 s, past a SIGKILL's outage. */
        sleep_ms(5 + rand_r(&cl->seed) % 20);
        store_write(name, g.fence);
        sleep_ms(rand_r(&cl->seed) % 10 == 0 ? 1000 + rand_r(&cl->seed) % 1500
                                             : 5 + rand_r(&cl->seed) % 20);
        store_write(name, g.fence);
        inst ^= 1; /* release on the other instance */
        g.rel_t0 = now_ms();
        http_timeout(&q, (long)(15000 * time_scale()), svcs[inst].url, "POST",
                     rpath, rbody, NULL);
        g.rel_t1 = now_ms();
        g.rel_status = q.status;
        snprintf(g.rel_code, sizeof g.rel_code, "%s", problem_code(&q));
        snprintf(op, sizeof op, "release failover-%d on svc%d", name, inst);
        timed(op, g.rel_t0, g.rel_t1, REDIS_TIMEOUT_MS + 2000,
              &slowest_release_ms);
        if (q.status != 200)
            add_failure(op, g.rel_t0, g.rel_t1, &q);
        http_resp_free(&q);
        add_grant(&g);
    }
    return NULL;
}

/* ---- the cluster and the nemesis
 * -------------------------------------------*/

static int master_port_of(const struct redis_proc *s)
{
    char *out = redis_cli(s, "SENTINEL get-master-addr-by-name " MASTER);
    const char *nl = out ? strchr(out, '\n') : NULL;
    int port = nl ? (int)strtol(nl + 1, NULL, 10) : -1;

    free(out);
    return port > 0 ? port : -1;
}

/* The master as the live sentinels name it. */
static int master_port(void)
{
    for (int i = 0; i < 3; i++) {
        int p = sentinels[i].pid > 0 ? master_port_of(&sentinels[i]) : -1;
        if (p > 0)
            return p;
    }
    return -1;
}

static struct redis_proc *node_at(int port)
{
    for (int i = 0; i < 3; i++)
        if (nodes[i].port == port)
            return &nodes[i];
    return NULL;
}

static int count_lines(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* Every sentinel sees the master flagged master alone, with both replicas
 * and the two other sentinels. */
static bool sentinels_settled(double ms)
{
    double end = now_ms() + ms * time_scale();

    do {
        bool all = true;
        for (int i = 0; i < 3 && all; i++) {
            char *m = redis_cli(&sentinels[i], "SENTINEL master " MASTER);
            char *reps = redis_cli(&sentinels[i], "SENTINEL replicas " MASTER);
            char *sens = redis_cli(&sentinels[i], "SENTINEL sentinels " MASTER);
            all = m && strstr(m, "\nflags\nmaster\n") &&
                  strstr(m, "\nnum-slaves\n2\n") &&
                  count_lines(reps, "\nflags\nslave\n") >= 2 &&
                  count_lines(sens, "\nflags\n") >= 2;
            free(m);
            free(reps);
            free(sens);
        }
        if (all)
            return true;
        sleep_ms(200);
    } while (now_ms() < end);
    return false;
}

/* Both instances name the master at port in /readyz and grant and release
 * a probe lock. */
static bool serving(int port)
{
    char want[32];

    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    for (int i = 0; i < 2; i++) {
        struct http_resp r;
        char body[96];
        bool ok;

        http_timeout(&r, 3000, svcs[i].url, "GET", "/readyz", NULL, NULL);
        ok = r.status == 200 && jstr(&r, "redis") &&
             strcmp(jstr(&r, "redis"), want) == 0;
        http_resp_free(&r);
        if (!ok)
            return false;
        http_timeout(&r, 3000, svcs[i].url, "POST",
                     "/v1/locks/failover-probe/acquire", "{\"ttl_ms\":1000}",
                     NULL);
        ok = r.status == 200 && jstr(&r, "token");
        if (ok)
            snprintf(body, sizeof body, "{\"token\":\"%s\"}",
                     jstr(&r, "token"));
        http_resp_free(&r);
        if (!ok)
            return false;
        http_timeout(&r, 3000, svcs[i].url, "POST",
                     "/v1/locks/failover-probe/release", body, NULL);
        ok = r.status == 200;
        http_resp_free(&r);
        if (!ok)
            return false;
    }
    return true;
}

/* What each sentinel names, each node's role and each instance's /readyz
 * and probe answer: printed when an instance did not recover. */
static void diagnose(void)
{
    for (int i = 0; i < 3; i++)
        t_diag("  sentinel %d names %d", sentinels[i].port,
               sentinels[i].pid > 0 ? master_port_of(&sentinels[i]) : -1);
    for (int i = 0; i < 3; i++) {
        char *role = nodes[i].pid > 0 ? redis_cli(&nodes[i], "ROLE") : NULL;
        for (char *p = role; p && *p; p++)
            if (*p == '\n')
                *p = ' ';
        t_diag("  node %d: %.120s", nodes[i].port, role ? role : "(down)");
        free(role);
    }
    for (int i = 0; i < 2; i++) {
        struct http_resp r;
        http_timeout(&r, 3000, svcs[i].url, "GET", "/readyz", NULL, NULL);
        t_diag("  svc%d /readyz %ld %.300s", i, r.status, r.body ? r.body : "");
        http_resp_free(&r);
        http_timeout(&r, 3000, svcs[i].url, "POST",
                     "/v1/locks/failover-diag/acquire", "{\"ttl_ms\":100}",
                     NULL);
        t_diag("  svc%d acquire %ld %.300s", i, r.status, r.body ? r.body : "");
        http_resp_free(&r);
    }
}

struct fault {
    bool killed; /* SIGKILL of the master, else SENTINEL FAILOVER */
    int from, to;
    double start, named, recovered; /* recovered 0: never */
};
static struct fault faults[MAXFAULTS];
static int n_faults, recovery_failures;
static char recovery_detail[200];

static void one_fault(bool kill_master)
{
    struct fault *f = &faults[n_faults++];
    struct redis_proc *m;
    double end;

    f->killed = kill_master;
    f->from = master_port();
    m = node_at(f->from);
    f->start = now_ms();
    if (kill_master && m != NULL) {
        t_diag("nemesis: SIGKILL of the master %d", f->from);
        redis_kill(m);
    } else {
        char *out =
            redis_cli(&sentinels[n_faults % 3], "SENTINEL FAILOVER " MASTER);
        int len = out ? (int)strcspn(out, "\n") : 0;
        t_diag("nemesis: SENTINEL FAILOVER (master %d): %.*s", f->from, len,
               out ? out : "");
        free(out);
    }
    end = f->start + RECOVERY_LIMIT_MS * time_scale();
    while (now_ms() < end) {
        f->to = master_port();
        if (f->to > 0 && f->to != f->from)
            break;
        sleep_ms(50);
    }
    f->named = now_ms();
    /* The sentinels may move the master again (a promotion that timed
     * out): serving means serving the master they name now. A crashed
     * master comes back a second after the switch, a replica of the new
     * one (the sentinels would reconfigure it anyway): with N > 0 the new
     * master needs a replica to acknowledge before it serves. */
    bool back = !kill_master || m == NULL;
    while (now_ms() < end && f->to > 0) {
        int now = master_port();
        if (!back && now_ms() >= f->named + 1000) {
            snprintf(m->extra, sizeof m->extra, "--replicaof 127.0.0.1 %d",
                     f->to);
            if (redis_restart(m) != 0)
                t_diag("nemesis: the old master did not restart");
            back = true;
        }
        if (now > 0 && now != f->to) {
            t_diag("nemesis: the sentinels now name %d, not %d", now, f->to);
            f->to = now;
        }
        if (f->to != f->from && serving(f->to)) {
            f->recovered = now_ms();
            break;
        }
        sleep_ms(50);
    }
    if (!back) { /* no master named: it comes back as it was */
        if (f->to > 0)
            snprintf(m->extra, sizeof m->extra, "--replicaof 127.0.0.1 %d",
                     f->to);
        if (redis_restart(m) != 0)
            t_diag("nemesis: the old master did not restart");
    }
    if (f->recovered == 0)
        diagnose();
    if (f->recovered == 0) {
        recovery_failures++;
        snprintf(recovery_detail, sizeof recovery_detail,
                 "%s at %.3fs: master %d -> %d, not serving within %d s",
                 kill_master ? "SIGKILL" : "SENTINEL FAILOVER",
                 (f->start - t_begin) / 1000.0, f->from, f->to,
                 RECOVERY_LIMIT_MS / 1000);
    }
    t_diag("nemesis: master %d -> %d, both instances serve %.2f s after the "
           "fault",
           f->from, f->to,
           f->recovered ? (f->recovered - f->start) / 1000.0 : -1.0);
    /* A new failover of the same master is allowed 2 x failover-timeout
     * after this one; the sentinels must know both replicas again. */
    while (now_ms() < f->start + 2 * FAILOVER_TIMEOUT_MS + 1000)
        sleep_ms(100);
    if (!sentinels_settled(20000))
        t_diag("nemesis: the sentinels did not settle after the fault");
}

/* ---- checks ---------------------------------------------------------------*/

static int passed, failed;

static void assert_that(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void assert_that(bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        passed++;
        printf("ok     %s\n", what);
        return;
    }
    failed++;
    printf("FAILED %s: ", what);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

struct ival {
    double s, e;
    const struct grant *g;
};

static int by_start(const void *a, const void *b)
{
    const struct ival *x = a, *y = b;
    return x->s < y->s ? -1 : x->s > y->s;
}

static int by_t1(const void *a, const void *b)
{
    const struct grant *x = *(struct grant *const *)a,
                       *y = *(struct grant *const *)b;
    return x->t1 < y->t1 ? -1 : x->t1 > y->t1;
}

/* The fault whose window (its start .. recovery + a TTL) holds t, or -1. */
static int fault_at(double t)
{
    for (int i = 0; i < n_faults; i++) {
        double e = faults[i].recovered ? faults[i].recovered : faults[i].named;
        if (t >= faults[i].start && t <= e + TTL_MS)
            return i;
    }
    return -1;
}

/* Double grants: leases whose validity interval (in the clients' view) a
 * lease of another fence on the same name overlapped. Counted once per
 * overlapped lease, per fault (by the overlapping lease's start); *outside
 * holds those in no fault window, *pairs the overlapping grants. */
static long double_grants(long per_fault[], long *outside, long *pairs,
                          char *detail, size_t dlen)
{
    long n = 0;

    *outside = 0;
    *pairs = 0;
    for (int name = 0; name < NNAMES; name++) {
        struct ival *v = malloc((n_grants + 1) * sizeof *v);
        size_t k = 0;
        double maxe = -1;
        const struct grant *maxg = NULL, *counted = NULL;

        for (size_t i = 0; i < n_grants; i++) {
            const struct grant *g = &grants[i];
            double e = g->t0 + TTL_MS - TTL_MARGIN_MS;
            if (g->name != name)
                continue;
            if (g->rel_t0 > 0 && g->rel_t0 < e)
                e = g->rel_t0;
            if (e > g->t1)
                v[k++] = (struct ival){g->t1, e, g};
        }
        qsort(v, k, sizeof *v, by_start);
        for (size_t i = 0; i < k; i++) {
            if (maxg != NULL && v[i].s < maxe && v[i].g->fence != maxg->fence) {
                (*pairs)++;
                if (maxg != counted) {
                    int f = fault_at(v[i].s);
                    counted = maxg;
                    if (n++ == 0)
                        snprintf(detail, dlen,
                                 "failover-%d: fence %lld held from %.3fs "
                                 "while fence %lld held until %.3fs",
                                 name, v[i].g->fence,
                                 (v[i].s - t_begin) / 1000.0, maxg->fence,
                                 (maxe - t_begin) / 1000.0);
                    if (f >= 0)
                        per_fault[f]++;
                    else
                        (*outside)++;
                }
            }
            if (v[i].e > maxe) {
                maxe = v[i].e;
                maxg = v[i].g;
            }
        }
        free(v);
    }
    return n;
}

/* Grants whose fence is not above that of a grant of the same name answered
 * before their request was sent. */
static long fence_regressions(char *detail, size_t dlen)
{
    long bad = 0;

    for (int name = 0; name < NNAMES; name++) {
        const struct grant **v = malloc((n_grants + 1) * sizeof *v);
        long long *pmax = malloc((n_grants + 1) * sizeof *pmax);
        size_t n = 0;

        for (size_t i = 0; i < n_grants; i++)
            if (grants[i].name == name)
                v[n++] = &grants[i];
        qsort(v, n, sizeof *v, by_t1);
        for (size_t i = 0; i < n; i++)
            pmax[i] =
                i == 0 || v[i]->fence > pmax[i - 1] ? v[i]->fence : pmax[i - 1];
        for (size_t i = 0; i < n; i++) {
            size_t lo = 0, hi = n;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (v[mid]->t1 < v[i]->t0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo > 0 && pmax[lo - 1] >= v[i]->fence && bad++ == 0)
                snprintf(detail, dlen,
                         "failover-%d: fence %lld (sent %.3fs) not above "
                         "the earlier %lld",
                         name, v[i]->fence, (v[i]->t0 - t_begin) / 1000.0,
                         pmax[lo - 1]);
        }
        free(v);
        free(pmax);
    }
    return bad;
}

static bool start_cluster(void)
{
    char extra[64], url[256], waitn[8], tmo[16], wtmo[16];

    if (redis_start(&nodes[0], NULL) != 0)
        return false;
    snprintf(extra, sizeof extra, "--replicaof 127.0.0.1 %d", nodes[0].port);
    if (redis_start(&nodes[1], extra) != 0 ||
        redis_start(&nodes[2], extra) != 0 ||
        !replicas_synced(&nodes[0], 2, 20000))
        return false;
    for (int i = 0; i < 3; i++)
        if (sentinel_start(&sentinels[i], &nodes[0], MASTER, 2) != 0)
            return false;
    if (!sentinels_settled(30000))
        return false;
    snprintf(url, sizeof url,
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/" MASTER,
             sentinels[0].port, sentinels[1].port, sentinels[2].port);
    snprintf(waitn, sizeof waitn, "%d", wait_replicas);
    snprintf(tmo, sizeof tmo, "%d", REDIS_TIMEOUT_MS);
    snprintf(wtmo, sizeof wtmo, "%d", WAIT_TIMEOUT_MS);
    const char *args[] = {"--redis",
                          url,
                          "--redis-timeout-ms",
                          tmo,
                          "--redis-wait-replicas",
                          waitn,
                          "--redis-wait-timeout-ms",
                          wtmo,
                          "--redis-wait-policy",
                          "fail",
                          "--threads",
                          "2",
                          "--log-level",
                          "warn",
                          NULL};
    for (int i = 0; i < 2; i++)
        if (svc_start(&svcs[i], NULL, args) != 0)
            return false;
    return serving(nodes[0].port);
}

static void stop_cluster(void)
{
    for (int i = 0; i < 2; i++)
        if (svcs[i].pid > 0)
            svc_stop(&svcs[i]);
    for (int i = 0; i < 3; i++)
        redis_stop(&sentinels[i]);
    for (int i = 0; i < 3; i++)
        redis_stop(&nodes[i]);
}

int main(int argc, char **argv)
{
    struct client cls[NCLIENTS];
    double end;
    long per_fault[MAXFAULTS] = {0}, outside = 0, dg, regress, lost = 0;
    long lost_per_fault[MAXFAULTS] = {0}, dg_pairs = 0;
    long store_back = 0, n503 = 0, total_refused = 0, total_accepted = 0;
    char lost_detail[200] = "", dg_detail[320] = "", rg_detail[320] = "";

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--wait-replicas") == 0 && i + 1 < argc)
            wait_replicas = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = (int)strtol(argv[++i], NULL, 10);
        else {
            fprintf(stderr,
                    "usage: failover --wait-replicas N [--seconds S]\n");
            return 2;
        }
    }
    if (seconds < 20 || wait_replicas < 0 || wait_replicas > 2) {
        fprintf(stderr, "failover: --seconds >= 20, --wait-replicas 0..2\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!start_cluster()) {
        printf("FAILED 1 master, 2 replicas, 3 sentinels and 2 instances "
               "start\n0 passed, 1 failed\n");
        stop_cluster();
        return 1;
    }
    t_begin = now_ms();
    for (int i = 0; i < NCLIENTS; i++) {
        cls[i] = (struct client){.id = i, .seed = (unsigned)(i * 7919 + 1)};
        pthread_create(&cls[i].thread, NULL, client, &cls[i]);
    }
    end = t_begin + seconds * 1000.0;
    sleep_ms(2000);
    while (now_ms() < end - 9000 && n_faults < MAXFAULTS)
        one_fault(n_faults % 2 == 1);
    while (now_ms() < end)
        sleep_ms(100);
    atomic_store(&stopping, true);
    for (int i = 0; i < NCLIENTS; i++)
        pthread_join(cls[i].thread, NULL);

    /* ---- figures ---------------------------------------------------------*/
    dg = double_grants(per_fault, &outside, &dg_pairs, dg_detail,
                       sizeof dg_detail);
    regress = fence_regressions(rg_detail, sizeof rg_detail);
    for (size_t i = 0; i < n_grants; i++)
        if (grants[i].rel_status == 409 &&
            grants[i].rel_t1 < grants[i].t0 + TTL_MS - TTL_MARGIN_MS) {
            int f = fault_at(grants[i].t1);
            if (lost == 0)
                snprintf(lost_detail, sizeof lost_detail,
                         "failover-%d fence %lld granted at %.3fs, release "
                         "409 %s at %.3fs",
                         grants[i].name, grants[i].fence,
                         (grants[i].t1 - t_begin) / 1000.0, grants[i].rel_code,
                         (grants[i].rel_t1 - t_begin) / 1000.0);
            lost++;
            if (f >= 0)
                lost_per_fault[f]++;
        }
    for (int name = 0; name < NNAMES; name++) {
        for (size_t i = 1; i < store[name].n; i++)
            if (store[name].log[i] <= store[name].log[i - 1])
                store_back++;
        total_accepted += store[name].accepted;
        total_refused += store[name].refused;
    }
    for (size_t i = 0; i < n_fails; i++)
        if (fails[i].status == 503)
            n503++;

    printf("\n== failover: --redis-wait-replicas %d (policy fail), %d s, %d "
           "clients on %d names, 2 instances, 1 master + 2 replicas + 3 "
           "sentinels ==\n",
           wait_replicas, seconds, NCLIENTS, NNAMES);
    printf("requests:              %ld (grants %zu, 409 lock_held %ld)\n",
           n_requests, n_grants, n_lock_held);
    printf("fenced writes:         %ld accepted, %ld refused (a fence older "
           "than one the store had seen)\n",
           total_accepted, total_refused);
    printf("double grants:         %ld leases held by two clients at once "
           "(%ld overlapping grants; %ld leases outside any failover)\n",
           dg, dg_pairs, outside);
    if (dg > 0)
        printf("  first: %s\n", dg_detail);
    printf("leases lost:           %ld (release answered 409 before the TTL "
           "ran out)\n",
           lost);
    if (lost > 0)
        printf("  first: %s\n", lost_detail);
    printf("fenced writes lost:    %ld (store fence going back) + %ld (grant "
           "fence not above an earlier one)\n",
           store_back, regress);
    printf("slowest:               acquire %.0f ms (wait_ms %d), release %.0f "
           "ms\n",
           slowest_acquire_ms, WAIT_MS, slowest_release_ms);
    printf("per failover:          kind, master from -> to, 503s, other "
           "failures, seconds to recovery, double grants, leases lost\n");
    for (int i = 0; i < n_faults; i++) {
        const struct fault *f = &faults[i];
        long f503 = 0, fother = 0;
        for (size_t k = 0; k < n_fails; k++)
            if (fault_at(fails[k].t1) == i) {
                if (fails[k].status == 503)
                    f503++;
                else
                    fother++;
            }
        printf("  %-18s at %5.1fs  %5d -> %5d  503s %4ld  other %3ld  recovery "
               "%5.2f s  "
               "double grants %ld  lost %ld\n",
               f->killed ? "SIGKILL master" : "SENTINEL FAILOVER",
               (f->start - t_begin) / 1000.0, f->from, f->to, f503, fother,
               f->recovered ? (f->recovered - f->start) / 1000.0 : -1.0,
               per_fault[i], lost_per_fault[i]);
    }
    printf("503s in all:           %ld; failures without an answer %zu\n", n503,
           n_fails - (size_t)n503);
    printf("\n");
    fflush(stdout);
    stop_cluster(); /* svc_stop checks each instance shuts down cleanly */

    assert_that(store_back == 0,
                "the store's fence per resource never goes back (no "
                "accepted write superseded by a smaller fence)",
                "%ld", store_back);
    assert_that(regress == 0,
                "every grant's fence is above those granted before it was "
                "asked for (no fenced write lost)",
                "%ld; first: %s", regress, rg_detail);
    assert_that(n_slow == 0,
                "every request answered within wait_ms + the Redis timeout "
                "+ 2 s",
                "%ld late; first: %s", n_slow, slow_detail);
    assert_that(n_undocumented == 0,
                "only documented answers (200, 409 lock_held/not_held/"
                "not_owner, 503 backend_unavailable)",
                "%ld; first: %s", n_undocumented, undocumented_detail);
    assert_that(recovery_failures == 0,
                "both instances serve the new master after every failover",
                "%s", recovery_detail);
    assert_that(n_faults >= 4, "faults were injected (>= 4 failovers)", "%d",
                n_faults);
    assert_that(n_grants > 200 && total_accepted > 200,
                "the clients made progress (> 200 grants and writes)",
                "%zu grants, %ld writes", n_grants, total_accepted);
    assert_that(t_failed() == 0,
                "both instances shut down cleanly on SIGTERM (exit status 0)",
                "%d not", t_failed());
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
