/* store/node_raft.c — the log driver (see node_raft.h for the contract): it drives the Raft core of
 * store/raft/ on the store thread and persists what it hands out on the WAL thread.
 *
 * The loop, after the ORDERING CONTRACT of store/raft/raft.h:
 *   inputs (proposals, ticks, read-index requests) go into the core; while no ready is out, the
 *   next ready is taken: its committed entries were durable before the core handed them out, so
 *   they go to the apply seam at once (acknowledging their writers); its new entries, hard state
 *   and snapshot marker go to the WAL thread as one batch; when the WAL reports the batch durable,
 *   messages are sent and the core is advanced. Proposals that arrive meanwhile wait in a queue and
 *   enter the core together, so a burst of writes shares one fdatasync (group commit).
 *   Most readies are pipelined instead (raft.h; node_pipe.c): the batch (with copies of the entries) goes to the
 *   WAL and the core is advanced at once, so the store thread proposes and submits the next batch
 *   while this one's fdatasync runs and the WAL thread syncs back to back; a leader's messages go out
 *   at once, a follower's when its batch is durable. Each completed batch is reported with
 *   raft_durable_to(), and only then are its entries counted by this member's vote and applied
 *   (acknowledged).
 * With no data dir (unit tests) the same loop runs with nothing written.
 *
 * A failed write or fsync poisons the WAL: nothing is acknowledged after it, writes answer 5xx,
 * /health turns 503 with the WAL's message, reads go on; only a restart clears it.
 *
 * Snapshots: every snapshot_count applied entries a forked child writes the tree (node_snap.c);
 * once its file is durable a snapshot marker goes to the WAL, which then drops the segments it
 * covers, the core drops its log up to it (keeping a trailing few), and older snapshot files go.
 * A restart loads the snapshot the WAL's latest marker names and replays only the entries after.
 *
 * A cluster's side (peers, forwarding, received snapshots) is node_peers.c; its membership (who the
 * peers are, changes at run time) is node_conf.c.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/list.h"
#include "store/node_raft.h"
#include "store/node_snap.h"
#include "store/raft/raft.h"
#include "store/vec.h"
#include "store/wal.h"
#include "store/wal_thread.h"

#include "store/node_raft_int.h"

void node_raft_health(struct node *n, bool ok, const char *reason)
{
    __atomic_store_n(&n->health_reason, reason, __ATOMIC_RELEASE);
    __atomic_store_n(&n->can_commit, ok ? 1 : 0, __ATOMIC_RELEASE);
}

/* The WAL failed: never acknowledge anything again (until a restart re-reads what is durable). */
void node_raft_poison(struct node *n, const char *what)
{
    struct node_raft *d = n->drv;
    if (d->poisoned)
        return;
    d->poisoned = true;
    snprintf(d->reason, sizeof(d->reason),
             "the write-ahead log failed, writes are refused until a restart: %s", what);
    node_raft_health(n, false, d->reason);
    fprintf(stderr, "discoveryd: %s\n", d->reason);
    node_raft_fail(n, &d->waiting, NODE_EUNAVAILABLE);
    node_raft_fail(n, &d->proposed, NODE_EUNAVAILABLE);
    node_raft_fail(n, &d->mwaiting, NODE_EUNAVAILABLE);
    /* reads go on from what was applied (all of it durable, one member) */
    struct opq *rq[2] = {&d->unasked, &d->reads};
    for (int i = 0; i < 2; i++) {
        struct node_op *op;
        while ((op = q_pop(rq[i]))) {
            op->etcd_index = kv_index(n->kv);
            node_complete(n, op, NODE_OK);
        }
    }
}

/* ---------------------------------------------------------------- applying */

/* Hand committed entries to the seam, each with the op that proposed it here (if any); a
 * configuration entry goes to the seam too (it moves the applied index), then to node_conf.c. */
