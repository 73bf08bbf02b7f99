/* api/token.c — token minting from a cryptographic source, and name validation.
 * 16 random bytes give 128 bits: guessing a live token is not a practical attack.
 */
#include "api/token.h"

#include <errno.h>
#include <openssl/rand.h>
#include <string.h>
#include <sys/random.h>

int api_token_mint(char out[API_TOKEN_HEX_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[API_TOKEN_HEX_LEN / 2];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    if (got < sizeof(raw) && RAND_bytes(raw, (int)sizeof(raw)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[API_TOKEN_HEX_LEN] = 0;
    return 0;
}

bool api_token_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > API_TOKEN_MAX_LEN)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool api_token_reserved(const char *s, size_t len)
{
    static const char *const words[] = {"new",    "health", "metrics",     "robots.txt",
                                        "status", "v2",     "favicon.ico", API_STATIC_PREFIX};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strlen(words[i]) == len && memcmp(words[i], s, len) == 0)
            return true;
    return false;
}
