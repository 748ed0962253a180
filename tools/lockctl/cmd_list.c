/* cmd_list.c -- `lockctl list [--prefix P] [--limit N] [--semaphores]`:
 * every held or queued lock (or semaphore), one JSON line each as the
 * service lists it (its status without the queue; never a token),
 * following the listing's pages to the end. */
#include "lockctl.h"

#include <string.h>

#define LIST_TIMEOUT_MS 10000L
/* A listing that has not ended after this many pages is not followed
 * further (a service handing out cursors forever). */
#define LIST_PAGES_MAX 100000

/* The path of the page after cursor ("" for the first). */
static void page_path(const struct lockctl *ctl, const char *cursor, char *out,
                      size_t len)
{
    const struct lockctl_args *a = &ctl->args;
    int n = snprintf(out, len, "/v1/%s?prefix=%s",
                     a->semaphores ? "semaphores" : "locks",
                     a->prefix ? a->prefix : "");

    if (a->limit > 0 && n > 0 && (size_t)n < len)
        n += snprintf(out + n, len - (size_t)n, "&limit=%ld", a->limit);
    if (cursor[0] != '\0' && n > 0 && (size_t)n < len)
        snprintf(out + n, len - (size_t)n, "&cursor=%s", cursor);
}

/* Prints the page's entries and copies its next_cursor into cursor ("" at
 * the end). Returns 0, or -1 when the page has another shape. */
static int print_page(const struct lockctl *ctl, const json_t *page,
                      char *cursor, size_t len)
{
    const json_t *items =
        json_object_get(page, ctl->args.semaphores ? "semaphores" : "locks");
    const json_t *next = json_object_get(page, "next_cursor");
    const json_t *e;
    size_t i;

    if (!json_is_array(items) || !(json_is_null(next) || json_is_string(next)))
        return -1;
    if (json_is_string(next) &&
        (json_string_length(next) == 0 || json_string_length(next) >= len))
        return -1;
    json_array_foreach(items, i, e) lockctl_print_json(e);
    snprintf(cursor, len, "%s",
             json_is_string(next) ? json_string_value(next) : "");
    return 0;
}

static int list_exec(struct lockctl *ctl)
{
    char cursor[64] = "", path[512];
    const char *what = ctl->args.semaphores ? "list semaphores" : "list locks";

    for (int pages = 0; pages < LIST_PAGES_MAX; pages++) {
        struct ls_result res;
        int rc;
        page_path(ctl, cursor, path, sizeof path);
        ls_request(&ctl->client, "GET", path, NULL, LIST_TIMEOUT_MS, &res);
        if (res.kind != LS_OK) {
            rc = lockctl_fail(what, &res);
            ls_result_clear(&res);
            return rc;
        }
        rc = print_page(ctl, res.json, cursor, sizeof cursor);
        ls_result_clear(&res);
        if (rc < 0) {
            lockctl_warn("%s: unexpected answer: not a listing page", what);
            return LOCKCTL_UNAVAILABLE;
        }
        if (cursor[0] == '\0')
            return LOCKCTL_OK;
    }
    lockctl_warn("%s: no end after %d pages", what, LIST_PAGES_MAX);
    return LOCKCTL_UNAVAILABLE;
}

const struct lockctl_cmd cmd_list_entry = {
    .name = "list",
    .synopsis = "[--prefix P] [--limit N] [--semaphores]",
    .summary = "print every held or queued lock (with --semaphores: "
               "semaphore), one JSON line each as status shows it without "
               "its queue; never a token",
    .options = OPT_PREFIX | OPT_LIMIT | OPT_SEMAPHORES,
    .takes_command = false,
    .takes_no_name = true,
    .exec = list_exec,
};
