/* inventory_store.h -- the demo's inventory in Redis, one hash per SKU
 * beside the locks (key "<prefix>{<sku>}:demo", kept for a day). Scripts in
 * demo-inventory/lua/. Calls are continuations, as the lock engine's: start
 * one, and call->done runs later on the same worker thread. */
#ifndef LOCKSERVICE_INVENTORY_STORE_H
#define LOCKSERVICE_INVENTORY_STORE_H

#include "redis/conn.h"

#include <stdint.h>

#define SKU_MAX 64

enum inventory_result {
    INVENTORY_OK,
    INVENTORY_NO_SKU,      /* no such SKU */
    INVENTORY_STALE,       /* a newer fence has touched the SKU */
    INVENTORY_UNAVAILABLE, /* Redis unreachable or failed (err says why) */
};

struct inventory {
    int64_t initial_stock;
    int64_t stock;
    int64_t orders;
};

struct inventory_call;
typedef void inventory_done_fn(struct inventory_call *call);

struct inventory_call {
    inventory_done_fn *done;
    void *ctx; /* the caller's */
    enum inventory_result result;
    struct inventory inv; /* reset, get */
    int64_t stock;        /* read */
    int64_t order_id;     /* write */
    struct redis_error err;
};

/* Registers the store's scripts; call once before the workers start.
 * Returns 0 or -1. */
int inventory_store_init(void);

void inventory_reset(struct inventory_call *c, const char *sku, int64_t stock);
void inventory_get(struct inventory_call *c, const char *sku);
/* fence 0: a plain read; otherwise a fenced read (see inventory_read.lua). */
void inventory_read_stock(struct inventory_call *c, const char *sku,
                          int64_t fence);
/* Writes new_stock and counts quantity ordered; fence 0 writes blindly. */
void inventory_write(struct inventory_call *c, const char *sku,
                     int64_t new_stock, int64_t quantity, int64_t fence);

#endif
