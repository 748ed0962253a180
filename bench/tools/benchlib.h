/* benchlib.h -- small helpers shared by the C load tools in bench/tools/:
 * a monotonic clock in microseconds, a latency histogram with 1% log buckets
 * (the same bucketing as bench/common.lua), "BENCH key=value" output lines
 * (parsed by bench/run), argument templates read from files, and the
 * options every tool takes.
 *
 * Header-only (static functions) so each tool is one cc invocation. */
#ifndef BENCHLIB_H
#define BENCHLIB_H

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Buckets of 1% width from 1 us to about 8 s (1.01^1600 = 8.4e6). */
#define HIST_BUCKETS 1600
struct hist {
    unsigned long n[HIST_BUCKETS];
    unsigned long total;
};

static inline void hist_add(struct hist *h, double us)
{
    int b = us <= 1.0 ? 0 : (int)(log(us) / log(1.01));
    if (b >= HIST_BUCKETS)
        b = HIST_BUCKETS - 1;
    h->n[b]++;
    h->total++;
}

static inline void hist_merge(struct hist *into, const struct hist *from)
{
    for (int i = 0; i < HIST_BUCKETS; i++)
        into->n[i] += from->n[i];
    into->total += from->total;
}

/* The p-th percentile in microseconds (bucket middle), 0 when empty. */
static inline double hist_pct(const struct hist *h, double p)
{
    double want = (double)h->total * p / 100.0, seen = 0;
    if (h->total == 0)
        return 0;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        seen += (double)h->n[i];
        if (seen >= want && h->n[i] > 0)
            return pow(1.01, i + 0.5);
    }
    return pow(1.01, HIST_BUCKETS);
}

static inline void emit(const char *k, double v)
{
    printf("BENCH %s=%.3f\n", k, v);
}

static inline void emit_hist_ms(const char *prefix, const struct hist *h)
{
    char k[64];
    snprintf(k, sizeof k, "%sp50_ms", prefix);
    emit(k, hist_pct(h, 50) / 1000);
    snprintf(k, sizeof k, "%sp99_ms", prefix);
    emit(k, hist_pct(h, 99) / 1000);
    snprintf(k, sizeof k, "%sp999_ms", prefix);
    emit(k, hist_pct(h, 99.9) / 1000);
    snprintf(k, sizeof k, "%smax_ms", prefix);
    emit(k, hist_pct(h, 100) / 1000);
}

/* A command template: one argument per line of a file (an empty line is an
 * empty argument). "@NAME@" inside an argument stands for a lock name that
 * the tool fills in per request. */
#define TPL_MAX_ARGS 32
#define TPL_ARG_MAX 512
struct tpl {
    int argc;
    char *argv[TPL_MAX_ARGS];
};

/* Reads PATH into t; exits with a message on failure. The strings are owned
 * by t for the life of the process. */
static inline void tpl_read(struct tpl *t, const char *path)
{
    char line[TPL_ARG_MAX];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(2);
    }
    t->argc = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (t->argc == TPL_MAX_ARGS) {
            fprintf(stderr, "%s: more than %d arguments\n", path, TPL_MAX_ARGS);
            exit(2);
        }
        t->argv[t->argc] = strdup(line);
        if (t->argv[t->argc] == NULL)
            exit(2);
        t->argc++;
    }
    fclose(f);
    if (t->argc == 0) {
        fprintf(stderr, "%s: empty template\n", path);
        exit(2);
    }
}

/* Writes SRC into DST (of size CAP) with every "@NAME@" replaced by NAME;
 * returns the length, or exits when it does not fit. */
static inline size_t fill_name(char *dst, size_t cap, const char *src,
                               const char *name)
{
    size_t len = 0, nl = strlen(name);
    while (*src) {
        size_t add;
        const char *from;
        if (strncmp(src, "@NAME@", 6) == 0) {
            from = name;
            add = nl;
            src += 6;
        } else {
            from = src;
            add = 1;
            src++;
        }
        if (len + add + 1 > cap) {
            fprintf(stderr, "template argument too long\n");
            exit(2);
        }
        memcpy(dst + len, from, add);
        len += add;
    }
    dst[len] = '\0';
    return len;
}

/* Where a tool goes and for how long: -H host, -p port, -D database, -c
 * connections, -d seconds. */
struct bench_opts {
    const char *host;
    int port, db, conns;
    double secs;
};

/* Takes getopt's option opt (argument arg) into o when it is one of the
 * above. Returns whether it was. */
static inline bool bench_opt(struct bench_opts *o, int opt, const char *arg)
{
    switch (opt) {
    case 'H':
        o->host = arg;
        return true;
    case 'p':
        o->port = (int)strtol(arg, NULL, 10);
        return true;
    case 'D':
        o->db = (int)strtol(arg, NULL, 10);
        return true;
    case 'c':
        o->conns = (int)strtol(arg, NULL, 10);
        return true;
    case 'd':
        o->secs = strtod(arg, NULL);
        return true;
    default:
        return false;
    }
}

#endif
