/* codec.h -- what every lock kind's codec (kind.h) uses to build a
 * script's arguments and to read its reply. Pure: no Redis, no I/O. */
#ifndef LOCKSERVICE_LOCK_CODEC_H
#define LOCKSERVICE_LOCK_CODEC_H

#include "kind.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appends an argument (borrowed: it must outlive out). */
void codec_arg(struct lock_argv *out, const char *s, size_t len);
void codec_arg_str(struct lock_argv *out, const char *s);
/* Appends v as decimal digits kept in out itself. */
void codec_arg_int(struct lock_argv *out, int64_t v);
/* s, or "-" when it is NULL or empty (a script's "none"). */
const char *codec_or_dash(const char *s);

/* The keys a kind's scripts take, in their order. */
struct codec_keys {
    enum key_kind first[5]; /* KEYS[1..5] */
    /* KEYS[6], the record of the call's request_id: acq's for an acquire,
     * rel's for a release ("acq", "rel"; for a semaphore "sem:acq", ...),
     * acq's of no id for any other call */
    const char *acq, *rel;
    enum key_kind more[2]; /* KEYS[7...], nmore of them */
    int nmore;
};

/* Starts out for op on a->name: the kind's keys, then the context every
 * script takes first (prelude.lua's and sem_prelude.lua's ARGV[1..4]).
 * What follows is the kind's own. */
void codec_context_args(struct lock_argv *out, enum lock_op op,
                        const struct lock_args *a,
                        const struct lock_context *ctx,
                        const struct codec_keys *keys);

/* Element i of array reply r: an integer? */
bool codec_is_int(const redisReply *r, size_t i);
/* Reads integer element i into *v. Returns false when it is none. */
bool codec_get_int(const redisReply *r, size_t i, int64_t *v);
/* Copies string element i into dst (len bytes with its NUL). Returns false
 * when it is no string or does not fit. */
bool codec_get_str(const redisReply *r, size_t i, char *dst, size_t len);
/* Reads element i into out->pttl_ms, a negative PTTL read as 0. */
bool codec_get_pttl(const redisReply *r, size_t i, struct lock_reply *out);

/* Empties out (what it held freed) for a decode. */
void codec_reply_clear(struct lock_reply *out);
/* Empties out to LOCK_UNAVAILABLE, a decode's answer for a shape the script
 * never answers. Returns -1. */
int codec_reply_unknown(struct lock_reply *out);
/* Allocates out->holders for nholders and out->queue for nqueued (nothing
 * for 0; lock_reply_free frees them). Returns false when out of memory. */
bool codec_alloc_lists(struct lock_reply *out, size_t nholders, size_t nqueued);
/* Raises out->fence_seen to fence. */
void codec_see_fence(struct lock_reply *out, int64_t fence);
/* Reads the n leases a force ended, (owner, fence) pairs from element 1 on,
 * into out->holders (allocated here). */
bool codec_get_forced(const redisReply *r, size_t n, struct lock_reply *out);

#endif
