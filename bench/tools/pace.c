/* pace.c -- open-loop latency at a fixed request rate (bench/run, issue 9).
 *
 * usage: pace -m resp [-H host] -p port [-D db] [-r rate] [-c conns]
 *             [-d seconds] [-n name-prefix] [-s spin-us] [-o hist-file]
 * TEMPLATE pace -m http [-H host] -p port [-r rate] [-c conns] [-d seconds]
 *             [-n name-prefix] [-s spin-us] [-o hist-file] METHOD PATH [BODY]
 *
 * Requests go out on a fixed schedule: request s (s = 0, 1, 2, ...) is due
 * at t0 + s / rate, on connection s mod conns, whatever happened before. A
 * connection carries one request at a time (plain HTTP/1.1 keep-alive, or
 * RESP), so a slow answer delays the requests due after it on that
 * connection, and latency is measured from the *scheduled* time: the delay
 * counts (no coordinated omission). "@NAME@" in the RESP template (one
 * argument per line) or in PATH/BODY becomes a fresh name per request.
 *
 * Prints BENCH lines: ops, ops_per_s, p50/p99/p999/max from the scheduled
 * time; svc_p50/svc_p99 from the actual send; late (requests sent more than
 * 1 ms after their time), errors (error replies, non-2xx, broken answers).
 *
 * -o: also writes the histogram of the latencies from the scheduled time,
 * "bucket count" per line (bucket b: 1.01^b to 1.01^(b+1) us), so runs can be
 * pooled (bench/run does, for percentiles over all its rounds).
 *
 * -s (default 100): the tool polls without sleeping for the last spin-us
 * before each due time, so its own wake-up delay stays out of the figures
 * (it costs about spin-us * rate of one core: 10% at the defaults). */
#define _GNU_SOURCE
#include "benchlib.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static struct bench_opts target = {"127.0.0.1", 0, 0, 8, 10};

struct conn {
    int fd;
    int busy;
    double next, sched, sent;
    unsigned long seq;
    redisReader *reader;
    char *in;
    size_t inlen;
};

#define INCAP 65536

static int http_mode;
static const char *method, *path_tpl, *body_tpl = "";
static struct tpl resp_tpl;
static const char *prefix = "pl";
static unsigned long errors, late;
static double spin_us = 100;
static const char *hist_path;

