/* test_timer_heap.c -- unit tests for service/wait/timer_heap.c: ordering,
 * re-arming, arm_earliest, disarming anywhere in the heap, callbacks that
 * arm and disarm during timer_heap_run, growth, and a randomized run against
 * a reference model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wait/timer_heap.h"

/* A timer's owner, as a waiter embeds its deadline. */
struct item {
    int id;
    struct timer t;
    uint64_t due;     /* the reference model's time while model_armed */
    bool model_armed; /* the reference model's state */
    int fires;
};

#define ITEM_OF(tp) ((struct item *)((char *)(tp)-offsetof(struct item, t)))

#define LOG_MAX 16384

static struct timer_heap heap;
/* The items fired, in firing order, and the time each was armed at. */
static struct item *fired[LOG_MAX];
static uint64_t fired_at[LOG_MAX];
static size_t nfired;

static void record(struct timer *t)
{
    struct item *it = ITEM_OF(t);

    /* A timer fires already disarmed. */
    assert_false(t->armed);
    assert_true(nfired < LOG_MAX);
    fired_at[nfired] = t->at_ns;
    fired[nfired++] = it;
    it->fires++;
}

static int setup(void **state)
{
    (void)state;
    memset(&heap, 0, sizeof heap);
    nfired = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    timer_heap_free(&heap);
    return 0;
}

static void items_init(struct item *items, size_t n, timer_fn *fn)
{
    for (size_t i = 0; i < n; i++) {
        memset(&items[i], 0, sizeof items[i]);
        items[i].id = (int)i;
        timer_init(&items[i].t, fn);
    }
}

/* The heap property and the back links, checked slot by slot. */
static void check_heap(const struct timer_heap *h)
{
    assert_true(h->len <= h->cap);
    for (size_t i = 0; i < h->len; i++) {
        const struct timer *t = h->slot[i];
        if (!t->armed || t->index != i) {
            print_error("slot %zu: armed %d index %zu\n", i, t->armed,
                        t->index);
            fail();
        }
        if (i > 0 && h->slot[(i - 1) / 2]->at_ns > t->at_ns) {
            print_error("slot %zu (%llu) is earlier than its parent (%llu)\n",
                        i, (unsigned long long)t->at_ns,
                        (unsigned long long)h->slot[(i - 1) / 2]->at_ns);
            fail();
        }
    }
}

/* Asserts the fired log is in non-decreasing time order. */
static void assert_fired_in_order(void)
{
    for (size_t i = 1; i < nfired; i++)
        if (fired_at[i - 1] > fired_at[i]) {
            print_error("fire %zu at %llu after one at %llu\n", i,
                        (unsigned long long)fired_at[i],
                        (unsigned long long)fired_at[i - 1]);
            fail();
        }
}

static uint64_t random_time(uint64_t range)
{
    uint64_t r =
        ((uint64_t)(unsigned)rand() << 31) ^ (uint64_t)(unsigned)rand();

    return r % range;
}

/* ---- basics --------------------------------------------------------------*/

static void test_empty(void **state)
{
    (void)state;
    struct item it;

    assert_null(timer_heap_first(&heap));
    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), 0);
    items_init(&it, 1, record);
    assert_false(it.t.armed);
    /* Disarming a timer that was never armed is harmless. */
    timer_heap_disarm(&heap, &it.t);
    assert_int_equal(heap.len, 0);
    assert_int_equal(timer_heap_arm(&heap, &it.t, 5), 0);
    assert_ptr_equal(timer_heap_first(&heap), &it.t);
    assert_true(it.t.armed);
    /* Not due yet. */
    assert_int_equal(timer_heap_run(&heap, 4), 0);
    assert_int_equal(nfired, 0);
    /* Due at exactly its time. */
    assert_int_equal(timer_heap_run(&heap, 5), 1);
    assert_int_equal(nfired, 1);
    assert_false(it.t.armed);
    assert_null(timer_heap_first(&heap));
    timer_heap_free(&heap);
    assert_null(heap.slot);
    assert_int_equal(heap.len, 0);
    assert_int_equal(heap.cap, 0);
    /* Usable again after free. */
    assert_int_equal(timer_heap_arm(&heap, &it.t, 1), 0);
    assert_int_equal(timer_heap_run(&heap, 1), 1);
}

