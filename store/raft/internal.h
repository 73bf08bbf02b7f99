/* store/raft/internal.h — what the core's modules share: struct raft and each module's contract.
 *
 * Only the core's own .c files include this. Every function here runs on the caller's thread inside one
 * raft_* public call; none of them allocate except where the contract says "may fail: RAFT_ENOMEM".
 */
#ifndef DISCOVERYD_STORE_RAFT_INTERNAL_H
#define DISCOVERYD_STORE_RAFT_INTERNAL_H

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include "store/raft/raft.h"

/* ---------------- log.c: the in-memory log ----------------
 * entries[0] has index offset+1; offset_term is the term of entry `offset` (the entry just before
 * the first in memory, known from a snapshot or a compaction). stable: the last index reported
 * durable. handed: the last index handed out in a ready (stable <= handed; they differ only while a
 * leader's writes advanced with raft_advance_async() are not yet reported by raft_durable_to()). The log
 * owns every entry's data. */
struct raft_log {
    const struct raft_alloc *a;
    struct raft_entry *entries;
    size_t n, cap;
    uint64_t offset, offset_term;
    uint64_t stable;
    uint64_t handed;
};
void raft_log_init(struct raft_log *l, const struct raft_alloc *a);
void raft_log_free(struct raft_log *l);
uint64_t raft_log_last_index(const struct raft_log *l);
uint64_t raft_log_last_term(const struct raft_log *l);
/* Term of idx, or 0 when idx is before offset or after the last entry. */
uint64_t raft_log_term(const struct raft_log *l, uint64_t idx);
struct raft_entry *raft_log_get(const struct raft_log *l, uint64_t idx);
/* Append copies of es (es[0].index must be last+1). All or nothing. May fail: RAFT_ENOMEM. */
int raft_log_append(struct raft_log *l, const struct raft_entry *es, size_t n);
/* Make room for n more entries. May fail: RAFT_ENOMEM. */
int raft_log_reserve(struct raft_log *l, size_t n);
/* Drop entries with index >= from (never committed ones: the caller asserts). */
void raft_log_truncate(struct raft_log *l, uint64_t from);
/* Drop entries with index <= upto (upto <= last). */
void raft_log_compact(struct raft_log *l, uint64_t upto);
/* Empty the log and restart it after (index, term) (snapshot install). */
void raft_log_restart(struct raft_log *l, uint64_t index, uint64_t term);
/* Raft §5.4.1: is (idx, term) at least as up to date as this log? */
bool raft_log_up_to_date(const struct raft_log *l, uint64_t idx, uint64_t term);
void raft_entry_free_data(const struct raft_alloc *a, struct raft_entry *e);

/* ---------------- progress.c: the leader's view of each voter ---------------- */
enum raft_pr_state { RAFT_PR_PROBE = 0, RAFT_PR_REPLICATE, RAFT_PR_SNAPSHOT };
struct raft_inflights {
    uint64_t buf[RAFT_MAX_INFLIGHT];
    unsigned start, count, size;
};
struct raft_progress {
    uint64_t id;
    uint64_t match, next;
    uint64_t pending_snapshot; /* SNAPSHOT state: the snapshot index sent */
    uint64_t read_ack;         /* highest read-index sequence this voter echoed */
    unsigned state_ticks;      /* leader ticks spent in the current state */
    uint8_t state;
    bool probe_sent;    /* PROBE: one append outstanding, pause until an answer */
    bool recent_active; /* heard from since the last check-quorum round */
    int8_t vote;        /* campaign: 0 unknown, 1 granted, -1 rejected */
    struct raft_inflights infl;
};
void raft_pr_reset(struct raft_progress *pr, uint64_t id, uint64_t next, unsigned max_inflight);
void raft_pr_become_probe(struct raft_progress *pr);
void raft_pr_become_replicate(struct raft_progress *pr);
void raft_pr_become_snapshot(struct raft_progress *pr, uint64_t snap_index);
/* An acknowledgment up to idx: true if it moved match forward. */
bool raft_pr_maybe_update(struct raft_progress *pr, uint64_t idx);
/* A rejection of prev index `rejected` with the follower's hint: true if next moved (not stale). */
bool raft_pr_maybe_decr(struct raft_progress *pr, uint64_t rejected, uint64_t hint);
bool raft_pr_paused(const struct raft_progress *pr);
void raft_pr_sent(struct raft_progress *pr, uint64_t last_sent, size_t n_entries);
bool raft_infl_full(const struct raft_inflights *in);
void raft_infl_add(struct raft_inflights *in, uint64_t idx);
void raft_infl_free_to(struct raft_inflights *in, uint64_t idx);

/* ---------------- the core ---------------- */
struct raft_read_req {
    uint64_t ctx, index, seq;
};

struct raft {
    struct raft_config cfg;
    struct raft_alloc alloc;
    uint64_t id;
    uint64_t term, vote, lead;
    enum raft_role role;
    struct raft_log log;
    uint64_t commit, applied;

