/* redis_pairs.c -- closed-loop acquire+release pairs against raw Redis: the
 * floor under any lock service built on Redis scripts (bench/run, issue 9).
 *
 * usage: redis_pairs [-H host] -p port [-D db] [-c conns] [-t threads]
 *                    [-d seconds] [-n name-prefix] ACQUIRE_TEMPLATE
 * RELEASE_TEMPLATE
 *
 * Each template file holds one command, one argument per line (e.g.
 * EVALSHA, the SHA1, numkeys, keys, args); "@NAME@" is replaced by a fresh
 * lock name per pair. Every connection runs acquire(name), waits for the
 * reply, runs release(name), waits, and starts over with a new name: one
 * request in flight per connection, as redis-benchmark -c does and as a
 * client of a lock does (the release needs the acquire's answer). The
 * connections of a thread are non-blocking hiredis contexts multiplexed with
 * poll(), so 64 connections need no 64 threads.
 *
 * Prints BENCH lines: pairs, pairs_per_s, p50/p99 of a pair, and counts of
 * refused acquires, releases that freed nothing and error replies (all
 * three should be 0 on distinct names). */
#define _GNU_SOURCE
#include "benchlib.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static struct bench_opts target = {"127.0.0.1", 0, 0, 64, 10};

struct conn {
    redisContext *c;
    int releasing; /* 0: the acquire is in flight, 1: the release */
    int want_write;
    unsigned long seq;
    double t_pair;
    char name[96];
};

struct worker {
    pthread_t tid;
    int index, nconns;
    struct conn *conns;
    unsigned long pairs, refused, not_released, errors;
    struct hist hist;
};

static const char *prefix = "rp";
static struct tpl tpl_acquire, tpl_release;
static double t_end;
static atomic_int error_printed;

/* Connects blocking (simple), then switches the socket to non-blocking. */
static redisContext *connect_nb(void)
{
    redisContext *c = redisConnect(target.host, target.port);
    if (c == NULL || c->err) {
        fprintf(stderr, "redis_pairs: connect %s:%d: %s\n", target.host,
                target.port, c ? c->errstr : "out of memory");
        exit(1);
    }
    if (target.db != 0) {
        redisReply *r = redisCommand(c, "SELECT %d", target.db);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "redis_pairs: SELECT %d failed\n", target.db);
            exit(1);
        }
        freeReplyObject(r);
    }
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    c->flags &= ~REDIS_BLOCK;
    return c;
}

/* Queues the command of template T for conn k and tries to write it. */
static void send_cmd(struct conn *k, const struct tpl *t)
{
    static _Thread_local char buf[TPL_MAX_ARGS][TPL_ARG_MAX];
    const char *argv[TPL_MAX_ARGS];
    size_t lens[TPL_MAX_ARGS];
    int done = 0;

    for (int i = 0; i < t->argc; i++) {
        lens[i] = fill_name(buf[i], sizeof buf[i], t->argv[i], k->name);
        argv[i] = buf[i];
    }
    if (redisAppendCommandArgv(k->c, t->argc, argv, lens) != REDIS_OK ||
        redisBufferWrite(k->c, &done) != REDIS_OK) {
        fprintf(stderr, "redis_pairs: write: %s\n", k->c->errstr);
        exit(1);
    }
    k->want_write = !done;
}

/* 1 when a reply says "done": an integer > 0, or an array led by one. */
static int reply_positive(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        return r->element[0]->integer > 0;
    if (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING)
        return 1;
    return 0;
}

static void start_pair(struct worker *w, struct conn *k)
{
    snprintf(k->name, sizeof k->name, "%s%d_%ld_%lu", prefix, w->index,
             (long)(k - w->conns), k->seq++);
    k->releasing = 0;
    k->t_pair = now_us();
    send_cmd(k, &tpl_acquire);
}

