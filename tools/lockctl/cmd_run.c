/* cmd_run.c -- `lockctl run NAME [--] CMD [ARGS...]`: wait for the lock on
 * the server, run CMD while holding it, keep the lease alive, stop CMD when
 * the lease is lost, release it when CMD exits, and exit with CMD's status.
 *
 * One thread and one loop: libcurl's poll covers the renewal in flight and
 * a self-pipe that the signal handlers write to, so a slow renewal never
 * delays forwarding a signal or noticing that CMD exited.
 *
 * The lease as seen from here ("basis" is when the request that set the
 * TTL was sent; the server started counting a little later, so every time
 * below comes before the server's own):
 *
 *   basis + ttl/3          send a renewal
 *   a renewal fails        (network error, timeout, 5xx, a body that is
 *                          not JSON) try again after 100 ms, doubling up to
 *                          ttl/10, with jitter
 *   basis + ttl - ttl/10   nothing succeeded: the lease counts as lost
 *   a 409 (or another 4xx) on renewal: lost at once
 *
 * Lost: a message on stderr, SIGTERM to CMD, SIGKILL --kill-after later,
 * and exit status 66 once CMD is gone. */
#include "lockctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define RUN_MIN_TTL_MS 300L
#define BACKOFF_FIRST_MS 100L
#define RELEASE_BUDGET_MS 10000L
#define RELEASE_ATTEMPT_MS 5000L

/* Signals passed on to CMD (SIGCHLD is watched, not forwarded). */
static const int forwarded[] = {SIGINT,  SIGTERM, SIGHUP,
                                SIGQUIT, SIGUSR1, SIGUSR2};
#define FORWARDED_COUNT (sizeof forwarded / sizeof forwarded[0])

/* What a signal handler writes to the self-pipe. */
struct signal_note {
    int signo;
    int code; /* si_code: SI_KERNEL when the terminal sent it */
};

static int signal_pipe[2] = {-1, -1};

struct run {
    struct lockctl *ctl;
    const char *name;
    char path_renew[256];
    char token[33];
    long long fence;
    long ttl_ms;
    long long basis;    /* when the request that set the TTL was sent */
    long long next_try; /* when to send the next renewal */
    long backoff_ms;
    bool renewing; /* a renewal is in flight */
    long long renew_sent;
    int failures; /* renewals failed since the last success */
    pid_t child;
    bool child_done;
    int child_status; /* as waitpid returns it */
    bool lost;
    long long kill_at;
    bool killed;
};

static void on_signal(int signo, siginfo_t *info, void *context)
{
    (void)context;
    int saved = errno;
    struct signal_note note = {signo, info ? info->si_code : SI_USER};
    ssize_t n = write(signal_pipe[1], &note, sizeof note);
    (void)n; /* a full pipe drops the note; the loop reaps CMD anyway */
    errno = saved;
}

static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    for (size_t i = 0; i < FORWARDED_COUNT; i++)
        sigaction(forwarded[i], &sa, NULL);
    sa.sa_flags |= SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* The signals the handlers take, for blocking them around fork. */
static void handled_set(sigset_t *set)
{
    sigemptyset(set);
    for (size_t i = 0; i < FORWARDED_COUNT; i++)
        sigaddset(set, forwarded[i]);
    sigaddset(set, SIGCHLD);
}

static long long deadline(const struct run *r)
{
    return r->basis + r->ttl_ms - r->ttl_ms / 10;
}

static long backoff_cap(const struct run *r)
{
    return r->ttl_ms / 10 > BACKOFF_FIRST_MS ? r->ttl_ms / 10
                                             : BACKOFF_FIRST_MS;
}

static void reap(struct run *r)
{
    int st;
    if (r->child > 0 && !r->child_done &&
        waitpid(r->child, &st, WNOHANG) == r->child) {
        r->child_done = true;
        r->child_status = st;
    }
}

/* Reads the self-pipe. Before CMD runs, returns the first signal that
 * should stop lockctl (0 if none); afterwards passes each signal on to CMD,
 * except one the terminal sent to the whole foreground process group,
 * which CMD got already. */
