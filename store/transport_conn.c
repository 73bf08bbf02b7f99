/* store/transport_conn.c — one peer connection's reading side: the frame header (length cap,
 * version, kind, cluster, sender, recipient) checked before the payload is allocated, each frame
 * dispatched to the handlers (a JOIN answered on its connection, a removed member still sending told
 * so), snapshots received into a temp file that is delivered only when whole and checked, and the
 * REMOVED notice read back on an outgoing connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/crc32c.h"
#include "store/fileio.h"
#include "store/list.h"
#include "store/transport_int.h"

static void conn_closed_cb(uv_handle_t *h)
{
    struct tr_conn *c = (struct tr_conn *)h;
    tr_tls_conn_free(c);
    free(c->payload);
    free(c);
}

/* Drop a snapshot being received: the temp file goes, nothing is delivered. */
static void snap_abort(struct tr_conn *c)
{
    if (!c->snap_active)
        return;
    const struct fileio *io = fileio_posix();
    io->close(io->ctx, c->snap_fd);
    io->unlink(io->ctx, c->snap_tmp);
    c->snap_active = false;
}

void tr_conn_close(struct tr_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    snap_abort(c);
    if (c->peer != NULL)
        tr_peer_disconnected(c->peer);
    else {
        LIST_UNLINK(c->t->accepted, c, prev, next);
        c->t->n_accepted--;
    }
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct tr_conn *c = (struct tr_conn *)h;
    *buf = uv_buf_init((char *)c->rbuf, sizeof(c->rbuf));
}

/* ---- receiving snapshots ---- */

