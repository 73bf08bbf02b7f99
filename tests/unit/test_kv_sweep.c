/* tests/unit/test_kv_sweep.c — expiry in the tree (store/kv.c): TTL nodes expire through SWEEP
 * with one "expire" event and one index each, a dir TTL takes its subtree, tokens expire
 * token_ttl after creation with recursive "delete" events in O(expired), sweep_max bounds a
 * command, kv_next_due says when, and apply is a pure function of the command sequence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv.h"

#define MAXEV 4096

struct evs {
    struct kv_event *v[MAXEV];
    int n;
};

static void on_ev(void *arg, struct kv_event *ev)
{
    struct evs *e = arg;
    assert_true(e->n < MAXEV);
    e->v[e->n++] = kv_event_ref(ev);
}

static void evs_clear(struct evs *e)
{
    for (int i = 0; i < e->n; i++)
        kv_event_unref(e->v[i]);
    e->n = 0;
}

static int apply_cmd(struct kv *kv, const struct kv_cmd *c, struct evs *e)
{
    uint8_t *buf;
    size_t len;
    struct kv_error err = {0};
    assert_int_equal(kv_cmd_encode(c, &buf, &len), 0);
    int rc = kv_apply(kv, buf, len, on_ev, e, &err);
    kv_error_clear(&err);
    free(buf);
    return rc;
}

static int put(struct kv *kv, const char *key, const char *val, bool dir, int64_t now, int64_t expire)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_SET;
    c.key = key;
    c.key_len = (uint32_t)strlen(key);
    c.value = val;
    c.value_len = val ? (uint32_t)strlen(val) : 0;
    c.dir = dir;
    c.now_ms = now;
    c.expire_ms = expire;
    struct evs e = {.n = 0};
    int rc = apply_cmd(kv, &c, &e);
    evs_clear(&e);
    return rc;
}

static int sweep(struct kv *kv, int64_t now, int64_t token_ttl, uint32_t max, struct evs *e)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_SWEEP;
    c.now_ms = now;
    c.token_ttl_ms = token_ttl;
    c.sweep_max = max;
    return apply_cmd(kv, &c, e);
}

static void test_ttl_key_expires_with_expire_event_and_one_index(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    assert_int_equal(put(kv, "/discovery/T/k", "v", false, 1000, 5000), 0);
    assert_int_equal(kv_next_due(kv, 0), 5000);
    assert_int_equal(sweep(kv, 4999, 0, 0, &e), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(kv_index(kv), 2);
    assert_int_equal(sweep(kv, 5000, 0, 0, &e), 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0]->action, KV_ACT_EXPIRE);
    assert_string_equal(kv_action_name(e.v[0]->action), "expire");
    assert_string_equal(e.v[0]->node.key, "/discovery/T/k");
    assert_null(e.v[0]->node.value);
    assert_int_equal(e.v[0]->index, 3);
    assert_int_equal(e.v[0]->node.modified_index, 3);
    assert_int_equal(e.v[0]->node.created_index, 2);
    assert_true(e.v[0]->has_prev);
    assert_string_equal(e.v[0]->prev.value, "v");
    assert_int_equal(e.v[0]->prev.expire_ms, 5000);
    assert_int_equal(kv_index(kv), 3);
    assert_null(kv_lookup(kv, "/discovery/T/k", 14));
    assert_int_equal(kv_next_due(kv, 0), INT64_MAX);
    evs_clear(&e);
    kv_free(kv);
}

static void test_dir_ttl_takes_its_subtree_in_one_event(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    assert_int_equal(put(kv, "/discovery/T/d", NULL, true, 1000, 8000), 0);
    assert_int_equal(put(kv, "/discovery/T/d/a", "1", false, 1000, 0), 0);
    assert_int_equal(put(kv, "/discovery/T/d/b", "2", false, 1000, 9000), 0); /* own TTL, later */
    assert_int_equal(sweep(kv, 8000, 0, 0, &e), 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0]->action, KV_ACT_EXPIRE);
    assert_true(e.v[0]->node.dir);
    assert_true(e.v[0]->prev.dir);
    assert_null(kv_lookup(kv, "/discovery/T/d/a", 16));
    assert_null(kv_lookup(kv, "/discovery/T/d/b", 16));
    /* the child's TTL left with it */
    assert_int_equal(kv_next_due(kv, 0), INT64_MAX);
    evs_clear(&e);
    assert_int_equal(sweep(kv, 10000, 0, 0, &e), 0);
    assert_int_equal(e.n, 0);
    kv_free(kv);
}

