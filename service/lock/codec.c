/* codec.c -- see codec.h. */
#include "codec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void codec_arg(struct lock_argv *out, const char *s, size_t len)
{
    out->argv[out->argc] = s;
    out->lens[out->argc] = len;
    out->argc++;
}

void codec_arg_str(struct lock_argv *out, const char *s)
{
    codec_arg(out, s, strlen(s));
}

void codec_arg_int(struct lock_argv *out, int64_t v)
{
    char *buf = out->numbers[out->nnumbers++];
    int n = snprintf(buf, sizeof out->numbers[0], "%" PRId64, v);

    codec_arg(out, buf, (size_t)n);
}

const char *codec_or_dash(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : "-";
}

/* Appends the key of kind for name (keys come first: while they are
 * appended, argc counts them). */
static void append_key(struct lock_argv *out, enum key_kind kind,
                       const char *name)
{
    char *buf = out->keys[out->argc];

    codec_arg(out, buf, key_for(buf, kind, name));
}

void codec_context_args(struct lock_argv *out, enum lock_op op,
                        const struct lock_args *a,
                        const struct lock_context *ctx,
                        const struct codec_keys *keys)
{
    const char *record = op == LOCK_OP_RELEASE ? keys->rel : keys->acq;
    const char *id = op == LOCK_OP_ACQUIRE || op == LOCK_OP_RELEASE
                         ? codec_or_dash(a->request_id)
                         : "-";
    char *buf;

    out->argc = 0;
    out->nnumbers = 0;
    for (int i = 0; i < 5; i++)
        append_key(out, keys->first[i], a->name);
    buf = out->keys[out->argc];
    codec_arg(out, buf, key_for_record(buf, record, a->name, id));
    for (int i = 0; i < keys->nmore; i++)
        append_key(out, keys->more[i], a->name);
    out->nkeys = out->argc;
    codec_arg_str(out, ctx->prefix);
    codec_arg_int(out, ctx->handoff_ms);
    codec_arg_int(out, ctx->fence_floor);
    codec_arg_str(out, ctx->qname);
}

bool codec_is_int(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER;
}

bool codec_get_int(const redisReply *r, size_t i, int64_t *v)
{
    if (!codec_is_int(r, i))
        return false;
    *v = r->element[i]->integer;
    return true;
}

bool codec_get_str(const redisReply *r, size_t i, char *dst, size_t len)
{
    const redisReply *e;

    if (i >= r->elements)
        return false;
    e = r->element[i];
    if (e->type != REDIS_REPLY_STRING || e->len >= len)
        return false;
    memcpy(dst, e->str, e->len);
    dst[e->len] = '\0';
    return true;
}

bool codec_get_pttl(const redisReply *r, size_t i, struct lock_reply *out)
{
    if (!codec_get_int(r, i, &out->pttl_ms))
        return false;
    if (out->pttl_ms < 0)
        out->pttl_ms = 0;
    return true;
}

void codec_reply_clear(struct lock_reply *out)
{
    lock_reply_free(out);
    memset(out, 0, sizeof *out);
}

int codec_reply_unknown(struct lock_reply *out)
{
    codec_reply_clear(out);
    out->outcome = LOCK_UNAVAILABLE;
    return -1;
}

bool codec_alloc_lists(struct lock_reply *out, size_t nholders, size_t nqueued)
{
    if (nholders > 0) {
        out->holders = calloc(nholders, sizeof *out->holders);
        if (out->holders == NULL)
            return false;
    }
    if (nqueued > 0) {
        out->queue = calloc(nqueued, sizeof *out->queue);
        if (out->queue == NULL)
            return false;
    }
    return true;
}

void codec_see_fence(struct lock_reply *out, int64_t fence)
{
    if (fence > out->fence_seen)
        out->fence_seen = fence;
}

bool codec_get_forced(const redisReply *r, size_t n, struct lock_reply *out)
{
    if (!codec_alloc_lists(out, n, 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        struct lock_holder *h = &out->holders[i];
        if (!codec_get_str(r, 1 + 2 * i, h->owner, sizeof h->owner) ||
            !codec_get_int(r, 2 + 2 * i, &h->fence))
            return false;
        out->nholders++;
        codec_see_fence(out, h->fence);
    }
    return true;
}

void lock_reply_free(struct lock_reply *r)
{
    free(r->queue);
    free(r->holders);
    free(r->directs);
    r->directs = NULL;
    r->ndirects = 0;
    r->queue = NULL;
    r->queued = 0;
    r->holders = NULL;
    r->nholders = 0;
}
