/* tests/unit/test_raft_scenarios.c — the classic Raft cases, each driven step by step on the
 * simulated cluster of tests/sim/cluster.h (manual ticks, 1-unit links, synchronous disks) with
 * the safety invariants checked after every event.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "tests/sim/cluster.h"

static void tweak_none(struct sim_config *c)
{
    (void)c;
}

static struct sim *cluster(unsigned n, void (*tweak)(struct sim_config *))
{
    struct sim_config cfg;
    sim_config_defaults(&cfg, n);
    cfg.manual_ticks = true;
    cfg.lat_min = cfg.lat_max = 1;
    cfg.disk_lat_max = 0;
    cfg.heartbeat_tick = 1;
    tweak(&cfg);
    struct sim *s = calloc(1, sizeof(*s));
    sim_init(s, &cfg, 42);
    for (unsigned i = 1; i <= n; i++)
        sim_process(s, &s->nodes[i]);
    sim_run_until(s, s->now + 5);
    return s;
}

static void done(struct sim *s)
{
    if (s->failed)
        fail_msg("invariant broken: %s", s->why);
    sim_destroy(s);
    free(s);
}

/* Every up node ticks once, then the network delivers what follows (a few round trips). */
static void rounds(struct sim *s, unsigned k)
{
    for (unsigned r = 0; r < k && !s->failed; r++) {
        for (unsigned i = 1; i < s->next_id; i++) {
            struct sim_node *n = &s->nodes[i];
            if (n->up && !n->writing)
                sim_node_tick(s, n);
        }
        sim_check(s);
        sim_run_until(s, s->now + 6);
    }
}

/* Make n campaign now, as if the leader had handed over (TimeoutNow), and let the votes flow. */
static void campaign_start(struct sim *s, struct sim_node *n)
{
    struct raft_message tn = {.type = RAFT_MSG_TIMEOUT_NOW,
                              .from = n->id == 1 ? 2 : 1,
                              .to = n->id,
                              .term = raft_term(n->r) ? raft_term(n->r) : 1};
    assert_int_equal(raft_step(n->r, &tn), 0);
    sim_process(s, n);
}

static void campaign(struct sim *s, struct sim_node *n)
{
    campaign_start(s, n);
    sim_run_until(s, s->now + 10);
}

static struct sim_node *elect(struct sim *s, unsigned id)
{
    struct sim_node *n = &s->nodes[id];
    campaign(s, n);
    assert_int_equal(raft_role(n->r), RAFT_LEADER);
    rounds(s, 2);
    return n;
}

static uint64_t count_applied_with(struct sim *s, struct sim_node *n, const char *text);

struct applied_log {
    char texts[SIM_MAX + 1][64][16];
    unsigned n[SIM_MAX + 1];
};

static void record_apply(struct sim *s, struct sim_node *n, const struct raft_entry *e)
{
    struct applied_log *al = s->user;
    if (e->type != RAFT_ENTRY_NORMAL || e->len >= 16 || al->n[n->id] >= 64)
        return;
    memcpy(al->texts[n->id][al->n[n->id]], e->data, e->len);
    al->texts[n->id][al->n[n->id]][e->len] = 0;
    al->n[n->id]++;
}

static uint64_t count_applied_with(struct sim *s, struct sim_node *n, const char *text)
{
    struct applied_log *al = s->user;
    uint64_t k = 0;
    for (unsigned i = 0; i < al->n[n->id]; i++)
        if (!strcmp(al->texts[n->id][i], text))
            k++;
    return k;
}

static int propose_text(struct sim *s, struct sim_node *n, const char *text)
{
    return sim_propose(s, n, text, (uint32_t)strlen(text));
}

/* Rewrite a stopped node's disk. */
static void disk_set(struct sim_node *n, uint64_t term, uint64_t vote, const struct raft_entry *es, size_t k)
{
    sim_disk_truncate(n, 0);
    for (size_t i = 0; i < k; i++)
        sim_disk_append(n, &es[i]);
    n->hs = (struct raft_hard_state){.term = term, .vote = vote, .commit = 1};
}

