/* service/xff.h — the client's address behind trusted proxies: the api's client_addr hook.
 *
 * The socket peer is the client unless --trusted-proxy names it; then X-Forwarded-For is read
 * from the right (the entries a trusted proxy appended) and the right-most entry that is not a
 * trusted proxy is the client. An entry that is not an address stops the walk: the last trusted
 * hop is then the client, so a forged or broken header can only ever make a client count as its
 * proxy, never as someone else. Pure functions plus the hook; the hook runs on HTTP threads,
 * reads only the request and the read-only list, and never blocks.
 */
#ifndef DISCOVERYD_SERVICE_XFF_H
#define DISCOVERYD_SERVICE_XFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include <sys/socket.h>
#include "service/config.h"

struct svc_xff {
    const struct svc_cidr *nets;
    size_t n;
};

/* addr (16 bytes, IPv4 mapped) lies in one of the trusted networks. */
bool xff_trusted(const struct svc_xff *x, const uint8_t addr[16]);

/* One X-Forwarded-For element: "192.0.2.1", "192.0.2.1:443", "2001:db8::1", "[2001:db8::1]",
 * "[2001:db8::1]:443" (surrounding spaces allowed). 0 with out (IPv4 mapped), or -1. */
int xff_parse_addr(const char *s, size_t n, uint8_t out[16]);

/* The client's address: peer, or the walk above over the header values given in order (each a
 * comma-separated list). */
void xff_pick(const struct svc_xff *x, const uint8_t peer[16], const h2o_iovec_t *values, size_t n_values,
              uint8_t out[16]);

/* api_config.client_addr: arg is the struct svc_xff. The answer is an AF_INET6 sockaddr (IPv4
 * mapped). 0, or -1 when the peer is unknown. */
int xff_client_addr(void *arg, h2o_req_t *req, struct sockaddr_storage *out, socklen_t *len);

#endif
