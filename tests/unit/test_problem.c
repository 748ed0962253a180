/* test_problem.c -- unit tests for service/http/problem.c: every row of the
 * problem catalogue is complete and unique, and the documents a client reads
 * agree with it. Run from the repository root: it reads openapi.yaml (the
 * Problem schema's code enum, and the "status: ..." / "code: ..." line pairs
 * that bind a code to a status) and README.md (the error table under
 * "| status | code | when |"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/problem.h"

#define MAX_PAIRS 256
#define CODE_MAX 64

/* A (status, code) pair a document states. */
struct doc_pair {
    unsigned status;
    char code[CODE_MAX];
};

struct doc {
    struct doc_pair pairs[MAX_PAIRS];
    size_t n;
};

/* Reads the whole file into a NUL-terminated malloc'd buffer (the caller
 * frees), or fails the test. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, got;

    if (f == NULL) {
        print_error("cannot open %s (run from the repository root)\n", path);
        fail();
    }
    do {
        if (cap - len < 4096) {
            cap = cap == 0 ? 65536 : cap * 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got > 0);
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* The next line of *cursor (without its newline) copied into line, or false
 * at the end of the text. Longer lines are cut to the buffer. */
static bool next_line(const char **cursor, char *line, size_t cap)
{
    const char *p = *cursor, *nl;
    size_t len;

    if (*p == '\0')
        return false;
    nl = strchr(p, '\n');
    len = nl != NULL ? (size_t)(nl - p) : strlen(p);
    *cursor = nl != NULL ? nl + 1 : p + len;
    if (len > 0 && p[len - 1] == '\r')
        len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(line, p, len);
    line[len] = '\0';
    return true;
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static bool code_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Parses a three-digit status at p; *end points past it. 0 when there is
 * none. */
static unsigned parse_status(const char *p, const char **end)
{
    unsigned v = 0;
    int digits = 0;

    for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++)
        v = v * 10 + (unsigned)(*p - '0');
    *end = p;
    return digits == 3 ? v : 0;
}

static void doc_add(struct doc *d, unsigned status, const char *code,
                    size_t len)
{
    assert_true(d->n < MAX_PAIRS);
    assert_true(len > 0 && len < CODE_MAX);
    d->pairs[d->n].status = status;
    memcpy(d->pairs[d->n].code, code, len);
    d->pairs[d->n].code[len] = '\0';
    d->n++;
}

/* Adds (status, code) for every code word in s, a YAML scalar or flow
 * sequence: "lock_held", "{const: lock_held}", "{enum: [a, b]}". */
static void doc_add_codes(struct doc *d, unsigned status, const char *s)
{
    const char *p = s;

    if (strncmp(p, "{const:", 7) == 0)
        p += 7;
    else if (strncmp(p, "{enum:", 6) == 0)
        p += 6;
    while (*p != '\0') {
        const char *start;
        while (*p != '\0' && !code_char(*p))
            p++;
        start = p;
        while (code_char(*p))
            p++;
        if (p > start)
            doc_add(d, status, start, (size_t)(p - start));
    }
}

static bool doc_has(const struct doc *d, unsigned status, const char *code)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->pairs[i].code, code) == 0 &&
            (status == 0 || d->pairs[i].status == status))
            return true;
    return false;
}

/* The statuses d gives code, for a message ("409 503"), in buf. */
static const char *doc_statuses(const struct doc *d, const char *code,
                                char *buf, size_t cap)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < d->n && len + 5 < cap; i++)
        if (strcmp(d->pairs[i].code, code) == 0)
            len += (size_t)snprintf(buf + len, cap - len, "%s%u",
                                    len > 0 ? " " : "", d->pairs[i].status);
    return len > 0 ? buf : "none";
}

/* README.md's error table: the rows after the "| status | code | when |"
 * header up to the first line that is not a table row. A code cell may name
 * several codes ("`not_owner` / `not_held`"). */
