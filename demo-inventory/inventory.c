/* inventory.c -- /demo/inventory/{sku}: the overselling demo's handlers.
 *
 * A purchase reads the stock, spends work_ms (the payment call) and
 * pause_ms (a stall, like a GC pause), then writes stock - quantity. In
 * "unsafe" mode nothing guards the gap; "locked" holds lock inventory:{sku}
 * through the same engine and waiting as /v1/locks; "fenced" also passes the
 * lease's fence to the store, which refuses an older fence than one it has
 * seen. Each step is a continuation; the pause is a timed suspension. No
 * thread is held. Under an API key with a namespace, the SKU (req->name)
 * and its lock ("<ns>/inventory:{sku}") live in that namespace; replies
 * show the SKU as the client wrote it. */
#include "inventory.h"

#include "handlers/handlers.h"
#include "inventory_store.h"
#include "request.h"

#include <stdlib.h>
#include <string.h>

enum purchase_mode { MODE_UNSAFE, MODE_LOCKED, MODE_FENCED };

struct purchase_args {
    enum purchase_mode mode;
    int64_t quantity, work_ms, pause_ms, ttl_ms, wait_ms;
};

/* A request's store call, and a purchase's progress; freed with the
 * request. */
struct purchase {
    struct request *req;
    struct purchase_args a;
    struct inventory_call store;
    bool locked;
    int64_t stock_read;
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
    reply_problem(req, PROBLEM_INVALID_NAME,
                  "SKUs are 1 to %d characters of A-Z a-z 0-9 . _ : -",
                  SKU_MAX);
    return false;
}

static void reply_store_error(struct request *req,
                              const struct inventory_call *c)
{
    switch (c->result) {
    case INVENTORY_NO_SKU:
        reply_problem(req, PROBLEM_SKU_NOT_FOUND,
                      "no inventory for SKU '%s'; PUT it first", req->param);
        return;
    case INVENTORY_STALE:
        reply_problem(req, PROBLEM_STALE_FENCE,
                      "a newer lease has written SKU '%s'; this write was "
                      "refused",
                      req->param);
        return;
    case INVENTORY_UNAVAILABLE:
    case INVENTORY_OK:
        break;
    }
    reply_backend_error(req, &c->err);
}

static void store_done(struct inventory_call *c)
{
    request_resume(c->ctx);
}

/* The request's purchase state (store call included), made on first use. */
static struct purchase *purchase_of(struct request *req);

static void inventory_answer(struct request *req)
{
    struct purchase *p = req->state;

    if (p->store.result != INVENTORY_OK) {
        reply_store_error(req, &p->store);
        return;
    }
    reply_json(req, 200, inventory_json(req->param, &p->store.inv));
}

void handle_inventory_put(struct request *req)
{
    static const char *const fields[] = {"stock", NULL};
    struct field_problem prob;
    struct purchase *p;
    int64_t stock;

    if (!sku_ok(req))
        return;
    if (fields_known(req->json, fields, &prob) < 0 ||
        field_int(req->json, "stock", -1, 0, 1000000, &stock, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    if (stock < 0) {
        reply_problem(req, PROBLEM_INVALID_FIELD, "stock is required");
        return;
    }
    if ((p = purchase_of(req)) == NULL)
        return;
    request_suspend(req, inventory_answer);
    inventory_reset(&p->store, req->name, stock);
}

void handle_inventory_get(struct request *req)
{
    struct purchase *p;

    if (!sku_ok(req) || (p = purchase_of(req)) == NULL)
        return;
    request_suspend(req, inventory_answer);
    inventory_get(&p->store, req->name);
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
        reply_problem(req, PROBLEM_INVALID_FIELD,
                      "mode must be unsafe, locked or fenced");
        return -1;
    }
    return 0;
}

static void forget_release(struct lock_call *c)
{
    free(c);
}

/* Drops the purchase's lease, if it holds one, without waiting for the
 * answer. A lease that ran out during a pause answers not_held or
 * not_owner: nothing to undo then. */
static void purchase_unlock(struct purchase *p)
{
    struct lock_call *rel;

    if (!p->locked)
        return;
    p->locked = false;
    rel = calloc(1, sizeof *rel);
    if (rel == NULL)
        return; /* the lease ends with its TTL */
    rel->kind = p->req->lock.kind;
    memcpy(rel->name, p->req->lock.name, sizeof rel->name);
    memcpy(rel->token, p->req->lock.token, sizeof rel->token);
    rel->done = forget_release;
    lock_call_release(rel);
}

/* However the request ends (a buyer hanging up during the pause included),
 * the lease goes with it. */
static void purchase_free(void *state)
{
    purchase_unlock(state);
    free(state);
}

static struct purchase *purchase_of(struct request *req)
{
    struct purchase *p = calloc(1, sizeof *p);

    if (p == NULL) {
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "out of memory");
        return NULL;
    }
    p->req = req;
    p->store.done = store_done;
    p->store.ctx = req;
    req->state = p;
    req->state_free = purchase_free;
    return p;
}

