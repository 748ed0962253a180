/* kinds.c -- the table of lock kinds and the building of their scripts. */
#include "kind.h"

#include "embedded.h"

#include <stdlib.h>
#include <string.h>

/* Every kind; a new kind is a row here and a file of its own. */
static const struct lock_kind *const kinds[] = {&lock_kind_exclusive,
                                                &lock_kind_semaphore};

#define KINDS (sizeof kinds / sizeof kinds[0])

/* The source Redis runs: the script's own "#!" line (it must come first),
 * base.lua, the kind's prelude, then the rest of the script. Allocated
 * once, for good. */
static int build(struct redis_script *s, const char *prelude)
{
    const char *body = s->src, *rest = body;
    size_t shebang = 0, baselen = strlen(embedded_base_lua),
           plen = strlen(prelude), blen;
    char *src;

    if (strncmp(body, "#!", 2) == 0) {
        rest = strchr(body, '\n');
        rest = rest ? rest + 1 : body + strlen(body);
        shebang = (size_t)(rest - body);
    }
    blen = strlen(rest);
    src = malloc(shebang + baselen + plen + blen + 1);
    if (src == NULL)
        return -1;
    memcpy(src, body, shebang);
    memcpy(src + shebang, embedded_base_lua, baselen);
    memcpy(src + shebang + baselen, prelude, plen);
    memcpy(src + shebang + baselen + plen, rest, blen + 1);
    s->src = src;
    s->len = shebang + baselen + plen + blen;
    return 0;
}

int lock_kinds_init(void)
{
    for (size_t k = 0; k < KINDS; k++)
        for (int op = 0; op < LOCK_OP_COUNT; op++) {
            struct redis_script *s = kinds[k]->scripts[op];
            if (build(s, kinds[k]->prelude) < 0 || redis_script_register(s) < 0)
                return -1;
        }
    return 0;
}

const struct lock_kind *lock_kind_of(const char *qname, const char **name)
{
    for (size_t k = 0; k < KINDS; k++) {
        size_t n = strlen(kinds[k]->name);
        if (strncmp(qname, kinds[k]->name, n) == 0 && qname[n] == ':') {
            *name = qname + n + 1;
            return kinds[k];
        }
    }
    return NULL;
}
