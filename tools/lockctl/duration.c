/* duration.c -- durations on the command line: "500ms", "30s", "2m", "1h",
 * or plain seconds with an optional fraction ("1.5", like flock -w). */
#include "lockctl.h"

#include <string.h>

#define DURATION_MAX_MS (30L * 24 * 3600 * 1000)

int duration_parse(const char *s, long *ms)
{
    long whole = 0, frac = 0, frac_scale = 1;
    const char *p = s;
    bool digits = false;

    while (*p >= '0' && *p <= '9') {
        whole = whole * 10 + (*p++ - '0');
        digits = true;
        if (whole > DURATION_MAX_MS)
            return -1;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (frac_scale < 1000000) {
                frac = frac * 10 + (*p - '0');
                frac_scale *= 10;
            }
            p++;
            digits = true;
        }
    }
    if (!digits)
        return -1;

    long unit;
    if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "s") == 0 || *p == '\0')
        unit = 1000;
    else if (strcmp(p, "m") == 0)
        unit = 60 * 1000;
    else if (strcmp(p, "h") == 0)
        unit = 3600 * 1000;
    else
        return -1;
    if (whole > DURATION_MAX_MS / unit)
        return -1;
    long total = whole * unit + frac * unit / frac_scale;
    if (total > DURATION_MAX_MS)
        return -1;
    *ms = total;
    return 0;
}

void duration_format(long ms, char *out, size_t len)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(out, len, "%ldh", ms / 3600000);
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(out, len, "%ldm", ms / 60000);
    else if (ms % 1000 == 0)
        snprintf(out, len, "%lds", ms / 1000);
    else if (ms > 1000)
        snprintf(out, len, "%ld.%lds", ms / 1000, ms % 1000 / 100);
    else
        snprintf(out, len, "%ldms", ms);
}
