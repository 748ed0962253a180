/* cmd_renew.c -- `lockctl renew NAME`: reset the TTL of the lease whose
 * token is in LOCK_TOKEN (or --token-file) and print it. */
#include "lockctl.h"

#define RENEW_TIMEOUT_MS 10000L

static int renew_exec(struct lockctl *ctl)
{
    const struct lockctl_args *a = &ctl->args;
    char path[256], what[192], token[33];
    struct ls_result res;

    if (lockctl_token(ctl, token) != 0)
        return LOCKCTL_USAGE;
    json_t *body = json_pack("{s:s}", "token", token);
    if (a->ttl_ms >= 0)
        json_object_set_new(body, "ttl_ms", json_integer(a->ttl_ms));
    lockctl_path(ctl, path, sizeof path, "renew");
    ls_request(&ctl->client, "POST", path, body, RENEW_TIMEOUT_MS, &res);
    json_decref(body);
    snprintf(what, sizeof what, "renew '%s'", a->name);
    int rc = res.kind == LS_OK ? lockctl_print_json(res.json)
                               : lockctl_fail(what, &res);
    ls_result_clear(&res);
    return rc;
}

const struct lockctl_cmd cmd_renew_entry = {
    .name = "renew",
    .synopsis = "NAME [--ttl D] [--token-file PATH] [--semaphore N]",
    .summary = "renew the lease in LOCK_TOKEN and print it",
    .options = OPT_TTL | OPT_TOKEN_FILE | OPT_SEMAPHORE,
    .takes_command = false,
    .exec = renew_exec,
};
