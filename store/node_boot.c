/* store/node_boot.c — the log driver's start-up and shutdown: take the data dir's lock, open the
 * WAL (checking the cluster and member it belongs to; a member joining a running cluster asks the
 * members who it is first), load the snapshot its latest marker names (and the membership with it),
 * build the Raft core from what is durable, replay it through the apply seam, become leader at
 * once as a lone voter, then start the WAL thread and the tick; and undo all that at the end.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include "store/node_join.h"
#include "store/node_members.h"
#include "store/node_raft_int.h"
#include "store/node_snap.h"

#define JOIN_TIMEOUT_MS 10000 /* --initial-cluster-state existing: how long to ask the members */

static int member_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct node_member *)a)->id, y = ((const struct node_member *)b)->id;
    return x < y ? -1 : x > y;
}

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
        node_raft_apply(n, rd.committed, rd.n_committed);
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

/* A member that joined but was stopped before the leader sent it anything has its IDs on disk but no
 * membership yet: it asks again (the members must still know it under the same IDs). */
static int rejoin(struct node *n, const struct node_cluster *c, char *errbuf, size_t errlen)
{
    struct node_join_result *j = calloc(1, sizeof(*j));
    int rv = j ? node_join(c, JOIN_TIMEOUT_MS, j, errbuf, errlen) : -1;
    if (!j)
        snprintf(errbuf, errlen, "out of memory");
    else if (rv == 0 && (j->cluster_id != n->cluster_id || j->member_id != n->drv->member_id)) {
        snprintf(errbuf, errlen,
                 "--data-dir: it was made for member %llx of cluster %llx, but the members know this peer URL as "
                 "member %llx of cluster %llx: move the data dir away to join afresh",
                 (unsigned long long)n->drv->member_id, (unsigned long long)n->cluster_id,
                 (unsigned long long)j->member_id, (unsigned long long)j->cluster_id);
        rv = -1;
    } else if (rv == 0) {
        node_conf_founding(n, j->members, j->n);
        fprintf(stderr, "discoveryd: the data dir holds no membership yet (stopped before the leader sent "
                        "anything): asked the members again\n");
    }
    free(j);
    return rv;
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
    const struct node_cluster *c = n->cfg.cluster;
    bool fresh = !wal_exists(dir);
    if (c && c->n > 0 && fresh && c->existing) {
        /* joining a running cluster: the members tell us our ID, the cluster's and the membership */
        struct node_join_result *j = calloc(1, sizeof(*j));
        if (!j || node_join(c, JOIN_TIMEOUT_MS, j, errbuf, errlen) != 0) {
            if (!j)
                snprintf(errbuf, errlen, "out of memory");
            free(j);
            return -1;
        }
        n->cluster_id = wc.cluster_id = j->cluster_id;
        d->member_id = wc.member_id = j->member_id;
        node_conf_founding(n, j->members, j->n);
        fprintf(stderr, "discoveryd: joining cluster %llx as member %llx (%zu members)\n",
                (unsigned long long)j->cluster_id, (unsigned long long)j->member_id, j->n);
        free(j);
    } else if (c && c->n > 0 && !fresh && c->existing) {
        fprintf(stderr, "discoveryd: --data-dir %s is not empty: its cluster, member ID and membership are "
                        "used; --initial-cluster is ignored\n", dir);
    } else if (c && c->n > 0) {
        /* a founding member: its IDs come from the flags, and a data dir made for another cluster or
         * member is refused by wal_open */
        n->cluster_id = c->cluster_id;
        d->member_id = c->members[c->self].id;
        wc.cluster_id = n->cluster_id;
        wc.member_id = d->member_id;
        if (!fresh)
            fprintf(stderr, "discoveryd: --data-dir %s is not empty: the membership is the one it holds, "
                            "not --initial-cluster's\n", dir);
    } else if (fresh) {
        if (node_draw_id(&n->cluster_id, errbuf, errlen) != 0 ||
            node_draw_id(&d->member_id, errbuf, errlen) != 0)
            return -1;
        wc.cluster_id = n->cluster_id;
        wc.member_id = d->member_id;
    }
    char err[512];
    int rv = wal_open(&d->wal, &wc, rep, err, sizeof(err));
    if (rv != 0) {
        snprintf(errbuf, errlen, "--data-dir: %s%s", err,
                 rv == -EINVAL && c && c->n > 0 ? " (check --name, --initial-cluster and --initial-cluster-state)"
                                                : "");
        return -1;
    }
    n->cluster_id = rep->cluster_id;
    d->member_id = rep->member_id;
    if (c && c->n > 0 && !fresh && c->existing && !rep->has_snapshot && rep->n_entries == 0 &&
        n->cluster_id && d->member_id && rejoin(n, c, errbuf, errlen) != 0)
        return -1;
    if (!n->cluster_id || !d->member_id) {
        snprintf(errbuf, errlen,
                 "--data-dir: %s records no cluster or member ID; it was not made by this "
                 "discoveryd: move it away to start empty",
                 wdir);
        return -1;
    }
    return 0;
}

