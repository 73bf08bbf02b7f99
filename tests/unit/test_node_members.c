/* tests/unit/test_node_members.c — the member table's encoding (round trip; every truncation,
 * trailing byte and bad field refused), peer URL parsing, and member IDs (founding IDs as they were
 * derived before; an added member's ID changes with the index of its addition).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "store/hash.h"
#include "store/node_members.h"

static struct node_member member(uint64_t id, const char *name, const char *url)
{
    struct node_member m;
    memset(&m, 0, sizeof(m));
    m.id = id;
    snprintf(m.name, sizeof(m.name), "%s", name);
    snprintf(m.peer_url, sizeof(m.peer_url), "%s", url);
    return m;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct node_member in[3] = {member(7, "d1", "http://127.0.0.1:2380"), member(9, "", "https://[::1]:7001"),
                                member(0xffffffffffffffffULL, "x.y-z_1", "http://peer.example:1")};
    uint8_t buf[NODE_MEMBERS_MAX_BYTES];
    size_t len = node_members_encode(in, 3, buf, sizeof(buf));
    assert_true(len > 0);
    struct node_member out[NODE_MAX_MEMBERS];
    size_t n;
    char err[128];
    assert_int_equal(node_members_decode(buf, len, out, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].id, 7);
    assert_string_equal(out[0].name, "d1");
    assert_string_equal(out[0].host, "127.0.0.1");
    assert_int_equal(out[0].port, 2380);
    assert_string_equal(out[1].name, "");
    assert_string_equal(out[1].host, "::1");
    assert_int_equal(out[1].port, 7001);
    assert_string_equal(out[2].peer_url, "http://peer.example:1");
    /* an empty table */
    len = node_members_encode(in, 0, buf, sizeof(buf));
    assert_int_equal(len, 2);
    assert_int_equal(node_members_decode(buf, len, out, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 0);
    /* too small a buffer: 0, never an overrun */
    assert_int_equal(node_members_encode(in, 3, buf, 20), 0);
}

static void test_malformed_is_refused(void **state)
{
    (void)state;
    struct node_member in[2] = {member(7, "d1", "http://127.0.0.1:2380"), member(9, "d2", "http://127.0.0.1:2381")};
    uint8_t buf[NODE_MEMBERS_MAX_BYTES];
    size_t len = node_members_encode(in, 2, buf, sizeof(buf)), n;
    struct node_member out[NODE_MAX_MEMBERS];
    char err[128];
    for (size_t i = 0; i < len; i++)
        assert_int_equal(node_members_decode(buf, i, out, &n, err, sizeof(err)), -1);
    assert_int_equal(node_members_decode(buf, len + 1, out, &n, err, sizeof(err)), -1); /* trailing byte */
    uint8_t bad[NODE_MEMBERS_MAX_BYTES];
    memcpy(bad, buf, len);
    bad[0] = 2; /* unknown version */
    assert_int_equal(node_members_decode(bad, len, out, &n, err, sizeof(err)), -1);
    memcpy(bad, buf, len);
    bad[1] = NODE_MAX_MEMBERS + 1;
    assert_int_equal(node_members_decode(bad, len, out, &n, err, sizeof(err)), -1);
    /* the same ID twice */
    struct node_member twice[2] = {in[0], in[1]};
    twice[1].id = 7;
    len = node_members_encode(twice, 2, buf, sizeof(buf));
    assert_int_equal(node_members_decode(buf, len, out, &n, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "twice"));
    /* a zero ID, a URL that is not http://HOST:PORT */
    struct node_member z = member(0, "a", "http://h:1");
    len = node_members_encode(&z, 1, buf, sizeof(buf));
    assert_int_equal(node_members_decode(buf, len, out, &n, err, sizeof(err)), -1);
    struct node_member u = member(1, "a", "ftp://h:1");
    len = node_members_encode(&u, 1, buf, sizeof(buf));
    assert_int_equal(node_members_decode(buf, len, out, &n, err, sizeof(err)), -1);
    /* random corruption never crashes */
    len = node_members_encode(in, 2, buf, sizeof(buf));
    srand(7);
    for (int k = 0; k < 2000; k++) {
        memcpy(bad, buf, len);
        bad[rand() % len] ^= (uint8_t)(1 + rand() % 255);
        (void)node_members_decode(bad, len, out, &n, err, sizeof(err));
    }
}

static void test_urls(void **state)
{
    (void)state;
    char host[256];
    uint16_t port;
    const char *good[] = {"http://127.0.0.1:2380", "https://h.example:1", "http://[::1]:65535", "http://a_b-c:9"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(node_member_parse_url(good[i], strlen(good[i]), host, sizeof(host), &port), 0);
    const char *bad[] = {"", "127.0.0.1:2380", "http://:1", "http://h", "http://h:", "http://h:0", "http://h:65536",
                         "http://h:1/path", "http://h h:1", "ftp://h:1", "http://[::1:1", "http://h:123456"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(node_member_parse_url(bad[i], strlen(bad[i]), host, sizeof(host), &port), -1);
}

static void test_ids(void **state)
{
    (void)state;
    /* a founding member's ID is what it always was: hash of name \0 peer URL */
    char key[] = "d1\0http://127.0.0.1:2380";
    assert_int_equal(node_member_founding_id("d1", "http://127.0.0.1:2380"), hash_of(HASH_INIT, key, sizeof(key) - 1));
    assert_true(node_member_founding_id("d1", "http://127.0.0.1:2380") !=
                node_member_founding_id("d2", "http://127.0.0.1:2380"));
    /* an added member: the same URL added again later gets another ID */
    uint64_t a = node_member_added_id("http://127.0.0.1:2380", 5, 100);
    assert_true(a != 0);
    assert_int_equal(a, node_member_added_id("http://127.0.0.1:2380", 5, 100));
    assert_true(a != node_member_added_id("http://127.0.0.1:2380", 5, 101));
    assert_true(a != node_member_added_id("http://127.0.0.1:2380", 6, 100));
    assert_true(a != node_member_added_id("http://127.0.0.1:2381", 5, 100));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_malformed_is_refused),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
