/* registry.c -- see registry.h. Two hash tables of chains: waiters by id,
 * names by name; both sized from the waiter limit, so lookups stay short
 * and nothing grows past what max parked waiters need. */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

struct wait_name {
    struct wait_name *chain;
    struct wait_registry *reg;
    struct waiter *head, *tail;
    struct timer look; /* the holder's lease may end, or a hand-off lapse */
    char name[WAIT_NAME_MAX + 1];
};

static size_t hash(const char *s)
{
    size_t h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

static void on_look(struct timer *t)
{
    struct wait_name *wn =
        (struct wait_name *)((char *)t - offsetof(struct wait_name, look));

    wn->reg->ops->look(wn->reg, wn->name);
}

static void on_deadline(struct timer *t);

int wait_registry_init(struct wait_registry *r, struct loop *l, unsigned max,
                       const struct wait_registry_ops *ops, void *ctx)
{
    size_t n = 64;

    while (n < max && n < ((size_t)1 << 20))
        n *= 2;
    r->loop = l;
    r->ops = ops;
    r->ctx = ctx;
    r->buckets = n;
    r->parked = 0;
    r->max = max;
    r->by_id = calloc(n, sizeof *r->by_id);
    r->by_name = calloc(n, sizeof *r->by_name);
    if (r->by_id == NULL || r->by_name == NULL) {
        wait_registry_free(r);
        return -1;
    }
    return 0;
}

void wait_registry_free(struct wait_registry *r)
{
    free(r->by_id);
    free(r->by_name);
    r->by_id = NULL;
    r->by_name = NULL;
}

static struct wait_name **name_slot(struct wait_registry *r, const char *name)
{
    struct wait_name **p = &r->by_name[hash(name) & (r->buckets - 1)];

    while (*p != NULL && strcmp((*p)->name, name) != 0)
        p = &(*p)->chain;
    return p;
}

static struct waiter **id_slot(struct wait_registry *r, const char *id)
{
    struct waiter **p = &r->by_id[hash(id) & (r->buckets - 1)];

    while (*p != NULL && strcmp((*p)->id, id) != 0)
        p = &(*p)->id_next;
    return p;
}

int wait_park(struct wait_registry *r, struct waiter *w, const char *name,
              uint64_t deadline_ns, uint64_t look_at_ns)
{
    struct wait_name **slot, *wn;

    if (r->parked >= r->max)
        return -1;
    slot = name_slot(r, name);
    wn = *slot;
    if (wn == NULL) {
        wn = calloc(1, sizeof *wn);
        if (wn == NULL)
            return -1;
        wn->reg = r;
        memcpy(wn->name, name, strlen(name) + 1);
        timer_init(&wn->look, on_look);
        *slot = wn;
    }
    timer_init(&w->deadline, on_deadline);
    if (loop_timer_arm(r->loop, &w->deadline, deadline_ns) < 0 ||
        timer_heap_arm_earliest(&r->loop->timers, &wn->look, look_at_ns) < 0) {
        loop_timer_disarm(r->loop, &w->deadline);
        if (wn->head == NULL) {
            loop_timer_disarm(r->loop, &wn->look);
            *slot = wn->chain;
            free(wn);
        }
        return -1;
    }
    memcpy(w->name, name, strlen(name) + 1);
    w->reg = r;
    w->wn = wn;
    w->next = NULL;
    w->prev = wn->tail;
    if (wn->tail != NULL)
        wn->tail->next = w;
    else
        wn->head = w;
    wn->tail = w;
    struct waiter **ids = &r->by_id[hash(w->id) & (r->buckets - 1)];
    w->id_next = *ids;
    *ids = w;
    w->parked = true;
    r->parked++;
    return 0;
}

void wait_unpark(struct waiter *w)
{
    struct wait_registry *r = w->reg;
    struct wait_name *wn = w->wn;
    struct waiter **ids;

    if (!w->parked)
        return;
    w->parked = false;
    r->parked--;
    loop_timer_disarm(r->loop, &w->deadline);
    /* By pointer, not by id: an owner's ids are unique, but the chain must
     * not keep a waiter whatever they are. */
    ids = &r->by_id[hash(w->id) & (r->buckets - 1)];
    while (*ids != w)
        ids = &(*ids)->id_next;
    *ids = w->id_next;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        wn->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    else
        wn->tail = w->prev;
    w->prev = w->next = NULL;
    w->wn = NULL;
    if (wn->head == NULL) {
        struct wait_name **slot = name_slot(r, wn->name);
        loop_timer_disarm(r->loop, &wn->look);
        *slot = wn->chain;
        free(wn);
    }
}

static void on_deadline(struct timer *t)
{
    struct waiter *w =
        (struct waiter *)((char *)t - offsetof(struct waiter, deadline));

    wait_unpark(w);
    w->ops->wait_over(w);
}

struct waiter *wait_find(struct wait_registry *r, const char *id)
{
    return *id_slot(r, id);
}

bool wait_handed(struct wait_registry *r, const char *id)
{
    struct waiter *w = *id_slot(r, id);

    if (w == NULL)
        return false;
    wait_unpark(w);
    w->ops->handed(w);
    return true;
}

void wait_look_at(struct wait_registry *r, const char *name, uint64_t at_ns)
{
    struct wait_name *wn = *name_slot(r, name);

    if (wn != NULL)
        timer_heap_arm_earliest(&r->loop->timers, &wn->look, at_ns);
}

void wait_retry_name(struct wait_registry *r, const char *name)
{
    struct wait_name *wn;

    /* Each wake-up may free the name once its last waiter is gone. */
    while ((wn = *name_slot(r, name)) != NULL) {
        struct waiter *w = wn->head;
        wait_unpark(w);
        w->ops->retry(w);
    }
}

void wait_look_all(struct wait_registry *r)
{
    for (size_t i = 0; i < r->buckets; i++)
        for (struct wait_name *wn = r->by_name[i]; wn != NULL; wn = wn->chain)
            timer_heap_arm(&r->loop->timers, &wn->look, 0);
}

void wait_each_name(struct wait_registry *r,
                    void (*fn)(void *ctx, const char *name), void *ctx)
{
    for (size_t i = 0; i < r->buckets; i++)
        for (struct wait_name *wn = r->by_name[i]; wn != NULL; wn = wn->chain)
            fn(ctx, wn->name);
}

void wait_drain(struct wait_registry *r, void (*fn)(struct waiter *w))
{
    for (size_t i = 0; i < r->buckets; i++)
        while (r->by_name[i] != NULL) {
            struct waiter *w = r->by_name[i]->head;
            wait_unpark(w);
            fn(w);
        }
}

void wait_drain_if(struct wait_registry *r,
                   bool (*pick)(void *ctx, const char *name), void *ctx,
                   void (*fn)(struct waiter *w))
{
    for (size_t i = 0; i < r->buckets; i++)
        for (struct wait_name *wn = r->by_name[i], *next; wn != NULL;
             wn = next) {
            next = wn->chain;
            if (!pick(ctx, wn->name))
                continue;
            for (bool last = false; !last;) {
                struct waiter *w = wn->head;
                last = w->next == NULL; /* then wn goes with it */
                wait_unpark(w);
                fn(w);
            }
        }
}
