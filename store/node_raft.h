/* store/node_raft.h — the log driver: how a proposed write becomes a committed log entry on the
 * store thread, and how a linearizable read waits for its barrier.
 *
 * Contract (store thread only): node_raft_propose() takes a run of WRITE ops, encodes each command
 * (stamping now_ms with the proposer's clock) and, once their entries are committed, hands them
 * to the apply seam (node_apply) in log order; an op whose entry cannot commit completes with
 * NODE_EUNAVAILABLE. node_raft_read() completes a QUORUM op once the applied state reflects every
 * write committed before the call. node_raft_start() sets the node's can-commit health.
 *
 * Today: a single in-memory member, so an entry commits the moment it is proposed and reads need
 * no barrier. The durable-store issue puts store/raft/ here: tick, propose and read_index into the
 * core; ready -> persist on the WAL thread (store/wal.h) -> send (store/transport.h) -> apply
 * (node_apply) -> advance, following the ORDERING CONTRACT of store/raft/raft.h; snapshots come from
 * store/snap.h. Callers above this header do not change.
 */
#ifndef DISCOVERYD_STORE_NODE_RAFT_H
#define DISCOVERYD_STORE_NODE_RAFT_H

#include "store/node_int.h"

/* 0, or -1 with a one-line reason in errbuf. */
int node_raft_start(struct node *n, char *errbuf, size_t errlen);
/* Propose the WRITE ops [first, stop) (linked by next_), in order. */
void node_raft_propose(struct node *n, struct node_op *first, struct node_op *stop);
void node_raft_read(struct node *n, struct node_op *op);
/* NODE_OP_MEMBER (see node.h; node_conf.c). */
void node_raft_member(struct node *n, struct node_op *op);
/* NODE_OP_HANDOVER (see node.h). */
void node_raft_handover(struct node *n, struct node_op *op);
/* This member leads (only the leader proposes token expiry). */
bool node_raft_leads(struct node *n);
/* Shutdown: nothing more commits (health turns "not serving"). */
void node_raft_stop(struct node *n);
void node_raft_free(struct node *n);

#endif
