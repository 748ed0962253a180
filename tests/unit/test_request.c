/* test_request.c -- unit tests for service/request.c: lock names, token
 * format, body parsing and the typed field readers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "request.h"

#define DEPTH_DEFAULT 8

static bool name_ok(const char *s)
{
    return lock_name_valid(s, strlen(s));
}

static bool token_ok(const char *s)
{
    return token_format_valid(s, strlen(s));
}

/* Parses a NUL-terminated body with the default depth limit. */
static json_t *parse(const char *s, struct field_problem *prob)
{
    memset(prob, 0, sizeof(*prob));
    return body_parse_object(s, strlen(s), DEPTH_DEFAULT, prob);
}

/* Asserts that s is rejected as invalid_json. */
static void assert_invalid_json(const char *s, size_t len)
{
    struct field_problem prob;
    memset(&prob, 0, sizeof(prob));
    json_t *obj = body_parse_object(s, len, DEPTH_DEFAULT, &prob);
    if (obj != NULL) {
        print_error("accepted body: %.*s\n", (int)len, s);
        json_decref(obj);
        fail();
    }
    assert_int_equal(prob.error, FIELD_INVALID_JSON);
}

/* Parses s, which the test expects to be a valid object. */
static json_t *parse_ok(const char *s)
{
    struct field_problem prob;
    json_t *obj = parse(s, &prob);
    if (obj == NULL) {
        print_error("rejected body %s: %s\n", s, prob.detail);
        fail();
    }
    assert_true(json_is_object(obj));
    return obj;
}

/* "{"a":{"a":...{}...}}": a JSON value whose nesting depth is depth when
 * the outermost object counts as 1. Caller frees. */
static char *nested_objects(unsigned depth)
{
    size_t len = depth * 6 + 1;
    char *s = malloc(len);
    assert_non_null(s);
    size_t n = 0;
    for (unsigned i = 1; i < depth; i++) {
        memcpy(s + n, "{\"a\":", 5);
        n += 5;
    }
    s[n++] = '{';
    s[n++] = '}';
    for (unsigned i = 1; i < depth; i++)
        s[n++] = '}';
    s[n] = '\0';
    return s;
}

/* "{"a":[[...[]...]]}": an object holding arrays, total depth depth. */
static char *nested_arrays(unsigned depth)
{
    size_t len = depth * 2 + 8;
    char *s = malloc(len);
    assert_non_null(s);
    size_t n = 0;
    memcpy(s, "{\"a\":", 5);
    n = 5;
    for (unsigned i = 1; i < depth; i++)
        s[n++] = '[';
    for (unsigned i = 1; i < depth; i++)
        s[n++] = ']';
    s[n++] = '}';
    s[n] = '\0';
    return s;
}

/* ---- lock names ---- */

static void test_name_lengths(void **state)
{
    (void)state;
    char buf[LOCK_NAME_MAX + 2];

    assert_true(name_ok("a"));
    memset(buf, 'x', sizeof(buf));
    assert_true(lock_name_valid(buf, LOCK_NAME_MAX));
    assert_false(lock_name_valid(buf, LOCK_NAME_MAX + 1));
    assert_false(lock_name_valid(buf, 0));
    assert_false(lock_name_valid("", 0));
    assert_int_equal(LOCK_NAME_MAX, 128);
}

