/* tests/unit/test_api_keys.c — the keys handler's pure half: parameter validation in etcd's
 * order with etcd's codes, causes and HTTP statuses, discoveryd's caps, and the mapping of
 * each request onto a kv_cmd (the rules: docs/protocol.md#requests and #responses-and-errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/json.h"
#include "api/keys.h"

#define NOW 1795216471000LL

static void *blocks[256];
static int nblocks;
static void *alloc(void *ctx, size_t sz)
{
    return blocks[nblocks++] = malloc(sz ? sz : 1);
}
static int teardown(void **s)
{
    while (nblocks > 0)
        free(blocks[--nblocks]);
    return 0;
}

static struct api_config cfg;
static int setup(void **s)
{
    api_config_defaults(&cfg);
    return 0;
}

struct res {
    int rc;
    struct api_keys_req req;
    struct api_keys_err err;
};

static struct res run(enum api_method m, const char *key, const char *query, const char *body)
{
    struct api_form f;
    assert_int_equal(
        api_form_parse(&f, query, query ? strlen(query) : 0, body, body ? strlen(body) : 0, alloc, NULL), 0);
    /* token is the component after /discovery/ */
    const char *tok = key + strlen("/discovery/");
    const char *slash = strchr(tok, '/');
    uint32_t token_len = slash ? (uint32_t)(slash - tok) : (uint32_t)strlen(tok);
    uint32_t longest = 0;
    for (const char *p = slash; p != NULL;) {
        const char *next = strchr(p + 1, '/');
        uint32_t l = next ? (uint32_t)(next - p - 1) : (uint32_t)strlen(p + 1);
        if (l > longest)
            longest = l;
        p = next;
    }
    struct res r;
    r.rc = api_keys_parse(&cfg, m, key, (uint32_t)strlen(key), token_len, longest, &f, NOW, &r.req, &r.err);
    return r;
}

/* The full answer body an error renders to, as the handler sends it. */
static void expect_error(struct res r, int code, int status, const char *body)
{
    assert_int_equal(r.rc, code);
    assert_int_equal(r.err.code, code);
    assert_int_equal(r.err.http_status, status);
    assert_int_equal(api_err_http_status(code), status);
    struct api_buf b = {0};
    api_json_error(&b, code, api_err_message(code), r.err.cause, 0);
    if (b.len != strlen(body) || memcmp(b.p, body, b.len) != 0)
        fail_msg("got  %.*s\nwant %s", (int)b.len, b.p, body);
    api_buf_free(&b);
}

#define K "/discovery/T/6c007a14875d53d9"

static void test_registration_put_prev_exist_false_is_create(void **s)
{
    struct res r = run(API_M_PUT, K, "prevExist=false", "value=infra0%3Dhttp%3A%2F%2F10.0.1.10%3A2380");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.req.kind, API_KEYS_WRITE);
    assert_int_equal(r.req.cmd.type, KV_CMD_CREATE);
    assert_int_equal(r.req.cmd.key_len, strlen(K));
    assert_memory_equal(r.req.cmd.key, K, strlen(K));
    assert_int_equal(r.req.cmd.value_len, strlen("infra0=http://10.0.1.10:2380"));
    assert_memory_equal(r.req.cmd.value, "infra0=http://10.0.1.10:2380", r.req.cmd.value_len);
    assert_int_equal(r.req.cmd.now_ms, NOW);
    assert_int_equal(r.req.cmd.expire_ms, 0);
    assert_false(r.req.cmd.dir);
    assert_true(r.req.registration);
    assert_false(r.req.config_size);
}

