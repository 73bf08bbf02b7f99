/* store/node.h — the store thread: the one door between HTTP threads (api/) and the store.
 *
 * The store thread owns the KV tree, the watch hub and the log driver (node_raft.h; later Raft, the
 * WAL and the transport): no locks around them, except one read-write lock that lets HTTP threads
 * serve non-quorum GETs straight from the applied state (node_rdlock) instead of paying a thread
 * hop per read. A write is encoded as a kv_cmd, proposed to the log, and applied once committed;
 * callers see the same contract whether one member or many decide when that is.
 *
 * Threads: node_submit() may be called from any thread. An op's done() callback is delivered
 * through op->client->post(), which the caller implements to hop back onto its own thread
 * (service/ uses h2o_multithread queues). Every submitted op completes exactly once.
 *
 * Error convention of the store: kv error codes are > 0 (enum kv_errcode, etcd's numbers); the
 * node's own statuses are < 0 (enum node_status); 0 is success. Functions that set up or tear down
 * (node_start) return 0 or -1 with a one-line reason in an errbuf.
 */
#ifndef DISCOVERYD_STORE_NODE_H
#define DISCOVERYD_STORE_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include "store/kv.h"

struct node;
struct node_op;

/* A member of a cluster of several discoveryd (service/cluster.c fills these from etcd's flags). */
struct node_member {
    uint64_t id;          /* a founding member's: derived from name and peer URL (the same on every
                             member); an added member's: from its peer URL and the log index of its
                             addition (store/node_members.h) */
    char name[64];        /* "" for an added member that has not started yet */
    char peer_url[256];   /* http://HOST:PORT as the other members reach it */
    char host[256];       /* ... split */
    uint16_t port;
};

#define NODE_MAX_MEMBERS 16

/* Implemented by the submitter: deliver op to its thread, then call op->done(op) there. */
struct node_client {
    void (*post)(struct node_client *self, struct node_op *op);
};

enum node_op_type {
    NODE_OP_WRITE,  /* apply op->cmd (encoded by the node); result: event or error */
    NODE_OP_WATCH,  /* wait for an event on key at wait_index; result: event, error, or timeout */
    NODE_OP_QUORUM, /* linearizable-read barrier: completes when the local state reflects every write
                       committed before it; then the caller reads under node_rdlock() */
    NODE_OP_HANDOVER, /* if this member leads a cluster: hand leadership to another member; completes once it
                         has (NODE_OK) or after the op's wait_index milliseconds (NODE_ETIMEOUT) */
    NODE_OP_MEMBER, /* a membership change (member_op): ADD peer_url, or REMOVE member_id, through a Raft
                       configuration change (forwarded to the leader); completes once it committed, with
                       the member in op->member, or with a NODE_E* refusal */
    NODE_OP_CANCEL, /* target: a WATCH submitted earlier whose client hung up: if it is still parked it
                       completes at once with NODE_ECANCELED (freeing its slot); then this op completes.
                       The target must stay valid until this op's done has run. */
};

/* Result codes in op->status besides 0 and the kv_errcode values (all > 0). */
enum node_status {
    NODE_OK = 0,
    NODE_EUNAVAILABLE = -1,   /* shutting down / no leader / cannot commit: answer 5xx */
    NODE_ETIMEOUT = -2,       /* WATCH: --watch-timeout passed: answer 200 with an empty body */
    NODE_ETOOMANYWATCHES = -3,/* WATCH: parked-watch cap (per client or total): answer 429 */
    NODE_ENOMEM = -4,         /* answer 500 */
    NODE_ECANCELED = -5,      /* WATCH: cancelled by a NODE_OP_CANCEL (its client is gone) */
    /* MEMBER refusals (decided by the leader; nothing changed) */
    NODE_EMEMBER_EXISTS = -6,   /* ADD: the peer URL is already a member's: 409 */
    NODE_EMEMBER_UNKNOWN = -7,  /* REMOVE: no member has this ID: 404 */
    NODE_EMEMBER_QUORUM = -8,   /* REMOVE: the members left that the leader reaches would be no quorum: 412 */
    NODE_EMEMBER_BUSY = -9,     /* another change is not committed yet, or a new leader has not committed
                                   an entry yet: 503 (retry) */
    NODE_EMEMBER_FULL = -10,    /* ADD: the cluster already has NODE_MAX_MEMBERS members: 409 */
    NODE_EMEMBER_ALONE = -11,   /* this node was not started as a cluster member (--initial-cluster): 409 */
    NODE_EMEMBER_BADURL = -12,  /* ADD: the peer URL is not http://HOST:PORT: 400 */
};
#define NODE_STATUS_MIN NODE_EMEMBER_BADURL

