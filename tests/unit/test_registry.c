/* test_registry.c -- unit tests for service/wait/registry.c on a real
 * struct loop, with a fake owner whose callbacks record which wake-up
 * reached which waiter, in what order, and whether the waiter was already
 * unparked. Time is driven by running the loop's timer heap at chosen
 * instants (and once by loop_run_once against the clock). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "loop.h"
#include "wait/registry.h"

enum wake { WAKE_HANDED, WAKE_OVER, WAKE_RETRY, WAKE_LOOK, WAKE_DRAIN };

static const char *const wake_names[] = {"handed", "wait_over", "retry", "look",
                                         "drain"};

struct event {
    enum wake wake;
    struct waiter *w; /* NULL for a look */
    bool parked;      /* w->parked inside the callback */
    unsigned reg_parked;
    char name[WAIT_NAME_MAX + 1];
};

#define EVENTS_MAX 8192

static struct event events[EVENTS_MAX];
static size_t nevents;

static struct loop loop;
static struct wait_registry reg;
static uint64_t base; /* "now" at setup; every test time is relative */
static int owner_ctx;

/* What a callback does besides recording (to test re-entrant owners). */
static void (*on_wake)(enum wake wake, struct waiter *w, const char *name);

static void record(enum wake wake, struct waiter *w, const char *name)
{
    struct event *e;

    assert_true(nevents < EVENTS_MAX);
    e = &events[nevents++];
    e->wake = wake;
    e->w = w;
    e->parked = w != NULL && w->parked;
    e->reg_parked = reg.parked;
    snprintf(e->name, sizeof e->name, "%s", name);
    if (on_wake != NULL)
        on_wake(wake, w, name);
}

static void fake_handed(struct waiter *w)
{
    record(WAKE_HANDED, w, w->name);
}

static void fake_wait_over(struct waiter *w)
{
    record(WAKE_OVER, w, w->name);
}

static void fake_retry(struct waiter *w)
{
    record(WAKE_RETRY, w, w->name);
}

static void fake_look(struct wait_registry *r, const char *name)
{
    assert_ptr_equal(r, &reg);
    assert_ptr_equal(r->ctx, &owner_ctx);
    record(WAKE_LOOK, NULL, name);
}

static void fake_drain(struct waiter *w)
{
    record(WAKE_DRAIN, w, w->name);
}

static const struct waiter_ops fake_ops = {fake_handed, fake_wait_over,
                                           fake_retry};
static const struct wait_registry_ops fake_reg_ops = {fake_look};

static void registry_up(unsigned max)
{
    assert_int_equal(
        wait_registry_init(&reg, &loop, max, &fake_reg_ops, &owner_ctx), 0);
}

static int setup(void **state)
{
    (void)state;
    nevents = 0;
    on_wake = NULL;
    if (loop_init(&loop) < 0)
        return -1;
    registry_up(64);
    base = clock_now_ns();
    return 0;
}

static void forget(struct waiter *w)
{
    (void)w;
}

static int teardown(void **state)
{
    (void)state;
    on_wake = NULL;
    wait_drain(&reg, forget); /* frees the names left */
    wait_registry_free(&reg);
    loop_free(&loop);
    return 0;
}

/* Base-relative milliseconds. */
static uint64_t at_ms(uint64_t ms)
{
    return base + MS_TO_NS(ms);
}

static void waiter_set(struct waiter *w, const char *id)
{
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    w->ops = &fake_ops;
}

/* Parks w (id set) under name with a deadline and a look at, in ms. */
static void park(struct waiter *w, const char *name, uint64_t deadline_ms,
                 uint64_t look_ms)
{
    if (wait_park(&reg, w, name, at_ms(deadline_ms), at_ms(look_ms)) != 0) {
        print_error("park %s under %s failed\n", w->id, name);
        fail();
    }
    assert_true(w->parked);
}

/* Runs the timers due at ms. Returns how many ran. */
static size_t run_to(uint64_t ms)
{
    return timer_heap_run(&loop.timers, at_ms(ms));
}