/* The tree and history as of the WAL's latest snapshot marker. */
static int load_snapshot(struct node *n, const struct wal_replay *rep, struct raft_snapshot *out,
                         char *errbuf, size_t errlen)
{
    struct node_raft *d = n->drv;
    struct snap_meta m;
    char err[600];
    int rv = snap_load(fileio_posix(), d->snap_dir, rep->snapshot_index, rep->snapshot_term, &m, n->kv,
                       n->hub, err, sizeof(err));
    if (rv != 0) {
        snprintf(errbuf, errlen,
                 "--data-dir: the WAL's snapshot marker names a snapshot that cannot be loaded: %s", err);
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
    d->snap_nodes = kv_nnodes(n->kv);
    if (node_conf_load(n, &m.conf, m.members, m.members_len, err, sizeof(err)) != 0) {
        snprintf(errbuf, errlen, "--data-dir: the snapshot in %s: %s", d->snap_dir, err);
        return -1;
    }
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
    const struct node_cluster *c = n->cfg.cluster && n->cfg.cluster->n > 0 ? n->cfg.cluster : NULL;
    if (c && !n->cfg.data_dir) {
        snprintf(errbuf, errlen, "--initial-cluster: a cluster member needs a data dir");
        return -1;
    }
    uint8_t *boot_ctx = NULL;
    struct wal_replay rep;
    memset(&rep, 0, sizeof(rep));
    struct raft_persisted st, *stp = NULL;
    struct raft_snapshot snap;
    memset(&snap, 0, sizeof(snap));
    if (c) /* until the data dir or the members say otherwise (a data dir older than member tables) */
        node_conf_founding(n, c->members, c->n);
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
        node_conf_seen(n, st.entries, st.n_entries); /* the newest table in the log */
    } else if (node_draw_id(&d->member_id, errbuf, errlen) != 0) {
        goto fail;
    }
    struct raft_config rc;
    raft_config_defaults(&rc);
    rc.id = d->member_id;
    rc.election_tick = c ? c->election_ms / c->heartbeat_ms : ELECTION_TICKS;
    rc.heartbeat_tick = HEARTBEAT_TICKS;
    rc.pre_vote = true;
    rc.check_quorum = true;
    rc.seed = d->member_id ^ (uint64_t)node_wall_ms();
    bool fresh = !stp || (stp->n_entries == 0 && stp->hard_state.term == 0 && !stp->snapshot);
    if (fresh && c && !c->existing) {
        /* a new cluster: every member starts from the same voters and the same member table (sorted
         * by ID, so the first entry is the same bytes everywhere) */
        struct node_member sorted[NODE_MAX_MEMBERS];
        memcpy(sorted, c->members, c->n * sizeof(sorted[0]));
        qsort(sorted, c->n, sizeof(sorted[0]), member_cmp);
        rc.bootstrap.n = (uint32_t)c->n;
        for (size_t i = 0; i < c->n; i++)
            rc.bootstrap.ids[i] = sorted[i].id;
        if (!(boot_ctx = malloc(NODE_MEMBERS_MAX_BYTES))) {
            snprintf(errbuf, errlen, "out of memory");
            goto fail;
        }
        rc.bootstrap_ctx = boot_ctx;
        rc.bootstrap_ctx_len = (uint32_t)node_members_encode(sorted, c->n, boot_ctx, NODE_MEMBERS_MAX_BYTES);
    } else if (fresh && !c) {
        rc.bootstrap.n = 1;
        rc.bootstrap.ids[0] = d->member_id;
    } /* else: restart from what is durable, or join a running cluster (the leader sends the state) */
    if (raft_new(&d->raft, &rc, fresh ? NULL : stp, errbuf, errlen) != 0) {
        char m[256];
        snprintf(m, sizeof(m), "%s", errbuf);
        snprintf(errbuf, errlen, "--data-dir: the log cannot be restored: %s", m);
        goto fail;
    }
    free(boot_ctx);
    boot_ctx = NULL;
    wal_replay_free(&rep);
    /* Replay what the log holds and, as the only voter, become leader now: the election timeout
     * only matters when there is someone to wait for. */
    for (unsigned i = 0; i < 4 * rc.election_tick + 4; i++) {
        while (raft_has_ready(d->raft))
            if (sync_ready(n, errbuf, errlen) != 0)
                goto fail;
        const struct raft_conf *conf = raft_configuration(d->raft);
        bool alone = conf->n == 1 && conf->ids[0] == d->member_id;
        if (!alone ||
            (raft_role(d->raft) == RAFT_LEADER && raft_applied_index(d->raft) == raft_commit_index(d->raft)))
            break;
        raft_tick(d->raft);
    }
    if (d->wal && wal_thread_start(&d->wt, d->wal) != 0) {
        snprintf(errbuf, errlen, "--data-dir: cannot start the WAL thread");
        goto fail;
    }
    uv_timer_init(&n->loop, &d->ticker);
    uv_async_init(&n->loop, &d->wal_async, node_raft_on_wal);
    uv_async_init(&n->loop, &d->kick, node_raft_on_kick);
    d->ticker.data = d->wal_async.data = d->kick.data = n;
    d->handles = true;
    unsigned tick_ms = c ? c->heartbeat_ms : TICK_MS;
    uv_timer_start(&d->ticker, node_raft_on_tick, tick_ms, tick_ms);
    if (c && node_peers_start(n, errbuf, errlen) != 0)
        return -1; /* node_start closes the handles and frees */
    d->was_leader = raft_role(d->raft) == RAFT_LEADER;
    __atomic_store_n(&n->st_member, d->member_id, __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_leader, raft_leader(d->raft), __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_term, raft_term(d->raft), __ATOMIC_RELAXED);
    __atomic_store_n(&n->st_commit, raft_commit_index(d->raft), __ATOMIC_RELAXED);
    node_raft_health(n, raft_leader(d->raft) != 0, "no leader yet: waiting for the other members");
    node_conf_publish(n);
    return 0;
fail:
    free(boot_ctx);
    wal_replay_free(&rep);
    return -1;
}

