/* test_framing.c -- unit tests for service/http/framing.c: Content-Length and
 * Transfer-Encoding checks, the origin form of a request target, and the
 * details of the problem replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "http/framing.h"

/* Runs the check on headers; asserts the result, and on FRAMING_OK the
 * length and chunked flag (on any other result both must be cleared). */
static void expect(const struct http_header_view *headers, size_t n,
                   enum framing_result want, unsigned long long want_len,
                   bool want_chunked)
{
    unsigned long long len = 12345;
    bool chunked = true;
    enum framing_result got = http_framing_check(headers, n, &len, &chunked);

    if (got != want) {
        print_error("framing result %d, want %d; headers:\n", (int)got,
                    (int)want);
        for (size_t i = 0; i < n; i++)
            print_error("  %s: %s\n", headers[i].name,
                        headers[i].value ? headers[i].value : "(null)");
        fail();
    }
    if (want != FRAMING_OK) {
        want_len = 0;
        want_chunked = false;
    }
    assert_true(len == want_len);
    assert_int_equal(chunked, want_chunked);
}

/* One Content-Length header with value v. */
static void expect_cl(const char *v, enum framing_result want,
                      unsigned long long want_len)
{
    const struct http_header_view h[] = {{"Host", "x"}, {"Content-Length", v}};
    expect(h, 2, want, want_len, false);
}

/* One Transfer-Encoding header with value v. */
static void expect_te(const char *v, enum framing_result want)
{
    const struct http_header_view h[] = {{"Transfer-Encoding", v}};
    expect(h, 1, want, 0, want == FRAMING_OK);
}

static void test_no_framing_headers(void **state)
{
    const struct http_header_view h[] = {{"Host", "127.0.0.1"},
                                         {"Content-Type", "application/json"},
                                         {"X-Content-Length", "abc"},
                                         {"Content-Length-X", "5"}};
    (void)state;
    expect(NULL, 0, FRAMING_OK, 0, false);
    expect(h, 4, FRAMING_OK, 0, false);
}

static void test_content_length_valid(void **state)
{
    (void)state;
    expect_cl("0", FRAMING_OK, 0);
    expect_cl("5", FRAMING_OK, 5);
    expect_cl("16384", FRAMING_OK, 16384);
    expect_cl("007", FRAMING_OK, 7);
    expect_cl(" 5", FRAMING_OK, 5);
    expect_cl("5 ", FRAMING_OK, 5);
    expect_cl("\t5\t", FRAMING_OK, 5);
    expect_cl("18446744073709551615", FRAMING_OK, ULLONG_MAX);
}

static void test_content_length_name_case(void **state)
{
    const struct http_header_view lower[] = {{"content-length", "3"}};
    const struct http_header_view upper[] = {{"CONTENT-LENGTH", "4"}};
    const struct http_header_view mixed[] = {{"cOnTeNt-LeNgTh", "5"}};
    (void)state;
    expect(lower, 1, FRAMING_OK, 3, false);
    expect(upper, 1, FRAMING_OK, 4, false);
    expect(mixed, 1, FRAMING_OK, 5, false);
}

static void test_content_length_bad(void **state)
{
    (void)state;
    expect_cl("", FRAMING_BAD_LENGTH, 0);
    expect_cl(NULL, FRAMING_BAD_LENGTH, 0);
    expect_cl(" ", FRAMING_BAD_LENGTH, 0);
    expect_cl("abc", FRAMING_BAD_LENGTH, 0);
    expect_cl("+5", FRAMING_BAD_LENGTH, 0);
    expect_cl("-1", FRAMING_BAD_LENGTH, 0);
    expect_cl("5a", FRAMING_BAD_LENGTH, 0);
    expect_cl("0x10", FRAMING_BAD_LENGTH, 0);
    expect_cl("1.5", FRAMING_BAD_LENGTH, 0);
    expect_cl("1e3", FRAMING_BAD_LENGTH, 0);
    expect_cl("5 5", FRAMING_BAD_LENGTH, 0);
    expect_cl("5;", FRAMING_BAD_LENGTH, 0);
    expect_cl("5\r", FRAMING_BAD_LENGTH, 0);
    expect_cl("\xd9\xa5", FRAMING_BAD_LENGTH, 0); /* ARABIC-INDIC 5 */
    /* 2^64 and more: never wrapped to a small length. */
    expect_cl("18446744073709551616", FRAMING_BAD_LENGTH, 0);
    expect_cl("99999999999999999999999", FRAMING_BAD_LENGTH, 0);
    expect_cl("184467440737095516150", FRAMING_BAD_LENGTH, 0);
}

