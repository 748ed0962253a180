/* oversell-demo.c -- drives concurrent buyers at the inventory demo of a
 * running lockservice (started with --demo) and prints one table row per
 * scenario: unsafe, locked, locked + pauses, fenced + pauses.
 *
 * Each scenario resets its own SKU with PUT, fires --buyers purchases with at
 * most --concurrency in flight (libcurl multi interface, one thread), reads
 * the final state with GET and checks the books: the orders the server
 * counted must equal the 201s the buyers received, and where no write was
 * lost, orders + remaining stock must equal the initial stock.
 *
 * Exit status: 0 when unsafe oversold and locked and fenced + pauses did not;
 * 1 when that pattern did not appear or the books do not add up; 2 on a usage
 * error, an unreachable service or a service without the demo. */
#include "inventory_store.h"
#include "request.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Buyers send no wait_ms: the server lets them wait its --max-wait-ms
 * (default 60 s, whatever it is set to). The client waits that long plus
 * the work; a server set higher may need a longer client timeout. */
#define WAIT_MS 60000
#define SAFE_TTL_MS 30000 /* lease of the scenarios without pauses */

struct options {
    const char *url;
    const char *sku_prefix;
    const char *api_key;
    long stock;
    long buyers;
    long concurrency;
    long ttl_ms;
    long pause_ms;
    long pause_every;
    long work_ms;
};

struct scenario {
    const char *label;
    const char *slug; /* SKU suffix */
    const char *mode; /* "unsafe" | "locked" | "fenced" */
    bool pauses;
    bool may_lose_writes; /* no protection against a stale writer */
};

static const struct scenario scenarios[] = {
    {"unsafe", "unsafe", "unsafe", false, true},
    {"locked", "locked", "locked", false, false},
    {"locked + pauses", "locked-pauses", "locked", true, true},
    {"fenced + pauses", "fenced-pauses", "fenced", true, false},
};
#define SCENARIO_COUNT (sizeof(scenarios) / sizeof(scenarios[0]))

/* What one scenario produced: the server's final state and the buyers'
 * tally of responses. */
struct outcome {
    long long initial_stock, stock, orders, oversold;
    long created;      /* 201 */
    long sold_out;     /* 409 sold_out */
    long stale_fence;  /* 409 stale_fence: the "rejected" column */
    long lock_timeout; /* 409 lock_held: the wait ran out */
    long failed;       /* anything else, transport errors included */
    char first_failure[256];
    double seconds;
};

struct buffer {
    char *data;
    size_t len;
};

/* One in-flight purchase: an easy handle reused across buyers so that its
 * connection stays alive, the body it sends and the response it collects. */
struct slot {
    CURL *easy;
    struct buffer resp;
    char body[256];
    bool busy;
};

static const char *program = "oversell-demo";

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: oversell-demo [options]\n"
        "\n"
        "Shows the overselling race against a lockservice started with "
        "--demo,\n"
        "and its cure. Runs four scenarios, each on a fresh SKU, and prints "
        "one\n"
        "row each:\n"
        "  unsafe           read stock, pay, write stock - 1: no lock at all\n"
        "  locked           the same steps under the lock inventory:{sku}\n"
        "  locked + pauses  some buyers stall between their read and their\n"
        "                   write (a GC pause) for longer than their lease;\n"
        "                   the lease lapses, the next buyers take the lock\n"
        "                   and sell, then the stalled one writes its stale\n"
        "                   stock back\n"
        "  fenced + pauses  the same pauses, but the store refuses a read or\n"
        "                   write whose fence is older than the newest fence\n"
        "                   that has touched the SKU (409 stale_fence)\n"
        "\n"
        "options:\n"
        "  --url URL          service base URL (default "
        "http://127.0.0.1:8080)\n"
        "  --stock N          units per SKU at the start (default 10)\n"
        "  --buyers N         purchases per scenario (default 200)\n"
        "  --concurrency N    purchases in flight at once (default 50)\n"
        "  --work-ms N        the payment call between read and write\n"
        "                     (default 5)\n"
        "  --ttl-ms N         lease of the pause scenarios (default 100)\n"
        "  --pause-ms N       stall of a pausing buyer (default 300); keep it\n"
        "                     well above --ttl-ms: the defaults leave 200 ms\n"
        "                     after the lease lapses for other buyers to sell\n"
        "                     before the stale write lands, which makes the\n"
        "                     locked + pauses row oversell run after run\n"
        "  --pause-every K    every K-th buyer pauses (default 4); the others\n"
        "                     keep buying while the paused one's lease "
        "lapses,\n"
        "                     which is what lets a stale writer collide with "
        "a\n"
        "                     live one. Fewer pausers make a faster run: each\n"
        "                     holds the lock for a whole --ttl-ms\n"
        "  --sku-prefix P     SKUs are P-unsafe, P-locked, ... (default "
        "oversell-demo)\n"
        "  --api-key KEY      Bearer key, when the service requires one\n"
        "                     (default: $LOCKSERVICE_API_KEY)\n"
        "  --help             this text\n"
        "\n"
        "The scenarios without pauses use a %d ms lease, so a slow machine\n"
        "cannot make them fail. Exit status: 0 when unsafe oversold and the\n"
        "locked and fenced rows did not; 1 when that pattern did not appear "
        "or\n"
        "the books do not add up; 2 on a usage or connection error.\n",
        SAFE_TTL_MS);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", program);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Parses a decimal integer in [min, max] into *out. Returns 0 or -1. */