static void test_removing_ttl_makes_key_permanent(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    assert_int_equal(put(kv, "/discovery/T/k", "v", false, 1000, 5000), 0);
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_UPDATE;
    c.key = "/discovery/T/k";
    c.key_len = 14;
    c.value = "w";
    c.value_len = 1;
    assert_int_equal(apply_cmd(kv, &c, &e), 0);
    assert_int_equal(e.v[0]->node.expire_ms, 0);
    evs_clear(&e);
    assert_int_equal(sweep(kv, 100000, 0, 0, &e), 0);
    assert_int_equal(e.n, 0);
    assert_non_null(kv_lookup(kv, "/discovery/T/k", 14));
    kv_free(kv);
}

static void test_ttls_expire_in_time_order(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    assert_int_equal(put(kv, "/discovery/T/c", "v", false, 0, 3000), 0);
    assert_int_equal(put(kv, "/discovery/T/a", "v", false, 0, 1000), 0);
    assert_int_equal(put(kv, "/discovery/T/b", "v", false, 0, 2000), 0);
    assert_int_equal(kv_next_due(kv, 0), 1000);
    assert_int_equal(sweep(kv, 5000, 0, 0, &e), 0);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.v[0]->node.key, "/discovery/T/a");
    assert_string_equal(e.v[1]->node.key, "/discovery/T/b");
    assert_string_equal(e.v[2]->node.key, "/discovery/T/c");
    assert_int_equal(e.v[0]->index + 1, e.v[1]->index);
    assert_int_equal(e.v[1]->index + 1, e.v[2]->index);
    evs_clear(&e);
    kv_free(kv);
}

static void test_token_expires_token_ttl_after_creation(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    assert_int_equal(put(kv, "/discovery/T/_config/size", "3", false, 1000, 0), 0);
    assert_int_equal(put(kv, "/discovery/T/m1", "x", false, 1500, 0), 0);
    assert_int_equal(kv_ntokens(kv), 1);
    assert_int_equal(kv_next_due(kv, 10000), 11000);
    assert_int_equal(kv_next_due(kv, 0), INT64_MAX); /* tokens never expire */
    assert_int_equal(sweep(kv, 10999, 10000, 0, &e), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(sweep(kv, 50000, 0, 0, &e), 0);
    assert_int_equal(e.n, 0);
    assert_int_equal(sweep(kv, 11000, 10000, 0, &e), 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0]->action, KV_ACT_DELETE);
    assert_string_equal(e.v[0]->node.key, "/discovery/T");
    assert_true(e.v[0]->node.dir);
    assert_int_equal(e.v[0]->node.created_index, 2);
    assert_int_equal(e.v[0]->index, 4);
    assert_int_equal(kv_ntokens(kv), 0);
    assert_int_equal(kv_nnodes(kv), 2);
    assert_null(kv_lookup(kv, "/discovery/T", 12));
    evs_clear(&e);
    kv_free(kv);
}

static void test_token_sweep_skips_deleted_and_uses_recreated_time(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    assert_int_equal(put(kv, "/discovery/A/_config/size", "3", false, 1000, 0), 0);
    assert_int_equal(put(kv, "/discovery/B/_config/size", "3", false, 2000, 0), 0);
    /* A deleted by hand and recreated later: its old creation time must not expire it */
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_DELETE;
    c.key = "/discovery/A";
    c.key_len = 12;
    c.recursive = true;
    assert_int_equal(apply_cmd(kv, &c, &e), 0);
    evs_clear(&e);
    assert_int_equal(put(kv, "/discovery/A/_config/size", "3", false, 9000, 0), 0);
    assert_int_equal(sweep(kv, 2000 + 5000, 5000, 0, &e), 0);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.v[0]->node.key, "/discovery/B");
    evs_clear(&e);
    assert_non_null(kv_lookup(kv, "/discovery/A", 12));
    assert_int_equal(kv_next_due(kv, 5000), 14000);
    assert_int_equal(sweep(kv, 14000, 5000, 0, &e), 0);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.v[0]->node.key, "/discovery/A");
    evs_clear(&e);
    kv_free(kv);
}

static void test_files_directly_under_discovery_are_not_tokens(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    assert_int_equal(put(kv, "/discovery/f", "x", false, 0, 0), 0);
    assert_int_equal(put(kv, "/other/T/x", "x", false, 0, 0), 0);
    assert_int_equal(kv_ntokens(kv), 0);
    assert_int_equal(sweep(kv, 100000, 1, 0, &e), 0);
    assert_int_equal(e.n, 0);
    kv_free(kv);
}