static void test_name_allowed_chars(void **state)
{
    (void)state;
    assert_true(name_ok("orders"));
    assert_true(name_ok("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    assert_true(name_ok("abcdefghijklmnopqrstuvwxyz"));
    assert_true(name_ok("0123456789"));
    assert_true(name_ok("inventory:sku-1.v2_b"));
    assert_true(name_ok("."));
    assert_true(name_ok(".."));
    assert_true(name_ok("_"));
    assert_true(name_ok(":"));
    assert_true(name_ok("-"));
}

/* Every byte outside A-Z a-z 0-9 . _ : - is rejected, alone and inside an
 * otherwise valid name. */
static void test_name_every_disallowed_byte(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        bool allowed = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                       (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                       c == ':' || c == '-';
        char one[1] = {(char)c};
        char mid[3] = {'a', (char)c, 'b'};
        if (lock_name_valid(one, 1) != allowed ||
            lock_name_valid(mid, 3) != allowed) {
            print_error("byte 0x%02x: expected %s\n", c,
                        allowed ? "accept" : "reject");
            fail();
        }
    }
}

static void test_name_rejects_path_and_encodings(void **state)
{
    (void)state;
    assert_false(name_ok("a/b"));
    assert_false(name_ok("/"));
    assert_false(name_ok("a%2Fb"));
    assert_false(name_ok("%41"));
    assert_false(name_ok("a b"));
    assert_false(name_ok(" a"));
    assert_false(name_ok("a\tb"));
    assert_false(name_ok("caf\xc3\xa9")); /* UTF-8 e-acute */
    assert_false(name_ok("\xe2\x80\x8b"
                         "a")); /* zero-width space */
    assert_false(name_ok("a?b"));
    assert_false(name_ok("a#b"));
    assert_false(name_ok("a\\b"));
    assert_false(name_ok("a+b"));
    /* A NUL inside the given length is a disallowed byte, not the end. */
    assert_false(lock_name_valid("ab\0cd", 5));
}

/* ---- tokens ---- */

static void test_token_format(void **state)
{
    (void)state;
    assert_true(token_ok("0123456789abcdef0123456789abcdef"));
    assert_true(token_ok("ffffffffffffffffffffffffffffffff"));
    assert_true(token_ok("00000000000000000000000000000000"));
    assert_false(token_ok("0123456789ABCDEF0123456789abcdef"));
    assert_false(token_ok("0123456789abcdef0123456789abcdeF"));
    assert_false(token_ok("0123456789abcdef0123456789abcde"));   /* 31 */
    assert_false(token_ok("0123456789abcdef0123456789abcdef0")); /* 33 */
    assert_false(token_ok("0123456789abcdef0123456789abcdeg"));
    assert_false(token_ok("0123456789abcdef0123456789abcde "));
    assert_false(token_ok("-123456789abcdef0123456789abcdef"));
    assert_false(token_ok("0x23456789abcdef0123456789abcdef"));
    assert_false(token_ok(""));
    assert_false(token_format_valid("0123456789abcdef\0"
                                    "123456789abcdef",
                                    32));
    assert_int_equal(TOKEN_HEX_LEN, 32);
}

/* Every non-hex-digit byte in every position of the token is rejected. */
static void test_token_every_byte(void **state)
{
    (void)state;
    char tok[32];
    for (int c = 0; c < 256; c++) {
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
        memset(tok, 'a', sizeof(tok));
        tok[c % 32] = (char)c;
        if (token_format_valid(tok, sizeof(tok)) != hex) {
            print_error("byte 0x%02x at %d\n", c, c % 32);
            fail();
        }
    }
}

/* ---- body parsing ---- */

static void test_body_empty_is_empty_object(void **state)
{
    (void)state;
    struct field_problem prob;
    json_t *obj = body_parse_object(NULL, 0, DEPTH_DEFAULT, &prob);
    assert_non_null(obj);
    assert_true(json_is_object(obj));
    assert_int_equal(json_object_size(obj), 0);
    json_decref(obj);

    obj = body_parse_object("", 0, DEPTH_DEFAULT, &prob);
    assert_non_null(obj);
    assert_int_equal(json_object_size(obj), 0);
    json_decref(obj);
}

static void test_body_object_ok(void **state)
{
    (void)state;
    json_t *obj = parse_ok("{\"ttl_ms\":1000,\"owner\":\"w1\"}");
    assert_int_equal(json_integer_value(json_object_get(obj, "ttl_ms")), 1000);
    assert_string_equal(json_string_value(json_object_get(obj, "owner")), "w1");
    json_decref(obj);

    obj = parse_ok("  \r\n\t{ }\n");
    assert_int_equal(json_object_size(obj), 0);
    json_decref(obj);

    obj = parse_ok("{\"owner\":\"caf\xc3\xa9\"}");
    json_decref(obj);
}

/* The body is len bytes and need not be NUL-terminated. */
static void test_body_not_nul_terminated(void **state)
{
    (void)state;
    const char buf[] = "{\"a\":1}garbage";
    struct field_problem prob;
    json_t *obj = body_parse_object(buf, 7, DEPTH_DEFAULT, &prob);
    assert_non_null(obj);
    assert_int_equal(json_integer_value(json_object_get(obj, "a")), 1);
    json_decref(obj);
    assert_invalid_json(buf, 6); /* "{"a":1" truncated */
}

static void test_body_not_an_object(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]",         "[1,2]",
        "\"str\"",    "42",
        "-1",         "1.5",
        "null",       "true",
        "false",      "{",
        "{\"a\":",    "{\"a\":1",
        "{\"a\" 1}",  "{\"a\":1,}",
        "{a:1}",      "{'a':1}",
        "garbage",    "{}{}",
        "{} x",       "{}}",
        " ",          "\n",
        "{\"a\":01}", "{\"a\":NaN}",
        "{\"a\":.5}", "{\"a\":\"\x01\"}",
        "/*c*/{}",    "\xef\xbb\xbf{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_invalid_json(bad[i], strlen(bad[i]));
}

static void test_body_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"owner\":\"\xff\"}",
        "{\"owner\":\"\xc3\"}",             /* truncated sequence */
        "{\"owner\":\"\xc0\xaf\"}",         /* overlong '/' */
        "{\"owner\":\"\xed\xa0\x80\"}",     /* UTF-16 surrogate */
        "{\"owner\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
        "{\"\xfe\":1}",
        "{\"owner\":\"\\ud800\"}", /* lone surrogate escape */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_invalid_json(bad[i], strlen(bad[i]));
}

