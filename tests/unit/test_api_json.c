/* tests/unit/test_api_json.c — JSON rendering byte for byte against etcd 3.4's answers in
 * reference/etcd-3.4-trace/store-json-examples.txt (events built by hand, nodes restored into a tree). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/json.h"

#define T "/discovery/3ca67c9f-5e6b-4705-8f60-a8e758d1ce15"

/* Nodes are restored into a real tree, as a snapshot would restore them, so that their indexes
 * are the trace's; a fresh tree for each test. */
static struct kv *kv;

static struct kv_node *mk(struct kv_node *parent, const char *key, const char *value, uint64_t ci,
                          uint64_t mi)
{
    (void)parent; /* the key says where it goes */
    struct kv_image img = {.key = key,
                           .key_len = (uint32_t)strlen(key),
                           .value = value,
                           .value_len = value ? (uint32_t)strlen(value) : 0,
                           .created_index = ci,
                           .modified_index = mi,
                           .dir = value == NULL};
    assert_int_equal(kv_restore_node(kv, &img), 0);
    return (struct kv_node *)kv_lookup(kv, key, strlen(key));
}

static int reset(void **s)
{
    (void)s;
    kv_free(kv);
    kv = kv_new();
    return kv ? 0 : -1;
}

static void expect(struct api_buf *b, const char *want)
{
    assert_false(b->oom);
    if (b->len != strlen(want) || memcmp(b->p, want, b->len) != 0)
        fail_msg("got  %.*s\nwant %s", (int)b->len, b->p, want);
    api_buf_free(b);
}

/* The token dir of the trace: hidden _config, three members in creation order. */
static struct kv_node *token_dir(void)
{
    struct kv_node *d = mk(NULL, T, NULL, 6, 6);
    struct kv_node *cfg = mk(d, T "/_config", NULL, 6, 6);
    mk(cfg, T "/_config/size", "3", 6, 6);
    mk(d, T "/fc594def544cceea", "m1=http://127.0.0.1:12380", 7, 7);
    mk(d, T "/9be2e60fa3f1cda3", "m2=http://127.0.0.1:22380", 8, 8);
    mk(d, T "/f4c2476e5521206b", "m3=http://127.0.0.1:32380", 9, 9);
    return d;
}

static void test_get_token_dir_hides_config_and_matches_etcd(void **s)
{
    struct api_buf b = {0};
    api_json_get(&b, kv, token_dir(), false, false, 0);
    expect(
        &b,
        "{\"action\":\"get\",\"node\":{\"key\":\"" T "\",\"dir\":true,\"nodes\":["
        "{\"key\":\"" T
        "/fc594def544cceea\",\"value\":\"m1=http://127.0.0.1:12380\",\"modifiedIndex\":7,\"createdIndex\":7},"
        "{\"key\":\"" T
        "/9be2e60fa3f1cda3\",\"value\":\"m2=http://127.0.0.1:22380\",\"modifiedIndex\":8,\"createdIndex\":8},"
        "{\"key\":\"" T
        "/f4c2476e5521206b\",\"value\":\"m3=http://127.0.0.1:32380\",\"modifiedIndex\":9,\"createdIndex\":9}"
        "],\"modifiedIndex\":6,\"createdIndex\":6}}\n");
}

static void test_get_token_dir_body_is_576_bytes_as_in_the_trace(void **s)
{
    struct api_buf b = {0};
    api_json_get(&b, kv, token_dir(), true, false, 0);
    assert_int_equal(b.len, 576);
    api_buf_free(&b);
}

static void test_sorted_get_orders_by_key(void **s)
{
    struct api_buf b = {0};
    api_json_get(&b, kv, token_dir(), true, true, 0);
    expect(
        &b,
        "{\"action\":\"get\",\"node\":{\"key\":\"" T "\",\"dir\":true,\"nodes\":["
        "{\"key\":\"" T
        "/9be2e60fa3f1cda3\",\"value\":\"m2=http://127.0.0.1:22380\",\"modifiedIndex\":8,\"createdIndex\":8},"
        "{\"key\":\"" T
        "/f4c2476e5521206b\",\"value\":\"m3=http://127.0.0.1:32380\",\"modifiedIndex\":9,\"createdIndex\":9},"
        "{\"key\":\"" T
        "/fc594def544cceea\",\"value\":\"m1=http://127.0.0.1:12380\",\"modifiedIndex\":7,\"createdIndex\":7}"
        "],\"modifiedIndex\":6,\"createdIndex\":6}}\n");
}