static void test_sweep_max_bounds_events_per_command(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    char k[64];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "/discovery/t%02d/_config/size", i);
        assert_int_equal(put(kv, k, "3", false, 1000 + i, 0), 0);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(k, sizeof(k), "/discovery/keep/k%d", i);
        assert_int_equal(put(kv, k, "v", false, 100000, 2000), 0);
    }
    uint64_t idx = kv_index(kv);
    assert_int_equal(sweep(kv, 3000, 1000, 20, &e), 0);
    assert_int_equal(e.n, 20);
    /* TTL expiries first, then the oldest tokens */
    for (int i = 0; i < 5; i++)
        assert_int_equal(e.v[i]->action, KV_ACT_EXPIRE);
    assert_string_equal(e.v[5]->node.key, "/discovery/t00");
    assert_string_equal(e.v[19]->node.key, "/discovery/t14");
    assert_int_equal(kv_index(kv), idx + 20);
    evs_clear(&e);
    assert_int_equal(sweep(kv, 3000, 1000, 0, &e), 0); /* 0 = 1024 */
    assert_int_equal(e.n, 35);
    evs_clear(&e);
    assert_int_equal(kv_ntokens(kv), 1); /* "keep" is young */
    kv_free(kv);
}

static void test_token_expiry_is_proportional_to_expired(void **state)
{
    (void)state;
    /* 100k live tokens and 10 old ones: the sweep must emit exactly the 10, and stay fast
     * (no wall-clock assertion; the heap makes it O(10 log n)). */
    struct kv *kv = kv_new();
    struct evs e = {.n = 0};
    char k[80];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "/discovery/old%d/_config/size", i);
        assert_int_equal(put(kv, k, "3", false, 1000, 0), 0);
    }
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof(k), "/discovery/%032x", i);
        assert_int_equal(put(kv, k, NULL, true, 50000, 0), 0);
    }
    assert_int_equal(kv_ntokens(kv), 100010);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(sweep(kv, 20000, 10000, 0, &e), 0);
        assert_int_equal(e.n, round == 0 ? 10 : 0);
        evs_clear(&e);
    }
    assert_int_equal(kv_ntokens(kv), 100000);
    assert_int_equal(kv_next_due(kv, 10000), 60000);
    kv_free(kv);
}

