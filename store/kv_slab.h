/* store/kv_slab.h — the tree's node allocator, private to store/kv_*.c: blocks of up to
 * KV_SLAB_MAX bytes carved from 64 KiB pages in 8-byte steps, with one free list per size, so that
 * a node costs its own bytes and not malloc's header and 16-byte rounding (about 50 bytes of each
 * empty token's 3 nodes). Freed blocks are reused by nodes of the same size (a token's nodes come
 * in a few sizes); pages go back only with the tree (kv_free). Larger blocks come from malloc.
 * Under AddressSanitizer, free and unused bytes are poisoned, so a stale node is still caught.
 * Store thread only (the tree's writer).
 */
#ifndef DISCOVERYD_STORE_KV_SLAB_H
#define DISCOVERYD_STORE_KV_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define KV_SLAB_MAX 512 /* a size class (KV_SLAB_MAX / 8) fits in a byte */

struct kv_slab_page;

struct kv_slab {
    void *free[KV_SLAB_MAX / 8 + 1]; /* by size in 8-byte words: freed blocks, a LIFO */
    struct kv_slab_page *pages;
    char *cur;   /* the unused end of the newest page */
    size_t left; /* ... its length */
};

void kv_slab_init(struct kv_slab *s);
void kv_slab_free_all(struct kv_slab *s); /* every page at once (blocks from malloc are the caller's) */
/* A block of at least size bytes, 8-byte aligned; *words = its size class (0: it came from malloc,
 * release it with free() or kv_slab_release(s, p, 0)). NULL on ENOMEM. */
void *kv_slab_alloc(struct kv_slab *s, size_t size, uint8_t *words);
void kv_slab_release(struct kv_slab *s, void *p, uint8_t words);

#endif
