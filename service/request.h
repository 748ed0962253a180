/* request.h -- validation of request bodies and path parameters.
 *
 * Pure functions over bytes: no HTTP, no Redis. Handlers call them and turn
 * a failure into a problem+json reply. */
#ifndef LOCKSERVICE_REQUEST_H
#define LOCKSERVICE_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What went wrong, in the terms of the HTTP error table. */
enum field_error {
    FIELD_OK = 0,
    FIELD_INVALID_JSON,  /* 400 invalid_json */
    FIELD_INVALID_FIELD, /* 400 invalid_field */
};

struct field_problem {
    enum field_error error;
    char detail[192];
};

/* True when name is 1..LOCK_NAME_MAX characters of A-Z a-z 0-9 . _ : - */
bool lock_name_valid(const char *name, size_t len);

/* True when s is exactly 32 lowercase hex digits. */
bool token_format_valid(const char *s, size_t len);

/* Parses body (len bytes, not NUL-terminated; len 0 means "no body" and
 * yields an empty object) into a JSON object. Rejects invalid UTF-8, duplicate
 * keys, nesting deeper than max_depth, NUL bytes and anything that is not an
 * object. Returns a new reference the caller json_decref()s, or NULL with
 * *prob filled. */
json_t *body_parse_object(const char *body, size_t len, unsigned max_depth,
                          struct field_problem *prob);

/* Reads integer field key of obj into *out. Absent: *out = dflt, returns 0.
 * Present but not a JSON integer, or outside [min, max]: returns -1 and
 * fills *prob (invalid_field, detail names the field and the range). */
int field_int(json_t *obj, const char *key, int64_t dflt, int64_t min,
              int64_t max, int64_t *out, struct field_problem *prob);

/* Reads the integer query parameter key, whose raw value is value (NULL:
 * absent, then *out = dflt): decimal digits only, no leading zero,
 * within [min, max], else
 * -1 with *prob filled (invalid_field naming the parameter). */
int query_int(const char *value, const char *key, int64_t dflt, int64_t min,
              int64_t max, int64_t *out, struct field_problem *prob);

/* Reads string field key. Absent: *out = NULL, returns 0 (or -1 with
 * "key is required" when required). Present but not a string, longer than
 * max_len characters (UTF-8 code points), or containing control characters: -1
 * with *prob filled. *out borrows from obj. */
int field_string(json_t *obj, const char *key, bool required, size_t max_len,
                 const char **out, struct field_problem *prob);

/* Like field_string, and the value must be a well-formed lease token. */
int field_token(json_t *obj, const char *key, bool required, const char **out,
                struct field_problem *prob);

/* Rejects any member of obj whose key is not in the NULL-terminated list
 * allowed (unknown fields are an error: a typo such as "ttl" for "ttl_ms"
 * must not silently fall back to a default). */
int fields_known(json_t *obj, const char *const *allowed,
                 struct field_problem *prob);

#endif