static void tweak_one_entry_per_append(struct sim_config *c)
{
    c->max_msg_bytes = 1;
}

/* Figure 8 of the Raft paper: a leader must not commit an entry of an earlier term by counting
 * replicas, because a node holding a later-term entry at that index can still win an election. */
static void test_figure8_entry_of_previous_term_is_not_committed_by_counting(void **state)
{
    struct sim *s = cluster(5, tweak_one_entry_per_append);
    /* The founding conf entry every node holds at index 1. */
    uint8_t confbuf[64];
    size_t conflen;
    struct raft_conf c5 = {.n = 5, .ids = {1, 2, 3, 4, 5}};
    assert_int_equal(raft_conf_encode(&c5, confbuf, sizeof(confbuf), &conflen), 0);
    struct raft_entry conf = {
        .term = 1, .index = 1, .type = RAFT_ENTRY_CONF, .len = (uint32_t)conflen, .data = confbuf};
    struct raft_entry x = {
        .term = 2, .index = 2, .type = RAFT_ENTRY_NORMAL, .len = 2, .data = (uint8_t *)"xx"};
    struct raft_entry y = {
        .term = 3, .index = 2, .type = RAFT_ENTRY_NORMAL, .len = 2, .data = (uint8_t *)"yy"};
    for (unsigned i = 1; i <= 5; i++)
        sim_crash(s, &s->nodes[i]);
    /* (a) S1 led term 2 and got x to S2 only; (b) S5 led term 3 and kept y to itself. */
    struct raft_entry l12[2] = {conf, x}, l5[2] = {conf, y};
    disk_set(&s->nodes[1], 3, 0, l12, 2);
    disk_set(&s->nodes[2], 3, 0, l12, 2);
    disk_set(&s->nodes[3], 3, 0, &conf, 1);
    disk_set(&s->nodes[4], 3, 0, &conf, 1);
    disk_set(&s->nodes[5], 3, 5, l5, 2);
    for (unsigned i = 1; i <= 5; i++) {
        assert_int_equal(sim_restart(s, &s->nodes[i]), 0);
        sim_process(s, &s->nodes[i]);
    }
    sim_run_until(s, s->now + 5);
    /* (c) S1 wins term 4 with S3 and S4, and copies x to them, but not its own no-op. */
    s->cut[1][2] = s->cut[2][1] = s->cut[1][5] = s->cut[5][1] = true;
    struct sim_node *s1 = &s->nodes[1];
    campaign_start(s, s1);
    /* Cut each link the moment x has crossed it, so the no-op never arrives. */
    while (!s->failed && !(s->cut[1][3] && s->cut[1][4])) {
        assert_true(sim_step(s));
        for (unsigned i = 3; i <= 4; i++)
            if (raft_last_index(s->nodes[i].r) >= 2)
                s->cut[1][i] = true;
    }
    assert_int_equal(raft_entry_term(s->nodes[3].r, 2), 2);
    assert_int_equal(raft_last_index(s->nodes[4].r), 2);
    sim_run_until(s, s->now + 10);
    assert_int_equal(raft_role(s1->r), RAFT_LEADER);
    assert_int_equal(raft_term(s1->r), 4);
    /* x sits on S1, S2 (earlier), S3 and S4: a majority, yet it is not committed. */
    assert_int_equal(raft_commit_index(s1->r), 1);
    /* (d) S1 crashes; S5 (last term 3) wins and overwrites x with y everywhere. */
    sim_crash(s, s1);
    sim_heal(s);
    /* Its first try, in term 4, meets voters that already voted in term 4; the next one wins. */
    for (int i = 0; i < 3 && raft_role(s->nodes[5].r) != RAFT_LEADER; i++)
        campaign(s, &s->nodes[5]);
    assert_int_equal(raft_role(s->nodes[5].r), RAFT_LEADER);
    assert_int_equal(sim_restart(s, s1), 0);
    rounds(s, 5);
    for (unsigned i = 1; i <= 5; i++) {
        assert_int_equal(raft_entry_term(s->nodes[i].r, 2), 3);
        assert_true(raft_commit_index(s->nodes[i].r) >= 2);
    }
    done(s);
}

