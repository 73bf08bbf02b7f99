/* store/transport.h — peer connections between members: a named place, not built yet.
 *
 * The replicated-store issue fills it: TCP on the store thread's libuv loop, length-framed
 * store/raft/ messages (raft_msg_encode/decode), reconnect with backoff, a bounded send queue per
 * peer, snapshots streamed in chunks, mutual TLS when configured; messages from unknown members or
 * other clusters are dropped and counted. Only node_raft.c calls it: it sends rd.messages after
 * the WAL made them safe to send, and steps what arrives into the core. Nothing declares functions
 * here until they exist.
 */
#ifndef DISCOVERYD_STORE_TRANSPORT_H
#define DISCOVERYD_STORE_TRANSPORT_H
#endif