static void read_readme(struct doc *d)
{
    char *text = slurp("README.md");
    const char *cur = text;
    char line[2048];
    bool in_table = false, found = false;

    d->n = 0;
    while (next_line(&cur, line, sizeof line)) {
        const char *p = line, *end;
        unsigned status;

        if (!in_table) {
            in_table = found = strcmp(line, "| status | code | when |") == 0;
            continue;
        }
        if (line[0] != '|')
            break;
        p = skip_spaces(p + 1);
        if (*p == '-')
            continue; /* the |---|---| line */
        status = parse_status(p, &end);
        end = skip_spaces(end);
        if (status == 0 || *end != '|') {
            print_error("README error table: bad status cell in: %s\n", line);
            fail();
        }
        /* The code cell: every `word` up to the next '|'. */
        for (p = end + 1; *p != '\0' && *p != '|'; p++) {
            if (*p != '`')
                continue;
            const char *start = ++p;
            while (*p != '\0' && *p != '`')
                p++;
            if (*p == '\0')
                break;
            doc_add(d, status, start, (size_t)(p - start));
        }
    }
    free(text);
    if (!found) {
        print_error("README.md has no \"| status | code | when |\" table\n");
        fail();
    }
}

/* openapi.yaml: the (status, code) pairs of every "status: N" or
 * "status: {const: N}" line directly followed by a "code: ..." line (the
 * problem schemas and examples), and into schema_enum the codes listed under
 * components.schemas.Problem.properties.code.enum (status 0). */
static void read_openapi(struct doc *pairs, struct doc *schema_enum)
{
    char *text = slurp("openapi.yaml");
    const char *cur = text;
    char line[2048];
    unsigned status = 0;
    enum { OUTSIDE, IN_PROBLEM, IN_CODE, IN_ENUM } state = OUTSIDE;

    pairs->n = 0;
    schema_enum->n = 0;
    while (next_line(&cur, line, sizeof line)) {
        const char *p = skip_spaces(line), *end;

        if (strcmp(line, "    Problem:") == 0) {
            state = IN_PROBLEM;
        } else if (state == IN_PROBLEM && strcmp(p, "code:") == 0) {
            state = IN_CODE;
        } else if (state == IN_CODE && strcmp(p, "enum:") == 0) {
            state = IN_ENUM;
        } else if (state == IN_ENUM) {
            if (strncmp(p, "- ", 2) == 0)
                doc_add_codes(schema_enum, 0, p + 2);
            else
                state = OUTSIDE;
        }

        if (status != 0 && strncmp(p, "code:", 5) == 0)
            doc_add_codes(pairs, status, skip_spaces(p + 5));
        status = 0;
        if (strncmp(p, "status:", 7) == 0) {
            p = skip_spaces(p + 7);
            if (strncmp(p, "{const:", 7) == 0)
                p = skip_spaces(p + 7);
            status = parse_status(p, &end);
        }
    }
    free(text);
    if (schema_enum->n == 0) {
        print_error("openapi.yaml: no Problem schema with a code enum\n");
        fail();
    }
}

static void test_rows_complete(void **state)
{
    (void)state;
    for (size_t i = 0; i < PROBLEM_COUNT; i++) {
        const struct problem *p = &problem_catalogue[i];
        if (p->code == NULL || p->title == NULL) {
            print_error("row %zu has no code or title (a missing row)\n", i);
            fail();
        }
        assert_true(p->code[0] != '\0' && p->title[0] != '\0');
        for (const char *c = p->code; *c != '\0'; c++)
            if (!code_char(*c)) {
                print_error("code %s: only a-z 0-9 _\n", p->code);
                fail();
            }
        if (p->status < 400 || p->status > 599) {
            print_error("%s: status %u is not 4xx or 5xx\n", p->code,
                        p->status);
            fail();
        }
    }
}

static void test_codes_unique(void **state)
{
    (void)state;
    for (size_t i = 0; i < PROBLEM_COUNT; i++)
        for (size_t j = i + 1; j < PROBLEM_COUNT; j++)
            if (strcmp(problem_catalogue[i].code, problem_catalogue[j].code) ==
                0) {
                print_error("code %s is in rows %zu and %zu\n",
                            problem_catalogue[i].code, i, j);
                fail();
            }
}