static void test_body_nul_bytes(void **state)
{
    (void)state;
    const char raw_in_string[] = "{\"owner\":\"a\0b\"}";
    assert_invalid_json(raw_in_string, sizeof(raw_in_string) - 1);
    const char raw_after[] = "{}\0";
    assert_invalid_json(raw_after, sizeof(raw_after) - 1);
    const char raw_before[] = "\0{}";
    assert_invalid_json(raw_before, sizeof(raw_before) - 1);
    /* jansson 2.14 skips a NUL that directly follows a number or a
     * literal (its stream buffer uses NUL as "refill" after an unget), so
     * these parse unless the caller rejects NUL bytes itself. */
    const char after_number[] = "{\"ttl_ms\":1\0}";
    assert_invalid_json(after_number, sizeof(after_number) - 1);
    const char after_literal[] = "{\"demo\":true\0}";
    assert_invalid_json(after_literal, sizeof(after_literal) - 1);
    /* An escaped NUL inside a string value parses; field_string() refuses
     * it as a control character, so the error names the field. */
    const char *escaped = "{\"owner\":\"a\\u0000b\"}";
    struct field_problem prob;
    const char *out;
    json_t *obj =
        body_parse_object(escaped, strlen(escaped), DEPTH_DEFAULT, &prob);
    assert_non_null(obj);
    assert_int_equal(field_string(obj, "owner", false, 128, &out, &prob), -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    json_decref(obj);
    const char *escaped_key = "{\"a\\u0000\":1}";
    assert_invalid_json(escaped_key, strlen(escaped_key));
}

static void test_body_duplicate_keys(void **state)
{
    (void)state;
    const char *dup = "{\"ttl_ms\":1,\"ttl_ms\":2}";
    assert_invalid_json(dup, strlen(dup));
    const char *nested = "{\"a\":{\"b\":1,\"b\":1}}";
    assert_invalid_json(nested, strlen(nested));
    /* The same key written two ways is still a duplicate. */
    const char *escaped = "{\"a\":1,\"\\u0061\":2}";
    assert_invalid_json(escaped, strlen(escaped));
}

/* The outermost object is depth 1; a body exactly max_depth deep is
 * accepted, one level deeper is rejected, for objects and arrays alike. */
static void test_body_depth_limit(void **state)
{
    (void)state;
    struct field_problem prob;
    for (unsigned limit = 1; limit <= 10; limit++) {
        char *at = nested_objects(limit);
        char *over = nested_objects(limit + 1);
        json_t *obj = body_parse_object(at, strlen(at), limit, &prob);
        if (obj == NULL) {
            print_error("limit %u rejected %s: %s\n", limit, at, prob.detail);
            fail();
        }
        json_decref(obj);
        memset(&prob, 0, sizeof(prob));
        obj = body_parse_object(over, strlen(over), limit, &prob);
        if (obj != NULL) {
            print_error("limit %u accepted %s\n", limit, over);
            fail();
        }
        assert_int_equal(prob.error, FIELD_INVALID_JSON);
        free(at);
        free(over);
    }
    for (unsigned limit = 2; limit <= 10; limit++) {
        char *at = nested_arrays(limit);
        char *over = nested_arrays(limit + 1);
        json_t *obj = body_parse_object(at, strlen(at), limit, &prob);
        if (obj == NULL) {
            print_error("limit %u rejected %s: %s\n", limit, at, prob.detail);
            fail();
        }
        json_decref(obj);
        obj = body_parse_object(over, strlen(over), limit, &prob);
        if (obj != NULL) {
            print_error("limit %u accepted %s\n", limit, over);
            fail();
        }
        assert_int_equal(prob.error, FIELD_INVALID_JSON);
        free(at);
        free(over);
    }
}

/* Brackets inside strings are text, not nesting. */
static void test_body_depth_ignores_strings(void **state)
{
    (void)state;
    struct field_problem prob;
    const char *s = "{\"owner\":\"[[[[{{{{\\\"[[[[\"}";
    json_t *obj = body_parse_object(s, strlen(s), 1, &prob);
    if (obj == NULL) {
        print_error("rejected: %s\n", prob.detail);
        fail();
    }
    json_decref(obj);
}

/* Very deep input must be rejected cleanly, not overflow the stack. */
static void test_body_very_deep(void **state)
{
    (void)state;
    size_t n = 100000;
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, '[', n);
    s[n] = '\0';
    assert_invalid_json(s, n);
    for (size_t i = 0; i + 5 <= n; i += 5)
        memcpy(s + i, "{\"a\":", 5);
    assert_invalid_json(s, n);
    free(s);
}

