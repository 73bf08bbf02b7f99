/* store/node_view.c — the change stamps and the published view of node_view.h: a sequence lock
 * around what the apply seam changes, and one stamp slot per hash of a token's name. The apply seam
 * writes (store thread, under the write lock); any thread reads, without a lock.
 */
#include <string.h>

#include "store/hash.h"
#include "store/node_int.h"

static uint64_t *slot_of(struct node *n, const char *token, size_t token_len)
{
    return &n->stamps.slot[hash_of(HASH_INIT, token, token_len) & (NODE_VIEW_SLOTS - 1)];
}

bool node_view_begin(struct node *n, struct node_view *v)
{
    uint64_t s = __atomic_load_n(&n->stamps.seq, __ATOMIC_ACQUIRE);
    if (s & 1)
        return false;
    v->seq_ = s;
    v->etcd_index = __atomic_load_n(&n->stamps.etcd_index, __ATOMIC_RELAXED);
    if (v->etcd_index == 0)
        return false; /* nothing applied or restored yet: nothing published */
    v->raft_index = __atomic_load_n(&n->applied_index, __ATOMIC_RELAXED);
    v->raft_term = __atomic_load_n(&n->applied_term, __ATOMIC_RELAXED);
    return true;
}

uint64_t node_view_stamp(struct node *n, const char *token, size_t token_len)
{
    return __atomic_load_n(slot_of(n, token, token_len), __ATOMIC_RELAXED);
}

bool node_view_end(struct node *n, const struct node_view *v)
{
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* the loads above happen before the re-check */
    return __atomic_load_n(&n->stamps.seq, __ATOMIC_RELAXED) == v->seq_;
}

void node_view_write_begin(struct node *n)
{
    __atomic_store_n(&n->stamps.seq, n->stamps.seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE); /* odd before anything it covers changes */
}

void node_view_touch(struct node *n, const char *key, size_t key_len)
{
    const char *token;
    size_t token_len;
    if (!kv_key_token(key, key_len, &token, &token_len)) {
        node_view_touch_all(n);
        return;
    }
    __atomic_store_n(slot_of(n, token, token_len), ++n->stamps.next, __ATOMIC_RELAXED);
}

void node_view_touch_all(struct node *n)
{
    uint64_t s = ++n->stamps.next;
    for (size_t i = 0; i < NODE_VIEW_SLOTS; i++)
        __atomic_store_n(&n->stamps.slot[i], s, __ATOMIC_RELAXED);
}

void node_view_write_end(struct node *n)
{
    __atomic_store_n(&n->stamps.etcd_index, kv_index(n->kv), __ATOMIC_RELAXED);
    __atomic_store_n(&n->stamps.seq, n->stamps.seq + 1, __ATOMIC_RELEASE);
}