static int drain_signals(struct run *r)
{
    struct signal_note note;
    int stop = 0;
    while (read(signal_pipe[0], &note, sizeof note) == (ssize_t)sizeof note) {
        if (note.signo == SIGCHLD)
            continue;
        if (r->child <= 0) {
            if (stop == 0)
                stop = note.signo;
        } else if (!r->child_done && note.code != SI_KERNEL) {
            kill(r->child, note.signo);
        }
    }
    reap(r);
    return stop;
}

/* Stops CMD after the lease is gone: SIGTERM now, SIGKILL later. */
static void lose(struct run *r, long long now, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lose(struct run *r, long long now, const char *fmt, ...)
{
    char why[768], grace[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (r->renewing) {
        ls_request_cancel(&r->ctl->client);
        r->renewing = false;
    }
    r->lost = true;
    long kill_after = r->ctl->args.kill_after_ms;
    duration_format(kill_after, grace, sizeof grace);
    lockctl_warn("lease on '%s' lost: %s; stopping CMD (pid %ld): SIGTERM "
                 "now, SIGKILL in %s",
                 r->name, why, (long)r->child, grace);
    kill(r->child, SIGTERM);
    r->kill_at = now + kill_after;
}

static void renew_failed(struct run *r, long long now, const char *text)
{
    char wait[32], left[32];
    long delay = r->backoff_ms;
    delay += (long)(random() % (delay / 2 + 1)) - delay / 4;
    if (delay < 1)
        delay = 1;
    r->next_try = now + delay;
    r->backoff_ms =
        r->backoff_ms * 2 < backoff_cap(r) ? r->backoff_ms * 2 : backoff_cap(r);
    r->failures++;
    duration_format(delay, wait, sizeof wait);
    duration_format((long)(deadline(r) - now), left, sizeof left);
    lockctl_warn("renewing '%s' failed (%s); trying again in %s (%s before "
                 "the lease counts as lost)",
                 r->name, text, wait, left);
}

static void renew_start(struct run *r, long long now)
{
    long budget = (long)(deadline(r) - now);
    long timeout = r->ttl_ms / 3 > 1000 ? r->ttl_ms / 3 : 1000;
    json_t *body = json_pack("{s:s}", "token", r->token);
    if (timeout > budget)
        timeout = budget;
    if (body && ls_request_start(&r->ctl->client, "POST", r->path_renew, body,
                                 timeout) == 0) {
        r->renewing = true;
        r->renew_sent = now;
    } else {
        renew_failed(r, now, "cannot start a request");
    }
    json_decref(body);
}

static void renew_done(struct run *r, long long now, struct ls_result *res)
{
    r->renewing = false;
    json_t *ttl = json_object_get(res->json, "ttl_ms");
    if (res->kind == LS_OK && json_is_integer(ttl) &&
        json_integer_value(ttl) > 0) {
        if (r->failures > 0)
            lockctl_warn("renewed '%s' after %d failed attempt%s", r->name,
                         r->failures, r->failures == 1 ? "" : "s");
        r->ttl_ms = (long)json_integer_value(ttl);
        r->basis = r->renew_sent;
        r->next_try = r->basis + r->ttl_ms / 3;
        r->backoff_ms = BACKOFF_FIRST_MS;
        r->failures = 0;
    } else if (res->kind == LS_PROBLEM) {
        lose(r, now, "the renewal was refused (%s)", res->text);
    } else {
        renew_failed(r, now,
                     res->kind == LS_OK ? "an answer without ttl_ms"
                                        : res->text);
    }
}

static int acquire_signals(void *arg)
{
    return drain_signals(arg);
}

/* Waits for the lock. Returns 0, or the exit status. */
static int acquire(struct run *r)
{
    struct lockctl *ctl = r->ctl;
    char path[256], what[192];
    struct ls_result res;
    long ttl = ctl->args.ttl_ms < 0 ? LOCKCTL_DEFAULT_TTL_MS : ctl->args.ttl_ms;
    json_t *body = acquire_body(ctl, ttl, true);

    lockctl_path(r->ctl, path, sizeof path, "acquire");
    long long sent = lockctl_now_ms();
    snprintf(what, sizeof what, "acquire '%s'", r->name);
    if (body == NULL) {
        lockctl_warn("%s: cannot start a request", what);
        return LOCKCTL_UNAVAILABLE;
    }
    int sig =
        acquire_send(ctl, path, body, signal_pipe[0], acquire_signals, r, &res);
    json_decref(body);
    if (sig)
        return 128 + sig;
    json_t *token = json_object_get(res.json, "token");
    json_t *fence = json_object_get(res.json, "fence");
    json_t *granted = json_object_get(res.json, "ttl_ms");
    if (res.kind != LS_OK || !json_is_string(token) ||
        !lockctl_token_valid(json_string_value(token)) ||
        !json_is_integer(fence) || !json_is_integer(granted) ||
        json_integer_value(granted) <= 0) {
        int rc = lockctl_fail(what, &res);
        ls_result_clear(&res);
        return rc;
    }
    memcpy(r->token, json_string_value(token), sizeof r->token);
    r->fence = (long long)json_integer_value(fence);
    r->ttl_ms = (long)json_integer_value(granted);
    ls_result_clear(&res);

    long long now = lockctl_now_ms();
    if (now - sent <= r->ttl_ms / 10) {
        r->basis = sent;
        r->next_try = sent + r->ttl_ms / 3;
    } else {
        /* It waited: the grant came at some moment of the wait. Renew at
         * once, which pins the TTL to a known start. */
        r->basis = now;
        r->next_try = now;
    }
    r->backoff_ms = BACKOFF_FIRST_MS;
    return 0;
}

/* malloc'd "NAME=value". */
static char *env_entry(const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 2;
    char *s = malloc(len);
    if (s)
        snprintf(s, len, "%s=%s", name, value);
    return s;
}

static bool env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* CMD's environment: ours, with the lease's variables set. Built before
 * fork (only async-signal-safe calls are made between fork and exec).
 * Returns a malloc'd array (its own entries malloc'd from *first_own on)
 * or NULL. */
static char **child_environment(const struct run *r, size_t *first_own)
{
    static const char *const names[] = {
        "LOCK_NAME",   "LOCK_TOKEN",      "LOCK_FENCE",
        "LOCK_TTL_MS", "LOCKSERVICE_URL", "LOCKSERVICE_API_KEY_FILE"};
    const size_t nnames = sizeof names / sizeof names[0];
    size_t n = 0, out = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + nnames + 1, sizeof *env);
    if (env == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool ours = false;
        for (size_t j = 0; j < nnames; j++)
            ours = ours || env_is(environ[i], names[j]);
        if (!ours)
            env[out++] = environ[i];
    }
    *first_own = out;
    char fence[32], ttl[32];
    snprintf(fence, sizeof fence, "%lld", r->fence);
    snprintf(ttl, sizeof ttl, "%ld", r->ttl_ms);
    env[out++] = env_entry("LOCK_NAME", r->name);
    env[out++] = env_entry("LOCK_TOKEN", r->token);
    env[out++] = env_entry("LOCK_FENCE", fence);
    env[out++] = env_entry("LOCK_TTL_MS", ttl);
    env[out++] = env_entry("LOCKSERVICE_URL", r->ctl->client.base);
    const char *key_file = r->ctl->args.api_key_file;
    if (key_file && *key_file)
        env[out++] = env_entry("LOCKSERVICE_API_KEY_FILE", key_file);
    for (size_t i = *first_own; i < out; i++)
        if (env[i] == NULL) {
            for (size_t j = *first_own; j < out; j++)
                free(env[j]);
            free(env);
            return NULL;
        }
    return env;
}

