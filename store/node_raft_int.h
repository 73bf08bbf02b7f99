/* store/node_raft_int.h — private to the log driver (node_raft.c: the loop; node_boot.c: start-up
 * and shutdown): its state, its tunables, and the calls between its two files. Store thread.
 */
#ifndef DISCOVERYD_STORE_NODE_RAFT_INT_H
#define DISCOVERYD_STORE_NODE_RAFT_INT_H

#include "store/node_raft.h"
#include "store/raft/raft.h"
#include "store/snap.h"
#include "store/wal.h"
#include "store/wal_thread.h"

#define TICK_MS 100                  /* one raft tick */
#define ELECTION_TICKS 10            /* 1 s: etcd's default election timeout */
#define HEARTBEAT_TICKS 1            /* 100 ms */
#define SNAPSHOT_COUNT_DEFAULT 10000 /* applied entries between snapshots (at least) */
#define SNAPSHOT_NODES_DIVISOR 2     /* ... and at least 1/2 as many as the last snapshot held nodes */
#define COMPACT_TRAILING 1000        /* entries the core keeps behind a snapshot (a slow follower's grace) */

struct opq {
    struct node_op *head, *tail;
};

struct node_raft {
    struct raft *raft;
    uint64_t member_id;
    int lock_fd;
    struct wal *wal; /* NULL: in memory only */
    struct wal_thread *wt;
    uv_timer_t ticker;
    uv_async_t wal_async; /* the WAL thread's "batch done" */
    bool handles;         /* ticker and wal_async were initialised */
    /* the ready that is out (with the WAL thread) */
    bool rd_out;
    struct raft_ready rd;
    struct wal_batch batch;
    pthread_mutex_t mu; /* guards the three below: set by the WAL thread */
    bool wal_done, closing;
    int wal_err;
    char wal_msg[512];
    /* the pipeline (raft.h, node_raft.c): batches of readies advanced before they were durable, with
     * the WAL thread, oldest first; the WAL completes them in this order */
    struct pbatch *pq_head, *pq_tail;
    size_t pq_n;       /* how many */
    size_t pq_landed;  /* how many at the head are durable (raft_durable_to not yet called) */
    size_t pq_done;    /* under mu: completed by the WAL thread since the store thread last looked */
    int pq_err;        /* under mu: the first error of one of them */
    char pq_msg[512];  /* under mu */
    /* ops */
    struct opq waiting;  /* writes not yet proposed (a ready is out) */
    struct opq proposed; /* writes in the log, by index, until applied */
    struct opq unasked;  /* quorum reads not yet given to the core (a ready is out) */
    struct opq reads;    /* quorum reads, until their read index is applied */
    uint64_t read_ctx;
    unsigned ticks; /* ticks that came while a ready was out */
    bool poisoned;
    char reason[600];
    struct raft_hard_state hs_disk; /* the last hard state handed to the WAL */
    /* snapshots */
    char snap_dir[4200]; /* "" without a data dir: the core's log is compacted without an image */
    uint64_t snap_index; /* the latest snapshot (or compaction) */
    uint64_t snap_nodes; /* the nodes of the tree it holds (0: unknown) */
    bool marker_out;     /* a snapshot marker is with the WAL thread */
    struct wal_batch mbatch;
    struct snap_meta marker;
    bool marker_done;    /* under mu */
    int marker_err;      /* under mu */
    char marker_msg[512]; /* under mu: why the marker failed (not wal_msg: a later batch rewrites that) */
    uint64_t compact_at; /* a compaction to do once no ready is out */
    uv_work_t prune;     /* removing released WAL segments and older snapshot files, on libuv's */
    bool prune_out;      /* thread pool */
    struct wal_detached prune_segs;
    uint64_t prune_keep; /* the snapshot to keep */
    int prune_rv, prune_segs_rv;
    char prune_why[600];
    /* a cluster (node_peers.c; NULL alone) */
    struct node_peers *peers;
    uv_async_t kick;      /* the transport queued something: drive() */
    char *snap_recv_path; /* a snapshot file received from the leader, until its ready persists */
    bool was_leader;
    struct node_op *handover;   /* a NODE_OP_HANDOVER in progress */
    bool handover_asked;        /* the core was told to transfer */
    uint64_t handover_deadline; /* uv_now() ms */
    /* membership (node_conf.c) */
    struct node_member latest[NODE_MAX_MEMBERS]; /* the newest member table in the log (maybe uncommitted) */
    size_t n_latest;
    struct node_member committed[NODE_MAX_MEMBERS]; /* the committed one (published to HTTP threads) */
    size_t n_committed;
    struct raft_conf tp_conf;  /* the voters the transport's peers were last synced to */
    struct opq mwaiting;       /* MEMBER ops not yet proposed or forwarded */
    bool was_member;           /* a committed configuration (or the snapshot loaded) had this member */
    bool removed;              /* ... and a later committed one left it out */
    struct node_op name_op;    /* publishing our --name after joining (node_conf.c) */
    bool name_out;             /* name_op is queued or in flight */
    /* proposal scratch */
    const void **datas;
    uint32_t *lens;
    size_t cap_props;
};

