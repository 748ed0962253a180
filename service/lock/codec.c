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
