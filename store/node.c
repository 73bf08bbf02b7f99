/* store/node.c — the store's small shared pieces: completing an op (raft position, token facts,
 * the hop to its client), the proposer's clock, and the accessors other threads use (node.h).
 * It calls no other node room, so each of them may build on it.
 */
#include "store/node_int.h"

#include <errno.h>
#include <sys/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void node_config_defaults(struct node_config *cfg)
{
    *cfg = (struct node_config){
        .history_per_token = 1000,
        .watch_timeout_ms = 60000,
        .max_watches_total = 65536,
        .max_watches_per_client = 1024,
        .token_ttl_ms = NODE_TOKEN_TTL_DEFAULT_MS,
    };
}

int64_t node_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void node_complete(struct node *n, struct node_op *op, int status)
{
    op->status = status;
    if (op->type == NODE_OP_WRITE)
        __atomic_add_fetch(status < 0 ? &n->st_props_failed : &n->st_props_ok, 1, __ATOMIC_RELAXED);
    op->raft_index = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED);
    op->raft_term = __atomic_load_n(&n->applied_term, __ATOMIC_RELAXED);
    if (op->client)
        op->client->post(op->client, op);
    else
        op->done(op);
}

void node_fill_token(struct node *n, struct node_op *op, const char *key, size_t key_len)
{
    const char *tok;
    size_t tlen;
    if (key && kv_key_token(key, key_len, &tok, &tlen))
        kv_token_info(n->kv, tok, tlen, &op->token);
    else
        memset(&op->token, 0, sizeof(op->token));
}

int node_draw_id(uint64_t *id, char *errbuf, size_t errlen)
{
    while (*id == 0) {
        if (getrandom(id, sizeof(*id), 0) != (ssize_t)sizeof(*id) && errno != EINTR) {
            snprintf(errbuf, errlen, "getrandom: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- any thread */

void node_rdlock(struct node *n)
{
    pthread_rwlock_rdlock(&n->rw);
}

void node_rdunlock(struct node *n)
{
    pthread_rwlock_unlock(&n->rw);
}

const struct kv *node_kv(struct node *n)
{
    return n->kv;
}

void node_raft_state(struct node *n, uint64_t *index, uint64_t *term)
{
    if (index)
        *index = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED);
    if (term)
        *term = __atomic_load_n(&n->applied_term, __ATOMIC_RELAXED);
}

uint64_t node_cluster_id(struct node *n)
{
    return n->cluster_id;
}

void node_cluster(struct node *n, struct node_cluster *out)
{
    pthread_mutex_lock(&n->mmu);
    *out = n->pub;
    pthread_mutex_unlock(&n->mmu);
}

bool node_healthy(struct node *n, char *reason, size_t len)
{
    if (__atomic_load_n(&n->can_commit, __ATOMIC_ACQUIRE))
        return true;
    if (reason && len)
        snprintf(reason, len, "%s", __atomic_load_n(&n->health_reason, __ATOMIC_ACQUIRE));
    return false;
}

void node_stats(struct node *n, struct node_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->parked_watches = __atomic_load_n(&n->st_parked, __ATOMIC_RELAXED);
    st->applied = __atomic_load_n(&n->st_applied, __ATOMIC_RELAXED);
    st->expired_tokens = __atomic_load_n(&n->st_expired, __ATOMIC_RELAXED);
    st->sweeps = __atomic_load_n(&n->st_sweeps, __ATOMIC_RELAXED);
    st->sweeps_chained = __atomic_load_n(&n->st_sweeps_chained, __ATOMIC_RELAXED);
    st->wal_fsyncs = __atomic_load_n(&n->st_fsyncs, __ATOMIC_RELAXED);
    st->wal_rounds = __atomic_load_n(&n->st_rounds, __ATOMIC_RELAXED);
    st->wal_bytes = __atomic_load_n(&n->st_wal_bytes, __ATOMIC_RELAXED);
    st->snapshots = __atomic_load_n(&n->st_snapshots, __ATOMIC_RELAXED);
    st->snapshot_index = __atomic_load_n(&n->st_snap_index, __ATOMIC_RELAXED);
    st->leader_id = __atomic_load_n(&n->st_leader, __ATOMIC_RELAXED);
    st->member_id = __atomic_load_n(&n->st_member, __ATOMIC_RELAXED);
    st->is_leader = st->leader_id != 0 && st->leader_id == st->member_id;
    st->term = __atomic_load_n(&n->st_term, __ATOMIC_RELAXED);
    st->commit_index = __atomic_load_n(&n->st_commit, __ATOMIC_RELAXED);
    st->applied_index = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED);
    st->leader_changes = __atomic_load_n(&n->st_leader_changes, __ATOMIC_RELAXED);
    st->proposals_committed = __atomic_load_n(&n->st_props_ok, __ATOMIC_RELAXED);
    st->proposals_failed = __atomic_load_n(&n->st_props_failed, __ATOMIC_RELAXED);
    st->peer_frames_received = __atomic_load_n(&n->st_peer_received, __ATOMIC_RELAXED);
    st->peer_frames_foreign = __atomic_load_n(&n->st_peer_foreign, __ATOMIC_RELAXED);
    uint64_t np = __atomic_load_n(&n->st_npeers, __ATOMIC_ACQUIRE);
    st->n_peers = np < NODE_MAX_MEMBERS ? (size_t)np : NODE_MAX_MEMBERS;
    for (size_t i = 0; i < st->n_peers; i++) { /* field by field: a sample may mix two ticks, never tears */
        const struct node_peer_stats *ps = &n->st_peers[i];
        st->peers[i] = (struct node_peer_stats){
            .id = __atomic_load_n(&ps->id, __ATOMIC_RELAXED),
            .frames_sent = __atomic_load_n(&ps->frames_sent, __ATOMIC_RELAXED),
            .frames_dropped = __atomic_load_n(&ps->frames_dropped, __ATOMIC_RELAXED),
            .snapshots_sent = __atomic_load_n(&ps->snapshots_sent, __ATOMIC_RELAXED),
            .queued_bytes = __atomic_load_n(&ps->queued_bytes, __ATOMIC_RELAXED),
            .connected = __atomic_load_n(&ps->connected, __ATOMIC_RELAXED),
        };
    }
    pthread_rwlock_rdlock(&n->rw);
    st->tokens = kv_ntokens(n->kv);
    st->nodes = kv_nnodes(n->kv);
    pthread_rwlock_unlock(&n->rw);
}