static void tweak_check_quorum_only(struct sim_config *c)
{
    c->pre_vote = true;
    c->check_quorum = true;
}

/* A leader cut off with a minority stops leading (check-quorum), the majority elects another,
 * and what the old leader accepted meanwhile is discarded, never applied. */
static void test_leader_partitioned_with_minority_steps_down_and_its_proposals_are_discarded(void **state)
{
    struct sim *s = cluster(5, tweak_check_quorum_only);
    struct applied_log al = {0};
    s->user = &al;
    s->on_apply = record_apply;
    struct sim_node *old = elect(s, 1);
    uint64_t old_term = raft_term(old->r);
    assert_int_equal(propose_text(s, old, "before"), 0);
    rounds(s, 2);
    sim_partition(s, (1u << 1) | (1u << 2));
    assert_int_equal(propose_text(s, old, "stale"), 0);
    rounds(s, 1);
    assert_int_equal(raft_role(old->r), RAFT_LEADER); /* still believes it leads... */
    rounds(s, 2 * s->cfg.election_tick + 2);
    assert_int_not_equal(raft_role(old->r), RAFT_LEADER); /* ...until check-quorum removes it */
    struct sim_node *l = sim_leader(s);
    assert_non_null(l);
    assert_true(l->id >= 3);
    assert_true(raft_term(l->r) > old_term);
    assert_int_equal(propose_text(s, l, "after"), 0);
    rounds(s, 2);
    sim_heal(s);
    rounds(s, 3 * s->cfg.election_tick);
    for (unsigned i = 1; i <= 5; i++) {
        struct sim_node *n = &s->nodes[i];
        assert_int_equal(count_applied_with(s, n, "before"), 1);
        assert_int_equal(count_applied_with(s, n, "after"), 1);
        assert_int_equal(count_applied_with(s, n, "stale"), 0);
        assert_int_equal(raft_last_index(n->r), raft_last_index(sim_leader(s)->r));
    }
    done(s);
}

/* A stale leader that never hears of the new term cannot commit anything: its proposals need a
 * majority that now follows someone else. */
static void test_stale_leader_cannot_commit_its_proposals(void **state)
{
    struct sim *s = cluster(3, tweak_none);
    struct applied_log al = {0};
    s->user = &al;
    s->on_apply = record_apply;
    struct sim_node *old = elect(s, 1);
    uint64_t commit = raft_commit_index(old->r);
    sim_partition(s, 1u << 1);
    campaign(s, &s->nodes[2]);
    assert_int_equal(raft_role(s->nodes[2].r), RAFT_LEADER);
    /* The old leader still leads in its own view and takes proposals it can never commit. */
    assert_int_equal(raft_role(old->r), RAFT_LEADER);
    assert_int_equal(propose_text(s, old, "stale1"), 0);
    assert_int_equal(propose_text(s, old, "stale2"), 0);
    sim_run_until(s, s->now + 20);
    assert_int_equal(raft_commit_index(old->r), commit);
    sim_heal(s);
    rounds(s, 2 * s->cfg.election_tick);
    assert_int_equal(raft_role(old->r), RAFT_FOLLOWER);
    for (unsigned i = 1; i <= 3; i++) {
        assert_int_equal(count_applied_with(s, &s->nodes[i], "stale1"), 0);
        assert_int_equal(count_applied_with(s, &s->nodes[i], "stale2"), 0);
    }
    /* And the old leader's log was rewritten to the new leader's. */
    assert_int_equal(raft_entry_term(old->r, raft_last_index(old->r)), raft_term(s->nodes[2].r));
    done(s);
}

static void tweak_no_prevote(struct sim_config *c)
{
    c->pre_vote = false;
    c->check_quorum = false;
}

