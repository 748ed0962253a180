/* hot.c -- see hot.h. Each slot is a Space-Saving summary: a name already
 * tracked counts one more; a new one takes a free entry, or replaces the
 * entry with the smallest count, inheriting that count (plus one) as its
 * own and as its error. A query merges the slots of the window. One mutex:
 * only contended acquires come here, and those wait for Redis anyway. */
#include "stats/hot.h"

#include "clock.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS (HOT_WINDOW_S / HOT_SLOT_S)

struct slot {
    uint64_t epoch; /* clock seconds / HOT_SLOT_S this slot counts */
    size_t used;
    struct hot_entry e[HOT_TRACKED];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SLOTS];

static uint64_t epoch_now(void)
{
    return clock_now_ns() / (UINT64_C(1000000000) * HOT_SLOT_S);
}

static struct hot_entry *slot_entry(struct slot *s, enum hot_kind kind,
                                    const char *name)
{
    struct hot_entry *min = NULL;

    for (size_t i = 0; i < s->used; i++) {
        struct hot_entry *e = &s->e[i];
        if (e->kind == kind && strcmp(e->name, name) == 0)
            return e;
        if (min == NULL || e->waits < min->waits)
            min = e;
    }
    if (s->used < HOT_TRACKED) {
        min = &s->e[s->used++];
        *min = (struct hot_entry){.kind = kind};
    } else {
        *min = (struct hot_entry){
            .kind = kind, .waits = min->waits, .error = min->waits};
    }
    snprintf(min->name, sizeof min->name, "%s", name);
    return min;
}

void hot_record(enum hot_kind kind, const char *name, uint64_t wait_ns,
                bool granted)
{
    uint64_t epoch = epoch_now();
    struct slot *s = &slots[epoch % SLOTS];
    struct hot_entry *e;

    pthread_mutex_lock(&mu);
    if (s->epoch != epoch) {
        s->epoch = epoch;
        s->used = 0;
    }
    e = slot_entry(s, kind, name);
    e->waits++;
    e->wait_ns += wait_ns;
    e->grants += granted;
    pthread_mutex_unlock(&mu);
}

static int by_kind_name(const void *a, const void *b)
{
    const struct hot_entry *x = a, *y = b;

    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int by_waits(const void *a, const void *b)
{
    const struct hot_entry *x = a, *y = b;

    if (x->waits != y->waits)
        return x->waits > y->waits ? -1 : 1;
    return by_kind_name(a, b);
}

size_t hot_top(const char *prefix, struct hot_entry *out, size_t max)
{
    static struct hot_entry all[SLOTS * HOT_TRACKED];
    static pthread_mutex_t query_mu = PTHREAD_MUTEX_INITIALIZER;
    uint64_t epoch = epoch_now();
    size_t plen = strlen(prefix), n = 0, merged = 0;

    /* all is big for a stack: one query at a time uses it. */
    pthread_mutex_lock(&query_mu);
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < SLOTS; i++) {
        const struct slot *s = &slots[i];
        if (s->used == 0 || epoch - s->epoch >= SLOTS)
            continue;
        for (size_t j = 0; j < s->used; j++) {
            const char *name = s->e[j].name;
            if (plen > 0 ? strncmp(name, prefix, plen) == 0
                         : strchr(name, '/') == NULL)
                all[n++] = s->e[j];
        }
    }
    pthread_mutex_unlock(&mu);
    qsort(all, n, sizeof all[0], by_kind_name);
    for (size_t i = 0; i < n; i++) {
        if (merged > 0 && by_kind_name(&all[merged - 1], &all[i]) == 0) {
            struct hot_entry *m = &all[merged - 1];
            m->waits += all[i].waits;
            m->error += all[i].error;
            m->wait_ns += all[i].wait_ns;
            m->grants += all[i].grants;
        } else {
            all[merged++] = all[i];
        }
    }
    qsort(all, merged, sizeof all[0], by_waits);
    if (merged > max)
        merged = max;
    memcpy(out, all, merged * sizeof all[0]);
    pthread_mutex_unlock(&query_mu);
    return merged;
}
