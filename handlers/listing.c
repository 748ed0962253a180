/* listing.c -- GET /v1/locks and GET /v1/semaphores: the held or queued
 * names, a page at a time, each as its status shows it without the queue.
 *
 * A page is two steps, each a continuation of the request:
 *   1. one SCAN from the client's cursor (COUNT limit) for the names'
 *      anchor keys under the prefix (and the API key's namespace);
 *   2. the status script of every name found, all queued in one turn (so
 *      they leave in one write); the names held or queued are the page.
 * The Redis work of a call is bounded by limit: SCAN looks at about limit
 * keys and every key it returns costs one status script.
 *
 * Which key finds a name: SCAN guarantees that a key present for a whole
 * iteration is returned at least once, but the keys of one name lie in
 * different places of the keyspace, so finding a name by any of its keys
 * would list it once per key. Each name is therefore found by one key, its
 * fence counter ({name}:fence, {name}:sem:fence): every grant of every mode
 * writes it, a renew extends it, and it outlives the lease by 60 s, longer
 * than any lock-delay. A name's queue only forms while it is held, handed
 * on or in its lock-delay, so a queued name has its fence key too. Whether
 * the name is held or queued is the status script's answer, never the key's
 * presence: a fence key lingering after a release lists nothing.
 *
 * In a Redis Cluster each master is scanned in turn (SCAN sees one node's
 * keys): the cursor is then the SCAN cursor times CURSOR_NODES plus the
 * master's place among them (cluster_masters' order). A resharding between
 * two pages can make a page repeat or miss the names of the slots moved. */
#include "handlers.h"

#include "redis/cluster.h"
#include "redis/keys.h"
#include "request.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX 1000
#define CURSOR_NODES CLUSTER_NODES_MAX

/* What one listing route lists. */
struct listed_kind {
    const char *member; /* the reply's array: "locks", "semaphores" */
    const struct lock_kind *kind;
    const char *anchor; /* the suffix of the key each name is found by */
    json_t *(*status_json)(const char *name, const struct lock_call *c);
};

static const struct listed_kind listed_locks = {"locks", &lock_kind_exclusive,
                                                "fence", lock_status_json};
static const struct listed_kind listed_semaphores = {
    "semaphores", &lock_kind_semaphore, "sem:fence", semaphore_status_json};

/* A listing request's state across its two steps; owned by the request
 * (req->state), freed by listing_free when it ends. */
struct listing {
    struct request *req;
    const struct listed_kind *lk;
    char cursor[24], count[8];
    /* The SCAN pattern: the glob-escaped key prefix, then
     * "{<ns>/<prefix>*}:<anchor>" (each of its characters escaped or not
     * special, at most doubled). */
    char match[2 * (KEY_PREFIX_MAX + SCOPED_NAME_MAX) + 32];
    char next_cursor[24];   /* "" when the iteration is complete */
    size_t master, masters; /* the master scanned, of how many */
    bool failed;            /* a Redis call failed: 503 */
    struct redis_error err; /* failed: the first failure */
    bool out_of_memory;     /* 500 */
    size_t ncalls, pending;
    struct lock_call *calls; /* one status call per name found */
    json_t **items;          /* per call: its entry, NULL when not listed */
};

static void listing_free(void *state)
{
    struct listing *ls = state;

    if (ls == NULL)
        return;
    for (size_t i = 0; i < ls->ncalls; i++) {
        lock_reply_free(&ls->calls[i].reply);
        json_decref(ls->items[i]);
    }
    free(ls->calls);
    free(ls->items);
    free(ls);
}

/* ---- the query ---------------------------------------------------------*/

/* s as a decimal integer of 1..20 digits without a leading zero, at most
 * max. Returns 0 and sets *out, or -1. */
static int parse_decimal(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 20 || s[0] == '0')
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Reads and checks the query into ls. Returns 0, or -1 with the 400
 * invalid_field reply queued. */
