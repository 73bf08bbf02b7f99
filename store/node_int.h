/* store/node_int.h — private to the store thread's rooms (node.c, node_loop.c, node_watch.c,
 * node_expiry.c, node_apply.c, node_raft.c, node_boot.c, node_peers.c, node_conf.c, node_snap.c): the node's state and the calls between those rooms. Nothing
 * outside store/node*.c includes it; everyone else talks to store/node.h.
 *
 * Who runs where: every function declared here runs on the store thread, except where a comment
 * says "any thread". Fields marked (atomic) are read by other threads with __atomic loads.
 */
#ifndef DISCOVERYD_STORE_NODE_INT_H
#define DISCOVERYD_STORE_NODE_INT_H

#include <pthread.h>
#include <uv.h>

#include "store/kv_map.h"
#include "store/node.h"
#include "store/watch.h"
#include "store/node_view.h"

/* A client address's count of parked watches (node_watch.c). */
struct nclient {
    struct kv_mapent ent;
    uint8_t addr[16];
    uint32_t count;
};

/* A parked watch: on the hub, on the deadline list, counted against its client (node_watch.c). */
struct nwatch {
    struct watcher w; /* first: the hub's fire() gets &w */
    struct node_op *op;
    uint64_t deadline; /* uv_now() ms */
    struct nwatch *dnext, *dprev;
    struct nclient *client;
};

struct node_raft;    /* the log driver's own state (node_raft.c) */
struct node_snapper; /* a snapshot being written (node_snap.c) */

/* The encoded commands of one proposal batch (node_raft.c). */
struct node_arena {
    uint8_t *p;
    size_t len, cap;
};

/* The change stamps and the published view (node_view.h; node_view.c). */
#define NODE_VIEW_SLOTS 4096 /* a power of two; 32 KiB of stamps */
struct node_stamps {
    uint64_t seq;        /* (atomic) odd while the apply seam changes the store */
    uint64_t etcd_index; /* (atomic) kv_index() as the seam last left it */
    uint64_t next;       /* store thread: the last stamp handed out */
    uint64_t slot[NODE_VIEW_SLOTS]; /* (atomic) a token's stamp, by the hash of its name */
};

struct node {
    struct node_config cfg;
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    /* the op queue (node.c) */
    pthread_mutex_t qmu;
    struct node_op *qhead, *qtail; /* under qmu */
    bool stopping;                 /* under qmu */
    bool stopped;                  /* node_stop finished: the thread is joined (owner thread only) */
    /* the applied state (node_apply.c is its only writer) */
    pthread_rwlock_t rw;
    struct kv *kv;
    struct watch_hub *hub;
    uint64_t applied_index, applied_term; /* (atomic) the last applied log entry */
    struct node_stamps stamps;            /* written by the apply seam only (node_view.c) */
    uint64_t st_applied, st_expired;      /* (atomic) */
    uint64_t st_sweeps, st_sweeps_chained; /* (atomic) SWEEPs proposed; of those, proposed at once
                                              after the previous one because more was due */
    uint64_t st_fsyncs, st_rounds, st_wal_bytes, st_snapshots, st_snap_index; /* (atomic) node_raft.c */
    uint64_t st_leader, st_term, st_commit, st_leader_changes, st_member;       /* (atomic) node_raft.c */
    uint64_t st_props_ok, st_props_failed; /* (atomic) node.c: write ops completed, by outcome */
    struct node_peer_stats st_peers[NODE_MAX_MEMBERS]; /* (each field atomic) node_peers.c, each tick */
    uint64_t st_npeers;                                 /* (atomic) entries of st_peers in use */
    uint64_t st_peer_received, st_peer_foreign;         /* (atomic) node_peers.c, each tick */
    /* parked watches (node_watch.c) */
    uv_timer_t wtimer;
    struct nwatch *dhead, *dtail; /* by deadline: all share one timeout, so registration order */
    struct kv_map clients;
    uint64_t st_parked; /* (atomic) */
    /* expiry (node_expiry.c) */
    uv_timer_t stimer;
    int64_t sweep_at;                    /* wall ms the sweep timer is armed for */
    bool sweep_pending;                  /* a SWEEP proposal is in flight */
    struct node_op sweep_op;             /* the node's own proposal */
    void (*after_apply)(struct node *n); /* node_expiry_after_apply, wired by node_loop.c */
    /* the log driver (node_raft.c) and its snapshots (node_snap.c) */
    struct node_raft *drv;
    struct node_snapper *snapper;
    struct node_arena arena;
    /* identity and health */
    uint64_t cluster_id;
    pthread_mutex_t mmu;            /* guards pub: the store thread publishes, HTTP threads copy */
    struct node_cluster pub;        /* the committed membership (node_cluster()) */
    int can_commit;            /* (atomic) 1 while a write can commit */
    const char *health_reason; /* (atomic) why not, when can_commit is 0 */
};