static void expect_event(size_t i, enum wake wake, const struct waiter *w,
                         const char *name)
{
    if (i >= nevents) {
        print_error("event %zu: none (%zu events), expected %s\n", i, nevents,
                    wake_names[wake]);
        fail();
    }
    const struct event *e = &events[i];
    if (e->wake != wake || e->w != w || strcmp(e->name, name) != 0) {
        print_error("event %zu: %s of %s under %s, expected %s of %s under "
                    "%s\n",
                    i, wake_names[e->wake], e->w ? e->w->id : "-", e->name,
                    wake_names[wake], w ? w->id : "-", name);
        fail();
    }
    /* Every wake-up unparks the waiter before it is called. */
    assert_false(e->parked);
}

/* ---- parking -------------------------------------------------------------*/

static void test_init_sizes(void **state)
{
    (void)state;
    assert_int_equal(reg.parked, 0);
    assert_int_equal(reg.max, 64);
    assert_true(reg.buckets >= 64);
    assert_int_equal(reg.buckets & (reg.buckets - 1), 0);
    assert_ptr_equal(reg.loop, &loop);
    assert_ptr_equal(reg.ctx, &owner_ctx);
    wait_registry_free(&reg);
    registry_up(1000);
    assert_true(reg.buckets >= 1000);
    assert_int_equal(reg.buckets & (reg.buckets - 1), 0);
}

static void test_park_unpark(void **state)
{
    (void)state;
    static struct waiter w;

    waiter_set(&w, "i:0:1");
    park(&w, "lock:a", 1000, 500);
    assert_int_equal(reg.parked, 1);
    assert_string_equal(w.name, "lock:a");
    assert_ptr_equal(w.reg, &reg);
    assert_true(w.deadline.armed);
    assert_int_equal(w.deadline.at_ns, at_ms(1000));
    /* The deadline and the name's look. */
    assert_int_equal(loop.timers.len, 2);

    wait_unpark(&w);
    assert_false(w.parked);
    assert_int_equal(reg.parked, 0);
    assert_false(w.deadline.armed);
    /* The name went with its last waiter, and its look timer too. */
    assert_int_equal(loop.timers.len, 0);
    assert_int_equal(nevents, 0);
    /* Again: left alone. */
    wait_unpark(&w);
    assert_int_equal(reg.parked, 0);
    assert_false(wait_handed(&reg, "i:0:1"));
    assert_int_equal(run_to(100000), 0);
    assert_int_equal(nevents, 0);
}

/* A waiter that was never parked (zeroed) is left alone. */
static void test_unpark_never_parked(void **state)
{
    (void)state;
    static struct waiter w;

    waiter_set(&w, "i:0:1");
    wait_unpark(&w);
    assert_false(w.parked);
    assert_int_equal(reg.parked, 0);
}

/* ---- wake-ups ------------------------------------------------------------*/

static void test_handed_by_id(void **state)
{
    (void)state;
    static struct waiter w[3];

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    waiter_set(&w[2], "i:1:1");
    park(&w[0], "lock:a", 1000, 500);
    park(&w[1], "lock:a", 1000, 500);
    park(&w[2], "lock:b", 1000, 500);

    assert_true(wait_handed(&reg, "i:0:2"));
    assert_int_equal(nevents, 1);
    expect_event(0, WAKE_HANDED, &w[1], "lock:a");
    assert_int_equal(events[0].reg_parked, 2); /* unparked before the call */
    assert_false(w[1].parked);
    assert_false(w[1].deadline.armed);
    assert_true(w[0].parked);
    assert_true(w[2].parked);
    assert_int_equal(reg.parked, 2);

    /* Unknown ids, and the one just handed. */
    assert_false(wait_handed(&reg, "i:0:2"));
    assert_false(wait_handed(&reg, "nope"));
    assert_false(wait_handed(&reg, ""));
    assert_false(wait_handed(&reg, "i:0:"));
    assert_int_equal(nevents, 1);

    /* The name keeps its look timer while a waiter is left. */
    assert_int_equal(run_to(500), 2);
    expect_event(1, WAKE_LOOK, NULL, "lock:a");
    expect_event(2, WAKE_LOOK, NULL, "lock:b");

    assert_true(wait_handed(&reg, "i:1:1"));
    assert_true(wait_handed(&reg, "i:0:1"));
    expect_event(3, WAKE_HANDED, &w[2], "lock:b");
    expect_event(4, WAKE_HANDED, &w[0], "lock:a");
    assert_int_equal(reg.parked, 0);
    assert_int_equal(loop.timers.len, 0);
    /* Their deadlines are gone with them. */
    assert_int_equal(run_to(100000), 0);
    assert_int_equal(nevents, 5);
}

