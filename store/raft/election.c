/* store/raft/election.c — roles, timers, campaigns and votes (Raft §5.2, thesis §9.6 pre-vote,
 * §6.2 check-quorum, §3.10 leadership transfer's TimeoutNow).
 *
 * The election timeout is drawn from [election_tick, 2*election_tick) with a per-node splitmix64
 * stream seeded from the config, so one seed replays one history exactly.
 */
#include "store/raft/internal.h"

static uint64_t rng_next(struct raft *r)
{
    uint64_t z = (r->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void raft_reset_timeout(struct raft *r)
{
    r->randomized_timeout = r->cfg.election_tick + (unsigned)(rng_next(r) % r->cfg.election_tick);
}

static void reset(struct raft *r, uint64_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = 0;
    }
    r->lead = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    raft_reset_timeout(r);
    r->lead_transferee = 0;
    r->uncommitted_bytes = 0;
    r->need_bcast = false;
    r->need_heartbeat = false;
    raft_reads_clear(r);
    for (unsigned i = 0; i < r->n_prs; i++) {
        raft_pr_reset(&r->prs[i], r->prs[i].id, raft_log_last_index(&r->log) + 1, r->cfg.max_inflight);
        if (r->prs[i].id == r->id)
            r->prs[i].match = r->log.stable;
    }
}

void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead)
{
    reset(r, term);
    r->role = RAFT_FOLLOWER;
    r->lead = lead;
}

bool raft_promotable(const struct raft *r)
{
    return raft_is_voter(r) && !r->has_pending_snap;
}

/* Count the votes of the current campaign. */
static void tally(const struct raft *r, unsigned *granted, unsigned *rejected)
{
    *granted = *rejected = 0;
    for (unsigned i = 0; i < r->n_prs; i++) {
        if (r->prs[i].vote > 0)
            (*granted)++;
        else if (r->prs[i].vote < 0)
            (*rejected)++;
    }
}

int raft_become_leader(struct raft *r)
{
    assert(r->role == RAFT_CANDIDATE);
    reset(r, r->term);
    r->role = RAFT_LEADER;
    r->lead = r->id;
    struct raft_progress *self = raft_pr(r, r->id);
    if (self != NULL)
        self->recent_active = true;
    /* §8: a no-op of the new term lets the leader commit what earlier terms left behind, and
     * tells it where its term starts for read-index and configuration changes. */
    r->leader_first_index = raft_log_last_index(&r->log) + 1;
    struct raft_entry e = {.term = r->term, .index = r->leader_first_index, .type = RAFT_ENTRY_NOOP};
    int rv = raft_append(r, &e, 1);
    r->need_bcast = true;
    return rv;
}

int raft_campaign(struct raft *r, bool pre_vote, bool transfer)
{
    if (!raft_promotable(r))
        return 0;
    uint64_t term;
    uint8_t type;
    if (pre_vote) {
        /* Ask first whether we could win, without touching our term (thesis §9.6). */
        reset(r, r->term);
        r->role = RAFT_PRE_CANDIDATE;
        term = r->term + 1;
        type = RAFT_MSG_PRE_VOTE;
    } else {
        reset(r, r->term + 1);
        r->role = RAFT_CANDIDATE;
        r->vote = r->id;
        term = r->term;
        type = RAFT_MSG_VOTE;
    }
    for (unsigned i = 0; i < r->n_prs; i++)
        r->prs[i].vote = r->prs[i].id == r->id ? 1 : 0;
    unsigned granted, rejected;
    tally(r, &granted, &rejected);
    if (granted >= raft_quorum(r))
        return pre_vote ? raft_campaign(r, false, transfer) : raft_become_leader(r);
    int rv = 0;
    for (unsigned i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id == r->id)
            continue;
        struct raft_message m = {.type = type,
                                 .to = r->prs[i].id,
                                 .term = term,
                                 .index = raft_log_last_index(&r->log),
                                 .log_term = raft_log_last_term(&r->log),
                                 .transfer = transfer};
        int e = raft_send(r, &m, 0);
        if (e != 0)
            rv = e;
    }
    return rv;
}

int raft_tick_election(struct raft *r)
{
    r->election_elapsed++;
    if (raft_promotable(r) && r->election_elapsed >= r->randomized_timeout) {
        r->election_elapsed = 0;
        return raft_campaign(r, r->cfg.pre_vote, false);
    }
    return 0;
}

int raft_tick_leader(struct raft *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    for (unsigned i = 0; i < r->n_prs; i++)
        r->prs[i].state_ticks++;
    if (r->election_elapsed >= r->cfg.election_tick) {
        r->election_elapsed = 0;
        if (r->cfg.check_quorum) {
            /* §6.2: a leader that has not heard from a quorum for an election timeout may have
             * been replaced; stepping down lets its clients find the real leader. */
            unsigned active = 0;
            for (unsigned i = 0; i < r->n_prs; i++) {
                if (r->prs[i].id == r->id || r->prs[i].recent_active)
                    active++;
                r->prs[i].recent_active = r->prs[i].id == r->id;
            }
            if (active < raft_quorum(r)) {
                raft_become_follower(r, r->term, 0);
                return 0;
            }
        }
        /* A transfer that did not finish within an election timeout is abandoned (§3.10). */
        r->lead_transferee = 0;
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
        r->heartbeat_elapsed = 0;
        return raft_bcast_heartbeat(r);
    }
    return 0;
}

int raft_handle_vote(struct raft *r, const struct raft_message *m)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE;
    /* One vote per term (§5.2): repeat a vote already given, or give one if we have neither
     * voted nor seen a leader in this term. A pre-vote for a later term promises nothing. */
    bool can = r->vote == m->from || (r->vote == 0 && r->lead == 0) || (pre && m->term > r->term);
    struct raft_message resp = {.type = pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP, .to = m->from};
    if (can && raft_log_up_to_date(&r->log, m->index, m->log_term)) {
        resp.term = m->term;
        if (!pre) {
            r->election_elapsed = 0;
            r->vote = m->from;
        }
    } else {
        resp.term = r->term;
        resp.reject = true;
    }
    return raft_send(r, &resp, 0);
}

int raft_handle_vote_resp(struct raft *r, const struct raft_message *m)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE_RESP;
    if (!((pre && r->role == RAFT_PRE_CANDIDATE) || (!pre && r->role == RAFT_CANDIDATE)))
        return 0;
    struct raft_progress *pr = raft_pr(r, m->from);
    if (pr == NULL)
        return 0;
    if (pr->vote == 0)
        pr->vote = m->reject ? -1 : 1;
    unsigned granted, rejected;
    tally(r, &granted, &rejected);
    if (granted >= raft_quorum(r)) {
        if (pre)
            return raft_campaign(r, false, false);
        return raft_become_leader(r);
    }
    if (r->conf.n - rejected < raft_quorum(r))
        raft_become_follower(r, r->term, 0);
    return 0;
}

int raft_handle_timeout_now(struct raft *r, const struct raft_message *m)
{
    if (r->role == RAFT_LEADER)
        return 0;
    /* The leader chose us: campaign at once, skipping pre-vote, with votes that pierce leases. */
    return raft_campaign(r, false, true);
}
