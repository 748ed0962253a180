/* log.c -- timestamped lines on stderr, one write(2) each so lines from
 * worker threads never interleave. A line that does not fit its buffer is
 * cut, and in JSON still a whole object. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 1024

static enum log_level current_level = LOG_INFO;
static enum log_format current_format = LOG_FORMAT_TEXT;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* A line being built. In JSON each piece goes in whole or not at all (text
 * keeps the part that fits); after the first that did not fit, nothing
 * more does (cut), except the closing bytes, for which RESERVE stays
 * free. */
#define RESERVE 4
struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
    bool cut;
};

void log_set_level(enum log_level level)
{
    current_level = level;
}

void log_set_format(enum log_format format)
{
    current_format = format;
}

bool log_enabled(enum log_level level)
{
    return level <= current_level;
}

static void put_vf(struct line *l, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
static void put_vf(struct line *l, const char *fmt, va_list ap)
{
    size_t room = sizeof l->buf - RESERVE - l->len;
    int m;

    if (l->cut)
        return;
    m = vsnprintf(l->buf + l->len, room, fmt, ap);
    if (m < 0 || (size_t)m >= room) {
        /* Text keeps what fitted; JSON must not end inside an escape. */
        if (m >= 0 && current_format == LOG_FORMAT_TEXT)
            l->len += room - 1;
        l->cut = true;
        return;
    }
    l->len += (size_t)m;
}

static void put_f(struct line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put_f(struct line *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    put_vf(l, fmt, ap);
    va_end(ap);
}

/* A closing byte: goes in even after a cut (into the reserve). */
static void put_close(struct line *l, char c)
{
    if (l->len < sizeof l->buf)
        l->buf[l->len++] = c;
}

/* s as the body of a JSON string: quotes, backslashes and control bytes
 * escaped, bytes past ASCII replaced by '?' (what we log is ASCII; a client
 * byte that is not must not make the line invalid UTF-8). */
static void put_json_chars(struct line *l, const char *s)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            put_f(l, "\\%c", c);
        else if (c < 0x20)
            put_f(l, "\\u%04x", c);
        else
            put_f(l, "%c", c >= 0x7f ? '?' : c);
    }
}

/* ,"key":"value" or ,"key":null */
static void put_json_str(struct line *l, const char *key, const char *value)
{
    if (value == NULL || value[0] == '\0') {
        put_f(l, ",\"%s\":null", key);
        return;
    }
    put_f(l, ",\"%s\":\"", key);
    if (l->cut)
        return;
    put_json_chars(l, value);
    put_close(l, '"');
}

/* The line's start: the time and the level. */
static void put_head(struct line *l, enum log_level level)
{
    struct timespec ts;
    struct tm tm;
    char when[32];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    if (current_format == LOG_FORMAT_JSON)
        put_f(l, "{\"ts\":\"%s.%03ldZ\",\"level\":\"%s\"", when,
              ts.tv_nsec / 1000000, level_names[level]);
    else
        put_f(l, "%s.%03ldZ %s ", when, ts.tv_nsec / 1000000,
              level_names[level]);
}

/* Ends the line (closing the JSON object) and writes it. */
static void emit(struct line *l)
{
    if (current_format == LOG_FORMAT_JSON)
        put_close(l, '}');
    put_close(l, '\n');
    if (write(STDERR_FILENO, l->buf, l->len) < 0)
        return;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    struct line l = {.len = 0, .cut = false};
    char msg[LINE_MAX_BYTES];
    va_list ap;

    if (!log_enabled(level))
        return;
    put_head(&l, level);
    va_start(ap, fmt);
    if (current_format == LOG_FORMAT_JSON) {
        vsnprintf(msg, sizeof msg, fmt, ap);
        put_json_str(&l, "msg", msg);
    } else {
        put_vf(&l, fmt, ap);
    }
    va_end(ap);
    emit(&l);
}

/* " key=value" when value is set. */
static void put_text_field(struct line *l, const char *key, const char *value)
{
    if (value != NULL && value[0] != '\0')
        put_f(l, " %s=%s", key, value);
}

void log_access(enum log_level level, const struct access_log *a)
{
    struct line l = {.len = 0, .cut = false};

    if (!log_enabled(level))
        return;
    put_head(&l, level);
    if (current_format == LOG_FORMAT_JSON) {
        put_json_str(&l, "msg", "request");
        put_json_str(&l, "method", a->method);
        put_json_str(&l, "route", a->route);
        put_json_str(&l, "name", a->name);
        put_f(&l, ",\"status\":%u", a->status);
        put_json_str(&l, "code", a->code);
        put_f(&l, ",\"duration_ms\":%.3f", a->duration_ms);
        put_json_str(&l, "client", a->client);
        put_json_str(&l, "key", a->key);
        put_json_str(&l, "request_id", a->request_id);
        put_f(&l, ",\"aborted\":%s", a->aborted ? "true" : "false");
    } else {
        put_f(&l, "%s %s %u %.3fms", a->method, a->route, a->status,
              a->duration_ms);
        put_text_field(&l, "name", a->name);
        put_text_field(&l, "code", a->code);
        put_text_field(&l, "key", a->key);
        put_text_field(&l, "client", a->client);
        put_text_field(&l, "request_id", a->request_id);
        if (a->aborted)
            put_f(&l, " (aborted)");
    }
    emit(&l);
}