static void test_get_hidden_dir_directly_lists_its_children(void **s)
{
    struct kv_node *d = token_dir();
    struct api_buf b = {0};
    api_json_get(&b, kv, kv_node_first(d), false, false, 0);
    expect(&b, "{\"action\":\"get\",\"node\":{\"key\":\"" T "/_config\",\"dir\":true,\"nodes\":["
               "{\"key\":\"" T "/_config/size\",\"value\":\"3\",\"modifiedIndex\":6,\"createdIndex\":6}"
               "],\"modifiedIndex\":6,\"createdIndex\":6}}\n");
    api_json_get(&b, kv, kv_node_first(kv_node_first(d)), false, false, 0);
    expect(&b, "{\"action\":\"get\",\"node\":{\"key\":\"" T
               "/_config/size\",\"value\":\"3\",\"modifiedIndex\":6,\"createdIndex\":6}}\n");
}

static void test_empty_dir_has_no_nodes_field(void **s)
{
    struct kv_node *d = mk(NULL, "/discovery/T", NULL, 7, 7);
    struct kv_node *cfg = mk(d, "/discovery/T/_config", NULL, 7, 7);
    mk(cfg, "/discovery/T/_config/size", "3", 7, 7);
    struct api_buf b = {0};
    api_json_get(&b, kv, d, true, false, 0);
    expect(&b, "{\"action\":\"get\",\"node\":{\"key\":\"/discovery/"
               "T\",\"dir\":true,\"modifiedIndex\":7,\"createdIndex\":7}}\n");
}

static void test_child_dirs_list_children_only_when_recursive(void **s)
{
    struct kv_node *d = mk(NULL, "/discovery/T", NULL, 2, 2);
    struct kv_node *sub = mk(d, "/discovery/T/sub", NULL, 3, 3);
    mk(sub, "/discovery/T/sub/x", "", 3, 3);
    mk(sub, "/discovery/T/sub/_h", "hidden", 4, 4);
    struct api_buf b = {0};
    api_json_get(&b, kv, d, false, false, 0);
    expect(&b, "{\"action\":\"get\",\"node\":{\"key\":\"/discovery/T\",\"dir\":true,\"nodes\":["
               "{\"key\":\"/discovery/T/sub\",\"dir\":true,\"modifiedIndex\":3,\"createdIndex\":3}"
               "],\"modifiedIndex\":2,\"createdIndex\":2}}\n");
    api_json_get(&b, kv, d, true, false, 0);
    expect(&b, "{\"action\":\"get\",\"node\":{\"key\":\"/discovery/T\",\"dir\":true,\"nodes\":["
               "{\"key\":\"/discovery/T/sub\",\"dir\":true,\"nodes\":["
               "{\"key\":\"/discovery/T/sub/x\",\"value\":\"\",\"modifiedIndex\":3,\"createdIndex\":3}"
               "],\"modifiedIndex\":3,\"createdIndex\":3}"
               "],\"modifiedIndex\":2,\"createdIndex\":2}}\n");
}

static void test_create_event_matches_etcd(void **s)
{
    struct kv_event ev = {.action = KV_ACT_CREATE, .index = 18};
    ev.node = (struct kv_enode){.key = T "/feedfacecafebeef",
                                .value = "fake=http://127.0.0.1:9",
                                .value_len = 23,
                                .modified_index = 18,
                                .created_index = 18};
    struct api_buf b = {0};
    api_json_event(&b, &ev, 0, false);
    expect(&b, "{\"action\":\"create\",\"node\":{\"key\":\"" T
               "/feedfacecafebeef\",\"value\":\"fake=http://127.0.0.1:9\","
               "\"modifiedIndex\":18,\"createdIndex\":18}}\n");
}

static void test_set_event_and_no_value_on_success(void **s)
{
    struct kv_event ev = {.action = KV_ACT_SET, .index = 17};
    ev.node = (struct kv_enode){.key = T "/_config/hiddentest",
                                .value = "h",
                                .value_len = 1,
                                .modified_index = 17,
                                .created_index = 17};
    struct api_buf b = {0};
    api_json_event(&b, &ev, 0, false);
    expect(&b, "{\"action\":\"set\",\"node\":{\"key\":\"" T
               "/_config/hiddentest\",\"value\":\"h\",\"modifiedIndex\":17,"
               "\"createdIndex\":17}}\n");
    api_json_event(&b, &ev, 0, true);
    expect(&b, "{\"action\":\"set\"}\n");
}

