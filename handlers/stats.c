/* stats.c -- GET /v1/stats/hot: the names this instance saw most contended
 * over the last minute (service/stats/hot.h). A key sees the names it can
 * use, as it knows them (as the listing shows them). */
#include "handlers.h"

#include "request.h"
#include "stats/hot.h"

#include <string.h>

void handle_stats_hot(struct request *req)
{
    static const char *const params[] = {"limit", NULL};
    static const char *const kinds[] = {"lock", "semaphore"};
    struct hot_entry top[HOT_LIMIT_MAX];
    struct field_problem prob;
    char prefix[NAMESPACE_MAX + 2] = "";
    int64_t limit;
    size_t n, skip;
    json_t *list, *body;

    if (request_query_known(req, params, &prob) < 0 ||
        query_int(request_query(req, "limit"), "limit", 10, 1, HOT_LIMIT_MAX,
                  &limit, &prob) < 0) {
        reply_field_problem(req, &prob);
        return;
    }
    if (req->key.ns[0] != '\0')
        snprintf(prefix, sizeof prefix, "%s/", req->key.ns);
    skip = strlen(prefix);
    n = hot_top(prefix, top, (size_t)limit);
    list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++)
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "kind",
                            kinds[top[i].kind], "name", top[i].name + skip,
                            "waits", (json_int_t)top[i].waits, "waits_error",
                            (json_int_t)top[i].error, "wait_ms_total",
                            (json_int_t)(top[i].wait_ns / 1000000), "grants",
                            (json_int_t)top[i].grants));
    body = json_pack("{s:i, s:o*}", "window_s", HOT_WINDOW_S, "names", list);
    reply_json(req, 200, body);
}
