/* timer_heap.c -- see timer_heap.h. */
#include "timer_heap.h"

#include <stdlib.h>

void timer_init(struct timer *t, timer_fn *fn)
{
    t->at_ns = 0;
    t->index = 0;
    t->armed = false;
    t->fn = fn;
}

static void place(struct timer_heap *h, size_t i, struct timer *t)
{
    h->slot[i] = t;
    t->index = i;
}

static void sift_up(struct timer_heap *h, size_t i)
{
    struct timer *t = h->slot[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->slot[parent]->at_ns <= t->at_ns)
            break;
        place(h, i, h->slot[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(struct timer_heap *h, size_t i)
{
    struct timer *t = h->slot[i];

    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len &&
            h->slot[child + 1]->at_ns < h->slot[child]->at_ns)
            child++;
        if (t->at_ns <= h->slot[child]->at_ns)
            break;
        place(h, i, h->slot[child]);
        i = child;
    }
    place(h, i, t);
}

int timer_heap_arm(struct timer_heap *h, struct timer *t, uint64_t at_ns)
{
    if (t->armed) {
        uint64_t was = t->at_ns;
        t->at_ns = at_ns;
        if (at_ns < was)
            sift_up(h, t->index);
        else
            sift_down(h, t->index);
        return 0;
    }
    if (h->len == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        struct timer **grown = realloc(h->slot, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        h->slot = grown;
        h->cap = cap;
    }
    t->at_ns = at_ns;
    t->armed = true;
    place(h, h->len++, t);
    sift_up(h, t->index);
    return 0;
}

int timer_heap_arm_earliest(struct timer_heap *h, struct timer *t,
                            uint64_t at_ns)
{
    if (t->armed && t->at_ns <= at_ns)
        return 0;
    return timer_heap_arm(h, t, at_ns);
}

void timer_heap_disarm(struct timer_heap *h, struct timer *t)
{
    size_t i = t->index;

    if (!t->armed)
        return;
    t->armed = false;
    h->len--;
    if (i == h->len)
        return;
    struct timer *moved = h->slot[h->len];
    place(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->index);
}

struct timer *timer_heap_first(const struct timer_heap *h)
{
    return h->len > 0 ? h->slot[0] : NULL;
}

size_t timer_heap_run(struct timer_heap *h, uint64_t now)
{
    size_t ran = 0;

    while (h->len > 0 && h->slot[0]->at_ns <= now) {
        struct timer *t = h->slot[0];
        timer_heap_disarm(h, t);
        t->fn(t);
        ran++;
    }
    return ran;
}

void timer_heap_free(struct timer_heap *h)
{
    free(h->slot);
    h->slot = NULL;
    h->len = h->cap = 0;
}
