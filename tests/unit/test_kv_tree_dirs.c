/* tests/unit/test_kv_tree_dirs.c — the v2 tree state machine (store/kv.c) past single actions:
 * lookups (missing components, unclean paths, small and big dirs), hidden children, POST naming,
 * refresh, the children cap, malformed commands, many tokens and the immutable _config. Expected
 * values come from etcd v2store (release-3.4) and the recorded trace.
 */
#include "tests/unit/kv_tree_helpers.h"

static void test_get_missing_names_first_missing_component(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    const struct kv_node *n = NULL;
    const char *k = "/discovery/00000000-0000-0000-0000-000000000000/_config/size";
    assert_int_equal(kv_get(kv, k, strlen(k), &n, &r.err), KV_ENOTFOUND);
    assert_string_equal(r.err.cause, "/discovery/00000000-0000-0000-0000-000000000000");
    assert_int_equal(r.err.index, 1);
    assert_int_equal(do_set(kv, "/discovery/T/_config/size", "3", &r), 0);
    assert_int_equal(kv_get(kv, "/discovery/T/no-such-member", 27, &n, &r.err), KV_ENOTFOUND);
    assert_string_equal(r.err.cause, "/discovery/T/no-such-member");
    assert_int_equal(r.err.index, 2);
    assert_int_equal(kv_get(kv, "/discovery/T/_config/size", 25, &n, &r.err), 0);
    assert_string_equal(kv_node_value(n), "3");
    assert_string_equal(kv_err_message(KV_ENOTFOUND), "Key not found");
    res_clear(&r);
}

/* A dir finds its first few children along its sibling list and moves them into the child index
 * when it gets more: every child stays found, before and after, through deletes on both sides. */
static void test_children_are_found_in_small_and_big_dirs(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    char k[64];
    for (int i = 0; i < 40; i++) {
        snprintf(k, sizeof(k), "/discovery/T/%s%02d", i % 5 ? "m" : "_h", i);
        assert_int_equal(do_create(kv, k, "v", &r), 0);
        if (i % 7 == 3) { /* a delete now and then, before the move and after it */
            snprintf(k, sizeof(k), "/discovery/T/%s%02d", (i - 2) % 5 ? "m" : "_h", i - 2);
            assert_int_equal(do_delete(kv, k, false, false, &r), 0);
        }
        for (int j = 0; j <= i; j++) {
            snprintf(k, sizeof(k), "/discovery/T/%s%02d", j % 5 ? "m" : "_h", j);
            bool gone = (j + 2) % 7 == 3 && j + 2 <= i;
            const struct kv_node *n = kv_lookup(kv, k, strlen(k));
            if (gone)
                assert_null(n);
            else
                assert_true(n != NULL && strcmp(n->name, k + 13) == 0);
        }
        if (i >= 2)
            assert_int_equal(do_create(kv, "/discovery/T/m02", "again", &r), KV_EEXISTS);
    }
    const struct kv_node *t = kv_lookup(kv, "/discovery/T", 12);
    uint32_t vis = 0;
    for (const struct kv_node *c = kv_node_first(t); c; c = c->next_sibling)
        vis += !kv_node_hidden(c);
    assert_int_equal(vis, kv_node_nvisible(t));
    /* the dir goes whole, its indexed children with it */
    assert_int_equal(do_delete(kv, "/discovery/T", true, true, &r), 0);
    assert_null(kv_lookup(kv, "/discovery/T/m01", 16));
    assert_int_equal(do_create(kv, "/discovery/T/m01", "new", &r), 0);
    assert_string_equal(kv_node_value(kv_lookup(kv, "/discovery/T/m01", 16)), "new");
    res_clear(&r);
}

static void test_lookup_tolerates_unclean_paths(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/m", "v", &r), 0);
    const struct kv_node *m = kv_lookup(kv, "/discovery/T/m", 14);
    assert_non_null(m);
    assert_ptr_equal(kv_lookup(kv, "/discovery//T/m", 15), m);
    assert_ptr_equal(kv_lookup(kv, "/discovery/T/m/", 15), m);
    assert_ptr_equal(kv_lookup(kv, "/discovery/", 11), kv_lookup(kv, "/discovery", 10));
    assert_ptr_equal(kv_lookup(kv, "", 0), kv_lookup(kv, "/", 1));
    assert_null(kv_lookup(kv, "/discovery/T/m/x", 16));
    assert_null(kv_lookup(kv, "/discovery/TT", 13));
    /* a prefix of a name is not the name */
    assert_null(kv_lookup(kv, "/disc", 5));
    res_clear(&r);
}

