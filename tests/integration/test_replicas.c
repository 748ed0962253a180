/* test_replicas.c -- replica acknowledgement (issue 13 item 2):
 * --redis-wait-replicas N, --redis-wait-timeout-ms, --redis-wait-policy.
 * One master and one real replica (redis-server --replicaof).
 *
 *  - N=1 with the replica live (once a first grant was acknowledged: the
 *    first WAITs after start can time out while master and replica
 *    settle): acquire, renew and release are served;
 *    after SCRIPT FLUSH the re-sent script runs behind its WAIT: 503
 *    (acknowledgement unknown) and the grant released again;
 *  - the replica paused (SIGSTOP): with policy fail an acquire is 503
 *    backend_unavailable saying the replicas did not acknowledge, and the
 *    lock is not held afterwards (the grant was released again); a renew
 *    and a release of a lease taken before are 503 too;
 *    lockservice_redis_wait_short_total counts each;
 *  - with policy warn the same acquire is 200 and the counter rises;
 *  - with the default N=0 the paused replica changes nothing (no WAIT);
 *  - the replica resumed: policy fail grants again;
 *  - --redis-wait-timeout-ms not below --redis-timeout-ms is refused. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct redis_proc master, replica;
static struct svc_proc fail_svc, warn_svc, plain_svc;

static void acquire(const struct svc_proc *s, const char *name,
                    struct http_resp *r)
{
    char path[128];

    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    http_timeout(r, (long)(5000 * time_scale()), s->url, "POST", path,
                 "{\"ttl_ms\":20000}", NULL);
}

static bool held(const struct svc_proc *s, const char *name)
{
    struct http_resp r;
    char path[128];
    bool h;

    snprintf(path, sizeof path, "/v1/locks/%s", name);
    http(&r, s->url, "GET", path, NULL, NULL);
    h = r.json != NULL && json_is_true(json_object_get(r.json, "held"));
    http_resp_free(&r);
    return h;
}

static long post_token(const struct svc_proc *s, const char *name,
                       const char *op, const char *token, struct http_resp *r)
{
    char path[128];

    snprintf(path, sizeof path, "/v1/locks/%s/%s", name, op);
    httpf(r, s->url, "POST", path, NULL, "{\"token\":\"%s\"}", token);
    return r->status;
}

/* Acquires and releases a warm-up name through the fail service until a
 * grant is acknowledged (the first WAITs after the services start can
 * time out while the master and its replica settle, which the service
 * rightly answers 503): the checks after it are of the steady state.
 * Returns the tries it took, or 0 when none succeeded within ms. */
static int acked_once(double ms)
{
    double end = now_ms() + ms * time_scale();
    int tries = 0;

    do {
        struct http_resp r, q;

        tries++;
        acquire(&fail_svc, "warm-up", &r);
        if (r.status == 200) {
            post_token(&fail_svc, "warm-up", "release", jstr(&r, "token"), &q);
            http_resp_free(&q);
            http_resp_free(&r);
            return tries;
        }
        http_resp_free(&r);
        sleep_ms(100);
    } while (now_ms() < end);
    return 0;
}

static void acknowledged(void)
{
    struct http_resp r, q;
    char tok[64];
    int tries = acked_once(10000);
    double short_before;

    t_ok(tries > 0,
         "N=1, replica live: an acknowledged grant within 10 s "
         "(after %d tries)",
         tries);
    short_before =
        metric_get(fail_svc.url, "lockservice_redis_wait_short_total", NULL);
    acquire(&fail_svc, "acked", &r);
    t_ok(r.status == 200, "N=1, replica live: acquire -> 200 (%ld %s)",
         r.status, r.body);
    snprintf(tok, sizeof tok, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);
    post_token(&fail_svc, "acked", "renew", tok, &q);
    t_ok(q.status == 200, "N=1, replica live: renew -> 200 (%s)", q.body);
    http_resp_free(&q);
    post_token(&fail_svc, "acked", "release", tok, &q);
    t_ok(q.status == 200, "N=1, replica live: release -> 200 (%s)", q.body);
    http_resp_free(&q);
    t_ok(metric_get(fail_svc.url, "lockservice_redis_wait_short_total", NULL) ==
             short_before,
         "no WAIT came up short");

    /* Redis forgot the scripts: the acquire goes again as EVAL behind its
     * WAIT, which then covered none of it. */
    char *out = redis_cli(&master, "SCRIPT FLUSH");
    free(out);
    acquire(&fail_svc, "flushed", &r);
    t_ok(problem_is(&r, 503, "backend_unavailable") &&
             strstr(r.body, "unknown") != NULL,
         "after SCRIPT FLUSH: acquire -> 503, acknowledgement unknown (%s)",
         r.body);
    http_resp_free(&r);
    t_ok(!held(&fail_svc, "flushed"), "and the lock is not held");
    acquire(&fail_svc, "flushed", &r);
    t_ok(r.status == 200, "the next acquire is granted (%ld)", r.status);
    http_resp_free(&r);
}

