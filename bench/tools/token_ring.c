/* token_ring.c -- the least a Redis-mediated hand-off can cost (bench/run,
 * issue 9): N clients, one thread and one hiredis connection each, pass one
 * token around through a Redis list. Each client BLPOPs the token and
 * LPUSHes it straight back, which wakes the client that has waited longest
 * (Redis serves blocked clients first come, first served). One hand-off =
 * one BLPOP answered with the token; like a grant under contention, the
 * hand-offs are serial.
 *
 * usage: token_ring [-H host] -p port [-D db] [-c clients] [-d seconds] [-k
 * key]
 *
 * Prints BENCH lines: handoffs, handoffs_per_s and p50/p99 of the time from
 * one client's LPUSH to the next client's BLPOP answer (the hand-off). */
#define _GNU_SOURCE
#include "benchlib.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static struct bench_opts target = {"127.0.0.1", 0, 0, 64, 10};

static const char *key = "bench:token-ring";
static atomic_int stop, ready;
static atomic_ulong handoffs;
/* Send time of the last LPUSH (us, as bits of a double): the next client's
 * BLPOP answer minus it is one hand-off. */
static _Atomic double t_push;

struct client {
    pthread_t tid;
    redisContext *c;
    struct hist hist;
};

/* Connects and selects db; exits on failure. */
static redisContext *connect_db(void)
{
    redisContext *c = redisConnect(target.host, target.port);
    redisReply *r;
    if (c == NULL || c->err) {
        fprintf(stderr, "token_ring: connect %s:%d failed\n", target.host,
                target.port);
        exit(1);
    }
    r = redisCommand(c, "SELECT %d", target.db);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "token_ring: SELECT %d failed\n", target.db);
        exit(1);
    }
    freeReplyObject(r);
    return c;
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    atomic_fetch_add(&ready, 1);
    while (!atomic_load(&stop)) {
        redisReply *r = redisCommand(cl->c, "BLPOP %s 1", key);
        if (r == NULL) {
            fprintf(stderr, "token_ring: BLPOP: %s\n", cl->c->errstr);
            exit(1);
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            double now = now_us();
            if (!atomic_load(&stop)) {
                hist_add(&cl->hist, now - atomic_load(&t_push));
                atomic_fetch_add(&handoffs, 1);
            }
            atomic_store(&t_push, now_us());
            redisReply *p =
                redisCommand(cl->c, "LPUSH %s %b", key, r->element[1]->str,
                             (size_t)r->element[1]->len);
            if (p == NULL) {
                fprintf(stderr, "token_ring: LPUSH: %s\n", cl->c->errstr);
                exit(1);
            }
            freeReplyObject(p);
        }
        freeReplyObject(r);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int opt;

    while ((opt = getopt(argc, argv, "H:p:D:c:d:k:")) != -1) {
        switch (opt) {
        case 'k':
            key = optarg;
            break;
        default:
            if (!bench_opt(&target, opt, optarg))
                goto usage;
        }
    }
    if (target.port <= 0 || target.conns < 2)
        goto usage;

    struct client *cs = calloc((size_t)target.conns, sizeof *cs);
    for (int i = 0; i < target.conns; i++)
        cs[i].c = connect_db();
    redisContext *ctl = connect_db();
    freeReplyObject(redisCommand(ctl, "DEL %s", key));
    for (int i = 0; i < target.conns; i++)
        pthread_create(&cs[i].tid, NULL, client_main, &cs[i]);
    while (atomic_load(&ready) < target.conns)
        usleep(1000);
    usleep(200000); /* every client blocked in BLPOP */

    atomic_store(&t_push, now_us());
    freeReplyObject(redisCommand(ctl, "LPUSH %s token", key));
    double t0 = now_us();
    usleep((useconds_t)(target.secs * 1e6));
    unsigned long done = atomic_load(&handoffs);
    double elapsed = (now_us() - t0) / 1e6;
    atomic_store(&stop, 1);

    struct hist all = {{0}, 0};
    for (int i = 0; i < target.conns; i++) {
        pthread_join(cs[i].tid, NULL);
        hist_merge(&all, &cs[i].hist);
    }
    freeReplyObject(redisCommand(ctl, "DEL %s", key));
    redisFree(ctl);
    for (int i = 0; i < target.conns; i++)
        redisFree(cs[i].c);
    free(cs);
    emit("duration_s", elapsed);
    emit("handoffs", (double)done);
    emit("ops", (double)done);
    emit("ops_per_s", (double)done / elapsed);
    emit("rps", 2.0 * (double)done / elapsed);
    emit_hist_ms("", &all);
    return 0;
usage:
    fprintf(
        stderr,
        "usage: token_ring [-H host] -p port [-D db] [-c clients] [-d seconds] "
        "[-k key]\n");
    return 2;
}