void node_raft_apply(struct node *n, const struct raft_entry *es, size_t count)
{
    struct node_raft *d = n->drv;
    struct node_entry stackv[64];
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        const struct raft_entry *e = &es[i];
        struct node_entry *ne = &stackv[k++];
        ne->index = e->index;
        ne->term = e->term;
        ne->data = e->type == RAFT_ENTRY_NORMAL ? e->data : NULL;
        ne->len = e->type == RAFT_ENTRY_NORMAL ? e->len : 0;
        ne->op = NULL;
        /* proposals left behind by a lost leadership never commit at their index */
        while (d->proposed.head && d->proposed.head->index_ < e->index)
            node_complete(n, q_pop(&d->proposed), NODE_EUNAVAILABLE);
        struct node_op *h = d->proposed.head, *conf_op = NULL;
        bool member = h && h->type == NODE_OP_MEMBER;
        if (h && h->index_ == e->index && h->ctx_ && h->ctx_ != e->term)
            node_complete(n, q_pop(&d->proposed), NODE_EUNAVAILABLE); /* overwritten: it never happened */
        else if (h && h->index_ == e->index && e->type == RAFT_ENTRY_NORMAL && !member)
            ne->op = q_pop(&d->proposed);
        else if (h && h->index_ == e->index && e->type == RAFT_ENTRY_CONF && member)
            conf_op = q_pop(&d->proposed);
        if (k == 64 || e->type == RAFT_ENTRY_CONF || i + 1 == count) {
            node_apply(n, stackv, k);
            k = 0;
        }
        if (e->type == RAFT_ENTRY_CONF)
            node_conf_applied(n, e, conf_op);
        else if (h && h == d->proposed.head && h->index_ == e->index)
            node_complete(n, q_pop(&d->proposed), NODE_EUNAVAILABLE); /* an op of the wrong kind here */
    }
}

/* Serve the quorum reads whose read index is applied. */
static void serve_reads(struct node *n)
{
    struct node_raft *d = n->drv;
    uint64_t applied = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED);
    struct opq keep = {0};
    struct node_op *op;
    while ((op = q_pop(&d->reads))) {
        if (op->index_ && op->index_ <= applied) {
            op->etcd_index = kv_index(n->kv);
            node_complete(n, op, NODE_OK);
        } else {
            q_push(&keep, op);
        }
    }
    d->reads = keep;
}

static void note_read_states(struct node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_read_states; i++)
        for (struct node_op *op = n->drv->reads.head; op; op = op->next_)
            if (op->ctx_ == rd->read_states[i].ctx)
                op->index_ = rd->read_states[i].index ? rd->read_states[i].index : 1;
}

/* ---------------------------------------------------------------- the loop */

static void drive(struct node *n);

static void handover_done(struct node *n, int status)
{
    struct node_raft *d = n->drv;
    struct node_op *op = d->handover;
    d->handover = NULL;
    if (op)
        node_complete(n, op, status);
}

void node_raft_handover(struct node *n, struct node_op *op)
{
    struct node_raft *d = n->drv;
    if (!d->peers || d->handover || raft_role(d->raft) != RAFT_LEADER) {
        node_complete(n, op, NODE_OK); /* alone, or not the leader: nothing to hand over */
        return;
    }
    d->handover = op;
    d->handover_asked = false;
    d->handover_deadline = uv_now(&n->loop) + op->wait_index;
    drive(n);
}

/* ---------------------------------------------------------------- snapshots */

static void on_marker_done(void *arg, int err, const char *msg)
{
    struct node *n = arg; /* WAL thread */
    struct node_raft *d = n->drv;
    pthread_mutex_lock(&d->mu);
    d->marker_done = true;
    d->marker_err = err;
    if (err)
        snprintf(d->marker_msg, sizeof(d->marker_msg), "%s", msg && *msg ? msg : strerror(-err));
    if (!d->closing)
        uv_async_send(&d->wal_async);
    pthread_mutex_unlock(&d->mu);
}

