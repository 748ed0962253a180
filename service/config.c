/* config.c -- flags, environment and defaults as rows; see config.h.
 *
 * Adding a setting: add a member to struct config and one row to
 * config_rows[] below. A row of an existing type needs nothing else: the
 * getopt table, the environment, the default, --help and the range check
 * all come from it. A setting with its own syntax gets a CONFIG_CUSTOM row
 * and a parse function; one that names a file to read gets a load function,
 * run once every flag and variable is applied. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "version.h"

#define ENV_PREFIX "LOCKSERVICE_"
#define ENV_PREFIX_LEN (sizeof ENV_PREFIX - 1)

/* Formats into err and replaces control characters, so that a value with a
 * newline in it still makes one line. */
static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *p = err; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* Parses a whole decimal integer in [min, max]. Returns 0 or -1. */
static int parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Copies src into dst of size dstlen; -1 if it does not fit. */
static int copy_str(char *dst, size_t dstlen, const char *src, size_t n)
{
    if (n >= dstlen)
        return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes the n bytes at s, in which %XX is the byte of hex value XX, into
 * out (outlen bytes with the NUL). Returns 0, or -1 with a reason naming
 * part ("password", ...) in err; the reason never quotes the text, which may
 * be a secret. %00 is refused: it would cut the value short. */
static int percent_decode(const char *s, size_t n, char *out, size_t outlen,
                          const char *part, char *err, size_t errlen)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;

            if (hi < 0 || lo < 0) {
                errf(err, errlen,
                     "bad percent escape in the %s ('%%' starts %%XX; "
                     "write '%%' itself as %%25)",
                     part);
                return -1;
            }
            c = hi * 16 + lo;
            if (c == 0) {
                errf(err, errlen, "%%00 in the %s", part);
                return -1;
            }
            i += 2;
        }
        if (k + 1 >= outlen) {
            errf(err, errlen, "%s longer than %zu bytes", part, outlen - 1);
            return -1;
        }
        out[k++] = (char)c;
    }
    out[k] = '\0';
    return 0;
}

int listen_addr_parse(const char *s, char *host, size_t hostlen, int *port,
                      bool *ipv6)
{
    const char *colon;
    int64_t p;

    if (s == NULL || *s == '\0')
        return -1;
    *ipv6 = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close == s + 1 || close[1] != ':')
            return -1;
        if (copy_str(host, hostlen, s + 1, (size_t)(close - s - 1)) < 0)
            return -1;
        *ipv6 = true;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return -1;
        if (colon == s) {
            if (copy_str(host, hostlen, "0.0.0.0", 7) < 0)
                return -1;
        } else if (copy_str(host, hostlen, s, (size_t)(colon - s)) < 0) {
            return -1;
        }
    }
    if (parse_int(colon + 1, 1, 65535, &p) < 0)
        return -1;
    *port = (int)p;
    return 0;
}

/* Parses the "db=N&password=P" query of a unix:// URL; values are
 * percent-decoded. */
static int parse_unix_query(const char *q, struct redis_url *out, char *err,
                            size_t errlen)
{
    while (*q != '\0') {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);

        if (strncmp(q, "db=", 3) == 0) {
            char num[16], why[64];
            int64_t db;

            if (percent_decode(q + 3, n - 3, num, sizeof num, "db", why,
                               sizeof why) < 0 ||
                parse_int(num, 0, 100000, &db) < 0) {
                errf(err, errlen, "db must be an integer 0..100000");
                return -1;
            }
            out->db = (int)db;
        } else if (strncmp(q, "password=", 9) == 0) {
            if (percent_decode(q + 9, n - 9, out->password,
                               sizeof out->password, "password", err,
                               errlen) < 0)
                return -1;
        } else {
            errf(err, errlen, "unknown query parameter (db, password)");
            return -1;
        }
        q += n;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* Parses one "host[:port]" or "[v6addr][:port]" of n bytes at s into a
 * (port default_port when none is written). Returns 0 or -1. */
static int parse_host_port(const char *s, size_t n, int default_port,
                           struct redis_addr *a, char *err, size_t errlen)
{
    const char *end = s + n, *colon;
    char num[16];
    int64_t v;

    a->port = default_port;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL || close == s + 1 ||
            copy_str(a->host, sizeof a->host, s + 1, (size_t)(close - s - 1)) <
                0 ||
            (close + 1 != end && close[1] != ':')) {
            errf(err, errlen, "bad IPv6 host");
            return -1;
        }
        colon = close + 1 != end ? close + 1 : NULL;
    } else {
        colon = memchr(s, ':', n);
        if (colon == s || n == 0 ||
            copy_str(a->host, sizeof a->host, s,
                     (size_t)((colon ? colon : end) - s)) < 0) {
            errf(err, errlen, "missing or too long host");
            return -1;
        }
    }
    if (colon != NULL) {
        if (copy_str(num, sizeof num, colon + 1, (size_t)(end - colon - 1)) <
                0 ||
            parse_int(num, 1, 65535, &v) < 0) {
            errf(err, errlen, "port must be 1..65535");
            return -1;
        }
        a->port = (int)v;
    }
    return 0;
}

/* "[[user]:password@]" at *p, up to the last '@' (none: no credentials);
 * *p is moved past it. */
static int parse_credentials(const char **p, struct redis_url *out, char *err,
                             size_t errlen)
{
    const char *at = strrchr(*p, '@'), *colon;

    if (at == NULL)
        return 0;
    colon = memchr(*p, ':', (size_t)(at - *p));
    if (colon == NULL) {
        errf(err, errlen, "credentials must be [user]:password@");
        return -1;
    }
    if (percent_decode(*p, (size_t)(colon - *p), out->user, sizeof out->user,
                       "user", err, errlen) < 0 ||
        percent_decode(colon + 1, (size_t)(at - colon - 1), out->password,
                       sizeof out->password, "password", err, errlen) < 0)
        return -1;
    *p = at + 1;
    return 0;
}

