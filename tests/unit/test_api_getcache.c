/* tests/unit/test_api_getcache.c — a thread's copies of GET answers (api/getcache.h): found only
 * under the very key and flags they were put with, replaced by a colliding put, bounded in body
 * size and total bytes; and the instant a rendering with TTLs stops being right
 * (api_json_get_until), which bounds how long a copy may be served without a write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/getcache.h"
#include "api/json.h"

static char *dup_body(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static void put(struct api_getcache *c, const char *key, bool rec, bool sorted, uint64_t stamp, const char *body)
{
    struct api_getcache_entry e = {.stamp = stamp, .until_ms = INT64_MAX, .body_len = strlen(body)};
    e.tok.exists = true;
    e.tok.size = 3;
    api_getcache_put(c, key, strlen(key), rec, sorted, &e, dup_body(body, strlen(body)));
}

static void test_found_only_under_its_key_and_flags(void **s)
{
    struct api_getcache *c = api_getcache_new();
    assert_non_null(c);
    put(c, "/discovery/a", false, false, 7, "{\"a\"}\n");
    const struct api_getcache_entry *e = api_getcache_get(c, "/discovery/a", 12, false, false);
    assert_non_null(e);
    assert_int_equal(e->stamp, 7);
    assert_int_equal(e->tok.size, 3);
    assert_int_equal(e->body_len, 6);
    assert_memory_equal(e->body, "{\"a\"}\n", 6);
    assert_null(api_getcache_get(c, "/discovery/a", 12, true, false));
    assert_null(api_getcache_get(c, "/discovery/a", 12, false, true));
    assert_null(api_getcache_get(c, "/discovery/b", 12, false, false));
    assert_null(api_getcache_get(c, "/discovery/a/x", 14, false, false));
    /* a newer copy of the same request replaces the older */
    put(c, "/discovery/a", false, false, 9, "{\"b\"}\n");
    e = api_getcache_get(c, "/discovery/a", 12, false, false);
    assert_non_null(e);
    assert_int_equal(e->stamp, 9);
    assert_memory_equal(e->body, "{\"b\"}\n", 6);
    api_getcache_free(c);
}

static void test_many_keys_stay_bounded_and_exact(void **s)
{
    struct api_getcache *c = api_getcache_new();
    char key[64], body[64];
    for (int i = 0; i < 4 * API_GETCACHE_SLOTS; i++) {
        snprintf(key, sizeof(key), "/discovery/t%d", i);
        snprintf(body, sizeof(body), "body of %d\n", i);
        put(c, key, i & 1, false, (uint64_t)i, body);
    }
    int found = 0;
    for (int i = 0; i < 4 * API_GETCACHE_SLOTS; i++) {
        snprintf(key, sizeof(key), "/discovery/t%d", i);
        snprintf(body, sizeof(body), "body of %d\n", i);
        const struct api_getcache_entry *e = api_getcache_get(c, key, strlen(key), i & 1, false);
        if (e == NULL)
            continue;
        found++;
        assert_int_equal(e->stamp, (uint64_t)i); /* never another request's copy */
        assert_int_equal(e->body_len, strlen(body));
        assert_memory_equal(e->body, body, e->body_len);
    }
    assert_true(found > 0 && found <= API_GETCACHE_SLOTS);
    api_getcache_free(c);
}

static void test_large_bodies_are_not_kept(void **s)
{
    struct api_getcache *c = api_getcache_new();
    size_t n = API_GETCACHE_MAX_BODY + 1;
    struct api_getcache_entry e = {.stamp = 1, .until_ms = INT64_MAX, .body_len = n};
    char *big = calloc(1, n);
    assert_non_null(big);
    api_getcache_put(c, "/discovery/big", 14, false, false, &e, big); /* freed by the cache */
    assert_null(api_getcache_get(c, "/discovery/big", 14, false, false));
    /* the byte budget: bodies just under the cap, until it is spent */
    size_t each = API_GETCACHE_MAX_BODY, kept = 0;
    char key[32];
    for (int i = 0; i < 2 * (int)(API_GETCACHE_BYTES / each); i++) {
        snprintf(key, sizeof(key), "/discovery/k%d", i);
        struct api_getcache_entry f = {.stamp = 1, .until_ms = INT64_MAX, .body_len = each};
        api_getcache_put(c, key, strlen(key), false, false, &f, calloc(1, each));
    }
    for (int i = 0; i < 2 * (int)(API_GETCACHE_BYTES / each); i++) {
        snprintf(key, sizeof(key), "/discovery/k%d", i);
        if (api_getcache_get(c, key, strlen(key), false, false) != NULL)
            kept++;
    }
    assert_true(kept > 0 && kept * each <= API_GETCACHE_BYTES);
    api_getcache_free(c);
}

/* ttl = ceil((expire - now) / 1 s): the rendering is right until the next whole second of the
 * remainder is crossed, and no later. */
/* A tree holding /discovery/t with one member m, expiring at expire_ms (0: never); *d = the dir. */
static struct kv *ttl_tree(int64_t expire_ms, const struct kv_node **d)
{
    struct kv *kv = kv_new();
    assert_non_null(kv);
    struct kv_image t = {.key = "/discovery/t", .key_len = 12, .created_index = 4, .modified_index = 4, .dir = true};
    struct kv_image m = {.key = "/discovery/t/m", .key_len = 14, .value = "v", .value_len = 1, .created_index = 5,
                         .modified_index = 5, .expire_ms = expire_ms};
    assert_int_equal(kv_restore_node(kv, &t), 0);
    assert_int_equal(kv_restore_node(kv, &m), 0);
    *d = kv_lookup(kv, "/discovery/t", 12);
    return kv;
}

static void test_until_is_the_next_ttl_change(void **s)
{
    const struct kv_node *d;
    struct kv *kv = ttl_tree(100500, &d);
    const int64_t nows[] = {90000, 98500, 98501, 99499, 99500, 99501, 100499, 100500, 100501, 101000};
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        struct api_buf a = {0}, b = {0};
        int64_t until = 0;
        api_json_get_until(&a, kv, d, false, false, nows[i], &until);
        assert_true(until > nows[i]);
        /* the same bytes at until - 1, different ones at until */
        api_json_get(&b, kv, d, false, false, until - 1);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.p, b.p, a.len);
        api_buf_free(&b);
        api_json_get(&b, kv, d, false, false, until);
        assert_true(a.len != b.len || memcmp(a.p, b.p, a.len) != 0);
        api_buf_free(&a);
        api_buf_free(&b);
    }
    kv_free(kv);
    /* no TTL anywhere: right until the tree changes */
    kv = ttl_tree(0, &d);
    struct api_buf a = {0};
    int64_t until = 0;
    api_json_get_until(&a, kv, d, true, true, 5, &until);
    assert_int_equal(until, INT64_MAX);
    api_buf_free(&a);
    kv_free(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found_only_under_its_key_and_flags),
        cmocka_unit_test(test_many_keys_stay_bounded_and_exact),
        cmocka_unit_test(test_large_bodies_are_not_kept),
        cmocka_unit_test(test_until_is_the_next_ttl_change),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