static int listing_query(struct request *req, struct listing *ls,
                         const char **prefix)
{
    static const char *const params[] = {"prefix", "limit", "cursor", NULL};
    const char *given_cursor = request_query(req, "cursor");
    struct field_problem prob;
    int64_t limit;
    uint64_t cursor = 0;
    size_t plen;

    if (request_query_known(req, params, &prob) < 0 ||
        query_int(request_query(req, "limit"), "limit", LIST_LIMIT_DEFAULT, 1,
                  LIST_LIMIT_MAX, &limit, &prob) < 0) {
        reply_field_problem(req, &prob);
        return -1;
    }
    *prefix = request_query(req, "prefix");
    if (*prefix == NULL)
        *prefix = "";
    plen = strlen(*prefix);
    if (plen > LOCK_NAME_MAX || (plen > 0 && !lock_name_valid(*prefix, plen))) {
        reply_problem(req, PROBLEM_INVALID_FIELD,
                      "prefix must be 0 to %d characters of A-Z a-z 0-9 . _ "
                      ": -",
                      LOCK_NAME_MAX);
        return -1;
    }
    if (given_cursor != NULL &&
        parse_decimal(given_cursor, UINT64_MAX, &cursor) < 0) {
        reply_problem(req, PROBLEM_INVALID_FIELD,
                      "cursor is malformed: pass next_cursor of the previous "
                      "page as it is, or no cursor to start");
        return -1;
    }
    if (redis_cluster_enabled()) {
        ls->master = (size_t)(cursor % CURSOR_NODES);
        cursor /= CURSOR_NODES;
    }
    snprintf(ls->cursor, sizeof ls->cursor, "%" PRIu64, cursor);
    snprintf(ls->count, sizeof ls->count, "%" PRId64, limit);
    return 0;
}

/* Appends s to the glob at *len in buf (size bytes), with a backslash
 * before each character SCAN's MATCH treats specially. */
static void glob_append(char *buf, size_t size, size_t *len, const char *s)
{
    for (; *s != '\0' && *len + 2 < size; s++) {
        if (strchr("*?[]\\", *s) != NULL)
            buf[(*len)++] = '\\';
        buf[(*len)++] = *s;
    }
    buf[*len] = '\0';
}

static void listing_match(struct listing *ls, const char *ns,
                          const char *prefix)
{
    size_t len = 0, size = sizeof ls->match;

    glob_append(ls->match, size, &len, keys_prefix());
    glob_append(ls->match, size, &len, "{");
    if (ns[0] != '\0') {
        glob_append(ls->match, size, &len, ns);
        glob_append(ls->match, size, &len, "/");
    }
    glob_append(ls->match, size, &len, prefix);
    snprintf(ls->match + len, size - len, "*}:");
    len += strlen(ls->match + len);
    glob_append(ls->match, size, &len, ls->lk->anchor);
}

/* ---- step 2: the status of each name -----------------------------------*/

/* Whether a status body shows the name held or queued: a holder, a
 * waiter, or a hand-off to a waiter under way. Read from the body, so a
 * kind or mode with other state keys is judged by its own status. */
static bool held_or_queued(json_t *status)
{
    json_t *held = json_object_get(status, "held");

    return json_is_true(held) ||
           json_integer_value(json_object_get(status, "holder_count")) > 0 ||
           json_integer_value(json_object_get(status, "waiting")) > 0 ||
           json_object_get(status, "reserved_ms") != NULL;
}

static void status_done(struct lock_call *c)
{
    struct listing *ls = c->ctx;
    size_t i = (size_t)(c - ls->calls);
    const char *shown = c->name;

    if (c->reply.outcome == LOCK_UNAVAILABLE) {
        if (!ls->failed)
            ls->err = c->err;
        ls->failed = true;
    } else {
        if (ls->req->key.ns[0] != '\0')
            shown += strlen(ls->req->key.ns) + 1;
        json_t *status = ls->lk->status_json(shown, c);
        if (status == NULL) {
            ls->out_of_memory = true;
        } else if (held_or_queued(status)) {
            json_object_del(status, "queue");
            ls->items[i] = status;
        } else {
            json_decref(status);
        }
    }
    lock_reply_free(&c->reply);
    if (--ls->pending == 0)
        request_resume(ls->req);
}