static void test_content_length_lists(void **state)
{
    (void)state;
    /* A list of equal values is one length (RFC 9110 section 8.6). */
    expect_cl("5,5", FRAMING_OK, 5);
    expect_cl("5, 5", FRAMING_OK, 5);
    expect_cl(" 5 ,\t5 , 5 ", FRAMING_OK, 5);
    expect_cl("05, 5", FRAMING_OK, 5);
    expect_cl("5,6", FRAMING_CONFLICTING_LENGTH, 0);
    expect_cl("5, 6", FRAMING_CONFLICTING_LENGTH, 0);
    expect_cl("5, 5, 50", FRAMING_CONFLICTING_LENGTH, 0);
    expect_cl("0, 5", FRAMING_CONFLICTING_LENGTH, 0);
    /* Empty elements are no length at all. */
    expect_cl("5,", FRAMING_BAD_LENGTH, 0);
    expect_cl(",5", FRAMING_BAD_LENGTH, 0);
    expect_cl("5,,5", FRAMING_BAD_LENGTH, 0);
    expect_cl(",", FRAMING_BAD_LENGTH, 0);
    /* A bad element is reported before a conflict. */
    expect_cl("5, 6, x", FRAMING_BAD_LENGTH, 0);
}

static void test_content_length_repeated(void **state)
{
    const struct http_header_view equal[] = {
        {"Content-Length", "5"}, {"Host", "x"}, {"content-length", "5"}};
    const struct http_header_view equal_lists[] = {{"Content-Length", "5, 5"},
                                                   {"Content-Length", "5"}};
    const struct http_header_view differ[] = {{"Content-Length", "5"},
                                              {"Content-Length", "60"}};
    const struct http_header_view differ_case[] = {{"Content-Length", "60"},
                                                   {"CONTENT-LENGTH", "5"}};
    const struct http_header_view list_differs[] = {{"Content-Length", "5"},
                                                    {"Content-Length", "5, 6"}};
    const struct http_header_view bad_second[] = {{"Content-Length", "5"},
                                                  {"Content-Length", "+5"}};
    const struct http_header_view bad_first[] = {{"Content-Length", "x"},
                                                 {"Content-Length", "6"}};
    (void)state;
    expect(equal, 3, FRAMING_OK, 5, false);
    expect(equal_lists, 2, FRAMING_OK, 5, false);
    expect(differ, 2, FRAMING_CONFLICTING_LENGTH, 0, false);
    expect(differ_case, 2, FRAMING_CONFLICTING_LENGTH, 0, false);
    expect(list_differs, 2, FRAMING_CONFLICTING_LENGTH, 0, false);
    expect(bad_second, 2, FRAMING_BAD_LENGTH, 0, false);
    expect(bad_first, 2, FRAMING_BAD_LENGTH, 0, false);
}

