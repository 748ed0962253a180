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

/* Element i of array reply r: an integer? */
bool codec_is_int(const redisReply *r, size_t i);
/* Reads integer element i into *v. Returns false when it is none. */
bool codec_get_int(const redisReply *r, size_t i, int64_t *v);
/* Copies string element i into dst (len bytes with its NUL). Returns false
 * when it is no string or does not fit. */
bool codec_get_str(const redisReply *r, size_t i, char *dst, size_t len);
/* Reads element i into out->pttl_ms, a negative PTTL read as 0. */
bool codec_get_pttl(const redisReply *r, size_t i, struct lock_reply *out);

#endif