static void test_put_mapping_table(void **s)
{
    assert_int_equal(run(API_M_PUT, K, "", "value=x").req.cmd.type, KV_CMD_SET);
    assert_int_equal(run(API_M_PUT, K, "prevExist=true", "value=x").req.cmd.type, KV_CMD_UPDATE);
    struct res r = run(API_M_PUT, K, "prevExist=true&prevValue=a", "value=x");
    assert_int_equal(r.req.cmd.type, KV_CMD_CAS);
    assert_true(r.req.cmd.has_prev_value);
    assert_memory_equal(r.req.cmd.prev_value, "a", 1);
    r = run(API_M_PUT, K, "prevExist=true&prevIndex=7", "value=x");
    assert_int_equal(r.req.cmd.type, KV_CMD_CAS);
    assert_int_equal(r.req.cmd.prev_index, 7);
    r = run(API_M_PUT, K, "prevValue=a&prevIndex=3", "value=x");
    assert_int_equal(r.req.cmd.type, KV_CMD_CAS);
    assert_int_equal(r.req.cmd.prev_index, 3);
    /* prevExist=false wins over compare fields, and they are dropped (etcd's Create) */
    r = run(API_M_PUT, K, "prevExist=false&prevValue=a&prevIndex=3", "value=x");
    assert_int_equal(r.req.cmd.type, KV_CMD_CREATE);
    assert_false(r.req.cmd.has_prev_value);
    assert_int_equal(r.req.cmd.prev_index, 0);
    /* prevIndex=0 is "not given" */
    assert_int_equal(run(API_M_PUT, K, "prevIndex=0", "value=x").req.cmd.type, KV_CMD_SET);
}

static void test_put_dir_drops_value(void **s)
{
    struct res r = run(API_M_PUT, "/discovery/T", "dir=true", "value=x");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.req.cmd.type, KV_CMD_SET);
    assert_true(r.req.cmd.dir);
    assert_null(r.req.cmd.value);
    assert_true(r.req.token_dir);
    assert_false(r.req.registration);
}

static void test_ttl_becomes_absolute_expiry_from_now(void **s)
{
    struct res r = run(API_M_PUT, K, "ttl=30", "value=x");
    assert_int_equal(r.req.cmd.expire_ms, NOW + 30000);
    r = run(API_M_PUT, K, "ttl=0", "value=x");
    assert_int_equal(r.req.cmd.expire_ms, NOW);
    r = run(API_M_PUT, K, "ttl=", "value=x"); /* empty: no TTL (removes one) */
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.req.cmd.expire_ms, 0);
}

static void test_refresh_maps_with_ttl(void **s)
{
    struct res r = run(API_M_PUT, K, "refresh=true&ttl=5&prevExist=true", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.req.cmd.type, KV_CMD_UPDATE);
    assert_true(r.req.cmd.refresh);
    assert_int_equal(r.req.cmd.expire_ms, NOW + 5000);
    /* refresh=false with a value is a plain set */
    r = run(API_M_PUT, K, "refresh=false", "value=v");
    assert_int_equal(r.rc, 0);
    assert_false(r.req.cmd.refresh);
}

static void test_post_is_in_order_create_under_key(void **s)
{
    struct res r = run(API_M_POST, "/discovery/T", NULL, "value=Job1&ttl=10");
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.req.cmd.type, KV_CMD_POST);
    assert_memory_equal(r.req.cmd.value, "Job1", 4);
    assert_int_equal(r.req.cmd.expire_ms, NOW + 10000);
    assert_true(r.req.registration);
}

static void test_delete_mapping(void **s)
{
    struct res r = run(API_M_DELETE, K, NULL, NULL);
    assert_int_equal(r.req.cmd.type, KV_CMD_DELETE);
    assert_false(r.req.cmd.dir);
    assert_false(r.req.cmd.recursive);
    r = run(API_M_DELETE, "/discovery/T", "recursive=true", NULL);
    assert_int_equal(r.req.cmd.type, KV_CMD_DELETE);
    assert_true(r.req.cmd.dir);
    assert_true(r.req.cmd.recursive);
    r = run(API_M_DELETE, "/discovery/T/d", "dir=true", NULL);
    assert_true(r.req.cmd.dir);
    assert_false(r.req.cmd.recursive);
    r = run(API_M_DELETE, K, "prevValue=a", NULL);
    assert_int_equal(r.req.cmd.type, KV_CMD_CAD);
    assert_true(r.req.cmd.has_prev_value);
    r = run(API_M_DELETE, K, "prevIndex=4", NULL);
    assert_int_equal(r.req.cmd.type, KV_CMD_CAD);
    assert_int_equal(r.req.cmd.prev_index, 4);
}

