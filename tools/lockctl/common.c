/* common.c -- helpers every lockctl command uses: messages, the exit status
 * for a failed call, reading the lease token, paths. */
#include "lockctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void lockctl_warn(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "lockctl: %s\n", msg);
}

int lockctl_fail(const char *what, const struct ls_result *res)
{
    if (res->kind == LS_TRANSIENT) {
        lockctl_warn("%s: service unavailable: %s", what, res->text);
        return LOCKCTL_UNAVAILABLE;
    }
    if (res->kind == LS_OK) {
        lockctl_warn("%s: unexpected answer: %s", what, res->text);
        return LOCKCTL_UNAVAILABLE;
    }
    lockctl_warn("%s: %s", what, res->text);
    if (strcmp(res->code, "lock_held") == 0 ||
        strcmp(res->code, "no_permits") == 0)
        return LOCKCTL_NOT_ACQUIRED;
    if (strcmp(res->code, "not_held") == 0 ||
        strcmp(res->code, "not_owner") == 0)
        return LOCKCTL_LEASE_LOST;
    return LOCKCTL_REFUSED;
}

int lockctl_print_json(const json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        lockctl_warn("out of memory");
        return LOCKCTL_UNAVAILABLE;
    }
    printf("%s\n", text);
    free(text);
    return fflush(stdout) == 0 ? LOCKCTL_OK : LOCKCTL_USAGE;
}

bool lockctl_token_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == 32;
}

int lockctl_token(const struct lockctl *ctl, char out[33])
{
    const char *file = ctl->args.token_file;
    char line[80] = "";

    if (file) {
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
        if (f == NULL) {
            lockctl_warn("cannot open token file %s: %s", file,
                         strerror(errno));
            return -1;
        }
        if (fgets(line, sizeof line, f) == NULL)
            line[0] = '\0';
        if (f != stdin)
            fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
    } else {
        const char *env = getenv("LOCK_TOKEN");
        if (env == NULL || *env == '\0') {
            lockctl_warn("no lease token: set LOCK_TOKEN (eval \"$(lockctl "
                         "acquire NAME --env)\") or give --token-file");
            return -1;
        }
        snprintf(line, sizeof line, "%s", env);
    }
    if (!lockctl_token_valid(line)) {
        lockctl_warn("%s does not hold a lease token (32 lowercase hex "
                     "digits)",
                     file ? file : "LOCK_TOKEN");
        return -1;
    }
    memcpy(out, line, 33);
    return 0;
}

void lockctl_owner(const struct lockctl *ctl, bool with_pid, char *out,
                   size_t len)
{
    char host[64] = "";
    if (ctl->args.owner) {
        snprintf(out, len, "%s", ctl->args.owner);
        return;
    }
    if (gethostname(host, sizeof host) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    if (with_pid)
        snprintf(out, len, "lockctl@%s pid %ld", host, (long)getpid());
    else
        snprintf(out, len, "lockctl@%s", host);
}

void lockctl_path(const struct lockctl *ctl, char *out, size_t len,
                  const char *verb)
{
    snprintf(out, len, "/v1/%s/%s%s%s",
             ctl->args.semaphore > 0 ? "semaphores" : "locks", ctl->args.name,
             *verb ? "/" : "", verb);
}

long long lockctl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