/* "host[:port][,host[:port]...]" from list to end into out->hosts. */
static int parse_hosts(const char *list, const char *end, int default_port,
                       struct redis_url *out, char *err, size_t errlen)
{
    while (list < end) {
        const char *comma = memchr(list, ',', (size_t)(end - list));
        const char *stop = comma ? comma : end;

        if (out->host_count == REDIS_HOSTS_MAX) {
            errf(err, errlen, "more than %d hosts", REDIS_HOSTS_MAX);
            return -1;
        }
        if ((comma != NULL && comma + 1 == end) ||
            parse_host_port(list, (size_t)(stop - list), default_port,
                            &out->hosts[out->host_count], err, errlen) < 0) {
            if (comma != NULL && comma + 1 == end)
                errf(err, errlen, "missing host after the last ','");
            return -1;
        }
        out->host_count++;
        list = comma ? comma + 1 : end;
    }
    return 0;
}

/* redis-sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER
 * [?db=N], p just past the scheme. The credentials are the master's. */
static int parse_sentinel_url(const char *p, struct redis_url *out, char *err,
                              size_t errlen)
{
    const char *slash, *q;
    size_t mlen;

    out->is_sentinel = true;
    out->port = 0;
    if (parse_credentials(&p, out, err, errlen) < 0)
        return -1;
    slash = strchr(p, '/');
    if (slash == NULL || slash == p) {
        errf(err, errlen,
             "expected redis-sentinel://host[:port][,host[:port]...]/MASTER");
        return -1;
    }
    if (parse_hosts(p, slash, 26379, out, err, errlen) < 0)
        return -1;
    q = strchr(slash, '?');
    mlen = q ? (size_t)(q - slash - 1) : strlen(slash + 1);
    if (mlen == 0 ||
        percent_decode(slash + 1, mlen, out->master, sizeof out->master,
                       "master name", err, errlen) < 0) {
        if (mlen == 0)
            errf(err, errlen, "missing master name after the sentinels");
        return -1;
    }
    if (q != NULL) {
        int64_t db;
        if (strncmp(q + 1, "db=", 3) != 0 ||
            parse_int(q + 4, 0, 100000, &db) < 0) {
            errf(err, errlen, "the only query parameter is db=0..100000");
            return -1;
        }
        out->db = (int)db;
    }
    return 0;
}

/* redis-cluster://[[user]:password@]host[:port][,host[:port]...], p just
 * past the scheme: the nodes to learn the slot map from (any of the
 * cluster's; one is enough). A cluster has database 0 only. */
static int parse_cluster_url(const char *p, struct redis_url *out, char *err,
                             size_t errlen)
{
    out->is_cluster = true;
    out->port = 0;
    if (parse_credentials(&p, out, err, errlen) < 0)
        return -1;
    if (*p == '\0' || strpbrk(p, "/?") != NULL) {
        errf(err, errlen,
             *p == '\0' ? "expected redis-cluster://host[:port][,host[:port]"
                          "...]"
                        : "redis-cluster:// takes no database, path or query "
                          "(a cluster has database 0 only)");
        return -1;
    }
    return parse_hosts(p, p + strlen(p), 6379, out, err, errlen);
}

/* The credentials end at the last '@' of the URL (host, port and db never
 * hold one), the user at the first ':' before it; both are then
 * percent-decoded, so any byte but NUL can be written. */
int redis_url_parse(const char *url, struct redis_url *out, char *err,
                    size_t errlen)
{
    const char *p, *at, *hostend, *slash;
    int64_t v;

    memset(out, 0, sizeof *out);
    out->port = 6379;
    if (url == NULL) {
        errf(err, errlen, "missing URL");
        return -1;
    }
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        const char *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);

        out->is_unix = true;
        out->port = 0;
        if (n < 2 || path[0] != '/') {
            errf(err, errlen, "unix URL needs an absolute path: unix:///path");
            return -1;
        }
        if (copy_str(out->host, sizeof out->host, path, n) < 0) {
            errf(err, errlen, "socket path too long");
            return -1;
        }
        return q ? parse_unix_query(q + 1, out, err, errlen) : 0;
    }
    if (strncmp(url, "redis-sentinel://", 17) == 0)
        return parse_sentinel_url(url + 17, out, err, errlen);
    if (strncmp(url, "redis-cluster://", 16) == 0)
        return parse_cluster_url(url + 16, out, err, errlen);
    if (strncmp(url, "redis://", 8) != 0) {
        errf(err, errlen,
             "expected redis://host[:port][/db], unix:///path, "
             "redis-sentinel://host:port[,...]/MASTER or "
             "redis-cluster://host:port[,...]");
        return -1;
    }
    p = url + 8;
    at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL) {
            errf(err, errlen, "credentials must be [user]:password@");
            return -1;
        }
        if (percent_decode(p, (size_t)(colon - p), out->user, sizeof out->user,
                           "user", err, errlen) < 0 ||
            percent_decode(colon + 1, (size_t)(at - colon - 1), out->password,
                           sizeof out->password, "password", err, errlen) < 0)
            return -1;
        p = at + 1;
    }
    slash = strchr(p, '/');
    hostend = slash ? slash : p + strlen(p);
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(hostend - p));
        if (close == NULL || close == p + 1) {
            errf(err, errlen, "bad IPv6 host");
            return -1;
        }
        if (copy_str(out->host, sizeof out->host, p + 1,
                     (size_t)(close - p - 1)) < 0) {
            errf(err, errlen, "host too long");
            return -1;
        }
        p = close + 1;
        if (p != hostend && *p != ':') {
            errf(err, errlen, "bad IPv6 host");
            return -1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(hostend - p));
        const char *end = colon ? colon : hostend;
        if (end == p) {
            errf(err, errlen, "missing host");
            return -1;
        }
        if (copy_str(out->host, sizeof out->host, p, (size_t)(end - p)) < 0) {
            errf(err, errlen, "host too long");
            return -1;
        }
        p = end;
    }
    if (*p == ':') {
        char num[16];
        if (copy_str(num, sizeof num, p + 1, (size_t)(hostend - p - 1)) < 0 ||
            parse_int(num, 1, 65535, &v) < 0) {
            errf(err, errlen, "port must be 1..65535");
            return -1;
        }
        out->port = (int)v;
    }
    if (slash != NULL && slash[1] != '\0') {
        if (parse_int(slash + 1, 0, 100000, &v) < 0) {
            errf(err, errlen, "db must be an integer 0..100000");
            return -1;
        }
        out->db = (int)v;
    }
    return 0;
}

