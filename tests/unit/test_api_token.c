/* tests/unit/test_api_token.c — token minting, name validation, reserved words, address keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "api/addr.h"
#include "api/token.h"

static void test_minted_token_is_32_lowercase_hex_and_differs(void **s)
{
    char a[33], b[33];
    assert_int_equal(api_token_mint(a), 0);
    assert_int_equal(api_token_mint(b), 0);
    assert_int_equal(strlen(a), 32);
    for (int i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    assert_string_not_equal(a, b);
    assert_true(api_token_name_valid(a, 32));
}

static void test_name_rules(void **s)
{
    assert_true(api_token_name_valid("4068fe4b-9f9f-4768-9ea2-6208e77632aa", 36));
    assert_true(api_token_name_valid("A.b_c-9", 7));
    assert_true(api_token_name_valid("x", 1));
    assert_false(api_token_name_valid("", 0));
    assert_false(api_token_name_valid(".", 1));
    assert_false(api_token_name_valid("..", 2));
    assert_true(api_token_name_valid("...", 3));
    assert_false(api_token_name_valid("a b", 3));
    assert_false(api_token_name_valid("a/b", 3));
    assert_false(api_token_name_valid("a~", 2));
    assert_false(api_token_name_valid("\xc3\xa9", 2));
    char n[130];
    memset(n, 'a', sizeof(n));
    assert_true(api_token_name_valid(n, 128));
    assert_false(api_token_name_valid(n, 129));
}

static void test_reserved_words(void **s)
{
    const char *r[] = {"new",    "health", "metrics",     "robots.txt",
                       "status", "v2",     "favicon.ico", API_STATIC_PREFIX};
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
        assert_true(api_token_reserved(r[i], strlen(r[i])));
    assert_false(api_token_reserved("news", 4));
    assert_false(api_token_reserved("ne", 2));
    assert_false(api_token_reserved("3e86b59982e49066c5d813af1c2e2579", 32));
}

static void test_ipv4_key_is_mapped_and_masked(void **s)
{
    struct sockaddr_in in = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.0.2.77", &in.sin_addr);
    uint8_t k[16];
    const uint8_t host[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 77};
    const uint8_t range[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 0};
    assert_int_equal(api_addr_key((struct sockaddr *)&in, sizeof(in), 32, 64, k), 0);
    assert_memory_equal(k, host, 16);
    assert_int_equal(api_addr_key((struct sockaddr *)&in, sizeof(in), 24, 48, k), 0);
    assert_memory_equal(k, range, 16);
}

static void test_ipv6_key_is_masked_to_prefix(void **s)
{
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", &in6.sin6_addr);
    uint8_t k[16], want[16];
    inet_pton(AF_INET6, "2001:db8:1:2::", want);
    assert_int_equal(api_addr_key((struct sockaddr *)&in6, sizeof(in6), 32, 64, k), 0);
    assert_memory_equal(k, want, 16);
    inet_pton(AF_INET6, "2001:db8:1::", want);
    assert_int_equal(api_addr_key((struct sockaddr *)&in6, sizeof(in6), 24, 48, k), 0);
    assert_memory_equal(k, want, 16);
    /* a v4-mapped v6 peer (dual-stack socket) is treated as IPv4 */
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr);
    inet_pton(AF_INET6, "::ffff:10.1.2.0", want);
    assert_int_equal(api_addr_key((struct sockaddr *)&in6, sizeof(in6), 24, 48, k), 0);
    assert_memory_equal(k, want, 16);
}

static void test_unknown_family_is_refused(void **s)
{
    struct sockaddr sa = {.sa_family = AF_UNIX};
    uint8_t k[16];
    assert_int_equal(api_addr_key(&sa, sizeof(sa), 32, 64, k), -1);
    assert_int_equal(api_addr_key(NULL, 0, 32, 64, k), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minted_token_is_32_lowercase_hex_and_differs),
        cmocka_unit_test(test_name_rules),
        cmocka_unit_test(test_reserved_words),
        cmocka_unit_test(test_ipv4_key_is_mapped_and_masked),
        cmocka_unit_test(test_ipv6_key_is_masked_to_prefix),
        cmocka_unit_test(test_unknown_family_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
