/* store/transport.c — the peer transport's members: the listening socket, one outgoing connection
 * per peer with reconnect backoff, peers added and removed at run time (a removed peer's slot is
 * reused once nothing of it is in flight), the bounded per-peer send queue, snapshot streaming from
 * a file, the answers sent back on an accepted connection (JOINED, REMOVED), and the counters.
 * Framing and the receiving side are in transport_conn.c.
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

struct tr_peer *tr_peer_find(struct transport *t, uint64_t id)
{
    for (size_t i = 0; i < t->cfg.n_peers; i++)
        if (t->peers[i].cfg.id == id && !t->peers[i].removed)
            return &t->peers[i];
    return NULL;
}

static size_t queue_cap(const struct transport *t)
{
    return t->cfg.queue_bytes ? t->cfg.queue_bytes : TR_DEFAULT_QUEUE;
}

/* A frame to p of kind with room for payload bytes; the header is filled in. */
static struct tr_frame *frame_new(struct tr_peer *p, uint8_t kind, size_t payload)
{
    struct tr_frame *f = malloc(sizeof(*f) + TR_HEADER + payload);
    if (f == NULL)
        return NULL;
    memset(f, 0, sizeof(*f));
    f->peer = p;
    f->kind = kind;
    f->len = TR_HEADER + payload;
    le_put32(f->data, (uint32_t)(TR_HEADER_REST + payload));
    f->data[4] = TR_VERSION;
    f->data[5] = kind;
    le_put64(f->data + 6, p->t->cfg.cluster_id);
    le_put64(f->data + 14, p->t->cfg.self_id);
    le_put64(f->data + 22, p->cfg.id);
    return f;
}

static void snap_out_end(struct tr_peer *p)
{
    if (!p->snap.active)
        return;
    const struct fileio *io = fileio_posix();
    io->close(io->ctx, p->snap.fd);
    p->snap.active = false;
}

static void snap_pump(struct tr_peer *p);

static void write_cb(uv_write_t *req, int status)
{
    struct tr_frame *f = (struct tr_frame *)req;
    struct tr_peer *p = f->peer;
    p->queued_bytes -= f->len;
    bool snap_frame = f->kind >= TR_SNAP && f->kind <= TR_SNAP_END && f->snap_gen == p->snap.gen;
    if (status < 0) {
        p->dropped++;
        if (snap_frame)
            snap_out_end(p);
        if (p->conn != NULL && (uv_stream_t *)&p->conn->tcp == req->handle)
            tr_conn_close(p->conn);
    } else {
        p->sent++;
        if (snap_frame && f->kind == TR_SNAP_END) {
            p->snapshots_sent++;
            snap_out_end(p);
        } else if (snap_frame && !p->t->stopping) {
            snap_pump(p); /* the previous chunk left: read the next one */
        }
    }
    free(f->cipher);
    free(f);
}

static int frame_write(struct tr_peer *p, struct tr_frame *f)
{
    uv_buf_t b = uv_buf_init((char *)f->data, (unsigned)f->len);
    size_t n;
    int rv = 0;
    if (p->conn->ssl != NULL && (rv = tr_tls_encrypt(p->conn, f->data, f->len, &f->cipher, &n)) == 0)
        b = uv_buf_init((char *)f->cipher, (unsigned)n);
    if (rv != 0 || (rv = uv_write(&f->req, (uv_stream_t *)&p->conn->tcp, &b, 1, write_cb)) != 0) {
        p->queued_bytes -= f->len;
        p->dropped++;
        free(f->cipher);
        free(f);
        tr_conn_close(p->conn);
    }
    return rv;
}

/* Queue f (whose bytes are already counted in queued_bytes): written now if connected. */
static void frame_push(struct tr_peer *p, struct tr_frame *f)
{
    if (p->connected)
        frame_write(p, f);
    else
        LIST_APPEND_T(p->wait_head, p->wait_tail, f, prev, next);
}

/* Admit a frame under the queue cap, or drop it and count it. */
static int frame_admit(struct tr_peer *p, struct tr_frame *f)
{
    if (p->queued_bytes + f->len > queue_cap(p->t)) {
        p->dropped++;
        free(f);
        return -ENOBUFS;
    }
    p->queued_bytes += f->len;
    frame_push(p, f);
    return 0;
}