static int connect_to(void)
{
    struct sockaddr_in sa;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)target.port);
    if (fd < 0 || inet_pton(AF_INET, target.host, &sa.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        fprintf(stderr, "pace: connect %s:%d: %s\n", target.host, target.port,
                strerror(errno));
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "pace: write: %s\n", strerror(errno));
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

static void send_request(struct conn *k, int idx)
{
    char name[96];
    snprintf(name, sizeof name, "%s%d_%lu", prefix, idx, k->seq++);
    if (http_mode) {
        char path[TPL_ARG_MAX], body[TPL_ARG_MAX], req[2048];
        fill_name(path, sizeof path, path_tpl, name);
        size_t bl = fill_name(body, sizeof body, body_tpl, name);
        int n = snprintf(req, sizeof req,
                         "%s %s HTTP/1.1\r\nHost: %s:%d\r\n"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         method, path, target.host, target.port, bl, body);
        if (n < 0 || (size_t)n >= sizeof req)
            exit(2);
        write_all(k->fd, req, (size_t)n);
    } else {
        static char buf[TPL_MAX_ARGS][TPL_ARG_MAX];
        const char *argv[TPL_MAX_ARGS];
        size_t lens[TPL_MAX_ARGS];
        char *cmd;
        for (int i = 0; i < resp_tpl.argc; i++) {
            lens[i] = fill_name(buf[i], sizeof buf[i], resp_tpl.argv[i], name);
            argv[i] = buf[i];
        }
        int n = redisFormatCommandArgv(&cmd, resp_tpl.argc, argv, lens);
        if (n < 0)
            exit(2);
        write_all(k->fd, cmd, (size_t)n);
        free(cmd);
    }
}

/* Returns 1 and consumes one whole HTTP answer from k->in when there is one
 * (*ok = 2xx), else 0. Answers carry Content-Length (both the service and
 * webdis send it). */
static int take_http(struct conn *k, int *ok)
{
    char *end = memmem(k->in, k->inlen, "\r\n\r\n", 4);
    size_t clen = 0, total;
    if (end == NULL)
        return 0;
    for (char *p = k->in; p < end; p++) {
        if ((p == k->in || p[-1] == '\n') &&
            strncasecmp(p, "content-length:", 15) == 0) {
            clen = (size_t)strtoul(p + 15, NULL, 10);
            break;
        }
    }
    total = (size_t)(end - k->in) + 4 + clen;
    if (k->inlen < total)
        return 0;
    *ok = k->inlen > 9 && k->in[9] == '2';
    memmove(k->in, k->in + total, k->inlen - total);
    k->inlen -= total;
    return 1;
}

/* Reads what arrived on k; returns 1 when its answer is complete. */
static int on_readable(struct conn *k)
{
    ssize_t n = read(k->fd, k->in + k->inlen, INCAP - k->inlen);
    int ok = 0;
    if (n <= 0) {
        fprintf(stderr, "pace: connection closed by the server\n");
        exit(1);
    }
    if (http_mode) {
        k->inlen += (size_t)n;
        if (!take_http(k, &ok))
            return 0;
    } else {
        void *reply = NULL;
        redisReaderFeed(k->reader, k->in, (size_t)n);
        if (redisReaderGetReply(k->reader, &reply) != REDIS_OK) {
            fprintf(stderr, "pace: protocol error\n");
            exit(1);
        }
        if (reply == NULL)
            return 0;
        ok = ((redisReply *)reply)->type != REDIS_REPLY_ERROR;
        freeReplyObject(reply);
    }
    if (!ok)
        errors++;
    return 1;
}

/* SELECT db on a RESP connection, before the schedule starts. */
static void select_db(struct conn *k)
{
    char cmd[64];
    int n = snprintf(cmd, sizeof cmd, "SELECT %d\r\n", target.db);
    write_all(k->fd, cmd, (size_t)n);
    if (!on_readable(k) || errors > 0) {
        fprintf(stderr, "pace: SELECT %d failed\n", target.db);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    int opt;
    double rate = 1000;

    while ((opt = getopt(argc, argv, "m:H:p:D:r:c:d:n:s:o:")) != -1) {
        switch (opt) {
        case 'm':
            http_mode = strcmp(optarg, "http") == 0;
            break;
        case 'r':
            rate = strtod(optarg, NULL);
            break;
        case 'n':
            prefix = optarg;
            break;
        case 's':
            spin_us = strtod(optarg, NULL);
            break;
        case 'o':
            hist_path = optarg;
            break;
        default:
            if (!bench_opt(&target, opt, optarg))
                goto usage;
        }
    }
    if (target.port <= 0 || rate <= 0 || target.conns < 1)
        goto usage;
    if (http_mode) {
        if (argc - optind < 2 || argc - optind > 3)
            goto usage;
        method = argv[optind];
        path_tpl = argv[optind + 1];
        if (argc - optind == 3)
            body_tpl = argv[optind + 2];
    } else {
        if (argc - optind != 1)
            goto usage;
        tpl_read(&resp_tpl, argv[optind]);
    }
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake on time, not 50 us late */

    struct conn *ks = calloc((size_t)target.conns, sizeof *ks);
    struct pollfd *pfd = calloc((size_t)target.conns, sizeof *pfd);
    struct hist sched_h = {{0}, 0}, svc_h = {{0}, 0};
    double gap = 1e6 / rate, t0, t_end;
    unsigned long answered = 0;

    for (int i = 0; i < target.conns; i++) {
        ks[i].fd = connect_to();
        ks[i].in = malloc(INCAP);
        ks[i].reader = redisReaderCreate();
        if (!http_mode && target.db != 0)
            select_db(&ks[i]);
    }
    t0 = now_us() + 100000;
    t_end = t0 + target.secs * 1e6;
    for (int i = 0; i < target.conns; i++)
        ks[i].next = t0 + i * gap;

    for (;;) {
        double now = now_us(), wake = t_end + 5e6;
        int busy = 0;
        for (int i = 0; i < target.conns; i++) {
            struct conn *k = &ks[i];
            if (!k->busy && k->next < t_end && k->next <= now) {
                k->sched = k->next;
                k->sent = now;
                if (now - k->sched > 1000)
                    late++;
                k->next += target.conns * gap;
                k->busy = 1;
                send_request(k, i);
            }
            if (!k->busy && k->next < t_end && k->next < wake)
                wake = k->next;
            busy += k->busy;
            pfd[i].fd = k->fd;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
        }
        if (busy == 0 && wake >= t_end)
            break;
        if (now > t_end + 5e6) {
            fprintf(stderr, "pace: %d answers missing\n", busy);
            errors += (unsigned long)busy;
            break;
        }
        /* Sleep until spin_us before the next send, then poll without
         * sleeping: a sleeping thread wakes tens of microseconds late, which
         * would be counted as latency (replies that arrive meanwhile are
         * stamped at once too). */
        double wait = wake - now_us() - spin_us;
        if (wait < 0)
            wait = 0;
        long long ns = (long long)(wait * 1e3);
        struct timespec ts = {(time_t)(ns / 1000000000),
                              (long)(ns % 1000000000)};
        if (ppoll(pfd, (nfds_t)target.conns, &ts, NULL) < 0 && errno != EINTR) {
            perror("pace: ppoll");
            return 1;
        }
        for (int i = 0; i < target.conns; i++) {
            struct conn *k = &ks[i];
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (!on_readable(k) || !k->busy)
                continue;
            double t = now_us();
            hist_add(&sched_h, t - k->sched);
            hist_add(&svc_h, t - k->sent);
            answered++;
            k->busy = 0;
        }
    }
    emit("duration_s", target.secs);
    emit("ops", (double)answered);
    emit("ops_per_s", (double)answered / target.secs);
    emit("rps", (double)answered / target.secs);
    emit_hist_ms("", &sched_h);
    if (hist_path != NULL) {
        FILE *f = fopen(hist_path, "w");
        if (f == NULL) {
            fprintf(stderr, "pace: %s: %s\n", hist_path, strerror(errno));
            return 1;
        }
        for (int b = 0; b < HIST_BUCKETS; b++)
            if (sched_h.n[b] > 0)
                fprintf(f, "%d %lu\n", b, sched_h.n[b]);
        fclose(f);
    }
    emit_hist_ms("svc_", &svc_h);
    emit("late", (double)late);
    emit("errors", (double)errors);
    for (int i = 0; i < target.conns; i++) {
        close(ks[i].fd);
        free(ks[i].in);
        redisReaderFree(ks[i].reader);
    }
    free(ks);
    free(pfd);
    return 0;
usage:
    fprintf(stderr,
            "usage: pace -m resp|http [-H host] -p port [-D db] [-r rate] "
            "[-c conns] [-d seconds] [-n prefix] [-s spin-us] [-o hist-file] "
            "TEMPLATE | METHOD PATH [BODY]\n");
    return 2;
}
