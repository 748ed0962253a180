/* framing.c -- request framing and request-target checks (see framing.h). */
#include "http/framing.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 OWS: optional spaces and horizontal tabs. */
static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* What the Content-Length headers seen so far say. */
struct length_state {
    bool seen;      /* a Content-Length header was there */
    bool has_value; /* value holds the first element */
    bool bad;       /* an element that is not 1*DIGIT, or too large */
    bool conflict;  /* two elements with different values */
    unsigned long long value;
};

/* Folds one Content-Length value, a list of 1*DIGIT elements, into st. */
static void add_length(struct length_state *st, const char *value)
{
    const char *p = value != NULL ? value : "";

    st->seen = true;
    for (;;) {
        unsigned long long v = 0;
        const char *digits;

        p = skip_ows(p);
        digits = p;
        for (; *p >= '0' && *p <= '9'; p++) {
            unsigned d = (unsigned)(*p - '0');
            if (v > (ULLONG_MAX - d) / 10) {
                st->bad = true;
                return;
            }
            v = v * 10 + d;
        }
        p = skip_ows(p);
        if (p == digits || (*p != ',' && *p != '\0')) {
            st->bad = true;
            return;
        }
        if (!st->has_value) {
            st->value = v;
            st->has_value = true;
        } else if (v != st->value) {
            st->conflict = true;
        }
        if (*p == '\0')
            return;
        p++; /* the comma */
    }
}

/* What the Transfer-Encoding headers seen so far say: the last non-empty list
 * element, the coding applied last, and how many codings there are
 * (libmicrohttpd decodes a body only when "chunked" is the one coding, and
 * the service undoes no other). */
struct coding_state {
    bool seen;
    const char *final; /* NULL while every element was empty */
    size_t final_len;
    unsigned count;
};

/* Folds one Transfer-Encoding value, a list of codings, into st. Empty
 * elements ("a, , b") are skipped, as RFC 9110 section 5.6.1 asks. */
static void add_coding(struct coding_state *st, const char *value)
{
    const char *p = value != NULL ? value : "";

    st->seen = true;
    while (*p != '\0') {
        const char *start = skip_ows(p);
        const char *end = start + strcspn(start, ",");
        const char *next = *end == ',' ? end + 1 : end;

        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        if (end > start) {
            st->count++;
            st->final = start;
            st->final_len = (size_t)(end - start);
        }
        p = next;
    }
}

enum framing_result http_framing_check(const struct http_header_view *headers,
                                       size_t n,
                                       unsigned long long *content_length,
                                       bool *chunked)
{
    struct length_state len = {false, false, false, false, 0};
    struct coding_state te = {false, NULL, 0, 0};

    *content_length = 0;
    *chunked = false;
    for (size_t i = 0; i < n; i++) {
        const char *name = headers[i].name;
        if (name == NULL)
            continue;
        if (strcasecmp(name, "Content-Length") == 0)
            add_length(&len, headers[i].value);
        else if (strcasecmp(name, "Transfer-Encoding") == 0)
            add_coding(&te, headers[i].value);
    }
    if (len.bad)
        return FRAMING_BAD_LENGTH;
    if (len.conflict)
        return FRAMING_CONFLICTING_LENGTH;
    if (len.seen && te.seen)
        return FRAMING_LENGTH_WITH_TRANSFER_ENCODING;
    if (te.seen) {
        if (te.count != 1 || te.final_len != strlen("chunked") ||
            strncasecmp(te.final, "chunked", te.final_len) != 0)
            return FRAMING_UNSUPPORTED_TRANSFER_ENCODING;
        *chunked = true;
        return FRAMING_OK;
    }
    *content_length = len.value;
    return FRAMING_OK;
}

/* RFC 3986 unreserved and sub-delims, and '%' of pct-encoded: the characters
 * of a reg-name, and of an IP literal besides ':'. */
static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=%", c) != NULL);
}

/* True when [p, end) is host [":" port] of RFC 3986 with a non-empty host:
 * a reg-name or IPv4 address, or an IP literal in brackets. Userinfo ('@')
 * is refused: RFC 9110 section 4.2.4 forbids it in http(s) URIs. */
static bool authority_valid(const char *p, const char *end)
{
    const char *host = p;

    if (p < end && *p == '[') {
        for (p++; p < end && *p != ']'; p++)
            if (*p != ':' && !host_char(*p))
                return false;
        if (p == end || p == host + 1)
            return false;
        p++; /* the ']' */
    } else {
        for (; p < end && *p != ':'; p++)
            if (!host_char(*p))
                return false;
        if (p == host)
            return false;
    }
    if (p == end)
        return true;
    if (*p != ':')
        return false;
    for (p++; p < end; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

const char *http_origin_form(const char *target)
{
    static const char root[] = "/";
    const char *authority, *end;

    if (target == NULL)
        return NULL;
    if (target[0] == '/')
        return target;
    if (strncasecmp(target, "http://", 7) == 0)
        authority = target + 7;
    else if (strncasecmp(target, "https://", 8) == 0)
        authority = target + 8;
    else
        return NULL;
    end = authority + strcspn(authority, "/?");
    if (!authority_valid(authority, end))
        return NULL;
    return *end == '/' ? end : root;
}

static const char *const framing_details[] = {
    [FRAMING_OK] = "the request is framed correctly",
    [FRAMING_BAD_LENGTH] = "Content-Length must be a decimal number of bytes",
    [FRAMING_CONFLICTING_LENGTH] = "conflicting Content-Length values",
    [FRAMING_LENGTH_WITH_TRANSFER_ENCODING] =
        "Content-Length and Transfer-Encoding must not be sent together",
    [FRAMING_UNSUPPORTED_TRANSFER_ENCODING] =
        "only the chunked Transfer-Encoding is implemented",
};

const char *framing_detail(enum framing_result r)
{
    if ((unsigned)r >= sizeof framing_details / sizeof framing_details[0] ||
        framing_details[r] == NULL)
        return "the request is not framed correctly";
    return framing_details[r];
}
