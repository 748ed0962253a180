/* fuzz_body.c -- libFuzzer target for request bodies: body_parse_object and
 * the typed field readers a handler applies to what it returns.
 *
 * Input: byte 0 picks the depth limit (1..16), the rest is the body. */
#include "config.h"
#include "request.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

static const char *const allowed[] = {"ttl_ms", "wait_ms", "owner", "token",
                                      NULL};

/* Nesting depth of a JSON value, the outermost container counting 1. */
static unsigned value_depth(json_t *v)
{
    unsigned deepest = 0, d;
    size_t i;
    const char *key;
    json_t *member;

    if (json_is_object(v)) {
        json_object_foreach(v, key, member)
        {
            d = value_depth(member);
            if (d > deepest)
                deepest = d;
        }
        return deepest + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach(v, i, member)
        {
            d = value_depth(member);
            if (d > deepest)
                deepest = d;
        }
        return deepest + 1;
    }
    return 0;
}

static void check_problem(const struct field_problem *prob, const char *key)
{
    CHECK(memchr(prob->detail, '\0', sizeof(prob->detail)) != NULL);
    CHECK(prob->error == FIELD_INVALID_FIELD);
    if (key != NULL && strlen(key) < 32 && key[0] != '\0')
        CHECK(strstr(prob->detail, key) != NULL);
}

/* Runs every reader over one member, as any handler might. */
static void read_member(json_t *obj, const char *key)
{
    struct field_problem prob;
    int64_t i = -1;
    const char *s = NULL;
    json_t *v = json_object_get(obj, key);

    memset(&prob, 0, sizeof(prob));
    if (field_int(obj, key, 30000, 1, 3600000, &i, &prob) == 0) {
        CHECK(v == NULL ? i == 30000 : json_is_integer(v));
        CHECK(i >= 1 && i <= 3600000);
    } else {
        CHECK(v != NULL);
        check_problem(&prob, key);
    }

    memset(&prob, 0, sizeof(prob));
    if (field_int(obj, key, 0, INT64_MIN, INT64_MAX, &i, &prob) == 0)
        CHECK(v == NULL || (json_is_integer(v) && json_integer_value(v) == i));
    else
        CHECK(v != NULL && !json_is_integer(v));

    memset(&prob, 0, sizeof(prob));
    if (field_string(obj, key, true, OWNER_MAX, &s, &prob) == 0) {
        CHECK(s != NULL && json_is_string(v));
        size_t chars = 0;
        for (const char *p = s; *p != '\0'; p++)
            chars += ((unsigned char)*p & 0xC0) != 0x80; /* UTF-8 starts */
        CHECK(chars <= OWNER_MAX);
        CHECK(strlen(s) == json_string_length(v));
        for (const char *p = s; *p != '\0'; p++)
            CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    } else {
        check_problem(&prob, key);
    }

    memset(&prob, 0, sizeof(prob));
    if (field_token(obj, key, false, &s, &prob) == 0)
        CHECK(s == NULL ? v == NULL : token_format_valid(s, strlen(s)));
    else
        check_problem(&prob, key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct field_problem prob;
    unsigned max_depth;
    const char *body;
    size_t len;
    json_t *obj;

    if (size == 0)
        return 0;
    max_depth = 1u + data[0] % 16u;
    body = (const char *)data + 1;
    len = size - 1;

    memset(&prob, 0x55, sizeof(prob));
    obj = body_parse_object(body, len, max_depth, &prob);
    if (obj == NULL) {
        CHECK(len > 0);
        /* invalid_field only for a number too big to parse. */
        CHECK(prob.error == FIELD_INVALID_JSON ||
              (prob.error == FIELD_INVALID_FIELD &&
               strstr(prob.detail, "out of range") != NULL));
        CHECK(memchr(prob.detail, '\0', sizeof(prob.detail)) != NULL);
        return 0;
    }
    CHECK(json_is_object(obj));
    CHECK(value_depth(obj) <= max_depth);
    CHECK(len == 0 || memchr(body, '\0', len) == NULL);

    /* What was accepted survives a strict round trip unchanged. */
    char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(text != NULL);
    json_error_t jerr;
    /* \u0000 inside strings is accepted (field_string refuses it). */
    json_t *again =
        json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    CHECK(again != NULL && json_equal(obj, again));
    json_decref(again);
    free(text);

    const char *key;
    json_t *member;
    bool all_known = true;
    json_object_foreach(obj, key, member)
    {
        bool known = false;
        (void)member;
        for (const char *const *a = allowed; *a != NULL; a++)
            known = known || strcmp(*a, key) == 0;
        all_known = all_known && known;
        read_member(obj, key);
    }
    for (const char *const *a = allowed; *a != NULL; a++)
        read_member(obj, *a);

    memset(&prob, 0, sizeof(prob));
    if (fields_known(obj, allowed, &prob) == 0) {
        CHECK(all_known);
    } else {
        CHECK(!all_known);
        check_problem(&prob, NULL);
    }
    json_decref(obj);
    return 0;
}
