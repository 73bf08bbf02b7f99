/* tests/unit/test_kv_token.c — the in_token rule of the state machine: a write into a token that
 * does not exist is 100 naming the token dir, decided when the command applies (so a member that
 * has not applied a new token yet forwards the write instead of refusing it); once the token
 * exists the same command goes through, and the codec carries the flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv.h"

static int run(struct kv *kv, enum kv_cmd_type t, const char *key, bool in_token, struct kv_error *err)
{
    struct kv_cmd c = {.type = t,
                       .now_ms = 1,
                       .key = key,
                       .key_len = (uint32_t)strlen(key),
                       .value = "v",
                       .value_len = 1,
                       .in_token = in_token};
    uint8_t *b;
    size_t n;
    assert_int_equal(kv_cmd_encode(&c, &b, &n), 0);
    struct kv_cmd d;
    assert_int_equal(kv_cmd_decode(b, n, &d), 0);
    assert_int_equal(d.in_token, in_token);
    int rc = kv_apply(kv, b, n, NULL, NULL, err);
    free(b);
    return rc;
}

static void test_a_write_into_a_missing_token_is_100_when_it_applies(void **state)
{
    (void)state;
    struct kv *kv = kv_new();
    struct kv_error err = {0};
    uint64_t idx = kv_index(kv);
    assert_int_equal(run(kv, KV_CMD_CREATE, "/discovery/T/m1", true, &err), KV_ENOTFOUND);
    assert_string_equal(err.cause, "/discovery/T");
    assert_int_equal(err.index, idx);
    assert_int_equal(kv_index(kv), idx); /* nothing changed */
    assert_null(kv_lookup(kv, "/discovery/T", 12));
    assert_int_equal(run(kv, KV_CMD_POST, "/discovery/T/q", true, &err), KV_ENOTFOUND);
    /* the token comes into being (by its size), then the same write goes through */
    assert_int_equal(run(kv, KV_CMD_SET, "/discovery/T/_config/size", false, &err), 0);
    assert_int_equal(run(kv, KV_CMD_CREATE, "/discovery/T/m1", true, &err), 0);
    assert_non_null(kv_lookup(kv, "/discovery/T/m1", 15));
    /* without the flag the tree's own rules apply (implicit dirs), as before */
    assert_int_equal(run(kv, KV_CMD_CREATE, "/discovery/U/m1", false, &err), 0);
    kv_error_clear(&err);
    kv_free(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_write_into_a_missing_token_is_100_when_it_applies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
