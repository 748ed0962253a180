/* cmd_acquire.c -- `lockctl acquire NAME`: take the lock (waiting on the
 * server up to --wait) and print the lease, as JSON or as shell lines. */
#include "lockctl.h"

#include <inttypes.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* How much longer than wait_ms the answer may take (Redis timeouts, a
 * proxy). */
#define ANSWER_SLACK_MS 10000L
/* Transient failures of an acquire are tried again, with the same
 * request_id, up to this many attempts in all. */
#define ACQUIRE_ATTEMPTS 5
#define ACQUIRE_BACKOFF_FIRST_MS 200L
#define ACQUIRE_BACKOFF_MAX_MS 2000L

json_t *acquire_body(const struct lockctl *ctl, long ttl_ms, bool with_pid)
{
    char owner[160];
    lockctl_owner(ctl, with_pid, owner, sizeof owner);
    json_t *body =
        json_pack("{s:I, s:I, s:s}", "ttl_ms", (json_int_t)ttl_ms, "wait_ms",
                  (json_int_t)(ctl->args.wait_ms < 0 ? 0 : ctl->args.wait_ms),
                  "owner", owner);
    if (body && ctl->args.shared)
        json_object_set_new(body, "mode", json_string("shared"));
    if (body && ctl->args.semaphore > 0) {
        json_object_set_new(body, "limit", json_integer(ctl->args.semaphore));
        json_object_set_new(
            body, "permits",
            json_integer(ctl->args.permits > 0 ? ctl->args.permits : 1));
    }
    return body;
}

long acquire_timeout_ms(const struct lockctl *ctl)
{
    return (ctl->args.wait_ms < 0 ? 0 : ctl->args.wait_ms) + ANSWER_SLACK_MS;
}

void acquire_request_id(char *out, size_t len)
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof raw) {
        /* No randomness: fall back on the clock and the pid, which are
         * unique enough for one host. */
        long long t = lockctl_now_ms();
        int pid = (int)getpid();
        memcpy(raw, &t, sizeof t);
        memcpy(raw + sizeof t, &pid, sizeof pid);
    }
    char hex[33];
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    snprintf(out, len, "lockctl-%s", hex);
}

int acquire_send(struct lockctl *ctl, const char *path, json_t *body, int fd,
                 int (*interrupted)(void *arg), void *arg,
                 struct ls_result *res)
{
    char request_id[48], what[192];
    long wait = ctl->args.wait_ms < 0 ? 0 : ctl->args.wait_ms;
    long long start = lockctl_now_ms();
    long long wait_end = start + wait;
    long long deadline = wait_end + ANSWER_SLACK_MS;
    long backoff = ACQUIRE_BACKOFF_FIRST_MS;

    acquire_request_id(request_id, sizeof request_id);
    json_object_set_new(body, "request_id", json_string(request_id));
    snprintf(what, sizeof what, "acquire '%s'", ctl->args.name);
    for (int attempt = 1;; attempt++) {
        long long now = lockctl_now_ms();
        long left = wait_end > now ? (long)(wait_end - now) : 0;
        json_object_set_new(body, "wait_ms", json_integer(left));
        long timeout = deadline > now ? (long)(deadline - now) : 1;
        if (timeout < left + 1000)
            timeout = left + 1000;
        if (ls_request_start(&ctl->client, "POST", path, body, timeout) != 0) {
            memset(res, 0, sizeof *res);
            res->kind = LS_TRANSIENT;
            res->unsent = true;
            snprintf(res->text, sizeof res->text, "cannot start a request");
            return 0;
        }
        while (!ls_request_poll(&ctl->client, fd, 1000, res)) {
            int stop = interrupted ? interrupted(arg) : 0;
            if (stop) {
                ls_request_cancel(&ctl->client);
                return stop;
            }
        }
        now = lockctl_now_ms();
        if (res->kind != LS_TRANSIENT || attempt >= ACQUIRE_ATTEMPTS ||
            now + backoff >= deadline)
            return 0;
        lockctl_warn("%s: %s; trying again with the same request_id", what,
                     res->text);
        ls_result_clear(res);
        long long until = now + backoff;
        while ((now = lockctl_now_ms()) < until) {
            struct ls_result none;
            ls_request_poll(&ctl->client, fd, (long)(until - now), &none);
            int stop = interrupted ? interrupted(arg) : 0;
            if (stop)
                return stop;
        }
        backoff = backoff * 2 > ACQUIRE_BACKOFF_MAX_MS ? ACQUIRE_BACKOFF_MAX_MS
                                                       : backoff * 2;
    }
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
    lockctl_path(ctl, path, sizeof path, "acquire");
    if (body == NULL) {
        memset(&res, 0, sizeof res);
        res.kind = LS_TRANSIENT;
        snprintf(res.text, sizeof res.text, "out of memory");
    } else {
        acquire_send(ctl, path, body, -1, NULL, NULL, &res);
    }
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
                "[--shared] [--reenter | --semaphore N [--permits K]]",
    .summary = "take the lock and print the lease (JSON, or --env lines "
               "to eval)",
    .options = OPT_TTL | OPT_WAIT | OPT_OWNER | OPT_ENV | OPT_REENTER |
               OPT_TOKEN_FILE | OPT_SEMAPHORE | OPT_PERMITS | OPT_SHARED,
    .takes_command = false,
    .exec = acquire_exec,
};