/* Many timers at random times run earliest first; a run stops at now. */
static void test_order_random(void **state)
{
    (void)state;
    enum { N = 1000 };
    static struct item items[N];

    srand(1);
    items_init(items, N, record);
    for (size_t i = 0; i < N; i++) {
        items[i].due = random_time(100000);
        assert_int_equal(timer_heap_arm(&heap, &items[i].t, items[i].due), 0);
    }
    check_heap(&heap);
    assert_int_equal(heap.len, N);

    size_t due = 0;
    for (size_t i = 0; i < N; i++)
        due += items[i].due <= 50000;
    assert_int_equal(timer_heap_run(&heap, 50000), due);
    assert_int_equal(nfired, due);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(items[i].t.armed, items[i].due > 50000);
    check_heap(&heap);
    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), N - due);
    assert_int_equal(nfired, N);
    assert_fired_in_order();
    for (size_t i = 0; i < N; i++)
        assert_int_equal(items[i].fires, 1);
    assert_null(timer_heap_first(&heap));
}

/* Timers armed at the same time all run. */
static void test_equal_times(void **state)
{
    (void)state;
    struct item items[100];

    items_init(items, 100, record);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(timer_heap_arm(&heap, &items[i].t, 7), 0);
    check_heap(&heap);
    assert_int_equal(timer_heap_run(&heap, 6), 0);
    assert_int_equal(timer_heap_run(&heap, 7), 100);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(items[i].fires, 1);
}

/* ---- re-arming -----------------------------------------------------------*/

static void test_rearm_earlier_and_later(void **state)
{
    (void)state;
    struct item items[31];

    items_init(items, 31, record);
    for (size_t i = 0; i < 31; i++)
        assert_int_equal(
            timer_heap_arm(&heap, &items[i].t, 100 + 10 * (uint64_t)i), 0);

    /* The last (latest) becomes the earliest. */
    assert_int_equal(timer_heap_arm(&heap, &items[30].t, 5), 0);
    check_heap(&heap);
    assert_int_equal(heap.len, 31); /* moved, not armed twice */
    assert_ptr_equal(timer_heap_first(&heap), &items[30].t);
    assert_int_equal(items[30].t.at_ns, 5);

    /* The root becomes the latest. */
    assert_int_equal(timer_heap_arm(&heap, &items[0].t, 10000), 0);
    check_heap(&heap);
    assert_int_equal(heap.len, 31);
    assert_ptr_equal(timer_heap_first(&heap), &items[30].t);

    /* A middle one moves later, another earlier (but not to the root). */
    assert_int_equal(timer_heap_arm(&heap, &items[7].t, 5000), 0);
    assert_int_equal(timer_heap_arm(&heap, &items[20].t, 101), 0);
    check_heap(&heap);
    /* Re-armed at the same time: nothing moves. */
    assert_int_equal(timer_heap_arm(&heap, &items[15].t, 250), 0);
    check_heap(&heap);
    assert_int_equal(heap.len, 31);

    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), 31);
    assert_fired_in_order();
    assert_ptr_equal(fired[0], &items[30]);
    assert_ptr_equal(fired[1], &items[20]);
    assert_ptr_equal(fired[29], &items[7]);
    assert_ptr_equal(fired[30], &items[0]);
    for (size_t i = 0; i < 31; i++)
        assert_int_equal(items[i].fires, 1);
}

static void test_arm_earliest(void **state)
{
    (void)state;
    struct item a, b;

    items_init(&a, 1, record);
    items_init(&b, 1, record);
    /* Disarmed: arms. */
    assert_int_equal(timer_heap_arm_earliest(&heap, &a.t, 100), 0);
    assert_true(a.t.armed);
    assert_int_equal(a.t.at_ns, 100);
    /* Later: an earlier time stands. */
    assert_int_equal(timer_heap_arm_earliest(&heap, &a.t, 200), 0);
    assert_int_equal(a.t.at_ns, 100);
    /* The same time: unchanged. */
    assert_int_equal(timer_heap_arm_earliest(&heap, &a.t, 100), 0);
    assert_int_equal(a.t.at_ns, 100);
    assert_int_equal(heap.len, 1);
    /* Earlier: moves. */
    assert_int_equal(timer_heap_arm(&heap, &b.t, 60), 0);
    assert_ptr_equal(timer_heap_first(&heap), &b.t);
    assert_int_equal(timer_heap_arm_earliest(&heap, &a.t, 50), 0);
    assert_int_equal(a.t.at_ns, 50);
    assert_ptr_equal(timer_heap_first(&heap), &a.t);
    check_heap(&heap);
    assert_int_equal(heap.len, 2);
    assert_int_equal(timer_heap_run(&heap, 55), 1);
    assert_ptr_equal(fired[0], &a);
    /* Fired, hence disarmed: arm_earliest arms it again, even later. */
    assert_int_equal(timer_heap_arm_earliest(&heap, &a.t, 1000), 0);
    assert_true(a.t.armed);
    assert_int_equal(a.t.at_ns, 1000);
}