static void test_hidden_children_are_counted_apart(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/_config/size", "3", &r), 0);
    assert_int_equal(do_create(kv, "/discovery/T/m1", "a", &r), 0);
    assert_int_equal(do_create(kv, "/discovery/T/m2", "b", &r), 0);
    const struct kv_node *t = kv_lookup(kv, "/discovery/T", 12);
    assert_int_equal(kv_node_nvisible(t), 2);
    assert_true(kv_node_hidden(kv_lookup(kv, "/discovery/T/_config", 20)));
    assert_false(kv_node_hidden(kv_lookup(kv, "/discovery/T/m1", 15)));
    /* children in creation order */
    assert_string_equal(kv_node_first(t)->name, "_config");
    assert_string_equal(kv_node_first(t)->next_sibling->name, "m1");
    assert_string_equal(kv_node_first(t)->next_sibling->next_sibling->name, "m2");
    assert_null(kv_node_first(t)->next_sibling->next_sibling->next_sibling);
    assert_int_equal(do_delete(kv, "/discovery/T/m1", false, false, &r), 0);
    assert_int_equal(kv_node_nvisible(t), 1);
    assert_string_equal(kv_node_first(t)->next_sibling->name, "m2");
    assert_null(kv_node_first(t)->next_sibling->next_sibling);
    /* the list's tail follows removals at either end: appends still go last */
    assert_int_equal(do_delete(kv, "/discovery/T/m2", false, false, &r), 0);
    assert_int_equal(do_create(kv, "/discovery/T/m3", "c", &r), 0);
    assert_int_equal(do_delete(kv, "/discovery/T/_config", true, true, &r), 0);
    assert_int_equal(do_create(kv, "/discovery/T/m4", "d", &r), 0);
    assert_string_equal(kv_node_first(t)->name, "m3");
    assert_string_equal(kv_node_first(t)->next_sibling->name, "m4");
    assert_null(kv_node_first(t)->next_sibling->next_sibling);
    assert_int_equal(do_delete(kv, "/discovery/T/m3", false, false, &r), 0);
    assert_int_equal(do_delete(kv, "/discovery/T/m4", false, false, &r), 0);
    assert_null(kv_node_first(t));
    assert_int_equal(do_create(kv, "/discovery/T/m5", "e", &r), 0);
    assert_string_equal(kv_node_first(t)->name, "m5");
    assert_null(kv_node_first(t)->next_sibling);
    assert_int_equal(kv_node_nvisible(t), 1);
    res_clear(&r);
}

static void test_post_names_child_by_next_index_zero_padded(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    struct kv_cmd c = cmd(KV_CMD_POST, "/discovery/T/queue", "Job1");
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_CREATE);
    assert_string_equal(r.ev->node.key, "/discovery/T/queue/00000000000000000002");
    assert_string_equal(r.ev->node.value, "Job1");
    assert_int_equal(r.ev->node.created_index, 2);
    assert_true(kv_lookup(kv, "/discovery/T/queue", 18)->dir);
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_string_equal(r.ev->node.key, "/discovery/T/queue/00000000000000000003");
    res_clear(&r);
}

static void test_refresh_keeps_value_and_marks_event(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    struct kv_cmd c = cmd(KV_CMD_SET, "/discovery/T/k", "v");
    c.expire_ms = 5000;
    assert_int_equal(apply(kv, &c, &r), 0);
    c = cmd(KV_CMD_UPDATE, "/discovery/T/k", NULL);
    c.refresh = true;
    c.expire_ms = 9000;
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_true(r.ev->refresh);
    assert_string_equal(r.ev->node.value, "v");
    assert_int_equal(r.ev->node.expire_ms, 9000);
    const struct kv_node *n = kv_lookup(kv, "/discovery/T/k", 14);
    assert_string_equal(kv_node_value(n), "v");
    assert_int_equal(kv_node_expire_ms(kv, n), 9000);
    /* SET refresh of a missing key is 100 */
    c = cmd(KV_CMD_SET, "/discovery/T/none", NULL);
    c.refresh = true;
    c.expire_ms = 9000;
    apply(kv, &c, &r);
    expect_err(&r, KV_ENOTFOUND, "/discovery/T/none", 3);
    /* SET refresh of an existing key keeps the value */
    c = cmd(KV_CMD_SET, "/discovery/T/k", NULL);
    c.refresh = true;
    c.expire_ms = 12000;
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_true(r.ev->refresh);
    assert_string_equal(kv_node_value(kv_lookup(kv, "/discovery/T/k", 14)), "v");
    res_clear(&r);
}

