/* tests/unit/test_wal_crash.c — crash simulation, SQLite-style: random appends (with truncation),
 * hard states, snapshot markers, syncs, roll-overs and releases on the in-memory file system, a
 * process death and power cut at a random operation (sometimes after an injected write or fsync
 * failure), then reopen. Recovery must always succeed and must return exactly the state after the
 * last acknowledged wal_sync plus some prefix of the records appended after it: every acknowledged
 * entry is there (unless a later append legitimately truncated it), nothing never appended is.
 *
 * Seeds: 5000 by default (a few seconds under ASan); DISCOVERYD_WAL_CRASH_SEEDS=N runs N,
 * DISCOVERYD_WAL_CRASH_SEED=S replays one seed verbosely (a failure prints its seed).
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "store/wal.h"
#include "tests/support/fake_fs.h"
#include "tests/support/wal_util.h"

#define MAXI 8192

/* The log as the WAL should replay it. */
struct model {
    bool has_snap;
    uint64_t snap_index, snap_term;
    struct raft_hard_state hs;
    uint64_t last;
    uint64_t terms[MAXI]; /* terms[i] for snap_index < i <= last */
};

enum rec_kind { R_ENTRY, R_HS, R_SNAP };
struct rec {
    enum rec_kind kind;
    uint64_t a, b; /* ENTRY: index, term; SNAP: index, term */
    bool replaces;
    struct raft_hard_state hs;
};

struct sim {
    uint64_t seed, rng;
    bool verbose;
    struct fake_fs *fs;
    struct wal_config cfg;
    struct logcap log;
    struct model acked;   /* as of the last acknowledged sync (or the last recovery) */
    struct model pending; /* acked + stream */
    struct rec *stream;   /* records appended since the last acknowledged sync */
    size_t n_stream, cap_stream;
    uint64_t term;
    char why[1536];
    /* counters for the summary */
    uint64_t syncs_ok, crashes, releases, truncations, faults;
};