static const char *const api_role_names[] = {
    [API_ROLE_CLIENT] = "client",
    [API_ROLE_READ] = "read",
    [API_ROLE_ADMIN] = "admin",
};

const char *api_role_name(enum api_role role)
{
    if ((unsigned)role >= sizeof api_role_names / sizeof api_role_names[0])
        return "?";
    return api_role_names[role];
}

/* True when the n bytes at s are a namespace: 1..NAMESPACE_MAX characters
 * of A-Z a-z 0-9 . _ - (no ':', and no '/', which joins it to a name). */
static bool namespace_valid(const char *s, size_t n)
{
    if (n == 0 || n > NAMESPACE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
            !(s[i] >= '0' && s[i] <= '9') && s[i] != '.' && s[i] != '_' &&
            s[i] != '-')
            return false;
    return true;
}

/* True when the n bytes at s hold a control character (a tab aside):
 * names go into log lines. */
static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return true;
    return false;
}

/* True when the word at p (up to end) is attribute attr: "attr=...". */
static bool is_attribute(const char *p, const char *end, const char *attr)
{
    size_t n = strlen(attr);

    return (size_t)(end - p) > n && memcmp(p, attr, n) == 0 && p[n] == '=';
}

/* Parses the attributes p..end of a keys-file line (words split by
 * whitespace, "name=N", "role=R", "namespace=P", each at most once) into
 * key. Returns 0 or -1 with a reason in err that names line lineno and
 * quotes nothing. */
static int key_attributes(const char *p, const char *end, struct api_key *key,
                          int lineno, char *err, size_t errlen)
{
    bool named = false, roled = false, spaced = false;

    while (p < end) {
        const char *w = p, *v;
        size_t vlen;

        while (p < end && !isspace((unsigned char)*p))
            p++;
        v = memchr(w, '=', (size_t)(p - w));
        if (v == NULL) {
            errf(err, errlen,
                 "line %d: after the key, expected name=, role= or "
                 "namespace=",
                 lineno);
            return -1;
        }
        v++;
        vlen = (size_t)(p - v);
        if (is_attribute(w, p, "name")) {
            if (named) {
                errf(err, errlen, "line %d: name= given twice", lineno);
                return -1;
            }
            if (vlen == 0 || vlen > API_KEY_NAME_MAX || has_control(v, vlen)) {
                errf(err, errlen,
                     "line %d: name= must be 1 to %d printable characters",
                     lineno, API_KEY_NAME_MAX);
                return -1;
            }
            memcpy(key->name, v, vlen);
            key->name[vlen] = '\0';
            named = true;
        } else if (is_attribute(w, p, "role")) {
            size_t r, nroles = sizeof api_role_names / sizeof api_role_names[0];
            if (roled) {
                errf(err, errlen, "line %d: role= given twice", lineno);
                return -1;
            }
            for (r = 0; r < nroles; r++)
                if (strlen(api_role_names[r]) == vlen &&
                    memcmp(api_role_names[r], v, vlen) == 0)
                    break;
            if (r == nroles) {
                errf(err, errlen,
                     "line %d: role= must be admin, client or read", lineno);
                return -1;
            }
            key->role = (enum api_role)r;
            roled = true;
        } else if (is_attribute(w, p, "namespace")) {
            if (spaced) {
                errf(err, errlen, "line %d: namespace= given twice", lineno);
                return -1;
            }
            if (!namespace_valid(v, vlen)) {
                errf(err, errlen,
                     "line %d: namespace= must be 1 to %d characters of A-Z "
                     "a-z 0-9 . _ -",
                     lineno, NAMESPACE_MAX);
                return -1;
            }
            memcpy(key->ns, v, vlen);
            key->ns[vlen] = '\0';
            spaced = true;
        } else {
            errf(err, errlen,
                 "line %d: unknown attribute; expected name=, role= or "
                 "namespace=",
                 lineno);
            return -1;
        }
        while (p < end && isspace((unsigned char)*p))
            p++;
    }
    return 0;
}

int api_keys_parse(const char *text, struct config *cfg, char *err,
                   size_t errlen)
{
    int lineno = 0;

    cfg->api_key_count = 0;
    while (*text != '\0') {
        const char *eol = strchr(text, '\n');
        size_t n = eol ? (size_t)(eol - text) : strlen(text);
        const char *p = text, *end = text + n, *k;
        struct api_key *key;

        lineno++;
        text += n + (eol ? 1 : 0);
        while (p < end && isspace((unsigned char)*p))
            p++;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        if (p == end || *p == '#')
            continue;
        if (cfg->api_key_count == API_KEYS_MAX) {
            errf(err, errlen, "line %d: more than %d keys", lineno,
                 API_KEYS_MAX);
            return -1;
        }
        key = &cfg->api_keys[cfg->api_key_count];
        memset(key, 0, sizeof *key);
        k = p;
        while (p < end && !isspace((unsigned char)*p)) {
            if (!isgraph((unsigned char)*p)) {
                errf(err, errlen, "line %d: key has a non-printable byte",
                     lineno);
                return -1;
            }
            p++;
        }
        if ((size_t)(p - k) < API_KEY_MIN || (size_t)(p - k) > API_KEY_MAX) {
            errf(err, errlen, "line %d: key must be %d..%d characters", lineno,
                 API_KEY_MIN, API_KEY_MAX);
            return -1;
        }
        for (size_t j = 0; j < cfg->api_key_count; j++)
            if (cfg->api_keys[j].key_len == (size_t)(p - k) &&
                memcmp(cfg->api_keys[j].key, k, (size_t)(p - k)) == 0) {
                errf(err, errlen, "line %d: duplicate key", lineno);
                return -1;
            }
        key->key_len = (size_t)(p - k);
        memcpy(key->key, k, key->key_len);
        key->key[key->key_len] = '\0';
        key->role = API_ROLE_CLIENT;
        while (p < end && isspace((unsigned char)*p))
            p++;
        /* Attributes when the first word is one; else the version 1
         * format, where the rest of the line is the name. */
        n = (size_t)(end - p);
        if (is_attribute(p, end, "name") || is_attribute(p, end, "role") ||
            is_attribute(p, end, "namespace")) {
            if (key_attributes(p, end, key, lineno, err, errlen) < 0)
                return -1;
        } else if (copy_str(key->name, sizeof key->name, p, n) < 0) {
            errf(err, errlen, "line %d: name longer than %d characters", lineno,
                 API_KEY_NAME_MAX);
            return -1;
        } else if (has_control(p, n)) {
            errf(err, errlen, "line %d: name has a control character", lineno);
            return -1;
        }
        if (key->name[0] == '\0')
            snprintf(key->name, sizeof key->name, "key%zu",
                     cfg->api_key_count + 1);
        cfg->api_key_count++;
    }
    if (cfg->api_key_count == 0) {
        errf(err, errlen, "no keys in file");
        return -1;
    }
    return 0;
}