/* ---- field_int ---- */

static void assert_int_rejected(const char *body, const char *key, int64_t min,
                                int64_t max)
{
    struct field_problem prob;
    json_t *obj = parse(body, &prob);
    if (obj == NULL) {
        print_error("body %s did not parse: %s\n", body, prob.detail);
        fail();
    }
    int64_t out = -12345;
    memset(&prob, 0, sizeof(prob));
    if (field_int(obj, key, 7, min, max, &out, &prob) != -1) {
        print_error("%s: accepted, out=%lld\n", body, (long long)out);
        fail();
    }
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    if (strstr(prob.detail, key) == NULL) {
        print_error("%s: detail \"%s\" does not name %s\n", body, prob.detail,
                    key);
        fail();
    }
    char range_max[32];
    snprintf(range_max, sizeof(range_max), "%lld", (long long)max);
    if (strstr(prob.detail, range_max) == NULL) {
        print_error("%s: detail \"%s\" does not give the range\n", body,
                    prob.detail);
        fail();
    }
    json_decref(obj);
}

static void test_query_int(void **state)
{
    (void)state;
    static const char *const bad[] = {"",
                                      "0",
                                      "101",
                                      "-1",
                                      "1x",
                                      "01",
                                      "0100",
                                      " 5",
                                      "5 ",
                                      "+5",
                                      "9999999999999999999999"};
    struct field_problem prob;
    int64_t out = 0;

    assert_int_equal(query_int(NULL, "limit", 10, 1, 100, &out, &prob), 0);
    assert_int_equal(out, 10);
    assert_int_equal(query_int("1", "limit", 10, 1, 100, &out, &prob), 0);
    assert_int_equal(out, 1);
    assert_int_equal(query_int("100", "limit", 10, 1, 100, &out, &prob), 0);
    assert_int_equal(out, 100);
    assert_int_equal(query_int("0", "n", 10, 0, 100, &out, &prob), 0);
    assert_int_equal(out, 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        out = 77;
        assert_int_equal(query_int(bad[i], "limit", 10, 1, 100, &out, &prob),
                         -1);
        assert_int_equal(prob.error, FIELD_INVALID_FIELD);
        assert_non_null(strstr(prob.detail, "limit"));
        assert_int_equal(out, 77);
    }
}

