/* test_version.c -- one version everywhere. The file VERSION is the one
 * place it is written; `lockservice --version`, the startup log line, the
 * openapi.yaml in the tree and the one the service serves, and CHANGELOG.md
 * must all say the same. (The Debian package's version is checked where
 * the package is built: tests/package/run.) */
#include "harness.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole file at path, NUL-terminated (malloc'd, caller frees), or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f == NULL)
        return NULL;
    do {
        if (cap - len < 4096) {
            char *p = realloc(buf, cap + 65536);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
            cap += 65536;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* MAJOR.MINOR.PATCH, optionally -PRERELEASE of [0-9A-Za-z.-]. */
static bool semver(const char *v)
{
    int dots = 0;
    const char *p = v;

    for (; *p != '\0' && *p != '-'; p++) {
        if (*p == '.') {
            if (p == v || p[-1] == '.')
                return false;
            dots++;
        } else if (!isdigit((unsigned char)*p)) {
            return false;
        }
    }
    if (dots != 2 || p == v || p[-1] == '.')
        return false;
    if (*p == '-') {
        if (p[1] == '\0')
            return false;
        for (p++; *p != '\0'; p++)
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
                return false;
    }
    return true;
}

/* info.version of an OpenAPI document in YAML, copied into out ("" when
 * not found): the "version:" key among the children of the top-level
 * "info:" (the lines indented as its first one). */
static void openapi_version(const char *yaml, char *out, size_t len)
{
    const char *p;
    size_t indent;

    out[0] = '\0';
    if (strncmp(yaml, "info:\n", 6) == 0)
        p = yaml + 6;
    else if ((p = strstr(yaml, "\ninfo:\n")) != NULL)
        p += 7;
    else
        return;
    indent = strspn(p, " ");
    while (indent > 0 && strspn(p, " ") >= indent) {
        const char *key = p + indent;
        if (strncmp(key, "version:", 8) == 0) {
            key += 8 + strspn(key + 8, " \"'");
            size_t n = strcspn(key, " \"'\n");
            if (n < len) {
                memcpy(out, key, n);
                out[n] = '\0';
            }
            return;
        }
        p = strchr(p, '\n');
        if (p == NULL)
            return;
        p++;
    }
}

int main(void)
{
    static struct redis_proc redis;
    static struct svc_proc svc;
    char version[64] = "", want_line[128], got[64];
    char *file = slurp("VERSION"), *out = NULL, *text;
    struct http_resp r;

    if (file != NULL) {
        size_t n = strcspn(file, "\n");
        if (n < sizeof version && file[n] == '\n' && file[n + 1] == '\0') {
            memcpy(version, file, n);
            version[n] = '\0';
        }
    }
    free(file);
    if (!t_ok(semver(version),
              "VERSION holds one line, a semantic version (got '%s')", version))
        return t_done();

    const char *args[] = {"--version", NULL};
    int rc = svc_run(args, NULL, &out, NULL, 10000);
    snprintf(want_line, sizeof want_line, "lockservice %s\n", version);
    bool same = rc == 0 && out != NULL && strcmp(out, want_line) == 0;
    if (out != NULL)
        out[strcspn(out, "\n")] = '\0';
    t_ok(same,
         "lockservice --version prints 'lockservice %s' (exit %d, got '%s')",
         version, rc, out ? out : "");
    free(out);

    text = slurp("openapi.yaml");
    openapi_version(text ? text : "", got, sizeof got);
    t_ok(strcmp(got, version) == 0,
         "openapi.yaml's info.version is %s (got '%s')", version, got);
    free(text);

    text = slurp("CHANGELOG.md");
    t_ok(text != NULL && strstr(text, "\n## [Unreleased]") != NULL,
         "CHANGELOG.md has an Unreleased section");
    snprintf(want_line, sizeof want_line, "\n## [%s] - ", version);
    char unreleased[96];
    snprintf(unreleased, sizeof unreleased, "\nVersion %s ", version);
    t_ok(text != NULL && (strstr(text, want_line) != NULL ||
                          strstr(text, unreleased) != NULL),
         "CHANGELOG.md has a section for %s (released, or Unreleased "
         "naming it)",
         version);
    free(text);

    if (redis_start(&redis, NULL) != 0 || svc_start(&svc, &redis, NULL) != 0) {
        t_ok(false, "start redis-server and lockservice");
        return t_done();
    }
    http(&r, svc.url, "GET", "/openapi.yaml", NULL, NULL);
    openapi_version(r.body ? r.body : "", got, sizeof got);
    t_ok(r.status == 200 && strcmp(got, version) == 0,
         "GET /openapi.yaml serves info.version %s (status %ld, got '%s')",
         version, r.status, got);
    http_resp_free(&r);

    text = slurp(svc.log);
    snprintf(want_line, sizeof want_line, " info lockservice %s listening on ",
             version);
    t_ok(text != NULL && strstr(text, want_line) != NULL,
         "the startup log line names the version: '%s'", want_line + 1);
    free(text);

    svc_stop(&svc);
    redis_stop(&redis);
    return t_done();
}
