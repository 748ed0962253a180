/* test_listing.c -- GET /v1/locks and GET /v1/semaphores (issue 10,
 * DESIGN.md 4.4): two instances on one Redis, one open (no API keys) and
 * one with keys (an unscoped admin, tenants a and b, a read key of a).
 *
 *  - an empty listing is one page: [] and next_cursor null; HEAD answers
 *    as GET; other methods 405 with Allow;
 *  - 250 held names, listed by pages of limit 100 following next_cursor:
 *    each exactly once, each as its status shows it without the queue;
 *    names only released (a lingering fence key) are absent, and so is a
 *    name released meanwhile;
 *  - prefix keeps to the names under it;
 *  - a held name with a parked waiter shows waiting 1 (and no queue);
 *  - a name held by shared leases only is listed;
 *  - semaphores list with limit and used, apart from the locks;
 *  - a namespaced key lists only its namespace's names, shown without the
 *    namespace; an unscoped key lists no namespaced name; a read key may
 *    list; no key is 401;
 *  - bad limit, prefix, cursor, unknown or repeated parameters: 400
 *    invalid_field, and Redis holds the same keys after;
 *  - 10,000 held names (2,000 under valgrind) listed at limit 1000 while
 *    names are released and taken between pages: each name held throughout
 *    listed exactly once, the others at most once;
 *  - Redis down: 503 backend_unavailable, fast. */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define K_ADMIN "listing-admin-key-0123456789"
#define K_NSA "listing-tenant-a-key-012345"
#define K_NSB "listing-tenant-b-key-012345"
#define K_READA "listing-read-a-key-0123456"

static struct redis_proc redis;
static struct svc_proc open_svc, keyed;
static char tmpdir[256], keyfile[300];

static const char *const h_admin[] = {"Authorization: Bearer " K_ADMIN, NULL};
static const char *const h_nsa[] = {"Authorization: Bearer " K_NSA, NULL};
static const char *const h_nsb[] = {"Authorization: Bearer " K_NSB, NULL};
static const char *const h_reada[] = {"Authorization: Bearer " K_READA, NULL};

static long scaled(double ms)
{
    return (long)(ms * time_scale());
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fputs(text, f);
    fclose(f);
}

/* Acquires lock name for 10 minutes; returns its token in tok (64 bytes)
 * and true on 200. */
static bool hold(const char *base, const char *const *h, const char *name,
                 char *tok)
{
    struct http_resp r;
    char path[200];
    bool ok;

    snprintf(path, sizeof path, "/v1/locks/%s/acquire", name);
    httpf(&r, base, "POST", path, h, "{\"ttl_ms\":600000,\"owner\":\"o-%s\"}",
          name);
    ok = r.status == 200 && jstr(&r, "token") != NULL;
    if (ok && tok != NULL)
        snprintf(tok, 64, "%s", jstr(&r, "token"));
    http_resp_free(&r);
    return ok;
}

static bool release(const char *base, const char *const *h, const char *name,
                    const char *tok)
{
    struct http_resp r;
    char path[200];
    bool ok;

    snprintf(path, sizeof path, "/v1/locks/%s/release", name);
    httpf(&r, base, "POST", path, h, "{\"token\":\"%s\"}", tok);
    ok = r.status == 200;
    http_resp_free(&r);
    return ok;
}

/* What a full iteration saw. */
struct seen {
    char names[600][160];
    int times[600];
    int n;         /* distinct names */
    int pages;     /* pages fetched */
    int max_page;  /* most items on one page */
    bool ok;       /* every page 200 with the member array and next_cursor */
    bool no_queue; /* no entry had a "queue" member */
    bool shape;    /* every entry had the status members */
    json_t *last;  /* the last entry of each name (owned), by index */
    char fail[640];
};

static int seen_index(struct seen *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return i;
    if (s->n == 600)
        return -1;
    snprintf(s->names[s->n], sizeof s->names[s->n], "%s", name);
    s->times[s->n] = 0;
    json_array_append_new(s->last, json_null());
    return s->n++;
}

/* Lists collection ("locks", "semaphores") to the end with query (e.g.
 * "prefix=a&limit=100", may be ""), following next_cursor. */