static void test_field_int_absent_default(void **state)
{
    (void)state;
    json_t *obj = parse_ok("{}");
    struct field_problem prob;
    int64_t out = 0;
    assert_int_equal(field_int(obj, "ttl_ms", 30000, 1, 3600000, &out, &prob),
                     0);
    assert_int_equal(out, 30000);
    json_decref(obj);
}

static void test_field_int_valid_and_bounds(void **state)
{
    (void)state;
    json_t *obj = parse_ok("{\"lo\":1,\"hi\":3600000,\"mid\":500,\"z\":0,"
                           "\"neg\":-5,\"negzero\":-0}");
    struct field_problem prob;
    int64_t out = 0;
    assert_int_equal(field_int(obj, "lo", 9, 1, 3600000, &out, &prob), 0);
    assert_int_equal(out, 1);
    assert_int_equal(field_int(obj, "hi", 9, 1, 3600000, &out, &prob), 0);
    assert_int_equal(out, 3600000);
    assert_int_equal(field_int(obj, "mid", 9, 1, 3600000, &out, &prob), 0);
    assert_int_equal(out, 500);
    assert_int_equal(field_int(obj, "z", 9, 0, 60000, &out, &prob), 0);
    assert_int_equal(out, 0);
    assert_int_equal(field_int(obj, "negzero", 9, 0, 60000, &out, &prob), 0);
    assert_int_equal(out, 0);
    assert_int_equal(field_int(obj, "neg", 9, -5, 5, &out, &prob), 0);
    assert_int_equal(out, -5);
    json_decref(obj);
}

static void test_field_int_extreme_bounds(void **state)
{
    (void)state;
    json_t *obj = json_pack("{sIsI}", "max", (json_int_t)INT64_MAX, "min",
                            (json_int_t)INT64_MIN);
    assert_non_null(obj);
    struct field_problem prob;
    int64_t out = 0;
    assert_int_equal(
        field_int(obj, "max", 0, INT64_MIN, INT64_MAX, &out, &prob), 0);
    assert_true(out == INT64_MAX);
    assert_int_equal(
        field_int(obj, "min", 0, INT64_MIN, INT64_MAX, &out, &prob), 0);
    assert_true(out == INT64_MIN);
    assert_int_equal(field_int(obj, "max", 0, 0, 3600000, &out, &prob), -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    assert_int_equal(field_int(obj, "min", 0, 0, 3600000, &out, &prob), -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    json_decref(obj);
}

static void test_field_int_rejects_non_integers(void **state)
{
    (void)state;
    assert_int_rejected("{\"ttl_ms\":1.5}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":1.0}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":1e3}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":1E3}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":\"5\"}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":true}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":false}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":null}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":[1]}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":{}}", "ttl_ms", 1, 3600000);
}

