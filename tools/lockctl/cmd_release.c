/* cmd_release.c -- `lockctl release NAME`: drop one hold of the lease whose
 * token is in LOCK_TOKEN (or --token-file). One request, never retried: a
 * release whose answer was lost may have counted. With --force, end
 * whatever lease holds it (DELETE; an admin key when the service has API
 * keys). */
#include "lockctl.h"

#define RELEASE_TIMEOUT_MS 10000L

static int release_exec(struct lockctl *ctl)
{
    const struct lockctl_args *a = &ctl->args;
    char path[256], what[192], token[33];
    struct ls_result res;

    if (a->force) {
        lockctl_path(ctl, path, sizeof path, "");
        ls_request(&ctl->client, "DELETE", path, NULL, RELEASE_TIMEOUT_MS,
                   &res);
    } else {
        if (lockctl_token(ctl, token) != 0)
            return LOCKCTL_USAGE;
        json_t *body = json_pack("{s:s}", "token", token);
        lockctl_path(ctl, path, sizeof path, "release");
        ls_request(&ctl->client, "POST", path, body, RELEASE_TIMEOUT_MS, &res);
        json_decref(body);
    }
    snprintf(what, sizeof what, "%s '%s'",
             a->force ? "force release" : "release", a->name);
    int rc = res.kind == LS_OK ? lockctl_print_json(res.json)
                               : lockctl_fail(what, &res);
    ls_result_clear(&res);
    return rc;
}

const struct lockctl_cmd cmd_release_entry = {
    .name = "release",
    .synopsis = "NAME [--token-file PATH | --force] [--semaphore N]",
    .summary = "release one hold of the lease in LOCK_TOKEN (--force: end "
               "whatever lease holds it; an admin key when the service has "
               "API keys)",
    .options = OPT_TOKEN_FILE | OPT_SEMAPHORE | OPT_FORCE,
    .takes_command = false,
    .exec = release_exec,
};
