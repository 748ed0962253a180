/* framing.h -- checks on how a request says where its body ends, and on the
 * form of its request target, made once its header block is complete and
 * before any body byte is read.
 *
 * libmicrohttpd 0.9.75 frames a body by the first Content-Length header it
 * finds and ignores the rest, so two different lengths let a client hide a
 * second request in the first one's body (request smuggling); it also waits
 * for the connection to close when the Transfer-Encoding is not "chunked",
 * and routes an absolute-form target ("http://host/path") as a path. The HTTP
 * layer runs these pure functions over the raw headers and answers what they
 * find: 400 invalid_request (and close the connection) for a bad, conflicting
 * or doubled length, 501 not_implemented for a transfer coding it cannot
 * read, and routes the path http_origin_form returns. No HTTP library here:
 * tests/unit/test_framing.c drives them directly. */
#ifndef LOCKSERVICE_HTTP_FRAMING_H
#define LOCKSERVICE_HTTP_FRAMING_H

#include <stdbool.h>
#include <stddef.h>

/* One header field as received: name and value, NUL-terminated, borrowed
 * from the caller. A NULL value counts as an empty one. */
struct http_header_view {
    const char *name;
    const char *value;
};

enum framing_result {
    FRAMING_OK,
    FRAMING_BAD_LENGTH,                    /* a Content-Length not 1*DIGIT */
    FRAMING_CONFLICTING_LENGTH,            /* Content-Lengths that differ */
    FRAMING_LENGTH_WITH_TRANSFER_ENCODING, /* both framings at once */
    FRAMING_UNSUPPORTED_TRANSFER_ENCODING, /* not "chunked" alone */
};

/* Checks the framing headers among the n headers (names compared without
 * case; other headers are skipped).
 *
 * Content-Length: each value is a comma-separated list (as several header
 * lines combine into one) of elements of 1*DIGIT with optional spaces or tabs
 * around them, and every element of every Content-Length header must be the
 * same number. Transfer-Encoding: the list of all its headers in order must
 * hold exactly one non-empty element, "chunked" (without case, spaces or
 * tabs around it allowed); "identity" is no coding and is refused like any
 * other, and so is "gzip, chunked": libmicrohttpd de-chunks only a body
 * whose one coding is chunked, and the service undoes no other.
 *
 * Returns the first problem in this order, so a malformed request is a 400
 * before it is a 501: FRAMING_BAD_LENGTH (an element empty, not all digits, a
 * sign, or over ULLONG_MAX), FRAMING_CONFLICTING_LENGTH,
 * FRAMING_LENGTH_WITH_TRANSFER_ENCODING (any Content-Length with any
 * Transfer-Encoding), FRAMING_UNSUPPORTED_TRANSFER_ENCODING; else FRAMING_OK.
 * On FRAMING_OK, *content_length is the length (0 when there is no
 * Content-Length) and *chunked tells whether the body is chunked; on any
 * other result both are 0 / false. headers may be NULL when n is 0. */
enum framing_result http_framing_check(const struct http_header_view *headers,
                                       size_t n,
                                       unsigned long long *content_length,
                                       bool *chunked);

/* The origin-form path of a request target (RFC 9112 section 3.2), or NULL.
 *
 * An origin-form target ("/v1/x?y", starting with '/') is returned as it is.
 * For an absolute-form target, "http://" or "https://" (scheme without case)
 * then a non-empty authority host[:port] (no userinfo), the result points at
 * its path inside target ("http://h:1/v1/x?y" gives "/v1/x?y"); with no path
 * ("http://h", "http://h?y") it is a static "/", and any query is dropped.
 * Anything else is NULL: another scheme, the asterisk form "*", the authority
 * form "host:443", an empty authority, an empty or NULL target. The result
 * lives as long as target (or forever, for the static "/"). */
const char *http_origin_form(const char *target);

/* A one-line human explanation of r for the problem reply's detail (static,
 * no trailing period), e.g. "conflicting Content-Length values". */
const char *framing_detail(enum framing_result r);

#endif