static uint64_t rejoin_terms(void (*tweak)(struct sim_config *), uint64_t *leader_term_before,
                             uint64_t *leader_term_after, uint64_t *isolated_term)
{
    struct sim *s = cluster(3, tweak);
    struct sim_node *l = elect(s, 1);
    *leader_term_before = raft_term(l->r);
    sim_partition(s, 1u << 3);
    rounds(s, 10 * s->cfg.election_tick);
    *isolated_term = raft_term(s->nodes[3].r);
    sim_heal(s);
    rounds(s, 3 * s->cfg.election_tick);
    *leader_term_after = raft_term(sim_leader(s)->r);
    uint64_t lead = sim_leader(s)->id;
    done(s);
    return lead;
}

/* Pre-vote: a node cut off keeps asking whether it could win, and, never getting a majority, never
 * raises its term, so rejoining does not depose a healthy leader. Without pre-vote it does. */
static void test_prevote_stops_rejoining_node_from_inflating_terms(void **state)
{
    uint64_t before, after, isolated;
    uint64_t lead = rejoin_terms(tweak_none, &before, &after, &isolated);
    assert_int_equal(isolated, before);
    assert_int_equal(after, before);
    assert_int_equal(lead, 1);
    /* The control: the same history without pre-vote inflates the term and forces an election. */
    rejoin_terms(tweak_no_prevote, &before, &after, &isolated);
    assert_true(isolated > before + 3);
    assert_true(after > before);
}

static void tweak_compact(struct sim_config *c)
{
    c->compact_every = 5;
    c->trailing = 0;
}

/* A follower that missed entries the leader has compacted away receives the snapshot. */
static void test_snapshot_is_installed_on_lagging_follower(void **state)
{
    struct sim *s = cluster(3, tweak_compact);
    struct sim_node *l = elect(s, 1);
    struct sim_node *lag = &s->nodes[3];
    sim_partition(s, 1u << 3);
    char text[16];
    for (int i = 0; i < 30; i++) {
        snprintf(text, sizeof(text), "e%d", i);
        assert_int_equal(propose_text(s, l, text), 0);
        rounds(s, 1);
    }
    assert_true(raft_first_index(l->r) > raft_last_index(lag->r) + 1);
    uint64_t lag_snap = raft_snapshot_index(lag->r);
    sim_heal(s);
    rounds(s, 5);
    assert_true(raft_snapshot_index(lag->r) > lag_snap);
    assert_int_equal(lag->applied, l->applied);
    assert_int_equal(lag->sm_hash, l->sm_hash);
    assert_int_equal(raft_last_index(lag->r), raft_last_index(l->r));
    /* And it keeps replicating normally afterwards. */
    assert_int_equal(propose_text(s, l, "later"), 0);
    rounds(s, 2);
    assert_int_equal(lag->applied, l->applied);
    done(s);
}

/* Removing the current leader: it keeps leading until the change commits, then steps down; the
 * remaining voters carry on without it. */
static void test_removing_current_leader_hands_over_to_remaining_voters(void **state)
{
    struct sim *s = cluster(3, tweak_none);
    struct applied_log al = {0};
    s->user = &al;
    s->on_apply = record_apply;
    struct sim_node *l = elect(s, 1);
    assert_int_equal(raft_propose_conf_change(l->r, RAFT_CONF_REMOVE, 1), 0);
    /* One change at a time. */
    assert_int_equal(raft_propose_conf_change(l->r, RAFT_CONF_REMOVE, 2), RAFT_EBUSY);
    sim_process(s, l);
    rounds(s, 3 * s->cfg.election_tick);
    assert_int_not_equal(raft_role(l->r), RAFT_LEADER);
    struct sim_node *nl = sim_leader(s);
    assert_non_null(nl);
    assert_true(nl->id == 2 || nl->id == 3);
    const struct raft_conf *c = raft_configuration(nl->r);
    assert_int_equal(c->n, 2);
    assert_false(raft_conf_has(c, 1));
    assert_int_equal(propose_text(s, nl, "without1"), 0);
    rounds(s, 3);
    assert_int_equal(count_applied_with(s, &s->nodes[2], "without1"), 1);
    assert_int_equal(count_applied_with(s, &s->nodes[3], "without1"), 1);
    /* The removed node never campaigns again. */
    rounds(s, 5 * s->cfg.election_tick);
    assert_int_not_equal(raft_role(l->r), RAFT_LEADER);
    assert_int_equal(sim_leader(s)->id, nl->id);
    done(s);
}

