/* urldecode.h -- percent-decoding of the request path, the one decoder the
 * service applies to a URL before the router sees it (libmicrohttpd calls it
 * through MHD_OPTION_UNESCAPE_CALLBACK). Pure: fuzzed by
 * tests/fuzz/fuzz_name_route.c. */
#ifndef LOCKSERVICE_HTTP_URLDECODE_H
#define LOCKSERVICE_HTTP_URLDECODE_H

#include <stddef.h>

/* Decodes every "%HH" (two hex digits, either case) of the NUL-terminated s
 * in place, except "%00", which stays as the three characters "%00": a NUL
 * would cut the path short after it was checked, and "%00" is never a valid
 * name character anyway, so a name holding it is refused whole. A '%' not
 * followed by two hex digits is kept as it is. Decodes once ("%2541" becomes
 * "%41"). Returns the new length; s stays NUL-terminated and never grows. */
size_t url_decode_path(char *s);

#endif
