/* tests/unit/test_kv_cmd.c — the kv command codec (store/kv_cmd.c): round trips, and that every
 * truncation, corrupted byte and bad length is refused (-1) without crashing; kv_apply answers
 * such bytes with KV_ERAFT and leaves the tree alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/kv.h"

static struct kv_cmd full_cmd(void)
{
    struct kv_cmd c;
    memset(&c, 0, sizeof(c));
    c.type = KV_CMD_CAS;
    c.now_ms = 1795216478682;
    c.key = "/discovery/T/6c007a14875d53d9";
    c.key_len = (uint32_t)strlen(c.key);
    c.value = "infra0=http://[fd00::1]:2380";
    c.value_len = (uint32_t)strlen(c.value);
    c.dir = false;
    c.recursive = true;
    c.refresh = true;
    c.expire_ms = 1795216508682;
    c.has_prev_value = true;
    c.prev_value = "old";
    c.prev_value_len = 3;
    c.prev_index = 0x0102030405060708ULL;
    c.cap_size = 19;
    c.cap_surplus = 7;
    c.token_ttl_ms = 604800000;
    c.sweep_max = 77;
    return c;
}

static void assert_cmd_equal(const struct kv_cmd *a, const struct kv_cmd *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->now_ms, b->now_ms);
    assert_int_equal(a->key_len, b->key_len);
    assert_memory_equal(a->key, b->key, a->key_len);
    assert_int_equal(a->value_len, b->value_len);
    if (a->value_len)
        assert_memory_equal(a->value, b->value, a->value_len);
    assert_int_equal(a->dir, b->dir);
    assert_int_equal(a->recursive, b->recursive);
    assert_int_equal(a->refresh, b->refresh);
    assert_int_equal(a->keep_config, b->keep_config);
    assert_int_equal(a->expire_ms, b->expire_ms);
    assert_int_equal(a->has_prev_value, b->has_prev_value);
    assert_int_equal(a->prev_value_len, b->prev_value_len);
    if (a->prev_value_len)
        assert_memory_equal(a->prev_value, b->prev_value, a->prev_value_len);
    assert_int_equal(a->prev_index, b->prev_index);
    assert_int_equal(a->cap_size, b->cap_size);
    assert_int_equal(a->cap_surplus, b->cap_surplus);
    assert_int_equal(a->token_ttl_ms, b->token_ttl_ms);
    assert_int_equal(a->sweep_max, b->sweep_max);
}

static void test_round_trip_keeps_every_field(void **state)
{
    (void)state;
    struct kv_cmd c = full_cmd(), d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    assert_int_equal(buf[0], 1); /* version */
    assert_int_equal(len, kv_cmd_encoded_len(&c));
    assert_int_equal(kv_cmd_decode(buf, len, &d), 0);
    assert_cmd_equal(&c, &d);
    /* the strings point into the buffer */
    assert_true((const uint8_t *)d.key > buf && (const uint8_t *)d.key < buf + len);
    free(buf);
}

static void test_round_trip_every_type_and_flags(void **state)
{
    (void)state;
    for (int t = KV_CMD_SET; t <= KV_CMD_SWEEP; t++) {
        for (int f = 0; f < 16; f++) {
            struct kv_cmd c = full_cmd(), d;
            c.type = t;
            c.dir = f & 1;
            c.recursive = f & 2;
            c.refresh = f & 4;
            c.keep_config = f & 8;
            c.has_prev_value = !(f & 1);
            if (!c.has_prev_value) {
                c.prev_value = NULL;
                c.prev_value_len = 0;
            }
            uint8_t *buf;
            size_t len;
            assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
            assert_int_equal(kv_cmd_decode(buf, len, &d), 0);
            assert_cmd_equal(&c, &d);
            free(buf);
        }
    }
}

static void test_null_value_encodes_as_empty(void **state)
{
    (void)state;
    struct kv_cmd c = full_cmd(), d;
    c.value = NULL;
    c.value_len = 5; /* ignored without a pointer */
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    assert_int_equal(kv_cmd_decode(buf, len, &d), 0);
    assert_int_equal(d.value_len, 0);
    free(buf);
}

static void test_encode_to_reports_needed_length_when_short(void **state)
{
    (void)state;
    struct kv_cmd c = full_cmd(), d;
    uint8_t small[8];
    size_t need = kv_cmd_encode_to(&c, small, sizeof(small));
    assert_true(need > sizeof(small));
    uint8_t *big = malloc(need);
    assert_int_equal(kv_cmd_encode_to(&c, big, need), need);
    assert_int_equal(kv_cmd_decode(big, need, &d), 0);
    assert_cmd_equal(&c, &d);
    free(big);
}

static void test_every_truncation_is_refused(void **state)
{
    (void)state;
    struct kv_cmd c = full_cmd(), d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    for (size_t n = 0; n < len; n++) {
        /* a fresh allocation of exactly n bytes, so ASan catches any read past the end */
        uint8_t *t = malloc(n ? n : 1);
        memcpy(t, buf, n);
        assert_int_equal(kv_cmd_decode(t, n, &d), -1);
        free(t);
    }
    free(buf);
}

