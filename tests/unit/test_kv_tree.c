/* tests/unit/test_kv_tree.c — the v2 tree state machine (store/kv.c): indexes, every action and
 * every error code with etcd's cause text. Lookups, hidden children, POST naming, refresh, the
 * children cap and _config are in test_kv_tree_dirs.c. Expected values come from etcd v2store
 * (release-3.4) and the recorded trace.
 */
#include "tests/unit/kv_tree_helpers.h"

/* ---- index rules ---- */

static void test_new_kv_has_discovery_dir_at_index_1(void **state)
{
    struct kv *kv = *state;
    assert_int_equal(kv_index(kv), 1);
    const struct kv_node *d = kv_lookup(kv, "/discovery", 10);
    assert_non_null(d);
    assert_true(d->dir);
    assert_int_equal(d->created_index, 1);
    assert_int_equal(d->modified_index, 1);
    const struct kv_node *root = kv_lookup(kv, "/", 1);
    assert_non_null(root);
    assert_true(root->dir);
    assert_ptr_equal(d->parent, root);
}

static void test_first_registration_gets_created_index_2_or_more(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_create(kv, "/discovery/T/m1", "m1=http://a:2380", &r), 0);
    assert_true(r.ev->node.created_index >= 2);
    assert_int_equal(r.ev->index, 2);
    res_clear(&r);
}

static void test_failed_mutations_do_not_bump_the_index(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_create(kv, "/discovery/T/_config/size", "3", &r), 0);
    uint64_t i = kv_index(kv);
    assert_int_equal(do_create(kv, "/discovery/T/_config/size", "3", &r), KV_EEXISTS);
    assert_int_equal(do_delete(kv, "/discovery/nope", false, false, &r), KV_ENOTFOUND);
    assert_int_equal(do_delete(kv, "/discovery/T", false, false, &r), KV_ENOTFILE);
    assert_int_equal(do_set(kv, "/discovery/T/_config/size/x", "1", &r), KV_ENOTDIR);
    assert_int_equal(kv_index(kv), i);
    res_clear(&r);
}

static void test_each_success_adds_exactly_one(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    for (int i = 0; i < 10; i++) {
        char k[64];
        snprintf(k, sizeof(k), "/discovery/T/m%d", i);
        uint64_t before = kv_index(kv);
        assert_int_equal(do_set(kv, k, "v", &r), 0);
        assert_int_equal(kv_index(kv), before + 1);
        assert_int_equal(r.ev->index, before + 1);
        assert_int_equal(r.ev->node.modified_index, before + 1);
    }
    res_clear(&r);
}

static void test_implicit_dirs_take_the_index_of_the_key_that_made_them(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/_config/size", "3", &r), 0);
    const struct kv_node *t = kv_lookup(kv, "/discovery/T", 12);
    const struct kv_node *c = kv_lookup(kv, "/discovery/T/_config", 20);
    assert_non_null(t);
    assert_non_null(c);
    assert_true(t->dir && c->dir);
    assert_int_equal(t->created_index, 2);
    assert_int_equal(t->modified_index, 2);
    assert_int_equal(c->created_index, 2);
    /* created_ms is the proposer's clock from the command */
    assert_int_equal(t->created_ms, 1000);
    /* adding a child does not change the parent's modifiedIndex */
    assert_int_equal(do_set(kv, "/discovery/T/m1", "x", &r), 0);
    assert_int_equal(t->modified_index, 2);
    res_clear(&r);
}

/* ---- actions ---- */

static void test_set_new_key_is_action_set_without_prev(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/_config/size", "3", &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_SET);
    assert_string_equal(kv_action_name(r.ev->action), "set");
    assert_false(r.ev->has_prev);
    assert_string_equal(r.ev->node.key, "/discovery/T/_config/size");
    assert_string_equal(r.ev->node.value, "3");
    assert_int_equal(r.ev->node.value_len, 1);
    assert_false(r.ev->node.dir);
    assert_int_equal(r.nev, 1);
    res_clear(&r);
}