/* A read during a partition must not be answered by a leader that cannot reach a quorum. */
static void test_read_index_during_partition_does_not_return(void **state)
{
    struct sim *s = cluster(3, tweak_none);
    struct sim_node *l = elect(s, 1);
    /* With the network whole the read returns within a round trip. */
    uint64_t ok_ctx = 0;
    assert_int_equal(sim_read_index(s, l, &ok_ctx), 0);
    sim_run_until(s, s->now + 5);
    assert_false(sim_read_pending(s, ok_ctx));
    assert_true(s->reads_done == 1);
    sim_partition(s, 1u << 1);
    uint64_t ctx = 0;
    assert_int_equal(sim_read_index(s, l, &ctx), 0);
    for (unsigned t = 0; t < 5 * s->cfg.election_tick; t++) {
        rounds(s, 1);
        assert_true(sim_read_pending(s, ctx));
    }
    assert_int_not_equal(raft_role(l->r), RAFT_LEADER);
    /* A follower refuses read_index: it must ask the leader. */
    assert_int_equal(raft_read_index(l->r, 7), RAFT_ENOTLEADER);
    sim_heal(s);
    rounds(s, 3 * s->cfg.election_tick);
    assert_true(sim_read_pending(s, ctx)); /* dropped with the leadership, never answered */
    done(s);
}

/* A follower that hears from its leader ignores a higher-term campaign (check-quorum lease). */
static void test_follower_with_live_leader_ignores_vote_requests(void **state)
{
    struct sim *s = cluster(3, tweak_none);
    elect(s, 1);
    struct sim_node *f = &s->nodes[2];
    uint64_t term = raft_term(f->r);
    struct raft_message v = {
        .type = RAFT_MSG_VOTE, .from = 3, .to = 2, .term = term + 5, .index = 1000, .log_term = term + 4};
    assert_int_equal(raft_step(f->r, &v), 0);
    assert_int_equal(raft_term(f->r), term);
    assert_int_equal(raft_vote(f->r), 1);
    assert_int_equal(raft_leader(f->r), 1);
    /* The same request marked as a leadership transfer pierces the lease. */
    v.transfer = true;
    assert_int_equal(raft_step(f->r, &v), 0);
    assert_int_equal(raft_term(f->r), term + 5);
    assert_int_equal(raft_vote(f->r), 3);
    sim_process(s, f);
    done(s);
}

/* A vote goes to at most one candidate per term, and only to one whose log is up to date. */
static void test_vote_is_granted_once_per_term_and_only_to_up_to_date_logs(void **state)
{
    struct sim *s = cluster(3, tweak_none);
    struct sim_node *n = &s->nodes[1];
    uint64_t t = raft_term(n->r) + 1;
    struct raft_message v = {.type = RAFT_MSG_VOTE, .from = 2, .to = 1, .term = t, .index = 0, .log_term = 0};
    assert_int_equal(raft_step(n->r, &v), 0); /* stale log: refused */
    assert_int_equal(raft_vote(n->r), 0);
    v.index = 1;
    v.log_term = 1;
    assert_int_equal(raft_step(n->r, &v), 0);
    assert_int_equal(raft_vote(n->r), 2);
    v.from = 3;
    assert_int_equal(raft_step(n->r, &v), 0); /* second candidate, same term: refused */
    assert_int_equal(raft_vote(n->r), 2);
    struct raft_ready rd;
    raft_ready(n->r, &rd);
    assert_true(rd.has_hard_state);
    assert_int_equal(rd.hard_state.vote, 2);
    int granted = 0, rejected = 0;
    for (size_t i = 0; i < rd.n_messages; i++) {
        assert_int_equal(rd.messages[i].type, RAFT_MSG_VOTE_RESP);
        if (rd.messages[i].reject)
            rejected++;
        else
            granted++;
    }
    assert_int_equal(granted, 1);
    assert_int_equal(rejected, 2);
    raft_advance(n->r, &rd);
    done(s);
}

