/* store/kv_index.c — the open-addressing pointer set behind the tree's child index (kv_index.h).
 * 8 bytes per slot at a load of 3/8..3/4, instead of a chain link and a stored hash in every item
 * plus a bucket array: with millions of nodes, the index is a good part of what a node costs.
 */
#include "store/kv_index.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>

void kv_index_init(struct kv_index *ix, uint64_t (*hash)(const void *item))
{
    ix->slots = NULL;
    ix->mask = 0;
    ix->count = 0;
    ix->hash = hash;
}

void kv_index_free(struct kv_index *ix)
{
    free(ix->slots);
    kv_index_init(ix, ix->hash);
}

static void place(uintptr_t *slots, size_t mask, const void *item, uint64_t h)
{
    assert(((uintptr_t)item >> KV_INDEX_TAG_SHIFT) == 0); /* the top byte is the tag's */
    size_t i = (size_t)h & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = kv_index_slot(item, h);
}

int kv_index_reserve(struct kv_index *ix, size_t more)
{
    size_t n = ix->slots ? ix->mask + 1 : 0;
    size_t need = ix->count + more;
    if (n && need <= n / 4 * 3)
        return 0;
    size_t nn = n ? n : 16;
    while (need > nn / 4 * 3)
        nn *= 2;
    uintptr_t *ns = calloc(nn, sizeof(*ns));
    if (!ns)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (ix->slots[i]) {
            const void *it = kv_index_item(ix, i);
            place(ns, nn - 1, it, ix->hash(it));
        }
    free(ix->slots);
    ix->slots = ns;
    ix->mask = nn - 1;
    return 0;
}

void kv_index_insert(struct kv_index *ix, void *item, uint64_t h)
{
    place(ix->slots, ix->mask, item, h);
    ix->count++;
}

void kv_index_remove(struct kv_index *ix, const void *item, uint64_t h)
{
    if (!ix->slots)
        return;
    size_t i = (size_t)h & ix->mask;
    while (kv_index_item(ix, i) != item) {
        if (!ix->slots[i])
            return; /* not present: nothing to do */
        i = (i + 1) & ix->mask;
    }
    /* backward shift: pull up every later item of the run whose home slot does not lie in (i, j] */
    size_t j = i;
    for (;;) {
        j = (j + 1) & ix->mask;
        if (!ix->slots[j])
            break;
        size_t home = (size_t)ix->hash(kv_index_item(ix, j)) & ix->mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        ix->slots[i] = ix->slots[j];
        i = j;
    }
    ix->slots[i] = 0;
    ix->count--;
}
