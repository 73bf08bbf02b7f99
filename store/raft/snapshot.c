/* store/raft/snapshot.c — log compaction and InstallSnapshot (Raft §7, thesis chapter 5).
 *
 * The application hands the core an image of its state at an applied index (raft_compact); the
 * core keeps it to bring followers that fell behind the compacted log up to date, and a follower
 * that receives one hands it out in a ready for the application to persist and install.
 */
#include "store/raft/internal.h"

int raft_send_snapshot(struct raft *r, struct raft_progress *pr)
{
    /* A log only loses its prefix to a snapshot, so one always exists here. */
    assert(r->has_snap);
    raft_pr_become_snapshot(pr, r->snap.meta.index);
    /* The image itself is attached at raft_ready(): the latest one is the one worth sending. */
    struct raft_message m = {.type = RAFT_MSG_SNAPSHOT, .to = pr->id, .term = r->term};
    return raft_send(r, &m, 0);
}

int raft_handle_snapshot(struct raft *r, const struct raft_message *m)
{
    r->election_elapsed = 0;
    r->lead = m->from;
    const struct raft_snapshot_meta *s = &m->snapshot.meta;
    struct raft_message resp = {.type = RAFT_MSG_APPEND_RESP, .to = m->from, .term = r->term};
    if (s->index <= r->commit) {
        resp.index = r->commit;
        return raft_send(r, &resp, 0);
    }
    if (raft_log_term(&r->log, s->index) == s->term) {
        /* We hold the entry the snapshot ends with, hence (log matching) all before it: the
         * snapshot only tells us that much is committed. */
        raft_commit_to(r, s->index);
        resp.index = r->commit;
        return raft_send(r, &resp, 0);
    }
    struct raft_snapshot copy = {.meta = *s, .len = m->snapshot.len};
    if (copy.len > 0) {
        copy.data = raft_malloc(r, (size_t)copy.len);
        if (copy.data == NULL)
            return RAFT_ENOMEM;
        memcpy(copy.data, m->snapshot.data, (size_t)copy.len);
    }
    raft_snapshot_release(r, &r->pending_snap);
    r->pending_snap = copy;
    r->has_pending_snap = true;
    raft_log_restart(&r->log, s->index, s->term);
    r->commit = s->index;
    raft_conf_set(r, &s->conf, 0);
    resp.index = s->index;
    return raft_send(r, &resp, 0);
}

int raft_compact(struct raft *r, uint64_t index, const void *data, uint64_t len, uint64_t trailing,
                 struct raft_snapshot_meta *meta)
{
    if (r->has_snap && index == r->snap.meta.index) {
        if (meta != NULL)
            *meta = r->snap.meta;
        return 0;
    }
    if (index > r->applied || index <= r->log.offset || (r->has_snap && index < r->snap.meta.index))
        return RAFT_ERR(r, RAFT_EINVAL, "cannot snapshot at %llu (applied %llu, first %llu)",
                        (unsigned long long)index, (unsigned long long)r->applied,
                        (unsigned long long)(r->log.offset + 1));
    if (r->has_pending_snap)
        return RAFT_ERR(r, RAFT_EBUSY, "a received snapshot is not installed yet");
    struct raft_snapshot s = {.meta.index = index, .meta.term = raft_log_term(&r->log, index), .len = len};
    int rv = raft_conf_at(r, index, &s.meta.conf);
    if (rv != 0)
        return rv;
    if (len > 0) {
        s.data = raft_malloc(r, (size_t)len);
        if (s.data == NULL)
            return RAFT_ENOMEM;
        memcpy(s.data, data, (size_t)len);
    }
    raft_snapshot_release(r, &r->snap);
    r->snap = s;
    r->has_snap = true;
    if (index > trailing)
        raft_log_compact(&r->log, index - trailing);
    if (meta != NULL)
        *meta = r->snap.meta;
    return 0;
}
