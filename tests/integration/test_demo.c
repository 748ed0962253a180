/* test_demo.c -- the inventory demo (/demo/inventory/...) and the
 * oversell-demo runner against a real service and redis-server.
 *
 * The race tests are deterministic by construction, not by luck: the unsafe
 * buyers all start at once behind a barrier and each spends a long work_ms
 * between its read and its write, so every one of them reads the initial
 * stock; the pause tests order the stale and the fresh buyer with sleeps
 * several times longer than the lease. Timings grow with time_scale(). */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct redis_proc redis;
static struct svc_proc svc;       /* with --demo */
static struct svc_proc svc_plain; /* without it */

static long scaled(long ms)
{
    return (long)((double)ms * time_scale());
}

/* PUT /demo/inventory/sku {"stock":stock}; true on 200. */
static bool put_stock(const char *sku, long stock)
{
    struct http_resp r;
    char path[160];

    snprintf(path, sizeof path, "/demo/inventory/%s", sku);
    httpf(&r, svc.url, "PUT", path, NULL, "{\"stock\":%ld}", stock);
    bool ok = r.status == 200;
    if (!ok)
        t_diag("PUT %s: %ld %s", path, r.status, r.body ? r.body : "");
    http_resp_free(&r);
    return ok;
}

struct inv {
    long long initial_stock, stock, orders, oversold;
};

/* GET /demo/inventory/sku into *out; true on 200. */
static bool get_inv(const char *sku, struct inv *out)
{
    struct http_resp r;
    char path[160];

    snprintf(path, sizeof path, "/demo/inventory/%s", sku);
    http(&r, svc.url, "GET", path, NULL, NULL);
    bool ok = r.status == 200 && jstr(&r, "sku") != NULL &&
              strcmp(jstr(&r, "sku"), sku) == 0;
    out->initial_stock = jint(&r, "initial_stock");
    out->stock = jint(&r, "stock");
    out->orders = jint(&r, "orders");
    out->oversold = jint(&r, "oversold");
    if (!ok)
        t_diag("GET %s: %ld %s", path, r.status, r.body ? r.body : "");
    http_resp_free(&r);
    return ok;
}

/* One purchase, possibly on its own thread. */
struct buyer {
    pthread_t thread;
    pthread_barrier_t *start; /* NULL: go at once */
    char path[160];
    char body[256];
    long status;
    char code[64];
    long long fence, remaining;
};

static void *buyer_main(void *arg)
{
    struct buyer *b = arg;
    struct http_resp r;

    if (b->start != NULL)
        pthread_barrier_wait(b->start);
    http(&r, svc.url, "POST", b->path, b->body, NULL);
    b->status = r.status;
    snprintf(b->code, sizeof b->code, "%s", problem_code(&r));
    b->fence = jint(&r, "fence");
    b->remaining = jint(&r, "remaining");
    http_resp_free(&r);
    return NULL;
}

static void buyer_init(struct buyer *b, const char *sku, const char *mode,
                       long work_ms, long pause_ms, long ttl_ms)
{
    memset(b, 0, sizeof *b);
    snprintf(b->path, sizeof b->path, "/demo/inventory/%s/purchase", sku);
    snprintf(b->body, sizeof b->body,
             "{\"mode\":\"%s\",\"quantity\":1,\"work_ms\":%ld,"
             "\"pause_ms\":%ld,\"ttl_ms\":%ld,\"wait_ms\":60000}",
             mode, work_ms, pause_ms, ttl_ms);
}

/* Counts of a crowd's answers. */
struct tally {
    long created, sold_out, other;
};

/* Sends n buyers of mode at sku all at once (a barrier releases them
 * together) and tallies their answers. */