/* ---- connecting ---- */

static void peer_connect(struct tr_peer *p);

static void backoff_cb(uv_timer_t *timer)
{
    struct tr_peer *p = timer->data;
    if (!p->t->stopping && !p->removed && p->conn == NULL && p->resolve == NULL)
        peer_connect(p);
}

void tr_peer_heard(struct tr_peer *p)
{
    if (p->conn != NULL || p->resolve != NULL || p->removed || p->t->stopping)
        return;
    uv_timer_stop(&p->timer);
    p->backoff_ms = TR_BACKOFF_MIN_MS;
    peer_connect(p);
}

void tr_peer_disconnected(struct tr_peer *p)
{
    p->conn = NULL;
    p->connected = false;
    snap_out_end(p); /* a stream does not survive its connection: the receiver drops its temp file */
    if (p->t->stopping || p->removed)
        return;
    uv_timer_start(&p->timer, backoff_cb, p->backoff_ms, 0);
    p->backoff_ms = p->backoff_ms * 2 > TR_BACKOFF_MAX_MS ? TR_BACKOFF_MAX_MS : p->backoff_ms * 2;
}

void tr_peer_ready(struct tr_peer *p)
{
    p->connected = true;
    p->backoff_ms = TR_BACKOFF_MIN_MS;
    while (p->wait_head != NULL && p->connected) {
        struct tr_frame *f = p->wait_head;
        LIST_UNLINK_T(p->wait_head, p->wait_tail, f, prev, next);
        frame_write(p, f);
    }
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct tr_conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0)
        tr_conn_close(c);
    else
        tr_conn_read_outgoing(c); /* then tr_peer_ready, after the TLS handshake if any */
}

static void connect_addr(struct tr_peer *p, const struct sockaddr *sa)
{
    struct transport *t = p->t;
    struct tr_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        tr_peer_disconnected(p); /* try again after the backoff */
        return;
    }
    c->t = t;
    c->peer = p;
    c->creq.data = c;
    uv_tcp_init(t->cfg.loop, &c->tcp);
    p->conn = c;
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_tcp_connect(&c->creq, &c->tcp, sa, connect_cb) != 0)
        tr_conn_close(c);
}

/* A name is resolved at each connect, on libuv's thread pool so a slow resolver never stalls the
 * store thread. The request outlives nothing: transport_free waits for the last one to return. */
struct tr_resolve {
    uv_getaddrinfo_t req;
    struct tr_peer *p;
};

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
    struct tr_resolve *r = (struct tr_resolve *)req;
    struct tr_peer *p = r->p;
    struct transport *t = p->t;
    p->resolve = NULL;
    t->resolving--;
    if (!t->stopping && !p->removed) {
        if (status != 0 || ai == NULL) {
            tr_peer_disconnected(p);
        } else {
            /* a name with several addresses: each attempt takes the next one */
            size_t n = 0;
            for (struct addrinfo *a = ai; a != NULL; a = a->ai_next)
                n++;
            struct addrinfo *a = ai;
            for (size_t k = p->attempts++ % n; k > 0; k--)
                a = a->ai_next;
            struct sockaddr_storage ss;
            memcpy(&ss, a->ai_addr, a->ai_addrlen);
            if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *)&ss)->sin_port = htons(p->cfg.port);
            else
                ((struct sockaddr_in6 *)&ss)->sin6_port = htons(p->cfg.port);
            connect_addr(p, (const struct sockaddr *)&ss);
        }
    }
    uv_freeaddrinfo(ai);
    free(r);
    if (t->freed && t->resolving == 0)
        free(t);
}

static void peer_connect(struct tr_peer *p)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(p->cfg.host, p->cfg.port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(p->cfg.host, p->cfg.port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_addr(p, (const struct sockaddr *)&ss);
        return;
    }
    struct tr_resolve *r = malloc(sizeof(*r));
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (r == NULL) {
        tr_peer_disconnected(p);
        return;
    }
    r->p = p;
    if (uv_getaddrinfo(p->t->cfg.loop, &r->req, resolved_cb, p->cfg.host, NULL, &hints) != 0) {
        free(r);
        tr_peer_disconnected(p);
        return;
    }
    p->resolve = r;
    p->t->resolving++;
}

