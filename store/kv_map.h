/* store/kv_map.h — a small intrusive chained hash table, private to store/ (kv, watch, node).
 *
 * The caller embeds a struct kv_mapent in its item, computes the hash itself and compares keys
 * itself while walking a bucket chain, so one table serves the watch hub's token and key buckets
 * and node.c's per-client watch counts. The tree's child index, with millions of items, uses
 * kv_index.h instead, which costs an item no link or stored hash (moving these few users onto it
 * too would leave the store one table). Single-threaded; no locking.
 */
#ifndef DISCOVERYD_STORE_KV_MAP_H
#define DISCOVERYD_STORE_KV_MAP_H

#include <stddef.h>
#include <stdint.h>
#include "store/hash.h" /* callers hash with hash_of() */

struct kv_mapent {
    struct kv_mapent *next;
    uint64_t hash;
};

struct kv_map {
    struct kv_mapent **buckets;
    size_t mask; /* nbuckets - 1 (a power of two); 0 buckets when mask == 0 and buckets == NULL */
    size_t count;
};

void kv_map_init(struct kv_map *m);
void kv_map_free(struct kv_map *m); /* frees the bucket array only; items are the caller's */
/* The first entry of the chain that may hold hash; walk ->next and compare e->hash and the key. */
static inline struct kv_mapent *kv_map_chain(const struct kv_map *m, uint64_t hash)
{
    return m->buckets ? m->buckets[hash & m->mask] : NULL;
}
/* Allocate the bucket array now (so that later inserts cannot fail). 0, or -1 on ENOMEM. */
int kv_map_reserve(struct kv_map *m);
/* Insert e (e->hash set by the caller). 0, or -1 on ENOMEM (then e is not inserted). */
int kv_map_insert(struct kv_map *m, struct kv_mapent *e);
/* Remove e, which must be in m. */
void kv_map_remove(struct kv_map *m, struct kv_mapent *e);

#endif