/* Starts CMD. Returns 0, or the exit status (126/127: it could not be
 * run; CMD's reason is printed). */
static int spawn_child(struct run *r)
{
    size_t first_own = 0;
    char **env = child_environment(r, &first_own);
    int exec_pipe[2];
    sigset_t handled, saved;

    if (env == NULL || pipe2(exec_pipe, O_CLOEXEC) != 0) {
        lockctl_warn("cannot start CMD: %s", strerror(errno));
        free(env);
        return LOCKCTL_CANNOT_EXEC;
    }
    handled_set(&handled);
    sigprocmask(SIG_BLOCK, &handled, &saved);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(exec_pipe[0]);
        for (size_t i = 0; i < FORWARDED_COUNT; i++)
            signal(forwarded[i], SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        sigprocmask(SIG_SETMASK, &saved, NULL);
        /* Should lockctl die, nobody renews the lease: CMD must stop. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            raise(SIGTERM);
        char **argv = r->ctl->args.cmd;
        execvpe(argv[0], argv, env);
        int err = errno;
        ssize_t n = write(exec_pipe[1], &err, sizeof err);
        (void)n;
        _exit(err == ENOENT ? LOCKCTL_NOT_FOUND : LOCKCTL_CANNOT_EXEC);
    }
    int fork_errno = errno;
    sigprocmask(SIG_SETMASK, &saved, NULL);
    close(exec_pipe[1]);
    for (size_t i = first_own; env[i]; i++)
        free(env[i]);
    free(env);
    if (pid < 0) {
        close(exec_pipe[0]);
        lockctl_warn("cannot start CMD: %s", strerror(fork_errno));
        return LOCKCTL_CANNOT_EXEC;
    }
    r->child = pid;

    int err = 0;
    ssize_t n;
    while ((n = read(exec_pipe[0], &err, sizeof err)) < 0 && errno == EINTR)
        ;
    close(exec_pipe[0]);
    if (n == (ssize_t)sizeof err) {
        lockctl_warn("cannot run %s: %s", r->ctl->args.cmd[0], strerror(err));
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        r->child_done = true;
        return err == ENOENT ? LOCKCTL_NOT_FOUND : LOCKCTL_CANNOT_EXEC;
    }
    return 0;
}

/* Renews until CMD exits; stops CMD when the lease is lost. */
static void hold(struct run *r)
{
    struct ls_client *client = &r->ctl->client;
    struct ls_result res;

    while (!r->child_done) {
        long long now = lockctl_now_ms();
        if (!r->lost && now >= deadline(r)) {
            char ttl[32];
            duration_format(r->ttl_ms, ttl, sizeof ttl);
            lose(r, now,
                 "no renewal succeeded in time (%d attempt%s failed; the "
                 "TTL is %s)",
                 r->failures, r->failures == 1 ? "" : "s", ttl);
        }
        if (!r->lost && !r->renewing && now >= r->next_try)
            renew_start(r, now);
        if (r->lost && !r->killed && now >= r->kill_at) {
            lockctl_warn("CMD (pid %ld) still runs: SIGKILL", (long)r->child);
            kill(r->child, SIGKILL);
            r->killed = true;
        }

        long long wake = now + 1000;
        if (!r->lost) {
            if (deadline(r) < wake)
                wake = deadline(r);
            if (!r->renewing && r->next_try < wake)
                wake = r->next_try;
        } else if (!r->killed && r->kill_at < wake) {
            wake = r->kill_at;
        }
        if (ls_request_poll(client, signal_pipe[0], (long)(wake - now), &res)) {
            if (r->renewing && !r->lost)
                renew_done(r, lockctl_now_ms(), &res);
            ls_result_clear(&res);
        }
        drain_signals(r);
    }
    if (r->renewing) {
        ls_request_cancel(client);
        r->renewing = false;
    }
}

/* Releases the lease after CMD exited. Transient failures are retried for
 * a while; a release that may have counted before its answer was lost
 * makes a later not_held mean "released". Returns false when the lease
 * turned out to be gone already. */
static bool release(struct run *r)
{
    struct ls_client *client = &r->ctl->client;
    char path[256];
    struct ls_result res;
    bool uncertain = false;
    long backoff = BACKOFF_FIRST_MS;
    long long now = lockctl_now_ms();
    long long until = deadline(r) < now + RELEASE_BUDGET_MS
                          ? deadline(r)
                          : now + RELEASE_BUDGET_MS;
    json_t *body = json_pack("{s:s}", "token", r->token);

    lockctl_path(r->ctl, path, sizeof path, "release");
    for (;;) {
        long timeout = (long)(until - now);
        if (timeout > RELEASE_ATTEMPT_MS)
            timeout = RELEASE_ATTEMPT_MS;
        if (timeout < 100)
            timeout = 100;
        if (ls_request_start(client, "POST", path, body, timeout) != 0) {
            memset(&res, 0, sizeof res);
            res.kind = LS_TRANSIENT;
            res.unsent = true;
            snprintf(res.text, sizeof res.text, "cannot start a request");
        } else {
            while (!ls_request_poll(client, signal_pipe[0], 1000, &res))
                drain_signals(r);
        }
        now = lockctl_now_ms();
        if (res.kind == LS_OK)
            break;
        if (res.kind == LS_PROBLEM) {
            bool gone = strcmp(res.code, "not_held") == 0 ||
                        strcmp(res.code, "not_owner") == 0;
            if (gone && uncertain && strcmp(res.code, "not_held") == 0)
                break; /* the earlier attempt released it */
            lockctl_warn("release '%s': %s%s", r->name, res.text,
                         gone ? "; the lease had ended before CMD exited" : "");
            ls_result_clear(&res);
            json_decref(body);
            return !gone;
        }
        if (now + backoff >= until) {
            lockctl_warn("release '%s' failed (%s); the lease ends by "
                         "itself when its TTL runs out",
                         r->name, res.text);
            break;
        }
        uncertain = uncertain || !res.unsent;
        ls_result_clear(&res);
        ls_request_poll(client, signal_pipe[0], backoff, &res);
        drain_signals(r);
        backoff *= 2;
    }
    ls_result_clear(&res);
    json_decref(body);
    return true;
}

static int exit_status_of(int wait_status)
{
    if (WIFEXITED(wait_status))
        return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status))
        return 128 + WTERMSIG(wait_status);
    return LOCKCTL_CANNOT_EXEC;
}

