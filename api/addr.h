/* api/addr.h — client address keys for rate limits and the parked-watch cap.
 *
 * Pure. An address becomes 16 bytes: IPv4 mapped into ::ffff:0:0/96, then masked, so that one
 * key space serves both families and a whole IPv6 /64 (one customer's subnet) counts as one.
 */
#ifndef DISCOVERYD_API_ADDR_H
#define DISCOVERYD_API_ADDR_H

#include <stdint.h>
#include <sys/socket.h>

/* Mask lengths for the classes the api asks about. */
#define API_ADDR_V4_HOST 32
#define API_ADDR_V6_HOST 64
#define API_ADDR_V4_RANGE 24
#define API_ADDR_V6_RANGE 48

/* Fill out from sa: IPv4 (or IPv4-mapped IPv6) keeps prefix4 bits of the IPv4 address, IPv6
 * keeps prefix6 bits. 0, or -1 for another family or a short sockaddr (out is zeroed). */
int api_addr_key(const struct sockaddr *sa, socklen_t len, unsigned prefix4, unsigned prefix6,
                 uint8_t out[16]);

/* Keep the first bits of the 16-byte key, zero the rest. */
void api_addr_mask(uint8_t key[16], unsigned bits);

#endif