static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Fills *o from argv. Returns 0 to run, 1 after --help, -1 on a usage error
 * (already reported). */
static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){
        .url = "http://127.0.0.1:8080",
        .sku_prefix = "oversell-demo",
        .api_key = getenv("LOCKSERVICE_API_KEY"),
        .stock = 10,
        .buyers = 200,
        .concurrency = 50,
        .ttl_ms = 100,
        .pause_ms = 300,
        .pause_every = 4,
        .work_ms = 5,
    };
    const struct {
        const char *flag;
        long min, max;
        long *dst;
    } ints[] = {
        {"--stock", 1, 1000000, &o->stock},
        {"--buyers", 1, 1000000, &o->buyers},
        {"--concurrency", 1, 1000, &o->concurrency},
        {"--work-ms", 0, 10000, &o->work_ms},
        {"--ttl-ms", 1, 3600000, &o->ttl_ms},
        {"--pause-ms", 0, 60000, &o->pause_ms},
        {"--pause-every", 1, 1000000, &o->pause_every},
    };

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool matched = false;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (val == NULL) {
            fail("%s needs a value (see --help)", arg);
            return -1;
        }
        for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
            if (strcmp(arg, ints[k].flag) != 0)
                continue;
            if (parse_long(val, ints[k].min, ints[k].max, ints[k].dst) != 0) {
                fail("%s: '%s' is not an integer in %ld..%ld", arg, val,
                     ints[k].min, ints[k].max);
                return -1;
            }
            matched = true;
        }
        if (strcmp(arg, "--url") == 0) {
            o->url = val;
            matched = true;
        } else if (strcmp(arg, "--sku-prefix") == 0) {
            o->sku_prefix = val;
            matched = true;
        } else if (strcmp(arg, "--api-key") == 0) {
            o->api_key = val;
            matched = true;
        }
        if (!matched) {
            fail("unknown option '%s' (see --help)", arg);
            return -1;
        }
        i++;
    }

    size_t plen = strlen(o->sku_prefix);
    /* the longest suffix is "-fenced-pauses" */
    if (plen == 0 || plen > SKU_MAX - strlen("-fenced-pauses")) {
        fail("--sku-prefix: must be 1..%zu characters",
             SKU_MAX - strlen("-fenced-pauses"));
        return -1;
    }
    /* A SKU is a lock name the service accepts (service/request.c). */
    if (!lock_name_valid(o->sku_prefix, plen)) {
        fail("--sku-prefix: only A-Z a-z 0-9 . _ : - are allowed");
        return -1;
    }
    if (strncmp(o->url, "http://", 7) != 0 &&
        strncmp(o->url, "https://", 8) != 0) {
        fail("--url: '%s' must start with http:// or https://", o->url);
        return -1;
    }
    if (o->pause_ms <= o->ttl_ms)
        fprintf(stderr,
                "%s: note: --pause-ms %ld does not exceed --ttl-ms %ld, so no "
                "lease will lapse during a pause\n",
                program, o->pause_ms, o->ttl_ms);
    return 0;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct buffer *b = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);

    if (grown == NULL)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Headers every request carries. Returns a list the caller frees with
 * curl_slist_free_all, or NULL when out of memory. */
