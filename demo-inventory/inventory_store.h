/* inventory_store.h -- the demo's inventory in Redis, one hash per SKU
 * beside the locks (key "<prefix>demo:<sku>", kept for a day). Scripts in
 * demo-inventory/lua/. */
#ifndef LOCKSERVICE_INVENTORY_STORE_H
#define LOCKSERVICE_INVENTORY_STORE_H

#include <stdint.h>

#define SKU_MAX 64

enum inventory_result {
    INVENTORY_OK,
    INVENTORY_NO_SKU,      /* no such SKU */
    INVENTORY_STALE,       /* a newer fence has touched the SKU */
    INVENTORY_UNAVAILABLE, /* Redis unreachable or failed */
};

struct inventory {
    int64_t initial_stock;
    int64_t stock;
    int64_t orders;
};

enum inventory_result inventory_reset(const char *sku, int64_t stock,
                                      struct inventory *out);
enum inventory_result inventory_get(const char *sku, struct inventory *out);
/* fence 0: a plain read; otherwise a fenced read (see inventory_read.lua). */
enum inventory_result inventory_read_stock(const char *sku, int64_t fence,
                                           int64_t *stock);
/* Writes new_stock and counts quantity ordered; fence 0 writes blindly. */
enum inventory_result inventory_write(const char *sku, int64_t new_stock,
                                      int64_t quantity, int64_t fence,
                                      int64_t *order_id);

#endif
