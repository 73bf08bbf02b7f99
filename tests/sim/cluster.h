/* tests/sim/cluster.h — a deterministic in-process Raft cluster for the simulation, the scenario
 * tests and the benchmark: simulated time, a network with per-link latency, drop, duplication,
 * reordering and partitions, disks with latency whose unacknowledged writes die in a crash,
 * allocation failure on demand, and the safety invariants checked after every event.
 *
 * Header-only (static inline) so each test executable compiles it with its own flags.
 * Messages cross the network encoded with the core's codec, so every hop also exercises it.
 */
#ifndef DISCOVERYD_TESTS_SIM_CLUSTER_H
#define DISCOVERYD_TESTS_SIM_CLUSTER_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/raft/raft.h"

#define SIM_MAX 16
#define SIM_TICK 10 /* time units per node tick */

enum sim_ev { SIM_EV_MSG = 1, SIM_EV_TICK, SIM_EV_WRITE };

struct sim_event {
    uint64_t at, seq;
    uint8_t kind;
    uint8_t node;
    uint32_t gen;
    uint8_t *buf;
    size_t len;
};

/* Committed truth per index: the first (term, content hash) any node committed or applied. */
struct sim_truth {
    uint64_t term, hash;
};

/* Log-matching table: (index, term) -> (term of index-1, content hash). */
struct sim_lm {
    uint64_t index, term, prev_term, hash;
};

struct sim_read {
    uint64_t ctx, min_index;
};

struct sim;

struct sim_node {
    struct sim *sim;
    uint64_t id;
    bool exists, up;
    uint32_t gen;
    struct raft *r;
    /* the disk: what raft_advance() was told is durable */
    struct raft_hard_state hs;
    struct raft_snapshot snap;
    bool has_snap;
    struct raft_entry *log;
    size_t n_log, cap_log;
    bool bootstrap;
    /* a write in progress (disk latency): the core is untouched until it completes */
    bool writing;
    uint64_t write_done_at;
    struct raft_ready rd;
    unsigned pending_ticks;
    /* the state machine: a hash chain over applied entries */
    uint64_t applied, sm_hash;
    uint64_t last_commit;
    uint64_t lead_term, lead_last_index, lead_last_term; /* leader append-only bookkeeping */
    long fail_alloc_in;                                  /* >0: the Nth allocation from now fails */
    uint64_t allocs_failed;
    struct raft_alloc alloc;
    uint64_t applied_count;
    int v_role;
    uint64_t v_term;
};

struct sim_config {
    unsigned n; /* founding voters 1..n */
    unsigned election_tick, heartbeat_tick;
    unsigned max_inflight;
    uint64_t max_msg_bytes;
    uint64_t max_uncommitted_bytes;
    bool pre_vote, check_quorum;
    unsigned lat_min, lat_max; /* per message, time units */
    unsigned disk_lat_max;     /* 0 = synchronous disk */
    unsigned compact_every;    /* applied entries between snapshots; 0 = never */
    unsigned trailing;
    bool check_invariants;
    bool manual_ticks; /* scenario tests tick nodes themselves */
};

struct sim {
    uint64_t seed, rng;
    struct sim_config cfg;
    struct sim_node nodes[SIM_MAX + 1];
    unsigned next_id;
    uint64_t now, seq;
    struct sim_event *heap;
    size_t n_heap, cap_heap;
    /* network faults */
    bool cut[SIM_MAX + 1][SIM_MAX + 1]; /* cut[a][b]: a's messages to b are lost */
    unsigned drop_pm, dup_pm;           /* per mille */
    unsigned link_lat_max[SIM_MAX + 1][SIM_MAX + 1];
    /* invariants */
    uint64_t *leader_of_term;
    size_t cap_terms;
    struct sim_truth *truth;
    size_t cap_truth;
    uint64_t max_committed;
    struct sim_lm *lm;
    size_t cap_lm, n_lm;
    struct sim_read *reads;
    size_t n_reads, cap_reads;
    uint64_t read_ctx;
    bool failed;
    char why[512];
    bool verbose;
    /* statistics */
    uint64_t delivered, steps, committed_total, reads_done;
    void (*on_apply)(struct sim *s, struct sim_node *n, const struct raft_entry *e);
    void *user;
};