static struct curl_slist *request_headers(const struct options *o)
{
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: "
                                                   "application/json");
    if (h != NULL && o->api_key != NULL && o->api_key[0] != '\0') {
        char auth[300];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->api_key);
        struct curl_slist *more = curl_slist_append(h, auth);
        if (more == NULL) {
            curl_slist_free_all(h);
            return NULL;
        }
        h = more;
    }
    return h;
}

/* The problem+json "code" of a response body, or "" when it has none. The
 * result points into *root, which the caller json_decref()s. */
static const char *problem_code(const struct buffer *b, json_t **root)
{
    const char *code;

    *root = b->data ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    code = json_string_value(json_object_get(*root, "code"));
    return code ? code : "";
}

/* One blocking request: method on url + path with an optional JSON body.
 * Returns the HTTP status and the parsed body in *json (caller decrefs; NULL
 * when the body is not JSON), or 0 with the transport error in err. */
static long request(const struct options *o, const char *method,
                    const char *path, const char *body, json_t **json,
                    char *err, size_t errlen)
{
    char url[1024];
    char curl_err[CURL_ERROR_SIZE] = "";
    struct buffer resp = {NULL, 0};
    struct curl_slist *headers = request_headers(o);
    CURL *easy = curl_easy_init();
    long status = 0;

    *json = NULL;
    if (easy == NULL || headers == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    snprintf(url, sizeof(url), "%s%s", o->url, path);
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
    if (body != NULL)
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(easy);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s",
                 curl_err[0] ? curl_err : curl_easy_strerror(rc));
        goto out;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (resp.data != NULL)
        *json = json_loadb(resp.data, resp.len, 0, NULL);
out:
    free(resp.data);
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    return status;
}

/* Explains a response that stops the demo (the demo is off, a key is
 * missing, the SKU was refused, Redis is down) in one line. */
static void report_unexpected(const struct options *o, const char *what,
                              long status, json_t *json)
{
    const char *code = json_string_value(json_object_get(json, "code"));
    const char *detail = json_string_value(json_object_get(json, "detail"));

    if (status == 404 && code != NULL && strcmp(code, "not_found") == 0) {
        fail("the service at %s has no demo routes: start it with --demo "
             "(or LOCKSERVICE_DEMO=1)",
             o->url);
        return;
    }
    if (status == 401) {
        fail("the service at %s wants an API key: pass --api-key or set "
             "LOCKSERVICE_API_KEY",
             o->url);
        return;
    }
    fail("%s: HTTP %ld %s%s%s", what, status, code ? code : "(no code)",
         detail ? ": " : "", detail ? detail : "");
}

/* Checks that the service answers at all before any scenario runs.
 * Returns 0, or -1 after explaining what is wrong. */
static int check_service(const struct options *o)
{
    char err[CURL_ERROR_SIZE + 64];
    json_t *json;
    long status = request(o, "GET", "/healthz", NULL, &json, err, sizeof(err));

    json_decref(json);
    if (status == 0) {
        fail("cannot reach the lock service at %s: %s\n"
             "  start it first: lockservice --demo --listen HOST:PORT "
             "--redis URL",
             o->url, err);
        return -1;
    }
    if (status != 200) {
        fail("%s/healthz answered HTTP %ld: is this a lockservice?", o->url,
             status);
        return -1;
    }
    return 0;
}

/* PUTs the SKU with stock, or GETs it (body NULL) into *out. Returns 0, or
 * -1 after explaining what is wrong. */
