/* cmd_check.c -- `lockctl check NAME`: ask whether the lease whose token
 * is in LOCK_TOKEN (or --token-file) still holds the lock, and print the
 * lock's status when it does (exit 66 when it does not). One request. */
#include "lockctl.h"

#define CHECK_TIMEOUT_MS 10000L

static int check_exec(struct lockctl *ctl)
{
    char path[256], what[192], token[33];
    struct ls_result res;

    if (lockctl_token(ctl, token) != 0)
        return LOCKCTL_USAGE;
    json_t *body = json_pack("{s:s}", "token", token);
    lockctl_path(ctl, path, sizeof path, "check");
    ls_request(&ctl->client, "POST", path, body, CHECK_TIMEOUT_MS, &res);
    json_decref(body);
    snprintf(what, sizeof what, "check '%s'", ctl->args.name);
    int rc = res.kind == LS_OK ? lockctl_print_json(res.json)
                               : lockctl_fail(what, &res);
    ls_result_clear(&res);
    return rc;
}

const struct lockctl_cmd cmd_check_entry = {
    .name = "check",
    .synopsis = "NAME [--token-file PATH]",
    .summary = "check that the lease in LOCK_TOKEN still holds the lock and "
               "print its status (exit 66 when it does not)",
    .options = OPT_TOKEN_FILE,
    .takes_command = false,
    .exec = check_exec,
};