static void list_all(struct seen *s, const char *base, const char *const *h,
                     const char *collection, const char *query)
{
    char cursor[64] = "";

    memset(s, 0, sizeof *s);
    s->ok = s->no_queue = s->shape = true;
    s->last = json_array();
    for (int guard = 0; guard < 2000; guard++) {
        struct http_resp r;
        char path[512];
        json_t *items, *next, *e;
        size_t i;

        snprintf(path, sizeof path, "/v1/%s?%s%s%s%s", collection, query,
                 query[0] && cursor[0] ? "&" : "", cursor[0] ? "cursor=" : "",
                 cursor);
        http(&r, base, "GET", path, NULL, h);
        s->pages++;
        items = r.json ? json_object_get(r.json, collection) : NULL;
        next = r.json ? json_object_get(r.json, "next_cursor") : NULL;
        if (r.status != 200 || !json_is_array(items) ||
            (!json_is_null(next) && !json_is_string(next))) {
            s->ok = false;
            snprintf(s->fail, sizeof s->fail, "GET %s -> %ld %.160s", path,
                     r.status, r.body ? r.body : "");
            http_resp_free(&r);
            return;
        }
        if ((int)json_array_size(items) > s->max_page)
            s->max_page = (int)json_array_size(items);
        json_array_foreach(items, i, e)
        {
            const char *name = json_string_value(json_object_get(e, "name"));
            int k = name ? seen_index(s, name) : -1;
            if (k < 0) {
                s->shape = false;
                continue;
            }
            s->times[k]++;
            json_array_set(s->last, (size_t)k, e);
            if (json_object_get(e, "queue") != NULL)
                s->no_queue = false;
            if (json_object_get(e, "waiting") == NULL ||
                json_object_get(e, "holders") == NULL)
                s->shape = false;
        }
        if (json_is_null(next)) {
            http_resp_free(&r);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        http_resp_free(&r);
    }
    s->ok = false;
    snprintf(s->fail, sizeof s->fail, "no end after 2000 pages");
}

static void seen_free(struct seen *s)
{
    json_decref(s->last);
    s->last = NULL;
}

static json_t *seen_entry(struct seen *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return json_array_get(s->last, (size_t)i);
    return NULL;
}

static int seen_times(const struct seen *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->times[i];
    return 0;
}

static void test_empty(void)
{
    struct seen s;
    struct http_resp r;
    char allow[128];

    list_all(&s, open_svc.url, NULL, "locks", "");
    t_ok(s.ok && s.n == 0 && s.pages == 1,
         "empty Redis: GET /v1/locks is one page, [] and next_cursor null "
         "(%d pages, %d names) %s",
         s.pages, s.n, s.fail);
    seen_free(&s);
    list_all(&s, open_svc.url, NULL, "semaphores", "limit=1");
    /* The instances' liveness keys share the keyspace: at limit 1 the
     * empty listing may take more than one (empty) page. */
    t_ok(s.ok && s.n == 0,
         "empty Redis: GET /v1/semaphores?limit=1 lists nothing (%d pages) %s",
         s.pages, s.fail);
    seen_free(&s);

    http(&r, open_svc.url, "HEAD", "/v1/locks", NULL, NULL);
    t_ok(r.status == 200 && r.len == 0, "HEAD /v1/locks -> 200, no body (%ld)",
         r.status);
    http_resp_free(&r);
    http(&r, open_svc.url, "POST", "/v1/semaphores", "{}", NULL);
    t_ok(problem_is(&r, 405, "method_not_allowed") &&
             http_header(&r, "Allow", allow, sizeof allow) &&
             strstr(allow, "GET") && strstr(allow, "HEAD"),
         "POST /v1/semaphores -> 405 with Allow: GET, HEAD (%s)",
         http_header(&r, "Allow", allow, sizeof allow) ? allow : "none");
    http_resp_free(&r);
    http(&r, open_svc.url, "DELETE", "/v1/locks", NULL, NULL);
    t_ok(problem_is(&r, 405, "method_not_allowed"), "DELETE /v1/locks -> 405");
    http_resp_free(&r);
}

static void test_pages(void)
{
    char tok[64], name[64], gone_tok[64];
    int held = 0, gone = 0;
    struct seen s;

    for (int i = 0; i < 250; i++) {
        snprintf(name, sizeof name, "bulk-%03d", i);
        held += hold(open_svc.url, NULL, name, NULL);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "gone-%03d", i);
        gone += hold(open_svc.url, NULL, name, tok) &&
                release(open_svc.url, NULL, name, tok);
    }
    t_ok(held == 250 && gone == 40,
         "250 names held, 40 acquired and released (%d, %d)", held, gone);
    t_ok(redis_cli_int(&redis, "EXISTS lockservice:{gone-000}:fence") == 1,
         "a released name's fence key lingers");
    t_ok(hold(open_svc.url, NULL, "bulk-x-released", gone_tok),
         "bulk-x-released held");

    list_all(&s, open_svc.url, NULL, "locks", "limit=100");
    int once = 0, twice = 0, gone_listed = 0;
    for (int i = 0; i < 250; i++) {
        snprintf(name, sizeof name, "bulk-%03d", i);
        int t = seen_times(&s, name);
        once += t == 1;
        twice += t > 1;
    }
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "gone-%03d", i);
        gone_listed += seen_times(&s, name);
    }
    t_ok(s.ok && once == 250 && twice == 0,
         "limit=100: every held name listed exactly once across %d pages "
         "(%d once, %d more often) %s",
         s.pages, once, twice, s.fail);
    t_ok(s.pages >= 3, "251 names at limit 100 take at least 3 pages (%d)",
         s.pages);
    t_ok(gone_listed == 0, "released names are not listed (%d listings)",
         gone_listed);
    t_ok(s.n == 251, "nothing else is listed (%d names)", s.n);
    t_ok(s.no_queue && s.shape,
         "entries are status bodies (holders, waiting) without queue");
    t_diag("pages %d, largest page %d items", s.pages, s.max_page);
    json_t *e = seen_entry(&s, "bulk-007");
    t_ok(e && json_is_true(json_object_get(e, "held")) &&
             json_integer_value(json_object_get(e, "fence")) > 0 &&
             json_integer_value(json_object_get(e, "count")) == 1 &&
             json_integer_value(json_object_get(e, "waiting")) == 0 &&
             json_object_get(e, "token") == NULL &&
             strcmp(json_string_value(json_object_get(e, "owner")) ?: "",
                    "o-bulk-007") == 0 &&
             strcmp(json_string_value(json_object_get(e, "mode")) ?: "",
                    "exclusive") == 0,
         "bulk-007 shows held, owner, mode, fence, count, waiting 0, no "
         "token");
    seen_free(&s);

    t_ok(release(open_svc.url, NULL, "bulk-x-released", gone_tok),
         "bulk-x-released released");
    list_all(&s, open_svc.url, NULL, "locks", "limit=1000");
    t_ok(s.ok && s.n == 250 && seen_times(&s, "bulk-x-released") == 0,
         "limit=1000: the 250 held names, not the one released since (%d) %s",
         s.n, s.fail);
    seen_free(&s);

    list_all(&s, open_svc.url, NULL, "locks", "prefix=bulk-1&limit=1000");
    int in = 0;
    for (int i = 100; i < 200; i++) {
        snprintf(name, sizeof name, "bulk-%03d", i);
        in += seen_times(&s, name) == 1;
    }
    t_ok(s.ok && in == 100 && s.n == 100,
         "prefix=bulk-1: exactly bulk-100..bulk-199 (%d of %d) %s", in, s.n,
         s.fail);
    seen_free(&s);
    list_all(&s, open_svc.url, NULL, "locks", "prefix=bulk-249");
    t_ok(s.ok && s.n == 1 && seen_times(&s, "bulk-249") == 1,
         "prefix=bulk-249 (a whole name): that name alone (%d)", s.n);
    seen_free(&s);
    list_all(&s, open_svc.url, NULL, "locks", "prefix=nothing-here");
    t_ok(s.ok && s.n == 0, "prefix nobody holds: empty (%d)", s.n);
    seen_free(&s);
    list_all(&s, open_svc.url, NULL, "semaphores", "prefix=bulk-");
    t_ok(s.ok && s.n == 0, "locks are not listed as semaphores (%d)", s.n);
    seen_free(&s);
}

