/* tests/unit/test_svc_cluster.c — etcd's cluster flags into members (service/cluster.c): every
 * member derives the same cluster ID and the same member IDs from the same --initial-cluster, and
 * every bad combination is refused with a message naming the flag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "service/cluster.h"
#include "store/node_members.h"

#define ARGS(...)                                                                                            \
    (char *[])                                                                                               \
    {                                                                                                        \
        "discoveryd", __VA_ARGS__, NULL                                                                      \
    }

static int build(char **argv, struct node_cluster *c, char *err, size_t errlen)
{
    static struct svc_config cfg;
    int argc = 0;
    while (argv[argc])
        argc++;
    char *envp[] = {NULL};
    if (svc_config_parse(&cfg, argc, argv, envp, err, errlen) != 0)
        return -2;
    return svc_cluster_from_config(&cfg, c, err, errlen);
}

#define CLUSTER "a=http://127.0.0.1:12380,b=http://127.0.0.1:22380,c=http://[::1]:32380"

static void test_every_member_derives_the_same_ids(void **state)
{
    (void)state;
    struct node_cluster x, y, z;
    char err[512];
    assert_int_equal(build(ARGS("--name", "a", "--initial-cluster", CLUSTER), &x, err, sizeof(err)), 0);
    assert_int_equal(build(ARGS("--name", "b", "--initial-cluster", CLUSTER), &y, err, sizeof(err)), 0);
    assert_int_equal(build(ARGS("--name", "c", "--initial-cluster", CLUSTER), &z, err, sizeof(err)), 0);
    assert_int_equal(x.n, 3);
    assert_int_equal(x.self, 0);
    assert_int_equal(y.self, 1);
    assert_int_equal(z.self, 2);
    assert_true(x.cluster_id != 0);
    assert_int_equal(x.cluster_id, y.cluster_id);
    assert_int_equal(x.cluster_id, z.cluster_id);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(x.members[i].id, z.members[i].id);
        for (size_t j = 0; j < i; j++)
            assert_true(x.members[i].id != x.members[j].id);
    }
    assert_string_equal(z.members[2].host, "::1");
    assert_int_equal(z.members[2].port, 32380);
    assert_string_equal(z.listen_host, "::1"); /* default: this member's own URL */
    assert_int_equal(x.heartbeat_ms, 100);
    assert_int_equal(x.election_ms, 1000);
    /* another member list is another cluster */
    struct node_cluster w;
    assert_int_equal(
        build(ARGS("--name", "a", "--initial-cluster", "a=http://127.0.0.1:12380"), &w, err, sizeof(err)), 0);
    assert_true(w.cluster_id != x.cluster_id);
    /* joining a running cluster: the flags name who to ask; the IDs come from the members at start */
    assert_false(x.existing);
    assert_int_equal(build(ARGS("--name", "c", "--initial-cluster", CLUSTER, "--initial-cluster-state", "existing"),
                           &w, err, sizeof(err)),
                     0);
    assert_true(w.existing);
    assert_int_equal(w.self, 2);
    /* a founding member's ID is the same as before member tables: hash of name \0 peer URL */
    assert_int_equal(x.members[0].id, node_member_founding_id("a", "http://127.0.0.1:12380"));
    /* no --initial-cluster: the one-member cluster of today */
    assert_int_equal(build(ARGS("--listen", "127.0.0.1:1"), &w, err, sizeof(err)), 0);
    assert_int_equal(w.n, 0);
}

static void assert_refused(char **argv, const char *want)
{
    struct node_cluster c;
    char err[512] = "";
    int rc = build(argv, &c, err, sizeof(err));
    if (rc == 0 || strstr(err, want) == NULL) {
        fprintf(stderr, "want an error containing \"%s\", got rc %d \"%s\"\n", want, rc, err);
        fail();
    }
}

static void test_bad_combinations_name_the_flag(void **state)
{
    (void)state;
    assert_refused(ARGS("--name", "d", "--initial-cluster", CLUSTER),
                   "--name: \"d\" is not one of the members");
    assert_refused(ARGS("--name", "a", "--initial-cluster", "a=http://h:1,a=http://h:2"),
                   "the name \"a\" appears twice");
    assert_refused(ARGS("--name", "a", "--initial-cluster", "a=http://h:1,b=http://h:1"),
                   "the URL \"http://h:1\" appears twice");
    assert_refused(ARGS("--name", "a", "--initial-cluster", "a=h:1"), "--initial-cluster: \"a=h:1\"");
    assert_refused(ARGS("--name", "a", "--initial-cluster", "a=http://h"),
                   "--initial-cluster: \"a=http://h\"");
    assert_refused(ARGS("--name", "a", "--initial-cluster", "a=http://h:0"), "--initial-cluster");
    assert_refused(ARGS("--name", "a", "--initial-cluster", "a=http://h:65536"), "--initial-cluster");
    assert_refused(ARGS("--name", "a", "--initial-cluster", "=http://h:1"), "is not NAME=URL");
    assert_refused(ARGS("--name", "a b", "--initial-cluster", "a b=http://h:1"), "is not NAME=URL");
    assert_refused(ARGS("--name", "a", "--initial-cluster", "a=http://h:1,"), "an empty entry");
    assert_refused(ARGS("--name", "a", "--initial-cluster", ",a=http://h:1"), "an empty entry");
    assert_refused(ARGS("--name", "a", "--initial-cluster", CLUSTER, "--initial-cluster-state", "old"),
                   "--initial-cluster-state: \"old\" is not new or existing");
    assert_refused(ARGS("--name", "a", "--initial-cluster", CLUSTER, "--listen-peer-urls", "tcp://x:1"),
                   "--listen-peer-urls");
    assert_refused(ARGS("--name", "a", "--initial-cluster", CLUSTER, "--initial-advertise-peer-urls",
                        "http://127.0.0.1:9"),
                   "--initial-advertise-peer-urls");
    assert_refused(ARGS("--name", "a", "--initial-cluster", CLUSTER, "--heartbeat-interval", "300ms"),
                   "--election-timeout: must be at least 5 times --heartbeat-interval");
    assert_refused(ARGS("--name", "a", "--initial-cluster", CLUSTER, "--peer-cert-file", "c.pem"),
                   "--peer-cert-file, --peer-key-file and --peer-trusted-ca-file go together");
    assert_refused(ARGS("--listen-peer-urls", "http://127.0.0.1:1"),
                   "--listen-peer-urls: needs --initial-cluster");
    assert_refused(ARGS("--initial-cluster-state", "existing"),
                   "--initial-cluster-state: needs --initial-cluster");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_member_derives_the_same_ids),
        cmocka_unit_test(test_bad_combinations_name_the_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
