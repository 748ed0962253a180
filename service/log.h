/* log.h -- one line per event on stderr, as text or as one JSON object
 * (--log-format). Never pass a token or API key. */
#ifndef LOCKSERVICE_LOG_H
#define LOCKSERVICE_LOG_H

#include "config.h"

void log_set_level(enum log_level level);
void log_set_format(enum log_format format);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One answered (or abandoned) request. Strings are borrowed; NULL or ""
 * means absent: text leaves the field out, JSON writes null. key is the
 * API key's name, never the key. */
struct access_log {
    const char *method;
    const char *route; /* the route template, "-" when none matched */
    const char *name;  /* the {name} segment */
    unsigned status;
    const char *code; /* the problem code when the answer was a problem */
    double duration_ms;
    const char *client; /* the peer's numeric address */
    const char *key;
    const char *request_id;
    bool aborted; /* ended before its answer was delivered */
};
/* Writes a's line at level. */
void log_access(enum log_level level, const struct access_log *a);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
