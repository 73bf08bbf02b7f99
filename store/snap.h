/* store/snap.h — snapshot files: the applied state (the KV tree, its global index, TTL deadlines,
 * per-token watch history) at one log position, with the membership and the cluster ID, so that a
 * restart loads it and replays only the WAL entries after it, and the WAL can drop what it covers.
 *
 * Owns the files of its directory (<data-dir>/snap/); all I/O through a struct fileio. snap_write
 * only reads the tree and the hub (node_snap.c runs it in a forked child, which is why it needs no
 * lock); snap_load fills a fresh tree and hub at start-up. Any thread, one call at a time per dir.
 *
 * FORMAT (version 2, integers little-endian), file <index:016x>-<term:016x>.snap:
 *   "DDSNAP01" u32 version u64 index u64 term u64 cluster_id u64 kv_index u32 n_voters u64 ids[n]
 *   u32 members_len members[members_len] (the member table: IDs, names, peer URLs; version 1 files
 *   end the header at ids)
 *   then records, each starting with a tag byte:
 *     'N' a tree node, parents before children, siblings in creation order:
 *         u32 key_len key u8 dir u32 value_len value u64 created_index u64 modified_index
 *         i64 created_ms i64 expire_ms
 *     'R' a history ring: u8 global u32 token_len token u64 dropped_max u32 n, then n 'V' records
 *     'V' an event: u8 action u64 index u8 flags (1 has_prev, 2 refresh, 4 node.dir, 8 prev.dir,
 *         16 node value, 32 prev value) u32 key_len key, then for node and prev: u32 value_len
 *         value i64 expire_ms u64 modified_index u64 created_index
 *     'E' the end: u64 nodes u64 events (counts of what came before)
 *   u32 crc32c of every byte before it.
 * A file is written as <name>.tmp, fsync'd, renamed and the directory fsync'd, so a file with its
 * final name is whole; the loader still checks the CRC and every length, and refuses (naming the
 * file and the byte offset) rather than guess.
 */
#ifndef DISCOVERYD_STORE_SNAP_H
#define DISCOVERYD_STORE_SNAP_H

#include <stddef.h>
#include <stdint.h>
#include "store/fileio.h"
#include "store/kv.h"
#include "store/raft/raft.h"
#include "store/watch.h"

#define SNAP_VERSION 2        /* written; version 1 (no member table) is still read */
#define SNAP_MEMBERS_MAX 8192 /* the member table's bytes */

struct snap_meta {
    uint64_t index, term; /* the last log entry the image covers */
    uint64_t cluster_id;
    uint64_t kv_index; /* the tree's global index */
    struct raft_conf conf;
    uint32_t members_len;              /* the member table (store/node_members.h), opaque here; 0: none */
    uint8_t members[SNAP_MEMBERS_MAX];
};

/* The file name of a snapshot (no directory). cap >= 40. */
void snap_name(char *buf, size_t cap, uint64_t index, uint64_t term);

/* Write kv and hub as the snapshot m into dir (created if missing). 0, or -errno with err naming
 * the file and the failing step. */
int snap_write(const struct fileio *io, const char *dir, const struct snap_meta *m, const struct kv *kv,
               const struct watch_hub *hub, char *err, size_t errlen);

/* Load the snapshot at (index, term) from dir into a fresh kv (kv_new) and hub. 0, -ENOENT when
 * there is no such file, or another -errno (-EBADMSG: damaged) with err naming file and offset. */
int snap_load(const struct fileio *io, const char *dir, uint64_t index, uint64_t term, struct snap_meta *m,
              struct kv *kv, struct watch_hub *hub, char *err, size_t errlen);
/* The same from bytes in memory (what snap_load reads; the fuzz target feeds it). */
int snap_parse(const uint8_t *buf, size_t len, struct snap_meta *m, struct kv *kv, struct watch_hub *hub,
               char *err, size_t errlen);

/* Remove the snapshots of dir older than keep_index, and leftover *.tmp files; fsync the dir.
 * 0 or -errno. */
int snap_prune(const struct fileio *io, const char *dir, uint64_t keep_index);

#endif