    /* membership (membership.c): the latest configuration in the log, in effect once appended */
    struct raft_conf conf;
    uint64_t conf_index; /* index of the entry that set conf; 0 = bootstrap/snapshot */
    struct raft_progress prs[RAFT_MAX_NODES];
    unsigned n_prs;

    /* snapshots (snapshot.c) */
    struct raft_snapshot snap; /* the latest durable snapshot (data may be NULL: none) */
    bool has_snap;
    struct raft_snapshot pending_snap; /* received, waiting to be handed out in a ready */
    bool has_pending_snap;

    /* timers (election.c) */
    unsigned election_elapsed, heartbeat_elapsed, randomized_timeout;
    uint64_t rng;

    /* leader state */
    uint64_t lead_transferee;
    uint64_t leader_first_index; /* the no-op this leader appended */
    uint64_t uncommitted_bytes;
    bool need_bcast; /* proposals appended since the last broadcast */

    /* read index (readindex.c) */
    struct raft_read_req *reads;
    size_t n_reads, cap_reads;
    uint64_t read_seq;
    struct raft_read_state *read_states;
    size_t n_read_states, cap_read_states;

    /* outbox and ready bookkeeping (raft.c) */
    /* Queued messages; an APPEND's entries and a SNAPSHOT's image are resolved at raft_ready().
     * out_lt[i]: term of an APPEND's last entry, to drop it if the log was rewritten meanwhile. */
    struct raft_message *out;
    uint64_t *out_lt;
    size_t n_out, cap_out;
    bool need_heartbeat; /* read-index requests since the last broadcast */
    struct raft_hard_state prev_hs;
    enum raft_role prev_role;
    uint64_t prev_lead;

    char errmsg[128];
};

/* raft.c */
void *raft_malloc(struct raft *r, size_t n);
void *raft_realloc(struct raft *r, void *p, size_t n);
void raft_free_mem(struct raft *r, void *p);
/* Queue a message; may fail (RAFT_ENOMEM, the message is lost, which Raft tolerates). */
int raft_send(struct raft *r, const struct raft_message *m, uint64_t last_term);
struct raft_progress *raft_pr(struct raft *r, uint64_t id);
bool raft_is_voter(const struct raft *r);
unsigned raft_quorum(const struct raft *r);
/* Append entries at the end of the log and apply any configuration among them. */
int raft_append(struct raft *r, const struct raft_entry *es, size_t n);
void raft_commit_to(struct raft *r, uint64_t idx);

/* election.c */
void raft_become_follower(struct raft *r, uint64_t term, uint64_t lead);
int raft_become_leader(struct raft *r);
int raft_campaign(struct raft *r, bool pre_vote, bool transfer);
void raft_reset_timeout(struct raft *r);
int raft_tick_election(struct raft *r);
int raft_tick_leader(struct raft *r);
int raft_handle_vote(struct raft *r, const struct raft_message *m);
int raft_handle_vote_resp(struct raft *r, const struct raft_message *m);
int raft_handle_timeout_now(struct raft *r, const struct raft_message *m);
bool raft_promotable(const struct raft *r);

/* replication.c */
int raft_send_append(struct raft *r, struct raft_progress *pr, bool send_empty);
int raft_bcast_append(struct raft *r);
int raft_bcast_heartbeat(struct raft *r);
int raft_handle_append(struct raft *r, const struct raft_message *m);
int raft_handle_append_resp(struct raft *r, const struct raft_message *m);
int raft_handle_heartbeat(struct raft *r, const struct raft_message *m);
int raft_handle_heartbeat_resp(struct raft *r, const struct raft_message *m);
/* Leader: advance commit by counting durable matches; true if it moved. */
bool raft_maybe_commit(struct raft *r);
int raft_after_commit(struct raft *r);

/* snapshot.c */
int raft_send_snapshot(struct raft *r, struct raft_progress *pr);
int raft_handle_snapshot(struct raft *r, const struct raft_message *m);
void raft_snapshot_release(struct raft *r, struct raft_snapshot *s);

/* readindex.c */
void raft_reads_clear(struct raft *r);
int raft_reads_check(struct raft *r);

/* membership.c */
void raft_conf_set(struct raft *r, const struct raft_conf *c, uint64_t index);
/* After the log lost entries (truncation): re-derive the configuration from what remains. */
void raft_conf_recompute(struct raft *r);
/* The configuration in effect at idx (snapshot <= idx <= last). */
int raft_conf_at(struct raft *r, uint64_t idx, struct raft_conf *out);
/* A leader removed by a committed configuration steps down. */
int raft_check_removed_leader(struct raft *r);

#define RAFT_ERR(r, code, ...) (snprintf((r)->errmsg, sizeof((r)->errmsg), __VA_ARGS__), (code))

#endif