/* ---- listening ---- */

static void accept_cb(uv_stream_t *server, int status)
{
    struct transport *t = server->data;
    if (status < 0 || t->stopping)
        return;
    struct tr_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->t = t;
    uv_tcp_init(t->cfg.loop, &c->tcp);
    LIST_PREPEND(t->accepted, c, prev, next);
    t->n_accepted++;
    /* over the cap the connection is taken off the backlog and closed at once */
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || t->n_accepted > TR_MAX_ACCEPTED) {
        tr_conn_close(c);
        return;
    }
    tr_conn_accepted(c);
}

static int remove_stale_tmp(void *arg, const char *name)
{
    struct transport *t = arg;
    size_t n = strlen(name);
    if (strncmp(name, "snap-recv-", 10) != 0 || n < 4 || strcmp(name + n - 4, ".tmp") != 0)
        return 0;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", t->snap_dir, name) < (int)sizeof(path))
        fileio_posix()->unlink(NULL, path);
    return 0;
}

static void free_on_close(uv_handle_t *h)
{
    free(h->data);
}

static int check_config(const struct transport_config *cfg, char *err, size_t errlen)
{
    int tls_files = !!cfg->cert_file + !!cfg->key_file + !!cfg->ca_file;
    if (tls_files != 0 && tls_files != 3) {
        snprintf(err, errlen,
                 "peer TLS needs all three of a certificate, a key and a trusted CA file, or none");
        return -1;
    }
    if (cfg->loop == NULL || cfg->self_id == 0 || cfg->h.message == NULL) {
        snprintf(err, errlen, "transport: loop, self id and message handler are required");
        return -1;
    }
    if (cfg->snap_recv_dir == NULL || strlen(cfg->snap_recv_dir) + 64 > PATH_MAX) {
        snprintf(err, errlen, "transport: a snapshot receive directory (of a sane length) is required");
        return -1;
    }
    if (cfg->n_peers > TRANSPORT_MAX_PEERS) {
        snprintf(err, errlen, "transport: %zu peers, at most %d", cfg->n_peers, TRANSPORT_MAX_PEERS);
        return -1;
    }
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const struct transport_peer *p = &cfg->peers[i];
        if (p->id == 0 || p->id == cfg->self_id || memchr(p->host, 0, sizeof(p->host)) == NULL) {
            snprintf(err, errlen, "transport: peer %zu: bad id or host", i);
            return -1;
        }
        for (size_t j = 0; j < i; j++)
            if (cfg->peers[j].id == p->id) {
                snprintf(err, errlen, "transport: peer id %llx given twice", (unsigned long long)p->id);
                return -1;
            }
    }
    return 0;
}

int transport_start(struct transport **out, const struct transport_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (check_config(cfg, err, errlen) != 0)
        return -1;
    const struct fileio *io = fileio_posix();
    int rv = io->mkdir(io->ctx, cfg->snap_recv_dir, 0700);
    if (rv < 0 && rv != -EEXIST) {
        snprintf(err, errlen, "snapshot receive directory %s: %s", cfg->snap_recv_dir, strerror(-rv));
        return -1;
    }
    struct sockaddr_storage ss;
    if (uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "peer listen address %s is not a numeric IPv4 or IPv6 address",
                 cfg->listen_host);
        return -1;
    }
    struct transport *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "transport: out of memory");
        return -1;
    }
    t->cfg = *cfg;
    snprintf(t->snap_dir, sizeof(t->snap_dir), "%s", cfg->snap_recv_dir);
    t->cfg.snap_recv_dir = t->snap_dir;
    io->list_dir(io->ctx, t->snap_dir, remove_stale_tmp, t); /* left by a crash mid-stream */
    if (cfg->cert_file != NULL && tr_tls_init(t, err, errlen) != 0) {
        free(t);
        return -1;
    }

    uv_tcp_init(cfg->loop, &t->listener);
    t->listener.data = t;
    int len = sizeof(ss);
    if ((rv = uv_tcp_bind(&t->listener, (const struct sockaddr *)&ss, 0)) != 0 ||
        (rv = uv_listen((uv_stream_t *)&t->listener, 128, accept_cb)) != 0 ||
        (rv = uv_tcp_getsockname(&t->listener, (struct sockaddr *)&ss, &len)) != 0) {
        snprintf(err, errlen, "cannot listen for peers on %s:%u: %s", cfg->listen_host, cfg->listen_port,
                 uv_strerror(rv));
        tr_tls_free(t);
        uv_close((uv_handle_t *)&t->listener, free_on_close); /* frees t once the loop ran */
        return -1;
    }
    t->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    for (size_t i = 0; i < cfg->n_peers; i++) {
        struct tr_peer *p = &t->peers[i];
        p->t = t;
        p->cfg = cfg->peers[i];
        p->backoff_ms = TR_BACKOFF_MIN_MS;
        uv_timer_init(cfg->loop, &p->timer);
        p->timer.data = p;
        peer_connect(p);
    }
    *out = t;
    return 0;
}

