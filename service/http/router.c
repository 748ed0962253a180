/* router.c -- see router.h. */
#include "router.h"

#include <string.h>

/* Matches url against pattern, where "{name}" stands for one segment. */
static bool path_match(const char *pattern, const char *url, char *param,
                       size_t param_size, size_t *param_len)
{
    while (*pattern != '\0') {
        if (strncmp(pattern, "{name}", 6) == 0) {
            const char *end = strchr(url, '/');
            size_t n = end ? (size_t)(end - url) : strlen(url);
            size_t copy = n < param_size - 1 ? n : param_size - 1;
            memcpy(param, url, copy);
            param[copy] = '\0';
            *param_len = n;
            url += n;
            pattern += 6;
            continue;
        }
        if (*pattern++ != *url++)
            return false;
    }
    return *url == '\0';
}

static bool method_is(const struct route *r, const char *method)
{
    if (strcmp(r->method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0;
}

int router_match(const struct route *table, size_t count, const char *method,
                 const char *url, char *param, size_t param_size,
                 size_t *param_len, int *path_route)
{
    size_t i;

    *path_route = -1;
    *param_len = 0;
    param[0] = '\0';
    for (i = 0; i < count; i++) {
        const struct route *r = &table[i];
        if (!path_match(r->pattern, url, param, param_size, param_len))
            continue;
        if (*path_route < 0)
            *path_route = (int)i;
        if (method_is(r, method))
            return (int)i;
    }
    return -1;
}