/* The snapshot file is durable: tell the WAL (which then drops what it covers). */
static void on_snap_written(struct node *n, bool ok, const struct snap_meta *m, const char *msg)
{
    struct node_raft *d = n->drv;
    if (!ok) {
        fprintf(stderr,
                "discoveryd: snapshot at index %llu failed (the log keeps everything; will retry): %s\n",
                (unsigned long long)m->index, msg);
        if (m->index > d->snap_index) /* retry after another snapshot_count entries, not at once */
            d->snap_index = m->index;
        return;
    }
    if (d->poisoned || !d->wt)
        return;
    /* A leader's snapshot that arrived while this one was being written (installed, or in the ready
     * that is out) supersedes it: the WAL refuses a marker below its own, and this image is older than
     * the state. The file is left for the next marker's prune. */
    uint64_t newer = d->snap_index;
    if (d->rd_out && d->rd.snapshot && d->rd.snapshot->meta.index > newer)
        newer = d->rd.snapshot->meta.index;
    if (m->index <= newer)
        return;
    d->marker = *m;
    memset(&d->mbatch, 0, sizeof(d->mbatch));
    d->mbatch.has_snapshot = true;
    d->mbatch.snapshot_index = m->index;
    d->mbatch.snapshot_term = m->term;
    d->mbatch.release_before = m->index;
    d->mbatch.done = on_marker_done;
    d->mbatch.arg = n;
    d->marker_out = true;
    int rv = wal_thread_submit(d->wt, &d->mbatch);
    if (rv != 0) {
        d->marker_out = false;
        char why[512];
        if (wal_thread_error(d->wt, why, sizeof(why)) == 0)
            snprintf(why, sizeof(why), "%s", strerror(-rv));
        node_raft_poison(n, why);
    }
}

/* The WAL thread's counters, for /metrics. */
static void count_wal(struct node *n)
{
    struct wal_thread_stats ws;
    wal_thread_stats(n->drv->wt, &ws);
    __atomic_store_n(&n->st_fsyncs, ws.fsyncs, __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_rounds, ws.rounds, __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_wal_bytes, ws.bytes, __ATOMIC_RELAXED);
}

/* Released WAL segments and older snapshot files go on libuv's thread pool: an unlink of a big
 * file (extents freed, maybe discarded: ~15 ms for a 64 MiB segment here) must hold up neither the
 * store thread nor the WAL's next fdatasync. A failure is logged: the files stay, nothing is lost. */
static void prune_work(uv_work_t *w)
{
    struct node_raft *d = w->data;
    d->prune_segs_rv = wal_remove_detached(fileio_posix(), &d->prune_segs, d->prune_why, sizeof(d->prune_why));
    d->prune_rv = snap_prune(fileio_posix(), d->snap_dir, d->prune_keep);
}

static void prune_done(uv_work_t *w, int status)
{
    struct node_raft *d = w->data;
    (void)status;
    d->prune_out = false;
    if (d->prune_segs_rv != 0)
        fprintf(stderr, "discoveryd: %s: %s\n", d->prune_why, strerror(-d->prune_segs_rv));
    if (d->prune_rv != 0)
        fprintf(stderr, "discoveryd: removing old snapshots in %s: %s\n", d->snap_dir, strerror(-d->prune_rv));
}

/* One prune at a time: no snapshot starts while one is out (maybe_snapshot), so each marker finds
 * the pool free. */
static void prune(struct node *n, struct wal_detached *segs)
{
    struct node_raft *d = n->drv;
    if (d->prune_out) { /* not expected; the snapshot files wait for the next marker */
        char why[600];
        int rv = wal_remove_detached(fileio_posix(), segs, why, sizeof(why));
        if (rv != 0)
            fprintf(stderr, "discoveryd: %s: %s\n", why, strerror(-rv));
        return;
    }
    d->prune.data = d;
    d->prune_keep = d->snap_index; /* the newest durable snapshot stays */
    d->prune_segs = *segs;
    memset(segs, 0, sizeof(*segs));
    d->prune_segs_rv = d->prune_rv = 0;
    if (uv_queue_work(&n->loop, &d->prune, prune_work, prune_done) == 0)
        d->prune_out = true;
    else
        prune_work(&d->prune), prune_done(&d->prune, 0);
}