/* FIFO queues of ops, linked by next_; node_raft_fail completes every op of q with status. */
static inline void q_push(struct opq *q, struct node_op *op)
{
    op->next_ = NULL;
    if (q->tail)
        q->tail->next_ = op;
    else
        q->head = op;
    q->tail = op;
}

static inline struct node_op *q_pop(struct opq *q)
{
    struct node_op *op = q->head;
    if (op) {
        q->head = op->next_;
        if (!q->head)
            q->tail = NULL;
        op->next_ = NULL;
    }
    return op;
}

static inline void node_raft_fail(struct node *n, struct opq *q, int status)
{
    struct node_op *op;
    while ((op = q_pop(q)))
        node_complete(n, op, status);
}

/* node_raft.c */
void node_raft_health(struct node *n, bool ok, const char *reason);              /* /health's answer */
void node_raft_apply(struct node *n, const struct raft_entry *es, size_t count); /* to the seam */
void node_raft_on_tick(uv_timer_t *t);
void node_raft_on_wal(uv_async_t *a);
void node_raft_on_kick(uv_async_t *a);
/* A failed write or fsync: nothing is acknowledged after it, writes get 5xx, /health says what */
void node_raft_poison(struct node *n, const char *what);

/* node_pipe.c: the pipeline of readies advanced before they are durable (store thread) */
bool node_pipe_fits(const struct node_raft *d);  /* may the ready that is out be pipelined? */
int node_pipe_submit(struct node *n, bool writes); /* hand it to the WAL (-ENOMEM: write it as usual) */
void node_pipe_land(struct node *n, size_t count); /* count more batches are durable: send held messages */
void node_pipe_tell(struct node *n);               /* report landed batches to the core (no ready out) */
void node_raft_pipe_free(struct node *n); /* after the WAL thread stopped: drop the pipeline's batches */

/* node_peers.c: a cluster's side of the driver (see there) */
int node_peers_start(struct node *n, char *err, size_t errlen);
void node_peers_step(struct node *n);
void node_peers_serve(struct node *n);
void node_peers_read_states(struct node *n, const struct raft_ready *rd);
bool node_peers_forward(struct node *n, struct node_op *op, const uint8_t *cmd, size_t len);
void node_peers_expire(struct node *n); /* 503 for ops that waited too long for a leader */
void node_peers_count(struct node *n);  /* the transport's per-peer counters to node_stats (each tick) */
void node_peers_send(struct node *n, const struct raft_ready *rd);
int node_peers_persist_snapshot(struct node *n, const struct raft_snapshot *s, char *err, size_t errlen);
int node_peers_install_snapshot(struct node *n, const struct raft_snapshot *s, char *err, size_t errlen);
uint64_t node_peers_best_follower(struct node *n); /* a connected member to hand leadership to, or 0 */
bool node_peers_connected(struct node *n, uint64_t id); /* our link to member id is up */
void node_peers_add(struct node *n, const struct node_member *m);
void node_peers_remove(struct node *n, uint64_t id);
void node_peers_gone(struct node *n, uint64_t id); /* its removal committed */
bool node_peers_forward_conf(struct node *n, struct node_op *op);

/* node_conf.c: the membership (see there) */
void node_conf_founding(struct node *n, const struct node_member *m, size_t count);
int node_conf_load(struct node *n, const struct raft_conf *conf, const uint8_t *table, size_t len, char *err,
                   size_t errlen);
void node_conf_seen(struct node *n, const struct raft_entry *es, size_t count);
void node_conf_applied(struct node *n, const struct raft_entry *e, struct node_op *op);
void node_conf_sync(struct node *n);
void node_conf_submit(struct node *n, struct node_op *op);
void node_conf_drive(struct node *n);
int node_conf_propose(struct node *n, enum node_member_op op, uint64_t id, const char *url, size_t url_len,
                      uint64_t *index);
uint64_t node_conf_join(struct node *n, const char *url, size_t len, uint8_t *out, size_t cap, size_t *out_len);
size_t node_conf_encode(struct node *n, const struct raft_conf *conf, uint8_t *buf, size_t cap);
void node_conf_publish(struct node *n);
void node_conf_removed(struct node *n, uint64_t from); /* a member told us we are no longer one */
void node_peers_stop(struct node *n);
void node_peers_free(struct node *n);

#endif
