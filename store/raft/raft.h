/* store/raft/raft.h — the public contract of discoveryd's Raft core.
 *
 * A pure, deterministic Raft state machine in etcd/raft's shape. It owns the in-memory log, the
 * term/vote, the membership and the per-follower progress; it never touches a socket, a file, a
 * clock, a thread or rand(). Time arrives only through raft_tick(), randomness only from
 * config.seed, memory only through config.alloc. One caller (the node glue on the store thread, or
 * the simulation) drives one struct raft; nothing here is thread-safe and nothing needs a lock.
 *
 * The driving loop (the ORDERING CONTRACT):
 *
 *   inputs:  raft_step(msg) raft_tick() raft_propose() raft_read_index() raft_propose_conf_change()
 *            raft_transfer_leadership() raft_compact()             (any order, any number)
 *   then, while raft_has_ready():
 *     raft_ready(&rd)                          -- no other raft_* call until raft_advance[_async]()
 *     1. persist rd.snapshot (if any), then rd.entries: the log is truncated from
 *        rd.entries[0].index and these appended; then rd.hard_state (if has_hard_state).
 *        The three may go in one atomic write. ALL OF IT MUST BE DURABLE BEFORE STEP 2: a vote
 *        response promises a persisted vote, an append response promises persisted entries.
 *     2. send rd.messages (in any order; loss, duplication and reordering are tolerated).
 *     3. install rd.snapshot into the state machine (if any), then apply rd.committed in order.
 *        rd.read_states: serve each read once the state machine has applied read_state.index.
 *     4. raft_advance(&rd): tells the core that everything in rd is durable and applied.
 *   The leader counts its own log toward a commit quorum only for entries acknowledged durable (by
 *   raft_advance(), or raft_durable_to() below), so its own vote never outruns its disk. Committed
 *   entries are handed out only once they are durable locally. Pointers in rd are valid until
 *   raft_advance() (or raft_advance_async()).
 *
 * Glue that persists on another thread (group commit) keeps its inputs queued while a ready is
 * with the WAL thread and calls raft_advance() when the write is reported durable; many proposals
 * made before raft_ready() travel in one ready and one append message per follower.
 *
 * The pipeline (optional): a ready without a snapshot may be advanced before its writes are durable,
 * so that the core takes input and hands out later readies (with the entries that follow) while the
 * writes run: the caller starts rd's writes, applies rd.committed (those entries are durable
 * already), calls raft_advance_async(&rd), and sends rd.messages
 *   - at once if rd.early_send (a leader's ready with no new term or vote: its appends, heartbeats
 *     and refusals promise nothing about its own new writes; Raft thesis §10.2.1);
 *   - otherwise only once rd's writes are durable (a follower's append response promises its
 *     entries, a vote its vote): the caller keeps copies of them until then, even for a ready with
 *     nothing to write, if earlier writes are still under way.
 * When a write is durable the caller reports raft_durable_to(index, term) of its last entry. Only
 * then does the core count its own log toward a commit quorum (a leader) and hand those entries out
 * as committed (a majority of others may commit them first; they are still applied here only once
 * durable here). Writes MUST become durable in the order their readies were handed out (one FIFO
 * write queue): raft_advance() of a later ready also vouches for every entry handed out before it,
 * and no other raft_* call (raft_durable_to() included) is made while a ready is out. Entries of a
 * ready advanced with raft_advance_async() may be truncated away in the core (a new leader's log)
 * before the write is durable: the caller's write must own a copy of them, not rd's pointers.
 *
 * Errors: functions return 0 or a small positive RAFT_E* code; raft_errmsg() says more.
 */
#ifndef DISCOVERYD_STORE_RAFT_RAFT_H
#define DISCOVERYD_STORE_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum raft_errcode {
    RAFT_ENOMEM = 1,     /* an allocation failed; the core's state is unchanged or still consistent */
    RAFT_EINVAL = 2,     /* bad argument */
    RAFT_ENOTLEADER = 3, /* this node is not the leader: forward to raft_leader() */
    RAFT_EBUSY = 4,      /* a conf change is pending, a transfer runs, or the uncommitted cap is hit */
    RAFT_EMALFORMED = 5, /* codec: truncated, oversized or inconsistent input */
    RAFT_EVERSION = 6,   /* codec: unknown format version */
    RAFT_ETOOSMALL = 7,  /* codec: output buffer too small */
};
const char *raft_strerror(int code);

