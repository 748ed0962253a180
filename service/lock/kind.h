/* kind.h -- lock kinds as table entries.
 *
 * A kind is its Lua scripts (lock/lua/) plus a pure codec: encode turns the
 * arguments of an operation into the script's KEYS and ARGV, decode turns
 * the script's reply into a struct lock_reply. Neither touches Redis or
 * HTTP, so the codecs are unit-tested on their own. The engine (engine.c)
 * runs an operation of any kind the same way; a new kind is a new file that
 * defines its struct lock_kind, and a row in lock_kinds[] (engine.c). */
#ifndef LOCKSERVICE_LOCK_KIND_H
#define LOCKSERVICE_LOCK_KIND_H

#include "config.h"
#include "redis/conn.h"
#include "redis/keys.h"

#include <stdbool.h>
#include <stdint.h>

/* The operations every kind implements, one script each. */
enum lock_op {
    LOCK_OP_ACQUIRE, /* grant, re-enter, or refuse (and queue) */
    LOCK_OP_RENEW,
    LOCK_OP_RELEASE,
    LOCK_OP_STATUS,
    LOCK_OP_CLAIM, /* a queued waiter takes up the lock handed to it */
    LOCK_OP_LEAVE, /* a queued waiter stops waiting */
    LOCK_OP_POKE,  /* look at a lock whose lease may have ended */
    LOCK_OP_FORCE, /* an operator ends whatever lease holds the lock */
    LOCK_OP_COUNT
};

/* "<instance>:<worker>:<n>": 16 + 1 + up to 3 + 1 + up to 20. */
#define WAITER_ID_MAX 48

/* The arguments of one operation. */
struct lock_args {
    const char *name;
    const char *token;  /* the lease's (acquire: minted, or re-entered) */
    bool reenter;       /* acquire: token is the client's */
    int64_t ttl_ms;     /* 0 for renew: the TTL last granted */
    int64_t wait_ms;    /* acquire: the wait; claim: what is left of it */
    const char *owner;  /* "" for none */
    const char *waiter; /* the caller's waiter id, "" when it does not wait */
    bool leave_claims;  /* leave: a lock handed over meanwhile is taken */
    int64_t max_hold;   /* acquire: the reentrant hold limit */
    int64_t delay_ms;   /* acquire, claim: lock_delay_ms after an expiry */
    const char *request_id; /* acquire, release: "" for none */
    int64_t listed;         /* status: how many queued waiters to list */
    int64_t permits;        /* semaphores: permits asked for */
    int64_t limit;          /* semaphores: the limit the caller agrees to */
    bool shared;            /* locks: acquire, claim: a shared lease */
};

/* What every script gets first (ARGV[1..4], codec_context_args); instance
 * is the lock scripts' ARGV[5]. */
struct lock_context {
    const char *prefix;
    const char *qname;    /* "<kind>:<name>", for the instances' wake-ups */
    const char *instance; /* the calling instance's id */
    int64_t handoff_ms;
    int64_t fence_floor;
};

#define LOCK_KEYS_MAX 8
#define LOCK_ARGV_MAX 16

/* An encoded operation: keys first, then ARGV; the strings point into the
 * struct itself or into the arguments, which must outlive it. */
struct lock_argv {
    int nkeys, argc;
    const char *argv[LOCK_KEYS_MAX + LOCK_ARGV_MAX];
    size_t lens[LOCK_KEYS_MAX + LOCK_ARGV_MAX];
    char keys[LOCK_KEYS_MAX][KEY_MAX];
    char numbers[8][24];
    int nnumbers;
};

enum lock_outcome {
    LOCK_OK,            /* granted, renewed, released, claimed; status: held */
    LOCK_HELD,          /* refused: held (pttl_ms: how long the lease runs) */
    LOCK_QUEUED,        /* refused, and the caller now waits in the queue */
    LOCK_NOT_HELD,      /* nobody holds the lock */
    LOCK_NOT_OWNER,     /* another lease holds it */
    LOCK_HOLD_LIMIT,    /* re-entry would pass the hold limit */
    LOCK_WAIT_OVER,     /* claim: the hand-off lapsed and the wait is over */
    LOCK_FREE,          /* status, poke: free (poke: and nobody queued) */
    LOCK_RESERVED,      /* status: handed to a waiter for pttl_ms more */
    LOCK_DELAYED,       /* status: free, but its lock-delay runs pttl_ms */
    LOCK_REQUEST_ENDED, /* acquire: request_id's lease has ended */
    LOCK_HANDED_ON,     /* leave: the hand-off went on to the next waiter */
    LOCK_UNAVAILABLE,   /* Redis failed, or the reply had an unknown shape */
    /* semaphores: another limit is in force while permits are held */
    LOCK_LIMIT_MISMATCH,
    LOCK_MODE_CONFLICT, /* acquire: re-entry asks for the other mode */
};

