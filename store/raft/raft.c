/* store/raft/raft.c — the core's front door: creation, restart, step dispatch, tick, proposals,
 * and the ready/advance hand-off that enforces the ordering contract described in raft.h.
 *
 * The term rules of raft_step() follow Raft §5.1 with the thesis' §9.6 (pre-vote) and §6.2
 * (check-quorum lease) refinements; each role's handling lives in its own module.
 */
#include <stdio.h>
#include <stdlib.h>
#include "store/raft/internal.h"

static void *libc_malloc(void *ctx, size_t n)
{
    return malloc(n);
}
static void *libc_realloc(void *ctx, void *p, size_t n)
{
    return realloc(p, n);
}
static void libc_free(void *ctx, void *p)
{
    free(p);
}
static const struct raft_alloc libc_alloc = {libc_malloc, libc_realloc, libc_free, NULL};

const char *raft_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
    case RAFT_ENOMEM:
        return "out of memory";
    case RAFT_EINVAL:
        return "invalid argument";
    case RAFT_ENOTLEADER:
        return "not the leader";
    case RAFT_EBUSY:
        return "busy";
    case RAFT_EMALFORMED:
        return "malformed input";
    case RAFT_EVERSION:
        return "unknown format version";
    case RAFT_ETOOSMALL:
        return "buffer too small";
    default:
        return "unknown error";
    }
}

void raft_config_defaults(struct raft_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->election_tick = 10;
    cfg->heartbeat_tick = 1;
    cfg->max_inflight = 64;
    cfg->max_msg_bytes = 1 << 20;
    cfg->max_uncommitted_bytes = 64u << 20;
    cfg->pre_vote = true;
    cfg->check_quorum = true;
}

void *raft_malloc(struct raft *r, size_t n)
{
    return r->alloc.malloc(r->alloc.ctx, n);
}
void *raft_realloc(struct raft *r, void *p, size_t n)
{
    return r->alloc.realloc(r->alloc.ctx, p, n);
}
void raft_free_mem(struct raft *r, void *p)
{
    if (p != NULL)
        r->alloc.free(r->alloc.ctx, p);
}

bool raft_conf_has(const struct raft_conf *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->ids[i] == id)
            return true;
    return false;
}