uint16_t transport_port(const struct transport *t)
{
    return t->port;
}

/* ---- sending ---- */

int transport_send(struct transport *t, const struct raft_message *m)
{
    struct tr_peer *p = tr_peer_find(t, m->to);
    if (p == NULL)
        return -ENOENT;
    if (m->type == RAFT_MSG_SNAPSHOT)
        return -EINVAL;
    size_t n = raft_msg_size(m);
    if (n > TR_MAX_FRAME - TR_HEADER_REST) {
        p->dropped++;
        return -EMSGSIZE;
    }
    struct tr_frame *f = frame_new(p, TR_RAFT, n);
    if (f == NULL) {
        p->dropped++;
        return -ENOMEM;
    }
    size_t len;
    if (raft_msg_encode(m, f->data + TR_HEADER, n, &len) != 0) {
        free(f);
        return -EINVAL;
    }
    return frame_admit(p, f);
}

int transport_forward(struct transport *t, uint64_t to, uint64_t req, const uint8_t *cmd, size_t len)
{
    struct tr_peer *p = tr_peer_find(t, to);
    if (p == NULL)
        return -ENOENT;
    if (len > TR_MAX_FRAME - TR_HEADER_REST - 8) {
        p->dropped++;
        return -EMSGSIZE;
    }
    struct tr_frame *f = frame_new(p, TR_FORWARD, 8 + len);
    if (f == NULL) {
        p->dropped++;
        return -ENOMEM;
    }
    le_put64(f->data + TR_HEADER, req);
    if (len > 0)
        memcpy(f->data + TR_HEADER + 8, cmd, len);
    return frame_admit(p, f);
}

int transport_forwarded(struct transport *t, uint64_t to, uint64_t req, uint64_t index, uint64_t term,
                        int status)
{
    struct tr_peer *p = tr_peer_find(t, to);
    if (p == NULL)
        return -ENOENT;
    struct tr_frame *f = frame_new(p, TR_FORWARDED, 28);
    if (f == NULL) {
        p->dropped++;
        return -ENOMEM;
    }
    uint8_t *q = f->data + TR_HEADER;
    le_put64(q, req);
    le_put64(q + 8, index);
    le_put64(q + 16, term);
    le_put32(q + 24, (uint32_t)(int32_t)status);
    return frame_admit(p, f);
}

/* The next piece of the stream, written when the previous one completed: a chunk of at most 1 MiB,
 * or the end frame with the CRC of the whole file. At most one chunk is in memory. */
static void snap_pump(struct tr_peer *p)
{
    struct tr_snap_out *s = &p->snap;
    if (!s->active || !p->connected)
        return;
    struct tr_frame *f;
    if (s->off < s->size) {
        size_t n = s->size - s->off < TR_CHUNK ? (size_t)(s->size - s->off) : TR_CHUNK;
        f = frame_new(p, TR_SNAP_DATA, n);
        ssize_t got = f ? fileio_pread_all(fileio_posix(), s->fd, f->data + TR_HEADER, n, (off_t)s->off) : -1;
        if (got != (ssize_t)n) {
            /* out of memory, or the file shrank under us: give the stream up; closing the
             * connection makes the receiver drop what it has */
            free(f);
            p->dropped++;
            tr_conn_close(p->conn);
            return;
        }
        s->crc = crc32c_update(s->crc, f->data + TR_HEADER, n);
        s->off += n;
    } else {
        if ((f = frame_new(p, TR_SNAP_END, 4)) == NULL) {
            p->dropped++;
            tr_conn_close(p->conn);
            return;
        }
        le_put32(f->data + TR_HEADER, s->crc);
    }
    f->snap_gen = s->gen;
    p->queued_bytes += f->len; /* stream frames go one at a time, outside the cap */
    frame_push(p, f);
}