static void test_trailing_bytes_are_refused(void **state)
{
    (void)state;
    struct kv_cmd c = full_cmd(), d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    uint8_t *t = malloc(len + 1);
    memcpy(t, buf, len);
    t[len] = 0;
    assert_int_equal(kv_cmd_decode(t, len + 1, &d), -1);
    free(t);
    free(buf);
}

static void test_bad_version_type_flags_are_refused(void **state)
{
    (void)state;
    struct kv_cmd c = full_cmd(), d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    buf[0] = 2;
    assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
    buf[0] = 0;
    assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
    buf[0] = 1;
    buf[1] = 0;
    assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
    buf[1] = KV_CMD_SWEEP + 1;
    assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
    buf[1] = KV_CMD_CAS;
    buf[2] = 0x20;
    assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
    buf[2] = 0x1f;
    assert_int_equal(kv_cmd_decode(buf, len, &d), 0);
    free(buf);
}

static void test_lengths_past_the_end_are_refused(void **state)
{
    (void)state;
    struct kv_cmd c = full_cmd(), d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    /* key length at offset 47: make it huge, then just one too many */
    uint8_t save[4];
    memcpy(save, buf + 47, 4);
    buf[47] = buf[48] = buf[49] = buf[50] = 0xff;
    assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
    memcpy(buf + 47, save, 4);
    buf[47]++;
    assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
    free(buf);
}

static void test_unclean_keys_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        "", "discovery/T", "/discovery//T", "/discovery/T/", "/discovery/./T", "/discovery/../T", "/a/.."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct kv_cmd c = full_cmd(), d;
        c.key = bad[i];
        c.key_len = (uint32_t)strlen(bad[i]);
        uint8_t *buf;
        size_t len;
        assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
        assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
        free(buf);
    }
    struct kv_cmd c = full_cmd(), d;
    char nul[] = "/a\0b";
    c.key = nul;
    c.key_len = 4;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    assert_int_equal(kv_cmd_decode(buf, len, &d), -1);
    free(buf);
    /* "/" and names with dots inside are fine */
    const char *good[] = {"/", "/a.b", "/discovery/T/..x", "/discovery/3ca67c9f-5e6b-4705-8f60-a8e758d1ce15"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        c = full_cmd();
        c.key = good[i];
        c.key_len = (uint32_t)strlen(good[i]);
        assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
        assert_int_equal(kv_cmd_decode(buf, len, &d), 0);
        free(buf);
    }
    /* a component of KV_NAME_MAX bytes is the longest the tree keeps */
    size_t big = KV_NAME_MAX + 1 + 3;
    char *k = malloc(big + 1);
    assert_non_null(k);
    memcpy(k, "/a/", 3);
    memset(k + 3, 'x', big - 3);
    for (int over = 0; over <= 1; over++) {
        c = full_cmd();
        c.key = k;
        c.key_len = (uint32_t)(3 + KV_NAME_MAX + (size_t)over);
        assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
        assert_int_equal(kv_cmd_decode(buf, len, &d), over ? -1 : 0);
        free(buf);
    }
    free(k);
}

/* Every single-byte corruption (three values per byte) either decodes or is refused, and
 * applying it never crashes and changes the index by at most one. */
static void test_corrupted_bytes_never_crash_apply(void **state)
{
    (void)state;
    struct kv_cmd c = full_cmd();
    c.type = KV_CMD_SET;
    c.has_prev_value = false;
    c.prev_value = NULL;
    c.prev_value_len = 0;
    c.refresh = false;
    uint8_t *buf;
    size_t len;
    assert_int_equal(kv_cmd_encode(&c, &buf, &len), 0);
    struct kv *kv = kv_new();
    const uint8_t vals[3] = {0x00, 0xff, 0x5a};
    for (size_t i = 0; i < len; i++) {
        for (int v = 0; v < 3; v++) {
            uint8_t *t = malloc(len);
            memcpy(t, buf, len);
            t[i] ^= vals[v] ? vals[v] : 0x01;
            struct kv_error err = {0};
            uint64_t before = kv_index(kv);
            int rc = kv_apply(kv, t, len, NULL, NULL, &err);
            struct kv_cmd d;
            if (kv_cmd_decode(t, len, &d) != 0)
                assert_int_equal(rc, KV_ERAFT);
            assert_true(kv_index(kv) - before <= 1);
            kv_error_clear(&err);
            free(t);
        }
    }
    kv_free(kv);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_keeps_every_field),
        cmocka_unit_test(test_round_trip_every_type_and_flags),
        cmocka_unit_test(test_null_value_encodes_as_empty),
        cmocka_unit_test(test_encode_to_reports_needed_length_when_short),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_trailing_bytes_are_refused),
        cmocka_unit_test(test_bad_version_type_flags_are_refused),
        cmocka_unit_test(test_lengths_past_the_end_are_refused),
        cmocka_unit_test(test_unclean_keys_are_refused),
        cmocka_unit_test(test_corrupted_bytes_never_crash_apply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