struct raft_progress *raft_pr(struct raft *r, uint64_t id)
{
    for (unsigned i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

bool raft_is_voter(const struct raft *r)
{
    return raft_conf_has(&r->conf, r->id);
}

unsigned raft_quorum(const struct raft *r)
{
    return r->conf.n / 2 + 1;
}

int raft_send(struct raft *r, const struct raft_message *m, uint64_t last_term)
{
    if (r->n_out == r->cap_out) {
        size_t cap = r->cap_out ? r->cap_out * 2 : 16;
        struct raft_message *o = raft_realloc(r, r->out, cap * sizeof(*o));
        if (o == NULL)
            return RAFT_ENOMEM;
        r->out = o;
        uint64_t *lt = raft_realloc(r, r->out_lt, cap * sizeof(*lt));
        if (lt == NULL)
            return RAFT_ENOMEM; /* r->out grew; cap_out stays, which is only conservative */
        r->out_lt = lt;
        r->cap_out = cap;
    }
    r->out[r->n_out] = *m;
    r->out[r->n_out].from = r->id;
    r->out_lt[r->n_out] = last_term;
    r->n_out++;
    return 0;
}

void raft_commit_to(struct raft *r, uint64_t idx)
{
    if (idx <= r->commit)
        return;
    assert(idx <= raft_log_last_index(&r->log));
    /* The leader's uncommitted-bytes budget shrinks by what it proposed and has now committed. */
    if (r->role == RAFT_LEADER) {
        uint64_t from = r->commit + 1 > r->leader_first_index ? r->commit + 1 : r->leader_first_index;
        for (uint64_t i = from; i <= idx; i++) {
            const struct raft_entry *e = raft_log_get(&r->log, i);
            uint64_t len = e ? e->len : 0;
            r->uncommitted_bytes = r->uncommitted_bytes > len ? r->uncommitted_bytes - len : 0;
        }
    }
    r->commit = idx;
}

int raft_append(struct raft *r, const struct raft_entry *es, size_t n)
{
    int rv = raft_log_append(&r->log, es, n);
    if (rv != 0)
        return rv;
    /* Thesis §4.1: a server uses the latest configuration in its log, committed or not. */
    for (size_t i = n; i-- > 0;) {
        if (es[i].type != RAFT_ENTRY_CONF)
            continue;
        struct raft_conf c;
        if (raft_conf_decode(es[i].data, es[i].len, &c) == 0)
            raft_conf_set(r, &c, es[i].index);
        break;
    }
    return 0;
}

static int fail_new(struct raft *r, int code, char *errmsg, size_t errlen, const char *why)
{
    if (errmsg != NULL && errlen > 0)
        snprintf(errmsg, errlen, "%s", why);
    raft_free(r);
    return code;
}

int raft_new(struct raft **out, const struct raft_config *cfg, const struct raft_persisted *st, char *errmsg,
             size_t errlen)
{
    *out = NULL;
    if (cfg->id == 0 || cfg->heartbeat_tick == 0 || cfg->election_tick <= cfg->heartbeat_tick ||
        cfg->max_inflight == 0 || cfg->max_inflight > RAFT_MAX_INFLIGHT ||
        cfg->bootstrap.n > RAFT_MAX_NODES) {
        if (errmsg != NULL && errlen > 0)
            snprintf(errmsg, errlen, "invalid raft configuration");
        return RAFT_EINVAL;
    }
    const struct raft_alloc *a = cfg->alloc != NULL ? cfg->alloc : &libc_alloc;
    struct raft *r = a->malloc(a->ctx, sizeof(*r));
    if (r == NULL)
        return RAFT_ENOMEM;
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
    r->alloc = *a;
    r->cfg.alloc = &r->alloc;
    r->id = cfg->id;
    raft_log_init(&r->log, &r->alloc);
    /* splitmix64 over (seed, id): each node draws its own timeouts from the one seed. */
    r->rng = cfg->seed ^ (cfg->id * 0x9E3779B97F4A7C15ull);

    bool fresh = st == NULL || (st->snapshot == NULL && st->n_entries == 0 && st->hard_state.term == 0);
    if (!fresh) {
        if (st->snapshot != NULL) {
            const struct raft_snapshot *s = st->snapshot;
            r->snap.meta = s->meta;
            r->snap.len = s->len;
            if (s->len > 0) {
                r->snap.data = raft_malloc(r, s->len);
                if (r->snap.data == NULL)
                    return fail_new(r, RAFT_ENOMEM, errmsg, errlen, "out of memory");
                memcpy(r->snap.data, s->data, s->len);
            }
            r->has_snap = true;
            raft_log_restart(&r->log, s->meta.index, s->meta.term);
            r->conf = s->meta.conf;
            r->commit = r->applied = s->meta.index;
        }
        if (st->n_entries > 0 && st->entries[0].index != raft_log_last_index(&r->log) + 1)
            return fail_new(r, RAFT_EINVAL, errmsg, errlen, "persisted entries do not follow the snapshot");
        for (size_t i = 1; i < st->n_entries; i++)
            if (st->entries[i].index != st->entries[i - 1].index + 1 ||
                st->entries[i].term < st->entries[i - 1].term)
                return fail_new(r, RAFT_EINVAL, errmsg, errlen, "persisted entries are not a log");
        int rv = raft_log_append(&r->log, st->entries, st->n_entries);
        if (rv != 0)
            return fail_new(r, rv, errmsg, errlen, "out of memory");
        r->log.stable = r->log.handed = raft_log_last_index(&r->log);
        r->term = st->hard_state.term;
        r->vote = st->hard_state.vote;
        uint64_t c = st->hard_state.commit;
        if (c > raft_log_last_index(&r->log))
            c = raft_log_last_index(&r->log);
        if (c > r->commit)
            r->commit = c;
        r->prev_hs = st->hard_state;
        raft_conf_recompute(r);
    } else if (cfg->bootstrap.n > 0) {
        if (!raft_conf_has(&cfg->bootstrap, cfg->id))
            return fail_new(r, RAFT_EINVAL, errmsg, errlen, "bootstrap configuration lacks this node");
        /* Every founding member writes the same first entry: term 1, the initial voters. A member
         * that joins later learns it (or a snapshot holding it) from the leader. */
        uint8_t buf[2 + 8 * RAFT_MAX_NODES + 4 + RAFT_MAX_CONF_CTX];
        size_t len;
        int rv = raft_conf_encode_ctx(&cfg->bootstrap, cfg->bootstrap_ctx, cfg->bootstrap_ctx_len, buf,
                                      sizeof(buf), &len);
        if (rv != 0)
            return fail_new(r, RAFT_EINVAL, errmsg, errlen, "invalid bootstrap configuration");
        struct raft_entry e = {
            .term = 1, .index = 1, .type = RAFT_ENTRY_CONF, .len = (uint32_t)len, .data = buf};
        r->term = 1;
        rv = raft_append(r, &e, 1);
        if (rv != 0)
            return fail_new(r, rv, errmsg, errlen, "out of memory");
        r->commit = 1;
    }
    r->role = RAFT_FOLLOWER;
    r->prev_role = RAFT_FOLLOWER;
    raft_reset_timeout(r);
    *out = r;
    return 0;
}

void raft_snapshot_release(struct raft *r, struct raft_snapshot *s)
{
    raft_free_mem(r, s->data);
    memset(s, 0, sizeof(*s));
}

void raft_free(struct raft *r)
{
    if (r == NULL)
        return;
    raft_log_free(&r->log);
    raft_snapshot_release(r, &r->snap);
    raft_snapshot_release(r, &r->pending_snap);
    raft_free_mem(r, r->out);
    raft_free_mem(r, r->out_lt);
    raft_free_mem(r, r->reads);
    raft_free_mem(r, r->read_states);
    struct raft_alloc a = r->alloc;
    a.free(a.ctx, r);
}

static bool from_leader(uint8_t type)
{
    return type == RAFT_MSG_APPEND || type == RAFT_MSG_HEARTBEAT || type == RAFT_MSG_SNAPSHOT;
}

/* Reject what a correct peer never sends, so a bad message cannot reach an assert. */
static int validate(const struct raft *r, const struct raft_message *m)
{
    if (m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || m->from == 0 || m->from == r->id || m->term == 0)
        return RAFT_EINVAL;
    if (m->n_entries > 0) {
        if (m->type != RAFT_MSG_APPEND || m->entries == NULL)
            return RAFT_EINVAL;
        uint64_t t = m->log_term;
        for (uint32_t i = 0; i < m->n_entries; i++) {
            const struct raft_entry *e = &m->entries[i];
            if (e->index != m->index + 1 + i || e->term < t || e->term > m->term ||
                (e->len > 0 && e->data == NULL))
                return RAFT_EINVAL;
            t = e->term;
        }
    }
    if (m->type == RAFT_MSG_APPEND && m->log_term > m->term)
        return RAFT_EINVAL;
    if (m->type == RAFT_MSG_SNAPSHOT &&
        (m->snapshot.meta.index == 0 || m->snapshot.meta.term == 0 || m->snapshot.meta.term > m->term ||
         m->snapshot.meta.conf.n > RAFT_MAX_NODES || (m->snapshot.len > 0 && m->snapshot.data == NULL)))
        return RAFT_EINVAL;
    return 0;
}

int raft_step(struct raft *r, const struct raft_message *m)
{
    int rv = validate(r, m);
    if (rv != 0)
        return RAFT_ERR(r, rv, "invalid message type %u from %llu", m->type, (unsigned long long)m->from);
    if (m->to != r->id)
        return 0;

    if (m->term > r->term) {
        if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE) {
            /* Thesis §6.2 (check-quorum lease): while we hear from a leader, ignore campaigns,
             * unless the leader itself asked for this one (transfer). */
            bool in_lease = r->cfg.check_quorum && r->lead != 0 && r->election_elapsed < r->cfg.election_tick;
            if (in_lease && !m->transfer)
                return 0;
        }
        if (m->type == RAFT_MSG_PRE_VOTE) {
            /* A pre-vote never changes our term (thesis §9.6). */
        } else if (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject) {
            /* A granted pre-vote carries the term the sender would vote in; nothing to adopt. */
        } else {
            raft_become_follower(r, m->term, from_leader(m->type) ? m->from : 0);
        }
    } else if (m->term < r->term) {
        if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
            (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
            /* A stale leader would otherwise never learn the new term: with check-quorum or
             * pre-vote its followers stop answering and it might keep leading a minority. */
            struct raft_message resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from, .term = r->term};
            return raft_send(r, &resp, 0);
        }
        if (m->type == RAFT_MSG_PRE_VOTE || m->type == RAFT_MSG_VOTE) {
            /* §5.1: answer a stale campaign with our term. Without this a candidate outside the
             * configurations of everyone ahead of it never learns the term it must exceed. */
            struct raft_message resp = {.type = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP
                                                                         : RAFT_MSG_PRE_VOTE_RESP,
                                        .to = m->from,
                                        .term = r->term,
                                        .reject = true};
            return raft_send(r, &resp, 0);
        }
        return 0;
    }

