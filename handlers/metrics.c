/* metrics.c -- GET /metrics in the Prometheus text format. */
#include "handlers.h"

#include "metrics.h"

#include <stdlib.h>

void handle_metrics(struct request *req)
{
    size_t len;
    char *text = metrics_render(&len);

    if (text == NULL) {
        reply_problem(req, PROBLEM_INTERNAL_ERROR, "out of memory");
        return;
    }
    reply_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
              true);
    free(text);
}
