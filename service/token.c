/* token.c -- see token.h. */
#include "token.h"

#include <errno.h>
#include <sys/random.h>

int random_hex(char *out, size_t hex_len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[64];
    size_t need = (hex_len + 1) / 2;
    size_t got = 0;
    size_t i;

    if (need > sizeof raw)
        return -1;
    while (got < need) {
        ssize_t n = getrandom(raw + got, need - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    for (i = 0; i < hex_len; i++)
        out[i] = hex[i % 2 == 0 ? raw[i / 2] >> 4 : raw[i / 2] & 15];
    out[hex_len] = '\0';
    return 0;
}

int token_new(char out[TOKEN_HEX_LEN + 1])
{
    return random_hex(out, TOKEN_HEX_LEN);
}

bool secret_equal(const char *a, const char *b, size_t n)
{
    volatile unsigned char diff = 0;
    size_t i;

    for (i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}