static void test_get_variants(void **s)
{
    struct res r = run(API_M_GET, "/discovery/T", "quorum=false&recursive=false&sorted=false", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.req.kind, API_KEYS_READ);
    assert_false(r.req.quorum);
    r = run(API_M_GET, "/discovery/T", "quorum=true&recursive=true&sorted=true", NULL);
    assert_true(r.req.quorum);
    assert_true(r.req.recursive);
    assert_true(r.req.sorted);
    r = run(API_M_GET, "/discovery/T", "recursive=true&wait=true&waitIndex=7", NULL);
    assert_int_equal(r.req.kind, API_KEYS_WATCH);
    assert_int_equal(r.req.wait_index, 7);
    assert_true(r.req.recursive);
    /* wait=false is a plain read (etcd parses the bool; the 2019 server did not) */
    assert_int_equal(run(API_M_GET, "/discovery/T", "wait=false", NULL).req.kind, API_KEYS_READ);
    /* HEAD is always a plain read; wait on HEAD is refused as on any non-GET */
    assert_int_equal(run(API_M_HEAD, "/discovery/T", "wait=true", NULL).rc, 209);
    r = run(API_M_HEAD, "/discovery/T", "quorum=true", NULL);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.req.kind, API_KEYS_READ);
    assert_true(r.req.head);
    assert_false(r.req.quorum);
}

static void test_config_size_write_is_flagged_and_validated(void **s)
{
    struct res r = run(API_M_PUT, "/discovery/T/_config/size", NULL, "value=3");
    assert_int_equal(r.rc, 0);
    assert_true(r.req.config_size);
    assert_false(r.req.registration);
    expect_error(run(API_M_PUT, "/discovery/T/_config/size", NULL, "value=0"), API_E_BAD_SIZE, 400,
                 "{\"errorCode\":1106,\"message\":\"Invalid size\",\"cause\":\"size must be an integer from "
                 "1 to 15\",\"index\":0}\n");
    expect_error(run(API_M_PUT, "/discovery/T/_config/size", NULL, "value=abc"), API_E_BAD_SIZE, 400,
                 "{\"errorCode\":1106,\"message\":\"Invalid size\",\"cause\":\"size must be an integer from "
                 "1 to 15\",\"index\":0}\n");
    assert_int_equal(run(API_M_PUT, "/discovery/T/_config/size", NULL, "value=16").rc, API_E_BAD_SIZE);
    assert_int_equal(run(API_M_PUT, "/discovery/T/_config/size", NULL, "value=15").rc, 0);
}

static void test_hidden_child_is_not_a_registration(void **s)
{
    assert_false(run(API_M_PUT, "/discovery/T/_x", NULL, "value=1").req.registration);
    assert_false(run(API_M_PUT, "/discovery/T/a/b", NULL, "value=1").req.registration);
    assert_false(run(API_M_PUT, K, "prevExist=true", "value=1").req.registration);
}