/* The marker is durable: drop the core's log and older snapshot files. */
static void marker_durable(struct node *n)
{
    struct node_raft *d = n->drv;
    count_wal(n);
    __atomic_add_fetch(&n->st_snapshots, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_snap_index, d->marker.index, __ATOMIC_RELAXED);
    d->marker_out = false;
    if (d->marker.index > d->snap_index) { /* never back below a leader's snapshot installed meanwhile */
        d->snap_index = d->marker.index;
        d->compact_at = d->marker.index;
    }
    prune(n, &d->mbatch.detached);
}

static void maybe_snapshot(struct node *n)
{
    struct node_raft *d = n->drv;
    uint64_t applied = raft_applied_index(d->raft);
    if (d->compact_at) { /* outside a ready: the core may drop its log now */
        if (d->compact_at > COMPACT_TRAILING)
            raft_compact(d->raft, d->compact_at, NULL, 0, COMPACT_TRAILING, NULL);
        d->compact_at = 0;
    }
    /* Writing a snapshot costs its size, so a big tree is not rewritten whole every few thousand
     * entries: the log since the last one must also reach half that snapshot's node count. Snapshot
     * writing stays within ~2 nodes per applied entry, and a restart replays at most that many
     * entries beyond the snapshot it loads. */
    uint64_t every = n->cfg.snapshot_count ? n->cfg.snapshot_count : SNAPSHOT_COUNT_DEFAULT;
    if (every < d->snap_nodes / SNAPSHOT_NODES_DIVISOR)
        every = d->snap_nodes / SNAPSHOT_NODES_DIVISOR;
    if (applied - d->snap_index < every || d->poisoned)
        return;
    if (!d->snap_dir[0]) {
        d->compact_at = applied; /* in memory only: no image, just keep the log bounded */
        d->snap_index = applied;
        return;
    }
    if (d->marker_out || d->prune_out || node_snap_running(n)) /* the prune removes *.tmp files */
        return;
    struct snap_meta m = {
        .index = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED),
        .term = __atomic_load_n(&n->applied_term, __ATOMIC_RELAXED),
        .cluster_id = n->cluster_id,
        .kv_index = kv_index(n->kv),
    };
    raft_configuration_at(d->raft, m.index, &m.conf); /* as of the image, not a later uncommitted one */
    m.members_len = (uint32_t)node_conf_encode(n, &m.conf, m.members, sizeof(m.members));
    int rv = node_snap_begin(n, d->snap_dir, &m, on_snap_written);
    if (rv == 0)
        d->snap_nodes = kv_nnodes(n->kv);
    if (rv != 0) {
        fprintf(stderr, "discoveryd: cannot start a snapshot: %s\n", strerror(-rv));
        d->snap_index = applied;
    }
}

/* The ready's writes are durable (or, durable=false, under way in the pipeline): send, advance,
 * compact now and then, go on. */
static void finish_ready(struct node *n, bool durable)
{
    struct node_raft *d = n->drv;
    if (durable || d->rd.early_send) /* else they went with the pipelined batch */
        node_peers_send(n, &d->rd);
    if (d->rd.snapshot) {
        char why[512];
        if (node_peers_install_snapshot(n, d->rd.snapshot, why, sizeof(why)) != 0) {
            node_raft_poison(n, why);
            return;
        }
        node_conf_sync(n); /* the snapshot's membership */
    }
    if (durable)
        raft_advance(d->raft, &d->rd);
    else
        raft_advance_async(d->raft, &d->rd); /* no snapshot (pipe_fits): cannot fail */
    d->rd_out = false;
    node_pipe_tell(n); /* pipelined batches that landed while this ready was out */
    __atomic_store_n(&n->st_term, raft_term(d->raft), __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_commit, raft_commit_index(d->raft), __ATOMIC_RELAXED);
    if (d->rd.soft_state_changed && d->rd.lead != __atomic_load_n(&n->st_leader, __ATOMIC_RELAXED)) {
        __atomic_store_n(&n->st_leader, d->rd.lead, __ATOMIC_RELAXED);
        __atomic_add_fetch(&n->st_leader_changes, 1, __ATOMIC_RELAXED);
    }
    maybe_snapshot(n);
    if (d->rd.soft_state_changed) {
        if (d->was_leader && d->rd.role != RAFT_LEADER) {
            /* leadership lost: writes in flight may never commit here; reads must be retried */
            node_raft_fail(n, &d->proposed, NODE_EUNAVAILABLE);
            node_raft_fail(n, &d->reads, NODE_EUNAVAILABLE);
        }
        d->was_leader = d->rd.role == RAFT_LEADER;
        if (d->handover && d->rd.role != RAFT_LEADER)
            handover_done(n, NODE_OK);
        if (!d->poisoned)
            node_raft_health(
                n, d->rd.lead != 0,
                "no leader: an election is under way, or a majority of the members is unreachable");
    }
    drive(n);
}

