/* tests/unit/test_kv_slab.c — the tree's node allocator (store/kv_slab.c): blocks of every size
 * class are distinct, aligned and hold what was written until released; a released block is
 * reused for the same size only; large blocks come from malloc; everything goes with free_all
 * (the sanitize build checks that nothing leaks and that no block overlaps another). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv_slab.h"

struct blk {
    unsigned char *p;
    size_t size;
    uint8_t words;
    unsigned char fill;
};

static void check(const struct blk *b)
{
    for (size_t i = 0; i < b->size; i++)
        if (b->p[i] != b->fill)
            fail_msg("block of %zu bytes changed at %zu", b->size, i);
}

static void test_blocks_are_distinct_aligned_and_kept(void **s)
{
    (void)s;
    struct kv_slab sl;
    kv_slab_init(&sl);
    enum { N = 4000 };
    static struct blk bs[N];
    srand(7);
    for (int i = 0; i < N; i++) {
        bs[i].size = 1 + (size_t)rand() % 700; /* both sides of KV_SLAB_MAX */
        bs[i].p = kv_slab_alloc(&sl, bs[i].size, &bs[i].words);
        assert_non_null(bs[i].p);
        assert_int_equal((uintptr_t)bs[i].p % 8, 0);
        if (bs[i].size > KV_SLAB_MAX)
            assert_int_equal(bs[i].words, 0);
        else
            assert_int_equal(bs[i].words, (bs[i].size + 7) / 8);
        bs[i].fill = (unsigned char)i;
        memset(bs[i].p, bs[i].fill, bs[i].size);
    }
    /* release every other one, then allocate again: nothing live is disturbed */
    for (int i = 0; i < N; i += 2)
        kv_slab_release(&sl, bs[i].p, bs[i].words);
    for (int i = 1; i < N; i += 2)
        check(&bs[i]);
    for (int i = 0; i < N; i += 2) {
        bs[i].p = kv_slab_alloc(&sl, bs[i].size, &bs[i].words);
        assert_non_null(bs[i].p);
        bs[i].fill = (unsigned char)(i + 1);
        memset(bs[i].p, bs[i].fill, bs[i].size);
    }
    for (int i = 0; i < N; i++)
        check(&bs[i]);
    /* the malloc'd ones are the caller's; pages go at once */
    for (int i = 0; i < N; i++)
        if (bs[i].words == 0)
            kv_slab_release(&sl, bs[i].p, 0);
    kv_slab_free_all(&sl);
    assert_null(sl.pages);
}

static void test_a_released_block_is_reused_for_its_size(void **s)
{
    (void)s;
    struct kv_slab sl;
    kv_slab_init(&sl);
    uint8_t w1, w2, w3;
    void *a = kv_slab_alloc(&sl, 180, &w1);
    void *b = kv_slab_alloc(&sl, 200, &w2);
    assert_ptr_not_equal(a, b);
    kv_slab_release(&sl, a, w1);
    void *c = kv_slab_alloc(&sl, 200, &w3); /* another size: not a's block */
    assert_ptr_not_equal(c, a);
    void *d = kv_slab_alloc(&sl, 177, &w3); /* same class as 180 (23 words): a's block */
    assert_ptr_equal(d, a);
    assert_int_equal(w3, w1);
    /* consecutive blocks of one class sit back to back: no header, no rounding beyond 8 bytes */
    uint8_t wx, wy;
    char *x = kv_slab_alloc(&sl, 172, &wx), *y = kv_slab_alloc(&sl, 172, &wy);
    assert_int_equal(y - x, 176);
    kv_slab_free_all(&sl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_are_distinct_aligned_and_kept),
        cmocka_unit_test(test_a_released_block_is_reused_for_its_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
