/* store/raft/replication.c — log replication (Raft §5.3), commitment (§5.4.2) and heartbeats.
 *
 * The leader sends appends shaped by each follower's progress state; a follower accepts an append
 * only where its log matches the leader's, truncating a conflicting uncommitted suffix. The leader
 * commits an index once a quorum holds it durably and the entry is of its own term.
 */
#include "store/raft/internal.h"

int raft_send_append(struct raft *r, struct raft_progress *pr, bool send_empty)
{
    if (raft_pr_paused(pr))
        return 0;
    uint64_t prev = pr->next - 1;
    if (prev < r->log.offset)
        return raft_send_snapshot(r, pr);
    uint64_t last = raft_log_last_index(&r->log);
    if (prev > last)
        prev = last, pr->next = last + 1;
    uint64_t prev_term = raft_log_term(&r->log, prev);
    size_t n = 0;
    uint64_t bytes = 0;
    for (uint64_t i = prev + 1; i <= last; i++) {
        uint64_t len = raft_log_get(&r->log, i)->len;
        if (n > 0 && bytes + len > r->cfg.max_msg_bytes)
            break;
        bytes += len;
        n++;
    }
    if (n == 0 && !send_empty)
        return 0;
    struct raft_message m = {.type = RAFT_MSG_APPEND,
                             .to = pr->id,
                             .term = r->term,
                             .index = prev,
                             .log_term = prev_term,
                             .commit = r->commit,
                             .n_entries = (uint32_t)n};
    uint64_t last_term = n > 0 ? raft_log_term(&r->log, prev + n) : prev_term;
    int rv = raft_send(r, &m, last_term);
    if (rv != 0)
        return rv;
    raft_pr_sent(pr, prev + n, n);
    return 0;
}

int raft_bcast_append(struct raft *r)
{
    int rv = 0;
    for (unsigned i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id == r->id)
            continue;
        int e = raft_send_append(r, &r->prs[i], true);
        if (e != 0)
            rv = e;
    }
    return rv;
}

int raft_bcast_heartbeat(struct raft *r)
{
    int rv = 0;
    for (unsigned i = 0; i < r->n_prs; i++) {
        struct raft_progress *pr = &r->prs[i];
        if (pr->id == r->id)
            continue;
        /* Never tell a follower to commit past what it is known to hold like ours. */
        struct raft_message m = {.type = RAFT_MSG_HEARTBEAT,
                                 .to = pr->id,
                                 .term = r->term,
                                 .commit = pr->match < r->commit ? pr->match : r->commit,
                                 .ctx = r->read_seq};
        int e = raft_send(r, &m, 0);
        if (e != 0)
            rv = e;
    }
    return rv;
}

int raft_handle_append(struct raft *r, const struct raft_message *m)
{
    r->election_elapsed = 0;
    r->lead = m->from;
    struct raft_message resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from, .term = r->term};
    if (m->index < r->commit) {
        /* Everything up to our commit already matches any leader's log (§5.4). */
        resp.index = r->commit;
        return raft_send(r, &resp, 0);
    }
    uint64_t last = raft_log_last_index(&r->log);
    if (m->index > last || raft_log_term(&r->log, m->index) != m->log_term) {
        /* Reject with a hint: the last index not above m->index whose term is <= the leader's
         * prev term, so the leader can skip a whole conflicting term per round trip. */
        uint64_t hint = m->index < last ? m->index : last;
        while (hint > r->log.offset && raft_log_term(&r->log, hint) > m->log_term)
            hint--;
        resp.reject = true;
        resp.index = m->index;
        resp.hint = hint;
        resp.log_term = raft_log_term(&r->log, hint);
        return raft_send(r, &resp, 0);
    }
    uint32_t i = 0;
    for (; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->index > last)
            break;
        if (raft_log_term(&r->log, e->index) != e->term) {
            /* A conflicting suffix is from a deposed leader and was never committed (§5.3). */
            assert(e->index > r->commit);
            raft_log_truncate(&r->log, e->index);
            if (r->conf_index >= e->index)
                raft_conf_recompute(r);
            break;
        }
    }
    int rv = raft_append(r, m->entries + i, m->n_entries - i);
    if (rv != 0)
        return rv;
    uint64_t last_new = m->index + m->n_entries;
    raft_commit_to(r, m->commit < last_new ? m->commit : last_new);
    resp.index = last_new;
    return raft_send(r, &resp, 0);
}

