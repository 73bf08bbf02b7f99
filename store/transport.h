/* store/transport.h — peer connections between the members of a discoveryd cluster.
 *
 * Owns: one listening socket for peers and one outgoing TCP connection per peer, all on the store
 * thread's libuv loop (every function here runs on the store thread; callbacks too). It carries
 * frames between members and nothing else decides anything here: node_raft.c gives it the core's
 * messages after the WAL made them safe to send, and steps what arrives into the core.
 *
 * Wire format (version 1), one frame = [u32 length of the rest][u8 version=1][u8 kind]
 *   [u64 cluster_id][u64 from][u64 to][payload]:
 *   kind 1 RAFT      payload = raft_msg_encode() of a message without snapshot data
 *   kind 2 FORWARD   payload = [u64 req][bytes]: a follower's proposal (an encoded kv_cmd) for the leader
 *   kind 3 FORWARDED payload = [u64 req][u64 index][u64 term][i32 status]: the leader's answer: the
 *                    proposal is at (index, term) in its log, or status < 0 (not the leader, busy, ...)
 *   kind 4 SNAP      payload = raft_msg_encode() of a RAFT_MSG_SNAPSHOT (meta only) then the snapshot
 *                    FILE follows as kind 5 chunks (at most 1 MiB each) and a kind 6 end frame, so a
 *                    snapshot is never one buffer in memory on either side
 *   kind 5 SNAP_DATA payload = bytes of the file, in order
 *   kind 6 SNAP_END  payload = [u32 crc32c of the whole file]
 *   kind 7 FORWARD_CONF payload = [u64 req][u8 op (1 add, 2 remove, 3 name)][u64 id][peer URL, or for
 *                    3 the member's name]: a follower's
 *                    membership change for the leader, answered by a FORWARDED (status > 0: the
 *                    leader refused it for good, the value is minus a node_status)
 *   kind 8 JOIN      payload = [peer URL] with cluster_id, from and to all 0: a member starting with
 *                    --initial-cluster-state existing and an empty data dir asks who it is. Taken from
 *                    anyone, only as the first frame of an accepted connection, answered on that same
 *                    connection (the only frame that ever goes back on one), which then carries nothing
 *                    else
 *   kind 9 JOINED    cluster_id = ours, from = us, to = the asker's member ID (0: that URL is no member),
 *                    payload = the member table (store/node_members.h encoding; empty if to is 0)
 *   kind 10 REMOVED  no payload, to = a member removed from the membership that still sends to us:
 *                    sent back once per connection on the connection it used (so it stops acting
 *                    instead of campaigning in vain); its frames are dropped as foreign all the same
 * Lengths are checked against a cap (16 MiB) before anything is allocated; a malformed frame closes
 * the connection (the peer reconnects). A frame whose cluster_id is not ours, whose `from` is not a
 * configured peer, or whose `to` is not us is dropped and counted.
 *
 * Delivery: best effort, like Raft expects (it retries): a peer's send queue is bounded in bytes;
 * a frame that does not fit is dropped and counted, never queued without limit. Outgoing
 * connections reconnect with exponential backoff (50 ms doubling to 2 s). Each frame is delivered
 * at most once and in order per connection; nothing is promised across reconnects.
 *
 * Authentication: with cert/key/ca set, peers use mutual TLS (1.2 or later, OpenSSL through memory
 * BIOs on the same libuv streams) and a peer without a certificate from that CA is refused: the
 * handshake fails, nothing it sends is delivered. Any certificate from the CA is accepted (no name
 * check: the CA is the membership's trust root). Both sides of every connection are TLS; an outgoing
 * connection counts as connected (and carries frames) once its handshake completed. Without the
 * three files peer traffic is unauthenticated (the caller logs that once).
 */
#ifndef DISCOVERYD_STORE_TRANSPORT_H
#define DISCOVERYD_STORE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "store/raft/raft.h"

#define TRANSPORT_MAX_PEERS RAFT_MAX_NODES
#define TRANSPORT_JOIN_REPLY_MAX 8192 /* a JOINED payload's cap */

struct transport_peer {
    uint64_t id;
    char host[256]; /* numeric IPv4/IPv6 or a name resolved at each connect */
    uint16_t port;
};