static void test_set_existing_file_replaces_it_with_prev_node(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/a", "one", &r), 0);
    assert_int_equal(do_set(kv, "/discovery/T/a", "two", &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_SET);
    assert_true(r.ev->has_prev);
    assert_string_equal(r.ev->prev.value, "one");
    assert_int_equal(r.ev->prev.created_index, 2);
    assert_int_equal(r.ev->prev.modified_index, 2);
    /* etcd's Set makes a new node: createdIndex moves too */
    assert_int_equal(r.ev->node.created_index, 3);
    assert_int_equal(r.ev->node.modified_index, 3);
    const struct kv_node *n = kv_lookup(kv, "/discovery/T/a", 14);
    assert_string_equal(kv_node_value(n), "two");
    assert_int_equal(n->created_index, 3);
    res_clear(&r);
}

static void test_set_over_a_dir_is_102_not_a_file(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/_config/size", "3", &r), 0);
    do_set(kv, "/discovery/T", "x", &r);
    expect_err(&r, KV_ENOTFILE, "/discovery/T", 2);
    do_mkdir(kv, "/discovery/T", &r);
    expect_err(&r, KV_ENOTFILE, "/discovery/T", 2);
    res_clear(&r);
}

static void test_set_dir_over_a_file_replaces_it(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/a", "v", &r), 0);
    assert_int_equal(do_mkdir(kv, "/discovery/T/a", &r), 0);
    assert_true(r.ev->node.dir);
    assert_null(r.ev->node.value);
    assert_true(r.ev->has_prev);
    assert_string_equal(r.ev->prev.value, "v");
    assert_true(kv_lookup(kv, "/discovery/T/a", 14)->dir);
    res_clear(&r);
}

static void test_create_new_key_is_action_create(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_create(kv, "/discovery/T/6c007a14875d53d9", "infra0=http://10.0.1.10:2380", &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_CREATE);
    assert_string_equal(kv_action_name(r.ev->action), "create");
    assert_string_equal(r.ev->node.value, "infra0=http://10.0.1.10:2380");
    assert_false(r.ev->has_prev);
    res_clear(&r);
}

static void test_put_prev_exist_false_on_existing_key_is_105(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_create(kv, "/discovery/T/m", "v", &r), 0);
    do_create(kv, "/discovery/T/m", "v", &r);
    expect_err(&r, KV_EEXISTS, "/discovery/T/m", 2);
    /* also on the existing token dir itself (trace 5.4d) */
    do_create(kv, "/discovery/T", "x", &r);
    expect_err(&r, KV_EEXISTS, "/discovery/T", 2);
    assert_string_equal(kv_err_message(KV_EEXISTS), "Key already exists");
    res_clear(&r);
}

static void test_create_dir_makes_an_empty_dir(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    struct kv_cmd c = cmd(KV_CMD_CREATE, "/discovery/T", NULL);
    c.dir = true;
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_CREATE);
    assert_true(r.ev->node.dir);
    const struct kv_node *t = kv_lookup(kv, "/discovery/T", 12);
    assert_true(t->dir);
    assert_null(kv_node_first(t));
    res_clear(&r);
}

static void test_values_are_stored_verbatim(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    const char v[] = "a=http://[fd00::1]:2380,b\0c";
    struct kv_cmd c = cmd(KV_CMD_SET, "/discovery/T/x", NULL);
    c.value = v;
    c.value_len = sizeof(v) - 1;
    assert_int_equal(apply(kv, &c, &r), 0);
    const struct kv_node *n = kv_lookup(kv, "/discovery/T/x", 14);
    assert_int_equal(kv_node_value_len(n), sizeof(v) - 1);
    assert_memory_equal(kv_node_value(n), v, sizeof(v) - 1);
    assert_int_equal(r.ev->node.value_len, sizeof(v) - 1);
    assert_memory_equal(r.ev->node.value, v, sizeof(v) - 1);
    /* an empty value is "" (present), not NULL */
    assert_int_equal(do_set(kv, "/discovery/T/e", "", &r), 0);
    assert_non_null(r.ev->node.value);
    assert_string_equal(r.ev->node.value, "");
    res_clear(&r);
}