static int inventory_call(const struct options *o, const char *sku,
                          const char *body, struct outcome *out)
{
    char path[128], err[CURL_ERROR_SIZE + 64], what[160];
    json_t *json;
    long status;
    int rc = -1;

    snprintf(path, sizeof(path), "/demo/inventory/%s", sku);
    snprintf(what, sizeof(what), "%s %s", body ? "PUT" : "GET", path);
    status =
        request(o, body ? "PUT" : "GET", path, body, &json, err, sizeof(err));
    if (status == 0) {
        fail("%s: %s", what, err);
        goto out;
    }
    if (status != 200 || !json_is_object(json)) {
        report_unexpected(o, what, status, json);
        goto out;
    }
    json_t *init = json_object_get(json, "initial_stock");
    json_t *stock = json_object_get(json, "stock");
    json_t *orders = json_object_get(json, "orders");
    json_t *oversold = json_object_get(json, "oversold");
    if (!json_is_integer(init) || !json_is_integer(stock) ||
        !json_is_integer(orders) || !json_is_integer(oversold)) {
        fail("%s: the inventory object lacks initial_stock, stock, orders "
             "or oversold",
             what);
        goto out;
    }
    out->initial_stock = json_integer_value(init);
    out->stock = json_integer_value(stock);
    out->orders = json_integer_value(orders);
    out->oversold = json_integer_value(oversold);
    rc = 0;
out:
    json_decref(json);
    return rc;
}

/* Sorts one finished purchase into the tally of *out. */
static void tally(struct outcome *out, CURL *easy, CURLcode result,
                  const struct buffer *resp)
{
    long status = 0;
    json_t *root = NULL;
    const char *code;

    if (result != CURLE_OK) {
        if (out->failed++ == 0)
            snprintf(out->first_failure, sizeof(out->first_failure), "%s",
                     curl_easy_strerror(result));
        return;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    code = problem_code(resp, &root);
    if (status == 201)
        out->created++;
    else if (status == 409 && strcmp(code, "sold_out") == 0)
        out->sold_out++;
    else if (status == 409 && strcmp(code, "stale_fence") == 0)
        out->stale_fence++;
    else if (status == 409 && strcmp(code, "lock_held") == 0)
        out->lock_timeout++;
    else if (out->failed++ == 0) {
        const char *detail = json_string_value(json_object_get(root, "detail"));
        snprintf(out->first_failure, sizeof(out->first_failure),
                 "HTTP %ld %s%s%s", status, code[0] ? code : "(no code)",
                 detail ? ": " : "", detail ? detail : "");
    }
    json_decref(root);
}

static void progress(const char *label, long done, long total, double start,
                     bool final)
{
    if (final) {
        fprintf(stderr, "\r%-70s\r", "");
        return;
    }
    fprintf(stderr, "\r  %-16s %6ld/%ld buyers done  %5.1f s", label, done,
            total, now_seconds() - start);
}

/* Prepares slot s to send buyer number buyer of scenario sc. */
static void slot_load(struct slot *s, const struct options *o,
                      const struct scenario *sc, long buyer)
{
    bool pauses = sc->pauses && buyer % o->pause_every == 0;

    snprintf(s->body, sizeof(s->body),
             "{\"mode\":\"%s\",\"quantity\":1,\"work_ms\":%ld,"
             "\"pause_ms\":%ld,\"ttl_ms\":%ld}",
             sc->mode, o->work_ms, pauses ? o->pause_ms : 0L,
             sc->pauses ? o->ttl_ms : (long)SAFE_TTL_MS);
    free(s->resp.data);
    s->resp = (struct buffer){NULL, 0};
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    s->busy = true;
}

/* Fires all buyers of scenario sc at SKU sku, at most --concurrency at a
 * time, and tallies their answers into *out. Returns 0, or -1 when the
 * multi interface itself failed. */
static int fire_buyers(const struct options *o, const struct scenario *sc,
                       const char *sku, struct outcome *out)
{
    char url[1024];
    size_t nslots =
        (size_t)(o->concurrency < o->buyers ? o->concurrency : o->buyers);
    struct slot *slots = calloc(nslots, sizeof(*slots));
    struct curl_slist *headers = request_headers(o);
    CURLM *multi = curl_multi_init();
    bool tty = isatty(STDERR_FILENO);
    long next = 0, done = 0;
    double start = now_seconds(), last_progress = 0;
    int rc = -1;

    if (slots == NULL || headers == NULL || multi == NULL) {
        fail("out of memory");
        goto out;
    }
    snprintf(url, sizeof(url), "%s/demo/inventory/%s/purchase", o->url, sku);
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)nslots);
    for (size_t i = 0; i < nslots; i++) {
        CURL *e = curl_easy_init();
        if (e == NULL) {
            fail("out of memory");
            goto out;
        }
        slots[i].easy = e;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &slots[i].resp);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
        /* a buyer may wait for the lock, pause and work; never hang */
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                         (long)WAIT_MS + o->pause_ms + o->work_ms + 15000L);
    }

    while (done < o->buyers) {
        for (size_t i = 0; i < nslots && next < o->buyers; i++) {
            if (slots[i].busy)
                continue;
            slot_load(&slots[i], o, sc, next++);
            if (curl_multi_add_handle(multi, slots[i].easy) != CURLM_OK) {
                fail("curl_multi_add_handle failed");
                goto out;
            }
        }
        int running;
        CURLMcode mc = curl_multi_perform(multi, &running);
        if (mc != CURLM_OK) {
            fail("curl_multi_perform: %s", curl_multi_strerror(mc));
            goto out;
        }
        CURLMsg *msg;
        int queued;
        while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
            struct slot *s;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &s);
            tally(out, s->easy, msg->data.result, &s->resp);
            curl_multi_remove_handle(multi, s->easy);
            s->busy = false;
            done++;
        }
        if (done < o->buyers && running > 0) {
            mc = curl_multi_poll(multi, NULL, 0, 100, NULL);
            if (mc != CURLM_OK) {
                fail("curl_multi_poll: %s", curl_multi_strerror(mc));
                goto out;
            }
        }
        if (tty && now_seconds() - last_progress > 0.1) {
            progress(sc->label, done, o->buyers, start, false);
            last_progress = now_seconds();
        }
    }
    rc = 0;
