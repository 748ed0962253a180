/* pages.c -- the browser pages: GET /ui/ (the live view of locks, semaphores
 * and their queues; always served) and GET /demo/ (the overselling race;
 * only with --demo), each with its script and style sheet, embedded at
 * build time from web/ (tools/embed.sh).
 *
 * The files themselves are public, like /openapi.yaml: they hold no data.
 * What they show comes from the public API, which the scripts call with
 * the API key the user types (kept in the page's memory only). Every asset
 * is sent with a Content-Security-Policy that allows this origin alone and
 * no inline script or style, nosniff, and an entity tag the browser
 * revalidates (Cache-Control: no-cache; If-None-Match answers 304). */
#include "handlers.h"

#include "embedded.h"
#include "http/http.h"

#include <microhttpd.h>
#include <string.h>

/* One file of a page: the last path segment it is served at ("" for the
 * page itself, at the folder's slash), its media type and its bytes. */
struct page_asset {
    const char *file;
    const char *content_type;
    const char *data;
    const size_t *len;
    const char *etag;
};

#define ASSET(file, type, sym)                                                 \
    {                                                                          \
        file, type, embedded_##sym, &embedded_##sym##_len,                     \
            embedded_##sym##_etag                                              \
    }

static const struct page_asset ui_assets[] = {
    ASSET("", "text/html; charset=utf-8", ui_html),
    ASSET("ui.js", "text/javascript; charset=utf-8", ui_js),
    ASSET("ui.css", "text/css; charset=utf-8", ui_css),
    ASSET("common.js", "text/javascript; charset=utf-8", common_js),
    ASSET("common.css", "text/css; charset=utf-8", common_css),
};

static const struct page_asset demo_assets[] = {
    ASSET("", "text/html; charset=utf-8", demo_html),
    ASSET("demo.js", "text/javascript; charset=utf-8", demo_js),
    ASSET("demo.css", "text/css; charset=utf-8", demo_css),
    ASSET("common.js", "text/javascript; charset=utf-8", common_js),
    ASSET("common.css", "text/css; charset=utf-8", common_css),
};

/* The policy of every asset: scripts, styles, images and API calls from
 * this origin only; no inline code, no plugins, no framing, no <base>. */
#define PAGE_CSP                                                               \
    "default-src 'self'; script-src 'self'; style-src 'self'; "                \
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; "            \
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* True when the request's If-None-Match names etag (or is "*"). */
static bool etag_matches(struct request *req, const char *etag)
{
    const char *h = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                "If-None-Match");
    size_t n = strlen(etag);

    if (h == NULL)
        return false;
    if (strcmp(h, "*") == 0)
        return true;
    /* A list of tags, comma-separated, possibly weak (W/"..."). */
    for (const char *p = strstr(h, etag); p != NULL; p = strstr(p + 1, etag))
        if ((p == h || p[-1] == ' ' || p[-1] == ',' || p[-1] == '/') &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' '))
            return true;
    return false;
}

static void reply_asset(struct request *req, const struct page_asset *a)
{
    const struct reply_header headers[] = {
        {"Content-Security-Policy", PAGE_CSP},
        {"X-Content-Type-Options", "nosniff"},
        {"Referrer-Policy", "no-referrer"},
        {"Cache-Control", "no-cache"},
        {"ETag", a->etag},
    };
    size_t n = sizeof headers / sizeof headers[0];

    if (etag_matches(req, a->etag)) {
        reply_raw_headers(req, 304, NULL, "", 0, headers, n);
        return;
    }
    reply_raw_headers(req, 200, a->content_type, a->data, *a->len, headers, n);
}

/* Serves the asset named file of a page's table, or 404 not_found. */
static void serve(struct request *req, const struct page_asset *assets,
                  size_t count, const char *page, const char *file)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(assets[i].file, file) == 0) {
            reply_asset(req, &assets[i]);
            return;
        }
    }
    reply_problem(req, PROBLEM_NOT_FOUND, "%s has no file '%s'", page, file);
}

/* /ui and /demo: the page lives at the slash, where its relative links
 * resolve. */
static void redirect(struct request *req, const char *location)
{
    const struct reply_header headers[] = {{"Location", location}};

    reply_raw_headers(req, 301, NULL, "", 0, headers, 1);
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

void handle_ui_redirect(struct request *req)
{
    redirect(req, "/ui/");
}

void handle_ui_page(struct request *req)
{
    serve(req, ui_assets, COUNT(ui_assets), "/ui/", "");
}

void handle_ui_asset(struct request *req)
{
    serve(req, ui_assets, COUNT(ui_assets), "/ui/", req->param);
}

void handle_demo_redirect(struct request *req)
{
    redirect(req, "/demo/");
}

void handle_demo_page(struct request *req)
{
    serve(req, demo_assets, COUNT(demo_assets), "/demo/", "");
}

void handle_demo_asset(struct request *req)
{
    serve(req, demo_assets, COUNT(demo_assets), "/demo/", req->param);
}