/* ---- disarming -----------------------------------------------------------*/

/* Arms 15 timers at 10, 20, ... 150 and runs them after disarming the one
 * pick() chooses; the rest run in order. */
static void disarm_one_and_run(struct timer *(*pick)(struct timer_heap *h))
{
    struct item items[15];

    nfired = 0;
    items_init(items, 15, record);
    for (size_t i = 0; i < 15; i++)
        assert_int_equal(
            timer_heap_arm(&heap, &items[i].t, 10 * (uint64_t)(i + 1)), 0);
    struct timer *t = pick(&heap);
    timer_heap_disarm(&heap, t);
    assert_false(t->armed);
    assert_int_equal(heap.len, 14);
    check_heap(&heap);
    /* Disarming again is a no-op. */
    timer_heap_disarm(&heap, t);
    assert_int_equal(heap.len, 14);
    check_heap(&heap);
    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), 14);
    assert_fired_in_order();
    assert_int_equal(ITEM_OF(t)->fires, 0);
    for (size_t i = 0; i < 15; i++)
        if (&items[i].t != t)
            assert_int_equal(items[i].fires, 1);
}

static struct timer *pick_root(struct timer_heap *h)
{
    return h->slot[0];
}

static struct timer *pick_middle(struct timer_heap *h)
{
    return h->slot[h->len / 2];
}

static struct timer *pick_second(struct timer_heap *h)
{
    return h->slot[1];
}

static struct timer *pick_last(struct timer_heap *h)
{
    return h->slot[h->len - 1];
}

static void test_disarm_root_middle_last(void **state)
{
    (void)state;
    disarm_one_and_run(pick_root);
    disarm_one_and_run(pick_second);
    disarm_one_and_run(pick_middle);
    disarm_one_and_run(pick_last);
}

/* Disarming a slot whose replacement (the last timer) is earlier than the
 * slot's parent: the replacement has to move up, not down. */
static void test_disarm_moves_replacement_up(void **state)
{
    (void)state;
    /* Heap by slot: 1 | 100 2 | 101 102 3 4 -- arming in this order leaves
     * it so (each is later than its parent when it arrives). */
    static const uint64_t at[] = {1, 100, 2, 101, 102, 3, 4};
    struct item items[7];

    items_init(items, 7, record);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(timer_heap_arm(&heap, &items[i].t, at[i]), 0);
    for (size_t i = 0; i < 7; i++)
        assert_ptr_equal(heap.slot[i], &items[i].t);
    /* Slot 3 (101) gets the last timer (4), whose parent is 100. */
    timer_heap_disarm(&heap, &items[3].t);
    check_heap(&heap);
    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), 6);
    assert_fired_in_order();
    assert_int_equal(items[3].fires, 0);
}

/* Disarms every timer, in a random order, checking the heap each time. */
static void test_disarm_all_random_order(void **state)
{
    (void)state;
    enum { N = 500 };
    static struct item items[N];
    size_t order[N];

    srand(2);
    items_init(items, N, record);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(timer_heap_arm(&heap, &items[i].t, random_time(1000)),
                         0);
        order[i] = i;
    }
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (size_t i = 0; i < N; i++) {
        timer_heap_disarm(&heap, &items[order[i]].t);
        assert_int_equal(heap.len, N - 1 - i);
        check_heap(&heap);
    }
    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), 0);
}

/* ---- callbacks during timer_heap_run ------------------------------------*/

