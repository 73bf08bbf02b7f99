/* tests/unit/test_kv_tree.c — the v2 tree state machine (store/kv.c): indexes, every action and
 * every error code with etcd's cause text, hidden children, POST naming, the children cap.
 * Expected values come from etcd v2store (release-3.4) and the recorded trace.
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

/* ---- helpers: build, encode and apply one command; keep the last event ---- */

struct res {
    int rc;
    struct kv_event *ev; /* the last emitted event (owned) */
    int nev;
    struct kv_error err;
};

static void on_ev(void *arg, struct kv_event *ev)
{
    struct res *r = arg;
    if (r->ev)
        kv_event_unref(r->ev);
    r->ev = kv_event_ref(ev);
    r->nev++;
}

static void res_clear(struct res *r)
{
    kv_event_unref(r->ev);
    kv_error_clear(&r->err);
    memset(r, 0, sizeof(*r));
}

static struct kv_cmd cmd(enum kv_cmd_type t, const char *key, const char *value)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = t;
    c.now_ms = 1000;
    c.key = key;
    c.key_len = key ? (uint32_t)strlen(key) : 0;
    c.value = value;
    c.value_len = value ? (uint32_t)strlen(value) : 0;
    return c;
}

static int apply(struct kv *kv, const struct kv_cmd *c, struct res *r)
{
    uint8_t *buf;
    size_t len;
    res_clear(r);
    assert_int_equal(kv_cmd_encode(c, &buf, &len), 0);
    r->rc = kv_apply(kv, buf, len, on_ev, r, &r->err);
    free(buf);
    return r->rc;
}

static int do_set(struct kv *kv, const char *k, const char *v, struct res *r)
{
    struct kv_cmd c = cmd(KV_CMD_SET, k, v);
    return apply(kv, &c, r);
}

static int do_create(struct kv *kv, const char *k, const char *v, struct res *r)
{
    struct kv_cmd c = cmd(KV_CMD_CREATE, k, v);
    return apply(kv, &c, r);
}

static int do_mkdir(struct kv *kv, const char *k, struct res *r)
{
    struct kv_cmd c = cmd(KV_CMD_SET, k, NULL);
    c.dir = true;
    return apply(kv, &c, r);
}

static int do_delete(struct kv *kv, const char *k, bool dir, bool recursive, struct res *r)
{
    struct kv_cmd c = cmd(KV_CMD_DELETE, k, NULL);
    c.dir = dir;
    c.recursive = recursive;
    return apply(kv, &c, r);
}

static void expect_err(struct res *r, int code, const char *cause, uint64_t index)
{
    assert_int_equal(r->rc, code);
    assert_int_equal(r->err.code, code);
    assert_non_null(r->err.cause);
    assert_string_equal(r->err.cause, cause);
    assert_int_equal(r->err.index, index);
    assert_int_equal(r->nev, 0);
}

static int setup(void **state)
{
    *state = kv_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    kv_free(*state);
    return 0;
}

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