static void test_leadership_transfer_moves_the_leader(void **state)
{
    struct sim *s = cluster(5, tweak_none);
    struct sim_node *l = elect(s, 1);
    assert_int_equal(raft_transfer_leadership(l->r, 4), 0);
    assert_int_equal(raft_propose(l->r, "x", 1), RAFT_EBUSY); /* proposals wait during a transfer */
    sim_process(s, l);
    rounds(s, 3);
    assert_int_equal(sim_leader(s)->id, 4);
    assert_int_equal(raft_transfer_leadership(s->nodes[4].r, 4), RAFT_EINVAL);
    assert_int_equal(raft_transfer_leadership(s->nodes[2].r, 3), RAFT_ENOTLEADER);
    done(s);
}

static void test_added_node_catches_up_and_votes(void **state)
{
    struct sim *s = cluster(3, tweak_compact);
    struct sim_node *l = elect(s, 1);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(propose_text(s, l, "pre"), 0);
        rounds(s, 1);
    }
    struct sim_node *nn = sim_add_node(s, false);
    assert_non_null(nn);
    assert_int_equal(raft_propose_conf_change(l->r, RAFT_CONF_ADD, nn->id), 0);
    assert_int_equal(raft_propose_conf_change(l->r, RAFT_CONF_ADD, 9), RAFT_EBUSY);
    sim_process(s, l);
    rounds(s, 5);
    assert_int_equal(raft_configuration(nn->r)->n, 4);
    assert_int_equal(nn->applied, l->applied);
    /* With four voters, losing two stops progress: the new node really counts. */
    sim_crash(s, &s->nodes[2]);
    sim_crash(s, &s->nodes[3]);
    uint64_t commit = raft_commit_index(l->r);
    assert_int_equal(propose_text(s, l, "needs3"), 0);
    rounds(s, 3);
    assert_int_equal(raft_commit_index(l->r), commit);
    assert_int_equal(sim_restart(s, &s->nodes[2]), 0);
    rounds(s, 3 * s->cfg.election_tick);
    assert_true(raft_commit_index(sim_leader(s)->r) > commit);
    done(s);
}

/* The Nth allocation fails: the core reports RAFT_ENOMEM and stays usable and consistent. */
static void test_failed_allocation_is_an_error_not_a_crash(void **state)
{
    for (long nth = 1; nth <= 6; nth++) {
        struct sim *s = cluster(3, tweak_none);
        struct sim_node *l = elect(s, 1);
        uint64_t last = raft_last_index(l->r);
        const void *datas[3] = {"a", "b", "c"};
        uint32_t lens[3] = {1, 1, 1};
        l->fail_alloc_in = nth;
        int rv = raft_propose_batch(l->r, datas, lens, 3);
        if (rv != 0) {
            assert_int_equal(rv, RAFT_ENOMEM);
            assert_int_equal(raft_last_index(l->r), last); /* all or nothing */
        } else {
            assert_int_equal(raft_last_index(l->r), last + 3);
        }
        l->fail_alloc_in = 0;
        sim_process(s, l);
        rounds(s, 3);
        assert_int_equal(propose_text(s, l, "then"), 0);
        rounds(s, 3);
        assert_int_equal(raft_commit_index(l->r), raft_last_index(l->r));
        done(s);
    }
    /* And raft_new itself. */
    for (long nth = 1; nth <= 3; nth++) {
        struct sim_node host = {0};
        host.fail_alloc_in = nth;
        struct raft_alloc a = {sim_malloc, sim_realloc, sim_free, &host};
        struct raft_config cfg;
        raft_config_defaults(&cfg);
        cfg.id = 1;
        cfg.bootstrap.n = 1;
        cfg.bootstrap.ids[0] = 1;
        cfg.alloc = &a;
        struct raft *r;
        int rv = raft_new(&r, &cfg, NULL, NULL, 0);
        if (rv == 0)
            raft_free(r);
        else
            assert_int_equal(rv, RAFT_ENOMEM);
    }
}

/* A one-voter core (id 1), ticked until it leads; each ready is advanced at once. With
 * saw_new_term, a ready that carries the new term is checked not to be early_send (a new term and
 * vote must be durable before anything is sent) and *saw_new_term says one came. */
