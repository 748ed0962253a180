/* token.h -- lease tokens: 128 bits from getrandom(2) as 32 lowercase hex
 * digits. */
#ifndef LOCKSERVICE_TOKEN_H
#define LOCKSERVICE_TOKEN_H

#include "config.h"

/* Writes a new token and its NUL into out. Returns 0, or -1 if the kernel
 * gave no randomness (never falls back to a weaker source). */
int token_new(char out[TOKEN_HEX_LEN + 1]);

/* Writes hex_len random lowercase hex digits from getrandom(2) and a NUL
 * into out (hex_len + 1 bytes). Returns 0 or -1 (no randomness). */
int random_hex(char *out, size_t hex_len);

/* Compares two byte strings of length n without data-dependent timing. */
bool secret_equal(const char *a, const char *b, size_t n);

#endif