#define RAFT_MAX_NODES 16     /* voters in one configuration */
#define RAFT_MAX_INFLIGHT 256 /* upper bound for config.max_inflight */

/* Allocation hook: every byte the core holds comes from here (tests fail the Nth call). */
struct raft_alloc {
    void *(*malloc)(void *ctx, size_t size);
    void *(*realloc)(void *ctx, void *ptr, size_t size);
    void (*free)(void *ctx, void *ptr);
    void *ctx;
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1, /* a proposal: data is the application's command */
    RAFT_ENTRY_NOOP = 2,   /* appended by each new leader; the application skips it */
    RAFT_ENTRY_CONF = 3,   /* a membership: data encodes the full voter set (raft_conf_decode) */
};

struct raft_entry {
    uint64_t term;
    uint64_t index;
    uint8_t type;
    uint32_t len;
    uint8_t *data;
};

/* A voter set. Ids are non-zero and unique. */
struct raft_conf {
    uint32_t n;
    uint64_t ids[RAFT_MAX_NODES];
};
bool raft_conf_has(const struct raft_conf *c, uint64_t id);

struct raft_snapshot_meta {
    uint64_t index; /* last log index the snapshot covers */
    uint64_t term;  /* term of that entry */
    struct raft_conf conf;
};
struct raft_snapshot {
    struct raft_snapshot_meta meta;
    uint64_t len;
    uint8_t *data; /* the application's state machine image */
};

struct raft_hard_state {
    uint64_t term;
    uint64_t vote;   /* 0 = none in this term */
    uint64_t commit; /* persisted as a hint; restarting below the true commit is safe */
};

enum raft_msg_type {
    RAFT_MSG_APPEND = 1,     /* index=prev index, log_term=prev term, entries, commit */
    RAFT_MSG_APPEND_RESP,    /* index=last matched index, or (reject) the prev index refused;
                                reject: hint=a last index worth probing, log_term=its term */
    RAFT_MSG_VOTE,           /* index/log_term = candidate's last log index/term; transfer */
    RAFT_MSG_VOTE_RESP,      /* reject */
    RAFT_MSG_PRE_VOTE,       /* term = the term the sender would campaign in */
    RAFT_MSG_PRE_VOTE_RESP,  /* reject */
    RAFT_MSG_HEARTBEAT,      /* commit, ctx = latest read-index sequence */
    RAFT_MSG_HEARTBEAT_RESP, /* ctx echoed */
    RAFT_MSG_SNAPSHOT,       /* snapshot */
    RAFT_MSG_TIMEOUT_NOW,    /* leadership transfer: campaign now */
};
#define RAFT_MSG_TYPE_MAX RAFT_MSG_TIMEOUT_NOW

struct raft_message {
    uint8_t type;
    bool reject;
    bool transfer; /* VOTE/PRE_VOTE sent because of a leadership transfer: bypasses the lease */
    uint64_t from, to, term;
    uint64_t index, log_term, commit, hint, ctx;
    uint32_t n_entries;
    struct raft_entry *entries;
    struct raft_snapshot snapshot;
};

enum raft_role { RAFT_FOLLOWER = 0, RAFT_PRE_CANDIDATE, RAFT_CANDIDATE, RAFT_LEADER };

struct raft_read_state {
    uint64_t ctx;   /* the caller's value given to raft_read_index() */
    uint64_t index; /* serve the read once applied >= index */
};

