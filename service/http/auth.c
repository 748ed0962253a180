/* auth.c -- the API key set and its replacement; see auth.h. */
#include "http/auth.h"

#include "token.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* An immutable set of keys, freed by whoever drops its last reference: the
 * active pointer holds one, and each thread that used it one more. Each key
 * is zero-padded to API_KEY_MAX + 1 bytes, so that every comparison runs
 * over the same length. */
struct key_set {
    atomic_uint refs;
    size_t count;
    struct api_key keys[];
};

static bool enabled;
static pthread_mutex_t set_mu = PTHREAD_MUTEX_INITIALIZER;
static struct key_set *active; /* under set_mu */
static atomic_uint generation; /* bumped, under set_mu, when active changes */

static _Thread_local struct key_set *mine; /* this thread's reference */
static _Thread_local unsigned mine_generation;

/* A set of copies of the n keys, with one reference; NULL when out of
 * memory. */
static struct key_set *set_new(const struct api_key *keys, size_t n)
{
    struct key_set *s = calloc(1, sizeof *s + n * sizeof s->keys[0]);

    if (s == NULL)
        return NULL;
    atomic_init(&s->refs, 1);
    s->count = n;
    for (size_t i = 0; i < n; i++) {
        struct api_key *k = &s->keys[i];

        memcpy(k->name, keys[i].name, sizeof k->name);
        k->name[API_KEY_NAME_MAX] = '\0';
        k->role = keys[i].role;
        memcpy(k->ns, keys[i].ns, sizeof k->ns);
        k->ns[NAMESPACE_MAX] = '\0';
        k->key_len = keys[i].key_len;
        memcpy(k->key, keys[i].key, k->key_len); /* the rest stays zero */
    }
    return s;
}

static void set_unref(struct key_set *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    explicit_bzero(s->keys, s->count * sizeof s->keys[0]);
    free(s);
}

/* The set this thread checks against: its own reference, moved to the
 * active set when a replacement has happened since it last looked. */
static const struct key_set *current(void)
{
    struct key_set *old = mine;

    if (old != NULL &&
        atomic_load_explicit(&generation, memory_order_acquire) ==
            mine_generation)
        return old;
    pthread_mutex_lock(&set_mu);
    mine = active;
    if (mine != NULL)
        atomic_fetch_add(&mine->refs, 1);
    mine_generation = atomic_load(&generation);
    pthread_mutex_unlock(&set_mu);
    set_unref(old);
    return mine;
}

int auth_init(const struct api_key *keys, size_t n)
{
    if (n == 0)
        return 0;
    active = set_new(keys, n);
    if (active == NULL)
        return -1;
    enabled = true;
    return 0;
}

bool auth_enabled(void)
{
    return enabled;
}

int auth_replace(const struct api_key *keys, size_t n)
{
    struct key_set *fresh, *old;

    if (!enabled || n == 0)
        return -1;
    fresh = set_new(keys, n);
    if (fresh == NULL)
        return -1;
    pthread_mutex_lock(&set_mu);
    old = active;
    active = fresh;
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_mutex_unlock(&set_mu);
    set_unref(old);
    return 0;
}

bool auth_identify(const char *header, struct api_identity *who)
{
    char given[API_KEY_MAX + 1] = {0};
    const struct key_set *set;
    size_t len, match = 0;
    bool found = false;

    if (!enabled || header == NULL || strncasecmp(header, "Bearer ", 7) != 0)
        return false;
    header += 7;
    while (*header == ' ')
        header++;
    len = strlen(header);
    if (len > API_KEY_MAX)
        return false;
    memcpy(given, header, len);
    set = current();
    if (set == NULL)
        return false;
    /* Every key is compared, whichever matches. */
    for (size_t i = 0; i < set->count; i++) {
        const struct api_key *k = &set->keys[i];
        bool same =
            secret_equal(given, k->key, sizeof given) && len == k->key_len;

        match = same ? i : match;
        found |= same;
    }
    if (!found)
        return false;
    memcpy(who->name, set->keys[match].name, sizeof who->name);
    who->role = set->keys[match].role;
    memcpy(who->ns, set->keys[match].ns, sizeof who->ns);
    return true;
}

bool auth_role_allows(enum api_role role, const char *route_method,
                      bool admin_only)
{
    switch (role) {
    case API_ROLE_ADMIN:
        return true;
    case API_ROLE_CLIENT:
        return !admin_only;
    case API_ROLE_READ:
        return !admin_only && strcmp(route_method, "GET") == 0;
    }
    return false;
}

void auth_thread_done(void)
{
    set_unref(mine);
    mine = NULL;
    mine_generation = 0;
}

void auth_free(void)
{
    struct key_set *old;

    pthread_mutex_lock(&set_mu);
    old = active;
    active = NULL;
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_mutex_unlock(&set_mu);
    set_unref(old);
    auth_thread_done();
    enabled = false;
}