static struct tally crowd(const char *sku, const char *mode, int n,
                          long work_ms)
{
    struct buyer *bs = calloc((size_t)n, sizeof *bs);
    pthread_barrier_t start;
    struct tally t = {0, 0, 0};

    if (bs == NULL) {
        t.other = n;
        return t;
    }
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        buyer_init(&bs[i], sku, mode, work_ms, 0, 30000);
        bs[i].start = &start;
        pthread_create(&bs[i].thread, NULL, buyer_main, &bs[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(bs[i].thread, NULL);
        if (bs[i].status == 201)
            t.created++;
        else if (bs[i].status == 409 && strcmp(bs[i].code, "sold_out") == 0)
            t.sold_out++;
        else if (t.other++ == 0)
            t_diag("%s buyer: %ld %s", mode, bs[i].status, bs[i].code);
    }
    pthread_barrier_destroy(&start);
    free(bs);
    return t;
}

static void test_put_get_purchase(void)
{
    struct http_resp r;
    struct inv inv;

    httpf(&r, svc.url, "PUT", "/demo/inventory/basic-1", NULL,
          "{\"stock\":10}");
    t_ok(r.status == 200 && strcmp(jstr(&r, "sku"), "basic-1") == 0 &&
             jint(&r, "initial_stock") == 10 && jint(&r, "stock") == 10 &&
             jint(&r, "orders") == 0 && jint(&r, "oversold") == 0,
         "PUT creates a SKU: %ld %s", r.status, r.body);
    http_resp_free(&r);

    t_ok(get_inv("basic-1", &inv) && inv.initial_stock == 10 &&
             inv.stock == 10 && inv.orders == 0 && inv.oversold == 0,
         "GET returns the fresh SKU");

    http(&r, svc.url, "HEAD", "/demo/inventory/basic-1", NULL, NULL);
    t_ok(r.status == 200 && r.len == 0, "HEAD is answered like GET: %ld",
         r.status);
    http_resp_free(&r);

    const char *modes[] = {"unsafe", "locked", "fenced"};
    long long last_fence = 0;
    for (int i = 0; i < 3; i++) {
        httpf(&r, svc.url, "POST", "/demo/inventory/basic-1/purchase", NULL,
              "{\"mode\":\"%s\",\"quantity\":2,\"work_ms\":0}", modes[i]);
        bool fence_ok =
            i == 0 ? jint(&r, "fence") == 0 : jint(&r, "fence") > last_fence;
        if (i > 0)
            last_fence = jint(&r, "fence");
        t_ok(r.status == 201 && jint(&r, "order_id") > 0 &&
                 jstr(&r, "sku") != NULL &&
                 strcmp(jstr(&r, "sku"), "basic-1") == 0 &&
                 jint(&r, "quantity") == 2 &&
                 jint(&r, "remaining") == 10 - 2 * (i + 1) && fence_ok,
             "%s purchase of 2: 201 with order_id, remaining, fence: %s",
             modes[i], r.body);
        http_resp_free(&r);
    }
    t_ok(get_inv("basic-1", &inv) && inv.stock == 4 && inv.orders == 6 &&
             inv.oversold == 0,
         "orders count units: stock 4, orders 6");

    httpf(&r, svc.url, "POST", "/demo/inventory/basic-1/purchase", NULL,
          "{\"mode\":\"locked\",\"quantity\":5,\"work_ms\":0}");
    t_ok(problem_is(&r, 409, "sold_out"), "buying 5 of 4 left: sold_out");
    http_resp_free(&r);
    t_ok(get_inv("basic-1", &inv) && inv.stock == 4 && inv.orders == 6,
         "a refused purchase changes nothing");

    t_ok(put_stock("basic-1", 3) && get_inv("basic-1", &inv) &&
             inv.initial_stock == 3 && inv.stock == 3 && inv.orders == 0,
         "PUT resets stock and orders");

    t_ok(put_stock("basic-0", 0), "stock 0 is accepted");
    httpf(&r, svc.url, "POST", "/demo/inventory/basic-0/purchase", NULL,
          "{\"mode\":\"unsafe\"}");
    t_ok(problem_is(&r, 409, "sold_out"), "buying from stock 0: sold_out");
    http_resp_free(&r);

    t_ok(put_stock("basic-max", 1000000), "stock 1000000 is accepted");
    httpf(&r, svc.url, "POST", "/demo/inventory/basic-max/purchase", NULL,
          "{\"mode\":\"fenced\",\"quantity\":1000,\"work_ms\":0}");
    t_ok(r.status == 201 && jint(&r, "remaining") == 999000,
         "quantity 1000 is accepted: %ld", r.status);
    http_resp_free(&r);
}

/* 50 buyers released together on stock 10, each spending a long work_ms
 * between read and write: all read 10 before any writes. */
static void test_unsafe_oversells(void)
{
    struct inv inv;
    struct tally t;

    for (int run = 0; run < 2; run++) {
        t_ok(put_stock("race-unsafe", 10), "unsafe run %d: reset", run);
        t = crowd("race-unsafe", "unsafe", 50, scaled(300));
        bool got = get_inv("race-unsafe", &inv);
        t_diag("unsafe run %d: %ld created, %ld sold out, stock %lld, "
               "orders %lld",
               run, t.created, t.sold_out, inv.stock, inv.orders);
        t_ok(got && inv.oversold > 0 && inv.oversold == inv.orders - 10,
             "unsafe run %d oversells: oversold %lld", run, inv.oversold);
        t_ok(t.other == 0 && inv.orders == t.created,
             "unsafe run %d: orders (%lld) = 201 answers (%ld)", run,
             inv.orders, t.created);
        t_ok(inv.orders + inv.stock > inv.initial_stock,
             "unsafe run %d loses writes: %lld orders + %lld left > %lld", run,
             inv.orders, inv.stock, inv.initial_stock);
    }
}

static void test_locked_and_fenced_never_oversell(void)
{
    const char *modes[] = {"locked", "fenced"};
    struct inv inv;

    for (int m = 0; m < 2; m++) {
        for (int run = 0; run < 3; run++) {
            char sku[64];
            snprintf(sku, sizeof sku, "race-%s", modes[m]);
            put_stock(sku, 10);
            struct tally t = crowd(sku, modes[m], 40, 2);
            bool got = get_inv(sku, &inv);
            t_ok(got && inv.orders == 10 && inv.stock == 0 &&
                     inv.oversold == 0 && t.created == 10 && t.sold_out == 30 &&
                     t.other == 0,
                 "%s run %d: 10 sold of 10, 30 sold out, none oversold "
                 "(orders %lld, stock %lld, 201s %ld, sold_out %ld)",
                 modes[m], run, inv.orders, inv.stock, t.created, t.sold_out);
            t_ok(inv.orders + inv.stock == inv.initial_stock,
                 "%s run %d: orders + stock = initial stock", modes[m], run);
        }
    }
}

/* A stalls past its lease; B takes the lock meanwhile. How B and A
 * interleave: B reads and writes while A is paused (b_work_ms 0), or B
 * reads while A is paused and writes after A (b_work_ms long). */
static void stale_writer(const char *sku, const char *mode, long b_work_ms,
                         struct buyer *a, struct buyer *b)
{
    long ttl = scaled(100), pause = scaled(500);

    put_stock(sku, 10);
    buyer_init(a, sku, mode, 0, pause, ttl);
    pthread_create(&a->thread, NULL, buyer_main, a);
    sleep_ms(scaled(250)); /* A holds nothing any more, and is still paused */
    buyer_init(b, sku, mode, b_work_ms, 0, 30000);
    pthread_create(&b->thread, NULL, buyer_main, b);
    pthread_join(a->thread, NULL);
    pthread_join(b->thread, NULL);
}

static void test_pauses(void)
{
    struct buyer a, b;
    struct inv inv;
    bool got;

    /* Fenced, B writes during A's pause: A's write carries an old fence. */
    stale_writer("pause-fenced-1", "fenced", 0, &a, &b);
    t_ok(b.status == 201 && b.fence > 0, "fenced: the new holder buys: %ld",
         b.status);
    t_ok(a.status == 409 && strcmp(a.code, "stale_fence") == 0,
         "fenced: the paused buyer's write is refused: %ld %s", a.status,
         a.code);
    got = get_inv("pause-fenced-1", &inv);
    t_ok(got && inv.orders == 1 && inv.stock == 9,
         "fenced: one order, stock 9 (orders %lld, stock %lld)", inv.orders,
         inv.stock);

    /* Fenced, B has only read when A writes: the store saw B's newer fence
     * on that read, so A is refused even though nothing newer was written. */
    stale_writer("pause-fenced-2", "fenced", scaled(1000), &a, &b);
    t_ok(a.status == 409 && strcmp(a.code, "stale_fence") == 0,
         "fenced: a write after a newer holder's read is refused: %ld %s",
         a.status, a.code);
    t_ok(b.status == 201, "fenced: the newer holder's write goes in: %ld %s",
         b.status, b.code);
    got = get_inv("pause-fenced-2", &inv);
    t_ok(got && inv.orders == 1 && inv.stock == 9,
         "fenced: the books add up (orders %lld, stock %lld)", inv.orders,
         inv.stock);

    /* Locked, same timeline: the lease ran out, nothing stops A's write,
     * and both buyers wrote 9 from their reads of 10. */
    stale_writer("pause-locked", "locked", 0, &a, &b);
    t_ok(a.status == 201 && b.status == 201,
         "locked: the paused buyer writes after its lease ran out: %ld, %ld",
         a.status, b.status);
    got = get_inv("pause-locked", &inv);
    t_ok(got && inv.orders == 2 && inv.stock == 9,
         "locked: a lost update (2 orders, stock 9; got %lld, %lld)",
         inv.orders, inv.stock);
    t_ok(a.fence > 0 && b.fence > a.fence,
         "locked: the later lease has the greater fence (%lld < %lld)", a.fence,
         b.fence);
}

struct bad_case {
    const char *method;
    const char *path;
    const char *body;         /* NULL: none */
    const char *content_type; /* NULL: application/json */
    long status;
    const char *code;
};

static void test_bad_input(void)
{
    static char big[20000];
    static char long_sku_path[128], sku64_path[128];
    const char *P = "/demo/inventory/bad-1/purchase";
    const char *S = "/demo/inventory/bad-1";
    const struct bad_case cases[] = {
        /* names */
        {"PUT", "/demo/inventory/bad!sku", "{\"stock\":1}", NULL, 400,
         "invalid_name"},
        {"GET", "/demo/inventory/bad!sku", NULL, NULL, 400, "invalid_name"},
        {"POST", "/demo/inventory/bad!sku/purchase", "{\"mode\":\"unsafe\"}",
         NULL, 400, "invalid_name"},
        {"PUT", long_sku_path, "{\"stock\":1}", NULL, 400, "invalid_name"},
        {"GET", long_sku_path, NULL, NULL, 400, "invalid_name"},
        /* PUT bodies */
        {"PUT", S, "{}", NULL, 400, "invalid_field"},
        {"PUT", S, "{\"stock\":-1}", NULL, 400, "invalid_field"},
        {"PUT", S, "{\"stock\":1000001}", NULL, 400, "invalid_field"},
        {"PUT", S, "{\"stock\":1.5}", NULL, 400, "invalid_field"},
        {"PUT", S, "{\"stock\":1e3}", NULL, 400, "invalid_field"},
        {"PUT", S, "{\"stock\":\"5\"}", NULL, 400, "invalid_field"},
        {"PUT", S, "{\"stock\":true}", NULL, 400, "invalid_field"},
        {"PUT", S, "{\"stock\":null}", NULL, 400, "invalid_field"},
        {"PUT", S, "{\"stock\":5,\"color\":\"red\"}", NULL, 400,
         "invalid_field"},
        {"PUT", S, "{", NULL, 400, "invalid_json"},
        {"PUT", S, "[]", NULL, 400, "invalid_json"},
        {"PUT", S, "5", NULL, 400, "invalid_json"},
        {"PUT", S, "{\"stock\":5}", "text/plain", 415,
         "unsupported_media_type"},
        {"PUT", S, big, NULL, 413, "body_too_large"},
        /* purchase bodies */
        {"POST", P, "{}", NULL, 400, "invalid_field"},
        {"POST", P, "{\"mode\":\"yolo\"}", NULL, 400, "invalid_field"},
        {"POST", P, "{\"mode\":\"\"}", NULL, 400, "invalid_field"},
        {"POST", P, "{\"mode\":1}", NULL, 400, "invalid_field"},
        {"POST", P, "{\"mode\":null}", NULL, 400, "invalid_field"},
        {"POST", P, "{\"mode\":\"UNSAFE\"}", NULL, 400, "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"quantity\":0}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"quantity\":-1}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"quantity\":1.5}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"quantity\":\"1\"}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"quantity\":1001}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"work_ms\":10001}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"work_ms\":-1}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"pause_ms\":60001}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"locked\",\"ttl_ms\":0}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"locked\",\"ttl_ms\":3600001}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"locked\",\"wait_ms\":-1}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"locked\",\"wait_ms\":60001}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\",\"qty\":1}", NULL, 400,
         "invalid_field"},
        {"POST", P, "{\"mode\":\"unsafe\"", NULL, 400, "invalid_json"},
        {"POST", P, "[\"unsafe\"]", NULL, 400, "invalid_json"},
        {"POST", P, "{\"mode\":\"unsafe\"}", "text/plain", 415,
         "unsupported_media_type"},
        {"POST", P, big, NULL, 413, "body_too_large"},
        /* unknown SKUs */
        {"GET", "/demo/inventory/no-such-sku", NULL, NULL, 404,
         "sku_not_found"},
        {"POST", "/demo/inventory/no-such-sku/purchase",
         "{\"mode\":\"unsafe\"}", NULL, 404, "sku_not_found"},
        {"POST", "/demo/inventory/no-such-sku/purchase",
         "{\"mode\":\"locked\"}", NULL, 404, "sku_not_found"},
        {"POST", "/demo/inventory/no-such-sku/purchase",
         "{\"mode\":\"fenced\"}", NULL, 404, "sku_not_found"},
        /* routes and methods */
        {"DELETE", S, NULL, NULL, 405, "method_not_allowed"},
        {"GET", P, NULL, NULL, 405, "method_not_allowed"},
        {"POST", "/demo/inventory/bad-1/refund", "{}", NULL, 404, "not_found"},
        {"GET", "/demo/inventory", NULL, NULL, 404, "not_found"},
    };
    struct inv inv;

    memset(big, ' ', sizeof big - 1);
    big[0] = '{';
    big[sizeof big - 2] = '}';
    char sku65[66], sku64[65];
    memset(sku65, 'k', 65);
    sku65[65] = '\0';
    memset(sku64, 'k', 64);
    sku64[64] = '\0';
    snprintf(long_sku_path, sizeof long_sku_path, "/demo/inventory/%s", sku65);
    snprintf(sku64_path, sizeof sku64_path, "/demo/inventory/%s", sku64);

    t_ok(put_stock("bad-1", 5), "bad input: SKU bad-1 set up");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        char ct[160];
        const char *hdrs[] = {ct, NULL};
        struct http_resp r;

        snprintf(ct, sizeof ct, "Content-Type: %s",
                 c->content_type ? c->content_type : "application/json");
        http(&r, svc.url, c->method, c->path, c->body,
             c->body != NULL ? hdrs : NULL);
        t_ok(problem_is(&r, c->status, c->code), "%s %.40s %.60s -> %ld %s",
             c->method, c->path, c->body == big ? "(20000 bytes)" : c->body,
             c->status, c->code);
        if (c->status == 405) {
            char allow[128];
            t_ok(http_header(&r, "Allow", allow, sizeof allow) != NULL,
                 "405 carries Allow: %s",
                 http_header(&r, "Allow", allow, sizeof allow) ? allow
                                                               : "(none)");
        }
        http_resp_free(&r);
    }
    t_ok(get_inv("bad-1", &inv) && inv.stock == 5 && inv.orders == 0,
         "no bad request changed SKU bad-1");

    struct http_resp r;
    httpf(&r, svc.url, "PUT", sku64_path, NULL, "{\"stock\":1}");
    t_ok(r.status == 200, "a 64-character SKU is accepted: %ld", r.status);
    http_resp_free(&r);
}