static void on_batch_done(void *arg, int err, const char *msg)
{
    struct node *n = arg; /* WAL thread */
    struct node_raft *d = n->drv;
    pthread_mutex_lock(&d->mu);
    d->wal_done = true;
    d->wal_err = err;
    snprintf(d->wal_msg, sizeof(d->wal_msg), "%s", msg ? msg : strerror(err < 0 ? -err : err));
    if (!d->closing)
        uv_async_send(&d->wal_async);
    pthread_mutex_unlock(&d->mu);
}

void node_raft_on_wal(uv_async_t *a)
{
    struct node *n = a->data;
    struct node_raft *d = n->drv;
    pthread_mutex_lock(&d->mu);
    bool done = d->wal_done, mdone = d->marker_done;
    int err = d->wal_err, merr = d->marker_err, perr = d->pq_err;
    size_t pdone = d->pq_done;
    char msg[sizeof(d->wal_msg)], mmsg[sizeof(d->marker_msg)], pmsg[sizeof(d->pq_msg)];
    memcpy(msg, d->wal_msg, sizeof(msg));
    memcpy(mmsg, d->marker_msg, sizeof(mmsg));
    memcpy(pmsg, d->pq_msg, sizeof(pmsg));
    d->wal_done = d->marker_done = false;
    d->pq_done = 0;
    pthread_mutex_unlock(&d->mu);
    if (perr) { /* a pipelined batch failed: nothing after it may be acknowledged */
        node_raft_poison(n, pmsg);
        return;
    }
    node_pipe_land(n, pdone);
    if (mdone && merr) {
        node_raft_poison(n, mmsg);
        return;
    }
    if (mdone)
        marker_durable(n);
    if (!done || !d->rd_out) {
        if (mdone && !d->rd_out)
            maybe_snapshot(n); /* compact now */
        if (pdone && !d->rd_out) {
            count_wal(n);
            node_pipe_tell(n);
            drive(n); /* what they commit is handed out to apply */
        }
        return;
    }
    if (err) {
        node_raft_poison(n, msg); /* the ready stays out: the core is never advanced past what is not durable */
        return;
    }
    count_wal(n);
    finish_ready(n, true);
}