struct transport_handlers {
    /* a RAFT frame (or, for a SNAP, once the file arrived whole and its CRC matched: m->snapshot
     * carries the meta, data NULL, len the file's size, and snap_path names the received file in
     * cfg.snap_recv_dir, which the handler then owns). m and its entries' data are valid only
     * during the call (they point into the received frame). */
    void (*message)(void *arg, const struct raft_message *m, const char *snap_path);
    /* a FORWARD from a follower: the handler proposes and answers with transport_forwarded() */
    void (*forward)(void *arg, uint64_t from, uint64_t req, const uint8_t *cmd, size_t len);
    /* a FORWARDED answer to our own transport_forward() or transport_forward_conf() */
    void (*forwarded)(void *arg, uint64_t req, uint64_t index, uint64_t term, int status);
    void *arg;
    /* a FORWARD_CONF from a follower: answered with transport_forwarded() */
    void (*forward_conf)(void *arg, uint64_t from, uint64_t req, uint8_t op, uint64_t id, const char *url,
                         size_t len);
    /* a JOIN: the member ID that peer URL has (0: none) and the member table into out (at most cap
       bytes, *out_len set). NULL: JOINs close the connection. */
    uint64_t (*join)(void *arg, const char *url, size_t len, uint8_t *out, size_t cap, size_t *out_len);
    /* a REMOVED from member `from`: the membership no longer has us. NULL: ignored. */
    void (*removed)(void *arg, uint64_t from);
};

struct transport_config {
    uv_loop_t *loop;           /* the store thread's loop */
    uint64_t self_id, cluster_id;
    char listen_host[256];     /* where peers connect to us */
    uint16_t listen_port;
    struct transport_peer peers[TRANSPORT_MAX_PEERS]; /* every other member at start (then
                                                          transport_add_peer / transport_remove_peer) */
    size_t n_peers;
    size_t queue_bytes;        /* per peer send queue cap (0: 8 MiB) */
    const char *snap_recv_dir; /* where received snapshot files are written (created if missing) */
    const char *cert_file, *key_file, *ca_file; /* all three, or none */
    struct transport_handlers h;
};

struct transport_peer_stats {
    uint64_t id;
    uint64_t sent, dropped;        /* frames */
    uint64_t snapshots_sent;
    size_t queued_bytes;           /* in the send queue now (the cap bounds it) */
    bool connected;
};

struct transport_stats {
    uint64_t received, dropped_foreign; /* frames from another cluster or an unknown member */
    size_t n_peers;
    struct transport_peer_stats peers[TRANSPORT_MAX_PEERS];
};

struct transport;

/* Listen and start connecting. 0, or -1 with a one-line reason naming the address or file (then
 * *out is NULL; run the loop once to release what was opened). listen_port 0 picks a free port
 * (transport_port() says which). Leftover snap-recv-*.tmp files in snap_recv_dir are removed. */
int transport_start(struct transport **out, const struct transport_config *cfg, char *err, size_t errlen);
/* The port the listening socket is bound to. */
uint16_t transport_port(const struct transport *t);
/* Queue a raft message to m->to (not a snapshot). 0, or -ENOBUFS (dropped: queue full), -ENOENT
 * (unknown peer), -EMSGSIZE (over the frame cap; dropped), -EINVAL (a snapshot or unencodable). */
int transport_send(struct transport *t, const struct raft_message *m);
/* Stream the snapshot file at path to m->to, announced by m (a RAFT_MSG_SNAPSHOT, meta only).
 * One stream per peer at a time (-EBUSY); the peer must be connected now (-ENOTCONN: try later).
 * The file is read in chunks as the socket drains. A stream that breaks (the connection closes) is
 * abandoned on both sides; snapshots_sent counts streams whose end frame was written. */
int transport_send_snapshot(struct transport *t, const struct raft_message *m, const char *path);
/* A follower's proposal to the leader, and the leader's answer (same returns as transport_send). */
int transport_forward(struct transport *t, uint64_t to, uint64_t req, const uint8_t *cmd, size_t len);
int transport_forwarded(struct transport *t, uint64_t to, uint64_t req, uint64_t index, uint64_t term, int status);
/* A follower's membership change to the leader (returns as transport_send). */
int transport_forward_conf(struct transport *t, uint64_t to, uint64_t req, uint8_t op, uint64_t id,
                           const char *url, size_t len);
/* The membership changed (the log driver follows the configuration in the Raft log): start
 * connecting to a new member (0, -EEXIST, -EINVAL, -ENOSPC: every slot is in use or still draining),
 * or drop one: its queue is dropped, its connection closed, its frames are foreign from now on. */
int transport_add_peer(struct transport *t, const struct transport_peer *p);
void transport_remove_peer(struct transport *t, uint64_t id);
/* id's removal is committed: if it still sends to us, tell it with a REMOVED (the last 64 are kept). */
void transport_peer_gone(struct transport *t, uint64_t id);
void transport_stats(const struct transport *t, struct transport_stats *out);
/* Our connection to peer id is up now (false for an unknown id). */
bool transport_connected(const struct transport *t, uint64_t id);
/* Close every handle (the loop must run once more to finish closing), then free. Neither may be
 * called from inside a handler. A peer name still being resolved (on libuv's thread pool) keeps
 * the loop alive until its callback returned; the memory is released then. */
void transport_stop(struct transport *t);
void transport_free(struct transport *t);

#endif
