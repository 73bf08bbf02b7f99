/* store/wal.h — the write-ahead log of the Raft core's persisted state: log entries (with the
 * truncation the ordering contract of store/raft/raft.h asks for), the hard state, and snapshot
 * markers; segment files of framed, CRC-32C-checked records, verified on every open.
 *
 * Owns: the files of its directory (<data-dir>/wal/) and nothing else; all I/O goes through a
 * struct fileio (store/fileio.h). Callers: the node glue (through the WAL thread, store/wal_thread.h,
 * or directly at start-up) and tests. A struct wal is used by one thread at a time (the WAL thread
 * once it runs); only wal_stats() may be called from any thread.
 *
 * ON-DISK FORMAT (version 1; every integer little-endian)
 *   Files: <dir>/SSSSSSSSSSSSSSSS-IIIIIIIIIIIIIIII.wal, S = sequence number, I = index of the first
 *   entry expected in the segment (the log's last index + 1 when it was created), both 16 lower-
 *   case hex digits. Sequence numbers count up from 1. A segment is created as <name>.tmp,
 *   preallocated to segment_size bytes, given its header record, fsync'd, renamed to <name> and the
 *   directory fsync'd: a file with a final name always has a complete header. Leftover *.tmp files
 *   are removed at open.
 *   Record: [u32 len][u32 crc][u8 type][payload]; len = 1 + payload bytes, 1 <= len <= WAL_RECORD_MAX;
 *   crc = CRC-32C over the 4 len bytes, the type byte and the payload (a flipped length bit fails
 *   the check too). A len of 0 where a record would start marks the end of the data: the rest of
 *   the file (preallocated space) must be zero bytes.
 *   Types and payloads:
 *     1 HEADER     first record of every segment, and only there: u32 format version (1),
 *                  u64 cluster id, u64 member id, u64 sequence, u64 first index, u8 flags
 *                  (1 = has hard state, 2 = has snapshot), the hard state (raft_hard_state_encode,
 *                  26 bytes), u64 snapshot index, u64 snapshot term: the state as of the segment's
 *                  creation, so that removing older segments never loses a hard state or marker.
 *     2 ENTRY      raft_entry_encode(entry). Appending index i discards every entry >= i logged before.
 *     3 HARD_STATE raft_hard_state_encode(hs); the latest one wins.
 *     4 SNAPSHOT   u8 version (1), u8 flags (1 = replaces the log), u64 index, u64 term: "a snapshot
 *                  at index is durable": entries <= index are covered by it and dropped (with flag 1,
 *                  a received snapshot, all entries are dropped).
 *
 * RECOVERY (wal_open): segments are read in sequence order and every record is verified. In the
 * newest segment, a bad record (cut short, checksum mismatch, bad length or type, non-zero bytes
 * after the end) with nothing valid after it is a torn write of an unacknowledged batch: it is cut
 * off (one log line) and writing continues there. A bad record anywhere else refuses the open with
 * a message naming the file, the byte offset, what is wrong and what to do. Data is never skipped.
 *
 * DURABILITY: wal_append/wal_set_hard_state/wal_snapshot only buffer; wal_sync writes and makes
 * durable everything buffered with one fdatasync (more only when a segment fills and a new one is
 * created). Any write or sync failure POISONS the WAL: the failing call and every later call return
 * the error and nothing is retried (after a failed fsync the page cache cannot be trusted).
 */
#ifndef DISCOVERYD_STORE_WAL_H
#define DISCOVERYD_STORE_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store/fileio.h"
#include "store/raft/raft.h"

#define WAL_FORMAT_VERSION 1
#define WAL_RECORD_MAX (16u << 20)             /* largest len field accepted (type + payload) */
#define WAL_SEGMENT_SIZE_DEFAULT (64ull << 20) /* preallocated size of one segment file */
#define WAL_SEGMENT_SIZE_MIN 512ull

enum wal_record_type {
    WAL_REC_HEADER = 1,
    WAL_REC_ENTRY = 2,
    WAL_REC_HARD_STATE = 3,
    WAL_REC_SNAPSHOT = 4,
};
#define WAL_REC_FRAME 8 /* len + crc, before the type byte */