static int64_t purchase_fence(const struct purchase *p)
{
    return p->a.mode == MODE_FENCED ? p->req->lock.reply.lease.fence : 0;
}

static void written(struct request *req)
{
    struct purchase *p = req->state;

    purchase_unlock(p);
    if (p->store.result != INVENTORY_OK) {
        reply_store_error(req, &p->store);
        return;
    }
    reply_json(req, 201,
               json_pack("{s:I, s:s, s:I, s:I, s:I}", "order_id",
                         (json_int_t)p->store.order_id, "sku", req->param,
                         "quantity", (json_int_t)p->a.quantity, "remaining",
                         (json_int_t)(p->stock_read - p->a.quantity), "fence",
                         (json_int_t)req->lock.reply.lease.fence));
}

static void write_now(struct request *req)
{
    struct purchase *p = req->state;

    request_suspend(req, written);
    inventory_write(&p->store, req->name, p->stock_read - p->a.quantity,
                    p->a.quantity, purchase_fence(p));
}

static void read_done(struct request *req)
{
    struct purchase *p = req->state;

    if (p->store.result != INVENTORY_OK) {
        purchase_unlock(p);
        reply_store_error(req, &p->store);
        return;
    }
    p->stock_read = p->store.stock;
    if (p->stock_read < p->a.quantity) {
        purchase_unlock(p);
        reply_problem(req, PROBLEM_SOLD_OUT,
                      "SKU '%s' has %lld left, %lld wanted", req->param,
                      (long long)p->stock_read, (long long)p->a.quantity);
        return;
    }
    if (p->a.work_ms + p->a.pause_ms == 0) {
        write_now(req);
        return;
    }
    if (!request_sleep(req, p->a.work_ms + p->a.pause_ms, write_now)) {
        purchase_unlock(p);
        reply_problem_ex(req, PROBLEM_TOO_MANY_WAITERS, NULL, 1,
                         "this instance already has %u waiters",
                         req->cfg->max_waiters);
    }
}

static void read_now(struct request *req)
{
    struct purchase *p = req->state;

    request_suspend(req, read_done);
    inventory_read_stock(&p->store, req->name, purchase_fence(p));
}

static void locked(struct request *req)
{
    struct purchase *p = req->state;

    if (req->lock.reply.outcome != LOCK_OK ||
        req->lock.refusal != LOCK_REFUSAL_NONE) {
        reply_lock_failure(req, &req->lock);
        return;
    }
    p->locked = true;
    read_now(req);
}

/* So that "<ns>/inventory:<sku>" fits what the engine takes. */
_Static_assert(sizeof "inventory:" - 1 + SKU_MAX <= LOCK_NAME_MAX,
               "a SKU's lock name is a lock name");

void handle_inventory_purchase(struct request *req)
{
    struct purchase_args a;
    struct purchase *p;
    /* Room for any param; a SKU (at most SKU_MAX) makes a valid name. */
    char lock_name[NAMESPACE_MAX + sizeof "/inventory:" + LOCK_NAME_MAX];
    struct lock_call *c;

    if (!sku_ok(req) || parse_purchase(req, &a) < 0 ||
        (p = purchase_of(req)) == NULL)
        return;
    p->a = a;
    if (a.mode == MODE_UNSAFE) {
        read_now(req);
        return;
    }
    if (req->key.ns[0] != '\0')
        snprintf(lock_name, sizeof lock_name, "%s/inventory:%s", req->key.ns,
                 req->param);
    else
        snprintf(lock_name, sizeof lock_name, "inventory:%s", req->param);
    c = request_lock_call(req, &lock_kind_exclusive, lock_name);
    c->ttl_ms = a.ttl_ms;
    c->wait_ms = a.wait_ms;
    c->owner = "demo buyer";
    request_suspend(req, locked);
    lock_call_acquire(c);
}
