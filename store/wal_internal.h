/* store/wal_internal.h — what wal_write.c (the writer), wal_replay.c (the reader) and
 * wal_format.c share: the struct wal and the record parser. Not a public header: nothing outside
 * store/wal*.c includes it.
 */
#ifndef DISCOVERYD_STORE_WAL_INTERNAL_H
#define DISCOVERYD_STORE_WAL_INTERNAL_H

#include <stdatomic.h>
#include "store/le.h"
#include "store/wal.h"

#define WAL_HEADER_PAYLOAD (4 + 8 * 4 + 1 + RAFT_HARD_STATE_SIZE + 8 + 8)
#define WAL_SNAP_PAYLOAD (1 + 1 + 8 + 8)
#define WAL_HDR_HAS_HS 1u
#define WAL_HDR_HAS_SNAP 2u
#define WAL_SNAP_REPLACES_LOG 1u
#define WAL_NAME_LEN 37 /* 16 hex - 16 hex .wal */

struct wal_seg {
    uint64_t seq, first;
};

/* The log's shape after some prefix of the record stream. */
struct wal_state {
    uint64_t last; /* last entry index (or the snapshot index when the log is empty) */
    bool has_hs, has_snap;
    struct raft_hard_state hs;
    uint64_t snap_index, snap_term;
};

struct wal {
    struct wal_config cfg;
    char *dir;
    const struct fileio *io;
    struct wal_seg *segs; /* in sequence order; the last one is being written */
    size_t n_segs, cap_segs;
    int fd;       /* the newest segment, open for writing */
    uint64_t off; /* where its next record goes */
    uint64_t header_end;
    struct wal_state pending; /* including buffered records */
    struct wal_state written; /* as of the bytes handed to the file so far */
    struct wal_state durable; /* as of the last successful wal_sync */
    uint8_t *buf;             /* buffered records, framed */
    size_t len, cap;
    int poison; /* -errno once a write or sync failed */
    char msg[512];
    _Atomic uint64_t n_fsyncs, n_syncs, n_bytes, n_created, n_removed;
};

enum wal_parse { WAL_PARSE_OK, WAL_PARSE_END, WAL_PARSE_BAD };

/* Parses the record at buf[off..size). OK: *type, *payload, *plen and *reclen (frame included) are
 * set. END: a zero length field (or fewer than 4 bytes left, all zero). BAD: *why says what. */
enum wal_parse wal_parse_record(const uint8_t *buf, uint64_t size, uint64_t off, uint8_t *type,
                                const uint8_t **payload, uint32_t *plen, uint64_t *reclen, const char **why);

void wal_seg_name(char *out, size_t cap, uint64_t seq, uint64_t first);
int wal_path(const struct wal *w, char *out, size_t cap, const char *name);

/* wal_replay.c: reads every segment of w->dir into *r, fills w->segs and w->written, and sets
 * *repair_off to where the newest segment's data must be cut (UINT64_MAX: nothing to cut). */
int wal_replay_dir(struct wal *w, struct wal_replay *r, uint64_t *repair_off, char *err, size_t errlen);

#define WAL_LOG(w, ...)                                                                                      \
    do {                                                                                                     \
        if ((w)->cfg.log != NULL)                                                                            \
            (w)->cfg.log((w)->cfg.log_arg, __VA_ARGS__);                                                     \
    } while (0)

#endif
