/* request.c -- body and path validation; see request.h. */
#include "request.h"

#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bool lock_name_valid(const char *name, size_t len)
{
    size_t i;

    if (len == 0 || len > LOCK_NAME_MAX)
        return false;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
                  c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool token_format_valid(const char *s, size_t len)
{
    size_t i;

    if (len != TOKEN_HEX_LEN)
        return false;
    for (i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void problem(struct field_problem *prob, enum field_error e,
                    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void problem(struct field_problem *prob, enum field_error e,
                    const char *fmt, ...)
{
    va_list ap;

    prob->error = e;
    va_start(ap, fmt);
    vsnprintf(prob->detail, sizeof prob->detail, fmt, ap);
    va_end(ap);
}

/* Deepest nesting of arrays and objects in a JSON text, counted outside
 * strings, so a hostile body is refused before the recursive parser sees it. */
static unsigned json_depth(const char *s, size_t len)
{
    unsigned depth = 0, max = 0;
    bool in_string = false, escaped = false;
    size_t i;

    for (i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return max;
}

json_t *body_parse_object(const char *body, size_t len, unsigned max_depth,
                          struct field_problem *prob)
{
    json_error_t jerr;
    json_t *root;

    prob->error = FIELD_OK;
    prob->detail[0] = '\0';
    if (len == 0)
        return json_object();
    if (memchr(body, '\0', len) != NULL) {
        problem(prob, FIELD_INVALID_JSON, "body contains a NUL byte");
        return NULL;
    }
    if (json_depth(body, len) > max_depth) {
        problem(prob, FIELD_INVALID_JSON, "body nests deeper than %u levels",
                max_depth);
        return NULL;
    }
    /* JSON_ALLOW_NUL: a \u0000 inside a string parses, and field_string()
     * then refuses it as a control character, naming the field. */
    root =
        json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (root == NULL && json_error_code(&jerr) == json_error_numeric_overflow) {
        problem(prob, FIELD_INVALID_FIELD,
                "a number is out of range (line %d, column %d)", jerr.line,
                jerr.column);
        return NULL;
    }
    if (root == NULL) {
        problem(prob, FIELD_INVALID_JSON, "body is not valid JSON: %s",
                jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        problem(prob, FIELD_INVALID_JSON, "body must be a JSON object");
        return NULL;
    }
    return root;
}

int field_int(json_t *obj, const char *key, int64_t dflt, int64_t min,
              int64_t max, int64_t *out, struct field_problem *prob)
{
    json_t *v = json_object_get(obj, key);
    json_int_t i;

    if (v == NULL) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v)) {
        problem(prob, FIELD_INVALID_FIELD,
                "%s must be an integer in %" PRId64 "..%" PRId64, key, min,
                max);
        return -1;
    }
    i = json_integer_value(v);
    if (i < min || i > max) {
        problem(prob, FIELD_INVALID_FIELD,
                "%s must be in %" PRId64 "..%" PRId64, key, min, max);
        return -1;
    }
    *out = i;
    return 0;
}

int query_int(const char *value, const char *key, int64_t dflt, int64_t min,
              int64_t max, int64_t *out, struct field_problem *prob)
{
    int64_t v = 0;
    size_t i;

    if (value == NULL) {
        *out = dflt;
        return 0;
    }
    /* At most 18 digits: no overflow, and beyond any range asked for. */
    for (i = 0; value[i] >= '0' && value[i] <= '9' && i < 18; i++)
        v = v * 10 + (value[i] - '0');
    if (i == 0 || value[i] != '\0' || (value[0] == '0' && i > 1) || v < min ||
        v > max) {
        problem(prob, FIELD_INVALID_FIELD,
                "query parameter %s must be an integer in %" PRId64
                "..%" PRId64,
                key, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* Characters (code points) in valid UTF-8: bytes that do not continue one. */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

int field_string(json_t *obj, const char *key, bool required, size_t max_len,
                 const char **out, struct field_problem *prob)
{
    json_t *v = json_object_get(obj, key);
    const char *s;
    size_t len, i;

    *out = NULL;
    if (v == NULL) {
        if (!required)
            return 0;
        problem(prob, FIELD_INVALID_FIELD, "%s is required", key);
        return -1;
    }
    if (!json_is_string(v)) {
        problem(prob, FIELD_INVALID_FIELD, "%s must be a string", key);
        return -1;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (utf8_chars(s, len) > max_len) {
        problem(prob, FIELD_INVALID_FIELD, "%s must be at most %zu characters",
                key, max_len);
        return -1;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            problem(prob, FIELD_INVALID_FIELD,
                    "%s must not contain control characters", key);
            return -1;
        }
    }
    *out = s;
    return 0;
}

int field_token(json_t *obj, const char *key, bool required, const char **out,
                struct field_problem *prob)
{
    const char *s;

    if (field_string(obj, key, required, SIZE_MAX, &s, prob) < 0)
        return -1;
    if (s != NULL && !token_format_valid(s, strlen(s))) {
        problem(prob, FIELD_INVALID_FIELD, "%s must be 32 lowercase hex digits",
                key);
        return -1;
    }
    *out = s;
    return 0;
}

int fields_known(json_t *obj, const char *const *allowed,
                 struct field_problem *prob)
{
    const char *key;
    json_t *v;

    json_object_foreach(obj, key, v)
    {
        const char *const *a;
        bool known = false;

        (void)v;
        for (a = allowed; *a != NULL; a++)
            if (strcmp(*a, key) == 0)
                known = true;
        if (!known) {
            char shown[48];
            size_t i;

            /* The key is client data: show a printable prefix only. */
            for (i = 0; key[i] != '\0' && i < sizeof shown - 1; i++)
                shown[i] = (key[i] >= 0x20 && key[i] < 0x7f) ? key[i] : '?';
            shown[i] = '\0';
            problem(prob, FIELD_INVALID_FIELD, "unknown field '%s'", shown);
            return -1;
        }
    }
    return 0;
}
