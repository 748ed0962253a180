/* test_readme.c -- README's curl examples, run as written: every "$ curl"
 * line of the "## The API" section (with its continuation lines) is run by
 * sh against a fresh service, in order, and its answer is compared with the
 * JSON line README prints under it: the same members, the same values
 * except where a value is the server's to choose (token, fence, remaining
 * TTLs and times held or waited), and then of the same type; arrays
 * element by element. "$ TOKEN=..." takes the token the last
 * answer carried, as README tells the reader to do. README.md is read from
 * the working directory (the repository root under tests/run), or from
 * $LOCKSERVICE_README. Then the curl (sh) and Python programs of "Calling it
 * from your language" run as written, against the same service, and must
 * end as README says. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXAMPLES_MAX 64
#define TEXT_MAX 2048

static struct redis_proc redis;
static struct svc_proc svc;

struct example {
    char cmd[TEXT_MAX];    /* the shell command, continuation lines joined */
    char expect[TEXT_MAX]; /* the answer README shows, or "" */
    int line;              /* where it starts in README.md */
};

static struct example examples[EXAMPLES_MAX];
static int n_examples;

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void chomp(char *s)
{
    s[strcspn(s, "\n")] = '\0';
}

/* Appends src to dst (size TEXT_MAX); false when it does not fit. */
static bool append(char *dst, const char *src)
{
    size_t n = strlen(dst), m = strlen(src);
    if (n + m + 1 > TEXT_MAX)
        return false;
    memcpy(dst + n, src, m + 1);
    return true;
}

/* Reads the "$ " commands of the API section and the lines under them. */
static bool parse_readme(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[TEXT_MAX];
    bool in_api = false, continued = false;
    struct example *cur = NULL;
    int lineno = 0;

    if (f == NULL)
        return false;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        chomp(line);
        if (starts_with(line, "## ")) {
            in_api = strcmp(line, "## The API") == 0;
            cur = NULL;
            continue;
        }
        if (!in_api)
            continue;
        if (continued && cur) {
            const char *p = line + strspn(line, " ");
            append(cur->cmd, " ");
            append(cur->cmd, p);
        } else if (starts_with(line, "    $ ")) {
            if (n_examples == EXAMPLES_MAX)
                break;
            cur = &examples[n_examples++];
            memset(cur, 0, sizeof *cur);
            cur->line = lineno;
            append(cur->cmd, line + 6);
        } else if (cur && starts_with(line, "    {") && !cur->expect[0]) {
            append(cur->expect, line + 4);
            continue;
        } else if (!starts_with(line, "    ")) {
            cur = NULL;
        }
        continued = cur && line[0] && line[strlen(line) - 1] == '\\';
        if (continued)
            cur->cmd[strlen(cur->cmd) - 1] = '\0'; /* drop the backslash */
    }
    fclose(f);
    return n_examples > 0;
}

/* Replaces every "localhost:8080" in src with host:port. */
static void retarget(char *dst, size_t len, const char *src, int port)
{
    const char *from = "localhost:8080";
    size_t used = 0;
    while (*src && used + 32 < len) {
        if (starts_with(src, from)) {
            used +=
                (size_t)snprintf(dst + used, len - used, "127.0.0.1:%d", port);
            src += strlen(from);
        } else {
            dst[used++] = *src++;
        }
    }
    dst[used] = '\0';
}

/* Runs cmd with sh, TOKEN in its environment; returns its stdout. */
static char *run_shell(const char *cmd, const char *token, int *status)
{
    char *buf = malloc(1 << 20);
    size_t len = 0, n;
    FILE *p;

    setenv("TOKEN", token, 1);
    p = popen(cmd, "r");
    if (p == NULL) {
        free(buf);
        return NULL;
    }
    while ((n = fread(buf + len, 1, (1 << 20) - 1 - len, p)) > 0)
        len += n;
    buf[len] = '\0';
    *status = pclose(p);
    return buf;
}

/* Members whose values the server chooses: compared by type only. In a
 * status (and the holders it lists) the times count. /readyz's "redis" is
 * the deployment's Redis address. */
