/* store/raft/readindex.c — linearizable reads without a log write (thesis §6.4, ReadIndex).
 *
 * The leader records its commit index (at least its own no-op's index, so everything committed by
 * earlier leaders is included), then confirms it still leads with one heartbeat round: every read
 * gets a sequence number, heartbeats carry the latest one, and a read is released once a quorum
 * echoed a sequence at least its own. Reads leave in the order they came.
 */
#include "store/raft/internal.h"

void raft_reads_clear(struct raft *r)
{
    r->n_reads = 0;
}

static int push_state(struct raft *r, uint64_t ctx, uint64_t index)
{
    if (r->n_read_states == r->cap_read_states) {
        size_t cap = r->cap_read_states ? r->cap_read_states * 2 : 8;
        struct raft_read_state *p = raft_realloc(r, r->read_states, cap * sizeof(*p));
        if (p == NULL)
            return RAFT_ENOMEM;
        r->read_states = p;
        r->cap_read_states = cap;
    }
    r->read_states[r->n_read_states].ctx = ctx;
    r->read_states[r->n_read_states].index = index;
    r->n_read_states++;
    return 0;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ERR(r, RAFT_ENOTLEADER, "not the leader");
    uint64_t index = r->commit > r->leader_first_index ? r->commit : r->leader_first_index;
    if (raft_is_voter(r) && raft_quorum(r) == 1)
        return push_state(r, ctx, index);
    if (r->n_reads == r->cap_reads) {
        size_t cap = r->cap_reads ? r->cap_reads * 2 : 8;
        struct raft_read_req *p = raft_realloc(r, r->reads, cap * sizeof(*p));
        if (p == NULL)
            return RAFT_ENOMEM;
        r->reads = p;
        r->cap_reads = cap;
    }
    r->reads[r->n_reads].ctx = ctx;
    r->reads[r->n_reads].index = index;
    r->reads[r->n_reads].seq = ++r->read_seq;
    r->n_reads++;
    /* One heartbeat round per ready confirms every read queued before it. */
    r->need_heartbeat = true;
    return 0;
}

int raft_reads_check(struct raft *r)
{
    size_t done = 0;
    while (done < r->n_reads) {
        const struct raft_read_req *q = &r->reads[done];
        unsigned acks = 0;
        for (unsigned i = 0; i < r->n_prs; i++)
            if (r->prs[i].id == r->id || r->prs[i].read_ack >= q->seq)
                acks++;
        if (acks < raft_quorum(r))
            break;
        int rv = push_state(r, q->ctx, q->index);
        if (rv != 0)
            break;
        done++;
    }
    if (done > 0) {
        memmove(r->reads, r->reads + done, (r->n_reads - done) * sizeof(*r->reads));
        r->n_reads -= done;
    }
    return 0;
}
