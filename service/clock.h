/* clock.h -- monotonic time in nanoseconds and milliseconds. */
#ifndef LOCKSERVICE_CLOCK_H
#define LOCKSERVICE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#define MS_TO_NS(ms) ((uint64_t)(ms)*1000000u)

/* Steps *ms, a backoff's wait, to the next one: first ms, then doubling
 * up to max ms (*ms is 0 before the first wait, and again after a
 * success). */
static inline void backoff_next(uint64_t *ms, uint64_t first, uint64_t max)
{
    *ms = *ms == 0 ? first : 2 * *ms;
    if (*ms > max)
        *ms = max;
}

#endif