struct raft_ready {
    bool has_hard_state;
    struct raft_hard_state hard_state;
    bool soft_state_changed; /* role or leader changed since the last ready */
    enum raft_role role;
    uint64_t lead;
    const struct raft_snapshot *snapshot; /* received: persist, then install; NULL if none */
    const struct raft_entry *entries;     /* persist (truncating from entries[0].index) */
    size_t n_entries;
    const struct raft_message *messages; /* send after the above is durable */
    size_t n_messages;
    const struct raft_entry *committed; /* apply in order */
    size_t n_committed;
    const struct raft_read_state *read_states;
    size_t n_read_states;
    bool early_send; /* with raft_advance_async(): rd.messages may go before rd's writes are durable */
};

struct raft_config {
    uint64_t id;                    /* this node, non-zero */
    struct raft_conf bootstrap;     /* fresh cluster member: the initial voters (must contain id);
                                       n=0: join an existing cluster or restart from state */
    const void *bootstrap_ctx;      /* context stored in the bootstrap configuration entry (every founding */
    uint32_t bootstrap_ctx_len;     /* member must give the same bytes); 0: none */
    unsigned election_tick;         /* followers campaign after [election_tick, 2*election_tick) */
    unsigned heartbeat_tick;        /* < election_tick */
    unsigned max_inflight;          /* appends in flight per follower in replicate state, 1..256 */
    uint64_t max_msg_bytes;         /* entry bytes per append message (at least one entry is sent) */
    uint64_t max_uncommitted_bytes; /* leader refuses proposals beyond this; 0 = no cap */
    bool pre_vote;
    bool check_quorum;
    uint64_t seed;                  /* election-timeout randomness */
    const struct raft_alloc *alloc; /* NULL: libc malloc */
};
void raft_config_defaults(struct raft_config *cfg);

/* What a restarting node read back from its disk (everything acknowledged by raft_advance). */
struct raft_persisted {
    struct raft_hard_state hard_state;
    const struct raft_snapshot *snapshot; /* NULL if none */
    const struct raft_entry *entries;     /* contiguous, following the snapshot (or from index 1) */
    size_t n_entries;
};

struct raft;

/* Create a core. st may be NULL (fresh). Everything in st is copied. On error *out is NULL and
 * errmsg (if non-NULL) holds a one-line reason. */
int raft_new(struct raft **out, const struct raft_config *cfg, const struct raft_persisted *st, char *errmsg,
             size_t errlen);
void raft_free(struct raft *r);

/* Inputs. Each returns 0 or a RAFT_E* code; on error the state is still consistent. */
int raft_step(struct raft *r, const struct raft_message *m); /* m is only read, never kept */
int raft_tick(struct raft *r);
int raft_propose(struct raft *r, const void *data, uint32_t len);
/* Several proposals at once; all or none are appended. */
int raft_propose_batch(struct raft *r, const void *const *datas, const uint32_t *lens, size_t n);
/* Linearizable read barrier (leader only): a read_state {ctx, index} appears in a later ready once
 * a quorum confirmed this leadership. Pending reads are dropped when leadership is lost (the ready
 * reports the role change; the caller fails them). */
int raft_read_index(struct raft *r, uint64_t ctx);
enum raft_conf_op {
    RAFT_CONF_ADD = 1,
    RAFT_CONF_REMOVE = 2,
    RAFT_CONF_UPDATE = 3, /* voter id stays: only the context changes (under the same rules) */
};
/* One server at a time; refused with RAFT_EBUSY while a previous change is uncommitted or before
 * this leader committed an entry of its term. Removing the leader is allowed: it steps down once
 * the change commits. */
int raft_propose_conf_change(struct raft *r, enum raft_conf_op op, uint64_t id);
/* The same, with the application's context stored in the entry beside the new voter set (opaque to
 * the core: the glue keeps its members' addresses there; raft_conf_decode_ctx reads it back). */
int raft_propose_conf_change_ctx(struct raft *r, enum raft_conf_op op, uint64_t id, const void *ctx,
                                 uint32_t ctx_len);
int raft_transfer_leadership(struct raft *r, uint64_t to);
/* The application took a snapshot of its state at `index` (<= last applied). The core keeps a copy
 * of data to send to lagging followers and drops log entries up to index - trailing. *meta (if
 * non-NULL) receives what to persist beside the image: index, term and the configuration. Call it
 * outside a ready/advance window. */
