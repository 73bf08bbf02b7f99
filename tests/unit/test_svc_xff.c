/* tests/unit/test_svc_xff.c — the client address behind trusted proxies: element syntax (IPv4,
 * IPv6, ports, brackets, garbage), the right-most untrusted rule across several header lines, and
 * that an untrusted peer's header changes nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "service/xff.h"

static struct svc_cidr nets[4];
static struct svc_xff X;

static int setup(void **state)
{
    assert_int_equal(svc_parse_cidr("10.0.0.0/8", &nets[0]), 0);
    assert_int_equal(svc_parse_cidr("::1/128", &nets[1]), 0);
    assert_int_equal(svc_parse_cidr("fd00::/8", &nets[2]), 0);
    assert_int_equal(svc_parse_cidr("127.0.0.1", &nets[3]), 0);
    X.nets = nets;
    X.n = 4;
    return 0;
}

/* "1.2.3.4" or "2001:db8::1" -> 16 bytes, IPv4 mapped */
static void addr(const char *s, uint8_t out[16])
{
    assert_int_equal(xff_parse_addr(s, strlen(s), out), 0);
}

static const char *text(const uint8_t a[16], char *buf, size_t len)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, 12) == 0)
        inet_ntop(AF_INET, a + 12, buf, (socklen_t)len);
    else
        inet_ntop(AF_INET6, a, buf, (socklen_t)len);
    return buf;
}

static void test_element_syntax(void **state)
{
    static const struct {
        const char *in, *want; /* want NULL: refused */
    } cases[] = {
        {"192.0.2.1", "192.0.2.1"},
        {" 192.0.2.1 ", "192.0.2.1"},
        {"192.0.2.1:443", "192.0.2.1"},
        {"2001:db8::1", "2001:db8::1"},
        {"[2001:db8::1]", "2001:db8::1"},
        {"[2001:db8::1]:443", "2001:db8::1"},
        {"::ffff:192.0.2.9", "192.0.2.9"},
        {"", NULL},
        {"unknown", NULL},
        {"192.0.2", NULL},
        {"192.0.2.256", NULL},
        {"192.0.2.1:", NULL},
        {"192.0.2.1:http", NULL},
        {"192.0.2.1:123456", NULL},
        {"[2001:db8::1", NULL},
        {"[2001:db8::1]x", NULL},
        {"[192.0.2.1]", NULL},
        {"fe80::1%eth0", NULL},
        {"2001:db8::1:443x", NULL},
        {"_hidden", NULL},
        {"1.2.3.4 5.6.7.8", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t a[16];
        char buf[64];
        int rc = xff_parse_addr(cases[i].in, strlen(cases[i].in), a);
        if (cases[i].want == NULL) {
            if (rc == 0)
                fail_msg("\"%s\" accepted as %s", cases[i].in, text(a, buf, sizeof(buf)));
        } else {
            if (rc != 0)
                fail_msg("\"%s\" refused", cases[i].in);
            assert_string_equal(text(a, buf, sizeof(buf)), cases[i].want);
        }
    }
}

static void test_trusted_networks(void **state)
{
    uint8_t a[16];
    addr("10.1.2.3", a);
    assert_true(xff_trusted(&X, a));
    addr("11.0.0.1", a);
    assert_false(xff_trusted(&X, a));
    addr("::1", a);
    assert_true(xff_trusted(&X, a));
    addr("::2", a);
    assert_false(xff_trusted(&X, a));
    addr("fdff::5", a);
    assert_true(xff_trusted(&X, a));
    addr("fe00::5", a);
    assert_false(xff_trusted(&X, a));
    addr("::ffff:10.9.9.9", a); /* a mapped IPv4 peer on a dual-stack socket */
    assert_true(xff_trusted(&X, a));
}

/* The client xff_pick chooses for peer and header lines (NULL-terminated). */
static const char *pick(const char *peer, const char **lines)
{
    static char buf[64];
    h2o_iovec_t v[8];
    size_t n = 0;
    for (; lines != NULL && lines[n] != NULL; n++)
        v[n] = h2o_iovec_init(lines[n], strlen(lines[n]));
    uint8_t p[16], out[16];
    addr(peer, p);
    xff_pick(&X, p, v, n, out);
    return text(out, buf, sizeof(buf));
}

#define L(...) ((const char *[]){__VA_ARGS__, NULL})

static void test_right_most_untrusted_entry(void **state)
{
    /* an untrusted peer: its header changes nothing */
    assert_string_equal(pick("198.51.100.7", L("203.0.113.1")), "198.51.100.7");
    assert_string_equal(pick("198.51.100.7", L("10.0.0.1")), "198.51.100.7");
    /* a trusted peer without a header is the client */
    assert_string_equal(pick("10.0.0.2", NULL), "10.0.0.2");
    /* one entry */
    assert_string_equal(pick("10.0.0.2", L("203.0.113.1")), "203.0.113.1");
    /* the client forged entries on the left: the right-most untrusted one wins */
    assert_string_equal(pick("10.0.0.2", L("1.1.1.1, 2.2.2.2, 203.0.113.1")), "203.0.113.1");
    /* trusted hops are skipped, across several lines (later lines are further right) */
    assert_string_equal(pick("10.0.0.2", L("1.1.1.1, 203.0.113.1", "10.0.0.9")), "203.0.113.1");
    assert_string_equal(pick("10.0.0.2", L("203.0.113.1,10.0.0.8", "10.0.0.9, 10.0.0.7")), "203.0.113.1");
    /* every entry trusted: the left-most */
    assert_string_equal(pick("10.0.0.2", L("10.0.0.5, 10.0.0.6")), "10.0.0.5");
    /* IPv6 */
    assert_string_equal(pick("::1", L("2001:db8::7")), "2001:db8::7");
    assert_string_equal(pick("::1", L("[2001:db8::7]:5000, fd00::1")), "2001:db8::7");
    assert_string_equal(pick("fd12::3", L("192.0.2.44:1234")), "192.0.2.44");
    /* garbage stops the walk at the last trusted hop */
    assert_string_equal(pick("10.0.0.2", L("garbage")), "10.0.0.2");
    assert_string_equal(pick("10.0.0.2", L("203.0.113.1, garbage")), "10.0.0.2");
    assert_string_equal(pick("10.0.0.2", L("203.0.113.1, garbage, 10.0.0.3")), "10.0.0.3");
    assert_string_equal(pick("10.0.0.2", L("garbage, 203.0.113.1")), "203.0.113.1");
    assert_string_equal(pick("10.0.0.2", L("")), "10.0.0.2");
    assert_string_equal(pick("10.0.0.2", L("203.0.113.1,")), "10.0.0.2");
    assert_string_equal(pick("10.0.0.2", L(",203.0.113.1")), "203.0.113.1");
}

static void test_long_chains_stop(void **state)
{
    char line[2048] = "203.0.113.1";
    for (int i = 0; i < 80; i++)
        strcat(line, ", 10.0.0.1");
    assert_string_equal(pick("10.0.0.2", L(line)), "10.0.0.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_element_syntax),
        cmocka_unit_test(test_trusted_networks),
        cmocka_unit_test(test_right_most_untrusted_entry),
        cmocka_unit_test(test_long_chains_stop),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