/* Put the waiting writes into the core as one batch. */
static void propose_waiting(struct node *n)
{
    struct node_raft *d = n->drv;
    size_t count = 0;
    for (struct node_op *op = d->waiting.head; op; op = op->next_)
        count++;
    if (!count)
        return;
    if (vec_reserve((void **)&d->datas, &d->cap_props, count, sizeof(*d->datas), 64) != 0 ||
        !(d->lens = realloc(d->lens, d->cap_props * sizeof(*d->lens)))) {
        node_raft_fail(n, &d->waiting, NODE_ENOMEM);
        return;
    }
    int64_t now = node_wall_ms();
    n->arena.len = 0;
    size_t k = 0;
    bool oom = false;
    for (struct node_op *op = d->waiting.head; op; op = op->next_, k++) {
        op->cmd.now_ms = now;
        size_t off = n->arena.len;
        if (vec_reserve((void **)&n->arena.p, &n->arena.cap, off + kv_cmd_encoded_len(&op->cmd), 1, 1024) !=
            0) {
            oom = true;
            break;
        }
        n->arena.len += kv_cmd_encode_to(&op->cmd, n->arena.p + off, n->arena.cap - off);
        d->datas[k] = (const void *)(uintptr_t)off; /* rebased below: the arena may move */
        d->lens[k] = (uint32_t)(n->arena.len - off);
    }
    if (oom) {
        node_raft_fail(n, &d->waiting, NODE_ENOMEM);
        return;
    }
    for (size_t i = 0; i < count; i++)
        d->datas[i] = n->arena.p + (uintptr_t)d->datas[i];
    if (d->peers && raft_role(d->raft) != RAFT_LEADER) {
        /* a follower: each write goes to the leader (those with no leader to go to wait, bounded) */
        struct opq keep = {0};
        struct node_op *op;
        for (size_t i = 0; (op = q_pop(&d->waiting)); i++)
            if (!node_peers_forward(n, op, d->datas[i], d->lens[i]))
                q_push(&keep, op);
        d->waiting = keep;
        return;
    }
    int rv = raft_propose_batch(d->raft, d->datas, d->lens, count);
    if (rv != 0 && d->peers && (rv == RAFT_EBUSY || rv == RAFT_ENOTLEADER))
        return; /* not proposed (a handover runs, or leadership just went): they wait, then go to the
                   new leader; node_peers_expire bounds the wait */
    if (rv != 0) {
        /* not the leader (no peers to forward to yet), or the uncommitted cap: 5xx, retry */
        node_raft_fail(n, &d->waiting, rv == RAFT_ENOMEM ? NODE_ENOMEM : NODE_EUNAVAILABLE);
        return;
    }
    uint64_t idx = raft_last_index(d->raft) - count;
    struct node_op *op;
    while ((op = q_pop(&d->waiting))) {
        op->index_ = ++idx;
        op->ctx_ = 0; /* proposed here: no term to check */
        q_push(&d->proposed, op);
    }
}

/* Give the waiting quorum reads to the core (read-index requests). */
static void ask_reads(struct node *n)
{
    struct node_raft *d = n->drv;
    struct node_op *op;
    struct opq keep = {0};
    while (d->peers && raft_role(d->raft) != RAFT_LEADER && (op = q_pop(&d->unasked)))
        if (!node_peers_forward(n, op, NULL, 0))
            q_push(&keep, op);
    while (!keep.head && (op = q_pop(&d->unasked))) {
        op->ctx_ = ++d->read_ctx;
        op->index_ = 0;
        if (raft_read_index(d->raft, op->ctx_) != 0)
            node_complete(n, op, NODE_EUNAVAILABLE); /* not the leader (no peers to ask yet) */
        else
            q_push(&d->reads, op);
    }
    if (keep.head)
        d->unasked = keep;
}