static uint64_t rnd(struct sim *s)
{
    uint64_t x = s->rng += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
static uint64_t below(struct sim *s, uint64_t n)
{
    return n ? rnd(s) % n : 0;
}

static void model_apply(struct model *m, const struct rec *r)
{
    switch (r->kind) {
    case R_ENTRY:
        m->last = r->a;
        m->terms[r->a] = r->b;
        break;
    case R_HS:
        m->hs = r->hs;
        break;
    case R_SNAP:
        m->has_snap = true;
        m->snap_index = r->a;
        m->snap_term = r->b;
        if (r->replaces || r->a > m->last)
            m->last = r->a;
        break;
    }
}

static void push(struct sim *s, struct rec r)
{
    if (s->n_stream == s->cap_stream) {
        s->cap_stream = s->cap_stream ? s->cap_stream * 2 : 256;
        s->stream = realloc(s->stream, s->cap_stream * sizeof(*s->stream));
        assert_non_null(s->stream);
    }
    s->stream[s->n_stream++] = r;
    model_apply(&s->pending, &r);
}

static bool matches(const struct model *m, const struct wal_replay *r, char *why, size_t cap)
{
    if (r->has_snapshot != m->has_snap ||
        (m->has_snap && (r->snapshot_index != m->snap_index || r->snapshot_term != m->snap_term))) {
        snprintf(why, cap, "snapshot %d/%" PRIu64 "/%" PRIu64 " vs model %d/%" PRIu64 "/%" PRIu64,
                 r->has_snapshot, r->snapshot_index, r->snapshot_term, m->has_snap, m->snap_index,
                 m->snap_term);
        return false;
    }
    if (memcmp(&r->hard_state, &m->hs, sizeof(m->hs)) != 0) {
        snprintf(why, cap,
                 "hard state %" PRIu64 "/%" PRIu64 "/%" PRIu64 " vs model %" PRIu64 "/%" PRIu64 "/%" PRIu64,
                 r->hard_state.term, r->hard_state.vote, r->hard_state.commit, m->hs.term, m->hs.vote,
                 m->hs.commit);
        return false;
    }
    uint64_t from = m->has_snap ? m->snap_index + 1 : 1;
    uint64_t n = m->last >= from ? m->last - from + 1 : 0;
    if (r->n_entries != n) {
        snprintf(why, cap, "%zu entries (%" PRIu64 "..) vs model %" PRIu64 " (%" PRIu64 "..%" PRIu64 ")",
                 r->n_entries, r->n_entries ? r->entries[0].index : 0, n, from, m->last);
        return false;
    }
    for (size_t i = 0; i < r->n_entries; i++) {
        const struct raft_entry *e = &r->entries[i];
        if (e->index != from + i || e->term != m->terms[e->index] || !wal_test_entry_ok(e)) {
            snprintf(why, cap, "entry %" PRIu64 " term %" PRIu64 " vs model index %" PRIu64 " term %" PRIu64,
                     e->index, e->term, from + i, m->terms[from + i]);
            return false;
        }
    }
    return true;
}

/* After a crash: the replay must be acked + a prefix of the stream. Adopts it as the new truth. */
static bool check_recovery(struct sim *s, const struct wal_replay *r)
{
    struct model *m = &s->acked;
    char why[512] = "";
    for (size_t k = 0;; k++) {
        if (matches(m, r, why, sizeof(why))) {
            if (s->verbose)
                printf("  recovered: acked + %zu of %zu records\n", k, s->n_stream);
            s->n_stream = 0;
            s->pending = *m;
            return true;
        }
        if (k == s->n_stream)
            break;
        model_apply(m, &s->stream[k]);
    }
    snprintf(s->why, sizeof(s->why), "recovered state is not acked + a prefix of %zu records (vs all: %s)",
             s->n_stream, why);
    return false;
}

static void random_op(struct sim *s, struct wal *w, bool *dead)
{
    struct model *p = &s->pending;
    uint64_t lo = p->has_snap ? p->snap_index + 1 : 1; /* first index an append may start at */
    uint64_t roll = below(s, 100);
    int rv = 0;
    if (roll < 50 && p->last + 8 < MAXI) {
        uint64_t start = p->last + 1;
        if (below(s, 100) < 15 && p->last >= lo) {
            start = p->last + 1 - below(s, p->last - lo + 2 < 6 ? p->last - lo + 2 : 6);
            if (start <= p->last) {
                s->term++; /* a new leader overwrote the tail */
                s->truncations++;
            }
        }
        size_t n = 1 + (size_t)below(s, 5);
        struct raft_entry es[5];
        uint8_t bufs[5][ENTRY_DATA_MAX];
        for (size_t i = 0; i < n; i++)
            wal_test_entry(&es[i], bufs[i], start + i, s->term);
        rv = wal_append(w, es, n);
        if (rv == 0)
            for (size_t i = 0; i < n; i++)
                push(s, (struct rec){.kind = R_ENTRY, .a = start + i, .b = s->term});
    } else if (roll < 62) {
        struct raft_hard_state hs = {
            .term = s->term, .vote = 1 + below(s, 3), .commit = below(s, p->last + 1)};
        rv = wal_set_hard_state(w, &hs);
        if (rv == 0)
            push(s, (struct rec){.kind = R_HS, .hs = hs});
    } else if (roll < 70) {
        /* A local compaction at an index of the log, or (rarely) a received snapshot past it. */
        bool replaces = below(s, 4) == 0 && p->last + 20 < MAXI;
        uint64_t idx, term;
        if (replaces) {
            idx = p->last + 1 + below(s, 10);
            term = ++s->term;
        } else if (p->last >= lo) {
            idx = lo + below(s, p->last - lo + 1);
            term = p->terms[idx];
        } else {
            return;
        }
        rv = wal_snapshot(w, idx, term, replaces);
        if (rv == 0)
            push(s, (struct rec){.kind = R_SNAP, .a = idx, .b = term, .replaces = replaces});
    } else if (roll < 95) {
        rv = wal_sync(w);
        if (rv == 0) {
            s->acked = s->pending;
            s->n_stream = 0;
            s->syncs_ok++;
        }
    } else {
        if (!s->acked.has_snap)
            return;
        rv = wal_release_before(w, s->acked.snap_index);
        if (rv == 0)
            s->releases++;
    }
    if (rv != 0) {
        const char *msg;
        if (wal_error(w, &msg) == 0) {
            snprintf(s->why, sizeof(s->why), "operation failed (%d) without poisoning the WAL", rv);
            *dead = true;
            return;
        }
        if (s->verbose)
            printf("  poisoned: %s\n", msg);
        *dead = true;
    }
}

static bool open_checked(struct sim *s, struct wal **w, struct wal_replay *r, bool first)
{
    char err[1024];
    memset(&s->log, 0, sizeof(s->log));
    int rv = wal_open(w, &s->cfg, r, err, sizeof(err));
    if (rv != 0) {
        snprintf(s->why, sizeof(s->why), "recovery failed: %s", err);
        return false;
    }
    if (s->verbose && s->log.n)
        printf("  log: %s", s->log.all);
    return first || check_recovery(s, r);
}

static bool run_seed(uint64_t seed, bool verbose, struct sim *s)
{
    memset(s, 0, offsetof(struct sim, acked));
    s->seed = seed;
    s->rng = seed * 0x2545F4914F6CDD1Dull + 1;
    s->verbose = verbose;
    s->fs = fake_fs_new(seed ^ 0xF5);
    wal_config_defaults(&s->cfg);
    static const uint64_t sizes[] = {512, 1024, 4096};
    s->cfg.dir = "/wal";
    s->cfg.segment_size = sizes[below(s, 3)];
    s->cfg.io = fake_fs_io(s->fs);
    s->cfg.cluster_id = 7;
    s->cfg.member_id = 1;
    s->cfg.log = logcap_fn;
    s->cfg.log_arg = &s->log;
    memset(&s->acked, 0, sizeof(s->acked));
    memset(&s->pending, 0, sizeof(s->pending));
    s->n_stream = 0;
    s->term = 1;
    s->why[0] = '\0';
    s->syncs_ok = s->crashes = s->releases = s->truncations = s->faults = 0;
    fake_fs_short_writes(s->fs, below(s, 4) == 0);

    bool ok = true, first = true;
    int epochs = 1 + (int)below(s, 3);
    for (int ep = 0; ep < epochs && ok; ep++) {
        struct wal *w = NULL;
        struct wal_replay r;
        /* Sometimes the process dies during the open itself (a repair, the first segment). */
        if (!first && below(s, 10) == 0)
            fake_fs_die_after(s->fs, 1 + below(s, 12));
        char err[1024];
        int rv = wal_open(&w, &s->cfg, &r, err, sizeof(err));
        if (rv != 0) {
            wal_replay_free(&r);
            if (!first && rv == -EIO) { /* died while opening: power cut, try again */
                fake_fs_power_cut(s->fs);
                s->crashes++;
                ep--;
                continue;
            }
            snprintf(s->why, sizeof(s->why), "open failed: %s", err);
            ok = false;
            break;
        }
        if (!first && !check_recovery(s, &r)) {
            wal_replay_free(&r);
            wal_close(w);
            ok = false;
            break;
        }
        wal_replay_free(&r);
        first = false;
        /* The crash point: an operation count, sometimes after an injected failure. */
        fake_fs_die_after(s->fs, 1 + below(s, 600));
        uint64_t f = below(s, 10);
        if (f == 0)
            fake_fs_fail_write(s->fs, 1 + below(s, 60), below(s, 2) ? EIO : ENOSPC);
        else if (f == 1)
            fake_fs_fail_sync(s->fs, 1 + below(s, 40), EIO);
        s->faults += f < 2;
        bool dead = false;
        int steps = 20 + (int)below(s, 200);
        for (int i = 0; i < steps && !dead; i++)
            random_op(s, w, &dead);
        if (s->why[0]) {
            ok = false;
            wal_close(w);
            break;
        }
        wal_close(w);
        fake_fs_power_cut(s->fs);
        s->crashes++;
        if (verbose)
            printf("epoch %d: acked last %" PRIu64 " snap %" PRIu64 ", %zu records unacked\n", ep,
                   s->acked.last, s->acked.snap_index, s->n_stream);
    }
    if (ok) {
        struct wal *w = NULL;
        struct wal_replay r;
        ok = open_checked(s, &w, &r, false);
        wal_replay_free(&r);
        wal_close(w);
    }
    fake_fs_free(s->fs);
    return ok;
}

static void test_wal_survives_power_cuts_at_random_points(void **state)
{
    uint64_t count = 5000, start = 1;
    bool one = false;
    const char *env = getenv("DISCOVERYD_WAL_CRASH_SEEDS");
    if (env != NULL && *env)
        count = strtoull(env, NULL, 10);
    env = getenv("DISCOVERYD_WAL_CRASH_SEED");
    if (env != NULL && *env) {
        start = strtoull(env, NULL, 10);
        count = 1;
        one = true;
    }
    struct sim *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    uint64_t syncs = 0, crashes = 0, releases = 0, truncations = 0, faults = 0;
    for (uint64_t seed = start; seed < start + count; seed++) {
        if (!run_seed(seed, one, s)) {
            char why[sizeof(s->why)];
            memcpy(why, s->why, sizeof(why));
            free(s->stream);
            free(s);
            fail_msg("seed %" PRIu64 ": %s\n  replay: DISCOVERYD_WAL_CRASH_SEED=%" PRIu64 " test_wal_crash",
                     seed, why, seed);
        }
        syncs += s->syncs_ok;
        crashes += s->crashes;
        releases += s->releases;
        truncations += s->truncations;
        faults += s->faults;
    }
    printf("wal crash sim: %" PRIu64 " seeds, %" PRIu64 " power cuts, %" PRIu64
           " acknowledged syncs, %" PRIu64 " releases, %" PRIu64 " truncations, %" PRIu64
           " injected faults\n",
           count, crashes, syncs, releases, truncations, faults);
    free(s->stream);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_survives_power_cuts_at_random_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