    switch (m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        return raft_handle_vote(r, m);
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        return raft_handle_vote_resp(r, m);
    case RAFT_MSG_APPEND:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAPSHOT:
        if (r->role == RAFT_LEADER) {
            /* Two leaders in one term cannot exist (§5.2); a correct peer never sends this. */
            return RAFT_ERR(r, RAFT_EINVAL, "leader message from %llu in my term",
                            (unsigned long long)m->from);
        }
        if (r->role != RAFT_FOLLOWER)
            raft_become_follower(r, r->term, m->from);
        if (m->type == RAFT_MSG_APPEND)
            return raft_handle_append(r, m);
        if (m->type == RAFT_MSG_HEARTBEAT)
            return raft_handle_heartbeat(r, m);
        return raft_handle_snapshot(r, m);
    case RAFT_MSG_APPEND_RESP:
        if (r->role == RAFT_LEADER)
            return raft_handle_append_resp(r, m);
        return 0;
    case RAFT_MSG_HEARTBEAT_RESP:
        if (r->role == RAFT_LEADER)
            return raft_handle_heartbeat_resp(r, m);
        return 0;
    case RAFT_MSG_TIMEOUT_NOW:
        return raft_handle_timeout_now(r, m);
    }
    return 0;
}

int raft_tick(struct raft *r)
{
    if (r->role == RAFT_LEADER)
        return raft_tick_leader(r);
    return raft_tick_election(r);
}