enum node_member_op {
    NODE_MEMBER_ADD = 1,
    NODE_MEMBER_REMOVE = 2,
    NODE_MEMBER_NAME = 3, /* the node's own: an added member publishes its --name once it has joined */
};

struct node_op {
    enum node_op_type type;
    /* ---- in (owned by the submitter; must stay valid until done) ---- */
    struct kv_cmd cmd;          /* WRITE; cmd.now_ms is filled by the node (the proposer's clock) */
    const char *key;            /* WATCH */
    uint32_t key_len;
    bool recursive;             /* WATCH */
    uint64_t wait_index;        /* WATCH: 0 = next event */
    uint8_t client_addr[16];    /* WATCH: the client's address key for the per-client cap */
    struct node_op *target;     /* CANCEL: the watch to cancel */
    enum node_member_op member_op; /* MEMBER */
    uint64_t member_id;         /* MEMBER REMOVE */
    const char *peer_url;       /* MEMBER ADD: http://HOST:PORT (checked by the caller) */
    const char *member_name;    /* MEMBER NAME: the name of member_id */
    struct node_client *client;
    void (*done)(struct node_op *op);
    void *data;                 /* the submitter's */
    /* ---- out (valid in done) ---- */
    int status;                 /* 0, a kv_errcode (> 0), or a negative node_status */
    struct kv_event *event;     /* reference owned by the op: the submitter calls kv_event_unref */
    struct kv_token_info token; /* WRITE, WATCH: the token of the key as it stood when the result was
                                   decided (members counts this write), so the answer needs no read */
    struct kv_error err;        /* when status is a kv_errcode: the submitter calls kv_error_clear */
    uint64_t etcd_index;        /* X-Etcd-Index: the index after the write / when the watch started */
    uint64_t raft_index;        /* X-Raft-Index: the last applied log entry at completion */
    uint64_t raft_term;         /* X-Raft-Term: its term */
    struct node_member *member; /* MEMBER ADD/REMOVE: the submitter's storage, filled with the member
                                   added or removed (NULL: not wanted); kept out of line because
                                   every op (a parked watch's too) would carry it */
    /* ---- node-private ---- */
    struct node_op *next_;
    void *priv_;
    uint64_t index_; /* WRITE: the log index it was proposed at; QUORUM: the read index to wait for */
    uint64_t ctx_;   /* QUORUM: the read-index request it waits on; a WRITE forwarded to the leader: the
                        request number, then the term of the entry the leader made of it */
    uint64_t deadline_; /* WRITE, QUORUM on a cluster member: uv_now() ms after which it gets 503 */
};


struct node_cluster {
    struct node_member members[NODE_MAX_MEMBERS];
    size_t n;             /* 0: a one-member cluster of this node alone */
    size_t self;          /* index of this member */
    bool existing;        /* join a running cluster instead of forming a new one (an empty data dir:
                             ask the members for our ID, store/node_join.c); a data dir that is not
                             empty is used as it is, whatever the flags say */
    uint64_t cluster_id;  /* derived from the member IDs: the same on every member */
    char listen_host[256];
    uint16_t listen_port;
    unsigned heartbeat_ms, election_ms;
    const char *cert, *key, *ca; /* peer mutual TLS: all three or none */
};

#define NODE_TOKEN_TTL_DEFAULT_MS (168LL * 3600 * 1000) /* --token-ttl's default: a week */

struct node_config {
    uint32_t history_per_token;      /* default 1000 */
    int64_t watch_timeout_ms;        /* default 60000 */
    uint32_t max_watches_total;      /* default 65536 */
    uint32_t max_watches_per_client; /* default 1024 */
    int64_t token_ttl_ms;            /* default 168h; 0 = never */
    uint64_t cluster_id;             /* X-Etcd-Cluster-ID of a new data dir; 0 = draw one. An existing
                                        data dir keeps the one it was created with. */
    const char *data_dir;            /* durable state (<data_dir>/wal, snap, LOCK); NULL = in memory
                                        only (unit tests): a restart forgets everything */
    uint64_t snapshot_count;         /* take a snapshot every this many applied entries (0 = 10000) */
    const struct node_cluster *cluster; /* NULL or n == 0: a one-member cluster (needs data_dir otherwise) */
};
void node_config_defaults(struct node_config *cfg);

