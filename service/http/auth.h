/* auth.h -- API keys: the set requests are checked against, which key an
 * Authorization header carries, what its role may do, and replacing the set
 * while requests run (SIGHUP).
 *
 * The active set is immutable and reference-counted. Each worker thread
 * keeps a reference to the set it last used and looks at a generation
 * counter (one atomic load) before each check; only when a replacement has
 * bumped it does the thread take the mutex, move its reference to the new
 * set, and drop the old one, which is freed by whoever drops its last
 * reference (a worker that checks nothing keeps the set it last used until
 * its next check, or its end). A check never blocks on a reload, and no set
 * is freed while a thread may read it. A request keeps a copy of what it needs
 * of its key (struct api_identity), never a pointer into a set. */
#ifndef LOCKSERVICE_HTTP_AUTH_H
#define LOCKSERVICE_HTTP_AUTH_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>

/* What a request keeps of the key that admitted it; never the key. */
struct api_identity {
    char name[API_KEY_NAME_MAX + 1]; /* "": no key (keys off, open route) */
    enum api_role role;
    char ns[NAMESPACE_MAX + 1]; /* "": no namespace */
};

/* Installs the n keys (copied) as the set requests are checked against;
 * n == 0 turns keys off for the process's life (every route is open).
 * Call before the workers start. Returns 0, or -1 when out of memory. */
int auth_init(const struct api_key *keys, size_t n);

/* True when keys are on (auth_init had keys). */
bool auth_enabled(void);

/* Replaces the set (n >= 1 keys, copied) for every check from now on;
 * checks already made keep their result. Only when keys are on. Returns 0,
 * or -1 (out of memory, or keys off) and the old set stays. */
int auth_replace(const struct api_key *keys, size_t n);

/* Finds the key the value of an Authorization header carries ("Bearer
 * <key>", the scheme case-insensitive; header may be NULL), comparing the
 * given key in constant time with every key of the set. On a match copies
 * the key's name, role and namespace into *who and returns true. */
bool auth_identify(const char *header, struct api_identity *who);

/* Whether a key of role may use a route whose method is route_method
 * ("GET" routes also answer HEAD), admin_only when the route is flagged so:
 * read keys use GET routes only, client keys all but admin-only ones,
 * admin keys all. */
bool auth_role_allows(enum api_role role, const char *route_method,
                      bool admin_only);

/* Drops the calling thread's reference (a worker, as it ends). */
void auth_thread_done(void);

/* Drops the active set (at shutdown, once the workers are gone). */
void auth_free(void);

#endif