typedef void (*wal_log_fn)(void *arg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct wal_config {
    const char *dir;         /* the WAL's directory, normally <data-dir>/wal; created if missing */
    uint64_t segment_size;   /* preallocation per segment (>= WAL_SEGMENT_SIZE_MIN) */
    uint64_t cluster_id;     /* 0: accept what is on disk (a fresh WAL records 0) */
    uint64_t member_id;      /* 0: accept what is on disk */
    const struct fileio *io; /* NULL: fileio_posix() */
    wal_log_fn log;          /* NULL: silent */
    void *log_arg;
};
void wal_config_defaults(struct wal_config *cfg);

/* What wal_open read back. Maps onto struct raft_persisted (wal_replay_persisted). */
struct wal_replay {
    uint32_t version;
    uint64_t cluster_id, member_id;    /* as recorded in the segments */
    struct raft_hard_state hard_state; /* all zero if none was ever logged */
    bool has_snapshot;
    uint64_t snapshot_index, snapshot_term; /* the latest durable snapshot marker */
    struct raft_entry *entries; /* contiguous, from snapshot_index + 1 (or 1); data points into bufs */
    size_t n_entries;
    uint8_t **bufs; /* private: the segment images the entries point into */
    size_t n_bufs;
};
void wal_replay_free(struct wal_replay *r);

/* Fills *out for raft_new(). snap is the snapshot image loaded from the snapshot store (its meta
 * must match the replay's marker) or NULL when the replay has none. -EINVAL (with a message) if
 * they disagree. *out points into r and snap. */
int wal_replay_persisted(const struct wal_replay *r, const struct raft_snapshot *snap,
                         struct raft_persisted *out, char *err, size_t errlen);

struct wal;

/* Opens (creating if empty) the WAL in cfg->dir, replays it into *replay (always release it with
 * wal_replay_free, also on error) and positions writing after the last good record. Returns 0, or
 * -EBADMSG (corrupt data), -EINVAL (bad config, or the WAL belongs to another cluster/member),
 * another -errno (I/O); err receives one line saying which file, where, what and what to do. */
int wal_open(struct wal **out, const struct wal_config *cfg, struct wal_replay *replay, char *err,
             size_t errlen);
void wal_close(struct wal *w);

/* Buffer n contiguous entries; entries[0].index must be in (snapshot index, last index + 1]:
 * entries >= entries[0].index logged before are discarded. -EINVAL on a bad argument (nothing
 * buffered), or the poison error. */
int wal_append(struct wal *w, const struct raft_entry *entries, size_t n);
int wal_set_hard_state(struct wal *w, const struct raft_hard_state *hs);
/* Buffer a snapshot marker. The snapshot image must already be durable in the snapshot store.
 * replaces_log: a received snapshot (raft_ready.snapshot) that replaced the whole log; false for a
 * local compaction (raft_compact), which keeps the entries after index. */
int wal_snapshot(struct wal *w, uint64_t index, uint64_t term, bool replaces_log);
/* Write everything buffered and fdatasync it. 0 = durable. */
int wal_sync(struct wal *w);
/* Remove the segments whose entries are all <= index, oldest first, then fsync the directory.
 * index must not exceed the latest SYNCED snapshot marker (-EINVAL). The newest segment stays.
 * = wal_detach_before + wal_remove_detached; a failed removal poisons the WAL. */
int wal_release_before(struct wal *w, uint64_t index);

/* The same in two steps, so that the slow part (unlinking 64 MiB files, maybe discarded by the file
 * system) can run off the writer's thread: detach forgets the covered segments (fast; same checks,
 * *out lists their paths, caller-owned); wal_remove_detached unlinks them and fsyncs the directory,
 * on any thread, and frees the list. A crash in between leaves covered segments, which the next
 * open replays and the next release removes. */
struct wal_detached {
    char **paths;
    size_t n;
    char *dir;
};
int wal_detach_before(struct wal *w, uint64_t index, struct wal_detached *out);
/* 0, or -errno with err saying what failed on which file (no errno text; the rest are still tried).
 * Always frees d's contents. */
int wal_remove_detached(const struct fileio *io, struct wal_detached *d, char *err, size_t errlen);

/* The poison error (0 if healthy) and a line saying which file and what failed. */
int wal_error(const struct wal *w, const char **msg);
uint64_t wal_last_index(const struct wal *w); /* including buffered entries */

struct wal_stats {
    uint64_t fsyncs; /* fdatasync/fsync calls on segments and the directory */
    uint64_t syncs;  /* wal_sync calls that wrote something */
    uint64_t bytes;  /* record bytes written */
    uint64_t segments_created, segments_removed;
};
void wal_stats(const struct wal *w, struct wal_stats *out); /* any thread */

/* ---- record framing, shared by the writer, the reader and the fuzz target ---- */
/* Encodes one record (type + payload of plen bytes) at buf (WAL_REC_FRAME + 1 + plen bytes). */
void wal_record_frame(uint8_t *buf, uint8_t type, const uint8_t *payload, uint32_t plen);

#endif
