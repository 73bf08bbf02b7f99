/* tests/sim/raft_sim.c — the randomised Raft simulation: thousands of seeded runs of a 3, 5 or
 * 7 node cluster through partitions, drops, duplicates, reordering, crashes with lost writes,
 * allocation failures, leadership transfers and membership changes, with the safety invariants of
 * cluster.h checked after every event and liveness checked once the faults heal.
 *
 * Usage: raft_sim [--seeds N] [--start S] [--seed S (replay one, verbose)] [--long] [-v]
 * DISCOVERYD_SIM_SEEDS=N in the environment overrides the seed count (longer soaks from ctest).
 * A failure prints its seed; `raft_sim --seed N` replays that run exactly.
 */
#include <time.h>
#include "tests/sim/cluster.h"

struct run_opts {
    unsigned chaos_ticks; /* ticks of faults before healing */
    unsigned live_ticks;  /* bound for a leader plus a committed proposal after healing */
    bool verbose;
};

struct run_state {
    bool live_committed;
    uint64_t live_marker;
    uint64_t live_ticks; /* ticks from healing to the marker's commit */
    uint64_t proposals, conf_changes, transfers, crashes, partitions, alloc_faults;
};

static void on_apply(struct sim *s, struct sim_node *n, const struct raft_entry *e)
{
    struct run_state *rs = s->user;
    uint64_t v;
    if (e->type == RAFT_ENTRY_NORMAL && e->len == 9 && e->data[0] == 'L') {
        memcpy(&v, e->data + 1, 8);
        if (v == rs->live_marker)
            rs->live_committed = true;
    }
}

static struct sim_node *pick_up(struct sim *s, bool up)
{
    unsigned cand[SIM_MAX + 1], k = 0;
    for (unsigned i = 1; i < s->next_id; i++)
        if (s->nodes[i].up == up)
            cand[k++] = i;
    return k ? &s->nodes[cand[sim_rand_n(s, k)]] : NULL;
}

static void vlog(const struct sim *s, const struct run_opts *o, const char *what, uint64_t a, uint64_t b)
{
    if (o->verbose)
        printf("t=%-6" PRIu64 " %-22s %" PRIu64 " %" PRIu64 "\n", s->now, what, a, b);
}

/* One random fault or client action. */
static void chaos(struct sim *s, struct run_state *rs, const struct run_opts *o)
{
    struct sim_node *l = sim_leader(s);
    unsigned x = sim_rand_n(s, 1000);
    if (x < 450) {
        if (l != NULL && !l->writing) {
            unsigned k = 1 + sim_rand_n(s, 4);
            const void *datas[4];
            uint32_t lens[4];
            uint8_t bufs[4][64];
            for (unsigned i = 0; i < k; i++) {
                lens[i] = 1 + sim_rand_n(s, 64);
                for (unsigned j = 0; j < lens[i]; j++)
                    bufs[i][j] = (uint8_t)sim_rand(s);
                bufs[i][0] = 'P';
                datas[i] = bufs[i];
            }
            if (raft_propose_batch(l->r, datas, lens, k) == 0)
                rs->proposals += k;
            sim_process(s, l);
        }
    } else if (x < 500) {
        if (l != NULL)
            sim_read_index(s, l, NULL);
    } else if (x < 540) {
        /* Half the crashes hit the leader: that is where the interesting histories start. */
        struct sim_node *n = (l != NULL && sim_rand_n(s, 2) == 0) ? l : pick_up(s, true);
        if (n != NULL) {
            vlog(s, o, "crash", n->id, 0);
            sim_crash(s, n);
            rs->crashes++;
        }
    } else if (x < 600) {
        struct sim_node *n = pick_up(s, false);
        if (n != NULL) {
            vlog(s, o, "restart", n->id, 0);
            sim_restart(s, n);
        }
    } else if (x < 630) {
        uint32_t mask = (uint32_t)sim_rand(s) & (((1u << s->next_id) - 1) & ~1u);
        if (l != NULL && sim_rand_n(s, 2) == 0)
            mask = 1u << l->id; /* isolate the leader */
        vlog(s, o, "partition", mask, 0);
        sim_partition(s, mask);
        rs->partitions++;
    } else if (x < 650) {
        unsigned a = 1 + sim_rand_n(s, s->next_id - 1), b = 1 + sim_rand_n(s, s->next_id - 1);
        vlog(s, o, "cut one way", a, b);
        s->cut[a][b] = true;
        rs->partitions++;
    } else if (x < 690) {
        vlog(s, o, "heal network", 0, 0);
        memset(s->cut, 0, sizeof(s->cut));
    } else if (x < 720) {
        s->drop_pm = sim_rand_n(s, 4) == 0 ? 0 : sim_rand_n(s, 300);
        s->dup_pm = sim_rand_n(s, 150);
        vlog(s, o, "drop/dup permille", s->drop_pm, s->dup_pm);
    } else if (x < 740) {
        unsigned a = 1 + sim_rand_n(s, s->next_id - 1), b = 1 + sim_rand_n(s, s->next_id - 1);
        s->link_lat_max[a][b] = s->cfg.lat_min + sim_rand_n(s, 60);
        vlog(s, o, "slow link", a, b);
    } else if (x < 765) {
        if (l != NULL && !l->writing) {
            const struct raft_conf *c = raft_configuration(l->r);
            int rv;
            if ((sim_rand_n(s, 2) == 0 && c->n < 7 && s->next_id <= SIM_MAX) || c->n <= 2) {
                struct sim_node *nn = sim_add_node(s, false);
                if (nn == NULL)
                    return;
                rv = raft_propose_conf_change(l->r, RAFT_CONF_ADD, nn->id);
                vlog(s, o, rv == 0 ? "add node" : "add node refused", nn->id, (uint64_t)rv);
            } else {
                uint64_t id = c->ids[sim_rand_n(s, c->n)];
                rv = raft_propose_conf_change(l->r, RAFT_CONF_REMOVE, id);
                vlog(s, o, rv == 0 ? "remove node" : "remove node refused", id, (uint64_t)rv);
            }
            if (rv == 0)
                rs->conf_changes++;
            sim_process(s, l);
        }
    } else if (x < 785) {
        if (l != NULL && !l->writing) {
            const struct raft_conf *c = raft_configuration(l->r);
            uint64_t to = c->ids[sim_rand_n(s, c->n)];
            if (raft_transfer_leadership(l->r, to) == 0) {
                rs->transfers++;
                vlog(s, o, "transfer", l->id, to);
            }
            sim_process(s, l);
        }
    } else if (x < 805) {
        struct sim_node *n = pick_up(s, true);
        if (n != NULL) {
            n->fail_alloc_in = 1 + sim_rand_n(s, 40);
            rs->alloc_faults++;
            vlog(s, o, "fail allocation", n->id, (uint64_t)n->fail_alloc_in);
        }
    }
}