static void test_field_int_out_of_range(void **state)
{
    (void)state;
    assert_int_rejected("{\"ttl_ms\":-1}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":0}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"ttl_ms\":3600001}", "ttl_ms", 1, 3600000);
    assert_int_rejected("{\"wait_ms\":-1}", "wait_ms", 0, 60000);
    assert_int_rejected("{\"wait_ms\":60001}", "wait_ms", 0, 60000);
    assert_int_rejected("{\"wait_ms\":9223372036854775807}", "wait_ms", 0,
                        60000);
    assert_int_rejected("{\"wait_ms\":-9223372036854775808}", "wait_ms", 0,
                        60000);
}

/* An integer beyond int64 must be a 400 either way: invalid_json from the
 * parser or invalid_field from field_int, never a wrapped value. */
static void test_field_int_huge(void **state)
{
    (void)state;
    static const char *const huge[] = {
        "{\"ttl_ms\":99999999999999999999}",
        "{\"ttl_ms\":-99999999999999999999}",
        "{\"ttl_ms\":9223372036854775808}",
        "{\"ttl_ms\":18446744073709551617}",
    };
    for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
        struct field_problem prob;
        memset(&prob, 0, sizeof(prob));
        json_t *obj = parse(huge[i], &prob);
        if (obj == NULL) {
            /* Too big for the parser: a field out of range, not bad JSON. */
            assert_int_equal(prob.error, FIELD_INVALID_FIELD);
            continue;
        }
        int64_t out = 0;
        if (field_int(obj, "ttl_ms", 1, 1, 3600000, &out, &prob) == 0) {
            print_error("%s accepted as %lld\n", huge[i], (long long)out);
            fail();
        }
        assert_int_equal(prob.error, FIELD_INVALID_FIELD);
        json_decref(obj);
    }
}

/* ---- field_string ---- */

static void test_field_string(void **state)
{
    (void)state;
    json_t *obj = parse_ok("{\"owner\":\"worker-1\",\"empty\":\"\","
                           "\"utf8\":\"caf\xc3\xa9\"}");
    struct field_problem prob;
    const char *out = "unset";

    assert_int_equal(field_string(obj, "owner", false, 128, &out, &prob), 0);
    assert_string_equal(out, "worker-1");
    assert_int_equal(field_string(obj, "owner", true, 128, &out, &prob), 0);
    assert_string_equal(out, "worker-1");
    assert_int_equal(field_string(obj, "empty", false, 128, &out, &prob), 0);
    assert_string_equal(out, "");
    assert_int_equal(field_string(obj, "utf8", false, 5, &out, &prob), 0);
    assert_string_equal(out, "caf\xc3\xa9");

    out = "unset";
    assert_int_equal(field_string(obj, "missing", false, 128, &out, &prob), 0);
    assert_null(out);

    memset(&prob, 0, sizeof(prob));
    assert_int_equal(field_string(obj, "missing", true, 128, &out, &prob), -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    assert_non_null(strstr(prob.detail, "missing"));
    assert_non_null(strstr(prob.detail, "required"));
    json_decref(obj);
}

static void test_field_string_length(void **state)
{
    (void)state;
    char buf[OWNER_MAX + 2];
    memset(buf, 'o', sizeof(buf));
    buf[OWNER_MAX] = '\0';
    json_t *obj = json_pack("{ss}", "owner", buf);
    struct field_problem prob;
    const char *out = NULL;
    assert_int_equal(field_string(obj, "owner", false, OWNER_MAX, &out, &prob),
                     0);
    assert_int_equal(strlen(out), OWNER_MAX);
    json_decref(obj);

    buf[OWNER_MAX] = 'o';
    buf[OWNER_MAX + 1] = '\0';
    obj = json_pack("{ss}", "owner", buf);
    memset(&prob, 0, sizeof(prob));
    assert_int_equal(field_string(obj, "owner", false, OWNER_MAX, &out, &prob),
                     -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    assert_non_null(strstr(prob.detail, "owner"));
    json_decref(obj);

    /* max_len counts characters: "éé" is two, in four bytes. */
    obj = parse_ok("{\"owner\":\"\xc3\xa9\xc3\xa9\"}");
    assert_int_equal(field_string(obj, "owner", false, 1, &out, &prob), -1);
    assert_int_equal(field_string(obj, "owner", false, 2, &out, &prob), 0);
    json_decref(obj);
}

static void test_field_string_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"owner\":1}",
        "{\"owner\":null}",
        "{\"owner\":true}",
        "{\"owner\":[\"a\"]}",
        "{\"owner\":{}}",
        "{\"owner\":\"a\\nb\"}",
        "{\"owner\":\"a\\tb\"}",
        "{\"owner\":\"\\r\"}",
        "{\"owner\":\"\\u001b[31m\"}",
        "{\"owner\":\"\\u0001\"}",
        "{\"owner\":\"\\u007f\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct field_problem prob;
        json_t *obj = parse(bad[i], &prob);
        if (obj == NULL) {
            print_error("%s did not parse: %s\n", bad[i], prob.detail);
            fail();
        }
        const char *out = NULL;
        memset(&prob, 0, sizeof(prob));
        if (field_string(obj, "owner", false, 128, &out, &prob) != -1) {
            print_error("%s accepted\n", bad[i]);
            fail();
        }
        assert_int_equal(prob.error, FIELD_INVALID_FIELD);
        assert_non_null(strstr(prob.detail, "owner"));
        json_decref(obj);
    }
}