/* A name held only by shared leases is listed, with its holders. */
static void test_shared_only(void)
{
    struct http_resp r;
    struct seen s;
    int granted = 0;

    for (int i = 0; i < 2; i++) {
        http(&r, open_svc.url, "POST", "/v1/locks/sh-only/acquire",
             "{\"mode\":\"shared\",\"ttl_ms\":600000}", NULL);
        granted += r.status == 200;
        http_resp_free(&r);
    }
    list_all(&s, open_svc.url, NULL, "locks", "prefix=sh-");
    json_t *e = seen_entry(&s, "sh-only");
    t_ok(granted == 2 && s.ok && s.n == 1 && e != NULL &&
             json_integer_value(json_object_get(e, "holder_count")) == 2 &&
             json_is_string(json_object_get(e, "mode")) &&
             strcmp(json_string_value(json_object_get(e, "mode")), "shared") ==
                 0,
         "a name held by two shared leases only is listed, mode shared, "
         "holder_count 2 (%d names)",
         s.n);
    json_decref(s.last);
    http(&r, open_svc.url, "DELETE", "/v1/locks/sh-only", NULL, NULL);
    http_resp_free(&r);
}

static void test_queued(void)
{
    char tok[64];
    struct seen s;
    int fd;

    t_ok(hold(open_svc.url, NULL, "q-held", tok), "q-held held");
    fd = raw_request(open_svc.port, "POST", "/v1/locks/q-held/acquire",
                     "{\"wait_ms\":60000,\"owner\":\"patient\"}");
    t_ok(fd >= 0 && waiters_become(open_svc.url, 1, 5000),
         "a waiter parks on q-held");
    list_all(&s, open_svc.url, NULL, "locks", "prefix=q-");
    json_t *e = seen_entry(&s, "q-held");
    t_ok(s.ok && s.n == 1 && e &&
             json_integer_value(json_object_get(e, "waiting")) == 1 &&
             json_object_get(e, "queue") == NULL &&
             json_is_true(json_object_get(e, "held")),
         "q-held is listed held with waiting 1 and no queue %s", s.fail);
    seen_free(&s);
    t_ok(release(open_svc.url, NULL, "q-held", tok), "q-held released");
    t_ok(raw_status(fd, (int)scaled(5000)) == 200,
         "the waiter is granted q-held");
    if (fd >= 0)
        close(fd);
    list_all(&s, open_svc.url, NULL, "locks", "prefix=q-");
    e = seen_entry(&s, "q-held");
    t_ok(s.ok && s.n == 1 && e &&
             json_integer_value(json_object_get(e, "waiting")) == 0 &&
             strcmp(json_string_value(json_object_get(e, "owner")) ?: "",
                    "patient") == 0,
         "q-held is listed with its new holder, nobody waiting");
    seen_free(&s);
}

