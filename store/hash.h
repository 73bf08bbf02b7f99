/* store/hash.h — the project's one non-cryptographic hash: FNV-1a over bytes plus a final mix.
 *
 * Used for every in-memory hash table (the tree's child index, the watch hub, per-client watch
 * counts, the rate limiter's buckets). Tables that take keys from clients seed it at random
 * (hash_bytes(seed, ...)) so that nobody can aim many keys at one chain.
 */
#ifndef DISCOVERYD_STORE_HASH_H
#define DISCOVERYD_STORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_INIT 0xcbf29ce484222325ULL

/* FNV-1a over bytes, continuing from h (start with HASH_INIT, or a seed). */
static inline uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A final mix so that the low bits used for a bucket depend on every input bit. */
static inline uint64_t hash_mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Fold a small integer (a pointer, a class) into a seed before hashing bytes. */
static inline uint64_t hash_salt(uint64_t seed, uint64_t v)
{
    return seed ^ (v * 0x9e3779b97f4a7c15ULL);
}

/* The hash of a whole byte string. */
static inline uint64_t hash_of(uint64_t seed, const void *p, size_t n)
{
    return hash_mix(hash_bytes(seed, p, n));
}

#endif
