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

#endif