static void test_semaphores(void)
{
    struct http_resp r;
    struct seen s;

    httpf(&r, open_svc.url, "POST", "/v1/semaphores/sem-a/acquire", NULL,
          "{\"limit\":5,\"permits\":2,\"ttl_ms\":600000,\"owner\":\"s1\"}");
    t_ok(r.status == 200, "sem-a: 2 of 5 permits (%ld)", r.status);
    http_resp_free(&r);
    httpf(&r, open_svc.url, "POST", "/v1/semaphores/sem-b/acquire", NULL,
          "{\"limit\":1,\"ttl_ms\":600000}");
    char tok[64] = "";
    if (jstr(&r, "token"))
        snprintf(tok, sizeof tok, "%s", jstr(&r, "token"));
    http_resp_free(&r);
    httpf(&r, open_svc.url, "POST", "/v1/semaphores/sem-b/release", NULL,
          "{\"token\":\"%s\"}", tok);
    t_ok(r.status == 200, "sem-b acquired and released (%ld)", r.status);
    http_resp_free(&r);

    list_all(&s, open_svc.url, NULL, "semaphores", "limit=10");
    json_t *e = seen_entry(&s, "sem-a");
    t_ok(s.ok && s.n == 1 && e &&
             json_integer_value(json_object_get(e, "limit")) == 5 &&
             json_integer_value(json_object_get(e, "used")) == 2 &&
             json_integer_value(json_object_get(e, "holder_count")) == 1 &&
             json_integer_value(json_object_get(e, "waiting")) == 0 &&
             json_object_get(e, "queue") == NULL,
         "semaphores: sem-a alone, limit 5, used 2, one holder, no queue "
         "(%d names) %s",
         s.n, s.fail);
    seen_free(&s);
    list_all(&s, open_svc.url, NULL, "locks", "prefix=sem-");
    t_ok(s.ok && s.n == 0, "semaphores are not listed as locks (%d)", s.n);
    seen_free(&s);
}

