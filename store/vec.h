/* store/vec.h — the store's one way to grow an array: capacity doubles (from a minimum) until it
 * holds `need` elements. Store thread and api threads alike; no locking. (store/raft/ grows its log
 * through its own injected allocator and does not use this.)
 */
#ifndef DISCOVERYD_STORE_VEC_H
#define DISCOVERYD_STORE_VEC_H

#include <stdlib.h>

/* Make *p hold at least need elements of elem bytes; *cap is the capacity in elements.
 * 0, or -1 on ENOMEM (then *p and *cap are unchanged). */
static inline int vec_reserve(void **p, size_t *cap, size_t need, size_t elem, size_t min)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : min;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

#endif