static void paused(void)
{
    struct http_resp r, q;
    char tok[64];
    double shorts;

    /* A lease taken while the replica still answers, for renew and
     * release below. */
    acquire(&fail_svc, "before-pause", &r);
    snprintf(tok, sizeof tok, "%s", jstr(&r, "token") ? jstr(&r, "token") : "");
    http_resp_free(&r);
    t_ok(tok[0] != '\0', "a lease taken before the pause");

    t_ok(kill(replica.pid, SIGSTOP) == 0, "replica paused (SIGSTOP)");
    acquire(&fail_svc, "unacked", &r);
    t_ok(problem_is(&r, 503, "backend_unavailable") &&
             strstr(r.body, "replicas acknowledged") != NULL,
         "policy fail: acquire -> 503 backend_unavailable, replicas did not "
         "acknowledge (%s)",
         r.body);
    http_resp_free(&r);
    t_ok(!held(&fail_svc, "unacked"),
         "policy fail: the lock is not held afterwards");
    acquire(&fail_svc, "unacked", &r);
    t_ok(r.status == 503, "and a second acquire is 503 again, not 409 (%ld)",
         r.status);
    http_resp_free(&r);
    t_ok(!held(&fail_svc, "unacked"), "and still not held");

    post_token(&fail_svc, "before-pause", "renew", tok, &q);
    t_ok(problem_is(&q, 503, "backend_unavailable"),
         "policy fail: renew -> 503 (%s)", q.body);
    http_resp_free(&q);
    post_token(&fail_svc, "before-pause", "release", tok, &q);
    t_ok(problem_is(&q, 503, "backend_unavailable"),
         "policy fail: release -> 503 (%s)", q.body);
    http_resp_free(&q);
    shorts =
        metric_get(fail_svc.url, "lockservice_redis_wait_short_total", NULL);
    t_ok(shorts >= 4, "lockservice_redis_wait_short_total counts them (%g)",
         shorts);

    acquire(&warn_svc, "warned", &r);
    t_ok(r.status == 200, "policy warn: acquire -> 200 (%ld %s)", r.status,
         r.body);
    http_resp_free(&r);
    t_ok(held(&warn_svc, "warned"), "policy warn: the lock is held");
    t_ok(metric_get(warn_svc.url, "lockservice_redis_wait_short_total", NULL) >=
             1,
         "policy warn: the shortfall is counted");

    acquire(&plain_svc, "no-wait", &r);
    t_ok(r.status == 200, "N=0: acquire -> 200 with the replica paused (%ld)",
         r.status);
    http_resp_free(&r);
    t_ok(metric_get(plain_svc.url, "lockservice_redis_wait_short_total",
                    NULL) == 0,
         "N=0: nothing counted");

    t_ok(kill(replica.pid, SIGCONT) == 0, "replica resumed (SIGCONT)");
    /* The replica catches up first: the first acquires may still be
     * short. */
    double end = now_ms() + 10000 * time_scale();
    int tries = 0;
    do {
        char name[32];
        snprintf(name, sizeof name, "resumed-%d", ++tries);
        acquire(&fail_svc, name, &r);
        if (r.status == 200)
            break;
        http_resp_free(&r);
        sleep_ms(100);
    } while (now_ms() < end);
    t_ok(r.status == 200,
         "policy fail, replica back: acquire -> 200 (try %d: %ld %s)", tries,
         r.status, r.body);
    http_resp_free(&r);
}

static void bad_config(void)
{
    const char *args[] = {"--redis-wait-replicas",
                          "1",
                          "--redis-wait-timeout-ms",
                          "1000",
                          "--redis-timeout-ms",
                          "1000",
                          NULL};
    const char *policy[] = {"--redis-wait-policy", "maybe", NULL};
    char *err = NULL;

    int rc = svc_run(args, NULL, NULL, &err, 10000);
    t_ok(rc == 2 && err != NULL &&
             strstr(err, "--redis-wait-timeout-ms") != NULL,
         "wait timeout >= redis timeout: exit 2 naming the flag (%s)",
         err ? err : "");
    free(err);
    err = NULL;
    rc = svc_run(policy, NULL, NULL, &err, 10000);
    t_ok(rc == 2, "--redis-wait-policy maybe: exit 2 (%s)", err ? err : "");
    free(err);
}

int main(void)
{
    char replicaof[64];
    const char *fail_args[] = {"--redis-wait-replicas", "1",
                               "--redis-wait-timeout-ms", "500", NULL};
    const char *warn_args[] = {"--redis-wait-replicas",
                               "1",
                               "--redis-wait-timeout-ms",
                               "500",
                               "--redis-wait-policy",
                               "warn",
                               NULL};

    if (redis_start(&master, NULL) != 0)
        return t_ok(false, "master starts"), t_done();
    snprintf(replicaof, sizeof replicaof, "--replicaof 127.0.0.1 %d",
             master.port);
    if (redis_start(&replica, replicaof) != 0 ||
        !replicas_synced(&master, 1, 10000)) {
        t_ok(false, "replica starts and syncs");
        redis_stop(&replica);
        redis_stop(&master);
        return t_done();
    }
    if (svc_start(&fail_svc, &master, fail_args) != 0 ||
        svc_start(&warn_svc, &master, warn_args) != 0 ||
        svc_start(&plain_svc, &master, NULL) != 0) {
        t_ok(false, "services start");
    } else {
        acknowledged();
        paused();
        bad_config();
    }
    kill(replica.pid, SIGCONT);
    svc_stop(&fail_svc);
    svc_stop(&warn_svc);
    svc_stop(&plain_svc);
    redis_stop(&replica);
    redis_stop(&master);
    return t_done();
}