static void test_namespaces(void)
{
    struct http_resp r;
    struct seen s;

    t_ok(hold(keyed.url, h_nsa, "both", NULL) &&
             hold(keyed.url, h_nsa, "only-a", NULL) &&
             hold(keyed.url, h_nsb, "both", NULL) &&
             hold(keyed.url, h_admin, "plain-admin", NULL),
         "a holds both and only-a, b holds both, the admin plain-admin");

    list_all(&s, keyed.url, h_nsa, "locks", "");
    t_ok(s.ok && s.n == 2 && seen_times(&s, "both") == 1 &&
             seen_times(&s, "only-a") == 1,
         "tenant a lists both and only-a, without its namespace (%d: %s %s)",
         s.n, s.n > 0 ? s.names[0] : "", s.n > 1 ? s.names[1] : "");
    json_t *e = seen_entry(&s, "both");
    t_ok(e && strcmp(json_string_value(json_object_get(e, "owner")) ?: "",
                     "o-both") == 0,
         "its entry is its own lease");
    seen_free(&s);
    list_all(&s, keyed.url, h_nsa, "locks", "prefix=only");
    t_ok(s.ok && s.n == 1 && seen_times(&s, "only-a") == 1,
         "tenant a with prefix=only: only-a");
    seen_free(&s);
    list_all(&s, keyed.url, h_nsb, "locks", "limit=1");
    t_ok(s.ok && s.n == 1 && seen_times(&s, "both") == 1,
         "tenant b lists its both alone (%d) %s", s.n, s.fail);
    seen_free(&s);
    list_all(&s, keyed.url, h_reada, "locks", "");
    t_ok(s.ok && s.n == 2, "a read key of namespace a lists a's names (%d) %s",
         s.n, s.fail);
    seen_free(&s);
    list_all(&s, keyed.url, h_admin, "locks", "prefix=plain-");
    t_ok(s.ok && s.n == 1 && seen_times(&s, "plain-admin") == 1,
         "the unscoped admin key lists plain-admin (%d)", s.n);
    seen_free(&s);
    list_all(&s, keyed.url, h_admin, "locks", "limit=1000");
    int slashed = 0;
    for (int i = 0; i < s.n; i++)
        slashed += strchr(s.names[i], '/') != NULL;
    t_ok(s.ok && slashed == 0 && seen_times(&s, "both") == 0,
         "an unscoped key lists no namespaced name (%d of %d)", slashed, s.n);
    seen_free(&s);
    http(&r, keyed.url, "GET", "/v1/locks", NULL, NULL);
    t_ok(problem_is(&r, 401, "unauthorized"), "no key: 401 unauthorized");
    http_resp_free(&r);
    http(&r, keyed.url, "GET", "/v1/semaphores?prefix=x", NULL, NULL);
    t_ok(problem_is(&r, 401, "unauthorized"),
         "no key on /v1/semaphores: 401 unauthorized");
    http_resp_free(&r);
}