int raft_compact(struct raft *r, uint64_t index, const void *data, uint64_t len, uint64_t trailing,
                 struct raft_snapshot_meta *meta);

bool raft_has_ready(const struct raft *r);
void raft_ready(struct raft *r, struct raft_ready *rd);
void raft_advance(struct raft *r, const struct raft_ready *rd);
/* The pipeline (above): rd's writes are under way, rd.committed applied, rd.messages sent (early_send) or
 * held by the caller until rd's writes are durable. RAFT_EINVAL (nothing done) for a ready with a
 * snapshot, which is always persisted and installed before raft_advance(). */
int raft_advance_async(struct raft *r, const struct raft_ready *rd);
/* The writes of entries up to index (that entry's term: term) are durable. Entries the log no longer
 * holds at that term (truncated meanwhile) are ignored. */
void raft_durable_to(struct raft *r, uint64_t index, uint64_t term);

/* Introspection (for the glue's status and for tests). */
uint64_t raft_id(const struct raft *r);
enum raft_role raft_role(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint64_t raft_vote(const struct raft *r);
uint64_t raft_leader(const struct raft *r);
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_applied_index(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
uint64_t raft_first_index(const struct raft *r); /* first entry still in memory */
uint64_t raft_snapshot_index(const struct raft *r);
const struct raft_conf *raft_configuration(const struct raft *r); /* latest, maybe uncommitted */
/* The configuration in force at log index idx (from the log in memory, else the snapshot's). */
void raft_configuration_at(struct raft *r, uint64_t idx, struct raft_conf *out);
/* Term of entry idx; 0 if it is not known (compacted beyond the snapshot or past the end). */
uint64_t raft_entry_term(const struct raft *r, uint64_t idx);
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t idx); /* NULL if absent */
const char *raft_errmsg(const struct raft *r);

/* ---- codec (codec.c): versioned, length-checked; malformed input is an error ---- */
/* Bytes needed to encode m. */
size_t raft_msg_size(const struct raft_message *m);
int raft_msg_encode(const struct raft_message *m, uint8_t *buf, size_t cap, size_t *len);
/* Decode buf into *m. Entry data and snapshot data point INTO buf (keep it alive while m is used);
 * the entries array is allocated with a (NULL: libc): release with raft_msg_release(). */
int raft_msg_decode(const uint8_t *buf, size_t len, struct raft_message *m, const struct raft_alloc *a);
void raft_msg_release(struct raft_message *m, const struct raft_alloc *a);
/* One log entry, as the WAL stores it. Decoded data points into buf. */
size_t raft_entry_size(const struct raft_entry *e);
int raft_entry_encode(const struct raft_entry *e, uint8_t *buf, size_t cap, size_t *len);
int raft_entry_decode(const uint8_t *buf, size_t len, struct raft_entry *e);
/* Hard state, fixed size. */
#define RAFT_HARD_STATE_SIZE 26
int raft_hard_state_encode(const struct raft_hard_state *hs, uint8_t *buf, size_t cap, size_t *len);
int raft_hard_state_decode(const uint8_t *buf, size_t len, struct raft_hard_state *hs);
/* A configuration entry's payload: the voter set, and optionally an opaque context of at most
 * RAFT_MAX_CONF_CTX bytes (decoded, *ctx points into buf; NULL and 0 when there is none). */
#define RAFT_MAX_CONF_CTX 16384
size_t raft_conf_size(const struct raft_conf *c);
size_t raft_conf_size_ctx(const struct raft_conf *c, size_t ctx_len);
int raft_conf_encode(const struct raft_conf *c, uint8_t *buf, size_t cap, size_t *len);
int raft_conf_encode_ctx(const struct raft_conf *c, const void *ctx, size_t ctx_len, uint8_t *buf, size_t cap,
                         size_t *len);
int raft_conf_decode(const uint8_t *buf, size_t len, struct raft_conf *c);
int raft_conf_decode_ctx(const uint8_t *buf, size_t len, struct raft_conf *c, const uint8_t **ctx,
                         size_t *ctx_len);

#endif