static int snap_begin(struct tr_conn *c, uint64_t from, const uint8_t *p, size_t n)
{
    struct transport *t = c->t;
    struct raft_message m;
    if (raft_msg_decode(p, n, &m, NULL) != 0)
        return -1;
    if (m.type != RAFT_MSG_SNAPSHOT || m.snapshot.len != 0 || m.from != from || m.to != t->cfg.self_id) {
        raft_msg_release(&m, NULL);
        return -1;
    }
    snap_abort(c); /* a new stream replaces an unfinished one */
    int w = snprintf(c->snap_tmp, sizeof(c->snap_tmp), "%s/snap-recv-%016llx-%llu.tmp", t->snap_dir,
                     (unsigned long long)from, (unsigned long long)++t->snap_seq);
    if (w < 0 || (size_t)w >= sizeof(c->snap_tmp))
        return -1;
    const struct fileio *io = fileio_posix();
    int fd = io->open(io->ctx, c->snap_tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    c->snap_msg = m; /* a snapshot message has no entries: nothing points into the frame */
    c->snap_fd = fd;
    c->snap_off = 0;
    c->snap_crc = 0;
    c->snap_active = true;
    return 0;
}

static int snap_data(struct tr_conn *c, const uint8_t *p, size_t n)
{
    if (!c->snap_active || n > TR_CHUNK)
        return -1;
    const struct fileio *io = fileio_posix();
    if (fileio_pwrite_all(io, c->snap_fd, p, n, (off_t)c->snap_off) < 0)
        return -1; /* the connection closes and the temp file goes */
    c->snap_crc = crc32c_update(c->snap_crc, p, n);
    c->snap_off += n;
    return 0;
}

/* The end frame: a matching CRC makes the file durable under its final name and delivers it; a
 * mismatch deletes it and delivers nothing (the connection stays: the frames themselves were fine). */
static int snap_end(struct tr_conn *c, const uint8_t *p, size_t n)
{
    if (!c->snap_active || n != 4)
        return -1;
    struct transport *t = c->t;
    const struct fileio *io = fileio_posix();
    if (le_get32(p) != c->snap_crc || io->fsync(io->ctx, c->snap_fd) < 0) {
        snap_abort(c);
        return 0;
    }
    char final[PATH_MAX];
    size_t tl = strlen(c->snap_tmp);
    memcpy(final, c->snap_tmp, tl - 4);
    memcpy(final + tl - 4, ".snap", 6);
    if (io->rename(io->ctx, c->snap_tmp, final) < 0) {
        snap_abort(c);
        return 0;
    }
    io->close(io->ctx, c->snap_fd);
    c->snap_active = false;
    io->sync_dir(io->ctx, t->snap_dir);
    struct raft_message m = c->snap_msg;
    m.snapshot.len = c->snap_off;
    m.snapshot.data = NULL;
    t->cfg.h.message(t->cfg.h.arg, &m, final);
    return 0;
}

/* ---- frames ---- */

/* The fixed header is whole: check it before anything is allocated for the payload. Returns -1 if
 * the frame is malformed (the caller closes the connection); a foreign frame is counted and its
 * payload skipped without being stored. */
static int header_check(struct tr_conn *c)
{
    struct transport *t = c->t;
    const uint8_t *h = c->hdr;
    uint32_t len = le_get32(h);
    uint8_t version = h[4], kind = h[5];
    uint64_t cluster = le_get64(h + 6), from = le_get64(h + 14), to = le_get64(h + 22);
    if (len < TR_HEADER_REST || len > TR_MAX_FRAME || version != TR_VERSION || kind < TR_RAFT ||
        kind > TR_JOIN)
        return -1;
    size_t n = len - TR_HEADER_REST;
    if (kind == TR_JOIN) {
        /* a member starting to join asks who it is: it knows no IDs yet, so none are checked; one
         * question per connection, before anything else */
        if (c->bound_from != 0 || n == 0 || n > TR_JOIN_MAX || t->cfg.h.join == NULL)
            return -1;
        c->payload_len = n;
        c->payload_got = 0;
        return (c->payload = malloc(n)) == NULL ? -1 : 0;
    }
    if (cluster != t->cfg.cluster_id || to != t->cfg.self_id || tr_peer_find(t, from) == NULL) {
        t->dropped_foreign++;
        c->skip = n;
        if (cluster == t->cfg.cluster_id && to == t->cfg.self_id && !c->told_removed && tr_gone(t, from)) {
            c->told_removed = true; /* a removed member still talking: tell it, once per connection */
            tr_conn_reply(c, TR_REMOVED, from, NULL, 0);
        }
        return 0;
    }
    if (c->bound_from != 0 && c->bound_from != from)
        return -1; /* one connection carries one member's frames */
    /* payload sizes fixed by the kind are checked before allocating too */
    if ((kind == TR_FORWARD && n < 8) || (kind == TR_FORWARD_CONF && (n < 17 || n > 17 + TR_JOIN_MAX)) || (kind == TR_FORWARDED && n != 28) ||
        (kind == TR_SNAP_END && n != 4) || (kind == TR_SNAP_DATA && n > TR_CHUNK))
        return -1;
    if (c->bound_from == 0) {
        c->bound_from = from;
        tr_peer_heard(tr_peer_find(t, from));
    }
    c->payload_len = n;
    c->payload_got = 0;
    if ((c->payload = malloc(n ? n : 1)) == NULL)
        return -1;
    return 0;
}

/* One whole frame from a configured member (header checked). -1: malformed, close. */
static int frame_dispatch(struct tr_conn *c, const uint8_t *p, size_t n)
{
    struct transport *t = c->t;
    const struct transport_handlers *h = &t->cfg.h;
    uint8_t kind = c->hdr[5];
    uint64_t from = le_get64(c->hdr + 14), to = le_get64(c->hdr + 22);
    t->received++;
    if (kind == TR_JOIN)
        t->received--; /* not a member's frame */
    switch (kind) {
    case TR_RAFT: {
        struct raft_message m;
        if (raft_msg_decode(p, n, &m, NULL) != 0)
            return -1;
        int ok = m.type != RAFT_MSG_SNAPSHOT && m.from == from && m.to == to;
        if (ok)
            h->message(h->arg, &m, NULL); /* entry data points into p, alive until we return */
        raft_msg_release(&m, NULL);
        return ok ? 0 : -1;
    }
    case TR_FORWARD:
        if (h->forward != NULL)
            h->forward(h->arg, from, le_get64(p), p + 8, n - 8);
        return 0;
    case TR_FORWARDED:
        if (h->forwarded != NULL)
            h->forwarded(h->arg, le_get64(p), le_get64(p + 8), le_get64(p + 16), (int32_t)le_get32(p + 24));
        return 0;
    case TR_FORWARD_CONF:
        if (h->forward_conf != NULL)
            h->forward_conf(h->arg, from, le_get64(p), p[8], le_get64(p + 9), (const char *)p + 17, n - 17);
        return 0;
    case TR_JOIN: {
        uint8_t *out = malloc(TRANSPORT_JOIN_REPLY_MAX);
        size_t out_len = 0;
        uint64_t id = out ? h->join(h->arg, (const char *)p, n, out, TRANSPORT_JOIN_REPLY_MAX, &out_len) : 0;
        tr_conn_reply(c, TR_JOINED, id, out, id ? out_len : 0);
        free(out);
        c->bound_from = UINT64_MAX; /* nothing else on this connection */
        return 0;
    }
    case TR_SNAP:
        return snap_begin(c, from, p, n);
    case TR_SNAP_DATA:
        return snap_data(c, p, n);
    default:
        return snap_end(c, p, n);
    }
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Feed received (plaintext) bytes through the framing: header, then payload (stored, or skipped
 * for a foreign frame). Stops at the first malformed frame. */
static int conn_feed(struct tr_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0 && !c->closing) {
        size_t k;
        if (c->skip > 0) {
            k = min_size(c->skip, n);
            c->skip -= k;
        } else if (c->payload == NULL) {
            k = min_size(TR_HEADER - c->hdr_got, n);
            memcpy(c->hdr + c->hdr_got, p, k);
            c->hdr_got += k;
            if (c->hdr_got >= 4 && (le_get32(c->hdr) < TR_HEADER_REST || le_get32(c->hdr) > TR_MAX_FRAME))
                return -1; /* a bad length closes at once, without waiting for the rest */
            if (c->hdr_got == TR_HEADER) {
                c->hdr_got = 0;
                if (header_check(c) != 0)
                    return -1;
            }
        } else {
            k = min_size(c->payload_len - c->payload_got, n);
            memcpy(c->payload + c->payload_got, p, k);
            c->payload_got += k;
        }
        p += k;
        n -= k;
        if (c->payload != NULL && c->payload_got == c->payload_len) {
            int rv = frame_dispatch(c, c->payload, c->payload_len);
            free(c->payload);
            c->payload = NULL;
            if (rv != 0)
                return -1;
        }
    }
    return 0;
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tr_conn *c = (struct tr_conn *)s;
    if (c->closing)
        return;
    if (nread < 0) {
        tr_conn_close(c);
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    int rv = c->ssl ? tr_tls_recv(c, p, (size_t)nread, conn_feed) : conn_feed(c, p, (size_t)nread);
    if (rv != 0)
        tr_conn_close(c);
}

void tr_conn_accepted(struct tr_conn *c)
{
    if ((c->t->tls && tr_tls_start(c, false) != 0) ||
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0)
        tr_conn_close(c);
}

/* The one frame that comes back on an outgoing connection: REMOVED (no payload), the peer's word
 * that we were removed from the membership. Anything else is a protocol error (-1: close). */
static int outgoing_feed(struct tr_conn *c, const uint8_t *p, size_t n)
{
    struct transport *t = c->t;
    while (n > 0) {
        size_t k = min_size(TR_HEADER - c->hdr_got, n);
        memcpy(c->hdr + c->hdr_got, p, k);
        c->hdr_got += k;
        p += k;
        n -= k;
        if (c->hdr_got < TR_HEADER)
            return 0;
        c->hdr_got = 0;
        const uint8_t *h = c->hdr;
        if (le_get32(h) != TR_HEADER_REST || h[4] != TR_VERSION || h[5] != TR_REMOVED ||
            le_get64(h + 6) != t->cfg.cluster_id || le_get64(h + 14) != c->peer->cfg.id ||
            le_get64(h + 22) != t->cfg.self_id)
            return -1;
        if (t->cfg.h.removed != NULL)
            t->cfg.h.removed(t->cfg.h.arg, c->peer->cfg.id);
    }
    return 0;
}

/* Our outgoing connections carry no frames back but REMOVED: other bytes from the peer (beyond the
 * TLS handshake) are a protocol error, EOF means it went away. Either way the connection closes and
 * the peer reconnects. */
static void outgoing_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tr_conn *c = (struct tr_conn *)s;
    if (nread == 0 || c->closing)
        return;
    const uint8_t *p = (const uint8_t *)buf->base;
    if (nread < 0 || (c->ssl ? tr_tls_recv(c, p, (size_t)nread, outgoing_feed) : outgoing_feed(c, p, (size_t)nread)) != 0)
        tr_conn_close(c);
}

void tr_conn_read_outgoing(struct tr_conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, outgoing_read_cb) != 0)
        tr_conn_close(c);
    else if (c->t->tls == NULL)
        tr_peer_ready(c->peer);
    else if (tr_tls_start(c, true) != 0)
        tr_conn_close(c);
}