static void test_delete_event_has_no_value_on_node_and_a_prev_node(void **s)
{
    struct kv_event ev = {.action = KV_ACT_DELETE, .index = 20, .has_prev = true};
    ev.node = (struct kv_enode){.key = T "/feedfacecafebeef", .modified_index = 20, .created_index = 18};
    ev.prev = (struct kv_enode){.key = T "/feedfacecafebeef",
                                .value = "fake=http://127.0.0.1:9",
                                .value_len = 23,
                                .modified_index = 18,
                                .created_index = 18};
    struct api_buf b = {0};
    api_json_event(&b, &ev, 0, false);
    expect(&b, "{\"action\":\"delete\",\"node\":{\"key\":\"" T
               "/feedfacecafebeef\",\"modifiedIndex\":20,\"createdIndex\":18},"
               "\"prevNode\":{\"key\":\"" T
               "/feedfacecafebeef\",\"value\":\"fake=http://127.0.0.1:9\",\"modifiedIndex\":18,"
               "\"createdIndex\":18}}\n");
    assert_int_equal(strlen("{\"action\":\"delete\",\"node\":{\"key\":\"" T
                            "/feedfacecafebeef\",\"modifiedIndex\":20,\"createdIndex\":18},"
                            "\"prevNode\":{\"key\":\"" T
                            "/feedfacecafebeef\",\"value\":\"fake=http://127.0.0.1:9\",\"modifiedIndex\":18,"
                            "\"createdIndex\":18}}\n"),
                     296);
}

static void test_dir_delete_event_matches_etcd(void **s)
{
    struct kv_event ev = {.action = KV_ACT_DELETE, .index = 1121, .has_prev = true};
    ev.node = (struct kv_enode){.key = "/scratch", .dir = true, .modified_index = 1121, .created_index = 21};
    ev.prev = (struct kv_enode){.key = "/scratch", .dir = true, .modified_index = 21, .created_index = 21};
    struct api_buf b = {0};
    api_json_event(&b, &ev, 0, false);
    expect(&b,
           "{\"action\":\"delete\",\"node\":{\"key\":\"/"
           "scratch\",\"dir\":true,\"modifiedIndex\":1121,\"createdIndex\":21},"
           "\"prevNode\":{\"key\":\"/scratch\",\"dir\":true,\"modifiedIndex\":21,\"createdIndex\":21}}\n");
}

static void test_compare_and_swap_and_refresh_events(void **s)
{
    struct kv_event ev = {.action = KV_ACT_CAS, .index = 9, .has_prev = true};
    ev.node = (struct kv_enode){
        .key = "/foo", .value = "two", .value_len = 3, .modified_index = 9, .created_index = 8};
    ev.prev = (struct kv_enode){
        .key = "/foo", .value = "one", .value_len = 3, .modified_index = 8, .created_index = 8};
    struct api_buf b = {0};
    api_json_event(&b, &ev, 0, false);
    expect(&b, "{\"action\":\"compareAndSwap\",\"node\":{\"key\":\"/"
               "foo\",\"value\":\"two\",\"modifiedIndex\":9,\"createdIndex\":8},"
               "\"prevNode\":{\"key\":\"/foo\",\"value\":\"one\",\"modifiedIndex\":8,\"createdIndex\":8}}\n");
    ev.action = KV_ACT_UPDATE;
    ev.has_prev = false;
    ev.refresh = true;
    api_json_event(&b, &ev, 0, false);
    expect(&b, "{\"action\":\"update\",\"node\":{\"key\":\"/"
               "foo\",\"value\":\"two\",\"modifiedIndex\":9,\"createdIndex\":8},"
               "\"refresh\":true}\n");
}

static void test_expiration_is_rfc3339nano_and_ttl_rounds_up(void **s)
{
    /* 2013-12-11T18:37:33.689Z */
    int64_t exp = 1386787053689LL;
    struct kv_event ev = {.action = KV_ACT_SET, .index = 17};
    ev.node = (struct kv_enode){
        .key = "/dir", .dir = true, .expire_ms = exp, .modified_index = 17, .created_index = 17};
    struct api_buf b = {0};
    api_json_event(&b, &ev, exp - 29001, false);
    expect(&b, "{\"action\":\"set\",\"node\":{\"key\":\"/"
               "dir\",\"dir\":true,\"expiration\":\"2013-12-11T18:37:33.689Z\","
               "\"ttl\":30,\"modifiedIndex\":17,\"createdIndex\":17}}\n");
    ev.node.expire_ms = exp - 689 + 500;
    api_json_event(&b, &ev, ev.node.expire_ms - 30000, false);
    expect(&b, "{\"action\":\"set\",\"node\":{\"key\":\"/"
               "dir\",\"dir\":true,\"expiration\":\"2013-12-11T18:37:33.5Z\","
               "\"ttl\":30,\"modifiedIndex\":17,\"createdIndex\":17}}\n");
    /* whole seconds: no fraction; expired exactly now: ttl omitted (0, omitempty) */
    ev.node.expire_ms = exp - 689;
    api_json_event(&b, &ev, exp - 689, false);
    expect(
        &b,
        "{\"action\":\"set\",\"node\":{\"key\":\"/dir\",\"dir\":true,\"expiration\":\"2013-12-11T18:37:33Z\","
        "\"modifiedIndex\":17,\"createdIndex\":17}}\n");
    assert_int_equal(api_ttl_seconds(10001, 0), 11);
    assert_int_equal(api_ttl_seconds(10000, 0), 10);
    assert_int_equal(api_ttl_seconds(0, 500), 0);
    assert_int_equal(api_ttl_seconds(0, 1500), -1);
}