/* Re-arms itself 10 ns later until it has fired five times. */
static void rearm_self(struct timer *t)
{
    record(t);
    if (ITEM_OF(t)->fires < 5)
        assert_int_equal(timer_heap_arm(&heap, t, fired_at[nfired - 1] + 10),
                         0);
}

static void test_callback_rearms_itself(void **state)
{
    (void)state;
    struct item a, other;

    items_init(&a, 1, rearm_self);
    items_init(&other, 1, record);
    assert_int_equal(timer_heap_arm(&heap, &a.t, 0), 0);
    assert_int_equal(timer_heap_arm(&heap, &other.t, 25), 0);
    /* Due at 0, 10, 20, 30: four runs of a, and other at 25 in between. */
    assert_int_equal(timer_heap_run(&heap, 35), 5);
    assert_int_equal(a.fires, 4);
    assert_int_equal(other.fires, 1);
    assert_ptr_equal(fired[3], &other);
    assert_fired_in_order();
    assert_true(a.t.armed);
    assert_int_equal(a.t.at_ns, 40);
    check_heap(&heap);
    /* The fifth run does not re-arm. */
    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), 1);
    assert_int_equal(a.fires, 5);
    assert_false(a.t.armed);
    assert_null(timer_heap_first(&heap));
}

static struct timer *victim;
static struct timer *newcomer;

/* Disarms victim and arms newcomer, both due now. */
static void disarm_other(struct timer *t)
{
    record(t);
    timer_heap_disarm(&heap, victim);
    if (newcomer != NULL)
        assert_int_equal(timer_heap_arm(&heap, newcomer, t->at_ns), 0);
    check_heap(&heap);
}

static void test_callback_disarms_another(void **state)
{
    (void)state;
    struct item a, b, c, d, e;

    items_init(&a, 1, disarm_other);
    items_init(&b, 1, record);
    items_init(&c, 1, record);
    items_init(&d, 1, record);
    items_init(&e, 1, record);
    victim = &b.t;
    newcomer = &e.t;
    assert_int_equal(timer_heap_arm(&heap, &a.t, 10), 0);
    assert_int_equal(timer_heap_arm(&heap, &b.t, 20), 0);
    assert_int_equal(timer_heap_arm(&heap, &c.t, 30), 0);
    assert_int_equal(timer_heap_arm(&heap, &d.t, 200), 0);
    /* a disarms b (due) and arms e at 10 (due): a, e, c run. */
    assert_int_equal(timer_heap_run(&heap, 100), 3);
    assert_int_equal(a.fires, 1);
    assert_int_equal(b.fires, 0);
    assert_int_equal(c.fires, 1);
    assert_int_equal(e.fires, 1);
    assert_int_equal(d.fires, 0);
    assert_ptr_equal(fired[0], &a);
    assert_ptr_equal(fired[1], &e);
    assert_ptr_equal(fired[2], &c);
    assert_false(b.t.armed);
    assert_true(d.t.armed);
    assert_int_equal(heap.len, 1);

    /* Disarming the timer that is next to run (the root once a is out). */
    nfired = 0;
    items_init(&a, 1, disarm_other);
    items_init(&b, 1, record);
    victim = &b.t;
    newcomer = NULL;
    assert_int_equal(timer_heap_arm(&heap, &a.t, 300), 0);
    assert_int_equal(timer_heap_arm(&heap, &b.t, 301), 0);
    /* d (200), then a, which disarms b. */
    assert_int_equal(timer_heap_run(&heap, 1000), 2);
    assert_int_equal(b.fires, 0);
    assert_int_equal(d.fires, 1);
    assert_ptr_equal(fired[0], &d);
    assert_ptr_equal(fired[1], &a);
}

/* Disarms itself (already disarmed) and re-arms in the past: still runs
 * in the same pass. */
static void disarm_self_then_arm_past(struct timer *t)
{
    record(t);
    timer_heap_disarm(&heap, t);
    if (ITEM_OF(t)->fires == 1)
        assert_int_equal(timer_heap_arm(&heap, t, 0), 0);
}

static void test_callback_disarms_itself(void **state)
{
    (void)state;
    struct item a;

    items_init(&a, 1, disarm_self_then_arm_past);
    assert_int_equal(timer_heap_arm(&heap, &a.t, 50), 0);
    assert_int_equal(timer_heap_run(&heap, 50), 2);
    assert_int_equal(a.fires, 2);
    assert_false(a.t.armed);
    assert_int_equal(heap.len, 0);
}

