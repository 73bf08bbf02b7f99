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

/* The world (structs, time, network and disk state) is in sim_model.h; the invariants checked after
 * every event are in sim_invariants.h. This file drives the nodes and offers helpers to tests. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/raft/raft.h"
#include "tests/sim/sim_invariants.h"
#include "tests/sim/sim_model.h"

/* ---- the leader's pipeline (raft_advance_async): writes under way, durable in order ---- */
static inline void sim_send(struct sim *s, const struct raft_message *m);

/* Start rd's writes (none: a barrier behind the earlier ones, holding rd's messages). */
static inline void sim_pw_push(struct sim *s, struct sim_node *n, const struct raft_ready *rd, bool disk)
{
    if (n->n_pw == n->cap_pw) {
        n->cap_pw = n->cap_pw ? n->cap_pw * 2 : 8;
        n->pw = realloc(n->pw, n->cap_pw * sizeof(*n->pw));
    }
    struct sim_pwrite *w = &n->pw[n->n_pw++];
    memset(w, 0, sizeof(*w));
    w->at = disk ? s->now + 1 + sim_rand_n(s, s->cfg.disk_lat_max) : s->now;
    if (n->n_pw > 1 && n->pw[n->n_pw - 2].at > w->at)
        w->at = n->pw[n->n_pw - 2].at; /* one disk queue */
    w->n = rd->n_entries;
    w->es = w->n ? calloc(w->n, sizeof(*w->es)) : NULL;
    for (size_t i = 0; i < w->n; i++) {
        w->es[i] = rd->entries[i];
        w->es[i].data = NULL;
        if (rd->entries[i].len) {
            w->es[i].data = malloc(rd->entries[i].len);
            memcpy(w->es[i].data, rd->entries[i].data, rd->entries[i].len);
        }
    }
    w->has_hs = disk && rd->has_hard_state;
    w->hs = rd->hard_state;
    if (!rd->early_send && rd->n_messages > 0) {
        w->msgs = calloc(rd->n_messages, sizeof(*w->msgs));
        w->msg_lens = calloc(rd->n_messages, sizeof(*w->msg_lens));
        for (size_t i = 0; i < rd->n_messages; i++) {
            size_t sz = raft_msg_size(&rd->messages[i]);
            w->msgs[i] = malloc(sz);
            if (raft_msg_encode(&rd->messages[i], w->msgs[i], sz, &w->msg_lens[i]) != 0)
                sim_fail(s, "encode failed for a held message");
        }
        w->n_msgs = rd->n_messages;
    }
    struct sim_event ev = {.at = w->at, .kind = SIM_EV_AWRITE, .node = (uint8_t)n->id, .gen = n->gen};
    sim_push(s, ev);
}

static inline void sim_pw_free(struct sim_pwrite *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->es[i].data);
    free(w->es);
    for (size_t i = 0; i < w->n_msgs; i++)
        free(w->msgs[i]);
    free(w->msgs);
    free(w->msg_lens);
    w->n_msgs = 0;
}

/* The writes due by t reach the disk (in order); the messages they held go out. */
static inline void sim_pw_land(struct sim *s, struct sim_node *n, uint64_t t)
{
    for (size_t k = 0; k < n->n_pw && n->pw[k].at <= t; k++) {
        struct sim_pwrite *w = &n->pw[k];
        if (w->on_disk)
            continue;
        if (w->n > 0) {
            sim_disk_truncate(n, w->es[0].index);
            for (size_t i = 0; i < w->n; i++)
                sim_disk_append(n, &w->es[i]);
        }
        if (w->has_hs)
            n->hs = w->hs;
        w->on_disk = true;
        for (size_t i = 0; i < w->n_msgs; i++) {
            struct raft_message m;
            if (raft_msg_decode(w->msgs[i], w->msg_lens[i], &m, NULL) != 0) {
                sim_fail(s, "decode failed for a held message");
                continue;
            }
            sim_send(s, &m);
            raft_msg_release(&m, NULL);
        }
    }
}

