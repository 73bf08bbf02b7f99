/* store/node_join.c — the joining member's side of the JOIN exchange (see node_join.h): one TCP (or
 * TLS) connection per question, blocking with a deadline, one frame out and one frame back.
 */
#define _GNU_SOURCE
#include "store/node_join.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <openssl/ssl.h>

#include "store/le.h"
#include "store/node_members.h"
#include "store/transport.h"

#define JOIN_HEADER 30 /* the transport's frame header */
#define JOIN_KIND 8
#define JOINED_KIND 9

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is readable (events POLLIN) or writable (POLLOUT), at most until deadline. */
static bool wait_fd(int fd, short events, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return false;
    struct pollfd p = {.fd = fd, .events = events};
    return poll(&p, 1, (int)left) == 1;
}

struct link {
    int fd;
    SSL *ssl;
    int64_t deadline;
};

static int link_io(struct link *l, uint8_t *buf, size_t n, bool out)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k;
        if (l->ssl) {
            int r = out ? SSL_write(l->ssl, buf + done, (int)(n - done)) : SSL_read(l->ssl, buf + done, (int)(n - done));
            if (r > 0) {
                done += (size_t)r;
                continue;
            }
            int e = SSL_get_error(l->ssl, r);
            if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
                !wait_fd(l->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, l->deadline))
                return -1;
            continue;
        }
        k = out ? send(l->fd, buf + done, n - done, MSG_NOSIGNAL) : recv(l->fd, buf + done, n - done, 0);
        if (k > 0)
            done += (size_t)k;
        else if ((k < 0 && errno != EAGAIN && errno != EINTR) || k == 0 ||
                 !wait_fd(l->fd, out ? POLLOUT : POLLIN, l->deadline))
            return -1;
    }
    return 0;
}

static int connect_to(const struct node_member *m, int64_t deadline)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", m->port);
    if (getaddrinfo(m->host, port, &hints, &ai) != 0 || ai == NULL)
        return -1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int ok = fd >= 0 && (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS);
    freeaddrinfo(ai);
    if (ok && wait_fd(fd, POLLOUT, deadline)) {
        int e = 0;
        socklen_t el = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e == 0)
            return fd;
    }
    if (fd >= 0)
        close(fd);
    return -1;
}

/* One question to m. 1: answered and we are a member; 0: answered, no such member; -1: no answer. */
static int ask(const struct node_member *m, const char *url, SSL_CTX *tls, int64_t deadline,
               struct node_join_result *out)
{
    struct link l = {.fd = connect_to(m, deadline), .deadline = deadline};
    if (l.fd < 0)
        return -1;
    int rv = -1;
    size_t ul = strlen(url);
    uint8_t hdr[JOIN_HEADER + 512];
    uint8_t *payload = NULL;
    if (tls) {
        if (!(l.ssl = SSL_new(tls)) || SSL_set_fd(l.ssl, l.fd) != 1)
            goto out;
        SSL_set_connect_state(l.ssl);
    }
    memset(hdr, 0, JOIN_HEADER);
    le_put32(hdr, (uint32_t)(JOIN_HEADER - 4 + ul));
    hdr[4] = 1;
    hdr[5] = JOIN_KIND;
    memcpy(hdr + JOIN_HEADER, url, ul);
    if (link_io(&l, hdr, JOIN_HEADER + ul, true) != 0 || link_io(&l, hdr, JOIN_HEADER, false) != 0)
        goto out;
    uint32_t len = le_get32(hdr);
    if (hdr[4] != 1 || hdr[5] != JOINED_KIND || len < JOIN_HEADER - 4 ||
        len - (JOIN_HEADER - 4) > TRANSPORT_JOIN_REPLY_MAX)
        goto out;
    size_t n = len - (JOIN_HEADER - 4);
    if (!(payload = malloc(n ? n : 1)) || link_io(&l, payload, n, false) != 0)
        goto out;
    out->cluster_id = le_get64(hdr + 6);
    out->member_id = le_get64(hdr + 22);
    char why[128];
    if (out->member_id == 0)
        rv = 0;
    else if (out->cluster_id != 0 && node_members_decode(payload, n, out->members, &out->n, why, sizeof(why)) == 0)
        rv = 1;
out:
    free(payload);
    if (l.ssl)
        SSL_free(l.ssl);
    close(l.fd);
    return rv;
}

static SSL_CTX *tls_client(const struct node_cluster *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
        SSL_CTX_use_certificate_chain_file(ctx, c->cert) == 1 &&
        SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) == 1 &&
        SSL_CTX_load_verify_locations(ctx, c->ca, NULL) == 1) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        return ctx;
    }
    snprintf(err, errlen, "--peer-cert-file, --peer-key-file or --peer-trusted-ca-file: cannot be loaded");
    SSL_CTX_free(ctx);
    return NULL;
}

int node_join(const struct node_cluster *c, int64_t timeout_ms, struct node_join_result *out, char *err,
              size_t errlen)
{
    memset(out, 0, sizeof(*out));
    const char *url = c->members[c->self].peer_url;
    SSL_CTX *tls = NULL;
    if (c->cert && !(tls = tls_client(c, err, errlen)))
        return -1;
    int64_t end = now_ms() + timeout_ms;
    bool answered = false;
    int rv = -1;
    while (rv != 1 && now_ms() < end) {
        for (size_t i = 0; i < c->n && rv != 1; i++) {
            if (i == c->self)
                continue;
            int64_t deadline = now_ms() + 1000;
            rv = ask(&c->members[i], url, tls, deadline < end ? deadline : end, out);
            answered |= rv >= 0;
        }
        if (rv != 1)
            usleep(200 * 1000);
    }
    SSL_CTX_free(tls);
    if (rv == 1) {
        for (size_t i = 0; i < out->n; i++)
            if (out->members[i].id == out->member_id)
                return 0;
        snprintf(err, errlen, "--initial-cluster-state existing: the member table sent lacks our own ID");
        return -1;
    }
    if (answered)
        snprintf(err, errlen,
                 "--initial-cluster-state existing: no member of --initial-cluster knows the peer URL %s; "
                 "add it first (POST /v2/members {\"peerURLs\":[\"%s\"]})",
                 url, url);
    else
        snprintf(err, errlen,
                 "--initial-cluster-state existing: no member of --initial-cluster answered on its peer URL");
    return -1;
}
