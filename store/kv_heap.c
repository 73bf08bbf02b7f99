/* store/kv_heap.c — the tree's two binary min-heaps: token dirs by created_ms (their slot in the
 * node) and TTLs by expire_ms. A TTL is a record of its own, found by its node through a pointer
 * index: few nodes have one, and the others then pay one bit for it instead of an expiry and a
 * slot. Every entry knows its slot, so leaving a heap is O(log n) and a SWEEP never meets a stale
 * entry. Store thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "store/hash.h"
#include "store/kv_int.h"
#include "store/vec.h"

/* A TTL, out of line: only nodes that have one pay for it. */
struct kttl {
    struct kv_node *n;
    int64_t expire_ms;
    uint32_t slot; /* position in kv->ttl + 1 */
};

static struct kv_node *item_node(const struct kheap *h, void *it)
{
    return h->tok ? it : ((struct kttl *)it)->n;
}

static int64_t item_time(const struct kheap *h, const void *it)
{
    return h->tok ? ((const struct kv_node *)it)->created_ms : ((const struct kttl *)it)->expire_ms;
}

static uint32_t *item_slot(const struct kheap *h, void *it)
{
    return h->tok ? &((struct kv_node *)it)->tok_slot_ : &((struct kttl *)it)->slot;
}

/* a strictly before b: by time, then created_index, then key, so the order (and with it the
 * order of expire events and their indexes) is the same on every node. */
static bool heap_less(const struct kheap *h, void *a, void *b)
{
    int64_t ta = item_time(h, a), tb = item_time(h, b);
    if (ta != tb)
        return ta < tb;
    const struct kv_node *x = item_node(h, a), *y = item_node(h, b);
    if (x->created_index != y->created_index)
        return x->created_index < y->created_index;
    return kv_node_keycmp(x, y) < 0;
}

static void heap_set(struct kheap *h, uint32_t i, void *it)
{
    h->a[i] = it;
    *item_slot(h, it) = i + 1;
}

static void heap_up(struct kheap *h, uint32_t i)
{
    void *it = h->a[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(h, it, h->a[p]))
            break;
        heap_set(h, i, h->a[p]);
        i = p;
    }
    heap_set(h, i, it);
}

static void heap_down(struct kheap *h, uint32_t i)
{
    void *it = h->a[i];
    for (;;) {
        uint32_t l = 2 * i + 1, best = i;
        void *b = it;
        if (l < h->n && heap_less(h, h->a[l], b)) {
            best = l;
            b = h->a[l];
        }
        if (l + 1 < h->n && heap_less(h, h->a[l + 1], b)) {
            best = l + 1;
            b = h->a[l + 1];
        }
        if (best == i)
            break;
        heap_set(h, i, b);
        i = best;
    }
    heap_set(h, i, it);
}

static void heap_push(struct kheap *h, void *it)
{
    /* callers reserved */
    h->a[h->n] = it;
    *item_slot(h, it) = (uint32_t)h->n + 1;
    h->n++;
    heap_up(h, (uint32_t)h->n - 1);
}

static void heap_remove(struct kheap *h, void *it)
{
    uint32_t *slot = item_slot(h, it);
    if (!*slot)
        return;
    uint32_t i = *slot - 1;
    *slot = 0;
    h->n--;
    if (i == h->n)
        return;
    heap_set(h, i, h->a[h->n]);
    heap_up(h, i);
    heap_down(h, *item_slot(h, h->a[i]) - 1);
}

/* ---------------------------------------------------------------- TTL records by node */

static uint64_t node_hash(const struct kv_node *n)
{
    return hash_mix(hash_salt(HASH_INIT, (uint64_t)(uintptr_t)n));
}

uint64_t kv_ttl_hash(const void *item)
{
    return node_hash(((const struct kttl *)item)->n);
}

static struct kttl *ttl_find(const struct kv *kv, const struct kv_node *n)
{
    const struct kv_index *ix = &kv->ttls;
    if (!(n->flags_ & KN_TTL) || !ix->slots)
        return NULL;
    uint64_t h = node_hash(n);
    for (size_t i = kv_index_start(ix, h); ix->slots[i]; i = kv_index_next(ix, i)) {
        struct kttl *x = kv_index_item(ix, i);
        if (kv_index_maybe(ix, i, h) && x->n == n)
            return x;
    }
    return NULL;
}

int64_t kv_node_expire_ms(const struct kv *kv, const struct kv_node *n)
{
    const struct kttl *x = ttl_find(kv, n);
    return x ? x->expire_ms : 0;
}

/* ---------------------------------------------------------------- the tree's side */

int kv_expiry_reserve(struct kv *kv, uint32_t tokens)
{
    if (vec_reserve((void **)&kv->tok.a, &kv->tok.cap, kv->tok.n + tokens, sizeof(*kv->tok.a), 64) != 0 ||
        vec_reserve((void **)&kv->ttl.a, &kv->ttl.cap, kv->ttl.n + 1, sizeof(*kv->ttl.a), 64) != 0 ||
        kv_index_reserve(&kv->ttls, 1) != 0)
        return -1;
    if (!kv->ttl_spare && !(kv->ttl_spare = malloc(sizeof(*kv->ttl_spare))))
        return -1;
    return 0;
}

void kv_token_push(struct kv *kv, struct kv_node *k)
{
    heap_push(&kv->tok, k);
}

void kv_set_expiry(struct kv *kv, struct kv_node *k, int64_t expire_ms)
{
    struct kttl *x = ttl_find(kv, k);
    if (x && expire_ms) {
        x->expire_ms = expire_ms;
        heap_up(&kv->ttl, x->slot - 1);
        heap_down(&kv->ttl, x->slot - 1);
    } else if (x) {
        heap_remove(&kv->ttl, x);
        kv_index_remove(&kv->ttls, x, node_hash(k));
        free(x);
        k->flags_ &= (uint8_t)~KN_TTL;
    } else if (expire_ms) {
        x = kv->ttl_spare; /* reserved */
        kv->ttl_spare = NULL;
        *x = (struct kttl){.n = k, .expire_ms = expire_ms};
        kv_index_insert(&kv->ttls, x, node_hash(k));
        k->flags_ |= KN_TTL;
        heap_push(&kv->ttl, x);
    }
}

void kv_expiry_forget(struct kv *kv, struct kv_node *k)
{
    kv_set_expiry(kv, k, 0);
    heap_remove(&kv->tok, k);
}

struct kv_node *kv_ttl_top(const struct kv *kv, int64_t *expire_ms)
{
    if (!kv->ttl.n)
        return NULL;
    const struct kttl *x = kv->ttl.a[0];
    *expire_ms = x->expire_ms;
    return x->n;
}

struct kv_node *kv_token_top(const struct kv *kv)
{
    return kv->tok.n ? kv->tok.a[0] : NULL;
}
