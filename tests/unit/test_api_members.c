/* tests/unit/test_api_members.c — /v2/members request parsing: etcd v2's add body with exactly one
 * peer URL, every malformed body refused with a reason, and member IDs in paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "api/members.h"

static int parse(const char *body, char *url)
{
    char why[200];
    why[0] = 0;
    int rv = api_members_parse_add(body, strlen(body), url, 256, why, sizeof(why));
    if (rv != 0)
        assert_true(why[0] != 0 && strchr(why, '\n') == NULL); /* a one-line reason */
    return rv;
}

static void test_add_bodies(void **state)
{
    (void)state;
    char url[256];
    assert_int_equal(parse("{\"peerURLs\":[\"http://10.0.0.10:2380\"]}", url), 0);
    assert_string_equal(url, "http://10.0.0.10:2380");
    assert_int_equal(parse(" {\n \"peerURLs\" : [ \"https:\\/\\/[::1]:7001\" ] }\n", url), 0);
    assert_string_equal(url, "https://[::1]:7001");
    const char *bad[] = {
        "",
        "[]",
        "{}",
        "{\"peerURLs\":[]}",
        "{\"peerURLs\":\"http://h:1\"}",
        "{\"peerURLs\":[\"http://h:1\",\"http://h:2\"]}",
        "{\"peerURLs\":[\"http://h:1\"]",
        "{\"peerURLs\":[\"http://h:1\"]} x",
        "{\"peerURLs\":[\"ftp://h:1\"]}",
        "{\"peerURLs\":[\"http://h\"]}",
        "{\"peerURLs\":[\"http://h:1\"],\"peerURLs\":[\"http://h:2\"]}",
        "{\"name\":\"x\",\"peerURLs\":[\"http://h:1\"]}",
        "{\"peerURLs\":[\"http://h:1\\u0000\"]}",
        "{\"peerURLs\":[1]}",
        "{\"peerURLs\":[\"http://h:1\n\"]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], url), -1);
    /* a URL longer than the member table holds */
    char big[600] = "{\"peerURLs\":[\"http://";
    memset(big + strlen(big), 'a', 300);
    strcpy(big + strlen(big), ":1\"]}");
    assert_int_equal(parse(big, url), -1);
    /* not NUL-terminated input is read only within len */
    const char *b = "{\"peerURLs\":[\"http://h:1\"]}garbage";
    char why[200];
    assert_int_equal(api_members_parse_add(b, strlen(b) - 7, url, 256, why, sizeof(why)), 0);
}

static void test_ids(void **state)
{
    (void)state;
    uint64_t id;
    assert_int_equal(api_members_parse_id("8e9e05c52164694d", 16, &id), 0);
    assert_int_equal(id, 0x8e9e05c52164694dULL);
    assert_int_equal(api_members_parse_id("1", 1, &id), 0);
    assert_int_equal(id, 1);
    assert_int_equal(api_members_parse_id("ABCdef", 6, &id), 0);
    assert_int_equal(id, 0xabcdef);
    assert_int_equal(api_members_parse_id("", 0, &id), -1);
    assert_int_equal(api_members_parse_id("0", 1, &id), -1);
    assert_int_equal(api_members_parse_id("12345678901234567", 17, &id), -1);
    assert_int_equal(api_members_parse_id("xyz", 3, &id), -1);
    assert_int_equal(api_members_parse_id("-1", 2, &id), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_bodies),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