static inline void sim_fail(struct sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
}

static inline uint64_t sim_rand(struct sim *s)
{
    uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline unsigned sim_rand_n(struct sim *s, unsigned n)
{
    return n == 0 ? 0 : (unsigned)(sim_rand(s) % n);
}

static inline uint64_t sim_hash(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    h ^= 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}
static inline uint64_t sim_entry_hash(const struct raft_entry *e)
{
    uint64_t h = sim_hash(e->type, e->data, e->len);
    return sim_hash(h, &e->term, sizeof(e->term));
}

/* ---- allocation with failure on demand ---- */
static inline bool sim_alloc_should_fail(struct sim_node *n)
{
    if (n->fail_alloc_in > 0 && --n->fail_alloc_in == 0) {
        n->allocs_failed++;
        return true;
    }
    return false;
}
static inline void *sim_malloc(void *ctx, size_t sz)
{
    return sim_alloc_should_fail(ctx) ? NULL : malloc(sz);
}
static inline void *sim_realloc(void *ctx, void *p, size_t sz)
{
    return sim_alloc_should_fail(ctx) ? NULL : realloc(p, sz);
}
static inline void sim_free(void *ctx, void *p)
{
    free(p);
}

/* ---- event heap ---- */
static inline bool sim_ev_less(const struct sim_event *a, const struct sim_event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}
static inline void sim_push(struct sim *s, struct sim_event ev)
{
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? s->cap_heap * 2 : 256;
        s->heap = realloc(s->heap, s->cap_heap * sizeof(*s->heap));
    }
    ev.seq = ++s->seq;
    size_t i = s->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!sim_ev_less(&ev, &s->heap[p]))
            break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = ev;
}
static inline struct sim_event sim_pop(struct sim *s)
{
    struct sim_event top = s->heap[0];
    struct sim_event last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap)
            break;
        if (c + 1 < s->n_heap && sim_ev_less(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!sim_ev_less(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap > 0)
        s->heap[i] = last;
    return top;
}

/* ---- the disk ---- */
static inline void sim_disk_truncate(struct sim_node *n, uint64_t from)
{
    while (n->n_log > 0 && n->log[n->n_log - 1].index >= from) {
        free(n->log[n->n_log - 1].data);
        n->n_log--;
    }
}
static inline void sim_disk_append(struct sim_node *n, const struct raft_entry *e)
{
    if (n->n_log == n->cap_log) {
        n->cap_log = n->cap_log ? n->cap_log * 2 : 64;
        n->log = realloc(n->log, n->cap_log * sizeof(*n->log));
    }
    struct raft_entry *d = &n->log[n->n_log++];
    *d = *e;
    d->data = NULL;
    if (e->len > 0) {
        d->data = malloc(e->len);
        memcpy(d->data, e->data, e->len);
    }
}
static inline void sim_disk_set_snapshot(struct sim_node *n, const struct raft_snapshot_meta *meta,
                                         const void *data, uint64_t len)
{
    free(n->snap.data);
    n->snap.meta = *meta;
    n->snap.len = len;
    n->snap.data = NULL;
    if (len > 0) {
        n->snap.data = malloc(len);
        memcpy(n->snap.data, data, len);
    }
    n->has_snap = true;
    /* keep only entries after the snapshot */
    size_t k = 0;
    for (size_t i = 0; i < n->n_log; i++) {
        if (n->log[i].index <= meta->index)
            free(n->log[i].data);
        else
            n->log[k++] = n->log[i];
    }
    n->n_log = k;
}

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
        n->last_commit = commit;
        if (raft_role(r) != RAFT_LEADER)
            continue;
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

/* ---- nodes ---- */
static inline int sim_node_start(struct sim *s, struct sim_node *n)
{
    struct raft_config cfg;
    raft_config_defaults(&cfg);
    cfg.id = n->id;
    cfg.election_tick = s->cfg.election_tick;
    cfg.heartbeat_tick = s->cfg.heartbeat_tick;
    cfg.max_inflight = s->cfg.max_inflight;
    cfg.max_msg_bytes = s->cfg.max_msg_bytes;
    cfg.max_uncommitted_bytes = s->cfg.max_uncommitted_bytes;
    cfg.pre_vote = s->cfg.pre_vote;
    cfg.check_quorum = s->cfg.check_quorum;
    cfg.seed = s->seed ^ ((uint64_t)n->gen << 32);
    n->alloc = (struct raft_alloc){sim_malloc, sim_realloc, sim_free, n};
    cfg.alloc = &n->alloc;
    if (n->bootstrap) {
        cfg.bootstrap.n = s->cfg.n;
        for (unsigned i = 0; i < s->cfg.n; i++)
            cfg.bootstrap.ids[i] = i + 1;
    }
    struct raft_persisted st = {.hard_state = n->hs,
                                .snapshot = n->has_snap ? &n->snap : NULL,
                                .entries = n->log,
                                .n_entries = n->n_log};
    char err[128];
    int rv = raft_new(&n->r, &cfg, &st, err, sizeof(err));
    if (rv != 0)
        return rv;
    n->up = true;
    n->writing = false;
    n->pending_ticks = 0;
    n->applied = n->has_snap ? n->snap.meta.index : 0;
    n->sm_hash = 0;
    if (n->has_snap && n->snap.len == 16)
        memcpy(&n->sm_hash, n->snap.data + 8, 8);
    n->last_commit = raft_commit_index(n->r);
    n->lead_term = 0;
    if (s->cfg.manual_ticks)
        return 0;
    struct sim_event tick = {.at = s->now + 1 + sim_rand_n(s, SIM_TICK),
                             .kind = SIM_EV_TICK,
                             .node = (uint8_t)n->id,
                             .gen = n->gen};
    sim_push(s, tick);
    return 0;
}

static inline struct sim_node *sim_add_node(struct sim *s, bool bootstrap)
{
    if (s->next_id > SIM_MAX)
        return NULL;
    struct sim_node *n = &s->nodes[s->next_id];
    memset(n, 0, sizeof(*n));
    n->sim = s;
    n->id = s->next_id++;
    n->exists = true;
    n->bootstrap = bootstrap;
    for (unsigned j = 1; j <= SIM_MAX; j++) {
        s->link_lat_max[n->id][j] = s->cfg.lat_max;
        s->link_lat_max[j][n->id] = s->cfg.lat_max;
    }
    if (sim_node_start(s, n) != 0)
        return NULL;
    return n;
}

static inline void sim_crash(struct sim *s, struct sim_node *n)
{
    if (!n->up)
        return;
    /* A write not yet acknowledged is lost with the process. */
    raft_free(n->r);
    n->r = NULL;
    n->up = false;
    n->writing = false;
    n->gen++;
    n->fail_alloc_in = 0;
}

static inline int sim_restart(struct sim *s, struct sim_node *n)
{
    if (n->up)
        return 0;
    n->gen++;
    return sim_node_start(s, n);
}

static inline void sim_send(struct sim *s, const struct raft_message *m)
{
    if (m->to == 0 || m->to > SIM_MAX || !s->nodes[m->to].exists)
        return;
    if (s->cut[m->from][m->to])
        return;
    if (s->drop_pm > 0 && sim_rand_n(s, 1000) < s->drop_pm)
        return;
    size_t sz = raft_msg_size(m), len;
    uint8_t *buf = malloc(sz);
    if (raft_msg_encode(m, buf, sz, &len) != 0 || len != sz) {
        sim_fail(s, "encode failed for message type %u", m->type);
        free(buf);
        return;
    }
    unsigned copies = (s->dup_pm > 0 && sim_rand_n(s, 1000) < s->dup_pm) ? 2 : 1;
    for (unsigned c = 0; c < copies; c++) {
        unsigned lmax = s->link_lat_max[m->from][m->to];
        unsigned lat = s->cfg.lat_min + sim_rand_n(s, lmax >= s->cfg.lat_min ? lmax - s->cfg.lat_min + 1 : 1);
        uint8_t *b = buf;
        if (c > 0) {
            b = malloc(len);
            memcpy(b, buf, len);
        }
        struct sim_event ev = {
            .at = s->now + lat, .kind = SIM_EV_MSG, .node = (uint8_t)m->to, .buf = b, .len = len};
        sim_push(s, ev);
    }
}

static inline void sim_apply_entry(struct sim *s, struct sim_node *n, const struct raft_entry *e)
{
    if (e->index != n->applied + 1) {
        sim_fail(s, "node %" PRIu64 " applies %" PRIu64 " after %" PRIu64, n->id, e->index, n->applied);
        return;
    }
    uint64_t h = sim_entry_hash(e);
    sim_truth_check(s, n, e->index, e->term, h, "applied");
    n->sm_hash = sim_hash(n->sm_hash ^ h, &e->index, sizeof(e->index));
    n->applied = e->index;
    n->applied_count++;
    if (s->on_apply != NULL)
        s->on_apply(s, n, e);
}

/* Step 1-4 of the ordering contract for one ready whose disk write is done. */
static inline void sim_finish_ready(struct sim *s, struct sim_node *n)
{
    struct raft_ready *rd = &n->rd;
    struct raft *r = n->r;
    if (rd->snapshot != NULL) {
        sim_disk_set_snapshot(n, &rd->snapshot->meta, rd->snapshot->data, rd->snapshot->len);
        sim_disk_truncate(n, 0);
    }
    if (rd->n_entries > 0) {
        uint64_t first = rd->entries[0].index;
        uint64_t disk_last = n->n_log ? n->log[n->n_log - 1].index : (n->has_snap ? n->snap.meta.index : 0);
        if (s->cfg.check_invariants && rd->role == RAFT_LEADER && first <= disk_last &&
            n->lead_term == rd->hard_state.term && raft_role(r) == RAFT_LEADER)
            sim_fail(s, "leader append-only: leader %" PRIu64 " rewrites its disk from %" PRIu64, n->id,
                     first);
        sim_disk_truncate(n, first);
        for (size_t i = 0; i < rd->n_entries; i++) {
            const struct raft_entry *e = &rd->entries[i];
            if (s->cfg.check_invariants) {
                uint64_t pt = i > 0 ? rd->entries[i - 1].term : raft_entry_term(r, e->index - 1);
                sim_lm_check(s, n, e->index, e->term, pt, sim_entry_hash(e));
            }
            sim_disk_append(n, e);
        }
    }
    if (rd->has_hard_state)
        n->hs = rd->hard_state;
    for (size_t i = 0; i < rd->n_messages; i++)
        sim_send(s, &rd->messages[i]);
    if (rd->snapshot != NULL) {
        n->applied = rd->snapshot->meta.index;
        if (rd->snapshot->len == 16)
            memcpy(&n->sm_hash, rd->snapshot->data + 8, 8);
        sim_truth_check(s, n, rd->snapshot->meta.index, rd->snapshot->meta.term, 0, "installed snapshot");
    }
    for (size_t i = 0; i < rd->n_committed && !s->failed; i++)
        sim_apply_entry(s, n, &rd->committed[i]);
    for (size_t i = 0; i < rd->n_read_states; i++) {
        const struct raft_read_state *rs = &rd->read_states[i];
        for (size_t j = 0; j < s->n_reads; j++) {
            if (s->reads[j].ctx != rs->ctx)
                continue;
            /* Linearizable read: the read index covers all that was committed when it was asked. */
            if (rs->index < s->reads[j].min_index)
                sim_fail(s,
                         "read index: node %" PRIu64 " read %" PRIu64 " at index %" PRIu64 " but %" PRIu64
                         " was committed before it was asked",
                         n->id, rs->ctx, rs->index, s->reads[j].min_index);
            s->reads[j] = s->reads[--s->n_reads];
            s->reads_done++;
            break;
        }
    }
    raft_advance(r, rd);
    n->writing = false;
    /* The state machine snapshots itself now and then. */
    if (s->cfg.compact_every > 0 && n->applied >= raft_snapshot_index(r) + s->cfg.compact_every &&
        n->applied >= raft_first_index(r)) {
        uint8_t img[16];
        memcpy(img, &n->applied, 8);
        memcpy(img + 8, &n->sm_hash, 8);
        struct raft_snapshot_meta meta;
        unsigned trailing = s->cfg.trailing ? sim_rand_n(s, s->cfg.trailing + 1) : 0;
        if (raft_compact(r, n->applied, img, sizeof(img), trailing, &meta) == 0)
            sim_disk_set_snapshot(n, &meta, img, sizeof(img));
    }
}

/* Drain the node's readies, starting disk writes when the disk is slow. */
static inline void sim_process(struct sim *s, struct sim_node *n)
{
    while (n->up && !n->writing && raft_has_ready(n->r) && !s->failed) {
        raft_ready(n->r, &n->rd);
        bool disk = n->rd.has_hard_state || n->rd.n_entries > 0 || n->rd.snapshot != NULL;
        if (disk && s->cfg.disk_lat_max > 0) {
            n->writing = true;
            n->write_done_at = s->now + 1 + sim_rand_n(s, s->cfg.disk_lat_max);
            struct sim_event ev = {
                .at = n->write_done_at, .kind = SIM_EV_WRITE, .node = (uint8_t)n->id, .gen = n->gen};
            sim_push(s, ev);
            return;
        }
        sim_finish_ready(s, n);
    }
}

static inline void sim_node_tick(struct sim *s, struct sim_node *n)
{
    raft_tick(n->r);
    sim_process(s, n);
}

/* Scenario helpers: tick one node k times, delivering whatever is due in between. */
static inline void sim_tick(struct sim *s, struct sim_node *n, unsigned k);
static inline void sim_run_until(struct sim *s, uint64_t t);
static inline void sim_tick(struct sim *s, struct sim_node *n, unsigned k)
{
    for (unsigned i = 0; i < k && n->up; i++) {
        if (!n->writing)
            sim_node_tick(s, n);
        sim_check(s);
        sim_run_until(s, s->now + 1);
    }
}

/* Run one event. Returns false when there is none. */
static inline bool sim_step(struct sim *s)
{
    if (s->n_heap == 0)
        return false;
    struct sim_event ev = sim_pop(s);
    if (ev.at > s->now)
        s->now = ev.at;
    struct sim_node *n = &s->nodes[ev.node];
    s->steps++;
    switch (ev.kind) {
    case SIM_EV_MSG:
        if (!n->up) {
            free(ev.buf);
            break;
        }
        if (n->writing) { /* the core is busy with a ready: the input waits */
            ev.at = n->write_done_at;
            sim_push(s, ev);
            break;
        }
        {
            struct raft_message m;
            int rv = raft_msg_decode(ev.buf, ev.len, &m, NULL);
            if (rv != 0) {
                sim_fail(s, "decode failed: %s", raft_strerror(rv));
            } else {
                raft_step(n->r, &m);
                raft_msg_release(&m, NULL);
                s->delivered++;
            }
            free(ev.buf);
            sim_process(s, n);
        }
        break;
    case SIM_EV_TICK:
        if (!n->up || ev.gen != n->gen)
            break;
        ev.at = s->now + SIM_TICK;
        sim_push(s, ev);
        if (n->writing) {
            n->pending_ticks++;
            break;
        }
        sim_node_tick(s, n);
        break;
    case SIM_EV_WRITE:
        if (!n->up || ev.gen != n->gen || !n->writing)
            break;
        sim_finish_ready(s, n);
        while (n->up && !n->writing && n->pending_ticks > 0) {
            n->pending_ticks--;
            raft_tick(n->r);
        }
        sim_process(s, n);
        break;
    }
    sim_check(s);
    return true;
}

static inline void sim_run_until(struct sim *s, uint64_t t)
{
    while (!s->failed && s->n_heap > 0 && s->heap[0].at <= t)
        sim_step(s);
    if (s->now < t)
        s->now = t;
}

static inline void sim_config_defaults(struct sim_config *c, unsigned n)
{
    memset(c, 0, sizeof(*c));
    c->n = n;
    c->election_tick = 10;
    c->heartbeat_tick = 2;
    c->max_inflight = 8;
    c->max_msg_bytes = 4096;
    c->max_uncommitted_bytes = 1 << 20;
    c->pre_vote = true;
    c->check_quorum = true;
    c->lat_min = 1;
    c->lat_max = 5;
    c->disk_lat_max = 3;
    c->compact_every = 0;
    c->trailing = 0;
    c->check_invariants = true;
}

static inline void sim_init(struct sim *s, const struct sim_config *cfg, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->cfg = *cfg;
    s->seed = seed;
    s->rng = seed * 0x2545F4914F6CDD1Dull + 1;
    s->next_id = 1;
    for (unsigned i = 0; i < cfg->n; i++)
        sim_add_node(s, true);
}

static inline void sim_destroy(struct sim *s)
{
    for (unsigned i = 1; i < s->next_id; i++) {
        struct sim_node *n = &s->nodes[i];
        if (n->up)
            raft_free(n->r);
        for (size_t k = 0; k < n->n_log; k++)
            free(n->log[k].data);
        free(n->log);
        free(n->snap.data);
    }
    for (size_t i = 0; i < s->n_heap; i++)
        free(s->heap[i].buf);
    free(s->heap);
    free(s->leader_of_term);
    free(s->truth);
    free(s->lm);
    free(s->reads);
}

/* ---- helpers for tests ---- */
static inline struct sim_node *sim_leader(struct sim *s)
{
    struct sim_node *best = NULL;
    for (unsigned i = 1; i < s->next_id; i++) {
        struct sim_node *n = &s->nodes[i];
        if (n->up && raft_role(n->r) == RAFT_LEADER && (best == NULL || raft_term(n->r) > raft_term(best->r)))
            best = n;
    }
    return best;
}

/* Propose through n's core (it must be idle); returns the core's code. */
static inline int sim_propose(struct sim *s, struct sim_node *n, const void *data, uint32_t len)
{
    if (!n->up || n->writing)
        return RAFT_EBUSY;
    int rv = raft_propose(n->r, data, len);
    sim_process(s, n);
    return rv;
}

static inline int sim_read_index(struct sim *s, struct sim_node *n, uint64_t *ctx_out)
{
    if (!n->up || n->writing)
        return RAFT_EBUSY;
    uint64_t ctx = ++s->read_ctx;
    int rv = raft_read_index(n->r, ctx);
    if (rv == 0) {
        if (s->n_reads == s->cap_reads) {
            s->cap_reads = s->cap_reads ? s->cap_reads * 2 : 16;
            s->reads = realloc(s->reads, s->cap_reads * sizeof(*s->reads));
        }
        s->reads[s->n_reads].ctx = ctx;
        s->reads[s->n_reads].min_index = s->max_committed;
        s->n_reads++;
        if (ctx_out)
            *ctx_out = ctx;
    }
    sim_process(s, n);
    return rv;
}

static inline bool sim_read_pending(const struct sim *s, uint64_t ctx)
{
    for (size_t j = 0; j < s->n_reads; j++)
        if (s->reads[j].ctx == ctx)
            return true;
    return false;
}

/* Symmetric partition: nodes in mask (bit i = node i) cannot talk to the others. */
static inline void sim_partition(struct sim *s, uint32_t mask)
{
    for (unsigned a = 1; a <= SIM_MAX; a++)
        for (unsigned b = 1; b <= SIM_MAX; b++)
            s->cut[a][b] = ((mask >> a) & 1) != ((mask >> b) & 1);
}
static inline void sim_heal(struct sim *s)
{
    memset(s->cut, 0, sizeof(s->cut));
    s->drop_pm = s->dup_pm = 0;
    for (unsigned a = 1; a <= SIM_MAX; a++)
        for (unsigned b = 1; b <= SIM_MAX; b++)
            s->link_lat_max[a][b] = s->cfg.lat_max;
}
/* Run until some node leads (or the deadline); returns it. */
static inline struct sim_node *sim_await_leader(struct sim *s, uint64_t deadline)
{
    while (!s->failed && s->now < deadline) {
        struct sim_node *l = sim_leader(s);
        if (l != NULL && !l->writing)
            return l;
        if (!sim_step(s))
            break;
    }
    return NULL;
}

#endif