/* The largest keys file read: API_KEYS_MAX lines of a key and every
 * attribute at its longest, and room for comments. */
#define API_KEYS_FILE_MAX                                                      \
    (2 * API_KEYS_MAX * (API_KEY_MAX + API_KEY_NAME_MAX + NAMESPACE_MAX + 32))

int api_keys_load(struct config *cfg, char *err, size_t errlen)
{
    char *buf = malloc(API_KEYS_FILE_MAX + 1), why[160];
    FILE *f = NULL;
    size_t n;
    int rc = -1;

    if (buf == NULL) {
        errf(err, errlen, "%s: out of memory", cfg->api_keys_file);
        goto out;
    }
    f = fopen(cfg->api_keys_file, "r");
    if (f == NULL) {
        errf(err, errlen, "cannot open %s: %s", cfg->api_keys_file,
             strerror(errno));
        goto out;
    }
    n = fread(buf, 1, API_KEYS_FILE_MAX, f);
    if (n == API_KEYS_FILE_MAX && fgetc(f) != EOF) {
        errf(err, errlen, "%s: file too large", cfg->api_keys_file);
        goto out;
    }
    buf[n] = '\0';
    if (memchr(buf, '\0', n) != NULL) {
        errf(err, errlen, "%s: file contains a NUL byte", cfg->api_keys_file);
        goto out;
    }
    if (api_keys_parse(buf, cfg, why, sizeof why) < 0) {
        errf(err, errlen, "%s: %s", cfg->api_keys_file, why);
        goto out;
    }
    rc = 0;
out:
    if (f != NULL)
        fclose(f);
    if (buf != NULL)
        explicit_bzero(buf, API_KEYS_FILE_MAX + 1); /* it held keys */
    free(buf);
    return rc;
}

/* Reads the file cfg->api_keys_file names into cfg->api_keys. */
static int load_api_keys(struct config *cfg, const char *what, char *err,
                         size_t errlen)
{
    char why[CONFIG_PATH_MAX + 192];

    if (api_keys_load(cfg, why, sizeof why) < 0) {
        errf(err, errlen, "%s: %s", what, why);
        return -1;
    }
    return 0;
}

/* Reads a password from the file at path into out (outlen bytes, at most
 * REDIS_SECRET_MAX). One trailing newline (LF or CRLF) is dropped; the rest
 * must be the password alone. Errors name the file, never its content. */
static int read_password_file(const char *path, char *out, size_t outlen,
                              const char *what, char *err, size_t errlen)
{
    char buf[REDIS_SECRET_MAX + 2]; /* the longest password and a CRLF */
    FILE *f = fopen(path, "r");
    size_t n;
    int rc = -1;

    if (f == NULL) {
        errf(err, errlen, "%s: cannot open %s: %s", what, path,
             strerror(errno));
        return -1;
    }
    n = fread(buf, 1, sizeof buf, f);
    if (ferror(f)) {
        errf(err, errlen, "%s: cannot read %s: %s", what, path,
             strerror(errno));
        goto out;
    }
    if (n > 0 && buf[n - 1] == '\n') {
        n--;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
    }
    if (n == 0) {
        errf(err, errlen, "%s: %s is empty", what, path);
        goto out;
    }
    if (n > outlen - 1 || n > REDIS_SECRET_MAX - 1) {
        errf(err, errlen, "%s: the password in %s is longer than %d bytes",
             what, path, REDIS_SECRET_MAX - 1);
        goto out;
    }
    if (memchr(buf, '\0', n) != NULL || memchr(buf, '\n', n) != NULL ||
        memchr(buf, '\r', n) != NULL) {
        errf(err, errlen,
             "%s: %s must hold the password alone on one line (no NUL, no "
             "second line)",
             what, path);
        goto out;
    }
    memset(out, 0, outlen);
    memcpy(out, buf, n);
    rc = 0;
out:
    fclose(f);
    explicit_bzero(buf, sizeof buf);
    return rc;
}

/* --redis-password-file: into cfg->redis.password, over any password the
 * URL gave. */
static int load_redis_password(struct config *cfg, const char *what, char *err,
                               size_t errlen)
{
    return read_password_file(cfg->redis_password_file, cfg->redis.password,
                              sizeof cfg->redis.password, what, err, errlen);
}

/* --sentinel-auth-file: into cfg->sentinel_password. */
static int load_sentinel_password(struct config *cfg, const char *what,
                                  char *err, size_t errlen)
{
    return read_password_file(cfg->sentinel_password_file,
                              cfg->sentinel_password,
                              sizeof cfg->sentinel_password, what, err, errlen);
}

/* ---- CONFIG_CUSTOM parsers ---- */

static int parse_listen(struct config *cfg, const char *val, char *why,
                        size_t whylen)
{
    if (listen_addr_parse(val, cfg->listen_host, sizeof cfg->listen_host,
                          &cfg->listen_port, &cfg->listen_ipv6) < 0) {
        errf(why, whylen, "'%s' is not HOST:PORT", val);
        return -1;
    }
    return 0;
}

static int parse_redis(struct config *cfg, const char *val, char *why,
                       size_t whylen)
{
    return redis_url_parse(val, &cfg->redis, why, whylen);
}

