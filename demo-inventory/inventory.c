/* inventory.c -- /demo/inventory/{sku}: the overselling demo's handlers.
 *
 * A purchase reads the stock, spends work_ms (the payment call) and
 * pause_ms (a stall, like a GC pause), then writes stock - quantity. In
 * "unsafe" mode nothing guards the gap; "locked" holds lock inventory:{sku}
 * through the same engine and waiting as /v1/locks; "fenced" also passes the
 * lease's fence to the store, which refuses an older fence than one it has
 * seen. Sleeping and waiting suspend the connection: no thread is held. */
#include "../handlers/handlers.h"
#include "clock.h"
#include "http.h"
#include "inventory_store.h"
#include "request.h"

#include <stdlib.h>
#include <string.h>

enum purchase_mode { MODE_UNSAFE, MODE_LOCKED, MODE_FENCED };
enum purchase_phase { PHASE_LOCK, PHASE_READ, PHASE_WRITE };

/* A purchase's progress across suspensions; freed with the request. */
struct purchase {
    enum purchase_phase phase;
    char lock_name[sizeof "inventory:" + LOCK_NAME_MAX];
    bool locked;
    struct lease lease;
    int64_t stock_read;
};

struct purchase_args {
    enum purchase_mode mode;
    int64_t quantity, work_ms, pause_ms, ttl_ms, wait_ms;
};

static json_t *inventory_json(const char *sku, const struct inventory *inv)
{
    int64_t oversold = inv->orders - inv->initial_stock;

    return json_pack("{s:s, s:I, s:I, s:I, s:I}", "sku", sku, "initial_stock",
                     (json_int_t)inv->initial_stock, "stock",
                     (json_int_t)inv->stock, "orders", (json_int_t)inv->orders,
                     "oversold", (json_int_t)(oversold > 0 ? oversold : 0));
}

/* SKUs follow the lock-name rules (checked by the router), shorter. */
static bool sku_ok(struct request *req)
{
    if (strlen(req->param) <= SKU_MAX)
        return true;
    reply_problem(req, 400, "invalid_name",
                  "SKUs are 1 to %d characters of A-Z a-z 0-9 . _ : -",
                  SKU_MAX);
    return false;
}

/* The reply for a store failure. */
static void reply_store_error(struct request *req, enum inventory_result r)
{
    switch (r) {
    case INVENTORY_NO_SKU:
        reply_problem(req, 404, "sku_not_found",
                      "no inventory for SKU '%s'; PUT it first", req->param);
        break;
    case INVENTORY_STALE:
        reply_problem(req, 409, "stale_fence",
                      "a newer lease has written SKU '%s'; this write was "
                      "refused",
                      req->param);
        break;
    default:
        reply_lock_error(req, LOCK_UNAVAILABLE);
        break;
    }
}