static bool run_seed(uint64_t seed, const struct run_opts *o, uint64_t *steps, uint64_t *live_ticks_max,
                     uint64_t *pipelined)
{
    static const unsigned sizes[3] = {3, 5, 7};
    struct sim_config cfg;
    sim_config_defaults(&cfg, sizes[seed % 3]);
    struct sim s;
    /* Draw the run's shape from the seed too. */
    uint64_t h = seed * 0xD1B54A32D192ED03ull + 7;
    cfg.pre_vote = (h >> 3) % 8 != 0;
    /* Never both off: without either, a removed server that never learnt of its removal may
     * depose every new leader forever (thesis §4.2.3), so liveness is not promised there. */
    cfg.check_quorum = !cfg.pre_vote || (h >> 6) % 8 != 0;
    cfg.lat_max = 1 + (unsigned)((h >> 9) % 12);
    cfg.disk_lat_max = (unsigned)((h >> 13) % 5);
    cfg.compact_every = (h >> 16) % 3 == 0 ? 0 : 8 + (unsigned)((h >> 18) % 30);
    cfg.trailing = (unsigned)((h >> 23) % 6);
    cfg.max_inflight = 1 + (unsigned)((h >> 26) % 8);
    cfg.max_msg_bytes = (h >> 29) % 2 ? 1 : 64 + (h >> 30) % 512; /* 1: one entry per append */
    /* Half the runs: leaders pipeline (raft_advance_async; writes land later, in order, or die in a
     * crash), as the node glue does; a slow disk makes the writes overlap. */
    cfg.pipeline = (h >> 44) % 2 == 0;
    cfg.heartbeat_tick = 1 + (unsigned)((h >> 38) % 3);
    sim_init(&s, &cfg, seed);
    s.verbose = o->verbose;
    struct run_state rs = {0};
    s.user = &rs;
    s.on_apply = on_apply;

    for (unsigned t = 0; t < o->chaos_ticks && !s.failed; t++) {
        sim_run_until(&s, s.now + SIM_TICK);
        chaos(&s, &rs, o);
    }
    /* Heal everything; then a leader must appear and a new proposal must commit in bounded time. */
    sim_heal(&s);
    for (unsigned i = 1; i < s.next_id; i++) {
        s.nodes[i].fail_alloc_in = 0;
        if (!s.nodes[i].up)
            sim_restart(&s, &s.nodes[i]);
    }
    vlog(&s, o, "healed", 0, 0);
    uint64_t healed_at = s.now, deadline = s.now + (uint64_t)o->live_ticks * SIM_TICK;
    rs.live_marker = seed ^ 0x4C495645ull;
    uint8_t marker[9] = {'L'};
    memcpy(marker + 1, &rs.live_marker, 8);
    while (!s.failed && !rs.live_committed && s.now < deadline) {
        sim_run_until(&s, s.now + SIM_TICK);
        struct sim_node *l = sim_leader(&s);
        if (l != NULL && !l->writing && raft_configuration(l->r)->n > 0 &&
            raft_conf_has(raft_configuration(l->r), l->id))
            sim_propose(&s, l, marker, sizeof(marker));
    }
    rs.live_ticks = (s.now - healed_at) / SIM_TICK;
    if (!s.failed && !rs.live_committed)
        sim_fail(&s, "liveness: no proposal committed within %u ticks after healing at t=%" PRIu64,
                 o->live_ticks, healed_at);
    /* Let the cluster settle and everyone catch up, still checking. */
    sim_run_until(&s, s.now + 20 * SIM_TICK);
    if (o->verbose)
        printf("seed %" PRIu64 ": n=%u steps=%" PRIu64 " committed=%" PRIu64 " proposals=%" PRIu64
               " conf=%" PRIu64 " transfers=%" PRIu64 " crashes=%" PRIu64 " partitions=%" PRIu64
               " allocfail=%" PRIu64 " reads=%" PRIu64 " live after %" PRIu64 " ticks\n",
               seed, cfg.n, s.steps, s.max_committed, rs.proposals, rs.conf_changes, rs.transfers, rs.crashes,
               rs.partitions, rs.alloc_faults, s.reads_done, (s.now - healed_at) / SIM_TICK);
    if (o->verbose)
        sim_dump(&s);
    bool ok = !s.failed;
    if (!ok)
        fprintf(stderr, "FAIL seed=%" PRIu64 " (n=%u): %s\n  replay: raft_sim --seed %" PRIu64 "\n", seed,
                cfg.n, s.why, seed);
    *steps += s.steps;
    for (unsigned i = 1; i < s.next_id; i++)
        *pipelined += s.nodes[i].pipelined;
    if (rs.live_ticks > *live_ticks_max)
        *live_ticks_max = rs.live_ticks;
    sim_destroy(&s);
    return ok;
}

