/* api/token.h — discovery token names: minting (/new) and validation (short and private forms).
 *
 * Pure except api_token_mint, which reads the kernel's CSPRNG. Any thread.
 */
#ifndef DISCOVERYD_API_TOKEN_H
#define DISCOVERYD_API_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define API_TOKEN_HEX_LEN 32       /* /new tokens: 16 random bytes as lowercase hex */
#define API_TOKEN_MAX_LEN 128      /* private-form names: 1..128 of [A-Za-z0-9._-] */
#define API_STATIC_PREFIX "static" /* first path component reserved for web assets */

/* Fill out with 32 lowercase hex chars + NUL from 16 bytes of getrandom() (RAND_bytes as a
 * fallback). 0, or -1 when no cryptographic randomness is available (the caller answers 5xx). */
int api_token_mint(char out[API_TOKEN_HEX_LEN + 1]);

/* A valid token name: 1..128 chars of [A-Za-z0-9._-], not "." or "..". */
bool api_token_name_valid(const char *s, size_t len);

/* A first path component that names a route, so it can never be a short-form token:
 * new, health, metrics, robots.txt, status, v2, favicon.ico, and API_STATIC_PREFIX. */
bool api_token_reserved(const char *s, size_t len);

#endif
