/* inventory_store.c -- see inventory_store.h. */
#include "inventory_store.h"

#include "embedded.h"
#include "lock_engine.h"
#include "redis_conn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SKU_TTL_MS "86400000"

static struct redis_script script_reset =
    REDIS_SCRIPT(embedded_inventory_reset_lua);
static struct redis_script script_read =
    REDIS_SCRIPT(embedded_inventory_read_lua);
static struct redis_script script_write =
    REDIS_SCRIPT(embedded_inventory_write_lua);

/* Runs script on the SKU's key with args; returns the array reply led by an
 * integer, or NULL. */
static redisReply *run(struct redis_script *s, const char *sku, int argc,
                       const char **args)
{
    char key[KEY_PREFIX_MAX + SKU_MAX + 16];
    const char *argv[4];
    size_t lens[4];
    redisReply *r;
    int i;

    if (!lock_key(key, sizeof key, "demo", sku) || argc > 3)
        return NULL;
    argv[0] = key;
    lens[0] = strlen(key);
    for (i = 0; i < argc; i++) {
        argv[i + 1] = args[i];
        lens[i + 1] = strlen(args[i]);
    }
    r = redis_run_script(s, 1, argc + 1, argv, lens);
    if (r != NULL && (r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
                      r->element[0]->type != REDIS_REPLY_INTEGER)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int64_t elem(const redisReply *r, size_t i)
{
    if (i >= r->elements || r->element[i]->type != REDIS_REPLY_INTEGER)
        return 0;
    return r->element[i]->integer;
}

/* Maps a script's leading status to a result. */
static enum inventory_result status_of(const redisReply *r)
{
    switch (r->element[0]->integer) {
    case 1:
        return INVENTORY_OK;
    case -1:
        return INVENTORY_NO_SKU;
    default:
        return INVENTORY_STALE;
    }
}

enum inventory_result inventory_reset(const char *sku, int64_t stock,
                                      struct inventory *out)
{
    char n[24];
    const char *args[2] = {n, SKU_TTL_MS};
    redisReply *r;

    snprintf(n, sizeof n, "%" PRId64, stock);
    r = run(&script_reset, sku, 2, args);
    if (r == NULL)
        return INVENTORY_UNAVAILABLE;
    out->initial_stock = elem(r, 0);
    out->stock = elem(r, 1);
    out->orders = elem(r, 2);
    freeReplyObject(r);
    return INVENTORY_OK;
}

enum inventory_result inventory_get(const char *sku, struct inventory *out)
{
    char key[KEY_PREFIX_MAX + SKU_MAX + 16];
    const char *argv[5] = {"HMGET", key, "initial_stock", "stock", "orders"};
    size_t lens[5];
    enum inventory_result res = INVENTORY_OK;
    redisReply *r;
    int i;

    if (!lock_key(key, sizeof key, "demo", sku))
        return INVENTORY_UNAVAILABLE;
    for (i = 0; i < 5; i++)
        lens[i] = strlen(argv[i]);
    r = redis_run_command(5, argv, lens);
    if (r == NULL)
        return INVENTORY_UNAVAILABLE;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        freeReplyObject(r);
        return INVENTORY_UNAVAILABLE;
    }
    if (r->element[0]->type != REDIS_REPLY_STRING) {
        res = INVENTORY_NO_SKU;
    } else {
        int64_t *fields[3] = {&out->initial_stock, &out->stock, &out->orders};
        for (i = 0; i < 3; i++)
            *fields[i] = r->element[i]->type == REDIS_REPLY_STRING
                             ? strtoll(r->element[i]->str, NULL, 10)
                             : 0;
    }
    freeReplyObject(r);
    return res;
}

enum inventory_result inventory_read_stock(const char *sku, int64_t fence,
                                           int64_t *stock)
{
    char f[24];
    const char *args[1] = {f};
    enum inventory_result res;
    redisReply *r;

    snprintf(f, sizeof f, "%" PRId64, fence);
    r = run(&script_read, sku, 1, args);
    if (r == NULL)
        return INVENTORY_UNAVAILABLE;
    res = status_of(r);
    *stock = elem(r, 1);
    freeReplyObject(r);
    return res;
}

enum inventory_result inventory_write(const char *sku, int64_t new_stock,
                                      int64_t quantity, int64_t fence,
                                      int64_t *order_id)
{
    char s[24], q[24], f[24];
    const char *args[3] = {s, q, f};
    enum inventory_result res;
    redisReply *r;

    snprintf(s, sizeof s, "%" PRId64, new_stock);
    snprintf(q, sizeof q, "%" PRId64, quantity);
    snprintf(f, sizeof f, "%" PRId64, fence);
    r = run(&script_write, sku, 3, args);
    if (r == NULL)
        return INVENTORY_UNAVAILABLE;
    res = status_of(r);
    *order_id = elem(r, 1);
    freeReplyObject(r);
    return res;
}
