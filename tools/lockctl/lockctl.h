/* lockctl.h -- what the commands of lockctl share: its exit statuses, the
 * parsed command line, and the command table entry.
 *
 * Adding a command = one file defining a `const struct lockctl_cmd` plus one
 * row in main.c's command table. Adding an option = one row in main.c's
 * option table, one member of struct lockctl_args, and its bit in the
 * `options` mask of the commands that take it. */
#ifndef LOCKCTL_H
#define LOCKCTL_H

#include "client.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit statuses of lockctl itself (`run` passes CMD's own status through
 * instead when the lease held to the end). Documented in --help and
 * lockctl.1; keep the three in step. */
enum lockctl_exit {
    LOCKCTL_OK = 0,
    LOCKCTL_USAGE = 64,        /* bad command line, key file or token */
    LOCKCTL_NOT_ACQUIRED = 65, /* 409 lock_held: the --wait ran out */
    LOCKCTL_LEASE_LOST = 66,   /* 409 not_held / not_owner, or it expired */
    LOCKCTL_REFUSED = 67,      /* any other 4xx problem */
    LOCKCTL_UNAVAILABLE = 68,  /* network error, 5xx, an answer not JSON */
    LOCKCTL_CANNOT_EXEC = 126, /* run: CMD found but not executable */
    LOCKCTL_NOT_FOUND = 127,   /* run: CMD not found */
};

/* Option bits: which options a command accepts (struct lockctl_cmd). */
enum {
    OPT_URL = 1u << 0,
    OPT_API_KEY_FILE = 1u << 1,
    OPT_TTL = 1u << 2,
    OPT_WAIT = 1u << 3,
    OPT_OWNER = 1u << 4,
    OPT_ENV = 1u << 5,
    OPT_REENTER = 1u << 6,
    OPT_TOKEN_FILE = 1u << 7,
    OPT_KILL_AFTER = 1u << 8,
    OPT_SEMAPHORE = 1u << 9,
    OPT_PERMITS = 1u << 10,
    OPT_FORCE = 1u << 11,
    OPT_PREFIX = 1u << 12,
    OPT_LIMIT = 1u << 13,
    OPT_SEMAPHORES = 1u << 14,
    OPT_SHARED = 1u << 15,
};
#define OPT_GLOBAL (OPT_URL | OPT_API_KEY_FILE)

/* The command line, parsed. Durations are milliseconds, -1 when not given.
 * Strings point into argv or the environment. */
struct lockctl_args {
    const char *url;
    const char *api_key_file;
    long ttl_ms;
    long wait_ms;
    long kill_after_ms;
    const char *owner;
    const char *token_file;
    bool env;
    bool reenter;
    bool force;         /* release --force */
    bool shared;        /* --shared: a shared (read) lease of the lock */
    long semaphore;     /* --semaphore N: a semaphore of limit N, 0: a lock */
    long permits;       /* --permits K, 0 when not given */
    const char *prefix; /* list --prefix P, NULL when not given */
    long limit;         /* list --limit N (1..1000), 0 when not given */
    bool semaphores;    /* list --semaphores */
    const char *name;   /* the lock name (validated) */
    char **cmd;         /* run: CMD and its arguments, NULL-terminated */
};

struct lockctl {
    struct lockctl_args args;
    struct ls_client client;
};

struct lockctl_cmd {
    const char *name;
    const char *synopsis; /* what follows the name in usage lines */
    const char *summary;  /* one line for --help */
    unsigned options;     /* OPT_* bits accepted besides OPT_GLOBAL */
    bool takes_command;   /* CMD [ARGS...] after NAME */
    bool takes_no_name;   /* no NAME (list) */
    int (*exec)(struct lockctl *ctl); /* returns the exit status */
};

extern const struct lockctl_cmd cmd_acquire_entry;
extern const struct lockctl_cmd cmd_renew_entry;
extern const struct lockctl_cmd cmd_release_entry;
extern const struct lockctl_cmd cmd_status_entry;
extern const struct lockctl_cmd cmd_check_entry;
extern const struct lockctl_cmd cmd_run_entry;
extern const struct lockctl_cmd cmd_list_entry;

/* ---- common.c ---- */

#define LOCKCTL_DEFAULT_URL "http://127.0.0.1:8080"
#define LOCKCTL_DEFAULT_TTL_MS 30000L
#define LOCKCTL_DEFAULT_KILL_AFTER_MS 5000L

/* Prints "lockctl: " and the message on stderr. */
void lockctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports a call that did not succeed (what: e.g. "acquire 'orders'") and
 * returns the exit status for it: 65 lock_held, 66 not_held / not_owner,
 * 67 another problem, 68 unavailable. */
int lockctl_fail(const char *what, const struct ls_result *res);
/* Prints a JSON answer on one line of stdout. Returns LOCKCTL_OK. */
int lockctl_print_json(const json_t *body);
/* The lease token to renew, release or re-enter: from --token-file (a path,
 * or "-" for stdin), else $LOCK_TOKEN. Fills out (33 bytes) and returns 0,
 * or reports why not and returns -1. */
int lockctl_token(const struct lockctl *ctl, char out[33]);
/* The owner label to send: --owner, else "lockctl@HOST" (with " pid N"
 * when with_pid). Fills out. */
void lockctl_owner(const struct lockctl *ctl, bool with_pid, char *out,
                   size_t len);
/* "/v1/locks/NAME/VERB", or "/v1/semaphores/NAME/VERB" with --semaphore
 * (VERB may be "" for the lock itself). */
void lockctl_path(const struct lockctl *ctl, char *out, size_t len,
                  const char *verb);
/* True when s is 32 lowercase hex digits. */
bool lockctl_token_valid(const char *s);
/* Milliseconds on the monotonic clock. */
long long lockctl_now_ms(void);

/* ---- cmd_acquire.c, shared with cmd_run.c ---- */

/* The acquire request's body: ttl_ms, wait_ms (--wait, default 0) and the
 * owner label. Caller owns the result. */
json_t *acquire_body(const struct lockctl *ctl, long ttl_ms, bool with_pid);
/* How long to wait for the acquire's answer: --wait plus some slack. */
long acquire_timeout_ms(const struct lockctl *ctl);
/* A fresh random request_id, "lockctl-" and 32 hex digits. */
void acquire_request_id(char *out, size_t len);
/* Sends the acquire body (borrowed; its request_id and wait_ms are set
 * here) to path, and tries again after a transient failure (network error,
 * timeout, 5xx, an answer not JSON) with the same request_id, so that a
 * grant whose answer was lost is answered again instead of a second lease:
 * up to 5 attempts, backing off from 200 ms to 2 s, within --wait plus
 * slack, each asking to wait only what is left of --wait. While a request
 * is in flight or backing off, fd (-1 for none) readable makes it call
 * interrupted(arg) (may be NULL): a nonzero answer abandons the acquire and
 * is returned. Otherwise returns 0 with res filled (clear it). */
int acquire_send(struct lockctl *ctl, const char *path, json_t *body, int fd,
                 int (*interrupted)(void *arg), void *arg,
                 struct ls_result *res);

/* ---- duration.c ---- */

/* Parses "500ms", "30s", "2m", "1h" or plain seconds ("1.5") into
 * milliseconds. Returns 0, or -1 for anything else (negative, empty,
 * trailing junk, over 30 days). */
int duration_parse(const char *s, long *ms);
/* Writes ms for a message, e.g. "2m", "30s", "250ms", and past a second
 * to a tenth of one, rounded down: "1.5s". */
void duration_format(long ms, char *out, size_t len);

#endif
