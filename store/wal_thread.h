/* store/wal_thread.h — group commit: one thread that owns a struct wal, takes batches submitted from
 * any thread, writes everything queued and makes it durable with ONE wal_sync (one fdatasync, more
 * only at a segment roll-over), then reports each batch done. Durable throughput is thus bounded by
 * batching, not by fsync latency.
 *
 * Threads: wal_thread_submit() and wal_thread_stats() from any thread; done() callbacks run on the
 * WAL thread, in submission order (a caller on another thread hops back itself). While the thread
 * runs, nothing else touches the struct wal.
 * Failure: the first write or fsync error poisons the WAL: the batches of that round and every one
 * still queued complete with the error, and every later submit fails at once (never retried).
 */
#ifndef DISCOVERYD_STORE_WAL_THREAD_H
#define DISCOVERYD_STORE_WAL_THREAD_H

#include "store/wal.h"

/* One unit of persistence (typically one raft_ready): snapshot marker, then entries, then hard state,
 * in that order (raft.h's ordering contract). Owned by the caller, who keeps it and everything it
 * points to alive until done() is called. */
struct wal_batch {
    bool has_snapshot;
    uint64_t snapshot_index, snapshot_term;
    bool snapshot_replaces_log; /* a received snapshot (raft_ready.snapshot) */
    const struct raft_entry *entries;
    size_t n_entries;
    const struct raft_hard_state *hard_state; /* NULL: unchanged */
    uint64_t release_before; /* after the round is durable: wal_detach_before(this) (0: no) ... */
    struct wal_detached detached; /* ... out: the segments it detached; the caller removes them
                                   * with wal_remove_detached, off the WAL thread */
    /* err: 0 = durable; -EINVAL = the batch does not follow the log (a caller bug; a snapshot marker
     * it carried may have been logged); otherwise the poison -errno, with msg naming file and error. */
    void (*done)(void *arg, int err, const char *msg);
    void *arg;
    struct wal_batch *next; /* private: the queue link */
    int rv;                 /* private: this batch's own result */
};

struct wal_thread;

int wal_thread_start(struct wal_thread **out, struct wal *w);
/* 0: queued (done() will be called exactly once). Otherwise done() is NOT called: the poison error
 * (WAL failed earlier; see wal_thread_error) or -ECANCELED (stopping). */
int wal_thread_submit(struct wal_thread *t, struct wal_batch *b);
/* Completes everything queued, joins the thread and frees it; the struct wal stays open. */
void wal_thread_stop(struct wal_thread *t);
/* The poison error (0 while healthy) and its message, copied into msg. */
int wal_thread_error(struct wal_thread *t, char *msg, size_t cap);

struct wal_thread_stats {
    uint64_t batches; /* completed */
    uint64_t rounds;  /* write + sync rounds */
    uint64_t fsyncs;  /* fdatasync/fsync calls, roll-overs included (wal_stats) */
    uint64_t bytes;   /* record bytes written */
};
void wal_thread_stats(struct wal_thread *t, struct wal_thread_stats *out);

#endif
