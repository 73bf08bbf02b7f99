/* store/node_raft.c — the log driver (see node_raft.h for the contract). Today a single in-memory
 * member: a proposed entry commits at once, so a batch of writes is encoded and handed straight to
 * the apply seam, and a quorum read needs no barrier. The durable-store issue replaces the inside of
 * these functions with store/raft/ and the WAL; nothing outside this file changes then.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/node_raft.h"
#include "store/vec.h"

#define SOLO_TERM 1 /* a single member that never restarts its log elects itself once */

static void set_health(struct node *n, bool ok, const char *reason)
{
    __atomic_store_n(&n->health_reason, reason, __ATOMIC_RELEASE);
    __atomic_store_n(&n->can_commit, ok ? 1 : 0, __ATOMIC_RELEASE);
}

int node_raft_start(struct node *n, char *errbuf, size_t errlen)
{
    /* kv_new() made /discovery at index 1: the bootstrap entry, applied before anything else */
    n->last_index = kv_index(n->kv);
    node_apply_restore(n, n->last_index, SOLO_TERM);
    set_health(n, true, NULL);
    return 0;
}

/* Append op's encoded command to the arena; returns its offset, or SIZE_MAX on ENOMEM. */
static size_t arena_put(struct node_arena *a, const struct kv_cmd *c)
{
    if (vec_reserve((void **)&a->p, &a->cap, a->len + kv_cmd_encoded_len(c), 1, 1024) != 0)
        return SIZE_MAX;
    size_t off = a->len;
    a->len += kv_cmd_encode_to(c, a->p + off, a->cap - off);
    return off;
}

void node_raft_propose(struct node *n, struct node_op *first, struct node_op *stop)
{
    size_t count = 0;
    for (struct node_op *op = first; op != stop; op = op->next_)
        count++;
    struct node_entry stackv[64], *e = count <= 64 ? stackv : malloc(count * sizeof(*e));
    int64_t now = node_wall_ms();
    size_t k = 0;
    n->arena.len = 0;
    for (struct node_op *op = first; op != stop;) {
        struct node_op *next = op->next_; /* a completion may reuse op */
        op->cmd.now_ms = now;
        size_t off = e ? arena_put(&n->arena, &op->cmd) : SIZE_MAX;
        if (off == SIZE_MAX) {
            node_complete(n, op, NODE_ENOMEM);
        } else {
            e[k].index = ++n->last_index;
            e[k].term = SOLO_TERM;
            e[k].data = (const uint8_t *)(uintptr_t)off; /* rebased below: the arena may move */
            e[k].len = n->arena.len - off;
            e[k].op = op;
            k++;
        }
        op = next;
    }
    for (size_t i = 0; i < k; i++)
        e[i].data = n->arena.p + (uintptr_t)e[i].data;
    if (k)
        node_apply(n, e, k);
    if (e != stackv)
        free(e);
}

void node_raft_read(struct node *n, struct node_op *op)
{
    /* a single member: everything applied is committed */
    op->etcd_index = kv_index(n->kv);
    node_complete(n, op, NODE_OK);
}

void node_raft_stop(struct node *n)
{
    set_health(n, false, "the store is shutting down");
}

void node_raft_free(struct node *n)
{
    free(n->arena.p);
    n->arena.p = NULL;
}