static int run_exec(struct lockctl *ctl)
{
    struct run r;
    memset(&r, 0, sizeof r);
    r.ctl = ctl;
    r.name = ctl->args.name;
    lockctl_path(r.ctl, r.path_renew, sizeof r.path_renew, "renew");
    if (ctl->args.kill_after_ms < 0)
        ctl->args.kill_after_ms = LOCKCTL_DEFAULT_KILL_AFTER_MS;
    if (ctl->args.ttl_ms >= 0 && ctl->args.ttl_ms < RUN_MIN_TTL_MS) {
        lockctl_warn("run: --ttl must be at least 300ms (renewals go out "
                     "every ttl/3)");
        return LOCKCTL_USAGE;
    }
    srandom((unsigned)getpid());
    if (install_signals() != 0) {
        lockctl_warn("cannot set up signal handling: %s", strerror(errno));
        return LOCKCTL_UNAVAILABLE;
    }

    int rc = acquire(&r);
    if (rc != 0)
        return rc;
    rc = spawn_child(&r);
    if (rc != 0) {
        release(&r);
        return rc;
    }
    hold(&r);

    int status = exit_status_of(r.child_status);
    if (r.lost) {
        /* A lease that timed out here may still live on the server for a
         * moment: one quick release, whatever it says. */
        struct ls_result res;
        char path[256];
        json_t *body = json_pack("{s:s}", "token", r.token);
        lockctl_path(r.ctl, path, sizeof path, "release");
        ls_request(&ctl->client, "POST", path, body, 1000, &res);
        ls_result_clear(&res);
        json_decref(body);
        lockctl_warn("CMD ended (exit status %d) after the lease on '%s' "
                     "was lost; exiting %d",
                     status, r.name, LOCKCTL_LEASE_LOST);
        return LOCKCTL_LEASE_LOST;
    }
    if (!release(&r)) {
        lockctl_warn("CMD ended (exit status %d) but the lease on '%s' had "
                     "been lost; exiting %d",
                     status, r.name, LOCKCTL_LEASE_LOST);
        return LOCKCTL_LEASE_LOST;
    }
    return status;
}

const struct lockctl_cmd cmd_run_entry = {
    .name = "run",
    .synopsis = "NAME [--ttl D] [--wait D] [--owner LABEL] [--kill-after D] "
                "[--shared | --semaphore N [--permits K]] [--] CMD [ARGS...]",
    .summary = "wait for the lock, run CMD while holding it (renewed every "
               "ttl/3), stop CMD if the lease is lost, release it when CMD "
               "exits",
    .options = OPT_TTL | OPT_WAIT | OPT_OWNER | OPT_KILL_AFTER | OPT_SEMAPHORE |
               OPT_PERMITS | OPT_SHARED,
    .takes_command = true,
    .exec = run_exec,
};