static void test_transfer_encoding_chunked(void **state)
{
    const struct http_header_view lower[] = {{"transfer-encoding", "chunked"}};
    const struct http_header_view two_lines[] = {
        {"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}};
    (void)state;
    expect_te("chunked", FRAMING_OK);
    expect_te("Chunked", FRAMING_OK);
    expect_te("CHUNKED", FRAMING_OK);
    expect_te(" chunked ", FRAMING_OK);
    expect_te("\tchunked", FRAMING_OK);
    /* Only "chunked" alone: libmicrohttpd would not de-chunk a body with
     * other codings, and the service undoes none of them. */
    expect_te("gzip, chunked", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("gzip,chunked", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("chunked, , ", FRAMING_OK); /* empty elements are skipped */
    expect(lower, 1, FRAMING_OK, 0, true);
    /* Two header lines make one list: "gzip, chunked". */
    expect(two_lines, 2, FRAMING_UNSUPPORTED_TRANSFER_ENCODING, 0, false);
}

static void test_transfer_encoding_unsupported(void **state)
{
    const struct http_header_view two_lines[] = {
        {"Transfer-Encoding", "chunked"}, {"Transfer-Encoding", "gzip"}};
    (void)state;
    expect_te("gzip", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("identity", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("Identity", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("deflate", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("chunked, gzip", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te(NULL, FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te(" , ", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("chunkedx", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("chunke", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("chunked;q=1", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("\"chunked\"", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect_te("x-chunked", FRAMING_UNSUPPORTED_TRANSFER_ENCODING);
    expect(two_lines, 2, FRAMING_UNSUPPORTED_TRANSFER_ENCODING, 0, false);
}

static void test_length_with_transfer_encoding(void **state)
{
    const struct http_header_view cl_te[] = {{"Content-Length", "5"},
                                             {"Transfer-Encoding", "chunked"}};
    const struct http_header_view te_cl[] = {{"transfer-encoding", "chunked"},
                                             {"content-length", "0"}};
    const struct http_header_view cl_gzip[] = {{"Content-Length", "5"},
                                               {"Transfer-Encoding", "gzip"}};
    const struct http_header_view conflict_te[] = {
        {"Content-Length", "5"},
        {"Content-Length", "6"},
        {"Transfer-Encoding", "chunked"}};
    const struct http_header_view bad_te[] = {{"Content-Length", "x"},
                                              {"Transfer-Encoding", "chunked"}};
    (void)state;
    expect(cl_te, 2, FRAMING_LENGTH_WITH_TRANSFER_ENCODING, 0, false);
    expect(te_cl, 2, FRAMING_LENGTH_WITH_TRANSFER_ENCODING, 0, false);
    /* A malformed request is a 400 before it is a 501. */
    expect(cl_gzip, 2, FRAMING_LENGTH_WITH_TRANSFER_ENCODING, 0, false);
    expect(conflict_te, 3, FRAMING_CONFLICTING_LENGTH, 0, false);
    expect(bad_te, 2, FRAMING_BAD_LENGTH, 0, false);
}

static void test_header_without_name(void **state)
{
    const struct http_header_view h[] = {{NULL, "x"}, {"Content-Length", "2"}};
    (void)state;
    expect(h, 2, FRAMING_OK, 2, false);
}

/* http_origin_form(t) is t + offset (offset -1: NULL). */
static void expect_origin(const char *t, int offset)
{
    const char *got = http_origin_form(t);

    if (offset < 0) {
        if (got != NULL) {
            print_error("%s: got \"%s\", want NULL\n", t ? t : "(null)", got);
            fail();
        }
        return;
    }
    if (got != t + offset) {
        print_error("%s: got \"%s\", want \"%s\"\n", t, got ? got : "NULL",
                    t + offset);
        fail();
    }
}

/* http_origin_form(t) is the static "/" (no path to point into). */
static void expect_root(const char *t)
{
    const char *got = http_origin_form(t);

    if (got == NULL || strcmp(got, "/") != 0 ||
        (got >= t && got <= t + strlen(t))) {
        print_error("%s: got \"%s\", want a static \"/\"\n", t,
                    got ? got : "NULL");
        fail();
    }
}

static void test_origin_form(void **state)
{
    (void)state;
    expect_origin("/", 0);
    expect_origin("/v1/locks/x", 0);
    expect_origin("/v1/x?y", 0);
    expect_origin("//double", 0);
}

static void test_absolute_form(void **state)
{
    (void)state;
    expect_origin("http://127.0.0.1:8080/v1/locks/abs", 21);
    expect_origin("http://host/v1/x?y", 11);
    expect_origin("http://host/", 11);
    expect_origin("https://example.com/v1/locks/x", 19);
    expect_origin("HTTP://HOST/v1/x", 11);
    expect_origin("HtTpS://h/p", 9);
    expect_origin("http://[::1]:8080/v1/x", 17);
    expect_origin("http://[::1]/x", 12);
    expect_origin("http://h:/x", 9); /* an empty port is allowed */
    expect_origin("http://my-host.example_1~:80/x", 28);
    expect_origin("http://host/a?b=http://other/c", 11);
    expect_root("http://host");
    expect_root("http://127.0.0.1:8080");
    expect_root("https://host?q=1");
}

static void test_not_origin_form(void **state)
{
    (void)state;
    expect_origin(NULL, -1);
    expect_origin("", -1);
    expect_origin("*", -1);
    expect_origin("host:443", -1);           /* authority form */
    expect_origin("127.0.0.1:8080", -1);     /* authority form */
    expect_origin("v1/locks/x", -1);         /* relative */
    expect_origin("ftp://host/x", -1);       /* another scheme */
    expect_origin("httpx://host/x", -1);     /* another scheme */
    expect_origin("http:/x", -1);            /* no authority */
    expect_origin("http:x", -1);             /* no authority */
    expect_origin("http:///x", -1);          /* empty authority */
    expect_origin("http://", -1);            /* empty authority */
    expect_origin("http://:80/x", -1);       /* empty host */
    expect_origin("http://user@host/x", -1); /* userinfo */
    expect_origin("http://u:p@host/x", -1);  /* userinfo */
    expect_origin("http://host:8o/x", -1);   /* port not digits */
    expect_origin("http://host:1:2/x", -1);  /* two ports */
    expect_origin("http://ho st/x", -1);     /* space in the host */
    expect_origin("http://host#f", -1);      /* a fragment */
    expect_origin("http://[::1/x", -1);      /* unclosed IP literal */
    expect_origin("http://[]/x", -1);        /* empty IP literal */
    expect_origin("http://[::1]x/y", -1);    /* junk after the literal */
    expect_origin(" http://host/x", -1);     /* leading space */
}

static void test_details(void **state)
{
    const enum framing_result all[] = {FRAMING_OK, FRAMING_BAD_LENGTH,
                                       FRAMING_CONFLICTING_LENGTH,
                                       FRAMING_LENGTH_WITH_TRANSFER_ENCODING,
                                       FRAMING_UNSUPPORTED_TRANSFER_ENCODING};
    (void)state;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        const char *d = framing_detail(all[i]);
        assert_non_null(d);
        assert_true(d[0] != '\0');
        assert_null(strchr(d, '\n'));
        for (size_t j = 0; j < i; j++)
            assert_true(strcmp(d, framing_detail(all[j])) != 0);
    }
    assert_non_null(
        strstr(framing_detail(FRAMING_CONFLICTING_LENGTH), "Content-Length"));
    assert_non_null(strstr(
        framing_detail(FRAMING_UNSUPPORTED_TRANSFER_ENCODING), "chunked"));
    /* A value outside the enum still gets a line. */
    assert_non_null(framing_detail((enum framing_result)99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_framing_headers),
        cmocka_unit_test(test_content_length_valid),
        cmocka_unit_test(test_content_length_name_case),
        cmocka_unit_test(test_content_length_bad),
        cmocka_unit_test(test_content_length_lists),
        cmocka_unit_test(test_content_length_repeated),
        cmocka_unit_test(test_transfer_encoding_chunked),
        cmocka_unit_test(test_transfer_encoding_unsupported),
        cmocka_unit_test(test_length_with_transfer_encoding),
        cmocka_unit_test(test_header_without_name),
        cmocka_unit_test(test_origin_form),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_not_origin_form),
        cmocka_unit_test(test_details),
    };
    return cmocka_run_group_tests_name("framing", tests, NULL, NULL);
}