static bool server_chosen(const char *key, bool status)
{
    static const char *const keys[] = {"token", "fence", "retry_after_ms",
                                       "redis", NULL};
    for (int i = 0; keys[i]; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    /* A remaining TTL (status) counts down; a granted one is exact. */
    return status &&
           (strcmp(key, "ttl_ms") == 0 || strcmp(key, "held_ms") == 0 ||
            strcmp(key, "waited_ms") == 0);
}

static bool same_shape_in(const json_t *want, const json_t *got, char *why,
                          size_t whylen, bool status);

/* Compares array members element by element, objects by their shape. */
static bool same_elements(const char *key, const json_t *want,
                          const json_t *got, char *why, size_t whylen,
                          bool status)
{
    if (json_array_size(want) != json_array_size(got)) {
        snprintf(why, whylen, "'%s' has %zu elements, README shows %zu", key,
                 json_array_size(got), json_array_size(want));
        return false;
    }
    for (size_t i = 0; i < json_array_size(want); i++) {
        const json_t *w = json_array_get(want, i);
        const json_t *g = json_array_get(got, i);
        bool same = json_is_object(w) ? same_shape_in(w, g, why, whylen, status)
                                      : json_equal((json_t *)w, (json_t *)g);
        if (!same) {
            if (!json_is_object(w))
                snprintf(why, whylen, "'%s'[%zu] differs", key, i);
            return false;
        }
    }
    return true;
}

/* Compares an answer with README's line; describes the first difference.
 * A status, or a listing of statuses, counts its times down. */
static bool same_shape(const json_t *want, const json_t *got, char *why,
                       size_t whylen)
{
    return same_shape_in(want, got, why, whylen,
                         json_object_get(want, "held") != NULL ||
                             json_object_get(want, "holders") != NULL ||
                             json_object_get(want, "locks") != NULL ||
                             json_object_get(want, "semaphores") != NULL);
}

static bool same_shape_in(const json_t *want, const json_t *got, char *why,
                          size_t whylen, bool status)
{
    const char *key;
    json_t *w;

    if (!json_is_object(got)) {
        snprintf(why, whylen, "the answer is not a JSON object");
        return false;
    }
    if (json_object_size(want) != json_object_size(got)) {
        snprintf(why, whylen, "%zu members, README shows %zu",
                 json_object_size(got), json_object_size(want));
        return false;
    }
    json_object_foreach((json_t *)want, key, w)
    {
        json_t *g = json_object_get(got, key);
        if (g == NULL) {
            snprintf(why, whylen, "no member '%s'", key);
            return false;
        }
        if (json_typeof(g) != json_typeof(w) &&
            !(json_is_boolean(g) && json_is_boolean(w))) {
            snprintf(why, whylen, "'%s' has another type", key);
            return false;
        }
        if (strcmp(key, "token") == 0 && !token_like(json_string_value(g))) {
            snprintf(why, whylen, "'token' is not 32 hex digits");
            return false;
        }
        if (json_is_array(w)) {
            if (!same_elements(key, w, g, why, whylen, status))
                return false;
            continue;
        }
        if (!server_chosen(key, status) && !json_equal(w, (json_t *)g)) {
            char *a = json_dumps(g, JSON_ENCODE_ANY);
            char *b = json_dumps(w, JSON_ENCODE_ANY);
            snprintf(why, whylen, "'%s' is %s, README shows %s", key,
                     a ? a : "?", b ? b : "?");
            free(a);
            free(b);
            return false;
        }
    }
    return true;
}

static void run_examples(void)
{
    char token[64] = "", last_token[64] = "";
    char cmd[TEXT_MAX + 64], why[256];

    for (int i = 0; i < n_examples; i++) {
        struct example *e = &examples[i];
        int status = 0;

        if (starts_with(e->cmd, "TOKEN=")) {
            snprintf(token, sizeof token, "%s", last_token);
            t_ok(token_like(token),
                 "README:%d: TOKEN= takes the token the acquire returned",
                 e->line);
            continue;
        }
        if (!starts_with(e->cmd, "curl ")) {
            t_ok(false, "README:%d: an example that is not curl: %s", e->line,
                 e->cmd);
            continue;
        }
        retarget(cmd, sizeof cmd, e->cmd, svc.port);
        char *out = run_shell(cmd, token, &status);
        if (!t_ok(out != NULL && status == 0 && out[0] != '\0',
                  "README:%d: %.60s%s runs and answers (exit %d)", e->line,
                  e->cmd, strlen(e->cmd) > 60 ? "..." : "", status)) {
            free(out);
            continue;
        }
        json_error_t err;
        json_t *got = json_loads(out, JSON_DECODE_ANY, &err);
        const char *t = json_string_value(json_object_get(got, "token"));
        if (t)
            snprintf(last_token, sizeof last_token, "%s", t);
        if (e->expect[0]) {
            /* README elides repeated tokens as "1c4e…": any token will do. */
            char expect[TEXT_MAX];
            retarget(expect, sizeof expect, e->expect, svc.port);
            json_t *want = json_loads(expect, 0, &err);
            bool ok = want != NULL && same_shape(want, got, why, sizeof why);
            t_ok(ok, "README:%d:   answers as README shows%s%s", e->line,
                 ok ? "" : ": ",
                 ok ? "" : (want ? why : "README's line is not JSON"));
            if (!ok)
                t_diag("got: %.300s", out);
            json_decref(want);
        } else if (strstr(e->cmd, "acquire")) {
            /* The waiting acquire: README says it ends with the 409 above
             * while the lock stays held. */
            t_ok(got && json_is_string(json_object_get(got, "code")) &&
                     strcmp(json_string_value(json_object_get(got, "code")),
                            "lock_held") == 0,
                 "README:%d:   the wait ends with 409 lock_held", e->line);
        }
        json_decref(got);
        free(out);
    }
}

/* The body of the first fenced block opening with "```lang" after the line
 * heading, malloc'd, or NULL. */
static char *code_block(const char *path, const char *heading, const char *lang)
{
    FILE *f = fopen(path, "r");
    char line[TEXT_MAX], open[32];
    size_t cap = 1 << 16, len = 0;
    char *out;
    int state = 0; /* 0: before heading, 1: before block, 2: in block */

    if (f == NULL)
        return NULL;
    out = calloc(1, cap);
    snprintf(open, sizeof open, "```%s", lang);
    while (fgets(line, sizeof line, f)) {
        if (state == 0 && strncmp(line, heading, strlen(heading)) == 0 &&
            line[strlen(heading)] == '\n')
            state = 1;
        else if (state == 1 && strncmp(line, open, strlen(open)) == 0)
            state = 2;
        else if (state == 2 && starts_with(line, "```"))
            break;
        else if (state == 2 && len + strlen(line) + 1 < cap) {
            memcpy(out + len, line, strlen(line) + 1);
            len += strlen(line);
        }
    }
    fclose(f);
    if (state != 2 || len == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* This run's own directory for the programs and Go's caches (runs of the
 * suite may overlap). */
static char workdir[] = "/tmp/lockservice-readme.XXXXXX";

/* Writes text to a file in workdir, with every "http://localhost:8080"
 * pointed at the service; returns its path. */
static const char *program_file(const char *text, const char *name)
{
    static char path[256];
    char *where = malloc(strlen(text) * 2 + 64);
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", workdir, name);
    retarget(where, strlen(text) * 2 + 64, text, svc.port);
    f = fopen(path, "w");
    if (f) {
        fputs(where, f);
        fclose(f);
    }
    free(where);
    return f ? path : NULL;
}

/* A program README shows under heading, run as written by interp: it must
 * exit 0 and print every string of want (NULL-terminated), and not unwanted
 * (or NULL). */
static void run_program(const char *readme, const char *heading,
                        const char *lang, const char *interp,
                        const char *const *want, const char *unwanted,
                        const char *desc)
{
    char cmd[512], file[64];
    int status = -1;
    char *text = code_block(readme, heading, lang), *out;
    const char *path;
    bool ok;

    snprintf(file, sizeof file, "readme.%s", lang);
    path = text ? program_file(text, file) : NULL;
    free(text);
    if (!t_ok(path != NULL, "README has a %s program under %s", lang, heading))
        return;
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", interp, path);
    out = run_shell(cmd, "", &status);
    ok = out != NULL && status == 0 && (!unwanted || !strstr(out, unwanted));
    for (int i = 0; ok && want[i]; i++)
        ok = strstr(out, want[i]) != NULL;
    t_ok(ok, "README's %s program %s (exit %d)", lang, desc, status);
    if (!ok)
        t_diag("output: %.500s", out ? out : "(none)");
    free(out);
    unlink(path);
}

static void run_programs(const char *readme)
{
    const char *curl_want[] = {
        "{\"name\":\"orders\",\"released\":true,\"count\":0}",
        "{\"name\":\"orders\",\"held\":false}", NULL};
    const char *py_want[] = {"holding orders with fence",
                             "step 3 - write it with fence", "released\n",
                             NULL};

    if (mkdtemp(workdir) == NULL) {
        t_ok(false, "a temporary directory for README's programs");
        return;
    }
    run_program(readme, "### curl", "sh", "sh", curl_want, NULL,
                "acquires, renews, releases and finds the lock free");
    run_program(readme, "### Python (standard library only)", "python",
                "python3", py_want, "release:",
                "holds the lock past its TTL by renewing, then releases it");

    /* Go is big to install: CI has it (scripts/deps.sh ci); elsewhere this
     * one is skipped when there is no go. */
    const char *go_want[] = {"holding orders with fence",
                             "step 3 - write it with fence",
                             "released, holds left: 0", NULL};
    char interp[256], rm[160];
    if (system("command -v go >/dev/null 2>&1") != 0) {
        t_skip("go is not installed", "README's go program");
    } else {
        /* Go's caches in workdir, not the user's ~/.cache. */
        snprintf(interp, sizeof interp, "GOCACHE=%s/cache GOPATH=%s go run",
                 workdir, workdir);
        run_program(readme, "### Go (standard library only)", "go", interp,
                    go_want, "release:",
                    "holds the lock past its TTL by renewing, then releases "
                    "it");
    }
    snprintf(rm, sizeof rm, "chmod -R u+w %s; rm -rf %s", workdir, workdir);
    if (system(rm) != 0)
        t_diag("could not remove %s", workdir);
}

int main(void)
{
    const char *path = getenv("LOCKSERVICE_README");
    if (path == NULL || !*path)
        path = "README.md";
    bool parsed = parse_readme(path);
    if (!t_ok(parsed, "%s has examples in \"## The API\" (%d)", path,
              n_examples))
        return t_done();
    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, NULL) != 0) {
        t_ok(false, "start redis-server and lockservice");
        return t_done();
    }
    run_examples();
    /* The examples leave "orders" held (README releases one of two holds);
     * the programs below start from a free lock, as a reader's would.
     * v2 keeps the lease in <prefix>{<name>}:lock (v1: <prefix>lock:<name>);
     * the fence key stays, so fences keep increasing. */
    char *out = redis_cli(&redis, "DEL lockservice:{orders}:lock");
    free(out);
    run_programs(path);
    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