static void test_problem_get(void **state)
{
    (void)state;
    for (int i = 0; i < PROBLEM_COUNT; i++)
        assert_ptr_equal(problem_get((enum problem_id)i),
                         &problem_catalogue[i]);
    assert_int_equal(problem_get(PROBLEM_LOCK_HELD)->status, 409);
    assert_string_equal(problem_get(PROBLEM_LOCK_HELD)->code, "lock_held");
    assert_string_equal(problem_get(PROBLEM_LOCK_HELD)->title, "Lock is held");
    assert_string_equal(problem_get(PROBLEM_INVALID_REQUEST)->code,
                        "invalid_request");
    assert_int_equal(problem_get(PROBLEM_NOT_IMPLEMENTED)->status, 501);
    /* An id out of range is a well-formed 500, never a read past the end. */
    assert_ptr_equal(problem_get(PROBLEM_COUNT),
                     &problem_catalogue[PROBLEM_INTERNAL_ERROR]);
    assert_ptr_equal(problem_get((enum problem_id) - 1),
                     &problem_catalogue[PROBLEM_INTERNAL_ERROR]);
}

/* Every row is in openapi.yaml: its code in the Problem schema's enum, and
 * bound to its status by some response schema or example. All missing rows
 * are printed before the test fails. */
static void test_rows_in_openapi(void **state)
{
    static struct doc pairs, schema_enum;
    char buf[64];
    int missing = 0;

    (void)state;
    read_openapi(&pairs, &schema_enum);
    for (size_t i = 0; i < PROBLEM_COUNT; i++) {
        const struct problem *p = &problem_catalogue[i];
        if (!doc_has(&schema_enum, 0, p->code)) {
            print_error("openapi.yaml: %s is not in the Problem code enum\n",
                        p->code);
            missing++;
        }
        if (!doc_has(&pairs, p->status, p->code)) {
            print_error("openapi.yaml: no response gives %s status %u "
                        "(statuses given: %s)\n",
                        p->code, p->status,
                        doc_statuses(&pairs, p->code, buf, sizeof buf));
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

/* Every row is in README's error table with its status. */
static void test_rows_in_readme(void **state)
{
    static struct doc table;
    char buf[64];
    int missing = 0;

    (void)state;
    read_readme(&table);
    for (size_t i = 0; i < PROBLEM_COUNT; i++) {
        const struct problem *p = &problem_catalogue[i];
        if (!doc_has(&table, p->status, p->code)) {
            print_error("README.md error table: no row | %u | `%s` | "
                        "(statuses given: %s)\n",
                        p->status, p->code,
                        doc_statuses(&table, p->code, buf, sizeof buf));
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

/* The other way round: a code the documents promise is one the service can
 * answer, with the same status. */
static void test_documented_codes_in_catalogue(void **state)
{
    static struct doc pairs, schema_enum, table;
    const struct doc *docs[] = {&pairs, &schema_enum, &table};
    const char *names[] = {"openapi.yaml response", "openapi.yaml Problem enum",
                           "README.md error table"};
    int unknown = 0;

    (void)state;
    read_openapi(&pairs, &schema_enum);
    read_readme(&table);
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        for (size_t i = 0; i < docs[d]->n; i++) {
            const struct doc_pair *dp = &docs[d]->pairs[i];
            size_t r;
            for (r = 0; r < PROBLEM_COUNT; r++)
                if (strcmp(problem_catalogue[r].code, dp->code) == 0 &&
                    (dp->status == 0 ||
                     problem_catalogue[r].status == dp->status))
                    break;
            if (r == PROBLEM_COUNT) {
                print_error("%s: %u %s is no catalogue row\n", names[d],
                            dp->status, dp->code);
                unknown++;
            }
        }
    }
    assert_int_equal(unknown, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_complete),
        cmocka_unit_test(test_codes_unique),
        cmocka_unit_test(test_problem_get),
        cmocka_unit_test(test_rows_in_openapi),
        cmocka_unit_test(test_rows_in_readme),
        cmocka_unit_test(test_documented_codes_in_catalogue),
    };
    return cmocka_run_group_tests_name("problem", tests, NULL, NULL);
}