static void test_etcd_form_errors_codes_statuses_and_bodies(void **s)
{
    expect_error(run(API_M_PUT, K, "prevExist=abc", "value=x"), 209, 400,
                 "{\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":\"invalid value for "
                 "prevExist\",\"index\":0}\n");
    expect_error(run(API_M_GET, "/discovery/T", "wait=true&waitIndex=abc", NULL), 203, 400,
                 "{\"errorCode\":203,\"message\":\"The given index in POST form is not a number\","
                 "\"cause\":\"invalid value for \\\"waitIndex\\\"\",\"index\":0}\n");
    expect_error(run(API_M_PUT, K, "prevIndex=-1", "value=x"), 203, 400,
                 "{\"errorCode\":203,\"message\":\"The given index in POST form is not a number\","
                 "\"cause\":\"invalid value for \\\"prevIndex\\\"\",\"index\":0}\n");
    expect_error(run(API_M_PUT, K, "ttl=abc", "value=x"), 202, 400,
                 "{\"errorCode\":202,\"message\":\"The given TTL in POST form is not a number\","
                 "\"cause\":\"invalid value for \\\"ttl\\\"\",\"index\":0}\n");
    expect_error(run(API_M_PUT, K, "prevValue=", "value=x"), 201, 400,
                 "{\"errorCode\":201,\"message\":\"PrevValue is Required in POST form\","
                 "\"cause\":\"\\\"prevValue\\\" cannot be empty\",\"index\":0}\n");
    expect_error(run(API_M_PUT, K, "wait=true", "value=x"), 209, 400,
                 "{\"errorCode\":209,\"message\":\"Invalid field\","
                 "\"cause\":\"\\\"wait\\\" can only be used with GET requests\",\"index\":0}\n");
    expect_error(run(API_M_PUT, K, "refresh=true&ttl=5", "value=x"), 211, 400,
                 "{\"errorCode\":211,\"message\":\"Value provided on refresh\","
                 "\"cause\":\"A value was provided on a refresh\",\"index\":0}\n");
    expect_error(run(API_M_PUT, K, "refresh=true", NULL), 212, 400,
                 "{\"errorCode\":212,\"message\":\"A TTL must be provided on refresh\","
                 "\"cause\":\"No TTL value set\",\"index\":0}\n");
    expect_error(run(API_M_PUT, K, "refresh=maybe", NULL), 209, 400,
                 "{\"errorCode\":209,\"message\":\"Invalid field\",\"cause\":\"invalid value for "
                 "refresh\",\"index\":0}\n");
    const char *bools[] = {"recursive", "sorted", "wait", "dir", "quorum", "stream", "noValueOnSuccess"};
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        char q[64], cause[64];
        snprintf(q, sizeof(q), "%s=yes", bools[i]);
        snprintf(cause, sizeof(cause), "invalid value for \"%s\"", bools[i]);
        struct res r = run(API_M_GET, "/discovery/T", q, NULL);
        assert_int_equal(r.rc, 209);
        assert_string_equal(r.err.cause, cause);
    }
}

static void test_errors_come_in_etcd_order(void **s)
{
    /* prevIndex is checked before waitIndex, both before the booleans */
    assert_string_equal(run(API_M_GET, "/discovery/T", "waitIndex=x&prevIndex=y&recursive=z", NULL).err.cause,
                        "invalid value for \"prevIndex\"");
    assert_string_equal(run(API_M_GET, "/discovery/T", "waitIndex=x&recursive=z", NULL).err.cause,
                        "invalid value for \"waitIndex\"");
    /* wait on PUT is reported before an empty prevValue */
    assert_int_equal(run(API_M_PUT, K, "wait=true&prevValue=", NULL).rc, 209);
    /* an empty ttl is not an error, but prevExist garbage is */
    assert_int_equal(run(API_M_PUT, K, "ttl=&prevExist=x", NULL).rc, 209);
}

static void test_body_parameters_win_over_query(void **s)
{
    struct res r = run(API_M_PUT, K, "value=q&prevExist=true", "value=b&prevExist=false");
    assert_int_equal(r.req.cmd.type, KV_CMD_CREATE);
    assert_memory_equal(r.req.cmd.value, "b", 1);
}

static void test_caps_value_and_key(void **s)
{
    char body[5000] = "value=";
    memset(body + 6, 'v', 4097);
    body[6 + 4097] = 0;
    expect_error(run(API_M_PUT, K, NULL, body), API_E_VALUE_TOO_LARGE, 413,
                 "{\"errorCode\":1101,\"message\":\"Value too large\",\"cause\":\"the value is larger than "
                 "4096 bytes\",\"index\":0}\n");
    body[6 + 4096] = 0;
    assert_int_equal(run(API_M_PUT, K, NULL, body).rc, 0);
    char key[400] = "/discovery/T/";
    memset(key + 13, 'k', 256);
    key[13 + 256] = 0;
    expect_error(run(API_M_PUT, key, NULL, "value=1"), API_E_KEY_TOO_LONG, 400,
                 "{\"errorCode\":1102,\"message\":\"Key too long\",\"cause\":\"a key component is longer "
                 "than 255 bytes\",\"index\":0}\n");
    key[13 + 255] = 0;
    assert_int_equal(run(API_M_PUT, key, NULL, "value=1").rc, 0);
}