/* The default of --threads: the number of cores, within its range. */
static void default_threads(char *buf, size_t len)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    snprintf(buf, len, "%ld", cores < 1 ? 2 : cores > 256 ? 256 : cores);
}

static void print_version(FILE *out)
{
    fprintf(out, "lockservice %s\n", LOCKSERVICE_VERSION);
}

/* ---- The rows ---- */

#define MEMBER(m)                                                              \
    .offset = offsetof(struct config, m),                                      \
    .size = sizeof(((struct config *)0)->m)

/* A whole number in lo..hi. */
#define INT_ROW(flag_, env_, arg_, member, lo, hi, def_, help_)                \
    {                                                                          \
        .flag = flag_, .env = env_, .arg = arg_, .type = CONFIG_INT,           \
        MEMBER(member), .min = lo, .max = hi, .def = def_, .help = help_       \
    }

/* Text of lo..hi bytes. */
#define STRING_ROW(flag_, env_, arg_, member, lo, hi, def_, help_)             \
    {                                                                          \
        .flag = flag_, .env = env_, .arg = arg_, .type = CONFIG_STRING,        \
        MEMBER(member), .min = lo, .max = hi, .def = def_, .help = help_       \
    }

/* A path, unset by default, whose file load_ reads. */
#define FILE_ROW(flag_, env_, member, load_, help_)                            \
    {                                                                          \
        .flag = flag_, .env = env_, .arg = "PATH", .type = CONFIG_STRING,      \
        MEMBER(member), .min = 1,                                              \
        .max = sizeof(((struct config *)0)->member) - 1, .load = load_,        \
        .help = help_                                                          \
    }

/* On when the flag is given; env_ may be NULL. */
#define BOOL_ROW(flag_, env_, member, help_)                                   \
    {                                                                          \
        .flag = flag_, .env = env_, .type = CONFIG_BOOL, MEMBER(member),       \
        .def = "0", .help = help_                                              \
    }

#define CUSTOM_ROW(flag_, env_, arg_, parse_, def_, help_)                     \
    {                                                                          \
        .flag = flag_, .env = env_, .arg = arg_, .type = CONFIG_CUSTOM,        \
        .parse = parse_, .def = def_, .help = help_                            \
    }

#define EXIT_ROW(flag_, action_, help_)                                        \
    {                                                                          \
        .flag = flag_, .type = CONFIG_EXIT, .action = action_, .help = help_   \
    }