int raft_handle_append_resp(struct raft *r, const struct raft_message *m)
{
    struct raft_progress *pr = raft_pr(r, m->from);
    if (pr == NULL)
        return 0;
    pr->recent_active = true;
    if (m->reject) {
        uint64_t hint = m->hint;
        /* Skip our entries whose term is above the follower's term at hint: they cannot match. */
        if (m->log_term > 0)
            while (hint > r->log.offset && raft_log_term(&r->log, hint) > m->log_term)
                hint--;
        if (raft_pr_maybe_decr(pr, m->index, hint)) {
            if (pr->state == RAFT_PR_REPLICATE)
                raft_pr_become_probe(pr);
            return raft_send_append(r, pr, true);
        }
        return 0;
    }
    bool was_paused = raft_pr_paused(pr);
    if (!raft_pr_maybe_update(pr, m->index))
        return 0;
    if (pr->state == RAFT_PR_PROBE)
        raft_pr_become_replicate(pr);
    else if (pr->state == RAFT_PR_SNAPSHOT && pr->match >= pr->pending_snapshot)
        raft_pr_become_probe(pr);
    else if (pr->state == RAFT_PR_REPLICATE)
        raft_infl_free_to(&pr->infl, m->index);
    int rv = 0;
    if (raft_maybe_commit(r)) {
        rv = raft_after_commit(r);
        if (r->role != RAFT_LEADER)
            return rv;
    } else if (was_paused) {
        rv = raft_send_append(r, pr, false);
    }
    /* Keep the pipe full while there is more to send. */
    uint64_t last = raft_log_last_index(&r->log);
    while (rv == 0 && pr->next <= last && !raft_pr_paused(pr)) {
        uint64_t before = pr->next;
        rv = raft_send_append(r, pr, false);
        if (pr->next == before)
            break;
    }
    if (pr->id == r->lead_transferee && pr->match == last) {
        struct raft_message tn = {.type = RAFT_MSG_TIMEOUT_NOW, .to = pr->id, .term = r->term};
        rv = raft_send(r, &tn, 0);
    }
    return rv;
}

int raft_handle_heartbeat(struct raft *r, const struct raft_message *m)
{
    r->election_elapsed = 0;
    r->lead = m->from;
    uint64_t c = m->commit;
    if (c > raft_log_last_index(&r->log))
        c = raft_log_last_index(&r->log);
    raft_commit_to(r, c);
    struct raft_message resp = {
        .type = RAFT_MSG_HEARTBEAT_RESP, .to = m->from, .term = r->term, .ctx = m->ctx};
    return raft_send(r, &resp, 0);
}

int raft_handle_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
    struct raft_progress *pr = raft_pr(r, m->from);
    if (pr == NULL)
        return 0;
    pr->recent_active = true;
    if (pr->state == RAFT_PR_PROBE) {
        pr->probe_sent = false;
    } else if (pr->state == RAFT_PR_REPLICATE && raft_infl_full(&pr->infl)) {
        /* The follower is alive but the window is full: its answers may have been lost. Free one
         * slot so the pipeline restarts; a gap makes the follower reject and we fall to probing. */
        pr->infl.start = (pr->infl.start + 1) % pr->infl.size;
        pr->infl.count--;
    } else if (pr->state == RAFT_PR_SNAPSHOT && pr->state_ticks >= r->cfg.election_tick) {
        /* The snapshot was probably lost: probe again from what the follower holds. */
        pr->pending_snapshot = 0;
        raft_pr_become_probe(pr);
    }
    int rv = 0;
    if (pr->match < raft_log_last_index(&r->log))
        rv = raft_send_append(r, pr, true);
    if (m->ctx > pr->read_ack) {
        pr->read_ack = m->ctx;
        int e = raft_reads_check(r);
        if (e != 0)
            rv = e;
    }
    return rv;
}

bool raft_maybe_commit(struct raft *r)
{
    uint64_t m[RAFT_MAX_NODES];
    unsigned n = 0;
    for (unsigned i = 0; i < r->n_prs; i++) {
        /* The leader counts itself only for what its own disk holds. */
        m[n++] = r->prs[i].id == r->id ? r->log.stable : r->prs[i].match;
    }
    if (n == 0)
        return false;
    for (unsigned i = 1; i < n; i++) /* insertion sort, descending: n <= 16 */
        for (unsigned j = i; j > 0 && m[j - 1] < m[j]; j--) {
            uint64_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    uint64_t mci = m[raft_quorum(r) - 1];
    /* §5.4.2: only an entry of the current term is committed by counting replicas. */
    if (mci > r->commit && raft_log_term(&r->log, mci) == r->term) {
        raft_commit_to(r, mci);
        return true;
    }
    return false;
}

int raft_after_commit(struct raft *r)
{
    int rv = raft_bcast_append(r);
    int e = raft_check_removed_leader(r);
    return rv != 0 ? rv : e;
}