struct lease {
    int64_t fence;
    int64_t count;  /* hold count (release: what remains) */
    int64_t ttl_ms; /* granted TTL (acquire, renew) or remaining (status) */
    char owner[OWNER_BYTES_MAX + 1];
    int64_t permits; /* semaphores: what it holds (release: gave back) */
    bool shared;     /* locks: a shared lease */
};

/* A queued waiter as status lists it. */
struct lock_queued {
    char owner[OWNER_BYTES_MAX + 1];
    int64_t waited_ms;
    int64_t permits; /* semaphores; 1 for a lock */
    bool shared;     /* locks: waits for a shared lease */
};

/* A holder as status lists it (kinds with several holders). */
struct lock_holder {
    char owner[OWNER_BYTES_MAX + 1];
    int64_t fence, ttl_ms, count, held_ms;
    int64_t permits; /* semaphores; 1 for a lock */
    bool shared;     /* locks: a shared lease */
};

/* A lock a script granted outright to a waiter of the calling instance. */
struct lock_direct {
    char id[WAITER_ID_MAX];
    int64_t fence;
};

/* Status lists at most this many queued waiters. */
#define LOCK_LIST_MAX 100

struct lock_reply {
    enum lock_outcome outcome;
    struct lease lease;
    int64_t pttl_ms;               /* HELD, QUEUED, RESERVED, DELAYED; poke: the
                                      lease's */
    int64_t fence_seen;            /* the largest fence in the reply, or 0 */
    char handed_to[WAITER_ID_MAX]; /* poke: the waiter it is handed to */
    /* Any op: the script granted the lock outright to these waiters of the
     * calling instance (a shared lock: to several). malloc'd;
     * lock_reply_free frees it. */
    struct lock_direct *directs;
    size_t ndirects;
    bool replayed; /* acquire: the lease an earlier try got ... */
    char token[TOKEN_HEX_LEN + 1]; /* ... and its token */
    /* status: how long the holder has held it; release: how long the
     * lease was held (-1: unknown, a repeated request_id) */
    int64_t held_ms;
    /* status */
    int owned; /* 1: the given token holds it; 0: another does; -1: none */
    int64_t waiting;
    struct lock_queued *queue; /* malloc'd; lock_reply_free frees it */
    size_t queued;
    /* status of kinds with several holders */
    struct lock_holder *holders; /* malloc'd; lock_reply_free frees it */
    size_t nholders;
    int64_t holder_count; /* all holders, listed or not */
    int64_t limit, used;  /* semaphores */
    /* force: the leases it ended (the first LOCK_LIST_MAX of them in
     * holders, with their owners and fences) */
    int64_t forced;
};

/* Frees what decode allocated in r (NULL members are fine). */
void lock_reply_free(struct lock_reply *r);

struct lock_kind {
    const char *name; /* in logs, and qualifying names in the registry */
    /* The embedded source put in front of each script (after its "#!"
     * line): the kind's shared Lua functions. */
    const char *prelude;
    struct redis_script *scripts[LOCK_OP_COUNT];
    /* The key of a name's queue: "<it>:alive:<instance>" is the instance's
     * liveness for the name (prelude.lua). */
    enum key_kind queue_key;
    /* Fills out for op; never fails for valid arguments (a name of at most
     * SCOPED_NAME_MAX, an owner of at most OWNER_BYTES_MAX). */
    void (*encode)(enum lock_op op, const struct lock_args *a,
                   const struct lock_context *ctx, struct lock_argv *out);
    /* Fills out from r; an unknown shape is LOCK_UNAVAILABLE and returns
     * -1 (the engine logs it), else 0. */
    int (*decode)(enum lock_op op, const redisReply *r, struct lock_reply *out);
};

/* The kinds (lock/exclusive.c, ...). */
extern const struct lock_kind lock_kind_exclusive;
extern const struct lock_kind lock_kind_semaphore;

/* The kind whose name qualifies qname ("lock:orders"), with *name set to
 * the lock name after the colon; NULL when none. */
const struct lock_kind *lock_kind_of(const char *qname, const char **name);

/* Builds each kind's scripts from its embedded sources (the prelude put in
 * front) and registers them with the Redis layer. Call once at startup.
 * Returns 0 or -1. */
int lock_kinds_init(void);

#endif
