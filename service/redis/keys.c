/* keys.c -- see keys.h. */
#include "keys.h"

#include <stdio.h>

static const char *prefix = "lockservice:";

static const char *const suffix[] = {
    [KEY_LOCK] = "lock",
    [KEY_FENCE] = "fence",
    [KEY_QUEUE] = "queue",
    [KEY_WAITERS] = "waiters",
    [KEY_DELAY] = "delay",
    [KEY_DEMO] = "demo",
    [KEY_SEM] = "sem",
    [KEY_SEM_EXPIRY] = "sem:expiry",
    [KEY_SEM_FENCE] = "sem:fence",
    [KEY_SEM_QUEUE] = "sem:queue",
    [KEY_SEM_WAITERS] = "sem:waiters",
    [KEY_SHARED] = "shared",
    [KEY_SHARED_EXPIRY] = "shared:expiry",
};

void keys_init(const struct config *cfg)
{
    prefix = cfg->key_prefix;
}

size_t key_for(char *buf, enum key_kind kind, const char *name)
{
    int n = snprintf(buf, KEY_MAX, "%s{%s}:%s", prefix, name, suffix[kind]);

    return n > 0 && n < KEY_MAX ? (size_t)n : 0;
}

size_t key_for_record(char *buf, const char *what, const char *name,
                      const char *id)
{
    int n = snprintf(buf, KEY_MAX, "%s{%s}:%s:%s", prefix, name, what, id);

    return n > 0 && n < KEY_MAX ? (size_t)n : 0;
}

const char *keys_prefix(void)
{
    return prefix;
}
