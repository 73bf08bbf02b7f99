/* store/raft/progress.c — the leader's flow control per follower: probe, replicate, snapshot.
 *
 * PROBE sends one append and waits for its answer (we do not know where the logs agree);
 * REPLICATE pipelines appends optimistically, bounded by the inflight window; SNAPSHOT waits for
 * an InstallSnapshot to land. The design follows the Raft thesis §10.2 and etcd's progress.
 */
#include "store/raft/internal.h"

void raft_pr_reset(struct raft_progress *pr, uint64_t id, uint64_t next, unsigned max_inflight)
{
    memset(pr, 0, sizeof(*pr));
    pr->id = id;
    pr->next = next;
    pr->state = RAFT_PR_PROBE;
    pr->infl.size = max_inflight;
}

static void reset_state(struct raft_progress *pr, uint8_t state)
{
    pr->state = state;
    pr->probe_sent = false;
    pr->pending_snapshot = 0;
    pr->state_ticks = 0;
    pr->infl.start = pr->infl.count = 0;
}

void raft_pr_become_probe(struct raft_progress *pr)
{
    /* Coming back from a snapshot, probe right after what the snapshot covered. */
    if (pr->state == RAFT_PR_SNAPSHOT) {
        uint64_t ps = pr->pending_snapshot;
        reset_state(pr, RAFT_PR_PROBE);
        pr->next = (pr->match + 1 > ps + 1) ? pr->match + 1 : ps + 1;
    } else {
        reset_state(pr, RAFT_PR_PROBE);
        pr->next = pr->match + 1;
    }
}

void raft_pr_become_replicate(struct raft_progress *pr)
{
    reset_state(pr, RAFT_PR_REPLICATE);
    pr->next = pr->match + 1;
}

void raft_pr_become_snapshot(struct raft_progress *pr, uint64_t snap_index)
{
    reset_state(pr, RAFT_PR_SNAPSHOT);
    pr->pending_snapshot = snap_index;
}

bool raft_pr_maybe_update(struct raft_progress *pr, uint64_t idx)
{
    bool updated = false;
    if (pr->match < idx) {
        pr->match = idx;
        updated = true;
        pr->probe_sent = false;
    }
    if (pr->next < idx + 1)
        pr->next = idx + 1;
    return updated;
}

bool raft_pr_maybe_decr(struct raft_progress *pr, uint64_t rejected, uint64_t hint)
{
    if (pr->state == RAFT_PR_REPLICATE) {
        /* A rejection at or below match is an old message: the follower already agreed there. */
        if (rejected <= pr->match)
            return false;
        pr->next = pr->match + 1;
        return true;
    }
    /* PROBE: only the answer to the probe in flight (prev = next-1) counts. */
    if (pr->next == 0 || pr->next - 1 != rejected)
        return false;
    uint64_t n = rejected < hint + 1 ? rejected : hint + 1;
    if (n < pr->match + 1)
        n = pr->match + 1;
    pr->next = n < 1 ? 1 : n;
    pr->probe_sent = false;
    return true;
}

bool raft_pr_paused(const struct raft_progress *pr)
{
    switch (pr->state) {
    case RAFT_PR_PROBE:
        return pr->probe_sent;
    case RAFT_PR_REPLICATE:
        return raft_infl_full(&pr->infl);
    default:
        return true;
    }
}

void raft_pr_sent(struct raft_progress *pr, uint64_t last_sent, size_t n_entries)
{
    if (pr->state == RAFT_PR_REPLICATE) {
        if (n_entries > 0) {
            pr->next = last_sent + 1;
            raft_infl_add(&pr->infl, last_sent);
        }
    } else if (pr->state == RAFT_PR_PROBE) {
        pr->probe_sent = true;
    }
}

bool raft_infl_full(const struct raft_inflights *in)
{
    return in->count >= in->size;
}

void raft_infl_add(struct raft_inflights *in, uint64_t idx)
{
    assert(!raft_infl_full(in));
    in->buf[(in->start + in->count) % in->size] = idx;
    in->count++;
}

void raft_infl_free_to(struct raft_inflights *in, uint64_t idx)
{
    while (in->count > 0 && in->buf[in->start] <= idx) {
        in->start = (in->start + 1) % in->size;
        in->count--;
    }
}