/* node_loop.c owns the queue, the loop and the lifecycle; it wires the rooms below together. */

/* node.c: finish an op (any status): raft position from the applied state, then post it to its
 * client, or run done() here for the node's own ops (client == NULL). */
void node_complete(struct node *n, struct node_op *op, int status);
/* node.c: a random non-zero ID into *id if it is 0 (cluster and member IDs). 0, or -1 with errbuf. */
int node_draw_id(uint64_t *id, char *errbuf, size_t errlen);
/* node.c: fill op->token for the token the key lies in, from the applied state. */
void node_fill_token(struct node *n, struct node_op *op, const char *key, size_t key_len);

/* node_watch.c */
void node_watch_init(struct node *n);
void node_watch_start(struct node *n, struct node_op *op);
void node_watch_cancel(struct node *n, struct node_op *target);          /* no-op unless target is parked */
void node_watch_fire(void *arg, struct watcher *w, struct kv_event *ev); /* watch_fire_fn */
void node_watch_reset(struct node *n); /* every parked watch completes NODE_ETIMEOUT (empty answer) */
void node_watch_close(struct node *n); /* shutdown: node_watch_reset, and the timer closes */
void node_watch_free(struct node *n);

/* node_expiry.c */
void node_expiry_init(struct node *n);
void node_expiry_after_apply(struct node *n); /* a new TTL or token may be due sooner (a hook of
                                                 the apply seam, so the seam does not call up) */
void node_expiry_close(struct node *n);

/* node_apply.c: THE APPLY SEAM. The only caller of kv_apply() and watch_publish(), and the only
 * writer of the applied index/term and counters. Committed entries arrive here in log order, each
 * with the op that proposed it on this node (NULL: proposed elsewhere, or the proposer is gone).
 * It applies them under one write lock (announcing each command but a SWEEP to the watch hub first,
 * watch_prepare), fills each op's result (status, event, error, indexes, token), publishes the
 * events to the watch hub, then completes the ops. */
struct node_entry {
    uint64_t index, term;
    const uint8_t *data; /* an encoded kv_cmd; NULL for the log's own entries (no-op, membership) */
    size_t len;
    struct node_op *op;
};
void node_apply(struct node *n, const struct node_entry *e, size_t count);
/* A snapshot was loaded into the tree and hub at start-up: record the log position it stands for. */
void node_apply_restore(struct node *n, uint64_t index, uint64_t term);

/* node_view.c: the writer's side of node_view.h, called by the apply seam only, with the node's
 * write lock held: open a change, stamp the token of each changed key (every token when the key
 * lies in none), or every token, then close it (publishing kv_index and the applied raft position
 * written in between). */
void node_view_write_begin(struct node *n);
void node_view_touch(struct node *n, const char *key, size_t key_len);
void node_view_touch_all(struct node *n);
void node_view_write_end(struct node *n);

#endif
