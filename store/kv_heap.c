/* store/kv_heap.c — the tree's two binary min-heaps: TTL nodes by expire_ms and token dirs by
 * created_ms. Each node remembers its slot, so leaving a heap is O(log n) and a SWEEP never meets a
 * stale entry. Store thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "store/kv_int.h"
#include "store/vec.h"

/* a strictly before b: by time, then created_index, then key, so the order (and with it the
 * order of expire events and their indexes) is the same on every node. */
static bool heap_less(const struct kheap *h, const struct knode *a, const struct knode *b)
{
    int64_t ta = h->tok ? a->n.created_ms : a->n.expire_ms;
    int64_t tb = h->tok ? b->n.created_ms : b->n.expire_ms;
    if (ta != tb)
        return ta < tb;
    if (a->n.created_index != b->n.created_index)
        return a->n.created_index < b->n.created_index;
    return strcmp(a->n.key, b->n.key) < 0;
}

static uint32_t *heap_slot(const struct kheap *h, struct knode *k)
{
    return h->tok ? &k->tok_slot : &k->ttl_slot;
}

static void heap_set(struct kheap *h, uint32_t i, struct knode *k)
{
    h->a[i] = k;
    *heap_slot(h, k) = i + 1;
}

static void heap_up(struct kheap *h, uint32_t i)
{
    struct knode *k = h->a[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(h, k, h->a[p]))
            break;
        heap_set(h, i, h->a[p]);
        i = p;
    }
    heap_set(h, i, k);
}

static void heap_down(struct kheap *h, uint32_t i)
{
    struct knode *k = h->a[i];
    for (;;) {
        uint32_t l = 2 * i + 1, best = i;
        struct knode *bk = k;
        if (l < h->n && heap_less(h, h->a[l], bk)) {
            best = l;
            bk = h->a[l];
        }
        if (l + 1 < h->n && heap_less(h, h->a[l + 1], bk)) {
            best = l + 1;
            bk = h->a[l + 1];
        }
        if (best == i)
            break;
        heap_set(h, i, bk);
        i = best;
    }
    heap_set(h, i, k);
}

/* Make room for `more` pushes, so that a command can reserve before it mutates. */
int kv_heap_reserve(struct kheap *h, uint32_t more)
{
    return vec_reserve((void **)&h->a, &h->cap, h->n + more, sizeof(*h->a), 64);
}

void kv_heap_push(struct kheap *h, struct knode *k)
{
    /* callers reserved */
    h->a[h->n] = k;
    *heap_slot(h, k) = h->n + 1;
    h->n++;
    heap_up(h, h->n - 1);
}

void kv_heap_remove(struct kheap *h, struct knode *k)
{
    uint32_t *slot = heap_slot(h, k);
    if (!*slot)
        return;
    uint32_t i = *slot - 1;
    *slot = 0;
    h->n--;
    if (i == h->n)
        return;
    heap_set(h, i, h->a[h->n]);
    heap_up(h, i);
    heap_down(h, *heap_slot(h, h->a[i]) - 1);
}

/* After k's time changed (TTL update): restore the order. */
void kv_heap_fix(struct kheap *h, struct knode *k)
{
    uint32_t i = *heap_slot(h, k) - 1;
    heap_up(h, i);
    heap_down(h, *heap_slot(h, k) - 1);
}

struct knode *kv_heap_top(const struct kheap *h)
{
    return h->n ? h->a[0] : NULL;
}

void kv_set_expiry(struct kv *kv, struct knode *k, int64_t expire_ms)
{
    int64_t old = k->n.expire_ms;
    k->n.expire_ms = expire_ms;
    if (old && expire_ms)
        kv_heap_fix(&kv->ttl, k);
    else if (old)
        kv_heap_remove(&kv->ttl, k);
    else if (expire_ms)
        kv_heap_push(&kv->ttl, k);
}