void node_raft_stop(struct node *n)
{
    struct node_raft *d = n->drv;
    node_raft_health(n, false, "the store is shutting down");
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->closing = true;
    pthread_mutex_unlock(&d->mu);
    if (d->wt) {
        wal_thread_stop(d->wt); /* completes the batch that is out */
        d->wt = NULL;
    }
    node_raft_pipe_free(n);
    node_raft_fail(n, &d->waiting, NODE_EUNAVAILABLE);
    node_raft_fail(n, &d->proposed, NODE_EUNAVAILABLE);
    node_raft_fail(n, &d->reads, NODE_EUNAVAILABLE);
    node_raft_fail(n, &d->unasked, NODE_EUNAVAILABLE);
    node_raft_fail(n, &d->mwaiting, NODE_EUNAVAILABLE);
    if (d->handover) {
        node_complete(n, d->handover, NODE_EUNAVAILABLE);
        d->handover = NULL;
    }
    node_snap_close(n);
    node_peers_stop(n);
    if (d->handles) {
        uv_close((uv_handle_t *)&d->ticker, NULL);
        uv_close((uv_handle_t *)&d->wal_async, NULL);
        uv_close((uv_handle_t *)&d->kick, NULL);
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
    node_raft_pipe_free(n);
    if (d->wal)
        wal_close(d->wal);
    /* a marker that became durable while stopping: its segments go now (the marker covers them) */
    wal_remove_detached(fileio_posix(), &d->mbatch.detached, NULL, 0);
    node_peers_free(n);
    raft_free(d->raft);
    node_snap_free(n);
    free(d->snap_recv_path);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    pthread_mutex_destroy(&d->mu);
    free(d->datas);
    free(d->lens);
    free(d);
    n->drv = NULL;
}