static void listing_answer(struct request *req)
{
    struct listing *ls = req->state;
    json_t *items, *body;

    if (ls->out_of_memory) {
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "out of memory");
        return;
    }
    if (ls->failed) {
        reply_backend_error(req, &ls->err);
        return;
    }
    items = json_array();
    for (size_t i = 0; items != NULL && i < ls->ncalls; i++)
        if (ls->items[i] != NULL) {
            json_array_append_new(items, ls->items[i]);
            ls->items[i] = NULL;
        }
    body = json_pack("{s:o, s:o}", ls->lk->member, items, "next_cursor",
                     ls->next_cursor[0] != '\0' ? json_string(ls->next_cursor)
                                                : json_null());
    if (body == NULL) {
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "out of memory");
        return;
    }
    reply_json(req, 200, body);
}

/* The engine name in key (one SCAN returned), or NULL when key is not the
 * anchor key of a name the caller may see; *len is its length. Checked
 * here whatever the pattern matched: a name is of the name alphabet,
 * under the caller's namespace ("<ns>/<name>") or, without one, in none. */
static const char *name_of_key(const struct listing *ls, const char *key,
                               size_t *len)
{
    const char *ns = ls->req->key.ns, *name, *end, *bare;
    size_t plen = strlen(keys_prefix()), nslen = strlen(ns);

    if (strncmp(key, keys_prefix(), plen) != 0 || key[plen] != '{')
        return NULL;
    name = key + plen + 1;
    end = strchr(name, '}');
    if (end == NULL || end[1] != ':' || strcmp(end + 2, ls->lk->anchor) != 0)
        return NULL;
    *len = (size_t)(end - name);
    bare = name;
    if (nslen > 0) {
        if (*len <= nslen + 1 || strncmp(name, ns, nslen) != 0 ||
            name[nslen] != '/')
            return NULL;
        bare = name + nslen + 1;
    }
    if (!lock_name_valid(bare, (size_t)(end - bare)))
        return NULL;
    return name;
}

static int call_name_cmp(const void *a, const void *b)
{
    const struct lock_call *x = a, *y = b;

    return strcmp(x->name, y->name);
}

static void listing_scanned(struct request *req)
{
    struct listing *ls = req->state;
    size_t n = 0;

    if (ls->out_of_memory) {
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "out of memory");
        return;
    }
    if (ls->failed) {
        reply_backend_error(req, &ls->err);
        return;
    }
    /* Sorted, so a page reads in name order and a name SCAN returned
     * twice is asked for once. */
    if (ls->ncalls > 1)
        qsort(ls->calls, ls->ncalls, sizeof *ls->calls, call_name_cmp);
    for (size_t i = 0; i < ls->ncalls; i++)
        if (n == 0 || strcmp(ls->calls[n - 1].name, ls->calls[i].name) != 0)
            memmove(&ls->calls[n++], &ls->calls[i], sizeof *ls->calls);
    ls->ncalls = n;
    ls->pending = n;
    if (n == 0) {
        listing_answer(req);
        return;
    }
    request_suspend(req, listing_answer);
    for (size_t i = 0; i < n; i++)
        lock_call_status(&ls->calls[i]);
}

/* ---- step 1: the SCAN --------------------------------------------------*/

/* Takes the SCAN's reply {cursor, [key, ...]}: the next cursor, and one
 * status call (not started yet) per key naming a name. */