static void test_deadline(void **state)
{
    (void)state;
    static struct waiter w[3];

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    waiter_set(&w[2], "i:0:3");
    park(&w[0], "lock:a", 200, 10000);
    park(&w[1], "lock:a", 100, 10000);
    park(&w[2], "lock:b", 300, 10000);

    assert_int_equal(run_to(99), 0);
    assert_int_equal(run_to(150), 1);
    expect_event(0, WAKE_OVER, &w[1], "lock:a");
    assert_int_equal(events[0].reg_parked, 2);
    assert_false(w[1].parked);
    assert_int_equal(reg.parked, 2);

    assert_int_equal(run_to(300), 2);
    expect_event(1, WAKE_OVER, &w[0], "lock:a");
    expect_event(2, WAKE_OVER, &w[2], "lock:b");
    assert_int_equal(reg.parked, 0);
    /* Both names went with their last waiters, looks and all. */
    assert_int_equal(loop.timers.len, 0);
    assert_false(wait_handed(&reg, "i:0:1"));
}

/* The look and the deadline through the real loop: loop_run_once against
 * the clock. */
static void test_deadline_on_loop(void **state)
{
    (void)state;
    static struct waiter w;
    uint64_t start = clock_now_ns();

    waiter_set(&w, "i:0:1");
    assert_int_equal(wait_park(&reg, &w, "lock:a", start + MS_TO_NS(30),
                               start + MS_TO_NS(5)),
                     0);
    while (nevents < 2 && clock_now_ns() - start < MS_TO_NS(5000))
        loop_run_once(&loop, 50);
    assert_int_equal(nevents, 2);
    expect_event(0, WAKE_LOOK, NULL, "lock:a");
    expect_event(1, WAKE_OVER, &w, "lock:a");
    /* Never early. */
    assert_true(clock_now_ns() >= start + MS_TO_NS(30));
    assert_int_equal(reg.parked, 0);
    assert_int_equal(loop.timers.len, 0);
}

static void test_look_timer(void **state)
{
    (void)state;
    static struct waiter w[2];

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    park(&w[0], "lock:a", 60000, 1000);
    park(&w[1], "lock:b", 60000, 2000);

    assert_int_equal(run_to(999), 0);
    assert_int_equal(run_to(1000), 1);
    expect_event(0, WAKE_LOOK, NULL, "lock:a");
    /* A look wakes nobody. */
    assert_true(w[0].parked);
    assert_int_equal(reg.parked, 2);
    /* It fired once; the owner arms it again with wait_look_at. */
    assert_int_equal(run_to(1999), 0);
    wait_look_at(&reg, "lock:a", at_ms(3000));
    assert_int_equal(run_to(2000), 1);
    expect_event(1, WAKE_LOOK, NULL, "lock:b");
    assert_int_equal(run_to(3000), 1);
    expect_event(2, WAKE_LOOK, NULL, "lock:a");
    assert_int_equal(nevents, 3);
}

