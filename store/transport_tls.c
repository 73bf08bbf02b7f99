/* store/transport_tls.c — mutual TLS for peer connections: OpenSSL driven through memory BIOs on
 * the libuv stream (ciphertext in from uv_read, out through uv_write), on the store thread. Every
 * peer presents a certificate from the configured CA and checks the other's against it; a peer
 * without one never gets a frame delivered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "store/transport_int.h"

/* The reason OpenSSL gives for the last failure, or a fallback. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unreadable or invalid";
}

int tr_tls_init(struct transport *t, char *err, size_t errlen)
{
    const struct transport_config *cfg = &t->cfg;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "peer TLS: %s", ssl_reason());
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_num_tickets(ctx, 0); /* no session resumption between peers */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1)
        snprintf(err, errlen, "peer certificate file %s: %s", cfg->cert_file, ssl_reason());
    else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1)
        snprintf(err, errlen, "peer key file %s: %s", cfg->key_file, ssl_reason());
    else if (SSL_CTX_check_private_key(ctx) != 1)
        snprintf(err, errlen, "peer key file %s does not match certificate %s", cfg->key_file,
                 cfg->cert_file);
    else if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1)
        snprintf(err, errlen, "peer trusted CA file %s: %s", cfg->ca_file, ssl_reason());
    else {
        /* both directions: a server asks for the client's certificate and refuses none */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        t->tls = ctx;
        return 0;
    }
    SSL_CTX_free(ctx);
    return -1;
}

void tr_tls_free(struct transport *t)
{
    SSL_CTX_free(t->tls);
    t->tls = NULL;
}

void tr_tls_conn_free(struct tr_conn *c)
{
    SSL_free(c->ssl); /* and its two BIOs */
    c->ssl = NULL;
}

/* Everything OpenSSL has produced for the network, as one malloc'd buffer (NULL, 0 if none). */
static int drain(struct tr_conn *c, uint8_t **out, size_t *len)
{
    BIO *wb = SSL_get_wbio(c->ssl);
    size_t n = BIO_ctrl_pending(wb);
    *out = NULL;
    *len = 0;
    if (n == 0)
        return 0;
    uint8_t *b = malloc(n);
    if (b == NULL || BIO_read(wb, b, (int)n) != (int)n) {
        free(b);
        return -1;
    }
    *out = b;
    *len = n;
    return 0;
}

struct raw_write {
    uv_write_t req;
    uint8_t *data;
};

static void raw_write_cb(uv_write_t *req, int status)
{
    struct raw_write *w = (struct raw_write *)req;
    struct tr_conn *c = (struct tr_conn *)req->handle;
    free(w->data);
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->closing)
        tr_conn_close(c);
}

/* Send what OpenSSL produced outside a frame (handshake, alerts). */
static int flush(struct tr_conn *c)
{
    uint8_t *b;
    size_t n;
    if (drain(c, &b, &n) != 0)
        return -1;
    if (n == 0)
        return 0;
    struct raw_write *w = malloc(sizeof(*w));
    if (w == NULL) {
        free(b);
        return -1;
    }
    w->data = b;
    uv_buf_t buf = uv_buf_init((char *)b, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, raw_write_cb) != 0) {
        free(b);
        free(w);
        return -1;
    }
    return 0;
}

int tr_tls_start(struct tr_conn *c, bool client)
{
    ERR_clear_error();
    c->ssl = SSL_new(c->t->tls);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || rb == NULL || wb == NULL) {
        BIO_free(rb);
        BIO_free(wb);
        return -1;
    }
    SSL_set_bio(c->ssl, rb, wb);
    if (!client) {
        SSL_set_accept_state(c->ssl);
        return 0;
    }
    SSL_set_connect_state(c->ssl);
    int rv = SSL_do_handshake(c->ssl); /* the ClientHello */
    if (rv != 1 && SSL_get_error(c->ssl, rv) != SSL_ERROR_WANT_READ)
        return -1;
    return flush(c);
}

int tr_tls_recv(struct tr_conn *c, const uint8_t *p, size_t n,
                int (*plain)(struct tr_conn *c, const uint8_t *p, size_t n))
{
    ERR_clear_error();
    if (n > 0 && BIO_write(SSL_get_rbio(c->ssl), p, (int)n) != (int)n)
        return -1;
    int rv = 0;
    if (!SSL_is_init_finished(c->ssl)) {
        int hs = SSL_do_handshake(c->ssl);
        if (hs != 1) {
            int e = SSL_get_error(c->ssl, hs);
            rv = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
            if (flush(c) != 0 || rv != 0)
                return -1; /* a refused certificate ends here: the alert goes out, then the close */
            return 0;
        }
        if (c->peer != NULL)
            tr_peer_ready(c->peer); /* our outgoing connection may carry frames now */
    }
    uint8_t buf[16384];
    while (rv == 0 && !c->closing) {
        int got = SSL_read(c->ssl, buf, sizeof(buf));
        if (got > 0) {
            rv = plain(c, buf, (size_t)got);
            continue;
        }
        int e = SSL_get_error(c->ssl, got);
        if (e != SSL_ERROR_WANT_READ)
            rv = -1; /* close_notify or a protocol error */
        break;
    }
    if (!c->closing && flush(c) != 0)
        rv = -1;
    return rv;
}

int tr_tls_encrypt(struct tr_conn *c, const uint8_t *p, size_t n, uint8_t **out, size_t *outlen)
{
    ERR_clear_error();
    if (SSL_write(c->ssl, p, (int)n) != (int)n)
        return -1;
    return drain(c, out, outlen);
}