int raft_propose_batch(struct raft *r, const void *const *datas, const uint32_t *lens, size_t n)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ERR(r, RAFT_ENOTLEADER, "not the leader");
    if (r->lead_transferee != 0)
        return RAFT_ERR(r, RAFT_EBUSY, "leadership transfer in progress");
    if (n == 0)
        return 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += lens[i];
    /* The cap never blocks a lone entry, so one large proposal can still make progress. */
    if (r->cfg.max_uncommitted_bytes > 0 && r->uncommitted_bytes > 0 &&
        r->uncommitted_bytes + bytes > r->cfg.max_uncommitted_bytes)
        return RAFT_ERR(r, RAFT_EBUSY, "too many uncommitted bytes");
    struct raft_entry one, *es = &one;
    if (n > 1) {
        es = raft_malloc(r, n * sizeof(*es));
        if (es == NULL)
            return RAFT_ENOMEM;
    }
    uint64_t idx = raft_log_last_index(&r->log);
    for (size_t i = 0; i < n; i++) {
        es[i].term = r->term;
        es[i].index = ++idx;
        es[i].type = RAFT_ENTRY_NORMAL;
        es[i].len = lens[i];
        es[i].data = (uint8_t *)datas[i];
    }
    int rv = raft_append(r, es, n);
    if (es != &one)
        raft_free_mem(r, es);
    if (rv != 0)
        return rv;
    r->uncommitted_bytes += bytes;
    r->need_bcast = true;
    return 0;
}