/* Tell the core which writes are durable (no ready may be out). */
static inline void sim_pw_tell(struct sim_node *n)
{
    size_t k = 0;
    for (; k < n->n_pw && n->pw[k].on_disk; k++) {
        struct sim_pwrite *w = &n->pw[k];
        if (w->n > 0)
            raft_durable_to(n->r, w->es[w->n - 1].index, w->es[w->n - 1].term);
        sim_pw_free(w);
    }
    if (k == 0)
        return;
    memmove(n->pw, n->pw + k, (n->n_pw - k) * sizeof(*n->pw));
    n->n_pw -= k;
}

static inline void sim_pw_drop(struct sim_node *n)
{
    for (size_t k = 0; k < n->n_pw; k++)
        sim_pw_free(&n->pw[k]);
    n->n_pw = 0;
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
    sim_pw_drop(n); /* the pipeline's writes not yet durable die too */
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
static inline void sim_lm_ready(struct sim *s, struct sim_node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->n_entries && s->cfg.check_invariants; i++) {
        const struct raft_entry *e = &rd->entries[i];
        uint64_t pt = i > 0 ? rd->entries[i - 1].term : raft_entry_term(n->r, e->index - 1);
        sim_lm_check(s, n, e->index, e->term, pt, sim_entry_hash(e));
    }
}

/* Step 3: install, apply, serve reads. */
static inline void sim_effects(struct sim *s, struct sim_node *n, const struct raft_ready *rd);
/* The state machine snapshots itself now and then. */
static inline void sim_maybe_compact(struct sim *s, struct sim_node *n);

static inline void sim_finish_ready(struct sim *s, struct sim_node *n)
{
    struct raft_ready *rd = &n->rd;
    struct raft *r = n->r;
    sim_pw_land(s, n, UINT64_MAX); /* the disk queue: what the pipeline started is written first */
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
        sim_lm_ready(s, n, rd);
        for (size_t i = 0; i < rd->n_entries; i++)
            sim_disk_append(n, &rd->entries[i]);
    }
    if (rd->has_hard_state)
        n->hs = rd->hard_state;
    for (size_t i = 0; i < rd->n_messages; i++)
        sim_send(s, &rd->messages[i]);
    sim_effects(s, n, rd);
    raft_advance(r, rd);
    n->writing = false;
    sim_pw_tell(n); /* the pipeline's writes landed above: now the core may hear of them */
    sim_maybe_compact(s, n);
}

static inline void sim_effects(struct sim *s, struct sim_node *n, const struct raft_ready *rd)
{
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
}

static inline void sim_maybe_compact(struct sim *s, struct sim_node *n)
{
    struct raft *r = n->r;
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
        if ((disk || n->n_pw > 0) && s->cfg.disk_lat_max > 0 && s->cfg.pipeline && !n->rd.snapshot) {
            /* the pipeline: the write goes on while the core takes input; the messages go now
             * (early_send) or when the write (and every one before it) is durable */
            sim_lm_ready(s, n, &n->rd);
            sim_pw_push(s, n, &n->rd, disk);
            if (n->rd.early_send)
                for (size_t i = 0; i < n->rd.n_messages; i++)
                    sim_send(s, &n->rd.messages[i]);
            sim_effects(s, n, &n->rd);
            if (raft_advance_async(n->r, &n->rd) != 0)
                sim_fail(s, "raft_advance_async refused a ready: %s", raft_errmsg(n->r));
            n->pipelined++;
            sim_maybe_compact(s, n);
            continue;
        }
        if (disk && s->cfg.disk_lat_max > 0) {
            n->writing = true;
            n->write_done_at = s->now + 1 + sim_rand_n(s, s->cfg.disk_lat_max);
            if (n->n_pw > 0 && n->pw[n->n_pw - 1].at > n->write_done_at)
                n->write_done_at = n->pw[n->n_pw - 1].at; /* after the pipeline's writes */
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
    case SIM_EV_AWRITE:
        if (!n->up || ev.gen != n->gen)
            break;
        sim_pw_land(s, n, s->now);
        if (!n->writing) { /* else the synchronous ready's completion tells the core */
            sim_pw_tell(n);
            sim_process(s, n);
        }
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
        sim_pw_drop(n);
        free(n->pw);
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