int transport_send_snapshot(struct transport *t, const struct raft_message *m, const char *path)
{
    struct tr_peer *p = tr_peer_find(t, m->to);
    if (p == NULL)
        return -ENOENT;
    if (m->type != RAFT_MSG_SNAPSHOT)
        return -EINVAL;
    if (p->snap.active)
        return -EBUSY;
    if (!p->connected)
        return -ENOTCONN;
    struct raft_message meta = *m;
    meta.snapshot.len = 0; /* the data follows as chunks, not inline */
    meta.snapshot.data = NULL;
    meta.n_entries = 0;
    meta.entries = NULL;
    size_t n = raft_msg_size(&meta), len;
    const struct fileio *io = fileio_posix();
    int fd = io->open(io->ctx, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return fd;
    uint64_t size;
    int rv = io->size(io->ctx, fd, &size);
    struct tr_frame *f = rv < 0 ? NULL : frame_new(p, TR_SNAP, n);
    if (f == NULL || raft_msg_encode(&meta, f->data + TR_HEADER, n, &len) != 0) {
        io->close(io->ctx, fd);
        free(f);
        return rv < 0 ? rv : -ENOMEM;
    }
    p->snap = (struct tr_snap_out){.active = true, .gen = p->snap.gen + 1, .fd = fd, .size = size};
    f->snap_gen = p->snap.gen;
    p->queued_bytes += f->len;
    frame_push(p, f);
    return 0;
}

/* ---- membership ---- */

static void drop_waiting(struct tr_peer *p)
{
    while (p->wait_head != NULL) {
        struct tr_frame *f = p->wait_head;
        LIST_UNLINK_T(p->wait_head, p->wait_tail, f, prev, next);
        p->queued_bytes -= f->len;
        free(f);
    }
}

int transport_add_peer(struct transport *t, const struct transport_peer *peer)
{
    if (peer->id == 0 || peer->id == t->cfg.self_id || memchr(peer->host, 0, sizeof(peer->host)) == NULL)
        return -EINVAL;
    if (tr_peer_find(t, peer->id) != NULL)
        return -EEXIST;
    struct tr_peer *p = NULL;
    for (size_t i = 0; i < t->cfg.n_peers && p == NULL; i++) {
        struct tr_peer *q = &t->peers[i];
        /* a removed peer's slot once nothing of it is in flight (writes and resolves hold it) */
        if (q->removed && q->conn == NULL && q->resolve == NULL && q->queued_bytes == 0 && !q->snap.active)
            p = q;
    }
    if (p == NULL && t->cfg.n_peers < TRANSPORT_MAX_PEERS) {
        p = &t->peers[t->cfg.n_peers++];
        uv_timer_init(t->cfg.loop, &p->timer);
    }
    if (p == NULL)
        return -ENOSPC;
    uv_timer_t timer = p->timer;
    memset(p, 0, sizeof(*p));
    p->timer = timer;
    p->timer.data = p;
    p->t = t;
    p->cfg = *peer;
    p->backoff_ms = TR_BACKOFF_MIN_MS;
    peer_connect(p);
    return 0;
}

void transport_remove_peer(struct transport *t, uint64_t id)
{
    struct tr_peer *p = tr_peer_find(t, id);
    if (p == NULL)
        return;
    p->removed = true;
    uv_timer_stop(&p->timer);
    drop_waiting(p);
    if (p->conn != NULL)
        tr_conn_close(p->conn); /* frames being written complete (and are counted) on their own */
}

void transport_peer_gone(struct transport *t, uint64_t id)
{
    if (!tr_gone(t, id))
        t->gone[t->n_gone++ % TR_GONE_MAX] = id;
}

bool tr_gone(const struct transport *t, uint64_t id)
{
    size_t n = t->n_gone < TR_GONE_MAX ? t->n_gone : TR_GONE_MAX;
    for (size_t i = 0; i < n; i++)
        if (t->gone[i] == id && tr_peer_find((struct transport *)t, id) == NULL)
            return true;
    return false;
}

int transport_forward_conf(struct transport *t, uint64_t to, uint64_t req, uint8_t op, uint64_t id,
                           const char *url, size_t len)
{
    struct tr_peer *p = tr_peer_find(t, to);
    if (p == NULL)
        return -ENOENT;
    if (len > TR_JOIN_MAX) {
        p->dropped++;
        return -EMSGSIZE;
    }
    struct tr_frame *f = frame_new(p, TR_FORWARD_CONF, 17 + len);
    if (f == NULL) {
        p->dropped++;
        return -ENOMEM;
    }
    le_put64(f->data + TR_HEADER, req);
    f->data[TR_HEADER + 8] = op;
    le_put64(f->data + TR_HEADER + 9, id);
    if (len > 0)
        memcpy(f->data + TR_HEADER + 17, url, len);
    return frame_admit(p, f);
}

struct tr_reply {
    uv_write_t req;
    uint8_t *cipher;
    uint8_t data[];
};

static void reply_cb(uv_write_t *req, int status)
{
    struct tr_reply *r = (struct tr_reply *)req;
    (void)status;
    free(r->cipher);
    free(r);
}

void tr_conn_reply(struct tr_conn *c, uint8_t kind, uint64_t to, const uint8_t *payload, size_t len)
{
    struct transport *t = c->t;
    struct tr_reply *r = calloc(1, sizeof(*r) + TR_HEADER + len);
    if (r == NULL)
        return; /* the joiner asks again */
    le_put32(r->data, (uint32_t)(TR_HEADER_REST + len));
    r->data[4] = TR_VERSION;
    r->data[5] = kind;
    le_put64(r->data + 6, t->cfg.cluster_id);
    le_put64(r->data + 14, t->cfg.self_id);
    le_put64(r->data + 22, to);
    if (len > 0)
        memcpy(r->data + TR_HEADER, payload, len);
    uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)(TR_HEADER + len));
    size_t n;
    if (c->ssl != NULL) {
        if (tr_tls_encrypt(c, r->data, TR_HEADER + len, &r->cipher, &n) != 0) {
            free(r);
            tr_conn_close(c);
            return;
        }
        b = uv_buf_init((char *)r->cipher, (unsigned)n);
    }
    if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, reply_cb) != 0) {
        free(r->cipher);
        free(r);
        tr_conn_close(c);
    }
}

