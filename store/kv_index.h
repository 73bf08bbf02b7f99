/* store/kv_index.h — an open-addressing hash set of pointers (linear probing, backward-shift
 * deletion), private to store/: the tree's child index (kv_tree.c). An item costs one pointer slot
 * and nothing inside the item: the table recomputes an item's hash through the caller's function
 * when it grows or shifts, so items need not store it. A slot keeps the top 8 bits of its item's
 * hash in the pointer's unused top byte (user-space addresses stay below 2^56), so a probe skips
 * most foreign items without touching them: at a load of 3/4 a miss passes ~8 slots, and each
 * item it had to read was a cache miss. Never shrinks. Single-threaded writers; readers may probe
 * concurrently with other readers (the tree's rdlock), never with a writer.
 */
#ifndef DISCOVERYD_STORE_KV_INDEX_H
#define DISCOVERYD_STORE_KV_INDEX_H

#include <stddef.h>
#include <stdint.h>

struct kv_index {
    uintptr_t *slots;                  /* 0 = empty slot, else item | tag; NULL until the first reserve */
    size_t mask;                       /* nslots - 1 (a power of two) */
    size_t count;
    uint64_t (*hash)(const void *item); /* the same hash the caller probes with */
};

void kv_index_init(struct kv_index *ix, uint64_t (*hash)(const void *item));
void kv_index_free(struct kv_index *ix); /* the slot array only; items are the caller's */
/* Make room so that `more` inserts cannot fail (load stays <= 3/4). 0, or -1 on ENOMEM (unchanged). */
int kv_index_reserve(struct kv_index *ix, size_t more);
/* Insert item (not present) whose hash is h; room was reserved. */
void kv_index_insert(struct kv_index *ix, void *item, uint64_t h);
/* Remove item, which must be present with hash h. */
void kv_index_remove(struct kv_index *ix, const void *item, uint64_t h);

/* Probe: for (size_t i = kv_index_start(ix, h); ix->slots && ix->slots[i]; i = kv_index_next(ix, i))
 *            if (kv_index_maybe(ix, i, h)) compare kv_index_item(ix, i) yourself;
 * an empty slot ends the run. */
#define KV_INDEX_TAG_SHIFT 56
static inline uintptr_t kv_index_slot(const void *item, uint64_t h)
{
    return (uintptr_t)item | (uintptr_t)(h >> KV_INDEX_TAG_SHIFT) << KV_INDEX_TAG_SHIFT;
}
static inline size_t kv_index_start(const struct kv_index *ix, uint64_t h)
{
    return (size_t)h & ix->mask;
}
static inline size_t kv_index_next(const struct kv_index *ix, size_t i)
{
    return (i + 1) & ix->mask;
}
/* The item in slot i may have hash h (its tag matches). */
static inline int kv_index_maybe(const struct kv_index *ix, size_t i, uint64_t h)
{
    return (ix->slots[i] >> KV_INDEX_TAG_SHIFT) == (uintptr_t)(h >> KV_INDEX_TAG_SHIFT);
}
static inline void *kv_index_item(const struct kv_index *ix, size_t i)
{
    return (void *)(ix->slots[i] & (((uintptr_t)1 << KV_INDEX_TAG_SHIFT) - 1));
}

#endif