static void test_update_changes_value_keeps_created_index(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/a", "one", &r), 0);
    struct kv_cmd c = cmd(KV_CMD_UPDATE, "/discovery/T/a", "two");
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_UPDATE);
    assert_string_equal(kv_action_name(r.ev->action), "update");
    assert_string_equal(r.ev->node.value, "two");
    assert_int_equal(r.ev->node.created_index, 2);
    assert_int_equal(r.ev->node.modified_index, 3);
    assert_string_equal(r.ev->prev.value, "one");
    assert_int_equal(r.ev->prev.modified_index, 2);
    res_clear(&r);
}

static void test_update_missing_key_is_100(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    struct kv_cmd c = cmd(KV_CMD_UPDATE, "/discovery/T/a", "two");
    apply(kv, &c, &r);
    expect_err(&r, KV_ENOTFOUND, "/discovery/T", 1);
    res_clear(&r);
}

static void test_update_dir_with_ttl_is_update_and_keeps_dir_modified_index(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_mkdir(kv, "/discovery/T", &r), 0);
    struct kv_cmd c = cmd(KV_CMD_UPDATE, "/discovery/T", NULL);
    c.dir = true;
    c.expire_ms = 50000;
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_UPDATE);
    assert_true(r.ev->node.dir);
    assert_null(r.ev->node.value);
    assert_int_equal(r.ev->node.expire_ms, 50000);
    assert_int_equal(r.ev->node.modified_index, 3);
    const struct kv_node *t = kv_lookup(kv, "/discovery/T", 12);
    assert_int_equal(kv_node_expire_ms(kv, t), 50000);
    assert_int_equal(t->modified_index, 2); /* etcd's node.Write does not touch a dir */
    assert_int_equal(kv_index(kv), 3);
    /* a value on a dir is 102 */
    c.value = "x";
    c.value_len = 1;
    apply(kv, &c, &r);
    expect_err(&r, KV_ENOTFILE, "/discovery/T", 3);
    res_clear(&r);
}

static void test_cas_success_is_compare_and_swap(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/foo", "one", &r), 0);
    struct kv_cmd c = cmd(KV_CMD_CAS, "/discovery/T/foo", "two");
    c.has_prev_value = true;
    c.prev_value = "one";
    c.prev_value_len = 3;
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_CAS);
    assert_string_equal(kv_action_name(r.ev->action), "compareAndSwap");
    assert_string_equal(r.ev->node.value, "two");
    assert_int_equal(r.ev->node.created_index, 2);
    assert_int_equal(r.ev->node.modified_index, 3);
    assert_string_equal(r.ev->prev.value, "one");
    /* by index */
    c = cmd(KV_CMD_CAS, "/discovery/T/foo", "three");
    c.prev_index = 3;
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_string_equal(r.ev->node.value, "three");
    res_clear(&r);
}

static void test_cas_failures_name_the_mismatch_like_etcd(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/foo", "one", &r), 0);
    struct kv_cmd c = cmd(KV_CMD_CAS, "/discovery/T/foo", "three");
    c.has_prev_value = true;
    c.prev_value = "two";
    c.prev_value_len = 3;
    apply(kv, &c, &r);
    expect_err(&r, KV_ETESTFAILED, "[two != one]", 2);
    c.has_prev_value = false;
    c.prev_value = NULL;
    c.prev_value_len = 0;
    c.prev_index = 7;
    apply(kv, &c, &r);
    expect_err(&r, KV_ETESTFAILED, "[7 != 2]", 2);
    c.has_prev_value = true;
    c.prev_value = "two";
    c.prev_value_len = 3;
    apply(kv, &c, &r);
    expect_err(&r, KV_ETESTFAILED, "[two != one] [7 != 2]", 2);
    assert_string_equal(kv_err_message(KV_ETESTFAILED), "Compare failed");
    res_clear(&r);
}

