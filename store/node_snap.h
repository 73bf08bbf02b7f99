/* store/node_snap.h — snapshots taken in a forked child (node_snap.c explains why), for the log
 * driver (node_raft.c) on the store thread: begin one at the current applied state, and hear when
 * its file is durable (or why not). One at a time.
 */
#ifndef DISCOVERYD_STORE_NODE_SNAP_H
#define DISCOVERYD_STORE_NODE_SNAP_H

#include "store/node_int.h"
#include "store/snap.h"

/* ok: the snapshot m is durable in its directory; else msg says why (nothing to undo). */
typedef void (*node_snap_done_fn)(struct node *n, bool ok, const struct snap_meta *m, const char *msg);

/* Fork a child that writes n's tree and history as m into dir. 0, -EBUSY (one is running), or
 * -errno (fork/pipe failed). done() runs later on the store thread. */
int node_snap_begin(struct node *n, const char *dir, const struct snap_meta *m, node_snap_done_fn done);
bool node_snap_running(const struct node *n);
/* Shutdown: kill a running child and report it failed. Closes the handle it polls. */
void node_snap_close(struct node *n);
void node_snap_free(struct node *n);

#endif
