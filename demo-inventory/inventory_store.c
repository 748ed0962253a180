/* inventory_store.c -- see inventory_store.h. */
#include "inventory_store.h"

#include "embedded.h"
#include "lock/engine.h"
#include "redis/keys.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define SKU_TTL_MS "86400000"

static struct redis_script script_reset =
    REDIS_SCRIPT(embedded_inventory_reset_lua, 0);
static struct redis_script script_get =
    REDIS_SCRIPT(embedded_inventory_get_lua, 0);
static struct redis_script script_read =
    REDIS_SCRIPT(embedded_inventory_read_lua, 0);
static struct redis_script script_write =
    REDIS_SCRIPT(embedded_inventory_write_lua, 0);

int inventory_store_init(void)
{
    struct redis_script *all[] = {&script_reset, &script_get, &script_read,
                                  &script_write};

    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        all[i]->len = strlen(all[i]->src);
        if (redis_script_register(all[i]) < 0)
            return -1;
    }
    return 0;
}

/* Integer element i of an array reply, or false. */
static bool elem(const redisReply *r, size_t i, int64_t *v)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return false;
    *v = r->element[i]->integer;
    return true;
}

/* Decodes each script's reply: a leading status, then its values. */
static void on_reply(void *ctx, const redisReply *r,
                     const struct redis_error *err, struct redis_script *s)
{
    struct inventory_call *c = ctx;
    int64_t st = 0;
    bool ok;

    if (err != NULL) {
        c->result = INVENTORY_UNAVAILABLE;
        c->err = *err;
        c->done(c);
        return;
    }
    if (s == &script_reset) {
        ok = elem(r, 0, &c->inv.initial_stock) && elem(r, 1, &c->inv.stock) &&
             elem(r, 2, &c->inv.orders);
        st = 1;
    } else {
        ok = r->type == REDIS_REPLY_ARRAY && elem(r, 0, &st);
        if (ok && st == 1) {
            if (s == &script_get)
                ok = elem(r, 1, &c->inv.initial_stock) &&
                     elem(r, 2, &c->inv.stock) && elem(r, 3, &c->inv.orders);
            else if (s == &script_read)
                ok = elem(r, 1, &c->stock);
            else
                ok = elem(r, 1, &c->order_id);
        }
    }
    if (!ok) {
        c->result = INVENTORY_UNAVAILABLE;
        c->err.failure = REDIS_FAIL_SHAPE;
        snprintf(c->err.detail, sizeof c->err.detail,
                 "the inventory script answered something unknown");
    } else {
        c->result = st == 1    ? INVENTORY_OK
                    : st == -1 ? INVENTORY_NO_SKU
                               : INVENTORY_STALE;
    }
    c->done(c);
}

#define REPLY_FN(script)                                                       \
    static void on_##script(void *ctx, const redisReply *r,                    \
                            const struct redis_error *err)                     \
    {                                                                          \
        on_reply(ctx, r, err, &script);                                        \
    }
REPLY_FN(script_reset)
REPLY_FN(script_get)
REPLY_FN(script_read)
REPLY_FN(script_write)

/* Runs script on the SKU's key with args (NUL-terminated strings). */
static void run(struct inventory_call *c, struct redis_script *s,
                redis_done_fn *fn, const char *sku, int argc, const char **args)
{
    char key[KEY_MAX];
    const char *argv[4];
    size_t lens[4];

    memset(&c->err, 0, sizeof c->err);
    argv[0] = key;
    lens[0] = key_for(key, KEY_DEMO, sku);
    for (int i = 0; i < argc && i < 3; i++) {
        argv[i + 1] = args[i];
        lens[i + 1] = strlen(args[i]);
    }
    redis_route_script(lock_engine_route(), s, 1, argc + 1, argv, lens, fn, c);
}

void inventory_reset(struct inventory_call *c, const char *sku, int64_t stock)
{
    char n[24];
    const char *args[2] = {n, SKU_TTL_MS};

    snprintf(n, sizeof n, "%" PRId64, stock);
    run(c, &script_reset, on_script_reset, sku, 2, args);
}

void inventory_get(struct inventory_call *c, const char *sku)
{
    run(c, &script_get, on_script_get, sku, 0, NULL);
}

void inventory_read_stock(struct inventory_call *c, const char *sku,
                          int64_t fence)
{
    char f[24];
    const char *args[1] = {f};

    snprintf(f, sizeof f, "%" PRId64, fence);
    run(c, &script_read, on_script_read, sku, 1, args);
}

void inventory_write(struct inventory_call *c, const char *sku,
                     int64_t new_stock, int64_t quantity, int64_t fence)
{
    char s[24], q[24], f[24];
    const char *args[3] = {s, q, f};

    snprintf(s, sizeof s, "%" PRId64, new_stock);
    snprintf(q, sizeof q, "%" PRId64, quantity);
    snprintf(f, sizeof f, "%" PRId64, fence);
    run(c, &script_write, on_script_write, sku, 3, args);
}