out:
    out->seconds = now_seconds() - start;
    if (tty)
        progress(sc->label, done, o->buyers, start, true);
    for (size_t i = 0; slots != NULL && i < nslots; i++) {
        if (slots[i].easy != NULL) {
            if (slots[i].busy)
                curl_multi_remove_handle(multi, slots[i].easy);
            curl_easy_cleanup(slots[i].easy);
        }
        free(slots[i].resp.data);
    }
    free(slots);
    curl_multi_cleanup(multi);
    curl_slist_free_all(headers);
    return rc;
}

/* Runs scenario sc: reset, buyers, final state. Returns 0 or -1. */
static int run_scenario(const struct options *o, const struct scenario *sc,
                        struct outcome *out)
{
    char sku[SKU_MAX + 1], body[64];

    memset(out, 0, sizeof(*out));
    snprintf(sku, sizeof(sku), "%s-%s", o->sku_prefix, sc->slug);
    snprintf(body, sizeof(body), "{\"stock\":%ld}", o->stock);
    if (inventory_call(o, sku, body, out) != 0)
        return -1;
    if (fire_buyers(o, sc, sku, out) != 0)
        return -1;
    return inventory_call(o, sku, NULL, out);
}

/* Checks one row's books and prints what does not add up. Returns the
 * number of problems found. */
static int audit(const struct options *o, const struct scenario *sc,
                 const struct outcome *r)
{
    int problems = 0;
    long long expect_oversold =
        r->orders > r->initial_stock ? r->orders - r->initial_stock : 0;

    if (r->initial_stock != o->stock) {
        printf("%s: initial_stock is %lld, but the SKU was reset to %ld\n",
               sc->label, r->initial_stock, o->stock);
        problems++;
    }
    if (r->orders != r->created) {
        printf("%s: the service counted %lld orders, but buyers received "
               "%ld confirmations\n",
               sc->label, r->orders, r->created);
        problems++;
    }
    if (r->oversold != expect_oversold) {
        printf("%s: oversold is %lld, but orders - initial stock is %lld\n",
               sc->label, r->oversold, expect_oversold);
        problems++;
    }
    if (r->stock < 0) {
        printf("%s: remaining stock is negative (%lld)\n", sc->label, r->stock);
        problems++;
    }
    /* Where no write can be lost, every order took one unit off the stock. */
    if (!sc->may_lose_writes && r->orders + r->stock != r->initial_stock) {
        printf("%s: %lld orders + %lld left != %lld initial stock\n", sc->label,
               r->orders, r->stock, r->initial_stock);
        problems++;
    }
    if (r->created + r->sold_out + r->stale_fence + r->lock_timeout +
            r->failed !=
        o->buyers) {
        printf("%s: %ld buyers sent, but only %ld answers tallied\n", sc->label,
               o->buyers,
               r->created + r->sold_out + r->stale_fence + r->lock_timeout +
                   r->failed);
        problems++;
    }
    if (r->failed > 0) {
        printf("%s: %ld purchases failed; the first: %s\n", sc->label,
               r->failed, r->first_failure);
        problems++;
    }
    if (r->lock_timeout > 0) {
        printf("%s: %ld buyers waited for the lock as long as the server "
               "lets them (--max-wait-ms)\n",
               sc->label, r->lock_timeout);
        problems++;
    }
    return problems;
}