static struct raft *single_voter_leader(bool *saw_new_term)
{
    struct raft_config cfg;
    raft_config_defaults(&cfg);
    cfg.id = 1;
    cfg.bootstrap.n = 1;
    cfg.bootstrap.ids[0] = 1;
    struct raft *r;
    char err[64];
    assert_int_equal(raft_new(&r, &cfg, NULL, err, sizeof(err)), 0);
    struct raft_ready rd;
    for (int i = 0; i < 40 && raft_role(r) != RAFT_LEADER; i++) {
        raft_tick(r);
        while (raft_has_ready(r)) {
            raft_ready(r, &rd);
            if (saw_new_term && rd.has_hard_state && rd.hard_state.term != 0 && !*saw_new_term) {
                assert_false(rd.early_send);
                *saw_new_term = true;
            }
            raft_advance(r, &rd);
        }
    }
    assert_int_equal(raft_role(r), RAFT_LEADER);
    return r;
}

/* One voter: it elects itself, and commits once its own disk has the entry (not before). */
static void test_single_node_commits_only_after_its_disk_acknowledges(void **state)
{
    struct raft *r = single_voter_leader(NULL);
    struct raft_ready rd;
    assert_int_equal(raft_propose(r, "hello", 5), 0);
    uint64_t idx = raft_last_index(r);
    raft_ready(r, &rd);
    assert_int_equal(rd.entries[rd.n_entries - 1].index, idx);
    assert_true(raft_commit_index(r) < idx); /* not durable yet: not committed */
    raft_advance(r, &rd);
    assert_int_equal(raft_commit_index(r), idx);
    raft_ready(r, &rd);
    assert_int_equal(rd.committed[rd.n_committed - 1].index, idx);
    assert_memory_equal(rd.committed[rd.n_committed - 1].data, "hello", 5);
    raft_advance(r, &rd);
    /* ReadIndex on a single voter answers at once. */
    assert_int_equal(raft_read_index(r, 99), 0);
    raft_ready(r, &rd);
    assert_int_equal(rd.n_read_states, 1);
    assert_int_equal(rd.read_states[0].ctx, 99);
    assert_int_equal(rd.read_states[0].index, idx);
    raft_advance(r, &rd);
    /* Compaction keeps the core serving. */
    assert_int_equal(raft_compact(r, idx, "img", 3, 0, NULL), 0);
    assert_int_equal(raft_snapshot_index(r), idx);
    assert_int_equal(raft_compact(r, idx + 5, "img", 3, 0, NULL), RAFT_EINVAL);
    raft_free(r);
}

/* The pipeline: readies advanced before their writes are durable hand out the entries that follow,
 * and nothing is committed or applied until raft_durable_to() says it is on disk. A leader's ready
 * may send at once; the one with a new term may not. */
static void test_pipelined_leader_commits_only_what_its_disk_reported(void **state)
{
    bool refused = false; /* saw the new term's ready, which may not send early */
    struct raft *r = single_voter_leader(&refused);
    struct raft_ready rd;
    assert_true(refused);
    uint64_t term = raft_term(r);
    assert_int_equal(raft_propose(r, "a", 1), 0);
    uint64_t i1 = raft_last_index(r);
    raft_ready(r, &rd);
    assert_true(rd.early_send);
    assert_int_equal(rd.entries[rd.n_entries - 1].index, i1);
    assert_int_equal(raft_advance_async(r, &rd), 0);
    assert_true(raft_commit_index(r) < i1);
    /* the next batch while the first is being written: only the new entry */
    assert_int_equal(raft_propose(r, "b", 1), 0);
    uint64_t i2 = raft_last_index(r);
    assert_true(raft_has_ready(r));
    raft_ready(r, &rd);
    assert_int_equal(rd.n_entries, 1);
    assert_int_equal(rd.entries[0].index, i2);
    assert_int_equal(rd.n_committed, 0);
    assert_int_equal(raft_advance_async(r, &rd), 0);
    assert_false(raft_has_ready(r));
    assert_true(raft_commit_index(r) < i1);
    /* a report of another term's entry at that index says nothing */
    raft_durable_to(r, i1, term + 1);
    assert_true(raft_commit_index(r) < i1);
    assert_false(raft_has_ready(r));
    /* the first write is durable: it commits and is handed out to apply, the second is not */
    raft_durable_to(r, i1, term);
    assert_int_equal(raft_commit_index(r), i1);
    raft_ready(r, &rd);
    assert_int_equal(rd.committed[rd.n_committed - 1].index, i1);
    assert_memory_equal(rd.committed[rd.n_committed - 1].data, "a", 1);
    raft_advance(r, &rd);
    assert_false(raft_has_ready(r));
    raft_durable_to(r, i2, term);
    assert_int_equal(raft_commit_index(r), i2);
    raft_ready(r, &rd);
    assert_int_equal(rd.n_committed, 1);
    assert_int_equal(rd.committed[0].index, i2);
    raft_advance(r, &rd);
    raft_durable_to(r, i2, term); /* again: nothing */
    assert_false(raft_has_ready(r));
    raft_free(r);
}

