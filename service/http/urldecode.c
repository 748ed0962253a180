/* urldecode.c -- percent-decoding of the request path (see urldecode.h). */
#include "http/urldecode.h"

/* The value of hex digit c, or -1. Locale-independent, unlike isxdigit. */
static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t url_decode_path(char *s)
{
    char *in = s, *out = s;

    while (*in != '\0') {
        if (in[0] == '%') {
            int hi = hex_value(in[1]);
            int lo = hi < 0 ? -1 : hex_value(in[2]);
            if (lo >= 0 && (hi | lo) != 0) {
                *out++ = (char)(unsigned char)(hi << 4 | lo);
                in += 3;
                continue;
            }
        }
        *out++ = *in++;
    }
    *out = '\0';
    return (size_t)(out - s);
}