/* Start the store thread. 0, or -1 with a one-line reason in errbuf. */
int node_start(struct node **out, const struct node_config *cfg, char *errbuf, size_t errlen);
/* Stop accepting, complete every pending op (NODE_EUNAVAILABLE) and parked watch (NODE_ETIMEOUT)
 * and join the thread. Ops' done callbacks are posted before this returns; the caller keeps its
 * threads running until they are delivered. The node stays readable (node_rdlock, node_kv,
 * node_cluster_id, ...) until node_free, because those callbacks still render from it. */
void node_stop(struct node *n);
/* Free everything (stopping first if node_stop was not called). Call only once no thread can
 * still deliver a completion or read through this node. */
void node_free(struct node *n);

/* Hand an op to the store thread (any thread). Always completes through op->client->post. */
void node_submit(struct node *n, struct node_op *op);
/* Before a graceful stop: if this member leads a cluster, hand leadership to another member and
 * wait (at most timeout_ms) until it has, so that writes go on without an election. Any thread
 * but the store thread; blocks. */
void node_handover(struct node *n, int64_t timeout_ms);

/* Read access to the applied state from any thread. Hold it only while rendering, and never
 * recursively: writers are preferred, so a nested rdlock can deadlock behind a waiting writer. */
void node_rdlock(struct node *n);
void node_rdunlock(struct node *n);
const struct kv *node_kv(struct node *n);

/* For X-Raft-Index / X-Raft-Term / X-Etcd-Cluster-ID on reads (any thread, lock-free): the last
 * applied log entry, as the apply seam recorded it. Under node_rdlock() it matches node_kv(). */
void node_raft_state(struct node *n, uint64_t *index, uint64_t *term);
uint64_t node_cluster_id(struct node *n);
/* The committed membership of this node's cluster now, copied into *out (members, n, self, cluster_id;
 * self == n if this node is no longer a member); n == 0 for a node alone. Any thread (a copy taken
 * under a lock the store thread holds only to publish a new membership). */
void node_cluster(struct node *n, struct node_cluster *out);

/* The wall clock (Unix ms) the proposer stamps commands with; the api renders TTLs against the same
 * clock. Any thread. */
int64_t node_wall_ms(void);

/* /health: true when this node can commit a write (the log driver says so); else false and a
 * one-line reason. Any thread, lock-free. */
bool node_healthy(struct node *n, char *reason, size_t len);

/* What this member's transport did for one peer (a cluster member's /metrics, per peer). */
struct node_peer_stats {
    uint64_t id;
    uint64_t frames_sent, frames_dropped; /* frames written to its connection / dropped (queue full,
                                             write failed) */
    uint64_t snapshots_sent;              /* snapshot streams whose end frame was written */
    uint64_t queued_bytes;                /* waiting to be written now (bounded by the queue cap) */
    bool connected;                       /* our connection to it is up */
};

struct node_stats {
    uint64_t parked_watches;
    uint64_t tokens;
    uint64_t nodes;
    uint64_t applied;          /* commands applied */
    uint64_t expired_tokens;   /* tokens deleted by the sweep */
    uint64_t sweeps;           /* expiry SWEEP commands proposed */
    uint64_t sweeps_chained;   /* ... of which proposed back to back (a backlog was due) */
    uint64_t wal_fsyncs;       /* fdatasync/fsync calls of the WAL (segments and directory) */
    uint64_t wal_rounds;       /* group commits: write + fdatasync rounds */
    uint64_t wal_bytes;        /* record bytes written to the WAL */
    uint64_t snapshots;        /* snapshots made durable since start */
    uint64_t snapshot_index;   /* log index of the latest snapshot (0: none) */
    bool is_leader;            /* this member leads the cluster (always, alone) */
    uint64_t leader_id;        /* 0: none known */
    uint64_t term, commit_index, applied_index;
    uint64_t leader_changes;   /* times the known leader changed since start */
    uint64_t member_id;
    uint64_t proposals_committed; /* writes submitted here whose entry committed (whatever the store
                                     then answered, e.g. a 412 decided in log order) */
    uint64_t proposals_failed;    /* writes submitted here answered 5xx: no leader, leadership lost,
                                     bounded wait passed, shutting down, out of memory */
    uint64_t peer_frames_received; /* frames from peers delivered here */
    uint64_t peer_frames_foreign;  /* ... dropped: another cluster ID, an unknown member, not for us */
    size_t n_peers;               /* the other members (0 alone); copied from the transport each tick */
    struct node_peer_stats peers[NODE_MAX_MEMBERS];
};
void node_stats(struct node *n, struct node_stats *st);

#endif