static void test_member_cap_caps_new_visible_children_only(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/_config/size", "1", &r), 0);
    struct kv_cmd c = cmd(KV_CMD_CREATE, "/discovery/T/m1", "a");
    c.cap_size = 15; /* the default; the token's own _config/size (1) wins */
    c.cap_surplus = 1;
    assert_int_equal(apply(kv, &c, &r), 0);
    c.key = "/discovery/T/m2";
    assert_int_equal(apply(kv, &c, &r), 0);
    uint64_t idx = kv_index(kv);
    c.key = "/discovery/T/m3";
    assert_int_equal(apply(kv, &c, &r), KV_ETOOMANYCHILDREN);
    assert_int_equal(r.err.code, KV_ETOOMANYCHILDREN);
    assert_non_null(r.err.cause);
    assert_null(strchr(r.err.cause, '\n'));
    assert_int_equal(kv_index(kv), idx);
    assert_null(kv_lookup(kv, "/discovery/T/m3", 15));
    /* SET of a new key and POST too */
    c.type = KV_CMD_SET;
    assert_int_equal(apply(kv, &c, &r), KV_ETOOMANYCHILDREN);
    c.type = KV_CMD_POST;
    c.key = "/discovery/T";
    c.key_len = 12;
    assert_int_equal(apply(kv, &c, &r), KV_ETOOMANYCHILDREN);
    /* replacing an existing member and hidden keys are not capped */
    c = cmd(KV_CMD_SET, "/discovery/T/m1", "b");
    c.cap_size = 15; /* the default; the token's own _config/size (1) wins */
    c.cap_surplus = 1;
    assert_int_equal(apply(kv, &c, &r), 0);
    c = cmd(KV_CMD_SET, "/discovery/T/_config/other", "x");
    c.cap_size = 15; /* the default; the token's own _config/size (1) wins */
    c.cap_surplus = 1;
    assert_int_equal(apply(kv, &c, &r), 0);
    /* after a delete there is room again */
    assert_int_equal(do_delete(kv, "/discovery/T/m2", false, false, &r), 0);
    c = cmd(KV_CMD_CREATE, "/discovery/T/m3", "a");
    c.cap_size = 15; /* the default; the token's own _config/size (1) wins */
    c.cap_surplus = 1;
    assert_int_equal(apply(kv, &c, &r), 0);
    res_clear(&r);
}

/* No valid _config/size: the command's default size applies (the proposer's view never decides). */
static void test_member_cap_uses_the_default_size_without_config(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    struct kv_cmd c = cmd(KV_CMD_CREATE, "/discovery/U/m1", "a");
    c.cap_size = 2;
    c.cap_surplus = 1;
    assert_int_equal(apply(kv, &c, &r), 0);
    c.key = "/discovery/U/m2";
    assert_int_equal(apply(kv, &c, &r), 0);
    c.key = "/discovery/U/m3";
    assert_int_equal(apply(kv, &c, &r), 0);
    c.key = "/discovery/U/m4";
    assert_int_equal(apply(kv, &c, &r), KV_ETOOMANYCHILDREN);
    assert_int_equal(do_set(kv, "/discovery/U/_config/size", "x", &r), 0); /* malformed: no size */
    assert_int_equal(apply(kv, &c, &r), KV_ETOOMANYCHILDREN);
    /* a larger size written later is read at apply time */
    assert_int_equal(do_set(kv, "/discovery/U/_config/size", "5", &r), 0);
    assert_int_equal(apply(kv, &c, &r), 0);
    res_clear(&r);
}

static void test_malformed_command_is_300_and_changes_nothing(void **state)
{
    struct kv *kv = *state;
    struct kv_error err = {0};
    uint8_t junk[5] = {9, 9, 9, 9, 9};
    assert_int_equal(kv_apply(kv, junk, sizeof(junk), NULL, NULL, &err), KV_ERAFT);
    assert_int_equal(err.code, KV_ERAFT);
    assert_int_equal(kv_apply(kv, NULL, 0, NULL, NULL, &err), KV_ERAFT);
    assert_int_equal(kv_index(kv), 1);
    kv_error_clear(&err);
}