static void test_bad_input(void)
{
    static const char *const bad[] = {
        "limit=0",
        "limit=1001",
        "limit=-1",
        "limit=abc",
        "limit=",
        "limit=10x",
        "limit=99999999999999999999999",
        "limit=0100",
        "prefix=a/b",
        "prefix=a*",
        "prefix=a%3Fb",
        "prefix=a%5Bb%5D",
        "prefix=%7Bx%7D",
        "prefix=a%20b",
        "prefix=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "cursor=abc",
        "cursor=0",
        "cursor=-5",
        "cursor=",
        "cursor=99999999999999999999999",
        "cursor=18446744073709551616",
        "cursor=1%200",
        "cursor=00012",
        "count=10",
        "match=*",
        "limit=10&limit=20",
        "prefix=a&prefix=b",
        "cursor",
    };
    const char *collections[] = {"locks", "semaphores"};
    long long keys_before = redis_cli_int(&redis, "DBSIZE");
    int refused = 0, total = 0;

    for (size_t c = 0; c < 2; c++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            struct http_resp r;
            char path[512];
            snprintf(path, sizeof path, "/v1/%s?%s", collections[c], bad[i]);
            http(&r, open_svc.url, "GET", path, NULL, NULL);
            total++;
            if (problem_is(&r, 400, "invalid_field"))
                refused++;
            else
                t_diag("GET %s -> %ld %s", path, r.status, r.body);
            http_resp_free(&r);
        }
    t_ok(refused == total,
         "bad limit, prefix, cursor, unknown or repeated parameters: 400 "
         "invalid_field (%d of %d)",
         refused, total);
    t_ok(redis_cli_int(&redis, "DBSIZE") == keys_before,
         "Redis holds as many keys after (%lld, %lld)", keys_before,
         redis_cli_int(&redis, "DBSIZE"));

    struct http_resp r;
    http(&r, open_svc.url, "GET", "/v1/locks?cursor=18446744073709551615", NULL,
         NULL);
    t_ok(r.status == 200,
         "a well-formed cursor nobody handed out is only a "
         "cursor: 200 (%ld)",
         r.status);
    http_resp_free(&r);
    http(&r, open_svc.url, "GET", "/v1/locks?prefix=&limit=1000", NULL, NULL);
    t_ok(r.status == 200, "an empty prefix and limit 1000 are fine (%ld)",
         r.status);
    http_resp_free(&r);
}

static void test_redis_down(void)
{
    struct http_resp r;
    double t0;

    redis_kill(&redis);
    t0 = now_ms();
    http(&r, open_svc.url, "GET", "/v1/locks?limit=10", NULL, NULL);
    double ms = now_ms() - t0;
    t_ok(problem_is(&r, 503, "backend_unavailable") && ms < scaled(3000),
         "Redis down: GET /v1/locks -> 503 backend_unavailable fast (%.0f ms)",
         ms);
    http_resp_free(&r);
    http(&r, keyed.url, "GET", "/v1/semaphores", NULL, h_nsa);
    t_ok(problem_is(&r, 503, "backend_unavailable"),
         "Redis down: GET /v1/semaphores -> 503 backend_unavailable");
    http_resp_free(&r);
}

/* ---- many names, with names taken and let go between pages -------------*/

#define MANY_THREADS 4

struct many_range {
    int from, to; /* [from, to) of many-NNNNN */
    int held;
};

static void *many_hold(void *arg)
{
    struct many_range *r = arg;

    for (int i = r->from; i < r->to; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%05d", i);
        r->held += hold(open_svc.url, NULL, name, NULL);
    }
    return NULL;
}

/* 10,000 held names (2,000 under a wrapper such as valgrind, to bound the
 * run), listed at limit 1000 while, between pages, 10 of them are released
 * and 10 new names are taken: every name held throughout is listed exactly
 * once, a name released or taken meanwhile at most once. */