static void drive(struct node *n)
{
    struct node_raft *d = n->drv;
    if (d->poisoned || d->removed) {
        node_raft_fail(n, &d->waiting, NODE_EUNAVAILABLE);
        node_raft_fail(n, &d->unasked, NODE_EUNAVAILABLE);
        node_raft_fail(n, &d->mwaiting, NODE_EUNAVAILABLE);
        if (d->poisoned)
            return;
    }
    if (d->rd_out)
        return; /* the core takes no input until the ready that is out is advanced */
    for (; d->ticks; d->ticks--)
        raft_tick(d->raft);
    if (d->handover && !d->handover_asked) {
        uint64_t to = node_peers_best_follower(n);
        d->handover_asked = true;
        if (!to || raft_role(d->raft) != RAFT_LEADER || raft_transfer_leadership(d->raft, to) != 0)
            handover_done(n, NODE_OK); /* nobody to hand over to: stop as we are */
    }
    node_peers_step(n);
    node_peers_serve(n);
    ask_reads(n);
    propose_waiting(n);
    node_conf_drive(n);
    serve_reads(n); /* a follower's reads whose read index came back */
    if (!raft_has_ready(d->raft))
        return;
    raft_ready(d->raft, &d->rd);
    d->rd_out = true;
    node_conf_seen(n, d->rd.entries, d->rd.n_entries);
    node_conf_sync(n); /* a configuration takes effect when appended: its new member gets this ready's messages */
    if (d->rd.n_committed)
        node_raft_apply(n, d->rd.committed, d->rd.n_committed);
    note_read_states(n, &d->rd);
    node_peers_read_states(n, &d->rd);
    serve_reads(n);
    /* A hard state that only moves the commit index is a hint (raft.h: restarting below the true
     * commit is safe), so it rides with the next write instead of costing an fdatasync of its own;
     * term and vote are promises and always go to disk before anything is sent. */
    bool promise = d->rd.has_hard_state &&
                   (d->rd.hard_state.term != d->hs_disk.term || d->rd.hard_state.vote != d->hs_disk.vote);
    bool writes = d->rd.n_entries || promise || d->rd.snapshot;
    if (d->rd.snapshot && !d->wt) {
        node_raft_poison(n, "a snapshot arrived but there is no data dir to keep it");
        return;
    }
    if (!d->wt || (!writes && (!d->pq_n || d->rd.early_send))) { /* nothing to wait for */
        finish_ready(n, true);
        return;
    }
    if (node_pipe_fits(d)) {
        int rv = node_pipe_submit(n, writes);
        if (rv == 0)
            finish_ready(n, false);
        if (rv != -ENOMEM)
            return;
    }
    /* the ordinary way (with nothing to write while batches are out: an empty batch, so that the
     * messages wait for them) */
    memset(&d->batch, 0, sizeof(d->batch));
    if (d->rd.snapshot) {
        /* a snapshot from the leader: its file goes into our snap dir (durable) before the marker */
        char why[512];
        if (node_peers_persist_snapshot(n, d->rd.snapshot, why, sizeof(why)) != 0) {
            node_raft_poison(n, why);
            return;
        }
        d->batch.has_snapshot = true;
        d->batch.snapshot_index = d->rd.snapshot->meta.index;
        d->batch.snapshot_term = d->rd.snapshot->meta.term;
        d->batch.snapshot_replaces_log = true;
    }
    d->batch.entries = d->rd.entries;
    d->batch.n_entries = d->rd.n_entries;
    d->batch.hard_state = d->rd.has_hard_state ? &d->rd.hard_state : NULL;
    if (d->rd.has_hard_state)
        d->hs_disk = d->rd.hard_state;
    d->batch.done = on_batch_done;
    d->batch.arg = n;
    int rv = wal_thread_submit(d->wt, &d->batch);
    if (rv != 0) {
        char msg[512];
        if (wal_thread_error(d->wt, msg, sizeof(msg)) == 0)
            snprintf(msg, sizeof(msg), "%s", strerror(-rv));
        node_raft_poison(n, msg);
    }
}

void node_raft_on_tick(uv_timer_t *t)
{
    struct node *n = t->data;
    n->drv->ticks++;
    node_peers_expire(n);
    node_peers_count(n);
    if (n->drv->handover && uv_now(&n->loop) >= n->drv->handover_deadline)
        handover_done(n, NODE_ETIMEOUT);
    drive(n);
}

void node_raft_on_kick(uv_async_t *a)
{
    drive(a->data);
}

bool node_raft_leads(struct node *n)
{
    return n->drv && raft_role(n->drv->raft) == RAFT_LEADER;
}

/* ---------------------------------------------------------------- the contract */

void node_raft_propose(struct node *n, struct node_op *first, struct node_op *stop)
{
    struct node_raft *d = n->drv;
    for (struct node_op *op = first; op != stop;) {
        struct node_op *next = op->next_;
        q_push(&d->waiting, op);
        op = next;
    }
    drive(n);
}

void node_raft_member(struct node *n, struct node_op *op)
{
    node_conf_submit(n, op);
    drive(n);
}

void node_raft_read(struct node *n, struct node_op *op)
{
    struct node_raft *d = n->drv;
    if (d->poisoned) { /* reads go on from what was applied */
        op->etcd_index = kv_index(n->kv);
        node_complete(n, op, NODE_OK);
        return;
    }
    q_push(&d->unasked, op);
    drive(n);
}