static void test_cas_on_dir_is_102_and_on_missing_is_100(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_mkdir(kv, "/discovery/T", &r), 0);
    struct kv_cmd c = cmd(KV_CMD_CAS, "/discovery/T", "x");
    c.prev_index = 2;
    apply(kv, &c, &r);
    expect_err(&r, KV_ENOTFILE, "/discovery/T", 2);
    c = cmd(KV_CMD_CAS, "/discovery/U/x", "x");
    c.prev_index = 2;
    apply(kv, &c, &r);
    expect_err(&r, KV_ENOTFOUND, "/discovery/U", 2);
    res_clear(&r);
}

static void test_delete_file_event_has_no_value_and_new_modified_index(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/foo", "two", &r), 0);
    assert_int_equal(do_delete(kv, "/discovery/T/foo", false, false, &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_DELETE);
    assert_string_equal(kv_action_name(r.ev->action), "delete");
    assert_null(r.ev->node.value);
    assert_false(r.ev->node.dir);
    assert_int_equal(r.ev->node.modified_index, 3);
    assert_int_equal(r.ev->node.created_index, 2);
    assert_true(r.ev->has_prev);
    assert_string_equal(r.ev->prev.value, "two");
    assert_int_equal(r.ev->prev.modified_index, 2);
    assert_null(kv_lookup(kv, "/discovery/T/foo", 16));
    /* the implicit dir stays */
    assert_non_null(kv_lookup(kv, "/discovery/T", 12));
    res_clear(&r);
}

static void test_delete_dir_rules_102_108_and_recursive(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/_config/size", "3", &r), 0);
    do_delete(kv, "/discovery/T", false, false, &r);
    expect_err(&r, KV_ENOTFILE, "/discovery/T", 2);
    do_delete(kv, "/discovery/T", true, false, &r);
    expect_err(&r, KV_EDIRNOTEMPTY, "/discovery/T", 2); /* hidden children count */
    assert_int_equal(do_delete(kv, "/discovery/T", false, true, &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_DELETE);
    assert_true(r.ev->node.dir);
    assert_true(r.ev->prev.dir);
    assert_int_equal(r.ev->prev.created_index, 2);
    assert_int_equal(r.ev->node.modified_index, 3);
    assert_null(kv_lookup(kv, "/discovery/T", 12));
    assert_null(kv_lookup(kv, "/discovery/T/_config/size", 25));
    assert_int_equal(kv_nnodes(kv), 2);
    /* an empty dir goes with dir=true alone */
    assert_int_equal(do_mkdir(kv, "/discovery/E", &r), 0);
    assert_int_equal(do_delete(kv, "/discovery/E", true, false, &r), 0);
    /* a file goes with dir=true too */
    assert_int_equal(do_set(kv, "/discovery/F", "x", &r), 0);
    assert_int_equal(do_delete(kv, "/discovery/F", true, false, &r), 0);
    res_clear(&r);
}

static void test_cad_rules(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/m", "v1", &r), 0);
    struct kv_cmd c = cmd(KV_CMD_CAD, "/discovery/T/m", NULL);
    c.has_prev_value = true;
    c.prev_value = "v2";
    c.prev_value_len = 2;
    apply(kv, &c, &r);
    expect_err(&r, KV_ETESTFAILED, "[v2 != v1]", 2);
    c.prev_value = "v1";
    assert_int_equal(apply(kv, &c, &r), 0);
    assert_int_equal(r.ev->action, KV_ACT_CAD);
    assert_string_equal(kv_action_name(r.ev->action), "compareAndDelete");
    assert_null(r.ev->node.value);
    assert_string_equal(r.ev->prev.value, "v1");
    assert_int_equal(r.ev->node.modified_index, 3);
    c = cmd(KV_CMD_CAD, "/discovery/T", NULL);
    c.prev_index = 1;
    apply(kv, &c, &r);
    expect_err(&r, KV_ENOTFILE, "/discovery/T", 3);
    c = cmd(KV_CMD_CAD, "/discovery/T/m", NULL);
    c.prev_index = 1;
    apply(kv, &c, &r);
    expect_err(&r, KV_ENOTFOUND, "/discovery/T/m", 3);
    res_clear(&r);
}

static void test_writes_to_root_are_107(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    do_set(kv, "/", "x", &r);
    expect_err(&r, KV_EROOTRONLY, "/", 1);
    do_create(kv, "/", "x", &r);
    expect_err(&r, KV_EROOTRONLY, "/", 1);
    do_delete(kv, "/", true, true, &r);
    expect_err(&r, KV_EROOTRONLY, "/", 1);
    struct kv_cmd c = cmd(KV_CMD_UPDATE, "/", "x");
    apply(kv, &c, &r);
    expect_err(&r, KV_EROOTRONLY, "/", 1);
    c = cmd(KV_CMD_CAS, "/", "x");
    c.prev_index = 1;
    apply(kv, &c, &r);
    expect_err(&r, KV_EROOTRONLY, "/", 1);
    res_clear(&r);
}

static void test_a_file_in_the_path_is_104_naming_it(void **state)
{
    struct kv *kv = *state;
    struct res r = {0};
    assert_int_equal(do_set(kv, "/discovery/T/f", "v", &r), 0);
    do_set(kv, "/discovery/T/f/g/h", "v", &r);
    expect_err(&r, KV_ENOTDIR, "/discovery/T/f", 2);
    do_create(kv, "/discovery/T/f/g", "v", &r);
    expect_err(&r, KV_ENOTDIR, "/discovery/T/f", 2);
    struct kv_cmd c = cmd(KV_CMD_POST, "/discovery/T/f", "v");
    apply(kv, &c, &r);
    expect_err(&r, KV_ENOTDIR, "/discovery/T/f", 2);
    const struct kv_node *n;
    assert_int_equal(kv_get(kv, "/discovery/T/f/g", 16, &n, &r.err), KV_ENOTDIR);
    assert_string_equal(r.err.cause, "/discovery/T/f");
    res_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_new_kv_has_discovery_dir_at_index_1),
        T(test_first_registration_gets_created_index_2_or_more),
        T(test_failed_mutations_do_not_bump_the_index),
        T(test_each_success_adds_exactly_one),
        T(test_implicit_dirs_take_the_index_of_the_key_that_made_them),
        T(test_set_new_key_is_action_set_without_prev),
        T(test_set_existing_file_replaces_it_with_prev_node),
        T(test_set_over_a_dir_is_102_not_a_file),
        T(test_set_dir_over_a_file_replaces_it),
        T(test_create_new_key_is_action_create),
        T(test_put_prev_exist_false_on_existing_key_is_105),
        T(test_create_dir_makes_an_empty_dir),
        T(test_values_are_stored_verbatim),
        T(test_update_changes_value_keeps_created_index),
        T(test_update_missing_key_is_100),
        T(test_update_dir_with_ttl_is_update_and_keeps_dir_modified_index),
        T(test_cas_success_is_compare_and_swap),
        T(test_cas_failures_name_the_mismatch_like_etcd),
        T(test_cas_on_dir_is_102_and_on_missing_is_100),
        T(test_delete_file_event_has_no_value_and_new_modified_index),
        T(test_delete_dir_rules_102_108_and_recursive),
        T(test_cad_rules),
        T(test_writes_to_root_are_107),
        T(test_a_file_in_the_path_is_104_naming_it),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