static void print_table(const struct options *o, const struct outcome *rows)
{
    printf("%-16s %7s %7s %7s %9s %9s %8s\n", "scenario", "stock", "buyers",
           "orders", "oversold", "rejected", "seconds");
    for (size_t i = 0; i < SCENARIO_COUNT; i++) {
        const struct outcome *r = &rows[i];
        printf("%-16s %7lld %7ld %7lld %9lld %9ld %8.2f\n", scenarios[i].label,
               r->initial_stock, o->buyers, r->orders, r->oversold,
               r->stale_fence, r->seconds);
    }
    fflush(stdout);
}

/* Says in plain words what the rows show, and whether that is the expected
 * pattern. Returns true when it is. */
static bool verdict(const struct options *o, const struct outcome *rows)
{
    const struct outcome *unsafe = &rows[0], *locked = &rows[1],
                         *locked_p = &rows[2], *fenced_p = &rows[3];
    bool ok = true;

    printf("\n");
    if (unsafe->oversold > 0) {
        printf("unsafe: %lld orders for a stock of %lld; buyers read the "
               "same stock and each wrote it minus one.\n",
               unsafe->orders, unsafe->initial_stock);
    } else {
        printf("The race did not appear: unsafe sold no more than its "
               "stock this time. Raise --buyers, --concurrency or "
               "--work-ms and run again.\n");
        ok = false;
    }
    if (locked->oversold == 0) {
        printf("locked: the lock serialised read and write; nothing "
               "oversold.\n");
    } else {
        printf("FAIL locked: oversold %lld without any pause.\n",
               locked->oversold);
        ok = false;
    }
    if (locked_p->oversold > 0)
        printf("locked + pauses: leases of %ld ms ran out during %ld ms "
               "pauses and two buyers wrote; oversold %lld.\n",
               o->ttl_ms, o->pause_ms, locked_p->oversold);
    else
        printf("locked + pauses: the pauses did not cause an oversell this "
               "time (pause-ms %ld vs ttl-ms %ld).\n",
               o->pause_ms, o->ttl_ms);
    if (fenced_p->oversold == 0) {
        printf("fenced + pauses: the store refused %ld stale write(s) by their "
               "fence; nothing oversold.\n",
               fenced_p->stale_fence);
    } else {
        printf("FAIL fenced + pauses: oversold %lld despite fencing.\n",
               fenced_p->oversold);
        ok = false;
    }
    return ok;
}

int main(int argc, char **argv)
{
    struct options o;
    struct outcome rows[SCENARIO_COUNT];
    int problems = 0;
    int status = 2;

    switch (parse_args(argc, argv, &o)) {
    case 1:
        return 0;
    case -1:
        return 2;
    default:
        break;
    }
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fail("curl_global_init failed");
        return 2;
    }
    if (check_service(&o) != 0)
        goto out;
    for (size_t i = 0; i < SCENARIO_COUNT; i++) {
        if (run_scenario(&o, &scenarios[i], &rows[i]) != 0)
            goto out;
    }
    print_table(&o, rows);
    bool pattern = verdict(&o, rows);
    for (size_t i = 0; i < SCENARIO_COUNT; i++)
        problems += audit(&o, &scenarios[i], &rows[i]);
    status = pattern && problems == 0 ? 0 : 1;
out:
    curl_global_cleanup();
    return status;
}