static void test_look_at_earlier_not_later(void **state)
{
    (void)state;
    static struct waiter w[2];
    size_t timers;

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    park(&w[0], "lock:a", 60000, 1000);

    /* Later: the earlier look stands. */
    wait_look_at(&reg, "lock:a", at_ms(5000));
    assert_int_equal(run_to(1000), 1);
    expect_event(0, WAKE_LOOK, NULL, "lock:a");

    wait_look_at(&reg, "lock:a", at_ms(5000));
    /* Earlier: moves. */
    wait_look_at(&reg, "lock:a", at_ms(1500));
    assert_int_equal(run_to(1499), 0);
    assert_int_equal(run_to(1500), 1);
    expect_event(1, WAKE_LOOK, NULL, "lock:a");
    assert_int_equal(run_to(10000), 0);

    /* Parking another waiter under the name moves the look earlier, never
     * later. */
    wait_look_at(&reg, "lock:a", at_ms(20000));
    park(&w[1], "lock:a", 60000, 30000);
    assert_int_equal(w[0].deadline.armed, true);
    assert_int_equal(run_to(20000), 1);
    expect_event(2, WAKE_LOOK, NULL, "lock:a");
    wait_look_at(&reg, "lock:a", at_ms(25000));
    wait_unpark(&w[1]);
    park(&w[1], "lock:a", 60000, 21000);
    assert_int_equal(run_to(21000), 1);
    expect_event(3, WAKE_LOOK, NULL, "lock:a");

    /* A name nobody waits for: nothing is armed. */
    timers = loop.timers.len;
    wait_look_at(&reg, "lock:zzz", at_ms(1));
    wait_look_at(&reg, "", at_ms(1));
    assert_int_equal(loop.timers.len, timers);
    assert_int_equal(nevents, 4);
}

static void test_retry_name(void **state)
{
    (void)state;
    static struct waiter a[3], b[2];

    waiter_set(&a[0], "i:0:1");
    waiter_set(&b[0], "i:0:2");
    waiter_set(&a[1], "i:0:3");
    waiter_set(&b[1], "i:0:4");
    waiter_set(&a[2], "i:0:5");
    park(&a[0], "lock:a", 60000, 1000);
    park(&b[0], "lock:b", 60000, 1000);
    park(&a[1], "lock:a", 60000, 1000);
    park(&b[1], "lock:b", 60000, 1000);
    park(&a[2], "lock:a", 60000, 1000);

    wait_retry_name(&reg, "lock:a");
    assert_int_equal(nevents, 3);
    expect_event(0, WAKE_RETRY, &a[0], "lock:a");
    expect_event(1, WAKE_RETRY, &a[1], "lock:a");
    expect_event(2, WAKE_RETRY, &a[2], "lock:a");
    assert_true(b[0].parked);
    assert_true(b[1].parked);
    assert_int_equal(reg.parked, 2);
    /* Only lock:b's look is left. */
    assert_int_equal(run_to(1000), 1);
    expect_event(3, WAKE_LOOK, NULL, "lock:b");

    /* Names nobody waits for. */
    wait_retry_name(&reg, "lock:a");
    wait_retry_name(&reg, "lock:c");
    wait_retry_name(&reg, "lock:");
    assert_int_equal(nevents, 4);

    /* The waiter left in the middle of the name is skipped. */
    waiter_set(&a[0], "i:0:1");
    waiter_set(&a[1], "i:0:3");
    waiter_set(&a[2], "i:0:5");
    park(&a[0], "lock:a", 60000, 1000);
    park(&a[1], "lock:a", 60000, 1000);
    park(&a[2], "lock:a", 60000, 1000);
    wait_unpark(&a[1]);
    wait_retry_name(&reg, "lock:a");
    assert_int_equal(nevents, 6);
    expect_event(4, WAKE_RETRY, &a[0], "lock:a");
    expect_event(5, WAKE_RETRY, &a[2], "lock:a");

    wait_retry_name(&reg, "lock:b");
    expect_event(6, WAKE_RETRY, &b[0], "lock:b");
    expect_event(7, WAKE_RETRY, &b[1], "lock:b");
    assert_int_equal(reg.parked, 0);
    assert_int_equal(loop.timers.len, 0);
}