void transport_stats(const struct transport *t, struct transport_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->received = t->received;
    out->dropped_foreign = t->dropped_foreign;
    for (size_t i = 0; i < t->cfg.n_peers; i++) {
        const struct tr_peer *p = &t->peers[i];
        if (p->removed)
            continue;
        out->peers[out->n_peers++] = (struct transport_peer_stats){.id = p->cfg.id,
                                                      .sent = p->sent,
                                                      .dropped = p->dropped,
                                                      .snapshots_sent = p->snapshots_sent,
                                                      .queued_bytes = p->queued_bytes,
                                                      .connected = p->connected};
    }
}

bool transport_connected(const struct transport *t, uint64_t id)
{
    const struct tr_peer *p = tr_peer_find((struct transport *)t, id);
    return p != NULL && p->connected;
}

void transport_stop(struct transport *t)
{
    if (t == NULL || t->stopping)
        return;
    t->stopping = true;
    uv_close((uv_handle_t *)&t->listener, NULL);
    for (size_t i = 0; i < t->cfg.n_peers; i++) {
        struct tr_peer *p = &t->peers[i];
        uv_close((uv_handle_t *)&p->timer, NULL);
        if (p->resolve != NULL)
            uv_cancel((uv_req_t *)&p->resolve->req); /* its callback still comes, with UV_ECANCELED */
        if (p->conn != NULL)
            tr_conn_close(p->conn);
    }
    while (t->accepted != NULL)
        tr_conn_close(t->accepted);
}

void transport_free(struct transport *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->cfg.n_peers; i++)
        drop_waiting(&t->peers[i]);
    tr_tls_free(t);
    if (t->resolving > 0)
        t->freed = true; /* the last resolver callback frees t */
    else
        free(t);
}
