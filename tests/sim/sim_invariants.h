/* tests/sim/sim_invariants.h — the Raft safety invariants tests/sim/cluster.h checks after every
 * event (state machine safety, log matching, election safety, leader completeness, leader
 * append-only, commit monotony), and sim_dump() for a failed seed. Reads the model, never steers it.
 *
 * Header-only (static inline) so each test executable compiles it with its own flags.
 */
#ifndef DISCOVERYD_TESTS_SIM_INVARIANTS_H
#define DISCOVERYD_TESTS_SIM_INVARIANTS_H

#include "tests/sim/sim_model.h"

/* ---- invariants ---- */
static inline struct sim_truth *sim_truth_at(struct sim *s, uint64_t idx)
{
    if (idx >= s->cap_truth) {
        size_t cap = s->cap_truth ? s->cap_truth : 256;
        while (cap <= idx)
            cap *= 2;
        s->truth = realloc(s->truth, cap * sizeof(*s->truth));
        memset(s->truth + s->cap_truth, 0, (cap - s->cap_truth) * sizeof(*s->truth));
        s->cap_truth = cap;
    }
    return &s->truth[idx];
}
/* Record or compare what is committed at idx. hash 0 = unknown content (snapshot boundary). */
static inline void sim_truth_check(struct sim *s, struct sim_node *n, uint64_t idx, uint64_t term,
                                   uint64_t hash, const char *what)
{
    struct sim_truth *t = sim_truth_at(s, idx);
    if (t->term == 0) {
        t->term = term;
        t->hash = hash;
    } else if (t->term != term || (hash != 0 && t->hash != 0 && t->hash != hash)) {
        sim_fail(s,
                 "state machine safety: node %" PRIu64 " %s index %" PRIu64 " term %" PRIu64
                 " but committed term %" PRIu64 " at t=%" PRIu64,
                 n->id, what, idx, term, t->term, s->now);
    } else if (t->hash == 0) {
        t->hash = hash;
    }
    if (idx > s->max_committed)
        s->max_committed = idx;
}

static inline void sim_lm_grow(struct sim *s);
static inline struct sim_lm *sim_lm_slot(struct sim *s, uint64_t index, uint64_t term)
{
    if (s->n_lm * 2 >= s->cap_lm)
        sim_lm_grow(s);
    uint64_t h = (index * 0x9E3779B97F4A7C15ull) ^ (term * 0xC2B2AE3D27D4EB4Full);
    size_t i = (size_t)(h & (s->cap_lm - 1));
    while (s->lm[i].index != 0 && !(s->lm[i].index == index && s->lm[i].term == term))
        i = (i + 1) & (s->cap_lm - 1);
    return &s->lm[i];
}
static inline void sim_lm_grow(struct sim *s)
{
    struct sim_lm *old = s->lm;
    size_t old_cap = s->cap_lm;
    s->cap_lm = old_cap ? old_cap * 2 : 1024;
    s->lm = calloc(s->cap_lm, sizeof(*s->lm));
    s->n_lm = 0;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].index == 0)
            continue;
        struct sim_lm *d = sim_lm_slot(s, old[i].index, old[i].term);
        *d = old[i];
        s->n_lm++;
    }
    free(old);
}
/* Log matching (§5.3), by induction: equal (index, term) must mean equal content and equal term
 * at index-1, so equal entries have equal prefixes. */
static inline void sim_lm_check(struct sim *s, struct sim_node *n, uint64_t index, uint64_t term,
                                uint64_t prev_term, uint64_t hash)
{
    struct sim_lm *e = sim_lm_slot(s, index, term);
    if (e->index == 0) {
        e->index = index;
        e->term = term;
        e->prev_term = prev_term;
        e->hash = hash;
        s->n_lm++;
    } else if (e->prev_term != prev_term || e->hash != hash) {
        sim_fail(s,
                 "log matching: node %" PRIu64 " has (%" PRIu64 ",%" PRIu64 ") with prev term %" PRIu64
                 " / content %" PRIx64 ", seen before with prev term %" PRIu64 " / content %" PRIx64,
                 n->id, index, term, prev_term, hash, e->prev_term, e->hash);
    }
}

static inline uint64_t *sim_leader_slot(struct sim *s, uint64_t term)
{
    if (term >= s->cap_terms) {
        size_t cap = s->cap_terms ? s->cap_terms : 64;
        while (cap <= term)
            cap *= 2;
        s->leader_of_term = realloc(s->leader_of_term, cap * sizeof(uint64_t));
        memset(s->leader_of_term + s->cap_terms, 0, (cap - s->cap_terms) * sizeof(uint64_t));
        s->cap_terms = cap;
    }
    return &s->leader_of_term[term];
}

/* After every event: election safety, leader append-only, leader completeness, commit monotony,
 * and committed entries recorded as truth. */