static void on_scan(void *ctx, const redisReply *r,
                    const struct redis_error *err)
{
    struct listing *ls = ctx;
    const redisReply *keys;

    if (err != NULL) {
        ls->failed = true;
        ls->err = *err;
        goto out;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY ||
        r->element[0]->len >= sizeof ls->next_cursor) {
        ls->failed = true;
        ls->err.failure = REDIS_FAIL_SHAPE;
        snprintf(ls->err.detail, sizeof ls->err.detail,
                 "SCAN answered something unknown");
        goto out;
    }
    if (!redis_cluster_enabled()) {
        if (strcmp(r->element[0]->str, "0") != 0)
            memcpy(ls->next_cursor, r->element[0]->str, r->element[0]->len + 1);
    } else {
        uint64_t c = 0;
        size_t m = ls->master;
        bool done = strcmp(r->element[0]->str, "0") == 0;
        if (done)
            m++; /* this master is done: the next one from its start */
        if ((!done && parse_decimal(r->element[0]->str, UINT64_MAX, &c) < 0) ||
            c > (UINT64_MAX - CURSOR_NODES) / CURSOR_NODES) {
            ls->failed = true;
            ls->err.failure = REDIS_FAIL_SHAPE;
            snprintf(ls->err.detail, sizeof ls->err.detail,
                     "SCAN answered a cursor too large to list a cluster by");
            goto out;
        }
        if (c != 0 || m < ls->masters)
            snprintf(ls->next_cursor, sizeof ls->next_cursor, "%" PRIu64,
                     c * CURSOR_NODES + m);
    }
    keys = r->element[1];
    if (keys->elements == 0)
        goto out;
    ls->calls = calloc(keys->elements, sizeof *ls->calls);
    ls->items = calloc(keys->elements, sizeof *ls->items);
    if (ls->calls == NULL || ls->items == NULL) {
        ls->out_of_memory = true;
        goto out;
    }
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        const char *name;
        size_t len;
        if (k->type != REDIS_REPLY_STRING || strlen(k->str) != k->len)
            continue;
        name = name_of_key(ls, k->str, &len);
        if (name == NULL)
            continue;
        struct lock_call *c = &ls->calls[ls->ncalls++];
        c->kind = ls->lk->kind;
        memcpy(c->name, name, len);
        c->name[len] = '\0';
        c->done = status_done;
        c->ctx = ls;
    }
out:
    request_resume(ls->req);
}

static void list_start(struct request *req, const struct listed_kind *lk)
{
    struct listing *ls = calloc(1, sizeof *ls);
    const char *prefix, *argv[6];
    size_t lens[6];
    int ids[CLUSTER_NODES_MAX];

    if (ls == NULL) {
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "out of memory");
        return;
    }
    ls->req = req;
    ls->lk = lk;
    req->state = ls;
    req->state_free = listing_free;
    if (listing_query(req, ls, &prefix) < 0)
        return;
    listing_match(ls, req->key.ns, prefix);
    ls->masters = redis_route_masters(ids, CLUSTER_NODES_MAX);
    if (ls->masters == 0) {
        struct redis_error e = {REDIS_FAIL_DOWN,
                                "the Redis Cluster's slot map is not known "
                                "yet"};
        reply_backend_error(req, &e);
        return;
    }
    if (ls->master >= ls->masters) {
        /* The cluster has fewer masters than when the cursor was made. */
        listing_answer(req);
        return;
    }
    argv[0] = "SCAN";
    argv[1] = ls->cursor;
    argv[2] = "MATCH";
    argv[3] = ls->match;
    argv[4] = "COUNT";
    argv[5] = ls->count;
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    request_suspend(req, listing_scanned);
    redis_route_command_at(lock_engine_route(), ids[ls->master], 6, argv, lens,
                           on_scan, ls);
}

void handle_lock_list(struct request *req)
{
    list_start(req, &listed_locks);
}

void handle_semaphore_list(struct request *req)
{
    list_start(req, &listed_semaphores);
}
