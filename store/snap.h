/* store/snap.h — snapshots of the applied state: a named place, not built yet.
 *
 * The durable-store issue fills it: every --snapshot-count entries the store thread captures the
 * KV tree, the global index, TTL deadlines, per-token watch history, membership and the cluster ID
 * without stalling requests, writes it checksummed to a temp file, fsyncs, renames and fsyncs the
 * directory, then lets the WAL (store/wal.h) release the segments it covers. Its I/O goes through
 * store/fileio.h so fault tests can fail it. Only node_raft.c calls it, on the store thread (the
 * serialisation itself may run elsewhere). Nothing declares functions here until they exist.
 */
#ifndef DISCOVERYD_STORE_SNAP_H
#define DISCOVERYD_STORE_SNAP_H
#endif
