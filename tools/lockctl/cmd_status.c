/* cmd_status.c -- `lockctl status NAME`: the lock's state as the service
 * shows it (holder's owner label, fence, remaining TTL; never a token). */
#include "lockctl.h"

#define STATUS_TIMEOUT_MS 10000L

static int status_exec(struct lockctl *ctl)
{
    char path[256], what[192];
    struct ls_result res;

    lockctl_path(ctl, path, sizeof path, "");
    ls_request(&ctl->client, "GET", path, NULL, STATUS_TIMEOUT_MS, &res);
    snprintf(what, sizeof what, "status '%s'", ctl->args.name);
    int rc = res.kind == LS_OK ? lockctl_print_json(res.json)
                               : lockctl_fail(what, &res);
    ls_result_clear(&res);
    return rc;
}

const struct lockctl_cmd cmd_status_entry = {
    .name = "status",
    .synopsis = "NAME [--semaphore N]",
    .summary = "show the lock's state (holder, fence, TTL left; never a "
               "token)",
    .options = OPT_SEMAPHORE,
    .takes_command = false,
    .exec = status_exec,
};