/* A key longer than the stack buffers the tree builds keys in: its expiry event still names it whole. */
static void test_a_long_key_expires_under_its_whole_key(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    char key[700];
    int n = snprintf(key, sizeof(key), "/discovery/T/%0300d/%0300d", 1, 2);
    assert_true(n > 600 && (size_t)n < sizeof(key));
    assert_int_equal(put(kv, key, "v", false, 0, 5000), 0);
    const struct kv_node *node = kv_lookup(kv, key, (size_t)n);
    assert_non_null(node);
    char small[64];
    size_t len;
    const char *k = kv_node_key(node, small, sizeof(small), &len);
    assert_true(k != small);
    assert_int_equal(len, (size_t)n);
    assert_int_equal(kv_node_key_len(node), (size_t)n);
    assert_string_equal(k, key);
    free((char *)k);
    struct evs e = {.n = 0};
    assert_int_equal(sweep(kv, 6000, 0, 0, &e), 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(e.v[0]->action, KV_ACT_EXPIRE);
    assert_string_equal(e.v[0]->node.key, key);
    evs_clear(&e);
    kv_free(kv);
}

/* Two TTLs due at the same instant on nodes created by one command: the key decides, on every node. */
static void test_ties_expire_in_key_order(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    assert_int_equal(put(kv, "/discovery/T/a/b", "v", false, 0, 5000), 0);
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_UPDATE;
    c.key = "/discovery/T/a";
    c.key_len = (uint32_t)strlen(c.key);
    c.dir = true;
    c.expire_ms = 5000;
    struct evs e = {.n = 0};
    assert_int_equal(apply_cmd(kv, &c, &e), 0);
    evs_clear(&e);
    const struct kv_node *a = kv_lookup(kv, "/discovery/T/a", 14), *b = kv_lookup(kv, "/discovery/T/a/b", 16);
    assert_int_equal(a->created_index, b->created_index);
    assert_int_equal(kv_node_expire_ms(kv, a), kv_node_expire_ms(kv, b));
    assert_int_equal(sweep(kv, 6000, 0, 0, &e), 0);
    assert_int_equal(e.n, 1); /* the dir first ("/discovery/T/a" < "/discovery/T/a/b"), b with it */
    assert_string_equal(e.v[0]->node.key, "/discovery/T/a");
    assert_null(kv_lookup(kv, "/discovery/T/a/b", 16));
    evs_clear(&e);
    kv_free(kv);
}

/* ---- determinism ---- */

static void tree_fingerprint(const struct kv *kv, const struct kv_node *n, char *out, size_t cap,
                             size_t *used)
{
    char kb[256];
    size_t kl;
    const char *key = kv_node_key(n, kb, sizeof(kb), &kl);
    assert_ptr_equal(key, kb);
    int w = snprintf(out + *used, cap - *used, "%s|%d|%s|%llu|%llu|%lld|%lld;", key, n->dir,
                     kv_node_value(n) ? kv_node_value(n) : "-", (unsigned long long)n->created_index,
                     (unsigned long long)n->modified_index, (long long)kv_node_expire_ms(kv, n),
                     (long long)n->created_ms);
    assert_true(w > 0 && (size_t)w < cap - *used);
    *used += (size_t)w;
    for (const struct kv_node *c = kv_node_first(n); c; c = c->next_sibling)
        tree_fingerprint(kv, c, out, cap, used);
}

static void test_same_commands_give_the_same_tree(void **state)
{
    (void)state;
    struct kv *a = kv_new(), *b = kv_new();
    /* a mixed sequence, encoded once, applied to both */
    struct kv_cmd cs[12];
    memset(cs, 0, sizeof(cs));
    const char *keys[] = {"/discovery/T/_config/size",
                          "/discovery/T/m1",
                          "/discovery/T/m2",
                          "/discovery/T/q",
                          "/discovery/U/x",
                          "/discovery/T/m1",
                          "/discovery/T",
                          "/discovery/U",
                          "/discovery/U/x",
                          "/discovery/T/m2",
                          "/discovery/V/a",
                          ""};
    enum kv_cmd_type types[] = {KV_CMD_SET,
                                KV_CMD_CREATE,
                                KV_CMD_CREATE,
                                KV_CMD_POST,
                                KV_CMD_SET,
                                KV_CMD_UPDATE,
                                KV_CMD_CREATE /* fails: exists */,
                                KV_CMD_UPDATE,
                                KV_CMD_CAS,
                                KV_CMD_DELETE,
                                KV_CMD_SET,
                                KV_CMD_SWEEP};
    for (int i = 0; i < 12; i++) {
        cs[i].type = types[i];
        cs[i].key = keys[i];
        cs[i].key_len = (uint32_t)strlen(keys[i]);
        cs[i].value = "v";
        cs[i].value_len = 1;
        cs[i].now_ms = 1000 * (i + 1);
        cs[i].expire_ms = (i % 3 == 0) ? 5000 + i : 0;
    }
    cs[7].value_len = 0; /* dir update with TTL */
    cs[7].expire_ms = 6000;
    cs[8].prev_index = 6;
    cs[11].now_ms = 7000;
    cs[11].token_ttl_ms = 5500;
    struct evs e = {.n = 0};
    for (int i = 0; i < 12; i++) {
        uint8_t *buf;
        size_t len;
        assert_int_equal(kv_cmd_encode(&cs[i], &buf, &len), 0);
        struct kv_error ea = {0}, eb = {0};
        int ra = kv_apply(a, buf, len, on_ev, &e, &ea);
        int na = e.n;
        int rb = kv_apply(b, buf, len, on_ev, &e, &eb);
        assert_int_equal(ra, rb);
        assert_int_equal(e.n - na, na); /* the same events from both */
        for (int j = 0; j < na; j++) {
            assert_int_equal(e.v[j]->index, e.v[na + j]->index);
            assert_string_equal(e.v[j]->node.key, e.v[na + j]->node.key);
        }
        assert_int_equal(kv_index(a), kv_index(b));
        kv_error_clear(&ea);
        kv_error_clear(&eb);
        evs_clear(&e);
        free(buf);
    }
    assert_true(kv_index(a) > 8);
    static char fa[65536], fb[65536];
    size_t ua = 0, ub = 0;
    tree_fingerprint(a, kv_lookup(a, "/", 1), fa, sizeof(fa), &ua);
    tree_fingerprint(b, kv_lookup(b, "/", 1), fb, sizeof(fb), &ub);
    assert_string_equal(fa, fb);
    kv_free(a);
    kv_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ttl_key_expires_with_expire_event_and_one_index),
        cmocka_unit_test(test_dir_ttl_takes_its_subtree_in_one_event),
        cmocka_unit_test(test_removing_ttl_makes_key_permanent),
        cmocka_unit_test(test_ttls_expire_in_time_order),
        cmocka_unit_test(test_token_expires_token_ttl_after_creation),
        cmocka_unit_test(test_token_sweep_skips_deleted_and_uses_recreated_time),
        cmocka_unit_test(test_files_directly_under_discovery_are_not_tokens),
        cmocka_unit_test(test_sweep_max_bounds_events_per_command),
        cmocka_unit_test(test_token_expiry_is_proportional_to_expired),
        cmocka_unit_test(test_same_commands_give_the_same_tree),
        cmocka_unit_test(test_a_long_key_expires_under_its_whole_key),
        cmocka_unit_test(test_ties_expire_in_key_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