void handle_inventory_put(struct request *req)
{
    static const char *const fields[] = {"stock", NULL};
    struct field_problem prob;
    struct inventory inv;
    enum inventory_result r;
    int64_t stock;

    if (!sku_ok(req))
        return;
    if (fields_known(req->json, fields, &prob) < 0 ||
        field_int(req->json, "stock", -1, 0, 1000000, &stock, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    if (stock < 0) {
        reply_problem(req, 400, "invalid_field", "stock is required");
        return;
    }
    r = inventory_reset(req->param, stock, &inv);
    if (r != INVENTORY_OK) {
        reply_store_error(req, r);
        return;
    }
    reply_json(req, 200, inventory_json(req->param, &inv));
}

void handle_inventory_get(struct request *req)
{
    struct inventory inv;
    enum inventory_result r;

    if (!sku_ok(req))
        return;
    r = inventory_get(req->param, &inv);
    if (r != INVENTORY_OK) {
        reply_store_error(req, r);
        return;
    }
    reply_json(req, 200, inventory_json(req->param, &inv));
}

static int parse_purchase(struct request *req, struct purchase_args *a)
{
    static const char *const fields[] = {
        "mode", "quantity", "work_ms", "pause_ms", "ttl_ms", "wait_ms", NULL};
    const struct config *cfg = req->cfg;
    struct field_problem prob;
    const char *mode;

    if (fields_known(req->json, fields, &prob) < 0 ||
        field_string(req->json, "mode", true, 16, &mode, &prob) < 0 ||
        field_int(req->json, "quantity", 1, 1, 1000, &a->quantity, &prob) < 0 ||
        field_int(req->json, "work_ms", 5, 0, 10000, &a->work_ms, &prob) < 0 ||
        field_int(req->json, "pause_ms", 0, 0, 60000, &a->pause_ms, &prob) <
            0 ||
        field_int(req->json, "ttl_ms", 30000, 1, cfg->max_ttl_ms, &a->ttl_ms,
                  &prob) < 0 ||
        field_int(req->json, "wait_ms", cfg->max_wait_ms, 0, cfg->max_wait_ms,
                  &a->wait_ms, &prob) < 0) {
        reply_field_problem(req, &prob);
        return -1;
    }
    if (strcmp(mode, "unsafe") == 0)
        a->mode = MODE_UNSAFE;
    else if (strcmp(mode, "locked") == 0)
        a->mode = MODE_LOCKED;
    else if (strcmp(mode, "fenced") == 0)
        a->mode = MODE_FENCED;
    else {
        reply_problem(req, 400, "invalid_field",
                      "mode must be unsafe, locked or fenced");
        return -1;
    }
    return 0;
}

/* Drops the purchase's lease, if it holds one. A lease that ran out during
 * a pause answers not_held or not_owner: nothing to undo then. */
static void purchase_unlock(struct purchase *p)
{
    int64_t count;

    if (p->locked)
        lock_release(p->lock_name, p->lease.token, &count);
    p->locked = false;
}

/* However the request ends (a buyer hanging up during the pause included),
 * the lease goes with it. */
static void purchase_free(void *state)
{
    purchase_unlock(state);
    free(state);
}

void handle_inventory_purchase(struct request *req)
{
    struct purchase_args a;
    struct purchase *p = req->state;
    enum inventory_result r;
    int64_t fence, order_id;

    if (!sku_ok(req) || parse_purchase(req, &a) < 0)
        return;
    if (p == NULL) {
        p = calloc(1, sizeof *p);
        if (p == NULL) {
            reply_problem(req, 503, "backend_unavailable", "out of memory");
            return;
        }
        p->phase = a.mode == MODE_UNSAFE ? PHASE_READ : PHASE_LOCK;
        snprintf(p->lock_name, sizeof p->lock_name, "inventory:%s", req->param);
        req->state = p;
        req->state_free = purchase_free;
    }
    if (req->waiter.wake == WAKE_SHUTDOWN) {
        purchase_unlock(p);
        reply_wait_refused(req, false);
        return;
    }
    fence = a.mode == MODE_FENCED ? p->lease.fence : 0;
    switch (p->phase) {
    case PHASE_LOCK:
        switch (acquire_or_wait(req, p->lock_name, NULL, a.ttl_ms, "demo buyer",
                                a.wait_ms, &p->lease)) {
        case STEP_SUSPENDED:
        case STEP_REPLIED:
            return;
        case STEP_GRANTED:
            break;
        }
        p->locked = true;
        p->phase = PHASE_READ;
        fence = a.mode == MODE_FENCED ? p->lease.fence : 0;
        /* fall through */
    case PHASE_READ:
        r = inventory_read_stock(req->param, fence, &p->stock_read);
        if (r != INVENTORY_OK) {
            purchase_unlock(p);
            reply_store_error(req, r);
            return;
        }
        if (p->stock_read < a.quantity) {
            purchase_unlock(p);
            reply_problem(req, 409, "sold_out",
                          "SKU '%s' has %lld left, %lld wanted", req->param,
                          (long long)p->stock_read, (long long)a.quantity);
            return;
        }
        p->phase = PHASE_WRITE;
        if (a.work_ms + a.pause_ms > 0) {
            enum waiters_result w = request_sleep(
                req, clock_now_ns() + MS_TO_NS(a.work_ms + a.pause_ms));
            if (w == WAIT_OK)
                return;
            purchase_unlock(p);
            reply_wait_refused(req, w == WAIT_FULL);
            return;
        }
        /* fall through */
    case PHASE_WRITE:
        r = inventory_write(req->param, p->stock_read - a.quantity, a.quantity,
                            fence, &order_id);
        purchase_unlock(p);
        if (r != INVENTORY_OK) {
            reply_store_error(req, r);
            return;
        }
        reply_json(req, 201,
                   json_pack("{s:I, s:s, s:I, s:I, s:I}", "order_id",
                             (json_int_t)order_id, "sku", req->param,
                             "quantity", (json_int_t)a.quantity, "remaining",
                             (json_int_t)(p->stock_read - a.quantity), "fence",
                             (json_int_t)p->lease.fence));
        return;
    }
}