static inline void sim_check(struct sim *s)
{
    if (!s->cfg.check_invariants)
        return;
    for (unsigned i = 1; i < s->next_id; i++) {
        struct sim_node *n = &s->nodes[i];
        if (!n->up)
            continue;
        struct raft *r = n->r;
        uint64_t term = raft_term(r), commit = raft_commit_index(r);
        if (s->verbose && ((int)raft_role(r) != n->v_role || term != n->v_term)) {
            printf("t=%-6" PRIu64 " node %" PRIu64 " becomes %d in term %" PRIu64 " (last %" PRIu64
                   " commit %" PRIu64 ")\n",
                   s->now, n->id, (int)raft_role(r), term, raft_last_index(r), commit);
            n->v_role = raft_role(r);
            n->v_term = term;
        }
        if (commit < n->last_commit)
            sim_fail(s, "commit went back on node %" PRIu64 ": %" PRIu64 " -> %" PRIu64, n->id,
                     n->last_commit, commit);
        for (uint64_t c = n->last_commit + 1; c <= commit; c++) {
            const struct raft_entry *e = raft_entry_at(r, c);
            if (e != NULL)
                sim_truth_check(s, n, c, e->term, sim_entry_hash(e), "committed");
            else if (c == raft_snapshot_index(r) || c == raft_first_index(r) - 1)
                sim_truth_check(s, n, c, raft_entry_term(r, c), 0, "committed (snapshot)");
        }
        bool moved = commit > n->last_commit;
        n->last_commit = commit;
        if (raft_role(r) != RAFT_LEADER)
            continue;
        /* Durability: what a leader commits is on the disks of a majority of its voters (the leader's
         * own disk counts only for what was written, pipeline or not). */
        if (moved && raft_entry_at(r, commit) != NULL) {
            const struct raft_conf *c = raft_configuration(r);
            uint64_t t = raft_entry_term(r, commit);
            unsigned have = 0;
            for (uint32_t v = 0; v < c->n; v++)
                if (c->ids[v] <= SIM_MAX && sim_disk_has(&s->nodes[c->ids[v]], commit, t))
                    have++;
            if (have < c->n / 2 + 1)
                sim_fail(s,
                         "durability: leader %" PRIu64 " committed %" PRIu64 " (term %" PRIu64
                         ") held by %u of %u voters' disks",
                         n->id, commit, t, have, c->n);
        }
        uint64_t *slot = sim_leader_slot(s, term);
        uint64_t last = raft_last_index(r);
        if (*slot == 0) {
            *slot = n->id;
            /* Leader completeness (§5.4.1): a new leader holds every committed entry. */
            if (last < s->max_committed)
                sim_fail(s,
                         "leader completeness: node %" PRIu64 " leads term %" PRIu64 " with last %" PRIu64
                         " < committed %" PRIu64,
                         n->id, term, last, s->max_committed);
            for (uint64_t c = raft_first_index(r); c <= s->max_committed && !s->failed; c++) {
                struct sim_truth *t = sim_truth_at(s, c);
                if (t->term != 0 && raft_entry_term(r, c) != t->term)
                    sim_fail(s,
                             "leader completeness: node %" PRIu64 " leads term %" PRIu64 " with term %" PRIu64
                             " at committed index %" PRIu64 " (committed term %" PRIu64 ")",
                             n->id, term, raft_entry_term(r, c), c, t->term);
            }
        } else if (*slot != n->id) {
            sim_fail(s, "election safety: nodes %" PRIu64 " and %" PRIu64 " both lead term %" PRIu64, *slot,
                     n->id, term);
        }
        /* Leader append-only (§5.3): within its term a leader never loses or rewrites an entry. */
        if (n->lead_term == term) {
            if (last < n->lead_last_index || (n->lead_last_index >= raft_first_index(r) - 1 &&
                                              raft_entry_term(r, n->lead_last_index) != n->lead_last_term))
                sim_fail(
                    s, "leader append-only: node %" PRIu64 " term %" PRIu64 " last %" PRIu64 " was %" PRIu64,
                    n->id, term, last, n->lead_last_index);
        }
        n->lead_term = term;
        n->lead_last_index = last;
        n->lead_last_term = raft_entry_term(r, last);
    }
}

static inline void sim_dump(const struct sim *s)
{
    static const char *roles[] = {"follower", "pre-candidate", "candidate", "leader"};
    for (unsigned i = 1; i < s->next_id; i++) {
        const struct sim_node *n = &s->nodes[i];
        if (!n->up) {
            printf("  node %" PRIu64 ": down\n", n->id);
            continue;
        }
        const struct raft_conf *c = raft_configuration(n->r);
        printf("  node %" PRIu64 ": %-13s term %" PRIu64 " vote %" PRIu64 " lead %" PRIu64 " commit %" PRIu64
               " applied %" PRIu64 " last %" PRIu64 "/%" PRIu64 " snap %" PRIu64 " conf[",
               n->id, roles[raft_role(n->r)], raft_term(n->r), raft_vote(n->r), raft_leader(n->r),
               raft_commit_index(n->r), raft_applied_index(n->r), raft_last_index(n->r),
               raft_entry_term(n->r, raft_last_index(n->r)), raft_snapshot_index(n->r));
        for (uint32_t k = 0; k < c->n; k++)
            printf("%s%" PRIu64, k ? " " : "", c->ids[k]);
        printf("]%s\n", n->writing ? " writing" : "");
    }
}
#endif