int raft_propose(struct raft *r, const void *data, uint32_t len)
{
    return raft_propose_batch(r, &data, &len, 1);
}

static uint64_t apply_limit(const struct raft *r)
{
    return r->commit < r->log.stable ? r->commit : r->log.stable;
}

static bool hs_differs(const struct raft *r)
{
    return r->term != r->prev_hs.term || r->vote != r->prev_hs.vote || r->commit != r->prev_hs.commit;
}

bool raft_has_ready(const struct raft *r)
{
    if (hs_differs(r) || r->role != r->prev_role || r->lead != r->prev_lead || r->has_pending_snap)
        return true;
    if (r->log.handed < raft_log_last_index(&r->log) || r->n_out > 0 || r->n_read_states > 0)
        return true;
    if (r->role == RAFT_LEADER && (r->need_bcast || r->need_heartbeat))
        return true;
    return apply_limit(r) > r->applied;
}

/* Fill in what queued messages refer to; drop appends whose entries left the log meanwhile. */
static void resolve_messages(struct raft *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n_out; i++) {
        struct raft_message *m = &r->out[i];
        if (m->type == RAFT_MSG_APPEND && m->n_entries > 0) {
            uint64_t last = m->index + m->n_entries;
            /* Log matching (§5.3): same index and term at the last entry means the same entries. */
            if (raft_log_term(&r->log, last) != r->out_lt[i] || raft_log_get(&r->log, m->index + 1) == NULL)
                continue;
            m->entries = raft_log_get(&r->log, m->index + 1);
        } else if (m->type == RAFT_MSG_SNAPSHOT) {
            if (!r->has_snap)
                continue;
            m->snapshot = r->snap;
        }
        if (k != i) {
            r->out[k] = *m;
            r->out_lt[k] = r->out_lt[i];
        }
        k++;
    }
    r->n_out = k;
}

void raft_ready(struct raft *r, struct raft_ready *rd)
{
    memset(rd, 0, sizeof(*rd));
    if (r->role == RAFT_LEADER) {
        /* Batching: every proposal since the last ready travels in one append per follower. */
        if (r->need_bcast) {
            r->need_bcast = false;
            raft_bcast_append(r);
        }
        if (r->need_heartbeat) {
            r->need_heartbeat = false;
            raft_bcast_heartbeat(r);
        }
    }
    rd->has_hard_state = hs_differs(r);
    rd->hard_state.term = r->term;
    rd->hard_state.vote = r->vote;
    rd->hard_state.commit = r->commit;
    rd->soft_state_changed = r->role != r->prev_role || r->lead != r->prev_lead;
    rd->role = r->role;
    rd->lead = r->lead;
    if (r->has_pending_snap)
        rd->snapshot = &r->pending_snap;
    uint64_t last = raft_log_last_index(&r->log);
    if (r->log.handed < last) {
        rd->entries = raft_log_get(&r->log, r->log.handed + 1);
        rd->n_entries = (size_t)(last - r->log.handed);
    }
    /* A leader's messages (appends, heartbeats, snapshots, refusals) promise nothing about its own
     * disk beyond its term and vote, so they may go out before its new entries are written (Raft
     * thesis §10.2.1); a follower's append response, a vote or a new term must wait. That term and
     * vote are durable: a leader was elected by votes answering requests sent only once they were
     * (a single voter sends nothing). */
    rd->early_send = r->role == RAFT_LEADER && !rd->snapshot &&
                   (!rd->has_hard_state || (rd->hard_state.term == r->prev_hs.term &&
                                            rd->hard_state.vote == r->prev_hs.vote));
    resolve_messages(r);
    rd->messages = r->out;
    rd->n_messages = r->n_out;
    uint64_t lim = apply_limit(r);
    if (!r->has_pending_snap && lim > r->applied) {
        rd->committed = raft_log_get(&r->log, r->applied + 1);
        rd->n_committed = (size_t)(lim - r->applied);
        assert(rd->committed != NULL);
    }
    rd->read_states = r->read_states;
    rd->n_read_states = r->n_read_states;
}

