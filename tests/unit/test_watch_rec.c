/* tests/unit/test_watch_rec.c — a token's history record (store/watch_rec.c) gives back exactly the
 * event it was made from: every field of node and prevNode, value present vs absent vs empty,
 * dirs, refreshes, indexes far apart and near UINT64_MAX, keys long and short. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/watch_rec.h"

static void same_str(const char *a, const char *b, uint32_t alen, uint32_t blen)
{
    assert_true((a == NULL) == (b == NULL));
    assert_int_equal(alen, blen);
    if (a) {
        assert_memory_equal(a, b, alen);
        assert_int_equal(b[blen], '\0');
    }
}

static void same_enode(const struct kv_enode *a, const struct kv_enode *b)
{
    assert_string_equal(a->key, b->key);
    same_str(a->value, b->value, a->value_len, b->value_len);
    assert_int_equal(a->dir, b->dir);
    assert_int_equal(a->expire_ms, b->expire_ms);
    assert_int_equal(a->modified_index, b->modified_index);
    assert_int_equal(a->created_index, b->created_index);
}

/* encode, decode, rebuild; compare with the original. */
static void round_trip(const struct kv_event *ev, const char *prefix)
{
    size_t plen = strlen(prefix);
    uint8_t *rec = wrec_encode(ev, plen);
    assert_non_null(rec);
    assert_int_equal(wrec_index(rec), ev->index);
    struct wrec_view v;
    wrec_decode(rec, &v);
    assert_int_equal(v.index, ev->index);
    assert_int_equal(v.suffix_len, strlen(ev->node.key) - plen);
    struct kv_event *back = wrec_event(&v, prefix, plen);
    assert_non_null(back);
    assert_int_equal(back->action, ev->action);
    assert_int_equal(back->index, ev->index);
    assert_int_equal(back->refresh, ev->refresh);
    assert_int_equal(back->has_prev, ev->has_prev);
    assert_int_equal(back->refs, 1);
    same_enode(&back->node, &ev->node);
    if (ev->has_prev)
        same_enode(&back->prev, &ev->prev);
    else
        assert_null(back->prev.value);
    kv_event_unref(back);
    free(rec);
}

static struct kv_event *mk(enum kv_action a, uint64_t index, const char *key, const char *val, uint32_t vlen,
                           const char *pval, uint32_t plen)
{
    struct kv_event *ev = kv_event_new(a, index, key, (uint32_t)strlen(key), val, vlen, pval, plen);
    assert_non_null(ev);
    return ev;
}

#define TOK "/discovery/6c007a14875d53d9bf0ef5a6fc0257c8"

static void test_the_events_a_token_sees(void **s)
{
    (void)s;
    /* /new: a create of _config/size, no prevNode */
    struct kv_event *ev = mk(KV_ACT_CREATE, 7, TOK "/_config/size", "3", 1, NULL, 0);
    ev->node.created_index = ev->node.modified_index = 7;
    round_trip(ev, TOK);
    kv_event_unref(ev);
    /* a registration */
    ev = mk(KV_ACT_CREATE, 9, TOK "/fc594def544cceea", "m1=http://10.0.0.1:2380", 23, NULL, 0);
    ev->node.created_index = ev->node.modified_index = 9;
    round_trip(ev, TOK);
    kv_event_unref(ev);
    /* a set over a file, with a TTL, replacing an empty value */
    ev = mk(KV_ACT_SET, 1000000007, TOK "/k", "", 0, "", 0);
    ev->node.created_index = ev->node.modified_index = 1000000007;
    ev->node.expire_ms = 1764547200123;
    ev->has_prev = true;
    ev->prev.created_index = 12;
    ev->prev.modified_index = 999;
    ev->prev.expire_ms = 1764547100000;
    round_trip(ev, TOK);
    kv_event_unref(ev);
    /* a refresh (compareAndSwap with the old value) */
    ev = mk(KV_ACT_CAS, 44, TOK "/k", "v", 1, "v", 1);
    ev->node.created_index = 40;
    ev->node.modified_index = 44;
    ev->has_prev = true;
    ev->prev.created_index = 40;
    ev->prev.modified_index = 41;
    ev->refresh = true;
    round_trip(ev, TOK);
    kv_event_unref(ev);
    /* deleting the token dir itself: key == prefix, dirs on both sides, no values */
    ev = mk(KV_ACT_DELETE, 50, TOK, NULL, 0, NULL, 0);
    ev->node.dir = true;
    ev->node.created_index = 7;
    ev->node.modified_index = 50;
    ev->has_prev = true;
    ev->prev.dir = true;
    ev->prev.created_index = 7;
    ev->prev.modified_index = 7;
    round_trip(ev, TOK);
    kv_event_unref(ev);
    /* an expire of a file: the node has no value, prevNode has one */
    ev = mk(KV_ACT_EXPIRE, 61, TOK "/ttl", NULL, 0, "gone", 4);
    ev->node.created_index = 60;
    ev->node.modified_index = 61;
    ev->has_prev = true;
    ev->prev.created_index = 60;
    ev->prev.modified_index = 60;
    ev->prev.expire_ms = 5;
    round_trip(ev, TOK);
    kv_event_unref(ev);
}

static void test_extremes(void **s)
{
    (void)s;
    /* indexes near the top, a created index above the event's (as a hand-made snapshot could
     * carry), a negative expiry, a value with NUL bytes, a long key */
    char key[700], val[5000];
    snprintf(key, sizeof(key), "%s/", TOK);
    size_t kl = strlen(key);
    memset(key + kl, 'a', sizeof(key) - kl - 1);
    key[sizeof(key) - 1] = '\0';
    for (size_t i = 0; i < sizeof(val); i++)
        val[i] = (char)(i * 7);
    struct kv_event *ev = mk(KV_ACT_UPDATE, UINT64_MAX - 1, key, val, sizeof(val), val, 3);
    ev->node.created_index = UINT64_MAX;
    ev->node.modified_index = 1;
    ev->node.expire_ms = INT64_MAX;
    ev->has_prev = true;
    ev->prev.created_index = 0;
    ev->prev.modified_index = UINT64_MAX;
    ev->prev.expire_ms = -1;
    round_trip(ev, TOK);
    kv_event_unref(ev);
    /* a dir created under the token (node.dir, no value) */
    ev = mk(KV_ACT_SET, 3, TOK "/_config", NULL, 0, NULL, 0);
    ev->node.dir = true;
    ev->node.created_index = ev->node.modified_index = 3;
    round_trip(ev, TOK);
    kv_event_unref(ev);
}

/* The record is what makes a token cheap: it must stay far smaller than the event. */
static void test_a_creation_record_is_small(void **s)
{
    (void)s;
    struct kv_event *ev = mk(KV_ACT_CREATE, 123456, TOK "/_config/size", "3", 1, NULL, 0);
    ev->node.created_index = ev->node.modified_index = 123456;
    uint8_t *rec = wrec_encode(ev, strlen(TOK));
    assert_non_null(rec);
    struct wrec_view v;
    wrec_decode(rec, &v);
    size_t used = (size_t)(v.suffix + v.suffix_len - (const char *)rec);
    assert_true(used <= 24);
    free(rec);
    kv_event_unref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_events_a_token_sees),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_a_creation_record_is_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