static void on_reply(struct worker *w, struct conn *k, redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR) {
        w->errors++;
        if (atomic_fetch_add(&error_printed, 1) == 0)
            fprintf(stderr, "redis_pairs: error reply: %s\n", r->str);
    } else if (!k->releasing && !reply_positive(r)) {
        w->refused++;
    } else if (k->releasing && !reply_positive(r)) {
        w->not_released++;
    }
    if (!k->releasing) {
        k->releasing = 1;
        send_cmd(k, &tpl_release);
        return;
    }
    double now = now_us();
    if (now <= t_end) {
        w->pairs++;
        hist_add(&w->hist, now - k->t_pair);
    }
    if (now < t_end)
        start_pair(w, k);
    else
        k->releasing = -1; /* finished */
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pollfd *pfd = calloc((size_t)w->nconns, sizeof *pfd);
    int live = w->nconns;

    for (int i = 0; i < w->nconns; i++)
        start_pair(w, &w->conns[i]);
    while (live > 0) {
        for (int i = 0; i < w->nconns; i++) {
            struct conn *k = &w->conns[i];
            pfd[i].fd = k->releasing < 0 ? -1 : k->c->fd;
            pfd[i].events = (short)(POLLIN | (k->want_write ? POLLOUT : 0));
            pfd[i].revents = 0;
        }
        if (poll(pfd, (nfds_t)w->nconns, 100) < 0 && errno != EINTR) {
            perror("redis_pairs: poll");
            exit(1);
        }
        for (int i = 0; i < w->nconns; i++) {
            struct conn *k = &w->conns[i];
            void *reply;
            if (pfd[i].revents & POLLOUT) {
                int done = 0;
                if (redisBufferWrite(k->c, &done) != REDIS_OK)
                    exit(1);
                k->want_write = !done;
            }
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (redisBufferRead(k->c) != REDIS_OK) {
                fprintf(stderr, "redis_pairs: read: %s\n", k->c->errstr);
                exit(1);
            }
            while (k->releasing >= 0 &&
                   redisGetReplyFromReader(k->c, &reply) == REDIS_OK &&
                   reply != NULL) {
                on_reply(w, k, reply);
                freeReplyObject(reply);
                if (k->releasing < 0)
                    live--;
            }
        }
        if (now_us() > t_end + 10e6) {
            fprintf(stderr, "redis_pairs: %d connections unanswered\n", live);
            break;
        }
    }
    free(pfd);
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = 1, opt;

    while ((opt = getopt(argc, argv, "H:p:D:c:t:d:n:")) != -1) {
        switch (opt) {
        case 't':
            nthreads = (int)strtol(optarg, NULL, 10);
            break;
        case 'n':
            prefix = optarg;
            break;
        default:
            if (!bench_opt(&target, opt, optarg))
                goto usage;
        }
    }
    if (argc - optind != 2 || target.port <= 0 || target.conns < 1 ||
        nthreads < 1 || nthreads > target.conns)
        goto usage;
    tpl_read(&tpl_acquire, argv[optind]);
    tpl_read(&tpl_release, argv[optind + 1]);

    struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
    for (int i = 0; i < nthreads; i++) {
        ws[i].index = i;
        ws[i].nconns = target.conns / nthreads + (i < target.conns % nthreads);
        ws[i].conns = calloc((size_t)ws[i].nconns, sizeof *ws[i].conns);
        for (int j = 0; j < ws[i].nconns; j++)
            ws[i].conns[j].c = connect_nb();
    }
    double t0 = now_us();
    t_end = t0 + target.secs * 1e6;
    for (int i = 0; i < nthreads; i++)
        pthread_create(&ws[i].tid, NULL, worker_main, &ws[i]);
    struct hist all = {{0}, 0};
    unsigned long pairs = 0, refused = 0, notrel = 0, errors = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(ws[i].tid, NULL);
        pairs += ws[i].pairs;
        refused += ws[i].refused;
        notrel += ws[i].not_released;
        errors += ws[i].errors;
        hist_merge(&all, &ws[i].hist);
    }
    emit("duration_s", target.secs);
    emit("pairs", (double)pairs);
    emit("ops", (double)pairs);
    emit("ops_per_s", (double)pairs / target.secs);
    emit("rps", 2.0 * (double)pairs / target.secs);
    emit_hist_ms("", &all);
    emit("refused", (double)refused);
    emit("not_released", (double)notrel);
    emit("errors", (double)errors);
    for (int i = 0; i < nthreads; i++) {
        for (int j = 0; j < ws[i].nconns; j++)
            redisFree(ws[i].conns[j].c);
        free(ws[i].conns);
    }
    free(ws);
    return 0;
usage:
    fprintf(stderr, "usage: redis_pairs [-H host] -p port [-D db] [-c conns] "
                    "[-t threads] [-d seconds] [-n prefix] ACQUIRE RELEASE\n");
    return 2;
}
