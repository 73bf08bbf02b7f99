/* store/node_raft.c — the log driver (see node_raft.h for the contract): it drives the Raft core of
 * store/raft/ on the store thread and persists what it hands out on the WAL thread.
 *
 * The loop, after the ORDERING CONTRACT of store/raft/raft.h:
 *   inputs (proposals, ticks, read-index requests) go into the core; while no ready is out, the
 *   next ready is taken: its committed entries were durable before the core handed them out, so
 *   they go to the apply seam at once (acknowledging their writers); its new entries, hard state
 *   and snapshot marker go to the WAL thread as one batch; when the WAL reports the batch durable,
 *   messages are sent (to no one yet: one member) and the core is advanced. Proposals that arrive
 *   meanwhile wait in a queue and enter the core together, so a burst of writes shares one
 *   fdatasync (group commit) and a write's latency is about one fdatasync.
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
 * Not yet here (the replicated store comes next): peers (store/transport.h), so a member that is
 * not the leader refuses writes, and the core keeps no snapshot image to send.
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

#define TICK_MS 100            /* one raft tick */
#define ELECTION_TICKS 10      /* 1 s: etcd's default election timeout */
#define HEARTBEAT_TICKS 1      /* 100 ms */
#define SNAPSHOT_COUNT_DEFAULT 10000 /* applied entries between snapshots */
#define COMPACT_TRAILING 1000  /* entries the core keeps behind a snapshot (a slow follower's grace) */

struct opq {
    struct node_op *head, *tail;
};

struct node_raft {
    struct raft *raft;
    uint64_t member_id;
    int lock_fd;
    struct wal *wal;        /* NULL: in memory only */
    struct wal_thread *wt;
    uv_timer_t ticker;
    uv_async_t wal_async;   /* the WAL thread's "batch done" */
    bool handles;           /* ticker and wal_async were initialised */
    /* the ready that is out (with the WAL thread) */
    bool rd_out;
    struct raft_ready rd;
    struct wal_batch batch;
    pthread_mutex_t mu;     /* guards the three below: set by the WAL thread */
    bool wal_done, closing;
    int wal_err;
    char wal_msg[256];
    /* ops */
    struct opq waiting;     /* writes not yet proposed (a ready is out) */
    struct opq proposed;    /* writes in the log, by index, until applied */
    struct opq unasked;     /* quorum reads not yet given to the core (a ready is out) */
    struct opq reads;       /* quorum reads, until their read index is applied */
    uint64_t read_ctx;
    unsigned ticks;         /* ticks that came while a ready was out */
    bool poisoned;
    char reason[300];
    struct raft_hard_state hs_disk; /* the last hard state handed to the WAL */
    /* snapshots */
    char snap_dir[4200];    /* "" without a data dir: the core's log is compacted without an image */
    uint64_t snap_index;    /* the latest snapshot (or compaction) */
    bool marker_out;        /* a snapshot marker is with the WAL thread */
    struct wal_batch mbatch;
    struct snap_meta marker;
    bool marker_done;       /* under mu */
    int marker_err;         /* under mu */
    uint64_t compact_at;    /* a compaction to do once no ready is out */
    /* proposal scratch */
    const void **datas;
    uint32_t *lens;
    size_t cap_props;
};

static void q_push(struct opq *q, struct node_op *op)
{
    op->next_ = NULL;
    if (q->tail)
        q->tail->next_ = op;
    else
        q->head = op;
    q->tail = op;
}

static struct node_op *q_pop(struct opq *q)
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

static void q_fail(struct node *n, struct opq *q, int status)
{
    struct node_op *op;
    while ((op = q_pop(q)))
        node_complete(n, op, status);
}

static void set_health(struct node *n, bool ok, const char *reason)
{
    __atomic_store_n(&n->health_reason, reason, __ATOMIC_RELEASE);
    __atomic_store_n(&n->can_commit, ok ? 1 : 0, __ATOMIC_RELEASE);
}