static const char *const log_level_names[] = {"error", "warn", "info", "debug",
                                              NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const redis_wait_policy_names[] = {"fail", "warn", NULL};

const struct config_row config_rows[] = {
    CUSTOM_ROW("--listen", "LOCKSERVICE_LISTEN", "HOST:PORT", parse_listen,
               "127.0.0.1:8080",
               "address to serve HTTP on; [::1]:8080 for IPv6"),
    CUSTOM_ROW("--redis", "LOCKSERVICE_REDIS_URL", "URL", parse_redis,
               "redis://127.0.0.1:6379",
               "redis://[[user]:password@]host[:port][/db], "
               "unix:///path[?db=N&password=P], "
               "redis-sentinel://[[user]:password@]HOSTS/MASTER (HOSTS: "
               "host[:port][,host[:port]...], the sentinels to ask for the "
               "master, port 26379 by default; the credentials are the "
               "master's; ?db=N may follow) or "
               "redis-cluster://[[user]:password@]HOSTS (nodes of a Redis "
               "Cluster to learn its slot map from, port 6379 by default; "
               "every name's scripts go to the master of its slot); in "
               "the user, the password "
               "and query values write '/' '@' ':' '%' as %2F %40 %3A %25"),
    FILE_ROW("--redis-password-file", "LOCKSERVICE_REDIS_PASSWORD_FILE",
             redis_password_file, load_redis_password,
             "read the Redis password from this file (one trailing newline "
             "dropped), which keeps it out of ps; it overrides a password "
             "in --redis"),
    FILE_ROW("--sentinel-auth-file", "LOCKSERVICE_SENTINEL_AUTH_FILE",
             sentinel_password_file, load_sentinel_password,
             "read the password of the sentinels themselves (their "
             "requirepass) from this file; without it the sentinels get no "
             "AUTH"),
    {.flag = "--threads",
     .env = "LOCKSERVICE_THREADS",
     .arg = "N",
     .type = CONFIG_INT,
     MEMBER(threads),
     .min = 1,
     .max = 256,
     .def = "cores",
     .default_fn = default_threads,
     .help = "HTTP worker threads, each with its own Redis connection"},
    STRING_ROW("--key-prefix", "LOCKSERVICE_KEY_PREFIX", "PREFIX", key_prefix,
               0, KEY_PREFIX_MAX, "lockservice:", "prefix of every Redis key"),
    INT_ROW("--max-ttl-ms", "LOCKSERVICE_MAX_TTL_MS", "MS", max_ttl_ms, 1,
            86400000, "3600000", "largest lease ttl_ms a client may ask for"),
    INT_ROW("--max-wait-ms", "LOCKSERVICE_MAX_WAIT_MS", "MS", max_wait_ms, 0,
            3600000, "60000", "largest wait_ms a client may ask for"),
    INT_ROW("--handoff-ms", "LOCKSERVICE_HANDOFF_MS", "MS", handoff_ms, 0,
            10000, "250",
            "how long a lock handed to the first waiter of its queue waits "
            "for that waiter to claim it; 0: the waiter gets its whole TTL "
            "at once (one that vanished then holds it until the TTL)"),
    INT_ROW("--lock-delay-ms", "LOCKSERVICE_LOCK_DELAY_MS", "MS", lock_delay_ms,
            0, 60000, "0",
            "default lock_delay_ms of an acquire: how long a name stays "
            "unavailable after a lease expired (not after a release)"),
    INT_ROW("--redis-timeout-ms", "LOCKSERVICE_REDIS_TIMEOUT_MS", "MS",
            redis_timeout_ms, 10, 60000, "1000",
            "Redis connect and command timeout; past it: 503"),
    INT_ROW("--redis-wait-replicas", "LOCKSERVICE_REDIS_WAIT_REPLICAS", "N",
            redis_wait_replicas, 0, 16, "0",
            "after each grant, renew and release, wait for N replicas to "
            "acknowledge it (WAIT, pipelined behind the script); 0: no WAIT"),
    INT_ROW("--redis-wait-timeout-ms", "LOCKSERVICE_REDIS_WAIT_TIMEOUT_MS",
            "MS", redis_wait_timeout_ms, 1, 59999, "100",
            "how long WAIT waits for the replicas; less than "
            "--redis-timeout-ms"),
    {.flag = "--redis-wait-policy",
     .env = "LOCKSERVICE_REDIS_WAIT_POLICY",
     .arg = "POLICY",
     .type = CONFIG_ENUM,
     MEMBER(redis_wait_policy),
     .names = redis_wait_policy_names,
     .def = "fail",
     .help = "when fewer replicas acknowledged: fail (a grant is released "
             "again; the request gets 503) or warn (served, and counted in "
             "lockservice_redis_wait_short_total)"},
    INT_ROW("--max-body-bytes", "LOCKSERVICE_MAX_BODY_BYTES", "N",
            max_body_bytes, 64, 1048576, "16384",
            "largest request body; past it: 413"),
    INT_ROW("--max-json-depth", "LOCKSERVICE_MAX_JSON_DEPTH", "N",
            max_json_depth, 1, 64, "8",
            "deepest JSON nesting accepted in a body"),
    INT_ROW("--max-connections", "LOCKSERVICE_MAX_CONNECTIONS", "N",
            max_connections, 1, 1000000, "16384",
            "concurrent HTTP connections, waiting ones included; past it "
            "new clients wait in the listen backlog"),
    INT_ROW("--idle-timeout-s", "LOCKSERVICE_IDLE_TIMEOUT_S", "S",
            idle_timeout_s, 1, 3600, "30",
            "close a connection idle this long, or whose client takes this "
            "long to send a whole request"),
    INT_ROW("--max-waiters", "LOCKSERVICE_MAX_WAITERS", "N", max_waiters, 0,
            1000000, "16384", "suspended waiters per instance; past it: 429"),
    INT_ROW("--max-hold-count", "LOCKSERVICE_MAX_HOLD_COUNT", "N",
            max_hold_count, 1, 1000000000, "1000",
            "reentrant holds of one lease; past it: 409 hold_limit"),
    INT_ROW("--max-permits", "LOCKSERVICE_MAX_PERMITS", "N", max_permits, 1,
            1000000, "1024", "largest limit of a semaphore"),
    INT_ROW("--shutdown-timeout-ms", "LOCKSERVICE_SHUTDOWN_TIMEOUT_MS", "MS",
            shutdown_timeout_ms, 0, 600000, "10000",
            "on SIGTERM/SIGINT, how long in-flight requests may finish"),
    FILE_ROW("--api-keys-file", "LOCKSERVICE_API_KEYS_FILE", api_keys_file,
             load_api_keys,
             "require Authorization: Bearer <key> on /v1 and /demo; one key "
             "(16..256 characters) per line, then name=N "
             "role=admin|client|read namespace=P (each optional; role "
             "client), or only a name; SIGHUP reads the file again"),
    BOOL_ROW("--demo", "LOCKSERVICE_DEMO", demo,
             "serve the inventory overselling demo under /demo"),
    {.flag = "--log-level",
     .env = "LOCKSERVICE_LOG_LEVEL",
     .arg = "LEVEL",
     .type = CONFIG_ENUM,
     MEMBER(log_level),
     .names = log_level_names,
     .def = "info",
     .help = "what to log; info adds one line per request"},
    {.flag = "--log-format",
     .env = "LOCKSERVICE_LOG_FORMAT",
     .arg = "FORMAT",
     .type = CONFIG_ENUM,
     MEMBER(log_format),
     .names = log_format_names,
     .def = "text",
     .help = "text (key=value) or json (one object per line)"},
    BOOL_ROW("--healthcheck", NULL, healthcheck,
             "probe GET /healthz on --listen and exit 0 if it answers 200, "
             "else 1"),
    EXIT_ROW("--help", config_print_help, "print this help and exit"),
    EXIT_ROW("--version", print_version, "print the version and exit"),
};

const size_t config_row_count = sizeof config_rows / sizeof config_rows[0];

#define ROW_COUNT (sizeof config_rows / sizeof config_rows[0])

/* Writes v into the 4- or 8-byte integer member at p (an int, unsigned,
 * enum, int64_t or size_t; every range is non-negative, so the bytes are
 * the same for the signed and the unsigned type). */
static void store_int(void *p, size_t size, int64_t v)
{
    if (size == sizeof(int32_t)) {
        int32_t n = (int32_t)v;
        memcpy(p, &n, sizeof n);
    } else {
        memcpy(p, &v, sizeof v);
    }
}

/* "error, warn, info or debug" */
static void join_names(const char *const *names, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; names[i] != NULL && n < len; i++) {
        const char *sep = i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ";
        int w = snprintf(buf + n, len - n, "%s%s", sep, names[i]);
        if (w < 0)
            return;
        n += (size_t)w;
    }
}

