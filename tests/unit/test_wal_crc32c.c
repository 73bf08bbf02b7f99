/* tests/unit/test_wal_crc32c.c — CRC-32C: the standard check value, chaining, the slicing tables
 * recomputed from the polynomial, and agreement with a bitwise reference at every length/alignment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "store/crc32c.h"

static uint32_t bitwise(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_crc32c_check_value_of_123456789(void **state)
{
    assert_int_equal(crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c("", 0), 0);
}

static void test_crc32c_known_vectors_from_rfc3720(void **state)
{
    uint8_t zeros[32] = {0}, ones[32], inc[32];
    for (int i = 0; i < 32; i++) {
        ones[i] = 0xFF;
        inc[i] = (uint8_t)i;
    }
    assert_int_equal(crc32c(zeros, 32), 0x8A9136AAu);
    assert_int_equal(crc32c(ones, 32), 0x62A8AB43u);
    assert_int_equal(crc32c(inc, 32), 0x46DD794Eu);
}

static void test_crc32c_tables_match_the_polynomial(void **state)
{
    for (unsigned i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        assert_int_equal(crc32c_table_entry(0, i), c);
        for (unsigned t = 1; t < 8; t++) {
            c = (c >> 8) ^ crc32c_table_entry(0, c & 0xFF);
            assert_int_equal(crc32c_table_entry(t, i), c);
        }
    }
}

static void test_crc32c_matches_bitwise_at_every_length_and_alignment(void **state)
{
    uint8_t buf[300];
    for (int i = 0; i < 300; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n + off <= 300; n++)
            assert_int_equal(crc32c(buf + off, n), bitwise(buf + off, n));
}

static void test_crc32c_chained_equals_whole(void **state)
{
    const char *s = "the quick brown fox jumps over the lazy dog";
    size_t n = 43;
    for (size_t cut = 0; cut <= n; cut++)
        assert_int_equal(crc32c_update(crc32c(s, cut), s + cut, n - cut), crc32c(s, n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_value_of_123456789),
        cmocka_unit_test(test_crc32c_known_vectors_from_rfc3720),
        cmocka_unit_test(test_crc32c_tables_match_the_polynomial),
        cmocka_unit_test(test_crc32c_matches_bitwise_at_every_length_and_alignment),
        cmocka_unit_test(test_crc32c_chained_equals_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