static void test_demo_disabled(void)
{
    const char *reqs[][3] = {
        {"PUT", "/demo/inventory/x", "{\"stock\":1}"},
        {"GET", "/demo/inventory/x", NULL},
        {"POST", "/demo/inventory/x/purchase", "{\"mode\":\"unsafe\"}"},
    };

    for (size_t i = 0; i < 3; i++) {
        struct http_resp r;
        http(&r, svc_plain.url, reqs[i][0], reqs[i][1], reqs[i][2], NULL);
        t_ok(problem_is(&r, 404, "not_found"), "without --demo, %s %s: 404",
             reqs[i][0], reqs[i][1]);
        http_resp_free(&r);
    }
}

/* Runs the oversell-demo binary with args (a shell-safe string); returns
 * its exit status (-1 if it could not run) and its output in *out (caller
 * frees). */
static int run_oversell_demo(const char *bin, const char *args, char **out)
{
    char cmd[1024];
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    FILE *p;

    snprintf(cmd, sizeof cmd, "%s %s 2>&1 </dev/null", bin, args);
    p = popen(cmd, "r");
    if (p == NULL || buf == NULL) {
        free(buf);
        *out = NULL;
        return -1;
    }
    for (;;) {
        if (len + 1024 > cap) {
            char *grown = realloc(buf, cap * 2);
            if (grown == NULL)
                break;
            buf = grown;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, p);
        if (n == 0)
            break;
        len += n;
    }
    buf[len] = '\0';
    *out = buf;
    int st = pclose(p);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* True when out has a table row starting with label followed by numbers. */
static bool has_row(const char *out, const char *label)
{
    size_t n = strlen(label);
    for (const char *line = out; line != NULL && *line != '\0';) {
        if (strncmp(line, label, n) == 0 && line[n] == ' ') {
            const char *rest = line + n;
            while (*rest == ' ')
                rest++;
            return *rest >= '0' && *rest <= '9';
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return false;
}

/* With Redis gone, the demo answers 503 promptly instead of hanging. */
static void test_backend_down(void)
{
    struct http_resp r;
    double start;

    t_ok(put_stock("down-1", 5), "backend down: SKU set up");
    redis_kill(&redis);
    start = now_ms();
    http_timeout(&r, scaled(10000), svc.url, "POST",
                 "/demo/inventory/down-1/purchase", "{\"mode\":\"fenced\"}",
                 NULL);
    t_ok(problem_is(&r, 503, "backend_unavailable"),
         "backend down: purchase answers 503 backend_unavailable");
    http_resp_free(&r);
    http_timeout(&r, scaled(10000), svc.url, "GET", "/demo/inventory/down-1",
                 NULL, NULL);
    t_ok(problem_is(&r, 503, "backend_unavailable"),
         "backend down: GET answers 503 backend_unavailable");
    http_resp_free(&r);
    t_ok(now_ms() - start < (double)scaled(5000),
         "backend down: answered within the Redis timeout (%.0f ms)",
         now_ms() - start);
    t_ok(redis_restart(&redis) == 0, "backend down: redis-server restarts");
}

/* A buyer who hangs up while its purchase holds the lock (here, in its
 * pause) does not leave the lock held until the lease runs out. */
static void test_buyer_hangs_up(void)
{
    struct http_resp r;
    put_stock("hangup-1", 5);
    http_timeout(&r, 300, svc.url, "POST", "/demo/inventory/hangup-1/purchase",
                 "{\"mode\":\"locked\",\"pause_ms\":10000,\"ttl_ms\":30000}",
                 NULL);
    t_ok(r.status == 0, "the buyer gives up during its 10 s pause (%ld)",
         r.status);
    http_resp_free(&r);
    bool freed = false;
    for (double end = now_ms() + 3000 * time_scale(); !freed && now_ms() < end;
         sleep_ms(20)) {
        http(&r, svc.url, "GET", "/v1/locks/inventory:hangup-1", NULL, NULL);
        freed = r.status == 200 && r.json &&
                json_is_false(json_object_get(r.json, "held"));
        http_resp_free(&r);
    }
    t_ok(freed, "its lock is released when it hangs up, not after the 30 s "
                "lease");
}

static void test_oversell_demo_binary(void)
{
    const char *bin = getenv("OVERSELL_DEMO_BIN");
    char args[512], *out;
    int rc;

    if (bin == NULL)
        bin = "./oversell-demo";
    if (access(bin, X_OK) != 0) {
        t_skip("not built", "oversell-demo at %s", bin);
        return;
    }

    snprintf(args, sizeof args,
             "--url %s --buyers 60 --concurrency 30 --sku-prefix t-demo",
             svc.url);
    rc = run_oversell_demo(bin, args, &out);
    t_ok(rc == 0, "oversell-demo against a fresh service exits 0 (got %d)", rc);
    if (rc != 0 && out != NULL)
        t_diag("%s", out);
    t_ok(out != NULL && has_row(out, "unsafe") && has_row(out, "locked") &&
             has_row(out, "locked + pauses") && has_row(out, "fenced + pauses"),
         "oversell-demo prints the four rows");
    t_ok(out != NULL && strstr(out, "oversold") != NULL &&
             strstr(out, "rejected") != NULL && strstr(out, "seconds"),
         "oversell-demo prints the column heads");
    free(out);

    snprintf(args, sizeof args, "--url %s --buyers 5", svc_plain.url);
    rc = run_oversell_demo(bin, args, &out);
    t_ok(rc == 2 && out != NULL && strstr(out, "--demo") != NULL,
         "oversell-demo against a service without --demo exits 2 and says "
         "so (got %d)",
         rc);
    free(out);

    snprintf(args, sizeof args, "--url http://127.0.0.1:%d --buyers 5",
             free_port());
    rc = run_oversell_demo(bin, args, &out);
    t_ok(rc == 2 && out != NULL && strstr(out, "cannot reach") != NULL,
         "oversell-demo against nothing exits 2 and says so (got %d)", rc);
    free(out);

    /* One buyer at a time cannot race: the runner must say so and fail. */
    snprintf(args, sizeof args,
             "--url %s --buyers 12 --concurrency 1 --pause-every 100 "
             "--sku-prefix t-serial",
             svc.url);
    rc = run_oversell_demo(bin, args, &out);
    t_ok(rc == 1 && out != NULL && strstr(out, "race did not appear") != NULL,
         "oversell-demo with --concurrency 1 says the race did not appear "
         "and exits 1 (got %d)",
         rc);
    t_ok(out != NULL && strchr(out, '\r') == NULL,
         "oversell-demo shows no progress line when stderr is not a tty");
    free(out);

    rc = run_oversell_demo(bin, "--help", &out);
    t_ok(rc == 0 && out != NULL && strstr(out, "--ttl-ms") != NULL &&
             strstr(out, "--pause-ms") != NULL,
         "oversell-demo --help exits 0 and documents its flags");
    free(out);

    rc = run_oversell_demo(bin, "--stock 0", &out);
    t_ok(rc == 2 && out != NULL && strstr(out, "--stock") != NULL,
         "oversell-demo rejects a bad flag value with exit 2 (got %d)", rc);
    free(out);

    /* SKUs are lock names the service accepts, with room for the suffix. */
    rc = run_oversell_demo(bin, "--sku-prefix a/b", &out);
    t_ok(rc == 2 && out != NULL && strstr(out, "--sku-prefix") != NULL,
         "oversell-demo --sku-prefix a/b -> exit 2 naming it (got %d)", rc);
    free(out);
    rc = run_oversell_demo(
        bin, "--sku-prefix aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        &out);
    t_ok(rc == 2 && out != NULL && strstr(out, "1..50") != NULL,
         "oversell-demo --sku-prefix of 51 characters -> exit 2, 1..50 (got "
         "%d)",
         rc);
    free(out);
}

int main(void)
{
    const char *demo_args[] = {"--demo", NULL};

    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    if (svc_start(&svc, &redis, demo_args) != 0 ||
        svc_start(&svc_plain, &redis, NULL) != 0) {
        t_ok(false, "lockservice starts, with and without --demo");
        return t_done();
    }

    test_put_get_purchase();
    test_unsafe_oversells();
    test_locked_and_fenced_never_oversell();
    test_pauses();
    test_buyer_hangs_up();
    test_bad_input();
    test_demo_disabled();
    test_oversell_demo_binary();
    test_backend_down();

    svc_stop(&svc_plain);
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
