/* api/addr.c — socket address → 16-byte, prefix-masked key (see addr.h). */
#include "api/addr.h"

#include <netinet/in.h>
#include <string.h>

void api_addr_mask(uint8_t key[16], unsigned bits)
{
    if (bits >= 128)
        return;
    unsigned byte = bits / 8, rem = bits % 8;
    if (rem) {
        key[byte] &= (uint8_t)(0xff << (8 - rem));
        byte++;
    }
    memset(key + byte, 0, 16 - byte);
}

int api_addr_key(const struct sockaddr *sa, socklen_t len, unsigned prefix4, unsigned prefix6,
                 uint8_t out[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, 16);
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(out, mapped, 12);
        memcpy(out + 12, &in->sin_addr, 4);
        api_addr_mask(out, 96 + (prefix4 > 32 ? 32 : prefix4));
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(out, &in6->sin6_addr, 16);
        if (memcmp(out, mapped, 12) == 0)
            api_addr_mask(out, 96 + (prefix4 > 32 ? 32 : prefix4));
        else
            api_addr_mask(out, prefix6);
        return 0;
    }
    return -1;
}