int config_row_apply(struct config *cfg, const struct config_row *row,
                     const char *val, const char *what, char *err,
                     size_t errlen)
{
    char *member = (char *)cfg + row->offset;
    char why[256];
    int64_t v;

    switch (row->type) {
    case CONFIG_INT:
        if (parse_int(val, row->min, row->max, &v) < 0) {
            errf(err, errlen,
                 "%s: '%s' is not an integer in %" PRId64 "..%" PRId64, what,
                 val ? val : "", row->min, row->max);
            return -1;
        }
        store_int(member, row->size, v);
        break;
    case CONFIG_STRING: {
        size_t n = val ? strlen(val) : 0;

        if ((int64_t)n < row->min) {
            if (n == 0)
                errf(err, errlen, "%s: must not be empty", what);
            else
                errf(err, errlen, "%s: shorter than %" PRId64 " characters",
                     what, row->min);
            return -1;
        }
        if ((int64_t)n > row->max) {
            errf(err, errlen, "%s: longer than %" PRId64 " characters", what,
                 row->max);
            return -1;
        }
        memcpy(member, val ? val : "", n);
        member[n] = '\0';
        break;
    }
    case CONFIG_BOOL: {
        bool b;

        if (val == NULL || strcmp(val, "1") == 0 || strcmp(val, "true") == 0)
            b = true;
        else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0 ||
                 val[0] == '\0')
            b = false;
        else {
            errf(err, errlen, "%s: '%s' is not 1 or 0", what, val);
            return -1;
        }
        memcpy(member, &b, sizeof b);
        break;
    }
    case CONFIG_ENUM: {
        size_t i;

        for (i = 0; row->names[i] != NULL; i++)
            if (val != NULL && strcmp(val, row->names[i]) == 0)
                break;
        if (row->names[i] == NULL) {
            join_names(row->names, why, sizeof why);
            errf(err, errlen, "%s: '%s' is not %s", what, val ? val : "", why);
            return -1;
        }
        store_int(member, row->size, (int64_t)i);
        break;
    }
    case CONFIG_CUSTOM:
        why[0] = '\0';
        if (row->parse(cfg, val, why, sizeof why) < 0) {
            errf(err, errlen, "%s: %s", what, why);
            return -1;
        }
        break;
    case CONFIG_EXIT:
        break;
    }
    return 0;
}

const char *config_row_default(const struct config_row *row, char *buf,
                               size_t len)
{
    if (row->type == CONFIG_EXIT)
        return NULL;
    if (row->default_fn != NULL) {
        row->default_fn(buf, len);
        return buf;
    }
    return row->def;
}

/* ---- --help ---- */

#define HELP_INDENT 30 /* where the help text starts */
#define HELP_WIDTH 79

/* What --help adds in parentheses after a row's help: its range or allowed
 * values, then its default. Empty when there is nothing to say. */
static void describe_values(const struct config_row *row, char *buf, size_t len)
{
    char names[128];

    buf[0] = '\0';
    switch (row->type) {
    case CONFIG_INT:
        snprintf(buf, len, "%" PRId64 "..%" PRId64 "; default\t%s", row->min,
                 row->max, row->def);
        break;
    case CONFIG_STRING:
        if (row->def != NULL)
            snprintf(buf, len, "up to %" PRId64 " characters; default\t%s",
                     row->max, row->def);
        break;
    case CONFIG_BOOL:
        if (row->env != NULL)
            snprintf(buf, len, "in the environment 1 or 0; default\t%s",
                     strcmp(row->def, "1") == 0 ? "on" : "off");
        break;
    case CONFIG_ENUM:
        join_names(row->names, names, sizeof names);
        snprintf(buf, len, "%s; default\t%s", names, row->def);
        break;
    case CONFIG_CUSTOM:
        snprintf(buf, len, "default\t%s", row->def);
        break;
    case CONFIG_EXIT:
        break;
    }
}

/* Prints "  left  text", text wrapped at spaces to HELP_WIDTH columns and
 * its further lines indented to HELP_INDENT. A tab is a space that does not
 * break ("default\t250"). */
static void print_wrapped(FILE *out, const char *left, const char *text)
{
    size_t col = HELP_INDENT;
    bool first = true;

    if (strlen(left) + 3 > HELP_INDENT)
        fprintf(out, "  %s\n%*s", left, HELP_INDENT, "");
    else
        fprintf(out, "  %-*s", HELP_INDENT - 2, left);
    while (*text != '\0') {
        size_t n = strcspn(text, " ");

        if (!first && col + 1 + n > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_INDENT, "");
            col = HELP_INDENT;
        } else if (!first) {
            fputc(' ', out);
            col++;
        }
        for (size_t k = 0; k < n; k++)
            fputc(text[k] == '\t' ? ' ' : text[k], out);
        col += n;
        first = false;
        text += n;
        while (*text == ' ')
            text++;
    }
    fputc('\n', out);
}

void config_print_help(FILE *out)
{
    fprintf(out, "Usage: lockservice [OPTION]...\n"
                 "HTTP/JSON lock service on Redis: leases, fencing tokens, "
                 "waiting.\n\n");
    for (size_t i = 0; i < config_row_count; i++) {
        const struct config_row *row = &config_rows[i];
        char left[64], values[256], text[768];

        snprintf(left, sizeof left, "%s%s%s", row->flag, row->arg ? " " : "",
                 row->arg ? row->arg : "");
        describe_values(row, values, sizeof values);
        snprintf(text, sizeof text, "%s%s%s%s", row->help,
                 values[0] ? " (" : "", values, values[0] ? ")" : "");
        print_wrapped(out, left, text);
        if (row->env != NULL)
            fprintf(out, "%*senv: %s\n", HELP_INDENT, "", row->env);
    }
    fprintf(out, "\nFlags win over environment variables. A bad value exits "
                 "with status 2.\n"
                 "A LOCKSERVICE_* variable that is no setting is a warning at "
                 "startup.\n");
}

/* ---- Unknown LOCKSERVICE_* variables ---- */

#define NAME_SHOWN_MAX 64 /* of an unknown variable's name, in a warning */

/* Edit distance between a[0..an) and b[0..bn), case-insensitive; both at
 * most NAME_SHOWN_MAX bytes. */
static size_t edit_distance(const char *a, size_t an, const char *b, size_t bn)
{
    size_t prev[NAME_SHOWN_MAX + 1], cur[NAME_SHOWN_MAX + 1];

    for (size_t j = 0; j <= bn; j++)
        prev[j] = j;
    for (size_t i = 1; i <= an; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= bn; j++) {
            size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
                                        tolower((unsigned char)b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] =
                sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (bn + 1) * sizeof prev[0]);
    }
    return prev[bn];
}

/* The setting's variable that the unknown name[0..n) was probably meant to
 * be: the nearest by edit distance after LOCKSERVICE_, if it is at most 2
 * edits away or one name starts with the other (LOCKSERVICE_REDIS for
 * LOCKSERVICE_REDIS_URL). NULL when none is close. */