static void test_many_tokens_lookup_and_counts(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    for (int i = 0; i < 20000; i++) {
        char k[80];
        snprintf(k, sizeof(k), "/discovery/%032x/_config/size", i);
        assert_int_equal(do_create(kv, k, "3", &r), 0);
    }
    assert_int_equal(kv_ntokens(kv), 20000);
    assert_int_equal(kv_nnodes(kv), 2 + 3 * 20000);
    assert_int_equal(kv_node_nvisible(kv_lookup(kv, "/discovery", 10)), 20000);
    char k[80];
    snprintf(k, sizeof(k), "/discovery/%032x/_config/size", 12345);
    const struct kv_node *n = kv_lookup(kv, k, strlen(k));
    assert_non_null(n);
    assert_int_equal(n->created_index, 2 + 12345);
    res_clear(&r);
}

/* ---- keep_config: a token's _config is immutable once its size exists ---- */

static int keep(struct kv *kv, struct kv_cmd c, struct res *r)
{
    c.keep_config = true;
    return apply(kv, &c, r);
}

static void test_keep_config_refuses_changes_once_the_size_exists(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    /* the first size creates the token */
    assert_int_equal(keep(kv, cmd(KV_CMD_SET, "/discovery/t1/_config/size", "3"), &r), 0);
    uint64_t idx = kv_index(kv);
    const char *cause = "/discovery/t1/_config/size is set once, when the token is created";
    assert_int_equal(keep(kv, cmd(KV_CMD_SET, "/discovery/t1/_config/size", "5"), &r), KV_ECONFIGLOCKED);
    expect_err(&r, KV_ECONFIGLOCKED, cause, idx);
    assert_int_equal(keep(kv, cmd(KV_CMD_DELETE, "/discovery/t1/_config/size", NULL), &r), KV_ECONFIGLOCKED);
    struct kv_cmd c = cmd(KV_CMD_DELETE, "/discovery/t1/_config", NULL);
    c.recursive = true;
    assert_int_equal(keep(kv, c, &r), KV_ECONFIGLOCKED);
    assert_int_equal(keep(kv, cmd(KV_CMD_UPDATE, "/discovery/t1/_config/size", "4"), &r), KV_ECONFIGLOCKED);
    c = cmd(KV_CMD_UPDATE, "/discovery/t1/_config", NULL);
    c.dir = true;
    c.expire_ms = 5000;
    assert_int_equal(keep(kv, c, &r), KV_ECONFIGLOCKED);
    c = cmd(KV_CMD_SET, "/discovery/t1/_config/size", "3");
    c.expire_ms = 5000;
    assert_int_equal(keep(kv, c, &r), KV_ECONFIGLOCKED);
    assert_int_equal(kv_index(kv), idx);
    /* CREATE is 105 as ever; the same size again passes; other keys and the token dir are free */
    assert_int_equal(keep(kv, cmd(KV_CMD_CREATE, "/discovery/t1/_config/size", "3"), &r), KV_EEXISTS);
    assert_int_equal(keep(kv, cmd(KV_CMD_SET, "/discovery/t1/_config/size", "3"), &r), 0);
    assert_int_equal(keep(kv, cmd(KV_CMD_SET, "/discovery/t1/_configx", "y"), &r), 0);
    /* other keys under _config (hidden keys people keep there) stay writable */
    assert_int_equal(keep(kv, cmd(KV_CMD_SET, "/discovery/t1/_config/other", "x"), &r), 0);
    assert_int_equal(keep(kv, cmd(KV_CMD_DELETE, "/discovery/t1/_config/other", NULL), &r), 0);
    assert_int_equal(keep(kv, cmd(KV_CMD_POST, "/discovery/t1/_config", "x"), &r), 0);
    assert_int_equal(keep(kv, cmd(KV_CMD_SET, "/discovery/t1/m1", "a=http://x"), &r), 0);
    /* without the flag (an entry written before the rule) the tree applies it as before */
    assert_int_equal(apply(kv, &(struct kv_cmd){.type = KV_CMD_SET, .key = "/discovery/t1/_config/size",
                                                .key_len = 26, .value = "4", .value_len = 1},
                           &r),
                     0);
    c = cmd(KV_CMD_DELETE, "/discovery/t1", NULL);
    c.recursive = true;
    assert_int_equal(keep(kv, c, &r), 0);
    res_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_get_missing_names_first_missing_component),
        T(test_lookup_tolerates_unclean_paths),
        T(test_children_are_found_in_small_and_big_dirs),
        T(test_hidden_children_are_counted_apart),
        T(test_post_names_child_by_next_index_zero_padded),
        T(test_refresh_keeps_value_and_marks_event),
        T(test_member_cap_caps_new_visible_children_only),
        T(test_member_cap_uses_the_default_size_without_config),
        T(test_malformed_command_is_300_and_changes_nothing),
        T(test_many_tokens_lookup_and_counts),
        T(test_keep_config_refuses_changes_once_the_size_exists),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