/* The leader counts its own log toward a commit quorum up to what is durable. */
static void self_durable(struct raft *r)
{
    if (r->role != RAFT_LEADER)
        return;
    struct raft_progress *self = raft_pr(r, r->id);
    if (self != NULL)
        raft_pr_maybe_update(self, r->log.stable);
    if (raft_maybe_commit(r))
        raft_after_commit(r);
}

/* Everything in rd except (when !durable) its entries' durability is done. */
static void advance(struct raft *r, const struct raft_ready *rd, bool durable)
{
    if (rd->snapshot != NULL) {
        assert(r->has_pending_snap);
        raft_snapshot_release(r, &r->snap);
        r->snap = r->pending_snap;
        memset(&r->pending_snap, 0, sizeof(r->pending_snap));
        r->has_pending_snap = false;
        r->has_snap = true;
        if (r->applied < r->snap.meta.index)
            r->applied = r->snap.meta.index;
    }
    if (rd->n_entries > 0) {
        uint64_t s = rd->entries[rd->n_entries - 1].index;
        if (s > r->log.handed && s <= raft_log_last_index(&r->log))
            r->log.handed = s;
        if (durable && s > r->log.stable && s <= raft_log_last_index(&r->log))
            r->log.stable = s;
    }
    if (rd->has_hard_state)
        r->prev_hs = rd->hard_state;
    r->prev_role = rd->role;
    r->prev_lead = rd->lead;
    if (rd->n_committed > 0)
        r->applied = rd->committed[rd->n_committed - 1].index;
    r->n_out = 0;
    r->n_read_states = 0;
    self_durable(r);
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
    advance(r, rd, true);
}

int raft_advance_async(struct raft *r, const struct raft_ready *rd)
{
    if (rd->snapshot != NULL)
        return RAFT_ERR(r, RAFT_EINVAL, "a received snapshot must be durable before it is advanced");
    advance(r, rd, false);
    return 0;
}

void raft_durable_to(struct raft *r, uint64_t index, uint64_t term)
{
    /* A write of entries the log has since lost (truncated, or replaced by a snapshot) says nothing:
     * same index and term means the same entries, and all before them (log matching, §5.3). */
    if (index <= r->log.stable || index > r->log.handed || raft_log_term(&r->log, index) != term)
        return;
    r->log.stable = index;
    self_durable(r);
}

uint64_t raft_id(const struct raft *r)
{
    return r->id;
}
enum raft_role raft_role(const struct raft *r)
{
    return r->role;
}
uint64_t raft_term(const struct raft *r)
{
    return r->term;
}
uint64_t raft_vote(const struct raft *r)
{
    return r->vote;
}
uint64_t raft_leader(const struct raft *r)
{
    return r->lead;
}
uint64_t raft_commit_index(const struct raft *r)
{
    return r->commit;
}
uint64_t raft_applied_index(const struct raft *r)
{
    return r->applied;
}
uint64_t raft_last_index(const struct raft *r)
{
    return raft_log_last_index(&r->log);
}
uint64_t raft_first_index(const struct raft *r)
{
    return r->log.offset + 1;
}
uint64_t raft_snapshot_index(const struct raft *r)
{
    return r->has_snap ? r->snap.meta.index : 0;
}
const struct raft_conf *raft_configuration(const struct raft *r)
{
    return &r->conf;
}
uint64_t raft_entry_term(const struct raft *r, uint64_t idx)
{
    return raft_log_term(&r->log, idx);
}
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t idx)
{
    return raft_log_get(&r->log, idx);
}
const char *raft_errmsg(const struct raft *r)
{
    return r->errmsg;
}
