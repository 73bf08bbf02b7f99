/* store/raft/membership.c — single-server membership changes (thesis §4.1-4.3) and leadership
 * transfer (thesis §3.10).
 *
 * A configuration entry holds the full voter set and takes effect on every server as soon as it is
 * appended; a truncation that removes it reverts to the previous one. Safety of one-at-a-time
 * changes needs two rules at the leader: no new change before the previous one committed, and
 * none before an entry of the leader's own term committed (Ongaro, raft-dev 2015).
 */
#include "store/raft/internal.h"

void raft_conf_set(struct raft *r, const struct raft_conf *c, uint64_t index)
{
    struct raft_progress old[RAFT_MAX_NODES];
    unsigned n_old = r->n_prs;
    memcpy(old, r->prs, sizeof(old[0]) * n_old);
    r->conf = *c;
    r->conf_index = index;
    r->n_prs = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        struct raft_progress *pr = &r->prs[r->n_prs++];
        unsigned j;
        for (j = 0; j < n_old; j++)
            if (old[j].id == c->ids[i])
                break;
        if (j < n_old) {
            *pr = old[j];
            continue;
        }
        raft_pr_reset(pr, c->ids[i], raft_log_last_index(&r->log) + 1, r->cfg.max_inflight);
        /* A newcomer gets one check-quorum round of grace before it counts as silent. */
        pr->recent_active = true;
        if (c->ids[i] == r->id)
            pr->match = r->log.stable;
    }
    if (r->lead_transferee != 0 && !raft_conf_has(c, r->lead_transferee))
        r->lead_transferee = 0;
}

int raft_conf_at(struct raft *r, uint64_t idx, struct raft_conf *out)
{
    for (uint64_t i = idx; i > r->log.offset; i--) {
        const struct raft_entry *e = raft_log_get(&r->log, i);
        if (e != NULL && e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, out) == 0)
            return 0;
    }
    if (r->has_snap) {
        *out = r->snap.meta.conf;
    } else if (r->has_pending_snap) {
        *out = r->pending_snap.meta.conf;
    } else {
        memset(out, 0, sizeof(*out));
    }
    return 0;
}

void raft_configuration_at(struct raft *r, uint64_t idx, struct raft_conf *out)
{
    raft_conf_at(r, idx, out);
}

void raft_conf_recompute(struct raft *r)
{
    struct raft_conf c;
    uint64_t at = 0;
    for (uint64_t i = raft_log_last_index(&r->log); i > r->log.offset; i--) {
        const struct raft_entry *e = raft_log_get(&r->log, i);
        if (e->type == RAFT_ENTRY_CONF && raft_conf_decode(e->data, e->len, &c) == 0) {
            at = i;
            break;
        }
    }
    if (at == 0)
        raft_conf_at(r, r->log.offset, &c);
    raft_conf_set(r, &c, at);
}

int raft_propose_conf_change(struct raft *r, enum raft_conf_op op, uint64_t id)
{
    return raft_propose_conf_change_ctx(r, op, id, NULL, 0);
}

int raft_propose_conf_change_ctx(struct raft *r, enum raft_conf_op op, uint64_t id, const void *ctx,
                                 uint32_t ctx_len)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ERR(r, RAFT_ENOTLEADER, "not the leader");
    if (r->lead_transferee != 0)
        return RAFT_ERR(r, RAFT_EBUSY, "leadership transfer in progress");
    if (r->conf_index > r->commit)
        return RAFT_ERR(r, RAFT_EBUSY, "a configuration change is pending");
    if (raft_log_term(&r->log, r->commit) != r->term)
        return RAFT_ERR(r, RAFT_EBUSY, "no entry of this term committed yet");
    struct raft_conf c = r->conf;
    if (id == 0)
        return RAFT_ERR(r, RAFT_EINVAL, "node id 0");
    if (op == RAFT_CONF_ADD) {
        if (raft_conf_has(&c, id) || c.n >= RAFT_MAX_NODES)
            return RAFT_ERR(r, RAFT_EINVAL, "cannot add %llu", (unsigned long long)id);
        c.ids[c.n++] = id;
    } else if (op == RAFT_CONF_REMOVE) {
        if (!raft_conf_has(&c, id) || c.n == 1)
            return RAFT_ERR(r, RAFT_EINVAL, "cannot remove %llu", (unsigned long long)id);
        uint32_t k = 0;
        for (uint32_t i = 0; i < c.n; i++)
            if (c.ids[i] != id)
                c.ids[k++] = c.ids[i];
        c.n = k;
    } else if (op == RAFT_CONF_UPDATE) {
        if (!raft_conf_has(&c, id))
            return RAFT_ERR(r, RAFT_EINVAL, "cannot update %llu", (unsigned long long)id);
    } else {
        return RAFT_ERR(r, RAFT_EINVAL, "unknown configuration operation");
    }
    uint8_t buf[2 + 8 * RAFT_MAX_NODES + 4 + RAFT_MAX_CONF_CTX];
    size_t len;
    int rv = raft_conf_encode_ctx(&c, ctx, ctx_len, buf, sizeof(buf), &len);
    if (rv != 0)
        return rv;
    struct raft_entry e = {.term = r->term,
                           .index = raft_log_last_index(&r->log) + 1,
                           .type = RAFT_ENTRY_CONF,
                           .len = (uint32_t)len,
                           .data = buf};
    rv = raft_append(r, &e, 1);
    if (rv != 0)
        return rv;
    r->need_bcast = true;
    /* With fewer voters the quorum may already hold our durable entries. */
    if (raft_maybe_commit(r))
        return raft_after_commit(r);
    return 0;
}

int raft_check_removed_leader(struct raft *r)
{
    if (r->role != RAFT_LEADER || raft_is_voter(r) || r->commit < r->conf_index)
        return 0;
    /* Thesis §4.2.2: a leader removed by a committed configuration steps down. The commit was
     * just broadcast; hand the baton to the most caught-up voter so no election timeout is lost. */
    uint64_t last = raft_log_last_index(&r->log);
    int rv = 0;
    for (unsigned i = 0; i < r->n_prs; i++) {
        if (r->prs[i].match == last) {
            struct raft_message tn = {.type = RAFT_MSG_TIMEOUT_NOW, .to = r->prs[i].id, .term = r->term};
            rv = raft_send(r, &tn, 0);
            break;
        }
    }
    raft_become_follower(r, r->term, 0);
    return rv;
}

int raft_transfer_leadership(struct raft *r, uint64_t to)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ERR(r, RAFT_ENOTLEADER, "not the leader");
    struct raft_progress *pr = raft_pr(r, to);
    if (to == r->id || pr == NULL)
        return RAFT_ERR(r, RAFT_EINVAL, "cannot transfer to %llu", (unsigned long long)to);
    if (r->lead_transferee == to)
        return 0;
    r->lead_transferee = to;
    /* The transfer gets one election timeout to finish (§3.10); proposals wait meanwhile. */
    r->election_elapsed = 0;
    if (pr->match == raft_log_last_index(&r->log)) {
        struct raft_message tn = {.type = RAFT_MSG_TIMEOUT_NOW, .to = to, .term = r->term};
        return raft_send(r, &tn, 0);
    }
    return raft_send_append(r, pr, true);
}
