/* tests/unit/test_kv_index.c — the open-addressing pointer set behind the tree's child index
 * (store/kv_index.c): every item present is found, every removed one is not, through growth,
 * wrap-around at the end of the slot array and backward-shift deletion inside long runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv_index.h"

struct item {
    uint64_t h; /* the hash the test gives it (so collisions are chosen, not hoped for) */
    int id;
};

static uint64_t item_hash(const void *p)
{
    return ((const struct item *)p)->h;
}

static bool has(const struct kv_index *ix, const struct item *it)
{
    if (!ix->slots)
        return false;
    for (size_t i = kv_index_start(ix, it->h); ix->slots[i]; i = kv_index_next(ix, i))
        if (kv_index_maybe(ix, i, it->h) && kv_index_item(ix, i) == it)
            return true;
    return false;
}

static void check_all(const struct kv_index *ix, struct item *items, const bool *in, int n)
{
    size_t count = 0;
    for (int i = 0; i < n; i++) {
        if (has(ix, &items[i]) != in[i])
            fail_msg("item %d (hash %llu): present %d, expected %d", i, (unsigned long long)items[i].h,
                     has(ix, &items[i]), in[i]);
        count += in[i];
    }
    assert_int_equal(ix->count, count);
    /* load never above 3/4 */
    assert_true(ix->count <= (ix->mask + 1) / 4 * 3);
}

/* Random inserts and removes against a reference, with hashes drawn from a small range so that
 * runs are long and cross the end of the array. */
static void run_tagged(uint64_t hash_range, uint64_t tag_range, int n, unsigned seed)
{
    struct item *items = calloc((size_t)n, sizeof(*items));
    bool *in = calloc((size_t)n, sizeof(*in));
    assert_non_null(items);
    assert_non_null(in);
    srand(seed);
    for (int i = 0; i < n; i++) {
        items[i].id = i;
        /* the top half of the range lands at the end of a 16-slot table and wraps */
        items[i].h = hash_range ? (uint64_t)rand() % hash_range : ((uint64_t)rand() << 32) ^ (uint64_t)rand();
        if (tag_range) /* the top byte is the slot's tag: equal and different tags within one run */
            items[i].h = (items[i].h & ((1ull << 56) - 1)) | ((uint64_t)rand() % tag_range) << 56;
    }
    struct kv_index ix;
    kv_index_init(&ix, item_hash);
    for (int step = 0; step < n * 8; step++) {
        int i = rand() % n;
        if (in[i]) {
            kv_index_remove(&ix, &items[i], items[i].h);
            in[i] = false;
        } else {
            assert_int_equal(kv_index_reserve(&ix, 1), 0);
            kv_index_insert(&ix, &items[i], items[i].h);
            in[i] = true;
        }
        if (step % 97 == 0)
            check_all(&ix, items, in, n);
    }
    check_all(&ix, items, in, n);
    /* drain: removing everything leaves an empty table */
    for (int i = 0; i < n; i++)
        if (in[i]) {
            kv_index_remove(&ix, &items[i], items[i].h);
            in[i] = false;
        }
    check_all(&ix, items, in, n);
    for (size_t s = 0; s <= ix.mask; s++)
        assert_int_equal(ix.slots[s], 0);
    kv_index_free(&ix);
    free(items);
    free(in);
}

static void run(uint64_t hash_range, int n, unsigned seed)
{
    run_tagged(hash_range, 0, n, seed);
}

static void test_colliding_hashes_wrap_and_shift(void **s)
{
    (void)s;
    run(16, 11, 1);   /* at most 12 in 16 slots: never grows, runs wrap */
    run(5, 40, 2);    /* five home slots for forty items: very long runs */
    run(1, 30, 3);    /* one home slot: a single run */
    run_tagged(5, 3, 40, 5);   /* long runs mixing three tags */
    run_tagged(1, 256, 30, 6); /* one run, tags from the whole top byte */
    run_tagged(0, 2, 3000, 7); /* growth with two tags */
}

static void test_spread_hashes_through_growth(void **s)
{
    (void)s;
    run(0, 5000, 4);
}

static void test_reserve_ahead_means_inserts_cannot_fail(void **s)
{
    (void)s;
    struct kv_index ix;
    kv_index_init(&ix, item_hash);
    assert_null(ix.slots);
    assert_int_equal(kv_index_reserve(&ix, 100), 0);
    size_t slots = ix.mask + 1;
    assert_true(100 <= slots / 4 * 3);
    struct item items[100];
    for (int i = 0; i < 100; i++) {
        items[i].h = (uint64_t)i * 7919u;
        items[i].id = i;
        kv_index_insert(&ix, &items[i], items[i].h);
    }
    assert_int_equal(ix.mask + 1, slots); /* no growth behind the caller's back */
    assert_int_equal(kv_index_reserve(&ix, 0), 0);
    for (int i = 0; i < 100; i++)
        assert_true(has(&ix, &items[i]));
    /* removing an item that is not there changes nothing */
    struct item stranger = {.h = 3, .id = -1};
    kv_index_remove(&ix, &stranger, stranger.h);
    assert_int_equal(ix.count, 100);
    kv_index_free(&ix);
    assert_null(ix.slots);
    assert_int_equal(ix.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colliding_hashes_wrap_and_shift),
        cmocka_unit_test(test_spread_hashes_through_growth),
        cmocka_unit_test(test_reserve_ahead_means_inserts_cannot_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