/* ---- growth --------------------------------------------------------------*/

static void test_growth(void **state)
{
    (void)state;
    enum { N = 5000 };
    static struct item items[N];

    items_init(items, N, record);
    /* Latest first: each arrival sifts all the way up. */
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(
            timer_heap_arm(&heap, &items[i].t, (uint64_t)(N - i) * 3), 0);
        assert_int_equal(heap.len, i + 1);
        assert_true(heap.cap >= heap.len);
    }
    check_heap(&heap);
    assert_ptr_equal(timer_heap_first(&heap), &items[N - 1].t);
    /* Half go, half more come: the array is reused. */
    for (size_t i = 0; i < N; i += 2)
        timer_heap_disarm(&heap, &items[i].t);
    check_heap(&heap);
    assert_int_equal(heap.len, N / 2);
    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), N / 2);
    assert_fired_in_order();
    for (size_t i = 0; i < N; i++)
        assert_int_equal(items[i].fires, i % 2);
}

/* ---- randomized against a reference model --------------------------------*/

static void check_against_model(const struct item *items, size_t n)
{
    size_t armed = 0;
    uint64_t min = UINT64_MAX;

    check_heap(&heap);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(items[i].t.armed, items[i].model_armed);
        if (!items[i].model_armed)
            continue;
        assert_int_equal(items[i].t.at_ns, items[i].due);
        armed++;
        if (items[i].due < min)
            min = items[i].due;
    }
    assert_int_equal(heap.len, armed);
    if (armed == 0)
        assert_null(timer_heap_first(&heap));
    else
        assert_int_equal(timer_heap_first(&heap)->at_ns, min);
}

static void test_random_against_model(void **state)
{
    (void)state;
    enum { N = 300, OPS = 6000 };
    static struct item items[N];
    uint64_t now = 0;

    srand(3);
    items_init(items, N, record);
    for (int op = 0; op < OPS; op++) {
        struct item *it = &items[(size_t)rand() % N];
        uint64_t at = now + random_time(2000);
        int what = rand() % 10;

        if (what <= 3) { /* arm or re-arm */
            assert_int_equal(timer_heap_arm(&heap, &it->t, at), 0);
            it->due = at;
            it->model_armed = true;
        } else if (what == 4) {
            assert_int_equal(timer_heap_arm_earliest(&heap, &it->t, at), 0);
            if (!it->model_armed || at < it->due)
                it->due = at;
            it->model_armed = true;
        } else if (what <= 7) {
            timer_heap_disarm(&heap, &it->t);
            it->model_armed = false;
        } else {
            if (nfired > LOG_MAX - N)
                nfired = 0;
            size_t expect = 0, first = nfired;
            now += random_time(300);
            for (size_t i = 0; i < N; i++)
                if (items[i].model_armed && items[i].due <= now) {
                    items[i].model_armed = false;
                    expect++;
                }
            int before[N];
            for (size_t i = 0; i < N; i++)
                before[i] = items[i].fires;
            assert_int_equal(timer_heap_run(&heap, now), expect);
            assert_int_equal(nfired - first, expect);
            for (size_t i = first + 1; i < nfired; i++)
                assert_true(fired_at[i - 1] <= fired_at[i]);
            for (size_t i = first; i < nfired; i++)
                assert_true(fired_at[i] <= now);
            size_t ran = 0;
            for (size_t i = 0; i < N; i++) {
                assert_true(items[i].fires - before[i] <= 1);
                ran += (size_t)(items[i].fires - before[i]);
            }
            assert_int_equal(ran, expect);
        }
        check_against_model(items, N);
    }
    /* Whatever is left runs in order. */
    nfired = 0;
    size_t left = heap.len;
    assert_int_equal(timer_heap_run(&heap, UINT64_MAX), left);
    assert_fired_in_order();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_equal_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rearm_earlier_and_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_arm_earliest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disarm_root_middle_last, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_disarm_moves_replacement_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_disarm_all_random_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_callback_rearms_itself, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_callback_disarms_another, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_callback_disarms_itself, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_against_model, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("timer_heap", tests, NULL, NULL);
}
