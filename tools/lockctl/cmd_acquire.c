/* cmd_acquire.c -- `lockctl acquire NAME`: take the lock (waiting on the
 * server up to --wait) and print the lease, as JSON or as shell lines. */
#include "lockctl.h"

#include <inttypes.h>

/* How much longer than wait_ms the answer may take (Redis timeouts, a
 * proxy). */
#define ANSWER_SLACK_MS 10000L

json_t *acquire_body(const struct lockctl *ctl, long ttl_ms, bool with_pid)
{
    char owner[160];
    lockctl_owner(ctl, with_pid, owner, sizeof owner);
    json_t *body =
        json_pack("{s:I, s:I, s:s}", "ttl_ms", (json_int_t)ttl_ms, "wait_ms",
                  (json_int_t)(ctl->args.wait_ms < 0 ? 0 : ctl->args.wait_ms),
                  "owner", owner);
    return body;
}

long acquire_timeout_ms(const struct lockctl *ctl)
{
    return (ctl->args.wait_ms < 0 ? 0 : ctl->args.wait_ms) + ANSWER_SLACK_MS;
}

/* Prints the lease as lines for eval: NAME=value, then one export line. */
static int print_env(const json_t *lease)
{
    printf("LOCK_NAME=%s\n", json_string_value(json_object_get(lease, "name")));
    printf("LOCK_TOKEN=%s\n",
           json_string_value(json_object_get(lease, "token")));
    printf("LOCK_FENCE=%" JSON_INTEGER_FORMAT "\n",
           json_integer_value(json_object_get(lease, "fence")));
    printf("LOCK_TTL_MS=%" JSON_INTEGER_FORMAT "\n",
           json_integer_value(json_object_get(lease, "ttl_ms")));
    printf("export LOCK_NAME LOCK_TOKEN LOCK_FENCE LOCK_TTL_MS\n");
    return fflush(stdout) == 0 ? LOCKCTL_OK : LOCKCTL_USAGE;
}

static int acquire_exec(struct lockctl *ctl)
{
    const struct lockctl_args *a = &ctl->args;
    char path[256], what[192], token[33];
    struct ls_result res;

    json_t *body = acquire_body(
        ctl, a->ttl_ms < 0 ? LOCKCTL_DEFAULT_TTL_MS : a->ttl_ms, false);
    if (a->reenter) {
        if (lockctl_token(ctl, token) != 0) {
            json_decref(body);
            return LOCKCTL_USAGE;
        }
        json_object_set_new(body, "token", json_string(token));
    }
    lockctl_path(path, sizeof path, a->name, "acquire");
    ls_request(&ctl->client, "POST", path, body, acquire_timeout_ms(ctl), &res);
    json_decref(body);
    snprintf(what, sizeof what, "acquire '%s'", a->name);
    int rc;
    if (res.kind != LS_OK ||
        !json_is_string(json_object_get(res.json, "token")) ||
        !json_is_integer(json_object_get(res.json, "fence")))
        rc = lockctl_fail(what, &res);
    else
        rc = a->env ? print_env(res.json) : lockctl_print_json(res.json);
    ls_result_clear(&res);
    return rc;
}

const struct lockctl_cmd cmd_acquire_entry = {
    .name = "acquire",
    .synopsis = "NAME [--ttl D] [--wait D] [--owner LABEL] [--env] "
                "[--reenter]",
    .summary = "take the lock and print the lease (JSON, or --env lines "
               "to eval)",
    .options =
        OPT_TTL | OPT_WAIT | OPT_OWNER | OPT_ENV | OPT_REENTER | OPT_TOKEN_FILE,
    .takes_command = false,
    .exec = acquire_exec,
};