/* ---- field_token ---- */

static void test_field_token(void **state)
{
    (void)state;
    json_t *obj = parse_ok("{\"token\":\"0123456789abcdef0123456789abcdef\"}");
    struct field_problem prob;
    const char *out = NULL;
    assert_int_equal(field_token(obj, "token", true, &out, &prob), 0);
    assert_string_equal(out, "0123456789abcdef0123456789abcdef");
    assert_int_equal(field_token(obj, "token", false, &out, &prob), 0);
    assert_string_equal(out, "0123456789abcdef0123456789abcdef");
    json_decref(obj);

    obj = parse_ok("{}");
    out = "unset";
    assert_int_equal(field_token(obj, "token", false, &out, &prob), 0);
    assert_null(out);
    memset(&prob, 0, sizeof(prob));
    assert_int_equal(field_token(obj, "token", true, &out, &prob), -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    assert_non_null(strstr(prob.detail, "token"));
    json_decref(obj);
}

static void test_field_token_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"token\":\"0123456789ABCDEF0123456789abcdef\"}",
        "{\"token\":\"0123456789abcdef0123456789abcde\"}",
        "{\"token\":\"0123456789abcdef0123456789abcdef0\"}",
        "{\"token\":\"0123456789abcdef0123456789abcdeg\"}",
        "{\"token\":\"\"}",
        "{\"token\":null}",
        "{\"token\":12345678901234567890123456789012}",
        "{\"token\":1}",
        "{\"token\":[\"0123456789abcdef0123456789abcdef\"]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct field_problem prob;
        memset(&prob, 0, sizeof(prob));
        json_t *obj = parse(bad[i], &prob);
        if (obj == NULL) {
            /* 32 digits overflow int64: refused as a field out of range. */
            assert_int_equal(prob.error, FIELD_INVALID_FIELD);
            continue;
        }
        const char *out = NULL;
        if (field_token(obj, "token", false, &out, &prob) != -1) {
            print_error("%s accepted\n", bad[i]);
            fail();
        }
        assert_int_equal(prob.error, FIELD_INVALID_FIELD);
        assert_non_null(strstr(prob.detail, "token"));
        json_decref(obj);
    }
}

/* ---- fields_known ---- */