static const char *closest_env(const char *name, size_t n)
{
    const char *s = name + ENV_PREFIX_LEN, *best = NULL;
    size_t sn = n - ENV_PREFIX_LEN, best_d = SIZE_MAX;

    if (sn > NAME_SHOWN_MAX)
        return NULL;
    for (size_t i = 0; i < ROW_COUNT; i++) {
        const char *env = config_rows[i].env, *t;
        size_t tn, d, shorter;

        if (env == NULL)
            continue;
        t = env + ENV_PREFIX_LEN;
        tn = strlen(t);
        d = edit_distance(s, sn, t, tn);
        shorter = sn < tn ? sn : tn;
        if ((d <= 2 || (shorter >= 4 && strncasecmp(s, t, shorter) == 0)) &&
            d < best_d) {
            best = env;
            best_d = d;
        }
    }
    return best;
}

/* Records a warning for each LOCKSERVICE_* variable in the environment
 * that no row reads. Only names go into warnings: a value may be a secret
 * (LOCKSERVICE_REDIS=redis://:password@host). */
static void warn_unknown_env(struct config *cfg)
{
    unsigned unknown = 0;

    for (char **e = environ; *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t n = eq ? (size_t)(eq - *e) : strlen(*e), i;
        const char *near;

        if (n < ENV_PREFIX_LEN || strncmp(*e, ENV_PREFIX, ENV_PREFIX_LEN) != 0)
            continue;
        for (i = 0; i < ROW_COUNT; i++)
            if (config_rows[i].env != NULL && strlen(config_rows[i].env) == n &&
                memcmp(config_rows[i].env, *e, n) == 0)
                break;
        if (i < ROW_COUNT)
            continue;
        unknown++;
        if (cfg->warning_count == CONFIG_WARNINGS_MAX)
            continue;
        near = closest_env(*e, n);
        errf(cfg->warnings[cfg->warning_count++], CONFIG_WARNING_LEN,
             "%.*s%s is no setting and is ignored%s%s%s",
             (int)(n > NAME_SHOWN_MAX ? NAME_SHOWN_MAX : n), *e,
             n > NAME_SHOWN_MAX ? "..." : "",
             near ? "; did you mean " : " (see --help)", near ? near : "",
             near ? "?" : "");
    }
    if (unknown > CONFIG_WARNINGS_MAX)
        errf(cfg->warnings[CONFIG_WARNINGS_MAX - 1], CONFIG_WARNING_LEN,
             "%u more LOCKSERVICE_* variables are no setting and are ignored",
             unknown - (CONFIG_WARNINGS_MAX - 1));
}

/* ---- config_parse ---- */

/* getopt_long's val for row i: past every character and '?'. */
#define OPT_VAL_BASE 256

enum config_result config_parse(struct config *cfg, int argc, char **argv,
                                char *err, size_t errlen)
{
    struct option longopts[ROW_COUNT + 1];
    const char *given_by[ROW_COUNT] = {NULL}; /* flag or variable */
    size_t i;
    int c;

    err[0] = '\0';
    memset(cfg, 0, sizeof *cfg);
    for (i = 0; i < ROW_COUNT; i++) {
        const struct config_row *row = &config_rows[i];
        char buf[32];
        const char *def = config_row_default(row, buf, sizeof buf);

        if (def != NULL &&
            config_row_apply(cfg, row, def, row->flag, err, errlen) < 0)
            return CONFIG_ERROR;
    }
    for (i = 0; i < ROW_COUNT; i++) {
        const struct config_row *row = &config_rows[i];
        const char *val = row->env ? getenv(row->env) : NULL;

        if (val == NULL)
            continue;
        if (config_row_apply(cfg, row, val, row->env, err, errlen) < 0)
            return CONFIG_ERROR;
        given_by[i] = row->env;
    }
    warn_unknown_env(cfg);

    for (i = 0; i < ROW_COUNT; i++) {
        longopts[i].name = config_rows[i].flag + 2;
        longopts[i].has_arg =
            config_rows[i].arg ? required_argument : no_argument;
        longopts[i].flag = NULL;
        longopts[i].val = OPT_VAL_BASE + (int)i;
    }
    memset(&longopts[ROW_COUNT], 0, sizeof longopts[ROW_COUNT]);
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        const struct config_row *row;

        if (c < OPT_VAL_BASE || c >= OPT_VAL_BASE + (int)ROW_COUNT) {
            /* Only the option's name: the value after '=' may be a secret. */
            const char *bad = argv[optind - 1];
            int n = (int)strcspn(bad, "=");

            if (c == '?' && optopt > ' ' && optopt < 0x7f)
                errf(err, errlen, "-%c: unknown option (see --help)", optopt);
            else if (c == ':' || (c == '?' && optopt != 0))
                errf(err, errlen, "%.*s: missing or unexpected value", n, bad);
            else
                errf(err, errlen, "%.*s: unknown option (see --help)", n, bad);
            return CONFIG_ERROR;
        }
        row = &config_rows[c - OPT_VAL_BASE];
        if (row->type == CONFIG_EXIT) {
            row->action(stdout);
            return CONFIG_EXIT_OK;
        }
        if (config_row_apply(cfg, row, row->arg ? optarg : NULL, row->flag, err,
                             errlen) < 0)
            return CONFIG_ERROR;
        given_by[c - OPT_VAL_BASE] = row->flag;
    }
    if (optind < argc) {
        errf(err, errlen, "%s: unexpected argument (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    for (i = 0; i < ROW_COUNT; i++)
        if (config_rows[i].load != NULL && given_by[i] != NULL &&
            config_rows[i].load(cfg, given_by[i], err, errlen) < 0)
            return CONFIG_ERROR;
    if (cfg->redis_wait_replicas > 0 &&
        cfg->redis_wait_timeout_ms >= cfg->redis_timeout_ms) {
        errf(err, errlen,
             "--redis-wait-timeout-ms (%lld) must be less than "
             "--redis-timeout-ms (%lld)",
             (long long)cfg->redis_wait_timeout_ms,
             (long long)cfg->redis_timeout_ms);
        return CONFIG_ERROR;
    }
    return CONFIG_OK;
}