static void test_errors_match_etcd(void **s)
{
    struct api_buf b = {0};
    api_json_error(&b, 100, "Key not found", T "/no-such-member", 16);
    expect(&b, "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":\"" T
               "/no-such-member\",\"index\":16}\n");
    api_json_error(&b, 209, "Invalid field", "invalid value for prevExist", 0);
    expect(&b, "{\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":\"invalid value for "
               "prevExist\",\"index\":0}\n");
    api_json_error(&b, 203, "The given index in POST form is not a number", "invalid value for \"waitIndex\"",
                   0);
    expect(&b, "{\"errorCode\":203,\"message\":\"The given index in POST form is not a number\","
               "\"cause\":\"invalid value for \\\"waitIndex\\\"\",\"index\":0}\n");
    api_json_error(&b, 401, "The event in requested index is outdated and cleared",
                   "the requested history has been cleared [121/1]", 1120);
    expect(&b, "{\"errorCode\":401,\"message\":\"The event in requested index is outdated and cleared\","
               "\"cause\":\"the requested history has been cleared [121/1]\",\"index\":1120}\n");
    api_json_error(&b, 300, "Raft Internal Error", NULL, 5);
    expect(&b, "{\"errorCode\":300,\"message\":\"Raft Internal Error\",\"index\":5}\n");
    api_json_error(&b, 300, "Raft Internal Error", "", 5);
    expect(&b, "{\"errorCode\":300,\"message\":\"Raft Internal Error\",\"index\":5}\n");
}

static void test_strings_escape_as_go_json_encoder(void **s)
{
    struct api_buf b = {0};
    const char in[] = "<a>&\"\\\n\r\t\b\f\x01\x1f\x7f/\xe2\x80\xa8\xe2\x80\xa9\xc3\xa9\xff\xc3";
    api_json_str(&b, in, sizeof(in) - 1);
    expect(&b, "\"\\u003ca\\u003e\\u0026\\\"\\\\\\n\\r\\t\\u0008\\u000c\\u0001\\u001f\x7f/"
               "\\u2028\\u2029\xc3\xa9\\ufffd\\ufffd\"");
    /* a NUL inside a value */
    api_json_str(&b, "a\0b", 3);
    expect(&b, "\"a\\u0000b\"");
}

static void test_time_format_trims_fraction_zeros(void **s)
{
    struct api_buf b = {0};
    api_json_time(&b, 1795216471000LL);
    expect(&b, "\"2026-11-20T23:14:31Z\"");
    api_json_time(&b, 1795216471120LL);
    expect(&b, "\"2026-11-20T23:14:31.12Z\"");
    api_json_time(&b, 1795216471001LL);
    expect(&b, "\"2026-11-20T23:14:31.001Z\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_get_token_dir_hides_config_and_matches_etcd, reset),
        cmocka_unit_test_setup(test_get_token_dir_body_is_576_bytes_as_in_the_trace, reset),
        cmocka_unit_test_setup(test_sorted_get_orders_by_key, reset),
        cmocka_unit_test_setup(test_get_hidden_dir_directly_lists_its_children, reset),
        cmocka_unit_test_setup(test_empty_dir_has_no_nodes_field, reset),
        cmocka_unit_test_setup(test_child_dirs_list_children_only_when_recursive, reset),
        cmocka_unit_test_setup(test_create_event_matches_etcd, reset),
        cmocka_unit_test_setup(test_set_event_and_no_value_on_success, reset),
        cmocka_unit_test_setup(test_delete_event_has_no_value_on_node_and_a_prev_node, reset),
        cmocka_unit_test_setup(test_dir_delete_event_matches_etcd, reset),
        cmocka_unit_test_setup(test_compare_and_swap_and_refresh_events, reset),
        cmocka_unit_test_setup(test_expiration_is_rfc3339nano_and_ttl_rounds_up, reset),
        cmocka_unit_test_setup(test_errors_match_etcd, reset),
        cmocka_unit_test_setup(test_strings_escape_as_go_json_encoder, reset),
        cmocka_unit_test_setup(test_time_format_trims_fraction_zeros, reset),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kv_free(kv);
    return rc;
}
