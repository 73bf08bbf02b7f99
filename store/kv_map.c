/* store/kv_map.c — the intrusive chained hash table behind the watch hub's buckets and the
 * per-client watch counts. Grows by doubling at load factor 1; never shrinks (what it holds is
 * bounded by token expiry and the watch caps, and a shrink/grow oscillation would cost more than
 * the memory it saves).
 */
#include "store/kv_map.h"

#include <stdlib.h>

void kv_map_init(struct kv_map *m)
{
    m->buckets = NULL;
    m->mask = 0;
    m->count = 0;
}

void kv_map_free(struct kv_map *m)
{
    free(m->buckets);
    kv_map_init(m);
}

static int kv_map_grow(struct kv_map *m)
{
    size_t n = m->buckets ? (m->mask + 1) * 2 : 16;
    struct kv_mapent **nb = calloc(n, sizeof(*nb));
    if (!nb)
        return -1;
    if (m->buckets) {
        for (size_t i = 0; i <= m->mask; i++) {
            struct kv_mapent *e = m->buckets[i];
            while (e) {
                struct kv_mapent *next = e->next;
                size_t b = e->hash & (n - 1);
                e->next = nb[b];
                nb[b] = e;
                e = next;
            }
        }
        free(m->buckets);
    }
    m->buckets = nb;
    m->mask = n - 1;
    return 0;
}

int kv_map_reserve(struct kv_map *m)
{
    return m->buckets ? 0 : kv_map_grow(m);
}

int kv_map_insert(struct kv_map *m, struct kv_mapent *e)
{
    if (!m->buckets || m->count >= m->mask + 1) {
        /* A failed grow is fatal only when there is no table at all; a full table still works,
         * it is merely slower. */
        if (kv_map_grow(m) != 0 && !m->buckets)
            return -1;
    }
    size_t b = e->hash & m->mask;
    e->next = m->buckets[b];
    m->buckets[b] = e;
    m->count++;
    return 0;
}

void kv_map_remove(struct kv_map *m, struct kv_mapent *e)
{
    struct kv_mapent **pp = &m->buckets[e->hash & m->mask];
    while (*pp && *pp != e)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = e->next;
        m->count--;
    }
    e->next = NULL;
}
