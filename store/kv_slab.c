/* store/kv_slab.c — size-class pages for the tree's nodes (kv_slab.h). */
#include "store/kv_slab.h"

#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define PAGE (64 * 1024)

struct kv_slab_page {
    struct kv_slab_page *next;
    uint64_t align_; /* blocks start 16 bytes in, 8-byte aligned */
};

void kv_slab_init(struct kv_slab *s)
{
    for (size_t i = 0; i < sizeof(s->free) / sizeof(s->free[0]); i++)
        s->free[i] = NULL;
    s->pages = NULL;
    s->cur = NULL;
    s->left = 0;
}

void kv_slab_free_all(struct kv_slab *s)
{
    struct kv_slab_page *p = s->pages;
    while (p) {
        struct kv_slab_page *next = p->next;
        UNPOISON(p, PAGE);
        free(p);
        p = next;
    }
    kv_slab_init(s);
}

void *kv_slab_alloc(struct kv_slab *s, size_t size, uint8_t *words)
{
    size_t w = (size + 7) / 8;
    if (w == 0)
        w = 1;
    if (w * 8 > KV_SLAB_MAX) {
        *words = 0;
        return malloc(size);
    }
    void *b = s->free[w];
    if (b) {
        UNPOISON(b, w * 8);
        s->free[w] = *(void **)b;
    } else {
        if (s->left < w * 8) {
            struct kv_slab_page *p = malloc(PAGE);
            if (!p)
                return NULL;
            p->next = s->pages;
            s->pages = p;
            s->cur = (char *)(p + 1);
            s->left = PAGE - sizeof(*p);
            POISON(s->cur, s->left);
        }
        b = s->cur;
        UNPOISON(b, w * 8);
        s->cur += w * 8;
        s->left -= w * 8;
    }
    *words = (uint8_t)w;
    return b;
}

void kv_slab_release(struct kv_slab *s, void *p, uint8_t words)
{
    if (!p)
        return;
    if (words == 0) {
        free(p);
        return;
    }
    *(void **)p = s->free[words];
    s->free[words] = p;
    POISON(p, (size_t)words * 8);
}