/* The WAL failed: never acknowledge anything again (until a restart re-reads what is durable). */
static void poison(struct node *n, const char *what)
{
    struct node_raft *d = n->drv;
    if (d->poisoned)
        return;
    d->poisoned = true;
    snprintf(d->reason, sizeof(d->reason), "the write-ahead log failed, writes are refused until a restart: %s",
             what);
    set_health(n, false, d->reason);
    fprintf(stderr, "discoveryd: %s\n", d->reason);
    q_fail(n, &d->waiting, NODE_EUNAVAILABLE);
    q_fail(n, &d->proposed, NODE_EUNAVAILABLE);
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

/* Hand committed entries to the seam, each with the op that proposed it here (if any). */
static void apply_committed(struct node *n, const struct raft_entry *es, size_t count)
{
    struct node_raft *d = n->drv;
    struct node_entry stackv[64];
    size_t done = 0;
    while (done < count) {
        size_t k = count - done < 64 ? count - done : 64;
        for (size_t i = 0; i < k; i++) {
            const struct raft_entry *e = &es[done + i];
            struct node_entry *ne = &stackv[i];
            ne->index = e->index;
            ne->term = e->term;
            ne->data = e->type == RAFT_ENTRY_NORMAL ? e->data : NULL;
            ne->len = e->type == RAFT_ENTRY_NORMAL ? e->len : 0;
            ne->op = NULL;
            /* proposals left behind by a lost leadership never commit at their index */
            while (d->proposed.head && d->proposed.head->index_ < e->index)
                node_complete(n, q_pop(&d->proposed), NODE_EUNAVAILABLE);
            if (d->proposed.head && d->proposed.head->index_ == e->index && e->type == RAFT_ENTRY_NORMAL)
                ne->op = q_pop(&d->proposed);
        }
        node_apply(n, stackv, k);
        done += k;
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

/* ---------------------------------------------------------------- snapshots */

static void on_marker_done(void *arg, int err, const char *msg)
{
    struct node *n = arg; /* WAL thread */
    struct node_raft *d = n->drv;
    pthread_mutex_lock(&d->mu);
    d->marker_done = true;
    d->marker_err = err;
    if (err)
        snprintf(d->wal_msg, sizeof(d->wal_msg), "%s", msg ? msg : strerror(-err));
    if (!d->closing)
        uv_async_send(&d->wal_async);
    pthread_mutex_unlock(&d->mu);
}

/* The snapshot file is durable: tell the WAL (which then drops what it covers). */
static void on_snap_written(struct node *n, bool ok, const struct snap_meta *m, const char *msg)
{
    struct node_raft *d = n->drv;
    if (!ok) {
        fprintf(stderr, "discoveryd: snapshot at index %llu failed (the log keeps everything; will retry): %s\n",
                (unsigned long long)m->index, msg);
        d->snap_index = m->index; /* retry after another snapshot_count entries, not at once */
        return;
    }
    if (d->poisoned || !d->wt)
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
        char why[256];
        if (wal_thread_error(d->wt, why, sizeof(why)) == 0)
            snprintf(why, sizeof(why), "%s", strerror(-rv));
        poison(n, why);
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

/* The marker is durable: drop the core's log and older snapshot files. */
static void marker_durable(struct node *n)
{
    struct node_raft *d = n->drv;
    count_wal(n);
    __atomic_add_fetch(&n->st_snapshots, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_snap_index, d->marker.index, __ATOMIC_RELAXED);
    d->marker_out = false;
    d->snap_index = d->marker.index;
    d->compact_at = d->marker.index;
    int rv = snap_prune(fileio_posix(), d->snap_dir, d->marker.index);
    if (rv != 0)
        fprintf(stderr, "discoveryd: removing old snapshots in %s: %s\n", d->snap_dir, strerror(-rv));
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
    uint64_t every = n->cfg.snapshot_count ? n->cfg.snapshot_count : SNAPSHOT_COUNT_DEFAULT;
    if (applied - d->snap_index < every || d->poisoned)
        return;
    if (!d->snap_dir[0]) {
        d->compact_at = applied; /* in memory only: no image, just keep the log bounded */
        d->snap_index = applied;
        return;
    }
    if (d->marker_out || node_snap_running(n))
        return;
    struct snap_meta m = {
        .index = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED),
        .term = __atomic_load_n(&n->applied_term, __ATOMIC_RELAXED),
        .cluster_id = n->cluster_id,
        .kv_index = kv_index(n->kv),
        .conf = *raft_configuration(d->raft),
    };
    int rv = node_snap_begin(n, d->snap_dir, &m, on_snap_written);
    if (rv != 0) {
        fprintf(stderr, "discoveryd: cannot start a snapshot: %s\n", strerror(-rv));
        d->snap_index = applied;
    }
}

/* The ready's writes are durable: send, advance, compact now and then, go on. */
static void finish_ready(struct node *n)
{
    struct node_raft *d = n->drv;
    /* rd.messages: one member, no one to send to */
    raft_advance(d->raft, &d->rd);
    d->rd_out = false;
    maybe_snapshot(n);
    if (d->rd.soft_state_changed && d->rd.role != RAFT_LEADER) {
        /* leadership lost: writes in flight may never commit here; reads must be retried */
        q_fail(n, &d->proposed, NODE_EUNAVAILABLE);
        q_fail(n, &d->reads, NODE_EUNAVAILABLE);
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

static void on_wal_async(uv_async_t *a)
{
    struct node *n = a->data;
    struct node_raft *d = n->drv;
    pthread_mutex_lock(&d->mu);
    bool done = d->wal_done, mdone = d->marker_done;
    int err = d->wal_err, merr = d->marker_err;
    char msg[sizeof(d->wal_msg)];
    memcpy(msg, d->wal_msg, sizeof(msg));
    d->wal_done = d->marker_done = false;
    pthread_mutex_unlock(&d->mu);
    if (mdone && merr) {
        poison(n, msg);
        return;
    }
    if (mdone)
        marker_durable(n);
    if (!done || !d->rd_out) {
        if (mdone && !d->rd_out)
            maybe_snapshot(n); /* compact now */
        return;
    }
    if (err) {
        poison(n, msg); /* the ready stays out: the core is never advanced past what is not durable */
        return;
    }
    count_wal(n);
    finish_ready(n);
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
        q_fail(n, &d->waiting, NODE_ENOMEM);
        return;
    }
    int64_t now = node_wall_ms();
    n->arena.len = 0;
    size_t k = 0;
    bool oom = false;
    for (struct node_op *op = d->waiting.head; op; op = op->next_, k++) {
        op->cmd.now_ms = now;
        size_t off = n->arena.len;
        if (vec_reserve((void **)&n->arena.p, &n->arena.cap, off + kv_cmd_encoded_len(&op->cmd), 1, 1024) != 0) {
            oom = true;
            break;
        }
        n->arena.len += kv_cmd_encode_to(&op->cmd, n->arena.p + off, n->arena.cap - off);
        d->datas[k] = (const void *)(uintptr_t)off; /* rebased below: the arena may move */
        d->lens[k] = (uint32_t)(n->arena.len - off);
    }
    if (oom) {
        q_fail(n, &d->waiting, NODE_ENOMEM);
        return;
    }
    for (size_t i = 0; i < count; i++)
        d->datas[i] = n->arena.p + (uintptr_t)d->datas[i];
    int rv = raft_propose_batch(d->raft, d->datas, d->lens, count);
    if (rv != 0) {
        /* not the leader (no peers to forward to yet), or the uncommitted cap: 5xx, retry */
        q_fail(n, &d->waiting, rv == RAFT_ENOMEM ? NODE_ENOMEM : NODE_EUNAVAILABLE);
        return;
    }
    uint64_t idx = raft_last_index(d->raft) - count;
    struct node_op *op;
    while ((op = q_pop(&d->waiting))) {
        op->index_ = ++idx;
        q_push(&d->proposed, op);
    }
}

/* Give the waiting quorum reads to the core (read-index requests). */
static void ask_reads(struct node *n)
{
    struct node_raft *d = n->drv;
    struct node_op *op;
    while ((op = q_pop(&d->unasked))) {
        op->ctx_ = ++d->read_ctx;
        op->index_ = 0;
        if (raft_read_index(d->raft, op->ctx_) != 0)
            node_complete(n, op, NODE_EUNAVAILABLE); /* not the leader (no peers to ask yet) */
        else
            q_push(&d->reads, op);
    }
}

static void drive(struct node *n)
{
    struct node_raft *d = n->drv;
    if (d->poisoned) {
        q_fail(n, &d->waiting, NODE_EUNAVAILABLE);
        return;
    }
    if (d->rd_out)
        return; /* the core takes no input until the ready that is out is advanced */
    for (; d->ticks; d->ticks--)
        raft_tick(d->raft);
    ask_reads(n);
    propose_waiting(n);
    if (!raft_has_ready(d->raft))
        return;
    raft_ready(d->raft, &d->rd);
    d->rd_out = true;
    if (d->rd.n_committed)
        apply_committed(n, d->rd.committed, d->rd.n_committed);
    note_read_states(n, &d->rd);
    serve_reads(n);
    /* A hard state that only moves the commit index is a hint (raft.h: restarting below the true
     * commit is safe), so it rides with the next write instead of costing an fdatasync of its own;
     * term and vote are promises and always go to disk before anything is sent. */
    bool promise = d->rd.has_hard_state &&
                   (d->rd.hard_state.term != d->hs_disk.term || d->rd.hard_state.vote != d->hs_disk.vote);
    bool writes = d->rd.n_entries || promise || d->rd.snapshot;
    if (!d->wt || !writes) {
        finish_ready(n);
        return;
    }
    memset(&d->batch, 0, sizeof(d->batch));
    d->batch.entries = d->rd.entries;
    d->batch.n_entries = d->rd.n_entries;
    d->batch.hard_state = d->rd.has_hard_state ? &d->rd.hard_state : NULL;
    if (d->rd.has_hard_state)
        d->hs_disk = d->rd.hard_state;
    d->batch.done = on_batch_done;
    d->batch.arg = n;
    int rv = wal_thread_submit(d->wt, &d->batch);
    if (rv != 0) {
        char msg[256];
        if (wal_thread_error(d->wt, msg, sizeof(msg)) == 0)
            snprintf(msg, sizeof(msg), "%s", strerror(-rv));
        poison(n, msg);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct node *n = t->data;
    n->drv->ticks++;
    drive(n);
}

/* ---------------------------------------------------------------- start-up */

/* One ready, persisted synchronously (start-up, before the WAL thread runs). */
static int sync_ready(struct node *n, char *errbuf, size_t errlen)
{
    struct node_raft *d = n->drv;
    struct raft_ready rd;
    raft_ready(d->raft, &rd);
    if (d->wal && (rd.n_entries || rd.has_hard_state)) {
        int rv = rd.n_entries ? wal_append(d->wal, rd.entries, rd.n_entries) : 0;
        if (rv == 0 && rd.has_hard_state) {
            rv = wal_set_hard_state(d->wal, &rd.hard_state);
            d->hs_disk = rd.hard_state;
        }
        if (rv == 0)
            rv = wal_sync(d->wal);
        if (rv != 0) {
            const char *msg = NULL;
            wal_error(d->wal, &msg);
            snprintf(errbuf, errlen, "--data-dir: writing the write-ahead log failed: %s",
                     msg ? msg : strerror(-rv));
            return -1;
        }
    }
    if (rd.n_committed)
        apply_committed(n, rd.committed, rd.n_committed);
    raft_advance(d->raft, &rd);
    return 0;
}

static void wal_log(void *arg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "discoveryd: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int draw_id(uint64_t *id, char *errbuf, size_t errlen)
{
    while (*id == 0) {
        if (getrandom(id, sizeof(*id), 0) != (ssize_t)sizeof(*id) && errno != EINTR) {
            snprintf(errbuf, errlen, "getrandom: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Take <data_dir>/LOCK: one discoveryd per data dir. */
static int lock_data_dir(struct node_raft *d, const char *dir, char *errbuf, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/LOCK", dir);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (d->lock_fd < 0) {
        snprintf(errbuf, errlen, "--data-dir: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(errbuf, errlen,
                 "--data-dir: %s is in use by another discoveryd (%s is locked); stop it or choose "
                 "another --data-dir",
                 dir, path);
        return -1;
    }
    return 0;
}

/* Does dir/wal hold any WAL segment? */
static bool wal_exists(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/wal", dir);
    DIR *dh = opendir(path);
    if (!dh)
        return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(dh))) {
        size_t l = strlen(e->d_name);
        found = l > 4 && strcmp(e->d_name + l - 4, ".wal") == 0;
    }
    closedir(dh);
    return found;
}

static int open_wal(struct node *n, struct wal_replay *rep, char *errbuf, size_t errlen)
{
    struct node_raft *d = n->drv;
    const char *dir = n->cfg.data_dir;
    if (lock_data_dir(d, dir, errbuf, errlen) != 0)
        return -1;
    char wdir[4096];
    snprintf(wdir, sizeof(wdir), "%s/wal", dir);
    struct wal_config wc;
    wal_config_defaults(&wc);
    wc.dir = wdir;
    wc.log = wal_log;
    bool fresh = !wal_exists(dir);
    if (fresh) {
        if (draw_id(&n->cluster_id, errbuf, errlen) != 0 || draw_id(&d->member_id, errbuf, errlen) != 0)
            return -1;
        wc.cluster_id = n->cluster_id;
        wc.member_id = d->member_id;
    }
    char err[512];
    int rv = wal_open(&d->wal, &wc, rep, err, sizeof(err));
    if (rv != 0) {
        snprintf(errbuf, errlen, "--data-dir: %s", err);
        return -1;
    }
    n->cluster_id = rep->cluster_id;
    d->member_id = rep->member_id;
    if (!n->cluster_id || !d->member_id) {
        snprintf(errbuf, errlen, "--data-dir: %s records no cluster or member ID; it was not made by this "
                 "discoveryd: move it away to start empty", wdir);
        return -1;
    }
    return 0;
}

/* The tree and history as of the WAL's latest snapshot marker. */
static int load_snapshot(struct node *n, const struct wal_replay *rep, struct raft_snapshot *out, char *errbuf,
                         size_t errlen)
{
    struct node_raft *d = n->drv;
    struct snap_meta m;
    char err[600];
    int rv = snap_load(fileio_posix(), d->snap_dir, rep->snapshot_index, rep->snapshot_term, &m, n->kv, n->hub, err,
                       sizeof(err));
    if (rv != 0) {
        snprintf(errbuf, errlen, "--data-dir: the WAL's snapshot marker names a snapshot that cannot be loaded: %s",
                 err);
        return -1;
    }
    if (m.cluster_id != n->cluster_id) {
        snprintf(errbuf, errlen, "--data-dir: the snapshot in %s belongs to another cluster", d->snap_dir);
        return -1;
    }
    out->meta.index = m.index;
    out->meta.term = m.term;
    out->meta.conf = m.conf;
    d->snap_index = m.index;
    node_apply_restore(n, m.index, m.term);
    return 0;
}

int node_raft_start(struct node *n, char *errbuf, size_t errlen)
{
    struct node_raft *d = calloc(1, sizeof(*d));
    if (!d) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    n->drv = d;
    d->lock_fd = -1;
    pthread_mutex_init(&d->mu, NULL);
    struct wal_replay rep;
    memset(&rep, 0, sizeof(rep));
    struct raft_persisted st, *stp = NULL;
    struct raft_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    if (n->cfg.data_dir) {
        if (open_wal(n, &rep, errbuf, errlen) != 0)
            goto fail;
        snprintf(d->snap_dir, sizeof(d->snap_dir), "%s/snap", n->cfg.data_dir);
        if (rep.has_snapshot && load_snapshot(n, &rep, &snap, errbuf, errlen) != 0)
            goto fail;
        char err[256];
        if (wal_replay_persisted(&rep, rep.has_snapshot ? &snap : NULL, &st, err, sizeof(err)) != 0) {
            snprintf(errbuf, errlen, "--data-dir: %s", err);
            goto fail;
        }
        stp = &st;
    } else if (draw_id(&d->member_id, errbuf, errlen) != 0) {
        goto fail;
    }
    struct raft_config rc;
    raft_config_defaults(&rc);
    rc.id = d->member_id;
    rc.election_tick = ELECTION_TICKS;
    rc.heartbeat_tick = HEARTBEAT_TICKS;
    rc.pre_vote = true;
    rc.check_quorum = true;
    rc.seed = d->member_id ^ (uint64_t)node_wall_ms();
    bool fresh = !stp || (stp->n_entries == 0 && stp->hard_state.term == 0 && !stp->snapshot);
    if (fresh) {
        rc.bootstrap.n = 1;
        rc.bootstrap.ids[0] = d->member_id;
    }
    if (raft_new(&d->raft, &rc, fresh ? NULL : stp, errbuf, errlen) != 0) {
        char m[256];
        snprintf(m, sizeof(m), "%s", errbuf);
        snprintf(errbuf, errlen, "--data-dir: the log cannot be restored: %s", m);
        goto fail;
    }
    wal_replay_free(&rep);
    /* Replay what the log holds and, as the only voter, become leader now: the election timeout
     * only matters when there is someone to wait for. */
    for (unsigned i = 0; i < 4 * ELECTION_TICKS + 4; i++) {
        while (raft_has_ready(d->raft))
            if (sync_ready(n, errbuf, errlen) != 0)
                goto fail;
        const struct raft_conf *conf = raft_configuration(d->raft);
        bool alone = conf->n == 1 && conf->ids[0] == d->member_id;
        if (!alone || (raft_role(d->raft) == RAFT_LEADER && raft_applied_index(d->raft) == raft_commit_index(d->raft)))
            break;
        raft_tick(d->raft);
    }
    if (d->wal && wal_thread_start(&d->wt, d->wal) != 0) {
        snprintf(errbuf, errlen, "--data-dir: cannot start the WAL thread");
        goto fail;
    }
    uv_timer_init(&n->loop, &d->ticker);
    uv_async_init(&n->loop, &d->wal_async, on_wal_async);
    d->ticker.data = d->wal_async.data = n;
    d->handles = true;
    uv_timer_start(&d->ticker, on_tick, TICK_MS, TICK_MS);
    set_health(n, true, NULL);
    return 0;
fail:
    wal_replay_free(&rep);
    return -1;
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

void node_raft_stop(struct node *n)
{
    struct node_raft *d = n->drv;
    set_health(n, false, "the store is shutting down");
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->closing = true;
    pthread_mutex_unlock(&d->mu);
    if (d->wt) {
        wal_thread_stop(d->wt); /* completes the batch that is out */
        d->wt = NULL;
    }
    q_fail(n, &d->waiting, NODE_EUNAVAILABLE);
    q_fail(n, &d->proposed, NODE_EUNAVAILABLE);
    q_fail(n, &d->reads, NODE_EUNAVAILABLE);
    q_fail(n, &d->unasked, NODE_EUNAVAILABLE);
    node_snap_close(n);
    if (d->handles) {
        uv_close((uv_handle_t *)&d->ticker, NULL);
        uv_close((uv_handle_t *)&d->wal_async, NULL);
        d->handles = false;
    }
}

void node_raft_free(struct node *n)
{
    struct node_raft *d = n->drv;
    free(n->arena.p);
    n->arena.p = NULL;
    if (!d)
        return;
    if (d->wt)
        wal_thread_stop(d->wt);
    if (d->wal)
        wal_close(d->wal);
    raft_free(d->raft);
    node_snap_free(n);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    pthread_mutex_destroy(&d->mu);
    free(d->datas);
    free(d->lens);
    free(d);
    n->drv = NULL;
}