static void test_bad_configuration_and_messages_are_rejected(void **state)
{
    struct raft_config cfg;
    raft_config_defaults(&cfg);
    struct raft *r;
    char err[64];
    assert_int_equal(raft_new(&r, &cfg, NULL, err, sizeof(err)), RAFT_EINVAL); /* id 0 */
    cfg.id = 1;
    cfg.bootstrap.n = 1;
    cfg.bootstrap.ids[0] = 2;
    assert_int_equal(raft_new(&r, &cfg, NULL, err, sizeof(err)), RAFT_EINVAL); /* not in bootstrap */
    cfg.bootstrap.ids[0] = 1;
    assert_int_equal(raft_new(&r, &cfg, NULL, err, sizeof(err)), 0);
    struct raft_message m = {.type = 99, .from = 2, .to = 1, .term = 1};
    assert_int_equal(raft_step(r, &m), RAFT_EINVAL);
    struct raft_entry e = {.term = 9, .index = 2, .type = RAFT_ENTRY_NORMAL};
    m = (struct raft_message){.type = RAFT_MSG_APPEND,
                              .from = 2,
                              .to = 1,
                              .term = 3,
                              .index = 1,
                              .log_term = 1,
                              .n_entries = 1,
                              .entries = &e};
    assert_int_equal(raft_step(r, &m), RAFT_EINVAL); /* entry term above the message term */
    assert_string_not_equal(raft_errmsg(r), "");
    assert_int_equal(raft_propose(r, "x", 1), RAFT_ENOTLEADER);
    assert_int_equal(raft_propose_conf_change(r, RAFT_CONF_ADD, 2), RAFT_ENOTLEADER);
    assert_string_equal(raft_strerror(RAFT_ENOTLEADER), "not the leader");
    raft_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_figure8_entry_of_previous_term_is_not_committed_by_counting),
        cmocka_unit_test(test_leader_partitioned_with_minority_steps_down_and_its_proposals_are_discarded),
        cmocka_unit_test(test_stale_leader_cannot_commit_its_proposals),
        cmocka_unit_test(test_prevote_stops_rejoining_node_from_inflating_terms),
        cmocka_unit_test(test_snapshot_is_installed_on_lagging_follower),
        cmocka_unit_test(test_removing_current_leader_hands_over_to_remaining_voters),
        cmocka_unit_test(test_read_index_during_partition_does_not_return),
        cmocka_unit_test(test_follower_with_live_leader_ignores_vote_requests),
        cmocka_unit_test(test_vote_is_granted_once_per_term_and_only_to_up_to_date_logs),
        cmocka_unit_test(test_leadership_transfer_moves_the_leader),
        cmocka_unit_test(test_added_node_catches_up_and_votes),
        cmocka_unit_test(test_failed_allocation_is_an_error_not_a_crash),
        cmocka_unit_test(test_single_node_commits_only_after_its_disk_acknowledges),
        cmocka_unit_test(test_pipelined_leader_commits_only_what_its_disk_reported),
        cmocka_unit_test(test_bad_configuration_and_messages_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