static void test_unsupported_method_is_405(void **s)
{
    struct res r = run(API_M_OTHER, K, NULL, NULL);
    assert_int_equal(r.rc, 405);
    assert_int_equal(r.err.http_status, 405);
}

static void test_store_error_statuses(void **s)
{
    assert_int_equal(api_err_http_status(KV_ENOTFOUND), 404);
    assert_int_equal(api_err_http_status(KV_ETESTFAILED), 412);
    assert_int_equal(api_err_http_status(KV_EEXISTS), 412);
    assert_int_equal(api_err_http_status(KV_ENOTFILE), 403);
    assert_int_equal(api_err_http_status(KV_EDIRNOTEMPTY), 403);
    assert_int_equal(api_err_http_status(KV_ENOTDIR), 400);
    assert_int_equal(api_err_http_status(KV_EROOTRONLY), 400);
    assert_int_equal(api_err_http_status(KV_EINVALIDFORM), 400);
    assert_int_equal(api_err_http_status(KV_EEVENTCLEARED), 400);
    assert_int_equal(api_err_http_status(KV_ERAFT), 500);
    assert_int_equal(api_err_http_status(KV_ELEADERELECT), 500);
    assert_int_equal(api_err_http_status(KV_ETOOMANYCHILDREN), 429);
    assert_int_equal(api_err_http_status(API_E_FORBIDDEN), 403);
    assert_int_equal(api_err_http_status(API_E_BODY_TOO_LARGE), 413);
    assert_int_equal(api_err_http_status(API_E_RATE_LIMITED), 429);
    assert_int_equal(api_err_http_status(API_E_TOO_MANY_WATCHES), 429);
    assert_string_equal(api_err_message(KV_EEXISTS), "Key already exists");
}

static void test_method_names(void **s)
{
    assert_int_equal(api_method_of("GET", 3), API_M_GET);
    assert_int_equal(api_method_of("HEAD", 4), API_M_HEAD);
    assert_int_equal(api_method_of("PUT", 3), API_M_PUT);
    assert_int_equal(api_method_of("POST", 4), API_M_POST);
    assert_int_equal(api_method_of("DELETE", 6), API_M_DELETE);
    assert_int_equal(api_method_of("PATCH", 5), API_M_OTHER);
    assert_int_equal(api_method_of("get", 3), API_M_OTHER);
}

static void test_parse_size(void **s)
{
    uint32_t v;
    assert_int_equal(api_parse_size("1", 1, 15, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(api_parse_size("15", 2, 15, &v), 0);
    assert_int_equal(api_parse_size("16", 2, 15, &v), -1);
    assert_int_equal(api_parse_size("0", 1, 15, &v), -1);
    assert_int_equal(api_parse_size("-3", 2, 15, &v), -1);
    assert_int_equal(api_parse_size("+3", 2, 15, &v), -1);
    assert_int_equal(api_parse_size(" 3", 2, 15, &v), -1);
    assert_int_equal(api_parse_size("", 0, 15, &v), -1);
    assert_int_equal(api_parse_size("99999999999999999999", 20, 15, &v), -1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_registration_put_prev_exist_false_is_create),
        T(test_put_mapping_table),
        T(test_put_dir_drops_value),
        T(test_ttl_becomes_absolute_expiry_from_now),
        T(test_refresh_maps_with_ttl),
        T(test_post_is_in_order_create_under_key),
        T(test_delete_mapping),
        T(test_get_variants),
        T(test_config_size_write_is_flagged_and_validated),
        T(test_hidden_child_is_not_a_registration),
        T(test_etcd_form_errors_codes_statuses_and_bodies),
        T(test_errors_come_in_etcd_order),
        T(test_body_parameters_win_over_query),
        T(test_caps_value_and_key),
        T(test_unsupported_method_is_405),
        T(test_store_error_statuses),
        T(test_method_names),
        T(test_parse_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
