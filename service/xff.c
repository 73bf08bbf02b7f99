/* service/xff.c — X-Forwarded-For behind --trusted-proxy networks (see xff.h for the rule). */
#include "service/xff.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* At most this many entries are looked at; a longer chain is as untrustworthy as garbage. */
#define XFF_MAX_HOPS 64

static bool in_net(const struct svc_cidr *c, const uint8_t a[16])
{
    unsigned full = c->bits / 8, rem = c->bits % 8;
    if (memcmp(c->addr, a, full) != 0)
        return false;
    if (rem == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rem));
    return (c->addr[full] & mask) == (a[full] & mask);
}

bool xff_trusted(const struct svc_xff *x, const uint8_t addr[16])
{
    for (size_t i = 0; i < x->n; i++)
        if (in_net(&x->nets[i], addr))
            return true;
    return false;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int xff_parse_addr(const char *s, size_t n, uint8_t out[16])
{
    char buf[64];
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return -1;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL)
            return -1;
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest != 0 && !(close[1] == ':' && all_digits(close + 2, rest - 1)))
            return -1;
        size_t hl = (size_t)(close - s - 1);
        memcpy(buf, s + 1, hl);
        buf[hl] = '\0';
        return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    const char *colon = strchr(buf, ':');
    if (colon != NULL && strchr(colon + 1, ':') != NULL) /* bare IPv6 */
        return inet_pton(AF_INET6, buf, out) == 1 ? 0 : -1;
    if (colon != NULL) { /* IPv4:port */
        if (!all_digits(colon + 1, strlen(colon + 1)))
            return -1;
        buf[colon - buf] = '\0';
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, buf, &a4) != 1)
        return -1;
    memcpy(out, v4_mapped, 12);
    memcpy(out + 12, &a4, 4);
    return 0;
}

void xff_pick(const struct svc_xff *x, const uint8_t peer[16], const h2o_iovec_t *values, size_t n_values,
              uint8_t out[16])
{
    memcpy(out, peer, 16);
    if (!xff_trusted(x, peer))
        return;
    int hops = 0;
    for (size_t v = n_values; v-- > 0;) {
        const char *base = values[v].base;
        size_t end = values[v].len;
        for (;;) {
            size_t start = end;
            while (start > 0 && base[start - 1] != ',')
                start--;
            uint8_t a[16];
            if (++hops > XFF_MAX_HOPS || xff_parse_addr(base + start, end - start, a) != 0)
                return; /* out is the last trusted hop */
            memcpy(out, a, 16);
            if (!xff_trusted(x, a))
                return;
            if (start == 0)
                break;
            end = start - 1;
        }
    }
}

int xff_client_addr(void *arg, h2o_req_t *req, struct sockaddr_storage *out, socklen_t *len)
{
    const struct svc_xff *x = arg;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (req->conn->callbacks->get_peername == NULL)
        return -1;
    socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    uint8_t peer[16];
    if (ss.ss_family == AF_INET && sl >= (socklen_t)sizeof(struct sockaddr_in)) {
        memcpy(peer, v4_mapped, 12);
        memcpy(peer + 12, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6 && sl >= (socklen_t)sizeof(struct sockaddr_in6)) {
        memcpy(peer, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    } else {
        return -1;
    }
    uint8_t client[16];
    h2o_iovec_t values[16];
    size_t n = 0;
    if (x != NULL && x->n > 0 && xff_trusted(x, peer)) {
        bool overflow = false;
        for (ssize_t i = -1;
             (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-forwarded-for"), i)) != -1;) {
            if (n == sizeof(values) / sizeof(values[0])) {
                overflow = true; /* the right-most lines are out of reach: believe none */
                break;
            }
            values[n++] = req->headers.entries[i].value;
        }
        xff_pick(x, peer, values, overflow ? 0 : n, client);
    } else {
        memcpy(client, peer, 16);
    }
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
    memset(out, 0, sizeof(*out));
    a6->sin6_family = AF_INET6;
    memcpy(&a6->sin6_addr, client, 16);
    *len = sizeof(*a6);
    return 0;
}