int main(int argc, char **argv)
{
    uint64_t start = 1, count = 5000;
    struct run_opts o = {.chaos_ticks = 200, .live_ticks = 300};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--start") && i + 1 < argc) {
            start = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            start = strtoull(argv[++i], NULL, 10);
            count = 1;
            o.verbose = true;
        } else if (!strcmp(argv[i], "--long")) {
            count = 50000;
            o.chaos_ticks = 400;
        } else if (!strcmp(argv[i], "--chaos-ticks") && i + 1 < argc) {
            o.chaos_ticks = (unsigned)strtoul(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "-v")) {
            o.verbose = true;
        } else {
            fprintf(stderr, "usage: %s [--seeds N] [--start S] [--seed S] [--long] [--chaos-ticks T] [-v]\n",
                    argv[0]);
            return 2;
        }
    }
    /* The soak knob of deploy/test.sh: more seeds than the default run, same checks. */
    const char *env = getenv("DISCOVERYD_SIM_SEEDS");
    if (env != NULL && *env != '\0' && !o.verbose) {
        char *end;
        unsigned long long n = strtoull(env, &end, 10);
        if (*end != '\0' || n == 0) {
            fprintf(stderr, "%s: DISCOVERYD_SIM_SEEDS: \"%s\" is not a positive integer\n", argv[0], env);
            return 2;
        }
        count = n;
    }
    clock_t t0 = clock();
    uint64_t failures = 0, steps = 0, live_max = 0, pipelined = 0;
    for (uint64_t seed = start; seed < start + count; seed++)
        if (!run_seed(seed, &o, &steps, &live_max, &pipelined))
            failures++;
    /* The pipeline must really have run (with overlapping writes), or half the runs checked nothing new. */
    if (count >= 100 && pipelined == 0) {
        fprintf(stderr, "raft_sim: no ready was advanced with raft_advance_async in %" PRIu64 " seeds\n", count);
        failures++;
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("raft_sim: %" PRIu64 " seeds from %" PRIu64 ", %" PRIu64 " failed, %" PRIu64
           " events, %" PRIu64 " pipelined readies, slowest recovery %" PRIu64 " ticks (bound %u), %.1fs cpu\n",
           count, start, failures, steps, pipelined, live_max, o.live_ticks, secs);
    return failures == 0 ? 0 : 1;
}
