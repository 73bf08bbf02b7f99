/* store/transport_int.h — what transport.c (peers, listening, queues, sending) and transport_conn.c
 * (one connection's reading, frame checks and dispatch, receiving snapshots) share. Store thread
 * only, like the public contract in store/transport.h.
 */
#ifndef DISCOVERYD_STORE_TRANSPORT_INT_H
#define DISCOVERYD_STORE_TRANSPORT_INT_H

#include <limits.h>
#include "store/le.h"
#include "store/transport.h"

#define TR_VERSION 1
#define TR_HEADER 30                   /* u32 length + u8 version + u8 kind + 3 x u64 */
#define TR_HEADER_REST (TR_HEADER - 4) /* what the length field counts beyond the payload */
#define TR_MAX_FRAME (16u << 20)       /* cap on the length field, checked before allocating */
#define TR_CHUNK (1u << 20)            /* snapshot chunk size (SNAP_DATA payload cap) */
#define TR_READ_BUF 65536
#define TR_BACKOFF_MIN_MS 50
#define TR_BACKOFF_MAX_MS 2000
#define TR_DEFAULT_QUEUE (8u << 20)
#define TR_MAX_ACCEPTED (4 * TRANSPORT_MAX_PEERS) /* accepted connections open at once */

enum tr_kind {
    TR_RAFT = 1,
    TR_FORWARD = 2,
    TR_FORWARDED = 3,
    TR_SNAP = 4,
    TR_SNAP_DATA = 5,
    TR_SNAP_END = 6,
    TR_FORWARD_CONF = 7,
    TR_JOIN = 8,
    TR_JOINED = 9,
    TR_REMOVED = 10,
};
#define TR_KIND_MAX TR_REMOVED
#define TR_GONE_MAX 64 /* removed member IDs remembered, to tell them so */
#define TR_JOIN_MAX 512 /* a JOIN's payload (a peer URL) */

/* One outgoing frame: queued on its peer until connected, then handed to uv_write. */
struct tr_frame {
    uv_write_t req;
    struct tr_frame *prev, *next;
    struct tr_peer *peer;
    uint64_t snap_gen; /* for snapshot frames: the stream they belong to */
    uint8_t kind;
    uint8_t *cipher; /* with TLS: the encrypted bytes being written */
    size_t len;
    uint8_t data[];
};

struct tr_conn {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    uv_connect_t creq;
    struct transport *t;
    struct tr_peer *peer;        /* outgoing: the peer it carries our frames to; NULL for accepted ones */
    struct tr_conn *prev, *next; /* accepted connections */
    bool closing;
    struct ssl_st *ssl; /* with TLS */
    /* reading (accepted connections): the fixed header, then the payload (or skip it) */
    uint8_t hdr[TR_HEADER];
    size_t hdr_got;
    uint8_t *payload; /* non-NULL while a payload is being read */
    size_t payload_len, payload_got;
    size_t skip;         /* bytes of a foreign frame still to discard */
    uint64_t bound_from; /* the member whose frames this connection carries (0 until the first) */
    bool told_removed;   /* a REMOVED notice went back on this (accepted) connection */
    /* a snapshot being received on this connection */
    bool snap_active;
    int snap_fd;
    uint64_t snap_off;
    uint32_t snap_crc;
    struct raft_message snap_msg; /* meta only, no entries */
    char snap_tmp[PATH_MAX];
    uint8_t rbuf[TR_READ_BUF];
};

/* An outgoing snapshot stream to one peer. */
struct tr_snap_out {
    bool active;
    uint64_t gen;
    int fd;
    uint64_t off, size;
    uint32_t crc;
};

struct tr_peer {
    struct transport *t;
    struct transport_peer cfg;
    struct tr_conn *conn;       /* the outgoing connection, NULL while waiting to reconnect */
    struct tr_resolve *resolve; /* a name being resolved, or NULL */
    unsigned attempts;          /* connects to a name: picks among its addresses */
    bool connected;
    uv_timer_t timer; /* reconnect backoff */
    unsigned backoff_ms;
    struct tr_frame *wait_head, *wait_tail; /* frames not yet handed to uv_write */
    size_t queued_bytes;                    /* waiting + written but not completed */
    struct tr_snap_out snap;
    uint64_t sent, dropped, snapshots_sent;
    bool removed; /* dropped from the membership: its slot is reused once idle (tr_peer_find skips it) */
};

struct transport {
    struct transport_config cfg;
    char snap_dir[PATH_MAX];
    struct ssl_ctx_st *tls; /* NULL: plain TCP */
    uv_tcp_t listener;
    uint16_t port;
    bool stopping;
    bool freed;       /* transport_free ran while names were being resolved */
    size_t resolving; /* resolver requests in flight */
    struct tr_peer peers[TRANSPORT_MAX_PEERS];
    struct tr_conn *accepted; /* accepted connections */
    size_t n_accepted;
    uint64_t received, dropped_foreign;
    uint64_t snap_seq;
    uint64_t gone[TR_GONE_MAX]; /* members removed from the membership (a ring) */
    size_t n_gone;
};


/* transport.c */
struct tr_peer *tr_peer_find(struct transport *t, uint64_t id);

/* transport_conn.c */
/* Start reading an accepted connection. */
void tr_conn_accepted(struct tr_conn *c);
/* Close a connection (idempotent): an outgoing one schedules its peer's reconnect, an accepted one
 * drops a snapshot it was receiving (the temp file is deleted). The struct is freed once closed. */
void tr_conn_close(struct tr_conn *c);
/* Outgoing connections are read only to notice that the peer went away. */
void tr_conn_read_outgoing(struct tr_conn *c);
/* transport.c: the outgoing connection of p closed. */
void tr_peer_disconnected(struct tr_peer *p);
/* transport.c: p just connected to us, so it is up: if our connection to it waits for its backoff,
 * connect now (a restarted member is reached at once, not after up to TR_BACKOFF_MAX_MS). */
void tr_peer_heard(struct tr_peer *p);
/* transport.c: answer on the accepted connection c (the only frames that go back on one): a JOINED to
 * a JOIN, or a REMOVED to a member that was removed. */
void tr_conn_reply(struct tr_conn *c, uint8_t kind, uint64_t to, const uint8_t *payload, size_t len);
/* transport.c: was id removed from the membership? */
bool tr_gone(const struct transport *t, uint64_t id);
/* transport.c: the outgoing connection of p is up (and through its TLS handshake): send. */
void tr_peer_ready(struct tr_peer *p);

/* transport_tls.c: mutual TLS through memory BIOs. */
/* Build t->tls from cfg's cert/key/ca files; -1 with a reason naming the file. */
int tr_tls_init(struct transport *t, char *err, size_t errlen);
void tr_tls_free(struct transport *t);
/* Begin TLS on a connection (client: send the ClientHello). 0 or -1. */
int tr_tls_start(struct tr_conn *c, bool client);
void tr_tls_conn_free(struct tr_conn *c);
/* Ciphertext arrived: advance the handshake, pass plaintext to plain(); -1: close the connection. */
int tr_tls_recv(struct tr_conn *c, const uint8_t *p, size_t n,
                int (*plain)(struct tr_conn *c, const uint8_t *p, size_t n));
/* Encrypt one frame into a malloc'd buffer. */
int tr_tls_encrypt(struct tr_conn *c, const uint8_t *p, size_t n, uint8_t **out, size_t *outlen);

#endif