static void test_fields_known(void **state)
{
    (void)state;
    static const char *const allowed[] = {"ttl_ms", "wait_ms", "owner", "token",
                                          NULL};
    static const char *const none[] = {NULL};
    struct field_problem prob;

    json_t *obj = parse_ok("{}");
    assert_int_equal(fields_known(obj, allowed, &prob), 0);
    assert_int_equal(fields_known(obj, none, &prob), 0);
    json_decref(obj);

    obj = parse_ok("{\"ttl_ms\":1,\"wait_ms\":0,\"owner\":\"a\","
                   "\"token\":\"0123456789abcdef0123456789abcdef\"}");
    assert_int_equal(fields_known(obj, allowed, &prob), 0);
    memset(&prob, 0, sizeof(prob));
    assert_int_equal(fields_known(obj, none, &prob), -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    json_decref(obj);

    obj = parse_ok("{\"ttl_ms\":1,\"ttl\":5}");
    memset(&prob, 0, sizeof(prob));
    assert_int_equal(fields_known(obj, allowed, &prob), -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    if (strstr(prob.detail, "ttl") == NULL) {
        print_error("detail \"%s\" does not name 'ttl'\n", prob.detail);
        fail();
    }
    json_decref(obj);

    /* Matching is exact: no prefixes, no case folding. */
    static const char *const near[] = {"{\"TTL_MS\":1}", "{\"ttl_ms \":1}",
                                       "{\"ttl_m\":1}", "{\"ttl_msx\":1}",
                                       "{\"\":1}"};
    for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
        obj = parse_ok(near[i]);
        if (fields_known(obj, allowed, &prob) != -1) {
            print_error("%s accepted\n", near[i]);
            fail();
        }
        json_decref(obj);
    }
}

/* An unknown key with a long or hostile name still yields a bounded,
 * NUL-terminated detail. */
static void test_fields_known_long_key(void **state)
{
    (void)state;
    static const char *const allowed[] = {"ttl_ms", NULL};
    char key[1000];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    json_t *obj = json_pack("{si}", key, 1);
    struct field_problem prob;
    memset(&prob, 'X', sizeof(prob));
    assert_int_equal(fields_known(obj, allowed, &prob), -1);
    assert_int_equal(prob.error, FIELD_INVALID_FIELD);
    assert_true(memchr(prob.detail, '\0', sizeof(prob.detail)) != NULL);
    json_decref(obj);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_int),
        cmocka_unit_test(test_name_lengths),
        cmocka_unit_test(test_name_allowed_chars),
        cmocka_unit_test(test_name_every_disallowed_byte),
        cmocka_unit_test(test_name_rejects_path_and_encodings),
        cmocka_unit_test(test_token_format),
        cmocka_unit_test(test_token_every_byte),
        cmocka_unit_test(test_body_empty_is_empty_object),
        cmocka_unit_test(test_body_object_ok),
        cmocka_unit_test(test_body_not_nul_terminated),
        cmocka_unit_test(test_body_not_an_object),
        cmocka_unit_test(test_body_invalid_utf8),
        cmocka_unit_test(test_body_nul_bytes),
        cmocka_unit_test(test_body_duplicate_keys),
        cmocka_unit_test(test_body_depth_limit),
        cmocka_unit_test(test_body_depth_ignores_strings),
        cmocka_unit_test(test_body_very_deep),
        cmocka_unit_test(test_field_int_absent_default),
        cmocka_unit_test(test_field_int_valid_and_bounds),
        cmocka_unit_test(test_field_int_extreme_bounds),
        cmocka_unit_test(test_field_int_rejects_non_integers),
        cmocka_unit_test(test_field_int_out_of_range),
        cmocka_unit_test(test_field_int_huge),
        cmocka_unit_test(test_field_string),
        cmocka_unit_test(test_field_string_length),
        cmocka_unit_test(test_field_string_rejects),
        cmocka_unit_test(test_field_token),
        cmocka_unit_test(test_field_token_rejects),
        cmocka_unit_test(test_fields_known),
        cmocka_unit_test(test_fields_known_long_key),
    };
    return cmocka_run_group_tests_name("request", tests, NULL, NULL);
}