static void test_look_all(void **state)
{
    (void)state;
    static const char *const names[] = {"lock:a", "lock:b", "lock:c"};
    static struct waiter w[4];
    bool seen[3] = {false, false, false};

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    waiter_set(&w[2], "i:0:3");
    waiter_set(&w[3], "i:0:4");
    park(&w[0], "lock:a", 60000, 50000);
    park(&w[1], "lock:b", 60000, 50000);
    park(&w[2], "lock:c", 60000, 50000);
    park(&w[3], "lock:a", 60000, 50000);
    /* lock:c's look has fired already: look_all arms it again. */
    wait_look_at(&reg, "lock:c", at_ms(10));
    assert_int_equal(run_to(10), 1);
    expect_event(0, WAKE_LOOK, NULL, "lock:c");
    nevents = 0;

    wait_look_all(&reg);
    /* Due at once: every name with waiters, once each, and nothing else. */
    assert_int_equal(run_to(11), 3);
    assert_int_equal(nevents, 3);
    for (size_t i = 0; i < nevents; i++) {
        assert_int_equal(events[i].wake, WAKE_LOOK);
        for (size_t j = 0; j < 3; j++)
            if (strcmp(events[i].name, names[j]) == 0) {
                assert_false(seen[j]);
                seen[j] = true;
            }
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    assert_int_equal(reg.parked, 4);
    /* With no waiters, nothing to look at. */
    wait_drain(&reg, forget);
    wait_look_all(&reg);
    assert_int_equal(loop.timers.len, 0);
}

static void test_drain(void **state)
{
    (void)state;
    static const char *const names[] = {"lock:a", "lock:b", "lock:c"};
    static struct waiter w[7];
    char id[16];

    for (int i = 0; i < 7; i++) {
        snprintf(id, sizeof id, "i:0:%d", i);
        waiter_set(&w[i], id);
        park(&w[i], names[i % 3], 60000, 1000);
    }
    wait_drain(&reg, fake_drain);
    assert_int_equal(nevents, 7);
    assert_int_equal(reg.parked, 0);
    assert_int_equal(loop.timers.len, 0);
    /* Each waiter once; within a name, oldest first. */
    for (int i = 0; i < 7; i++) {
        size_t n = 0, pos = 0;
        for (size_t j = 0; j < nevents; j++)
            if (events[j].w == &w[i]) {
                n++;
                pos = j;
                assert_int_equal(events[j].wake, WAKE_DRAIN);
                assert_false(events[j].parked);
            }
        assert_int_equal(n, 1);
        for (size_t j = pos + 1; j < nevents; j++)
            if (strcmp(events[j].name, names[i % 3]) == 0)
                assert_true(events[j].w > &w[i]);
    }
    wait_drain(&reg, fake_drain);
    assert_int_equal(nevents, 7);
    assert_int_equal(run_to(100000), 0);
}

static void test_max(void **state)
{
    (void)state;
    static struct waiter w[4];
    size_t timers;

    wait_registry_free(&reg);
    registry_up(3);
    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    waiter_set(&w[2], "i:0:3");
    waiter_set(&w[3], "i:0:4");
    park(&w[0], "lock:a", 60000, 1000);
    park(&w[1], "lock:a", 60000, 1000);
    park(&w[2], "lock:b", 60000, 1000);
    timers = loop.timers.len;
    assert_int_equal(wait_park(&reg, &w[3], "lock:a", at_ms(60000), at_ms(1)),
                     -1);
    assert_int_equal(wait_park(&reg, &w[3], "lock:c", at_ms(60000), at_ms(1)),
                     -1);
    assert_false(w[3].parked);
    assert_int_equal(reg.parked, 3);
    /* The refused park left no timer, no look moved, no name behind. */
    assert_int_equal(loop.timers.len, timers);
    wait_look_at(&reg, "lock:c", at_ms(1));
    assert_int_equal(loop.timers.len, timers);
    assert_false(wait_handed(&reg, "i:0:4"));
    assert_int_equal(run_to(999), 0);

    wait_unpark(&w[1]);
    park(&w[3], "lock:c", 60000, 1000);
    assert_int_equal(reg.parked, 3);
    assert_int_equal(wait_park(&reg, &w[1], "lock:a", at_ms(60000), at_ms(1)),
                     -1);
    assert_true(wait_handed(&reg, "i:0:4"));
    expect_event(0, WAKE_HANDED, &w[3], "lock:c");

    /* max 0: nobody parks. */
    wait_drain(&reg, forget);
    wait_registry_free(&reg);
    registry_up(0);
    assert_int_equal(wait_park(&reg, &w[0], "lock:a", at_ms(60000), at_ms(1)),
                     -1);
    assert_int_equal(loop.timers.len, 0);
}

/* A name leaves with its last waiter: parked again, it starts afresh (its
 * old look does not linger). */
static void test_name_freed_and_reused(void **state)
{
    (void)state;
    static struct waiter w[2];

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    park(&w[0], "lock:a", 60000, 100);
    assert_true(wait_handed(&reg, "i:0:1"));
    assert_int_equal(loop.timers.len, 0);

    park(&w[1], "lock:a", 60000, 5000);
    assert_int_equal(loop.timers.len, 2);
    assert_int_equal(run_to(4999), 0);
    assert_int_equal(run_to(5000), 1);
    expect_event(1, WAKE_LOOK, NULL, "lock:a");
    wait_retry_name(&reg, "lock:a");
    expect_event(2, WAKE_RETRY, &w[1], "lock:a");

    /* The same waiter, parked again and again under the same name. */
    for (int i = 0; i < 100; i++) {
        park(&w[0], "lock:a", 60000, 1000);
        assert_int_equal(reg.parked, 1);
        wait_unpark(&w[0]);
    }
    assert_int_equal(loop.timers.len, 0);
    assert_int_equal(nevents, 3);
}

/* ---- owners that act from inside a wake-up ------------------------------*/

static struct waiter *repark;

/* handed: park the waiter again under its name (a lapsed claim). */
static void repark_once(enum wake wake, struct waiter *w, const char *name)
{
    if (wake == WAKE_HANDED && w == repark) {
        char copy[WAIT_NAME_MAX + 1];
        snprintf(copy, sizeof copy, "%s", name);
        repark = NULL;
        park(w, copy, 2000, 1500);
    }
}

static void test_repark_from_callback(void **state)
{
    (void)state;
    static struct waiter w[2];

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    park(&w[0], "lock:a", 60000, 10000);
    park(&w[1], "lock:a", 60000, 10000);
    repark = &w[0];
    on_wake = repark_once;
    assert_true(wait_handed(&reg, "i:0:1"));
    assert_true(w[0].parked);
    assert_int_equal(reg.parked, 2);
    /* Now behind w[1]. */
    wait_retry_name(&reg, "lock:a");
    expect_event(1, WAKE_RETRY, &w[1], "lock:a");
    expect_event(2, WAKE_RETRY, &w[0], "lock:a");

    /* The last waiter of lock:b, re-parked: the name comes back with the
     * new look time, and the deadline is the new one. */
    park(&w[0], "lock:b", 100, 10000);
    repark = &w[0];
    nevents = 0;
    assert_true(wait_handed(&reg, "i:0:1"));
    assert_true(w[0].parked);
    assert_int_equal(w[0].deadline.at_ns, at_ms(2000));
    assert_int_equal(run_to(1499), 0);
    assert_int_equal(run_to(1500), 1);
    expect_event(1, WAKE_LOOK, NULL, "lock:b");
    assert_int_equal(run_to(2000), 1);
    expect_event(2, WAKE_OVER, &w[0], "lock:b");
    assert_int_equal(loop.timers.len, 0);
}

/* look: the owner finds the queue empty at once and retries the name,
 * freeing it from inside its own look timer's callback. */
static void retry_on_look(enum wake wake, struct waiter *w, const char *name)
{
    (void)w;
    if (wake == WAKE_LOOK) {
        char copy[WAIT_NAME_MAX + 1];
        snprintf(copy, sizeof copy, "%s", name);
        wait_retry_name(&reg, copy);
    }
}

static void test_retry_from_look(void **state)
{
    (void)state;
    static struct waiter w[3];

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    waiter_set(&w[2], "i:0:3");
    park(&w[0], "lock:a", 60000, 100);
    park(&w[1], "lock:a", 60000, 100);
    park(&w[2], "lock:b", 60000, 200);
    on_wake = retry_on_look;
    assert_int_equal(run_to(200), 2);
    assert_int_equal(nevents, 5);
    expect_event(0, WAKE_LOOK, NULL, "lock:a");
    expect_event(1, WAKE_RETRY, &w[0], "lock:a");
    expect_event(2, WAKE_RETRY, &w[1], "lock:a");
    expect_event(3, WAKE_LOOK, NULL, "lock:b");
    expect_event(4, WAKE_RETRY, &w[2], "lock:b");
    assert_int_equal(reg.parked, 0);
    assert_int_equal(loop.timers.len, 0);
}

/* wait_over of one waiter hands the lock to the next (an owner that learns
 * so synchronously). */
static void hand_next(enum wake wake, struct waiter *w, const char *name)
{
    (void)name;
    if (wake == WAKE_OVER && strcmp(w->id, "i:0:1") == 0)
        assert_true(wait_handed(&reg, "i:0:2"));
}

static void test_handed_from_deadline(void **state)
{
    (void)state;
    static struct waiter w[2];

    waiter_set(&w[0], "i:0:1");
    waiter_set(&w[1], "i:0:2");
    park(&w[0], "lock:a", 100, 10000);
    /* Its deadline is due too, but it is handed first. */
    park(&w[1], "lock:a", 101, 10000);
    on_wake = hand_next;
    assert_int_equal(run_to(101), 1);
    assert_int_equal(nevents, 2);
    expect_event(0, WAKE_OVER, &w[0], "lock:a");
    expect_event(1, WAKE_HANDED, &w[1], "lock:a");
    assert_int_equal(loop.timers.len, 0);
}

/* ---- many ----------------------------------------------------------------*/

static void test_many_waiters_many_names(void **state)
{
    (void)state;
    enum { N = 3000, NAMES = 97 };
    static struct waiter w[N];
    static int woken[N];
    static struct waiter extra;
    char id[48], name[32];

    wait_registry_free(&reg);
    registry_up(N);
    memset(woken, 0, sizeof woken);
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "inst%d:%d:%d", i % 7, i % 5, i);
        snprintf(name, sizeof name, "lock:name-%d", i % NAMES);
        waiter_set(&w[i], id);
        /* Deadlines 10000 + i ms; looks far. */
        park(&w[i], name, 10000 + (uint64_t)i, 100000);
    }
    assert_int_equal(reg.parked, N);
    assert_int_equal(loop.timers.len, N + NAMES);
    waiter_set(&extra, "extra");
    assert_int_equal(wait_park(&reg, &extra, "lock:x", at_ms(1), at_ms(1)), -1);

    /* Every third by id. */
    for (int i = 0; i < N; i += 3) {
        snprintf(id, sizeof id, "inst%d:%d:%d", i % 7, i % 5, i);
        assert_true(wait_handed(&reg, id));
        assert_true(nevents > 0);
        expect_event(nevents - 1, WAKE_HANDED, &w[i], w[i].name);
    }
    assert_int_equal(reg.parked, N - N / 3);
    /* Names 0..9: everyone left under them, in parking order. */
    for (int n = 0; n < 10; n++) {
        size_t first = nevents;
        snprintf(name, sizeof name, "lock:name-%d", n);
        wait_retry_name(&reg, name);
        for (size_t j = first; j < nevents; j++) {
            assert_int_equal(events[j].wake, WAKE_RETRY);
            assert_string_equal(events[j].name, name);
            if (j > first)
                assert_true(events[j].w > events[j - 1].w);
        }
    }
    /* Deadlines up to 10000 + 1999 ms. */
    run_to(10000 + 1999);
    /* Whoever is left. */
    wait_drain(&reg, fake_drain);
    assert_int_equal(reg.parked, 0);
    assert_int_equal(loop.timers.len, 0);

    for (size_t j = 0; j < nevents; j++) {
        ptrdiff_t i = events[j].w - w;
        assert_true(i >= 0 && i < N);
        woken[i]++;
        enum wake expect = i % 3 == 0       ? WAKE_HANDED
                           : i % NAMES < 10 ? WAKE_RETRY
                           : i < 2000       ? WAKE_OVER
                                            : WAKE_DRAIN;
        if (events[j].wake != expect) {
            print_error("waiter %td: %s, expected %s\n", i,
                        wake_names[events[j].wake], wake_names[expect]);
            fail();
        }
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(woken[i], 1);
    assert_false(wait_handed(&reg, "inst0:0:0"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_park_unpark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unpark_never_parked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_handed_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_on_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_look_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_look_at_earlier_not_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retry_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_look_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_freed_and_reused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_repark_from_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retry_from_look, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handed_from_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_waiters_many_names, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
