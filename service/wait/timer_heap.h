/* timer_heap.h -- a binary min-heap of timers ordered by their due time.
 *
 * Pure data structure: no clock, no threads. A timer is embedded in its
 * owner (a parked waiter, a name's holder-expiry watch, a Redis command
 * deadline) and linked here while armed; the heap never allocates a timer,
 * only its array of pointers, which grows by doubling and is bounded by the
 * number of timers armed at once. Used by one thread only. */
#ifndef LOCKSERVICE_TIMER_HEAP_H
#define LOCKSERVICE_TIMER_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct timer;
typedef void timer_fn(struct timer *t);

struct timer {
    uint64_t at_ns; /* when it is due (while armed) */
    size_t index;   /* its slot in the heap (while armed) */
    bool armed;
    timer_fn *fn; /* called when it fires, already disarmed */
};

struct timer_heap {
    struct timer **slot;
    size_t len, cap;
};

/* Sets t up to call fn when it fires; t starts disarmed. */
void timer_init(struct timer *t, timer_fn *fn);

/* Arms t at at_ns, or moves it there when armed already. Returns 0, or -1
 * when the heap cannot grow (t is then left as it was). */
int timer_heap_arm(struct timer_heap *h, struct timer *t, uint64_t at_ns);
/* Arms t at at_ns unless it is armed earlier already. Returns as above. */
int timer_heap_arm_earliest(struct timer_heap *h, struct timer *t,
                            uint64_t at_ns);
/* Disarms t; a disarmed t is left alone. */
void timer_heap_disarm(struct timer_heap *h, struct timer *t);
/* The earliest armed timer, or NULL. */
struct timer *timer_heap_first(const struct timer_heap *h);
/* Disarms and runs every timer due at or before now, earliest first. A
 * callback may arm and disarm timers, itself included. Returns how many
 * ran. */
size_t timer_heap_run(struct timer_heap *h, uint64_t now);
/* Frees the array (armed timers are forgotten, not run). */
void timer_heap_free(struct timer_heap *h);

#endif