static void test_many(void)
{
    const char *w = getenv("LOCKSERVICE_WRAPPER");
    int n = (w != NULL && *w) ? 2000 : 10000, held = 0, pages = 0;
    int *times = calloc((size_t)n, sizeof *times);
    int once = 0, missing = 0, twice = 0, churn_twice = 0, released = 0;
    int late = 0, late_twice = 0, late_seen[200] = {0}, bad_pages = 0;
    pthread_t th[MANY_THREADS];
    struct many_range rg[MANY_THREADS];
    char cursor[64] = "";

    if (times == NULL) {
        t_ok(false, "many names: out of memory");
        return;
    }
    for (int t = 0; t < MANY_THREADS; t++) {
        rg[t] = (struct many_range){t * n / MANY_THREADS,
                                    (t + 1) * n / MANY_THREADS, 0};
        pthread_create(&th[t], NULL, many_hold, &rg[t]);
    }
    for (int t = 0; t < MANY_THREADS; t++) {
        pthread_join(th[t], NULL);
        held += rg[t].held;
    }
    t_ok(held == n, "many names: %d of %d held", held, n);
    for (int guard = 0; guard < 1000; guard++) {
        struct http_resp r;
        char path[160];
        json_t *items, *next, *e;
        size_t k;

        snprintf(path, sizeof path, "/v1/locks?prefix=many-&limit=1000%s%s",
                 cursor[0] ? "&cursor=" : "", cursor);
        http(&r, open_svc.url, "GET", path, NULL, NULL);
        items = json_object_get(r.json, "locks");
        next = json_object_get(r.json, "next_cursor");
        pages++;
        if (r.status != 200 || !json_is_array(items) ||
            (!json_is_string(next) && !json_is_null(next))) {
            bad_pages++;
            http_resp_free(&r);
            break;
        }
        json_array_foreach(items, k, e)
        {
            const char *name = json_string_value(json_object_get(e, "name"));
            int idx;
            if (name != NULL && sscanf(name, "many-%d", &idx) == 1 &&
                idx >= 0 && idx < n)
                times[idx]++;
            else if (name != NULL && sscanf(name, "many-late-%d", &idx) == 1 &&
                     idx >= 0 && idx < 200)
                late_seen[idx]++;
        }
        if (json_is_null(next)) {
            http_resp_free(&r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        http_resp_free(&r);
        /* Between pages: 10 names let go (the last ones, by force), 10
         * new ones taken. */
        for (int j = 0; j < 10 && released < 200; j++, released++) {
            char p2[64];
            snprintf(p2, sizeof p2, "/v1/locks/many-%05d", n - 1 - released);
            http(&r, open_svc.url, "DELETE", p2, NULL, NULL);
            http_resp_free(&r);
        }
        for (int j = 0; j < 10 && late < 200; j++, late++) {
            char name[32];
            snprintf(name, sizeof name, "many-late-%d", late);
            hold(open_svc.url, NULL, name, NULL);
        }
    }
    for (int i = 0; i < n; i++) {
        bool churned = i >= n - released;
        if (churned)
            churn_twice += times[i] > 1;
        else {
            once += times[i] == 1;
            missing += times[i] == 0;
            twice += times[i] > 1;
        }
    }
    for (int i = 0; i < late; i++)
        late_twice += late_seen[i] > 1;
    t_ok(bad_pages == 0 && once == n - released && missing == 0 && twice == 0,
         "many names: %d pages; each of the %d names held throughout listed "
         "once (%d once, %d missing, %d twice)",
         pages, n - released, once, missing, twice);
    t_ok(churn_twice == 0 && late_twice == 0,
         "many names: the %d released and %d taken between pages listed at "
         "most once (%d, %d twice)",
         released, late, churn_twice, late_twice);
    free(times);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/lockservice-listing-XXXXXX",
             t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir)) {
        t_ok(false, "mkdtemp");
        return t_done();
    }
    snprintf(keyfile, sizeof keyfile, "%s/api.keys", tmpdir);
    write_file(keyfile, K_ADMIN " name=ops role=admin\n" K_NSA
                                " namespace=a name=tenant-a\n" K_NSB
                                " namespace=b name=tenant-b\n" K_READA
                                " namespace=a role=read name=dash-a\n");
    if (redis_start(&redis, NULL) != 0) {
        t_ok(false, "redis-server starts");
        return t_done();
    }
    const char *keyed_args[] = {"--api-keys-file", keyfile, NULL};
    if (svc_start(&open_svc, &redis, NULL) != 0 ||
        svc_start(&keyed, &redis, keyed_args) != 0) {
        t_ok(false, "both instances start");
        svc_kill(&open_svc);
        redis_stop(&redis);
        return t_done();
    }

    test_empty();
    test_pages();
    test_queued();
    test_shared_only();
    test_semaphores();
    test_namespaces();
    test_bad_input();
    test_many();
    test_redis_down();

    svc_stop(&open_svc);
    svc_stop(&keyed);
    redis_stop(&redis);
    unlink(keyfile);
    rmdir(tmpdir);
    return t_done();
}
