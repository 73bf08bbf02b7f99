/* tests/sim/sim_model.h — the simulated world under tests/sim/cluster.h: the cluster and node
 * structs, the deterministic random source and hash, allocation that fails on demand, the event
 * heap (simulated time) and the simulated disk. Included through cluster.h; not used alone.
 *
 * Header-only (static inline) so each test executable compiles it with its own flags.
 */
#ifndef DISCOVERYD_TESTS_SIM_MODEL_H
#define DISCOVERYD_TESTS_SIM_MODEL_H

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

enum sim_ev { SIM_EV_MSG = 1, SIM_EV_TICK, SIM_EV_WRITE, SIM_EV_AWRITE };

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

/* A leader's write started by raft_advance_async() (the pipeline), durable at `at` unless the node
 * crashes first. The disk takes writes in the order they were started. */
struct sim_pwrite {
    uint64_t at;
    struct raft_entry *es; /* copies: the core may drop its own meanwhile */
    size_t n;
    bool has_hs;
    struct raft_hard_state hs;
    bool on_disk; /* written, raft_durable_to() not yet told (a synchronous ready was out) */
    uint8_t **msgs; /* messages held until the write is durable (not early_send), encoded */
    size_t *msg_lens, n_msgs;
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
    struct sim_pwrite *pw; /* the pipeline's writes under way, oldest first */
    size_t n_pw, cap_pw;
    uint64_t pipelined;    /* readies advanced with raft_advance_async() */
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
    bool pipeline;     /* readies are advanced before their writes are durable (raft_advance_async) */
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
/* The disk holds entry (idx, term), or a snapshot covering it. */
static inline bool sim_disk_has(const struct sim_node *n, uint64_t idx, uint64_t term)
{
    if (n->has_snap && n->snap.meta.index >= idx)
        return true;
    for (size_t i = n->n_log; i > 0; i--)
        if (n->log[i - 1].index == idx)
            return n->log[i - 1].term == term;
    return false;
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

#endif
